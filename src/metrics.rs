//! Router-wide counters. Cores add to them once per batch (not per event), so
//! the shared cache lines stay cold; readers take a snapshot.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam::utils::CachePadded;
use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// Highest latency the histograms track: 60 s in nanoseconds.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// A latency histogram in nanoseconds, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("constant bounds are valid")
}

/// Counters shared by every core.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Events ingest took from its source.
    pub nr_events: CachePadded<AtomicU64>,
    /// Upstream frames that failed to decode (counted, skipped).
    pub nr_bad_upstream_frames: CachePadded<AtomicU64>,
    /// Event copies appended to session buffers.
    pub nr_deliveries: CachePadded<AtomicU64>,
    /// Socket writes issued by shards.
    pub nr_writes: CachePadded<AtomicU64>,
    /// Sessions cut for exceeding their output bound.
    pub nr_slow_consumer_cuts: CachePadded<AtomicU64>,
    /// Connections accepted.
    pub nr_accepted: CachePadded<AtomicU64>,
    /// OPEN_REQs refused because max_sessions was reached.
    pub nr_refused: CachePadded<AtomicU64>,
    /// Connections closed at accept: max_pending_opens was reached.
    pub nr_refused_pending: CachePadded<AtomicU64>,
    /// Connections closed at accept: the process was out of file descriptors.
    pub nr_refused_fd_limit: CachePadded<AtomicU64>,
    /// Connections closed for not completing OPEN within open_timeout_secs.
    pub nr_open_timeouts: CachePadded<AtomicU64>,
    /// Connections currently held, open or not.
    pub nr_connected: CachePadded<AtomicU64>,
    /// Connections currently held that are not open yet (max_pending_opens).
    pub nr_pending: CachePadded<AtomicU64>,
    /// Sessions currently open, or being opened (max_sessions).
    pub nr_sessions: CachePadded<AtomicU64>,
    /// Client frames that were malformed.
    pub nr_bad_client_frames: CachePadded<AtomicU64>,
    /// Calls the tracker forgot because they never ended (aged out).
    pub nr_calls_aged_out: CachePadded<AtomicU64>,
    /// The router is at `max_sessions` (set when an OPEN_REQ is first
    /// refused, cleared below it): the limit is logged once per episode.
    pub at_session_limit: AtomicBool,
    /// Likewise for `max_pending_opens`.
    pub at_pending_limit: AtomicBool,
    /// Fan-out latency: ingest received the event → its shard issued the
    /// batch's writes. Shards merge their local histograms in every ~100 ms.
    pub fanout_latency: Mutex<Option<Histogram<u64>>>,
}

/// A point-in-time copy of [`Metrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub nr_events: u64,
    pub nr_bad_upstream_frames: u64,
    pub nr_deliveries: u64,
    pub nr_writes: u64,
    pub nr_slow_consumer_cuts: u64,
    pub nr_accepted: u64,
    pub nr_refused: u64,
    pub nr_refused_pending: u64,
    pub nr_refused_fd_limit: u64,
    pub nr_open_timeouts: u64,
    pub nr_connected: u64,
    pub nr_pending: u64,
    pub nr_sessions: u64,
    pub nr_bad_client_frames: u64,
    pub nr_calls_aged_out: u64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Add a possibly negative amount (gauges such as `nr_connected`).
    pub fn add_signed(counter: &AtomicU64, n: i64) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            nr_events: get(&self.nr_events),
            nr_bad_upstream_frames: get(&self.nr_bad_upstream_frames),
            nr_deliveries: get(&self.nr_deliveries),
            nr_writes: get(&self.nr_writes),
            nr_slow_consumer_cuts: get(&self.nr_slow_consumer_cuts),
            nr_accepted: get(&self.nr_accepted),
            nr_refused: get(&self.nr_refused),
            nr_refused_pending: get(&self.nr_refused_pending),
            nr_refused_fd_limit: get(&self.nr_refused_fd_limit),
            nr_open_timeouts: get(&self.nr_open_timeouts),
            nr_connected: get(&self.nr_connected),
            nr_pending: get(&self.nr_pending),
            nr_sessions: get(&self.nr_sessions),
            nr_bad_client_frames: get(&self.nr_bad_client_frames),
            nr_calls_aged_out: get(&self.nr_calls_aged_out),
        }
    }

    /// Fold a shard's local latency histogram into the shared one.
    pub fn merge_latency(&self, local: &mut Histogram<u64>) {
        if local.is_empty() {
            return;
        }
        let mut shared = self.fanout_latency.lock();
        let _ = shared.get_or_insert_with(latency_histogram).add(&*local);
        local.reset();
    }

    /// A copy of the fan-out latency histogram so far.
    pub fn fanout_latency(&self) -> Histogram<u64> {
        self.fanout_latency
            .lock()
            .clone()
            .unwrap_or_else(latency_histogram)
    }

    /// Prometheus text exposition of the snapshot.
    pub fn prometheus(&self) -> String {
        let s = self.snapshot();
        let rows = [
            ("ctirouter_events_total", s.nr_events),
            (
                "ctirouter_bad_upstream_frames_total",
                s.nr_bad_upstream_frames,
            ),
            ("ctirouter_deliveries_total", s.nr_deliveries),
            ("ctirouter_writes_total", s.nr_writes),
            (
                "ctirouter_slow_consumer_cuts_total",
                s.nr_slow_consumer_cuts,
            ),
            ("ctirouter_accepted_total", s.nr_accepted),
            ("ctirouter_refused_total", s.nr_refused),
            ("ctirouter_refused_pending_total", s.nr_refused_pending),
            ("ctirouter_refused_fd_limit_total", s.nr_refused_fd_limit),
            ("ctirouter_open_timeouts_total", s.nr_open_timeouts),
            ("ctirouter_connected", s.nr_connected),
            ("ctirouter_pending_opens", s.nr_pending),
            ("ctirouter_sessions", s.nr_sessions),
            ("ctirouter_bad_client_frames_total", s.nr_bad_client_frames),
            ("ctirouter_calls_aged_out_total", s.nr_calls_aged_out),
        ];
        rows.iter()
            .map(|(name, value)| format!("{name} {value}\n"))
            .collect()
    }
}
