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

// --- Miscellaneous requests (src/sim/misc.rs) ----------------------------

fn status_of(answer: &Message) -> Option<u32> {
    match answer {
        Message::FailureConf(f) => Some(f.status),
        _ => None,
    }
}

fn agent_statistics(desk: &mut Desk, by: QueryAgentStatisticsReq) -> QueryAgentStatisticsConf {
    match desk.send(by) {
        (Message::QueryAgentStatisticsConf(c), caused) => {
            assert!(caused.is_empty(), "a query causes nothing");
            c
        }
        (other, _) => panic!("{other:?}"),
    }
}

#[test]
fn agent_statistics_count_what_the_agent_did() {
    let mut desk = Desk::new(center());
    let call = ringing(&mut desk);
    desk.wait(2 * SEC);
    desk.send(AnswerCallReq {
        connection_call_id: call,
        agent_instrument: s("3004"),
        ..Default::default()
    });
    desk.wait(5 * SEC);
    desk.send(HoldCallReq {
        connection_call_id: call,
        agent_instrument: s("3004"),
        ..Default::default()
    });
    desk.wait(10 * SEC);
    desk.send(RetrieveCallReq {
        held_connection_call_id: call,
        agent_instrument: s("3004"),
        ..Default::default()
    });
    desk.wait(20 * SEC);
    desk.send(ClearConnectionReq {
        connection_call_id: call,
        agent_instrument: s("3004"),
        ..Default::default()
    });
    desk.wait(3 * SEC);
    let by_id = agent_statistics(
        &mut desk,
        QueryAgentStatisticsReq {
            peripheral_id: 5000,
            agent_id: s("1004"),
            ..Default::default()
        },
    );
    assert_eq!(
        (
            by_id.peripheral_id,
            &by_id.agent_id,
            &by_id.agent_instrument
        ),
        (5000, &s("1004"), &s("3004"))
    );
    let n = |name: &str| by_id.statistics.get(name).expect(name);
    assert_eq!(n("handled_calls_session"), 1);
    assert_eq!(n("handled_calls_today"), 1);
    assert_eq!(n("incoming_calls_held_session"), 1);
    assert_eq!(n("incoming_calls_held_time_session"), 10);
    // Talking 5 s before the hold and 20 s after; wrap-up 3 s so far.
    assert_eq!(n("handled_calls_talk_time_session"), 25);
    assert_eq!(n("handled_calls_after_call_time_session"), 3);
    assert_eq!(n("handled_calls_time_session"), 38);
    let logged_on = n("logged_on_time_session");
    let parts = n("avail_time_session") + n("not_ready_time_session") + 38;
    assert!(
        (parts..=parts + 5).contains(&logged_on),
        "logged on {logged_on} s, states {parts} s (+ reserved and ringing)"
    );
    assert_eq!(n("agent_out_calls_session"), 0);
    assert_eq!(n("icm_available_time_session"), 0, "not kept: 0");
    // By instrument: the same agent, the same counts.
    let by_instrument = agent_statistics(
        &mut desk,
        QueryAgentStatisticsReq {
            agent_instrument: s("3004"),
            ..Default::default()
        },
    );
    assert_eq!(by_instrument.statistics, by_id.statistics);
}

#[test]
fn statistics_and_desk_settings_refuse_what_the_pg_does_not_know() {
    let mut desk = Desk::new(center());
    let unknown = QueryAgentStatisticsReq {
        agent_id: s("9999"),
        ..Default::default()
    };
    assert_eq!(status_of(&desk.send(unknown).0), Some(8));
    let nobody = QueryAgentStatisticsReq::default();
    assert_eq!(status_of(&desk.send(nobody).0), Some(6));
    let elsewhere = QueryAgentStatisticsReq {
        peripheral_id: 77,
        agent_id: s("1001"),
        ..Default::default()
    };
    assert_eq!(status_of(&desk.send(elsewhere).0), Some(7));
    let group = |number, id| QuerySkillGroupStatisticsReq {
        skill_group_number: number,
        skill_group_id: id,
        ..Default::default()
    };
    assert_eq!(status_of(&desk.send(group(999, u32::MAX)).0), Some(72));
    assert_eq!(status_of(&desk.send(group(101, 5102)).0), Some(72));
    assert_eq!(status_of(&desk.send(group(u32::MAX, u32::MAX)).0), Some(72));
    let settings = |id: Option<CtiString>| AgentDeskSettingsReq {
        peripheral_id: 5000,
        agent_id: id,
        ..Default::default()
    };
    assert_eq!(status_of(&desk.send(settings(s("9999"))).0), Some(8));
    assert_eq!(status_of(&desk.send(settings(None)).0), Some(6));
    match desk.send(settings(s("1002"))) {
        (Message::AgentDeskSettingsConf(c), caused) => {
            assert!(caused.is_empty());
            assert_eq!(c.peripheral_id, 5000);
            assert_eq!(c.desk_settings_mask, 0x0168);
            assert_eq!((c.wrapup_data_incoming_mode, c.work_mode_timer), (1, 7200));
            assert_eq!(c.ring_no_answer_time, 0, "calls ring until answered");
        }
        (other, _) => panic!("{other:?}"),
    }
}

