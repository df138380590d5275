//! The codec against the public sample vectors (`tests/vectors/`, provenance
//! and MIT notice in its README): every frame decodes to the values the row
//! states and re-encodes byte-exact, and each row the README documents as
//! contradicting docs/protocol.md is pinned to the behaviour the codec chose for it.
//! Black-box: only the public `ctirouter::proto` API and the vector files.

use ctirouter::proto::constants::msg;
use ctirouter::proto::error::Invalid;
use ctirouter::proto::{routing, tags, DecodeOptions, Message, Version};
use serde_json::Value;
use testkit::v;
use testkit::vectors::*;

/// v19 rows whose type the codec does not type: they must stay `Message::Raw`
/// and pass through byte-exact. A row silently becoming raw (or typed) fails.
const RAW_V19_ROWS: &[&str] = &[
    "UNKNOWN_TYPE",
    "USER_MESSAGE_CONF",
    "USER_MESSAGE_EVENT",
    "REGISTER_VARIABLES_CONF",
    "EMERGENCY_CALL_EVENT",
    "SUPERVISE_CALL_CONF",
    "SET_APP_DATA_CONF",
    "LIST_AGENT_TEAM_CONF",
    "MONITOR_AGENT_TEAM_START_CONF",
    "MONITOR_AGENT_TEAM_STOP_CONF",
    "REGISTER_SERVICE_CONF",
    "UNREGISTER_SERVICE_CONF",
    "START_RECORDING_CONF",
    "STOP_RECORDING_CONF",
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

/// README contradiction 2, typed rows that decode: tags 226/227 (v14–18 only).
const IPV6_TAG_ROWS: &[&str] = &["CLIENT_SESSION_OPENED_EVENT", "CLIENT_SESSION_CLOSED_EVENT"];

/// README contradiction 3: SENDING_PORT (126, UINT) sent as a 12-byte string
/// (these rows also carry 226/227).
const STRING_SENDING_PORT_ROWS: &[&str] = &["RTP_STARTED_EVENT", "RTP_STOPPED_EVENT"];

/// README contradiction 4: CLIENT_ID (tag 1) in these raw types.
const CLIENT_ID_RAW_ROWS: &[&str] = &[
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
    // 94 − 18 raw − 8 documented exceptions at v19, plus all 35 v20 rows.
    assert_eq!(nr_typed, 68 + 35);
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

/// Contradiction 4: docs/protocol.md §5.17 says tags 1/2 are OPEN_REQ-only, but the
/// router does not type these messages: whatever they carry passes through.
#[test]
fn client_id_in_raw_types_passes_through_byte_exact() {
    for name in CLIENT_ID_RAW_ROWS {
        let row = row(19, name);
        assert!(row.fields.contains_key("CLIENT_ID"), "{name}");
        for version in Version::all() {
            let message = unchecked(row, version);
            assert!(matches!(message, Message::Raw(_)), "{name}");
            assert_eq!(encode(&message, version), row.frame, "{name} at v{version}");
        }
    }
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
    // Every Client Control / Call Data Update type has its sizes listed, for
    // every version that has it, and none for a version that lacks it.
    for &message_type in CLIENT_CONTROL_AND_CALL_DATA_TYPES {
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

#[test]
fn own_fixtures_for_monitor_requests_and_worked_examples_are_exact() {
    for &(name, versions, frame_hex, fields) in OWN_FIXTURES {
        let frame = hex::decode(frame_hex).unwrap();
        let message_type = u32::from_be_bytes(frame[4..8].try_into().unwrap());
        let Ok(Value::Object(fields)) = serde_json::from_str(fields) else {
            panic!("{name}: fields")
        };
        for &version in versions {
            let row = Row {
                file: "own fixture",
                name: name.to_string(),
                message_type,
                version,
                frame: frame.clone(),
                fields: fields.clone(),
            };
            let message = decode_row(&row, v(version), DecodeOptions::STRICT)
                .unwrap_or_else(|e| panic!("{} at v{version}: {e}", row.label()));
            assert_eq!(Message::type_name(message_type), Some(name));
            assert_fields(&row, &message, v(version));
            assert_eq!(
                encode(&message, v(version)),
                frame,
                "{} at v{version}",
                row.label()
            );
        }
    }
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
    ("USER_MESSAGE_CONF", "Miscellaneous service, untyped"),
    ("USER_MESSAGE_EVENT", "Miscellaneous service, untyped"),
    ("REGISTER_VARIABLES_CONF", "Miscellaneous service, untyped"),
    ("EMERGENCY_CALL_EVENT", "Supervisor service event, untyped"),
    ("SUPERVISE_CALL_CONF", "Supervisor service, untyped"),
    (
        "AGENT_TEAM_CONFIG_EVENT",
        "Supervisor service event (v≤18 layout, pinned above)",
    ),
    ("SET_APP_DATA_CONF", "Miscellaneous service, untyped"),
    ("LIST_AGENT_TEAM_CONF", "Supervisor service, untyped"),
    (
        "MONITOR_AGENT_TEAM_START_CONF",
        "Supervisor service, untyped",
    ),
    (
        "MONITOR_AGENT_TEAM_STOP_CONF",
        "Supervisor service, untyped",
    ),
    ("REGISTER_SERVICE_CONF", "Server service, untyped"),
    ("UNREGISTER_SERVICE_CONF", "Server service, untyped"),
    ("START_RECORDING_CONF", "Miscellaneous service, untyped"),
    ("STOP_RECORDING_CONF", "Miscellaneous service, untyped"),
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
