//! Proxied requests on the ingest core (docs/requests.md §5): requests from
//! the shards go to the CTI Server with a fresh InvokeID and re-encoded at
//! its version; its replies come back to the one session that asked, with
//! the client's InvokeID, at the session's version, through that shard's
//! ordered event ring. Failures the router gives itself: the CTI Server
//! offline or lost (FAILURE_CONF 15), no reply in time (16), the service
//! not granted upstream (12), too many in flight router-wide
//! (CONTROL_FAILURE_CONF CF_SERVICE_BUSY). Sans I/O: the driver writes
//! [`IngestCore::to_upstream`] to the CTI Server.

use std::time::Instant;

use super::audit::{self, audit_line, describe_reply, AUDIT_TARGET};
use super::call_data::WrittenCall;
use super::core::{IngestCore, Links};
use super::pending::{Asker, Learn, Pending, Waiter};
use super::server_requests::{is_service_request, Route};
use super::shared::Sharing;
use crate::ids::{InvokeId, SessionId};
use crate::link::{ProxyRequest, ToShard};
use crate::metrics::{Metrics, RequestResult};
use crate::proto::constants::{control_failure, msg, pg_status};
use crate::proto::frame::{self, patch_invoke_id};
use crate::proto::msg::{
    QueryAgentStateConf, ReleaseCallConf, ReleaseCallReq, SetCallDataReq, UserMessageConf,
};
use crate::proto::transcode::{transcode, Transcoded};
use crate::proto::{CtiString, DecodeOptions, Message, MessageBody, RequestError, Version};
use crate::session::scope::{self, Agent, OutOfScope};
use crate::session::server::{control_failure_conf, failure_conf, may_request, reply};

