//! Unit tests of the call snapshots: the state rules event by event,
//! merges (conference, transfer), a rename by CALL_DATA_UPDATE, a cleared
//! connection, calls the tracker saw only in part, ageing, the 16-entry
//! caps, idle agents' devices, and where the fixed fields it reads sit.

use std::time::{Duration, Instant};

use super::{fixed_u16, subject_of, MAX_SNAPSHOT_ENTRIES};
use crate::ingest::tracker::CallTracker;
use crate::keys::{CallKey, DeviceKey};
use crate::proto::constants::{agent_state, device_type, lcs, msg};
use crate::proto::group::Party;
use crate::proto::msg::*;
use crate::proto::{routing, CtiString, Message, Version};

const DYN: u16 = 1;

fn observe_at(t: &mut CallTracker, m: impl Into<Message>, now: Instant) {
    let frame = m.into().to_frame(Version::MAX).unwrap();
    let keys = routing::extract(&frame, Version::MAX).unwrap();
    t.observe(&frame, &keys, Version::MAX, now, true);
}

fn observe(t: &mut CallTracker, m: impl Into<Message>) {
    observe_at(t, m, Instant::now());
}

fn tracker() -> CallTracker {
    CallTracker::new(Duration::from_secs(3600))
}

fn s(x: &str) -> Option<CtiString> {
    Some(x.into())
}

fn dev(x: &str) -> DeviceKey {
    DeviceKey::device(x.as_bytes())
}

/// Call 7 on trunk T100 (the customer call), call 8 at 3001 (a consult).
fn customer() -> CallKey {
    CallKey::new(7, DYN, b"T100")
}

fn consult() -> CallKey {
    CallKey::new(8, DYN, b"3001")
}

fn begin(call: u32, on: &str, call_type: u16) -> BeginCallEvent {
    BeginCallEvent {
        call_type,
        connection_device_id_type: DYN,
        connection_call_id: call,
        connection_device_id: s(on),
        ani: s("5551000"),
        dnis: s("8001"),
        ..Default::default()
    }
}

fn delivered(call: u32, on: &str, alerting: &str, kind: u16, state: u16) -> CallDeliveredEvent {
    CallDeliveredEvent {
        connection_device_id_type: DYN,
        connection_call_id: call,
        alerting_device_type: kind,
        local_connection_state: state,
        connection_device_id: s(on),
        alerting_device_id: s(alerting),
        ..Default::default()
    }
}

fn established(call: u32, on: &str, answering: &str) -> CallEstablishedEvent {
    CallEstablishedEvent {
        connection_device_id_type: DYN,
        connection_call_id: call,
        answering_device_type: device_type::DEVICE_IDENTIFIER,
        local_connection_state: lcs::CONNECT,
        connection_device_id: s(on),
        answering_device_id: s(answering),
        ..Default::default()
    }
}

fn held(call: u32, on: &str, holding: &str, state: u16) -> CallHeldEvent {
    CallHeldEvent {
        connection_device_id_type: DYN,
        connection_call_id: call,
        holding_device_type: device_type::DEVICE_IDENTIFIER,
        local_connection_state: state,
        connection_device_id: s(on),
        holding_device_id: s(holding),
        ..Default::default()
    }
}

fn connection_cleared(call: u32, on: &str, releasing: &str) -> CallConnectionClearedEvent {
    CallConnectionClearedEvent {
        connection_device_id_type: DYN,
        connection_call_id: call,
        local_connection_state: lcs::NULL,
        connection_device_id: s(on),
        releasing_device_id: s(releasing),
        ..Default::default()
    }
}

fn cleared(call: u32, on: &str) -> CallClearedEvent {
    CallClearedEvent {
        connection_device_id_type: DYN,
        connection_call_id: call,
        local_connection_state: lcs::NULL,
        connection_device_id: s(on),
        ..Default::default()
    }
}

fn agent(t: &mut CallTracker, ext: &str, state: u16) {
    observe(
        t,
        AgentStateEvent {
            agent_state: state,
            agent_id: s(&format!("1{ext}")),
            agent_extension: s(ext),
            agent_instrument: s(ext),
            ..Default::default()
        },
    );
}

