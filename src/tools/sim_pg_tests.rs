//! Unit tests of `sim-pg` (`sim_pg.rs`): arbitrary and random requests
//! answered once without panics, and the `--grant` masks.

use super::*;
use crate::session::server::proxied_service;
use crate::sim::rng::Rng;

/// Whatever a client's request holds, once it passed the session's
/// checks and the scope fill, the simulator answers it exactly once
/// and does not panic.
#[test]
fn arbitrary_requests_are_answered_once_and_never_panic_the_simulator() {
    let mut sim = Simulator::new(SimConfig {
        agents: 4,
        manual_agents: 1,
        calls_per_sec: 2.0,
        seed: 11,
        ..SimConfig::default()
    });
    let desk = Agent {
        peripheral_id: 5000,
        agent_id: Some("1004".into()),
        agent_extension: None,
        agent_instrument: Some("3004".into()),
    };
    let requests: Vec<usize> = (0..Message::TYPED.len())
        .filter(|&i| proxied_service(Message::TYPED[i]).is_some())
        .collect();
    let mut rng = Rng::new(5);
    let mut now = Duration::ZERO;
    let mut invoke = 0u32;
    for round in 0..4000 {
        let bytes: Vec<u8> = (0..256).map(|_| rng.next_u64() as u8).collect();
        let which = requests[round % requests.len()];
        let mut u = arbitrary::Unstructured::new(&bytes);
        let Ok(mut request) = Message::arbitrary_typed(which, &mut u) else {
            continue;
        };
        // Half of them as a desktop of the manual agent sends them.
        if round % 2 == 0 {
            if let Some(identity) = scope::identity(&mut request) {
                let _ = scope::fill_and_check(identity, &desk, |_, _| true);
            }
        }
        invoke += 1;
        now += Duration::from_millis(rng.range(0, 3000));
        sim.request(now, invoke, &request);
        let mut answers = Vec::new();
        while let Some((_, m)) = sim.next_event_until(now) {
            if msg::is_reply(m.message_type()) {
                let frame = m.to_frame(Version::MAX).expect("the answer encodes");
                answers.push(u32::from_be_bytes([
                    frame[8], frame[9], frame[10], frame[11],
                ]));
            }
        }
        assert_eq!(
            answers,
            [invoke],
            "one answer, with its InvokeID: {request:?}"
        );
    }
}

/// Desktops acting on the agents and calls they see, at random: every
/// request answered once, every event encodes and routes, no panic.
#[test]
fn random_desktops_never_panic_the_simulator() {
    let mut done = std::collections::BTreeMap::new();
    for seed in 1..=4 {
        for (t, n) in random_desktops(seed, 25_000) {
            *done.entry(t).or_insert(0) += n;
        }
    }
    for t in [
        msg::SET_AGENT_STATE_CONF,
        msg::ANSWER_CALL_CONF,
        msg::HOLD_CALL_CONF,
        msg::RETRIEVE_CALL_CONF,
        msg::MAKE_CALL_CONF,
        msg::CONSULTATION_CALL_CONF,
        msg::TRANSFER_CALL_CONF,
        msg::CONFERENCE_CALL_CONF,
        msg::CLEAR_CONNECTION_CONF,
    ] {
        assert!(done.contains_key(&t), "no {t} in {done:?}");
    }
}

