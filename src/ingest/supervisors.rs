//! Supervisors' own upstream sessions (docs/requests.md §7), sans I/O.
//!
//! The CTI Server decides who is a supervisor and which agents form the
//! team, and it sends the team's configuration, assist requests and the
//! team's agent states to the supervisor's own session. So a downstream
//! session granted Supervisor is a pass-through session: ingest opens a
//! session on the CTI Server for it (its agent, Client Events + Supervisor
//! and the request services it was granted, ClientSignature `ctirouter:`
//! and its ClientID), on the side the bridge session is open on, and:
//!
//! * that session's OPEN_CONF or FAILURE_CONF decides the downstream
//!   answer (ingest holds the `OpenAck` until then);
//! * its events go to the downstream session alone ([`ToShard::OwnEvent`]),
//!   and the bridge's events do not (the shard never indexes it);
//! * the downstream session's requests go to it, InvokeIDs remapped through
//!   the one pending table, so its replies come back as any proxied reply;
//! * it closes when the downstream session closes, and after a failover it
//!   is opened again (the downstream session stays, and hears
//!   SYSTEM_EVENT offline/online from the router as every session does).
//!
//! This file holds the table; `supervisor_sessions` the rules on ingest's
//! core; `supervisor_link` the task that owns each session's socket. The
//! data path stays one straight walk: the socket's frame →
//! `IngestCore::own_event` → the session's shard ring → its socket.

use std::collections::HashMap;

use crate::config::UpstreamConfig;
use crate::ids::{Services, SessionId};
use crate::link::SessionOpened;
use crate::proto::Version;
use crate::session::client::{OpenParams, CLIENT_SIGNATURE};

/// The supervisors' sessions, by downstream session.
#[derive(Debug)]
pub struct Supervisors {
    pub(super) sessions: HashMap<SessionId, OwnSession>,
    /// `[limits] max_supervisor_sessions`.
    pub(super) max: usize,
    /// Sessions whose upstream session the driver must start.
    pub to_start: Vec<SessionId>,
    /// Sessions whose task must look again: requests staged, or closing.
    pub to_wake: Vec<SessionId>,
    /// Sequence numbers of the events their sessions carried.
    pub(super) seq: u64,
}

/// One supervisor's upstream session, as ingest sees it.
#[derive(Debug)]
pub struct OwnSession {
    pub shard: usize,
    /// The downstream session's version (its replies are re-encoded at it).
    pub version: Version,
    /// What its OPEN_REQ upstream asks for.
    pub params: OpenParams,
    pub state: OwnState,
    /// Request frames staged for it, at the upstream's version.
    pub out: Vec<u8>,
    /// The downstream session's open as its shard reported it, until the
    /// upstream answers (`None` once `OpenAck` or `OpenRefused` is staged).
    pub(super) opening: Option<SessionOpened>,
}

/// Where a supervisor's upstream session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnState {
    /// Connecting or waiting for OPEN_CONF.
    Opening,
    /// Open with what the CTI Server granted it.
    Open { granted: Services },
    /// Lost (or refused on a reopen): opened again when the bridge is up.
    Down,
    /// The downstream session closed: the task closes its upstream
    /// session and ends.
    Closing,
}

impl Supervisors {
    pub fn new(max: usize) -> Supervisors {
        Supervisors {
            sessions: HashMap::new(),
            max,
            to_start: Vec::new(),
            to_wake: Vec::new(),
            seq: 0,
        }
    }

    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn get(&self, session: SessionId) -> Option<&OwnSession> {
        self.sessions.get(&session)
    }

    pub fn contains(&self, session: SessionId) -> bool {
        self.sessions.contains_key(&session)
    }

    /// Whether the task of `session` must close its upstream session and
    /// end (the downstream session closed, or its open was refused).
    pub fn is_done(&self, session: SessionId) -> bool {
        self.sessions
            .get(&session)
            .is_none_or(|s| s.state == OwnState::Closing)
    }

    /// What `session`'s upstream session opens with, while it still has one.
    pub fn params(&self, session: SessionId) -> Option<OpenParams> {
        self.sessions.get(&session).map(|s| s.params.clone())
    }

    /// Take the request frames staged for `session`'s upstream session.
    pub fn take_requests(&mut self, session: SessionId, out: &mut Vec<u8>) {
        if let Some(own) = self.sessions.get_mut(&session) {
            out.append(&mut own.out);
        }
    }
}

/// What a supervisor's upstream session asks for: the supervisor's agent
/// (the downstream OPEN_REQ's), the services it was granted that the CTI
/// Server serves a session, its masks, the router's ClientID and password,
/// and ClientSignature `ctirouter:` + its ClientID.
pub fn own_params(upstream: &UpstreamConfig, opened: &SessionOpened) -> OpenParams {
    let base = OpenParams::upstream(upstream);
    let client = &opened.client;
    let own = Services(opened.services.bits() & !Services::CONNECTION_MONITOR.bits());
    OpenParams {
        services: own & Services::SUPERVISOR_SESSION,
        call_mask: opened.call_mask,
        agent_mask: opened.agent_mask,
        peripheral_id: client.peripheral_id,
        agent_id: client.agent_id.as_ref().map(|a| a.to_string()),
        agent_extension: client.agent_extension.as_ref().map(|a| a.to_string()),
        agent_instrument: client.agent_instrument.as_ref().map(|a| a.to_string()),
        signature: format!("{CLIENT_SIGNATURE}:{}", client.client_id),
        ..base
    }
}
