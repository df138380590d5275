//! What a person reads: the summary table (printed and in markdown), the
//! target verdicts, and the header every committed result carries (machine,
//! kernel, commit, command). Runs `lscpu`, `uname` and `git` for the header.

use std::fmt::Write as _;
use std::process::Command;

use crate::clock::ReceiveTime;
use crate::results::{Percentiles, PhaseResult, RequestResult};

/// Machine, kernel and commit, as markdown lines.
pub fn header(command: &str) -> String {
    let model = run("lscpu", &[])
        .lines()
        .find_map(|l| l.strip_prefix("Model name:").map(|m| m.trim().to_string()))
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = run("uname", &["-r"]);
    let commit = run("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = if run("git", &["status", "--porcelain"]).is_empty() {
        ""
    } else {
        " (dirty)"
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "* machine: {model}, {cores} cores\n* kernel: {}\n* commit: {}{dirty}\n* command: `{command}`\n* load average when written (1/5/15 min): {}\n",
        kernel.trim(),
        commit.trim(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    )
}

fn run(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1e3)
}

fn per_delivery(r: &PhaseResult) -> String {
    if r.deliveries == 0 {
        "–".into()
    } else {
        format!("{:.1}", r.cpu_ns_per_delivery)
    }
}

/// One markdown row per phase (all sessions) and per group when there are several.
pub fn table(results: &[PhaseResult]) -> String {
    let mut s = String::from(
        "| server | scenario / phase | group | rate | deliveries/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | CPU ns/delivery | RSS peak / end MB | lost / dup / reord |\n\
         |---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in results {
        let (l, d, o) = r.lost_dup_reorder();
        let _ = writeln!(
            s,
            "| {}{} | {} / {} | all | {} | {:.0} | {} | {} | {} | {} | {} | {} | {:.1} / {:.1} | {l} / {d} / {o} |",
            r.server, if r.tls { " (TLS)" } else { "" }, r.scenario, r.phase, r.rate, r.deliveries_per_sec,
            ms(r.latency.p50_us), ms(r.latency.p90_us), ms(r.latency.p99_us),
            ms(r.latency.p999_us), ms(r.latency.max_us), per_delivery(r),
            r.rss_peak_mb, r.rss_end_mb,
        );
        if let Some(o) = &r.latency_outside_bursts {
            let _ = writeln!(
                s,
                "| | | events sent outside bursts ({}) | | | {} | {} | {} | {} | {} | | | |",
                o.count,
                ms(o.p50_us),
                ms(o.p90_us),
                ms(o.p99_us),
                ms(o.p999_us),
                ms(o.max_us),
            );
        }
        requests_rows(&mut s, r);
        storm_rows(&mut s, r);
        if r.groups.len() < 2 {
            continue;
        }
        for g in &r.groups {
            let loss = if g.unchecked {
                "not checked".to_string()
            } else {
                format!("{} / {} / {}", g.lost, g.dup, g.reorder)
            };
            let _ =
                writeln!(
                s,
                "| | | {} ({} sessions, {} cut) | | {:.0} | {} | {} | {} | {} | {} | | | {loss} |",
                g.name, g.sessions, g.failure_events + g.closed,
                g.deliveries as f64 / r.measured_secs,
                ms(g.latency.p50_us), ms(g.latency.p90_us), ms(g.latency.p99_us),
                ms(g.latency.p999_us), ms(g.latency.max_us),
            );
        }
    }
    s
}

/// `unanswered U / failed F / wrong id W` of a request row.
fn request_loss(q: &RequestResult) -> String {
    format!(
        "unanswered {} / failed {} / wrong id {}",
        q.unanswered,
        q.failed(),
        q.wrong_invoke + q.wrong_type
    )
}

/// The request rows of a phase: round trips per sending group (through
/// the router, and straight to the PG), the burst, and the deliveries read
/// during the burst. Rate column: requests/s; last column: answers.
fn requests_rows(s: &mut String, r: &PhaseResult) {
    for q in &r.requests {
        let path = if q.path == "direct" {
            "straight to the PG"
        } else {
            "through the router"
        };
        let _ = writeln!(
            s,
            "| | | requests {path}: {} ({} sessions) | | {:.1} req/s | {} | {} | {} | {} | {} | | | {} |",
            q.group, q.sessions, q.per_sec,
            ms(q.latency.p50_us), ms(q.latency.p90_us), ms(q.latency.p99_us),
            ms(q.latency.p999_us), ms(q.latency.max_us), request_loss(q),
        );
    }
    if let Some(b) = &r.burst {
        let q = &b.requests;
        let _ = writeln!(
            s,
            "| | | burst: {} requests through the router (written in {:.1} ms, all answered in {:.1} ms) | | | {} | {} | {} | {} | {} | | | {} |",
            q.sent, b.write_span_ms, b.answered_in_ms,
            ms(q.latency.p50_us), ms(q.latency.p90_us), ms(q.latency.p99_us),
            ms(q.latency.p999_us), ms(q.latency.max_us), request_loss(q),
        );
        let e = &b.events;
        let _ = writeln!(
            s,
            "| | | deliveries read during the burst ({}) | | | {} | {} | {} | {} | {} | | | |",
            e.count,
            ms(e.p50_us),
            ms(e.p90_us),
            ms(e.p99_us),
            ms(e.p999_us),
            ms(e.max_us),
        );
    }
}

