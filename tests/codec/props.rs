//! Property tests of the codec over generated typed messages
//! (`Message::arbitrary_typed`): round trip at every version 13..=24,
//! transcoding between versions, and routing keys read from the encoded bytes
//! agreeing with the typed fields. Black-box: public `ctirouter::proto` API only.

use arbitrary::Unstructured;
use ctirouter::proto::constants::msg;
use ctirouter::proto::error::{EncodeError, Invalid};
use ctirouter::proto::routing::{self, RoutingKeys, MAX_DEVICES};
use ctirouter::proto::transcode::{patch_monitor_id, transcode, Transcoded};
use ctirouter::proto::{
    decode_frame, tags, CtiString, DecodeError, DecodeOptions, FieldValue, Message, Unspec, Version,
};
use proptest::prelude::*;
use testkit::v;

/// Cases per property; each case covers all 12 versions. The whole file
/// takes well under a second at this count (test profile, 2 cores).
const CASES: u32 = 2048;

/// A generated typed message of any type, counts in sync.
fn any_message() -> impl Strategy<Value = Message> {
    (
        0..Message::TYPED.len(),
        prop::collection::vec(any::<u8>(), 0..1024),
    )
        .prop_filter_map("generator ran out of bytes", |(which, bytes)| {
            Message::arbitrary_typed(which, &mut Unstructured::new(&bytes)).ok()
        })
}

fn any_version() -> impl Strategy<Value = Version> {
    (13u32..=24).prop_map(v)
}

/// `message` with only what `versions` can all carry.
fn restricted(message: &Message, versions: &[Version]) -> Message {
    let mut m = message.clone();
    for &version in versions {
        m.restrict_to(version);
    }
    m
}

/// Round trip at one version: what the version can hold survives, bytes are stable.
fn check_round_trip(message: &Message, version: Version) -> Result<(), TestCaseError> {
    let message_type = message.message_type();
    if !Message::exists_at(message_type, version) {
        prop_assert_eq!(
            message.to_frame(version),
            Err(EncodeError::NotInVersion {
                message_type,
                version: version.number()
            })
        );
        return Ok(());
    }
    let expected = restricted(message, &[version]);
    let frame = expected.to_frame(version).expect("generated messages fit");
    // Encoding drops exactly what `restrict_to` drops.
    prop_assert_eq!(message.to_frame(version), Ok(frame.clone()));
    let (decoded, used) = decode_frame(&frame, version, DecodeOptions::STRICT)
        .map_err(|e| TestCaseError::fail(format!("v{version}: {e}")))?;
    prop_assert_eq!(used, frame.len());
    prop_assert_eq!(&decoded, &expected, "v{}", version);
    prop_assert_eq!(decoded.to_frame(version), Ok(frame), "v{}", version);
    Ok(())
}

/// Transcode `message` (as encoded at `from`) to `to`, checking the result
/// against the message restricted to both versions.
fn check_transcode(message: &Message, from: Version, to: Version) -> Result<(), TestCaseError> {
    let message_type = message.message_type();
    if !Message::exists_at(message_type, from) {
        return Ok(());
    }
    let input = message.to_frame(from).expect("generated messages fit");
    let mut out = vec![0xAA]; // transcode appends: existing bytes stay
    let result = transcode(&input, from, to, &mut out)
        .map_err(|e| TestCaseError::fail(format!("{from}->{to}: {e}")))?;
    prop_assert_eq!(out[0], 0xAA);
    let out = &out[1..];
    if !Message::exists_at(message_type, to) {
        prop_assert_eq!(result, Transcoded::NotInVersion);
        prop_assert!(out.is_empty());
        return Ok(());
    }
    prop_assert_eq!(result, Transcoded::Written(out.len()));
    let expected = restricted(message, &[from, to]);
    prop_assert_eq!(out, &expected.to_frame(to).unwrap()[..], "{}->{}", from, to);
    let (decoded, _) = decode_frame(out, to, DecodeOptions::STRICT)
        .map_err(|e| TestCaseError::fail(format!("{from}->{to}: {e}")))?;
    prop_assert_eq!(decoded, expected, "{}->{}", from, to);
    Ok(())
}

