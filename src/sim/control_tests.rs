//! The simulator taking requests (docs/requests.md §9): a desktop driving a
//! manual agent end to end, the failure codes a PG gives, determinism, and
//! the stream left byte-identical when nobody sends a request.

use std::time::Duration;

use super::{SimConfig, Simulator};
use crate::proto::constants::{agent_state::*, lcs, msg};
use crate::proto::msg::*;
use crate::proto::{CtiString, Message, Version};

const SEC: Duration = Duration::from_secs(1);

/// A small center whose last agent ("1004", instrument "3004") is manual.
fn center() -> Simulator {
    Simulator::new(SimConfig {
        agents: 4,
        manual_agents: 1,
        calls_per_sec: 0.5,
        seed: 3,
        ..SimConfig::default()
    })
}

/// A desktop's view: sends requests at the simulator's clock and reads
/// the stream up to it.
struct Desk {
    sim: Simulator,
    now: Duration,
    invoke: u32,
    seen: Vec<Message>,
}

impl Desk {
    fn new(sim: Simulator) -> Desk {
        Desk {
            sim,
            now: Duration::ZERO,
            invoke: 0,
            seen: Vec::new(),
        }
    }

    /// Let simulated time run to `now + by`; returns what was sent meanwhile.
    fn wait(&mut self, by: Duration) -> Vec<Message> {
        self.now += by;
        let mut out = Vec::new();
        while let Some((at, m)) = self.sim.next_event_until(self.now) {
            assert!(at <= self.now, "an event from the future");
            out.push(m);
        }
        self.seen.extend(out.iter().cloned());
        out
    }

    /// Send `request` now; returns its answer and the events it caused at once.
    fn send(&mut self, request: impl Into<Message>) -> (Message, Vec<Message>) {
        let request = request.into();
        self.invoke += 1;
        let invoke_id = self.invoke;
        self.sim.request(self.now, invoke_id, &request);
        let mut out = self.wait(Duration::ZERO);
        // Whatever was due by now comes first; then the answer, then what
        // the request caused.
        let at = out
            .iter()
            .position(|m| msg::is_reply(m.message_type()))
            .expect("every request is answered at once");
        let caused = out.split_off(at + 1);
        let answer = out.pop().expect("the answer");
        // The requests carry InvokeID 0: the answer has the caller's.
        let frame = answer.to_frame(Version::MAX).expect("the answer encodes");
        assert_eq!(
            u32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]),
            invoke_id,
            "the answer carries the InvokeID given to request(): {answer:?}"
        );
        assert!(
            !caused.iter().any(|m| msg::is_reply(m.message_type())),
            "one answer per request"
        );
        (answer, caused)
    }

    /// Wait (up to `limit`) for an event matching `pred`.
    fn wait_for(&mut self, limit: Duration, pred: impl Fn(&Message) -> bool) -> Message {
        let step = Duration::from_millis(100);
        let mut waited = Duration::ZERO;
        while waited < limit {
            if let Some(m) = self.wait(step).into_iter().find(|m| pred(m)) {
                return m;
            }
            waited += step;
        }
        panic!("nothing matched within {limit:?}");
    }
}

fn s(text: &str) -> Option<CtiString> {
    Some(CtiString::from(text))
}

fn set_state(state: u16, reason: u16) -> SetAgentStateReq {
    SetAgentStateReq {
        agent_state: state,
        event_reason_code: reason,
        agent_id: s("1004"),
        agent_instrument: s("3004"),
        ..Default::default()
    }
}

fn states_of(events: &[Message], agent: &str) -> Vec<u16> {
    events
        .iter()
        .filter_map(|m| match m {
            Message::AgentStateEvent(e) if e.agent_id == s(agent) => Some(e.agent_state),
            _ => None,
        })
        .collect()
}

fn failure_code(answer: &Message) -> Option<u16> {
    match answer {
        Message::ControlFailureConf(f) => Some(f.failure_code),
        _ => None,
    }
}

/// Log the manual agent in, make it ready and wait for a customer call to ring.
fn ringing(desk: &mut Desk) -> u32 {
    let (conf, events) = desk.send(set_state(LOGIN, 0));
    assert_eq!(conf.message_type(), msg::SET_AGENT_STATE_CONF);
    assert_eq!(states_of(&events, "1004"), [LOGIN, NOT_READY]);
    let (_, events) = desk.send(set_state(AVAILABLE, 0));
    assert_eq!(states_of(&events, "1004").first(), Some(&AVAILABLE));
    let delivered = desk.wait_for(
        600 * SEC,
        |m| matches!(m, Message::CallDeliveredEvent(e) if e.alerting_device_id == s("3004")),
    );
    let Message::CallDeliveredEvent(e) = delivered else {
        unreachable!()
    };
    e.connection_call_id
}

