//! A shard's monitor index, owned by its shard, no locks: Peripheral Monitor
//! device and call monitors and Client Events registrations, indexed
//! `by_device`, `by_call` and `by_agent`, plus the per-key counts behind the
//! shard's interest (a key is reported to ingest only when its count goes
//! 0 → 1 or back to 0). No I/O here.
//!
//! The monitors live in a slab (`slots`, freed slots reused); the per-key
//! lists hold each monitor's id *and* slot, so the event path goes from an
//! event's keys to its monitors without a lookup by MonitorID. That lookup
//! (`slot_of`) is for the control path only: MONITOR_STOP,
//! CHANGE_MONITOR_MASK, ownership checks.

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::brackets::{self, Steps};
use crate::call::{Bracket, CallRecord};
use crate::event::{Event, MaskBit};
use crate::ids::{MonitorId, Services, SessionId};
use crate::keys::InterestKey;
use crate::keys::{AgentKey, CallKey, DeviceKey, KeyMap};
use crate::proto::constants::{call_mask, msg};
use crate::session::server::Session;
use crate::targets::Targets;

/// What a monitor watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    /// A device monitor (Peripheral Monitor).
    Device(DeviceKey),
    /// A call monitor (Peripheral Monitor); ends after its call ends.
    Call(CallKey),
    /// A Client Events session's agent: its agent key, and its instrument
    /// when the session named one.
    Agent {
        agent: AgentKey,
        instrument: Option<DeviceKey>,
    },
}

impl Watch {
    /// The interest keys this watch holds.
    pub fn keys(&self) -> SmallVec<[InterestKey; 2]> {
        match *self {
            Watch::Device(d) => smallvec::smallvec![InterestKey::Device(d)],
            Watch::Call(c) => smallvec::smallvec![InterestKey::Call(c)],
            Watch::Agent { agent, instrument } => {
                let mut keys = smallvec::smallvec![InterestKey::Agent(agent)];
                keys.extend(instrument.map(InterestKey::Device));
                keys
            }
        }
    }
}

impl Watch {
    /// Whether this watch gets call brackets: Client Events agents and
    /// device monitors do, call monitors watch one call explicitly.
    pub fn is_bracketed(&self) -> bool {
        !matches!(self, Watch::Call(_))
    }

