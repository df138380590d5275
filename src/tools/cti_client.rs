//! A CTI client connection for the tools (`watch`, `ctl`, `record`) on mio: the
//! connect, the sans-IO client core (`session::client`: OPEN,
//! heartbeats, close), frame reassembly, and a blocking [`Link::next`] that
//! waits for the next frame until a deadline, heartbeating meanwhile.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::proto::constants::msg;
use crate::proto::frame::message_type;
use crate::proto::msg::{OpenConf, OpenReq};
use crate::proto::{decode_frame, DecodeOptions, Message, Version};
use crate::session::client::{ClientCore, ClientError, Inbound, OpenParams};
use crate::session::frames::FrameBuffer;

const STREAM: Token = Token(0);

/// Why a link cannot go on.
#[derive(Debug)]
pub enum LinkError {
    /// The address does not resolve, or nothing answers there.
    Connect(String),
    /// A socket error after connecting.
    Io(io::Error),
    /// The server closed the connection.
    Eof,
    /// The protocol says the session is over (refused, heartbeats missed, ...).
    Session(ClientError),
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Connect(e) => write!(f, "connect: {e}"),
            LinkError::Io(e) => write!(f, "connection lost: {e}"),
            LinkError::Eof => write!(f, "connection lost: the server closed it"),
            LinkError::Session(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LinkError {}

impl From<ClientError> for LinkError {
    fn from(e: ClientError) -> Self {
        LinkError::Session(e)
    }
}

/// What [`Link::next`] found.
#[derive(Debug)]
pub enum Received<'a> {
    /// OPEN_CONF, decoded and as the server sent it.
    Opened {
        conf: Box<OpenConf>,
        frame: &'a [u8],
    },
    /// An event, or the answer to one of the caller's requests.
    Frame(&'a [u8]),
    /// FAILURE_CONF to one of the caller's requests.
    RequestFailed {
        invoke_id: u32,
        status: u32,
        frame: &'a [u8],
    },
    /// A frame the client core took care of (heartbeat answer, ...).
    Handled,
    /// CLOSE_CONF arrived.
    Closed,
    /// The deadline passed with no frame.
    Idle,
}

/// The Status of a whole FAILURE_CONF frame (it follows the InvokeID).
fn failure_status(frame: &[u8]) -> Option<u32> {
    frame
        .get(12..16)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
}

/// One client connection.
pub struct Link {
    poll: Poll,
    events: Events,
    stream: TcpStream,
    frames: FrameBuffer,
    core: ClientCore,
    /// Output; `out[sent..]` is not written yet.
    out: Vec<u8>,
    sent: usize,
    peer: SocketAddr,
    /// The server closed its end; frames still buffered are handed out first.
    eof: bool,
}

/// The first address `addr` ("host:port") resolves to.
pub fn resolve(addr: &str) -> Result<SocketAddr, LinkError> {
    addr.to_socket_addrs()
        .map_err(|e| LinkError::Connect(format!("{addr}: {e}")))?
        .next()
        .ok_or_else(|| LinkError::Connect(format!("{addr}: no address")))
}

impl Link {
    /// Connect (within `timeout`) and send OPEN_REQ; [`Link::next`] brings the answer.
    pub fn connect(addr: &str, params: OpenParams, timeout: Duration) -> Result<Link, LinkError> {
        Self::connect_with(addr, params, timeout, |_| {})
    }

    /// [`Link::connect`], with `amend` given the OPEN_REQ before it is sent
    /// (for the fields [`OpenParams`] does not carry, such as AgentInstrument).
    pub fn connect_with(
        addr: &str,
        params: OpenParams,
        timeout: Duration,
        amend: impl FnOnce(&mut OpenReq),
    ) -> Result<Link, LinkError> {
        let peer = resolve(addr)?;
        let poll = Poll::new().map_err(LinkError::Io)?;
        let mut stream =
            TcpStream::connect(peer).map_err(|e| LinkError::Connect(format!("{addr}: {e}")))?;
        poll.registry()
            .register(&mut stream, STREAM, Interest::READABLE | Interest::WRITABLE)
            .map_err(LinkError::Io)?;
        let now = Instant::now();
        let mut link = Link {
            poll,
            events: Events::with_capacity(16),
            stream,
            frames: FrameBuffer::new(),
            core: ClientCore::new(params, now),
            out: Vec::with_capacity(512),
            sent: 0,
            peer,
            eof: false,
        };
        link.wait_connected(addr, now + timeout)?;
        let _ = link.stream.set_nodelay(true);
        link.core.start(now, &mut link.out);
        amend_open_req(&mut link.out, link.core.version(), amend)?;
        link.flush()?;
        Ok(link)
    }

    /// mio connects in the background: wait until the socket is writable,
    /// then ask it whether the connect worked.
    fn wait_connected(&mut self, addr: &str, deadline: Instant) -> Result<(), LinkError> {
        let failed = |e: String| LinkError::Connect(format!("{addr}: {e}"));
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(failed("timed out".into()));
            }
            match self.poll.poll(&mut self.events, Some(left)) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(failed(e.to_string())),
                Ok(()) => {}
            }
            if self.events.is_empty() {
                continue;
            }
            if let Ok(Some(e)) | Err(e) = self.stream.take_error() {
                return Err(failed(e.to_string()));
            }
            match self.stream.peer_addr() {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::NotConnected => continue,
                Err(e) => return Err(failed(e.to_string())),
            }
        }
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn version(&self) -> Version {
        self.core.version()
    }

