//! The codec's integration tests, one binary (`cargo test --test codec`):
//!
//! * `bad_input` — malformed input against every decoding entry point;
//! * `props` — property tests over generated typed messages;
//! * `random` — bounded random input mutated from the sample vectors;
//! * `supervisor` — the Supervisor service requests and confirmations;
//! * `vectors` — the public sample vectors (`tests/vectors/`).
//!
//! Support: `testkit::vectors` and the frame builders of `testkit`.

mod bad_input;
mod props;
mod random;
mod supervisor;
mod vectors;