/// p50 … max columns of a row.
fn latency_cells(p: &Percentiles) -> String {
    format!(
        "{} | {} | {} | {} | {}",
        ms(p.p50_us),
        ms(p.p90_us),
        ms(p.p99_us),
        ms(p.p999_us),
        ms(p.max_us)
    )
}

/// The rows of a reconnect storm: each query's answer from the session's
/// OPEN_CONF, both answers per session, and the All Events deliveries read
/// during the storm. Last column: what was not an answer, and how many of
/// those requests reached the PG.
fn storm_rows(s: &mut String, r: &PhaseResult) {
    let Some(st) = &r.storm else { return };
    for q in &st.queries {
        let failed: u64 = q.failures.values().sum();
        let _ = writeln!(
            s,
            "| | | storm: OPEN_CONF → {}_CONF ({} sent) | | | {} | | | failed {failed} / unanswered {} / disagree {} / reached the PG {} |",
            q.request.trim_end_matches("_REQ"),
            q.sent,
            latency_cells(&q.latency),
            q.unanswered,
            q.mismatched,
            q.reached_pg,
        );
    }
    let _ = writeln!(
        s,
        "| | | storm: OPEN_CONF → both answers ({} of {} sessions; {} re-opened of {} dropped) | | | {} | | | not answered {} |",
        st.answered,
        st.querying,
        st.reopened,
        st.dropped,
        latency_cells(&st.answered_in),
        st.not_answered,
    );
    let e = &st.all_events;
    let _ = writeln!(
        s,
        "| | | All Events deliveries read during the storm ({}, {:.0} ms) | | | {} | | | |",
        e.count,
        st.storm_ms,
        latency_cells(e),
    );
}

/// Where CPU comes from, said once in every summary.
pub const CPU_NOTE: &str =
    "CPU (server and harness, in the table, details and below) comes from schedstat: \
/proc/PID/task/TID/schedstat field 1 (ns on CPU, the scheduler's own account, not clock ticks) \
summed over the process's threads, sampled at the start of the measured window, every second and \
at its end (a thread that ends in the window counts up to the last second it was seen in). \
Field 3 is the timeslices a thread ran (times put on a CPU): runs/s, µs per run and runs per \
event (events the driver sent in the window) below.";

/// One row per thread of the server and of the harness, per phase.
pub fn threads(results: &[PhaseResult]) -> String {
    let mut s = String::from(
        "| server | scenario / phase | process | thread (tid) | CPU cores | runs/s | µs per run | runs per event |\n\
         |---|---|---|---|---:|---:|---:|---:|\n",
    );
    for r in results {
        for t in &r.threads {
            let mut name = format!("{} ({})", t.name, t.tid);
            if t.started {
                name += ", started in the window";
            }
            if t.ended {
                name += ", ended in the window";
            }
            let _ = writeln!(
                s,
                "| {} | {} / {} | {} | {name} | {:.3} | {:.0} | {:.1} | {:.3} |",
                r.server,
                r.scenario,
                r.phase,
                t.process,
                t.cpu_cores,
                t.runs_per_sec,
                t.us_per_run,
                t.runs_per_event,
            );
        }
    }
    s
}

/// The targets of every phase, one line each.
pub fn targets(results: &[PhaseResult]) -> String {
    let mut s = String::new();
    for r in results {
        for t in &r.targets {
            let verdict = if t.pass { "PASS" } else { "MISS" };
            let _ = writeln!(
                s,
                "* {} / {}: {} {} — actual {} — **{verdict}** {}",
                r.scenario, r.phase, t.name, t.target, t.actual, t.note
            );
        }
    }
    s
}