/// `a` → `b` → `a` through the transcoder keeps exactly what both versions hold.
fn check_there_and_back(message: &Message, a: Version, b: Version) -> Result<(), TestCaseError> {
    let message_type = message.message_type();
    let start = message.to_frame(a).expect("generated messages fit");
    let mut there = Vec::new();
    let result = transcode(&start, a, b, &mut there)
        .map_err(|e| TestCaseError::fail(format!("{a}->{b}: {e}")))?;
    if !Message::exists_at(message_type, b) {
        prop_assert_eq!(result, Transcoded::NotInVersion);
        return Ok(());
    }
    let mut back = Vec::new();
    let result = transcode(&there, b, a, &mut back)
        .map_err(|e| TestCaseError::fail(format!("{b}->{a}: {e}")))?;
    prop_assert_eq!(result, Transcoded::Written(back.len()));
    let expected = restricted(message, &[a, b]);
    let (decoded, _) = decode_frame(&back, a, DecodeOptions::STRICT)
        .map_err(|e| TestCaseError::fail(format!("{a}->{b}->{a}: {e}")))?;
    prop_assert_eq!(&decoded, &expected);
    prop_assert_eq!(back, expected.to_frame(a).unwrap());
    Ok(())
}

/// Event types `routing::extract` reads (docs/protocol.md §4.5–§4.6): everything
/// else yields keys with only the message type.
const ROUTED_EVENTS: &[u32] = &[
    msg::CALL_DELIVERED_EVENT,
    msg::CALL_ESTABLISHED_EVENT,
    msg::CALL_HELD_EVENT,
    msg::CALL_RETRIEVED_EVENT,
    msg::CALL_CLEARED_EVENT,
    msg::CALL_CONNECTION_CLEARED_EVENT,
    msg::CALL_ORIGINATED_EVENT,
    msg::CALL_FAILED_EVENT,
    msg::CALL_CONFERENCED_EVENT,
    msg::CALL_TRANSFERRED_EVENT,
    msg::CALL_DIVERTED_EVENT,
    msg::CALL_SERVICE_INITIATED_EVENT,
    msg::CALL_QUEUED_EVENT,
    msg::CALL_TRANSLATION_ROUTE_EVENT,
    msg::BEGIN_CALL_EVENT,
    msg::END_CALL_EVENT,
    msg::CALL_DATA_UPDATE_EVENT,
    msg::AGENT_STATE_EVENT,
    msg::SYSTEM_EVENT,
    msg::CALL_REACHED_NETWORK_EVENT,
    msg::CALL_DEQUEUED_EVENT,
    msg::AGENT_PRE_CALL_EVENT,
    msg::AGENT_PRE_CALL_ABORT_EVENT,
    msg::RTP_STARTED_EVENT,
    msg::RTP_STOPPED_EVENT,
    msg::AGENT_TEAM_CONFIG_EVENT,
    msg::CALL_AGENT_GREETING_EVENT,
];

/// docs/protocol.md §5.2, written out independently of the codec's table.
const CALL_MSG_MASK: &[(u32, u32)] = &[
    (msg::CALL_DELIVERED_EVENT, 0x0000_0001),
    (msg::CALL_QUEUED_EVENT, 0x0000_0002),
    (msg::CALL_ESTABLISHED_EVENT, 0x0000_0004),
    (msg::CALL_HELD_EVENT, 0x0000_0008),
    (msg::CALL_RETRIEVED_EVENT, 0x0000_0010),
    (msg::CALL_CLEARED_EVENT, 0x0000_0020),
    (msg::CALL_CONNECTION_CLEARED_EVENT, 0x0000_0040),
    (msg::CALL_ORIGINATED_EVENT, 0x0000_0080),
    (msg::CALL_CONFERENCED_EVENT, 0x0000_0100),
    (msg::CALL_TRANSFERRED_EVENT, 0x0000_0200),
    (msg::CALL_DIVERTED_EVENT, 0x0000_0400),
    (msg::CALL_SERVICE_INITIATED_EVENT, 0x0000_0800),
    (msg::CALL_TRANSLATION_ROUTE_EVENT, 0x0000_1000),
    (msg::BEGIN_CALL_EVENT, 0x0000_2000),
    (msg::END_CALL_EVENT, 0x0000_4000),
    (msg::CALL_DATA_UPDATE_EVENT, 0x0000_8000),
    (msg::CALL_FAILED_EVENT, 0x0001_0000),
    (msg::CALL_REACHED_NETWORK_EVENT, 0x0002_0000),
    (msg::CALL_DEQUEUED_EVENT, 0x0004_0000),
    (msg::AGENT_PRE_CALL_EVENT, 0x0008_0000),
    (msg::AGENT_PRE_CALL_ABORT_EVENT, 0x0010_0000),
    (msg::RTP_STARTED_EVENT, 0x0020_0000),
    (msg::RTP_STOPPED_EVENT, 0x0040_0000),
    (msg::AGENT_TEAM_CONFIG_EVENT, 0x0080_0000),
    (msg::CALL_AGENT_GREETING_EVENT, 0x0800_0000),
];

