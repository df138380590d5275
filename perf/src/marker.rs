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
/// frames in (v24: 2 bytes each, docs/protocol.md §2.5).
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
    // 12 digits = 8 + 4; 20 digits = 8 + 8 + 4.
    // (Wrapping, like any text of 20 digits above u64::MAX.)
    let join = |high: u64, scale: u64, low: u64| high.wrapping_mul(scale).wrapping_add(low);
    let seq = join(digits8(&text[..8])?, 10_000, digits4(&text[8..12])?);
    let ts = &text[SEQ_DIGITS + 1..MARKER_LEN];
    let ts = join(digits8(&ts[..8])?, 100_000_000, digits8(&ts[8..16])?);
    let ts = join(ts, 10_000, digits4(&text[SEQ_DIGITS + 17..MARKER_LEN])?);
    Some((seq, ts))
}

/// Eight ASCII digits at once (the first is the most significant), or `None`
/// if any byte is not a digit (SWAR: the receive loop parses one marker per
/// delivery, millions per second, on the core the server under test shares).
#[inline]
fn digits8(text: &[u8]) -> Option<u64> {
    let mut word = [0; 8];
    word.copy_from_slice(&text[..8]);
    let chunk = u64::from_le_bytes(word);
    // Every byte 0x30..=0x39: high nibble 3, and adding 6 keeps it 3.
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    if chunk & HIGH != THREES || chunk.wrapping_add(0x0606_0606_0606_0606) & HIGH != THREES {
        return None;
    }
    let v = chunk & 0x0F0F_0F0F_0F0F_0F0F;
    let v = v.wrapping_mul(10 << 8 | 1) >> 8; // pairs of digits
    let v = (v & 0x00FF_00FF_00FF_00FF).wrapping_mul(100 << 16 | 1) >> 16;
    let v = (v & 0x0000_FFFF_0000_FFFF).wrapping_mul(10_000 << 32 | 1) >> 32;
    Some(v)
}

#[inline]
fn digits4(text: &[u8]) -> Option<u64> {
    text[..4].iter().try_fold(0, |value, &b| {
        let d = b.wrapping_sub(b'0');
        (d <= 9).then_some(value * 10 + d as u64)
    })
}

/// The floating tag that carries the marker in events of `message_type`.
pub fn tag_of(message_type: u32) -> Option<u16> {
    match message_type {
        msg::CALL_DELIVERED_EVENT => Some(tags::CALL_VAR_10),
        msg::AGENT_STATE_EVENT => Some(tags::CLIENT_SIGNATURE),
        _ => None,
    }
}

/// Finds the marker of a whole v24 frame (header included) by walking its
/// floating fields, with a memory of where the marker sat: the frames of one
/// message type and length that a generator sends share their layout, so
/// the next such frame is looked at there first — its field header (tag and
/// length) must match exactly and the text must parse — and walked field by
/// field only when that check fails.
#[derive(Debug, Default)]
pub struct Finder {
    /// (message type, frame length, offset of the field header), most recent first.
    hints: [(u32, usize, usize); 4],
}

impl Finder {
    /// The frame's `(seq, ts)`; `None` for frames that carry no marker.
    #[inline]
    pub fn find(&mut self, frame_bytes: &[u8]) -> Option<(u64, u64)> {
        let message_type = u32::from_be_bytes(frame_bytes.get(4..8)?.try_into().ok()?);
        let tag = tag_of(message_type)?;
        let hint = self
            .hints
            .iter()
            .find(|h| h.0 == message_type && h.1 == frame_bytes.len());
        if let Some(&(_, _, at)) = hint {
            if let Some(found) = marker_at(frame_bytes, at, tag) {
                return Some(found);
            }
        }
        let at = marker_field(frame_bytes)?;
        self.hints.rotate_right(1);
        self.hints[0] = (message_type, frame_bytes.len(), at);
        marker_at(frame_bytes, at, tag)
    }
}

