//! Routing keys of an encoded event, read straight from its bytes without
//! building the typed message and without allocating: peripheral, call
//! identity (and the second call of a conference/transfer/data update), every
//! device id the event names, the agent fields, trunk and trunk group, the
//! CallMsgMask bit and the AgentState. Strings are returned as spans into the
//! frame (NUL stripped). No I/O here.

use std::sync::OnceLock;

use super::constants::{call_mask, msg};
use super::error::{DecodeError, Invalid};
use super::frame::{self, HEADER_LEN};
use super::message::Message;
use super::tags;
use super::version::Version;
use super::wire::FloatingFields;

/// A byte range of the frame (offsets from the first header byte).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u16,
    pub len: u16,
}

impl Span {
    /// The bytes of this span in `frame`.
    #[inline]
    pub fn of<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        &frame[self.start as usize..self.start as usize + self.len as usize]
    }
}

/// A call identity as the event names it: ConnectionCallID + type + ConnectionDeviceID.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallSpan {
    pub call_id: u32,
    pub device_id_type: u16,
    /// `None` when the event carries no device id for the call.
    pub device_id: Option<Span>,
}

/// Most device ids one event can name: 16 parties (MAX_NUM_PARTIES, docs/protocol.md
/// §5.16) plus the event's own device fields, with room to spare.
pub const MAX_DEVICES: usize = 32;

/// Routing keys of one event. Plain data, `Copy`, no heap.
#[derive(Debug, Clone, Copy)]
pub struct RoutingKeys {
    pub message_type: u32,
    /// Whether the body starts with a MonitorID (patched per monitor copy).
    pub has_monitor_id: bool,
    pub peripheral_id: Option<u32>,
    /// ConnectionCallID/…, or the Primary call of a conference/transfer.
    pub call: Option<CallSpan>,
    /// Secondary call (conference/transfer) or the new call of CALL_DATA_UPDATE.
    pub other_call: Option<CallSpan>,
    /// The CallMsgMask bit governing this event type (0: not masked by it).
    pub call_mask_bit: u32,
    /// AgentState of an AGENT_STATE_EVENT.
    pub agent_state: Option<u16>,
    pub agent_id: Option<Span>,
    pub agent_extension: Option<Span>,
    pub agent_instrument: Option<Span>,
    pub trunk_number: Option<u32>,
    pub trunk_group_number: Option<u32>,
    nr_devices: u8,
    /// More device fields than [`MAX_DEVICES`] were present; the rest were not kept.
    pub devices_truncated: bool,
    /// The event carries call data (ANI, DNIS, call or named variables, …):
    /// ingest folds it into the call's record only then.
    pub carries_call_data: bool,
    devices: [(u16, Span); MAX_DEVICES],
}

impl RoutingKeys {
    fn new(message_type: u32) -> Self {
        RoutingKeys {
            message_type,
            has_monitor_id: false,
            peripheral_id: None,
            call: None,
            other_call: None,
            call_mask_bit: call_mask::bit_for(message_type),
            agent_state: None,
            agent_id: None,
            agent_extension: None,
            agent_instrument: None,
            trunk_number: None,
            trunk_group_number: None,
            nr_devices: 0,
            devices_truncated: false,
            carries_call_data: false,
            devices: [(0, Span::default()); MAX_DEVICES],
        }
    }

    /// Every device id field of the event as (tag, span): connection, alerting,
    /// calling, called, …, party device ids, and the agent fields.
    pub fn devices(&self) -> &[(u16, Span)] {
        &self.devices[..self.nr_devices as usize]
    }

    fn push_device(&mut self, tag: u16, span: Span) {
        match self.devices.get_mut(self.nr_devices as usize) {
            Some(slot) => {
                *slot = (tag, span);
                self.nr_devices += 1;
            }
            None => self.devices_truncated = true,
        }
    }
}

