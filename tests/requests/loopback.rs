//! Requests through the router binary (docs/requests.md §2, §3, §5): raw
//! clients on loopback, a scripted fake CTI Server behind the router. The
//! fake answers QUERY_AGENT_STATE_REQ with QUERY_AGENT_STATE_CONF and every
//! other request with CONTROL_FAILURE_CONF, echoing the InvokeID it got.

use crate::BIN;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ctirouter::proto::constants::{msg, service, status};
use ctirouter::proto::msg::{
    ControlFailureConf, HeartbeatConf, QueryAgentStateConf, QueryAgentStateReq, SetAgentStateReq,
};
use ctirouter::proto::{Message, Version};
use testkit::*;

const V24: Version = Version::MAX;
/// The services the router asks the CTI Server for by default.
const ASKED: u32 = service::ALL_EVENTS
    | service::CLIENT_CONTROL
    | service::CALL_DATA_UPDATE
    | service::CONNECTION_MONITOR;

/// A fake CTI Server that grants what it is asked for and answers
/// requests; the InvokeIDs of the requests it got are kept in `seen`.
fn answering_pg(seen: Arc<Mutex<Vec<(u32, u32)>>>) -> FakePg {
    FakePg::scripted(move |_, conn| {
        let open = conn.expect_open();
        conn.accept_open_granting(V24, open.services_requested);
        while !conn.stopping() && !conn.eof {
            let Some(frame) = conn.read_frame(Duration::from_millis(50)) else {
                continue;
            };
            let invoke_id = u32::from_be_bytes(frame[8..12].try_into().unwrap());
            let t = frame_type(&frame);
            let reply: Message = match t {
                msg::HEARTBEAT_REQ => HeartbeatConf { invoke_id }.into(),
                msg::CLOSE_REQ => return,
                msg::QUERY_AGENT_STATE_REQ => QueryAgentStateConf {
                    invoke_id,
                    agent_state: 3,
                    ..Default::default()
                }
                .into(),
                _ => ControlFailureConf {
                    invoke_id,
                    failure_code: 4,
                    ..Default::default()
                }
                .into(),
            };
            if t != msg::HEARTBEAT_REQ {
                seen.lock().unwrap().push((t, invoke_id));
            }
            conn.send(&reply.to_frame(V24).unwrap());
        }
    })
}

/// Open `spec` once the router's upstream is up (retried until then).
fn open_when_up(addr: std::net::SocketAddr, spec: &OpenSpec) -> (Client, u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut client = Client::connect(addr);
        let conf = client.open(spec);
        if conf.pg_status & 0x08 == 0 {
            return (client, conf.services_granted);
        }
        assert!(Instant::now() < deadline, "the upstream never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn query(invoke_id: u32) -> QueryAgentStateReq {
    QueryAgentStateReq {
        invoke_id,
        peripheral_id: PID,
        agent_instrument: Some("3001".into()),
        ..Default::default()
    }
}

#[test]
fn a_desktop_controls_through_the_router_and_others_see_nothing_of_it() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fake = answering_pg(seen.clone());
    let toml = format!(
        "{}\n[[clients]]\nclient_id = \"desktop\"\nservices = [\"all-events\", \"client-control\"]\n\n\
         [[clients]]\nclient_id = \"wallboard\"\n",
        upstream_toml(&[fake.addr], 200)
    );
    let router = router(BIN, &toml, &[]);
    let v19 = Version::new(19).unwrap();
    let desktop_spec =
        OpenSpec::new(v19, service::ALL_EVENTS | service::CLIENT_CONTROL).client("desktop", b"");
    let (mut desktop, granted) = open_when_up(router.addr(), &desktop_spec);
    assert_eq!(granted, service::ALL_EVENTS | service::CLIENT_CONTROL);
    let wallboard_spec =
        OpenSpec::new(V24, service::ALL_EVENTS | service::CLIENT_CONTROL).client("wallboard", b"");
    let (mut wallboard, granted) = open_when_up(router.addr(), &wallboard_spec);
    assert_eq!(
        granted,
        service::ALL_EVENTS,
        "not listed with client-control"
    );
    assert_eq!(
        fake.opens.lock().unwrap()[0].1.services_requested,
        ASKED,
        "the router asks the CTI Server for its default services"
    );

    // QUERY_AGENT_STATE at v19 → the CTI Server (fresh InvokeID) → back.
    desktop.send_at(query(77), v19);
    let conf = desktop.reply(77);
    match decode_strict(&conf, v19) {
        Message::QueryAgentStateConf(c) => assert_eq!((c.invoke_id, c.agent_state), (77, 3)),
        other => panic!("{other:?}"),
    }
    // A second desktop session at the upstream's version: HOLD_CALL_REQ
    // passes byte for byte, and the CTI Server's CONTROL_FAILURE_CONF
    // comes back to it alone.
    let (mut desktop24, _) = open_when_up(
        router.addr(),
        &OpenSpec::new(V24, service::CLIENT_CONTROL).client("desktop", b""),
    );
    let hold = raw_frame(54, &[0, 0, 0, 78, 0, 0, 0x13, 0x88, 0, 0, 0, 1, 0, 0, 0, 0]);
    desktop24.send_raw(&hold);
    let failed = desktop24.reply(78);
    assert_eq!(frame_type(&failed), msg::CONTROL_FAILURE_CONF);

    let upstream_ids: Vec<(u32, u32)> = seen.lock().unwrap().clone();
    assert_eq!(upstream_ids.len(), 2);
    assert!(
        upstream_ids.iter().all(|&(_, id)| id & 0x8000_0000 != 0),
        "proxied with top-bit InvokeIDs: {upstream_ids:?}"
    );

    // Each proxied request is in the audit log: who, what, result.
    assert!(
        router.wait_stderr("QUERY_AGENT_STATE_CONF", Duration::from_secs(5)),
        "no audit line:\n{}",
        router.stderr_text()
    );
    let log = router.stderr_text();
    let audit = log
        .lines()
        .find(|l| l.contains("ctirouter::audit") && l.contains("QUERY_AGENT_STATE_REQ"))
        .unwrap_or_else(|| panic!("no audit line for the query:\n{log}"));
    assert!(audit.contains("client=\"desktop\""), "{audit}");
    assert!(audit.contains("\"3001\""), "names the instrument: {audit}");
    assert!(audit.contains("latency_us"), "{audit}");
    // A password never reaches the log.
    desktop.send_at(
        SetAgentStateReq {
            invoke_id: 79,
            peripheral_id: PID,
            agent_state: 2,
            agent_instrument: Some("3001".into()),
            agent_id: Some("1001".into()),
            agent_password: Some("hunter2".into()),
            ..Default::default()
        },
        v19,
    );
    let _ = desktop.reply(79);
    assert!(
        router.wait_stderr("SET_AGENT_STATE_REQ", Duration::from_secs(5)),
        "{}",
        router.stderr_text()
    );
    assert!(!router.stderr_text().contains("hunter2"));

    // The wallboard may not: 12, nothing sent upstream.
    wallboard.send(query(5));
    assert_eq!(
        wallboard.expect_failure_conf(WAIT),
        (5, status::E_CTI_FUNCTION_NOT_AVAILABLE)
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        3,
        "the query, the hold, the agent state"
    );
    // And no CONF of the desktop's ever reached it: its next reply is its own.
    wallboard.heartbeat(WAIT);
    desktop.heartbeat(WAIT);
}
