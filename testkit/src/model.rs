//! A naive, single-threaded reference of the monitor services, written from
//! docs/design.md §4 items 8–10 and the rules in `src/ingest/tracker.rs` ("# The
//! rules"), without any of the router's tracker, interest or index code:
//! events are decoded with the codec into typed messages and every fact the
//! rules need (calls, device-id fields, agent fields, trunks) is read off
//! the typed fields here, by hand.
//!
//! * [`facts`] — what the rules need of one event;
//! * [`RefTracker`] — live calls → devices taking part, agent directory;
//! * [`Stream`] — a whole event stream with its per-event targets and the
//!   calls known before each event;
//! * [`SessionModel`] — one session's monitors over the stream: given where
//!   its requests took effect, the exact frames it must receive;
//! * [`CallData`] and [`fold_call_data`] — a call's data as the upstream told
//!   it (docs/call-brackets.md "The call's data"), and [`built_begin`] /
//!   [`built_end`], the BEGIN_CALL / END_CALL a watcher gets around its
//!   association with a call (docs/call-brackets.md "The rules"; written from
//!   the doc, not from the router's code).

use std::collections::{BTreeMap, HashMap, HashSet};

use ctirouter::proto::constants::msg;
use ctirouter::proto::msg::{BeginCallEvent, EndCallEvent};
use ctirouter::proto::{CtiString, Message, NamedArray, NamedVar, Unspec, Version};

/// What kind of device a key names (MonitoredDeviceType 70 / 71 / other).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Device,
    Trunk,
    TrunkGroup,
}

pub type Dev = (Kind, Vec<u8>);
use crate::frames::cid;
pub use crate::frames::{primary_call, CallId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AgentField {
    Id,
    Extension,
    Instrument,
}

pub type AgentK = (AgentField, Vec<u8>);

/// What the rules need of one event.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub message_type: u32,
    pub call: Option<CallId>,
    /// Secondary call (conference/transfer) or CALL_DATA_UPDATE's new call.
    pub other: Option<CallId>,
    /// Every device the event names (device-id fields, agent fields, trunks).
    pub named: Vec<Dev>,
    pub agent_id: Option<Vec<u8>>,
    pub agent_extension: Option<Vec<u8>>,
    pub agent_instrument: Option<Vec<u8>>,
    pub agent_state: Option<u16>,
    pub releasing: Option<Vec<u8>>,
    pub connection: Option<Vec<u8>>,
    pub transferring: Option<Vec<u8>>,
}

fn text(s: &Option<CtiString>) -> Option<Vec<u8>> {
    s.as_ref()
        .map(|s| s.as_bytes().to_vec())
        .filter(|v| !v.is_empty())
}

/// NULL_CALL_ID and 0: no second call.
fn real_call(id: u32) -> bool {
    id != 0 && id != u32::MAX
}

