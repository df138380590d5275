//! Black-box tests of the Client Monitor service (docs/design.md §4.6, §4.11;
//! docs/protocol.md §4.4): CLIENT_SESSION_OPENED/CLOSED_EVENT for sessions on
//! every shard, in one order for every observer; OPENED for the sessions
//! already open when an observer opens (oldest first), then for itself and
//! every later one; CLOSED with Status 0 after CLOSE_REQ, 37 on a dropped
//! connection, 16 on idle timeout; SESSION_MONITOR_START/STOP checks. The
//! router runs in-process with a (silent) fake PG as its upstream.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ctirouter::proto::constants::{msg, service, status};
use ctirouter::proto::Message;
use testkit::*;

fn observer(h: &Harness) -> Client {
    let mut c = h.connect();
    c.open(&OpenSpec::services(service::CLIENT_MONITOR));
    c
}

/// Wait until `obs` has the OPENED (or CLOSED) event of the session on
/// `port`; returns the decoded event.
fn opened_of(obs: &mut Client, port: u16) -> ctirouter::proto::msg::ClientSessionOpenedEvent {
    let port = port as u32;
    let i = obs.expect(
        "CLIENT_SESSION_OPENED_EVENT",
        |f| matches!(decode(f), Message::ClientSessionOpenedEvent(e) if e.client_port == port),
    );
    match decode(&obs.log[i]) {
        Message::ClientSessionOpenedEvent(e) => e,
        _ => unreachable!(),
    }
}

fn closed_of(
    obs: &mut Client,
    port: u16,
    timeout: Duration,
) -> ctirouter::proto::msg::ClientSessionClosedEvent {
    let port = port as u32;
    let found = obs.wait_for(
        "CLIENT_SESSION_CLOSED_EVENT",
        timeout,
        |f| matches!(decode(f), Message::ClientSessionClosedEvent(e) if e.client_port == port),
    );
    let i = found.unwrap_or_else(|e| panic!("no CLOSED event for port {port}: {e:?}"));
    match decode(&obs.log[i]) {
        Message::ClientSessionClosedEvent(e) => e,
        _ => unreachable!(),
    }
}

/// A new Client Monitor session first gets OPENED for every session already
/// open, oldest first, then OPENED for itself, then for every later one;
/// the events describe the sessions (services, masks, port, address,
/// client id, agent fields).
#[test]
fn observer_gets_opened_for_open_sessions_then_itself_then_later_ones() {
    let h = Harness::new();
    let mut a = h.connect();
    a.open(&OpenSpec::services(service::ALL_EVENTS).masks(0x0000_00FF, 0x000F));
    let mut b = h.connect();
    let mut spec_b = OpenSpec::services(service::CLIENT_EVENTS);
    spec_b.agent_extension = Some("3001".into());
    spec_b.agent_id = Some("1001".into());
    spec_b.client_id = "agent-desktop".into();
    b.open(&spec_b);
    let mut c = h.connect();
    c.open(&OpenSpec::services(
        service::PERIPHERAL_MONITOR | service::CLIENT_MONITOR,
    ));
    let mut gone = h.connect();
    gone.open(&OpenSpec::services(service::ALL_EVENTS));
    let gone_port = gone.port;
    gone.close();
    // Ingest has taken the close once a Client Monitor session is told.
    closed_of(&mut c, gone_port, WAIT);
    c.cursor = 0;

    let mut o = h.connect();
    o.open(&OpenSpec::services(service::CLIENT_MONITOR));
    let mut d = h.connect();
    d.open(&OpenSpec::services(service::ALL_EVENTS));
    opened_of(&mut o, d.port);
    let events: Vec<ctirouter::proto::msg::ClientSessionOpenedEvent> = o.log[1..]
        .iter()
        .filter_map(|f| match decode(f) {
            Message::ClientSessionOpenedEvent(e) => Some(e),
            _ => None,
        })
        .collect();
    let ports: Vec<u32> = events.iter().map(|e| e.client_port).collect();
    let want: Vec<u32> = [a.port, b.port, c.port, o.port, d.port]
        .iter()
        .map(|&p| p as u32)
        .collect();
    assert_eq!(
        ports, want,
        "OPENED: open sessions oldest first, then itself, then later ones"
    );
    let ids: Vec<u32> = events.iter().map(|e| e.session_id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, ids, "SessionIDs are distinct and ascend with age");
    assert!(
        o.log
            .iter()
            .all(|f| frame_type(f) != msg::CLIENT_SESSION_CLOSED_EVENT),
        "nothing about the session that closed before the observer opened"
    );
    let (ea, eb, ec) = (&events[0], &events[1], &events[2]);
    assert_eq!(ea.services_granted, service::ALL_EVENTS);
    assert_eq!(
        (ea.call_msg_mask, ea.agent_state_mask),
        (0x0000_00FF, 0x000F)
    );
    assert_eq!(ea.client_address.as_ref().unwrap().as_bytes(), b"127.0.0.1");
    assert_eq!(ea.client_id.as_ref().unwrap().as_bytes(), b"monitor-test");
    assert!(ea.agent_id.is_none() && ea.agent_extension.is_none() && ea.agent_instrument.is_none());
    assert_eq!(eb.services_granted, service::CLIENT_EVENTS);
    assert_eq!(eb.client_id.as_ref().unwrap().as_bytes(), b"agent-desktop");
    assert_eq!(eb.agent_extension.as_ref().unwrap().as_bytes(), b"3001");
    assert_eq!(eb.agent_id.as_ref().unwrap().as_bytes(), b"1001");
    assert!(eb.agent_instrument.is_none());
    assert_eq!(
        eb.peripheral_id, PID,
        "Client Events: the peripheral the opener named"
    );
    assert_eq!(
        ec.services_granted,
        service::PERIPHERAL_MONITOR | service::CLIENT_MONITOR
    );
    // c, a Client Monitor session itself, has its own OPENED and the later ones.
    for p in [c.port, o.port, d.port] {
        opened_of(&mut c, p);
    }
}

