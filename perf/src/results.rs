//! What one measured phase produced, as plain data (serialized to JSON): rates,
//! server cost, latency percentiles per group, delivery accounting, session
//! opens, and each target with its verdict. Building blocks only; no I/O here.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::requests::RequestStats;

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
        Percentiles {
            count: h.len(),
            p50_us: us(0.50),
            p90_us: us(0.90),
            p99_us: us(0.99),
            p999_us: us(0.999),
            max_us: h.max() as f64 / 1_000.0,
        }
    }
}

/// One group of sessions in a phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupResult {
    pub name: String,
    pub service: String,
    pub sessions: u32,
    pub opened: u32,
    /// Sessions that got FAILURE_EVENT (the router cut them).
    pub failure_events: u32,
    /// Sessions closed without FAILURE_EVENT, refused, or in error.
    pub closed: u32,
    pub refused: u32,
    pub deliveries: u64,
    pub expected: u64,
    pub lost: u64,
    pub dup: u64,
    pub reorder: u64,
    /// Deliveries the session was never owed (a routing error).
    pub extra: u64,
    /// Accounting skipped (a stalled group).
    pub unchecked: bool,
    pub latency: Percentiles,
}

/// Opening sessions during the phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OpenResult {
    pub opened: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// First connect to last OPEN (storms).
    pub span_ms: f64,
}

/// The requests of one group (or of the burst) in a phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestResult {
    pub group: String,
    /// `router`, or `direct` (straight to the PG, the reference).
    pub path: String,
    pub sessions: u32,
    /// Requests written in the measured window (or in the burst).
    pub sent: u64,
    pub per_sec: f64,
    /// Answered by their own confirmation.
    pub confs: u64,
    /// FAILURE_CONF by status (docs/protocol.md §5.10).
    pub failure_confs: BTreeMap<u32, u64>,
    /// CONTROL_FAILURE_CONF by FailureCode (docs/protocol.md §5.12).
    pub control_failure_confs: BTreeMap<u16, u64>,
    /// Another reply type with the request's InvokeID.
    pub wrong_type: u64,
    /// Replies with an InvokeID the session had not in flight.
    pub wrong_invoke: u64,
    /// Still without an answer after the drain.
    pub unanswered: u64,
    /// Write → confirmation read (confirmations only), µs.
    pub latency: Percentiles,
}

impl RequestResult {
    pub fn of(
        group: &str,
        path: &str,
        sessions: u32,
        stats: &RequestStats,
        unanswered: u64,
        secs: f64,
    ) -> RequestResult {
        RequestResult {
            group: group.into(),
            path: path.into(),
            sessions,
            sent: stats.sent,
            per_sec: if secs > 0.0 {
                stats.sent as f64 / secs
            } else {
                0.0
            },
            confs: stats.confs,
            failure_confs: stats.failures.clone(),
            control_failure_confs: stats.control_failures.clone(),
            wrong_type: stats.wrong_type,
            wrong_invoke: stats.wrong_invoke,
            unanswered,
            latency: Percentiles::of(&stats.latency),
        }
    }

    /// FAILURE_CONF and CONTROL_FAILURE_CONF together.
    pub fn failed(&self) -> u64 {
        self.failure_confs.values().sum::<u64>() + self.control_failure_confs.values().sum::<u64>()
    }

    /// Every request answered, by its own InvokeID and reply type.
    pub fn all_answered(&self) -> bool {
        self.unanswered == 0
            && self.wrong_invoke == 0
            && self.wrong_type == 0
            && self.confs + self.failed() == self.sent
    }

    /// `sent S, N CONF, FAILURE_CONF {status: n}, ...`: for targets and details.
    pub fn answers(&self) -> String {
        let mut s = format!("sent {}, {} CONF", self.sent, self.confs);
        if !self.failure_confs.is_empty() {
            s += &format!(", FAILURE_CONF {:?}", self.failure_confs);
        }
        if !self.control_failure_confs.is_empty() {
            s += &format!(", CONTROL_FAILURE_CONF {:?}", self.control_failure_confs);
        }
        s + &format!(
            ", unanswered {}, wrong InvokeID {}, wrong type {}",
            self.unanswered, self.wrong_invoke, self.wrong_type
        )
    }
}

