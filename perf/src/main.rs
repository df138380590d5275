//! `ctirouter-perf`: the end-to-end benchmark harness (command line only).
//!
//! * `run --scenario FILE` — start the router with this harness as its
//!   upstream CTI Server, open the scenario's client sessions, play its
//!   phases, print a summary, write JSON + a CDF plot per phase.
//! * `peer --kind nats|redis --addr A --pid P --subscribers N` — the same
//!   fan-out workload against a running NATS or Redis server.
//! * `compare` — router and peers back to back for N = 10, 100, 1000, one table
//!   (`--probe`: and the limit probe, `limit-probe`, a minimal fan-out).
//!
//! # Layout
//! * `scenario`, `plan` — scenario files; sessions and routing model
//! * `events`, `marker`, `rng`, `clock` — what the driver sends, and when
//! * `driver`, `pacer`, `cti_server`, `pg`, `nats`, `redis` — the publisher
//!   thread, and what the PG knows and answers
//! * `swarm`, `cti_client`, `requests`, `tally`, `heartbeat`, `storm` — the
//!   client sessions, their requests, their accounting, their heartbeats
//!   and their reconnect storms
//! * `runner`, `router_proc`, `procstat`, `shared` — a run, the router process, its cost
//! * `tls` — `run --tls`: a throwaway CA, the sessions' TLS connections
//! * `probe` — the limit probe's server (its own process)
//! * `results`, `summary`, `report`, `svg`, `compare` — results, files, tables

mod clock;
mod compare;
mod cti_client;
mod cti_server;
mod driver;
mod events;
mod heartbeat;
mod marker;
mod nats;
mod pacer;
mod pg;
mod plan;
mod probe;
mod procstat;
mod redis;
mod report;
mod requests;
mod results;
mod rng;
mod router_proc;
mod runner;
mod scenario;
mod shared;
mod storm;
mod summary;
mod svg;
mod swarm;
mod tally;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::runner::{RunOptions, Server};
use crate::swarm::Protocol;

