//! The operator's tools around `serve`: `check-config` on good and bad files,
//! and the JSON startup line of `--log-format json`.

use std::time::Duration;

use testkit::*;

use crate::{admin_addr, BIN};

/// Run `ctirouter check-config FILE`: exit code, stdout, stderr.
fn check_config(path: &str) -> (i32, String, String) {
    let mut p = Proc::spawn(BIN, &["check-config", path]);
    let status = p.wait_exit(Duration::from_secs(10));
    let mut stdout = Vec::new();
    while let Some(line) = p.next_line(Duration::from_millis(200)) {
        stdout.push(line);
    }
    (
        status.code().unwrap_or(-1),
        stdout.join("\n"),
        p.stderr_text(),
    )
}

#[test]
fn check_config_prints_the_effective_configuration_of_a_good_file() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/ctirouter.example.toml");
    let (code, stdout, stderr) = check_config(example);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("# "), "{stdout}");
    // Every default written out, passwords hidden, and it reads back.
    for key in [
        "[admin]",
        "listen = \"127.0.0.1:9427\"",
        "[runtime]",
        "batch_size = 64",
    ] {
        assert!(stdout.contains(key), "{key} missing:\n{stdout}");
    }
    assert!(!stdout.contains("s3cret"), "{stdout}");
    ctirouter::config::Config::parse(&stdout).expect("the output is a config");
}

#[test]
fn check_config_refuses_a_bad_file_naming_the_setting() {
    let cases = [
        (
            "[limits]\noutput_bound_bytes = 0\n",
            "limits.output_bound_bytes",
        ),
        ("[admin]\nlisten = \"nowhere\"\n", "admin.listen"),
        ("listn = \"127.0.0.1:1\"\n", "unknown field `listn`"),
    ];
    for (text, expected) in cases {
        let file = TempFile::new(".toml");
        std::fs::write(&file.0, text).unwrap();
        let (code, stdout, stderr) = check_config(file.path());
        assert_eq!(code, 2, "{text}: {stdout}");
        assert!(stderr.contains(expected), "{text}: {stderr}");
        assert!(stderr.contains(file.path()), "names the file: {stderr}");
    }
    let off = TempFile::new(".toml");
    std::fs::write(&off.0, "[admin]\nlisten = \"off\"\n").unwrap();
    assert_eq!(check_config(off.path()).0, 0, "off is a valid setting");
}

#[test]
fn json_logs_carry_the_startup_facts() {
    let mut args = SERVE.to_vec();
    args.extend_from_slice(&["--log-format", "json"]);
    let mut router = Proc::spawn_listening(BIN, &args);
    let admin = admin_addr(&mut router);
    assert!(router.wait_stderr("started", Duration::from_secs(5)));
    let text = router.stderr_text();
    let line = text
        .lines()
        .find(|l| l.contains("started"))
        .expect("the startup line");
    let v: serde_json::Value = serde_json::from_str(line).expect("one JSON object");
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["shards"], 2);
    assert_eq!(v["listen"], router.addr().to_string());
    assert_eq!(v["source"], "simulator");
    assert_eq!(v["admin"], format!("http://{admin}/status"));
    for l in text.lines() {
        serde_json::from_str::<serde_json::Value>(l)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
    }
}

/// Kills the child when the test ends, however it ends.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_tells_systemd_it_is_ready_and_then_that_it_stops() {
    use std::os::unix::net::UnixDatagram;
    use std::process::{Command, Stdio};

    let dir = TempFile::new(".notify");
    std::fs::create_dir(dir.path()).expect("a directory for the socket");
    let path = format!("{}/notify.sock", dir.path());
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut router = Reaped(
        Command::new(BIN)
            .args(SERVE)
            .env("NOTIFY_SOCKET", &path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the router"),
    );
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = socket.recv(&mut buf).expect("a notification within 10 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = next();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(
        ready
            .lines()
            .any(|l| l.starts_with("STATUS=serving on 127.0.0.1:")),
        "{ready:?}"
    );
    // SAFETY: kill only sends a signal to the child we started.
    let rc = unsafe { libc::kill(router.0.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let stopping = next();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while router.0.try_wait().expect("the child's status").is_none() {
        assert!(std::time::Instant::now() < deadline, "no exit within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(dir.path());
}