/// (device id, device type, state) of each party of `call`'s snapshot.
fn parties(t: &CallTracker, call: &CallKey) -> Vec<(String, u16, u16)> {
    let conf = t.snapshot_call(call).expect("the call is answered");
    assert_eq!(conf.num_call_devices as usize, conf.call_devices.len());
    conf.call_devices
        .iter()
        .map(|d| {
            (
                d.device_id.as_ref().unwrap().to_str_lossy().into_owned(),
                d.device_type.unwrap(),
                d.connection_state.unwrap(),
            )
        })
        .collect()
}

/// (ConnectionCallID, ConnectionDeviceID, state) of each call at `device`.
fn calls_at(t: &CallTracker, device: &str) -> Option<Vec<(u32, String, u16)>> {
    let conf = t.snapshot_device(&dev(device))?;
    assert_eq!(conf.num_calls as usize, conf.calls.len());
    Some(
        conf.calls
            .iter()
            .map(|c| {
                assert_eq!(c.connection_device_id_type, Some(DYN));
                assert_eq!(c.silent_monitor_status, Some(0));
                (
                    c.connection_call_id.unwrap(),
                    c.connection_device_id
                        .as_ref()
                        .unwrap()
                        .to_str_lossy()
                        .into_owned(),
                    c.call_state.unwrap(),
                )
            })
            .collect(),
    )
}

fn p(id: &str, kind: u16, state: u16) -> (String, u16, u16) {
    (id.to_owned(), kind, state)
}

const TRUNK: u16 = device_type::TRUNK;
const PHONE: u16 = device_type::DEVICE_IDENTIFIER;

/// Customer call 7 answered at 3001, the trunk connected.
fn answered_call(t: &mut CallTracker) {
    observe(t, begin(7, "T100", 2));
    observe(t, delivered(7, "T100", "T100", TRUNK, lcs::INITIATE));
    observe(t, delivered(7, "T100", "3001", PHONE, lcs::ALERTING));
    observe(t, established(7, "T100", "3001"));
    observe(
        t,
        CallDequeuedEvent {
            connection_device_id_type: DYN,
            connection_call_id: 7,
            local_connection_state: lcs::CONNECT,
            connection_device_id: s("T100"),
            ..Default::default()
        },
    );
}

#[test]
fn each_connection_has_the_state_the_last_event_naming_it_left() {
    let mut t = tracker();
    observe(&mut t, begin(7, "T100", 2));
    assert_eq!(
        parties(&t, &customer()),
        [],
        "BEGIN_CALL names no connection"
    );
    observe(&mut t, delivered(7, "T100", "T100", TRUNK, lcs::INITIATE));
    assert_eq!(parties(&t, &customer()), [p("T100", TRUNK, lcs::INITIATE)]);
    observe(
        &mut t,
        CallQueuedEvent {
            connection_device_id_type: DYN,
            connection_call_id: 7,
            queue_device_type: device_type::NONE,
            local_connection_state: lcs::QUEUED,
            connection_device_id: s("T100"),
            ..Default::default()
        },
    );
    assert_eq!(
        parties(&t, &customer()),
        [p("T100", TRUNK, lcs::QUEUED)],
        "the connection device is queued; its type is kept"
    );
    observe(
        &mut t,
        CallDequeuedEvent {
            connection_device_id_type: DYN,
            connection_call_id: 7,
            local_connection_state: lcs::CONNECT,
            connection_device_id: s("T100"),
            ..Default::default()
        },
    );
    observe(&mut t, delivered(7, "T100", "3001", PHONE, lcs::ALERTING));
    assert_eq!(
        parties(&t, &customer()),
        [
            p("T100", TRUNK, lcs::CONNECT),
            p("3001", PHONE, lcs::ALERTING)
        ]
    );
    observe(&mut t, established(7, "T100", "3001"));
    assert_eq!(
        calls_at(&t, "3001").unwrap(),
        [(7, "T100".into(), lcs::CONNECT)]
    );
    // No valid LocalConnectionState: the event's own rule (held → HOLD).
    observe(&mut t, held(7, "T100", "3001", lcs::NONE));
    assert_eq!(
        calls_at(&t, "3001").unwrap(),
        [(7, "T100".into(), lcs::HOLD)]
    );
    observe(
        &mut t,
        CallRetrievedEvent {
            connection_device_id_type: DYN,
            connection_call_id: 7,
            retrieving_device_type: PHONE,
            local_connection_state: lcs::CONNECT,
            connection_device_id: s("T100"),
            retrieving_device_id: s("3001"),
            ..Default::default()
        },
    );
    assert_eq!(
        parties(&t, &customer()),
        [
            p("T100", TRUNK, lcs::CONNECT),
            p("3001", PHONE, lcs::CONNECT)
        ]
    );
    let conf = t.snapshot_call(&customer()).unwrap();
    assert_eq!(conf.invoke_id, 0, "the caller sets it");
    assert_eq!(
        (conf.call_type, conf.ani.clone(), conf.dnis.clone()),
        (2, s("5551000"), s("8001"))
    );
    for d in &conf.call_devices {
        assert_eq!(
            (
                d.connection_call_id,
                d.connection_device_id_type,
                &d.connection_device_id
            ),
            (Some(7), Some(DYN), &s("T100")),
        );
    }
    for version in Version::all() {
        let frame = Message::from(conf.clone()).to_frame(version).unwrap();
        let (back, _) =
            crate::proto::decode_frame(&frame, version, crate::proto::DecodeOptions::STRICT)
                .unwrap();
        assert_eq!(back.message_type(), msg::SNAPSHOT_CALL_CONF);
    }
}

