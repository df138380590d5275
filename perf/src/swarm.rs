//! The client swarm (one mio thread): opens the scenario's sessions when told,
//! reads them, and for each event delivery takes the marker (seq, send time)
//! and records the end-to-end latency (one clock read per socket read) and
//! the session's tally. Sessions speak GED-188 to the router, or NATS / Redis
//! to a peer; the measuring is the same. Desktop sessions also send the
//! phase's requests (paced round robin over their group, and one burst) and
//! record each request's round trip (write → its confirmation read); the
//! `direct` ones connect straight to the driver instead of the router.
//! CTI sessions send HEARTBEAT_REQ on the schedule of `heartbeat` (all
//! together, or spread over the period), and the swarm times each round.
//! In a reconnect storm a group's sessions drop their connections (no
//! CLOSE_REQ), connect and open again on a schedule, and right after the
//! new OPEN_CONF send QUERY_AGENT_STATE_REQ and SNAPSHOT_DEVICE_REQ; the
//! swarm records each re-open and answer (`storm`) and times All Events
//! deliveries while the storm lasts. With `--tls` every session to the
//! router speaks TLS (`tls::Conn`: one socket read per batch, decrypted in
//! memory); direct desktops stay clear (the PG is).

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ctirouter::proto::frame;
use hdrhistogram::Histogram;

use crate::pacer::Pacer;
use crate::tally::histogram;
use crate::tls::{self, Conn};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::clock::{self, now_ns, ReceiveTime};
use crate::cti_client::{CtiClient, Seen};
use crate::heartbeat::{self, Rounds, Schedule};
use crate::marker;
use crate::nats::NatsSub;
use crate::pg::View;
use crate::redis::RedisSub;
use crate::requests::{Kind, Outcome, Reply, RequestStats, Sent, Tag};
use crate::rng::Rng;
use crate::scenario::Service;
use crate::shared::Shared;
use crate::storm::{QueryRecord, Reopen};
use crate::tally::Tally;

/// Sessions connecting or opening at once (a storm is spread, not refused):
/// the router's default `[limits] max_pending_opens`, over which it closes a
/// new connection at once (the swarm does not reconnect, so a session
/// refused there would simply be missing: at 1,024, the value from before
/// that limit existed, desktops.toml lost 24 of its 2,040 sessions).
const MAX_OPENING: usize = ctirouter::config::DEFAULT_MAX_PENDING_OPENS;
/// One read's buffer (shared by every session of the thread).
const SCRATCH: usize = 256 * 1024;
/// Reads of one session per wake-up before the others get a turn.
const READS_PER_TURN: usize = 4;
/// Paced requests sent per loop turn at most (the rest on the next turn).
const MAX_REQUESTS_PER_TURN: u64 = 256;
/// Deliveries read until this long after the burst's last answer still
/// count as read during the burst.
const BURST_TAIL_NS: u64 = 20_000_000;
/// A burst whose answers do not all come is watched this long at most.
const BURST_WATCH_MAX_NS: u64 = 5_000_000_000;
/// Burst requests written between two rounds of reading: one thread plays
/// every client, and a real desktop's writes never hold up another
/// client's reads, so the event readers wait for one chunk at most.
const BURST_CHUNK: usize = 64;
/// Connections a storm drops between two rounds of reading (the same
/// reason: closing 2,000 sockets takes one thread milliseconds).
const DROP_SLICE: usize = 64;
/// A storm whose sessions do not all re-open and get answered is watched
/// this long after its first drop at most.
const STORM_WATCH_MAX_NS: u64 = 10_000_000_000;

/// Which protocol the sessions speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Cti,
    Nats,
    Redis,
}

/// One session to open.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    pub group: usize,
    pub service: Service,
    /// Its agent (Client Events) or monitored agents' instruments (Peripheral Monitor).
    pub agents: Vec<u32>,
    pub rcvbuf: Option<usize>,
    /// A desktop: Client Control and Call Data Update, sends requests.
    pub requests: bool,
    /// Connects straight to the driver (the PG), not to the router.
    pub direct: bool,
}

/// The requests of a phase.
#[derive(Debug, Clone)]
pub struct RequestPlan {
    /// When pacing starts (the phase's warm-up), CLOCK_MONOTONIC ns.
    pub start_ns: u64,
    /// Per group: requests per second over the whole group (0: none).
    pub per_group: Vec<f64>,
    /// One burst: this many requests, one per open desktop of the
    /// router-bound groups, written from this time on (`BURST_CHUNK` at a
    /// time).
    pub burst: Option<(u32, u64)>,
}

/// The burst of a phase, as measured.
#[derive(Debug, Clone)]
pub struct BurstReport {
    /// Requests asked for, and written.
    pub requested: u32,
    pub sent: u64,
    /// Before the first write, after the last one.
    pub start_ns: u64,
    pub written_ns: u64,
    /// Their answers; `stats.last_answer_ns` is when the last one was read.
    pub stats: RequestStats,
    /// Latency of the deliveries read from the first write until 20 ms
    /// after the last answer.
    pub events: Histogram<u64>,
}

/// Main thread → swarm.
pub enum Cmd {
    /// Connect the group's sessions, spread evenly over `within_ns` from `start_ns`.
    Open {
        group: usize,
        start_ns: u64,
        within_ns: u64,
    },
    Stall(usize),
    Unstall(usize),
    /// Count deliveries of seqs sent from now on (resets tallies and
    /// histograms; the first seq is taken when the swarm sees the command, so
    /// nothing counted before the reset belongs to the window). `bursts`: the
    /// phase's burst schedule (its `start_ns` is taken from the driver), to
    /// time the deliveries of events sent outside bursts apart.
    Measure {
        bursts: Option<Pacer>,
    },
    /// Stop counting seqs above `to_seq`.
    EndMeasure {
        to_seq: u64,
    },
    /// Start (or, with `None`, stop) sending requests.
    Requests(Option<RequestPlan>),
    /// Drop the group's connections at `drop_ns` (no CLOSE_REQ), and connect
    /// them again spread evenly over `within_ns` from then; after each new
    /// OPEN_CONF, with `queries`, send QUERY_AGENT_STATE_REQ and
    /// SNAPSHOT_DEVICE_REQ for the session's agent.
    Reconnect {
        group: usize,
        drop_ns: u64,
        within_ns: u64,
        queries: bool,
    },
    Snapshot(Sender<Snapshot>),
}

