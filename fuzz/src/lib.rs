//! Bodies of the cargo-fuzz targets, as plain functions.
//!
//! Each `fuzz_targets/<name>.rs` is a one-line `fuzz_target!` that calls the
//! function of the same name here. Keeping the logic in a library means it
//! builds and runs on stable (`cargo check --lib`, `cargo test`, which replays
//! `corpus/<target>/` when it exists) without libFuzzer or nightly.
//!
//! Every function must never panic on any input; the `assert!`s state the
//! properties checked beyond "does not crash".

use ctirouter::proto::constants::msg;
use ctirouter::proto::frame::{self, Frame, HEADER_LEN, MAX_FRAME_LEN};
use ctirouter::proto::msg::OpenReq;
use ctirouter::proto::routing::{self, RoutingKeys};
use ctirouter::proto::transcode::{self, Transcoded, MONITOR_ID_OFFSET};
use ctirouter::proto::{decode_frame, DecodeError, DecodeOptions, Message, Version};
use ctirouter::session::frames::FrameBuffer;

/// The protocol version selected by a byte: 13 + `b` mod 12 (so every byte is a version).
pub fn version_from_byte(b: u8) -> Version {
    Version::new(Version::MIN.number() + u32::from(b) % Version::COUNT as u32)
        .expect("13..=24 is a version")
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

// ---------------------------------------------------------------------------
// frame_decoder
// ---------------------------------------------------------------------------

/// `frame_decoder`: byte 0 picks the version; the rest is a byte stream read
/// the way a session read loop does: `frame::check`, `frame::parse`, decode
/// with `Message::decode`, advance, until `Incomplete` or a framing error.
pub fn frame_decoder(data: &[u8]) {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let version = version_from_byte(selector);
    loop {
        match frame::check(rest) {
            Err(DecodeError::Incomplete) => {
                // Only a short header, or a header announcing more than is here.
                if rest.len() >= HEADER_LEN {
                    let announced = HEADER_LEN + be_u32(rest) as usize;
                    assert!(announced > rest.len() && announced <= MAX_FRAME_LEN);
                }
                assert_eq!(frame::parse(rest), Err(DecodeError::Incomplete));
                break;
            }
            Err(err) => {
                // The only framing error is an oversize header; it stops the session.
                assert!(err.breaks_framing(), "{err:?}");
                assert!(HEADER_LEN + be_u32(rest) as usize > MAX_FRAME_LEN);
                break;
            }
            Ok(len) => {
                assert!((HEADER_LEN..=MAX_FRAME_LEN).contains(&len) && len <= rest.len());
                let (parsed, used) = frame::parse(rest).expect("parse after a good check");
                assert_eq!((used, parsed.wire_len()), (len, len));
                assert_eq!(parsed.message_type, be_u32(&rest[4..]));
                assert_eq!(parsed.body, &rest[HEADER_LEN..len]);
                decode_and_check(parsed, version);
                // The one-call helper agrees with check + parse + decode.
                let direct = decode_frame(rest, version, DecodeOptions::STRICT);
                let stepwise = Message::decode(
                    parsed.message_type,
                    parsed.body,
                    version,
                    DecodeOptions::STRICT,
                );
                match (direct, stepwise) {
                    (Ok((a, n)), Ok(b)) => assert_eq!((a, n), (b, len)),
                    (Err(DecodeError::Invalid(a)), Err(b)) => assert_eq!(a, b),
                    (a, b) => panic!("decode_frame {a:?} vs parse+decode {b:?}"),
                }
                rest = &rest[len..];
            }
        }
    }
}

/// Decode one body strictly and with counts unchecked, then round-trip it.
fn decode_and_check(frame: Frame<'_>, version: Version) {
    let strict = Message::decode(
        frame.message_type,
        frame.body,
        version,
        DecodeOptions::STRICT,
    );
    let lenient = Message::decode(
        frame.message_type,
        frame.body,
        version,
        DecodeOptions::COUNTS_UNCHECKED,
    );
    if let Ok(m) = &strict {
        // Count checking only ever rejects more; it never changes a result.
        assert_eq!(lenient.as_ref(), Ok(m));
    }
    if let Ok(m) = &lenient {
        assert_eq!(m.message_type(), frame.message_type);
        round_trip(m, version);
    }
}

/// What the codec emits it can read back, and one re-encoding reaches a fixpoint.
///
/// Not `decode(encode(m)) == m`: encoding drops what `version` cannot carry
/// (a NUL-less 255-byte string gains a NUL and no longer fits a 1-byte
/// length) and re-groups group members that arrived out of declaration order.
/// So the property is: the frame we write decodes, and writing *that* again
/// gives back the same message.
fn round_trip(m: &Message, version: Version) {
    let mut first = Vec::new();
    let len = match m.encode(version, &mut first) {
        Ok(len) => len,
        Err(_) => {
            assert!(
                first.is_empty(),
                "a failed encode leaves the buffer as it was"
            );
            return;
        }
    };
    assert_eq!(len, first.len());
    assert_eq!(frame::check(&first), Ok(len));
    let (m2, used) = decode_frame(&first, version, DecodeOptions::COUNTS_UNCHECKED)
        .unwrap_or_else(|e| panic!("our own encoding does not decode: {e:?}\n{m:?}"));
    assert_eq!(used, len);
    let mut second = Vec::new();
    m2.encode(version, &mut second)
        .unwrap_or_else(|e| panic!("re-encode failed: {e:?}\n{m2:?}"));
    let (m3, _) = decode_frame(&second, version, DecodeOptions::COUNTS_UNCHECKED)
        .unwrap_or_else(|e| panic!("second encoding does not decode: {e:?}\n{m2:?}"));
    assert_eq!(m2, m3, "decode/encode is not a fixpoint after one round");
}

// ---------------------------------------------------------------------------
// request_decoders
// ---------------------------------------------------------------------------

/// The client requests the router decodes, in `request_decoders` selector order.
pub const REQUESTS: [u32; 47] = [
    msg::OPEN_REQ,
    msg::HEARTBEAT_REQ,
    msg::CLOSE_REQ,
    msg::MONITOR_START_REQ,
    msg::MONITOR_STOP_REQ,
    msg::CHANGE_MONITOR_MASK_REQ,
    msg::SESSION_MONITOR_START_REQ,
    msg::SESSION_MONITOR_STOP_REQ,
    msg::CLIENT_EVENT_REPORT_REQ,
    // Client Control and Call Data Update (proxied to the CTI Server).
    msg::QUERY_AGENT_STATE_REQ,
    msg::SET_AGENT_STATE_REQ,
    msg::ALTERNATE_CALL_REQ,
    msg::ANSWER_CALL_REQ,
    msg::CLEAR_CALL_REQ,
    msg::CLEAR_CONNECTION_REQ,
    msg::CONFERENCE_CALL_REQ,
    msg::CONSULTATION_CALL_REQ,
    msg::DEFLECT_CALL_REQ,
    msg::HOLD_CALL_REQ,
    msg::MAKE_CALL_REQ,
    msg::MAKE_PREDICTIVE_CALL_REQ,
    msg::RECONNECT_CALL_REQ,
    msg::RETRIEVE_CALL_REQ,
    msg::TRANSFER_CALL_REQ,
    msg::QUERY_DEVICE_INFO_REQ,
    msg::SNAPSHOT_CALL_REQ,
    msg::SNAPSHOT_DEVICE_REQ,
    msg::SEND_DTMF_SIGNAL_REQ,
    msg::SUPERVISOR_ASSIST_REQ,
    msg::EMERGENCY_CALL_REQ,
    msg::BAD_CALL_REQ,
    msg::AGENT_GREETING_CONTROL_REQ,
    msg::SET_CALL_DATA_REQ,
    msg::RELEASE_CALL_REQ,
    msg::SET_DEVICE_ATTRIBUTES_REQ,
    // Miscellaneous (answered by the router or proxied).
    msg::USER_MESSAGE_REQ,
    msg::REGISTER_VARIABLES_REQ,
    msg::QUERY_AGENT_STATISTICS_REQ,
    msg::QUERY_SKILL_GROUP_STATISTICS_REQ,
    msg::SET_APP_DATA_REQ,
    msg::AGENT_DESK_SETTINGS_REQ,
    msg::START_RECORDING_REQ,
    msg::STOP_RECORDING_REQ,
    // Supervisor (one upstream session per supervisor session).
    msg::SUPERVISE_CALL_REQ,
    msg::LIST_AGENT_TEAM_REQ,
    msg::MONITOR_AGENT_TEAM_START_REQ,
    msg::MONITOR_AGENT_TEAM_STOP_REQ,
];

/// `request_decoders`: byte 0 picks a request type (`REQUESTS[b % len]`), the
/// rest is its body. OPEN_REQ is first decoded at the version peeked from its
/// own body (as the session does); then every type is decoded at each version
/// 13..=24.
pub fn request_decoders(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let message_type = REQUESTS[selector as usize % REQUESTS.len()];
    if message_type == msg::OPEN_REQ {
        open_req(body);
    }
    for version in Version::all() {
        let frame = Frame { message_type, body };
        if let Ok(m) = Message::decode(message_type, body, version, DecodeOptions::STRICT) {
            assert!(
                !matches!(m, Message::Raw(_)),
                "request {message_type} is typed"
            );
        }
        decode_and_check(frame, version);
    }
}

fn open_req(body: &[u8]) {
    let Some(requested) = OpenReq::peek_version(body) else {
        // Too short for VersionNumber, so too short for the fixed part.
        for version in Version::all() {
            assert!(Message::decode(msg::OPEN_REQ, body, version, DecodeOptions::STRICT).is_err());
        }
        return;
    };
    let Some(version) = Version::new(requested) else {
        return; // the session answers E_CTI_INVALID_VERSION without decoding
    };
    if let Ok(Message::OpenReq(open)) =
        Message::decode(msg::OPEN_REQ, body, version, DecodeOptions::STRICT)
    {
        assert_eq!(open.version_number, requested);
        assert_eq!(Some(open.invoke_id), OpenReq::peek_invoke_id(body));
    }
}

// ---------------------------------------------------------------------------
// split_stream
// ---------------------------------------------------------------------------

/// Longest input `split_stream` looks at: it is quadratic in the length.
pub const SPLIT_STREAM_MAX: usize = 1024;

/// Where a frame sat in the stream: (MessageType, stream offset, wire length).
pub type FrameAt = (u32, usize, usize);

/// How a stream ended: the frames taken, and the bytes left over or the framing error.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub frames: Vec<FrameAt>,
    pub end: Result<usize, DecodeError>,
}

