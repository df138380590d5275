//! The driver thread (mio): the one publisher. For the router it is the
//! upstream CTI Server (it listens, the router connects, `cti_server` answers
//! OPEN and heartbeats); for a peer it is a NATS or Redis publisher. It plays
//! the current plan: events at a fixed rate (with bursts), or as fast as the
//! window of in-flight deliveries allows, each stamped just before its write.
//! In a scenario with requests it also answers the router's Client Control
//! and Call Data Update requests, and accepts desktops that connect straight
//! to it on a second listener (the reference path: the same answering code,
//! no router, no events). It keeps what its stream said of each agent and
//! device (`pg::PgWorld`), which its answers to QUERY_AGENT_STATE_REQ and
//! SNAPSHOT_DEVICE_REQ tell, and in scenarios that check those answers, when
//! each of those facts changed (`pg::History`).

use std::collections::BTreeMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::clock::now_ns;
use crate::cti_server::{CtiServer, Upstream};
use crate::events::{EventKind, Templates};
use crate::nats::NatsPub;
use crate::pacer::{window_open, Pacer};
use crate::pg::{History, PgWorld};
use crate::redis::RedisPub;
use crate::rng::Rng;
use crate::scenario::{Load, Phase};
use crate::shared::Shared;

const LISTENER: Token = Token(0);
const CONN: Token = Token(1);
/// The listener of desktops connecting straight to the PG.
const DIRECT_LISTENER: Token = Token(2);
/// Direct session `i` is Token(DIRECT_BASE + i).
const DIRECT_BASE: usize = 16;
/// Unsent bytes past which the driver stops producing until the socket drains.
const HIGH_WATER: usize = 256 * 1024;
/// Most events produced per loop turn (reads and plan changes run between).
const MAX_BATCH: u64 = 2048;
/// An event produced this late after its due time counts as "behind".
const LATE_NS: u64 = 2_000_000;
/// Waits shorter than this are slept (nanosleep) rather than polled: epoll
/// timeouts are whole milliseconds, which would send a 10k/s stream in
/// 1 ms clumps of 10.
const FINE_WAIT: Duration = Duration::from_millis(1);

/// The publisher's protocol.
pub enum PubWire {
    Cti(CtiServer),
    Nats(NatsPub),
    Redis(RedisPub),
}

impl PubWire {
    fn ready(&self) -> bool {
        match self {
            PubWire::Cti(s) => s.state == Upstream::Open,
            PubWire::Nats(p) => p.ready,
            PubWire::Redis(_) => true,
        }
    }

    fn hello(&mut self, out: &mut Vec<u8>) {
        if let PubWire::Nats(p) = self {
            p.hello(out)
        }
    }

    fn on_input(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        world: &PgWorld,
    ) -> Result<usize, String> {
        match self {
            PubWire::Cti(s) => s.serve(input, out, world),
            PubWire::Nats(p) => p.on_input(input, out),
            PubWire::Redis(p) => p.on_input(input),
        }
    }

    fn heartbeats(&self) -> u64 {
        match self {
            PubWire::Cti(s) => s.nr_heartbeats,
            _ => 0,
        }
    }

    /// Requests answered, and those of them that did not decode.
    fn requests(&self) -> (u64, u64) {
        match self {
            PubWire::Cti(s) => (s.nr_requests, s.nr_bad_requests),
            _ => (0, 0),
        }
    }

    /// Requests answered, by message type.
    fn by_type(&self) -> Option<&BTreeMap<u32, u64>> {
        match self {
            PubWire::Cti(s) => Some(&s.by_type),
            _ => None,
        }
    }
}

/// A desktop connected straight to the PG.
struct Direct {
    conn: Conn,
    server: CtiServer,
}

/// Where the driver's one connection comes from.
pub enum Endpoint {
    /// The router connects to this listener (its `--upstream`).
    Listen(TcpListener),
    /// The driver connects to a peer server.
    Connect(SocketAddr),
}

