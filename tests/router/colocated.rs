//! Ingest and a shard on one executor: with `runtime.share_ingest_thread`,
//! the shard pinned to ingest's core runs on ingest's thread (docs/design.md
//! §1), and the rings between
//! them wake the other side's task directly instead of through glommio's
//! shared channel. These tests run a router whose ingest shares shard 0's
//! thread while shard 1 has its own (both pinned to core 0, so it runs on
//! any machine), and check what crosses the rings both ways: events to
//! sessions on either shard, complete and in order; requests to the
//! upstream and their replies back to the requester alone.

use std::time::Duration;

use ctirouter::config::{ClientEntry, Config, ServiceName, UpstreamConfig};
use ctirouter::proto::constants::{agent_state, msg, service};
use ctirouter::proto::msg::{ControlFailureConf, SetAgentStateReq};
use ctirouter::proto::Version;
use testkit::*;

const V24: Version = Version::MAX;

/// Shard 0 beside ingest on core 0, shard 1 on its own executor (core 0 too).
fn colocated(config: &mut Config) {
    config.runtime.pin = true;
    config.runtime.share_ingest_thread = true;
    config.runtime.ingest_core = Some(0);
    config.runtime.shard_cores = Some(vec![0, 0]);
}

/// Every All Events session, on both shards, gets every event once and in
/// the order the upstream sent them.
#[test]
fn events_reach_sessions_on_both_shards_complete_and_in_order() {
    let h = Harness::with_config(colocated);
    let mut sessions: Vec<Client> = (0..8)
        .map(|_| {
            let mut c = h.connect();
            c.open_all_events(V24);
            c
        })
        .collect();
    const N: u16 = 400;
    for i in 0..N {
        h.send(agent_state_ev(
            Some("1101"),
            None,
            None,
            agent_state::AVAILABLE,
            MARK_BASE + i,
        ));
    }
    for (n, s) in sessions.iter_mut().enumerate() {
        s.expect("the last event", |f| mark_of(f) == Some(MARK_BASE + N - 1));
        let marks: Vec<u16> = s.log.iter().filter_map(|f| mark_of(f)).collect();
        let sent: Vec<u16> = (0..N).map(|i| MARK_BASE + i).collect();
        assert_eq!(marks, sent, "session {n}: every event once, in order");
    }
}

/// A fake CTI Server that grants what it is asked for and answers every
/// request with CONTROL_FAILURE_CONF (its InvokeID echoed).
fn answering_pg() -> FakePg {
    FakePg::answering(|invoke_id, _| {
        vec![ControlFailureConf {
            invoke_id,
            failure_code: 4,
            ..Default::default()
        }
        .into()]
    })
}

/// A session of `spec` opened once the router's upstream is up (PGStatus
/// without CTI_SERVER_OFFLINE; retried for up to [`WAIT`]).
fn open_when_up(addr: std::net::SocketAddr, spec: &OpenSpec) -> Client {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let mut client = Client::connect(addr);
        if client.open(spec).pg_status & 0x08 == 0 {
            return client;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the upstream never came up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Desktops on both shards send requests in turn: each reply comes back
/// to its requester with its own InvokeID, and an All Events session sees
/// none of them.
#[test]
fn requests_go_upstream_and_replies_come_back_to_the_requester_alone() {
    let pg = answering_pg();
    let mut config = base_config();
    config.upstream = Some(UpstreamConfig {
        sides: vec![pg.addr.to_string()],
        ..UpstreamConfig::default()
    });
    config.clients = vec![
        ClientEntry {
            client_id: "desk".into(),
            password: String::new(),
            services: Some(vec![ServiceName::ClientEvents, ServiceName::ClientControl]),
            max_outstanding: None,
            control_scope: Default::default(),
        },
        ClientEntry {
            client_id: "board".into(),
            password: String::new(),
            services: Some(vec![ServiceName::AllEvents]),
            max_outstanding: None,
            control_scope: Default::default(),
        },
    ];
    colocated(&mut config);
    let router = TestRouter::start(config);
    let mut board = open_when_up(
        router.addr,
        &OpenSpec::new(V24, service::ALL_EVENTS).client("board", b""),
    );
    let mut desks: Vec<(Client, String)> = (0..6)
        .map(|i| {
            let instrument = format!("50{i:02}");
            let mut spec = OpenSpec::new(V24, service::CLIENT_EVENTS | service::CLIENT_CONTROL)
                .client("desk", b"");
            spec.agent_instrument = Some(instrument.clone());
            let mut c = Client::connect(router.addr);
            let conf = c.open(&spec);
            assert_eq!(conf.pg_status & 0x08, 0, "the upstream is up");
            assert_eq!(
                conf.services_granted,
                service::CLIENT_EVENTS | service::CLIENT_CONTROL
            );
            (c, instrument)
        })
        .collect();
    for round in 0..20u32 {
        for (n, (desk, instrument)) in desks.iter_mut().enumerate() {
            let invoke_id = 1000 + round * 10 + n as u32;
            desk.send(SetAgentStateReq {
                invoke_id,
                peripheral_id: PID,
                agent_state: agent_state::AVAILABLE,
                agent_instrument: Some(instrument.as_str().into()),
                ..Default::default()
            });
            let reply = desk.reply(invoke_id);
            assert_eq!(
                frame_type(&reply),
                msg::CONTROL_FAILURE_CONF,
                "desk {n}, round {round}: the CTI Server's answer, relayed"
            );
        }
    }
    board.heartbeat(WAIT);
    assert!(
        !board.log.iter().any(|f| is_reply(frame_type(f))
            && frame_type(f) != msg::OPEN_CONF
            && frame_type(f) != msg::HEARTBEAT_CONF),
        "no desk's reply reached the All Events session: {:?}",
        board.log.iter().map(|f| describe(f)).collect::<Vec<_>>()
    );
}
