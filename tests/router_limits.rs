//! Black-box tests of the router's resource limits: a session's unsent
//! output is bounded whatever fills it (a client that sends and never reads
//! is cut), connections must OPEN within `open_timeout_secs` and are bounded
//! by `max_pending_opens` apart from `max_sessions` (which is decided at
//! OPEN time), and at the file-descriptor limit new connections are closed
//! at once instead of hanging in the accept queue. Every test runs the
//! router as a process on 127.0.0.1 port 0 and talks raw bytes to it.
//!
//! A binary of its own: two tests raise this process's RLIMIT_NOFILE
//! (`testkit::raise_fd_limit`), one runs the router at a descriptor limit.

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctirouter::proto::constants::{msg, service, status};
use ctirouter::proto::{CtiString, Message, Version};
use testkit::*;

/// The router binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_ctirouter");

const SIM: &[&str] = &[
    "--sim-seed",
    "21",
    "--sim-agents",
    "20",
    "--sim-calls-per-sec",
    "10",
    "--sim-speed",
    "1",
];

/// A whole OPEN_REQ frame at v24 for `services` (Client Events names agent
/// extension 1001; masks pass everything; no idle check).
fn open_req_frame(invoke: u32, services: u32, client_id: &str) -> Vec<u8> {
    let mut req = open_req(
        invoke, 24, services, ALL_CALLS, ALL_AGENTS, NO_IDLE, client_id, b"",
    );
    if services & service::CLIENT_EVENTS != 0 {
        req.agent_extension = Some(CtiString::from("1001"));
    }
    Message::from(req)
        .to_frame(Version::MAX)
        .expect("encodable OPEN_REQ")
}

/// A reading All Events client, pumped by its own thread while the test
/// does something else: counts events, sends a heartbeat every 200 ms and
/// keeps the slowest answer.
struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<WatcherReport>>,
}

#[derive(Debug, Default)]
struct WatcherReport {
    nr_events: u64,
    nr_beats: u64,
    max_rtt: Duration,
    /// The connection ended or a heartbeat went unanswered for 5 s.
    failed: Option<String>,
}

