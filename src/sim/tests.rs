//! Behaviour tests of the whole event stream: determinism, time order, call
//! life cycles (BEGIN_CALL … CALL_CLEARED … END_CALL), one identity per call,
//! legal agent-state transitions, strict decoding at v13/v19/v24, routing-key
//! extraction, load plausibility and bounded memory, plus an ignored
//! throughput check.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::{SimConfig, Simulator};
use crate::proto::constants::{agent_state::*, connection_type, lcs, msg};
use crate::proto::routing;
use crate::proto::{DecodeOptions, Message, Version};

type CallKey = (u32, u16, Vec<u8>);

fn v(n: u32) -> Version {
    Version::new(n).unwrap()
}

fn run(config: SimConfig, n: usize) -> Vec<(Duration, Message)> {
    let mut sim = Simulator::new(config);
    (0..n).map(|_| sim.next_event()).collect()
}

fn key(id: u32, ty: u16, dev: &Option<crate::proto::CtiString>) -> CallKey {
    (
        id,
        ty,
        dev.as_ref().map_or(vec![], |d| d.as_bytes().to_vec()),
    )
}

/// The call identity an event names (the primary call of a merge).
fn identity(m: &Message) -> Option<CallKey> {
    macro_rules! conn {
        ($e:expr) => {
            Some(key(
                $e.connection_call_id,
                $e.connection_device_id_type,
                &$e.connection_device_id,
            ))
        };
    }
    match m {
        Message::CallDeliveredEvent(e) => conn!(e),
        Message::CallEstablishedEvent(e) => conn!(e),
        Message::CallHeldEvent(e) => conn!(e),
        Message::CallRetrievedEvent(e) => conn!(e),
        Message::CallClearedEvent(e) => conn!(e),
        Message::CallConnectionClearedEvent(e) => conn!(e),
        Message::CallOriginatedEvent(e) => conn!(e),
        Message::CallServiceInitiatedEvent(e) => conn!(e),
        Message::CallQueuedEvent(e) => conn!(e),
        Message::CallDequeuedEvent(e) => conn!(e),
        Message::BeginCallEvent(e) => conn!(e),
        Message::EndCallEvent(e) => conn!(e),
        Message::CallDataUpdateEvent(e) => conn!(e),
        Message::CallConferencedEvent(e) => Some(key(
            e.primary_call_id,
            e.primary_device_id_type,
            &e.primary_device_id,
        )),
        Message::CallTransferredEvent(e) => Some(key(
            e.primary_call_id,
            e.primary_device_id_type,
            &e.primary_device_id,
        )),
        _ => None,
    }
}

/// The secondary call of a conference or transfer.
fn secondary(m: &Message) -> Option<CallKey> {
    match m {
        Message::CallConferencedEvent(e) => Some(key(
            e.secondary_call_id,
            e.secondary_device_id_type,
            &e.secondary_device_id,
        )),
        Message::CallTransferredEvent(e) => Some(key(
            e.secondary_call_id,
            e.secondary_device_id_type,
            &e.secondary_device_id,
        )),
        _ => None,
    }
}

/// Whether the event may come just before the call's BEGIN_CALL: trunk
/// seizure and consult initiation.
fn opens_call(m: &Message) -> bool {
    match m {
        Message::CallDeliveredEvent(e) => e.local_connection_state == lcs::INITIATE,
        Message::CallServiceInitiatedEvent(_) => true,
        _ => false,
    }
}

fn frames(events: &[(Duration, Message)], version: Version) -> Vec<u8> {
    let mut out = Vec::new();
    for (at, m) in events {
        out.extend_from_slice(&(at.as_nanos() as u64).to_be_bytes());
        m.encode(version, &mut out).unwrap();
    }
    out
}

#[derive(Default)]
struct Life {
    begun: bool,
    cleared: bool,
}

/// Calls opened by their first event but not yet begun.
type Opened = HashSet<CallKey>;

