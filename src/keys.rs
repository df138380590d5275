//! Routing keys: a device (extension, instrument, trunk, trunk group), a
//! call (ConnectionCallID + type + ConnectionDeviceID) and an agent field
//! (AgentID / AgentExtension / AgentInstrument). Ingest computes them once
//! per event; shards and the interest table index by them.
//!
//! A key is 128 bits, computed in one call from a *tag* (the key's kind;
//! for a call, also its call id and device id type) and the id's bytes:
//! `hash`, rustc-hash's `FxHasher` seeded with the tag over the bytes,
//! which alone places keys in hash tables ([`KeyMap`]), and `check`, which
//! tells apart what `hash` cannot. Keys are equal only when both halves
//! are, and every lookup that decides where an event goes compares whole
//! keys with `==` (ingest's interest table, call tracker and agent table;
//! a shard's monitor index and its call brackets): ids whose `hash`es
//! collide are still told apart, and neither's monitors, calls or shards
//! get the other's events. What holds, exactly:
//!
//! * Two different ids of at most 8 bytes never share a key, whatever
//!   their tags (extensions, instruments, agent ids, trunk numbers: almost
//!   every id). There `check` is the bytes themselves (zero-padded, with
//!   the length in the top byte below 8 bytes), and for given bytes `hash`
//!   is a bijection of the tag. One exception: an 8-byte id ending in a
//!   byte below 8 (a control character; ids are text) can share `check`
//!   with one shorter id, and then a key if their `hash`es collide too.
//! * A longer id shares a key with another id only if both halves collide
//!   at once: its `check` is a multiply-rotate hash of tag, length and
//!   words, unrelated to rustc-hash's. For ids that behave like random
//!   inputs the odds are about n²/2^129 among n live keys (below 10^-28 at
//!   10^5). Neither hash is keyed or cryptographic: long ids chosen to
//!   collide can be found.
//!
//! The ids themselves are not kept: the key is all that is compared.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use rustc_hash::FxHasher;

/// The three key types: `hash` and `check` (module doc); `Hash` feeds the
/// tables `hash` only, `Eq` compares both.
macro_rules! key_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub struct $name {
            hash: u64,
            check: u64,
        }

        impl Hash for $name {
            fn hash<H: Hasher>(&self, state: &mut H) {
                state.write_u64(self.hash);
            }
        }

        impl $name {
            #[inline]
            fn of(tag: u64, bytes: &[u8]) -> $name {
                let (hash, check) = key_of(tag, bytes);
                $name { hash, check }
            }

            /// This key with `other`'s table hash: a collision, for tests.
            /// The two must differ in `check` (ids of other bytes), or the
            /// result would be `other` itself.
            #[cfg(test)]
            pub(crate) fn colliding_with(self, other: $name) -> $name {
                assert_ne!(self.check, other.check, "ids that differ in bytes");
                $name {
                    hash: other.hash,
                    ..self
                }
            }
        }
    };
}

key_type!(
    /// A device id as a device monitor names it.
    DeviceKey
);
key_type!(
    /// A call identity.
    CallKey
);
key_type!(
    /// One agent-identifying field (for Client Events sessions).
    AgentKey
);

/// What kind of device a device key names (MonitoredDeviceType, docs/protocol.md §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// Extension, instrument, agent device, queue, …: matched as a string.
    Device,
    /// DEVID_TRUNK_IDENTIFIER (70): TrunkNumber written in decimal.
    Trunk,
    /// DEVID_TRUNK_GROUP_IDENTIFIER (71): TrunkGroupNumber written in decimal.
    TrunkGroup,
}

/// Which OPEN_REQ field names a Client Events session's agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentField {
    Id,
    Extension,
    Instrument,
}

/// A key's two halves (module doc).
#[inline(always)]
fn key_of(tag: u64, bytes: &[u8]) -> (u64, u64) {
    // rustc-hash 2's `FxHasher`: `write` folds the bytes (and their length)
    // into one word x, the state becomes (seed + x)·K (K odd) and `finish`
    // rotates it: for given bytes, a bijection of the seed (the tag).
    let mut hasher = FxHasher::with_seed(tag as usize);
    hasher.write(bytes);
    let n = bytes.len();
    let check = if n < 8 {
        packed(bytes) | (n as u64) << 56
    } else if n == 8 {
        u64_at(bytes)
    } else {
        words_hash(tag ^ (n as u64).rotate_right(8), bytes)
    };
    (hasher.finish(), check)
}