/// The facts of one decoded event. Panics on a type the reference does not
/// know (so a new simulator event type cannot slip through unchecked).
pub fn facts(m: &Message) -> Facts {
    use Message as M;
    let mut f = Facts {
        message_type: m.message_type(),
        call: primary_call(m),
        ..Facts::default()
    };
    let mut devs: Vec<Option<Vec<u8>>> = Vec::new();
    let mut trunk: Option<u32> = None;
    let mut trunk_group: Option<u32> = None;
    match m {
        M::CallDeliveredEvent(e) => {
            devs.extend([
                text(&e.connection_device_id),
                text(&e.alerting_device_id),
                text(&e.calling_device_id),
                text(&e.called_device_id),
                text(&e.last_redirect_device_id),
            ]);
            trunk = e.trunk_number;
            trunk_group = e.trunk_group_number;
        }
        M::CallEstablishedEvent(e) => {
            devs.extend([
                text(&e.connection_device_id),
                text(&e.answering_device_id),
                text(&e.calling_device_id),
                text(&e.called_device_id),
                text(&e.last_redirect_device_id),
            ]);
            trunk = e.trunk_number;
            trunk_group = e.trunk_group_number;
        }
        M::CallHeldEvent(e) => {
            devs.extend([text(&e.connection_device_id), text(&e.holding_device_id)])
        }
        M::CallRetrievedEvent(e) => {
            devs.extend([text(&e.connection_device_id), text(&e.retrieving_device_id)])
        }
        M::CallClearedEvent(e) => devs.push(text(&e.connection_device_id)),
        M::CallConnectionClearedEvent(e) => {
            devs.extend([text(&e.connection_device_id), text(&e.releasing_device_id)]);
            f.releasing = text(&e.releasing_device_id);
            f.connection = text(&e.connection_device_id);
        }
        M::CallOriginatedEvent(e) => devs.extend([
            text(&e.connection_device_id),
            text(&e.calling_device_id),
            text(&e.called_device_id),
        ]),
        M::CallFailedEvent(e) => devs.extend([
            text(&e.connection_device_id),
            text(&e.failing_device_id),
            text(&e.called_device_id),
        ]),
        M::CallConferencedEvent(e) => {
            devs.extend([
                text(&e.primary_device_id),
                text(&e.secondary_device_id),
                text(&e.controller_device_id),
                text(&e.added_party_device_id),
            ]);
            devs.extend(e.parties.iter().map(|p| text(&p.device_id)));
            if real_call(e.secondary_call_id) {
                f.other = Some(cid(
                    e.secondary_call_id,
                    e.secondary_device_id_type,
                    &e.secondary_device_id,
                ));
            }
        }
        M::CallTransferredEvent(e) => {
            devs.extend([
                text(&e.primary_device_id),
                text(&e.secondary_device_id),
                text(&e.transferring_device_id),
                text(&e.transferred_device_id),
            ]);
            devs.extend(e.parties.iter().map(|p| text(&p.device_id)));
            f.transferring = text(&e.transferring_device_id);
            if real_call(e.secondary_call_id) {
                f.other = Some(cid(
                    e.secondary_call_id,
                    e.secondary_device_id_type,
                    &e.secondary_device_id,
                ));
            }
        }
        M::CallDivertedEvent(e) => devs.extend([
            text(&e.connection_device_id),
            text(&e.diverting_device_id),
            text(&e.called_device_id),
        ]),
        M::CallServiceInitiatedEvent(e) => devs.extend([
            text(&e.connection_device_id),
            text(&e.calling_device_id),
            text(&e.coc_connection_device_id),
        ]),
        M::CallQueuedEvent(e) => devs.extend([
            text(&e.connection_device_id),
            text(&e.queue_device_id),
            text(&e.calling_device_id),
            text(&e.called_device_id),
            text(&e.last_redirect_device_id),
        ]),
        M::CallDequeuedEvent(e) => devs.push(text(&e.connection_device_id)),
        M::CallReachedNetworkEvent(e) => {
            devs.extend([
                text(&e.connection_device_id),
                text(&e.trunk_used_device_id),
                text(&e.called_device_id),
            ]);
            trunk = e.trunk_number;
            trunk_group = e.trunk_group_number;
        }
        M::BeginCallEvent(e) => devs.push(text(&e.connection_device_id)),
        M::EndCallEvent(e) => devs.push(text(&e.connection_device_id)),
        M::CallDataUpdateEvent(e) => {
            devs.extend([
                text(&e.connection_device_id),
                text(&e.new_connection_device_id),
            ]);
            if real_call(e.new_connection_call_id) {
                f.other = Some(cid(
                    e.new_connection_call_id,
                    e.new_connection_device_id_type,
                    &e.new_connection_device_id,
                ));
            }
        }
        M::AgentStateEvent(e) => {
            f.agent_id = text(&e.agent_id);
            f.agent_extension = text(&e.agent_extension);
            f.agent_instrument = text(&e.agent_instrument);
            f.agent_state = Some(e.agent_state);
        }
        M::CallTranslationRouteEvent(_) | M::SystemEvent(_) => {}
        other => panic!(
            "the reference matcher does not know {} (type {})",
            other.name(),
            other.message_type()
        ),
    }
    for v in [&f.agent_id, &f.agent_extension, &f.agent_instrument] {
        devs.push(v.clone());
    }
    let mut named: Vec<Dev> = Vec::new();
    let mut add = |d: Dev| {
        if !named.contains(&d) {
            named.push(d);
        }
    };
    for d in devs.into_iter().flatten() {
        add((Kind::Device, d));
    }
    if let Some(n) = trunk {
        add((Kind::Trunk, n.to_string().into_bytes()));
    }
    if let Some(n) = trunk_group {
        add((Kind::TrunkGroup, n.to_string().into_bytes()));
    }
    f.named = named;
    f
}

/// The keys one event reaches.
#[derive(Debug, Clone, Default)]
pub struct Step {
    pub calls: Vec<CallId>,
    pub devices: HashSet<Dev>,
    pub agents: HashSet<AgentK>,
    pub ended: Vec<CallId>,
    pub merged: Option<(CallId, CallId)>,
}

/// Live calls and the devices taking part; agents by instrument/extension.
#[derive(Debug, Default, Clone)]
pub struct RefTracker {
    pub calls: HashMap<CallId, Vec<Dev>>,
    /// Device string (instrument or extension) → that agent's keys.
    pub agents: HashMap<Vec<u8>, Vec<AgentK>>,
}

fn agent_keys(f: &Facts) -> Vec<AgentK> {
    let mut out = Vec::new();
    if let Some(v) = &f.agent_id {
        out.push((AgentField::Id, v.clone()));
    }
    if let Some(v) = &f.agent_extension {
        out.push((AgentField::Extension, v.clone()));
    }
    if let Some(v) = &f.agent_instrument {
        out.push((AgentField::Instrument, v.clone()));
    }
    out
}

