//! A phase's snapshot and counters → `PhaseResult`: latency per group, the
//! loss accounting against the driver's log, server cost, a reconnect
//! storm's re-opens and answers (checked against the driver's history),
//! targets checked; then its JSON and CDF plot written to the out dir.

use std::path::Path;

use hdrhistogram::Histogram;

use crate::pg::History;
use crate::procstat::{ThreadDelta, CPU_SOURCE};
use crate::requests::{Kind, RequestStats};
use crate::results::{
    at_most, holds, BurstResult, GroupResult, HeartbeatResult, OpenResult, Percentiles, PgRequests,
    PhaseResult, QueryResult, RequestResult, StormResult, ThreadCpu,
};
use crate::scenario::{Phase, Scenario, Service};
use crate::storm::StormStats;
use crate::svg;
use crate::swarm::{End, SessionReport, Snapshot};
use crate::tally::histogram;
use crate::tally::{expected_all, expected_logged, lost_and_extra};

/// Everything measured about one phase.
pub struct PhaseInputs<'a> {
    pub scenario: &'a Scenario,
    pub phase: &'a Phase,
    pub server: &'a str,
    pub secs: f64,
    pub events: u64,
    pub deliveries: u64,
    /// CPU over the window, per thread (schedstat), of the server and of
    /// this harness; the totals are their sums.
    pub server_threads: &'a [ThreadDelta],
    pub harness_threads: &'a [ThreadDelta],
    pub rss_peak: u64,
    pub rss_end: u64,
    pub driver_behind: u64,
    pub upstream_heartbeats: u64,
    /// Requests the PG answered (scenarios with desktops).
    pub pg_requests: Option<PgRequests>,
    /// Seqs of the measured window.
    pub from_seq: u64,
    pub to_seq: u64,
    /// Groups that stopped reading in this phase.
    pub stalled: &'a [usize],
    /// Per agent: seqs of events that named it.
    pub log: &'a [Vec<u64>],
    /// When logged agents' states and calls changed (scenarios that check
    /// query answers).
    pub history: Option<&'a History>,
    pub snapshot: &'a Snapshot,
    /// What the TLS sessions' handshakes agreed (empty in the clear).
    pub tls_negotiated: String,
    pub earlier: &'a [PhaseResult],
    pub out_dir: &'a Path,
}

