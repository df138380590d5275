//! The shard's routing core, sans I/O: every session of the shard (its
//! protocol state and its queued output), the monitor index, the pending
//! monitor starts, and the rules that route each event and each request.
//! It owns no socket, task, ring or timer: the driver (`shard::run`, the
//! connection tasks in `conn`) feeds it what arrived — bytes from a client,
//! a batch from ingest, the time — and carries out what it staged:
//! [`ShardCore::to_ingest`] for the control ring, and in [`Sessions`] the
//! writers to wake, the sockets to drop and the readers to let go on.
//! Everything here is plain data, so the routing rules run in unit tests.
//!
//! The methods are spread by topic: the session life here, the event path
//! in `dispatch`, monitor requests and ingest's answers in `requests`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use super::monitors::{Monitor, MonitorIndex};
use super::outbox::{Arenas, Outbox};
use crate::config::Config;
use crate::event::Event;
use crate::ids::{MonitorId, Services, SessionId};
use crate::link::{self, OwnOpen, ToIngest, ToShard};
use crate::metrics::{Metrics, RequestResult};
use crate::proto::constants::msg;
use crate::proto::RequestError;
use crate::reload::LiveConfig;
use crate::session::frames::FrameBuffer;
use crate::session::server::{
    failure_conf, CloseReason, Context, Outcome, Phase, Session, SERVED_SERVICES,
};
use crate::status::{AgentView, PgStatus};

/// Session ids are unique across the router (Client Monitor names sessions by them).
static NEXT_SESSION_ID: AtomicU32 = AtomicU32::new(1);
/// MonitorIDs are unique across the router (docs/design.md §4.9); 0 means none.
static NEXT_MONITOR_ID: AtomicU32 = AtomicU32::new(1);

fn next_session_id() -> SessionId {
    SessionId(NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed))
}

/// A fresh MonitorID, never 0.
pub fn next_monitor_id() -> MonitorId {
    loop {
        let id = NEXT_MONITOR_ID.fetch_add(1, Ordering::Relaxed);
        if id != 0 {
            return MonitorId(id);
        }
    }
}

/// One connection's state: its protocol session and its queued output.
pub struct ConnState {
    pub id: SessionId,
    /// When it was accepted: it must open within `open_timeout_secs` of it.
    pub connected_at: Instant,
    pub session: Session,
    /// Output queued for the client, not yet handed to the socket.
    pub out: Outbox,
    /// Bytes handed to the socket and not yet written.
    pub inflight: usize,
    /// Already in the dirty list for this batch.
    pub dirty: bool,
    /// The session reached Open (so its close is reported).
    pub was_open: bool,
    /// Output is held until ingest registers the session (so nothing the
    /// session gets can precede its OPEN_CONF, and events start exactly
    /// where ingest registered it).
    pub held: bool,
    /// The Client Events monitor created by OPEN_REQ, if any.
    pub client_events: Option<Monitor>,
    /// Session monitors this session owns: (MonitorID, watched session).
    pub session_monitors: Vec<(MonitorId, SessionId)>,
    /// Its output bound (`limits.output_bound_bytes` when it connected: a
    /// reload changes it for connections that come after).
    pub bound: usize,
}

impl ConnState {
    fn new(id: SessionId, peer: SocketAddr, now: Instant, bound: usize) -> ConnState {
        ConnState {
            id,
            connected_at: now,
            session: Session::new(id, peer, now),
            out: Outbox::default(),
            inflight: 0,
            dirty: false,
            was_open: false,
            held: false,
            client_events: None,
            session_monitors: Vec::new(),
            bound,
        }
    }

    /// What the session owes its client, counted against its output bound:
    /// queued (arenas whole) plus handed to the socket and not yet written.
    pub fn owed(&self) -> usize {
        self.out.len() + self.inflight
    }

