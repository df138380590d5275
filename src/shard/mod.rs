//! A shard core: its listener on the shared port (SO_REUSEPORT), the sessions
//! it accepted, and the dispatch of ring batches from ingest into session
//! output buffers — one socket write per dirty session per batch. Everything
//! here lives on one executor: no locks, no shared mutable state.
//!
//! The routing rules are sans I/O in [`core::ShardCore`] (plain data, unit
//! tested); this module is its driver: glommio tasks that accept, read,
//! write, drain the ring from ingest and tick the clock, feed the core what
//! happened, and carry out what it staged ([`Shard::with_core`]).
//!
//! * `core` — the shard's sessions and routing state, sans I/O
//! * `dispatch` — the event path: matching events to sessions, output bound
//! * `requests` — monitor and session-monitor requests, ingest's answers
//! * `monitors` — the monitor index (`by_device`, `by_call`, `by_agent`)
//! * `brackets` — BEGIN_CALL/END_CALL around each watcher's calls
//! * `outbox` — a session's queued output (batch arenas + its own bytes)
//! * `conn` — one connection's read and write tasks
//! * `listener` — the listening socket; closing new connections at once
//!   when out of file descriptors

pub mod brackets;
pub mod conn;
pub mod core;
pub mod dispatch;
pub mod listener;
pub mod monitors;
pub mod notify;
pub mod outbox;
pub mod proxy;
pub mod requests;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use self::core::{IngestOutcome, ShardCore};
use crate::config::Config;
use crate::ids::SessionId;
use crate::link::{ToIngest, ToShard};
use crate::metrics::{Metrics, WriteCounts};
use crate::reload::LiveConfig;
use crate::ring::{self, RingRx, RingTx};
use crate::session::server::CloseReason;
use conn::{Conn, Sent};
use listener::{FdReserve, Listener};
use notify::Notify;
use outbox::{Cursor, Outbox};

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
/// Most ring items handled before the batch's writes are issued: bounds the
/// latency the first event of a long burst waits for its write.
const MAX_BATCH: usize = 256;
/// How often a shard folds its latency histogram into the shared metrics.
const LATENCY_MERGE_INTERVAL: Duration = Duration::from_millis(100);
/// Replies (and other output that is not events: OPEN_CONFs, closes) a
/// ring batch writes before the events that come after it may go: the rest
/// waits for the reply writer, which writes this many at a time and drains
/// the ring in between. 2,000 desktops asking at once get 2,000 replies in a
/// few batches, ~3–5 µs of loopback send each: in slices of 64, an event
/// behind them waits ~0.3 ms instead of the whole ~10 ms (docs/design.md
/// §1, "Replies after events").
pub const REPLIES_PER_SLICE: usize = 64;

/// The ring ends and settings a shard starts with (all `Send`).
pub struct ShardSetup {
    pub index: usize,
    pub listen: SocketAddr,
    /// The TLS port and its configuration, when `[tls]` has one.
    pub tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    pub config: Arc<Config>,
    /// The configuration sessions open under, as reloads change it.
    pub live: Arc<LiveConfig>,
    pub metrics: Arc<Metrics>,
    pub from_ingest: RingRx<ToShard>,
    pub to_ingest: RingTx<ToIngest>,
    /// Told once the shard knows the PG status and accepts sessions (so no
    /// session is answered with the status the shard starts with).
    pub ready: std::sync::mpsc::Sender<usize>,
}

/// One shard's driver state, shared by its tasks through `Rc`.
pub struct Shard {
    pub index: usize,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    /// The routing core (borrowed only briefly, never across an await).
    pub core: RefCell<ShardCore>,
    /// Every connection's wake-ups, by session id.
    conns: RefCell<FxHashMap<SessionId, Rc<Conn>>>,
    to_ingest: RefCell<ring::Sender<ToIngest>>,
    /// One per port (clear, TLS): a [`Notify`] wakes one waiter.
    stop_accepting: [Notify; 2],
    /// Notified whenever a session is removed (shutdown waits on it).
    session_removed: Notify,
    /// Control messages are waiting for room in the ring to ingest.
    control_backlog: Notify,
    /// One per port, as `stop_accepting`.
    status_ready: [Notify; 2],
    ready: RefCell<Option<std::sync::mpsc::Sender<usize>>>,
    /// The outbox the driver sends from ([`Shard::send_now`]).
    spare: RefCell<Outbox>,
    /// Batches from ingest: drained by the dispatch loop and, ahead of a
    /// client's bytes, by the connection's reader ([`Shard::events_first`]).
    from_ingest: ring::Receiver<ToShard>,
    events: RefCell<EventClock>,
    /// Ingest said shut down (whichever task drained it); notified too, for
    /// a dispatch loop parked on an empty ring after a reader drained it.
    ingest_done: Cell<bool>,
    ingest_done_wake: Notify,
    /// Sessions whose output a ring batch left to the reply writer
    /// ([`REPLIES_PER_SLICE`]), and its wake-up.
    replies_later: RefCell<std::collections::VecDeque<SessionId>>,
    replies_ready: Notify,
}

