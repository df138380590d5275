//! Black-box session tests (docs/design.md §4.1, §4.2, §4.5, §4.6 and shutdown):
//! versions, before OPEN, heartbeat and idle, close, SIGTERM/SIGINT. The
//! router binary on a loopback port, raw GED-188 bytes over TCP.

use crate::{BIN, SIM};
use std::time::{Duration, Instant};

use ctirouter::proto::constants::{msg, service, status};
use ctirouter::proto::{Message, Version};
use testkit::*;

fn open_conf_fixed_len(version: u32) -> usize {
    match version {
        ..=18 => 26,
        19..=23 => 30,
        _ => 32,
    }
}

/// The OPEN_CONF fixed part has the version's size: the floating part that
/// follows it parses exactly with the version's tag width, and starts with
/// NUM_PERIPHERALS (v14+; v13 has no floating part for an All Events session).
fn check_open_conf_layout(frame: &[u8], version: Version) {
    let body = frame_body(frame);
    let fixed = open_conf_fixed_len(version.number());
    assert!(
        body.len() >= fixed,
        "v{version}: OPEN_CONF body {} < fixed {fixed}",
        body.len()
    );
    let fields = walk_floating(&body[fixed..], version.tag_width()).unwrap_or_else(|e| {
        panic!(
            "v{version}: OPEN_CONF floating part after {fixed} bytes: {e}; {}",
            hex::encode(frame)
        )
    });
    if version.number() == 13 {
        assert_eq!(
            body.len(),
            26,
            "v13 OPEN_CONF: 26 fixed bytes, no floating part"
        );
    } else {
        assert_eq!(
            fields.first().map(|f| f.0),
            Some(228),
            "v{version}: NUM_PERIPHERALS first after the fixed part; {fields:?}"
        );
        for (tag, _) in &fields {
            assert!(
                [4, 5, 6, 208, 224, 228].contains(tag),
                "v{version}: unexpected OPEN_CONF tag {tag}"
            );
        }
    }
}

/// An event frame at `version`: a known type at that version, its floating
/// part parses with that version's tag width right after its fixed part, it
/// decodes strictly and re-encodes to the same bytes.
fn check_event_layout(frame: &[u8], version: Version) -> Message {
    let t = frame_type(frame);
    assert!(
        Message::exists_at(t, version),
        "v{version} got type {t} that the version lacks"
    );
    let fixed = Message::fixed_len(t, version).unwrap_or_else(|| panic!("untyped event type {t}"));
    let body = frame_body(frame);
    assert!(
        body.len() >= fixed,
        "v{version} type {t}: body {} < fixed {fixed}",
        body.len()
    );
    walk_floating(&body[fixed..], version.tag_width()).unwrap_or_else(|e| {
        panic!(
            "v{version} type {t}: floating part: {e}; {}",
            hex::encode(frame)
        )
    });
    let message = decode_strict(frame, version);
    assert_eq!(
        message.to_frame(version).unwrap(),
        frame,
        "v{version} type {t}: not the canonical encoding"
    );
    message
}

