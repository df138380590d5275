//! Command line only: parse, load the config, apply overrides, call the library.

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};
use ctirouter::admin::{AdminServer, RouterInfo, View};
use ctirouter::config::{Config, ReplayConfig, UpstreamConfig};
use ctirouter::ids::Services;
use ctirouter::metrics::Metrics;
use ctirouter::proto::Version;
use ctirouter::router::Router;
use ctirouter::tools;
use sd_notify::NotifyState;

/// mimalloc: events are allocated on the ingest core and freed on shard
/// cores; glibc malloc pays for every cross-thread free (perf/results/profiles/).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ctirouter",
    version,
    about = "Thread-per-core GED-188 (CTI Server) event router"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on stderr: `text` for people, `json` (one object per
    /// line) for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve downstream CTI clients (on the built-in simulated PG unless --upstream).
    Serve(Box<ServeArgs>),
    /// Standalone simulated CTI Server (one thread, any number of clients).
    SimPg(SimPgArgs),
    /// Command-line CTI client that prints events, one per line.
    Watch(WatchArgs),
    /// Drive one agent by hand: agent state, calls, call data (Client Control).
    Ctl(Box<tools::ctl::CtlArgs>),
    /// Record an upstream stream to a file (replay it with `serve --replay`).
    Record(RecordArgs),
    /// Write a core-pinning tuning file for this host (stdout, or --write FILE).
    Tune(TuneArgs),
    /// Check a config file and print the configuration it gives (TOML, every
    /// default filled in); exit 2 with the reason when it is invalid.
    CheckConfig(CheckConfigArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// TOML config file (see ctirouter.example.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Listen address (default 127.0.0.1:42027; port 0 picks a free port).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// TLS port beside the clear one (port 0 picks one, printed as
    /// `listening-tls ADDR`); the certificate and key come from `[tls]`.
    #[arg(long, value_name = "ADDR")]
    tls_listen: Option<std::net::SocketAddr>,
    /// Upstream CTI Server side A[,B].
    #[arg(long, conflicts_with = "replay")]
    upstream: Option<String>,
    /// Protocol version opened upstream (13..=24, default 24).
    #[arg(long, value_parser = clap::value_parser!(u32).range(13..=24))]
    upstream_version: Option<u32>,
    /// Use the built-in simulated PG (the default without --upstream).
    #[arg(long, conflicts_with_all = ["upstream", "replay"])]
    simulate: bool,
    /// Replay a recorded stream file.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Replay speed (1 = real time, 0 = as fast as possible).
    #[arg(long)]
    speed: Option<f64>,
    /// Shard executors (default: one per core after the ingest core).
    #[arg(long)]
    shards: Option<usize>,
    /// Core-pinning tuning file.
    #[arg(long)]
    tuning: Option<PathBuf>,
    /// Microseconds to spin before parking (0 = never spin).
    #[arg(long)]
    spin_us: Option<u64>,
    /// Do not pin executors to cores.
    #[arg(long)]
    no_pin: bool,
    /// Simulator seed.
    #[arg(long)]
    sim_seed: Option<u64>,
    /// Simulated agents.
    #[arg(long)]
    sim_agents: Option<u32>,
    /// Simulated inbound calls per second.
    #[arg(long)]
    sim_calls_per_sec: Option<f64>,
    /// The last N simulated agents start logged out and act only on
    /// requests: a desktop (`ctirouter ctl`) drives them end to end.
    #[arg(long, value_name = "N")]
    manual_agents: Option<u32>,
    /// Simulated seconds per real second (0 = as fast as possible).
    #[arg(long)]
    sim_speed: Option<f64>,
    /// Stop the simulator after this many events (the router keeps serving).
    #[arg(long)]
    sim_max_events: Option<u64>,
    /// Per-session bound on unsent output, bytes.
    #[arg(long)]
    output_bound: Option<usize>,
    /// Seconds between log lines of the counters and fan-out latency
    /// (0 = only when stopping).
    #[arg(long)]
    stats_every: Option<u64>,
    /// Admin HTTP listener (/metrics, /healthz, /status): host:port (port 0
    /// picks one, printed on stdout as `admin ADDR`), or `off` (default
    /// 127.0.0.1:9427).
    #[arg(long, value_name = "ADDR|off")]
    admin: Option<String>,
}

impl ServeArgs {
    /// `--upstream`, `--upstream-version`, `--replay`, `--speed`, `--simulate`
    /// (clap refuses any two of --simulate, --upstream and --replay). The
    /// values are checked with the rest of the config, by `Router::start`.
    fn apply_source(&self, config: &mut Config) -> Result<(), String> {
        if self.simulate {
            config.upstream = None;
            config.replay = None;
        }
        if let Some(sides) = &self.upstream {
            config
                .upstream
                .get_or_insert_with(UpstreamConfig::default)
                .sides = split_sides(sides);
            config.replay = None;
        }
        if let Some(version) = self.upstream_version {
            let upstream = config
                .upstream
                .as_mut()
                .ok_or("--upstream-version needs --upstream (or [upstream] in the config)")?;
            upstream.version = version;
        }
        if let Some(path) = &self.replay {
            config.replay = Some(ReplayConfig {
                path: path.clone(),
                speed: 1.0,
                wait_for_sessions: 0,
            });
        }
        if let Some(speed) = self.speed {
            let replay = config
                .replay
                .as_mut()
                .ok_or("--speed paces --replay (the simulator has --sim-speed)")?;
            replay.speed = speed;
        }
        Ok(())
    }

    fn config(&self) -> Result<Config, String> {
        let mut config = match &self.config {
            Some(path) => Config::load(path).map_err(|e| e.to_string())?,
            None => Config::default(),
        };
        if let Some(path) = &self.tuning {
            // Over the config file, under the flags below (--shards, --spin-us, ...).
            let tuning = ctirouter::tuning::Tuning::load(path).map_err(|e| e.to_string())?;
            tuning
                .apply(&mut config, ctirouter::config::nr_cores())
                .map_err(|e| e.to_string())?;
        }
        self.apply_source(&mut config)?;
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(listen) = self.tls_listen {
            config.tls.listen = Some(listen);
        }
        if let Some(n) = self.shards {
            config.runtime.shards = n;
        }
        if let Some(us) = self.spin_us {
            config.runtime.spin_before_park_us = us;
        }
        if self.no_pin {
            config.runtime.pin = false;
        }
        if let Some(seed) = self.sim_seed {
            config.simulator.seed = seed;
        }
        if let Some(agents) = self.sim_agents {
            config.simulator.agents = agents;
        }
        if let Some(rate) = self.sim_calls_per_sec {
            config.simulator.calls_per_sec = rate;
        }
        if let Some(manual) = self.manual_agents {
            config.simulator.manual_agents = manual;
        }
        if let Some(speed) = self.sim_speed {
            config.sim_speed = speed;
        }
        if let Some(max) = self.sim_max_events {
            config.sim_max_events = Some(max);
        }
        if let Some(bound) = self.output_bound {
            config.limits.output_bound_bytes = bound;
        }
        if let Some(secs) = self.stats_every {
            config.runtime.stats_log_secs = secs;
        }
        if let Some(admin) = &self.admin {
            config.admin.listen = admin.clone();
        }
        Ok(config)
    }
}

/// The first log line says where events come from.
fn log_source(config: &Config) {
    match (&config.replay, &config.upstream) {
        (Some(replay), _) => tracing::info!(
            path = %replay.path.display(),
            speed = replay.speed,
            "ctirouter serving a recorded stream (--replay)"
        ),
        (None, Some(upstream)) => {
            tracing::info!(
                sides = ?upstream.sides,
                version = upstream.version,
                "ctirouter serving the upstream CTI Server (side A first)"
            );
            let listed: Vec<&str> = config
                .clients
                .iter()
                .filter(|c| {
                    c.services.is_some()
                        && c.allowed_services().bits() & Services::STATE_CHANGING.bits() != 0
                })
                .map(|c| c.client_id.as_str())
                .collect();
            tracing::info!(
                ?listed,
                "client-control, call-data-update and server (they change state) are granted \
                 only to [[clients]] listed with them"
            );
        }
        (None, None) => tracing::info!(
            agents = config.simulator.agents,
            calls_per_sec = config.simulator.calls_per_sec,
            seed = config.simulator.seed,
            manual_agents = config.simulator.manual_agents,
            "ctirouter serving the built-in simulated PG (no --upstream given); it answers \
             Client Control and Call Data Update requests"
        ),
    }
}

fn serve(args: ServeArgs, nofile: OpenFileLimit, huge_pages_off: bool) -> Result<(), String> {
    let config = args.config()?;
    log_source(&config);
    nofile.log();
    if !huge_pages_off {
        tracing::warn!(
            "could not turn transparent huge pages off (prctl PR_SET_THP_DISABLE); a table \
             that grows may pause event delivery while the kernel zeroes a 2 MiB page"
        );
    }
    let stats_every = match config.runtime.stats_log_secs {
        0 => None,
        secs => Some(Duration::from_secs(secs)),
    };
    let admin_addr = config.admin.addr().map_err(|e| e.to_string())?;
    let signal = signal_channel()?;
    let facts = config.clone();
    let router = Router::start(config).map_err(|e| e.to_string())?;
    let info = RouterInfo::new(&facts, router.nr_shards, router.local_addr);
    let reloader = Arc::new(reloader(args, &router));
    let admin = match admin_addr {
        Some(addr) => {
            let view = View {
                metrics: router.metrics.clone(),
                info: Arc::new(info.clone()),
                reload: Some(reloader.clone()),
            };
            match AdminServer::start(addr, view) {
                Ok(admin) => Some(admin),
                Err(e) => {
                    let _ = router.shutdown();
                    return Err(format!("{e} (give another --admin ADDR, or --admin off)"));
                }
            }
        }
        None => None,
    };
    log_started(&info, admin.as_ref().map(|a| a.local_addr));
    // Machine-readable lines for scripts and tests.
    println!("listening {}", router.local_addr);
    if let Some(addr) = router.tls_addr {
        tracing::info!(tls_listen = %addr, "TLS port open beside the clear one");
        println!("listening-tls {addr}");
    }
    if let Some(admin) = &admin {
        println!("admin {}", admin.local_addr);
    }
    notify_service_manager(&[
        NotifyState::Ready,
        NotifyState::Status(&format!("serving on {}", router.local_addr)),
    ]);
    let signal = loop {
        let next = match stats_every {
            Some(every) => signal.recv_timeout(every),
            None => signal.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(libc::SIGHUP) => {
                // Logged and counted by the reloader, whatever the outcome.
                let _ = reloader.reload("SIGHUP");
            }
            Ok(signal) => break Some(signal),
            Err(RecvTimeoutError::Timeout) => log_stats(&router.metrics, "stats"),
            Err(RecvTimeoutError::Disconnected) => break None,
        }
    };
    if let Some(signal) = signal {
        tracing::info!(
            signal,
            "stopping: telling sessions the CTI Server is going offline"
        );
    }
    notify_service_manager(&[NotifyState::Stopping]);
    let metrics = router.metrics.clone();
    router.shutdown().map_err(|e| e.to_string())?;
    if let Some(admin) = admin {
        admin.stop();
    }
    log_stats(&metrics, "stopped");
    Ok(())
}

/// Tell systemd (a `Type=notify` unit: `packaging/ctirouter.service`) how
/// the service is: ready once every core listens, stopping at the signal.
/// Nothing happens outside systemd ($NOTIFY_SOCKET unset); a failed send is
/// logged and the router goes on.
fn notify_service_manager(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "could not notify the service manager");
    }
}

