//! `ctirouter sim-pg`: a standalone simulated CTI Server on one thread (mio).
//! Any number of clients open at their own protocol version (13..=24) and
//! get the simulator's stream (`crate::sim`), paced in real time × speed.
//! Each event is encoded once at v24 and transcoded once per version some
//! client uses (`event::Event::bytes_at`), filtered by each client's masks,
//! and written once per client per loop turn. A client that falls more than
//! the output bound behind is dropped.
//!
//! Like a real CTI Server it is one stream for everyone: a client that opens
//! later sees the stream from then on. It serves (docs/requests.md §9):
//!
//! * **All Events** — every event;
//! * **Client Events** — the events of the session's agent and of the calls
//!   its device takes part in, chosen and bracketed the way the router
//!   chooses them (its call-party tracker, `Monitor::client_events`, call
//!   brackets), MonitorID and SessionID patched in;
//! * **Client Control** and **Call Data Update** — each request that passes
//!   the session layer's checks (`Outcome::Proxy`: the router's grant and
//!   admission rules, `status.upstream_services` being what sim-pg answers)
//!   goes to the simulator (`Simulator::request`) under a sim-pg-wide
//!   InvokeID; its answer comes out of the stream in order and goes to that
//!   client alone, with the client's InvokeID, at its version. A Client Events
//!   session (without All Events) acts only on its own agent, device and
//!   calls (the router's `session::scope`), and controls its instrument
//!   alone (another ClientID: E_CTI_DEVICE_IN_USE).
//!
//! * **Miscellaneous** — statistics, desk settings, SET_APP_DATA,
//!   recording and USER_MESSAGE go to the simulator the same way. When it
//!   confirms a USER_MESSAGE, sim-pg delivers the USER_MESSAGE_EVENT (the
//!   sender's ClientID, the text) to the sessions of the addressed ClientID
//!   (TO_CLIENT) or to every open session (TO_ALL), as the CTI Server does;
//!   a TO_CLIENT message to a ClientID with no session here gets
//!   FAILURE_CONF(E_CTI_CLIENT_NOT_FOUND) instead of the CONF.
//!
//! * **Supervisor** — only to a Client Events session whose agent
//!   supervises a team in the simulated world (anyone else asking for it:
//!   FAILURE_CONF(E_CTI_FUNCTION_NOT_AVAILABLE)); it gets its teams'
//!   AGENT_TEAM_CONFIG_EVENTs after OPEN_CONF, SUPERVISOR_ASSIST_EVENTs of
//!   its agents, and after MONITOR_AGENT_TEAM_START the team's agent states,
//!   addressed to it alone (`sim_pg_supervisor`).
//!
//! Peripheral Monitor and Client Monitor are not served (their requests get
//! E_CTI_FUNCTION_NOT_AVAILABLE). Fault switches for tests: `--grant MASK`
//! (grant only these services), `--reply-delay-ms` (answers held back in
//! real time; the events a request caused are not), `--drop-replies
//! PERCENT` (answers lost, deterministically by `--seed`).

use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

use super::sim_pg_client::{Gone, Host, SimClient};
use super::sim_pg_requests::{Asker, Controllers, Fate, Requests};
use super::sim_pg_supervisor::{self as supervisor, Supervisors};
use crate::config::{Config, DEFAULT_OUTPUT_BOUND};
use crate::event::Event;
use crate::ids::{InvokeId, MonitorId, Services, SessionId};
use crate::ingest::tracker::CallTracker;
use crate::proto::constants::{distribution, msg, status as cti_status};
use crate::proto::frame::{patch_invoke_id, HEADER_LEN};
use crate::proto::msg::{FailureConf, UserMessageReq};
use crate::proto::{routing, CtiString, DecodeOptions, Message, RequestError, Version};
use crate::session::scope::{self, Agent};
use crate::session::server::{failure_conf, CloseReason, Context, Phase, Session};
use crate::shard::monitors::{Delivery, MatchScratch, Monitor, MonitorIndex};
use crate::sim::{MonitorIds, SimConfig, Simulator, To};
use crate::status::PgStatus;

