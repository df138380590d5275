//! The codec against the public sample vectors (`tests/vectors/`, provenance
//! and MIT notice in its README): every frame decodes to the values the row
//! states and re-encodes byte-exact, and each row the README documents as
//! contradicting docs/protocol.md is pinned to the behaviour the codec chose for it.
//! Black-box: only the public `ctirouter::proto` API and the vector files.

use ctirouter::proto::constants::msg;
use ctirouter::proto::error::Invalid;
use std::collections::BTreeSet;

use ctirouter::proto::transcode::{transcode, Transcoded};
use ctirouter::proto::{routing, tags, DecodeOptions, FieldValue, Message, Version};
use serde_json::Value;
use testkit::v;
use testkit::vectors::*;

/// v19 rows whose type the codec does not type: they must stay `Message::Raw`
/// and pass through byte-exact. A row silently becoming raw (or typed) fails.
const RAW_V19_ROWS: &[&str] = &[
    "UNKNOWN_TYPE",
    "CALL_ATTRIBUTE_CHANGE_EVENT",
    "UNDEFINED_254",
    "UNDEFINED_255",
    "UNDEFINED_255#2",
];

/// Keys the v19 samples file names after the Scala fields where the
/// request-service file (and the codec) use the docs/protocol.md §12 names
/// (vectors README, "Version 19 request-service samples", Format):
/// (row, samples-file key, §12 key).
const SCALA_KEY_RENAMES: &[(&str, &str, &str)] = &[
    ("QUERY_DEVICE_INFO_CONF", "Reserved16", "Reserved"),
    (
        "QUERY_DEVICE_INFO_CONF",
        "MaxDeviceInConference",
        "MaxDevicesInConference",
    ),
];

/// README contradiction 1: v19 rows with the v≤18 fixed layout (no DepartmentID).
const PRE_V19_LAYOUT_ROWS: &[&str] = &[
    "OPEN_CONF",
    "AGENT_STATE_EVENT",
    "QUERY_AGENT_STATE_CONF",
    "AGENT_TEAM_CONFIG_EVENT",
];

/// README contradiction 2, typed rows that decode: tags 226/227 (v14–18 only);
/// EMERGENCY_CALL_EVENT and START_RECORDING_CONF carry 226 with 18 bytes.
const IPV6_TAG_ROWS: &[&str] = &[
    "CLIENT_SESSION_OPENED_EVENT",
    "CLIENT_SESSION_CLOSED_EVENT",
    "EMERGENCY_CALL_EVENT",
    "START_RECORDING_CONF",
];

/// README contradiction 3: SENDING_PORT (126, UINT) sent as a 12-byte string
/// (these rows also carry 226/227).
const STRING_SENDING_PORT_ROWS: &[&str] = &["RTP_STARTED_EVENT", "RTP_STOPPED_EVENT"];

/// README contradiction 4: CLIENT_ID (tag 1) outside OPEN_REQ and CLIENT_SESSION_*.
const CLIENT_ID_ROWS: &[&str] = &[
    "USER_MESSAGE_EVENT",
    "EMERGENCY_CALL_EVENT",
    "START_RECORDING_CONF",
];

const IPV6_TAGS: [u16; 2] = [tags::CLIENT_ADDRESS_IPV6, tags::SENDING_ADDRESS_IPV6];

/// Whether a row is one of the documented contradictions, checked by its own test.
fn is_documented_exception(row: &Row) -> bool {
    row.version == 19
        && [PRE_V19_LAYOUT_ROWS, IPV6_TAG_ROWS, STRING_SENDING_PORT_ROWS]
            .iter()
            .any(|list| list.contains(&row.name.as_str()))
}

fn unchecked(row: &Row, version: Version) -> Message {
    decode_row(row, version, DecodeOptions::COUNTS_UNCHECKED)
        .unwrap_or_else(|e| panic!("{} at v{version}: {e}", row.label()))
}

/// The row name without its `#2` suffix.
fn type_name_of(row: &Row) -> &str {
    row.name.split('#').next().unwrap_or(&row.name)
}

fn assert_fields(row: &Row, message: &Message, version: Version) {
    let mut renamed = row.clone();
    if row.file == VECTOR_FILES[0] {
        for &(name, from, to) in SCALA_KEY_RENAMES {
            if row.name == name {
                let value = renamed.fields.remove(from).expect("renamed key present");
                renamed.fields.insert(to.to_string(), value);
            }
        }
    }
    let diff = field_diff(
        &decoded_fields(message, version),
        &expected_fields(&renamed),
    );
    assert!(diff.is_empty(), "{} at v{version}: {diff:#?}", row.label());
}

#[test]
fn both_vector_files_load_completely() {
    let rows = all_rows();
    assert_eq!(rows.iter().filter(|r| r.version == 19).count(), 94);
    assert_eq!(rows.iter().filter(|r| r.version == 20).count(), 35);
    for row in rows {
        let (parsed, used) = ctirouter::proto::frame::parse(&row.frame).unwrap();
        assert_eq!(used, row.frame.len(), "{}", row.label());
        assert_eq!(parsed.message_type, row.message_type, "{}", row.label());
    }
    for name in RAW_V19_ROWS
        .iter()
        .chain(PRE_V19_LAYOUT_ROWS)
        .chain(IPV6_TAG_ROWS)
    {
        row(19, name);
    }
}

#[test]
fn every_row_decodes_and_re_encodes_byte_exact_with_the_stated_fields() {
    let mut nr_typed = 0;
    for row in all_rows().iter().filter(|r| !is_documented_exception(r)) {
        let version = row.version();
        let message = unchecked(row, version);
        assert_eq!(
            encode(&message, version),
            row.frame,
            "{}: re-encoded frame differs",
            row.label()
        );
        let expect_raw = row.version == 19 && RAW_V19_ROWS.contains(&row.name.as_str());
        match &message {
            Message::Raw(raw) => {
                assert!(expect_raw, "{} decoded as raw", row.label());
                assert_eq!(Message::type_name(row.message_type), None);
                if let Some(Value::String(bytes)) = row.fields.get("RawBytes") {
                    assert_eq!(&hex::encode(&raw.body), bytes, "{}", row.label());
                }
            }
            typed => {
                assert!(!expect_raw, "{} decoded as typed", row.label());
                assert_eq!(
                    Message::type_name(row.message_type),
                    Some(type_name_of(row)),
                    "{}: type name",
                    row.label()
                );
                assert_fields(row, typed, version);
                nr_typed += 1;
            }
        }
    }
    // The v19 rows less the raw ones and the documented exceptions, plus
    // all 35 v20 rows.
    assert_eq!(nr_typed, 79 + 35);
}

#[test]
fn v20_rows_need_two_byte_tags() {
    // README: with 1-byte tag/length, no v20 row with a floating part walks.
    for row in all_rows().iter().filter(|r| r.version == 20) {
        let message = unchecked(row, row.version());
        let mut has_floating = false;
        message.visit(row.version(), &mut |f| has_floating |= f.tag.is_some());
        if has_floating {
            let narrow = decode_row(row, v(19), DecodeOptions::COUNTS_UNCHECKED);
            let same = narrow.as_ref().is_ok_and(|m| *m == message);
            assert!(!same, "{} decodes the same with 1-byte tags", row.label());
        }
    }
}

/// Contradiction 1: docs/protocol.md §4.1/§4.6/§8 puts DepartmentID in these fixed
/// parts from v19, and so does the codec; the Scala v19 samples omit it. At
/// v19 the codec reads 4 bytes of floating part as DepartmentID, so the walk
/// must fail (an error, never a panic); at v18 the layout matches.
#[test]
fn pre_v19_fixed_layout_rows_are_refused_at_19_and_exact_at_18() {
    for name in PRE_V19_LAYOUT_ROWS {
        let row = row(19, name);
        for options in [DecodeOptions::COUNTS_UNCHECKED, DecodeOptions::STRICT] {
            let err = decode_row(row, v(19), options).expect_err(name);
            // README: "With DepartmentID inserted, the floating walk overruns".
            assert!(
                matches!(err, Invalid::FloatingOverrun { .. }),
                "{name}: {err:?}"
            );
        }
        let message = unchecked(row, v(18));
        assert_eq!(encode(&message, v(18)), row.frame, "{name} at v18");
        assert_fields(row, &message, v(18));
        assert_eq!(
            Message::fixed_len(row.message_type, v(19)),
            Message::fixed_len(row.message_type, v(18)).map(|n| n + 4),
            "{name}: DepartmentID is 4 bytes from v19"
        );
    }
}

/// The v20 rows agree with docs/protocol.md on DepartmentID (README, v20 section).
#[test]
fn v20_rows_carry_department_id() {
    for (name, department_id) in [("OPEN_CONF", 84281096), ("AGENT_STATE_EVENT", 185339150)] {
        let message = unchecked(row(20, name), v(20));
        let mut found = None;
        message.visit(v(20), &mut |f| {
            if f.name == "department_id" {
                found = Some(json_value(&f.value));
            }
        });
        assert_eq!(found, Some(Value::from(department_id)), "{name}");
    }
}

/// Contradiction 2: tags 226/227 exist in v14–18 only (docs/protocol.md §4.4, §8).
/// Input is lenient, so the v19 rows decode with them; output follows the
/// version, so re-encoding at v19 drops them and only them. The codec keeps
/// 226/227 as UNSPEC (no type in docs/protocol.md), so the Scala string's NUL is data.
#[test]
fn ipv6_tags_decode_at_19_but_are_not_re_encoded_there() {
    for name in IPV6_TAG_ROWS {
        let row = row(19, name);
        let message = unchecked(row, v(19));
        let fixed = Message::fixed_len(row.message_type, v(19)).unwrap();
        let expected_frame = without_tags(&row.frame, fixed, v(19), &IPV6_TAGS);
        assert!(
            expected_frame.len() < row.frame.len(),
            "{name} carries 226/227"
        );
        let re_encoded = encode(&message, v(19));
        assert_eq!(re_encoded, expected_frame, "{name}: only 226/227 dropped");
        let again = decode_row(
            &Row {
                frame: re_encoded.clone(),
                ..row.clone()
            },
            v(19),
            DecodeOptions::COUNTS_UNCHECKED,
        )
        .unwrap();
        assert_eq!(encode(&again, v(19)), re_encoded, "{name}: stable");
        assert_ipv6_fields(row, &message, &again);
        // At v18 the tags exist: the original frame (1-byte tags) is exact.
        assert_eq!(
            encode(&unchecked(row, v(18)), v(18)),
            row.frame,
            "{name} at v18"
        );
    }
}

