//! Call snapshots from the tracker's own table: for every live call its
//! parties — each connection's device, device type and LocalConnectionState
//! as the last event naming that connection left it — and, per device, the
//! live calls it has a connection in; from them (and the call's data,
//! [`CallRecord`]) the SNAPSHOT_CALL_CONF and SNAPSHOT_DEVICE_CONF a CTI
//! Server would answer (docs/requests.md §6, docs/protocol.md §12.2).
//! `None` means the tracker cannot know the answer: the request goes
//! upstream. The rules are in docs/call-brackets.md ("Call snapshots").
//!
//! # State rules
//! A call's connections are named by the call's identity (the tracker keys
//! calls by ConnectionCallID + ConnectionDeviceIDType + ConnectionDeviceID),
//! one per device. An event's LocalConnectionState is the state of the
//! connection of its *subject* — the device it is about:
//!
//! | event | subject (its DeviceType) | state without a valid LCS |
//! |---|---|---|
//! | CALL_DELIVERED | AlertingDeviceID | ALERTING |
//! | CALL_ESTABLISHED | AnsweringDeviceID | CONNECT |
//! | CALL_HELD | HoldingDeviceID | HOLD |
//! | CALL_RETRIEVED | RetrievingDeviceID | CONNECT |
//! | CALL_ORIGINATED, CALL_SERVICE_INITIATED | CallingDeviceID | CONNECT, INITIATE |
//! | CALL_FAILED | FailingDeviceID | FAIL |
//! | CALL_REACHED_NETWORK | TrunkUsedDeviceID, else CalledDeviceID | CONNECT |
//! | CALL_QUEUED, CALL_DEQUEUED | the connection device | QUEUED, CONNECT |
//!
//! (an event without its subject field names the connection device). A
//! subject left in LCS_NULL leaves the call, and so do the releasing device
//! of CALL_CONNECTION_CLEARED (else the connection device), the diverting
//! device of CALL_DIVERTED and the transferring device of CALL_TRANSFERRED.
//! CALL_CONFERENCED and CALL_TRANSFERRED move the Secondary call's parties
//! into the Primary call (a device in both keeps one connection, the
//! Primary's), then the controller (at the event's LCS), the added party,
//! the transferred device and every ConnectedParty are connected. Events
//! without a LocalConnectionState (BEGIN_CALL, CALL_DATA_UPDATE, END_CALL,
//! …) change no party; CALL_CLEARED and END_CALL forget the call.
//!
//! # What is answered
//! A call is answered when the tracker saw its first event (BEGIN_CALL:
//! the CTI Server opens every call with it) and everything merged into it
//! since: a call first seen mid-way (after a restart or an upstream loss),
//! or merged with one, or listing a connected party the tracker never saw
//! join, is proxied — its earlier parties or data are unknown. So is a call
//! with more than 16 parties (MAX_NUM_DEVICES: which 16 the CTI Server
//! would list is not known). A device is answered when every live call it
//! has a connection in was seen whole (as above) and there are at most 16
//! (MAX_NUM_CALLS); a device in no live call is answered (NumCalls 0) only
//! when it is the extension or instrument of an agent reported since the
//! last upstream loss whose state does not put it on a call (TALKING, HOLD:
//! a call the tracker does not know).
//!
//! # Cost and memory
//! On the event path: two fixed-offset reads (LCS, DeviceType) and one
//! device-key lookup in the call's short party list; a string is copied and
//! the device index touched only when a device joins or leaves a call.
//! A call has at most one party per device it already tracks for routing
//! (its `devices`: every subject is a named device), the index one entry
//! per party; both go with the call (END_CALL, CALL_CLEARED, merge, ageing,
//! upstream loss), so they stay within the call table's own bounds.
//!
//! [`CallRecord`]: crate::call::CallRecord

use smallvec::SmallVec;

use super::{CallState, CallTracker};
use crate::keys::{CallKey, DeviceKey, GrowingKeyMap};
use crate::proto::constants::{agent_state, device_type, lcs, msg};
use crate::proto::frame::HEADER_LEN;
use crate::proto::group::{CallDevice, DeviceCall};
use crate::proto::msg::{SnapshotCallConf, SnapshotDeviceConf};
use crate::proto::routing::RoutingKeys;
use crate::proto::{tags, CtiString};

/// MAX_NUM_DEVICES (SNAPSHOT_CALL_CONF) and MAX_NUM_CALLS
/// (SNAPSHOT_DEVICE_CONF), docs/protocol.md §5.16.
pub const MAX_SNAPSHOT_ENTRIES: usize = 16;

