//! The data of every live call as the upstream has told it so far (call
//! type, ANI, DNIS, call variables, named variables and arrays, …), folded
//! from BEGIN_CALL, CALL_DATA_UPDATE and CALL_DELIVERED events, and the
//! BEGIN_CALL / END_CALL frames the router builds from it for call brackets
//! (docs/call-brackets.md), and the [`Bracket`] facts an event carries to
//! the shards for them. Ingest folds the data; shards only read it. Shaped
//! so that a call snapshot can be answered from the same record. No I/O here.
//!
//! A [`CallRecord`] is immutable once shared: ingest replaces it when an
//! event changes the call's data, so an event can carry the data as it was
//! *before* that event (what a bracket's BEGIN_CALL says), and shards read
//! it without locks. Its frames are encoded once per protocol version, on
//! first use, by whichever shard needs them first.

use std::sync::{Arc, OnceLock};

use smallvec::SmallVec;

use crate::keys::{AgentKey, CallKey, DeviceKey};
use crate::proto::msg::{BeginCallEvent, EndCallEvent};
use crate::proto::{CtiString, Message, NamedArray, NamedVar, Unspec, Version};

/// One call's identity and data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallData {
    pub peripheral_id: u32,
    pub peripheral_type: u16,
    /// ConnectionCallID, ConnectionDeviceIDType, ConnectionDeviceID.
    pub call_id: u32,
    pub device_id_type: u16,
    pub device_id: CtiString,
    pub call_type: u16,
    pub called_party_disposition: u16,
    pub ani: Option<CtiString>,
    pub ani_ii: Option<CtiString>,
    pub user_to_user_info: Option<Unspec>,
    pub dnis: Option<CtiString>,
    pub dialed_number: Option<CtiString>,
    pub caller_entered_digits: Option<CtiString>,
    pub router_call_key_day: Option<u32>,
    pub router_call_key_call_id: Option<u32>,
    pub router_call_key_sequence_number: Option<u32>,
    /// CallVariable1 … CallVariable10.
    pub call_variables: [Option<CtiString>; 10],
    pub call_wrapup_data: Option<CtiString>,
    pub call_reference_id: Option<Unspec>,
    /// ECC named variables, one per name, in the order first seen.
    pub named_variables: Vec<NamedVar>,
    /// ECC named array elements, one per (name, index), in the order first seen.
    pub named_arrays: Vec<NamedArray>,
}

/// A frame per protocol version, encoded on first use.
type Frames = [OnceLock<Option<Box<[u8]>>>; Version::COUNT];

/// A call's data, shared immutably by the events that carry it.
#[derive(Debug, Default)]
pub struct CallRecord {
    pub data: CallData,
    begin: Frames,
    end: Frames,
}

/// Replace `slot` with `value` when the event carried one.
fn set<T>(slot: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *slot = value;
    }
}

/// The data fields the data-carrying events have in common.
struct Carried {
    ani: Option<CtiString>,
    ani_ii: Option<CtiString>,
    user_to_user_info: Option<Unspec>,
    dnis: Option<CtiString>,
    dialed_number: Option<CtiString>,
    caller_entered_digits: Option<CtiString>,
    call_variables: [Option<CtiString>; 10],
    call_wrapup_data: Option<CtiString>,
    named_variables: Vec<NamedVar>,
    named_arrays: Vec<NamedArray>,
}

/// The [`Carried`] fields of a typed event `$e` (CALL_DATA_UPDATE has no ANI_II).
macro_rules! carried {
    ($e:ident, ani_ii: $ani_ii:expr) => {
        Carried {
            call_variables: [
                $e.call_variable_1,
                $e.call_variable_2,
                $e.call_variable_3,
                $e.call_variable_4,
                $e.call_variable_5,
                $e.call_variable_6,
                $e.call_variable_7,
                $e.call_variable_8,
                $e.call_variable_9,
                $e.call_variable_10,
            ],
            ani: $e.ani,
            ani_ii: $ani_ii,
            user_to_user_info: $e.user_to_user_info,
            dnis: $e.dnis,
            dialed_number: $e.dialed_number,
            caller_entered_digits: $e.caller_entered_digits,
            call_wrapup_data: $e.call_wrapup_data,
            named_variables: $e.named_variables,
            named_arrays: $e.named_arrays,
        }
    };
}

