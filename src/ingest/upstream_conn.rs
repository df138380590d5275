//! One client connection to a CTI Server on the ingest core (glommio): the
//! TCP connect with its timeout, the TLS handshake on a TLS upstream, reads
//! (plaintext out of rustls on TLS), the writes of what the sans-IO client
//! core queued, and CLOSE_REQ with its short wait. The bridge session
//! (`upstream`) and each supervisor's own session (`supervisor_link`) are
//! one of these each; the protocol rules are `session::client`'s.
//!
//! With `[upstream] tls = true` the bytes go through rustls: the handshake
//! is part of the connect (a failed one is a failed connect, logged with
//! rustls's reason), then reads take ciphertext from the socket into rustls
//! and plaintext out of it, and writes go into rustls and its records to
//! the socket.

use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::{stopping, STOP_POLL};
use crate::config::UpstreamConfig;
use crate::session::client::{ClientCore, Inbound, OpenParams};
use crate::session::frames::FrameBuffer;

/// Longest wait for a TCP connect (an unreachable side must not hold up
/// trying the other one).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a write may wait on a server that stopped reading: then it is lost.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for CLOSE_CONF when stopping (docs/protocol.md §6.4 allows 5 s;
/// a router shutting down should not take that long).
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// How to reach the CTI Server: its sides and TLS settings.
pub struct Connector {
    config: UpstreamConfig,
    /// The TLS configuration (`None`: clear text), or why it could not be
    /// made (every connect then fails with that reason).
    tls: Result<Option<Arc<rustls::ClientConfig>>, String>,
}

/// What a connect came to.
pub enum Connected {
    /// The stop flag was set first.
    Stopped,
    /// Connect or TLS handshake failed, with why.
    Failed(String),
    /// Connected (and on TLS, handshaken): the client core is not started.
    Up(Box<Conn>),
}

/// One connection's state.
pub struct Conn {
    stream: TcpStream,
    /// rustls's state on a TLS upstream.
    tls: Option<Box<TlsLink>>,
    pub frames: FrameBuffer,
    pub core: ClientCore,
    /// Frames to send (OPEN_REQ, heartbeats, requests, CLOSE_REQ).
    pub out: Vec<u8>,
}

/// What woke a session loop waiting on its connection.
pub enum Woke {
    /// The connection read (`Ok(0)`: it ended).
    Read(std::io::Result<usize>),
    /// The wait ran out: time for the timers.
    Timer,
    /// Its bell rang: something to write.
    Bell,
}

/// A TLS upstream connection's rustls state, and ciphertext read from the
/// socket that rustls has not taken yet (`cipher[at..len]`).
struct TlsLink {
    conn: rustls::ClientConnection,
    cipher: Vec<u8>,
    at: usize,
    len: usize,
}

