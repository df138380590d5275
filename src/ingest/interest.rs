//! The interest table: which shards need which keys, and which shards hold
//! sessions of each service. Shards report a key only when their own count
//! for it goes 0 → 1 (with the request that caused it) or back to 0; session
//! services are counted from the opens and closes ingest sees anyway. Ingest
//! sends an event only to the shards whose mask says they need it.

use crate::ids::Services;
use crate::keys::{AgentKey, CallKey, DeviceKey, InterestKey, KeyMap};
use crate::proto::constants::msg;

/// Shard bit masks (at most 64 shards).
pub type ShardMask = u64;

/// Services whose sessions decide routing without keys.
#[derive(Debug, Default, Clone)]
struct ServiceCounts {
    all_events: Vec<u32>,
    peripheral_monitor: Vec<u32>,
    client_monitor: Vec<u32>,
    any: Vec<u32>,
}

pub struct Interest {
    nr_shards: usize,
    devices: KeyMap<DeviceKey, ShardMask>,
    calls: KeyMap<CallKey, ShardMask>,
    agents: KeyMap<AgentKey, ShardMask>,
    services: ServiceCounts,
}

fn mask_of(counts: &[u32]) -> ShardMask {
    counts
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .fold(0, |m, (i, _)| m | 1 << i)
}

impl Interest {
    pub fn new(nr_shards: usize) -> Interest {
        assert!(nr_shards <= 64, "shard masks are 64 bits");
        let zeros = vec![0; nr_shards];
        Interest {
            nr_shards,
            devices: KeyMap::default(),
            calls: KeyMap::default(),
            agents: KeyMap::default(),
            services: ServiceCounts {
                all_events: zeros.clone(),
                peripheral_monitor: zeros.clone(),
                client_monitor: zeros.clone(),
                any: zeros,
            },
        }
    }

    pub fn all_shards(&self) -> ShardMask {
        if self.nr_shards == 64 {
            u64::MAX
        } else {
            (1u64 << self.nr_shards) - 1
        }
    }

    /// Whether any shard holds keyed interest (a device, call or agent key):
    /// without it no shard reads an event's devices or agents.
    pub fn is_keyed(&self) -> bool {
        !(self.devices.is_empty() && self.calls.is_empty() && self.agents.is_empty())
    }

    /// A shard's count for `key` went 0 → 1.
    pub fn up(&mut self, shard: usize, key: InterestKey) {
        let bit = 1u64 << shard;
        match key {
            InterestKey::Device(k) => *self.devices.entry(k).or_default() |= bit,
            InterestKey::Call(k) => *self.calls.entry(k).or_default() |= bit,
            InterestKey::Agent(k) => *self.agents.entry(k).or_default() |= bit,
        }
    }

    /// A shard's count for `key` went back to 0.
    pub fn down(&mut self, shard: usize, key: InterestKey) {
        fn clear<K: std::hash::Hash + Eq>(map: &mut KeyMap<K, ShardMask>, k: K, bit: u64) {
            if let Some(mask) = map.get_mut(&k) {
                *mask &= !bit;
                if *mask == 0 {
                    map.remove(&k);
                }
            }
        }
        let bit = 1u64 << shard;
        match key {
            InterestKey::Device(k) => clear(&mut self.devices, k, bit),
            InterestKey::Call(k) => clear(&mut self.calls, k, bit),
            InterestKey::Agent(k) => clear(&mut self.agents, k, bit),
        }
    }

    /// Call `from` folded into `to`: whoever watched `from` now watches `to`
    /// (shards re-key their call monitors at the same point of the stream).
    pub fn merge_call(&mut self, from: CallKey, to: CallKey) {
        if let Some(mask) = self.calls.remove(&from) {
            *self.calls.entry(to).or_default() |= mask;
        }
    }

    /// The upstream was lost: call monitors are dropped everywhere.
    pub fn clear_calls(&mut self) {
        self.calls.clear();
    }

    /// A session opened (`delta` 1) or closed (−1) on `shard` with `services`.
    pub fn count_session(&mut self, shard: usize, services: Services, delta: i32) {
        let bump = |counts: &mut Vec<u32>| {
            if let Some(n) = counts.get_mut(shard) {
                *n = n.saturating_add_signed(delta);
            }
        };
        bump(&mut self.services.any);
        if services.contains(Services::ALL_EVENTS) {
            bump(&mut self.services.all_events);
        }
        if services.contains(Services::PERIPHERAL_MONITOR) {
            bump(&mut self.services.peripheral_monitor);
        }
        if services.contains(Services::CLIENT_MONITOR) {
            bump(&mut self.services.client_monitor);
        }
    }

