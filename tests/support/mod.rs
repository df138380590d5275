//! Black-box test support for the router tests (`tests/router_*.rs`):
//!
//! * [`RouterProcess`] — the `ctirouter serve` binary as a child process on a
//!   loopback port, killed on drop;
//! * [`Client`] — a raw GED-188 client over a std `TcpStream` (bytes in, bytes
//!   out; the codec only builds and checks frames);
//! * [`Reference`] and [`RunTracker`] — the simulator's deterministic event
//!   stream regenerated in the test, and a check that what a session received
//!   is a contiguous, gap-free, duplicate-free run of it;
//! * raw frame builders, a floating-part walker and a small PRNG.
//!
//! # Layout
//! * `process` — [`RouterProcess`]
//! * `client` — [`Client`], [`Recv`], OPEN_REQ helpers
//! * `frames` — raw frame builders and checks (header, fixed, floating)
//! * `reference` — [`Reference`], [`RunTracker`]
//!
//! Each test binary uses only part of this module.
#![allow(dead_code, unused_imports)]

mod client;
mod frames;
mod process;
mod reference;

pub use client::*;
pub use frames::*;
pub use process::*;
pub use reference::*;

use std::time::Duration;

use ctirouter::proto::Version;

/// The router binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ctirouter");
/// Longest wait for the `listening` line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Default wait for an answer the router owes right away.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// IdleTimeout value that disables the idle check.
pub const NO_IDLE: u32 = 0xFFFF_FFFF;
/// Every CallMsgMask bit (what CTM sends).
pub const ALL_CALLS: u32 = 0xFFFF_FFFF;
/// Every AgentStateMask bit defined by docs/protocol.md §5.3.
pub const ALL_AGENT_STATES: u32 = 0x3FFF;
/// Credentials of the readiness probe when no client list is configured.
pub const PROBE_CLIENT: (&str, &[u8]) = ("probe", b"");
/// The simulator's default PeripheralID.
pub const PERIPHERAL_ID: u32 = 5000;

pub fn v(n: u32) -> Version {
    Version::new(n).expect("a served version")
}

/// SplitMix64: deterministic test randomness without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Raise RLIMIT_NOFILE's soft limit to at least `want` (up to the hard limit).
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
