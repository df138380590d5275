//! Black-box OPEN tests (docs/design.md §4.3, §4.4): the OPEN_REQ checks, the
//! client list, strings with and without NUL, OPEN_CONF and the peripheral
//! SYSTEM_EVENTs after it. The router binary on a loopback port, raw bytes.

use crate::{BIN, SIM};
use std::time::{Duration, Instant};

use ctirouter::proto::constants::{msg, service, status};
use ctirouter::proto::{Message, Version};
use testkit::*;

/// Every service the router may grant on its built-in simulated PG: the
/// event services it serves itself (docs/design.md §4.8–§4.11: All Events,
/// Client Events, Peripheral Monitor, Client Monitor) and the request
/// services the simulator answers (Client Control, Call Data Update), and
/// the Server service the router provides itself (docs/requests.md §8).
/// Nothing else is granted (Supervisor needs a session of its own upstream).
const SERVED: u32 = service::ALL_EVENTS
    | service::CLIENT_EVENTS
    | service::PERIPHERAL_MONITOR
    | service::CLIENT_MONITOR
    | service::CLIENT_CONTROL
    | service::CALL_DATA_UPDATE
    | service::SERVER;

/// Send a raw OPEN_REQ and expect FAILURE_CONF(invoke, code) then close.
fn expect_open_rejected(
    router: &RouterProcess,
    version: Version,
    req: Vec<u8>,
    code: u32,
    what: &str,
) {
    let mut c = router.client();
    c.send_raw(&req);
    let (_, frame) = c.expect_frame(WAIT);
    let invoke = u32::from_be_bytes(req[8..12].try_into().unwrap());
    assert_eq!(
        frame,
        failure_conf_frame(invoke, code),
        "{what} (v{version}): got {}",
        describe(&frame)
    );
    c.expect_closed(WAIT);
}

fn open_frame(
    version: Version,
    invoke: u32,
    idle: u32,
    services: u32,
    fields: &[(u16, &[u8])],
) -> Vec<u8> {
    let mut body = open_req_fixed(
        invoke,
        version.number(),
        idle,
        services,
        ALL_CALLS,
        ALL_AGENTS,
    );
    body.extend(floating(version.tag_width(), fields));
    raw_frame(msg::OPEN_REQ, &body)
}

/// Set the PeripheralID (fixed offset 12) of a whole OPEN_REQ frame.
fn with_peripheral(mut frame: Vec<u8>, peripheral_id: u32) -> Vec<u8> {
    frame[8 + 12..8 + 16].copy_from_slice(&peripheral_id.to_be_bytes());
    frame
}

#[test]
fn open_req_checks_fail_then_close() {
    let router = RouterProcess::start(BIN, SIM);
    for version in [v(15), v(24)] {
        let ae = service::ALL_EVENTS;
        let no_id = open_frame(version, 61, NO_IDLE, ae, &[(2, b"")]);
        expect_open_rejected(
            &router,
            version,
            no_id,
            status::E_CTI_REQUIRED_DATA_MISSING,
            "no ClientID",
        );
        let idle19 = open_frame(version, 62, 19, ae, &[(1, b"test\0"), (2, b"")]);
        expect_open_rejected(
            &router,
            version,
            idle19,
            status::E_CTI_INVALID_TIMEOUT,
            "IdleTimeout 19",
        );
        let idle0 = open_frame(version, 63, 0, ae, &[(1, b"test\0"), (2, b"")]);
        expect_open_rejected(
            &router,
            version,
            idle0,
            status::E_CTI_INVALID_TIMEOUT,
            "IdleTimeout 0",
        );
        // (Client Events sessions name their peripheral: only the agent is missing.)
        let ce = with_peripheral(
            open_frame(
                version,
                64,
                NO_IDLE,
                service::CLIENT_EVENTS,
                &[(1, b"agent\0"), (2, b"")],
            ),
            PID,
        );
        expect_open_rejected(
            &router,
            version,
            ce,
            status::E_CTI_REQUIRED_DATA_MISSING,
            "Client Events without agent",
        );
        let ce_empty = with_peripheral(
            open_frame(
                version,
                65,
                NO_IDLE,
                service::CLIENT_EVENTS,
                &[(1, b"agent\0"), (2, b""), (4, b"\0"), (5, b""), (6, b"\0")],
            ),
            PID,
        );
        expect_open_rejected(
            &router,
            version,
            ce_empty,
            status::E_CTI_REQUIRED_DATA_MISSING,
            "Client Events, empty agent fields",
        );
    }
}

