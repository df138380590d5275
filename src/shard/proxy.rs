//! Proxied requests in the shard core (docs/requests.md §5): a request the
//! session's checks passed goes to ingest, which owns the upstream; the
//! answer comes back on the event ring, in stream order, already encoded at
//! the session's version with the client's InvokeID.

use super::core::ShardCore;
use crate::ids::{InvokeId, SessionId};
use crate::link::{ProxyRequest, ToIngest};

impl ShardCore {
    /// Send session `id`'s request (`body` as the client sent it) to ingest.
    pub(super) fn on_proxy(
        &mut self,
        id: SessionId,
        message_type: u32,
        invoke_id: InvokeId,
        body: &[u8],
    ) {
        let Some(conn) = self.sessions.get(id) else {
            return;
        };
        self.to_ingest.push(ToIngest::Request(ProxyRequest {
            shard: self.index,
            session: id,
            invoke_id,
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
