//! The upstream CTI Server session on the ingest core (glommio): connect to
//! side A, open an All Events session, heartbeat it, hand every event frame
//! of a read to the fan-out and flush once per read, keep the PG status
//! (OPEN_CONF, then SYSTEM_EVENTs), and on loss tell the downstream sessions
//! and retry side A and side B alternately with backoff (docs/design.md §4.12).
//!
//! The protocol rules live in `upstream_client` (sans-IO), the reassembly in
//! `upstream_frames`, the retry timing in `upstream_backoff`, the status in
//! `upstream_status`; this file owns the socket, the clock and the loop.
//!
//! With `[upstream] tls = true` the bytes go through rustls: the handshake
//! is part of the connect (a failed one is a failed connect: same backoff,
//! same alternation of the sides, logged with rustls's reason), then reads
//! take ciphertext from the socket into rustls and plaintext out of it, and
//! writes go into rustls and its records to the socket.

use std::future::Future;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::{stopping, Fanout, STOP_POLL};
use crate::config::UpstreamConfig;
use crate::metrics::Metrics;
use crate::proto::constants::msg;
use crate::proto::Version;
use crate::session::backoff::{Backoff, SideCursor};
use crate::session::client::{ClientCore, ClientError, Inbound, OpenParams};
use crate::session::frames::FrameBuffer;
use crate::session::pg_status;
use crate::status::PgStatus;

/// The status before the first upstream session opens: offline, with the
/// request services the router asks for taken as granted, so a desktop that
/// connects during startup (or, with the last grant kept, during a
/// failover) has its Client Control: its requests get FAILURE_CONF(15)
/// until the CTI Server is there, and (12) if it then grants less.
pub fn offline_before_first_open(config: &UpstreamConfig) -> PgStatus {
    PgStatus {
        upstream_services: config.services(),
        ..PgStatus::offline()
    }
}

/// Longest wait for a TCP connect (an unreachable side must not hold up
/// trying the other one).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a write may wait on a server that stopped reading: then it is lost.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for CLOSE_CONF when stopping (docs/protocol.md §6.4 allows 5 s;
/// a router shutting down should not take that long).
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// A session that stayed open this long resets the backoff; sessions that
/// die sooner (a server that accepts and then fails) keep backing off.
const STABLE_SESSION: Duration = Duration::from_secs(10);

/// The upstream as ingest's event source.
pub struct UpstreamSource {
    config: UpstreamConfig,
    /// The TLS configuration (`None`: clear text), or why it could not be
    /// made (every connect then fails with that reason).
    tls: Result<Option<Arc<rustls::ClientConfig>>, String>,
    params: OpenParams,
    backoff: Backoff,
    side: SideCursor,
}

/// How one connection ended.
enum Ended {
    /// The stop flag was set (CLOSE_REQ was sent if the session was open).
    Stopped,
    /// The session never opened: connect failed, OPEN refused or timed out.
    NotOpened(String),
    /// The session was open for `up`, then lost.
    Lost { up: Duration, why: String },
}

/// One connection's state.
struct Link {
    stream: TcpStream,
    /// rustls's state on a TLS upstream.
    tls: Option<Box<TlsLink>>,
    frames: FrameBuffer,
    core: ClientCore,
    /// Frames to send (OPEN_REQ, heartbeats, CLOSE_REQ).
    out: Vec<u8>,
    /// The PG status as this session has told it.
    status: PgStatus,
    opened_at: Option<Instant>,
}

/// What woke the session loop.
enum Woke {
    Read(std::io::Result<usize>),
    Timer,
    /// Requests were staged for the upstream.
    Requests,
}

/// A TLS upstream connection's rustls state, and ciphertext read from the
/// socket that rustls has not taken yet (`cipher[at..len]`).
struct TlsLink {
    conn: rustls::ClientConnection,
    cipher: Vec<u8>,
    at: usize,
    len: usize,
}

impl UpstreamSource {
    pub fn new(config: &UpstreamConfig) -> UpstreamSource {
        UpstreamSource {
            config: config.clone(),
            tls: crate::tls::client_config(config).map_err(|e| e.to_string()),
            params: OpenParams::upstream(config),
            backoff: Backoff::from_clock(
                Duration::from_millis(config.reconnect_min_ms),
                Duration::from_millis(config.reconnect_max_ms),
            ),
            side: SideCursor::default(),
        }
    }

    fn version(&self) -> Version {
        self.params.version
    }

