//! The call-party tracker: for every live call, the devices taking part in
//! it, so that an event naming only its call still reaches the monitors of its
//! devices, and the call's data (`crate::call`); plus the agent table
//! (device → agent, latest state) learned from agent events. For each event
//! it computes the full set of keys the event must reach ([`Targets`]) and,
//! for events of a call, the facts shards bracket the call with (call data
//! before the event, who leaves, what merges: docs/call-brackets.md). Runs
//! on the ingest core only; no I/O.
//!
//! # The rules (docs/design.md §4 items 9–10, decided here where §4 is silent)
//! * An event's **calls** are its call identity (ConnectionCallID +
//!   ConnectionDeviceIDType + ConnectionDeviceID; for CALL_CONFERENCED/
//!   TRANSFERRED the Primary call) and its second call (the Secondary call, or
//!   CALL_DATA_UPDATE's new call).
//! * Its **named devices** are every device-id field it carries (connection,
//!   alerting, calling, called, last-redirect, answering, holding, retrieving,
//!   releasing, failing, primary, secondary, controller, added-party,
//!   transferring, transferred, diverting, queue, trunk-used, party and COC
//!   device ids; AgentInstrument/AgentExtension/AgentID), TrunkNumber and
//!   TrunkGroupNumber (as trunk / trunk-group devices, in decimal).
//! * Every named device **takes part** in the event's calls from this event on.
//! * Its **devices** (targets) are its named devices plus every device taking
//!   part in any of its calls (as known before this event's removals).
//! * Its **agents** are AgentKey(field, value) for each agent field it carries,
//!   and, for each target device that is a known agent's instrument or
//!   extension (learned from AGENT_STATE_EVENTs), that agent's id, extension
//!   and instrument keys.
//! * After the targets are computed: CALL_CONNECTION_CLEARED removes the
//!   releasing device (or, without one, the connection device) from the call;
//!   CALL_TRANSFERRED removes the transferring device; CALL_CONFERENCED and
//!   CALL_TRANSFERRED merge the Secondary call's devices into the Primary call
//!   and forget the Secondary (reported as `merged`); a CALL_DATA_UPDATE whose
//!   new call differs renames the call (also `merged`); CALL_CLEARED and
//!   END_CALL forget the call (reported in `ended_calls`). The device removed
//!   is reported as leaving the call (its watchers' brackets end).
//! * A call's data is folded from BEGIN_CALL, CALL_DATA_UPDATE and
//!   CALL_DELIVERED (docs/call-brackets.md, "The call's data"); a merged call's
//!   data is reported with the merge, a renamed call keeps its data.
//! * A call not seen for `max_age` is forgotten and counted (calls that never
//!   see their end must not grow memory forever).
//! * Each call also keeps its parties — per device, its connection's device
//!   type and LocalConnectionState as the last event naming it left it —
//!   and the tracker a device → live calls index, from which it answers
//!   SNAPSHOT_CALL_REQ and SNAPSHOT_DEVICE_REQ (`snapshot`, whose doc has
//!   the state rules; docs/call-brackets.md "Call snapshots").
//! * The tracker's state follows every event; the event's devices and agents
//!   are computed only when some shard holds keyed interest (a monitor or a
//!   Client Events session: [`Interest::is_keyed`]) — with All Events
//!   sessions only, nobody reads them. Calls, ended calls and merges are
//!   always reported (they re-key call monitors and the interest table).
//!
//! [`Interest::is_keyed`]: super::interest::Interest::is_keyed

use std::sync::Arc;
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use self::snapshot::{DeviceIndex, Party};
use super::agents::{agent_field_keys, AgentTable};
use crate::call::{Bracket, CallData, CallRecord};
use crate::keys::{CallKey, DeviceKey, DeviceKind, GrowingKeyMap};
use crate::proto::constants::msg;
use crate::proto::routing::{CallSpan, RoutingKeys};
use crate::proto::{tags, CtiString, DecodeOptions, Message, Version};
use crate::targets::Targets;

struct CallState {
    devices: SmallVec<[DeviceKey; 8]>,
    last_seen: Instant,
    /// The call's data as the upstream has told it so far.
    record: Arc<CallRecord>,
    /// Its connections, in the order they joined (`snapshot`).
    parties: SmallVec<[Party; 2]>,
    /// The tracker saw the call from its BEGIN_CALL on (and all it merged
    /// with): its snapshot can be answered.
    complete: bool,
}