#[test]
fn a_placed_call_connects_its_caller_and_reaches_the_network() {
    let mut t = tracker();
    observe(&mut t, begin(9, "3001", 8));
    observe(
        &mut t,
        CallServiceInitiatedEvent {
            connection_device_id_type: DYN,
            connection_call_id: 9,
            calling_device_type: PHONE,
            local_connection_state: lcs::INITIATE,
            connection_device_id: s("3001"),
            calling_device_id: s("3001"),
            ..Default::default()
        },
    );
    let call = CallKey::new(9, DYN, b"3001");
    assert_eq!(parties(&t, &call), [p("3001", PHONE, lcs::INITIATE)]);
    observe(
        &mut t,
        CallOriginatedEvent {
            connection_device_id_type: DYN,
            connection_call_id: 9,
            calling_device_type: PHONE,
            called_device_type: TRUNK,
            local_connection_state: lcs::CONNECT,
            connection_device_id: s("3001"),
            calling_device_id: s("3001"),
            called_device_id: s("5551234"),
            ..Default::default()
        },
    );
    assert_eq!(
        parties(&t, &call),
        [p("3001", PHONE, lcs::CONNECT)],
        "the called device has no connection yet"
    );
    observe(
        &mut t,
        CallReachedNetworkEvent {
            connection_device_id_type: DYN,
            connection_call_id: 9,
            trunk_used_device_type: TRUNK,
            called_device_type: device_type::EXTERNAL,
            local_connection_state: lcs::CONNECT,
            connection_device_id: s("3001"),
            called_device_id: s("5551234"),
            ..Default::default()
        },
    );
    assert_eq!(
        parties(&t, &call),
        [
            p("3001", PHONE, lcs::CONNECT),
            p("5551234", device_type::EXTERNAL, lcs::CONNECT)
        ],
        "no trunk used: the called device, with its type"
    );
    observe(
        &mut t,
        CallFailedEvent {
            connection_device_id_type: DYN,
            connection_call_id: 9,
            failing_device_type: device_type::EXTERNAL,
            local_connection_state: lcs::FAIL,
            connection_device_id: s("3001"),
            failing_device_id: s("5551234"),
            ..Default::default()
        },
    );
    assert_eq!(
        calls_at(&t, "5551234").unwrap(),
        [(9, "3001".into(), lcs::FAIL)]
    );
}

#[test]
fn a_cleared_connection_leaves_the_call_and_the_device_index() {
    let mut t = tracker();
    answered_call(&mut t);
    observe(&mut t, connection_cleared(7, "T100", "3001"));
    assert_eq!(parties(&t, &customer()), [p("T100", TRUNK, lcs::CONNECT)]);
    assert_eq!(calls_at(&t, "3001"), None, "in no call, not an agent's");
    agent(&mut t, "3001", agent_state::WORK_READY);
    assert_eq!(calls_at(&t, "3001").unwrap(), [], "an agent in wrap-up");
    assert_eq!(
        calls_at(&t, "T100").unwrap(),
        [(7, "T100".into(), lcs::CONNECT)]
    );
    // Without a releasing device, the connection device leaves.
    observe(
        &mut t,
        CallConnectionClearedEvent {
            connection_device_id_type: DYN,
            connection_call_id: 7,
            local_connection_state: lcs::NULL,
            connection_device_id: s("T100"),
            ..Default::default()
        },
    );
    assert_eq!(parties(&t, &customer()), []);
    assert_eq!(calls_at(&t, "T100"), None);
    observe(&mut t, cleared(7, "T100"));
    assert!(t.snapshot_call(&customer()).is_none(), "ended: proxied");
    assert!(t.by_device.is_empty());
}

