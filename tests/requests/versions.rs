//! The version matrix of proxied requests (docs/requests.md §5 "Versions"),
//! black-box: the router binary between raw clients at versions 13, 19, 20
//! and 24 and a fake CTI Server that opens at version 24 or, separately, 14
//! (`[upstream] version`). Each request must reach the fake decoded exactly
//! at the fake's version, with the client's field values (completed with the
//! desktop's agent, docs/requests.md §4) and a top-bit InvokeID; each CONF
//! must reach the client at the client's own version with its own InvokeID
//! and the fields the fake put in. The floating tag width changes between
//! v19 and v20 (docs/protocol.md §2.5): the v24 upstream crosses it with the
//! v13 and v19 clients, the v14 upstream with the v20 and v24 clients, both
//! ways (requests up, replies down). A field one side's version lacks is
//! dropped, or a fixed field defaulted (docs/protocol.md "Version rules
//! inside 13..=24").

use crate::fake_cti::*;
use crate::BIN;

use ctirouter::proto::constants::{connection_type, msg, service, status};
use ctirouter::proto::group::{AgentSkillGroup, SkillGroup};
use ctirouter::proto::msg::*;
use ctirouter::proto::values::{NamedArray, NamedVar};
use ctirouter::proto::{CtiString, Message, Unspec, Version};
use testkit::*;

const V24: Version = Version::MAX;
const CLIENT_VERSIONS: [u32; 4] = [13, 19, 20, 24];
/// NULL_SKILL_GROUP: "the default skill group" (docs/protocol.md §5.16, §12.2 #56).
const NULL_SKILL_GROUP: u32 = 0xFFFF_FFFF;
/// The PeripheralErrorCode the fake's CONTROL_FAILURE_CONF carries.
const PERIPHERAL_ERROR: u32 = 0x00BE_EF01;

fn s(x: &str) -> Option<CtiString> {
    Some(CtiString::from(x))
}

/// Desktop `v`: agent, instrument and the call alerting at it.
struct DeskId {
    agent: String,
    instrument: String,
    call: CallRef,
}

fn desk_id(v: u32) -> DeskId {
    // CallRef wants a 'static device name.
    let dev: &'static str = match v {
        13 => "T13",
        19 => "T19",
        20 => "T20",
        24 => "T24",
        _ => unreachable!(),
    };
    DeskId {
        agent: format!("10{v}"),
        instrument: format!("30{v}"),
        call: call(0x0200_0000 + v, dev),
    }
}

// ---------------------------------------------------------------------------
// What the fake answers: a pure function of the request, so the test can
// compute the CONF it expects for any InvokeID.
// ---------------------------------------------------------------------------

fn make_call_conf(invoke_id: u32, dialed: &str) -> MakeCallConf {
    MakeCallConf {
        invoke_id,
        new_connection_call_id: dialed.parse().expect("digits"),
        new_connection_device_id_type: connection_type::DYNAMIC,
        line_handle: 3,
        line_type: 1,
        new_connection_device_id: s(&format!("N{dialed}")),
    }
}

fn agent_state_conf(invoke_id: u32, req: &QueryAgentStateReq) -> QueryAgentStateConf {
    QueryAgentStateConf {
        invoke_id,
        agent_state: 3,
        num_skill_groups: 1,
        mrd_id: req.mrd_id,
        num_tasks: 2,
        agent_mode: 1,
        max_task_limit: 5,
        icm_agent_id: 4711,
        agent_availability_status: 1,
        department_id: 77,
        agent_id: req.agent_id.clone(),
        agent_extension: None,
        agent_instrument: req.agent_instrument.clone(),
        skill_groups: vec![SkillGroup {
            number: Some(12),
            id: Some(5012),
            priority: Some(1),
            state: Some(3),
        }],
        internal_agent_state: Some(9),
        max_beyond_task_limit: Some(2),
        agent_id_long: None,
    }
}

fn control_failure(invoke_id: u32) -> ControlFailureConf {
    ControlFailureConf {
        invoke_id,
        failure_code: 25,
        peripheral_error_code: PERIPHERAL_ERROR,
        text: s("no held call"),
        ctios_cil_client_id: s("cil-pg"),
    }
}

