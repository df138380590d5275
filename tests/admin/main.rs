//! The admin HTTP listener and the operator's tools, one binary (`cargo
//! test --test admin`): the router is started as `serve` on loopback with
//! `--admin 127.0.0.1:0` (testkit's `SERVE`), its admin address read from
//! the `admin ADDR` line it prints after `listening ADDR`.
//!
//! * `endpoints` — `/metrics` (parsed as Prometheus text), `/healthz`,
//!   `/status.json`, `/status`, as sessions open and the upstream comes and
//!   goes;
//! * `reload` — `POST /reload` and SIGHUP: the allow-list changed with
//!   sessions open, an invalid file refused;
//! * `status_page` — `/status` rendered by headless Chromium;
//! * `tools` — `check-config`, `--log-format json`.

mod endpoints;
mod reload;
mod status_page;
mod tools;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use testkit::Proc;

/// The `ctirouter` binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_ctirouter");

/// The admin address a router started with testkit's `SERVE` prints next.
fn admin_addr(router: &mut Proc) -> SocketAddr {
    let line = router
        .next_line(Duration::from_secs(5))
        .expect("an `admin ADDR` line after `listening`");
    let addr: SocketAddr = line
        .strip_prefix("admin ")
        .unwrap_or_else(|| panic!("not an admin line: {line:?}"))
        .parse()
        .expect("the admin address");
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    addr
}

/// One HTTP answer.
struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

/// `GET path` (HTTP/1.1, Connection: close), within 5 s.
fn get(addr: SocketAddr, path: &str) -> Reply {
    http(addr, "GET", path)
}

/// `METHOD path` with no body (HTTP/1.1, Connection: close), within 5 s.
fn http(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect to admin");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("the whole answer");
    let text = String::from_utf8(raw).expect("utf-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    Reply {
        status,
        content_type,
        body: body.to_string(),
    }
}

/// Poll `probe` every 50 ms until it gives `Some`, for at most `timeout`.
fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