#[test]
fn idle_timeout_20_and_disabled_are_accepted() {
    let router = RouterProcess::start(BIN, SIM);
    for idle in [20, 21, 300, NO_IDLE] {
        let mut c = router.client();
        let conf = c.open(
            &OpenSpec::new(Version::MAX, service::ALL_EVENTS)
                .masks(0, 0)
                .idle(idle),
        );
        assert_eq!(
            conf.services_granted,
            service::ALL_EVENTS,
            "IdleTimeout {idle}"
        );
        c.heartbeat(WAIT);
    }
}

#[test]
fn second_open_req_fails_with_5_then_close() {
    let router = RouterProcess::start(BIN, SIM);
    for version in [v(14), v(24)] {
        let mut c = router.client();
        c.open_all_events_masked(version, 0, 0);
        c.send_at(
            open_req(
                99,
                version.number(),
                service::ALL_EVENTS,
                0,
                0,
                NO_IDLE,
                "test",
                b"",
            ),
            version,
        );
        let (invoke, code) = c.expect_failure_conf(WAIT);
        assert_eq!(
            (invoke, code),
            (99, status::E_CTI_SESSION_ALREADY_OPEN),
            "v{version}"
        );
        c.expect_closed(WAIT);
    }
}

#[test]
fn strings_with_and_without_nul_are_accepted() {
    let router = RouterProcess::start(BIN, SIM);
    for version in [v(13), v(19), v(20), v(24)] {
        // ClientID without NUL, password as a 0-length field (what CTM sends).
        let mut c = router.client();
        c.send_raw(&open_frame(
            version,
            71,
            NO_IDLE,
            service::ALL_EVENTS,
            &[(1, b"bridge"), (2, b"")],
        ));
        let conf = c.expect_open_conf(version);
        assert_eq!(
            (conf.invoke_id, conf.services_granted),
            (71, service::ALL_EVENTS),
            "v{version}"
        );
        assert_eq!(c.expect_system_event().system_event_id, 3);
        c.heartbeat(WAIT);
        // ClientID with NUL, password a lone NUL (what GED sends).
        let mut c = router.client();
        c.send_raw(&open_frame(
            version,
            72,
            NO_IDLE,
            service::ALL_EVENTS,
            &[(1, b"bridge\0"), (2, b"\0")],
        ));
        assert_eq!(c.expect_open_conf(version).invoke_id, 72);
        c.heartbeat(WAIT);
    }
}

const CLIENTS_TOML: &str = r#"
[[clients]]
client_id = "bridge"
password = ""
services = ["all-events"]

[[clients]]
client_id = "recorder"
password = "s3cret"
services = ["all-events", "client-monitor"]

[[clients]]
client_id = "wallboard"
password = "wb"
services = ["client-monitor"]
"#;

