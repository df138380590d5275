//! The ingest core: takes events from the source (the built-in simulator,
//! the upstream CTI Server, or a recorded stream), builds each `Event` once
//! (routing keys, targets, bytes), sends it only to the shards that need it,
//! flushing each ring once per batch; and answers the shards' control rings.
//!
//! * `fanout` — ingest's core state and its side of the rings
//! * `control` — session opens/closes, monitor starts, interest, from shards
//! * `tracker` — call-party tracker, call data, event targets and brackets
//! * `agents` — the agent-state table (OPEN_CONF, device → agent)
//! * `bell` — wakes one task of the ingest executor
//! * `audit` — the audit log: who sent which request, and what became of it
//! * `interest` — which shards need which keys and services
//! * `registry` — open sessions and session monitors (Client Monitor)
//! * `pending` — requests proxied upstream and not answered yet
//! * `local` — requests the router answers from what it knows
//! * `shared` — answers shared between askers of the same query, and kept
//! * `call_data` — who writes call data on which call (RELEASE_CALL aggregation)
//! * `proxy` — proxied requests: to the upstream, and replies back
//! * `servers` — the Server service registry and requests at server applications
//! * `server_requests` — the Server service's requests, recording requests
//!   to local servers and their answers back
//! * `supervisors` — supervisors' own sessions on the CTI Server: the table
//! * `supervisor_sessions` — their rules: open, events, requests, loss, end
//! * `supervisor_link` — the task holding one supervisor's upstream session
//! * `sim_source` — the simulated PG as an event source, paced or at full speed
//! * `upstream` — the CTI Server session (side A/B failover, heartbeats),
//!   the loop around the sans-IO `session::client`
//! * `upstream_conn` — one connection to the CTI Server: TCP, TLS, reads,
//!   writes, CLOSE_REQ
//! * `replay` — a recorded stream file as an event source

pub mod agents;
pub mod audit;
pub mod bell;
pub mod call_data;
pub mod control;
pub mod core;
pub mod fanout;
pub mod interest;
pub mod local;
pub mod pending;
pub mod proxy;
pub mod registry;
pub mod replay;
pub mod server_requests;
pub mod servers;
pub mod shared;
pub mod sim_source;
pub mod supervisor_link;
pub mod supervisor_sessions;
pub mod supervisors;
#[cfg(test)]
mod supervisors_tests;
pub mod tracker;
pub mod upstream;
pub mod upstream_conn;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use fanout::Fanout;

use crate::config::Config;
use crate::link::{ToIngest, ToShard};
use crate::metrics::Metrics;
use crate::ring::{RingRx, RingTx};
use crate::status::PgStatus;

/// The ring ends and settings ingest starts with (all `Send`).
pub struct IngestSetup {
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub to_shards: Vec<RingTx<ToShard>>,
    pub from_shards: Vec<RingRx<ToIngest>>,
    /// Set by the owner to stop the router.
    pub stop: Arc<AtomicBool>,
}

/// How often ingest looks at the stop flag when it has nothing else to do.
pub const STOP_POLL: Duration = Duration::from_millis(20);

/// Run ingest until the stop flag is set, then shut the shards down.
pub async fn run(setup: IngestSetup) {
    let mut shards = Vec::new();
    for tx in setup.to_shards {
        shards.push(tx.connect().await);
    }
    let config = &setup.config;
    let mut fanout = Fanout::new(
        shards,
        config.runtime.batch_size,
        setup.metrics.clone(),
        Duration::from_secs(config.limits.call_max_age_secs),
    );
    let upstream_configured = config.upstream.is_some() && config.replay.is_none();
    fanout.with(|core| {
        core.set_request_limits(&config.requests);
        core.upstream_configured = upstream_configured;
        if upstream_configured {
            core.upstream_config = config.upstream.clone();
        }
        core.supervisors
            .set_max(config.limits.max_supervisor_sessions);
    });
    let server_timer = glommio::spawn_local(fanout::server_timer(fanout.clone()));
    let stop = setup.stop.clone();
    // With a CTI Server: how to reach it (the bridge's and the supervisors'
    // sessions), and the supervisors' session tasks, started and woken by
    // the control tasks.
    let connector = match (&config.upstream, upstream_configured) {
        (Some(upstream), true) => Some(Rc::new(upstream_conn::Connector::new(upstream))),
        _ => None,
    };
    let serve: Rc<dyn Fn(&Fanout)> = match &connector {
        Some(connector) => {
            let links = Rc::new(supervisor_link::Links::new(connector.clone(), stop.clone()));
            Rc::new(move |fanout: &Fanout| links.serve(fanout))
        }
        None => Rc::new(|_: &Fanout| {}),
    };
    let spin = config.runtime.spin_before_park();
    let mut control_tasks = Vec::new();
    for rx in setup.from_shards {
        let rx = rx.connect(spin).await;
        control_tasks.push(glommio::spawn_local(fanout::control_loop(
            rx,
            fanout.clone(),
            serve.clone(),
        )));
    }
    if config.replay.is_some() {
        // Offline until the recording says otherwise.
        fanout.set_status(PgStatus::offline()).await;
    } else if let Some(upstream) = &config.upstream {
        fanout
            .set_status(upstream::offline_before_first_open(upstream))
            .await;
    }
    if config.upstream.is_none() || config.replay.is_some() {
        // The simulator and a replay have no upstream session to lose.
        setup.metrics.upstream_open.store(1, Ordering::Relaxed);
    }
    if let Some(replay) = &config.replay {
        replay::ReplaySource::new(replay)
            .run(&mut fanout, &stop)
            .await;
    } else if let Some(connector) = connector {
        upstream::UpstreamSource::new(connector)
            .run(&mut fanout, &stop)
            .await;
    } else {
        let mut sim = sim_source::SimSource::new(config);
        fanout.set_status(sim.status()).await;
        sim.run(&mut fanout, &stop).await;
    }
    // A source that ends early (replay) keeps serving control until stopped.
    while !stopping(&stop) {
        glommio::timer::sleep(STOP_POLL).await;
    }
    fanout.broadcast(|| ToShard::Shutdown).await;
    for task in control_tasks {
        drop(task.cancel());
    }
    drop(server_timer.cancel());
}

/// Whether the owner asked to stop.
pub fn stopping(stop: &AtomicBool) -> bool {
    stop.load(Ordering::Relaxed)
}