#[derive(Parser)]
#[command(
    name = "ctirouter-perf",
    about = "End-to-end benchmark harness for ctirouter"
)]
struct Cli {
    /// Pin the harness (driver, swarm) to these cores, e.g. `1` on a 2-core
    /// machine whose core 0 runs the server (tuning/2-core-bench.toml); the
    /// router child then pins its own executors where its tuning says.
    #[arg(long, global = true, value_delimiter = ',')]
    harness_cores: Vec<usize>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario against the router.
    Run {
        #[arg(long)]
        scenario: PathBuf,
        /// Router binary (default: target/release/ctirouter, built if missing).
        #[arg(long)]
        router_bin: Option<PathBuf>,
        /// Where results go (default: perf/results/<scenario name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seconds measured per phase (overrides the scenario).
        #[arg(long)]
        duration: Option<f64>,
        /// Only this phase (repeatable).
        #[arg(long)]
        phase: Vec<String>,
        /// When the sessions send HEARTBEAT_REQ (overrides `[load]
        /// heartbeats`): `synchronized` (each a period after its open, so
        /// sessions opened together send together) or `spread` (session i of
        /// N at i/N of the 10 s period).
        #[arg(long, value_enum)]
        heartbeats: Option<heartbeat::Mode>,
        /// When a delivery counts as received (overrides `[load]
        /// receive_time`): `read` (when the harness's read returned: what a
        /// client sees) or `kernel` (when the bytes reached the client's
        /// socket: the server's delivery without the harness's own wait).
        #[arg(long, value_enum)]
        receive_time: Option<clock::ReceiveTime>,
        /// Every session over TLS to the router (sets `[router] tls`): a
        /// throwaway CA and certificate, the router's `[tls]` port beside
        /// the clear one; the upstream stays clear.
        #[arg(long)]
        tls: bool,
    },
    /// The fan-out workload against a running NATS or Redis server.
    Peer {
        #[arg(long, value_enum)]
        kind: PeerKind,
        #[arg(long)]
        addr: SocketAddr,
        /// The server's pid (for its CPU and RSS).
        #[arg(long)]
        pid: u32,
        #[arg(long, default_value_t = 100)]
        subscribers: u32,
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        duration: Option<f64>,
        /// Only this phase of fanout-N.toml (default: max-rate).
        #[arg(long, default_value = "max-rate")]
        phase: String,
    },
    /// Router and peers back to back for each N; one markdown table.
    Compare {
        #[arg(long)]
        router_bin: Option<PathBuf>,
        /// Skip the router runs (peers only).
        #[arg(long)]
        no_router: bool,
        #[arg(long)]
        nats: Option<SocketAddr>,
        #[arg(long)]
        nats_pid: Option<u32>,
        #[arg(long)]
        redis: Option<SocketAddr>,
        #[arg(long)]
        redis_pid: Option<u32>,
        /// Also run the limit probe (a minimal batching fan-out, its own
        /// process): the "limit" row and the router ÷ limit column.
        #[arg(long)]
        probe: bool,
        /// Pin the limit probe to these cores (the router's: core 0).
        #[arg(long, value_delimiter = ',', default_value = "0")]
        probe_cores: Vec<usize>,
        #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
        subscribers: Vec<u32>,
        #[arg(long, default_value = "max-rate")]
        phase: String,
        #[arg(long)]
        duration: Option<f64>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The limit probe's server (started by `compare --probe`): an All
    /// Events session on the driver at ADDR, fanned out batch by batch to
    /// every client; prints `listening ADDR`.
    LimitProbe {
        #[arg(long)]
        upstream: SocketAddr,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum PeerKind {
    Nats,
    Redis,
}

impl PeerKind {
    fn protocol(self) -> Protocol {
        match self {
            PeerKind::Nats => Protocol::Nats,
            PeerKind::Redis => Protocol::Redis,
        }
    }
}

fn perf_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// The router binary: given, or the workspace's release build (built if missing).
fn router_bin(given: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(bin) = given {
        return Ok(bin);
    }
    let bin = router_proc::default_router_bin();
    if !bin.exists() {
        eprintln!("building the router: cargo build --release -p ctirouter");
        let status = std::process::Command::new("cargo")
            .args(["build", "--release", "-p", "ctirouter"])
            .current_dir(perf_dir().join(".."))
            .status()
            .map_err(|e| format!("cargo: {e}"))?;
        if !status.success() {
            return Err("cargo build --release failed".into());
        }
    }
    Ok(bin)
}

fn print_results(title: &str, out: &Path, results: &[results::PhaseResult]) -> Result<(), String> {
    let doc = report::summary_md(title, &command_line(), results);
    let path = out.join(format!("{}-summary.md", title.replace(' ', "-")));
    summary::write(&path, &doc)?;
    println!("{}", report::table(results));
    println!("{}", report::targets(results));
    println!("{}", report::threads(results));
    println!("summary: {}", path.display());
    Ok(())
}

/// Restrict this process (and the threads it starts later) to `cores`.
fn pin_harness(cores: &[usize]) -> Result<(), String> {
    if cores.is_empty() {
        return Ok(());
    }
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes within it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &core in cores {
        if core >= libc::CPU_SETSIZE as usize {
            return Err(format!("--harness-cores: no core {core}"));
        }
        // SAFETY: `core` is below CPU_SETSIZE (checked above).
        unsafe { libc::CPU_SET(core, &mut set) };
    }
    // SAFETY: pid 0 = this thread (called before any other thread starts).
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if rc != 0 {
        return Err(format!(
            "--harness-cores {cores:?}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn run(cli: Cli) -> Result<(), String> {
    pin_harness(&cli.harness_cores)?;
    match cli.command {
        Cmd::Run {
            scenario,
            router_bin: bin,
            out,
            duration,
            phase,
            heartbeats,
            receive_time,
            tls,
        } => {
            let mut scenario = scenario::Scenario::load(&scenario)?;
            if let Some(mode) = heartbeats {
                scenario.load.heartbeats = mode;
            }
            if let Some(mode) = receive_time {
                scenario.load.receive_time = mode;
            }
            scenario.router.tls |= tls;
            let out = out.unwrap_or_else(|| perf_dir().join("results").join(&scenario.name));
            let opts = RunOptions {
                server: Server::Router {
                    bin: router_bin(bin)?,
                },
                out_dir: out.clone(),
                duration,
                only_phases: phase,
            };
            let outcome = runner::run(&scenario, &opts)?;
            eprintln!("router: {}", outcome.router_args.join(" "));
            print_results(&scenario.name, &out, &outcome.phases)
        }
        Cmd::Peer {
            kind,
            addr,
            pid,
            subscribers,
            out,
            duration,
            phase,
        } => {
            let scenario = compare::peer_scenario(subscribers, &perf_dir().join("scenarios"))?;
            let server = Server::Peer {
                protocol: kind.protocol(),
                addr,
                pid,
            };
            let title = format!("{}-{}", server.name(), scenario.name);
            let out = out.unwrap_or_else(|| perf_dir().join("results").join("peers"));
            let opts = RunOptions {
                server,
                out_dir: out.clone(),
                duration,
                only_phases: vec![phase],
            };
            let outcome = runner::run(&scenario, &opts)?;
            print_results(&title, &out, &outcome.phases)
        }
        Cmd::Compare {
            router_bin: bin,
            no_router,
            nats,
            nats_pid,
            redis,
            redis_pid,
            probe,
            probe_cores,
            subscribers,
            phase,
            duration,
            out,
        } => {
            let mut peers = Vec::new();
            if let (Some(addr), Some(pid)) = (nats, nats_pid) {
                peers.push(compare::Peer {
                    protocol: Protocol::Nats,
                    addr,
                    pid,
                });
            }
            if let (Some(addr), Some(pid)) = (redis, redis_pid) {
                peers.push(compare::Peer {
                    protocol: Protocol::Redis,
                    addr,
                    pid,
                });
            }
            let opts = compare::CompareOptions {
                router_bin: if no_router {
                    None
                } else {
                    Some(router_bin(bin)?)
                },
                peers,
                probe: probe.then_some(probe_cores),
                subscribers,
                scenarios_dir: perf_dir().join("scenarios"),
                phase,
                duration,
                out_dir: out.unwrap_or_else(|| perf_dir().join("results").join("compare")),
                command: command_line(),
            };
            std::fs::create_dir_all(&opts.out_dir).map_err(|e| e.to_string())?;
            let doc = compare::compare(&opts)?;
            println!("{doc}");
            Ok(())
        }
        Cmd::LimitProbe { upstream } => probe::serve(upstream),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ctirouter-perf: {e}");
            ExitCode::FAILURE
        }
    }
}
