//! One client connection's I/O on a shard: the read task (bytes in, through
//! the shard core) and the write task, raced against a kill switch. The
//! session's state lives in the core; this holds the socket's wake-ups.
//!
//! Output is written where it was made: at the end of the core call that
//! queued it (a ring batch, a request), the driver sends it at once with
//! one vectored non-blocking send straight from the batch arenas and the
//! session's own bytes ([`send_now`]). Only what the socket does not take
//! goes to the write task ([`Conn::rest`]), which waits for room — so the
//! event path wakes no task per delivery, and events are never queued behind
//! other connections' tasks (docs/design.md §5). The output is
//! double-buffered so events keep queueing while a write is in flight.

use std::cell::RefCell;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::time::Instant;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::notify::Notify;
use super::outbox::{Cursor, Outbox, MAX_IOV};
use super::{Shard, CLOSE_FLUSH_GRACE};
use crate::config::RuntimeConfig;
use crate::ids::SessionId;
use crate::metrics::Metrics;
use crate::session::frames::FrameBuffer;
use crate::session::server::CloseReason;

/// A connection's socket and wake-ups, shared by its tasks and the shard's
/// driver.
pub struct Conn {
    /// The socket, for the driver's sends (it outlives this: see [`serve`]).
    pub fd: RawFd,
    /// Output is waiting: wake the writer.
    pub write_ready: Notify,
    /// Drop the socket now (a slow consumer cut mid-write).
    pub kill: Notify,
    /// Ingest registered the session (its OPEN_CONF is queued), or it is
    /// ending: the reader goes on with the frames that followed the OPEN_REQ.
    pub activated: Notify,
    /// Output the driver began to send and the socket did not take whole,
    /// with how far it got: the writer finishes it before anything else.
    pub rest: RefCell<Option<(Outbox, Cursor)>>,
}

impl Conn {
    pub fn new(fd: RawFd) -> Conn {
        Conn {
            fd,
            write_ready: Notify::default(),
            kill: Notify::default(),
            activated: Notify::default(),
            rest: RefCell::new(None),
        }
    }
}

/// Serve connection `id` until it ends, then remove it from the shard. The
/// socket closes when the tasks end, and the shard forgets the connection
/// (and [`Conn::fd`]) in the same step, before anything else runs.
pub async fn serve(shard: Rc<Shard>, id: SessionId, conn: Rc<Conn>, stream: TcpStream) {
    let fd = stream.as_raw_fd();
    debug_assert_eq!(fd, conn.fd);
    let (reader, writer) = futures_lite::io::split(stream);
    let killed = async {
        conn.kill.wait().await;
        shard
            .core
            .borrow()
            .closing_reason(id)
            .unwrap_or(CloseReason::SlowConsumer)
    };
    let reason = futures_lite::future::or(
        futures_lite::future::or(
            read_loop(&shard, id, &conn, reader),
            write_loop(&shard, id, &conn, fd, writer),
        ),
        killed,
    )
    .await;
    shard.remove(id, reason);
}

/// Read frames until the peer goes away; once the session is closing, stop
/// reading and leave the end to the writer.
async fn read_loop(
    shard: &Rc<Shard>,
    id: SessionId,
    conn: &Conn,
    mut reader: futures_lite::io::ReadHalf<TcpStream>,
) -> CloseReason {
    let closing = || shard.core.borrow().closing_reason(id);
    let held = || shard.core.borrow().is_held(id);
    let mut input = FrameBuffer::for_client();
    loop {
        let n = match reader.read(input.spare()).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        input.filled(n);
        loop {
            shard.events_first();
            shard.with_core(|core| core.on_bytes(id, &mut input, Instant::now()));
            if closing().is_some() || !held() {
                break;
            }
            // The frames after an OPEN_REQ wait until ingest registered the
            // session: its OPEN_CONF (with the agent's state) comes first.
            while held() && closing().is_none() {
                conn.activated.wait().await;
            }
        }
        if closing().is_some() {
            break;
        }
    }
    match closing() {
        // Closing already: let the writer flush and finish.
        Some(_) => futures_lite::future::pending().await,
        None => CloseReason::Disconnected,
    }
}

