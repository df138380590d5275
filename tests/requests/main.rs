//! The request services' tests, one binary (`cargo test --test requests`):
//! requests proxied to the CTI Server (docs/requests.md §2, §3, §5).
//!
//! * `routing` — the proxy rules on the routing cores wired together in
//!   memory (`ctirouter::memrouter::MemRouter`), on a simulated clock;
//! * `local` — the answers the router gives itself (docs/requests.md §6)
//!   and Connection Monitor, in memory, with the upstream counting requests;
//! * `local_binary` — the same answers through the router binary, from raw
//!   clients at v14, v19 and v24, a fake CTI Server counting requests;
//! * `scope` — what a Client Events session may act on (docs/requests.md §4);
//! * `matrix` — every request type, every field, from clients at v13–v24
//!   to an upstream at v24 and v14 and its confirmation back, in memory;
//! * `model` — random request sequences, each answered exactly once;
//! * `sim_model` — random request sequences against the simulated PG as
//!   the upstream: each answered once, All Events streams whole;
//! * `loopback` — the router binary between raw clients and a fake CTI
//!   Server over loopback;
//! * `versions` — the same, clients at v13, v19, v20 and v24 against a CTI
//!   Server at v24 and at v14: each request and CONF decoded at the far
//!   end's version with the sender's values;
//! * `failover` — requests in flight when the upstream is lost: FAILURE_CONF
//!   15 to each, none replayed on side B, late replies delivered to no one;
//! * `load` — 2,000 desktops' requests through one router at once, each CONF
//!   to its own session;
//! * `server` — the Server service: recording servers registered through
//!   the router get desktops' START/STOP_RECORDING_REQ, their CONFs go back
//!   (exclusive, round-robin, parallel; a server closing or silent);
//! * `simulated` — the router binary with its built-in simulated PG
//!   answering: a desktop drives an agent end to end.
//!
//! `fake_cti` is the fake CTI Server of the loopback tests, which answers
//! proxied requests.

mod failover;
mod fake_cti;
mod load;
mod local;
mod local_binary;
mod loopback;
mod matrix;
mod model;
mod routing;
mod scope;
mod server;
mod sim_model;
mod simulated;
mod versions;

const BIN: &str = env!("CARGO_BIN_EXE_ctirouter");