    /// Shards holding Client Monitor sessions.
    pub fn client_monitor_shards(&self) -> ShardMask {
        mask_of(&self.services.client_monitor)
    }

    /// Shards that need an event of `message_type` with these targets.
    pub fn shards_for(&self, message_type: u32, targets: &crate::targets::Targets) -> ShardMask {
        match message_type {
            // Every open session is a Miscellaneous session (docs/requests.md §6).
            msg::SYSTEM_EVENT | msg::USER_MESSAGE_EVENT => return mask_of(&self.services.any),
            msg::CLIENT_SESSION_OPENED_EVENT | msg::CLIENT_SESSION_CLOSED_EVENT => {
                return self.client_monitor_shards()
            }
            msg::CALL_TRANSLATION_ROUTE_EVENT => {
                return mask_of(&self.services.all_events)
                    | mask_of(&self.services.peripheral_monitor)
            }
            _ => {}
        }
        let mut mask = mask_of(&self.services.all_events);
        if mask == self.all_shards() {
            return mask; // All Events sessions on every shard: no key can add one
        }
        for k in &targets.calls {
            mask |= self.calls.get(k).copied().unwrap_or(0);
        }
        for k in &targets.devices {
            mask |= self.devices.get(k).copied().unwrap_or(0);
        }
        for k in &targets.agents {
            mask |= self.agents.get(k).copied().unwrap_or(0);
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::Targets;

    #[test]
    fn events_go_only_to_interested_shards() {
        let mut i = Interest::new(3);
        let d = DeviceKey::device(b"3001");
        i.up(1, InterestKey::Device(d));
        let mut t = Targets::default();
        assert_eq!(i.shards_for(msg::CALL_HELD_EVENT, &t), 0);
        t.devices.push(d);
        assert_eq!(i.shards_for(msg::CALL_HELD_EVENT, &t), 0b010);
        i.count_session(2, Services::ALL_EVENTS, 1);
        assert_eq!(i.shards_for(msg::CALL_HELD_EVENT, &t), 0b110);
        i.down(1, InterestKey::Device(d));
        assert_eq!(i.shards_for(msg::CALL_HELD_EVENT, &t), 0b100);
        assert_eq!(i.shards_for(msg::SYSTEM_EVENT, &Targets::default()), 0b100);
    }

    #[test]
    fn all_events_everywhere_needs_no_keys() {
        let mut i = Interest::new(2);
        assert!(!i.is_keyed());
        i.count_session(0, Services::ALL_EVENTS, 1);
        let d = DeviceKey::device(b"3001");
        i.up(1, InterestKey::Device(d));
        assert!(i.is_keyed());
        let mut t = Targets::default();
        t.devices.push(d);
        assert_eq!(i.shards_for(msg::CALL_HELD_EVENT, &t), 0b11);
        i.count_session(1, Services::ALL_EVENTS, 1);
        assert_eq!(
            i.shards_for(msg::CALL_HELD_EVENT, &Targets::default()),
            0b11
        );
        i.down(1, InterestKey::Device(d));
        assert!(!i.is_keyed());
    }

    #[test]
    fn keys_whose_table_hashes_collide_reach_only_their_own_shards() {
        let mut i = Interest::new(2);
        let d = DeviceKey::device(b"3001");
        let other = DeviceKey::device(b"3002").colliding_with(d);
        i.up(0, InterestKey::Device(d));
        i.up(1, InterestKey::Device(other));
        let mut t = Targets::default();
        t.devices.push(other);
        assert_eq!(i.shards_for(msg::CALL_HELD_EVENT, &t), 0b10);
        i.down(1, InterestKey::Device(other));
        assert_eq!(i.shards_for(msg::CALL_HELD_EVENT, &t), 0);
        t.devices[0] = d;
        assert_eq!(i.shards_for(msg::CALL_HELD_EVENT, &t), 0b01);
    }

    #[test]
    fn merged_calls_keep_their_watchers() {
        let mut i = Interest::new(2);
        let (a, b) = (CallKey::new(1, 0, b"x"), CallKey::new(2, 0, b"y"));
        i.up(0, InterestKey::Call(a));
        i.merge_call(a, b);
        let mut t = Targets::default();
        t.calls.push(b);
        assert_eq!(i.shards_for(msg::CALL_HELD_EVENT, &t), 0b01);
    }
}
