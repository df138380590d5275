//! The request services' tests, one binary (`cargo test --test requests`):
//! requests proxied to the CTI Server (docs/requests.md §2, §3, §5).
//!
//! * `routing` — the proxy rules on the routing cores wired together in
//!   memory (`ctirouter::memrouter::MemRouter`), on a simulated clock;
//! * `scope` — what a Client Events session may act on (docs/requests.md §4);
//! * `model` — random request sequences, each answered exactly once;
//! * `sim_model` — random request sequences against the simulated PG as
//!   the upstream: each answered once, All Events streams whole;
//! * `loopback` — the router binary between raw clients and a fake CTI
//!   Server over loopback;
//! * `simulated` — the router binary with its built-in simulated PG
//!   answering: a desktop drives an agent end to end.

mod loopback;
mod model;
mod routing;
mod scope;
mod sim_model;
mod simulated;

const BIN: &str = env!("CARGO_BIN_EXE_ctirouter");