#[test]
fn a_manual_agent_is_driven_end_to_end_by_requests() {
    let mut desk = Desk::new(center());
    desk.wait(5 * SEC);
    assert!(
        states_of(&desk.seen, "1004").is_empty(),
        "a manual agent does nothing on its own"
    );
    let call = ringing(&mut desk);
    // It rings until answered.
    let later = desk.wait(120 * SEC);
    assert!(!later
        .iter()
        .any(|m| m.message_type() == msg::CALL_ESTABLISHED_EVENT
            && matches!(m, Message::CallEstablishedEvent(e) if e.connection_call_id == call)));
    let (conf, events) = desk.send(AnswerCallReq {
        connection_call_id: call,
        agent_instrument: s("3004"),
        ..Default::default()
    });
    assert_eq!(conf.message_type(), msg::ANSWER_CALL_CONF);
    assert_eq!(events[0].message_type(), msg::CALL_ESTABLISHED_EVENT);
    assert_eq!(states_of(&events, "1004"), [TALKING]);

    let (conf, events) = desk.send(HoldCallReq {
        connection_call_id: call,
        agent_instrument: s("3004"),
        ..Default::default()
    });
    assert_eq!(conf.message_type(), msg::HOLD_CALL_CONF);
    assert_eq!(events[0].message_type(), msg::CALL_HELD_EVENT);
    assert_eq!(states_of(&events, "1004"), [HOLD]);
    let (conf, events) = desk.send(RetrieveCallReq {
        held_connection_call_id: call,
        agent_instrument: s("3004"),
        ..Default::default()
    });
    assert_eq!(conf.message_type(), msg::RETRIEVE_CALL_CONF);
    assert_eq!(events[0].message_type(), msg::CALL_RETRIEVED_EVENT);

    let (conf, events) = desk.send(SetCallDataReq {
        connection_call_id: call,
        call_variable_3: s("ABC"),
        ..Default::default()
    });
    assert_eq!(conf.message_type(), msg::SET_CALL_DATA_CONF);
    match &events[..] {
        [Message::CallDataUpdateEvent(e)] => {
            assert_eq!(e.connection_call_id, call);
            assert_eq!(e.call_variable_3, s("ABC"));
        }
        other => panic!("expected one CALL_DATA_UPDATE_EVENT, got {other:?}"),
    }
    let (snapshot, _) = desk.send(SnapshotCallReq {
        connection_call_id: call,
        ..Default::default()
    });
    match snapshot {
        Message::SnapshotCallConf(c) => {
            assert_eq!(c.call_variable_3, s("ABC"));
            assert!(c
                .call_devices
                .iter()
                .any(|d| d.device_id == s("3004") && d.connection_state == Some(lcs::CONNECT)));
        }
        other => panic!("{other:?}"),
    }

    // Nobody hangs up on a manual agent: it stays on the call.
    desk.wait(3600 * SEC);
    let (conf, events) = desk.send(ClearConnectionReq {
        connection_call_id: call,
        agent_instrument: s("3004"),
        ..Default::default()
    });
    assert_eq!(conf.message_type(), msg::CLEAR_CONNECTION_CONF);
    let types: Vec<u32> = events.iter().map(Message::message_type).collect();
    assert!(types.ends_with(&[
        msg::CALL_CLEARED_EVENT,
        msg::END_CALL_EVENT,
        msg::AGENT_STATE_EVENT
    ]));
    assert_eq!(states_of(&events, "1004"), [WORK_READY]);
    // Wrap-up lasts until the desktop says otherwise.
    desk.wait(600 * SEC);
    assert_eq!(states_of(&desk.seen, "1004").last(), Some(&WORK_READY));
    let (_, events) = desk.send(set_state(NOT_READY, 7));
    assert_eq!(states_of(&events, "1004"), [NOT_READY]);
    let (_, events) = desk.send(set_state(LOGOUT, 0));
    assert_eq!(states_of(&events, "1004"), [LOGOUT]);
}

