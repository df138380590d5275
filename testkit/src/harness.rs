//! The router in-process: [`TestRouter`] (`Router::start` on 127.0.0.1 port
//! 0, two shards, no pinning, no spinning; shut down on drop) and
//! [`Harness`], a router whose upstream is a standard [`FakePg`], with
//! ordered synchronisation points ([`Harness::sync`]).

use std::net::SocketAddr;
use std::time::Duration;

use ctirouter::config::{Config, UpstreamConfig};
use ctirouter::proto::constants::service;
use ctirouter::proto::Message;
use ctirouter::router::Router;

use crate::client::{Client, OpenSpec};
use crate::events::{agent_fields, agent_state_ev};
use crate::pg::FakePg;
use crate::{thread_report, MARK_BASE, SYNC_DEVICE, WAIT};

/// The test configuration: loopback port 0, two shards, no pinning, no spin.
pub fn base_config() -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    c.runtime.shards = 2;
    c.runtime.pin = false;
    c.runtime.spin_before_park_us = 0;
    c
}

/// A router started in this process; shut down (and joined) on drop.
pub struct TestRouter {
    router: Option<Router>,
    pub addr: SocketAddr,
    /// The TLS port, when the config has one (`[tls] listen`).
    pub tls_addr: Option<SocketAddr>,
}

impl TestRouter {
    pub fn start(config: Config) -> TestRouter {
        let router = Router::start(config).unwrap_or_else(|e| panic!("router start: {e}"));
        let addr = router.local_addr;
        let tls_addr = router.tls_addr;
        TestRouter {
            router: Some(router),
            addr,
            tls_addr,
        }
    }

    /// The router's counters now (`None` once stopped).
    pub fn snapshot(&self) -> Option<ctirouter::metrics::Snapshot> {
        self.router.as_ref().map(|r| r.metrics.snapshot())
    }

    /// Until the router has taken its upstream's OPEN_CONF (its status no
    /// longer says CTI Server offline), for up to `timeout`: a session
    /// opened from then on is told the PG is up.
    pub fn wait_upstream_open(&self, timeout: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(r) = &self.router else {
            return;
        };
        let deadline = std::time::Instant::now() + timeout;
        while r.metrics.upstream_open.load(Relaxed) == 0
            || r.metrics.pg_status.load(Relaxed) & 0x08 != 0
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the router did not take its upstream's OPEN_CONF within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The router's counters, for failure reports.
    pub fn metrics_line(&self) -> String {
        match &self.router {
            Some(r) => format!("{:?}", r.metrics.snapshot()),
            None => "(stopped)".into(),
        }
    }

    /// Stop and join, giving up (and leaking the router's threads) after
    /// `timeout`: a router that does not stop must fail the test, not hang it.
    pub fn shutdown_within(&mut self, timeout: Duration) -> Result<(), String> {
        let Some(r) = self.router.take() else {
            return Ok(());
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(r.shutdown().map_err(|e| e.to_string()));
        });
        match rx.recv_timeout(timeout) {
            Ok(result) => result,
            Err(_) => Err(format!(
                "the router did not stop within {timeout:?}; router threads: {}",
                thread_report()
            )),
        }
    }
}

impl Drop for TestRouter {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown_within(Duration::from_secs(10)) {
            eprintln!("{e}");
        }
    }
}

/// A router whose upstream is a [`FakePg`]: the test writes the event stream.
/// Field order matters: the router stops (CLOSE_REQ upstream) before the PG.
pub struct Harness {
    pub router: TestRouter,
    pub pg: FakePg,
    next_mark: u16,
}

impl Default for Harness {
    fn default() -> Harness {
        Harness::new()
    }
}

impl Harness {
    /// A standard [`FakePg`] and a router on [`base_config`] whose upstream it is.
    pub fn new() -> Harness {
        Self::with_config(|_| {})
    }

    pub fn with_config(tweak: impl FnOnce(&mut Config)) -> Harness {
        let pg = FakePg::start();
        let mut config = base_config();
        config.upstream = Some(UpstreamConfig {
            sides: vec![pg.addr.to_string()],
            ..UpstreamConfig::default()
        });
        tweak(&mut config);
        let router = TestRouter::start(config);
        pg.wait_open(WAIT);
        // The fake sent OPEN_CONF; the router may not have read it yet.
        router.wait_upstream_open(WAIT);
        Harness {
            router,
            pg,
            next_mark: 0,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.router.addr
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr())
    }

    /// A Peripheral Monitor session with a device monitor on [`SYNC_DEVICE`]
    /// (so [`Harness::sync`] reaches it).
    pub fn pm_session(&self) -> Client {
        let mut c = self.connect();
        c.open(&OpenSpec::services(service::PERIPHERAL_MONITOR));
        c.watch_sync();
        c
    }

    /// `n` Peripheral Monitor sessions (on both shards, in all likelihood).
    pub fn pm_sessions(&self, n: usize) -> Vec<Client> {
        (0..n).map(|_| self.pm_session()).collect()
    }

    pub fn send(&self, m: impl Into<Message>) {
        self.pg.send(m);
    }

    /// A marker event naming [`SYNC_DEVICE`]: once a session has its copy,
    /// it has everything sent before it (rings and sockets keep order).
    /// Returns each session's events since its previous sync point (replies,
    /// SYSTEM_EVENTs and marker copies left out).
    pub fn sync(&mut self, clis: &mut [&mut Client]) -> Vec<Vec<Vec<u8>>> {
        self.sync_with(agent_fields(None, None, Some(SYNC_DEVICE)), clis)
    }

    /// [`Harness::sync`] with a marker naming these agent fields (for Client
    /// Events sessions: a marker of their own agent).
    pub fn sync_with(
        &mut self,
        fields: (Option<&str>, Option<&str>, Option<&str>),
        clis: &mut [&mut Client],
    ) -> Vec<Vec<Vec<u8>>> {
        let reason = MARK_BASE + self.next_mark;
        self.next_mark += 1;
        let (id, ext, instr) = fields;
        self.send(agent_state_ev(id, ext, instr, 3, reason));
        clis.iter_mut()
            .map(|c| c.events_until_mark(reason, WAIT))
            .collect()
    }
}
