//! The simulated PG as the oracle of the tracker's snapshots: every event
//! the simulator sends goes through routing's extraction into a
//! [`CallTracker`]; at seeded random moments random live calls (and call
//! ids no event has named, or no longer live), random agents' devices and
//! random trunks are snapshot by both, the simulator answering from its
//! world (`sim::control`), and the answers must be the same bytes at every
//! version 13–24. Where the tracker proxies (`None`) the simulator must
//! fail the request too, except for an agent that has not reported a state
//! yet (the tracker does not know it is an agent).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::super::CallTracker;
use crate::keys::{CallKey, DeviceKey};
use crate::proto::constants::msg;
use crate::proto::{routing, CtiString, Message, Version};
use crate::sim::rng::Rng;
use crate::sim::{SimConfig, Simulator};

/// A call identity: ConnectionCallID, ConnectionDeviceIDType, ConnectionDeviceID.
type Identity = (u32, u16, CtiString);

/// The call an event opens (BEGIN_CALL) or ends (CALL_CLEARED, END_CALL).
fn bracket(m: &Message) -> Option<(bool, Identity)> {
    let id =
        |call: u32, ty: u16, dev: &Option<CtiString>| (call, ty, dev.clone().unwrap_or_default());
    match m {
        Message::BeginCallEvent(e) => Some((
            true,
            id(
                e.connection_call_id,
                e.connection_device_id_type,
                &e.connection_device_id,
            ),
        )),
        Message::CallClearedEvent(e) => Some((
            false,
            id(
                e.connection_call_id,
                e.connection_device_id_type,
                &e.connection_device_id,
            ),
        )),
        Message::EndCallEvent(e) => Some((
            false,
            id(
                e.connection_call_id,
                e.connection_device_id_type,
                &e.connection_device_id,
            ),
        )),
        _ => None,
    }
}

/// What the oracle run saw.
#[derive(Debug, Default)]
struct Tally {
    events: u64,
    calls_answered: u64,
    calls_unknown: u64,
    devices_answered: u64,
    devices_with_calls: u64,
    /// Agents' devices the tracker proxied: the agent had not reported.
    agents_unknown: u64,
    /// Trunks in no live call: both say unknown.
    trunks_unknown: u64,
    /// Parties seen in answered call snapshots, by LocalConnectionState.
    states: HashMap<u16, u64>,
    /// The desktops' requests, by the type of their answer.
    answers: HashMap<u32, u64>,
}

struct Oracle {
    sim: Simulator,
    tracker: CallTracker,
    version: Version,
    start: Instant,
    rng: Rng,
    /// Live calls as the events tell them, in the order they began.
    live: Vec<Identity>,
    ended: VecDeque<Identity>,
    /// Devices of agents that have reported a state.
    reported: HashSet<CtiString>,
    trunks: Vec<CtiString>,
    highest_call_id: u32,
    recent: VecDeque<Message>,
    invoke_id: u32,
    tally: Tally,
}

impl Oracle {
    fn new(config: SimConfig, version: Version, seed: u64) -> Oracle {
        Oracle {
            sim: Simulator::new(config),
            // Longer than any run: a call a desktop leaves alone (an
            // autonomous agent's customer held after the consulted desktop
            // cleared the consult) would age out, and be proxied.
            tracker: CallTracker::new(Duration::from_secs(24 * 3600)),
            version,
            start: Instant::now(),
            rng: Rng::new(seed),
            live: Vec::new(),
            ended: VecDeque::new(),
            reported: HashSet::new(),
            trunks: Vec::new(),
            highest_call_id: 0,
            recent: VecDeque::new(),
            invoke_id: 0,
            tally: Tally::default(),
        }
    }

    /// Feed the tracker every event due by `until`.
    fn run_until(&mut self, until: Duration) {
        while let Some((at, m)) = self.sim.next_event_until(until) {
            self.feed(at, m);
        }
    }

    fn feed(&mut self, at: Duration, m: Message) {
        assert!(
            !msg::is_reply(m.message_type()),
            "an answer nobody took: {m:?}"
        );
        let frame = m.to_frame(self.version).expect("simulated events encode");
        let keys = routing::extract(&frame, self.version).expect("and extract");
        let keyed = self.tally.events % 3 != 0;
        self.tracker
            .observe(&frame, &keys, self.version, self.start + at, keyed);
        self.tally.events += 1;
        match bracket(&m) {
            Some((true, call)) => {
                self.highest_call_id = self.highest_call_id.max(call.0);
                if call.2.as_bytes().starts_with(b"T") && !self.trunks.contains(&call.2) {
                    self.trunks.push(call.2.clone());
                }
                self.live.push(call);
            }
            Some((false, call)) => {
                if let Some(at) = self.live.iter().position(|c| *c == call) {
                    self.live.remove(at);
                    self.ended.push_back(call);
                    if self.ended.len() > 32 {
                        self.ended.pop_front();
                    }
                }
            }
            None => {}
        }
        if let Message::AgentStateEvent(e) = &m {
            if let Some(dev) = &e.agent_instrument {
                self.reported.insert(dev.clone());
            }
        }
        self.recent.push_back(m);
        if self.recent.len() > 400 {
            self.recent.pop_front();
        }
    }