/// Default address: CTI Server instance 1, side A (42027 + 40; docs/protocol.md
/// §1), so it runs beside a router on the default 42027.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:42067";
/// The event services sim-pg sends itself.
pub const EVENT_SERVICES: Services = Services(Services::ALL_EVENTS.0 | Services::CLIENT_EVENTS.0);
/// The request services the simulator answers (agent-state control only is
/// what a `--grant` without Client Control but with 0x2000 leaves).
pub const REQUEST_SERVICES: Services = Services(
    Services::CLIENT_CONTROL.0
        | Services::CALL_DATA_UPDATE.0
        | Services::AGENT_STATE_CONTROL_ONLY.0,
);
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
    /// Services it may grant (`--grant`): what it serves, masked by this.
    pub grant: Services,
    /// Real time each answer is held before it goes out (`--reply-delay-ms`).
    pub reply_delay: Duration,
    /// Percentage (0..=100) of answers never sent (`--drop-replies`).
    pub drop_replies: f64,
}

impl Default for SimPgOptions {
    fn default() -> Self {
        SimPgOptions {
            listen: DEFAULT_LISTEN.parse().expect("constant address parses"),
            sim: SimConfig::default(),
            speed: 1.0,
            output_bound: DEFAULT_OUTPUT_BOUND,
            grant: Services(u32::MAX),
            reply_delay: Duration::ZERO,
            drop_replies: 0.0,
        }
    }
}

impl SimPgOptions {
    /// The event services it grants (the session layer's `served_services`),
    /// and Supervisor (to supervisors only, `sim_pg_supervisor`).
    pub fn served_services(&self) -> Services {
        (EVENT_SERVICES | Services::SUPERVISOR) & self.grant
    }

    /// The request services it answers: what the session layer reads as the
    /// upstream's grant (`PgStatus::upstream_services`), so it grants and
    /// admits requests exactly as the router does.
    pub fn request_services(&self) -> Services {
        REQUEST_SERVICES & self.grant
    }
}

