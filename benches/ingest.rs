//! Ingest's work per event, apart from the socket and the rings, on a stream
//! from the built-in simulator (500 agents, 40 calls/s: call, agent and
//! system events at v24, the version ingest opens upstream with):
//!
//! * `routing_keys` — read the frame's routing keys;
//! * `tracker` — keys, then the call-party tracker computing the event's
//!   full targets;
//! * `build_event` — all of it as ingest does it: keys, targets, the shards
//!   that need it, the shared `Event` (the frame copied once) — with All
//!   Events sessions only (no keyed interest: devices and agents of the
//!   targets are not computed);
//! * `build_event_keyed` — the same with a monitor somewhere (full targets).
//!
//! Like the codec benches, every benchmark runs twice: `ingest` measures wall
//! time, `ingest_cpu` the bench thread's CPU time (on a busy machine the CPU
//! time is the cost). Results: `perf/results/ingest-*.md`.
//!
//! ```text
//! cargo bench --bench ingest -- --warm-up-time 1 --measurement-time 3
//! ```

use std::time::{Duration, Instant};

use criterion::measurement::Measurement;
use criterion::{black_box, Criterion, Throughput};

use ctirouter::ids::Services;
use ctirouter::ingest::fanout::build_event;
use ctirouter::ingest::interest::Interest;
use ctirouter::ingest::tracker::CallTracker;
use ctirouter::keys::DeviceKey;
use ctirouter::keys::InterestKey;
use ctirouter::proto::{routing, Version};
use ctirouter::sim::{SimConfig, Simulator};

#[path = "support/cpu_time.rs"]
mod cpu_time;
use cpu_time::ThreadCpuTime;

/// Frames of the simulator's stream, encoded at v24.
fn sim_frames(n: usize) -> Vec<Vec<u8>> {
    let mut sim = Simulator::new(SimConfig {
        seed: 7,
        agents: 500,
        calls_per_sec: 40.0,
        peripheral_id: 5000,
        ..SimConfig::default()
    });
    (0..n)
        .map(|_| {
            let (_, m) = sim.next_event();
            m.to_frame(Version::MAX).expect("simulated events encode")
        })
        .collect()
}

/// Cycles through `frames`, one per call.
struct Stream<'a> {
    frames: &'a [Vec<u8>],
    at: usize,
}

impl<'a> Stream<'a> {
    #[inline]
    fn next(&mut self) -> &'a [u8] {
        let f = &self.frames[self.at];
        self.at = (self.at + 1) % self.frames.len();
        f
    }
}

const CALL_MAX_AGE: Duration = Duration::from_secs(3600);

fn ingest<M: Measurement>(c: &mut Criterion<M>, group_name: &str, frames: &[Vec<u8>]) {
    let v = Version::MAX;
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(1));

    let mut s = Stream { frames, at: 0 };
    group.bench_function("routing_keys", |b| {
        b.iter(|| routing::extract(black_box(s.next()), v))
    });

    let mut s = Stream { frames, at: 0 };
    let mut tracker = CallTracker::new(CALL_MAX_AGE);
    let now = Instant::now();
    group.bench_function("tracker", |b| {
        b.iter(|| {
            let frame = s.next();
            let keys = routing::extract(frame, v).expect("sim frames parse");
            tracker.observe(frame, &keys, v, now, true)
        })
    });

    for (name, keyed) in [("build_event", false), ("build_event_keyed", true)] {
        let mut s = Stream { frames, at: 0 };
        let mut tracker = CallTracker::new(CALL_MAX_AGE);
        let mut interest = Interest::new(2);
        interest.count_session(0, Services::ALL_EVENTS, 1);
        if keyed {
            // A device monitor on shard 1 (a device the stream never names).
            interest.up(1, InterestKey::Device(DeviceKey::device(b"9999")));
        }
        let mut seq = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                seq += 1;
                build_event(&mut tracker, &mut interest, seq, v, s.next(), now)
                    .expect("sim frames parse")
            })
        });
    }
    group.finish();
}

fn main() {
    let frames = sim_frames(8192);
    let mut wall = Criterion::default().configure_from_args();
    ingest(&mut wall, "ingest", &frames);
    let mut cpu = Criterion::default()
        .with_measurement(ThreadCpuTime)
        .configure_from_args();
    ingest(&mut cpu, "ingest_cpu", &frames);
    Criterion::default().configure_from_args().final_summary();
}
