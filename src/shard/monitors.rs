//! A shard's monitor index, owned by its shard, no locks: Peripheral Monitor
//! device and call monitors and Client Events registrations, indexed
//! `by_device`, `by_call` and `by_agent`, plus the per-key counts behind the
//! shard's interest (a key is reported to ingest only when its count goes
//! 0 → 1 or back to 0). No I/O here.

use std::collections::HashMap;

use smallvec::SmallVec;

use crate::ingest::InterestKey;
use crate::keys::{AgentKey, CallKey, DeviceKey, KeyMap, Targets};

/// What a monitor watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    /// A device monitor (Peripheral Monitor).
    Device(DeviceKey),
    /// A call monitor (Peripheral Monitor); ends after its call ends.
    Call(CallKey),
    /// A Client Events session's agent: its agent key, and its instrument
    /// when the session named one.
    Agent {
        agent: AgentKey,
        instrument: Option<DeviceKey>,
    },
}

impl Watch {
    /// The interest keys this watch holds.
    pub fn keys(&self) -> SmallVec<[InterestKey; 2]> {
        match *self {
            Watch::Device(d) => smallvec::smallvec![InterestKey::Device(d)],
            Watch::Call(c) => smallvec::smallvec![InterestKey::Call(c)],
            Watch::Agent { agent, instrument } => {
                let mut keys = smallvec::smallvec![InterestKey::Agent(agent)];
                keys.extend(instrument.map(InterestKey::Device));
                keys
            }
        }
    }
}

/// One monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitor {
    pub id: u32,
    /// The session (connection id) that owns it.
    pub session: u32,
    pub watch: Watch,
    pub call_mask: u32,
    pub agent_mask: u32,
    /// A Client Events monitor: AGENT_STATE_EVENT copies carry the session id.
    pub client_events: bool,
}

#[derive(Default)]
pub struct MonitorIndex {
    monitors: HashMap<u32, Monitor>,
    by_device: KeyMap<DeviceKey, SmallVec<[u32; 2]>>,
    by_call: KeyMap<CallKey, SmallVec<[u32; 2]>>,
    by_agent: KeyMap<AgentKey, SmallVec<[u32; 2]>>,
    /// Monitors (active or awaiting ingest's answer) per interest key.
    counts: HashMap<InterestKey, u32>,
}

fn unlink<K: std::hash::Hash + Eq>(map: &mut KeyMap<K, SmallVec<[u32; 2]>>, key: K, id: u32) {
    if let Some(ids) = map.get_mut(&key) {
        ids.retain(|m| *m != id);
        if ids.is_empty() {
            map.remove(&key);
        }
    }
}

impl MonitorIndex {
    pub fn len(&self) -> usize {
        self.monitors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.monitors.is_empty()
    }

    pub fn get(&self, id: u32) -> Option<&Monitor> {
        self.monitors.get(&id)
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut Monitor> {
        self.monitors.get_mut(&id)
    }

    /// Count a key up; true when it went 0 → 1 (tell ingest).
    pub fn count_up(&mut self, key: InterestKey) -> bool {
        let n = self.counts.entry(key).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// Count a key down; true when it went back to 0 (tell ingest).
    pub fn count_down(&mut self, key: InterestKey) -> bool {
        match self.counts.get_mut(&key) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.counts.remove(&key);
                true
            }
            None => false,
        }
    }

    /// Make a monitor active (its keys were counted when it was requested).
    pub fn insert(&mut self, monitor: Monitor) {
        let id = monitor.id;
        match monitor.watch {
            Watch::Device(d) => self.by_device.entry(d).or_default().push(id),
            Watch::Call(c) => self.by_call.entry(c).or_default().push(id),
            Watch::Agent { agent, instrument } => {
                self.by_agent.entry(agent).or_default().push(id);
                if let Some(d) = instrument {
                    self.by_device.entry(d).or_default().push(id);
                }
            }
        }
        self.monitors.insert(id, monitor);
    }

    /// Remove a monitor; returns it and the keys whose count went back to 0.
    pub fn remove(&mut self, id: u32) -> Option<(Monitor, SmallVec<[InterestKey; 2]>)> {
        let monitor = self.monitors.remove(&id)?;
        match monitor.watch {
            Watch::Device(d) => unlink(&mut self.by_device, d, id),
            Watch::Call(c) => unlink(&mut self.by_call, c, id),
            Watch::Agent { agent, instrument } => {
                unlink(&mut self.by_agent, agent, id);
                if let Some(d) = instrument {
                    unlink(&mut self.by_device, d, id);
                }
            }
        }
        let gone = monitor
            .watch
            .keys()
            .into_iter()
            .filter(|k| self.count_down(*k))
            .collect();
        Some((monitor, gone))
    }

