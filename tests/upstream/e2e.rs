//! End to end over loopback: `sim-pg` → `serve --upstream` → raw clients.
//! What a router session receives is byte for byte what a client connected
//! straight to sim-pg at the same version receives, and a gap-free run of
//! the simulator's stream.

use crate::BIN;
use std::time::{Duration, Instant};

use ctirouter::proto::constants::msg;
use ctirouter::proto::Version;
use testkit::*;

const SEED: u64 = 5;
const AGENTS: u32 = 40;
const RATE: f64 = 25.0;
const WINDOW: Duration = Duration::from_secs(3);

fn v(n: u32) -> Version {
    Version::new(n).unwrap()
}

/// The event frames (no SYSTEM_EVENTs: those after OPEN_CONF differ by design).
fn events(frames: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    frames
        .into_iter()
        .filter(|f| frame_type(f) != msg::SYSTEM_EVENT)
        .collect()
}

/// Where `shorter` starts inside `longer` as a contiguous run (cut off by
/// the end of `longer` at most).
fn find_run(longer: &[Vec<u8>], shorter: &[Vec<u8>]) -> Option<usize> {
    let first = shorter.first()?;
    (0..longer.len())
        .filter(|&i| &longer[i] == first)
        .find(|&i| longer[i..].iter().zip(shorter).all(|(a, b)| a == b))
}

#[test]
fn router_sessions_get_the_bytes_a_direct_sim_pg_client_gets() {
    let pg = sim_pg(
        BIN,
        &[
            "--seed",
            &SEED.to_string(),
            "--agents",
            &AGENTS.to_string(),
            "--calls-per-sec",
            &RATE.to_string(),
        ],
    );
    let router = router(BIN, &upstream_toml(&[pg.addr()], 1000), &[]);
    let versions = [v(13), v(19), v(24)];
    let mut pairs = Vec::new();
    for &version in &versions {
        let (via_router, conf) =
            open_when_upstream_up(router.addr(), version, Duration::from_secs(10));
        assert_eq!(
            conf.peripheral_type, 17,
            "PeripheralType from the upstream's OPEN_CONF"
        );
        let mut direct = Client::connect(pg.addr());
        direct.open_all_events(version);
        pairs.push((version, via_router, direct));
    }
    let started = Instant::now();
    for (version, mut via_router, mut direct) in pairs {
        let left = WINDOW
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(300));
        let routed = events(via_router.collect_for(left));
        let straight = events(direct.collect_for(Duration::from_millis(300)));
        assert!(
            routed.len() >= 20,
            "v{version}: only {} events through the router",
            routed.len()
        );
        for f in &routed {
            decode_strict(f, version);
        }
        // The router joined the stream a moment before or after the direct
        // client: compare the overlap.
        let (longer, shorter, which) = match find_run(&straight, &routed) {
            Some(_) => (&straight, &routed, "router run inside direct"),
            None => (&routed, &straight, "direct run inside router"),
        };
        let at = find_run(longer, shorter).unwrap_or_else(|| {
            panic!(
                "v{version}: no overlap between {} routed and {} direct events",
                routed.len(),
                straight.len()
            )
        });
        let overlap = longer[at..].iter().zip(shorter.iter()).count();
        assert!(
            overlap >= 20,
            "v{version}: overlap of {overlap} events only ({which})"
        );
        // And the routed run is a gap-free run of the simulator's stream.
        let mut reference = Reference::at_version(SEED, AGENTS, RATE, version);
        let mut run = RunTracker::new();
        for f in &routed {
            run.push(&mut reference, f)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
        eprintln!(
            "v{version}: {} routed events, {overlap} byte-identical to the direct client",
            routed.len()
        );
    }
}

#[test]
fn upstream_status_reaches_downstream_open_conf_and_system_events() {
    let pg = sim_pg(BIN, &["--peripheral-id", "5123"]);
    let router = router(
        BIN,
        &upstream_toml(&[pg.addr()], 1000),
        &["--upstream-version", "19"],
    );
    let (mut client, conf) = open_when_upstream_up(router.addr(), v(24), Duration::from_secs(10));
    assert_eq!(conf.pg_status, 0);
    assert_eq!(conf.peripheral_online, 1);
    assert_eq!(conf.num_peripherals, Some(1));
    assert_eq!(conf.peripherals[0].peripheral_id, Some(5123));
    let (_, frame) = client.expect_frame(Duration::from_secs(2));
    let (id, event) = system_event_id(&frame, v(24)).expect("a SYSTEM_EVENT after OPEN_CONF");
    assert_eq!(
        (id, event.system_event_arg1),
        (3, 5123),
        "SYS_PERIPHERAL_ONLINE for the upstream's peripheral"
    );
}
