//! Router-wide counters. Cores add to them once per batch (not per event), so
//! the shared cache lines stay cold; readers take a snapshot. `serve` logs a
//! [`Snapshot`] and the fan-out latency ([`LatencySummary`]) every
//! `runtime.stats_log_secs` and when it stops; the admin listener
//! (`crate::admin`) exposes the same numbers over HTTP. Gauges (sessions held,
//! the upstream's state) change once per open, close or state change, never
//! per event. Beside them: per-shard totals (added at the end of each
//! batch), the rings' own counters (`crate::ring`), proxied requests by type
//! and result with their latency, and the upstream heartbeats' round trip,
//! the last two in lock-free [`AtomicHistogram`]s.

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
            /// Deliveries, bytes and slow-consumer cuts per shard.
            pub shard_totals: ShardTotals,
            /// Proxied requests by type and result, and their latency.
            pub requests: RequestMetrics,
            /// Round trips of the upstream heartbeats (HEARTBEAT_REQ sent → its
            /// HEARTBEAT_CONF read), recorded by ingest's upstream session.
            pub upstream_heartbeat_rtt: AtomicHistogram,
            /// The ingest ⇄ shard rings' counters, set once by `Router::start`.
            pub rings: std::sync::OnceLock<Vec<RingCounters>>,
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
    /// Supervisor sessions refused: max_supervisor_sessions was reached.
    nr_refused_supervisors => "refused_max_supervisor_sessions" Counter,
    /// Supervisor sessions with their own session on the CTI Server
    /// (opening, open, or being reopened after a failover).
    supervisor_sessions => "supervisor_sessions" Gauge,
    /// Connections closed at accept: max_pending_opens was reached.
    nr_refused_pending => "refused_pending" Counter,
    /// Connections closed at accept: the process was out of file descriptors.
    nr_refused_fd_limit => "refused_fd_limit" Counter,
    /// Connections to the TLS port closed because their TLS handshake
    /// failed (a certificate refused, a clear-text client, …).
    nr_tls_handshake_failures => "tls_handshake_failures" Counter,
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

/// Upper bounds of the latency histograms' buckets, in seconds: 10 µs to
/// 10 s, 1-2.5-5 per decade (the router's p99 is tens of µs to a few ms on
/// the development VMs, docs/design.md §5; a storm reaches tens of ms; a
/// request's answer takes the CTI Server's time, a timeout 15 s).
pub const LATENCY_BUCKETS_S: [f64; 19] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram in [`LATENCY_BUCKETS_S`] made of atomics: recorded
/// from any thread without a lock (a few relaxed adds), for what happens
/// per request or per heartbeat, not per event.
#[derive(Debug)]
pub struct AtomicHistogram {
    /// Per bucket (not cumulative); the last is above 10 s.
    buckets: [AtomicU64; LATENCY_BUCKETS_S.len() + 1],
    sum_ns: AtomicU64,
    last_ns: AtomicU64,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        AtomicHistogram::new()
    }
}

/// A point-in-time copy of an [`AtomicHistogram`].
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound in seconds, count in that bucket), not cumulative.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_secs: f64,
    /// The last value recorded, in seconds (0 before any).
    pub last_secs: f64,
}

impl AtomicHistogram {
    pub const fn new() -> AtomicHistogram {
        AtomicHistogram {
            buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS_S.len() + 1],
            sum_ns: AtomicU64::new(0),
            last_ns: AtomicU64::new(0),
        }
    }

    pub fn record(&self, latency: std::time::Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let secs = latency.as_secs_f64();
        let bucket = LATENCY_BUCKETS_S
            .iter()
            .position(|&bound| secs <= bound)
            .unwrap_or(LATENCY_BUCKETS_S.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.last_ns.store(ns, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        HistogramSnapshot {
            buckets: LATENCY_BUCKETS_S
                .iter()
                .copied()
                .zip(counts.iter().copied())
                .collect(),
            count: counts.iter().sum(),
            sum_secs: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            last_secs: self.last_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

/// How a proxied request ended (`ctirouter_requests_total{result}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestResult {
    /// The CTI Server answered with its CONF.
    Proxied,
    /// The CTI Server answered with FAILURE_CONF or CONTROL_FAILURE_CONF.
    Failed,
    /// The router answered it without asking the CTI Server: from its own
    /// state, an answer it keeps, or an identical request in flight.
    Local,
    /// The router refused it: CTI Server offline, service not granted
    /// upstream, out of the session's scope, too many in flight.
    Refused,
    /// No answer within `requests.timeout_secs`.
    Timeout,
    /// The upstream session was lost while it was in flight.
    Lost,
}

impl RequestResult {
    pub const ALL: [RequestResult; 6] = [
        RequestResult::Proxied,
        RequestResult::Failed,
        RequestResult::Local,
        RequestResult::Refused,
        RequestResult::Timeout,
        RequestResult::Lost,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RequestResult::Proxied => "proxied",
            RequestResult::Failed => "failed",
            RequestResult::Local => "local",
            RequestResult::Refused => "refused",
            RequestResult::Timeout => "timeout",
            RequestResult::Lost => "lost",
        }
    }
}

/// Message types counted one by one; a (never proxied) type above is
/// counted under the last.
const REQUEST_TYPES: usize = 512;

/// Proxied requests by message type and result, and their latency by
/// result: ingest records each as it ends (request read by its shard →
/// answer handed to the shard's ring). Atomics, recorded per request, never
/// per event.
#[derive(Debug)]
pub struct RequestMetrics {
    counts: Box<[[AtomicU64; RequestResult::ALL.len()]]>,
    latency: [AtomicHistogram; RequestResult::ALL.len()],
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            counts: (0..REQUEST_TYPES).map(|_| Default::default()).collect(),
            latency: Default::default(),
        }
    }
}