/// Floating tags that name a device (docs/design.md §4.9: every device-id field,
/// party devices, and the agent fields).
fn is_device_tag(tag: u16) -> bool {
    matches!(
        tag,
        tags::CONNECTION_DEVID..=tags::ADDED_PARTY_DEVID
            | tags::PARTY_DEVID
            | tags::TRANSFERRING_DEVID..=tags::QUEUE_DEVID
            | tags::NEW_CONNECTION_DEVID
            | tags::TRUNK_USED_DEVID
            | tags::COC_CONNECTION_DEVICE_ID
            | tags::AGENT_EXTENSION
            | tags::AGENT_ID
            | tags::AGENT_INSTRUMENT
    )
}

/// What the typed message says routing should find.
#[derive(Default)]
struct Expected {
    fixed: Vec<(&'static str, i64)>,
    /// (tag, text or integer bytes) of every floating field, in wire order.
    floating: Vec<(u16, Vec<u8>, Option<i64>)>,
}

impl Expected {
    fn of(message: &Message, version: Version) -> Self {
        let mut e = Expected::default();
        message.visit(version, &mut |f| match (f.tag, f.value) {
            (None, FieldValue::Int(i)) => e.fixed.push((f.name, i)),
            (Some(tag), FieldValue::Str(s)) => e.floating.push((tag, s.to_vec(), None)),
            (Some(tag), FieldValue::Int(i)) => e.floating.push((tag, Vec::new(), Some(i))),
            (Some(tag), _) => e.floating.push((tag, Vec::new(), None)),
            (None, other) => panic!("fixed field {} is {other:?}", f.name),
        });
        e
    }

    fn fixed(&self, name: &str) -> Option<i64> {
        self.fixed.iter().find(|(n, _)| *n == name).map(|&(_, i)| i)
    }

    fn text(&self, tag: u16) -> Option<&[u8]> {
        self.floating
            .iter()
            .find(|(t, ..)| *t == tag)
            .map(|(_, s, _)| &s[..])
    }

    fn int(&self, tag: u16) -> Option<i64> {
        self.floating
            .iter()
            .find(|(t, ..)| *t == tag)
            .and_then(|&(.., i)| i)
    }

