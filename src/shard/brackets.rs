//! Call brackets for one watcher (a Client Events session's agent or a
//! device monitor): which calls it is associated with, and for each event of
//! a call that reaches it, what it receives — a built BEGIN_CALL first, the
//! event itself, END_CALLs after (docs/call-brackets.md, rules 1–5 and 8).
//! Plain data, no I/O: dispatch asks [`step`] and queues what it says.

use smallvec::SmallVec;

use super::monitors::Watch;
use crate::call::Bracket;
use crate::keys::CallKey;
use crate::proto::constants::msg;

/// Most calls a watcher is associated with at once (rule 8): past it, the
/// oldest association is forgotten (a call whose end was never seen). An
/// agent has a handful of calls; a busy queue or trunk-group monitor a few
/// hundred at most.
pub const MAX_ASSOCIATIONS: usize = 256;

/// The calls a watcher is associated with, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Associations {
    calls: SmallVec<[CallKey; 2]>,
}

impl Associations {
    pub fn contains(&self, call: CallKey) -> bool {
        self.calls.contains(&call)
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    fn add(&mut self, call: CallKey) {
        if self.calls.len() == MAX_ASSOCIATIONS {
            self.calls.remove(0);
        }
        self.calls.push(call);
    }

    /// Forget `call`; returns whether it was associated.
    fn remove(&mut self, call: CallKey) -> bool {
        let before = self.calls.len();
        self.calls.retain(|c| *c != call);
        self.calls.len() != before
    }

    fn rename(&mut self, from: CallKey, to: CallKey) {
        if self.remove(from) && !self.contains(to) {
            self.add(to);
        }
    }

    /// Forget every association (the upstream was lost, rule 7).
    pub fn clear(&mut self) {
        self.calls = SmallVec::new();
    }
}

/// What one watcher receives for one event, in this order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Steps {
    /// A BEGIN_CALL built from the call's data before the event.
    pub begin: bool,
    /// The event itself.
    pub event: bool,
    /// An END_CALL for the call folded into this one (conference, transfer).
    pub end_folded: bool,
    /// An END_CALL for the event's call.
    pub end: bool,
}

impl Steps {
    /// The event alone (call monitors, events of no call).
    pub const EVENT: Steps = Steps {
        begin: false,
        event: true,
        end_folded: false,
        end: false,
    };
}

impl Watch {
    /// Whether this watch gets call brackets: Client Events agents and
    /// device monitors do, call monitors watch one call explicitly.
    pub fn is_bracketed(&self) -> bool {
        !matches!(self, Watch::Call(_))
    }

    /// Whether the device (or agent) this watch follows leaves the call.
    fn leaves(&self, b: &Bracket) -> bool {
        match self {
            Watch::Device(d) => b.leaving.contains(d),
            Watch::Agent { agent, instrument } => {
                b.leaving_agents.contains(agent)
                    || instrument.is_some_and(|d| b.leaving.contains(&d))
            }
            Watch::Call(_) => false,
        }
    }
}

