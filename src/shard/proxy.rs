//! Proxied requests in the shard core (docs/requests.md §5): a request the
//! session's checks passed goes to ingest, which owns the upstream; the
//! answer comes back on the event ring, in stream order, already encoded at
//! the session's version with the client's InvokeID.

use super::core::ShardCore;
use super::monitors::{Monitor, Watch};
use std::time::{Duration, Instant};

use crate::config::ControlScope;
use crate::ids::{InvokeId, Services, SessionId};
use crate::keys::DeviceKey;
use crate::link::{ProxyRequest, ServerReply, ToIngest};
use crate::metrics::RequestResult;
use crate::proto::constants::control_failure;
use crate::proto::{DecodeOptions, Message, RequestError, Version};
use crate::session::scope;
use crate::session::server::{control_failure_conf, failure_conf, proxied_service};

impl ShardCore {
    /// Send session `id`'s request (`body` as the client sent it) to ingest,
    /// unless its client's `control_scope` is "monitored" and it names a
    /// device or call the session does not monitor (docs/requests.md §4).
    pub(super) fn on_proxy(
        &mut self,
        id: SessionId,
        message_type: u32,
        invoke_id: InvokeId,
        body: &[u8],
        now: Instant,
    ) {
        let Some(conn) = self.sessions.get(id) else {
            return;
        };
        let session = &conn.session;
        let watches_others = session.services.contains(Services::ALL_EVENTS)
            || session.services.contains(Services::PERIPHERAL_MONITOR);
        if watches_others
            && session.control_scope == ControlScope::Monitored
            && !self.monitored(id, session.version, message_type, body)
        {
            let control = proxied_service(message_type) == Some(Services::CLIENT_CONTROL);
            if let Some(conn) = self.sessions.get_mut(id) {
                conn.session.request_done();
            }
            let refused = RequestResult::Refused;
            self.metrics
                .requests
                .record(message_type, refused, Duration::ZERO);
            self.sessions.answer(id, |out, version| {
                if control {
                    let code = control_failure::CF_PRIVILEGE_VIOLATION_ON_SPECIFIED_DEVICE;
                    control_failure_conf(out, version, invoke_id, code);
                } else {
                    failure_conf(out, version, invoke_id, RequestError::InvalidAgentData);
                }
            });
            return;
        }
        self.to_ingest.push(ToIngest::Request(ProxyRequest {
            shard: self.index,
            session: id,
            invoke_id,
            version: conn.session.version,
            message_type,
            body: body.into(),
            received: now,
        }));
    }

    /// Whether the device and calls a request names are ones session `id`
    /// monitors: a device monitor on the device, and for each call a call
    /// monitor on it or a device monitor associated with it.
    fn monitored(&self, id: SessionId, version: Version, message_type: u32, body: &[u8]) -> bool {
        let Ok(mut request) = Message::decode(message_type, body, version, DecodeOptions::STRICT)
        else {
            return false;
        };
        let Some(identity) = scope::identity(&mut request) else {
            return true;
        };
        let monitors: Vec<&Monitor> = self
            .monitors
            .of_session(id)
            .into_iter()
            .filter_map(|m| self.monitors.get(m))
            .collect();
        let device = identity
            .agent_instrument
            .and_then(|d| d.as_ref().filter(|d| !d.is_empty()).cloned());
        let device_ok = device.is_none_or(|d| {
            let key = DeviceKey::device(d.as_bytes());
            monitors.iter().any(|m| m.watch == Watch::Device(key))
        });
        device_ok
            && identity.calls.iter().all(|&call| {
                monitors
                    .iter()
                    .any(|m| m.watch == Watch::Call(call) || m.calls.contains(call))
            })
    }

    /// A server application's answer (checked by its session) goes to
    /// ingest, which pairs it with the request it answers.
    pub(super) fn on_server_reply(&mut self, id: SessionId, message_type: u32, body: &[u8]) {
        let Some(conn) = self.sessions.get(id) else {
            return;
        };
        self.to_ingest.push(ToIngest::ServerReply(ServerReply {
            shard: self.index,
            session: id,
            version: conn.session.version,
            message_type,
            body: body.into(),
        }));
    }

    /// Ingest's answer to one of session `id`'s requests. A session that
    /// has gone meanwhile gets nothing.
    pub(super) fn on_reply(&mut self, id: SessionId, frame: &[u8], ends_request: bool) {
        if ends_request {
            if let Some(conn) = self.sessions.get_mut(id) {
                conn.session.request_done();
            }
        }
        self.sessions
            .answer(id, |out, _| out.extend_from_slice(frame));
    }
}