impl Watcher {
    fn start(router: &RouterProcess) -> Watcher {
        let mut c = router.client();
        c.open_all_events(Version::MAX);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut report = WatcherReport::default();
            let mut pending: Option<(u32, Instant)> = None;
            let mut last_beat = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                if pending.is_none() && last_beat.elapsed() >= Duration::from_millis(200) {
                    let invoke = c.invoke();
                    if c.try_send_raw(&raw_frame(msg::HEARTBEAT_REQ, &invoke.to_be_bytes()))
                        .is_err()
                    {
                        report.failed = Some("heartbeat send failed".into());
                        break;
                    }
                    pending = Some((invoke, Instant::now()));
                    last_beat = Instant::now();
                }
                match c.next(Duration::from_millis(50)) {
                    Recv::Frame(t, _) if is_unsolicited_event(t) => report.nr_events += 1,
                    Recv::Frame(t, frame) if t == msg::HEARTBEAT_CONF => {
                        if let Some((invoke, at)) = pending.take() {
                            if frame != raw_frame(msg::HEARTBEAT_CONF, &invoke.to_be_bytes()) {
                                report.failed = Some(format!("wrong reply {}", describe(&frame)));
                                break;
                            }
                            report.nr_beats += 1;
                            report.max_rtt = report.max_rtt.max(at.elapsed());
                        }
                    }
                    Recv::Frame(_, frame) => {
                        report.failed = Some(format!("unexpected {}", describe(&frame)));
                        break;
                    }
                    Recv::Timeout => {}
                    Recv::Closed(kind) => {
                        report.failed = Some(format!("connection closed ({kind:?})"));
                        break;
                    }
                }
                if let Some((_, at)) = pending {
                    if at.elapsed() > Duration::from_secs(5) {
                        report.failed = Some("heartbeat unanswered for 5 s".into());
                        break;
                    }
                }
            }
            report
        });
        Watcher {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> WatcherReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("finished once")
            .join()
            .expect("watcher thread")
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What a non-reading flooder saw.
#[derive(Debug)]
struct Flood {
    nr_bytes_sent: usize,
    cut_after: Duration,
}

/// Open a session of `services` and send HEARTBEAT_REQs without ever
/// reading (its receive buffer is 4 KiB), until the router closes the
/// socket; panics if it is still open after `limit`.
fn flood_without_reading(addr: SocketAddr, services: u32, limit: Duration) -> Flood {
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    sock.connect_timeout(&addr.into(), Duration::from_secs(5))
        .expect("connect");
    let mut stream: TcpStream = sock.into();
    stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .expect("write timeout");
    let start = Instant::now();
    let mut nr_bytes_sent = 0;
    let mut batch = open_req_frame(1, services, "flooder");
    let mut invoke = 100u32;
    loop {
        assert!(
            start.elapsed() < limit,
            "a non-reading flooder of services {services:#x} was not cut within {limit:?} \
             ({nr_bytes_sent} bytes sent)"
        );
        // 1,000 heartbeats per write (12 KB).
        while batch.len() < 12_000 {
            invoke = invoke.wrapping_add(1);
            batch.extend_from_slice(&raw_frame(msg::HEARTBEAT_REQ, &invoke.to_be_bytes()));
        }
        match stream.write(&batch) {
            Ok(n) => {
                nr_bytes_sent += n;
                batch.drain(..n);
            }
            // The router stopped reading while it flushes its last words (at
            // most its close grace period): keep trying.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // Reset or broken pipe: the router closed the connection.
            Err(_) => {
                return Flood {
                    nr_bytes_sent,
                    cut_after: start.elapsed(),
                }
            }
        }
    }
}

/// Defect 1: the bound was only checked when an event was queued, so a
/// session whose output was replies was never cut.
#[test]
fn non_reading_heartbeat_flooders_of_every_service_are_cut_and_memory_stays_bounded() {
    const BOUND: usize = 256 * 1024;
    let toml = format!(
        "[limits]\noutput_bound_bytes = {BOUND}\n\
         [runtime]\nsocket_send_buffer = 16384\n"
    );
    let router = RouterProcess::start_with_config_probed(BIN, &toml, SIM, PROBE_CLIENT);
    let watcher = Watcher::start(&router);
    std::thread::sleep(Duration::from_millis(300));
    let rss_before = router.status_kb("VmRSS");
    let mut floods = Vec::new();
    for (name, services) in [
        ("All Events", service::ALL_EVENTS),
        ("Peripheral Monitor", service::PERIPHERAL_MONITOR),
        ("Client Events", service::CLIENT_EVENTS),
        ("Client Monitor", service::CLIENT_MONITOR),
    ] {
        // Twice each, so a leak would show in the RSS.
        for _ in 0..2 {
            let flood = flood_without_reading(router.addr(), services, Duration::from_secs(30));
            // Bound + what the kernel buffers on both sides, with room: the
            // defect let a flooder send without end (12 MB and counting).
            assert!(
                flood.nr_bytes_sent < 8 << 20,
                "{name}: {} bytes sent before the cut",
                flood.nr_bytes_sent
            );
            floods.push((name, flood));
        }
    }
    let slowest_cut = floods.iter().map(|(_, f)| f.cut_after).max();
    let rss_after = router.status_kb("VmRSS");
    let hwm = router.status_kb("VmHWM");
    // The normal client kept receiving through all of it.
    std::thread::sleep(Duration::from_secs(1));
    let report = watcher.finish();
    eprintln!(
        "flooders: {floods:?} (slowest cut after {slowest_cut:?}); router RSS {rss_before} kB before, {rss_after} kB after, \
         peak {hwm} kB; watcher {report:?}"
    );
    assert!(report.failed.is_none(), "watcher: {report:?}");
    assert!(report.nr_beats >= 3, "watcher: {report:?}");
    assert!(report.nr_events > 0, "watcher got no events: {report:?}");
    assert!(
        report.max_rtt < Duration::from_secs(2),
        "watcher: {report:?}"
    );
    // Eight flooders at a 256 KiB bound: growth stays far below what the
    // defect cost (+30 MB for one flooder at 8 MiB).
    assert!(
        rss_after < rss_before + 24 * 1024,
        "router RSS grew from {rss_before} kB to {rss_after} kB"
    );
    let mut router = router;
    assert!(router.is_running());
}

/// Connect and send `bytes` (half a header, say); the connection is kept.
fn half_open(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.write_all(bytes).expect("send the half header");
    s
}

/// How `stream` ended within `timeout`: `None` if it is still open (nothing
/// may arrive on a connection that never opened).
fn wait_closed(stream: &TcpStream, timeout: Duration) -> Option<Instant> {
    use std::io::Read;
    let deadline = Instant::now() + timeout;
    let mut stream = stream;
    let mut buf = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return Some(Instant::now()),
            Ok(n) => panic!(
                "a connection that never opened got {n} bytes: {}",
                hex::encode(&buf[..n])
            ),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Some(Instant::now()),
        }
    }
}

