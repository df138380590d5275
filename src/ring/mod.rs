//! Ingest ⇄ shard transport: a bounded SPSC queue (`spsc`) plus a doorbell.
//! The producer stages items and publishes them in batches; it rings the
//! doorbell only when the consumer announced it is about to park, and the
//! consumer spins for a configurable time before it announces that (a wake-up
//! costs ~20–25 µs on the target VMs, docs/design.md §5). The endpoints become
//! `!Send` once connected inside their executor, so they stay on their core.
//! Full-ring policy: the producer waits (never drops) and counts the waits.
//!
//! The doorbell's token costs the producer a pass: a glommio shared channel's
//! receive writes the sender's eventfd whenever the sender sleeps, so each
//! doorbell the consumer answers wakes the producer once for nothing (about
//! half of ingest's wake-ups at 700 events/s). A doorbell made of the
//! consumer's own waker avoids that and cut the router's CPU, but made
//! large-pg's bursts slower at p99.9 for reasons not yet found; it is not
//! used (perf/results/doorbell-2026-12-07.md).
//!
//! # glommio 0.9 can strand a woken task
//! `LocalExecutor::run` treats "preempted before any task queue ran" as
//! "nothing to run": when the latency ring holds a completion (typically the
//! preemption timer, when the thread was descheduled across it) at the first
//! `need_preempt()` check of `run_task_queues`, the executor parks with the
//! woken task still queued, and it stays queued until some later reactor event
//! (I/O, a timer, a remote notification). Any task can be stranded so; the
//! ring guards its own two waits against it:
//!
//! * A parked consumer woken by the doorbell: the producer rang once and will
//!   not ring again until the consumer parks again, so nothing would come —
//!   the lost wake-up seen under heavy load, bounded only by the park
//!   timeout. The consumer keeps spare registrations on the doorbell
//!   ([`SPARE_DOORBELL_WAKERS`]): glommio wakes one per reactor pass while
//!   the token is unread, and a pass that wakes one does not park, so a
//!   stranded consumer runs on the next pass instead of sleeping.
//! * Connecting: glommio's shared-channel connect re-polls on every reactor
//!   pass and has no timer, so a connect stranded before any timer exists on
//!   the executor never recovers and its peer's connect waits forever (this
//!   was `Router::start`'s shard-readiness timeout). [`guarded`] keeps a timer
//!   pending beside it.
//!
//! `tests/ring_wakeup.rs` provokes the strand with a 200 µs preemption timer.
//! The upstream fix (glommio/glommio, "do not park the executor while a task
//! queue is still runnable") is not in glommio 0.9.0. Until it is in, keep
//! [`PARK_TIMEOUT`]: besides being the ring's safety net, the parked
//! consumers' timers are what bound a strand of any other task on the shard
//! and ingest executors.

pub mod spsc;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures_lite::Stream;
use glommio::channels::shared_channel::{self, ConnectedReceiver, ConnectedSender};

/// Longest a parked consumer sleeps without re-checking its queue (the
/// default of [`Receiver::set_park_timeout`]).
pub const PARK_TIMEOUT: Duration = Duration::from_millis(100);

/// Doorbell registrations a parked consumer holds beyond the one it needs:
/// each is one more reactor pass that cannot park while the doorbell token
/// is unread, i.e. one more chance for a stranded consumer to run. Strands
/// can come in a row (the consumer's own syscalls wake the producer, which
/// then preempts it): with a 200 µs preemption timer on a loaded CPU, 16 were
/// enough in tests/ring_wakeup.rs and 0 fail every run. At glommio's default
/// 100 ms each one takes the thread being off the CPU for 100 ms in a window
/// of microseconds. Each costs a pointer-sized clone and nothing per park.
const SPARE_DOORBELL_WAKERS: usize = 32;

/// Counters of one ring, readable from any thread.
#[derive(Debug, Default)]
pub struct RingStats {
    /// Batches published (one release store each).
    pub nr_batches: AtomicU64,
    /// Times the producer found the ring full and had to wait.
    pub nr_full_waits: AtomicU64,
    /// Doorbells rung (the consumer had parked).
    pub nr_doorbells: AtomicU64,
    /// Parks that ended by the park timeout rather than the doorbell.
    pub nr_park_timeouts: AtomicU64,
    /// Park timeouts that found items waiting: a wake-up that did not arrive
    /// within the park timeout (0 unless something is wrong).
    pub nr_late_wakeups: AtomicU64,
}

/// A handle on one ring's [`RingStats`], for readers on other threads.
#[derive(Clone)]
pub struct StatsHandle(Arc<Bell>);

impl StatsHandle {
    pub fn get(&self) -> &RingStats {
        &self.0.stats
    }
}

impl std::fmt::Debug for StatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

struct Bell {
    /// Set by the consumer just before it sleeps, cleared when it wakes.
    parked: AtomicBool,
    stats: RingStats,
    /// The consumer's executor ([`NO_EXECUTOR`] until it connects).
    consumer_executor: AtomicUsize,
    /// What the consumer's task registers while parked.
    doorbell_waker: Arc<DoorbellWaker>,
}