/// The marker whose field header is at `at`, if that field is one.
#[inline]
fn marker_at(frame_bytes: &[u8], at: usize, tag: u16) -> Option<(u64, u64)> {
    let header = frame_bytes.get(at..at + 2 * TAG_WIDTH)?;
    if u16::from_be_bytes([header[0], header[1]]) != tag {
        return None;
    }
    let len = u16::from_be_bytes([header[2], header[3]]) as usize;
    let start = at + 2 * TAG_WIDTH;
    parse(frame_bytes.get(start..start + len)?)
}

/// Offset of the marker's field header in a whole v24 frame, by walking its
/// floating fields.
fn marker_field(frame_bytes: &[u8]) -> Option<usize> {
    let (f, _) = frame::parse(frame_bytes).ok()?;
    let tag = tag_of(f.message_type)?;
    let fixed = Message::fixed_len(f.message_type, Version::MAX)?;
    let mut at = frame::HEADER_LEN + fixed;
    while frame_bytes.len() >= at + 2 * TAG_WIDTH {
        let t = u16::from_be_bytes([frame_bytes[at], frame_bytes[at + 1]]);
        if t == tag {
            return Some(at);
        }
        let len = u16::from_be_bytes([frame_bytes[at + 2], frame_bytes[at + 3]]) as usize;
        at += 2 * TAG_WIDTH + len;
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
        // One non-digit anywhere (each SWAR lane and the scalar tails).
        let mut text = placeholder().into_bytes();
        stamp(&mut text, 123_456_789_012, 18_365_432_109_876_543_210);
        for i in (0..MARKER_LEN).filter(|&i| i != SEQ_DIGITS) {
            for bad in [b'/', b':', b'a', b' ', 0xB0] {
                let mut t = text.clone();
                t[i] = bad;
                assert_eq!(parse(&t), None, "byte {i} = {bad:#x}");
            }
        }
    }

    /// The hint is only a first guess: a frame of the same type and length
    /// with its marker elsewhere is walked, and found.
    #[test]
    fn finder_checks_its_hint() {
        let t = crate::events::Templates::new(3, &[3]);
        let mut a = Vec::new();
        t.append(crate::events::EventKind::CallDelivered, 1, 5, 50, &mut a);
        let mut finder = Finder::default();
        assert_eq!(finder.find(&a), Some((5, 50)));
        let mut b = Vec::new();
        t.append(crate::events::EventKind::CallDelivered, 2, 6, 60, &mut b);
        assert_eq!(finder.find(&b), Some((6, 60)), "same layout, from the hint");
        // The same frame with the marker field moved in front of the field
        // before it (same type, same length, marker 18 bytes earlier).
        let marker = marker_field(&b).unwrap();
        let value = b"queue=billing\0";
        let before = b.windows(value.len()).position(|w| w == value).unwrap() - 4;
        assert_eq!(before + 4 + value.len(), marker);
        let mut moved = b[..before].to_vec();
        moved.extend_from_slice(&b[marker..]);
        moved.extend_from_slice(&b[before..marker]);
        assert_eq!(moved.len(), b.len());
        assert_eq!(
            finder.find(&moved),
            Some((6, 60)),
            "walked past a stale hint"
        );
        assert_eq!(Finder::default().find(&moved), Some((6, 60)));
        // A marker field renamed to another tag is no marker, hint or not.
        let mut renamed = b.clone();
        renamed[marker..marker + 2].copy_from_slice(&tags::CALL_VAR_9.to_be_bytes());
        assert_eq!(finder.find(&renamed), None);
    }

    #[test]
    fn every_digit_counts() {
        let mut text = placeholder().into_bytes();
        for (seq, ts) in [
            (0, 0),
            (1, 1),
            (999_999_999_999, 10_000_000_000_000_000_000),
            (123_456_789_012, 18_446_744_073_709_551_615),
            (100_000_000, 12_345_678),
        ] {
            stamp(&mut text, seq, ts);
            assert_eq!(parse(&text), Some((seq, ts)));
        }
    }
}
