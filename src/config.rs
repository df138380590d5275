//! Router configuration: every setting with its documented default, loaded
//! from a TOML file (`--config`) and then overridden by command-line flags.
//! `ctirouter.example.toml` in the repository documents each key.

use crate::ids::Services;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::proto::constants::service;
use crate::sim::SimConfig;

/// Default listen address: the CTI Server's own port (docs/protocol.md §1).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:42027";
/// Default admin listener address (`[admin] listen`, `serve --admin`): 9427
/// is free in the Prometheus exporters' port list; loopback, so nothing is
/// exposed unless asked for.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9427";
/// Default per-session bound on unsent output (docs/design.md §4.13).
pub const DEFAULT_OUTPUT_BOUND: usize = 8 * 1024 * 1024;
/// Default time a connection has to complete its OPEN (seconds).
pub const DEFAULT_OPEN_TIMEOUT_SECS: u64 = 10;
/// Default bound on connections not yet open, router-wide.
pub const DEFAULT_MAX_PENDING_OPENS: usize = 1_000;
/// Most shards a router can run: the interest table's shard mask is a `u64`.
pub const MAX_SHARDS: usize = crate::ingest::interest::ShardMask::BITS as usize;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address every shard listens on (SO_REUSEPORT spreads accepts).
    pub listen: SocketAddr,
    /// Upstream CTI Server; absent means the built-in simulated PG.
    pub upstream: Option<UpstreamConfig>,
    /// A recorded stream to serve instead of an upstream (`serve --replay`).
    pub replay: Option<ReplayConfig>,
    /// The built-in PG simulator (used when there is no upstream).
    pub simulator: SimConfig,
    /// Pace of the simulator: simulated seconds per real second; 0 = as fast
    /// as the router takes events (benchmarks).
    pub sim_speed: f64,
    /// Stop the simulator after this many events (tests, benchmarks); the
    /// router keeps serving sessions until it is stopped.
    pub sim_max_events: Option<u64>,
    /// Optional allow-list; empty means anyone may open any service.
    pub clients: Vec<ClientEntry>,
    pub limits: Limits,
    pub requests: RequestsConfig,
    pub runtime: RuntimeConfig,
    /// The admin HTTP listener (metrics, health, status page).
    pub admin: AdminConfig,
    /// The secured client port beside the clear one (`[tls]`).
    pub tls: TlsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("constant address parses"),
            upstream: None,
            replay: None,
            simulator: SimConfig::default(),
            sim_speed: 1.0,
            sim_max_events: None,
            clients: Vec::new(),
            limits: Limits::default(),
            requests: RequestsConfig::default(),
            runtime: RuntimeConfig::default(),
            admin: AdminConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Side A and optionally side B, `host:port`; tried alternately.
    pub sides: Vec<String>,
    /// Protocol version the router opens upstream with (13..=24).
    pub version: u32,
    pub client_id: String,
    pub password: String,
    /// Seconds between heartbeats; 3 missed confirmations = upstream lost.
    /// IdleTimeout in OPEN_REQ is 4× this, at least 20 s (docs/protocol.md §6.3).
    pub heartbeat_secs: u64,
    /// Milliseconds between heartbeats, overriding `heartbeat_secs` when set
    /// (sub-second periods for tests; real CTI Servers want ≥ 5 s).
    pub heartbeat_ms: Option<u64>,
    /// First wait before reconnecting after a loss; doubles per failed try.
    pub reconnect_min_ms: u64,
    /// Longest wait between reconnect attempts (plus up to 25% jitter).
    pub reconnect_max_ms: u64,
    /// The services the router asks the CTI Server for (never IGNORE_CONF).
    /// What it grants bounds what downstream sessions can be granted.
    pub services: Vec<ServiceName>,
    /// Speak TLS to the CTI Server (both sides).
    pub tls: bool,
    /// PEM file of the CA(s) the CTI Server's certificate must chain to
    /// (required with `tls`).
    pub ca: Option<PathBuf>,
    /// The name the CTI Server's certificate must carry; default: the host
    /// of the side's address (a DNS name or an IP address).
    pub server_name: Option<String>,
    /// Client certificate chain (PEM) for a CTI Server that asks for one.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            sides: Vec::new(),
            version: 24,
            client_id: "ctirouter".into(),
            password: String::new(),
            heartbeat_secs: 5,
            heartbeat_ms: None,
            reconnect_min_ms: 100,
            reconnect_max_ms: 5_000,
            services: vec![
                ServiceName::AllEvents,
                ServiceName::ClientControl,
                ServiceName::CallDataUpdate,
                ServiceName::ConnectionMonitor,
            ],
            tls: false,
            ca: None,
            server_name: None,
            cert: None,
            key: None,
        }
    }
}

