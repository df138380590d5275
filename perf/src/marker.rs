//! The sequence number and send time every generated event carries, written
//! as fixed-width decimal text `SSSSSSSSSSSS:TTTTTTTTTTTTTTTTTTTT` into a
//! string field (CallVariable10 of CALL_DELIVERED_EVENT, CTIClientSignature of
//! AGENT_STATE_EVENT), so events stay valid GED-188 that a real client could
//! print, and the router forwards them untouched. Fixed width lets the driver
//! patch a pre-encoded template in place. No I/O here.

use ctirouter::proto::constants::msg;
use ctirouter::proto::{frame, tags, Message, Version};

/// Digits of the sequence number (10^12 events: 27 hours at 10 M/s).
const SEQ_DIGITS: usize = 12;
/// Digits of the timestamp (u64 nanoseconds fit in 20).
const TS_DIGITS: usize = 20;
/// Text length of a marker, without the NUL the field carries.
pub const MARKER_LEN: usize = SEQ_DIGITS + 1 + TS_DIGITS;
/// Floating tag/length width at the version the router forwards upstream
/// frames in (v24: 2 bytes each, protocol.md §2.5).
const TAG_WIDTH: usize = 2;

/// The placeholder a template carries until it is stamped.
pub fn placeholder() -> String {
    format!("{:0s$}:{:0t$}", 0, 0, s = SEQ_DIGITS, t = TS_DIGITS)
}

/// Write `seq` and `ts` into the marker text at `out[..MARKER_LEN]`.
#[inline]
pub fn stamp(out: &mut [u8], seq: u64, ts: u64) {
    write_digits(&mut out[..SEQ_DIGITS], seq);
    out[SEQ_DIGITS] = b':';
    write_digits(&mut out[SEQ_DIGITS + 1..MARKER_LEN], ts);
}

#[inline]
fn write_digits(out: &mut [u8], mut value: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The `(seq, ts)` of a marker text, if it is one.
#[inline]
pub fn parse(text: &[u8]) -> Option<(u64, u64)> {
    if text.len() < MARKER_LEN || text[SEQ_DIGITS] != b':' {
        return None;
    }
    let seq = read_digits(&text[..SEQ_DIGITS])?;
    let ts = read_digits(&text[SEQ_DIGITS + 1..MARKER_LEN])?;
    Some((seq, ts))
}

#[inline]
fn read_digits(text: &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    for &b in text {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        value = value.wrapping_mul(10).wrapping_add(d as u64);
    }
    Some(value)
}

/// The floating tag that carries the marker in events of `message_type`.
pub fn tag_of(message_type: u32) -> Option<u16> {
    match message_type {
        msg::CALL_DELIVERED_EVENT => Some(tags::CALL_VAR_10),
        msg::AGENT_STATE_EVENT => Some(tags::CLIENT_SIGNATURE),
        _ => None,
    }
}

/// The marker of a whole v24 frame (header included), by walking its
/// floating fields; `None` for frames that carry none.
#[inline]
pub fn find_in_frame(frame_bytes: &[u8]) -> Option<(u64, u64)> {
    let (f, _) = frame::parse(frame_bytes).ok()?;
    let tag = tag_of(f.message_type)?;
    let fixed = Message::fixed_len(f.message_type, Version::MAX)?;
    let mut rest = f.body.get(fixed..)?;
    while rest.len() >= 2 * TAG_WIDTH {
        let t = u16::from_be_bytes([rest[0], rest[1]]);
        let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
        let data = rest.get(2 * TAG_WIDTH..2 * TAG_WIDTH + len)?;
        if t == tag {
            return parse(data);
        }
        rest = &rest[2 * TAG_WIDTH + len..];
    }
    None
}

/// Where the marker text starts in an encoded frame (to patch a template).
pub fn offset_in_frame(frame_bytes: &[u8]) -> Option<usize> {
    let text = placeholder();
    frame_bytes
        .windows(text.len())
        .position(|w| w == text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_marker_parses_back() {
        let mut text = placeholder().into_bytes();
        stamp(&mut text, 123_456, 9_876_543_210_123);
        assert_eq!(parse(&text), Some((123_456, 9_876_543_210_123)));
        assert_eq!(text.len(), MARKER_LEN);
    }

    #[test]
    fn largest_values_fit() {
        let mut text = placeholder().into_bytes();
        stamp(&mut text, 999_999_999_999, u64::MAX);
        assert_eq!(parse(&text), Some((999_999_999_999, u64::MAX)));
    }

    #[test]
    fn garbage_is_not_a_marker() {
        assert_eq!(parse(b"hello"), None);
        assert_eq!(parse(&[b'x'; MARKER_LEN]), None);
    }
}
