//! Raw GED-188 frames for tests: builders (header, fixed part, floating
//! part at either tag width), a floating-part walker and frame accessors.
//! Pure functions of bytes.

use ctirouter::proto::constants::msg;
use ctirouter::proto::msg::{FailureConf, FailureEvent};
use ctirouter::proto::{decode_frame, DecodeOptions, Message, Version};

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

/// MessageType of a whole frame.
pub fn frame_type(frame: &[u8]) -> u32 {
    u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]])
}

/// The body (after the header) of a whole frame.
pub fn frame_body(frame: &[u8]) -> &[u8] {
    &frame[8..]
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

/// Short human description of a frame for assertion messages.
pub fn describe(frame: &[u8]) -> String {
    let t = frame_type(frame);
    let name = Message::type_name(t)
        .map(str::to_string)
        .unwrap_or_else(|| format!("TYPE_{t}"));
    if let Some((invoke, status)) = as_failure_conf(frame) {
        return format!("FAILURE_CONF(invoke {invoke}, status {status})");
    }
    if let Some(status) = as_failure_event(frame) {
        return format!("FAILURE_EVENT(status {status})");
    }
    format!("{name} ({} bytes)", frame.len())
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