    /// Ids of the monitors an event with `targets` reaches, ascending, once each.
    pub fn matches(&self, targets: &Targets, out: &mut SmallVec<[u32; 8]>) {
        out.clear();
        for k in &targets.calls {
            if let Some(ids) = self.by_call.get(k) {
                out.extend_from_slice(ids);
            }
        }
        for k in &targets.devices {
            if let Some(ids) = self.by_device.get(k) {
                out.extend_from_slice(ids);
            }
        }
        for k in &targets.agents {
            if let Some(ids) = self.by_agent.get(k) {
                out.extend_from_slice(ids);
            }
        }
        if out.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
    }

    /// Call `from` folded into `to`: its call monitors now watch `to`
    /// (ingest applied the same change to its interest table).
    pub fn merge_call(&mut self, from: CallKey, to: CallKey) {
        let Some(ids) = self.by_call.remove(&from) else {
            return;
        };
        for &id in &ids {
            if let Some(m) = self.monitors.get_mut(&id) {
                m.watch = Watch::Call(to);
            }
        }
        self.by_call.entry(to).or_default().extend(ids);
        if let Some(n) = self.counts.remove(&InterestKey::Call(from)) {
            *self.counts.entry(InterestKey::Call(to)).or_insert(0) += n;
        }
    }

    /// Call monitors of a call that just ended: removed, with the keys whose
    /// count went back to 0.
    pub fn end_call(&mut self, call: CallKey) -> Vec<(Monitor, SmallVec<[InterestKey; 2]>)> {
        let ids = self.by_call.get(&call).cloned().unwrap_or_default();
        ids.into_iter().filter_map(|id| self.remove(id)).collect()
    }

    /// The upstream was lost: every call monitor is dropped; ingest cleared
    /// its call interest at the same point, so no key goes back to it.
    pub fn drop_call_monitors(&mut self) -> Vec<Monitor> {
        let ids: Vec<u32> = self.by_call.values().flatten().copied().collect();
        self.by_call.clear();
        self.counts
            .retain(|k, _| !matches!(k, InterestKey::Call(_)));
        ids.into_iter()
            .filter_map(|id| self.monitors.remove(&id))
            .collect()
    }

    /// Every monitor a session owns.
    pub fn of_session(&self, session: u32) -> Vec<u32> {
        self.monitors
            .values()
            .filter(|m| m.session == session)
            .map(|m| m.id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device_monitor(id: u32, device: &[u8]) -> Monitor {
        Monitor {
            id,
            session: 1,
            watch: Watch::Device(DeviceKey::device(device)),
            call_mask: u32::MAX,
            agent_mask: u32::MAX,
            client_events: false,
        }
    }

    #[test]
    fn matches_are_ascending_and_once_per_monitor() {
        let mut index = MonitorIndex::default();
        for m in [
            device_monitor(9, b"3001"),
            device_monitor(4, b"3001"),
            device_monitor(5, b"3002"),
        ] {
            for k in m.watch.keys() {
                index.count_up(k);
            }
            index.insert(m);
        }
        let mut targets = Targets::default();
        targets.devices.push(DeviceKey::device(b"3001"));
        targets.devices.push(DeviceKey::device(b"3001"));
        let mut out = SmallVec::new();
        index.matches(&targets, &mut out);
        assert_eq!(out.as_slice(), &[4, 9]);
    }

    #[test]
    fn keys_report_only_first_and_last() {
        let mut index = MonitorIndex::default();
        let key = InterestKey::Device(DeviceKey::device(b"x"));
        assert!(index.count_up(key));
        assert!(!index.count_up(key));
        index.insert(device_monitor(1, b"x"));
        index.insert(device_monitor(2, b"x"));
        assert!(index.remove(1).unwrap().1.is_empty());
        assert_eq!(index.remove(2).unwrap().1.as_slice(), &[key]);
    }

    #[test]
    fn call_monitors_follow_merges_and_end_with_their_call() {
        let mut index = MonitorIndex::default();
        let (a, b) = (CallKey::new(1, 0, b"x"), CallKey::new(2, 0, b"y"));
        index.count_up(InterestKey::Call(a));
        index.insert(Monitor {
            watch: Watch::Call(a),
            ..device_monitor(3, b"")
        });
        index.merge_call(a, b);
        let ended = index.end_call(b);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].1.as_slice(), &[InterestKey::Call(b)]);
        assert!(index.is_empty());
    }
}
