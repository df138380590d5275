//! Requests in flight when the upstream session is lost (docs/requests.md
//! §5 "Failures"), black-box. A fake CTI Server reads N requests from
//! desktops and a CRM connector at several versions and then either drops
//! the connection (the router fails over to side B) or goes silent, its
//! heartbeats unanswered (the router reconnects to the same side). Each
//! request gets FAILURE_CONF(E_CTI_CTI_SERVER_OFFLINE = 15) at its
//! session's version, sessions stay open, a request made while the upstream
//! is away gets 15 at once, none is replayed on the new session (MAKE_CALL
//! is not idempotent), new requests are answered there with fresh
//! InvokeIDs, and replies to the old InvokeIDs that the CTI Server sends on
//! the new session reach no one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::fake_cti::*;
use crate::BIN;

use ctirouter::proto::constants::{msg, service, status};
use ctirouter::proto::msg::*;
use ctirouter::proto::{Message, Version};
use testkit::*;

const V24: Version = Version::MAX;

/// How the first upstream session ends once it has read every request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Loss {
    /// TCP closed: the router fails over to side B.
    Drop,
    /// No answer to anything, heartbeats included: after three missed
    /// heartbeats the router reconnects (to the only side).
    Hang,
}

/// The second session's rule: every request answered with its CONF.
fn answer(_conn: usize, request: &Message) -> Answer {
    Answer::Reply(vec![conf_for(request)])
}

/// The CONF that answers `request` (the same InvokeID).
fn conf_for(request: &Message) -> Message {
    match request {
        Message::SetAgentStateReq(r) => SetAgentStateConf {
            invoke_id: r.invoke_id,
        }
        .into(),
        Message::MakeCallReq(r) => MakeCallConf {
            invoke_id: r.invoke_id,
            new_connection_call_id: 0x0300_0001,
            new_connection_device_id_type: 1,
            line_handle: 0,
            line_type: 0,
            new_connection_device_id: Some("LATE".into()),
        }
        .into(),
        Message::SetCallDataReq(r) => SetCallDataConf {
            invoke_id: r.invoke_id,
        }
        .into(),
        other => panic!("unexpected request {other:?}"),
    }
}

struct Party {
    name: &'static str,
    client: Client,
}

fn set_state(invoke_id: u32, reason: u16) -> SetAgentStateReq {
    SetAgentStateReq {
        invoke_id,
        peripheral_id: PID,
        agent_state: 2,
        event_reason_code: reason,
        ..Default::default()
    }
}

fn reason_of(m: &Message) -> Option<u16> {
    match m {
        Message::SetAgentStateReq(r) => Some(r.event_reason_code),
        _ => None,
    }
}

