//! Supervisor sessions through the router (docs/requests.md §7):
//! `sim-pg` → `serve --upstream` → raw supervisor and agent desktops. Each
//! supervisor session gets its own session on the CTI Server: the PG's
//! answer to it is the desktop's answer, its team's events reach that
//! desktop alone (once each, none from the bridge), barge-in reaches both
//! desktops, assist and emergency calls reach the supervisor and All Events
//! sessions, and after a failover it is opened again on the other side.
//!
//! `sim-pg --agents 20 --manual-agents 20`, no calls: two teams of ten,
//! supervised by 1001 (team 1, and the site supervisor of every team) and
//! 1011 (team 2).

use std::net::SocketAddr;
use std::time::Duration;

use crate::BIN;
use ctirouter::proto::constants::{agent_state, msg, service, status};
use ctirouter::proto::msg::*;
use ctirouter::proto::{Message, Version};
use testkit::*;

const WAIT: Duration = TEAM_WAIT;

/// Supervisors (`sup`) and agents' desktops (`desk`) are listed with what
/// they may do behind a real CTI Server.
fn clients_toml(max_supervisors: usize) -> String {
    format!(
        "[limits]\nmax_supervisor_sessions = {max_supervisors}\n\
         [[clients]]\nclient_id = \"sup\"\n\
         services = [\"client-events\", \"supervisor\", \"client-control\"]\n\
         [[clients]]\nclient_id = \"desk\"\n\
         services = [\"client-events\", \"client-control\"]\n\
         [[clients]]\nclient_id = \"watcher\"\n\
         services = [\"client-events\"]\n\
         [[clients]]\nclient_id = \"test\"\n"
    )
}

fn router_to(sides: &[SocketAddr], max_supervisors: usize) -> Proc {
    let toml = upstream_toml(sides, 200) + &clients_toml(max_supervisors);
    let router = router(BIN, &toml, &[]);
    open_when_upstream_up(router.addr(), Version::MAX, WAIT);
    router
}

fn spec(services: u32, client_id: &str, agent: &str, instrument: &str) -> OpenSpec {
    agent_spec(services, client_id, agent, instrument)
}

