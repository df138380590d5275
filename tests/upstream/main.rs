//! The router's upstream (`serve --upstream`), one binary (`cargo test
//! --test upstream`):
//!
//! * `e2e` — `sim-pg` → `serve --upstream` → raw clients, byte for byte;
//! * `failover` — upstream loss and failover (fake PGs scripted per
//!   connection).

mod e2e;
mod failover;
mod supervisor;

/// The `ctirouter` binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_ctirouter");
