//! Monitor requests in the shard core (docs/design.md §4 items 9–11):
//! MONITOR_START/STOP, CHANGE_MONITOR_MASK, SESSION_MONITOR_START/STOP, the
//! Client Events registration made at OPEN, and ingest's answers. Starts go
//! through ingest so a monitor applies from a definite point of the event
//! stream; stops and mask changes are local.

use super::core::{next_monitor_id, Sessions, ShardCore};
use super::monitors::{Monitor, Watch};
use crate::ids::{InvokeId, MonitorId, SessionId};
use crate::keys::InterestKey;
use crate::link::{self, ToIngest};
use crate::proto::msg::{ChangeMonitorMaskConf, MonitorStartConf, MonitorStopConf};
use crate::proto::msg::{SessionMonitorStartConf, SessionMonitorStopConf};
use crate::proto::{Message, RequestError, Version};
use crate::session::server::{failure_conf, reply, MonitorTarget, Request};

impl Sessions {
    /// Append a reply to session `id`'s output, hold it to its output bound
    /// and wake its writer.
    pub(super) fn answer(&mut self, id: SessionId, f: impl FnOnce(&mut Vec<u8>, Version)) {
        let Some(slot) = self.slot_of(id) else {
            return;
        };
        if let Some(conn) = self.at_mut(slot) {
            let version = conn.session.version;
            f(&mut conn.out.local, version);
        }
        if !self.bound_output(slot) {
            self.wake.push(id);
        }
    }

    fn confirm(&mut self, id: SessionId, message: impl Into<Message>) {
        let message = message.into();
        self.answer(id, |out, v| reply(out, v, message));
    }

    fn fail(&mut self, id: SessionId, invoke_id: InvokeId, error: RequestError) {
        self.answer(id, |out, v| failure_conf(out, v, invoke_id, error));
    }
}

impl ShardCore {
    /// Carry out one request of session `id`.
    pub fn on_request(&mut self, id: SessionId, request: Request) {
        match request {
            Request::MonitorStart {
                invoke_id,
                target,
                call_mask,
                agent_mask,
            } => self.monitor_start(id, invoke_id, target, (call_mask, agent_mask)),
            Request::MonitorStop {
                invoke_id,
                monitor_id,
            } => self.monitor_stop(id, invoke_id, monitor_id),
            Request::ChangeMonitorMask {
                invoke_id,
                monitor_id,
                call_mask,
                agent_mask,
            } => self.change_monitor_mask(id, invoke_id, monitor_id, (call_mask, agent_mask)),
            Request::SessionMonitorStart {
                invoke_id,
                session_id,
            } => self.session_monitor_start(id, invoke_id, session_id),
            Request::SessionMonitorStop {
                invoke_id,
                monitor_id,
            } => self.session_monitor_stop(id, invoke_id, monitor_id),
        }
    }

    /// MONITOR_START_REQ: counted at once (so ingest learns the key with the
    /// request), answered when ingest has placed it in the stream.
    fn monitor_start(
        &mut self,
        id: SessionId,
        invoke_id: InvokeId,
        target: MonitorTarget,
        masks: (u32, u32),
    ) {
        let watch = match target {
            MonitorTarget::Call(c) => Watch::Call(c),
            MonitorTarget::Device(d) => Watch::Device(d),
        };
        let monitor = Monitor {
            id: next_monitor_id(),
            session: id,
            watch,
            call_mask: masks.0,
            agent_mask: masks.1,
            client_events: false,
            calls: Default::default(),
        };
        let key = monitor.watch.keys()[0];
        let first = self.monitors.count_up(key);
        let monitor_id = monitor.id;
        self.pending_monitors.insert(monitor_id, monitor);
        self.to_ingest
            .push(ToIngest::MonitorStart(link::MonitorStart {
                shard: self.index,
                session: id,
                invoke_id,
                monitor_id,
                key,
                first,
            }));
    }

    fn monitor_stop(&mut self, id: SessionId, invoke_id: InvokeId, monitor_id: MonitorId) {
        if !self.owns(id, monitor_id) {
            return self
                .sessions
                .fail(id, invoke_id, RequestError::InvalidMonitorId);
        }
        self.remove_monitor(monitor_id);
        self.sessions.confirm(
            id,
            MonitorStopConf {
                invoke_id: invoke_id.0,
            },
        );
    }

    fn change_monitor_mask(
        &mut self,
        id: SessionId,
        invoke_id: InvokeId,
        monitor_id: MonitorId,
        masks: (u32, u32),
    ) {
        if !self.owns(id, monitor_id) {
            return self
                .sessions
                .fail(id, invoke_id, RequestError::InvalidMonitorId);
        }
        if let Some(m) = self.monitors.get_mut(monitor_id) {
            (m.call_mask, m.agent_mask) = masks;
        }
        self.sessions.confirm(
            id,
            ChangeMonitorMaskConf {
                invoke_id: invoke_id.0,
            },
        );
    }

