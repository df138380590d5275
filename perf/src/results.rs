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
