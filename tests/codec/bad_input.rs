//! Malformed input against every decoding entry point: each kind of bad frame
//! yields its exact `DecodeError` variant (never a panic), at both floating
//! tag widths (v19: 1-byte tag/length, v20: 2-byte), and the leniencies
//! docs/protocol.md §2.6 asks for (strings without NUL) hold. Black-box: public
//! `ctirouter::proto` API only.

use ctirouter::proto::error::EncodeError;
use ctirouter::proto::frame::{self, HEADER_LEN, MAX_FRAME_LEN};
use ctirouter::proto::group::Party;
use ctirouter::proto::msg::{CallConferencedEvent, CallDeliveredEvent, FailureConf, OpenReq};
use ctirouter::proto::routing;
use ctirouter::proto::transcode::transcode;
use ctirouter::proto::{
    constants::msg, decode_frame, tags, CtiString, DecodeError, DecodeOptions, Invalid, Message,
    NamedVar, Unspec, Version,
};
use testkit::vectors::{all_rows, floating_field};
use testkit::{raw_frame, v};

/// The two floating-field widths: v19 (1-byte tag and length), v20 (2-byte).
fn widths() -> [Version; 2] {
    [v(19), v(20)]
}

const BOTH: [DecodeOptions; 2] = [DecodeOptions::STRICT, DecodeOptions::COUNTS_UNCHECKED];

/// The body (no header) of `message` encoded at `version`.
fn body_of(message: impl Into<Message>, version: Version) -> Vec<u8> {
    let frame = message.into().to_frame(version).unwrap();
    frame[HEADER_LEN..].to_vec()
}

fn failure_conf() -> FailureConf {
    FailureConf {
        invoke_id: 1,
        status: 17,
        text: None,
    }
}

/// Decode a whole frame with both option sets, expecting `expected` from each.
fn assert_frame_error(frame: &[u8], version: Version, expected: &Invalid) {
    for options in BOTH {
        let err = decode_frame(frame, version, options).unwrap_err();
        assert_eq!(err, DecodeError::Invalid(expected.clone()), "v{version}");
        assert_eq!(err.status_code(), 25, "E_CTI_BAD_MESSAGE_FORMAT");
        assert!(!err.breaks_framing(), "a body error leaves framing intact");
    }
}

#[test]
fn truncated_header_is_incomplete() {
    let frame = Message::from(failure_conf()).to_frame(v(20)).unwrap();
    for len in 0..HEADER_LEN {
        let part = &frame[..len];
        assert_eq!(frame::check(part), Err(DecodeError::Incomplete), "{len}");
        assert_eq!(frame::parse(part), Err(DecodeError::Incomplete), "{len}");
        assert_eq!(
            decode_frame(part, v(20), DecodeOptions::STRICT),
            Err(DecodeError::Incomplete)
        );
        assert_eq!(
            routing::extract(part, v(20)).unwrap_err(),
            DecodeError::Incomplete
        );
        let mut out = Vec::new();
        assert_eq!(
            transcode(part, v(20), v(19), &mut out),
            Err(DecodeError::Incomplete)
        );
        assert!(out.is_empty());
    }
    let err = DecodeError::Incomplete;
    assert_eq!((err.status_code(), err.breaks_framing()), (0, false));
}

#[test]
fn truncated_body_is_incomplete_until_the_whole_frame_is_there() {
    for row in all_rows() {
        for len in HEADER_LEN..row.frame.len() {
            assert_eq!(
                frame::check(&row.frame[..len]),
                Err(DecodeError::Incomplete),
                "{} cut at {len}",
                row.label()
            );
        }
        assert_eq!(frame::check(&row.frame), Ok(row.frame.len()));
        // Bytes of the next frame are not consumed.
        let mut two = row.frame.clone();
        two.extend_from_slice(&row.frame);
        let (parsed, used) = frame::parse(&two).unwrap();
        assert_eq!((parsed.body, used), (row.body(), row.frame.len()));
    }
}

#[test]
fn fixed_part_shorter_than_the_type_needs_is_short_fixed_part() {
    for version in widths() {
        for &message_type in Message::TYPED {
            let needed = Message::fixed_len(message_type, version).unwrap();
            for available in [0, needed - 1] {
                let expected = Invalid::ShortFixedPart {
                    message_type,
                    needed,
                    available,
                };
                let body = vec![0u8; available];
                for options in BOTH {
                    assert_eq!(
                        Message::decode(message_type, &body, version, options),
                        Err(expected.clone())
                    );
                }
                let frame = raw_frame(message_type, &body);
                assert_frame_error(&frame, version, &expected);
                if routing::has_monitor_id(message_type) {
                    assert_eq!(
                        routing::extract(&frame, version).unwrap_err(),
                        DecodeError::Invalid(expected)
                    );
                }
            }
        }
    }
}