/// Extra facts per phase: events/s, CPU cores, opens, driver lag.
pub fn details(results: &[PhaseResult]) -> String {
    let mut s = String::new();
    for r in results {
        let _ = writeln!(
            s,
            "* {} / {}: {:.0} events/s over {:.1} s, {} deliveries (latency to the {}), server CPU {:.2} cores, harness CPU {:.2} cores (from {}), driver behind {} events, upstream heartbeats {}, session heartbeats ({}) {} in {} rounds (longest {:.2} ms), unmarked {}, opens {} (p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, span {:.0} ms), plot `{}`",
            r.scenario, r.phase, r.events_per_sec, r.measured_secs, r.deliveries,
            match r.receive_time {
                ReceiveTime::Kernel => "kernel's receive time",
                ReceiveTime::Read => "harness's read",
            },
            r.cpu_cores,
            r.harness_cpu_cores, r.cpu_source,
            r.driver_behind, r.upstream_heartbeats, r.heartbeats.mode, r.heartbeats.sent,
            r.heartbeats.rounds, r.heartbeats.max_round_ms, r.unmarked_events, r.open.opened,
            r.open.p50_ms, r.open.p99_ms, r.open.max_ms, r.open.span_ms, r.plot
        );
        for q in &r.requests {
            let _ = writeln!(
                s,
                "* {} / {}: requests {} ({}): {}",
                r.scenario,
                r.phase,
                q.group,
                q.path,
                q.answers()
            );
        }
        if let Some(b) = &r.burst {
            let _ = writeln!(
                s,
                "* {} / {}: burst of {} requests: written in {:.2} ms by one harness thread, last answer read {:.2} ms after the first write; {}",
                r.scenario,
                r.phase,
                b.requested,
                b.write_span_ms,
                b.answered_in_ms,
                b.requests.answers()
            );
        }
        if let Some(pg) = &r.pg_requests {
            let by_type = if pg.by_type.is_empty() {
                String::new()
            } else {
                let types: Vec<String> =
                    pg.by_type.iter().map(|(t, n)| format!("{t} {n}")).collect();
                format!("; from the router by type: {}", types.join(", "))
            };
            let _ = writeln!(
                s,
                "* {} / {}: the PG (driver) answered {} requests from the router and {} from direct sessions in the window and drain ({} did not decode){by_type}",
                r.scenario, r.phase, pg.from_router, pg.direct, pg.bad
            );
        }
        if let Some(a) = &r.all_events {
            let _ = writeln!(
                s,
                "* {} / {}: All Events deliveries of the window: p50 {} ms, p99 {} ms, p99.9 {} ms, max {} ms ({})",
                r.scenario,
                r.phase,
                ms(a.p50_us),
                ms(a.p99_us),
                ms(a.p999_us),
                ms(a.max_us),
                a.count
            );
        }
        if let Some(st) = &r.storm {
            let checked = if st.answers_checked {
                format!(
                    "; of their agents {} had told their state and {} had a call before the drop; {} answers disagree with the PG's stream{}",
                    st.state_known,
                    st.in_call,
                    st.mismatched,
                    st.mismatch_examples
                        .first()
                        .map_or(String::new(), |e| format!(" (e.g. {e})"))
                )
            } else {
                String::new()
            };
            let failures: Vec<String> = st
                .queries
                .iter()
                .flat_map(|q| {
                    q.failures
                        .iter()
                        .map(move |(f, n)| format!("{} {f}: {n}", q.request))
                })
                .collect();
            let _ = writeln!(
                s,
                "* {} / {}: storm: {} sessions dropped (in {:.1} ms, no CLOSE_REQ), {} re-opened (the phase's opens are the re-opens), {} of {} answered both queries (p99 over all {}){checked}; failures: {}",
                r.scenario,
                r.phase,
                st.dropped,
                st.drop_span_ms,
                st.reopened,
                st.answered,
                st.querying,
                st.answered_in_p99_all_ms
                    .map_or("over 1% not answered".into(), |p| format!("{p:.3} ms")),
                if failures.is_empty() {
                    "none".into()
                } else {
                    failures.join(", ")
                }
            );
        }
    }
    s
}