#[test]
fn every_version_13_to_24_opens_and_receives_events_encoded_for_it() {
    let router = RouterProcess::start(BIN, SIM);
    let mut sessions = Vec::new();
    for n in 13..=24u32 {
        let version = v(n);
        let mut c = router.client();
        let invoke = 500 + n;
        c.send_at(
            open_req(
                invoke,
                n,
                service::ALL_EVENTS,
                ALL_CALLS,
                ALL_AGENTS,
                NO_IDLE,
                "versions",
                b"",
            ),
            version,
        );
        let (t, frame) = c.expect_frame(WAIT);
        assert_eq!(
            t,
            msg::OPEN_CONF,
            "v{n}: expected OPEN_CONF, got {}",
            describe(&frame)
        );
        check_open_conf_layout(&frame, version);
        let Message::OpenConf(conf) = decode_strict(&frame, version) else {
            unreachable!()
        };
        assert_eq!(
            (conf.invoke_id, conf.services_granted, conf.monitor_id),
            (invoke, service::ALL_EVENTS, 0)
        );
        c.version = version;
        let (t, sys) = c.expect_frame(WAIT);
        assert_eq!(
            t,
            msg::SYSTEM_EVENT,
            "v{n}: expected SYSTEM_EVENT, got {}",
            describe(&sys)
        );
        let Message::SystemEvent(sys) = check_event_layout(&sys, version) else {
            unreachable!()
        };
        assert_eq!((sys.system_event_id, sys.system_event_arg1), (3, PID));
        sessions.push((
            c,
            version,
            Reference::at_version(3, 20, 10.0, version),
            RunTracker::new(),
        ));
    }
    // Read until every session has a run of events (or 12 s).
    const WANT: usize = 40;
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut narrow_fields = 0;
    while sessions.iter().any(|s| s.3.count < WANT) {
        assert!(
            Instant::now() < deadline,
            "events per session after 12 s: {:?}",
            sessions
                .iter()
                .map(|s| (s.1.number(), s.3.count))
                .collect::<Vec<_>>()
        );
        for (c, version, reference, tracker) in sessions.iter_mut() {
            while let Some((t, frame)) = c.recv_frame(Duration::from_millis(2)) {
                if version.number() < 15 {
                    assert_ne!(
                        t,
                        msg::CALL_AGENT_GREETING_EVENT,
                        "v{version} got CALL_AGENT_GREETING_EVENT"
                    );
                }
                check_event_layout(&frame, *version);
                if version.tag_width() == 1 {
                    let fixed = Message::fixed_len(t, *version).unwrap();
                    narrow_fields += walk_floating(&frame_body(&frame)[fixed..], 1)
                        .unwrap()
                        .len();
                }
                tracker
                    .push(reference, &frame)
                    .unwrap_or_else(|e| panic!("v{version}: {e}"));
            }
        }
    }
    assert!(
        narrow_fields > 0,
        "no floating field seen below v20: the 1-byte tag check checked nothing"
    );
}

#[test]
fn versions_outside_13_to_24_get_failure_conf_1_then_close() {
    let router = RouterProcess::start(BIN, SIM);
    let cases = [(12u32, 1usize), (25, 2), (0, 1), (9, 1), (0xFFFF_FFFF, 2)];
    for (i, (n, width)) in cases.into_iter().enumerate() {
        let invoke = 77 + i as u32;
        let mut c = router.client();
        let mut body = open_req_fixed(
            invoke,
            n,
            NO_IDLE,
            service::ALL_EVENTS,
            ALL_CALLS,
            ALL_AGENTS,
        );
        body.extend(floating(width, &[(1, b"test\0"), (2, b"")]));
        c.send_raw(&raw_frame(msg::OPEN_REQ, &body));
        let (_, frame) = c.expect_frame(WAIT);
        assert_eq!(
            frame,
            failure_conf_frame(invoke, status::E_CTI_INVALID_VERSION),
            "version {n}: got {}",
            describe(&frame)
        );
        c.expect_closed(WAIT);
    }
}

#[test]
fn requests_before_open_get_failure_conf_4_and_the_connection_stays() {
    let router = RouterProcess::start(BIN, SIM);
    let mut c = router.client();
    c.send_raw(&raw_frame(msg::HEARTBEAT_REQ, &be32s(&[41])));
    assert_eq!(
        c.expect_frame(WAIT).1,
        failure_conf_frame(41, status::E_CTI_SESSION_NOT_OPEN)
    );
    c.send_raw(&raw_frame(msg::CLOSE_REQ, &be32s(&[42, 0])));
    assert_eq!(
        c.expect_frame(WAIT).1,
        failure_conf_frame(42, status::E_CTI_SESSION_NOT_OPEN)
    );
    c.send_raw(&raw_frame(msg::MAKE_CALL_REQ, &be32s(&[43, 0, 0])));
    assert_eq!(
        c.expect_frame(WAIT).1,
        failure_conf_frame(43, status::E_CTI_SESSION_NOT_OPEN)
    );
    // Still up: nothing more arrives (no events before OPEN), and OPEN_REQ works.
    assert!(
        c.recv_frame(Duration::from_millis(300)).is_none(),
        "no frames for a session that is not open"
    );
    c.open_all_events(Version::MAX);
    c.heartbeat(WAIT);
}

