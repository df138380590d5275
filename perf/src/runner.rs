//! Runs a scenario end to end against one server (the router, started here,
//! or a peer already running): starts the driver and the router, the swarm,
//! opens the sessions, plays each phase (warm-up, measured window, drain),
//! prints a progress line a second, and turns each phase's snapshot into a
//! `PhaseResult` with its targets checked. Stops everything it started.
//! A scenario with desktops also gets a router config listing their
//! ClientID, a second driver listener for the direct desktops, one priming
//! event per agent (so the router knows every agent's call), and each
//! phase's request plan. A phase with a reconnect storm tells the swarm
//! when its groups drop and reconnect. With `[router] tls` (`run --tls`) it
//! makes a throwaway CA and certificate, gives the router a `[tls]` port
//! and points the swarm's sessions at it over TLS; a failed handshake stops
//! the run with rustls's reason.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::TcpListener;

use crate::clock::now_ns;
use crate::cti_server::CtiServer;
use crate::driver::{Driver, Endpoint, Log, PubWire, Targeting};
use crate::nats::NatsPub;
use crate::pacer::Pacer;
use crate::plan;
use crate::procstat::{self, CpuWindow};
use crate::redis::RedisPub;
use crate::results::PgRequests;
use crate::router_proc::{self, ServerProcess};
use crate::scenario::{Phase, Scenario, Service};
use crate::shared::Shared;
use crate::summary::{phase_result, PhaseInputs};
use crate::swarm::{Cmd, Protocol, RequestPlan, Snapshot, Swarm};

/// The server under test.
#[derive(Debug, Clone)]
pub enum Server {
    /// Start `ctirouter serve` from this binary with the driver as its upstream.
    Router { bin: PathBuf },
    /// A running NATS or Redis server (its pid for CPU and RSS).
    Peer {
        protocol: Protocol,
        addr: SocketAddr,
        pid: u32,
    },
    /// The limit probe (`probe`), started here pinned to `cores`.
    Probe { cores: Vec<usize> },
}

impl Server {
    pub fn name(&self) -> &'static str {
        match self {
            Server::Router { .. } => "ctirouter",
            Server::Peer {
                protocol: Protocol::Nats,
                ..
            } => "nats",
            Server::Peer { .. } => "redis",
            Server::Probe { .. } => "limit",
        }
    }
}

/// What a run needs besides the scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub server: Server,
    pub out_dir: PathBuf,
    /// Overrides every phase's `duration_secs`.
    pub duration: Option<f64>,
    /// Only these phases (all when empty).
    pub only_phases: Vec<String>,
}

/// A run's results and what made them.
pub struct RunOutcome {
    pub phases: Vec<crate::results::PhaseResult>,
    /// The router's `serve` arguments (empty for peers).
    pub router_args: Vec<String>,
}

/// Everything that lives for the run; dropping it stops the router.
struct Live {
    shared: Arc<Shared>,
    cmds: Sender<Cmd>,
    pid: u32,
    /// The router or the limit probe.
    router: Option<ServerProcess>,
    log: Arc<Mutex<Log>>,
    rss_peak: u64,
    threads: Vec<std::thread::JoinHandle<()>>,
    swarm: Option<std::thread::JoinHandle<Result<(), String>>>,
    /// The router's certificate and its CA (`--tls`), removed after the run.
    pki: Option<crate::tls::Pki>,
}

/// Keep the server process `server` for the run (dropping `live` stops
/// it), say where it listens, and return its address.
fn adopt(live: &mut Live, server: ServerProcess, what: &str, log: &std::path::Path) -> SocketAddr {
    let tls = match server.tls_addr {
        Some(addr) => format!(", TLS {addr}: every session over TLS"),
        None => String::new(),
    };
    eprintln!(
        "{what} pid {} listening {}{tls} (log {})",
        server.pid(),
        server.addr,
        log.display()
    );
    live.pid = server.pid();
    let addr = server.tls_addr.unwrap_or(server.addr);
    live.router = Some(server);
    addr
}

impl Drop for Live {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(s) = self.swarm.take() {
            let _ = s.join();
        }
        self.router.take();
    }
}

/// File descriptors a process needs besides its sessions' sockets
/// (listeners, the upstream connection, pipes, logs, epoll / io_uring).
const FD_MARGIN: u64 = 256;