    /// Whether `more` bytes on top of what the session owes would pass
    /// `bound`: the output bound (docs/design.md §4.13) every writer of the
    /// session's output answers to — events, replies, OPEN_CONF and its
    /// SYSTEM_EVENTs, snapshots, FAILURE_CONFs alike, so a client that never
    /// reads is cut whatever fills its output. A closing session is past it.
    pub fn passes_bound(&self, more: usize, bound: usize) -> bool {
        !matches!(self.session.phase, Phase::Closing(_)) && self.owed() + more > bound
    }

    pub fn closing_reason(&self) -> Option<CloseReason> {
        match self.session.phase {
            Phase::Closing(reason) => Some(reason),
            _ => None,
        }
    }
}

/// The shard's sessions — a slab, so the service lists and the dirty list
/// hold slot numbers and the event path reaches a session without hashing —
/// with the current batch's arenas and what the driver must do for them.
pub struct Sessions {
    pub(super) slots: Vec<Option<ConnState>>,
    free: Vec<usize>,
    by_id: FxHashMap<SessionId, usize>,
    /// Slots with output appended in the current batch.
    pub(super) dirty: Vec<usize>,
    /// The current batch's events, once per version (outboxes point into them).
    pub(super) arenas: Arenas,
    /// Deliveries and their bytes since the last batch ended: plain
    /// counters, added to the shard's shared totals once per batch.
    pub(super) nr_delivered: u64,
    pub(super) nr_bytes_queued: u64,
    pub(super) metrics: Arc<Metrics>,
    pub(super) shard: usize,
    /// Sessions that got events in the batch just ended: written first.
    pub delivered: Vec<SessionId>,
    /// Sessions with other output to write (replies, OPEN_CONFs, closes):
    /// written after `delivered`, a bounded slice at a time when a ring
    /// batch leaves many (`shard::REPLIES_PER_SLICE`).
    pub wake: Vec<SessionId>,
    /// Sessions cut mid-write: drop their sockets now.
    pub kill: Vec<SessionId>,
    /// Sessions whose reader may go on (registered by ingest, or ending).
    pub activated: Vec<SessionId>,
}

impl Sessions {
    fn new(shard: usize, metrics: Arc<Metrics>) -> Sessions {
        Sessions {
            slots: Vec::new(),
            free: Vec::new(),
            by_id: FxHashMap::default(),
            dirty: Vec::new(),
            arenas: Arenas::default(),
            nr_delivered: 0,
            nr_bytes_queued: 0,
            metrics,
            shard,
            delivered: Vec::new(),
            wake: Vec::new(),
            kill: Vec::new(),
            activated: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn slot_of(&self, id: SessionId) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    pub fn get(&self, id: SessionId) -> Option<&ConnState> {
        self.slot_of(id).and_then(|s| self.at(s))
    }

    pub fn get_mut(&mut self, id: SessionId) -> Option<&mut ConnState> {
        let slot = self.slot_of(id)?;
        self.at_mut(slot)
    }

    pub(super) fn at(&self, slot: usize) -> Option<&ConnState> {
        self.slots.get(slot).and_then(Option::as_ref)
    }

    pub(super) fn at_mut(&mut self, slot: usize) -> Option<&mut ConnState> {
        self.slots.get_mut(slot).and_then(Option::as_mut)
    }

    /// Every session's id (for shutdown and the idle check).
    pub fn ids(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.slots.iter().flatten().map(|c| c.id)
    }

    pub(super) fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|_| i))
    }

    fn insert(&mut self, conn: ConnState) -> usize {
        let id = conn.id;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(conn);
                slot
            }
            None => {
                self.slots.push(Some(conn));
                self.slots.len() - 1
            }
        };
        self.by_id.insert(id, slot);
        slot
    }

    fn remove(&mut self, id: SessionId) -> Option<(usize, ConnState)> {
        let slot = self.by_id.remove(&id)?;
        let conn = self.slots[slot].take()?;
        self.free.push(slot);
        self.dirty.retain(|&s| s != slot);
        Some((slot, conn))
    }
}

