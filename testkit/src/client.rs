//! The raw GED-188 client of the tests: a blocking std `TcpStream` on
//! loopback; bytes in, bytes out (the codec only builds and checks frames).
//!
//! Two ways to read, on the same connection:
//!
//! * frame by frame: [`Client::next`] (a frame, a timeout or the end of the
//!   connection) and what is built on it ([`Client::expect_frame`],
//!   [`Client::recv_reply`], [`Client::expect_closed`], …); a frame it
//!   returns is consumed;
//! * through the log: every frame read by [`Client::poll`],
//!   [`Client::wait_for`] and the helpers built on them is appended to
//!   [`Client::log`], and [`Client::cursor`] marks how far the test has
//!   looked; [`Client::reply`] finds a reply by InvokeID and leaves the events
//!   before it to the test; the monitor helpers ([`Client::monitor_device`],
//!   …) send a request and return its answer that way.
//!
//! [`Client::next`] first hands out logged frames past the cursor, so a test
//! may mix the two.
//!
//! [`Client::connect_tls`] makes the same client over TLS (rustls): every
//! read and write goes through its rustls state, nothing else changes.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use ctirouter::proto::constants::{connection_type, device_type, msg, service};
use ctirouter::proto::msg::*;
use ctirouter::proto::{CtiString, Message, Unspec, Version};

use crate::events::CallRef;
use crate::frames::*;
use crate::{
    thread_report, ALL_AGENTS, ALL_CALLS, NO_IDLE, NULL_PERIPHERAL, PID, SYNC_DEVICE, WAIT,
};

/// A write blocked this long fails (a client of [`Client::connect`]).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// What the next read brought ([`Client::next`]).
#[derive(Debug)]
pub enum Recv {
    /// One whole frame: (MessageType, the whole frame with its header).
    Frame(u32, Vec<u8>),
    Timeout,
    /// EOF or a connection error (reset): the peer closed the connection.
    Closed(Option<ErrorKind>),
}

/// Why a wait on the log gave up ([`Client::wait_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    Timeout,
    Closed,
}

/// What OPEN_REQ asks for. [`OpenSpec::new`] is a plain client's request
/// (PeripheralID NULL, ClientID `test`); [`OpenSpec::services`] the monitor
/// tests' (v24, PeripheralID [`PID`], ClientID `monitor-test`). Both ask for
/// every call and agent event and no idle check.
#[derive(Debug, Clone)]
pub struct OpenSpec {
    pub version: Version,
    pub services: u32,
    pub call_mask: u32,
    pub agent_mask: u32,
    pub idle_timeout: u32,
    pub client_id: String,
    pub password: Vec<u8>,
    pub agent_id: Option<String>,
    pub agent_extension: Option<String>,
    pub agent_instrument: Option<String>,
    pub peripheral_id: u32,
}

impl OpenSpec {
    /// A plain client's OPEN_REQ at `version` for `services`.
    pub fn new(version: Version, services: u32) -> OpenSpec {
        OpenSpec {
            version,
            services,
            call_mask: ALL_CALLS,
            agent_mask: ALL_AGENTS,
            idle_timeout: NO_IDLE,
            client_id: "test".into(),
            password: Vec::new(),
            agent_id: None,
            agent_extension: None,
            agent_instrument: None,
            peripheral_id: NULL_PERIPHERAL,
        }
    }

    /// The monitor tests' OPEN_REQ (v24, PeripheralID [`PID`]) for `services`.
    pub fn services(services: u32) -> OpenSpec {
        OpenSpec {
            client_id: "monitor-test".into(),
            peripheral_id: PID,
            ..OpenSpec::new(Version::MAX, services)
        }
    }

    pub fn masks(mut self, call_mask: u32, agent_mask: u32) -> OpenSpec {
        self.call_mask = call_mask;
        self.agent_mask = agent_mask;
        self
    }

    pub fn idle(mut self, idle_timeout: u32) -> OpenSpec {
        self.idle_timeout = idle_timeout;
        self
    }

    pub fn client(mut self, client_id: &str, password: &[u8]) -> OpenSpec {
        self.client_id = client_id.into();
        self.password = password.to_vec();
        self
    }

