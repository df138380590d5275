//! The ingest core: takes events from the source (the built-in simulator
//! here; the upstream CTI Server and replay plug in the same way), builds each
//! `Event` once (routing keys + bytes), stages it for every shard and flushes
//! each ring once per batch; and drains the shards' control rings.
//!
//! * `fanout` — staging events per shard, flushing once per batch
//! * `sim_source` — the simulated PG as an event source, paced or at full speed
//! * `upstream` — the CTI Server session (side A/B failover, heartbeats)
//! * `replay` — a recorded stream file as an event source

pub mod fanout;
pub mod replay;
pub mod sim_source;
pub mod upstream;

pub use fanout::Fanout;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::proto::Version;
use crate::ring::{self, RingRx, RingTx};
use crate::shard::session::ClientInfo;
use crate::shard::ToShard;
use crate::status::PgStatus;

/// What a shard tells ingest (control ring).
#[derive(Debug)]
pub enum ToIngest {
    SessionOpened {
        shard: usize,
        id: u32,
        peer: SocketAddr,
        version: Version,
        services: u32,
        client: ClientInfo,
    },
    SessionClosed {
        shard: usize,
        id: u32,
        status: u32,
    },
}

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
    let spin = setup.config.runtime.spin_before_park();
    for rx in setup.from_shards {
        let rx = rx.connect(spin).await;
        glommio::spawn_local(control_loop(rx)).detach();
    }
    let mut fanout = Fanout::new(shards, setup.config.runtime.batch_size, setup.metrics.clone());
    let stop = setup.stop.clone();
    let config = &setup.config;
    if let Some(replay) = &config.replay {
        replay::ReplaySource::new(replay).run(&mut fanout, &stop).await;
    } else if let Some(upstream) = &config.upstream {
        upstream::UpstreamSource::new(upstream).run(&mut fanout, &stop).await;
    } else {
        let mut sim = sim_source::SimSource::new(config);
        fanout.set_status(sim.status()).await;
        sim.run(&mut fanout, &stop).await;
    }
    fanout.broadcast(|| ToShard::Shutdown).await;
}

/// Drain one shard's control ring.
async fn control_loop(mut rx: ring::Receiver<ToIngest>) {
    let registry = Rc::new(std::cell::RefCell::new(std::collections::HashMap::new()));
    loop {
        rx.ready().await;
        rx.drain(256, |item| match item {
            ToIngest::SessionOpened { id, client, .. } => {
                tracing::debug!(session = id, client = %client.client_id, "session opened");
                registry.borrow_mut().insert(id, client);
            }
            ToIngest::SessionClosed { id, status, .. } => {
                tracing::debug!(session = id, status, "session closed");
                registry.borrow_mut().remove(&id);
            }
        });
    }
}

/// Whether the owner asked to stop.
pub fn stopping(stop: &AtomicBool) -> bool {
    stop.load(Ordering::Relaxed)
}

/// The status of a source that has just started and knows its peripherals.
pub fn online_status(peripherals: Vec<(u32, bool)>) -> PgStatus {
    PgStatus {
        pg_status: 0,
        peripherals,
        peripheral_type: crate::proto::constants::peripheral_type::ENTERPRISE_AGENT,
    }
}
