//! Unit tests of the simulated teams and supervisors (`supervisor.rs`):
//! LIST_AGENT_TEAM in segments, team monitoring addressed to its monitor
//! only, barge-in / intercept / clear on an agent's call, SUPERVISOR_ASSIST
//! to the team's supervisor, the failure codes, and the stream without
//! requests unchanged.

use std::time::Duration;

use super::{SimConfig, Simulator, To};
use crate::proto::constants::{agent_state::*, msg, status, supervisory_action};
use crate::proto::msg::*;
use crate::proto::{CtiString, Message};

const SEC: Duration = Duration::from_secs(1);

fn s(text: &str) -> Option<CtiString> {
    Some(CtiString::from(text))
}

/// 20 manual agents (two teams: supervisors "1001" and "1011"), no calls.
fn quiet() -> Simulator {
    Simulator::new(SimConfig {
        agents: 20,
        manual_agents: 20,
        calls_per_sec: 0.0,
        ..SimConfig::default()
    })
}

/// Everything due by `until`, with whom it is for.
fn drain(sim: &mut Simulator, until: Duration) -> Vec<(To, Message)> {
    let mut out = Vec::new();
    while let Some((_, to, m)) = sim.next_addressed_event_until(until) {
        out.push((to, m));
    }
    out
}

fn request(sim: &mut Simulator, at: Duration, m: impl Into<Message>) -> Vec<(To, Message)> {
    sim.request(at, 7, &m.into());
    drain(sim, at)
}

fn login_ready(sim: &mut Simulator, at: Duration, agent: &str, ext: &str) {
    for state in [LOGIN, AVAILABLE] {
        let req = SetAgentStateReq {
            agent_state: state,
            agent_id: s(agent),
            agent_instrument: s(ext),
            ..Default::default()
        };
        request(sim, at, req);
    }
}

fn status_of(m: &Message) -> Option<u32> {
    match m {
        Message::FailureConf(f) => Some(f.status),
        _ => None,
    }
}

#[test]
fn teams_are_fixed_by_index_and_1001_supervises_all() {
    let sim = quiet();
    assert_eq!(sim.supervisor_named(&[s("1011").as_ref()]), s("1011"));
    assert_eq!(sim.supervisor_named(&[s("3001").as_ref()]), s("1001"));
    assert_eq!(sim.supervisor_named(&[s("1002").as_ref()]), None);
    assert!(sim.supervises(&CtiString::from("1001"), 2));
    assert!(!sim.supervises(&CtiString::from("1011"), 1));
    assert_eq!(sim.team_configs(&CtiString::from("1001")).len(), 2);
    let configs = sim.team_configs(&CtiString::from("1011"));
    let Some(Message::AgentTeamConfigEvent(e)) = configs.first() else {
        panic!("{configs:?}");
    };
    assert_eq!((e.team_id, e.number_of_agents), (2, 11));
}

#[test]
fn many_teams_are_listed_in_segments_of_64() {
    let mut sim = Simulator::new(SimConfig {
        agents: 700,
        calls_per_sec: 0.0,
        ..SimConfig::default()
    });
    let list = ListAgentTeamReq {
        invoke_id: 1,
        supervisor_id: 5001,
    };
    let out = request(&mut sim, SEC, list);
    let segments: Vec<_> = out
        .iter()
        .filter_map(|(_, m)| match m {
            Message::ListAgentTeamConf(c) => Some((c.segment_number, c.more, c.team_ids.len())),
            _ => None,
        })
        .collect();
    assert_eq!(segments, vec![(1, 1, 64), (2, 0, 6)]);
    let not_supervisor = ListAgentTeamReq {
        invoke_id: 1,
        supervisor_id: 5002,
    };
    let out = request(&mut sim, SEC, not_supervisor);
    assert_eq!(
        status_of(&out[0].1),
        Some(status::E_CTI_SUPERVISOR_NOT_FOUND)
    );
}

