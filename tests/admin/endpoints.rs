//! `/metrics`, `/healthz`, `/status.json` and `/status` of a running router
//! (docs/operations.md): numbers move as sessions open and events flow,
//! health follows the upstream session.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ctirouter::proto::constants::service;
use ctirouter::proto::Version;
use prometheus_parse::{Scrape, Value};
use serde_json::Value as Json;
use testkit::*;

use crate::{admin_addr, get, wait_for, BIN};

/// `serve` on the simulator (fast, so events flow) with its admin address.
fn simulated_router() -> (Proc, SocketAddr) {
    let mut args = SERVE.to_vec();
    args.extend_from_slice(&["--sim-calls-per-sec", "50"]);
    let mut router = Proc::spawn_listening(BIN, &args);
    let admin = admin_addr(&mut router);
    (router, admin)
}

fn scrape(admin: SocketAddr) -> Scrape {
    let reply = get(admin, "/metrics");
    assert_eq!(reply.status, 200);
    assert!(
        reply.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        reply.content_type
    );
    Scrape::parse(reply.body.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text")
}

/// The value of the sample `name` whose labels include `labels`, summed
/// over the samples that match (e.g. every shard).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{name} is not a number: {other:?}"),
        })
        .collect();
    assert!(!matching.is_empty(), "no sample {name} {labels:?}");
    matching.iter().sum()
}

fn status_json(admin: SocketAddr) -> Json {
    let reply = get(admin, "/status.json");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "application/json");
    serde_json::from_str(&reply.body).expect("status.json parses")
}

#[test]
fn metrics_count_sessions_and_deliveries_as_traffic_flows() {
    let (router, admin) = simulated_router();
    let before = scrape(admin);
    assert!(before.docs["ctirouter_events_total"].starts_with("Events ingest took"));
    assert_eq!(value(&before, "ctirouter_sessions", &[]), 0.0);
    assert_eq!(value(&before, "ctirouter_upstream_open", &[]), 1.0);
    assert_eq!(
        value(&before, "ctirouter_info", &[("source", "simulator")]),
        1.0
    );
    let mut clients: Vec<Client> = (0..3)
        .map(|_| open_when_upstream_up(router.addr(), Version::MAX, WAIT).0)
        .collect();
    let after = wait_for("3 sessions and deliveries", Duration::from_secs(10), || {
        let s = scrape(admin);
        let all_events = value(&s, "ctirouter_shard_sessions", &[("service", "all_events")]);
        (value(&s, "ctirouter_sessions", &[]) == 3.0
            && all_events == 3.0
            && value(&s, "ctirouter_deliveries_total", &[]) >= 30.0)
            .then_some(s)
    });
    assert!(value(&after, "ctirouter_events_total", &[]) > 0.0);
    assert!(value(&after, "ctirouter_accepted_total", &[]) >= 3.0);
    let latency = after
        .samples
        .iter()
        .find(|s| s.metric == "ctirouter_fanout_latency_seconds")
        .expect("the fan-out latency histogram");
    let Value::Histogram(buckets) = &latency.value else {
        panic!("not a histogram: {:?}", latency.value)
    };
    let inf = buckets.last().expect("buckets");
    assert!(
        inf.less_than.is_infinite() && inf.count > 0.0,
        "{buckets:?}"
    );
    // Clients keep reading: a close brings the gauges back down.
    for c in &mut clients {
        c.collect_for(Duration::from_millis(10));
    }
    drop(clients);
    wait_for("sessions closed", Duration::from_secs(10), || {
        let s = scrape(admin);
        let shards = value(&s, "ctirouter_shard_sessions", &[]);
        (value(&s, "ctirouter_sessions", &[]) == 0.0 && shards == 0.0).then_some(())
    });
}

#[test]
fn status_json_counts_sessions_by_service_and_the_page_carries_its_script() {
    let (router, admin) = simulated_router();
    let _all = open_when_upstream_up(router.addr(), Version::MAX, WAIT);
    let mut monitor = Client::connect(router.addr());
    monitor.open(&OpenSpec::new(Version::MAX, service::CLIENT_MONITOR));
    let status = wait_for("two sessions in status.json", WAIT, || {
        let s = status_json(admin);
        (s["sessions"]["open"] == 2).then_some(s)
    });
    assert_eq!(status["source"], "simulator");
    assert_eq!(status["health"]["ok"], true);
    assert_eq!(status["upstream"]["open"], true);
    assert_eq!(status["pg_status"]["bits"], 0);
    assert_eq!(status["sessions"]["by_service"]["all_events"], 1);
    assert_eq!(status["sessions"]["by_service"]["client_monitor"], 1);
    assert_eq!(status["sessions"]["by_shard"].as_array().unwrap().len(), 2);
    assert!(status["counters"]["events"].as_u64().unwrap() > 0);
    for p in ["p50", "p99", "p999", "max", "count"] {
        assert!(status["latency_us"][p].is_number(), "{p}: {status}");
    }
    let page = get(admin, "/status");
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    assert!(page.body.contains("<script>"), "the page's own script");
    assert!(page.body.contains("fetch(\"/status.json\""));
    assert!(!page.body.contains("src=\"http"), "no external assets");
    assert_eq!(get(admin, "/nope").status, 404);
}

/// The fake PG's phases, set by the test.
const UP: u8 = 0;
const AWAY: u8 = 1;
const BACK: u8 = 2;

#[test]
fn healthz_follows_the_upstream_session_away_and_back() {
    let phase = Arc::new(AtomicU8::new(UP));
    let script_phase = phase.clone();
    let fake = FakePg::scripted(move |_, conn| {
        if script_phase.load(Ordering::SeqCst) == AWAY {
            return; // refused: closed at once
        }
        conn.expect_open();
        conn.accept_open(Version::MAX);
        while !conn.eof && !conn.stopping() && script_phase.load(Ordering::SeqCst) != AWAY {
            conn.serve_heartbeats(Duration::from_millis(50));
        }
    });
    let mut router = router(BIN, &upstream_toml(&[fake.addr], 200), &[]);
    let admin = admin_addr(&mut router);
    let healthz = || get(admin, "/healthz");
    wait_for("healthy on side A", Duration::from_secs(10), || {
        (healthz().status == 200).then_some(())
    });
    assert_eq!(healthz().body, "ok\n");
    let status = status_json(admin);
    assert_eq!(status["upstream"]["side"], "A");
    assert_eq!(status["upstream"]["state"], "open");
    assert_eq!(status["source"], "upstream");

    phase.store(AWAY, Ordering::SeqCst);
    let down = wait_for(
        "unhealthy once the PG is away",
        Duration::from_secs(10),
        || {
            let r = healthz();
            (r.status == 503).then_some(r)
        },
    );
    assert!(down.body.contains("not open"), "{}", down.body);
    assert_eq!(status_json(admin)["upstream"]["state"], "reconnecting");
    let s = scrape(admin);
    assert!(value(&s, "ctirouter_upstream_losses_total", &[]) >= 1.0);
    assert_eq!(value(&s, "ctirouter_upstream_open", &[]), 0.0);
    assert_eq!(
        value(&s, "ctirouter_pg_status", &[]),
        8.0,
        "CTI Server offline"
    );

    phase.store(BACK, Ordering::SeqCst);
    wait_for("healthy again", Duration::from_secs(10), || {
        (healthz().status == 200).then_some(())
    });
    assert!(value(&scrape(admin), "ctirouter_upstream_opens_total", &[]) >= 2.0);
}
