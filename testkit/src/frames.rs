//! Raw GED-188 frames for tests: builders (header, fixed part, floating part
//! at either tag width), a floating-part walker, accessors and inspectors
//! (type, MonitorID, FAILURE_CONF status, the shapes tests compare) and a
//! short description for assertion messages. Pure functions of bytes.

use ctirouter::proto::constants::msg;
use ctirouter::proto::msg::{FailureConf, FailureEvent};
use ctirouter::proto::{decode_frame, CtiString, DecodeOptions, Message, Version};

use crate::{v24, MARK_BASE};

/// The largest frame a peer may send (header included).
pub const MAX_FRAME: usize = 12_500;

/// A whole frame: header (MessageLength = body length, MessageType) + body.
pub fn raw_frame(message_type: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&message_type.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Big-endian UINTs back to back (a fixed part).
pub fn be32s(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// A floating part: tag, length (each `width` bytes: 1 below v20, 2 from v20), data.
pub fn floating(width: usize, fields: &[(u16, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(tag, data) in fields {
        push_width(&mut out, width, tag as usize);
        push_width(&mut out, width, data.len());
        out.extend_from_slice(data);
    }
    out
}

fn push_width(out: &mut Vec<u8>, width: usize, value: usize) {
    if width == 1 {
        out.push(u8::try_from(value).expect("fits one byte"));
    } else {
        out.extend_from_slice(&u16::try_from(value).expect("fits two bytes").to_be_bytes());
    }
}

/// OPEN_REQ fixed part (44 bytes, docs/protocol.md §4.1); Reserved1..3 = 0,
/// PeripheralID NULL, ConfigMsgMask 0.
pub fn open_req_fixed(
    invoke_id: u32,
    version: u32,
    idle_timeout: u32,
    services: u32,
    call_mask: u32,
    agent_mask: u32,
) -> Vec<u8> {
    be32s(&[
        invoke_id,
        version,
        idle_timeout,
        0xFFFF_FFFF,
        services,
        call_mask,
        agent_mask,
        0,
        0,
        0,
        0,
    ])
}

/// Walk a floating part with tags/lengths of `width` bytes: every (tag, data
/// length), or why it does not parse exactly to its end.
pub fn walk_floating(mut data: &[u8], width: usize) -> Result<Vec<(u16, usize)>, String> {
    let mut fields = Vec::new();
    while !data.is_empty() {
        if data.len() < 2 * width {
            return Err(format!(
                "{} trailing bytes, less than a tag+length",
                data.len()
            ));
        }
        let read = |b: &[u8]| {
            if width == 1 {
                b[0] as usize
            } else {
                u16::from_be_bytes([b[0], b[1]]) as usize
            }
        };
        let tag = read(&data[..width]) as u16;
        let len = read(&data[width..2 * width]);
        data = &data[2 * width..];
        if len > data.len() {
            return Err(format!(
                "tag {tag}: length {len} runs past the end ({} left)",
                data.len()
            ));
        }
        fields.push((tag, len));
        data = &data[len..];
    }
    Ok(fields)
}

/// Big-endian UINT at `at`.
pub fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// MessageType of a whole frame.
pub fn frame_type(frame: &[u8]) -> u32 {
    be32(frame, 4)
}

/// The body (after the header) of a whole frame.
pub fn frame_body(frame: &[u8]) -> &[u8] {
    &frame[8..]
}

/// Take one whole frame off the front of `buf`, if it holds one; panics if
/// the header announces more than [`MAX_FRAME`] bytes.
pub fn take_frame(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    if buf.len() < 8 {
        return None;
    }
    let len = be32(buf, 0) as usize + 8;
    assert!(
        len <= MAX_FRAME,
        "a frame header announcing {len} bytes: {}",
        hex::encode(&buf[..8])
    );
    if buf.len() < len {
        return None;
    }
    Some(buf.drain(..len).collect())
}

/// Decode a whole frame strictly at `version`; panics with the bytes if it does not decode exactly.
pub fn decode_strict(frame: &[u8], version: Version) -> Message {
    match decode_frame(frame, version, DecodeOptions::STRICT) {
        Ok((message, used)) => {
            assert_eq!(
                used,
                frame.len(),
                "frame has trailing bytes: {}",
                hex::encode(frame)
            );
            message
        }
        Err(e) => panic!(
            "type {} does not decode at v{version}: {e:?}; frame {}",
            frame_type(frame),
            hex::encode(frame)
        ),
    }
}

/// Unsolicited event types (skipped while waiting for a reply). FAILURE_EVENT is not one.
pub fn is_unsolicited_event(message_type: u32) -> bool {
    matches!(
        message_type,
        9..=25 | 30 | 31 | 34 | 86 | 99 | 100 | 105 | 106 | 116 | 117 | 128 | 189 | 248
    )
}

/// FAILURE_CONF as (InvokeID, Status) if the frame is one.
pub fn as_failure_conf(frame: &[u8]) -> Option<(u32, u32)> {
    if frame_type(frame) != msg::FAILURE_CONF || frame.len() < 16 {
        return None;
    }
    let b = frame_body(frame);
    Some((
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
    ))
}

/// FAILURE_EVENT Status if the frame is one.
pub fn as_failure_event(frame: &[u8]) -> Option<u32> {
    if frame_type(frame) != msg::FAILURE_EVENT || frame.len() < 12 {
        return None;
    }
    let b = frame_body(frame);
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Strict v24 decode of a whole frame.
pub fn decode(f: &[u8]) -> Message {
    match decode_frame(f, v24(), DecodeOptions::STRICT) {
        Ok((m, used)) => {
            assert_eq!(used, f.len(), "trailing bytes in a frame");
            m
        }
        Err(e) => panic!("frame type {} does not decode: {e:?}", frame_type(f)),
    }
}

/// Reply types: their first field is the InvokeID (the router's own
/// classification, `msg::is_reply`, unit-tested against docs/protocol.md §3).
pub fn is_reply(t: u32) -> bool {
    msg::is_reply(t)
}

/// Whether an event type starts with a MonitorID (docs/protocol.md §4.5, §4.6).
pub fn type_has_monitor_id(t: u32) -> bool {
    matches!(t, 9..=21 | 23..=25 | 30 | 34 | 86 | 105 | 106 | 116 | 117 | 248)
}

/// The MonitorID of an event frame (its first body field).
pub fn monitor_id(f: &[u8]) -> Option<u32> {
    type_has_monitor_id(frame_type(f)).then(|| be32(f, 8))
}

/// SessionID (body offset 8) of an AGENT_STATE_EVENT.
pub fn agent_session_id(f: &[u8]) -> Option<u32> {
    (frame_type(f) == msg::AGENT_STATE_EVENT).then(|| be32(f, 16))
}

/// FAILURE_CONF status.
pub fn failure_status(f: &[u8]) -> Option<u32> {
    (frame_type(f) == msg::FAILURE_CONF).then(|| be32(f, 12))
}

/// The name of a MessageType (`TYPE_n` for an unknown one).
pub fn type_name(t: u32) -> String {
    Message::type_name(t)
        .map(str::to_string)
        .unwrap_or_else(|| format!("TYPE_{t}"))
}

/// Not a reply, not a SYSTEM_EVENT and not a sync marker.
pub fn is_test_event(f: &[u8]) -> bool {
    let t = frame_type(f);
    !is_reply(t) && t != msg::SYSTEM_EVENT && mark_of(f).is_none()
}

/// The EventReasonCode of a marker AGENT_STATE_EVENT (see `Harness::sync`).
pub fn mark_of(f: &[u8]) -> Option<u16> {
    if frame_type(f) != msg::AGENT_STATE_EVENT {
        return None;
    }
    let Message::AgentStateEvent(e) = decode(f) else {
        return None;
    };
    (e.event_reason_code >= MARK_BASE).then_some(e.event_reason_code)
}

/// A short description for assertion messages: type (FAILURE_CONF and
/// FAILURE_EVENT with their status), MonitorID, and what a v24 decode
/// tells of agent, session or call; then the length.
pub fn describe(frame: &[u8]) -> String {
    if frame.len() < 8 {
        return format!("{} bytes, less than a header", frame.len());
    }
    if let Some((invoke, status)) = as_failure_conf(frame) {
        return format!("FAILURE_CONF(invoke {invoke}, status {status})");
    }
    if let Some(status) = as_failure_event(frame) {
        return format!("FAILURE_EVENT(status {status})");
    }
    let t = frame_type(frame);
    let mut s = type_name(t);
    if let Some(m) = monitor_id(frame) {
        s.push_str(&format!(" mon={m}"));
    }
    if let Ok((m, _)) = decode_frame(frame, v24(), DecodeOptions::COUNTS_UNCHECKED) {
        match &m {
            Message::AgentStateEvent(e) => s.push_str(&format!(
                " agent={} state={} reason={} session={}",
                e.agent_id
                    .as_ref()
                    .map(|x| x.to_str_lossy().into_owned())
                    .unwrap_or_default(),
                e.agent_state,
                e.event_reason_code,
                e.session_id
            )),
            Message::ClientSessionOpenedEvent(e) => {
                s.push_str(&format!(" session={}", e.session_id))
            }
            Message::ClientSessionClosedEvent(e) => {
                s.push_str(&format!(" session={} status={}", e.session_id, e.status))
            }
            _ => {
                if let Some((id, _, dev)) = primary_call(&m) {
                    s.push_str(&format!(" call={id}/{}", String::from_utf8_lossy(&dev)));
                }
            }
        }
    }
    s.push_str(&format!(" ({} bytes)", frame.len()));
    s
}

/// (type, MonitorID) of each frame: the shape tests compare.
pub fn shapes(frames: &[Vec<u8>]) -> Vec<(String, u32)> {
    frames
        .iter()
        .map(|f| (type_name(frame_type(f)), monitor_id(f).unwrap_or(u32::MAX)))
        .collect()
}

/// Shape literal helper: (type name of `t`, MonitorID).
pub fn shape(t: u32, monitor: u32) -> (String, u32) {
    (type_name(t), monitor)
}

/// OPENED/CLOSED events in a frame list, as (type, SessionID, Status or 0).
pub fn client_session_events(frames: &[Vec<u8>]) -> Vec<(u32, u32, u32)> {
    frames
        .iter()
        .filter_map(|f| match frame_type(f) {
            msg::CLIENT_SESSION_OPENED_EVENT | msg::CLIENT_SESSION_CLOSED_EVENT => {
                Some(match decode(f) {
                    Message::ClientSessionOpenedEvent(e) => {
                        (msg::CLIENT_SESSION_OPENED_EVENT, e.session_id, 0)
                    }
                    Message::ClientSessionClosedEvent(e) => {
                        (msg::CLIENT_SESSION_CLOSED_EVENT, e.session_id, e.status)
                    }
                    _ => unreachable!(),
                })
            }
            _ => None,
        })
        .collect()
}

/// FAILURE_CONF(invoke, status) as the router must send it (16 bytes, no Text).
pub fn failure_conf_frame(invoke_id: u32, status: u32) -> Vec<u8> {
    Message::from(FailureConf {
        invoke_id,
        status,
        text: None,
    })
    .to_frame(Version::MAX)
    .unwrap()
}

/// FAILURE_EVENT(status) (12 bytes, no Text).
pub fn failure_event_frame(status: u32) -> Vec<u8> {
    Message::from(FailureEvent { status, text: None })
        .to_frame(Version::MAX)
        .unwrap()
}

/// (ConnectionCallID, ConnectionDeviceIDType, ConnectionDeviceID).
pub type CallId = (u32, u16, Vec<u8>);

/// A call id from its three fields as a message carries them.
pub(crate) fn cid(id: u32, ty: u16, dev: &Option<CtiString>) -> CallId {
    (
        id,
        ty,
        dev.as_ref()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default(),
    )
}

/// The primary call of a call event (for descriptions and the drivers).
pub fn primary_call(m: &Message) -> Option<CallId> {
    use Message as M;
    Some(match m {
        M::CallDeliveredEvent(e) => cid(
            e.connection_call_id,
            e.connection_device_id_type,
            &e.connection_device_id,
        ),
        M::CallEstablishedEvent(e) => cid(
            e.connection_call_id,
            e.connection_device_id_type,
            &e.connection_device_id,
        ),
        M::CallHeldEvent(e) => cid(
            e.connection_call_id,
            e.connection_device_id_type,
            &e.connection_device_id,
        ),
        M::CallRetrievedEvent(e) => cid(
            e.connection_call_id,
            e.connection_device_id_type,
            &e.connection_device_id,
        ),
        M::CallClearedEvent(e) => cid(
            e.connection_call_id,
            e.connection_device_id_type,
            &e.connection_device_id,
        ),
        M::CallConnectionClearedEvent(e) => cid(
            e.connection_call_id,
            e.connection_device_id_type,
            &e.connection_device_id,
        ),
        M::CallOriginatedEvent(e) => cid(
            e.connection_call_id,
            e.connection_device_id_type,
            &e.connection_device_id,
        ),
        M::CallFailedEvent(e) => cid(
            e.connection_call_id,
            e.connection_device_id_type,
            &e.connection_device_id,
        ),
        M::CallConferencedEvent(e) => cid(
            e.primary_call_id,
            e.primary_device_id_type,
            &e.primary_device_id,
        ),
        M::CallTransferredEvent(e) => cid(
            e.primary_call_id,
            e.primary_device_id_type,
            &e.primary_device_id,
        ),
        M::CallDivertedEvent(e) => cid(
            e.connection_call_id,
            e.connection_device_id_type,
            &e.connection_device_id,
        ),
        M::CallServiceInitiatedEvent(e) => cid(
            e.connection_call_id,
            e.connection_device_id_type,
            &e.connection_device_id,
        ),
        M::CallQueuedEvent(e) => cid(
            e.connection_call_id,
            e.connection_device_id_type,
            &e.connection_device_id,
        ),
        M::CallDequeuedEvent(e) => cid(
            e.connection_call_id,
            e.connection_device_id_type,
            &e.connection_device_id,
        ),
        M::CallReachedNetworkEvent(e) => cid(
            e.connection_call_id,
            e.connection_device_id_type,
            &e.connection_device_id,
        ),
        M::BeginCallEvent(e) => cid(
            e.connection_call_id,
            e.connection_device_id_type,
            &e.connection_device_id,
        ),
        M::EndCallEvent(e) => cid(
            e.connection_call_id,
            e.connection_device_id_type,
            &e.connection_device_id,
        ),
        M::CallDataUpdateEvent(e) => cid(
            e.connection_call_id,
            e.connection_device_id_type,
            &e.connection_device_id,
        ),
        _ => return None,
    })
}