    /// (call id, device id type, device id) of the call named by these fields.
    fn call(&self, id: &str, kind: &str, device_tag: u16) -> Option<(u32, u16, Option<&[u8]>)> {
        Some((
            self.fixed(id)? as u32,
            self.fixed(kind)? as u16,
            self.text(device_tag),
        ))
    }
}

fn span_text(frame: &[u8], call: Option<routing::CallSpan>) -> Option<(u32, u16, Option<&[u8]>)> {
    call.map(|c| {
        (
            c.call_id,
            c.device_id_type,
            c.device_id.map(|s| s.of(frame)),
        )
    })
}

/// Routing keys of the encoded message against its typed fields.
fn check_routing(message: &Message, version: Version) -> Result<(), TestCaseError> {
    let message_type = message.message_type();
    if !Message::exists_at(message_type, version) {
        return Ok(());
    }
    // `visit` shows every floating field the message holds, so compare with
    // what the version can carry (the same bytes are encoded either way).
    let message = &restricted(message, &[version]);
    let frame = message.to_frame(version).expect("generated messages fit");
    let keys: RoutingKeys = routing::extract(&frame, version)
        .map_err(|e| TestCaseError::fail(format!("v{version}: {e}")))?;
    prop_assert_eq!(keys.message_type, message_type);
    let mask_bit = CALL_MSG_MASK.iter().find(|(t, _)| *t == message_type);
    prop_assert_eq!(keys.call_mask_bit, mask_bit.map_or(0, |&(_, bit)| bit));
    if !ROUTED_EVENTS.contains(&message_type) {
        prop_assert!(!keys.has_monitor_id && !routing::has_monitor_id(message_type));
        prop_assert!(keys.peripheral_id.is_none() && keys.call.is_none());
        prop_assert!(keys.devices().is_empty() && keys.agent_id.is_none());
        return Ok(());
    }
    let e = Expected::of(message, version);
    let starts_with_monitor_id = e.fixed.first().is_some_and(|(n, _)| *n == "monitor_id");
    prop_assert_eq!(keys.has_monitor_id, starts_with_monitor_id);
    prop_assert_eq!(
        routing::has_monitor_id(message_type),
        starts_with_monitor_id
    );
    prop_assert_eq!(
        keys.peripheral_id,
        e.fixed("peripheral_id").map(|i| i as u32)
    );
    let call = e
        .call(
            "connection_call_id",
            "connection_device_id_type",
            tags::CONNECTION_DEVID,
        )
        .or_else(|| {
            e.call(
                "primary_call_id",
                "primary_device_id_type",
                tags::PRIMARY_DEVID,
            )
        });
    prop_assert_eq!(span_text(&frame, keys.call), call);
    let other = e
        .call(
            "secondary_call_id",
            "secondary_device_id_type",
            tags::SECONDARY_DEVID,
        )
        .or_else(|| {
            e.call(
                "new_connection_call_id",
                "new_connection_device_id_type",
                tags::NEW_CONNECTION_DEVID,
            )
        });
    prop_assert_eq!(span_text(&frame, keys.other_call), other);
    let agent_state = (message_type == msg::AGENT_STATE_EVENT)
        .then(|| e.fixed("agent_state").map(|i| i as u16))
        .flatten();
    prop_assert_eq!(keys.agent_state, agent_state);
    for (span, tag) in [
        (keys.agent_id, tags::AGENT_ID),
        (keys.agent_extension, tags::AGENT_EXTENSION),
        (keys.agent_instrument, tags::AGENT_INSTRUMENT),
    ] {
        prop_assert_eq!(span.map(|s| s.of(&frame)), e.text(tag), "tag {}", tag);
    }
    prop_assert_eq!(keys.trunk_number.map(i64::from), e.int(tags::TRUNK_NUMBER));
    prop_assert_eq!(
        keys.trunk_group_number.map(i64::from),
        e.int(tags::TRUNK_GROUP_NUMBER)
    );
    let devices: Vec<(u16, &[u8])> = e
        .floating
        .iter()
        .filter(|(tag, ..)| is_device_tag(*tag))
        .map(|(tag, s, _)| (*tag, &s[..]))
        .collect();
    let found: Vec<(u16, &[u8])> = keys
        .devices()
        .iter()
        .map(|(t, s)| (*t, s.of(&frame)))
        .collect();
    prop_assert_eq!(&found[..], &devices[..devices.len().min(MAX_DEVICES)]);
    prop_assert_eq!(keys.devices_truncated, devices.len() > MAX_DEVICES);
    Ok(())
}

/// The in-place MonitorID patch lands in the decoded message's `monitor_id`.
fn check_monitor_patch(message: &Message, version: Version, id: u32) -> Result<(), TestCaseError> {
    if !Message::exists_at(message.message_type(), version) {
        return Ok(());
    }
    let mut frame = message.to_frame(version).expect("generated messages fit");
    let patched = patch_monitor_id(&mut frame, id);
    prop_assert_eq!(patched, routing::has_monitor_id(message.message_type()));
    let (decoded, _) = decode_frame(&frame, version, DecodeOptions::STRICT).unwrap();
    let mut monitor_id = None;
    decoded.visit(version, &mut |f| {
        if let (None, "monitor_id", FieldValue::Int(i)) = (f.tag, f.name, f.value) {
            monitor_id = Some(i);
        }
    });
    if patched {
        prop_assert_eq!(monitor_id, Some(i64::from(id)));
    } else {
        prop_assert_eq!(decoded, restricted(message, &[version]));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn every_message_round_trips_at_every_version(message in any_message()) {
        for version in Version::all() {
            check_round_trip(&message, version)?;
        }
    }

    #[test]
    fn v24_to_v14_and_back_keeps_what_v14_can_hold(message in any_message()) {
        check_transcode(&message, v(24), v(14))?;
        check_there_and_back(&message, v(24), v(14))?;
    }

    #[test]
    fn transcoding_between_any_two_versions_keeps_the_common_fields(
        message in any_message(),
        from in any_version(),
        to in any_version(),
    ) {
        check_transcode(&message, from, to)?;
    }

    #[test]
    fn routing_keys_agree_with_the_typed_fields(message in any_message()) {
        for version in Version::all() {
            check_routing(&message, version)?;
        }
    }

    #[test]
    fn monitor_id_patch_rewrites_only_monitor_ids(message in any_message(), id in any::<u32>()) {
        for version in [v(13), v(19), v(20), v(24)] {
            check_monitor_patch(&message, version, id)?;
        }
    }
}

/// Every typed type is reachable by the generator (`which` indexes `TYPED`).
#[test]
fn generator_covers_every_typed_type() {
    let bytes = [0u8; 64];
    for (which, &message_type) in Message::TYPED.iter().enumerate() {
        let message = Message::arbitrary_typed(which, &mut Unstructured::new(&bytes)).unwrap();
        assert_eq!(message.message_type(), message_type);
    }
}

/// Deterministic bytes for the generator (xorshift64*), so every case below
/// is the same on every run.
fn generator_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// Generated messages per type in the table tests below.
const SEEDS_PER_TYPE: u64 = 48;

/// Generated messages of each of `types` round-trip at every version
/// 13..=24 and transcode between every pair of versions (a request decoded at
/// the client's version, re-encoded at the upstream's, and the reply or event
/// the other way); a type with floating fields is generated with some.
pub(crate) fn check_types_at_every_version_pair(types: &[u32]) {
    for &message_type in types {
        let which = Message::TYPED
            .iter()
            .position(|&t| t == message_type)
            .unwrap_or_else(|| panic!("type {message_type} is typed"));
        let mut nr_with_floating = 0;
        for seed in 0..SEEDS_PER_TYPE {
            let bytes = generator_bytes((u64::from(message_type) << 8) + seed, 1024);
            let message = Message::arbitrary_typed(which, &mut Unstructured::new(&bytes))
                .unwrap_or_else(|e| panic!("type {message_type}: {e}"));
            assert_eq!(message.message_type(), message_type);
            let mut has_floating = false;
            message.visit(Version::MAX, &mut |f| has_floating |= f.tag.is_some());
            nr_with_floating += usize::from(has_floating);
            for from in Version::all() {
                check_round_trip(&message, from)
                    .unwrap_or_else(|e| panic!("type {message_type} seed {seed}: {e}"));
                for to in Version::all() {
                    check_transcode(&message, from, to).unwrap_or_else(|e| {
                        panic!("type {message_type} seed {seed} {from}->{to}: {e}")
                    });
                }
            }
        }
        // Types with floating fields were generated with some.
        let mut declares_floating = false;
        Message::arbitrary_typed(which, &mut Unstructured::new(&generator_bytes(1, 4096)))
            .unwrap()
            .visit(Version::MAX, &mut |f| declares_floating |= f.tag.is_some());
        assert!(
            !declares_floating || nr_with_floating > 0,
            "type {message_type}: no generated message had a floating field"
        );
    }
}

/// Table test over every Client Control / Call Data Update type (not left to
/// the random draw of the property above).
#[test]
fn client_control_and_call_data_messages_round_trip_at_every_version() {
    check_types_at_every_version_pair(crate::vectors::CLIENT_CONTROL_AND_CALL_DATA_TYPES);
}

/// The same over every Miscellaneous service type and the Supervisor events
/// (the statistics confirmations included: their counter blocks are 344 and
/// 596 bytes, so the generator is given room for them).
#[test]
fn miscellaneous_service_and_supervisor_events_round_trip_at_every_version() {
    check_types_at_every_version_pair(crate::vectors::MISCELLANEOUS_AND_SUPERVISOR_EVENT_TYPES);
}

/// The same over the Server service registration messages.
#[test]
fn server_service_messages_round_trip_at_every_version() {
    check_types_at_every_version_pair(crate::vectors::SERVER_SERVICE_TYPES);
}

/// The three events with every floating field filled (Text at 255 data
/// bytes, the most a 1-byte length holds) transcode v19 → v20, v24 → v13 and
/// v18 → v14, and back, keeping everything both versions hold. (The per-type
/// test above draws them at random; this one pins the full events.)
#[test]
fn full_request_service_events_survive_the_tag_width_change() {
    use ctirouter::proto::msg::{EmergencyCallEvent, SupervisorAssistEvent, UserMessageEvent};
    let text = |c: u8| Some(CtiString::new(vec![c; 40]));
    let events = [
        Message::from(UserMessageEvent {
            icm_central_controller_time: 0x6543_2100,
            distribution: 3,
            client_id: text(b'c'),
            text: Some(CtiString::new(vec![b't'; 254])),
        }),
        Message::from(SupervisorAssistEvent {
            peripheral_id: 1,
            connection_call_id: 0xFFFF_FFFE,
            connection_device_id_type: 1,
            session_id: 0,
            connection_device_id: text(b'd'),
            client_id: text(b'c'),
            text: Some(CtiString::new(vec![b't'; 254])),
        }),
        Message::from(EmergencyCallEvent {
            peripheral_id: 5000,
            connection_call_id: 7,
            connection_device_id_type: 0,
            session_id: 42,
            connection_device_id: text(b'd'),
            client_id: text(b'c'),
            client_address: Some(CtiString::new(vec![b'a'; 63])),
            agent_extension: Some("3001".into()),
            agent_id: Some("1001".into()),
            agent_instrument: Some("3001".into()),
            client_address_ipv6: Some(Unspec(vec![0x20; 16])),
        }),
    ];
    for event in &events {
        for (a, b) in [(v(19), v(20)), (v(24), v(13)), (v(18), v(14))] {
            check_transcode(event, a, b).unwrap();
            check_there_and_back(event, a, b).unwrap();
        }
        // What v13, v19 and v20 all hold is everything but 226
        // (EMERGENCY_CALL_EVENT, v14–18 only).
        let kept = restricted(event, &[v(13), v(19), v(20)]);
        let mut without_ipv6 = event.clone();
        if let Message::EmergencyCallEvent(e) = &mut without_ipv6 {
            e.client_address_ipv6 = None;
        }
        assert_eq!(kept, without_ipv6);
    }
}

/// A typed message type that a version does not have is refused by decoding
/// at that version (e.g. AGENT_GREETING_CONTROL_REQ at v14), as it is by
/// encoding; at the versions that have it, the same body decodes.
#[test]
fn a_type_a_version_lacks_is_refused_by_decoding() {
    let mut nr_refused = 0;
    for (which, &message_type) in Message::TYPED.iter().enumerate() {
        let bytes = generator_bytes(u64::from(message_type), 1024);
        let message = Message::arbitrary_typed(which, &mut Unstructured::new(&bytes)).unwrap();
        for version in Version::all() {
            if Message::exists_at(message_type, version) {
                continue;
            }
            // The same tag width, so only the type's version can be the reason.
            let body = &message.to_frame(v(15)).unwrap()[8..];
            let expected = Invalid::NotInVersion {
                message_type,
                version: version.number(),
            };
            for options in [DecodeOptions::STRICT, DecodeOptions::COUNTS_UNCHECKED] {
                assert_eq!(
                    Message::decode(message_type, body, version, options),
                    Err(expected.clone()),
                    "type {message_type} at v{version}"
                );
            }
            let frame = message.to_frame(Version::MAX).unwrap();
            assert_eq!(
                decode_frame(&frame, version, DecodeOptions::STRICT),
                Err(DecodeError::Invalid(expected)),
                "type {message_type} at v{version}"
            );
            assert!(message.to_frame(version).is_err());
            nr_refused += 1;
        }
    }
    // AGENT_GREETING_CONTROL_REQ/CONF and CALL_AGENT_GREETING_EVENT at v13 and v14.
    assert_eq!(nr_refused, 3 * 2);
    let greeting = Message::from(ctirouter::proto::msg::AgentGreetingControlReq {
        invoke_id: 7,
        peripheral_id: 5000,
        agent_action: 1,
        agent_id: Some("1001".into()),
    });
    let frame = greeting.to_frame(v(15)).unwrap();
    assert_eq!(
        decode_frame(&frame, v(14), DecodeOptions::STRICT),
        Err(DecodeError::Invalid(Invalid::NotInVersion {
            message_type: msg::AGENT_GREETING_CONTROL_REQ,
            version: 14
        }))
    );
    assert_eq!(
        decode_frame(&frame, v(15), DecodeOptions::STRICT),
        Ok((greeting, frame.len()))
    );
}
