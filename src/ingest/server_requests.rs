//! The Server service through the router on the ingest core
//! (docs/requests.md §8): REGISTER/UNREGISTER_SERVICE_REQ answered from the
//! registry (`servers`); START/STOP_RECORDING_REQ sent to the registered
//! recording servers with a router InvokeID and the requester's ClientID
//! and ClientAddress, at each server's version; their answers back to the
//! requester with its InvokeID, at its version, through its shard's ordered
//! event ring; a server that closes or does not answer in time fails what
//! waits on it (FAILURE_CONF 15, 16). Sans I/O, like the upstream proxy.

use std::time::Instant;

use super::audit::audit_line;
use super::core::{IngestCore, Links};
use super::pending::{Asker, Pending, Waiter};
use super::servers::{Answer, Dispatch, Server, ServerMode, CALL_RECORDING};
use crate::ids::SessionId;
use crate::link::{ProxyRequest, ServerReply, ToShard};
use crate::metrics::RequestResult;
use crate::proto::constants::msg;
use crate::proto::frame::patch_invoke_id;
use crate::proto::msg::{RegisterServiceConf, RegisterServiceReq, UnregisterServiceConf};
use crate::proto::{CtiString, DecodeOptions, Message, RequestError};
use crate::session::scope;
use crate::session::server::reply;

/// Where a recording request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Not a request for a local server: the upstream proxy decides.
    Upstream,
    /// To the registered recording servers.
    Local,
    /// No server and no upstream configured (simulator, replay).
    Refuse(RequestError),
}

/// Whether a request is the Server service's own (answered from the registry).
pub fn is_service_request(message_type: u32) -> bool {
    matches!(
        message_type,
        msg::REGISTER_SERVICE_REQ | msg::UNREGISTER_SERVICE_REQ
    )
}

/// Whether a request is one a recording server answers.
fn is_recording_request(message_type: u32) -> bool {
    matches!(
        message_type,
        msg::START_RECORDING_REQ | msg::STOP_RECORDING_REQ
    )
}

impl<L: Links> IngestCore<L> {
    /// Where a request of `message_type` goes (docs/requests.md §8).
    pub(super) fn recording_route(&self, message_type: u32) -> Route {
        if !is_recording_request(message_type) {
            Route::Upstream
        } else if self.servers.has(CALL_RECORDING) {
            Route::Local
        } else if !self.upstream_configured {
            Route::Refuse(RequestError::NotAvailable)
        } else {
            Route::Upstream
        }
    }

    /// A request of the Server service or for a local server.
    pub(super) fn serve_server_service(&mut self, request: ProxyRequest, now: Instant) {
        if is_service_request(request.message_type) {
            self.service_request(request, now)
        } else {
            self.send_to_local_servers(request, now)
        }
    }

    /// REGISTER_SERVICE_REQ / UNREGISTER_SERVICE_REQ from a session granted
    /// the Server service (its shard checked the grant and the format).
    pub(super) fn service_request(&mut self, request: ProxyRequest, now: Instant) {
        let ProxyRequest {
            shard,
            session,
            invoke_id,
            version,
            ..
        } = request;
        let answer = match request.decode() {
            Ok(Message::RegisterServiceReq(r)) => {
                let server = Server {
                    id: 0,
                    session,
                    shard,
                    version,
                };
                self.register_service(&r, server)
                    .map(|id| Message::from(conf(invoke_id.0, id)))
            }
            Ok(Message::UnregisterServiceReq(r)) => self
                .servers
                .unregister(session, r.registered_service_id)
                .map(|()| {
                    let invoke_id = invoke_id.0;
                    Message::from(UnregisterServiceConf { invoke_id })
                }),
            _ => Err(RequestError::BadFormat),
        };
        let result = match answer {
            Ok(_) => RequestResult::Local,
            Err(_) => RequestResult::Refused,
        };
        self.record_request(&request, result, now);
        match answer {
            Ok(message) => {
                let mut out = Vec::new();
                reply(&mut out, version, message);
                self.answer(shard, session, out);
            }
            Err(error) => self.answer_failure(shard, session, version, invoke_id, error),
        }
    }