#[test]
fn open_conf_without_department_id_is_short_at_19() {
    // docs/protocol.md §4.1: 26 bytes up to v18, 30 from v19, 32 from v24.
    for (version, needed) in [(18, 26), (19, 30), (23, 30), (24, 32)] {
        assert_eq!(Message::fixed_len(msg::OPEN_CONF, v(version)), Some(needed));
    }
    let body = vec![0u8; 26];
    assert!(Message::decode(msg::OPEN_CONF, &body, v(18), DecodeOptions::STRICT).is_ok());
    assert_eq!(
        Message::decode(msg::OPEN_CONF, &body, v(19), DecodeOptions::STRICT),
        Err(Invalid::ShortFixedPart {
            message_type: msg::OPEN_CONF,
            needed: 30,
            available: 26
        })
    );
}

#[test]
fn truncated_floating_header_is_an_error() {
    for version in widths() {
        let header = 2 * version.tag_width();
        for available in 1..header {
            let mut body = body_of(failure_conf(), version);
            body.extend_from_slice(&floating_field(version, tags::TEXT, b"ok\0"));
            body.extend_from_slice(&vec![0x07; available]);
            assert_frame_error(
                &raw_frame(msg::FAILURE_CONF, &body),
                version,
                &Invalid::TruncatedFloatingHeader { available },
            );
        }
    }
}

#[test]
fn floating_field_running_past_the_end_is_floating_overrun() {
    for version in widths() {
        let mut body = body_of(failure_conf(), version);
        let mut field = floating_field(version, tags::TEXT, &[b'x'; 10]);
        field.truncate(field.len() - 7);
        body.extend_from_slice(&field);
        let expected = Invalid::FloatingOverrun {
            tag: tags::TEXT,
            len: 10,
            available: 3,
        };
        assert_frame_error(&raw_frame(msg::FAILURE_CONF, &body), version, &expected);
    }
    // The widest length a v20 field can announce.
    let mut body = body_of(failure_conf(), v(20));
    body.extend_from_slice(&[0, 7, 0xFF, 0xFF, b'x']);
    assert_frame_error(
        &raw_frame(msg::FAILURE_CONF, &body),
        v(20),
        &Invalid::FloatingOverrun {
            tag: 7,
            len: 0xFFFF,
            available: 1,
        },
    );
}

#[test]
fn overrun_in_a_routed_event_is_an_error_for_routing_too() {
    for version in widths() {
        let event = CallDeliveredEvent {
            connection_device_id: Some("5000".into()),
            ..Default::default()
        };
        let mut body = body_of(event, version);
        body.extend_from_slice(&floating_field(version, tags::ALERTING_DEVID, b"1001\0")[..4]);
        let frame = raw_frame(msg::CALL_DELIVERED_EVENT, &body);
        let expected = Invalid::FloatingOverrun {
            tag: tags::ALERTING_DEVID,
            len: 5,
            available: 4 - 2 * version.tag_width(),
        };
        assert_frame_error(&frame, version, &expected);
        assert_eq!(
            routing::extract(&frame, version).unwrap_err(),
            DecodeError::Invalid(expected)
        );
    }
}

fn conference(num_parties: u16, nr_parties: usize) -> CallConferencedEvent {
    let party = Party {
        call_id: Some(7),
        device_id_type: Some(0),
        device_id: Some("1001".into()),
    };
    CallConferencedEvent {
        num_parties,
        parties: vec![party; nr_parties],
        ..Default::default()
    }
}

