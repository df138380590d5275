//! Requests the router answers from what it knows (docs/requests.md §6):
//! it sees every event, so after a failover or a restart the questions
//! every desktop asks (its agent's state, its device's calls) cost the PG
//! nothing. An answer is given only from state that is current; otherwise
//! the request goes upstream as any other.

use super::core::{IngestCore, Links};
use crate::ids::SessionId;
use crate::keys::{CallKey, DeviceKey};
use crate::link::ToShard;
use crate::proto::msg::{UserMessageEvent, UserMessageReq};
use crate::proto::Message;
use crate::status::unix_time;

use crate::proto::constants::distribution::TO_CLIENT;

impl<L: Links> IngestCore<L> {
    /// The router's own answer to `request` (already scoped and filled in:
    /// its InvokeID is the client's), or `None` when the upstream must answer.
    pub(super) fn answer_locally(&self, request: &Message) -> Option<Message> {
        match request {
            Message::QueryAgentStateReq(r) => self.tracker.agents.query(r).map(Message::from),
            Message::SnapshotCallReq(r) => {
                let device = r.connection_device_id.as_ref()?;
                let call = CallKey::new(
                    r.connection_call_id,
                    r.connection_device_id_type,
                    device.as_bytes(),
                );
                let mut conf = self.tracker.snapshot_call(&call)?;
                conf.invoke_id = r.invoke_id;
                Some(conf.into())
            }
            Message::SnapshotDeviceReq(r) => {
                let device = r.agent_instrument.as_ref().filter(|d| !d.is_empty())?;
                let mut conf = self
                    .tracker
                    .snapshot_device(&DeviceKey::device(device.as_bytes()))?;
                conf.invoke_id = r.invoke_id;
                Some(conf.into())
            }
            _ => None,
        }
    }

    /// USER_MESSAGE_REQ from `sender` to a ClientID that has sessions on
    /// the router: USER_MESSAGE_EVENT (naming the sender's ClientID) to each
    /// of them, in stream order. False when the message is for others (a
    /// supervisor, a team, everyone, or a client of the CTI Server): the
    /// upstream delivers it, and its USER_MESSAGE_EVENT comes back to every
    /// router session.
    pub(super) fn user_message_locally(&mut self, sender: SessionId, m: &UserMessageReq) -> bool {
        let Some(to) = m.client_id.as_ref().filter(|c| !c.is_empty()) else {
            return false;
        };
        if m.distribution != TO_CLIENT {
            return false;
        }
        let recipients: Vec<_> = self
            .registry
            .of_client(to.as_bytes())
            .map(|(id, r)| (id, r.shard, r.version))
            .collect();
        if recipients.is_empty() {
            return false;
        }
        let event = Message::from(UserMessageEvent {
            icm_central_controller_time: unix_time(),
            distribution: TO_CLIENT,
            client_id: self
                .registry
                .get(sender)
                .map(|r| r.client.client_id.clone()),
            text: m.text.clone(),
        });
        for (session, shard, version) in recipients {
            let mut frame = Vec::new();
            if event.encode(version, &mut frame).is_ok() {
                let frame = frame.into_boxed_slice();
                self.stage(
                    shard,
                    ToShard::Reply {
                        session,
                        frame,
                        ends_request: false,
                    },
                );
            }
        }
        true
    }
}