/// The fake's rule: the CONF of each request type.
fn answer(_conn: usize, request: &Message) -> Answer {
    let reply: Message = match request {
        Message::SetAgentStateReq(r) => SetAgentStateConf {
            invoke_id: r.invoke_id,
        }
        .into(),
        Message::AnswerCallReq(r) => AnswerCallConf {
            invoke_id: r.invoke_id,
        }
        .into(),
        Message::HoldCallReq(r) => HoldCallConf {
            invoke_id: r.invoke_id,
        }
        .into(),
        Message::MakeCallReq(r) => make_call_conf(
            r.invoke_id,
            &r.dialed_number.as_ref().unwrap().to_str_lossy(),
        )
        .into(),
        Message::QueryAgentStateReq(r) => agent_state_conf(r.invoke_id, r).into(),
        Message::RetrieveCallReq(r) => control_failure(r.invoke_id).into(),
        Message::SetCallDataReq(r) => SetCallDataConf {
            invoke_id: r.invoke_id,
        }
        .into(),
        Message::AgentGreetingControlReq(r) => AgentGreetingControlConf {
            invoke_id: r.invoke_id,
        }
        .into(),
        // The router's own, when the last writer of call data closes.
        Message::ReleaseCallReq(r) => ReleaseCallConf {
            invoke_id: r.invoke_id,
        }
        .into(),
        other => panic!("the fake got an unexpected request {other:?}"),
    };
    Answer::Reply(vec![reply])
}

// ---------------------------------------------------------------------------
// One round trip
// ---------------------------------------------------------------------------

/// The router and its fake upstream, and what the fake has read so far.
struct Rig {
    pg: ProxyPg,
    router: Proc,
    nr_seen: usize,
}

impl Rig {
    fn up(&self) -> Version {
        self.pg.version
    }

    /// Send `request` from `client` (at its version); the fake must read
    /// exactly one request, which decoded strictly at the fake's version is
    /// `expect(upstream InvokeID, it)` and is encoded canonically. Returns
    /// the client's reply, decoded strictly at the client's version.
    fn round_trip(
        &mut self,
        client: &mut Client,
        request: impl Into<Message>,
        expect: impl FnOnce(u32, &Message) -> Message,
    ) -> Message {
        let request = request.into();
        let client_invoke = invoke_of(&request);
        client.send(request.clone());
        let seen = self.pg.wait_seen(self.nr_seen + 1, WAIT);
        let got = &seen[self.nr_seen];
        self.nr_seen += 1;
        let up = self.up();
        let upstream_invoke = got.invoke_id();
        assert_ne!(
            upstream_invoke & 0x8000_0000,
            0,
            "{} from v{}: upstream InvokeID {upstream_invoke:#x} has no top bit",
            request.name(),
            client.version
        );
        let decoded = decode_strict(&got.frame, up);
        assert_eq!(
            decoded,
            expect(upstream_invoke, &decoded),
            "{} sent at v{} as received at v{up}",
            request.name(),
            client.version
        );
        assert_eq!(
            got.frame,
            decoded.to_frame(up).unwrap(),
            "{} at v{up}: not the canonical encoding (stray or misplaced bytes)",
            request.name()
        );
        let reply = client.reply(client_invoke);
        decode_strict(&reply, client.version)
    }
}

fn invoke_of(m: &Message) -> u32 {
    let frame = m.to_frame(V24).unwrap();
    be32(&frame, 8)
}

/// Start the fake at `up`, the router, an All Events observer, and the
/// calls the desktops will act on (known to the router before any request).
fn rig(up: Version) -> (Rig, Client) {
    let pg = ProxyPg::start(up, answer);
    let clients = format!(
        "{}{}[[clients]]\nclient_id = \"watch\"\n",
        client_entry("desk", &["client-events", "client-control"]),
        client_entry("crm", &["all-events", "call-data-update"]),
    );
    let router = router(BIN, &config(&[pg.addr()], up, &clients), &[]);
    let (mut observer, _) = open_when_up(
        router.addr(),
        &OpenSpec::new(V24, service::ALL_EVENTS).client("watch", b""),
    );
    for v in CLIENT_VERSIONS {
        let d = desk_id(v);
        pg.send(delivered(
            d.call,
            &d.instrument,
            "5551000",
            &d.instrument,
            None,
        ));
    }
    // The observer sees the barrier after the calls: ingest knows them.
    pg.barrier("calls");
    let before = until_barrier(&mut observer, "calls");
    assert_eq!(
        before
            .iter()
            .filter(|f| frame_type(f) == msg::CALL_DELIVERED_EVENT)
            .count(),
        CLIENT_VERSIONS.len(),
        "{:?}",
        shapes(&before)
    );
    (
        Rig {
            pg,
            router,
            nr_seen: 0,
        },
        observer,
    )
}