/// Live calls, the devices in them and their data; the agent table.
pub struct CallTracker {
    calls: GrowingKeyMap<CallKey, CallState>,
    /// The live calls each device has a connection in (`snapshot`).
    by_device: DeviceIndex,
    /// Every agent reported, by id, extension and instrument.
    pub agents: AgentTable,
    max_age: Duration,
    next_sweep: Instant,
    /// Calls forgotten because they were not seen for `max_age`, since
    /// [`CallTracker::take_aged_out`] last took them.
    nr_aged_out: u64,
}

/// NULL_CALL_ID (docs/protocol.md §5.16): no second call.
const NULL_CALL_ID: u32 = 0xFFFF_FFFF;

/// How often the tracker looks for calls to age out.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Body offset of PeripheralType in the common call-event header (§4.5).
const PERIPHERAL_TYPE_AT: usize = 8;

fn call_key(frame: &[u8], call: &CallSpan) -> CallKey {
    let id = call.device_id.map(|s| s.of(frame)).unwrap_or_default();
    CallKey::new(call.call_id, call.device_id_type, id)
}

/// A fresh record for a call first seen in this event.
fn new_record(frame: &[u8], keys: &RoutingKeys, call: &CallSpan) -> Arc<CallRecord> {
    let peripheral_type = frame
        .get(crate::proto::frame::HEADER_LEN + PERIPHERAL_TYPE_AT..)
        .and_then(|b| b.get(..2))
        .filter(|_| keys.peripheral_id.is_some())
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let mut data = CallData::new(
        keys.peripheral_id.unwrap_or(0),
        peripheral_type,
        call.call_id,
        call.device_id_type,
    );
    data.device_id = CtiString::new(call.device_id.map(|s| s.of(frame)).unwrap_or_default());
    CallRecord::new(data)
}

/// Whether an event has call data to fold: BEGIN_CALL and CALL_DATA_UPDATE
/// always (CallType), CALL_DELIVERED when it carries data fields (most
/// carry none: decoding them would cost ingest for nothing).
fn has_call_data(keys: &RoutingKeys) -> bool {
    match keys.message_type {
        msg::BEGIN_CALL_EVENT | msg::CALL_DATA_UPDATE_EVENT => true,
        msg::CALL_DELIVERED_EVENT => keys.carries_call_data,
        _ => false,
    }
}

/// What an event's removals did (after its targets were computed).
#[derive(Default)]
struct Removals {
    /// The device that left the call.
    leaving: Option<DeviceKey>,
    /// The Secondary call folded into the primary, with its data.
    folded: Option<(CallKey, Arc<CallRecord>)>,
    /// The call's new name.
    renamed: Option<CallKey>,
}

impl CallTracker {
    pub fn new(max_age: Duration) -> CallTracker {
        CallTracker {
            calls: GrowingKeyMap::default(),
            by_device: DeviceIndex::default(),
            agents: AgentTable::default(),
            max_age,
            next_sweep: Instant::now() + SWEEP_INTERVAL,
            nr_aged_out: 0,
        }
    }

    pub fn nr_calls(&self) -> usize {
        self.calls.len()
    }

    /// The calls aged out since the last call (ingest adds them to
    /// `Metrics::nr_calls_aged_out` with each batch it publishes).
    pub fn take_aged_out(&mut self) -> u64 {
        std::mem::take(&mut self.nr_aged_out)
    }

    /// Whether `device` takes part in `call` (as far as the events told).
    pub fn call_has_device(&self, call: CallKey, device: DeviceKey) -> bool {
        self.calls
            .get(&call)
            .is_some_and(|c| c.devices.contains(&device))
    }

    pub fn knows_call(&self, call: CallKey) -> bool {
        self.calls.contains_key(&call)
    }

    /// Forget every call (the upstream was lost: the calls' fate is unknown,
    /// and so is whether an agent reported idle still is).
    pub fn clear_calls(&mut self) {
        self.calls.clear();
        self.by_device.clear();
        self.agents.mark_stale();
    }

