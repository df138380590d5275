//! Unit tests of the call-party tracker.

use super::*;
use crate::keys::{AgentField, AgentKey};
use crate::proto::msg::*;
use crate::proto::{routing, Message, Version};

fn observe(t: &mut CallTracker, m: impl Into<Message>) -> Targets {
    let frame = m.into().to_frame(Version::MAX).unwrap();
    let keys = routing::extract(&frame, Version::MAX).unwrap();
    t.observe(&frame, &keys, Version::MAX, Instant::now(), true)
}

fn tracker() -> CallTracker {
    CallTracker::new(Duration::from_secs(3600))
}

fn dev(s: &str) -> DeviceKey {
    DeviceKey::device(s.as_bytes())
}

fn call() -> CallKey {
    CallKey::new(7, 1, b"T100")
}

fn delivered(alerting: &str) -> CallDeliveredEvent {
    CallDeliveredEvent {
        connection_device_id_type: 1,
        connection_call_id: 7,
        connection_device_id: Some("T100".into()),
        alerting_device_id: Some(alerting.into()),
        ..Default::default()
    }
}

fn cleared() -> CallClearedEvent {
    CallClearedEvent {
        connection_device_id_type: 1,
        connection_call_id: 7,
        connection_device_id: Some("T100".into()),
        ..Default::default()
    }
}

#[test]
fn an_event_naming_only_its_call_reaches_the_call_devices() {
    let mut t = tracker();
    observe(&mut t, delivered("3001"));
    let targets = observe(&mut t, cleared());
    assert_eq!(targets.calls.as_slice(), &[call()]);
    assert!(targets.devices.contains(&dev("3001")));
    assert_eq!(targets.ended_calls.as_slice(), &[call()]);
    assert_eq!(t.nr_calls(), 0);
}

/// With no keyed interest anywhere the targets carry calls only, but the
/// tracker learns the parties all the same: a monitor started later still
/// reaches the devices of a call already in progress.
#[test]
fn unkeyed_events_still_teach_the_tracker() {
    let mut t = tracker();
    let frame = Message::from(delivered("3001"))
        .to_frame(Version::MAX)
        .unwrap();
    let keys = routing::extract(&frame, Version::MAX).unwrap();
    let unkeyed = t.observe(&frame, &keys, Version::MAX, Instant::now(), false);
    assert_eq!(unkeyed.calls.as_slice(), &[call()]);
    assert!(unkeyed.devices.is_empty() && unkeyed.agents.is_empty());
    let targets = observe(&mut t, cleared());
    assert!(targets.devices.contains(&dev("3001")));
    assert_eq!(targets.ended_calls.as_slice(), &[call()]);
}

/// A call ends with its CALL_CLEARED_EVENT (that event included): an
/// END_CALL_EVENT after it reaches the devices it names, not the parties the
/// call had (docs/design.md §4.9 "until that call ends").
#[test]
fn end_call_after_call_cleared_names_only_its_own_devices() {
    let mut t = tracker();
    observe(&mut t, delivered("3001"));
    observe(&mut t, cleared());
    let end = observe(
        &mut t,
        EndCallEvent {
            connection_device_id_type: 1,
            connection_call_id: 7,
            connection_device_id: Some("T100".into()),
            ..Default::default()
        },
    );
    assert!(end.devices.contains(&dev("T100")));
    assert!(!end.devices.contains(&dev("3001")));
    assert_eq!(t.nr_calls(), 0);
}

#[test]
fn connection_cleared_is_the_last_event_for_the_released_device() {
    let mut t = tracker();
    observe(&mut t, delivered("3001"));
    let last = observe(
        &mut t,
        CallConnectionClearedEvent {
            connection_device_id_type: 1,
            connection_call_id: 7,
            connection_device_id: Some("T100".into()),
            releasing_device_id: Some("3001".into()),
            ..Default::default()
        },
    );
    assert!(last.devices.contains(&dev("3001")));
    let after = observe(&mut t, cleared());
    assert!(!after.devices.contains(&dev("3001")));
    assert!(after.devices.contains(&dev("T100")));
}