/// Who each agent's events reach, so the driver can count expected
/// deliveries (for the window) and log the seqs of targeted agents.
pub struct Targeting {
    /// Deliveries one event naming agent `k` should make.
    pub recipients: Vec<u32>,
    /// Agents some Client Events or Peripheral Monitor session names.
    pub logged: Vec<bool>,
    /// Per agent: the seqs of the events that named it (logged agents only),
    /// and with answers to check, the history of their states and calls.
    pub log: Arc<Mutex<Log>>,
}

/// What the driver logs of the events it sends, for the accounting.
#[derive(Debug, Clone, Default)]
pub struct Log {
    /// Per agent: the seqs of the events that named it (logged agents only).
    pub seqs: Vec<Vec<u64>>,
    /// When logged agents' states and calls changed (scenarios that check
    /// query answers only).
    pub history: Option<History>,
}

impl Log {
    pub fn new(agents: u32, history: bool) -> Log {
        Log {
            seqs: vec![Vec::new(); agents as usize],
            history: history.then(|| History::new(agents)),
        }
    }
}

/// One socket and its buffers.
struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
    out_at: usize,
    input: Vec<u8>,
    connected: bool,
}

impl Conn {
    fn new(stream: TcpStream, connected: bool) -> Conn {
        Conn {
            stream,
            out: Vec::with_capacity(HIGH_WATER * 2),
            out_at: 0,
            input: Vec::with_capacity(64 * 1024),
            connected,
        }
    }

    fn pending(&self) -> usize {
        self.out.len() - self.out_at
    }

