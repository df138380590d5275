//! Ingest's side of the rings: every event is staged for each shard that
//! needs it and each ring is flushed once per batch; status changes and the
//! upstream's loss and return are broadcast in stream order.

use std::sync::Arc;

use crate::event::Event;
use crate::metrics::Metrics;
use crate::proto::constants::{device_type, pg_status, system_event};
use crate::proto::msg::SystemEvent;
use crate::proto::{Message, Version};
use crate::ring;
use crate::shard::ToShard;
use crate::status::{unix_time, PgStatus};

/// One staged batch per shard.
pub struct Fanout {
    shards: Vec<ring::Sender<ToShard>>,
    batch_size: usize,
    metrics: Arc<Metrics>,
    nr_unflushed_events: u64,
    /// Sequence number of the last event built (router-local, not the PG's).
    seq: u64,
    status: PgStatus,
}

impl Fanout {
    pub fn new(shards: Vec<ring::Sender<ToShard>>, batch_size: usize, metrics: Arc<Metrics>) -> Fanout {
        Fanout {
            shards,
            batch_size: batch_size.max(1),
            metrics,
            nr_unflushed_events: 0,
            seq: 0,
            status: PgStatus::offline(),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The status last broadcast.
    pub fn status(&self) -> &PgStatus {
        &self.status
    }

    /// Build an event from one whole upstream frame and stage it; a frame
    /// whose routing keys cannot be read is counted and returned as an error.
    pub async fn push_frame(&mut self, version: Version, frame: &[u8]) -> Result<(), crate::proto::DecodeError> {
        self.seq += 1;
        match Event::new(self.seq, version, frame.into()) {
            Ok(event) => {
                self.push(event).await;
                Ok(())
            }
            Err(e) => {
                Metrics::add(&self.metrics.nr_bad_upstream_frames, 1);
                Err(e)
            }
        }
    }

    /// Stage an event for every shard; flush when the batch is full.
    pub async fn push(&mut self, event: Event) {
        let event = Arc::new(event);
        for shard in &mut self.shards {
            shard.stage(ToShard::Event(event.clone()));
        }
        self.nr_unflushed_events += 1;
        if self.nr_unflushed_events as usize >= self.batch_size {
            self.flush().await;
        }
    }

    /// Send a non-event item to every shard in stream order, then flush.
    pub async fn broadcast(&mut self, item: impl Fn() -> ToShard) {
        for shard in &mut self.shards {
            shard.stage(item());
        }
        self.flush().await;
    }

    /// Publish every shard's staged batch (waiting while a ring is full).
    pub async fn flush(&mut self) {
        for shard in &mut self.shards {
            shard.flush().await;
        }
        Metrics::add(&self.metrics.nr_events, self.nr_unflushed_events);
        self.nr_unflushed_events = 0;
    }

    /// A new status snapshot for OPEN_CONF and the SYSTEM_EVENTs after it.
    pub async fn set_status(&mut self, status: PgStatus) {
        self.status = status.clone();
        let status = Arc::new(status);
        self.broadcast(|| ToShard::Status(status.clone())).await;
    }

    /// A SYSTEM_EVENT the router itself originates (goes to every session).
    pub async fn system_event(&mut self, id: u32) {
        let message = Message::from(SystemEvent {
            pg_status: self.status.pg_status,
            icm_central_controller_time: unix_time(),
            system_event_id: id,
            event_device_type: device_type::NONE,
            ..Default::default()
        });
        let frame = message.to_frame(Version::MAX).expect("SYSTEM_EVENT exists at every version");
        let _ = self.push_frame(Version::MAX, &frame).await;
        self.flush().await;
    }

    /// The upstream is gone (design.md §4.12): PGStatus says CTI Server
    /// offline, every session gets SYSTEM_EVENT(SYS_CTI_SERVER_OFFLINE), and
    /// shards drop call state (the calls' fate is unknown).
    pub async fn upstream_lost(&mut self) {
        let mut status = self.status.clone();
        status.pg_status |= pg_status::CTI_SERVER_OFFLINE;
        self.set_status(status).await;
        self.system_event(system_event::CTI_SERVER_OFFLINE).await;
        self.broadcast(|| ToShard::UpstreamLost).await;
    }

    /// The upstream is back with `status`: SYSTEM_EVENT(SYS_CTI_SERVER_ONLINE).
    pub async fn upstream_back(&mut self, status: PgStatus) {
        self.set_status(status).await;
        self.system_event(system_event::CTI_SERVER_ONLINE).await;
    }
}
