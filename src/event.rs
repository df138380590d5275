//! An upstream event as it crosses cores: what shards route it by (its type,
//! mask bit and targets) and its wire bytes at the upstream version,
//! re-encoded lazily — once per protocol version that some session uses,
//! shared by every shard — and never mutated after that. Shards receive
//! `Arc<Event>`. The full routing keys stay on the ingest core: shards never
//! read them, and leaving them out keeps the event small to build and move.

use std::sync::OnceLock;
use std::time::Instant;

use crate::proto::constants::{agent_mask, call_mask, msg};
use crate::proto::routing::{self, RoutingKeys};
use crate::proto::transcode::{transcode, Transcoded};
use crate::proto::{DecodeError, Version};
use crate::targets::Targets;

/// The frame at each protocol version; `None` inside = not sendable there.
type Encodings = [OnceLock<Option<Box<[u8]>>>; Version::COUNT];

/// Which mask bit decides whether an event passes a session's or monitor's
/// masks; computed once per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskBit {
    /// Not masked (CALL_TRANSLATION_ROUTE_EVENT, types without a CallMsgMask bit).
    Always,
    /// A CallMsgMask bit (docs/protocol.md §5.2).
    Call(u32),
    /// An AgentStateMask bit (docs/protocol.md §5.3); 0 for states without one.
    Agent(u32),
}

impl MaskBit {
    pub fn of(keys: &RoutingKeys) -> MaskBit {
        match keys.message_type {
            msg::CALL_TRANSLATION_ROUTE_EVENT => MaskBit::Always,
            msg::AGENT_STATE_EVENT => {
                MaskBit::Agent(agent_mask::bit_for(keys.agent_state.unwrap_or(u16::MAX)))
            }
            t => match call_mask::bit_for(t) {
                0 => MaskBit::Always,
                bit => MaskBit::Call(bit),
            },
        }
    }

    #[inline]
    pub fn passes(self, call_mask: u32, agent_mask: u32) -> bool {
        match self {
            MaskBit::Always => true,
            MaskBit::Call(bit) => call_mask & bit != 0,
            MaskBit::Agent(bit) => agent_mask & bit != 0,
        }
    }
}

/// One event from the PG.
pub struct Event {
    /// Position in the upstream stream (for ordering checks and logs).
    pub seq: u64,
    /// When ingest read it (fan-out latency is measured from here).
    pub received: Instant,
    /// The version `frame` is encoded in (the upstream session's version).
    pub version: Version,
    /// The whole frame as the upstream sent it.
    pub frame: Box<[u8]>,
    message_type: u32,
    /// The mask bit that decides whether a session's masks pass it.
    pub mask_bit: MaskBit,
    /// Every key the event must reach (set by ingest's call-party tracker).
    pub targets: Targets,
    /// Made by the router (SYSTEM_EVENT offline/online, Client Monitor
    /// events), not read from the bridge session: a supervisor's session,
    /// whose CTI Server events come from its own session, gets these too.
    pub router_made: bool,
    /// The frame at the other versions, allocated when a session first needs
    /// one (most events are only ever sent at the upstream version), so the
    /// event stays small to build and move.
    encoded: OnceLock<Box<Encodings>>,
}

impl Event {
    /// Build from one whole upstream frame: routing keys are read now, other
    /// versions are encoded when first asked for.
    pub fn new(seq: u64, version: Version, frame: Box<[u8]>) -> Result<Event, DecodeError> {
        let keys = routing::extract(&frame, version)?;
        Ok(Event::routed(
            seq,
            version,
            frame,
            Instant::now(),
            &keys,
            Targets::default(),
        ))
    }

    /// As [`Event::new`], for a frame read at `received` (one clock read per
    /// socket read, not per frame) whose routing `keys` were read and whose
    /// `targets` were computed by ingest.
    pub fn routed(
        seq: u64,
        version: Version,
        frame: Box<[u8]>,
        received: Instant,
        keys: &RoutingKeys,
        targets: Targets,
    ) -> Event {
        Event {
            seq,
            received,
            version,
            frame,
            message_type: keys.message_type,
            mask_bit: MaskBit::of(keys),
            targets,
            router_made: false,
            encoded: OnceLock::new(),
        }
    }

    pub fn message_type(&self) -> u32 {
        self.message_type
    }

    /// The frame encoded at `version`, or `None` when that version cannot
    /// carry this message type (docs/design.md §4.1: it is not sent).
    pub fn bytes_at(&self, version: Version) -> Option<&[u8]> {
        if version == self.version {
            return Some(&self.frame);
        }
        self.encoded.get_or_init(Default::default)[version.index()]
            .get_or_init(|| {
                let mut out = Vec::with_capacity(self.frame.len() + 32);
                match transcode(&self.frame, self.version, version, &mut out) {
                    Ok(Transcoded::Written(_)) => Some(out.into_boxed_slice()),
                    // Keys were extracted from this frame, so it parsed; a
                    // body the typed decoder rejects is not sent at other versions.
                    Ok(Transcoded::NotInVersion) | Err(_) => None,
                }
            })
            .as_deref()
    }
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("seq", &self.seq)
            .field("type", &self.message_type)
            .field("len", &self.frame.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::msg::{AgentStateEvent, CallAgentGreetingEvent};
    use crate::proto::Message;

    fn v(n: u32) -> Version {
        Version::new(n).unwrap()
    }

    #[test]
    fn other_versions_are_encoded_once_and_reused() {
        let frame = Message::from(AgentStateEvent {
            agent_state: 3,
            ..Default::default()
        })
        .to_frame(v(24))
        .unwrap();
        let event = Event::new(1, v(24), frame.clone().into_boxed_slice()).unwrap();
        assert_eq!(event.bytes_at(v(24)).unwrap(), &frame[..]);
        let at14 = event.bytes_at(v(14)).unwrap().as_ptr();
        assert_eq!(event.bytes_at(v(14)).unwrap().as_ptr(), at14);
        assert_eq!(event.bytes_at(v(14)).unwrap().len(), frame.len() - 4);
    }

    #[test]
    fn types_a_version_lacks_are_not_sent() {
        let frame = Message::from(CallAgentGreetingEvent::default())
            .to_frame(v(24))
            .unwrap();
        let event = Event::new(1, v(24), frame.into_boxed_slice()).unwrap();
        assert!(event.bytes_at(v(14)).is_none());
        assert!(event.bytes_at(v(15)).is_some());
    }
}
