//! `ctirouter sim-pg` answering requests like a CTI Server (docs/requests.md
//! §9): a desktop (Client Events + Client Control) drives the manual agent
//! end to end and gets its own answers with its own InvokeIDs while an All
//! Events client sees the events and none of those answers; the Client
//! Events scope rule and device control; `--grant`, `--drop-replies` and
//! `--reply-delay-ms`; USER_MESSAGE delivered to the addressed sessions and
//! the Miscellaneous queries answered.
//!
//! `--agents 4 --manual-agents 1`: agents 1001..1003 act on their own, 1004
//! (instrument 3004) only on requests.

use std::time::{Duration, Instant};

use crate::BIN;
use ctirouter::proto::constants::{agent_state, control_failure, msg, service, status};
use ctirouter::proto::msg::*;
use ctirouter::proto::{Message, Version};
use testkit::*;

const DESK: u32 = service::CLIENT_EVENTS | service::CLIENT_CONTROL;
const AGENT: &str = "1004";
const INSTRUMENT: &str = "3004";
/// How long a call may take to reach the ready manual agent.
const RING_WAIT: Duration = Duration::from_secs(30);

/// A small center with one manual agent, calls often enough to reach it.
fn center(extra: &[&str]) -> Proc {
    let mut args = vec![
        "--agents",
        "4",
        "--manual-agents",
        "1",
        "--calls-per-sec",
        "1",
        "--seed",
        "3",
        "--speed",
        "2",
    ];
    args.extend_from_slice(extra);
    sim_pg(BIN, &args)
}

/// The desktop's OPEN_REQ: Client Events (+ `services`) for the manual agent.
fn desk_spec(version: Version, services: u32, client_id: &str) -> OpenSpec {
    OpenSpec {
        agent_id: Some(AGENT.into()),
        agent_instrument: Some(INSTRUMENT.into()),
        peripheral_id: PID,
        ..OpenSpec::new(version, services).client(client_id, b"")
    }
}

/// A desktop session; returns it and its OPEN_CONF.
fn desk(pg: &Proc, version: Version, services: u32) -> (Client, OpenConf) {
    let mut c = Client::connect(pg.addr());
    let conf = c.open(&desk_spec(version, services, "desk"));
    (c, conf)
}

/// SET_AGENT_STATE_REQ naming no agent: the session's is filled in.
fn set_state(invoke_id: u32, state: u16) -> SetAgentStateReq {
    SetAgentStateReq {
        invoke_id,
        peripheral_id: PID,
        agent_state: state,
        ..Default::default()
    }
}

fn is_reply_to(f: &[u8], invoke: u32) -> bool {
    is_reply(frame_type(f)) && be32(f, 8) == invoke
}

/// AgentState of an AGENT_STATE_EVENT for `agent` (at `version`).
fn agent_state_of(f: &[u8], version: Version, agent: &str) -> Option<u16> {
    if frame_type(f) != msg::AGENT_STATE_EVENT {
        return None;
    }
    match decode_strict(f, version) {
        Message::AgentStateEvent(e) if e.agent_id == Some(agent.into()) => Some(e.agent_state),
        _ => None,
    }
}

