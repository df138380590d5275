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
//!
//! A connection on the TLS port has its rustls state beside ([`Tls`]); the
//! tasks and the send are the same, with rustls between the bytes and the
//! socket: the reader reads ciphertext into it and hands the plaintext to
//! the frame buffer (driving the handshake on the way), and a send moves
//! the output into rustls's writer while it takes it ([`tls::BUFFER_LIMIT`])
//! and writes the records non-blockingly ([`tls_send_now`]). What neither
//! takes is the writer task's, as for a clear connection.
//!
//! [`tls::BUFFER_LIMIT`]: crate::tls::BUFFER_LIMIT

use std::cell::{Cell, RefCell};
use std::io::{IoSlice, Read, Write};
use std::net::SocketAddr;
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
use crate::metrics::{Metrics, WriteCounts};
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
    /// The rustls state of a connection on the TLS port (`None`: clear text).
    pub tls: Option<Box<Tls>>,
}

/// A TLS connection's rustls state, shared by its tasks and the driver.
pub struct Tls {
    pub conn: RefCell<rustls::ServerConnection>,
    /// The writer task is writing ciphertext it took out of rustls through
    /// glommio: nothing else writes to the socket until it is done (the
    /// records would go out of order).
    pub busy: Cell<bool>,
    pub peer: SocketAddr,
}

impl Conn {
    pub fn new(fd: RawFd) -> Conn {
        Conn {
            fd,
            write_ready: Notify::default(),
            kill: Notify::default(),
            activated: Notify::default(),
            rest: RefCell::new(None),
            tls: None,
        }
    }

