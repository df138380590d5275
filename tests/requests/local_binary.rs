//! The answers the router gives itself (docs/requests.md §6) through the
//! router binary: raw clients at v14, v19 and v24 on loopback, a scripted
//! fake CTI Server ([`ProxyPg`]) behind the router that grants what it is
//! asked for, reports agents and a call, and records every request it
//! reads (heartbeats and CLOSE aside). Where the contract says the router
//! answers, the fake must have read nothing; where it does not know the
//! answer, the fake reads exactly that request.

use std::time::Duration;

use crate::fake_cti::{
    client_entry, config, desk_spec, open_when_up, until_barrier, Answer, ProxyPg, Seen,
};
use crate::BIN;
use ctirouter::proto::constants::{agent_state, connection_type, lcs, msg, service, status};
use ctirouter::proto::msg::*;
use ctirouter::proto::{CtiString, Message, MessageBody, NamedVar, Version};
use testkit::*;

const V24: Version = Version::MAX;
/// The versions the downstream clients speak.
const VERSIONS: [u32; 3] = [14, 19, 24];
/// All Events + Client Control: a bridge that may ask about any agent.
const BRIDGE: u32 = service::ALL_EVENTS | service::CLIENT_CONTROL;
/// The call the fake reports: begun, ringing at 3002, answered there.
const CALL: CallRef = call(0x0100_0001, "T1");
/// The requests the fake must have read where the router answers.
const NOTHING: [u32; 0] = [];
/// How long a request that is not proxied is given to reach the fake anyway.
const QUIET: Duration = Duration::from_millis(300);

fn s(text: &str) -> Option<CtiString> {
    Some(text.into())
}

/// A fake CTI Server at v24: QUERY_AGENT_STATE about anyone → LOGOUT,
/// SNAPSHOT_CALL → FAILURE_CONF(E_CTI_INVALID_CALLID), QUERY_DEVICE_INFO →
/// nothing until the test answers, anything else → FAILURE_CONF(12).
fn fake_pg() -> ProxyPg {
    ProxyPg::start(V24, |_, request| match request {
        Message::QueryAgentStateReq(r) => Answer::Reply(vec![QueryAgentStateConf {
            invoke_id: r.invoke_id,
            agent_state: agent_state::LOGOUT,
            agent_instrument: r.agent_instrument.clone(),
            ..Default::default()
        }
        .into()]),
        Message::SnapshotCallReq(r) => Answer::Reply(vec![FailureConf {
            invoke_id: r.invoke_id,
            status: status::E_CTI_INVALID_CALLID,
            ..Default::default()
        }
        .into()]),
        Message::QueryDeviceInfoReq(_) => Answer::Silent,
        other => Answer::Reply(vec![FailureConf {
            invoke_id: request_invoke_id(other),
            status: status::E_CTI_FUNCTION_NOT_AVAILABLE,
            ..Default::default()
        }
        .into()]),
    })
}

fn request_invoke_id(m: &Message) -> u32 {
    let frame = m.to_frame(V24).expect("encodable");
    be32(&frame, 8)
}

/// The router binary in front of `pg`: desktops "desk" (Client Events +
/// Client Control) and bridges "bridge" may control; "test" (a plain
/// [`OpenSpec`]) and the user-message clients only watch.
fn router_for(pg: &ProxyPg) -> Proc {
    let mut clients = client_entry("desk", &["client-events", "client-control"])
        + &client_entry("bridge", &["all-events", "client-control"]);
    for watcher in ["test", "wallboard", "recorder", "crm"] {
        clients += &client_entry(watcher, &["all-events"]);
    }
    router(BIN, &config(&[pg.addr()], V24, &clients), &[])
}

/// The AGENT_STATE_EVENT the fake reports for `agent` on `instrument`.
fn reported(agent: &str, instrument: &str, state: u16) -> AgentStateEvent {
    AgentStateEvent {
        mrd_id: 1,
        skill_group_number: 10,
        skill_group_id: 110,
        skill_group_priority: 1,
        num_tasks: u32::from(state == agent_state::TALKING),
        icm_agent_id: 5000 + agent.parse::<i32>().unwrap_or(0),
        ..agent_ev(agent, instrument, state)
    }
}

/// BEGIN_CALL of [`CALL`] with its data.
fn begin() -> BeginCallEvent {
    BeginCallEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        call_type: 1,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: CALL.id,
        connection_device_id: s(CALL.dev),
        ani: s("5551000"),
        dnis: s("8000"),
        call_variable_1: s("order 17"),
        ..Default::default()
    }
}

