//! The monitor rules (design §4.9, §4.10, §4.12) on the routing cores wired
//! together in memory ([`MemRouter`]): no executor, socket or clock, so each
//! case runs in microseconds and every step is deterministic. The loopback
//! tests (`monitor_*`) pin the same rules through the real drivers.

use std::time::Duration;

use ctirouter::config::Config;
use ctirouter::ids::SessionId;
use ctirouter::memrouter::MemRouter;
use ctirouter::proto::constants::{call_mask, device_type, msg, service, status, system_event};
use ctirouter::proto::msg::{
    ChangeMonitorMaskReq, MonitorStartReq, MonitorStopReq, SessionMonitorStartReq,
    SessionMonitorStopReq,
};
use ctirouter::proto::Message;
use ctirouter::session::server::CloseReason;
use testkit::*;

const DEV: u16 = device_type::DEVICE_IDENTIFIER;

/// A router with `shards` shards.
fn router(shards: usize) -> MemRouter {
    let mut config = Config::default();
    config.runtime.shards = shards;
    MemRouter::new(config, &[PID])
}

/// A client on `shard` that opened with `spec`; returns its session id and
/// what followed its OPEN_CONF (a Client Monitor session's snapshot, an All
/// Events session's PG status events).
fn open_with_snapshot(
    r: &mut MemRouter,
    shard: usize,
    spec: &OpenSpec,
) -> (SessionId, Vec<Vec<u8>>) {
    let id = r.connect(shard).expect("admitted");
    r.send(id, v24(), spec.request(1));
    let mut got = r.received(id);
    assert!(!got.is_empty(), "no reply to OPEN_REQ");
    assert!(
        matches!(decode(&got[0]), Message::OpenConf(_)),
        "OPEN_REQ answered with {}",
        describe(&got[0])
    );
    got.remove(0);
    (id, got)
}

fn open(r: &mut MemRouter, shard: usize, spec: &OpenSpec) -> SessionId {
    let (id, rest) = open_with_snapshot(r, shard, spec);
    assert_eq!(shapes(&rest), vec![], "only OPEN_CONF");
    id
}

fn pm(r: &mut MemRouter, shard: usize) -> SessionId {
    open(r, shard, &OpenSpec::services(service::PERIPHERAL_MONITOR))
}

/// The one reply to the request just sent.
fn reply(r: &mut MemRouter, id: SessionId) -> Message {
    let got = r.received(id);
    assert_eq!(got.len(), 1, "one reply, got {:?}", shapes(&got));
    decode(&got[0])
}

fn start(r: &mut MemRouter, id: SessionId, request: MonitorStartReq) -> Result<u32, u32> {
    r.send(id, v24(), request);
    match reply(r, id) {
        Message::MonitorStartConf(c) => Ok(c.monitor_id),
        Message::FailureConf(f) => Err(f.status),
        other => panic!("MONITOR_START_REQ answered with {other:?}"),
    }
}

fn device_request(device: &str, call_mask: u32) -> MonitorStartReq {
    MonitorStartReq {
        invoke_id: 7,
        peripheral_id: PID,
        call_msg_mask: call_mask,
        agent_state_mask: ALL_AGENTS,
        monitored_device_type: DEV,
        monitored_device_id: Some(device.into()),
        ..Default::default()
    }
}

fn monitor_device(r: &mut MemRouter, id: SessionId, device: &str) -> u32 {
    start(r, id, device_request(device, ALL_CALLS)).expect("device monitor")
}

fn monitor_call(r: &mut MemRouter, id: SessionId, c: CallRef) -> Result<u32, u32> {
    start(
        r,
        id,
        MonitorStartReq {
            invoke_id: 8,
            peripheral_id: PID,
            connection_call_id: c.id,
            call_msg_mask: ALL_CALLS,
            agent_state_mask: ALL_AGENTS,
            connection_device_id_type: ctirouter::proto::constants::connection_type::DYNAMIC,
            monitored_device_type: device_type::NONE,
            connection_device_id: Some(c.dev.into()),
            ..Default::default()
        },
    )
}