    /// The OPEN_REQ with this InvokeID.
    pub fn request(&self, invoke_id: u32) -> OpenReq {
        OpenReq {
            invoke_id,
            version_number: self.version.number(),
            idle_timeout: self.idle_timeout,
            peripheral_id: self.peripheral_id,
            services_requested: self.services,
            call_msg_mask: self.call_mask,
            agent_state_mask: self.agent_mask,
            client_id: Some(CtiString::from(self.client_id.as_str())),
            client_password: Some(Unspec(self.password.clone())),
            agent_extension: self.agent_extension.as_deref().map(CtiString::from),
            agent_id: self.agent_id.as_deref().map(CtiString::from),
            agent_instrument: self.agent_instrument.as_deref().map(CtiString::from),
            ..Default::default()
        }
    }
}

/// An OPEN_REQ built with the codec (strings NUL-terminated; PeripheralID NULL).
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
        peripheral_id: NULL_PERIPHERAL,
        services_requested: services,
        call_msg_mask: call_mask,
        agent_state_mask: agent_mask,
        client_id: Some(CtiString::from(client_id)),
        client_password: Some(Unspec(password.to_vec())),
        ..Default::default()
    }
}

/// A raw GED-188 client over a blocking std `TcpStream`.
pub struct Client {
    stream: TcpStream,
    /// rustls's state of a client of [`Client::connect_tls`].
    tls: Option<Box<rustls::ClientConnection>>,
    /// Bytes read and not yet cut into frames.
    buf: Vec<u8>,
    /// Frames read through the log ([`Client::poll`], [`Client::wait_for`], …).
    pub log: Vec<Vec<u8>>,
    /// How far in `log` the test has looked.
    pub cursor: usize,
    /// The version negotiated by [`Client::open`] (24 until then); what
    /// [`Client::send`] encodes at.
    pub version: Version,
    next_invoke: u32,
    /// The local port (names the connection in failure messages).
    pub port: u16,
    /// Set by a log read seeing the connection end (EOF or error).
    pub closed: bool,
    /// How a log read saw it end (an error's kind, `None` for EOF).
    close_kind: Option<ErrorKind>,
    /// Bytes of an incomplete frame the connection ended in ([`Client::next`]).
    pub truncated_tail: Vec<u8>,
}

