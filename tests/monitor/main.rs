//! The monitor services' tests, one binary (`cargo test --test monitor`):
//! the router in-process with a scripted fake PG (`testkit::Harness`), on
//! the built-in simulator, or its routing cores wired together in memory.
//!
//! * `call_brackets` — BEGIN_CALL / END_CALL around a watcher's association;
//! * `client_events` — the Client Events service;
//! * `client_monitor` — the Client Monitor service;
//! * `model` — model-based test against `testkit::model`;
//! * `peripheral` — the Peripheral Monitor service;
//! * `routing_cores` — the monitor rules on `ctirouter::memrouter::MemRouter`.

mod call_brackets;
mod client_events;
mod client_monitor;
mod model;
mod peripheral;
mod routing_cores;