/// docs/protocol.md §4.4: CLIENT_SESSION_OPENED_EVENT.PeripheralID is the ACD a
/// Client Events opener named, "otherwise 0xFFFFFFFF".
#[test]
fn opened_peripheral_id_is_null_for_sessions_without_client_events() {
    let h = Harness::new();
    let mut o = observer(&h);
    let mut a = h.connect();
    a.open(&OpenSpec::services(service::ALL_EVENTS)); // OPEN_REQ names PeripheralID 5000
    let e = opened_of(&mut o, a.port);
    assert_eq!(
        e.peripheral_id, 0xFFFF_FFFF,
        "PeripheralID of a non-Client-Events session"
    );
}

/// CLOSED with Status 0 after CLOSE_REQ and 37 when the connection drops,
/// for sessions on both shards.
#[test]
fn closed_status_is_0_after_close_req_and_37_after_a_drop() {
    let h = Harness::new();
    let mut o = observer(&h);
    for k in 0..6 {
        let mut s = h.connect();
        s.open(&OpenSpec::services(if k % 3 == 0 {
            service::PERIPHERAL_MONITOR
        } else {
            service::ALL_EVENTS
        }));
        let opened = opened_of(&mut o, s.port);
        let port = s.port;
        if k % 2 == 0 {
            s.close();
            let c = closed_of(&mut o, port, WAIT);
            assert_eq!(
                (c.session_id, c.status),
                (opened.session_id, status::E_CTI_NO_ERROR)
            );
        } else {
            s.drop_connection();
            let c = closed_of(&mut o, port, WAIT);
            assert_eq!(
                (c.session_id, c.status),
                (opened.session_id, status::E_CTI_CLIENT_DISCONNECTED)
            );
        }
    }
}

/// CLOSED with Status 16 when a session's IdleTimeout (20 s) runs out; the
/// session itself gets FAILURE_EVENT(16) and is closed. (Slow: ~21 s.)
#[test]
fn closed_status_is_16_after_idle_timeout() {
    let h = Harness::new();
    let mut o = observer(&h);
    let mut s = h.connect();
    let mut spec = OpenSpec::services(service::ALL_EVENTS);
    spec.idle_timeout = 20;
    s.open(&spec);
    let opened = opened_of(&mut o, s.port);
    let start = Instant::now();
    let c = closed_of(&mut o, s.port, Duration::from_secs(30));
    let waited = start.elapsed();
    assert_eq!(
        (c.session_id, c.status),
        (opened.session_id, status::E_CTI_TIMEOUT)
    );
    assert!(waited >= Duration::from_secs(19), "closed after {waited:?}");
    let frames = s.drain_for(Duration::from_secs(2));
    let failure = frames
        .iter()
        .find(|f| frame_type(f) == msg::FAILURE_EVENT)
        .expect("FAILURE_EVENT before the close");
    assert_eq!(be32(failure, 8), status::E_CTI_TIMEOUT);
    assert!(s.closed);
}