    /// Whether the device (or agent) this watch follows leaves the call.
    pub fn leaves(&self, b: &Bracket) -> bool {
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

/// One monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitor {
    pub id: MonitorId,
    /// The session that owns it.
    pub session: SessionId,
    pub watch: Watch,
    pub call_mask: u32,
    pub agent_mask: u32,
    /// A Client Events monitor: AGENT_STATE_EVENT copies carry the session id.
    pub client_events: bool,
    /// The calls it is associated with (call brackets; empty for call monitors).
    pub calls: super::brackets::Associations,
}

/// One frame a monitor receives for an event ([`Monitor::deliveries`]).
#[derive(Clone, Copy)]
pub enum Delivery<'a> {
    /// A BEGIN_CALL built from the call's data before the event.
    Begin(&'a CallRecord),
    /// The event itself.
    Event,
    /// An END_CALL built from a call's data (a call folded into this one, or
    /// the event's call).
    End(&'a CallRecord),
}

/// The mask bits of the BEGIN_CALL and END_CALL a bracket adds.
const BEGIN_BIT: MaskBit = MaskBit::Call(call_mask::bit_for(msg::BEGIN_CALL_EVENT));
const END_BIT: MaskBit = MaskBit::Call(call_mask::bit_for(msg::END_CALL_EVENT));

impl Monitor {
    /// What this monitor receives for `event`, in order, each through its
    /// masks: for a watcher (a Client Events agent, a device monitor) inside
    /// its call brackets (docs/call-brackets.md; its associations move on),
    /// a BEGIN_CALL, the event, an END_CALL of a call folded into it, an
    /// END_CALL of the call; for a call monitor the event alone.
    #[inline]
    pub fn deliveries<'a>(&mut self, event: &'a Event, mut deliver: impl FnMut(Delivery<'a>)) {
        let bracket = event.targets.bracket.as_ref();
        let steps = match bracket {
            Some(b) if self.watch.is_bracketed() => brackets::step(
                &mut self.calls,
                self.watch.leaves(b),
                event.message_type(),
                b,
            ),
            _ => Steps::EVENT,
        };
        let passes = |bit: MaskBit| bit.passes(self.call_mask, self.agent_mask);
        if let (true, Some(b)) = (steps.begin && passes(BEGIN_BIT), bracket) {
            deliver(Delivery::Begin(&b.before));
        }
        if steps.event && passes(event.mask_bit) {
            deliver(Delivery::Event);
        }
        let folded = bracket.and_then(|b| b.folded.as_ref());
        if let (true, Some((_, folded))) = (steps.end_folded && passes(END_BIT), folded) {
            deliver(Delivery::End(folded));
        }
        if let (true, Some(b)) = (steps.end && passes(END_BIT), bracket) {
            deliver(Delivery::End(&b.before));
        }
    }

    /// The Client Events monitor of a session that opened with that service:
    /// its agent as named in OPEN_REQ (instrument, else extension, else id), and
    /// its instrument as a device, with the OPEN_CONF MonitorID and OPEN masks.
    pub fn client_events(session: &Session) -> Option<Monitor> {
        if !session.services.contains(Services::CLIENT_EVENTS) {
            return None;
        }
        let c = &session.client;
        let agent = c.agent_key()?;
        let instrument = c
            .agent_instrument
            .as_ref()
            .filter(|v| !v.is_empty())
            .map(|v| DeviceKey::device(v.as_bytes()));
        Some(Monitor {
            id: session.client_events_monitor,
            session: session.id,
            watch: Watch::Agent { agent, instrument },
            call_mask: session.call_mask,
            agent_mask: session.agent_mask,
            client_events: true,
            calls: Default::default(),
        })
    }
}

/// A monitor as the per-key lists name it: its MonitorID (what copies are
/// ordered by) and its slot. Ordered by id first; while a monitor is active
/// its id and slot go together, so equal ids are equal entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    id: MonitorId,
    slot: u32,
}

/// Scratch space for [`MonitorIndex::matching`]; keep one and reuse it.
pub type MatchScratch = SmallVec<[Entry; 8]>;

type Entries = SmallVec<[Entry; 2]>;

#[derive(Default)]
pub struct MonitorIndex {
    /// The active monitors; a removed monitor's slot goes on `free` and is
    /// reused by the next insert.
    slots: Vec<Option<Monitor>>,
    free: Vec<u32>,
    /// MonitorID → slot, for the control path (the event path has the slot).
    slot_of: FxHashMap<MonitorId, u32>,
    by_device: KeyMap<DeviceKey, Entries>,
    by_call: KeyMap<CallKey, Entries>,
    by_agent: KeyMap<AgentKey, Entries>,
    /// Monitors (active or awaiting ingest's answer) per interest key.
    counts: HashMap<InterestKey, u32>,
    /// The active monitors of each session, for its close: a scan of every
    /// slot per close made a storm of 2,000 closes quadratic.
    by_session: FxHashMap<SessionId, SmallVec<[MonitorId; 1]>>,
}

fn link<K: std::hash::Hash + Eq>(map: &mut KeyMap<K, Entries>, key: K, entry: Entry) {
    map.entry(key).or_default().push(entry);
}

fn unlink<K: std::hash::Hash + Eq>(map: &mut KeyMap<K, Entries>, key: K, entry: Entry) {
    if let Some(entries) = map.get_mut(&key) {
        entries.retain(|e| *e != entry);
        if entries.is_empty() {
            map.remove(&key);
        }
    }
}

impl MonitorIndex {
    pub fn len(&self) -> usize {
        self.slot_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slot_of.is_empty()
    }

    pub fn get(&self, id: MonitorId) -> Option<&Monitor> {
        let slot = *self.slot_of.get(&id)?;
        self.slots[slot as usize].as_ref()
    }

    pub fn get_mut(&mut self, id: MonitorId) -> Option<&mut Monitor> {
        let slot = *self.slot_of.get(&id)?;
        self.slots[slot as usize].as_mut()
    }

    /// The monitor an entry names, if it is still the one in that slot.
    fn at(&self, entry: Entry) -> Option<&Monitor> {
        self.slots
            .get(entry.slot as usize)?
            .as_ref()
            .filter(|m| m.id == entry.id)
    }

