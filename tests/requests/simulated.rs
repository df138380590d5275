//! The built-in simulated PG as the router's upstream (docs/requests.md §9):
//! a desktop drives a manual agent end to end through `ctirouter serve`,
//! raw bytes on loopback, at v19 and v24; an All Events session sees the
//! events and none of the desktop's confirmations.

use crate::BIN;
use std::time::Duration;

use ctirouter::proto::constants::{agent_state, msg, service};
use ctirouter::proto::msg::*;
use ctirouter::proto::{CtiString, Message, Version};
use testkit::*;

/// 4 agents, the last ("1004", instrument "3004") manual and alone in its
/// primary skill group, so a quarter of the calls ring at it.
const SIM: &[&str] = &[
    "--sim-seed",
    "11",
    "--sim-agents",
    "4",
    "--manual-agents",
    "1",
    "--sim-calls-per-sec",
    "1",
    "--sim-speed",
    "4",
];

const LONG: Duration = Duration::from_secs(20);

fn s(text: &str) -> Option<CtiString> {
    Some(CtiString::from(text))
}

fn decoded(frame: &[u8], version: Version) -> Message {
    decode_strict(frame, version)
}

/// The next event matching `pred` (decoded), within [`LONG`].
fn event(client: &mut Client, what: &str, pred: impl Fn(&Message) -> bool) -> Message {
    let version = client.version;
    let at = client
        .wait_for(what, LONG, |f| {
            !is_reply(frame_type(f)) && pred(&decoded(f, version))
        })
        .unwrap_or_else(|e| panic!("no {what}: {e:?}"));
    decoded(&client.log[at], version)
}

fn agent_state_is(state: u16) -> impl Fn(&Message) -> bool {
    move |m| matches!(m, Message::AgentStateEvent(e) if e.agent_id == s("1004") && e.agent_state == state)
}

/// Send `request` and return its answer (decoded at the session's version).
fn ask(client: &mut Client, request: impl Into<Message>, invoke_id: u32) -> Message {
    client.send(request);
    let reply = client.reply(invoke_id);
    decoded(&reply, client.version)
}