    /// ServiceName required (E_CTI_REQUIRED_DATA_MISSING), ServerMode 0..=2
    /// (E_CTI_INVALID_SERVICE), no conflict (E_CTI_SERVICE_CONFLICT).
    fn register_service(
        &mut self,
        r: &RegisterServiceReq,
        server: Server,
    ) -> Result<u32, RequestError> {
        let name = r
            .service_name
            .as_ref()
            .map(CtiString::as_bytes)
            .filter(|n| !n.is_empty())
            .ok_or(RequestError::RequiredDataMissing)?;
        let mode = ServerMode::from_wire(r.server_mode).ok_or(RequestError::InvalidService)?;
        let id = self.servers.register(name, mode, server)?;
        tracing::info!(
            session = server.session.0,
            service = %String::from_utf8_lossy(name),
            ?mode,
            id,
            "server application registered"
        );
        Ok(id)
    }

    /// A START/STOP_RECORDING_REQ to the registered recording servers: in
    /// the requester's scope, with its ClientID and ClientAddress, a router
    /// InvokeID, at each server's version.
    pub(super) fn send_to_local_servers(&mut self, request: ProxyRequest, now: Instant) {
        let ProxyRequest {
            shard,
            session,
            invoke_id,
            version,
            message_type,
            received,
            ..
        } = request;
        let refused = |core: &mut Self| core.record_request(&request, RequestResult::Refused, now);
        let Ok(mut decoded) = request.decode() else {
            return self.refuse_request(&request, None, RequestError::BadFormat, now);
        };
        if let Err(out_of_scope) = self.scope(session, &mut decoded) {
            refused(self);
            let mut out = Vec::new();
            scope::refuse(&mut out, version, invoke_id, message_type, out_of_scope);
            return self.answer(shard, session, out);
        }
        if self.servers.is_full() {
            return self.refuse_busy(&request, None, now);
        }
        self.add_requester(session, &mut decoded);
        let to = match &decoded {
            Message::StopRecordingReq(stop) => {
                self.servers.pick_for_stop(CALL_RECORDING, stop.session_id)
            }
            _ => self.servers.pick(CALL_RECORDING),
        };
        let waiter = Waiter {
            asker: Asker::Session {
                shard,
                session,
                invoke_id,
                version,
            },
            since: received,
            // Recording requests act on a call: audited like any request
            // that goes upstream (docs/requests.md §4).
            audit: self.describe_request(session, version, message_type, Some(&decoded)),
        };
        let invoke = self.servers.send(waiter, message_type, &to, received);
        for server in to {
            self.send_to_server(server, &decoded, invoke, now);
        }
    }

    /// ClientID and ClientAddress of the requester, as the CTI Server adds
    /// them when it forwards a recording request to a server.
    fn add_requester(&self, session: SessionId, request: &mut Message) {
        let Some(record) = self.registry.get(session) else {
            return;
        };
        let id = Some(record.client.client_id.clone());
        let address = Some(CtiString::from(record.peer.ip().to_string()));
        match request {
            Message::StartRecordingReq(r) => (r.client_id, r.client_address) = (id, address),
            Message::StopRecordingReq(r) => (r.client_id, r.client_address) = (id, address),
            _ => {}
        }
    }

    /// Stage `request` with the router's InvokeID for one server; one that
    /// cannot carry it (over the frame limit at its version) counts as gone.
    fn send_to_server(&mut self, server: Server, request: &Message, invoke: u32, now: Instant) {
        let mut frame = Vec::new();
        if request.encode(server.version, &mut frame).is_err() {
            tracing::warn!(
                session = server.session.0,
                "request does not encode for the server"
            );
            let done = self.servers.gone_for(invoke, server.session);
            return self.finish_all(done, false, now);
        }
        patch_invoke_id(&mut frame, invoke);
        let frame = frame.into_boxed_slice();
        let item = ToShard::Reply {
            session: server.session,
            frame,
            ends_request: false,
        };
        self.stage(server.shard, item);
    }

    /// A server application's answer: to its requester once the request is
    /// done; a stray one (late, unknown, of another type) is counted and dropped.
    pub(super) fn server_reply(&mut self, reply: ServerReply, now: Instant) {
        let opts = DecodeOptions::STRICT;
        let decoded = Message::decode(reply.message_type, &reply.body, reply.version, opts);
        let invoke = reply.body.get(..4).map(|b| [b[0], b[1], b[2], b[3]]);
        let (Ok(message), Some(invoke)) = (decoded, invoke) else {
            return;
        };
        let answer = Answer {
            message,
            server: reply.session,
        };
        match self.servers.answer(u32::from_be_bytes(invoke), answer) {
            Ok(Some(done)) => self.finish(done, false, now),
            Ok(None) => {}
            Err(_) => tracing::debug!(
                session = reply.session.0,
                "server reply to nothing pending: dropped"
            ),
        }
    }

