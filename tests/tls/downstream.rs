//! The TLS port beside the clear one.

use std::time::Duration;

use ctirouter::config::TlsConfig;
use ctirouter::proto::constants::{agent_state, device_type, msg, service};
use ctirouter::proto::Version;
use testkit::tls::{Issued, Pki};
use testkit::*;

const AGENT: &str = "1001";
const INSTR: &str = "3001";
const QUIET: Duration = Duration::from_millis(400);

/// A router (two shards, a standard fake PG upstream) serving a TLS port
/// with the certificate in `server`, checking client certificates against
/// `client_ca` if given.
fn tls_harness(server: &Issued, client_ca: Option<&Pki>) -> Harness {
    Harness::with_config(|c| {
        c.tls = TlsConfig {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            cert: Some(server.cert.clone()),
            key: Some(server.key.clone()),
            client_ca: client_ca.map(|pki| pki.ca.clone()),
        };
    })
}

fn tls_addr(h: &Harness) -> std::net::SocketAddr {
    h.router.tls_addr.expect("the router serves a TLS port")
}

/// A session's spec, and the device monitor it starts (Peripheral Monitor).
struct Kind {
    name: &'static str,
    spec: OpenSpec,
    monitor: bool,
}

fn kinds() -> Vec<Kind> {
    let mut client_events = OpenSpec::new(v(16), service::CLIENT_EVENTS);
    client_events.agent_instrument = Some(INSTR.into());
    client_events.peripheral_id = PID;
    vec![
        Kind {
            name: "All Events v13",
            spec: OpenSpec::new(v(13), service::ALL_EVENTS),
            monitor: false,
        },
        Kind {
            name: "All Events v24",
            spec: OpenSpec::new(v24(), service::ALL_EVENTS),
            monitor: false,
        },
        Kind {
            name: "Peripheral Monitor v24",
            spec: OpenSpec::services(service::PERIPHERAL_MONITOR),
            monitor: true,
        },
        Kind {
            name: "Peripheral Monitor v19",
            spec: OpenSpec {
                version: v(19),
                ..OpenSpec::services(service::PERIPHERAL_MONITOR)
            },
            monitor: true,
        },
        Kind {
            name: "Client Events v16",
            spec: client_events,
            monitor: false,
        },
        Kind {
            name: "Client Monitor v20",
            spec: OpenSpec::new(v(20), service::CLIENT_MONITOR),
            monitor: false,
        },
    ]
}

/// Open `kind` on `client`; the MonitorID of its device monitor, if any.
fn open(client: &mut Client, kind: &Kind) -> Option<u32> {
    let conf = client.open(&kind.spec);
    assert_eq!(
        conf.services_granted, kind.spec.services,
        "{}: services granted",
        kind.name
    );
    kind.monitor.then(|| {
        client
            .monitor_device(device_type::DEVICE_IDENTIFIER, INSTR, ALL_CALLS, ALL_AGENTS)
            .unwrap_or_else(|s| panic!("{}: MONITOR_START refused ({s})", kind.name))
    })
}

/// Each frame checked to decode strictly at `version`, then what names the
/// receiving session blanked, so two sessions' frames compare: the
/// MonitorID (a Peripheral Monitor's is checked to be its device monitor's)
/// and an AGENT_STATE_EVENT's SessionID.
fn normalized(
    kind: &Kind,
    frames: &[Vec<u8>],
    version: Version,
    monitor: Option<u32>,
) -> Vec<Vec<u8>> {
    frames
        .iter()
        .map(|f| {
            decode_strict(f, version);
            let mut f = f.clone();
            if let Some(id) = monitor_id(&f) {
                if let Some(own) = monitor {
                    assert_eq!(
                        id,
                        own,
                        "{}: {} names its own monitor",
                        kind.name,
                        describe(&f)
                    );
                }
                f[8..12].fill(0);
            }
            if frame_type(&f) == msg::AGENT_STATE_EVENT {
                f[16..20].fill(0);
            }
            f
        })
        .collect()
}

