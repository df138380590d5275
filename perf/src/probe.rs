//! The limit probe (`ctirouter-perf limit-probe --upstream ADDR`, started by
//! `compare --probe` as its own process, pinned like the other servers): the
//! least any server can do for the compare workload on this machine. One
//! mio thread. It opens an All Events session on the driver's upstream the
//! way the router does (OPEN_REQ, then OPEN_CONF), accepts subscribers and
//! answers their OPEN_REQ and HEARTBEAT_REQ with the harness's own PG code
//! (`cti_server`), and then, for every read from upstream, writes the whole
//! batch of complete frames that read finished to every open subscriber
//! with one write per socket: read once, one write per subscriber per
//! batch. No decoding beyond the 8-byte frame header, no per-event work or
//! allocation. What a socket does not take waits in that subscriber's
//! backlog (never dropped), which the next batch or a writable event sends.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use ctirouter::proto::frame;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::cti_client::{CtiClient, Seen};
use crate::cti_server::{CtiServer, Upstream};
use crate::scenario::Service;

const UPSTREAM: Token = Token(0);
const LISTENER: Token = Token(1);
/// Subscriber `i` is Token(SUB_BASE + i).
const SUB_BASE: usize = 2;
/// One upstream read at most (a batch, plus a partial frame carried over).
const READ_BUF: usize = 256 * 1024;
/// Written bytes at the front of a backlog past which it is compacted.
const COMPACT: usize = 64 * 1024;
/// With nothing to do for this long, every backlog is tried again (in case
/// a writable edge was missed).
const IDLE: Duration = Duration::from_millis(100);

/// Bytes a socket has not taken yet.
#[derive(Debug)]
struct Backlog {
    buf: Vec<u8>,
    /// `buf[at..]` is unsent.
    at: usize,
    /// No short write since the last writable event: worth a write.
    writable: bool,
}

impl Default for Backlog {
    fn default() -> Self {
        Backlog {
            buf: Vec::new(),
            at: 0,
            writable: true,
        }
    }
}

impl Backlog {
    fn is_empty(&self) -> bool {
        self.at == self.buf.len()
    }

    /// Send `bytes` after what is pending, with one write at most: straight
    /// from `bytes` when nothing is pending, else of the whole backlog.
    #[inline]
    fn send(&mut self, w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
        if self.is_empty() && self.writable {
            let n = write_once(w, bytes)?;
            if n < bytes.len() {
                self.writable = false;
                self.buf.clear();
                self.at = 0;
                self.buf.extend_from_slice(&bytes[n..]);
            }
            return Ok(());
        }
        self.buf.extend_from_slice(bytes);
        if self.writable {
            self.write_pending(w)?;
        }
        Ok(())
    }

    /// The socket is writable: send until it takes no more.
    fn flush(&mut self, w: &mut impl Write) -> io::Result<()> {
        self.writable = true;
        while self.writable && !self.is_empty() {
            self.write_pending(w)?;
        }
        Ok(())
    }