/// Bind the shard's listener (SO_REUSEPORT). Called on the shard's executor
/// so the socket belongs to it.
pub fn bind(listen: SocketAddr) -> std::io::Result<Listener> {
    listener::bind(listen)
}

/// Run a shard until shutdown. `listener` (and `tls_listener`, the TLS
/// port's) were bound on this executor.
pub async fn run(setup: ShardSetup, listener: Listener, tls_listener: Option<Listener>) {
    let spin = setup.config.runtime.spin_before_park();
    // Same order as ingest (its event rings first, then the control rings):
    // each connect waits for the peer's, so a different order deadlocks.
    let from_ingest = setup.from_ingest.connect(spin).await;
    let to_ingest = setup.to_ingest.connect().await;
    let core = ShardCore::with_live(setup.index, setup.live.clone(), setup.metrics.clone());
    let shard = Rc::new(Shard {
        index: setup.index,
        config: setup.config,
        metrics: setup.metrics,
        core: RefCell::new(core),
        conns: RefCell::new(FxHashMap::default()),
        from_ingest,
        events: RefCell::new(EventClock::new()),
        ingest_done: Cell::new(false),
        ingest_done_wake: Notify::default(),
        replies_later: RefCell::default(),
        replies_ready: Notify::default(),
        to_ingest: RefCell::new(to_ingest),
        stop_accepting: Default::default(),
        session_removed: Notify::default(),
        control_backlog: Notify::default(),
        status_ready: Default::default(),
        ready: RefCell::new(Some(setup.ready)),
        spare: RefCell::new(Outbox::default()),
    });
    let tls_config = setup.tls.map(|(_, config)| config);
    let acceptor = glommio::spawn_local(accept_loop(shard.clone(), listener, None));
    let tls_acceptor = match (tls_listener, tls_config) {
        (Some(listener), Some(config)) => Some(glommio::spawn_local(accept_loop(
            shard.clone(),
            listener,
            Some(config),
        ))),
        _ => None,
    };
    let idle = glommio::spawn_local(idle_loop(shard.clone()));
    let backlog = glommio::spawn_local(control_backlog_loop(shard.clone()));
    let replies = glommio::spawn_local(reply_loop(shard.clone()));
    dispatch_loop(&shard).await;
    shutdown(&shard).await;
    drop(idle.cancel());
    drop(backlog.cancel());
    drop(replies.cancel());
    acceptor.await;
    if let Some(acceptor) = tls_acceptor {
        acceptor.await;
    }
}

/// Wait for ring batches from ingest and drain them until ingest says shut
/// down. The connections' readers drain too ([`Shard::events_first`]), so
/// this loop is what runs when no client is talking.
async fn dispatch_loop(shard: &Rc<Shard>) {
    while !shard.ingest_done.get() {
        futures_lite::future::or(shard.from_ingest.ready(), shard.ingest_done_wake.wait()).await;
        shard.drain_events();
        // Let connection tasks run between batches.
        futures_lite::future::yield_now().await;
    }
}

/// Write the replies ring batches left over, [`REPLIES_PER_SLICE`] sessions
/// at a time, draining the ring before each slice: events that arrive
/// behind a burst of replies go out first.
async fn reply_loop(shard: Rc<Shard>) {
    let mut slice = Vec::with_capacity(REPLIES_PER_SLICE);
    loop {
        shard.replies_ready.wait().await;
        loop {
            shard.events_first();
            {
                let mut later = shard.replies_later.borrow_mut();
                let n = later.len().min(REPLIES_PER_SLICE);
                slice.extend(later.drain(..n));
            }
            if slice.is_empty() {
                break;
            }
            shard.with_core(|core| core.sessions.wake.append(&mut slice));
            futures_lite::future::yield_now().await;
        }
    }
}

/// The event path's latency bookkeeping: when each event of the batch being
/// drained left ingest's socket read, folded into the shared metrics every
/// [`LATENCY_MERGE_INTERVAL`].
struct EventClock {
    latency: hdrhistogram::Histogram<u64>,
    received: Vec<Instant>,
    last_merge: Instant,
}

