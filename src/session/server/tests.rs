//! Unit tests of the session state machine, frame in, frames out.

use super::*;
use crate::ids::{InvokeId, MonitorId, SessionId};
use crate::proto::constants::system_event;
use crate::proto::msg::StartRecordingConf;
use crate::proto::msg::SystemEvent;
use crate::proto::Unspec;

fn v(n: u32) -> Version {
    Version::new(n).unwrap()
}

fn status() -> PgStatus {
    PgStatus {
        pg_status: 0,
        peripherals: vec![(5000, true), (5001, false)],
        peripheral_type: 17,
        upstream_services: Services::NONE,
    }
}

fn open_req(version: u32) -> OpenReq {
    OpenReq {
        invoke_id: 7,
        version_number: version,
        idle_timeout: 60,
        peripheral_id: u32::MAX,
        services_requested: service::ALL_EVENTS,
        call_msg_mask: u32::MAX,
        agent_state_mask: 0x3fff,
        client_id: Some("desk".into()),
        client_password: Some(Unspec(vec![])),
        ..Default::default()
    }
}

/// Feed a message (encoded at `at`) and decode what came back at the session's version.
fn feed(s: &mut Session, config: &Config, m: Message, at: Version) -> (Outcome, Vec<Message>) {
    let bytes = m.to_frame(at).unwrap();
    let (frame, _) = crate::proto::frame::parse(&bytes).unwrap();
    let st = status();
    let mut out = Vec::new();
    let ids = std::cell::Cell::new(100);
    let next = || {
        ids.set(ids.get() + 1);
        MonitorId(ids.get())
    };
    let ctx = Context {
        config,
        status: &st,
        next_monitor_id: &next,
        served_services: SERVED_SERVICES,
        at_session_limit: config.limits.max_sessions == 0,
    };
    let outcome = s.on_frame(frame, &ctx, Instant::now(), &mut out);
    if outcome == Outcome::Opened {
        s.confirm_open(&st, None, &mut out);
    }
    let mut replies = Vec::new();
    let mut rest = &out[..];
    while !rest.is_empty() {
        let (m, used) = crate::proto::decode_frame(rest, s.version, DecodeOptions::STRICT).unwrap();
        replies.push(m);
        rest = &rest[used..];
    }
    (outcome, replies)
}

fn session() -> Session {
    Session::new(SessionId(1), "127.0.0.1:1".parse().unwrap(), Instant::now())
}

fn failure(status: u32, invoke_id: u32) -> Message {
    FailureConf {
        invoke_id,
        status,
        text: None,
    }
    .into()
}

#[test]
fn open_conf_then_one_system_event_per_peripheral() {
    let config = Config::default();
    let mut s = session();
    let (outcome, replies) = feed(&mut s, &config, open_req(19).into(), v(19));
    assert_eq!(outcome, Outcome::Opened);
    assert_eq!(s.version, v(19));
    let Message::OpenConf(conf) = &replies[0] else {
        panic!("{replies:?}")
    };
    assert_eq!(
        (conf.invoke_id, conf.services_granted, conf.monitor_id),
        (7, service::ALL_EVENTS, 0)
    );
    let ids: Vec<(u32, u32)> = replies[1..]
        .iter()
        .map(|m| match m {
            Message::SystemEvent(SystemEvent {
                system_event_id,
                system_event_arg1,
                ..
            }) => (*system_event_id, *system_event_arg1),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            (system_event::PERIPHERAL_ONLINE, 5000),
            (system_event::PERIPHERAL_OFFLINE, 5001)
        ]
    );
}

#[test]
fn unsupported_version_is_refused_and_closed() {
    let mut s = session();
    let (outcome, replies) = feed(&mut s, &Config::default(), open_req(12).into(), v(13));
    assert_eq!(
        outcome,
        Outcome::Close(CloseReason::OpenRejected(RequestError::InvalidVersion))
    );
    assert_eq!(replies, vec![failure(1, 7)]);
}

#[test]
fn requests_before_open_get_session_not_open_and_stay() {
    let mut s = session();
    let (outcome, replies) = feed(
        &mut s,
        &Config::default(),
        HeartbeatReq { invoke_id: 9 }.into(),
        v(24),
    );
    assert_eq!(outcome, Outcome::Continue);
    assert_eq!(replies, vec![failure(4, 9)]);
    assert_eq!(s.phase, Phase::AwaitingOpen);
}