#[test]
fn a_call_that_ends_leaves_no_party_behind() {
    let mut t = tracker();
    answered_call(&mut t);
    observe(
        &mut t,
        EndCallEvent {
            connection_device_id_type: DYN,
            connection_call_id: 7,
            connection_device_id: s("T100"),
            ..Default::default()
        },
    );
    assert!(t.snapshot_call(&customer()).is_none());
    assert_eq!(calls_at(&t, "3001"), None);
    assert!(t.by_device.is_empty());
}

#[test]
fn a_diverted_call_leaves_the_diverting_device() {
    let mut t = tracker();
    observe(&mut t, begin(7, "T100", 2));
    observe(&mut t, delivered(7, "T100", "3001", PHONE, lcs::ALERTING));
    observe(
        &mut t,
        CallDivertedEvent {
            connection_device_id_type: DYN,
            connection_call_id: 7,
            diverting_device_type: PHONE,
            called_device_type: PHONE,
            local_connection_state: lcs::NONE,
            connection_device_id: s("T100"),
            diverting_device_id: s("3001"),
            called_device_id: s("3002"),
            ..Default::default()
        },
    );
    observe(&mut t, delivered(7, "T100", "3002", PHONE, lcs::ALERTING));
    assert_eq!(parties(&t, &customer()), [p("3002", PHONE, lcs::ALERTING)]);
    assert_eq!(calls_at(&t, "3001"), None);
}

/// Customer call 7 held at 3001, consult call 8 from 3001 answered at 3002.
fn consulting(t: &mut CallTracker) {
    answered_call(t);
    observe(t, held(7, "T100", "3001", lcs::HOLD));
    observe(t, begin(8, "3001", 12));
    observe(
        t,
        CallServiceInitiatedEvent {
            connection_device_id_type: DYN,
            connection_call_id: 8,
            calling_device_type: PHONE,
            local_connection_state: lcs::INITIATE,
            connection_device_id: s("3001"),
            calling_device_id: s("3001"),
            ..Default::default()
        },
    );
    observe(t, delivered(8, "3001", "3002", PHONE, lcs::ALERTING));
    observe(t, established(8, "3001", "3002"));
    assert_eq!(
        calls_at(t, "3001").unwrap(),
        [
            (7, "T100".into(), lcs::HOLD),
            (8, "3001".into(), lcs::INITIATE)
        ],
        "one entry per call, in the order joined"
    );
    assert_eq!(
        parties(t, &consult()),
        [
            p("3001", PHONE, lcs::INITIATE),
            p("3002", PHONE, lcs::CONNECT)
        ]
    );
}

fn parties_of(call: u32, devs: &[&str]) -> Vec<Party> {
    devs.iter()
        .map(|d| Party {
            call_id: Some(call),
            device_id_type: Some(DYN),
            device_id: s(d),
        })
        .collect()
}

#[test]
fn a_conference_merges_the_consult_call_into_the_customer_call() {
    let mut t = tracker();
    consulting(&mut t);
    let mut conf = CallConferencedEvent {
        primary_device_id_type: DYN,
        primary_call_id: 7,
        secondary_device_id_type: DYN,
        secondary_call_id: 8,
        controller_device_type: PHONE,
        added_party_device_type: PHONE,
        local_connection_state: lcs::CONNECT,
        primary_device_id: s("T100"),
        secondary_device_id: s("3001"),
        controller_device_id: s("3001"),
        added_party_device_id: s("3002"),
        parties: parties_of(7, &["T100", "3001", "3002"]),
        ..Default::default()
    };
    conf.num_parties = conf.parties.len() as u16;
    observe(&mut t, conf);
    assert_eq!(
        parties(&t, &customer()),
        [
            p("T100", TRUNK, lcs::CONNECT),
            p("3001", PHONE, lcs::CONNECT),
            p("3002", PHONE, lcs::CONNECT)
        ],
        "the held controller is connected; one connection per device"
    );
    assert!(t.snapshot_call(&consult()).is_none(), "merged away");
    assert_eq!(
        calls_at(&t, "3001").unwrap(),
        [(7, "T100".into(), lcs::CONNECT)]
    );
    assert_eq!(
        calls_at(&t, "3002").unwrap(),
        [(7, "T100".into(), lcs::CONNECT)]
    );
    // The consult call's own end changes nothing of the customer call.
    observe(&mut t, cleared(8, "3001"));
    assert_eq!(parties(&t, &customer()).len(), 3);
    assert_eq!(calls_at(&t, "3002").unwrap().len(), 1);
}