/// The one line that says what runs: version, cores, shards, where sessions
/// connect, where events come from, where the admin page is.
fn log_started(info: &RouterInfo, admin: Option<std::net::SocketAddr>) {
    let admin = match admin {
        Some(addr) => format!("http://{addr}/status"),
        None => "off".to_string(),
    };
    tracing::info!(
        version = info.version,
        cores = ctirouter::config::nr_cores(),
        shards = info.nr_shards,
        listen = %info.listen,
        source = info.source.name(),
        upstream_sides = ?info.sides,
        admin = %admin,
        "ctirouter {} started: {} shards, listening on {}, admin {admin}",
        info.version,
        info.nr_shards,
        info.listen
    );
}

/// What reloads `serve`'s configuration (SIGHUP, `POST /reload`): the
/// `--config` file read again with the same flags and tuning file over it,
/// as at start; nothing to read without `--config`.
fn reloader(args: ServeArgs, router: &Router) -> ctirouter::reload::Reloader {
    let load = move || match &args.config {
        Some(_) => args.config().map(Some),
        None => Ok(None),
    };
    ctirouter::reload::Reloader::new(router.live.clone(), router.metrics.clone(), Box::new(load))
}

/// SIGINT and SIGTERM (stop) and SIGHUP (reload), delivered on a channel
/// (so the caller can wait for one with a timeout).
fn signal_channel() -> Result<mpsc::Receiver<i32>, String> {
    let mut signals =
        signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM, libc::SIGHUP])
            .map_err(|e| format!("signal handlers: {e}"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if tx.send(signal).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| format!("signal thread: {e}"))?;
    Ok(rx)
}