/// Checks call life cycles over `events`, carrying the calls still open.
fn check_lives(
    events: &[(Duration, Message)],
    live: &mut HashMap<CallKey, Life>,
    opened: &mut Opened,
) {
    for (i, (_, m)) in events.iter().enumerate() {
        let Some(id) = identity(m) else { continue };
        assert_eq!(id.1, connection_type::DYNAMIC, "event {i}");
        assert!(!id.2.is_empty(), "event {i} names no device");
        match m.message_type() {
            msg::BEGIN_CALL_EVENT => {
                let fresh = live.insert(
                    id.clone(),
                    Life {
                        begun: true,
                        cleared: false,
                    },
                );
                assert!(fresh.is_none(), "event {i}: call {id:?} begun twice");
                opened.remove(&id);
            }
            _ if opens_call(m) && !live.contains_key(&id) => {
                assert!(opened.insert(id.clone()), "event {i}: reopened {id:?}");
            }
            msg::CALL_CLEARED_EVENT => {
                let life = live.get_mut(&id).expect("cleared call was begun");
                assert!(life.begun && !life.cleared, "event {i}: cleared twice");
                life.cleared = true;
            }
            msg::END_CALL_EVENT => {
                let life = live.remove(&id).expect("ended call was begun");
                assert!(life.cleared, "event {i}: END_CALL before CALL_CLEARED");
            }
            _ => {
                let life = live.get(&id);
                assert!(
                    life.is_some_and(|l| !l.cleared),
                    "event {i} {}: call {id:?} not live",
                    m.name()
                );
            }
        }
        if let Some(other) = secondary(m) {
            assert!(live.contains_key(&other), "event {i}: unknown secondary");
        }
    }
    assert!(opened.len() <= 1, "calls opened without BEGIN_CALL");
}

#[test]
fn same_seed_gives_byte_identical_stream() {
    let a = run(SimConfig::default(), 10_000);
    let b = run(SimConfig::default(), 10_000);
    assert_eq!(frames(&a, v(24)), frames(&b, v(24)));
}

#[test]
fn stream_does_not_depend_on_how_it_is_pulled() {
    // Pulling in bursts with pauses in between changes nothing.
    let whole = run(SimConfig::default(), 3_000);
    let mut sim = Simulator::new(SimConfig::default());
    let mut parts = Vec::new();
    for burst in [1usize, 7, 500, 2, 2_490] {
        parts.extend((0..burst).map(|_| sim.next_event()));
    }
    assert_eq!(frames(&whole, v(24)), frames(&parts, v(24)));
    assert_eq!(sim.nr_events(), 3_000);
}

#[test]
fn different_seeds_give_different_streams() {
    let a = run(SimConfig::default(), 2_000);
    let b = run(
        SimConfig {
            seed: 2,
            ..SimConfig::default()
        },
        2_000,
    );
    assert_ne!(frames(&a, v(24)), frames(&b, v(24)));
}

#[test]
fn events_are_time_ordered() {
    let events = run(SimConfig::default(), 50_000);
    for pair in events.windows(2) {
        assert!(pair[0].0 <= pair[1].0);
    }
}

#[test]
fn every_begun_call_is_cleared_then_ended() {
    let mut sim = Simulator::new(SimConfig::default());
    let events: Vec<_> = (0..60_000).map(|_| sim.next_event()).collect();
    let (mut live, mut opened) = (HashMap::new(), Opened::new());
    check_lives(&events, &mut live, &mut opened);
    assert!(!live.is_empty(), "some calls are in progress at any time");
    // Every call still open ends later.
    let more: Vec<_> = (0..30_000).map(|_| sim.next_event()).collect();
    let open_then: HashSet<CallKey> = live.keys().cloned().collect();
    check_lives(&more, &mut live, &mut opened);
    assert!(open_then.iter().all(|k| !live.contains_key(k)));
}

#[test]
fn call_and_agent_events_carry_monitor_and_peripheral() {
    let config = SimConfig {
        peripheral_id: 4242,
        ..SimConfig::default()
    };
    for (_, m) in run(config, 5_000) {
        let mut fields = HashMap::new();
        m.visit(v(24), &mut |f| {
            fields.entry(f.name).or_insert(f.value.to_string());
        });
        if m.message_type() == msg::SYSTEM_EVENT {
            continue;
        }
        assert_eq!(fields["monitor_id"], "0", "{}", m.name());
        assert_eq!(fields["peripheral_id"], "4242", "{}", m.name());
        assert_eq!(fields["peripheral_type"], "17", "{}", m.name());
        if let Message::AgentStateEvent(e) = &m {
            assert!(e.agent_id.is_some() && e.agent_extension.is_some());
            assert!(e.agent_instrument.is_some() && e.skill_group_number != 0);
            assert_eq!(e.num_flt_skill_groups as usize, e.skill_groups.len());
        }
    }
}