pub fn phase_result(i: &PhaseInputs<'_>) -> Result<PhaseResult, String> {
    let mut merged = histogram();
    let mut groups = Vec::new();
    for (gi, g) in i.scenario.groups.iter().enumerate() {
        let stalled = i.stalled.contains(&gi);
        let members: Vec<&SessionReport> = i
            .snapshot
            .sessions
            .iter()
            .filter(|s| s.group == gi)
            .collect();
        let mut r = account(&members, i, stalled, g.direct);
        r.name = g.name.clone();
        r.service = format!("{:?}", g.service);
        r.sessions = g.count;
        r.latency = Percentiles::of(&i.snapshot.latency[gi]);
        if !stalled {
            merged
                .add(&i.snapshot.latency[gi])
                .map_err(|e| e.to_string())?;
        }
        groups.push(r);
    }
    let mb = |b: u64| b as f64 / 1e6;
    let ol = &i.snapshot.open_latency;
    let ms = |q: f64| {
        if ol.is_empty() {
            0.0
        } else {
            ol.value_at_quantile(q) as f64 / 1e6
        }
    };
    let cpu_ns: u64 = i.server_threads.iter().map(|t| t.run_ns).sum();
    let harness_cpu_ns: u64 = i.harness_threads.iter().map(|t| t.run_ns).sum();
    let mut result = PhaseResult {
        scenario: i.scenario.name.clone(),
        phase: i.phase.name.clone(),
        server: i.server.into(),
        tls: i.scenario.router.tls,
        tls_negotiated: i.tls_negotiated.clone(),
        receive_time: i.scenario.load.receive_time,
        rate: i.phase.rate.label(),
        measured_secs: i.secs,
        events: i.events,
        events_per_sec: i.events as f64 / i.secs,
        deliveries: i.deliveries,
        deliveries_per_sec: i.deliveries as f64 / i.secs,
        cpu_source: CPU_SOURCE.into(),
        // No deliveries (an idle phase): no per-delivery cost.
        cpu_ns_per_delivery: if i.deliveries == 0 {
            0.0
        } else {
            cpu_ns as f64 / i.deliveries as f64
        },
        cpu_cores: cpu_ns as f64 / 1e9 / i.secs,
        harness_cpu_cores: harness_cpu_ns as f64 / 1e9 / i.secs,
        threads: thread_rows(i),
        rss_peak_mb: mb(i.rss_peak),
        rss_end_mb: mb(i.rss_end),
        driver_behind: i.driver_behind,
        upstream_heartbeats: i.upstream_heartbeats,
        heartbeats: HeartbeatResult {
            mode: i.scenario.load.heartbeats.name().into(),
            sent: i.snapshot.heartbeats.sent,
            rounds: i.snapshot.heartbeats.rounds,
            max_round_ms: i.snapshot.heartbeats.max_round_ns as f64 / 1e6,
        },
        unmarked_events: i.snapshot.nr_unmarked,
        latency: Percentiles::of(&merged),
        latency_outside_bursts: i.snapshot.outside_bursts.as_ref().map(Percentiles::of),
        groups,
        open: OpenResult {
            opened: ol.len(),
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            max_ms: if ol.is_empty() {
                0.0
            } else {
                ol.max() as f64 / 1e6
            },
            span_ms: i.snapshot.open_span_ns as f64 / 1e6,
        },
        requests: request_results(i),
        burst: burst_result(i),
        pg_requests: i.pg_requests.clone(),
        all_events: all_events(i)?,
        storm: storm_result(i),
        targets: Vec::new(),
        plot: String::new(),
    };
    result.targets = check_targets(i, &result);
    write_files(i, &mut result, &merged)?;
    Ok(result)
}

/// The server's threads, then the harness's, each busiest first; threads
/// that never ran in the window are left out.
fn thread_rows(i: &PhaseInputs<'_>) -> Vec<ThreadCpu> {
    let mut rows = Vec::new();
    for (process, deltas) in [(i.server, i.server_threads), ("harness", i.harness_threads)] {
        let mut part: Vec<ThreadCpu> = deltas
            .iter()
            .filter(|d| d.runs > 0)
            .map(|d| ThreadCpu::of(process, d, i.secs, i.events))
            .collect();
        part.sort_by(|a, b| b.cpu_cores.total_cmp(&a.cpu_cores).then(a.tid.cmp(&b.tid)));
        rows.extend(part);
    }
    rows
}

/// The requests of every group that sends them in the phase.
fn request_results(i: &PhaseInputs<'_>) -> Vec<RequestResult> {
    let snap = i.snapshot;
    i.scenario
        .groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.sends_requests())
        .filter_map(|(gi, g)| {
            let stats = snap.requests.get(gi)?;
            let unanswered = snap.unanswered.get(gi).copied().unwrap_or(0);
            // A group that sends nothing in this phase gets a row only if
            // something came back anyway.
            let paced = i.scenario.request_rate_per_session(i.phase, gi) > 0.0;
            let seen = stats.sent + stats.wrong_invoke + stats.wrong_type + unanswered;
            if !paced && seen == 0 {
                return None;
            }
            let path = if g.direct { "direct" } else { "router" };
            Some(RequestResult::of(
                &g.name, path, g.count, stats, unanswered, i.secs,
            ))
        })
        .collect()
}

/// Every All Events group's window latency, merged (scenarios with a
/// reconnect storm: the storm's reference).
fn all_events(i: &PhaseInputs<'_>) -> Result<Option<Percentiles>, String> {
    let storms = i
        .scenario
        .groups
        .iter()
        .any(|g| g.reconnect_in_phase.is_some());
    if !storms {
        return Ok(None);
    }
    let mut h = histogram();
    for (gi, g) in i.scenario.groups.iter().enumerate() {
        if g.service == Service::AllEvents && !i.stalled.contains(&gi) {
            h.add(&i.snapshot.latency[gi]).map_err(|e| e.to_string())?;
        }
    }
    Ok(Some(Percentiles::of(&h)))
}