/// (type name, MonitorID) of what `id` received since the last look.
fn events(r: &mut MemRouter, id: SessionId) -> Vec<(String, u32)> {
    shapes(&r.received(id))
}

const A: CallRef = call(0x0100_0001, "T1");
const B: CallRef = call(0x0100_0002, "T2");

#[test]
fn a_device_monitor_gets_its_device_s_events_until_it_is_stopped() {
    let mut r = router(2);
    let s = pm(&mut r, 0);
    let m = monitor_device(&mut r, s, "3001");
    r.upstream(agent_ev("1001", "3001", 3));
    r.upstream(agent_ev("1002", "3002", 3));
    assert_eq!(events(&mut r, s), vec![shape(msg::AGENT_STATE_EVENT, m)]);

    r.send(
        s,
        v24(),
        MonitorStopReq {
            invoke_id: 9,
            monitor_id: m,
        },
    );
    assert!(matches!(reply(&mut r, s), Message::MonitorStopConf(_)));
    r.upstream(agent_ev("1001", "3001", 2));
    assert_eq!(events(&mut r, s), vec![]);

    // Stopping it again: this session owns no such monitor (55).
    r.send(
        s,
        v24(),
        MonitorStopReq {
            invoke_id: 10,
            monitor_id: m,
        },
    );
    let Message::FailureConf(f) = reply(&mut r, s) else {
        panic!("second stop not refused");
    };
    assert_eq!(f.status, status::E_CTI_INVALID_MONITORID);
}

#[test]
fn a_device_monitor_follows_a_call_from_the_device_s_first_event_to_its_connection_clearing() {
    let mut r = router(2);
    let s = pm(&mut r, 1);
    let m = monitor_device(&mut r, s, "3001");
    r.upstream(delivered(A, "T1", "5551000", "8001", Some((1, 200))));
    r.upstream(delivered(A, "3001", "5551000", "3001", None));
    r.upstream(established(A, "3001", "5551000"));
    r.upstream(held(A, None)); // names only the call
    r.upstream(delivered(B, "T2", "5552000", "8001", Some((2, 200))));
    r.upstream(conn_cleared(A, Some("3001"))); // its last event of A
    r.upstream(retrieved(A, None));
    r.upstream(cleared(A));
    assert_eq!(
        events(&mut r, s),
        vec![
            shape(msg::BEGIN_CALL_EVENT, m),
            shape(msg::CALL_DELIVERED_EVENT, m),
            shape(msg::CALL_ESTABLISHED_EVENT, m),
            shape(msg::CALL_HELD_EVENT, m),
            shape(msg::CALL_CONNECTION_CLEARED_EVENT, m),
            shape(msg::END_CALL_EVENT, m),
        ]
    );
}

#[test]
fn a_call_monitor_follows_its_call_into_a_conference_and_ends_with_the_call() {
    let mut r = router(2);
    let s = pm(&mut r, 0);
    // A call the router has not seen cannot be monitored (13).
    assert_eq!(
        monitor_call(&mut r, s, A),
        Err(status::E_CTI_INVALID_CALLID)
    );
    r.upstream(delivered(A, "3001", "5551000", "3001", None));
    r.upstream(established(A, "3001", "5551000"));
    r.upstream(service_initiated(B, "3001"));
    let on_b = monitor_call(&mut r, s, B).expect("call monitor on B");
    assert_eq!(events(&mut r, s), vec![]);
    r.upstream(established(B, "3002", "3001"));
    // B (secondary) is merged into A (primary): the monitor of B now
    // follows A, so A's later events reach it too.
    r.upstream(conferenced(A, B, "3001", "3002", &["T1", "3001", "3002"]));
    r.upstream(held(A, None));
    r.upstream(cleared(A));
    r.upstream(end_call(A));
    r.upstream(held(A, None)); // after the end: nobody watches A now
                               // A call monitor names its call, so it gets no brackets; its last
                               // event is the CALL_CLEARED of the call it follows.
    let got = events(&mut r, s);
    assert_eq!(
        got,
        vec![
            shape(msg::CALL_ESTABLISHED_EVENT, on_b),
            shape(msg::CALL_CONFERENCED_EVENT, on_b),
            shape(msg::CALL_HELD_EVENT, on_b),
            shape(msg::CALL_CLEARED_EVENT, on_b),
        ]
    );
}