/// One connection of a call: the device it belongs to and its state.
#[derive(Debug, Clone)]
pub(super) struct Party {
    pub device: DeviceKey,
    /// The device id as events spell it (CallDeviceID).
    pub id: CtiString,
    /// CallDeviceType (docs/protocol.md §5.5).
    pub device_type: u16,
    /// LocalConnectionState (docs/protocol.md §5.11).
    pub state: u16,
}

/// Per device, the live calls it has a connection in, in the order it
/// joined them.
pub(super) type DeviceIndex = GrowingKeyMap<DeviceKey, SmallVec<[CallKey; 2]>>;

/// The device whose connection an event's LocalConnectionState describes.
struct Subject {
    /// The fields that may name it, with the body offset of each one's
    /// DeviceType; the first present wins, none: the connection device.
    fields: &'static [(u16, usize)],
    /// Body offset of LocalConnectionState.
    lcs_at: usize,
    /// Its state when the event carries no valid LocalConnectionState.
    default: u16,
    /// It leaves the call whatever the state says.
    leaves: bool,
}

const fn subject(fields: &'static [(u16, usize)], lcs_at: usize, default: u16) -> Subject {
    Subject {
        fields,
        lcs_at,
        default,
        leaves: false,
    }
}

/// The subject of each call event that has one (fixed-part offsets of
/// docs/protocol.md §4.5, the same at every version served).
fn subject_of(message_type: u32) -> Option<Subject> {
    Some(match message_type {
        msg::CALL_DELIVERED_EVENT => subject(&[(tags::ALERTING_DEVID, 38)], 46, lcs::ALERTING),
        msg::CALL_ESTABLISHED_EVENT => subject(&[(tags::ANSWERING_DEVID, 38)], 46, lcs::CONNECT),
        msg::CALL_HELD_EVENT => subject(&[(tags::HOLDING_DEVID, 16)], 18, lcs::HOLD),
        msg::CALL_RETRIEVED_EVENT => subject(&[(tags::RETRIEVING_DEVID, 16)], 18, lcs::CONNECT),
        msg::CALL_ORIGINATED_EVENT => subject(&[(tags::CALLING_DEVID, 38)], 42, lcs::CONNECT),
        msg::CALL_FAILED_EVENT => subject(&[(tags::FAILING_DEVID, 16)], 20, lcs::FAIL),
        msg::CALL_SERVICE_INITIATED_EVENT => {
            subject(&[(tags::CALLING_DEVID, 38)], 40, lcs::INITIATE)
        }
        msg::CALL_REACHED_NETWORK_EVENT => subject(
            &[(tags::TRUNK_USED_DEVID, 20), (tags::CALLED_DEVID, 22)],
            24,
            lcs::CONNECT,
        ),
        msg::CALL_QUEUED_EVENT => subject(&[], 36, lcs::QUEUED),
        msg::CALL_DEQUEUED_EVENT => subject(&[], 30, lcs::CONNECT),
        msg::CALL_DIVERTED_EVENT => Subject {
            leaves: true,
            ..subject(&[(tags::DIVERTING_DEVID, 24)], 28, lcs::NULL)
        },
        _ => return None,
    })
}

/// A USHORT of the fixed part at body offset `at` (routing's extraction has
/// checked the fixed part is whole).
#[inline]
fn fixed_u16(frame: &[u8], at: usize) -> Option<u16> {
    let b = frame.get(HEADER_LEN + at..HEADER_LEN + at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// The event's state for its subject: its LocalConnectionState when valid
/// (LCS_NULL … LCS_FAIL), else `default`.
#[inline]
fn state_of(carried: Option<u16>, default: u16) -> u16 {
    match carried {
        Some(state @ lcs::NULL..=lcs::FAIL) => state,
        _ => default,
    }
}

/// The first device-id field of the event with `tag`, if not empty.
#[inline]
fn device_field<'a>(frame: &'a [u8], keys: &RoutingKeys, tag: u16) -> Option<&'a [u8]> {
    keys.devices()
        .iter()
        .find(|(t, _)| *t == tag)
        .map(|(_, s)| s.of(frame))
        .filter(|d| !d.is_empty())
}

fn index_add(index: &mut DeviceIndex, device: DeviceKey, call: CallKey) {
    let calls = index.entry(device).or_default();
    if !calls.contains(&call) {
        calls.push(call);
    }
}

fn index_remove(index: &mut DeviceIndex, device: DeviceKey, call: CallKey) {
    if let Some(calls) = index.get_mut(&device) {
        calls.retain(|c| *c != call);
        if calls.is_empty() {
            index.remove(&device);
        }
    }
}