    /// A fresh InvokeID for a request.
    pub fn next_invoke_id(&mut self) -> u32 {
        self.core.next_invoke_id()
    }

    /// Send a request of the caller's.
    pub fn send(&mut self, message: &Message) -> Result<(), LinkError> {
        self.core.send(message, &mut self.out);
        self.flush()
    }

    /// The next frame, or `Idle` once `deadline` passes; heartbeats go out
    /// meanwhile.
    pub fn next(&mut self, deadline: Instant) -> Result<Received<'_>, LinkError> {
        loop {
            if self.frames.next_len().map_err(bad_frame)?.is_some() {
                let Ok(Some(frame)) = self.frames.next_frame() else {
                    unreachable!("a whole frame was just checked");
                };
                return Ok(match self.core.on_frame(frame, Instant::now())? {
                    Inbound::Opened(conf) => Received::Opened { conf, frame },
                    Inbound::Reply { invoke_id, frame }
                        if message_type(frame) == Some(msg::FAILURE_CONF) =>
                    {
                        Received::RequestFailed {
                            invoke_id,
                            status: failure_status(frame).unwrap_or(0),
                            frame,
                        }
                    }
                    Inbound::Event(frame) | Inbound::Reply { frame, .. } => Received::Frame(frame),
                    Inbound::Heartbeat { .. } | Inbound::Handled => Received::Handled,
                    Inbound::Closed => Received::Closed,
                });
            }
            if self.eof {
                return Err(LinkError::Eof);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Received::Idle);
            }
            self.pump(deadline)?;
        }
    }

    /// CLOSE_REQ, then wait up to `wait` for CLOSE_CONF; `true` if it came.
    pub fn close(&mut self, wait: Duration) -> Result<bool, LinkError> {
        self.core.close(&mut self.out);
        self.flush()?;
        let deadline = Instant::now() + wait;
        loop {
            match self.next(deadline) {
                Ok(Received::Closed) => return Ok(true),
                Ok(Received::Idle) | Err(LinkError::Eof) => return Ok(false),
                Ok(_) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Wait for the socket (at most until `deadline` or the next heartbeat),
    /// read what came, and send a heartbeat if one is due.
    fn pump(&mut self, deadline: Instant) -> Result<(), LinkError> {
        let now = Instant::now();
        let wake = self
            .core
            .next_deadline()
            .map_or(deadline, |at| at.min(deadline));
        match self
            .poll
            .poll(&mut self.events, Some(wake.saturating_duration_since(now)))
        {
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(LinkError::Io(e)),
            Ok(()) => {}
        }
        self.read_available()?;
        if self.eof {
            return Ok(());
        }
        self.core.on_timer(Instant::now(), &mut self.out)?;
        self.flush()
    }

    fn read_available(&mut self) -> Result<(), LinkError> {
        loop {
            match self.stream.read(self.frames.spare()) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                // Edge-triggered: read until the socket is empty.
                Ok(n) => self.frames.filled(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(LinkError::Io(e)),
            }
        }
    }

    fn flush(&mut self) -> Result<(), LinkError> {
        while self.sent < self.out.len() {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(0) => return Err(LinkError::Eof),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(LinkError::Io(e)),
            }
        }
        self.out.clear();
        self.sent = 0;
        Ok(())
    }
}

/// Decode the OPEN_REQ frame the client core wrote into `out`, let `amend`
/// change it, and write it again.
fn amend_open_req(
    out: &mut Vec<u8>,
    version: Version,
    amend: impl FnOnce(&mut OpenReq),
) -> Result<(), LinkError> {
    let (message, _) = decode_frame(out, version, DecodeOptions::STRICT).map_err(bad_frame)?;
    let Message::OpenReq(mut req) = message else {
        return Ok(());
    };
    amend(&mut req);
    let frame = Message::from(req)
        .to_frame(version)
        .map_err(|e| LinkError::Connect(format!("OPEN_REQ: {e}")))?;
    *out = frame;
    Ok(())
}

fn bad_frame(e: crate::proto::DecodeError) -> LinkError {
    LinkError::Session(ClientError::BadFrame(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Services;

    #[test]
    fn the_open_req_is_amended_before_it_is_sent() {
        let version = Version::new(15).unwrap();
        let mut params = OpenParams::all_events(version, "ctl", "pw", Duration::from_secs(5));
        params.services = Services::CLIENT_EVENTS;
        params.agent_id = Some("1001".into());
        let mut core = ClientCore::new(params, Instant::now());
        let mut out = Vec::new();
        core.start(Instant::now(), &mut out);
        amend_open_req(&mut out, version, |req| {
            req.agent_instrument = Some("3001".into())
        })
        .unwrap();
        let (message, used) = decode_frame(&out, version, DecodeOptions::STRICT).unwrap();
        assert_eq!(used, out.len(), "one frame");
        let Message::OpenReq(req) = message else {
            panic!("{message:?}")
        };
        assert_eq!(req.agent_instrument.unwrap().as_bytes(), b"3001");
        assert_eq!(req.agent_id.unwrap().as_bytes(), b"1001");
        assert_eq!(req.client_id.unwrap().as_bytes(), b"ctl");
        assert_eq!((req.invoke_id, req.version_number), (1, 15));
    }
}