    /// The keys `frame` (with routing `keys`, at `version`) must reach;
    /// updates the tracker. With `keyed` false (no shard holds keyed
    /// interest) the devices, agents and bracket of the targets are left
    /// empty; the tracker's state is the same.
    pub fn observe(
        &mut self,
        frame: &[u8],
        keys: &RoutingKeys,
        version: Version,
        now: Instant,
        keyed: bool,
    ) -> Targets {
        let mut t = Targets::default();
        let primary = keys.call.as_ref().map(|c| (call_key(frame, c), c));
        let other = keys
            .other_call
            .as_ref()
            .filter(|c| c.call_id != 0 && c.call_id != NULL_CALL_ID)
            .map(|c| (call_key(frame, c), c))
            .filter(|(o, _)| Some(*o) != primary.map(|p| p.0));
        let named = named_devices(frame, keys);
        self.agents.observe(frame, keys, version);
        for (call, span) in primary.into_iter().chain(other) {
            t.calls.push(call);
            let state = self.calls.entry(call).or_insert_with(|| CallState {
                devices: SmallVec::new(),
                last_seen: now,
                record: new_record(frame, keys, span),
                parties: SmallVec::new(),
                complete: keys.message_type == msg::BEGIN_CALL_EVENT,
            });
            state.last_seen = now;
            if keyed {
                push_all(&mut t.devices, &state.devices);
            }
            push_all(&mut state.devices, &named);
        }
        let before =
            primary.and_then(|(call, _)| self.fold_data(call, frame, keys, version, keyed));
        if let Some((call, _)) = primary {
            self.observe_party(frame, keys, call);
        }
        if keyed {
            push_all(&mut t.devices, &named);
            self.agent_targets(frame, keys, &mut t);
        }
        let removals = self.apply_removals(frame, keys, primary, other, &mut t);
        if let (true, Some((call, _)), Some(before)) = (keyed, primary, before) {
            t.bracket = Some(self.bracket(keys, call, before, removals));
        }
        self.maybe_sweep(now);
        t
    }

    /// Fold the data `frame` carries into its call's record; returns the
    /// record as it was before when `keep_before` (a bracket needs it). A
    /// record nobody else holds is changed in place; one that events in
    /// flight still carry is replaced.
    fn fold_data(
        &mut self,
        call: CallKey,
        frame: &[u8],
        keys: &RoutingKeys,
        version: Version,
        keep_before: bool,
    ) -> Option<Arc<CallRecord>> {
        let state = self.calls.get_mut(&call)?;
        let before = keep_before.then(|| state.record.clone());
        if !has_call_data(keys) {
            return before;
        }
        let body = frame
            .get(crate::proto::frame::HEADER_LEN..)
            .unwrap_or_default();
        let options = DecodeOptions::COUNTS_UNCHECKED;
        let Ok(message) = Message::decode(keys.message_type, body, version, options) else {
            return before;
        };
        match Arc::get_mut(&mut state.record) {
            Some(record) => {
                record.fold(message);
            }
            None => {
                let mut data = state.record.data.clone();
                if data.fold(message) {
                    state.record = CallRecord::new(data);
                }
            }
        }
        before
    }

    fn bracket(
        &self,
        keys: &RoutingKeys,
        call: CallKey,
        before: Arc<CallRecord>,
        removals: Removals,
    ) -> Bracket {
        let mut leaving_agents = SmallVec::new();
        if let Some(agent) = removals
            .leaving
            .as_ref()
            .and_then(|d| self.agents.keys_of_device(d))
        {
            leaving_agents.extend(agent.iter().flatten().copied());
        }
        Bracket {
            call,
            before,
            ends_call: matches!(
                keys.message_type,
                msg::CALL_CLEARED_EVENT | msg::END_CALL_EVENT
            ),
            leaving: removals.leaving.into_iter().collect(),
            leaving_agents,
            folded: removals.folded,
            renamed: removals.renamed,
        }
    }

    fn agent_targets(&self, frame: &[u8], keys: &RoutingKeys, t: &mut Targets) {
        for key in agent_field_keys(frame, keys).into_iter().flatten() {
            push_unique(&mut t.agents, key);
        }
        for device in t.devices.iter() {
            if let Some(agent) = self.agents.keys_of_device(device) {
                for key in agent.iter().flatten() {
                    push_unique(&mut t.agents, *key);
                }
            }
        }
    }

