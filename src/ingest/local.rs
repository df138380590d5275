//! Requests the router answers from what it knows (docs/requests.md §6):
//! it sees every event, so after a failover or a restart the questions
//! every desktop asks (its agent's state, its device's calls) cost the PG
//! nothing. An answer is given only from state that is current; otherwise
//! the request goes upstream as any other.

use super::core::{IngestCore, Links};
use crate::proto::Message;

impl<L: Links> IngestCore<L> {
    /// The router's own answer to `request` (already scoped and filled in:
    /// its InvokeID is the client's), or `None` when the upstream must answer.
    pub(super) fn answer_locally(&self, request: &Message) -> Option<Message> {
        match request {
            Message::QueryAgentStateReq(r) => self.tracker.agents.query(r).map(Message::from),
            _ => None,
        }
    }
}
