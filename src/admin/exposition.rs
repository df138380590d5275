//! `/metrics`: the router's counters, gauges, per-shard sessions and the
//! fan-out latency histogram in the Prometheus text format (0.0.4), encoded
//! by `prometheus-client` from a [`View`] read at scrape time. Every name
//! starts with `ctirouter_`; counters end in `_total` (docs/operations.md
//! lists them). No I/O here.

use hdrhistogram::Histogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::View;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::{
    HistogramSnapshot, Kind, RequestResult, ShardTotal, COUNTED_SERVICES, LATENCY_BUCKETS_S,
};
use crate::proto::Message;
use crate::ring::RingStats;

/// The text of one scrape.
pub fn encode(view: &View) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("ctirouter");
    registry.register_collector(Box::new(Scrape(view.clone())));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

/// A [`View`] as a prometheus-client collector (read once per scrape).
#[derive(Debug)]
struct Scrape(View);

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let view = &self.0;
        info(view, &mut encoder)?;
        for counter in view.metrics.snapshot().described() {
            let help = counter.help.trim();
            match counter.kind {
                Kind::Counter => {
                    let metric = ConstCounter::new(counter.value);
                    let m =
                        encoder.encode_descriptor(counter.name, help, None, MetricType::Counter)?;
                    metric.encode(m)?;
                }
                Kind::Gauge => {
                    let metric = ConstGauge::new(counter.value as i64);
                    let m =
                        encoder.encode_descriptor(counter.name, help, None, MetricType::Gauge)?;
                    metric.encode(m)?;
                }
            }
        }
        shard_sessions(view, &mut encoder)?;
        shard_totals(view, &mut encoder)?;
        rings(view, &mut encoder)?;
        requests(view, &mut encoder)?;
        heartbeat_rtt(
            &view.metrics.upstream_heartbeat_rtt.snapshot(),
            &mut encoder,
        )?;
        latency(&view.metrics.fanout_latency(), &mut encoder)
    }
}

/// `ctirouter_shard_{deliveries,bytes,writes,written_bytes,slow_consumer_cuts}_total{shard}`.
fn shard_totals(view: &View, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    type Field = fn(&ShardTotal) -> &AtomicU64;
    let families: [(&str, &str, Field); 5] = [
        (
            "shard_deliveries",
            "Event copies queued for the shard's sessions (added once per batch).",
            |t| &t.deliveries,
        ),
        (
            "shard_bytes",
            "Bytes of the event copies queued for the shard's sessions.",
            |t| &t.bytes,
        ),
        (
            "shard_writes",
            "Socket writes the shard issued (clear sends and TLS records).",
            |t| &t.writes,
        ),
        (
            "shard_written_bytes",
            "Bytes the shard's sockets took (ciphertext for TLS sessions).",
            |t| &t.bytes_written,
        ),
        (
            "shard_slow_consumer_cuts",
            "The shard's sessions cut at their output bound.",
            |t| &t.slow_consumer_cuts,
        ),
    ];
    for (name, help, field) in families {
        let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for shard in 0..view.info.nr_shards {
            let Some(total) = view.metrics.shard_totals.of(shard) else {
                continue;
            };
            let value = field(total).load(Ordering::Relaxed);
            let shard = shard.to_string();
            let labels = [("shard", shard.as_str())];
            m.encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }
    }
    Ok(())
}

/// `ctirouter_ring_{batches,full_waits,doorbells,late_wakeups}_total{ring,
/// shard}`: the ingest ⇄ shard rings' own counters.
fn rings(view: &View, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let Some(rings) = view.metrics.rings.get() else {
        return Ok(());
    };
    type Field = fn(&RingStats) -> &AtomicU64;
    let families: [(&str, &str, Field); 4] = [
        (
            "ring_batches",
            "Batches published on the ring (to_shard: ingest to the shard; to_ingest: the shard's control messages).",
            |s| &s.nr_batches,
        ),
        (
            "ring_full_waits",
            "Times the ring's producer found it full and waited (the consumer was behind; nothing is dropped).",
            |s| &s.nr_full_waits,
        ),
        (
            "ring_doorbells",
            "Doorbells rung on the ring (its consumer had parked).",
            |s| &s.nr_doorbells,
        ),
        (
            "ring_late_wakeups",
            "Park timeouts of the ring's consumer that found items waiting: a wake-up that did not arrive (0 unless something is wrong).",
            |s| &s.nr_late_wakeups,
        ),
    ];
    for (name, help, field) in families {
        let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for ring in rings {
            let value = field(ring.stats.get()).load(Ordering::Relaxed);
            let shard = ring.shard.to_string();
            let labels = [("ring", ring.direction), ("shard", shard.as_str())];
            m.encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }
    }
    Ok(())
}