impl RefTracker {
    pub fn observe(&mut self, f: &Facts) -> Step {
        let mut step = Step::default();
        if let Some(p) = &f.call {
            step.calls.push(p.clone());
        }
        if let Some(o) = &f.other {
            if f.call.as_ref() != Some(o) {
                step.calls.push(o.clone());
            }
        }
        if f.message_type == msg::AGENT_STATE_EVENT {
            let keys = agent_keys(f);
            for d in [&f.agent_instrument, &f.agent_extension]
                .into_iter()
                .flatten()
            {
                self.agents.insert(d.clone(), keys.clone());
            }
        }
        for c in &step.calls {
            let devices = self.calls.entry(c.clone()).or_default();
            step.devices.extend(devices.iter().cloned());
            for d in &f.named {
                if !devices.contains(d) {
                    devices.push(d.clone());
                }
            }
        }
        step.devices.extend(f.named.iter().cloned());
        step.agents.extend(agent_keys(f));
        for (kind, id) in &step.devices {
            if *kind == Kind::Device {
                if let Some(keys) = self.agents.get(id) {
                    step.agents.extend(keys.iter().cloned());
                }
            }
        }
        // Removals, after the targets.
        let primary = f.call.clone();
        let other = f.other.clone().filter(|o| Some(o) != primary.as_ref());
        match f.message_type {
            msg::CALL_CONNECTION_CLEARED_EVENT => {
                let gone = f.releasing.clone().or_else(|| f.connection.clone());
                if let (Some(c), Some(gone)) = (&primary, gone) {
                    if let Some(devices) = self.calls.get_mut(c) {
                        devices.retain(|d| *d != (Kind::Device, gone.clone()));
                    }
                }
            }
            msg::CALL_CLEARED_EVENT | msg::END_CALL_EVENT => {
                if let Some(c) = &primary {
                    self.calls.remove(c);
                    step.ended.push(c.clone());
                }
            }
            msg::CALL_CONFERENCED_EVENT | msg::CALL_TRANSFERRED_EVENT => {
                if let (Some(to), Some(from)) = (&primary, &other) {
                    self.merge(from, to);
                    step.merged = Some((from.clone(), to.clone()));
                }
                if f.message_type == msg::CALL_TRANSFERRED_EVENT {
                    if let (Some(c), Some(gone)) = (&primary, &f.transferring) {
                        if let Some(devices) = self.calls.get_mut(c) {
                            devices.retain(|d| *d != (Kind::Device, gone.clone()));
                        }
                    }
                }
            }
            msg::CALL_DATA_UPDATE_EVENT => {
                if let (Some(from), Some(to)) = (&primary, &other) {
                    self.merge(from, to);
                    step.merged = Some((from.clone(), to.clone()));
                }
            }
            _ => {}
        }
        step
    }

    fn merge(&mut self, from: &CallId, to: &CallId) {
        if let Some(old) = self.calls.remove(from) {
            let devices = self.calls.entry(to.clone()).or_default();
            for d in old {
                if !devices.contains(&d) {
                    devices.push(d);
                }
            }
        }
    }
}

/// CallMsgMask bit of an event type (docs/protocol.md §5.2); 0: not governed.
pub fn call_mask_bit(t: u32) -> u32 {
    match t {
        9 => 1,
        21 => 1 << 1,
        10 => 1 << 2,
        11 => 1 << 3,
        12 => 1 << 4,
        13 => 1 << 5,
        14 => 1 << 6,
        15 => 1 << 7,
        17 => 1 << 8,
        18 => 1 << 9,
        19 => 1 << 10,
        20 => 1 << 11,
        22 => 1 << 12,
        23 => 1 << 13,
        24 => 1 << 14,
        25 => 1 << 15,
        16 => 1 << 16,
        34 => 1 << 17,
        86 => 1 << 18,
        105 => 1 << 19,
        106 => 1 << 20,
        116 => 1 << 21,
        117 => 1 << 22,
        128 => 1 << 23,
        189 => 1 << 24,
        248 => 1 << 27,
        _ => 0,
    }
}

/// AgentStateMask bit of an AgentState (docs/protocol.md §5.3); 0 for UNKNOWN.
pub fn agent_mask_bit(state: u16) -> u32 {
    match state {
        0..=8 => 1 << state,
        10..=14 => 1 << (state - 1),
        _ => 0,
    }
}

/// Whether an event with these facts passes a pair of masks (docs/design.md §4.8).
pub fn passes(f: &Facts, call_mask: u32, agent_mask: u32) -> bool {
    match f.message_type {
        msg::CALL_TRANSLATION_ROUTE_EVENT | msg::SYSTEM_EVENT => true,
        msg::AGENT_STATE_EVENT => agent_mask & agent_mask_bit(f.agent_state.unwrap_or(9)) != 0,
        t => {
            let bit = call_mask_bit(t);
            bit == 0 || call_mask & bit != 0
        }
    }
}

/// One event of the stream.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    pub frame: Vec<u8>,
    pub facts: Facts,
    pub step: Step,
    /// The primary call's data before this event.
    pub call_data: CallData,
    /// The second call's (Secondary / renamed-to) data before this event.
    pub other_data: CallData,
    /// The agent directory after this event: device → agent keys.
    pub agents: HashMap<Vec<u8>, Vec<AgentK>>,
}

/// A whole event stream, its targets, and the calls the tracker knows
/// before each event (`known[i]`: before event i; `known[len]`: at the end).
#[derive(Debug, Clone, Default)]
pub struct Stream {
    pub events: Vec<StreamEvent>,
    pub known: Vec<HashSet<CallId>>,
}

impl Stream {
    /// Build from v24 frames in stream order.
    pub fn from_frames(frames: Vec<Vec<u8>>) -> Stream {
        let mut tracker = RefTracker::default();
        let mut data = CallDataTable::default();
        let mut stream = Stream::default();
        for frame in frames {
            stream.known.push(tracker.calls.keys().cloned().collect());
            let m = crate::frames::decode(&frame);
            let facts = facts(&m);
            let step = tracker.observe(&facts);
            let of =
                |c: &Option<CallId>| c.as_ref().map(|c| data.get(c, &frame)).unwrap_or_default();
            let (call_data, other_data) = (of(&facts.call), of(&facts.other));
            data.observe(&frame, &m, &facts);
            stream.events.push(StreamEvent {
                frame,
                facts,
                step,
                call_data,
                other_data,
                agents: tracker.agents.clone(),
            });
        }
        stream.known.push(tracker.calls.keys().cloned().collect());
        stream
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// What a monitor watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    Device(Dev),
    Call(CallId),
    /// Client Events: the agent key named in OPEN_REQ (instrument, else
    /// extension, else id) and the instrument as a device, when named.
    Agent {
        agent: AgentK,
        instrument: Option<Vec<u8>>,
    },
}

impl Watch {
    pub fn matches(&self, step: &Step) -> bool {
        match self {
            Watch::Device(d) => step.devices.contains(d),
            Watch::Call(c) => step.calls.contains(c),
            Watch::Agent { agent, instrument } => {
                step.agents.contains(agent)
                    || instrument
                        .as_ref()
                        .is_some_and(|i| step.devices.contains(&(Kind::Device, i.clone())))
            }
        }
    }

