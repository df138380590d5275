//! Core-pinning tuning files (`serve --tuning FILE`, `ctirouter tune`):
//! which cores run ingest and the shards, and how rings, batches, socket
//! buffers and the per-session output bound are sized for one kind of host.
//!
//! A tuning file is a subset of the config file: its `[runtime]` section (any
//! of `RuntimeConfig`'s keys) and `[limits].output_bound_bytes`, nothing else,
//! so one can be pasted into a config file unchanged. Every key is optional;
//! a key left out keeps the config's value. Policy (`max_sessions`, clients,
//! upstream) is not host tuning and is refused here.
//!
//! This module loads and checks files, applies them over a [`Config`], and
//! writes one for this host from its topology (sysfs). It starts nothing and
//! pins nothing: `router` does that with the result.

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use crate::config::{Config, RuntimeConfig};

pub use crate::config::MAX_SHARDS;

/// Spin before parking on a core of its own: twice the 20–25 µs a wake-up
/// costs on the idle target VMs (docs/design.md §5; a hand-off to a parked shard
/// took ~57 µs p50 against ~0.4 µs to a spinning one on a loaded VM,
/// `perf/results/ring-2026-11-21.md`). Spinning as long as a wake-up costs
/// wastes at most as much as it could save; twice that covers its tail.
pub const SPIN_DEDICATED_US: u64 = 50;
/// Ring slots: about a second of the largest PG's peak (4k events/s at 12,000
/// agents, docs/design.md §5) before ingest must wait for a shard.
pub const RING_CAPACITY: usize = 4096;
/// Events staged per flush: per item, the cross-core hand-off costs ~15×
/// more at batch 1 than at 16, and with a spinning consumer 64 halves 16's
/// cost (`perf/results/ring-2026-11-21.md`). Rings are also flushed at the
/// end of every upstream read, so this only caps a burst's batches.
pub const BATCH_SIZE: usize = 64;
/// Ingest's nice value where it shares one CPU with its shard: the
/// reconnect storm's events waited milliseconds for the shard's time slice
/// at 0 (docs/design.md §1, perf/results/nice-2026-12-07.md).
pub const SHARED_CPU_INGEST_NICE: i32 = -10;
/// io_uring memory per executor when RLIMIT_MEMLOCK allows it (the router's
/// default); glommio's floor is 64 KiB.
pub const IO_MEMORY_BYTES: usize = 512 * 1024;
const IO_MEMORY_FLOOR: usize = 64 * 1024;

/// A tuning file: `[runtime]` plus `[limits].output_bound_bytes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tuning {
    #[serde(default)]
    pub runtime: RuntimeTuning,
    #[serde(default)]
    pub limits: LimitsTuning,
    /// Where it came from ("tuning/4-core-host.toml", "this host"), so an
    /// error names the file that does not fit the machine.
    #[serde(skip)]
    pub origin: String,
    /// Why each value was chosen; `to_toml` writes them as comments.
    #[serde(skip)]
    pub notes: Vec<String>,
}

/// `RuntimeConfig`'s keys, each optional (absent = keep the config's value).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeTuning {
    pub shards: Option<usize>,
    pub ingest_core: Option<usize>,
    pub shard_cores: Option<Vec<usize>>,
    pub pin: Option<bool>,
    pub share_ingest_thread: Option<bool>,
    pub ingest_nice: Option<i32>,
    pub shard_nice: Option<i32>,
    pub spin_before_park_us: Option<u64>,
    pub ring_capacity: Option<usize>,
    pub batch_size: Option<usize>,
    pub io_memory_bytes: Option<usize>,
    pub io_ring_depth: Option<usize>,
    pub socket_send_buffer: Option<usize>,
    pub socket_recv_buffer: Option<usize>,
}

/// The one limit that is host tuning: memory per slow session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsTuning {
    pub output_bound_bytes: Option<usize>,
}

/// Why a tuning file cannot be used. Each names the file (`origin`).
#[derive(Debug)]
pub enum TuningError {
    Read {
        origin: String,
        error: std::io::Error,
    },
    Parse {
        origin: String,
        message: String,
    },
    /// Values that contradict each other, the router's limits or this
    /// machine (a core it does not have): `Config::validate`'s message.
    Invalid {
        origin: String,
        message: String,
    },
}