/// One shard's routing state.
pub struct ShardCore {
    pub index: usize,
    /// The configuration new connections and OPEN_REQs answer to: refreshed
    /// from `live` (one atomic load) when one arrives, so a reload applies
    /// to sessions opened after it; the event path never reads it.
    pub config: Arc<Config>,
    live: Arc<LiveConfig>,
    /// The generation of `live` that `config` is.
    config_generation: u64,
    pub metrics: Arc<Metrics>,
    pub(super) status: Arc<PgStatus>,
    status_known: bool,
    pub sessions: Sessions,
    /// Open sessions granted All Events (the event path walks this).
    pub(super) all_events: Vec<usize>,
    /// Open sessions granted Peripheral Monitor (CALL_TRANSLATION_ROUTE_EVENT).
    pub(super) peripheral_monitor: Vec<usize>,
    /// Open sessions granted Client Monitor.
    pub(super) client_monitor: Vec<usize>,
    /// Monitors of this shard's sessions.
    pub monitors: MonitorIndex,
    /// MONITOR_START_REQs waiting for ingest's answer, by MonitorID.
    pub(super) pending_monitors: HashMap<MonitorId, Monitor>,
    /// Control messages for ingest, in order (the driver sends them).
    pub to_ingest: Vec<ToIngest>,
}

/// What one item from ingest did, beyond what the core staged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    Continue,
    /// The first PG status arrived: the shard may accept sessions.
    StatusKnown,
    /// Ingest said shut down.
    Shutdown,
}

impl ShardCore {
    pub fn new(index: usize, config: Arc<Config>, metrics: Arc<Metrics>) -> ShardCore {
        ShardCore::with_live(index, Arc::new(LiveConfig::new(config)), metrics)
    }

    /// A shard whose configuration follows `live` (reloads).
    pub fn with_live(index: usize, live: Arc<LiveConfig>, metrics: Arc<Metrics>) -> ShardCore {
        let (config_generation, config) = live.get();
        ShardCore {
            index,
            sessions: Sessions::new(index, metrics.clone()),
            config,
            live,
            config_generation,
            metrics,
            status: Arc::new(PgStatus::offline()),
            status_known: false,
            all_events: Vec::new(),
            peripheral_monitor: Vec::new(),
            client_monitor: Vec::new(),
            monitors: MonitorIndex::default(),
            pending_monitors: HashMap::new(),
            to_ingest: Vec::new(),
        }
    }

    pub fn status_known(&self) -> bool {
        self.status_known
    }

    /// Pick up a configuration reloaded since the last look (an atomic load
    /// unless there was a reload).
    fn refresh_config(&mut self) {
        if self.live.generation() != self.config_generation {
            (self.config_generation, self.config) = self.live.get();
        }
    }

    /// One item from ingest's ring (events, answers, status, shutdown).
    pub fn on_ingest(&mut self, item: ToShard) -> IngestOutcome {
        match item {
            ToShard::Event(event) => {
                let copies = self.on_event(&event);
                Metrics::add(&self.metrics.nr_deliveries, copies);
                self.sessions.nr_delivered += copies;
            }
            ToShard::OwnEvent { session, event } => {
                let copies = self.on_own_event(session, &event);
                Metrics::add(&self.metrics.nr_deliveries, copies);
                self.sessions.nr_delivered += copies;
            }
            ToShard::Status(status) => return self.on_status(status),
            ToShard::UpstreamLost => self.on_upstream_lost(),
            ToShard::Reply {
                session,
                frame,
                ends_request,
            } => self.on_reply(session, &frame, ends_request),
            ToShard::OpenAck {
                session,
                agent,
                snapshot,
                own,
            } => self.on_open_ack(session, agent, snapshot, own),
            ToShard::OpenRefused { session, error } => self.on_open_refused(session, error),
            ToShard::MonitorStartResult {
                session,
                invoke_id,
                monitor_id,
                result,
            } => self.on_monitor_start_result(session, invoke_id, monitor_id, result),
            ToShard::SessionMonitorResult {
                session,
                invoke_id,
                monitor_id,
                result,
            } => self.on_session_monitor_result(session, invoke_id, monitor_id, result),
            ToShard::SessionMonitorEnded {
                session,
                monitor_id,
            } => self.on_session_monitor_ended(session, monitor_id),
            ToShard::Shutdown => return IngestOutcome::Shutdown,
        }
        IngestOutcome::Continue
    }

