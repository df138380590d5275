//! Call brackets for one watcher (a Client Events session's agent or a
//! device monitor): which calls it is associated with, and for each event of
//! a call that reaches it, what it receives — a built BEGIN_CALL first, the
//! event itself, END_CALLs after — and nothing more of a call it has left
//! (docs/call-brackets.md, rules 1–5 and 8).
//! Plain data, no I/O: dispatch asks [`step`] and queues what it says.

use smallvec::SmallVec;

use crate::call::Bracket;
use crate::keys::CallKey;
use crate::proto::constants::msg;

/// Most calls a watcher is associated with at once (rule 8): past it, the
/// oldest association is forgotten (a call whose end was never seen). An
/// agent has a handful of calls; a busy queue or trunk-group monitor a few
/// hundred at most.
pub const MAX_ASSOCIATIONS: usize = 256;

/// Where a watcher stands with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Associated: its events are delivered.
    Associated,
    /// The association ended while the call goes on: nothing more of the
    /// call is delivered (rule 4) until the call itself ends.
    Left,
}

/// The calls a watcher is associated with or has left, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Associations {
    calls: SmallVec<[(CallKey, Standing); 2]>,
}

impl Associations {
    fn standing(&self, call: CallKey) -> Option<Standing> {
        self.calls.iter().find(|(c, _)| *c == call).map(|&(_, s)| s)
    }

    /// Whether the watcher is associated with `call`.
    pub fn contains(&self, call: CallKey) -> bool {
        self.standing(call) == Some(Standing::Associated)
    }