/// The fake reports agents 1001 (AVAILABLE) and 1002 (TALKING on
/// [`CALL`]); returns once `watcher` (an All Events session) has seen it
/// all, so the router has too.
fn report_agents_and_call(pg: &ProxyPg, watcher: &mut Client) {
    pg.send(reported("1001", "3001", agent_state::AVAILABLE));
    pg.send(begin());
    let mut ringing = delivered(CALL, "3002", "5551000", "3002", None);
    ringing.local_connection_state = lcs::ALERTING;
    pg.send(ringing);
    let mut answered = established(CALL, "3002", "5551000");
    answered.local_connection_state = lcs::CONNECT;
    pg.send(answered);
    pg.send(reported("1002", "3002", agent_state::TALKING));
    pg.barrier("reported");
    until_barrier(watcher, "reported");
}

/// Types of the requests the fake read.
fn types(seen: &[Seen]) -> Vec<u32> {
    seen.iter().map(|r| frame_type(&r.frame)).collect()
}

/// The reply to `invoke` on `client`, decoded at its version.
fn answer(client: &mut Client, invoke: u32) -> Message {
    let version = client.version;
    decode_strict(&client.reply(invoke), version)
}

#[test]
fn agent_state_and_snapshots_are_answered_by_the_router_binary_at_v14_v19_v24() {
    let pg = fake_pg();
    let router = router_for(&pg);
    let bridge_spec = OpenSpec::new(v(19), BRIDGE).client("bridge", b"");
    let (mut bridge, _) = open_when_up(router.addr(), &bridge_spec);
    report_agents_and_call(&pg, &mut bridge);

    for number in VERSIONS {
        let version = v(number);
        let spec = desk_spec(version, "desk", "1002", "3002");
        let (mut desk, conf) = open_when_up(router.addr(), &spec);
        assert_eq!(conf.services_granted, spec.services, "at v{number}");
        desk.send_at(
            QueryAgentStateReq {
                invoke_id: 10,
                peripheral_id: PID,
                mrd_id: 1,
                ..Default::default()
            },
            version,
        );
        match answer(&mut desk, 10) {
            Message::QueryAgentStateConf(c) => {
                assert_eq!(c.invoke_id, 10);
                assert_eq!(c.agent_state, agent_state::TALKING, "at v{number}");
                assert_eq!((&c.agent_id, c.num_tasks), (&s("1002"), 1));
                assert_eq!(c.skill_groups.len(), 1, "at v{number}: {c:?}");
                assert_eq!(c.skill_groups[0].number, Some(10));
            }
            other => panic!("at v{number}: {other:?}"),
        }
        desk.send_at(
            SnapshotDeviceReq {
                invoke_id: 11,
                peripheral_id: PID,
                ..Default::default()
            },
            version,
        );
        match answer(&mut desk, 11) {
            Message::SnapshotDeviceConf(d) => {
                assert_eq!(d.calls.len(), 1, "at v{number}: {d:?}");
                assert_eq!(d.calls[0].connection_call_id, Some(CALL.id));
                assert_eq!(d.calls[0].connection_device_id, s(CALL.dev));
                assert_eq!(d.calls[0].call_state, Some(lcs::CONNECT));
            }
            other => panic!("at v{number}: {other:?}"),
        }
        desk.send_at(
            SnapshotCallReq {
                invoke_id: 12,
                peripheral_id: PID,
                connection_call_id: CALL.id,
                connection_device_id_type: connection_type::DYNAMIC,
                connection_device_id: s(CALL.dev),
            },
            version,
        );
        match answer(&mut desk, 12) {
            Message::SnapshotCallConf(c) => {
                assert_eq!((&c.ani, &c.dnis), (&s("5551000"), &s("8000")));
                assert_eq!(c.call_variable_1, s("order 17"), "at v{number}");
                let agent = c
                    .call_devices
                    .iter()
                    .find(|d| d.device_id == s("3002"))
                    .unwrap_or_else(|| panic!("at v{number}: 3002 is a party: {c:?}"));
                assert_eq!(agent.connection_state, Some(lcs::CONNECT));
            }
            other => panic!("at v{number}: {other:?}"),
        }
    }
    // Another agent, asked by a bridge: from the router too.
    bridge.send_at(
        QueryAgentStateReq {
            invoke_id: 20,
            peripheral_id: PID,
            mrd_id: 1,
            agent_instrument: s("3001"),
            ..Default::default()
        },
        v(19),
    );
    match answer(&mut bridge, 20) {
        Message::QueryAgentStateConf(c) => {
            assert_eq!(
                (c.agent_state, &c.agent_id),
                (agent_state::AVAILABLE, &s("1001"))
            )
        }
        other => panic!("{other:?}"),
    }
    std::thread::sleep(QUIET);
    assert_eq!(
        types(&pg.seen()),
        NOTHING,
        "the fake CTI Server was asked nothing"
    );

    // An agent and a call the router never saw: asked upstream, exactly.
    bridge.send_at(
        QueryAgentStateReq {
            invoke_id: 21,
            peripheral_id: PID,
            mrd_id: 1,
            agent_instrument: s("3999"),
            ..Default::default()
        },
        v(19),
    );
    match answer(&mut bridge, 21) {
        Message::QueryAgentStateConf(c) => {
            assert_eq!(c.invoke_id, 21);
            assert_eq!(
                (c.agent_state, &c.agent_instrument),
                (agent_state::LOGOUT, &s("3999")),
                "the fake's answer"
            );
        }
        other => panic!("{other:?}"),
    }
    bridge.send_at(
        SnapshotCallReq {
            invoke_id: 22,
            peripheral_id: PID,
            connection_call_id: 0x0100_0099,
            connection_device_id_type: connection_type::DYNAMIC,
            connection_device_id: s("T9"),
        },
        v(19),
    );
    match answer(&mut bridge, 22) {
        Message::FailureConf(f) => assert_eq!(f.status, status::E_CTI_INVALID_CALLID),
        other => panic!("{other:?}"),
    }
    let seen = pg.wait_seen(2, WAIT);
    assert_eq!(
        types(&seen),
        [msg::QUERY_AGENT_STATE_REQ, msg::SNAPSHOT_CALL_REQ]
    );
    match decode_strict(&seen[0].frame, V24) {
        Message::QueryAgentStateReq(r) => assert_eq!(r.agent_instrument, s("3999")),
        other => panic!("{other:?}"),
    }
    match decode_strict(&seen[1].frame, V24) {
        Message::SnapshotCallReq(r) => assert_eq!(r.connection_call_id, 0x0100_0099),
        other => panic!("{other:?}"),
    }
}

