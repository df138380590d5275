//! A shard core: its listener on the shared port (SO_REUSEPORT), the sessions
//! it accepted, and the dispatch of ring batches from ingest into session
//! output buffers — one socket write per dirty session per batch. Everything
//! here lives on one executor: no locks, no shared mutable state.
//!
//! * `conn` — one connection's read and write tasks around its sans-IO
//!   `session::server::Session`
//! * `dispatch` — matching events to sessions, output bound, flush
//! * `monitors` — the monitor index (`by_device`, `by_call`, `by_agent`)
//! * `brackets` — BEGIN_CALL/END_CALL around each watcher's calls
//! * `requests` — monitor and session-monitor requests, ingest's answers
//! * `listener` — the listening socket; closing new connections at once
//!   when out of file descriptors

pub mod brackets;
pub mod conn;
pub mod dispatch;
pub mod listener;
pub mod monitors;
pub mod notify;
pub mod outbox;
pub mod requests;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::config::Config;
use crate::event::Event;
use crate::link::{ToIngest, ToShard};
use crate::metrics::Metrics;
use crate::ring::{self, RingRx, RingTx};
use crate::session::server::{self as session, CloseReason};
use crate::status::PgStatus;
use conn::Conn;
use listener::{FdReserve, Listener};
use notify::Notify;

/// Session ids are unique across the router (Client Monitor names sessions by them).
static NEXT_SESSION_ID: AtomicU32 = AtomicU32::new(1);
/// MonitorIDs are unique across the router (design.md §4.9); 0 means none.
static NEXT_MONITOR_ID: AtomicU32 = AtomicU32::new(1);

fn next_session_id() -> u32 {
    NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed)
}

/// A fresh MonitorID, never 0.
pub fn next_monitor_id() -> u32 {
    loop {
        let id = NEXT_MONITOR_ID.fetch_add(1, Ordering::Relaxed);
        if id != 0 {
            return id;
        }
    }
}

/// How long a closing session may take to flush its last bytes before its
/// socket is dropped anyway (a client that stopped reading must not hold up
/// shutdown or a slow-consumer cut).
pub const CLOSE_FLUSH_GRACE: Duration = Duration::from_secs(1);
/// How often idle timeouts are checked (IdleTimeout is whole seconds ≥ 20).
const IDLE_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// Pause before accepting again after an accept error nothing could be done about.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);
/// Longest a shard waits for its sessions to close at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// The ring ends and settings a shard starts with (all `Send`).
pub struct ShardSetup {
    pub index: usize,
    pub listen: SocketAddr,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub from_ingest: RingRx<ToShard>,
    pub to_ingest: RingTx<ToIngest>,
    /// Told once the shard knows the PG status and accepts sessions (so no
    /// session is answered with the status the shard starts with).
    pub ready: std::sync::mpsc::Sender<usize>,
}

/// One shard's state, shared by its tasks through `Rc`.
pub struct Shard {
    pub index: usize,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub status: RefCell<Arc<PgStatus>>,
    /// Every connected session, by id.
    pub conns: RefCell<FxHashMap<u32, Rc<Conn>>>,
    /// Active sessions granted All Events (dispatch walks this).
    pub all_events: RefCell<Vec<Rc<Conn>>>,
    /// Active sessions granted Peripheral Monitor (CALL_TRANSLATION_ROUTE_EVENT).
    pub peripheral_monitor: RefCell<Vec<Rc<Conn>>>,
    /// Active sessions granted Client Monitor.
    pub client_monitor: RefCell<Vec<Rc<Conn>>>,
    /// Monitors of this shard's sessions.
    pub monitors: RefCell<monitors::MonitorIndex>,
    /// MONITOR_START_REQs waiting for ingest's answer, by MonitorID.
    pub pending_monitors: RefCell<HashMap<u32, monitors::Monitor>>,
    /// Sessions with output appended in the current batch.
    pub dirty: RefCell<Vec<Rc<Conn>>>,
    /// The current batch's events, once per version (sessions' outboxes
    /// point into them).
    pub arenas: RefCell<outbox::Arenas>,
    pub to_ingest: RefCell<ring::Sender<ToIngest>>,
    stop_accepting: Notify,
    /// Notified whenever a session is removed (shutdown waits on it).
    session_removed: Notify,
    /// Control messages are waiting for room in the ring to ingest.
    control_backlog: Notify,
    /// Set when the first status arrives from ingest; accepting waits for it.
    status_known: Cell<bool>,
    status_ready: Notify,
    ready: RefCell<Option<std::sync::mpsc::Sender<usize>>>,
}

