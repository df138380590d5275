//! TLS settings in the config file: the files they name are checked at
//! once, with the file's name and the reason in the error.

use std::time::Duration;

use testkit::tls::Pki;
use testkit::*;

use crate::BIN;

fn write_config(pki: &Pki, name: &str, toml: &str) -> std::path::PathBuf {
    let path = pki.dir().join(name);
    std::fs::write(&path, toml).expect("write the config");
    path
}

/// `check-config` and `serve` both refuse a `[tls]` whose certificate file
/// is missing, naming the setting, the file and the reason; with the files
/// in place `check-config` accepts it and prints the `[tls]` section.
#[test]
fn a_missing_certificate_file_fails_check_config_and_serve_naming_it() {
    let pki = Pki::new("config");
    let issued = pki.issue("router", &["127.0.0.1"]);
    let missing = pki.dir().join("nowhere.pem");
    let bad = write_config(
        &pki,
        "bad.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\n[admin]\nlisten = \"off\"\n[tls]\nlisten = \"127.0.0.1:0\"\n\
             cert = \"{}\"\nkey = \"{}\"\n",
            missing.display(),
            issued.key.display()
        ),
    );
    let out = std::process::Command::new(BIN)
        .args(["check-config", bad.to_str().unwrap()])
        .output()
        .expect("run check-config");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "check-config accepted it: {stderr}");
    let expected = format!("tls.cert: {}: ", missing.display());
    assert!(
        stderr.contains(&expected) && stderr.contains("No such file"),
        "check-config said: {stderr}"
    );

    let mut serve = Proc::spawn(BIN, &["serve", "--config", bad.to_str().unwrap()]);
    let status = serve.wait_exit(Duration::from_secs(10));
    assert!(!status.success(), "serve started without its certificate");
    assert!(
        serve.stderr_text().contains(&expected),
        "serve said: {}",
        serve.stderr_text()
    );

    let good = write_config(
        &pki,
        "good.toml",
        &format!(
            "[tls]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n",
            issued.cert.display(),
            issued.key.display(),
            pki.ca.display()
        ),
    );
    let out = std::process::Command::new(BIN)
        .args(["check-config", good.to_str().unwrap()])
        .output()
        .expect("run check-config");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("[tls]") && stdout.contains("client_ca"),
        "{stdout}"
    );
}
