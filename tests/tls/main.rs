//! TLS on both sides of the router, one binary (`cargo test --test tls`);
//! certificates are made in the test (rcgen, `testkit::tls::Pki`):
//!
//! * `downstream` — the TLS port beside the clear one: every event service
//!   over TLS gets what its clear twin gets; client certificates checked
//!   against `client_ca`; a clear-text client on the TLS port refused
//!   without disturbing anyone;
//! * `upstream` — the upstream session over TLS to a fake PG speaking TLS;
//!   a wrong server name is a failed connect (the other side is tried);
//! * `config` — a missing certificate file fails `check-config` and `serve`
//!   naming the file.

mod config;
mod downstream;
mod upstream;

/// The `ctirouter` binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_ctirouter");
