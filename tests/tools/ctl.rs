//! `ctirouter ctl` as a process, against the router binary whose upstream
//! is a scripted fake CTI Server (docs/requests.md §10): the fake grants
//! what the router asks for (Client Control and Call Data Update included)
//! and answers each request with what the test scripts (typed CONFs and the
//! events a PG would send). Each test checks the exit status, what ctl
//! printed, and the requests the fake received.

use crate::BIN;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ctirouter::proto::constants::{connection_type, lcs, service};
use ctirouter::proto::group::DeviceCall;
use ctirouter::proto::msg::{
    AnswerCallReq, ConsultationCallConf, ControlFailureConf, HoldCallConf, ReleaseCallConf,
    SetAgentStateConf, SetCallDataConf, SnapshotDeviceConf, TransferCallConf,
};
use ctirouter::proto::{Message, Version};
use testkit::*;

const V24: Version = Version::MAX;
/// The agent's calls: ConnectionDeviceID is its instrument, as a PG names
/// the agent's connections.
const CUSTOMER: CallRef = call(0x0100_0001, "3001");
const CONSULT: CallRef = call(0x0100_0002, "3001");
const RINGING: CallRef = call(0x0100_0003, "3001");

/// What the fake answers a request with (the request's upstream InvokeID, the request).
type Answer = dyn FnMut(u32, &Message) -> Vec<Message> + Send;

/// A fake CTI Server that grants what it is asked for, answers heartbeats
/// and CLOSE_REQ, and every other request with `answer`; the requests go
/// into `got`, decoded.
fn scripted_pg(got: Arc<Mutex<Vec<Message>>>, mut answer: Box<Answer>) -> FakePg {
    FakePg::answering(move |invoke_id, request| {
        let replies = answer(invoke_id, request);
        got.lock().unwrap().push(request.clone());
        replies
    })
}

/// The router in front of a scripted fake, with the clients ctl opens as:
/// `desk` may control and update call data, `watcher` only watch.
struct Desk {
    router: Proc,
    got: Arc<Mutex<Vec<Message>>>,
    _fake: FakePg,
}

/// What one `ctl` run did.
struct Run {
    status: ExitStatus,
    stdout: Vec<String>,
    stderr: String,
}

impl Run {
    fn printed(&self, message_type: &str) -> bool {
        self.stdout.iter().any(|l| l.starts_with(message_type))
    }
}

impl Desk {
    fn start(answer: impl FnMut(u32, &Message) -> Vec<Message> + Send + 'static) -> Desk {
        let got = Arc::new(Mutex::new(Vec::new()));
        let fake = scripted_pg(got.clone(), Box::new(answer));
        let toml = format!(
            "{}\n[[clients]]\nclient_id = \"probe\"\n\n\
             [[clients]]\nclient_id = \"desk\"\n\
             services = [\"client-events\", \"client-control\", \"call-data-update\"]\n\n\
             [[clients]]\nclient_id = \"watcher\"\nservices = [\"client-events\"]\n",
            upstream_toml(&[fake.addr], 200)
        );
        let router = router(BIN, &toml, &[]);
        wait_upstream(router.addr());
        Desk {
            router,
            got,
            _fake: fake,
        }
    }

    /// `ctirouter ctl` for agent 1001 at 3001 as `client`, 300 ms of events.
    fn ctl(&self, client: &str, args: &[&str]) -> Run {
        let addr = self.router.addr().to_string();
        let mut all = vec![
            "ctl",
            "--connect",
            addr.as_str(),
            "--agent",
            "1001",
            "--instrument",
            "3001",
            "--client-id",
            client,
            "--wait-ms",
            "300",
        ];
        all.extend_from_slice(args);
        let mut p = Proc::spawn(BIN, &all);
        let status = p.wait_exit(Duration::from_secs(15));
        let mut stdout = Vec::new();
        while let Some(line) = p.next_line(Duration::from_secs(2)) {
            stdout.push(line);
        }
        Run {
            status,
            stdout,
            stderr: p.stderr_text(),
        }
    }

    /// The requests the fake CTI Server received, in order.
    fn received(&self) -> Vec<Message> {
        self.got.lock().unwrap().clone()
    }

    /// [`Desk::received`] once there are `n` (or 5 s passed).
    fn received_n(&self, n: usize) -> Vec<Message> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.got.lock().unwrap().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.received()
    }
}

