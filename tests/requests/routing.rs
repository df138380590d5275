//! The proxy rules (docs/requests.md §3, §5) on the routing cores wired
//! together in memory ([`MemRouter`]): requests go upstream with fresh
//! InvokeIDs, replies come back to the one session that asked, and every
//! failure the router gives itself has its status. Simulated time, no
//! sockets: each case runs in microseconds.

use std::time::Duration;

use ctirouter::config::{ClientEntry, Config, ServiceName, UpstreamConfig};
use ctirouter::ids::{Services, SessionId};
use ctirouter::memrouter::MemRouter;
use ctirouter::proto::constants::{control_failure, msg, service, status};
use ctirouter::proto::msg::{
    FailureConf, OpenConf, QueryAgentStateConf, QueryAgentStateReq, ReleaseCallConf,
    ReleaseCallReq, SetAgentStateConf, SetCallDataConf, SetCallDataReq,
};
use ctirouter::proto::{Message, Version};
use testkit::*;

/// What the upstream grants the router by default (docs/requests.md §2).
const UPSTREAM: Services = Services(
    service::ALL_EVENTS
        | service::CLIENT_CONTROL
        | service::CALL_DATA_UPDATE
        | service::CONNECTION_MONITOR,
);
const CONTROL: u32 = service::PERIPHERAL_MONITOR | service::CLIENT_CONTROL;

fn router_with(shards: usize, edit: impl FnOnce(&mut Config)) -> MemRouter {
    let mut config = Config::default();
    config.runtime.shards = shards;
    edit(&mut config);
    let mut r = MemRouter::new(config, &[PID]);
    r.upstream_grants(UPSTREAM);
    r
}

fn router(shards: usize) -> MemRouter {
    router_with(shards, |_| {})
}

/// Open a session on `shard`; returns it and what it was granted.
fn open_as(r: &mut MemRouter, shard: usize, spec: &OpenSpec) -> (SessionId, u32) {
    let id = r.connect(shard).expect("admitted");
    r.send(id, spec.version, spec.request(1));
    let got = r.received(id);
    let Some(Message::OpenConf(OpenConf {
        services_granted, ..
    })) = got.first().map(|f| decode_at(f, spec.version))
    else {
        panic!(
            "OPEN_REQ answered with {:?}",
            got.first().map(|f| describe(f))
        );
    };
    (id, services_granted)
}

fn open(r: &mut MemRouter, shard: usize, version: Version, services: u32) -> SessionId {
    let (id, granted) = open_as(r, shard, &OpenSpec::new(version, services));
    assert_eq!(granted, services, "granted what it asked for");
    id
}

fn decode_at(frame: &[u8], version: Version) -> Message {
    ctirouter::proto::decode_frame(frame, version, ctirouter::proto::DecodeOptions::STRICT)
        .map(|(m, _)| m)
        .unwrap_or_else(|e| panic!("{e}: {}", describe(frame)))
}

/// QUERY_AGENT_STATE_REQ for an agent the router has no report of (so it is
/// proxied), one agent per InvokeID: identical queries in flight would
/// share one upstream request (docs/requests.md §6, tests/requests/local.rs).
fn query(invoke_id: u32) -> QueryAgentStateReq {
    QueryAgentStateReq {
        invoke_id,
        peripheral_id: PID,
        mrd_id: 1,
        agent_instrument: Some(format!("{}", 3000 + invoke_id).as_str().into()),
        ..Default::default()
    }
}

fn invoke_of(frame: &[u8]) -> u32 {
    u32::from_be_bytes(frame[8..12].try_into().unwrap())
}

/// The one frame session `id` got, decoded at `version`.
fn one(r: &mut MemRouter, id: SessionId, version: Version) -> Message {
    let got = r.received(id);
    assert_eq!(got.len(), 1, "one frame, got {:?}", shapes(&got));
    decode_at(&got[0], version)
}

fn failure(r: &mut MemRouter, id: SessionId, version: Version) -> (u32, u32) {
    match one(r, id, version) {
        Message::FailureConf(FailureConf {
            invoke_id, status, ..
        }) => (invoke_id, status),
        other => panic!("expected FAILURE_CONF, got {other:?}"),
    }
}