    /// A status snapshot from ingest; the first one opens the doors.
    fn on_status(&mut self, status: Arc<PgStatus>) -> IngestOutcome {
        self.status = status;
        if self.status_known {
            return IngestOutcome::Continue;
        }
        self.status_known = true;
        IngestOutcome::StatusKnown
    }

    /// The upstream was lost: call state is unknown now (docs/design.md §4.12).
    fn on_upstream_lost(&mut self) {
        self.monitors.drop_call_monitors();
    }

    /// Take in an accepted connection, unless too many are not open yet
    /// (`max_pending_opens`, router-wide): then `None`, and the driver
    /// closes it at once. It counts as a session only once it opens.
    pub fn admit(&mut self, peer: SocketAddr, now: Instant) -> Option<SessionId> {
        self.refresh_config();
        let metrics = &self.metrics;
        Metrics::add(&metrics.nr_accepted, 1);
        let budget = match metrics.connection_budget.load(Ordering::Relaxed) {
            0 => u64::MAX,
            n => n,
        };
        if !take_one(&metrics.nr_connected, budget) {
            Metrics::add(&metrics.nr_refused_fd_limit, 1);
            if !metrics.at_connection_budget.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    connections = budget,
                    "out of file descriptors for clients: the open-file limit leaves room for \
                     {budget} connections; new ones are closed at once until some close"
                );
            }
            return None;
        }
        let max_pending = self.config.limits.max_pending_opens as u64;
        if !take_one(&metrics.nr_pending, max_pending) {
            self.connection_done();
            Metrics::add(&metrics.nr_refused_pending, 1);
            if !metrics.at_pending_limit.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max_pending_opens = max_pending,
                    "at max_pending_opens: new connections are closed at once until some open or time out"
                );
            }
            return None;
        }
        let id = next_session_id();
        let bound = self.config.limits.output_bound_bytes;
        self.sessions.insert(ConnState::new(id, peer, now, bound));
        Some(id)
    }

    /// Run every whole frame `input` holds from session `id`'s client
    /// through its session, taking them out. Stops after an OPEN_REQ that
    /// opened it (the frames after it wait until ingest registered it) and
    /// once the session is closing; a stream that breaks framing ends it.
    pub fn on_bytes(&mut self, id: SessionId, input: &mut FrameBuffer, now: Instant) {
        let Some(slot) = self.sessions.slot_of(id) else {
            input.clear();
            return;
        };
        while let Some(conn) = self.sessions.at(slot) {
            if conn.closing_reason().is_some() || conn.held {
                break;
            }
            let awaiting_open = conn.session.phase == Phase::AwaitingOpen;
            let frame = match input.next_parsed() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    debug_assert!(e.breaks_framing());
                    Metrics::add(&self.metrics.nr_bad_client_frames, 1);
                    if let Some(conn) = self.sessions.at_mut(slot) {
                        let ConnState { session, out, .. } = conn;
                        session.on_framing_error(&mut out.local);
                    }
                    input.clear();
                    break;
                }
            };
            // max_sessions is decided here, at OPEN: an OPEN_REQ takes a
            // slot before the session handles it (and gives it back unless
            // it opens), so shards never overshoot together.
            let opening = frame.message_type == msg::OPEN_REQ && awaiting_open;
            if opening {
                self.refresh_config();
            }
            let body = frame.body;
            let reserved = opening && self.reserve_session();
            let ctx = Context {
                config: &self.config,
                status: &self.status,
                next_monitor_id: &next_monitor_id,
                served_services: SERVED_SERVICES,
                at_session_limit: opening && !reserved,
            };
            let Some(conn) = self.sessions.at_mut(slot) else {
                break;
            };
            let ConnState { session, out, .. } = conn;
            let outcome = session.on_frame(frame, &ctx, now, &mut out.local);
            if reserved && outcome != Outcome::Opened {
                self.release_session();
            }
            let refused = Outcome::Close(CloseReason::OpenRejected(RequestError::AtSessionLimit));
            if opening && !reserved && outcome == refused {
                Metrics::add(&self.metrics.nr_refused, 1);
            }
            match outcome {
                Outcome::Opened => self.opened(slot),
                Outcome::Request(request) => self.on_request(id, request),
                Outcome::Proxy {
                    message_type,
                    invoke_id,
                } => self.on_proxy(id, message_type, invoke_id, body, now),
                Outcome::Refused { message_type } => {
                    let refused = RequestResult::Refused;
                    let requests = &self.metrics.requests;
                    requests.record(message_type, refused, Duration::ZERO);
                }
                Outcome::ServerReply { message_type } => {
                    self.on_server_reply(id, message_type, body)
                }
                Outcome::Continue | Outcome::Close(_) => {}
            }
            // Checked per frame: a client that sends and never reads is cut
            // at its bound, not one read buffer of replies later (and
            // reading on is not back-pressured, so it cannot sit just under
            // the bound).
            self.sessions.bound_output(slot);
        }
        self.sessions.wake.push(id);
    }

    /// Whether session `id` is opened but not yet registered by ingest.
    pub fn is_held(&self, id: SessionId) -> bool {
        self.sessions.get(id).is_some_and(|c| c.held)
    }

    /// Why session `id` is closing (`Disconnected` once it is gone).
    pub fn closing_reason(&self, id: SessionId) -> Option<CloseReason> {
        match self.sessions.get(id) {
            Some(conn) => conn.closing_reason(),
            None => Some(CloseReason::Disconnected),
        }
    }

    /// A session passed its OPEN_REQ checks: hold its output, count its
    /// Client Events keys, and ask ingest to register it (`OpenAck` follows).
    fn opened(&mut self, slot: usize) {
        // Its max_sessions slot was taken with the OPEN_REQ (`reserve_session`).
        self.pending_done();
        let Some(conn) = self.sessions.at_mut(slot) else {
            return;
        };
        conn.was_open = true;
        conn.held = true;
        let mut interest_up = Vec::new();
        // A supervisor's session is not indexed: its events come from its
        // own upstream session (`OwnEvent`).
        let indexed = !conn.session.own_upstream;
        if let Some(monitor) = Monitor::client_events(&conn.session).filter(|_| indexed) {
            for key in monitor.watch.keys() {
                if self.monitors.count_up(key) {
                    interest_up.push(key);
                }
            }
            conn.client_events = Some(monitor);
        }
        let session = &conn.session;
        let by_shard = &self.metrics.sessions_by_shard;
        by_shard.opened(self.index, session.services);
        self.to_ingest
            .push(ToIngest::SessionOpened(link::SessionOpened {
                shard: self.index,
                id: conn.id,
                peer: session.peer,
                version: session.version,
                services: session.services,
                call_mask: session.call_mask,
                agent_mask: session.agent_mask,
                client: session.client.clone(),
                interest_up,
            }));
    }

    /// Ingest registered the session: queue its OPEN_CONF (with its agent's
    /// state) and the Client Monitor snapshot, make it reachable for events,
    /// release its held output and let its reader go on.
    fn on_open_ack(
        &mut self,
        id: SessionId,
        agent: Option<AgentView>,
        snapshot: Vec<Arc<Event>>,
        own: Option<OwnOpen>,
    ) {
        let Some(slot) = self.sessions.slot_of(id) else {
            return;
        };
        let Some(conn) = self.sessions.at_mut(slot) else {
            return;
        };
        if !conn.held {
            return;
        }
        conn.held = false;
        if let Some(own) = own {
            // A supervisor's session has what its own upstream session was
            // given, and that session's MonitorID on its events.
            let by_shard = &self.metrics.sessions_by_shard;
            by_shard.closed(self.index, conn.session.services);
            by_shard.opened(self.index, own.services);
            conn.session.services = own.services;
            conn.session.client_events_monitor = MonitorId(own.monitor_id);
        }
        if conn.session.is_open() {
            let ConnState { session, out, .. } = &mut *conn;
            session.confirm_open(&self.status, agent.as_ref(), &mut out.local);
        }
        let services = conn.session.services;
        if let Some(monitor) = conn.client_events.clone() {
            self.monitors.insert(monitor);
        }
        let version = conn.session.version;
        for event in snapshot {
            if let Some(bytes) = event.bytes_at(version) {
                conn.out.local.extend_from_slice(bytes);
            }
        }
        // The snapshot counts against the bound like any other output.
        if self.sessions.bound_output(slot) {
            return;
        }
        if services.contains(Services::ALL_EVENTS) {
            self.all_events.push(slot);
        }
        if services.contains(Services::PERIPHERAL_MONITOR) {
            self.peripheral_monitor.push(slot);
        }
        if services.contains(Services::CLIENT_MONITOR) {
            self.client_monitor.push(slot);
        }
        self.sessions.wake.push(id);
        self.sessions.activated.push(id);
    }

    /// Ingest refused the session it held: FAILURE_CONF to its OPEN_REQ, then
    /// the close (ingest hears of it as of any open session's).
    fn on_open_refused(&mut self, id: SessionId, error: RequestError) {
        let Some(conn) = self.sessions.get_mut(id) else {
            return;
        };
        if !conn.held {
            return;
        }
        // Still held (never activated, its Client Events keys still
        // counted): closing lets its output go out all the same.
        let ConnState { session, out, .. } = conn;
        failure_conf(
            &mut out.local,
            session.version,
            session.open_invoke_id,
            error,
        );
        session.phase = Phase::Closing(CloseReason::OpenRejected(error));
        self.sessions.wake.push(id);
        self.sessions.activated.push(id);
    }

    /// End session `id` with a FAILURE_EVENT (idle timeout, shutdown) after
    /// what is queued; sessions not yet open are just closed.
    pub fn end(&mut self, id: SessionId, reason: CloseReason) {
        let Some(conn) = self.sessions.get_mut(id) else {
            return;
        };
        let ConnState { session, out, .. } = conn;
        match session.phase {
            Phase::Open => session.end_with_failure_event(reason, &mut out.local),
            Phase::AwaitingOpen => session.phase = Phase::Closing(reason),
            Phase::Closing(_) => return,
        }
        self.sessions.wake.push(id);
        self.sessions.activated.push(id);
    }

    /// Ends sessions past their IdleTimeout, and closes connections that did
    /// not open within `open_timeout_secs` of their accept.
    pub fn tick(&mut self, now: Instant) {
        self.refresh_config();
        let open_timeout = match self.config.limits.open_timeout_secs {
            0 => None,
            secs => Some(Duration::from_secs(secs)),
        };
        let mut nr_open_timeouts = 0;
        let expired: Vec<SessionId> = self
            .sessions
            .slots
            .iter()
            .flatten()
            .filter(|c| {
                let never_opened = c.session.phase == Phase::AwaitingOpen
                    && open_timeout.is_some_and(|t| now.duration_since(c.connected_at) >= t);
                nr_open_timeouts += never_opened as u64;
                never_opened || c.session.idle_expired(now)
            })
            .map(|c| c.id)
            .collect();
        Metrics::add(&self.metrics.nr_open_timeouts, nr_open_timeouts);
        for id in expired {
            // Not open: just closed (the reason is not reported).
            self.end(id, CloseReason::IdleTimeout);
        }
    }

    /// For the writer: move what session `id` has queued into `spare` (which
    /// must be empty) and count it in flight; false when there is nothing to
    /// write now (or its output is still held).
    pub fn take_output(&mut self, id: SessionId, spare: &mut Outbox) -> bool {
        let Some(conn) = self.sessions.get_mut(id) else {
            return false;
        };
        let closing = conn.closing_reason().is_some();
        if conn.out.is_empty() || (conn.held && !closing) {
            return false;
        }
        conn.out.seal_all();
        std::mem::swap(&mut conn.out, spare);
        conn.inflight = spare.len();
        true
    }

    /// Whether the driver may send `id`'s output itself, at once: nothing of
    /// it is in flight (so order is kept), and it is not closing (the writer
    /// flushes a close, within its grace period).
    pub fn may_send_now(&self, id: SessionId) -> bool {
        self.sessions
            .get(id)
            .is_some_and(|c| c.inflight == 0 && c.closing_reason().is_none())
    }

    /// The writer finished with what [`ShardCore::take_output`] gave it.
    pub fn written(&mut self, id: SessionId) {
        if let Some(conn) = self.sessions.get_mut(id) {
            conn.inflight = 0;
        }
    }

    /// A session ended: drop its monitors, forget it everywhere, tell ingest.
    pub fn remove(&mut self, id: SessionId, reason: CloseReason) {
        let interest_down = self.drop_session_monitors(id);
        let Some((slot, conn)) = self.sessions.remove(id) else {
            return;
        };
        for list in [
            &mut self.all_events,
            &mut self.peripheral_monitor,
            &mut self.client_monitor,
        ] {
            list.retain(|&s| s != slot);
        }
        self.connection_done();
        if conn.was_open {
            self.release_session();
            let by_shard = &self.metrics.sessions_by_shard;
            by_shard.closed(self.index, conn.session.services);
            self.to_ingest
                .push(ToIngest::SessionClosed(link::SessionClosed {
                    shard: self.index,
                    id,
                    reason,
                    services: conn.session.services,
                    interest_down,
                }));
        } else {
            self.pending_done();
        }
    }

    /// Take one of the router's `max_sessions` slots for an OPEN_REQ; false
    /// when there is none (the first refusal of an episode is logged).
    fn reserve_session(&self) -> bool {
        let metrics = &self.metrics;
        let max = self.config.limits.max_sessions as u64;
        let taken = take_one(&metrics.nr_sessions, max);
        if !taken && !metrics.at_session_limit.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                max_sessions = max,
                "at max_sessions: OPEN_REQs are refused (FAILURE_CONF 17) until sessions close"
            );
        }
        taken
    }

    /// Give back a `max_sessions` slot (a session closed, or an OPEN_REQ
    /// that took one did not open).
    fn release_session(&self) {
        let m = &self.metrics;
        let limit = self.config.limits.max_sessions;
        leave_limit(
            &m.nr_sessions,
            &m.at_session_limit,
            limit,
            &m.nr_refused,
            "max_sessions",
        );
    }

    /// A connection's descriptor was given back.
    fn connection_done(&self) {
        let m = &self.metrics;
        let budget = match m.connection_budget.load(Ordering::Relaxed) {
            0 => usize::MAX,
            n => n as usize,
        };
        leave_limit(
            &m.nr_connected,
            &m.at_connection_budget,
            budget,
            &m.nr_refused_fd_limit,
            "the connections the open-file limit leaves room for",
        );
    }

    /// A connection stopped being one not yet open (it opened, or ended).
    fn pending_done(&self) {
        let m = &self.metrics;
        let limit = self.config.limits.max_pending_opens;
        let refused = &m.nr_refused_pending;
        leave_limit(
            &m.nr_pending,
            &m.at_pending_limit,
            limit,
            refused,
            "max_pending_opens",
        );
    }
}

/// Count one into a router-wide limit; false (nothing counted) at the limit.
fn take_one(count: &AtomicU64, limit: u64) -> bool {
    count
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < limit).then_some(n + 1)
        })
        .is_ok()
}

/// Count one out of a router-wide limit; the first time the count is below
/// the limit again after reaching it, say so (once per episode).
fn leave_limit(
    count: &AtomicU64,
    at_limit: &AtomicBool,
    limit: usize,
    refused: &AtomicU64,
    name: &'static str,
) {
    Metrics::add_signed(count, -1);
    if at_limit.load(Ordering::Relaxed)
        && (count.load(Ordering::Relaxed) as usize) < limit
        && at_limit.swap(false, Ordering::Relaxed)
    {
        tracing::info!(
            refused_so_far = refused.load(Ordering::Relaxed),
            "below {name} again"
        );
    }
}
