//! The events the driver plays: for each agent of the simulated PG, one
//! realistic CALL_DELIVERED_EVENT (~260 bytes at v24: devices, trunk, ANI,
//! DNIS, call variables) and one AGENT_STATE_EVENT, encoded once with the
//! codec into templates; sending one is a copy plus an in-place stamp of its
//! marker. Who an event is for is a pure function of its agent. A scenario
//! may give its agents several states (`[load] agent_states`: one
//! AGENT_STATE_EVENT template per agent and state) and calls to only some of
//! them (`[load] agents_in_calls`, [`takes_calls`]). No I/O here.

use ctirouter::proto::constants::{
    agent_state as state, cause, connection_type, device_type, lcs, peripheral_type,
};
use ctirouter::proto::msg::{AgentStateEvent, BeginCallEvent, CallDeliveredEvent};
use ctirouter::proto::{CtiString, Message, Version};

use crate::marker;

/// PeripheralID of the simulated PG (what OPEN_CONF lists, what events carry).
pub const PERIPHERAL_ID: u32 = 5000;
/// The one skill group every agent is in.
pub const SKILL_GROUP_NUMBER: u32 = 101;
pub const SKILL_GROUP_ID: u32 = 5101;

/// AgentID of agent `k` (STRING 12, docs/protocol.md §4.1).
pub fn agent_id(k: u32) -> String {
    format!("1{k:05}")
}

/// Instrument (and extension) of agent `k`: the device its calls alert.
pub fn instrument(k: u32) -> String {
    format!("2{k:05}")
}

/// ConnectionCallID of agent `k`'s call: every CALL_DELIVERED_EVENT for `k`
/// names this call (static device id: `k`'s instrument), so the router's
/// call-party tracker knows the instrument takes part in it, and a desktop's
/// requests on it are in scope (docs/requests.md §4).
pub fn call_id(k: u32) -> u32 {
    10_000_000 + k
}

/// ICMAgentID of agent `k` (what its AGENT_STATE_EVENTs carry).
pub fn icm_agent_id(k: u32) -> i32 {
    5000 + k as i32
}

/// The agent an AgentID (`1NNNNN`) or an instrument / extension (`2NNNNN`)
/// names, if it is one of `agents`.
pub fn agent_named(text: &[u8], first_digit: u8, agents: u32) -> Option<u32> {
    let text = text.strip_suffix(b"\0").unwrap_or(text);
    let (&first, rest) = text.split_first()?;
    if first != first_digit || rest.len() != 5 || !rest.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let k = rest.iter().fold(0u32, |v, d| v * 10 + (d - b'0') as u32);
    (k < agents).then_some(k)
}

/// Whether agent `k` takes calls when `share` of the agents do: spread
/// evenly (share 0.5: every other agent; 1.0: every agent), the same on
/// every run.
pub fn takes_calls(k: u32, share: f64) -> bool {
    ((k as f64 + 1.0) * share).floor() > (k as f64 * share).floor()
}

/// What kind of event a template is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The BEGIN_CALL_EVENT that opens agent `k`'s call (the priming round
    /// sends it before the call's first CALL_DELIVERED_EVENT).
    BeginCall,
    CallDelivered,
    /// An AGENT_STATE_EVENT with the scenario's `agent_states[i]`.
    AgentState(u8),
}

/// One pre-encoded event and where its marker text sits.
struct Template {
    frame: Vec<u8>,
    marker_at: usize,
}

/// Every agent's events, encoded at v24 (the version the router opens upstream).
pub struct Templates {
    begin_call: Vec<Template>,
    call_delivered: Vec<Template>,
    /// Per state of `states`, every agent's AGENT_STATE_EVENT.
    agent_state: Vec<Vec<Template>>,
    states: Vec<u16>,
}

impl Templates {
    /// Templates for `agents` agents whose AGENT_STATE_EVENTs say one of
    /// `states` (AgentState values; at least one).
    pub fn new(agents: u32, states: &[u16]) -> Templates {
        assert!(!states.is_empty() && states.len() <= u8::MAX as usize);
        Templates {
            begin_call: (0..agents).map(|k| template(begin_call(k))).collect(),
            call_delivered: (0..agents).map(|k| template(call_delivered(k))).collect(),
            agent_state: states
                .iter()
                .map(|&s| (0..agents).map(|k| template(agent_state(k, s))).collect())
                .collect(),
            states: states.to_vec(),
        }
    }