/// A service mask as `--grant` takes it: `0x…` hexadecimal or decimal.
pub fn parse_mask(text: &str) -> Result<u32, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|e| format!("{text:?}: {e} (give 0x… or decimal)"))
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
    /// Simulated time of the last event sent: the clock at speed 0.
    sim_clock: Duration,
    /// The last turn left events that were due unsent (paced).
    behind: bool,
    /// The router's call-party tracker and agent table: which events reach
    /// a Client Events session, and its scope.
    tracker: CallTracker,
    /// The Client Events sessions' agents.
    monitors: MonitorIndex,
    scratch: MatchScratch,
    /// The simulator's MonitorID counter: sessions' and team monitors' IDs
    /// never collide.
    monitor_ids: MonitorIds,
    requests: Requests,
    controllers: Controllers,
    /// USER_MESSAGE_REQs at the simulator, by its InvokeID: the sender's
    /// ClientID and the message, delivered when the simulator confirms.
    user_messages: HashMap<u32, (CtiString, UserMessageReq)>,
    supervisors: Supervisors,
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
                token => server.on_readable(token, Instant::now()),
            }
        }
        let now = Instant::now();
        server.emit_due(now);
        server.release_held(now);
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
        let monitor_ids = sim.monitor_ids();
        let mut status = PgStatus::online(sim.peripherals());
        status.upstream_services = options.request_services();
        let config = Config::default();
        tracing::info!(
            agents = options.sim.agents,
            manual_agents = options.sim.manual_agents,
            calls_per_sec = options.sim.calls_per_sec,
            seed = options.sim.seed,
            speed = options.speed,
            grants = %(options.served_services() | options.request_services()),
            reply_delay_ms = options.reply_delay.as_millis() as u64,
            drop_replies = options.drop_replies,
            "sim-pg: simulated CTI Server"
        );
        Ok(Server {
            tracker: CallTracker::new(Duration::from_secs(config.limits.call_max_age_secs)),
            requests: Requests::new(options.sim.seed, options.drop_replies, options.reply_delay),
            options,
            poll,
            listener,
            clients: HashMap::new(),
            next_token: 1,
            config,
            status,
            sim,
            started: Instant::now(),
            sim_clock: Duration::ZERO,
            behind: false,
            monitors: MonitorIndex::default(),
            scratch: MatchScratch::new(),
            monitor_ids,
            controllers: Controllers::default(),
            user_messages: HashMap::new(),
            supervisors: Supervisors::default(),
            nr_events: 0,
            frame: Vec::with_capacity(1024),
        })
    }

    /// Simulated time at real time `now` (at speed 0, or while the stream
    /// lags behind its pace: the time of the last event sent): what a
    /// request is taken at, so that it never makes the simulator run ahead
    /// of what has been sent.
    fn sim_now(&self, now: Instant) -> Duration {
        if self.options.speed <= 0.0 || self.behind {
            return self.sim_clock;
        }
        let elapsed = now.saturating_duration_since(self.started).as_secs_f64();
        Duration::try_from_secs_f64(elapsed * self.options.speed).unwrap_or(Duration::MAX)
    }

    /// Real time at which simulated time `due` comes (`None`: never).
    fn real_at(&self, due: Duration) -> Option<Instant> {
        let after = Duration::try_from_secs_f64(due.as_secs_f64() / self.options.speed).ok()?;
        self.started.checked_add(after)
    }

    /// How long the next poll may wait: until the next event or held answer
    /// is due (or at once at speed 0 when events can go out), at most [`TICK`].
    fn timeout(&self, now: Instant) -> Duration {
        let mut wait = TICK;
        if let Some(at) = self.requests.next_release() {
            wait = wait.min(at.saturating_duration_since(now));
        }
        if self.options.speed <= 0.0 {
            return if self.can_flat_out() {
                Duration::ZERO
            } else {
                wait
            };
        }
        match self.real_at(self.sim.next_due()) {
            Some(at) => wait.min(at.saturating_duration_since(now)),
            None => wait,
        }
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

    fn on_readable(&mut self, token: Token, now: Instant) {
        let at = self.sim_now(now);
        let Some(client) = self.clients.get_mut(&token) else {
            return;
        };
        let allocate = || MonitorId(self.monitor_ids.next());
        let ctx = Context {
            config: &self.config,
            status: &self.status,
            next_monitor_id: &allocate,
            served_services: self.options.served_services(),
            at_session_limit: false,
        };
        let mut desk = Desk {
            token,
            at,
            status: &self.status,
            sim: &mut self.sim,
            tracker: &self.tracker,
            monitors: &mut self.monitors,
            requests: &mut self.requests,
            controllers: &mut self.controllers,
            user_messages: &mut self.user_messages,
            supervisors: &mut self.supervisors,
        };
        client.on_readable(&ctx, now, &mut desk);
    }

    /// Send every event that is due (paced: by the simulated time of `now`;
    /// at speed 0: while some client keeps up).
    fn emit_due(&mut self, now: Instant) {
        self.behind = false;
        let until = self.sim_now(now);
        self.behind = true;
        for _ in 0..MAX_EVENTS_PER_TURN {
            let next = if self.options.speed <= 0.0 {
                if !self.can_flat_out() {
                    return;
                }
                Some(self.sim.next_addressed_event())
            } else {
                self.sim.next_addressed_event_until(until)
            };
            let Some((due, to, message)) = next else {
                self.behind = false;
                return;
            };
            self.sim_clock = self.sim_clock.max(due);
            if to == To::All {
                self.emit(&message, now);
            } else {
                let bound = self.options.output_bound;
                supervisor::deliver(&self.supervisors, &mut self.clients, &to, &message, bound);
            }
        }
    }

    /// One message of the simulator's stream: an answer to its asker, an
    /// event to every client that wants it (encoded once at v24, then copied
    /// at each client's version).
    fn emit(&mut self, message: &Message, now: Instant) {
        if msg::is_reply(message.message_type()) {
            return self.answer(message, now);
        }
        self.frame.clear();
        if message.encode(Version::MAX, &mut self.frame).is_err() {
            return;
        }
        let keys = match routing::extract(&self.frame, Version::MAX) {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!(error = %e, "sim-pg: simulated event does not decode");
                return;
            }
        };
        self.nr_events += 1;
        let keyed = !self.monitors.is_empty();
        let targets = self
            .tracker
            .observe(&self.frame, &keys, Version::MAX, now, keyed);
        let frame = self.frame.as_slice().into();
        let event = Event::routed(self.nr_events, Version::MAX, frame, now, &keys, targets);
        let bound = self.options.output_bound;
        let message_type = event.message_type();
        let is_system = message_type == msg::SYSTEM_EVENT;
        for client in self.clients.values_mut().filter(|c| c.is_open()) {
            if !is_system && !client.session.wants_all_events_bit(event.mask_bit) {
                continue;
            }
            if let Some(bytes) = event.bytes_at(client.session.version) {
                client.queue(bytes, bound);
            }
        }
        // As the router: CALL_TRANSLATION_ROUTE_EVENT is for All Events only.
        if !is_system && message_type != msg::CALL_TRANSLATION_ROUTE_EVENT {
            self.deliver_client_events(&event);
        }
    }

    /// One copy of `event` per Client Events session whose agent it
    /// reaches, through that session's masks and inside its call brackets
    /// (docs/call-brackets.md), as the router's shards send it.
    fn deliver_client_events(&mut self, event: &Event) {
        if self.monitors.is_empty() {
            return;
        }
        let bound = self.options.output_bound;
        self.monitors
            .matching_entries(&event.targets, &mut self.scratch);
        for &entry in self.scratch.iter() {
            let Some(m) = self.monitors.at_mut(entry) else {
                continue;
            };
            let token = Token(m.session.0 as usize);
            let mut client = self.clients.get_mut(&token).filter(|c| c.is_open());
            let (id, session) = (m.id, m.client_events.then_some(m.session));
            m.deliveries(event, |delivery| {
                let Some(client) = client.as_deref_mut() else {
                    return;
                };
                let version = client.session.version;
                let (bytes, session) = match delivery {
                    Delivery::Begin(call) => (call.begin_at(version), None),
                    Delivery::Event => (event.bytes_at(version), session),
                    Delivery::End(call) => (call.end_at(version), None),
                };
                if let Some(bytes) = bytes {
                    client.queue_monitor_copy(bytes, id, session, bound);
                }
            });
        }
    }

    /// An answer from the simulator: to the client whose request it
    /// answers only, with its InvokeID, at its version — unless that client
    /// is gone, or the fault switches lose or hold it.
    fn answer(&mut self, message: &Message, now: Instant) {
        self.frame.clear();
        if message.encode(Version::MAX, &mut self.frame).is_err() {
            return;
        }
        let Some(invoke) = self
            .frame
            .get(HEADER_LEN..HEADER_LEN + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            return;
        };
        let confirmed = message.message_type() == msg::USER_MESSAGE_CONF;
        let Some((sender, m)) = self.user_messages.remove(&invoke).filter(|_| confirmed) else {
            return self.reply(invoke, message, now);
        };
        // The confirmation first, then the events it causes (as the simulator).
        if self.recipients(&m).next().is_none() {
            let refused = Message::from(FailureConf {
                invoke_id: invoke,
                status: cti_status::E_CTI_CLIENT_NOT_FOUND,
                ..Default::default()
            });
            return self.reply(invoke, &refused, now);
        }
        self.reply(invoke, message, now);
        self.deliver_user_message(&sender, &m);
    }

    /// The answer to the simulator's request `invoke`, to its asker.
    fn reply(&mut self, invoke: u32, message: &Message, now: Instant) {
        let segment = matches!(message, Message::ListAgentTeamConf(c) if c.more != 0);
        let asker = if segment {
            self.requests.peek(invoke)
        } else {
            self.requests.answered(invoke)
        };
        let Some(asker) = asker else {
            tracing::debug!(invoke, "sim-pg: an answer to no request in flight");
            return;
        };
        self.supervisors.answered(asker.token, message);
        let Some(client) = self.clients.get_mut(&asker.token).filter(|c| c.is_open()) else {
            return;
        };
        let mut bytes = Vec::new();
        let encoded = message.encode(asker.version, &mut bytes).is_ok()
            && patch_invoke_id(&mut bytes, asker.invoke_id.0);
        if !encoded {
            // As the router: an answer the session's version cannot carry.
            bytes.clear();
            failure_conf(
                &mut bytes,
                asker.version,
                asker.invoke_id,
                RequestError::BadFormat,
            );
        }
        match self.requests.fate(now) {
            Fate::Dropped => {
                client.session.request_done();
                tracing::debug!(session = %client.session.id, invoke = asker.invoke_id.0, "sim-pg: answer dropped (--drop-replies)");
            }
            // A segment with more to follow does not end the request.
            Fate::Now if segment => {
                client.queue(&bytes, self.options.output_bound);
            }
            Fate::Now => client.queue_answer(&bytes, self.options.output_bound),
            Fate::Hold(at) => self.requests.hold(at, asker.token, bytes),
        }
    }

    /// The open sessions a confirmed USER_MESSAGE goes to: those of its
    /// ClientID (TO_CLIENT), or every one (TO_ALL).
    fn recipients<'s>(
        &'s mut self,
        m: &'s UserMessageReq,
    ) -> impl Iterator<Item = &'s mut SimClient> {
        let to_client = m.distribution == distribution::TO_CLIENT;
        self.clients.values_mut().filter(move |c| {
            c.is_open() && (!to_client || Some(&c.session.client.client_id) == m.client_id.as_ref())
        })
    }

    /// USER_MESSAGE_EVENT from `sender` to the sessions `m` addresses.
    fn deliver_user_message(&mut self, sender: &CtiString, m: &UserMessageReq) {
        let event = Simulator::user_message_event(self.sim_clock, sender, m);
        let bound = self.options.output_bound;
        let mut bytes = Vec::new();
        for client in self.recipients(m) {
            bytes.clear();
            if event.encode(client.session.version, &mut bytes).is_ok() {
                client.queue(&bytes, bound);
            }
        }
    }

    /// Send the held answers that are due.
    fn release_held(&mut self, now: Instant) {
        while let Some((token, bytes)) = self.requests.due(now) {
            if let Some(client) = self.clients.get_mut(&token).filter(|c| c.is_open()) {
                client.queue_answer(&bytes, self.options.output_bound);
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
                let monitor = client.session.client_events_monitor;
                if monitor != MonitorId::ALL_EVENTS {
                    self.monitors.remove(monitor);
                }
                self.requests.forget(token);
                self.controllers.release(token);
                self.supervisors.closed(token, &mut self.sim);
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
        tracing::info!(
            nr_events = self.nr_events,
            nr_answers_dropped = self.requests.nr_dropped(),
            "sim-pg stopped"
        );
    }
}

/// What a client's session reaches of the server while its input is read:
/// the simulator (at simulated time `at`), the tracker and the Client
/// Events agents.
struct Desk<'a> {
    token: Token,
    at: Duration,
    status: &'a PgStatus,
    sim: &'a mut Simulator,
    tracker: &'a CallTracker,
    monitors: &'a mut MonitorIndex,
    requests: &'a mut Requests,
    controllers: &'a mut Controllers,
    user_messages: &'a mut HashMap<u32, (CtiString, UserMessageReq)>,
    supervisors: &'a mut Supervisors,
}

