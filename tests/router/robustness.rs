//! Black-box bad-input and isolation tests (docs/design.md §4.7, §4.13): malformed
//! frames get the documented answers, and garbage clients or a slow consumer
//! never cost another session anything.

use crate::BIN;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctirouter::proto::constants::{msg, service, status};
use ctirouter::proto::msg::MonitorStartReq;
use ctirouter::proto::{CtiString, Version};
use testkit::*;

const SIM: &[&str] = &[
    "--sim-seed",
    "9",
    "--sim-agents",
    "20",
    "--sim-calls-per-sec",
    "5",
    "--sim-speed",
    "1",
];

/// An open v24 session with no call or agent events (only replies arrive).
fn quiet_session(router: &RouterProcess, version: Version) -> Client {
    let mut c = router.client();
    c.open_all_events_masked(version, 0, 0);
    c
}

#[test]
fn frame_over_12500_bytes_gets_failure_event_25_then_close() {
    let router = RouterProcess::start(BIN, SIM);
    // 12,493 body bytes = a 12,501-byte frame; and absurd lengths.
    for body_len in [12_493u32, 65_536, 0x7FFF_FFFF, 0xFFFF_FFFF] {
        for version in [None, Some(v(15)), Some(Version::MAX)] {
            let mut c = match version {
                Some(version) => quiet_session(&router, version),
                None => router.client(),
            };
            let mut header = body_len.to_be_bytes().to_vec();
            header.extend_from_slice(&msg::HEARTBEAT_REQ.to_be_bytes());
            c.send_raw(&header);
            let frames = c.drain_until_closed(WAIT);
            let last = frames.last().map(|(_, f)| f.clone());
            assert_eq!(
                last,
                Some(failure_event_frame(status::E_CTI_BAD_MESSAGE_FORMAT)),
                "length {body_len}, session {version:?}: frames {:?}",
                frames.iter().map(|(_, f)| describe(f)).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn frame_of_exactly_12500_bytes_is_read_as_a_frame() {
    let router = RouterProcess::start(BIN, SIM);
    let mut c = quiet_session(&router, Version::MAX);
    let mut body = 4321u32.to_be_bytes().to_vec();
    body.resize(12_500 - 8, 0xAB);
    c.send_raw(&raw_frame(9999, &body));
    assert_eq!(
        c.expect_failure_conf(WAIT),
        (4321, status::E_CTI_INVALID_MESSAGE_TYPE)
    );
    c.heartbeat(WAIT);
}

#[test]
fn malformed_known_requests_get_failure_conf_25_and_the_session_stays() {
    let router = RouterProcess::start(BIN, SIM);
    for version in [v(14), v(20), Version::MAX] {
        let mut c = quiet_session(&router, version);
        // HEARTBEAT_REQ with a 2-byte body (InvokeID cut short), and with none.
        c.send_raw(&raw_frame(msg::HEARTBEAT_REQ, &[0x12, 0x34]));
        assert_eq!(
            c.expect_failure_conf(WAIT).1,
            status::E_CTI_BAD_MESSAGE_FORMAT,
            "v{version}"
        );
        c.send_raw(&raw_frame(msg::HEARTBEAT_REQ, &[]));
        assert_eq!(
            c.expect_failure_conf(WAIT).1,
            status::E_CTI_BAD_MESSAGE_FORMAT,
            "v{version}"
        );
        c.heartbeat(WAIT);
        // CLOSE_REQ shorter than its 8-byte fixed part.
        c.send_raw(&raw_frame(msg::CLOSE_REQ, &be32s(&[55])));
        assert_eq!(
            c.expect_failure_conf(WAIT),
            (55, status::E_CTI_BAD_MESSAGE_FORMAT),
            "v{version}"
        );
        let mut seven = be32s(&[56]);
        seven.extend_from_slice(&[0, 0, 0]);
        c.send_raw(&raw_frame(msg::CLOSE_REQ, &seven));
        assert_eq!(
            c.expect_failure_conf(WAIT),
            (56, status::E_CTI_BAD_MESSAGE_FORMAT),
            "v{version}"
        );
        c.heartbeat(WAIT);
        // Still open: a proper CLOSE_REQ is confirmed.
        c.send_raw(&raw_frame(msg::CLOSE_REQ, &be32s(&[57, 0])));
        assert_eq!(
            c.recv_reply(WAIT).1,
            raw_frame(msg::CLOSE_CONF, &be32s(&[57]))
        );
        c.expect_closed(WAIT);
    }
}

#[test]
fn malformed_open_req_gets_failure_conf_25_and_a_proper_open_req_still_works() {
    let router = RouterProcess::start(BIN, SIM);
    for version in [v(13), v(19), v(20), Version::MAX] {
        let w = version.tag_width();
        let fixed = || open_req_fixed(31, version.number(), NO_IDLE, service::ALL_EVENTS, 0, 0);
        let mut c = router.client();
        // A floating field whose length runs past the end of the message.
        let mut body = fixed();
        body.extend(floating(w, &[(1, b"test\0")]));
        body.extend(floating(w, &[(2, b"0123456789")]));
        body.truncate(body.len() - 7);
        c.send_raw(&raw_frame(msg::OPEN_REQ, &body));
        assert_eq!(
            c.expect_frame(WAIT).1,
            failure_conf_frame(31, status::E_CTI_BAD_MESSAGE_FORMAT),
            "v{version}"
        );
        // A fixed part cut short (VersionNumber readable).
        let short = &fixed()[..20];
        c.send_raw(&raw_frame(msg::OPEN_REQ, short));
        assert_eq!(
            c.expect_frame(WAIT).1,
            failure_conf_frame(31, status::E_CTI_BAD_MESSAGE_FORMAT),
            "v{version}"
        );
        // Not even a VersionNumber.
        c.send_raw(&raw_frame(msg::OPEN_REQ, &be32s(&[32])));
        assert_eq!(
            c.expect_frame(WAIT).1,
            failure_conf_frame(32, status::E_CTI_BAD_MESSAGE_FORMAT),
            "v{version}"
        );
        // A half tag at the end.
        let mut body = fixed();
        body.extend(floating(w, &[(1, b"test\0"), (2, b"")]));
        body.push(1);
        c.send_raw(&raw_frame(msg::OPEN_REQ, &body));
        assert_eq!(
            c.expect_frame(WAIT).1,
            failure_conf_frame(31, status::E_CTI_BAD_MESSAGE_FORMAT),
            "v{version}"
        );
        // The connection stayed: a proper OPEN_REQ opens it.
        c.open_all_events(version);
        c.heartbeat(WAIT);
    }
}

#[test]
fn unknown_message_types_get_failure_conf_2() {
    let router = RouterProcess::start(BIN, SIM);
    for version in [v(16), Version::MAX] {
        let mut c = quiet_session(&router, version);
        for (i, t) in [283u32, 9999, 0x7FFF_FFFF, 0xFFFF_FFFF]
            .into_iter()
            .enumerate()
        {
            let invoke = 700 + i as u32;
            c.send_raw(&raw_frame(t, &be32s(&[invoke, 1, 2])));
            assert_eq!(
                c.expect_failure_conf(WAIT),
                (invoke, status::E_CTI_INVALID_MESSAGE_TYPE),
                "v{version} type {t}"
            );
        }
        // An unknown type with an empty body: no InvokeID to echo, still an answer.
        c.send_raw(&raw_frame(9999, &[]));
        assert_eq!(
            c.expect_failure_conf(WAIT).1,
            status::E_CTI_INVALID_MESSAGE_TYPE
        );
        c.heartbeat(WAIT);
    }
}

#[test]
fn requests_the_router_does_not_serve_get_failure_conf_12() {
    let router = RouterProcess::start(BIN, SIM);
    for version in [v(15), Version::MAX] {
        let mut c = quiet_session(&router, version);
        // MAKE_CALL_REQ: InvokeID and a few zeros (the router does not decode it).
        c.send_raw(&raw_frame(msg::MAKE_CALL_REQ, &be32s(&[801, 5000, 0, 0])));
        assert_eq!(
            c.expect_failure_conf(WAIT),
            (801, status::E_CTI_FUNCTION_NOT_AVAILABLE)
        );
        c.send_at(
            MonitorStartReq {
                invoke_id: 802,
                peripheral_id: PID,
                call_msg_mask: ALL_CALLS,
                agent_state_mask: ALL_AGENTS,
                monitored_device_type: 0,
                monitored_device_id: Some(CtiString::from("3001")),
                ..Default::default()
            },
            version,
        );
        assert_eq!(
            c.expect_failure_conf(WAIT),
            (802, status::E_CTI_FUNCTION_NOT_AVAILABLE)
        );
        // LIST_AGENT_TEAM_REQ (Supervisor, not served yet): InvokeID, SupervisorID.
        c.send_raw(&raw_frame(133, &be32s(&[803, 7])));
        assert_eq!(
            c.expect_failure_conf(WAIT),
            (803, status::E_CTI_FUNCTION_NOT_AVAILABLE)
        );
        c.heartbeat(WAIT);
    }
}

// ---------------------------------------------------------------------------
// Isolation
// ---------------------------------------------------------------------------

/// A well-behaved All Events session that heartbeats every 200 ms and checks
/// its event stream against the reference while garbage flies elsewhere.
struct Observer {
    client: Client,
    reference: Reference,
    tracker: RunTracker,
    pending: Option<(u32, Instant)>,
    next_beat: Instant,
    nr_beats: u32,
    max_rtt: Duration,
}

impl Observer {
    fn open(
        router: &RouterProcess,
        version: Version,
        seed: u64,
        agents: u32,
        rate: f64,
    ) -> Observer {
        let mut client = router.client();
        client.open_all_events(version);
        Observer {
            client,
            reference: Reference::at_version(seed, agents, rate, version),
            tracker: RunTracker::new(),
            pending: None,
            next_beat: Instant::now(),
            nr_beats: 0,
            max_rtt: Duration::ZERO,
        }
    }

    fn pump(&mut self) {
        let now = Instant::now();
        if self.pending.is_none() && now >= self.next_beat {
            let invoke = self.client.invoke();
            self.client
                .send_raw(&raw_frame(msg::HEARTBEAT_REQ, &invoke.to_be_bytes()));
            self.pending = Some((invoke, now));
            self.next_beat = now + Duration::from_millis(200);
        }
        if let Some((invoke, sent)) = self.pending {
            assert!(
                sent.elapsed() < Duration::from_secs(2),
                "heartbeat unanswered after {:?}",
                sent.elapsed()
            );
            let _ = invoke;
        }
        while let Some((t, frame)) = self.client.recv_frame(Duration::from_millis(1)) {
            if t == msg::HEARTBEAT_CONF {
                let (invoke, sent) = self
                    .pending
                    .take()
                    .expect("HEARTBEAT_CONF without a request");
                assert_eq!(frame, raw_frame(msg::HEARTBEAT_CONF, &invoke.to_be_bytes()));
                self.max_rtt = self.max_rtt.max(sent.elapsed());
                self.nr_beats += 1;
            } else {
                assert!(is_unsolicited_event(t), "observer got {}", describe(&frame));
                let version = self.client.version;
                self.tracker
                    .push(&mut self.reference, &frame)
                    .unwrap_or_else(|e| panic!("observer v{version}: {e}"));
            }
        }
    }
}

/// Garbage of several kinds against `addr` until `stop`; counts connections.
fn garbage_loop(addr: SocketAddr, stop: Arc<AtomicBool>, nr_conns: Arc<AtomicU64>, seed: u64) {
    let mut rng = Rng::new(seed);
    let connect = || std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok();
    while !stop.load(Ordering::Relaxed) {
        let Some(mut s) = connect() else { continue };
        nr_conns.fetch_add(1, Ordering::Relaxed);
        let _ = s.set_read_timeout(Some(Duration::from_millis(20)));
        let _ = s.set_nodelay(true);
        let mut out = Vec::new();
        match rng.below(5) {
            // Random bytes.
            0 => {
                let n = 1 + rng.below(3000) as usize;
                out = random_bytes(&mut rng, n);
            }
            // Random frames with plausible lengths, before OPEN.
            1 => {
                for _ in 0..1 + rng.below(40) {
                    let body_len = rng.below(80) as usize;
                    out.extend(raw_frame(rng.below(300), &random_bytes(&mut rng, body_len)));
                }
            }
            // Open, then random frames (and some well-formed requests) after OPEN.
            2 => {
                let version = 13 + rng.below(12);
                let req = open_req(
                    1,
                    version,
                    service::ALL_EVENTS,
                    ALL_CALLS,
                    ALL_AGENTS,
                    NO_IDLE,
                    "junk",
                    b"",
                );
                out.extend(
                    ctirouter::proto::Message::from(req)
                        .to_frame(v(version))
                        .unwrap(),
                );
                for _ in 0..1 + rng.below(60) {
                    let body_len = rng.below(120) as usize;
                    let t = match rng.below(4) {
                        0 => rng.next_u64() as u32,
                        _ => rng.below(290),
                    };
                    out.extend(raw_frame(t, &random_bytes(&mut rng, body_len)));
                }
            }
            // Oversize frame header, then junk.
            3 => {
                out.extend((12_493 + rng.below(1 << 30)).to_be_bytes());
                out.extend(random_bytes(&mut rng, 200));
            }
            // A pipeline of heartbeats, never read, then a half frame.
            _ => {
                out.extend(raw_frame(msg::OPEN_REQ, &{
                    let mut b =
                        open_req_fixed(1, 24, NO_IDLE, service::ALL_EVENTS, ALL_CALLS, ALL_AGENTS);
                    b.extend(floating(2, &[(1, b"pipe"), (2, b"")]));
                    b
                }));
                for i in 0..2000u32 {
                    out.extend(raw_frame(msg::HEARTBEAT_REQ, &i.to_be_bytes()));
                }
                out.extend_from_slice(&[0, 0, 0, 4, 0, 0]);
            }
        }
        use std::io::{Read, Write};
        let _ = s.write_all(&out);
        let mut sink = [0u8; 4096];
        for _ in 0..rng.below(3) {
            let _ = s.read(&mut sink);
        }
        // Dropped with unread data at times: the router sees a reset.
    }
}

/// Connections that trickle bytes: one byte of a frame every 150 ms.
fn slowloris_loop(addr: SocketAddr, stop: Arc<AtomicBool>) {
    use std::io::Write;
    let mut conns: Vec<(std::net::TcpStream, Vec<u8>, usize)> = Vec::new();
    for i in 0..24u32 {
        let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            continue;
        };
        let _ = s.set_nodelay(true);
        let frame = match i % 3 {
            // A frame announcing 12,000 bytes that never come.
            0 => {
                let mut f = 11_992u32.to_be_bytes().to_vec();
                f.extend_from_slice(&msg::OPEN_REQ.to_be_bytes());
                f
            }
            // An OPEN_REQ a byte at a time (it completes after ~9 s: longer than the test).
            1 => {
                let mut b = open_req_fixed(i, 24, NO_IDLE, service::ALL_EVENTS, 0, 0);
                b.extend(floating(2, &[(1, b"slow"), (2, b"")]));
                raw_frame(msg::OPEN_REQ, &b)
            }
            // Garbage, slowly.
            _ => random_bytes(&mut Rng::new(i as u64), 64),
        };
        conns.push((s, frame, 0));
    }
    while !stop.load(Ordering::Relaxed) {
        for (s, frame, sent) in conns.iter_mut() {
            if *sent < frame.len() && s.write_all(&frame[*sent..*sent + 1]).is_ok() {
                *sent += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// Sets the flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn garbage_clients_never_disturb_other_sessions() {
    const SEED: u64 = 11;
    let router = RouterProcess::start(
        BIN,
        &[
            "--sim-seed",
            "11",
            "--sim-agents",
            "30",
            "--sim-calls-per-sec",
            "20",
            "--sim-speed",
            "1",
        ],
    );
    let mut observers: Vec<Observer> = [24, 24, 16, 21]
        .into_iter()
        .map(|n| Observer::open(&router, v(n), SEED, 30, 20.0))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    // Stops the garbage threads even if an assertion below fails.
    let _stop_guard = StopOnDrop(stop.clone());
    let nr_conns = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for seed in [1u64, 2] {
        let (stop, nr_conns) = (stop.clone(), nr_conns.clone());
        let addr = router.addr();
        threads.push(std::thread::spawn(move || {
            garbage_loop(addr, stop, nr_conns, seed)
        }));
    }
    {
        let (stop, addr) = (stop.clone(), router.addr());
        threads.push(std::thread::spawn(move || slowloris_loop(addr, stop)));
    }
    // Slow consumers that opened and never read (well within the 8 MiB bound).
    let mut idle_readers = Vec::new();
    for _ in 0..4 {
        let mut c = router.client();
        c.send_at(
            open_req(
                1,
                24,
                service::ALL_EVENTS,
                ALL_CALLS,
                ALL_AGENTS,
                NO_IDLE,
                "sleepy",
                b"",
            ),
            Version::MAX,
        );
        idle_readers.push(c);
    }
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        for o in observers.iter_mut() {
            o.pump();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("garbage thread");
    }
    for o in observers.iter_mut() {
        o.pump();
    }
    let report: Vec<_> = observers
        .iter()
        .map(|o| {
            (
                o.client.version.number(),
                o.tracker.count,
                o.nr_beats,
                o.max_rtt,
            )
        })
        .collect();
    eprintln!("garbage: {} garbage connections; observers (version, events, heartbeats, max rtt): {report:?}", nr_conns.load(Ordering::Relaxed));
    assert!(
        nr_conns.load(Ordering::Relaxed) >= 50,
        "garbage threads made too few connections"
    );
    for o in &observers {
        assert!(
            o.tracker.count >= 100,
            "observer v{} got only {} events",
            o.client.version,
            o.tracker.count
        );
        assert!(
            o.nr_beats >= 15,
            "observer v{}: only {} heartbeats answered",
            o.client.version,
            o.nr_beats
        );
        assert!(
            o.max_rtt < Duration::from_secs(1),
            "observer v{}: heartbeat took {:?}",
            o.client.version,
            o.max_rtt
        );
    }
    // The router is still up and serving new sessions.
    let mut router = router;
    assert!(router.is_running(), "router died under garbage");
    let mut c = router.client();
    c.open_all_events(v(18));
    c.heartbeat(WAIT);
}

/// A session that never reads is cut at its output bound; a reading session
/// keeps receiving; the router stays up.
#[test]
fn slow_consumer_is_cut_and_others_keep_receiving() {
    let mut router = RouterProcess::start(
        BIN,
        &[
            "--output-bound",
            "65536",
            "--sim-seed",
            "13",
            "--sim-agents",
            "200",
            "--sim-calls-per-sec",
            "50",
            "--sim-speed",
            "20",
        ],
    );
    // The non-reader: small receive buffer, opens, reads its OPEN_CONF, then stops reading.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&router.addr().into()).unwrap();
    let mut sleepy = Client::from_stream(sock.into());
    sleepy.open_all_events(Version::MAX);
    let mut reader = router.client();
    reader.open_all_events(Version::MAX);
    // Read until the stream has carried more than the bound plus all the
    // kernel could buffer for the sleeper (its send buffer grows up to
    // tcp_wmem's maximum; its receive buffer is 4 KiB), or 12 s.
    let wmem_max: usize = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2).and_then(|n| n.parse().ok()))
        .unwrap_or(4 << 20);
    let enough = (wmem_max + (2 << 20)).max(6 << 20);
    let mut nr_bytes = 0usize;
    let mut nr_events = 0usize;
    let until = Instant::now() + Duration::from_secs(12);
    while nr_bytes < enough && Instant::now() < until {
        if let Some((t, frame)) = reader.recv_frame(Duration::from_millis(100)) {
            assert!(is_unsolicited_event(t), "reader got {}", describe(&frame));
            decode_strict(&frame, Version::MAX);
            nr_bytes += frame.len();
            nr_events += 1;
        }
    }
    assert!(
        nr_bytes >= enough,
        "the simulator sent only {nr_bytes} bytes in 12 s: not a slow-consumer test"
    );
    // The sleeper was cut: what the kernel still holds, then (maybe) FAILURE_EVENT(25), then EOF.
    // (Cut mid-write, the stream may end inside a frame.)
    let (frames, tail) = sleepy.drain_until_cut(Duration::from_secs(5));
    for (i, (t, frame)) in frames.iter().enumerate() {
        let last = i + 1 == frames.len();
        assert!(
            is_unsolicited_event(*t)
                || (last && as_failure_event(frame) == Some(status::E_CTI_BAD_MESSAGE_FORMAT)),
            "cut session got {} at {i} of {}",
            describe(frame),
            frames.len()
        );
    }
    let cut_bytes: usize = frames.iter().map(|(_, f)| f.len()).sum();
    assert!(
        cut_bytes < nr_bytes,
        "the cut session got as much as the reader ({cut_bytes} bytes)"
    );
    // The reader is still served, events and heartbeats.
    let before = nr_events;
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if reader.recv_frame(Duration::from_millis(50)).is_some() {
            nr_events += 1;
        }
    }
    assert!(nr_events > before, "the reader got nothing after the cut");
    reader.heartbeat(WAIT);
    assert!(router.is_running());
    eprintln!(
        "slow consumer: reader got {nr_events} events / {nr_bytes} bytes; the cut session got {} frames / {cut_bytes} bytes, last {:?}, then {} bytes of a truncated frame",
        frames.len(),
        frames.last().map(|(_, f)| describe(f)),
        tail.len()
    );
}

/// A client that stops reading until its socket is full, then reads on,
/// loses nothing (docs/design.md §4.8, §4.13: under its output bound a
/// session gets every event once, in order). The router sends a session's
/// output at once and hands what the socket refuses, mid-frame, to the
/// session's writer task: the sleeper's stream must equal the reader's byte
/// for byte.
#[test]
fn a_client_that_pauses_until_its_socket_is_full_then_reads_on_gets_everything_in_order() {
    const N: usize = 2_000;
    let mut h = Harness::with_config(|c| c.runtime.socket_send_buffer = 4096);
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&h.addr().into()).unwrap();
    let mut sleeper = Client::from_stream(sock.into());
    sleeper.open_all_events(Version::MAX);
    let mut reader = h.connect();
    reader.open_all_events(Version::MAX);
    // Nobody reads while the events go out.
    for i in 0..N {
        let id = format!("A{i:05}");
        h.send(agent_state_ev(Some(&id), Some("4001"), None, 3, 0));
    }
    let got = h.sync(&mut [&mut sleeper, &mut reader]);
    let (slept, read) = (&got[0], &got[1]);
    let nr_bytes: usize = slept.iter().map(Vec::len).sum();
    assert!(
        nr_bytes > 64 * 1024,
        "only {nr_bytes} bytes: the sockets' buffers could hold them all, not a full-socket test"
    );
    assert_eq!(
        slept.len(),
        N,
        "the sleeper got {} of {N} events",
        slept.len()
    );
    assert!(
        slept == read,
        "the sleeper's stream differs from the reader's"
    );
    for (i, frame) in slept.iter().enumerate() {
        match decode_strict(frame, Version::MAX) {
            ctirouter::proto::Message::AgentStateEvent(e) => {
                let id = e.agent_id.as_ref().map(|s| s.to_string());
                assert_eq!(
                    id.as_deref(),
                    Some(format!("A{i:05}").as_str()),
                    "event {i}"
                );
            }
            other => panic!("event {i}: {other:?}"),
        }
    }
}
