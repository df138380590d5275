//! Ingest's driver around its core: a cheap handle (`Rc`) shared by the
//! source task and the control tasks of one ingest executor. It runs the
//! core (never across an await) and publishes what the core staged on the
//! rings to the shards — each ring once per batch, waiting (never dropping)
//! while one is full. Status changes and the upstream's loss and return are
//! broadcast in stream order.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bell::Bell;
use super::core::{IngestCore, Links};
use crate::link::{ToIngest, ToShard};
use crate::metrics::Metrics;
use crate::proto::{DecodeError, Version};
use crate::ring;
use crate::status::PgStatus;

pub use super::core::build_event;

/// The rings to the shards, as the core's links.
pub type Rings = Vec<ring::Sender<ToShard>>;

impl Links for Rings {
    fn nr_shards(&self) -> usize {
        self.len()
    }

    fn stage(&mut self, shard: usize, item: ToShard) {
        if let Some(s) = self.get_mut(shard) {
            s.stage(item);
        }
    }
}

/// Ingest's core on its rings.
pub type Core = IngestCore<Rings>;

impl Core {
    /// Publish what fits of every staged batch; returns items left staged.
    fn try_flush(&mut self) -> usize {
        let left: usize = self.links.iter_mut().map(|s| s.try_flush()).sum();
        if left == 0 {
            self.count_published();
        }
        left
    }
}

/// Handle on ingest's core, for the source and the control tasks.
#[derive(Clone)]
pub struct Fanout {
    core: Rc<RefCell<Core>>,
    /// Rung when requests are staged for the upstream.
    bell: Rc<Bell>,
}

/// How long ingest waits before retrying a full ring (the full-ring policy
/// is to wait, never to drop).
const FULL_RING_RETRY: Duration = Duration::from_micros(50);

impl Fanout {
    pub fn new(
        shards: Rings,
        batch_size: usize,
        metrics: Arc<Metrics>,
        call_max_age: Duration,
    ) -> Fanout {
        Fanout {
            core: Rc::new(RefCell::new(IngestCore::new(
                shards,
                batch_size,
                metrics,
                call_max_age,
            ))),
            bell: Rc::default(),
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
                core.links.iter().for_each(|s| {
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
        self.with(|core| core.broadcast(item));
        self.flush().await;
    }

    /// Requests staged for the upstream since the last call (the upstream
    /// task writes them).
    pub fn take_upstream_requests(&self, out: &mut Vec<u8>) {
        let mut core = self.core.borrow_mut();
        if core.to_upstream.is_empty() {
            return;
        }
        if out.is_empty() {
            std::mem::swap(out, &mut core.to_upstream);
        } else {
            out.append(&mut core.to_upstream);
        }
    }

    /// Until requests are staged for the upstream.
    pub async fn requests_staged(&self) {
        self.bell.wait().await
    }

    /// A reply from the upstream: see [`IngestCore::on_reply`].
    pub fn upstream_reply(&self, invoke_id: u32, frame: &[u8], now: Instant) {
        self.with(|core| core.on_reply(invoke_id, frame, now));
    }

    /// A new status snapshot for OPEN_CONF and the SYSTEM_EVENTs after it.
    pub async fn set_status(&mut self, status: PgStatus) {
        self.with(|core| core.set_status(status));
        self.flush().await;
    }

    /// The upstream is gone: see [`IngestCore::upstream_lost`].
    pub async fn upstream_lost(&mut self) {
        self.with(|core| core.upstream_lost(Instant::now()));
        self.flush().await;
    }

    /// The upstream is back with `status`: SYSTEM_EVENT(SYS_CTI_SERVER_ONLINE).
    pub async fn upstream_back(&mut self, status: PgStatus) {
        self.with(|core| core.upstream_back(status, Instant::now()));
        self.flush().await;
    }
}

/// Drain one shard's control ring into the core for as long as ingest
/// runs; after each batch `serve` starts or wakes the tasks the core asked
/// for (supervisors' own sessions).
pub async fn control_loop(
    rx: ring::Receiver<ToIngest>,
    mut fanout: Fanout,
    serve: Rc<dyn Fn(&Fanout)>,
) {
    loop {
        rx.ready().await;
        let staged = fanout.with(|core| {
            let now = Instant::now();
            rx.drain(CONTROL_BATCH, |item| core.on_control(item, now));
            !core.to_upstream.is_empty()
        });
        if staged {
            fanout.bell.ring();
        }
        serve(&fanout);
        fanout.flush().await;
        // Isolation (docs/requests.md §5): a burst of requests is taken a
        // batch at a time, with the upstream's events read in between.
        futures_lite::future::yield_now().await;
    }
}

/// Time out the requests at server applications (docs/requests.md §8),
/// whatever the source: checked every [`super::STOP_POLL`].
pub async fn server_timer(mut fanout: Fanout) {
    loop {
        glommio::timer::sleep(super::STOP_POLL).await;
        let now = Instant::now();
        // Requests on supervisors' own sessions time out here too (the
        // bridge's are timed by its loop).
        let expired = fanout.with(|core| {
            let own = if core.supervisors.is_empty() {
                0
            } else {
                core.expire_requests(now)
            };
            own + core.expire_server_requests(now)
        });
        if expired > 0 {
            fanout.flush().await;
        }
    }
}

/// Control messages (requests, opens, monitor changes) ingest takes from a
/// shard's ring before it lets the event path run again: a proxied request
/// costs a few µs here, so a batch holds events up well under a millisecond.
const CONTROL_BATCH: usize = 64;
