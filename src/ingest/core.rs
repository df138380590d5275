//! Ingest's routing core, sans I/O: the call-party tracker, the agent
//! table, the interest table and the session registry, and the rules that
//! turn each upstream frame into an `Event` for the shards that need it and
//! answer each control message from a shard. It stages what it sends to
//! shards through [`Links`] — the rings in production (the driver in
//! `fanout` publishes them once per batch), plain `Vec`s in tests — and owns
//! no task, socket or timer.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use super::call_data::CallDataWriters;
use super::interest::{Interest, ShardMask};
use super::pending::PendingTable;
use super::registry::Registry;
use super::servers::Servers;
use super::shared::SharedAnswers;
use super::supervisors::Supervisors;
use super::tracker::CallTracker;
use crate::config::RequestsConfig;
use crate::event::Event;
use crate::ids::SessionId;
use crate::link::ToShard;
use crate::metrics::Metrics;
use crate::proto::constants::{device_type, pg_status, system_event};
use crate::proto::msg::SystemEvent;
use crate::proto::{routing, CtiString, DecodeError, Message, Version};
use crate::status::{unix_time, PgStatus};

/// Where ingest stages what it sends each shard, in order.
pub trait Links {
    fn nr_shards(&self) -> usize;
    /// Queue an item for one shard (published with the batch).
    fn stage(&mut self, shard: usize, item: ToShard);
}

/// In memory: each shard's items in order (tests, tools).
impl Links for Vec<Vec<ToShard>> {
    fn nr_shards(&self) -> usize {
        self.len()
    }

    fn stage(&mut self, shard: usize, item: ToShard) {
        if let Some(items) = self.get_mut(shard) {
            items.push(item);
        }
    }
}

/// Ingest's state, owned by its executor.
pub struct IngestCore<L> {
    /// What goes to each shard.
    pub links: L,
    batch_size: usize,
    pub metrics: Arc<Metrics>,
    /// Events staged since the last publish (counted once published:
    /// [`IngestCore::count_published`]).
    pub nr_unflushed_events: u64,
    /// Sequence number of the last event built (router-local).
    seq: u64,
    pub status: PgStatus,
    pub tracker: CallTracker,
    pub interest: Interest,
    pub registry: Registry,
    /// Proxied requests not answered yet.
    pub pending: PendingTable,
    /// Answers shared between askers of the same read-only request.
    pub shared: SharedAnswers,
    /// The version the upstream session speaks (requests are re-encoded at it).
    pub upstream_version: Version,
    /// The side (address) the bridge session is open on; `None` while it
    /// is not open. Supervisors' own sessions open on the same side.
    pub upstream_side: Option<String>,
    /// Request frames for the upstream, staged until its driver writes them.
    pub to_upstream: Vec<u8>,
    /// The sessions that sent SET_CALL_DATA on each call and have not
    /// released it (RELEASE_CALL aggregation).
    pub call_data_writers: CallDataWriters,
    /// Who controls each instrument (by its bytes).
    pub controllers: HashMap<Box<[u8]>, Control>,
    /// The Server service: registered server applications and the
    /// requests in flight at them.
    pub servers: Servers,
    /// An upstream CTI Server is configured (not the simulator, not a
    /// replay): recording requests with no local server go to it.
    pub upstream_configured: bool,
    /// The upstream's settings (supervisors' own sessions open with them).
    pub upstream_config: Option<crate::config::UpstreamConfig>,
    /// Supervisors' own upstream sessions (docs/requests.md §7).
    pub supervisors: Supervisors,
}

/// The client controlling one instrument (docs/requests.md §4).
#[derive(Debug)]
pub struct Control {
    pub client_id: CtiString,
    /// Its Client Events sessions with control there.
    pub sessions: SmallVec<[SessionId; 1]>,
}

impl<L: Links> IngestCore<L> {
    pub fn new(links: L, batch_size: usize, metrics: Arc<Metrics>, call_max_age: Duration) -> Self {
        let nr_shards = links.nr_shards();
        IngestCore {
            links,
            batch_size: batch_size.max(1),
            metrics,
            nr_unflushed_events: 0,
            seq: 0,
            status: PgStatus::offline(),
            tracker: CallTracker::new(call_max_age),
            interest: Interest::new(nr_shards),
            registry: Registry::default(),
            pending: PendingTable::new(
                RequestsConfig::default().timeout(),
                RequestsConfig::default().max_pending,
            ),
            shared: SharedAnswers::new(RequestsConfig::default().statistics_min_interval()),
            upstream_version: Version::MAX,
            upstream_side: None,
            to_upstream: Vec::new(),
            call_data_writers: CallDataWriters::default(),
            controllers: HashMap::new(),
            servers: Servers::new(
                RequestsConfig::default().timeout(),
                RequestsConfig::default().max_pending,
            ),
            upstream_configured: true,
            upstream_config: None,
            supervisors: Supervisors::new(crate::config::DEFAULT_MAX_SUPERVISOR_SESSIONS),
        }
    }