/// Where the routing fields sit in an event type's fixed part (body offsets).
#[derive(Debug, Clone, Copy)]
struct Layout {
    has_monitor_id: bool,
    peripheral: Option<u8>,
    /// (ConnectionDeviceIDType offset, ConnectionCallID offset)
    call: Option<(u8, u8)>,
    other_call: Option<(u8, u8)>,
    agent_state: Option<u8>,
}

const fn layout(has_monitor_id: bool, peripheral: Option<u8>, call: Option<(u8, u8)>) -> Layout {
    Layout {
        has_monitor_id,
        peripheral,
        call,
        other_call: None,
        agent_state: None,
    }
}

/// Common call-event header: MonitorID, PeripheralID, PeripheralType,
/// ConnectionDeviceIDType (10), ConnectionCallID (12) — docs/protocol.md §4.5.
const COMMON_CALL: Layout = layout(true, Some(4), Some((10, 12)));

fn layout_of(message_type: u32) -> Option<Layout> {
    Some(match message_type {
        msg::CALL_DELIVERED_EVENT..=msg::CALL_FAILED_EVENT
        | msg::CALL_DIVERTED_EVENT
        | msg::CALL_SERVICE_INITIATED_EVENT
        | msg::CALL_QUEUED_EVENT
        | msg::END_CALL_EVENT
        | msg::CALL_REACHED_NETWORK_EVENT
        | msg::CALL_DEQUEUED_EVENT => COMMON_CALL,
        msg::CALL_CONFERENCED_EVENT | msg::CALL_TRANSFERRED_EVENT => Layout {
            other_call: Some((32, 34)),
            ..layout(true, Some(4), Some((10, 12)))
        },
        msg::BEGIN_CALL_EVENT => layout(true, Some(4), Some((18, 20))),
        msg::CALL_DATA_UPDATE_EVENT => Layout {
            other_call: Some((24, 26)),
            ..layout(true, Some(4), Some((18, 20)))
        },
        msg::CALL_TRANSLATION_ROUTE_EVENT => layout(false, None, None),
        msg::AGENT_STATE_EVENT => Layout {
            agent_state: Some(30),
            ..layout(true, Some(4), None)
        },
        msg::SYSTEM_EVENT => layout(false, None, None),
        msg::AGENT_PRE_CALL_EVENT | msg::AGENT_PRE_CALL_ABORT_EVENT => layout(true, None, None),
        msg::RTP_STARTED_EVENT => layout(true, Some(4), Some((28, 30))),
        msg::RTP_STOPPED_EVENT => layout(true, Some(4), Some((14, 16))),
        msg::AGENT_TEAM_CONFIG_EVENT => layout(false, Some(0), None),
        msg::CALL_AGENT_GREETING_EVENT => layout(true, Some(4), Some((8, 10))),
        _ => return None,
    })
}

/// Whether an event type starts with a MonitorID (docs/protocol.md §4.5).
#[inline]
pub fn has_monitor_id(message_type: u32) -> bool {
    layout_of(message_type).is_some_and(|l| l.has_monitor_id)
}

/// Fixed-part lengths of every typed message at every version, built once
/// from the message declarations (so the version rules stay in one place).
fn fixed_len(message_type: u32, version: Version) -> Option<usize> {
    const TYPES: usize = msg::MAX_KNOWN_V24 as usize + 1;
    static TABLE: OnceLock<Vec<[u16; Version::COUNT]>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..TYPES as u32)
            .map(|t| {
                let mut row = [u16::MAX; Version::COUNT];
                for v in Version::all() {
                    if let Some(len) = Message::fixed_len(t, v) {
                        row[v.index()] = len as u16;
                    }
                }
                row
            })
            .collect()
    });
    match table.get(message_type as usize)?[version.index()] {
        u16::MAX => None,
        len => Some(len as usize),
    }
}

#[inline]
fn be_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_u32_field(tag: u16, data: &[u8]) -> Result<u32, Invalid> {
    let raw: [u8; 4] = data.try_into().map_err(|_| Invalid::FieldLength {
        tag,
        len: data.len(),
    })?;
    Ok(u32::from_be_bytes(raw))
}

