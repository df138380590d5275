//! `ctirouter sim-pg` serving the Supervisor service (docs/requests.md §7,
//! §9): a supervisor's session (Client Events + Supervisor) gets its team's
//! configuration, lists its team, monitors it and sees its agents' states
//! and none of another team's; barge-in on an agent's call reaches both
//! desktops; a non-supervisor asking for Supervisor is refused;
//! SUPERVISOR_ASSIST from an agent reaches its supervisor.
//!
//! `--agents 20 --manual-agents 20`, no calls: two teams of ten, supervised
//! by 1001 (team 1, and the site supervisor of every team) and 1011 (team 2).

use std::time::Duration;

use crate::BIN;
use ctirouter::proto::constants::{agent_state, msg, service, status};
use ctirouter::proto::msg::*;
use ctirouter::proto::Message;
use testkit::*;

const WAIT: std::time::Duration = TEAM_WAIT;

fn quiet_center() -> Proc {
    testkit::quiet_center(BIN)
}

fn spec(services: u32, client_id: &str, agent: &str, instrument: &str) -> OpenSpec {
    agent_spec(services, client_id, agent, instrument)
}

fn open(pg: &Proc, services: u32, agent: &str, instrument: &str) -> Client {
    let mut c = Client::connect(pg.addr());
    let conf = c.open(&spec(services, &format!("desk{agent}"), agent, instrument));
    assert_eq!(conf.services_granted, services);
    c
}

fn decoded(c: &Client, i: usize) -> Message {
    decode_strict(&c.log[i], c.version)
}

fn wait(c: &mut Client, what: &str, pred: impl Fn(&[u8]) -> bool) -> usize {
    wait_frame(c, what, pred)
}

fn reply(c: &mut Client, invoke: u32) -> Message {
    reply_to(c, invoke)
}

fn set_state(c: &mut Client, invoke: u32, state: u16) {
    set_agent_state(c, invoke, state, 0)
}

#[test]
fn a_supervisor_lists_and_monitors_its_team_and_sees_no_other() {
    let pg = quiet_center();
    let mut sup = Client::connect(pg.addr());
    let opened = sup.open(&spec(SUPERVISOR_DESK, "desk1011", "1011", "3011"));
    assert_eq!(opened.services_granted, SUPERVISOR_DESK);
    let i = wait(&mut sup, "AGENT_TEAM_CONFIG_EVENT", |f| {
        frame_type(f) == msg::AGENT_TEAM_CONFIG_EVENT
    });
    let Message::AgentTeamConfigEvent(config) = decoded(&sup, i) else {
        unreachable!()
    };
    assert_eq!((config.team_id, config.members.len()), (2, 11));
    sup.send(ListAgentTeamReq {
        invoke_id: 1,
        supervisor_id: SUPERVISOR_1011,
    });
    let Message::ListAgentTeamConf(list) = reply(&mut sup, 1) else {
        panic!("no LIST_AGENT_TEAM_CONF")
    };
    assert_eq!((list.team_ids.clone(), list.more), (vec![2], 0));
    // Team 1 is not 1011's.
    sup.send(MonitorAgentTeamStartReq {
        invoke_id: 2,
        team_id: 1,
        ..Default::default()
    });
    let refused = reply(&mut sup, 2);
    assert!(matches!(refused, Message::FailureConf(f) if f.status == status::E_CTI_TEAM_NOT_FOUND));
    sup.send(MonitorAgentTeamStartReq {
        invoke_id: 3,
        team_id: 2,
        ..Default::default()
    });
    let Message::MonitorAgentTeamStartConf(conf) = reply(&mut sup, 3) else {
        panic!("no MONITOR_AGENT_TEAM_START_CONF")
    };
    let monitor = conf.monitor_id;
    // One counter at the PG: the team monitor is not the session's own.
    assert_ne!(
        monitor, opened.monitor_id,
        "the team monitor took the supervisor's Client Events MonitorID"
    );
    // Agents of both teams log in; only team 2's reach the supervisor.
    let mut a1012 = open(&pg, AGENT_DESK, "1012", "3012");
    let mut a1002 = open(&pg, AGENT_DESK, "1002", "3002");
    set_state(&mut a1002, 1, agent_state::LOGIN);
    set_state(&mut a1012, 1, agent_state::LOGIN);
    let version = sup.version;
    wait(&mut sup, "1012's LOGIN on the team monitor", |f| {
        agent_of(f, version) == Some((monitor, "1012".into()))
    });
    let later = sup.collect_for(Duration::from_millis(300));
    let others: Vec<_> = sup
        .log
        .iter()
        .chain(later.iter())
        .filter_map(|f| agent_of(f, version))
        .filter(|(_, id)| id == "1002")
        .collect();
    assert!(others.is_empty(), "another team's agent: {others:?}");
    sup.send(MonitorAgentTeamStopReq {
        invoke_id: 4,
        monitor_id: monitor,
        ..Default::default()
    });
    assert_eq!(
        reply(&mut sup, 4).message_type(),
        msg::MONITOR_AGENT_TEAM_STOP_CONF
    );
}