/// The phase's reconnect storm, added up.
fn storm_result(i: &PhaseInputs<'_>) -> Option<StormResult> {
    let storm = i.snapshot.storm.as_ref()?;
    let st = StormStats::of(&storm.reopens, i.history);
    let ms = |ns: u64| ns as f64 / 1e6;
    let pg = i.pg_requests.as_ref();
    let reached = |kind: Kind| pg.map_or(0, |p| p.of_type(kind.name()));
    let queries: Vec<QueryResult> = st
        .kinds
        .iter()
        .map(|k| QueryResult {
            request: k.kind.name().into(),
            sent: k.sent,
            confs: k.confs,
            failures: k.failures.clone(),
            unanswered: k.unanswered,
            mismatched: k.mismatched,
            latency: Percentiles::of(&k.latency),
            reached_pg: reached(k.kind),
        })
        .collect();
    Some(StormResult {
        dropped: st.dropped,
        reopened: st.reopened,
        drop_span_ms: ms(storm.last_drop_ns.saturating_sub(storm.first_drop_ns)),
        storm_ms: ms(storm.until_ns.saturating_sub(storm.first_drop_ns)),
        querying: st.querying,
        answered: st.answered,
        not_answered: st.querying - st.answered,
        answered_in: Percentiles::of(&st.sessions),
        answered_in_p99_all_ms: st.p99_all_ns().map(ms),
        upstream_queries: queries.iter().map(|q| q.reached_pg).sum(),
        queries,
        state_known: st.state_known,
        in_call: st.in_call,
        answers_checked: st.checked,
        mismatched: st.mismatched(),
        mismatch_examples: st.examples.clone(),
        all_events: Percentiles::of(&storm.all_events),
    })
}

fn burst_result(i: &PhaseInputs<'_>) -> Option<BurstResult> {
    let b = i.snapshot.burst.as_ref()?;
    let ms = |ns: u64| ns as f64 / 1e6;
    let unanswered = b.sent.saturating_sub(b.stats.answered());
    Some(BurstResult {
        requested: b.requested,
        write_span_ms: ms(b.written_ns.saturating_sub(b.start_ns)),
        answered_in_ms: ms(b.stats.last_answer_ns.saturating_sub(b.start_ns)),
        requests: RequestResult::of(
            "burst",
            "router",
            b.requested,
            &RequestStats {
                sent: b.sent,
                ..b.stats.clone()
            },
            unanswered,
            0.0,
        ),
        events: Percentiles::of(&b.events),
    })
}

/// Round-trip histograms of every group sending through the router
/// (`direct` false) or straight to the PG (true), merged.
fn merged_requests(i: &PhaseInputs<'_>, direct: bool) -> Histogram<u64> {
    let mut h = histogram();
    for (gi, g) in i.scenario.groups.iter().enumerate() {
        if g.sends_requests() && g.direct == direct {
            if let Some(stats) = i.snapshot.requests.get(gi) {
                let _ = h.add(&stats.latency);
            }
        }
    }
    h
}

/// Deliveries, losses and session ends of one group (a direct group is
/// owed nothing: it is not connected to the server).
fn account(
    members: &[&SessionReport],
    i: &PhaseInputs<'_>,
    stalled: bool,
    direct: bool,
) -> GroupResult {
    let mut r = GroupResult {
        unchecked: stalled,
        ..Default::default()
    };
    for s in members {
        r.opened += s.opened as u32;
        match &s.end {
            Some(End::FailureEvent(_)) => r.failure_events += 1,
            Some(End::Refused(_)) => r.refused += 1,
            Some(End::Closed) | Some(End::Error(_)) => r.closed += 1,
            None => {}
        }
        r.deliveries += s.tally.received;
        r.dup += s.tally.dup;
        r.reorder += s.tally.reorder;
        if stalled || !s.opened {
            continue;
        }
        let lower = i.from_seq.max(s.open_seq + 1);
        let expected = match s.service {
            _ if direct => 0,
            Service::AllEvents => expected_all(lower, i.to_seq),
            _ => s
                .agents
                .iter()
                .map(|&k| expected_logged(&i.log[k as usize], lower, i.to_seq))
                .sum(),
        };
        let (lost, extra) = lost_and_extra(expected, &s.tally);
        r.expected += expected;
        r.lost += lost;
        r.extra += extra;
    }
    r
}

