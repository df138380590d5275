//! The requests a desktop sends (docs/requests.md §1): SET_AGENT_STATE,
//! ANSWER_CALL, HOLD_CALL, RETRIEVE_CALL (Client Control) and SET_CALL_DATA
//! (Call Data Update), each for the session's own agent, its instrument and
//! the call the driver's events give that instrument (Client Events scope,
//! docs/requests.md §4); the two queries a desktop sends after it re-opens
//! (QUERY_AGENT_STATE, SNAPSHOT_DEVICE); the requests one session has in flight and which
//! of them a reply answers (by InvokeID); and the per-group accounting of
//! round trips and answers. No I/O here.

use std::collections::BTreeMap;

use ctirouter::proto::constants::{agent_state, connection_type, msg};
use ctirouter::proto::msg::{
    AnswerCallReq, HoldCallReq, QueryAgentStateReq, RetrieveCallReq, SetAgentStateReq,
    SetCallDataReq, SnapshotDeviceReq,
};
use ctirouter::proto::{CtiString, Message};
use hdrhistogram::Histogram;

use crate::events::{agent_id, call_id, instrument, PERIPHERAL_ID};

/// One of the five request types of the mix, or one of the two queries a
/// desktop sends after it re-opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SetAgentState,
    AnswerCall,
    HoldCall,
    RetrieveCall,
    SetCallData,
    QueryAgentState,
    SnapshotDevice,
}

impl Kind {
    /// The mix of paced requests and bursts.
    pub const MIX: [Kind; 5] = [
        Kind::SetAgentState,
        Kind::AnswerCall,
        Kind::HoldCall,
        Kind::RetrieveCall,
        Kind::SetCallData,
    ];

    /// What a desktop asks right after its OPEN_CONF when it re-opens.
    pub const QUERIES: [Kind; 2] = [Kind::QueryAgentState, Kind::SnapshotDevice];

    /// The mix, equal parts: `r` is any random number.
    pub fn of(r: u64) -> Kind {
        Kind::MIX[(r % Kind::MIX.len() as u64) as usize]
    }

    /// The request's message type name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::SetAgentState => "SET_AGENT_STATE_REQ",
            Kind::AnswerCall => "ANSWER_CALL_REQ",
            Kind::HoldCall => "HOLD_CALL_REQ",
            Kind::RetrieveCall => "RETRIEVE_CALL_REQ",
            Kind::SetCallData => "SET_CALL_DATA_REQ",
            Kind::QueryAgentState => "QUERY_AGENT_STATE_REQ",
            Kind::SnapshotDevice => "SNAPSHOT_DEVICE_REQ",
        }
    }

    /// The confirmation that answers it.
    pub fn conf_type(self) -> u32 {
        match self {
            Kind::SetAgentState => msg::SET_AGENT_STATE_CONF,
            Kind::AnswerCall => msg::ANSWER_CALL_CONF,
            Kind::HoldCall => msg::HOLD_CALL_CONF,
            Kind::RetrieveCall => msg::RETRIEVE_CALL_CONF,
            Kind::SetCallData => msg::SET_CALL_DATA_CONF,
            Kind::QueryAgentState => msg::QUERY_AGENT_STATE_CONF,
            Kind::SnapshotDevice => msg::SNAPSHOT_DEVICE_CONF,
        }
    }

    /// The request for agent `k`: its AgentID and instrument, and the call
    /// the driver's CALL_DELIVERED_EVENTs for `k` alert on that instrument
    /// (the queries: `k`'s state by AgentID and instrument, MRDID 1; the
    /// calls at `k`'s instrument).
    pub fn message(self, invoke_id: u32, k: u32) -> Message {
        let text = |s: &str| Some(CtiString::new(s));
        let phone = instrument(k);
        match self {
            Kind::SetAgentState => SetAgentStateReq {
                invoke_id,
                peripheral_id: PERIPHERAL_ID,
                agent_state: agent_state::AVAILABLE,
                agent_instrument: text(&phone),
                agent_id: text(&agent_id(k)),
                ..Default::default()
            }
            .into(),
            Kind::AnswerCall => AnswerCallReq {
                invoke_id,
                peripheral_id: PERIPHERAL_ID,
                connection_call_id: call_id(k),
                connection_device_id_type: connection_type::STATIC,
                connection_device_id: text(&phone),
                agent_instrument: text(&phone),
                ..Default::default()
            }
            .into(),
            Kind::HoldCall => HoldCallReq {
                invoke_id,
                peripheral_id: PERIPHERAL_ID,
                connection_call_id: call_id(k),
                connection_device_id_type: connection_type::STATIC,
                connection_device_id: text(&phone),
                agent_instrument: text(&phone),
                ..Default::default()
            }
            .into(),
            Kind::RetrieveCall => RetrieveCallReq {
                invoke_id,
                peripheral_id: PERIPHERAL_ID,
                held_connection_call_id: call_id(k),
                held_connection_device_id_type: connection_type::STATIC,
                held_connection_device_id: text(&phone),
                agent_instrument: text(&phone),
                ..Default::default()
            }
            .into(),
            Kind::SetCallData => SetCallDataReq {
                invoke_id,
                peripheral_id: PERIPHERAL_ID,
                connection_call_id: call_id(k),
                connection_device_id_type: connection_type::STATIC,
                connection_device_id: text(&phone),
                call_variable_4: text("disposition=resolved"),
                call_variable_5: text("wrapup=perf"),
                ..Default::default()
            }
            .into(),
            Kind::QueryAgentState => QueryAgentStateReq {
                invoke_id,
                peripheral_id: PERIPHERAL_ID,
                mrd_id: 1,
                agent_id: text(&agent_id(k)),
                agent_instrument: text(&phone),
                ..Default::default()
            }
            .into(),
            Kind::SnapshotDevice => SnapshotDeviceReq {
                invoke_id,
                peripheral_id: PERIPHERAL_ID,
                snapshot_device_type: 0,
                agent_instrument: text(&phone),
            }
            .into(),
        }
    }
}