/// Feed `input` in the given pieces to the router's own client reassembler
/// (`FrameBuffer::for_client`, as a shard's read loop drives it: each read
/// lands in `spare`, then every whole frame is taken); check every frame
/// against the input bytes. After a framing error the session is closed:
/// later bytes are ignored.
fn reassemble<'a>(input: &[u8], pieces: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut buf = FrameBuffer::for_client();
    let mut frames = Vec::new();
    let mut at = 0;
    let mut failed = None;
    'pieces: for piece in pieces {
        let mut rest = piece;
        while !rest.is_empty() {
            let room = buf.spare();
            let n = room.len().min(rest.len());
            room[..n].copy_from_slice(&rest[..n]);
            buf.filled(n);
            rest = &rest[n..];
            loop {
                match buf.next_parsed() {
                    Ok(Some(f)) => {
                        let len = f.wire_len();
                        assert_eq!(
                            &input[at + HEADER_LEN..at + len],
                            f.body,
                            "frame body at {at}"
                        );
                        assert_eq!(be_u32(&input[at + 4..]), f.message_type);
                        frames.push((f.message_type, at, len));
                        at += len;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        assert!(e.breaks_framing(), "{e}");
                        failed = Some(e);
                        break 'pieces;
                    }
                }
            }
        }
    }
    Outcome {
        frames,
        end: match failed {
            Some(e) => Err(e),
            None => Ok(buf.buffered()),
        },
    }
}