impl UpstreamConfig {
    /// The heartbeat period.
    pub fn heartbeat(&self) -> Duration {
        match self.heartbeat_ms {
            Some(ms) => Duration::from_millis(ms),
            None => Duration::from_secs(self.heartbeat_secs),
        }
    }

    /// ServicesRequested of the upstream OPEN_REQ.
    pub fn services(&self) -> Services {
        Services(self.services.iter().fold(0, |bits, s| bits | s.bit()))
    }

    /// Side A and B as given, and the limits of each setting (the files
    /// the TLS keys name are loaded by `tls::check`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.services().contains(Services::ALL_EVENTS) {
            return Err(ConfigError(
                "upstream.services must include \"all-events\": the router serves events from it"
                    .into(),
            ));
        }
        if self.sides.is_empty() || self.sides.len() > 2 {
            return Err(ConfigError(format!(
                "upstream.sides (--upstream): give side A and optionally side B (got {} sides)",
                self.sides.len()
            )));
        }
        if self.sides.iter().any(|s| s.trim().is_empty()) {
            return Err(ConfigError(
                "upstream.sides (--upstream): a side address is empty".into(),
            ));
        }
        if crate::proto::Version::new(self.version).is_none() {
            return Err(ConfigError(format!(
                "upstream.version (--upstream-version) is {}: give one of 13..=24",
                self.version
            )));
        }
        if self.heartbeat().is_zero() {
            return Err(ConfigError(
                "upstream.heartbeat_secs / heartbeat_ms: the heartbeat period must be above 0"
                    .into(),
            ));
        }
        if self.reconnect_min_ms > self.reconnect_max_ms {
            return Err(ConfigError(format!(
                "upstream.reconnect_min_ms ({}) is above upstream.reconnect_max_ms ({})",
                self.reconnect_min_ms, self.reconnect_max_ms
            )));
        }
        self.validate_tls()
    }

    /// The TLS keys agree with each other.
    fn validate_tls(&self) -> Result<(), ConfigError> {
        if !self.tls {
            let set = [
                ("ca", self.ca.is_some()),
                ("server_name", self.server_name.is_some()),
                ("cert", self.cert.is_some()),
                ("key", self.key.is_some()),
            ];
            if let Some((key, _)) = set.iter().find(|(_, set)| *set) {
                return Err(ConfigError(format!(
                    "upstream.{key} is set but upstream.tls is false: set tls = true, or remove it"
                )));
            }
        }
        Ok(())
    }
}

/// `[tls]`: the secured client port, served beside the clear one by every
/// shard; sessions on it behave exactly as on the clear port.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// `host:port` of the TLS port (port 0 picks one); absent = no TLS port.
    pub listen: Option<SocketAddr>,
    /// The router's certificate chain, PEM (leaf first).
    pub cert: Option<PathBuf>,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// PEM file of the CA(s) client certificates must chain to; when set,
    /// a client without such a certificate is refused.
    pub client_ca: Option<PathBuf>,
}

impl TlsConfig {
    /// `listen` goes with `cert` and `key` (`tls::check` loads the files).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.is_none() {
            let set = [
                ("cert", self.cert.is_some()),
                ("key", self.key.is_some()),
                ("client_ca", self.client_ca.is_some()),
            ];
            if let Some((key, _)) = set.iter().find(|(_, set)| *set) {
                return Err(ConfigError(format!(
                    "tls.{key} is set but tls.listen (--tls-listen) is not: give the TLS port's \
                     address, or remove it"
                )));
            }
        }
        Ok(())
    }
}

/// A recorded stream file and how fast to play it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    pub path: std::path::PathBuf,
    /// 1 = real time, 0 = as fast as possible.
    #[serde(default = "one")]
    pub speed: f64,
    /// Hold the replay until this many downstream sessions are open (0 =
    /// start at once), so a fast replay is not over before anyone listens.
    #[serde(default)]
    pub wait_for_sessions: usize,
}

fn one() -> f64 {
    1.0
}

impl ReplayConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.speed.is_finite() && self.speed >= 0.0) {
            return Err(ConfigError(format!(
                "replay.speed (--speed) is {}: give 0 (as fast as possible) or more",
                self.speed
            )));
        }
        Ok(())
    }
}