/// Wait (up to `timeout`) for `pred` in the client's log; its index.
fn wait(c: &mut Client, what: &str, timeout: Duration, pred: impl Fn(&[u8]) -> bool) -> usize {
    c.wait_for(what, timeout, pred).unwrap_or_else(|end| {
        panic!(
            "no {what} within {timeout:?} ({end:?}); since the cursor: {}",
            c.log[c.cursor..]
                .iter()
                .map(|f| describe(f))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// Index of the first frame in `log` that satisfies `pred`.
fn index_of(log: &[Vec<u8>], pred: impl Fn(&[u8]) -> bool) -> Option<usize> {
    log.iter().position(|f| pred(f))
}

/// The reply to `invoke`, waited for in the log (the cursor moves past it).
fn reply(c: &mut Client, invoke: u32) -> Message {
    let version = c.version;
    let i = wait(c, &format!("reply to {invoke}"), WAIT, |f| {
        is_reply_to(f, invoke)
    });
    decode_strict(&c.log[i], version)
}

fn control_failure_code(m: &Message) -> Option<u16> {
    match m {
        Message::ControlFailureConf(f) => Some(f.failure_code),
        _ => None,
    }
}

fn failure_conf_status(m: &Message) -> Option<u32> {
    match m {
        Message::FailureConf(f) => Some(f.status),
        _ => None,
    }
}

#[test]
fn a_desktop_drives_its_agent_and_only_it_gets_its_answers() {
    let pg = center(&[]);
    // The observer may act on any agent (All Events with Client Control).
    let mut observer = Client::connect(pg.addr());
    let watching = service::ALL_EVENTS | service::CLIENT_CONTROL;
    let conf = observer.open(&OpenSpec::new(v24(), watching));
    assert_eq!(conf.services_granted, watching);
    observer.expect_system_event();
    // The desktop at another version than the observer: answers and events
    // are encoded at each session's own.
    let (mut desk, conf) = desk(&pg, v(20), DESK);
    assert_eq!(conf.services_granted, DESK);
    assert_ne!(conf.monitor_id, 0, "the Client Events monitor");
    assert_eq!(
        conf.agent_state,
        agent_state::LOGOUT,
        "a manual agent starts out"
    );
    let dv = desk.version;

    // The same InvokeID from both clients: each gets its own answer.
    desk.send(set_state(7, agent_state::LOGIN));
    observer.send(QueryAgentStateReq {
        invoke_id: 7,
        peripheral_id: PID,
        agent_id: Some("1001".into()),
        ..Default::default()
    });
    let sent = desk.cursor;
    wait(&mut desk, "NOT_READY", WAIT, |f| {
        agent_state_of(f, dv, AGENT) == Some(agent_state::NOT_READY)
    });
    let log = &desk.log[sent..];
    let answer = index_of(log, |f| is_reply_to(f, 7)).expect("the answer to 7");
    let login = index_of(log, |f| {
        agent_state_of(f, dv, AGENT) == Some(agent_state::LOGIN)
    })
    .expect("1004 LOGIN");
    assert!(
        answer < login,
        "the CONF goes out before the events the request caused"
    );
    assert!(
        matches!(
            decode_strict(&log[answer], dv),
            Message::SetAgentStateConf(_)
        ),
        "{}",
        describe(&log[answer])
    );
    assert_eq!(monitor_id(&log[login]), Some(conf.monitor_id));
    assert!(
        agent_session_id(&log[login]).is_some_and(|id| id != 0),
        "a Client Events copy of AGENT_STATE_EVENT carries the session's id"
    );
    match reply(&mut observer, 7) {
        Message::QueryAgentStateConf(q) => assert_eq!(q.agent_id, Some("1001".into())),
        other => panic!("the observer's own answer: {other:?}"),
    }

    // Ready: a customer call rings at the instrument and waits for the desk.
    desk.send(set_state(8, agent_state::AVAILABLE));
    assert!(matches!(reply(&mut desk, 8), Message::SetAgentStateConf(_)));
    let ring = wait(&mut desk, "a call ringing at 3004", RING_WAIT, |f| {
        frame_type(f) == msg::CALL_DELIVERED_EVENT
            && matches!(decode_strict(f, dv), Message::CallDeliveredEvent(e)
                if e.alerting_device_id == Some(INSTRUMENT.into()))
    });
    let Message::CallDeliveredEvent(delivered) = decode_strict(&desk.log[ring], dv) else {
        unreachable!()
    };
    assert_eq!(monitor_id(&desk.log[ring]), Some(conf.monitor_id));
    desk.send(AnswerCallReq {
        invoke_id: 9,
        peripheral_id: PID,
        connection_call_id: delivered.connection_call_id,
        connection_device_id_type: delivered.connection_device_id_type,
        connection_device_id: delivered.connection_device_id.clone(),
        ..Default::default()
    });
    assert!(matches!(reply(&mut desk, 9), Message::AnswerCallConf(_)));
    let is_established = |f: &[u8], version| {
        frame_type(f) == msg::CALL_ESTABLISHED_EVENT
            && matches!(decode_strict(f, version), Message::CallEstablishedEvent(e)
                if e.connection_call_id == delivered.connection_call_id)
    };
    wait(&mut desk, "CALL_ESTABLISHED", WAIT, |f| {
        is_established(f, dv)
    });
    wait(&mut desk, "TALKING", WAIT, |f| {
        agent_state_of(f, dv, AGENT) == Some(agent_state::TALKING)
    });

    // The observer saw the desk's agent and call, and no answer but its own.
    let ov = observer.version;
    wait(&mut observer, "1004 TALKING", WAIT, |f| {
        agent_state_of(f, ov, AGENT) == Some(agent_state::TALKING)
    });
    observer.cursor = 0;
    wait(&mut observer, "1004 LOGIN", WAIT, |f| {
        agent_state_of(f, ov, AGENT) == Some(agent_state::LOGIN)
    });
    wait(&mut observer, "the answered call", WAIT, |f| {
        is_established(f, ov)
    });
    observer.drain_for(Duration::from_millis(300));
    let replies: Vec<String> = observer
        .log
        .iter()
        .filter(|f| is_reply(frame_type(f)))
        .map(|f| describe(f))
        .collect();
    assert_eq!(
        replies.len(),
        2,
        "OPEN_CONF and its own QUERY_AGENT_STATE_CONF only: {replies:?}"
    );
    assert!(desk
        .log
        .iter()
        .all(|f| frame_type(f) != msg::QUERY_AGENT_STATE_CONF));
}

#[test]
fn client_events_sessions_act_only_on_their_own_agent_and_calls() {
    let pg = center(&[]);
    let (mut desk, _) = desk(&pg, v24(), DESK | service::CALL_DATA_UPDATE);
    // Another agent's instrument, or AgentID: CF_PRIVILEGE_VIOLATION_ON_SPECIFIED_DEVICE.
    desk.send(SetAgentStateReq {
        agent_instrument: Some("3001".into()),
        ..set_state(21, agent_state::NOT_READY)
    });
    let m = reply(&mut desk, 21);
    assert_eq!(
        control_failure_code(&m),
        Some(control_failure::CF_PRIVILEGE_VIOLATION_ON_SPECIFIED_DEVICE),
        "{m:?}"
    );
    desk.send(QueryAgentStateReq {
        invoke_id: 22,
        peripheral_id: PID,
        agent_id: Some("1002".into()),
        ..Default::default()
    });
    let m = reply(&mut desk, 22);
    assert_eq!(control_failure_code(&m), Some(8), "{m:?}");
    // A call its device is not in: Call Data Update answers FAILURE_CONF.
    desk.send(SetCallDataReq {
        invoke_id: 23,
        peripheral_id: PID,
        connection_call_id: 0x0100_0001,
        connection_device_id_type: 1,
        connection_device_id: Some("T1".into()),
        call_variable_1: Some("x".into()),
        ..Default::default()
    });
    let m = reply(&mut desk, 23);
    assert_eq!(
        failure_conf_status(&m),
        Some(status::E_CTI_NOT_CALL_PARTY),
        "{m:?}"
    );
    // Its own agent, named or not: answered by the simulated PG.
    desk.send(QueryAgentStateReq {
        invoke_id: 24,
        peripheral_id: PID,
        agent_id: Some(AGENT.into()),
        ..Default::default()
    });
    match reply(&mut desk, 24) {
        Message::QueryAgentStateConf(q) => {
            assert_eq!(q.agent_state, agent_state::LOGOUT);
            assert_eq!(q.agent_instrument, Some(INSTRUMENT.into()));
        }
        other => panic!("{other:?}"),
    }

    // Its instrument is controlled by its ClientID: another is refused.
    let mut other = Client::connect(pg.addr());
    let refused = other.open_refused(&desk_spec(v24(), DESK, "another"));
    assert_eq!(refused, status::E_CTI_DEVICE_IN_USE);
    other.expect_closed_within(WAIT);
    let mut same = Client::connect(pg.addr());
    let conf = same.open(&desk_spec(v24(), DESK, "desk"));
    assert_eq!(conf.services_granted, DESK);
    // Without control, anyone may watch the agent.
    let mut watcher = Client::connect(pg.addr());
    let conf = watcher.open(&desk_spec(v24(), service::CLIENT_EVENTS, "another"));
    assert_eq!(conf.services_granted, service::CLIENT_EVENTS);
}

#[test]
fn grant_limits_what_is_granted_and_requests_of_the_rest_are_refused() {
    // 0x1 = Client Events only (All Events is 0x10).
    let pg = center(&["--grant", "0x1"]);
    let (mut desk, conf) = desk(&pg, v24(), DESK);
    assert_eq!(conf.services_granted, service::CLIENT_EVENTS);
    desk.send(set_state(31, agent_state::LOGIN));
    let m = reply(&mut desk, 31);
    assert_eq!(
        failure_conf_status(&m),
        Some(status::E_CTI_FUNCTION_NOT_AVAILABLE),
        "{m:?}"
    );
    let mut all = Client::connect(pg.addr());
    let refused = all.open_refused(&OpenSpec::new(v24(), service::ALL_EVENTS));
    assert_eq!(
        refused,
        status::E_CTI_FUNCTION_NOT_AVAILABLE,
        "nothing to grant"
    );

    // All Events only, in decimal: control refused, the events flow.
    let pg = center(&["--grant", "16"]);
    let mut c = Client::connect(pg.addr());
    let conf = c.open(&OpenSpec::new(
        v24(),
        service::ALL_EVENTS | service::CLIENT_CONTROL,
    ));
    assert_eq!(conf.services_granted, service::ALL_EVENTS);
    c.send(SetAgentStateReq {
        agent_id: Some(AGENT.into()),
        agent_instrument: Some(INSTRUMENT.into()),
        ..set_state(32, agent_state::LOGIN)
    });
    let m = reply(&mut c, 32);
    assert_eq!(
        failure_conf_status(&m),
        Some(status::E_CTI_FUNCTION_NOT_AVAILABLE),
        "{m:?}"
    );
    wait(&mut c, "an agent event", WAIT, |f| {
        frame_type(f) == msg::AGENT_STATE_EVENT
    });
}

#[test]
fn dropped_answers_never_arrive_but_the_events_do() {
    let pg = center(&["--drop-replies", "100"]);
    let (mut desk, _) = desk(&pg, v24(), DESK);
    desk.send(set_state(41, agent_state::LOGIN));
    wait(&mut desk, "LOGIN", WAIT, |f| {
        agent_state_of(f, v24(), AGENT) == Some(agent_state::LOGIN)
    });
    wait(&mut desk, "NOT_READY", WAIT, |f| {
        agent_state_of(f, v24(), AGENT) == Some(agent_state::NOT_READY)
    });
    desk.drain_for(Duration::from_millis(1500));
    assert!(
        !desk.log.iter().any(|f| is_reply_to(f, 41)),
        "an answer came through --drop-replies 100"
    );
    // More requests than a session may have in flight: each lost answer
    // ends its request, so none is refused as busy, and none is answered.
    // (One at a time: a burst over the session's max_outstanding would get
    // CF_SERVICE_BUSY from the session layer, as from the router.)
    for invoke in 42..54 {
        desk.send(QueryAgentStateReq {
            invoke_id: invoke,
            peripheral_id: PID,
            ..Default::default()
        });
        desk.heartbeat_keeping_events();
    }
    desk.drain_for(Duration::from_millis(500));
    let answered: Vec<String> = desk
        .log
        .iter()
        .filter(|f| is_reply(frame_type(f)) && (41..54).contains(&be32(f, 8)))
        .map(|f| describe(f))
        .collect();
    assert!(answered.is_empty(), "answered: {answered:?}");
}

#[test]
fn delayed_answers_arrive_no_sooner_than_the_delay_and_after_the_events() {
    let pg = center(&["--reply-delay-ms", "300"]);
    let (mut desk, _) = desk(&pg, v24(), DESK);
    let start = desk.cursor;
    let sent = Instant::now();
    desk.send(set_state(51, agent_state::LOGIN));
    let i = wait(&mut desk, "the answer", WAIT, |f| is_reply_to(f, 51));
    let took = sent.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "answered after {took:?}"
    );
    assert_eq!(frame_type(&desk.log[i]), msg::SET_AGENT_STATE_CONF);
    // The events the request caused were not held back.
    assert!(
        desk.log[start..i]
            .iter()
            .any(|f| agent_state_of(f, v24(), AGENT) == Some(agent_state::NOT_READY)),
        "the events come before the held answer"
    );
}

/// USER_MESSAGE_EVENT of `sender` with `text` at `version`.
fn is_user_message(f: &[u8], version: Version, sender: &str, text: &str) -> bool {
    frame_type(f) == msg::USER_MESSAGE_EVENT
        && matches!(decode_strict(f, version), Message::UserMessageEvent(e)
            if e.client_id == Some(sender.into()) && e.text == Some(text.into()))
}

#[test]
fn user_messages_reach_the_addressed_sessions_and_miscellaneous_queries_are_answered() {
    let pg = center(&[]);
    let watcher = |version, client_id| {
        let mut c = Client::connect(pg.addr());
        let conf = c.open(&OpenSpec::new(version, service::ALL_EVENTS).client(client_id, b""));
        assert_eq!(conf.services_granted, service::ALL_EVENTS);
        c
    };
    let mut sender = watcher(v(14), "wallboard");
    let mut recorders = [watcher(v(19), "recorder"), watcher(v24(), "recorder")];
    let mut crm = watcher(v(19), "crm");
    let message = |invoke_id, distribution, to: Option<&str>, text: &str| UserMessageReq {
        invoke_id,
        peripheral_id: PID,
        distribution,
        client_id: to.map(Into::into),
        text: Some(text.into()),
        ..Default::default()
    };
    sender.send_at(message(5, 0, Some("recorder"), "to the recorders"), v(14));
    assert_eq!(reply(&mut sender, 5).message_type(), msg::USER_MESSAGE_CONF);
    for r in &mut recorders {
        let version = r.version;
        wait(r, "the message", WAIT, |f| {
            is_user_message(f, version, "wallboard", "to the recorders")
        });
    }
    sender.send_at(message(6, 0, Some("nobody"), "lost"), v(14));
    assert_eq!(
        failure_conf_status(&reply(&mut sender, 6)),
        Some(status::E_CTI_CLIENT_NOT_FOUND)
    );
    sender.send_at(message(7, 1, None, "boss"), v(14));
    assert_eq!(
        failure_conf_status(&reply(&mut sender, 7)),
        Some(status::E_CTI_SUPERVISOR_NOT_FOUND)
    );
    // To everyone: every session, the sender too; crm got nothing before.
    sender.send_at(message(8, 3, None, "all hands"), v(14));
    assert_eq!(reply(&mut sender, 8).message_type(), msg::USER_MESSAGE_CONF);
    let [r19, r24] = &mut recorders;
    for (c, expected) in [(r19, 1), (r24, 1), (&mut sender, 0), (&mut crm, 0)] {
        let version = c.version;
        let at = wait(c, "the broadcast", WAIT, |f| {
            is_user_message(f, version, "wallboard", "all hands")
        });
        let before = c.log[..at]
            .iter()
            .filter(|f| frame_type(f) == msg::USER_MESSAGE_EVENT)
            .count();
        assert_eq!(before, expected, "port {}", c.port);
    }

    // Statistics and desk settings, from the simulated world.
    sender.send_at(
        QueryAgentStatisticsReq {
            invoke_id: 9,
            peripheral_id: PID,
            agent_id: Some("1001".into()),
            ..Default::default()
        },
        v(14),
    );
    match reply(&mut sender, 9) {
        Message::QueryAgentStatisticsConf(c) => {
            assert_eq!(c.agent_instrument, Some("3001".into()));
            assert!(c.statistics.get("logged_on_time_today").is_some());
        }
        other => panic!("{other:?}"),
    }
    sender.send_at(
        QuerySkillGroupStatisticsReq {
            invoke_id: 10,
            peripheral_id: PID,
            skill_group_number: 101,
            skill_group_id: 0xFFFF_FFFF,
        },
        v(14),
    );
    match reply(&mut sender, 10) {
        Message::QuerySkillGroupStatisticsConf(c) => {
            assert_eq!(c.skill_group_id, 5101);
            assert!(c.statistics.get("agents_logged_on").unwrap() <= 2);
        }
        other => panic!("{other:?}"),
    }
    sender.send_at(
        AgentDeskSettingsReq {
            invoke_id: 11,
            peripheral_id: PID,
            agent_id: Some("9999".into()),
        },
        v(14),
    );
    assert_eq!(
        failure_conf_status(&reply(&mut sender, 11)),
        Some(status::E_CTI_INVALID_AGENT_DATA)
    );
}
