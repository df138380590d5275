//! What the harness threads share: counters the driver and the swarm bump and
//! the main thread reads once a second, and the driver's plan. Atomics and
//! one cold mutex; no I/O here.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::scenario::Phase;

/// What the driver plays until told otherwise.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// `None`: paused.
    pub phase: Option<Phase>,
}

/// Counters and the plan, shared by driver, swarm and main thread.
#[derive(Debug, Default)]
pub struct Shared {
    /// Last sequence number sent (events are numbered from 1).
    pub sent_seq: AtomicU64,
    /// Deliveries the events sent so far should make (window accounting).
    pub expected: AtomicU64,
    /// Event deliveries read by the swarm.
    pub delivered: AtomicU64,
    /// The upstream session (or the peer connection) is ready for events.
    pub upstream_ready: AtomicBool,
    pub upstream_heartbeats: AtomicU64,
    /// Events the driver could not send on time (fell behind its schedule).
    pub driver_behind: AtomicU64,
    /// Events the driver sent.
    pub nr_events: AtomicU64,
    /// Bumped on every new plan; the driver echoes it once it follows it.
    pub plan_gen: AtomicU64,
    pub plan_ack: AtomicU64,
    pub plan: Mutex<Plan>,
    /// Sessions open / refused or cut, for the progress line.
    pub nr_open: AtomicU64,
    pub nr_failed: AtomicU64,
    /// When the driver began pacing the current phase (its bursts count
    /// from here), ns on the harness clock.
    pub phase_start_ns: AtomicU64,
    /// p99 and max of the last second's deliveries, ns (progress line).
    pub interval_p99_ns: AtomicU64,
    pub interval_max_ns: AtomicU64,
    /// HEARTBEAT_REQs the swarm sent (progress line: per second), and the
    /// longest round of them since the main thread last took it (swap).
    pub heartbeats_sent: AtomicU64,
    pub heartbeat_round_max_ns: AtomicU64,
    /// Requests the swarm sent and has no answer for yet (the drain waits
    /// for them too).
    pub requests_in_flight: AtomicU64,
    /// Requests the swarm sent, through the router or straight to the PG.
    pub requests_sent: AtomicU64,
    /// Requests the driver answered on the router's upstream session / on
    /// direct sessions, and those that did not decode (FAILURE_CONF 25).
    pub upstream_requests: AtomicU64,
    pub direct_requests: AtomicU64,
    pub bad_requests: AtomicU64,
    /// Requests the driver answered on the router's upstream session, by
    /// message type (updated when a read brought any).
    pub upstream_by_type: Mutex<BTreeMap<u32, u64>>,
    /// Set by the main thread: the driver sends one CALL_DELIVERED_EVENT
    /// per agent (so the router knows every agent's call before desktops act
    /// on it), then sets `primed`.
    pub prime: AtomicBool,
    pub primed: AtomicBool,
    pub stop: AtomicBool,
    /// What the first TLS session's handshake agreed (version and cipher
    /// suite), for the results.
    pub tls_negotiated: Mutex<Option<String>>,
    /// The first session that ended on an error (a failed TLS handshake,
    /// a reset), and why.
    pub first_session_error: Mutex<Option<String>>,
    /// Why the driver stopped, if it did on its own.
    pub driver_error: Mutex<Option<String>>,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared::default())
    }

    /// Hand the driver a new plan and wait (up to 5 s) until it follows it.
    pub fn set_plan(&self, phase: Option<Phase>) -> Result<(), String> {
        *self.plan.lock().expect("plan lock") = Plan { phase };
        let gen = self.plan_gen.fetch_add(1, Ordering::SeqCst) + 1;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.plan_ack.load(Ordering::SeqCst) < gen {
            if std::time::Instant::now() > deadline {
                return Err("the driver did not take its new plan within 5 s".into());
            }
            if let Some(e) = self.driver_error.lock().expect("error lock").clone() {
                return Err(e);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(())
    }
}
