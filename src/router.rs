//! Starting and stopping the router: one pinned glommio executor for ingest
//! and one per shard (ingest and the shard pinned to its core may share one),
//! the rings between them, and the shared listen port.
//! A pin that fails is an error, not a warning.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};

use crate::config::{nr_cores, Config};
use crate::ingest::{self, IngestSetup};
use crate::link::{ToIngest, ToShard};
use crate::metrics::{Metrics, RingCounters};
use crate::reload::LiveConfig;
use crate::ring;
use crate::shard::{self, ShardSetup};

/// Why the router could not start or stop cleanly.
#[derive(Debug)]
pub struct RouterError(pub String);

impl std::fmt::Display for RouterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RouterError {}

fn err(context: &str, e: impl std::fmt::Display) -> RouterError {
    RouterError(format!("{context}: {e}"))
}

/// A running router.
pub struct Router {
    /// The address shards listen on (the real port when the config said 0).
    pub local_addr: SocketAddr,
    /// The TLS port shards listen on beside it (`[tls] listen`), if any.
    pub tls_addr: Option<SocketAddr>,
    /// Shard executors running.
    pub nr_shards: usize,
    pub metrics: Arc<Metrics>,
    /// The configuration sessions open under: a reload swaps it
    /// (`crate::reload`).
    pub live: Arc<LiveConfig>,
    stop: Arc<AtomicBool>,
    executors: Vec<ExecutorJoinHandle<()>>,
}

/// Which core each executor runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placements {
    pub ingest: Option<usize>,
    pub shards: Vec<Option<usize>>,
}

impl Placements {
    /// The first shard pinned to ingest's core: with
    /// `runtime.share_ingest_thread` it shares ingest's executor (one thread
    /// runs both), so what passes between them — every event, request and
    /// reply — wakes no other thread. Two executors pinned to one core take
    /// turns on it, and each turn is a thread woken and a context switch
    /// (docs/design.md §1).
    pub fn shard_beside_ingest(&self) -> Option<usize> {
        let ingest = self.ingest?;
        self.shards.iter().position(|&core| core == Some(ingest))
    }
}

/// Cores for ingest and each shard from a validated runtime config
/// ([`Config::validate`] refuses cores the machine lacks): the default puts
/// ingest on core 0 and shards on the cores after it, wrapping around when
/// there are more shards than cores.
pub fn placements(config: &Config, nr_cores: usize) -> Placements {
    let rt = &config.runtime;
    let nr_shards = rt.nr_shards(nr_cores);
    if !rt.pin {
        return Placements {
            ingest: None,
            shards: vec![None; nr_shards],
        };
    }
    let ingest = rt.ingest_core.unwrap_or(0);
    let shards: Vec<usize> = match &rt.shard_cores {
        Some(cores) if !cores.is_empty() => {
            (0..nr_shards).map(|i| cores[i % cores.len()]).collect()
        }
        _ => (0..nr_shards)
            .map(|i| (ingest + 1 + i) % nr_cores)
            .collect(),
    };
    Placements {
        ingest: Some(ingest),
        shards: shards.into_iter().map(Some).collect(),
    }
}

/// How long `Router::start` waits for every shard to know the PG status.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn builder(name: &str, core: Option<usize>, config: &Config) -> LocalExecutorBuilder {
    let placement = match core {
        Some(core) => Placement::Fixed(core),
        None => Placement::Unbound,
    };
    LocalExecutorBuilder::new(placement)
        .name(name)
        .io_memory(config.runtime.io_memory_bytes)
        .ring_depth(config.runtime.io_ring_depth)
        .spin_before_park(config.runtime.spin_before_park())
}

/// Give the calling thread the nice value `setting` names
/// (`runtime.ingest_nice`, `runtime.shard_nice`; 0 leaves it alone). This
/// is tuning, not correctness: if the kernel refuses (a value below 0
/// without CAP_SYS_NICE or RLIMIT_NICE), the thread keeps its priority and
/// the router says so.
fn set_priority(thread: &str, (setting, nice): (&str, i32)) {
    if nice == 0 {
        return;
    }
    // SAFETY: gettid has no preconditions; setpriority with PRIO_PROCESS
    // and a thread id changes that one thread (Linux) and touches no memory.
    let result = unsafe {
        let tid = libc::gettid() as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice)
    };
    if result != 0 {
        let e = std::io::Error::last_os_error();
        tracing::warn!(thread, nice, "runtime.{setting} not applied: {e}");
    }
}

/// Descriptors kept free beside the client connections: the upstream
/// sockets of both sides and their reconnects, the shards' spare descriptors
/// (`shard::listener`), files the router opens later.
const DESCRIPTORS_KEPT: u64 = 16;

