//! Black-box tests of what OPEN_CONF says about a Client Events session's
//! agent, and of OPEN_REQs that end up granted no service:
//!
//! * an agent the router has seen in an AGENT_STATE_EVENT (matched by the
//!   field the OPEN_REQ names it by: AgentInstrument, else AgentExtension,
//!   else AgentID): OPEN_CONF's AgentState is its latest state, and
//!   AgentExtension, AgentID, AgentInstrument (and DepartmentID from v19)
//!   are the agent's;
//! * an agent never seen: AgentState LOGOUT, the fields as the OPEN_REQ gave
//!   them;
//! * an OPEN_REQ granted nothing (only services the router does not serve,
//!   or none its `[[clients]]` entry allows): FAILURE_CONF(InvokeID,
//!   E_CTI_FUNCTION_NOT_AVAILABLE) and the connection closed.
//!
//! The router runs in-process with a scripted fake PG as its upstream
//! (`testkit::Harness`); sessions speak v13 and v24 and every reply
//! is decoded strictly at the session's version.

use std::time::{Duration, Instant};

use ctirouter::config::{ClientEntry, ServiceName};
use ctirouter::proto::constants::{agent_state, msg, service, status};
use ctirouter::proto::msg::*;
use ctirouter::proto::{decode_frame, CtiString, DecodeOptions, Message, Version};
use testkit::*;

const VERSIONS: [u32; 2] = [13, 24];

/// The agent the fake PG reports: distinct id, extension and instrument.
const ID: &str = "1101";
const EXT: &str = "4101";
const INSTR: &str = "5101";
const DEPARTMENT: i32 = 42;

fn ver(n: u32) -> Version {
    Version::new(n).expect("a served version")
}

fn decode_at(f: &[u8], version: Version) -> Message {
    match decode_frame(f, version, DecodeOptions::STRICT) {
        Ok((m, used)) if used == f.len() => m,
        Ok(_) => panic!("trailing bytes in a v{version} frame"),
        Err(e) => panic!(
            "type {} does not decode at v{version}: {e:?}",
            frame_type(f)
        ),
    }
}

/// Agent fields of an OPEN_REQ: (AgentID, AgentExtension, AgentInstrument).
type Fields = (
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
);

/// Send OPEN_REQ at `version`; the reply: OPEN_CONF or FAILURE_CONF (its
/// InvokeID must echo the request's).
fn open_at(
    cli: &mut Client,
    version: Version,
    services: u32,
    client_id: &str,
    fields: Fields,
) -> Result<OpenConf, u32> {
    let mut spec = OpenSpec::services(services);
    spec.client_id = client_id.into();
    let mut req = spec.request(cli.invoke());
    req.version_number = version.number();
    req.agent_id = fields.0.map(CtiString::from);
    req.agent_extension = fields.1.map(CtiString::from);
    req.agent_instrument = fields.2.map(CtiString::from);
    let invoke = req.invoke_id;
    cli.send_raw(&Message::from(req).to_frame(version).unwrap());
    let i = cli.expect("the OPEN_REQ's reply", |_| true);
    match decode_at(&cli.log[i].clone(), version) {
        Message::OpenConf(c) => {
            assert_eq!(c.invoke_id, invoke, "OPEN_CONF echoes the InvokeID");
            Ok(c)
        }
        Message::FailureConf(f) => {
            assert_eq!(f.invoke_id, invoke, "FAILURE_CONF echoes the InvokeID");
            Err(f.status)
        }
        other => panic!("OPEN_REQ answered with {other:?}"),
    }
}

fn state_event(state: u16, reason: u16) -> AgentStateEvent {
    AgentStateEvent {
        department_id: DEPARTMENT,
        ..agent_state_ev(Some(ID), Some(EXT), Some(INSTR), state, reason)
    }
}

fn text(s: &Option<CtiString>) -> Option<String> {
    s.as_ref().map(|s| s.to_str_lossy().into_owned())
}

/// (AgentState, AgentID, AgentExtension, AgentInstrument, DepartmentID) of an OPEN_CONF.
type Said = (u16, Option<String>, Option<String>, Option<String>, i32);

fn said(c: &OpenConf) -> Said {
    (
        c.agent_state,
        text(&c.agent_id),
        text(&c.agent_extension),
        text(&c.agent_instrument),
        c.department_id,
    )
}

