//! Router against peers in one run: the same fan-out-N workload (same driver,
//! same ~260-byte payload with its marker, same window, same swarm) against
//! ctirouter, NATS and Redis for each N, and one markdown table with the
//! router/peer ratios of deliveries/s and server CPU per delivery. With
//! `--probe`, also against the limit probe (`probe`: read once, one write per
//! subscriber per batch), and the router's share of that limit.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::report;
use crate::results::PhaseResult;
use crate::runner::{self, RunOptions, Server};
use crate::scenario::Scenario;
use crate::summary::write;
use crate::swarm::Protocol;

/// A running peer server.
#[derive(Debug, Clone)]
pub struct Peer {
    pub protocol: Protocol,
    pub addr: SocketAddr,
    pub pid: u32,
}

pub struct CompareOptions {
    pub router_bin: Option<PathBuf>,
    pub peers: Vec<Peer>,
    /// Run the limit probe too, pinned to these cores.
    pub probe: Option<Vec<usize>>,
    pub subscribers: Vec<u32>,
    pub scenarios_dir: PathBuf,
    /// The phase of `fanout-N.toml` that is compared.
    pub phase: String,
    pub duration: Option<f64>,
    pub out_dir: PathBuf,
    pub command: String,
}

/// One N: the router's result and each peer's.
struct Row {
    n: u32,
    router: Option<PhaseResult>,
    /// The limit probe's.
    limit: Option<PhaseResult>,
    peers: Vec<(Protocol, PhaseResult)>,
}

pub fn compare(opts: &CompareOptions) -> Result<String, String> {
    let mut rows = Vec::new();
    let mut all = Vec::new();
    for &n in &opts.subscribers {
        let path = opts.scenarios_dir.join(format!("fanout-{n}.toml"));
        let scenario = Scenario::load(&path)?;
        let mut row = Row {
            n,
            router: None,
            limit: None,
            peers: Vec::new(),
        };
        if let Some(bin) = &opts.router_bin {
            row.router = one(&scenario, Server::Router { bin: bin.clone() }, opts)?;
        }
        if let Some(cores) = &opts.probe {
            let server = Server::Probe {
                cores: cores.clone(),
            };
            row.limit = one(&scenario, server, opts)?;
        }
        for p in &opts.peers {
            let server = Server::Peer {
                protocol: p.protocol,
                addr: p.addr,
                pid: p.pid,
            };
            if let Some(r) = one(&scenario, server, opts)? {
                row.peers.push((p.protocol, r));
            }
        }
        all.extend(row.router.iter().cloned());
        all.extend(row.limit.iter().cloned());
        all.extend(row.peers.iter().map(|(_, r)| r.clone()));
        rows.push(row);
    }
    let doc = format!(
        "# ctirouter vs peers: fan-out at max rate\n\n{}\n## Ratios\n\n{}\n{}\n## Every run\n\n{}\n## Details\n\n{}\n## Threads\n\n{}\n\n{}",
        report::header(&opts.command),
        ratio_table(&rows),
        NOTES,
        report::table(&all),
        report::details(&all),
        report::CPU_NOTE,
        report::threads(&all)
    );
    write(&opts.out_dir.join("compare.md"), &doc)?;
    let json = serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?;
    write(&opts.out_dir.join("compare.json"), &json)?;
    Ok(doc)
}

const NOTES: &str = "\
Ratios: router deliveries/s ÷ peer deliveries/s (higher is better for the router);
peer CPU ns/delivery ÷ router CPU ns/delivery (higher is better for the router).
Limit (`--probe`): the limit probe, a minimal fan-out on the same core (read a batch
once, one write per subscriber per batch, no protocol work); router ÷ limit is
router deliveries/s ÷ limit deliveries/s, the share of this machine's limit the router reaches.
Targets (issue 6): router deliveries/s ≥ 3× NATS at every N; router CPU ≤ 60 ns/delivery.
";

fn one(
    scenario: &Scenario,
    server: Server,
    opts: &CompareOptions,
) -> Result<Option<PhaseResult>, String> {
    let name = server.name();
    eprintln!("== compare: {name} on {}", scenario.name);
    let run = RunOptions {
        server,
        out_dir: opts.out_dir.clone(),
        duration: opts.duration,
        only_phases: vec![opts.phase.clone()],
    };
    let outcome = runner::run(scenario, &run)?;
    Ok(outcome.phases.into_iter().next())
}

fn ratio_table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| N | peer | router deliveries/s | peer deliveries/s | router ÷ peer | router CPU ns/delivery | peer CPU ns/delivery | peer ÷ router CPU | router p99 ms | peer p99 ms | ≥ 3× NATS | router ≤ 60 ns | limit deliveries/s | limit CPU ns/delivery | router ÷ limit |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|\n",
    );
    for row in rows {
        let Some(r) = &row.router else { continue };
        let limit = match &row.limit {
            Some(l) => format!(
                "{:.0} | {:.1} | {:.2}×",
                l.deliveries_per_sec,
                l.cpu_ns_per_delivery,
                r.deliveries_per_sec / l.deliveries_per_sec.max(1.0)
            ),
            None => " |  | ".into(),
        };
        let within = verdict(
            r.cpu_ns_per_delivery <= 60.0,
            format!("{:.1} ns", r.cpu_ns_per_delivery),
        );
        if row.peers.is_empty() && row.limit.is_some() {
            let _ = writeln!(
                s,
                "| {} | — | {:.0} |  |  | {:.1} |  |  | {:.3} |  |  | {within} | {limit} |",
                row.n,
                r.deliveries_per_sec,
                r.cpu_ns_per_delivery,
                r.latency.p99_us / 1e3,
            );
        }
        for (protocol, p) in &row.peers {
            let speed = r.deliveries_per_sec / p.deliveries_per_sec.max(1.0);
            let cpu = p.cpu_ns_per_delivery / r.cpu_ns_per_delivery.max(1e-9);
            let vs_nats = if *protocol == Protocol::Nats {
                verdict(speed >= 3.0, format!("{:.0}% of 3×", speed / 3.0 * 100.0))
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "| {} | {:?} | {:.0} | {:.0} | {speed:.2}× | {:.1} | {:.1} | {cpu:.2}× | {:.3} | {:.3} | {vs_nats} | {within} | {limit} |",
                row.n, protocol, r.deliveries_per_sec, p.deliveries_per_sec,
                r.cpu_ns_per_delivery, p.cpu_ns_per_delivery,
                r.latency.p99_us / 1e3, p.latency.p99_us / 1e3,
            );
        }
    }
    s
}

fn verdict(pass: bool, detail: String) -> String {
    format!("{} ({detail})", if pass { "PASS" } else { "MISS" })
}

/// A fan-out scenario for a peer run without a scenario file.
pub fn peer_scenario(n: u32, scenarios_dir: &Path) -> Result<Scenario, String> {
    Scenario::load(&scenarios_dir.join(format!("fanout-{n}.toml"))).or_else(|_| {
        let text = format!(
            "name = \"fanout-{n}\"\n[[groups]]\nname = \"subscribers\"\nservice = \"all-events\"\ncount = {n}\n\
             [[phases]]\nname = \"max-rate\"\nrate = \"max\"\nduration_secs = 10\n"
        );
        toml::from_str(&text).map_err(|e| e.to_string())
    })
}
