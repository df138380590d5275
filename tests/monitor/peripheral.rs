//! Black-box tests of the Peripheral Monitor service (docs/design.md §4.9) over
//! loopback: the router in-process with a scripted fake PG as its upstream,
//! so each test writes the exact event stream. Sessions are Peripheral
//! Monitor only unless a test says otherwise — with no All Events session
//! anywhere, events reach a shard only through the interest table — and
//! several sessions are opened so both shards serve some of them.
//! Synchronisation is by marker events every session's sync monitor matches
//! (rings and sockets keep order), never by sleeping.

use std::collections::HashSet;

use ctirouter::proto::constants::{device_type, msg, service, status};
use ctirouter::proto::msg::CallDataUpdateEvent;
use ctirouter::proto::Message;
use testkit::*;

const DEV: u16 = device_type::DEVICE_IDENTIFIER;

/// The (type, MonitorID) shape of each session's events.
fn all_shapes(events: &[Vec<Vec<u8>>]) -> Vec<Vec<(String, u32)>> {
    events.iter().map(|e| shapes(e)).collect()
}

/// A device monitor gets the events naming its device, and every later
/// event of a call the device takes part in, until the device's connection
/// clears (that event included) or the call ends (CALL_CLEARED included);
/// nothing of other calls; each copy carries its MonitorID.
#[test]
fn device_monitor_follows_its_calls_until_its_connection_clears_or_the_call_ends() {
    let mut h = Harness::new();
    let mut clis = h.pm_sessions(4);
    let ids: Vec<u32> = clis
        .iter_mut()
        .map(|c| {
            c.monitor_device(DEV, "3001", ALL_CALLS, ALL_AGENTS)
                .unwrap()
        })
        .collect();
    let (a, b, c) = (
        call(0x0100_0001, "T1"),
        call(0x0100_0002, "T2"),
        call(0x0100_0003, "T3"),
    );

    // Call a: 3001 is not in it yet.
    h.send(delivered(a, "T1", "5551000", "8001", Some((1, 200))));
    h.send(CallDataUpdateEvent {
        ani: Some("5551000".into()),
        call_variable_1: Some("acct-1".into()),
        ..data_update(a)
    });
    // 3001 is offered the call: from here on it takes part.
    h.send(delivered(a, "3001", "5551000", "3001", None));
    h.send(established(a, "3001", "5551000"));
    // Events naming only the call.
    h.send(held(a, None));
    h.send(retrieved(a, None));
    // Another call, not involving 3001.
    h.send(delivered(b, "T2", "5552000", "8001", Some((2, 200))));
    h.send(established(b, "3002", "5552000"));
    // 3001 leaves call a: that event is its last one of a.
    h.send(conn_cleared(a, Some("3001")));
    h.send(conn_cleared(a, Some("T1")));
    h.send(cleared(a));
    h.send(end_call(a));
    // Call c: 3001 stays until the call ends; CALL_CLEARED is the last copy.
    h.send(delivered(c, "3001", "5553000", "3001", None));
    h.send(held(c, None));
    h.send(cleared(c));
    h.send(end_call(c));
    h.send(held(b, None));
    let mut refs: Vec<&mut Client> = clis.iter_mut().collect();
    let got = h.sync(&mut refs);
    for (k, events) in all_shapes(&got).into_iter().enumerate() {
        let m = ids[k];
        assert_eq!(
            events,
            vec![
                // Each call is bracketed (docs/call-brackets.md).
                shape(msg::BEGIN_CALL_EVENT, m),
                shape(msg::CALL_DELIVERED_EVENT, m),
                shape(msg::CALL_ESTABLISHED_EVENT, m),
                shape(msg::CALL_HELD_EVENT, m),
                shape(msg::CALL_RETRIEVED_EVENT, m),
                shape(msg::CALL_CONNECTION_CLEARED_EVENT, m),
                shape(msg::END_CALL_EVENT, m),
                shape(msg::BEGIN_CALL_EVENT, m),
                shape(msg::CALL_DELIVERED_EVENT, m),
                shape(msg::CALL_HELD_EVENT, m),
                shape(msg::CALL_CLEARED_EVENT, m),
                shape(msg::END_CALL_EVENT, m),
            ],
            "session {k} (monitor {m})"
        );
        // The copies are the events with the MonitorID patched in: the
        // CALL_RETRIEVED copy is byte for byte the event but for it.
        let mut expected = Message::from(retrieved(a, None)).to_frame(v24()).unwrap();
        expected[8..12].copy_from_slice(&m.to_be_bytes());
        assert_eq!(got[k][4], expected, "session {k}: CALL_RETRIEVED copy");
        // The built BEGIN_CALL carries what the upstream said before 3001
        // joined: the call data update's ANI and call variable.
        let Message::BeginCallEvent(begin) = decode(&got[k][0]) else {
            panic!("session {k}: not a BEGIN_CALL first");
        };
        assert_eq!(begin.connection_call_id, a.id);
        assert_eq!(begin.ani, Some("5551000".into()));
        assert_eq!(begin.call_variable_1, Some("acct-1".into()));
    }
}

