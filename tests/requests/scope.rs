//! Scope (docs/requests.md §4) on the routing cores in memory: a Client
//! Events session acts only on its own agent, its device and the calls the
//! device takes part in; its requests are completed with its agent before
//! they go upstream.

use ctirouter::config::Config;
use ctirouter::ids::{Services, SessionId};
use ctirouter::memrouter::MemRouter;
use ctirouter::proto::constants::{
    connection_type, control_failure, msg, service, status, NULL_PERIPHERAL_ID,
};
use ctirouter::proto::msg::{AnswerCallReq, SetAgentStateReq, SetCallDataReq};
use ctirouter::proto::{DecodeOptions, Message, Version};
use testkit::*;

const V: Version = Version::MAX;
const DESK: u32 = service::CLIENT_EVENTS | service::CLIENT_CONTROL | service::CALL_DATA_UPDATE;
const MINE: CallRef = call(0x0100_0001, "T1");
const OTHER: CallRef = call(0x0100_0002, "T2");

fn router() -> MemRouter {
    let mut config = Config::default();
    config.runtime.shards = 1;
    let mut r = MemRouter::new(config, &[PID]);
    r.upstream_grants(Services(
        service::ALL_EVENTS
            | service::CLIENT_CONTROL
            | service::CALL_DATA_UPDATE
            | service::CONNECTION_MONITOR,
    ));
    // A call at 3001 (the desk's instrument), another at 3002.
    r.upstream(delivered(MINE, "3001", "5551000", "3001", None));
    r.upstream(delivered(OTHER, "3002", "5552000", "3002", None));
    r
}

/// A desktop: Client Events for agent 1001 on instrument 3001, with control.
fn desk(r: &mut MemRouter) -> SessionId {
    let spec = OpenSpec {
        agent_id: Some("1001".into()),
        agent_instrument: Some("3001".into()),
        peripheral_id: PID,
        ..OpenSpec::new(V, DESK)
    };
    let id = r.connect(0).expect("admitted");
    r.send(id, V, spec.request(1));
    let got = r.received(id);
    assert!(
        matches!(decode(&got[0]), Message::OpenConf(c) if c.services_granted == DESK),
        "{}",
        describe(&got[0])
    );
    id
}

fn answer(invoke_id: u32, c: CallRef, instrument: Option<&str>) -> AnswerCallReq {
    AnswerCallReq {
        invoke_id,
        peripheral_id: NULL_PERIPHERAL_ID,
        connection_call_id: c.id,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_device_id: Some(c.dev.into()),
        agent_instrument: instrument.map(Into::into),
        ..Default::default()
    }
}

fn sent(r: &mut MemRouter) -> Vec<Message> {
    r.upstream_received()
        .iter()
        .map(|f| {
            ctirouter::proto::decode_frame(f, V, DecodeOptions::STRICT)
                .unwrap()
                .0
        })
        .collect()
}

