//! Answers the router gives itself (docs/requests.md §6), on the routing
//! cores wired together in memory ([`MemRouter`]): the upstream counts the
//! requests it sees, and must see none where the router knows the answer.
//! Also Connection Monitor (granted and counted locally, §1).

use std::time::Duration;

use ctirouter::config::Config;
use ctirouter::ids::{Services, SessionId};
use ctirouter::memrouter::MemRouter;
use ctirouter::proto::constants::{agent_state, msg, service, status};
use ctirouter::proto::group::SkillGroup;
use ctirouter::proto::msg::{
    AgentStateEvent, FailureConf, OpenConf, QueryAgentStateConf, QueryAgentStateReq,
    QueryDeviceInfoConf, QueryDeviceInfoReq,
};
use ctirouter::proto::{decode_frame, DecodeOptions, Message, MessageBody, Version};
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
fn desktop(r: &mut MemRouter, shard: usize, version: Version, agent: &str, instrument: &str) -> SessionId {
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
            assert_eq!((c.invoke_id, c.agent_state, c.num_tasks), (5, agent_state::TALKING, 1))
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
                assert_eq!((f.invoke_id, f.status), (invoke, status::E_CTI_INVALID_AGENT_DATA))
            }
            other => panic!("{other:?}"),
        }
    }
    r.send(a, v(19), query_by_instrument(11, "3002"));
    assert_eq!(r.upstream_received().len(), 1, "asked again");

    // Timed out: both askers hear it.
    r.send(b, Version::MAX, query_by_instrument(12, "3002"));
    r.advance(Duration::from_secs(16));
    let timed_out = |m: &Message, invoke| {
        matches!(m, Message::FailureConf(f) if f.invoke_id == invoke && f.status == status::E_CTI_TIMEOUT)
    };
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
    assert_eq!(r.upstream_received().len(), 1, "asked again after the upstream came back");
}

#[test]
fn connection_monitor_is_granted_by_the_router_and_each_open_and_end_is_counted() {
    let mut r = router(1);
    let asks = service::ALL_EVENTS | service::CONNECTION_MONITOR;
    let (id, granted) = open(&mut r, 0, &OpenSpec::new(v(19), asks));
    assert_eq!(granted, asks);
    let (plain, _) = open(&mut r, 0, &OpenSpec::new(v(19), service::ALL_EVENTS));
    let m = r.ingest.metrics.snapshot();
    assert_eq!((m.nr_connection_monitor_opens, m.nr_connection_monitor_closes), (1, 0));
    r.disconnect(id);
    r.disconnect(plain);
    r.run();
    let m = r.ingest.metrics.snapshot();
    assert_eq!((m.nr_connection_monitor_opens, m.nr_connection_monitor_closes), (1, 1));
}
