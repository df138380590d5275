//! The agent-state table on the ingest core: for every agent the upstream
//! has reported, its latest AGENT_STATE_EVENT (kept whole, so every field it
//! carries can be answered from it later), found by its AgentID, extension,
//! instrument or ICMAgentID. It tells OPEN_CONF an agent's current state and
//! fields (an [`AgentView`]), answers QUERY_AGENT_STATE_REQ while the entry
//! is current (docs/requests.md §6), and tells the call-party tracker which
//! agent a device belongs to. Bounded by the number of agents the PG
//! reports. No I/O here.
//!
//! **Current** means reported during this upstream session: when the
//! upstream is lost ([`AgentTable::mark_stale`]) every entry goes stale
//! (the PG may have changed anything meanwhile) until the agent's next
//! AGENT_STATE_EVENT, or a QUERY_AGENT_STATE_CONF the router proxied for it
//! ([`AgentTable::refresh`]), reports it again.

use rustc_hash::FxBuildHasher;

use crate::keys::{AgentField, AgentKey, DeviceKey, GrowingKeyMap};
use crate::proto::constants::{agent_state, msg, NULL_PERIPHERAL_ID};
use crate::proto::group::SkillGroup;
use crate::proto::msg::{AgentStateEvent, QueryAgentStateConf, QueryAgentStateReq};
use crate::proto::routing::{self, RoutingKeys, Span};
use crate::proto::{frame, CtiString, DecodeOptions, Message, MessageBody, Version};
use crate::status::AgentView;

/// SkillGroupNumber of "no skill group" in an AGENT_STATE_EVENT's fixed part.
const NULL_SKILL_GROUP: u32 = 0xFFFF_FFFF;

/// One agent as last reported.
struct AgentRecord {
    /// Its latest AGENT_STATE_EVENT frame, at `version`.
    frame: Vec<u8>,
    version: Version,
    /// The upstream session it was last reported in ([`AgentTable::session`]).
    session: u32,
    /// Its ICMAgentID (read when the agent is first indexed).
    icm_agent_id: i32,
    /// AgentKeys of its id, extension and instrument (as last reported).
    keys: [Option<AgentKey>; 3],
    /// Its extension and instrument as devices.
    devices: [Option<DeviceKey>; 2],
    /// Its AgentState as last reported.
    state: u16,
}

impl AgentRecord {
    /// Keep `frame` (with AgentState `state`) as the agent's latest report
    /// in upstream session `session` (its buffer reused).
    fn store(&mut self, frame: &[u8], version: Version, session: u32, state: u16) {
        self.frame.clear();
        self.frame.extend_from_slice(frame);
        self.version = version;
        self.session = session;
        self.state = state;
    }

    /// Its latest AGENT_STATE_EVENT, decoded.
    fn event(&self) -> Option<AgentStateEvent> {
        let (f, _) = frame::parse(&self.frame).ok()?;
        AgentStateEvent::decode_body(f.body, self.version, DecodeOptions::COUNTS_UNCHECKED).ok()
    }

    fn is_named(&self, keys: &[Option<AgentKey>; 3], devices: &[Option<DeviceKey>; 2]) -> bool {
        self.keys == *keys && self.devices == *devices
    }
}

