//! Re-encoding an event from the version it arrived in to a session's version,
//! and the in-place patches applied to per-monitor copies (MonitorID, and the
//! SessionID of AGENT_STATE_EVENT). No I/O here.

use super::constants::msg;
use super::error::DecodeError;
use super::frame::{self, HEADER_LEN};
use super::message::{DecodeOptions, Message};
use super::routing::has_monitor_id;
use super::version::Version;

/// What became of a transcoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transcoded {
    /// A frame of this many bytes was appended.
    Written(usize),
    /// The target version cannot carry this message (type unknown there, or a
    /// raw type whose layout we cannot convert): nothing was appended.
    NotInVersion,
}

/// Append `frame` (encoded at `from`) re-encoded at `to`.
///
/// Same version: a copy. Typed messages: decoded (counts not enforced: the
/// router forwards what the PG sends) and re-encoded, dropping what `to` does
/// not have. Raw types: copied when both versions share the tag width,
/// otherwise not sent.
pub fn transcode(
    frame: &[u8],
    from: Version,
    to: Version,
    out: &mut Vec<u8>,
) -> Result<Transcoded, DecodeError> {
    let (parsed, used) = frame::parse(frame)?;
    if from == to {
        out.extend_from_slice(&frame[..used]);
        return Ok(Transcoded::Written(used));
    }
    let message = Message::decode(
        parsed.message_type,
        parsed.body,
        from,
        DecodeOptions::COUNTS_UNCHECKED,
    )?;
    if let Message::Raw(_) = message {
        if from.tag_width() != to.tag_width() {
            return Ok(Transcoded::NotInVersion);
        }
    }
    match message.encode(to, out) {
        Ok(len) => Ok(Transcoded::Written(len)),
        Err(_) => Ok(Transcoded::NotInVersion),
    }
}

/// Byte offset of MonitorID in a frame: the first body field.
pub const MONITOR_ID_OFFSET: usize = HEADER_LEN;
/// Byte offset of AGENT_STATE_EVENT's SessionID in a frame (docs/protocol.md §4.6).
pub const AGENT_SESSION_ID_OFFSET: usize = HEADER_LEN + 8;

/// Write `monitor_id` into an encoded event in place. Returns `false` (and
/// changes nothing) when the frame's type has no MonitorID or is too short.
#[inline]
pub fn patch_monitor_id(frame: &mut [u8], monitor_id: u32) -> bool {
    if frame.len() < MONITOR_ID_OFFSET + 4 {
        return false;
    }
    let message_type = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    if !has_monitor_id(message_type) {
        return false;
    }
    frame[MONITOR_ID_OFFSET..MONITOR_ID_OFFSET + 4].copy_from_slice(&monitor_id.to_be_bytes());
    true
}

/// Write the Client Events session id into an AGENT_STATE_EVENT in place.
#[inline]
pub fn patch_agent_session_id(frame: &mut [u8], session_id: u32) -> bool {
    if frame.len() < AGENT_SESSION_ID_OFFSET + 4 {
        return false;
    }
    let message_type = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    if message_type != msg::AGENT_STATE_EVENT {
        return false;
    }
    frame[AGENT_SESSION_ID_OFFSET..AGENT_SESSION_ID_OFFSET + 4]
        .copy_from_slice(&session_id.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::msg::{AgentStateEvent, HeartbeatReq};
    use crate::proto::MessageBody;

    fn v(n: u32) -> Version {
        Version::new(n).unwrap()
    }

    #[test]
    fn agent_state_event_transcodes_across_the_tag_width_change() {
        let m = AgentStateEvent {
            agent_state: 3,
            department_id: 9,
            agent_id: Some("1001".into()),
            max_beyond_task_limit: Some(2),
            ..Default::default()
        };
        let v24 = Message::from(m.clone()).to_frame(v(24)).unwrap();
        let mut v14 = Vec::new();
        assert!(matches!(
            transcode(&v24, v(24), v(14), &mut v14),
            Ok(Transcoded::Written(_))
        ));
        let mut back = Vec::new();
        transcode(&v14, v(14), v(24), &mut back).unwrap();
        let (decoded, _) = crate::proto::decode_frame(&back, v(24), DecodeOptions::STRICT).unwrap();
        let mut expect = m;
        expect.restrict_to(v(14));
        assert_eq!(decoded, Message::from(expect));
    }

    #[test]
    fn greeting_event_is_not_sent_below_15() {
        let m = crate::proto::msg::CallAgentGreetingEvent::default();
        let frame = Message::from(m).to_frame(v(24)).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            transcode(&frame, v(24), v(14), &mut out),
            Ok(Transcoded::NotInVersion)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn monitor_id_patch_only_touches_events_with_one() {
        let m = AgentStateEvent::default();
        let mut frame = Message::from(m).to_frame(v(24)).unwrap();
        assert!(patch_monitor_id(&mut frame, 0x01020304));
        assert_eq!(&frame[8..12], &[1, 2, 3, 4]);
        assert!(patch_agent_session_id(&mut frame, 7));
        assert_eq!(&frame[16..20], &[0, 0, 0, 7]);
        let mut hb = Message::from(HeartbeatReq { invoke_id: 5 })
            .to_frame(v(24))
            .unwrap();
        assert!(!patch_monitor_id(&mut hb, 9));
        assert_eq!(&hb[8..12], &[0, 0, 0, 5]);
    }
}
