//! One client of `sim-pg`: its mio socket, the router's sans-IO session
//! state machine (`session::server::Session`: OPEN checks and grants,
//! heartbeat, close, bad input, the checks on requests), its read buffer
//! and its bounded output. What the session layer hands on — a session
//! that opened, a request that passed its checks — goes to the server
//! through [`Host`]; the server loop decides what to send; this file moves
//! the bytes.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use crate::ids::{InvokeId, MonitorId, SessionId};
use crate::proto::transcode::{patch_agent_session_id, patch_monitor_id};
use crate::proto::{frame, RequestError};
use crate::session::frames::FrameBuffer;
use crate::session::server::{
    failure_conf, CloseReason, Context, Outcome, Phase, Request, Session,
};

/// How long a closing client may take to read its last bytes.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Why a client is being dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// EOF or a socket error.
    Disconnected,
    /// Its unsent output passed the bound.
    TooSlow,
    /// The session ended (CLOSE_REQ, refused OPEN, bad framing, idle) and
    /// its last bytes were written or the grace ran out.
    Closed,
}

/// What the server does for a client's session beyond the session layer.
pub trait Host {
    /// The session passed its OPEN_REQ checks: append its OPEN_CONF (and
    /// what follows it), or refuse it (append the FAILURE_CONF, set the
    /// session closing) and return `false`.
    fn opened(&mut self, session: &mut Session, out: &mut Vec<u8>) -> bool;
    /// A request of a granted service passed the session's checks
    /// (`Outcome::Proxy`; `body` as the client sent it, at the session's
    /// version): take it, or answer it now in `out`. Either way the
    /// session's request ends with [`Session::request_done`] once its
    /// answer is sent or given up.
    fn request(
        &mut self,
        session: &mut Session,
        message_type: u32,
        invoke_id: InvokeId,
        body: &[u8],
        out: &mut Vec<u8>,
    );
}

/// One connected client.
pub struct SimClient {
    stream: TcpStream,
    pub session: Session,
    frames: FrameBuffer,
    /// Output; `out[sent..]` is not written yet.
    out: Vec<u8>,
    sent: usize,
    /// When the session started closing.
    closing_since: Option<Instant>,
    gone: Option<Gone>,
}

