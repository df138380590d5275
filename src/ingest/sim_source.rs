//! The built-in simulated PG as ingest's upstream: pulls the simulator's
//! deterministic stream, encodes each event once at the upstream version (24,
//! as a real upstream session would deliver it), and paces it in real time
//! scaled by `sim_speed` (0 = as fast as the rings take it). It takes the
//! requests ingest proxies, exactly as a real upstream session does: their
//! encoded frames go to the simulator (`Simulator::request`, at its present
//! time) and its answers come back through `Fanout::upstream_reply`, so
//! replies are never events and the proxy path is the same for both.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::{stopping, Fanout, STOP_POLL};
use crate::config::Config;
use crate::ids::Services;
use crate::proto::constants::{msg, service};
use crate::proto::{frame, DecodeOptions, Message, Version};
use crate::sim::Simulator;
use crate::status::PgStatus;

/// What the simulated CTI Server grants the router's session.
const SERVED: u32 = service::ALL_EVENTS | service::CLIENT_CONTROL | service::CALL_DATA_UPDATE;

pub struct SimSource {
    sim: Simulator,
    /// Simulated seconds per real second; 0 = no pacing.
    speed: f64,
    version: Version,
    /// Events to produce before stopping (`None`: forever).
    max_events: Option<u64>,
    /// Request frames taken from ingest, waiting for the simulator.
    requests: Vec<u8>,
}

impl SimSource {
    pub fn new(config: &Config) -> SimSource {
        SimSource {
            sim: Simulator::new(config.simulator.clone()),
            speed: config.sim_speed,
            max_events: config.sim_max_events,
            version: Version::MAX,
            requests: Vec::new(),
        }
    }

    pub fn status(&self) -> PgStatus {
        PgStatus {
            upstream_services: Services(SERVED),
            ..PgStatus::online(self.sim.peripherals())
        }
    }

    /// Feed events to the fan-out until `stop` is set.
    pub async fn run(&mut self, fanout: &mut Fanout, stop: &AtomicBool) {
        let start = Instant::now();
        let mut seq = 0u64;
        // The simulator's present at full speed: the last event's time.
        let mut last_due = Duration::ZERO;
        let mut frame = Vec::with_capacity(512);
        while !stopping(stop) && self.max_events.is_none_or(|max| seq < max) {
            let now = Instant::now();
            let sim_now = if self.speed > 0.0 {
                now.saturating_duration_since(start).mul_f64(self.speed)
            } else {
                last_due
            };
            self.take_requests(fanout, sim_now, now);
            let next = if self.speed > 0.0 {
                self.sim.next_event_until(sim_now)
            } else {
                Some(self.sim.next_event())
            };
            let Some((due, message)) = next else {
                // Nothing more is due: publish the batch, then sleep until
                // the next event or a request.
                fanout.flush().await;
                let wait = self
                    .sim
                    .next_due()
                    .saturating_sub(sim_now)
                    .div_f64(self.speed)
                    .min(STOP_POLL);
                futures_lite::future::or(glommio::timer::sleep(wait), fanout.requests_staged())
                    .await;
                continue;
            };
            last_due = due;
            frame.clear();
            if message.encode(self.version, &mut frame).is_err() {
                continue;
            }
            let message_type = message.message_type();
            if msg::is_reply(message_type) {
                let invoke_id = u32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
                fanout.upstream_reply(invoke_id, &frame, Instant::now());
                continue;
            }
            seq += 1;
            if let Err(e) = fanout
                .push_frame(self.version, &frame, Instant::now())
                .await
            {
                tracing::warn!(error = %e, "simulated event failed to decode");
            }
            if seq % 1024 == 0 {
                // At full speed: let the control tasks run now and then.
                fanout.flush().await;
                futures_lite::future::yield_now().await;
            }
        }
        fanout.flush().await;
    }

    /// Hand the requests ingest staged to the simulator, at `sim_now`; and
    /// let ingest time out requests it gave up on.
    fn take_requests(&mut self, fanout: &Fanout, sim_now: Duration, now: Instant) {
        fanout.take_upstream_requests(&mut self.requests);
        let mut rest = &self.requests[..];
        while !rest.is_empty() {
            let Ok((whole, used)) = frame::parse(rest) else {
                // Ingest encodes whole frames; a torn buffer is a bug there.
                tracing::warn!("malformed request frame from ingest: dropped");
                break;
            };
            let body = whole.body;
            let request = Message::decode(
                whole.message_type,
                body,
                self.version,
                DecodeOptions::default(),
            );
            match (request, body.get(..4)) {
                (Ok(request), Some(id)) => {
                    let invoke_id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
                    self.sim.request(sim_now, invoke_id, &request);
                }
                _ => tracing::warn!(
                    message_type = whole.message_type,
                    "request ingest sent does not decode: dropped"
                ),
            }
            rest = &rest[used..];
        }
        self.requests.clear();
        fanout.with(|core| core.expire_requests(now));
    }
}
