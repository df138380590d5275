//! Black-box tests of the router's resource limits: a session's unsent
//! output is bounded whatever fills it (a client that sends and never reads
//! is cut), connections must OPEN within `open_timeout_secs` and are bounded
//! by `max_pending_opens` apart from `max_sessions` (which is decided at
//! OPEN time), and at the file-descriptor limit new connections are closed
//! at once instead of hanging in the accept queue. Every test runs the
//! router as a process on 127.0.0.1 port 0 and talks raw bytes to it.

mod support;

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctirouter::proto::constants::{msg, service, status};
use ctirouter::proto::{CtiString, Message, Version};
use support::*;

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

/// Sets the flag when dropped (stops helper threads if an assertion fails).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A whole OPEN_REQ frame at v24 for `services` (Client Events names agent
/// extension 1001; masks pass everything; no idle check).
fn open_req_frame(invoke: u32, services: u32, client_id: &str) -> Vec<u8> {
    let mut req = open_req(
        invoke,
        24,
        services,
        ALL_CALLS,
        ALL_AGENT_STATES,
        NO_IDLE,
        client_id,
        b"",
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
    let router = RouterProcess::start_with_config_probed(&toml, SIM, PROBE_CLIENT);
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
    let rss_after = router.status_kb("VmRSS");
    let hwm = router.status_kb("VmHWM");
    // The normal client kept receiving through all of it.
    std::thread::sleep(Duration::from_secs(1));
    let report = watcher.finish();
    eprintln!(
        "flooders: {floods:?}; router RSS {rss_before} kB before, {rss_after} kB after, \
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
