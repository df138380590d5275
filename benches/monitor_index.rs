//! The shard's monitor index (`src/shard/monitors.rs`): the cost to find an
//! event's matching monitors, and to start and stop a monitor, with 1k, 10k
//! and 100k device monitors (plus call monitors and Client Events
//! registrations in proportion: one call monitor per 10 device monitors, one
//! agent registration per 20).
//!
//! * `match/{hit,miss}/N` — `MonitorIndex::matching` (the matched monitors
//!   themselves, in one pass over the slab, reading each one's masks: what
//!   dispatch does; the `*_ids_only` variants run `MonitorIndex::matches`,
//!   the ids alone) for targets
//!   shaped like a real CALL_DELIVERED_EVENT's: 6 device keys, 2 call keys,
//!   3 agent keys. Hit: one device key and one call key are watched (2
//!   monitors match); miss: nothing is watched. A pool of 4096 different
//!   events is cycled so the hash tables are not all in L1.
//! * `start/N` — `count_up` + `insert` of a device monitor on a new device.
//! * `stop/N` — `remove` of a device monitor (its key goes back to 0).
//! * `churn/N` — start one monitor, match one (hit) event, stop the oldest.
//!
//! Targets (2-core dev VM): ≤ 100 ns per event to find its matches at 100k
//! monitors, ≤ 1 µs per start or stop.
//!
//! `cargo bench --bench monitor_index -- --warm-up-time 1 --measurement-time 3`

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use smallvec::SmallVec;

use ctirouter::ids::{MonitorId, SessionId};
use ctirouter::keys::InterestKey;
use ctirouter::keys::{AgentField, AgentKey, CallKey, DeviceKey};
use ctirouter::shard::monitors::{MatchScratch, Monitor, MonitorIndex, Watch};
use ctirouter::sim::rng::Rng;
use ctirouter::targets::Targets;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const POOL: usize = 4096;

/// Uniform in `0..n` (`0 < n < 2^32`) from the simulator's SplitMix64.
fn below(rng: &mut Rng, n: usize) -> usize {
    rng.below(n as u32) as usize
}

fn device(i: usize) -> DeviceKey {
    DeviceKey::device(format!("{}", 3_000_000 + i).as_bytes())
}

fn call_key(i: usize) -> CallKey {
    CallKey::new(0x0100_0000 + i as u32, 1, format!("T{i}").as_bytes())
}

fn agent(i: usize) -> AgentKey {
    AgentKey::new(AgentField::Id, format!("{}", 1_000_000 + i).as_bytes())
}

fn monitor(id: u32, watch: Watch) -> Monitor {
    Monitor {
        id: MonitorId(id),
        session: SessionId(id / 8),
        watch,
        call_mask: u32::MAX,
        agent_mask: 0x3FFF,
        client_events: false,
        calls: Default::default(),
    }
}

/// Add a monitor the way a shard does: count its keys up, then insert.
fn start(index: &mut MonitorIndex, m: Monitor) {
    for k in m.watch.keys() {
        index.count_up(k);
    }
    index.insert(m);
}

/// An index with `n` device monitors (devices 0..n), n/10 call monitors
/// (calls 0..n/10) and n/20 Client Events registrations (agents 0..n/20).
fn build(n: usize) -> (MonitorIndex, u32) {
    let mut index = MonitorIndex::default();
    let mut id = 1u32;
    for i in 0..n {
        start(&mut index, monitor(id, Watch::Device(device(i))));
        id += 1;
    }
    for i in 0..n / 10 {
        start(&mut index, monitor(id, Watch::Call(call_key(i))));
        id += 1;
    }
    for i in 0..n / 20 {
        let mut m = monitor(
            id,
            Watch::Agent {
                agent: agent(i),
                instrument: Some(device(i)),
            },
        );
        m.client_events = true;
        start(&mut index, m);
        id += 1;
    }
    (index, id)
}

/// Targets like a CALL_DELIVERED_EVENT's: 6 devices, 2 calls, 3 agents.
/// `hit`: one device and one call are watched in an index of size `n`.
fn targets(rng: &mut Rng, n: usize, hit: bool) -> Targets {
    let mut t = Targets::default();
    let far = 10_000_000; // keys no index here watches
    for k in 0..6 {
        let i = if hit && k == 1 {
            below(rng, n)
        } else {
            far + below(rng, 1 << 30)
        };
        t.devices.push(device(i));
    }
    for k in 0..2 {
        let i = if hit && k == 0 {
            below(rng, (n / 10).max(1))
        } else {
            far + below(rng, 1 << 30)
        };
        t.calls.push(call_key(i));
    }
    for _ in 0..3 {
        t.agents.push(agent(far + below(rng, 1 << 30)));
    }
    t
}