/// Span of a string field's text (up to the first NUL).
fn text_span(base: usize, offset: usize, data: &[u8]) -> Span {
    let len = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    Span {
        start: (base + offset) as u16,
        len: len as u16,
    }
}

/// Routing keys of the whole frame `frame` (header included) encoded at `version`.
///
/// Types with no routing layout (requests, confirmations, raw types) yield
/// keys with only the message type set.
pub fn extract(frame: &[u8], version: Version) -> Result<RoutingKeys, DecodeError> {
    let (parsed, _) = frame::parse(frame)?;
    let body = parsed.body;
    let mut keys = RoutingKeys::new(parsed.message_type);
    let Some(layout) = layout_of(parsed.message_type) else {
        return Ok(keys);
    };
    let fixed = fixed_len(parsed.message_type, version).unwrap_or(0);
    if body.len() < fixed {
        return Err(Invalid::ShortFixedPart {
            message_type: parsed.message_type,
            needed: fixed,
            available: body.len(),
        }
        .into());
    }
    read_fixed(&mut keys, &layout, body);
    read_floating(&mut keys, &body[fixed..], HEADER_LEN + fixed, version)?;
    Ok(keys)
}

fn read_fixed(keys: &mut RoutingKeys, layout: &Layout, body: &[u8]) {
    keys.has_monitor_id = layout.has_monitor_id;
    keys.peripheral_id = layout.peripheral.map(|at| be_u32(body, at as usize));
    let call_at = |(ty, id): (u8, u8)| CallSpan {
        call_id: be_u32(body, id as usize),
        device_id_type: be_u16(body, ty as usize),
        device_id: None,
    };
    keys.call = layout.call.map(call_at);
    keys.other_call = layout.other_call.map(call_at);
    keys.agent_state = layout.agent_state.map(|at| be_u16(body, at as usize));
}