    /// Empty an entry's slot (if it still holds that monitor) and free it.
    fn vacate(&mut self, entry: Entry) -> Option<Monitor> {
        let slot = self.slots.get_mut(entry.slot as usize)?;
        if slot.as_ref()?.id != entry.id {
            return None;
        }
        let monitor = slot.take()?;
        self.free.push(entry.slot);
        self.forget_owner(monitor.session, monitor.id);
        Some(monitor)
    }

    /// Count a key up; true when it went 0 → 1 (tell ingest).
    pub fn count_up(&mut self, key: InterestKey) -> bool {
        let n = self.counts.entry(key).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// Count a key down; true when it went back to 0 (tell ingest).
    pub fn count_down(&mut self, key: InterestKey) -> bool {
        match self.counts.get_mut(&key) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.counts.remove(&key);
                true
            }
            None => false,
        }
    }

    fn link(&mut self, entry: Entry, watch: &Watch) {
        match *watch {
            Watch::Device(d) => link(&mut self.by_device, d, entry),
            Watch::Call(c) => link(&mut self.by_call, c, entry),
            Watch::Agent { agent, instrument } => {
                link(&mut self.by_agent, agent, entry);
                if let Some(d) = instrument {
                    link(&mut self.by_device, d, entry);
                }
            }
        }
    }

    fn unlink(&mut self, entry: Entry, watch: &Watch) {
        match *watch {
            Watch::Device(d) => unlink(&mut self.by_device, d, entry),
            Watch::Call(c) => unlink(&mut self.by_call, c, entry),
            Watch::Agent { agent, instrument } => {
                unlink(&mut self.by_agent, agent, entry);
                if let Some(d) = instrument {
                    unlink(&mut self.by_device, d, entry);
                }
            }
        }
    }

    /// Make a monitor active (its keys were counted when it was requested).
    /// An active monitor with the same id (MonitorIDs are unique, so only a
    /// caller's bug) is replaced, its keys' counts left as they are.
    pub fn insert(&mut self, monitor: Monitor) {
        let id = monitor.id;
        let slot = match self.slot_of.get(&id) {
            Some(&slot) => {
                if let Some(old) = self.slots[slot as usize].take() {
                    self.unlink(Entry { id, slot }, &old.watch);
                    self.forget_owner(old.session, id);
                }
                slot
            }
            None => {
                let slot = self.free.pop().unwrap_or_else(|| {
                    self.slots.push(None);
                    u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 monitors")
                });
                self.slot_of.insert(id, slot);
                slot
            }
        };
        self.link(Entry { id, slot }, &monitor.watch);
        self.by_session.entry(monitor.session).or_default().push(id);
        self.slots[slot as usize] = Some(monitor);
    }

    /// `id` no longer belongs to `session`'s monitors.
    fn forget_owner(&mut self, session: SessionId, id: MonitorId) {
        if let Some(ids) = self.by_session.get_mut(&session) {
            ids.retain(|m| *m != id);
            if ids.is_empty() {
                self.by_session.remove(&session);
            }
        }
    }

    /// Remove a monitor; returns it and the keys whose count went back to 0.
    pub fn remove(&mut self, id: MonitorId) -> Option<(Monitor, SmallVec<[InterestKey; 2]>)> {
        let slot = self.slot_of.remove(&id)?;
        let entry = Entry { id, slot };
        let monitor = self.vacate(entry)?;
        self.unlink(entry, &monitor.watch);
        let gone = monitor
            .watch
            .keys()
            .into_iter()
            .filter(|k| self.count_down(*k))
            .collect();
        Some((monitor, gone))
    }

    /// Hand `push` the entry list of every key in `targets` that has one.
    #[inline]
    fn lists<'a>(&'a self, targets: &Targets, mut push: impl FnMut(&'a [Entry])) {
        for k in &targets.calls {
            if let Some(entries) = self.by_call.get(k) {
                push(entries);
            }
        }
        for k in &targets.devices {
            if let Some(entries) = self.by_device.get(k) {
                push(entries);
            }
        }
        for k in &targets.agents {
            if let Some(entries) = self.by_agent.get(k) {
                push(entries);
            }
        }
    }