#[test]
fn each_matching_monitor_gets_one_copy_filtered_by_its_own_masks() {
    let mut r = router(1);
    let s = pm(&mut r, 0);
    let all = monitor_device(&mut r, s, "3001");
    // The same call seen through two devices of one monitor's session:
    // one copy per monitor, not per matching key.
    let other = monitor_device(&mut r, s, "3002");
    let no_held = start(
        &mut r,
        s,
        device_request(
            "3001",
            ALL_CALLS & !call_mask::bit_for(msg::CALL_HELD_EVENT),
        ),
    )
    .expect("masked monitor");
    r.upstream(delivered(A, "3001", "3002", "3001", None));
    r.upstream(held(A, None));
    let got = events(&mut r, s);
    let copies = |m: u32| got.iter().filter(|(_, id)| *id == m).count();
    assert_eq!(copies(all), 3, "{got:?}"); // BEGIN_CALL, DELIVERED, HELD
    assert_eq!(copies(other), 3, "{got:?}");
    assert_eq!(copies(no_held), 2, "{got:?}"); // HELD masked out
    assert!(!got.contains(&shape(msg::CALL_HELD_EVENT, no_held)));

    // CHANGE_MONITOR_MASK_REQ lets CALL_HELD through again.
    r.send(
        s,
        v24(),
        ChangeMonitorMaskReq {
            invoke_id: 11,
            monitor_id: no_held,
            call_msg_mask: ALL_CALLS,
            agent_state_mask: ALL_AGENTS,
        },
    );
    assert!(matches!(
        reply(&mut r, s),
        Message::ChangeMonitorMaskConf(_)
    ));
    r.upstream(held(A, None));
    assert!(events(&mut r, s).contains(&shape(msg::CALL_HELD_EVENT, no_held)));
}

#[test]
fn events_reach_only_the_shards_whose_sessions_want_them() {
    let mut r = router(2);
    let (s0, s1) = (pm(&mut r, 0), pm(&mut r, 1));
    let m1 = monitor_device(&mut r, s1, "3001");
    let before = [r.events_sent_to(0), r.events_sent_to(1)];
    r.upstream(agent_ev("1001", "3001", 3));
    r.upstream(agent_ev("1002", "3002", 3));
    // Shard 0 has no session that wants either: ingest does not send them
    // there; shard 1 gets the one its monitor wants.
    assert_eq!(r.events_sent_to(0) - before[0], 0);
    assert_eq!(r.events_sent_to(1) - before[1], 1);
    assert_eq!(events(&mut r, s0), vec![]);
    assert_eq!(events(&mut r, s1), vec![shape(msg::AGENT_STATE_EVENT, m1)]);
    // An All Events session on shard 0 wants every event.
    let (ae, status_events) =
        open_with_snapshot(&mut r, 0, &OpenSpec::services(service::ALL_EVENTS));
    assert!(status_events
        .iter()
        .all(|f| frame_type(f) == msg::SYSTEM_EVENT));
    r.upstream(agent_ev("1002", "3002", 2));
    assert_eq!(r.events_sent_to(0) - before[0], 1);
    assert_eq!(events(&mut r, ae), vec![shape(msg::AGENT_STATE_EVENT, 0)]);
}