/// `device`'s connection in call `from` is now one in call `to` (in place:
/// it keeps its rank among the device's calls).
fn index_move(index: &mut DeviceIndex, device: DeviceKey, from: CallKey, to: CallKey) {
    if let Some(calls) = index.get_mut(&device) {
        if calls.contains(&to) {
            calls.retain(|c| *c != from);
        } else if let Some(c) = calls.iter_mut().find(|c| **c == from) {
            *c = to;
        }
    }
}

/// Set `device`'s connection in `call` to `state` (`NULL`: it leaves),
/// adding it if new. A `device_type` of DEVID_NONE keeps the one known.
fn set_party(
    index: &mut DeviceIndex,
    call: CallKey,
    state: &mut CallState,
    id: &[u8],
    device_type: u16,
    new_state: u16,
) {
    let device = DeviceKey::device(id);
    match state.parties.iter().position(|p| p.device == device) {
        Some(at) if new_state == lcs::NULL => {
            state.parties.remove(at);
            index_remove(index, device, call);
        }
        Some(at) => {
            let party = &mut state.parties[at];
            party.state = new_state;
            if device_type != device_type::NONE {
                party.device_type = device_type;
            }
        }
        None if new_state == lcs::NULL => {}
        None => {
            state.parties.push(Party {
                device,
                id: CtiString::new(id),
                device_type,
                state: new_state,
            });
            index_add(index, device, call);
        }
    }
}

impl CallTracker {
    /// Apply what a call event says about its subject's connection in its
    /// primary `call` (the state rules above; merges and removals are
    /// applied with the routing removals).
    pub(super) fn observe_party(&mut self, frame: &[u8], keys: &RoutingKeys, call: CallKey) {
        let Some(subject) = subject_of(keys.message_type) else {
            return;
        };
        let Some(state) = self.calls.get_mut(&call) else {
            return;
        };
        let named = subject.fields.iter().find_map(|&(tag, type_at)| {
            device_field(frame, keys, tag).map(|id| (id, fixed_u16(frame, type_at)))
        });
        let (id, device_type) = match named {
            Some((id, device_type)) => (id, device_type.unwrap_or(device_type::NONE)),
            None => {
                let connection = keys.call.and_then(|c| c.device_id).map(|s| s.of(frame));
                match connection.filter(|d| !d.is_empty()) {
                    Some(id) => (id, device_type::NONE),
                    None => return,
                }
            }
        };
        let new_state = match subject.leaves {
            true => lcs::NULL,
            false => state_of(fixed_u16(frame, subject.lcs_at), subject.default),
        };
        set_party(&mut self.by_device, call, state, id, device_type, new_state);
    }

    /// After a conference or transfer merged into `call`: the controller
    /// (at the event's LCS), the added party, the transferred device and
    /// every ConnectedParty are connected. One the call did not have makes
    /// its snapshot unknown (its joining was never seen).
    pub(super) fn connect_merged(&mut self, frame: &[u8], keys: &RoutingKeys, call: CallKey) {
        let Some(state) = self.calls.get_mut(&call) else {
            return;
        };
        let named: &[(u16, usize, u16)] = match keys.message_type {
            msg::CALL_CONFERENCED_EVENT => &[
                (
                    tags::CONTROLLER_DEVID,
                    38,
                    state_of(fixed_u16(frame, 42), lcs::CONNECT),
                ),
                (tags::ADDED_PARTY_DEVID, 40, lcs::CONNECT),
            ],
            _ => &[(tags::TRANSFERRED_DEVID, 40, lcs::CONNECT)],
        };
        for &(tag, type_at, new_state) in named {
            if let Some(id) = device_field(frame, keys, tag) {
                let device_type = fixed_u16(frame, type_at).unwrap_or(device_type::NONE);
                if !state
                    .parties
                    .iter()
                    .any(|p| p.device.eq(&DeviceKey::device(id)))
                {
                    state.complete = false;
                }
                set_party(&mut self.by_device, call, state, id, device_type, new_state);
            }
        }
        for (_, span) in keys
            .devices()
            .iter()
            .filter(|(t, _)| *t == tags::PARTY_DEVID)
        {
            let id = span.of(frame);
            if id.is_empty() {
                continue;
            }
            if !state
                .parties
                .iter()
                .any(|p| p.device == DeviceKey::device(id))
            {
                state.complete = false;
            }
            set_party(
                &mut self.by_device,
                call,
                state,
                id,
                device_type::NONE,
                lcs::CONNECT,
            );
        }
    }

    /// `device` left `call`.
    pub(super) fn remove_party(&mut self, call: CallKey, device: DeviceKey) {
        if let Some(state) = self.calls.get_mut(&call) {
            if let Some(at) = state.parties.iter().position(|p| p.device == device) {
                state.parties.remove(at);
                index_remove(&mut self.by_device, device, call);
            }
        }
    }