#[test]
fn a_consult_transfer_by_request_moves_the_customer() {
    let mut desk = Desk::new(Simulator::new(SimConfig {
        agents: 2,
        manual_agents: 2,
        calls_per_sec: 0.2,
        seed: 5,
        ..SimConfig::default()
    }));
    for (id, ext) in [("1001", "3001"), ("1002", "3002")] {
        for state in [LOGIN, AVAILABLE] {
            let (conf, _) = desk.send(SetAgentStateReq {
                agent_state: state,
                agent_id: s(id),
                agent_instrument: s(ext),
                ..Default::default()
            });
            assert_eq!(conf.message_type(), msg::SET_AGENT_STATE_CONF, "{conf:?}");
        }
    }
    let delivered = desk.wait_for(600 * SEC, |m| {
        m.message_type() == msg::CALL_DELIVERED_EVENT && {
            let Message::CallDeliveredEvent(e) = m else {
                return false;
            };
            e.alerting_device_id == s("3001") || e.alerting_device_id == s("3002")
        }
    });
    let Message::CallDeliveredEvent(e) = delivered else {
        unreachable!()
    };
    let (call, me, them) = if e.alerting_device_id == s("3001") {
        (e.connection_call_id, "3001", "3002")
    } else {
        (e.connection_call_id, "3002", "3001")
    };
    let (conf, _) = desk.send(AnswerCallReq {
        connection_call_id: call,
        agent_instrument: s(me),
        ..Default::default()
    });
    assert_eq!(conf.message_type(), msg::ANSWER_CALL_CONF);
    // Not yet consulted: nothing to transfer.
    let (refused, _) = desk.send(TransferCallReq {
        agent_instrument: s(me),
        ..Default::default()
    });
    assert_eq!(failure_code(&refused), Some(29));

    let (conf, events) = desk.send(ConsultationCallReq {
        active_connection_call_id: call,
        dialed_number: s(them),
        agent_instrument: s(me),
        ..Default::default()
    });
    let Message::ConsultationCallConf(c) = conf else {
        panic!("{conf:?}")
    };
    let consult = c.new_connection_call_id;
    assert_ne!(consult, call);
    let types: Vec<u32> = events.iter().map(Message::message_type).collect();
    assert_eq!(types[0], msg::CALL_HELD_EVENT);
    assert!(types.contains(&msg::BEGIN_CALL_EVENT));
    assert!(types.contains(&msg::CALL_ORIGINATED_EVENT));
    // The consult rings at the other manual agent until it answers.
    desk.wait_for(
        5 * SEC,
        |m| matches!(m, Message::CallDeliveredEvent(e) if e.connection_call_id == consult),
    );
    let (conf, _) = desk.send(AnswerCallReq {
        connection_call_id: consult,
        agent_instrument: s(them),
        ..Default::default()
    });
    assert_eq!(conf.message_type(), msg::ANSWER_CALL_CONF);
    let (conf, events) = desk.send(TransferCallReq {
        active_connection_call_id: consult,
        held_connection_call_id: call,
        agent_instrument: s(me),
        ..Default::default()
    });
    assert_eq!(conf.message_type(), msg::TRANSFER_CALL_CONF, "{conf:?}");
    assert_eq!(events[0].message_type(), msg::CALL_TRANSFERRED_EVENT);
    // The customer now talks to the other agent; its snapshot says so.
    let (snapshot, _) = desk.send(SnapshotDeviceReq {
        agent_instrument: s(them),
        ..Default::default()
    });
    let Message::SnapshotDeviceConf(d) = snapshot else {
        panic!("{snapshot:?}")
    };
    assert_eq!(d.calls.len(), 1);
    assert_eq!(d.calls[0].connection_call_id, Some(call));
    assert_eq!(d.calls[0].call_state, Some(lcs::CONNECT));
}

#[test]
fn a_placed_call_goes_out_and_is_answered_outside() {
    let mut desk = Desk::new(center());
    desk.send(set_state(LOGIN, 0));
    let (conf, events) = desk.send(MakeCallReq {
        agent_instrument: s("3004"),
        dialed_number: s("5551234"),
        ..Default::default()
    });
    let Message::MakeCallConf(c) = conf else {
        panic!("{conf:?}")
    };
    let types: Vec<u32> = events.iter().map(Message::message_type).collect();
    assert_eq!(
        types,
        [
            msg::BEGIN_CALL_EVENT,
            msg::CALL_SERVICE_INITIATED_EVENT,
            msg::AGENT_STATE_EVENT,
            msg::CALL_ORIGINATED_EVENT,
            msg::CALL_REACHED_NETWORK_EVENT
        ]
    );
    let call = c.new_connection_call_id;
    desk.wait_for(
        30 * SEC,
        |m| matches!(m, Message::CallEstablishedEvent(e) if e.connection_call_id == call),
    );
    let (conf, events) = desk.send(ClearCallReq {
        connection_call_id: call,
        agent_instrument: s("3004"),
        ..Default::default()
    });
    assert_eq!(conf.message_type(), msg::CLEAR_CALL_CONF);
    assert!(events
        .iter()
        .any(|m| m.message_type() == msg::END_CALL_EVENT));
}