impl std::fmt::Display for TuningError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TuningError::Read { origin, error } => write!(f, "{origin}: {error}"),
            TuningError::Parse { origin, message } => write!(f, "{origin}: {message}"),
            TuningError::Invalid { origin, message } => write!(f, "{origin}: {message}"),
        }
    }
}

impl std::error::Error for TuningError {}

impl Tuning {
    /// Load a tuning file; errors name `path` as given.
    pub fn load(path: &Path) -> Result<Tuning, TuningError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| TuningError::Read {
            origin: origin.clone(),
            error,
        })?;
        Self::parse(&text, &origin)
    }

    /// Parse tuning text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Tuning, TuningError> {
        let mut tuning: Tuning = toml::from_str(text).map_err(|e| TuningError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        tuning.origin = origin.to_string();
        Ok(tuning)
    }

    /// Apply over `config` on a machine of `nr_cores` cores. Refuses what
    /// `[runtime]` and `[limits]` of `Config::validate` refuse (cores the
    /// machine lacks, contradictory values), naming the file; `config` is
    /// changed only when everything fits. A tuning that names `shard_cores`
    /// but not `shards` runs one shard per listed core.
    pub fn apply(&self, config: &mut Config, nr_cores: usize) -> Result<(), TuningError> {
        let mut tuned = config.clone();
        self.merge_into(&mut tuned.runtime);
        if let Some(bound) = self.limits.output_bound_bytes {
            tuned.limits.output_bound_bytes = bound;
        }
        tuned
            .runtime
            .validate(nr_cores)
            .and_then(|()| tuned.limits.validate())
            .map_err(|e| TuningError::Invalid {
                origin: self.origin_or_default(),
                message: e.0,
            })?;
        *config = tuned;
        Ok(())
    }

    fn origin_or_default(&self) -> String {
        if self.origin.is_empty() {
            "tuning".to_string()
        } else {
            self.origin.clone()
        }
    }

    fn merge_into(&self, rt: &mut RuntimeConfig) {
        let t = &self.runtime;
        if t.shard_cores.is_some() {
            rt.shards = 0;
            rt.shard_cores = t.shard_cores.clone();
        }
        set(&mut rt.shards, t.shards);
        if let Some(core) = t.ingest_core {
            rt.ingest_core = Some(core);
        }
        set(&mut rt.pin, t.pin);
        set(&mut rt.share_ingest_thread, t.share_ingest_thread);
        set(&mut rt.ingest_nice, t.ingest_nice);
        set(&mut rt.shard_nice, t.shard_nice);
        set(&mut rt.spin_before_park_us, t.spin_before_park_us);
        set(&mut rt.ring_capacity, t.ring_capacity);
        set(&mut rt.batch_size, t.batch_size);
        set(&mut rt.io_memory_bytes, t.io_memory_bytes);
        set(&mut rt.io_ring_depth, t.io_ring_depth);
        set(&mut rt.socket_send_buffer, t.socket_send_buffer);
        set(&mut rt.socket_recv_buffer, t.socket_recv_buffer);
    }

    /// A tuning for this host from its topology (sysfs), falling back to the
    /// number of cores this process may use.
    pub fn for_host() -> Tuning {
        let allowed: Vec<usize> = match core_affinity::get_core_ids() {
            Some(ids) if !ids.is_empty() => ids.into_iter().map(|id| id.id).collect(),
            _ => (0..crate::config::nr_cores()).collect(),
        };
        let read = |rel: &str| std::fs::read_to_string(Path::new(SYSFS_SYSTEM).join(rel)).ok();
        Topology::read(&read, &allowed).plan(memlock_limit())
    }

    /// The tuning as a file: the notes as comments, then the keys that are
    /// set, in the config file's sections.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# ctirouter tuning, written by `ctirouter tune`. Use it with\n\
             # `ctirouter serve --tuning FILE`. Format: the [runtime] keys and\n\
             # [limits].output_bound_bytes of the config file (ctirouter.example.toml).\n",
        );
        if !self.notes.is_empty() {
            out.push_str("#\n");
        }
        for note in &self.notes {
            let _ = writeln!(out, "# {note}");
        }
        out.push_str("\n[runtime]\n");
        let t = &self.runtime;
        key(&mut out, "shards", t.shards);
        key(&mut out, "ingest_core", t.ingest_core);
        if let Some(cores) = &t.shard_cores {
            let list: Vec<String> = cores.iter().map(usize::to_string).collect();
            let _ = writeln!(out, "shard_cores = [{}]", list.join(", "));
        }
        key(&mut out, "pin", t.pin);
        key(&mut out, "share_ingest_thread", t.share_ingest_thread);
        key(&mut out, "ingest_nice", t.ingest_nice);
        key(&mut out, "shard_nice", t.shard_nice);
        key(&mut out, "spin_before_park_us", t.spin_before_park_us);
        key(&mut out, "ring_capacity", t.ring_capacity);
        key(&mut out, "batch_size", t.batch_size);
        key(&mut out, "io_memory_bytes", t.io_memory_bytes);
        key(&mut out, "io_ring_depth", t.io_ring_depth);
        key(&mut out, "socket_send_buffer", t.socket_send_buffer);
        key(&mut out, "socket_recv_buffer", t.socket_recv_buffer);
        if let Some(bound) = self.limits.output_bound_bytes {
            let _ = writeln!(out, "\n[limits]\noutput_bound_bytes = {bound}");
        }
        out
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

