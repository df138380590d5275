//! The agent-state table on the ingest core: for every agent the upstream
//! has reported, its latest AGENT_STATE_EVENT (kept whole, so every field it
//! carries can be answered from it later), found by its AgentID, extension
//! or instrument. It tells OPEN_CONF an agent's current state and fields
//! (an [`AgentView`]) and the call-party tracker which agent a device
//! belongs to. Bounded by the number of agents the PG reports. No I/O here.

use crate::keys::{AgentField, AgentKey, DeviceKey, KeyMap};
use crate::proto::constants::{agent_state, msg};
use crate::proto::msg::AgentStateEvent;
use crate::proto::routing::{RoutingKeys, Span};
use crate::proto::{frame, DecodeOptions, MessageBody, Version};
use crate::status::AgentView;

/// One agent as last reported.
struct AgentRecord {
    /// Its latest AGENT_STATE_EVENT frame, at `version`.
    frame: Vec<u8>,
    version: Version,
    /// AgentKeys of its id, extension and instrument (as last reported).
    keys: [Option<AgentKey>; 3],
    /// Its extension and instrument as devices.
    devices: [Option<DeviceKey>; 2],
    /// Its AgentState as last reported.
    state: u16,
    /// Reported before the last upstream loss, not since.
    stale: bool,
}

impl AgentRecord {
    /// Keep `frame` (with AgentState `state`) as the agent's latest report
    /// (its buffer reused).
    fn store(&mut self, frame: &[u8], version: Version, state: u16) {
        self.frame.clear();
        self.frame.extend_from_slice(frame);
        self.version = version;
        self.state = state;
        self.stale = false;
    }

    fn is_named(&self, keys: &[Option<AgentKey>; 3], devices: &[Option<DeviceKey>; 2]) -> bool {
        self.keys == *keys && self.devices == *devices
    }
}

/// Every agent reported so far.
#[derive(Default)]
pub struct AgentTable {
    records: Vec<AgentRecord>,
    by_key: KeyMap<AgentKey, u32>,
    by_device: KeyMap<DeviceKey, u32>,
}

/// AgentKeys of the agent fields an event carries: id, extension, instrument.
pub fn agent_field_keys(frame: &[u8], keys: &RoutingKeys) -> [Option<AgentKey>; 3] {
    let key = |field, span: Option<Span>| {
        span.map(|s| s.of(frame))
            .filter(|v| !v.is_empty())
            .map(|v| AgentKey::new(field, v))
    };
    [
        key(AgentField::Id, keys.agent_id),
        key(AgentField::Extension, keys.agent_extension),
        key(AgentField::Instrument, keys.agent_instrument),
    ]
}

fn device_keys(frame: &[u8], keys: &RoutingKeys) -> [Option<DeviceKey>; 2] {
    [keys.agent_extension, keys.agent_instrument].map(|span| {
        span.map(|s| s.of(frame))
            .filter(|v| !v.is_empty())
            .map(DeviceKey::device)
    })
}

impl AgentTable {
    pub fn nr_agents(&self) -> usize {
        self.records.len()
    }

    /// Learn from an event (only AGENT_STATE_EVENTs teach anything).
    pub fn observe(&mut self, frame: &[u8], keys: &RoutingKeys, version: Version) {
        if keys.message_type != msg::AGENT_STATE_EVENT {
            return;
        }
        let agent_keys = agent_field_keys(frame, keys);
        if agent_keys.iter().all(Option::is_none) {
            return;
        }
        let devices = device_keys(frame, keys);
        let state = keys.agent_state.unwrap_or(agent_state::UNKNOWN);
        // The AgentID names the agent; an event without one is matched by
        // its instrument or extension.
        let slot = agent_keys
            .iter()
            .flatten()
            .find_map(|k| self.by_key.get(k).copied());
        let slot = match slot {
            // The usual case: the same agent on the same devices, only its
            // state changed — no re-indexing.
            Some(slot) if self.records[slot as usize].is_named(&agent_keys, &devices) => {
                self.records[slot as usize].store(frame, version, state);
                return;
            }
            Some(slot) => {
                self.forget_stale(slot, &agent_keys, &devices);
                slot
            }
            None => {
                self.records.push(AgentRecord {
                    frame: Vec::new(),
                    version,
                    keys: [None; 3],
                    devices: [None; 2],
                    state,
                    stale: false,
                });
                (self.records.len() - 1) as u32
            }
        };
        let record = &mut self.records[slot as usize];
        record.store(frame, version, state);
        record.keys = agent_keys;
        record.devices = devices;
        for k in agent_keys.into_iter().flatten() {
            self.by_key.insert(k, slot);
        }
        for d in devices.into_iter().flatten() {
            self.by_device.insert(d, slot);
        }
    }