/// NULL_CALLTYPE (docs/protocol.md §5.16): a CALL_DATA_UPDATE that does
/// not change the CallType.
const NULL_CALLTYPE: u16 = 0xFFFF;

/// Fold what BEGIN_CALL and CALL_DATA_UPDATE carry beyond [`Carried`]
/// (CallType apart): CalledPartyDisposition, RouterCallKey, CallReferenceID.
macro_rules! take_call_fields {
    ($data:ident, $e:ident) => {
        $data.called_party_disposition = $e.called_party_disposition;
        set(&mut $data.router_call_key_day, $e.router_call_key_day);
        set(
            &mut $data.router_call_key_call_id,
            $e.router_call_key_call_id,
        );
        set(
            &mut $data.router_call_key_sequence_number,
            $e.router_call_key_sequence_number,
        );
        set(&mut $data.call_reference_id, $e.call_reference_id);
    };
}

impl CallData {
    /// A call first seen in an event with these header fields.
    pub fn new(peripheral_id: u32, peripheral_type: u16, call_id: u32, id_type: u16) -> Self {
        CallData {
            peripheral_id,
            peripheral_type,
            call_id,
            device_id_type: id_type,
            ..Default::default()
        }
    }

    fn take(&mut self, c: Carried) {
        set(&mut self.ani, c.ani);
        set(&mut self.ani_ii, c.ani_ii);
        set(&mut self.user_to_user_info, c.user_to_user_info);
        set(&mut self.dnis, c.dnis);
        set(&mut self.dialed_number, c.dialed_number);
        set(&mut self.caller_entered_digits, c.caller_entered_digits);
        for (slot, value) in self.call_variables.iter_mut().zip(c.call_variables) {
            set(slot, value);
        }
        set(&mut self.call_wrapup_data, c.call_wrapup_data);
        for var in c.named_variables {
            match self.named_variables.iter_mut().find(|v| v.name == var.name) {
                Some(held) => held.value = var.value,
                None => self.named_variables.push(var),
            }
        }
        for el in c.named_arrays {
            let same = |a: &&mut NamedArray| a.name == el.name && a.index == el.index;
            match self.named_arrays.iter_mut().find(same) {
                Some(held) => held.value = el.value,
                None => self.named_arrays.push(el),
            }
        }
    }

    /// Fold what a decoded event says about the call; false for events
    /// that carry no call data.
    pub fn fold(&mut self, message: Message) -> bool {
        match message {
            Message::BeginCallEvent(e) => {
                self.call_type = e.call_type;
                take_call_fields!(self, e);
                self.take(carried!(e, ani_ii: e.ani_ii));
            }
            Message::CallDataUpdateEvent(e) => {
                if e.call_type != NULL_CALLTYPE {
                    self.call_type = e.call_type;
                }
                take_call_fields!(self, e);
                self.take(carried!(e, ani_ii: None));
            }
            Message::CallDeliveredEvent(e) => self.take(carried!(e, ani_ii: e.ani_ii)),
            _ => return false,
        }
        true
    }

