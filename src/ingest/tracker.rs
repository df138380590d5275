//! The call-party tracker: for every live call, the devices taking part in
//! it, so that an event naming only its call still reaches the monitors of its
//! devices; plus a directory of agents (device → agent) learned from agent
//! events. For each event it computes the full set of keys the event must
//! reach ([`Targets`]). Runs on the ingest core only; no I/O.
//!
//! # The rules (design.md §4 items 9–10, decided here where §4 is silent)
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
//!   END_CALL forget the call (reported in `ended_calls`).
//! * A call not seen for `max_age` is forgotten and counted (calls that never
//!   see their end must not grow memory forever).
//! * The tracker's state follows every event; the event's devices and agents
//!   are computed only when some shard holds keyed interest (a monitor or a
//!   Client Events session: [`Interest::is_keyed`]) — with All Events
//!   sessions only, nobody reads them. Calls, ended calls and merges are
//!   always reported (they re-key call monitors and the interest table).
//!
//! [`Interest::is_keyed`]: super::interest::Interest::is_keyed

use std::time::{Duration, Instant};

use smallvec::SmallVec;

use crate::keys::{AgentField, AgentKey, CallKey, DeviceKey, DeviceKind, KeyMap, Targets};
use crate::proto::constants::msg;
use crate::proto::routing::{CallSpan, RoutingKeys};
use crate::proto::tags;

/// The agent keys of one agent, found by its instrument or extension.
#[derive(Debug, Clone, Copy)]
struct AgentIdentity {
    keys: [Option<AgentKey>; 3],
}

struct CallState {
    devices: SmallVec<[DeviceKey; 8]>,
    last_seen: Instant,
}

/// Live calls and the devices in them; the agent directory.
pub struct CallTracker {
    calls: KeyMap<CallKey, CallState>,
    agents: KeyMap<DeviceKey, AgentIdentity>,
    max_age: Duration,
    next_sweep: Instant,
    /// Calls forgotten because they were not seen for `max_age`.
    pub nr_aged_out: u64,
}

/// NULL_CALL_ID (protocol.md §5.16): no second call.
const NULL_CALL_ID: u32 = 0xFFFF_FFFF;

/// How often the tracker looks for calls to age out.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

fn call_key(frame: &[u8], call: &CallSpan) -> Option<CallKey> {
    let id = call.device_id.map(|s| s.of(frame)).unwrap_or_default();
    Some(CallKey::new(call.call_id, call.device_id_type, id))
}

impl CallTracker {
    pub fn new(max_age: Duration) -> CallTracker {
        CallTracker {
            calls: KeyMap::default(),
            agents: KeyMap::default(),
            max_age,
            next_sweep: Instant::now() + SWEEP_INTERVAL,
            nr_aged_out: 0,
        }
    }

    pub fn nr_calls(&self) -> usize {
        self.calls.len()
    }

    pub fn knows_call(&self, call: CallKey) -> bool {
        self.calls.contains_key(&call)
    }

    /// Forget every call (the upstream was lost: the calls' fate is unknown).
    pub fn clear_calls(&mut self) {
        self.calls.clear();
    }

    /// The keys `frame` (with routing `keys`) must reach; updates the tracker.
    /// With `keyed` false (no shard holds keyed interest) the devices and
    /// agents of the targets are left empty; the tracker's state is the same.
    pub fn observe(
        &mut self,
        frame: &[u8],
        keys: &RoutingKeys,
        now: Instant,
        keyed: bool,
    ) -> Targets {
        let mut t = Targets::default();
        let primary = keys.call.as_ref().and_then(|c| call_key(frame, c));
        let other = keys
            .other_call
            .as_ref()
            .filter(|c| c.call_id != 0 && c.call_id != NULL_CALL_ID)
            .and_then(|c| call_key(frame, c));
        t.calls.extend(primary);
        t.calls.extend(other.filter(|o| Some(*o) != primary));

        let named = named_devices(frame, keys);
        self.learn_agent(frame, keys);
        for call in &t.calls {
            let state = self.calls.entry(*call).or_insert_with(|| CallState {
                devices: SmallVec::new(),
                last_seen: now,
            });
            state.last_seen = now;
            if keyed {
                push_all(&mut t.devices, &state.devices);
            }
            push_all(&mut state.devices, &named);
        }
        if keyed {
            push_all(&mut t.devices, &named);
            self.agent_targets(frame, keys, &mut t);
        }
        self.apply_removals(frame, keys, primary, other, &mut t);
        self.maybe_sweep(now);
        t
    }

