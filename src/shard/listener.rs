//! A shard's listening socket, and what the shard does when the process is
//! out of file descriptors: robust servers keep one spare descriptor so that
//! at EMFILE/ENFILE they can still take each waiting connection off the
//! accept queue and close it at once — the client sees a clean close instead
//! of hanging in the queue, and the shard does not retry `accept` in a loop.
//! Logged once per episode (and at most every [`REPORT_EVERY`] while it
//! lasts), with the count of connections closed.

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};
use std::time::{Duration, Instant};

use glommio::net::TcpListener;

use crate::metrics::Metrics;

/// Backlog of each shard's listener (glommio's own bind uses the same).
const BACKLOG: i32 = 1024;
/// Most connections closed per drain, so one drain cannot hold up the shard.
const MAX_DRAIN: usize = 1024;
/// How often an ongoing episode is reported again.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The listener and its raw descriptor (glommio's `TcpListener` does not
/// expose it; the drain accepts on it directly).
pub struct Listener {
    pub inner: TcpListener,
    fd: RawFd,
}

/// Bind the shard's listener with SO_REUSEPORT (every shard binds the same
/// port). Called on the shard's executor so the socket belongs to it.
pub fn bind(listen: SocketAddr) -> std::io::Result<Listener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(listen),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_port(true)?;
    socket.bind(&listen.into())?;
    socket.listen(BACKLOG)?;
    let fd = socket.into_raw_fd();
    // SAFETY: `fd` is a bound, listening socket we own; the TcpListener
    // takes ownership and closes it when dropped (with the Listener).
    let inner = unsafe { TcpListener::from_raw_fd(fd) };
    Ok(Listener { inner, fd })
}

/// Whether an accept error means the process (or system) is out of descriptors.
pub fn is_fd_exhaustion(error: Option<i32>) -> bool {
    matches!(error, Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// One shard's spare descriptor and the state of an out-of-descriptors episode.
pub struct FdReserve {
    spare: Option<File>,
    episode: Option<Episode>,
}

struct Episode {
    started: Instant,
    last_report: Instant,
    /// Connections closed at once since the episode started.
    nr_closed: u64,
    /// … and since the last report.
    nr_unreported: u64,
}

impl FdReserve {
    pub fn new() -> FdReserve {
        FdReserve {
            spare: open_spare(),
            episode: None,
        }
    }

    /// An accept succeeded: if an episode was on, it is over (say so once).
    /// Takes the spare back if it could not be reopened before.
    pub fn accepted(&mut self, shard: usize) {
        if self.spare.is_none() {
            self.spare = open_spare();
        }
        if let Some(episode) = self.episode.take() {
            tracing::info!(
                shard,
                closed = episode.nr_closed,
                lasted_ms = episode.started.elapsed().as_millis() as u64,
                "file descriptors available again; {} connection(s) were closed at once meanwhile",
                episode.nr_closed
            );
        }
    }

    /// `accept` failed with EMFILE/ENFILE: give up the spare, accept and
    /// close every connection waiting (up to [`MAX_DRAIN`]), take the spare
    /// back. Returns how many were closed (0: nothing could be done now —
    /// another thread took the freed descriptor, say; the caller backs off).
    pub fn drain(&mut self, shard: usize, listener: &Listener, metrics: &Metrics) -> u64 {
        drop(self.spare.take());
        let nr_closed = accept_and_close(listener.fd);
        self.spare = open_spare();
        Metrics::add(&metrics.nr_refused_fd_limit, nr_closed);
        let now = Instant::now();
        match &mut self.episode {
            None => {
                tracing::warn!(
                    shard,
                    closed = nr_closed,
                    spare = self.spare.is_some(),
                    "out of file descriptors (RLIMIT_NOFILE or the system's): new connections \
                     are closed at once until descriptors free up"
                );
                self.episode = Some(Episode {
                    started: now,
                    last_report: now,
                    nr_closed,
                    nr_unreported: 0,
                });
            }
            Some(episode) => {
                episode.nr_closed += nr_closed;
                episode.nr_unreported += nr_closed;
                if now.duration_since(episode.last_report) >= REPORT_EVERY
                    && episode.nr_unreported > 0
                {
                    tracing::warn!(
                        shard,
                        closed = episode.nr_unreported,
                        closed_in_episode = episode.nr_closed,
                        "still out of file descriptors: {} more connection(s) closed at once",
                        episode.nr_unreported
                    );
                    episode.last_report = now;
                    episode.nr_unreported = 0;
                }
            }
        }
        nr_closed
    }
}

impl Default for FdReserve {
    fn default() -> Self {
        Self::new()
    }
}

fn open_spare() -> Option<File> {
    File::open("/dev/null").ok()
}

/// Accept and close the connections waiting on `fd` until none is left (or
/// a descriptor cannot be had); returns how many.
fn accept_and_close(fd: RawFd) -> u64 {
    // The listener is blocking (glommio accepts through io_uring): make it
    // non-blocking for the drain only, as glommio's own accept fast path does.
    // SAFETY: fcntl on a descriptor we own, with plain flag values.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return 0;
    }
    // SAFETY: fcntl(F_SETFL) on the listener's descriptor, which we own, with
    // an int flag argument (no pointers); it only changes the file status.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return 0;
    }
    let mut nr_closed = 0;
    for _ in 0..MAX_DRAIN {
        // SAFETY: accept4 with null address pointers is allowed; the new
        // descriptor, if any, is ours and closed right away.
        let conn = unsafe {
            libc::accept4(
                fd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if conn >= 0 {
            // SAFETY: `conn` was just returned by accept4 and is not shared.
            unsafe { libc::close(conn) };
            nr_closed += 1;
            continue;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) | Some(libc::ECONNABORTED) => continue,
            // EAGAIN: none left; EMFILE/ENFILE: the freed slot went elsewhere.
            _ => break,
        }
    }
    // SAFETY: fcntl(F_SETFL) on our own descriptor with an int argument (no
    // pointers): restores the flags read above.
    unsafe { libc::fcntl(fd, libc::F_SETFL, flags) };
    nr_closed
}