/// Which accounting a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// Sent during warm-up (or after the window): not counted.
    Warmup,
    /// Sent in the measured window at the phase's rate.
    Measured,
    /// Part of the phase's burst.
    Burst,
    /// A query sent right after a re-open (reconnect storm).
    Storm,
}

/// A request in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub invoke_id: u32,
    pub kind: Kind,
    /// CLOCK_MONOTONIC just before the write.
    pub sent_ns: u64,
    pub tag: Tag,
}

/// How a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its own confirmation type.
    Conf,
    /// FAILURE_CONF(status).
    Failure(u32),
    /// CONTROL_FAILURE_CONF(FailureCode).
    ControlFailure(u16),
    /// Another reply type with its InvokeID (a routing error).
    WrongType(u32),
}

/// What a reply frame meant to the session that got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    Answered(Sent, Outcome),
    /// A reply with an InvokeID this session has not in flight.
    Unknown {
        message_type: u32,
        invoke_id: u32,
    },
}

/// Whether a message type answers a Client Control or Call Data Update
/// request: every reply except the session's own (OPEN, HEARTBEAT, CLOSE,
/// monitor confirmations). FAILURE_CONF is told apart by InvokeID.
pub fn is_request_reply(message_type: u32) -> bool {
    msg::is_reply(message_type)
        && !matches!(
            message_type,
            msg::OPEN_CONF
                | msg::HEARTBEAT_CONF
                | msg::CLOSE_CONF
                | msg::FAILURE_CONF
                | msg::MONITOR_START_CONF
                | msg::MONITOR_STOP_CONF
                | msg::CHANGE_MONITOR_MASK_CONF
                | msg::SESSION_MONITOR_START_CONF
                | msg::SESSION_MONITOR_STOP_CONF
        )
}