/// The phase's burst of requests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BurstResult {
    pub requested: u32,
    /// First write to last write (one harness thread writes them), ms.
    pub write_span_ms: f64,
    /// First write to last answer read, ms.
    pub answered_in_ms: f64,
    pub requests: RequestResult,
    /// Deliveries read from the first write until 20 ms after the last answer.
    pub events: Percentiles,
}

/// Requests as the PG (the driver) saw them in the window and drain.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PgRequests {
    /// Answered on the router's upstream session.
    pub from_router: u64,
    /// Answered on direct sessions.
    pub direct: u64,
    /// Of those, bodies that did not decode (FAILURE_CONF 25).
    pub bad: u64,
    /// Answered on the router's upstream session, by message type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_type: BTreeMap<String, u64>,
}

impl PgRequests {
    /// What came between `before` and these counts.
    pub fn since(&self, before: &PgRequests) -> PgRequests {
        PgRequests {
            from_router: self.from_router - before.from_router,
            direct: self.direct - before.direct,
            bad: self.bad - before.bad,
            by_type: self
                .by_type
                .iter()
                .map(|(t, &n)| (t.clone(), n - before.of_type(t)))
                .filter(|&(_, n)| n > 0)
                .collect(),
        }
    }

    /// Requests of type `name` the router sent the PG.
    pub fn of_type(&self, name: &str) -> u64 {
        self.by_type.get(name).copied().unwrap_or(0)
    }
}

/// One query type of a reconnect storm.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueryResult {
    /// `QUERY_AGENT_STATE_REQ` or `SNAPSHOT_DEVICE_REQ`.
    pub request: String,
    pub sent: u64,
    /// Answered by its own confirmation.
    pub confs: u64,
    /// Failure answers (`FAILURE_CONF status`, `CONTROL_FAILURE_CONF code`,
    /// `wrong type T`): not answers.
    pub failures: BTreeMap<String, u64>,
    /// No answer after the drain.
    pub unanswered: u64,
    /// Confirmations that disagree with the PG's stream.
    pub mismatched: u64,
    /// The session's OPEN_CONF → this confirmation read, µs.
    pub latency: Percentiles,
    /// Of these requests, how many reached the PG from the router in the
    /// phase (window and drain).
    pub reached_pg: u64,
}

/// A reconnect storm: sessions that dropped and re-opened, their queries
/// and the All Events deliveries read meanwhile.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StormResult {
    /// Sessions that dropped, and of them those that opened again.
    pub dropped: u64,
    pub reopened: u64,
    /// First drop → last drop (one harness thread closes them), ms.
    pub drop_span_ms: f64,
    /// First drop → 20 ms after the last session was re-opened and
    /// answered (the time All Events deliveries count as read during the
    /// storm), ms.
    pub storm_ms: f64,
    /// Sessions that sent the queries, those whose every query got its
    /// confirmation, and the rest (a failure, no answer, not re-opened).
    pub querying: u64,
    pub answered: u64,
    pub not_answered: u64,
    /// OPEN_CONF → the last of a session's answers (answered sessions), µs.
    pub answered_in: Percentiles,
    /// The p99 of the same over every querying session, counting one not
    /// answered as slower than any, ms (`None`: over 1% not answered).
    pub answered_in_p99_all_ms: Option<f64>,
    pub queries: Vec<QueryResult>,
    /// Of the dropped sessions' agents: those whose state an
    /// AGENT_STATE_EVENT had told before the drop, and those with a call at
    /// their instrument then (when answers are checked).
    pub state_known: u64,
    pub in_call: u64,
    /// Whether answers were checked against the PG's stream, how many
    /// disagreed, and the first few.
    pub answers_checked: bool,
    pub mismatched: u64,
    pub mismatch_examples: Vec<String>,
    /// All Events deliveries read during the storm (`storm_ms`), µs.
    pub all_events: Percentiles,
    /// QUERY_AGENT_STATE_REQ + SNAPSHOT_DEVICE_REQ the PG got from the
    /// router in the phase.
    pub upstream_queries: u64,
}