fn key(out: &mut String, name: &str, value: Option<impl std::fmt::Display>) {
    if let Some(value) = value {
        let _ = writeln!(out, "{name} = {value}");
    }
}

/// Where Linux describes CPUs and NUMA nodes.
const SYSFS_SYSTEM: &str = "/sys/devices/system";

/// RLIMIT_MEMLOCK's soft limit in bytes, `None` when unlimited or unknown.
fn memlock_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which outlives the call.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// One logical CPU as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    pub id: usize,
    /// The physical core: (`physical_package_id`, `core_id`).
    pub core: (usize, usize),
    /// Logical CPUs on the same physical core, itself included.
    pub siblings: Vec<usize>,
    /// NUMA node (0 where the kernel has no node directory).
    pub node: usize,
}

/// The CPUs this process may use, in id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub cpus: Vec<Cpu>,
    pub nr_nodes: usize,
}

/// Parse a kernel CPU list ("0-3,8,10-11\n"); `None` if malformed.
pub fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (first, last): (usize, usize) = match part.split_once('-') {
            Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
            None => {
                let one = part.parse().ok()?;
                (one, one)
            }
        };
        if first > last {
            return None;
        }
        cpus.extend(first..=last);
    }
    Some(cpus)
}

impl Topology {
    /// Every allowed CPU its own physical core on node 0: what is known when
    /// sysfs is not there.
    pub fn flat(nr_cores: usize) -> Topology {
        let cpus = (0..nr_cores.max(1))
            .map(|id| Cpu {
                id,
                core: (0, id),
                siblings: vec![id],
                node: 0,
            })
            .collect();
        Topology { cpus, nr_nodes: 1 }
    }

