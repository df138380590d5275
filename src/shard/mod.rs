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

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use self::core::{IngestOutcome, ShardCore};
use crate::config::Config;
use crate::ids::SessionId;
use crate::link::{ToIngest, ToShard};
use crate::metrics::Metrics;
use crate::ring::{self, RingRx, RingTx};
use crate::session::server::CloseReason;
use conn::Conn;
use listener::{FdReserve, Listener};
use notify::Notify;

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
    stop_accepting: Notify,
    /// Notified whenever a session is removed (shutdown waits on it).
    session_removed: Notify,
    /// Control messages are waiting for room in the ring to ingest.
    control_backlog: Notify,
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
    let core = ShardCore::new(setup.index, setup.config.clone(), setup.metrics.clone());
    let shard = Rc::new(Shard {
        index: setup.index,
        config: setup.config,
        metrics: setup.metrics,
        core: RefCell::new(core),
        conns: RefCell::new(FxHashMap::default()),
        to_ingest: RefCell::new(to_ingest),
        stop_accepting: Notify::default(),
        session_removed: Notify::default(),
        control_backlog: Notify::default(),
        status_ready: Notify::default(),
        ready: RefCell::new(Some(setup.ready)),
    });
    let acceptor = glommio::spawn_local(accept_loop(shard.clone(), listener));
    let idle = glommio::spawn_local(idle_loop(shard.clone()));
    let backlog = glommio::spawn_local(control_backlog_loop(shard.clone()));
    dispatch_loop(&shard, &mut from_ingest).await;
    shutdown(&shard).await;
    drop(idle.cancel());
    drop(backlog.cancel());
    acceptor.await;
}

/// Drain ring batches from ingest into the core until ingest says shut
/// down; the writes a batch caused are woken once, at its end.
async fn dispatch_loop(shard: &Rc<Shard>, from_ingest: &mut ring::Receiver<ToShard>) {
    let mut shutdown = false;
    let mut latency = crate::metrics::latency_histogram();
    let mut received: Vec<Instant> = Vec::with_capacity(MAX_BATCH);
    let mut last_merge = Instant::now();
    while !shutdown {
        from_ingest.ready().await;
        let mut status_known = false;
        shard.with_core(|core| {
            from_ingest.drain(MAX_BATCH, |item| {
                if let ToShard::Event(event) = &item {
                    received.push(event.received);
                }
                match core.on_ingest(item) {
                    IngestOutcome::Continue => {}
                    IngestOutcome::StatusKnown => status_known = true,
                    IngestOutcome::Shutdown => shutdown = true,
                }
            });
            core.end_batch();
        });
        if status_known {
            shard.status_ready.notify();
            if let Some(ready) = shard.ready.borrow_mut().take() {
                let _ = ready.send(shard.index);
            }
        }
        let now = Instant::now();
        for at in received.drain(..) {
            let _ = latency.record(now.saturating_duration_since(at).as_nanos().max(1) as u64);
        }
        if shutdown || now.duration_since(last_merge) >= LATENCY_MERGE_INTERVAL {
            shard.metrics.merge_latency(&mut latency);
            last_merge = now;
        }
        // Let connection tasks run between batches.
        futures_lite::future::yield_now().await;
    }
}

async fn accept_loop(shard: Rc<Shard>, listener: Listener) {
    while !shard.core.borrow().status_known() {
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

/// Take in an accepted connection, unless the core refuses it (too many
/// not open yet): then it is closed at once (dropped).
fn admit(shard: &Rc<Shard>, stream: glommio::net::TcpStream) {
    let peer = stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let Some(id) = shard.with_core(|core| core.admit(peer, Instant::now())) else {
        return;
    };
    let _ = stream.set_nodelay(true);
    conn::apply_socket_buffers(&stream, &shard.config.runtime);
    let conn = Rc::new(Conn::default());
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
    shard.stop_accepting.notify();
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
    /// Run `f` on the core, then carry out what it staged: control messages
    /// to ingest (flushed at once; a full ring is retried by the backlog
    /// task), writers to wake, sockets to drop, readers to let go on.
    pub fn with_core<R>(&self, f: impl FnOnce(&mut ShardCore) -> R) -> R {
        let mut core = self.core.borrow_mut();
        let r = f(&mut core);
        let conns = self.conns.borrow();
        let sessions = &mut core.sessions;
        for id in sessions.wake.drain(..) {
            if let Some(conn) = conns.get(&id) {
                conn.write_ready.notify();
            }
        }
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

    /// A connection's tasks ended: the core forgets the session.
    fn remove(&self, id: SessionId, reason: CloseReason) {
        self.with_core(|core| core.remove(id, reason));
        self.conns.borrow_mut().remove(&id);
        self.session_removed.notify();
    }
}
