//! `ctirouter sim-pg` as a CTI Server: every client at its own version gets
//! a gap-free run of the simulator's stream encoded for that version; the
//! session rules are the router's (bad version refused, heartbeat, close);
//! a client that stops reading is dropped without holding up the others;
//! SIGTERM ends it with exit 0.

use crate::BIN;
use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

use ctirouter::proto::constants::msg;
use ctirouter::proto::Version;
use testkit::*;

const SEED: u64 = 9;
const AGENTS: u32 = 30;
const RATE: f64 = 20.0;

fn v(n: u32) -> Version {
    Version::new(n).unwrap()
}

#[test]
fn every_client_gets_the_stream_at_its_own_version() {
    let pg = sim_pg(
        BIN,
        &["--seed", "9", "--agents", "30", "--calls-per-sec", "20"],
    );
    let versions = [v(13), v(16), v(19), v(20), v(24)];
    let mut clients: Vec<(Version, Client)> = versions
        .iter()
        .map(|&version| {
            let mut c = Client::connect(pg.addr());
            c.open_all_events(version);
            (version, c)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    for (version, client) in &mut clients {
        let frames = client.collect_for(Duration::from_millis(300));
        let mut reference = Reference::at_version(SEED, AGENTS, RATE, *version);
        let mut run = RunTracker::new();
        for f in frames.iter().filter(|f| frame_type(f) != msg::SYSTEM_EVENT) {
            decode_strict(f, *version);
            run.push(&mut reference, f)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
        assert!(run.count >= 20, "v{version}: only {} events", run.count);
    }
}

#[test]
fn session_rules_are_the_routers() {
    let pg = sim_pg(BIN, &[]);
    let mut bad = Client::connect(pg.addr());
    bad.send_at(
        open_req(5, 12, 0x10, 0xFFFF_FFFF, 0x3FFF, 0xFFFF_FFFF, "old", b""),
        v(19),
    );
    let (_, frame) = bad.expect_frame(Duration::from_secs(2));
    assert_eq!(
        as_failure_conf(&frame),
        Some((5, 1)),
        "E_CTI_INVALID_VERSION"
    );
    bad.expect_closed(Duration::from_secs(2));

    let mut c = Client::connect(pg.addr());
    c.open_all_events(v(22));
    c.heartbeat(Duration::from_secs(2));
    c.send_at(
        ctirouter::proto::msg::CloseReq {
            invoke_id: 77,
            status: 0,
        },
        v(22),
    );
    let frames = c.drain_until_closed(Duration::from_secs(3));
    let last = &frames.last().expect("CLOSE_CONF").1;
    assert_eq!(frame_type(last), msg::CLOSE_CONF);
}

#[test]
fn a_client_that_stops_reading_is_dropped_and_the_others_go_on() {
    // As fast as clients read, with a small output bound.
    let pg = sim_pg(
        BIN,
        &[
            "--speed",
            "0",
            "--calls-per-sec",
            "50",
            "--output-bound",
            "65536",
        ],
    );
    let mut stuck = Client::connect(pg.addr());
    stuck.open_all_events(v(24));
    let mut reader = Client::connect(pg.addr());
    reader.open_all_events(v(24));
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut nr_events = 0;
    while Instant::now() < deadline {
        match reader.next(Duration::from_millis(100)) {
            Recv::Frame(..) => nr_events += 1,
            Recv::Timeout => {}
            Recv::Closed(kind) => panic!("the reading client was dropped ({kind:?})"),
        }
    }
    assert!(nr_events > 2000, "only {nr_events} events at speed 0");
    // The stuck client finds its connection closed once it reads what the
    // kernel held (raw reads: the cut may fall inside a frame).
    let mut stream = stuck.stream();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let mut chunk = [0u8; 64 * 1024];
    loop {
        assert!(Instant::now() < end, "the stuck client was never dropped");
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
}

#[test]
fn sigterm_exits_zero() {
    let mut pg = sim_pg(BIN, &[]);
    let mut c = Client::connect(pg.addr());
    c.open_all_events(v(24));
    pg.signal(libc::SIGTERM);
    assert!(pg.wait_exit(Duration::from_secs(3)).success());
}