#[test]
fn lying_list_counts_are_list_count_errors_when_strict() {
    for version in widths() {
        for (count, actual) in [(2usize, 1usize), (0, 3), (1800, 1)] {
            let frame = Message::from(conference(count as u16, actual))
                .to_frame(version)
                .unwrap();
            let err = decode_frame(&frame, version, DecodeOptions::STRICT).unwrap_err();
            assert_eq!(
                err,
                DecodeError::Invalid(Invalid::ListCount {
                    field: "num_parties",
                    count,
                    actual
                })
            );
            assert_eq!((err.status_code(), err.breaks_framing()), (25, false));
            let (lenient, _) =
                decode_frame(&frame, version, DecodeOptions::COUNTS_UNCHECKED).unwrap();
            assert_eq!(lenient, Message::from(conference(count as u16, actual)));
        }
        let vars = CallDeliveredEvent {
            num_named_variables: 0,
            named_variables: vec![NamedVar {
                name: "user.a".into(),
                value: "1".into(),
            }],
            ..Default::default()
        };
        let frame = Message::from(vars).to_frame(version).unwrap();
        assert_eq!(
            decode_frame(&frame, version, DecodeOptions::STRICT),
            Err(DecodeError::Invalid(Invalid::ListCount {
                field: "num_named_variables",
                count: 0,
                actual: 1
            }))
        );
    }
}

/// A header announcing `body_len` bytes after it.
fn header(body_len: u32, message_type: u32) -> Vec<u8> {
    [body_len.to_be_bytes(), message_type.to_be_bytes()].concat()
}

#[test]
fn oversize_frames_are_refused_from_the_header_alone() {
    let limit_body = (MAX_FRAME_LEN - HEADER_LEN) as u32;
    for (body_len, frame_len) in [
        (limit_body + 1, MAX_FRAME_LEN + 1),
        (u32::MAX, HEADER_LEN + u32::MAX as usize),
    ] {
        let hdr = header(body_len, msg::CALL_DELIVERED_EVENT);
        let expected = DecodeError::Invalid(Invalid::FrameTooLong { frame_len });
        assert_eq!(frame::check(&hdr), Err(expected.clone()));
        assert_eq!(frame::parse(&hdr), Err(expected.clone()));
        for version in widths() {
            assert_eq!(
                decode_frame(&hdr, version, DecodeOptions::STRICT),
                Err(expected.clone())
            );
            assert_eq!(routing::extract(&hdr, version).unwrap_err(), expected);
            assert_eq!(
                transcode(&hdr, version, v(24), &mut Vec::new()),
                Err(expected.clone())
            );
        }
        assert!(expected.breaks_framing());
        assert_eq!(expected.status_code(), 25);
    }
    // Exactly the limit is a frame: incomplete until all 12,500 bytes are there.
    let mut frame = header(limit_body, 200);
    assert_eq!(frame::check(&frame), Err(DecodeError::Incomplete));
    frame.resize(MAX_FRAME_LEN, 0);
    assert_eq!(frame::check(&frame), Ok(MAX_FRAME_LEN));
}

#[test]
fn encoding_over_the_limit_is_refused_and_writes_nothing() {
    let var = NamedVar {
        name: "user.var".into(),
        value: CtiString::new(vec![b'v'; 200]),
    };
    let event = CallDeliveredEvent {
        num_named_variables: 60,
        named_variables: vec![var; 60],
        ..Default::default()
    };
    let mut out = vec![1, 2, 3];
    assert!(matches!(
        Message::from(event).encode(v(20), &mut out),
        Err(EncodeError::TooLong { frame_len }) if frame_len > MAX_FRAME_LEN
    ));
    assert_eq!(out, [1, 2, 3]);
}

#[test]
fn integer_floating_field_of_wrong_length_is_field_length() {
    for version in widths() {
        for (tag, len) in [
            (tags::TRUNK_NUMBER, 2),
            (tags::TRUNK_NUMBER, 5),
            (tags::TRUNK_GROUP_NUMBER, 0),
        ] {
            let mut body = body_of(CallDeliveredEvent::default(), version);
            body.extend_from_slice(&floating_field(version, tag, &vec![1; len]));
            let frame = raw_frame(msg::CALL_DELIVERED_EVENT, &body);
            let expected = Invalid::FieldLength { tag, len };
            assert_frame_error(&frame, version, &expected);
            // Routing reads the trunk fields too.
            assert_eq!(
                routing::extract(&frame, version).unwrap_err(),
                DecodeError::Invalid(expected)
            );
        }
        // A USHORT group member (PARTY_DEVID_TYPE) of 3 bytes.
        let mut body = body_of(CallConferencedEvent::default(), version);
        body.extend_from_slice(&floating_field(version, tags::PARTY_DEVID_TYPE, &[0, 0, 1]));
        assert_frame_error(
            &raw_frame(msg::CALL_CONFERENCED_EVENT, &body),
            version,
            &Invalid::FieldLength {
                tag: tags::PARTY_DEVID_TYPE,
                len: 3,
            },
        );
    }
}

