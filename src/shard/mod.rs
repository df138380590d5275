//! A shard core: its listener on the shared port (SO_REUSEPORT), the sessions
//! it accepted, and the dispatch of ring batches from ingest into session
//! output buffers — one socket write per dirty session per batch. Everything
//! here lives on one executor: no locks, no shared mutable state.
//!
//! * `session` — the protocol state machine (sans I/O)
//! * `conn` — one connection's read and write tasks
//! * `dispatch` — matching events to sessions, output bound, flush

pub mod conn;
pub mod dispatch;
pub mod notify;
pub mod session;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::net::TcpListener;

use crate::config::Config;
use crate::event::Event;
use crate::ingest::ToIngest;
use crate::metrics::Metrics;
use crate::ring::{self, RingRx, RingTx};
use crate::status::PgStatus;
use conn::Conn;
use notify::Notify;
use session::CloseReason;

/// What ingest sends a shard, in stream order.
pub enum ToShard {
    Event(Arc<Event>),
    /// A new PG status snapshot (for OPEN_CONF and the SYSTEM_EVENTs after it).
    Status(Arc<PgStatus>),
    /// The upstream was lost: call state is unknown now (design.md §4.12).
    UpstreamLost,
    /// Stop accepting, tell every session, flush, exit.
    Shutdown,
}

/// Session ids are unique across the router (Client Monitor names sessions by them).
static NEXT_SESSION_ID: AtomicU32 = AtomicU32::new(1);

fn next_session_id() -> u32 {
    NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed)
}

/// How long a closing session may take to flush its last bytes before its
/// socket is dropped anyway (a client that stopped reading must not hold up
/// shutdown or a slow-consumer cut).
pub const CLOSE_FLUSH_GRACE: Duration = Duration::from_secs(1);
/// How often idle timeouts are checked (IdleTimeout is whole seconds ≥ 20).
const IDLE_CHECK_INTERVAL: Duration = Duration::from_millis(500);
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
}

/// One shard's state, shared by its tasks through `Rc`.
pub struct Shard {
    pub index: usize,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub status: RefCell<Arc<PgStatus>>,
    /// Every connected session, by id.
    pub conns: RefCell<HashMap<u32, Rc<Conn>>>,
    /// Open sessions granted All Events (dispatch walks this).
    pub all_events: RefCell<Vec<Rc<Conn>>>,
    /// Sessions with output appended in the current batch.
    pub dirty: RefCell<Vec<Rc<Conn>>>,
    pub to_ingest: RefCell<ring::Sender<ToIngest>>,
    accepting: Cell<bool>,
    stop_accepting: Notify,
    /// Notified whenever a session is removed (shutdown waits on it).
    session_removed: Notify,
}

/// Bind the shard's listener (SO_REUSEPORT is set by glommio). Called on the
/// shard's executor so the socket belongs to it.
pub fn bind(listen: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(listen).map_err(|e| std::io::Error::other(e.to_string()))
}

/// Run a shard until shutdown. `listener` was bound on this executor.
pub async fn run(setup: ShardSetup, listener: TcpListener) {
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
        conns: RefCell::new(HashMap::new()),
        all_events: RefCell::new(Vec::new()),
        dirty: RefCell::new(Vec::new()),
        to_ingest: RefCell::new(to_ingest),
        accepting: Cell::new(true),
        stop_accepting: Notify::default(),
        session_removed: Notify::default(),
    });
    let acceptor = glommio::spawn_local(accept_loop(shard.clone(), listener));
    let idle = glommio::spawn_local(idle_loop(shard.clone()));
    dispatch::run(&shard, &mut from_ingest).await;
    shutdown(&shard).await;
    drop(idle.cancel());
    acceptor.await;
}

async fn accept_loop(shard: Rc<Shard>, listener: TcpListener) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            shard.stop_accepting.wait().await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok(stream)) => admit(&shard, stream),
            Some(Err(e)) => {
                tracing::warn!(shard = shard.index, error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn admit(shard: &Rc<Shard>, stream: glommio::net::TcpStream) {
    let metrics = &shard.metrics;
    Metrics::add(&metrics.nr_accepted, 1);
    if metrics.nr_connected.load(Ordering::Relaxed) as usize >= shard.config.limits.max_sessions {
        Metrics::add(&metrics.nr_refused, 1);
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

async fn idle_loop(shard: Rc<Shard>) {
    loop {
        glommio::timer::sleep(IDLE_CHECK_INTERVAL).await;
        let now = Instant::now();
        let expired: Vec<Rc<Conn>> = shard
            .conns
            .borrow()
            .values()
            .filter(|c| c.state.borrow().session.idle_expired(now))
            .cloned()
            .collect();
        for conn in expired {
            conn.end(CloseReason::IdleTimeout);
        }
    }
}

async fn shutdown(shard: &Rc<Shard>) {
    shard.accepting.set(false);
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
    /// A session just opened: make it reachable for events and tell ingest.
    pub fn register(&self, conn: &Rc<Conn>) {
        let st = conn.state.borrow();
        if st.session.services & crate::proto::constants::service::ALL_EVENTS != 0 {
            self.all_events.borrow_mut().push(conn.clone());
        }
        self.to_ingest.borrow_mut().stage(ToIngest::SessionOpened {
            shard: self.index,
            id: conn.id,
            peer: st.session.peer,
            version: st.session.version,
            services: st.session.services,
            client: st.session.client.clone(),
        });
        self.to_ingest.borrow_mut().try_flush();
    }

    /// A session ended: forget it everywhere and tell ingest.
    pub fn remove(&self, conn: &Rc<Conn>, reason: CloseReason) {
        self.conns.borrow_mut().remove(&conn.id);
        self.all_events.borrow_mut().retain(|c| c.id != conn.id);
        Metrics::add_signed(&self.metrics.nr_connected, -1);
        if conn.state.borrow().was_open {
            self.to_ingest.borrow_mut().stage(ToIngest::SessionClosed {
                shard: self.index,
                id: conn.id,
                status: reason.status(),
            });
            self.to_ingest.borrow_mut().try_flush();
        }
        self.session_removed.notify();
    }

    pub fn is_accepting(&self) -> bool {
        self.accepting.get()
    }
}