    /// The monitors an event with `targets` reaches, MonitorID ascending,
    /// once each: one pass, no lookup by id (the event path).
    pub fn matching<'a>(
        &'a self,
        targets: &Targets,
        scratch: &'a mut MatchScratch,
    ) -> impl Iterator<Item = &'a Monitor> + 'a {
        self.matching_entries(targets, scratch);
        scratch.iter().filter_map(|e| self.at(*e))
    }

    /// The entries of the monitors an event with `targets` reaches, in
    /// `scratch`, MonitorID ascending, once each (see [`Self::at_mut`]).
    pub fn matching_entries(&self, targets: &Targets, scratch: &mut MatchScratch) {
        scratch.clear();
        self.lists(targets, |entries| scratch.extend_from_slice(entries));
        if scratch.len() > 1 {
            scratch.sort_unstable();
            scratch.dedup();
        }
    }

    /// The monitor an entry names, if it is still the one in that slot.
    pub fn at_mut(&mut self, entry: Entry) -> Option<&mut Monitor> {
        self.slots
            .get_mut(entry.slot as usize)?
            .as_mut()
            .filter(|m| m.id == entry.id)
    }

    /// Ids of the monitors an event with `targets` reaches, ascending, once each.
    pub fn matches(&self, targets: &Targets, out: &mut SmallVec<[MonitorId; 8]>) {
        out.clear();
        self.lists(targets, |entries| out.extend(entries.iter().map(|e| e.id)));
        if out.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
    }

    /// Call `from` folded into `to`: its call monitors now watch `to`
    /// (ingest applied the same change to its interest table).
    pub fn merge_call(&mut self, from: CallKey, to: CallKey) {
        let Some(entries) = self.by_call.remove(&from) else {
            return;
        };
        for &e in &entries {
            if let Some(Some(m)) = self.slots.get_mut(e.slot as usize) {
                m.watch = Watch::Call(to);
            }
        }
        self.by_call.entry(to).or_default().extend(entries);
        if let Some(n) = self.counts.remove(&InterestKey::Call(from)) {
            *self.counts.entry(InterestKey::Call(to)).or_insert(0) += n;
        }
    }

    /// Call monitors of a call that just ended: removed, with the keys whose
    /// count went back to 0.
    pub fn end_call(&mut self, call: CallKey) -> Vec<(Monitor, SmallVec<[InterestKey; 2]>)> {
        let entries = self.by_call.get(&call).cloned().unwrap_or_default();
        entries
            .into_iter()
            .filter_map(|e| self.remove(e.id))
            .collect()
    }

    /// The upstream was lost: every call monitor is dropped (ingest cleared
    /// its call interest at the same point, so no key goes back to it) and
    /// every call association forgotten (the calls' fate is unknown).
    pub fn drop_call_monitors(&mut self) -> Vec<Monitor> {
        for monitor in self.slots.iter_mut().flatten() {
            monitor.calls.clear();
        }
        let entries: Vec<Entry> = self.by_call.values().flatten().copied().collect();
        self.by_call.clear();
        self.counts
            .retain(|k, _| !matches!(k, InterestKey::Call(_)));
        entries
            .into_iter()
            .filter_map(|e| {
                self.slot_of.remove(&e.id)?;
                self.vacate(e)
            })
            .collect()
    }

    /// Every monitor a session owns.
    pub fn of_session(&self, session: SessionId) -> SmallVec<[MonitorId; 1]> {
        self.by_session.get(&session).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device_monitor(id: u32, device: &[u8]) -> Monitor {
        Monitor {
            id: MonitorId(id),
            session: SessionId(1),
            watch: Watch::Device(DeviceKey::device(device)),
            call_mask: u32::MAX,
            agent_mask: u32::MAX,
            client_events: false,
            calls: Default::default(),
        }
    }

    #[test]
    fn a_watch_leaves_with_its_device_or_its_agent() {
        use crate::call::{CallData, CallRecord};
        let agent = AgentKey::new(crate::keys::AgentField::Id, b"1001");
        let mut b = Bracket {
            call: CallKey::new(7, 1, b"T100"),
            before: CallRecord::new(CallData::default()),
            ends_call: false,
            leaving: smallvec::smallvec![DeviceKey::device(b"3001")],
            leaving_agents: SmallVec::new(),
            folded: None,
            renamed: None,
        };
        let device = |d: &[u8]| Watch::Device(DeviceKey::device(d));
        let desktop = |instrument: Option<&[u8]>| Watch::Agent {
            agent,
            instrument: instrument.map(DeviceKey::device),
        };
        assert!(device(b"3001").leaves(&b));
        assert!(!device(b"3002").leaves(&b));
        assert!(desktop(Some(b"3001")).leaves(&b), "by its instrument");
        assert!(!desktop(None).leaves(&b));
        b.leaving_agents.push(agent);
        assert!(desktop(None).leaves(&b), "by its agent");
        assert!(!Watch::Call(b.call).leaves(&b) && !Watch::Call(b.call).is_bracketed());
    }

    #[test]
    fn matches_are_ascending_and_once_per_monitor() {
        let mut index = MonitorIndex::default();
        for m in [
            device_monitor(9, b"3001"),
            device_monitor(4, b"3001"),
            device_monitor(5, b"3002"),
        ] {
            for k in m.watch.keys() {
                index.count_up(k);
            }
            index.insert(m);
        }
        let mut targets = Targets::default();
        targets.devices.push(DeviceKey::device(b"3001"));
        targets.devices.push(DeviceKey::device(b"3001"));
        let mut out = SmallVec::new();
        index.matches(&targets, &mut out);
        assert_eq!(out.as_slice(), &[MonitorId(4), MonitorId(9)]);
    }

    #[test]
    fn keys_report_only_first_and_last() {
        let mut index = MonitorIndex::default();
        let key = InterestKey::Device(DeviceKey::device(b"x"));
        assert!(index.count_up(key));
        assert!(!index.count_up(key));
        index.insert(device_monitor(1, b"x"));
        index.insert(device_monitor(2, b"x"));
        assert!(index.remove(MonitorId(1)).unwrap().1.is_empty());
        assert_eq!(index.remove(MonitorId(2)).unwrap().1.as_slice(), &[key]);
    }

    #[test]
    fn call_monitors_follow_merges_and_end_with_their_call() {
        let mut index = MonitorIndex::default();
        let (a, b) = (CallKey::new(1, 0, b"x"), CallKey::new(2, 0, b"y"));
        index.count_up(InterestKey::Call(a));
        index.insert(Monitor {
            watch: Watch::Call(a),
            ..device_monitor(3, b"")
        });
        index.merge_call(a, b);
        let ended = index.end_call(b);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].1.as_slice(), &[InterestKey::Call(b)]);
        assert!(index.is_empty());
    }

    fn start(index: &mut MonitorIndex, m: Monitor) {
        for k in m.watch.keys() {
            index.count_up(k);
        }
        index.insert(m);
    }

    fn on_devices(devices: &[&[u8]]) -> Targets {
        let mut targets = Targets::default();
        for d in devices {
            targets.devices.push(DeviceKey::device(d));
        }
        targets
    }

    /// What `matching` yields, as ids; checked against `matches`.
    fn matching_ids(index: &MonitorIndex, targets: &Targets) -> Vec<u32> {
        let mut scratch = MatchScratch::new();
        let ids: Vec<u32> = index
            .matching(targets, &mut scratch)
            .map(|m| m.id.0)
            .collect();
        let mut out = SmallVec::new();
        index.matches(targets, &mut out);
        let out: Vec<u32> = out.iter().map(|id| id.0).collect();
        assert_eq!(ids, out, "matching and matches agree");
        ids
    }

    #[test]
    fn matching_yields_monitors_ascending_once_each() {
        let mut index = MonitorIndex::default();
        start(&mut index, device_monitor(9, b"3001"));
        start(&mut index, device_monitor(4, b"3001"));
        start(&mut index, device_monitor(5, b"3002"));
        // A Client Events monitor reached by its agent and its instrument.
        let agent = AgentKey::new(crate::keys::AgentField::Id, b"1001");
        start(
            &mut index,
            Monitor {
                watch: Watch::Agent {
                    agent,
                    instrument: Some(DeviceKey::device(b"3001")),
                },
                client_events: true,
                ..device_monitor(7, b"")
            },
        );
        let mut targets = on_devices(&[b"3001", b"3001"]);
        targets.agents.push(agent);
        let mut scratch = MatchScratch::new();
        let got: Vec<&Monitor> = index.matching(&targets, &mut scratch).collect();
        assert_eq!(
            got.iter().map(|m| m.id.0).collect::<Vec<_>>(),
            [4, 7, 9],
            "ascending, once each"
        );
        assert!(got[1].client_events);
        assert_eq!(got[2], index.get(MonitorId(9)).unwrap());
        assert!(matching_ids(&index, &on_devices(&[b"nobody"])).is_empty());
    }

    #[test]
    fn stop_then_start_reuses_the_slot() {
        let mut index = MonitorIndex::default();
        for id in [10, 11, 12] {
            start(&mut index, device_monitor(id, b"x"));
        }
        let slot = index.slot_of[&MonitorId(10)];
        index.remove(MonitorId(10)).unwrap();
        start(&mut index, device_monitor(13, b"x"));
        assert_eq!(
            index.slot_of[&MonitorId(13)],
            slot,
            "the freed slot is reused"
        );
        assert_eq!(index.slots.len(), 3, "no slot added");
        assert_eq!(index.len(), 3);
        // Slot order is now 13, 11, 12; copies still go out by MonitorID.
        assert_eq!(matching_ids(&index, &on_devices(&[b"x"])), [11, 12, 13]);
        assert_eq!(index.get(MonitorId(13)).unwrap().id, MonitorId(13));
    }

    #[test]
    fn stale_ids_are_not_returned() {
        let mut index = MonitorIndex::default();
        start(&mut index, device_monitor(1, b"x"));
        let stale = Entry {
            id: MonitorId(1),
            slot: index.slot_of[&MonitorId(1)],
        };
        index.remove(MonitorId(1)).unwrap();
        assert!(index.at(stale).is_none(), "a freed slot");
        start(&mut index, device_monitor(2, b"y"));
        assert_eq!(index.slot_of[&MonitorId(2)], stale.slot);
        assert!(index.at(stale).is_none(), "a reused slot");
        assert!(index.get(MonitorId(1)).is_none());
        assert!(index.get_mut(MonitorId(1)).is_none());
        assert!(index.remove(MonitorId(1)).is_none());
        assert!(matching_ids(&index, &on_devices(&[b"x"])).is_empty());
        assert_eq!(matching_ids(&index, &on_devices(&[b"x", b"y"])), [2]);
        assert_eq!(index.of_session(SessionId(1)).as_slice(), [MonitorId(2)]);
    }

    #[test]
    fn a_sessions_monitors_follow_its_inserts_replacements_and_removals() {
        let owned_by = |id: u32, session: u32| Monitor {
            session: SessionId(session),
            ..device_monitor(id, b"x")
        };
        let mut index = MonitorIndex::default();
        start(&mut index, owned_by(1, 7));
        start(&mut index, owned_by(2, 7));
        start(&mut index, owned_by(3, 8));
        assert_eq!(
            index.of_session(SessionId(7)).as_slice(),
            [MonitorId(1), MonitorId(2)]
        );
        // Inserting an id again replaces its monitor, owner included.
        index.insert(owned_by(2, 8));
        assert_eq!(index.of_session(SessionId(7)).as_slice(), [MonitorId(1)]);
        assert_eq!(
            index.of_session(SessionId(8)).as_slice(),
            [MonitorId(3), MonitorId(2)]
        );
        index.remove(MonitorId(1)).unwrap();
        assert!(index.of_session(SessionId(7)).is_empty());
        assert!(
            !index.by_session.contains_key(&SessionId(7)),
            "no empty lists kept"
        );
        index.remove(MonitorId(3)).unwrap();
        index.remove(MonitorId(2)).unwrap();
        assert!(index.by_session.is_empty());
    }

    #[test]
    fn ascending_after_merge_into_reused_slots() {
        let mut index = MonitorIndex::default();
        let (a, b) = (CallKey::new(1, 0, b"a"), CallKey::new(2, 0, b"b"));
        let call_monitor = |id, call| Monitor {
            watch: Watch::Call(call),
            ..device_monitor(id, b"")
        };
        // Slots 0..3; free slots 0 and 1, then refill them with higher ids.
        start(&mut index, device_monitor(1, b"x"));
        start(&mut index, device_monitor(2, b"x"));
        start(&mut index, call_monitor(3, b));
        start(&mut index, call_monitor(4, a));
        index.remove(MonitorId(1)).unwrap();
        index.remove(MonitorId(2)).unwrap();
        start(&mut index, call_monitor(5, a));
        start(&mut index, call_monitor(6, b));
        index.merge_call(a, b);
        let mut targets = Targets::default();
        targets.calls.push(b);
        assert_eq!(matching_ids(&index, &targets), [3, 4, 5, 6]);
        assert!(!index.by_call.contains_key(&a));
        let mut scratch = MatchScratch::new();
        assert!(index
            .matching(&targets, &mut scratch)
            .all(|m| m.watch == Watch::Call(b)));
        assert!(
            !index.count_up(InterestKey::Call(b)),
            "a's count moved to b"
        );
        index.count_down(InterestKey::Call(b));
        let ended = index.end_call(b);
        assert_eq!(
            ended.iter().map(|(m, _)| m.id.0).collect::<Vec<_>>(),
            [3, 6, 4, 5],
            "b's monitors, then a's"
        );
        assert_eq!(ended[3].1.as_slice(), &[InterestKey::Call(b)]);
        assert!(index.is_empty());
        assert_eq!(index.free.len(), 4);
    }

    #[test]
    fn dropped_call_monitors_free_their_slots() {
        let mut index = MonitorIndex::default();
        let call = CallKey::new(1, 0, b"a");
        start(&mut index, device_monitor(1, b"x"));
        start(
            &mut index,
            Monitor {
                watch: Watch::Call(call),
                ..device_monitor(2, b"")
            },
        );
        let dropped = index.drop_call_monitors();
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].id, MonitorId(2));
        assert!(index.get(MonitorId(2)).is_none());
        assert_eq!(index.len(), 1);
        assert!(
            index.count_up(InterestKey::Call(call)),
            "call counts cleared"
        );
        start(&mut index, device_monitor(3, b"x"));
        assert_eq!(index.slots.len(), 2, "the call monitor's slot is reused");
        assert_eq!(matching_ids(&index, &on_devices(&[b"x"])), [1, 3]);
    }

    #[test]
    fn keys_whose_table_hashes_collide_reach_only_their_own_monitors() {
        use crate::keys::AgentField;
        let device = DeviceKey::device(b"3001");
        let call = CallKey::new(7, 1, b"T100");
        let agent = AgentKey::new(AgentField::Id, b"1001");
        // Other ids forced onto the same table hashes.
        let other_device = DeviceKey::device(b"3002").colliding_with(device);
        let other_call = CallKey::new(7, 1, b"T200").colliding_with(call);
        let other_agent = AgentKey::new(AgentField::Id, b"1002").colliding_with(agent);
        let mut index = MonitorIndex::default();
        let watches = [
            Watch::Device(device),
            Watch::Device(other_device),
            Watch::Call(call),
            Watch::Call(other_call),
            Watch::Agent {
                agent,
                instrument: None,
            },
            Watch::Agent {
                agent: other_agent,
                instrument: None,
            },
        ];
        for (id, watch) in (1..).zip(watches) {
            let counted_first = watch.keys().into_iter().all(|k| index.count_up(k));
            assert!(counted_first, "monitor {id}: its key is its own");
            index.insert(Monitor {
                watch,
                ..device_monitor(id, b"")
            });
        }
        let targets = |d, c, a| {
            let mut t = Targets::default();
            t.devices.push(d);
            t.calls.push(c);
            t.agents.push(a);
            t
        };
        assert_eq!(
            matching_ids(&index, &targets(device, call, agent)),
            [1, 3, 5]
        );
        assert_eq!(
            matching_ids(&index, &targets(other_device, other_call, other_agent)),
            [2, 4, 6]
        );
        assert_eq!(index.end_call(other_call).len(), 1);
        assert_eq!(
            matching_ids(&index, &targets(device, call, agent)),
            [1, 3, 5]
        );
    }

    #[test]
    fn inserting_an_active_id_again_replaces_it() {
        let mut index = MonitorIndex::default();
        start(&mut index, device_monitor(1, b"x"));
        index.insert(device_monitor(1, b"y"));
        assert_eq!(index.len(), 1);
        assert!(matching_ids(&index, &on_devices(&[b"x"])).is_empty());
        assert_eq!(matching_ids(&index, &on_devices(&[b"y"])), [1]);
    }
}