impl Connector {
    pub fn new(config: &UpstreamConfig) -> Connector {
        Connector {
            config: config.clone(),
            tls: crate::tls::client_config(config).map_err(|e| e.to_string()),
        }
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Connect to side `addr` (and on TLS, handshake) for a session that
    /// opens with `params`.
    pub async fn connect(&self, addr: &str, params: OpenParams, stop: &AtomicBool) -> Connected {
        let connect = futures_lite::future::or(
            async { TcpStream::connect(addr).await.map_err(|e| e.to_string()) },
            async {
                glommio::timer::sleep(CONNECT_TIMEOUT).await;
                Err(format!("connect timed out after {CONNECT_TIMEOUT:?}"))
            },
        );
        let stream = match until_stopped(stop, connect).await {
            None => return Connected::Stopped,
            Some(Err(e)) => return Connected::Failed(format!("connect: {e}")),
            Some(Ok(stream)) => stream,
        };
        set_socket_options(&stream);
        let tls = match self.start_tls(addr) {
            Ok(tls) => tls,
            Err(e) => return Connected::Failed(e),
        };
        let mut conn = Conn {
            stream,
            tls,
            frames: FrameBuffer::new(),
            core: ClientCore::new(params, Instant::now()),
            out: Vec::with_capacity(256),
        };
        if conn.tls.is_some() {
            let handshake = futures_lite::future::or(conn.handshake(), async {
                glommio::timer::sleep(CONNECT_TIMEOUT).await;
                Err(format!(
                    "TLS handshake: timed out after {CONNECT_TIMEOUT:?}"
                ))
            });
            match until_stopped(stop, handshake).await {
                None => return Connected::Stopped,
                Some(Err(e)) => return Connected::Failed(e),
                Some(Ok(())) => {}
            }
        }
        Connected::Up(Box::new(conn))
    }

    /// rustls's client state for side `addr`, `None` for clear text.
    fn start_tls(&self, addr: &str) -> Result<Option<Box<TlsLink>>, String> {
        let config = match &self.tls {
            Ok(None) => return Ok(None),
            Ok(Some(config)) => config.clone(),
            Err(e) => return Err(format!("TLS: {e}")),
        };
        let name = crate::tls::side_server_name(&self.config, addr).map_err(|e| e.to_string())?;
        let mut conn =
            rustls::ClientConnection::new(config, name).map_err(|e| format!("TLS: {e}"))?;
        conn.set_buffer_limit(None);
        Ok(Some(Box::new(TlsLink {
            conn,
            cipher: vec![0; crate::session::frames::READ_CHUNK],
            at: 0,
            len: 0,
        })))
    }
}

impl Conn {
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Write what the client core queued; a server that does not take 12
    /// bytes within [`WRITE_TIMEOUT`] is as good as gone.
    pub async fn send_pending(&mut self) -> Result<(), String> {
        let tls_pending = self.tls.as_ref().is_some_and(|t| t.conn.wants_write());
        if self.out.is_empty() && !tls_pending {
            return Ok(());
        }
        let Conn {
            stream, out, tls, ..
        } = self;
        if let Some(tls) = tls {
            // Into rustls (its buffer is unbounded here: the upstream's
            // output is OPEN_REQ, heartbeats and requests), then its records.
            let taken = tls.conn.writer().write_all(out);
            out.clear();
            taken.map_err(|e| format!("write: TLS: {e}"))?;
            while tls.conn.wants_write() {
                tls.conn
                    .write_tls(out)
                    .map_err(|e| format!("write: TLS: {e}"))?;
            }
        }
        let written = futures_lite::future::or(
            async {
                stream
                    .write_all(out)
                    .await
                    .map_err(|e| format!("write: {e}"))
            },
            async {
                glommio::timer::sleep(WRITE_TIMEOUT).await;
                Err(format!("write timed out after {WRITE_TIMEOUT:?}"))
            },
        )
        .await;
        out.clear();
        written
    }

    /// Read into the frame buffer: the socket's bytes, or on a TLS
    /// upstream the plaintext rustls makes of them (`Ok(0)`: the connection
    /// ended). The caller marks them filled.
    pub async fn read(&mut self) -> std::io::Result<usize> {
        let Conn {
            stream,
            tls,
            frames,
            ..
        } = self;
        read(stream, tls, frames.spare()).await
    }

    /// Wait for the first of: bytes read (into the frame buffer; the
    /// caller marks them filled), `wait` passing, `bell` ringing.
    pub async fn wait(&mut self, wait: Duration, bell: impl Future<Output = ()>) -> Woke {
        futures_lite::future::or(
            async { Woke::Read(self.read().await) },
            futures_lite::future::or(
                async {
                    glommio::timer::sleep(wait).await;
                    Woke::Timer
                },
                async {
                    bell.await;
                    Woke::Bell
                },
            ),
        )
        .await
    }