#[test]
fn skill_group_statistics_are_the_members_states_and_counts() {
    let mut desk = Desk::new(center());
    desk.wait(300 * SEC);
    let (conf, _) = desk.send(QuerySkillGroupStatisticsReq {
        peripheral_id: 5000,
        skill_group_number: u32::MAX,
        skill_group_id: 5101,
        ..Default::default()
    });
    let Message::QuerySkillGroupStatisticsConf(c) = conf else {
        panic!("{conf:?}")
    };
    assert_eq!((c.skill_group_number, c.skill_group_id), (101, 5101));
    let n = |name: &str| c.statistics.get(name).expect(name);
    let world = &desk.sim.world;
    let members: Vec<_> = world
        .agents
        .iter()
        .filter(|a| a.groups.contains(&0))
        .collect();
    let in_state = |s: u16| members.iter().filter(|a| a.state == s).count() as u32;
    assert_eq!(
        n("agents_logged_on"),
        members.len() as u32 - in_state(LOGOUT)
    );
    assert_eq!(n("agents_avail"), in_state(AVAILABLE));
    assert_eq!(n("agents_not_ready"), in_state(NOT_READY));
    assert_eq!(n("agents_hold"), in_state(HOLD));
    assert_eq!(
        n("agents_talking_in") + n("agents_talking_out") + n("agents_talking_other"),
        in_state(TALKING)
    );
    assert_eq!(n("calls_q_now"), world.groups[0].queue.len() as u32);
    assert_eq!(n("calls_q_time_now"), u32::MAX, "not kept: unknown");
    assert_eq!(n("calls_q_today"), u32::MAX);
    let now = desk.sim.out.now;
    let handled: u32 = members
        .iter()
        .map(|a| {
            a.tally
                .statistics(now, a.state)
                .get("handled_calls_today")
                .unwrap_or(0)
        })
        .sum();
    assert!(handled > 0, "five minutes of calls handled none");
    assert_eq!(n("handled_calls_today"), handled);
    assert!(n("logged_on_time_today") > 0);
}

#[test]
fn recording_needs_a_call_in_progress() {
    let mut desk = Desk::new(center());
    let start = |call| StartRecordingReq {
        connection_call_id: call,
        agent_instrument: s("3004"),
        ..Default::default()
    };
    let stop = |call| StopRecordingReq {
        connection_call_id: call,
        agent_instrument: s("3004"),
        ..Default::default()
    };
    assert_eq!(status_of(&desk.send(start(42)).0), Some(13));
    let call = ringing(&mut desk);
    match desk.send(start(call)) {
        (Message::StartRecordingConf(c), caused) => {
            assert!(caused.is_empty());
            assert_eq!((c.session_id, c.server_data), (0, call));
            assert_eq!(c.client_id, s("sim-recorder"));
        }
        (other, _) => panic!("{other:?}"),
    }
    let (conf, _) = desk.send(stop(call));
    assert_eq!(conf.message_type(), msg::STOP_RECORDING_CONF);
    desk.send(AnswerCallReq {
        connection_call_id: call,
        agent_instrument: s("3004"),
        ..Default::default()
    });
    desk.send(ClearConnectionReq {
        connection_call_id: call,
        agent_instrument: s("3004"),
        ..Default::default()
    });
    assert_eq!(status_of(&desk.send(stop(call)).0), Some(13));
}

#[test]
fn app_data_and_user_messages_are_confirmed_where_a_pg_would() {
    let mut desk = Desk::new(center());
    let app = |path| SetAppDataReq {
        application_path_id: path,
        call_variable_1: s("x"),
        ..Default::default()
    };
    let (conf, caused) = desk.send(app(Some(7)));
    assert_eq!(conf.message_type(), msg::SET_APP_DATA_CONF);
    assert!(caused.is_empty());
    assert_eq!(status_of(&desk.send(app(None)).0), Some(6));
    let message = |distribution, to: Option<CtiString>| UserMessageReq {
        distribution,
        client_id: to,
        text: s("lunch at noon"),
        ..Default::default()
    };
    for (distribution, to, answer) in [
        (0, s("wallboard"), None),
        (0, None, Some(6)),
        (3, None, None),
        (1, None, Some(64)),
        (2, None, Some(65)),
        (9, None, Some(71)),
    ] {
        let (conf, caused) = desk.send(message(distribution, to));
        assert!(caused.is_empty(), "the simulator has no clients to tell");
        match answer {
            None => assert_eq!(conf.message_type(), msg::USER_MESSAGE_CONF),
            Some(code) => assert_eq!(status_of(&conf), Some(code), "{distribution}"),
        }
    }
    let event = Simulator::user_message_event(90 * SEC, &"desk-1".into(), &message(3, None));
    match event {
        Message::UserMessageEvent(e) => {
            assert_eq!(
                (e.distribution, e.client_id, e.text),
                (3, s("desk-1"), s("lunch at noon"))
            );
            assert_eq!(e.icm_central_controller_time, 1_704_067_290);
        }
        other => panic!("{other:?}"),
    }
}
