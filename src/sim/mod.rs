//! PG simulator: a deterministic, sans-IO stand-in for a Cisco UCCE
//! enterprise-agent Peripheral Gateway (PeripheralType 17) as its CTI Server
//! shows it to an All Events client. It owns the simulated agents, skill
//! groups, trunks and calls, and turns them into the GED-188 event stream a
//! real PG would send: agent logins, inbound calls from trunk seizure to
//! END_CALL, holds, consult transfers and conferences, wrap-up, breaks, and a
//! SYS_HALF_HOUR_CHANGE every 30 simulated minutes.
//!
//! No sockets, threads or clocks: time is simulated. [`Simulator::next_event`]
//! returns each event with its due time since the start; the caller decides
//! whether to wait for it (a live `sim-pg`) or not (benchmarks, tests). The
//! same [`SimConfig`] always yields the same sequence of events.
//!
//! # Layout
//! * `mod.rs` — [`SimConfig`], [`Simulator`] and its event scheduler
//! * `flow` — the call state machine (what happens next, and when)
//! * `agents` — the agent state machine outside calls
//! * `build`, `inbound`, `consult` — one builder per event message
//! * `control`, `misc` — the requests it answers (docs/requests.md §9)
//! * `supervisor` — teams and supervisors, the Supervisor service requests,
//!   and the events addressed to one supervisor's session ([`To`])
//! * `world` — agents, skill groups, trunks, timing, the call record
//! * `tally` — the per-agent counts the statistics queries report
//! * `rng` — SplitMix64 and the draws the model needs
//!
//! # The model
//! Calls arrive as a Poisson process at `calls_per_sec`. Each picks a skill
//! group and a plan: 78% plain, 10% one hold, 8% consult transfer, 4% consult
//! conference. Handle times are realistic (about 3 min talk, 20 s wrap-up)
//! scaled down, when needed, so that the configured agents can carry the
//! configured load at about 85% occupancy: 50 agents at 5 calls/s talk about
//! 7 s per call. Calls that find no agent wait in their group's queue (bounded:
//! at most `max(agents, 16)` calls wait in all; more overflow) and abandon
//! after their patience runs out. Agents are routed longest-available first.
//!
//! Every call is named in every event by the same identity: its
//! ConnectionCallID, ConnectionDeviceIDType DYNAMIC and, as ConnectionDeviceID,
//! the inbound trunk's device id ("T12"); a consult call by its own call id and
//! the consulting agent's instrument.
//!
//! One inbound call answered by agent 1001 (extension and instrument 3001):
//! ```text
//! CALL_DELIVERED_EVENT       LCS_INITIATE, Connection=Alerting=T12, Calling=ANI, Called=8001, Trunk 12/200
//! BEGIN_CALL_EVENT           CallType PREROUTE_ACD_IN, ANI, DNIS 8001, RouterCallKey
//! CALL_DATA_UPDATE_EVENT     ANI, DNIS, CallVariable1..4, user.account (+ user.intent)
//! CALL_QUEUED_EVENT          skill group 101/5101, NumQueued
//! AGENT_STATE_EVENT          1001 RESERVED
//! CALL_DEQUEUED_EVENT
//! CALL_DELIVERED_EVENT       LCS_ALERTING, Alerting=3001, Calling=ANI, Called=3001, LastRedirect=8001
//! CALL_ESTABLISHED_EVENT     Answering=3001
//! AGENT_STATE_EVENT          1001 TALKING
//! CALL_CONNECTION_CLEARED    Releasing=T12 (caller hung up; or the agent first)
//! CALL_CONNECTION_CLEARED    Releasing=3001
//! CALL_CLEARED_EVENT
//! END_CALL_EVENT
//! AGENT_STATE_EVENT          1001 WORK_READY (or WORK_NOT_READY, NOT_READY+reason, AVAILABLE)
//! AGENT_STATE_EVENT          1001 AVAILABLE (after wrap-up)
//! ```
//! A hold adds CALL_HELD + HOLD … CALL_RETRIEVED + TALKING. A consult by 1001
//! to 1002: CALL_HELD, 1001 HOLD, CALL_SERVICE_INITIATED (consult call at
//! 3001), 1001 TALKING, BEGIN_CALL (CONSULT), CALL_ORIGINATED, 1002 RESERVED,
//! CALL_DELIVERED and CALL_ESTABLISHED at 3002, 1002 TALKING; then either
//! CALL_TRANSFERRED (parties trunk + 3002), CALL_CONNECTION_CLEARED of 3001,
//! CALL_CLEARED + END_CALL of the consult call and 1001 to wrap-up; or
//! CALL_CONFERENCED (parties trunk, 3001, 3002), CALL_CLEARED + END_CALL of the
//! consult call, and later CALL_CONNECTION_CLEARED of 3001 and 1001 to wrap-up.
//! A call that waits too long: CALL_DEQUEUED, CALL_CONNECTION_CLEARED (trunk),
//! CALL_CLEARED (CECX_ABAND_LOCAL_QUEUE), END_CALL; one that finds the queue
//! full: the same without CALL_QUEUED/CALL_DEQUEUED, cause MAX_QUEUE_EXCEEDED.
//!
//! Agents log in over the first seconds (LOGIN, NOT_READY, then AVAILABLE),
//! and between calls sometimes take a break (NOT_READY with a reason code 1–5).

