//! `ctirouter watch --team TEAM_ID --agent SUPERVISOR` against `sim-pg`: a
//! supervisor's session prints its team's configuration and its members'
//! states live (a state change made by one of them shows), nothing of
//! another team's agents, and stops the team monitor before closing on
//! Ctrl-C; a non-supervisor, or a team the supervisor does not have, is a
//! clear error and a non-zero exit.
//!
//! `--agents 20 --manual-agents 20`, no calls: two teams of ten, supervised
//! by 1001 (team 1, and the site supervisor of every team) and 1011 (team 2).

use std::time::{Duration, Instant};

use crate::BIN;
use ctirouter::proto::constants::{agent_state, service};
use serde_json::Value;
use testkit::*;

/// Team 1's agents that are not also in team 2 (1001 supervises both).
const TEAM_1_ONLY: [&str; 9] = [
    "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1009", "1010",
];

fn quiet_center() -> Proc {
    testkit::quiet_center(BIN)
}

fn watch_team(pg: &Proc, team: &str, agent: &str, instrument: &str, extra: &[&str]) -> Proc {
    let addr = pg.addr().to_string();
    let mut args = vec![
        "watch",
        "--connect",
        addr.as_str(),
        "--team",
        team,
        "--agent",
        agent,
        "--instrument",
        instrument,
    ];
    args.extend_from_slice(extra);
    Proc::spawn(BIN, &args)
}

