//! A raw GED-188 client over a blocking std `TcpStream`: send bytes, read
//! whole frames (split and coalesced reads handled), expect replies, EOF.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ctirouter::proto::constants::{msg, service};
use ctirouter::proto::msg::{OpenConf, OpenReq, SystemEvent};
use ctirouter::proto::{CtiString, Message, Unspec, Version};

use super::*;

/// What the next read brought.
#[derive(Debug)]
pub enum Recv {
    /// One whole frame: (MessageType, the whole frame with its header).
    Frame(u32, Vec<u8>),
    Timeout,
    /// EOF or a connection error (reset): the router closed the connection.
    Closed(Option<ErrorKind>),
}

/// A GED-188 client that speaks raw bytes over a blocking std `TcpStream`.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The version negotiated by [`Client::open`] (24 until then).
    pub version: Version,
    next_invoke: u32,
    /// Bytes of an incomplete frame the connection ended in.
    pub truncated_tail: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        Self::from_stream(stream)
    }

    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            version: Version::MAX,
            next_invoke: 1000,
            truncated_tail: Vec::new(),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// A fresh InvokeID.
    pub fn invoke(&mut self) -> u32 {
        self.next_invoke += 1;
        self.next_invoke
    }

    pub fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.try_send_raw(bytes)
            .unwrap_or_else(|e| panic!("send {} bytes: {e}", bytes.len()));
    }

    /// Encode `message` at `version` (whole frame) and send it.
    pub fn send(&mut self, message: impl Into<Message>, version: Version) {
        let frame = message
            .into()
            .to_frame(version)
            .expect("encodable test message");
        self.send_raw(&frame);
    }

    /// The next whole frame, a timeout, or the end of the connection.
    /// Handles frames split across reads and several frames in one read.
    pub fn next(&mut self, timeout: Duration) -> Recv {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 64 * 1024];
        loop {
            if self.buf.len() >= 8 {
                let body_len =
                    u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])
                        as usize;
                assert!(
                    body_len + 8 <= 12_500,
                    "router sent a frame header announcing {} bytes: {}",
                    body_len + 8,
                    hex::encode(&self.buf[..8])
                );
                if self.buf.len() >= 8 + body_len {
                    let frame: Vec<u8> = self.buf.drain(..8 + body_len).collect();
                    return Recv::Frame(frame_type(&frame), frame);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Recv::Timeout;
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("set_read_timeout");
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.truncated_tail = std::mem::take(&mut self.buf);
                    return Recv::Closed(None);
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.truncated_tail = std::mem::take(&mut self.buf);
                    return Recv::Closed(Some(e.kind()));
                }
            }
        }
    }

    /// The next frame as (type, whole frame), `None` on timeout; panics if the connection closes.
    pub fn recv_frame(&mut self, timeout: Duration) -> Option<(u32, Vec<u8>)> {
        match self.next(timeout) {
            Recv::Frame(t, frame) => Some((t, frame)),
            Recv::Timeout => None,
            Recv::Closed(kind) => panic!("connection closed ({kind:?}) while waiting for a frame"),
        }
    }

    /// The next frame; panics on timeout or close.
    pub fn expect_frame(&mut self, timeout: Duration) -> (u32, Vec<u8>) {
        self.recv_frame(timeout)
            .unwrap_or_else(|| panic!("no frame within {timeout:?}"))
    }

    /// The next frame decoded strictly at `version`.
    pub fn recv_message(&mut self, version: Version, timeout: Duration) -> Message {
        let (_, frame) = self.expect_frame(timeout);
        decode_strict(&frame, version)
    }

    /// The next frame that is not an unsolicited event (a reply, FAILURE_EVENT, ...).
    pub fn recv_reply(&mut self, timeout: Duration) -> (u32, Vec<u8>) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_frame(left) {
                Some((t, _)) if is_unsolicited_event(t) => continue,
                Some(reply) => return reply,
                None => panic!("no reply within {timeout:?}"),
            }
        }
    }

    /// Skip events; the next reply must be FAILURE_CONF: returns (InvokeID, Status).
    pub fn expect_failure_conf(&mut self, timeout: Duration) -> (u32, u32) {
        let (_, frame) = self.recv_reply(timeout);
        as_failure_conf(&frame)
            .unwrap_or_else(|| panic!("expected FAILURE_CONF, got {}", describe(&frame)))
    }

    /// Skip events; the next reply must be FAILURE_EVENT: returns its Status.
    pub fn expect_failure_event(&mut self, timeout: Duration) -> u32 {
        let (_, frame) = self.recv_reply(timeout);
        as_failure_event(&frame)
            .unwrap_or_else(|| panic!("expected FAILURE_EVENT, got {}", describe(&frame)))
    }

    /// The router must close the connection next (no more frames) within `timeout`.
    pub fn expect_closed(&mut self, timeout: Duration) {
        match self.next(timeout) {
            Recv::Closed(_) => assert!(
                self.truncated_tail.is_empty(),
                "connection ended in the middle of a frame: {}",
                hex::encode(&self.truncated_tail)
            ),
            Recv::Frame(_, frame) => {
                panic!("expected the connection to close, got {}", describe(&frame))
            }
            Recv::Timeout => panic!("connection still open after {timeout:?}"),
        }
    }

    /// Every frame until the router closes the connection (panics if it does not within `timeout`).
    pub fn drain_until_closed(&mut self, timeout: Duration) -> Vec<(u32, Vec<u8>)> {
        let (frames, tail) = self.drain_until_cut(timeout);
        assert!(
            tail.is_empty(),
            "connection ended in the middle of a frame: {}",
            hex::encode(&tail)
        );
        frames
    }

    /// Every whole frame until the connection ends, and the bytes of an
    /// incomplete last frame, if it ended in one.
    pub fn drain_until_cut(&mut self, timeout: Duration) -> (Vec<(u32, Vec<u8>)>, Vec<u8>) {
        let deadline = Instant::now() + timeout;
        let mut frames = Vec::new();
        loop {
            match self.next(deadline.saturating_duration_since(Instant::now())) {
                Recv::Frame(t, frame) => frames.push((t, frame)),
                Recv::Closed(_) => return (frames, std::mem::take(&mut self.truncated_tail)),
                Recv::Timeout => panic!(
                    "connection still open after {timeout:?} ({} frames read, last {:?})",
                    frames.len(),
                    frames.last().map(|(_, f)| describe(f))
                ),
            }
        }
    }

    /// Nothing but unsolicited events arrives for `quiet` (and the connection stays open).
    pub fn expect_no_reply(&mut self, quiet: Duration) {
        let deadline = Instant::now() + quiet;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.next(left) {
                Recv::Frame(t, _) if is_unsolicited_event(t) => continue,
                Recv::Frame(_, frame) => panic!("unexpected {}", describe(&frame)),
                Recv::Timeout => return,
                Recv::Closed(kind) => panic!("connection closed ({kind:?}) unexpectedly"),
            }
        }
    }

    /// HEARTBEAT_REQ → HEARTBEAT_CONF with the same InvokeID (events in between skipped).
    /// Returns the round-trip time.
    pub fn heartbeat(&mut self, timeout: Duration) -> Duration {
        let invoke = self.invoke();
        let start = Instant::now();
        self.send_raw(&raw_frame(msg::HEARTBEAT_REQ, &invoke.to_be_bytes()));
        let (t, frame) = self.recv_reply(timeout);
        assert_eq!(
            t,
            msg::HEARTBEAT_CONF,
            "expected HEARTBEAT_CONF, got {}",
            describe(&frame)
        );
        assert_eq!(frame, raw_frame(msg::HEARTBEAT_CONF, &invoke.to_be_bytes()));
        start.elapsed()
    }

    /// Send an OPEN_REQ and expect OPEN_CONF first; sets `self.version`.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        &mut self,
        version: Version,
        services: u32,
        call_mask: u32,
        agent_mask: u32,
        idle_timeout: u32,
        client_id: &str,
        password: &[u8],
    ) -> OpenConf {
        let invoke = self.invoke();
        let req = open_req(
            invoke,
            version.number(),
            services,
            call_mask,
            agent_mask,
            idle_timeout,
            client_id,
            password,
        );
        self.send(req, version);
        let conf = self.expect_open_conf(version);
        assert_eq!(conf.invoke_id, invoke, "OPEN_CONF echoes the InvokeID");
        conf
    }

    /// The next frame must be OPEN_CONF at `version`; sets `self.version`.
    pub fn expect_open_conf(&mut self, version: Version) -> OpenConf {
        let (t, frame) = self.expect_frame(REPLY_TIMEOUT);
        assert_eq!(
            t,
            msg::OPEN_CONF,
            "expected OPEN_CONF, got {}",
            describe(&frame)
        );
        self.version = version;
        match decode_strict(&frame, version) {
            Message::OpenConf(conf) => conf,
            other => panic!("decoded {other:?}"),
        }
    }

    /// Open an All Events session (every call and agent event, no idle
    /// check) and consume the peripheral SYSTEM_EVENT(s) after OPEN_CONF.
    pub fn open_all_events(&mut self, version: Version) -> OpenConf {
        self.open_all_events_masked(version, ALL_CALLS, ALL_AGENT_STATES)
    }

    pub fn open_all_events_masked(
        &mut self,
        version: Version,
        call_mask: u32,
        agent_mask: u32,
    ) -> OpenConf {
        let conf = self.open(
            version,
            service::ALL_EVENTS,
            call_mask,
            agent_mask,
            NO_IDLE,
            "test",
            b"",
        );
        assert_eq!(conf.services_granted, service::ALL_EVENTS);
        let peripherals = conf.num_peripherals.unwrap_or(1).max(1);
        for _ in 0..peripherals {
            let sys = self.expect_system_event();
            assert_eq!(
                sys.system_event_id, 3,
                "SYS_PERIPHERAL_ONLINE after OPEN_CONF"
            );
        }
        conf
    }

    /// The next frame must be a SYSTEM_EVENT at the session's version.
    pub fn expect_system_event(&mut self) -> SystemEvent {
        let (t, frame) = self.expect_frame(REPLY_TIMEOUT);
        assert_eq!(
            t,
            msg::SYSTEM_EVENT,
            "expected SYSTEM_EVENT, got {}",
            describe(&frame)
        );
        match decode_strict(&frame, self.version) {
            Message::SystemEvent(e) => e,
            other => panic!("decoded {other:?}"),
        }
    }
}

/// An OPEN_REQ built with the codec (strings NUL-terminated).
#[allow(clippy::too_many_arguments)]
pub fn open_req(
    invoke_id: u32,
    version_number: u32,
    services: u32,
    call_mask: u32,
    agent_mask: u32,
    idle_timeout: u32,
    client_id: &str,
    password: &[u8],
) -> OpenReq {
    OpenReq {
        invoke_id,
        version_number,
        idle_timeout,
        peripheral_id: 0xFFFF_FFFF,
        services_requested: services,
        call_msg_mask: call_mask,
        agent_state_mask: agent_mask,
        client_id: Some(CtiString::from(client_id)),
        client_password: Some(Unspec(password.to_vec())),
        ..Default::default()
    }
}