/// A device monitor also matches the agent fields of AGENT_STATE_EVENTs
/// (AgentInstrument / AgentExtension / AgentID name devices), and the
/// connection device of a call (its ConnectionDeviceID) takes part in it.
#[test]
fn device_monitor_matches_agent_fields_and_connection_devices() {
    let mut h = Harness::new();
    let mut clis = h.pm_sessions(3);
    let by_instrument = clis[0]
        .monitor_device(DEV, "3001", ALL_CALLS, ALL_AGENTS)
        .unwrap();
    let by_agent_id = clis[1]
        .monitor_device(device_type::AGENT_DEVICE, "1001", ALL_CALLS, ALL_AGENTS)
        .unwrap();
    let by_trunk_dev = clis[2]
        .monitor_device(DEV, "T7", ALL_CALLS, ALL_AGENTS)
        .unwrap();
    let a = call(0x0100_0007, "T7");
    h.send(agent_ev("1001", "3001", 3)); // AVAILABLE
    h.send(agent_ev("1002", "3002", 3));
    h.send(delivered(a, "T7", "5557000", "8001", None));
    h.send(cleared(a));
    let mut refs: Vec<&mut Client> = clis.iter_mut().collect();
    let got = all_shapes(&h.sync(&mut refs));
    assert_eq!(got[0], vec![shape(msg::AGENT_STATE_EVENT, by_instrument)]);
    assert_eq!(got[1], vec![shape(msg::AGENT_STATE_EVENT, by_agent_id)]);
    assert_eq!(
        got[2],
        vec![
            shape(msg::BEGIN_CALL_EVENT, by_trunk_dev),
            shape(msg::CALL_DELIVERED_EVENT, by_trunk_dev),
            shape(msg::CALL_CLEARED_EVENT, by_trunk_dev),
            shape(msg::END_CALL_EVENT, by_trunk_dev),
        ]
    );
}

/// Trunk (70) and trunk group (71) monitors match TrunkNumber and
/// TrunkGroupNumber written in decimal — "012" is not trunk 12 — and the
/// trunk then takes part in the call until it ends.
#[test]
fn trunk_and_trunk_group_monitors_match_numbers_in_decimal() {
    let mut h = Harness::new();
    let mut clis = h.pm_sessions(4);
    let trunk = clis[0]
        .monitor_device(device_type::TRUNK, "12", ALL_CALLS, ALL_AGENTS)
        .unwrap();
    let group = clis[1]
        .monitor_device(device_type::TRUNK_GROUP, "200", ALL_CALLS, ALL_AGENTS)
        .unwrap();
    clis[2]
        .monitor_device(device_type::TRUNK, "012", ALL_CALLS, ALL_AGENTS)
        .unwrap();
    // A device (type 0) named "12" is not trunk 12.
    clis[3]
        .monitor_device(DEV, "12", ALL_CALLS, ALL_AGENTS)
        .unwrap();
    let a = call(0x0100_0012, "T12");
    h.send(delivered(a, "T12", "5551200", "8001", Some((12, 200))));
    h.send(established(a, "3001", "5551200"));
    h.send(conn_cleared(a, Some("T12")));
    h.send(cleared(a));
    h.send(end_call(a));
    let mut refs: Vec<&mut Client> = clis.iter_mut().collect();
    let got = all_shapes(&h.sync(&mut refs));
    for (k, m) in [(0, trunk), (1, group)] {
        assert_eq!(
            got[k],
            vec![
                shape(msg::BEGIN_CALL_EVENT, m),
                shape(msg::CALL_DELIVERED_EVENT, m),
                shape(msg::CALL_ESTABLISHED_EVENT, m),
                // The trunk's number is not a device id: its connection
                // clearing ("T12") does not remove trunk 12 from the call.
                shape(msg::CALL_CONNECTION_CLEARED_EVENT, m),
                shape(msg::CALL_CLEARED_EVENT, m),
                shape(msg::END_CALL_EVENT, m),
            ],
            "session {k}"
        );
    }
    assert_eq!(got[2], vec![], "\"012\" is not trunk 12");
    assert_eq!(got[3], vec![], "device \"12\" is not trunk 12");
}

