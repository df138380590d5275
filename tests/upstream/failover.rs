//! Upstream loss and failover (docs/design.md §4.12): downstream sessions stay
//! open through it and hear SYS_CTI_SERVER_OFFLINE (7), then
//! SYS_CTI_SERVER_ONLINE (8) once the router is back on side A or B, then
//! events again. Loss is an EOF, three missed heartbeats, a FAILURE_EVENT or
//! a malformed upstream frame; a refused OPEN moves on to the other side.

use crate::BIN;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctirouter::proto::constants::msg;
use ctirouter::proto::msg::{CallDeliveredEvent, FailureConf, FailureEvent};
use ctirouter::proto::{Message, Version};
use testkit::*;

const V24: Version = Version::MAX;

/// What a downstream session saw, with arrival times.
#[derive(Default)]
struct Seen {
    /// (SystemEventID, PGStatus, when)
    system: Vec<(u32, u32, Instant)>,
    /// Non-SYSTEM_EVENT frames and when they came.
    events: Vec<(Instant, Vec<u8>)>,
}

/// Read until `done` says so (or panic after `timeout`); the session must stay open.
fn watch_until(
    client: &mut Client,
    timeout: Duration,
    mut done: impl FnMut(&Seen) -> bool,
) -> Seen {
    let deadline = Instant::now() + timeout;
    let mut seen = Seen::default();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "gave up after {timeout:?}: system events {:?}, {} events",
            seen.system.iter().map(|s| s.0).collect::<Vec<_>>(),
            seen.events.len()
        );
        match client.next(left.min(Duration::from_millis(200))) {
            Recv::Frame(_, frame) => match system_event_id(&frame, client.version) {
                Some((id, e)) => seen.system.push((id, e.pg_status, Instant::now())),
                None => seen.events.push((Instant::now(), frame)),
            },
            Recv::Timeout => {}
            Recv::Closed(kind) => panic!("the downstream session was closed ({kind:?})"),
        }
    }
    seen
}

fn position(seen: &Seen, id: u32) -> Option<usize> {
    seen.system.iter().position(|s| s.0 == id)
}

/// Lost (7) then back (8), and events after the 8.
fn back_with_events(seen: &Seen) -> bool {
    match (position(seen, 7), position(seen, 8)) {
        (Some(lost), Some(back)) if back > lost => {
            let at = seen.system[back].2;
            seen.events.iter().any(|(t, _)| *t >= at)
        }
        _ => false,
    }
}

#[test]
fn killing_side_a_fails_over_to_side_b_and_sessions_stay_open() {
    let mut a = sim_pg(BIN, &["--calls-per-sec", "30"]);
    let b = sim_pg(BIN, &["--calls-per-sec", "30"]);
    let router = router(BIN, &upstream_toml(&[a.addr(), b.addr()], 200), &[]);
    let (mut client, _) = open_when_upstream_up(router.addr(), V24, Duration::from_secs(10));
    // Events flow from side A.
    watch_until(&mut client, Duration::from_secs(5), |s| s.events.len() >= 5);
    let killed = Instant::now();
    a.kill();
    let seen = watch_until(&mut client, Duration::from_secs(10), back_with_events);
    let lost = &seen.system[position(&seen, 7).unwrap()];
    let back = &seen.system[position(&seen, 8).unwrap()];
    assert_ne!(
        lost.1 & 0x08,
        0,
        "SYS_CTI_SERVER_OFFLINE carries PGS_CTI_SERVER_OFFLINE"
    );
    assert_eq!(
        back.1 & 0x08,
        0,
        "SYS_CTI_SERVER_ONLINE: the CTI Server is online"
    );
    let detected = lost.2 - killed;
    let failover = back.2 - lost.2;
    eprintln!(
        "side A killed: loss seen downstream after {detected:?}, back on side B {failover:?} later"
    );
    assert!(
        failover < Duration::from_secs(2),
        "failover took {failover:?}"
    );
    // A session opened now sees the healthy status.
    let (_, conf) = open_when_upstream_up(router.addr(), V24, Duration::from_secs(1));
    assert_eq!(conf.pg_status, 0);
    assert!(
        router.stderr_text().contains("upstream open side=\"B\""),
        "{}",
        router.stderr_text()
    );
}

/// A CALL_DELIVERED_EVENT whose last floating field runs past the end of the message.
fn corrupt_call_delivered() -> Vec<u8> {
    let mut frame = Message::from(CallDeliveredEvent {
        peripheral_id: 5000,
        connection_call_id: 9,
        connection_device_id_type: 1,
        connection_device_id: Some("T1".into()),
        ..Default::default()
    })
    .to_frame(V24)
    .unwrap();
    // The last field is CONNECTION_DEVID ("T1\0", 3 bytes): claim 40.
    let len = frame.len();
    frame[len - 5..len - 3].copy_from_slice(&40u16.to_be_bytes());
    frame
}