#[test]
fn heartbeat_req_gets_heartbeat_conf_with_the_same_invoke_id() {
    let router = RouterProcess::start(BIN, SIM);
    for version in [v(13), v(20), v(24)] {
        let mut c = router.client();
        c.open_all_events(version);
        for invoke in [0u32, 1, 0x7FFF_FFFF, 0xFFFF_FFFF] {
            c.send_raw(&raw_frame(msg::HEARTBEAT_REQ, &invoke.to_be_bytes()));
            let (t, frame) = c.recv_reply(WAIT);
            assert_eq!(
                t,
                msg::HEARTBEAT_CONF,
                "v{version}: got {}",
                describe(&frame)
            );
            assert_eq!(frame, raw_frame(msg::HEARTBEAT_CONF, &invoke.to_be_bytes()));
        }
        // Ten requests in one write: ten confirmations, in order.
        let burst: Vec<u8> = (1..=10u32)
            .flat_map(|i| raw_frame(msg::HEARTBEAT_REQ, &i.to_be_bytes()))
            .collect();
        c.send_raw(&burst);
        for i in 1..=10u32 {
            let (_, frame) = c.recv_reply(WAIT);
            assert_eq!(
                frame,
                raw_frame(msg::HEARTBEAT_CONF, &i.to_be_bytes()),
                "v{version} #{i}"
            );
        }
        // One request split into single bytes.
        for b in raw_frame(msg::HEARTBEAT_REQ, &77u32.to_be_bytes()) {
            c.send_raw(&[b]);
            std::thread::sleep(Duration::from_millis(5));
        }
        let (_, frame) = c.recv_reply(WAIT);
        assert_eq!(frame, raw_frame(msg::HEARTBEAT_CONF, &77u32.to_be_bytes()));
    }
}

/// The one long test (≥ 20 s): a silent session with IdleTimeout 20 gets
/// FAILURE_EVENT(16) and is closed; a session heartbeating every 5 s and
/// one with the idle check disabled stay open past 20 s.
#[test]
fn idle_session_gets_failure_event_16_and_close_heartbeating_session_stays() {
    let router = RouterProcess::start(
        BIN,
        &[
            "--sim-seed",
            "5",
            "--sim-agents",
            "10",
            "--sim-calls-per-sec",
            "1",
        ],
    );
    let mut beating = router.client();
    beating.open_all_events_masked(Version::MAX, 0, 0);
    let mut disabled = router.client();
    disabled.open(&OpenSpec::new(v(16), service::ALL_EVENTS).masks(0, 0));
    let mut idle = router.client();
    let sent = Instant::now();
    idle.open(
        &OpenSpec::new(v(17), service::ALL_EVENTS)
            .masks(0, 0)
            .idle(20),
    );
    let mut next_beat = Instant::now();
    let cut = loop {
        let waited = sent.elapsed();
        assert!(
            waited < Duration::from_secs(25),
            "no FAILURE_EVENT(16) after {waited:?}"
        );
        if Instant::now() >= next_beat {
            let rtt = beating.heartbeat(WAIT);
            assert!(rtt < Duration::from_secs(1), "heartbeat took {rtt:?}");
            next_beat += Duration::from_secs(5);
        }
        match idle.next(Duration::from_millis(100)) {
            Recv::Frame(t, _) if is_unsolicited_event(t) => {}
            Recv::Frame(_, frame) => {
                assert_eq!(
                    as_failure_event(&frame),
                    Some(status::E_CTI_TIMEOUT),
                    "idle session got {} after {:?}",
                    describe(&frame),
                    sent.elapsed()
                );
                break sent.elapsed();
            }
            Recv::Timeout => {}
            Recv::Closed(kind) => panic!(
                "idle session closed ({kind:?}) without FAILURE_EVENT after {:?}",
                sent.elapsed()
            ),
        }
    };
    assert!(
        cut >= Duration::from_secs(20),
        "idle session cut after only {cut:?}"
    );
    assert!(
        cut < Duration::from_secs(23),
        "idle session cut late: {cut:?}"
    );
    idle.expect_closed(WAIT);
    // Both others are past 20 s now and still served.
    beating.heartbeat(WAIT);
    disabled.heartbeat(WAIT);
}

#[test]
fn close_req_gets_close_conf_then_the_router_closes_the_socket() {
    let router = RouterProcess::start(BIN, SIM);
    for version in [v(13), v(21), v(24)] {
        let mut c = router.client();
        c.open_all_events(version);
        // Let some events flow first.
        let _ = c.recv_frame(Duration::from_millis(200));
        c.send_raw(&raw_frame(
            msg::CLOSE_REQ,
            &be32s(&[4242, status::E_CTI_NO_ERROR]),
        ));
        let (t, frame) = c.recv_reply(WAIT);
        assert_eq!(t, msg::CLOSE_CONF, "v{version}: got {}", describe(&frame));
        assert_eq!(frame, raw_frame(msg::CLOSE_CONF, &4242u32.to_be_bytes()));
        c.expect_closed(WAIT);
    }
}