/// The whole summary document of a run.
pub fn summary_md(title: &str, command: &str, results: &[PhaseResult]) -> String {
    let tls = match results.iter().find(|r| r.tls) {
        Some(r) => format!(
            "* downstream: **TLS on every session** ({}; rustls with ring on both sides, the router's `[tls]` port, a throwaway CA); the upstream is clear\n",
            r.tls_negotiated
        ),
        None => String::new(),
    };
    format!(
        "# {title}\n\n{}{tls}\n## Results\n\n{}\n## Targets\n\n{}\n## Details\n\n{}\n## Threads\n\n{CPU_NOTE}\n\n{}",
        header(command),
        table(results),
        targets(results),
        details(results),
        threads(results)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{at_most, GroupResult};

    #[test]
    fn table_has_a_row_per_phase_and_group() {
        let r = PhaseResult {
            server: "ctirouter".into(),
            scenario: "s".into(),
            phase: "p".into(),
            measured_secs: 1.0,
            groups: vec![
                GroupResult {
                    name: "a".into(),
                    ..Default::default()
                },
                GroupResult {
                    name: "b".into(),
                    unchecked: true,
                    ..Default::default()
                },
            ],
            targets: vec![at_most("p99", 2.0, 1.0, "ms")],
            ..Default::default()
        };
        let t = table(std::slice::from_ref(&r));
        assert_eq!(t.lines().count(), 5);
        assert!(t.contains("not checked"));
        assert!(targets(&[r]).contains("**MISS** missed by 100%"));
    }

    #[test]
    fn thread_rows_and_the_cpu_source_are_in_the_summary() {
        use crate::procstat::ThreadDelta;
        use crate::results::ThreadCpu;
        let d = ThreadDelta {
            tid: 7,
            comm: "shard-0".into(),
            run_ns: 220_000_000,
            runs: 20_000,
            started: false,
            ended: true,
        };
        let r = PhaseResult {
            server: "ctirouter".into(),
            scenario: "s".into(),
            phase: "p".into(),
            cpu_source: "schedstat".into(),
            // 1 s window, 10,000 events: 0.22 core, 11 µs per run, 2 runs per event.
            threads: vec![ThreadCpu::of("ctirouter", &d, 1.0, 10_000)],
            ..Default::default()
        };
        let t = threads(std::slice::from_ref(&r));
        assert!(
            t.contains(
                "| ctirouter | shard-0 (7), ended in the window | 0.220 | 20000 | 11.0 | 2.000 |"
            ),
            "{t}"
        );
        let doc = summary_md("s", "cmd", &[r]);
        assert!(doc.contains("comes from schedstat"));
        assert!(doc.contains("(from schedstat)"));
    }

    #[test]
    fn storm_rows_and_details() {
        use crate::results::{PgRequests, QueryResult, StormResult};
        let q = |name: &str| QueryResult {
            request: name.into(),
            sent: 2_000,
            confs: 1_999,
            failures: [("FAILURE_CONF 15".to_string(), 1)].into_iter().collect(),
            latency: Percentiles {
                p99_us: 1_500.0,
                ..Default::default()
            },
            reached_pg: 2_000,
            ..Default::default()
        };
        let r = PhaseResult {
            scenario: "reconnect-storm".into(),
            phase: "storm".into(),
            pg_requests: Some(PgRequests {
                from_router: 4_000,
                by_type: [("SNAPSHOT_DEVICE_REQ".to_string(), 2_000)]
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
            storm: Some(StormResult {
                dropped: 2_000,
                reopened: 2_000,
                querying: 2_000,
                answered: 1_998,
                not_answered: 2,
                queries: vec![q("QUERY_AGENT_STATE_REQ"), q("SNAPSHOT_DEVICE_REQ")],
                answers_checked: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        let t = table(std::slice::from_ref(&r));
        assert_eq!(t.lines().count(), 7, "{t}");
        assert!(
            t.contains("OPEN_CONF → SNAPSHOT_DEVICE_CONF (2000 sent)"),
            "{t}"
        );
        assert!(t.contains("| 1.500 |"));
        assert!(t.contains("failed 1 / unanswered 0 / disagree 0 / reached the PG 2000"));
        assert!(t.contains("both answers (1998 of 2000 sessions; 2000 re-opened of 2000 dropped)"));
        let d = details(&[r]);
        assert!(
            d.contains("from the router by type: SNAPSHOT_DEVICE_REQ 2000"),
            "{d}"
        );
        assert!(d.contains("2000 sessions dropped"), "{d}");
        assert!(
            d.contains("QUERY_AGENT_STATE_REQ FAILURE_CONF 15: 1"),
            "{d}"
        );
    }

    #[test]
    fn request_rows_follow_the_phase_row() {
        use crate::results::{BurstResult, Percentiles};
        let q = |path: &str| RequestResult {
            group: "desk".into(),
            path: path.into(),
            sessions: 3,
            sent: 10,
            confs: 9,
            failure_confs: [(16, 1)].into_iter().collect(),
            latency: Percentiles {
                p99_us: 52.0,
                ..Default::default()
            },
            ..Default::default()
        };
        let r = PhaseResult {
            requests: vec![q("router"), q("direct")],
            burst: Some(BurstResult {
                requested: 10,
                requests: q("router"),
                ..Default::default()
            }),
            ..Default::default()
        };
        let t = table(std::slice::from_ref(&r));
        assert_eq!(t.lines().count(), 7, "{t}");
        assert!(t.contains("requests through the router: desk (3 sessions)"));
        assert!(t.contains("requests straight to the PG"));
        assert!(t.contains("| 0.052 |"));
        assert!(t.contains("unanswered 0 / failed 1 / wrong id 0"));
        assert!(details(&[r]).contains("FAILURE_CONF {16: 1}"));
    }
}
