//! The control rules of ingest's core: answers to the shards' control rings:
//! session opens and closes (interest, service counts, Client Monitor events
//! and snapshots), monitor starts (validated, acknowledged in stream order),
//! interest drops and session monitors. Replies travel in the same ordered
//! rings as events, so a monitor applies exactly from the point of the stream
//! where ingest accepted it: no event that reached ingest after that point
//! can miss it.

use std::sync::Arc;
use std::time::Instant;

use smallvec::SmallVec;

use super::core::{Control, IngestCore, Links};
use super::registry::{closed_event, opened_event, SessionMonitor, SessionRecord};
use crate::event::Event;
use crate::ids::{Services, SessionId};
use crate::keys::InterestKey;
use crate::link::{
    MonitorStart, SessionClosed, SessionMonitorStart, SessionOpened, ToIngest, ToShard,
};
use crate::metrics::Metrics;
use crate::proto::{RequestError, Version};
use crate::session::server::{ClientInfo, CloseReason};

impl<L: Links> IngestCore<L> {
    /// One control message from a shard, in that shard's order, taken at `now`.
    pub fn on_control(&mut self, item: ToIngest, now: Instant) {
        match item {
            ToIngest::SessionOpened(opened) => self.session_opened(opened, now),
            ToIngest::SessionClosed(closed) => self.session_closed(closed, now),
            ToIngest::MonitorStart(start) => self.monitor_start(start),
            ToIngest::InterestDown { shard, key } => self.interest.down(shard, key),
            ToIngest::SessionMonitorStart(start) => self.session_monitor_start(start),
            ToIngest::SessionMonitorStop { monitor_id } => self.registry.remove_monitor(monitor_id),
            ToIngest::Request(request) => self.proxy_request(request, now),
            ToIngest::ServerReply(reply) => self.server_reply(reply, now),
        }
    }

    /// A session is open: count its interest and services, answer `OpenAck`
    /// (with its agent as last seen, and the Client Monitor snapshot), tell
    /// Client Monitor sessions. A supervisor's session is answered when
    /// its own upstream session is (`supervisors`).
    fn session_opened(&mut self, opened: SessionOpened, now: Instant) {
        for &key in &opened.interest_up {
            self.interest.up(opened.shard, key);
        }
        self.interest
            .count_session(opened.shard, opened.services, 1);
        if opened.services.contains(Services::SUPERVISOR) {
            return self.supervisor_opened(opened);
        }
        let (shard, id) = (opened.shard, opened.id);
        if let Err(error) = self.take_control(id, opened.services, &opened.client) {
            // Its shard closes it and reports that like any close.
            self.stage(shard, ToShard::OpenRefused { session: id, error });
            return;
        }
        let snapshot = if opened.services.contains(Services::CLIENT_MONITOR) {
            self.registry.opened_events().filter_map(event_of).collect()
        } else {
            Vec::new()
        };
        let agent = if opened.services.contains(Services::CLIENT_EVENTS) {
            opened
                .client
                .agent_key()
                .and_then(|key| self.tracker.agents.view(key))
        } else {
            None
        };
        self.stage(
            shard,
            ToShard::OpenAck {
                session: id,
                agent,
                snapshot,
                own: None,
            },
        );
        self.register(opened, now);
    }

    /// An open session answered with `OpenAck`: in the registry, and told
    /// to Client Monitor and Connection Monitor.
    pub(super) fn register(&mut self, opened: SessionOpened, now: Instant) {
        let SessionOpened {
            shard,
            id,
            peer,
            version,
            services,
            call_mask,
            agent_mask,
            client,
            ..
        } = opened;
        let record = SessionRecord {
            shard,
            peer,
            version,
            services,
            call_mask,
            agent_mask,
            client,
        };
        self.push_message(opened_event(id, &record), now);
        if record.services.contains(Services::CONNECTION_MONITOR) {
            Metrics::add(&self.metrics.nr_connection_monitor_opens, 1);
            connection_monitor_line(id, &record, None);
        }
        self.registry.insert(id, record);
    }

    /// A Client Events session granted Client Control controls its
    /// instrument (docs/requests.md §4): one held by a session of another
    /// ClientID is refused with E_CTI_DEVICE_IN_USE; sessions of one
    /// ClientID may share it.
    pub(super) fn take_control(
        &mut self,
        id: SessionId,
        services: Services,
        client: &ClientInfo,
    ) -> Result<(), RequestError> {
        let controls = services.contains(Services::CLIENT_EVENTS)
            && (services.contains(Services::CLIENT_CONTROL)
                || services.contains(Services::AGENT_STATE_CONTROL_ONLY));
        let instrument = client.agent_instrument.as_ref().filter(|i| !i.is_empty());
        let (true, Some(instrument)) = (controls, instrument) else {
            return Ok(());
        };
        let control = self
            .controllers
            .entry(instrument.as_bytes().into())
            .or_insert_with(|| Control {
                client_id: client.client_id.clone(),
                sessions: SmallVec::new(),
            });
        if control.client_id != client.client_id {
            return Err(RequestError::DeviceInUse);
        }
        control.sessions.push(id);
        Ok(())
    }