    /// Calls associated or left.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    fn set(&mut self, call: CallKey, standing: Standing) {
        match self.calls.iter_mut().find(|(c, _)| *c == call) {
            Some(entry) => entry.1 = standing,
            None => {
                if self.calls.len() == MAX_ASSOCIATIONS {
                    self.calls.remove(0);
                }
                self.calls.push((call, standing));
            }
        }
    }

    /// Forget `call`; returns how the watcher stood with it.
    fn remove(&mut self, call: CallKey) -> Option<Standing> {
        let at = self.calls.iter().position(|(c, _)| *c == call)?;
        Some(self.calls.remove(at).1)
    }

    fn rename(&mut self, from: CallKey, to: CallKey) {
        if let Some(standing) = self.remove(from) {
            self.set(to, standing);
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

/// Apply one event of `b.call` (of `message_type`) that reached a watcher
/// (`leaves`: the watcher's device or agent leaves the call with it): update
/// its associations and say what it receives.
pub fn step(calls: &mut Associations, leaves: bool, message_type: u32, b: &Bracket) -> Steps {
    let standing = calls.standing(b.call);
    let ending = b.ends_call || leaves;
    let upstream_begin = message_type == msg::BEGIN_CALL_EVENT;
    let mut steps = Steps::default();
    match standing {
        // Rule 2: one BEGIN per association.
        Some(Standing::Associated) => steps.event = !upstream_begin,
        // Rule 1 (the upstream's own BEGIN_CALL is the bracket).
        None if !ending => {
            steps.begin = !upstream_begin;
            steps.event = true;
            calls.set(b.call, Standing::Associated);
        }
        // Rule 4: an ending event opens nothing, and a call left stays left.
        None | Some(Standing::Left) => {}
    }
    if let Some((folded, _)) = &b.folded {
        steps.end_folded = calls.remove(*folded) == Some(Standing::Associated);
    }
    if let Some(to) = b.renamed {
        calls.rename(b.call, to);
    }
    if b.ends_call {
        calls.remove(b.call);
    } else if leaves && standing.is_some() {
        calls.set(b.call, Standing::Left);
    }
    steps.end =
        ending && standing == Some(Standing::Associated) && message_type != msg::END_CALL_EVENT;
    steps
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::call::{CallData, CallRecord};

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

    /// Whether the watcher's device or agent leaves the call with the event.
    const STAYS: bool = false;
    const LEAVES: bool = true;

    const BEGIN: Steps = Steps {
        begin: true,
        ..Steps::EVENT
    };

    #[test]
    fn the_first_event_of_a_call_is_preceded_by_a_begin() {
        let mut calls = Associations::default();
        let b = bracket(7);
        assert_eq!(
            step(&mut calls, STAYS, msg::CALL_DELIVERED_EVENT, &b),
            BEGIN
        );
        assert_eq!(
            step(&mut calls, STAYS, msg::CALL_ESTABLISHED_EVENT, &b),
            Steps::EVENT
        );
        assert!(calls.contains(call(7)));
    }

    #[test]
    fn the_upstreams_begin_is_the_bracket_and_comes_once() {
        let mut calls = Associations::default();
        let b = bracket(7);
        assert_eq!(
            step(&mut calls, STAYS, msg::BEGIN_CALL_EVENT, &b),
            Steps::EVENT
        );
        assert_eq!(
            step(&mut calls, STAYS, msg::BEGIN_CALL_EVENT, &b),
            Steps::default()
        );
    }

    #[test]
    fn clearing_ends_with_an_end_call_and_nothing_after() {
        let mut calls = Associations::default();
        let mut b = bracket(7);
        step(&mut calls, STAYS, msg::CALL_DELIVERED_EVENT, &b);
        b.ends_call = true;
        let end = Steps {
            end: true,
            ..Steps::EVENT
        };
        assert_eq!(step(&mut calls, STAYS, msg::CALL_CLEARED_EVENT, &b), end);
        assert!(calls.is_empty());
        assert_eq!(
            step(&mut calls, STAYS, msg::END_CALL_EVENT, &b),
            Steps::default(),
            "the upstream's END_CALL after the association ended"
        );
    }

    #[test]
    fn the_upstreams_end_call_is_the_bracket() {
        let mut calls = Associations::default();
        let mut b = bracket(7);
        step(&mut calls, STAYS, msg::CALL_DELIVERED_EVENT, &b);
        b.ends_call = true;
        assert_eq!(
            step(&mut calls, STAYS, msg::END_CALL_EVENT, &b),
            Steps::EVENT
        );
    }

    #[test]
    fn only_the_leaving_watchers_association_ends() {
        let (mut mine, mut other) = (Associations::default(), Associations::default());
        let b = bracket(7);
        step(&mut mine, STAYS, msg::CALL_DELIVERED_EVENT, &b);
        step(&mut other, STAYS, msg::CALL_DELIVERED_EVENT, &b);
        let cleared = msg::CALL_CONNECTION_CLEARED_EVENT;
        assert!(step(&mut mine, LEAVES, cleared, &b).end);
        assert_eq!(step(&mut other, STAYS, cleared, &b), Steps::EVENT);
        assert!(!mine.contains(call(7)) && other.contains(call(7)));
    }

    #[test]
    fn a_call_left_stays_left_until_it_ends() {
        let mut calls = Associations::default();
        let mut b = bracket(7);
        step(&mut calls, STAYS, msg::CALL_ORIGINATED_EVENT, &b);
        let cleared = msg::CALL_CONNECTION_CLEARED_EVENT;
        assert!(step(&mut calls, LEAVES, cleared, &b).end);
        // The far end leaves too; the event still names the watcher's device
        // (the call's ConnectionDeviceID): no second association.
        assert_eq!(step(&mut calls, STAYS, cleared, &b), Steps::default());
        b.ends_call = true;
        assert_eq!(
            step(&mut calls, STAYS, msg::CALL_CLEARED_EVENT, &b),
            Steps::default()
        );
        assert!(calls.is_empty(), "the call ended: nothing is kept of it");
        b.ends_call = false;
        assert_eq!(
            step(&mut calls, STAYS, msg::CALL_DELIVERED_EVENT, &b),
            BEGIN,
            "a call id seen again after its end is a new call"
        );
    }

    #[test]
    fn an_ending_event_opens_nothing() {
        let mut calls = Associations::default();
        let b = bracket(7);
        let cleared = msg::CALL_CONNECTION_CLEARED_EVENT;
        assert_eq!(step(&mut calls, LEAVES, cleared, &b), Steps::default());
        assert!(calls.is_empty());
    }

    #[test]
    fn a_folded_call_ends_after_the_merge_and_the_primary_begins() {
        let mut calls = Associations::default();
        step(&mut calls, STAYS, msg::CALL_DELIVERED_EVENT, &bracket(8));
        let mut b = bracket(7);
        b.folded = Some((call(8), Arc::new(CallRecord::default())));
        let steps = step(&mut calls, STAYS, msg::CALL_TRANSFERRED_EVENT, &b);
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
        step(&mut calls, STAYS, msg::CALL_DELIVERED_EVENT, &bracket(7));
        step(&mut calls, STAYS, msg::CALL_ORIGINATED_EVENT, &bracket(8));
        let mut b = bracket(7);
        b.folded = Some((call(8), Arc::new(CallRecord::default())));
        let steps = step(&mut calls, LEAVES, msg::CALL_TRANSFERRED_EVENT, &b);
        assert_eq!(
            steps,
            Steps {
                begin: false,
                event: true,
                end_folded: true,
                end: true
            }
        );
        assert!(!calls.contains(call(7)) && !calls.contains(call(8)));
    }

    #[test]
    fn a_renamed_call_keeps_its_association() {
        let mut calls = Associations::default();
        step(&mut calls, STAYS, msg::CALL_DELIVERED_EVENT, &bracket(7));
        let mut b = bracket(7);
        b.renamed = Some(call(9));
        assert_eq!(
            step(&mut calls, STAYS, msg::CALL_DATA_UPDATE_EVENT, &b),
            Steps::EVENT
        );
        assert!(calls.contains(call(9)) && !calls.contains(call(7)));
        assert_eq!(
            step(&mut calls, STAYS, msg::CALL_HELD_EVENT, &bracket(9)),
            Steps::EVENT
        );
    }

    #[test]
    fn associations_are_bounded() {
        let mut calls = Associations::default();
        for id in 0..MAX_ASSOCIATIONS as u32 + 10 {
            step(&mut calls, STAYS, msg::CALL_DELIVERED_EVENT, &bracket(id));
        }
        assert_eq!(calls.len(), MAX_ASSOCIATIONS);
        assert!(!calls.contains(call(0)) && calls.contains(call(MAX_ASSOCIATIONS as u32 + 9)));
    }
}