    /// BEGIN_CALL_EVENT with this data (MonitorID 0, no CTI clients).
    pub fn begin_call(&self) -> BeginCallEvent {
        let [v1, v2, v3, v4, v5, v6, v7, v8, v9, v10] = self.call_variables.clone();
        BeginCallEvent {
            monitor_id: 0,
            peripheral_id: self.peripheral_id,
            peripheral_type: self.peripheral_type,
            num_cti_clients: 0,
            num_named_variables: self.named_variables.len() as u16,
            num_named_arrays: self.named_arrays.len() as u16,
            call_type: self.call_type,
            connection_device_id_type: self.device_id_type,
            connection_call_id: self.call_id,
            called_party_disposition: self.called_party_disposition,
            connection_device_id: Some(self.device_id.clone()),
            ani: self.ani.clone(),
            user_to_user_info: self.user_to_user_info.clone(),
            dnis: self.dnis.clone(),
            dialed_number: self.dialed_number.clone(),
            caller_entered_digits: self.caller_entered_digits.clone(),
            router_call_key_day: self.router_call_key_day,
            router_call_key_call_id: self.router_call_key_call_id,
            router_call_key_sequence_number: self.router_call_key_sequence_number,
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
            call_wrapup_data: self.call_wrapup_data.clone(),
            named_variables: self.named_variables.clone(),
            named_arrays: self.named_arrays.clone(),
            cti_clients: Vec::new(),
            call_reference_id: self.call_reference_id.clone(),
            ani_ii: self.ani_ii.clone(),
        }
    }

    /// END_CALL_EVENT of this call (MonitorID 0).
    pub fn end_call(&self) -> EndCallEvent {
        EndCallEvent {
            monitor_id: 0,
            peripheral_id: self.peripheral_id,
            peripheral_type: self.peripheral_type,
            connection_device_id_type: self.device_id_type,
            connection_call_id: self.call_id,
            connection_device_id: Some(self.device_id.clone()),
        }
    }
}

/// Encode `message` at `version`, `None` if it cannot be (too long).
fn frame_at(message: impl Into<Message>, version: Version) -> Option<Box<[u8]>> {
    message
        .into()
        .to_frame(version)
        .ok()
        .map(Vec::into_boxed_slice)
}

impl CallRecord {
    pub fn new(data: CallData) -> Arc<CallRecord> {
        Arc::new(CallRecord {
            data,
            begin: Default::default(),
            end: Default::default(),
        })
    }

    /// Fold an event into a record nobody else holds (see
    /// [`CallData::fold`]); the frames built from the old data are dropped.
    pub fn fold(&mut self, message: Message) -> bool {
        let folded = self.data.fold(message);
        if folded {
            self.begin = Default::default();
            self.end = Default::default();
        }
        folded
    }

    /// The BEGIN_CALL_EVENT frame at `version` (MonitorID 0 to be patched).
    pub fn begin_at(&self, version: Version) -> Option<&[u8]> {
        self.begin[version.index()]
            .get_or_init(|| frame_at(self.data.begin_call(), version))
            .as_deref()
    }

    /// The END_CALL_EVENT frame at `version` (MonitorID 0 to be patched).
    pub fn end_at(&self, version: Version) -> Option<&[u8]> {
        self.end[version.index()]
            .get_or_init(|| frame_at(self.data.end_call(), version))
            .as_deref()
    }
}

/// What shards need to bracket an event's call for their watchers
/// (Client Events sessions and device monitors, docs/call-brackets.md).
/// Computed by ingest's tracker only while some shard holds keyed interest.
#[derive(Debug, Clone)]
pub struct Bracket {
    /// The event's primary call.
    pub call: CallKey,
    /// Its data before this event: a built BEGIN_CALL says this, a built
    /// END_CALL names this call.
    pub before: Arc<CallRecord>,
    /// CALL_CLEARED or END_CALL: the call ends for every watcher.
    pub ends_call: bool,
    /// Devices that leave the call with this event (the releasing device of
    /// CALL_CONNECTION_CLEARED, the transferring device of CALL_TRANSFERRED).
    pub leaving: SmallVec<[DeviceKey; 1]>,
    /// The agent keys of the leaving devices' agents.
    pub leaving_agents: SmallVec<[AgentKey; 3]>,
    /// The Secondary call folded into this one (conference, transfer), with
    /// its data: its watchers get its END_CALL after this event.
    pub folded: Option<(CallKey, Arc<CallRecord>)>,
    /// The call's new name (CALL_DATA_UPDATE with NewConnectionCallID):
    /// associations follow it silently.
    pub renamed: Option<CallKey>,
}

