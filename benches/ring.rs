//! Micro-benchmarks of the ingest → shard ring (issue 6): what one item costs
//! to cross from the ingest core to a shard core, at the batch sizes a tuning
//! file may choose.
//!
//! * `ring/base` — the harness alone: stage items in a local `Vec`, hand each
//!   batch to the same consuming closure, no queue. The ring's cost is what
//!   the other rows add to this.
//! * `ring/spsc-2-threads` — `ring::spsc` with the producer pinned to core 0
//!   and the consumer to core 1 (a pin that fails panics), `push_batch` /
//!   `pop_batch` at batch 1, 16, 64.
//! * `ring/spsc-1-thread` — `try_push` + `pop` of one item on one thread: the
//!   ring's own instructions with no cache line crossing cores.
//! * `ring/glommio` — two glommio executors (cores 0 and 1) joined by
//!   `ring::ring`: the producer stages and `flush().await`es each batch, the
//!   consumer waits with `ready().await` and drains up to 256 items (the
//!   shard's `MAX_BATCH`), with spin-before-park 0 (parks whenever it catches
//!   up, so doorbells ring) and 50 µs (the default).
//! * after criterion: hand-off latency of one item through `ring::ring` when
//!   the consumer is parked (doorbell) and when it spins, as hdrhistogram
//!   percentiles — the measurement behind `spin_before_park_us`.
//!
//! Items are the size of the real ring's `ToShard` (a sequence number padded
//! to it), so each slot copies what production copies. Results:
//! `perf/results/ring-*.md`.
//!
//! ```text
//! cargo bench --bench ring -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use crossbeam::channel::{self, TryRecvError};
use glommio::{LocalExecutorBuilder, Placement};

use ctirouter::link::ToShard;
use ctirouter::ring::{self, spsc};

/// Words of one item: `ToShard`'s size, rounded up to whole `u64`s.
const ITEM_WORDS: usize = std::mem::size_of::<ToShard>().div_ceil(8);
type Item = [u64; ITEM_WORDS];

/// Items moved per criterion iteration (the throughput unit is one item).
const ITEMS_PER_ITER: u64 = 1024;
/// Slots per ring: `RuntimeConfig::ring_capacity`'s default.
const CAPACITY: usize = 4096;
/// Producer batch sizes compared (the tuning files choose among these).
const BATCHES: [usize; 3] = [1, 16, 64];
/// The shard drains at most this many items per wake-up (`dispatch::MAX_BATCH`).
const SHARD_DRAIN_MAX: usize = 256;
/// Ingest side and shard side of every two-core row.
const PRODUCER_CORE: usize = 0;
const CONSUMER_CORE: usize = 1;
/// io_uring memory per executor: the router's default, within RLIMIT_MEMLOCK.
const IO_MEMORY: usize = 512 * 1024;
/// A glommio run moves at most a few million items (well under a second);
/// one still running after this has lost a wake-up.
const RUN_DEADLINE: Duration = Duration::from_secs(30);

fn item(seq: u64) -> Item {
    let mut item = [0; ITEM_WORDS];
    item[0] = seq;
    item
}

/// What every consumer does with an item: keep it observable, sum the seqs
/// (checked at the end, so a lost or repeated item fails the bench).
#[inline(always)]
fn consume(sum: &mut u64, item: Item) {
    *sum += black_box(item)[0];
}

fn expected_sum(n: u64) -> u64 {
    n * (n - 1) / 2
}

/// Pin the calling thread, or panic: an unpinned run measures the scheduler.
fn pin(core: usize) {
    let ids = core_affinity::get_core_ids().expect("ring bench: cannot list the cores");
    let id = ids.into_iter().find(|id| id.id == core).unwrap_or_else(|| {
        panic!("ring bench: core {core} is not available; it needs cores 0 and 1")
    });
    assert!(
        core_affinity::set_for_current(id),
        "ring bench: pinning to core {core} failed"
    );
}

/// The harness with no queue: stage `batch` items, then consume them.
fn base_round(staged: &mut Vec<Item>, batch: usize, n: u64) -> u64 {
    let mut sum = 0;
    for seq in 0..n {
        staged.push(item(seq));
        if staged.len() == batch {
            staged.drain(..).for_each(|it| consume(&mut sum, it));
        }
    }
    staged.drain(..).for_each(|it| consume(&mut sum, it));
    sum
}

fn produce(tx: &mut spsc::Producer<Item>, batch: usize, n: u64) {
    let mut staged = Vec::with_capacity(batch);
    let mut seq = 0;
    while seq < n {
        while staged.len() < batch && seq < n {
            staged.push(item(seq));
            seq += 1;
        }
        while !staged.is_empty() {
            if tx.push_batch(&mut staged) == 0 {
                std::hint::spin_loop();
            }
        }
    }
}

fn drain_all(rx: &mut spsc::Consumer<Item>, batch: usize, n: u64) -> u64 {
    let (mut got, mut sum) = (0, 0);
    while got < n {
        match rx.pop_batch(batch, |it| consume(&mut sum, it)) {
            0 => std::hint::spin_loop(),
            k => got += k as u64,
        }
    }
    sum
}