#[test]
fn sigterm_sends_failure_event_15_to_every_session_then_exits_0() {
    let mut router = RouterProcess::start(BIN, SIM);
    let mut sessions = Vec::new();
    for n in [15u32, 24, 19, 24, 20, 13] {
        let mut c = router.client();
        c.open_all_events(v(n));
        sessions.push(c);
    }
    // A connection that never opened, and one mid-frame.
    let mut unopened = router.client();
    let mut partial = router.client();
    partial.send_raw(&raw_frame(msg::HEARTBEAT_REQ, &[0, 0, 0, 1])[..6]);
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    router.signal(libc::SIGTERM);
    for (i, c) in sessions.iter_mut().enumerate() {
        let frames = c.drain_until_closed(Duration::from_secs(5));
        let last = frames
            .last()
            .map(|(_, f)| f.clone())
            .unwrap_or_else(|| panic!("session {i}: closed without FAILURE_EVENT"));
        assert_eq!(
            last,
            failure_event_frame(status::E_CTI_CTI_SERVER_OFFLINE),
            "session {i}: last frame {}",
            describe(&last)
        );
        for (t, frame) in &frames[..frames.len() - 1] {
            assert!(
                is_unsolicited_event(*t),
                "session {i}: unexpected {} before the FAILURE_EVENT",
                describe(frame)
            );
        }
    }
    unopened.expect_closed(Duration::from_secs(5));
    partial.expect_closed(Duration::from_secs(5));
    let status = router.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "router exited with {status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        signalled.elapsed()
    );
}

#[test]
fn sigint_also_stops_the_router_cleanly() {
    let mut router = RouterProcess::start(BIN, SIM);
    let mut c = router.client();
    c.open_all_events(Version::MAX);
    router.signal(libc::SIGINT);
    let frames = c.drain_until_closed(Duration::from_secs(5));
    assert_eq!(
        frames.last().map(|(_, f)| f.clone()),
        Some(failure_event_frame(status::E_CTI_CTI_SERVER_OFFLINE))
    );
    assert!(router.wait_exit(Duration::from_secs(5)).success());
}

/// The number after `name=` in a stats log line.
fn stat(line: &str, name: &str) -> u64 {
    let start = line
        .find(&format!(" {name}="))
        .map(|i| i + name.len() + 2)
        .or_else(|| line.find(&format!(": {name}=")).map(|i| i + name.len() + 3))
        .unwrap_or_else(|| panic!("no {name}= in {line}"));
    let digits: String = line[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{name}= in {line}"))
}

#[test]
fn serve_logs_its_counters_and_fan_out_latency_periodically_and_when_stopping() {
    let mut router = RouterProcess::start_with(
        BIN,
        StartOptions {
            capture_log: true,
            ..Default::default()
        },
        &[SIM, &["--stats-every", "1"]].concat(),
    );
    let mut c = router.client();
    c.open_all_events(Version::MAX);
    let deadline = Instant::now() + Duration::from_secs(10);
    // A periodic line that has seen this session and its events.
    let periodic = loop {
        let _ = c.recv_frame(Duration::from_millis(100));
        let log = router.log();
        let seen = log.lines().rev().find(|l| l.contains("stats: events="));
        if let Some(line) = seen.filter(|l| stat(l, "sessions") == 1 && stat(l, "deliveries") > 0) {
            break line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no stats line with the session:\n{log}"
        );
    };
    assert!(stat(&periodic, "events") > 0, "{periodic}");
    assert!(stat(&periodic, "accepted") >= 1, "{periodic}");
    assert!(periodic.contains("fan-out latency n="), "{periodic}");

    router.signal(libc::SIGTERM);
    let _ = c.drain_until_closed(Duration::from_secs(5));
    assert!(router.wait_exit(Duration::from_secs(5)).success());
    let log = router.log();
    let last = log
        .lines()
        .find(|l| l.contains("stopped: events="))
        .unwrap_or_else(|| panic!("no final stats line:\n{log}"));
    assert!(stat(last, "events") >= stat(&periodic, "events"), "{last}");
    assert!(
        stat(last, "deliveries") >= stat(&periodic, "deliveries"),
        "{last}"
    );
    assert!(stat(last, "n") > 0, "latency was measured: {last}");
    assert_eq!(stat(last, "bad_client_frames"), 0, "{last}");
}