/// `split_stream`: for every split point k, `input[..k]` then `input[k..]`
/// must yield exactly the frames (and the same ending) as the whole input at
/// once; so must one byte at a time.
pub fn split_stream(data: &[u8]) {
    let input = &data[..data.len().min(SPLIT_STREAM_MAX)];
    let whole = reassemble(input, [input]);
    // Frames tile the stream from offset 0.
    let mut next = 0;
    for &(_, at, len) in &whole.frames {
        assert_eq!(at, next);
        next += len;
    }
    if let Ok(left) = whole.end {
        assert_eq!(next + left, input.len());
    }
    for k in 0..=input.len() {
        let (a, b) = input.split_at(k);
        assert_eq!(reassemble(input, [a, b]), whole, "split at {k}");
    }
    assert_eq!(
        reassemble(input, input.chunks(1)),
        whole,
        "one byte at a time"
    );
}

// ---------------------------------------------------------------------------
// routing_keys
// ---------------------------------------------------------------------------

/// `routing_keys`: byte 0 picks the arrival version (`b % 12`) and the target
/// version (`(b / 12) % 12`); the rest is one frame. Runs `routing::extract`,
/// `transcode::transcode` and `patch_monitor_id` on it.
pub fn routing_keys(data: &[u8]) {
    let Some((&selector, frame_bytes)) = data.split_first() else {
        return;
    };
    let from = version_from_byte(selector);
    let to = version_from_byte(selector / Version::COUNT as u8);
    let keys = routing::extract(frame_bytes, from);
    if let Ok(k) = &keys {
        check_spans(k, frame_bytes);
        assert_eq!(k.has_monitor_id, routing::has_monitor_id(k.message_type));
    }

    // Transcode, appending after bytes that must be left alone.
    let mut out = vec![0xa5; 3];
    let prefix = out.len();
    match transcode::transcode(frame_bytes, from, to, &mut out) {
        Ok(Transcoded::Written(n)) => {
            assert_eq!(out.len(), prefix + n);
            assert_eq!(&out[..prefix], &[0xa5; 3]);
            let written = &out[prefix..];
            assert_eq!(frame::check(written), Ok(n));
            if from == to {
                assert_eq!(written, &frame_bytes[..n]);
            }
            // Whatever we re-encode, a router downstream can route. (Same
            // version is a plain copy: it routes exactly as the input did.)
            let k2 = routing::extract(written, to);
            if from == to {
                assert_eq!(format!("{k2:?}"), format!("{keys:?}"));
            } else {
                let k2 =
                    k2.unwrap_or_else(|e| panic!("transcoded frame has no routing keys: {e:?}"));
                check_spans(&k2, written);
                if let Ok(k) = &keys {
                    same_fixed_keys(k, &k2);
                }
            }
        }
        Ok(Transcoded::NotInVersion) | Err(_) => assert_eq!(out.len(), prefix),
    }

    // Patch the MonitorID of a per-monitor copy.
    let mut copy = frame_bytes.to_vec();
    let monitor_id = 0x5eed_0000 | u32::from(selector);
    let patched = transcode::patch_monitor_id(&mut copy, monitor_id);
    let expect = frame_bytes.len() >= MONITOR_ID_OFFSET + 4
        && routing::has_monitor_id(be_u32(&frame_bytes[4..]));
    assert_eq!(patched, expect);
    if patched {
        assert_eq!(be_u32(&copy[MONITOR_ID_OFFSET..]), monitor_id);
        assert_eq!(copy[..MONITOR_ID_OFFSET], frame_bytes[..MONITOR_ID_OFFSET]);
        assert_eq!(
            copy[MONITOR_ID_OFFSET + 4..],
            frame_bytes[MONITOR_ID_OFFSET + 4..]
        );
        // MonitorID is not a routing key: the patched copy routes the same.
        let after = routing::extract(&copy, from);
        assert_eq!(format!("{after:?}"), format!("{keys:?}"));
    } else {
        assert_eq!(copy, frame_bytes);
    }
}