    /// The AgentState an `EventKind::AgentState(i)` says.
    pub fn state(&self, i: u8) -> u16 {
        self.states[i as usize]
    }

    /// How many states agent events draw from.
    pub fn nr_states(&self) -> usize {
        self.states.len()
    }

    /// Append agent `k`'s event of `kind`, stamped with `seq` and `ts`, to `out`.
    #[inline]
    pub fn append(&self, kind: EventKind, k: u32, seq: u64, ts: u64, out: &mut Vec<u8>) {
        let t = self.template(kind, k);
        let start = out.len();
        out.extend_from_slice(&t.frame);
        marker::stamp(&mut out[start + t.marker_at..], seq, ts);
    }

    /// Wire length of agent `k`'s event of `kind`.
    pub fn frame_len(&self, kind: EventKind, k: u32) -> usize {
        self.template(kind, k).frame.len()
    }

    #[inline]
    fn template(&self, kind: EventKind, k: u32) -> &Template {
        match kind {
            EventKind::BeginCall => &self.begin_call[k as usize],
            EventKind::CallDelivered => &self.call_delivered[k as usize],
            EventKind::AgentState(i) => &self.agent_state[i as usize][k as usize],
        }
    }
}

fn template(message: Message) -> Template {
    let frame = message
        .to_frame(Version::MAX)
        .expect("generated events fit a frame");
    let marker_at = marker::offset_in_frame(&frame).expect("template carries a marker");
    Template { frame, marker_at }
}

fn text(s: &str) -> Option<CtiString> {
    Some(CtiString::new(s))
}

/// An inbound call alerting agent `k`'s phone, as All Events sees it from UCCE.
pub fn call_delivered(k: u32) -> Message {
    let phone = instrument(k);
    CallDeliveredEvent {
        peripheral_id: PERIPHERAL_ID,
        peripheral_type: peripheral_type::ENTERPRISE_AGENT,
        connection_device_id_type: connection_type::STATIC,
        connection_call_id: call_id(k),
        line_handle: 0,
        line_type: 0,
        service_number: 7001,
        service_id: 5001,
        skill_group_number: SKILL_GROUP_NUMBER,
        skill_group_id: SKILL_GROUP_ID,
        skill_group_priority: 0,
        alerting_device_type: device_type::DEVICE_IDENTIFIER,
        calling_device_type: device_type::EXTERNAL,
        called_device_type: device_type::ROUTE_POINT,
        last_redirect_device_type: device_type::NONE,
        local_connection_state: lcs::ALERTING,
        event_cause: cause::NONE,
        connection_device_id: text(&phone),
        alerting_device_id: text(&phone),
        calling_device_id: text("4085551234"),
        called_device_id: text("8005550100"),
        trunk_number: Some(17),
        trunk_group_number: Some(300),
        ani: text("4085551234"),
        dnis: text("8005550100"),
        dialed_number: text("8005550100"),
        call_variable_1: text("acct=00012345"),
        call_variable_2: text("lang=en-US"),
        call_variable_3: text("queue=billing"),
        call_variable_10: text(&marker::placeholder()),
        ..Default::default()
    }
    .into()
}

/// The BEGIN_CALL_EVENT of agent `k`'s call: the call's data as its
/// CALL_DELIVERED_EVENTs carry it (a CTI Server opens every call it reports
/// with one; a router that never saw it cannot know the call whole).
pub fn begin_call(k: u32) -> Message {
    let phone = instrument(k);
    BeginCallEvent {
        peripheral_id: PERIPHERAL_ID,
        peripheral_type: peripheral_type::ENTERPRISE_AGENT,
        call_type: 1,
        connection_device_id_type: connection_type::STATIC,
        connection_call_id: call_id(k),
        called_party_disposition: 0,
        connection_device_id: text(&phone),
        ani: text("4085551234"),
        dnis: text("8005550100"),
        dialed_number: text("8005550100"),
        call_variable_1: text("acct=00012345"),
        call_variable_2: text("lang=en-US"),
        call_variable_3: text("queue=billing"),
        call_variable_10: text(&marker::placeholder()),
        ..Default::default()
    }
    .into()
}