/// The counters so far and the fan-out latency, on one log line.
fn log_stats(metrics: &Metrics, what: &str) {
    tracing::info!(
        "{what}: {}; fan-out latency {}",
        metrics.snapshot(),
        metrics.latency_summary()
    );
}

#[derive(Args)]
struct SimPgArgs {
    /// Listen address (port 0 picks a free port; printed as `listening ADDR`).
    #[arg(long, default_value = tools::sim_pg::DEFAULT_LISTEN)]
    listen: std::net::SocketAddr,
    /// Simulated agents.
    #[arg(long, default_value_t = 50)]
    agents: u32,
    /// Simulated inbound calls per second.
    #[arg(long, default_value_t = 5.0)]
    calls_per_sec: f64,
    /// Simulator seed (same seed, same stream).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulated seconds per real second (0 = as fast as the clients read).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// PeripheralID of the simulated peripheral.
    #[arg(long, default_value_t = 5000)]
    peripheral_id: u32,
    /// The last N agents start logged out and act only on requests (a
    /// desktop drives them: their calls ring until answered).
    #[arg(long, default_value_t = 0, value_name = "N")]
    manual_agents: u32,
    /// Unsent bytes per client before it is dropped.
    #[arg(long, default_value_t = ctirouter::config::DEFAULT_OUTPUT_BOUND)]
    output_bound: usize,
    /// Grant at most these services (hex 0x… or decimal; e.g. 0x10 = All
    /// Events only, 0x11 = All and Client Events): requests of a service not granted get what a CTI
    /// Server gives, FAILURE_CONF(E_CTI_FUNCTION_NOT_AVAILABLE).
    #[arg(long, value_name = "MASK", value_parser = tools::sim_pg::parse_mask)]
    grant: Option<u32>,
    /// Hold each answer to a request this long (real time) before it goes
    /// out; the events the request caused are not held.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    reply_delay_ms: u64,
    /// Never send this share of the answers (0..=100; which ones follows
    /// --seed).
    #[arg(long, default_value_t = 0.0, value_name = "PERCENT")]
    drop_replies: f64,
}