/// Every span lies inside the frame's floating part and holds no NUL.
fn check_spans(k: &RoutingKeys, frame_bytes: &[u8]) {
    assert!(k.devices().len() <= routing::MAX_DEVICES);
    let spans = k
        .devices()
        .iter()
        .map(|(_, s)| *s)
        .chain(k.call.and_then(|c| c.device_id))
        .chain(k.other_call.and_then(|c| c.device_id))
        .chain(k.agent_id)
        .chain(k.agent_extension)
        .chain(k.agent_instrument);
    for s in spans {
        assert!(s.start as usize >= HEADER_LEN);
        assert!(s.start as usize + s.len as usize <= frame_bytes.len());
        assert!(!s.of(frame_bytes).contains(&0));
    }
}

/// Keys read from the fixed part survive transcoding (their offsets do not
/// depend on the version); trunk numbers too, when both frames carry them.
fn same_fixed_keys(a: &RoutingKeys, b: &RoutingKeys) {
    let ids = |c: Option<routing::CallSpan>| c.map(|c| (c.call_id, c.device_id_type));
    assert_eq!(a.message_type, b.message_type);
    assert_eq!(a.has_monitor_id, b.has_monitor_id);
    assert_eq!(a.peripheral_id, b.peripheral_id);
    assert_eq!(ids(a.call), ids(b.call));
    assert_eq!(ids(a.other_call), ids(b.other_call));
    assert_eq!(a.call_mask_bit, b.call_mask_bit);
    assert_eq!(a.agent_state, b.agent_state);
    if let (Some(x), Some(y)) = (a.trunk_number, b.trunk_number) {
        assert_eq!(x, y);
    }
    if let (Some(x), Some(y)) = (a.trunk_group_number, b.trunk_group_number) {
        assert_eq!(x, y);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Replays `corpus/<target>/*` (made by `seeds.sh`, or grown by cargo fuzz)
    /// through the plain functions, so the corpus is a stable-toolchain test too.
    fn replay(target: &str, body: fn(&[u8])) -> usize {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return 0;
        };
        let mut n = 0;
        let mut failed = Vec::new();
        for entry in entries.flatten() {
            let data = std::fs::read(entry.path()).unwrap();
            if std::panic::catch_unwind(|| body(&data)).is_err() {
                failed.push(entry.path().display().to_string());
            }
            n += 1;
        }
        assert!(
            failed.is_empty(),
            "{target}: {} inputs fail: {failed:#?}",
            failed.len()
        );
        n
    }

    fn heartbeat() -> Vec<u8> {
        vec![0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 0x2a]
    }

    #[test]
    fn empty_and_tiny_inputs() {
        for f in [frame_decoder, request_decoders, split_stream, routing_keys] {
            f(&[]);
            f(&[0]);
            f(&[0xff; 9]);
        }
    }

    #[test]
    fn hand_made_streams() {
        let mut stream = vec![11];
        stream.extend(heartbeat());
        stream.extend(heartbeat());
        stream.extend([0, 0, 0x30, 0xd5, 0, 0, 0, 9]); // over the limit
        frame_decoder(&stream);
        split_stream(&stream[1..]);
        routing_keys(&stream);
        request_decoders(&[1, 0, 0, 0, 0x2a]);
    }

    #[test]
    fn corpus_replays() {
        for (target, body) in [
            ("frame_decoder", frame_decoder as fn(&[u8])),
            ("request_decoders", request_decoders),
            ("split_stream", split_stream),
            ("routing_keys", routing_keys),
        ] {
            let n = replay(target, body);
            eprintln!("{target}: {n} corpus inputs");
        }
    }
}
