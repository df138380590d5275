//! `/healthz` and `/status.json`: the router's health (is the event source
//! open?) and its state as one JSON document, read from a [`View`]. The
//! recent latency windows come from [`History`], which the admin thread
//! samples once a second while someone watches the status page. No I/O here.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use super::View;
use crate::metrics::{LatencySummary, Snapshot, COUNTED_SERVICES};
use crate::proto::constants::pg_status;

/// What `/healthz` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The upstream session is open (or the simulator or a replay runs).
    Ok,
    /// Why not.
    Unhealthy(String),
}

/// The health of the router as `snapshot` tells it.
pub fn health(view: &View, snapshot: &Snapshot) -> Health {
    if snapshot.upstream_open == 1 {
        return Health::Ok;
    }
    let tried = match snapshot.upstream_side {
        0 => "never open yet".to_string(),
        side => format!("side {} was open last", side_name(side).unwrap_or("?")),
    };
    Health::Unhealthy(format!(
        "upstream CTI Server session not open ({tried}; {} sides configured, {} losses so \
         far); sessions are told CTI Server offline",
        view.info.sides.len(),
        snapshot.nr_upstream_losses
    ))
}

/// `open`, `connecting` (never open yet) or `reconnecting` (lost, being
/// re-established on side A or B).
fn upstream_state(snapshot: &Snapshot) -> &'static str {
    match (snapshot.upstream_open, snapshot.nr_upstream_opens) {
        (1, _) => "open",
        (_, 0) => "connecting",
        _ => "reconnecting",
    }
}

/// "A" or "B" for `Metrics::upstream_side`.
fn side_name(side: u64) -> Option<&'static str> {
    match side {
        1 => Some("A"),
        2 => Some("B"),
        _ => None,
    }
}

/// The PGStatus bits by name (docs/protocol.md §5.7).
fn pg_status_flags(bits: u64) -> Vec<&'static str> {
    [
        (pg_status::OPC_DOWN, "OPC_DOWN"),
        (pg_status::CC_DOWN, "CC_DOWN"),
        (pg_status::PERIPHERAL_OFFLINE, "PERIPHERAL_OFFLINE"),
        (pg_status::CTI_SERVER_OFFLINE, "CTI_SERVER_OFFLINE"),
        (pg_status::LIMITED_FUNCTION, "LIMITED_FUNCTION"),
    ]
    .into_iter()
    .filter(|&(bit, _)| bits & u64::from(bit) != 0)
    .map(|(_, name)| name)
    .collect()
}

/// The `/status.json` document.
pub fn status(view: &View, history: &History) -> Value {
    let snapshot = view.metrics.snapshot();
    let health = health(view, &snapshot);
    let counters: Map<String, Value> = snapshot
        .fields()
        .into_iter()
        .map(|(name, value)| (name.to_string(), json!(value)))
        .collect();
    json!({
        "version": view.info.version,
        "uptime_secs": view.info.started.elapsed().as_secs(),
        "source": view.info.source.name(),
        "listen": view.info.listen.to_string(),
        "shards": view.info.nr_shards,
        "health": match &health {
            Health::Ok => json!({"ok": true}),
            Health::Unhealthy(why) => json!({"ok": false, "reason": why}),
        },
        "upstream": {
            "state": upstream_state(&snapshot),
            "open": snapshot.upstream_open == 1,
            "side": side_name(snapshot.upstream_side),
            "sides": view.info.sides,
            "opens": snapshot.nr_upstream_opens,
            "losses": snapshot.nr_upstream_losses,
        },
        "pg_status": {
            "bits": snapshot.pg_status,
            "flags": pg_status_flags(snapshot.pg_status),
        },
        "sessions": sessions(view, &snapshot),
        "counters": counters,
        "latency_us": latency_json(&view.metrics.latency_summary()),
        "recent": history.json(),
    })
}

