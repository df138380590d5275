//! Routing keys as fixed-size hashes: a device (extension, instrument, trunk,
//! trunk group), a call (ConnectionCallID + type + ConnectionDeviceID) and an
//! agent field (AgentID / AgentExtension / AgentInstrument). Ingest computes
//! them once per event; shards and the interest table index by them. A 64-bit
//! hash stands for the key: with ~10^5 live keys a collision has odds of
//! ~10^-9, and its only effect is an extra candidate that the shard's masks
//! and exact checks still filter.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hash of a device id as a device monitor names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceKey(pub u64);
/// Hash of a call identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey(pub u64);
/// Hash of one agent-identifying field (for Client Events sessions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentKey(pub u64);

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

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

fn mix(h: u64, word: u64) -> u64 {
    (h.rotate_left(5) ^ word).wrapping_mul(SEED)
}

/// A fast, deterministic hash of a tag and some bytes (FxHash-style). Words
/// are read whole: a tail is read as the last 8 (or 4 + 4) bytes, overlapping
/// the word before, never copied byte by byte into a buffer (that store-then-
/// load stalled the tracker's hot path). The length is mixed in, so the
/// overlap cannot make two lengths agree.
fn hash_bytes(tag: u64, bytes: &[u8]) -> u64 {
    let mut h = mix(0, tag);
    let n = bytes.len();
    if n >= 8 {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            h = mix(h, u64_at(word));
        }
        if !words.remainder().is_empty() {
            h = mix(h, u64_at(&bytes[n - 8..]));
        }
    } else if n >= 4 {
        let (lo, hi) = (u32_at(bytes), u32_at(&bytes[n - 4..]));
        h = mix(h, (hi as u64) << 32 | lo as u64);
    } else if n > 0 {
        h = mix(
            h,
            bytes[0] as u64 | (bytes[n / 2] as u64) << 8 | (bytes[n - 1] as u64) << 16,
        );
    }
    // Finalise (murmur3 fmix64) so low bits spread well in hash tables.
    h = mix(h, n as u64);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
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
        DeviceKey(hash_bytes(tag, id))
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
        CallKey(hash_bytes(tag, device_id))
    }
}

impl AgentKey {
    pub fn new(field: AgentField, value: &[u8]) -> AgentKey {
        let tag = match field {
            AgentField::Id => 5,
            AgentField::Extension => 6,
            AgentField::Instrument => 7,
        };
        AgentKey(hash_bytes(tag, value))
    }
}

/// A `Hasher` for keys that already are hashes: it passes the u64 through.
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

/// A hash map over key hashes (no rehashing of the hash).
pub type KeyMap<K, V> = HashMap<K, V, BuildHasherDefault<PassThrough>>;

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

    #[test]
    fn every_byte_and_the_length_count() {
        // Every length up to three words, so each tail path (1–3, 4–7,
        // overlapping last word) is covered; changing any one byte, or
        // appending a zero, changes the key.
        let text: Vec<u8> = (b'0'..=b'9').cycle().take(24).collect();
        for n in 0..=text.len() {
            let id = &text[..n];
            let key = DeviceKey::device(id);
            for i in 0..n {
                let mut other = id.to_vec();
                other[i] ^= 0x40;
                assert_ne!(key, DeviceKey::device(&other), "len {n}, byte {i}");
            }
            let mut longer = id.to_vec();
            longer.push(0);
            assert_ne!(key, DeviceKey::device(&longer), "len {n} + NUL");
        }
    }

    #[test]
    fn decimal_writes_numbers() {
        let mut buf = [0; 10];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(4_294_967_295, &mut buf), b"4294967295");
    }
}