/// One entry of the client allow-list.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientEntry {
    pub client_id: String,
    #[serde(default)]
    pub password: String,
    /// Services this client may be granted; absent = all the router
    /// serves, except (with a real upstream) the request services, which
    /// must be listed.
    #[serde(default)]
    pub services: Option<Vec<ServiceName>>,
    /// Proxied requests one session of this client may have in flight
    /// (default `[requests] max_outstanding`).
    #[serde(default)]
    pub max_outstanding: Option<usize>,
    /// What this client's All Events and Peripheral Monitor sessions may
    /// act on (Client Events sessions act on their own agent only).
    #[serde(default)]
    pub control_scope: ControlScope,
}

/// `[[clients]] control_scope` (docs/requests.md §3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ControlScope {
    /// Any agent, device and call, as on the CTI Server.
    #[default]
    Any,
    /// Only the devices and calls the session monitors.
    Monitored,
    /// Nothing: no request service is granted to such sessions.
    None,
}

/// Requests proxied to the CTI Server (docs/requests.md §5).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestsConfig {
    /// Seconds the CTI Server has to answer; then FAILURE_CONF(E_CTI_TIMEOUT)
    /// and a late reply is dropped.
    pub timeout_secs: u64,
    /// Requests in flight router-wide; over it CONTROL_FAILURE_CONF(CF_SERVICE_BUSY).
    pub max_pending: usize,
    /// Requests in flight per session, unless its client entry says otherwise.
    pub max_outstanding: usize,
    /// QUERY_AGENT_STATISTICS / QUERY_SKILL_GROUP_STATISTICS: at most one
    /// per key reaches the CTI Server in this many seconds; askers in
    /// between get its answer (docs/requests.md §6).
    pub statistics_min_interval_secs: u64,
}

impl Default for RequestsConfig {
    fn default() -> Self {
        RequestsConfig {
            timeout_secs: 15,
            max_pending: 4096,
            max_outstanding: 8,
            statistics_min_interval_secs: 5,
        }
    }
}

impl RequestsConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn statistics_min_interval(&self) -> Duration {
        Duration::from_secs(self.statistics_min_interval_secs)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.timeout_secs == 0 {
            return Err(ConfigError(
                "requests.timeout_secs must be above 0: every request would time out".into(),
            ));
        }
        Ok(())
    }
}

/// Service names as written in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceName {
    ClientEvents,
    AllEvents,
    PeripheralMonitor,
    ClientMonitor,
    CallDataUpdate,
    ClientControl,
    ConnectionMonitor,
    Supervisor,
    /// The Server service: register a service (a recording server).
    Server,
}

impl ServiceName {
    /// The ServicesRequested bit (docs/protocol.md §5.1).
    pub fn bit(self) -> u32 {
        match self {
            ServiceName::ClientEvents => service::CLIENT_EVENTS,
            ServiceName::AllEvents => service::ALL_EVENTS,
            ServiceName::PeripheralMonitor => service::PERIPHERAL_MONITOR,
            ServiceName::ClientMonitor => service::CLIENT_MONITOR,
            ServiceName::CallDataUpdate => service::CALL_DATA_UPDATE,
            ServiceName::ClientControl => service::CLIENT_CONTROL,
            ServiceName::ConnectionMonitor => service::CONNECTION_MONITOR,
            ServiceName::Supervisor => service::SUPERVISOR,
            ServiceName::Server => service::SERVER,
        }
    }
}