fn check_targets(i: &PhaseInputs<'_>, r: &PhaseResult) -> Vec<crate::results::TargetCheck> {
    let t = &i.phase.targets;
    let mut checks = Vec::new();
    if let Some(limit) = t.p99_ms {
        checks.push(at_most("p99", r.latency.p99_us / 1e3, limit, "ms"));
    }
    if let Some(limit) = t.p999_ms {
        checks.push(at_most("p99.9", r.latency.p999_us / 1e3, limit, "ms"));
    }
    let outside = r.latency_outside_bursts.as_ref();
    for (name, limit, actual) in [
        (
            "p99 outside bursts",
            t.p99_outside_bursts_ms,
            outside.map(|p| p.p99_us),
        ),
        (
            "p99.9 outside bursts",
            t.p999_outside_bursts_ms,
            outside.map(|p| p.p999_us),
        ),
    ] {
        match (limit, actual) {
            (Some(limit), Some(us)) => checks.push(at_most(name, us / 1e3, limit, "ms")),
            (Some(_), None) => checks.push(holds(name, false, "the phase has no bursts".into())),
            _ => {}
        }
    }
    if let Some(limit) = t.cpu_ns_per_delivery {
        checks.push(at_most(
            "router CPU/delivery",
            r.cpu_ns_per_delivery,
            limit,
            "ns",
        ));
    }
    if let Some(limit) = t.rss_mb {
        checks.push(at_most("router RSS peak", r.rss_peak_mb, limit, "MB"));
    }
    if t.zero_loss {
        let (l, d, o) = r.lost_dup_reorder();
        let extra: u64 = r.groups.iter().map(|g| g.extra).sum();
        let actual = format!("lost {l}, dup {d}, reordered {o}, extra {extra}");
        checks.push(holds(
            "zero lost/dup/reordered",
            l + d + o + extra == 0,
            actual,
        ));
    }
    if t.stalled_cut {
        let cut = i.stalled.iter().all(|&gi| {
            let g = &r.groups[gi];
            g.failure_events + g.closed == g.sessions
        });
        let actual: Vec<String> = i
            .stalled
            .iter()
            .map(|&gi| {
                let g = &r.groups[gi];
                format!(
                    "{}: {} FAILURE_EVENT, {} closed",
                    g.name, g.failure_events, g.closed
                )
            })
            .collect();
        checks.push(holds(
            "stalled client cut",
            cut && !i.stalled.is_empty(),
            actual.join("; "),
        ));
    }
    if let Some(limit) = t.rss_growth_mb {
        let base = i.earlier.last().map(|p| p.rss_peak_mb).unwrap_or(0.0);
        checks.push(at_most(
            "RSS growth over previous phase",
            r.rss_peak_mb - base,
            limit,
            "MB",
        ));
    }
    if let Some(rel) = &t.p99_within_pct_of {
        let base = i
            .earlier
            .iter()
            .find(|p| p.phase == rel.phase)
            .and_then(|p| p.group(&rel.group))
            .map(|g| g.latency.p99_us);
        let now = r.group(&rel.group).map(|g| g.latency.p99_us);
        if let (Some(base), Some(now)) = (base, now) {
            let limit = base * (1.0 + rel.pct / 100.0) / 1e3;
            let mut c = at_most(
                &format!("{} p99 vs {}", rel.group, rel.phase),
                now / 1e3,
                limit,
                "ms",
            );
            c.target = format!(
                "≤ {limit:.3} ms ({} p99 {:.3} ms + {}%)",
                rel.phase,
                base / 1e3,
                rel.pct
            );
            checks.push(c);
        }
    }
    if t.all_open {
        let open: u32 = r
            .groups
            .iter()
            .map(|g| g.opened - g.failure_events - g.closed)
            .sum();
        let want: u32 = r.groups.iter().map(|g| g.sessions).sum();
        checks.push(holds(
            "every session open",
            open == want,
            format!("{open}/{want} open"),
        ));
    }
    if let Some(limit) = t.open_span_ms {
        checks.push(at_most("connect → all open", r.open.span_ms, limit, "ms"));
    }
    if let Some(limit) = t.request_p99_added_us {
        let (router, direct) = (merged_requests(i, false), merged_requests(i, true));
        if router.is_empty() || direct.is_empty() {
            checks.push(holds(
                "request p99 added by the router",
                false,
                format!(
                    "no round trips ({} through the router, {} direct)",
                    router.len(),
                    direct.len()
                ),
            ));
        } else {
            let us = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64 / 1e3;
            let (via, straight) = (us(&router), us(&direct));
            let mut c = at_most(
                "request p99 added by the router",
                via - straight,
                limit,
                "µs",
            );
            c.actual = format!(
                "{:.1} µs (router p99 {via:.1} µs over {} requests, direct p99 {straight:.1} µs over {})",
                via - straight,
                router.len(),
                direct.len()
            );
            checks.push(c);
        }
    }
    if t.requests_answered {
        let mut all: Vec<&RequestResult> = r.requests.iter().collect();
        all.extend(r.burst.as_ref().map(|b| &b.requests));
        let pass = !all.is_empty() && all.iter().all(|q| q.all_answered());
        let actual: Vec<String> = all
            .iter()
            .map(|q| format!("{} ({}): {}", q.group, q.path, q.answers()))
            .collect();
        checks.push(holds(
            "every request answered, by its InvokeID",
            pass,
            actual.join("; "),
        ));
    }
    if let Some(b) = &t.burst_added_ms {
        let base = i
            .earlier
            .iter()
            .find(|p| p.phase == b.phase)
            .map(|p| p.latency.p999_us);
        match (&r.burst, base) {
            (Some(burst), Some(base)) if burst.events.count > 0 => {
                let added = (burst.events.max_us - base) / 1e3;
                let mut c = at_most("delivery delay added by the burst", added, b.ms, "ms");
                c.actual = format!(
                    "{added:.3} ms (slowest of {} deliveries read during the burst {:.3} ms, {} p99.9 {:.3} ms)",
                    burst.events.count,
                    burst.events.max_us / 1e3,
                    b.phase,
                    base / 1e3
                );
                checks.push(c);
            }
            _ => checks.push(holds(
                "delivery delay added by the burst",
                false,
                format!(
                    "no burst deliveries, or no phase {:?} before this one",
                    b.phase
                ),
            )),
        }
    }
    storm_targets(i, r, &mut checks);
    if let Some(ratio) = t.nats_ratio {
        checks.push(crate::results::TargetCheck {
            name: "deliveries/s vs NATS".into(),
            target: format!("≥ {ratio}×"),
            actual: "see `ctirouter-perf compare`".into(),
            pass: true,
            note: "checked by compare".into(),
        });
    }
    checks
}