#[test]
fn losing_the_upstream_ends_call_monitors_and_keeps_device_monitors() {
    let mut r = router(2);
    let s = pm(&mut r, 0);
    let dev = monitor_device(&mut r, s, "3001");
    r.upstream(delivered(A, "3001", "5551000", "3001", None));
    r.received(s);
    let on_a = monitor_call(&mut r, s, A).expect("call monitor");
    r.upstream_lost();
    r.upstream_back();
    let ids: Vec<u32> = r
        .received(s)
        .iter()
        .map(|f| match decode(f) {
            Message::SystemEvent(e) => e.system_event_id,
            _ => panic!("not a SYSTEM_EVENT: {}", describe(f)),
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            system_event::CTI_SERVER_OFFLINE,
            system_event::CTI_SERVER_ONLINE
        ]
    );
    // The call is unknown now: a new call with the same id reaches the
    // device monitor only; the call monitor is gone.
    r.upstream(delivered(A, "3001", "5551000", "3001", None));
    let got = events(&mut r, s);
    assert!(
        got.iter().all(|(_, m)| *m == dev),
        "{got:?} (call monitor {on_a})"
    );
    assert!(got.contains(&shape(msg::CALL_DELIVERED_EVENT, dev)));
}

#[test]
fn a_session_monitor_sees_another_session_close_on_another_shard() {
    let mut r = router(2);
    let (watcher, snapshot) =
        open_with_snapshot(&mut r, 0, &OpenSpec::services(service::CLIENT_MONITOR));
    // The snapshot: OPENED for each open session (the watcher itself).
    assert_eq!(
        client_session_events(&snapshot),
        vec![(msg::CLIENT_SESSION_OPENED_EVENT, watcher.0, 0)]
    );
    let watched = pm(&mut r, 1);
    assert_eq!(
        client_session_events(&r.received(watcher)),
        vec![(msg::CLIENT_SESSION_OPENED_EVENT, watched.0, 0)]
    );
    r.send(
        watcher,
        v24(),
        SessionMonitorStartReq {
            invoke_id: 12,
            session_id: watched.0,
        },
    );
    let Message::SessionMonitorStartConf(conf) = reply(&mut r, watcher) else {
        panic!("session monitor refused");
    };
    r.disconnect(watched);
    // One CLOSED event for the watched session (a Client Monitor session
    // gets it once, however many ways it watches), with how it ended.
    let closed = CloseReason::Disconnected.status();
    assert_eq!(
        client_session_events(&r.received(watcher)),
        vec![(msg::CLIENT_SESSION_CLOSED_EVENT, watched.0, closed)]
    );
    // Its session monitor ended with it: stopping it now is refused (55).
    r.send(
        watcher,
        v24(),
        SessionMonitorStopReq {
            invoke_id: 13,
            monitor_id: conf.monitor_id,
        },
    );
    let Message::FailureConf(f) = reply(&mut r, watcher) else {
        panic!("stopping an ended session monitor was not refused");
    };
    assert_eq!(f.status, status::E_CTI_INVALID_MONITORID);
}

#[test]
fn timeouts_run_on_the_simulated_clock() {
    let mut r = router(1);
    let open_timeout = Config::default().limits.open_timeout_secs;
    // A connection that never sends OPEN_REQ is closed, silently, once
    // open_timeout_secs have passed since its accept; not a second before.
    let silent = r.connect(0).expect("admitted");
    let idle = open(
        &mut r,
        0,
        &OpenSpec {
            idle_timeout: 30,
            ..OpenSpec::services(service::PERIPHERAL_MONITOR)
        },
    );
    r.advance(Duration::from_secs(open_timeout) - Duration::from_millis(1));
    assert_eq!(r.closed(silent), None);
    r.advance(Duration::from_millis(1));
    assert!(r.closed(silent).is_some());
    assert_eq!(r.received(silent), Vec::<Vec<u8>>::new());

    // A session with IdleTimeout 30 that hears nothing for 30 s ends with
    // FAILURE_EVENT(E_CTI_TIMEOUT); a heartbeat would have kept it.
    let quiet_for = Duration::from_secs(30).saturating_sub(Duration::from_secs(open_timeout));
    r.advance(quiet_for);
    let got = r.received(idle);
    assert_eq!(got.len(), 1, "{:?}", shapes(&got));
    let Message::FailureEvent(e) = decode(&got[0]) else {
        panic!("idle session ended with {}", describe(&got[0]));
    };
    assert_eq!(e.status, status::E_CTI_TIMEOUT);
    assert_eq!(r.closed(idle), Some(CloseReason::IdleTimeout));
}