/// Every stated field decodes; 226/227 hold the Scala string plus its NUL, and
/// the re-decoded message has everything but them.
fn assert_ipv6_fields(row: &Row, decoded: &Message, re_decoded: &Message) {
    let mut expected = expected_fields(row);
    let mut expected_ipv6 = serde_json::Map::new();
    for tag in IPV6_TAGS {
        let name = tags::name(tag).unwrap();
        if let Some(Value::String(s)) = expected.remove(name) {
            let bytes = [s.as_bytes(), b"\0"].concat();
            expected_ipv6.insert(name.to_string(), Value::from(hex::encode(bytes)));
        }
    }
    let mut with_ipv6 = expected.clone();
    with_ipv6.extend(expected_ipv6);
    let diff = field_diff(&decoded_fields(decoded, v(19)), &with_ipv6);
    assert!(diff.is_empty(), "{}: {diff:#?}", row.label());
    let diff = field_diff(&decoded_fields(re_decoded, v(19)), &expected);
    assert!(diff.is_empty(), "{} re-decoded: {diff:#?}", row.label());
}

/// Contradiction 3: SENDING_PORT is a UINT (docs/protocol.md §2.6, §4.5); a 12-byte
/// string is a malformed integer field.
#[test]
fn string_sending_port_is_a_field_length_error() {
    for name in STRING_SENDING_PORT_ROWS {
        let row = row(19, name);
        for options in [DecodeOptions::COUNTS_UNCHECKED, DecodeOptions::STRICT] {
            assert_eq!(
                decode_row(row, v(19), options),
                Err(Invalid::FieldLength { tag: 126, len: 12 }),
                "{name}"
            );
        }
    }
}

/// The rest of the RTP rows is sound: without SENDING_PORT they decode to the
/// stated values and lose only 226/227 when re-encoded at v19.
#[test]
fn rtp_rows_without_sending_port_follow_the_ipv6_rule() {
    for name in STRING_SENDING_PORT_ROWS {
        let row = row(19, name);
        let fixed = Message::fixed_len(row.message_type, v(19)).unwrap();
        let mut trimmed = row.clone();
        trimmed.frame = without_tags(&row.frame, fixed, v(19), &[tags::SENDING_PORT]);
        trimmed.fields.remove("SENDING_PORT");
        let message = unchecked(&trimmed, v(19));
        let expected_frame = without_tags(&trimmed.frame, fixed, v(19), &IPV6_TAGS);
        let re_encoded = encode(&message, v(19));
        assert_eq!(re_encoded, expected_frame, "{name}");
        let again = decode_row(
            &Row {
                frame: re_encoded,
                ..trimmed.clone()
            },
            v(19),
            DecodeOptions::STRICT,
        )
        .unwrap();
        assert_ipv6_fields(&trimmed, &message, &again);
    }
}

/// Contradiction 4: docs/protocol.md §5.17 says tags 1/2 are OPEN_REQ-only, but
/// §12.4/§12.5 give these types a ClientID, and the codec declares it: it
/// decodes as their typed CLIENT_ID field and is written back. At v18 (where
/// 226 exists too) every row re-encodes byte-exact; at v19 USER_MESSAGE_EVENT
/// does, the other two lose only 226 (`ipv6_tags_decode_at_19_…`).
#[test]
fn client_id_outside_open_req_is_a_declared_field() {
    for name in CLIENT_ID_ROWS {
        let row = row(19, name);
        assert_eq!(row.fields.get("CLIENT_ID"), Some(&Value::from("ClientID")));
        for version in [v(18), v(19)] {
            let message = unchecked(row, version);
            assert!(!matches!(message, Message::Raw(_)), "{name}");
            let fields = decoded_fields(&message, version);
            assert_eq!(fields.get("CLIENT_ID"), Some(&Value::from("ClientID")));
        }
        assert_eq!(encode(&unchecked(row, v(18)), v(18)), row.frame, "{name}");
    }
    let row = row(19, "USER_MESSAGE_EVENT");
    assert_eq!(encode(&unchecked(row, v(19)), v(19)), row.frame);
}

/// The vectors' list counts are byte patterns (README): STRICT decoding must
/// refuse exactly the rows whose counts lie, naming the first lying count.
#[test]
fn lying_list_counts_fail_strict_decoding() {
    let lying: &[(u32, &str, &str, usize)] = &[
        (19, "CALL_DELIVERED_EVENT", "num_named_variables", 1029),
        (19, "CALL_CONFERENCED_EVENT", "num_parties", 1800),
        (19, "CALL_TRANSFERRED_EVENT", "num_parties", 1800),
        (19, "CALL_QUEUED_EVENT", "num_skill_groups", 1800),
        (
            19,
            "CALL_TRANSLATION_ROUTE_EVENT",
            "num_named_variables",
            1029,
        ),
        (19, "BEGIN_CALL_EVENT", "num_named_variables", 1029),
        (19, "CALL_DATA_UPDATE_EVENT", "num_named_variables", 1029),
        (19, "SET_CALL_DATA_REQ", "num_named_variables", 1798),
        (19, "CALL_DEQUEUED_EVENT", "num_skill_groups", 1800),
        (19, "AGENT_PRE_CALL_EVENT", "num_named_variables", 515),
        (19, "SET_AGENT_STATE_REQ", "num_skill_groups", 258),
        (19, "CONFERENCE_CALL_CONF", "num_parties", 772),
        (19, "TRANSFER_CALL_CONF", "num_parties", 772),
        (19, "QUERY_DEVICE_INFO_CONF", "num_lines", 515),
        (19, "SNAPSHOT_CALL_CONF", "num_named_variables", 1029),
        (19, "SNAPSHOT_DEVICE_CONF", "num_calls", 515),
        (19, "LIST_AGENT_TEAM_CONF", "number_of_agent_teams", 64),
        (20, "CALL_DELIVERED_EVENT", "num_named_variables", 1029),
        (20, "CALL_CONFERENCED_EVENT", "num_parties", 1800),
        (20, "CALL_TRANSFERRED_EVENT", "num_parties", 1800),
        (20, "CALL_QUEUED_EVENT", "num_skill_groups", 1800),
        (
            20,
            "CALL_TRANSLATION_ROUTE_EVENT",
            "num_named_variables",
            1029,
        ),
        (20, "BEGIN_CALL_EVENT", "num_named_variables", 1029),
        (20, "CALL_DATA_UPDATE_EVENT", "num_named_variables", 1029),
        (20, "SET_CALL_DATA_REQ", "num_named_variables", 1798),
        (20, "AGENT_STATE_EVENT", "num_flt_skill_groups", 1798),
    ];
    for row in all_rows().iter().filter(|r| !is_documented_exception(r)) {
        let version = row.version();
        let strict = decode_row(row, version, DecodeOptions::STRICT);
        let expected = lying
            .iter()
            .find(|(ver, name, ..)| *ver == row.version && *name == row.name);
        match expected {
            Some(&(_, _, field, count)) => assert_eq!(
                strict,
                Err(Invalid::ListCount {
                    field,
                    count,
                    actual: 1
                }),
                "{}",
                row.label()
            ),
            None => assert_eq!(strict, Ok(unchecked(row, version)), "{}", row.label()),
        }
    }
}

/// With the counts synced to the lists, the same messages pass STRICT decoding.
#[test]
fn synced_counts_pass_strict_decoding() {
    for row in all_rows().iter().filter(|r| !is_documented_exception(r)) {
        let version = row.version();
        let mut message = unchecked(row, version);
        message.sync_counts();
        let frame = encode(&message, version);
        let (decoded, used) =
            ctirouter::proto::decode_frame(&frame, version, DecodeOptions::STRICT)
                .unwrap_or_else(|e| panic!("{}: {e}", row.label()));
        assert_eq!((decoded, used), (message, frame.len()), "{}", row.label());
    }
}

/// The counts of the pre-v19 rows are byte patterns too: once their layout
/// decodes (at v18), STRICT refuses them for the count.
#[test]
fn pre_v19_rows_have_lying_counts_at_18() {
    for (name, field, count) in [
        ("AGENT_STATE_EVENT", "num_flt_skill_groups", 1798),
        ("QUERY_AGENT_STATE_CONF", "num_skill_groups", 515),
        ("AGENT_TEAM_CONFIG_EVENT", "number_of_agents", 772),
    ] {
        assert_eq!(
            decode_row(row(19, name), v(18), DecodeOptions::STRICT),
            Err(Invalid::ListCount {
                field,
                count,
                actual: 1
            }),
            "{name}"
        );
    }
}