#[test]
fn named_variable_without_nul_is_field_length() {
    for version in widths() {
        for (tag, data) in [
            (tags::NAMED_VARIABLE, &b"novalue"[..]),
            (tags::NAMED_VARIABLE, &b""[..]),
            (tags::NAMED_ARRAY, &b"\x01noname"[..]),
            (tags::NAMED_ARRAY, &b""[..]),
        ] {
            let mut body = body_of(CallDeliveredEvent::default(), version);
            body.extend_from_slice(&floating_field(version, tag, data));
            assert_frame_error(
                &raw_frame(msg::CALL_DELIVERED_EVENT, &body),
                version,
                &Invalid::FieldLength {
                    tag,
                    len: data.len(),
                },
            );
        }
        // The value's NUL is optional, like any string's.
        let mut body = body_of(CallDeliveredEvent::default(), version);
        body.extend_from_slice(&floating_field(
            version,
            tags::NAMED_VARIABLE,
            b"user.a\0val",
        ));
        let (decoded, _) = decode_frame(
            &raw_frame(msg::CALL_DELIVERED_EVENT, &body),
            version,
            DecodeOptions::COUNTS_UNCHECKED,
        )
        .unwrap();
        let Message::CallDeliveredEvent(event) = decoded else {
            panic!("typed")
        };
        assert_eq!(
            event.named_variables,
            [NamedVar {
                name: "user.a".into(),
                value: "val".into()
            }]
        );
    }
}

fn open_req(version: Version) -> OpenReq {
    OpenReq {
        invoke_id: 1,
        version_number: version.number(),
        idle_timeout: 0xFFFF_FFFF,
        peripheral_id: 0xFFFF_FFFF,
        services_requested: 0x10,
        ..Default::default()
    }
}

/// docs/protocol.md §2.6: CTM sends ClientID without NUL and a 0-length password;
/// GED sends the empty password as a lone NUL. All are accepted; the router
/// always writes strings with their NUL and passes UNSPEC bytes as they are.
#[test]
fn strings_without_nul_are_accepted_and_sent_with_one() {
    for version in widths() {
        for password in [&b""[..], &b"\0"[..]] {
            let mut body = body_of(open_req(version), version);
            body.extend_from_slice(&floating_field(version, tags::CLIENT_ID, b"bridge"));
            body.extend_from_slice(&floating_field(version, tags::CLIENT_PASSWORD, password));
            let frame = raw_frame(msg::OPEN_REQ, &body);
            let (decoded, _) = decode_frame(&frame, version, DecodeOptions::STRICT).unwrap();
            let expected = OpenReq {
                client_id: Some("bridge".into()),
                client_password: Some(Unspec(password.to_vec())),
                ..open_req(version)
            };
            assert_eq!(decoded, Message::from(expected));

            let mut sent = body_of(open_req(version), version);
            sent.extend_from_slice(&floating_field(version, tags::CLIENT_ID, b"bridge\0"));
            sent.extend_from_slice(&floating_field(version, tags::CLIENT_PASSWORD, password));
            assert_eq!(
                decoded.to_frame(version).unwrap(),
                raw_frame(msg::OPEN_REQ, &sent)
            );
        }
    }
    // The worked example of docs/protocol.md §2.7.
    let client_id = |version| {
        let m = OpenReq {
            client_id: Some("bridge".into()),
            ..open_req(version)
        };
        body_of(m, version)[44..].to_vec()
    };
    assert_eq!(
        client_id(v(20)),
        [0, 1, 0, 7, b'b', b'r', b'i', b'd', b'g', b'e', 0]
    );
    assert_eq!(
        client_id(v(19)),
        [1, 7, b'b', b'r', b'i', b'd', b'g', b'e', 0]
    );
}

#[test]
fn unknown_floating_tags_are_skipped() {
    for version in widths() {
        let mut body = body_of(failure_conf(), version);
        body.extend_from_slice(&floating_field(version, 200, b"future"));
        body.extend_from_slice(&floating_field(version, tags::TEXT, b"why\0"));
        let (decoded, _) = decode_frame(
            &raw_frame(msg::FAILURE_CONF, &body),
            version,
            DecodeOptions::STRICT,
        )
        .unwrap();
        let expected = FailureConf {
            text: Some("why".into()),
            ..failure_conf()
        };
        assert_eq!(decoded, Message::from(expected));
    }
}