/// Agent `k` is in `agent_state` (Available: 3, the only state before
/// `[load] agent_states`), in its one skill group too; the marker rides in
/// CTIClientSignature.
pub fn agent_state(k: u32, agent_state: u16) -> Message {
    AgentStateEvent {
        peripheral_id: PERIPHERAL_ID,
        peripheral_type: peripheral_type::ENTERPRISE_AGENT,
        skill_group_state: agent_state,
        skill_group_number: SKILL_GROUP_NUMBER,
        skill_group_id: SKILL_GROUP_ID,
        agent_state,
        mrd_id: 1,
        agent_mode: 1,
        max_task_limit: 1,
        icm_agent_id: icm_agent_id(k),
        agent_availability_status: (agent_state == state::AVAILABLE) as u32,
        client_signature: text(&marker::placeholder()),
        agent_id: text(&agent_id(k)),
        agent_extension: text(&instrument(k)),
        agent_instrument: text(&instrument(k)),
        ..Default::default()
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctirouter::proto::{decode_frame, DecodeOptions};

    #[test]
    fn call_delivered_is_realistic_size_and_decodes() {
        let t = Templates::new(3, &[3]);
        let mut out = Vec::new();
        t.append(EventKind::CallDelivered, 2, 42, 7, &mut out);
        assert!((220..=300).contains(&out.len()), "{} bytes", out.len());
        let (m, used) = decode_frame(&out, Version::MAX, DecodeOptions::STRICT).unwrap();
        assert_eq!(used, out.len());
        assert!(matches!(m, Message::CallDeliveredEvent(_)));
        assert_eq!(marker::Finder::default().find(&out), Some((42, 7)));
    }

    #[test]
    fn agent_state_carries_its_marker() {
        let t = Templates::new(1, &[3]);
        let mut out = Vec::new();
        t.append(EventKind::AgentState(0), 0, 9, 11, &mut out);
        assert!(decode_frame(&out, Version::MAX, DecodeOptions::STRICT).is_ok());
        assert_eq!(marker::Finder::default().find(&out), Some((9, 11)));
    }

    #[test]
    fn agent_state_templates_say_their_state() {
        let t = Templates::new(2, &[state::AVAILABLE, state::TALKING]);
        assert_eq!((t.nr_states(), t.state(1)), (2, state::TALKING));
        let mut out = Vec::new();
        t.append(EventKind::AgentState(1), 1, 9, 11, &mut out);
        let (m, _) = decode_frame(&out, Version::MAX, DecodeOptions::STRICT).unwrap();
        let Message::AgentStateEvent(e) = m else {
            panic!("{m:?}")
        };
        assert_eq!((e.agent_state, e.skill_group_state), (4, 4));
        assert_eq!((e.agent_availability_status, e.icm_agent_id), (0, 5001));
        assert_eq!(marker::Finder::default().find(&out), Some((9, 11)));
    }

    #[test]
    fn agents_are_named_by_id_and_instrument() {
        assert_eq!(agent_named(agent_id(42).as_bytes(), b'1', 100), Some(42));
        assert_eq!(agent_named(b"200042\0", b'2', 100), Some(42));
        assert_eq!(agent_named(b"200042", b'1', 100), None);
        assert_eq!(agent_named(b"200142", b'2', 100), None, "not one of 100");
        assert_eq!(agent_named(b"2000x2", b'2', 100), None);
        assert_eq!(agent_named(b"", b'2', 100), None);
    }

    #[test]
    fn calls_go_to_an_even_share_of_the_agents() {
        assert!((0..100).all(|k| takes_calls(k, 1.0)));
        let half: Vec<u32> = (0..10).filter(|&k| takes_calls(k, 0.5)).collect();
        assert_eq!(half, [1, 3, 5, 7, 9]);
        assert_eq!((0..2000).filter(|&k| takes_calls(k, 0.25)).count(), 500);
    }
}
