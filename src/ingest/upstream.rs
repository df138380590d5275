//! The upstream CTI Server session on the ingest core (glommio): connect to
//! side A, open an All Events session, heartbeat it, hand every event frame
//! of a read to the fan-out and flush once per read, keep the PG status
//! (OPEN_CONF, then SYSTEM_EVENTs), and on loss tell the downstream sessions
//! and retry side A and side B alternately with backoff (docs/design.md §4.12).
//!
//! The protocol rules live in `session::client` (sans-IO), the reassembly
//! in `session::frames`, the retry timing in `session::backoff`, the status
//! in `session::pg_status`, the connection's I/O (TCP, TLS) in
//! `upstream_conn`; this file owns the loop. A failed TLS handshake is a
//! failed connect: same backoff, same alternation of the sides.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::upstream_conn::{frame_type, until_stopped, Conn, Connected, Connector, Woke};
use super::{stopping, Fanout, STOP_POLL};
use crate::config::UpstreamConfig;
use crate::metrics::Metrics;
use crate::proto::constants::msg;
use crate::proto::Version;
use crate::session::backoff::{Backoff, SideCursor};
use crate::session::client::{ClientError, Inbound, OpenParams};
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

/// A session that stayed open this long resets the backoff; sessions that
/// die sooner (a server that accepts and then fails) keep backing off.
const STABLE_SESSION: Duration = Duration::from_secs(10);

/// The upstream as ingest's event source.
pub struct UpstreamSource {
    /// The sides and TLS settings (shared with the supervisors' sessions).
    connector: Rc<Connector>,
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

/// The bridge session's connection and what it has said.
struct Link {
    conn: Conn,
    /// The PG status as this session has told it.
    status: PgStatus,
    opened_at: Option<Instant>,
}

impl UpstreamSource {
    pub fn new(connector: Rc<Connector>) -> UpstreamSource {
        let config = connector.config();
        UpstreamSource {
            params: OpenParams::upstream(config),
            backoff: Backoff::from_clock(
                Duration::from_millis(config.reconnect_min_ms),
                Duration::from_millis(config.reconnect_max_ms),
            ),
            side: SideCursor::default(),
            connector: connector.clone(),
        }
    }

    fn config(&self) -> &UpstreamConfig {
        self.connector.config()
    }

    fn version(&self) -> Version {
        self.params.version
    }

    /// Hold the upstream session until `stop` is set, reconnecting on loss.
    pub async fn run(&mut self, fanout: &mut Fanout, stop: &AtomicBool) {
        fanout
            .set_status(offline_before_first_open(self.config()))
            .await;
        if self.config().sides.is_empty() {
            tracing::error!("upstream: no side A configured; nothing to connect to");
            let _ = until_stopped(stop, futures_lite::future::pending::<()>()).await;
            return;
        }
        while !stopping(stop) {
            let index = self.side.current();
            let addr = self.config().sides[index].clone();
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
            self.side.advance(self.config().sides.len());
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
        let connected = self
            .connector
            .connect(addr, self.params.clone(), stop)
            .await;
        let conn = match connected {
            Connected::Stopped => return Ended::Stopped,
            Connected::Failed(why) => return Ended::NotOpened(why),
            Connected::Up(conn) => *conn,
        };
        let mut link = Link {
            conn,
            status: PgStatus::offline(),
            opened_at: None,
        };
        let now = Instant::now();
        link.conn.core.start(now, &mut link.conn.out);
        tracing::info!(side, %addr, version = %self.version(), tls = link.conn.is_tls(), "upstream: connected, sending OPEN_REQ");
        let why = match self.drive(&mut link, addr, side, fanout, stop).await {
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
        addr: &str,
        side: &str,
        fanout: &mut Fanout,
        stop: &AtomicBool,
    ) -> Result<(), String> {
        loop {
            // Timers first, every turn: a stream that always has data ready
            // must not starve the heartbeats (the server's idle check).
            let now = Instant::now();
            let Conn { core, out, .. } = &mut link.conn;
            core.on_timer(now, out).map_err(|e| e.to_string())?;
            if core.is_open() {
                fanout.take_upstream_requests(out);
                if fanout.with(|c| c.expire_requests(now)) > 0 {
                    fanout.flush().await;
                }
            }
            link.conn.send_pending().await?;
            if stopping(stop) {
                link.conn.close("upstream").await;
                return Ok(());
            }
            let wait = link
                .conn
                .core
                .next_deadline()
                .map_or(STOP_POLL, |at| at.saturating_duration_since(now))
                .min(STOP_POLL);
            let woke = link.conn.wait(wait, fanout.requests_staged()).await;
            match woke {
                Woke::Timer | Woke::Bell => {}
                Woke::Read(Ok(0)) => return Err("the server closed the connection".into()),
                Woke::Read(Err(e)) => return Err(format!("read: {e}")),
                Woke::Read(Ok(n)) => {
                    link.conn.frames.filled(n);
                    let result = self.on_frames(link, addr, side, fanout).await;
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
        addr: &str,
        side: &str,
        fanout: &mut Fanout,
    ) -> Result<(), String> {
        let version = self.version();
        let now = Instant::now();
        loop {
            let frame = match link.conn.frames.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(e) => return Err(bad_frame(fanout, &e.to_string())),
            };
            match link.conn.core.on_frame(frame, now) {
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
                    fanout.with(|c| {
                        c.upstream_version = version;
                        c.upstream_side = Some(addr.into());
                    });
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