fn scenario(loss: Loss) {
    const DESK_VERSIONS: [u32; 3] = [13, 19, 24];
    // Each desk: SET_AGENT_STATE and MAKE_CALL; the CRM: SET_CALL_DATA.
    const N: usize = DESK_VERSIONS.len() * 2 + 1;
    let gate = Arc::new(AtomicBool::new(false));
    let mut nr_read = 0;
    let first_rule = move |conn: usize, request: &Message| {
        if conn > 0 {
            return answer(conn, request);
        }
        nr_read += 1;
        match (nr_read < N, loss) {
            (true, _) => Answer::Silent,
            (false, Loss::Drop) => Answer::Drop,
            (false, Loss::Hang) => Answer::Hang,
        }
    };
    // Drop: side A loses, side B (gated) takes over. Hang: one side whose
    // second connection is gated.
    let (a, b) = match loss {
        Loss::Drop => (
            ProxyPg::start(V24, first_rule),
            Some(ProxyPg::start_gated(V24, Some((0, gate.clone())), answer)),
        ),
        Loss::Hang => (
            ProxyPg::start_gated(V24, Some((1, gate.clone())), first_rule),
            None,
        ),
    };
    let sides: Vec<_> = [Some(a.addr()), b.as_ref().map(ProxyPg::addr)]
        .into_iter()
        .flatten()
        .collect();
    let clients = format!(
        "{}{}[[clients]]\nclient_id = \"watch\"\n",
        client_entry("desk", &["client-events", "client-control"]),
        client_entry("crm", &["all-events", "call-data-update"]),
    );
    let router = router(BIN, &config(&sides, V24, &clients), &[]);
    let (observer, _) = open_when_up(
        router.addr(),
        &OpenSpec::new(V24, service::ALL_EVENTS).client("watch", b""),
    );
    let mut parties = vec![Party {
        name: "observer",
        client: observer,
    }];
    for v in DESK_VERSIONS {
        let spec = desk_spec(
            Version::new(v).unwrap(),
            "desk",
            &format!("10{v}"),
            &format!("30{v}"),
        );
        parties.push(Party {
            name: ["desk-v13", "desk-v19", "desk-v24"][parties.len() - 1],
            client: open_when_up(router.addr(), &spec).0,
        });
    }
    let crm_spec = OpenSpec::new(
        Version::new(20).unwrap(),
        service::ALL_EVENTS | service::CALL_DATA_UPDATE,
    )
    .client("crm", b"");
    parties.push(Party {
        name: "crm-v20",
        client: open_when_up(router.addr(), &crm_spec).0,
    });

    // N requests in flight; the first session reads them all, then is lost.
    let mut asked: Vec<(usize, u32)> = Vec::new();
    for (i, p) in parties.iter_mut().enumerate() {
        let invoke = 100 + i as u32;
        match p.name {
            "observer" => continue,
            "crm-v20" => p.client.send(SetCallDataReq {
                invoke_id: invoke,
                peripheral_id: PID,
                connection_device_id_type: 1,
                connection_call_id: 0x0300_0001,
                connection_device_id: Some("T1".into()),
                call_variable_1: Some("x".into()),
                ..Default::default()
            }),
            _ => {
                p.client.send(set_state(invoke, 1));
                p.client.send(MakeCallReq {
                    invoke_id: invoke + 50,
                    peripheral_id: PID,
                    dialed_number: Some("5551234".into()),
                    ..Default::default()
                });
                asked.push((i, invoke + 50));
            }
        }
        asked.push((i, invoke));
    }
    assert_eq!(asked.len(), N);
    let old = a.wait_seen(N, WAIT);
    let old_ids: Vec<u32> = old.iter().map(Seen::invoke_id).collect();
    assert!(
        old_ids.iter().all(|id| id & 0x8000_0000 != 0),
        "{old_ids:x?}"
    );

    // Each gets FAILURE_CONF(15), at its version, on a session that stays open.
    for &(i, invoke) in &asked {
        let p = &mut parties[i];
        let f = p.client.reply(invoke);
        assert_eq!(
            frame_type(&f),
            msg::FAILURE_CONF,
            "{}: {}",
            p.name,
            describe(&f)
        );
        match decode_strict(&f, p.client.version) {
            Message::FailureConf(c) => assert_eq!(
                (c.invoke_id, c.status),
                (invoke, status::E_CTI_CTI_SERVER_OFFLINE),
                "{}",
                p.name
            ),
            other => panic!("{other:?}"),
        }
    }
    // Every session heard the CTI Server go (SYS_CTI_SERVER_OFFLINE).
    for p in &mut parties {
        let v = p.client.version;
        p.client.expect("SYS_CTI_SERVER_OFFLINE", |f| {
            system_event_id(f, v).is_some_and(|(id, _)| id == 7)
        });
    }

    // The upstream is away (the next session waits at its OPEN): a request
    // now is refused at once, and never sent anywhere.
    let desk24 = parties.iter().position(|p| p.name == "desk-v24").unwrap();
    parties[desk24].client.send(set_state(90, 2));
    let f = parties[desk24].client.reply(90);
    assert_eq!(
        as_failure_conf(&f),
        Some((90, status::E_CTI_CTI_SERVER_OFFLINE)),
        "{}",
        describe(&f)
    );

    // Back: SYS_CTI_SERVER_ONLINE.
    gate.store(true, Ordering::SeqCst);
    for p in &mut parties {
        let v = p.client.version;
        match p
            .client
            .wait_for("SYS_CTI_SERVER_ONLINE", Duration::from_secs(10), |f| {
                system_event_id(f, v).is_some_and(|(id, _)| id == 8)
            }) {
            Ok(_) => {}
            Err(end) => panic!("{}: the upstream never came back ({end:?})", p.name),
        }
    }
    // The new session: side B's first, or the one side's second.
    let next = b.as_ref().unwrap_or(&a);
    let on_next = || -> Vec<Seen> {
        next.seen()
            .into_iter()
            .filter(|s| loss == Loss::Drop || s.conn > 0)
            .collect()
    };
    if let Some(b) = &b {
        assert_eq!(a.seen().len(), N, "side A read nothing after it was lost");
        assert!(b.seen().is_empty(), "nothing replayed on side B");
    } else {
        assert_eq!(a.seen().len(), N, "nothing replayed on the new session");
    }

    // New requests are answered normally on the new session.
    let mut fresh: Vec<(usize, u32)> = Vec::new();
    for (i, p) in parties.iter_mut().enumerate() {
        let invoke = 200 + i as u32;
        match p.name {
            "observer" => continue,
            "crm-v20" => p.client.send(SetCallDataReq {
                invoke_id: invoke,
                peripheral_id: PID,
                connection_device_id_type: 1,
                connection_call_id: 0x0300_0002,
                connection_device_id: Some("T2".into()),
                ..Default::default()
            }),
            _ => p.client.send(set_state(invoke, 900 + i as u16)),
        }
        fresh.push((i, invoke));
    }
    for &(i, invoke) in &fresh {
        let p = &mut parties[i];
        let f = p.client.reply(invoke);
        let want = if p.name == "crm-v20" {
            msg::SET_CALL_DATA_CONF
        } else {
            msg::SET_AGENT_STATE_CONF
        };
        assert_eq!(frame_type(&f), want, "{}: {}", p.name, describe(&f));
        assert_eq!(be32(&f, 8), invoke);
    }
    let new = on_next();
    assert_eq!(new.len(), fresh.len(), "only the new requests went up");
    let mut reasons: Vec<u16> = new
        .iter()
        .filter_map(|s| reason_of(&decode_strict(&s.frame, V24)))
        .collect();
    reasons.sort_unstable();
    let mut want: Vec<u16> = fresh
        .iter()
        .filter(|(i, _)| parties[*i].name != "crm-v20")
        .map(|&(i, _)| 900 + i as u16)
        .collect();
    want.sort_unstable();
    assert_eq!(reasons, want, "the new SET_AGENT_STATEs, nothing older");
    assert!(
        new.iter().all(|s| !old_ids.contains(&s.invoke_id())),
        "an old upstream InvokeID was reused"
    );

    // The CTI Server now answers the lost requests on the new session:
    // the router drops every such reply. A barrier behind them reaches
    // every session; none got a reply it had not been handed.
    for s in &old {
        next.send(conf_for(&decode_strict(&s.frame, V24)));
        next.send(ControlFailureConf {
            invoke_id: s.invoke_id(),
            failure_code: 1,
            ..Default::default()
        });
        next.send(FailureConf {
            invoke_id: s.invoke_id(),
            status: status::E_CTI_TIMEOUT,
            ..Default::default()
        });
    }
    next.barrier("late replies sent");
    for p in &mut parties {
        let before = until_barrier(&mut p.client, "late replies sent");
        let stray: Vec<String> = before
            .iter()
            .filter(|f| is_reply(frame_type(f)))
            .map(|f| describe(f))
            .collect();
        assert!(stray.is_empty(), "{} got {stray:?}", p.name);
    }
    // And the sessions are served as before.
    for p in &mut parties {
        p.client.heartbeat_keeping_events();
    }
}

#[test]
fn requests_in_flight_fail_with_15_when_side_a_drops_and_side_b_never_sees_them() {
    scenario(Loss::Drop);
}

#[test]
fn requests_in_flight_fail_with_15_when_the_upstream_goes_silent_and_are_not_replayed() {
    scenario(Loss::Hang);
}