/// The swarm's HEARTBEAT_REQs in the measured window. A round is one pass
/// of the swarm's loop that sent at least one; while it writes them the
/// swarm's one thread reads nothing, so a round as long as a latency stall
/// puts that stall on the harness, not the router.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HeartbeatResult {
    /// `synchronized` or `spread`.
    pub mode: String,
    pub sent: u64,
    pub rounds: u64,
    /// The longest round, first write to last, ms.
    pub max_round_ms: f64,
}

/// One thread's CPU over the measured window (from its schedstat).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ThreadCpu {
    /// The server's name (`ctirouter`, `nats`, `redis`) or `harness`.
    pub process: String,
    pub tid: u32,
    /// Its comm (/proc/PID/task/TID/comm).
    pub name: String,
    /// ns on CPU ÷ window: share of one core.
    pub cpu_cores: f64,
    /// Timeslices run (times put on a CPU) per second.
    pub runs_per_sec: f64,
    /// ns on CPU ÷ timeslices, µs.
    pub us_per_run: f64,
    /// Timeslices ÷ events the driver sent in the window.
    pub runs_per_event: f64,
    /// Started during the window (counted from 0).
    pub started: bool,
    /// Gone before the window's end: counted up to the last second it was
    /// seen in.
    pub ended: bool,
}

impl ThreadCpu {
    pub fn of(
        process: &str,
        d: &crate::procstat::ThreadDelta,
        secs: f64,
        events: u64,
    ) -> ThreadCpu {
        let per_sec = |x: f64| if secs > 0.0 { x / secs } else { 0.0 };
        ThreadCpu {
            process: process.into(),
            tid: d.tid,
            name: d.comm.clone(),
            cpu_cores: per_sec(d.run_ns as f64 / 1e9),
            runs_per_sec: per_sec(d.runs as f64),
            us_per_run: if d.runs == 0 {
                0.0
            } else {
                d.run_ns as f64 / d.runs as f64 / 1e3
            },
            runs_per_event: if events == 0 {
                0.0
            } else {
                d.runs as f64 / events as f64
            },
            started: d.started,
            ended: d.ended,
        }
    }
}

/// A target of the issue and how the phase did against it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub name: String,
    pub target: String,
    pub actual: String,
    pub pass: bool,
    /// "by how much" when missed.
    pub note: String,
}

/// Everything one phase measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseResult {
    pub scenario: String,
    pub phase: String,
    /// `ctirouter`, `nats` or `redis`.
    pub server: String,
    /// The swarm's sessions spoke TLS to the router (`run --tls`).
    pub tls: bool,
    /// What their handshakes agreed (the first session's): version and
    /// cipher suite.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tls_negotiated: String,
    /// When a delivery counted as received: `read` or `kernel` (perf/src/clock.rs).
    pub receive_time: crate::clock::ReceiveTime,
    pub rate: String,
    pub measured_secs: f64,
    pub events: u64,
    pub events_per_sec: f64,
    pub deliveries: u64,
    pub deliveries_per_sec: f64,
    /// Where CPU comes from: `schedstat` (/proc/PID/task/*/schedstat, ns on
    /// CPU summed over the process's threads).
    pub cpu_source: String,
    /// Server CPU (all threads) over the window / deliveries.
    pub cpu_ns_per_delivery: f64,
    /// Server CPU over the window in cores (1.0 = one core busy).
    pub cpu_cores: f64,
    /// The harness's own CPU over the window, in cores (it shares the machine).
    pub harness_cpu_cores: f64,
    /// Per thread of the server and of the harness, busiest first.
    pub threads: Vec<ThreadCpu>,
    pub rss_peak_mb: f64,
    pub rss_end_mb: f64,
    /// Events the driver sent more than 1 ms after their due time.
    pub driver_behind: u64,
    pub upstream_heartbeats: u64,
    /// The sessions' heartbeats (the swarm's own cost).
    pub heartbeats: HeartbeatResult,
    pub unmarked_events: u64,
    pub latency: Percentiles,
    /// Deliveries of the events sent outside the phase's bursts (phases
    /// with bursts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_outside_bursts: Option<Percentiles>,
    pub groups: Vec<GroupResult>,
    pub open: OpenResult,
    /// Requests per sending group (scenarios with desktops only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<RequestResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<BurstResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_requests: Option<PgRequests>,
    /// Every All Events group's deliveries of the window, merged (scenarios
    /// with a reconnect storm).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all_events: Option<Percentiles>,
    /// The phase's reconnect storm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storm: Option<StormResult>,
    pub targets: Vec<TargetCheck>,
    /// The CDF plot written for this phase (file name in the out dir).
    pub plot: String,
}

