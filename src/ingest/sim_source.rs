//! The built-in simulated PG as ingest's event source: pulls the simulator's
//! deterministic stream, encodes each event once at the upstream version (24,
//! as a real upstream session would deliver it), and paces it in real time
//! scaled by `sim_speed` (0 = as fast as the rings take it).

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::{stopping, Fanout, STOP_POLL};
use crate::config::Config;
use crate::proto::{Message, Version};
use crate::sim::Simulator;
use crate::status::PgStatus;

pub struct SimSource {
    sim: Simulator,
    /// Simulated seconds per real second; 0 = no pacing.
    speed: f64,
    version: Version,
    /// Events to produce before stopping (`None`: forever).
    max_events: Option<u64>,
}

impl SimSource {
    pub fn new(config: &Config) -> SimSource {
        SimSource {
            sim: Simulator::new(config.simulator.clone()),
            speed: config.sim_speed,
            max_events: config.sim_max_events,
            version: Version::MAX,
        }
    }

    pub fn status(&self) -> PgStatus {
        PgStatus::online(self.sim.peripherals())
    }

    /// Feed events to the fan-out until `stop` is set.
    pub async fn run(&mut self, fanout: &mut Fanout, stop: &AtomicBool) {
        let start = Instant::now();
        let mut seq = 0u64;
        let mut next: Option<(Duration, Message)> = None;
        let mut frame = Vec::with_capacity(512);
        while !stopping(stop) && self.max_events.is_none_or(|max| seq < max) {
            let (due, message) = next.take().unwrap_or_else(|| self.sim.next_event());
            if self.speed > 0.0 {
                let at = start + due.div_f64(self.speed);
                let now = Instant::now();
                if at > now {
                    // Nothing more is due: publish the batch, then sleep.
                    fanout.flush().await;
                    glommio::timer::sleep((at - now).min(STOP_POLL)).await;
                    next = Some((due, message));
                    continue;
                }
            }
            frame.clear();
            if message.encode(self.version, &mut frame).is_err() {
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
}
