//! The router's black-box session tests, one binary (`cargo test --test
//! router`): each test starts its own router (the `ctirouter` binary as a
//! child process, or in-process with a fake PG) on 127.0.0.1 port 0.
//!
//! * `open` — OPEN_REQ checks, the client list, OPEN_CONF;
//! * `open_conf_state` — what OPEN_CONF says of a Client Events agent, and
//!   OPEN_REQs granted no service;
//! * `robustness` — bad input, garbage clients, a slow consumer;
//! * `session` — versions, heartbeat and idle, close, SIGTERM/SIGINT.
//!
//! Tests that change process-wide state live in binaries of their own:
//! `router_limits` and `router_all_events` raise RLIMIT_NOFILE.

mod colocated;
mod open;
mod open_conf_state;
mod robustness;
mod session;

/// The router binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_ctirouter");

/// A simulator that produces a steady stream in real time.
const SIM: &[&str] = &[
    "--sim-seed",
    "3",
    "--sim-agents",
    "20",
    "--sim-calls-per-sec",
    "10",
    "--sim-speed",
    "1",
];