#[test]
fn identical_device_info_queries_in_flight_reach_the_upstream_once() {
    let pg = fake_pg();
    let router = router_for(&pg);
    let bridge = |number| OpenSpec::new(v(number), BRIDGE).client("bridge", b"");
    let (mut first, _) = open_when_up(router.addr(), &bridge(19));
    let (mut second, _) = open_when_up(router.addr(), &bridge(24));
    let ask = |invoke_id| QueryDeviceInfoReq {
        invoke_id,
        peripheral_id: PID,
        agent_instrument: s("3001"),
        ..Default::default()
    };
    first.send_at(ask(31), v(19));
    second.send_at(ask(32), V24);
    let seen = pg.wait_seen(1, WAIT);
    std::thread::sleep(QUIET);
    assert_eq!(
        types(&pg.seen()),
        [msg::QUERY_DEVICE_INFO_REQ],
        "one upstream"
    );
    pg.send(QueryDeviceInfoConf {
        invoke_id: seen[0].invoke_id(),
        peripheral_type: PT,
        class_of_device: 1,
        max_active_calls: 2,
        max_held_calls: 1,
        max_devices_in_conference: 6,
        ..Default::default()
    });
    for (client, invoke) in [(&mut first, 31), (&mut second, 32)] {
        match answer(client, invoke) {
            Message::QueryDeviceInfoConf(c) => {
                assert_eq!(c.invoke_id, invoke);
                assert_eq!(
                    (
                        c.peripheral_type,
                        c.max_active_calls,
                        c.max_devices_in_conference
                    ),
                    (PT, 2, 6)
                );
            }
            other => panic!("{other:?}"),
        }
    }
    // Asked again later, at v14: the kept answer.
    let (mut third, _) = open_when_up(router.addr(), &bridge(14));
    third.send_at(ask(33), v(14));
    match answer(&mut third, 33) {
        Message::QueryDeviceInfoConf(c) => assert_eq!(c.max_active_calls, 2),
        other => panic!("{other:?}"),
    }
    std::thread::sleep(QUIET);
    assert_eq!(pg.seen().len(), 1, "still one upstream");
}

