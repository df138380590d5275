//! The Supervisor service requests and confirmations (docs/protocol.md §12.5):
//! every type typed under its protocol name, fixed sizes per version, round
//! trips and transcoding at every version pair, the public sample rows
//! (SUPERVISE_CALL_CONF, LIST_AGENT_TEAM_CONF, MONITOR_AGENT_TEAM_START/STOP_CONF)
//! byte-exact, and our own fixtures for the requests no public sample has.

use ctirouter::proto::constants::msg;
use ctirouter::proto::error::Invalid;
use ctirouter::proto::{DecodeOptions, Message, Version};
use testkit::v;
use testkit::vectors::*;

/// The eight request/confirmation types of the Supervisor service.
pub(crate) const SUPERVISOR_TYPES: &[u32] = &[
    msg::SUPERVISE_CALL_REQ,
    msg::SUPERVISE_CALL_CONF,
    msg::LIST_AGENT_TEAM_REQ,
    msg::LIST_AGENT_TEAM_CONF,
    msg::MONITOR_AGENT_TEAM_START_REQ,
    msg::MONITOR_AGENT_TEAM_START_CONF,
    msg::MONITOR_AGENT_TEAM_STOP_REQ,
    msg::MONITOR_AGENT_TEAM_STOP_CONF,
];

/// Fixed-part sizes from docs/protocol.md §12.5, the same at v13..=24.
const FIXED_SIZES: &[(u32, usize)] = &[
    (msg::SUPERVISE_CALL_REQ, 22),
    (msg::SUPERVISE_CALL_CONF, 10),
    (msg::LIST_AGENT_TEAM_REQ, 8),
    (msg::LIST_AGENT_TEAM_CONF, 10),
    (msg::MONITOR_AGENT_TEAM_START_REQ, 8),
    (msg::MONITOR_AGENT_TEAM_START_CONF, 8),
    (msg::MONITOR_AGENT_TEAM_STOP_REQ, 8),
    (msg::MONITOR_AGENT_TEAM_STOP_CONF, 4),
];

/// The requests no public sample has, built from the §12.5 tables at v19
/// (1-byte tags) and v20 (2-byte tags). (name, versions, frame hex, fields.)
const SUPERVISOR_FIXTURES: &[(&str, &[u32], &str, &str)] = &[
    // Fixed 22: the agent's call 0x0a0b0c0d, no supervisor call (0xffffffff),
    // types 1 / 0, action 3 (barge-in); AgentConnectionDeviceID (90),
    // AgentID (5), SupervisorInstrument (85).
    (
        "SUPERVISE_CALL_REQ",
        &[19],
        "0000002b0000007c00007c01000013890a0b0c0dffffffff0001000000035a0533303031000505313030310055053331303100",
        r#"{"InvokeID":31745,"PeripheralID":5001,"AgentConnectionCallID":168496141,"SupervisorConnectionCallID":4294967295,"AgentConnectionDeviceIDType":1,"SupervisorConnectionDeviceIDType":0,"SupervisoryAction":3,"AGENT_CONNECTION_DEVID":"3001","AGENT_ID":"1001","SUPERVISOR_INSTRUMENT":"3101"}"#,
    ),
    (
        "SUPERVISE_CALL_REQ",
        &[20, 24],
        "000000310000007c00007c01000013890a0b0c0dffffffff000100000003005a00053330303100000500053130303100005500053331303100",
        r#"{"InvokeID":31745,"PeripheralID":5001,"AgentConnectionCallID":168496141,"SupervisorConnectionCallID":4294967295,"AgentConnectionDeviceIDType":1,"SupervisorConnectionDeviceIDType":0,"SupervisoryAction":3,"AGENT_CONNECTION_DEVID":"3001","AGENT_ID":"1001","SUPERVISOR_INSTRUMENT":"3101"}"#,
    ),
    (
        "LIST_AGENT_TEAM_REQ",
        &[13, 19, 20, 24],
        "000000080000008500008501000013ed",
        r#"{"InvokeID":34049,"SupervisorID":5101}"#,
    ),
    // CTIOSCILClientID (217) as CTI OS adds it (docs/protocol.md §12.1).
    (
        "MONITOR_AGENT_TEAM_START_REQ",
        &[19],
        "0000000f000000870000870100000007d90563696c3900",
        r#"{"InvokeID":34561,"TeamID":7,"CTIOS_CIL_CLIENT_ID":"cil9"}"#,
    ),
    (
        "MONITOR_AGENT_TEAM_START_REQ",
        &[20],
        "0000001100000087000087010000000700d9000563696c3900",
        r#"{"InvokeID":34561,"TeamID":7,"CTIOS_CIL_CLIENT_ID":"cil9"}"#,
    ),
    (
        "MONITOR_AGENT_TEAM_STOP_REQ",
        &[13, 19, 20, 24],
        "0000000800000089000089010000000b",
        r#"{"InvokeID":35073,"MonitorID":11}"#,
    ),
];

#[test]
fn supervisor_types_are_typed_replies_are_the_confirmations() {
    for &message_type in SUPERVISOR_TYPES {
        assert!(Message::TYPED.contains(&message_type), "{message_type}");
        assert_eq!(Message::since(message_type), 13, "{message_type}");
        let name = Message::type_name(message_type).unwrap();
        assert_eq!(
            msg::is_reply(message_type),
            name.ends_with("_CONF"),
            "{name}"
        );
    }
}

#[test]
fn supervisor_fixed_sizes_follow_protocol_md() {
    for &(message_type, size) in FIXED_SIZES {
        for version in Version::all() {
            assert_eq!(
                Message::fixed_len(message_type, version),
                Some(size),
                "type {message_type} at v{version}"
            );
        }
    }
}

#[test]
fn supervisor_messages_round_trip_and_transcode_at_every_version() {
    crate::props::check_types_at_every_version_pair(SUPERVISOR_TYPES);
}

#[test]
fn own_supervisor_request_fixtures_are_exact() {
    crate::vectors::check_own_fixtures(SUPERVISOR_FIXTURES);
}

/// The four request-file rows decode typed at v19 to the values they state
/// and re-encode byte-exact; LIST_AGENT_TEAM_CONF's count (64 for one id) is
/// a byte pattern, so STRICT refuses it (vectors README).
#[test]
fn supervisor_sample_rows_decode_typed_and_re_encode_byte_exact() {
    let mut nr_checked = 0;
    for row in request_rows() {
        if !SUPERVISOR_TYPES.contains(&row.message_type) {
            continue;
        }
        let message = decode_row(row, v(19), DecodeOptions::COUNTS_UNCHECKED)
            .unwrap_or_else(|e| panic!("{}: {e}", row.label()));
        assert!(!matches!(message, Message::Raw(_)), "{}", row.label());
        assert_eq!(
            Message::type_name(row.message_type),
            Some(row.name.as_str())
        );
        let diff = field_diff(&decoded_fields(&message, v(19)), &expected_fields(row));
        assert!(diff.is_empty(), "{}: {diff:#?}", row.label());
        assert_eq!(encode(&message, v(19)), row.frame, "{}", row.label());
        let strict = decode_row(row, v(19), DecodeOptions::STRICT);
        if row.name == "LIST_AGENT_TEAM_CONF" {
            let lie = Invalid::ListCount {
                field: "number_of_agent_teams",
                count: 64,
                actual: 1,
            };
            assert_eq!(strict, Err(lie));
        } else {
            assert_eq!(strict, Ok(message), "{}", row.label());
        }
        nr_checked += 1;
    }
    assert_eq!(nr_checked, 4);
}
