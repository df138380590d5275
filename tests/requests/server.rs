//! The Server service through the router binary (docs/requests.md §8), with
//! the built-in simulator (anyone may be granted Server): recording servers
//! register over loopback, raw bytes; START/STOP_RECORDING_REQ from desktops
//! reach them with the desktop's ClientID and ClientAddress and a router
//! InvokeID, their CONFs come back with the desktop's InvokeID at the
//! desktop's version. Exclusive, round-robin and parallel modes, unregister,
//! a server that closes or never answers, versions crossing.

use crate::BIN;
use std::time::Duration;

use ctirouter::proto::constants::{msg, service, status};
use ctirouter::proto::msg::*;
use ctirouter::proto::{CtiString, Message, Version};
use testkit::*;

const RECORDING: &str = "Cisco:CallRecording";
const EXCLUSIVE: u16 = 0;
const ROUND_ROBIN: u16 = 1;
const PARALLEL: u16 = 2;

fn s(text: &str) -> Option<CtiString> {
    Some(CtiString::from(text))
}

fn v(n: u32) -> Version {
    Version::new(n).unwrap()
}

/// The router with its simulator, no calls (the tests need no events).
fn router() -> RouterProcess {
    RouterProcess::start(BIN, &["--sim-calls-per-sec", "0"])
}

/// The same with a 1-second request timeout.
fn router_with_short_timeout() -> RouterProcess {
    let toml = "[requests]\ntimeout_secs = 1\n";
    let router = RouterProcess::start_with_config(BIN, toml, &["--sim-calls-per-sec", "0"]);
    router.wait_pg_online(PROBE_CLIENT);
    router
}

/// A session granted Server at `version`, named `client_id`.
fn server(router: &RouterProcess, version: Version, client_id: &str) -> Client {
    let spec = OpenSpec::new(version, service::SERVER).client(client_id, b"");
    let mut c = router.client();
    let conf = c.open(&spec);
    assert_eq!(
        conf.services_granted,
        service::SERVER,
        "the simulator grants Server"
    );
    c
}

/// A desktop (All Events, no events asked) at `version`.
fn desktop(router: &RouterProcess, version: Version, client_id: &str) -> Client {
    let spec = OpenSpec::new(version, service::ALL_EVENTS)
        .masks(0, 0)
        .client(client_id, b"");
    let mut c = router.client();
    c.open(&spec);
    c
}

/// The answer to `request` (InvokeID `invoke`), decoded at the session's version.
fn ask(c: &mut Client, request: impl Into<Message>, invoke: u32) -> Message {
    c.send(request);
    let reply = c.reply(invoke);
    decode_strict(&reply, c.version)
}

/// REGISTER_SERVICE_REQ: the RegisteredServiceID, or the FAILURE_CONF status.
fn register(c: &mut Client, mode: u16) -> Result<u32, u32> {
    let invoke = c.invoke();
    let req = RegisterServiceReq {
        invoke_id: invoke,
        server_mode: mode,
        service_name: s(RECORDING),
    };
    match ask(c, req, invoke) {
        Message::RegisterServiceConf(conf) => Ok(conf.registered_service_id),
        Message::FailureConf(f) => Err(f.status),
        other => panic!("REGISTER_SERVICE_REQ answered {other:?}"),
    }
}

fn start_req(invoke_id: u32, call: u32) -> StartRecordingReq {
    StartRecordingReq {
        invoke_id,
        peripheral_id: PID,
        connection_call_id: call,
        client_port: 4000,
        connection_device_id: s("3001"),
        ..Default::default()
    }
}

fn stop_req(invoke_id: u32, call: u32, session_id: u32) -> StopRecordingReq {
    StopRecordingReq {
        invoke_id,
        peripheral_id: PID,
        connection_call_id: call,
        session_id,
        connection_device_id: s("3001"),
        ..Default::default()
    }
}

/// The next request of `message_type` the router sent the server, decoded.
fn forwarded(server: &mut Client, message_type: u32) -> Message {
    let at = server.expect("a request from the router", |f| {
        frame_type(f) == message_type
    });
    decode_strict(&server.log[at], server.version)
}

/// The START_RECORDING_REQ the server got: its router InvokeID, and the call.
fn started(server: &mut Client) -> (u32, StartRecordingReq) {
    match forwarded(server, msg::START_RECORDING_REQ) {
        Message::StartRecordingReq(r) => (r.invoke_id, r),
        other => panic!("{other:?}"),
    }
}