#[test]
fn client_list_checks_passwords_and_grants_only_listed_services() {
    let router = RouterProcess::start_with_config_probed(BIN, CLIENTS_TOML, SIM, ("bridge", b""));
    let version = Version::MAX;
    let ae = service::ALL_EVENTS;
    let cases: [(&[u8], &[u8], &str); 4] = [
        (b"recorder\0", b"nope", "wrong password"),
        (
            b"recorder\0",
            b"",
            "empty password for a client that has one",
        ),
        (b"intruder\0", b"", "client not in the list"),
        (b"bridge\0", b"x", "password given for a client with none"),
    ];
    for (i, (id, password, what)) in cases.into_iter().enumerate() {
        let req = open_frame(
            version,
            80 + i as u32,
            NO_IDLE,
            ae,
            &[(1, id), (2, password)],
        );
        expect_open_rejected(&router, version, req, status::E_CTI_INVALID_PASSWORD, what);
    }
    // Right passwords, with and without NUL.
    for (id, password) in [
        (&b"recorder"[..], &b"s3cret"[..]),
        (b"recorder\0", b"s3cret\0"),
        (b"bridge", b""),
        (b"bridge\0", b"\0"),
    ] {
        let mut c = router.client();
        c.send_raw(&open_frame(
            version,
            90,
            NO_IDLE,
            ae,
            &[(1, id), (2, password)],
        ));
        let conf = c.expect_open_conf(version);
        assert_eq!(
            conf.services_granted,
            ae,
            "{:?}",
            String::from_utf8_lossy(id)
        );
        assert_eq!(c.expect_system_event().system_event_id, 3);
    }
    // A listed client is granted only what it is listed for.
    let mut c = router.client();
    let asked = ae | service::PERIPHERAL_MONITOR | service::CLIENT_MONITOR;
    c.send_raw(&open_frame(
        version,
        91,
        NO_IDLE,
        asked,
        &[(1, b"recorder\0"), (2, b"s3cret")],
    ));
    let granted = c.expect_open_conf(version).services_granted;
    assert_eq!(granted & ae, ae, "recorder is listed for all-events");
    assert_eq!(
        granted & !(ae | service::CLIENT_MONITOR),
        0,
        "recorder got unlisted services: {granted:#x}"
    );
    let mut c = router.client();
    c.send_raw(&open_frame(
        version,
        92,
        NO_IDLE,
        ae | service::CLIENT_MONITOR,
        &[(1, b"wallboard\0"), (2, b"wb\0")],
    ));
    let conf = c.expect_open_conf(version);
    assert_eq!(
        conf.services_granted & !service::CLIENT_MONITOR,
        0,
        "wallboard got {:#x}",
        conf.services_granted
    );
    // Not an All Events session: no peripheral SYSTEM_EVENT, no call or agent
    // events (Client Monitor events, if granted, are fine).
    let deadline = Instant::now() + Duration::from_millis(500);
    while let Some((t, frame)) = c.recv_frame(deadline.saturating_duration_since(Instant::now())) {
        let client_monitor = matches!(
            t,
            msg::CLIENT_SESSION_OPENED_EVENT | msg::CLIENT_SESSION_CLOSED_EVENT
        );
        assert!(
            (t == msg::SYSTEM_EVENT && decode_sys_id(&frame) != 3)
                || (client_monitor && conf.services_granted & service::CLIENT_MONITOR != 0),
            "wallboard (no All Events) got {}",
            describe(&frame)
        );
    }
    c.heartbeat(WAIT);
}

fn decode_sys_id(frame: &[u8]) -> u32 {
    match decode_strict(frame, Version::MAX) {
        Message::SystemEvent(e) => e.system_event_id,
        _ => unreachable!(),
    }
}