#[test]
fn a_team_monitor_gets_config_states_and_changes_of_its_team_only() {
    let mut sim = quiet();
    let start = MonitorAgentTeamStartReq {
        invoke_id: 1,
        team_id: 2,
        ..Default::default()
    };
    let out = request(&mut sim, SEC, start);
    let Message::MonitorAgentTeamStartConf(conf) = &out[0].1 else {
        panic!("{out:?}");
    };
    let to = To::TeamMonitor(conf.monitor_id);
    assert!(out[1..].iter().all(|(t, _)| *t == to));
    assert_eq!(out[1].1.message_type(), msg::AGENT_TEAM_CONFIG_EVENT);
    assert_eq!(out.len(), 2 + 10);
    let mut sim2 = quiet();
    let out = request(
        &mut sim2,
        SEC,
        MonitorAgentTeamStartReq {
            invoke_id: 1,
            team_id: 2,
            ..Default::default()
        },
    );
    let Message::MonitorAgentTeamStartConf(conf) = &out[0].1 else {
        panic!("{out:?}");
    };
    let id = conf.monitor_id;
    sim2.request(
        2 * SEC,
        2,
        &Message::from(SetAgentStateReq {
            agent_state: LOGIN,
            agent_id: s("1012"),
            agent_instrument: s("3012"),
            ..Default::default()
        }),
    );
    sim2.request(
        2 * SEC,
        3,
        &Message::from(SetAgentStateReq {
            agent_state: LOGIN,
            agent_id: s("1002"),
            agent_instrument: s("3002"),
            ..Default::default()
        }),
    );
    let out = drain(&mut sim2, 2 * SEC);
    let copies: Vec<_> = out
        .iter()
        .filter_map(|(t, m)| match (t, m) {
            (To::TeamMonitor(m_id), Message::AgentStateEvent(e)) if *m_id == id => {
                assert_eq!(e.monitor_id, id);
                Some(e.agent_id.clone())
            }
            (To::TeamMonitor(_), _) => panic!("{m:?}"),
            _ => None,
        })
        .collect();
    assert_eq!(
        copies,
        vec![s("1012"), s("1012")],
        "LOGIN, NOT_READY of 1012 only"
    );
    let stop = MonitorAgentTeamStopReq {
        invoke_id: 4,
        monitor_id: id,
        ..Default::default()
    };
    let out = request(&mut sim2, 3 * SEC, stop.clone());
    assert_eq!(out[0].1.message_type(), msg::MONITOR_AGENT_TEAM_STOP_CONF);
    let out = request(&mut sim2, 3 * SEC, stop);
    assert_eq!(status_of(&out[0].1), Some(status::E_CTI_INVALID_MONITORID));
    let unknown = MonitorAgentTeamStartReq {
        invoke_id: 1,
        team_id: 9,
        ..Default::default()
    };
    let out = request(&mut sim2, 3 * SEC, unknown);
    assert_eq!(status_of(&out[0].1), Some(status::E_CTI_TEAM_NOT_FOUND));
}

/// 1012 logged in and talking on a call it placed outside (answered after
/// a ring); returns the call id.
fn agent_on_a_call(sim: &mut Simulator) -> u32 {
    login_ready(sim, SEC, "1012", "3012");
    login_ready(sim, SEC, "1011", "3011");
    let call = MakeCallReq {
        dialed_number: s("5551234"),
        agent_instrument: s("3012"),
        ..Default::default()
    };
    let out = request(sim, SEC, call);
    let Message::MakeCallConf(conf) = &out[0].1 else {
        panic!("{out:?}");
    };
    let answered = drain(sim, 30 * SEC)
        .iter()
        .any(|(_, m)| m.message_type() == msg::CALL_ESTABLISHED_EVENT);
    assert!(answered);
    conf.new_connection_call_id
}

fn supervise(action: u16, agent: &str) -> SuperviseCallReq {
    SuperviseCallReq {
        invoke_id: 1,
        agent_connection_call_id: 0xFFFF_FFFF,
        supervisor_connection_call_id: 0xFFFF_FFFF,
        supervisory_action: action,
        agent_id: s(agent),
        supervisor_instrument: s("3011"),
        ..Default::default()
    }
}

#[test]
fn the_supervisor_refusals_follow_the_pg() {
    let mut sim = quiet();
    let mut not_sup = supervise(supervisory_action::BARGE_IN, "1013");
    not_sup.supervisor_instrument = s("3012");
    let out = request(&mut sim, SEC, not_sup);
    assert_eq!(
        status_of(&out[0].1),
        Some(status::E_CTI_SUPERVISOR_NOT_FOUND)
    );
    let other_team = supervise(supervisory_action::BARGE_IN, "1002");
    let out = request(&mut sim, SEC, other_team);
    assert_eq!(status_of(&out[0].1), Some(status::E_CTI_TEAM_NOT_FOUND));
    let no_call = supervise(supervisory_action::BARGE_IN, "1013");
    let out = request(&mut sim, SEC, no_call);
    let Message::ControlFailureConf(f) = &out[0].1 else {
        panic!("{out:?}");
    };
    assert_eq!(f.failure_code, super::control::code::NO_ACTIVE_CALL);
}

