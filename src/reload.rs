//! Config reload without dropping anyone (SIGHUP, `POST /reload`): the
//! config file `serve` was started with is read again, and what can change
//! at runtime — the `[[clients]]` allow-list and the limits a new session
//! is held to — applies to sessions opened from then on. Sessions already
//! open keep what they were granted. Everything else (listen addresses,
//! cores, shards, the upstream, the admin listener, rings, …) is compared
//! with what runs, and each difference is logged as needing a restart. A
//! file that does not load or validate is refused whole and the running
//! configuration stays (docs/operations.md §9).
//!
//! The running configuration is a [`LiveConfig`]: an `Arc<Config>` behind a
//! lock that is taken only to swap it or to pick up a new one, and a
//! generation number. A shard compares the generation (one relaxed load) when
//! a connection arrives or opens and takes the lock only after a reload; the
//! event path never looks at it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};

use crate::config::Config;
use crate::metrics::Metrics;

/// The configuration sessions are opened under, swappable at runtime.
#[derive(Debug)]
pub struct LiveConfig {
    /// Bumped (under the write lock) on every swap.
    generation: AtomicU64,
    current: RwLock<Arc<Config>>,
}

impl LiveConfig {
    pub fn new(config: Arc<Config>) -> LiveConfig {
        LiveConfig {
            generation: AtomicU64::new(0),
            current: RwLock::new(config),
        }
    }

    /// How many times the configuration was swapped: compare it with the
    /// one a reader last saw before taking [`LiveConfig::get`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The configuration now, and its generation.
    pub fn get(&self) -> (u64, Arc<Config>) {
        let current = self.current.read();
        (self.generation.load(Ordering::Acquire), current.clone())
    }

    fn replace(&self, config: Arc<Config>) -> u64 {
        let mut current = self.current.write();
        *current = config;
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }
}

/// A reader's cached copy of a [`LiveConfig`]: [`Cached::refresh`] costs
/// one atomic load unless a reload happened since.
#[derive(Debug)]
pub struct Cached {
    live: Arc<LiveConfig>,
    seen: u64,
    pub config: Arc<Config>,
}

impl Cached {
    pub fn new(live: Arc<LiveConfig>) -> Cached {
        let (seen, config) = live.get();
        Cached { live, seen, config }
    }

    /// Pick up a configuration reloaded since the last call.
    pub fn refresh(&mut self) {
        if self.live.generation() != self.seen {
            (self.seen, self.config) = self.live.get();
        }
    }
}

/// The settings a reload applies (dotted paths into [`Config`]); a
/// difference anywhere else needs a restart.
pub const RELOADABLE: &[&str] = &[
    "clients",
    "limits.max_sessions",
    "limits.max_pending_opens",
    "limits.open_timeout_secs",
    "limits.output_bound_bytes",
    "requests.max_outstanding",
];

fn reloadable(path: &str) -> bool {
    RELOADABLE
        .iter()
        .any(|r| path == *r || path.strip_prefix(r).is_some_and(|s| s.starts_with('.')))
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// The configuration's generation after the reload (1 for the first).
    pub generation: u64,
    /// `[[clients]]` entries now listed.
    pub nr_clients: usize,
    pub clients_added: Vec<String>,
    pub clients_removed: Vec<String>,
    /// Entries whose password, services, max_outstanding or control_scope
    /// changed (by ClientID).
    pub clients_changed: Vec<String>,
    /// Reloadable settings that changed (applied to new sessions).
    pub applied: Vec<String>,
    /// Settings that differ from what runs and need a restart (not applied).
    pub needs_restart: Vec<String>,
}

impl ReloadSummary {
    /// `/reload`'s answer.
    pub fn to_json(&self) -> Value {
        json!({
            "ok": true,
            "generation": self.generation,
            "clients": {
                "listed": self.nr_clients,
                "added": self.clients_added,
                "removed": self.clients_removed,
                "changed": self.clients_changed,
            },
            "applied": self.applied,
            "needs_restart": self.needs_restart,
        })
    }
}