    /// Drop the index entries of keys the agent at `slot` no longer has
    /// (an agent that moved to another instrument no longer owns the old one).
    fn forget_stale(
        &mut self,
        slot: u32,
        keys: &[Option<AgentKey>; 3],
        devices: &[Option<DeviceKey>; 2],
    ) {
        let record = &self.records[slot as usize];
        for old in record
            .keys
            .iter()
            .flatten()
            .filter(|k| !keys.contains(&Some(**k)))
        {
            if self.by_key.get(old) == Some(&slot) {
                self.by_key.remove(old);
            }
        }
        for old in record
            .devices
            .iter()
            .flatten()
            .filter(|d| !devices.contains(&Some(**d)))
        {
            if self.by_device.get(old) == Some(&slot) {
                self.by_device.remove(old);
            }
        }
    }

    /// The agent keys of the agent whose extension or instrument `device` is.
    pub fn keys_of_device(&self, device: &DeviceKey) -> Option<&[Option<AgentKey>; 3]> {
        let slot = *self.by_device.get(device)?;
        Some(&self.records[slot as usize].keys)
    }

    /// The AgentState of the agent whose extension or instrument `device`
    /// is, if reported since the last upstream loss.
    pub fn current_state_of_device(&self, device: &DeviceKey) -> Option<u16> {
        let record = &self.records[*self.by_device.get(device)? as usize];
        (!record.stale).then_some(record.state)
    }

    /// The upstream was lost: what the agents reported may no longer hold
    /// (until each reports again).
    pub fn mark_stale(&mut self) {
        for record in &mut self.records {
            record.stale = true;
        }
    }

    /// What OPEN_CONF says about the agent named by `key`, if it was reported.
    pub fn view(&self, key: AgentKey) -> Option<AgentView> {
        let slot = *self.by_key.get(&key)?;
        let record = &self.records[slot as usize];
        let (f, _) = frame::parse(&record.frame).ok()?;
        let event =
            AgentStateEvent::decode_body(f.body, record.version, DecodeOptions::COUNTS_UNCHECKED)
                .ok()?;
        Some(AgentView {
            agent_state: event.agent_state,
            department_id: event.department_id,
            agent_id: event.agent_id,
            agent_extension: event.agent_extension,
            agent_instrument: event.agent_instrument,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{routing, Message};

    fn report(table: &mut AgentTable, id: &str, ext: &str, state: u16) {
        let frame = Message::from(AgentStateEvent {
            agent_state: state,
            department_id: 12,
            agent_id: Some(id.into()),
            agent_extension: Some(ext.into()),
            agent_instrument: Some(ext.into()),
            ..Default::default()
        })
        .to_frame(Version::MAX)
        .unwrap();
        let keys = routing::extract(&frame, Version::MAX).unwrap();
        table.observe(&frame, &keys, Version::MAX);
    }

    fn id(s: &str) -> AgentKey {
        AgentKey::new(AgentField::Id, s.as_bytes())
    }

    #[test]
    fn the_latest_state_is_found_by_any_field() {
        let mut table = AgentTable::default();
        report(&mut table, "1001", "3001", 2);
        report(&mut table, "1001", "3001", 4);
        let view = table
            .view(AgentKey::new(AgentField::Instrument, b"3001"))
            .unwrap();
        assert_eq!(view.agent_state, 4);
        assert_eq!(view.department_id, 12);
        assert_eq!(view.agent_id, Some("1001".into()));
        assert_eq!(table.view(id("1001")), Some(view));
        assert_eq!(table.nr_agents(), 1);
        assert!(table.view(id("1002")).is_none());
    }

    #[test]
    fn an_instrument_taken_over_belongs_to_its_new_agent() {
        let mut table = AgentTable::default();
        report(&mut table, "1001", "3001", 3);
        report(&mut table, "1001", "3002", 3);
        report(&mut table, "1002", "3001", 2);
        let dev = DeviceKey::device(b"3001");
        assert_eq!(table.keys_of_device(&dev).unwrap()[0], Some(id("1002")));
        let view = table
            .view(AgentKey::new(AgentField::Extension, b"3002"))
            .unwrap();
        assert_eq!(view.agent_id, Some("1001".into()));
        assert_eq!(table.view(id("1001")).unwrap().agent_state, 3);
        assert_eq!(table.nr_agents(), 2);
    }
}