impl SimClient {
    pub fn new(stream: TcpStream, id: SessionId, peer: SocketAddr, now: Instant) -> SimClient {
        SimClient {
            stream,
            session: Session::new(id, peer, now),
            frames: FrameBuffer::for_client(),
            out: Vec::with_capacity(4096),
            sent: 0,
            closing_since: None,
            gone: None,
        }
    }

    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Unsent bytes.
    pub fn pending(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Whether events go to this client now.
    pub fn is_open(&self) -> bool {
        self.gone.is_none() && self.session.is_open()
    }

    /// Read all that is there and run every whole frame through the session.
    pub fn on_readable(&mut self, ctx: &Context<'_>, now: Instant, host: &mut dyn Host) {
        while self.gone.is_none() {
            match self.stream.read(self.frames.spare()) {
                Ok(0) => self.gone = Some(Gone::Disconnected),
                Ok(n) => {
                    self.frames.filled(n);
                    self.on_frames(ctx, now, host);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => self.gone = Some(Gone::Disconnected),
            }
        }
    }

    fn on_frames(&mut self, ctx: &Context<'_>, now: Instant, host: &mut dyn Host) {
        while self.closing_since.is_none() {
            let whole = match self.frames.next_frame() {
                Ok(Some(whole)) => whole,
                Ok(None) => return,
                Err(_) => {
                    // A length over the limit: the stream cannot be resynchronised.
                    self.session.on_framing_error(&mut self.out);
                    self.closing_since = Some(now);
                    return;
                }
            };
            let Ok((parsed, _)) = frame::parse(whole) else {
                return;
            };
            match self.session.on_frame(parsed, ctx, now, &mut self.out) {
                Outcome::Opened => {
                    if !host.opened(&mut self.session, &mut self.out) {
                        self.closing_since = Some(now);
                    }
                }
                // sim-pg grants no Server service: no server replies.
                Outcome::Continue | Outcome::Refused { .. } | Outcome::ServerReply { .. } => {}
                Outcome::Close(_) => self.closing_since = Some(now),
                Outcome::Proxy {
                    message_type,
                    invoke_id,
                } => host.request(
                    &mut self.session,
                    message_type,
                    invoke_id,
                    parsed.body,
                    &mut self.out,
                ),
                Outcome::Request(request) => {
                    // sim-pg grants neither Peripheral nor Client Monitor.
                    let version = self.session.version;
                    failure_conf(
                        &mut self.out,
                        version,
                        invoke_id(&request),
                        RequestError::NotAvailable,
                    );
                }
            }
        }
    }

    /// Queue bytes for the client; past `bound` unsent bytes it is dropped.
    /// Returns whether they were queued.
    pub fn queue(&mut self, bytes: &[u8], bound: usize) -> bool {
        if self.pending() + bytes.len() > bound {
            tracing::info!(
                session = %self.session.id,
                bound,
                "sim-pg: slow client dropped"
            );
            self.gone = Some(Gone::TooSlow);
            return false;
        }
        self.out.extend_from_slice(bytes);
        true
    }

    /// Queue a Client Events copy of an event: its MonitorID, and for an
    /// AGENT_STATE_EVENT (`session` given) the session's id, patched in.
    pub fn queue_monitor_copy(
        &mut self,
        bytes: &[u8],
        monitor_id: MonitorId,
        session: Option<SessionId>,
        bound: usize,
    ) {
        let start = self.out.len();
        if !self.queue(bytes, bound) {
            return;
        }
        let copy = &mut self.out[start..];
        patch_monitor_id(copy, monitor_id.0);
        if let Some(session) = session {
            patch_agent_session_id(copy, session.0);
        }
    }

    /// Queue the answer to one of the session's requests: one fewer in flight.
    pub fn queue_answer(&mut self, bytes: &[u8], bound: usize) {
        self.session.request_done();
        self.queue(bytes, bound);
    }

    /// End an open session for idle timeout (FAILURE_EVENT, then close).
    pub fn check_idle(&mut self, now: Instant) {
        if self.session.idle_expired(now) {
            self.session
                .end_with_failure_event(CloseReason::IdleTimeout, &mut self.out);
            self.closing_since = Some(now);
        }
    }

    /// Write until done or the socket would block.
    pub fn flush(&mut self) {
        while self.gone.is_none() && self.sent < self.out.len() {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(0) => self.gone = Some(Gone::Disconnected),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => self.gone = Some(Gone::Disconnected),
            }
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        } else if self.sent > self.out.len() / 2 {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
    }

    /// Why the client should be dropped now, if it should.
    pub fn gone(&self, now: Instant) -> Option<Gone> {
        if self.gone.is_some() {
            return self.gone;
        }
        let since = self.closing_since?;
        let flushed = self.pending() == 0;
        (flushed || now.duration_since(since) >= CLOSE_GRACE).then_some(Gone::Closed)
    }

    /// The stop flag: tell the client the server is going away.
    pub fn shut_down(&mut self, now: Instant) {
        if self.session.phase == Phase::Open {
            self.session
                .end_with_failure_event(CloseReason::Shutdown, &mut self.out);
        }
        self.closing_since.get_or_insert(now);
    }
}

/// The InvokeID of a request the session decoded.
fn invoke_id(request: &Request) -> InvokeId {
    match *request {
        Request::MonitorStart { invoke_id, .. }
        | Request::MonitorStop { invoke_id, .. }
        | Request::ChangeMonitorMask { invoke_id, .. }
        | Request::SessionMonitorStart { invoke_id, .. }
        | Request::SessionMonitorStop { invoke_id, .. } => invoke_id,
    }
}