    fn apply_removals(
        &mut self,
        frame: &[u8],
        keys: &RoutingKeys,
        primary: Option<(CallKey, &CallSpan)>,
        other: Option<(CallKey, &CallSpan)>,
        t: &mut Targets,
    ) -> Removals {
        let device_of = |tag: u16| {
            keys.devices()
                .iter()
                .find(|(t, _)| *t == tag)
                .map(|(_, s)| s.of(frame))
                .filter(|d| !d.is_empty())
                .map(DeviceKey::device)
        };
        let (primary, other) = (primary.map(|p| p.0), other.map(|o| o.0));
        let mut removals = Removals::default();
        match keys.message_type {
            msg::CALL_CONNECTION_CLEARED_EVENT => {
                let gone =
                    device_of(tags::RELEASING_DEVID).or_else(|| device_of(tags::CONNECTION_DEVID));
                if let (Some(call), Some(gone)) = (primary, gone) {
                    self.remove_device(call, gone);
                }
                removals.leaving = gone;
            }
            msg::CALL_CLEARED_EVENT | msg::END_CALL_EVENT => {
                if let Some(call) = primary {
                    self.forget_call(call);
                    t.ended_calls.push(call);
                }
            }
            msg::CALL_CONFERENCED_EVENT | msg::CALL_TRANSFERRED_EVENT => {
                if let (Some(to), Some(from)) = (primary, other) {
                    removals.folded = self.merge(from, to).map(|record| (from, record));
                    t.merged = Some((from, to));
                }
                if let Some(call) = primary {
                    self.connect_merged(frame, keys, call);
                }
                if keys.message_type == msg::CALL_TRANSFERRED_EVENT {
                    let gone = device_of(tags::TRANSFERRING_DEVID);
                    if let (Some(call), Some(gone)) = (primary, gone) {
                        self.remove_device(call, gone);
                    }
                    removals.leaving = gone;
                }
            }
            msg::CALL_DATA_UPDATE_EVENT => {
                if let (Some(from), Some(to)) = (primary, other) {
                    self.rename(from, to);
                    t.merged = Some((from, to));
                    removals.renamed = Some(to);
                }
            }
            _ => {}
        }
        removals
    }

    fn remove_device(&mut self, call: CallKey, gone: DeviceKey) {
        if let Some(state) = self.calls.get_mut(&call) {
            state.devices.retain(|d| *d != gone);
        }
        self.remove_party(call, gone);
    }

    /// Fold call `from`'s devices and parties into call `to` and forget
    /// `from`; returns `from`'s data.
    fn merge(&mut self, from: CallKey, to: CallKey) -> Option<Arc<CallRecord>> {
        let mut old = self.calls.remove(&from)?;
        self.move_parties(from, &mut old, to);
        if let Some(state) = self.calls.get_mut(&to) {
            push_all(&mut state.devices, &old.devices);
            state.complete &= old.complete;
        }
        Some(old.record)
    }

    /// Call `from` is now called `to`: its devices, parties and data move
    /// there.
    fn rename(&mut self, from: CallKey, to: CallKey) {
        let Some(mut old) = self.calls.remove(&from) else {
            return;
        };
        self.move_parties(from, &mut old, to);
        if let Some(state) = self.calls.get_mut(&to) {
            push_all(&mut state.devices, &old.devices);
            state.complete = old.complete;
            let mut data = old.record.data.clone();
            let name = &state.record.data;
            data.call_id = name.call_id;
            data.device_id_type = name.device_id_type;
            data.device_id = name.device_id.clone();
            state.record = CallRecord::new(data);
        }
    }

    fn maybe_sweep(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_INTERVAL;
        let before = self.calls.len();
        let max_age = self.max_age;
        let by_device = &mut self.by_device;
        self.calls.retain(|call, state| {
            let keep = now.duration_since(state.last_seen) < max_age;
            if !keep {
                snapshot::unindex(by_device, *call, state);
            }
            keep
        });
        let aged = (before - self.calls.len()) as u64;
        if aged > 0 {
            self.nr_aged_out += aged;
            tracing::info!(calls = aged, "aged out calls that never ended");
        }
    }
}

/// Device keys of every device-id field, trunk and trunk group of the event.
fn named_devices(frame: &[u8], keys: &RoutingKeys) -> SmallVec<[DeviceKey; 16]> {
    let mut out = SmallVec::new();
    for (_, span) in keys.devices() {
        let id = span.of(frame);
        if !id.is_empty() {
            push_unique(&mut out, DeviceKey::device(id));
        }
    }
    if let Some(n) = keys.trunk_number {
        push_unique(&mut out, DeviceKey::number(DeviceKind::Trunk, n));
    }
    if let Some(n) = keys.trunk_group_number {
        push_unique(&mut out, DeviceKey::number(DeviceKind::TrunkGroup, n));
    }
    out
}

fn push_unique<T: PartialEq + Copy, const N: usize>(v: &mut SmallVec<[T; N]>, x: T)
where
    [T; N]: smallvec::Array<Item = T>,
{
    if !v.contains(&x) {
        v.push(x);
    }
}

fn push_all<T: PartialEq + Copy, const N: usize, const M: usize>(
    v: &mut SmallVec<[T; N]>,
    xs: &SmallVec<[T; M]>,
) where
    [T; N]: smallvec::Array<Item = T>,
    [T; M]: smallvec::Array<Item = T>,
{
    for &x in xs.iter() {
        push_unique(v, x);
    }
}

mod snapshot;

pub use snapshot::MAX_SNAPSHOT_ENTRIES;

#[cfg(test)]
mod tests;