mod agents;
mod build;
mod calls;
mod consult;
mod control;
mod flow;
mod inbound;
mod misc;
pub mod rng;
mod snapshot;
mod supervisor;
mod tally;
mod world;

#[cfg(test)]
mod control_tests;
#[cfg(test)]
mod supervisor_tests;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use crate::proto::Message;

use agents::AgentStep;
use flow::CallStep;
use rng::Rng;
use world::{Call, World};

pub use supervisor::{To, TEAM_SIZE};

/// Simulator settings. Deserializes from a TOML table; missing keys take the
/// defaults.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct SimConfig {
    /// Same seed, same event stream.
    pub seed: u64,
    /// Agents logged in ("1001"…, extensions "3001"…).
    pub agents: u32,
    /// Mean rate of inbound calls (Poisson); 0 = no calls.
    pub calls_per_sec: f64,
    /// PeripheralID of the simulated peripheral.
    pub peripheral_id: u32,
    /// The last this many agents start logged out and act only on requests
    /// ([`Simulator::request`]): a desktop drives them end to end.
    pub manual_agents: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            agents: 50,
            calls_per_sec: 5.0,
            peripheral_id: 5000,
            manual_agents: 0,
        }
    }
}

/// What a scheduled entry does when its time comes.
#[derive(Debug, Clone, Copy)]
enum Action {
    Arrival,
    HalfHour,
    Agent(u32, AgentStep),
    Call(u32, CallStep),
}

/// A scheduled action. Ordered by time, then by scheduling order, reversed
/// so `BinaryHeap` pops the earliest.
#[derive(Debug, Clone, Copy)]
struct Scheduled {
    at: u64,
    seq: u64,
    action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Events produced by the action being run, all due at `now`, with whom
/// each is for.
#[derive(Debug, Clone, Default)]
struct Outbox {
    now: u64,
    queue: VecDeque<(u64, To, Message)>,
}

impl Outbox {
    #[inline]
    fn push(&mut self, m: Message) {
        self.queue.push_back((self.now, To::All, m));
    }

