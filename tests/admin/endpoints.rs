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
    // Per shard: deliveries and their bytes, added at the end of each batch.
    let per_shard = wait_for("per-shard deliveries", Duration::from_secs(10), || {
        let s = scrape(admin);
        (value(&s, "ctirouter_shard_deliveries_total", &[]) >= 30.0).then_some(s)
    });
    assert!(value(&per_shard, "ctirouter_shard_bytes_total", &[]) >= 30.0 * 8.0);
    assert!(
        value(&per_shard, "ctirouter_shard_deliveries_total", &[])
            <= value(&per_shard, "ctirouter_deliveries_total", &[]),
        "a shard's batch is added after the router-wide count"
    );
    // What the sockets took: at least the OPEN_CONF and events written.
    assert!(value(&per_shard, "ctirouter_shard_written_bytes_total", &[]) >= 30.0 * 8.0);
    assert!(value(&per_shard, "ctirouter_shard_writes_total", &[]) >= 1.0);
    for name in [
        "ctirouter_shard_deliveries_total",
        "ctirouter_shard_bytes_total",
        "ctirouter_shard_writes_total",
        "ctirouter_shard_written_bytes_total",
        "ctirouter_shard_slow_consumer_cuts_total",
    ] {
        for shard in ["0", "1"] {
            value(&per_shard, name, &[("shard", shard)]);
        }
    }
    // The rings: ingest published batches to the shards; every ring has
    // its full-wait and late-wake-up counters.
    assert!(
        value(
            &per_shard,
            "ctirouter_ring_batches_total",
            &[("ring", "to_shard")]
        ) > 0.0
    );
    assert!(
        value(
            &per_shard,
            "ctirouter_ring_batches_total",
            &[("ring", "to_ingest")]
        ) > 0.0
    );
    for name in [
        "ctirouter_ring_full_waits_total",
        "ctirouter_ring_late_wakeups_total",
        "ctirouter_ring_doorbells_total",
    ] {
        for ring in ["to_shard", "to_ingest"] {
            for shard in ["0", "1"] {
                value(&per_shard, name, &[("ring", ring), ("shard", shard)]);
            }
        }
    }
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

/// The count of histogram `name`'s samples whose labels include `labels`.
fn histogram_count(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .sum()
}

/// A fake CTI Server that answers heartbeats, QUERY_AGENT_STATE_REQ with
/// its CONF and any other request with CONTROL_FAILURE_CONF.
fn answering_pg() -> FakePg {
    use ctirouter::proto::constants::msg;
    use ctirouter::proto::msg::{ControlFailureConf, HeartbeatConf, QueryAgentStateConf};
    use ctirouter::proto::Message;
    FakePg::scripted(move |_, conn| {
        let open = conn.expect_open();
        conn.accept_open_granting(Version::MAX, open.services_requested);
        while !conn.stopping() && !conn.eof {
            let Some(frame) = conn.read_frame(Duration::from_millis(50)) else {
                continue;
            };
            let invoke_id = u32::from_be_bytes(frame[8..12].try_into().unwrap());
            let reply: Message = match frame_type(&frame) {
                msg::HEARTBEAT_REQ => HeartbeatConf { invoke_id }.into(),
                msg::CLOSE_REQ => return,
                msg::QUERY_AGENT_STATE_REQ => QueryAgentStateConf {
                    invoke_id,
                    agent_state: 3,
                    ..Default::default()
                }
                .into(),
                _ => ControlFailureConf {
                    invoke_id,
                    failure_code: 4,
                    ..Default::default()
                }
                .into(),
            };
            conn.send(&reply.to_frame(Version::MAX).unwrap());
        }
    })
}

#[test]
fn metrics_count_requests_by_type_and_result_and_the_heartbeat_round_trip() {
    use ctirouter::proto::msg::{QueryAgentStateReq, SetAgentStateReq, SetCallDataReq};
    let fake = answering_pg();
    let toml = format!(
        "{}\n[[clients]]\nclient_id = \"desk\"\nservices = [\"all-events\", \"client-control\"]\n",
        upstream_toml(&[fake.addr], 100)
    );
    let mut router = router(BIN, &toml, &[]);
    let admin = admin_addr(&mut router);
    let spec = OpenSpec::new(Version::MAX, service::ALL_EVENTS | service::CLIENT_CONTROL)
        .client("desk", b"");
    let mut desk = wait_for("a session once the upstream is up", WAIT, || {
        let mut c = Client::connect(router.addr());
        let conf = c.open(&spec);
        (conf.pg_status & 0x08 == 0).then_some(c)
    });
    let before = scrape(admin);
    assert_eq!(
        histogram_count(&before, "ctirouter_request_latency_seconds", &[]),
        0.0
    );

    desk.send(QueryAgentStateReq {
        invoke_id: 41,
        peripheral_id: PID,
        agent_instrument: Some("3001".into()),
        ..Default::default()
    });
    let _ = desk.reply(41);
    desk.send(SetAgentStateReq {
        invoke_id: 42,
        peripheral_id: PID,
        agent_state: 2,
        agent_instrument: Some("3001".into()),
        agent_id: Some("1001".into()),
        ..Default::default()
    });
    let _ = desk.reply(42);
    // Call Data Update is not granted to "desk": the shard refuses it.
    desk.send(SetCallDataReq {
        invoke_id: 43,
        peripheral_id: PID,
        connection_call_id: 7,
        ..Default::default()
    });
    let _ = desk.reply(43);

    let after = wait_for(
        "three requests and a heartbeat",
        Duration::from_secs(10),
        || {
            let s = scrape(admin);
            (histogram_count(&s, "ctirouter_request_latency_seconds", &[]) >= 3.0
                && histogram_count(&s, "ctirouter_upstream_heartbeat_rtt_seconds", &[]) >= 1.0)
                .then_some(s)
        },
    );
    assert_eq!(
        value(
            &after,
            "ctirouter_requests_total",
            &[("type", "SET_AGENT_STATE_REQ"), ("result", "failed")]
        ),
        1.0,
        "the CTI Server's CONTROL_FAILURE_CONF"
    );
    assert_eq!(
        value(
            &after,
            "ctirouter_requests_total",
            &[("type", "QUERY_AGENT_STATE_REQ"), ("result", "proxied")]
        ),
        1.0,
        "the CTI Server's CONF"
    );
    assert_eq!(
        value(
            &after,
            "ctirouter_requests_total",
            &[("type", "SET_CALL_DATA_REQ"), ("result", "refused")]
        ),
        1.0,
        "refused by the shard: the service is not granted"
    );
    assert_eq!(
        histogram_count(
            &after,
            "ctirouter_request_latency_seconds",
            &[("result", "failed")]
        ),
        1.0
    );
    assert!(value(&after, "ctirouter_upstream_heartbeat_rtt_last_seconds", &[]) > 0.0);
}
