//! Router-wide counters. Cores add to them once per batch (not per event), so
//! the shared cache lines stay cold; readers take a snapshot. `serve` logs a
//! [`Snapshot`] and the fan-out latency ([`LatencySummary`]) every
//! `runtime.stats_log_secs` and when it stops.

use std::fmt;

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

/// Declares the router's counters once: the shared atomics in [`Metrics`],
/// their point-in-time copy [`Snapshot`], and the log line's short names
/// (in declaration order).
macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $field:ident => $name:literal, )*) => {
        /// Counters shared by every core.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $( $(#[doc = $doc])* pub $field: CachePadded<AtomicU64>, )*
            /// The router is at `max_sessions` (set when an OPEN_REQ is first
            /// refused, cleared below it): the limit is logged once per episode.
            pub at_session_limit: AtomicBool,
            /// Likewise for `max_pending_opens`.
            pub at_pending_limit: AtomicBool,
            /// Client connections the open-file limit leaves room for, counted by
            /// `Router::start` once every core holds its descriptors (0: not
            /// counted, no bound). Beyond it a new connection is closed at once, so
            /// the process never runs out of descriptors for its upstream sockets.
            pub connection_budget: AtomicU64,
            /// Likewise for `connection_budget`.
            pub at_connection_budget: AtomicBool,
            /// Fan-out latency: ingest received the event → its shard issued the
            /// batch's writes. Shards merge their local histograms in every ~100 ms.
            pub fanout_latency: Mutex<Option<Histogram<u64>>>,
        }

        /// A point-in-time copy of [`Metrics`]' counters.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Snapshot {
            $( $(#[doc = $doc])* pub $field: u64, )*
        }

        impl Metrics {
            pub fn snapshot(&self) -> Snapshot {
                Snapshot {
                    $( $field: self.$field.load(Ordering::Relaxed), )*
                }
            }
        }

        impl Snapshot {
            /// Every counter as (short name, value), in declaration order.
            pub fn fields(&self) -> [(&'static str, u64); counters!(@count $($field)*)] {
                [ $( ($name, self.$field), )* ]
            }
        }
    };
    (@count $($field:ident)*) => { 0 $( + counters!(@one $field) )* };
    (@one $field:ident) => { 1 };
}

counters! {
    /// Events ingest took from its source.
    nr_events => "events",
    /// Event copies appended to session buffers.
    nr_deliveries => "deliveries",
    /// Socket writes issued by shards.
    nr_writes => "writes",
    /// Sessions currently open, or being opened (max_sessions).
    nr_sessions => "sessions",
    /// Connections currently held, open or not.
    nr_connected => "connected",
    /// Connections currently held that are not open yet (max_pending_opens).
    nr_pending => "pending_opens",
    /// Connections accepted.
    nr_accepted => "accepted",
    /// OPEN_REQs refused because max_sessions was reached.
    nr_refused => "refused_max_sessions",
    /// Connections closed at accept: max_pending_opens was reached.
    nr_refused_pending => "refused_pending",
    /// Connections closed at accept: the process was out of file descriptors.
    nr_refused_fd_limit => "refused_fd_limit",
    /// Connections closed for not completing OPEN within open_timeout_secs.
    nr_open_timeouts => "open_timeouts",
    /// Sessions cut for exceeding their output bound.
    nr_slow_consumer_cuts => "slow_consumer_cuts",
    /// Client frames that were malformed.
    nr_bad_client_frames => "bad_client_frames",
    /// Upstream frames that failed to decode (counted, skipped).
    nr_bad_upstream_frames => "bad_upstream_frames",
    /// Calls the tracker forgot because they never ended (aged out).
    nr_calls_aged_out => "calls_aged_out",
    /// Replies from the upstream that answered no request of the router's
    /// (late, or an unknown InvokeID): dropped, never fanned out.
    nr_stray_upstream_replies => "stray_upstream_replies",
    /// Requests sent to the upstream on a session's behalf.
    nr_requests_proxied => "requests_proxied",
    /// Requests the router answered from what it knows (docs/requests.md
    /// §6): the upstream never saw them.
    nr_requests_local => "requests_local",
    /// Connection Monitor sessions opened (docs/requests.md §1).
    nr_connection_monitor_opens => "connection_monitor_opens",
    /// Connection Monitor sessions ended, however they ended.
    nr_connection_monitor_closes => "connection_monitor_closes",
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

    /// Fold a shard's local latency histogram into the shared one.
    pub fn merge_latency(&self, local: &mut Histogram<u64>) {
        if local.is_empty() {
            return;
        }
        let mut shared = self.fanout_latency.lock();
        let _ = shared.get_or_insert_with(latency_histogram).add(&*local);
        local.reset();
    }

    /// The fan-out latency percentiles so far.
    pub fn latency_summary(&self) -> LatencySummary {
        LatencySummary::of(&self.fanout_latency())
    }

    /// A copy of the fan-out latency histogram so far.
    pub fn fanout_latency(&self) -> Histogram<u64> {
        self.fanout_latency
            .lock()
            .clone()
            .unwrap_or_else(latency_histogram)
    }
}

/// One log line's worth: `events=… deliveries=… sessions=…`, every counter
/// under its short name (gauges first after events: what is held now).
impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, value)) in self.fields().into_iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{name}={value}")?;
        }
        Ok(())
    }
}

/// Percentiles of a latency histogram, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl LatencySummary {
    pub fn of(histogram: &Histogram<u64>) -> LatencySummary {
        if histogram.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: histogram.len(),
            p50: histogram.value_at_quantile(0.50),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        }
    }
}

/// `n=… p50=…µs p99=…µs p99.9=…µs max=…µs` (`n=0` alone when empty).
impl fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = |ns: u64| ns as f64 / 1_000.0;
        if self.count == 0 {
            return write!(f, "n=0");
        }
        write!(
            f,
            "n={} p50={:.1}µs p99={:.1}µs p99.9={:.1}µs max={:.1}µs",
            self.count,
            us(self.p50),
            us(self.p99),
            us(self.p999),
            us(self.max)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_line_names_every_counter_with_its_value() {
        let metrics = Metrics::default();
        Metrics::add(&metrics.nr_events, 7);
        Metrics::add(&metrics.nr_calls_aged_out, 2);
        Metrics::add_signed(&metrics.nr_sessions, 3);
        Metrics::add_signed(&metrics.nr_sessions, -1);
        let line = metrics.snapshot().to_string();
        assert!(line.starts_with("events=7 "), "{line}");
        assert!(line.contains(" sessions=2 "), "{line}");
        assert!(line.contains(" calls_aged_out=2 "), "{line}");
        // One `name=value` per field of the snapshot.
        let fields = format!("{:?}", metrics.snapshot()).matches(':').count();
        assert_eq!(line.split(' ').count(), fields, "{line}");
    }

    #[test]
    fn latency_summary_reads_the_merged_histograms() {
        let metrics = Metrics::default();
        assert_eq!(metrics.latency_summary().to_string(), "n=0");
        let mut local = latency_histogram();
        for us in 1..=1_000u64 {
            local.record(us * 1_000).unwrap();
        }
        metrics.merge_latency(&mut local);
        assert!(local.is_empty(), "merged and reset");
        let s = metrics.latency_summary();
        assert_eq!(s.count, 1_000);
        assert!((499_000..=501_000).contains(&s.p50), "{s:?}");
        assert!((989_000..=991_000).contains(&s.p99), "{s:?}");
        assert!(s.max >= 999_000, "{s:?}");
        assert!(s.to_string().starts_with("n=1000 p50=50"), "{s}");
    }
}