#[test]
fn a_non_supervisor_asking_for_supervisor_is_refused() {
    let pg = quiet_center();
    let mut c = Client::connect(pg.addr());
    let refused = c.open_refused(&spec(SUPERVISOR_DESK, "desk", "1012", "3012"));
    assert_eq!(refused, status::E_CTI_FUNCTION_NOT_AVAILABLE);
    c.expect_closed_within(WAIT);
    // Supervisor without Client Events: refused too.
    let mut c = Client::connect(pg.addr());
    let refused = c.open_refused(&spec(service::SUPERVISOR, "desk", "1011", "3011"));
    assert_eq!(refused, status::E_CTI_FUNCTION_NOT_AVAILABLE);
    // A supervisor's requests from a session without the service: 12.
    let mut agent = open(&pg, AGENT_DESK, "1013", "3013");
    agent.send(ListAgentTeamReq {
        invoke_id: 9,
        supervisor_id: SUPERVISOR_1011,
    });
    let answer = reply(&mut agent, 9);
    assert!(
        matches!(answer, Message::FailureConf(f) if f.status == status::E_CTI_FUNCTION_NOT_AVAILABLE)
    );
}

#[test]
fn barge_in_reaches_both_desktops_and_assist_reaches_the_supervisor() {
    let pg = quiet_center();
    let mut sup = open(
        &pg,
        SUPERVISOR_DESK | service::CLIENT_CONTROL,
        "1011",
        "3011",
    );
    let mut agent = open(&pg, AGENT_DESK, "1012", "3012");
    for (invoke, state) in [(1, agent_state::LOGIN), (2, agent_state::AVAILABLE)] {
        set_state(&mut agent, invoke, state);
        set_state(&mut sup, 100 + invoke, state);
    }
    // SUPERVISOR_ASSIST from the agent reaches its supervisor.
    agent.send(SupervisorAssistReq {
        invoke_id: 3,
        peripheral_id: PID,
        ..Default::default()
    });
    assert_eq!(
        reply(&mut agent, 3).message_type(),
        msg::SUPERVISOR_ASSIST_CONF
    );
    wait(&mut sup, "SUPERVISOR_ASSIST_EVENT", |f| {
        frame_type(f) == msg::SUPERVISOR_ASSIST_EVENT
    });
    // The agent calls out; once answered, the supervisor barges in.
    barge_in_on_a_call(&mut agent, "3012", &mut sup, 4);
}

/// `ctl team` / `ctl barge-in` against sim-pg directly: the supervisor's
/// commands work for a supervisor and are refused for anyone else.
#[test]
fn ctl_team_prints_the_team_and_a_non_supervisor_is_refused() {
    let pg = quiet_center();
    let addr = pg.addr().to_string();
    let ctl = |agent: &str, instrument: &str, command: &[&str]| {
        let mut args = vec![
            "ctl",
            "--connect",
            addr.as_str(),
            "--agent",
            agent,
            "--instrument",
            instrument,
            "--wait-ms",
            "300",
        ];
        args.extend_from_slice(command);
        let mut p = Proc::spawn(BIN, &args);
        let status = p.wait_exit(Duration::from_secs(15));
        let mut stdout = Vec::new();
        while let Some(line) = p.next_line(Duration::from_secs(2)) {
            stdout.push(line);
        }
        (status, stdout)
    };
    let (status, stdout) = ctl("1011", "3011", &["team", "2"]);
    assert_eq!(status.code(), Some(0), "{stdout:?}");
    let text = stdout.join("\n");
    assert!(text.contains("MONITOR_AGENT_TEAM_START_CONF"), "{text}");
    assert!(text.contains("AGENT_TEAM_CONFIG_EVENT"), "{text}");
    assert!(text.contains("AGENT_STATE_EVENT monitor_id="), "{text}");
    let (status, _) = ctl("1012", "3012", &["team", "2"]);
    assert_eq!(status.code(), Some(2));
    // No call to barge in on: the PG's code, exit 1.
    let (status, _) = ctl("1011", "3011", &["barge-in", "1013"]);
    assert_eq!(status.code(), Some(1));
}