    /// Write until the socket takes no more.
    fn flush(&mut self) -> io::Result<()> {
        while self.out_at < self.out.len() {
            match self.stream.write(&self.out[self.out_at..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.out_at += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.out_at == self.out.len() {
            self.out.clear();
            self.out_at = 0;
        } else if self.out_at > HIGH_WATER {
            self.out.drain(..self.out_at);
            self.out_at = 0;
        }
        Ok(())
    }

    /// Read what is there; false once the peer closed.
    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// The phase being played, and how far it got.
struct Playing {
    phase: Phase,
    pacer: Pacer,
    sent: u64,
    /// Events already counted as late (each is counted once).
    late_counted: u64,
    window_deliveries: u64,
}

pub struct Driver {
    endpoint: Endpoint,
    wire: PubWire,
    /// Grant and answer requests (the scenario has desktops).
    requests: bool,
    /// Where direct desktops connect (the scenario has a `direct` group).
    direct: Option<TcpListener>,
    /// Requests answered on connections of earlier upstream sessions and
    /// on direct sessions that closed (the counters are per connection).
    done_upstream: (u64, u64),
    done_direct: (u64, u64),
    templates: Templates,
    load: Load,
    /// What the stream said of each agent and device (the PG's answers).
    world: PgWorld,
    /// Per agent: it takes calls (`load.agents_in_calls`); and the agents
    /// that do, when not all do (a call event drawn for another agent goes
    /// to one of them).
    takes_calls: Vec<bool>,
    call_agents: Vec<u32>,
    /// Requests answered on earlier upstream connections, by type.
    done_by_type: BTreeMap<u32, u64>,
    /// Upstream requests answered when the counts were last published.
    published_requests: u64,
    targeting: Targeting,
    shared: Arc<Shared>,
    rng: Rng,
    /// Average deliveries per event (the window is in events per session).
    avg_recipients: f64,
}

impl Driver {
    pub fn new(
        endpoint: Endpoint,
        wire: PubWire,
        load: Load,
        targeting: Targeting,
        shared: Arc<Shared>,
    ) -> Driver {
        let requests = matches!(&wire, PubWire::Cti(s) if s.grants_requests());
        let templates = Templates::new(load.agents, &load.agent_states);
        let total: u64 = targeting.recipients.iter().map(|&r| r as u64).sum();
        let avg_recipients = (total as f64 / load.agents.max(1) as f64).max(1.0);
        let takes_calls: Vec<bool> = (0..load.agents)
            .map(|k| crate::events::takes_calls(k, load.agents_in_calls))
            .collect();
        let call_agents = if takes_calls.iter().all(|&t| t) {
            Vec::new()
        } else {
            (0..load.agents)
                .filter(|&k| takes_calls[k as usize])
                .collect()
        };
        Driver {
            world: PgWorld::new(load.agents),
            takes_calls,
            call_agents,
            done_by_type: BTreeMap::new(),
            published_requests: 0,
            rng: Rng::new(load.seed),
            endpoint,
            wire,
            requests,
            direct: None,
            done_upstream: (0, 0),
            done_direct: (0, 0),
            templates,
            load,
            targeting,
            shared,
            avg_recipients,
        }
    }

    /// Also accept desktops straight to the PG on `listener`.
    pub fn with_direct(mut self, listener: TcpListener) -> Driver {
        self.direct = Some(listener);
        self
    }

    pub fn spawn(self) -> JoinHandle<()> {
        std::thread::Builder::new()
            .name("perf-driver".into())
            .spawn(move || {
                let shared = self.shared.clone();
                if let Err(e) = self.run() {
                    *shared.driver_error.lock().expect("error lock") = Some(e);
                }
            })
            .expect("spawn driver thread")
    }

    fn run(mut self) -> Result<(), String> {
        let mut poll = Poll::new().map_err(|e| e.to_string())?;
        let mut events = Events::with_capacity(64);
        let mut listener = None;
        let mut conn = None;
        match std::mem::replace(
            &mut self.endpoint,
            Endpoint::Connect(([0, 0, 0, 0], 0).into()),
        ) {
            Endpoint::Listen(mut l) => {
                poll.registry()
                    .register(&mut l, LISTENER, Interest::READABLE)
                    .map_err(|e| e.to_string())?;
                listener = Some(l);
            }
            Endpoint::Connect(addr) => {
                let mut stream = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
                poll.registry()
                    .register(&mut stream, CONN, Interest::READABLE | Interest::WRITABLE)
                    .map_err(|e| e.to_string())?;
                conn = Some(Conn::new(stream, false));
            }
        }
        let mut direct_listener = self.direct.take();
        if let Some(l) = direct_listener.as_mut() {
            poll.registry()
                .register(l, DIRECT_LISTENER, Interest::READABLE)
                .map_err(|e| e.to_string())?;
        }
        let mut directs: Vec<Option<Direct>> = Vec::new();
        let mut playing: Option<Playing> = None;
        let mut plan_seen = 0;
        let mut primed_up_to = 0;
        while !self.shared.stop.load(Ordering::Relaxed) {
            self.follow_plan(&mut plan_seen, &mut playing);
            let mut timeout = Duration::from_millis(20);
            if let Some(c) = conn.as_mut().filter(|c| c.connected) {
                if self.wire.ready() {
                    self.shared.upstream_ready.store(true, Ordering::Relaxed);
                    if self.shared.prime.load(Ordering::Acquire) {
                        self.prime(c, &mut primed_up_to);
                        timeout = Duration::from_millis(1);
                    }
                    if let Some(p) = playing.as_mut() {
                        timeout = self.produce(p, c);
                    }
                }
                c.flush().map_err(|e| format!("driver write: {e}"))?;
                let flat_out = playing.as_ref().is_some_and(|p| p.phase.rate.is_max());
                if flat_out && c.pending() < HIGH_WATER {
                    timeout = Duration::ZERO;
                }
            }
            if !timeout.is_zero() && timeout < FINE_WAIT {
                std::thread::sleep(timeout);
                timeout = Duration::ZERO;
            }
            poll.poll(&mut events, Some(timeout))
                .map_err(|e| e.to_string())?;
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => {
                        if let Some(c) = self.accept(&poll, listener.as_ref())? {
                            let (n, bad) = self.wire.requests();
                            self.done_upstream.0 += n;
                            self.done_upstream.1 += bad;
                            for (&t, &n) in self.wire.by_type().into_iter().flatten() {
                                *self.done_by_type.entry(t).or_default() += n;
                            }
                            self.wire = PubWire::Cti(CtiServer::upstream(self.requests));
                            conn = Some(c);
                        }
                    }
                    DIRECT_LISTENER => {
                        self.accept_direct(&poll, direct_listener.as_ref(), &mut directs)?
                    }
                    Token(t) if t >= DIRECT_BASE => self.direct_io(&poll, &mut directs, t),
                    _ => {
                        let Some(c) = conn.as_mut() else { continue };
                        if ev.is_writable() && !c.connected {
                            c.connected = true;
                            let _ = c.stream.set_nodelay(true);
                            self.wire.hello(&mut c.out);
                        }
                        if ev.is_readable() && !self.read(c)? {
                            self.shared.upstream_ready.store(false, Ordering::Relaxed);
                            conn = None;
                        } else if self.requests && !c.out.is_empty() {
                            // Answers go out at once, as on direct sessions.
                            c.flush().map_err(|e| format!("driver write: {e}"))?;
                        }
                        let (n, bad) = self.wire.requests();
                        self.shared
                            .upstream_requests
                            .store(self.done_upstream.0 + n, Ordering::Relaxed);
                        self.count_bad(bad, &directs);
                        self.publish_by_type(self.done_upstream.0 + n);
                    }
                }
            }
        }
        Ok(())
    }

    /// Publish the upstream requests answered by type, if any came since
    /// the last time (`answered`: the total now).
    fn publish_by_type(&mut self, answered: u64) {
        if answered == self.published_requests {
            return;
        }
        self.published_requests = answered;
        let mut all = self.done_by_type.clone();
        for (&t, &n) in self.wire.by_type().into_iter().flatten() {
            *all.entry(t).or_default() += n;
        }
        *self.shared.upstream_by_type.lock().expect("by-type lock") = all;
    }

    /// Send the next events of the priming round, agent 0 first: for each
    /// agent, with `prime_agent_states` an AGENT_STATE_EVENT, then if it
    /// takes calls (with `prime_agent_states`, a BEGIN_CALL_EVENT and) a
    /// CALL_DELIVERED_EVENT; when all are written, say so and stop.
    fn prime(&mut self, c: &mut Conn, next: &mut u32) {
        let log_arc = Arc::clone(&self.targeting.log);
        let mut log = None;
        let mut produced = 0;
        let now = now_ns();
        while *next < self.load.agents && c.pending() < HIGH_WATER {
            let k = *next;
            if self.load.prime_agent_states {
                let kind = EventKind::AgentState(self.draw_state());
                self.emit(k, kind, now, &mut c.out, &log_arc, &mut log);
                produced += 1;
            }
            if self.takes_calls[k as usize] {
                if self.load.prime_agent_states {
                    // Its call opens as a CTI Server opens every call.
                    self.emit(k, EventKind::BeginCall, now, &mut c.out, &log_arc, &mut log);
                    produced += 1;
                }
                self.emit(
                    k,
                    EventKind::CallDelivered,
                    now,
                    &mut c.out,
                    &log_arc,
                    &mut log,
                );
                produced += 1;
            }
            *next += 1;
        }
        self.shared.nr_events.fetch_add(produced, Ordering::Relaxed);
        if *next == self.load.agents {
            *next = 0;
            self.shared.prime.store(false, Ordering::Release);
            self.shared.primed.store(true, Ordering::Release);
        }
    }

    /// Take the newest plan: a new pacer from now, or paused.
    fn follow_plan(&mut self, seen: &mut u64, playing: &mut Option<Playing>) {
        let gen = self.shared.plan_gen.load(Ordering::SeqCst);
        if gen == *seen {
            return;
        }
        let plan = self.shared.plan.lock().expect("plan lock").clone();
        let start_ns = now_ns();
        self.shared.phase_start_ns.store(start_ns, Ordering::SeqCst);
        *playing = plan.phase.map(|phase| {
            let rate = match phase.rate {
                crate::scenario::Rate::PerSec(r) => r,
                crate::scenario::Rate::Max(_) => 0.0,
            };
            Playing {
                pacer: Pacer {
                    rate,
                    burst_every: phase.burst_every_secs,
                    burst_len: phase.burst_secs,
                    burst_factor: phase.burst_factor,
                    start_ns,
                },
                sent: 0,
                late_counted: 0,
                window_deliveries: (phase.window_events as f64 * self.avg_recipients) as u64,
                phase,
            }
        });
        *seen = gen;
        self.shared.plan_ack.store(gen, Ordering::SeqCst);
    }

    /// Produce what is due (or what the window allows); returns how long to poll.
    fn produce(&mut self, p: &mut Playing, c: &mut Conn) -> Duration {
        let now = now_ns();
        let max = p.phase.rate.is_max();
        let mut n = if max {
            MAX_BATCH
        } else {
            let due = p.pacer.target(now).saturating_sub(p.sent);
            // Count each event that is more than LATE_NS overdue once.
            let overdue = p.pacer.target(now.saturating_sub(LATE_NS));
            let newly_late = overdue.saturating_sub(p.sent.max(p.late_counted));
            p.late_counted = p.late_counted.max(overdue);
            self.shared
                .driver_behind
                .fetch_add(newly_late, Ordering::Relaxed);
            due.min(MAX_BATCH)
        };
        let log_arc = Arc::clone(&self.targeting.log);
        let mut log = None;
        let mut produced = 0;
        while n > 0 && c.pending() < HIGH_WATER {
            if max {
                let expected = self.shared.expected.load(Ordering::Relaxed);
                let delivered = self.shared.delivered.load(Ordering::Relaxed);
                if !window_open(expected, delivered, p.window_deliveries) {
                    break;
                }
            }
            self.one_event(now, &mut c.out, &log_arc, &mut log);
            produced += 1;
            n -= 1;
        }
        p.sent += produced;
        self.shared.nr_events.fetch_add(produced, Ordering::Relaxed);
        self.shared
            .upstream_heartbeats
            .store(self.wire.heartbeats(), Ordering::Relaxed);
        if max {
            if c.pending() >= HIGH_WATER {
                // The router is not reading: its next read wakes the poll.
                return Duration::from_millis(1);
            }
            // Window closed: look again very soon.
            if produced == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
            Duration::ZERO
        } else {
            Duration::from_nanos(p.pacer.wait_ns(now_ns(), p.sent))
        }
    }

    /// Append one event for a random agent, stamped `ts`.
    #[inline]
    fn one_event<'a>(
        &mut self,
        ts: u64,
        out: &mut Vec<u8>,
        log_arc: &'a Mutex<Log>,
        log: &mut Option<std::sync::MutexGuard<'a, Log>>,
    ) {
        let mut k = self.rng.below(self.load.agents as u64) as u32;
        let kind = if self.rng.unit() < self.load.agent_state_share {
            EventKind::AgentState(self.draw_state())
        } else {
            EventKind::CallDelivered
        };
        if kind == EventKind::CallDelivered && !self.takes_calls[k as usize] {
            k = self.call_agents[k as usize % self.call_agents.len()];
        }
        self.emit(k, kind, ts, out, log_arc, log);
    }

    /// Which of the scenario's agent states an agent event says (no draw,
    /// and so the same stream as before, when there is one state).
    #[inline]
    fn draw_state(&mut self) -> u8 {
        match self.templates.nr_states() {
            1 => 0,
            n => self.rng.below(n as u64) as u8,
        }
    }

    /// Append agent `k`'s event of `kind`, stamped `ts`, and account for it.
    #[inline]
    fn emit<'a>(
        &mut self,
        k: u32,
        kind: EventKind,
        ts: u64,
        out: &mut Vec<u8>,
        log_arc: &'a Mutex<Log>,
        log: &mut Option<std::sync::MutexGuard<'a, Log>>,
    ) {
        let seq = self.shared.sent_seq.load(Ordering::Relaxed) + 1;
        let len = self.templates.frame_len(kind, k);
        match &self.wire {
            PubWire::Nats(p) => p.begin(len, out),
            PubWire::Redis(p) => p.begin(len, out),
            PubWire::Cti(_) => {}
        }
        self.templates.append(kind, k, seq, ts, out);
        match &self.wire {
            PubWire::Nats(p) => p.end(out),
            PubWire::Redis(p) => p.end(out),
            PubWire::Cti(_) => {}
        }
        match kind {
            EventKind::AgentState(i) => self.world.agent_state(k, self.templates.state(i)),
            EventKind::CallDelivered => self.world.call_delivered(k),
            EventKind::BeginCall => {}
        }
        if self.targeting.logged[k as usize] {
            let guard = log.get_or_insert_with(|| log_arc.lock().expect("log lock"));
            guard.seqs[k as usize].push(seq);
            if let Some(h) = guard.history.as_mut() {
                match kind {
                    EventKind::AgentState(i) => h.agent_state(k, seq, self.templates.state(i)),
                    EventKind::CallDelivered => h.call_delivered(k, seq),
                    EventKind::BeginCall => {}
                }
            }
        }
        self.shared.expected.fetch_add(
            self.targeting.recipients[k as usize] as u64,
            Ordering::Relaxed,
        );
        self.shared.sent_seq.store(seq, Ordering::Release);
    }