/// Count the descriptors every core holds now and bound client connections
/// to what the open-file limit leaves beside them and [`DESCRIPTORS_KEPT`]
/// (`Metrics::connection_budget`). Left unbounded where the limit or the
/// descriptors cannot be read.
fn set_connection_budget(metrics: &Metrics) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0
        || limit.rlim_cur == libc::RLIM_INFINITY
    {
        return;
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    // The directory's own descriptor is listed while it is read.
    let nr_open = (dir.count() as u64).saturating_sub(1);
    let nr_clients = metrics.nr_connected.load(Ordering::Relaxed);
    let nr_router = nr_open.saturating_sub(nr_clients);
    let budget = limit.rlim_cur.saturating_sub(nr_router + DESCRIPTORS_KEPT);
    if budget == 0 {
        tracing::warn!(
            open_file_limit = limit.rlim_cur,
            in_use = nr_router,
            "the open-file limit leaves no room for client connections; raise it (ulimit -n)"
        );
    } else {
        tracing::info!(
            open_file_limit = limit.rlim_cur,
            in_use = nr_router,
            kept = DESCRIPTORS_KEPT,
            "room for {budget} client connections under the open-file limit"
        );
    }
    // 0 would mean "no bound": a limit that leaves none still admits one.
    metrics
        .connection_budget
        .store(budget.max(1), Ordering::Relaxed);
}

/// Reserve the listen address (resolving port 0) without listening on it, so
/// every shard binds the same port with SO_REUSEPORT.
fn reserve(listen: SocketAddr) -> Result<(socket2::Socket, SocketAddr), RouterError> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(listen), Type::STREAM, None)
        .map_err(|e| err("socket", e))?;
    socket
        .set_reuse_port(true)
        .map_err(|e| err("SO_REUSEPORT", e))?;
    socket
        .set_reuse_address(true)
        .map_err(|e| err("SO_REUSEADDR", e))?;
    socket
        .bind(&listen.into())
        .map_err(|e| err(&format!("bind {listen}"), e))?;
    let addr = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or_else(|| RouterError("listen address has no port".into()))?;
    Ok((socket, addr))
}

impl Router {
    /// Check the config ([`Config::validate`]), then start ingest and the
    /// shards; returns once every shard listens.
    pub fn start(config: Config) -> Result<Router, RouterError> {
        config
            .validate()
            .and_then(|()| crate::tls::check(&config))
            .map_err(|e| RouterError(format!("configuration: {e}")))?;
        let places = placements(&config, nr_cores());
        let (reservation, local_addr) = reserve(config.listen)?;
        let tls_config = crate::tls::server_config(&config.tls)
            .map_err(|e| RouterError(format!("configuration: {e}")))?;
        let tls_reservation = match (config.tls.listen, &tls_config) {
            (Some(listen), Some(tls)) => {
                let (socket, addr) = reserve(listen)?;
                Some((socket, addr, tls.clone()))
            }
            _ => None,
        };
        let tls_addr = tls_reservation.as_ref().map(|(_, addr, _)| *addr);
        let config = Arc::new(config);
        let live = Arc::new(LiveConfig::new(config.clone()));
        let metrics = Arc::new(Metrics::default());
        let stop = Arc::new(AtomicBool::new(false));
        let capacity = config.runtime.ring_capacity;

        let mut rings = Vec::new();
        let mut to_shards = Vec::new();
        let mut from_shards = Vec::new();
        let mut shard_setups = Vec::new();
        let (bound_tx, bound_rx) = mpsc::channel::<Result<(), String>>();
        let (ready_tx, ready_rx) = mpsc::channel::<usize>();
        for index in 0..places.shards.len() {
            let (event_tx, event_rx) = ring::ring::<ToShard>(capacity);
            let (ctl_tx, ctl_rx) = ring::ring::<ToIngest>(capacity);
            for (direction, stats) in [
                ("to_shard", event_tx.stats_handle()),
                ("to_ingest", ctl_tx.stats_handle()),
            ] {
                rings.push(RingCounters {
                    direction,
                    shard: index,
                    stats,
                });
            }
            to_shards.push(event_tx);
            from_shards.push(ctl_rx);
            shard_setups.push(ShardSetup {
                index,
                listen: local_addr,
                tls: tls_reservation
                    .as_ref()
                    .map(|(_, addr, tls)| (*addr, tls.clone())),
                config: config.clone(),
                live: live.clone(),
                metrics: metrics.clone(),
                from_ingest: event_rx,
                to_ingest: ctl_tx,
                ready: ready_tx.clone(),
            });
        }
        let mut ingest_setup = Some(IngestSetup {
            config: config.clone(),
            metrics: metrics.clone(),
            to_shards,
            from_shards,
            stop: stop.clone(),
        });
        let beside_ingest = if config.runtime.share_ingest_thread {
            places.shard_beside_ingest()
        } else {
            None
        };
        let mut executors = Vec::new();
        for (index, setup) in shard_setups.into_iter().enumerate() {
            let core = places.shards[index];
            let bound = bound_tx.clone();
            // The shard on ingest's core runs ingest too (one thread per core).
            let ingest = if beside_ingest == Some(index) {
                ingest_setup.take()
            } else {
                None
            };
            let name = match ingest {
                Some(_) => format!("ingest+shard{index}"),
                None => format!("shard-{index}"),
            };
            // The thread that runs ingest too has ingest's priority.
            let nice = match ingest {
                None => ("shard_nice", config.runtime.shard_nice),
                Some(_) => ("ingest_nice", config.runtime.ingest_nice),
            };
            let handle = builder(&name, core, &config)
                .spawn(move || {
                    set_priority(&name, nice);
                    async move {
                        let tls_listener = match &setup.tls {
                            None => Ok(None),
                            Some((listen, _)) => shard::bind(*listen).map(Some).map_err(|e| {
                                format!("shard {index}: bind the TLS port {listen}: {e}")
                            }),
                        };
                        let listener = shard::bind(setup.listen)
                            .map_err(|e| format!("shard {index}: bind: {e}"));
                        match (listener, tls_listener) {
                            (Ok(listener), Ok(tls_listener)) => {
                                let _ = bound.send(Ok(()));
                                let ingest = ingest.map(|s| glommio::spawn_local(ingest::run(s)));
                                shard::run(setup, listener, tls_listener).await;
                                if let Some(ingest) = ingest {
                                    ingest.await;
                                }
                            }
                            (Err(e), _) | (_, Err(e)) => {
                                let _ = bound.send(Err(e));
                            }
                        }
                    }
                })
                .map_err(|e| err(&format!("start shard {index} on core {core:?}"), e))?;
            executors.push(handle);
        }
        for _ in 0..places.shards.len() {
            match bound_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(RouterError(e)),
                Err(e) => return Err(err("shard startup", e)),
            }
        }
        drop(reservation);
        drop(tls_reservation);
        let _ = metrics.rings.set(rings);