/// How a session ended, if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// FAILURE_CONF to OPEN_REQ or MONITOR_START_REQ.
    Refused(u32),
    /// FAILURE_EVENT (25: cut as a slow consumer), then close.
    FailureEvent(u32),
    Closed,
    Error(String),
}

/// One session at a snapshot.
#[derive(Debug, Clone)]
pub struct SessionReport {
    pub group: usize,
    pub service: Service,
    pub agents: Vec<u32>,
    pub opened: bool,
    /// `sent_seq` when it opened: later seqs are owed to it.
    pub open_seq: u64,
    pub end: Option<End>,
    pub tally: Tally,
}

/// Everything measured since the last `Measure`.
pub struct Snapshot {
    pub sessions: Vec<SessionReport>,
    /// Per group: latency of in-window deliveries, ns.
    pub latency: Vec<Histogram<u64>>,
    /// Connect → open (OPEN_CONF, or the last MONITOR_START_CONF), ns.
    pub open_latency: Histogram<u64>,
    /// First connect → last open of the sessions opened in the window, ns.
    pub open_span_ns: u64,
    /// Event frames without a marker (should stay 0).
    pub nr_unmarked: u64,
    /// First seq of the measured window.
    pub from_seq: u64,
    /// Per group: requests sent in the window and their answers.
    pub requests: Vec<RequestStats>,
    /// Per group: requests still without an answer (any time).
    pub unanswered: Vec<u64>,
    pub burst: Option<BurstReport>,
    /// Heartbeats sent in the window and the rounds they went in.
    pub heartbeats: Rounds,
    /// Latency of in-window deliveries of events the driver sent outside
    /// its bursts, ns (phases with bursts only).
    pub outside_bursts: Option<Histogram<u64>>,
    /// The reconnect storm of the window, if it had one.
    pub storm: Option<StormReport>,
}

/// A reconnect storm, as measured.
#[derive(Debug, Clone)]
pub struct StormReport {
    /// Every session that dropped.
    pub reopens: Vec<Reopen>,
    /// First and last drop.
    pub first_drop_ns: u64,
    pub last_drop_ns: u64,
    /// Until when deliveries counted as read during the storm: 20 ms after
    /// the last session re-opened and had its answers (or the watch's end).
    pub until_ns: u64,
    /// Latency of the All Events deliveries read from the first drop until
    /// `until_ns`.
    pub all_events: Histogram<u64>,
}

enum Wire {
    Cti(CtiClient),
    Nats(NatsSub),
    Redis(RedisSub),
}

impl Wire {
    fn hello(&mut self, out: &mut Vec<u8>) {
        match self {
            Wire::Cti(c) => c.hello(out),
            Wire::Nats(n) => n.hello(out),
            Wire::Redis(r) => r.hello(out),
        }
    }

