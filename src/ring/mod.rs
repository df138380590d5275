//! Ingest ⇄ shard transport: a bounded SPSC queue (`spsc`) plus a doorbell.
//! The producer stages items and publishes them in batches; it rings the
//! doorbell only when the consumer announced it is about to park, and the
//! consumer spins for a configurable time before it announces that (a wake-up
//! costs ~20–25 µs on the target VMs, design.md §5). The endpoints become
//! `!Send` once connected inside their executor, so they stay on their core.
//! Full-ring policy: the producer waits (never drops) and counts the waits.

pub mod spsc;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::shared_channel::{self, ConnectedReceiver, ConnectedSender};

/// Longest a parked consumer sleeps without re-checking its queue.
const PARK_TIMEOUT: Duration = Duration::from_millis(100);

/// Counters of one ring, readable from any thread.
#[derive(Debug, Default)]
pub struct RingStats {
    /// Items published.
    pub nr_pushed: AtomicU64,
    /// Batches published (one release store each).
    pub nr_batches: AtomicU64,
    /// Times the producer found the ring full and had to wait.
    pub nr_full_waits: AtomicU64,
    /// Doorbells rung (the consumer had parked).
    pub nr_doorbells: AtomicU64,
}

struct Bell {
    /// Set by the consumer just before it sleeps, cleared when it wakes.
    parked: AtomicBool,
    stats: RingStats,
}

/// Producer end before it is connected on its executor (`Send`).
pub struct RingTx<T> {
    producer: spsc::Producer<T>,
    bell: Arc<Bell>,
    doorbell: shared_channel::SharedSender<()>,
}

/// Consumer end before it is connected on its executor (`Send`).
pub struct RingRx<T> {
    consumer: spsc::Consumer<T>,
    bell: Arc<Bell>,
    doorbell: shared_channel::SharedReceiver<()>,
}

/// A ring of `capacity` slots.
pub fn ring<T: Send + 'static>(capacity: usize) -> (RingTx<T>, RingRx<T>) {
    let (producer, consumer) = spsc::channel(capacity);
    let bell = Arc::new(Bell {
        parked: AtomicBool::new(false),
        stats: RingStats::default(),
    });
    // One pending token is enough: a second ring while one is unread adds nothing.
    let (tx, rx) = shared_channel::new_bounded(1);
    (
        RingTx {
            producer,
            bell: bell.clone(),
            doorbell: tx,
        },
        RingRx {
            consumer,
            bell,
            doorbell: rx,
        },
    )
}

impl<T: Send + 'static> RingTx<T> {
    /// Connect on the producing executor (waits until the consumer connects).
    pub async fn connect(self) -> Sender<T> {
        Sender {
            producer: self.producer,
            bell: self.bell,
            doorbell: Rc::new(self.doorbell.connect().await),
            staged: Vec::new(),
        }
    }
}

impl<T: Send + 'static> RingRx<T> {
    /// Connect on the consuming executor (waits until the producer connects).
    pub async fn connect(self, spin: Duration) -> Receiver<T> {
        Receiver {
            consumer: self.consumer,
            bell: self.bell,
            doorbell: self.doorbell.connect().await,
            spin,
            producer_gone: false,
        }
    }
}

/// Connected producer: stage, then flush once per batch.
pub struct Sender<T: Send + 'static> {
    producer: spsc::Producer<T>,
    bell: Arc<Bell>,
    doorbell: Rc<ConnectedSender<()>>,
    staged: Vec<T>,
}

impl<T: Send + 'static> Sender<T> {
    /// Queue an item locally; nothing is published until [`Sender::flush`].
    pub fn stage(&mut self, item: T) {
        self.staged.push(item);
    }

    pub fn nr_staged(&self) -> usize {
        self.staged.len()
    }

    /// Publish what fits and ring the doorbell if the consumer parked.
    /// Returns how many items are still staged because the ring was full.
    pub fn try_flush(&mut self) -> usize {
        if self.staged.is_empty() {
            return 0;
        }
        let n = self.producer.push_batch(&mut self.staged);
        if n > 0 {
            let stats = &self.bell.stats;
            stats.nr_pushed.fetch_add(n as u64, Ordering::Relaxed);
            stats.nr_batches.fetch_add(1, Ordering::Relaxed);
            // Pairs with the consumer's SeqCst store of `parked` before its
            // re-check of the queue (Dekker): one of us sees the other.
            std::sync::atomic::fence(Ordering::SeqCst);
            if self.bell.parked.swap(false, Ordering::SeqCst) {
                stats.nr_doorbells.fetch_add(1, Ordering::Relaxed);
                let _ = self.doorbell.try_send(());
            }
        }
        self.staged.len()
    }

    /// Publish everything staged, waiting while the ring is full (the
    /// consumer is behind): the full-ring policy is to wait, never to drop.
    pub async fn flush(&mut self) {
        let mut waited = false;
        while self.try_flush() > 0 {
            if !waited {
                self.bell
                    .stats
                    .nr_full_waits
                    .fetch_add(1, Ordering::Relaxed);
                waited = true;
            }
            glommio::timer::sleep(Duration::from_micros(50)).await;
        }
    }

    pub fn stats(&self) -> &RingStats {
        &self.bell.stats
    }
}

/// Connected consumer: drain in batches, spin, then park on the doorbell.
pub struct Receiver<T: Send + 'static> {
    consumer: spsc::Consumer<T>,
    bell: Arc<Bell>,
    doorbell: ConnectedReceiver<()>,
    spin: Duration,
    /// The producer is gone: never park on the doorbell again.
    producer_gone: bool,
}

impl<T: Send + 'static> Receiver<T> {
    /// Pop up to `max` items into `f`; returns how many.
    pub fn drain(&mut self, max: usize, f: impl FnMut(T)) -> usize {
        self.consumer.pop_batch(max, f)
    }

    /// Wait until items are ready: spin (yielding to other tasks) for the
    /// configured time, then announce the park and sleep until the doorbell.
    pub async fn ready(&mut self) {
        if !self.consumer.is_empty() {
            return;
        }
        if !self.spin.is_zero() {
            let until = Instant::now() + self.spin;
            while Instant::now() < until {
                futures_lite::future::yield_now().await;
                if !self.consumer.is_empty() {
                    return;
                }
            }
        }
        self.bell.parked.store(true, Ordering::SeqCst);
        // Pairs with the producer's fence: our store is visible before our load.
        std::sync::atomic::fence(Ordering::SeqCst);
        if !self.consumer.is_empty() {
            self.bell.parked.store(false, Ordering::SeqCst);
            return;
        }
        if self.producer_gone {
            glommio::timer::sleep(Duration::from_millis(10)).await;
        } else {
            // The timeout is a safety net against a lost wake-up (a rare one
            // has been reported in glommio's shared channels, issue #261):
            // the cost is one idle wake-up per PARK_TIMEOUT.
            let rang =
                futures_lite::future::or(async { Some(self.doorbell.recv().await) }, async {
                    glommio::timer::sleep(PARK_TIMEOUT).await;
                    None
                })
                .await;
            if let Some(None) = rang {
                self.producer_gone = true;
            }
        }
        self.bell.parked.store(false, Ordering::SeqCst);
    }

    pub fn stats(&self) -> &RingStats {
        &self.bell.stats
    }
}