    /// A watcher's devices (for rule 3's releasing / transferring device):
    /// a device monitor's device; a Client Events session's instrument as
    /// named, and its agent's instrument and extension as the latest
    /// AGENT_STATE_EVENTs told them (`directory`). Trunks and trunk groups
    /// are numbers, never a device id: none.
    pub fn devices(&self, directory: &HashMap<Vec<u8>, Vec<AgentK>>) -> Vec<Vec<u8>> {
        match self {
            Watch::Device((Kind::Device, d)) => vec![d.clone()],
            Watch::Device(_) | Watch::Call(_) => Vec::new(),
            Watch::Agent { agent, instrument } => {
                let mut out: Vec<Vec<u8>> = instrument.iter().cloned().collect();
                for (dev, keys) in directory {
                    if keys.contains(agent) && !out.contains(dev) {
                        out.push(dev.clone());
                    }
                }
                out
            }
        }
    }
}

/// A live monitor of the model.
#[derive(Debug, Clone)]
struct LiveMonitor {
    watch: Watch,
    call_mask: u32,
    agent_mask: u32,
    client_events: bool,
    /// Call brackets: the calls this watcher is associated with.
    assoc: Associations,
}

/// A request whose reply the session saw at a position of its stream.
#[derive(Debug, Clone)]
pub enum Request {
    StartDevice {
        dev: Dev,
        call_mask: u32,
        agent_mask: u32,
    },
    StartCall {
        call: CallId,
        call_mask: u32,
        agent_mask: u32,
    },
    Stop {
        monitor_id: u32,
    },
    Change {
        monitor_id: u32,
        call_mask: u32,
        agent_mask: u32,
    },
}

/// What the reply to a request was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// MONITOR_START_CONF with this MonitorID.
    Started(u32),
    /// MONITOR_STOP_CONF / CHANGE_MONITOR_MASK_CONF.
    Done,
    Failed(u32),
}

/// One entry of what a session must receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// The All Events copy of stream event `i`.
    AllEvents(usize),
    /// A monitor copy of stream event `i`.
    Copy { event: usize, monitor_id: u32 },
    /// A BEGIN_CALL built for a watcher just before its copy of event `i`.
    Begin {
        event: usize,
        monitor_id: u32,
        call: CallId,
        data: CallData,
    },
    /// An END_CALL built for a watcher after its copy of event `i`.
    End {
        event: usize,
        monitor_id: u32,
        call: CallId,
        data: CallData,
    },
    /// The reply frame the session received for its `n`th request.
    Reply(usize),
}

/// A session of the model: All Events with full masks, Peripheral Monitor,
/// and maybe Client Events.
#[derive(Debug, Clone)]
pub struct SessionModel {
    pub session_id: u32,
    /// Client Events: (OPEN_CONF MonitorID, watch, OPEN masks).
    pub client_events: Option<(u32, Watch, u32, u32)>,
    pub ae_call_mask: u32,
    pub ae_agent_mask: u32,
}

/// Why the observed replies cannot be right.
#[derive(Debug, Clone)]
pub struct ReplyError(pub String);

impl SessionModel {
    /// The frames the session must receive from its registration point
    /// `start` (stream index of the first event it can get) on, given its
    /// requests and the stream index at which each reply was appended.
    /// Checks each observed reply against the model (`Err` says which is
    /// wrong). Returns the expected entries.
    pub fn expected(
        &self,
        stream: &Stream,
        start: usize,
        requests: &[(usize, Request, Reply)],
    ) -> Result<Vec<Expected>, ReplyError> {
        let mut live: BTreeMap<u32, LiveMonitor> = BTreeMap::new();
        if let Some((id, watch, cm, am)) = &self.client_events {
            live.insert(
                *id,
                LiveMonitor {
                    watch: watch.clone(),
                    call_mask: *cm,
                    agent_mask: *am,
                    client_events: true,
                    assoc: Associations::default(),
                },
            );
        }
        let mut out = Vec::new();
        let mut next_req = 0;
        for i in start..=stream.len() {
            while next_req < requests.len() && requests[next_req].0 == i {
                let (_, req, reply) = &requests[next_req];
                self.apply(stream, i, &mut live, req, reply).map_err(|e| {
                    ReplyError(format!(
                        "request #{next_req} ({req:?}) at stream index {i}: {e}"
                    ))
                })?;
                out.push(Expected::Reply(next_req));
                next_req += 1;
            }
            if i == stream.len() {
                break;
            }
            let ev = &stream.events[i];
            if passes(&ev.facts, self.ae_call_mask, self.ae_agent_mask) {
                out.push(Expected::AllEvents(i));
            }
            if ev.facts.message_type != msg::SYSTEM_EVENT
                && ev.facts.message_type != msg::CALL_TRANSLATION_ROUTE_EVENT
            {
                for (&id, m) in live.iter_mut() {
                    let reaches = m.watch.matches(&ev.step);
                    if let Watch::Call(_) = m.watch {
                        // Call monitors are not watchers: events as they are.
                        if reaches && passes(&ev.facts, m.call_mask, m.agent_mask) {
                            out.push(Expected::Copy {
                                event: i,
                                monitor_id: id,
                            });
                        }
                        continue;
                    }
                    let devices = m.watch.devices(&ev.agents);
                    let (cm, am, facts) = (m.call_mask, m.agent_mask, &ev.facts);
                    let pass = |t: u32| {
                        if t == facts.message_type {
                            passes(facts, cm, am)
                        } else {
                            let bit = call_mask_bit(t);
                            bit == 0 || cm & bit != 0
                        }
                    };
                    for b in m.assoc.step(ev, reaches, &devices, pass) {
                        out.push(match b {
                            Bracket::Event => Expected::Copy {
                                event: i,
                                monitor_id: id,
                            },
                            Bracket::Begin(call, data) => Expected::Begin {
                                event: i,
                                monitor_id: id,
                                call,
                                data,
                            },
                            Bracket::End(call, data) => Expected::End {
                                event: i,
                                monitor_id: id,
                                call,
                                data,
                            },
                        });
                    }
                }
            }
            // Call monitors follow merges, then end with their call.
            if let Some((from, to)) = &ev.step.merged {
                for m in live.values_mut() {
                    if m.watch == Watch::Call(from.clone()) {
                        m.watch = Watch::Call(to.clone());
                    }
                }
            }
            for c in &ev.step.ended {
                live.retain(|_, m| m.watch != Watch::Call(c.clone()));
            }
        }
        if next_req != requests.len() {
            return Err(ReplyError(format!(
                "requests #{next_req}.. are placed past the end of the stream"
            )));
        }
        Ok(out)
    }