/// Open Client Events sessions naming the agent by `fields` until OPEN_CONF
/// says `state` (the agent's state reaches the shards asynchronously; at
/// most 1 s), then check the whole OPEN_CONF.
fn expect_open_conf_state(h: &Harness, version: Version, fields: Fields, state: u16) {
    let deadline = Instant::now() + Duration::from_secs(1);
    let conf = loop {
        let mut cli = h.connect();
        let conf = open_at(&mut cli, version, service::CLIENT_EVENTS, "desk", fields)
            .unwrap_or_else(|s| panic!("Client Events refused with {s}"));
        cli.drop_connection();
        if conf.agent_state == state || Instant::now() > deadline {
            break conf;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let department = if version.number() >= 19 {
        DEPARTMENT
    } else {
        0
    };
    assert_eq!(
        said(&conf),
        (
            state,
            Some(ID.to_string()),
            Some(EXT.to_string()),
            Some(INSTR.to_string()),
            department
        ),
        "v{version}, OPEN_REQ naming {fields:?}, after the upstream reported AgentState {state}: \
         OPEN_CONF (AgentState, AgentID, AgentExtension, AgentInstrument, DepartmentID)"
    );
    assert_eq!(conf.services_granted, service::CLIENT_EVENTS);
}

/// After each AgentState the upstream reports, a new Client Events session
/// of the agent — named by instrument, by extension, by id, or by
/// instrument with wrong other fields (the instrument decides) — is told
/// that state and the agent's own fields in OPEN_CONF, at v13 and v24
/// (DepartmentID from v19 only).
#[test]
fn open_conf_carries_the_agents_latest_state_and_fields() {
    let h = Harness::new();
    let mut observer = h.connect();
    let mut spec = OpenSpec::services(service::CLIENT_EVENTS);
    spec.agent_id = Some(ID.into());
    observer.open(&spec);
    let namings: [Fields; 4] = [
        (None, None, Some(INSTR)),
        (None, Some(EXT), None),
        (Some(ID), None, None),
        (Some("9990"), Some("9991"), Some(INSTR)),
    ];
    let states = [
        agent_state::NOT_READY,
        agent_state::AVAILABLE,
        agent_state::TALKING,
        agent_state::HOLD,
        agent_state::WORK_READY,
        agent_state::LOGOUT,
    ];
    for (n, state) in states.into_iter().enumerate() {
        let reason = MARK_BASE + n as u16;
        h.send(state_event(state, reason));
        // The router has the event once a session of the agent has its copy.
        observer.expect("the agent's AGENT_STATE_EVENT", |f| {
            frame_type(f) == msg::AGENT_STATE_EVENT
                && matches!(decode(f), Message::AgentStateEvent(e) if e.event_reason_code == reason)
        });
        for v in VERSIONS {
            for fields in namings {
                expect_open_conf_state(&h, ver(v), fields, state);
            }
        }
    }
}

/// An agent the router never saw: OPEN_CONF AgentState LOGOUT, the agent
/// fields exactly as the OPEN_REQ gave them (absent ones absent), at v13
/// and v24.
#[test]
fn open_conf_for_an_agent_never_seen_is_logout_with_the_requests_fields() {
    let h = Harness::new();
    // Another agent is known: it must not be confused with these.
    let mut observer = h.connect();
    let mut spec = OpenSpec::services(service::CLIENT_EVENTS);
    spec.agent_id = Some(ID.into());
    observer.open(&spec);
    h.send(state_event(agent_state::TALKING, MARK_BASE));
    observer.expect("the known agent's AGENT_STATE_EVENT", |f| {
        frame_type(f) == msg::AGENT_STATE_EVENT
    });
    let cases: [Fields; 4] = [
        (None, None, Some("5999")),
        (None, Some("4999"), None),
        (Some("1999"), None, None),
        (Some("1999"), Some("4999"), Some("5999")),
    ];
    for v in VERSIONS {
        for fields in cases {
            let mut cli = h.connect();
            let conf = open_at(&mut cli, ver(v), service::CLIENT_EVENTS, "desk", fields)
                .unwrap_or_else(|s| panic!("Client Events refused with {s}"));
            let got = said(&conf);
            assert_eq!(
                (got.0, got.1, got.2, got.3),
                (
                    agent_state::LOGOUT,
                    fields.0.map(String::from),
                    fields.1.map(String::from),
                    fields.2.map(String::from)
                ),
                "v{v}, OPEN_REQ naming {fields:?} (never seen): OPEN_CONF \
                 (AgentState, AgentID, AgentExtension, AgentInstrument)"
            );
        }
    }
}

/// The router's answer to an OPEN_REQ that is granted nothing:
/// FAILURE_CONF(InvokeID, 12) and then the connection closes, nothing else.
fn expect_refused_and_closed(cli: &mut Client, version: Version, services: u32, client_id: &str) {
    let got = open_at(cli, version, services, client_id, (None, None, None));
    assert_eq!(
        got.map(|c| c.services_granted),
        Err(status::E_CTI_FUNCTION_NOT_AVAILABLE),
        "v{version}: client {client_id:?} asking services {services:#x} is granted nothing: \
         FAILURE_CONF(E_CTI_FUNCTION_NOT_AVAILABLE) (Ok = OPEN_CONF with ServicesGranted)"
    );
    let before = cli.log.len();
    cli.expect_closed_within(WAIT);
    assert_eq!(
        cli.log.len(),
        before,
        "nothing after the FAILURE_CONF: {:?}",
        cli.log[before..]
            .iter()
            .map(|f| describe(f))
            .collect::<Vec<_>>()
    );
}

/// A client asking only for services the router does not serve (Call Data
/// Update 0x02, Client Control 0x04, Supervisor 0x80, or those together) is
/// refused with FAILURE_CONF 12 and closed, at v13 and v24.
#[test]
fn open_req_for_only_unserved_services_is_refused_with_12_and_closed() {
    let h = Harness::new();
    for v in VERSIONS {
        for services in [
            service::CALL_DATA_UPDATE,
            service::CLIENT_CONTROL,
            service::SUPERVISOR,
            service::CALL_DATA_UPDATE | service::CLIENT_CONTROL | service::SUPERVISOR,
        ] {
            let mut cli = h.connect();
            expect_refused_and_closed(&mut cli, ver(v), services, "desk");
        }
    }
    // A served service among them is granted alone (the refusal is about
    // being granted nothing, not about asking for too much).
    let mut cli = h.connect();
    let conf = open_at(
        &mut cli,
        ver(24),
        service::CLIENT_CONTROL | service::ALL_EVENTS,
        "desk",
        (None, None, None),
    )
    .expect("All Events is served");
    assert_eq!(conf.services_granted, service::ALL_EVENTS);
}

/// A listed client whose `[[clients]]` entry allows none of the services it
/// asks for is refused with FAILURE_CONF 12 and closed; asking for an
/// allowed one, the same client is served.
#[test]
fn open_req_granted_nothing_by_the_client_list_is_refused_with_12_and_closed() {
    let h = Harness::with_config(|c| {
        c.clients = vec![ClientEntry {
            client_id: "wallboard".into(),
            password: String::new(),
            services: Some(vec![ServiceName::ClientMonitor]),
            max_outstanding: None,
            control_scope: Default::default(),
        }]
    });
    for v in VERSIONS {
        for services in [
            service::ALL_EVENTS,
            service::PERIPHERAL_MONITOR | service::ALL_EVENTS,
            service::CLIENT_CONTROL,
        ] {
            let mut cli = h.connect();
            expect_refused_and_closed(&mut cli, ver(v), services, "wallboard");
        }
        let mut cli = h.connect();
        let conf = open_at(
            &mut cli,
            ver(v),
            service::CLIENT_MONITOR | service::ALL_EVENTS,
            "wallboard",
            (None, None, None),
        )
        .expect("wallboard may have Client Monitor");
        assert_eq!(conf.services_granted, service::CLIENT_MONITOR);
    }
}

/// A session that ends while its agent's events are queued for it must not
/// have them written to the next connection: the kernel hands a closed
/// socket's descriptor to the next connection accepted. While the upstream
/// streams the agent's state, v24 sessions of the agent come and go, each
/// followed at once by a v13 session of it: every v13 session's first frame
/// is its OPEN_CONF and every frame it gets decodes strictly at v13 (a v24
/// frame does not: its tags are two bytes wide).
#[test]
fn a_closed_sessions_events_never_reach_the_connection_that_takes_its_socket() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let h = Harness::new();
    let stop = AtomicBool::new(false);
    let instrument: Fields = (None, None, Some(INSTR));
    std::thread::scope(|s| {
        let pg = &h.pg;
        let stop = &stop;
        s.spawn(move || {
            let mut n = 0u16;
            while !stop.load(Ordering::Relaxed) {
                let state = [agent_state::AVAILABLE, agent_state::NOT_READY][n as usize % 2];
                pg.send(state_event(state, MARK_BASE + n % 1000));
                n = n.wrapping_add(1);
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for _ in 0..150 {
                let mut old = h.connect();
                open_at(
                    &mut old,
                    ver(24),
                    service::CLIENT_EVENTS,
                    "desk",
                    instrument,
                )
                .unwrap_or_else(|s| panic!("v24 Client Events refused with {s}"));
                old.drop_connection();
                let mut new = h.connect();
                open_at(
                    &mut new,
                    ver(13),
                    service::CLIENT_EVENTS,
                    "desk",
                    instrument,
                )
                .unwrap_or_else(|s| panic!("v13 Client Events refused with {s}"));
                for frame in new.collect_for(Duration::from_millis(5)) {
                    decode_at(&frame, ver(13));
                }
                new.drop_connection();
            }
        }));
        stop.store(true, Ordering::Relaxed);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    });
}