/// Apply one event of `b.call` (of `message_type`) that reached a watcher
/// with `watch`: update its associations and say what it receives.
pub fn step(calls: &mut Associations, watch: &Watch, message_type: u32, b: &Bracket) -> Steps {
    let associated = calls.contains(b.call);
    let ending = b.ends_call || watch.leaves(b);
    let upstream_begin = message_type == msg::BEGIN_CALL_EVENT;
    let mut steps = Steps::default();
    if associated {
        // Rule 2: one BEGIN per association.
        steps.event = !upstream_begin;
    } else if !ending {
        // Rule 1 (the upstream's own BEGIN_CALL is the bracket).
        steps.begin = !upstream_begin;
        steps.event = true;
        calls.add(b.call);
    } // Rule 4: an ending event opens nothing.
    if let Some((folded, _)) = &b.folded {
        steps.end_folded = calls.remove(*folded);
    }
    if let Some(to) = b.renamed {
        calls.rename(b.call, to);
    }
    if ending && calls.remove(b.call) {
        steps.end = message_type != msg::END_CALL_EVENT;
    }
    steps
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::call::{CallData, CallRecord};
    use crate::keys::{AgentField, AgentKey, DeviceKey};

    fn call(id: u32) -> CallKey {
        CallKey::new(id, 1, b"T100")
    }

    fn bracket(id: u32) -> Bracket {
        Bracket {
            call: call(id),
            before: CallRecord::new(CallData::default()),
            ends_call: false,
            leaving: SmallVec::new(),
            leaving_agents: SmallVec::new(),
            folded: None,
            renamed: None,
        }
    }

    fn device() -> Watch {
        Watch::Device(DeviceKey::device(b"3001"))
    }

    const BEGIN: Steps = Steps {
        begin: true,
        ..Steps::EVENT
    };

    #[test]
    fn the_first_event_of_a_call_is_preceded_by_a_begin() {
        let mut calls = Associations::default();
        let b = bracket(7);
        assert_eq!(
            step(&mut calls, &device(), msg::CALL_DELIVERED_EVENT, &b),
            BEGIN
        );
        assert_eq!(
            step(&mut calls, &device(), msg::CALL_ESTABLISHED_EVENT, &b),
            Steps::EVENT
        );
        assert!(calls.contains(call(7)));
    }

    #[test]
    fn the_upstreams_begin_is_the_bracket_and_comes_once() {
        let mut calls = Associations::default();
        let b = bracket(7);
        assert_eq!(
            step(&mut calls, &device(), msg::BEGIN_CALL_EVENT, &b),
            Steps::EVENT
        );
        assert_eq!(
            step(&mut calls, &device(), msg::BEGIN_CALL_EVENT, &b),
            Steps::default()
        );
    }

    #[test]
    fn clearing_ends_with_an_end_call_and_nothing_after() {
        let mut calls = Associations::default();
        let mut b = bracket(7);
        step(&mut calls, &device(), msg::CALL_DELIVERED_EVENT, &b);
        b.ends_call = true;
        let end = Steps {
            end: true,
            ..Steps::EVENT
        };
        assert_eq!(
            step(&mut calls, &device(), msg::CALL_CLEARED_EVENT, &b),
            end
        );
        assert!(calls.is_empty());
        assert_eq!(
            step(&mut calls, &device(), msg::END_CALL_EVENT, &b),
            Steps::default(),
            "the upstream's END_CALL after the association ended"
        );
    }

    #[test]
    fn the_upstreams_end_call_is_the_bracket() {
        let mut calls = Associations::default();
        let mut b = bracket(7);
        step(&mut calls, &device(), msg::CALL_DELIVERED_EVENT, &b);
        b.ends_call = true;
        assert_eq!(
            step(&mut calls, &device(), msg::END_CALL_EVENT, &b),
            Steps::EVENT
        );
    }

    #[test]
    fn a_device_leaving_ends_only_its_own_association() {
        let (mut mine, mut other) = (Associations::default(), Associations::default());
        let agent = AgentKey::new(AgentField::Id, b"1001");
        let desktop = Watch::Agent {
            agent,
            instrument: None,
        };
        let mut b = bracket(7);
        step(&mut mine, &desktop, msg::CALL_DELIVERED_EVENT, &b);
        step(&mut other, &device(), msg::CALL_DELIVERED_EVENT, &b);
        b.leaving.push(DeviceKey::device(b"3002"));
        b.leaving_agents.push(agent);
        let cleared = msg::CALL_CONNECTION_CLEARED_EVENT;
        assert!(step(&mut mine, &desktop, cleared, &b).end);
        assert_eq!(step(&mut other, &device(), cleared, &b), Steps::EVENT);
        assert!(mine.is_empty() && other.contains(call(7)));
    }

    #[test]
    fn an_ending_event_opens_nothing() {
        let mut calls = Associations::default();
        let mut b = bracket(7);
        b.leaving.push(DeviceKey::device(b"3001"));
        let cleared = msg::CALL_CONNECTION_CLEARED_EVENT;
        assert_eq!(step(&mut calls, &device(), cleared, &b), Steps::default());
        assert!(calls.is_empty());
    }

    #[test]
    fn a_folded_call_ends_after_the_merge_and_the_primary_begins() {
        let mut calls = Associations::default();
        step(
            &mut calls,
            &device(),
            msg::CALL_DELIVERED_EVENT,
            &bracket(8),
        );
        let mut b = bracket(7);
        b.folded = Some((call(8), Arc::new(CallRecord::default())));
        let steps = step(&mut calls, &device(), msg::CALL_TRANSFERRED_EVENT, &b);
        assert_eq!(
            steps,
            Steps {
                begin: true,
                event: true,
                end_folded: true,
                end: false
            }
        );
        assert!(calls.contains(call(7)) && !calls.contains(call(8)));
    }

    #[test]
    fn the_transferring_party_gets_both_ends() {
        let mut calls = Associations::default();
        step(
            &mut calls,
            &device(),
            msg::CALL_DELIVERED_EVENT,
            &bracket(7),
        );
        step(
            &mut calls,
            &device(),
            msg::CALL_ORIGINATED_EVENT,
            &bracket(8),
        );
        let mut b = bracket(7);
        b.folded = Some((call(8), Arc::new(CallRecord::default())));
        b.leaving.push(DeviceKey::device(b"3001"));
        let steps = step(&mut calls, &device(), msg::CALL_TRANSFERRED_EVENT, &b);
        assert_eq!(
            steps,
            Steps {
                begin: false,
                event: true,
                end_folded: true,
                end: true
            }
        );
        assert!(calls.is_empty());
    }

    #[test]
    fn a_renamed_call_keeps_its_association() {
        let mut calls = Associations::default();
        step(
            &mut calls,
            &device(),
            msg::CALL_DELIVERED_EVENT,
            &bracket(7),
        );
        let mut b = bracket(7);
        b.renamed = Some(call(9));
        assert_eq!(
            step(&mut calls, &device(), msg::CALL_DATA_UPDATE_EVENT, &b),
            Steps::EVENT
        );
        assert!(calls.contains(call(9)) && !calls.contains(call(7)));
        assert_eq!(
            step(&mut calls, &device(), msg::CALL_HELD_EVENT, &bracket(9)),
            Steps::EVENT
        );
    }

    #[test]
    fn associations_are_bounded() {
        let mut calls = Associations::default();
        for id in 0..MAX_ASSOCIATIONS as u32 + 10 {
            step(
                &mut calls,
                &device(),
                msg::CALL_DELIVERED_EVENT,
                &bracket(id),
            );
        }
        assert_eq!(calls.len(), MAX_ASSOCIATIONS);
        assert!(!calls.contains(call(0)) && calls.contains(call(MAX_ASSOCIATIONS as u32 + 9)));
    }
}