    /// A session that closed lets go of the instrument it controlled (the
    /// one its OPEN_REQ named: [`Self::take_control`] keys it so).
    pub(super) fn release_control(&mut self, id: SessionId, client: &ClientInfo) {
        let Some(instrument) = client.agent_instrument.as_ref() else {
            return;
        };
        let key = instrument.as_bytes();
        if let Some(control) = self.controllers.get_mut(key) {
            control.sessions.retain(|s| *s != id);
            if control.sessions.is_empty() {
                self.controllers.remove(key);
            }
        }
    }

    /// A session ended: drop its interest, end the session monitors that
    /// watched it, tell Client Monitor sessions.
    fn session_closed(&mut self, closed: SessionClosed, now: Instant) {
        let SessionClosed {
            shard,
            id,
            reason,
            services,
            interest_down,
        } = closed;
        for key in interest_down {
            self.interest.down(shard, key);
        }
        self.release_closed_writer(id, now);
        self.server_session_closed(id, now);
        self.supervisor_closed(id);
        self.interest.count_session(shard, services, -1);
        let (record, ended) = self.registry.remove(id);
        if let Some(record) = &record {
            self.release_control(id, &record.client);
        }
        for m in ended {
            self.stage(
                m.shard,
                ToShard::SessionMonitorEnded {
                    session: m.observer,
                    monitor_id: m.monitor_id,
                },
            );
        }
        if let Some(record) = record {
            if record.services.contains(Services::CONNECTION_MONITOR) {
                Metrics::add(&self.metrics.nr_connection_monitor_closes, 1);
                connection_monitor_line(id, &record, Some(reason));
            }
            self.push_message(closed_event(id, &record, reason), now);
        }
    }

    /// MONITOR_START_REQ: a call monitor needs a call ingest knows; the
    /// answer is staged at this point of the stream, where the monitor starts.
    fn monitor_start(&mut self, start: MonitorStart) {
        let result = match start.key {
            InterestKey::Call(call) if !self.tracker.knows_call(call) => {
                Err(RequestError::InvalidCallId)
            }
            _ => Ok(()),
        };
        if result.is_ok() && start.first {
            self.interest.up(start.shard, start.key);
        }
        self.stage(
            start.shard,
            ToShard::MonitorStartResult {
                session: start.session,
                invoke_id: start.invoke_id,
                monitor_id: start.monitor_id,
                result,
            },
        );
    }

    /// SESSION_MONITOR_START_REQ: the target must be another open session.
    fn session_monitor_start(&mut self, start: SessionMonitorStart) {
        let result = if self.registry.contains(start.target) && start.target != start.session {
            self.registry.add_monitor(SessionMonitor {
                monitor_id: start.monitor_id,
                shard: start.shard,
                observer: start.session,
                target: start.target,
            });
            Ok(())
        } else {
            Err(RequestError::InvalidMonitorId)
        };
        self.stage(
            start.shard,
            ToShard::SessionMonitorResult {
                session: start.session,
                invoke_id: start.invoke_id,
                monitor_id: start.monitor_id,
                result,
            },
        );
    }
}

/// The tracing target of Connection Monitor lines: the CTI Server raises an
/// alarm when such a client's session ends; the router writes this line
/// (and counts it) at its open and at its end (docs/requests.md §1).
pub const CONNECTION_MONITOR_TARGET: &str = "ctirouter::connection_monitor";

/// One Connection Monitor line: who (ClientID, signature, address, agent),
/// and at the end how the session ended. An end other than the client's
/// CLOSE_REQ is a warning: that is what the service exists to report.
fn connection_monitor_line(id: SessionId, record: &SessionRecord, ended: Option<CloseReason>) {
    let c = &record.client;
    let client_id = String::from_utf8_lossy(c.client_id.as_bytes());
    let signature = String::from_utf8_lossy(c.client_signature.as_bytes());
    let instrument = c
        .agent_instrument
        .as_ref()
        .map(|i| String::from_utf8_lossy(i.as_bytes()).into_owned())
        .unwrap_or_default();
    let peer = record.peer;
    let session = id.0;
    match ended {
        None => tracing::info!(
            target: CONNECTION_MONITOR_TARGET,
            session, %client_id, %signature, %peer, %instrument,
            "connection-monitored session opened"
        ),
        Some(reason @ CloseReason::ClientClose) => tracing::info!(
            target: CONNECTION_MONITOR_TARGET,
            session, %client_id, %signature, %peer, %instrument,
            ended = ?reason, status = reason.status(),
            "connection-monitored session closed by its client"
        ),
        Some(reason) => tracing::warn!(
            target: CONNECTION_MONITOR_TARGET,
            session, %client_id, %signature, %peer, %instrument,
            ended = ?reason, status = reason.status(),
            "connection-monitored session lost"
        ),
    }
}

/// A router-made message as an event (for a Client Monitor snapshot).
fn event_of(message: crate::proto::Message) -> Option<Arc<Event>> {
    let frame = message.to_frame(Version::MAX).ok()?;
    Event::new(0, Version::MAX, frame.into_boxed_slice())
        .ok()
        .map(Arc::new)
}
