//! The upstream CTI Server session on the ingest core (glommio): connect to
//! side A, open an All Events session, heartbeat it, hand every event frame
//! of a read to the fan-out and flush once per read, keep the PG status
//! (OPEN_CONF, then SYSTEM_EVENTs), and on loss tell the downstream sessions
//! and retry side A and side B alternately with backoff (docs/design.md §4.12).
//!
//! The protocol rules live in `upstream_client` (sans-IO), the reassembly in
//! `upstream_frames`, the retry timing in `upstream_backoff`, the status in
//! `upstream_status`; this file owns the socket, the clock and the loop.

use std::future::Future;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
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

impl UpstreamSource {
    pub fn new(config: &UpstreamConfig) -> UpstreamSource {
        UpstreamSource {
            config: config.clone(),
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
        let now = Instant::now();
        let mut link = Link {
            stream,
            frames: FrameBuffer::new(),
            core: ClientCore::new(self.params.clone(), now),
            out: Vec::with_capacity(256),
            status: PgStatus::offline(),
            opened_at: None,
        };
        link.core.start(now, &mut link.out);
        tracing::info!(side, %addr, version = %self.version(), "upstream: connected, sending OPEN_REQ");
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
            let Link { stream, frames, .. } = &mut *link;
            let woke = futures_lite::future::or(
                async { Woke::Read(stream.read(frames.spare()).await) },
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
                Ok(Inbound::Handled | Inbound::Closed) => {}
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
    if link.out.is_empty() {
        return Ok(());
    }
    let Link { stream, out, .. } = link;
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
        let Link { stream, frames, .. } = &mut *link;
        let woke = futures_lite::future::or(
            async { Woke::Read(stream.read(frames.spare()).await) },
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