/// A call monitor gets its call's events, including CALL_TRANSFERRED where
/// its call is the Primary; one on the consult call gets the transfer as
/// the Secondary and then follows the merged call; both end after the
/// call's CALL_CLEARED (no copies after it), and MONITOR_STOP of an ended
/// monitor is 55.
#[test]
fn call_monitors_follow_transfer_and_end_after_call_cleared() {
    let mut h = Harness::new();
    let mut clis = h.pm_sessions(4);
    let a = call(0x0100_0021, "T21");
    let consult = call(0x0100_0022, "3001");
    h.send(delivered(a, "T21", "5552100", "8001", Some((21, 200))));
    h.send(established(a, "3001", "5552100"));
    h.sync(&mut clis.iter_mut().collect::<Vec<_>>());
    let on_a: Vec<u32> = clis[..2]
        .iter_mut()
        .map(|c| c.monitor_call(a, ALL_CALLS, ALL_AGENTS).unwrap())
        .collect();
    h.send(held(a, Some("3001")));
    h.send(service_initiated(consult, "3001"));
    let got = all_shapes(&h.sync(&mut clis.iter_mut().collect::<Vec<_>>()));
    for (k, &m) in on_a.iter().enumerate() {
        assert_eq!(got[k], vec![shape(msg::CALL_HELD_EVENT, m)], "session {k}");
    }
    assert_eq!(got[2..], [vec![], vec![]]);
    let on_consult: Vec<u32> = clis[2..]
        .iter_mut()
        .map(|c| c.monitor_call(consult, ALL_CALLS, ALL_AGENTS).unwrap())
        .collect();
    h.send(established(consult, "3002", "3001"));
    h.send(transferred(a, consult, "3001", "3002", &["T21", "3002"]));
    h.send(cleared(consult));
    h.send(end_call(consult));
    h.send(data_update(a));
    h.send(conn_cleared(a, Some("3002")));
    h.send(cleared(a));
    h.send(end_call(a));
    // Calls with the same ids later: nothing for the ended monitors.
    h.send(delivered(a, "T21", "5552100", "8001", None));
    h.send(cleared(a));
    let got = all_shapes(&h.sync(&mut clis.iter_mut().collect::<Vec<_>>()));
    for (k, &m) in on_a.iter().enumerate() {
        assert_eq!(
            got[k],
            vec![
                shape(msg::CALL_TRANSFERRED_EVENT, m),
                shape(msg::CALL_DATA_UPDATE_EVENT, m),
                shape(msg::CALL_CONNECTION_CLEARED_EVENT, m),
                shape(msg::CALL_CLEARED_EVENT, m),
            ],
            "call monitor on the primary call (session {k})"
        );
    }
    for (k, &m) in on_consult.iter().enumerate() {
        assert_eq!(
            got[k + 2],
            vec![
                shape(msg::CALL_ESTABLISHED_EVENT, m),
                shape(msg::CALL_TRANSFERRED_EVENT, m),
                // Merged into the primary: its events from here on; the
                // consult call's own CLEARED/END_CALL (the call is gone)
                // are not its call any more.
                shape(msg::CALL_DATA_UPDATE_EVENT, m),
                shape(msg::CALL_CONNECTION_CLEARED_EVENT, m),
                shape(msg::CALL_CLEARED_EVENT, m),
            ],
            "call monitor on the consult call (session {})",
            k + 2
        );
    }
    for (k, c) in clis.iter_mut().enumerate() {
        let m = if k < 2 { on_a[k] } else { on_consult[k - 2] };
        assert_eq!(
            c.monitor_stop(m),
            Err(status::E_CTI_INVALID_MONITORID),
            "the call monitor ended with its call"
        );
        assert_eq!(
            c.change_mask(m, 0, 0),
            Err(status::E_CTI_INVALID_MONITORID),
            "the call monitor ended with its call"
        );
    }
}