#[test]
fn a_transfer_moves_the_consulted_party_and_drops_the_transferring_one() {
    let mut t = tracker();
    consulting(&mut t);
    let mut xfer = CallTransferredEvent {
        primary_device_id_type: DYN,
        primary_call_id: 7,
        secondary_device_id_type: DYN,
        secondary_call_id: 8,
        transferring_device_type: PHONE,
        transferred_device_type: PHONE,
        local_connection_state: lcs::CONNECT,
        primary_device_id: s("T100"),
        secondary_device_id: s("3001"),
        transferring_device_id: s("3001"),
        transferred_device_id: s("3002"),
        parties: parties_of(7, &["T100", "3002"]),
        ..Default::default()
    };
    xfer.num_parties = xfer.parties.len() as u16;
    observe(&mut t, xfer);
    assert_eq!(
        parties(&t, &customer()),
        [
            p("T100", TRUNK, lcs::CONNECT),
            p("3002", PHONE, lcs::CONNECT)
        ]
    );
    assert_eq!(calls_at(&t, "3001"), None);
    assert_eq!(
        calls_at(&t, "3002").unwrap(),
        [(7, "T100".into(), lcs::CONNECT)]
    );
    assert!(t.snapshot_call(&consult()).is_none());
}

#[test]
fn a_call_data_update_renames_the_call_with_its_parties() {
    let mut t = tracker();
    answered_call(&mut t);
    observe(
        &mut t,
        CallDataUpdateEvent {
            call_type: 0xFFFF,
            connection_device_id_type: DYN,
            connection_call_id: 7,
            new_connection_device_id_type: DYN,
            new_connection_call_id: 9,
            connection_device_id: s("T100"),
            new_connection_device_id: s("T200"),
            call_variable_1: s("acct"),
            ..Default::default()
        },
    );
    let renamed = CallKey::new(9, DYN, b"T200");
    assert!(
        t.snapshot_call(&customer()).is_none(),
        "the old name is gone"
    );
    let conf = t
        .snapshot_call(&renamed)
        .expect("answered under its new name");
    assert_eq!(conf.call_type, 2, "NULL_CALLTYPE keeps the call type");
    assert_eq!(
        (conf.ani.clone(), conf.call_variable_1.clone()),
        (s("5551000"), s("acct"))
    );
    assert!(conf
        .call_devices
        .iter()
        .all(|d| d.connection_call_id == Some(9) && d.connection_device_id == s("T200")));
    assert_eq!(
        parties(&t, &renamed),
        [
            p("T100", TRUNK, lcs::CONNECT),
            p("3001", PHONE, lcs::CONNECT)
        ]
    );
    assert_eq!(
        calls_at(&t, "3001").unwrap(),
        [(9, "T200".into(), lcs::CONNECT)]
    );
    observe(&mut t, connection_cleared(9, "T200", "3001"));
    assert_eq!(calls_at(&t, "3001"), None);
}