#[derive(Args)]
#[command(group(ArgGroup::new("mode").args(["all_events", "device", "agent"])))]
struct WatchArgs {
    /// CTI Server or router address, host:port.
    #[arg(long)]
    connect: String,
    /// Protocol version to open with.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(13..=24))]
    version: u32,
    /// All Events: every call and agent event (the default).
    #[arg(long)]
    all_events: bool,
    /// Peripheral Monitor: a device monitor per ID (MonitoredDeviceType 0).
    #[arg(long, num_args = 1.., value_name = "ID")]
    device: Vec<String>,
    /// Client Events for one agent, by AgentID (with --team: the supervisor).
    #[arg(long, value_name = "ID")]
    agent: Option<String>,
    /// As supervisor --agent (Client Events + Supervisor), monitor team
    /// TEAM_ID (MONITOR_AGENT_TEAM_START_REQ) and print its members' states.
    #[arg(long, value_name = "TEAM_ID", requires = "agent")]
    team: Option<u32>,
    /// The agent's instrument (OPEN_REQ AgentInstrument), with --agent.
    #[arg(long, value_name = "EXT", requires = "agent")]
    instrument: Option<String>,
    /// One JSON object per line ({"type":...,"fields":{...}}), for jq.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value = "ctirouter-watch")]
    client_id: String,
    #[arg(long, default_value = "")]
    password: String,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 5)]
    heartbeat_secs: u64,
    /// PeripheralID for OPEN_REQ and MONITOR_START_REQ (default NULL).
    #[arg(long, visible_alias = "peripheral", value_name = "ID")]
    peripheral_id: Option<u32>,
}

#[derive(Args)]
struct RecordArgs {
    /// Upstream CTI Server side A[,B].
    #[arg(long)]
    upstream: String,
    /// The recording file to write.
    #[arg(long)]
    out: PathBuf,
    /// Protocol version opened upstream (13..=24).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(13..=24))]
    upstream_version: u32,
    /// TOML config whose [upstream] gives credentials, heartbeat and backoff.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    client_id: Option<String>,
    #[arg(long)]
    password: Option<String>,
}

/// "A,B" → ["A", "B"].
fn split_sides(sides: &str) -> Vec<String> {
    sides.split(',').map(|s| s.trim().to_string()).collect()
}

