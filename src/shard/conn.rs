//! One client connection's I/O on a shard: the read task (bytes in, through
//! the shard core) and the write task (the session's output out: vectored
//! sends straight from the batch arenas and the session's own bytes, one per
//! wake-up while the socket takes them), raced against a kill switch. The
//! output is double-buffered so events keep queueing while a write is in
//! flight. The session's state lives in the core; this holds the wake-ups.

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

/// A connection's wake-ups, shared by its tasks and the shard's driver.
#[derive(Default)]
pub struct Conn {
    /// Output is waiting: wake the writer.
    pub write_ready: Notify,
    /// Drop the socket now (a slow consumer cut mid-write).
    pub kill: Notify,
    /// Ingest registered the session (its OPEN_CONF is queued), or it is
    /// ending: the reader goes on with the frames that followed the OPEN_REQ.
    pub activated: Notify,
}

/// Serve connection `id` until it ends, then remove it from the shard.
pub async fn serve(shard: Rc<Shard>, id: SessionId, conn: Rc<Conn>, stream: TcpStream) {
    let fd = stream.as_raw_fd();
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

/// Write the output whenever notified; after the session starts closing,
/// flush what is left (within a grace period) and end.
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
        while shard.core.borrow_mut().take_output(id, &mut spare) {
            let written = match closing() {
                None => write_out(shard, fd, &mut writer, &spare).await,
                Some(_) => {
                    futures_lite::future::or(write_out(shard, fd, &mut writer, &spare), async {
                        glommio::timer::sleep(CLOSE_FLUSH_GRACE).await;
                        false
                    })
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

/// Write all of `out` with vectored non-blocking sends straight from the
/// arenas it points into; when the socket is full, wait for room through
/// glommio (one plain write of the current chunk) and go on. False = the peer
/// is gone.
async fn write_out(
    shard: &Shard,
    fd: RawFd,
    writer: &mut futures_lite::io::WriteHalf<TcpStream>,
    out: &Outbox,
) -> bool {
    // SAFETY: `fd` belongs to the connection's stream, which outlives this
    // future (both live in `serve`).
    let sock = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = socket2::SockRef::from(&sock);
    let mut at = Cursor::default();
    while !out.done(at) {
        let sent = {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = out.fill(at, &mut iov);
            sock.send_vectored_with_flags(&iov[..n], libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        };
        Metrics::add(&shard.metrics.nr_writes, 1);
        let written = match sent {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                match writer.write(out.rest_of_chunk(at)).await {
                    Ok(n) if n > 0 => n,
                    _ => return false,
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
            Err(_) => return false,
        };
        at = out.advance(at, written);
    }
    true
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