#[test]
fn a_request_goes_upstream_with_a_fresh_invoke_id_and_its_reply_to_the_asker_only() {
    let mut r = router(2);
    // Two sessions on two shards, both using InvokeID 7.
    let a = open(&mut r, 0, v(19), CONTROL);
    let b = open(&mut r, 1, Version::MAX, CONTROL);
    r.send(a, v(19), query(7));
    r.send(
        b,
        Version::MAX,
        QueryAgentStateReq {
            agent_instrument: Some("3008".into()),
            ..query(7)
        },
    );
    let sent = r.upstream_received();
    assert_eq!(sent.len(), 2);
    let (ia, ib) = (invoke_of(&sent[0]), invoke_of(&sent[1]));
    assert!(
        ia & 0x8000_0000 != 0 && ib & 0x8000_0000 != 0,
        "top bit set"
    );
    assert_ne!(ia, ib);
    for (f, instrument) in sent.iter().zip([b"3007", b"3008"]) {
        assert_eq!(frame_type(f), msg::QUERY_AGENT_STATE_REQ);
        // Re-encoded at the upstream's version (24), the rest as sent.
        let Message::QueryAgentStateReq(q) = decode_at(f, Version::MAX) else {
            panic!("{}", describe(f))
        };
        assert_eq!(q.agent_instrument.unwrap().as_bytes(), instrument);
    }
    assert!(r.received(a).is_empty() && r.received(b).is_empty());

    // Answered out of order: each reply reaches its own session, with its
    // own InvokeID back, at its own version.
    r.upstream(QueryAgentStateConf {
        invoke_id: ib,
        agent_state: 3,
        ..Default::default()
    });
    match one(&mut r, b, Version::MAX) {
        Message::QueryAgentStateConf(c) => assert_eq!((c.invoke_id, c.agent_state), (7, 3)),
        other => panic!("{other:?}"),
    }
    assert!(r.received(a).is_empty(), "b's reply is not a's");
    r.upstream(QueryAgentStateConf {
        invoke_id: ia,
        agent_state: 4,
        department_id: 9,
        ..Default::default()
    });
    match one(&mut r, a, v(19)) {
        Message::QueryAgentStateConf(c) => assert_eq!((c.invoke_id, c.agent_state), (7, 4)),
        other => panic!("{other:?}"),
    }
    // Answered once: the same reply again is stray.
    r.upstream(SetAgentStateConf { invoke_id: ia });
    assert!(r.received(a).is_empty());
    assert_eq!(r.ingest.metrics.snapshot().nr_stray_upstream_replies, 1);
}

#[test]
fn a_reply_keeps_its_place_among_the_events_around_it() {
    let mut r = router(1);
    let id = open(
        &mut r,
        0,
        Version::MAX,
        service::ALL_EVENTS | service::CALL_DATA_UPDATE,
    );
    let _ = r.received(id); // the peripheral's SYSTEM_EVENT
    r.send(
        id,
        Version::MAX,
        SetCallDataReq {
            invoke_id: 41,
            peripheral_id: PID,
            connection_call_id: 0x0100_0001,
            connection_device_id: Some("T1".into()),
            ..Default::default()
        },
    );
    let sent = r.upstream_received();
    assert_eq!(sent.len(), 1);
    assert_eq!(frame_type(&sent[0]), msg::SET_CALL_DATA_REQ);
    let upstream_invoke = invoke_of(&sent[0]);
    let call = call(0x0100_0001, "T1");
    r.upstream(delivered(call, "3001", "5551000", "3001", None));
    r.upstream(SetCallDataConf {
        invoke_id: upstream_invoke,
    });
    r.upstream(established(call, "3001", "5551000"));
    let types: Vec<u32> = r.received(id).iter().map(|f| frame_type(f)).collect();
    assert_eq!(
        types,
        [
            msg::CALL_DELIVERED_EVENT,
            msg::SET_CALL_DATA_CONF,
            msg::CALL_ESTABLISHED_EVENT
        ]
    );
}

#[test]
fn a_service_not_granted_is_refused_with_12_and_nothing_goes_upstream() {
    let mut r = router(1);
    let id = open(&mut r, 0, Version::MAX, service::PERIPHERAL_MONITOR);
    r.send(id, Version::MAX, query(5));
    assert_eq!(
        failure(&mut r, id, Version::MAX),
        (5, status::E_CTI_FUNCTION_NOT_AVAILABLE)
    );
    // Call Data Update without the service, too.
    r.send_raw(
        id,
        &raw_frame(msg::RELEASE_CALL_REQ, &[0, 0, 0, 6, 0, 0, 0, 0]),
    );
    assert_eq!(
        failure(&mut r, id, Version::MAX),
        (6, status::E_CTI_FUNCTION_NOT_AVAILABLE)
    );
    assert!(r.upstream_received().is_empty());
}