/// `n` random requests on a small center with `seed`: how many of each
/// CONF (not failures) came back.
fn random_desktops(seed: u64, n: u32) -> std::collections::BTreeMap<u32, u32> {
    use crate::proto::msg::*;
    let mut sim = Simulator::new(SimConfig {
        agents: 4,
        manual_agents: 2,
        calls_per_sec: 1.0,
        seed,
        ..SimConfig::default()
    });
    let exts = ["3001", "3002", "3003", "3004", "5551234"];
    let mut rng = Rng::new(seed);
    let mut calls: Vec<u32> = vec![0];
    let mut hot: Option<crate::proto::CtiString> = None;
    let mut consulted: Option<crate::proto::CtiString> = None;
    let mut script = std::collections::VecDeque::new();
    let mut now = Duration::ZERO;
    let mut kinds = std::collections::BTreeMap::new();
    for invoke in 1..=n {
        now += Duration::from_millis(rng.range(0, 2000));
        let ext = |rng: &mut Rng| Some(exts[rng.below(exts.len() as u32) as usize].into());
        let call = calls[rng.below(calls.len() as u32) as usize];
        // Scripted steps come from the agent that last consulted.
        let inst = match &hot {
            Some(hot) if !script.is_empty() => Some(hot.clone()),
            _ => ext(&mut rng),
        };
        let scripted = script.pop_front();
        let request: Message = match scripted.unwrap_or_else(|| rng.below(14)) {
            0 | 1 => SetAgentStateReq {
                agent_state: rng.below(11) as u16,
                event_reason_code: rng.below(3) as u16,
                agent_instrument: inst,
                ..Default::default()
            }
            .into(),
            2 => AnswerCallReq {
                connection_call_id: if scripted.is_some() { 0 } else { call },
                agent_instrument: if scripted.is_some() {
                    consulted.clone()
                } else {
                    inst
                },
                ..Default::default()
            }
            .into(),
            3 => HoldCallReq {
                connection_call_id: call,
                agent_instrument: inst,
                ..Default::default()
            }
            .into(),
            4 => RetrieveCallReq {
                held_connection_call_id: call,
                agent_instrument: inst,
                ..Default::default()
            }
            .into(),
            5 => ClearConnectionReq {
                connection_call_id: call,
                agent_instrument: inst,
                ..Default::default()
            }
            .into(),
            6 => ClearCallReq {
                connection_call_id: call,
                agent_instrument: inst,
                ..Default::default()
            }
            .into(),
            7 => MakeCallReq {
                agent_instrument: inst,
                dialed_number: ext(&mut rng),
                ..Default::default()
            }
            .into(),
            8 => ConsultationCallReq {
                active_connection_call_id: call,
                agent_instrument: inst,
                dialed_number: ext(&mut rng),
                ..Default::default()
            }
            .into(),
            9 => TransferCallReq {
                agent_instrument: inst,
                ..Default::default()
            }
            .into(),
            10 => ConferenceCallReq {
                agent_instrument: inst,
                ..Default::default()
            }
            .into(),
            11 => ReconnectCallReq {
                agent_instrument: inst,
                ..Default::default()
            }
            .into(),
            12 => SnapshotCallReq {
                connection_call_id: call,
                ..Default::default()
            }
            .into(),
            _ => SetCallDataReq {
                connection_call_id: call,
                call_variable_1: Some("x".into()),
                ..Default::default()
            }
            .into(),
        };
        sim.request(now, invoke, &request);
        let mut answers = Vec::new();
        while let Some((_, m)) = sim.next_event_until(now) {
            let frame = m.to_frame(Version::MAX).expect("every message encodes");
            if msg::is_reply(m.message_type()) {
                answers.push(u32::from_be_bytes([
                    frame[8], frame[9], frame[10], frame[11],
                ]));
                let ok = !matches!(m, Message::ControlFailureConf(_) | Message::FailureConf(_));
                if let Message::ConsultationCallConf(c) = &m {
                    // The consulted agent answers, then the consulting
                    // one transfers, conferences or reconnects.
                    hot = c.new_connection_device_id.clone();
                    if let Message::ConsultationCallReq(r) = &request {
                        consulted = r.dialed_number.clone();
                    }
                    script.extend([2, 9 + rng.below(3)]);
                }
                if ok {
                    *kinds.entry(m.message_type()).or_insert(0u32) += 1;
                }
                continue;
            }
            routing::extract(&frame, Version::MAX).expect("every event routes");
            let id = match &m {
                Message::CallDeliveredEvent(e) => e.connection_call_id,
                Message::CallServiceInitiatedEvent(e) => e.connection_call_id,
                _ => continue,
            };
            if !calls.contains(&id) {
                calls.push(id);
                if calls.len() > 12 {
                    calls.remove(1);
                }
            }
        }
        assert_eq!(answers, [invoke], "one answer: {request:?}");
    }
    kinds
}

#[test]
fn grant_masks_parse_as_hex_or_decimal() {
    assert_eq!(parse_mask("0x1"), Ok(1));
    assert_eq!(parse_mask("0X2013"), Ok(0x2013));
    assert_eq!(parse_mask("22"), Ok(22));
    assert!(parse_mask("0x").is_err());
    assert!(parse_mask("ab").is_err());
    assert!(parse_mask("-1").is_err());
}

#[test]
fn grant_masks_what_is_served() {
    let all = SimPgOptions::default();
    assert_eq!(
        all.served_services(),
        Services::ALL_EVENTS | Services::CLIENT_EVENTS | Services::SUPERVISOR
    );
    assert_eq!(
        all.request_services(),
        Services::CLIENT_CONTROL | Services::CALL_DATA_UPDATE | Services::AGENT_STATE_CONTROL_ONLY
    );
    let all_events_only = SimPgOptions {
        grant: Services(0x10),
        ..SimPgOptions::default()
    };
    assert_eq!(all_events_only.served_services(), Services::ALL_EVENTS);
    assert_eq!(all_events_only.request_services(), Services::NONE);
    let agent_state_only = SimPgOptions {
        grant: Services(0x2011),
        ..SimPgOptions::default()
    };
    assert_eq!(
        agent_state_only.request_services(),
        Services::AGENT_STATE_CONTROL_ONLY
    );
}