/// `ctirouter_requests_total{type, result}` and
/// `ctirouter_request_latency_seconds{result}`.
fn requests(view: &View, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let requests = &view.metrics.requests;
    let mut m = encoder.encode_descriptor(
        "requests",
        "Requests sessions sent to be proxied, by message type and how they ended: proxied (the CTI Server's CONF), failed (its failure), local (answered by the router), refused (by the router), timeout, lost (the upstream went away).",
        None,
        MetricType::Counter,
    )?;
    for (message_type, result, count) in requests.counts() {
        let number;
        let name = match Message::type_name(message_type) {
            Some(name) => name,
            None => {
                number = message_type.to_string();
                number.as_str()
            }
        };
        let labels = [("type", name), ("result", result.name())];
        m.encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
    }
    let mut m = encoder.encode_descriptor(
        "request_latency_seconds",
        "Request latency by result: its shard read the request until ingest handed the answer to the shard.",
        None,
        MetricType::Histogram,
    )?;
    for result in RequestResult::ALL {
        let h = requests.latency(result);
        let labels = [("result", result.name())];
        m.encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(h.sum_secs, h.count, &h.buckets, None)?;
    }
    Ok(())
}

/// `ctirouter_upstream_heartbeat_rtt_seconds` (histogram) and
/// `ctirouter_upstream_heartbeat_rtt_last_seconds` (gauge).
fn heartbeat_rtt(
    h: &HistogramSnapshot,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(
        "upstream_heartbeat_rtt_seconds",
        "Round trip of the upstream session's heartbeats: HEARTBEAT_REQ sent until its HEARTBEAT_CONF was read.",
        None,
        MetricType::Histogram,
    )?;
    m.encode_histogram::<NoLabelSet>(h.sum_secs, h.count, &h.buckets, None)?;
    let m = encoder.encode_descriptor(
        "upstream_heartbeat_rtt_last_seconds",
        "The last upstream heartbeat's round trip (0 before the first).",
        None,
        MetricType::Gauge,
    )?;
    ConstGauge::new(h.last_secs).encode(m)
}

/// `ctirouter_info{version, source} 1`: what is running.
fn info(view: &View, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(
        "info",
        "The router's version and event source (upstream, simulator or replay); always 1.",
        None,
        MetricType::Gauge,
    )?;
    let labels = [
        ("version", view.info.version),
        ("source", view.info.source.name()),
    ];
    m.encode_family(&labels)?.encode_gauge(&1i64)
}

/// `ctirouter_shard_sessions{shard, service}`.
fn shard_sessions(view: &View, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(
        "shard_sessions",
        "Open sessions per shard and service (a session granted several services counts in each).",
        None,
        MetricType::Gauge,
    )?;
    for shard in 0..view.info.nr_shards {
        let counts = view.metrics.sessions_by_shard.of(shard);
        let shard = shard.to_string();
        for ((service, _), count) in COUNTED_SERVICES.iter().zip(counts) {
            let labels = [("shard", shard.as_str()), ("service", service)];
            m.encode_family(&labels)?.encode_gauge(&(count as i64))?;
        }
    }
    Ok(())
}

/// `ctirouter_fanout_latency_seconds`: the shards' merged histogram since
/// start, folded into [`LATENCY_BUCKETS_S`].
fn latency(
    histogram: &Histogram<u64>,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let buckets = buckets(histogram);
    let count = histogram.len();
    // hdrhistogram keeps no sum: its mean times its count is within its
    // precision (3 significant digits).
    let sum = if count == 0 {
        0.0
    } else {
        histogram.mean() * count as f64 / 1e9
    };
    let mut m = encoder.encode_descriptor(
        "fanout_latency_seconds",
        "Fan-out latency: ingest received the event until its shard issued the batch's writes.",
        None,
        MetricType::Histogram,
    )?;
    m.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
}

/// (upper bound, count in the bucket) for [`LATENCY_BUCKETS_S`]; the
/// encoder makes the counts cumulative and adds +Inf (the total count).
fn buckets(histogram: &Histogram<u64>) -> Vec<(f64, u64)> {
    let mut out = Vec::with_capacity(LATENCY_BUCKETS_S.len() + 1);
    let mut below = 0;
    for bound in LATENCY_BUCKETS_S {
        let upto = if histogram.is_empty() {
            0
        } else {
            histogram.count_between(0, (bound * 1e9) as u64)
        };
        out.push((bound, upto.saturating_sub(below)));
        below = upto;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::latency_histogram;

    #[test]
    fn latency_buckets_add_up_to_the_count() {
        let mut h = latency_histogram();
        for us in [5u64, 30, 30, 700, 20_000, 30_000_000] {
            h.record(us * 1_000).unwrap();
        }
        let b = buckets(&h);
        assert_eq!(
            b.iter().map(|&(_, n)| n).sum::<u64>(),
            5,
            "30 s is past 10 s"
        );
        assert_eq!(b[0], (0.000_01, 1), "5 µs is under 10 µs");
        assert_eq!(b[2], (0.000_05, 2), "30 µs twice, between 25 and 50 µs");
    }
}
