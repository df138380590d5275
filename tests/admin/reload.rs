//! `POST /reload` and SIGHUP (docs/operations.md §9): the `[[clients]]`
//! allow-list read again with sessions open — a client added opens, a
//! client removed is refused while its open session keeps its events, an
//! invalid file changes nothing.

use std::net::SocketAddr;
use std::time::Duration;

use ctirouter::proto::constants::{msg, service, status};
use ctirouter::proto::{Message, Version};
use serde_json::Value as Json;
use testkit::*;

use crate::{admin_addr, get, http, wait_for, BIN};

/// `serve` on the fast simulator with `--config` at `file`.
fn router_with(file: &TempFile) -> (Proc, SocketAddr) {
    let mut args = SERVE.to_vec();
    args.extend_from_slice(&["--config", file.path(), "--sim-calls-per-sec", "50"]);
    let mut router = Proc::spawn_listening(BIN, &args);
    let admin = admin_addr(&mut router);
    (router, admin)
}

/// An allow-list of All Events clients, each with password `pw-ID`, and
/// `extra` TOML before it.
fn clients_toml(extra: &str, ids: &[&str]) -> String {
    let mut toml = extra.to_string();
    for id in ids {
        toml.push_str(&format!(
            "\n[[clients]]\nclient_id = \"{id}\"\npassword = \"pw-{id}\"\nservices = [\"all-events\"]\n"
        ));
    }
    toml
}

fn write(file: &TempFile, toml: &str) {
    std::fs::write(&file.0, toml).expect("write the config file");
}

/// Open an All Events session as `id` (password `pw-ID`): the client, or
/// the FAILURE_CONF status it was refused with.
fn open_as(addr: SocketAddr, id: &str) -> Result<Client, u32> {
    let mut client = Client::connect(addr);
    let password = format!("pw-{id}");
    let spec = OpenSpec::new(Version::MAX, service::ALL_EVENTS).client(id, password.as_bytes());
    let invoke = client.invoke();
    client.send_at(spec.request(invoke), Version::MAX);
    let (t, frame) = client.expect_frame(WAIT);
    match (t, decode_strict(&frame, Version::MAX)) {
        (msg::OPEN_CONF, _) => {
            client.version = Version::MAX;
            Ok(client)
        }
        (msg::FAILURE_CONF, Message::FailureConf(f)) => Err(f.status),
        _ => panic!(
            "{id}: neither OPEN_CONF nor FAILURE_CONF: {}",
            describe(&frame)
        ),
    }
}

fn post_reload(admin: SocketAddr) -> (u16, Json) {
    let reply = http(admin, "POST", "/reload");
    assert_eq!(reply.content_type, "application/json", "{}", reply.body);
    let body = serde_json::from_str(&reply.body).expect("/reload answers JSON");
    (reply.status, body)
}

fn counter(admin: SocketAddr, name: &str) -> u64 {
    let reply = get(admin, "/status.json");
    let status: Json = serde_json::from_str(&reply.body).expect("status.json parses");
    status["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name}: {status}"))
}

/// Event frames `client` receives in `window` (after what was already
/// queued is read away), and whether its session is still there.
fn events_in(client: &mut Client, window: Duration) -> usize {
    client.collect_for(Duration::from_millis(300));
    let frames = client.collect_for(window);
    assert!(!client.closed, "the session was closed");
    assert!(
        frames
            .iter()
            .all(|f| frame_type(f) != msg::FAILURE_EVENT && frame_type(f) != msg::CLOSE_CONF),
        "the session was ended"
    );
    frames.len()
}