#[test]
fn agent_states_follow_legal_transitions() {
    let legal = |from: u16, to: u16| match from {
        LOGIN => to == NOT_READY,
        NOT_READY => to == AVAILABLE,
        AVAILABLE => matches!(to, RESERVED | NOT_READY),
        RESERVED => to == TALKING,
        TALKING => matches!(
            to,
            HOLD | WORK_READY | WORK_NOT_READY | NOT_READY | AVAILABLE
        ),
        HOLD => to == TALKING,
        WORK_READY => to == AVAILABLE,
        WORK_NOT_READY => to == NOT_READY,
        _ => false,
    };
    let mut last: HashMap<Vec<u8>, u16> = HashMap::new();
    let mut seen = HashSet::new();
    for (i, (_, m)) in run(SimConfig::default(), 60_000).iter().enumerate() {
        let Message::AgentStateEvent(e) = m else {
            continue;
        };
        let agent = e.agent_id.as_ref().unwrap().as_bytes().to_vec();
        let to = e.agent_state;
        seen.insert(to);
        match last.insert(agent.clone(), to) {
            None => assert_eq!(to, LOGIN, "event {i}: first state of {agent:?}"),
            Some(from) => assert!(legal(from, to), "event {i}: {from} -> {to}"),
        }
        let reason_ok = to == NOT_READY || e.event_reason_code == 0;
        assert!(reason_ok, "event {i}: reason code outside NOT_READY");
    }
    assert_eq!(last.len(), 50, "every agent logged in");
    for state in [LOGIN, NOT_READY, AVAILABLE, RESERVED, TALKING, HOLD] {
        assert!(seen.contains(&state), "state {state} never seen");
    }
    assert!(seen.contains(&WORK_READY) && seen.contains(&WORK_NOT_READY));
}

#[test]
fn every_event_decodes_strictly_at_v13_v19_v24() {
    let events = run(SimConfig::default(), 20_000);
    for version in [v(13), v(19), v(24)] {
        for (i, (_, m)) in events.iter().enumerate() {
            let frame = m.to_frame(version).unwrap();
            let (back, used) = crate::proto::decode_frame(&frame, version, DecodeOptions::STRICT)
                .unwrap_or_else(|e| panic!("event {i} {} at {version:?}: {e:?}", m.name()));
            assert_eq!(used, frame.len());
            let mut expect = m.clone();
            expect.restrict_to(version);
            assert_eq!(back, expect, "event {i} at {version:?}");
        }
    }
}

#[test]
fn routing_keys_name_the_call_identity() {
    for version in [v(13), v(24)] {
        for (i, (_, m)) in run(SimConfig::default(), 20_000).iter().enumerate() {
            let frame = m.to_frame(version).unwrap();
            let keys = routing::extract(&frame, version).unwrap();
            assert_eq!(
                keys.peripheral_id.is_some(),
                m.message_type() != msg::SYSTEM_EVENT
            );
            let Some((id, ty, dev)) = identity(m) else {
                assert!(keys.call.is_none() || m.message_type() != msg::AGENT_STATE_EVENT);
                continue;
            };
            let call = keys.call.unwrap_or_else(|| panic!("event {i}: no call"));
            assert_eq!((call.call_id, call.device_id_type), (id, ty), "event {i}");
            assert_eq!(call.device_id.unwrap().of(&frame), &dev[..], "event {i}");
            if let Some((id2, _, dev2)) = secondary(m) {
                let other = keys.other_call.unwrap();
                assert_eq!(other.call_id, id2);
                assert_eq!(other.device_id.unwrap().of(&frame), &dev2[..]);
            }
        }
    }
}

#[test]
fn all_call_flows_occur() {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    let mut abandoned = 0;
    for (_, m) in run(SimConfig::default(), 60_000) {
        *counts.entry(m.message_type()).or_default() += 1;
        if let Message::CallClearedEvent(e) = &m {
            abandoned += (e.event_cause == super::build::cause::ABAND_LOCAL_QUEUE) as usize;
        }
    }
    for t in [
        msg::CALL_DELIVERED_EVENT,
        msg::CALL_ESTABLISHED_EVENT,
        msg::CALL_HELD_EVENT,
        msg::CALL_RETRIEVED_EVENT,
        msg::CALL_CLEARED_EVENT,
        msg::CALL_CONNECTION_CLEARED_EVENT,
        msg::CALL_ORIGINATED_EVENT,
        msg::CALL_CONFERENCED_EVENT,
        msg::CALL_TRANSFERRED_EVENT,
        msg::CALL_SERVICE_INITIATED_EVENT,
        msg::CALL_QUEUED_EVENT,
        msg::CALL_DEQUEUED_EVENT,
        msg::BEGIN_CALL_EVENT,
        msg::END_CALL_EVENT,
        msg::CALL_DATA_UPDATE_EVENT,
        msg::AGENT_STATE_EVENT,
    ] {
        assert!(
            counts.contains_key(&t),
            "{:?} never sent",
            Message::type_name(t)
        );
    }
    // Routed calls far outnumber abandoned ones at 85% occupancy.
    let begun = counts[&msg::BEGIN_CALL_EVENT];
    assert!(abandoned * 10 < begun, "{abandoned} abandoned of {begun}");
}