    fn accept(&self, poll: &Poll, listener: Option<&TcpListener>) -> Result<Option<Conn>, String> {
        let Some(l) = listener else { return Ok(None) };
        match l.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nodelay(true);
                poll.registry()
                    .register(&mut stream, CONN, Interest::READABLE | Interest::WRITABLE)
                    .map_err(|e| e.to_string())?;
                Ok(Some(Conn::new(stream, true)))
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(format!("accept: {e}")),
        }
    }

    /// Accept every desktop waiting on the direct listener.
    fn accept_direct(
        &self,
        poll: &Poll,
        listener: Option<&TcpListener>,
        directs: &mut Vec<Option<Direct>>,
    ) -> Result<(), String> {
        let Some(l) = listener else { return Ok(()) };
        loop {
            match l.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let i = directs.iter().position(Option::is_none).unwrap_or_else(|| {
                        directs.push(None);
                        directs.len() - 1
                    });
                    poll.registry()
                        .register(
                            &mut stream,
                            Token(DIRECT_BASE + i),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .map_err(|e| e.to_string())?;
                    directs[i] = Some(Direct {
                        conn: Conn::new(stream, true),
                        server: CtiServer::direct(),
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("direct accept: {e}")),
            }
        }
    }

    /// Read, answer and write one direct session; it is dropped when it
    /// closes or breaks the protocol (the swarm counts what it missed).
    fn direct_io(&mut self, poll: &Poll, directs: &mut [Option<Direct>], token: usize) {
        let Some(slot) = directs.get_mut(token - DIRECT_BASE) else {
            return;
        };
        let Some(d) = slot.as_mut() else { return };
        let before = d.server.nr_requests;
        let open = d.conn.fill().unwrap_or(false);
        let answered = d.server.serve(&d.conn.input, &mut d.conn.out, &self.world);
        if let Ok(used) = answered {
            d.conn.input.drain(..used);
        }
        let flushed = d.conn.flush().is_ok();
        self.shared
            .direct_requests
            .fetch_add(d.server.nr_requests - before, Ordering::Relaxed);
        if !open || answered.is_err() || !flushed {
            if let Some(mut d) = slot.take() {
                self.done_direct.0 += d.server.nr_requests;
                self.done_direct.1 += d.server.nr_bad_requests;
                let _ = poll.registry().deregister(&mut d.conn.stream);
            }
        }
        self.count_bad(self.wire.requests().1, directs);
    }

    /// Requests that did not decode, on every connection so far.
    fn count_bad(&self, upstream_bad: u64, directs: &[Option<Direct>]) {
        let direct: u64 = directs
            .iter()
            .flatten()
            .map(|d| d.server.nr_bad_requests)
            .sum();
        self.shared.bad_requests.store(
            self.done_upstream.1 + upstream_bad + self.done_direct.1 + direct,
            Ordering::Relaxed,
        );
    }

    /// Read and answer; false once the other side closed.
    fn read(&mut self, c: &mut Conn) -> Result<bool, String> {
        let open = c.fill().map_err(|e| format!("driver read: {e}"))?;
        let used = self.wire.on_input(&c.input, &mut c.out, &self.world)?;
        c.input.drain(..used);
        Ok(open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use ctirouter::proto::{decode_frame, DecodeOptions, Message, Version};

    fn driver(load: Load) -> Driver {
        let n = load.agents;
        let targeting = Targeting {
            recipients: vec![1; n as usize],
            logged: vec![true; n as usize],
            log: Arc::new(Mutex::new(Log::new(n, true))),
        };
        Driver::new(
            Endpoint::Connect(([127, 0, 0, 1], 9).into()),
            PubWire::Cti(CtiServer::upstream(true)),
            load,
            targeting,
            Shared::new(),
        )
    }

    /// Each frame of `out`: (agent, Some(state) of an agent event or None
    /// for a call event).
    fn frames(out: &[u8]) -> Vec<(u32, Option<u16>)> {
        let mut at = 0;
        let mut seen = Vec::new();
        while at < out.len() {
            let (m, used) = decode_frame(&out[at..], Version::MAX, DecodeOptions::STRICT).unwrap();
            at += used;
            seen.push(match m {
                Message::AgentStateEvent(e) => {
                    ((e.icm_agent_id - 5000) as u32, Some(e.agent_state))
                }
                Message::CallDeliveredEvent(e) => (e.connection_call_id - 10_000_000, None),
                Message::BeginCallEvent(e) => (e.connection_call_id - 10_000_000, None),
                m => panic!("{m:?}"),
            });
        }
        seen
    }

    fn play(d: &mut Driver, n: usize) -> Vec<u8> {
        let log_arc = Arc::clone(&d.targeting.log);
        let mut log = None;
        let mut out = Vec::new();
        for _ in 0..n {
            d.one_event(7, &mut out, &log_arc, &mut log);
        }
        out
    }

    #[test]
    fn the_default_load_draws_the_stream_it_always_drew() {
        let load = Load {
            agents: 50,
            ..Default::default()
        };
        let mut d = driver(load.clone());
        let seen = frames(&play(&mut d, 2_000));
        // Agent first, then the kind; nothing else drawn.
        let mut rng = Rng::new(load.seed);
        for &(k, state) in &seen {
            assert_eq!(k as u64, rng.below(50));
            let agent_event = rng.unit() < load.agent_state_share;
            assert_eq!(state, agent_event.then_some(3));
        }
    }

    #[test]
    fn states_vary_calls_go_to_their_agents_and_the_world_follows() {
        let mut d = driver(Load {
            agents: 20,
            agent_states: vec![2, 3, 4],
            agents_in_calls: 0.5,
            ..Default::default()
        });
        let seen = frames(&play(&mut d, 3_000));
        let mut states = std::collections::BTreeSet::new();
        let mut last = [None; 20];
        for &(k, state) in &seen {
            match state {
                Some(s) => {
                    states.insert(s);
                    last[k as usize] = Some(s);
                }
                None => assert_eq!(k % 2, 1, "agent {k} takes no calls"),
            }
        }
        assert_eq!(states.into_iter().collect::<Vec<_>>(), [2, 3, 4]);
        // The PG answers what the stream said last.
        use ctirouter::proto::msg::QueryAgentStateReq;
        for k in 0..20u32 {
            let Message::QueryAgentStateConf(c) = d.world.query_agent_state(&QueryAgentStateReq {
                icm_agent_id: 5000 + k as i32,
                ..Default::default()
            }) else {
                panic!()
            };
            assert_eq!(Some(c.agent_state), last[k as usize].or(Some(1)));
        }
        // And the history says the same at the end of the stream.
        let log = d.targeting.log.lock().unwrap();
        let h = log.history.as_ref().unwrap();
        for k in 0..20u32 {
            let want = crate::pg::View::AgentState {
                state: last[k as usize].unwrap_or(1),
                agent: Some(k),
            };
            assert_eq!(h.expected(false, k, u64::MAX), want);
        }
        assert_eq!(log.seqs.iter().map(Vec::len).sum::<usize>(), 3_000);
    }
}
