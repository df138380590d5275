//! Router-wide counters. Cores add to them once per batch (not per event), so
//! the shared cache lines stay cold; readers take a snapshot. `serve` logs a
//! [`Snapshot`] and the fan-out latency ([`LatencySummary`]) every
//! `runtime.stats_log_secs` and when it stops; the admin listener
//! (`crate::admin`) exposes the same numbers over HTTP. Gauges (sessions held,
//! the upstream's state) change once per open, close or state change, never
//! per event.

use std::fmt;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam::utils::CachePadded;
use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::ids::Services;

/// Highest latency the histograms track: 60 s in nanoseconds.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// A latency histogram in nanoseconds, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("constant bounds are valid")
}

/// Whether a number only grows (a count since start) or goes up and down
/// (what is held now): the Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One counter as the admin listener exposes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Described {
    /// The short name (the log line's, and the Prometheus name after
    /// `ctirouter_`).
    pub name: &'static str,
    pub kind: Kind,
    /// Its doc comment.
    pub help: &'static str,
    pub value: u64,
}

/// Declares the router's counters once: the shared atomics in [`Metrics`],
/// their point-in-time copy [`Snapshot`], the log line's short names (in
/// declaration order), and each one's kind and help (its doc comment).
macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $field:ident => $name:literal $kind:ident, )*) => {
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
            /// Open sessions per shard and service, changed on open and close only.
            pub sessions_by_shard: SessionsByShard,
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

            /// Every counter with its kind and help, in declaration order.
            pub fn described(&self) -> [Described; counters!(@count $($field)*)] {
                [ $( Described {
                    name: $name,
                    kind: Kind::$kind,
                    help: concat!($($doc),*),
                    value: self.$field,
                }, )* ]
            }
        }
    };
    (@count $($field:ident)*) => { 0 $( + counters!(@one $field) )* };
    (@one $field:ident) => { 1 };
}

