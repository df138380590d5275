//! A scenario file (`perf/scenarios/*.toml`): the router's flags, the PG the
//! driver simulates, the groups of client sessions, and the phases to play,
//! each with the targets the issue sets for it. Parsing and checks only; no
//! I/O beyond reading the file.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::heartbeat::Mode;

/// The router's `[limits] max_sessions` when the scenario does not set it.
const DEFAULT_MAX_SESSIONS: usize = 10_000;

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
    /// `[limits] max_sessions` of the router config the harness writes
    /// (`<out>/<scenario>-router.toml`, passed with `--config`); absent:
    /// the router's default (10,000). `serve` has no flag for it.
    #[serde(default)]
    pub max_sessions: Option<usize>,
    /// Every session of the swarm to the router over TLS (`run --tls`):
    /// the harness makes a throwaway CA and certificate, the router serves
    /// them on a `[tls]` port beside the clear one. The upstream (the
    /// driver) and direct desktops stay clear.
    #[serde(default)]
    pub tls: bool,
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
            max_sessions: None,
            tls: false,
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
    /// When the CTI sessions send HEARTBEAT_REQ: `synchronized` (default)
    /// or `spread` (perf/src/heartbeat.rs).
    #[serde(default)]
    pub heartbeats: Mode,
    /// When a delivery counts as received: `read` (default: when the
    /// harness's read returned) or `kernel` (when it reached the socket;
    /// perf/src/clock.rs).
    #[serde(default)]
    pub receive_time: crate::clock::ReceiveTime,
    /// The AgentStates AGENT_STATE_EVENTs say, drawn with equal chances
    /// (default: Available only, the stream before this key existed).
    #[serde(default = "default_agent_states")]
    pub agent_states: Vec<u16>,
    /// Share of the agents that take calls (spread evenly over them): call
    /// events name only those (default 1: every agent).
    #[serde(default = "default_agents_in_calls")]
    pub agents_in_calls: f64,
    /// Before the first phase, one AGENT_STATE_EVENT per agent (and, per
    /// agent that takes calls, its call's BEGIN_CALL_EVENT and first
    /// CALL_DELIVERED_EVENT), so the router has seen every agent's state and
    /// call before anything is measured.
    #[serde(default)]
    pub prime_agent_states: bool,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            agents: default_agents(),
            agent_state_share: default_agent_state_share(),
            seed: default_seed(),
            heartbeats: Mode::default(),
            receive_time: crate::clock::ReceiveTime::default(),
            agent_states: default_agent_states(),
            agents_in_calls: default_agents_in_calls(),
            prime_agent_states: false,
        }
    }
}

fn default_agent_states() -> Vec<u16> {
    vec![ctirouter::proto::constants::agent_state::AVAILABLE]
}
fn default_agents_in_calls() -> f64 {
    1.0
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
    /// Client Events sessions that also ask for Client Control and Call Data
    /// Update (ClientID `ctirouter-perf-desktop`, listed in the `[[clients]]`
    /// of the config the runner writes for the router) and send the phases'
    /// requests (`requests_per_sec`, `request_burst`).
    #[serde(default)]
    pub requests: bool,
    /// Client Events sessions that connect to the driver's second listener
    /// (straight to the PG, no router) and send the same requests: the
    /// reference the router's request round trip is compared with. Implies
    /// `requests`; they get no events.
    #[serde(default)]
    pub direct: bool,
    /// Client Events sessions that, in this phase, drop their connection (no
    /// CLOSE_REQ: a crash or failover) all at once, `reconnect_after_secs`
    /// into its measured window, and connect and open again spread over
    /// `reconnect_within_secs`.
    #[serde(default)]
    pub reconnect_in_phase: Option<String>,
    #[serde(default)]
    pub reconnect_after_secs: f64,
    #[serde(default)]
    pub reconnect_within_secs: f64,
    /// Right after each re-open's OPEN_CONF: QUERY_AGENT_STATE_REQ for the
    /// session's agent and SNAPSHOT_DEVICE_REQ for its instrument (needs
    /// `requests = true`: Client Control).
    #[serde(default)]
    pub queries_on_reopen: bool,
}