/// Conference: a call monitor on the Primary and one on the Secondary both
/// get CALL_CONFERENCED; the secondary's monitor follows the merge. A call
/// monitor on a call that ends with END_CALL_EVENT alone ends after it.
#[test]
fn call_monitors_follow_conference_and_end_after_end_call() {
    let mut h = Harness::new();
    let mut clis = h.pm_sessions(3);
    let a = call(0x0100_0031, "T31");
    let consult = call(0x0100_0032, "3001");
    let e = call(0x0100_0033, "T33");
    h.send(delivered(a, "T31", "5553100", "8001", None));
    h.send(established(a, "3001", "5553100"));
    h.send(held(a, Some("3001")));
    h.send(service_initiated(consult, "3001"));
    h.send(delivered(e, "T33", "5553300", "8002", None));
    h.sync(&mut clis.iter_mut().collect::<Vec<_>>());
    let primary = clis[0].monitor_call(a, ALL_CALLS, ALL_AGENTS).unwrap();
    let secondary = clis[1]
        .monitor_call(consult, ALL_CALLS, ALL_AGENTS)
        .unwrap();
    let ends = clis[2].monitor_call(e, ALL_CALLS, ALL_AGENTS).unwrap();
    h.send(established(consult, "3002", "3001"));
    h.send(conferenced(
        a,
        consult,
        "3001",
        "3002",
        &["T31", "3001", "3002"],
    ));
    h.send(cleared(consult));
    h.send(end_call(consult));
    h.send(conn_cleared(a, Some("3001")));
    h.send(held(e, None));
    h.send(end_call(e));
    h.send(delivered(e, "T33", "5553300", "8002", None));
    h.send(conn_cleared(a, Some("3002")));
    h.send(cleared(a));
    h.send(end_call(a));
    let got = all_shapes(&h.sync(&mut clis.iter_mut().collect::<Vec<_>>()));
    assert_eq!(
        got[0],
        vec![
            shape(msg::CALL_CONFERENCED_EVENT, primary),
            shape(msg::CALL_CONNECTION_CLEARED_EVENT, primary),
            shape(msg::CALL_CONNECTION_CLEARED_EVENT, primary),
            shape(msg::CALL_CLEARED_EVENT, primary),
        ]
    );
    assert_eq!(
        got[1],
        vec![
            shape(msg::CALL_ESTABLISHED_EVENT, secondary),
            shape(msg::CALL_CONFERENCED_EVENT, secondary),
            shape(msg::CALL_CONNECTION_CLEARED_EVENT, secondary),
            shape(msg::CALL_CONNECTION_CLEARED_EVENT, secondary),
            shape(msg::CALL_CLEARED_EVENT, secondary),
        ]
    );
    assert_eq!(
        got[2],
        vec![
            shape(msg::CALL_HELD_EVENT, ends),
            shape(msg::END_CALL_EVENT, ends)
        ]
    );
    assert_eq!(
        clis[2].monitor_stop(ends),
        Err(status::E_CTI_INVALID_MONITORID)
    );
    assert_eq!(
        clis[0].monitor_stop(primary),
        Err(status::E_CTI_INVALID_MONITORID)
    );
}

/// MONITOR_START_REQ for a call the router does not know → FAILURE_CONF 13:
/// a call id never seen, a live call id with another ConnectionDeviceID or
/// ConnectionDeviceIDType, and a call that has ended.
#[test]
fn call_monitor_on_an_unknown_call_is_refused_with_13() {
    let mut h = Harness::new();
    let mut clis = h.pm_sessions(2);
    let live = call(0x0100_0041, "T41");
    let gone = call(0x0100_0042, "T42");
    h.send(delivered(live, "T41", "5554100", "8001", None));
    h.send(delivered(gone, "T42", "5554200", "8001", None));
    h.send(cleared(gone));
    h.sync(&mut clis.iter_mut().collect::<Vec<_>>());
    for c in clis.iter_mut() {
        assert_eq!(
            c.monitor_call(call(0x0DEA_D000, "T41"), ALL_CALLS, ALL_AGENTS),
            Err(status::E_CTI_INVALID_CALLID),
            "never seen"
        );
        assert_eq!(
            c.monitor_call(call(live.id, "T99"), ALL_CALLS, ALL_AGENTS),
            Err(status::E_CTI_INVALID_CALLID),
            "right id, other ConnectionDeviceID"
        );
        assert_eq!(
            c.monitor_call(gone, ALL_CALLS, ALL_AGENTS),
            Err(status::E_CTI_INVALID_CALLID),
            "the call has ended"
        );
        // The ConnectionDeviceIDType is part of the identity (STATIC here).
        let invoke = c.invoke();
        c.send(ctirouter::proto::msg::MonitorStartReq {
            invoke_id: invoke,
            peripheral_id: PID,
            connection_call_id: live.id,
            call_msg_mask: ALL_CALLS,
            agent_state_mask: ALL_AGENTS,
            connection_device_id_type: 0,
            monitored_device_type: device_type::NONE,
            connection_device_id: Some(live.dev.into()),
            monitored_device_id: None,
        });
        assert_eq!(
            c.monitor_start_reply(invoke),
            Err(status::E_CTI_INVALID_CALLID)
        );
        let ok = c
            .monitor_call(live, ALL_CALLS, ALL_AGENTS)
            .expect("the live call");
        assert_ne!(ok, 0);
    }
}

