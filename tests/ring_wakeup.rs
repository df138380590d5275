//! Lost wake-up stress test for the ingest ⇄ shard ring (`ring::Receiver::ready`
//! parks on a doorbell; `Sender::try_flush` rings it). Producer and consumer
//! run on two glommio executors, once unbound and once both pinned to the same
//! CPU (forcing preemption at arbitrary points), with no spinning, so the
//! consumer parks on most handoffs. The producer leaves random tiny gaps
//! between handoffs (none, a yield, a busy spin, a timer sleep), the consumer
//! random busy pauses after draining.
//!
//! The park timeout (the safety net in production) is disabled: a consumer
//! that misses a doorbell would sleep forever. A watchdog fails the test when
//! the consumer sees no item for `STALL` while items are waiting.
//!
//! glommio 0.9 parks an executor with a woken task still queued when its
//! preemption timer has fired just before the task queues run (see
//! `src/ring/mod.rs`). Under heavy load that is rare (it takes the thread
//! being descheduled across the 100 ms timer at the wrong instant); the
//! consumer's executor here uses a 200 µs preemption timer so it happens many
//! times a second. The consumer waits on nothing but the ring, so the test checks
//! that the doorbell path survives it. The producer's executor keeps glommio's
//! default timer and is kicked from a plain thread every millisecond, so the
//! same glommio bug cannot stall the producer (it is not what is tested).
//!
//! `idle_consumer_survives_many_park_timeouts` checks that a consumer whose
//! parks keep timing out does not pile up registrations on the doorbell (each
//! holds a clone of the task's waker, and glommio counts those in an `i16`).
//! `drain_survives_a_panicking_closure` checks that a drain closure that
//! panics leaves every item dropped exactly once and the ring working.
//!
//! Environment: `RING_WAKEUP_SECS` (default 3) sets how long each
//! configuration runs, `RING_WAKEUP_SEED` fixes the random seed (printed on
//! every run), `RING_WAKEUP_PREEMPT_US` the consumer's preemption timer
//! (default 200 µs; 100000 is glommio's default). Without the ring's guard
//! against the glommio bug the test fails every run at 200 µs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use ctirouter::ring;
use ctirouter::sim::rng::Rng;
use glommio::{LocalExecutorBuilder, Placement};

/// No progress for this long with items in the ring is a lost wake-up.
const STALL: Duration = Duration::from_secs(2);
/// Hard bound on one configuration beyond its run time.
const SLACK: Duration = Duration::from_secs(10);
/// Most handoffs per configuration (the run time usually ends it first).
const MAX_HANDOFFS: u64 = 2_000_000;
/// Tells the consumer the producer is done.
const END: u64 = u64::MAX;
/// How often the producer's executor is kicked.
const KICK_EVERY: Duration = Duration::from_millis(1);