    /// Hold the upstream session until `stop` is set, reconnecting on loss.
    pub async fn run(&mut self, fanout: &mut Fanout, stop: &AtomicBool) {
        fanout
            .set_status(offline_before_first_open(&self.config))
            .await;
        if self.config.sides.is_empty() {
            tracing::error!("upstream: no side A configured; nothing to connect to");
            let _ = until_stopped(stop, futures_lite::future::pending::<()>()).await;
            return;
        }
        while !stopping(stop) {
            let index = self.side.current();
            let addr = self.config.sides[index].clone();
            let side = SideCursor::name(index);
            match self.session(&addr, side, fanout, stop).await {
                Ended::Stopped => break,
                Ended::NotOpened(why) => {
                    tracing::warn!(side, %addr, %why, "upstream session not opened");
                }
                Ended::Lost { up, why } => {
                    tracing::warn!(side, %addr, %why, up_secs = up.as_secs_f64(), "upstream lost");
                    fanout.upstream_lost().await;
                    if up >= STABLE_SESSION {
                        self.backoff.reset();
                    }
                }
            }
            self.side.advance(self.config.sides.len());
            let delay = self.backoff.next_delay();
            tracing::info!(
                side = SideCursor::name(self.side.current()),
                delay_ms = delay.as_millis() as u64,
                "upstream: reconnecting"
            );
            let _ = until_stopped(stop, glommio::timer::sleep(delay)).await;
        }
    }