/// Fixed-part sizes docs/protocol.md §2.3/§4 states (or that follow from its
/// field widths), per version range: (type, first version, last version, bytes).
const FIXED_SIZES: &[(u32, u32, u32, usize)] = &[
    (msg::FAILURE_CONF, 13, 24, 8),
    (msg::FAILURE_EVENT, 13, 24, 4),
    (msg::OPEN_REQ, 13, 24, 44),
    (msg::OPEN_CONF, 13, 18, 26),
    (msg::OPEN_CONF, 19, 23, 30),
    (msg::OPEN_CONF, 24, 24, 32),
    (msg::HEARTBEAT_REQ, 13, 24, 4),
    (msg::HEARTBEAT_CONF, 13, 24, 4),
    (msg::CLOSE_REQ, 13, 24, 8),
    (msg::CLOSE_CONF, 13, 24, 4),
    (msg::CALL_DELIVERED_EVENT, 13, 24, 54),
    (msg::CALL_ESTABLISHED_EVENT, 13, 24, 50),
    (msg::CALL_HELD_EVENT, 13, 24, 22),
    (msg::CALL_RETRIEVED_EVENT, 13, 24, 22),
    (msg::CALL_CLEARED_EVENT, 13, 24, 20),
    (msg::CALL_CONNECTION_CLEARED_EVENT, 13, 24, 22),
    (msg::CALL_ORIGINATED_EVENT, 13, 24, 46),
    (msg::CALL_FAILED_EVENT, 13, 24, 24),
    (msg::CALL_CONFERENCED_EVENT, 13, 24, 46),
    (msg::CALL_TRANSFERRED_EVENT, 13, 24, 46),
    (msg::CALL_DIVERTED_EVENT, 13, 24, 32),
    (msg::CALL_SERVICE_INITIATED_EVENT, 13, 24, 44),
    (msg::CALL_QUEUED_EVENT, 13, 24, 40),
    (msg::CALL_TRANSLATION_ROUTE_EVENT, 13, 24, 4),
    (msg::BEGIN_CALL_EVENT, 13, 24, 26),
    (msg::END_CALL_EVENT, 13, 24, 16),
    (msg::CALL_DATA_UPDATE_EVENT, 13, 24, 40),
    (msg::AGENT_STATE_EVENT, 13, 18, 58),
    (msg::AGENT_STATE_EVENT, 19, 24, 62),
    (msg::SYSTEM_EVENT, 13, 24, 26),
    (msg::CALL_REACHED_NETWORK_EVENT, 13, 24, 28),
    (msg::QUERY_AGENT_STATE_CONF, 13, 18, 30),
    (msg::QUERY_AGENT_STATE_CONF, 19, 24, 34),
    (msg::CALL_DEQUEUED_EVENT, 13, 24, 34),
    (msg::MONITOR_START_REQ, 13, 24, 24),
    (msg::MONITOR_START_CONF, 13, 24, 8),
    (msg::MONITOR_STOP_REQ, 13, 24, 8),
    (msg::CHANGE_MONITOR_MASK_REQ, 13, 24, 16),
    (msg::CLIENT_SESSION_OPENED_EVENT, 13, 24, 24),
    (msg::CLIENT_SESSION_CLOSED_EVENT, 13, 24, 16),
    (msg::SESSION_MONITOR_START_REQ, 13, 24, 8),
    (msg::SESSION_MONITOR_START_CONF, 13, 24, 8),
    (msg::SESSION_MONITOR_STOP_REQ, 13, 24, 8),
    (msg::AGENT_PRE_CALL_EVENT, 13, 19, 30),
    (msg::AGENT_PRE_CALL_EVENT, 20, 24, 34),
    (msg::AGENT_PRE_CALL_ABORT_EVENT, 13, 24, 8),
    (msg::RTP_STARTED_EVENT, 13, 24, 34),
    (msg::RTP_STOPPED_EVENT, 13, 24, 20),
    (msg::AGENT_TEAM_CONFIG_EVENT, 13, 18, 12),
    (msg::AGENT_TEAM_CONFIG_EVENT, 19, 24, 16),
    // §12.2–§12.4: Client Control, Call Data Update, CLIENT_EVENT_REPORT.
    (msg::SET_CALL_DATA_REQ, 13, 24, 30),
    (msg::SET_CALL_DATA_CONF, 13, 24, 4),
    (msg::RELEASE_CALL_REQ, 13, 24, 14),
    (msg::RELEASE_CALL_CONF, 13, 24, 4),
    (msg::CLIENT_EVENT_REPORT_REQ, 13, 24, 6),
    (msg::CLIENT_EVENT_REPORT_CONF, 13, 24, 4),
    (msg::CONTROL_FAILURE_CONF, 13, 24, 10),
    (msg::QUERY_AGENT_STATE_REQ, 13, 24, 16),
    // 21 since v10–13 (16 before, unserved).
    (msg::SET_AGENT_STATE_REQ, 13, 24, 21),
    (msg::SET_AGENT_STATE_CONF, 13, 24, 4),
    (msg::ALTERNATE_CALL_REQ, 13, 24, 20),
    (msg::ALTERNATE_CALL_CONF, 13, 24, 4),
    (msg::ANSWER_CALL_REQ, 13, 24, 14),
    (msg::ANSWER_CALL_CONF, 13, 24, 4),
    (msg::CLEAR_CALL_REQ, 13, 24, 14),
    (msg::CLEAR_CALL_CONF, 13, 24, 4),
    // docs/protocol.md §12.8.1: 14, RequestingDeviceIDType floating (docs/protocol.md §13.1).
    (msg::CLEAR_CONNECTION_REQ, 13, 24, 14),
    (msg::CLEAR_CONNECTION_CONF, 13, 24, 4),
    (msg::CONFERENCE_CALL_REQ, 13, 24, 40),
    (msg::CONFERENCE_CALL_CONF, 13, 24, 16),
    (msg::CONSULTATION_CALL_REQ, 13, 24, 36),
    (msg::CONSULTATION_CALL_CONF, 13, 24, 14),
    (msg::DEFLECT_CALL_REQ, 13, 24, 16),
    (msg::DEFLECT_CALL_CONF, 13, 24, 4),
    (msg::HOLD_CALL_REQ, 13, 24, 16),
    (msg::HOLD_CALL_CONF, 13, 24, 4),
    // SkillGroupNumber from v14.
    (msg::MAKE_CALL_REQ, 13, 13, 28),
    (msg::MAKE_CALL_REQ, 14, 24, 32),
    (msg::MAKE_CALL_CONF, 13, 24, 14),
    (msg::MAKE_PREDICTIVE_CALL_REQ, 13, 24, 42),
    (msg::MAKE_PREDICTIVE_CALL_CONF, 13, 24, 14),
    (msg::RECONNECT_CALL_REQ, 13, 24, 20),
    (msg::RECONNECT_CALL_CONF, 13, 24, 4),
    (msg::RETRIEVE_CALL_REQ, 13, 24, 14),
    (msg::RETRIEVE_CALL_CONF, 13, 24, 4),
    (msg::TRANSFER_CALL_REQ, 13, 24, 40),
    (msg::TRANSFER_CALL_CONF, 13, 24, 16),
    // docs/protocol.md §12.8.2: Reserved is a USHORT.
    (msg::QUERY_DEVICE_INFO_REQ, 13, 24, 10),
    (msg::QUERY_DEVICE_INFO_CONF, 13, 24, 40),
    (msg::SNAPSHOT_CALL_REQ, 13, 24, 14),
    (msg::SNAPSHOT_CALL_CONF, 13, 24, 16),
    (msg::SNAPSHOT_DEVICE_REQ, 13, 24, 10),
    (msg::SNAPSHOT_DEVICE_CONF, 13, 24, 6),
    // PauseDuration UINT since v10–13 (18 before, unserved).
    (msg::SEND_DTMF_SIGNAL_REQ, 13, 24, 20),
    (msg::SEND_DTMF_SIGNAL_CONF, 13, 24, 4),
    (msg::SUPERVISOR_ASSIST_REQ, 13, 24, 14),
    (msg::SUPERVISOR_ASSIST_CONF, 13, 24, 14),
    (msg::EMERGENCY_CALL_REQ, 13, 24, 14),
    (msg::EMERGENCY_CALL_CONF, 13, 24, 14),
    (msg::BAD_CALL_REQ, 13, 24, 14),
    (msg::BAD_CALL_CONF, 13, 24, 4),
    (msg::SET_DEVICE_ATTRIBUTES_REQ, 13, 24, 30),
    (msg::SET_DEVICE_ATTRIBUTES_CONF, 13, 24, 4),
    // v15+ (the type does not exist before; `fixed_part_sizes_follow_protocol_md`
    // checks that too).
    (msg::AGENT_GREETING_CONTROL_REQ, 15, 24, 10),
    (msg::AGENT_GREETING_CONTROL_CONF, 15, 24, 4),
    // §12.4–§12.5: the Miscellaneous service (CLIENT_EVENT_REPORT above) and
    // the two Supervisor events.
    (msg::USER_MESSAGE_REQ, 13, 24, 10),
    (msg::USER_MESSAGE_CONF, 13, 24, 4),
    (msg::USER_MESSAGE_EVENT, 13, 24, 6),
    (msg::REGISTER_VARIABLES_REQ, 13, 24, 10),
    (msg::REGISTER_VARIABLES_CONF, 13, 24, 4),
    (msg::QUERY_AGENT_STATISTICS_REQ, 13, 24, 8),
    // 8 + 84 counters at every served version (docs/protocol.md §12.8 #6, §13).
    (msg::QUERY_AGENT_STATISTICS_CONF, 13, 24, 344),
    (msg::QUERY_SKILL_GROUP_STATISTICS_REQ, 13, 24, 16),
    // 16 + 145 counters, likewise.
    (msg::QUERY_SKILL_GROUP_STATISTICS_CONF, 13, 24, 596),
    // The CCX layout (docs/protocol.md §12.8 #8, §13).
    (msg::SUPERVISOR_ASSIST_EVENT, 13, 24, 14),
    (msg::EMERGENCY_CALL_EVENT, 13, 24, 14),
    (msg::SET_APP_DATA_REQ, 13, 24, 4),
    (msg::SET_APP_DATA_CONF, 13, 24, 4),
    (msg::AGENT_DESK_SETTINGS_REQ, 13, 24, 8),
    (msg::AGENT_DESK_SETTINGS_CONF, 13, 24, 64),
    (msg::START_RECORDING_REQ, 13, 24, 34),
    (msg::START_RECORDING_CONF, 13, 24, 12),
    (msg::STOP_RECORDING_REQ, 13, 24, 28),
    (msg::STOP_RECORDING_CONF, 13, 24, 4),
    // §12.6: the Server service.
    (msg::REGISTER_SERVICE_REQ, 13, 24, 6),
    (msg::REGISTER_SERVICE_CONF, 13, 24, 8),
    (msg::UNREGISTER_SERVICE_REQ, 13, 24, 8),
    (msg::UNREGISTER_SERVICE_CONF, 13, 24, 4),
];

