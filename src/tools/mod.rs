//! Tools around the router that are not the router: the standalone simulated
//! CTI Server (`sim-pg`), the `watch` and `ctl` clients, and record/replay files. They
//! use mio, not glommio, so they never share the router's runtime.
//!
//! * `sim_pg` (+ `sim_pg_client`, `sim_pg_requests`) — `ctirouter sim-pg`, one thread, mio
//! * `cti_client` — a CTI client connection (OPEN, heartbeats, close) for the tools
//! * `cti_names` — names of status codes, failure codes and connection states
//! * `ctl` (+ `ctl_plan`, `ctl_requests`) — `ctirouter ctl`, one agent driven by hand
//! * `watch` (+ `watch_format`, `watch_team`) — `ctirouter watch`, events as lines or JSON
//! * `record` — `ctirouter record`, an upstream stream into a file
//! * `recording` — the recording file format (reader and writer)

pub mod cti_client;
pub mod cti_names;
pub mod ctl;
pub mod ctl_plan;
pub mod ctl_requests;
pub mod record;
pub mod recording;
pub mod sim_pg;
pub mod sim_pg_client;
pub mod sim_pg_requests;
pub mod sim_pg_supervisor;
pub mod watch;
pub mod watch_format;
pub mod watch_team;