    /// A connection on the TLS port.
    pub fn with_tls(fd: RawFd, tls: rustls::ServerConnection, peer: SocketAddr) -> Conn {
        Conn {
            tls: Some(Box::new(Tls {
                conn: RefCell::new(tls),
                busy: Cell::new(false),
                peer,
            })),
            ..Conn::new(fd)
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
    reader: futures_lite::io::ReadHalf<TcpStream>,
) -> CloseReason {
    let closing = || shard.core.borrow().closing_reason(id);
    let held = || shard.core.borrow().is_held(id);
    let mut input = FrameBuffer::for_client();
    let mut source = Source {
        reader,
        cipher: match conn.tls {
            Some(_) => vec![0; TLS_READ_LEN],
            None => Vec::new(),
        },
        at: 0,
        len: 0,
    };
    loop {
        let n = match source.read(shard, conn, input.spare()).await {
            Some(0) | None => break,
            Some(n) => n,
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

/// Ciphertext read at once from a TLS connection (a record is 16 KiB at
/// most; a client's requests are small).
const TLS_READ_LEN: usize = 4 * 1024;

/// Where the reader's bytes come from: the socket, or the socket through
/// rustls (ciphertext read, not yet handed to rustls: `cipher[at..len]`).
struct Source {
    reader: futures_lite::io::ReadHalf<TcpStream>,
    cipher: Vec<u8>,
    at: usize,
    len: usize,
}

impl Source {
    /// Read into `buf`: `Some(n)` bytes, `None` (or `Some(0)`) at the end of
    /// the connection, a read error, or a TLS failure.
    async fn read(&mut self, shard: &Shard, conn: &Conn, buf: &mut [u8]) -> Option<usize> {
        let Some(tls) = &conn.tls else {
            return self.reader.read(buf).await.ok();
        };
        loop {
            // Plaintext rustls holds first: it only takes more ciphertext
            // once that is drained.
            match tls.conn.borrow_mut().reader().read(buf) {
                Ok(n) => return Some(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // The peer closed without close_notify, or rustls failed.
                Err(_) => return None,
            }
            if self.at == self.len {
                let n = self.reader.read(&mut self.cipher).await.ok()?;
                if n == 0 {
                    return None;
                }
                (self.at, self.len) = (0, n);
            }
            let mut rustls = tls.conn.borrow_mut();
            let mut ciphertext = &self.cipher[self.at..self.len];
            let taken = rustls.read_tls(&mut ciphertext);
            self.at = self.len - ciphertext.len();
            let was_handshaking = rustls.is_handshaking();
            let failed = match taken {
                Err(e) => Some(e.to_string()),
                Ok(_) => rustls.process_new_packets().err().map(|e| e.to_string()),
            };
            if let Some(why) = failed {
                drop(rustls);
                tls_failed(shard, conn, tls, was_handshaking, &why);
                return None;
            }
            // Handshake records, a session ticket, an alert: the writer
            // sends them (and output that waited for the handshake).
            if rustls.wants_write() || (was_handshaking && !rustls.is_handshaking()) {
                conn.write_ready.notify();
            }
        }
    }
}

/// A TLS connection failed reading (a refused certificate, a clear-text
/// client, a corrupt record): count a failed handshake, send rustls's alert
/// if the socket takes it now, log one line. Counted first, so whoever sees
/// the alert sees the count.
fn tls_failed(shard: &Shard, conn: &Conn, tls: &Tls, handshaking: bool, why: &str) {
    if handshaking {
        Metrics::add(&shard.metrics.nr_tls_handshake_failures, 1);
    }
    if !tls.busy.get() {
        let mut rustls = tls.conn.borrow_mut();
        let _ = flush_tls(shard.write_counts(), conn.fd, &mut rustls);
    }
    if handshaking {
        tracing::info!(shard = shard.index, peer = %tls.peer, error = why, "TLS handshake failed; connection closed");
    } else {
        tracing::debug!(shard = shard.index, peer = %tls.peer, error = why, "TLS connection failed; closed");
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
    // A TLS connection's ciphertext on its way through glommio.
    let mut cipher = Vec::new();
    loop {
        conn.write_ready.wait().await;
        loop {
            let mut taken = true;
            let from = match conn.rest.borrow_mut().take() {
                Some((rest, at)) => {
                    spare = rest;
                    at
                }
                None if shard.core.borrow_mut().take_output(id, &mut spare) => Cursor::default(),
                // Records rustls made by itself (handshake, alerts, tickets).
                None if tls_wants_write(conn) => {
                    taken = false;
                    Cursor::default()
                }
                None => break,
            };
            let write = async {
                match &conn.tls {
                    None => write_out(shard, fd, &mut writer, &spare, from).await,
                    Some(tls) => {
                        write_out_tls(shard, conn, tls, &mut writer, &mut cipher, &spare, from)
                            .await
                    }
                }
            };
            let written = match closing() {
                None => write.await,
                Some(_) => {
                    futures_lite::future::or(write, async {
                        glommio::timer::sleep(CLOSE_FLUSH_GRACE).await;
                        false
                    })
                    .await
                }
            };
            spare.clear();
            if taken {
                shard.core.borrow_mut().written(id);
            }
            if !written {
                return closing().unwrap_or(CloseReason::Disconnected);
            }
        }
        if let Some(reason) = closing() {
            if let Some(tls) = &conn.tls {
                // Tell the peer the stream ends here (best effort, no wait).
                let mut rustls = tls.conn.borrow_mut();
                rustls.send_close_notify();
                let _ = flush_tls(shard.write_counts(), fd, &mut rustls);
            }
            let _ = writer.flush().await;
            return reason;
        }
    }
}

fn tls_wants_write(conn: &Conn) -> bool {
    conn.tls
        .as_ref()
        .is_some_and(|tls| tls.conn.borrow().wants_write())
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
pub fn send_now(counts: WriteCounts<'_>, fd: RawFd, out: &Outbox, mut at: Cursor) -> Sent {
    // SAFETY: `fd` is an open connection's socket (`Conn::fd`, `serve`).
    let sock = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = socket2::SockRef::from(&sock);
    while !out.done(at) {
        let sent = {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = out.fill(at, &mut iov);
            sock.send_vectored_with_flags(&iov[..n], libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        };
        counts.wrote(*sent.as_ref().unwrap_or(&0));
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
        match send_now(shard.write_counts(), fd, out, at) {
            Sent::All => return true,
            Sent::Stopped(stopped) => match writer.write(out.rest_of_chunk(stopped)).await {
                Ok(n) if n > 0 => {
                    shard.write_counts().wrote(n);
                    at = out.advance(stopped, n);
                }
                _ => return false,
            },
        }
    }
}

/// [`send_now`] for a TLS connection: move `out` from `at` into rustls's
/// writer while it takes it, and write the records it makes to the socket
/// with non-blocking sends while the socket takes them. `Sent::All` when
/// everything went out to the socket; otherwise the rest of `out` starts at
/// the cursor (at its end when only records are left in rustls).
pub fn tls_send_now(
    counts: WriteCounts<'_>,
    fd: RawFd,
    tls: &mut rustls::ServerConnection,
    out: &Outbox,
    mut at: Cursor,
) -> Sent {
    loop {
        let socket_full = !flush_tls(counts, fd, tls);
        if out.done(at) {
            return match tls.wants_write() {
                true => Sent::Stopped(at),
                false => Sent::All,
            };
        }
        let taken = {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = out.fill(at, &mut iov);
            tls.writer().write_vectored(&iov[..n]).unwrap_or(0)
        };
        at = out.advance(at, taken);
        // rustls is full (or waits for the handshake) and the socket takes
        // no more: the rest is the writer task's.
        if taken == 0 && (socket_full || !tls.wants_write()) {
            return Sent::Stopped(at);
        }
    }
}

/// Write the records rustls holds to the socket while it takes them
/// (non-blocking); false when the socket stopped taking them (full, or
/// failed: the writer's next write reports the error).
fn flush_tls(counts: WriteCounts<'_>, fd: RawFd, tls: &mut rustls::ServerConnection) -> bool {
    while tls.wants_write() {
        let written = tls.write_tls(&mut NonBlocking(fd));
        counts.wrote(*written.as_ref().unwrap_or(&0));
        match written {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Non-blocking sends on a connection's socket, for rustls's `write_tls`.
struct NonBlocking(RawFd);

impl Write for NonBlocking {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        // SAFETY: `self.0` is an open connection's socket (`Conn::fd`, `serve`).
        let sock = unsafe { BorrowedFd::borrow_raw(self.0) };
        socket2::SockRef::from(&sock)
            .send_vectored_with_flags(bufs, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// [`write_out`] for a TLS connection: [`tls_send_now`], and when the socket
/// is full, take the records rustls holds and write them through glommio
/// (waiting for room; the driver sends nothing meanwhile, [`Tls::busy`]).
async fn write_out_tls(
    shard: &Shard,
    conn: &Conn,
    tls: &Tls,
    writer: &mut futures_lite::io::WriteHalf<TcpStream>,
    cipher: &mut Vec<u8>,
    out: &Outbox,
    mut at: Cursor,
) -> bool {
    loop {
        {
            let mut rustls = tls.conn.borrow_mut();
            match tls_send_now(shard.write_counts(), conn.fd, &mut rustls, out, at) {
                Sent::All => return true,
                Sent::Stopped(stopped) => at = stopped,
            }
            cipher.clear();
            while rustls.wants_write() {
                if rustls.write_tls(cipher).is_err() {
                    break;
                }
            }
        }
        if cipher.is_empty() {
            // rustls holds the output until the handshake completes: the
            // reader says when it moved on.
            conn.write_ready.wait().await;
            continue;
        }
        tls.busy.set(true);
        let written = writer.write_all(cipher).await;
        tls.busy.set(false);
        let took = if written.is_ok() { cipher.len() } else { 0 };
        shard.write_counts().wrote(took);
        if written.is_err() {
            return false;
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