#[test]
fn fixed_part_sizes_follow_protocol_md() {
    for &(message_type, first, last, size) in FIXED_SIZES {
        for version in first..=last {
            assert_eq!(
                Message::fixed_len(message_type, v(version)),
                Some(size),
                "type {message_type} at v{version}"
            );
            assert!(Message::exists_at(message_type, v(version)));
        }
    }
    // Every request-service type has its sizes listed, for every version
    // that has it, and none for a version that lacks it.
    let request_types = CLIENT_CONTROL_AND_CALL_DATA_TYPES
        .iter()
        .chain(MISCELLANEOUS_AND_SUPERVISOR_EVENT_TYPES)
        .chain(SERVER_SERVICE_TYPES);
    for &message_type in request_types {
        for version in Version::all() {
            let listed = FIXED_SIZES.iter().any(|&(t, first, last, _)| {
                t == message_type && (first..=last).contains(&version.number())
            });
            assert_eq!(
                listed,
                Message::exists_at(message_type, version),
                "type {message_type} at v{version}"
            );
        }
    }
}

/// Our own fixtures for what no public vector covers (docs/protocol.md §10): the
/// Peripheral/Client Monitor requests of §4.3–§4.4 and the worked examples of
/// §2.7. (name, versions, whole frame hex, fields). Values are distinct, so a
/// field read at the wrong offset shows as a wrong value.
const OWN_FIXTURES: &[(&str, &[u32], &str, &str)] = &[
    (
        "HEARTBEAT_REQ",
        &[13, 19, 20, 24],
        "00000004000000050000002a",
        r#"{"InvokeID":42}"#,
    ),
    (
        "HEARTBEAT_CONF",
        &[13, 19, 20, 24],
        "00000004000000060000002a",
        r#"{"InvokeID":42}"#,
    ),
    (
        "FAILURE_CONF",
        &[13, 19, 20, 24],
        "00000008000000010000000100000001",
        r#"{"InvokeID":1,"Status":1}"#,
    ),
    // A device monitor (§4.3): ConnectionDeviceIDType NONE, MonitoredDeviceID.
    (
        "MONITOR_START_REQ",
        &[13, 19],
        "0000001f0000005d0000001100001388000000000000ffff00003fffffff004c4c053130303100",
        r#"{"InvokeID":17,"PeripheralID":5000,"ConnectionCallID":0,"CallMsgMask":65535,
            "AgentStateMask":16383,"ConnectionDeviceIDType":65535,"MonitoredDeviceType":76,
            "MONITORED_DEVID":"1001"}"#,
    ),
    (
        "MONITOR_START_REQ",
        &[20, 24],
        "000000210000005d0000001100001388000000000000ffff00003fffffff004c004c00053130303100",
        r#"{"InvokeID":17,"PeripheralID":5000,"ConnectionCallID":0,"CallMsgMask":65535,
            "AgentStateMask":16383,"ConnectionDeviceIDType":65535,"MonitoredDeviceType":76,
            "MONITORED_DEVID":"1001"}"#,
    ),
    // A call monitor: ConnectionCallID + ConnectionDeviceIDType + ConnectionDeviceID.
    (
        "MONITOR_START_REQ",
        &[20, 24],
        "000000210000005d00000018000013890001234500000021000000000001ffff001900053530303000",
        r#"{"InvokeID":24,"PeripheralID":5001,"ConnectionCallID":74565,"CallMsgMask":33,
            "AgentStateMask":0,"ConnectionDeviceIDType":1,"MonitoredDeviceType":65535,
            "CONNECTION_DEVID":"5000"}"#,
    ),
    (
        "MONITOR_STOP_REQ",
        &[13, 19, 20, 24],
        "000000080000005f0000001200000007",
        r#"{"InvokeID":18,"MonitorID":7}"#,
    ),
    (
        "CHANGE_MONITOR_MASK_REQ",
        &[13, 19, 20, 24],
        "00000010000000610000001300000007000000210000000a",
        r#"{"InvokeID":19,"MonitorID":7,"CallMsgMask":33,"AgentStateMask":10}"#,
    ),
    (
        "SESSION_MONITOR_START_REQ",
        &[13, 19, 20, 24],
        "00000008000000650000001400000009",
        r#"{"InvokeID":20,"SessionID":9}"#,
    ),
    // §4.4: the stop request carries the MonitorID (SCALA wrongly sends SessionID).
    (
        "SESSION_MONITOR_STOP_REQ",
        &[13, 19, 20, 24],
        "0000000800000067000000150000000b",
        r#"{"InvokeID":21,"MonitorID":11}"#,
    ),
];

/// Each fixture decodes STRICT at each of its versions, as its type, to the
/// fields it states, and re-encodes to the same bytes.
pub(crate) fn check_own_fixtures(fixtures: &[(&str, &[u32], &str, &str)]) {
    for &(name, versions, frame_hex, fields) in fixtures {
        for &version in versions {
            let row = own_fixture_row(name, version, frame_hex, fields);
            let message = decode_row(&row, v(version), DecodeOptions::STRICT)
                .unwrap_or_else(|e| panic!("{} at v{version}: {e}", row.label()));
            assert_eq!(Message::type_name(row.message_type), Some(name));
            assert_fields(&row, &message, v(version));
            assert_eq!(
                encode(&message, v(version)),
                row.frame,
                "{} at v{version}",
                row.label()
            );
        }
    }
}

fn own_fixture_row(name: &str, version: u32, frame_hex: &str, fields: &str) -> Row {
    let frame = hex::decode(frame_hex).unwrap();
    let message_type = u32::from_be_bytes(frame[4..8].try_into().unwrap());
    let Ok(Value::Object(fields)) = serde_json::from_str(fields) else {
        panic!("{name}: fields")
    };
    Row {
        file: "own fixture",
        name: name.to_string(),
        message_type,
        version,
        frame,
        fields,
    }
}

#[test]
fn own_fixtures_for_monitor_requests_and_worked_examples_are_exact() {
    check_own_fixtures(OWN_FIXTURES);
}