/// Sessions held, router-wide and per shard, by service.
fn sessions(view: &View, snapshot: &Snapshot) -> Value {
    let mut by_service = [0u64; COUNTED_SERVICES.len()];
    let mut by_shard = Vec::new();
    for shard in 0..view.info.nr_shards {
        let counts = view.metrics.sessions_by_shard.of(shard);
        let mut entry = Map::new();
        entry.insert("shard".into(), json!(shard));
        for (i, ((name, _), count)) in COUNTED_SERVICES.iter().zip(counts).enumerate() {
            by_service[i] += count;
            entry.insert((*name).into(), json!(count));
        }
        by_shard.push(Value::Object(entry));
    }
    let by_service: Map<String, Value> = COUNTED_SERVICES
        .iter()
        .zip(by_service)
        .map(|((name, _), count)| ((*name).to_string(), json!(count)))
        .collect();
    json!({
        "open": snapshot.nr_sessions,
        "connected": snapshot.nr_connected,
        "pending_opens": snapshot.nr_pending,
        "by_service": by_service,
        "by_shard": by_shard,
    })
}

/// Percentiles in µs (one decimal).
fn latency_json(s: &LatencySummary) -> Value {
    let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
    json!({
        "count": s.count,
        "p50": us(s.p50),
        "p99": us(s.p99),
        "p999": us(s.p999),
        "max": us(s.max),
    })
}

/// How many one-second windows the status page gets (two minutes).
const WINDOWS_KEPT: usize = 120;
/// How long the sampling goes on after the last `/status.json` request:
/// nobody watching, no histogram copies.
const WATCHED_FOR: Duration = Duration::from_secs(30);

/// Recent one-second windows: event and delivery rates and the fan-out
/// latency of the events in each window (the difference of two copies of
/// the cumulative histogram).
pub struct History {
    last: Option<(Instant, Snapshot, Histogram<u64>)>,
    windows: VecDeque<Value>,
    watched_until: Option<Instant>,
}

impl Default for History {
    fn default() -> Self {
        History {
            last: None,
            windows: VecDeque::with_capacity(WINDOWS_KEPT),
            watched_until: None,
        }
    }
}

impl History {
    /// Someone asked for the status: keep sampling for a while.
    pub fn watched(&mut self, now: Instant) {
        self.watched_until = Some(now + WATCHED_FOR);
    }

    /// Take a window if someone watches; forget the past if nobody does.
    pub fn tick(&mut self, view: &View, now: Instant) {
        if self.watched_until.is_none_or(|until| now > until) {
            self.last = None;
            self.windows.clear();
            return;
        }
        let snapshot = view.metrics.snapshot();
        let histogram = view.metrics.fanout_latency();
        if let Some((at, before, before_hist)) = &self.last {
            let secs = now.duration_since(*at).as_secs_f64().max(1e-3);
            let mut delta = histogram.clone();
            let latency = match delta.subtract(before_hist) {
                Ok(()) => LatencySummary::of(&delta),
                Err(_) => LatencySummary::default(),
            };
            let rate = |now: u64, then: u64| (now.saturating_sub(then) as f64 / secs).round();
            if self.windows.len() == WINDOWS_KEPT {
                self.windows.pop_front();
            }
            self.windows.push_back(json!({
                "unix_ms": unix_ms(),
                "events_per_sec": rate(snapshot.nr_events, before.nr_events),
                "deliveries_per_sec": rate(snapshot.nr_deliveries, before.nr_deliveries),
                "sessions": snapshot.nr_sessions,
                "latency_us": latency_json(&latency),
            }));
        }
        self.last = Some((now, snapshot, histogram));
    }

    fn json(&self) -> Value {
        Value::Array(self.windows.iter().cloned().collect())
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_status_bits_are_named() {
        assert!(pg_status_flags(0).is_empty());
        assert_eq!(
            pg_status_flags(0x0C),
            vec!["PERIPHERAL_OFFLINE", "CTI_SERVER_OFFLINE"]
        );
    }
}