/// Malformed bodies of the Miscellaneous service types and the Supervisor
/// events (docs/protocol.md §12.4, §12.5) give the codec's usual errors at both
/// tag widths, from decoding and from transcoding to another version (which
/// then writes nothing); never a panic. (A fixed part too short for its type
/// is `fixed_part_shorter_than_the_type_needs_is_short_fixed_part`, which
/// covers every typed type.) Routing reads no key of these types, so it does
/// not look at their floating part.
#[test]
fn malformed_miscellaneous_and_supervisor_event_bodies_are_the_usual_errors() {
    let check = |message_type: u32, body: &[u8], version: Version, expected: Invalid| {
        let frame = raw_frame(message_type, body);
        assert_frame_error(&frame, version, &expected);
        let other = if version.tag_width() == 1 {
            v(24)
        } else {
            v(13)
        };
        let mut out = vec![0xEE];
        assert_eq!(
            transcode(&frame, version, other, &mut out),
            Err(DecodeError::Invalid(expected)),
            "type {message_type} v{version}->v{other}"
        );
        assert_eq!(out, [0xEE]);
        let keys = routing::extract(&frame, version).unwrap();
        assert_eq!(
            (keys.message_type, keys.has_monitor_id),
            (message_type, false)
        );
    };
    for version in widths() {
        for &message_type in crate::vectors::MISCELLANEOUS_AND_SUPERVISOR_EVENT_TYPES {
            let fixed = vec![0x11; Message::fixed_len(message_type, version).unwrap()];
            // A Text field announcing 10 bytes with 6 left.
            let mut body = fixed.clone();
            let mut field = floating_field(version, tags::TEXT, b"0123456789");
            field.truncate(field.len() - 4);
            body.extend_from_slice(&field);
            let overrun = Invalid::FloatingOverrun {
                tag: tags::TEXT,
                len: 10,
                available: 6,
            };
            check(message_type, &body, version, overrun);
            // One byte where a floating header should be.
            let mut body = fixed.clone();
            body.push(0x07);
            let truncated = Invalid::TruncatedFloatingHeader { available: 1 };
            check(message_type, &body, version, truncated);
        }
        // Integer floating fields of the wrong width.
        let mut wrong_width = vec![
            (msg::SET_APP_DATA_REQ, tags::APP_PATH_ID, 2),
            (msg::SET_APP_DATA_REQ, tags::CALL_TYPE_ID, 5),
            (msg::SET_APP_DATA_REQ, tags::PRE_CALL_INVOKE_ID, 0),
        ];
        if version.tag_width() == 2 {
            wrong_width.push((msg::AGENT_DESK_SETTINGS_CONF, tags::PLAY_ZIP_TONE, 3));
            wrong_width.push((
                msg::AGENT_DESK_SETTINGS_CONF,
                tags::ACD_SHARED_LINE_USAGE,
                8,
            ));
        }
        for (message_type, tag, len) in wrong_width {
            let mut body = vec![0; Message::fixed_len(message_type, version).unwrap()];
            body.extend_from_slice(&floating_field(version, tag, &vec![1; len]));
            check(
                message_type,
                &body,
                version,
                Invalid::FieldLength { tag, len },
            );
        }
        // REGISTER_VARIABLES_REQ: a named variable without the NUL after its
        // name, and (STRICT only) a count that lies.
        let register = |num_named_variables: u16, data: &[u8]| {
            let mut body = vec![0, 0, 0, 9, 0, 1];
            body.extend_from_slice(&num_named_variables.to_be_bytes());
            body.extend_from_slice(&[0, 0]);
            body.extend_from_slice(&floating_field(version, tags::NAMED_VARIABLE, data));
            body
        };
        let no_nul = register(1, b"user.acct");
        let expected = Invalid::FieldLength {
            tag: tags::NAMED_VARIABLE,
            len: 9,
        };
        check(msg::REGISTER_VARIABLES_REQ, &no_nul, version, expected);
        let lying = raw_frame(msg::REGISTER_VARIABLES_REQ, &register(2, b"user.acct\0"));
        assert_eq!(
            decode_frame(&lying, version, DecodeOptions::STRICT),
            Err(DecodeError::Invalid(Invalid::ListCount {
                field: "num_named_variables",
                count: 2,
                actual: 1
            }))
        );
        assert!(decode_frame(&lying, version, DecodeOptions::COUNTS_UNCHECKED).is_ok());
    }
}