impl PartialEq for Bracket {
    fn eq(&self, other: &Self) -> bool {
        let folded = |b: &Bracket| b.folded.as_ref().map(|(k, _)| *k);
        self.call == other.call
            && Arc::ptr_eq(&self.before, &other.before)
            && self.ends_call == other.ends_call
            && self.leaving == other.leaving
            && self.leaving_agents == other.leaving_agents
            && folded(self) == folded(other)
            && self.renamed == other.renamed
    }
}

impl Eq for Bracket {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::msg::CallDataUpdateEvent;
    use crate::proto::DecodeOptions;

    fn var(name: &str, value: &str) -> NamedVar {
        NamedVar {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn fields_carried_replace_and_the_rest_stay() {
        let mut data = CallData::new(5000, 1, 7, 1);
        data.fold(Message::from(BeginCallEvent {
            call_type: 1,
            ani: Some("5551000".into()),
            call_variable_1: Some("acct".into()),
            named_variables: vec![var("user.a", "1"), var("user.b", "2")],
            ..Default::default()
        }));
        data.fold(Message::from(CallDataUpdateEvent {
            call_type: 4,
            dnis: Some("8000".into()),
            call_variable_2: Some("en".into()),
            named_variables: vec![var("user.b", "3"), var("user.c", "4")],
            ..Default::default()
        }));
        data.fold(Message::from(crate::proto::msg::CallDeliveredEvent {
            caller_entered_digits: Some("42".into()),
            ..Default::default()
        }));
        assert_eq!(data.call_type, 4, "CALL_DELIVERED carries no CallType");
        data.fold(Message::from(CallDataUpdateEvent {
            call_type: NULL_CALLTYPE,
            ..Default::default()
        }));
        assert_eq!(data.call_type, 4, "NULL_CALLTYPE changes no CallType");
        assert_eq!(data.caller_entered_digits, Some("42".into()));
        assert_eq!(data.ani, Some("5551000".into()));
        assert_eq!(data.dnis, Some("8000".into()));
        assert_eq!(data.call_variables[0], Some("acct".into()));
        assert_eq!(data.call_variables[1], Some("en".into()));
        assert_eq!(
            data.named_variables,
            vec![var("user.a", "1"), var("user.b", "3"), var("user.c", "4")]
        );
        assert!(!data.fold(Message::from(EndCallEvent::default())));
    }

    #[test]
    fn built_frames_carry_the_data_at_every_version() {
        let mut data = CallData::new(5000, 1, 7, 1);
        data.device_id = "T100".into();
        data.fold(Message::from(CallDataUpdateEvent {
            call_type: 4,
            ani: Some("5551000".into()),
            call_variable_10: Some("ten".into()),
            named_arrays: vec![NamedArray {
                index: 2,
                name: "user.arr".into(),
                value: "x".into(),
            }],
            ..Default::default()
        }));
        let record = CallRecord::new(data);
        for version in Version::all() {
            let frame = record.begin_at(version).expect("BEGIN_CALL encodes");
            let (m, _) = crate::proto::decode_frame(frame, version, DecodeOptions::STRICT).unwrap();
            let Message::BeginCallEvent(b) = m else {
                panic!("not a BEGIN_CALL: {m:?}")
            };
            assert_eq!((b.connection_call_id, b.call_type), (7, 4));
            assert_eq!(b.ani, Some("5551000".into()));
            assert_eq!(b.call_variable_10, Some("ten".into()));
            assert_eq!(b.named_arrays.len(), 1);
            let end = record.end_at(version).expect("END_CALL encodes");
            let (m, _) = crate::proto::decode_frame(end, version, DecodeOptions::STRICT).unwrap();
            assert!(
                matches!(m, Message::EndCallEvent(e) if e.connection_call_id == 7
                && e.peripheral_id == 5000
                && e.connection_device_id == Some("T100".into()))
            );
        }
    }
}