#[test]
fn illegal_requests_get_the_codes_a_pg_gives() {
    let mut desk = Desk::new(center());
    let at = |id| AnswerCallReq {
        agent_instrument: s(id),
        ..Default::default()
    };
    assert_eq!(failure_code(&desk.send(at("9999")).0), Some(12));
    assert_eq!(failure_code(&desk.send(at("3004")).0), Some(28));
    let hold = HoldCallReq {
        agent_instrument: s("3004"),
        ..Default::default()
    };
    assert_eq!(failure_code(&desk.send(hold).0), Some(24));
    let retrieve = RetrieveCallReq {
        agent_instrument: s("3004"),
        ..Default::default()
    };
    assert_eq!(failure_code(&desk.send(retrieve).0), Some(25));
    // Logged out: only LOGIN is legal.
    assert_eq!(
        failure_code(&desk.send(set_state(AVAILABLE, 0)).0),
        Some(21)
    );
    let clear = ClearConnectionReq {
        connection_call_id: 42,
        agent_instrument: s("3004"),
        ..Default::default()
    };
    assert_eq!(failure_code(&desk.send(clear).0), Some(27));
    // Call Data Update answers FAILURE_CONF with a status.
    let (answer, events) = desk.send(SetCallDataReq {
        connection_call_id: 42,
        ..Default::default()
    });
    match answer {
        Message::FailureConf(f) => assert_eq!(f.status, 13),
        other => panic!("{other:?}"),
    }
    assert!(events.is_empty(), "a refused request causes nothing");
    let (query, _) = desk.send(QueryAgentStateReq {
        agent_id: s("1004"),
        ..Default::default()
    });
    match query {
        Message::QueryAgentStateConf(q) => assert_eq!(q.agent_state, LOGOUT),
        other => panic!("{other:?}"),
    }
}

fn digest(events: &[Message], at: &[Duration]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut frame = Vec::new();
    for (m, t) in events.iter().zip(at) {
        frame.clear();
        frame.extend_from_slice(&(t.as_nanos() as u64).to_be_bytes());
        m.encode(Version::MAX, &mut frame).expect("encodable");
        for &b in &frame {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[test]
fn with_no_requests_the_stream_is_byte_identical_to_before() {
    // FNV-1a of 200,000 events of two configurations (times and v24
    // frames), taken from the simulator before it took requests.
    let mut all = (Vec::new(), Vec::new());
    for config in [
        SimConfig::default(),
        SimConfig {
            agents: 7,
            calls_per_sec: 3.0,
            seed: 9,
            ..SimConfig::default()
        },
    ] {
        let mut sim = Simulator::new(config);
        for _ in 0..200_000 {
            let (at, m) = sim.next_event();
            all.0.push(m);
            all.1.push(at);
        }
    }
    assert_eq!(digest(&all.0, &all.1), 0xd328_b0fb_d8a1_95e3);
}

#[test]
fn the_same_requests_at_the_same_times_give_the_same_stream() {
    let script = |desk: &mut Desk| {
        desk.wait(2 * SEC);
        desk.send(set_state(LOGIN, 0));
        desk.wait(SEC);
        desk.send(set_state(AVAILABLE, 0));
        desk.wait(300 * SEC);
        desk.send(AnswerCallReq {
            agent_instrument: s("3004"),
            ..Default::default()
        });
        desk.wait(60 * SEC);
        let times: Vec<Duration> = vec![Duration::ZERO; desk.seen.len()];
        digest(&desk.seen, &times)
    };
    let a = script(&mut Desk::new(center()));
    let b = script(&mut Desk::new(center()));
    assert_eq!(a, b);
    let mut quiet = Desk::new(center());
    quiet.wait(364 * SEC);
    let times = vec![Duration::ZERO; quiet.seen.len()];
    assert_ne!(
        a,
        digest(&quiet.seen, &times),
        "the requests changed nothing"
    );
}