/// Finish what the driver could not send at once, and write the output
/// whenever notified; after the session starts closing, flush what is left
/// (within a grace period) and end.
async fn write_loop(
    shard: &Rc<Shard>,
    id: SessionId,
    conn: &Conn,
    fd: RawFd,
    mut writer: futures_lite::io::WriteHalf<TcpStream>,
) -> CloseReason {
    let closing = || shard.core.borrow().closing_reason(id);
    let mut spare = Outbox::default();
    loop {
        conn.write_ready.wait().await;
        loop {
            let from = match conn.rest.borrow_mut().take() {
                Some((rest, at)) => {
                    spare = rest;
                    at
                }
                None if shard.core.borrow_mut().take_output(id, &mut spare) => Cursor::default(),
                None => break,
            };
            let written = match closing() {
                None => write_out(shard, fd, &mut writer, &spare, from).await,
                Some(_) => {
                    futures_lite::future::or(
                        write_out(shard, fd, &mut writer, &spare, from),
                        async {
                            glommio::timer::sleep(CLOSE_FLUSH_GRACE).await;
                            false
                        },
                    )
                    .await
                }
            };
            spare.clear();
            shard.core.borrow_mut().written(id);
            if !written {
                return closing().unwrap_or(CloseReason::Disconnected);
            }
        }
        if let Some(reason) = closing() {
            let _ = writer.flush().await;
            return reason;
        }
    }
}

/// How far a [`send_now`] got.
pub enum Sent {
    /// Everything was written.
    All,
    /// The socket took no more (full, or failed: the writer's next write
    /// reports the error); the rest starts here.
    Stopped(Cursor),
}

/// Send `out` from `at` with vectored non-blocking sends straight from the
/// arenas it points into, for as long as the socket takes it.
pub fn send_now(metrics: &Metrics, fd: RawFd, out: &Outbox, mut at: Cursor) -> Sent {
    // SAFETY: `fd` is an open connection's socket (`Conn::fd`, `serve`).
    let sock = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = socket2::SockRef::from(&sock);
    while !out.done(at) {
        let sent = {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = out.fill(at, &mut iov);
            sock.send_vectored_with_flags(&iov[..n], libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        };
        Metrics::add(&metrics.nr_writes, 1);
        match sent {
            Ok(n) => at = out.advance(at, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Sent::Stopped(at),
        }
    }
    Sent::All
}

/// Write all of `out` from `at`: [`send_now`], and when the socket is full,
/// wait for room through glommio (one plain write of the current chunk) and
/// go on. False = the peer is gone.
async fn write_out(
    shard: &Shard,
    fd: RawFd,
    writer: &mut futures_lite::io::WriteHalf<TcpStream>,
    out: &Outbox,
    mut at: Cursor,
) -> bool {
    loop {
        match send_now(&shard.metrics, fd, out, at) {
            Sent::All => return true,
            Sent::Stopped(stopped) => match writer.write(out.rest_of_chunk(stopped)).await {
                Ok(n) if n > 0 => at = out.advance(stopped, n),
                _ => return false,
            },
        }
    }
}

/// Apply the configured kernel socket buffer sizes (0 = leave the default).
pub fn apply_socket_buffers(stream: &TcpStream, runtime: &RuntimeConfig) {
    if runtime.socket_send_buffer == 0 && runtime.socket_recv_buffer == 0 {
        return;
    }
    // SAFETY: the fd belongs to `stream`, which outlives this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    let sock = socket2::SockRef::from(&fd);
    if runtime.socket_send_buffer > 0 {
        let _ = sock.set_send_buffer_size(runtime.socket_send_buffer);
    }
    if runtime.socket_recv_buffer > 0 {
        let _ = sock.set_recv_buffer_size(runtime.socket_recv_buffer);
    }
}