#[test]
fn calls_seen_only_in_part_are_proxied() {
    let mut t = tracker();
    agent(&mut t, "3001", agent_state::AVAILABLE);
    // First seen mid-way: what came before is unknown.
    observe(&mut t, delivered(7, "T100", "3001", PHONE, lcs::ALERTING));
    assert!(t.snapshot_call(&customer()).is_none());
    assert_eq!(calls_at(&t, "3001"), None, "one of its calls is unknown");
    // A conference with such a call spoils the call it merges into.
    observe(&mut t, begin(8, "3002", 2));
    observe(&mut t, established(8, "3002", "3002"));
    assert!(t.snapshot_call(&CallKey::new(8, DYN, b"3002")).is_some());
    observe(
        &mut t,
        CallConferencedEvent {
            primary_device_id_type: DYN,
            primary_call_id: 8,
            secondary_device_id_type: DYN,
            secondary_call_id: 7,
            local_connection_state: lcs::CONNECT,
            primary_device_id: s("3002"),
            secondary_device_id: s("T100"),
            ..Default::default()
        },
    );
    assert!(t.snapshot_call(&CallKey::new(8, DYN, b"3002")).is_none());
    // So does a conference listing a party the tracker never saw join.
    observe(&mut t, begin(10, "3003", 2));
    observe(&mut t, established(10, "3003", "3003"));
    let mut conf = CallConferencedEvent {
        primary_device_id_type: DYN,
        primary_call_id: 10,
        secondary_device_id_type: DYN,
        secondary_call_id: 0xFFFF_FFFF,
        local_connection_state: lcs::CONNECT,
        primary_device_id: s("3003"),
        parties: parties_of(10, &["3003", "3004"]),
        ..Default::default()
    };
    conf.num_parties = 2;
    observe(&mut t, conf);
    assert!(t.snapshot_call(&CallKey::new(10, DYN, b"3003")).is_none());
    assert_eq!(calls_at(&t, "3004"), None);
}

#[test]
fn aged_out_calls_leave_the_device_index() {
    let mut t = CallTracker::new(Duration::from_secs(60));
    let start = Instant::now();
    observe_at(&mut t, begin(7, "T100", 2), start);
    observe_at(&mut t, established(7, "T100", "3001"), start);
    observe_at(&mut t, begin(8, "T101", 2), start + Duration::from_secs(50));
    observe_at(
        &mut t,
        established(8, "T101", "3001"),
        start + Duration::from_secs(50),
    );
    assert_eq!(calls_at(&t, "3001").unwrap().len(), 2);
    t.next_sweep = start;
    observe_at(
        &mut t,
        AgentStateEvent::default(),
        start + Duration::from_secs(61),
    );
    assert_eq!(t.take_aged_out(), 1);
    assert!(t.snapshot_call(&customer()).is_none());
    assert_eq!(
        calls_at(&t, "3001").unwrap(),
        [(8, "T101".into(), lcs::CONNECT)]
    );
    t.next_sweep = start;
    observe_at(
        &mut t,
        AgentStateEvent::default(),
        start + Duration::from_secs(200),
    );
    assert_eq!(calls_at(&t, "3001"), None);
    assert!(t.by_device.is_empty());
}

#[test]
fn at_most_16_parties_and_16_calls_are_answered() {
    let mut t = tracker();
    observe(&mut t, begin(7, "T100", 2));
    for n in 0..MAX_SNAPSHOT_ENTRIES {
        observe(&mut t, established(7, "T100", &format!("{}", 4000 + n)));
    }
    assert_eq!(parties(&t, &customer()).len(), MAX_SNAPSHOT_ENTRIES);
    observe(&mut t, established(7, "T100", "4999"));
    assert!(
        t.snapshot_call(&customer()).is_none(),
        "17 parties: which 16 the CTI Server lists is not known"
    );
    assert_eq!(
        calls_at(&t, "4999").unwrap().len(),
        1,
        "its devices still are"
    );
    observe(&mut t, connection_cleared(7, "T100", "4000"));
    assert_eq!(parties(&t, &customer()).len(), MAX_SNAPSHOT_ENTRIES);

    for n in 0..MAX_SNAPSHOT_ENTRIES as u32 {
        observe(&mut t, begin(100 + n, "T1", 2));
        observe(&mut t, established(100 + n, "T1", "3001"));
    }
    assert_eq!(calls_at(&t, "3001").unwrap().len(), MAX_SNAPSHOT_ENTRIES);
    observe(&mut t, begin(200, "T1", 2));
    observe(&mut t, established(200, "T1", "3001"));
    assert_eq!(calls_at(&t, "3001"), None, "17 calls: proxied");
    observe(&mut t, cleared(100, "T1"));
    let calls = calls_at(&t, "3001").unwrap();
    assert_eq!(calls.len(), MAX_SNAPSHOT_ENTRIES);
    assert_eq!((calls[0].0, calls[15].0), (101, 200), "in the order joined");
}

