//! Answers the router gives itself (docs/requests.md §6), on the routing
//! cores wired together in memory ([`MemRouter`]): the upstream counts the
//! requests it sees, and must see none where the router knows the answer.
//! Also Connection Monitor (granted and counted locally, §1).

use std::time::Duration;

use ctirouter::config::Config;
use ctirouter::ids::{Services, SessionId};
use ctirouter::memrouter::MemRouter;
use ctirouter::proto::constants::{agent_state, connection_type, lcs, msg, service, status};
use ctirouter::proto::group::SkillGroup;
use ctirouter::proto::msg::{
    AgentStateEvent, BeginCallEvent, ClientEventReportReq, FailureConf, OpenConf,
    QueryAgentStateConf, QueryAgentStateReq, QueryDeviceInfoConf, QueryDeviceInfoReq,
    RegisterVariablesReq, SnapshotCallReq, SnapshotDeviceReq, UserMessageEvent, UserMessageReq,
};
use ctirouter::proto::{
    decode_frame, CtiString, DecodeOptions, Message, MessageBody, NamedVar, Version,
};
use testkit::*;

const UPSTREAM: Services = Services(
    service::ALL_EVENTS
        | service::CLIENT_CONTROL
        | service::CALL_DATA_UPDATE
        | service::CONNECTION_MONITOR,
);
const DESKTOP: u32 = service::CLIENT_EVENTS | service::CLIENT_CONTROL;
const BRIDGE: u32 = service::ALL_EVENTS | service::CLIENT_CONTROL;

fn router(shards: usize) -> MemRouter {
    let mut config = Config::default();
    config.runtime.shards = shards;
    let mut r = MemRouter::new(config, &[PID]);
    r.upstream_grants(UPSTREAM);
    r
}

fn decode_at(frame: &[u8], version: Version) -> Message {
    decode_frame(frame, version, DecodeOptions::STRICT)
        .map(|(m, _)| m)
        .unwrap_or_else(|e| panic!("{e}: {}", describe(frame)))
}

/// Open a session; returns it and what it was granted.
fn open(r: &mut MemRouter, shard: usize, spec: &OpenSpec) -> (SessionId, u32) {
    let id = r.connect(shard).expect("admitted");
    r.send(id, spec.version, spec.request(1));
    let got = r.received(id);
    match got.first().map(|f| decode_at(f, spec.version)) {
        Some(Message::OpenConf(OpenConf {
            services_granted, ..
        })) => (id, services_granted),
        other => panic!("OPEN_REQ answered with {other:?}"),
    }
}

/// A desktop of agent `agent` on instrument `instrument`.
fn desktop(
    r: &mut MemRouter,
    shard: usize,
    version: Version,
    agent: &str,
    instrument: &str,
) -> SessionId {
    let spec = OpenSpec {
        peripheral_id: PID,
        agent_id: Some(agent.into()),
        agent_instrument: Some(instrument.into()),
        ..OpenSpec::new(version, DESKTOP)
    };
    let (id, granted) = open(r, shard, &spec);
    assert_eq!(granted, DESKTOP);
    id
}

/// The AGENT_STATE_EVENT the PG reports for agent `agent` on `instrument`.
fn agent_event(agent: &str, instrument: &str, state: u16) -> AgentStateEvent {
    let mut e = AgentStateEvent {
        peripheral_id: PID,
        skill_group_state: state,
        skill_group_number: 0xFFFF_FFFF,
        skill_group_id: 0xFFFF_FFFF,
        agent_state: state,
        mrd_id: 1,
        num_tasks: u32::from(state == agent_state::TALKING),
        agent_mode: 1,
        max_task_limit: 1,
        icm_agent_id: 5000 + agent.parse::<i32>().unwrap_or(0),
        agent_availability_status: u32::from(state == agent_state::AVAILABLE),
        department_id: 42,
        agent_id: Some(agent.into()),
        agent_extension: Some(instrument.into()),
        agent_instrument: Some(instrument.into()),
        skill_groups: vec![
            SkillGroup {
                number: Some(10),
                id: Some(110),
                priority: Some(1),
                state: Some(state),
            },
            SkillGroup {
                number: Some(20),
                id: Some(120),
                priority: Some(2),
                state: Some(state),
            },
        ],
        ..Default::default()
    };
    e.sync_counts();
    e
}