/// MONITOR_START_REQ naming both a call and a device → 54, neither → 6;
/// monitor requests from a session without Peripheral Monitor → 12; the
/// session stays usable after each refusal.
#[test]
fn monitor_start_request_checks() {
    let h = Harness::new();
    let mut pm = h.connect();
    pm.open(&OpenSpec::services(service::PERIPHERAL_MONITOR));
    let req = |invoke: u32, call: Option<&str>, device: Option<&str>| {
        ctirouter::proto::msg::MonitorStartReq {
            invoke_id: invoke,
            peripheral_id: PID,
            connection_call_id: if call.is_some() { 7 } else { 0 },
            call_msg_mask: ALL_CALLS,
            agent_state_mask: ALL_AGENTS,
            connection_device_id_type: if call.is_some() { 1 } else { 0xFFFF },
            monitored_device_type: if device.is_some() { 0 } else { 0xFFFF },
            connection_device_id: call.map(Into::into),
            monitored_device_id: device.map(Into::into),
        }
    };
    let i = pm.invoke();
    pm.send(req(i, Some("T1"), Some("3001")));
    assert_eq!(
        pm.monitor_start_reply(i),
        Err(status::E_CTI_MUTUALLY_EXCLUS_DEVICEID_TYPES)
    );
    let i = pm.invoke();
    pm.send(req(i, None, None));
    assert_eq!(
        pm.monitor_start_reply(i),
        Err(status::E_CTI_REQUIRED_DATA_MISSING)
    );
    // Empty strings are no better than absent ones.
    let i = pm.invoke();
    pm.send(req(i, Some(""), Some("")));
    assert_eq!(
        pm.monitor_start_reply(i),
        Err(status::E_CTI_REQUIRED_DATA_MISSING)
    );
    pm.heartbeat_keeping_events();
    assert!(pm
        .monitor_device(DEV, "3001", ALL_CALLS, ALL_AGENTS)
        .is_ok());

    for services in [service::ALL_EVENTS, service::CLIENT_MONITOR] {
        let mut other = h.connect();
        other.open(&OpenSpec::services(services));
        assert_eq!(
            other.monitor_device(DEV, "3001", ALL_CALLS, ALL_AGENTS),
            Err(status::E_CTI_FUNCTION_NOT_AVAILABLE),
            "MONITOR_START without Peripheral Monitor (services {services:#x})"
        );
        assert_eq!(
            other.monitor_stop(1),
            Err(status::E_CTI_FUNCTION_NOT_AVAILABLE)
        );
        assert_eq!(
            other.change_mask(1, 0, 0),
            Err(status::E_CTI_FUNCTION_NOT_AVAILABLE)
        );
        other.heartbeat_keeping_events();
    }
}

