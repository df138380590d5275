//! What the simulated PG knows of its agents and their devices, as its own
//! event stream has told it: each agent's state (its last AGENT_STATE_EVENT)
//! and the calls at each agent's instrument (every CALL_DELIVERED_EVENT for
//! agent `k` alerts call `call_id(k)` there, and no event ends it). The
//! driver updates it as it writes each event, and the PG answers
//! QUERY_AGENT_STATE_REQ and SNAPSHOT_DEVICE_REQ from it, in the same loop
//! turn, after every event it wrote before the request came.
//!
//! [`History`] keeps when each of those facts changed (by event seq), so an
//! answer read by a client can be checked against what the stream said at
//! the answer's place in that client's own stream ([`History::expected`]):
//! the answer must agree with every event of its agent before it and none
//! after. No I/O here.

use ctirouter::proto::constants::{agent_state, connection_type, lcs};
use ctirouter::proto::group::{DeviceCall, SkillGroup};
use ctirouter::proto::msg::{
    ControlFailureConf, QueryAgentStateConf, QueryAgentStateReq, SnapshotDeviceConf,
    SnapshotDeviceReq,
};
use ctirouter::proto::{CtiString, Message};

use crate::events::{
    agent_id, agent_named, call_id, icm_agent_id, instrument, SKILL_GROUP_ID, SKILL_GROUP_NUMBER,
};

/// CONTROL_FAILURE_CONF FailureCodes (docs/protocol.md §5.12) for a query
/// that names no agent / device of this PG.
pub const CF_OBJECT_NOT_KNOWN: u16 = 4;
pub const CF_INVALID_DEVICE_IDENTIFIER: u16 = 12;

/// What an answer to a storm query said, in a form the harness compares:
/// the agent's state, or the calls at the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// QUERY_AGENT_STATE_CONF: AgentState, and the agent its AgentID names
    /// (`None`: none of this PG's).
    AgentState { state: u16, agent: Option<u32> },
    /// SNAPSHOT_DEVICE_CONF: how many calls, and an order-free digest of
    /// (ConnectionCallID, CallState) of each ([`calls_digest`]).
    Calls { n: u16, digest: u64 },
}