#[test]
fn grants_follow_what_the_upstream_granted() {
    // The upstream granted agent-state control only: a session asking for
    // Client Control gets 0x2000, may query and set agent state, and may
    // not hold a call.
    let mut r = router(1);
    r.upstream_grants(Services(
        service::ALL_EVENTS | service::AGENT_STATE_CONTROL_ONLY,
    ));
    let (id, granted) = open_as(&mut r, 0, &OpenSpec::new(Version::MAX, CONTROL));
    assert_eq!(
        granted,
        service::PERIPHERAL_MONITOR | service::AGENT_STATE_CONTROL_ONLY
    );
    r.send(id, Version::MAX, query(1));
    assert_eq!(r.upstream_received().len(), 1);
    let hold = raw_frame(54, &[0, 0, 0, 2, 0, 0, 0x13, 0x88, 0, 0, 0, 1, 0, 0, 0, 0]);
    r.send_raw(id, &hold);
    assert_eq!(
        failure(&mut r, id, Version::MAX),
        (2, status::E_CTI_FUNCTION_NOT_AVAILABLE)
    );

    // Nothing granted upstream beyond events: no request service at all.
    r.upstream_grants(Services::ALL_EVENTS);
    let (_, granted) = open_as(&mut r, 0, &OpenSpec::new(Version::MAX, CONTROL));
    assert_eq!(granted, service::PERIPHERAL_MONITOR);
    // Only request services asked for and none granted: refused.
    let id = r.connect(0).unwrap();
    r.send(
        id,
        Version::MAX,
        OpenSpec::new(Version::MAX, service::CLIENT_CONTROL).request(3),
    );
    assert_eq!(
        failure(&mut r, id, Version::MAX),
        (3, status::E_CTI_FUNCTION_NOT_AVAILABLE)
    );
}

#[test]
fn with_a_real_upstream_request_services_go_only_to_clients_listed_with_them() {
    let listed = |id: &str, services: Option<Vec<ServiceName>>| ClientEntry {
        client_id: id.into(),
        password: String::new(),
        services,
        max_outstanding: None,
        control_scope: Default::default(),
    };
    let mut r = router_with(1, |c| {
        c.upstream = Some(UpstreamConfig {
            sides: vec!["127.0.0.1:1".into()],
            ..Default::default()
        });
        c.clients = vec![
            listed(
                "desktop",
                Some(vec![
                    ServiceName::PeripheralMonitor,
                    ServiceName::ClientControl,
                ]),
            ),
            listed("wallboard", None),
        ];
    });
    let spec = |client: &str| OpenSpec::new(Version::MAX, CONTROL).client(client, b"");
    assert_eq!(open_as(&mut r, 0, &spec("desktop")).1, CONTROL);
    // Listed without a service list: every event service, no control.
    assert_eq!(
        open_as(&mut r, 0, &spec("wallboard")).1,
        service::PERIPHERAL_MONITOR
    );
}

#[test]
fn no_reply_in_time_is_a_timeout_and_the_late_reply_is_dropped() {
    let mut r = router(1);
    let id = open(&mut r, 0, Version::MAX, CONTROL);
    r.send(id, Version::MAX, query(9));
    let upstream_invoke = invoke_of(&r.upstream_received()[0]);
    r.advance(Duration::from_secs(14));
    assert!(r.received(id).is_empty(), "not yet");
    r.advance(Duration::from_secs(1));
    assert_eq!(
        failure(&mut r, id, Version::MAX),
        (9, status::E_CTI_TIMEOUT)
    );
    r.upstream(QueryAgentStateConf {
        invoke_id: upstream_invoke,
        ..Default::default()
    });
    assert!(r.received(id).is_empty(), "the late reply is dropped");
    assert_eq!(r.ingest.metrics.snapshot().nr_stray_upstream_replies, 1);
    // The session goes on: the next request is proxied.
    r.send(id, Version::MAX, query(10));
    assert_eq!(r.upstream_received().len(), 1);
    assert_eq!(r.closed(id), None);
}