/// MONITOR_STOP_REQ / CHANGE_MONITOR_MASK_REQ with another session's
/// MonitorID (on either shard), a Client Events MonitorID, or one never
/// issued → 55; the owner's monitor is untouched.
#[test]
fn foreign_monitor_ids_are_refused_with_55() {
    let mut h = Harness::new();
    let mut clis = h.pm_sessions(6);
    let ids: Vec<u32> = clis
        .iter_mut()
        .map(|c| {
            c.monitor_device(DEV, "3005", ALL_CALLS, ALL_AGENTS)
                .unwrap()
        })
        .collect();
    let mut ce = h.connect();
    let mut spec = OpenSpec::services(service::CLIENT_EVENTS);
    spec.agent_id = Some("1005".into());
    let ce_id = ce.open(&spec).monitor_id;
    assert_ne!(ce_id, 0);
    let n = clis.len();
    for (k, cli) in clis.iter_mut().enumerate() {
        for (j, &foreign) in ids.iter().enumerate() {
            if j == k {
                continue;
            }
            assert_eq!(
                cli.monitor_stop(foreign),
                Err(status::E_CTI_INVALID_MONITORID)
            );
            assert_eq!(
                cli.change_mask(foreign, 0, 0),
                Err(status::E_CTI_INVALID_MONITORID)
            );
        }
        assert_eq!(
            cli.monitor_stop(ce_id),
            Err(status::E_CTI_INVALID_MONITORID)
        );
        assert_eq!(
            cli.change_mask(ce_id, 0, 0),
            Err(status::E_CTI_INVALID_MONITORID)
        );
        assert_eq!(
            cli.monitor_stop(0x7FFF_0000),
            Err(status::E_CTI_INVALID_MONITORID)
        );
        assert_eq!(cli.monitor_stop(0), Err(status::E_CTI_INVALID_MONITORID));
    }
    // Every monitor still delivers, unchanged.
    h.send(agent_ev("1005", "3005", 4));
    let got = all_shapes(&h.sync(&mut clis.iter_mut().collect::<Vec<_>>()));
    for k in 0..n {
        assert_eq!(
            got[k],
            vec![shape(msg::AGENT_STATE_EVENT, ids[k])],
            "session {k}"
        );
    }
    // The owner can stop its own.
    for (k, c) in clis.iter_mut().enumerate() {
        assert_eq!(c.monitor_stop(ids[k]), Ok(()));
        assert_eq!(
            c.monitor_stop(ids[k]),
            Err(status::E_CTI_INVALID_MONITORID),
            "stopped twice"
        );
    }
}

/// CHANGE_MONITOR_MASK_REQ changes what that monitor delivers (CallMsgMask
/// by event type, AgentStateMask by AgentState); other monitors keep theirs.
#[test]
fn change_monitor_mask_changes_what_the_monitor_delivers() {
    let mut h = Harness::new();
    let mut clis = h.pm_sessions(2);
    let changed = clis[0]
        .monitor_device(DEV, "3001", ALL_CALLS, ALL_AGENTS)
        .unwrap();
    let kept = clis[1]
        .monitor_device(DEV, "3001", ALL_CALLS, ALL_AGENTS)
        .unwrap();
    let a = call(0x0100_0051, "T51");
    let burst = |h: &Harness| {
        h.send(agent_ev("1001", "3001", 4)); // TALKING
        h.send(agent_ev("1001", "3001", 3)); // AVAILABLE
        h.send(delivered(a, "3001", "5555100", "3001", None));
        h.send(held(a, Some("3001")));
        h.send(retrieved(a, Some("3001")));
    };
    burst(&h);
    let before = all_shapes(&h.sync(&mut clis.iter_mut().collect::<Vec<_>>()));
    // Two agent events, the call's BEGIN_CALL and its three events.
    assert_eq!(before[0].len(), 6);
    // CALL_HELD (0x08) only; AVAILABLE (1 << 3) only.
    assert_eq!(clis[0].change_mask(changed, 0x0000_0008, 0x0008), Ok(()));
    burst(&h);
    let after = all_shapes(&h.sync(&mut clis.iter_mut().collect::<Vec<_>>()));
    assert_eq!(
        after[0],
        vec![
            shape(msg::AGENT_STATE_EVENT, changed),
            shape(msg::CALL_HELD_EVENT, changed)
        ]
    );
    assert_eq!(
        after[1].len(),
        5,
        "the other monitor (id {kept}) keeps its masks"
    );
    // Masks 0: nothing at all.
    assert_eq!(clis[0].change_mask(changed, 0, 0), Ok(()));
    burst(&h);
    h.send(cleared(a));
    let last = all_shapes(&h.sync(&mut clis.iter_mut().collect::<Vec<_>>()));
    assert_eq!(last[0], vec![]);
    // The burst, CALL_CLEARED and the bracket's END_CALL.
    assert_eq!(last[1].len(), 7);
}

