//! Bounded random-input test: 120,000 frames mutated from the sample vectors
//! (bit flips, byte overwrites, truncation, extension, length and type field
//! corruption, splicing two frames), fed through every decoder of the codec.
//! The only hard requirement is "no panic"; where a decoder succeeds, its
//! output must be usable (spans inside the frame, re-encoded frames decode).
//! Deterministic: a fixed-seed splitmix64, so a failure reproduces.
//!
//! Runtime (test profile, opt-level 1, 2-core machine): about 1 s (1.0–1.3 s
//! measured with the machine under load).

use std::panic::{catch_unwind, AssertUnwindSafe};

use arbitrary::Unstructured;

use ctirouter::proto::frame::{self, HEADER_LEN, MAX_FRAME_LEN};
use ctirouter::proto::routing;
use ctirouter::proto::transcode::{
    patch_agent_session_id, patch_monitor_id, transcode, Transcoded,
};
use ctirouter::proto::{decode_frame, DecodeError, DecodeOptions, Message, Version};
use ctirouter::sim::rng::Rng;
use testkit::v;
use testkit::vectors::all_rows;

/// Mutated frames per test (two tests, so both cores work).
const FRAMES_PER_TEST: usize = 60_000;

/// Versions every frame is decoded at: both sides of the tag-width change and
/// both ends of the served range.
const VERSIONS: [u32; 4] = [13, 19, 20, 24];

const OPTIONS: [DecodeOptions; 2] = [DecodeOptions::STRICT, DecodeOptions::COUNTS_UNCHECKED];

/// Uniform-enough in `0..n` (`0 < n < 2^32`).
fn below(rng: &mut Rng, n: usize) -> usize {
    rng.below(u32::try_from(n).expect("a small bound")) as usize
}

/// True `p` times in 100.
fn percent(rng: &mut Rng, p: u32) -> bool {
    rng.below(100) < p
}

fn byte(rng: &mut Rng) -> u8 {
    rng.next_u64() as u8
}

/// The frames mutations start from: every vector frame, every typed vector
/// message re-encoded at v13 and v24 (other widths and layouts), and one
/// generated message of every typed type at v13, v19, v20 and v24 (so types
/// without a vector, such as the statistics confirmations with their 344-
/// and 596-byte fixed parts, are mutated from frames of their own shape).
fn seed_frames() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = all_rows().iter().map(|r| r.frame.clone()).collect();
    let mut rng = Rng::new(0x7365_6564);
    for which in 0..Message::TYPED.len() {
        let bytes: Vec<u8> = (0..1024).map(|_| byte(&mut rng)).collect();
        if let Ok(message) = Message::arbitrary_typed(which, &mut Unstructured::new(&bytes)) {
            for version in VERSIONS.map(v) {
                seeds.extend(message.to_frame(version).ok());
            }
        }
    }
    for row in all_rows() {
        let decoded = Message::decode(
            row.message_type,
            row.body(),
            row.version(),
            DecodeOptions::COUNTS_UNCHECKED,
        );
        if let Ok(message) = decoded {
            if !matches!(message, Message::Raw(_)) {
                for version in [v(13), v(24)] {
                    seeds.extend(message.to_frame(version).ok());
                }
            }
        }
    }
    seeds
}

fn set_u32(frame: &mut [u8], at: usize, value: u32) {
    if let Some(slot) = frame.get_mut(at..at + 4) {
        slot.copy_from_slice(&value.to_be_bytes());
    }
}

/// Values that sit on the codec's edges.
fn interesting_byte(rng: &mut Rng) -> u8 {
    [0x00, 0x01, 0x02, 0x04, 0x7F, 0x80, 0xFE, 0xFF][below(rng, 8)]
}

fn interesting_length(rng: &mut Rng, frame_len: usize) -> u32 {
    let body = frame_len.saturating_sub(HEADER_LEN) as u32;
    let limit = (MAX_FRAME_LEN - HEADER_LEN) as u32;
    match below(rng, 7) {
        0 => body.wrapping_add(1 + below(rng, 8) as u32),
        1 => body.saturating_sub(1 + below(rng, 8) as u32),
        2 => limit,
        3 => limit + 1,
        4 => 0,
        5 => u32::MAX,
        _ => rng.next_u64() as u32,
    }
}

/// One mutation of `frame` in place.
fn mutate_once(rng: &mut Rng, frame: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    match below(rng, 8) {
        0 if !frame.is_empty() => {
            let at = below(rng, frame.len());
            frame[at] ^= 1 << below(rng, 8);
        }
        1 if !frame.is_empty() => {
            let at = below(rng, frame.len());
            frame[at] = if percent(rng, 50) {
                interesting_byte(rng)
            } else {
                byte(rng)
            };
        }
        2 => frame.truncate(below(rng, frame.len() + 1)),
        3 => {
            let extra = 1 + below(rng, 64);
            frame.extend((0..extra).map(|_| byte(rng)));
        }
        4 => {
            let length = interesting_length(rng, frame.len());
            set_u32(frame, 0, length);
        }
        5 => {
            // Splice: the front of this frame, the back of another.
            let other = &seeds[below(rng, seeds.len())];
            frame.truncate(below(rng, frame.len() + 1));
            frame.extend_from_slice(&other[below(rng, other.len() + 1)..]);
        }
        6 => {
            // Another type's decoder on this body.
            let message_type = if percent(rng, 80) {
                Message::TYPED[below(rng, Message::TYPED.len())]
            } else {
                rng.next_u64() as u32 % 300
            };
            set_u32(frame, 4, message_type);
        }
        _ if frame.len() > HEADER_LEN => {
            // A floating length byte (or any body byte) made large.
            let at = HEADER_LEN + below(rng, frame.len() - HEADER_LEN);
            frame[at] = 0xF0 | byte(rng);
        }
        _ => frame.push(byte(rng)),
    }
}

