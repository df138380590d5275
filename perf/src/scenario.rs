//! A scenario file (`perf/scenarios/*.toml`): the router's flags, the PG the
//! driver simulates, the groups of client sessions, and the phases to play,
//! each with the targets the issue sets for it. Parsing and checks only; no
//! I/O beyond reading the file.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub router: RouterFlags,
    #[serde(default)]
    pub load: Load,
    pub groups: Vec<Group>,
    pub phases: Vec<Phase>,
}

/// Flags the harness adds to `ctirouter serve`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouterFlags {
    /// `--shards`: 1 on the 2-core machines (ingest core 0, shard core 1).
    #[serde(default = "default_shards")]
    pub shards: usize,
    /// `--spin-us`: 0 because the harness shares both cores with the router
    /// (docs/design.md §5: spinning only pays on cores nobody else needs).
    #[serde(default)]
    pub spin_us: u64,
    /// `--output-bound` in bytes; absent: the router's default (8 MiB).
    #[serde(default)]
    pub output_bound: Option<usize>,
    /// Anything else, passed as is.
    #[serde(default)]
    pub args: Vec<String>,
}

impl Default for RouterFlags {
    fn default() -> Self {
        RouterFlags {
            shards: default_shards(),
            spin_us: 0,
            output_bound: None,
            args: Vec::new(),
        }
    }
}

fn default_shards() -> usize {
    1
}

/// The simulated PG: how many agents events name, and the event mix.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    #[serde(default = "default_agents")]
    pub agents: u32,
    /// Share of AGENT_STATE_EVENTs; the rest are CALL_DELIVERED_EVENTs.
    #[serde(default = "default_agent_state_share")]
    pub agent_state_share: f64,
    #[serde(default = "default_seed")]
    pub seed: u64,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            agents: default_agents(),
            agent_state_share: default_agent_state_share(),
            seed: default_seed(),
        }
    }
}

fn default_agents() -> u32 {
    100
}
fn default_agent_state_share() -> f64 {
    0.3
}
fn default_seed() -> u64 {
    1
}

/// The service a group's sessions open (docs/protocol.md §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    /// 0x10: every event.
    AllEvents,
    /// 0x01: one agent per session (agents `agent_offset..`).
    ClientEvents,
    /// 0x20: `monitors_per_session` device monitors on consecutive agents' instruments.
    PeripheralMonitor,
}

/// Sessions opened alike.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    pub service: Service,
    pub count: u32,
    /// First agent this group's sessions (or monitors) name.
    #[serde(default)]
    pub agent_offset: u32,
    #[serde(default = "default_monitors")]
    pub monitors_per_session: u32,
    /// Open during this phase instead of before the first one.
    #[serde(default)]
    pub open_in_phase: Option<String>,
    /// Seconds into that phase's measurement when the first session connects.
    #[serde(default)]
    pub open_after_secs: f64,
    /// Seconds over which the group's connects are spread (0: all at once).
    #[serde(default)]
    pub open_within_secs: f64,
    /// Stop reading at the start of this phase's measurement.
    #[serde(default)]
    pub stall_in_phase: Option<String>,
    /// SO_RCVBUF of the group's sockets (small for a stalled reader, so the
    /// router's bound, not the kernel's buffers, decides when it is cut).
    #[serde(default)]
    pub rcvbuf: Option<usize>,
}

fn default_monitors() -> u32 {
    1
}

/// One measured run on the same router and sessions.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    pub name: String,
    /// Events per second, `"max"` (as fast as the router takes them, with at
    /// most `window_events` events in flight per session), or 0 (idle).
    pub rate: Rate,
    #[serde(default = "default_warmup")]
    pub warmup_secs: f64,
    pub duration_secs: f64,
    #[serde(default = "default_window")]
    pub window_events: u64,
    /// Bursts: every `burst_every_secs`, `burst_secs` at `burst_factor` × rate.
    #[serde(default)]
    pub burst_every_secs: f64,
    #[serde(default)]
    pub burst_secs: f64,
    #[serde(default = "default_burst_factor")]
    pub burst_factor: f64,
    #[serde(default)]
    pub targets: Targets,
}

fn default_warmup() -> f64 {
    2.0
}
fn default_window() -> u64 {
    1024
}
fn default_burst_factor() -> f64 {
    1.0
}

/// Events per second, or as fast as the router takes them.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Rate {
    PerSec(f64),
    Max(MaxWord),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MaxWord {
    Max,
}

impl Rate {
    pub fn is_max(&self) -> bool {
        matches!(self, Rate::Max(_))
    }
    pub fn label(&self) -> String {
        match self {
            Rate::Max(_) => "max".into(),
            Rate::PerSec(r) => format!("{r}/s"),
        }
    }
}

/// What the issue requires of a phase. Absent: not a target of this phase.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub cpu_ns_per_delivery: Option<f64>,
    /// No lost, duplicated or reordered delivery.
    #[serde(default)]
    pub zero_loss: bool,
    /// Router RSS at its peak, MB.
    pub rss_mb: Option<f64>,
    /// Router deliveries/s at least this × NATS's (checked by `compare`).
    pub nats_ratio: Option<f64>,
    /// The stalled group was cut by the router (FAILURE_EVENT or close).
    #[serde(default)]
    pub stalled_cut: bool,
    /// Peak RSS at most this many MB above the previous phase's peak.
    pub rss_growth_mb: Option<f64>,
    /// p99 of `group` at most `pct` % above its p99 in `phase`.
    pub p99_within_pct_of: Option<RelativeP99>,
    /// Every session of every group open at the end of the phase.
    #[serde(default)]
    pub all_open: bool,
    /// First connect to last open of the sessions opened in the phase, ms.
    pub open_span_ms: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelativeP99 {
    pub phase: String,
    pub group: String,
    pub pct: f64,
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let scenario: Scenario =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        scenario
            .check()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(scenario)
    }

    /// Names that refer to each other must exist; agents must cover the groups.
    pub fn check(&self) -> Result<(), String> {
        let phase_exists = |p: &Option<String>| match p {
            Some(name) if !self.phases.iter().any(|ph| &ph.name == name) => {
                Err(format!("no phase named {name:?}"))
            }
            _ => Ok(()),
        };
        for g in &self.groups {
            phase_exists(&g.open_in_phase)?;
            phase_exists(&g.stall_in_phase)?;
            let span = match g.service {
                Service::AllEvents => 0,
                Service::ClientEvents => g.count,
                Service::PeripheralMonitor => g.count * g.monitors_per_session,
            };
            if g.agent_offset + span > self.load.agents {
                return Err(format!(
                    "group {:?} names agents up to {} but load.agents is {}",
                    g.name,
                    g.agent_offset + span,
                    self.load.agents
                ));
            }
        }
        if self.phases.is_empty() {
            return Err("no phases".into());
        }
        for p in &self.phases {
            if let Rate::PerSec(r) = p.rate {
                if !(r.is_finite() && r >= 0.0) {
                    return Err(format!("phase {:?}: rate {r}", p.name));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_scenario_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap();
                n += 1;
            }
        }
        assert!(n >= 6);
    }

    #[test]
    fn rate_is_a_number_or_max() {
        #[derive(Deserialize)]
        struct R {
            rate: Rate,
        }
        let r: R = toml::from_str("rate = \"max\"").unwrap();
        assert!(r.rate.is_max());
        let r: R = toml::from_str("rate = 10000").unwrap();
        assert_eq!(r.rate, Rate::PerSec(10000.0));
    }
}