#[test]
fn the_upstream_lost_fails_what_is_pending_and_offline_refuses_with_15() {
    let mut r = router(2);
    let a = open(&mut r, 0, Version::MAX, CONTROL);
    let b = open(&mut r, 1, v(14), CONTROL);
    r.send(a, Version::MAX, query(1));
    r.send(b, v(14), query(2));
    let sent = r.upstream_received();
    assert_eq!(sent.len(), 2);
    r.upstream_lost();
    let fail_of = |r: &mut MemRouter, id, v| {
        r.received(id)
            .iter()
            .map(|f| decode_at(f, v))
            .find_map(|m| match m {
                Message::FailureConf(f) => Some((f.invoke_id, f.status)),
                _ => None,
            })
    };
    let offline = status::E_CTI_CTI_SERVER_OFFLINE;
    assert_eq!(fail_of(&mut r, a, Version::MAX), Some((1, offline)));
    assert_eq!(fail_of(&mut r, b, v(14)), Some((2, offline)));
    // Nothing is sent again when the upstream comes back (MAKE_CALL is not
    // idempotent), and a reply from the old session finds nothing.
    r.upstream_back();
    assert!(r.upstream_received().is_empty());
    r.send(a, Version::MAX, query(3));
    assert_eq!(r.upstream_received().len(), 1, "proxied again once back");
    r.upstream_lost();
    let _ = r.received(a);
    r.send(a, Version::MAX, query(4));
    assert_eq!(fail_of(&mut r, a, Version::MAX), Some((4, offline)));
    assert!(r.upstream_received().is_empty());
}

#[test]
fn over_max_outstanding_or_max_pending_is_service_busy_and_the_session_stays() {
    let mut r = router_with(2, |c| {
        c.requests.max_outstanding = 2;
        c.requests.max_pending = 3;
    });
    let a = open(&mut r, 0, Version::MAX, CONTROL);
    for invoke in [1, 2, 3] {
        r.send(a, Version::MAX, query(invoke));
    }
    let busy = |r: &mut MemRouter, id| match one(r, id, Version::MAX) {
        Message::ControlFailureConf(c) => (c.invoke_id, c.failure_code),
        other => panic!("expected CONTROL_FAILURE_CONF, got {other:?}"),
    };
    assert_eq!(busy(&mut r, a), (3, control_failure::CF_SERVICE_BUSY));
    let sent = r.upstream_received();
    assert_eq!(sent.len(), 2);
    // One answered: room for one more.
    r.upstream(QueryAgentStateConf {
        invoke_id: invoke_of(&sent[0]),
        ..Default::default()
    });
    assert!(matches!(
        one(&mut r, a, Version::MAX),
        Message::QueryAgentStateConf(_)
    ));
    r.send(a, Version::MAX, query(4));
    assert_eq!(r.upstream_received().len(), 1);
    // Router-wide: 3 pending now (a's two, then b's one); b's second is busy.
    let b = open(&mut r, 1, Version::MAX, CONTROL);
    r.send(b, Version::MAX, query(5));
    r.send(b, Version::MAX, query(6));
    assert_eq!(busy(&mut r, b), (6, control_failure::CF_SERVICE_BUSY));
    assert_eq!(r.upstream_received().len(), 1);
    assert_eq!((r.closed(a), r.closed(b)), (None, None));
}

#[test]
fn a_malformed_request_is_refused_with_25_and_not_sent() {
    let mut r = router(1);
    let id = open(&mut r, 0, Version::MAX, CONTROL);
    // QUERY_AGENT_STATE_REQ's fixed part is 16 bytes: give 6.
    r.send_raw(
        id,
        &raw_frame(msg::QUERY_AGENT_STATE_REQ, &[0, 0, 0, 8, 0, 0]),
    );
    assert_eq!(
        failure(&mut r, id, Version::MAX),
        (8, status::E_CTI_BAD_MESSAGE_FORMAT)
    );
    assert!(r.upstream_received().is_empty());
    assert_eq!(r.closed(id), None);
}