/// The reconnect storm's targets.
fn storm_targets(
    i: &PhaseInputs<'_>,
    r: &PhaseResult,
    checks: &mut Vec<crate::results::TargetCheck>,
) {
    let t = &i.phase.targets;
    let storm = r.storm.as_ref();
    let no_storm = |name: &str| holds(name, false, "the phase had no reconnect storm".into());
    if let Some(limit) = t.upstream_requests_in_storm {
        let name = "storm queries that reached the PG";
        match (storm, &r.pg_requests) {
            (Some(st), Some(_)) => {
                let mut c = at_most(name, st.upstream_queries as f64, limit as f64, "requests");
                c.actual = st
                    .queries
                    .iter()
                    .map(|q| format!("{} {} of {} sent", q.request, q.reached_pg, q.sent))
                    .collect::<Vec<_>>()
                    .join(", ");
                checks.push(c);
            }
            _ => checks.push(no_storm(name)),
        }
    }
    if let Some(limit) = t.answer_p99_ms {
        let name = "OPEN_CONF → both answers, p99 over every session";
        match storm {
            Some(st) => {
                let actual = st.answered_in_p99_all_ms.unwrap_or(f64::INFINITY);
                let mut c = at_most(name, actual, limit, "ms");
                c.actual = format!(
                    "{} ({} of {} sessions answered; {} failed, unanswered or not re-opened)",
                    st.answered_in_p99_all_ms
                        .map_or("over 1% not answered".into(), |p| format!("{p:.3} ms")),
                    st.answered,
                    st.querying,
                    st.not_answered
                );
                if !actual.is_finite() {
                    c.note = "more than 1% of the sessions not answered".into();
                }
                checks.push(c);
            }
            None => checks.push(no_storm(name)),
        }
    }
    if let Some(ratio) = t.all_events_p99_ratio {
        let name = "All Events p99 during the storm vs the calm phase";
        let calm = i
            .earlier
            .last()
            .and_then(|p| p.all_events.as_ref().map(|a| (p.phase.clone(), a.p99_us)));
        match (storm, calm) {
            (Some(st), Some((calm_name, calm_us))) if st.all_events.count > 0 && calm_us > 0.0 => {
                let now = st.all_events.p99_us;
                let mut c = at_most(name, now / calm_us, ratio, "×");
                c.actual = format!(
                    "{:.2}× ({:.3} ms over {} deliveries in {:.0} ms of storm; {calm_name} p99 {:.3} ms)",
                    now / calm_us,
                    now / 1e3,
                    st.all_events.count,
                    st.storm_ms,
                    calm_us / 1e3
                );
                checks.push(c);
            }
            _ => checks.push(holds(
                name,
                false,
                "no storm deliveries, or no phase before this one (run the calm phase too)".into(),
            )),
        }
    }
    if t.all_reopened {
        let name = "every dropped session re-opened";
        match storm {
            Some(st) => checks.push(holds(
                name,
                st.dropped > 0 && st.reopened == st.dropped,
                format!("{}/{} re-opened", st.reopened, st.dropped),
            )),
            None => checks.push(no_storm(name)),
        }
    }
    if t.answers_match_stream {
        let name = "every answer says what the PG's stream said";
        match storm {
            Some(st) if st.answers_checked => {
                let confs: u64 = st.queries.iter().map(|q| q.confs).sum();
                let mut actual = format!("{} of {confs} answers disagree", st.mismatched);
                if let Some(e) = st.mismatch_examples.first() {
                    actual += &format!(" (e.g. {e})");
                }
                checks.push(holds(name, confs > 0 && st.mismatched == 0, actual));
            }
            _ => checks.push(no_storm(name)),
        }
    }
}