    /// An event for one supervisor's session or one team monitor.
    fn push_to(&mut self, to: To, m: Message) {
        self.queue.push_back((self.now, to, m));
    }
}

/// The simulated PG. See the module documentation for what it sends.
#[derive(Debug, Clone)]
pub struct Simulator {
    config: SimConfig,
    rng: Rng,
    world: World,
    /// Live calls by slot; `None` slots are in `free_slots`.
    calls: Vec<Option<Call>>,
    free_slots: Vec<u32>,
    /// Idle trunks, least recently used first.
    free_trunks: VecDeque<u32>,
    live_calls: usize,
    /// Calls waiting in all queues.
    queued: usize,
    heap: BinaryHeap<Scheduled>,
    /// Last sequence number handed out (0 means "no timer").
    seq: u64,
    /// Counter behind ConnectionCallIDs.
    next_call: u32,
    out: Outbox,
    produced: u64,
    /// Team monitors (MONITOR_AGENT_TEAM_START): (MonitorID, team index).
    team_monitors: Vec<(u32, u32)>,
    /// Where team MonitorIDs come from (shared with sim-pg's sessions).
    monitor_ids: MonitorIds,
}

/// The one counter behind a simulated CTI Server's MonitorIDs: team
/// monitors here, and sim-pg's Client Events sessions through
/// [`Simulator::monitor_ids`], so no two monitors share an ID. 0 is All
/// Events and never handed out.
#[derive(Clone, Debug, Default)]
pub struct MonitorIds(std::rc::Rc<std::cell::Cell<u32>>);

impl MonitorIds {
    pub fn next(&self) -> u32 {
        let id = self.0.get().wrapping_add(1).max(1);
        self.0.set(id);
        id
    }
}

/// Nanoseconds per simulated second.
const NS: u64 = 1_000_000_000;
/// SYS_HALF_HOUR_CHANGE period.
const HALF_HOUR: u64 = 1800 * NS;
/// First ConnectionCallID (CUCM-style call ids start at 2^24).
const CALL_ID_BASE: u32 = 0x0100_0000;

impl Simulator {
    pub fn new(config: SimConfig) -> Simulator {
        let world = World::new(&config);
        let mut sim = Simulator {
            rng: Rng::new(config.seed),
            free_trunks: (0..world.trunks.len() as u32).collect(),
            calls: Vec::new(),
            free_slots: Vec::new(),
            live_calls: 0,
            queued: 0,
            heap: BinaryHeap::new(),
            seq: 0,
            next_call: 0,
            out: Outbox::default(),
            produced: 0,
            team_monitors: Vec::new(),
            monitor_ids: MonitorIds::default(),
            config,
            world,
        };
        let nr_agents = sim.world.agents.len() as u64;
        for a in 0..nr_agents {
            if sim.world.agents[a as usize].manual {
                continue;
            }
            let at = sim.world.timing.login_spread * a / nr_agents.max(1);
            sim.schedule_agent(a as u32, at, AgentStep::Login);
        }
        if sim.world.timing.arrival_mean.is_some() {
            sim.push(sim.world.timing.first_arrival, Action::Arrival);
        }
        sim.push(HALF_HOUR, Action::HalfHour);
        sim
    }

    /// The counter team MonitorIDs come from, for the sessions' own
    /// monitors at a simulated CTI Server (sim-pg).
    pub fn monitor_ids(&self) -> MonitorIds {
        self.monitor_ids.clone()
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Peripherals this PG has and whether each is online: used for SYSTEM_EVENTs after OPEN.
    pub fn peripherals(&self) -> Vec<(u32, bool)> {
        vec![(self.config.peripheral_id, true)]
    }

    /// The next event and its due time since simulation start. Infinite stream, deterministic:
    /// the same config yields the same sequence of (Duration, Message), independent of how/when it is called.
    /// Events for one supervisor's session ([`To`]) are left out: see
    /// [`Simulator::next_addressed_event`].
    pub fn next_event(&mut self) -> (Duration, Message) {
        loop {
            let (at, to, m) = self.next_addressed_event();
            if to.reaches_all_events() {
                return (at, m);
            }
        }
    }

    /// [`Simulator::next_event`] with whom each event is for: everything
    /// the simulator sends, the supervisors' events included.
    pub fn next_addressed_event(&mut self) -> (Duration, To, Message) {
        loop {
            if let Some(next) = self.pop_out() {
                return next;
            }
            self.run_next();
        }
    }

    /// The next event due at or before `until`, if any. Unlike
    /// [`Simulator::next_event`] it runs no action scheduled after `until`,
    /// so a request taken at `until` ([`Simulator::request`]) comes before
    /// everything later: what a paced, live simulator uses. Events for one
    /// supervisor's session are left out.
    pub fn next_event_until(&mut self, until: Duration) -> Option<(Duration, Message)> {
        loop {
            let (at, to, m) = self.next_addressed_event_until(until)?;
            if to.reaches_all_events() {
                return Some((at, m));
            }
        }
    }

    /// [`Simulator::next_event_until`] with whom each event is for.
    pub fn next_addressed_event_until(
        &mut self,
        until: Duration,
    ) -> Option<(Duration, To, Message)> {
        let until = u64::try_from(until.as_nanos()).unwrap_or(u64::MAX);
        loop {
            if let Some(&(at, ..)) = self.out.queue.front() {
                if at > until {
                    return None;
                }
                return self.pop_out();
            }
            if self.heap.peek().is_none_or(|next| next.at > until) {
                return None;
            }
            self.run_next();
        }
    }

    /// The first queued event; an agent's state change is followed by its
    /// copies for the team monitors that watch the agent.
    fn pop_out(&mut self) -> Option<(Duration, To, Message)> {
        let (at, to, m) = self.out.queue.pop_front()?;
        self.produced += 1;
        if to == To::All && !self.team_monitors.is_empty() {
            self.copy_to_team_monitors(at, &m);
        }
        Some((Duration::from_nanos(at), to, m))
    }

    /// When the next event may be due (an action due then may turn out to
    /// send nothing: the caller asks again).
    pub fn next_due(&self) -> Duration {
        self.out
            .queue
            .front()
            .map(|&(at, ..)| at)
            .or_else(|| self.heap.peek().map(|next| next.at))
            .map_or(Duration::MAX, Duration::from_nanos)
    }

    /// Take a request from a client at simulated time `at` (or at the
    /// simulator's present, if that is later): every action due by then
    /// runs first, then the request's answer — its CONF, CONTROL_FAILURE_CONF
    /// or FAILURE_CONF with `invoke_id` — and the events it causes join the
    /// stream at that time (docs/requests.md §9; what each request does is
    /// in `control`). Deterministic: the same seed and the same requests at
    /// the same times give the same stream; with no requests the stream is
    /// that of [`Simulator::next_event`] alone.
    pub fn request(&mut self, at: Duration, invoke_id: u32, request: &Message) {
        let at = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX);
        while self.heap.peek().is_some_and(|next| next.at <= at) {
            self.run_next();
        }
        self.out.now = self.out.now.max(at);
        self.take_request(invoke_id, request);
    }