#[test]
fn a_reload_adds_and_removes_clients_while_their_sessions_stay_open() {
    let file = TempFile::new(".toml");
    write(&file, &clients_toml("", &["a", "b"]));
    let (router, admin) = router_with(&file);
    let mut a = open_as(router.addr(), "a").expect("a is listed");
    let mut b = open_as(router.addr(), "b").expect("b is listed");
    assert_eq!(
        open_as(router.addr(), "c").err(),
        Some(status::E_CTI_INVALID_PASSWORD),
        "c is not listed yet"
    );
    assert!(
        events_in(&mut b, Duration::from_millis(500)) > 0,
        "events flow"
    );

    // c added, b removed, and a setting that needs a restart.
    write(
        &file,
        &clients_toml("[limits]\ncall_max_age_secs = 60\n", &["a", "c"]),
    );
    let (code, summary) = post_reload(admin);
    assert_eq!(code, 200, "{summary}");
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["clients"]["added"], serde_json::json!(["c"]));
    assert_eq!(summary["clients"]["removed"], serde_json::json!(["b"]));
    assert_eq!(summary["clients"]["listed"], 2);
    assert_eq!(summary["applied"], serde_json::json!(["clients"]));
    assert_eq!(
        summary["needs_restart"],
        serde_json::json!(["limits.call_max_age_secs"])
    );
    assert!(
        router.wait_stderr("needs a restart", WAIT),
        "the restart warning is logged"
    );

    let mut c = open_as(router.addr(), "c").expect("c opens once added");
    assert_eq!(
        open_as(router.addr(), "b").err(),
        Some(status::E_CTI_INVALID_PASSWORD),
        "a new session of b is refused once b is removed"
    );
    assert!(
        events_in(&mut b, Duration::from_secs(1)) > 0,
        "b's open session keeps receiving events"
    );
    assert!(events_in(&mut a, Duration::from_millis(500)) > 0);
    assert!(events_in(&mut c, Duration::from_millis(500)) > 0);
    assert_eq!(counter(admin, "reloads"), 1);
    assert_eq!(counter(admin, "reloads_failed"), 0);
    assert_eq!(get(admin, "/reload").status, 405, "POST only");
}

#[test]
fn an_invalid_file_is_refused_whole_and_the_running_list_stays() {
    let file = TempFile::new(".toml");
    write(&file, &clients_toml("", &["a"]));
    let (router, admin) = router_with(&file);
    let _a = open_as(router.addr(), "a").expect("a is listed");

    // Broken TOML, with c added: nothing of it applies.
    write(
        &file,
        &(clients_toml("", &["a", "c"]) + "[[clients]\nclient_id = "),
    );
    let (code, refused) = post_reload(admin);
    assert_eq!(code, 400, "{refused}");
    assert_eq!(refused["ok"], false);
    let why = refused["error"].as_str().expect("a reason");
    assert!(why.contains(file.path()), "names the file: {why}");
    assert!(why.contains("running configuration is kept"), "{why}");

    // Valid TOML, a value validation refuses.
    write(
        &file,
        &clients_toml("[limits]\noutput_bound_bytes = 0\n", &["a", "c"]),
    );
    let (code, refused) = post_reload(admin);
    assert_eq!(code, 400, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("output_bound_bytes")),
        "{refused}"
    );
    assert!(router.wait_stderr("config reload refused", WAIT));

    assert_eq!(
        open_as(router.addr(), "c").err(),
        Some(status::E_CTI_INVALID_PASSWORD),
        "the old list still applies"
    );
    assert!(
        open_as(router.addr(), "a").is_ok(),
        "the old list still applies"
    );
    assert_eq!(counter(admin, "reloads_failed"), 2);
    assert_eq!(counter(admin, "reloads"), 0);
}

#[test]
fn sighup_reloads_as_post_does() {
    let file = TempFile::new(".toml");
    write(&file, &clients_toml("", &["a"]));
    let (router, admin) = router_with(&file);
    let mut a = open_as(router.addr(), "a").expect("a is listed");
    assert_eq!(
        open_as(router.addr(), "c").err(),
        Some(status::E_CTI_INVALID_PASSWORD)
    );
    write(&file, &clients_toml("", &["c"]));
    router.signal(libc::SIGHUP);
    wait_for("the SIGHUP reload", WAIT, || {
        (counter(admin, "reloads") == 1).then_some(())
    });
    assert!(open_as(router.addr(), "c").is_ok(), "c opens after SIGHUP");
    assert_eq!(
        open_as(router.addr(), "a").err(),
        Some(status::E_CTI_INVALID_PASSWORD)
    );
    assert!(
        events_in(&mut a, Duration::from_millis(500)) > 0,
        "a's open session keeps its events"
    );
    // An invalid file on SIGHUP: refused and counted; the router runs on.
    write(&file, "listen = 42\n");
    router.signal(libc::SIGHUP);
    wait_for("the refused SIGHUP reload", WAIT, || {
        (counter(admin, "reloads_failed") == 1).then_some(())
    });
    assert!(open_as(router.addr(), "c").is_ok(), "c is still listed");
}

#[test]
fn without_a_config_file_a_reload_says_so_and_changes_nothing() {
    let mut router = Proc::spawn_listening(BIN, SERVE);
    let admin = admin_addr(&mut router);
    let (code, refused) = post_reload(admin);
    assert_eq!(code, 400, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("without --config")),
        "{refused}"
    );
    let _session = open_when_upstream_up(router.addr(), Version::MAX, WAIT);
    assert_eq!(counter(admin, "reloads_failed"), 1);
}