fn query_by_instrument(invoke_id: u32, instrument: &str) -> QueryAgentStateReq {
    QueryAgentStateReq {
        invoke_id,
        peripheral_id: PID,
        mrd_id: 1,
        agent_instrument: Some(instrument.into()),
        ..Default::default()
    }
}

/// The one frame session `id` got, decoded at `version`.
fn one(r: &mut MemRouter, id: SessionId, version: Version) -> Message {
    let got = r.received(id);
    assert_eq!(got.len(), 1, "one frame, got {:?}", shapes(&got));
    decode_at(&got[0], version)
}

/// What session `id` got after dropping events (agent-state events of its own agent).
fn replies(r: &mut MemRouter, id: SessionId, version: Version) -> Vec<Message> {
    r.received(id)
        .iter()
        .filter(|f| msg::is_reply(frame_type(f)))
        .map(|f| decode_at(f, version))
        .collect()
}

fn invoke_of(frame: &[u8]) -> u32 {
    u32::from_be_bytes(frame[8..12].try_into().unwrap())
}

fn counters(r: &MemRouter) -> (u64, u64) {
    let m = r.ingest.metrics.snapshot();
    (m.nr_requests_local, m.nr_requests_proxied)
}

#[test]
fn an_agent_reported_in_this_upstream_session_has_its_state_answered_by_the_router() {
    let mut r = router(2);
    r.upstream(agent_event("1001", "3001", agent_state::AVAILABLE));
    for (shard, version) in [(0, v(13)), (1, v(19)), (0, v(20)), (1, Version::MAX)] {
        let id = desktop(&mut r, shard, version, "1001", "3001");
        // The desktop names nothing: its agent is filled in from its OPEN_REQ.
        r.send(
            id,
            version,
            QueryAgentStateReq {
                invoke_id: 77,
                peripheral_id: PID,
                mrd_id: 1,
                ..Default::default()
            },
        );
        let Message::QueryAgentStateConf(conf) = one(&mut r, id, version) else {
            panic!("expected QUERY_AGENT_STATE_CONF at {version}");
        };
        let mut expected = QueryAgentStateConf {
            invoke_id: 77,
            agent_state: agent_state::AVAILABLE,
            mrd_id: 1,
            agent_mode: 1,
            max_task_limit: 1,
            icm_agent_id: 6001,
            agent_availability_status: 1,
            department_id: if version.number() >= 19 { 42 } else { 0 },
            agent_id: Some("1001".into()),
            agent_extension: Some("3001".into()),
            agent_instrument: Some("3001".into()),
            skill_groups: agent_event("1001", "3001", agent_state::AVAILABLE).skill_groups,
            ..Default::default()
        };
        expected.sync_counts();
        assert_eq!(conf, expected, "at {version}");
    }
    assert!(r.upstream_received().is_empty(), "the PG was asked nothing");
    assert_eq!(counters(&r), (4, 0));

    // The next report is what the router answers with.
    r.upstream(agent_event("1001", "3001", agent_state::TALKING));
    let bridge = open(&mut r, 0, &OpenSpec::new(Version::MAX, BRIDGE)).0;
    r.received(bridge);
    // An All Events session may name the agent by ICMAgentID alone.
    r.send(
        bridge,
        Version::MAX,
        QueryAgentStateReq {
            invoke_id: 5,
            peripheral_id: PID,
            mrd_id: 1,
            icm_agent_id: 6001,
            ..Default::default()
        },
    );
    match replies(&mut r, bridge, Version::MAX).as_slice() {
        [Message::QueryAgentStateConf(c)] => {
            assert_eq!(
                (c.invoke_id, c.agent_state, c.num_tasks),
                (5, agent_state::TALKING, 1)
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(r.upstream_received().is_empty());
}

#[test]
fn an_agent_not_reported_since_the_upstream_came_back_is_asked_upstream_once_then_known() {
    let mut r = router(1);
    r.upstream(agent_event("1001", "3001", agent_state::AVAILABLE));
    let bridge = open(&mut r, 0, &OpenSpec::new(Version::MAX, BRIDGE)).0;
    r.upstream_lost();
    r.upstream_back();
    r.received(bridge);

    // Stale: the PG may have changed it while the router was away.
    r.send(bridge, Version::MAX, query_by_instrument(1, "3001"));
    let sent = r.upstream_received();
    assert_eq!(sent.len(), 1, "proxied");
    assert_eq!(frame_type(&sent[0]), msg::QUERY_AGENT_STATE_REQ);
    let mut conf = QueryAgentStateConf {
        invoke_id: invoke_of(&sent[0]),
        agent_state: agent_state::NOT_READY,
        mrd_id: 1,
        icm_agent_id: 6001,
        agent_id: Some("1001".into()),
        agent_extension: Some("3001".into()),
        agent_instrument: Some("3001".into()),
        ..Default::default()
    };
    conf.sync_counts();
    r.upstream(conf);
    match replies(&mut r, bridge, Version::MAX).as_slice() {
        [Message::QueryAgentStateConf(c)] => {
            assert_eq!((c.invoke_id, c.agent_state), (1, agent_state::NOT_READY))
        }
        other => panic!("{other:?}"),
    }
    // Refreshed from the CONF: the next ask is answered here.
    r.send(bridge, Version::MAX, query_by_instrument(2, "3001"));
    match replies(&mut r, bridge, Version::MAX).as_slice() {
        [Message::QueryAgentStateConf(c)] => {
            assert_eq!((c.invoke_id, c.agent_state), (2, agent_state::NOT_READY))
        }
        other => panic!("{other:?}"),
    }
    assert!(r.upstream_received().is_empty());

    // An agent never reported, or one on another media routing domain: asked upstream.
    r.send(bridge, Version::MAX, query_by_instrument(3, "3999"));
    let mut other_mrd = query_by_instrument(4, "3001");
    other_mrd.mrd_id = 2;
    r.send(bridge, Version::MAX, other_mrd);
    assert_eq!(r.upstream_received().len(), 2);
}

#[test]
fn identical_queries_in_flight_share_one_upstream_request_and_its_answer_or_failure() {
    let mut r = router(2);
    let a = open(&mut r, 0, &OpenSpec::new(v(19), BRIDGE)).0;
    let b = open(&mut r, 1, &OpenSpec::new(Version::MAX, BRIDGE)).0;
    r.received(a);
    r.received(b);
    r.send(a, v(19), query_by_instrument(7, "3001"));
    r.send(b, Version::MAX, query_by_instrument(9, "3001"));
    let sent = r.upstream_received();
    assert_eq!(sent.len(), 1, "one request for both askers");
    let mut conf = QueryAgentStateConf {
        invoke_id: invoke_of(&sent[0]),
        agent_state: agent_state::AVAILABLE,
        mrd_id: 1,
        agent_instrument: Some("3001".into()),
        ..Default::default()
    };
    conf.sync_counts();
    r.upstream(conf);
    for (id, version, invoke) in [(a, v(19), 7), (b, Version::MAX, 9)] {
        match replies(&mut r, id, version).as_slice() {
            [Message::QueryAgentStateConf(c)] => assert_eq!(c.invoke_id, invoke),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(counters(&r), (1, 1), "one shared, one proxied");

    // A failure is shared the same way (and not kept).
    r.send(a, v(19), query_by_instrument(8, "3002"));
    r.send(b, Version::MAX, query_by_instrument(10, "3002"));
    let sent = r.upstream_received();
    assert_eq!(sent.len(), 1);
    r.upstream(FailureConf {
        invoke_id: invoke_of(&sent[0]),
        status: status::E_CTI_INVALID_AGENT_DATA,
        text: None,
    });
    for (id, version, invoke) in [(a, v(19), 8), (b, Version::MAX, 10)] {
        match replies(&mut r, id, version).as_slice() {
            [Message::FailureConf(f)] => {
                assert_eq!(
                    (f.invoke_id, f.status),
                    (invoke, status::E_CTI_INVALID_AGENT_DATA)
                )
            }
            other => panic!("{other:?}"),
        }
    }
    r.send(a, v(19), query_by_instrument(11, "3002"));
    assert_eq!(r.upstream_received().len(), 1, "asked again");

    // Timed out: both askers hear it.
    r.send(b, Version::MAX, query_by_instrument(12, "3002"));
    r.advance(Duration::from_secs(16));
    let timed_out = |m: &Message, invoke| matches!(m, Message::FailureConf(f) if f.invoke_id == invoke && f.status == status::E_CTI_TIMEOUT);
    let got_a = replies(&mut r, a, v(19));
    let got_b = replies(&mut r, b, Version::MAX);
    assert!(got_a.len() == 1 && timed_out(&got_a[0], 11), "{got_a:?}");
    assert!(got_b.len() == 1 && timed_out(&got_b[0], 12), "{got_b:?}");
}

#[test]
fn device_information_is_asked_upstream_once_per_device_and_session() {
    let mut r = router(1);
    let bridge = open(&mut r, 0, &OpenSpec::new(Version::MAX, BRIDGE)).0;
    r.received(bridge);
    let ask = |invoke_id, device: &str| QueryDeviceInfoReq {
        invoke_id,
        peripheral_id: PID,
        agent_instrument: Some(device.into()),
        ..Default::default()
    };
    r.send(bridge, Version::MAX, ask(1, "3001"));
    let sent = r.upstream_received();
    assert_eq!(sent.len(), 1);
    r.upstream(QueryDeviceInfoConf {
        invoke_id: invoke_of(&sent[0]),
        peripheral_type: 1,
        type_of_device: 2,
        max_active_calls: 3,
        ..Default::default()
    });
    let first = replies(&mut r, bridge, Version::MAX);
    let desk = desktop(&mut r, 0, v(15), "1001", "3001");
    r.send(desk, v(15), ask(2, ""));
    let second = replies(&mut r, desk, v(15));
    assert!(r.upstream_received().is_empty(), "kept");
    for (got, invoke) in [(first, 1), (second, 2)] {
        match got.as_slice() {
            [Message::QueryDeviceInfoConf(c)] => {
                assert_eq!((c.invoke_id, c.max_active_calls), (invoke, 3))
            }
            other => panic!("{other:?}"),
        }
    }
    // Another device is its own question; a new upstream session forgets.
    r.send(bridge, Version::MAX, ask(3, "3002"));
    assert_eq!(r.upstream_received().len(), 1);
    r.upstream_lost();
    r.upstream_back();
    r.received(bridge);
    r.send(bridge, Version::MAX, ask(4, "3001"));
    assert_eq!(
        r.upstream_received().len(),
        1,
        "asked again after the upstream came back"
    );
}

#[test]
fn connection_monitor_is_granted_by_the_router_and_each_open_and_end_is_counted() {
    let mut r = router(1);
    let asks = service::ALL_EVENTS | service::CONNECTION_MONITOR;
    let (id, granted) = open(&mut r, 0, &OpenSpec::new(v(19), asks));
    assert_eq!(granted, asks);
    let (plain, _) = open(&mut r, 0, &OpenSpec::new(v(19), service::ALL_EVENTS));
    let m = r.ingest.metrics.snapshot();
    assert_eq!(
        (
            m.nr_connection_monitor_opens,
            m.nr_connection_monitor_closes
        ),
        (1, 0)
    );
    r.disconnect(id);
    r.disconnect(plain);
    r.run();
    let m = r.ingest.metrics.snapshot();
    assert_eq!(
        (
            m.nr_connection_monitor_opens,
            m.nr_connection_monitor_closes
        ),
        (1, 1)
    );
}

/// BEGIN_CALL of call `c` (so the router knows the call from its start).
fn begin(c: CallRef) -> BeginCallEvent {
    BeginCallEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        call_type: 1,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        connection_device_id: Some(c.dev.into()),
        ani: Some("5551000".into()),
        dnis: Some("8000".into()),
        call_variable_1: Some("order 17".into()),
        ..Default::default()
    }
}

#[test]
fn a_device_and_a_call_the_router_followed_are_snapshotted_by_the_router() {
    let mut r = router(1);
    r.upstream(agent_event("1001", "3001", agent_state::AVAILABLE));
    let c = call(0x0100_0001, "T1");
    r.upstream(begin(c));
    let mut ringing = delivered(c, "3001", "5551000", "3001", None);
    ringing.local_connection_state = lcs::ALERTING;
    r.upstream(ringing);
    let desk = desktop(&mut r, 0, v(19), "1001", "3001");
    r.received(desk);
    r.send(
        desk,
        v(19),
        SnapshotDeviceReq {
            invoke_id: 3,
            peripheral_id: PID,
            ..Default::default()
        },
    );
    match replies(&mut r, desk, v(19)).as_slice() {
        [Message::SnapshotDeviceConf(d)] => {
            assert_eq!(d.invoke_id, 3);
            assert_eq!(d.calls.len(), 1, "{d:?}");
            assert_eq!(d.calls[0].connection_call_id, Some(c.id));
            assert_eq!(d.calls[0].call_state, Some(lcs::ALERTING));
        }
        other => panic!("{other:?}"),
    }
    r.send(
        desk,
        v(19),
        SnapshotCallReq {
            invoke_id: 4,
            peripheral_id: PID,
            connection_call_id: c.id,
            connection_device_id_type: connection_type::DYNAMIC,
            connection_device_id: Some(c.dev.into()),
        },
    );
    match replies(&mut r, desk, v(19)).as_slice() {
        [Message::SnapshotCallConf(s)] => {
            assert_eq!(s.invoke_id, 4);
            assert_eq!(s.dnis.as_ref().map(|d| d.as_bytes()), Some(&b"8000"[..]));
            assert_eq!(
                s.call_variable_1.as_ref().map(|d| d.as_bytes()),
                Some(&b"order 17"[..])
            );
            let alerting = s
                .call_devices
                .iter()
                .find(|d| d.device_id.as_ref().map(|d| d.as_bytes()) == Some(&b"3001"[..]))
                .expect("the agent's device is a party");
            assert_eq!(alerting.connection_state, Some(lcs::ALERTING));
        }
        other => panic!("{other:?}"),
    }
    assert!(r.upstream_received().is_empty(), "the PG was asked nothing");

    // A device the router never saw, and a call it did not see begin: asked upstream.
    let bridge = open(&mut r, 0, &OpenSpec::new(Version::MAX, BRIDGE)).0;
    r.received(bridge);
    r.send(
        bridge,
        Version::MAX,
        SnapshotDeviceReq {
            invoke_id: 5,
            peripheral_id: PID,
            agent_instrument: Some("3999".into()),
            ..Default::default()
        },
    );
    let late = call(0x0100_0002, "T2");
    r.upstream(delivered(late, "3002", "5551001", "3002", None));
    r.send(
        bridge,
        Version::MAX,
        SnapshotCallReq {
            invoke_id: 6,
            peripheral_id: PID,
            connection_call_id: late.id,
            connection_device_id_type: connection_type::DYNAMIC,
            connection_device_id: Some(late.dev.into()),
        },
    );
    let sent: Vec<u32> = r
        .upstream_received()
        .iter()
        .map(|f| frame_type(f))
        .collect();
    assert_eq!(sent, [msg::SNAPSHOT_DEVICE_REQ, msg::SNAPSHOT_CALL_REQ]);
}

#[test]
fn a_user_message_to_a_router_client_reaches_its_sessions_and_others_go_upstream() {
    let mut r = router(2);
    let sender = open(
        &mut r,
        0,
        &OpenSpec::new(v(14), service::ALL_EVENTS).client("wallboard", b""),
    )
    .0;
    let to_a = open(
        &mut r,
        1,
        &OpenSpec::new(v(19), service::ALL_EVENTS).client("recorder", b""),
    )
    .0;
    let to_b = open(
        &mut r,
        0,
        &OpenSpec::new(Version::MAX, service::CLIENT_MONITOR).client("recorder", b""),
    )
    .0;
    let other = open(
        &mut r,
        1,
        &OpenSpec::new(v(20), service::ALL_EVENTS).client("crm", b""),
    )
    .0;
    for id in [sender, to_a, to_b, other] {
        r.received(id);
    }
    let message = |invoke_id, distribution, to: Option<&str>| UserMessageReq {
        invoke_id,
        peripheral_id: PID,
        distribution,
        client_id: to.map(Into::into),
        text: Some("lunch is here".into()),
        ..Default::default()
    };
    r.send(sender, v(14), message(8, 0, Some("recorder")));
    match replies(&mut r, sender, v(14)).as_slice() {
        [Message::UserMessageConf(c)] => assert_eq!(c.invoke_id, 8),
        other => panic!("{other:?}"),
    }
    for (id, version) in [(to_a, v(19)), (to_b, Version::MAX)] {
        let got: Vec<Message> = r
            .received(id)
            .iter()
            .map(|f| decode_at(f, version))
            .collect();
        match got.as_slice() {
            [Message::UserMessageEvent(e)] => {
                assert_eq!(e.distribution, 0);
                assert_eq!(
                    e.client_id.as_ref().map(|c| c.as_bytes()),
                    Some(&b"wallboard"[..])
                );
                assert_eq!(
                    e.text.as_ref().map(|c| c.as_bytes()),
                    Some(&b"lunch is here"[..])
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(r.received(other).is_empty(), "not addressed to crm");
    assert!(r.upstream_received().is_empty());

    // To everyone, or to a client the router does not hold: the PG delivers it.
    r.send(sender, v(14), message(9, 3, None));
    r.send(sender, v(14), message(10, 0, Some("pg-side-app")));
    let sent = r.upstream_received();
    let types: Vec<u32> = sent.iter().map(|f| frame_type(f)).collect();
    assert_eq!(types, [msg::USER_MESSAGE_REQ, msg::USER_MESSAGE_REQ]);
    // The PG's USER_MESSAGE_EVENT reaches every router session.
    r.upstream(UserMessageEvent {
        icm_central_controller_time: 1,
        distribution: 3,
        client_id: Some("supervisor-7".into()),
        text: Some("all hands".into()),
    });
    for (id, version) in [
        (sender, v(14)),
        (to_a, v(19)),
        (to_b, Version::MAX),
        (other, v(20)),
    ] {
        let events: Vec<Message> = r
            .received(id)
            .iter()
            .filter(|f| frame_type(f) == msg::USER_MESSAGE_EVENT)
            .map(|f| decode_at(f, version))
            .collect();
        assert_eq!(events.len(), 1, "at {version}");
    }
}

#[test]
fn registered_variables_are_the_only_ones_a_session_is_sent_at_v14_v19_and_v24() {
    let mut r = router(1);
    let mut sessions = Vec::new();
    for version in [v(14), v(19), Version::MAX] {
        let registered = open(&mut r, 0, &OpenSpec::new(version, service::ALL_EVENTS)).0;
        let plain = open(&mut r, 0, &OpenSpec::new(version, service::ALL_EVENTS)).0;
        let mut register = RegisterVariablesReq {
            invoke_id: 12,
            call_variable_mask: 0x0002, // CallVariable2 only
            named_variables: vec![NamedVar {
                name: "user.account".into(),
                value: CtiString::from(""),
            }],
            ..Default::default()
        };
        register.sync_counts();
        r.send(registered, version, register);
        match replies(&mut r, registered, version).as_slice() {
            [Message::RegisterVariablesConf(c)] => assert_eq!(c.invoke_id, 12),
            other => panic!("{other:?}"),
        }
        r.received(plain);
        sessions.push((version, registered, plain));
    }
    let c = call(0x0100_0003, "T3");
    let mut event = begin(c);
    event.call_variable_2 = Some("two".into());
    event.named_variables = vec![
        NamedVar {
            name: "user.account".into(),
            value: "A-17".into(),
        },
        NamedVar {
            name: "user.secret".into(),
            value: "s3cr3t".into(),
        },
    ];
    event.sync_counts();
    r.upstream(event.clone());
    for (version, registered, plain) in sessions {
        let got = r.received(registered);
        assert_eq!(got.len(), 1, "at {version}");
        let Message::BeginCallEvent(filtered) = decode_at(&got[0], version) else {
            panic!("at {version}");
        };
        assert_eq!(filtered.call_variable_1, None, "at {version}");
        assert_eq!(
            filtered.call_variable_2, event.call_variable_2,
            "at {version}"
        );
        let names: Vec<&[u8]> = filtered
            .named_variables
            .iter()
            .map(|v| v.name.as_bytes())
            .collect();
        assert_eq!(names, [&b"user.account"[..]], "at {version}");
        assert_eq!(filtered.num_named_variables, 1);
        // A session that registered nothing gets the PG's bytes unchanged.
        let whole = r.received(plain);
        assert_eq!(
            whole,
            [Message::from(event.clone()).to_frame(version).unwrap()],
            "at {version}"
        );
    }
}

#[test]
fn a_client_event_report_is_confirmed_by_the_router_at_every_state() {
    let mut r = router(1);
    let id = open(&mut r, 0, &OpenSpec::new(v(13), service::CLIENT_MONITOR)).0;
    r.received(id);
    for (invoke_id, state) in [(1, 0), (2, 1), (3, 2)] {
        r.send(
            id,
            v(13),
            ClientEventReportReq {
                invoke_id,
                state,
                object_name: Some("desktop".into()),
                text: Some("disk almost full".into()),
            },
        );
        match one(&mut r, id, v(13)) {
            Message::ClientEventReportConf(c) => assert_eq!(c.invoke_id, invoke_id),
            other => panic!("{other:?}"),
        }
    }
    assert!(r.upstream_received().is_empty());
    assert_eq!(r.closed(id), None);
}