#[test]
fn calls_that_never_end_are_aged_out_and_counted() {
    let mut r = router(1);
    let max_age = Duration::from_secs(Config::default().limits.call_max_age_secs);
    let counters = |r: &MemRouter| r.ingest.metrics.snapshot();
    let events_before = counters(&r).nr_events;
    r.upstream(delivered(A, "3001", "5551000", "3001", None));
    r.advance(max_age / 2);
    r.upstream(delivered(B, "3002", "5552000", "3002", None));
    assert_eq!(r.ingest.tracker.nr_calls(), 2);
    assert_eq!(counters(&r).nr_calls_aged_out, 0);

    // A is not seen again: the first sweep after it is max_age old forgets
    // it (B, younger, stays) and the published batch counts it.
    r.advance(max_age / 2 + Duration::from_secs(20));
    r.upstream(held(B, None));
    assert_eq!(r.ingest.tracker.nr_calls(), 1);
    let after = counters(&r);
    assert_eq!(after.nr_calls_aged_out, 1);
    assert_eq!(after.nr_events - events_before, 3);
    // What the tests' failure reports print (`Snapshot`'s Debug) shows it.
    assert!(format!("{after:?}").contains("nr_calls_aged_out: 1"));

    // Counted once: later batches add nothing for it.
    r.upstream(held(B, None));
    assert_eq!(counters(&r).nr_calls_aged_out, 1);
}

/// docs/requests.md §5: a reply from the upstream (any `*_CONF`,
/// FAILURE_CONF, CONTROL_FAILURE_CONF) answers one request; it is never fanned
/// out as an event, and with no request of the router's pending it is
/// counted and dropped. The events around it flow unchanged.
#[test]
fn upstream_replies_are_never_events() {
    use ctirouter::proto::msg::{
        ControlFailureConf, FailureConf, MonitorStartConf, QueryAgentStateConf, SetAgentStateConf,
        SetCallDataConf,
    };
    let mut r = router(2);
    let all: Vec<SessionId> = (0..2)
        // (OPEN_CONF, then the peripheral's SYSTEM_EVENT.)
        .map(|shard| open_with_snapshot(&mut r, shard, &OpenSpec::services(service::ALL_EVENTS)).0)
        .collect();
    let stray = |r: &MemRouter| r.ingest.metrics.snapshot().nr_stray_upstream_replies;

    r.upstream(delivered(A, "3001", "5551000", "3001", None));
    let invoke = 0x8000_0001;
    let replies: Vec<Message> = vec![
        SetAgentStateConf { invoke_id: invoke }.into(),
        ControlFailureConf {
            invoke_id: invoke,
            failure_code: 8,
            ..Default::default()
        }
        .into(),
        FailureConf {
            invoke_id: invoke,
            status: status::E_CTI_TIMEOUT,
            ..Default::default()
        }
        .into(),
        MonitorStartConf {
            invoke_id: invoke,
            monitor_id: 9,
        }
        .into(),
        QueryAgentStateConf {
            invoke_id: invoke,
            ..Default::default()
        }
        .into(),
        SetCallDataConf { invoke_id: invoke }.into(),
    ];
    let nr_replies = replies.len() as u64;
    for reply in replies {
        r.upstream(reply);
    }
    r.upstream(held(A, None));

    for id in all {
        let got = r.received(id);
        let types: Vec<u32> = got.iter().map(|f| frame_type(f)).collect();
        assert_eq!(
            types,
            vec![msg::CALL_DELIVERED_EVENT, msg::CALL_HELD_EVENT],
            "session {id:?}: the events and no reply"
        );
    }
    assert_eq!(stray(&r), nr_replies, "every reply counted as stray");
    // A reply too short to name its request is malformed, like a bad event.
    let short = raw_frame(msg::SET_AGENT_STATE_CONF, &[0, 0]);
    assert!(r.upstream_raw(&short).is_err());
    assert_eq!(stray(&r), nr_replies);
}