#[test]
fn open_checks_follow_the_contract() {
    let config = Config::parse(
        "[[clients]]\nclient_id = \"desk\"\npassword = \"pw\"\nservices = [\"all-events\"]\n",
    )
    .unwrap();
    let mut no_id = open_req(24);
    no_id.client_id = None;
    let mut bad_pw = open_req(24);
    bad_pw.client_password = Some(Unspec(b"nope".to_vec()));
    let mut short_idle = open_req(24);
    short_idle.client_password = Some(Unspec(b"pw".to_vec()));
    short_idle.idle_timeout = 19;
    let mut client_events = open_req(24);
    client_events.client_password = Some(Unspec(b"pw\0".to_vec()));
    client_events.services_requested = service::CLIENT_EVENTS;
    for (req, error, code) in [
        (no_id, RequestError::RequiredDataMissing, 6),
        (bad_pw, RequestError::InvalidPassword, 36),
        (short_idle, RequestError::InvalidTimeout, 18),
        (client_events, RequestError::RequiredDataMissing, 6),
    ] {
        let mut s = session();
        let (outcome, replies) = feed(&mut s, &config, req.into(), v(24));
        assert_eq!(outcome, Outcome::Close(CloseReason::OpenRejected(error)));
        assert_eq!(replies, vec![failure(code, 7)]);
    }
}

#[test]
fn heartbeat_close_and_second_open() {
    let config = Config::default();
    let mut s = session();
    feed(&mut s, &config, open_req(24).into(), v(24));
    let (_, replies) = feed(&mut s, &config, HeartbeatReq { invoke_id: 3 }.into(), v(24));
    assert_eq!(replies, vec![HeartbeatConf { invoke_id: 3 }.into()]);
    let (outcome, replies) = feed(&mut s, &config, open_req(24).into(), v(24));
    assert_eq!(
        outcome,
        Outcome::Close(CloseReason::OpenRejected(RequestError::SessionAlreadyOpen))
    );
    assert_eq!(replies, vec![failure(5, 7)]);

    let mut s = session();
    feed(&mut s, &config, open_req(24).into(), v(24));
    let (outcome, replies) = feed(
        &mut s,
        &config,
        CloseReq {
            invoke_id: 4,
            status: 0,
        }
        .into(),
        v(24),
    );
    assert_eq!(outcome, Outcome::Close(CloseReason::ClientClose));
    assert_eq!(replies, vec![CloseConf { invoke_id: 4 }.into()]);
}

#[test]
fn malformed_unknown_and_unserved_requests_get_their_codes() {
    let config = Config::default();
    let mut s = session();
    feed(&mut s, &config, open_req(24).into(), v(24));
    let short_heartbeat = Message::Raw(crate::proto::RawMessage {
        message_type: 5,
        body: vec![0, 1],
    });
    let (outcome, replies) = feed(&mut s, &config, short_heartbeat, v(24));
    assert_eq!(
        (outcome, replies),
        (Outcome::Continue, vec![failure(25, 0)])
    );
    let unknown = Message::Raw(crate::proto::RawMessage {
        message_type: 9999,
        body: vec![0, 0, 0, 8],
    });
    let (_, replies) = feed(&mut s, &config, unknown, v(24));
    assert_eq!(replies, vec![failure(2, 8)]);
    let make_call = Message::Raw(crate::proto::RawMessage {
        message_type: 56,
        body: vec![0, 0, 0, 9],
    });
    let (_, replies) = feed(&mut s, &config, make_call, v(24));
    assert_eq!(replies, vec![failure(12, 9)]);
    assert!(s.is_open());
}

#[test]
fn idle_timeout_counts_from_the_last_input() {
    let config = Config::default();
    let mut s = session();
    feed(&mut s, &config, open_req(24).into(), v(24));
    let later = s.last_input + Duration::from_secs(61);
    assert!(s.idle_expired(later));
    let mut disabled = open_req(24);
    disabled.idle_timeout = IDLE_TIMEOUT_DISABLED;
    let mut s = session();
    feed(&mut s, &config, disabled.into(), v(24));
    assert!(!s.idle_expired(s.last_input + Duration::from_secs(1_000_000)));
}

fn monitor_session() -> (Session, Config) {
    let config = Config::default();
    let mut s = session();
    let mut req = open_req(24);
    req.services_requested = service::PERIPHERAL_MONITOR | service::CLIENT_MONITOR;
    feed(&mut s, &config, req.into(), v(24));
    (s, config)
}

#[test]
fn monitor_start_names_a_call_xor_a_device() {
    use crate::proto::msg::MonitorStartReq;
    let (mut s, config) = monitor_session();
    let both = MonitorStartReq {
        invoke_id: 1,
        connection_device_id: Some("T1".into()),
        monitored_device_id: Some("3001".into()),
        ..Default::default()
    };
    let (outcome, replies) = feed(&mut s, &config, both.into(), v(24));
    assert_eq!(
        (outcome, replies),
        (Outcome::Continue, vec![failure(54, 1)])
    );
    let neither = MonitorStartReq {
        invoke_id: 2,
        ..Default::default()
    };
    let (_, replies) = feed(&mut s, &config, neither.into(), v(24));
    assert_eq!(replies, vec![failure(6, 2)]);
    let trunk = MonitorStartReq {
        invoke_id: 3,
        monitored_device_type: crate::proto::constants::device_type::TRUNK,
        monitored_device_id: Some("12".into()),
        call_msg_mask: 5,
        ..Default::default()
    };
    let (outcome, replies) = feed(&mut s, &config, trunk.into(), v(24));
    assert!(replies.is_empty());
    let expected = MonitorTarget::Device(DeviceKey::number(DeviceKind::Trunk, 12));
    assert_eq!(
        outcome,
        Outcome::Request(Request::MonitorStart {
            invoke_id: InvokeId(3),
            target: expected,
            call_mask: 5,
            agent_mask: 0
        })
    );
}