/// MonitorIDs are unique across sessions and shards (Client Events
/// MonitorIDs included), and never 0.
#[test]
fn monitor_ids_are_unique_across_sessions_and_shards() {
    let h = Harness::new();
    let mut seen = HashSet::new();
    let mut clis = Vec::new();
    for k in 0..8 {
        let mut c = h.connect();
        let mut spec = OpenSpec::services(service::PERIPHERAL_MONITOR | service::CLIENT_EVENTS);
        spec.agent_instrument = Some(format!("{}", 3001 + k));
        let conf = c.open(&spec);
        assert!(
            seen.insert(conf.monitor_id),
            "Client Events MonitorID {} repeats",
            conf.monitor_id
        );
        clis.push(c);
    }
    for round in 0..5 {
        for c in clis.iter_mut() {
            let id = c
                .monitor_device(DEV, &format!("D{round}"), ALL_CALLS, ALL_AGENTS)
                .unwrap();
            assert!(seen.insert(id), "MonitorID {id} repeats");
        }
    }
    assert!(!seen.contains(&0));
    assert_eq!(seen.len(), 8 + 8 * 5);
}

/// Several monitors of one session matching one event: one copy each, in
/// ascending MonitorID, after the session's All Events copy (MonitorID 0);
/// each copy through its own masks.
#[test]
fn monitors_matching_one_event_give_one_copy_each_in_ascending_monitor_id() {
    let mut h = Harness::new();
    let a = call(0x0100_0061, "T61");
    h.send(delivered(a, "T61", "5556100", "8001", Some((61, 202))));
    let mut clis: Vec<Client> = (0..3)
        .map(|_| {
            let mut c = h.connect();
            c.open(&OpenSpec::services(
                service::ALL_EVENTS | service::PERIPHERAL_MONITOR,
            ));
            c
        })
        .collect();
    // Make sure each session has seen call a (All Events) before monitoring it.
    for c in clis.iter_mut() {
        c.watch_sync();
    }
    h.sync(&mut clis.iter_mut().collect::<Vec<_>>());
    let mut ids = Vec::new();
    for c in clis.iter_mut() {
        // Started in this order; ids ascend but the test sorts anyway.
        let d = c
            .monitor_device(DEV, "3001", ALL_CALLS, ALL_AGENTS)
            .unwrap();
        let t = c.monitor_device(DEV, "T61", ALL_CALLS, ALL_AGENTS).unwrap();
        let k = c.monitor_call(a, ALL_CALLS, ALL_AGENTS).unwrap();
        let g = c
            .monitor_device(device_type::TRUNK_GROUP, "202", ALL_CALLS, ALL_AGENTS)
            .unwrap();
        // A fifth one whose mask excludes CALL_ESTABLISHED: no copy from it.
        let x = c
            .monitor_device(DEV, "3001", !0x0000_0004, ALL_AGENTS)
            .unwrap();
        ids.push((d, t, k, g, x));
    }
    h.send(established(a, "3001", "5556100"));
    let got = h.sync(&mut clis.iter_mut().collect::<Vec<_>>());
    for (k, events) in got.iter().enumerate() {
        let (d, t, c, g, x) = ids[k];
        let mut want = [d, t, c, g, x];
        want.sort_unstable();
        let mut expected = vec![shape(msg::CALL_ESTABLISHED_EVENT, 0)];
        for m in want {
            // Device monitors that never saw the call open its bracket
            // first (its BEGIN_CALL passes x's mask, the event does not);
            // a call monitor has none.
            if m != c {
                expected.push(shape(msg::BEGIN_CALL_EVENT, m));
            }
            if m != x {
                expected.push(shape(msg::CALL_ESTABLISHED_EVENT, m));
            }
        }
        assert_eq!(shapes(events), expected, "session {k}");
        // Same event in every copy: only the MonitorID differs.
        let copies = events[1..]
            .iter()
            .filter(|e| shapes(&[e.to_vec()])[0].0 == "CALL_ESTABLISHED_EVENT");
        for e in copies {
            let mut z = e.clone();
            z[8..12].fill(0);
            assert_eq!(z, events[0]);
        }
    }
}