/// Move `n` items from core 0 to core 1; time from the producer's start to
/// the consumer's last item. Thread start-up and pinning are not timed.
fn two_threads(batch: usize, n: u64) -> Duration {
    let (mut tx, mut rx) = spsc::channel::<Item>(CAPACITY);
    let start_line = Arc::new(Barrier::new(2));
    let producer_start = start_line.clone();
    let producer = std::thread::spawn(move || {
        pin(PRODUCER_CORE);
        producer_start.wait();
        let start = Instant::now();
        produce(&mut tx, batch, n);
        start
    });
    let consumer = std::thread::spawn(move || {
        pin(CONSUMER_CORE);
        start_line.wait();
        let sum = drain_all(&mut rx, batch, n);
        (Instant::now(), sum)
    });
    let start = producer.join().expect("producer thread");
    let (end, sum) = consumer.join().expect("consumer thread");
    assert_eq!(sum, expected_sum(n), "items lost or repeated");
    end - start
}

fn spsc_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring");
    group.throughput(Throughput::Elements(ITEMS_PER_ITER));
    for batch in BATCHES {
        let mut staged = Vec::with_capacity(batch);
        group.bench_with_input(BenchmarkId::new("base", batch), &batch, |b, &batch| {
            b.iter(|| base_round(&mut staged, batch, ITEMS_PER_ITER))
        });
    }
    for batch in BATCHES {
        group.bench_with_input(
            BenchmarkId::new("spsc-2-threads", batch),
            &batch,
            |b, &batch| b.iter_custom(|iters| two_threads(batch, iters * ITEMS_PER_ITER)),
        );
    }
    let (mut tx, mut rx) = spsc::channel::<Item>(CAPACITY);
    group.bench_function("spsc-1-thread/push-pop", |b| {
        b.iter(|| {
            let mut sum = 0;
            for seq in 0..ITEMS_PER_ITER {
                assert!(tx.try_push(item(seq)).is_ok(), "ring full");
                consume(&mut sum, rx.pop().expect("just pushed"));
            }
            sum
        })
    });
    group.finish();
}

/// Commands to a glommio side: move `n` items (`Some(n)`), or stop (`None`).
type Command = Option<u64>;

/// The next command, polled without blocking the executor's thread.
async fn next_command(commands: &channel::Receiver<Command>) -> Option<u64> {
    loop {
        match commands.try_recv() {
            Ok(command) => return command,
            Err(TryRecvError::Empty) => glommio::timer::sleep(Duration::from_micros(100)).await,
            Err(TryRecvError::Disconnected) => return None,
        }
    }
}

/// What the consumer reports after each run.
struct RunEnd {
    end: Instant,
    sum: u64,
    nr_doorbells: u64,
    nr_batches: u64,
}

/// A producer executor on core 0 and a consumer executor on core 1, kept
/// running across criterion's samples (starting executors is not timed).
struct GlommioPair {
    to_producer: channel::Sender<Command>,
    to_consumer: channel::Sender<Command>,
    started: channel::Receiver<Instant>,
    ended: channel::Receiver<RunEnd>,
    executors: Vec<glommio::ExecutorJoinHandle<()>>,
}

fn executor(name: &str, core: usize, spin: Duration) -> LocalExecutorBuilder {
    LocalExecutorBuilder::new(Placement::Fixed(core))
        .name(name)
        .io_memory(IO_MEMORY)
        .spin_before_park(spin)
}

impl GlommioPair {
    fn start(batch: usize, spin: Duration) -> GlommioPair {
        let (ring_tx, ring_rx) = ring::ring::<Item>(CAPACITY);
        let (to_producer, producer_commands) = channel::unbounded();
        let (to_consumer, consumer_commands) = channel::unbounded();
        let (started_tx, started) = channel::unbounded();
        let (ended_tx, ended) = channel::unbounded();
        let producer = executor("bench-ingest", PRODUCER_CORE, spin)
            .spawn(move || async move {
                let mut tx = ring_tx.connect().await;
                while let Some(n) = next_command(&producer_commands).await {
                    let _ = started_tx.send(Instant::now());
                    for seq in 0..n {
                        tx.stage(item(seq));
                        if tx.nr_staged() == batch {
                            tx.flush().await;
                        }
                    }
                    tx.flush().await;
                }
            })
            .expect("ring bench: cannot start the producer executor on core 0");
        let consumer = executor("bench-shard", CONSUMER_CORE, spin)
            .spawn(move || async move {
                let rx = ring_rx.connect(spin).await;
                while let Some(n) = next_command(&consumer_commands).await {
                    let (mut got, mut sum) = (0, 0);
                    while got < n {
                        rx.ready().await;
                        got += rx.drain(SHARD_DRAIN_MAX, |it| consume(&mut sum, it)) as u64;
                    }
                    let stats = rx.stats();
                    let _ = ended_tx.send(RunEnd {
                        end: Instant::now(),
                        sum,
                        nr_doorbells: stats
                            .nr_doorbells
                            .load(std::sync::atomic::Ordering::Relaxed),
                        nr_batches: stats.nr_batches.load(std::sync::atomic::Ordering::Relaxed),
                    });
                }
            })
            .expect("ring bench: cannot start the consumer executor on core 1");
        GlommioPair {
            to_producer,
            to_consumer,
            started,
            ended,
            executors: vec![producer, consumer],
        }
    }

