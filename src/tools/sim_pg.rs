//! `ctirouter sim-pg`: a standalone simulated CTI Server on one thread (mio).
//! Any number of clients open at their own protocol version (13..=24); All
//! Events clients get the simulator's stream (`crate::sim`), paced in real
//! time × speed. Each event is encoded once at v24 and transcoded once per
//! version some client uses (`event::Event::bytes_at`), filtered by each
//! client's masks, and written once per client per loop turn. A client that
//! falls more than the output bound behind is dropped.
//!
//! Like a real CTI Server it is one stream for everyone: a client that opens
//! later sees the stream from then on. It serves All Events only (monitor
//! requests get E_CTI_FUNCTION_NOT_AVAILABLE).

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

use super::sim_pg_client::{Gone, SimClient};
use crate::config::{Config, DEFAULT_OUTPUT_BOUND};
use crate::event::Event;
use crate::ids::{MonitorId, Services, SessionId};
use crate::proto::constants::msg;
use crate::proto::{Message, Version};
use crate::session::server::Context;
use crate::sim::{SimConfig, Simulator};
use crate::status::PgStatus;

/// Default address: CTI Server instance 1, side A (42027 + 40; docs/protocol.md
/// §1), so it runs beside a router on the default 42027.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:42067";
/// Longest the loop sleeps: how soon the stop flag is seen.
const TICK: Duration = Duration::from_millis(50);
/// Most events produced per loop turn (reads and accepts run in between).
const MAX_EVENTS_PER_TURN: usize = 4096;
/// At speed 0, events are produced while some open client has less than
/// this unsent (or half its output bound, if smaller): as fast as the fastest
/// reader; the ones that fall behind reach the bound and are dropped.
const FLAT_OUT_HIGH_WATER: usize = 256 * 1024;
const LISTENER: Token = Token(0);

/// What `sim-pg` runs with.
#[derive(Debug, Clone)]
pub struct SimPgOptions {
    pub listen: SocketAddr,
    pub sim: SimConfig,
    /// Simulated seconds per real second; 0 = as fast as the clients read.
    pub speed: f64,
    /// Unsent bytes per client before it is dropped.
    pub output_bound: usize,
}

impl Default for SimPgOptions {
    fn default() -> Self {
        SimPgOptions {
            listen: DEFAULT_LISTEN.parse().expect("constant address parses"),
            sim: SimConfig::default(),
            speed: 1.0,
            output_bound: DEFAULT_OUTPUT_BOUND,
        }
    }
}

/// The server's state.
struct Server {
    options: SimPgOptions,
    poll: Poll,
    listener: TcpListener,
    clients: HashMap<Token, SimClient>,
    next_token: usize,
    /// Session checks use the router's defaults (no client allow-list).
    config: Config,
    status: PgStatus,
    sim: Simulator,
    started: Instant,
    /// The next event, produced but not yet due.
    next: Option<(Duration, Message)>,
    nr_events: u64,
    frame: Vec<u8>,
}

/// Serve until `stop` is set. `on_listening` gets the bound address (port 0
/// resolved) before the first client is accepted.
pub fn run(
    options: SimPgOptions,
    stop: &AtomicBool,
    on_listening: impl FnOnce(SocketAddr),
) -> io::Result<()> {
    let mut server = Server::bind(options)?;
    on_listening(server.listener.local_addr()?);
    let mut events = Events::with_capacity(1024);
    while !stop.load(Ordering::Relaxed) {
        let timeout = server.timeout(Instant::now());
        match server.poll.poll(&mut events, Some(timeout)) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => other?,
        }
        for event in events.iter() {
            match event.token() {
                LISTENER => server.accept()?,
                token => server.on_readable(token),
            }
        }
        server.emit_due(Instant::now());
        server.flush_and_reap(Instant::now());
    }
    server.shut_down();
    Ok(())
}