/// Every monitor ends with its session: after its owner closes (CLOSE_REQ)
/// or drops the connection, events its monitors matched reach nobody else,
/// its MonitorIDs are refused (55) to a new session, and the router serves on.
#[test]
fn monitors_end_with_their_session() {
    let mut h = Harness::new();
    let a = call(0x0100_0071, "T71");
    h.send(delivered(a, "T71", "5557100", "8001", None));
    let mut owners = h.pm_sessions(4);
    let mut theirs = Vec::new();
    for c in owners.iter_mut() {
        theirs.push(
            c.monitor_device(DEV, "3001", ALL_CALLS, ALL_AGENTS)
                .unwrap(),
        );
        theirs.push(c.monitor_call(a, ALL_CALLS, ALL_AGENTS).unwrap());
        theirs.push(
            c.monitor_device(device_type::TRUNK, "71", ALL_CALLS, ALL_AGENTS)
                .unwrap(),
        );
    }
    // Two close politely, two drop the connection.
    for (k, mut c) in owners.into_iter().enumerate() {
        if k % 2 == 0 {
            c.close();
        } else {
            c.drop_connection();
        }
    }
    let mut fresh = h.pm_sessions(4);
    let mine: Vec<u32> = fresh
        .iter_mut()
        .map(|c| {
            c.monitor_device(DEV, "3002", ALL_CALLS, ALL_AGENTS)
                .unwrap()
        })
        .collect();
    for c in fresh.iter_mut() {
        for &old in &theirs {
            assert_eq!(c.monitor_stop(old), Err(status::E_CTI_INVALID_MONITORID));
        }
    }
    h.send(agent_ev("1001", "3001", 4));
    h.send(established(a, "3001", "5557100"));
    h.send(agent_ev("1002", "3002", 4));
    h.send(cleared(a));
    let got = all_shapes(&h.sync(&mut fresh.iter_mut().collect::<Vec<_>>()));
    for (k, events) in got.iter().enumerate() {
        assert_eq!(
            events,
            &vec![shape(msg::AGENT_STATE_EVENT, mine[k])],
            "session {k}"
        );
    }
    for c in fresh.iter_mut() {
        c.heartbeat_keeping_events();
    }
}

/// CALL_TRANSLATION_ROUTE_EVENT goes once to every Peripheral Monitor
/// session, however many monitors it has (and once to All Events sessions,
/// once to a session with both), unmasked; not to Client Events or Client
/// Monitor only sessions. (The simulator never emits this event, so it is
/// fed through the upstream path.)
#[test]
fn translation_route_event_goes_once_to_each_peripheral_monitor_session() {
    let mut h = Harness::new();
    let mut pm_bare = h.pm_sessions(3);
    let mut pm_busy = h.pm_sessions(3);
    for c in pm_busy.iter_mut() {
        c.monitor_device(DEV, "3001", 0, 0).unwrap();
        c.monitor_device(DEV, "8001", ALL_CALLS, ALL_AGENTS)
            .unwrap();
    }
    let mut ae_pm = h.connect();
    ae_pm.open(&OpenSpec::services(service::ALL_EVENTS | service::PERIPHERAL_MONITOR).masks(0, 0));
    ae_pm.watch_sync();
    let mut masked_pm = h.connect();
    masked_pm.open(&OpenSpec::services(service::PERIPHERAL_MONITOR).masks(0, 0));
    masked_pm.watch_sync();
    let mut ce = h.connect();
    let mut spec = OpenSpec::services(service::CLIENT_EVENTS);
    spec.agent_instrument = Some(SYNC_DEVICE.into());
    ce.open(&spec);
    let mut cm = h.connect();
    cm.open(&OpenSpec::services(service::CLIENT_MONITOR));

    h.send(translation_route("8001"));
    let mut all: Vec<&mut Client> = pm_bare.iter_mut().chain(pm_busy.iter_mut()).collect();
    all.push(&mut ae_pm);
    all.push(&mut masked_pm);
    all.push(&mut ce);
    let got = h.sync(&mut all);
    let n = got.len();
    for (k, events) in got.iter().enumerate().take(n - 1) {
        let types: Vec<u32> = events.iter().map(|f| frame_type(f)).collect();
        assert_eq!(
            types,
            vec![msg::CALL_TRANSLATION_ROUTE_EVENT],
            "Peripheral Monitor session {k} gets it exactly once"
        );
    }
    assert_eq!(
        got[n - 1],
        Vec::<Vec<u8>>::new(),
        "not to a Client Events session"
    );
    // Client Monitor: a session opened after the event passes through
    // ingest after it, so its OPENED marks the point.
    let mut late = h.connect();
    late.open(&OpenSpec::services(service::ALL_EVENTS));
    let late_port = late.port as u32;
    let i = cm.expect(
        "OPENED of the late session",
        |f| matches!(decode(f), Message::ClientSessionOpenedEvent(e) if e.client_port == late_port),
    );
    assert!(
        cm.log[..i]
            .iter()
            .all(|f| frame_type(f) != msg::CALL_TRANSLATION_ROUTE_EVENT),
        "not to a Client Monitor session"
    );
}