        if let Some(setup) = ingest_setup {
            let nice = config.runtime.ingest_nice;
            let handle = builder("ingest", places.ingest, &config)
                .spawn(move || {
                    set_priority("ingest", ("ingest_nice", nice));
                    ingest::run(setup)
                })
                .map_err(|e| err(&format!("start ingest on core {:?}", places.ingest), e))?;
            executors.push(handle);
        }
        // Every shard knows the PG status before the first session is answered.
        drop(ready_tx);
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        let mut ready = vec![false; places.shards.len()];
        while ready.contains(&false) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match ready_rx.recv_timeout(left) {
                Ok(index) => {
                    if let Some(shard) = ready.get_mut(index) {
                        *shard = true;
                    }
                }
                Err(e) => {
                    let missing: Vec<usize> = ready
                        .iter()
                        .enumerate()
                        .filter_map(|(shard, &is_ready)| (!is_ready).then_some(shard))
                        .collect();
                    return Err(RouterError(format!(
                        "shard readiness: shards {missing:?} not ready within {READY_TIMEOUT:?}: {e} \
                         (an executor that cannot create its io_uring rings never gets \
                         ready: without CAP_IPC_LOCK they need locked memory, see \
                         runtime.io_ring_depth and io_memory_bytes against ulimit -l)"
                    )));
                }
            }
        }
        set_connection_budget(&metrics);
        Ok(Router {
            local_addr,
            tls_addr,
            nr_shards: places.shards.len(),
            metrics,
            live,
            stop,
            executors,
        })
    }

    /// Ask the router to stop; [`Router::join`] waits for it.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stop and wait until every executor has finished.
    pub fn shutdown(self) -> Result<(), RouterError> {
        self.request_stop();
        self.join()
    }

    /// Wait until every executor has finished.
    pub fn join(self) -> Result<(), RouterError> {
        for handle in self.executors {
            handle.join().map_err(|e| err("executor", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_placement_wraps_shards_over_the_cores_after_ingest() {
        let mut config = Config::default();
        config.runtime.shards = 3;
        let p = placements(&config, 2);
        assert_eq!(p.ingest, Some(0));
        assert_eq!(p.shards, vec![Some(1), Some(0), Some(1)]);
        config.runtime.shards = 0;
        assert_eq!(placements(&config, 4).shards.len(), 3);
        assert_eq!(placements(&config, 1).shards, vec![Some(0)]);
        assert_eq!(
            placements(&config, 200).shards.len(),
            crate::config::MAX_SHARDS,
            "one per core, up to the most a router runs"
        );
    }

    #[test]
    fn the_shard_on_ingests_core_shares_its_executor() {
        let mut config = Config::default();
        config.runtime.shards = 3;
        assert_eq!(placements(&config, 2).shard_beside_ingest(), Some(1));
        config.runtime.shards = 1;
        assert_eq!(placements(&config, 2).shard_beside_ingest(), None);
        config.runtime.shard_cores = Some(vec![0]);
        assert_eq!(placements(&config, 2).shard_beside_ingest(), Some(0));
        config.runtime.pin = false;
        assert_eq!(
            placements(&config, 2).shard_beside_ingest(),
            None,
            "unpinned executors float: each keeps its own thread"
        );
    }

    #[test]
    fn start_refuses_an_invalid_config_before_starting_anything() {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Config::default()
        };
        config.runtime.shards = crate::config::MAX_SHARDS + 1;
        let e = Router::start(config).err().expect("refused");
        assert!(e.0.starts_with("configuration: runtime.shards"), "{e}");
    }
}
