//! The shared clock: nanoseconds of CLOCK_MONOTONIC. The driver stamps each
//! event with it just before the write and the swarm reads it right after a
//! read returns, in the same process, so the difference is the end-to-end
//! latency (upstream write → client read). No I/O here.

/// Nanoseconds since an arbitrary fixed point (boot), the same for every
/// thread and process on the machine.
#[inline]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into a valid, initialized timespec; the
    // monotonic clock always exists on Linux (it cannot fail here).
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_never_goes_back() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a && a > 0);
    }
}