/// What runs after a reload from `wanted`: `running` with the reloadable
/// settings of `wanted`, and what differs (the generation is left 0).
pub fn plan(running: &Config, wanted: &Config) -> (Config, ReloadSummary) {
    let mut next = running.clone();
    next.clients = wanted.clients.clone();
    next.limits.max_sessions = wanted.limits.max_sessions;
    next.limits.max_pending_opens = wanted.limits.max_pending_opens;
    next.limits.open_timeout_secs = wanted.limits.open_timeout_secs;
    next.limits.output_bound_bytes = wanted.limits.output_bound_bytes;
    next.requests.max_outstanding = wanted.requests.max_outstanding;

    let mut changed = Vec::new();
    differences("", &to_value(running), &to_value(wanted), &mut changed);
    let (applied, needs_restart): (Vec<String>, Vec<String>) =
        changed.into_iter().partition(|p| reloadable(p));
    // The client list is reported by ClientID below, not by index.
    let mut applied: Vec<String> = applied
        .into_iter()
        .map(|p| {
            if p.starts_with("clients") {
                "clients".into()
            } else {
                p
            }
        })
        .collect();
    applied.dedup();

    let id = |c: &crate::config::ClientEntry| c.client_id.clone();
    let before: Vec<String> = running.clients.iter().map(id).collect();
    let after: Vec<String> = wanted.clients.iter().map(id).collect();
    let summary = ReloadSummary {
        generation: 0,
        nr_clients: wanted.clients.len(),
        clients_added: after
            .iter()
            .filter(|c| !before.contains(c))
            .cloned()
            .collect(),
        clients_removed: before
            .iter()
            .filter(|c| !after.contains(c))
            .cloned()
            .collect(),
        clients_changed: wanted
            .clients
            .iter()
            .filter(|new| {
                running
                    .clients
                    .iter()
                    .find(|old| old.client_id == new.client_id)
                    .is_some_and(|old| to_value(old) != to_value(*new))
            })
            .map(id)
            .collect(),
        applied,
        needs_restart,
    };
    (next, summary)
}

fn to_value<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// The dotted paths where `a` and `b` differ (tables walked key by key,
/// anything else compared whole).
fn differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let null = Value::Null;
                differences(
                    &sub,
                    a.get(key).unwrap_or(&null),
                    b.get(key).unwrap_or(&null),
                    out,
                );
            }
        }
        _ if a != b => out.push(path.to_string()),
        _ => {}
    }
}

/// Why a reload changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadError {
    /// `serve` was started without `--config`.
    NoFile,
    /// The file does not load or does not validate.
    Invalid(String),
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::NoFile => f.write_str(
                "serve was started without --config: there is no file to reload (nothing changed)",
            ),
            ReloadError::Invalid(why) => {
                write!(f, "{why} (the running configuration is kept)")
            }
        }
    }
}

impl std::error::Error for ReloadError {}

/// Where a reload gets the configuration it wants: the file again, with
/// the same command-line overrides `serve` was started with; `Ok(None)`
/// when there is no file.
pub type Loader = Box<dyn Fn() -> Result<Option<Config>, String> + Send + Sync>;

/// Reloads the running configuration; shared by the signal loop and the
/// admin listener (one reload at a time).
pub struct Reloader {
    live: Arc<LiveConfig>,
    metrics: Arc<Metrics>,
    load: Loader,
    one_at_a_time: Mutex<()>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("generation", &self.live.generation())
            .finish()
    }
}

impl Reloader {
    pub fn new(live: Arc<LiveConfig>, metrics: Arc<Metrics>, load: Loader) -> Reloader {
        Reloader {
            live,
            metrics,
            load,
            one_at_a_time: Mutex::new(()),
        }
    }

    /// Read the configuration again and apply what can change at runtime;
    /// logs the outcome (`trigger` says what asked: `SIGHUP`, `POST
    /// /reload`) and counts it.
    pub fn reload(&self, trigger: &str) -> Result<ReloadSummary, ReloadError> {
        let _one = self.one_at_a_time.lock();
        let result = self.try_reload();
        match &result {
            Ok(summary) => {
                Metrics::add(&self.metrics.nr_reloads, 1);
                for setting in &summary.needs_restart {
                    tracing::warn!(
                        trigger,
                        setting = setting.as_str(),
                        "reload: {setting} changed in the file but cannot change at runtime: it \
                         needs a restart (still running with the old value)"
                    );
                }
                tracing::info!(
                    trigger,
                    generation = summary.generation,
                    clients = summary.nr_clients,
                    added = ?summary.clients_added,
                    removed = ?summary.clients_removed,
                    changed = ?summary.clients_changed,
                    applied = ?summary.applied,
                    needs_restart = ?summary.needs_restart,
                    "config reloaded: new sessions get the new allow-list and limits; open \
                     sessions keep theirs"
                );
            }
            Err(e) => {
                Metrics::add(&self.metrics.nr_reloads_failed, 1);
                tracing::error!(trigger, error = %e, "config reload refused: {e}");
            }
        }
        result
    }