impl<L: Links> IngestCore<L> {
    /// A request a session's checks passed: refuse it here, answer it from
    /// what the router knows, join an identical request in flight, or send
    /// it upstream and remember who asked.
    pub(super) fn proxy_request(&mut self, request: ProxyRequest, now: Instant) {
        let route = self.recording_route(request.message_type);
        if is_service_request(request.message_type) || route == Route::Local {
            return self.serve_server_service(request, now);
        }
        if self.supervisors.contains(request.session) {
            return self.proxy_own(request, now);
        }
        let ProxyRequest {
            shard,
            session,
            invoke_id,
            version,
            message_type,
            received,
            ..
        } = request;
        let record =
            |core: &Self, result: RequestResult| core.record_request(&request, result, now);
        // Decoded once, at the session's version (its shard checked it
        // decodes): scoped, audited, aggregated, re-encoded at the upstream's.
        let decoded = request.decode();
        // A read-only query is audited only when it goes upstream: what the
        // router answers itself acted on nothing (and a reconnect storm
        // must not cost ingest thousands of log lines).
        let read_only = self.shared.sharing(message_type) != Sharing::Alone;
        let audit = if read_only {
            None
        } else {
            self.describe_request(session, version, message_type, decoded.as_ref().ok())
        };
        let refuse = |core: &mut Self, error: RequestError| {
            core.refuse_request(&request, audit.as_deref(), error, now)
        };
        let busy = |core: &mut Self, audit: Option<&str>| core.refuse_busy(&request, audit, now);
        if let Route::Refuse(error) = route {
            return refuse(self, error);
        }
        if self.status.pg_status & pg_status::CTI_SERVER_OFFLINE != 0 {
            return refuse(self, RequestError::ServerOffline);
        }
        if !may_request(self.status.upstream_services, message_type) {
            return refuse(self, RequestError::NotAvailable);
        }
        let Ok(mut request) = decoded else {
            return refuse(self, RequestError::BadFormat);
        };
        let local = |core: &mut Self, answer: Message, why: &str| {
            if let Some(what) = &audit {
                audit_line(what, &format!("answered by the router: {why}"), None);
            }
            Metrics::add(&core.metrics.nr_requests_local, 1);
            record(core, RequestResult::Local);
            let mut out = Vec::new();
            reply(&mut out, version, answer);
            core.answer(shard, session, out);
        };
        if self.release_for_others(session, &request) {
            let conf = Message::from(ReleaseCallConf {
                invoke_id: invoke_id.0,
            });
            return local(self, conf, "others write on the call");
        }
        if let Err(out_of_scope) = self.scope(session, &mut request) {
            if let Some(what) = &audit {
                let error = out_of_scope.error();
                audit_line(what, &format!("out of the session's scope: {error}"), None);
            }
            record(self, RequestResult::Refused);
            let mut out = Vec::new();
            scope::refuse(&mut out, version, invoke_id, message_type, out_of_scope);
            return self.answer(shard, session, out);
        }
        if let Some(answer) = self.answer_locally(&request) {
            return local(self, answer, "from its state");
        }
        if let Message::UserMessageReq(m) = &request {
            if self.user_message_locally(session, m) {
                let conf = Message::from(UserMessageConf {
                    invoke_id: invoke_id.0,
                });
                return local(self, conf, "delivered to the client's router sessions");
            }
        }
        let start = self.to_upstream.len();
        // Every proxied request type has a typed layout (tests/codec pins
        // it), so this is a true re-encoding.
        let encoded = request
            .encode(self.upstream_version, &mut self.to_upstream)
            .is_ok();
        if !encoded {
            // Not a request the upstream's version has.
            self.to_upstream.truncate(start);
            return refuse(self, RequestError::NotAvailable);
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
        let share = self.shared.key(message_type, &self.to_upstream[start..]);
        if let Some(key) = &share {
            if let Some(kept) = self.shared.kept(key, now) {
                let kept = Box::<[u8]>::from(kept);
                self.to_upstream.truncate(start);
                Metrics::add(&self.metrics.nr_requests_local, 1);
                record(self, RequestResult::Local);
                return self.deliver(&waiter, &kept, now);
            }
            if let Some(invoke) = self.shared.in_flight(key) {
                self.to_upstream.truncate(start);
                if self.pending.join(invoke, waiter) {
                    Metrics::add(&self.metrics.nr_requests_local, 1);
                }
                return;
            }
        }
        if self.pending.is_full() {
            self.to_upstream.truncate(start);
            return busy(self, waiter.audit.as_deref());
        }
        let learn = match &request {
            Message::SetCallDataReq(set) => {
                self.note_call_data_writer(session, set);
                Learn::Nothing
            }
            Message::QueryAgentStateReq(query) => Learn::AgentState {
                peripheral_id: query.peripheral_id,
            },
            _ => Learn::Nothing,
        };
        let mut waiter = waiter;
        if read_only {
            waiter.audit = self.describe_request(session, version, message_type, Some(&request));
        }
        let mut pending = Pending::new(waiter, message_type, now);
        pending.learn = learn;
        pending.share = share.clone();
        let upstream_invoke = self.pending.insert(pending);
        if let Some(key) = share {
            self.shared.sent(key, upstream_invoke);
        }
        Metrics::add(&self.metrics.nr_requests_proxied, 1);
        patch_invoke_id(&mut self.to_upstream[start..], upstream_invoke);
    }

    /// Count `request` answered now with `result`, its latency from when
    /// its shard read it.
    pub(super) fn record_request(
        &self,
        request: &ProxyRequest,
        result: RequestResult,
        now: Instant,
    ) {
        let latency = now.saturating_duration_since(request.received);
        self.metrics
            .requests
            .record(request.message_type, result, latency);
    }

    /// Refuse `request` with `error`: FAILURE_CONF to its session, counted
    /// and (`audit`: who sent what) audited.
    pub(super) fn refuse_request(
        &mut self,
        request: &ProxyRequest,
        audit: Option<&str>,
        error: RequestError,
        now: Instant,
    ) {
        self.refused(request, audit, &error, now);
        let r = request;
        self.answer_failure(r.shard, r.session, r.version, r.invoke_id, error);
    }

    /// Refuse `request` because too many are in flight
    /// (CONTROL_FAILURE_CONF CF_SERVICE_BUSY): counted and (`audit`: who
    /// sent what) audited.
    pub(super) fn refuse_busy(
        &mut self,
        request: &ProxyRequest,
        audit: Option<&str>,
        now: Instant,
    ) {
        self.refused(request, audit, &"max_pending in flight", now);
        let r = request;
        let busy = control_failure::CF_SERVICE_BUSY;
        self.answer_control_failure(r.shard, r.session, r.version, r.invoke_id, busy);
    }

    /// What every refusal does before its answer: the audit line (`audit`:
    /// who sent what) and the count.
    fn refused(
        &mut self,
        request: &ProxyRequest,
        audit: Option<&str>,
        why: &dyn std::fmt::Display,
        now: Instant,
    ) {
        if let Some(what) = audit {
            audit_line(what, &format!("refused by the router: {why}"), None);
        }
        self.record_request(request, RequestResult::Refused, now);
    }

    /// A reply from the upstream (`msg::is_reply`) to the request with
    /// `invoke_id`: to each session that asked it, with its InvokeID, at
    /// its version. Replies are never events (docs/requests.md §5): a reply
    /// that answers nothing pending (late, or an id the router did not
    /// send) is counted and dropped.
    pub fn on_reply(&mut self, invoke_id: u32, whole: &[u8], now: Instant) {
        if is_continued(whole) {
            // One segment of several (LIST_AGENT_TEAM_CONF, More = 1): to
            // the askers now; the request waits for its last segment.
            let waiters = self.pending.get(invoke_id).map(|p| p.waiters.clone());
            for waiter in waiters.iter().flatten() {
                self.deliver_as(waiter, whole, now, Ends::No);
            }
            if waiters.is_none() {
                Metrics::add(&self.metrics.nr_stray_upstream_replies, 1);
            }
            return;
        }
        let Some(pending) = self.pending.take(invoke_id) else {
            Metrics::add(&self.metrics.nr_stray_upstream_replies, 1);
            tracing::debug!(invoke_id, "upstream reply to no pending request: dropped");
            return;
        };
        let reply_type = frame::message_type(whole).unwrap_or(0);
        let ok = !matches!(reply_type, msg::FAILURE_CONF | msg::CONTROL_FAILURE_CONF);
        if let Some(key) = pending.share {
            self.shared.answered(key, whole, ok, now);
        }
        if let (Learn::AgentState { peripheral_id }, msg::QUERY_AGENT_STATE_CONF) =
            (pending.learn, reply_type)
        {
            let body = frame::parse(whole).ok().map(|(f, _)| f.body);
            let opts = DecodeOptions::COUNTS_UNCHECKED;
            if let Some(Ok(conf)) =
                body.map(|b| QueryAgentStateConf::decode_body(b, self.upstream_version, opts))
            {
                self.tracker.agents.refresh(peripheral_id, &conf);
            }
        }
        for (i, waiter) in pending.waiters.iter().enumerate() {
            // The first asker's request went upstream; those who joined it
            // were answered without one of their own.
            let result = match (i, ok) {
                (0, true) => RequestResult::Proxied,
                (0, false) => RequestResult::Failed,
                _ => RequestResult::Local,
            };
            self.record_answer(waiter, pending.message_type, result, now);
            self.deliver(waiter, whole, now);
        }
    }

    /// Hand `waiter` a reply frame at the upstream's version: re-encoded at
    /// its session's version, with its own InvokeID, audited.
    fn deliver(&mut self, waiter: &Waiter, whole: &[u8], now: Instant) {
        self.deliver_as(waiter, whole, now, Ends::Yes)
    }

    /// [`Self::deliver`] of a reply that does (`Ends::Yes`) or does not
    /// (a segment with more to come) end its request.
    fn deliver_as(&mut self, waiter: &Waiter, whole: &[u8], now: Instant, ends: Ends) {
        if let Some(what) = &waiter.audit {
            audit_line(what, &describe_reply(whole), Some(now - waiter.since));
        }
        let Asker::Session {
            shard,
            session,
            invoke_id: client_invoke,
            version,
        } = waiter.asker
        else {
            // The router's own request (a RELEASE_CALL for closed sessions).
            return;
        };
        let mut out = Vec::new();
        match transcode(whole, self.upstream_version, version, &mut out) {
            Ok(Transcoded::Written(_)) => {
                patch_invoke_id(&mut out, client_invoke.0);
                let ends_request = ends == Ends::Yes;
                self.stage(
                    shard,
                    ToShard::Reply {
                        session,
                        frame: out.into_boxed_slice(),
                        ends_request,
                    },
                );
            }
            // The session's version cannot carry this reply.
            result => {
                tracing::warn!(
                    ?result,
                    %version,
                    "upstream reply does not re-encode at the session's version"
                );
                self.answer_failure(
                    shard,
                    session,
                    version,
                    client_invoke,
                    RequestError::BadFormat,
                );
            }
        }
    }

    /// Requests the CTI Server did not answer within the timeout:
    /// FAILURE_CONF(E_CTI_TIMEOUT); a reply that comes later is dropped.
    pub fn expire_requests(&mut self, now: Instant) -> usize {
        let expired = self.pending.expired(now);
        let n = expired.len();
        for p in expired {
            self.fail_pending(p, RequestError::Timeout, now);
        }
        n
    }

    /// The upstream is lost: every pending request fails with
    /// FAILURE_CONF(E_CTI_CTI_SERVER_OFFLINE) and none is sent again (on
    /// side B either: MAKE_CALL is not idempotent).
    pub(super) fn fail_all_requests(&mut self, now: Instant) {
        self.to_upstream.clear();
        for p in self.pending.drain() {
            self.fail_pending(p, RequestError::ServerOffline, now);
        }
    }

    /// Count a session's request answered now (the router's own requests
    /// are not counted).
    fn record_answer(
        &self,
        waiter: &Waiter,
        message_type: u32,
        result: RequestResult,
        now: Instant,
    ) {
        if matches!(waiter.asker, Asker::Session { .. }) {
            let latency = now.saturating_duration_since(waiter.since);
            self.metrics.requests.record(message_type, result, latency);
        }
    }

    /// A request that will not be answered: each of its askers gets `error`.
    pub(super) fn fail_pending(&mut self, p: Pending, error: RequestError, now: Instant) {
        if let Some(key) = &p.share {
            self.shared.failed(key);
        }
        let result = match error {
            RequestError::Timeout => RequestResult::Timeout,
            _ => RequestResult::Lost,
        };
        for waiter in p.waiters {
            self.record_answer(&waiter, p.message_type, result, now);
            if let Some(what) = &waiter.audit {
                audit_line(what, &format!("failed: {error}"), None);
            }
            if let Asker::Session {
                shard,
                session,
                invoke_id,
                version,
            } = waiter.asker
            {
                self.answer_failure(shard, session, version, invoke_id, error);
            }
        }
    }

    /// Scope (docs/requests.md §4): a Client Events session's request is
    /// completed with its agent and must name only that agent, its device
    /// and calls the device is in. Other sessions may act on any agent.
    pub(super) fn scope(
        &self,
        session: SessionId,
        request: &mut Message,
    ) -> Result<(), OutOfScope> {
        let Some(record) = self.registry.get(session) else {
            return Ok(());
        };
        let scoped = scope::applies_to(record.services);
        let Some(identity) = scoped.then(|| scope::identity(request)).flatten() else {
            return Ok(());
        };
        let agents = &self.tracker.agents;
        let agent = Agent::of(&record.client, |key| agents.view(key));
        scope::fill_and_check(identity, &agent, |call, device| {
            self.tracker.call_has_device(call, device)
        })
    }

    /// Who sent what, for the audit log; `None` while that log is off.
    pub(super) fn describe_request(
        &self,
        session: SessionId,
        version: Version,
        message_type: u32,
        request: Option<&Message>,
    ) -> Option<Box<str>> {
        let client = self.registry.get(session).map(|r| &r.client.client_id);
        audit::describe(client, session, version, message_type, request)
    }

    /// RELEASE_CALL aggregation (docs/requests.md §5): the CTI Server sees
    /// one client, so a RELEASE_CALL goes upstream only from the last
    /// session that sent SET_CALL_DATA on the call. Session `session`
    /// releases the call `request` names (if it is a RELEASE_CALL): whether
    /// others still write on it
    /// (then it is answered here).
    fn release_for_others(&mut self, session: SessionId, request: &Message) -> bool {
        let Message::ReleaseCallReq(release) = request else {
            return false;
        };
        let call = WrittenCall::of(
            release.peripheral_id,
            release.connection_call_id,
            release.connection_device_id_type,
            release.connection_device_id.as_ref(),
        );
        self.call_data_writers.release(&call, session)
    }

    /// Session `session` sent SET_CALL_DATA on the call `set` names.
    fn note_call_data_writer(&mut self, session: SessionId, set: &SetCallDataReq) {
        let call = WrittenCall::of(
            set.peripheral_id,
            set.connection_call_id,
            set.connection_device_id_type,
            set.connection_device_id.as_ref(),
        );
        self.call_data_writers.wrote(call, session);
    }

    /// Session `session` closed: on each call where it was the last writer
    /// of call data, the router releases the call itself (the reply is
    /// dropped); where others write on, it just leaves.
    pub(super) fn release_closed_writer(&mut self, session: SessionId, now: Instant) {
        let released = self.call_data_writers.closed(session);
        let online = self.status.pg_status & pg_status::CTI_SERVER_OFFLINE == 0;
        for call in released {
            if !online || self.pending.is_full() {
                continue;
            }
            let router = Waiter {
                asker: Asker::Router,
                since: now,
                audit: None,
            };
            let invoke = self
                .pending
                .insert(Pending::new(router, msg::RELEASE_CALL_REQ, now));
            tracing::info!(
                target: AUDIT_TARGET,
                session = session.0,
                call_id = call.call_id,
                "the router releases a call whose last writer of call data closed"
            );
            let request = Message::from(ReleaseCallReq {
                invoke_id: invoke,
                peripheral_id: call.peripheral_id,
                connection_device_id_type: call.device_id_type,
                connection_call_id: call.call_id,
                connection_device_id: Some(CtiString::new(&call.device_id[..])),
            });
            if request
                .encode(self.upstream_version, &mut self.to_upstream)
                .is_err()
            {
                self.pending.take(invoke);
            }
        }
    }

    pub(super) fn answer_failure(
        &mut self,
        shard: usize,
        session: SessionId,
        version: Version,
        invoke_id: InvokeId,
        error: RequestError,
    ) {
        let mut out = Vec::new();
        failure_conf(&mut out, version, invoke_id, error);
        self.answer(shard, session, out);
    }

    pub(super) fn answer_control_failure(
        &mut self,
        shard: usize,
        session: SessionId,
        version: Version,
        invoke_id: InvokeId,
        code: u16,
    ) {
        let mut out = Vec::new();
        control_failure_conf(&mut out, version, invoke_id, code);
        self.answer(shard, session, out);
    }

    /// Stage an answer that ends one of the session's requests.
    pub(super) fn answer(&mut self, shard: usize, session: SessionId, frame: Vec<u8>) {
        self.stage(
            shard,
            ToShard::Reply {
                session,
                frame: frame.into_boxed_slice(),
                ends_request: true,
            },
        );
    }
}

/// Whether a reply ends its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    Yes,
    No,
}

/// A segment with more to follow under the same InvokeID: a
/// LIST_AGENT_TEAM_CONF with More = 1 (docs/protocol.md §12.5).
fn is_continued(whole: &[u8]) -> bool {
    frame::message_type(whole) == Some(msg::LIST_AGENT_TEAM_CONF)
        && whole.get(16..18).is_some_and(|more| more != [0, 0])
}