    fn apply(
        &self,
        stream: &Stream,
        at: usize,
        live: &mut BTreeMap<u32, LiveMonitor>,
        req: &Request,
        reply: &Reply,
    ) -> Result<(), String> {
        let own_pm = |live: &BTreeMap<u32, LiveMonitor>, id: u32| {
            live.get(&id).is_some_and(|m| !m.client_events)
        };
        match req {
            Request::StartDevice {
                dev,
                call_mask,
                agent_mask,
            } => match reply {
                Reply::Started(id) => {
                    live.insert(
                        *id,
                        LiveMonitor {
                            watch: Watch::Device(dev.clone()),
                            call_mask: *call_mask,
                            agent_mask: *agent_mask,
                            client_events: false,
                            assoc: Associations::default(),
                        },
                    );
                    Ok(())
                }
                other => Err(format!("a device monitor must start, got {other:?}")),
            },
            Request::StartCall {
                call,
                call_mask,
                agent_mask,
            } => {
                let known = stream.known[at].contains(call);
                match (known, reply) {
                    (true, Reply::Started(id)) => {
                        live.insert(
                            *id,
                            LiveMonitor {
                                watch: Watch::Call(call.clone()),
                                call_mask: *call_mask,
                                agent_mask: *agent_mask,
                                client_events: false,
                                assoc: Associations::default(),
                            },
                        );
                        Ok(())
                    }
                    (false, Reply::Failed(13)) => Ok(()),
                    (true, other) => Err(format!(
                        "the call is live at this point: MONITOR_START_CONF expected, got {other:?}"
                    )),
                    (false, other) => Err(format!(
                        "the call is unknown at this point: FAILURE_CONF 13 expected, got {other:?}"
                    )),
                }
            }
            Request::Stop { monitor_id } => {
                let owned = own_pm(live, *monitor_id);
                match (owned, reply) {
                    (true, Reply::Done) => {
                        live.remove(monitor_id);
                        Ok(())
                    }
                    (false, Reply::Failed(55)) => Ok(()),
                    (true, other) => Err(format!(
                        "monitor {monitor_id} is live and owned: MONITOR_STOP_CONF expected, got {other:?}"
                    )),
                    (false, other) => Err(format!(
                        "monitor {monitor_id} is not a live monitor of this session: 55 expected, got {other:?}"
                    )),
                }
            }
            Request::Change {
                monitor_id,
                call_mask,
                agent_mask,
            } => {
                let owned = own_pm(live, *monitor_id);
                match (owned, reply) {
                    (true, Reply::Done) => {
                        let m = live.get_mut(monitor_id).expect("owned");
                        m.call_mask = *call_mask;
                        m.agent_mask = *agent_mask;
                        Ok(())
                    }
                    (false, Reply::Failed(55)) => Ok(()),
                    (true, other) => Err(format!(
                        "monitor {monitor_id} is live and owned: CHANGE_MONITOR_MASK_CONF expected, got {other:?}"
                    )),
                    (false, other) => Err(format!(
                        "monitor {monitor_id} is not a live monitor of this session: 55 expected, got {other:?}"
                    )),
                }
            }
        }
    }
}

/// The Client Events watch for OPEN_REQ agent fields (id, extension, instrument).
pub fn client_events_watch(
    id: Option<&[u8]>,
    ext: Option<&[u8]>,
    instr: Option<&[u8]>,
) -> Option<Watch> {
    let nonempty = |v: Option<&[u8]>| v.filter(|v| !v.is_empty()).map(|v| v.to_vec());
    let agent = nonempty(instr)
        .map(|v| (AgentField::Instrument, v))
        .or_else(|| nonempty(ext).map(|v| (AgentField::Extension, v)))
        .or_else(|| nonempty(id).map(|v| (AgentField::Id, v)))?;
    Some(Watch::Agent {
        agent,
        instrument: nonempty(instr),
    })
}