/// Find the matching monitors and read each one's masks (as dispatch does).
#[inline]
fn find(index: &MonitorIndex, t: &Targets, scratch: &mut MatchScratch) -> u32 {
    let mut masks = 0;
    for m in index.matching(t, scratch) {
        masks ^= m.call_mask;
    }
    masks
}

fn bench_match(c: &mut Criterion) {
    let mut group = c.benchmark_group("match");
    group.throughput(Throughput::Elements(1));
    for &n in &SIZES {
        let (index, _) = build(n);
        for hit in [true, false] {
            let mut rng = Rng::new(n as u64 * 7 + hit as u64);
            let pool: Vec<Targets> = (0..POOL).map(|_| targets(&mut rng, n, hit)).collect();
            let mut out = SmallVec::new();
            let mut scratch = MatchScratch::new();
            // Sanity: hits find their two monitors, misses none.
            index.matches(&pool[0], &mut out);
            assert_eq!(out.len(), if hit { 2 } else { 0 }, "n {n} hit {hit}");
            let found = index.matching(&pool[0], &mut scratch).count();
            assert_eq!(found, out.len(), "n {n} hit {hit}");
            let name = if hit { "hit" } else { "miss" };
            let mut i = 0;
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    i = (i + 1) & (POOL - 1);
                    black_box(find(&index, &pool[i], &mut scratch))
                })
            });
            // `matches` alone (the ids, without looking the monitors up).
            let name = if hit { "hit_ids_only" } else { "miss_ids_only" };
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    i = (i + 1) & (POOL - 1);
                    index.matches(&pool[i], &mut out);
                    black_box(out.len())
                })
            });
        }
    }
    group.finish();
}

fn bench_start_stop(c: &mut Criterion) {
    let mut group = c.benchmark_group("start_stop");
    group.throughput(Throughput::Elements(1));
    for &n in &SIZES {
        let (mut index, first_free) = build(n);
        // start: count_up + insert on a new device; undone untimed.
        let mut next = first_free;
        group.bench_with_input(BenchmarkId::new("start", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let ids: Vec<u32> = (0..iters as u32).map(|k| next + k).collect();
                let ms: Vec<Monitor> = ids
                    .iter()
                    .map(|&id| monitor(id, Watch::Device(device(20_000_000 + id as usize))))
                    .collect();
                let t = Instant::now();
                for m in ms {
                    start(&mut index, black_box(m));
                }
                let elapsed = t.elapsed();
                for &id in &ids {
                    index.remove(MonitorId(id));
                }
                next += iters as u32;
                elapsed
            })
        });
        // stop: remove (keys counted back down); made untimed.
        group.bench_with_input(BenchmarkId::new("stop", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let ids: Vec<u32> = (0..iters as u32).map(|k| next + k).collect();
                for &id in &ids {
                    start(
                        &mut index,
                        monitor(id, Watch::Device(device(20_000_000 + id as usize))),
                    );
                }
                let t = Instant::now();
                for &id in &ids {
                    black_box(index.remove(black_box(MonitorId(id))));
                }
                let elapsed = t.elapsed();
                next += iters as u32;
                elapsed
            })
        });
        assert_eq!(
            index.len(),
            n + n / 10 + n / 20,
            "start/stop left the index as it was"
        );
    }
    group.finish();
}

fn bench_churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("churn");
    group.throughput(Throughput::Elements(1));
    for &n in &SIZES {
        let (mut index, first_free) = build(n);
        let mut rng = Rng::new(n as u64 * 13);
        let pool: Vec<Targets> = (0..POOL).map(|_| targets(&mut rng, n, true)).collect();
        let mut live: VecDeque<u32> = VecDeque::new();
        let mut next = first_free;
        let mut scratch = MatchScratch::new();
        let mut i = 0;
        // One iteration = start one monitor + match one event + stop the
        // oldest churned monitor (64 stay live).
        group.bench_with_input(BenchmarkId::new("start+match+stop", n), &n, |b, _| {
            b.iter(|| {
                start(
                    &mut index,
                    monitor(next, Watch::Device(device(20_000_000 + next as usize))),
                );
                live.push_back(next);
                next += 1;
                i = (i + 1) & (POOL - 1);
                let r = find(&index, &pool[i], &mut scratch);
                if live.len() > 64 {
                    let old = live.pop_front().unwrap();
                    black_box(index.remove(MonitorId(old)));
                }
                black_box(r)
            })
        });
        for id in live.drain(..) {
            index.remove(MonitorId(id));
        }
        // The index keeps its interest counts right through the churn.
        assert!(!index.count_up(InterestKey::Device(device(0))));
        index.count_down(InterestKey::Device(device(0)));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_match, bench_start_stop, bench_churn
}
criterion_main!(benches);