impl ClientEntry {
    /// The ServicesRequested bits this client may be granted.
    pub fn allowed_services(&self) -> Services {
        match &self.services {
            None => Services(u32::MAX),
            // Client Control covers its agent-state-only form.
            Some(list) => Services(list.iter().fold(0, |bits, s| match s {
                ServiceName::ClientControl => bits | s.bit() | service::AGENT_STATE_CONTROL_ONLY,
                _ => bits | s.bit(),
            })),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Open sessions at once, router-wide; an OPEN_REQ over it gets
    /// FAILURE_CONF(E_CTI_UNSPECIFIED_FAILURE) and a close. Connections not
    /// yet open do not count (see `max_pending_opens`).
    pub max_sessions: usize,
    /// Connections not yet open (no OPEN_CONF sent), router-wide; a new
    /// connection over it is closed at once. Default 1,000.
    pub max_pending_opens: usize,
    /// Seconds a connection has to complete its OPEN before it is closed
    /// (0 = no limit). Default 10.
    pub open_timeout_secs: u64,
    /// Unsent bytes per session before the slow-consumer close.
    pub output_bound_bytes: usize,
    /// Seconds after which a call that never saw its end is forgotten.
    pub call_max_age_secs: u64,
    /// Supervisor sessions at once, router-wide: each holds its own
    /// session on the CTI Server (docs/requests.md §7); an OPEN_REQ for
    /// Supervisor over it gets FAILURE_CONF(E_CTI_UNSPECIFIED_FAILURE).
    /// Default 200.
    pub max_supervisor_sessions: usize,
}

impl Limits {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.output_bound_bytes == 0 {
            return Err(ConfigError(
                "limits.output_bound_bytes (--output-bound) must be above 0: it would cut every \
                 session"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_max_age_secs: 4 * 3600,
            max_sessions: 10_000,
            max_pending_opens: DEFAULT_MAX_PENDING_OPENS,
            open_timeout_secs: DEFAULT_OPEN_TIMEOUT_SECS,
            output_bound_bytes: DEFAULT_OUTPUT_BOUND,
            max_supervisor_sessions: DEFAULT_MAX_SUPERVISOR_SESSIONS,
        }
    }
}

/// [`Limits::max_supervisor_sessions`] unless set: supervisors are a few
/// percent of a large PG's agents.
pub const DEFAULT_MAX_SUPERVISOR_SESSIONS: usize = 200;

/// [`RuntimeConfig::io_ring_depth`] unless set: 64 poll buckets, and three
/// rings of it per executor fit RLIMIT_MEMLOCK's 8 MiB beside the default
/// `io_memory_bytes` on a 4-core host.
pub const DEFAULT_IO_RING_DEPTH: usize = 1024;
/// The nice values a thread can have: -20 runs first, 19 last.
pub const NICE: std::ops::RangeInclusive<i32> = -20..=19;
/// Shallowest io_uring accepted (glommio's own default).
pub const MIN_IO_RING_DEPTH: usize = 128;
/// Deepest io_uring accepted (the kernel's limit on submission entries).
pub const MAX_IO_RING_DEPTH: usize = 32768;

/// Threads, cores and queues. A tuning file (`--tuning`) sets these.
/// Number of CPUs this process may run on (what the runtime settings are
/// checked against).
pub fn nr_cores() -> usize {
    core_affinity::get_core_ids()
        .map_or(1, |ids| ids.len())
        .max(1)
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Shard executors; 0 = one per core after the ingest core, at least 1.
    pub shards: usize,
    /// Core of the ingest executor; `None` = core 0.
    pub ingest_core: Option<usize>,
    /// Cores of the shard executors; `None` = the cores after the ingest
    /// core, wrapping around when there are more shards than cores.
    pub shard_cores: Option<Vec<usize>>,
    /// Whether executors are pinned at all (a pin that fails is an error).
    pub pin: bool,
    /// Run ingest on the executor of the shard pinned to its core, one
    /// thread for both (docs/design.md §1, "One thread per core"): about a
    /// third less CPU at PG rates, but ingest's upstream reads queue behind
    /// that shard's tasks, so 2,000 heartbeats arriving together delay
    /// events by tens of milliseconds. Off: a thread each.
    pub share_ingest_thread: bool,
    /// Nice value of the ingest thread, -20–19 (0 = the process's own). On
    /// a core that ingest shares with a shard (the 2-core benchmark layout,
    /// a 1-core host) or with anything else, a lower value lets ingest — the
    /// head of the event path — take the core as soon as it wakes instead of
    /// waiting out another thread's time slice, for example while 2,000
    /// desktops re-open on the shard (docs/design.md §1). Below 0 needs
    /// CAP_SYS_NICE or RLIMIT_NICE (`LimitNICE=` in a systemd unit); refused,
    /// the thread keeps its priority and the router says so.
    pub ingest_nice: i32,
    /// Nice value of each shard thread, -20–19 (0 = the process's own).
    /// Raising it needs no privilege, but a shard above 0 also yields to
    /// every other process on its core.
    pub shard_nice: i32,
    /// Microseconds a core spins looking for work before it parks. A wake-up
    /// costs ~20–25 µs on the development VMs (docs/design.md §5), so a short spin
    /// pays when events are dense; 0 never spins (tests, shared cores).
    pub spin_before_park_us: u64,
    /// Slots of each ingest→shard ring.
    pub ring_capacity: usize,
    /// Events staged per shard before a flush (also flushed at every read end).
    pub batch_size: usize,
    /// io_uring registered memory per executor (≤ 1 MiB runs without root:
    /// RLIMIT_MEMLOCK is 8 MiB on the target machines).
    pub io_memory_bytes: usize,
    /// Entries of each executor's io_uring rings (a power of two,
    /// [`MIN_IO_RING_DEPTH`]..=[`MAX_IO_RING_DEPTH`]). Beyond room for
    /// batches, the depth sizes the kernel's table of armed polls: it hashes
    /// them into 2^(log2(2 × depth) − 5) buckets, at most 256, and walks one
    /// bucket on every cancel — each timer an executor drops first searches
    /// the polls, and every idle session holds one. At glommio's default of
    /// 128 that is 8 buckets: a shard holding 2,000 sessions walked ~250
    /// entries per cancel (11.6% of the router's CPU in the reconnect storm).
    /// Deeper rings cost locked memory (three rings per executor, charged to
    /// RLIMIT_MEMLOCK beside `io_memory_bytes` for a user without
    /// CAP_IPC_LOCK): as such a user with the usual 8 MiB, a router of two
    /// executors starts at 2,048 and does not at 4,096.
    pub io_ring_depth: usize,
    /// Kernel socket buffer sizes for client sockets (0 = kernel default).
    pub socket_send_buffer: usize,
    pub socket_recv_buffer: usize,
    /// Seconds between `serve`'s log lines of counters and fan-out latency;
    /// 0 = only the last one, when it stops.
    pub stats_log_secs: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            shards: 0,
            ingest_core: None,
            shard_cores: None,
            pin: true,
            share_ingest_thread: false,
            ingest_nice: 0,
            shard_nice: 0,
            spin_before_park_us: 50,
            ring_capacity: 4096,
            batch_size: 64,
            io_memory_bytes: 512 * 1024,
            io_ring_depth: DEFAULT_IO_RING_DEPTH,
            socket_send_buffer: 0,
            socket_recv_buffer: 0,
            stats_log_secs: 60,
        }
    }
}

impl RuntimeConfig {
    pub fn spin_before_park(&self) -> Duration {
        Duration::from_micros(self.spin_before_park_us)
    }