#[test]
fn client_events_open_conf_carries_a_fresh_monitor_id() {
    let config = Config::default();
    let mut s = session();
    let mut req = open_req(24);
    req.services_requested = service::CLIENT_EVENTS;
    req.agent_id = Some("1001".into());
    let (outcome, replies) = feed(&mut s, &config, req.into(), v(24));
    assert_eq!(outcome, Outcome::Opened);
    let Message::OpenConf(conf) = &replies[0] else {
        panic!("{replies:?}")
    };
    assert_eq!(conf.services_granted, service::CLIENT_EVENTS);
    assert_ne!(conf.monitor_id, 0);
    assert_eq!(conf.monitor_id, s.client_events_monitor.0);
    assert_eq!(
        replies.len(),
        1,
        "no peripheral SYSTEM_EVENTs without All Events"
    );
}

/// At the session limit (the test's `feed` says so when max_sessions is 0),
/// an OPEN_REQ that passes its checks gets FAILURE_CONF(17) and a close; one
/// that fails them gets its own status first.
#[test]
fn open_req_at_the_session_limit_is_refused_after_its_checks() {
    let mut config = Config::default();
    config.limits.max_sessions = 0;
    let mut s = session();
    let (outcome, replies) = feed(&mut s, &config, open_req(24).into(), v(24));
    assert_eq!(
        outcome,
        Outcome::Close(CloseReason::OpenRejected(RequestError::AtSessionLimit))
    );
    assert_eq!(replies, vec![failure(status::E_CTI_UNSPECIFIED_FAILURE, 7)]);
    let mut s = session();
    let mut req = open_req(24);
    req.idle_timeout = 5;
    let (outcome, replies) = feed(&mut s, &config, req.into(), v(24));
    assert_eq!(
        outcome,
        Outcome::Close(CloseReason::OpenRejected(RequestError::InvalidTimeout))
    );
    assert_eq!(replies, vec![failure(status::E_CTI_INVALID_TIMEOUT, 7)]);
}

/// Server is the router's own service: anyone with the simulator; with a
/// real upstream only a client listed with "server".
#[test]
fn server_is_granted_by_the_router_and_only_to_listed_clients_upstream() {
    let st = status();
    let next = || MonitorId(1);
    let grant_with = |config: &Config, entry: Option<&ClientEntry>| {
        let ctx = Context {
            config,
            status: &st,
            next_monitor_id: &next,
            served_services: SERVED_SERVICES,
            at_session_limit: false,
        };
        grant(Services::SERVER, &ctx, entry)
    };
    assert_eq!(grant_with(&Config::default(), None), Services::SERVER);
    let upstream = "[upstream]\nsides = [\"a:1\"]\n[[clients]]\nclient_id = \"rec\"\n\
                    services = [\"server\"]\n[[clients]]\nclient_id = \"desk\"\n";
    let config = Config::parse(upstream).unwrap();
    assert_eq!(grant_with(&config, config.client(b"rec")), Services::SERVER);
    assert_eq!(grant_with(&config, config.client(b"desk")), Services::NONE);
    assert_eq!(grant_with(&config, None), Services::NONE);
}

/// A server's CONF goes on to ingest; a malformed one gets 25 and the
/// session stays open; a session without Server gets 12 for it.
#[test]
fn server_replies_go_to_ingest_only_from_a_server_session() {
    let config = Config::default();
    let conf = |invoke_id| {
        Message::from(StartRecordingConf {
            invoke_id,
            ..Default::default()
        })
    };
    let mut server = session();
    let mut req = open_req(24);
    req.services_requested = service::SERVER;
    feed(&mut server, &config, req.into(), v(24));
    let (outcome, replies) = feed(&mut server, &config, conf(0x8000_0001), v(24));
    let expected = Outcome::ServerReply {
        message_type: msg::START_RECORDING_CONF,
    };
    assert_eq!((outcome, replies), (expected, vec![]));
    let short = Message::Raw(crate::proto::RawMessage {
        message_type: msg::START_RECORDING_CONF,
        body: vec![0, 0, 0, 5],
    });
    let (outcome, replies) = feed(&mut server, &config, short, v(24));
    assert_eq!(
        (outcome, replies),
        (Outcome::Continue, vec![failure(25, 5)])
    );
    assert!(server.is_open());
    let mut desk = session();
    feed(&mut desk, &config, open_req(24).into(), v(24));
    let (_, replies) = feed(&mut desk, &config, conf(6), v(24));
    assert_eq!(replies, vec![failure(12, 6)]);
}