    /// Read the topology of the `allowed` CPUs through `read`, which returns
    /// the text of a file under /sys/devices/system by relative path
    /// ("cpu/cpu3/topology/core_id", "node/online", "node/node1/cpulist").
    /// A missing file means "no more than the CPU number is known".
    pub fn read(read: &dyn Fn(&str) -> Option<String>, allowed: &[usize]) -> Topology {
        let nodes = read("node/online").and_then(|t| parse_cpu_list(&t));
        let node_cpus: Vec<(usize, Vec<usize>)> = nodes
            .iter()
            .flatten()
            .filter_map(|&n| Some((n, parse_cpu_list(&read(&format!("node/node{n}/cpulist"))?)?)))
            .collect();
        let mut ids = allowed.to_vec();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Topology::flat(1);
        }
        let number = |id: usize, file: &str| -> Option<usize> {
            read(&format!("cpu/cpu{id}/topology/{file}"))?
                .trim()
                .parse()
                .ok()
        };
        let cpus = ids
            .iter()
            .map(|&id| Cpu {
                id,
                core: (
                    number(id, "physical_package_id").unwrap_or(0),
                    number(id, "core_id").unwrap_or(id),
                ),
                siblings: read(&format!("cpu/cpu{id}/topology/thread_siblings_list"))
                    .and_then(|t| parse_cpu_list(&t))
                    .unwrap_or_else(|| vec![id]),
                node: node_cpus
                    .iter()
                    .find(|(_, list)| list.contains(&id))
                    .map_or(0, |(n, _)| *n),
            })
            .collect();
        Topology {
            cpus,
            nr_nodes: node_cpus.len().max(1),
        }
    }

    fn nr_physical(&self) -> usize {
        let mut cores: Vec<_> = self.cpus.iter().map(|c| c.core).collect();
        cores.sort_unstable();
        cores.dedup();
        cores.len()
    }

    /// Ingest on the first CPU; shards on every CPU that is not the ingest's
    /// physical core, the ingest's node first and holding the majority of
    /// shards (SO_REUSEPORT spreads clients evenly over shards). With no such
    /// CPU (1 core, or 1 physical core with hyperthreads) shards share the
    /// ingest's core and do not spin. `memlock`: RLIMIT_MEMLOCK in bytes.
    pub fn plan(&self, memlock: Option<u64>) -> Tuning {
        let ingest = &self.cpus[0];
        let mut notes = vec![format!(
            "Host: {} logical CPUs on {} physical cores, {} NUMA node(s).",
            self.cpus.len(),
            self.nr_physical(),
            self.nr_nodes
        )];
        let same_core =
            |c: &Cpu| c.core == ingest.core || ingest.siblings.contains(&c.id) || c.id == ingest.id;
        let skipped: Vec<usize> = self.cpus[1..]
            .iter()
            .filter(|c| same_core(c))
            .map(|c| c.id)
            .collect();
        let (local, remote): (Vec<&Cpu>, Vec<&Cpu>) = self
            .cpus
            .iter()
            .filter(|c| !same_core(c))
            .partition(|c| c.node == ingest.node);
        let nr_remote = match local.len() {
            0 => remote.len(),
            n => remote.len().min(n - 1),
        };
        let mut shard_cores: Vec<usize> = local
            .iter()
            .chain(&remote[..nr_remote])
            .map(|c| c.id)
            .collect();
        shard_cores.truncate(MAX_SHARDS);
        notes.push(format!(
            "Ingest on cpu {} (the first core; give it the NIC's IRQs, see tuning/README.md).",
            ingest.id
        ));
        if !skipped.is_empty() {
            notes.push(format!(
                "Skipped cpu {skipped:?}: hyperthread sibling(s) of the ingest core."
            ));
        }
        if self.nr_nodes > 1 && !remote.is_empty() {
            notes.push(format!(
                "NUMA: {} shard(s) on ingest's node {}, {} of {} CPUs of other nodes used, \
                 so most clients (SO_REUSEPORT spreads them evenly over shards) are served \
                 on the node where events are decoded.",
                local.len(),
                ingest.node,
                nr_remote,
                remote.len()
            ));
        }
        let spin = if shard_cores.is_empty() {
            shard_cores = skipped.first().map_or(vec![ingest.id], |&s| vec![s]);
            notes.push(format!(
                "One shard on cpu {}, sharing the ingest's physical core: no spinning \
                 (a spinning executor would take the core from the other).",
                shard_cores[0]
            ));
            0
        } else {
            notes.push(format!(
                "Shards on cpus {shard_cores:?}, each a core of its own: spin {SPIN_DEDICATED_US} µs \
                 before parking (a wake-up costs 20-25 µs, docs/design.md §5)."
            ));
            SPIN_DEDICATED_US
        };
        // One logical CPU for both threads: the kernel decides which runs.
        let ingest_nice = (shard_cores == [ingest.id]).then(|| {
            notes.push(format!(
                "Ingest and its shard on one CPU: ingest_nice = {SHARED_CPU_INGEST_NICE}, so ingest \
                 takes the CPU first when it wakes (needs CAP_SYS_NICE or LimitNICE; \
                 docs/design.md §1)."
            ));
            SHARED_CPU_INGEST_NICE
        });
        let io_memory = io_memory_for(1 + shard_cores.len(), memlock, &mut notes);
        notes.push(format!(
            "Ring {RING_CAPACITY} slots (~1 s of a 12,000-agent PG's peak), batch {BATCH_SIZE}, \
             output bound = the config default. Socket buffers autotuned (0): fixed sizes \
             (tuning/*.toml) need net.core.wmem_max/rmem_max raised (tuning/host-tune.sh)."
        ));
        Tuning {
            runtime: RuntimeTuning {
                shards: Some(shard_cores.len()),
                ingest_core: Some(ingest.id),
                shard_cores: Some(shard_cores),
                pin: Some(true),
                share_ingest_thread: None,
                ingest_nice,
                shard_nice: None,
                spin_before_park_us: Some(spin),
                ring_capacity: Some(RING_CAPACITY),
                batch_size: Some(BATCH_SIZE),
                io_memory_bytes: Some(io_memory),
                io_ring_depth: None,
                socket_send_buffer: Some(0),
                socket_recv_buffer: Some(0),
            },
            limits: LimitsTuning {
                output_bound_bytes: Some(crate::config::DEFAULT_OUTPUT_BOUND),
            },
            origin: "this host".to_string(),
            notes,
        }
    }
}