fn start_conf(invoke_id: u32, session_id: u32) -> StartRecordingConf {
    StartRecordingConf {
        invoke_id,
        session_id,
        server_data: 77,
        ..Default::default()
    }
}

fn failure_status(m: &Message) -> u32 {
    match m {
        Message::FailureConf(f) => f.status,
        other => panic!("expected FAILURE_CONF, got {other:?}"),
    }
}

#[test]
fn start_and_stop_recording_reach_the_server_and_its_confs_the_desktop() {
    let router = router();
    let mut recorder = server(&router, Version::MAX, "recorder");
    register(&mut recorder, EXCLUSIVE).expect("registered");
    let mut desk = desktop(&router, Version::MAX, "desk-a");

    desk.send(start_req(500, 11));
    let (invoke, req) = started(&mut recorder);
    assert_ne!(invoke, 500, "the router's own InvokeID");
    assert_eq!(req.connection_call_id, 11);
    assert_eq!(req.client_id, s("desk-a"), "the requester's ClientID added");
    assert_eq!(req.client_address, s("127.0.0.1"));
    recorder.send(start_conf(invoke, 42));
    let Message::StartRecordingConf(conf) = decode_strict(&desk.reply(500), desk.version) else {
        panic!("not a START_RECORDING_CONF");
    };
    assert_eq!((conf.session_id, conf.server_data), (42, 77));
    assert_eq!(conf.client_id, s("recorder"), "names the recording server");

    desk.send(stop_req(501, 11, 42));
    let Message::StopRecordingReq(stop) = forwarded(&mut recorder, msg::STOP_RECORDING_REQ) else {
        panic!("not a STOP_RECORDING_REQ");
    };
    assert_eq!((stop.session_id, stop.client_id.clone()), (42, s("desk-a")));
    recorder.send(StopRecordingConf {
        invoke_id: stop.invoke_id,
        ..Default::default()
    });
    let answer = decode_strict(&desk.reply(501), desk.version);
    assert_eq!(
        answer.message_type(),
        msg::STOP_RECORDING_CONF,
        "{answer:?}"
    );
}

#[test]
fn a_server_failure_conf_reaches_the_desktop_with_its_invoke_id() {
    let router = router();
    let mut recorder = server(&router, Version::MAX, "recorder");
    register(&mut recorder, EXCLUSIVE).expect("registered");
    let mut desk = desktop(&router, Version::MAX, "desk-a");
    desk.send(start_req(9, 1));
    let (invoke, _) = started(&mut recorder);
    recorder.send(FailureConf {
        invoke_id: invoke,
        status: status::E_CTI_INVALID_CALLID,
        text: None,
    });
    let answer = decode_strict(&desk.reply(9), desk.version);
    assert_eq!(failure_status(&answer), status::E_CTI_INVALID_CALLID);
}