fn drive_one_agent(version: Version) {
    let router = RouterProcess::start(BIN, SIM);
    let mut wallboard = router.client();
    wallboard.open_all_events(Version::MAX);
    let spec = OpenSpec {
        agent_id: Some("1004".into()),
        agent_instrument: Some("3004".into()),
        peripheral_id: PID,
        ..OpenSpec::new(
            version,
            service::CLIENT_EVENTS | service::CLIENT_CONTROL | service::CALL_DATA_UPDATE,
        )
    };
    let mut desk = router.client();
    let conf = desk.open(&spec);
    assert_eq!(
        conf.services_granted, spec.services,
        "the built-in simulator serves Client Control and Call Data Update"
    );

    // Log in and go ready: the CONF, then the agent's states.
    let login = SetAgentStateReq {
        invoke_id: 1,
        peripheral_id: PID,
        agent_state: agent_state::LOGIN,
        ..Default::default()
    };
    let answer = ask(&mut desk, login, 1);
    assert_eq!(
        answer.message_type(),
        msg::SET_AGENT_STATE_CONF,
        "{answer:?}"
    );
    event(
        &mut desk,
        "NOT_READY after login",
        agent_state_is(agent_state::NOT_READY),
    );
    let ready = SetAgentStateReq {
        invoke_id: 2,
        peripheral_id: PID,
        agent_state: agent_state::AVAILABLE,
        ..Default::default()
    };
    assert_eq!(
        ask(&mut desk, ready, 2).message_type(),
        msg::SET_AGENT_STATE_CONF
    );
    event(
        &mut desk,
        "AVAILABLE",
        agent_state_is(agent_state::AVAILABLE),
    );

    // A customer call rings at the instrument until the desktop answers.
    let delivered = event(
        &mut desk,
        "a call ringing at 3004",
        |m| matches!(m, Message::CallDeliveredEvent(e) if e.alerting_device_id == s("3004")),
    );
    let Message::CallDeliveredEvent(delivered) = delivered else {
        unreachable!()
    };
    let call = delivered.connection_call_id;
    let answer_req = AnswerCallReq {
        invoke_id: 3,
        peripheral_id: PID,
        connection_call_id: call,
        connection_device_id_type: delivered.connection_device_id_type,
        connection_device_id: delivered.connection_device_id.clone(),
        ..Default::default()
    };
    assert_eq!(
        ask(&mut desk, answer_req, 3).message_type(),
        msg::ANSWER_CALL_CONF
    );
    event(
        &mut desk,
        "CALL_ESTABLISHED",
        |m| matches!(m, Message::CallEstablishedEvent(e) if e.connection_call_id == call),
    );
    event(&mut desk, "TALKING", agent_state_is(agent_state::TALKING));

    // Hold, retrieve, set call data.
    let hold = HoldCallReq {
        invoke_id: 4,
        peripheral_id: PID,
        connection_call_id: call,
        connection_device_id_type: delivered.connection_device_id_type,
        connection_device_id: delivered.connection_device_id.clone(),
        ..Default::default()
    };
    assert_eq!(ask(&mut desk, hold, 4).message_type(), msg::HOLD_CALL_CONF);
    event(&mut desk, "CALL_HELD", |m| {
        m.message_type() == msg::CALL_HELD_EVENT
    });
    let retrieve = RetrieveCallReq {
        invoke_id: 5,
        peripheral_id: PID,
        held_connection_call_id: call,
        held_connection_device_id_type: delivered.connection_device_id_type,
        held_connection_device_id: delivered.connection_device_id.clone(),
        ..Default::default()
    };
    assert_eq!(
        ask(&mut desk, retrieve, 5).message_type(),
        msg::RETRIEVE_CALL_CONF
    );
    let data = SetCallDataReq {
        invoke_id: 6,
        peripheral_id: PID,
        connection_call_id: call,
        connection_device_id_type: delivered.connection_device_id_type,
        connection_device_id: delivered.connection_device_id.clone(),
        call_variable_3: s("ABC"),
        ..Default::default()
    };
    assert_eq!(
        ask(&mut desk, data, 6).message_type(),
        msg::SET_CALL_DATA_CONF
    );
    event(
        &mut desk,
        "CALL_DATA_UPDATE with the new variable",
        |m| matches!(m, Message::CallDataUpdateEvent(e) if e.call_variable_3 == s("ABC")),
    );

    // An illegal request: the PG's code comes back to the desktop alone.
    let again = AnswerCallReq {
        invoke_id: 7,
        peripheral_id: PID,
        connection_call_id: call,
        connection_device_id_type: delivered.connection_device_id_type,
        connection_device_id: delivered.connection_device_id.clone(),
        ..Default::default()
    };
    match ask(&mut desk, again, 7) {
        Message::ControlFailureConf(f) => assert_eq!(f.failure_code, 28, "no call to answer"),
        other => panic!("{other:?}"),
    }

    // Hang up: the call ends and the agent wraps up.
    let hangup = ClearConnectionReq {
        invoke_id: 8,
        peripheral_id: PID,
        connection_call_id: call,
        connection_device_id_type: delivered.connection_device_id_type,
        connection_device_id: delivered.connection_device_id.clone(),
        ..Default::default()
    };
    assert_eq!(
        ask(&mut desk, hangup, 8).message_type(),
        msg::CLEAR_CONNECTION_CONF
    );
    event(
        &mut desk,
        "END_CALL",
        |m| matches!(m, Message::EndCallEvent(e) if e.connection_call_id == call),
    );
    event(
        &mut desk,
        "WORK_READY",
        agent_state_is(agent_state::WORK_READY),
    );

    // The wallboard saw the desktop's call and none of its answers.
    event(
        &mut wallboard,
        "the call's END_CALL on All Events",
        |m| matches!(m, Message::EndCallEvent(e) if e.connection_call_id == call),
    );
    let replies: Vec<u32> = wallboard
        .log
        .iter()
        .map(|f| frame_type(f))
        .filter(|&t| is_reply(t) && t != msg::OPEN_CONF)
        .collect();
    assert!(
        replies.is_empty(),
        "an All Events session got replies it did not ask for: {replies:?}"
    );
}

#[test]
fn a_desktop_drives_a_simulated_agent_end_to_end_at_v24() {
    drive_one_agent(Version::MAX);
}

#[test]
fn a_desktop_drives_a_simulated_agent_end_to_end_at_v19() {
    drive_one_agent(Version::new(19).expect("a served version"));
}