    #[inline]
    fn next<'a>(&mut self, buf: &'a [u8], out: &mut Vec<u8>) -> Option<(Seen<'a>, usize)> {
        match self {
            Wire::Cti(c) => match frame::check(buf) {
                Ok(len) => Some((c.on_frame(&buf[..len], out), len)),
                Err(e) if e.breaks_framing() => Some((Seen::Ended(u32::MAX), buf.len())),
                Err(_) => None,
            },
            Wire::Nats(n) => n.next(buf, out),
            Wire::Redis(r) => r.next(buf, out),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Scheduled(u64),
    Connecting,
    Opening,
    Open,
    Gone,
}

struct Session {
    spec: SessionSpec,
    wire: Wire,
    stream: Option<Conn>,
    state: State,
    /// A partial message from the last read.
    carry: Vec<u8>,
    out: Vec<u8>,
    connect_ns: u64,
    open_seq: u64,
    opened: bool,
    stalled: bool,
    end: Option<End>,
    tally: Tally,
    last_heartbeat_ns: u64,
    /// Dropped and reconnecting in this storm: when it connects again, and
    /// whether it queries once open.
    reconnect: Option<(u64, bool)>,
    /// This storm's drop and re-open.
    reopen: Option<Reopen>,
    /// A query was answered and the next event read is not noted yet.
    awaiting_next: bool,
}

/// A reconnect storm in progress.
struct StormState {
    /// Sessions still to drop, with when, in order.
    drops: std::collections::VecDeque<(usize, u64)>,
    first_drop_ns: u64,
    last_drop_ns: u64,
    /// Dropped sessions not done yet (re-opened and answered).
    pending: usize,
    until_ns: u64,
    all_events: Histogram<u64>,
}

/// A request plan being played.
struct Playing {
    plan: RequestPlan,
    /// Per group: requests sent so far, and the member to try next.
    sent: Vec<u64>,
    cursor: Vec<usize>,
    burst_fired: bool,
}

/// A burst in flight.
struct BurstState {
    report: BurstReport,
    /// The sessions that send one request each, and the next to write.
    queue: Vec<usize>,
    next: usize,
    outstanding: u64,
    /// Deliveries read until then count as read during the burst.
    watch_until: u64,
}

/// The swarm's thread state.
pub struct Swarm {
    addr: SocketAddr,
    /// The driver's listener for direct desktops.
    direct_addr: Option<SocketAddr>,
    /// Per group: its sessions.
    members: Vec<Vec<usize>>,
    requests: Option<Playing>,
    req_stats: Vec<RequestStats>,
    burst: Option<BurstState>,
    /// Between `Measure` and `EndMeasure`: requests are counted.
    measuring: bool,
    rng: Rng,
    sessions: Vec<Session>,
    shared: Arc<Shared>,
    cmds: Receiver<Cmd>,
    poll: Poll,
    scratch: Vec<u8>,
    /// TLS (`--tls`): the sessions to the router speak it, and one socket
    /// read's ciphertext goes here (shared by every session of the thread).
    tls: Option<Arc<rustls::ClientConfig>>,
    cipher: Vec<u8>,
    /// When a delivery counts as received (`clock::ReceiveTime`).
    receive_time: ReceiveTime,
    from_seq: u64,
    to_seq: u64,
    latency: Vec<Histogram<u64>>,
    interval: Histogram<u64>,
    open_latency: Histogram<u64>,
    first_connect_ns: u64,
    last_open_ns: u64,
    nr_opening: usize,
    nr_unmarked: u64,
    finder: marker::Finder,
    /// Sessions with unread input left after their turn.
    again: Vec<usize>,
    heartbeats: Schedule,
    /// Heartbeat rounds of the measured window.
    hb_window: Rounds,
    /// The phase's bursts and the latency of what was sent outside them.
    outside_bursts: Option<(Pacer, Histogram<u64>)>,
    /// A synchronized round still being sent: the sessions left, how many
    /// went already, and when the round began.
    hb_round: Vec<usize>,
    hb_round_sent: u64,
    hb_round_started_ns: u64,
    storm: Option<StormState>,
}

/// Most heartbeats a synchronized round sends per turn of the swarm's loop.
/// The swarm reads its sessions between slices, so the events that arrive
/// while it sends 2,000 heartbeats are timed when they arrive, not after the
/// whole round (which takes the swarm some 40 ms: one send each): the stall
/// a synchronized round causes is then the server's, not the harness's.
const HB_SLICE: usize = 32;

impl Swarm {
    pub fn new(
        addr: SocketAddr,
        direct_addr: Option<SocketAddr>,
        protocol: Protocol,
        specs: Vec<SessionSpec>,
        nr_groups: usize,
        shared: Arc<Shared>,
        cmds: Receiver<Cmd>,
    ) -> io::Result<Swarm> {
        let sessions = specs
            .into_iter()
            .map(|spec| Session {
                wire: match protocol {
                    Protocol::Cti if spec.requests => {
                        Wire::Cti(CtiClient::new(spec.service, spec.agents.clone()).with_requests())
                    }
                    Protocol::Cti => Wire::Cti(CtiClient::new(spec.service, spec.agents.clone())),
                    Protocol::Nats => Wire::Nats(NatsSub::default()),
                    Protocol::Redis => Wire::Redis(RedisSub),
                },
                spec,
                stream: None,
                state: State::Idle,
                carry: Vec::new(),
                out: Vec::new(),
                connect_ns: 0,
                open_seq: 0,
                opened: false,
                stalled: false,
                end: None,
                tally: Tally::default(),
                last_heartbeat_ns: 0,
                reconnect: None,
                reopen: None,
                awaiting_next: false,
            })
            .collect::<Vec<Session>>();
        let mut members = vec![Vec::new(); nr_groups];
        for (i, s) in sessions.iter().enumerate() {
            if let Some(m) = members.get_mut(s.spec.group) {
                m.push(i);
            }
        }
        let heartbeats = Schedule::new(
            heartbeat::Mode::default(),
            heartbeat::PERIOD_NS,
            sessions.len(),
            now_ns(),
        );
        Ok(Swarm {
            heartbeats,
            hb_window: Rounds::default(),
            hb_round: Vec::new(),
            outside_bursts: None,
            hb_round_sent: 0,
            hb_round_started_ns: 0,
            storm: None,
            addr,
            direct_addr,
            members,
            requests: None,
            req_stats: (0..nr_groups).map(|_| RequestStats::default()).collect(),
            burst: None,
            measuring: false,
            rng: Rng::new(0x5EED_DE5C),
            sessions,
            shared,
            cmds,
            poll: Poll::new()?,
            scratch: vec![0; SCRATCH],
            tls: None,
            receive_time: ReceiveTime::Read,
            cipher: Vec::new(),
            from_seq: u64::MAX,
            to_seq: u64::MAX,
            latency: (0..nr_groups).map(|_| histogram()).collect(),
            interval: histogram(),
            open_latency: histogram(),
            first_connect_ns: 0,
            last_open_ns: 0,
            nr_opening: 0,
            nr_unmarked: 0,
            finder: marker::Finder::default(),
            again: Vec::new(),
        })
    }

    /// Count a delivery received when the harness read it (`Read`) or when
    /// the kernel put it in the session's socket (`Kernel`: clear sockets;
    /// TLS sessions keep the read time).
    pub fn with_receive_time(mut self, mode: ReceiveTime) -> Swarm {
        self.receive_time = mode;
        self
    }

    /// When the sessions send HEARTBEAT_REQ (default: synchronized).
    pub fn with_heartbeats(mut self, mode: heartbeat::Mode) -> Swarm {
        self.heartbeats = Schedule::new(mode, heartbeat::PERIOD_NS, self.sessions.len(), now_ns());
        self
    }

    /// Every session to the router over TLS with `config` (the direct
    /// desktops' go to the PG, in the clear).
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>) -> Swarm {
        self.tls = Some(config);
        self.cipher = vec![0; SCRATCH + tls::RECORD_SLACK];
        self
    }

    pub fn spawn(self) -> JoinHandle<Result<(), String>> {
        std::thread::Builder::new()
            .name("perf-swarm".into())
            .spawn(move || self.run().map_err(|e| format!("swarm: {e}")))
            .expect("spawn swarm thread")
    }

    fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = now_ns();
        while !self.shared.stop.load(Ordering::Relaxed) {
            while let Ok(cmd) = self.cmds.try_recv() {
                self.command(cmd);
            }
            let now = now_ns();
            self.drop_due(now);
            self.connect_due(now);
            self.send_requests(now);
            self.burst_chunk();
            self.spread_heartbeats(now);
            self.heartbeat_slice(now);
            if now >= next_tick {
                self.tick(now);
                next_tick = now + 1_000_000_000;
            }
            let burst_writing = self.burst.as_ref().is_some_and(|b| b.next < b.queue.len());
            let dropping = self
                .storm
                .as_ref()
                .and_then(|st| st.drops.front())
                .is_some_and(|&(_, at)| at <= now);
            let timeout =
                if self.again.is_empty() && !burst_writing && !dropping && self.hb_round.is_empty()
                {
                    Duration::from_millis(1)
                } else {
                    Duration::ZERO
                };
            self.poll.poll(&mut events, Some(timeout))?;
            for ev in events.iter() {
                let i = ev.token().0;
                if ev.is_writable() {
                    self.writable(i);
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.read(i);
                }
            }
            for i in std::mem::take(&mut self.again) {
                self.read(i);
            }
        }
        Ok(())
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Open {
                group,
                start_ns,
                within_ns,
            } => {
                let members: Vec<usize> = (0..self.sessions.len())
                    .filter(|&i| self.sessions[i].spec.group == group)
                    .collect();
                let step = within_ns / members.len().max(1) as u64;
                for (n, i) in members.into_iter().enumerate() {
                    self.sessions[i].state = State::Scheduled(start_ns + step * n as u64);
                }
                self.first_connect_ns = 0;
            }
            Cmd::Stall(group) => self.set_stalled(group, true),
            Cmd::Unstall(group) => self.set_stalled(group, false),
            Cmd::Measure { bursts } => {
                self.outside_bursts = bursts.map(|mut pacer| {
                    pacer.start_ns = self.shared.phase_start_ns.load(Ordering::SeqCst);
                    (pacer, histogram())
                });
                self.from_seq = self.shared.sent_seq.load(Ordering::SeqCst) + 1;
                self.to_seq = u64::MAX;
                self.latency.iter_mut().for_each(|h| h.reset());
                self.open_latency.reset();
                self.first_connect_ns = 0;
                self.last_open_ns = 0;
                self.nr_unmarked = 0;
                self.sessions
                    .iter_mut()
                    .for_each(|s| s.tally = Tally::default());
                self.req_stats
                    .iter_mut()
                    .for_each(|r| *r = RequestStats::default());
                self.burst = None;
                self.hb_window = Rounds::default();
                self.storm = None;
                self.sessions.iter_mut().for_each(|s| s.reopen = None);
                self.measuring = true;
            }
            Cmd::EndMeasure { to_seq } => {
                self.to_seq = to_seq;
                self.measuring = false;
            }
            Cmd::Requests(plan) => {
                self.requests = plan.map(|plan| Playing {
                    sent: vec![0; plan.per_group.len()],
                    cursor: vec![0; plan.per_group.len()],
                    burst_fired: false,
                    plan,
                })
            }
            Cmd::Reconnect {
                group,
                drop_ns,
                within_ns,
                queries,
            } => self.plan_storm(group, drop_ns, within_ns, queries),
            Cmd::Snapshot(reply) => {
                let _ = reply.send(self.snapshot());
            }
        }
    }

    /// The group's sessions drop at `drop_ns` and connect again spread over
    /// `within_ns`.
    fn plan_storm(&mut self, group: usize, drop_ns: u64, within_ns: u64, queries: bool) {
        let members = self.members.get(group).cloned().unwrap_or_default();
        let step = within_ns / members.len().max(1) as u64;
        let st = self.storm.get_or_insert_with(|| StormState {
            drops: Default::default(),
            first_drop_ns: 0,
            last_drop_ns: 0,
            pending: 0,
            until_ns: drop_ns + STORM_WATCH_MAX_NS,
            all_events: histogram(),
        });
        for (n, &i) in members.iter().enumerate() {
            self.sessions[i].reconnect = Some((drop_ns + step * n as u64, queries));
            st.drops.push_back((i, drop_ns));
        }
        st.drops.make_contiguous().sort_by_key(|&(_, at)| at);
    }

    /// Drop the next slice of connections whose time has come.
    fn drop_due(&mut self, now: u64) {
        for _ in 0..DROP_SLICE {
            let Some(st) = self.storm.as_mut() else {
                return;
            };
            match st.drops.front() {
                Some(&(i, at)) if at <= now => {
                    st.drops.pop_front();
                    self.drop_connection(i);
                }
                _ => return,
            }
        }
    }

    /// Close session `i`'s connection as a crash would (no CLOSE_REQ) and
    /// schedule its reconnect. A session that is not open is recorded as
    /// dropped all the same (it will not re-open: the storm misses it).
    fn drop_connection(&mut self, i: usize) {
        let now = now_ns();
        let s = &mut self.sessions[i];
        let Some((reconnect_at, queries)) = s.reconnect else {
            return;
        };
        s.reopen = Some(Reopen {
            group: s.spec.group,
            agent: s.spec.agents.first().copied().unwrap_or(0),
            dropped_ns: now,
            dropped_seq: self.shared.sent_seq.load(Ordering::Acquire),
            opened_ns: 0,
            queries,
            sent: Vec::new(),
        });
        if let Some(st) = self.storm.as_mut() {
            if st.first_drop_ns == 0 {
                st.first_drop_ns = now;
            }
            st.last_drop_ns = now;
            st.pending += 1;
        }
        if s.state != State::Open {
            s.reconnect = None;
            return;
        }
        if let Some(mut stream) = s.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        if let Wire::Cti(c) = &mut s.wire {
            let lost = c.in_flight.clear() as u64;
            self.shared
                .requests_in_flight
                .fetch_sub(lost, Ordering::Relaxed);
        }
        s.state = State::Scheduled(reconnect_at.max(now));
        s.opened = false;
        s.awaiting_next = false;
        s.carry.clear();
        s.out.clear();
        self.shared.nr_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// A dropped session re-opened at `now`: its accounting starts over
    /// (what it read before the drop is not checked), and it sends its
    /// queries.
    fn reopened(&mut self, i: usize, now: u64) {
        let s = &mut self.sessions[i];
        let Some(r) = s.reopen.as_mut().filter(|r| r.opened_ns == 0) else {
            return;
        };
        r.opened_ns = now;
        s.reconnect = None;
        s.tally = Tally::default();
        let mut sent = 0;
        if let (true, Wire::Cti(c)) = (r.queries, &mut s.wire) {
            for kind in Kind::QUERIES {
                let invoke_id = c.request(kind, &mut s.out);
                // Timed from the OPEN_CONF read, not from the write.
                c.in_flight.push(Sent {
                    invoke_id,
                    kind,
                    sent_ns: now,
                    tag: Tag::Storm,
                });
                r.sent.push(QueryRecord::new(kind));
                sent += 1;
            }
        }
        let done = r.done();
        self.shared
            .requests_in_flight
            .fetch_add(sent, Ordering::Relaxed);
        self.shared.requests_sent.fetch_add(sent, Ordering::Relaxed);
        if done {
            self.storm_session_done(now);
        }
    }

    /// One dropped session has nothing more to wait for.
    fn storm_session_done(&mut self, now: u64) {
        let Some(st) = self.storm.as_mut() else {
            return;
        };
        st.pending = st.pending.saturating_sub(1);
        if st.pending == 0 && st.drops.is_empty() {
            st.until_ns = st.until_ns.min(now + BURST_TAIL_NS);
        }
    }

    fn set_stalled(&mut self, group: usize, stalled: bool) {
        for i in 0..self.sessions.len() {
            if self.sessions[i].spec.group == group {
                self.sessions[i].stalled = stalled;
                if !stalled {
                    self.again.push(i);
                }
            }
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            sessions: self
                .sessions
                .iter()
                .map(|s| SessionReport {
                    group: s.spec.group,
                    service: s.spec.service,
                    agents: s.spec.agents.clone(),
                    opened: s.opened,
                    open_seq: s.open_seq,
                    end: s.end.clone(),
                    tally: s.tally,
                })
                .collect(),
            latency: self.latency.clone(),
            outside_bursts: self.outside_bursts.as_ref().map(|(_, h)| h.clone()),
            open_latency: self.open_latency.clone(),
            open_span_ns: self.last_open_ns.saturating_sub(self.first_connect_ns),
            nr_unmarked: self.nr_unmarked,
            from_seq: self.from_seq,
            requests: self.req_stats.clone(),
            unanswered: self
                .members
                .iter()
                .map(|m| {
                    m.iter()
                        .map(|&i| match &self.sessions[i].wire {
                            Wire::Cti(c) => c.in_flight.len() as u64,
                            _ => 0,
                        })
                        .sum()
                })
                .collect(),
            burst: self.burst.as_ref().map(|b| b.report.clone()),
            heartbeats: self.hb_window,
            storm: self.storm.as_ref().map(|st| StormReport {
                reopens: self
                    .sessions
                    .iter()
                    .filter_map(|s| s.reopen.clone())
                    .collect(),
                first_drop_ns: st.first_drop_ns,
                last_drop_ns: st.last_drop_ns,
                until_ns: st.until_ns,
                all_events: st.all_events.clone(),
            }),
        }
    }

    /// Send the requests due: each group's paced ones (round robin over its
    /// open sessions) and the burst when its time has come.
    fn send_requests(&mut self, now: u64) {
        let Some(mut p) = self.requests.take() else {
            return;
        };
        if let Some((count, at)) = p.plan.burst {
            if !p.burst_fired && now >= at {
                p.burst_fired = true;
                self.fire_burst(count);
            }
        }
        let tag = if self.measuring {
            Tag::Measured
        } else {
            Tag::Warmup
        };
        for gi in 0..p.plan.per_group.len() {
            let rate = p.plan.per_group[gi];
            if rate <= 0.0 || self.members[gi].is_empty() {
                continue;
            }
            let due = (now.saturating_sub(p.plan.start_ns) as f64 * rate / 1e9) as u64;
            let n = due.saturating_sub(p.sent[gi]).min(MAX_REQUESTS_PER_TURN);
            for _ in 0..n {
                p.sent[gi] += 1;
                let m = self.members[gi].len();
                let at = |t: usize| self.members[gi][(p.cursor[gi] + t) % m];
                let open = (0..m).find(|&t| {
                    let s = &self.sessions[at(t)];
                    s.state == State::Open && !s.stalled
                });
                let Some(t) = open else { break };
                let i = at(t);
                p.cursor[gi] = (p.cursor[gi] + t + 1) % m;
                self.send_request(i, tag);
            }
        }
        self.requests = Some(p);
    }

    /// `count` requests, one per open desktop of the router-bound groups,
    /// written [`BURST_CHUNK`] at a time with a round of reads in between.
    fn fire_burst(&mut self, count: u32) {
        let start_ns = now_ns();
        let targets: Vec<usize> = (0..self.sessions.len())
            .filter(|&i| {
                let s = &self.sessions[i];
                s.spec.requests && !s.spec.direct && s.state == State::Open && !s.stalled
            })
            .take(count as usize)
            .collect();
        self.burst = Some(BurstState {
            report: BurstReport {
                requested: count,
                sent: 0,
                start_ns,
                written_ns: start_ns,
                stats: RequestStats::default(),
                events: histogram(),
            },
            queue: targets,
            next: 0,
            outstanding: 0,
            watch_until: start_ns + BURST_WATCH_MAX_NS,
        });
    }

    /// The burst's next chunk of writes, if it has any left.
    fn burst_chunk(&mut self) {
        let Some(b) = self.burst.as_mut() else {
            return;
        };
        if b.next >= b.queue.len() {
            return;
        }
        let end = (b.next + BURST_CHUNK).min(b.queue.len());
        let chunk: Vec<usize> = b.queue[b.next..end].to_vec();
        b.next = end;
        for i in chunk {
            self.send_request(i, Tag::Burst);
        }
        if let Some(b) = self.burst.as_mut() {
            b.report.written_ns = now_ns();
        }
    }

    /// Write one request of the mix on session `i`, timed from just before
    /// the write.
    fn send_request(&mut self, i: usize, tag: Tag) {
        let kind = Kind::of(self.rng.next_u64());
        let s = &mut self.sessions[i];
        let Wire::Cti(c) = &mut s.wire else {
            return;
        };
        let invoke_id = c.request(kind, &mut s.out);
        c.in_flight.push(Sent {
            invoke_id,
            kind,
            sent_ns: now_ns(),
            tag,
        });
        self.shared
            .requests_in_flight
            .fetch_add(1, Ordering::Relaxed);
        self.shared.requests_sent.fetch_add(1, Ordering::Relaxed);
        match tag {
            Tag::Measured => self.req_stats[s.spec.group].sent += 1,
            Tag::Burst => {
                if let Some(b) = self.burst.as_mut() {
                    b.report.sent += 1;
                    b.outstanding += 1;
                }
            }
            Tag::Warmup | Tag::Storm => {}
        }
        self.flush(i);
    }

    /// A reply read on session `i` of `group` (saying `view`, if it answers
    /// a query).
    fn on_reply(&mut self, i: usize, group: usize, reply: Reply, view: Option<View>, now: u64) {
        let Reply::Answered(sent, outcome) = reply else {
            self.req_stats[group].wrong_invoke += 1;
            return;
        };
        self.shared
            .requests_in_flight
            .fetch_sub(1, Ordering::Relaxed);
        match sent.tag {
            Tag::Storm => {
                let s = &mut self.sessions[i];
                let Some(r) = s.reopen.as_mut() else { return };
                let q = r
                    .sent
                    .iter_mut()
                    .find(|q| q.kind == sent.kind && q.answered_ns == 0);
                let Some(q) = q else { return };
                q.answered_ns = now;
                q.outcome = Some(outcome);
                q.view = view;
                s.awaiting_next = true;
                // Once, at its last answer.
                if r.done() {
                    self.storm_session_done(now);
                }
            }
            Tag::Measured => self.req_stats[group].record(&sent, outcome, now),
            Tag::Burst => {
                if let Some(b) = self.burst.as_mut() {
                    b.report.stats.record(&sent, outcome, now);
                    b.outstanding = b.outstanding.saturating_sub(1);
                    if b.outstanding == 0 {
                        b.watch_until = now + BURST_TAIL_NS;
                    }
                }
            }
            Tag::Warmup => {
                if matches!(outcome, Outcome::WrongType(_)) {
                    self.req_stats[group].wrong_type += 1;
                }
            }
        }
    }

    /// Connect scheduled sessions whose time has come, within MAX_OPENING.
    fn connect_due(&mut self, now: u64) {
        for i in 0..self.sessions.len() {
            if self.nr_opening >= MAX_OPENING {
                return;
            }
            if let State::Scheduled(at) = self.sessions[i].state {
                if at <= now {
                    self.connect(i, now);
                }
            }
        }
    }

    fn connect(&mut self, i: usize, now: u64) {
        let s = &mut self.sessions[i];
        let addr = if s.spec.direct {
            self.direct_addr
        } else {
            Some(self.addr)
        };
        let Some(addr) = addr else {
            s.end = Some(End::Error("no direct listener".into()));
            s.state = State::Gone;
            self.shared.nr_failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let stamps = self.receive_time == ReceiveTime::Kernel;
        let conn = connect_socket(addr, s.spec.rcvbuf, stamps).and_then(|stream| match &self.tls {
            Some(config) if !s.spec.direct => {
                Conn::tls(stream, config.clone(), tls::server_name(addr))
            }
            _ => Ok(Conn::clear(stream)),
        });
        match conn {
            Ok(mut stream) => {
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = self
                    .poll
                    .registry()
                    .register(&mut stream, Token(i), interest)
                {
                    s.end = Some(End::Error(e.to_string()));
                    s.state = State::Gone;
                    return;
                }
                s.stream = Some(stream);
                s.state = State::Connecting;
                s.connect_ns = now;
                if self.first_connect_ns == 0 {
                    self.first_connect_ns = now;
                }
                self.nr_opening += 1;
            }
            Err(e) => {
                s.end = Some(End::Error(format!("connect: {e}")));
                s.state = State::Gone;
                self.shared.nr_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn writable(&mut self, i: usize) {
        let s = &mut self.sessions[i];
        if s.state == State::Connecting {
            let connected = s.stream.as_ref().is_some_and(|st| st.peer_addr().is_ok());
            if !connected {
                return;
            }
            s.state = State::Opening;
            s.wire.hello(&mut s.out);
        }
        self.flush(i);
    }

    fn flush(&mut self, i: usize) {
        let s = &mut self.sessions[i];
        let Some(stream) = s.stream.as_mut() else {
            return;
        };
        // TLS: the records a read or an earlier write left (the read side
        // sees a failure).
        if stream.flush().is_err() {
            return;
        }
        while !s.out.is_empty() {
            match stream.write(&s.out) {
                Ok(n) => {
                    s.out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return, // the read side sees the close
            }
        }
    }

    /// Once a second: synchronized heartbeats (every session whose period
    /// has passed since its open or last one), and the progress counters.
    fn tick(&mut self, now: u64) {
        if self.heartbeats.mode == heartbeat::Mode::Synchronized && self.hb_round.is_empty() {
            let due: Vec<usize> = (0..self.sessions.len())
                .filter(|&i| {
                    self.heartbeats
                        .sync_due(self.sessions[i].last_heartbeat_ns, now)
                })
                .collect();
            if !due.is_empty() {
                self.hb_round = due;
                // Popped from the back: reversed, the round goes in session order.
                self.hb_round.reverse();
                self.hb_round_sent = 0;
                self.hb_round_started_ns = now_ns();
            }
        }
        let p99 = if self.interval.is_empty() {
            0
        } else {
            self.interval.value_at_quantile(0.99)
        };
        self.shared.interval_p99_ns.store(p99, Ordering::Relaxed);
        self.shared
            .interval_max_ns
            .store(self.interval.max(), Ordering::Relaxed);
        self.interval.reset();
    }

    /// The next slice of a synchronized round ([`HB_SLICE`]); the round is
    /// recorded once its last heartbeat is sent.
    fn heartbeat_slice(&mut self, now: u64) {
        if self.hb_round.is_empty() {
            return;
        }
        for _ in 0..HB_SLICE {
            let Some(i) = self.hb_round.pop() else { break };
            self.hb_round_sent += self.heartbeat(i, now);
        }
        if self.hb_round.is_empty() {
            self.heartbeat_round(self.hb_round_sent, self.hb_round_started_ns);
        }
    }

    /// Spread heartbeats: the sessions whose point in the period has come
    /// since the last turn.
    fn spread_heartbeats(&mut self, now: u64) {
        if self.heartbeats.mode != heartbeat::Mode::Spread {
            return;
        }
        let due: Vec<usize> = self.heartbeats.spread_due(now).collect();
        if due.is_empty() {
            return;
        }
        let started = now_ns();
        let mut sent = 0;
        for i in due {
            sent += self.heartbeat(i, now);
        }
        self.heartbeat_round(sent, started);
    }

    /// HEARTBEAT_REQ on session `i` if it is an open, reading CTI session;
    /// 1 if sent.
    fn heartbeat(&mut self, i: usize, now: u64) -> u64 {
        let s = &mut self.sessions[i];
        if s.state != State::Open || s.stalled {
            return 0;
        }
        let Wire::Cti(c) = &mut s.wire else {
            return 0;
        };
        s.last_heartbeat_ns = now;
        c.heartbeat(&mut s.out);
        self.flush(i);
        1
    }

    /// A round of `sent` heartbeats begun at `started_ns` is over.
    fn heartbeat_round(&mut self, sent: u64, started_ns: u64) {
        if sent == 0 {
            return;
        }
        let ns = now_ns().saturating_sub(started_ns);
        if self.measuring {
            self.hb_window.record(sent, ns);
        }
        self.shared
            .heartbeats_sent
            .fetch_add(sent, Ordering::Relaxed);
        self.shared
            .heartbeat_round_max_ns
            .fetch_max(ns, Ordering::Relaxed);
    }

    /// Read a session for a turn and handle every whole message.
    fn read(&mut self, i: usize) {
        if self.sessions[i].stalled || self.sessions[i].stream.is_none() {
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut cipher = std::mem::take(&mut self.cipher);
        for turn in 0..READS_PER_TURN {
            let s = &mut self.sessions[i];
            let carried = s.carry.len().min(SCRATCH / 2);
            scratch[..carried].copy_from_slice(&s.carry[..carried]);
            let stream = s.stream.as_mut().expect("checked above");
            let read = match self.receive_time {
                ReceiveTime::Read => stream
                    .read(&mut scratch[carried..], &mut cipher)
                    .map(|n| (n, None)),
                ReceiveTime::Kernel => stream.read_stamped(&mut scratch[carried..], &mut cipher),
            };
            match read {
                Ok((0, _)) => {
                    self.gone(i, None);
                    break;
                }
                Ok((n, arrival)) => {
                    let now = arrival.unwrap_or_else(now_ns);
                    let used = self.handle(i, &scratch[..carried + n], now);
                    let s = &mut self.sessions[i];
                    s.carry.clear();
                    s.carry.extend_from_slice(&scratch[used..carried + n]);
                    if !s.out.is_empty() {
                        self.flush(i);
                    }
                    if carried + n < SCRATCH {
                        break; // a short read: the socket is drained
                    }
                    if turn + 1 == READS_PER_TURN {
                        self.again.push(i);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.gone(i, Some(End::Error(e.to_string())));
                    break;
                }
            }
        }
        self.scratch = scratch;
        self.cipher = cipher;
    }

    /// Every whole message in `buf`; returns the bytes used.
    #[inline]
    fn handle(&mut self, i: usize, buf: &[u8], now: u64) -> usize {
        let mut at = 0;
        let mut nr_events = 0;
        let group = self.sessions[i].spec.group;
        let all_events = self.sessions[i].spec.service == Service::AllEvents;
        loop {
            let s = &mut self.sessions[i];
            let Some((seen, used)) = s.wire.next(&buf[at..], &mut s.out) else {
                break;
            };
            at += used;
            match seen {
                Seen::Event(bytes) => {
                    nr_events += 1;
                    let Some((seq, ts)) = self.finder.find(bytes) else {
                        self.nr_unmarked += 1;
                        continue;
                    };
                    if s.awaiting_next {
                        s.awaiting_next = false;
                        let answered = s.reopen.iter_mut().flat_map(|r| r.sent.iter_mut());
                        for q in answered.filter(|q| q.answered_ns != 0) {
                            q.next_seq = q.next_seq.min(seq);
                        }
                    }
                    if seq >= self.from_seq && seq <= self.to_seq && seq > s.open_seq {
                        s.tally.record(seq);
                        let latency = now.saturating_sub(ts).max(1);
                        let _ = self.latency[group].record(latency);
                        let _ = self.interval.record(latency);
                        if let Some((bursts, outside)) = self.outside_bursts.as_mut() {
                            if !bursts.in_burst(ts) {
                                let _ = outside.record(latency);
                            }
                        }
                        if let Some(b) = self.burst.as_mut() {
                            if now >= b.report.start_ns && now <= b.watch_until {
                                let _ = b.report.events.record(latency);
                            }
                        }
                        if let Some(st) = self.storm.as_mut().filter(|_| all_events) {
                            if st.first_drop_ns != 0
                                && now >= st.first_drop_ns
                                && now <= st.until_ns
                            {
                                let _ = st.all_events.record(latency);
                            }
                        }
                    }
                }
                Seen::Opened => self.opened(i, now),
                Seen::Refused(status) if s.state != State::Open => {
                    s.end = Some(End::Refused(status));
                }
                Seen::Ended(status) => s.end = Some(End::FailureEvent(status)),
                Seen::Reply(reply, view) => self.on_reply(i, group, reply, view, now),
                // A FAILURE_CONF that answers none of an open desktop's requests.
                Seen::Refused(_) if s.spec.requests => self.req_stats[group].wrong_invoke += 1,
                Seen::Refused(_) | Seen::Other => {}
            }
        }
        if nr_events > 0 {
            self.shared
                .delivered
                .fetch_add(nr_events, Ordering::Relaxed);
        }
        at
    }

    fn opened(&mut self, i: usize, now: u64) {
        let s = &mut self.sessions[i];
        if s.opened {
            return;
        }
        s.opened = true;
        s.state = State::Open;
        if let Some(agreed) = s.stream.as_ref().and_then(Conn::negotiated) {
            let mut first = self.shared.tls_negotiated.lock().expect("tls lock");
            first.get_or_insert(agreed);
        }
        s.open_seq = self.shared.sent_seq.load(Ordering::Acquire);
        s.last_heartbeat_ns = now;
        let _ = self
            .open_latency
            .record(now.saturating_sub(s.connect_ns).max(1));
        self.last_open_ns = now;
        self.nr_opening = self.nr_opening.saturating_sub(1);
        self.shared.nr_open.fetch_add(1, Ordering::Relaxed);
        self.reopened(i, now);
    }

    fn gone(&mut self, i: usize, why: Option<End>) {
        let s = &mut self.sessions[i];
        if let Some(mut stream) = s.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        if s.end.is_none() {
            if let Some(End::Error(e)) = &why {
                let mut first = self.shared.first_session_error.lock().expect("error lock");
                first.get_or_insert_with(|| e.clone());
            }
            s.end = Some(why.unwrap_or(End::Closed));
        }
        if s.state == State::Open {
            self.shared.nr_open.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.nr_opening = self.nr_opening.saturating_sub(1);
        }
        s.state = State::Gone;
        self.shared.nr_failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// A non-blocking connect with TCP_NODELAY and, if asked, a small receive buffer.
fn connect_socket(addr: SocketAddr, rcvbuf: Option<usize>, stamps: bool) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol as IpProto, Socket, Type};
    use std::os::fd::AsRawFd;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(IpProto::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_nodelay(true)?;
    if let Some(bytes) = rcvbuf {
        socket.set_recv_buffer_size(bytes)?;
    }
    if stamps {
        clock::enable_receive_stamps(socket.as_raw_fd())?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(std::net::TcpStream::from(socket)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swarm(desktops: u32) -> Swarm {
        let mut specs = vec![SessionSpec {
            group: 0,
            service: Service::AllEvents,
            agents: Vec::new(),
            rcvbuf: None,
            requests: false,
            direct: false,
        }];
        specs.extend((0..desktops).map(|k| SessionSpec {
            group: 1,
            service: Service::ClientEvents,
            agents: vec![k],
            rcvbuf: None,
            requests: true,
            direct: false,
        }));
        let (_tx, rx) = std::sync::mpsc::channel();
        let addr = "127.0.0.1:9".parse().unwrap();
        Swarm::new(addr, None, Protocol::Cti, specs, 2, Shared::new(), rx).unwrap()
    }

    #[test]
    fn a_storm_drops_its_group_at_once_and_spreads_the_reconnects() {
        let mut s = swarm(4);
        s.command(Cmd::Reconnect {
            group: 1,
            drop_ns: 1_000,
            within_ns: 400,
            queries: true,
        });
        let st = s.storm.as_ref().unwrap();
        assert_eq!(
            st.drops.iter().copied().collect::<Vec<_>>(),
            [(1, 1_000), (2, 1_000), (3, 1_000), (4, 1_000)]
        );
        let at: Vec<_> = s.sessions.iter().map(|x| x.reconnect).collect();
        assert_eq!(
            at,
            [
                None,
                Some((1_000, true)),
                Some((1_100, true)),
                Some((1_200, true)),
                Some((1_300, true))
            ]
        );
        // Not due yet: nothing dropped.
        s.drop_due(999);
        assert_eq!(s.storm.as_ref().unwrap().drops.len(), 4);
        // Due: these sessions never opened, so each is recorded as dropped
        // (and will not re-open: the storm counts it as missed).
        s.drop_due(1_000);
        let st = s.storm.as_ref().unwrap();
        assert!(st.drops.is_empty());
        assert_eq!((st.pending, st.first_drop_ns > 0), (4, true));
        for (k, x) in s.sessions[1..].iter().enumerate() {
            let r = x.reopen.as_ref().unwrap();
            assert_eq!((r.agent, r.opened_ns, r.queries), (k as u32, 0, true));
            assert!(!r.done());
            assert_eq!(x.state, State::Idle, "not open: nothing to close");
        }
        assert!(s.sessions[0].reopen.is_none());
        let snap = s.snapshot();
        assert_eq!(snap.storm.unwrap().reopens.len(), 4);
    }

    #[test]
    fn a_reopened_session_sends_its_queries_timed_from_its_open_conf() {
        let mut s = swarm(2);
        s.sessions[2].state = State::Open;
        s.sessions[2].opened = true;
        s.command(Cmd::Reconnect {
            group: 1,
            drop_ns: 0,
            within_ns: 0,
            queries: true,
        });
        s.drop_due(now_ns());
        assert!(matches!(s.sessions[2].state, State::Scheduled(_)));
        assert!(!s.sessions[2].opened);
        // The new connection's OPEN_CONF.
        s.sessions[2].state = State::Opening;
        s.opened(2, 5_000);
        let x = &s.sessions[2];
        let r = x.reopen.as_ref().unwrap();
        assert_eq!(r.opened_ns, 5_000);
        let kinds: Vec<Kind> = r.sent.iter().map(|q| q.kind).collect();
        assert_eq!(kinds, Kind::QUERIES);
        let Wire::Cti(c) = &x.wire else { panic!() };
        assert_eq!(c.in_flight.len(), 2);
        assert!(
            !x.out.is_empty(),
            "both requests written after the OPEN_CONF"
        );
        assert_eq!(s.shared.requests_in_flight.load(Ordering::Relaxed), 2);
        // Answers: the session is done once both are in.
        for (invoke_id, kind) in [(3, Kind::QueryAgentState), (4, Kind::SnapshotDevice)] {
            let sent = Sent {
                invoke_id,
                kind,
                sent_ns: 5_000,
                tag: Tag::Storm,
            };
            s.on_reply(
                2,
                1,
                Reply::Answered(sent, Outcome::Conf),
                Some(View::Calls { n: 0, digest: 0 }),
                9_000,
            );
        }
        let r = s.sessions[2].reopen.as_ref().unwrap();
        assert!(r.done());
        assert_eq!(r.answered_in_ns(), Some(4_000));
        assert!(s.sessions[2].awaiting_next);
        // Session 1 never opened, so the storm is not over; a stray second
        // answer does not count the session done twice.
        assert_eq!(s.storm.as_ref().unwrap().pending, 1);
        let again = Sent {
            invoke_id: 4,
            kind: Kind::SnapshotDevice,
            sent_ns: 5_000,
            tag: Tag::Storm,
        };
        s.on_reply(2, 1, Reply::Answered(again, Outcome::Conf), None, 9_500);
        assert_eq!(s.storm.as_ref().unwrap().pending, 1);
    }
}