counters! {
    /// Events ingest took from its source.
    nr_events => "events" Counter,
    /// Event copies appended to session buffers.
    nr_deliveries => "deliveries" Counter,
    /// Socket writes issued by shards.
    nr_writes => "writes" Counter,
    /// Sessions currently open, or being opened (max_sessions).
    nr_sessions => "sessions" Gauge,
    /// Connections currently held, open or not.
    nr_connected => "connected" Gauge,
    /// Connections currently held that are not open yet (max_pending_opens).
    nr_pending => "pending_opens" Gauge,
    /// Connections accepted.
    nr_accepted => "accepted" Counter,
    /// OPEN_REQs refused because max_sessions was reached.
    nr_refused => "refused_max_sessions" Counter,
    /// Connections closed at accept: max_pending_opens was reached.
    nr_refused_pending => "refused_pending" Counter,
    /// Connections closed at accept: the process was out of file descriptors.
    nr_refused_fd_limit => "refused_fd_limit" Counter,
    /// Connections closed for not completing OPEN within open_timeout_secs.
    nr_open_timeouts => "open_timeouts" Counter,
    /// Sessions cut for exceeding their output bound.
    nr_slow_consumer_cuts => "slow_consumer_cuts" Counter,
    /// Client frames that were malformed.
    nr_bad_client_frames => "bad_client_frames" Counter,
    /// Upstream frames that failed to decode (counted, skipped).
    nr_bad_upstream_frames => "bad_upstream_frames" Counter,
    /// Calls the tracker forgot because they never ended (aged out).
    nr_calls_aged_out => "calls_aged_out" Counter,
    /// Replies from the upstream that answered no request of the router's
    /// (late, or an unknown InvokeID): dropped, never fanned out.
    nr_stray_upstream_replies => "stray_upstream_replies" Counter,
    /// Requests sent to the upstream on a session's behalf.
    nr_requests_proxied => "requests_proxied" Counter,
    /// Requests the router answered from what it knows (docs/requests.md
    /// §6): the upstream never saw them.
    nr_requests_local => "requests_local" Counter,
    /// Connection Monitor sessions opened (docs/requests.md §1).
    nr_connection_monitor_opens => "connection_monitor_opens" Counter,
    /// Connection Monitor sessions ended, however they ended.
    nr_connection_monitor_closes => "connection_monitor_closes" Counter,
    /// Whether the event source is open (1) or not (0): the upstream CTI
    /// Server session is open, or the simulator or a replay runs.
    upstream_open => "upstream_open" Gauge,
    /// The upstream side whose session is open, or was last: 1 = A, 2 = B,
    /// 0 = none yet (and for the simulator or a replay).
    upstream_side => "upstream_side" Gauge,
    /// PGStatus bits sessions are told (docs/protocol.md §5.7; 0 = all well,
    /// 8 = CTI Server offline).
    pg_status => "pg_status" Gauge,
    /// Upstream sessions opened: the first, and each return after a loss.
    nr_upstream_opens => "upstream_opens" Counter,
    /// Upstream sessions lost; each starts a failover (side A and B tried
    /// alternately).
    nr_upstream_losses => "upstream_losses" Counter,
    /// Config reloads applied (SIGHUP or POST /reload): the allow-list and
    /// limits new sessions get.
    nr_reloads => "reloads" Counter,
    /// Config reloads refused (no --config file, or a file that does not
    /// load or validate): the running configuration was kept.
    nr_reloads_failed => "reloads_failed" Counter,
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

/// The services whose open sessions are counted per shard, under the names
/// the admin listener gives them. A session granted several is counted in
/// each; agent-state-only control counts as client control.
pub const COUNTED_SERVICES: [(&str, Services); 6] = [
    ("all_events", Services::ALL_EVENTS),
    ("client_events", Services::CLIENT_EVENTS),
    ("peripheral_monitor", Services::PERIPHERAL_MONITOR),
    ("client_monitor", Services::CLIENT_MONITOR),
    (
        "client_control",
        Services(Services::CLIENT_CONTROL.bits() | Services::AGENT_STATE_CONTROL_ONLY.bits()),
    ),
    ("call_data_update", Services::CALL_DATA_UPDATE),
];

/// Open sessions of one shard per [`COUNTED_SERVICES`] entry.
#[derive(Debug, Default)]
pub struct ShardSessions([AtomicU64; COUNTED_SERVICES.len()]);

/// [`ShardSessions`] for every shard a router can run (`config::MAX_SHARDS`;
/// the ones not running stay 0), each on its own cache line.
#[derive(Debug)]
pub struct SessionsByShard(Box<[CachePadded<ShardSessions>]>);

impl Default for SessionsByShard {
    fn default() -> Self {
        SessionsByShard(
            (0..crate::config::MAX_SHARDS)
                .map(|_| CachePadded::default())
                .collect(),
        )
    }
}

impl SessionsByShard {
    /// A session granted `services` opened on `shard`.
    pub fn opened(&self, shard: usize, services: Services) {
        self.change(shard, services, 1);
    }

    /// A session granted `services` closed on `shard`.
    pub fn closed(&self, shard: usize, services: Services) {
        self.change(shard, services, -1);
    }

    fn change(&self, shard: usize, services: Services, by: i64) {
        let Some(counts) = self.0.get(shard) else {
            return;
        };
        for (count, (_, bits)) in counts.0.iter().zip(COUNTED_SERVICES) {
            if services.bits() & bits.bits() != 0 {
                Metrics::add_signed(count, by);
            }
        }
    }

    /// The open sessions of `shard`, per [`COUNTED_SERVICES`] entry.
    pub fn of(&self, shard: usize) -> [u64; COUNTED_SERVICES.len()] {
        let mut out = [0; COUNTED_SERVICES.len()];
        if let Some(counts) = self.0.get(shard) {
            for (o, c) in out.iter_mut().zip(counts.0.iter()) {
                *o = c.load(Ordering::Relaxed);
            }
        }
        out
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
    fn counters_and_gauges_carry_their_kind_and_help() {
        let metrics = Metrics::default();
        let described = metrics.snapshot().described();
        let sessions = described.iter().find(|d| d.name == "sessions").unwrap();
        assert_eq!(sessions.kind, Kind::Gauge);
        assert!(sessions.help.trim().starts_with("Sessions currently open"));
        let events = described.iter().find(|d| d.name == "events").unwrap();
        assert_eq!(events.kind, Kind::Counter);
        assert!(described.iter().all(|d| !d.help.trim().is_empty()));
    }

    #[test]
    fn sessions_are_counted_per_shard_and_service() {
        let by_shard = SessionsByShard::default();
        let desktop = Services::CLIENT_EVENTS | Services::AGENT_STATE_CONTROL_ONLY;
        by_shard.opened(1, desktop);
        by_shard.opened(1, Services::ALL_EVENTS);
        by_shard.opened(crate::config::MAX_SHARDS, Services::ALL_EVENTS); // ignored
        assert_eq!(by_shard.of(0), [0; COUNTED_SERVICES.len()]);
        assert_eq!(by_shard.of(1), [1, 1, 0, 0, 1, 0]);
        by_shard.closed(1, desktop);
        assert_eq!(by_shard.of(1), [1, 0, 0, 0, 0, 0]);
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