/// Defect 2: connections that never sent OPEN_REQ counted against
/// max_sessions and stayed for ever; a real client was locked out.
#[test]
fn a_thousand_half_open_connections_do_not_keep_a_real_client_out() {
    raise_fd_limit(4096);
    let toml = "[limits]\nmax_sessions = 100\nmax_pending_opens = 2000\nopen_timeout_secs = 60\n";
    let router = RouterProcess::start_with_config_probed(BIN, toml, SIM, PROBE_CLIENT);
    let start = Instant::now();
    let lurkers: Vec<TcpStream> = (0..1000)
        .map(|_| half_open(router.addr(), &[0, 0, 0, 40]))
        .collect();
    eprintln!("1,000 half-open connections in {:?}", start.elapsed());
    // A real client opens and gets events promptly (the simulator runs 10
    // calls a second).
    let opened = Instant::now();
    let mut c = router.client();
    c.open_all_events(Version::MAX);
    let open_took = opened.elapsed();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut nr_events = 0;
    while nr_events < 5 {
        assert!(
            Instant::now() < deadline,
            "only {nr_events} events in 10 s beside 1,000 half-open connections"
        );
        if let Some((t, frame)) = c.recv_frame(Duration::from_millis(100)) {
            assert!(is_unsolicited_event(t), "got {}", describe(&frame));
            nr_events += 1;
        }
    }
    let rtt = c.heartbeat(WAIT);
    eprintln!(
        "beside 1,000 half-open connections: OPEN took {open_took:?}, 5 events after {:?}, heartbeat {rtt:?}",
        opened.elapsed()
    );
    assert!(open_took < WAIT);
    // The half-open connections were held, not dropped.
    for s in lurkers.iter().step_by(100) {
        assert!(
            wait_closed(s, Duration::from_millis(10)).is_none(),
            "a half-open connection was closed long before open_timeout_secs"
        );
    }
}

#[test]
fn connections_that_never_open_are_closed_after_open_timeout_secs() {
    let toml = "[limits]\nopen_timeout_secs = 1\n";
    let router = RouterProcess::start_with_config_probed(BIN, toml, SIM, PROBE_CLIENT);
    let mut session = router.client();
    session.open_all_events_masked(Version::MAX, 0, 0);
    let start = Instant::now();
    let mut lurkers: Vec<TcpStream> = (0..20)
        .map(|_| half_open(router.addr(), &[0, 0, 0, 40]))
        .collect();
    // Some that send nothing at all.
    lurkers.extend((0..5).map(|_| half_open(router.addr(), &[])));
    for s in &lurkers {
        let closed = wait_closed(s, Duration::from_secs(10))
            .expect("a connection that never opened was still open after 10 s");
        let after = closed.duration_since(start);
        assert!(
            after >= Duration::from_millis(900),
            "closed after only {after:?} (open_timeout_secs = 1)"
        );
    }
    let all_closed = start.elapsed();
    eprintln!("25 never-opened connections closed within {all_closed:?} (open_timeout_secs = 1)");
    // The open session is no concern of the open timeout.
    assert!(start.elapsed() > Duration::from_secs(1));
    session.heartbeat(WAIT);
}