    /// Shard executors on a machine of `nr_cores` cores: `shards`, else one
    /// per listed shard core, else one per core after the ingest core (at
    /// least 1, at most [`MAX_SHARDS`]).
    pub fn nr_shards(&self, nr_cores: usize) -> usize {
        match (self.shards, &self.shard_cores) {
            (0, Some(cores)) if !cores.is_empty() => cores.len(),
            (0, _) => nr_cores.saturating_sub(1).clamp(1, MAX_SHARDS),
            (n, _) => n,
        }
    }

    /// The `[runtime]` rules on a machine of `nr_cores` cores (the cores
    /// named are checked only when executors are pinned).
    pub fn validate(&self, nr_cores: usize) -> Result<(), ConfigError> {
        let nr_listed = self.shard_cores.as_ref().map_or(0, Vec::len);
        let message = if self.shard_cores.as_ref().is_some_and(Vec::is_empty) {
            "runtime.shard_cores is empty: list at least one core, or leave it out".to_string()
        } else if self.shards > MAX_SHARDS {
            format!(
                "runtime.shards (--shards) is {}: at most {MAX_SHARDS} shards (the interest \
                 table's shard mask is {MAX_SHARDS} bits)",
                self.shards
            )
        } else if nr_listed > MAX_SHARDS {
            format!(
                "runtime.shard_cores lists {nr_listed} cores: at most {MAX_SHARDS} shards (the \
                 interest table's shard mask is {MAX_SHARDS} bits)"
            )
        } else if self.shards > 0 && self.shards < nr_listed {
            format!(
                "runtime.shards is {} but runtime.shard_cores lists {nr_listed} cores: {} would \
                 stay idle",
                self.shards,
                nr_listed - self.shards
            )
        } else if let Some((setting, nice)) = [
            ("ingest_nice", self.ingest_nice),
            ("shard_nice", self.shard_nice),
        ]
        .into_iter()
        .find(|(_, nice)| !NICE.contains(nice))
        {
            format!(
                "runtime.{setting} is {nice}: a nice value from {} (first) to {} (last)",
                NICE.start(),
                NICE.end()
            )
        } else if self.batch_size == 0 {
            "runtime.batch_size must be at least 1".to_string()
        } else if !self.io_ring_depth.is_power_of_two()
            || !(MIN_IO_RING_DEPTH..=MAX_IO_RING_DEPTH).contains(&self.io_ring_depth)
        {
            format!(
                "runtime.io_ring_depth is {}: a power of two from {MIN_IO_RING_DEPTH} to \
                 {MAX_IO_RING_DEPTH}",
                self.io_ring_depth
            )
        } else if self.ring_capacity < self.batch_size {
            format!(
                "runtime.ring_capacity ({}) is smaller than runtime.batch_size ({}): no batch \
                 could be published whole",
                self.ring_capacity, self.batch_size
            )
        } else if let Some((setting, core)) = self.missing_core(nr_cores) {
            format!(
                "{setting}: core {core} does not exist on this {nr_cores}-core machine (cores \
                 0..={})",
                nr_cores.saturating_sub(1)
            )
        } else {
            return Ok(());
        };
        Err(ConfigError(message))
    }