fn read_floating(
    keys: &mut RoutingKeys,
    floating: &[u8],
    base: usize,
    version: Version,
) -> Result<(), DecodeError> {
    let mut fields = FloatingFields::new(floating, version);
    while let Some(f) = fields.next_field()? {
        match f.tag {
            tags::CONNECTION_DEVID | tags::PRIMARY_DEVID => {
                let span = text_span(base, f.offset, f.data);
                if let Some(call) = keys.call.as_mut() {
                    call.device_id = Some(span);
                }
                keys.push_device(f.tag, span);
            }
            tags::SECONDARY_DEVID | tags::NEW_CONNECTION_DEVID => {
                let span = text_span(base, f.offset, f.data);
                if let Some(call) = keys.other_call.as_mut() {
                    call.device_id = Some(span);
                }
                keys.push_device(f.tag, span);
            }
            tags::ALERTING_DEVID..=tags::ADDED_PARTY_DEVID
            | tags::PARTY_DEVID
            | tags::TRANSFERRING_DEVID..=tags::QUEUE_DEVID
            | tags::TRUNK_USED_DEVID
            | tags::COC_CONNECTION_DEVICE_ID => {
                keys.push_device(f.tag, text_span(base, f.offset, f.data));
            }
            tags::AGENT_ID | tags::AGENT_EXTENSION | tags::AGENT_INSTRUMENT => {
                let span = text_span(base, f.offset, f.data);
                match f.tag {
                    tags::AGENT_ID => keys.agent_id = Some(span),
                    tags::AGENT_EXTENSION => keys.agent_extension = Some(span),
                    _ => keys.agent_instrument = Some(span),
                }
                keys.push_device(f.tag, span);
            }
            tags::ANI..=tags::CALL_VAR_10
            | tags::CALL_WRAPUP_DATA
            | tags::NAMED_VARIABLE
            | tags::NAMED_ARRAY
            | tags::ANI_II => keys.carries_call_data = true,
            tags::TRUNK_NUMBER => keys.trunk_number = Some(be_u32_field(f.tag, f.data)?),
            tags::TRUNK_GROUP_NUMBER => {
                keys.trunk_group_number = Some(be_u32_field(f.tag, f.data)?)
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::group::Party;
    use crate::proto::msg::{AgentStateEvent, CallConferencedEvent, CallDeliveredEvent};

    fn v(n: u32) -> Version {
        Version::new(n).unwrap()
    }

    #[test]
    fn delivered_event_yields_call_devices_and_trunk() {
        let m = CallDeliveredEvent {
            peripheral_id: 5000,
            connection_device_id_type: 1,
            connection_call_id: 77,
            connection_device_id: Some("5000".into()),
            alerting_device_id: Some("1001".into()),
            calling_device_id: Some("5551234".into()),
            trunk_number: Some(12),
            trunk_group_number: Some(3),
            ..Default::default()
        };
        for ver in [v(13), v(19), v(20), v(24)] {
            let frame = Message::from(m.clone()).to_frame(ver).unwrap();
            let keys = extract(&frame, ver).unwrap();
            assert_eq!(keys.peripheral_id, Some(5000));
            let call = keys.call.unwrap();
            assert_eq!((call.call_id, call.device_id_type), (77, 1));
            assert_eq!(call.device_id.unwrap().of(&frame), b"5000");
            let names: Vec<&[u8]> = keys.devices().iter().map(|(_, s)| s.of(&frame)).collect();
            assert_eq!(names, vec![&b"5000"[..], b"1001", b"5551234"]);
            assert_eq!(
                (keys.trunk_number, keys.trunk_group_number),
                (Some(12), Some(3))
            );
            assert_eq!(keys.call_mask_bit, 1);
            assert!(keys.has_monitor_id);
        }
    }

    #[test]
    fn conference_names_both_calls_and_parties() {
        let m = CallConferencedEvent {
            primary_call_id: 1,
            secondary_call_id: 2,
            primary_device_id: Some("P".into()),
            secondary_device_id: Some("S".into()),
            parties: vec![Party {
                call_id: Some(1),
                device_id_type: Some(0),
                device_id: Some("1001".into()),
            }],
            num_parties: 1,
            ..Default::default()
        };
        let frame = Message::from(m).to_frame(v(24)).unwrap();
        let keys = extract(&frame, v(24)).unwrap();
        assert_eq!(keys.call.unwrap().call_id, 1);
        assert_eq!(keys.other_call.unwrap().device_id.unwrap().of(&frame), b"S");
        assert!(keys
            .devices()
            .iter()
            .any(|(t, s)| *t == tags::PARTY_DEVID && s.of(&frame) == b"1001"));
    }

    #[test]
    fn agent_state_event_yields_state_and_agent_ids() {
        let m = AgentStateEvent {
            agent_state: 4,
            agent_id: Some("1001".into()),
            agent_instrument: Some("3001".into()),
            ..Default::default()
        };
        for ver in [v(18), v(19)] {
            let frame = Message::from(m.clone()).to_frame(ver).unwrap();
            let keys = extract(&frame, ver).unwrap();
            assert_eq!(keys.agent_state, Some(4));
            assert_eq!(keys.agent_id.unwrap().of(&frame), b"1001");
            assert_eq!(keys.agent_instrument.unwrap().of(&frame), b"3001");
        }
    }

    #[test]
    fn short_or_overrunning_events_are_errors() {
        let frame = [0, 0, 0, 2, 0, 0, 0, 9, 0, 0];
        assert!(extract(&frame, v(24)).is_err());
        let m = CallDeliveredEvent {
            connection_device_id: Some("5000".into()),
            ..Default::default()
        };
        let mut frame = Message::from(m).to_frame(v(24)).unwrap();
        let last = frame.len() - 1;
        frame[last - 6] = 0x40; // inflate the field length
        assert!(extract(&frame, v(24)).is_err());
    }
}