fn be32(body: &[u8], at: usize) -> Option<u32> {
    body.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// One session's requests in flight (a handful: desktops send one at a time).
#[derive(Debug, Default)]
pub struct InFlight {
    sent: Vec<Sent>,
}

impl InFlight {
    pub fn push(&mut self, sent: Sent) {
        self.sent.push(sent);
    }

    pub fn len(&self) -> usize {
        self.sent.len()
    }

    /// Forget every request in flight (its connection is gone); how many.
    pub fn clear(&mut self) -> usize {
        let n = self.sent.len();
        self.sent.clear();
        n
    }

    /// Whether a request with this InvokeID is in flight.
    pub fn expects(&self, invoke_id: u32) -> bool {
        self.sent.iter().any(|s| s.invoke_id == invoke_id)
    }

    /// The InvokeID a reply body starts with, if it has one.
    pub fn invoke_id(body: &[u8]) -> Option<u32> {
        be32(body, 0)
    }

    /// A reply (`is_request_reply`, or FAILURE_CONF): the request it
    /// answers, by InvokeID, taken out of flight, and how it was answered.
    pub fn on_reply(&mut self, message_type: u32, body: &[u8]) -> Reply {
        let invoke_id = be32(body, 0).unwrap_or(u32::MAX);
        let Some(at) = self.sent.iter().position(|s| s.invoke_id == invoke_id) else {
            return Reply::Unknown {
                message_type,
                invoke_id,
            };
        };
        let sent = self.sent.swap_remove(at);
        let outcome = match message_type {
            msg::FAILURE_CONF => Outcome::Failure(be32(body, 4).unwrap_or(u32::MAX)),
            msg::CONTROL_FAILURE_CONF => Outcome::ControlFailure(
                body.get(4..6)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]))
                    .unwrap_or(u16::MAX),
            ),
            t if t == sent.kind.conf_type() => Outcome::Conf,
            t => Outcome::WrongType(t),
        };
        Reply::Answered(sent, outcome)
    }
}

/// Requests of one group (or the burst) in the measured window.
#[derive(Debug, Clone)]
pub struct RequestStats {
    pub sent: u64,
    /// Answered by their own confirmation.
    pub confs: u64,
    /// FAILURE_CONF by status.
    pub failures: BTreeMap<u32, u64>,
    /// CONTROL_FAILURE_CONF by FailureCode.
    pub control_failures: BTreeMap<u16, u64>,
    /// Another reply type with the request's InvokeID.
    pub wrong_type: u64,
    /// Replies with an InvokeID the session had not in flight.
    pub wrong_invoke: u64,
    /// Send → confirmation read, ns (confirmations only).
    pub latency: Histogram<u64>,
    /// Last answer read, CLOCK_MONOTONIC ns (0: none yet).
    pub last_answer_ns: u64,
}

impl Default for RequestStats {
    fn default() -> Self {
        RequestStats {
            sent: 0,
            confs: 0,
            failures: BTreeMap::new(),
            control_failures: BTreeMap::new(),
            wrong_type: 0,
            wrong_invoke: 0,
            latency: crate::tally::histogram(),
            last_answer_ns: 0,
        }
    }
}

impl RequestStats {
    /// A request of this accounting answered at `now`.
    pub fn record(&mut self, sent: &Sent, outcome: Outcome, now: u64) {
        self.last_answer_ns = now;
        match outcome {
            Outcome::Conf => {
                self.confs += 1;
                let _ = self.latency.record(now.saturating_sub(sent.sent_ns).max(1));
            }
            Outcome::Failure(status) => *self.failures.entry(status).or_default() += 1,
            Outcome::ControlFailure(code) => *self.control_failures.entry(code).or_default() += 1,
            Outcome::WrongType(_) => self.wrong_type += 1,
        }
    }