    /// SESSION_MONITOR_START_REQ: the watched session may live on another
    /// shard, so ingest decides and answers.
    fn session_monitor_start(&mut self, id: SessionId, invoke_id: InvokeId, target: SessionId) {
        if target == id {
            return self
                .sessions
                .fail(id, invoke_id, RequestError::SessionMonitorIsClients);
        }
        let Some(conn) = self.sessions.get_mut(id) else {
            return;
        };
        if conn.session_monitors.iter().any(|&(_, t)| t == target) {
            return self
                .sessions
                .fail(id, invoke_id, RequestError::SessionMonitorExists);
        }
        let monitor_id = next_monitor_id();
        // Reserved now so a second request for the same session is refused (56).
        conn.session_monitors.push((monitor_id, target));
        self.to_ingest
            .push(ToIngest::SessionMonitorStart(link::SessionMonitorStart {
                shard: self.index,
                session: id,
                invoke_id,
                monitor_id,
                target,
            }));
    }

    fn session_monitor_stop(&mut self, id: SessionId, invoke_id: InvokeId, monitor_id: MonitorId) {
        let Some(conn) = self.sessions.get_mut(id) else {
            return;
        };
        let before = conn.session_monitors.len();
        conn.session_monitors.retain(|&(m, _)| m != monitor_id);
        if conn.session_monitors.len() == before {
            return self
                .sessions
                .fail(id, invoke_id, RequestError::InvalidMonitorId);
        }
        self.to_ingest
            .push(ToIngest::SessionMonitorStop { monitor_id });
        self.sessions.confirm(
            id,
            SessionMonitorStopConf {
                invoke_id: invoke_id.0,
            },
        );
    }

    /// Whether session `id` started monitor `monitor_id` (a Client Events
    /// registration is not the session's to stop or change).
    fn owns(&self, id: SessionId, monitor_id: MonitorId) -> bool {
        self.monitors
            .get(monitor_id)
            .is_some_and(|m| m.session == id && !m.client_events)
    }

    /// Remove a monitor and tell ingest about keys nobody here watches any more.
    fn remove_monitor(&mut self, monitor_id: MonitorId) {
        if let Some((_, gone)) = self.monitors.remove(monitor_id) {
            for key in gone {
                self.to_ingest.push(ToIngest::InterestDown {
                    shard: self.index,
                    key,
                });
            }
        }
    }

    /// Ingest's answer to a MONITOR_START_REQ.
    pub(super) fn on_monitor_start_result(
        &mut self,
        session: SessionId,
        invoke_id: InvokeId,
        monitor_id: MonitorId,
        result: Result<(), RequestError>,
    ) {
        let Some(monitor) = self.pending_monitors.remove(&monitor_id) else {
            return;
        };
        let open = self
            .sessions
            .get(session)
            .is_some_and(|c| c.session.is_open());
        match (open, result) {
            (true, Ok(())) => {
                self.monitors.insert(monitor);
                let conf = MonitorStartConf {
                    invoke_id: invoke_id.0,
                    monitor_id: monitor_id.0,
                };
                self.sessions.confirm(session, conf);
            }
            (open, result) => {
                let key = monitor.watch.keys()[0];
                if self.monitors.count_down(key) {
                    self.to_ingest.push(ToIngest::InterestDown {
                        shard: self.index,
                        key,
                    });
                }
                if let (true, Err(error)) = (open, result) {
                    self.sessions.fail(session, invoke_id, error);
                }
            }
        }
    }

    /// Ingest's answer to a SESSION_MONITOR_START_REQ.
    pub(super) fn on_session_monitor_result(
        &mut self,
        session: SessionId,
        invoke_id: InvokeId,
        monitor_id: MonitorId,
        result: Result<(), RequestError>,
    ) {
        let Some(conn) = self.sessions.get_mut(session) else {
            return;
        };
        match result {
            Ok(()) => {
                let conf = SessionMonitorStartConf {
                    invoke_id: invoke_id.0,
                    monitor_id: monitor_id.0,
                };
                self.sessions.confirm(session, conf);
            }
            Err(error) => {
                conn.session_monitors.retain(|&(id, _)| id != monitor_id);
                self.sessions.fail(session, invoke_id, error);
            }
        }
    }

    /// The session a session monitor watched has ended: the monitor ends too.
    pub(super) fn on_session_monitor_ended(&mut self, session: SessionId, monitor_id: MonitorId) {
        if let Some(conn) = self.sessions.get_mut(session) {
            conn.session_monitors.retain(|&(id, _)| id != monitor_id);
        }
    }

    /// Drop every monitor of an ending session; returns the keys whose count
    /// went back to 0 (reported with the session's close). Session monitors
    /// it owned are forgotten by ingest with the session.
    pub(super) fn drop_session_monitors(&mut self, id: SessionId) -> Vec<InterestKey> {
        let index = &mut self.monitors;
        let mut down = Vec::new();
        for monitor in index.of_session(id) {
            if let Some((_, gone)) = index.remove(monitor) {
                down.extend(gone);
            }
        }
        // A Client Events monitor not yet activated holds counted keys too.
        if let Some(conn) = self.sessions.get(id).filter(|c| c.held) {
            if let Some(m) = &conn.client_events {
                down.extend(m.watch.keys().into_iter().filter(|k| index.count_down(*k)));
            }
        }
        down
    }
}