    /// The first core named for an executor that the machine lacks.
    fn missing_core(&self, nr_cores: usize) -> Option<(&'static str, usize)> {
        if !self.pin {
            return None;
        }
        let ingest = self.ingest_core.map(|c| ("runtime.ingest_core", c));
        let shards = self.shard_cores.iter().flatten();
        ingest
            .into_iter()
            .chain(shards.map(|&c| ("runtime.shard_cores", c)))
            .find(|&(_, core)| core >= nr_cores)
    }
}

/// `[admin]`: the HTTP listener for `/metrics`, `/healthz`, `/status` and
/// `/status.json`, served by a thread of its own (never a router core).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// `host:port` (port 0 picks one), or `""` / `"off"` for no listener.
    pub listen: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: DEFAULT_ADMIN_LISTEN.into(),
        }
    }
}

impl AdminConfig {
    /// The address to listen on; `None` when the listener is turned off.
    pub fn addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let listen = self.listen.trim();
        if listen.is_empty() || listen.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        listen.parse().map(Some).map_err(|e| {
            ConfigError(format!(
                "admin.listen (--admin) is {listen:?}: give host:port (an IP address), \"\" or \"off\" ({e})"
            ))
        })
    }
}

/// A config error: which file and what is wrong with it.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Every rule a configuration's values must pass, on this machine.
    /// `Router::start` calls it first, so every way of starting a router is
    /// checked alike; [`crate::tls::check`] then loads the files it names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_on(nr_cores())
    }

    /// [`Config::validate`] on a machine of `nr_cores` cores.
    pub fn validate_on(&self, nr_cores: usize) -> Result<(), ConfigError> {
        self.runtime.validate(nr_cores)?;
        self.limits.validate()?;
        self.requests.validate()?;
        self.admin.addr()?;
        self.tls.validate()?;
        if self.tls.listen == Some(self.listen) && self.listen.port() != 0 {
            return Err(ConfigError(format!(
                "tls.listen (--tls-listen) is {}, the clear port (listen): give the TLS port one \
                 of its own",
                self.listen
            )));
        }
        // A replay is served instead of the upstream (`[upstream]` is unused).
        match (&self.replay, &self.upstream) {
            (Some(replay), _) => replay.validate(),
            (None, Some(upstream)) => upstream.validate(),
            (None, None) => Ok(()),
        }
    }

    /// Load a TOML config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string()))
    }

    /// The configuration as TOML, every key written out, passwords hidden
    /// (`ctirouter check-config`).
    pub fn effective_toml(&self) -> Result<String, ConfigError> {
        let mut shown = self.clone();
        let hide = |password: &mut String| {
            if !password.is_empty() {
                *password = "(hidden)".into();
            }
        };
        if let Some(upstream) = shown.upstream.as_mut() {
            hide(&mut upstream.password);
        }
        for client in &mut shown.clients {
            hide(&mut client.password);
        }
        toml::to_string(&shown).map_err(|e| ConfigError(format!("writing TOML: {e}")))
    }

    /// The allow-list entry for a ClientID, if a list is configured.
    pub fn client(&self, client_id: &[u8]) -> Option<&ClientEntry> {
        self.clients
            .iter()
            .find(|c| c.client_id.as_bytes() == client_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../ctirouter.example.toml");
        let config = Config::parse(text).unwrap();
        assert_eq!(config.clients.len(), 1);
        assert_eq!(config.limits.output_bound_bytes, DEFAULT_OUTPUT_BOUND);
        assert_eq!(config.limits.open_timeout_secs, DEFAULT_OPEN_TIMEOUT_SECS);
        assert_eq!(config.limits.max_pending_opens, DEFAULT_MAX_PENDING_OPENS);
    }

    #[test]
    fn upstream_services_and_request_limits_parse_and_are_checked() {
        let config = Config::parse(
            "[upstream]\nsides = [\"a:1\"]\nservices = [\"all-events\", \"call-data-update\"]\n\
             [requests]\ntimeout_secs = 3\nmax_pending = 10\nmax_outstanding = 2\n\
             [[clients]]\nclient_id = \"d\"\nservices = [\"client-control\"]\nmax_outstanding = 4\n",
        )
        .unwrap();
        let upstream = config.upstream.as_ref().unwrap();
        assert_eq!(
            upstream.services(),
            Services::ALL_EVENTS | Services::CALL_DATA_UPDATE
        );
        assert_eq!(UpstreamConfig::default().services().bits(), 0x1E);
        assert_eq!(config.requests.timeout(), Duration::from_secs(3));
        assert_eq!(config.clients[0].max_outstanding, Some(4));
        // Client Control covers its agent-state-only grant.
        assert!(config.clients[0]
            .allowed_services()
            .contains(Services::AGENT_STATE_CONTROL_ONLY));
        config.validate_on(4).unwrap();

        let mut no_events = config.clone();
        no_events.upstream.as_mut().unwrap().services = vec![ServiceName::ClientControl];
        assert!(refusal(&no_events).starts_with("upstream.services must include"));
        let mut no_time = config;
        no_time.requests.timeout_secs = 0;
        assert!(refusal(&no_time).starts_with("requests.timeout_secs must be above 0"));
    }

    #[test]
    fn the_admin_listener_is_an_address_or_off() {
        let addr = |listen: &str| {
            let admin = AdminConfig {
                listen: listen.into(),
            };
            admin.addr().map_err(|e| e.0)
        };
        assert_eq!(
            addr(DEFAULT_ADMIN_LISTEN).unwrap(),
            Some("127.0.0.1:9427".parse().unwrap())
        );
        assert_eq!(addr("").unwrap(), None);
        assert_eq!(addr("off").unwrap(), None);
        assert!(addr("localhost:9427")
            .unwrap_err()
            .starts_with("admin.listen (--admin)"));
        let mut config = Config::default();
        config.admin.listen = "nowhere".into();
        assert!(refusal(&config).starts_with("admin.listen"));
    }

    #[test]
    fn the_effective_config_reads_back_with_passwords_hidden() {
        let mut config = Config::parse(include_str!("../ctirouter.example.toml")).unwrap();
        config.upstream = Some(UpstreamConfig {
            sides: vec!["a:1".into()],
            password: "pw".into(),
            ..UpstreamConfig::default()
        });
        let text = config.effective_toml().unwrap();
        assert!(
            !text.contains("s3cret") && !text.contains("\"pw\""),
            "{text}"
        );
        let back = Config::parse(&text).unwrap();
        assert_eq!(back.upstream.unwrap().sides, vec!["a:1".to_string()]);
        assert_eq!(back.admin.listen, DEFAULT_ADMIN_LISTEN);
        assert_eq!(back.runtime.batch_size, config.runtime.batch_size);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(Config::parse("listn = \"1.2.3.4:5\"").is_err());
    }

    /// A change that breaks one rule, and the start of the error it gets.
    type Case<T> = (fn(&mut T), &'static str);

    /// The error `validate_on` gives for `config` on a 4-core machine.
    fn refusal(config: &Config) -> String {
        match config.validate_on(4) {
            Ok(()) => panic!("accepted: {config:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn the_default_and_example_configs_pass() {
        Config::default().validate_on(1).unwrap();
        Config::default().validate().unwrap();
        let example = Config::parse(include_str!("../ctirouter.example.toml")).unwrap();
        example.validate_on(4).unwrap();
    }

    #[test]
    fn each_runtime_rule_refuses_naming_its_setting_and_limit() {
        let cases: [Case<RuntimeConfig>; 12] = [
            (
                |rt| rt.ingest_nice = -21,
                "runtime.ingest_nice is -21: a nice value from -20 (first) to 19 (last)",
            ),
            (
                |rt| rt.shard_nice = 20,
                "runtime.shard_nice is 20: a nice value from -20 (first) to 19 (last)",
            ),
            (
                |rt| rt.io_ring_depth = 1000,
                "runtime.io_ring_depth is 1000: a power of two from 128 to 32768",
            ),
            (
                |rt| rt.io_ring_depth = 65536,
                "runtime.io_ring_depth is 65536: a power of two from 128 to 32768",
            ),
            (
                |rt| rt.shards = MAX_SHARDS + 1,
                "runtime.shards (--shards) is 65: at most 64 shards",
            ),
            (
                |rt| rt.shard_cores = Some(vec![0; MAX_SHARDS + 1]),
                "runtime.shard_cores lists 65 cores: at most 64 shards",
            ),
            (
                |rt| rt.shard_cores = Some(vec![]),
                "runtime.shard_cores is empty",
            ),
            (
                |rt| {
                    rt.shards = 1;
                    rt.shard_cores = Some(vec![1, 2]);
                },
                "runtime.shards is 1 but runtime.shard_cores lists 2 cores: 1 would stay idle",
            ),
            (
                |rt| rt.batch_size = 0,
                "runtime.batch_size must be at least 1",
            ),
            (
                |rt| {
                    rt.ring_capacity = 8;
                    rt.batch_size = 64;
                },
                "runtime.ring_capacity (8) is smaller than runtime.batch_size (64)",
            ),
            (
                |rt| rt.ingest_core = Some(4),
                "runtime.ingest_core: core 4 does not exist on this 4-core machine (cores 0..=3)",
            ),
            (
                |rt| rt.shard_cores = Some(vec![1, 7]),
                "runtime.shard_cores: core 7 does not exist on this 4-core machine (cores 0..=3)",
            ),
        ];
        for (break_it, expected) in cases {
            let mut config = Config::default();
            break_it(&mut config.runtime);
            let message = refusal(&config);
            assert!(message.starts_with(expected), "{message}");
        }
    }

    #[test]
    fn cores_are_checked_only_when_pinned() {
        let mut config = Config::default();
        config.runtime.shard_cores = Some(vec![1, 7]);
        config.runtime.pin = false;
        config.validate_on(4).unwrap();
    }

    #[test]
    fn the_output_bound_must_be_above_zero() {
        let mut config = Config::default();
        config.limits.output_bound_bytes = 0;
        assert!(refusal(&config).starts_with("limits.output_bound_bytes (--output-bound)"));
    }

    #[test]
    fn each_upstream_rule_refuses_naming_its_setting() {
        let cases: [Case<UpstreamConfig>; 6] = [
            (
                |u| u.sides.clear(),
                "upstream.sides (--upstream): give side A and optionally side B (got 0 sides)",
            ),
            (
                |u| u.sides = vec!["a:1".into(), "b:1".into(), "c:1".into()],
                "upstream.sides (--upstream): give side A and optionally side B (got 3 sides)",
            ),
            (
                |u| u.sides = vec!["a:1".into(), " ".into()],
                "upstream.sides (--upstream): a side address is empty",
            ),
            (
                |u| u.version = 12,
                "upstream.version (--upstream-version) is 12: give one of 13..=24",
            ),
            (
                |u| u.heartbeat_ms = Some(0),
                "upstream.heartbeat_secs / heartbeat_ms: the heartbeat period must be above 0",
            ),
            (
                |u| u.reconnect_min_ms = u.reconnect_max_ms + 1,
                "upstream.reconnect_min_ms (5001) is above upstream.reconnect_max_ms (5000)",
            ),
        ];
        for (break_it, expected) in cases {
            let mut upstream = UpstreamConfig {
                sides: vec!["127.0.0.1:42067".into()],
                ..UpstreamConfig::default()
            };
            let mut config = Config {
                upstream: Some(upstream.clone()),
                ..Config::default()
            };
            config.validate_on(4).unwrap();
            break_it(&mut upstream);
            config.upstream = Some(upstream);
            assert_eq!(refusal(&config), expected);
        }
    }

    #[test]
    fn replay_speed_must_be_zero_or_more_and_a_replay_ignores_upstream() {
        let mut config = Config {
            replay: Some(ReplayConfig {
                path: "x.ctirec".into(),
                speed: 0.0,
                wait_for_sessions: 0,
            }),
            upstream: Some(UpstreamConfig::default()), // no sides: unused
            ..Config::default()
        };
        config.validate_on(4).unwrap();
        for speed in [-1.0, f64::NAN, f64::INFINITY] {
            config.replay.as_mut().unwrap().speed = speed;
            assert!(
                refusal(&config).starts_with("replay.speed (--speed) is "),
                "{speed}"
            );
        }
    }

    #[test]
    fn tls_keys_need_the_key_that_turns_them_on() {
        let mut config = Config::default();
        config.tls.cert = Some("router.pem".into());
        assert!(refusal(&config).starts_with("tls.cert is set but tls.listen"));
        // (That the files load is `tls::check`'s, tested there.)
        let config = Config {
            upstream: Some(UpstreamConfig {
                sides: vec!["a:1".into()],
                ca: Some("pg-ca.pem".into()),
                ..UpstreamConfig::default()
            }),
            ..Config::default()
        };
        assert!(refusal(&config).starts_with("upstream.ca is set but upstream.tls is false"));
    }

    #[test]
    fn client_services_become_bits() {
        let c = Config::parse(
            "[[clients]]\nclient_id = \"r\"\nservices = [\"all-events\", \"client-monitor\"]\n",
        )
        .unwrap();
        assert_eq!(c.clients[0].allowed_services(), Services(0x50));
        let c = Config::parse("[[clients]]\nclient_id = \"r\"\nservices = [\"server\"]\n").unwrap();
        assert_eq!(c.clients[0].allowed_services(), Services::SERVER);
    }
}
