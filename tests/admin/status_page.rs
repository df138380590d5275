//! `/status` in a real browser: headless Chromium loads the page, runs its
//! script (which fetches `/status.json`) and dumps the DOM it rendered; the
//! session counts must be in it. Where Chromium is not installed the test
//! says so and passes (`.ci/run` installs Debian's `chromium`).

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ctirouter::proto::constants::service;
use ctirouter::proto::Version;
use testkit::*;

use crate::{admin_addr, get, wait_for, BIN};

/// The first of Debian's and Ubuntu's names for Chromium on the PATH.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|name| {
        Command::new(name)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// How long Chromium may take to start, render and exit.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// `chromium --headless --dump-dom URL`: the DOM after the page's script
/// ran for `budget_ms` of virtual time. The browser runs in a process group
/// of its own, killed whole if it overstays [`BROWSER_TIMEOUT`].
fn dump_dom(browser: &str, url: &str, budget_ms: u32) -> String {
    let profile = TempFile::new("-chromium-profile");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            // CI runs as root, where Chromium's sandbox refuses to start.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
        ])
        .arg(format!("--user-data-dir={}", profile.path()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .args(["--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("start {browser}: {e}"));
    let pid = child.id() as libc::pid_t;
    let out = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut { out }, &mut text);
        text
    });
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            // SAFETY: kill(2) on the process group of our own child.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = child.wait();
            panic!("{browser} did not finish within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Helpers Chromium left behind (none normally) go with its group.
    // SAFETY: as above; ESRCH when the group is already gone.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let dom = reader.join().expect("the reader thread");
    let _ = std::fs::remove_dir_all(&profile.0);
    assert!(status.success(), "{browser} exited with {status}");
    dom
}

/// The value cells of the rendered table `id`, by their row's label.
fn table_rows(dom: &str, id: &str) -> Vec<(String, String)> {
    let start = dom
        .find(&format!("<table id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no table {id} in the DOM:\n{dom}"));
    let table = &dom[start..];
    let table = &table[..table.find("</table>").expect("the table ends")];
    table
        .split("<tr>")
        .skip(1)
        .filter_map(|row| {
            let cells: Vec<&str> = row
                .split("<td")
                .skip(1)
                .filter_map(|cell| {
                    let text = &cell[cell.find('>')? + 1..];
                    Some(&text[..text.find("</td>")?])
                })
                .collect();
            match cells.as_slice() {
                [label, value] => Some((label.to_string(), value.to_string())),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn the_status_page_renders_the_session_counts_in_chromium() {
    let Some(browser) = chromium() else {
        eprintln!(
            "SKIPPED the_status_page_renders_the_session_counts_in_chromium: no `chromium` or \
             `chromium-browser` on the PATH (apt-get install chromium; .ci/run installs it)"
        );
        return;
    };
    let mut router = Proc::spawn_listening(BIN, SERVE);
    let admin = admin_addr(&mut router);
    let _all: Vec<Client> = (0..2)
        .map(|_| open_when_upstream_up(router.addr(), Version::MAX, WAIT).0)
        .collect();
    let mut monitor = Client::connect(router.addr());
    monitor.open(&OpenSpec::new(Version::MAX, service::CLIENT_MONITOR));
    wait_for("three sessions in status.json", WAIT, || {
        get(admin, "/status.json")
            .body
            .contains("\"open\":3")
            .then_some(())
    });

    let dom = dump_dom(browser, &format!("http://{admin}/status"), 3_000);
    let services = table_rows(&dom, "services");
    let count = |label: &str| {
        services
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no row {label} in {services:?}"))
    };
    assert_eq!(count("open sessions"), "3", "{services:?}");
    assert_eq!(count("all_events"), "2", "{services:?}");
    assert_eq!(count("client_monitor"), "1", "{services:?}");
    assert!(
        dom.contains("<span id=\"health\" class=\"ok\">OK</span>"),
        "the health badge says OK"
    );
    let shards = table_rows(&dom, "shards");
    assert_eq!(shards.len(), 2, "one row per shard: {shards:?}");
    let all_events: u32 = shards
        .iter()
        .filter_map(|(_, v)| v.split(" · ").find_map(|f| f.strip_prefix("all_events ")))
        .map(|n| n.parse::<u32>().expect("a count"))
        .sum();
    assert_eq!(all_events, 2, "all_events over the shards: {shards:?}");
}
