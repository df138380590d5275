//! `ctirouter watch` against `sim-pg` (and a fake server): one line per
//! event, readable or JSON; Ctrl-C closes the session cleanly; a refused
//! OPEN or a lost connection ends it with a non-zero exit and a clear message.

use crate::BIN;
use std::time::{Duration, Instant};

use ctirouter::proto::msg::FailureConf;
use ctirouter::proto::{Message, Version};
use testkit::*;

/// At least `n` stdout lines within `timeout`.
fn lines(p: &mut Proc, n: usize, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut lines = Vec::new();
    while lines.len() < n {
        match p.next_line(deadline.saturating_duration_since(Instant::now())) {
            Some(line) => lines.push(line),
            None => panic!(
                "{} of {n} lines within {timeout:?}; stderr:\n{}",
                lines.len(),
                p.stderr_text()
            ),
        }
    }
    lines
}

fn watch(addr: std::net::SocketAddr, extra: &[&str]) -> Proc {
    let addr = addr.to_string();
    let mut args = vec!["watch", "--connect", addr.as_str()];
    args.extend_from_slice(extra);
    Proc::spawn(BIN, &args)
}

#[test]
fn readable_lines_then_a_clean_close_on_sigint() {
    let pg = sim_pg(BIN, &["--calls-per-sec", "30"]);
    let mut w = watch(pg.addr(), &[]);
    let got = lines(&mut w, 8, Duration::from_secs(5));
    assert!(got[0].starts_with("SYSTEM_EVENT "), "{}", got[0]);
    for line in &got {
        let name = line.split(' ').next().unwrap();
        assert!(
            name.ends_with("_EVENT") && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
            "{line}"
        );
        assert!(line.contains('='), "{line}");
    }
    w.signal(libc::SIGINT);
    let status = w.wait_exit(Duration::from_secs(6));
    assert!(
        status.success(),
        "exit {status:?}; stderr:\n{}",
        w.stderr_text()
    );
    assert!(
        w.stderr_text().contains("CLOSE_CONF received"),
        "{}",
        w.stderr_text()
    );
}

#[test]
fn json_lines_parse_at_an_old_version() {
    let pg = sim_pg(BIN, &["--calls-per-sec", "30"]);
    let mut w = watch(pg.addr(), &["--json", "--version", "17"]);
    for line in lines(&mut w, 8, Duration::from_secs(5)) {
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["type"].as_str().is_some_and(|t| t.ends_with("_EVENT")),
            "{line}"
        );
        assert!(v["fields"].is_object(), "{line}");
    }
    w.signal(libc::SIGTERM);
    assert!(
        w.wait_exit(Duration::from_secs(6)).success(),
        "{}",
        w.stderr_text()
    );
}

#[test]
fn a_refused_open_exits_non_zero_with_the_reason() {
    let fake = FakePg::scripted(|_, conn| {
        let req = conn.expect_open();
        let refusal = Message::from(FailureConf {
            invoke_id: req.invoke_id,
            status: 36,
            text: None,
        });
        conn.send(&refusal.to_frame(Version::MAX).unwrap());
        let _ = conn.read_frame(Duration::from_secs(1));
    });
    let mut w = watch(fake.addr, &["--password", "wrong"]);
    let status = w.wait_exit(Duration::from_secs(5));
    assert!(!status.success());
    let err = w.stderr_text();
    assert!(
        err.contains("refused") && err.contains("E_CTI_INVALID_PASSWORD"),
        "{err}"
    );
    assert_eq!(
        fake.opens.lock().unwrap()[0]
            .1
            .client_password
            .as_ref()
            .unwrap()
            .0,
        b"wrong"
    );
}

#[test]
fn a_lost_connection_exits_non_zero() {
    let mut pg = sim_pg(BIN, &["--calls-per-sec", "30"]);
    let mut w = watch(pg.addr(), &[]);
    lines(&mut w, 2, Duration::from_secs(5));
    pg.kill();
    let status = w.wait_exit(Duration::from_secs(5));
    assert!(!status.success());
    assert!(
        w.stderr_text().contains("connection lost"),
        "{}",
        w.stderr_text()
    );
}

/// sim-pg serves All Events only: a session asking only for Peripheral
/// Monitor is granted nothing, so its OPEN_REQ is refused with 12.
#[test]
fn device_monitor_refusal_is_reported_clearly() {
    let pg = sim_pg(BIN, &[]);
    let mut w = watch(pg.addr(), &["--device", "3001", "3002"]);
    let status = w.wait_exit(Duration::from_secs(6));
    assert!(!status.success());
    let text = w.stderr_text();
    assert!(text.contains("OPEN_REQ refused"), "{text}");
    assert!(text.contains("E_CTI_FUNCTION_NOT_AVAILABLE"), "{text}");
}