/// The bytes a session must get for an expected copy: the event with its
/// MonitorID (and, for a Client Events AGENT_STATE_EVENT, its SessionID).
pub fn copy_bytes(frame: &[u8], monitor_id: u32, session_id: Option<u32>) -> Vec<u8> {
    let mut out = frame.to_vec();
    if crate::frames::type_has_monitor_id(crate::frames::frame_type(frame)) {
        out[8..12].copy_from_slice(&monitor_id.to_be_bytes());
    }
    if let Some(sid) = session_id {
        if crate::frames::frame_type(frame) == msg::AGENT_STATE_EVENT {
            out[16..20].copy_from_slice(&sid.to_be_bytes());
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Call brackets (docs/call-brackets.md)
// ---------------------------------------------------------------------------

/// A call's data: what the upstream told of the call in BEGIN_CALL,
/// CALL_DATA_UPDATE and CALL_DELIVERED (docs/call-brackets.md "The call's
/// data"). PeripheralID / PeripheralType start as the first event of the
/// call gave them. Named variables and array elements are kept in the order
/// first told (a replaced one keeps its place); comparisons sort them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallData {
    pub peripheral_id: u32,
    pub peripheral_type: u16,
    pub call_type: u16,
    pub called_party_disposition: u16,
    pub ani: Option<CtiString>,
    pub ani_ii: Option<CtiString>,
    pub user_to_user_info: Option<Unspec>,
    pub dnis: Option<CtiString>,
    pub dialed_number: Option<CtiString>,
    pub caller_entered_digits: Option<CtiString>,
    pub router_call_key_day: Option<u32>,
    pub router_call_key_call_id: Option<u32>,
    pub router_call_key_sequence_number: Option<u32>,
    pub call_variables: [Option<CtiString>; 10],
    pub call_wrapup_data: Option<CtiString>,
    pub call_reference_id: Option<Unspec>,
    pub named_variables: Vec<NamedVar>,
    pub named_arrays: Vec<NamedArray>,
}

fn put<T: Clone>(held: &mut Option<T>, told: &Option<T>) {
    if told.is_some() {
        held.clone_from(told);
    }
}

impl CallData {
    pub fn new(peripheral_id: u32, peripheral_type: u16) -> CallData {
        CallData {
            peripheral_id,
            peripheral_type,
            ..CallData::default()
        }
    }

    fn vars(&mut self, told: [&Option<CtiString>; 10]) {
        for (held, told) in self.call_variables.iter_mut().zip(told) {
            put(held, told);
        }
    }

    fn named(&mut self, vars: &[NamedVar], arrays: &[NamedArray]) {
        for v in vars {
            match self.named_variables.iter_mut().find(|x| x.name == v.name) {
                Some(x) => x.value = v.value.clone(),
                None => self.named_variables.push(v.clone()),
            }
        }
        for a in arrays {
            match self
                .named_arrays
                .iter_mut()
                .find(|x| x.name == a.name && x.index == a.index)
            {
                Some(x) => x.value = a.value.clone(),
                None => self.named_arrays.push(a.clone()),
            }
        }
    }
}

/// Fold one upstream event into its call's data (BEGIN_CALL,
/// CALL_DATA_UPDATE, CALL_DELIVERED; any other event leaves it alone).
pub fn fold_call_data(d: &mut CallData, m: &Message) {
    match m {
        Message::BeginCallEvent(e) => {
            d.peripheral_id = e.peripheral_id;
            d.peripheral_type = e.peripheral_type;
            d.call_type = e.call_type;
            d.called_party_disposition = e.called_party_disposition;
            put(&mut d.ani, &e.ani);
            put(&mut d.ani_ii, &e.ani_ii);
            put(&mut d.user_to_user_info, &e.user_to_user_info);
            put(&mut d.dnis, &e.dnis);
            put(&mut d.dialed_number, &e.dialed_number);
            put(&mut d.caller_entered_digits, &e.caller_entered_digits);
            put(&mut d.router_call_key_day, &e.router_call_key_day);
            put(&mut d.router_call_key_call_id, &e.router_call_key_call_id);
            put(
                &mut d.router_call_key_sequence_number,
                &e.router_call_key_sequence_number,
            );
            d.vars([
                &e.call_variable_1,
                &e.call_variable_2,
                &e.call_variable_3,
                &e.call_variable_4,
                &e.call_variable_5,
                &e.call_variable_6,
                &e.call_variable_7,
                &e.call_variable_8,
                &e.call_variable_9,
                &e.call_variable_10,
            ]);
            put(&mut d.call_wrapup_data, &e.call_wrapup_data);
            put(&mut d.call_reference_id, &e.call_reference_id);
            d.named(&e.named_variables, &e.named_arrays);
        }
        Message::CallDataUpdateEvent(e) => {
            d.peripheral_id = e.peripheral_id;
            d.peripheral_type = e.peripheral_type;
            d.call_type = e.call_type;
            d.called_party_disposition = e.called_party_disposition;
            put(&mut d.ani, &e.ani);
            put(&mut d.user_to_user_info, &e.user_to_user_info);
            put(&mut d.dnis, &e.dnis);
            put(&mut d.dialed_number, &e.dialed_number);
            put(&mut d.caller_entered_digits, &e.caller_entered_digits);
            put(&mut d.router_call_key_day, &e.router_call_key_day);
            put(&mut d.router_call_key_call_id, &e.router_call_key_call_id);
            put(
                &mut d.router_call_key_sequence_number,
                &e.router_call_key_sequence_number,
            );
            d.vars([
                &e.call_variable_1,
                &e.call_variable_2,
                &e.call_variable_3,
                &e.call_variable_4,
                &e.call_variable_5,
                &e.call_variable_6,
                &e.call_variable_7,
                &e.call_variable_8,
                &e.call_variable_9,
                &e.call_variable_10,
            ]);
            put(&mut d.call_wrapup_data, &e.call_wrapup_data);
            put(&mut d.call_reference_id, &e.call_reference_id);
            d.named(&e.named_variables, &e.named_arrays);
        }
        Message::CallDeliveredEvent(e) => {
            d.peripheral_id = e.peripheral_id;
            d.peripheral_type = e.peripheral_type;
            put(&mut d.ani, &e.ani);
            put(&mut d.ani_ii, &e.ani_ii);
            put(&mut d.user_to_user_info, &e.user_to_user_info);
            put(&mut d.dnis, &e.dnis);
            put(&mut d.dialed_number, &e.dialed_number);
            put(&mut d.caller_entered_digits, &e.caller_entered_digits);
            d.vars([
                &e.call_variable_1,
                &e.call_variable_2,
                &e.call_variable_3,
                &e.call_variable_4,
                &e.call_variable_5,
                &e.call_variable_6,
                &e.call_variable_7,
                &e.call_variable_8,
                &e.call_variable_9,
                &e.call_variable_10,
            ]);
            put(&mut d.call_wrapup_data, &e.call_wrapup_data);
            d.named(&e.named_variables, &e.named_arrays);
        }
        _ => {}
    }
}

/// (PeripheralID, PeripheralType) of a call event frame (v24): every event
/// with a primary call starts MonitorID, PeripheralID, PeripheralType.
pub fn peripheral_of(frame: &[u8]) -> (u32, u16) {
    (
        crate::frames::be32(frame, 12),
        u16::from_be_bytes([frame[16], frame[17]]),
    )
}

/// The call data table of the ingest side: every live call's data, folded
/// in stream order, moved by renames, forgotten at the call's end and by
/// merges (the Secondary call's data is not folded into the Primary's).
#[derive(Debug, Default, Clone)]
pub struct CallDataTable {
    pub calls: HashMap<CallId, CallData>,
}

impl CallDataTable {
    /// Data of `call` as held now (a fresh one from `frame`'s peripheral if none).
    pub fn get(&self, call: &CallId, frame: &[u8]) -> CallData {
        self.calls.get(call).cloned().unwrap_or_else(|| {
            let (pid, pt) = peripheral_of(frame);
            CallData::new(pid, pt)
        })
    }

    pub fn observe(&mut self, frame: &[u8], m: &Message, f: &Facts) {
        let Some(p) = &f.call else { return };
        let (pid, pt) = peripheral_of(frame);
        let d = self
            .calls
            .entry(p.clone())
            .or_insert_with(|| CallData::new(pid, pt));
        fold_call_data(d, m);
        let other = f.other.clone().filter(|o| o != p);
        match f.message_type {
            msg::CALL_DATA_UPDATE_EVENT => {
                if let Some(o) = other {
                    let d = self.calls.remove(p).expect("just inserted");
                    self.calls.insert(o, d);
                }
            }
            msg::CALL_CONFERENCED_EVENT | msg::CALL_TRANSFERRED_EVENT => {
                if let Some(o) = other {
                    self.calls.remove(&o);
                }
            }
            msg::CALL_CLEARED_EVENT | msg::END_CALL_EVENT => {
                self.calls.remove(p);
            }
            _ => {}
        }
    }
}

fn device_string(dev: &[u8]) -> Option<CtiString> {
    (!dev.is_empty()).then(|| CtiString::new(dev.to_vec()))
}

/// The BEGIN_CALL_EVENT the router builds for a watcher (MonitorID
/// `monitor_id`, NumCTIClients 0) from `call`'s identity and data.
pub fn built_begin(monitor_id: u32, call: &CallId, d: &CallData) -> BeginCallEvent {
    let [v1, v2, v3, v4, v5, v6, v7, v8, v9, v10] = d.call_variables.clone();
    BeginCallEvent {
        monitor_id,
        peripheral_id: d.peripheral_id,
        peripheral_type: d.peripheral_type,
        num_cti_clients: 0,
        num_named_variables: d.named_variables.len() as u16,
        num_named_arrays: d.named_arrays.len() as u16,
        call_type: d.call_type,
        connection_device_id_type: call.1,
        connection_call_id: call.0,
        called_party_disposition: d.called_party_disposition,
        connection_device_id: device_string(&call.2),
        ani: d.ani.clone(),
        user_to_user_info: d.user_to_user_info.clone(),
        dnis: d.dnis.clone(),
        dialed_number: d.dialed_number.clone(),
        caller_entered_digits: d.caller_entered_digits.clone(),
        router_call_key_day: d.router_call_key_day,
        router_call_key_call_id: d.router_call_key_call_id,
        router_call_key_sequence_number: d.router_call_key_sequence_number,
        call_variable_1: v1,
        call_variable_2: v2,
        call_variable_3: v3,
        call_variable_4: v4,
        call_variable_5: v5,
        call_variable_6: v6,
        call_variable_7: v7,
        call_variable_8: v8,
        call_variable_9: v9,
        call_variable_10: v10,
        call_wrapup_data: d.call_wrapup_data.clone(),
        named_variables: d.named_variables.clone(),
        named_arrays: d.named_arrays.clone(),
        cti_clients: Vec::new(),
        call_reference_id: d.call_reference_id.clone(),
        ani_ii: d.ani_ii.clone(),
    }
}

/// The END_CALL_EVENT the router builds for a watcher.
pub fn built_end(monitor_id: u32, call: &CallId, d: &CallData) -> EndCallEvent {
    EndCallEvent {
        monitor_id,
        peripheral_id: d.peripheral_id,
        peripheral_type: d.peripheral_type,
        connection_device_id_type: call.1,
        connection_call_id: call.0,
        connection_device_id: device_string(&call.2),
    }
}

/// A message as the session at `version` decodes it, with named variables
/// and arrays sorted (their order is not part of the contract).
pub fn normalized(m: Message, version: Version) -> Message {
    let frame = m
        .to_frame(version)
        .expect("encodable at the session's version");
    let (mut m, _) =
        ctirouter::proto::decode_frame(&frame, version, ctirouter::proto::DecodeOptions::STRICT)
            .expect("decodes at its own version");
    if let Message::BeginCallEvent(e) = &mut m {
        e.named_variables
            .sort_by(|a, b| (&a.name, &a.value).cmp(&(&b.name, &b.value)));
        e.named_arrays
            .sort_by(|a, b| (&a.name, a.index, &a.value).cmp(&(&b.name, b.index, &b.value)));
    }
    m
}

/// Whether event `f` ends a watcher's association with its primary call
/// (rule 3), given the watcher's devices.
pub fn ends_association(f: &Facts, devices: &[Vec<u8>]) -> bool {
    match f.message_type {
        msg::CALL_CLEARED_EVENT | msg::END_CALL_EVENT => true,
        msg::CALL_CONNECTION_CLEARED_EVENT => f
            .releasing
            .as_ref()
            .or(f.connection.as_ref())
            .is_some_and(|d| devices.contains(d)),
        msg::CALL_TRANSFERRED_EVENT => f.transferring.as_ref().is_some_and(|d| devices.contains(d)),
        _ => false,
    }
}

/// Most associations a watcher holds (rule 8).
pub const MAX_ASSOCIATIONS: usize = 256;

/// One bracket item a watcher must receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bracket {
    /// The copy of the stream event.
    Event,
    /// A built BEGIN_CALL for this call with this data.
    Begin(CallId, CallData),
    /// A built END_CALL for this call.
    End(CallId, CallData),
}

/// One watcher's associations (docs/call-brackets.md "The rules").
#[derive(Debug, Clone, Default)]
pub struct Associations {
    /// Associated calls, oldest first.
    pub calls: Vec<CallId>,
    /// Calls whose association ended while the call went on: nothing more
    /// of them is delivered until the call ends (rule 4).
    pub left: Vec<CallId>,
}

impl Associations {
    fn begin(&mut self, c: &CallId) {
        if self.calls.len() == MAX_ASSOCIATIONS {
            self.calls.remove(0);
        }
        self.calls.push(c.clone());
    }

    fn end(&mut self, c: &CallId) -> bool {
        let before = self.calls.len();
        self.calls.retain(|x| x != c);
        before != self.calls.len()
    }

    /// What the watcher receives for stream event `ev` (`reaches`: whether
    /// the event reaches it; `devices`: the watcher's devices; `pass`:
    /// whether a message type passes the watcher's CallMsgMask — event
    /// masks for agent events are the caller's). Updates the associations.
    pub fn step(
        &mut self,
        ev: &StreamEvent,
        reaches: bool,
        devices: &[Vec<u8>],
        pass: impl Fn(u32) -> bool,
    ) -> Vec<Bracket> {
        let f = &ev.facts;
        let mut out = Vec::new();
        let Some(c) = &f.call else {
            if reaches && pass(f.message_type) {
                out.push(Bracket::Event);
            }
            return out;
        };
        let t = f.message_type;
        if reaches {
            let ending = ends_association(f, devices);
            let associated = self.calls.contains(c);
            let left = self.left.contains(c);
            if !associated && !ending && !left {
                if t != msg::BEGIN_CALL_EVENT && pass(msg::BEGIN_CALL_EVENT) {
                    out.push(Bracket::Begin(c.clone(), ev.call_data.clone()));
                }
                if pass(t) {
                    out.push(Bracket::Event);
                }
                self.begin(c);
            } else if associated && t != msg::BEGIN_CALL_EVENT && pass(t) {
                out.push(Bracket::Event);
            }
        }
        // Merges: S's associations end; renames move them.
        let other = f.other.clone().filter(|o| o != c);
        if let Some(o) = &other {
            let merge = matches!(t, msg::CALL_CONFERENCED_EVENT | msg::CALL_TRANSFERRED_EVENT);
            if merge {
                self.left.retain(|x| x != o);
            }
            if merge && self.end(o) && pass(msg::END_CALL_EVENT) {
                out.push(Bracket::End(o.clone(), ev.other_data.clone()));
            }
            if t == msg::CALL_DATA_UPDATE_EVENT {
                for x in self.calls.iter_mut().chain(self.left.iter_mut()) {
                    if x == c {
                        *x = o.clone();
                    }
                }
            }
        }
        let call_ends = matches!(t, msg::CALL_CLEARED_EVENT | msg::END_CALL_EVENT);
        if reaches && ends_association(f, devices) && self.end(c) {
            if !call_ends {
                self.left.push(c.clone());
            }
            if t != msg::END_CALL_EVENT && pass(msg::END_CALL_EVENT) {
                out.push(Bracket::End(c.clone(), ev.call_data.clone()));
            }
        }
        if reaches && call_ends {
            self.left.retain(|x| x != c);
        }
        out
    }
}