/// An order-free digest of a device's calls.
pub fn calls_digest(calls: impl IntoIterator<Item = (u32, u16)>) -> u64 {
    calls.into_iter().fold(0u64, |acc, (id, state)| {
        acc.wrapping_add(((id as u64) << 16 | state as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    })
}

/// The PG's agents and devices now.
#[derive(Debug, Clone, Default)]
pub struct PgWorld {
    /// Per agent: the AgentState of its last AGENT_STATE_EVENT (`None`: never
    /// reported, i.e. logged out).
    state: Vec<Option<u16>>,
    /// Per agent: a CALL_DELIVERED_EVENT has alerted its call at its instrument.
    in_call: Vec<bool>,
}

impl PgWorld {
    /// No agents: every query names an unknown object (the limit probe).
    pub const EMPTY: PgWorld = PgWorld {
        state: Vec::new(),
        in_call: Vec::new(),
    };

    pub fn new(agents: u32) -> PgWorld {
        PgWorld {
            state: vec![None; agents as usize],
            in_call: vec![false; agents as usize],
        }
    }

    fn agents(&self) -> u32 {
        self.state.len() as u32
    }

    /// The driver wrote an AGENT_STATE_EVENT saying `state` for agent `k`.
    #[inline]
    pub fn agent_state(&mut self, k: u32, state: u16) {
        self.state[k as usize] = Some(state);
    }

    /// The driver wrote a CALL_DELIVERED_EVENT for agent `k`.
    #[inline]
    pub fn call_delivered(&mut self, k: u32) {
        self.in_call[k as usize] = true;
    }

    /// The agent a QUERY_AGENT_STATE_REQ names: AgentID, else the
    /// instrument or extension, else ICMAgentID.
    fn agent_of(&self, r: &QueryAgentStateReq) -> Option<u32> {
        let n = self.agents();
        let named = |f: &Option<CtiString>, digit| {
            f.as_ref()
                .filter(|s| !s.is_empty())
                .map(|s| agent_named(s.as_bytes(), digit, n))
        };
        named(&r.agent_id, b'1')
            .or_else(|| named(&r.agent_instrument, b'2'))
            .or_else(|| named(&r.agent_extension, b'2'))
            .unwrap_or_else(|| {
                let k = r.icm_agent_id.checked_sub(icm_agent_id(0))?;
                u32::try_from(k).ok().filter(|&k| k < n)
            })
    }

    /// QUERY_AGENT_STATE_CONF with the agent's state as its last
    /// AGENT_STATE_EVENT said it (LOGOUT if none did), the same fields that
    /// event carries; CONTROL_FAILURE_CONF(CF_OBJECT_NOT_KNOWN) for an agent
    /// this PG does not have.
    pub fn query_agent_state(&self, r: &QueryAgentStateReq) -> Message {
        let Some(k) = self.agent_of(r) else {
            return control_failure(r.invoke_id, CF_OBJECT_NOT_KNOWN);
        };
        let state = self.state[k as usize].unwrap_or(agent_state::LOGOUT);
        let text = |s: String| Some(CtiString::new(s));
        let mut conf: Message = QueryAgentStateConf {
            invoke_id: r.invoke_id,
            agent_state: state,
            mrd_id: 1,
            num_tasks: matches!(
                state,
                agent_state::TALKING | agent_state::HOLD | agent_state::WORK_READY
            ) as u32,
            agent_mode: 1,
            max_task_limit: 1,
            icm_agent_id: icm_agent_id(k),
            agent_availability_status: (state == agent_state::AVAILABLE) as u32,
            agent_id: text(agent_id(k)),
            agent_extension: text(instrument(k)),
            agent_instrument: text(instrument(k)),
            skill_groups: vec![SkillGroup {
                number: Some(SKILL_GROUP_NUMBER),
                id: Some(SKILL_GROUP_ID),
                priority: Some(0),
                state: Some(state),
            }],
            ..Default::default()
        }
        .into();
        conf.sync_counts();
        conf
    }

    /// SNAPSHOT_DEVICE_CONF with the calls at the agent instrument the
    /// request names, as the CALL_DELIVERED_EVENTs left them (the agent's
    /// call alerting, or none); CONTROL_FAILURE_CONF
    /// (CF_INVALID_DEVICE_IDENTIFIER) for a device that is no agent's.
    pub fn snapshot_device(&self, r: &SnapshotDeviceReq) -> Message {
        let device = r.agent_instrument.as_ref().map(|s| s.as_bytes());
        let Some(k) = device.and_then(|d| agent_named(d, b'2', self.agents())) else {
            return control_failure(r.invoke_id, CF_INVALID_DEVICE_IDENTIFIER);
        };
        let calls = if self.in_call[k as usize] {
            vec![DeviceCall {
                connection_call_id: Some(call_id(k)),
                connection_device_id_type: Some(connection_type::STATIC),
                connection_device_id: Some(CtiString::new(instrument(k))),
                call_state: Some(lcs::ALERTING),
                silent_monitor_status: Some(0),
            }]
        } else {
            Vec::new()
        };
        let mut conf: Message = SnapshotDeviceConf {
            invoke_id: r.invoke_id,
            calls,
            ..Default::default()
        }
        .into();
        conf.sync_counts();
        conf
    }
}

fn control_failure(invoke_id: u32, failure_code: u16) -> Message {
    ControlFailureConf {
        invoke_id,
        failure_code,
        ..Default::default()
    }
    .into()
}

/// When each agent's state and each device's calls changed, by event seq
/// (the agents some Client Events or Peripheral Monitor session names,
/// in scenarios that check answers).
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Per agent: (seq, AgentState) of each of its AGENT_STATE_EVENTs, in order.
    states: Vec<Vec<(u64, u16)>>,
    /// Per agent: seq of its first CALL_DELIVERED_EVENT (`u64::MAX`: none).
    first_call: Vec<u64>,
}

impl History {
    pub fn new(agents: u32) -> History {
        History {
            states: vec![Vec::new(); agents as usize],
            first_call: vec![u64::MAX; agents as usize],
        }
    }

    pub fn agent_state(&mut self, k: u32, seq: u64, state: u16) {
        if let Some(h) = self.states.get_mut(k as usize) {
            h.push((seq, state));
        }
    }

    pub fn call_delivered(&mut self, k: u32, seq: u64) {
        if let Some(first) = self.first_call.get_mut(k as usize) {
            *first = (*first).min(seq);
        }
    }

    /// Whether an AGENT_STATE_EVENT of agent `k` came before seq `next`.
    pub fn state_known_before(&self, k: u32, next: u64) -> bool {
        self.states
            .get(k as usize)
            .and_then(|h| h.first())
            .is_some_and(|&(seq, _)| seq < next)
    }

    /// What an answer about agent `k` must say if the first event of `k`
    /// its session read after the answer has seq `next` (`u64::MAX`: none
    /// came): the stream as of every event of `k` before `next`. The router
    /// delivers a reply and the events around it in stream order (a proxied
    /// reply rides the same ordered ring, docs/requests.md §5; a local answer
    /// must keep that order too), and a Client Events session gets every
    /// event of its agent from its OPEN_CONF on, so no event of `k` lies
    /// between the answer and `next`.
    pub fn expected(&self, snapshot: bool, k: u32, next: u64) -> View {
        let k_us = k as usize;
        if snapshot {
            let in_call = self.first_call.get(k_us).is_some_and(|&s| s < next);
            let calls = in_call.then_some((call_id(k), lcs::ALERTING));
            View::Calls {
                n: in_call as u16,
                digest: calls_digest(calls),
            }
        } else {
            let h = self.states.get(k_us).map_or(&[][..], Vec::as_slice);
            let before = h.partition_point(|&(seq, _)| seq < next);
            let state = before
                .checked_sub(1)
                .map_or(agent_state::LOGOUT, |i| h[i].1);
            View::AgentState {
                state,
                agent: Some(k),
            }
        }
    }
}

/// The View of a QUERY_AGENT_STATE_CONF or SNAPSHOT_DEVICE_CONF (`agents`:
/// how many agents the PG has, to tell whose AgentID it names).
pub fn view_of(m: &Message, agents: u32) -> Option<View> {
    match m {
        Message::QueryAgentStateConf(c) => Some(View::AgentState {
            state: c.agent_state,
            agent: c
                .agent_id
                .as_ref()
                .and_then(|id| agent_named(id.as_bytes(), b'1', agents)),
        }),
        Message::SnapshotDeviceConf(c) => Some(View::Calls {
            n: c.calls.len() as u16,
            digest: calls_digest(c.calls.iter().map(|d| {
                (
                    d.connection_call_id.unwrap_or(u32::MAX),
                    d.call_state.unwrap_or(u16::MAX),
                )
            })),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctirouter::proto::constants::agent_state::{AVAILABLE, LOGOUT, NOT_READY, TALKING};
    use ctirouter::proto::{decode_frame, DecodeOptions, Version};

    fn query(k: u32) -> QueryAgentStateReq {
        QueryAgentStateReq {
            invoke_id: 7,
            mrd_id: 1,
            agent_id: Some(CtiString::new(agent_id(k))),
            ..Default::default()
        }
    }

    fn snapshot(device: &str) -> SnapshotDeviceReq {
        SnapshotDeviceReq {
            invoke_id: 8,
            agent_instrument: Some(CtiString::new(device)),
            ..Default::default()
        }
    }

    /// Encoded and decoded back, as a client reads it.
    fn wire(m: Message) -> Message {
        let f = m.to_frame(Version::MAX).unwrap();
        decode_frame(&f, Version::MAX, DecodeOptions::STRICT)
            .unwrap()
            .0
    }

    #[test]
    fn the_pg_answers_from_what_its_stream_said() {
        let mut w = PgWorld::new(10);
        let m = wire(w.query_agent_state(&query(3)));
        assert_eq!(
            view_of(&m, 10),
            Some(View::AgentState {
                state: LOGOUT,
                agent: Some(3)
            }),
            "never reported: logged out"
        );
        w.agent_state(3, TALKING);
        let m = wire(w.query_agent_state(&query(3)));
        let Message::QueryAgentStateConf(c) = &m else {
            panic!("{m:?}")
        };
        assert_eq!((c.invoke_id, c.agent_state, c.num_tasks), (7, TALKING, 1));
        assert_eq!((c.icm_agent_id, c.skill_groups.len()), (5003, 1));
        assert_eq!(c.agent_instrument.as_ref().unwrap().as_bytes(), b"200003");
        // By instrument, by ICMAgentID.
        let by_phone = QueryAgentStateReq {
            agent_id: None,
            agent_instrument: Some(CtiString::new("200003")),
            ..query(3)
        };
        let by_icm = QueryAgentStateReq {
            agent_id: None,
            icm_agent_id: 5003,
            ..query(3)
        };
        for r in [by_phone, by_icm] {
            assert!(
                matches!(w.query_agent_state(&r), Message::QueryAgentStateConf(c) if c.agent_state == TALKING)
            );
        }
        assert!(matches!(
            w.query_agent_state(&query(12)),
            Message::ControlFailureConf(c) if c.failure_code == CF_OBJECT_NOT_KNOWN
        ));
        let idle = wire(w.snapshot_device(&snapshot("200003")));
        assert_eq!(view_of(&idle, 10), Some(View::Calls { n: 0, digest: 0 }));
        w.call_delivered(3);
        let busy = wire(w.snapshot_device(&snapshot("200003")));
        let Message::SnapshotDeviceConf(c) = &busy else {
            panic!("{busy:?}")
        };
        assert_eq!(c.invoke_id, 8);
        assert_eq!(c.calls[0].connection_call_id, Some(call_id(3)));
        assert_eq!(c.calls[0].call_state, Some(lcs::ALERTING));
        assert!(matches!(
            w.snapshot_device(&snapshot("100003")),
            Message::ControlFailureConf(c) if c.failure_code == CF_INVALID_DEVICE_IDENTIFIER
        ));
        assert!(matches!(
            PgWorld::EMPTY.snapshot_device(&snapshot("200003")),
            Message::ControlFailureConf(_)
        ));
    }

    #[test]
    fn history_says_what_an_answer_before_an_event_must_say() {
        let mut h = History::new(4);
        h.agent_state(2, 10, AVAILABLE);
        h.agent_state(2, 20, NOT_READY);
        h.call_delivered(2, 15);
        h.call_delivered(2, 30);
        let state = |next| h.expected(false, 2, next);
        let at = |state| View::AgentState {
            state,
            agent: Some(2),
        };
        assert_eq!(state(5), at(LOGOUT));
        assert_eq!(
            state(10),
            at(LOGOUT),
            "the event at 10 came after the answer"
        );
        assert_eq!(state(11), at(AVAILABLE));
        assert_eq!(state(u64::MAX), at(NOT_READY));
        assert!(h.state_known_before(2, 11) && !h.state_known_before(2, 10));
        assert!(!h.state_known_before(1, u64::MAX));
        assert_eq!(h.expected(true, 2, 15), View::Calls { n: 0, digest: 0 });
        let mut w = PgWorld::new(4);
        w.call_delivered(2);
        let live = view_of(&wire(w.snapshot_device(&snapshot("200002"))), 4);
        assert_eq!(Some(h.expected(true, 2, 16)), live);
        assert_eq!(
            h.expected(true, 1, u64::MAX),
            View::Calls { n: 0, digest: 0 }
        );
    }

    #[test]
    fn the_digest_ignores_order_but_not_content() {
        let a = calls_digest([(1, 2), (3, 4)]);
        assert_eq!(a, calls_digest([(3, 4), (1, 2)]));
        assert_ne!(a, calls_digest([(1, 2), (3, 5)]));
        assert_ne!(calls_digest([(1, 2)]), 0);
    }
}