#[test]
fn a_closed_session_gets_nothing_and_its_reply_is_used_up() {
    let mut r = router(1);
    let id = open(&mut r, 0, Version::MAX, CONTROL);
    r.send(id, Version::MAX, query(1));
    let upstream_invoke = invoke_of(&r.upstream_received()[0]);
    r.disconnect(id);
    r.upstream(QueryAgentStateConf {
        invoke_id: upstream_invoke,
        ..Default::default()
    });
    // Answered (to nobody): not a stray, and no other session saw it.
    assert_eq!(r.ingest.metrics.snapshot().nr_stray_upstream_replies, 0);
    assert!(r.ingest.pending.is_empty());
}

fn v(n: u32) -> Version {
    Version::new(n).unwrap()
}

const CDU: u32 = service::PERIPHERAL_MONITOR | service::CALL_DATA_UPDATE;

fn set_call_data(invoke_id: u32) -> SetCallDataReq {
    SetCallDataReq {
        invoke_id,
        peripheral_id: PID,
        connection_call_id: 0x0100_0001,
        connection_device_id: Some("T1".into()),
        call_variable_1: Some("wrap".into()),
        ..Default::default()
    }
}

fn release_call(invoke_id: u32) -> ReleaseCallReq {
    ReleaseCallReq {
        invoke_id,
        peripheral_id: PID,
        connection_device_id_type: 0,
        connection_call_id: 0x0100_0001,
        connection_device_id: Some("T1".into()),
    }
}

fn release_conf(r: &mut MemRouter, id: SessionId) -> u32 {
    match one(r, id, Version::MAX) {
        Message::ReleaseCallConf(c) => c.invoke_id,
        other => panic!("expected RELEASE_CALL_CONF, got {other:?}"),
    }
}

/// Upstream the CTI Server sees one client: the first RELEASE_CALL would end
/// the call's data for every session. It goes upstream only from the last
/// session that wrote call data; the others are answered by the router.
#[test]
fn release_call_goes_upstream_only_from_the_last_session_that_wrote_call_data() {
    let mut r = router(2);
    let a = open(&mut r, 0, Version::MAX, CDU);
    let b = open(&mut r, 1, Version::MAX, CDU);
    let c = open(&mut r, 0, Version::MAX, CDU);
    r.send(a, Version::MAX, set_call_data(1));
    r.send(b, Version::MAX, set_call_data(2));
    for f in r.upstream_received() {
        r.upstream(SetCallDataConf {
            invoke_id: invoke_of(&f),
        });
    }
    assert!(matches!(
        one(&mut r, a, Version::MAX),
        Message::SetCallDataConf(_)
    ));
    assert!(matches!(
        one(&mut r, b, Version::MAX),
        Message::SetCallDataConf(_)
    ));

    // a releases while b still writes: answered here, nothing upstream.
    r.send(a, Version::MAX, release_call(3));
    assert_eq!(release_conf(&mut r, a), 3);
    // c never wrote on it: answered here too.
    r.send(c, Version::MAX, release_call(4));
    assert_eq!(release_conf(&mut r, c), 4);
    assert!(r.upstream_received().is_empty());
    // b, the last writer: its RELEASE_CALL goes upstream, the reply to b.
    r.send(b, Version::MAX, release_call(5));
    let sent = r.upstream_received();
    assert_eq!(sent.len(), 1);
    assert_eq!(frame_type(&sent[0]), msg::RELEASE_CALL_REQ);
    r.upstream(ReleaseCallConf {
        invoke_id: invoke_of(&sent[0]),
    });
    assert_eq!(release_conf(&mut r, b), 5);
    // Released: the next RELEASE_CALL on it goes upstream (nobody writes).
    r.send(a, Version::MAX, release_call(6));
    assert_eq!(r.upstream_received().len(), 1);
}

#[test]
fn the_last_writer_closing_releases_the_call_and_the_router_drops_the_reply() {
    let mut r = router(1);
    let a = open(&mut r, 0, Version::MAX, CDU);
    let b = open(&mut r, 0, Version::MAX, CDU);
    r.send(a, Version::MAX, set_call_data(1));
    r.send(b, Version::MAX, set_call_data(2));
    let sets = r.upstream_received();
    assert_eq!(sets.len(), 2);
    r.disconnect(a);
    assert!(
        r.upstream_received().is_empty(),
        "b still writes on the call"
    );
    r.disconnect(b);
    let sent = r.upstream_received();
    assert_eq!(sent.len(), 1, "the router releases the call itself");
    let Message::ReleaseCallReq(release) = decode_at(&sent[0], Version::MAX) else {
        panic!("{}", describe(&sent[0]))
    };
    assert_eq!(
        (
            release.peripheral_id,
            release.connection_call_id,
            release.connection_device_id.unwrap().as_bytes().to_vec()
        ),
        (PID, 0x0100_0001, b"T1".to_vec())
    );
    assert!(release.invoke_id & 0x8000_0000 != 0);
    r.upstream(ReleaseCallConf {
        invoke_id: release.invoke_id,
    });
    // Its own request's reply: neither delivered nor stray. (The two
    // SET_CALL_DATA wait for their replies, to nobody now.)
    assert_eq!(r.ingest.metrics.snapshot().nr_stray_upstream_replies, 0);
    assert_eq!(r.ingest.pending.len(), 2);
}