impl RequestMetrics {
    pub fn record(&self, message_type: u32, result: RequestResult, latency: std::time::Duration) {
        let row = (message_type as usize).min(REQUEST_TYPES - 1);
        if let Some(counts) = self.counts.get(row) {
            counts[result as usize].fetch_add(1, Ordering::Relaxed);
        }
        self.latency[result as usize].record(latency);
    }

    /// Every (message type, result, count) counted so far.
    pub fn counts(&self) -> Vec<(u32, RequestResult, u64)> {
        let mut out = Vec::new();
        for (message_type, row) in self.counts.iter().enumerate() {
            for (result, count) in RequestResult::ALL.iter().zip(row) {
                match count.load(Ordering::Relaxed) {
                    0 => {}
                    n => out.push((message_type as u32, *result, n)),
                }
            }
        }
        out
    }

    pub fn latency(&self, result: RequestResult) -> HistogramSnapshot {
        self.latency[result as usize].snapshot()
    }
}

/// One shard's totals (only that shard writes them).
#[derive(Debug, Default)]
pub struct ShardTotal {
    /// Event copies queued for its sessions (added at the end of each batch).
    pub deliveries: AtomicU64,
    /// Bytes of those copies.
    pub bytes: AtomicU64,
    /// Its sessions cut at their output bound.
    pub slow_consumer_cuts: AtomicU64,
    /// Socket writes it issued (clear sends and TLS records alike).
    pub writes: AtomicU64,
    /// Bytes its sockets took (for a TLS session, ciphertext).
    pub bytes_written: AtomicU64,
}

/// Where a shard's socket writes are counted: router-wide (`nr_writes`)
/// and in its own [`ShardTotal`].
#[derive(Clone, Copy)]
pub struct WriteCounts<'a> {
    metrics: &'a Metrics,
    shard: Option<&'a ShardTotal>,
}

impl<'a> WriteCounts<'a> {
    pub fn new(metrics: &'a Metrics, shard: usize) -> WriteCounts<'a> {
        WriteCounts {
            metrics,
            shard: metrics.shard_totals.of(shard),
        }
    }

    /// One write was issued and the socket took `bytes` of it (0 when it
    /// failed or took nothing).
    pub fn wrote(self, bytes: usize) {
        Metrics::add(&self.metrics.nr_writes, 1);
        if let Some(total) = self.shard {
            Metrics::add(&total.writes, 1);
            Metrics::add(&total.bytes_written, bytes as u64);
        }
    }
}

/// [`ShardTotal`] for every shard a router can run, each on its own cache
/// line.
#[derive(Debug)]
pub struct ShardTotals(Box<[CachePadded<ShardTotal>]>);

impl Default for ShardTotals {
    fn default() -> Self {
        ShardTotals(
            (0..crate::config::MAX_SHARDS)
                .map(|_| CachePadded::default())
                .collect(),
        )
    }
}

impl ShardTotals {
    pub fn of(&self, shard: usize) -> Option<&ShardTotal> {
        self.0.get(shard).map(|t| &**t)
    }
}

/// One ring's counters as the admin listener names them.
#[derive(Debug)]
pub struct RingCounters {
    /// `to_shard` (events and answers) or `to_ingest` (control).
    pub direction: &'static str,
    pub shard: usize,
    pub stats: crate::ring::StatsHandle,
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
    fn atomic_histograms_bucket_and_requests_count_by_type_and_result() {
        use std::time::Duration;
        let h = AtomicHistogram::new();
        h.record(Duration::from_micros(5));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(30));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets[0], (0.000_01, 1), "5 µs is under 10 µs");
        assert_eq!(s.buckets[8], (0.005, 1), "3 ms is between 2.5 and 5 ms");
        assert_eq!(
            s.buckets.iter().map(|&(_, n)| n).sum::<u64>(),
            2,
            "30 s is past 10 s"
        );
        assert!((s.sum_secs - 30.003_005).abs() < 1e-9, "{}", s.sum_secs);
        assert_eq!(s.last_secs, 30.0);

        let requests = RequestMetrics::default();
        requests.record(64, RequestResult::Proxied, Duration::from_millis(2));
        requests.record(64, RequestResult::Proxied, Duration::from_millis(4));
        requests.record(999_999, RequestResult::Refused, Duration::ZERO);
        assert_eq!(
            requests.counts(),
            [
                (64, RequestResult::Proxied, 2),
                (REQUEST_TYPES as u32 - 1, RequestResult::Refused, 1)
            ]
        );
        assert_eq!(requests.latency(RequestResult::Proxied).count, 2);
        assert_eq!(requests.latency(RequestResult::Failed).count, 0);
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