/// Our own fixtures for the Miscellaneous service and the Supervisor events
/// (docs/protocol.md §12.4, §12.5), built from the tables (no public sample
/// exists for these types or versions; §12.9): (name, versions, frame hex,
/// fields), in the format of [`OWN_FIXTURES`]. The byte comments were checked
/// by hand against the tables.
const MISCELLANEOUS_FIXTURES: &[(&str, &[u32], &str, &str)] = &[
    // §12.4: fixed 10 (InvokeID, PeripheralID, Distribution 0001 at body
    // offset 8), then ClientID `01 06` "desk7\0"; MessageLength 0x20 = 10 + 8 + 7 + 7.
    (
        "USER_MESSAGE_REQ",
        &[19],
        "000000200000006b00006b0100001388000101066465736b370005053130303100070568656c7000",
        r#"{"InvokeID":27393,"PeripheralID":5000,"Distribution":1,"CLIENT_ID":"desk7","AGENT_ID":"1001","TEXT":"help"}"#,
    ),
    // The same at v20: ClientID `0001 0006`, MessageLength 0x26 = 10 + 10 + 9 + 9.
    (
        "USER_MESSAGE_REQ",
        &[20],
        "000000260000006b00006b01000013880001000100066465736b37000005000531303031000007000568656c7000",
        r#"{"InvokeID":27393,"PeripheralID":5000,"Distribution":1,"CLIENT_ID":"desk7","AGENT_ID":"1001","TEXT":"help"}"#,
    ),
    // Names only (§12.4): NamedVariable `52 0b` "user.acct\0\0", NamedArray
    // `53 0c` index 2 "user.list\0\0"; counts match (STRICT).
    (
        "REGISTER_VARIABLES_REQ",
        &[19],
        "000000250000006e00006e01020100010001520b757365722e616363740000530c02757365722e6c6973740000",
        r#"{"InvokeID":28161,"CallVariableMask":513,"NumNamedVariables":1,"NumNamedArrays":1,"NAMED_VARIABLE":[{"name":"user.acct","value":""}],"NAMED_ARRAY":[{"index":2,"name":"user.list","value":""}]}"#,
    ),
    (
        "REGISTER_VARIABLES_REQ",
        &[20],
        "000000290000006e00006e010201000100010052000b757365722e6163637400000053000c02757365722e6c6973740000",
        r#"{"InvokeID":28161,"CallVariableMask":513,"NumNamedVariables":1,"NumNamedArrays":1,"NAMED_VARIABLE":[{"name":"user.acct","value":""}],"NAMED_ARRAY":[{"index":2,"name":"user.list","value":""}]}"#,
    ),
    (
        "QUERY_AGENT_STATISTICS_REQ",
        &[19],
        "0000000f00000070000070010000138906053330303100",
        r#"{"InvokeID":28673,"PeripheralID":5001,"AGENT_INSTRUMENT":"3001"}"#,
    ),
    (
        "QUERY_AGENT_STATISTICS_REQ",
        &[20],
        "00000011000000700000700100001389000600053330303100",
        r#"{"InvokeID":28673,"PeripheralID":5001,"AGENT_INSTRUMENT":"3001"}"#,
    ),
    // No floating part: the same bytes at either tag width. SkillGroupID
    // NULL_SKILL_GROUP (ffffffff).
    (
        "QUERY_SKILL_GROUP_STATISTICS_REQ",
        &[13, 19, 20, 24],
        "0000001000000072000072010000138a0000004dffffffff",
        r#"{"InvokeID":29185,"PeripheralID":5002,"SkillGroupNumber":77,"SkillGroupID":4294967295}"#,
    ),
    // The CCX layout (§12.5, §13): PeripheralID 1 and SessionID 0 ("reserved")
    // around ConnectionCallID 01020304 / type 0000; fixed 14, MessageLength
    // 0x2d = 14 + 7 + 12 + 12.
    (
        "SUPERVISOR_ASSIST_EVENT",
        &[19],
        "0000002d00000078000000010102030400000000000019053330303100010a6167656e743130303100070a6e6565642068656c7000",
        r#"{"PeripheralID":1,"ConnectionCallID":16909060,"ConnectionDeviceIDType":0,"SessionID":0,"CONNECTION_DEVID":"3001","CLIENT_ID":"agent1001","TEXT":"need help"}"#,
    ),
    (
        "SUPERVISOR_ASSIST_EVENT",
        &[20],
        "000000330000007800000001010203040000000000000019000533303031000001000a6167656e7431303031000007000a6e6565642068656c7000",
        r#"{"PeripheralID":1,"ConnectionCallID":16909060,"ConnectionDeviceIDType":0,"SessionID":0,"CONNECTION_DEVID":"3001","CLIENT_ID":"agent1001","TEXT":"need help"}"#,
    ),
    // ApplicationPathID `61 04 00000007`, FltCallTypeID `d2 04` and
    // PreCallInvokeID `dd 04` (v14 and later).
    (
        "SET_APP_DATA_REQ",
        &[19],
        "0000002100000081000081016104000000070d03763100160476313000d2040000138bdd0400000009",
        r#"{"InvokeID":33025,"APP_PATH_ID":7,"CALL_VAR_1":"v1","CALL_VAR_10":"v10","CALL_TYPE_ID":5003,"PRE_CALL_INVOKE_ID":9}"#,
    ),
    (
        "SET_APP_DATA_REQ",
        &[20],
        "0000002b00000081000081010061000400000007000d0003763100001600047631300000d200040000138b00dd000400000009",
        r#"{"InvokeID":33025,"APP_PATH_ID":7,"CALL_VAR_1":"v1","CALL_VAR_10":"v10","CALL_TYPE_ID":5003,"PRE_CALL_INVOKE_ID":9}"#,
    ),
    (
        "AGENT_DESK_SETTINGS_REQ",
        &[19],
        "0000000f00000083000083010000138c05053130303200",
        r#"{"InvokeID":33537,"PeripheralID":5004,"AGENT_ID":"1002"}"#,
    ),
    (
        "AGENT_DESK_SETTINGS_REQ",
        &[20],
        "0000001100000083000083010000138c000500053130303200",
        r#"{"InvokeID":33537,"PeripheralID":5004,"AGENT_ID":"1002"}"#,
    ),
    // Fixed 64 (fourteen UINTs after PeripheralID, values 0x2001, 1…13); at
    // v19 PlayZipTone/ACDSharedLineUsage (307/306) cannot be written.
    (
        "AGENT_DESK_SETTINGS_CONF",
        &[19],
        "0000004b00000084000083020000138c000020010000000100000002000000030000000400000005000000060000000700000008000000090000000a0000000b0000000c0000000d5d0931302e302e302e3900",
        r#"{"InvokeID":33538,"PeripheralID":5004,"DeskSettingsMask":8193,"WrapupDataIncomingMode":1,"WrapupDataOutgoingMode":2,"LogoutNonActivityTime":3,"QualityRecordingRate":4,"RingNoAnswerTime":5,"SilentMonitorWarningMessage":6,"SilentMonitorAudibleIndication":7,"SupervisorAssistCallMethod":8,"EmergencyCallMethod":9,"AutoRecordOnEmergency":10,"RecordingMode":11,"WorkModeTimer":12,"RingNoAnswerDN":13,"DEFAULT_DEVICE_PORT_ADDRESS":"10.0.0.9"}"#,
    ),
    // From v20 with `0133 0004 00000001` (307) and `0132 0004 00000002` (306);
    // MessageLength 0x5d = 64 + 13 + 8 + 8.
    (
        "AGENT_DESK_SETTINGS_CONF",
        &[20, 24],
        "0000005d00000084000083020000138c000020010000000100000002000000030000000400000005000000060000000700000008000000090000000a0000000b0000000c0000000d005d000931302e302e302e390001330004000000010132000400000002",
        r#"{"InvokeID":33538,"PeripheralID":5004,"DeskSettingsMask":8193,"WrapupDataIncomingMode":1,"WrapupDataOutgoingMode":2,"LogoutNonActivityTime":3,"QualityRecordingRate":4,"RingNoAnswerTime":5,"SilentMonitorWarningMessage":6,"SilentMonitorAudibleIndication":7,"SupervisorAssistCallMethod":8,"EmergencyCallMethod":9,"AutoRecordOnEmergency":10,"RecordingMode":11,"WorkModeTimer":12,"RingNoAnswerDN":13,"DEFAULT_DEVICE_PORT_ADDRESS":"10.0.0.9","PLAY_ZIP_TONE":1,"ACD_SHARED_LINE_USAGE":2}"#,
    ),
    // Fixed 34 (six UINTs, five USHORTs); MessageLength 0x43 = 34 + 7 + 8 + 11 + 7.
    (
        "START_RECORDING_REQ",
        &[19],
        "0000004300000093000093010000138d0a0b0c0d00009c400000fa0000000014000100020000000100041905333030310001066465736b3700510931302e302e302e370006053330303100",
        r#"{"InvokeID":37633,"PeripheralID":5005,"ConnectionCallID":168496141,"ClientPort":40000,"BitRate":64000,"PacketSize":20,"ConnectionDeviceIDType":1,"Direction":2,"RTPType":0,"EchoCancellation":1,"PayloadType":4,"CONNECTION_DEVID":"3001","CLIENT_ID":"desk7","CLIENT_ADDRESS":"10.0.0.7","AGENT_INSTRUMENT":"3001"}"#,
    ),
    (
        "START_RECORDING_REQ",
        &[20],
        "0000004b00000093000093010000138d0a0b0c0d00009c400000fa000000001400010002000000010004001900053330303100000100066465736b37000051000931302e302e302e3700000600053330303100",
        r#"{"InvokeID":37633,"PeripheralID":5005,"ConnectionCallID":168496141,"ClientPort":40000,"BitRate":64000,"PacketSize":20,"ConnectionDeviceIDType":1,"Direction":2,"RTPType":0,"EchoCancellation":1,"PayloadType":4,"CONNECTION_DEVID":"3001","CLIENT_ID":"desk7","CLIENT_ADDRESS":"10.0.0.7","AGENT_INSTRUMENT":"3001"}"#,
    ),
    // At v18 ClientAddressIPV6 (226) exists: `e2 10` + 16 address bytes.
    (
        "START_RECORDING_REQ",
        &[18],
        "0000005500000093000093010000138d0a0b0c0d00009c400000fa0000000014000100020000000100041905333030310001066465736b3700510931302e302e302e370006053330303100e21020010db8000000000000000000000007",
        r#"{"InvokeID":37633,"PeripheralID":5005,"ConnectionCallID":168496141,"ClientPort":40000,"BitRate":64000,"PacketSize":20,"ConnectionDeviceIDType":1,"Direction":2,"RTPType":0,"EchoCancellation":1,"PayloadType":4,"CONNECTION_DEVID":"3001","CLIENT_ID":"desk7","CLIENT_ADDRESS":"10.0.0.7","AGENT_INSTRUMENT":"3001","CLIENT_ADDRESS_IPV6":"20010db8000000000000000000000007"}"#,
    ),
    // Fixed 28: SessionID ffffffff and ServerData 00000055 before the two USHORTs.
    (
        "STOP_RECORDING_REQ",
        &[19],
        "0000002a00000095000095010000138d0a0b0c0d00009c40ffffffff00000055000100021905333030310004053330303100",
        r#"{"InvokeID":38145,"PeripheralID":5005,"ConnectionCallID":168496141,"ClientPort":40000,"SessionID":4294967295,"ServerData":85,"ConnectionDeviceIDType":1,"Direction":2,"CONNECTION_DEVID":"3001","AGENT_EXTENSION":"3001"}"#,
    ),
    (
        "STOP_RECORDING_REQ",
        &[20],
        "0000002e00000095000095010000138d0a0b0c0d00009c40ffffffff0000005500010002001900053330303100000400053330303100",
        r#"{"InvokeID":38145,"PeripheralID":5005,"ConnectionCallID":168496141,"ClientPort":40000,"SessionID":4294967295,"ServerData":85,"ConnectionDeviceIDType":1,"Direction":2,"CONNECTION_DEVID":"3001","AGENT_EXTENSION":"3001"}"#,
    ),
    // What the v19 sample rows become at v20 (2-byte tag and length).
    (
        "USER_MESSAGE_EVENT",
        &[20],
        "0000002c0000006d01020304000200010009436c69656e7449440000070015557365724d6573736167654576656e745465787400",
        r#"{"ICMCentralControllerTime":16909060,"Distribution":2,"CLIENT_ID":"ClientID","TEXT":"UserMessageEventText"}"#,
    ),
    // Without 226 (v14–18 only): MessageLength 0x5f = 103 − 20 (226) + 6 × 2.
    (
        "EMERGENCY_CALL_EVENT",
        &[20],
        "0000005f0000007b010203040304050600010203040500190013436f6e6e656374696f6e44657669636549440000010009436c69656e744944000051000e436c69656e744164647265737300000400053330303100000500053130303100000600053330303100",
        r#"{"PeripheralID":16909060,"ConnectionCallID":50595078,"ConnectionDeviceIDType":1,"SessionID":33752069,"CONNECTION_DEVID":"ConnectionDeviceID","CLIENT_ID":"ClientID","CLIENT_ADDRESS":"ClientAddress","AGENT_EXTENSION":"3001","AGENT_ID":"1001","AGENT_INSTRUMENT":"3001"}"#,
    ),
];

#[test]
fn own_fixtures_of_the_miscellaneous_service_and_supervisor_events_are_exact() {
    check_own_fixtures(MISCELLANEOUS_FIXTURES);
    // Every type without a public sample has a fixture at v19 and at v20.
    for name in [
        "USER_MESSAGE_REQ",
        "REGISTER_VARIABLES_REQ",
        "QUERY_AGENT_STATISTICS_REQ",
        "QUERY_SKILL_GROUP_STATISTICS_REQ",
        "SUPERVISOR_ASSIST_EVENT",
        "SET_APP_DATA_REQ",
        "AGENT_DESK_SETTINGS_REQ",
        "AGENT_DESK_SETTINGS_CONF",
        "START_RECORDING_REQ",
        "STOP_RECORDING_REQ",
    ] {
        for version in [19, 20] {
            assert!(
                MISCELLANEOUS_FIXTURES
                    .iter()
                    .any(|(n, versions, ..)| *n == name && versions.contains(&version)),
                "{name} at v{version}"
            );
        }
    }
}