/// Sessions opening and closing concurrently on both shards: every
/// observer (several, on both shards) sees their OPENED/CLOSED events in
/// the same order, with the right statuses.
#[test]
fn observers_on_both_shards_see_opened_and_closed_in_one_order() {
    let h = Harness::new();
    let mut observers: Vec<Client> = (0..6).map(|_| observer(&h)).collect();
    let addr = h.addr();
    // Workers: (port, status expected).
    let workers: Vec<std::thread::JoinHandle<Vec<(u16, u32)>>> = (0..3)
        .map(|w| {
            std::thread::spawn(move || {
                let mut out = Vec::new();
                for k in 0..8 {
                    let mut s = Client::connect(addr);
                    let services = [
                        service::ALL_EVENTS,
                        service::PERIPHERAL_MONITOR,
                        service::CLIENT_MONITOR,
                    ][(w + k) % 3];
                    s.open(&OpenSpec::services(services));
                    if k % 3 == 0 {
                        s.heartbeat_keeping_events();
                    }
                    let port = s.port;
                    if (w + k) % 2 == 0 {
                        s.close();
                        out.push((port, status::E_CTI_NO_ERROR));
                    } else {
                        s.drop_connection();
                        out.push((port, status::E_CTI_CLIENT_DISCONNECTED));
                    }
                }
                out
            })
        })
        .collect();
    let expected: HashMap<u32, u32> = workers
        .into_iter()
        .flat_map(|t| t.join().expect("worker"))
        .map(|(p, s)| (p as u32, s))
        .collect();
    assert_eq!(expected.len(), 24);
    let mut sequences = Vec::new();
    for (k, o) in observers.iter_mut().enumerate() {
        // Wait for every worker's CLOSED.
        for &port in expected.keys() {
            closed_of(o, port as u16, WAIT);
            o.cursor = 0;
        }
        let mut seq = Vec::new();
        let mut port_of = HashMap::new();
        for f in &o.log {
            match decode(f) {
                Message::ClientSessionOpenedEvent(e) if expected.contains_key(&e.client_port) => {
                    port_of.insert(e.session_id, e.client_port);
                    seq.push((msg::CLIENT_SESSION_OPENED_EVENT, e.session_id, 0));
                }
                Message::ClientSessionClosedEvent(e) if expected.contains_key(&e.client_port) => {
                    assert_eq!(
                        e.status, expected[&e.client_port],
                        "observer {k}: CLOSED status of the session on port {}",
                        e.client_port
                    );
                    assert_eq!(port_of.get(&e.session_id), Some(&e.client_port));
                    seq.push((msg::CLIENT_SESSION_CLOSED_EVENT, e.session_id, e.status));
                }
                _ => {}
            }
        }
        assert_eq!(
            seq.len(),
            48,
            "observer {k}: one OPENED and one CLOSED per worker session"
        );
        sequences.push(seq);
    }
    for (k, s) in sequences.iter().enumerate().skip(1) {
        assert_eq!(
            s, &sequences[0],
            "observer {k} saw another order than observer 0"
        );
    }
    // Observers opened one after the other: each got OPENED for the ones
    // before it (the snapshot), then itself.
    let first_ports: Vec<Vec<u32>> = observers
        .iter()
        .map(|o| {
            o.log
                .iter()
                .filter_map(|f| match decode(f) {
                    Message::ClientSessionOpenedEvent(e) => Some(e.client_port),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let observer_ports: Vec<u32> = observers.iter().map(|o| o.port as u32).collect();
    for (k, ports) in first_ports.iter().enumerate() {
        assert_eq!(
            &ports[..=k],
            &observer_ports[..=k],
            "observer {k}: OPENED for the earlier observers, then itself"
        );
    }
}

/// SESSION_MONITOR_START_REQ: own session → 57; a session already
/// monitored → 56; an unknown session → 55; otherwise the CONF carries a
/// fresh MonitorID. SESSION_MONITOR_STOP_REQ with another observer's
/// MonitorID → 55; with its own → CONF, then 55. Without Client Monitor → 12.
#[test]
fn session_monitor_start_and_stop_checks() {
    let h = Harness::new();
    let mut o1 = observer(&h);
    let mut o2 = observer(&h);
    let mut targets: Vec<Client> = (0..4)
        .map(|_| {
            let mut t = h.connect();
            t.open(&OpenSpec::services(service::ALL_EVENTS));
            t
        })
        .collect();
    let o1_port = o1.port;
    let own1 = opened_of(&mut o1, o1_port).session_id;
    let ids: Vec<u32> = targets
        .iter()
        .map(|t| t.port)
        .collect::<Vec<_>>()
        .into_iter()
        .map(|p| opened_of(&mut o1, p).session_id)
        .collect();
    assert_eq!(
        o1.session_monitor_start(own1),
        Err(status::E_CTI_SESSION_MONITOR_IS_CLIENTS)
    );
    let mut mine = Vec::new();
    for &t in &ids {
        let m = o1.session_monitor_start(t).expect("monitor a session");
        assert_ne!(m, 0);
        assert!(!mine.contains(&m));
        mine.push(m);
        assert_eq!(
            o1.session_monitor_start(t),
            Err(status::E_CTI_SESSION_MONITOR_ALREADY_EXISTS)
        );
    }
    assert_eq!(
        o1.session_monitor_start(0x7FFF_FFF0),
        Err(status::E_CTI_INVALID_MONITORID)
    );
    // o2 may monitor the same sessions; its MonitorIDs are its own.
    let theirs: Vec<u32> = ids
        .iter()
        .map(|&t| o2.session_monitor_start(t).expect("second observer"))
        .collect();
    for m in &theirs {
        assert!(!mine.contains(m), "MonitorIDs are unique across observers");
        assert_eq!(
            o1.session_monitor_stop(*m),
            Err(status::E_CTI_INVALID_MONITORID)
        );
    }
    for m in &mine {
        assert_eq!(
            o2.session_monitor_stop(*m),
            Err(status::E_CTI_INVALID_MONITORID)
        );
    }
    assert_eq!(o1.session_monitor_stop(mine[0]), Ok(()));
    assert_eq!(
        o1.session_monitor_stop(mine[0]),
        Err(status::E_CTI_INVALID_MONITORID)
    );
    // Stopped: the same session may be monitored again.
    let again = o1.session_monitor_start(ids[0]).expect("monitor it again");
    assert!(!mine.contains(&again) && !theirs.contains(&again));
    // Without the Client Monitor service.
    let t = &mut targets[0];
    let invoke = t.invoke();
    t.send(ctirouter::proto::msg::SessionMonitorStartReq {
        invoke_id: invoke,
        session_id: own1,
    });
    let f = t.reply(invoke);
    assert_eq!(
        failure_status(&f),
        Some(status::E_CTI_FUNCTION_NOT_AVAILABLE)
    );
    o1.heartbeat_keeping_events();
    o2.heartbeat_keeping_events();
}

/// A session monitor ends with the session it watches (closed or dropped,
/// on either shard): a later SESSION_MONITOR_STOP_REQ of it → 55; the
/// session may not be monitored any more (55: unknown session).
#[test]
fn session_monitor_ends_with_the_watched_session() {
    let h = Harness::new();
    let mut o = observer(&h);
    let mut targets: Vec<Client> = (0..6)
        .map(|_| {
            let mut t = h.connect();
            t.open(&OpenSpec::services(service::PERIPHERAL_MONITOR));
            t
        })
        .collect();
    let mut monitors = Vec::new();
    for t in &targets {
        let sid = opened_of(&mut o, t.port).session_id;
        let m = o.session_monitor_start(sid).unwrap();
        monitors.push((t.port, sid, m));
    }
    for (k, t) in targets.drain(..).enumerate() {
        let mut t = t;
        if k % 2 == 0 {
            t.close();
        } else {
            t.drop_connection();
        }
    }
    for &(port, sid, m) in &monitors {
        // CLOSED events come in whatever order the closes happen.
        o.cursor = 0;
        let c = closed_of(&mut o, port, WAIT);
        assert_eq!(c.session_id, sid);
        assert_eq!(
            o.session_monitor_stop(m),
            Err(status::E_CTI_INVALID_MONITORID),
            "the session monitor ended with session {sid}"
        );
        assert_eq!(
            o.session_monitor_start(sid),
            Err(status::E_CTI_INVALID_MONITORID)
        );
    }
    o.heartbeat_keeping_events();
}

/// A session whose OPEN_REQ is refused never opened: Client Monitor
/// observers hear nothing of it (no OPENED, no CLOSED).
#[test]
fn refused_opens_are_not_reported() {
    let h = Harness::new();
    let mut o = observer(&h);
    let mut refused = h.connect();
    let refused_port = refused.port as u32;
    // Client Events without an agent → 6, then the router closes.
    assert_eq!(
        refused.open_refused(&OpenSpec::services(service::CLIENT_EVENTS)),
        status::E_CTI_REQUIRED_DATA_MISSING
    );
    refused.expect_closed_within(WAIT);
    let mut idle = h.connect();
    let mut spec = OpenSpec::services(service::ALL_EVENTS);
    spec.idle_timeout = 5; // below 20 → 18
    assert_eq!(idle.open_refused(&spec), status::E_CTI_INVALID_TIMEOUT);
    let idle_port = idle.port as u32;
    // A good session afterwards marks the point in the observers' stream.
    let mut good = h.connect();
    good.open(&OpenSpec::services(service::ALL_EVENTS));
    opened_of(&mut o, good.port);
    for f in &o.log {
        let port = match decode(f) {
            Message::ClientSessionOpenedEvent(e) => e.client_port,
            Message::ClientSessionClosedEvent(e) => e.client_port,
            _ => continue,
        };
        assert!(
            port != refused_port && port != idle_port,
            "a refused session was reported: {}",
            describe(f)
        );
    }
}
