//! Ingest's core state and its side of the rings. Every event gets its
//! targets from the call-party tracker, goes only to the shards the interest
//! table names, and each ring is flushed once per batch; control messages from
//! shards (session opened/closed, monitor starts, interest) are answered in the
//! same ordered streams. Status changes and the upstream's loss and return
//! are broadcast in stream order.
//!
//! `Fanout` is a cheap handle (`Rc`) shared by the source task and the control
//! tasks of one ingest executor; no borrow is held across an await.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::interest::{Interest, ShardMask};
use super::registry::Registry;
use super::tracker::CallTracker;
use crate::event::Event;
use crate::link::ToShard;
use crate::metrics::Metrics;
use crate::proto::constants::{device_type, pg_status, system_event};
use crate::proto::msg::SystemEvent;
use crate::proto::{routing, DecodeError, Message, Version};
use crate::ring;
use crate::status::{unix_time, PgStatus};

/// Ingest's state, owned by its executor.
pub struct Core {
    shards: Vec<ring::Sender<ToShard>>,
    batch_size: usize,
    pub metrics: Arc<Metrics>,
    nr_unflushed_events: u64,
    /// Sequence number of the last event built (router-local).
    seq: u64,
    pub status: PgStatus,
    pub tracker: CallTracker,
    pub interest: Interest,
    pub registry: Registry,
}

impl Core {
    /// Queue an item for one shard (flushed with the batch).
    pub fn stage(&mut self, shard: usize, item: ToShard) {
        if let Some(s) = self.shards.get_mut(shard) {
            s.stage(item);
        }
    }

    /// Build an event from a whole frame, compute its targets and stage it
    /// for the shards that need it. Returns whether the batch is full.
    pub fn push_frame(
        &mut self,
        version: Version,
        frame: &[u8],
        received: Instant,
    ) -> Result<bool, DecodeError> {
        self.seq += 1;
        let built = build_event(
            &mut self.tracker,
            &mut self.interest,
            self.seq,
            version,
            frame,
            received,
        );
        let (event, mask) = match built {
            Ok(built) => built,
            Err(e) => {
                Metrics::add(&self.metrics.nr_bad_upstream_frames, 1);
                return Err(e);
            }
        };
        self.stage_event(event, mask);
        Ok(self.nr_unflushed_events as usize >= self.batch_size)
    }

    /// Stage a router-made message (Client Monitor events, SYSTEM_EVENTs).
    pub fn push_message(&mut self, message: Message) {
        let frame = message
            .to_frame(Version::MAX)
            .expect("router-made messages encode at v24");
        let _ = self.push_frame(Version::MAX, &frame, Instant::now());
    }

    fn stage_event(&mut self, event: Arc<Event>, mask: ShardMask) {
        for (i, shard) in self.shards.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                shard.stage(ToShard::Event(event.clone()));
            }
        }
        self.nr_unflushed_events += 1;
    }

    /// Publish what fits of every staged batch; returns items left staged.
    fn try_flush(&mut self) -> usize {
        let left: usize = self.shards.iter_mut().map(|s| s.try_flush()).sum();
        if left == 0 {
            Metrics::add(&self.metrics.nr_events, self.nr_unflushed_events);
            self.nr_unflushed_events = 0;
        }
        left
    }
}

/// Ingest's work per event, apart from the rings: read the frame's routing
/// keys, compute its targets (updating the call tracker and, for merged
/// calls, the interest table) and the shards that need it.
pub fn build_event(
    tracker: &mut CallTracker,
    interest: &mut Interest,
    seq: u64,
    version: Version,
    frame: &[u8],
    received: Instant,
) -> Result<(Arc<Event>, ShardMask), DecodeError> {
    let keys = routing::extract(frame, version)?;
    let targets = tracker.observe(frame, &keys, version, received, interest.is_keyed());
    if let Some((from, to)) = targets.merged {
        interest.merge_call(from, to);
    }
    let mask = interest.shards_for(keys.message_type, &targets);
    let event = Event::routed(seq, version, frame.into(), received, &keys, targets);
    Ok((Arc::new(event), mask))
}

/// Handle on ingest's core, for the source and the control tasks.
#[derive(Clone)]
pub struct Fanout {
    core: Rc<RefCell<Core>>,
}

