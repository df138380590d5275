//! One client connection on a shard: the read task (frames in, through the
//! session state machine) and the write task (the outbox out: vectored sends
//! straight from the batch arenas and the session's own bytes, one per
//! wake-up while the socket takes them), raced against a kill switch. The
//! outbox is double-buffered so events keep queueing while a write is in
//! flight.

use std::cell::RefCell;
use std::io::IoSlice;
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
use crate::metrics::Metrics;
use crate::proto::constants::{msg, status};
use crate::proto::frame;
use crate::proto::DecodeError;
use crate::session::server::{CloseReason, Context, Outcome, Phase, Session};

/// Read buffer to start with: client requests are small, and an idle
/// session should cost little (10,000 of them are a normal load).
const READ_BUFFER_MIN: usize = 512;
/// Largest read buffer: always holds one whole frame (12,500 bytes max).
const READ_BUFFER_MAX: usize = 16 * 1024;

/// A connection's mutable state (only ever borrowed briefly, never across an await).
pub struct ConnState {
    pub session: Session,
    /// Output queued for the client, not yet handed to the socket.
    pub out: Outbox,
    /// Bytes handed to the socket and not yet written.
    pub inflight: usize,
    /// Already in the shard's dirty list for this batch.
    pub dirty: bool,
    /// The session reached Open (so its close is reported).
    pub was_open: bool,
    /// Output is held until ingest registers the session (so nothing the
    /// session gets can precede its OPEN_CONF, and events start exactly
    /// where ingest registered it).
    pub held: bool,
    /// The Client Events monitor created by OPEN_REQ, if any.
    pub client_events: Option<super::monitors::Monitor>,
    /// Session monitors this session owns: (MonitorID, watched session).
    pub session_monitors: Vec<(u32, u32)>,
}

/// A connection, shared by its tasks and the shard's dispatch.
pub struct Conn {
    pub id: u32,
    /// When it was accepted: it must open within `open_timeout_secs` of it.
    pub connected_at: Instant,
    pub state: RefCell<ConnState>,
    /// Output is waiting: wake the writer.
    pub write_ready: Notify,
    /// Drop the socket now (a slow consumer cut mid-write).
    pub kill: Notify,
    /// Ingest registered the session (its OPEN_CONF is queued): the reader
    /// goes on with the frames that followed the OPEN_REQ.
    pub activated: Notify,
}

impl ConnState {
    /// What the session owes its client, counted against its output bound:
    /// queued (arenas whole) plus handed to the socket and not yet written.
    pub fn owed(&self) -> usize {
        self.out.len() + self.inflight
    }

    /// Whether `more` bytes on top of what the session owes would pass
    /// `bound`: the output bound (design.md §4.13) every writer of the
    /// session's output answers to — events, replies, OPEN_CONF and its
    /// SYSTEM_EVENTs, snapshots, FAILURE_CONFs alike, so a client that never
    /// reads is cut whatever fills its output. A closing session is past it.
    pub fn passes_bound(&self, more: usize, bound: usize) -> bool {
        !matches!(self.session.phase, Phase::Closing(_)) && self.owed() + more > bound
    }
}

impl Conn {
    pub fn new(id: u32, peer: SocketAddr, now: Instant) -> Conn {
        Conn {
            id,
            connected_at: now,
            state: RefCell::new(ConnState {
                session: Session::new(id, peer, now),
                out: Outbox::default(),
                inflight: 0,
                dirty: false,
                was_open: false,
                held: false,
                client_events: None,
                session_monitors: Vec::new(),
            }),
            write_ready: Notify::default(),
            kill: Notify::default(),
            activated: Notify::default(),
        }
    }

    /// End the session with a FAILURE_EVENT (idle timeout, shutdown) after
    /// what is queued; sessions not yet open are just closed.
    pub fn end(&self, reason: CloseReason) {
        let mut st = self.state.borrow_mut();
        let ConnState { session, out, .. } = &mut *st;
        match session.phase {
            Phase::Open => session.end_with_failure_event(reason, &mut out.local),
            Phase::AwaitingOpen => session.phase = Phase::Closing(reason),
            Phase::Closing(_) => return,
        }
        drop(st);
        self.write_ready.notify();
        self.activated.notify();
    }

    /// Opened but not yet registered by ingest (see `ConnState::held`).
    fn is_held(&self) -> bool {
        self.state.borrow().held
    }

    fn closing_reason(&self) -> Option<CloseReason> {
        match self.state.borrow().session.phase {
            Phase::Closing(reason) => Some(reason),
            _ => None,
        }
    }
}

/// Serve one connection until it ends, then remove it from the shard.
pub async fn serve(shard: Rc<Shard>, conn: Rc<Conn>, stream: TcpStream) {
    let fd = stream.as_raw_fd();
    let (reader, writer) = futures_lite::io::split(stream);
    let killed = async {
        conn.kill.wait().await;
        conn.closing_reason().unwrap_or(CloseReason::SlowConsumer)
    };
    let reason = futures_lite::future::or(
        futures_lite::future::or(
            read_loop(&shard, &conn, reader),
            write_loop(&shard, &conn, fd, writer),
        ),
        killed,
    )
    .await;
    shard.remove(&conn, reason);
}