#[test]
fn open_conf_echoes_invoke_id_grants_served_services_then_peripheral_system_events() {
    let router = RouterProcess::start(BIN, SIM);
    for version in [v(13), v(18), v(19), v(23), v(24)] {
        let mut c = router.client();
        let invoke = 0xDEAD_0000 + version.number();
        c.send_at(
            open_req(
                invoke,
                version.number(),
                service::ALL_EVENTS,
                ALL_CALLS,
                ALL_AGENTS,
                60,
                "test",
                b"",
            ),
            version,
        );
        let conf = c.expect_open_conf(version);
        assert_eq!(conf.invoke_id, invoke);
        assert_eq!(conf.services_granted, service::ALL_EVENTS);
        assert_eq!(conf.monitor_id, 0, "MonitorID 0 for an All Events session");
        assert_eq!(conf.pg_status, 0, "PGStatus 0 while the simulated PG is up");
        if version.number() >= 14 {
            assert_eq!(conf.num_peripherals, Some(1));
            assert_eq!(
                conf.peripherals.first().and_then(|p| p.peripheral_id),
                Some(PID)
            );
        }
        let sys = c.expect_system_event();
        assert_eq!(sys.system_event_id, 3, "SYS_PERIPHERAL_ONLINE");
        assert_eq!(sys.system_event_arg1, PID);
        assert_eq!(sys.pg_status, 0);
        // The next frame (if any) is a stream event, not another peripheral SYSTEM_EVENT.
        if let Some((t, frame)) = c.recv_frame(Duration::from_millis(300)) {
            assert!(
                !(t == msg::SYSTEM_EVENT
                    && decode_strict(&frame, version) == Message::SystemEvent(sys.clone())),
                "two peripheral SYSTEM_EVENTs for one peripheral"
            );
        }
    }
    // Services the router does not serve are not granted; All Events still is.
    let mut c = router.client();
    let asked = service::ALL_EVENTS
        | service::CALL_DATA_UPDATE
        | service::CLIENT_CONTROL
        | service::PERIPHERAL_MONITOR
        | service::CLIENT_MONITOR
        | service::SUPERVISOR
        | service::SERVER;
    let conf = c.open(&OpenSpec::new(Version::MAX, asked));
    assert_eq!(
        conf.services_granted & service::ALL_EVENTS,
        service::ALL_EVENTS
    );
    assert_eq!(
        conf.services_granted & !asked,
        0,
        "granted {:#x} beyond what was asked",
        conf.services_granted
    );
    assert_eq!(
        conf.services_granted & !SERVED,
        0,
        "granted {:#x}: more than the router serves ({SERVED:#x})",
        conf.services_granted
    );
}

#[test]
fn peripheral_system_event_names_the_configured_peripheral() {
    let router = RouterProcess::start_with_config_probed(
        BIN,
        "[simulator]\nperipheral_id = 6001\n",
        SIM,
        PROBE_CLIENT,
    );
    let mut c = router.client();
    let conf = c.open(&OpenSpec::new(v(22), service::ALL_EVENTS).masks(0, 0));
    assert_eq!(
        conf.peripherals.first().and_then(|p| p.peripheral_id),
        Some(6001)
    );
    let sys = c.expect_system_event();
    assert_eq!((sys.system_event_id, sys.system_event_arg1), (3, 6001));
}

/// docs/design.md §4.4 and §4.12: a session that opens as soon as the router
/// prints `listening` is told the PG's status. If its OPEN_CONF still says
/// the CTI Server is offline, a SYSTEM_EVENT saying it is up
/// (SYS_PERIPHERAL_ONLINE or SYS_CTI_SERVER_ONLINE) must come before any call
/// or agent event.
#[test]
fn sessions_opened_right_after_listening_are_told_the_pg_is_up() {
    let req = open_req(
        1,
        24,
        service::ALL_EVENTS,
        ALL_CALLS,
        ALL_AGENTS,
        NO_IDLE,
        "early",
        b"",
    );
    let req = Message::from(req).to_frame(Version::MAX).unwrap();
    // The window is short: several routers, 8 sessions each, opened at once.
    for attempt in 0..12 {
        let router = RouterProcess::start_unprobed(BIN, SIM);
        let mut clients: Vec<Client> = (0..8)
            .map(|_| {
                let mut c = router.client();
                c.send_raw(&req);
                c
            })
            .collect();
        for (i, c) in clients.iter_mut().enumerate() {
            let conf = c.expect_open_conf(Version::MAX);
            let mut told_up = false;
            let until = Instant::now() + Duration::from_secs(1);
            while let Some((t, frame)) =
                c.recv_frame(until.saturating_duration_since(Instant::now()))
            {
                if t == msg::SYSTEM_EVENT {
                    told_up |= matches!(decode_sys_id(&frame), 3 | 8);
                    continue;
                }
                assert!(
                    told_up,
                    "attempt {attempt}, session {i}: OPEN_CONF said PGStatus {:#x}, PeripheralOnline {}, \
                     NumPeripherals {:?}; then {} arrived with no SYSTEM_EVENT saying the PG is up",
                    conf.pg_status,
                    conf.peripheral_online,
                    conf.num_peripherals,
                    describe(&frame)
                );
                break;
            }
        }
    }
}