    fn try_reload(&self) -> Result<ReloadSummary, ReloadError> {
        let wanted = (self.load)()
            .map_err(ReloadError::Invalid)?
            .ok_or(ReloadError::NoFile)?;
        wanted
            .validate()
            .and_then(|()| crate::tls::check(&wanted))
            .map_err(|e| ReloadError::Invalid(e.to_string()))?;
        let (_, running) = self.live.get();
        let (next, mut summary) = plan(&running, &wanted);
        summary.generation = self.live.replace(Arc::new(next));
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        toml::from_str(toml).expect("test config parses")
    }

    #[test]
    fn a_plan_applies_clients_and_limits_and_names_the_rest() {
        let running = config(
            "listen = \"127.0.0.1:1\"\n[[clients]]\nclient_id = \"a\"\n\
             [[clients]]\nclient_id = \"b\"\npassword = \"x\"\n",
        );
        let wanted = config(
            "listen = \"127.0.0.1:2\"\n[limits]\nmax_sessions = 5\ncall_max_age_secs = 9\n\
             [runtime]\nshards = 3\n[[clients]]\nclient_id = \"b\"\npassword = \"y\"\n\
             [[clients]]\nclient_id = \"c\"\n",
        );
        let (next, summary) = plan(&running, &wanted);
        assert_eq!(next.clients.len(), 2);
        assert_eq!(next.limits.max_sessions, 5);
        assert_eq!(next.listen, running.listen, "a restart setting is kept");
        assert_eq!(
            next.limits.call_max_age_secs,
            running.limits.call_max_age_secs
        );
        assert_eq!(next.runtime.shards, running.runtime.shards);
        assert_eq!(summary.clients_added, ["c"]);
        assert_eq!(summary.clients_removed, ["a"]);
        assert_eq!(summary.clients_changed, ["b"]);
        assert_eq!(summary.applied, ["clients", "limits.max_sessions"]);
        assert_eq!(
            summary.needs_restart,
            ["limits.call_max_age_secs", "listen", "runtime.shards"]
        );
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let c = config("[[clients]]\nclient_id = \"a\"\nservices = [\"all-events\"]\n");
        let (_, summary) = plan(&c, &c);
        assert!(summary.applied.is_empty() && summary.needs_restart.is_empty());
        assert!(summary.clients_added.is_empty() && summary.clients_changed.is_empty());
    }

    #[test]
    fn a_reader_sees_a_swap_once_and_an_invalid_file_swaps_nothing() {
        let live = Arc::new(LiveConfig::new(Arc::new(Config::default())));
        let mut cached = Cached::new(live.clone());
        let metrics = Arc::new(Metrics::default());
        let files = Arc::new(Mutex::new(vec![
            Ok(Some(config("[[clients]]\nclient_id = \"a\"\n"))),
            Err("bad.toml: expected `=`".to_string()),
            Ok(None),
        ]));
        let loader: Loader = Box::new(move || files.lock().remove(0));
        let reloader = Reloader::new(live.clone(), metrics.clone(), loader);
        let summary = reloader.reload("test").expect("a valid file");
        assert_eq!(summary.generation, 1);
        assert!(cached.config.clients.is_empty());
        cached.refresh();
        assert_eq!(cached.config.clients.len(), 1);
        let invalid = reloader.reload("test").unwrap_err();
        assert!(invalid.to_string().contains("expected `=`"), "{invalid}");
        assert_eq!(reloader.reload("test"), Err(ReloadError::NoFile));
        assert_eq!(live.generation(), 1);
        assert_eq!(live.get().1.clients.len(), 1, "the running list is kept");
        let s = metrics.snapshot();
        assert_eq!((s.nr_reloads, s.nr_reloads_failed), (1, 2));
    }
}
