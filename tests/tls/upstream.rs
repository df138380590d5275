//! The upstream session over TLS, against a fake PG speaking TLS.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctirouter::config::UpstreamConfig;
use ctirouter::proto::constants::{agent_state, msg, service};
use testkit::tls::Pki;
use testkit::*;

/// The router's upstream config: `sides`, over TLS, trusting `pki`'s CA.
fn tls_upstream(sides: &[std::net::SocketAddr], pki: &Pki) -> UpstreamConfig {
    UpstreamConfig {
        sides: sides.iter().map(|a| a.to_string()).collect(),
        tls: true,
        ca: Some(pki.ca.clone()),
        reconnect_min_ms: 50,
        reconnect_max_ms: 200,
        ..UpstreamConfig::default()
    }
}

fn router_on(upstream: UpstreamConfig) -> TestRouter {
    let mut config = base_config();
    config.upstream = Some(upstream);
    TestRouter::start(config)
}

/// Over TLS (the server name defaulting to the side's host, 127.0.0.1), the
/// router opens its upstream session and the fake PG's events reach a
/// downstream session.
#[test]
fn the_upstream_session_runs_over_tls() {
    let pki = Pki::new("pg");
    let pg = FakePg::start_tls(pki.server_config(&pki.issue("pg", &["127.0.0.1"])));
    let router = router_on(tls_upstream(&[pg.addr], &pki));
    pg.wait_open(WAIT);
    let open = pg.opens.lock().unwrap()[0].1.clone();
    assert_eq!(
        open.services_requested & service::ALL_EVENTS,
        service::ALL_EVENTS
    );

    let mut client = Client::connect(router.addr);
    client.open(&OpenSpec::new(v(15), service::ALL_EVENTS));
    pg.send(agent_ev("1001", "3001", agent_state::AVAILABLE));
    let i = client.expect("the PG's event, through TLS upstream", |f| {
        frame_type(f) == msg::AGENT_STATE_EVENT
    });
    decode_strict(&client.log[i], v(15));
}

/// Side A's certificate does not carry the name the router checks (the
/// side's host): its handshake fails like a failed connect, and the router
/// goes on to side B, whose certificate does; side A never sees an
/// OPEN_REQ. With `server_name` set to side A's name, side A is opened.
#[test]
fn a_wrong_server_name_is_refused_and_the_other_side_is_tried() {
    let pki = Pki::new("sides");
    let a_tries = Arc::new(AtomicUsize::new(0));
    let tries = a_tries.clone();
    let side_a = FakePg::scripted_tls(
        pki.server_config(&pki.issue("pg-a", &["pg-a.example"])),
        move |_, conn| {
            tries.fetch_add(1, Ordering::Relaxed);
            // The handshake runs here; a refused one ends the connection.
            if conn.read_frame(WAIT).is_some() {
                conn.serve_standard();
            }
        },
    );
    let side_b = FakePg::start_tls(pki.server_config(&pki.issue("pg-b", &["127.0.0.1"])));
    let router = router_on(tls_upstream(&[side_a.addr, side_b.addr], &pki));
    side_b.wait_open(WAIT);
    assert!(
        a_tries.load(Ordering::Relaxed) >= 1,
        "side A was tried first"
    );
    assert_eq!(
        side_a.nr_opens(),
        0,
        "no OPEN_REQ went to a server of the wrong name"
    );
    drop(router);

    // Named as its certificate says, side A is the one opened.
    let side_a = FakePg::start_tls(pki.server_config(&pki.issue("pg-a2", &["pg-a.example"])));
    let _router = router_on(UpstreamConfig {
        server_name: Some("pg-a.example".into()),
        ..tls_upstream(&[side_a.addr], &pki)
    });
    side_a.wait_open(WAIT);
}

/// A CTI Server whose certificate is signed by a CA the router does not
/// trust is never opened: the router keeps retrying (with backoff) and
/// sends no OPEN_REQ.
#[test]
fn an_untrusted_server_certificate_is_refused() {
    let trusted = Pki::new("trusted");
    let other = Pki::new("other");
    let tries = Arc::new(AtomicUsize::new(0));
    let counted = tries.clone();
    let pg = FakePg::scripted_tls(
        other.server_config(&other.issue("pg", &["127.0.0.1"])),
        move |_, conn| {
            counted.fetch_add(1, Ordering::Relaxed);
            if conn.read_frame(WAIT).is_some() {
                conn.serve_standard();
            }
        },
    );
    let _router = router_on(tls_upstream(&[pg.addr], &trusted));
    let deadline = Instant::now() + Duration::from_secs(5);
    while tries.load(Ordering::Relaxed) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        tries.load(Ordering::Relaxed) >= 2,
        "a refused handshake is retried like a failed connect"
    );
    assert_eq!(pg.nr_opens(), 0);
}