/// The whole matrix against an upstream at `up`.
fn matrix(up: Version) {
    let (mut rig, mut observer) = rig(up);
    let u = up.number();
    // Sessions stay open to the end: a CRM connector that closes makes the
    // router release the call it wrote data on (checked at the end).
    let mut crms = Vec::new();
    let mut desks = Vec::new();
    for cv in CLIENT_VERSIONS {
        let v = Version::new(cv).unwrap();
        let d = desk_id(cv);
        let (mut desk, conf) = open_when_up(
            rig.router.addr(),
            &desk_spec(v, "desk", &d.agent, &d.instrument),
        );
        assert_eq!(
            conf.services_granted,
            service::CLIENT_EVENTS | service::CLIENT_CONTROL
        );
        let (mut crm, conf) = open_when_up(
            rig.router.addr(),
            &OpenSpec::new(v, service::ALL_EVENTS | service::CALL_DATA_UPDATE).client("crm", b""),
        );
        assert_eq!(
            conf.services_granted,
            service::ALL_EVENTS | service::CALL_DATA_UPDATE
        );
        // Both ends have the v20 fields (2-byte tags above 255).
        let wide = cv >= 20 && u >= 20;

        // SET_AGENT_STATE_REQ: every field, ActiveTerminal (303) and
        // SSOEnabled (257) only where both versions have 2-byte tags.
        let sent = SetAgentStateReq {
            invoke_id: 1000 + cv,
            peripheral_id: PID,
            agent_state: 3,
            agent_work_mode: 2,
            num_skill_groups: 2,
            event_reason_code: 500 + cv as u16,
            forced_flag: 1,
            agent_service_req: 1,
            agent_instrument: s(&d.instrument),
            agent_id: s(&d.agent),
            agent_password: s("pw"),
            position_id: s("P7"),
            supervisor_id: s("S9"),
            skill_groups: vec![
                AgentSkillGroup {
                    number: Some(11),
                    priority: Some(1),
                },
                AgentSkillGroup {
                    number: Some(-1),
                    priority: Some(2),
                },
            ],
            active_terminal: s(&format!("TERM-{cv}")),
            sso_enabled: Some(Unspec(vec![1])),
            agent_id_long: Some(Unspec(b"agent-long-id".to_vec())),
        };
        let reply = rig.round_trip(&mut desk, sent.clone(), |invoke_id, _| {
            SetAgentStateReq {
                invoke_id,
                active_terminal: if wide {
                    sent.active_terminal.clone()
                } else {
                    None
                },
                sso_enabled: if wide { sent.sso_enabled.clone() } else { None },
                ..sent.clone()
            }
            .into()
        });
        assert_eq!(
            reply,
            SetAgentStateConf {
                invoke_id: 1000 + cv
            }
            .into()
        );

        // ANSWER_CALL_REQ, NULL PeripheralID and no instrument: completed
        // with the desktop's before it goes upstream; CTIOSCILClientID kept.
        let sent = AnswerCallReq {
            invoke_id: 2000 + cv,
            peripheral_id: 0xFFFF_FFFF,
            connection_call_id: d.call.id,
            connection_device_id_type: connection_type::DYNAMIC,
            connection_device_id: s(d.call.dev),
            agent_instrument: None,
            ctios_cil_client_id: s(&format!("cil-{cv}")),
        };
        let reply = rig.round_trip(&mut desk, sent.clone(), |invoke_id, _| {
            AnswerCallReq {
                invoke_id,
                peripheral_id: PID,
                agent_instrument: s(&d.instrument),
                ..sent.clone()
            }
            .into()
        });
        assert_eq!(
            reply,
            AnswerCallConf {
                invoke_id: 2000 + cv
            }
            .into()
        );

        // HOLD_CALL_REQ, fully named: as sent.
        let sent = HoldCallReq {
            invoke_id: 3000 + cv,
            peripheral_id: PID,
            connection_call_id: d.call.id,
            connection_device_id_type: connection_type::DYNAMIC,
            reservation: 1,
            connection_device_id: s(d.call.dev),
            agent_instrument: s(&d.instrument),
            ctios_cil_client_id: None,
        };
        let reply = rig.round_trip(&mut desk, sent.clone(), |invoke_id, _| {
            HoldCallReq {
                invoke_id,
                ..sent.clone()
            }
            .into()
        });
        assert_eq!(
            reply,
            HoldCallConf {
                invoke_id: 3000 + cv
            }
            .into()
        );

        // MAKE_CALL_REQ: SkillGroupNumber is a fixed field from v14.
        let sent = make_call(4000 + cv, &format!("5550{cv}"));
        let reply = rig.round_trip(&mut desk, sent.clone(), |invoke_id, got| {
            let skill_group_number = match got {
                Message::MakeCallReq(_) if cv >= 14 => sent.skill_group_number,
                // A v13 client has no SkillGroupNumber: it asks for the
                // default, NULL_SKILL_GROUP to a v14+ upstream (pinned apart
                // by `a_v13_make_call_asks_upstream_for_the_default_skill_group`).
                Message::MakeCallReq(_) => NULL_SKILL_GROUP,
                other => panic!("{other:?}"),
            };
            MakeCallReq {
                invoke_id,
                peripheral_id: PID,
                agent_instrument: s(&d.instrument),
                skill_group_number,
                ..sent.clone()
            }
            .into()
        });
        // …and the new call the CTI Server made comes back to the client.
        assert_eq!(
            reply,
            make_call_conf(4000 + cv, &format!("5550{cv}")).into()
        );

        // QUERY_AGENT_STATE_REQ (proxied: no local answer yet, §6), no
        // AgentID: filled in. Its CONF carries DepartmentID (fixed, v19+),
        // InternalAgentState (255, v19+) and MaxBeyondTaskLimit (266, v22+).
        let sent = QueryAgentStateReq {
            invoke_id: 5000 + cv,
            peripheral_id: PID,
            mrd_id: 1,
            icm_agent_id: 0,
            agent_id: None,
            agent_extension: None,
            agent_instrument: s(&d.instrument),
            agent_id_long: Some(Unspec(b"L".to_vec())),
        };
        let filled = QueryAgentStateReq {
            agent_id: s(&d.agent),
            ..sent.clone()
        };
        let reply = rig.round_trip(&mut desk, sent, |invoke_id, _| {
            QueryAgentStateReq {
                invoke_id,
                ..filled.clone()
            }
            .into()
        });
        let both_19 = cv >= 19 && u >= 19;
        let both_22 = cv >= 22 && u >= 22;
        let full = agent_state_conf(5000 + cv, &filled);
        assert_eq!(
            reply,
            QueryAgentStateConf {
                department_id: if both_19 { full.department_id } else { 0 },
                internal_agent_state: if both_19 {
                    full.internal_agent_state
                } else {
                    None
                },
                max_beyond_task_limit: if both_22 {
                    full.max_beyond_task_limit
                } else {
                    None
                },
                ..full.clone()
            }
            .into(),
            "QUERY_AGENT_STATE_CONF from v{u} to v{cv}"
        );

        // RETRIEVE_CALL_REQ: the CTI Server refuses with CONTROL_FAILURE_CONF,
        // which comes back with its code, error code and text.
        let sent = RetrieveCallReq {
            invoke_id: 6000 + cv,
            peripheral_id: PID,
            held_connection_call_id: d.call.id,
            held_connection_device_id_type: connection_type::DYNAMIC,
            held_connection_device_id: s(d.call.dev),
            agent_instrument: s(&d.instrument),
            ctios_cil_client_id: None,
        };
        let reply = rig.round_trip(&mut desk, sent.clone(), |invoke_id, _| {
            RetrieveCallReq {
                invoke_id,
                ..sent.clone()
            }
            .into()
        });
        assert_eq!(reply, control_failure(6000 + cv).into());

        // SET_CALL_DATA_REQ from the CRM connector (All Events + Call Data
        // Update): RouterCallKey* exist from v14 only.
        let sent = set_call_data(7000 + cv, d.call);
        let reply = rig.round_trip(&mut crm, sent.clone(), |invoke_id, _| {
            let (day, id, seq) = if cv >= 14 {
                (
                    sent.router_call_key_day,
                    sent.router_call_key_call_id,
                    sent.router_call_key_sequence_number,
                )
            } else {
                (None, None, None)
            };
            SetCallDataReq {
                invoke_id,
                router_call_key_day: day,
                router_call_key_call_id: id,
                router_call_key_sequence_number: seq,
                ..sent.clone()
            }
            .into()
        });
        assert_eq!(
            reply,
            SetCallDataConf {
                invoke_id: 7000 + cv
            }
            .into()
        );

        // AGENT_GREETING_CONTROL_REQ exists from v15: a v13 client's is
        // refused with 48; a v14 upstream cannot take it (12); else proxied.
        let greeting = AgentGreetingControlReq {
            invoke_id: 8000 + cv,
            peripheral_id: PID,
            agent_action: 2,
            agent_id: s(&d.agent),
        };
        if cv < 15 {
            // Its layout at v15, whose tags are 1 byte like v13's.
            let frame = Message::from(greeting)
                .to_frame(Version::new(15).unwrap())
                .unwrap();
            desk.send_raw(&frame);
            let f = desk.reply(8000 + cv);
            assert_eq!(
                as_failure_conf(&f),
                Some((8000 + cv, status::E_CTI_INVALID_MSG_TYPE_FOR_VERSION)),
                "{}",
                describe(&f)
            );
        } else if u < 15 {
            desk.send(greeting);
            let f = desk.reply(8000 + cv);
            assert_eq!(
                as_failure_conf(&f),
                Some((8000 + cv, status::E_CTI_FUNCTION_NOT_AVAILABLE)),
                "{}",
                describe(&f)
            );
        } else {
            let reply = rig.round_trip(&mut desk, greeting.clone(), |invoke_id, _| {
                AgentGreetingControlReq {
                    invoke_id,
                    ..greeting.clone()
                }
                .into()
            });
            assert_eq!(
                reply,
                AgentGreetingControlConf {
                    invoke_id: 8000 + cv
                }
                .into()
            );
        }
        // Nothing was sent upstream that the test did not account for.
        assert_eq!(rig.pg.seen().len(), rig.nr_seen);

        // No reply reached a session that did not ask: after a barrier
        // behind every CONF, the desk, the CRM and the observer hold no
        // reply-type frame they were not handed.
        let text = format!("after-v{cv}");
        rig.pg.barrier(&text);
        for (who, c) in [
            ("desk", &mut desk),
            ("crm", &mut crm),
            ("observer", &mut observer),
        ] {
            let before = until_barrier(c, &text);
            let stray: Vec<String> = before
                .iter()
                .filter(|f| is_reply(frame_type(f)))
                .map(|f| describe(f))
                .collect();
            assert!(stray.is_empty(), "{who} at v{cv} got {stray:?}");
        }
        desks.push(desk);
        crms.push(crm);
    }
    // Each CRM connector was the last (only) writer of call data on its
    // call: when it closes, the router releases the call upstream itself,
    // at the upstream's version.
    for crm in &mut crms {
        crm.close();
    }
    let seen = rig.pg.wait_seen(rig.nr_seen + CLIENT_VERSIONS.len(), WAIT);
    let mut released: Vec<(u32, String)> = seen[rig.nr_seen..]
        .iter()
        .map(|s| match decode_strict(&s.frame, up) {
            Message::ReleaseCallReq(r) => {
                assert_ne!(r.invoke_id & 0x8000_0000, 0);
                assert_eq!(r.peripheral_id, PID);
                let dev = r.connection_device_id.unwrap().to_str_lossy().into_owned();
                (r.connection_call_id, dev)
            }
            other => panic!("after the CRMs closed, the fake got {other:?}"),
        })
        .collect();
    released.sort();
    let want: Vec<(u32, String)> = CLIENT_VERSIONS
        .iter()
        .map(|&v| (desk_id(v).call.id, desk_id(v).call.dev.to_string()))
        .collect();
    assert_eq!(released, want);
    rig.nr_seen = seen.len();
    // Every upstream InvokeID was fresh.
    let mut ids: Vec<u32> = rig.pg.seen().iter().map(Seen::invoke_id).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "an upstream InvokeID was used twice");
}