    /// Queue an item for one shard (published with the batch).
    pub fn stage(&mut self, shard: usize, item: ToShard) {
        self.links.stage(shard, item);
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

    /// Limits of the proxied requests (`[requests]`).
    pub fn set_request_limits(&mut self, requests: &RequestsConfig) {
        self.pending = PendingTable::new(requests.timeout(), requests.max_pending);
        self.shared = SharedAnswers::new(requests.statistics_min_interval());
        self.servers
            .set_limits(requests.timeout(), requests.max_pending);
    }

    /// The staged batch was published: add what it counted to the shared
    /// metrics (events, and calls the tracker aged out meanwhile).
    pub fn count_published(&mut self) {
        let events = std::mem::take(&mut self.nr_unflushed_events);
        Metrics::add(&self.metrics.nr_events, events);
        Metrics::add(
            &self.metrics.nr_calls_aged_out,
            self.tracker.take_aged_out(),
        );
    }

    /// Stage a router-made message (Client Monitor events, SYSTEM_EVENTs),
    /// made at `now`.
    pub fn push_message(&mut self, message: Message, now: Instant) {
        let frame = message
            .to_frame(Version::MAX)
            .expect("router-made messages encode at v24");
        self.seq += 1;
        let built = build_event(
            &mut self.tracker,
            &mut self.interest,
            self.seq,
            Version::MAX,
            &frame,
            now,
        );
        if let Ok((mut event, mask)) = built {
            if let Some(event) = Arc::get_mut(&mut event) {
                event.router_made = true;
            }
            self.stage_event(event, mask);
        }
    }

    fn stage_event(&mut self, event: Arc<Event>, mask: ShardMask) {
        for shard in 0..self.links.nr_shards() {
            if mask & (1 << shard) != 0 {
                self.links.stage(shard, ToShard::Event(event.clone()));
            }
        }
        self.nr_unflushed_events += 1;
    }

    /// Stage a non-event item for every shard, in stream order.
    pub fn broadcast(&mut self, item: impl Fn() -> ToShard) {
        for shard in 0..self.links.nr_shards() {
            self.links.stage(shard, item());
        }
    }

    /// A new status snapshot for OPEN_CONF and the SYSTEM_EVENTs after it.
    pub fn set_status(&mut self, status: PgStatus) {
        let pg_status = u64::from(status.pg_status);
        self.metrics.pg_status.store(pg_status, Ordering::Relaxed);
        self.status = status.clone();
        let status = Arc::new(status);
        self.broadcast(|| ToShard::Status(status.clone()));
    }

    /// A SYSTEM_EVENT the router itself originates (goes to every session).
    pub fn system_event(&mut self, id: u32, now: Instant) {
        let message = Message::from(SystemEvent {
            pg_status: self.status.pg_status,
            icm_central_controller_time: unix_time(),
            system_event_id: id,
            event_device_type: device_type::NONE,
            ..Default::default()
        });
        self.push_message(message, now);
    }

    /// The upstream is gone (docs/design.md §4.12): PGStatus says CTI Server
    /// offline, every session gets SYSTEM_EVENT(SYS_CTI_SERVER_OFFLINE), and
    /// call-party state and call monitors are dropped (the calls' fate is
    /// unknown), agents' states go stale and shared answers are forgotten
    /// (the PG may change anything meanwhile); sessions, device monitors and
    /// Client Events survive.
    pub fn upstream_lost(&mut self, now: Instant) {
        self.metrics.upstream_open.store(0, Ordering::Relaxed);
        Metrics::add(&self.metrics.nr_upstream_losses, 1);
        self.upstream_side = None;
        let mut status = self.status.clone();
        status.pg_status |= pg_status::CTI_SERVER_OFFLINE;
        self.set_status(status);
        self.system_event(system_event::CTI_SERVER_OFFLINE, now);
        self.fail_all_requests(now);
        self.tracker.clear_calls();
        self.shared.clear();
        self.interest.clear_calls();
        self.broadcast(|| ToShard::UpstreamLost);
    }

    /// The upstream is back with `status`: SYSTEM_EVENT(SYS_CTI_SERVER_ONLINE).
    pub fn upstream_back(&mut self, status: PgStatus, now: Instant) {
        self.metrics.upstream_open.store(1, Ordering::Relaxed);
        Metrics::add(&self.metrics.nr_upstream_opens, 1);
        self.set_status(status);
        self.system_event(system_event::CTI_SERVER_ONLINE, now);
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