    fn learn_agent(&mut self, frame: &[u8], keys: &RoutingKeys) {
        if keys.message_type != msg::AGENT_STATE_EVENT {
            return;
        }
        let identity = AgentIdentity {
            keys: agent_field_keys(frame, keys),
        };
        for span in [keys.agent_instrument, keys.agent_extension]
            .into_iter()
            .flatten()
        {
            let id = span.of(frame);
            if !id.is_empty() {
                self.agents.insert(DeviceKey::device(id), identity);
            }
        }
    }

    fn agent_targets(&self, frame: &[u8], keys: &RoutingKeys, t: &mut Targets) {
        for key in agent_field_keys(frame, keys).into_iter().flatten() {
            push_unique(&mut t.agents, key);
        }
        for device in t.devices.iter() {
            if let Some(agent) = self.agents.get(device) {
                for key in agent.keys.into_iter().flatten() {
                    push_unique(&mut t.agents, key);
                }
            }
        }
    }

    fn apply_removals(
        &mut self,
        frame: &[u8],
        keys: &RoutingKeys,
        primary: Option<CallKey>,
        other: Option<CallKey>,
        t: &mut Targets,
    ) {
        let device_of = |tag: u16| {
            keys.devices()
                .iter()
                .find(|(t, _)| *t == tag)
                .map(|(_, s)| s.of(frame))
                .filter(|d| !d.is_empty())
                .map(DeviceKey::device)
        };
        match keys.message_type {
            msg::CALL_CONNECTION_CLEARED_EVENT => {
                let gone =
                    device_of(tags::RELEASING_DEVID).or_else(|| device_of(tags::CONNECTION_DEVID));
                if let (Some(call), Some(gone)) = (primary, gone) {
                    if let Some(state) = self.calls.get_mut(&call) {
                        state.devices.retain(|d| *d != gone);
                    }
                }
            }
            msg::CALL_CLEARED_EVENT | msg::END_CALL_EVENT => {
                if let Some(call) = primary {
                    self.calls.remove(&call);
                    t.ended_calls.push(call);
                }
            }
            msg::CALL_CONFERENCED_EVENT | msg::CALL_TRANSFERRED_EVENT => {
                if let (Some(to), Some(from)) = (primary, other.filter(|o| Some(*o) != primary)) {
                    self.merge(from, to);
                    t.merged = Some((from, to));
                }
                if keys.message_type == msg::CALL_TRANSFERRED_EVENT {
                    if let (Some(call), Some(gone)) = (primary, device_of(tags::TRANSFERRING_DEVID))
                    {
                        if let Some(state) = self.calls.get_mut(&call) {
                            state.devices.retain(|d| *d != gone);
                        }
                    }
                }
            }
            msg::CALL_DATA_UPDATE_EVENT => {
                if let (Some(from), Some(to)) = (primary, other) {
                    if from != to {
                        self.merge(from, to);
                        t.merged = Some((from, to));
                    }
                }
            }
            _ => {}
        }
    }

    /// Fold call `from`'s devices into call `to` and forget `from`.
    fn merge(&mut self, from: CallKey, to: CallKey) {
        if let Some(old) = self.calls.remove(&from) {
            let now = old.last_seen;
            let state = self.calls.entry(to).or_insert_with(|| CallState {
                devices: SmallVec::new(),
                last_seen: now,
            });
            push_all(&mut state.devices, &old.devices);
        }
    }

    fn maybe_sweep(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_INTERVAL;
        let before = self.calls.len();
        let max_age = self.max_age;
        self.calls
            .retain(|_, state| now.duration_since(state.last_seen) < max_age);
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

/// AgentKeys of the agent fields the event carries.
fn agent_field_keys(frame: &[u8], keys: &RoutingKeys) -> [Option<AgentKey>; 3] {
    let key = |field, span: Option<crate::proto::routing::Span>| {
        span.map(|s| s.of(frame))
            .filter(|v| !v.is_empty())
            .map(|v| AgentKey::new(field, v))
    };
    [
        key(AgentField::Id, keys.agent_id),
        key(AgentField::Extension, keys.agent_extension),
        key(AgentField::Instrument, keys.agent_instrument),
    ]
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

#[cfg(test)]
mod tests;