fn make_call(invoke_id: u32, dialed: &str) -> MakeCallReq {
    MakeCallReq {
        invoke_id,
        peripheral_id: 0,
        call_placement_type: 1,
        call_manner_type: 1,
        alert_rings: 4,
        call_option: 1,
        facility_type: 2,
        answering_machine: 3,
        priority: 1,
        post_route: 0,
        num_named_variables: 1,
        num_named_arrays: 1,
        skill_group_number: 0x4242,
        agent_instrument: None,
        dialed_number: s(dialed),
        user_to_user_info: Some(Unspec(vec![1, 2, 3, 0, 4])),
        call_variable_1: s("cv1"),
        call_variable_10: s("cv10"),
        call_wrapup_data: s("wrap"),
        named_variables: vec![NamedVar {
            name: "user.lang".into(),
            value: "fi".into(),
        }],
        named_arrays: vec![NamedArray {
            index: 2,
            name: "user.tags".into(),
            value: "gold".into(),
        }],
        facility_code: s("FAC"),
        authorization_code: s("AUTH"),
        account_code: s("ACC"),
        call_control_table: s("C1"),
        ..Default::default()
    }
}

fn set_call_data(invoke_id: u32, c: CallRef) -> SetCallDataReq {
    SetCallDataReq {
        invoke_id,
        peripheral_id: PID,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        num_named_variables: 1,
        num_named_arrays: 0,
        call_type: 1,
        called_party_disposition: 2,
        campaign_id: 33,
        query_rule_id: 44,
        connection_device_id: s(c.dev),
        ani: s("5551000"),
        user_to_user_info: Some(Unspec(vec![9, 8, 7])),
        caller_entered_digits: s("42"),
        call_variable_1: s("account 17"),
        call_variable_3: s("vip"),
        call_wrapup_data: s("done"),
        named_variables: vec![NamedVar {
            name: "user.crm".into(),
            value: "case-9".into(),
        }],
        customer_phone_number: s("5551000"),
        customer_account_number: s("A-17"),
        router_call_key_day: Some(150_000),
        router_call_key_call_id: Some(77),
        router_call_key_sequence_number: Some(3),
        call_originated_from: Some(b'D'),
        ani_ii: s("11"),
        ctios_cil_client_id: s("cil"),
        ..Default::default()
    }
}