fn write_files(
    i: &PhaseInputs<'_>,
    r: &mut PhaseResult,
    merged: &Histogram<u64>,
) -> Result<(), String> {
    let stem = file_stem(i.server, &i.scenario.name, &i.phase.name);
    let mut series = vec![("all sessions".to_string(), svg::cdf_points(merged))];
    if i.scenario.groups.len() > 1 {
        for (gi, g) in i.scenario.groups.iter().enumerate() {
            let h = &i.snapshot.latency[gi];
            if !h.is_empty() {
                series.push((g.name.clone(), svg::cdf_points(h)));
            }
        }
    }
    let title = format!(
        "{} {} / {} ({}): p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms",
        i.server,
        i.scenario.name,
        i.phase.name,
        r.rate,
        r.latency.p50_us / 1e3,
        r.latency.p99_us / 1e3,
        r.latency.p999_us / 1e3
    );
    r.plot = format!("{stem}-cdf.svg");
    write(&i.out_dir.join(&r.plot), &svg::cdf_svg(&title, &series))?;
    let json = serde_json::to_string_pretty(r).map_err(|e| e.to_string())?;
    write(&i.out_dir.join(format!("{stem}.json")), &json)
}

/// `fanout-100-max-rate`, or `nats-fanout-100-max-rate` for peers.
pub fn file_stem(server: &str, scenario: &str, phase: &str) -> String {
    if server == "ctirouter" {
        format!("{scenario}-{phase}")
    } else {
        format!("{server}-{scenario}-{phase}")
    }
}

pub fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