/// Every agent reported so far.
#[derive(Default)]
pub struct AgentTable {
    /// Boxed: when the vector doubles it moves pointers, not records
    /// (12,000 agents are ~2 MB of records, moved in one push otherwise).
    #[expect(
        clippy::vec_box,
        reason = "a push that doubles moves a pointer per agent, not its record"
    )]
    records: Vec<Box<AgentRecord>>,
    by_key: GrowingKeyMap<AgentKey, u32>,
    by_device: GrowingKeyMap<DeviceKey, u32>,
    by_icm_agent_id: griddle::HashMap<i32, u32, FxBuildHasher>,
    /// The upstream session events come from now: a count of sessions lost.
    session: u32,
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
        let session = self.session;
        let slot = match slot {
            // The usual case: the same agent on the same devices, only its
            // state changed — no re-indexing.
            Some(slot) if self.records[slot as usize].is_named(&agent_keys, &devices) => {
                self.records[slot as usize].store(frame, version, session, state);
                return;
            }
            Some(slot) => {
                self.forget_stale(slot, &agent_keys, &devices);
                slot
            }
            None => {
                self.records.push(Box::new(AgentRecord {
                    frame: Vec::new(),
                    version,
                    session,
                    icm_agent_id: 0,
                    keys: [None; 3],
                    devices: [None; 2],
                    state,
                }));
                (self.records.len() - 1) as u32
            }
        };
        let record = &mut self.records[slot as usize];
        record.store(frame, version, session, state);
        record.keys = agent_keys;
        record.devices = devices;
        // Re-indexing is rare (a new agent, or one on new devices): the
        // ICMAgentID is read then, with a whole decode.
        if let Some(icm) = record.event().map(|e| e.icm_agent_id) {
            record.icm_agent_id = icm;
            if icm != 0 && icm != -1 {
                self.by_icm_agent_id.insert(icm, slot);
            }
        }
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

    /// The upstream was lost: what the agents reported may no longer hold;
    /// every entry is stale until the agent is reported again.
    pub fn mark_stale(&mut self) {
        self.session = self.session.wrapping_add(1);
    }

    /// The AgentState of the agent whose extension or instrument `device`
    /// is, if reported in this upstream session.
    pub fn current_state_of_device(&self, device: &DeviceKey) -> Option<u16> {
        let record = &self.records[*self.by_device.get(device)? as usize];
        (record.session == self.session).then_some(record.state)
    }

    /// QUERY_AGENT_STATE_CONF for `req` from the agent's latest report, if
    /// that report is current and is about what `req` asks: the agent it
    /// names (AgentID, else instrument, else extension, else ICMAgentID),
    /// on its peripheral (when `req` names one) and media routing domain.
    /// `None`: the router does not know, the upstream is asked.
    pub fn query(&self, req: &QueryAgentStateReq) -> Option<QueryAgentStateConf> {
        let named = |field, value: &Option<CtiString>| {
            value
                .as_ref()
                .filter(|v| !v.is_empty())
                .map(|v| AgentKey::new(field, v.as_bytes()))
        };
        let key = named(AgentField::Id, &req.agent_id)
            .or_else(|| named(AgentField::Instrument, &req.agent_instrument))
            .or_else(|| named(AgentField::Extension, &req.agent_extension));
        let slot = match key {
            Some(key) => *self.by_key.get(&key)?,
            None => *self.by_icm_agent_id.get(&req.icm_agent_id)?,
        };
        let record = &self.records[slot as usize];
        if record.session != self.session {
            return None;
        }
        let e = record.event()?;
        let peripheral_named = req.peripheral_id != 0 && req.peripheral_id != NULL_PERIPHERAL_ID;
        if (peripheral_named && req.peripheral_id != e.peripheral_id) || req.mrd_id != e.mrd_id {
            return None;
        }
        let mut skill_groups = e.skill_groups;
        if skill_groups.is_empty() && e.skill_group_number != NULL_SKILL_GROUP {
            // An event without the floating list names the one group whose
            // state it reports, in its fixed part.
            skill_groups.push(SkillGroup {
                number: Some(e.skill_group_number),
                id: Some(e.skill_group_id),
                priority: Some(e.skill_group_priority),
                state: Some(e.skill_group_state),
            });
        }
        let mut conf = QueryAgentStateConf {
            invoke_id: req.invoke_id,
            agent_state: e.agent_state,
            mrd_id: e.mrd_id,
            num_tasks: e.num_tasks,
            agent_mode: e.agent_mode,
            max_task_limit: e.max_task_limit,
            icm_agent_id: e.icm_agent_id,
            agent_availability_status: e.agent_availability_status,
            department_id: e.department_id,
            agent_id: e.agent_id,
            agent_extension: e.agent_extension,
            agent_instrument: e.agent_instrument,
            skill_groups,
            max_beyond_task_limit: e.max_beyond_task_limit,
            ..Default::default()
        };
        conf.sync_counts();
        Some(conf)
    }

    /// A QUERY_AGENT_STATE_CONF the upstream sent for an agent of
    /// `peripheral_id`: the agent's entry is current again, as the CONF says.
    pub fn refresh(&mut self, peripheral_id: u32, conf: &QueryAgentStateConf) {
        let mut event = AgentStateEvent {
            peripheral_id,
            skill_group_number: NULL_SKILL_GROUP,
            skill_group_id: NULL_SKILL_GROUP,
            agent_state: conf.agent_state,
            mrd_id: conf.mrd_id,
            num_tasks: conf.num_tasks,
            agent_mode: conf.agent_mode,
            max_task_limit: conf.max_task_limit,
            icm_agent_id: conf.icm_agent_id,
            agent_availability_status: conf.agent_availability_status,
            department_id: conf.department_id,
            agent_id: conf.agent_id.clone(),
            agent_extension: conf.agent_extension.clone(),
            agent_instrument: conf.agent_instrument.clone(),
            skill_groups: conf.skill_groups.clone(),
            max_beyond_task_limit: conf.max_beyond_task_limit,
            ..Default::default()
        };
        event.sync_counts();
        let Ok(frame) = Message::from(event).to_frame(Version::MAX) else {
            return;
        };
        if let Ok(keys) = routing::extract(&frame, Version::MAX) {
            self.observe(&frame, &keys, Version::MAX);
        }
    }

    /// What OPEN_CONF says about the agent named by `key`, if it was reported.
    pub fn view(&self, key: AgentKey) -> Option<AgentView> {
        let slot = *self.by_key.get(&key)?;
        let event = self.records[slot as usize].event()?;
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
    /// The tables grow a few entries per insert (griddle): while a resize is
    /// still carrying entries over, and after, every agent is found by each
    /// of its fields with its own latest state.
    #[test]
    fn a_large_pg_is_found_whole_while_its_tables_grow() {
        let mut table = AgentTable::default();
        let agents = 20_000u32;
        for k in 0..agents {
            report(&mut table, &format!("1{k:05}"), &format!("2{k:05}"), 2);
            // Agents reported earlier, looked up while later ones grow the tables.
            let back = k / 2;
            let view = table.view(id(&format!("1{back:05}"))).unwrap();
            assert_eq!(
                view.agent_extension,
                Some(format!("2{back:05}").as_str().into())
            );
        }
        for k in (0..agents).step_by(3) {
            report(&mut table, &format!("1{k:05}"), &format!("2{k:05}"), 4);
        }
        assert_eq!(table.nr_agents(), agents as usize);
        for k in 0..agents {
            let want = if k % 3 == 0 { 4 } else { 2 };
            let ext = format!("2{k:05}");
            let by_ext = table.view(AgentKey::new(AgentField::Extension, ext.as_bytes()));
            assert_eq!(by_ext.map(|v| v.agent_state), Some(want), "agent {k}");
            let dev = DeviceKey::device(ext.as_bytes());
            assert_eq!(table.current_state_of_device(&dev), Some(want), "agent {k}");
        }
    }
}