impl Group {
    /// Sends requests (through the router or straight to the PG).
    pub fn sends_requests(&self) -> bool {
        self.requests || self.direct
    }
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
    /// Requests per second through the router, in total over the sessions of
    /// the `requests` groups (round robin over them, mix of five types).
    #[serde(default)]
    pub requests_per_sec: f64,
    /// Requests per second straight to the PG, in total over the `direct`
    /// groups; absent: the same rate per session as through the router.
    #[serde(default)]
    pub direct_requests_per_sec: Option<f64>,
    /// One burst of this many requests through the router, one per session
    /// of the `requests` groups, written back to back (as close to "in the
    /// same millisecond" as one harness thread gets).
    #[serde(default)]
    pub request_burst: u32,
    /// Seconds into the measured window when the burst goes (default: the
    /// middle of the window).
    #[serde(default)]
    pub request_burst_after_secs: Option<f64>,
    #[serde(default)]
    pub targets: Targets,
}

impl Phase {
    /// Whether the phase sends any request.
    pub fn has_requests(&self) -> bool {
        self.requests_per_sec > 0.0
            || self.direct_requests_per_sec.is_some_and(|r| r > 0.0)
            || self.request_burst > 0
    }
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
    /// The same, of the events sent outside the phase's bursts.
    pub p99_outside_bursts_ms: Option<f64>,
    pub p999_outside_bursts_ms: Option<f64>,
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
    /// Request round trip p99 through the router at most this many µs above
    /// the p99 of the same requests sent straight to the PG (same phase).
    pub request_p99_added_us: Option<f64>,
    /// Every request of the window answered by a confirmation or a failure
    /// with the asker's InvokeID; none unanswered after the drain.
    #[serde(default)]
    pub requests_answered: bool,
    /// The slowest event delivery read while the burst was in flight at most
    /// `ms` above the p99.9 of every delivery in `phase`.
    pub burst_added_ms: Option<BurstAdded>,
    /// At most this many QUERY_AGENT_STATE_REQ + SNAPSHOT_DEVICE_REQ reached
    /// the PG from the router in the phase (window and drain).
    pub upstream_requests_in_storm: Option<u64>,
    /// Re-opened sessions: OPEN_CONF → the last of its queries' answers, p99,
    /// ms; a session with a failure or no answer counts as slower than any.
    pub answer_p99_ms: Option<f64>,
    /// All Events delivery p99 during the storm at most this × the All
    /// Events p99 of the phase before (the calm one).
    pub all_events_p99_ratio: Option<f64>,
    /// Every session that dropped in the phase opened again.
    #[serde(default)]
    pub all_reopened: bool,
    /// Every query answer says what the PG's stream said at its place in
    /// the session's stream (perf/src/pg.rs).
    #[serde(default)]
    pub answers_match_stream: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BurstAdded {
    pub phase: String,
    pub ms: f64,
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
        let max_sessions = self.router.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS);
        if self.router_sessions() > max_sessions as u64 {
            return Err(format!(
                "{} sessions connect to the router but its max_sessions is {max_sessions}: set \
                 [router] max_sessions",
                self.router_sessions()
            ));
        }
        for g in &self.groups {
            if g.sends_requests() && g.service != Service::ClientEvents {
                return Err(format!(
                    "group {:?}: requests and direct are for client-events groups",
                    g.name
                ));
            }
            self.check_reconnect(g)?;
        }
        self.check_load()?;
        let router_requesters = self.request_sessions(false);
        for p in &self.phases {
            if let Rate::PerSec(r) = p.rate {
                if !(r.is_finite() && r >= 0.0) {
                    return Err(format!("phase {:?}: rate {r}", p.name));
                }
            }
            let rates = [p.requests_per_sec, p.direct_requests_per_sec.unwrap_or(0.0)];
            if rates.iter().any(|r| !(r.is_finite() && *r >= 0.0)) {
                return Err(format!("phase {:?}: request rates {rates:?}", p.name));
            }
            if (p.requests_per_sec > 0.0 || p.request_burst > 0) && router_requesters == 0 {
                return Err(format!(
                    "phase {:?} sends requests through the router but no group has `requests = true`",
                    p.name
                ));
            }
            if p.request_burst > router_requesters {
                return Err(format!(
                    "phase {:?}: request_burst {} is more than the {router_requesters} sessions that send requests (one each)",
                    p.name, p.request_burst
                ));
            }
            if p.direct_requests_per_sec.is_some_and(|r| r > 0.0)
                && self.request_sessions(true) == 0
            {
                return Err(format!(
                    "phase {:?}: direct_requests_per_sec without a `direct` group",
                    p.name
                ));
            }
            let refers = p
                .targets
                .burst_added_ms
                .as_ref()
                .map(|b| &b.phase)
                .into_iter()
                .chain(p.targets.p99_within_pct_of.as_ref().map(|r| &r.phase));
            for name in refers {
                if !self.phases.iter().any(|ph| &ph.name == name) {
                    return Err(format!("phase {:?}: no phase named {name:?}", p.name));
                }
            }
        }
        Ok(())
    }

    fn check_reconnect(&self, g: &Group) -> Result<(), String> {
        let Some(phase) = &g.reconnect_in_phase else {
            if g.queries_on_reopen {
                return Err(format!(
                    "group {:?}: queries_on_reopen without reconnect_in_phase",
                    g.name
                ));
            }
            return Ok(());
        };
        let Some(at) = self.phases.iter().position(|p| &p.name == phase) else {
            return Err(format!("group {:?}: no phase named {phase:?}", g.name));
        };
        if g.service != Service::ClientEvents || g.direct {
            return Err(format!(
                "group {:?}: reconnect_in_phase is for client-events groups through the router",
                g.name
            ));
        }
        if g.queries_on_reopen && !g.requests {
            return Err(format!(
                "group {:?}: queries_on_reopen needs requests = true (Client Control)",
                g.name
            ));
        }
        let opens_at = g
            .open_in_phase
            .as_ref()
            .and_then(|o| self.phases.iter().position(|p| &p.name == o));
        if opens_at.is_some_and(|o| o >= at) {
            return Err(format!(
                "group {:?}: it must be open before the phase it reconnects in",
                g.name
            ));
        }
        let times = [g.reconnect_after_secs, g.reconnect_within_secs];
        if times.iter().any(|t| !(t.is_finite() && *t >= 0.0)) {
            return Err(format!("group {:?}: reconnect times {times:?}", g.name));
        }
        Ok(())
    }

    fn check_load(&self) -> Result<(), String> {
        let l = &self.load;
        if l.agent_states.is_empty() || l.agent_states.len() > u8::MAX as usize {
            return Err("load.agent_states: 1 to 255 states".into());
        }
        if let Some(s) = l.agent_states.iter().find(|&&s| s > 14) {
            return Err(format!("load.agent_states: {s} is no AgentState (0–14)"));
        }
        if !(l.agents_in_calls > 0.0 && l.agents_in_calls <= 1.0) {
            return Err(format!(
                "load.agents_in_calls {} is not in (0, 1]",
                l.agents_in_calls
            ));
        }
        for p in &self.phases {
            let t = &p.targets;
            let storm_only = t.upstream_requests_in_storm.is_some()
                || t.answer_p99_ms.is_some()
                || t.answers_match_stream
                || t.all_reopened;
            if storm_only && self.reconnect_groups(&p.name).next().is_none() {
                return Err(format!(
                    "phase {:?}: reconnect-storm targets, but no group reconnects in it",
                    p.name
                ));
            }
        }
        Ok(())
    }

    /// The groups whose sessions drop and reconnect in `phase`.
    pub fn reconnect_groups<'a>(&'a self, phase: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.groups
            .iter()
            .enumerate()
            .filter(move |(_, g)| g.reconnect_in_phase.as_deref() == Some(phase))
            .map(|(gi, _)| gi)
    }

    /// Whether some group queries after re-opening (the driver then keeps
    /// the history its answers are checked against).
    pub fn checks_answers(&self) -> bool {
        self.groups.iter().any(|g| g.queries_on_reopen)
    }

    /// Whether the driver sends priming events before the first phase: one
    /// call per agent that takes calls (scenarios with desktops, so the
    /// router knows each desktop's call) and, with `prime_agent_states`,
    /// one AGENT_STATE_EVENT per agent.
    pub fn primes(&self) -> bool {
        self.has_requests() || self.load.prime_agent_states
    }

    /// Sessions that connect to the server under test (all but `direct`).
    pub fn router_sessions(&self) -> u64 {
        self.groups
            .iter()
            .filter(|g| !g.direct)
            .map(|g| g.count as u64)
            .sum()
    }

    /// File descriptors the harness holds for the sessions: one socket
    /// each, and for a direct session also the driver's end of it.
    pub fn harness_session_fds(&self) -> u64 {
        self.groups
            .iter()
            .map(|g| g.count as u64 * if g.direct { 2 } else { 1 })
            .sum()
    }

    /// Sessions that send requests through the router (`direct = false`) or
    /// straight to the PG (`direct = true`).
    pub fn request_sessions(&self, direct: bool) -> u32 {
        self.groups
            .iter()
            .filter(|g| g.sends_requests() && g.direct == direct)
            .map(|g| g.count)
            .sum()
    }

    /// Whether any group sends requests (the driver then grants Client
    /// Control and Call Data Update, and the router gets a client list).
    pub fn has_requests(&self) -> bool {
        self.groups.iter().any(|g| g.sends_requests())
    }

    /// Whether a group connects straight to the PG.
    pub fn has_direct(&self) -> bool {
        self.groups.iter().any(|g| g.direct)
    }

    /// Requests per second each session of group `gi` sends in `phase`
    /// (0 for groups that send none).
    pub fn request_rate_per_session(&self, phase: &Phase, gi: usize) -> f64 {
        let g = &self.groups[gi];
        if !g.sends_requests() {
            return 0.0;
        }
        let router = self.request_sessions(false);
        let per_router_session = if router == 0 {
            0.0
        } else {
            phase.requests_per_sec / router as f64
        };
        if !g.direct {
            return per_router_session;
        }
        match phase.direct_requests_per_sec {
            Some(total) => total / self.request_sessions(true).max(1) as f64,
            None => per_router_session,
        }
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

    const DESKTOPS: &str = r#"
        name = "d"
        load = { agents = 30 }
        [[groups]]
        name = "desk"
        service = "client-events"
        count = 20
        requests = true
        [[groups]]
        name = "direct"
        service = "client-events"
        count = 4
        agent_offset = 20
        direct = true
        [[groups]]
        name = "ae"
        service = "all-events"
        count = 2
        [[phases]]
        name = "base"
        rate = 10
        duration_secs = 1
        [[phases]]
        name = "req"
        rate = 10
        duration_secs = 1
        requests_per_sec = 200
        [phases.targets]
        request_p99_added_us = 50
        requests_answered = true
        p99_within_pct_of = { phase = "base", group = "ae", pct = 10 }
        [[phases]]
        name = "burst"
        rate = 10
        duration_secs = 1
        request_burst = 20
        direct_requests_per_sec = 8
        [phases.targets]
        burst_added_ms = { phase = "req", ms = 1 }
    "#;

    #[test]
    fn request_keys_parse_and_rates_split_per_session() {
        let s: Scenario = toml::from_str(DESKTOPS).unwrap();
        s.check().unwrap();
        assert!(s.has_requests() && s.has_direct());
        assert_eq!(
            (s.request_sessions(false), s.request_sessions(true)),
            (20, 4)
        );
        let (base, req, burst) = (&s.phases[0], &s.phases[1], &s.phases[2]);
        assert!(!base.has_requests() && req.has_requests() && burst.has_requests());
        // 200/s over 20 desktops: 10/s each; direct sessions the same per
        // session unless told otherwise.
        assert_eq!(s.request_rate_per_session(req, 0), 10.0);
        assert_eq!(s.request_rate_per_session(req, 1), 10.0);
        assert_eq!(s.request_rate_per_session(req, 2), 0.0);
        assert_eq!(s.request_rate_per_session(burst, 1), 2.0);
        assert_eq!(burst.request_burst, 20);
        assert_eq!(req.targets.request_p99_added_us, Some(50.0));
        assert_eq!(burst.targets.burst_added_ms.as_ref().unwrap().ms, 1.0);
    }

    #[test]
    fn request_keys_are_checked() {
        let bad = |from: &str, to: &str| {
            let s: Scenario = toml::from_str(&DESKTOPS.replace(from, to)).unwrap();
            s.check().unwrap_err()
        };
        assert!(bad("request_burst = 20", "request_burst = 21").contains("more than"));
        assert!(bad("requests = true", "requests = false").contains("no group"));
        assert!(bad(
            "service = \"all-events\"\n        count = 2",
            "service = \"all-events\"\n        count = 2\n        direct = true"
        )
        .contains("client-events groups"));
        assert!(bad("phase = \"req\", ms", "phase = \"nope\", ms").contains("nope"));
    }

    const STORM: &str = r#"
        name = "s"
        load = { agents = 30, agent_states = [2, 3, 4], agents_in_calls = 0.5, prime_agent_states = true }
        [[groups]]
        name = "ae"
        service = "all-events"
        count = 2
        [[groups]]
        name = "desk"
        service = "client-events"
        count = 20
        requests = true
        reconnect_in_phase = "storm"
        reconnect_after_secs = 1
        reconnect_within_secs = 1
        queries_on_reopen = true
        [[phases]]
        name = "calm"
        rate = 10
        duration_secs = 1
        [[phases]]
        name = "storm"
        rate = 10
        duration_secs = 4
        [phases.targets]
        upstream_requests_in_storm = 0
        answer_p99_ms = 200
        all_events_p99_ratio = 2.0
        all_reopened = true
        answers_match_stream = true
    "#;

    #[test]
    fn reconnect_keys_parse_and_are_checked() {
        let s: Scenario = toml::from_str(STORM).unwrap();
        s.check().unwrap();
        assert_eq!(s.reconnect_groups("storm").collect::<Vec<_>>(), [1]);
        assert_eq!(s.reconnect_groups("calm").count(), 0);
        assert!(s.checks_answers() && s.primes());
        assert_eq!(s.load.agent_states, [2, 3, 4]);
        let t = &s.phases[1].targets;
        assert_eq!(t.upstream_requests_in_storm, Some(0));
        assert_eq!(
            (t.answer_p99_ms, t.all_events_p99_ratio),
            (Some(200.0), Some(2.0))
        );
        assert!(t.all_reopened && t.answers_match_stream);
        let bad = |from: &str, to: &str| {
            let s: Scenario = toml::from_str(&STORM.replace(from, to)).unwrap();
            s.check().unwrap_err()
        };
        assert!(bad("requests = true", "requests = false").contains("Client Control"));
        assert!(bad("in_phase = \"storm\"", "in_phase = \"nope\"").contains("nope"));
        assert!(bad("agents_in_calls = 0.5", "agents_in_calls = 0").contains("agents_in_calls"));
        assert!(bad("[2, 3, 4]", "[]").contains("agent_states"));
        assert!(bad("[2, 3, 4]", "[2, 30]").contains("30"));
        assert!(bad(
            "reconnect_in_phase = \"storm\"",
            "reconnect_in_phase = \"storm\"\n        open_in_phase = \"storm\""
        )
        .contains("open before"));
        assert!(bad(
            "reconnect_in_phase = \"storm\"",
            "reconnect_in_phase = \"calm\""
        )
        .contains("no group reconnects"));
        // The defaults leave the stream as it was.
        let plain: Scenario = toml::from_str(DESKTOPS).unwrap();
        assert_eq!(plain.load.agent_states, [3]);
        assert_eq!(plain.load.agents_in_calls, 1.0);
        assert!(!plain.checks_answers() && plain.primes());
    }

    #[test]
    fn the_default_max_sessions_is_the_routers() {
        let limits = ctirouter::config::Limits::default();
        assert_eq!(DEFAULT_MAX_SESSIONS, limits.max_sessions);
    }

    #[test]
    fn sessions_over_max_sessions_need_the_key() {
        let big = |extra: &str| {
            let text = format!(
                "name = \"b\"\nload = {{ agents = 1 }}\n{extra}\n\
                 [[groups]]\nname = \"ae\"\nservice = \"all-events\"\ncount = 12000\n\
                 [[groups]]\nname = \"direct\"\nservice = \"client-events\"\ncount = 1\ndirect = true\n\
                 [[phases]]\nname = \"p\"\nrate = 0\nduration_secs = 1\n"
            );
            let s: Scenario = toml::from_str(&text).unwrap();
            s.check().map(|()| s)
        };
        let err = big("").unwrap_err();
        assert!(
            err.contains("12000 sessions") && err.contains("max_sessions is 10000"),
            "{err}"
        );
        let s = big("[router]\nmax_sessions = 12500").unwrap();
        assert_eq!(s.router.max_sessions, Some(12_500));
        assert_eq!(
            (s.router_sessions(), s.harness_session_fds()),
            (12_000, 12_002)
        );
    }

    #[test]
    fn heartbeats_default_to_synchronized_and_may_be_spread() {
        let s: Scenario = toml::from_str(DESKTOPS).unwrap();
        assert_eq!(s.load.heartbeats, Mode::Synchronized);
        let spread = DESKTOPS.replace(
            "load = { agents = 30 }",
            "load = { agents = 30, heartbeats = \"spread\" }",
        );
        let s: Scenario = toml::from_str(&spread).unwrap();
        assert_eq!(s.load.heartbeats, Mode::Spread);
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