/// The one reply the session got: (type, InvokeID, status or failure code).
fn refusal(r: &mut MemRouter, id: SessionId) -> (u32, u32, u32) {
    let got = r.received(id);
    assert_eq!(got.len(), 1, "{:?}", shapes(&got));
    match decode(&got[0]) {
        Message::ControlFailureConf(c) => (
            msg::CONTROL_FAILURE_CONF,
            c.invoke_id,
            u32::from(c.failure_code),
        ),
        Message::FailureConf(f) => (msg::FAILURE_CONF, f.invoke_id, f.status),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_desktops_request_is_completed_with_its_agent_before_it_goes_upstream() {
    let mut r = router();
    let id = desk(&mut r);
    r.send(id, V, answer(5, MINE, None));
    let up = sent(&mut r);
    let [Message::AnswerCallReq(a)] = &up[..] else {
        panic!("{up:?}")
    };
    assert_eq!(
        a.peripheral_id, PID,
        "NULL PeripheralID becomes the session's"
    );
    assert_eq!(a.agent_instrument.as_ref().unwrap().as_bytes(), b"3001");
    // Its own instrument, named: as is.
    r.send(id, V, answer(6, MINE, Some("3001")));
    assert_eq!(sent(&mut r).len(), 1);
    // SET_AGENT_STATE without AgentID and instrument: both filled in.
    r.send(
        id,
        V,
        SetAgentStateReq {
            invoke_id: 7,
            peripheral_id: 0,
            agent_state: 3,
            ..Default::default()
        },
    );
    let up = sent(&mut r);
    let [Message::SetAgentStateReq(s)] = &up[..] else {
        panic!("{up:?}")
    };
    assert_eq!(
        (
            s.peripheral_id,
            s.agent_id.as_ref().unwrap().as_bytes(),
            s.agent_instrument.as_ref().unwrap().as_bytes()
        ),
        (PID, &b"1001"[..], &b"3001"[..])
    );
}

#[test]
fn another_agents_device_or_call_is_out_of_scope_and_nothing_goes_upstream() {
    let mut r = router();
    let id = desk(&mut r);
    let privilege = u32::from(control_failure::CF_PRIVILEGE_VIOLATION_ON_SPECIFIED_DEVICE);
    // Another instrument.
    r.send(id, V, answer(1, MINE, Some("3002")));
    assert_eq!(
        refusal(&mut r, id),
        (msg::CONTROL_FAILURE_CONF, 1, privilege)
    );
    // A call its device is not part of.
    r.send(id, V, answer(2, OTHER, None));
    assert_eq!(
        refusal(&mut r, id),
        (msg::CONTROL_FAILURE_CONF, 2, privilege)
    );
    // Another agent.
    r.send(
        id,
        V,
        SetAgentStateReq {
            invoke_id: 3,
            agent_id: Some("1002".into()),
            agent_state: 3,
            ..Default::default()
        },
    );
    assert_eq!(
        refusal(&mut r, id),
        (msg::CONTROL_FAILURE_CONF, 3, privilege)
    );
    // Call Data Update: FAILURE_CONF with the call-party status.
    r.send(
        id,
        V,
        SetCallDataReq {
            invoke_id: 4,
            peripheral_id: PID,
            connection_call_id: OTHER.id,
            connection_device_id_type: connection_type::DYNAMIC,
            connection_device_id: Some(OTHER.dev.into()),
            ..Default::default()
        },
    );
    assert_eq!(
        refusal(&mut r, id),
        (msg::FAILURE_CONF, 4, status::E_CTI_NOT_CALL_PARTY)
    );
    assert!(sent(&mut r).is_empty());
    // Still served: its own call is fine.
    r.send(
        id,
        V,
        SetCallDataReq {
            invoke_id: 5,
            peripheral_id: PID,
            connection_call_id: MINE.id,
            connection_device_id_type: connection_type::DYNAMIC,
            connection_device_id: Some(MINE.dev.into()),
            ..Default::default()
        },
    );
    assert_eq!(sent(&mut r).len(), 1);
}

#[test]
fn an_all_events_session_may_act_on_any_agent() {
    let mut r = router();
    let id = r.connect(0).unwrap();
    let spec = OpenSpec::new(V, service::ALL_EVENTS | service::CLIENT_CONTROL);
    r.send(id, V, spec.request(1));
    let _ = r.received(id);
    r.send(id, V, answer(1, OTHER, Some("3002")));
    let up = sent(&mut r);
    let [Message::AnswerCallReq(a)] = &up[..] else {
        panic!("{up:?}")
    };
    assert_eq!(a.agent_instrument.as_ref().unwrap().as_bytes(), b"3002");
    assert_eq!(a.peripheral_id, NULL_PERIPHERAL_ID, "not filled in");
}

/// One instrument, one controlling client (docs/requests.md §4): a Client
/// Events session of another ClientID asking for control of it is refused
/// at OPEN with E_CTI_DEVICE_IN_USE and closed; sessions of the same
/// ClientID share it, and watching without control is always allowed.
#[test]
fn a_second_client_controlling_the_same_instrument_is_refused_with_10() {
    use ctirouter::proto::RequestError;
    use ctirouter::session::server::CloseReason;
    let mut r = router();
    let first = desk(&mut r);
    let same_client_again = desk(&mut r);
    let other = |services: u32| {
        OpenSpec {
            agent_id: Some("1001".into()),
            agent_instrument: Some("3001".into()),
            peripheral_id: PID,
            ..OpenSpec::new(V, services)
        }
        .client("other-desktop", b"")
    };
    let id = r.connect(0).unwrap();
    r.send(id, V, other(DESK).request(9));
    assert_eq!(
        refusal(&mut r, id),
        (msg::FAILURE_CONF, 9, status::E_CTI_DEVICE_IN_USE)
    );
    assert_eq!(
        r.closed(id),
        Some(CloseReason::OpenRejected(RequestError::DeviceInUse))
    );
    // Watching the same agent without control: fine.
    let watcher = r.connect(0).unwrap();
    r.send(watcher, V, other(service::CLIENT_EVENTS).request(10));
    assert!(matches!(
        decode(&r.received(watcher)[0]),
        Message::OpenConf(_)
    ));
    // Once every session of the controlling client is gone, another may.
    r.disconnect(first);
    let id = r.connect(0).unwrap();
    r.send(id, V, other(DESK).request(11));
    assert_eq!(refusal(&mut r, id).2, status::E_CTI_DEVICE_IN_USE);
    r.disconnect(same_client_again);
    let id = r.connect(0).unwrap();
    r.send(id, V, other(DESK).request(12));
    assert!(
        matches!(decode(&r.received(id)[0]), Message::OpenConf(c) if c.services_granted == DESK)
    );
}

/// `control_scope` (docs/requests.md §3, §4) for All Events and Peripheral
/// Monitor sessions: "monitored" = the devices and calls the session
/// monitors; "none" = no request service at all.
#[test]
fn control_scope_limits_what_a_monitoring_session_may_act_on() {
    use ctirouter::config::{ClientEntry, ControlScope};
    use ctirouter::proto::constants::device_type;
    use ctirouter::proto::msg::MonitorStartReq;
    let entry = |id: &str, control_scope| ClientEntry {
        client_id: id.into(),
        password: String::new(),
        services: None,
        max_outstanding: None,
        control_scope,
    };
    let mut config = Config::default();
    config.runtime.shards = 1;
    config.clients = vec![
        entry("wallboard", ControlScope::Monitored),
        entry("viewer", ControlScope::None),
    ];
    let mut r = MemRouter::new(config, &[PID]);
    r.upstream_grants(Services(service::ALL_EVENTS | service::CLIENT_CONTROL));
    let services = service::PERIPHERAL_MONITOR | service::CLIENT_CONTROL;
    let open = |r: &mut MemRouter, client: &str| {
        let id = r.connect(0).unwrap();
        r.send(
            id,
            V,
            OpenSpec::new(V, services).client(client, b"").request(1),
        );
        let Message::OpenConf(c) = decode(&r.received(id)[0]) else {
            panic!()
        };
        (id, c.services_granted)
    };
    assert_eq!(open(&mut r, "viewer").1, service::PERIPHERAL_MONITOR);
    let (id, granted) = open(&mut r, "wallboard");
    assert_eq!(granted, services);
    r.send(
        id,
        V,
        MonitorStartReq {
            invoke_id: 2,
            peripheral_id: PID,
            call_msg_mask: ALL_CALLS,
            agent_state_mask: ALL_AGENTS,
            monitored_device_type: device_type::DEVICE_IDENTIFIER,
            monitored_device_id: Some("3001".into()),
            ..Default::default()
        },
    );
    assert!(matches!(
        decode(&r.received(id)[0]),
        Message::MonitorStartConf(_)
    ));
    r.upstream(delivered(MINE, "3001", "5551000", "3001", None));
    r.upstream(delivered(OTHER, "3002", "5552000", "3002", None));
    let _ = r.received(id);
    // Its monitored device, and the call it is in: proxied.
    r.send(id, V, answer(1, MINE, Some("3001")));
    r.send(id, V, answer(2, MINE, None));
    assert_eq!(sent(&mut r).len(), 2);
    // Another device, or a call of another device: refused here.
    let privilege = u32::from(control_failure::CF_PRIVILEGE_VIOLATION_ON_SPECIFIED_DEVICE);
    r.send(id, V, answer(3, OTHER, Some("3002")));
    assert_eq!(
        refusal(&mut r, id),
        (msg::CONTROL_FAILURE_CONF, 3, privilege)
    );
    r.send(id, V, answer(4, OTHER, None));
    assert_eq!(
        refusal(&mut r, id),
        (msg::CONTROL_FAILURE_CONF, 4, privilege)
    );
    assert!(sent(&mut r).is_empty());
}