    /// The simulator's answer to `request`, taken at `at` (after every
    /// event due by then was fed).
    fn ask_sim(&mut self, at: Duration, request: Message) -> Message {
        self.invoke_id += 1;
        self.sim.request(at, self.invoke_id, &request);
        let (_, answer) = self.sim.next_event();
        answer
    }

    /// The events of the last while that name `needle` in their Debug form.
    fn history(&self, needle: &str) -> String {
        self.recent
            .iter()
            .map(|m| format!("{m:?}"))
            .filter(|s| s.contains(needle))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn check_call(&mut self, at: Duration, call: &Identity, live: bool) {
        let key = CallKey::new(call.0, call.1, call.2.as_bytes());
        let ours = self.tracker.snapshot_call(&key);
        let theirs = self.ask_sim(
            at,
            crate::proto::msg::SnapshotCallReq {
                connection_call_id: call.0,
                connection_device_id_type: call.1,
                connection_device_id: Some(call.2.clone()),
                ..Default::default()
            }
            .into(),
        );
        let what = format!("SNAPSHOT_CALL {call:?} at {at:?} (live: {live})");
        match (ours, theirs) {
            (Some(mut ours), Message::SnapshotCallConf(theirs)) => {
                ours.invoke_id = theirs.invoke_id;
                for d in &ours.call_devices {
                    *self
                        .tally
                        .states
                        .entry(d.connection_state.unwrap_or(0))
                        .or_default() += 1;
                }
                self.tally.calls_answered += 1;
                let needle = format!("{}", call.0);
                self.same(&what, ours.into(), theirs.into(), &needle);
            }
            (None, Message::ControlFailureConf(_)) => self.tally.calls_unknown += 1,
            (ours, theirs) => panic!(
                "{what}: the tracker says {ours:?}, the simulated PG {theirs:?}\n{}",
                self.history(&format!("{}", call.0))
            ),
        }
    }

    fn check_device(&mut self, at: Duration, dev: &CtiString) {
        let ours = self
            .tracker
            .snapshot_device(&DeviceKey::device(dev.as_bytes()));
        let theirs = self.ask_sim(
            at,
            crate::proto::msg::SnapshotDeviceReq {
                agent_instrument: Some(dev.clone()),
                ..Default::default()
            }
            .into(),
        );
        let what = format!("SNAPSHOT_DEVICE {dev:?} at {at:?}");
        match (ours, theirs) {
            (Some(mut ours), Message::SnapshotDeviceConf(theirs)) => {
                ours.invoke_id = theirs.invoke_id;
                self.tally.devices_answered += 1;
                self.tally.devices_with_calls += (!ours.calls.is_empty()) as u64;
                let needle = format!("{:?}", dev.to_str_lossy());
                self.same(&what, ours.into(), theirs.into(), &needle);
            }
            (None, Message::ControlFailureConf(_)) => self.tally.trunks_unknown += 1,
            (None, Message::SnapshotDeviceConf(_)) if !self.reported.contains(dev) => {
                self.tally.agents_unknown += 1
            }
            (ours, theirs) => panic!(
                "{what}: the tracker says {ours:?}, the simulated PG {theirs:?}\n{}",
                self.history(&format!("{:?}", dev.to_str_lossy()))
            ),
        }
    }

    /// `ours` and `theirs` encode to the same bytes at every version.
    fn same(&self, what: &str, ours: Message, theirs: Message, needle: &str) {
        for version in Version::all() {
            let a = ours.to_frame(version).expect("our answer encodes");
            let b = theirs.to_frame(version).expect("the simulator's encodes");
            assert!(
                a == b,
                "{what} at v{}:\n ours   {ours:?}\n theirs {theirs:?}\nevents:\n{}",
                version.number(),
                self.history(needle)
            );
        }
    }

    /// A desktop of one of the `manual` agents sends a random request at
    /// `at` (most fail: the agent is not in the state it needs); the
    /// events it causes are fed like the rest.
    fn drive(&mut self, at: Duration, manual: &[CtiString], agents: u32) {
        use crate::proto::constants::agent_state::*;
        use crate::proto::msg::*;
        let me = manual[self.rng.below(manual.len() as u32) as usize].clone();
        let other = CtiString::from(format!("{}", 3001 + self.rng.below(agents)));
        let outside = CtiString::from(format!("555{:04}", self.rng.below(10_000)));
        // The agent's calls and their states, as the simulated PG tells
        // them: the desktop mostly does what they call for.
        let calls: Vec<(u32, u16)> = match self.ask_sim(
            at,
            SnapshotDeviceReq {
                agent_instrument: Some(me.clone()),
                ..Default::default()
            }
            .into(),
        ) {
            Message::SnapshotDeviceConf(c) => c
                .calls
                .iter()
                .map(|c| (c.connection_call_id.unwrap_or(0), c.call_state.unwrap_or(0)))
                .collect(),
            _ => Vec::new(),
        };
        let call = match calls.len() {
            0 => 0,
            n => calls[self.rng.below(n as u32) as usize].0,
        };
        use crate::proto::constants::lcs;
        let states: Vec<u16> = calls.iter().map(|c| c.1).collect();
        // Weights of: LOGIN, AVAILABLE, NOT_READY, WORK_*, LOGOUT, ANSWER,
        // HOLD, RETRIEVE, MAKE_CALL, CONSULTATION, TRANSFER, CONFERENCE,
        // RECONNECT, CLEAR_CONNECTION, CLEAR_CALL, SET_CALL_DATA.
        let weights: [f64; 16] = match states.as_slice() {
            _ if self.rng.chance(0.2) => [1.0; 16],
            [] => [
                2., 4., 1., 0.5, 0.3, 0., 0., 0., 3., 0., 0., 0., 0., 0., 0., 0.,
            ],
            s if s.contains(&lcs::ALERTING) => [
                0., 0., 0., 0., 0., 8., 0., 0., 0., 0., 0., 0., 0., 2., 0., 0.,
            ],
            [lcs::HOLD] => [
                0., 0., 0., 0., 0., 0., 0., 4., 0., 0., 0., 0., 0., 1., 0., 0.,
            ],
            [_] => [
                0., 0., 0., 1., 0., 0., 2., 0., 0., 3., 0., 0., 0., 2., 1., 2.,
            ],
            _ => [
                0., 0., 0., 0., 0., 0., 0., 0., 0., 0., 3., 3., 1., 1., 0., 0.,
            ],
        };
        let instrument = Some(me.clone());
        let state = |agent_state, event_reason_code| -> Message {
            SetAgentStateReq {
                agent_state,
                event_reason_code,
                agent_instrument: Some(me.clone()),
                ..Default::default()
            }
            .into()
        };
        let request: Message = match self.rng.pick(&weights) {
            0 => state(LOGIN, 0),
            1 => state(AVAILABLE, 0),
            2 => state(NOT_READY, 1 + self.rng.below(5) as u16),
            3 => state([WORK_READY, WORK_NOT_READY][self.rng.below(2) as usize], 0),
            4 => state(LOGOUT, 0),
            5 => AnswerCallReq {
                connection_call_id: call,
                agent_instrument: instrument,
                ..Default::default()
            }
            .into(),
            6 => HoldCallReq {
                agent_instrument: instrument,
                ..Default::default()
            }
            .into(),
            7 => RetrieveCallReq {
                agent_instrument: instrument,
                ..Default::default()
            }
            .into(),
            8 => MakeCallReq {
                agent_instrument: instrument,
                dialed_number: Some(if self.rng.chance(0.5) { other } else { outside }),
                ..Default::default()
            }
            .into(),
            9 => ConsultationCallReq {
                agent_instrument: instrument,
                dialed_number: Some(other),
                ..Default::default()
            }
            .into(),
            10 => TransferCallReq {
                agent_instrument: instrument,
                ..Default::default()
            }
            .into(),
            11 => ConferenceCallReq {
                agent_instrument: instrument,
                ..Default::default()
            }
            .into(),
            12 => ReconnectCallReq {
                agent_instrument: instrument,
                ..Default::default()
            }
            .into(),
            13 => ClearConnectionReq {
                connection_call_id: call,
                agent_instrument: instrument,
                ..Default::default()
            }
            .into(),
            14 => ClearCallReq {
                connection_call_id: call,
                agent_instrument: instrument,
                ..Default::default()
            }
            .into(),
            // What the simulated PG keeps of SET_CALL_DATA: the call
            // variables and the wrap-up data (CallType 0: not changed).
            _ => SetCallDataReq {
                connection_call_id: call,
                call_variable_5: Some(format!("v{}", self.rng.below(1000)).into()),
                call_wrapup_data: self.rng.chance(0.3).then(|| CtiString::from("wrapped")),
                ..Default::default()
            }
            .into(),
        };
        let answer = self.ask_sim(at, request);
        assert!(msg::is_reply(answer.message_type()), "{answer:?}");
        *self.tally.answers.entry(answer.message_type()).or_default() += 1;
        self.run_until(at);
    }

    /// Snapshot a few calls and devices, picked at random, at `at`.
    fn probe(&mut self, at: Duration, agents: u32) {
        for _ in 0..3 {
            if self.live.is_empty() {
                break;
            }
            let call = self.live[self.rng.below(self.live.len() as u32) as usize].clone();
            self.check_call(at, &call, true);
        }
        if let Some(call) = self.live.last().cloned() {
            self.check_call(at, &call, true);
        }
        // A call id no event has named yet (a consult call being set up is
        // one), and a call that ended.
        let unnamed = (self.highest_call_id + 1, 1, "T1".into());
        self.check_call(at, &unnamed, false);
        if !self.ended.is_empty() {
            let call = self.ended[self.rng.below(self.ended.len() as u32) as usize].clone();
            self.check_call(at, &call, false);
        }
        for _ in 0..3 {
            let dev = CtiString::from(format!("{}", 3001 + self.rng.below(agents)));
            self.check_device(at, &dev);
        }
        if !self.trunks.is_empty() {
            let dev = self.trunks[self.rng.below(self.trunks.len() as u32) as usize].clone();
            self.check_device(at, &dev);
        }
    }
}

/// Run the simulated PG for `secs` simulated seconds, probing every
/// `mean_gap` on average (and, with manual agents, sending one of their
/// requests before each probe).
fn run(config: SimConfig, version: Version, seed: u64, secs: u64, mean_gap: f64) -> Tally {
    let agents = config.agents;
    let manual: Vec<CtiString> = (agents - config.manual_agents..agents)
        .map(|a| CtiString::from(format!("{}", 3001 + a)))
        .collect();
    let mut oracle = Oracle::new(config, version, seed);
    let end = Duration::from_secs(secs);
    let mut at = Duration::ZERO;
    while at < end {
        at += Duration::from_secs_f64(oracle.rng.exp(mean_gap).max(1e-3));
        oracle.run_until(at);
        if !manual.is_empty() {
            oracle.drive(at, &manual, agents);
        }
        oracle.probe(at, agents);
    }
    oracle.tally
}

/// An hour of the default simulated center (50 agents, 5 calls/s: plain
/// calls, holds, consult transfers and conferences, abandons), fed at v24
/// as ingest opens the upstream.
#[test]
fn snapshots_match_the_simulated_pg_for_an_hour() {
    let config = SimConfig {
        seed: 11,
        ..SimConfig::default()
    };
    let tally = run(config, Version::MAX, 0x5eed, 3600, 1.5);
    println!("{tally:#?}");
    assert!(tally.events > 100_000, "{tally:?}");
    assert!(tally.calls_answered > 5_000, "{tally:?}");
    assert!(tally.devices_with_calls > 2_000, "{tally:?}");
    assert!(tally.agents_unknown < 10, "{tally:?}");
    for state in [
        crate::proto::constants::lcs::INITIATE,
        crate::proto::constants::lcs::ALERTING,
        crate::proto::constants::lcs::CONNECT,
        crate::proto::constants::lcs::HOLD,
        crate::proto::constants::lcs::QUEUED,
    ] {
        assert!(
            tally.states.get(&state).is_some_and(|&n| n > 10),
            "{tally:?}"
        );
    }
}

/// Desktops driving half of a small center by requests (answer, hold,
/// retrieve, calls placed inside and outside, consults, transfers,
/// conferences, reconnects, hang-ups, call data, agent states) among
/// autonomous agents, for six simulated hours, fed at v13.
#[test]
fn snapshots_match_the_simulated_pg_driven_by_desktops() {
    let config = SimConfig {
        seed: 23,
        agents: 8,
        manual_agents: 4,
        calls_per_sec: 0.15,
        ..SimConfig::default()
    };
    let tally = run(config, Version::MIN, 0xde5c, 6 * 3600, 1.0);
    println!("{tally:#?}");
    assert!(tally.calls_answered > 10_000, "{tally:?}");
    assert!(tally.devices_with_calls > 10_000, "{tally:?}");
    for (conf, at_least) in [
        (msg::ANSWER_CALL_CONF, 500),
        (msg::HOLD_CALL_CONF, 300),
        (msg::MAKE_CALL_CONF, 300),
        (msg::CONSULTATION_CALL_CONF, 100),
        (msg::TRANSFER_CALL_CONF, 30),
        (msg::CONFERENCE_CALL_CONF, 30),
        (msg::RECONNECT_CALL_CONF, 15),
        (msg::CLEAR_CONNECTION_CONF, 300),
        (msg::SET_CALL_DATA_CONF, 300),
    ] {
        let n = tally.answers.get(&conf).copied().unwrap_or(0);
        assert!(n >= at_least, "{n} of {conf}: {tally:?}");
    }
}
