//! The tools' black-box tests, one binary (`cargo test --test tools`): the
//! `ctirouter` subcommands beside `serve` and the shipped tuning files.
//!
//! * `ctl` — `ctl` against the router in front of a scripted fake CTI Server;
//! * `record_replay` — `record` → file → `serve --replay`;
//! * `sim_pg` — `sim-pg` as a CTI Server;
//! * `sim_pg_requests` — `sim-pg` answering requests, its fault switches;
//! * `sim_pg_supervisor` — `sim-pg` serving supervisors and their teams;
//! * `tuning_files` — `tuning/*.toml` and `tuning/host-tune.sh`;
//! * `watch` — `watch` against `sim-pg` and a fake server;
//! * `watch_team` — `watch --team` as a supervisor against `sim-pg`.

mod ctl;
mod record_replay;
mod sim_pg;
mod sim_pg_requests;
mod sim_pg_supervisor;
mod tuning_files;
mod watch;
mod watch_team;

/// The `ctirouter` binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_ctirouter");
