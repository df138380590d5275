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

use super::core::{IngestCore, Links};
use super::pending::Pending;
use crate::ids::{InvokeId, SessionId};
use crate::link::{ProxyRequest, ToShard};
use crate::metrics::Metrics;
use crate::proto::constants::{control_failure, msg, pg_status};
use crate::proto::frame::{self, patch_invoke_id};
use crate::proto::msg::ControlFailureConf;
use crate::proto::transcode::{transcode, Transcoded};
use crate::proto::{Message, RequestError, Version};
use crate::session::server::{failure_conf, proxied_service, reply};

impl<L: Links> IngestCore<L> {
    /// A request a session's checks passed: refuse it here, or send it
    /// upstream and remember who asked.
    pub(super) fn proxy_request(&mut self, request: ProxyRequest, now: Instant) {
        let ProxyRequest {
            shard,
            session,
            invoke_id,
            version,
            message_type,
            body,
        } = request;
        let refuse = |core: &mut Self, error: RequestError| {
            core.answer_failure(shard, session, version, invoke_id, error);
        };
        if self.status.pg_status & pg_status::CTI_SERVER_OFFLINE != 0 {
            return refuse(self, RequestError::ServerOffline);
        }
        let granted = proxied_service(message_type)
            .is_some_and(|needs| self.status.upstream_services.contains(needs));
        let agent_state_only = matches!(
            message_type,
            msg::QUERY_AGENT_STATE_REQ | msg::SET_AGENT_STATE_REQ
        ) && self
            .status
            .upstream_services
            .contains(crate::ids::Services::AGENT_STATE_CONTROL_ONLY);
        if !granted && !agent_state_only {
            return refuse(self, RequestError::NotAvailable);
        }
        if self.pending.is_full() {
            let mut out = Vec::new();
            reply(
                &mut out,
                version,
                Message::from(ControlFailureConf {
                    invoke_id: invoke_id.0,
                    failure_code: control_failure::CF_SERVICE_BUSY,
                    peripheral_error_code: 0,
                    text: None,
                }),
            );
            return self.answer(shard, session, out);
        }
        let mut from_client = Vec::with_capacity(frame::HEADER_LEN + body.len());
        frame::push_frame(&mut from_client, message_type, &body);
        let start = self.to_upstream.len();
        match transcode(
            &from_client,
            version,
            self.upstream_version,
            &mut self.to_upstream,
        ) {
            Ok(Transcoded::Written(_)) => {}
            Ok(Transcoded::NotInVersion) => return refuse(self, RequestError::NotAvailable),
            Err(e) => {
                self.to_upstream.truncate(start);
                tracing::debug!(%e, message_type, "proxied request does not re-encode");
                return refuse(self, RequestError::BadFormat);
            }
        }
        let upstream_invoke = self.pending.insert(Pending {
            shard,
            session,
            client_invoke: invoke_id,
            version,
            message_type,
            sent_at: now,
        });
        patch_invoke_id(&mut self.to_upstream[start..], upstream_invoke);
    }

    /// A reply from the upstream (`msg::is_reply`) to the request with
    /// `invoke_id`: to the session that asked, with its InvokeID, at its
    /// version. Replies are never events (docs/requests.md §5): a reply
    /// that answers nothing pending (late, or an id the router did not
    /// send) is counted and dropped.
    pub fn on_reply(&mut self, invoke_id: u32, whole: &[u8]) {
        let Some(pending) = self.pending.take(invoke_id) else {
            Metrics::add(&self.metrics.nr_stray_upstream_replies, 1);
            tracing::debug!(invoke_id, "upstream reply to no pending request: dropped");
            return;
        };
        let mut out = Vec::new();
        match transcode(whole, self.upstream_version, pending.version, &mut out) {
            Ok(Transcoded::Written(_)) => {
                patch_invoke_id(&mut out, pending.client_invoke.0);
                self.answer(pending.shard, pending.session, out);
            }
            // The session's version cannot carry this reply.
            result => {
                tracing::warn!(
                    ?result,
                    invoke_id,
                    version = %pending.version,
                    "upstream reply does not re-encode at the session's version"
                );
                self.answer_failure(
                    pending.shard,
                    pending.session,
                    pending.version,
                    pending.client_invoke,
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
            self.fail_pending(p, RequestError::Timeout);
        }
        n
    }

    /// The upstream is lost: every pending request fails with
    /// FAILURE_CONF(E_CTI_CTI_SERVER_OFFLINE) and none is sent again (on
    /// side B either: MAKE_CALL is not idempotent).
    pub(super) fn fail_all_requests(&mut self) {
        self.to_upstream.clear();
        for p in self.pending.drain() {
            self.fail_pending(p, RequestError::ServerOffline);
        }
    }

    fn fail_pending(&mut self, p: Pending, error: RequestError) {
        self.answer_failure(p.shard, p.session, p.version, p.client_invoke, error);
    }

    fn answer_failure(
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

    /// Stage an answer that ends one of the session's requests.
    fn answer(&mut self, shard: usize, session: SessionId, frame: Vec<u8>) {
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