/// Up to 7 bytes exactly, as a little-endian word (zeros above them, the
/// top byte free for the length). Words are read whole — a tail as the last
/// 4 (or 1) bytes, overlapping the ones before, OR-ed in place — never
/// copied byte by byte into a buffer (that store-then-load stalled the
/// tracker's hot path).
#[inline(always)]
fn packed(bytes: &[u8]) -> u64 {
    let n = bytes.len();
    if n >= 4 {
        let (lo, hi) = (u32_at(bytes) as u64, u32_at(&bytes[n - 4..]) as u64);
        lo | hi << (8 * (n - 4))
    } else if n > 0 {
        bytes[0] as u64
            | (bytes[n / 2] as u64) << (8 * (n / 2))
            | (bytes[n - 1] as u64) << (8 * (n - 1))
    } else {
        0
    }
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[inline(always)]
fn mix(h: u64, word: u64) -> u64 {
    (h.rotate_left(5) ^ word).wrapping_mul(SEED)
}

/// `check` of an id longer than 8 bytes: a multiply-rotate hash of `head`
/// (tag and length) and the id's words, the last one read overlapping the
/// one before. Unrelated to rustc-hash's (whose `write` compresses the bytes
/// through one unseeded function, so no second `FxHasher` could stand in:
/// its seeds all collide on the same pairs). Only compared, never used to
/// place keys, so it needs no finaliser.
fn words_hash(head: u64, bytes: &[u8]) -> u64 {
    let n = bytes.len();
    let mut h = mix(0, head);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        h = mix(h, u64_at(word));
    }
    if !words.remainder().is_empty() {
        h = mix(h, u64_at(&bytes[n - 8..]));
    }
    h
}

/// The little-endian u64 of the first 8 bytes (callers pass at least 8).
#[inline(always)]
fn u64_at(bytes: &[u8]) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

/// The little-endian u32 of the first 4 bytes (callers pass at least 4).
#[inline(always)]
fn u32_at(bytes: &[u8]) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(word)
}

impl DeviceKey {
    pub fn new(kind: DeviceKind, id: &[u8]) -> DeviceKey {
        let tag = match kind {
            DeviceKind::Device => 1,
            DeviceKind::Trunk => 2,
            DeviceKind::TrunkGroup => 3,
        };
        DeviceKey::of(tag, id)
    }

    pub fn device(id: &[u8]) -> DeviceKey {
        Self::new(DeviceKind::Device, id)
    }

    /// A trunk or trunk group number, matched in its decimal form.
    pub fn number(kind: DeviceKind, number: u32) -> DeviceKey {
        let mut buf = [0u8; 10];
        let text = decimal(number, &mut buf);
        Self::new(kind, text)
    }
}

/// `n` in decimal, written into `buf` without allocating.
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

impl CallKey {
    pub fn new(call_id: u32, device_id_type: u16, device_id: &[u8]) -> CallKey {
        let tag = 4 | (call_id as u64) << 8 | (device_id_type as u64) << 40;
        CallKey::of(tag, device_id)
    }
}

impl AgentKey {
    pub fn new(field: AgentField, value: &[u8]) -> AgentKey {
        let tag = match field {
            AgentField::Id => 5,
            AgentField::Extension => 6,
            AgentField::Instrument => 7,
        };
        AgentKey::of(tag, value)
    }
}

/// A `Hasher` for keys that carry their hash: it passes the u64 through.
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A hash map over keys, placed by their table hash (not hashed again).
pub type KeyMap<K, V> = HashMap<K, V, BuildHasherDefault<PassThrough>>;

/// A [`KeyMap`] that grows a few entries per insert (griddle's incremental
/// resize) instead of moving every entry at once when it doubles: for the
/// tables on the event path whose size is the PG's (live calls, agents).
/// A hashbrown table of 12,000 calls moves ~4 MB in one insert, and the
/// events behind that insert wait for it (perf/results/huge-pages-2026-12-07.md).
pub type GrowingKeyMap<K, V> = griddle::HashMap<K, V, BuildHasherDefault<PassThrough>>;

