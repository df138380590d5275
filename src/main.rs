//! Command line only: parse, load the config, apply overrides, call the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ctirouter::config::Config;
use ctirouter::router::Router;

#[derive(Parser)]
#[command(
    name = "ctirouter",
    version,
    about = "Thread-per-core GED-188 (CTI Server) event router"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve downstream CTI clients (on the built-in simulated PG unless --upstream).
    Serve(Box<ServeArgs>),
    /// Standalone simulated CTI Server.
    SimPg,
    /// Command-line CTI client that prints events.
    Watch,
    /// Record an upstream stream to a file.
    Record,
    /// Write a core-pinning tuning file for this host.
    Tune,
}

#[derive(Args)]
struct ServeArgs {
    /// TOML config file (see ctirouter.example.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Listen address (default 127.0.0.1:42027; port 0 picks a free port).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Upstream CTI Server side A[,B].
    #[arg(long)]
    upstream: Option<String>,
    /// Protocol version opened upstream.
    #[arg(long)]
    upstream_version: Option<u32>,
    /// Use the built-in simulated PG (the default without --upstream).
    #[arg(long)]
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
    /// Simulated seconds per real second (0 = as fast as possible).
    #[arg(long)]
    sim_speed: Option<f64>,
    /// Stop the simulator after this many events (the router keeps serving).
    #[arg(long)]
    sim_max_events: Option<u64>,
    /// Per-session bound on unsent output, bytes.
    #[arg(long)]
    output_bound: Option<usize>,
}

impl ServeArgs {
    fn config(&self) -> Result<Config, String> {
        let mut config = match &self.config {
            Some(path) => Config::load(path).map_err(|e| e.to_string())?,
            None => Config::default(),
        };
        if let Some(path) = &self.tuning {
            return Err(format!(
                "--tuning {}: tuning files are not built yet",
                path.display()
            ));
        }
        if self.upstream.is_some() || self.replay.is_some() || self.upstream_version.is_some() {
            return Err(
                "--upstream/--replay are not built yet; run without them to serve the \
                        built-in simulated PG"
                    .into(),
            );
        }
        let _ = (self.simulate, self.speed);
        if let Some(listen) = self.listen {
            config.listen = listen;
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
        if let Some(speed) = self.sim_speed {
            config.sim_speed = speed;
        }
        if let Some(max) = self.sim_max_events {
            config.sim_max_events = Some(max);
        }
        if let Some(bound) = self.output_bound {
            config.limits.output_bound_bytes = bound;
        }
        Ok(config)
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let config = args.config()?;
    tracing::info!(
        agents = config.simulator.agents,
        calls_per_sec = config.simulator.calls_per_sec,
        seed = config.simulator.seed,
        "ctirouter serving the built-in simulated PG (no --upstream given)"
    );
    let signals = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM])
        .map_err(|e| format!("signal handlers: {e}"))?;
    let router = Router::start(config).map_err(|e| e.to_string())?;
    tracing::info!(addr = %router.local_addr, "listening");
    // Machine-readable line for scripts and tests.
    println!("listening {}", router.local_addr);
    let mut signals = signals;
    if let Some(signal) = signals.forever().next() {
        tracing::info!(
            signal,
            "stopping: telling sessions the CTI Server is going offline"
        );
    }
    router.shutdown().map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

/// Sessions are sockets: lift the soft open-file limit to the hard one so
/// thousands of clients fit (a no-op where the soft limit is already there).
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn main() -> ExitCode {
    raise_open_file_limit();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::SimPg | Command::Watch | Command::Record | Command::Tune => {
            Err("this command is not built yet".into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ctirouter: {e}");
            ExitCode::from(2)
        }
    }
}