impl Server {
    fn bind(options: SimPgOptions) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(options.listen)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let sim = Simulator::new(options.sim.clone());
        let status = PgStatus::online(sim.peripherals());
        tracing::info!(
            agents = options.sim.agents,
            calls_per_sec = options.sim.calls_per_sec,
            seed = options.sim.seed,
            speed = options.speed,
            "sim-pg: simulated CTI Server"
        );
        Ok(Server {
            options,
            poll,
            listener,
            clients: HashMap::new(),
            next_token: 1,
            config: Config::default(),
            status,
            sim,
            started: Instant::now(),
            next: None,
            nr_events: 0,
            frame: Vec::with_capacity(1024),
        })
    }

    /// How long the next poll may wait: until the next event is due (or at
    /// once at speed 0 when events can go out), at most [`TICK`].
    fn timeout(&mut self, now: Instant) -> Duration {
        if self.options.speed <= 0.0 {
            return if self.can_flat_out() {
                Duration::ZERO
            } else {
                TICK
            };
        }
        let (due, _) = self.next.get_or_insert_with(|| self.sim.next_event());
        let at = self.started + due.div_f64(self.options.speed);
        at.saturating_duration_since(now).min(TICK)
    }

    /// Speed 0: produce while an open client keeps up.
    fn can_flat_out(&self) -> bool {
        let high_water = FLAT_OUT_HIGH_WATER.min(self.options.output_bound / 2);
        self.clients
            .values()
            .any(|c| c.is_open() && c.pending() < high_water)
    }

    fn accept(&mut self) -> io::Result<()> {
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // Out of descriptors and the like: keep serving the others.
                Err(e) => {
                    tracing::warn!(error = %e, "sim-pg: accept failed");
                    return Ok(());
                }
            };
            let _ = stream.set_nodelay(true);
            let token = Token(self.next_token);
            self.next_token += 1;
            self.poll.registry().register(
                &mut stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            )?;
            let id = SessionId(token.0 as u32);
            tracing::debug!(session = %id, %peer, "sim-pg: client connected");
            self.clients
                .insert(token, SimClient::new(stream, id, peer, Instant::now()));
        }
    }

    fn on_readable(&mut self, token: Token) {
        let Some(client) = self.clients.get_mut(&token) else {
            return;
        };
        let next_monitor_id = Cell::new(0u32);
        let allocate = || {
            next_monitor_id.set(next_monitor_id.get() + 1);
            MonitorId(next_monitor_id.get())
        };
        let ctx = Context {
            config: &self.config,
            status: &self.status,
            next_monitor_id: &allocate,
            served_services: Services::ALL_EVENTS,
            at_session_limit: false,
        };
        client.on_readable(&ctx, Instant::now());
    }

    /// Produce every event that is due and queue it for the clients that want it.
    fn emit_due(&mut self, now: Instant) {
        for _ in 0..MAX_EVENTS_PER_TURN {
            if self.options.speed <= 0.0 && !self.can_flat_out() {
                return;
            }
            let (due, message) = self.next.take().unwrap_or_else(|| self.sim.next_event());
            if self.options.speed > 0.0 && self.started + due.div_f64(self.options.speed) > now {
                self.next = Some((due, message));
                return;
            }
            self.emit(&message);
        }
    }

    /// Encode once at v24, then copy each client's version to it.
    fn emit(&mut self, message: &Message) {
        self.frame.clear();
        if message.encode(Version::MAX, &mut self.frame).is_err() {
            return;
        }
        self.nr_events += 1;
        let event = match Event::new(self.nr_events, Version::MAX, self.frame.as_slice().into()) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(error = %e, "sim-pg: simulated event does not decode");
                return;
            }
        };
        let is_system = event.message_type() == msg::SYSTEM_EVENT;
        let bound = self.options.output_bound;
        for client in self.clients.values_mut().filter(|c| c.is_open()) {
            if !is_system && !client.session.wants_all_events_bit(event.mask_bit) {
                continue;
            }
            if let Some(bytes) = event.bytes_at(client.session.version) {
                client.queue(bytes, bound);
            }
        }
    }

    /// One write attempt per client with output; drop the ones that are done.
    fn flush_and_reap(&mut self, now: Instant) {
        let mut gone = Vec::new();
        for (token, client) in self.clients.iter_mut() {
            client.check_idle(now);
            if client.pending() > 0 {
                client.flush();
            }
            if let Some(why) = client.gone(now) {
                gone.push((*token, why));
            }
        }
        for (token, why) in gone {
            if let Some(mut client) = self.clients.remove(&token) {
                let _ = self.poll.registry().deregister(client.stream_mut());
                if why != Gone::Closed {
                    tracing::debug!(session = %client.session.id, ?why, "sim-pg: client dropped");
                }
            }
        }
    }

    /// Tell every open client the server goes offline; best-effort flush.
    fn shut_down(&mut self) {
        let now = Instant::now();
        for client in self.clients.values_mut() {
            client.shut_down(now);
            client.flush();
        }
        tracing::info!(nr_events = self.nr_events, "sim-pg stopped");
    }
}