#[test]
fn over_max_pending_opens_a_new_connection_is_closed_at_once() {
    let toml = "[limits]\nmax_pending_opens = 10\nopen_timeout_secs = 60\n";
    let router = RouterProcess::start_with_config(BIN, toml, SIM);
    let lurkers: Vec<TcpStream> = (0..10).map(|_| half_open(router.addr(), &[0, 0])).collect();
    // Let the router accept them all (shards accept concurrently).
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let extra = half_open(router.addr(), &[0, 0]);
        assert!(
            wait_closed(&extra, Duration::from_secs(5)).is_some(),
            "a connection over max_pending_opens was not closed"
        );
    }
    // Once they are gone, clients get in again.
    drop(lurkers);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = router.client();
        c.send_raw(&open_req_frame(1, service::ALL_EVENTS, "late"));
        match c.next(WAIT) {
            Recv::Frame(t, _) if t == msg::OPEN_CONF => break,
            other => assert!(
                Instant::now() < deadline,
                "no OPEN_CONF 5 s after the half-open connections left: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Open a quiet session (masks 0, no idle check) and return it.
fn quiet(router: &RouterProcess) -> Client {
    let mut c = router.client();
    c.open(
        &OpenSpec::new(Version::MAX, service::ALL_EVENTS)
            .masks(0, 0)
            .client("quiet", b""),
    );
    c
}

#[test]
fn over_max_sessions_open_req_gets_failure_conf_17_then_close_and_one_warning() {
    let toml = "[limits]\nmax_sessions = 2\n";
    let router = RouterProcess::start_with(
        BIN,
        StartOptions {
            config: Some(toml),
            capture_log: true,
            ..Default::default()
        },
        SIM,
    );
    let first = quiet(&router);
    let _second = quiet(&router);
    // Connections not yet open do not count: this one is held, not dropped.
    let lurker = half_open(router.addr(), &[0, 0, 0, 40]);
    for invoke in [501u32, 502, 503] {
        let mut c = router.client();
        c.send_raw(&open_req_frame(invoke, service::ALL_EVENTS, "third"));
        assert_eq!(
            c.expect_failure_conf(WAIT),
            (invoke, status::E_CTI_UNSPECIFIED_FAILURE)
        );
        c.expect_closed(WAIT);
    }
    assert!(wait_closed(&lurker, Duration::from_millis(200)).is_none());
    // A session closes: there is room again.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = router.client();
        c.send_raw(&open_req_frame(9, service::ALL_EVENTS, "later"));
        match c.next(WAIT) {
            Recv::Frame(t, _) if t == msg::OPEN_CONF => break,
            other => assert!(
                Instant::now() < deadline,
                "no OPEN_CONF 5 s after a session closed: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = router.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("max_sessions"))
        .collect();
    assert_eq!(warnings.len(), 1, "one WARN per episode: {warnings:#?}");
    assert!(
        log.lines()
            .any(|l| l.contains("INFO") && l.contains("below max_sessions again")),
        "no INFO when below max_sessions again:\n{log}"
    );
}

/// Defect 3: at the descriptor limit clients hung in the accept queue (no
/// service, no refusal) and the router logged a WARN every 10 ms retry.
/// Later, with two shards, one shard's spare descriptor could be taken by the
/// other shard's accept, leaving its queued clients hanging (1 run in 3):
/// the router now bounds connections by what the limit leaves room for.
#[test]
fn at_the_descriptor_limit_new_connections_are_closed_at_once_and_sessions_go_on() {
    raise_fd_limit(4096);
    const NR_EXTRA: usize = 150;
    const NOFILE: u64 = 64;
    let router = RouterProcess::start_with(
        BIN,
        StartOptions {
            nofile: Some(NOFILE),
            capture_log: true,
            ..Default::default()
        },
        SIM,
    );
    let mut sessions: Vec<Client> = (0..3).map(|_| quiet(&router)).collect();
    // Far more clients than the router has descriptors left, each sending
    // its OPEN_REQ at once. The kernel completes each connect; the router
    // must then serve it (OPEN_CONF) or close it — never leave it waiting.
    let quiet_open = Message::from(open_req(
        1,
        24,
        service::ALL_EVENTS,
        0,
        0,
        NO_IDLE,
        "extra",
        b"",
    ))
    .to_frame(Version::MAX)
    .expect("encodable OPEN_REQ");
    let mut extras: Vec<Client> = (0..NR_EXTRA)
        .map(|_| Client::from_stream(half_open(router.addr(), &quiet_open)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    let (mut nr_served, mut nr_closed) = (0, 0);
    for c in extras.iter_mut() {
        match c.next(deadline.saturating_duration_since(Instant::now())) {
            Recv::Frame(t, _) if t == msg::OPEN_CONF => nr_served += 1,
            Recv::Frame(_, frame) => panic!("an extra client got {}", describe(&frame)),
            Recv::Closed(_) => nr_closed += 1,
            Recv::Timeout => panic!(
                "an extra client got neither OPEN_CONF nor a close within 15 s \
                 ({nr_served} served, {nr_closed} closed so far); log:\n{}",
                router.log()
            ),
        }
    }
    // Open sessions never noticed.
    for c in sessions.iter_mut() {
        c.heartbeat(WAIT);
    }
    // Descriptors free up as the extras leave: new clients get in again.
    drop(extras);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = router.client();
        c.send_raw(&quiet_open);
        match c.next(WAIT) {
            Recv::Frame(t, _) if t == msg::OPEN_CONF => break,
            other => assert!(
                Instant::now() < deadline,
                "no OPEN_CONF 5 s after the extra clients left: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = router.log();
    let fd_warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN"))
        .filter(|l| l.contains("file descriptors") || l.contains("accept"))
        .collect();
    eprintln!(
        "descriptor limit {NOFILE}: of {NR_EXTRA} extra clients {nr_served} served, {nr_closed} \
         closed at once; warnings: {fd_warnings:#?}"
    );
    assert!(
        nr_closed >= NR_EXTRA - NOFILE as usize,
        "only {nr_closed} of {NR_EXTRA} extra clients were closed at once; log:\n{log}"
    );
    // One per shard per episode (two shards), not one per retry.
    assert!(
        !fd_warnings.is_empty() && fd_warnings.len() <= 4,
        "expected a WARN or two about the descriptor limit, got {}:\n{}",
        fd_warnings.len(),
        fd_warnings.join("\n")
    );
    assert!(
        log.contains("open-file limit"),
        "the router did not log its open-file limit:\n{log}"
    );
    assert!(
        log.contains("client connections under the open-file limit"),
        "the router did not log how many connections fit:\n{log}"
    );
}
