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
