//! The admin HTTP listener (`[admin] listen`, `serve --admin`): `/metrics`
//! (Prometheus text), `/healthz`, `/status.json` and `/status` (a page that
//! refreshes itself), and `POST /reload` (read the config file again:
//! [`crate::reload`]), served by `tiny_http` on a plain thread of its own,
//! never on a router core. It only reads [`Metrics`]' atomics and copies the
//! latency histogram under its mutex (what `serve`'s stats line does), so a
//! scrape costs the data path nothing but that copy. A reload runs on
//! this thread too: file I/O and a swap the shards pick up on their own. docs/operations.md
//! says what each endpoint answers.

mod exposition;
mod report;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tiny_http::{Header, Method, Request, Response, Server};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::reload::Reloader;

pub use report::Health;

/// Where the router's events come from, as the admin pages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Upstream,
    Simulator,
    Replay,
}

impl Source {
    pub fn of(config: &Config) -> Source {
        match (&config.replay, &config.upstream) {
            (Some(_), _) => Source::Replay,
            (None, Some(_)) => Source::Upstream,
            (None, None) => Source::Simulator,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Source::Upstream => "upstream",
            Source::Simulator => "simulator",
            Source::Replay => "replay",
        }
    }
}

/// What the admin pages say about the router that does not change.
#[derive(Debug, Clone)]
pub struct RouterInfo {
    pub version: &'static str,
    pub source: Source,
    /// The upstream's side A and B (empty without an upstream).
    pub sides: Vec<String>,
    pub nr_shards: usize,
    /// The CTI listen address.
    pub listen: SocketAddr,
    pub started: Instant,
}

impl RouterInfo {
    /// The facts of a router started with `config`.
    pub fn new(config: &Config, nr_shards: usize, listen: SocketAddr) -> RouterInfo {
        let sides = match (Source::of(config), &config.upstream) {
            (Source::Upstream, Some(upstream)) => upstream.sides.clone(),
            _ => Vec::new(),
        };
        RouterInfo {
            version: env!("CARGO_PKG_VERSION"),
            source: Source::of(config),
            sides,
            nr_shards,
            listen,
            started: Instant::now(),
        }
    }
}

/// What every endpoint reads: the shared metrics and the fixed facts, and
/// what `POST /reload` calls (none: `/reload` answers 404).
#[derive(Debug, Clone)]
pub struct View {
    pub metrics: Arc<Metrics>,
    pub info: Arc<RouterInfo>,
    pub reload: Option<Arc<Reloader>>,
}

/// A running admin listener; [`AdminServer::stop`] ends its thread.
pub struct AdminServer {
    /// The bound address (the real port when the config said 0).
    pub local_addr: SocketAddr,
    server: Arc<Server>,
    /// Set by [`AdminServer::stop`] (`tiny_http`'s `unblock` alone is not
    /// told apart from a timeout by `recv_timeout`).
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// How often the thread samples the status page's history.
const TICK: Duration = Duration::from_secs(1);

impl AdminServer {
    /// Listen on `addr` and serve `view` on a thread named `admin`.
    pub fn start(addr: SocketAddr, view: View) -> std::io::Result<AdminServer> {
        let server = Server::http(addr)
            .map_err(|e| std::io::Error::other(format!("admin listener on {addr}: {e}")))?;
        let local_addr = server.server_addr().to_ip().ok_or_else(|| {
            std::io::Error::other(format!("admin listener on {addr}: no IP address"))
        })?;
        let server = Arc::new(server);
        let stop = Arc::new(AtomicBool::new(false));
        let (serving, stopping) = (server.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("admin".into())
            .spawn(move || serve(&serving, &view, &stopping))?;
        Ok(AdminServer {
            local_addr,
            server,
            stop,
            thread: Some(thread),
        })
    }

    /// Stop listening and wait for the thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The admin thread: answer requests, sample the history once a [`TICK`],
/// until `stop` is set.
fn serve(server: &Server, view: &View, stop: &AtomicBool) {
    let mut history = report::History::default();
    let mut next_tick = Instant::now() + TICK;
    while !stop.load(Ordering::Relaxed) {
        let wait = next_tick.saturating_duration_since(Instant::now());
        match server.recv_timeout(wait) {
            Ok(Some(request)) => answer(request, view, &mut history),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "admin listener stopped");
                return;
            }
        }
        let now = Instant::now();
        if now >= next_tick {
            history.tick(view, now);
            next_tick = now + TICK;
        }
    }
}

/// The status page: self-contained HTML with an inline script that reads
/// `/status.json`.
const STATUS_PAGE: &str = include_str!("status.html");

/// Answer one request (GET or HEAD only, but POST for `/reload`; any other
/// method gets 405).
fn answer(request: Request, view: &View, history: &mut report::History) {
    let path = request.url().split('?').next().unwrap_or("").to_string();
    if path == "/reload" && view.reload.is_some() {
        return reload(request, view);
    }
    if !matches!(request.method(), Method::Get | Method::Head) {
        return respond(request, 405, "text/plain", "GET only\n".into());
    }
    match path.as_str() {
        "/metrics" => match exposition::encode(view) {
            Ok(text) => respond(request, 200, "text/plain; version=0.0.4", text),
            Err(_) => respond(request, 500, "text/plain", "encoding failed\n".into()),
        },
        "/healthz" => match report::health(view, &view.metrics.snapshot()) {
            Health::Ok => respond(request, 200, "text/plain", "ok\n".into()),
            Health::Unhealthy(why) => respond(request, 503, "text/plain", format!("{why}\n")),
        },
        "/status.json" => {
            history.watched(Instant::now());
            let body = report::status(view, history).to_string();
            respond(request, 200, "application/json", body)
        }
        "/status" => respond(request, 200, "text/html; charset=utf-8", STATUS_PAGE.into()),
        "/" => respond(request, 200, "text/plain", INDEX.into()),
        _ => respond(
            request,
            404,
            "text/plain",
            format!("no such page: {path}\n{INDEX}"),
        ),
    }
}

const INDEX: &str = "ctirouter admin: /status (page), /status.json, /metrics (Prometheus), \
                     /healthz, POST /reload\n";

/// `POST /reload`: 200 with what changed, or 400 with why nothing did.
fn reload(request: Request, view: &View) {
    let Some(reloader) = &view.reload else {
        return respond(request, 404, "text/plain", INDEX.into());
    };
    if *request.method() != Method::Post {
        return respond(request, 405, "text/plain", "POST only\n".into());
    }
    match reloader.reload("POST /reload") {
        Ok(summary) => respond(
            request,
            200,
            "application/json",
            format!("{}\n", summary.to_json()),
        ),
        Err(e) => {
            let body = serde_json::json!({"ok": false, "error": e.to_string()});
            respond(request, 400, "application/json", format!("{body}\n"))
        }
    }
}

fn respond(request: Request, code: u16, content_type: &str, body: String) {
    let mut response = Response::from_string(body).with_status_code(code);
    if let Ok(header) = Header::from_bytes("Content-Type", content_type) {
        response = response.with_header(header);
    }
    if let Ok(header) = Header::from_bytes("Cache-Control", "no-store") {
        response = response.with_header(header);
    }
    if let Err(e) = request.respond(response) {
        tracing::debug!(error = %e, "admin: the client went away before the answer");
    }
}