/// [`Bell::consumer_executor`] before the consumer connects.
const NO_EXECUTOR: usize = usize::MAX;

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
        consumer_executor: AtomicUsize::new(NO_EXECUTOR),
        doorbell_waker: Arc::new(DoorbellWaker::default()),
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
    /// The ring's counters, readable from any thread.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(self.bell.clone())
    }

    /// Connect on the producing executor (waits until the consumer connects).
    pub async fn connect(self) -> Sender<T> {
        Sender {
            producer: self.producer,
            bell: self.bell,
            doorbell: Rc::new(guarded(self.doorbell.connect()).await),
            executor: glommio::executor().id(),
            staged: Vec::new(),
        }
    }
}

impl<T: Send + 'static> RingRx<T> {
    /// Connect on the consuming executor (waits until the producer connects).
    pub async fn connect(self, spin: Duration) -> Receiver<T> {
        // Before the doorbell connects: a producer on this executor, whose
        // connect waits for this one, sees it.
        self.bell
            .consumer_executor
            .store(glommio::executor().id(), Ordering::Relaxed);
        Receiver {
            consumer: RefCell::new(self.consumer),
            doorbell_waker: self.bell.doorbell_waker.clone(),
            bell: self.bell,
            doorbell: RefCell::new(guarded(self.doorbell.connect()).await),
            spin,
            park_timeout: Some(PARK_TIMEOUT),
            producer_gone: Cell::new(false),
        }
    }
}

/// How often a task waiting in [`guarded`] is woken regardless.
const CONNECT_GUARD: Duration = Duration::from_millis(5);

/// Await `f` with a timer always pending beside it. glommio's shared-channel
/// connect waits by re-polling on every reactor pass and has no timer of its
/// own, so a connecting task stranded by glommio (module docs) would strand
/// for good and its peer would wait for it forever; the timer wakes it.
async fn guarded<F: Future>(f: F) -> F::Output {
    futures_lite::future::or(f, async {
        loop {
            glommio::timer::sleep(CONNECT_GUARD).await;
        }
    })
    .await
}

/// Connected producer: stage, then flush once per batch.
pub struct Sender<T: Send + 'static> {
    producer: spsc::Producer<T>,
    bell: Arc<Bell>,
    doorbell: Rc<ConnectedSender<()>>,
    /// The executor this end runs on.
    executor: usize,
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
            stats.nr_batches.fetch_add(1, Ordering::Relaxed);
            // Pairs with the consumer's SeqCst store of `parked` before its
            // re-check of the queue (Dekker): one of us sees the other.
            std::sync::atomic::fence(Ordering::SeqCst);
            if self.bell.parked.swap(false, Ordering::SeqCst) {
                stats.nr_doorbells.fetch_add(1, Ordering::Relaxed);
                if self.bell.consumer_executor.load(Ordering::Relaxed) == self.executor {
                    // Both ends on one thread (ingest and the shard beside
                    // it): wake the consumer's task itself, so it runs in
                    // this pass of the executor. glommio looks at a shared
                    // channel only between passes: a pass costs a handful
                    // of io_uring_enter calls, and a request crosses the
                    // ring twice.
                    self.bell.doorbell_waker.wake_task();
                } else {
                    let _ = self.doorbell.try_send(());
                }
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
///
/// Its methods take `&self`, so a core can drain the ring from any of its
/// tasks while one of them waits in [`Receiver::ready`] (the shard drains
/// events before it handles a client's bytes: docs/design.md §5). Each call
/// holds its inner borrows only while it runs, never across an await; `f` in
/// [`Receiver::drain`] must not use the same receiver.
pub struct Receiver<T: Send + 'static> {
    consumer: RefCell<spsc::Consumer<T>>,
    bell: Arc<Bell>,
    doorbell: RefCell<ConnectedReceiver<()>>,
    /// What the consumer registers on the doorbell (counts registrations).
    doorbell_waker: Arc<DoorbellWaker>,
    spin: Duration,
    /// Longest a park lasts without the doorbell (`None`: until it rings).
    park_timeout: Option<Duration>,
    /// The producer is gone: never park on the doorbell again.
    producer_gone: Cell<bool>,
}