/// A soft open-file limit too low for `need` descriptors is an error
/// before anything starts (a session over it would just fail to connect).
fn check_nofile(who: &str, soft: Option<u64>, need: u64) -> Result<(), String> {
    match soft {
        Some(soft) if soft < need => Err(format!(
            "{who}: open-file limit {soft} is below the {need} descriptors this scenario needs \
             (its sessions + {FD_MARGIN}); raise the hard limit (ulimit -Hn, limits.conf)"
        )),
        Some(_) => Ok(()),
        None => {
            eprintln!("warning: {who}: could not read the open-file limit");
            Ok(())
        }
    }
}

pub fn run(scenario: &Scenario, opts: &RunOptions) -> Result<RunOutcome, String> {
    // Every session is a socket here (and a direct one also the driver's end).
    check_nofile(
        "the harness",
        procstat::raise_nofile(),
        scenario.harness_session_fds() + FD_MARGIN,
    )?;
    warn_if_busy();
    std::fs::create_dir_all(&opts.out_dir)
        .map_err(|e| format!("{}: {e}", opts.out_dir.display()))?;
    let specs = plan::session_specs(scenario);
    let shared = Shared::new();
    let log = Arc::new(Mutex::new(Log::new(
        scenario.load.agents,
        scenario.checks_answers(),
    )));
    let targeting = Targeting {
        recipients: plan::recipients(scenario, &specs),
        logged: plan::logged_agents(scenario, &specs),
        log: log.clone(),
    };
    let (endpoint, wire, protocol, upstream) = publisher(&opts.server, scenario.has_requests())?;
    let mut driver = Driver::new(
        endpoint,
        wire,
        scenario.load.clone(),
        targeting,
        shared.clone(),
    );
    let mut direct_addr = None;
    if scenario.has_direct() {
        if !matches!(opts.server, Server::Router { .. }) {
            return Err("direct groups need the router (the driver is the PG)".into());
        }
        let std = StdListener::bind("127.0.0.1:0").map_err(|e| format!("direct bind: {e}"))?;
        std.set_nonblocking(true).map_err(|e| e.to_string())?;
        direct_addr = Some(std.local_addr().map_err(|e| e.to_string())?);
        driver = driver.with_direct(TcpListener::from_std(std));
    }
    let (tx, rx) = mpsc::channel();
    let mut live = Live {
        shared: shared.clone(),
        cmds: tx,
        pid: 0,
        router: None,
        log,
        rss_peak: 0,
        threads: vec![driver.spawn()],
        swarm: None,
        pki: None,
    };
    let tls_config = if scenario.router.tls {
        if !matches!(opts.server, Server::Router { .. }) {
            return Err(
                "--tls ([router] tls) needs the router: peers and the limit probe are clear text"
                    .into(),
            );
        }
        let pki = crate::tls::Pki::new()?;
        let config = pki.client_config()?;
        live.pki = Some(pki);
        Some(config)
    } else {
        None
    };
    let server_addr = match &opts.server {
        Server::Router { bin } => {
            let log_path = opts.out_dir.join(format!("{}-router.log", scenario.name));
            let flags = match router_proc::router_config(scenario, live.pki.as_ref()) {
                Some(config) => {
                    let path = opts.out_dir.join(format!("{}-router.toml", scenario.name));
                    crate::summary::write(&path, &config)?;
                    let path = std::fs::canonicalize(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    router_proc::with_config(&scenario.router, &path)?
                }
                None => scenario.router.clone(),
            };
            let router = ServerProcess::router(bin, upstream, &flags, &log_path)?;
            // The router lifts its soft limit to the hard one (inherited
            // from here) before it listens: check what it got.
            check_nofile(
                "the router",
                procstat::nofile_limit(router.pid()).ok(),
                scenario.router_sessions() + FD_MARGIN,
            )?;
            adopt(&mut live, router, "router", &log_path)
        }
        Server::Peer { addr, pid, .. } => {
            live.pid = *pid;
            *addr
        }
        Server::Probe { cores } => {
            if scenario
                .groups
                .iter()
                .any(|g| g.service != Service::AllEvents)
            {
                return Err("the limit probe serves All Events sessions only".into());
            }
            let log_path = opts.out_dir.join(format!("limit-{}.log", scenario.name));
            let probe = ServerProcess::probe(upstream, cores, &log_path)?;
            adopt(
                &mut live,
                probe,
                &format!("limit probe on cores {cores:?}"),
                &log_path,
            )
        }
    };
    wait_for(
        "upstream session open",
        Duration::from_secs(30),
        &mut live,
        |l| l.shared.upstream_ready.load(Ordering::Relaxed),
    )?;
    let swarm = Swarm::new(
        server_addr,
        direct_addr,
        protocol,
        specs,
        scenario.groups.len(),
        shared.clone(),
        rx,
    )
    .map_err(|e| format!("swarm: {e}"))?
    .with_heartbeats(scenario.load.heartbeats)
    .with_receive_time(scenario.load.receive_time);
    let swarm = match tls_config {
        Some(config) => swarm.with_tls(config),
        None => swarm,
    };
    live.swarm = Some(swarm.spawn());
    open_initial_groups(scenario, &mut live)?;
    if scenario.primes() {
        prime(&mut live, scenario.load.prime_agent_states)?;
    }
    let mut results = Vec::new();
    for phase in &scenario.phases {
        if !opts.only_phases.is_empty() && !opts.only_phases.contains(&phase.name) {
            continue;
        }
        let mut phase = phase.clone();
        if let Some(d) = opts.duration {
            phase.duration_secs = d;
        }
        fit_storm(scenario, &mut phase);
        let result = run_phase(scenario, &phase, opts, &mut live, &results)?;
        results.push(result);
    }
    let router_args = live
        .router
        .as_ref()
        .map(|r| r.args.clone())
        .unwrap_or_default();
    Ok(RunOutcome {
        phases: results,
        router_args,
    })
}

/// The harness shares the machine with the server: anything else running
/// shows up in both latency and CPU. Say so before measuring.
fn warn_if_busy() {
    let load: f64 = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    if load > 0.5 * cores {
        eprintln!(
            "warning: load average {load:.2} on {cores} cores before the run: other work will skew latency and CPU"
        );
    }
}

/// Seconds a measured window goes on after its storm's last reconnect.
const STORM_TAIL_SECS: f64 = 2.0;

/// A storm must end inside the measured window (its drops and reconnects
/// are scheduled from the window's start): a window too short for it (a
/// `--duration` meant for other scenarios) is lengthened, and said so.
fn fit_storm(scenario: &Scenario, phase: &mut Phase) {
    let need = scenario
        .reconnect_groups(&phase.name)
        .map(|gi| {
            let g = &scenario.groups[gi];
            g.reconnect_after_secs + g.reconnect_within_secs + STORM_TAIL_SECS
        })
        .fold(0.0, f64::max);
    if phase.duration_secs < need {
        eprintln!(
            "phase {:?}: {} s is too short for its reconnect storm: measuring {need} s",
            phase.name, phase.duration_secs
        );
        phase.duration_secs = need;
    }
}

/// One CALL_DELIVERED_EVENT per agent that takes calls before the first
/// phase, so that the router's call-party tracker knows each desktop's call
/// (requests naming a call its device is not part of are refused,
/// docs/requests.md §4), and with `agent_states` one AGENT_STATE_EVENT per
/// agent before it (so the router knows every agent's state); then the
/// drain of what they owe.
fn prime(live: &mut Live, agent_states: bool) -> Result<(), String> {
    live.shared.primed.store(false, Ordering::SeqCst);
    live.shared.prime.store(true, Ordering::SeqCst);
    wait_for("priming events", Duration::from_secs(30), live, |l| {
        l.shared.primed.load(Ordering::Acquire)
    })?;
    drain(live)?;
    eprintln!(
        "primed: {}one call per agent that takes calls ({} deliveries of {} owed)",
        if agent_states {
            "one agent state per agent, "
        } else {
            ""
        },
        live.shared.delivered.load(Ordering::Relaxed),
        live.shared.expected.load(Ordering::Relaxed)
    );
    Ok(())
}

/// The driver's endpoint and protocol, the swarm's protocol, and the
/// upstream address the router is given.
fn publisher(
    server: &Server,
    requests: bool,
) -> Result<(Endpoint, PubWire, Protocol, SocketAddr), String> {
    match server {
        Server::Router { .. } | Server::Probe { .. } => {
            let std = StdListener::bind("127.0.0.1:0").map_err(|e| format!("driver bind: {e}"))?;
            std.set_nonblocking(true).map_err(|e| e.to_string())?;
            let addr = std.local_addr().map_err(|e| e.to_string())?;
            let l = TcpListener::from_std(std);
            Ok((
                Endpoint::Listen(l),
                PubWire::Cti(CtiServer::upstream(requests)),
                Protocol::Cti,
                addr,
            ))
        }
        Server::Peer { protocol, addr, .. } => {
            let wire = match protocol {
                Protocol::Nats => PubWire::Nats(NatsPub::default()),
                _ => PubWire::Redis(RedisPub::default()),
            };
            Ok((Endpoint::Connect(*addr), wire, *protocol, *addr))
        }
    }
}

fn open_initial_groups(scenario: &Scenario, live: &mut Live) -> Result<(), String> {
    let mut want = 0;
    for (gi, g) in scenario.groups.iter().enumerate() {
        if g.open_in_phase.is_none() {
            want += g.count as u64;
            let within_ns = (g.open_within_secs * 1e9) as u64;
            send(
                live,
                Cmd::Open {
                    group: gi,
                    start_ns: now_ns(),
                    within_ns,
                },
            )?;
        }
    }
    let timeout = Duration::from_secs(60 + want / 100);
    let started = Instant::now();
    wait_for("initial sessions open", timeout, live, |l| {
        let open = l.shared.nr_open.load(Ordering::Relaxed);
        if started.elapsed().as_millis() % 1000 < 10 {
            eprintln!(
                "opening: {open}/{want} open, {} failed",
                l.shared.nr_failed.load(Ordering::Relaxed)
            );
        }
        open >= want
    })?;
    eprintln!(
        "{want} sessions open in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn send(live: &Live, cmd: Cmd) -> Result<(), String> {
    live.cmds
        .send(cmd)
        .map_err(|_| "the swarm thread is gone".to_string())
}

/// Poll `done` every 10 ms until it holds; fails on timeout or if the router died.
fn wait_for(
    what: &str,
    timeout: Duration,
    live: &mut Live,
    mut done: impl FnMut(&Live) -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if done(live) {
            return Ok(());
        }
        check_alive(live)?;
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn check_alive(live: &mut Live) -> Result<(), String> {
    if let Some(e) = live.shared.driver_error.lock().expect("error lock").clone() {
        return Err(format!("driver: {e}"));
    }
    if let Some(e) = live
        .shared
        .first_session_error
        .lock()
        .expect("error lock")
        .clone()
    {
        if e.starts_with("TLS") {
            return Err(format!(
                "a session's TLS failed ({} sessions failed or closed so far): {e}",
                live.shared.nr_failed.load(Ordering::Relaxed)
            ));
        }
    }
    if let Some(r) = live.router.as_mut() {
        if !r.is_running() {
            return Err("the server process (router or limit probe) exited; see its log".into());
        }
    }
    if live.swarm.as_ref().is_some_and(|s| s.is_finished()) {
        let e = live.swarm.take().expect("checked").join();
        return Err(format!("the swarm stopped: {e:?}"));
    }
    Ok(())
}

/// What the once-a-second line shows and the window needs.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    delivered: u64,
    events: u64,
    behind: u64,
    requests: u64,
    heartbeats: u64,
}

fn sample(live: &Live) -> Sample {
    Sample {
        at: Instant::now(),
        delivered: live.shared.delivered.load(Ordering::Relaxed),
        events: live.shared.nr_events.load(Ordering::Relaxed),
        behind: live.shared.driver_behind.load(Ordering::Relaxed),
        requests: live.shared.requests_sent.load(Ordering::Relaxed),
        heartbeats: live.shared.heartbeats_sent.load(Ordering::Relaxed),
    }
}

/// CPU of the server and of this harness (driver + swarm + main) since
/// `start`, thread by thread from schedstat; sampled at the start, once a
/// second and at the end, so a thread that ends in between is counted up to
/// the last second it was seen in.
struct Cpu {
    pid: u32,
    server: CpuWindow,
    harness: CpuWindow,
}

impl Cpu {
    fn start(pid: u32) -> Result<Cpu, String> {
        Ok(Cpu {
            pid,
            server: CpuWindow::start(procstat::threads(pid)?),
            harness: CpuWindow::start(procstat::threads(std::process::id())?),
        })
    }

    fn update(&mut self) -> Result<(), String> {
        self.server.update(procstat::threads(self.pid)?);
        self.harness.update(procstat::threads(std::process::id())?);
        Ok(())
    }
}

/// Run for `secs`, printing a progress line each second and tracking peak
/// RSS; `cpu` is sampled each second.
fn progress(live: &mut Live, label: &str, secs: f64, cpu: &mut Cpu) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut last = sample(live);
    let mut last_cpu = (cpu.server.total_ns(), cpu.harness.total_ns());
    let started = Instant::now();
    while Instant::now() < end {
        let step = (end - Instant::now()).min(Duration::from_secs(1));
        std::thread::sleep(step);
        check_alive(live)?;
        let now = sample(live);
        cpu.update()?;
        let now_cpu = (cpu.server.total_ns(), cpu.harness.total_ns());
        let rss = procstat::rss_bytes(live.pid).unwrap_or(0);
        live.rss_peak = live.rss_peak.max(rss);
        let dt = now.at.duration_since(last.at).as_secs_f64().max(1e-9);
        let s = &live.shared;
        let requests = if now.requests > 0 {
            format!(
                " | requests/s {:.0} in flight {}",
                (now.requests - last.requests) as f64 / dt,
                s.requests_in_flight.load(Ordering::Relaxed)
            )
        } else {
            String::new()
        };
        eprintln!(
            "[{label} {:>4.0}/{secs:.0}s] events/s {:>9.0} | deliveries/s {:>11.0} | p99 {:>8.3} ms max {:>8.3} ms | server cpu {:.2} harness {:.2} cores | rss {:.1} MB | open {} failed {} | behind {} | hb {} {:.2} ms{requests}",
            started.elapsed().as_secs_f64(),
            (now.events - last.events) as f64 / dt,
            (now.delivered - last.delivered) as f64 / dt,
            s.interval_p99_ns.load(Ordering::Relaxed) as f64 / 1e6,
            s.interval_max_ns.load(Ordering::Relaxed) as f64 / 1e6,
            (now_cpu.0 - last_cpu.0) as f64 / 1e9 / dt,
            (now_cpu.1 - last_cpu.1) as f64 / 1e9 / dt,
            rss as f64 / 1e6,
            s.nr_open.load(Ordering::Relaxed),
            s.nr_failed.load(Ordering::Relaxed),
            now.behind,
            now.heartbeats - last.heartbeats,
            s.heartbeat_round_max_ns.swap(0, Ordering::Relaxed) as f64 / 1e6,
        );
        last = now;
        last_cpu = now_cpu;
    }
    Ok(())
}

fn run_phase(
    scenario: &Scenario,
    phase: &Phase,
    opts: &RunOptions,
    live: &mut Live,
    earlier: &[crate::results::PhaseResult],
) -> Result<crate::results::PhaseResult, String> {
    let label = format!("{}/{}", scenario.name, phase.name);
    eprintln!(
        "== {label}: rate {} warm-up {} s, measure {} s",
        phase.rate.label(),
        phase.warmup_secs,
        phase.duration_secs
    );
    let measure_at = now_ns() + (phase.warmup_secs * 1e9) as u64;
    for (gi, g) in scenario.groups.iter().enumerate() {
        if g.open_in_phase.as_deref() == Some(phase.name.as_str()) {
            let start_ns = measure_at + (g.open_after_secs * 1e9) as u64;
            let within_ns = (g.open_within_secs * 1e9) as u64;
            send(
                live,
                Cmd::Open {
                    group: gi,
                    start_ns,
                    within_ns,
                },
            )?;
        }
    }
    live.shared.set_plan(Some(phase.clone()))?;
    if phase.has_requests() {
        send(
            live,
            Cmd::Requests(Some(request_plan(scenario, phase, measure_at))),
        )?;
    }
    live.rss_peak = 0;
    let mut warmup_cpu = Cpu::start(live.pid)?;
    progress(
        live,
        &format!("{label} warm-up"),
        phase.warmup_secs,
        &mut warmup_cpu,
    )?;
    let bursts = (phase.burst_every_secs > 0.0 && phase.burst_factor > 1.0).then_some(Pacer {
        rate: 0.0,
        burst_every: phase.burst_every_secs,
        burst_len: phase.burst_secs,
        burst_factor: phase.burst_factor,
        start_ns: 0,
    });
    send(live, Cmd::Measure { bursts })?;
    // After Measure (which forgets the last storm), so the swarm has reset
    // before the first drop.
    for gi in scenario.reconnect_groups(&phase.name) {
        let g = &scenario.groups[gi];
        send(
            live,
            Cmd::Reconnect {
                group: gi,
                drop_ns: measure_at + (g.reconnect_after_secs * 1e9) as u64,
                within_ns: (g.reconnect_within_secs * 1e9) as u64,
                queries: g.queries_on_reopen,
            },
        )?;
    }
    let stalled: Vec<usize> = (0..scenario.groups.len())
        .filter(|&gi| scenario.groups[gi].stall_in_phase.as_deref() == Some(phase.name.as_str()))
        .collect();
    for &gi in &stalled {
        send(live, Cmd::Stall(gi))?;
    }
    let mut cpu = Cpu::start(live.pid)?;
    let before = sample(live);
    let upstream_hb = live.shared.upstream_heartbeats.load(Ordering::Relaxed);
    let pg_before = pg_requests(live);
    progress(live, &label, phase.duration_secs, &mut cpu)?;
    let after = sample(live);
    cpu.update()?;
    let (server_threads, harness_threads) = (cpu.server.deltas(), cpu.harness.deltas());
    if phase.has_requests() {
        send(live, Cmd::Requests(None))?;
    }
    live.shared.set_plan(None)?;
    let to_seq = live.shared.sent_seq.load(Ordering::SeqCst);
    send(live, Cmd::EndMeasure { to_seq })?;
    drain(live)?;
    for &gi in &stalled {
        send(live, Cmd::Unstall(gi))?;
    }
    if !stalled.is_empty() {
        std::thread::sleep(Duration::from_secs(1));
    }
    let snapshot = take_snapshot(live)?;
    let pg_after = pg_requests(live);
    let rss_end = procstat::rss_bytes(live.pid).unwrap_or(0);
    live.rss_peak = live.rss_peak.max(rss_end);
    let log = live.log.lock().expect("log lock").clone();
    let inputs = PhaseInputs {
        scenario,
        phase,
        server: opts.server.name(),
        secs: after.at.duration_since(before.at).as_secs_f64(),
        events: after.events - before.events,
        deliveries: after.delivered - before.delivered,
        server_threads: &server_threads,
        harness_threads: &harness_threads,
        rss_peak: live.rss_peak,
        rss_end,
        driver_behind: after.behind - before.behind,
        upstream_heartbeats: live.shared.upstream_heartbeats.load(Ordering::Relaxed) - upstream_hb,
        pg_requests: scenario.has_requests().then(|| pg_after.since(&pg_before)),
        from_seq: snapshot.from_seq,
        to_seq,
        stalled: &stalled,
        log: &log.seqs,
        history: log.history.as_ref(),
        snapshot: &snapshot,
        tls_negotiated: live
            .shared
            .tls_negotiated
            .lock()
            .expect("tls lock")
            .clone()
            .unwrap_or_default(),
        earlier,
        out_dir: &opts.out_dir,
    };
    phase_result(&inputs)
}

/// What the swarm sends in `phase`: every group's rate, and the burst (at
/// `request_burst_after_secs` into the window, by default its middle).
fn request_plan(scenario: &Scenario, phase: &Phase, measure_at: u64) -> RequestPlan {
    let per_group = (0..scenario.groups.len())
        .map(|gi| scenario.request_rate_per_session(phase, gi) * scenario.groups[gi].count as f64)
        .collect();
    let after = phase
        .request_burst_after_secs
        .unwrap_or(phase.duration_secs / 2.0);
    RequestPlan {
        start_ns: now_ns(),
        per_group,
        burst: (phase.request_burst > 0)
            .then(|| (phase.request_burst, measure_at + (after * 1e9) as u64)),
    }
}

/// The PG's request counters now.
fn pg_requests(live: &Live) -> PgRequests {
    let s = &live.shared;
    let by_type = s.upstream_by_type.lock().expect("by-type lock");
    PgRequests {
        from_router: s.upstream_requests.load(Ordering::Relaxed),
        direct: s.direct_requests.load(Ordering::Relaxed),
        bad: s.bad_requests.load(Ordering::Relaxed),
        by_type: by_type.iter().map(|(&t, &n)| (type_name(t), n)).collect(),
    }
}

/// A message type's protocol name (its number if the codec has none).
fn type_name(t: u32) -> String {
    ctirouter::proto::Message::type_name(t).map_or_else(|| format!("type {t}"), str::to_string)
}

/// Wait until every delivery the driver's events owe has arrived and every
/// request sent has its answer, or until no delivery has arrived for 2 s (a
/// stalled or cut session never catches up), at most 30 s. A short quiet spell alone is not enough: on a busy machine the
/// router or the swarm can go unscheduled for half a second.
fn drain(live: &mut Live) -> Result<(), String> {
    const QUIET: Duration = Duration::from_secs(2);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = live.shared.delivered.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    while Instant::now() < deadline && last_change.elapsed() < QUIET {
        let owed = live.shared.expected.load(Ordering::Relaxed);
        let requests = live.shared.requests_in_flight.load(Ordering::Relaxed);
        if last >= owed && requests == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        check_alive(live)?;
        let now = live.shared.delivered.load(Ordering::Relaxed);
        if now != last {
            last = now;
            last_change = Instant::now();
        }
    }
    Ok(())
}

fn take_snapshot(live: &Live) -> Result<Snapshot, String> {
    let (tx, rx) = mpsc::channel();
    send(live, Cmd::Snapshot(tx))?;
    rx.recv_timeout(Duration::from_secs(30))
        .map_err(|_| "the swarm sent no snapshot".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_too_short_for_its_storm_is_lengthened() {
        let text = r#"
            name = "s"
            load = { agents = 4 }
            [[groups]]
            name = "desk"
            service = "client-events"
            count = 4
            reconnect_in_phase = "storm"
            reconnect_after_secs = 2
            reconnect_within_secs = 1
            [[phases]]
            name = "calm"
            rate = 1
            duration_secs = 1
            [[phases]]
            name = "storm"
            rate = 1
            duration_secs = 10
        "#;
        let s: Scenario = toml::from_str(text).unwrap();
        s.check().unwrap();
        let (mut calm, mut storm) = (s.phases[0].clone(), s.phases[1].clone());
        fit_storm(&s, &mut calm);
        fit_storm(&s, &mut storm);
        assert_eq!((calm.duration_secs, storm.duration_secs), (1.0, 10.0));
        storm.duration_secs = 3.0;
        fit_storm(&s, &mut storm);
        assert_eq!(storm.duration_secs, 5.0);
    }

    /// A short run with every session over TLS against the router binary
    /// (`CTIROUTER_BIN`, or target/release/ctirouter; skipped, and said so,
    /// when neither exists): loopback, port 0, ~3 s.
    #[test]
    fn a_short_tls_run_delivers_everything_over_tls() {
        let bin = std::env::var_os("CTIROUTER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(router_proc::default_router_bin);
        if !bin.exists() {
            eprintln!(
                "skipped: no router binary at {} (cargo build --release -p ctirouter, or set CTIROUTER_BIN)",
                bin.display()
            );
            return;
        }
        let text = r#"
            name = "tls-smoke"
            [router]
            tls = true
            [load]
            agents = 8
            [[groups]]
            name = "all"
            service = "all-events"
            count = 3
            [[groups]]
            name = "agents"
            service = "client-events"
            count = 4
            [[phases]]
            name = "p"
            rate = 2000
            warmup_secs = 0.5
            duration_secs = 1
        "#;
        let scenario: Scenario = toml::from_str(text).unwrap();
        scenario.check().unwrap();
        let out =
            std::env::temp_dir().join(format!("ctirouter-perf-tls-run-{}", std::process::id()));
        let opts = RunOptions {
            server: Server::Router { bin },
            out_dir: out.clone(),
            duration: None,
            only_phases: Vec::new(),
        };
        let outcome = run(&scenario, &opts);
        let log = std::fs::read_to_string(out.join("tls-smoke-router.log")).unwrap_or_default();
        let config = std::fs::read_to_string(out.join("tls-smoke-router.toml")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&out);
        let outcome = outcome.unwrap();
        assert!(config.contains("[tls]"), "{config}");
        assert!(log.contains("TLS port open"), "{log}");
        let r = &outcome.phases[0];
        assert!(r.tls);
        assert!(
            r.tls_negotiated.starts_with("TLSv1_3"),
            "{}",
            r.tls_negotiated
        );
        assert!(r.deliveries > 0);
        assert_eq!(r.lost_dup_reorder(), (0, 0, 0));
        assert_eq!(r.unmarked_events, 0);
        assert!(
            r.groups
                .iter()
                .all(|g| g.opened == g.sessions && g.closed == 0),
            "{:?}",
            r.groups
        );
    }
}