#[test]
fn an_idle_agent_device_has_no_calls_and_an_unknown_device_is_proxied() {
    let mut t = tracker();
    assert_eq!(calls_at(&t, "3001"), None, "nothing known of it");
    agent(&mut t, "3001", agent_state::AVAILABLE);
    let conf = t.snapshot_device(&dev("3001")).unwrap();
    assert_eq!(
        (conf.invoke_id, conf.num_calls, conf.calls.len()),
        (0, 0, 0)
    );
    // Talking, but on no call the tracker knows: it missed the call.
    agent(&mut t, "3001", agent_state::TALKING);
    assert_eq!(calls_at(&t, "3001"), None);
    agent(&mut t, "3001", agent_state::NOT_READY);
    assert_eq!(calls_at(&t, "3001").unwrap(), []);
    // Upstream lost: the agent's state may have changed unseen.
    t.clear_calls();
    assert_eq!(calls_at(&t, "3001"), None);
    agent(&mut t, "3001", agent_state::AVAILABLE);
    assert_eq!(calls_at(&t, "3001").unwrap(), []);
    assert_eq!(calls_at(&t, "3999"), None);
}

#[test]
fn clear_calls_forgets_every_snapshot() {
    let mut t = tracker();
    answered_call(&mut t);
    t.clear_calls();
    assert!(t.snapshot_call(&customer()).is_none());
    assert!(t.by_device.is_empty());
}

/// The fixed-part offsets the snapshot reads are where the codec writes
/// LocalConnectionState and the subject's DeviceType, at every version.
#[test]
fn the_fields_read_sit_where_the_codec_puts_them() {
    const STATE: u16 = 0x0102;
    const KIND: u16 = 0x0304;
    let messages: Vec<Message> = vec![
        CallDeliveredEvent {
            alerting_device_type: KIND,
            local_connection_state: STATE,
            ..Default::default()
        }
        .into(),
        CallEstablishedEvent {
            answering_device_type: KIND,
            local_connection_state: STATE,
            ..Default::default()
        }
        .into(),
        CallHeldEvent {
            holding_device_type: KIND,
            local_connection_state: STATE,
            ..Default::default()
        }
        .into(),
        CallRetrievedEvent {
            retrieving_device_type: KIND,
            local_connection_state: STATE,
            ..Default::default()
        }
        .into(),
        CallOriginatedEvent {
            calling_device_type: KIND,
            local_connection_state: STATE,
            ..Default::default()
        }
        .into(),
        CallFailedEvent {
            failing_device_type: KIND,
            local_connection_state: STATE,
            ..Default::default()
        }
        .into(),
        CallServiceInitiatedEvent {
            calling_device_type: KIND,
            local_connection_state: STATE,
            ..Default::default()
        }
        .into(),
        CallReachedNetworkEvent {
            trunk_used_device_type: KIND,
            called_device_type: KIND,
            local_connection_state: STATE,
            ..Default::default()
        }
        .into(),
        CallQueuedEvent {
            local_connection_state: STATE,
            ..Default::default()
        }
        .into(),
        CallDequeuedEvent {
            local_connection_state: STATE,
            ..Default::default()
        }
        .into(),
        CallDivertedEvent {
            diverting_device_type: KIND,
            local_connection_state: STATE,
            ..Default::default()
        }
        .into(),
    ];
    for m in messages {
        let subject = subject_of(m.message_type()).expect("a subject");
        for version in Version::all() {
            let frame = m.to_frame(version).unwrap();
            assert_eq!(fixed_u16(&frame, subject.lcs_at), Some(STATE), "{m:?}");
            for &(_, type_at) in subject.fields {
                assert_eq!(fixed_u16(&frame, type_at), Some(KIND), "{m:?}");
            }
        }
    }
    let conf = CallConferencedEvent {
        controller_device_type: KIND,
        added_party_device_type: KIND,
        local_connection_state: STATE,
        ..Default::default()
    };
    let xfer = CallTransferredEvent {
        transferred_device_type: KIND,
        local_connection_state: STATE,
        ..Default::default()
    };
    for version in Version::all() {
        let frame = Message::from(conf.clone()).to_frame(version).unwrap();
        assert_eq!(
            [
                fixed_u16(&frame, 38),
                fixed_u16(&frame, 40),
                fixed_u16(&frame, 42)
            ],
            [Some(KIND), Some(KIND), Some(STATE)]
        );
        let frame = Message::from(xfer.clone()).to_frame(version).unwrap();
        assert_eq!(
            [fixed_u16(&frame, 40), fixed_u16(&frame, 42)],
            [Some(KIND), Some(STATE)]
        );
    }
}
