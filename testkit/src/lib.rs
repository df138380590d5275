//! Test support for ctirouter's integration tests (`tests/`), benches and
//! tools: one place for what the tests share.
//!
//! * [`client`] — [`Client`], the one raw GED-188 client: a blocking std
//!   `TcpStream` on loopback, opened with an [`OpenSpec`]; read either frame
//!   by frame ([`Client::next`], [`Client::expect_frame`], …) or through its
//!   log of received frames ([`Client::wait_for`], [`Client::expect`],
//!   [`Client::reply`] by InvokeID, the monitor helpers);
//! * [`pg`] — [`FakePg`], the one fake CTI Server (PG) on loopback: either
//!   standard (answers OPEN_REQ, heartbeats and CLOSE_REQ, and sends what the
//!   test writes) or scripted per accepted connection ([`FakeConn`]);
//! * [`events`] — event builders for a fake PG (`delivered`, `established`, …);
//! * [`frames`] — raw frame builders and accessors (`raw_frame`, `decode`,
//!   `shapes`, `monitor_id`, `describe`, …);
//! * [`harness`] — the router in-process ([`TestRouter`]) and a router whose
//!   upstream is a standard [`FakePg`] ([`Harness`]);
//! * [`process`] — the `ctirouter` binary as a child process
//!   ([`RouterProcess`] for `serve`, [`Proc`] for any subcommand). Cargo sets
//!   `CARGO_BIN_EXE_ctirouter` only for the main crate's integration tests,
//!   so the caller passes the binary's path in;
//! * [`stream`] — the simulator's event stream regenerated in the test
//!   ([`Reference`]) and the gap-free-run check ([`RunTracker`]);
//! * [`model`] — the naive reference of the monitor services and of the
//!   call brackets (the monitor model and call-bracket tests);
//! * [`vectors`] — the codec's public sample vectors (`tests/vectors/`);
//! * [`tls`] — a test CA and the certificates it signs (rcgen), for the TLS
//!   client ([`Client::connect_tls`]) and the TLS fake PG ([`FakePg::start_tls`]);
//! * [`Rng`] — deterministic randomness: the simulator's SplitMix64.
//!
//! Everything here talks to 127.0.0.1 only, bounds every wait, and stops
//! (kills and reaps, or joins) whatever it starts when dropped.

pub mod client;
pub mod events;
pub mod frames;
pub mod harness;
pub mod model;
pub mod pg;
pub mod process;
pub mod stream;
pub mod teams;
pub mod tls;
pub mod vectors;

pub use client::*;
pub use events::*;
pub use frames::*;
pub use harness::*;
pub use pg::*;
pub use process::*;
pub use stream::*;
pub use teams::*;

use std::time::Duration;

use ctirouter::proto::Version;

/// Deterministic test randomness: the simulator's SplitMix64.
pub use ctirouter::sim::rng::Rng;

/// Every CallMsgMask bit (what CTM sends).
pub const ALL_CALLS: u32 = 0xFFFF_FFFF;
/// Every AgentStateMask bit defined by docs/protocol.md §5.3.
pub const ALL_AGENTS: u32 = 0x3FFF;
/// IdleTimeout value that disables the idle check.
pub const NO_IDLE: u32 = 0xFFFF_FFFF;
/// The PeripheralID of the simulator and of the fake PG.
pub const PID: u32 = 5000;
/// PeripheralType the fake PG reports (enterprise agent).
pub const PT: u16 = 17;
/// The NULL PeripheralID a plain client's OPEN_REQ carries.
pub const NULL_PERIPHERAL: u32 = 0xFFFF_FFFF;
/// Default wait for something the router owes right away (a reply, an event
/// already sent upstream, a close).
pub const WAIT: Duration = Duration::from_secs(5);
/// Longest wait for a child process's `listening` line.
pub const STARTUP: Duration = Duration::from_secs(10);
/// Credentials of the readiness probe when no client list is configured.
pub const PROBE_CLIENT: (&str, &[u8]) = ("probe", b"");
/// Device every [`Harness::sync`] marker names (as AgentInstrument).
pub const SYNC_DEVICE: &str = "SYNC";
/// Marker AGENT_STATE_EVENTs carry EventReasonCode `MARK_BASE + n`.
pub const MARK_BASE: u16 = 60_000;

/// A protocol version that must be served.
pub fn v(number: u32) -> Version {
    Version::new(number).unwrap_or_else(|| panic!("{number} is not a served version"))
}

/// The newest version (24), what the fake PG and the monitor tests speak.
pub fn v24() -> Version {
    Version::MAX
}

/// `n` random bytes.
pub fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

/// Raise this process's RLIMIT_NOFILE soft limit to at least `want` (up to
/// the hard limit); returns the soft limit now in force. Process-wide: only
/// for test binaries of their own.
pub fn raise_fd_limit(want: libc::rlim_t) -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, initialized struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
    lim.rlim_cur
}

/// CPU time (user+system, seconds) and state of this process's router
/// threads (`ingest-*`, `shard-*`): a stalled executor shows as sleeping
/// with little CPU, a spinning one as running with a lot.
pub fn thread_report() -> String {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return "(no /proc)".into();
    };
    let tick = 100.0; // USER_HZ
    for entry in dir.flatten() {
        let path = entry.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let comm = comm.trim();
        if !(comm.starts_with("ingest") || comm.starts_with("shard")) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // Fields after the ")" of the comm: state is 3rd, utime 14th, stime 15th.
        let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
        out.push(format!(
            "{comm}[{}] {} cpu {:.2}s",
            entry.file_name().to_string_lossy(),
            f.first().unwrap_or(&"?"),
            (num(11) + num(12)) / tick
        ));
    }
    out.sort();
    out.join(", ")
}