    fn write_pending(&mut self, w: &mut impl Write) -> io::Result<()> {
        let pending = self.buf.len() - self.at;
        let n = write_once(w, &self.buf[self.at..])?;
        self.at += n;
        if n < pending {
            self.writable = false;
        }
        if self.is_empty() {
            self.buf.clear();
            self.at = 0;
        } else if self.at >= COMPACT && self.at * 2 >= self.buf.len() {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        Ok(())
    }
}

/// One write(2) (retried only if interrupted); WouldBlock is 0 bytes.
#[inline]
fn write_once(w: &mut impl Write, bytes: &[u8]) -> io::Result<usize> {
    loop {
        return match w.write(bytes) {
            Ok(0) if !bytes.is_empty() => Err(ErrorKind::WriteZero.into()),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(0),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

/// Bytes of the whole frames at the front of `buf` (header walk only).
fn whole_frames(buf: &[u8]) -> Result<usize, String> {
    let mut end = 0;
    loop {
        match frame::check(&buf[end..]) {
            Ok(len) => end += len,
            Err(e) if e.breaks_framing() => return Err(format!("bad frame from upstream: {e}")),
            Err(_) => return Ok(end),
        }
    }
}

/// One subscriber.
struct Sub {
    stream: TcpStream,
    /// Its OPEN_REQ and HEARTBEAT_REQs are answered by the PG's code.
    server: CtiServer,
    input: Vec<u8>,
    backlog: Backlog,
    /// OPEN_CONF sent: events go to it.
    open: bool,
}

/// What the probe did, for its log.
#[derive(Debug, Default)]
struct Counts {
    batches: u64,
    batch_bytes: u64,
    writes: u64,
    short_writes: u64,
    subscribers: u64,
}

struct Probe {
    poll: Poll,
    upstream: TcpStream,
    /// The upstream session: OPEN_CONF seen.
    opened: bool,
    client: CtiClient,
    buf: Box<[u8]>,
    have: usize,
    listener: TcpListener,
    subs: Vec<Option<Sub>>,
    /// Replies to subscribers (reused).
    reply: Vec<u8>,
    counts: Counts,
}

/// Serve until the driver closes the upstream session.
pub fn serve(upstream: SocketAddr) -> Result<(), String> {
    let std_listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    let addr = std_listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening {addr}");
    let mut client = CtiClient::new(Service::AllEvents, Vec::new());
    let mut up = std::net::TcpStream::connect(upstream).map_err(|e| format!("{upstream}: {e}"))?;
    up.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut open_req = Vec::new();
    client.hello(&mut open_req);
    up.write_all(&open_req)
        .map_err(|e| format!("OPEN_REQ: {e}"))?;
    up.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut probe = Probe {
        poll: Poll::new().map_err(|e| e.to_string())?,
        upstream: TcpStream::from_std(up),
        opened: false,
        client,
        buf: vec![0; READ_BUF].into_boxed_slice(),
        have: 0,
        listener: TcpListener::from_std(std_listener),
        subs: Vec::new(),
        reply: Vec::new(),
        counts: Counts::default(),
    };
    let registry = probe.poll.registry();
    registry
        .register(&mut probe.upstream, UPSTREAM, Interest::READABLE)
        .map_err(|e| e.to_string())?;
    registry
        .register(&mut probe.listener, LISTENER, Interest::READABLE)
        .map_err(|e| e.to_string())?;
    eprintln!("limit probe: listening {addr}, upstream {upstream}");
    let result = probe.run();
    let c = &probe.counts;
    eprintln!(
        "limit probe: {} subscribers, {} batches, {} batch bytes, {} writes ({} short)",
        c.subscribers, c.batches, c.batch_bytes, c.writes, c.short_writes
    );
    result
}

impl Probe {
    fn run(&mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(1024);
        loop {
            self.poll
                .poll(&mut events, Some(IDLE))
                .map_err(|e| e.to_string())?;
            if events.is_empty() {
                for i in 0..self.subs.len() {
                    self.flush(i);
                }
            }
            for ev in events.iter() {
                match ev.token() {
                    UPSTREAM => {
                        if !self.read_upstream()? {
                            eprintln!("limit probe: upstream closed");
                            return Ok(());
                        }
                    }
                    LISTENER => self.accept()?,
                    Token(t) => {
                        let i = t - SUB_BASE;
                        if ev.is_writable() {
                            self.flush(i);
                        }
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.read_sub(i);
                        }
                    }
                }
            }
        }
    }

    /// Read upstream until it would block, fanning out each read's whole
    /// frames as one batch; false once the driver closed.
    fn read_upstream(&mut self) -> Result<bool, String> {
        loop {
            match self.upstream.read(&mut self.buf[self.have..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.have += n;
                    self.batch()?;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("upstream read: {e}")),
            }
        }
    }

    fn batch(&mut self) -> Result<(), String> {
        let mut start = 0;
        if !self.opened {
            // Until OPEN_CONF: the handshake's frames, not forwarded.
            let mut sink = Vec::new();
            while let Ok(len) = frame::check(&self.buf[start..self.have]) {
                let f = &self.buf[start..start + len];
                start += len;
                match self.client.on_frame(f, &mut sink) {
                    Seen::Opened => {
                        self.opened = true;
                        eprintln!("limit probe: upstream open");
                        break;
                    }
                    Seen::Refused(status) => {
                        return Err(format!("upstream refused OPEN_REQ: status {status}"))
                    }
                    _ => {}
                }
            }
        }
        let end = start + whole_frames(&self.buf[start..self.have])?;
        if end > start && self.opened {
            let batch = &self.buf[start..end];
            self.counts.batches += 1;
            self.counts.batch_bytes += batch.len() as u64;
            for slot in self.subs.iter_mut() {
                let Some(s) = slot.as_mut().filter(|s| s.open) else {
                    continue;
                };
                let writes = s.backlog.writable;
                let sent = s.backlog.send(&mut s.stream, batch);
                self.counts.writes += writes as u64;
                self.counts.short_writes += (writes && !s.backlog.writable) as u64;
                if sent.is_err() {
                    // Gone: its read side sees the close and drops it.
                    s.open = false;
                }
            }
        }
        self.buf.copy_within(end..self.have, 0);
        self.have -= end;
        Ok(())
    }

    fn accept(&mut self) -> Result<(), String> {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let i = self
                        .subs
                        .iter()
                        .position(Option::is_none)
                        .unwrap_or_else(|| {
                            self.subs.push(None);
                            self.subs.len() - 1
                        });
                    self.poll
                        .registry()
                        .register(
                            &mut stream,
                            Token(SUB_BASE + i),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .map_err(|e| e.to_string())?;
                    self.subs[i] = Some(Sub {
                        stream,
                        server: CtiServer::default(),
                        input: Vec::new(),
                        backlog: Backlog::default(),
                        open: false,
                    });
                    self.counts.subscribers += 1;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("accept: {e}")),
            }
        }
    }

    fn flush(&mut self, i: usize) {
        let Some(s) = self.subs.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        if s.backlog.flush(&mut s.stream).is_err() {
            s.open = false;
        }
    }

    /// A subscriber's requests (OPEN_REQ, HEARTBEAT_REQ) and their answers;
    /// dropped when it closes or breaks framing.
    fn read_sub(&mut self, i: usize) {
        let Some(s) = self.subs.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let mut chunk = [0u8; 4096];
        let mut alive = true;
        loop {
            match s.stream.read(&mut chunk) {
                Ok(0) => {
                    alive = false;
                    break;
                }
                Ok(n) => s.input.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    alive = false;
                    break;
                }
            }
        }
        self.reply.clear();
        match s.server.on_input(&s.input, &mut self.reply) {
            Ok(used) => {
                s.input.drain(..used);
            }
            Err(_) => alive = false,
        }
        if alive && !self.reply.is_empty() && s.backlog.send(&mut s.stream, &self.reply).is_err() {
            alive = false;
        }
        s.open = alive && s.server.state == Upstream::Open;
        if !alive {
            if let Some(mut s) = self.subs[i].take() {
                let _ = self.poll.registry().deregister(&mut s.stream);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `room` bytes, then would block.
    struct Sink {
        got: Vec<u8>,
        room: usize,
        writes: usize,
    }

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.writes += 1;
            if self.room == 0 {
                return Err(ErrorKind::WouldBlock.into());
            }
            let n = b.len().min(self.room);
            self.room -= n;
            self.got.extend_from_slice(&b[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn whole_frames_stop_before_a_partial_one() {
        let mut buf = vec![0, 0, 0, 2, 0, 0, 0, 9, 1, 2];
        buf.extend([0, 0, 0, 0, 0, 0, 0, 5]);
        buf.extend([0, 0, 0, 4, 0, 0, 0, 9, 1]);
        assert_eq!(whole_frames(&buf), Ok(18));
        assert_eq!(whole_frames(&buf[..7]), Ok(0));
        assert!(whole_frames(&[0, 1, 0, 0, 0, 0, 0, 9]).is_err(), "too long");
    }

    #[test]
    fn backlog_keeps_every_byte_in_order_with_one_write_per_batch() {
        let mut sink = Sink {
            got: Vec::new(),
            room: 5,
            writes: 0,
        };
        let mut b = Backlog::default();
        b.send(&mut sink, b"abcdefgh").unwrap();
        assert_eq!((sink.got.as_slice(), sink.writes), (&b"abcde"[..], 1));
        assert!(!b.writable);
        // Not writable: queued, no write.
        b.send(&mut sink, b"ij").unwrap();
        assert_eq!(sink.writes, 1);
        sink.room = 3;
        b.flush(&mut sink).unwrap();
        assert_eq!(sink.got, b"abcdefgh");
        assert_eq!(sink.writes, 2);
        assert!(!b.writable);
        sink.room = 100;
        b.flush(&mut sink).unwrap();
        assert!(b.writable && b.is_empty());
        b.send(&mut sink, b"kl").unwrap();
        assert_eq!(sink.got, b"abcdefghijkl");
        assert_eq!(sink.writes, 4);
    }
}