fn fixture(name: &str, version: u32) -> Row {
    let &(_, _, frame_hex, fields) = MISCELLANEOUS_FIXTURES
        .iter()
        .find(|(n, versions, ..)| *n == name && versions.contains(&version))
        .unwrap_or_else(|| panic!("fixture {name} v{version}"));
    own_fixture_row(name, version, frame_hex, fields)
}

fn int(row: &Row, key: &str) -> Option<u64> {
    row.fields.get(key).and_then(Value::as_u64)
}

fn text<'a>(row: &'a Row, key: &str) -> Option<&'a [u8]> {
    row.fields
        .get(key)
        .and_then(Value::as_str)
        .map(str::as_bytes)
}

/// `routing::extract` reads the routing keys straight from the bytes; on the
/// vector events they must be the values the rows state.
#[test]
fn routing_keys_of_vector_events_are_the_stated_values() {
    let mut nr_calls = 0;
    for row in all_rows().iter().filter(|r| !is_documented_exception(r)) {
        let keys = routing::extract(&row.frame, row.version()).unwrap();
        let frame = &row.frame[..];
        if !routing::has_monitor_id(row.message_type) {
            continue;
        }
        assert_eq!(
            keys.peripheral_id.map(u64::from),
            int(row, "PeripheralID"),
            "{}",
            row.label()
        );
        let call = keys.call.map(|c| {
            (
                u64::from(c.call_id),
                u64::from(c.device_id_type),
                c.device_id.map(|s| s.of(frame)),
            )
        });
        let stated = [
            ("Connection", "CONNECTION_DEVID"),
            ("Primary", "PRIMARY_DEVID"),
        ]
        .into_iter()
        .find_map(|(prefix, tag)| {
            let id = int(row, &format!("{prefix}CallID"))?;
            let kind = int(row, &format!("{prefix}DeviceIDType"))?;
            Some((id, kind, text(row, tag)))
        });
        assert_eq!(call, stated, "{}", row.label());
        nr_calls += usize::from(call.is_some());
        let other = keys
            .other_call
            .map(|c| (u64::from(c.call_id), c.device_id.map(|s| s.of(frame))));
        let stated_other = [
            ("SecondaryCallID", "SECONDARY_DEVID"),
            ("NewConnectionCallID", "NEW_CONNECTION_DEVID"),
        ]
        .into_iter()
        .find_map(|(id, tag)| Some((int(row, id)?, text(row, tag))));
        assert_eq!(other, stated_other, "{}", row.label());
        for (span, tag) in [
            (keys.agent_id, "AGENT_ID"),
            (keys.agent_extension, "AGENT_EXTENSION"),
            (keys.agent_instrument, "AGENT_INSTRUMENT"),
        ] {
            assert_eq!(
                span.map(|s| s.of(frame)),
                text(row, tag),
                "{} {tag}",
                row.label()
            );
        }
        if row.message_type == msg::AGENT_STATE_EVENT {
            assert_eq!(keys.agent_state.map(u64::from), int(row, "AgentState"));
        }
        assert_eq!(keys.trunk_number.map(u64::from), int(row, "TRUNK_NUMBER"));
        assert_eq!(
            keys.trunk_group_number.map(u64::from),
            int(row, "TRUNK_GROUP_NUMBER")
        );
    }
    assert!(nr_calls >= 30, "{nr_calls} call events checked");
}

/// Every request and confirmation of the Client Control and Call Data Update
/// services, and CONTROL_FAILURE_CONF (docs/protocol.md §12.2, §12.3).
pub(crate) const CLIENT_CONTROL_AND_CALL_DATA_TYPES: &[u32] = &[
    msg::SET_CALL_DATA_REQ,
    msg::SET_CALL_DATA_CONF,
    msg::RELEASE_CALL_REQ,
    msg::RELEASE_CALL_CONF,
    msg::CONTROL_FAILURE_CONF,
    msg::QUERY_AGENT_STATE_REQ,
    msg::QUERY_AGENT_STATE_CONF,
    msg::SET_AGENT_STATE_REQ,
    msg::SET_AGENT_STATE_CONF,
    msg::ALTERNATE_CALL_REQ,
    msg::ALTERNATE_CALL_CONF,
    msg::ANSWER_CALL_REQ,
    msg::ANSWER_CALL_CONF,
    msg::CLEAR_CALL_REQ,
    msg::CLEAR_CALL_CONF,
    msg::CLEAR_CONNECTION_REQ,
    msg::CLEAR_CONNECTION_CONF,
    msg::CONFERENCE_CALL_REQ,
    msg::CONFERENCE_CALL_CONF,
    msg::CONSULTATION_CALL_REQ,
    msg::CONSULTATION_CALL_CONF,
    msg::DEFLECT_CALL_REQ,
    msg::DEFLECT_CALL_CONF,
    msg::HOLD_CALL_REQ,
    msg::HOLD_CALL_CONF,
    msg::MAKE_CALL_REQ,
    msg::MAKE_CALL_CONF,
    msg::MAKE_PREDICTIVE_CALL_REQ,
    msg::MAKE_PREDICTIVE_CALL_CONF,
    msg::RECONNECT_CALL_REQ,
    msg::RECONNECT_CALL_CONF,
    msg::RETRIEVE_CALL_REQ,
    msg::RETRIEVE_CALL_CONF,
    msg::TRANSFER_CALL_REQ,
    msg::TRANSFER_CALL_CONF,
    msg::QUERY_DEVICE_INFO_REQ,
    msg::QUERY_DEVICE_INFO_CONF,
    msg::SNAPSHOT_CALL_REQ,
    msg::SNAPSHOT_CALL_CONF,
    msg::SNAPSHOT_DEVICE_REQ,
    msg::SNAPSHOT_DEVICE_CONF,
    msg::SEND_DTMF_SIGNAL_REQ,
    msg::SEND_DTMF_SIGNAL_CONF,
    msg::SUPERVISOR_ASSIST_REQ,
    msg::SUPERVISOR_ASSIST_CONF,
    msg::EMERGENCY_CALL_REQ,
    msg::EMERGENCY_CALL_CONF,
    msg::BAD_CALL_REQ,
    msg::BAD_CALL_CONF,
    msg::SET_DEVICE_ATTRIBUTES_REQ,
    msg::SET_DEVICE_ATTRIBUTES_CONF,
    msg::AGENT_GREETING_CONTROL_REQ,
    msg::AGENT_GREETING_CONTROL_CONF,
];

/// Rows of the request-service file whose type belongs to another service:
/// not checked by `request_vectors_…` (name, why).
const OTHER_SERVICE_REQUEST_ROWS: &[(&str, &str)] = &[
    ("CLIENT_EVENT_REPORT_REQ", "Miscellaneous service"),
    ("CLIENT_EVENT_REPORT_CONF", "Miscellaneous service"),
    ("USER_MESSAGE_CONF", "Miscellaneous service"),
    ("USER_MESSAGE_EVENT", "Miscellaneous service"),
    ("REGISTER_VARIABLES_CONF", "Miscellaneous service"),
    ("EMERGENCY_CALL_EVENT", "Supervisor service event"),
    ("SUPERVISE_CALL_CONF", "Supervisor service (supervisor.rs)"),
    (
        "AGENT_TEAM_CONFIG_EVENT",
        "Supervisor service event (v≤18 layout, pinned above)",
    ),
    ("SET_APP_DATA_CONF", "Miscellaneous service"),
    ("LIST_AGENT_TEAM_CONF", "Supervisor service (supervisor.rs)"),
    (
        "MONITOR_AGENT_TEAM_START_CONF",
        "Supervisor service (supervisor.rs)",
    ),
    (
        "MONITOR_AGENT_TEAM_STOP_CONF",
        "Supervisor service (supervisor.rs)",
    ),
    ("REGISTER_SERVICE_CONF", "Server service"),
    ("UNREGISTER_SERVICE_CONF", "Server service"),
    ("START_RECORDING_CONF", "Miscellaneous service"),
    ("STOP_RECORDING_CONF", "Miscellaneous service"),
];

/// README (request-service samples) deviation 1: QUERY_AGENT_STATE_CONF walks
/// only without the v19 DepartmentID, which the codec keeps (docs/protocol.md §9.4).
const REQUEST_PRE_V19_LAYOUT_ROWS: &[&str] = &["QUERY_AGENT_STATE_CONF"];

#[test]
fn request_vector_file_loads_completely_and_repeats_the_samples_frames() {
    let rows = request_rows();
    assert_eq!(rows.len(), 47);
    for row in rows {
        assert_eq!(row.version, 19, "{}", row.label());
        let (parsed, used) = ctirouter::proto::frame::parse(&row.frame).unwrap();
        assert_eq!(used, row.frame.len(), "{}", row.label());
        assert_eq!(parsed.message_type, row.message_type, "{}", row.label());
        // README: "each row has exactly the bytes of the row of the same name".
        assert_eq!(row.frame, self::row(19, &row.name).frame, "{}", row.label());
    }
    let skipped: Vec<&str> = OTHER_SERVICE_REQUEST_ROWS.iter().map(|(n, _)| *n).collect();
    let other: Vec<&str> = rows
        .iter()
        .filter(|r| !CLIENT_CONTROL_AND_CALL_DATA_TYPES.contains(&r.message_type))
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(other, skipped, "the skipped rows are the other services'");
}

/// Every Client Control / Call Data Update row decodes at v19 to the values it
/// states, as its typed message, and re-encodes byte-exact. The one row with
/// the v≤18 layout is refused at v19 and exact at v18.
#[test]
fn request_vectors_of_client_control_and_call_data_decode_and_re_encode_byte_exact() {
    let mut nr_checked = 0;
    for row in request_rows() {
        if !CLIENT_CONTROL_AND_CALL_DATA_TYPES.contains(&row.message_type) {
            continue;
        }
        let version = if REQUEST_PRE_V19_LAYOUT_ROWS.contains(&row.name.as_str()) {
            let err = decode_row(row, v(19), DecodeOptions::COUNTS_UNCHECKED).expect_err(&row.name);
            assert!(
                matches!(err, Invalid::FloatingOverrun { .. }),
                "{}: {err:?}",
                row.label()
            );
            v(18)
        } else {
            v(19)
        };
        let message = unchecked(row, version);
        assert!(
            !matches!(message, Message::Raw(_)),
            "{} is typed",
            row.label()
        );
        assert_eq!(
            Message::type_name(row.message_type),
            Some(row.name.as_str()),
            "{}",
            row.label()
        );
        assert_fields(row, &message, version);
        assert_eq!(
            encode(&message, version),
            row.frame,
            "{} at v{version}: re-encoded frame differs",
            row.label()
        );
        nr_checked += 1;
    }
    assert_eq!(nr_checked, 31);
}

