//! ctirouter: a thread-per-core event router for Cisco contact centers.
//!
//! It holds the upstream session to a Peripheral Gateway's CTI Server (or runs
//! the built-in simulated PG), decodes the GED-188 event stream once on a
//! pinned ingest core, and fans it out over SPSC rings to shard cores that
//! serve downstream CTI clients speaking the same protocol.
//!
//! # Layout
//! * [`proto`] — sans-IO GED-188 codec (no sockets, no clocks)
//! * [`config`] — settings, TOML file and defaults
//! * [`router`] — starting and stopping the executors
//! * [`ingest`] — the ingest core: event source, fan-out to shards, control
//! * [`shard`] — listener, sessions, dispatch and flush on each shard core
//! * [`session`] — sans-IO GED-188 sessions: server side (downstream
//!   clients), client side (upstream), frame reassembly, backoff, PG status
//! * [`link`] — the messages between cores (`ToShard`, `ToIngest`)
//! * [`memrouter`] — the routing cores wired together in memory (tests)
//! * [`ring`] — ingest ⇄ shard transport (batched SPSC + doorbell)
//! * [`event`] — an event as it crosses cores (`Arc<Event>`)
//! * [`call`] — a call's data as ingest folds it; call-bracket facts
//! * [`targets`] — the keys an event must reach (computed by ingest)
//! * [`sim`] — deterministic PG simulator
//! * [`metrics`] — counters shared by all cores
//!
//! # Threading model
//! One glommio executor for ingest and one per shard, each pinned to a core.
//! Per-core state is created on its core and never shared; only ring ends,
//! immutable `Arc<Event>`s and atomic counters cross cores.

pub mod call;
pub mod config;
pub mod event;
pub mod ingest;
pub mod keys;
pub mod link;
pub mod memrouter;
pub mod metrics;
pub mod proto;
pub mod ring;
pub mod router;
pub mod session;
pub mod shard;

pub mod sim;
pub mod status;
pub mod targets;
pub mod tools;
pub mod tuning;