    /// Drive a TLS upstream's handshake to its end (before OPEN_REQ); the
    /// error says why it failed.
    async fn handshake(&mut self) -> Result<(), String> {
        let Conn { stream, tls, .. } = self;
        let Some(tls) = tls else {
            return Ok(());
        };
        let mut out = Vec::new();
        loop {
            while tls.conn.wants_write() {
                tls.conn
                    .write_tls(&mut out)
                    .map_err(|e| format!("TLS handshake: {e}"))?;
            }
            if !out.is_empty() {
                stream
                    .write_all(&out)
                    .await
                    .map_err(|e| format!("TLS handshake: write: {e}"))?;
                out.clear();
            }
            if !tls.conn.is_handshaking() {
                return Ok(());
            }
            let n = stream
                .read(&mut tls.cipher)
                .await
                .map_err(|e| format!("TLS handshake: read: {e}"))?;
            if n == 0 {
                return Err("TLS handshake: the server closed the connection".into());
            }
            let mut ciphertext = &tls.cipher[..n];
            while !ciphertext.is_empty() {
                let processed = tls
                    .conn
                    .read_tls(&mut ciphertext)
                    .map_err(|e| e.to_string())
                    .and_then(|_| tls.conn.process_new_packets().map_err(|e| e.to_string()));
                if let Err(e) = processed {
                    // Tell the server why (its alert), if the socket takes it.
                    out.clear();
                    while tls.conn.wants_write() && tls.conn.write_tls(&mut out).is_ok() {}
                    let _ =
                        futures_lite::future::or(async { stream.write_all(&out).await }, async {
                            glommio::timer::sleep(Duration::from_millis(100)).await;
                            Ok(())
                        })
                        .await;
                    return Err(format!("TLS handshake: {e}"));
                }
                if !tls.conn.is_handshaking() {
                    // Application data after the handshake stays for `read`.
                    tls.len = n;
                    tls.at = n - ciphertext.len();
                    break;
                }
            }
        }
    }

    /// CLOSE_REQ, then wait (briefly) for CLOSE_CONF; `who` names the
    /// session in the log ("upstream", "supervisor session 12").
    pub async fn close(&mut self, who: &str) {
        if !self.core.is_open() {
            return;
        }
        self.core.close(&mut self.out);
        if self.send_pending().await.is_err() {
            return;
        }
        let deadline = Instant::now() + CLOSE_WAIT;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                tracing::info!("{who}: no CLOSE_CONF; closing anyway");
                return;
            }
            let woke = self.wait(wait, futures_lite::future::pending()).await;
            let Woke::Read(Ok(n @ 1..)) = woke else {
                return;
            };
            self.frames.filled(n);
            while let Ok(Some(frame)) = self.frames.next_frame() {
                if let Ok(Inbound::Closed) = self.core.on_frame(frame, Instant::now()) {
                    tracing::info!("{who}: CLOSE_CONF received");
                    return;
                }
            }
        }
    }
}

/// Read from the upstream: the socket's bytes, or on a TLS upstream the
/// plaintext rustls makes of them (`Ok(0)`: the connection ended).
async fn read(
    stream: &mut TcpStream,
    tls: &mut Option<Box<TlsLink>>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    let Some(tls) = tls else {
        return stream.read(buf).await;
    };
    loop {
        match tls.conn.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if tls.at == tls.len {
            let n = stream.read(&mut tls.cipher).await?;
            if n == 0 {
                return Ok(0);
            }
            (tls.at, tls.len) = (0, n);
        }
        let mut ciphertext = &tls.cipher[tls.at..tls.len];
        let taken = tls.conn.read_tls(&mut ciphertext);
        tls.at = tls.len - ciphertext.len();
        taken?;
        tls.conn.process_new_packets().map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("TLS: {e}"))
        })?;
    }
}

/// The message type of a whole frame (its header says it).
pub fn frame_type(frame: &[u8]) -> u32 {
    u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]])
}

/// TCP_NODELAY and SO_LINGER 0, as Cisco asks of CTI clients (docs/protocol.md §1).
fn set_socket_options(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    // SAFETY: the fd belongs to `stream`, which outlives this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    let _ = socket2::SockRef::from(&fd).set_linger(Some(Duration::ZERO));
}

/// Run `work` until it finishes (`Some`) or `stop` is set (`None`), looking
/// at the flag every [`STOP_POLL`].
pub async fn until_stopped<T>(stop: &AtomicBool, work: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(work.await) }, async {
        while !stopping(stop) {
            glommio::timer::sleep(STOP_POLL).await;
        }
        None
    })
    .await
}