impl<T: Send + 'static> Receiver<T> {
    /// Pop up to `max` items into `f`; returns how many. If `f` panics, the
    /// items it was given are gone from the ring and the rest stay queued
    /// (each item is dropped once: [`spsc::Consumer::pop_batch`]).
    pub fn drain(&self, max: usize, f: impl FnMut(T)) -> usize {
        self.consumer.borrow_mut().pop_batch(max, f)
    }

    /// Whether nothing is queued (one load of the producer's index).
    pub fn is_empty(&self) -> bool {
        self.consumer.borrow_mut().is_empty()
    }

    /// Longest a park lasts without the doorbell before the queue is checked
    /// again ([`PARK_TIMEOUT`] unless set); `None` waits for the doorbell
    /// only (tests use it to catch lost wake-ups).
    pub fn set_park_timeout(&mut self, timeout: Option<Duration>) {
        self.park_timeout = timeout;
    }

    /// Wait until items are ready: spin (yielding to other tasks) for the
    /// configured time, then announce the park and sleep until the doorbell.
    pub async fn ready(&self) {
        if !self.is_empty() {
            return;
        }
        if !self.spin.is_zero() {
            let until = Instant::now() + self.spin;
            while Instant::now() < until {
                futures_lite::future::yield_now().await;
                if !self.is_empty() {
                    return;
                }
            }
        }
        if self.producer_gone.get() {
            glommio::timer::sleep(Duration::from_millis(10)).await;
        } else {
            // The timeout is a safety net against a wake-up that does not
            // arrive: the cost is one idle wake-up per park timeout.
            let mut net = self.park_timeout.map(glommio::timer::Timer::new);
            let woke = futures_lite::future::poll_fn(|cx| {
                // The park is announced on every poll, not only the first:
                // a ring clears `parked`, and when another task took what it
                // rang for (a shard's readers drain events first) this wait
                // goes on, and the next batch must ring again. A producer on
                // this executor rings without a token, so nothing else would
                // end the wait but the park timeout (tests/ring_wakeup.rs,
                // a_waiter_whose_items_another_task_took_is_rung_again).
                self.bell.parked.store(true, Ordering::SeqCst);
                // Pairs with the producer's fence: our store is visible
                // before our load of the queue.
                std::sync::atomic::fence(Ordering::SeqCst);
                // Woken by a producer on this executor (no token), or by
                // the doorbell: the queue says which.
                if !self.is_empty() {
                    return Poll::Ready(Some(Some(())));
                }
                if let Poll::Ready(rang) = self.poll_doorbell(cx) {
                    return Poll::Ready(Some(rang));
                }
                match net.as_mut().map(|net| Pin::new(net).poll(cx)) {
                    Some(Poll::Ready(_)) => Poll::Ready(None),
                    _ => Poll::Pending,
                }
            })
            .await;
            match woke {
                Some(Some(())) => {}
                Some(None) => self.producer_gone.set(true),
                None => {
                    let stats = &self.bell.stats;
                    stats.nr_park_timeouts.fetch_add(1, Ordering::Relaxed);
                    if !self.is_empty() {
                        stats.nr_late_wakeups.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        self.bell.parked.store(false, Ordering::SeqCst);
    }

    pub fn stats(&self) -> &RingStats {
        &self.bell.stats
    }

    /// Poll the doorbell: `Ready(Some(()))` when it rang, `Ready(None)` when
    /// the producer is gone. While pending, keep `1 + SPARE_DOORBELL_WAKERS`
    /// registrations with glommio (each pending poll adds one, each wake by
    /// glommio removes one), so a pass of glommio's reactor that finds the
    /// token unread always has one to wake and does not park (module docs).
    /// With that many registered, the doorbell is not polled at all: a token
    /// (or the producer leaving) makes glommio wake one, and then it is.
    ///
    /// The cap matters on its own: glommio drops a registration only when it
    /// wakes it, and wakes one per pass only while a token is unread, so
    /// polling once per park left one behind per park that timed out — a
    /// clone of the task's waker, whose reference count is an `i16` in
    /// glommio: an idle consumer panicked its executor ("Waker invariant
    /// broken") after some 16 000 timed-out parks, under half an hour.
    fn poll_doorbell(&self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.doorbell_waker.set_task(cx.waker());
        let waker = Waker::from(self.doorbell_waker.clone());
        let mut doorbell_cx = Context::from_waker(&waker);
        let mut doorbell = self.doorbell.borrow_mut();
        while self.doorbell_waker.registered.load(Ordering::Relaxed) <= SPARE_DOORBELL_WAKERS {
            match Pin::new(&mut *doorbell).poll_next(&mut doorbell_cx) {
                Poll::Ready(rang) => return Poll::Ready(rang),
                Poll::Pending => {
                    self.doorbell_waker
                        .registered
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Poll::Pending
    }
}

/// The waker a consumer registers on its doorbell: wakes the parked task and
/// counts the registrations glommio holds. glommio wakes (by value) exactly
/// the registrations it drops, all on the consumer's executor.
#[derive(Default)]
struct DoorbellWaker {
    /// Registrations glommio holds and has not woken yet.
    registered: AtomicUsize,
    task: parking_lot::Mutex<Option<Waker>>,
}

impl DoorbellWaker {
    /// Wake the parked task (from its own executor: glommio's wakers are
    /// not woken from other threads).
    fn wake_task(&self) {
        if let Some(task) = self.task.lock().as_ref() {
            task.wake_by_ref();
        }
    }

    fn set_task(&self, waker: &Waker) {
        let mut task = self.task.lock();
        if !task.as_ref().is_some_and(|t| t.will_wake(waker)) {
            *task = Some(waker.clone());
        }
    }
}

impl Wake for DoorbellWaker {
    fn wake(self: Arc<Self>) {
        // Saturating: never below zero, whatever glommio does.
        let _ = self
            .registered
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_task();
    }
}
