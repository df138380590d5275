//! The task that holds one supervisor's own session on the CTI Server
//! (docs/requests.md §7) on the ingest core: it connects to the side the
//! bridge session is open on, opens with the supervisor's identity,
//! heartbeats, writes the requests ingest staged for it, and hands what
//! comes back to ingest's core (`supervisors`): OPEN_CONF or FAILURE_CONF,
//! events for the downstream session alone, replies through the pending
//! table. Lost, it waits for the bridge and opens again with backoff; it
//! ends with CLOSE_REQ when the downstream session closes or the router
//! stops.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bell::Bell;
use super::upstream_conn::{until_stopped, Conn, Connected, Connector, Woke};
use super::{stopping, Fanout, STOP_POLL};
use crate::ids::SessionId;
use crate::proto::RequestError;
use crate::session::backoff::Backoff;
use crate::session::client::{ClientError, Inbound};

/// The supervisors' tasks of one ingest executor: how they connect, the
/// stop flag, and the bell of each.
pub struct Links {
    connector: Rc<Connector>,
    stop: Arc<AtomicBool>,
    bells: RefCell<HashMap<SessionId, Rc<Bell>>>,
}

impl Links {
    pub fn new(connector: Rc<Connector>, stop: Arc<AtomicBool>) -> Links {
        Links {
            connector,
            stop,
            bells: RefCell::default(),
        }
    }

    /// Start the tasks of the sessions ingest's core asked for, and ring
    /// the bells of those it staged requests for or closed.
    pub fn serve(self: &Rc<Self>, fanout: &Fanout) {
        let (start, wake) = fanout.with(|core| {
            let s = &mut core.supervisors;
            (
                std::mem::take(&mut s.to_start),
                std::mem::take(&mut s.to_wake),
            )
        });
        for session in start {
            let bell = Rc::new(Bell::default());
            self.bells.borrow_mut().insert(session, bell.clone());
            let links = self.clone();
            let fanout = fanout.clone();
            glommio::spawn_local(async move {
                OwnLink {
                    session,
                    bell,
                    backoff: links.backoff(),
                }
                .run(&links, fanout)
                .await;
                links.bells.borrow_mut().remove(&session);
            })
            .detach();
        }
        for session in wake {
            if let Some(bell) = self.bells.borrow().get(&session) {
                bell.ring();
            }
        }
    }

    fn backoff(&self) -> Backoff {
        let config = self.connector.config();
        Backoff::from_clock(
            Duration::from_millis(config.reconnect_min_ms),
            Duration::from_millis(config.reconnect_max_ms),
        )
    }
}

/// One supervisor's upstream session.
struct OwnLink {
    session: SessionId,
    bell: Rc<Bell>,
    backoff: Backoff,
}

/// Why a connection ended.
enum Ended {
    /// The downstream session closed or the router stops: CLOSE_REQ sent.
    Done,
    /// Lost (or refused), with why.
    Lost(String),
}

impl OwnLink {
    async fn run(mut self, links: &Links, mut fanout: Fanout) {
        let session = self.session;
        loop {
            if self.done(links, &fanout) {
                break;
            }
            let Some((side, params)) = fanout.with(|c| c.own_target(session)) else {
                // The bridge is not open (or this session is gone): wait.
                let wait = glommio::timer::sleep(STOP_POLL * 5);
                futures_lite::future::or(wait, self.bell.wait()).await;
                continue;
            };
            let connected = links.connector.connect(&side, params, &links.stop).await;
            let ended = match connected {
                Connected::Stopped => break,
                Connected::Failed(why) => {
                    fanout.with(|c| c.own_refused(session, RequestError::ServerOffline));
                    Ended::Lost(why)
                }
                Connected::Up(mut conn) => {
                    conn.core.start(Instant::now(), &mut conn.out);
                    let ended = self.drive(&mut conn, links, &mut fanout).await;
                    if let Ended::Done = ended {
                        conn.close(&format!("supervisor session {session}")).await;
                    }
                    ended
                }
            };
            if let Ended::Lost(why) = ended {
                tracing::info!(session = %session, %side, %why, "supervisor session upstream ended");
                fanout.with(|c| c.own_lost(session, Instant::now()));
            }
            fanout.flush().await;
            if self.done(links, &fanout) {
                break;
            }
            let delay = self.backoff.next_delay();
            let _ = until_stopped(
                &links.stop,
                futures_lite::future::or(glommio::timer::sleep(delay), self.bell.wait()),
            )
            .await;
        }
        fanout.with(|c| c.own_ended(session));
        fanout.flush().await;
    }

    fn done(&self, links: &Links, fanout: &Fanout) -> bool {
        stopping(&links.stop) || fanout.with(|c| c.supervisors.is_done(self.session))
    }

    /// Read, time and write until the connection ends.
    async fn drive(&mut self, conn: &mut Conn, links: &Links, fanout: &mut Fanout) -> Ended {
        let session = self.session;
        loop {
            let now = Instant::now();
            if let Err(e) = conn.core.on_timer(now, &mut conn.out) {
                return self.failed(e, fanout);
            }
            if self.done(links, fanout) {
                return Ended::Done;
            }
            if conn.core.is_open() {
                fanout.with(|c| c.supervisors.take_requests(session, &mut conn.out));
            }
            if let Err(why) = conn.send_pending().await {
                return Ended::Lost(why);
            }
            let wait = conn
                .core
                .next_deadline()
                .map_or(STOP_POLL, |at| at.saturating_duration_since(now))
                .min(STOP_POLL);
            let woke = conn.wait(wait, self.bell.wait()).await;
            match woke {
                Woke::Timer | Woke::Bell => continue,
                Woke::Read(Ok(0)) => return Ended::Lost("the server closed the connection".into()),
                Woke::Read(Err(e)) => return Ended::Lost(format!("read: {e}")),
                Woke::Read(Ok(n)) => conn.frames.filled(n),
            }
            let ended = self.on_frames(conn, fanout);
            fanout.flush().await;
            if let Some(ended) = ended {
                return ended;
            }
        }
    }

    /// Every whole frame of one read, to ingest's core.
    fn on_frames(&mut self, conn: &mut Conn, fanout: &Fanout) -> Option<Ended> {
        let session = self.session;
        let now = Instant::now();
        loop {
            let frame = match conn.frames.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return None,
                Err(e) => return Some(Ended::Lost(format!("malformed frame: {e}"))),
            };
            match conn.core.on_frame(frame, now) {
                Ok(Inbound::Opened(conf)) => {
                    self.backoff.reset();
                    fanout.with(|c| c.own_opened(session, &conf, now));
                }
                Ok(Inbound::Event(frame)) => fanout.with(|c| c.own_event(session, frame, now)),
                Ok(Inbound::Reply { invoke_id, frame }) => {
                    fanout.upstream_reply(invoke_id, frame, now)
                }
                Ok(Inbound::Heartbeat { .. } | Inbound::Handled | Inbound::Closed) => {}
                Err(e) => return Some(self.failed(e, fanout)),
            }
        }
    }

    /// The client core gave up: a refused open answers the downstream
    /// OPEN_REQ with the CTI Server's status (the first time).
    fn failed(&self, error: ClientError, fanout: &Fanout) -> Ended {
        let refusal = match error {
            ClientError::Refused { status } => RequestError::Upstream(status),
            ClientError::OpenTimedOut => RequestError::Timeout,
            _ => RequestError::ServerOffline,
        };
        fanout.with(|c| c.own_refused(self.session, refusal));
        Ended::Lost(error.to_string())
    }
}