/// README deviation 3: the counts that lie make STRICT decoding fail, naming
/// the first lying count; every other Client Control / Call Data Update row
/// decodes the same STRICT.
#[test]
fn request_vectors_with_lying_counts_fail_strict_decoding() {
    let lying: &[(&str, &str, usize)] = &[
        ("SET_CALL_DATA_REQ", "num_named_variables", 1798),
        ("QUERY_AGENT_STATE_CONF", "num_skill_groups", 515),
        ("SET_AGENT_STATE_REQ", "num_skill_groups", 258),
        ("CONFERENCE_CALL_CONF", "num_parties", 772),
        ("TRANSFER_CALL_CONF", "num_parties", 772),
        ("QUERY_DEVICE_INFO_CONF", "num_lines", 515),
        ("SNAPSHOT_CALL_CONF", "num_named_variables", 1029),
        ("SNAPSHOT_DEVICE_CONF", "num_calls", 515),
    ];
    for row in request_rows() {
        if !CLIENT_CONTROL_AND_CALL_DATA_TYPES.contains(&row.message_type) {
            continue;
        }
        let version = if REQUEST_PRE_V19_LAYOUT_ROWS.contains(&row.name.as_str()) {
            v(18)
        } else {
            v(19)
        };
        let strict = decode_row(row, version, DecodeOptions::STRICT);
        match lying.iter().find(|(name, ..)| *name == row.name) {
            Some(&(_, field, count)) => assert_eq!(
                strict,
                Err(Invalid::ListCount {
                    field,
                    count,
                    actual: 1
                }),
                "{}",
                row.label()
            ),
            None => assert_eq!(strict, Ok(unchecked(row, version)), "{}", row.label()),
        }
    }
}

/// Every type of the two services is typed, under its protocol name, from the
/// version docs/protocol.md §12 gives (AGENT_GREETING_CONTROL from v15).
#[test]
fn client_control_and_call_data_types_are_all_typed() {
    for &message_type in CLIENT_CONTROL_AND_CALL_DATA_TYPES {
        assert!(
            Message::TYPED.contains(&message_type),
            "type {message_type}"
        );
        let since = match message_type {
            msg::AGENT_GREETING_CONTROL_REQ | msg::AGENT_GREETING_CONTROL_CONF => 15,
            _ => 13,
        };
        assert_eq!(Message::since(message_type), since, "type {message_type}");
        // Replies are exactly the confirmations (docs/protocol.md §12.1).
        let name = Message::type_name(message_type).unwrap();
        assert_eq!(
            msg::is_reply(message_type),
            name.ends_with("_CONF"),
            "{name}"
        );
    }
}

/// Every request, confirmation and event of the Miscellaneous service
/// (docs/protocol.md §12.4) and the Supervisor service events the codec types
/// (§12.5: SUPERVISOR_ASSIST_EVENT, EMERGENCY_CALL_EVENT).
pub(crate) const MISCELLANEOUS_AND_SUPERVISOR_EVENT_TYPES: &[u32] = &[
    msg::CLIENT_EVENT_REPORT_REQ,
    msg::CLIENT_EVENT_REPORT_CONF,
    msg::USER_MESSAGE_REQ,
    msg::USER_MESSAGE_CONF,
    msg::USER_MESSAGE_EVENT,
    msg::REGISTER_VARIABLES_REQ,
    msg::REGISTER_VARIABLES_CONF,
    msg::QUERY_AGENT_STATISTICS_REQ,
    msg::QUERY_AGENT_STATISTICS_CONF,
    msg::QUERY_SKILL_GROUP_STATISTICS_REQ,
    msg::QUERY_SKILL_GROUP_STATISTICS_CONF,
    msg::SUPERVISOR_ASSIST_EVENT,
    msg::EMERGENCY_CALL_EVENT,
    msg::SET_APP_DATA_REQ,
    msg::SET_APP_DATA_CONF,
    msg::AGENT_DESK_SETTINGS_REQ,
    msg::AGENT_DESK_SETTINGS_CONF,
    msg::START_RECORDING_REQ,
    msg::START_RECORDING_CONF,
    msg::STOP_RECORDING_REQ,
    msg::STOP_RECORDING_CONF,
];

/// The three events among them: no InvokeID, sent unsolicited to event sessions.
pub(crate) const REQUEST_SERVICE_EVENTS: [u32; 3] = [
    msg::USER_MESSAGE_EVENT,
    msg::SUPERVISOR_ASSIST_EVENT,
    msg::EMERGENCY_CALL_EVENT,
];

/// Every type of the Miscellaneous service and the two events is typed, under
/// its protocol name, at every served version; the replies are exactly the
/// confirmations (docs/protocol.md §12.1).
#[test]
fn miscellaneous_and_supervisor_event_types_are_all_typed() {
    for &message_type in MISCELLANEOUS_AND_SUPERVISOR_EVENT_TYPES {
        assert!(
            Message::TYPED.contains(&message_type),
            "type {message_type}"
        );
        assert_eq!(Message::since(message_type), 13, "type {message_type}");
        let name = Message::type_name(message_type).unwrap();
        assert_eq!(
            msg::is_reply(message_type),
            name.ends_with("_CONF"),
            "{name}"
        );
        assert_eq!(
            REQUEST_SERVICE_EVENTS.contains(&message_type),
            name.ends_with("_EVENT"),
            "{name}"
        );
        // None of them is routed by keys or starts with a MonitorID.
        assert!(!routing::has_monitor_id(message_type), "{name}");
    }
}

/// The request-file rows of the Miscellaneous service and EMERGENCY_CALL_EVENT
/// decode at v19 as their typed message, to the values they state, and
/// re-encode byte-exact. EMERGENCY_CALL_EVENT and START_RECORDING_CONF carry
/// 226 (README contradiction 2): decoded, then left out at v19
/// (`ipv6_tags_decode_at_19_but_are_not_re_encoded_there` pins the bytes).
#[test]
fn request_vectors_of_the_miscellaneous_service_and_supervisor_events_decode_typed() {
    let mut nr_checked = 0;
    for row in request_rows() {
        if !MISCELLANEOUS_AND_SUPERVISOR_EVENT_TYPES.contains(&row.message_type) {
            continue;
        }
        let message = unchecked(row, v(19));
        assert!(!matches!(message, Message::Raw(_)), "{}", row.label());
        assert_eq!(
            Message::type_name(row.message_type),
            Some(row.name.as_str())
        );
        assert_eq!(
            decode_row(row, v(19), DecodeOptions::STRICT).as_ref(),
            Ok(&message),
            "{}: no list counts to lie",
            row.label()
        );
        let re_encoded = encode(&message, v(19));
        if IPV6_TAG_ROWS.contains(&row.name.as_str()) {
            let fixed = Message::fixed_len(row.message_type, v(19)).unwrap();
            let expected = without_tags(&row.frame, fixed, v(19), &IPV6_TAGS);
            assert_eq!(re_encoded, expected, "{}", row.label());
            let mut stated = expected_fields(row);
            assert!(stated.remove("CLIENT_ADDRESS_IPV6").is_some());
            let again = decode_row(
                &Row {
                    frame: re_encoded,
                    ..row.clone()
                },
                v(19),
                DecodeOptions::STRICT,
            )
            .unwrap();
            let diff = field_diff(&decoded_fields(&again, v(19)), &stated);
            assert!(diff.is_empty(), "{}: {diff:#?}", row.label());
        } else {
            assert_fields(row, &message, v(19));
            assert_eq!(re_encoded, row.frame, "{}", row.label());
        }
        nr_checked += 1;
    }
    // 32, 33, 108, 109, 111, 123, 130, 148, 150.
    assert_eq!(nr_checked, 9);
}

/// The counter names of the statistics confirmations as docs/protocol.md §12.4
/// lists them (PascalCase, built from its lists independently of the codec's
/// table).
fn documented_counter_names(message_type: u32) -> Vec<String> {
    let calls = |x: &str| ["", "TalkTime", "Time", "Held", "HeldTime"].map(|s| format!("{x}{s}"));
    let tail = [
        "BargeInCalls",
        "InterceptCalls",
        "MonitorCalls",
        "WhisperCalls",
        "EmergencyCalls",
    ];
    if message_type == msg::QUERY_AGENT_STATISTICS_CONF {
        let mut base: Vec<String> = [
            "AvailTime",
            "LoggedOnTime",
            "NotReadyTime",
            "ICMAvailableTime",
            "RoutableTime",
        ]
        .map(String::from)
        .to_vec();
        base.extend(calls("AgentOutCalls"));
        base.extend(
            [
                "HandledCalls",
                "HandledCallsTalkTime",
                "HandledCallsAfterCallTime",
                "HandledCallsTime",
            ]
            .map(String::from),
        );
        base.extend(
            [
                "IncomingCallsHeld",
                "IncomingCallsHeldTime",
                "InternalCalls",
                "InternalCallsTime",
            ]
            .map(String::from),
        );
        base.extend(
            [
                "InternalCallsRcvd",
                "InternalCallsRcvdTime",
                "InternalCallsHeld",
                "InternalCallsHeldTime",
            ]
            .map(String::from),
        );
        for x in ["AutoOutCalls", "PreviewCalls", "ReservationCalls"] {
            base.extend(calls(x));
        }
        base.extend(tail.map(String::from));
        assert_eq!(base.len(), 42);
        let session = base.iter().map(|n| format!("{n}Session"));
        let today = base.iter().map(|n| format!("{n}Today"));
        return session.chain(today).collect();
    }
    let now = [
        "AgentsLoggedOn",
        "AgentsAvail",
        "AgentsNotReady",
        "AgentsReady",
        "AgentsTalkingIn",
        "AgentsTalkingOut",
        "AgentsTalkingOther",
        "AgentsWorkNotReady",
        "AgentsWorkReady",
        "AgentsBusyOther",
        "AgentsReserved",
        "AgentsHold",
        "AgentsICMAvailable",
        "AgentsApplicationAvailable",
        "AgentsTalkingAutoOut",
        "AgentsTalkingPreview",
        "AgentsTalkingReservation",
        "RouterCallsQNow",
        "LongestRouterCallQNow",
        "CallsQNow",
        "CallsQTimeNow",
        "LongestCallQNow",
    ];
    let mut base: Vec<String> = ["AvailTime", "LoggedOnTime", "NotReadyTime"]
        .map(String::from)
        .to_vec();
    base.extend(calls("AgentOutCalls"));
    base.extend(
        [
            "HandledCalls",
            "HandledCallsTalkTime",
            "HandledCallsAfterCallTime",
            "HandledCallsTime",
        ]
        .map(String::from),
    );
    base.extend(
        [
            "IncomingCallsHeld",
            "IncomingCallsHeldTime",
            "InternalCallsRcvd",
            "InternalCallsRcvdTime",
        ]
        .map(String::from),
    );
    base.extend(["InternalCallsHeld", "InternalCallsHeldTime"].map(String::from));
    for x in ["AutoOutCalls", "PreviewCalls", "ReservationCalls"] {
        base.extend(calls(x));
    }
    base.extend(tail.map(String::from));
    assert_eq!(base.len(), 38);
    let mut names: Vec<String> = now.map(String::from).to_vec();
    for (suffix, queue_suffix) in [("To5", "5"), ("ToHalf", "Half"), ("Today", "Today")] {
        names.extend(base.iter().map(|n| format!("{n}{suffix}")));
        names
            .extend(["CallsQ", "CallsQTime", "LongestCallQ"].map(|q| format!("{q}{queue_suffix}")));
    }
    names
}

