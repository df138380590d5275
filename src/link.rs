//! The messages between cores. Ingest and the shards share nothing mutable:
//! everything one core tells another travels as one of these, in order,
//! over the SPSC rings of [`crate::ring`] — [`ToShard`] on each shard's event
//! ring (events and ingest's answers, in upstream stream order), [`ToIngest`]
//! on each shard's control ring (session and monitor changes, in the shard's
//! order). This module sits below both cores; both import it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::event::Event;
use crate::ids::{InvokeId, MonitorId, Services, SessionId};
use crate::keys::InterestKey;
use crate::proto::{RequestError, Version};
use crate::session::server::{ClientInfo, CloseReason};
use crate::status::{AgentView, PgStatus};

/// What ingest sends a shard, in stream order.
pub enum ToShard {
    Event(Arc<Event>),
    /// Ingest registered the session: from here on it gets events. Its
    /// OPEN_CONF says `agent` (a Client Events session's agent, as ingest
    /// last saw it); a Client Monitor session then gets `snapshot` (OPENED
    /// for each open session).
    OpenAck {
        session: SessionId,
        agent: Option<AgentView>,
        snapshot: Vec<Arc<Event>>,
        /// A supervisor's session: what its own upstream session was given
        /// (its events then come only as [`ToShard::OwnEvent`]).
        own: Option<OwnOpen>,
    },
    /// An event of a supervisor's own upstream session (docs/requests.md
    /// §7), for that session alone.
    OwnEvent {
        session: SessionId,
        event: Arc<Event>,
    },
    /// Ingest refused the session after all (its OPEN_REQ gets FAILURE_CONF
    /// with this error, and it is closed).
    OpenRefused {
        session: SessionId,
        error: RequestError,
    },
    /// Ingest's answer to a MONITOR_START_REQ (`Err`: refused, FAILURE_CONF).
    MonitorStartResult {
        session: SessionId,
        invoke_id: InvokeId,
        monitor_id: MonitorId,
        result: Result<(), RequestError>,
    },
    /// Ingest's answer to a SESSION_MONITOR_START_REQ.
    SessionMonitorResult {
        session: SessionId,
        invoke_id: InvokeId,
        monitor_id: MonitorId,
        result: Result<(), RequestError>,
    },
    /// The session a session monitor watched has ended.
    SessionMonitorEnded {
        session: SessionId,
        monitor_id: MonitorId,
    },
    /// The answer to a proxied request (docs/requests.md §5), encoded at the
    /// session's version with the client's InvokeID, in stream order with
    /// the events around it. `ends_request`: the session has one request
    /// fewer in flight.
    Reply {
        session: SessionId,
        frame: Box<[u8]>,
        ends_request: bool,
    },
    /// A new PG status snapshot (for OPEN_CONF and the SYSTEM_EVENTs after it).
    Status(Arc<PgStatus>),
    /// The upstream was lost: call state is unknown now (docs/design.md §4.12).
    UpstreamLost,
    /// Stop accepting, tell every session, flush, exit.
    Shutdown,
}

/// What a supervisor's own upstream session was given in its OPEN_CONF:
/// the downstream session's services (of those it was granted) and the
/// MonitorID its Client Events carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnOpen {
    pub services: Services,
    pub monitor_id: u32,
}

/// What a shard tells ingest (control ring), in the shard's order.
#[derive(Debug)]
pub enum ToIngest {
    /// A session passed its OPEN_REQ checks; ingest answers `OpenAck`.
    SessionOpened(SessionOpened),
    /// A session ended (after `SessionOpened`).
    SessionClosed(SessionClosed),
    /// MONITOR_START_REQ; ingest validates a call monitor's call and answers
    /// `MonitorStartResult` at the point of the stream from which it applies.
    MonitorStart(MonitorStart),
    /// A shard's count for a key went back to 0.
    InterestDown { shard: usize, key: InterestKey },
    /// SESSION_MONITOR_START_REQ for a session that may live on another shard.
    SessionMonitorStart(SessionMonitorStart),
    /// A session monitor was stopped by its owner.
    SessionMonitorStop { monitor_id: MonitorId },
    /// A request to proxy to the CTI Server (or to a registered server
    /// application, or the Server service's own); ingest answers `Reply`.
    Request(ProxyRequest),
    /// A server application's answer to a request ingest sent it
    /// (docs/requests.md §8); ingest answers the requester with `Reply`.
    ServerReply(ServerReply),
}

/// See [`ToIngest::ServerReply`].
#[derive(Debug)]
pub struct ServerReply {
    pub shard: usize,
    /// The server application's session.
    pub session: SessionId,
    /// Its version: `body` is encoded at it.
    pub version: Version,
    pub message_type: u32,
    /// The reply's body (the router's InvokeID first) as the server sent it.
    pub body: Box<[u8]>,
}

/// See [`ToIngest::Request`]: a request the session's checks passed
/// (service granted, known at its version, well formed, within its limit).
#[derive(Debug)]
pub struct ProxyRequest {
    pub shard: usize,
    pub session: SessionId,
    pub invoke_id: InvokeId,
    /// The session's version: `frame` is encoded at it, and so is the reply.
    pub version: Version,
    pub message_type: u32,
    /// The request's body (InvokeID first) as the client sent it.
    pub body: Box<[u8]>,
    /// When its shard read it (its latency counts from here).
    pub received: Instant,
}

impl ProxyRequest {
    /// The request decoded at its session's version (its shard checked
    /// that it decodes).
    pub fn decode(&self) -> Result<crate::proto::Message, crate::proto::Invalid> {
        crate::proto::Message::decode(
            self.message_type,
            &self.body,
            self.version,
            crate::proto::DecodeOptions::STRICT,
        )
    }
}

/// See [`ToIngest::SessionOpened`].
#[derive(Debug)]
pub struct SessionOpened {
    pub shard: usize,
    pub id: SessionId,
    pub peer: SocketAddr,
    pub version: Version,
    pub services: Services,
    pub call_mask: u32,
    pub agent_mask: u32,
    pub client: ClientInfo,
    /// Keys whose count on this shard went 0 → 1 (Client Events).
    pub interest_up: Vec<InterestKey>,
}

/// See [`ToIngest::SessionClosed`].
#[derive(Debug)]
pub struct SessionClosed {
    pub shard: usize,
    pub id: SessionId,
    /// How it ended (CLIENT_SESSION_CLOSED_EVENT's Status).
    pub reason: CloseReason,
    pub services: Services,
    /// Keys whose count on this shard went back to 0.
    pub interest_down: Vec<InterestKey>,
}

/// See [`ToIngest::MonitorStart`].
#[derive(Debug)]
pub struct MonitorStart {
    pub shard: usize,
    pub session: SessionId,
    pub invoke_id: InvokeId,
    pub monitor_id: MonitorId,
    pub key: InterestKey,
    /// The shard's count for `key` went 0 → 1 with this request.
    pub first: bool,
}

/// See [`ToIngest::SessionMonitorStart`].
#[derive(Debug)]
pub struct SessionMonitorStart {
    pub shard: usize,
    pub session: SessionId,
    pub invoke_id: InvokeId,
    pub monitor_id: MonitorId,
    pub target: SessionId,
}