/// How long ingest waits before retrying a full ring (the full-ring policy
/// is to wait, never to drop).
const FULL_RING_RETRY: Duration = Duration::from_micros(50);

impl Fanout {
    pub fn new(
        shards: Vec<ring::Sender<ToShard>>,
        batch_size: usize,
        metrics: Arc<Metrics>,
        call_max_age: Duration,
    ) -> Fanout {
        let nr_shards = shards.len();
        Fanout {
            core: Rc::new(RefCell::new(Core {
                shards,
                batch_size: batch_size.max(1),
                metrics,
                nr_unflushed_events: 0,
                seq: 0,
                status: PgStatus::offline(),
                tracker: CallTracker::new(call_max_age),
                interest: Interest::new(nr_shards),
                registry: Registry::default(),
            })),
        }
    }

    /// Run `f` on the core (never across an await).
    pub fn with<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        f(&mut self.core.borrow_mut())
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.core.borrow().metrics.clone()
    }

    /// The status last broadcast.
    pub fn status(&self) -> PgStatus {
        self.core.borrow().status.clone()
    }

    /// Build an event from one whole upstream frame (read at `received`) and
    /// send it where it is needed; a frame whose routing keys cannot be read
    /// is counted and returned as an error.
    pub async fn push_frame(
        &mut self,
        version: Version,
        frame: &[u8],
        received: Instant,
    ) -> Result<(), DecodeError> {
        let full = self
            .core
            .borrow_mut()
            .push_frame(version, frame, received)?;
        if full {
            self.flush().await;
        }
        Ok(())
    }

    /// Publish every shard's staged batch (waiting while a ring is full).
    pub async fn flush(&mut self) {
        let mut waited = false;
        while self.core.borrow_mut().try_flush() > 0 {
            if !waited {
                let core = self.core.borrow();
                core.shards.iter().for_each(|s| {
                    if s.nr_staged() > 0 {
                        s.stats()
                            .nr_full_waits
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
                waited = true;
            }
            glommio::timer::sleep(FULL_RING_RETRY).await;
        }
    }

    /// Send a non-event item to every shard in stream order, then flush.
    pub async fn broadcast(&mut self, item: impl Fn() -> ToShard) {
        {
            let mut core = self.core.borrow_mut();
            for shard in core.shards.iter_mut() {
                shard.stage(item());
            }
        }
        self.flush().await;
    }

    /// A new status snapshot for OPEN_CONF and the SYSTEM_EVENTs after it.
    pub async fn set_status(&mut self, status: PgStatus) {
        self.core.borrow_mut().status = status.clone();
        let status = Arc::new(status);
        self.broadcast(|| ToShard::Status(status.clone())).await;
    }

    /// A SYSTEM_EVENT the router itself originates (goes to every session).
    pub async fn system_event(&mut self, id: u32) {
        {
            let mut core = self.core.borrow_mut();
            let message = Message::from(SystemEvent {
                pg_status: core.status.pg_status,
                icm_central_controller_time: unix_time(),
                system_event_id: id,
                event_device_type: device_type::NONE,
                ..Default::default()
            });
            core.push_message(message);
        }
        self.flush().await;
    }

    /// The upstream is gone (design.md §4.12): PGStatus says CTI Server
    /// offline, every session gets SYSTEM_EVENT(SYS_CTI_SERVER_OFFLINE), and
    /// call-party state and call monitors are dropped (the calls' fate is
    /// unknown); sessions, device monitors and Client Events survive.
    pub async fn upstream_lost(&mut self) {
        let mut status = self.status();
        status.pg_status |= pg_status::CTI_SERVER_OFFLINE;
        self.set_status(status).await;
        self.system_event(system_event::CTI_SERVER_OFFLINE).await;
        self.with(|core| {
            core.tracker.clear_calls();
            core.interest.clear_calls();
        });
        self.broadcast(|| ToShard::UpstreamLost).await;
    }

    /// The upstream is back with `status`: SYSTEM_EVENT(SYS_CTI_SERVER_ONLINE).
    pub async fn upstream_back(&mut self, status: PgStatus) {
        self.set_status(status).await;
        self.system_event(system_event::CTI_SERVER_ONLINE).await;
    }
}