/// Bind the shard's listener (SO_REUSEPORT). Called on the shard's executor
/// so the socket belongs to it.
pub fn bind(listen: SocketAddr) -> std::io::Result<Listener> {
    listener::bind(listen)
}

/// Run a shard until shutdown. `listener` was bound on this executor.
pub async fn run(setup: ShardSetup, listener: Listener) {
    let spin = setup.config.runtime.spin_before_park();
    // Same order as ingest (its event rings first, then the control rings):
    // each connect waits for the peer's, so a different order deadlocks.
    let mut from_ingest = setup.from_ingest.connect(spin).await;
    let to_ingest = setup.to_ingest.connect().await;
    let shard = Rc::new(Shard {
        index: setup.index,
        config: setup.config,
        metrics: setup.metrics,
        status: RefCell::new(Arc::new(PgStatus::offline())),
        conns: RefCell::new(FxHashMap::default()),
        all_events: RefCell::new(Vec::new()),
        peripheral_monitor: RefCell::new(Vec::new()),
        client_monitor: RefCell::new(Vec::new()),
        monitors: RefCell::new(monitors::MonitorIndex::default()),
        pending_monitors: RefCell::new(HashMap::new()),
        dirty: RefCell::new(Vec::new()),
        arenas: RefCell::new(outbox::Arenas::default()),
        to_ingest: RefCell::new(to_ingest),
        stop_accepting: Notify::default(),
        session_removed: Notify::default(),
        control_backlog: Notify::default(),
        status_known: Cell::new(false),
        status_ready: Notify::default(),
        ready: RefCell::new(Some(setup.ready)),
    });
    let acceptor = glommio::spawn_local(accept_loop(shard.clone(), listener));
    let idle = glommio::spawn_local(idle_loop(shard.clone()));
    let backlog = glommio::spawn_local(control_backlog_loop(shard.clone()));
    dispatch::run(&shard, &mut from_ingest).await;
    shutdown(&shard).await;
    drop(idle.cancel());
    drop(backlog.cancel());
    acceptor.await;
}

async fn accept_loop(shard: Rc<Shard>, listener: Listener) {
    while !shard.status_known.get() {
        shard.status_ready.wait().await;
    }
    // Opened before the descriptors run out (see `listener`).
    let mut reserve = FdReserve::new();
    let mut last_error_log: Option<Instant> = None;
    loop {
        let accepted =
            futures_lite::future::or(async { Some(listener.inner.accept().await) }, async {
                shard.stop_accepting.wait().await;
                None
            })
            .await;
        match accepted {
            None => return,
            Some(Ok(stream)) => {
                reserve.accepted(shard.index);
                admit(&shard, stream);
            }
            // Out of descriptors: close what waits (with the spare's slot)
            // rather than leave clients hanging; logged once per episode. The
            // next accept waits for the next connection: no busy retry.
            Some(Err(e)) if listener::is_fd_exhaustion(e.raw_os_error()) => {
                if reserve.drain(shard.index, &listener, &shard.metrics) == 0 {
                    glommio::timer::sleep(ACCEPT_RETRY).await;
                }
            }
            Some(Err(e)) => {
                // Other accept errors (a connection reset while queued, …)
                // are per connection; log them at most once a second.
                let now = Instant::now();
                if last_error_log.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
                {
                    tracing::warn!(shard = shard.index, error = %e, "accept failed");
                    last_error_log = Some(now);
                }
                glommio::timer::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

/// Take in an accepted connection, unless too many are not open yet: then it
/// is closed at once (dropped). It counts as a session only once it opens.
fn admit(shard: &Rc<Shard>, stream: glommio::net::TcpStream) {
    let metrics = &shard.metrics;
    Metrics::add(&metrics.nr_accepted, 1);
    let max_pending = shard.config.limits.max_pending_opens as u64;
    let room = metrics
        .nr_pending
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < max_pending).then_some(n + 1)
        })
        .is_ok();
    if !room {
        Metrics::add(&metrics.nr_refused_pending, 1);
        if !metrics.at_pending_limit.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                max_pending_opens = max_pending,
                "at max_pending_opens: new connections are closed at once until some open or time out"
            );
        }
        return;
    }
    let _ = stream.set_nodelay(true);
    conn::apply_socket_buffers(&stream, &shard.config.runtime);
    let peer = stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let id = next_session_id();
    let conn = Rc::new(Conn::new(id, peer, Instant::now()));
    shard.conns.borrow_mut().insert(id, conn.clone());
    Metrics::add(&metrics.nr_connected, 1);
    glommio::spawn_local(conn::serve(shard.clone(), conn, stream)).detach();
}