    /// One connection: connect, open, run until lost or stopped.
    async fn session(
        &mut self,
        addr: &str,
        side: &str,
        fanout: &mut Fanout,
        stop: &AtomicBool,
    ) -> Ended {
        let connect = futures_lite::future::or(
            async { TcpStream::connect(addr).await.map_err(|e| e.to_string()) },
            async {
                glommio::timer::sleep(CONNECT_TIMEOUT).await;
                Err(format!("connect timed out after {CONNECT_TIMEOUT:?}"))
            },
        );
        let stream = match until_stopped(stop, connect).await {
            None => return Ended::Stopped,
            Some(Err(e)) => return Ended::NotOpened(format!("connect: {e}")),
            Some(Ok(stream)) => stream,
        };
        set_socket_options(&stream);
        let tls = match self.start_tls(addr) {
            Ok(tls) => tls,
            Err(e) => return Ended::NotOpened(e),
        };
        let now = Instant::now();
        let mut link = Link {
            stream,
            tls,
            frames: FrameBuffer::new(),
            core: ClientCore::new(self.params.clone(), now),
            out: Vec::with_capacity(256),
            status: PgStatus::offline(),
            opened_at: None,
        };
        if link.tls.is_some() {
            let handshake = futures_lite::future::or(handshake(&mut link), async {
                glommio::timer::sleep(CONNECT_TIMEOUT).await;
                Err(format!(
                    "TLS handshake: timed out after {CONNECT_TIMEOUT:?}"
                ))
            });
            match until_stopped(stop, handshake).await {
                None => return Ended::Stopped,
                Some(Err(e)) => return Ended::NotOpened(e),
                Some(Ok(())) => {}
            }
        }
        link.core.start(now, &mut link.out);
        tracing::info!(side, %addr, version = %self.version(), tls = link.tls.is_some(), "upstream: connected, sending OPEN_REQ");
        let why = match self.drive(&mut link, side, fanout, stop).await {
            Ok(()) => return Ended::Stopped,
            Err(why) => why,
        };
        match link.opened_at {
            Some(at) => Ended::Lost {
                up: at.elapsed(),
                why,
            },
            None => Ended::NotOpened(why),
        }
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

    /// Read, time and write until the session fails (`Err`) or `stop` is set
    /// (`Ok`, after CLOSE_REQ).
    async fn drive(
        &mut self,
        link: &mut Link,
        side: &str,
        fanout: &mut Fanout,
        stop: &AtomicBool,
    ) -> Result<(), String> {
        loop {
            // Timers first, every turn: a stream that always has data ready
            // must not starve the heartbeats (the server's idle check).
            let now = Instant::now();
            let Link { core, out, .. } = &mut *link;
            core.on_timer(now, out).map_err(|e| e.to_string())?;
            if core.is_open() {
                fanout.take_upstream_requests(out);
                if fanout.with(|c| c.expire_requests(now)) > 0 {
                    fanout.flush().await;
                }
            }
            send_pending(link).await?;
            if stopping(stop) {
                close(link).await;
                return Ok(());
            }
            let wait = link
                .core
                .next_deadline()
                .map_or(STOP_POLL, |at| at.saturating_duration_since(now))
                .min(STOP_POLL);
            let Link {
                stream,
                tls,
                frames,
                ..
            } = &mut *link;
            let woke = futures_lite::future::or(
                async { Woke::Read(read(stream, tls, frames.spare()).await) },
                futures_lite::future::or(
                    async {
                        glommio::timer::sleep(wait).await;
                        Woke::Timer
                    },
                    async {
                        fanout.requests_staged().await;
                        Woke::Requests
                    },
                ),
            )
            .await;
            match woke {
                Woke::Timer | Woke::Requests => {}
                Woke::Read(Ok(0)) => return Err("the server closed the connection".into()),
                Woke::Read(Err(e)) => return Err(format!("read: {e}")),
                Woke::Read(Ok(n)) => {
                    link.frames.filled(n);
                    let result = self.on_frames(link, side, fanout).await;
                    // Whatever was staged before a bad frame still goes out.
                    fanout.flush().await;
                    result?;
                }
            }
        }
    }

    /// Every whole frame of one read: control frames to the client core,
    /// events to the fan-out (status first when a SYSTEM_EVENT changes it).
    async fn on_frames(
        &mut self,
        link: &mut Link,
        side: &str,
        fanout: &mut Fanout,
    ) -> Result<(), String> {
        let version = self.version();
        let now = Instant::now();
        loop {
            let frame = match link.frames.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(e) => return Err(bad_frame(fanout, &e.to_string())),
            };
            match link.core.on_frame(frame, now) {
                Ok(Inbound::Opened(conf)) => {
                    link.status = pg_status::from_open_conf(&conf);
                    link.opened_at = Some(now);
                    let side_number = self.side.current() as u64 + 1;
                    let metrics = fanout.metrics();
                    metrics.upstream_side.store(side_number, Ordering::Relaxed);
                    tracing::info!(
                        side,
                        pg_status = link.status.pg_status,
                        peripheral_type = link.status.peripheral_type,
                        peripherals = ?link.status.peripherals,
                        "upstream open"
                    );
                    let version = self.version();
                    fanout.with(|c| c.upstream_version = version);
                    fanout.upstream_back(link.status.clone()).await;
                }
                Ok(Inbound::Event(frame)) => {
                    if frame_type(frame) == msg::SYSTEM_EVENT
                        && matches!(
                            pg_status::apply_frame(&mut link.status, frame, version),
                            Ok(true)
                        )
                    {
                        fanout.set_status(link.status.clone()).await;
                    }
                    if let Err(e) = fanout.push_frame(version, frame, now).await {
                        // push_frame counted it.
                        tracing::warn!(error = %e, message_type = frame_type(frame), "malformed upstream frame");
                        return Err(format!("malformed upstream frame: {e}"));
                    }
                }
                Ok(Inbound::Reply { invoke_id, frame }) => {
                    fanout.upstream_reply(invoke_id, frame, now);
                }
                Ok(Inbound::Heartbeat { rtt: Some(rtt) }) => {
                    fanout.metrics().upstream_heartbeat_rtt.record(rtt);
                }
                Ok(Inbound::Heartbeat { rtt: None } | Inbound::Handled | Inbound::Closed) => {}
                Err(ClientError::BadFrame(e)) => return Err(bad_frame(fanout, &e.to_string())),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

/// Count and log a frame that breaks the upstream stream; the session is
/// re-established.
fn bad_frame(fanout: &Fanout, error: &str) -> String {
    Metrics::add(&fanout.metrics().nr_bad_upstream_frames, 1);
    tracing::warn!(error, "malformed upstream frame");
    format!("malformed upstream frame: {error}")
}

fn frame_type(frame: &[u8]) -> u32 {
    u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]])
}

/// Write what the client core queued; a server that does not take 12 bytes
/// within [`WRITE_TIMEOUT`] is as good as gone.
async fn send_pending(link: &mut Link) -> Result<(), String> {
    let tls_pending = link.tls.as_ref().is_some_and(|t| t.conn.wants_write());
    if link.out.is_empty() && !tls_pending {
        return Ok(());
    }
    let Link {
        stream, out, tls, ..
    } = link;
    if let Some(tls) = tls {
        // Into rustls (its buffer is unbounded here: the upstream's output
        // is OPEN_REQ, heartbeats and requests), then its records.
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

/// Drive a TLS upstream's handshake to its end (before OPEN_REQ); the
/// error says why it failed.
async fn handshake(link: &mut Link) -> Result<(), String> {
    let Link { stream, tls, .. } = link;
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
                let _ = futures_lite::future::or(async { stream.write_all(&out).await }, async {
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

/// CLOSE_REQ, then wait (briefly) for CLOSE_CONF.
async fn close(link: &mut Link) {
    if !link.core.is_open() {
        return;
    }
    link.core.close(&mut link.out);
    if send_pending(link).await.is_err() {
        return;
    }
    let deadline = Instant::now() + CLOSE_WAIT;
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            tracing::info!("upstream: no CLOSE_CONF; closing anyway");
            return;
        }
        let Link {
            stream,
            tls,
            frames,
            ..
        } = &mut *link;
        let woke = futures_lite::future::or(
            async { Woke::Read(read(stream, tls, frames.spare()).await) },
            async {
                glommio::timer::sleep(wait).await;
                Woke::Timer
            },
        )
        .await;
        let Woke::Read(Ok(n @ 1..)) = woke else {
            return;
        };
        link.frames.filled(n);
        while let Ok(Some(frame)) = link.frames.next_frame() {
            if let Ok(Inbound::Closed) = link.core.on_frame(frame, Instant::now()) {
                tracing::info!("upstream: CLOSE_CONF received");
                return;
            }
        }
    }
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
async fn until_stopped<T>(stop: &AtomicBool, work: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(work.await) }, async {
        while !stopping(stop) {
            glommio::timer::sleep(STOP_POLL).await;
        }
        None
    })
    .await
}