#[test]
fn conference_merges_the_secondary_call_into_the_primary() {
    let mut t = tracker();
    observe(&mut t, delivered("3001"));
    let consult = CallKey::new(8, 1, b"3001");
    observe(
        &mut t,
        CallEstablishedEvent {
            connection_device_id_type: 1,
            connection_call_id: 8,
            connection_device_id: Some("3001".into()),
            answering_device_id: Some("3002".into()),
            ..Default::default()
        },
    );
    let conf = observe(
        &mut t,
        CallConferencedEvent {
            primary_device_id_type: 1,
            primary_call_id: 7,
            primary_device_id: Some("T100".into()),
            secondary_device_id_type: 1,
            secondary_call_id: 8,
            secondary_device_id: Some("3001".into()),
            ..Default::default()
        },
    );
    assert_eq!(conf.merged, Some((consult, call())));
    assert!(!t.knows_call(consult));
    let later = observe(&mut t, cleared());
    assert!(
        later.devices.contains(&dev("3002")),
        "consulted agent is now a party"
    );
}

#[test]
fn call_events_of_a_known_instrument_carry_the_agent_keys() {
    let mut t = tracker();
    observe(
        &mut t,
        AgentStateEvent {
            agent_state: 3,
            agent_id: Some("1001".into()),
            agent_extension: Some("3001".into()),
            agent_instrument: Some("3001".into()),
            ..Default::default()
        },
    );
    let targets = observe(&mut t, delivered("3001"));
    assert!(targets
        .agents
        .contains(&AgentKey::new(AgentField::Id, b"1001")));
    let other = observe(&mut t, delivered("3999"));
    assert!(
        other
            .agents
            .contains(&AgentKey::new(AgentField::Id, b"1001")),
        "3001 is still in the call"
    );
}

#[test]
fn trunks_are_devices_in_decimal() {
    let mut t = tracker();
    let mut m = delivered("3001");
    m.trunk_number = Some(1234);
    m.trunk_group_number = Some(9);
    let targets = observe(&mut t, m);
    assert!(targets
        .devices
        .contains(&DeviceKey::number(DeviceKind::Trunk, 1234)));
    assert!(targets
        .devices
        .contains(&DeviceKey::new(DeviceKind::TrunkGroup, b"9")));
}

#[test]
fn calls_that_never_end_are_aged_out() {
    let mut t = CallTracker::new(Duration::from_millis(1));
    observe(&mut t, delivered("3001"));
    t.next_sweep = Instant::now();
    std::thread::sleep(Duration::from_millis(5));
    observe(&mut t, AgentStateEvent::default());
    assert_eq!(t.nr_calls(), 0);
    assert_eq!(t.take_aged_out(), 1);
    assert_eq!(t.take_aged_out(), 0, "taken once");
}

/// The call table and the device index grow a few entries per insert
/// (griddle): calls inserted, found and removed while a resize is still
/// carrying entries over are neither lost nor kept.
#[test]
fn calls_are_tracked_whole_while_the_tables_grow() {
    let mut t = tracker();
    let calls = 20_000u32;
    let call_of = |k: u32| CallKey::new(100_000 + k, 1, format!("T{k}").as_bytes());
    let event = |k: u32| CallDeliveredEvent {
        connection_device_id_type: 1,
        connection_call_id: 100_000 + k,
        connection_device_id: Some(format!("T{k}").as_str().into()),
        alerting_device_id: Some(format!("D{k}").as_str().into()),
        ..Default::default()
    };
    for k in 0..calls {
        observe(&mut t, event(k));
        // Every other call ends while the tables are still growing.
        if k % 2 == 1 {
            let end = k - 1;
            let targets = observe(
                &mut t,
                CallClearedEvent {
                    connection_device_id_type: 1,
                    connection_call_id: 100_000 + end,
                    connection_device_id: Some(format!("T{end}").as_str().into()),
                    ..Default::default()
                },
            );
            assert!(
                targets.devices.contains(&dev(&format!("D{end}"))),
                "call {end}"
            );
            assert_eq!(targets.ended_calls.as_slice(), &[call_of(end)]);
        }
    }
    assert_eq!(t.nr_calls(), calls as usize / 2);
    for k in 0..calls {
        let live = k % 2 == 1;
        assert_eq!(t.knows_call(call_of(k)), live, "call {k}");
        assert_eq!(
            t.call_has_device(call_of(k), dev(&format!("D{k}"))),
            live,
            "call {k}"
        );
    }
}