/// Requests are decoded at the session's version and re-encoded at the
/// upstream's, replies the other way (docs/requests.md §5 Versions).
#[test]
fn a_hold_at_v19_goes_upstream_at_v24_and_its_confirmation_comes_back_at_19() {
    use ctirouter::proto::msg::{HoldCallConf, HoldCallReq};
    let mut r = router(1);
    let id = open(&mut r, 0, v(19), CONTROL);
    let hold = HoldCallReq {
        invoke_id: 31,
        peripheral_id: PID,
        connection_call_id: 0x0100_0001,
        connection_device_id_type: 0,
        reservation: 0,
        connection_device_id: Some("3001".into()),
        agent_instrument: Some("3001".into()),
        ..Default::default()
    };
    r.send(id, v(19), hold.clone());
    let sent = r.upstream_received();
    assert_eq!(sent.len(), 1);
    let Message::HoldCallReq(upstream) = decode_at(&sent[0], Version::MAX) else {
        panic!("{}", describe(&sent[0]))
    };
    assert_eq!(
        HoldCallReq {
            invoke_id: 31,
            ..upstream.clone()
        },
        hold,
        "the same request, at v24"
    );
    r.upstream(HoldCallConf {
        invoke_id: upstream.invoke_id,
    });
    let got = r.received(id);
    assert_eq!(got.len(), 1);
    assert_eq!(
        decode_at(&got[0], v(19)),
        Message::HoldCallConf(HoldCallConf { invoke_id: 31 })
    );
}

#[test]
fn a_request_type_the_sessions_version_lacks_is_refused_with_48() {
    let mut r = router(1);
    let id = open(&mut r, 0, v(14), CONTROL);
    // AGENT_GREETING_CONTROL_REQ exists from v15.
    let body = [0, 0, 0, 9, 0, 0, 0x13, 0x88, 0, 1];
    r.send_raw(id, &raw_frame(msg::AGENT_GREETING_CONTROL_REQ, &body));
    assert_eq!(
        failure(&mut r, id, v(14)),
        (9, status::E_CTI_INVALID_MSG_TYPE_FOR_VERSION)
    );
    assert!(r.upstream_received().is_empty());
}

/// A desktop that connects while the CTI Server is away keeps its grant
/// (the last one known): its requests fail with 15 until the upstream is
/// back, then go through, without reopening.
#[test]
fn a_session_opened_while_the_upstream_is_away_has_control_once_it_is_back() {
    let mut r = router(1);
    r.upstream_lost();
    let id = open(&mut r, 0, Version::MAX, CONTROL);
    r.send(id, Version::MAX, query(1));
    assert_eq!(
        failure(&mut r, id, Version::MAX),
        (1, status::E_CTI_CTI_SERVER_OFFLINE)
    );
    r.upstream_back();
    let _ = r.received(id);
    r.send(id, Version::MAX, query(2));
    assert_eq!(r.upstream_received().len(), 1);
}

/// The CTI Server comes back granting less than before: a session granted
/// Client Control earlier is refused with 12 by the router, nothing is sent.
#[test]
fn a_service_the_upstream_no_longer_grants_is_refused_with_12() {
    let mut r = router(1);
    let id = open(&mut r, 0, Version::MAX, CONTROL);
    r.upstream_grants(Services::ALL_EVENTS);
    let _ = r.received(id);
    r.send(id, Version::MAX, query(4));
    assert_eq!(
        failure(&mut r, id, Version::MAX),
        (4, status::E_CTI_FUNCTION_NOT_AVAILABLE)
    );
    assert!(r.upstream_received().is_empty());
}
