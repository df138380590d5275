//! The shared clock: nanoseconds of CLOCK_MONOTONIC. The driver stamps each
//! event with it just before the write and the swarm reads it right after a
//! read returns, in the same process, so the difference is the end-to-end
//! latency (upstream write → client read).
//!
//! Or, with [`ReceiveTime::Kernel`], the time the kernel put the bytes in the
//! client's socket (SO_TIMESTAMPNS), taken when the server's send reached it:
//! the server's delivery alone, without the wait for the harness's reading
//! thread (which reads every session in turn: one busy with 2,000 replies
//! reads an All Events session late, however early its bytes came). A read
//! that takes several sends' bytes carries the last one's time, so an event
//! is never counted earlier than it came. The kernel turns stamping on
//! asynchronously when the first socket asks, so the first reads of a run
//! may come unstamped; they keep the read time (never earlier than true).
//! [`recv_stamped`] is the one read that does I/O here.

use std::io;
use std::os::fd::RawFd;

/// When a delivery counts as received: `[load] receive_time` / `run --receive-time`.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum ReceiveTime {
    /// When the harness's read returned (the end-to-end latency a client sees).
    #[default]
    Read,
    /// When the bytes reached the client's socket (the kernel's receive time).
    Kernel,
}

/// SO_TIMESTAMPNS (= SCM_TIMESTAMPNS) on Linux; not in this libc for every target.
const SO_TIMESTAMPNS: libc::c_int = 35;

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into a valid, initialized timespec; both
    // clocks used here always exist on Linux.
    unsafe {
        libc::clock_gettime(clock, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Ask the kernel to time every receive on `fd` (SO_TIMESTAMPNS).
pub fn enable_receive_stamps(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `on` (an int of the size given) and nothing else.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One non-blocking read into `out`, with the kernel's receive time of the
/// bytes (on [`now_ns`]'s clock) when the socket has stamps on.
pub fn recv_stamped(fd: RawFd, out: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec {
        iov_base: out.as_mut_ptr().cast(),
        iov_len: out.len(),
    };
    // Room for one control message holding a timespec, u64-aligned.
    let mut control = [0u64; 8];
    // SAFETY: a zeroed msghdr is valid (null name, no control); the fields
    // set below point at `iov` and `control`, which outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` describes `out` and `control`, both valid for writes of
    // the lengths given.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut realtime = None;
    // SAFETY: the CMSG macros walk the control buffer the kernel filled,
    // within `msg_controllen`; the data of an SCM_TIMESTAMPNS is a timespec,
    // read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == SO_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                realtime = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    // The kernel stamps with the wall clock: moved onto the monotonic one by
    // their difference now (both read within ~100 ns of each other).
    let arrival = realtime.map(|rt| {
        let offset = clock_ns(libc::CLOCK_REALTIME).saturating_sub(now_ns());
        rt.saturating_sub(offset)
    });
    Ok((n as usize, arrival))
}

/// Nanoseconds since an arbitrary fixed point (boot), the same for every
/// thread and process on the machine.
#[inline]
pub fn now_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
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

    /// Bytes sent, then read 20 ms later: the kernel's time is the send's,
    /// not the read's, on the same clock as `now_ns`.
    #[test]
    fn a_kernel_stamp_is_when_the_bytes_arrived_not_when_they_were_read() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        enable_receive_stamps(server.as_raw_fd()).unwrap();
        // The kernel turns receive stamping on asynchronously when the first
        // socket asks: until then reads come unstamped. Wait for a stamped
        // one (bounded).
        let mut warm = [0u8; 1];
        let stamping = (0..200).any(|_| {
            client.write_all(b"w").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(2));
            matches!(
                recv_stamped(server.as_raw_fd(), &mut warm),
                Ok((1, Some(_)))
            )
        });
        assert!(stamping, "the kernel never stamped a receive");
        server.set_nonblocking(true).unwrap();
        while let Ok((1.., _)) = recv_stamped(server.as_raw_fd(), &mut warm) {}
        let sent = now_ns();
        client.write_all(b"hello").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let read_at = now_ns();
        let mut buf = [0u8; 16];
        let (n, arrival) = recv_stamped(server.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        let arrival = arrival.expect("stamps are on");
        // Clock conversion error is well under a millisecond; the read came 20 ms later.
        assert!(
            arrival + 1_000_000 >= sent,
            "arrival {arrival} before send {sent}"
        );
        assert!(
            arrival + 10_000_000 < read_at,
            "arrival {arrival} not before the read {read_at}"
        );
        // A socket without stamps (the client's): the bytes, and no time.
        server.write_all(b"back").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (n, arrival) = recv_stamped(client.as_raw_fd(), &mut buf).unwrap();
        assert_eq!((&buf[..n], arrival), (&b"back"[..], None));
    }
}
