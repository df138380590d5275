//! The events the driver plays: for each agent of the simulated PG, one
//! realistic CALL_DELIVERED_EVENT (~260 bytes at v24: devices, trunk, ANI,
//! DNIS, call variables) and one AGENT_STATE_EVENT, encoded once with the
//! codec into templates; sending one is a copy plus an in-place stamp of its
//! marker. Who an event is for is a pure function of its agent. No I/O here.

use ctirouter::proto::constants::{cause, connection_type, device_type, lcs, peripheral_type};
use ctirouter::proto::msg::{AgentStateEvent, CallDeliveredEvent};
use ctirouter::proto::{CtiString, Message, Version};

use crate::marker;

/// PeripheralID of the simulated PG (what OPEN_CONF lists, what events carry).
pub const PERIPHERAL_ID: u32 = 5000;

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

/// What kind of event a template is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    CallDelivered,
    AgentState,
}

/// One pre-encoded event and where its marker text sits.
struct Template {
    frame: Vec<u8>,
    marker_at: usize,
}

/// Every agent's events, encoded at v24 (the version the router opens upstream).
pub struct Templates {
    call_delivered: Vec<Template>,
    agent_state: Vec<Template>,
}

impl Templates {
    pub fn new(agents: u32) -> Templates {
        Templates {
            call_delivered: (0..agents).map(|k| template(call_delivered(k))).collect(),
            agent_state: (0..agents).map(|k| template(agent_state(k))).collect(),
        }
    }

    /// Append agent `k`'s event of `kind`, stamped with `seq` and `ts`, to `out`.
    #[inline]
    pub fn append(&self, kind: EventKind, k: u32, seq: u64, ts: u64, out: &mut Vec<u8>) {
        let t = match kind {
            EventKind::CallDelivered => &self.call_delivered[k as usize],
            EventKind::AgentState => &self.agent_state[k as usize],
        };
        let start = out.len();
        out.extend_from_slice(&t.frame);
        marker::stamp(&mut out[start + t.marker_at..], seq, ts);
    }

    /// Wire length of agent `k`'s event of `kind`.
    pub fn frame_len(&self, kind: EventKind, k: u32) -> usize {
        match kind {
            EventKind::CallDelivered => self.call_delivered[k as usize].frame.len(),
            EventKind::AgentState => self.agent_state[k as usize].frame.len(),
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
        skill_group_number: 101,
        skill_group_id: 5101,
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

/// Agent `k` goes Available; the marker rides in CTIClientSignature.
pub fn agent_state(k: u32) -> Message {
    AgentStateEvent {
        peripheral_id: PERIPHERAL_ID,
        peripheral_type: peripheral_type::ENTERPRISE_AGENT,
        skill_group_state: 3,
        skill_group_number: 101,
        skill_group_id: 5101,
        agent_state: 3,
        mrd_id: 1,
        agent_mode: 1,
        max_task_limit: 1,
        icm_agent_id: 5000 + k as i32,
        agent_availability_status: 1,
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
        let t = Templates::new(3);
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
        let t = Templates::new(1);
        let mut out = Vec::new();
        t.append(EventKind::AgentState, 0, 9, 11, &mut out);
        assert!(decode_frame(&out, Version::MAX, DecodeOptions::STRICT).is_ok());
        assert_eq!(marker::Finder::default().find(&out), Some((9, 11)));
    }
}