#[test]
fn exclusive_refuses_a_second_server_and_modes_must_agree() {
    let router = router();
    let mut first = server(&router, Version::MAX, "rec-1");
    register(&mut first, EXCLUSIVE).expect("registered");
    let mut second = server(&router, Version::MAX, "rec-2");
    assert_eq!(
        register(&mut second, EXCLUSIVE),
        Err(status::E_CTI_SERVICE_CONFLICT)
    );
    assert_eq!(
        register(&mut second, PARALLEL),
        Err(status::E_CTI_SERVICE_CONFLICT)
    );
    // Refused, and still open: it may register once the first has gone.
    second.heartbeat(WAIT);
    first.drop_connection();
    let deadline = std::time::Instant::now() + WAIT;
    while register(&mut second, EXCLUSIVE).is_err() {
        assert!(std::time::Instant::now() < deadline, "never free again");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_session_without_server_may_not_register() {
    let router = router();
    let mut desk = desktop(&router, Version::MAX, "desk-a");
    assert_eq!(
        register(&mut desk, EXCLUSIVE),
        Err(status::E_CTI_FUNCTION_NOT_AVAILABLE)
    );
    let invoke = desk.invoke();
    let req = RegisterServiceReq {
        invoke_id: invoke,
        server_mode: 7,
        service_name: s(RECORDING),
    };
    let mut recorder = server(&router, Version::MAX, "recorder");
    assert_eq!(
        failure_status(&ask(&mut recorder, req, invoke)),
        status::E_CTI_INVALID_SERVICE,
        "a ServerMode outside 0..=2"
    );
    let invoke = recorder.invoke();
    let nameless = RegisterServiceReq {
        invoke_id: invoke,
        server_mode: 0,
        service_name: None,
    };
    assert_eq!(
        failure_status(&ask(&mut recorder, nameless, invoke)),
        status::E_CTI_REQUIRED_DATA_MISSING
    );
}

#[test]
fn parallel_sends_to_every_server_and_answers_the_desktop_once() {
    let router = router();
    let mut a = server(&router, Version::MAX, "rec-a");
    let mut b = server(&router, Version::MAX, "rec-b");
    register(&mut a, PARALLEL).expect("a");
    register(&mut b, PARALLEL).expect("b");
    let mut desk = desktop(&router, Version::MAX, "desk-a");
    desk.send(start_req(31, 3));
    let (invoke_a, _) = started(&mut a);
    let (invoke_b, _) = started(&mut b);
    a.send(FailureConf {
        invoke_id: invoke_a,
        status: status::E_CTI_INVALID_CALLID,
        text: None,
    });
    desk.expect_no_reply(Duration::from_millis(300));
    b.send(start_conf(invoke_b, 8));
    let answer = decode_strict(&desk.reply(31), desk.version);
    let Message::StartRecordingConf(conf) = answer else {
        panic!("a success wins: {answer:?}");
    };
    assert_eq!((conf.session_id, conf.client_id), (8, s("rec-b")));
    desk.expect_no_reply(Duration::from_millis(300));
}

#[test]
fn round_robin_alternates_between_the_servers_and_a_stop_goes_to_the_holder() {
    let router = router();
    let mut a = server(&router, Version::MAX, "rec-a");
    let mut b = server(&router, Version::MAX, "rec-b");
    register(&mut a, ROUND_ROBIN).expect("a");
    register(&mut b, ROUND_ROBIN).expect("b");
    let mut desk = desktop(&router, Version::MAX, "desk-a");
    for (i, call) in [(1u32, 100u32), (2, 101), (3, 102), (4, 103)] {
        desk.send(start_req(i, call));
        let turn = if i % 2 == 1 { &mut a } else { &mut b };
        let (invoke, req) = started(turn);
        assert_eq!(req.connection_call_id, call);
        turn.send(start_conf(invoke, call));
        let Message::StartRecordingConf(conf) = decode_strict(&desk.reply(i), desk.version) else {
            panic!("no CONF for request {i}");
        };
        assert_eq!(conf.session_id, call);
    }
    let nr = |c: &Client| {
        c.log
            .iter()
            .filter(|f| frame_type(f) == msg::START_RECORDING_REQ)
            .count()
    };
    a.poll();
    b.poll();
    assert_eq!((nr(&a), nr(&b)), (2, 2), "two each, alternating");
    // Each STOP goes to the server holding that recording (SessionID =
    // the call here: a has 100 and 102, b 101 and 103), whatever the turn.
    for (i, recording) in [(11u32, 102u32), (12, 100), (13, 103), (14, 101)] {
        desk.send(stop_req(i, recording, recording));
        let holder = if recording % 2 == 0 { &mut a } else { &mut b };
        let Message::StopRecordingReq(stop) = forwarded(holder, msg::STOP_RECORDING_REQ) else {
            panic!("not a STOP_RECORDING_REQ");
        };
        assert_eq!(stop.session_id, recording);
        let invoke = stop.invoke_id;
        holder.send(StopRecordingConf {
            invoke_id: invoke,
            ..Default::default()
        });
        let answer = decode_strict(&desk.reply(i), desk.version);
        assert_eq!(answer.message_type(), msg::STOP_RECORDING_CONF);
    }
    let stops = |c: &Client| {
        c.log
            .iter()
            .filter(|f| frame_type(f) == msg::STOP_RECORDING_REQ)
            .count()
    };
    a.poll();
    b.poll();
    assert_eq!((stops(&a), stops(&b)), (2, 2), "each stop at its holder");
}

#[test]
fn after_unregister_the_simulator_refuses_recording_with_12() {
    let router = router();
    let mut recorder = server(&router, Version::MAX, "recorder");
    let mut desk = desktop(&router, Version::MAX, "desk-a");
    // No server yet, no upstream configured.
    let answer = ask(&mut desk, start_req(1, 1), 1);
    assert_eq!(
        failure_status(&answer),
        status::E_CTI_FUNCTION_NOT_AVAILABLE
    );
    let id = register(&mut recorder, ROUND_ROBIN).expect("registered");
    let invoke = recorder.invoke();
    let wrong = UnregisterServiceReq {
        invoke_id: invoke,
        registered_service_id: id + 1000,
    };
    assert_eq!(
        failure_status(&ask(&mut recorder, wrong, invoke)),
        status::E_CTI_INVALID_SERVICE
    );
    let invoke = recorder.invoke();
    let unregister = UnregisterServiceReq {
        invoke_id: invoke,
        registered_service_id: id,
    };
    let conf = ask(&mut recorder, unregister, invoke);
    assert_eq!(
        conf.message_type(),
        msg::UNREGISTER_SERVICE_CONF,
        "{conf:?}"
    );
    let answer = ask(&mut desk, stop_req(2, 1, 0), 2);
    assert_eq!(
        failure_status(&answer),
        status::E_CTI_FUNCTION_NOT_AVAILABLE
    );
}

#[test]
fn a_server_that_closes_fails_its_pending_requests_with_15_only() {
    let router = router();
    let mut recorder = server(&router, Version::MAX, "recorder");
    register(&mut recorder, EXCLUSIVE).expect("registered");
    let mut desk = desktop(&router, Version::MAX, "desk-a");
    let mut bystander = desktop(&router, v(19), "desk-b");
    desk.send(start_req(70, 7));
    started(&mut recorder);
    recorder.drop_connection();
    let answer = decode_strict(&desk.reply(70), desk.version);
    assert_eq!(failure_status(&answer), status::E_CTI_CTI_SERVER_OFFLINE);
    // The others are undisturbed, and the service is gone with its server.
    bystander.heartbeat(WAIT);
    desk.heartbeat(WAIT);
    let answer = ask(&mut bystander, start_req(5, 5), 5);
    assert_eq!(
        failure_status(&answer),
        status::E_CTI_FUNCTION_NOT_AVAILABLE
    );
}

#[test]
fn a_server_that_never_answers_times_out_with_16_and_its_late_answer_is_dropped() {
    let router = router_with_short_timeout();
    let mut recorder = server(&router, Version::MAX, "recorder");
    register(&mut recorder, EXCLUSIVE).expect("registered");
    let mut desk = desktop(&router, Version::MAX, "desk-a");
    desk.send(start_req(40, 4));
    let (invoke, _) = started(&mut recorder);
    let reply = desk.reply(40);
    let answer = decode_strict(&reply, desk.version);
    assert_eq!(failure_status(&answer), status::E_CTI_TIMEOUT);
    recorder.send(start_conf(invoke, 1));
    desk.expect_no_reply(Duration::from_millis(500));
    // The server session stays open and serves on.
    recorder.heartbeat(WAIT);
    desk.send(start_req(41, 5));
    let (invoke, _) = started(&mut recorder);
    recorder.send(start_conf(invoke, 2));
    let answer = decode_strict(&desk.reply(41), desk.version);
    assert_eq!(answer.message_type(), msg::START_RECORDING_CONF);
}

#[test]
fn versions_cross_between_a_v24_server_and_desktops_at_19_and_13() {
    let router = router();
    let mut recorder = server(&router, Version::MAX, "recorder");
    register(&mut recorder, EXCLUSIVE).expect("registered");
    for (version, invoke) in [(v(19), 190u32), (v(13), 130)] {
        let mut desk = desktop(&router, version, "desk-x");
        desk.send(start_req(invoke, invoke));
        let (router_invoke, req) = started(&mut recorder);
        assert_eq!(req.connection_call_id, invoke);
        assert_eq!(req.connection_device_id, s("3001"));
        assert_eq!(req.client_id, s("desk-x"));
        recorder.send(start_conf(router_invoke, invoke + 1));
        let reply = desk.reply(invoke);
        let Message::StartRecordingConf(conf) = decode_strict(&reply, version) else {
            panic!("v{version}: not a START_RECORDING_CONF");
        };
        assert_eq!((conf.session_id, conf.server_data), (invoke + 1, 77));
        desk.send(stop_req(invoke + 2, invoke, invoke + 1));
        let Message::StopRecordingReq(stop) = forwarded(&mut recorder, msg::STOP_RECORDING_REQ)
        else {
            panic!("no STOP_RECORDING_REQ");
        };
        assert_eq!(stop.session_id, invoke + 1);
        recorder.send(StopRecordingConf {
            invoke_id: stop.invoke_id,
            ..Default::default()
        });
        let answer = decode_strict(&desk.reply(invoke + 2), version);
        assert_eq!(answer.message_type(), msg::STOP_RECORDING_CONF);
    }
}