#[test]
fn registered_variables_filter_call_events_through_the_binary_at_v14_v19_v24() {
    let pg = fake_pg();
    let router = router_for(&pg);
    let mut sessions = Vec::new();
    for number in VERSIONS {
        let version = v(number);
        let spec = OpenSpec::new(version, service::ALL_EVENTS);
        let (mut registered, _) = open_when_up(router.addr(), &spec);
        let (plain, _) = open_when_up(router.addr(), &spec);
        let mut register = RegisterVariablesReq {
            invoke_id: 40,
            call_variable_mask: 0x0002, // CallVariable2 only
            named_variables: vec![NamedVar {
                name: "user.account".into(),
                value: "".into(),
            }],
            ..Default::default()
        };
        register.sync_counts();
        registered.send_at(register, version);
        match answer(&mut registered, 40) {
            Message::RegisterVariablesConf(c) => assert_eq!(c.invoke_id, 40),
            other => panic!("at v{number}: {other:?}"),
        }
        sessions.push((number, registered, plain));
    }
    let named = vec![
        NamedVar {
            name: "user.account".into(),
            value: "A-17".into(),
        },
        NamedVar {
            name: "user.secret".into(),
            value: "s3cr3t".into(),
        },
    ];
    let mut began = BeginCallEvent {
        call_variable_2: s("two"),
        named_variables: named.clone(),
        ..begin()
    };
    began.sync_counts();
    let mut update = CallDataUpdateEvent {
        call_variable_1: s("one again"),
        call_variable_2: s("two again"),
        named_variables: named,
        ..data_update(CALL)
    };
    update.sync_counts();
    pg.send(began.clone());
    pg.send(update.clone());
    pg.barrier("calls");
    for (number, mut registered, mut plain) in sessions {
        let version = v(number);
        let filtered: Vec<Message> = until_barrier(&mut registered, "calls")
            .iter()
            .filter(|f| {
                matches!(
                    frame_type(f),
                    msg::BEGIN_CALL_EVENT | msg::CALL_DATA_UPDATE_EVENT
                )
            })
            .map(|f| decode_strict(f, version))
            .collect();
        let names = |vars: &[NamedVar]| -> Vec<Vec<u8>> {
            vars.iter().map(|v| v.name.as_bytes().to_vec()).collect()
        };
        match filtered.as_slice() {
            [Message::BeginCallEvent(b), Message::CallDataUpdateEvent(u)] => {
                assert_eq!((&b.call_variable_1, &b.call_variable_2), (&None, &s("two")));
                assert_eq!(names(&b.named_variables), [b"user.account".to_vec()]);
                assert_eq!(b.named_variables[0].value, CtiString::from("A-17"));
                assert_eq!(
                    (&u.call_variable_1, &u.call_variable_2),
                    (&None, &s("two again"))
                );
                assert_eq!(
                    names(&u.named_variables),
                    [b"user.account".to_vec()],
                    "at v{number}"
                );
            }
            other => panic!("at v{number}: {other:?}"),
        }
        // A session that registered nothing gets every variable.
        let whole: Vec<Vec<u8>> = until_barrier(&mut plain, "calls")
            .into_iter()
            .filter(|f| {
                matches!(
                    frame_type(f),
                    msg::BEGIN_CALL_EVENT | msg::CALL_DATA_UPDATE_EVENT
                )
            })
            .collect();
        let expected = [
            Message::from(began.clone()).to_frame(version).unwrap(),
            Message::from(update.clone()).to_frame(version).unwrap(),
        ];
        assert_eq!(whole, expected, "at v{number}");
    }
    assert_eq!(
        types(&pg.seen()),
        NOTHING,
        "REGISTER_VARIABLES is the router's"
    );
}

#[test]
fn a_user_message_between_router_sessions_never_reaches_the_upstream() {
    let pg = fake_pg();
    let router = router_for(&pg);
    let watch = |number, client_id| {
        let spec = OpenSpec::new(v(number), service::ALL_EVENTS).client(client_id, b"");
        open_when_up(router.addr(), &spec).0
    };
    let mut sender = watch(14, "wallboard");
    let mut recorders = [watch(19, "recorder"), watch(24, "recorder")];
    let mut crm = watch(19, "crm");
    sender.send_at(
        UserMessageReq {
            invoke_id: 50,
            peripheral_id: PID,
            distribution: 0, // TO_CLIENT
            client_id: s("recorder"),
            text: s("lunch is here"),
            ..Default::default()
        },
        v(14),
    );
    match answer(&mut sender, 50) {
        Message::UserMessageConf(c) => assert_eq!(c.invoke_id, 50),
        other => panic!("{other:?}"),
    }
    for recorder in &mut recorders {
        let version = recorder.version;
        let i = recorder.expect("USER_MESSAGE_EVENT", |f| {
            frame_type(f) == msg::USER_MESSAGE_EVENT
        });
        match decode_strict(&recorder.log[i], version) {
            Message::UserMessageEvent(e) => {
                assert_eq!(e.distribution, 0);
                assert_eq!(e.client_id, s("wallboard"), "names the sender");
                assert_eq!(e.text, s("lunch is here"));
            }
            other => panic!("{other:?}"),
        }
    }
    pg.barrier("after");
    let crm_got = until_barrier(&mut crm, "after");
    assert!(
        !crm_got
            .iter()
            .any(|f| frame_type(f) == msg::USER_MESSAGE_EVENT),
        "not addressed to crm"
    );
    assert_eq!(types(&pg.seen()), NOTHING, "the upstream saw nothing");
}