/// A session on the TLS port of every event service (All Events at v13 and
/// v24, Peripheral Monitor with a device monitor at v24 and v19, Client
/// Events at v16, Client Monitor at v20) gets, byte for byte, what the same
/// session on the clear port gets: the call and agent events each service
/// passes, encoded at the session's version (each frame decodes strictly at
/// it), CLIENT_SESSION_OPENED/CLOSED for a session coming and going, and
/// heartbeats answered. Nothing is counted as a failed handshake.
#[test]
fn every_event_service_over_tls_gets_what_its_clear_twin_gets() {
    let pki = Pki::new("services");
    let server = pki.issue("router", &["localhost", "127.0.0.1"]);
    let h = tls_harness(&server, None);
    let tls = tls_addr(&h);
    assert_ne!(tls, h.addr(), "the TLS port is a port of its own");
    let kinds = kinds();
    let mut pairs = Vec::new();
    for kind in &kinds {
        let mut secured = Client::connect_tls(tls, pki.client_config(None), "127.0.0.1")
            .unwrap_or_else(|e| panic!("{}: {e}", kind.name));
        assert!(secured.is_tls());
        let secured_monitor = open(&mut secured, kind);
        let mut clear = h.connect();
        let clear_monitor = open(&mut clear, kind);
        pairs.push((secured, secured_monitor, clear, clear_monitor));
    }
    // Whatever the openings brought (Client Monitor: each other's opens).
    for (secured, _, clear, _) in &mut pairs {
        secured.drain_for(QUIET);
        clear.drain_for(QUIET);
    }

    let call = CallRef {
        id: 7001,
        dev: INSTR,
    };
    h.send(agent_state_ev(
        Some(AGENT),
        Some(INSTR),
        Some(INSTR),
        agent_state::AVAILABLE,
        0,
    ));
    h.send(delivered(call, INSTR, "5551234", "8000", None));
    h.send(established(call, INSTR, "5551234"));
    h.send(cleared(call));
    let mut passer_by = h.connect();
    passer_by.open(&OpenSpec::new(v24(), service::ALL_EVENTS));
    passer_by.close();

    for ((secured, s_monitor, clear, c_monitor), kind) in pairs.iter_mut().zip(&kinds) {
        let version = kind.spec.version;
        let got = normalized(kind, &secured.drain_for(QUIET), version, *s_monitor);
        let want = normalized(kind, &clear.drain_for(QUIET), version, *c_monitor);
        assert!(
            secured.heartbeat(WAIT) < WAIT,
            "{}: heartbeat over TLS",
            kind.name
        );
        clear.heartbeat(WAIT);
        let types: Vec<u32> = got.iter().map(|f| frame_type(f)).collect();
        let expected: &[u32] = if kind.spec.services == service::CLIENT_MONITOR {
            &[
                msg::CLIENT_SESSION_OPENED_EVENT,
                msg::CLIENT_SESSION_CLOSED_EVENT,
            ]
        } else {
            &[msg::AGENT_STATE_EVENT, msg::CALL_DELIVERED_EVENT]
        };
        for t in expected {
            assert!(
                types.contains(t),
                "{}: over TLS, no {} among {}",
                kind.name,
                type_name(*t),
                got.iter()
                    .map(|f| describe(f))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        assert_eq!(
            got,
            want,
            "{}: the TLS session's frames ({:?}) differ from the clear one's ({:?})",
            kind.name,
            shapes(&got),
            shapes(&want)
        );
    }
    let snapshot = h.router.snapshot().unwrap();
    assert_eq!(snapshot.nr_tls_handshake_failures, 0);
}

/// With `client_ca`, a client certificate signed by that CA opens a session;
/// one signed by another CA, and no certificate at all, are refused: the
/// connection ends without an OPEN_CONF, and each is counted.
#[test]
fn a_client_certificate_not_signed_by_client_ca_is_refused() {
    let pki = Pki::new("clients");
    let stranger = Pki::new("stranger");
    let server = pki.issue("router", &["127.0.0.1"]);
    let h = tls_harness(&server, Some(&pki));
    let tls = tls_addr(&h);

    let desk = pki.issue("desk", &["desk.example"]);
    let mut trusted = Client::connect_tls(tls, pki.client_config(Some(&desk)), "127.0.0.1")
        .expect("a client with a certificate from client_ca");
    trusted.open(&OpenSpec::new(v24(), service::ALL_EVENTS));

    let forged = stranger.issue("desk", &["desk.example"]);
    let refused = [
        (
            "a certificate of another CA",
            pki_client(&pki, Some(&forged)),
        ),
        ("no certificate", pki_client(&pki, None)),
    ];
    for (what, config) in refused {
        // TLS 1.3: the client's side of the handshake ends before the server
        // checks its certificate; the refusal is the server's alert and close.
        let Ok(mut client) = Client::connect_tls(tls, config, "127.0.0.1") else {
            continue;
        };
        // The write may fail: the router may have closed already.
        let _ = client.try_send_raw(&open_frame());
        match client.next(WAIT) {
            Recv::Closed(_) => {}
            other => panic!("{what}: the TLS port answered {other:?} instead of closing"),
        }
    }
    // The trusted session was not disturbed.
    h.send(agent_ev(AGENT, INSTR, agent_state::NOT_READY));
    trusted.expect("the agent's event", |f| {
        frame_type(f) == msg::AGENT_STATE_EVENT
    });
    let failures = h.router.snapshot().unwrap().nr_tls_handshake_failures;
    assert_eq!(failures, 2, "each refused certificate is counted");
}

fn pki_client(pki: &Pki, cert: Option<&Issued>) -> std::sync::Arc<rustls::ClientConfig> {
    pki.client_config(cert)
}

/// A clear-text client on the TLS port (an OPEN_REQ where a ClientHello is
/// expected) is closed without an OPEN_CONF; an open TLS session and an
/// open clear session go on receiving events and answering heartbeats, and
/// the failure is counted once.
#[test]
fn a_clear_text_client_on_the_tls_port_is_refused_without_disturbing_others() {
    let pki = Pki::new("plain");
    let server = pki.issue("router", &["127.0.0.1"]);
    let h = tls_harness(&server, None);
    let tls = tls_addr(&h);
    let mut secured = Client::connect_tls(tls, pki.client_config(None), "127.0.0.1").unwrap();
    secured.open(&OpenSpec::new(v(18), service::ALL_EVENTS));
    let mut clear = h.connect();
    clear.open(&OpenSpec::new(v24(), service::ALL_EVENTS));

    let mut plain = Client::connect(tls);
    plain.send_at(OpenSpec::new(v24(), service::ALL_EVENTS).request(1), v24());
    match plain.next(WAIT) {
        Recv::Closed(_) => {}
        other => panic!("a clear-text client on the TLS port got {other:?}"),
    }
    assert_ne!(
        plain.truncated_tail.first(),
        Some(&0),
        "what came back is no GED-188 frame (a TLS alert at most)"
    );

    h.send(agent_ev(AGENT, INSTR, agent_state::TALKING));
    for (who, client) in [("TLS", &mut secured), ("clear", &mut clear)] {
        let i = client.expect("the agent's event", |f| {
            frame_type(f) == msg::AGENT_STATE_EVENT
        });
        decode_strict(&client.log[i], client.version);
        assert!(
            client.heartbeat(WAIT) < WAIT,
            "{who} session answers heartbeats"
        );
    }
    assert_eq!(h.router.snapshot().unwrap().nr_tls_handshake_failures, 1);
}

/// An All Events OPEN_REQ at v24 as a whole frame.
fn open_frame() -> Vec<u8> {
    ctirouter::proto::Message::from(OpenSpec::new(v24(), service::ALL_EVENTS).request(1))
        .to_frame(v24())
        .expect("encodable OPEN_REQ")
}

/// A burst far larger than the socket and rustls's buffer take at once (a
/// TLS client that reads only after it ended) reaches the TLS session whole
/// and in order: what the driver's send could not hand over goes through
/// the writer task, records never interleave. The session is not cut.
#[test]
fn a_burst_larger_than_the_socket_takes_arrives_whole_and_in_order_over_tls() {
    // ~3.5 MB: more than the socket buffers hold while nobody reads (and
    // less than the output bound).
    const EVENTS: u16 = 40_000;
    let pki = Pki::new("burst");
    let server = pki.issue("router", &["127.0.0.1"]);
    let h = tls_harness(&server, None);
    let mut secured =
        Client::connect_tls(tls_addr(&h), pki.client_config(None), "127.0.0.1").unwrap();
    secured.open(&OpenSpec::new(v24(), service::ALL_EVENTS));
    for reason in 0..EVENTS {
        h.send(agent_state_ev(
            Some(AGENT),
            Some(INSTR),
            Some(INSTR),
            agent_state::AVAILABLE,
            reason,
        ));
    }
    // Let the router run into the full socket before anything is read.
    std::thread::sleep(Duration::from_millis(300));
    let mut reasons = Vec::with_capacity(EVENTS as usize);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while reasons.len() < EVENTS as usize && std::time::Instant::now() < deadline {
        let (t, frame) = secured
            .recv_frame(WAIT)
            .expect("the burst goes on arriving");
        if t == msg::AGENT_STATE_EVENT {
            let ctirouter::proto::Message::AgentStateEvent(e) = decode_strict(&frame, v24()) else {
                unreachable!()
            };
            reasons.push(e.event_reason_code);
        }
    }
    assert_eq!(
        reasons.len(),
        EVENTS as usize,
        "every event of the burst arrived"
    );
    assert!(
        reasons.iter().copied().eq(0..EVENTS),
        "in order, none missing or repeated"
    );
    assert!(secured.heartbeat(WAIT) < WAIT);
    let snapshot = h.router.snapshot().unwrap();
    assert_eq!(snapshot.nr_slow_consumer_cuts, 0);
}

/// Requests travel the TLS port as the clear one: a Miscellaneous request
/// the router answers itself gets its CONF, and a Client Control request
/// of a session not granted it its FAILURE_CONF, each with its InvokeID.
#[test]
fn requests_on_the_tls_port_are_answered_with_their_invoke_ids() {
    use ctirouter::proto::msg::{ClientEventReportReq, SetAgentStateReq};
    let pki = Pki::new("ca");
    let server = pki.issue("router", &["127.0.0.1"]);
    let h = tls_harness(&server, None);
    let mut c = Client::connect_tls(tls_addr(&h), pki.client_config(None), "127.0.0.1")
        .expect("a TLS session");
    c.open(&OpenSpec::new(v(19), service::ALL_EVENTS));
    c.send(ClientEventReportReq {
        invoke_id: 77,
        state: 0,
        object_name: Some("desktop".into()),
        text: Some("over TLS".into()),
    });
    assert_eq!(frame_type(&c.reply(77)), msg::CLIENT_EVENT_REPORT_CONF);
    c.send(SetAgentStateReq {
        invoke_id: 78,
        peripheral_id: PID,
        agent_state: agent_state::NOT_READY,
        agent_instrument: Some(INSTR.into()),
        ..Default::default()
    });
    let refused = c.reply(78);
    assert_eq!(
        failure_status(&refused),
        Some(12),
        "Client Control not granted"
    );
}