    /// A session closed: if it was a server, its registrations go and what
    /// waited only on it fails with FAILURE_CONF(E_CTI_CTI_SERVER_OFFLINE).
    pub(super) fn server_session_closed(&mut self, session: SessionId, now: Instant) {
        let done = self.servers.session_closed(session);
        self.finish_all(done, false, now);
    }

    /// Requests the servers did not answer within the timeout.
    pub fn expire_server_requests(&mut self, now: Instant) -> usize {
        let expired = self.servers.expired(now);
        let n = expired.len();
        self.finish_all(expired, true, now);
        n
    }

    fn finish_all(&mut self, done: Vec<(Pending, Dispatch)>, timed_out: bool, now: Instant) {
        for d in done {
            self.finish(d, timed_out, now);
        }
    }

    /// Answer the requester of a request that is done: the best answer
    /// (a success, else the first failure; at the timeout only a success),
    /// else 16 when time ran out, else 15 (every server gone).
    fn finish(&mut self, (pending, dispatch): (Pending, Dispatch), timed_out: bool, now: Instant) {
        let Some(waiter) = pending.waiters.first() else {
            return;
        };
        let Asker::Session {
            shard,
            session,
            invoke_id,
            version,
        } = waiter.asker
        else {
            return;
        };
        let best = dispatch.best.filter(|a| a.ok() || !timed_out);
        let (result, answer) = match best {
            Some(a) if a.ok() => (RequestResult::Proxied, Ok(a)),
            Some(a) => (RequestResult::Failed, Ok(a)),
            None if timed_out => (RequestResult::Timeout, Err(RequestError::Timeout)),
            None => (RequestResult::Lost, Err(RequestError::ServerOffline)),
        };
        let latency = now.saturating_duration_since(waiter.since);
        let message_type = pending.message_type;
        self.metrics.requests.record(message_type, result, latency);
        if let Some(what) = &waiter.audit {
            let outcome = match &answer {
                Ok(a) => {
                    let t = a.message.message_type();
                    let name = Message::type_name(t).unwrap_or("reply");
                    format!("{name} from local server session {}", a.server.0)
                }
                Err(error) => format!("failed at the local servers: {error}"),
            };
            audit_line(what, &outcome, Some(latency));
        }
        if let Ok(Answer {
            message: Message::StartRecordingConf(conf),
            server,
        }) = &answer
        {
            self.servers.recording_started(conf.session_id, *server);
        }
        let mut out = Vec::new();
        let written = match answer {
            Ok(answer) => self.server_answer(answer).encode(version, &mut out).is_ok(),
            Err(error) => return self.answer_failure(shard, session, version, invoke_id, error),
        };
        if !written {
            let error = RequestError::BadFormat;
            return self.answer_failure(shard, session, version, invoke_id, error);
        }
        patch_invoke_id(&mut out, invoke_id.0);
        self.answer(shard, session, out);
    }

    /// A server's CONF on its way to the requester names the recording
    /// server (its ClientID and ClientAddress) unless it did itself.
    fn server_answer(&self, answer: Answer) -> Message {
        let Answer {
            mut message,
            server,
        } = answer;
        let Some(record) = self.registry.get(server) else {
            return message;
        };
        let id = || Some(record.client.client_id.clone());
        let address = || Some(CtiString::from(record.peer.ip().to_string()));
        match &mut message {
            Message::StartRecordingConf(c) => {
                c.client_id = c.client_id.take().or_else(id);
                c.client_address = c.client_address.take().or_else(address);
            }
            Message::StopRecordingConf(c) => {
                c.client_id = c.client_id.take().or_else(id);
                c.client_address = c.client_address.take().or_else(address);
            }
            _ => {}
        }
        message
    }
}

/// REGISTER_SERVICE_CONF.
fn conf(invoke_id: u32, registered_service_id: u32) -> RegisterServiceConf {
    RegisterServiceConf {
        invoke_id,
        registered_service_id,
    }
}