fn open(router: &Proc, services: u32, client_id: &str, agent: &str, instrument: &str) -> Client {
    let mut c = Client::connect(router.addr());
    let conf = c.open(&spec(services, client_id, agent, instrument));
    assert_eq!(conf.services_granted, services, "{agent} as {client_id}");
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

fn list_team(c: &mut Client, invoke: u32) -> Message {
    c.send(ListAgentTeamReq {
        invoke_id: invoke,
        supervisor_id: SUPERVISOR_1011,
    });
    reply(c, invoke)
}

#[test]
fn a_supervisor_through_the_router_sees_its_team_once_and_nothing_of_others() {
    let pg = quiet_center(BIN);
    let router = router_to(&[pg.addr()], 10);
    let mut sup = Client::connect(router.addr());
    let conf = sup.open(&spec(
        SUPERVISOR_DESK | service::CLIENT_CONTROL,
        "sup",
        "1011",
        "3011",
    ));
    assert_eq!(
        conf.services_granted,
        SUPERVISOR_DESK | service::CLIENT_CONTROL
    );
    let own_monitor = conf.monitor_id;
    let i = wait(&mut sup, "AGENT_TEAM_CONFIG_EVENT", |f| {
        frame_type(f) == msg::AGENT_TEAM_CONFIG_EVENT
    });
    let Message::AgentTeamConfigEvent(config) = decoded(&sup, i) else {
        unreachable!()
    };
    assert_eq!((config.team_id, config.members.len()), (2, 11));
    // InvokeIDs are the desktop's own, whatever the router sent upstream.
    let Message::ListAgentTeamConf(list) = list_team(&mut sup, 77) else {
        panic!("no LIST_AGENT_TEAM_CONF")
    };
    assert_eq!((list.team_ids.clone(), list.more), (vec![2], 0));
    // The PG's refusal of another team's monitor passes through as it is.
    sup.send(MonitorAgentTeamStartReq {
        invoke_id: 2,
        team_id: 1,
        ..Default::default()
    });
    let refused = reply(&mut sup, 2);
    assert!(
        matches!(&refused, Message::FailureConf(f) if f.status == status::E_CTI_TEAM_NOT_FOUND),
        "{refused:?}"
    );
    sup.send(MonitorAgentTeamStartReq {
        invoke_id: 3,
        team_id: 2,
        ..Default::default()
    });
    let Message::MonitorAgentTeamStartConf(started) = reply(&mut sup, 3) else {
        panic!("no MONITOR_AGENT_TEAM_START_CONF")
    };
    let team_monitor = started.monitor_id;
    // Agents of both teams log in through the router; only team 2's reach
    // the supervisor, on its team monitor.
    let mut a1012 = open(&router, AGENT_DESK, "desk", "1012", "3012");
    let mut a1002 = open(&router, AGENT_DESK, "desk", "1002", "3002");
    set_state(&mut a1002, 1, agent_state::LOGIN);
    set_state(&mut a1012, 1, agent_state::LOGIN);
    let version = sup.version;
    wait(&mut sup, "1012's LOGIN on the team monitor", |f| {
        agent_of(f, version) == Some((team_monitor, "1012".into()))
    });
    // The supervisor's own state change: once, on its own session's
    // MonitorID (the bridge's copy never reaches it).
    set_state(&mut sup, 4, agent_state::LOGIN);
    wait(&mut sup, "1011's own LOGIN", |f| {
        agent_of(f, version) == Some((own_monitor, "1011".into()))
    });
    let later = sup.collect_for(Duration::from_millis(400));
    let seen: Vec<_> = sup
        .log
        .iter()
        .chain(later.iter())
        .filter_map(|f| agent_of(f, version))
        .collect();
    let others: Vec<_> = seen.iter().filter(|(_, id)| id == "1002").collect();
    assert!(others.is_empty(), "another team's agent: {others:?}");
    // 1011 is a member of its team: its state in the team monitor's
    // snapshot, then each change once on its own Client Events and once on
    // the team monitor, and on no other MonitorID (a copy from the bridge
    // would carry one of the router's).
    let own = |monitor: u32| {
        seen.iter()
            .filter(|(m, id)| id == "1011" && *m == monitor)
            .count()
    };
    let all = seen.iter().filter(|(_, id)| id == "1011").count();
    assert!(own(own_monitor) > 0, "{seen:?}");
    assert_eq!(own(own_monitor) + 1, own(team_monitor), "{seen:?}");
    assert_eq!(own(own_monitor) + own(team_monitor), all, "{seen:?}");
    sup.send(MonitorAgentTeamStopReq {
        invoke_id: 5,
        monitor_id: team_monitor,
        ..Default::default()
    });
    assert_eq!(
        reply(&mut sup, 5).message_type(),
        msg::MONITOR_AGENT_TEAM_STOP_CONF
    );
    // A desktop that is not a supervisor's is not sent supervisors' events.
    let agent_log = a1012.collect_for(Duration::from_millis(200));
    assert!(
        !a1012
            .log
            .iter()
            .chain(agent_log.iter())
            .any(|f| frame_type(f) == msg::AGENT_TEAM_CONFIG_EVENT),
        "an agent's desktop got a team configuration"
    );
}

#[test]
fn a_non_supervisor_is_refused_by_the_pg_and_an_unlisted_client_is_not_granted() {
    let pg = quiet_center(BIN);
    let router = router_to(&[pg.addr()], 10);
    // The CTI Server refuses 1012 (not a supervisor): so does the router.
    let mut c = Client::connect(router.addr());
    let refused = c.open_refused(&spec(SUPERVISOR_DESK, "sup", "1012", "3012"));
    assert_eq!(refused, status::E_CTI_FUNCTION_NOT_AVAILABLE);
    c.expect_closed_within(WAIT);
    // A client not listed with Supervisor opens without it, and its
    // supervisor requests get FAILURE_CONF(12) from the router.
    let mut w = Client::connect(router.addr());
    let conf = w.open(&spec(SUPERVISOR_DESK, "watcher", "1011", "3011"));
    assert_eq!(conf.services_granted, service::CLIENT_EVENTS);
    let answer = list_team(&mut w, 9);
    assert!(
        matches!(&answer, Message::FailureConf(f) if f.status == status::E_CTI_FUNCTION_NOT_AVAILABLE),
        "{answer:?}"
    );
}

#[test]
fn barge_in_through_the_router_reaches_both_desktops() {
    let pg = quiet_center(BIN);
    let router = router_to(&[pg.addr()], 10);
    let mut sup = open(
        &router,
        SUPERVISOR_DESK | service::CLIENT_CONTROL,
        "sup",
        "1011",
        "3011",
    );
    let mut agent = open(&router, AGENT_DESK, "desk", "1012", "3012");
    let mut everything = Client::connect(router.addr());
    everything.open_all_events(Version::MAX);
    for (invoke, state) in [(1, agent_state::LOGIN), (2, agent_state::AVAILABLE)] {
        set_state(&mut agent, invoke, state);
        set_state(&mut sup, 100 + invoke, state);
    }
    // SUPERVISOR_ASSIST and EMERGENCY_CALL from the agent reach its
    // supervisor (through its own session) and All Events sessions
    // (through the router's).
    agent.send(EmergencyCallReq {
        invoke_id: 9,
        peripheral_id: PID,
        ..Default::default()
    });
    assert_eq!(
        reply(&mut agent, 9).message_type(),
        msg::EMERGENCY_CALL_CONF
    );
    for desk in [&mut sup, &mut everything] {
        let i = wait(desk, "EMERGENCY_CALL_EVENT", |f| {
            frame_type(f) == msg::EMERGENCY_CALL_EVENT
        });
        let Message::EmergencyCallEvent(e) = decoded(desk, i) else {
            unreachable!()
        };
        assert_eq!(e.agent_id, Some("1012".into()));
    }
    agent.send(SupervisorAssistReq {
        invoke_id: 3,
        peripheral_id: PID,
        ..Default::default()
    });
    assert_eq!(
        reply(&mut agent, 3).message_type(),
        msg::SUPERVISOR_ASSIST_CONF
    );
    for desk in [&mut sup, &mut everything] {
        wait(desk, "SUPERVISOR_ASSIST_EVENT", |f| {
            frame_type(f) == msg::SUPERVISOR_ASSIST_EVENT
        });
    }
    // The agent calls out; once answered, the supervisor barges in.
    barge_in_on_a_call(&mut agent, "3012", &mut sup, 4);
    // Each of those reached the supervisor once: nothing from the bridge.
    let later = sup.collect_for(Duration::from_millis(200));
    for t in [msg::EMERGENCY_CALL_EVENT, msg::SUPERVISOR_ASSIST_EVENT] {
        let n = sup
            .log
            .iter()
            .chain(later.iter())
            .filter(|f| frame_type(f) == t)
            .count();
        assert_eq!(n, 1, "message type {t} reached the supervisor {n} times");
    }
}

#[test]
fn max_supervisor_sessions_bounds_them_and_a_closed_one_frees_its_place() {
    let pg = quiet_center(BIN);
    let router = router_to(&[pg.addr()], 1);
    let mut first = open(&router, SUPERVISOR_DESK, "sup", "1011", "3011");
    let mut second = Client::connect(router.addr());
    let refused = second.open_refused(&spec(SUPERVISOR_DESK, "sup", "1001", "3001"));
    assert_eq!(refused, status::E_CTI_UNSPECIFIED_FAILURE);
    first.close();
    // Its upstream session closes with it, and its place is free again.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let mut again = Client::connect(router.addr());
        let invoke = again.invoke();
        let spec = spec(SUPERVISOR_DESK, "sup", "1001", "3001");
        again.send_at(spec.request(invoke), spec.version);
        let answer = again.reply(invoke);
        match frame_type(&answer) {
            msg::OPEN_CONF => break,
            _ => assert_eq!(
                failure_status(&answer),
                Some(status::E_CTI_UNSPECIFIED_FAILURE)
            ),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the closed supervisor's place never came free"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn failover_reopens_a_supervisors_session_on_the_other_side() {
    let mut a = quiet_center(BIN);
    let b = quiet_center(BIN);
    let router = router_to(&[a.addr(), b.addr()], 10);
    let mut sup = open(&router, SUPERVISOR_DESK, "sup", "1011", "3011");
    assert!(matches!(
        list_team(&mut sup, 1),
        Message::ListAgentTeamConf(_)
    ));
    let before = sup.log.len();
    a.kill();
    // Offline, then online: the router's SYSTEM_EVENTs reach it.
    let version = sup.version;
    let system = |f: &[u8], id: u32| {
        frame_type(f) == msg::SYSTEM_EVENT
            && matches!(decode_strict(f, version), Message::SystemEvent(e) if e.system_event_id == id)
    };
    wait(&mut sup, "SYSTEM_EVENT offline", |f| system(f, 7));
    wait(&mut sup, "SYSTEM_EVENT online", |f| system(f, 8));
    // Its session on side B is open once the team's configuration comes
    // again; then its requests are answered there.
    let i = wait(&mut sup, "AGENT_TEAM_CONFIG_EVENT from side B", |f| {
        frame_type(f) == msg::AGENT_TEAM_CONFIG_EVENT
    });
    assert!(i >= before);
    assert!(matches!(
        list_team(&mut sup, 2),
        Message::ListAgentTeamConf(_)
    ));
}

#[test]
fn a_site_supervisors_team_list_comes_in_segments_through_the_router() {
    // 700 agents: 70 teams, all supervised by 1001, listed 64 per CONF.
    let args = [
        "--agents",
        "700",
        "--manual-agents",
        "700",
        "--calls-per-sec",
        "0",
    ];
    let pg = sim_pg(BIN, &args);
    let router = router_to(&[pg.addr()], 10);
    let mut site = open(&router, SUPERVISOR_DESK, "sup", "1001", "3001");
    for invoke in [5, 6] {
        site.send(ListAgentTeamReq {
            invoke_id: invoke,
            supervisor_id: 5001,
        });
        let mut teams = Vec::new();
        for segment in 1..=2u16 {
            let Message::ListAgentTeamConf(conf) = reply(&mut site, invoke) else {
                panic!("no LIST_AGENT_TEAM_CONF segment {segment}")
            };
            assert_eq!(conf.segment_number, segment);
            assert_eq!(conf.more, u16::from(segment == 1), "segment {segment}");
            teams.extend(conf.team_ids);
        }
        assert_eq!(teams, (1..=70).collect::<Vec<u32>>(), "request {invoke}");
    }
}