/// Read frames until the peer goes away; once the session is closing, stop
/// reading and leave the end to the writer.
async fn read_loop(
    shard: &Rc<Shard>,
    conn: &Rc<Conn>,
    mut reader: futures_lite::io::ReadHalf<TcpStream>,
) -> CloseReason {
    let mut buf = vec![0u8; READ_BUFFER_MIN];
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            // A frame larger than the buffer is arriving.
            buf.resize((buf.len() * 4).min(READ_BUFFER_MAX), 0);
        } else if filled == 0 && buf.len() > READ_BUFFER_MIN {
            buf = vec![0u8; READ_BUFFER_MIN];
        }
        let n = match reader.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        filled += n;
        loop {
            let used = handle_frames(shard, conn, &buf[..filled]);
            buf.copy_within(used..filled, 0);
            filled -= used;
            if conn.closing_reason().is_some() || !conn.is_held() {
                break;
            }
            // The frames after an OPEN_REQ wait until ingest registered the
            // session: its OPEN_CONF (with the agent's state) comes first.
            while conn.is_held() && conn.closing_reason().is_none() {
                conn.activated.wait().await;
            }
        }
        if conn.closing_reason().is_some() {
            break;
        }
    }
    match conn.closing_reason() {
        // Closing already: let the writer flush and finish.
        Some(_) => futures_lite::future::pending().await,
        None => CloseReason::Disconnected,
    }
}

/// Run every whole frame in `bytes` through the session; returns bytes used.
fn handle_frames(shard: &Rc<Shard>, conn: &Rc<Conn>, bytes: &[u8]) -> usize {
    let mut used = 0;
    loop {
        if conn.closing_reason().is_some() {
            break;
        }
        match frame::parse(&bytes[used..]) {
            Ok((frame, len)) => {
                used += len;
                // max_sessions is decided here, at OPEN: an OPEN_REQ takes a
                // slot before the session handles it (and gives it back
                // unless it opens), so shards never overshoot together.
                let opening = frame.message_type == msg::OPEN_REQ
                    && conn.state.borrow().session.phase == Phase::AwaitingOpen;
                let reserved = opening && shard.reserve_session();
                let outcome = {
                    let status = shard.status.borrow();
                    let ctx = Context {
                        config: &shard.config,
                        status: &status,
                        next_monitor_id: &super::next_monitor_id,
                        served_services: crate::session::server::SERVED_SERVICES,
                        at_session_limit: opening && !reserved,
                    };
                    let mut st = conn.state.borrow_mut();
                    let ConnState { session, out, .. } = &mut *st;
                    session.on_frame(frame, &ctx, Instant::now(), &mut out.local)
                };
                if reserved && outcome != Outcome::Opened {
                    shard.release_session();
                }
                if opening
                    && !reserved
                    && outcome
                        == Outcome::Close(CloseReason::OpenRejected(
                            status::E_CTI_UNSPECIFIED_FAILURE,
                        ))
                {
                    Metrics::add(&shard.metrics.nr_refused, 1);
                }
                match outcome {
                    Outcome::Opened => {
                        shard.opened(conn);
                        break;
                    }
                    Outcome::Request(request) => super::requests::handle(shard, conn, request),
                    Outcome::Continue | Outcome::Close(_) => {}
                }
                // Checked per frame: a client that sends and never reads is
                // cut at its bound, not one read buffer of replies later
                // (and reading on is not back-pressured, so it cannot sit
                // just under the bound).
                super::dispatch::bound_output(shard, conn);
            }
            Err(DecodeError::Incomplete) => break,
            Err(DecodeError::Invalid(_)) => {
                // Only an oversize length breaks framing at this stage.
                Metrics::add(&shard.metrics.nr_bad_client_frames, 1);
                let mut st = conn.state.borrow_mut();
                let ConnState { session, out, .. } = &mut *st;
                session.on_framing_error(&mut out.local);
                used = bytes.len();
                break;
            }
        }
    }
    conn.write_ready.notify();
    used
}

/// Write the output whenever notified; after the session starts closing,
/// flush what is left (within a grace period) and end.
async fn write_loop(
    shard: &Rc<Shard>,
    conn: &Rc<Conn>,
    fd: RawFd,
    mut writer: futures_lite::io::WriteHalf<TcpStream>,
) -> CloseReason {
    let mut spare = Outbox::default();
    loop {
        conn.write_ready.wait().await;
        loop {
            {
                let mut st = conn.state.borrow_mut();
                let closing = matches!(st.session.phase, Phase::Closing(_));
                if st.out.is_empty() || (st.held && !closing) {
                    break;
                }
                st.out.seal_all();
                std::mem::swap(&mut st.out, &mut spare);
                st.inflight = spare.len();
            }
            let written = match conn.closing_reason() {
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
            conn.state.borrow_mut().inflight = 0;
            if !written {
                return conn.closing_reason().unwrap_or(CloseReason::Disconnected);
            }
        }
        if let Some(reason) = conn.closing_reason() {
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