impl Client {
    /// Connect to `addr` (5 s at most); writes that block [`SEND_TIMEOUT`] fail.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, WAIT)
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream
            .set_write_timeout(Some(SEND_TIMEOUT))
            .expect("set_write_timeout");
        Self::from_stream(stream)
    }

    /// A client on a connection made elsewhere (its socket options kept).
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_nodelay(true).expect("nodelay");
        let port = stream.local_addr().map_or(0, |a| a.port());
        Client {
            stream,
            tls: None,
            buf: Vec::with_capacity(64 * 1024),
            log: Vec::new(),
            cursor: 0,
            version: Version::MAX,
            next_invoke: 1000,
            port,
            closed: false,
            close_kind: None,
            truncated_tail: Vec::new(),
        }
    }

    /// Connect to `addr` over TLS and complete the handshake (5 s at
    /// most), checking the server's certificate against `name`. `Err` says
    /// why the handshake failed. (With TLS 1.3 a client certificate the
    /// server refuses shows on the first read, not here.)
    pub fn connect_tls(
        addr: SocketAddr,
        config: std::sync::Arc<rustls::ClientConfig>,
        name: &str,
    ) -> Result<Client, String> {
        let mut stream = TcpStream::connect_timeout(&addr, WAIT)
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream
            .set_write_timeout(Some(SEND_TIMEOUT))
            .expect("set_write_timeout");
        stream
            .set_read_timeout(Some(WAIT))
            .expect("set_read_timeout");
        let mut tls = rustls::ClientConnection::new(config, crate::tls::server_name(name))
            .map_err(|e| e.to_string())?;
        while tls.is_handshaking() {
            tls.complete_io(&mut stream)
                .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
        }
        let mut client = Self::from_stream(stream);
        client.tls = Some(Box::new(tls));
        Ok(client)
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Whether this client speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Read bytes: from the socket, or the plaintext rustls makes of it.
    /// Timeouts come from the socket's read timeout.
    fn read_wire(&mut self, chunk: &mut [u8]) -> std::io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.stream.read(chunk);
        };
        // A connection rustls gave up on stays failed.
        tls.process_new_packets()
            .map_err(|e| std::io::Error::new(ErrorKind::ConnectionAborted, e))?;
        loop {
            match tls.reader().read(chunk) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if tls.read_tls(&mut self.stream)? == 0 {
                return Ok(0);
            }
            let processed = tls.process_new_packets();
            // Alerts and key updates go out whatever happened.
            while tls.wants_write() && tls.write_tls(&mut self.stream).is_ok() {}
            processed.map_err(|e| std::io::Error::new(ErrorKind::ConnectionAborted, e))?;
        }
    }

    /// Whether rustls holds plaintext (or the end of the stream) that a
    /// read returns without the socket.
    fn tls_buffered(&mut self) -> bool {
        self.tls.as_mut().is_some_and(|tls| {
            tls.process_new_packets().map_or(true, |io| {
                io.plaintext_bytes_to_read() > 0 || io.peer_has_closed()
            })
        })
    }

    /// A fresh InvokeID.
    pub fn invoke(&mut self) -> u32 {
        self.next_invoke += 1;
        self.next_invoke
    }

    // -----------------------------------------------------------------------
    // Sending
    // -----------------------------------------------------------------------

    pub fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let Some(tls) = self.tls.as_mut() else {
            return self.stream.write_all(bytes);
        };
        tls.writer().write_all(bytes)?;
        while tls.wants_write() {
            tls.write_tls(&mut self.stream)?;
        }
        Ok(())
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.try_send_raw(bytes)
            .unwrap_or_else(|e| panic!("port {}: send {} bytes: {e}", self.port, bytes.len()));
    }

    /// Encode `message` at the session's version (whole frame) and send it.
    pub fn send(&mut self, message: impl Into<Message>) {
        self.send_at(message, self.version);
    }

    /// Encode `message` at `version` (whole frame) and send it.
    pub fn send_at(&mut self, message: impl Into<Message>, version: Version) {
        let frame = message
            .into()
            .to_frame(version)
            .expect("encodable test message");
        self.send_raw(&frame);
    }

    /// Drop the TCP connection without CLOSE_REQ.
    pub fn drop_connection(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    // -----------------------------------------------------------------------
    // Frame by frame
    // -----------------------------------------------------------------------

    /// The next whole frame (logged frames past the cursor first), a
    /// timeout, or the end of the connection. Handles frames split across
    /// reads and several frames in one read.
    pub fn next(&mut self, timeout: Duration) -> Recv {
        if self.cursor < self.log.len() {
            let frame = self.log.remove(self.cursor);
            return Recv::Frame(frame_type(&frame), frame);
        }
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 64 * 1024];
        loop {
            if let Some(frame) = take_frame(&mut self.buf) {
                return Recv::Frame(frame_type(&frame), frame);
            }
            if self.closed {
                self.truncated_tail = std::mem::take(&mut self.buf);
                return Recv::Closed(self.close_kind);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Recv::Timeout;
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("set_read_timeout");
            match self.read_wire(&mut chunk) {
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

    /// The peer must close the connection next (no more frames, not in the
    /// middle of one) within `timeout`.
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

    /// Every frame until the peer closes the connection (panics if it does not within `timeout`).
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

    /// Every frame until `timeout` (the connection must stay open).
    pub fn collect_for(&mut self, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut frames = Vec::new();
        loop {
            match self.next(deadline.saturating_duration_since(Instant::now())) {
                Recv::Frame(_, frame) => frames.push(frame),
                Recv::Timeout => return frames,
                Recv::Closed(kind) => {
                    panic!("session closed ({kind:?}) after {} frames", frames.len())
                }
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

    /// HEARTBEAT_REQ → HEARTBEAT_CONF with the same InvokeID, byte for byte
    /// (events in between consumed). Returns the round-trip time.
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

    /// Send the OPEN_REQ of `spec`; OPEN_CONF must be the first frame (it
    /// stays in the log, the cursor past it). Sets `self.version`.
    pub fn open(&mut self, spec: &OpenSpec) -> OpenConf {
        let invoke = self.invoke();
        self.send_at(spec.request(invoke), spec.version);
        let i = self.expect("OPEN_CONF", |_| true);
        let frame = self.log[i].clone();
        assert_eq!(
            frame_type(&frame),
            msg::OPEN_CONF,
            "the first frame after OPEN_REQ must be OPEN_CONF, got {}",
            describe(&frame)
        );
        self.version = spec.version;
        let Message::OpenConf(conf) = decode_strict(&frame, spec.version) else {
            unreachable!()
        };
        assert_eq!(conf.invoke_id, invoke, "OPEN_CONF echoes the InvokeID");
        conf
    }

    /// The next frame must be OPEN_CONF at `version`; sets `self.version`.
    pub fn expect_open_conf(&mut self, version: Version) -> OpenConf {
        let (t, frame) = self.expect_frame(WAIT);
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
        self.open_all_events_masked(version, ALL_CALLS, ALL_AGENTS)
    }

    pub fn open_all_events_masked(
        &mut self,
        version: Version,
        call_mask: u32,
        agent_mask: u32,
    ) -> OpenConf {
        let conf =
            self.open(&OpenSpec::new(version, service::ALL_EVENTS).masks(call_mask, agent_mask));
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
        let (t, frame) = self.expect_frame(WAIT);
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

    // -----------------------------------------------------------------------
    // Through the log
    // -----------------------------------------------------------------------

    /// Read all that is there now (no waiting) into the log; returns how
    /// many frames arrived.
    pub fn poll(&mut self) -> usize {
        self.read_some(Duration::ZERO, true)
    }

    /// Wait up to `timeout` for bytes, read once (or, with `drain`, until
    /// nothing is left to read), then log every whole frame. One read at a
    /// time keeps a client that waits for one frame from swallowing a flood
    /// behind it.
    fn read_some(&mut self, timeout: Duration, drain: bool) -> usize {
        if self.closed {
            return 0;
        }
        let before = self.log.len();
        let mut chunk = [0u8; 64 * 1024];
        let mut wait = timeout;
        // Read while poll(2) says a read will not block (data, EOF or error).
        while self.tls_buffered() || readable(&self.stream, wait) {
            wait = Duration::ZERO;
            if self.tls.is_some() {
                // poll(2) saw ciphertext: it may not make a whole record yet.
                let _ = self
                    .stream
                    .set_read_timeout(Some(Duration::from_millis(50)));
            }
            match self.read_wire(&mut chunk) {
                Ok(0) => {
                    self.closed = true;
                    break;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if !drain {
                        break;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    self.closed = true;
                    self.close_kind = Some(e.kind());
                    break;
                }
            }
        }
        while let Some(frame) = take_frame(&mut self.buf) {
            self.log.push(frame);
        }
        self.log.len() - before
    }

    /// Index (in `log`) of the first frame from `cursor` on that satisfies
    /// `pred`, reading up to `timeout`; the cursor moves past it.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&[u8]) -> bool,
    ) -> Result<usize, ReadEnd> {
        let deadline = Instant::now() + timeout;
        let mut scanned = self.cursor;
        loop {
            while scanned < self.log.len() {
                if pred(&self.log[scanned]) {
                    self.cursor = scanned + 1;
                    return Ok(scanned);
                }
                scanned += 1;
            }
            if self.closed {
                return Err(ReadEnd::Closed);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let _ = what;
                return Err(ReadEnd::Timeout);
            }
            self.read_some(left.min(Duration::from_millis(50)), false);
        }
    }

    /// [`Client::wait_for`] for [`WAIT`] that panics with the log's tail
    /// (and the in-process router threads' CPU times) when nothing comes.
    pub fn expect(&mut self, what: &str, pred: impl Fn(&[u8]) -> bool) -> usize {
        match self.wait_for(what, WAIT, pred) {
            Ok(i) => i,
            Err(end) => panic!(
                "port {}: no {what} within {WAIT:?} ({end:?}); frames since the cursor: {}\nrouter threads: {}",
                self.port,
                self.log[self.cursor..]
                    .iter()
                    .map(|f| describe(f))
                    .collect::<Vec<_>>()
                    .join(", "),
                thread_report()
            ),
        }
    }

    /// The reply to InvokeID `invoke`, taken out of the log (events before
    /// it stay there, and the cursor where it was).
    pub fn reply(&mut self, invoke: u32) -> Vec<u8> {
        let start = self.cursor;
        let i = self.expect(&format!("reply to invoke {invoke}"), |f| {
            is_reply(frame_type(f)) && be32(f, 8) == invoke
        });
        self.cursor = start;
        self.log.remove(i)
    }

    /// Send the OPEN_REQ of `spec` expecting FAILURE_CONF: returns its status.
    pub fn open_refused(&mut self, spec: &OpenSpec) -> u32 {
        let invoke = self.invoke();
        self.send_at(spec.request(invoke), spec.version);
        let f = self.reply(invoke);
        failure_status(&f).unwrap_or_else(|| panic!("expected FAILURE_CONF, got {}", describe(&f)))
    }

    /// A device monitor on [`SYNC_DEVICE`] (masks: everything).
    pub fn watch_sync(&mut self) -> u32 {
        self.monitor_device(
            device_type::DEVICE_IDENTIFIER,
            SYNC_DEVICE,
            ALL_CALLS,
            ALL_AGENTS,
        )
        .expect("sync monitor")
    }

    /// MONITOR_START_REQ for a device: Ok(MonitorID) or Err(FAILURE_CONF status).
    pub fn monitor_device(
        &mut self,
        dev_type: u16,
        device: &str,
        call_mask: u32,
        agent_mask: u32,
    ) -> Result<u32, u32> {
        let invoke = self.invoke();
        self.send(MonitorStartReq {
            invoke_id: invoke,
            peripheral_id: PID,
            connection_call_id: 0,
            call_msg_mask: call_mask,
            agent_state_mask: agent_mask,
            connection_device_id_type: connection_type::NONE,
            monitored_device_type: dev_type,
            connection_device_id: None,
            monitored_device_id: Some(device.into()),
        });
        self.monitor_start_reply(invoke)
    }

    /// MONITOR_START_REQ for a call (DYNAMIC ConnectionDeviceIDType).
    pub fn monitor_call(
        &mut self,
        call: CallRef,
        call_mask: u32,
        agent_mask: u32,
    ) -> Result<u32, u32> {
        let invoke = self.invoke();
        self.send(MonitorStartReq {
            invoke_id: invoke,
            peripheral_id: PID,
            connection_call_id: call.id,
            call_msg_mask: call_mask,
            agent_state_mask: agent_mask,
            connection_device_id_type: connection_type::DYNAMIC,
            monitored_device_type: device_type::NONE,
            connection_device_id: Some(call.dev.into()),
            monitored_device_id: None,
        });
        self.monitor_start_reply(invoke)
    }

    /// The answer to MONITOR_START_REQ `invoke`: Ok(MonitorID) or Err(FAILURE_CONF status).
    pub fn monitor_start_reply(&mut self, invoke: u32) -> Result<u32, u32> {
        let f = self.reply(invoke);
        match decode(&f) {
            Message::MonitorStartConf(c) => {
                assert_ne!(c.monitor_id, 0, "MonitorID 0 is All Events");
                Ok(c.monitor_id)
            }
            Message::FailureConf(fc) => Err(fc.status),
            other => panic!("MONITOR_START_REQ answered with {other:?}"),
        }
    }

    /// Send the request `make(InvokeID)` and wait for its answer: Ok(the
    /// confirmation) or Err(FAILURE_CONF status).
    pub fn request<M: Into<Message>>(
        &mut self,
        make: impl FnOnce(u32) -> M,
    ) -> Result<Message, u32> {
        let invoke = self.invoke();
        self.send(make(invoke));
        match decode(&self.reply(invoke)) {
            Message::FailureConf(fc) => Err(fc.status),
            conf => Ok(conf),
        }
    }

    pub fn monitor_stop(&mut self, monitor_id: u32) -> Result<(), u32> {
        let conf = self.request(|invoke_id| MonitorStopReq {
            invoke_id,
            monitor_id,
        })?;
        match conf {
            Message::MonitorStopConf(_) => Ok(()),
            other => panic!("MONITOR_STOP_REQ answered with {other:?}"),
        }
    }

    pub fn change_mask(
        &mut self,
        monitor_id: u32,
        call_mask: u32,
        agent_mask: u32,
    ) -> Result<(), u32> {
        let conf = self.request(|invoke_id| ChangeMonitorMaskReq {
            invoke_id,
            monitor_id,
            call_msg_mask: call_mask,
            agent_state_mask: agent_mask,
        })?;
        match conf {
            Message::ChangeMonitorMaskConf(_) => Ok(()),
            other => panic!("CHANGE_MONITOR_MASK_REQ answered with {other:?}"),
        }
    }

    pub fn session_monitor_start(&mut self, session_id: u32) -> Result<u32, u32> {
        let conf = self.request(|invoke_id| SessionMonitorStartReq {
            invoke_id,
            session_id,
        })?;
        match conf {
            Message::SessionMonitorStartConf(c) => Ok(c.monitor_id),
            other => panic!("SESSION_MONITOR_START_REQ answered with {other:?}"),
        }
    }

    pub fn session_monitor_stop(&mut self, monitor_id: u32) -> Result<(), u32> {
        let conf = self.request(|invoke_id| SessionMonitorStopReq {
            invoke_id,
            monitor_id,
        })?;
        match conf {
            Message::SessionMonitorStopConf(_) => Ok(()),
            other => panic!("SESSION_MONITOR_STOP_REQ answered with {other:?}"),
        }
    }

    /// HEARTBEAT_REQ → its HEARTBEAT_CONF, found by InvokeID (events before
    /// it stay in the log): the session is alive and served.
    pub fn heartbeat_keeping_events(&mut self) {
        let invoke = self.invoke();
        self.send(HeartbeatReq { invoke_id: invoke });
        let f = self.reply(invoke);
        assert_eq!(frame_type(&f), msg::HEARTBEAT_CONF, "{}", describe(&f));
    }

    /// CLOSE_REQ → CLOSE_CONF, then the router closes the connection.
    pub fn close(&mut self) {
        let invoke = self.invoke();
        self.send(CloseReq {
            invoke_id: invoke,
            status: 0,
        });
        let f = self.reply(invoke);
        assert_eq!(frame_type(&f), msg::CLOSE_CONF, "{}", describe(&f));
        self.expect_closed_within(WAIT);
    }

    /// The peer must close the connection within `timeout`; the frames
    /// before the close are logged.
    pub fn expect_closed_within(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "port {}: connection still open", self.port);
            self.read_some(left.min(Duration::from_millis(50)), false);
        }
    }

    /// Events (not replies, not SYSTEM_EVENTs, not sync markers) from the
    /// cursor up to the copy of marker `reason`; the cursor moves past it.
    pub fn events_until_mark(&mut self, reason: u16, timeout: Duration) -> Vec<Vec<u8>> {
        let start = self.cursor;
        let i = match self.wait_for("sync marker", timeout, |f| mark_of(f) == Some(reason)) {
            Ok(i) => i,
            Err(end) => panic!(
                "port {}: marker {reason} never arrived ({end:?}); frames since the cursor: {}",
                self.port,
                self.log[start..]
                    .iter()
                    .map(|f| describe(f))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        self.log[start..i]
            .iter()
            .filter(|f| is_test_event(f))
            .cloned()
            .collect()
    }

    /// Everything received within `quiet` (no waiting beyond it); the cursor
    /// moves to the end of the log.
    pub fn drain_for(&mut self, quiet: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + quiet;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.closed {
                break;
            }
            self.read_some(left, false);
        }
        let out = self.log[self.cursor..].to_vec();
        self.cursor = self.log.len();
        out
    }
}

/// Whether a read on `stream` would not block (data, EOF or an error),
/// waiting up to `timeout` for it.
fn readable(stream: &TcpStream, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = if timeout.is_zero() {
        0
    } else {
        timeout.as_millis().clamp(1, i32::MAX as u128) as i32
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    n > 0 && pfd.revents != 0
}
