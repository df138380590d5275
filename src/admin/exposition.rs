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
use crate::metrics::{Kind, COUNTED_SERVICES};

/// Upper bounds of the latency histogram's buckets, in seconds: 10 µs to
/// 10 s, 1-2.5-5 per decade (the router's p99 is tens of µs to a few ms on
/// the development VMs, docs/design.md §5; a storm reaches tens of ms).
const LATENCY_BUCKETS_S: [f64; 19] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

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
        latency(&view.metrics.fanout_latency(), &mut encoder)
    }
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