/// io_uring memory per executor so all of them fit under RLIMIT_MEMLOCK
/// (registered buffers are charged to it), at most the default.
fn io_memory_for(nr_executors: usize, memlock: Option<u64>, notes: &mut Vec<String>) -> usize {
    let Some(limit) = memlock else {
        return IO_MEMORY_BYTES;
    };
    let share = (limit / nr_executors as u64) as usize / 4096 * 4096;
    if share >= IO_MEMORY_BYTES {
        return IO_MEMORY_BYTES;
    }
    notes.push(format!(
        "RLIMIT_MEMLOCK is {limit} bytes for {nr_executors} executors: io_memory_bytes lowered \
         to fit (raise the limit to get {IO_MEMORY_BYTES} each; see tuning/README.md)."
    ));
    share.max(IO_MEMORY_FLOOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: [(&str, &str); 3] = [
        (
            "tuning/2-core-vm.toml",
            include_str!("../tuning/2-core-vm.toml"),
        ),
        (
            "tuning/4-core-host.toml",
            include_str!("../tuning/4-core-host.toml"),
        ),
        (
            "tuning/16-core-2-numa.toml",
            include_str!("../tuning/16-core-2-numa.toml"),
        ),
    ];

    fn shipped(name: &str) -> Tuning {
        let (origin, text) = SHIPPED.iter().find(|(o, _)| o.contains(name)).unwrap();
        Tuning::parse(text, origin).unwrap()
    }

    /// A sysfs snapshot: relative path → file text.
    fn fixture<'a>(files: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |rel| {
            files
                .iter()
                .find(|(path, _)| *path == rel)
                .map(|(_, text)| text.to_string())
        }
    }

    #[test]
    fn shipped_files_parse_and_set_every_key() {
        for (origin, text) in SHIPPED {
            let t = Tuning::parse(text, origin).unwrap();
            let rt = &t.runtime;
            let set = [
                rt.shards.is_some() && rt.ingest_core.is_some() && rt.shard_cores.is_some(),
                rt.pin.is_some() && rt.spin_before_park_us.is_some(),
                rt.ring_capacity.is_some() && rt.batch_size.is_some(),
                rt.io_memory_bytes.is_some() && rt.socket_send_buffer.is_some(),
                rt.socket_recv_buffer.is_some() && t.limits.output_bound_bytes.is_some(),
            ];
            assert!(set.iter().all(|&s| s), "{origin}: {set:?}");
        }
    }

    #[test]
    fn two_core_vm_puts_ingest_and_shard_on_separate_cores() {
        let mut config = Config::default();
        shipped("2-core").apply(&mut config, 2).unwrap();
        let p = crate::router::placements(&config, 2);
        assert_eq!((p.ingest, p.shards), (Some(0), vec![Some(1)]));
    }

    #[test]
    fn numa_file_keeps_most_shards_on_the_ingest_node() {
        let t = shipped("16-core");
        let ingest = t.runtime.ingest_core.unwrap();
        let shards = t.runtime.shard_cores.unwrap();
        let node = |cpu: usize| cpu / 8; // the file's layout: node 0 = 0-7, node 1 = 8-15
        let local = shards.iter().filter(|&&c| node(c) == node(ingest)).count();
        assert!(local * 2 > shards.len(), "{local} of {}", shards.len());
        assert!(!shards.contains(&ingest));
    }

    #[test]
    fn missing_shard_core_is_refused_with_file_and_machine() {
        let mut config = Config::default();
        let before = config.runtime.shard_cores.clone();
        let e = shipped("16-core").apply(&mut config, 2).unwrap_err();
        let message = e.to_string();
        assert!(
            message.starts_with("tuning/16-core-2-numa.toml: runtime.shard_cores: core ")
                && message.contains("does not exist on this 2-core machine"),
            "{message}"
        );
        assert_eq!(config.runtime.shard_cores, before, "config untouched");
    }

    #[test]
    fn missing_ingest_core_is_refused() {
        let t = Tuning::parse("[runtime]\ningest_core = 4\n", "t.toml").unwrap();
        let e = t.apply(&mut Config::default(), 4).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.toml: runtime.ingest_core: core 4 does not exist on this 4-core machine (cores 0..=3)"
        );
    }

    #[test]
    fn unknown_and_policy_keys_are_refused() {
        assert!(Tuning::parse("[runtime]\nshard_core = [1]\n", "t").is_err());
        assert!(Tuning::parse("[limits]\nmax_sessions = 5\n", "t").is_err());
        assert!(Tuning::parse("listen = \"0.0.0.0:1\"\n", "t").is_err());
    }

    #[test]
    fn contradictions_are_refused() {
        for text in [
            "[runtime]\nshards = 1\nshard_cores = [1, 2]\n",
            "[runtime]\nshard_cores = []\n",
            "[runtime]\nbatch_size = 0\n",
            "[runtime]\nring_capacity = 8\nbatch_size = 64\n",
            "[runtime]\nshards = 65\npin = false\n",
            "[limits]\noutput_bound_bytes = 0\n",
        ] {
            let t = Tuning::parse(text, "t").unwrap();
            let e = t.apply(&mut Config::default(), 4).unwrap_err();
            assert!(matches!(e, TuningError::Invalid { .. }), "{text}: {e}");
        }
    }

    #[test]
    fn absent_keys_keep_the_config_values() {
        let mut config = Config::default();
        config.runtime.spin_before_park_us = 7;
        let t = Tuning::parse("[runtime]\nbatch_size = 16\n", "t").unwrap();
        t.apply(&mut config, 2).unwrap();
        assert_eq!(config.runtime.batch_size, 16);
        assert_eq!(config.runtime.spin_before_park_us, 7);
    }

    #[test]
    fn cpu_lists_parse_like_the_kernel_writes_them() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("5"), Some(vec![5]));
        assert_eq!(parse_cpu_list("\n"), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("a-b"), None);
    }

    /// 2 nodes × 4 physical cores × 2 threads: cpu n and n+8 are siblings,
    /// node 0 = cores 0-3 (cpus 0-3, 8-11), node 1 = cpus 4-7, 12-15.
    fn two_node_smt_topology() -> Topology {
        let mut files = vec![
            ("node/online".to_string(), "0-1\n".to_string()),
            ("node/node0/cpulist".into(), "0-3,8-11\n".into()),
            ("node/node1/cpulist".into(), "4-7,12-15\n".into()),
        ];
        for cpu in 0..16 {
            let (core, package) = (cpu % 8, (cpu % 8) / 4);
            let dir = format!("cpu/cpu{cpu}/topology");
            files.push((format!("{dir}/core_id"), format!("{}\n", core % 4)));
            files.push((format!("{dir}/physical_package_id"), format!("{package}\n")));
            let siblings = format!("{},{}\n", cpu % 8, cpu % 8 + 8);
            files.push((format!("{dir}/thread_siblings_list"), siblings));
        }
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        let read = fixture(&files);
        Topology::read(&read, &(0..16).collect::<Vec<_>>())
    }

    #[test]
    fn topology_reads_siblings_and_nodes_from_sysfs_text() {
        let topo = two_node_smt_topology();
        assert_eq!(topo.nr_nodes, 2);
        assert_eq!(topo.nr_physical(), 8);
        assert_eq!(topo.cpus[9].siblings, vec![1, 9]);
        assert_eq!((topo.cpus[9].node, topo.cpus[12].node), (0, 1));
    }

    #[test]
    fn plan_skips_ingest_siblings_and_keeps_the_majority_on_its_node() {
        let topo = two_node_smt_topology();
        let t = topo.plan(None);
        let shards = t.runtime.shard_cores.unwrap();
        assert_eq!(t.runtime.ingest_core, Some(0));
        assert!(!shards.contains(&0) && !shards.contains(&8), "{shards:?}");
        // node 0 has 6 CPUs left (1-3, 9-11); node 1 may add at most 5.
        assert_eq!(shards[..6], [1, 2, 3, 9, 10, 11]);
        assert_eq!(shards.len(), 11);
        assert_eq!(t.runtime.spin_before_park_us, Some(SPIN_DEDICATED_US));
    }

    #[test]
    fn small_hosts_share_a_core_and_do_not_spin() {
        let one = Topology::flat(1).plan(None);
        assert_eq!(one.runtime.shard_cores, Some(vec![0]));
        assert_eq!(one.runtime.spin_before_park_us, Some(0));
        assert_eq!(one.runtime.ingest_nice, Some(SHARED_CPU_INGEST_NICE));
        let files = [
            ("cpu/cpu0/topology/core_id", "0"),
            ("cpu/cpu1/topology/core_id", "0"),
            ("cpu/cpu0/topology/thread_siblings_list", "0-1"),
            ("cpu/cpu1/topology/thread_siblings_list", "0-1"),
        ];
        let smt = Topology::read(&fixture(&files), &[0, 1]).plan(None);
        assert_eq!(smt.runtime.shard_cores, Some(vec![1]));
        assert_eq!(smt.runtime.spin_before_park_us, Some(0));
        assert_eq!(
            smt.runtime.ingest_nice, None,
            "a sibling CPU is a CPU of its own"
        );
        let two = Topology::flat(2).plan(None);
        assert_eq!(two.runtime.shard_cores, Some(vec![1]));
        assert_eq!(two.runtime.spin_before_park_us, Some(SPIN_DEDICATED_US));
    }

    #[test]
    fn io_memory_fits_under_memlock() {
        let t = Topology::flat(16).plan(Some(8 << 20));
        let per = t.runtime.io_memory_bytes.unwrap();
        assert!(per * 16 <= 8 << 20 && per >= IO_MEMORY_FLOOR, "{per}");
        assert_eq!(
            Topology::flat(4)
                .plan(Some(8 << 20))
                .runtime
                .io_memory_bytes,
            Some(IO_MEMORY_BYTES)
        );
    }

    #[test]
    fn for_host_output_parses_back_and_applies_here() {
        let host = Tuning::for_host();
        let text = host.to_toml();
        let back = Tuning::parse(&text, "tune").unwrap();
        assert_eq!(back.runtime, host.runtime);
        assert_eq!(back.limits, host.limits);
        let mut config = Config::default();
        back.apply(&mut config, crate::config::nr_cores()).unwrap();
    }

    #[test]
    fn to_toml_writes_only_the_keys_that_are_set() {
        let t = Tuning::parse("[runtime]\nshard_cores = [1, 3]\n", "t").unwrap();
        let text = t.to_toml();
        assert!(text.contains("shard_cores = [1, 3]\n") && !text.contains("batch_size"));
        assert!(!text.contains("\n[limits]"));
    }
}