    /// Answered one way or another.
    pub fn answered(&self) -> u64 {
        self.confs
            + self.failures.values().sum::<u64>()
            + self.control_failures.values().sum::<u64>()
            + self.wrong_type
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctirouter::proto::msg::{
        ControlFailureConf, FailureConf, HeartbeatConf, SetAgentStateConf,
    };
    use ctirouter::proto::{decode_frame, frame, DecodeOptions, Version};

    fn body(m: Message) -> (u32, Vec<u8>) {
        let f = m.to_frame(Version::MAX).unwrap();
        let (parsed, _) = frame::parse(&f).unwrap();
        (parsed.message_type, parsed.body.to_vec())
    }

    fn sent(invoke_id: u32, kind: Kind) -> Sent {
        Sent {
            invoke_id,
            kind,
            sent_ns: 1_000,
            tag: Tag::Measured,
        }
    }

    #[test]
    fn every_kind_names_its_agent_and_call_and_decodes() {
        for kind in Kind::MIX.into_iter().chain(Kind::QUERIES) {
            let f = kind.message(7, 12).to_frame(Version::MAX).unwrap();
            let (m, used) = decode_frame(&f, Version::MAX, DecodeOptions::STRICT).unwrap();
            assert_eq!(used, f.len());
            // Every request's confirmation is the next message type.
            assert_eq!(frame::message_type(&f), Some(kind.conf_type() - 1));
            let text = format!("{m:?}");
            assert!(text.contains("200012"), "{kind:?}: {text}");
            if Kind::MIX.contains(&kind) && kind != Kind::SetAgentState {
                assert!(text.contains(&call_id(12).to_string()), "{kind:?}: {text}");
            }
            if kind == Kind::QueryAgentState {
                assert!(text.contains("100012"), "{text}");
            }
            assert_eq!(
                ctirouter::proto::Message::type_name(kind.conf_type() - 1),
                Some(kind.name())
            );
        }
        let mut seen = [false; 5];
        (0..5).for_each(|r| seen[Kind::of(r) as usize] = true);
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn replies_are_matched_by_invoke_id_and_type() {
        let mut f = InFlight::default();
        f.push(sent(5, Kind::SetAgentState));
        f.push(sent(6, Kind::HoldCall));
        f.push(sent(7, Kind::AnswerCall));
        f.push(sent(8, Kind::SetCallData));
        let (t, b) = body(SetAgentStateConf { invoke_id: 5 }.into());
        assert!(is_request_reply(t));
        assert_eq!(
            f.on_reply(t, &b),
            Reply::Answered(sent(5, Kind::SetAgentState), Outcome::Conf)
        );
        // The same InvokeID again: nothing in flight has it any more.
        assert!(matches!(
            f.on_reply(t, &b),
            Reply::Unknown { invoke_id: 5, .. }
        ));
        // A SET_AGENT_STATE_CONF for the HOLD_CALL_REQ: the wrong type.
        let (t, b) = body(SetAgentStateConf { invoke_id: 6 }.into());
        assert_eq!(
            f.on_reply(t, &b),
            Reply::Answered(sent(6, Kind::HoldCall), Outcome::WrongType(t))
        );
        let (t, b) = body(
            ControlFailureConf {
                invoke_id: 7,
                failure_code: 32,
                ..Default::default()
            }
            .into(),
        );
        assert!(is_request_reply(t));
        assert_eq!(
            f.on_reply(t, &b),
            Reply::Answered(sent(7, Kind::AnswerCall), Outcome::ControlFailure(32))
        );
        let (t, b) = body(
            FailureConf {
                invoke_id: 8,
                status: 35,
                text: None,
            }
            .into(),
        );
        assert!(
            !is_request_reply(t),
            "FAILURE_CONF is told apart by InvokeID"
        );
        assert!(f.expects(8));
        assert_eq!(
            f.on_reply(t, &b),
            Reply::Answered(sent(8, Kind::SetCallData), Outcome::Failure(35))
        );
        assert_eq!(f.len(), 0);
        assert!(!is_request_reply(
            body(HeartbeatConf { invoke_id: 1 }.into()).0
        ));
    }

    #[test]
    fn stats_count_answers_and_time_confirmations() {
        let mut s = RequestStats {
            sent: 4,
            ..Default::default()
        };
        s.record(&sent(1, Kind::HoldCall), Outcome::Conf, 51_000);
        s.record(&sent(2, Kind::HoldCall), Outcome::Failure(16), 2_000);
        s.record(&sent(3, Kind::HoldCall), Outcome::ControlFailure(8), 2_000);
        s.record(&sent(4, Kind::HoldCall), Outcome::WrongType(39), 2_000);
        assert_eq!((s.answered(), s.confs, s.wrong_type), (4, 1, 1));
        assert_eq!((s.failures[&16], s.control_failures[&8]), (1, 1));
        assert_eq!(s.latency.len(), 1);
        assert!((49_900..=50_100).contains(&s.latency.max()));
    }
}