fn agent_event(agent: &str) -> Vec<u8> {
    Message::from(ctirouter::proto::msg::AgentStateEvent {
        peripheral_id: 5000,
        agent_state: 3,
        agent_id: Some(agent.into()),
        ..Default::default()
    })
    .to_frame(V24)
    .unwrap()
}

#[test]
fn malformed_upstream_frames_reestablish_the_session() {
    assert!(ctirouter::proto::routing::extract(&corrupt_call_delivered(), V24).is_err());
    // The fake holds its first session healthy until the test's session is open.
    let go = Arc::new(AtomicBool::new(false));
    let go_fake = go.clone();
    let fake = FakePg::scripted(move |index, conn| {
        conn.expect_open();
        conn.accept_open(V24);
        while index == 0 && !go_fake.load(Ordering::Relaxed) {
            conn.serve_heartbeats(Duration::from_millis(50));
        }
        conn.send(&agent_event(&format!("10{index}")));
        match index {
            // A floating field running past the end of its message.
            0 => conn.send(&corrupt_call_delivered()),
            // A header announcing more than 12,500 bytes.
            1 => conn.send(&[0, 0, 0x40, 0, 0, 0, 0, 9, 1, 2, 3, 4]),
            // Healthy from here on.
            _ => {
                conn.serve_heartbeats(Duration::from_secs(20));
                return;
            }
        }
        // The router must drop this connection now.
        conn.serve_heartbeats(Duration::from_secs(5));
    });
    let router = router(BIN, &upstream_toml(&[fake.addr], 200), &[]);
    let (mut client, _) = open_when_upstream_up(router.addr(), V24, Duration::from_secs(10));
    go.store(true, Ordering::Relaxed);
    let seen = watch_until(&mut client, Duration::from_secs(10), |s| {
        s.events.iter().any(|(_, f)| f == &agent_event("102"))
    });
    let agents: Vec<&Vec<u8>> = seen.events.iter().map(|(_, f)| f).collect();
    assert_eq!(
        agents,
        [
            &agent_event("100"),
            &agent_event("101"),
            &agent_event("102")
        ]
    );
    assert!(
        fake.nr_opens() >= 3,
        "the router re-opened after each bad frame"
    );
    let ids: Vec<u32> = seen
        .system
        .iter()
        .map(|s| s.0)
        .filter(|&id| id == 7 || id == 8)
        .collect();
    assert!(
        ids.ends_with(&[7, 8, 7, 8]) || ids.ends_with(&[8, 7, 8]),
        "offline/online pairs: {ids:?}"
    );
    assert!(
        seen.events
            .iter()
            .all(|(_, f)| frame_type(f) == msg::AGENT_STATE_EVENT),
        "nothing of the bad frames reached the session"
    );
    let log = router.stderr_text();
    assert!(log.contains("malformed upstream frame"), "{log}");
    // The session is still served: heartbeat round trip.
    client.heartbeat(Duration::from_secs(2));
}

/// docs/requests.md §5: replies from the CTI Server answer one request and
/// are never fanned out; with none of the router's requests pending they
/// are dropped (and counted), and the upstream session stays as it is.
#[test]
fn upstream_replies_never_reach_event_sessions() {
    use ctirouter::proto::msg::{ControlFailureConf, MonitorStartConf, SetAgentStateConf};
    let go = Arc::new(AtomicBool::new(false));
    let go_fake = go.clone();
    let fake = FakePg::scripted(move |_, conn| {
        conn.expect_open();
        conn.accept_open(V24);
        while !go_fake.load(Ordering::Relaxed) {
            conn.serve_heartbeats(Duration::from_millis(50));
        }
        conn.send(&agent_event("100"));
        let invoke_id = 0x8000_0001;
        let replies: [Message; 4] = [
            SetAgentStateConf { invoke_id }.into(),
            ControlFailureConf {
                invoke_id,
                failure_code: 8,
                ..Default::default()
            }
            .into(),
            FailureConf {
                invoke_id,
                status: 16,
                ..Default::default()
            }
            .into(),
            MonitorStartConf {
                invoke_id,
                monitor_id: 3,
            }
            .into(),
        ];
        for reply in replies {
            conn.send(&reply.to_frame(V24).unwrap());
        }
        conn.send(&agent_event("101"));
        conn.serve_heartbeats(Duration::from_secs(20));
    });
    let router = router(BIN, &upstream_toml(&[fake.addr], 200), &[]);
    let (mut client, _) = open_when_upstream_up(router.addr(), V24, Duration::from_secs(10));
    go.store(true, Ordering::Relaxed);
    let seen = watch_until(&mut client, Duration::from_secs(10), |s| {
        s.events.iter().any(|(_, f)| f == &agent_event("101"))
    });
    let events: Vec<&Vec<u8>> = seen.events.iter().map(|(_, f)| f).collect();
    assert_eq!(events, [&agent_event("100"), &agent_event("101")]);
    // Nothing more arrives (a reply fanned out late would show here).
    client.heartbeat(Duration::from_secs(2));
    assert_eq!(
        fake.nr_opens(),
        1,
        "replies do not reset the upstream session"
    );
}

