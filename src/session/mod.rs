//! GED-188 sessions, sans I/O: both sides of a CTI Server session as state
//! machines that read whole frames and append the frames they send to an
//! output buffer. The callers own the sockets and the clocks — glommio tasks
//! on the router's cores, mio loops in the tools — so everything here is
//! tested in memory.
//!
//! * `server` — a downstream client's session with the router (the CTI
//!   Server side): OPEN checks, OPEN_CONF, heartbeats, masks, requests
//! * `client` — the router's (or a tool's) session with a CTI Server: OPEN,
//!   heartbeats and the 3-missed rule, CLOSE
//! * `frames` — reassembly of a byte stream into whole frames
//! * `backoff` — when and on which side to reconnect
//! * `pg_status` — the PG status as the upstream tells it
//! * `scope` — what a request names (agent, device, calls), and the rules of
//!   what a session may act on
//! * `variables` — REGISTER_VARIABLES: the call variables a session is sent

pub mod backoff;
pub mod client;
pub mod frames;
pub mod pg_status;
pub mod scope;
pub mod server;
pub mod variables;