/// Ends sessions past their IdleTimeout, and closes connections that did
/// not open within `open_timeout_secs` of their accept.
async fn idle_loop(shard: Rc<Shard>) {
    let open_timeout = match shard.config.limits.open_timeout_secs {
        0 => None,
        secs => Some(Duration::from_secs(secs)),
    };
    loop {
        glommio::timer::sleep(IDLE_CHECK_INTERVAL).await;
        let now = Instant::now();
        let mut nr_open_timeouts = 0;
        let expired: Vec<Rc<Conn>> = shard
            .conns
            .borrow()
            .values()
            .filter(|c| {
                let st = c.state.borrow();
                let never_opened = st.session.phase == session::Phase::AwaitingOpen
                    && open_timeout.is_some_and(|t| now.duration_since(c.connected_at) >= t);
                nr_open_timeouts += never_opened as u64;
                never_opened || st.session.idle_expired(now)
            })
            .cloned()
            .collect();
        Metrics::add(&shard.metrics.nr_open_timeouts, nr_open_timeouts);
        for conn in expired {
            // Not open: just closed (the reason is not reported).
            conn.end(CloseReason::IdleTimeout);
        }
    }
}

/// Publishes control messages that did not fit in the ring to ingest when
/// they were sent (the ring was full); the full-ring policy is to wait.
async fn control_backlog_loop(shard: Rc<Shard>) {
    loop {
        shard.control_backlog.wait().await;
        while shard.to_ingest.borrow_mut().try_flush() > 0 {
            glommio::timer::sleep(Duration::from_micros(50)).await;
        }
    }
}

async fn shutdown(shard: &Rc<Shard>) {
    shard.stop_accepting.notify();
    let conns: Vec<Rc<Conn>> = shard.conns.borrow().values().cloned().collect();
    for conn in conns {
        conn.end(CloseReason::Shutdown);
    }
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while !shard.conns.borrow().is_empty() && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        futures_lite::future::or(shard.session_removed.wait(), glommio::timer::sleep(left)).await;
    }
}

impl Shard {
    /// A session passed its OPEN_REQ checks: hold its output, count its
    /// Client Events keys, and ask ingest to register it (`OpenAck` follows).
    pub fn opened(&self, conn: &Rc<Conn>) {
        // Its max_sessions slot was taken with the OPEN_REQ (`reserve_session`).
        self.pending_done();
        let mut st = conn.state.borrow_mut();
        st.was_open = true;
        st.held = true;
        let session = &st.session;
        let mut interest_up = Vec::new();
        if let Some(monitor) = requests::client_events_monitor(session) {
            let mut index = self.monitors.borrow_mut();
            for key in monitor.watch.keys() {
                if index.count_up(key) {
                    interest_up.push(key);
                }
            }
            st.client_events = Some(monitor);
        }
        let session = &st.session;
        self.send_to_ingest(ToIngest::SessionOpened {
            shard: self.index,
            id: conn.id,
            peer: session.peer,
            version: session.version,
            services: session.services,
            call_mask: session.call_mask,
            agent_mask: session.agent_mask,
            client: session.client.clone(),
            interest_up,
        });
    }