impl PhaseResult {
    pub fn lost_dup_reorder(&self) -> (u64, u64, u64) {
        self.groups
            .iter()
            .filter(|g| !g.unchecked)
            .fold((0, 0, 0), |(l, d, r), g| {
                (l + g.lost, d + g.dup, r + g.reorder)
            })
    }

    pub fn group(&self, name: &str) -> Option<&GroupResult> {
        self.groups.iter().find(|g| g.name == name)
    }
}

/// `actual` against an upper bound `limit`: the check and, if missed, by how much.
pub fn at_most(name: &str, actual: f64, limit: f64, unit: &str) -> TargetCheck {
    let pass = actual <= limit;
    let note = if pass || limit <= 0.0 {
        String::new()
    } else {
        format!(
            "missed by {:.0}% ({:.3} {unit} over)",
            (actual / limit - 1.0) * 100.0,
            actual - limit
        )
    };
    TargetCheck {
        name: name.into(),
        target: format!("≤ {limit} {unit}"),
        actual: format!("{actual:.3} {unit}"),
        pass,
        note,
    }
}

/// A yes/no target.
pub fn holds(name: &str, pass: bool, actual: String) -> TargetCheck {
    TargetCheck {
        name: name.into(),
        target: "yes".into(),
        actual,
        pass,
        note: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_bound_says_by_how_much() {
        let c = at_most("p99", 1.2, 1.0, "ms");
        assert!(!c.pass);
        assert!(c.note.starts_with("missed by 20%"), "{}", c.note);
        assert!(at_most("p99", 0.5, 1.0, "ms").pass);
    }

    #[test]
    fn pg_requests_by_type_subtract() {
        let at = |n: u64, q: u64, s: u64| PgRequests {
            from_router: n,
            by_type: [
                ("QUERY_AGENT_STATE_REQ".to_string(), q),
                ("SNAPSHOT_DEVICE_REQ".to_string(), s),
            ]
            .into_iter()
            .filter(|&(_, n)| n > 0)
            .collect(),
            ..Default::default()
        };
        let d = at(4_010, 2_000, 2_010).since(&at(10, 0, 10));
        assert_eq!(d.from_router, 4_000);
        assert_eq!(d.of_type("QUERY_AGENT_STATE_REQ"), 2_000);
        assert_eq!(d.of_type("SNAPSHOT_DEVICE_REQ"), 2_000);
        assert_eq!(at(5, 0, 5).since(&at(5, 0, 5)).by_type.len(), 0);
        assert_eq!(d.of_type("HOLD_CALL_REQ"), 0);
    }

    #[test]
    fn percentiles_are_in_microseconds() {
        let mut h = crate::tally::histogram();
        for v in 1..=1000u64 {
            h.record(v * 1_000).unwrap();
        }
        let p = Percentiles::of(&h);
        assert!((p.p50_us - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.max_us - 1000.0).abs() < 1.0, "{p:?}");
    }
}
