//! The rules of supervisors' own sessions on ingest's core, sans I/O
//! (docs/requests.md §7; the table is `supervisors`, the task holding each
//! session's socket `supervisor_link`): the downstream OPEN_CONF held until
//! the CTI Server answers the supervisor's own session, its events to that
//! one session, its requests to that session alone, its loss and its end.

use std::sync::Arc;
use std::time::Instant;

use super::core::{IngestCore, Links};
use super::pending::{Asker, Pending, Waiter};
use super::supervisors::{own_params, OwnSession, OwnState};
use crate::event::Event;
use crate::ids::{Services, SessionId};
use crate::link::{OwnOpen, ProxyRequest, SessionOpened, ToShard};
use crate::metrics::Metrics;
use crate::proto::frame::patch_invoke_id;
use crate::proto::msg::OpenConf;
use crate::proto::{routing, RequestError};
use crate::session::client::OpenParams;
use crate::session::server::may_request;
use crate::status::AgentView;
use crate::targets::Targets;

impl<L: Links> IngestCore<L> {
    /// A downstream session granted Supervisor opened (its interest and
    /// service counts are taken): open its own upstream session, and hold
    /// its `OpenAck` until that session answers. Refused at once over
    /// `max_supervisor_sessions` or with the CTI Server offline.
    pub(super) fn supervisor_opened(&mut self, opened: SessionOpened) {
        let (shard, id) = (opened.shard, opened.id);
        let refuse = match &self.upstream_config {
            None => Some(RequestError::NotAvailable),
            Some(_) if self.supervisors.len() >= self.supervisors.max => {
                Metrics::add(&self.metrics.nr_refused_supervisors, 1);
                tracing::warn!(
                    session = %id,
                    max = self.supervisors.max,
                    "supervisor session refused: max_supervisor_sessions reached"
                );
                Some(RequestError::AtSessionLimit)
            }
            Some(_) if self.upstream_side.is_none() => Some(RequestError::ServerOffline),
            Some(_) => None,
        };
        if let Some(error) = refuse {
            return self.stage(shard, ToShard::OpenRefused { session: id, error });
        }
        if let Err(error) = self.take_control(id, opened.services, &opened.client) {
            return self.stage(shard, ToShard::OpenRefused { session: id, error });
        }
        let Some(upstream) = &self.upstream_config else {
            return;
        };
        let params = own_params(upstream, &opened);
        self.supervisors.sessions.insert(
            id,
            OwnSession {
                shard,
                version: opened.version,
                params,
                state: OwnState::Opening,
                out: Vec::new(),
                opening: Some(opened),
            },
        );
        self.supervisors.to_start.push(id);
        self.metrics.supervisor_sessions.store(
            self.supervisors.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// The side a supervisor's upstream session connects to, and what it
    /// opens with: `None` while the bridge session is not open.
    pub fn own_target(&self, session: SessionId) -> Option<(String, OpenParams)> {
        let side = self.upstream_side.clone()?;
        Some((side, self.supervisors.params(session)?))
    }

    /// Its upstream session is open: the first time, the downstream
    /// session's `OpenAck` (OPEN_CONF with the services, MonitorID and
    /// agent the CTI Server gave) and its registration; after a reopen,
    /// nothing (the router's SYSTEM_EVENT told it the CTI Server is back).
    pub fn own_opened(&mut self, session: SessionId, conf: &OpenConf, now: Instant) {
        let Some(own) = self.supervisors.sessions.get_mut(&session) else {
            return;
        };
        if own.state == OwnState::Closing {
            return;
        }
        let granted = Services(conf.services_granted);
        own.state = OwnState::Open { granted };
        let Some(opened) = own.opening.take() else {
            return;
        };
        let agent = AgentView {
            agent_state: conf.agent_state,
            department_id: conf.department_id,
            agent_id: conf.agent_id.clone(),
            agent_extension: conf.agent_extension.clone(),
            agent_instrument: conf.agent_instrument.clone(),
        };
        // Connection Monitor is the router's own; the rest is what the CTI
        // Server granted.
        let services = opened.services & (granted | Services::CONNECTION_MONITOR);
        // Counted with what the shard granted; from here with this.
        self.interest
            .count_session(opened.shard, opened.services, -1);
        self.interest.count_session(opened.shard, services, 1);
        self.stage(
            opened.shard,
            ToShard::OpenAck {
                session,
                agent: Some(agent),
                snapshot: Vec::new(),
                own: Some(OwnOpen {
                    services,
                    monitor_id: conf.monitor_id,
                }),
            },
        );
        tracing::info!(
            session = %session,
            client_id = %opened.client.client_id,
            agent_id = ?opened.client.agent_id.as_ref().map(|a| a.to_string()),
            services_granted = granted.bits(),
            "supervisor session open upstream"
        );
        self.register(SessionOpened { services, ..opened }, now);
    }

    /// Its upstream session was refused (FAILURE_CONF to OPEN_REQ, or no
    /// connection): the first time the downstream OPEN_REQ gets the same
    /// failure; after a reopen the task tries again later.
    pub fn own_refused(&mut self, session: SessionId, error: RequestError) {
        let Some(own) = self.supervisors.sessions.get_mut(&session) else {
            return;
        };
        let Some(opened) = own.opening.take() else {
            if own.state != OwnState::Closing {
                own.state = OwnState::Down;
            }
            return;
        };
        self.supervisors.sessions.remove(&session);
        self.release_control(session, &opened.client);
        tracing::info!(
            session = %session,
            client_id = %opened.client.client_id,
            %error,
            "supervisor session refused upstream"
        );
        self.stage(opened.shard, ToShard::OpenRefused { session, error });
        self.count_supervisors();
    }

    /// Its upstream session was lost: what was in flight on it fails with
    /// FAILURE_CONF(15), nothing is sent again; it is opened again when
    /// the bridge is up.
    pub fn own_lost(&mut self, session: SessionId, now: Instant) {
        let Some(own) = self.supervisors.sessions.get_mut(&session) else {
            return;
        };
        own.out.clear();
        if let OwnState::Open { .. } | OwnState::Opening = own.state {
            own.state = OwnState::Down;
        }
        for p in self.pending.drain_via(session) {
            self.fail_pending(p, RequestError::ServerOffline, now);
        }
    }

    /// The task of `session` ended: forget it.
    pub fn own_ended(&mut self, session: SessionId) {
        if let Some(mut own) = self.supervisors.sessions.remove(&session) {
            if let Some(opened) = own.opening.take() {
                // Never answered (the router is stopping): refuse.
                self.release_control(session, &opened.client);
                let error = RequestError::ServerOffline;
                self.stage(opened.shard, ToShard::OpenRefused { session, error });
            }
        }
        self.count_supervisors();
    }

    /// An event of `session`'s upstream session: to that session alone.
    pub fn own_event(&mut self, session: SessionId, frame: &[u8], now: Instant) {
        let Some(own) = self.supervisors.sessions.get(&session) else {
            return;
        };
        let shard = own.shard;
        self.supervisors.seq += 1;
        let version = self.upstream_version;
        match routing::extract(frame, version) {
            Ok(keys) => {
                let seq = self.supervisors.seq;
                let targets = Targets::default();
                let event = Event::routed(seq, version, frame.into(), now, &keys, targets);
                let event = Arc::new(event);
                self.stage(shard, ToShard::OwnEvent { session, event });
                self.nr_unflushed_events += 1;
            }
            Err(e) => {
                Metrics::add(&self.metrics.nr_bad_upstream_frames, 1);
                tracing::warn!(session = %session, error = %e, "malformed frame on a supervisor's session: dropped");
            }
        }
    }

    /// The downstream session closed: its task closes the upstream session.
    pub(super) fn supervisor_closed(&mut self, session: SessionId) {
        let Some(own) = self.supervisors.sessions.get_mut(&session) else {
            return;
        };
        own.state = OwnState::Closing;
        own.out.clear();
        if let Some(opened) = own.opening.take() {
            // Closed before its upstream answered: it never registered.
            self.release_control(session, &opened.client);
        }
        self.supervisors.to_wake.push(session);
        for p in self.pending.drain_via(session) {
            // Nobody to answer: forget them.
            drop(p);
        }
    }

    /// A request from a supervisor's session: to its own upstream session,
    /// as the CTI Server's own rules decide what it may do there (no router
    /// scope, no local answer, nothing shared with other sessions).
    pub(super) fn proxy_own(&mut self, request: ProxyRequest, now: Instant) {
        let ProxyRequest {
            shard,
            session,
            invoke_id,
            version,
            message_type,
            received,
            ..
        } = request;
        let decoded = request.decode();
        let audit = self.describe_request(session, version, message_type, decoded.as_ref().ok());
        let state = self.supervisors.get(session).map(|own| own.state);
        let refusal = match (state, &decoded) {
            (Some(OwnState::Open { granted }), Ok(_)) if may_request(granted, message_type) => None,
            (Some(OwnState::Open { .. }), Ok(_)) => Some(RequestError::NotAvailable),
            (Some(OwnState::Open { .. }), Err(_)) => Some(RequestError::BadFormat),
            _ => Some(RequestError::ServerOffline),
        };
        let mut frame = Vec::new();
        let encoded = decoded.map(|m| m.encode(self.upstream_version, &mut frame));
        let refusal = match encoded {
            _ if refusal.is_some() => refusal,
            Ok(Ok(_)) => None,
            _ => Some(RequestError::NotAvailable),
        };
        if let Some(error) = refusal {
            return self.refuse_request(&request, audit.as_deref(), error, now);
        }
        if self.pending.is_full() {
            return self.refuse_busy(&request, audit.as_deref(), now);
        }
        let waiter = Waiter {
            asker: Asker::Session {
                shard,
                session,
                invoke_id,
                version,
            },
            since: received,
            audit,
        };
        let mut pending = Pending::new(waiter, message_type, now);
        pending.via = Some(session);
        let upstream_invoke = self.pending.insert(pending);
        patch_invoke_id(&mut frame, upstream_invoke);
        Metrics::add(&self.metrics.nr_requests_proxied, 1);
        if let Some(own) = self.supervisors.sessions.get_mut(&session) {
            own.out.extend_from_slice(&frame);
        }
        self.supervisors.to_wake.push(session);
    }

    fn count_supervisors(&self) {
        self.metrics.supervisor_sessions.store(
            self.supervisors.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}