#[test]
fn upstream_open_req_is_an_all_events_bridge_session() {
    let fake = FakePg::scripted(|_, conn| {
        conn.expect_open();
        conn.accept_open(Version::new(20).unwrap());
        conn.serve_heartbeats(Duration::from_secs(10));
    });
    let toml = format!(
        "{}client_id = \"bridge1\"\npassword = \"pw\"\n",
        upstream_toml(&[fake.addr], 2000)
    );
    let _router = router(BIN, &toml, &["--upstream-version", "20"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.nr_opens() == 0 {
        assert!(Instant::now() < deadline, "no OPEN_REQ reached the fake");
        std::thread::sleep(Duration::from_millis(10));
    }
    let req = fake.opens.lock().unwrap()[0].1.clone();
    assert_eq!(req.version_number, 20);
    assert_eq!(
        req.services_requested, 0x1E,
        "[upstream] services by default: All Events, Client Control, Call Data Update, \
         Connection Monitor (never IGNORE_CONF)"
    );
    assert_eq!(req.call_msg_mask, 0xFFFF_FFFF);
    assert_eq!(req.agent_state_mask, 0x3FFF);
    assert_eq!(req.idle_timeout, 20, "4 × 2 s heartbeat, at least 20 s");
    assert_eq!(req.client_id.unwrap().as_bytes(), b"bridge1");
    assert_eq!(req.client_password.unwrap().0, b"pw");
    assert_eq!(req.client_signature.unwrap().as_bytes(), b"ctirouter");
}

#[test]
fn three_missed_heartbeats_lose_a_silent_upstream() {
    let fake = FakePg::scripted(|index, conn| {
        conn.expect_open();
        conn.accept_open(V24);
        if index == 0 {
            // Read and ignore everything: heartbeats go unanswered.
            while conn.read_frame(Duration::from_secs(5)).is_some() {}
        } else {
            conn.serve_heartbeats(Duration::from_secs(20));
        }
    });
    let router = router(BIN, &upstream_toml(&[fake.addr], 100), &[]);
    let (mut client, _) = open_when_upstream_up(router.addr(), V24, Duration::from_secs(10));
    let opened = fake.opens.lock().unwrap()[0].0;
    let seen = watch_until(&mut client, Duration::from_secs(10), |s| {
        position(s, 8).is_some() && position(s, 7).is_some()
    });
    let lost_after = seen.system[position(&seen, 7).unwrap()].2 - opened;
    eprintln!("silent upstream declared lost {lost_after:?} after its OPEN (heartbeat 100 ms)");
    assert!(
        lost_after >= Duration::from_millis(300),
        "lost after {lost_after:?}: too early"
    );
    assert!(
        lost_after < Duration::from_secs(2),
        "lost after {lost_after:?}: too late"
    );
    assert!(fake.nr_opens() >= 2);
}

#[test]
fn refused_open_and_failure_event_move_to_the_other_side() {
    // Side A refuses every OPEN_REQ (bad password); side B accepts, then
    // ends the first session with FAILURE_EVENT.
    let a = FakePg::scripted(|_, conn| {
        let req = conn.expect_open();
        let refusal = Message::from(FailureConf {
            invoke_id: req.invoke_id,
            status: 36,
            text: None,
        });
        conn.send(&refusal.to_frame(V24).unwrap());
        let _ = conn.read_frame(Duration::from_millis(500));
    });
    let b = FakePg::scripted(|index, conn| {
        conn.expect_open();
        conn.accept_open(V24);
        if index == 0 {
            conn.send(&agent_event("2000"));
            std::thread::sleep(Duration::from_millis(300));
            let end = Message::from(FailureEvent {
                status: 15,
                text: None,
            });
            conn.send(&end.to_frame(V24).unwrap());
            let _ = conn.read_frame(Duration::from_secs(2));
        } else {
            conn.send(&agent_event("2001"));
            conn.serve_heartbeats(Duration::from_secs(20));
        }
    });
    let router = router(BIN, &upstream_toml(&[a.addr, b.addr], 200), &[]);
    let (mut client, _) = open_when_upstream_up(router.addr(), V24, Duration::from_secs(10));
    watch_until(&mut client, Duration::from_secs(10), |s| {
        s.events.iter().any(|(_, f)| f == &agent_event("2001"))
    });
    assert!(
        a.nr_opens() >= 2,
        "side A was tried again after side B's session ended"
    );
    assert!(b.nr_opens() >= 2);
    let log = router.stderr_text();
    assert!(log.contains("refused"), "{log}");
}

#[test]
fn sessions_opened_before_the_first_upstream_open_see_offline_then_online() {
    let fake = FakePg::scripted(|_, conn| {
        conn.expect_open();
        // A slow CTI Server: the router has no upstream status meanwhile.
        std::thread::sleep(Duration::from_millis(800));
        conn.accept_open(V24);
        conn.serve_heartbeats(Duration::from_secs(20));
    });
    let router = router(BIN, &upstream_toml(&[fake.addr], 200), &[]);
    let mut client = Client::connect(router.addr());
    let conf = client.open(&OpenSpec::new(V24, 0x10).client("early", b""));
    assert_ne!(
        conf.pg_status & 0x08,
        0,
        "before the upstream opens: PGS_CTI_SERVER_OFFLINE"
    );
    assert_eq!(conf.peripheral_online, 0);
    let seen = watch_until(&mut client, Duration::from_secs(5), |s| {
        position(s, 8).is_some()
    });
    assert_eq!(seen.system[position(&seen, 8).unwrap()].1 & 0x08, 0);
    assert_eq!(
        position(&seen, 7),
        None,
        "never lost: no SYS_CTI_SERVER_OFFLINE"
    );
}

#[test]
fn heartbeats_go_out_while_the_upstream_floods_events() {
    // The fake writes events as fast as the router reads them (every read
    // finds data waiting) and counts the HEARTBEAT_REQs that still arrive.
    let heartbeats = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = heartbeats.clone();
    let fake = FakePg::scripted(move |index, conn| {
        conn.expect_open();
        conn.accept_open(V24);
        if index > 0 {
            return;
        }
        let mut writer = conn.stream.try_clone().unwrap();
        let until = Instant::now() + Duration::from_millis(1200);
        let flood = std::thread::spawn(move || {
            let burst: Vec<u8> = (0..200)
                .flat_map(|i| agent_event(&format!("{}", 1000 + i)))
                .collect();
            while Instant::now() < until && std::io::Write::write_all(&mut writer, &burst).is_ok() {
            }
        });
        while Instant::now() < until {
            if let Some(frame) = conn.read_frame(Duration::from_millis(20)) {
                if frame_type(&frame) == msg::HEARTBEAT_REQ {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let _ = flood.join();
    });
    let _router = router(BIN, &upstream_toml(&[fake.addr], 300), &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.nr_opens() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let n = heartbeats.load(Ordering::Relaxed);
    eprintln!("{n} heartbeats in 1.2 s of flooding (period 300 ms)");
    assert!(n >= 2, "heartbeats starved by the event flood: {n}");
}

#[test]
fn stopping_the_router_closes_the_upstream_session() {
    let closed = Arc::new(AtomicBool::new(false));
    let seen_close = closed.clone();
    let fake = FakePg::scripted(move |_, conn| {
        conn.expect_open();
        conn.accept_open(V24);
        while let Some(frame) = conn.read_frame(Duration::from_secs(10)) {
            let invoke_id = u32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
            let reply: Message = match frame_type(&frame) {
                msg::HEARTBEAT_REQ => ctirouter::proto::msg::HeartbeatConf { invoke_id }.into(),
                msg::CLOSE_REQ => {
                    seen_close.store(true, Ordering::Relaxed);
                    ctirouter::proto::msg::CloseConf { invoke_id }.into()
                }
                _ => continue,
            };
            conn.send(&reply.to_frame(V24).unwrap());
        }
    });
    let mut router = router(BIN, &upstream_toml(&[fake.addr], 200), &[]);
    open_when_upstream_up(router.addr(), V24, Duration::from_secs(10));
    let asked = Instant::now();
    router.signal(libc::SIGTERM);
    assert!(router.wait_exit(Duration::from_secs(5)).success());
    eprintln!("router stopped {:?} after SIGTERM", asked.elapsed());
    assert!(
        closed.load(Ordering::Relaxed),
        "no CLOSE_REQ reached the upstream"
    );
    assert!(
        router.stderr_text().contains("CLOSE_CONF received"),
        "{}",
        router.stderr_text()
    );
}