/// A flag set by SIGINT/SIGTERM; a second signal ends the process at once.
fn stop_flag() -> Result<Arc<AtomicBool>, String> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [libc::SIGINT, libc::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, stop.clone())
            .and_then(|_| signal_hook::flag::register(signal, stop.clone()))
            .map_err(|e| format!("signal handlers: {e}"))?;
    }
    Ok(stop)
}

fn sim_pg(args: SimPgArgs) -> Result<(), String> {
    if !(args.speed.is_finite() && args.speed >= 0.0) {
        return Err(format!(
            "--speed {}: give 0 (as fast as possible) or more",
            args.speed
        ));
    }
    if !(0.0..=100.0).contains(&args.drop_replies) {
        return Err(format!(
            "--drop-replies {}: give a percentage, 0 to 100",
            args.drop_replies
        ));
    }
    let stop = stop_flag()?;
    let options = tools::sim_pg::SimPgOptions {
        listen: args.listen,
        sim: ctirouter::sim::SimConfig {
            seed: args.seed,
            agents: args.agents,
            calls_per_sec: args.calls_per_sec,
            peripheral_id: args.peripheral_id,
            manual_agents: args.manual_agents,
        },
        speed: args.speed,
        output_bound: args.output_bound,
        grant: Services(args.grant.unwrap_or(u32::MAX)),
        reply_delay: std::time::Duration::from_millis(args.reply_delay_ms),
        drop_replies: args.drop_replies,
    };
    tools::sim_pg::run(options, &stop, |addr| {
        tracing::info!(%addr, "sim-pg listening");
        // Machine-readable line for scripts and tests.
        println!("listening {addr}");
    })
    .map_err(|e| format!("sim-pg: {e}"))
}

fn watch(args: WatchArgs) -> Result<(), String> {
    let stop = stop_flag()?;
    let mut options = tools::watch::WatchOptions::new(&args.connect);
    options.version = Version::new(args.version).ok_or("--version: give 13..=24")?;
    if let Some(agent) = &args.agent {
        tools::ctl_plan::check_agent(agent, args.instrument.as_deref())?;
    }
    options.mode = match (args.device.is_empty(), args.agent, args.team) {
        (false, ..) => tools::watch::WatchMode::Devices(args.device),
        (true, Some(supervisor), Some(team_id)) => tools::watch::WatchMode::Team {
            team_id,
            supervisor,
        },
        (true, Some(agent), None) => tools::watch::WatchMode::Agent(agent),
        (true, None, _) => tools::watch::WatchMode::AllEvents,
    };
    options.instrument = args.instrument;
    options.json = args.json;
    options.client_id = args.client_id;
    options.password = args.password;
    options.heartbeat = Duration::from_secs(args.heartbeat_secs.max(1));
    if let Some(id) = args.peripheral_id {
        options.peripheral_id = id;
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    tools::watch::run(&options, &stop, &mut out).map_err(|e| format!("watch: {e}"))
}

fn record(args: RecordArgs) -> Result<(), String> {
    let mut upstream = match &args.config {
        Some(path) => Config::load(path)
            .map_err(|e| e.to_string())?
            .upstream
            .unwrap_or_default(),
        None => UpstreamConfig::default(),
    };
    upstream.sides = split_sides(&args.upstream);
    upstream.version = args.upstream_version;
    if let Some(id) = args.client_id {
        upstream.client_id = id;
    }
    if let Some(password) = args.password {
        upstream.password = password;
    }
    let stop = stop_flag()?;
    let options = tools::record::RecordOptions {
        upstream,
        out: args.out.clone(),
    };
    let summary = tools::record::run(&options, &stop)?;
    eprintln!(
        "record: {} frames from {} session(s) written to {}",
        summary.nr_records,
        summary.nr_sessions,
        args.out.display()
    );
    Ok(())
}

/// RLIMIT_NOFILE before and after [`raise_open_file_limit`] (`None`: getrlimit failed).
struct OpenFileLimit {
    before: Option<libc::rlimit>,
    soft: Option<libc::rlim_t>,
}

impl OpenFileLimit {
    /// Say what the router can hold (each session is a descriptor).
    fn log(&self) {
        match (self.before, self.soft) {
            (Some(before), Some(soft)) if soft > before.rlim_cur => tracing::info!(
                soft,
                hard = before.rlim_max,
                "open-file limit raised from {} to {soft} (the hard limit)",
                before.rlim_cur
            ),
            (Some(before), Some(soft)) => tracing::info!(
                soft,
                hard = before.rlim_max,
                "open-file limit {soft} (already the hard limit)"
            ),
            (Some(before), None) => tracing::warn!(
                soft = before.rlim_cur,
                hard = before.rlim_max,
                "could not raise the open-file limit to the hard limit"
            ),
            (None, _) => tracing::warn!("could not read the open-file limit"),
        }
    }
}

/// Turn transparent huge pages off for this process (and what it execs), before
/// anything big is allocated. The allocator asks for huge pages; the first
/// touch of each one zeroes 2 MiB in one page fault, on whichever core grew
/// a table or a buffer — ingest, in the middle of an event: 0.3 ms on the
/// benchmark VMs, 6–10 ms when the 2 MiB come from memory the hypervisor
/// took back (a VM with free page reporting hands freed 2 MiB blocks to the
/// host, and the next touch faults in the host too). With 4 KiB pages the
/// same memory is faulted in steps of microseconds. Measured in
/// perf/results/huge-pages-2026-12-07.md (docs/design.md §1, "No pause that
/// grows with the PG"). Returns whether the kernel agreed.
fn disable_transparent_huge_pages() -> bool {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 }
}