/// One key a shard can be interested in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InterestKey {
    Device(DeviceKey),
    Call(CallKey),
    Agent(AgentKey),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_do_not_collide_on_the_same_text() {
        assert_ne!(
            DeviceKey::device(b"1234"),
            DeviceKey::number(DeviceKind::Trunk, 1234)
        );
        assert_eq!(
            DeviceKey::number(DeviceKind::Trunk, 1234),
            DeviceKey::new(DeviceKind::Trunk, b"1234")
        );
        assert_ne!(
            AgentKey::new(AgentField::Id, b"1001"),
            AgentKey::new(AgentField::Extension, b"1001")
        );
    }

    #[test]
    fn call_keys_use_all_three_parts() {
        let a = CallKey::new(7, 0, b"5000");
        assert_ne!(a, CallKey::new(8, 0, b"5000"));
        assert_ne!(a, CallKey::new(7, 1, b"5000"));
        assert_ne!(a, CallKey::new(7, 0, b"5001"));
        assert_eq!(a, CallKey::new(7, 0, b"5000"));
    }

    /// Whether two keys differ in both halves.
    fn apart(a: DeviceKey, b: DeviceKey) -> bool {
        a.hash != b.hash && a.check != b.check
    }

    #[test]
    fn every_byte_and_the_length_count() {
        // Every length up to three words, so each tail path (1–3, 4–7, 8,
        // overlapping last word) is covered: changing any one byte changes
        // both halves; appending a NUL changes the key (from 8 bytes to 9
        // only `hash` and the length tell it, the bytes being zero-padded).
        let text: Vec<u8> = (b'0'..=b'9').cycle().take(24).collect();
        for n in 0..=text.len() {
            let id = &text[..n];
            let key = DeviceKey::device(id);
            for i in 0..n {
                let mut other = id.to_vec();
                other[i] ^= 0x40;
                assert!(apart(key, DeviceKey::device(&other)), "len {n}, byte {i}");
            }
            let mut longer = id.to_vec();
            longer.push(0);
            let longer = DeviceKey::device(&longer);
            assert_ne!(key.hash, longer.hash, "len {n} + NUL");
            assert_ne!(key, longer, "len {n} + NUL");
        }
    }

    #[test]
    fn up_to_8_bytes_check_is_the_bytes() {
        let text = *b"9a8b7c6d";
        for n in 0..=8 {
            let mut padded = [0u8; 8];
            padded[..n].copy_from_slice(&text[..n]);
            let bytes = u64::from_le_bytes(padded);
            let length = if n < 8 { (n as u64) << 56 } else { 0 };
            assert_eq!(
                DeviceKey::device(&text[..n]).check,
                bytes | length,
                "len {n}"
            );
        }
    }

    #[test]
    fn short_ids_never_share_a_key() {
        // Every id of up to 3 bytes over an alphabet with NUL, control bytes
        // and the top byte, under three tags, and ids of 7 and 8 bytes that
        // differ only in a trailing byte: all apart.
        let alphabet = [0u8, 1, 7, 8, 15, b'0', b'9', 0xff];
        let mut ids: Vec<Vec<u8>> = vec![vec![]];
        for len in 1..=3 {
            let mut id = vec![0u8; len];
            for mut i in 0..alphabet.len().pow(len as u32) {
                for b in id.iter_mut() {
                    *b = alphabet[i % alphabet.len()];
                    i /= alphabet.len();
                }
                ids.push(id.clone());
            }
        }
        for last in [None, Some(0u8), Some(7), Some(8), Some(b'4')] {
            let mut id = b"3000123".to_vec();
            id.extend(last);
            ids.push(id);
        }
        let mut seen = std::collections::HashSet::new();
        for kind in [
            DeviceKind::Device,
            DeviceKind::Trunk,
            DeviceKind::TrunkGroup,
        ] {
            for id in &ids {
                assert!(seen.insert(DeviceKey::new(kind, id)), "{kind:?} {id:?}");
            }
        }
        assert_eq!(seen.len(), 3 * ids.len());
        // The one exception (module doc): an 8-byte id ending in byte 7
        // shares `check` with its first 7 bytes; `hash` still differs.
        let (short, long) = (
            DeviceKey::device(b"3000123"),
            DeviceKey::device(b"3000123\x07"),
        );
        assert_eq!(short.check, long.check);
        assert_ne!(short.hash, long.hash);
    }

    #[test]
    fn the_same_bytes_under_other_tags_never_share_a_table_hash() {
        // For given bytes `hash` is a bijection of the tag (rustc-hash's
        // `FxHasher` adds its seed and multiplies by an odd constant, as the
        // module doc relies on): every call of one device id, and every kind
        // of one text, has its own.
        for id in [&b"5000"[..], b"SEP001122334455"] {
            let mut seen = std::collections::HashSet::new();
            for call_id in 0..50_000 {
                for device_id_type in [0, 1] {
                    let key = CallKey::new(call_id, device_id_type, id);
                    assert!(seen.insert(key.hash), "call {call_id}/{device_id_type}");
                }
            }
            let hashes = [
                DeviceKey::new(DeviceKind::Device, id).hash,
                DeviceKey::new(DeviceKind::Trunk, id).hash,
                DeviceKey::new(DeviceKind::TrunkGroup, id).hash,
                AgentKey::new(AgentField::Id, id).hash,
                AgentKey::new(AgentField::Extension, id).hash,
                AgentKey::new(AgentField::Instrument, id).hash,
            ];
            for (i, a) in hashes.iter().enumerate() {
                assert!(!hashes[i + 1..].contains(a), "tag {i}");
            }
        }
    }

    #[test]
    fn keys_are_equal_only_when_both_hashes_are() {
        use std::hash::BuildHasher;
        let a = DeviceKey::device(b"3001");
        let b = DeviceKey::device(b"3002").colliding_with(a);
        let tables = BuildHasherDefault::<PassThrough>::default();
        assert_eq!(tables.hash_one(a), tables.hash_one(b), "same table hash");
        assert_ne!(a, b);
        let mut map = KeyMap::default();
        map.insert(a, "a");
        assert_eq!(map.get(&b), None, "a lookup compares the check too");
        map.insert(b, "b");
        assert_eq!((map[&a], map[&b], map.len()), ("a", "b", 2));
    }

    #[test]
    fn decimal_writes_numbers() {
        let mut buf = [0; 10];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(4_294_967_295, &mut buf), b"4294967295");
    }
}