fn spin_for(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// What both executors and the watchdog share.
#[derive(Default)]
struct Progress {
    /// Items published by the producer.
    produced: AtomicU64,
    /// Items seen by the consumer.
    consumed: AtomicU64,
    /// Doorbells rung so far (mirrors the ring's counter).
    doorbells: AtomicU64,
    producer_done: AtomicBool,
    consumer_done: AtomicBool,
    /// First ordering error the consumer saw.
    error: parking_lot::Mutex<Option<String>>,
}

/// A task on the producer's executor that a plain thread wakes periodically:
/// a foreign wake-up makes glommio write the executor's eventfd, which gets
/// an executor out of the park described above.
#[derive(Default)]
struct Kick {
    waker: parking_lot::Mutex<Option<Waker>>,
    kicked: AtomicBool,
}

impl Kick {
    fn kick(&self) {
        self.kicked.store(true, Ordering::SeqCst);
        if let Some(waker) = self.waker.lock().take() {
            waker.wake();
        }
    }

    async fn wait(&self) {
        std::future::poll_fn(|cx: &mut Context<'_>| {
            if self.kicked.swap(false, Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.waker.lock() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

fn seed() -> u64 {
    if let Some(seed) = env("RING_WAKEUP_SEED") {
        return seed;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 32)) | 1
}

fn builder(name: &str, placement: Placement) -> LocalExecutorBuilder {
    LocalExecutorBuilder::new(placement)
        .name(name)
        .io_memory(512 << 10)
}

/// One configuration; panics on a lost wake-up, a hang or misordered items.
fn stress(label: &str, producer_at: Placement, consumer_at: Placement, seed: u64) {
    let run = Duration::from_secs_f64(env("RING_WAKEUP_SECS").unwrap_or(3.0));
    let preempt = Duration::from_micros(env("RING_WAKEUP_PREEMPT_US").unwrap_or(200));
    eprintln!("ring_wakeup {label}: seed {seed}, {run:?}, consumer preempt timer {preempt:?}");
    let (tx, rx) = ring::ring::<u64>(64);
    let progress = Arc::new(Progress::default());
    let kick = Arc::new(Kick::default());

    let p = progress.clone();
    let k = kick.clone();
    let producer = builder("wakeup-producer", producer_at)
        .spawn(move || async move {
            glommio::spawn_local(async move {
                loop {
                    k.wait().await;
                }
            })
            .detach();
            let mut rng = Rng::new(seed);
            let mut tx = tx.connect().await;
            let deadline = Instant::now() + run;
            let mut next = 0u64;
            while next < MAX_HANDOFFS && Instant::now() < deadline {
                let batch = if rng.below(8) == 0 {
                    1 + rng.below(8)
                } else {
                    1
                };
                for _ in 0..batch {
                    tx.stage(next);
                    next += 1;
                }
                tx.flush().await;
                p.produced.store(next, Ordering::SeqCst);
                p.doorbells.store(
                    tx.stats().nr_doorbells.load(Ordering::Relaxed),
                    Ordering::Relaxed,
                );
                match rng.below(16) {
                    0..=4 => {}
                    5..=6 => futures_lite::future::yield_now().await,
                    7..=10 => spin_for(Duration::from_nanos(u64::from(rng.below(30_000)))),
                    11..=14 => {
                        glommio::timer::sleep(Duration::from_micros(1 + u64::from(rng.below(100))))
                            .await
                    }
                    _ => {
                        glommio::timer::sleep(Duration::from_micros(
                            1 + u64::from(rng.below(1_000)),
                        ))
                        .await
                    }
                }
            }
            tx.stage(END);
            tx.flush().await;
            p.doorbells.store(
                tx.stats().nr_doorbells.load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
            p.producer_done.store(true, Ordering::SeqCst);
            // Keep the doorbell connected until the consumer has everything.
            while !p.consumer_done.load(Ordering::SeqCst) {
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
        })
        .expect("spawn the producer executor");

    let c = progress.clone();
    let consumer = builder("wakeup-consumer", consumer_at)
        .preempt_timer(preempt)
        .spawn(move || async move {
            let mut rng = Rng::new(seed.rotate_left(17));
            let mut rx = rx.connect(Duration::ZERO).await;
            rx.set_park_timeout(None);
            let mut expect = 0u64;
            let mut done = false;
            while !done {
                rx.ready().await;
                let mut bad = None;
                rx.drain(64, |x| {
                    if x == END {
                        done = true;
                    } else if x != expect {
                        bad.get_or_insert(format!("expected item {expect}, got {x}"));
                    } else {
                        expect += 1;
                    }
                });
                c.consumed.store(expect, Ordering::SeqCst);
                if let Some(bad) = bad {
                    c.error.lock().get_or_insert(bad);
                    break;
                }
                // Busy pauses only: a yield or a timer would be another way
                // to be woken, and only the ring's is under test.
                if rng.below(4) == 0 {
                    spin_for(Duration::from_nanos(u64::from(rng.below(20_000))));
                }
            }
            c.consumer_done.store(true, Ordering::SeqCst);
        })
        .expect("spawn the consumer executor");

    // Watchdog (and the producer's kicker): the consumer must keep up with
    // what was published.
    let started = Instant::now();
    let mut last_seen = (0u64, Instant::now());
    let mut last_kick = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(1));
        if last_kick.elapsed() >= KICK_EVERY {
            kick.kick();
            last_kick = Instant::now();
        }
        if progress.consumer_done.load(Ordering::SeqCst)
            && progress.producer_done.load(Ordering::SeqCst)
        {
            break;
        }
        let consumed = progress.consumed.load(Ordering::SeqCst);
        let produced = progress.produced.load(Ordering::SeqCst);
        if consumed != last_seen.0 || produced <= consumed {
            last_seen = (consumed, Instant::now());
        } else if last_seen.1.elapsed() >= STALL {
            panic!(
                "ring_wakeup {label} (seed {seed}): lost wake-up: the consumer saw no item for \
                 {STALL:?} while {} were waiting (produced {produced}, consumed {consumed}, \
                 doorbells rung {})",
                produced - consumed,
                progress.doorbells.load(Ordering::Relaxed),
            );
        }
        assert!(
            started.elapsed() < run + SLACK,
            "ring_wakeup {label} (seed {seed}): not done after {:?} (produced {produced}, \
             consumed {consumed}, producer done {}, consumer done {})",
            run + SLACK,
            progress.producer_done.load(Ordering::SeqCst),
            progress.consumer_done.load(Ordering::SeqCst),
        );
    }
    producer.join().expect("producer executor");
    consumer.join().expect("consumer executor");
    if let Some(error) = progress.error.lock().take() {
        panic!("ring_wakeup {label} (seed {seed}): {error}");
    }
    let produced = progress.produced.load(Ordering::SeqCst);
    let doorbells = progress.doorbells.load(Ordering::Relaxed);
    eprintln!(
        "ring_wakeup {label}: {produced} items, {doorbells} doorbells in {:?}",
        started.elapsed()
    );
    // The consumer must actually have parked often, or the test tests nothing.
    assert!(
        doorbells >= 1_000,
        "ring_wakeup {label} (seed {seed}): only {doorbells} doorbells in {produced} items"
    );
}

#[test]
fn no_lost_wakeups_unbound() {
    stress("unbound", Placement::Unbound, Placement::Unbound, seed());
}

#[test]
fn no_lost_wakeups_on_one_cpu() {
    let cpu = core_affinity::get_core_ids()
        .and_then(|ids| ids.last().map(|id| id.id))
        .unwrap_or(0);
    stress(
        "one cpu",
        Placement::Fixed(cpu),
        Placement::Fixed(cpu),
        seed().rotate_left(7) | 1,
    );
}

/// Parks that time out must not accumulate doorbell registrations: glommio
/// keeps each one (a clone of the consumer task's waker) until it wakes it,
/// the task's reference count is an `i16`, and an overflow panics the
/// executor. More than 32 767 parks with nothing ever sent.
#[test]
fn idle_consumer_survives_many_park_timeouts() {
    const PARKS: u64 = 40_000;
    let (tx, rx) = ring::ring::<u64>(64);
    let done = Arc::new(AtomicBool::new(false));
    let producer_done = done.clone();
    let producer = builder("idle-producer", Placement::Unbound)
        .spawn(move || async move {
            let _tx = tx.connect().await;
            while !producer_done.load(Ordering::SeqCst) {
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
        })
        .expect("spawn the producer executor");
    let consumer = builder("idle-consumer", Placement::Unbound)
        .spawn(move || async move {
            let mut rx = rx.connect(Duration::ZERO).await;
            rx.set_park_timeout(Some(Duration::from_micros(20)));
            for _ in 0..PARKS {
                rx.ready().await;
            }
            let stats = rx.stats();
            (
                stats.nr_park_timeouts.load(Ordering::Relaxed),
                stats.nr_late_wakeups.load(Ordering::Relaxed),
            )
        })
        .expect("spawn the consumer executor");
    // A consumer whose executor panics inside glommio's waker accounting may
    // never finish its join: wait for it on a thread, with a deadline.
    let (joined_tx, joined_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = joined_tx.send(consumer.join().map_err(|e| e.to_string()));
    });
    let outcome = joined_rx.recv_timeout(Duration::from_secs(60));
    done.store(true, Ordering::SeqCst);
    producer.join().expect("producer executor");
    let (timeouts, late) = outcome
        .expect("the consumer's executor finishes within 60 s (it panicked or hung)")
        .expect("the consumer's executor survives");
    assert_eq!(timeouts, PARKS, "every park timed out");
    assert_eq!(late, 0, "nothing was sent, so no wake-up was late");
}

/// An item that counts its drops (one counter per item id).
struct Counted {
    id: usize,
    drops: Arc<[AtomicU64]>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops[self.id].fetch_add(1, Ordering::SeqCst);
    }
}

/// A shard's drain closure that panics (here, holding the 6th item) takes
/// from the ring only what it was handed: every item is dropped exactly
/// once, the rest are drained afterwards in order, and a later batch still
/// arrives (the consumer usually parks on the doorbell before it does).
#[test]
fn drain_survives_a_panicking_closure() {
    const BATCH: usize = 32;
    const PANIC_AT: usize = 5;
    let drops: Arc<[AtomicU64]> = (0..2 * BATCH).map(|_| AtomicU64::new(0)).collect();
    let (tx, rx) = ring::ring::<Counted>(64);
    let (drained_tx, drained_rx) = std::sync::mpsc::channel::<()>();
    let producer_drops = drops.clone();
    let producer = builder("panic-producer", Placement::Unbound)
        .spawn(move || async move {
            let mut tx = tx.connect().await;
            for half in [0..BATCH, BATCH..2 * BATCH] {
                for id in half {
                    tx.stage(Counted {
                        id,
                        drops: producer_drops.clone(),
                    });
                }
                tx.flush().await;
                // The consumer has drained (and parked) before the next batch.
                while drained_rx.try_recv().is_err() {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
            }
        })
        .expect("spawn the producer executor");
    let consumer = builder("panic-consumer", Placement::Unbound)
        .spawn(move || async move {
            let mut rx = rx.connect(Duration::ZERO).await;
            rx.set_park_timeout(None);
            let mut ids = Vec::new();
            rx.ready().await;
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                rx.drain(256, |item| {
                    if item.id == PANIC_AT {
                        panic!("drain closure panics holding item {PANIC_AT} (expected)");
                    }
                    ids.push(item.id);
                })
            }))
            .is_err();
            while ids.len() < BATCH - 1 {
                rx.ready().await;
                rx.drain(256, |item| ids.push(item.id));
            }
            let _ = drained_tx.send(());
            while ids.len() < 2 * BATCH - 1 {
                rx.ready().await;
                rx.drain(256, |item| ids.push(item.id));
            }
            let _ = drained_tx.send(());
            (panicked, ids)
        })
        .expect("spawn the consumer executor");
    let (panicked, ids) = consumer.join().expect("consumer executor");
    producer.join().expect("producer executor");
    assert!(panicked, "the drain closure panicked");
    let expected: Vec<usize> = (0..2 * BATCH).filter(|&id| id != PANIC_AT).collect();
    assert_eq!(ids, expected, "every other item, once, in order");
    let drops: Vec<u64> = drops.iter().map(|n| n.load(Ordering::SeqCst)).collect();
    assert_eq!(drops, vec![1; 2 * BATCH], "each item dropped exactly once");
}

/// Both ends on one executor (ingest and the shard pinned to its core):
/// the producer wakes the parked consumer's task itself, in the same pass,
/// without the doorbell's shared channel. With the park timeout disabled, a
/// wake that did not arrive would hang the consumer: the executor must
/// finish every handoff within [`SLACK`], in order, and the consumer must
/// have parked (doorbells counted) rather than found items waiting.
#[test]
fn both_ends_on_one_executor_wake_each_other() {
    const HANDOFFS: u64 = 5_000;
    let seed = seed();
    eprintln!("ring_wakeup one executor: seed {seed}");
    let (tx, rx) = ring::ring::<u64>(64);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(Vec<u64>, u64)>();
    let _executor = builder("ring-both-ends", Placement::Unbound)
        .spawn(move || async move {
            let consumer = glommio::spawn_local(async move {
                let mut rx = rx.connect(Duration::ZERO).await;
                rx.set_park_timeout(None);
                let mut got = Vec::new();
                while got.last() != Some(&(HANDOFFS - 1)) {
                    rx.ready().await;
                    rx.drain(256, |item| got.push(item));
                }
                (got, rx.stats().nr_doorbells.load(Ordering::Relaxed))
            });
            let mut tx = tx.connect().await;
            let mut rng = Rng::new(seed);
            for item in 0..HANDOFFS {
                tx.stage(item);
                tx.flush().await;
                match rng.below(3) {
                    0 => {}
                    1 => futures_lite::future::yield_now().await,
                    _ => {
                        glommio::timer::sleep(Duration::from_micros(u64::from(rng.below(100))))
                            .await
                    }
                }
            }
            let _ = done_tx.send(consumer.await);
        })
        .expect("spawn the executor");
    let (got, nr_doorbells) = done_rx
        .recv_timeout(SLACK)
        .expect("every handoff within the bound (a lost wake-up hangs the consumer)");
    assert_eq!(
        got,
        (0..HANDOFFS).collect::<Vec<_>>(),
        "in order, once each"
    );
    assert!(
        nr_doorbells > 0,
        "the consumer parked and was woken by the producer"
    );
}

/// A shard drains the ring from more than one task (its readers take events
/// first), so a ring can wake the waiting task after another task took the
/// items it was for. The waiter then finds nothing and waits on: it must be
/// rung again by the next batch, not left to its park timeout (here none).
/// With both ends on one executor (`runtime.share_ingest_thread`) the ring is
/// a plain wake with no doorbell token, which is where a waiter that
/// announced its park only once used to miss the next batch. One executor
/// also makes the interleaving exact: the producer rings, drains the ring
/// itself before the waiter runs, lets the waiter run and find it empty,
/// then publishes again.
#[test]
fn a_waiter_whose_items_another_task_took_is_rung_again() {
    let (tx, rx) = ring::ring::<u64>(64);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(Vec<u64>, Vec<u64>)>();
    let _executor = builder("ring-two-drainers", Placement::Unbound)
        .spawn(move || async move {
            // Each end's connect waits for the other's.
            let (mut rx, mut tx) =
                futures_lite::future::zip(rx.connect(Duration::ZERO), tx.connect()).await;
            rx.set_park_timeout(None);
            let rx = std::rc::Rc::new(rx);
            let waiter_rx = rx.clone();
            let waiter = glommio::spawn_local(async move {
                let mut got = Vec::new();
                while got.is_empty() {
                    waiter_rx.ready().await;
                    waiter_rx.drain(64, |item| got.push(item));
                }
                got
            });
            // Let the waiter park.
            futures_lite::future::yield_now().await;
            tx.stage(1);
            tx.flush().await;
            // Another task takes the item before the woken waiter runs.
            let mut taken = Vec::new();
            rx.drain(64, |item| taken.push(item));
            // The waiter runs, finds the ring empty and waits again.
            for _ in 0..3 {
                futures_lite::future::yield_now().await;
            }
            tx.stage(2);
            tx.flush().await;
            let _ = done_tx.send((taken, waiter.await));
        })
        .expect("spawn the executor");
    let (taken, got) = done_rx
        .recv_timeout(SLACK)
        .expect("the waiter is rung for the second item (it hangs without)");
    assert_eq!(taken, vec![1], "the other task took the first item");
    assert_eq!(got, vec![2], "the waiter got the second");
}