#[test]
fn requests_and_replies_cross_versions_with_a_v24_upstream() {
    matrix(V24);
}

#[test]
fn requests_and_replies_cross_versions_with_a_v14_upstream() {
    matrix(Version::new(14).unwrap());
}

/// A v13 MAKE_CALL_REQ has no SkillGroupNumber (it was added in v14,
/// docs/protocol.md §12.8 #4): the client asks for the default skill group.
/// Re-encoded for a v14+ CTI Server it must say so with NULL_SKILL_GROUP
/// (docs/protocol.md §12.2 #56), not name skill group number 0.
#[test]
fn a_v13_make_call_asks_upstream_for_the_default_skill_group() {
    let (mut rig, _observer) = rig(V24);
    let v13 = Version::new(13).unwrap();
    let d = desk_id(13);
    let (mut desk, _) = open_when_up(
        rig.router.addr(),
        &desk_spec(v13, "desk", &d.agent, &d.instrument),
    );
    let sent = make_call(41, "555013");
    let reply = rig.round_trip(&mut desk, sent.clone(), |invoke_id, _| {
        MakeCallReq {
            invoke_id,
            peripheral_id: PID,
            agent_instrument: s(&d.instrument),
            skill_group_number: NULL_SKILL_GROUP,
            ..sent.clone()
        }
        .into()
    });
    assert_eq!(reply, make_call_conf(41, "555013").into());
}