#[test]
fn one_hour_at_five_calls_per_second_is_plausible_and_bounded() {
    let mut sim = Simulator::new(SimConfig::default());
    let (mut events, mut begun, mut max_live, mut max_footprint) = (0u64, 0u64, 0, 0);
    let mut footprint_half = 0;
    loop {
        let (at, m) = sim.next_event();
        if at > Duration::from_secs(3600) {
            break;
        }
        events += 1;
        begun += (m.message_type() == msg::BEGIN_CALL_EVENT) as u64;
        max_live = max_live.max(sim.live_calls());
        max_footprint = max_footprint.max(sim.footprint());
        if at < Duration::from_secs(1800) {
            footprint_half = max_footprint;
        }
    }
    // ~18,000 inbound calls (+ consult calls), ~16 events each.
    assert!((16_000..=23_000).contains(&begun), "{begun} calls");
    assert!((220_000..=420_000).contains(&events), "{events} events");
    let bound = 50 + sim.world.max_queued + 16 + 64;
    assert!(max_live <= bound, "{max_live} live calls");
    assert!(max_live <= sim.world.trunks.len());
    assert!(max_footprint < 2_000, "{max_footprint} entries");
    // No growth in the second half hour beyond noise.
    assert!(max_footprint <= footprint_half * 3 / 2 + 50);
}

#[test]
fn overloaded_queue_overflows_and_every_call_still_ends() {
    // Zero agents: every call queues, then abandons or overflows.
    let mut sim = Simulator::new(SimConfig {
        agents: 0,
        calls_per_sec: 20.0,
        ..SimConfig::default()
    });
    let events: Vec<_> = (0..20_000).map(|_| sim.next_event()).collect();
    let (mut live, mut opened) = (HashMap::new(), Opened::new());
    check_lives(&events, &mut live, &mut opened);
    let causes: HashSet<u16> = events
        .iter()
        .filter_map(|(_, m)| match m {
            Message::CallClearedEvent(e) => Some(e.event_cause),
            _ => None,
        })
        .collect();
    use super::build::cause;
    assert!(causes.contains(&cause::MAX_QUEUE_EXCEEDED));
    assert!(causes.contains(&cause::ABAND_LOCAL_QUEUE));
    assert!(sim.queued_calls() <= sim.world.max_queued);
    assert!(sim.live_calls() <= sim.world.trunks.len());
}

#[test]
fn stream_never_runs_dry_without_agents_or_calls() {
    for (agents, calls_per_sec) in [(0, 0.0), (0, 2.0), (3, 0.0)] {
        let mut sim = Simulator::new(SimConfig {
            agents,
            calls_per_sec,
            ..SimConfig::default()
        });
        let events: Vec<_> = (0..200).map(|_| sim.next_event()).collect();
        assert!(events.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(sim.live_calls() <= sim.world.trunks.len());
    }
}

#[test]
fn half_hour_system_event_every_thirty_minutes() {
    let mut sim = Simulator::new(SimConfig {
        calls_per_sec: 0.0,
        ..SimConfig::default()
    });
    let mut times = Vec::new();
    while times.len() < 3 {
        let (at, m) = sim.next_event();
        if let Message::SystemEvent(e) = m {
            assert_eq!(e.system_event_id, 9);
            times.push(at.as_secs());
        }
    }
    assert_eq!(times, vec![1800, 3600, 5400]);
}

#[test]
fn config_defaults_and_toml() {
    let sim = Simulator::new(SimConfig::default());
    assert_eq!(sim.peripherals(), vec![(5000, true)]);
    let c: SimConfig = toml::from_str("agents = 10\nseed = 9").unwrap();
    assert_eq!((c.agents, c.seed, c.peripheral_id), (10, 9, 5000));
    assert_eq!(c.calls_per_sec, 5.0);
}

#[test]
#[ignore]
fn throughput_events_per_second() {
    for config in [
        SimConfig::default(),
        SimConfig {
            agents: 2000,
            calls_per_sec: 50.0,
            ..SimConfig::default()
        },
    ] {
        let mut sim = Simulator::new(config.clone());
        let n = 2_000_000u64;
        let start = Instant::now();
        let mut last = Duration::ZERO;
        for _ in 0..n {
            last = sim.next_event().0;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "agents {} calls/s {}: {n} events in {secs:.3} s = {:.0} events/s ({:.0} ns/event), {:.0} simulated s, {} live calls",
            config.agents,
            config.calls_per_sec,
            n as f64 / secs,
            secs * 1e9 / n as f64,
            last.as_secs_f64(),
            sim.live_calls()
        );
    }
}