    /// Ingest registered the session: queue its OPEN_CONF (with its agent's
    /// state) and the Client Monitor snapshot, make it reachable for events,
    /// release its held output and let its reader go on.
    pub fn activate(
        &self,
        conn: &Rc<Conn>,
        agent: Option<crate::status::AgentView>,
        snapshot: Vec<Arc<Event>>,
    ) {
        use crate::proto::constants::service;
        let mut st = conn.state.borrow_mut();
        if !st.held {
            return;
        }
        st.held = false;
        if st.session.is_open() {
            let conn::ConnState { session, out, .. } = &mut *st;
            session.confirm_open(&self.status.borrow(), agent.as_ref(), &mut out.local);
        }
        let services = st.session.services;
        if let Some(monitor) = st.client_events.clone() {
            self.monitors.borrow_mut().insert(monitor);
        }
        let version = st.session.version;
        for event in snapshot {
            if let Some(bytes) = event.bytes_at(version) {
                st.out.local.extend_from_slice(bytes);
            }
        }
        drop(st);
        // The snapshot counts against the bound like any other output.
        if dispatch::bound_output(self, conn) {
            return;
        }
        if services & service::ALL_EVENTS != 0 {
            self.all_events.borrow_mut().push(conn.clone());
        }
        if services & service::PERIPHERAL_MONITOR != 0 {
            self.peripheral_monitor.borrow_mut().push(conn.clone());
        }
        if services & service::CLIENT_MONITOR != 0 {
            self.client_monitor.borrow_mut().push(conn.clone());
        }
        conn.write_ready.notify();
        conn.activated.notify();
    }

    /// A session ended: drop its monitors, forget it everywhere, tell ingest.
    pub fn remove(&self, conn: &Rc<Conn>, reason: CloseReason) {
        self.conns.borrow_mut().remove(&conn.id);
        for list in [
            &self.all_events,
            &self.peripheral_monitor,
            &self.client_monitor,
        ] {
            list.borrow_mut().retain(|c| c.id != conn.id);
        }
        Metrics::add_signed(&self.metrics.nr_connected, -1);
        let interest_down = requests::drop_session_monitors(self, conn);
        let st = conn.state.borrow();
        if st.was_open {
            self.release_session();
        } else {
            self.pending_done();
        }
        if st.was_open {
            self.send_to_ingest(ToIngest::SessionClosed {
                shard: self.index,
                id: conn.id,
                status: reason.status(),
                services: st.session.services,
                interest_down,
            });
        }
        drop(st);
        self.session_removed.notify();
    }

    /// Take one of the router's `max_sessions` slots for an OPEN_REQ; false
    /// when there is none (the first refusal of an episode is logged).
    pub fn reserve_session(&self) -> bool {
        let metrics = &self.metrics;
        let max = self.config.limits.max_sessions as u64;
        let taken = metrics
            .nr_sessions
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
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
    pub fn release_session(&self) {
        let metrics = &self.metrics;
        Metrics::add_signed(&metrics.nr_sessions, -1);
        if metrics.at_session_limit.load(Ordering::Relaxed)
            && (metrics.nr_sessions.load(Ordering::Relaxed) as usize)
                < self.config.limits.max_sessions
            && metrics.at_session_limit.swap(false, Ordering::Relaxed)
        {
            tracing::info!(
                refused_so_far = metrics.nr_refused.load(Ordering::Relaxed),
                "below max_sessions again"
            );
        }
    }

    /// A connection stopped being one not yet open (it opened, or ended).
    fn pending_done(&self) {
        let metrics = &self.metrics;
        Metrics::add_signed(&metrics.nr_pending, -1);
        if metrics.at_pending_limit.load(Ordering::Relaxed)
            && (metrics.nr_pending.load(Ordering::Relaxed) as usize)
                < self.config.limits.max_pending_opens
            && metrics.at_pending_limit.swap(false, Ordering::Relaxed)
        {
            tracing::info!(
                refused_so_far = metrics.nr_refused_pending.load(Ordering::Relaxed),
                "below max_pending_opens again"
            );
        }
    }

    /// Queue a control message for ingest (flushed at once; a full ring is
    /// flushed again at the end of the next batch).
    pub fn send_to_ingest(&self, item: ToIngest) {
        let mut tx = self.to_ingest.borrow_mut();
        tx.stage(item);
        if tx.try_flush() > 0 {
            self.control_backlog.notify();
        }
    }

    /// A status snapshot from ingest; the first one opens the doors.
    pub fn set_status(&self, status: Arc<PgStatus>) {
        *self.status.borrow_mut() = status;
        if !self.status_known.replace(true) {
            self.status_ready.notify();
            if let Some(ready) = self.ready.borrow_mut().take() {
                let _ = ready.send(self.index);
            }
        }
    }

    pub fn conn(&self, id: u32) -> Option<Rc<Conn>> {
        self.conns.borrow().get(&id).cloned()
    }
}