/// Wait (≤ 10 s) until the router's upstream session is up.
fn wait_upstream(addr: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut probe = Client::connect(addr);
        let conf = probe.open(&OpenSpec::new(V24, service::ALL_EVENTS).client("probe", b""));
        if conf.pg_status & 0x08 == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the upstream never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn snapshot_conf(invoke_id: u32, calls: &[(CallRef, u16)]) -> Message {
    SnapshotDeviceConf {
        invoke_id,
        num_calls: calls.len() as u16,
        calls: calls
            .iter()
            .map(|(c, state)| DeviceCall {
                connection_call_id: Some(c.id),
                connection_device_id_type: Some(connection_type::DYNAMIC),
                connection_device_id: Some(c.dev.into()),
                call_state: Some(*state),
                silent_monitor_status: Some(0),
            })
            .collect(),
    }
    .into()
}

/// The customer's call ringing at 3001 and answered (the router learns 3001
/// is a party), and the snapshot listing `calls`.
fn connected_call_then_snapshot(invoke_id: u32, calls: &[(CallRef, u16)]) -> Vec<Message> {
    vec![
        delivered(CUSTOMER, "3001", "5551000", "3001", None).into(),
        established(CUSTOMER, "3001", "5551000").into(),
        snapshot_conf(invoke_id, calls),
    ]
}

fn names(requests: &[Message]) -> Vec<String> {
    requests.iter().map(|m| m.name().into_owned()).collect()
}

#[test]
fn state_not_ready_sends_the_agent_state_and_prints_the_conf_and_the_event() {
    let desk = Desk::start(|invoke_id, request| match request {
        Message::SetAgentStateReq(r) => vec![
            SetAgentStateConf { invoke_id }.into(),
            agent_state_ev(
                Some("1001"),
                None,
                Some("3001"),
                r.agent_state,
                r.event_reason_code,
            )
            .into(),
        ],
        _ => vec![],
    });
    let run = desk.ctl("desk", &["state", "not-ready", "--reason", "12"]);
    assert!(run.status.success(), "{:?}\n{}", run.status, run.stderr);
    assert!(run.printed("SET_AGENT_STATE_CONF "), "{:?}", run.stdout);
    let event = run
        .stdout
        .iter()
        .find(|l| l.starts_with("AGENT_STATE_EVENT "))
        .unwrap_or_else(|| panic!("no AGENT_STATE_EVENT line: {:?}", run.stdout));
    assert!(event.contains("event_reason_code=12"), "{event}");
    assert!(run.stderr.contains("CLOSE_CONF received"), "{}", run.stderr);
    let got = desk.received();
    let [Message::SetAgentStateReq(r)] = &got[..] else {
        panic!("{:?}", names(&got))
    };
    assert_eq!(
        (r.agent_state, r.event_reason_code, r.peripheral_id),
        (2, 12, PID),
        "NOT_READY with its reason, on the peripheral OPEN_CONF named"
    );
    assert_eq!(r.agent_id.as_ref().unwrap().as_bytes(), b"1001");
    assert_eq!(r.agent_instrument.as_ref().unwrap().as_bytes(), b"3001");
}

#[test]
fn hold_picks_the_connected_call_from_a_snapshot_and_prints_json() {
    let desk = Desk::start(|invoke_id, request| match request {
        Message::SnapshotDeviceReq(_) => {
            let mut out = vec![delivered(RINGING, "3001", "5552000", "3001", None).into()];
            out.extend(connected_call_then_snapshot(
                invoke_id,
                &[(RINGING, lcs::ALERTING), (CUSTOMER, lcs::CONNECT)],
            ));
            out
        }
        Message::HoldCallReq(_) => vec![
            HoldCallConf { invoke_id }.into(),
            held(CUSTOMER, Some("3001")).into(),
        ],
        _ => vec![],
    });
    let run = desk.ctl("desk", &["hold", "--json"]);
    assert!(run.status.success(), "{:?}\n{}", run.status, run.stderr);
    let types: Vec<String> = run
        .stdout
        .iter()
        .map(|line| {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(v["fields"].is_object(), "{line}");
            v["type"].as_str().unwrap().to_string()
        })
        .collect();
    let at = |t: &str| {
        types
            .iter()
            .position(|x| x == t)
            .unwrap_or_else(|| panic!("no {t} in {types:?}"))
    };
    assert!(
        at("SNAPSHOT_DEVICE_CONF") < at("HOLD_CALL_CONF"),
        "{types:?}"
    );
    assert!(
        at("CALL_HELD_EVENT") > at("SNAPSHOT_DEVICE_CONF"),
        "{types:?}"
    );
    let got = desk.received();
    let [Message::SnapshotDeviceReq(s), Message::HoldCallReq(h)] = &got[..] else {
        panic!("{:?}", names(&got))
    };
    assert_eq!(s.agent_instrument.as_ref().unwrap().as_bytes(), b"3001");
    assert_eq!(
        (h.connection_call_id, h.connection_device_id_type),
        (CUSTOMER.id, connection_type::DYNAMIC),
        "the connected call, not the ringing one"
    );
    assert_eq!(h.connection_device_id.as_ref().unwrap().as_bytes(), b"3001");
}

#[test]
fn a_control_failure_exits_one_and_names_its_code() {
    let desk = Desk::start(|invoke_id, request| match request {
        Message::SnapshotDeviceReq(_) => vec![
            delivered(RINGING, "3001", "5552000", "3001", None).into(),
            snapshot_conf(invoke_id, &[(RINGING, lcs::ALERTING)]),
        ],
        Message::AnswerCallReq(_) => vec![ControlFailureConf {
            invoke_id,
            failure_code: 28,
            peripheral_error_code: 0,
            ..Default::default()
        }
        .into()],
        _ => vec![],
    });
    let run = desk.ctl("desk", &["answer"]);
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    assert!(run.printed("CONTROL_FAILURE_CONF "), "{:?}", run.stdout);
    assert!(
        run.stderr
            .contains("ANSWER_CALL_REQ: CONTROL_FAILURE_CONF CF_NO_CALL_TO_ANSWER (28)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("CLOSE_CONF received"),
        "the session is closed after a failure too: {}",
        run.stderr
    );
    let got = desk.received();
    let [Message::SnapshotDeviceReq(_), Message::AnswerCallReq(AnswerCallReq {
        connection_call_id, ..
    })] = &got[..]
    else {
        panic!("{:?}", names(&got))
    };
    assert_eq!(*connection_call_id, RINGING.id);
}

#[test]
fn transfer_consults_waits_for_the_answer_then_transfers() {
    let desk = Desk::start(|invoke_id, request| match request {
        Message::SnapshotDeviceReq(_) => {
            connected_call_then_snapshot(invoke_id, &[(CUSTOMER, lcs::CONNECT)])
        }
        Message::ConsultationCallReq(_) => vec![
            held(CUSTOMER, Some("3001")).into(),
            service_initiated(CONSULT, "3001").into(),
            ConsultationCallConf {
                invoke_id,
                new_connection_call_id: CONSULT.id,
                new_connection_device_id_type: connection_type::DYNAMIC,
                new_connection_device_id: Some(CONSULT.dev.into()),
                line_handle: 0,
                line_type: 2,
            }
            .into(),
            delivered(CONSULT, "3002", "3001", "3002", None).into(),
            established(CONSULT, "3002", "3001").into(),
        ],
        Message::TransferCallReq(_) => vec![
            TransferCallConf {
                invoke_id,
                new_connection_call_id: CUSTOMER.id,
                new_connection_device_id_type: connection_type::DYNAMIC,
                new_connection_device_id: Some("3002".into()),
                ..Default::default()
            }
            .into(),
            transferred(CUSTOMER, CONSULT, "3001", "3002", &["5551000", "3002"]).into(),
        ],
        _ => vec![],
    });
    let run = desk.ctl("desk", &["transfer", "3002"]);
    assert!(run.status.success(), "{:?}\n{}", run.status, run.stderr);
    for t in [
        "CONSULTATION_CALL_CONF ",
        "CALL_ESTABLISHED_EVENT ",
        "TRANSFER_CALL_CONF ",
    ] {
        assert!(run.printed(t), "no {t}line: {:?}", run.stdout);
    }
    let got = desk.received();
    let [Message::SnapshotDeviceReq(_), Message::ConsultationCallReq(c), Message::TransferCallReq(t)] =
        &got[..]
    else {
        panic!("{:?}", names(&got))
    };
    assert_eq!(c.active_connection_call_id, CUSTOMER.id);
    assert_eq!(c.dialed_number.as_ref().unwrap().as_bytes(), b"3002");
    assert_eq!(c.consult_type, 1, "a consultation for a transfer");
    assert_eq!(
        (t.held_connection_call_id, t.active_connection_call_id),
        (CUSTOMER.id, CONSULT.id),
        "held = the customer's call, active = the consult call"
    );
    assert_eq!(
        t.held_connection_device_id.as_ref().unwrap().as_bytes(),
        b"3001"
    );
    assert_eq!(
        t.active_connection_device_id.as_ref().unwrap().as_bytes(),
        b"3001"
    );
}

#[test]
fn set_data_sends_call_variables_and_named_variables() {
    let desk = Desk::start(|invoke_id, request| match request {
        Message::SnapshotDeviceReq(_) => {
            connected_call_then_snapshot(invoke_id, &[(CUSTOMER, lcs::CONNECT)])
        }
        Message::SetCallDataReq(_) => vec![
            SetCallDataConf { invoke_id }.into(),
            data_update(CUSTOMER).into(),
        ],
        Message::ReleaseCallReq(_) => vec![ReleaseCallConf { invoke_id }.into()],
        _ => vec![],
    });
    let run = desk.ctl(
        "desk",
        &["set-data", "--var", "3=ABC", "--named", "user.crm.id=42"],
    );
    assert!(run.status.success(), "{:?}\n{}", run.status, run.stderr);
    assert!(run.printed("SET_CALL_DATA_CONF "), "{:?}", run.stdout);
    // ctl's session set call data and closed: the router releases the call
    // upstream on its behalf (docs/requests.md §5, RELEASE_CALL).
    let got = desk.received_n(3);
    let [Message::SnapshotDeviceReq(_), Message::SetCallDataReq(r), Message::ReleaseCallReq(release)] =
        &got[..]
    else {
        panic!("{:?}", names(&got))
    };
    assert_eq!(release.connection_call_id, CUSTOMER.id);
    assert_eq!(r.connection_call_id, CUSTOMER.id);
    assert_eq!(r.call_variable_3.as_ref().unwrap().as_bytes(), b"ABC");
    assert!(r.call_variable_1.is_none());
    assert_eq!(r.named_variables.len(), 1);
    assert_eq!(r.named_variables[0].name.as_bytes(), b"user.crm.id");
    assert_eq!(r.named_variables[0].value.as_bytes(), b"42");
}

#[test]
fn a_client_not_listed_for_control_is_told_so_and_nothing_goes_upstream() {
    let desk = Desk::start(|_, _| vec![]);
    let run = desk.ctl("watcher", &["state", "ready"]);
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("without Client Control") && run.stderr.contains("[[clients]]"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("CLOSE_CONF received"), "{}", run.stderr);
    assert!(desk.received().is_empty(), "{:?}", names(&desk.received()));
}

#[test]
fn snapshot_prints_the_calls_at_the_instrument() {
    let desk = Desk::start(|invoke_id, request| match request {
        Message::SnapshotDeviceReq(_) => vec![snapshot_conf(
            invoke_id,
            &[(CUSTOMER, lcs::HOLD), (CONSULT, lcs::CONNECT)],
        )],
        _ => vec![],
    });
    let run = desk.ctl("desk", &["snapshot"]);
    assert!(run.status.success(), "{:?}\n{}", run.status, run.stderr);
    let conf = run
        .stdout
        .iter()
        .position(|l| l.starts_with("SNAPSHOT_DEVICE_CONF "))
        .unwrap_or_else(|| panic!("{:?}", run.stdout));
    assert_eq!(
        run.stdout[conf + 1..conf + 3],
        [
            format!("  call {} at \"3001\" LCS_HOLD", CUSTOMER.id),
            format!("  call {} at \"3001\" LCS_CONNECT", CONSULT.id),
        ]
    );
    let got = desk.received();
    let [Message::SnapshotDeviceReq(s)] = &got[..] else {
        panic!("{:?}", names(&got))
    };
    assert_eq!(s.agent_instrument.as_ref().unwrap().as_bytes(), b"3001");
}