    /// Forget `call` and its parties.
    pub(super) fn forget_call(&mut self, call: CallKey) {
        if let Some(state) = self.calls.remove(&call) {
            unindex(&mut self.by_device, call, &state);
        }
    }

    /// Call `from` (already out of the table, as `old`) goes on as call
    /// `to`: its parties join `to`'s (a device in both keeps `to`'s
    /// connection).
    pub(super) fn move_parties(&mut self, from: CallKey, old: &mut CallState, to: CallKey) {
        let Some(state) = self.calls.get_mut(&to) else {
            unindex(&mut self.by_device, from, old);
            return;
        };
        for party in old.parties.drain(..) {
            if state.parties.iter().any(|p| p.device == party.device) {
                index_remove(&mut self.by_device, party.device, from);
            } else {
                index_move(&mut self.by_device, party.device, from, to);
                state.parties.push(party);
            }
        }
    }

    /// SNAPSHOT_CALL_CONF for `call` (InvokeID 0: the caller sets it), or
    /// `None` when the tracker cannot know it (module doc).
    pub fn snapshot_call(&self, call: &CallKey) -> Option<SnapshotCallConf> {
        let state = self.calls.get(call)?;
        if !state.complete || state.parties.len() > MAX_SNAPSHOT_ENTRIES {
            return None;
        }
        let d = &state.record.data;
        let [v1, v2, v3, v4, v5, v6, v7, v8, v9, v10] = d.call_variables.clone();
        let call_devices = state
            .parties
            .iter()
            .map(|p| CallDevice {
                connection_call_id: Some(d.call_id),
                connection_device_id_type: Some(d.device_id_type),
                connection_device_id: Some(d.device_id.clone()),
                device_type: Some(p.device_type),
                device_id: Some(p.id.clone()),
                connection_state: Some(p.state),
            })
            .collect::<Vec<_>>();
        Some(SnapshotCallConf {
            invoke_id: 0,
            call_type: d.call_type,
            num_cti_clients: 0,
            num_call_devices: call_devices.len() as u16,
            num_named_variables: d.named_variables.len() as u16,
            num_named_arrays: d.named_arrays.len() as u16,
            called_party_disposition: d.called_party_disposition,
            ani: d.ani.clone(),
            user_to_user_info: d.user_to_user_info.clone(),
            dnis: d.dnis.clone(),
            dialed_number: d.dialed_number.clone(),
            caller_entered_digits: d.caller_entered_digits.clone(),
            router_call_key_day: d.router_call_key_day,
            router_call_key_call_id: d.router_call_key_call_id,
            call_variable_1: v1,
            call_variable_2: v2,
            call_variable_3: v3,
            call_variable_4: v4,
            call_variable_5: v5,
            call_variable_6: v6,
            call_variable_7: v7,
            call_variable_8: v8,
            call_variable_9: v9,
            call_variable_10: v10,
            call_wrapup_data: d.call_wrapup_data.clone(),
            named_variables: d.named_variables.clone(),
            named_arrays: d.named_arrays.clone(),
            cti_clients: Vec::new(),
            call_devices,
            call_reference_id: d.call_reference_id.clone(),
            ..Default::default()
        })
    }

    /// SNAPSHOT_DEVICE_CONF for `device` (InvokeID 0: the caller sets it),
    /// or `None` when the tracker cannot know it (module doc).
    pub fn snapshot_device(&self, device: &DeviceKey) -> Option<SnapshotDeviceConf> {
        let Some(keys) = self.by_device.get(device) else {
            let state = self.agents.current_state_of_device(device)?;
            return match state {
                agent_state::TALKING | agent_state::HOLD => None,
                _ => Some(SnapshotDeviceConf::default()),
            };
        };
        if keys.len() > MAX_SNAPSHOT_ENTRIES {
            return None;
        }
        let mut calls = Vec::with_capacity(keys.len());
        for key in keys {
            let state = self.calls.get(key).filter(|s| s.complete)?;
            let party = state.parties.iter().find(|p| p.device == *device)?;
            let d = &state.record.data;
            calls.push(DeviceCall {
                connection_call_id: Some(d.call_id),
                connection_device_id_type: Some(d.device_id_type),
                connection_device_id: Some(d.device_id.clone()),
                call_state: Some(party.state),
                silent_monitor_status: Some(0),
            });
        }
        Some(SnapshotDeviceConf {
            invoke_id: 0,
            num_calls: calls.len() as u16,
            calls,
        })
    }
}

/// Drop the index entries of `call`'s parties.
pub(super) fn unindex(index: &mut DeviceIndex, call: CallKey, state: &CallState) {
    for party in &state.parties {
        index_remove(index, party.device, call);
    }
}

#[cfg(test)]
mod oracle;
#[cfg(test)]
mod tests;
