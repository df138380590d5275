//! ctirouter: a thread-per-core event router for Cisco contact centers.
//!
//! It holds the upstream session to a Peripheral Gateway's CTI Server (or runs
//! the built-in simulated PG), decodes the GED-188 event stream once on a
//! pinned ingest core, and fans it out over SPSC rings to shard cores that
//! serve downstream CTI clients speaking the same protocol.
//!
//! # Layout
//! Read from the bottom of the stack up; every import points down it.
//! * [`proto`] — sans-IO GED-188 codec (no sockets, no clocks); the one
//!   mapping from a decode or request error to a protocol status
//! * [`ids`] — session ids, MonitorIDs, InvokeIDs and service sets as types
//! * [`keys`], [`targets`], [`event`], [`call`], [`status`] — routing keys,
//!   the keys an event must reach, an event as it crosses cores
//!   (`Arc<Event>`), a call's data and bracket facts, PG status
//! * [`session`] — sans-IO GED-188 sessions: server side (downstream
//!   clients), client side (upstream), frame reassembly, backoff, PG status,
//!   and what a request names and may act on (scope)
//! * [`ring`] — ingest ⇄ shard transport (batched SPSC + doorbell)
//! * [`link`] — the messages between cores (`ToShard`, `ToIngest`)
//! * [`ingest`] — the ingest core: [`ingest::core::IngestCore`] (routing
//!   state and rules, requests proxied to the CTI Server and their pending
//!   table, sans I/O) and its driver (event sources, fan-out to the rings,
//!   the control loop)
//! * [`shard`] — a shard core: [`shard::core::ShardCore`] (sessions,
//!   monitor index, dispatch, monitor requests, sans I/O) and its driver
//!   (listener, connection tasks, ring drain)
//! * [`memrouter`] — the two routing cores wired together in memory, on a
//!   simulated clock (the routing rules' tests)
//! * [`router`] — starting and stopping the executors; [`reload`] — the
//!   configuration sessions open under, swapped by a reload
//! * [`config`], [`tuning`] — settings (TOML file, defaults, validation)
//!   and core-pinning files; [`tls`] — the TLS settings as rustls
//!   configurations (certificates and keys loaded from PEM files)
//! * [`sim`] — deterministic PG simulator; [`tools`] — sim-pg, watch,
//!   record
//! * [`metrics`] — counters shared by all cores and the fan-out latency
//!   histogram (`serve` logs them every `--stats-every` seconds)
//! * [`admin`] — the admin HTTP listener on a thread of its own: metrics,
//!   health, the status page (it only reads [`metrics`])
//!
//! # Threading model
//! One glommio executor for ingest and one per shard, each pinned to a core.
//! Per-core state is created on its core and never shared; only ring ends,
//! immutable `Arc<Event>`s and atomic counters cross cores. On each core a
//! plain-data routing core holds the state and the rules; thin glommio tasks
//! (its driver) feed it what happened (a ring batch, a client's bytes, a
//! tick) and carry out what it staged (ring items, writer wake-ups), so the
//! rules never wait and never see a socket.

pub mod admin;
pub mod call;
pub mod config;
pub mod event;
pub mod ids;
pub mod ingest;
pub mod keys;
pub mod link;
pub mod memrouter;
pub mod metrics;
pub mod proto;
pub mod reload;
pub mod ring;
pub mod router;
pub mod session;
pub mod shard;

pub mod sim;
pub mod status;
pub mod targets;
pub mod tls;
pub mod tools;
pub mod tuning;