/// The statistics confirmations (no public sample, docs/protocol.md §12.9):
/// frames built here byte by byte from the §12.4 tables, every counter a
/// distinct value, at v19 and v20. They decode STRICT to the counters in the
/// documented order and names (`visit` yields one field per counter), and
/// re-encode byte-exact.
#[test]
fn statistics_confirmations_carry_their_counters_in_the_documented_order() {
    for (message_type, head, floating) in [
        (
            msg::QUERY_AGENT_STATISTICS_CONF,
            vec![("InvokeID", 0x7101u32), ("PeripheralID", 5000)],
            Some((tags::AGENT_ID, "1001")),
        ),
        (
            msg::QUERY_SKILL_GROUP_STATISTICS_CONF,
            vec![
                ("InvokeID", 0x7301),
                ("PeripheralID", 5000),
                ("SkillGroupNumber", 77),
                ("SkillGroupID", 0x0102),
            ],
            None,
        ),
    ] {
        let names = documented_counter_names(message_type);
        assert_eq!(names.len(), [84, 145][usize::from(head.len() == 4)]);
        for version in [v(19), v(20)] {
            let mut body: Vec<u8> = head.iter().flat_map(|(_, x)| x.to_be_bytes()).collect();
            let counter = |i: usize| 0x0A00_0000 + i as u32;
            body.extend((0..names.len()).flat_map(|i| counter(i).to_be_bytes()));
            assert_eq!(Message::fixed_len(message_type, version), Some(body.len()));
            if let Some((tag, text)) = floating {
                body.extend(floating_field(
                    version,
                    tag,
                    &[text.as_bytes(), b"\0"].concat(),
                ));
            }
            let frame = testkit::raw_frame(message_type, &body);
            // Hand-checked: the first counter right after the head, the last
            // one right before the floating part.
            let first = 8 + 4 * head.len();
            assert_eq!(frame[first..first + 4], [0x0A, 0, 0, 0]);
            let last = first + 4 * (names.len() - 1);
            assert_eq!(frame[last..last + 4], [0x0A, 0, 0, names.len() as u8 - 1]);

            let (message, used) =
                ctirouter::proto::decode_frame(&frame, version, DecodeOptions::STRICT).unwrap();
            assert_eq!(used, frame.len());
            let mut fixed = Vec::new();
            let mut agent_id = None;
            message.visit(version, &mut |f| match (f.tag, f.value) {
                (None, FieldValue::Int(i)) => fixed.push((f.name, i)),
                (Some(tags::AGENT_ID), FieldValue::Str(s)) => agent_id = Some(s.to_vec()),
                other => panic!("{other:?}"),
            });
            assert_eq!(fixed.len(), head.len() + names.len());
            for (i, (name, value)) in head.iter().enumerate() {
                assert_eq!(normalise(fixed[i].0), normalise(name));
                assert_eq!(fixed[i].1, i64::from(*value));
            }
            for (i, name) in names.iter().enumerate() {
                let (got, value) = fixed[head.len() + i];
                assert_eq!(normalise(got), normalise(name), "counter {i}");
                assert_eq!(value, i64::from(counter(i)), "{name}");
            }
            assert_eq!(agent_id, floating.map(|(_, t)| t.as_bytes().to_vec()));
            assert_eq!(
                encode(&message, version),
                frame,
                "type {message_type} at v{version}"
            );
        }
    }
    // The named accessors agree with the order.
    let stats = ctirouter::proto::msg::AgentStatistics(std::array::from_fn(|i| i as u32));
    assert_eq!(stats.get("emergency_calls_today"), Some(83));
    assert_eq!(stats.get("icm_available_time_session"), Some(3));
}

/// The three events transcode between the tag widths (v19 ↔ v20) and from
/// v24 to v13 and back (docs/protocol.md §2.5), through `transcode` as the
/// router does per session version: the v19 samples and our fixtures become
/// exactly the v20 frames built from the tables, and come back exactly;
/// EMERGENCY_CALL_EVENT's 226 (v14–18 only) survives v18 → v14 and is left
/// out from v19 on.
#[test]
fn request_service_events_transcode_across_the_tag_width_and_back() {
    let transcoded = |frame: &[u8], from: u32, to: u32| {
        let mut out = Vec::new();
        let written = transcode(frame, v(from), v(to), &mut out).unwrap();
        assert_eq!(written, Transcoded::Written(out.len()), "{from}->{to}");
        out
    };
    let emergency = row(19, "EMERGENCY_CALL_EVENT");
    let fixed = Message::fixed_len(msg::EMERGENCY_CALL_EVENT, v(19)).unwrap();
    let emergency_v19 = without_tags(&emergency.frame, fixed, v(19), &IPV6_TAGS);
    let cases = [
        (
            row(19, "USER_MESSAGE_EVENT").frame.clone(),
            fixture("USER_MESSAGE_EVENT", 20).frame,
        ),
        (
            fixture("SUPERVISOR_ASSIST_EVENT", 19).frame,
            fixture("SUPERVISOR_ASSIST_EVENT", 20).frame,
        ),
        (
            emergency_v19.clone(),
            fixture("EMERGENCY_CALL_EVENT", 20).frame,
        ),
    ];
    let mut nr_types = BTreeSet::new();
    for (narrow, wide) in &cases {
        assert_eq!(&transcoded(narrow, 19, 20), wide);
        assert_eq!(&transcoded(wide, 20, 19), narrow);
        // Same layout at v24 and v13 as at v20 and v19 (no gated field here).
        assert_eq!(&transcoded(wide, 24, 13), narrow);
        assert_eq!(&transcoded(narrow, 13, 24), wide);
        let (message, _) =
            ctirouter::proto::decode_frame(wide, v(24), DecodeOptions::STRICT).unwrap();
        nr_types.insert(message.message_type());
    }
    assert_eq!(nr_types, REQUEST_SERVICE_EVENTS.into_iter().collect());
    // The sample with 226, as a v18 frame: kept at v14, dropped at v19/v20/v13.
    assert_eq!(transcoded(&emergency.frame, 18, 14), emergency.frame);
    assert_eq!(transcoded(&emergency.frame, 18, 19), emergency_v19);
    assert_eq!(transcoded(&emergency.frame, 18, 13), emergency_v19);
    assert_eq!(
        transcoded(&emergency.frame, 18, 20),
        fixture("EMERGENCY_CALL_EVENT", 20).frame
    );
}

/// The Server service registration messages (docs/protocol.md §12.6).
pub(crate) const SERVER_SERVICE_TYPES: &[u32] = &[
    msg::REGISTER_SERVICE_REQ,
    msg::REGISTER_SERVICE_CONF,
    msg::UNREGISTER_SERVICE_REQ,
    msg::UNREGISTER_SERVICE_CONF,
];

/// The Server service types are typed at every served version; the replies
/// are the two confirmations.
#[test]
fn server_service_types_are_all_typed() {
    for &message_type in SERVER_SERVICE_TYPES {
        assert!(Message::TYPED.contains(&message_type), "{message_type}");
        assert_eq!(Message::since(message_type), 13, "type {message_type}");
        let name = Message::type_name(message_type).unwrap();
        assert_eq!(
            msg::is_reply(message_type),
            name.ends_with("_CONF"),
            "{name}"
        );
        assert!(!routing::has_monitor_id(message_type), "{name}");
    }
}

/// The request-file rows REGISTER_SERVICE_CONF and UNREGISTER_SERVICE_CONF
/// decode at v19 as their typed message, to the values they state (STRICT:
/// no counts), and re-encode byte-exact.
#[test]
fn request_vectors_of_the_server_service_decode_typed_and_re_encode_byte_exact() {
    let mut nr_checked = 0;
    for row in request_rows() {
        if !SERVER_SERVICE_TYPES.contains(&row.message_type) {
            continue;
        }
        let message = decode_row(row, v(19), DecodeOptions::STRICT).expect(&row.name);
        assert!(!matches!(message, Message::Raw(_)), "{}", row.label());
        assert_eq!(
            Message::type_name(row.message_type),
            Some(row.name.as_str())
        );
        assert_fields(row, &message, v(19));
        assert_eq!(encode(&message, v(19)), row.frame, "{}", row.label());
        nr_checked += 1;
    }
    assert_eq!(nr_checked, 2);
}