impl EventClock {
    fn new() -> EventClock {
        EventClock {
            latency: crate::metrics::latency_histogram(),
            received: Vec::with_capacity(MAX_BATCH),
            last_merge: Instant::now(),
        }
    }
}

/// Accept connections on one port (the clear one, or with `tls` the TLS
/// one) until shutdown.
async fn accept_loop(shard: Rc<Shard>, listener: Listener, tls: Option<Arc<rustls::ServerConfig>>) {
    let port = usize::from(tls.is_some());
    while !shard.core.borrow().status_known() {
        shard.status_ready[port].wait().await;
    }
    // Opened before the descriptors run out (see `listener`).
    let mut reserve = FdReserve::new();
    let mut last_error_log: Option<Instant> = None;
    loop {
        let accepted =
            futures_lite::future::or(async { Some(listener.inner.accept().await) }, async {
                shard.stop_accepting[port].wait().await;
                None
            })
            .await;
        match accepted {
            None => return,
            Some(Ok(stream)) => {
                reserve.accepted(shard.index);
                admit(&shard, stream, tls.as_ref());
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

/// Take in an accepted connection, unless the core refuses it (too many
/// not open yet): then it is closed at once (dropped). On the TLS port its
/// handshake is driven by its read and write tasks like any other bytes.
fn admit(
    shard: &Rc<Shard>,
    stream: glommio::net::TcpStream,
    tls: Option<&Arc<rustls::ServerConfig>>,
) {
    let peer = stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let tls = match tls.map(|config| rustls::ServerConnection::new(config.clone())) {
        None => None,
        Some(Ok(mut tls)) => {
            tls.set_buffer_limit(Some(crate::tls::BUFFER_LIMIT));
            Some(tls)
        }
        Some(Err(e)) => {
            tracing::warn!(shard = shard.index, %peer, error = %e, "TLS connection refused");
            Metrics::add(&shard.metrics.nr_tls_handshake_failures, 1);
            return;
        }
    };
    shard.events_first();
    let Some(id) = shard.with_core(|core| core.admit(peer, Instant::now())) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    conn::apply_socket_buffers(&stream, &shard.config.runtime);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let conn = Rc::new(match tls {
        None => Conn::new(fd),
        Some(tls) => Conn::with_tls(fd, tls, peer),
    });
    shard.conns.borrow_mut().insert(id, conn.clone());
    glommio::spawn_local(conn::serve(shard.clone(), id, conn, stream)).detach();
}

/// Lets the core end sessions past their IdleTimeout and connections that
/// did not open in time.
async fn idle_loop(shard: Rc<Shard>) {
    loop {
        glommio::timer::sleep(IDLE_CHECK_INTERVAL).await;
        shard.with_core(|core| core.tick(Instant::now()));
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
    for stop in &shard.stop_accepting {
        stop.notify();
    }
    shard.with_core(|core| {
        let ids: Vec<SessionId> = core.sessions.ids().collect();
        for id in ids {
            core.end(id, CloseReason::Shutdown);
        }
    });
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while !shard.core.borrow().sessions.is_empty() && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        futures_lite::future::or(shard.session_removed.wait(), glommio::timer::sleep(left)).await;
    }
}

impl Shard {
    /// Drain one batch from ingest into the core: the events reach their
    /// sessions' output and are sent at the batch's end ([`Shard::with_core`]).
    fn drain_events(&self) {
        let mut status_known = false;
        let mut clock = self.events.borrow_mut();
        let clock = &mut *clock;
        self.run_core(REPLIES_PER_SLICE, |core| {
            self.from_ingest.drain(MAX_BATCH, |item| {
                if let ToShard::Event(event) = &item {
                    clock.received.push(event.received);
                }
                match core.on_ingest(item) {
                    IngestOutcome::Continue => {}
                    IngestOutcome::StatusKnown => status_known = true,
                    IngestOutcome::Shutdown => {
                        self.ingest_done.set(true);
                        self.ingest_done_wake.notify();
                    }
                }
            });
            core.end_batch();
        });
        if status_known {
            for ready in &self.status_ready {
                ready.notify();
            }
            if let Some(ready) = self.ready.borrow_mut().take() {
                let _ = ready.send(self.index);
            }
        }
        let now = Instant::now();
        for at in clock.received.drain(..) {
            let nanos = now.saturating_duration_since(at).as_nanos().max(1) as u64;
            let _ = clock.latency.record(nanos);
        }
        if self.ingest_done.get() || now.duration_since(clock.last_merge) >= LATENCY_MERGE_INTERVAL
        {
            self.metrics.merge_latency(&mut clock.latency);
            clock.last_merge = now;
        }
    }

    /// Events first: drain what ingest has queued before a client's bytes
    /// are handled. When many clients talk at once (2,000 desktops whose
    /// heartbeats fell in the same millisecond) their readers run one after
    /// another ahead of the dispatch loop; this way each event waits for
    /// one reader's work, not for all of them (docs/design.md §1, "Events
    /// first").
    pub fn events_first(&self) {
        if !self.from_ingest.is_empty() {
            self.drain_events();
        }
    }

    /// Run `f` on the core, then carry out what it staged: output to send
    /// (at once, see [`Shard::send_now`]), control messages to ingest
    /// (flushed at once; a full ring is retried by the backlog task),
    /// sockets to drop, readers to let go on.
    pub fn with_core<R>(&self, f: impl FnOnce(&mut ShardCore) -> R) -> R {
        self.run_core(usize::MAX, f)
    }

    /// [`Shard::with_core`], sending the sessions that got events first,
    /// then at most `replies_now` others; the rest go to the reply writer
    /// ([`REPLIES_PER_SLICE`]). A session's output is one queue, so its
    /// order holds whichever send takes it.
    fn run_core<R>(&self, replies_now: usize, f: impl FnOnce(&mut ShardCore) -> R) -> R {
        let mut core = self.core.borrow_mut();
        let r = f(&mut core);
        let conns = self.conns.borrow();
        let mut delivered = std::mem::take(&mut core.sessions.delivered);
        let mut wake = std::mem::take(&mut core.sessions.wake);
        let now = wake.len().min(replies_now);
        let later = wake.split_off(now);
        for id in delivered.drain(..).chain(wake.drain(..)) {
            if let Some(conn) = conns.get(&id) {
                self.send_now(&mut core, id, conn);
            }
        }
        if !later.is_empty() {
            self.replies_later.borrow_mut().extend(later);
            self.replies_ready.notify();
        }
        core.sessions.delivered = delivered;
        core.sessions.wake = wake;
        let sessions = &mut core.sessions;
        for id in sessions.kill.drain(..) {
            if let Some(conn) = conns.get(&id) {
                conn.kill.notify();
            }
        }
        for id in sessions.activated.drain(..) {
            if let Some(conn) = conns.get(&id) {
                conn.activated.notify();
            }
        }
        if !core.to_ingest.is_empty() {
            let mut tx = self.to_ingest.borrow_mut();
            for item in core.to_ingest.drain(..) {
                tx.stage(item);
            }
            if tx.try_flush() > 0 {
                self.control_backlog.notify();
            }
        }
        r
    }

    /// Where this shard's socket writes are counted.
    pub fn write_counts(&self) -> WriteCounts<'_> {
        WriteCounts::new(&self.metrics, self.index)
    }

    /// Send session `id`'s output from here: one vectored non-blocking send
    /// (more while the socket takes them), no task woken. What the socket
    /// does not take, output while a write is in flight, and a closing
    /// session's last bytes are the writer task's.
    fn send_now(&self, core: &mut ShardCore, id: SessionId, conn: &Conn) {
        if !core.may_send_now(id) {
            conn.write_ready.notify();
            return;
        }
        // The writer is writing records it took out of rustls: the rest
        // waits for it (it takes the output when done).
        if conn.tls.as_ref().is_some_and(|tls| tls.busy.get()) {
            conn.write_ready.notify();
            return;
        }
        let mut out = self.spare.borrow_mut();
        if !core.take_output(id, &mut out) {
            return;
        }
        let sent = match &conn.tls {
            None => conn::send_now(self.write_counts(), conn.fd, &out, Cursor::default()),
            Some(tls) => conn::tls_send_now(
                self.write_counts(),
                conn.fd,
                &mut tls.conn.borrow_mut(),
                &out,
                Cursor::default(),
            ),
        };
        match sent {
            Sent::All => {
                out.clear();
                core.written(id);
            }
            Sent::Stopped(at) => {
                *conn.rest.borrow_mut() = Some((std::mem::take(&mut *out), at));
                conn.write_ready.notify();
            }
        }
    }

    /// A connection's tasks ended: the core forgets the session.
    ///
    /// Its socket is closed already, and the kernel may have handed the
    /// same descriptor to a connection accepted since: the session and its
    /// [`Conn::fd`] are forgotten before anything can send again. Only then
    /// are the queued events drained — a storm of closes (2,000 desktops
    /// gone at once) runs 2,000 tasks ahead of the dispatch loop, so each
    /// drains the events, after forgetting its own session.
    fn remove(&self, id: SessionId, reason: CloseReason) {
        self.conns.borrow_mut().remove(&id);
        self.with_core(|core| core.remove(id, reason));
        self.session_removed.notify();
        self.events_first();
    }
}