    /// Number of events produced so far.
    pub fn nr_events(&self) -> u64 {
        self.produced
    }

    /// Calls in progress (inbound calls from trunk seizure to END_CALL, and
    /// calls agents placed).
    pub fn live_calls(&self) -> usize {
        self.live_calls
    }

    /// Calls waiting in skill-group queues.
    pub fn queued_calls(&self) -> usize {
        self.queued
    }

    /// Runs the earliest scheduled action (the heap is never empty: the
    /// half-hour event always reschedules itself).
    fn run_next(&mut self) {
        let Some(next) = self.heap.pop() else {
            unreachable!("the half-hour event is always scheduled");
        };
        self.out.now = next.at;
        match next.action {
            Action::Arrival => self.arrival(),
            Action::HalfHour => {
                self.out.push(build::half_hour(next.at / NS));
                self.push(next.at.saturating_add(HALF_HOUR), Action::HalfHour);
            }
            Action::Agent(a, step) => {
                let agent = &mut self.world.agents[a as usize];
                if agent.timer == next.seq {
                    agent.timer = 0;
                    self.agent_step(a, step);
                }
            }
            Action::Call(slot, step) => {
                if matches!(&self.calls[slot as usize], Some(c) if c.timer == next.seq) {
                    self.call_step(slot, step);
                }
            }
        }
    }

    /// Schedules `action` at absolute time `at`; returns its sequence number.
    fn push(&mut self, at: u64, action: Action) -> u64 {
        self.seq += 1;
        self.heap.push(Scheduled {
            at,
            seq: self.seq,
            action,
        });
        self.seq
    }

    /// Makes `step` the call's only pending timer, `delay` from now.
    fn schedule_call(&mut self, slot: u32, delay: u64, step: CallStep) {
        let seq = self.push(self.out.now.saturating_add(delay), Action::Call(slot, step));
        if let Some(call) = self.calls[slot as usize].as_mut() {
            call.timer = seq;
        }
    }

    /// Makes `step` the agent's only pending timer, `delay` from now.
    fn schedule_agent(&mut self, a: u32, delay: u64, step: AgentStep) {
        let seq = self.push(self.out.now.saturating_add(delay), Action::Agent(a, step));
        self.world.agents[a as usize].timer = seq;
    }

    /// A fresh ConnectionCallID (never 0 or NULL_CALL_ID).
    fn next_call_id(&mut self) -> u32 {
        loop {
            self.next_call = self.next_call.wrapping_add(1);
            let id = CALL_ID_BASE.wrapping_add(self.next_call);
            if id != 0 && id != u32::MAX {
                return id;
            }
        }
    }

    /// Simulated day number (for RouterCallKeyDay).
    fn day(&self) -> u32 {
        (self.out.now / (86_400 * NS)) as u32
    }

    /// Entries held by the scheduler and queues: bounded for a bounded population.
    #[cfg(test)]
    fn footprint(&self) -> usize {
        self.heap.len()
            + self.calls.len()
            + self.out.queue.len()
            + self
                .world
                .groups
                .iter()
                .map(|g| g.queue.len() + g.avail.len())
                .sum::<usize>()
    }
}