/// A mutated frame; most get a MessageLength that matches again, so the body
/// decoders (not just framing) see the damage.
fn mutated(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut frame = seeds[below(rng, seeds.len())].clone();
    for _ in 0..1 + below(rng, 3) {
        mutate_once(rng, &mut frame, seeds);
    }
    if frame.len() >= HEADER_LEN && percent(rng, 70) {
        let body = (frame.len() - HEADER_LEN) as u32;
        set_u32(&mut frame, 0, body);
    }
    frame
}

/// Every decoder on one input. Panics only on a codec bug.
fn exercise(input: &[u8]) {
    let _ = frame::check(input);
    if let Ok((parsed, used)) = frame::parse(input) {
        assert_eq!(used, parsed.wire_len());
        for version in VERSIONS.map(v) {
            for options in OPTIONS {
                let decoded = Message::decode(parsed.message_type, parsed.body, version, options);
                let framed = decode_frame(input, version, options).map(|(m, _)| m);
                assert_eq!(framed, decoded.clone().map_err(DecodeError::from));
                if let Ok(message) = decoded {
                    re_encode(&message, version);
                }
            }
        }
    }
    for version in VERSIONS.map(v) {
        if let Ok(keys) = routing::extract(input, version) {
            for (_, span) in keys.devices() {
                let _ = span.of(input);
            }
            let spans = [keys.agent_id, keys.agent_extension, keys.agent_instrument];
            let calls = [keys.call, keys.other_call].map(|c| c.and_then(|c| c.device_id));
            for span in spans.into_iter().chain(calls).flatten() {
                let _ = span.of(input);
            }
        }
    }
    for (from, to) in [(19, 20), (20, 19), (24, 13), (13, 24), (20, 24)] {
        transcode_checked(input, v(from), v(to));
    }
    patch_checked(input);
}

/// What the decoder accepted, the encoder writes as a frame that decodes again.
fn re_encode(message: &Message, version: Version) {
    if let Ok(frame) = message.to_frame(version) {
        if let Err(e) = decode_frame(&frame, version, DecodeOptions::COUNTS_UNCHECKED) {
            panic!(
                "re-encoded {} at v{version} does not decode: {e}",
                message.name()
            );
        }
    }
}

fn transcode_checked(input: &[u8], from: Version, to: Version) {
    let mut out = vec![0x5A];
    if let Ok(Transcoded::Written(n)) = transcode(input, from, to, &mut out) {
        assert_eq!(out.len(), 1 + n, "{from}->{to}");
        assert_eq!(frame::check(&out[1..]), Ok(n), "{from}->{to}");
        if let Err(e) = decode_frame(&out[1..], to, DecodeOptions::COUNTS_UNCHECKED) {
            panic!("{from}->{to}: transcoded frame does not decode: {e}");
        }
    } else {
        assert_eq!(out, [0x5A], "{from}->{to}: nothing appended on failure");
    }
}

fn patch_checked(input: &[u8]) {
    let mut copy = input.to_vec();
    if patch_monitor_id(&mut copy, 0xDEAD_BEEF) {
        assert_eq!(copy[8..12], 0xDEAD_BEEFu32.to_be_bytes());
        assert_eq!((&copy[..8], &copy[12..]), (&input[..8], &input[12..]));
    } else {
        assert_eq!(copy, input);
    }
    let _ = patch_agent_session_id(&mut copy, 7);
}

fn run(seed: u64) {
    let seeds = seed_frames();
    assert!(seeds.len() > 200, "{} seed frames", seeds.len());
    let mut rng = Rng::new(seed);
    for i in 0..FRAMES_PER_TEST {
        let input = mutated(&mut rng, &seeds);
        if catch_unwind(AssertUnwindSafe(|| exercise(&input))).is_err() {
            panic!("seed {seed:#x}, frame {i}: {}", hex::encode(&input));
        }
    }
}

#[test]
fn mutated_vector_frames_never_panic_any_decoder() {
    run(0x6765_6431_3838_0001);
}

#[test]
fn more_mutated_vector_frames_never_panic_any_decoder() {
    run(0x6765_6431_3838_0002);
}

/// The seed frames themselves go through the same checks unmutated.
#[test]
fn seed_frames_pass_every_decoder() {
    for frame in seed_frames() {
        exercise(&frame);
    }
}