/// Sessions are sockets: lift the soft open-file limit to the hard one so
/// thousands of clients fit (a no-op where the soft limit is already there).
fn raise_open_file_limit() -> OpenFileLimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return OpenFileLimit {
                before: None,
                soft: None,
            };
        }
        let before = limit;
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return OpenFileLimit {
                    before: Some(before),
                    soft: None,
                };
            }
        }
        OpenFileLimit {
            before: Some(before),
            soft: Some(limit.rlim_cur),
        }
    }
}

#[derive(Args)]
struct CheckConfigArgs {
    /// The TOML config file to check.
    file: PathBuf,
}

/// Load and validate `FILE` as `serve --config FILE` would (on this
/// machine's cores), then print the effective configuration: every key,
/// defaults filled in, passwords hidden.
fn check_config(args: CheckConfigArgs) -> Result<(), String> {
    let config = Config::load(&args.file).map_err(|e| e.to_string())?;
    config
        .validate()
        .and_then(|()| ctirouter::tls::check(&config))
        .map_err(|e| format!("{}: {e}", args.file.display()))?;
    let text = config.effective_toml().map_err(|e| e.to_string())?;
    println!(
        "# {}: valid; the configuration it gives (defaults filled in, passwords hidden)",
        args.file.display()
    );
    print!("{text}");
    Ok(())
}

#[derive(Args)]
struct TuneArgs {
    /// Write the tuning file here instead of printing it.
    #[arg(long, value_name = "FILE")]
    write: Option<PathBuf>,
}

/// Print (or write) a tuning file for this host from its topology.
fn tune(args: TuneArgs) -> Result<(), String> {
    let text = ctirouter::tuning::Tuning::for_host().to_toml();
    let Some(path) = args.write else {
        print!("{text}");
        return Ok(());
    };
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "tune: wrote {0}; use it with `ctirouter serve --tuning {0}`",
        path.display()
    );
    Ok(())
}

/// Lines a log writer thread may hold before a logging thread waits for
/// it (it never drops one: the audit log is the only record of who did
/// what, docs/requests.md §4).
const LOG_LINES_BUFFERED: usize = 64 * 1024;

/// Logs on stderr, as text or one JSON object per line; `RUST_LOG` filters
/// (default `info`). A thread of its own writes them: a router core that
/// logs (an audit line per proxied request) formats the line and hands it
/// over, and makes no system call for it. 2,000 replies arriving together
/// would otherwise be 2,000 writes on ingest, ahead of the events behind
/// them. Keep the guard until the end: dropping it writes what is left.
fn init_logs(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_LINES_BUFFERED)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: a log file or a log shipper
    // gets plain text (and ingest, which writes the audit lines, does not
    // spend its time on escape codes).
    let colour = std::env::var_os("NO_COLOR").is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(writer);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
    guard
}

fn main() -> ExitCode {
    let huge_pages_off = disable_transparent_huge_pages();
    let nofile = raise_open_file_limit();
    let cli = Cli::parse();
    let _logs = init_logs(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve(*args, nofile, huge_pages_off),
        Command::SimPg(args) => sim_pg(args),
        Command::Watch(args) => watch(args),
        Command::Ctl(args) => return tools::ctl::main(*args),
        Command::Record(args) => record(args),
        Command::Tune(args) => tune(args),
        Command::CheckConfig(args) => check_config(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ctirouter: {e}");
            ExitCode::from(2)
        }
    }
}