impl Host for Desk<'_> {
    /// OPEN_CONF (a Client Events session's with its agent as last
    /// reported) and its Client Events agent; refused with
    /// E_CTI_DEVICE_IN_USE when another ClientID controls its instrument.
    fn opened(&mut self, session: &mut Session, out: &mut Vec<u8>) -> bool {
        if !self.supervisors.admit(self.token, session, self.sim) {
            let error = supervisor::REFUSED;
            failure_conf(out, session.version, session.open_invoke_id, error);
            session.phase = Phase::Closing(CloseReason::OpenRejected(error));
            return false;
        }
        if !self
            .controllers
            .take(self.token, session.services, &session.client)
        {
            let error = RequestError::DeviceInUse;
            failure_conf(out, session.version, session.open_invoke_id, error);
            session.phase = Phase::Closing(CloseReason::OpenRejected(error));
            return false;
        }
        let agent = if session.services.contains(Services::CLIENT_EVENTS) {
            let agents = &self.tracker.agents;
            session.client.agent_key().and_then(|key| agents.view(key))
        } else {
            None
        };
        session.confirm_open(self.status, agent.as_ref(), out);
        let version = session.version;
        self.supervisors.opened(self.token, version, self.sim, out);
        if let Some(monitor) = Monitor::client_events(session) {
            for key in monitor.watch.keys() {
                self.monitors.count_up(key);
            }
            self.monitors.insert(monitor);
        }
        true
    }

    /// Scope (a Client Events session's request completed with its agent
    /// and held to it), then to the simulator under a fresh InvokeID.
    fn request(
        &mut self,
        session: &mut Session,
        message_type: u32,
        invoke_id: InvokeId,
        body: &[u8],
        out: &mut Vec<u8>,
    ) {
        let version = session.version;
        let Ok(mut request) = Message::decode(message_type, body, version, DecodeOptions::STRICT)
        else {
            // The session checked that it decodes.
            session.request_done();
            failure_conf(out, version, invoke_id, RequestError::BadFormat);
            return;
        };
        if scope::applies_to(session.services) {
            if let Some(identity) = scope::identity(&mut request) {
                let tracker = self.tracker;
                let agent = Agent::of(&session.client, |key| tracker.agents.view(key));
                let in_scope = scope::fill_and_check(identity, &agent, |call, device| {
                    tracker.call_has_device(call, device)
                });
                if let Err(why) = in_scope {
                    session.request_done();
                    scope::refuse(out, version, invoke_id, message_type, why);
                    return;
                }
            }
        }
        if let Some(refused) = self.supervisors.refusal(self.token, &request, self.sim) {
            session.request_done();
            supervisor::failure(out, version, invoke_id.0, refused);
            return;
        }
        if let Message::SuperviseCallReq(r) = &mut request {
            // The supervisor is the session's own agent.
            let own = &session.client;
            let instrument = own
                .agent_instrument
                .as_ref()
                .or(own.agent_extension.as_ref());
            if r.supervisor_instrument
                .as_ref()
                .is_none_or(|d| d.is_empty())
            {
                r.supervisor_instrument = instrument.cloned();
            }
        }
        let sim_invoke = self.requests.sent(Asker {
            token: self.token,
            invoke_id,
            version,
        });
        if let Message::UserMessageReq(m) = &request {
            let sender = session.client.client_id.clone();
            self.user_messages.insert(sim_invoke, (sender, m.clone()));
        }
        self.sim.request(self.at, sim_invoke, &request);
    }
}

#[cfg(test)]
#[path = "sim_pg_tests.rs"]
mod tests;