#[test]
fn barge_in_conferences_the_supervisor_and_clear_lets_it_leave() {
    let mut sim = quiet();
    let call_id = agent_on_a_call(&mut sim);
    let silent = request(
        &mut sim,
        3 * SEC,
        supervise(supervisory_action::MONITOR, "1012"),
    );
    assert_eq!(silent[0].1.message_type(), msg::SUPERVISE_CALL_CONF);
    assert_eq!(silent.len(), 1, "a silent monitor sends no events");
    let out = request(
        &mut sim,
        3 * SEC,
        supervise(supervisory_action::BARGE_IN, "1012"),
    );
    let Message::SuperviseCallConf(conf) = &out[0].1 else {
        panic!("{out:?}");
    };
    assert_eq!(conf.connection_call_id, call_id);
    let Some((To::All, Message::CallConferencedEvent(e))) = out.get(1) else {
        panic!("{out:?}");
    };
    let parties: Vec<_> = e.parties.iter().map(|p| p.device_id.clone()).collect();
    assert!(parties.contains(&s("3012")) && parties.contains(&s("3011")));
    let talking = out.iter().any(|(_, m)| {
        matches!(m, Message::AgentStateEvent(e) if e.agent_id == s("1011") && e.agent_state == TALKING)
    });
    assert!(talking, "{out:?}");
    // Barging in twice: the supervisor is busy.
    let again = request(
        &mut sim,
        3 * SEC,
        supervise(supervisory_action::BARGE_IN, "1012"),
    );
    assert_eq!(again[0].1.message_type(), msg::CONTROL_FAILURE_CONF);
    let out = request(
        &mut sim,
        4 * SEC,
        supervise(supervisory_action::CLEAR, "1012"),
    );
    assert_eq!(out[0].1.message_type(), msg::SUPERVISE_CALL_CONF);
    let left = out.iter().any(|(_, m)| {
        matches!(m, Message::CallConnectionClearedEvent(e) if e.releasing_device_id == s("3011"))
    });
    assert!(left, "{out:?}");
}

#[test]
fn intercept_leaves_the_supervisor_with_the_call() {
    let mut sim = quiet();
    agent_on_a_call(&mut sim);
    let out = request(
        &mut sim,
        3 * SEC,
        supervise(supervisory_action::INTERCEPT, "1012"),
    );
    assert_eq!(out[0].1.message_type(), msg::SUPERVISE_CALL_CONF);
    let agent_left = out.iter().any(|(_, m)| {
        matches!(m, Message::CallConnectionClearedEvent(e) if e.releasing_device_id == s("3012"))
    });
    assert!(agent_left, "{out:?}");
}

#[test]
fn supervisor_assist_and_emergency_reach_the_teams_supervisor_and_all_events() {
    let mut sim = quiet();
    let assist = SupervisorAssistReq {
        invoke_id: 1,
        agent_id: s("1015"),
        agent_instrument: s("3015"),
        ..Default::default()
    };
    let out = request(&mut sim, SEC, assist);
    assert_eq!(out[0].1.message_type(), msg::SUPERVISOR_ASSIST_CONF);
    let Some((To::SupervisorAndAllEvents(to), Message::SupervisorAssistEvent(e))) = out.get(1)
    else {
        panic!("{out:?}");
    };
    assert_eq!(Some(to.clone()), s("1011"));
    assert_eq!(e.client_id, s("1015"));
    let emergency = EmergencyCallReq {
        invoke_id: 2,
        agent_id: s("1016"),
        agent_instrument: s("3016"),
        ..Default::default()
    };
    let out = request(&mut sim, 2 * SEC, emergency);
    assert_eq!(out[0].1.message_type(), msg::EMERGENCY_CALL_CONF);
    let Some((To::SupervisorAndAllEvents(to), Message::EmergencyCallEvent(e))) = out.get(1) else {
        panic!("{out:?}");
    };
    assert_eq!(Some(to.clone()), s("1011"));
    assert_eq!(
        (e.agent_id.clone(), e.agent_instrument.clone()),
        (s("1016"), s("3016"))
    );
    // A supervisor has nobody to call for help.
    let from_supervisor = EmergencyCallReq {
        invoke_id: 3,
        agent_id: s("1011"),
        agent_instrument: s("3011"),
        ..Default::default()
    };
    let out = request(&mut sim, 3 * SEC, from_supervisor);
    assert!(
        matches!(&out[0].1, Message::FailureConf(f) if f.status == status::E_CTI_SUPERVISOR_NOT_FOUND),
        "{out:?}"
    );
}

/// Requests aside, the addressed stream is the broadcast stream.
#[test]
fn without_requests_every_event_is_for_everyone() {
    let config = SimConfig::default();
    let (mut a, mut b) = (Simulator::new(config.clone()), Simulator::new(config));
    for _ in 0..20_000 {
        let (at, to, m) = a.next_addressed_event();
        assert_eq!(to, To::All);
        assert_eq!(b.next_event(), (at, m));
    }
}