    /// Move `n` items; the time from the producer's start to the last drain.
    /// A run that does not finish in `RUN_DEADLINE` panics instead of
    /// hanging: it is a lost doorbell wake-up, and the bench says so.
    fn run(&self, n: u64) -> (Duration, RunEnd) {
        self.to_consumer.send(Some(n)).expect("consumer executor");
        self.to_producer.send(Some(n)).expect("producer executor");
        let start = self.started.recv().expect("producer executor");
        let end = self.ended.recv_timeout(RUN_DEADLINE).unwrap_or_else(|_| {
            panic!(
                "ring bench: the consumer did not drain {n} items within {RUN_DEADLINE:?}: \
                 a lost doorbell wake-up (the consumer parked with items in the ring)"
            )
        });
        assert_eq!(end.sum, expected_sum(n), "items lost or repeated");
        (end.end - start, end)
    }

    fn stop(self) {
        let _ = self.to_producer.send(None);
        let _ = self.to_consumer.send(None);
        for handle in self.executors {
            handle.join().expect("bench executor");
        }
    }
}

fn glommio_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring/glommio");
    group.throughput(Throughput::Elements(ITEMS_PER_ITER));
    for spin_us in [0u64, 50] {
        for batch in BATCHES {
            let pair = GlommioPair::start(batch, Duration::from_micros(spin_us));
            let mut last = None;
            let id = BenchmarkId::new(format!("spin-{spin_us}us"), batch);
            group.bench_with_input(id, &batch, |b, _| {
                b.iter_custom(|iters| {
                    let (elapsed, end) = pair.run(iters * ITEMS_PER_ITER);
                    last = Some(end);
                    elapsed
                })
            });
            if let Some(end) = last {
                eprintln!(
                    "  ring/glommio spin {spin_us} µs batch {batch}: {} doorbells over {} batches",
                    end.nr_doorbells, end.nr_batches
                );
            }
            pair.stop();
        }
    }
    group.finish();
}

/// Hand-off latency of single items sent `gap` apart: producer stamps, the
/// consumer records `stamp.elapsed()`. With `spin` shorter than `gap` the
/// consumer parks between items and each one pays the doorbell wake-up.
fn handoff_latency(spin: Duration, gap: Duration, nr_items: u64) -> hdrhistogram::Histogram<u64> {
    let (ring_tx, ring_rx) = ring::ring::<Instant>(CAPACITY);
    let producer = executor("lat-ingest", PRODUCER_CORE, Duration::ZERO)
        .spawn(move || async move {
            let mut tx = ring_tx.connect().await;
            for _ in 0..nr_items {
                glommio::timer::sleep(gap).await;
                tx.stage(Instant::now());
                tx.flush().await;
            }
        })
        .expect("ring bench: cannot start the producer executor on core 0");
    let consumer = executor("lat-shard", CONSUMER_CORE, spin)
        .spawn(move || async move {
            let rx = ring_rx.connect(spin).await;
            let mut hist = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
            let mut got = 0;
            while got < nr_items {
                rx.ready().await;
                got += rx.drain(SHARD_DRAIN_MAX, |stamp| {
                    let _ = hist.record(stamp.elapsed().as_nanos() as u64);
                }) as u64;
            }
            hist
        })
        .expect("ring bench: cannot start the consumer executor on core 1");
    producer.join().expect("producer executor");
    consumer.join().expect("consumer executor")
}

fn latency_report(bench_mode: bool) {
    let nr_items = if bench_mode { 5_000 } else { 50 };
    let gap = Duration::from_micros(200);
    println!("\nring/glommio hand-off latency, one item every {gap:?}, {nr_items} items (ns):");
    println!(
        "{:<32} {:>8} {:>8} {:>8} {:>8}",
        "consumer", "p50", "p99", "p99.9", "max"
    );
    for (label, spin) in [
        ("parked (spin 0, doorbell)", Duration::ZERO),
        ("spinning (spin 1000 µs)", Duration::from_micros(1000)),
    ] {
        let h = handoff_latency(spin, gap, nr_items);
        println!(
            "{label:<32} {:>8} {:>8} {:>8} {:>8}",
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; without it (cargo test) criterion runs
    // each benchmark once, and the latency probe stays short too.
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut criterion = Criterion::default().configure_from_args();
    spsc_benches(&mut criterion);
    glommio_benches(&mut criterion);
    criterion.final_summary();
    latency_report(bench_mode);
}