/// Read stdout lines into `seen` until one (from `from` on) satisfies
/// `wanted`; its index.
fn until(
    w: &mut Proc,
    seen: &mut Vec<String>,
    from: usize,
    what: &str,
    wanted: impl Fn(&str) -> bool,
) -> usize {
    if let Some(i) = seen.iter().skip(from).position(|l| wanted(l)) {
        return from + i;
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(line) = w.next_line(left) else {
            panic!(
                "no {what} within {WAIT:?}; stdout:\n{}\nstderr:\n{}",
                seen.join("\n"),
                w.stderr_text()
            );
        };
        seen.push(line);
        if wanted(seen.last().unwrap()) {
            return seen.len() - 1;
        }
    }
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// A JSON team line of `watch --team`: (type, agent, state, reason).
fn team_state(line: &str) -> Option<(String, String, u64)> {
    let v = parse(line);
    if v["team"] != 2 || v["type"] != "AGENT_STATE_EVENT" {
        return None;
    }
    Some((
        v["agent_id"].as_str()?.to_string(),
        v["state"].as_str()?.to_string(),
        v["reason_code"].as_u64()?,
    ))
}

fn agent_desk(pg: &Proc, agent: &str, instrument: &str) -> Client {
    let mut c = Client::connect(pg.addr());
    let services = service::CLIENT_EVENTS | service::CLIENT_CONTROL;
    let spec = OpenSpec {
        agent_id: Some(agent.into()),
        agent_instrument: Some(instrument.into()),
        peripheral_id: PID,
        ..OpenSpec::new(v24(), services).client(&format!("desk{agent}"), b"")
    };
    assert_eq!(c.open(&spec).services_granted, services);
    c
}

fn set_state(c: &mut Client, invoke: u32, state: u16, reason: u16) {
    set_agent_state(c, invoke, state, reason)
}

#[test]
fn the_team_is_shown_live_and_no_other_team() {
    let pg = quiet_center();
    let mut w = watch_team(&pg, "2", "1011", "3011", &["--json"]);
    let mut seen = Vec::new();
    // The configuration, then each member's current state (all logged out).
    let config = until(&mut w, &mut seen, 0, "team 2's configuration", |l| {
        let v = parse(l);
        v["team"] == 2 && v["type"] == "AGENT_TEAM_CONFIG_EVENT"
    });
    let members: Vec<String> = parse(&seen[config])["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| Some(m["agent_id"].as_str()?.to_string()))
        .collect();
    assert_eq!(members.len(), 11, "1011..1020 and the site supervisor 1001");
    assert!(members.iter().any(|m| m == "1013") && members.iter().any(|m| m == "1001"));
    until(&mut w, &mut seen, 0, "1013's state", |l| {
        team_state(l).is_some_and(|(agent, state, _)| agent == "1013" && state == "LOGOUT")
    });
    // Agents of both teams change state; only team 2's show.
    let mut a1003 = agent_desk(&pg, "1003", "3003");
    set_state(&mut a1003, 1, agent_state::LOGIN, 0);
    let mut a1013 = agent_desk(&pg, "1013", "3013");
    let before = seen.len();
    set_state(&mut a1013, 1, agent_state::LOGIN, 0);
    set_state(&mut a1013, 2, agent_state::NOT_READY, 7);
    until(&mut w, &mut seen, before, "1013 NOT_READY, reason 7", |l| {
        team_state(l) == Some(("1013".into(), "NOT_READY".into(), 7))
    });
    set_state(&mut a1003, 2, agent_state::NOT_READY, 3);
    // Whatever else comes within a moment.
    while let Some(line) = w.next_line(Duration::from_millis(500)) {
        seen.push(line);
    }
    for line in &seen {
        let v = parse(line);
        for agent in TEAM_1_ONLY {
            assert!(
                !line.contains(&format!("\"{agent}\"")),
                "team 1's {agent}: {line}"
            );
        }
        if v.get("team").is_some() {
            assert_eq!(v["team"], 2, "{line}");
        }
    }
    w.signal(libc::SIGINT);
    let status = w.wait_exit(Duration::from_secs(8));
    let err = w.stderr_text();
    assert!(status.success(), "exit {status:?}; stderr:\n{err}");
    for said in [
        "MONITOR_AGENT_TEAM_START_REQ sent for team 2",
        "MONITOR_AGENT_TEAM_STOP_REQ sent",
        "team monitor stopped",
        "CLOSE_CONF received",
    ] {
        assert!(err.contains(said), "{said:?} not in:\n{err}");
    }
}

#[test]
fn readable_team_lines_stand_out() {
    let pg = quiet_center();
    let mut w = watch_team(&pg, "2", "1011", "3011", &[]);
    let mut seen = Vec::new();
    until(&mut w, &mut seen, 0, "the CONFIG line", |l| {
        l.starts_with("TEAM 2 CONFIG name=\"Team 2\" agents=11")
    });
    until(&mut w, &mut seen, 0, "1011's MEMBER line", |l| {
        l.starts_with("TEAM 2 MEMBER agent=1011 state=LOGOUT") && l.contains("primary-supervisor")
    });
    until(&mut w, &mut seen, 0, "1020's STATE line", |l| {
        l.starts_with("TEAM 2 STATE agent=1020 state=LOGOUT reason=0")
    });
    w.signal(libc::SIGTERM);
    let status = w.wait_exit(Duration::from_secs(8));
    assert!(status.success(), "{}", w.stderr_text());
}

#[test]
fn a_non_supervisor_or_another_team_is_a_clear_error() {
    let pg = quiet_center();
    // 1013 supervises nothing: the OPEN_REQ asking for Supervisor is refused.
    let mut w = watch_team(&pg, "2", "1013", "3013", &["--json"]);
    let status = w.wait_exit(Duration::from_secs(8));
    let err = w.stderr_text();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("OPEN_REQ refused"), "{err}");
    assert!(err.contains("E_CTI_FUNCTION_NOT_AVAILABLE"), "{err}");
    assert!(err.contains("supervisor's agent (is 1013 one?)"), "{err}");
    assert!(w.next_line(Duration::from_millis(100)).is_none());
    // 1011 does not supervise team 1: the start is refused.
    let mut w = watch_team(&pg, "1", "1011", "3011", &[]);
    let status = w.wait_exit(Duration::from_secs(8));
    let err = w.stderr_text();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("MONITOR_AGENT_TEAM_START_REQ for team 1 refused")
            && err.contains("E_CTI_TEAM_NOT_FOUND"),
        "{err}"
    );
}
