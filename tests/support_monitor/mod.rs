//! Test support for the monitor-service tests (`tests/monitor_*.rs`):
//!
//! * [`TestRouter`] — the router in-process (`Router::start`) on a loopback
//!   port: two shards, no pinning, no spinning; shut down on drop;
//! * [`FakePg`] — a scripted CTI Server on loopback that the router opens as
//!   its upstream: it answers OPEN_REQ / HEARTBEAT_REQ / CLOSE_REQ and sends
//!   exactly the events a test writes, so a test decides the event stream;
//! * [`Harness`] — a router whose upstream is a [`FakePg`], with ordered
//!   synchronisation points ([`Harness::sync`]);
//! * [`Cli`] — a raw GED-188 client over a std `TcpStream` that keeps a log
//!   of every frame it received;
//! * event builders for the fake PG and small frame inspectors.
//!
//! `reference` holds the naive reference matcher of the model test.
#![allow(dead_code)]

pub mod reference;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ctirouter::config::{Config, UpstreamConfig};
use ctirouter::proto::constants::{connection_type, device_type, msg, service};
use ctirouter::proto::group::{Party, PeripheralEntry};
use ctirouter::proto::msg::*;
use ctirouter::proto::{decode_frame, CtiString, DecodeOptions, Message, Unspec, Version};
use ctirouter::router::Router;

/// Every CallMsgMask bit.
pub const ALL_CALLS: u32 = 0xFFFF_FFFF;
/// Every AgentStateMask bit of docs/protocol.md §5.3.
pub const ALL_AGENTS: u32 = 0x3FFF;
/// IdleTimeout that disables the idle check.
pub const NO_IDLE: u32 = 0xFFFF_FFFF;
/// PeripheralID of the fake PG.
pub const PID: u32 = 5000;
/// PeripheralType the fake PG reports (enterprise agent).
pub const PT: u16 = 17;
/// Default wait for something the router owes right away.
pub const WAIT: Duration = Duration::from_secs(5);
/// Device every [`Harness::sync`] marker names (as AgentInstrument).
pub const SYNC_DEVICE: &str = "SYNC";
/// Marker AGENT_STATE_EVENTs carry EventReasonCode `MARK_BASE + n`.
pub const MARK_BASE: u16 = 60_000;

pub fn v24() -> Version {
    Version::MAX
}

// ---------------------------------------------------------------------------
// The router in-process
// ---------------------------------------------------------------------------

/// The test configuration: loopback port 0, two shards, no pinning, no spin.
pub fn base_config() -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    c.runtime.shards = 2;
    c.runtime.pin = false;
    c.runtime.spin_before_park_us = 0;
    c
}

/// A router started in this process; shut down (and joined) on drop.
pub struct TestRouter {
    router: Option<Router>,
    pub addr: SocketAddr,
}

impl TestRouter {
    pub fn start(config: Config) -> TestRouter {
        let router = Router::start(config).unwrap_or_else(|e| panic!("router start: {e}"));
        let addr = router.local_addr;
        TestRouter {
            router: Some(router),
            addr,
        }
    }

    /// The router's counters, for failure reports.
    pub fn metrics_line(&self) -> String {
        match &self.router {
            Some(r) => format!("{:?}", r.metrics.snapshot()),
            None => "(stopped)".into(),
        }
    }

    /// Stop and join, giving up (and leaking the router's threads) after
    /// `timeout`: a router that does not stop must fail the test, not hang it.
    pub fn shutdown_within(&mut self, timeout: Duration) -> Result<(), String> {
        let Some(r) = self.router.take() else {
            return Ok(());
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(r.shutdown().map_err(|e| e.to_string()));
        });
        match rx.recv_timeout(timeout) {
            Ok(result) => result,
            Err(_) => Err(format!(
                "the router did not stop within {timeout:?}; router threads: {}",
                thread_report()
            )),
        }
    }
}

impl Drop for TestRouter {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown_within(Duration::from_secs(10)) {
            eprintln!("{e}");
        }
    }
}

// ---------------------------------------------------------------------------
// The fake PG (the router's upstream)
// ---------------------------------------------------------------------------

/// A scripted CTI Server: accepts the router's upstream connection, answers
/// its OPEN_REQ (All Events granted, peripheral 5000 online), heartbeats and
/// CLOSE_REQ, and sends whatever the test writes with [`FakePg::send`].
pub struct FakePg {
    pub addr: SocketAddr,
    writer: Arc<Mutex<Option<TcpStream>>>,
    opened: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakePg {
    pub fn start() -> FakePg {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake PG");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let writer: Arc<Mutex<Option<TcpStream>>> = Arc::new(Mutex::new(None));
        let opened = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (writer, opened, stop) = (writer.clone(), opened.clone(), stop.clone());
            std::thread::spawn(move || serve_pg(listener, writer, opened, stop))
        };
        FakePg {
            addr,
            writer,
            opened,
            stop,
            thread: Some(thread),
        }
    }

    /// Wait until the router's upstream session is open.
    pub fn wait_open(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.opened.load(Ordering::Acquire) {
            assert!(
                Instant::now() < deadline,
                "the router never opened its upstream session with the fake PG"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Send one event (encoded at v24) to the router.
    pub fn send(&self, m: impl Into<Message>) {
        let frame = m.into().to_frame(v24()).expect("encodable event");
        self.send_raw(&frame);
    }

    pub fn send_raw(&self, bytes: &[u8]) {
        let mut w = self.writer.lock().unwrap();
        let s = w
            .as_mut()
            .expect("the router is not connected to the fake PG");
        s.write_all(bytes)
            .expect("write to the router's upstream socket");
    }
}

impl Drop for FakePg {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(s) = self.writer.lock().unwrap().as_ref() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_pg(
    listener: TcpListener,
    writer: Arc<Mutex<Option<TcpStream>>>,
    opened: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Acquire) {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            Err(_) => return,
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        *writer.lock().unwrap() = Some(stream.try_clone().unwrap());
        let mut reader = stream;
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 4096];
        'conn: while !stop.load(Ordering::Acquire) {
            match reader.read(&mut chunk) {
                Ok(0) => break 'conn,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(_) => break 'conn,
            }
            while let Some(frame) = take_frame(&mut buf) {
                let t = frame_type(&frame);
                let body = &frame[8..];
                let invoke_id = be32(body, 0);
                let reply: Option<Message> = match t {
                    msg::OPEN_REQ => Some(
                        OpenConf {
                            invoke_id,
                            services_granted: service::ALL_EVENTS,
                            monitor_id: 0,
                            pg_status: 0,
                            icm_central_controller_time: 1_704_067_200,
                            peripheral_online: 1,
                            peripheral_type: PT,
                            agent_state: 0,
                            department_id: 0,
                            session_type: 1,
                            num_peripherals: Some(1),
                            peripherals: vec![PeripheralEntry {
                                peripheral_id: Some(PID),
                                multiline_agent_control: Some(0),
                            }],
                            ..Default::default()
                        }
                        .into(),
                    ),
                    msg::HEARTBEAT_REQ => Some(HeartbeatConf { invoke_id }.into()),
                    msg::CLOSE_REQ => Some(CloseConf { invoke_id }.into()),
                    _ => None,
                };
                if let Some(reply) = reply {
                    let bytes = reply.to_frame(v24()).unwrap();
                    let mut w = writer.lock().unwrap();
                    if let Some(s) = w.as_mut() {
                        let _ = s.write_all(&bytes);
                    }
                    if t == msg::OPEN_REQ {
                        opened.store(true, Ordering::Release);
                    }
                }
            }
        }
    }
}

fn take_frame(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    if buf.len() < 8 {
        return None;
    }
    let len = be32(buf, 0) as usize + 8;
    if buf.len() < len {
        return None;
    }
    Some(buf.drain(..len).collect())
}

// ---------------------------------------------------------------------------
// Harness: router + fake PG
// ---------------------------------------------------------------------------

/// A router whose upstream is a [`FakePg`]: the test writes the event stream.
/// Field order matters: the router stops (CLOSE_REQ upstream) before the PG.
pub struct Harness {
    pub router: TestRouter,
    pub pg: FakePg,
    next_mark: u16,
}

impl Harness {
    pub fn new() -> Harness {
        Self::with_config(|_| {})
    }

    pub fn with_config(tweak: impl FnOnce(&mut Config)) -> Harness {
        let pg = FakePg::start();
        let mut config = base_config();
        config.upstream = Some(UpstreamConfig {
            sides: vec![pg.addr.to_string()],
            ..UpstreamConfig::default()
        });
        tweak(&mut config);
        let router = TestRouter::start(config);
        pg.wait_open(WAIT);
        Harness {
            router,
            pg,
            next_mark: 0,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.router.addr
    }

    pub fn connect(&self) -> Cli {
        Cli::connect(self.addr())
    }

    /// A Peripheral Monitor session with a device monitor on [`SYNC_DEVICE`]
    /// (so [`Harness::sync`] reaches it).
    pub fn pm_session(&self) -> Cli {
        let mut c = self.connect();
        c.open(&OpenSpec::services(service::PERIPHERAL_MONITOR));
        c.watch_sync();
        c
    }

    /// `n` Peripheral Monitor sessions (on both shards, in all likelihood).
    pub fn pm_sessions(&self, n: usize) -> Vec<Cli> {
        (0..n).map(|_| self.pm_session()).collect()
    }

    pub fn send(&self, m: impl Into<Message>) {
        self.pg.send(m);
    }

    /// A marker event naming [`SYNC_DEVICE`]: once a session has its copy,
    /// it has everything sent before it (rings and sockets keep order).
    /// Returns each session's events since its previous sync point (replies,
    /// SYSTEM_EVENTs and marker copies left out).
    pub fn sync(&mut self, clis: &mut [&mut Cli]) -> Vec<Vec<Vec<u8>>> {
        self.sync_with(agent_fields(None, None, Some(SYNC_DEVICE)), clis)
    }

    /// [`Harness::sync`] with a marker naming these agent fields (for Client
    /// Events sessions: a marker of their own agent).
    pub fn sync_with(
        &mut self,
        fields: (Option<&str>, Option<&str>, Option<&str>),
        clis: &mut [&mut Cli],
    ) -> Vec<Vec<Vec<u8>>> {
        let reason = MARK_BASE + self.next_mark;
        self.next_mark += 1;
        let (id, ext, instr) = fields;
        self.send(agent_state_ev(id, ext, instr, 3, reason));
        clis.iter_mut()
            .map(|c| c.events_until_mark(reason, WAIT))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// The raw client
// ---------------------------------------------------------------------------

/// What OPEN_REQ asks for.
#[derive(Debug, Clone)]
pub struct OpenSpec {
    pub services: u32,
    pub call_mask: u32,
    pub agent_mask: u32,
    pub idle_timeout: u32,
    pub client_id: String,
    pub agent_id: Option<String>,
    pub agent_extension: Option<String>,
    pub agent_instrument: Option<String>,
    pub peripheral_id: u32,
}

impl OpenSpec {
    pub fn services(services: u32) -> OpenSpec {
        OpenSpec {
            services,
            call_mask: ALL_CALLS,
            agent_mask: ALL_AGENTS,
            idle_timeout: NO_IDLE,
            client_id: "monitor-test".into(),
            agent_id: None,
            agent_extension: None,
            agent_instrument: None,
            peripheral_id: PID,
        }
    }

    pub fn masks(mut self, call_mask: u32, agent_mask: u32) -> OpenSpec {
        self.call_mask = call_mask;
        self.agent_mask = agent_mask;
        self
    }

    pub fn request(&self, invoke_id: u32) -> OpenReq {
        OpenReq {
            invoke_id,
            version_number: 24,
            idle_timeout: self.idle_timeout,
            peripheral_id: self.peripheral_id,
            services_requested: self.services,
            call_msg_mask: self.call_mask,
            agent_state_mask: self.agent_mask,
            client_id: Some(CtiString::from(self.client_id.as_str())),
            client_password: Some(Unspec(Vec::new())),
            agent_extension: self.agent_extension.as_deref().map(CtiString::from),
            agent_id: self.agent_id.as_deref().map(CtiString::from),
            agent_instrument: self.agent_instrument.as_deref().map(CtiString::from),
            ..Default::default()
        }
    }
}

/// Why a blocking read gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    Timeout,
    Closed,
}

/// A raw GED-188 client (v24). Every frame it receives is appended to `log`;
/// `cursor` marks how far the test has looked.
pub struct Cli {
    stream: TcpStream,
    buf: Vec<u8>,
    pub log: Vec<Vec<u8>>,
    pub cursor: usize,
    next_invoke: u32,
    pub port: u16,
    /// Set by the connection ending (EOF or error).
    pub closed: bool,
}

/// Reply types: their first field is the InvokeID.
pub fn is_reply(t: u32) -> bool {
    matches!(
        t,
        msg::FAILURE_CONF
            | msg::OPEN_CONF
            | msg::HEARTBEAT_CONF
            | msg::CLOSE_CONF
            | msg::MONITOR_START_CONF
            | msg::MONITOR_STOP_CONF
            | msg::CHANGE_MONITOR_MASK_CONF
            | msg::SESSION_MONITOR_START_CONF
            | msg::SESSION_MONITOR_STOP_CONF
    )
}

impl Cli {
    pub fn connect(addr: SocketAddr) -> Cli {
        let stream = TcpStream::connect_timeout(&addr, WAIT)
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_nodelay(true).unwrap();
        stream.set_nonblocking(true).unwrap();
        let port = stream.local_addr().unwrap().port();
        Cli {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            log: Vec::new(),
            cursor: 0,
            next_invoke: 100,
            port,
            closed: false,
        }
    }

    pub fn invoke(&mut self) -> u32 {
        self.next_invoke += 1;
        self.next_invoke
    }

    pub fn send(&mut self, m: impl Into<Message>) {
        let frame = m.into().to_frame(v24()).expect("encodable request");
        self.send_raw(&frame);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let mut off = 0;
        let deadline = Instant::now() + WAIT;
        while off < bytes.len() {
            match self.stream.write(&bytes[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "send blocked for {WAIT:?}");
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("send {} bytes: {e}", bytes.len()),
            }
        }
    }

    /// Drop the TCP connection without CLOSE_REQ.
    pub fn drop_connection(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Read what is there now (no waiting); returns how many frames arrived.
    pub fn poll(&mut self) -> usize {
        self.read_some(Duration::ZERO)
    }

    /// Wait up to `timeout` for bytes, then take every whole frame.
    fn read_some(&mut self, timeout: Duration) -> usize {
        if self.closed {
            return 0;
        }
        if !timeout.is_zero() {
            let mut pfd = libc::pollfd {
                fd: self.stream.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd for the duration of the call.
            unsafe { libc::poll(&mut pfd, 1, ms) };
        }
        let before = self.log.len();
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.closed = true;
                    break;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.closed = true;
                    break;
                }
            }
        }
        while let Some(frame) = take_frame(&mut self.buf) {
            assert!(frame.len() <= 12_500, "oversize frame from the router");
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
            self.read_some(left.min(Duration::from_millis(50)));
        }
    }

    /// [`Cli::wait_for`] that panics with the log's tail (and the router
    /// threads' CPU times) when nothing comes.
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

    /// The reply to InvokeID `invoke` (events before it stay in the log).
    pub fn reply(&mut self, invoke: u32) -> Vec<u8> {
        let start = self.cursor;
        let i = self.expect(&format!("reply to invoke {invoke}"), |f| {
            is_reply(frame_type(f)) && be32(f, 8) == invoke
        });
        // Leave the cursor where it was: events before the reply are the
        // test's to read.
        self.cursor = start;
        self.log.remove(i)
    }

    /// Send OPEN_REQ; OPEN_CONF must be the first frame.
    pub fn open(&mut self, spec: &OpenSpec) -> OpenConf {
        let invoke = self.invoke();
        self.send(spec.request(invoke));
        let i = self.expect("OPEN_CONF", |_| true);
        let frame = self.log[i].clone();
        assert_eq!(
            frame_type(&frame),
            msg::OPEN_CONF,
            "the first frame after OPEN_REQ must be OPEN_CONF, got {}",
            describe(&frame)
        );
        let Message::OpenConf(conf) = decode(&frame) else {
            unreachable!()
        };
        assert_eq!(conf.invoke_id, invoke);
        conf
    }

    /// Send OPEN_REQ expecting FAILURE_CONF: returns its status.
    pub fn open_refused(&mut self, spec: &OpenSpec) -> u32 {
        let invoke = self.invoke();
        self.send(spec.request(invoke));
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

    pub fn monitor_stop(&mut self, monitor_id: u32) -> Result<(), u32> {
        let invoke = self.invoke();
        self.send(MonitorStopReq {
            invoke_id: invoke,
            monitor_id,
        });
        let f = self.reply(invoke);
        match decode(&f) {
            Message::MonitorStopConf(_) => Ok(()),
            Message::FailureConf(fc) => Err(fc.status),
            other => panic!("MONITOR_STOP_REQ answered with {other:?}"),
        }
    }

    pub fn change_mask(
        &mut self,
        monitor_id: u32,
        call_mask: u32,
        agent_mask: u32,
    ) -> Result<(), u32> {
        let invoke = self.invoke();
        self.send(ChangeMonitorMaskReq {
            invoke_id: invoke,
            monitor_id,
            call_msg_mask: call_mask,
            agent_state_mask: agent_mask,
        });
        let f = self.reply(invoke);
        match decode(&f) {
            Message::ChangeMonitorMaskConf(_) => Ok(()),
            Message::FailureConf(fc) => Err(fc.status),
            other => panic!("CHANGE_MONITOR_MASK_REQ answered with {other:?}"),
        }
    }

    pub fn session_monitor_start(&mut self, session_id: u32) -> Result<u32, u32> {
        let invoke = self.invoke();
        self.send(SessionMonitorStartReq {
            invoke_id: invoke,
            session_id,
        });
        let f = self.reply(invoke);
        match decode(&f) {
            Message::SessionMonitorStartConf(c) => Ok(c.monitor_id),
            Message::FailureConf(fc) => Err(fc.status),
            other => panic!("SESSION_MONITOR_START_REQ answered with {other:?}"),
        }
    }

    pub fn session_monitor_stop(&mut self, monitor_id: u32) -> Result<(), u32> {
        let invoke = self.invoke();
        self.send(SessionMonitorStopReq {
            invoke_id: invoke,
            monitor_id,
        });
        let f = self.reply(invoke);
        match decode(&f) {
            Message::SessionMonitorStopConf(_) => Ok(()),
            Message::FailureConf(fc) => Err(fc.status),
            other => panic!("SESSION_MONITOR_STOP_REQ answered with {other:?}"),
        }
    }

    /// HEARTBEAT_REQ → HEARTBEAT_CONF (the session is alive and served).
    pub fn heartbeat(&mut self) {
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
        self.expect_closed(WAIT);
    }

    /// The router must close the connection within `timeout`.
    pub fn expect_closed(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "port {}: connection still open", self.port);
            self.read_some(left.min(Duration::from_millis(50)));
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
        // Later copies of the same marker (other monitors) are skipped too.
        let events: Vec<Vec<u8>> = self.log[start..i]
            .iter()
            .filter(|f| is_test_event(f))
            .cloned()
            .collect();
        events
    }

    /// Everything received within `quiet` (no waiting beyond it).
    pub fn drain_for(&mut self, quiet: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + quiet;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.closed {
                break;
            }
            self.read_some(left);
        }
        let out = self.log[self.cursor..].to_vec();
        self.cursor = self.log.len();
        out
    }
}

/// Not a reply, not a SYSTEM_EVENT and not a sync marker.
pub fn is_test_event(f: &[u8]) -> bool {
    let t = frame_type(f);
    !is_reply(t) && t != msg::SYSTEM_EVENT && mark_of(f).is_none()
}

/// The EventReasonCode of a marker AGENT_STATE_EVENT.
pub fn mark_of(f: &[u8]) -> Option<u16> {
    if frame_type(f) != msg::AGENT_STATE_EVENT {
        return None;
    }
    let Message::AgentStateEvent(e) = decode(f) else {
        return None;
    };
    (e.event_reason_code >= MARK_BASE).then_some(e.event_reason_code)
}

/// CPU time (user+system, seconds) and state of this process's router
/// threads (`ingest-*`, `shard-*`): a stalled executor shows as sleeping
/// with little CPU, a spinning one as running with a lot.
pub fn thread_report() -> String {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return "(no /proc)".into();
    };
    let tick = 100.0; // USER_HZ
    for entry in dir.flatten() {
        let path = entry.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let comm = comm.trim();
        if !(comm.starts_with("ingest") || comm.starts_with("shard")) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // Fields after the ")" of the comm: state is 3rd, utime 14th, stime 15th.
        let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
        out.push(format!(
            "{comm}[{}] {} cpu {:.2}s",
            entry.file_name().to_string_lossy(),
            f.first().unwrap_or(&"?"),
            (num(11) + num(12)) / tick
        ));
    }
    out.sort();
    out.join(", ")
}

// ---------------------------------------------------------------------------
// Frame inspection
// ---------------------------------------------------------------------------

pub fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn frame_type(f: &[u8]) -> u32 {
    be32(f, 4)
}

/// Strict v24 decode of a whole frame.
pub fn decode(f: &[u8]) -> Message {
    match decode_frame(f, v24(), DecodeOptions::STRICT) {
        Ok((m, used)) => {
            assert_eq!(used, f.len(), "trailing bytes in a frame");
            m
        }
        Err(e) => panic!("frame type {} does not decode: {e:?}", frame_type(f)),
    }
}

/// Whether an event type starts with a MonitorID (docs/protocol.md §4.5, §4.6).
pub fn type_has_monitor_id(t: u32) -> bool {
    matches!(t, 9..=21 | 23..=25 | 30 | 34 | 86 | 105 | 106 | 116 | 117 | 248)
}

/// The MonitorID of an event frame (its first body field).
pub fn monitor_id(f: &[u8]) -> Option<u32> {
    type_has_monitor_id(frame_type(f)).then(|| be32(f, 8))
}

/// SessionID (body offset 8) of an AGENT_STATE_EVENT.
pub fn agent_session_id(f: &[u8]) -> Option<u32> {
    (frame_type(f) == msg::AGENT_STATE_EVENT).then(|| be32(f, 16))
}

/// FAILURE_CONF status.
pub fn failure_status(f: &[u8]) -> Option<u32> {
    (frame_type(f) == msg::FAILURE_CONF).then(|| be32(f, 12))
}

pub fn type_name(t: u32) -> String {
    Message::type_name(t)
        .map(str::to_string)
        .unwrap_or_else(|| format!("TYPE_{t}"))
}

/// A short description: type, MonitorID, call id, agent state.
pub fn describe(f: &[u8]) -> String {
    let t = frame_type(f);
    let mut s = type_name(t);
    if let Some(m) = monitor_id(f) {
        s.push_str(&format!(" mon={m}"));
    }
    if let Ok((m, _)) = decode_frame(f, v24(), DecodeOptions::COUNTS_UNCHECKED) {
        match &m {
            Message::AgentStateEvent(e) => s.push_str(&format!(
                " agent={} state={} reason={} session={}",
                e.agent_id
                    .as_ref()
                    .map(|x| x.to_str_lossy().into_owned())
                    .unwrap_or_default(),
                e.agent_state,
                e.event_reason_code,
                e.session_id
            )),
            Message::FailureConf(fc) => {
                s.push_str(&format!(" invoke={} status={}", fc.invoke_id, fc.status))
            }
            Message::ClientSessionOpenedEvent(e) => {
                s.push_str(&format!(" session={}", e.session_id))
            }
            Message::ClientSessionClosedEvent(e) => {
                s.push_str(&format!(" session={} status={}", e.session_id, e.status))
            }
            _ => {
                if let Some((id, _, dev)) = reference::primary_call(&m) {
                    s.push_str(&format!(" call={id}/{}", String::from_utf8_lossy(&dev)));
                }
            }
        }
    }
    s
}

/// (type, MonitorID) of each frame: the shape tests compare.
pub fn shapes(frames: &[Vec<u8>]) -> Vec<(String, u32)> {
    frames
        .iter()
        .map(|f| (type_name(frame_type(f)), monitor_id(f).unwrap_or(u32::MAX)))
        .collect()
}

/// Shape literal helper: (type name of `t`, MonitorID).
pub fn shape(t: u32, monitor: u32) -> (String, u32) {
    (type_name(t), monitor)
}

// ---------------------------------------------------------------------------
// Event builders for the fake PG (MonitorID 0, PeripheralID 5000)
// ---------------------------------------------------------------------------

/// A call as events name it: ConnectionCallID, DYNAMIC, ConnectionDeviceID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallRef {
    pub id: u32,
    pub dev: &'static str,
}

pub const fn call(id: u32, dev: &'static str) -> CallRef {
    CallRef { id, dev }
}

fn s(x: &str) -> Option<CtiString> {
    Some(CtiString::from(x))
}

fn so(x: Option<&str>) -> Option<CtiString> {
    x.map(CtiString::from)
}

pub fn agent_fields<'a>(
    id: Option<&'a str>,
    ext: Option<&'a str>,
    instr: Option<&'a str>,
) -> (Option<&'a str>, Option<&'a str>, Option<&'a str>) {
    (id, ext, instr)
}

pub fn delivered(
    c: CallRef,
    alerting: &str,
    calling: &str,
    called: &str,
    trunk: Option<(u32, u32)>,
) -> CallDeliveredEvent {
    CallDeliveredEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        line_handle: 0xFFFF,
        line_type: 0xFFFF,
        connection_device_id: s(c.dev),
        alerting_device_id: s(alerting),
        calling_device_id: s(calling),
        called_device_id: s(called),
        trunk_number: trunk.map(|t| t.0),
        trunk_group_number: trunk.map(|t| t.1),
        ..Default::default()
    }
}

pub fn established(c: CallRef, answering: &str, calling: &str) -> CallEstablishedEvent {
    CallEstablishedEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        connection_device_id: s(c.dev),
        answering_device_id: s(answering),
        calling_device_id: s(calling),
        called_device_id: s(answering),
        ..Default::default()
    }
}

/// CALL_HELD naming only the call (and the holding device when given).
pub fn held(c: CallRef, holding: Option<&str>) -> CallHeldEvent {
    CallHeldEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        connection_device_id: s(c.dev),
        holding_device_id: so(holding),
        ..Default::default()
    }
}

pub fn retrieved(c: CallRef, retrieving: Option<&str>) -> CallRetrievedEvent {
    CallRetrievedEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        connection_device_id: s(c.dev),
        retrieving_device_id: so(retrieving),
        ..Default::default()
    }
}

pub fn conn_cleared(c: CallRef, releasing: Option<&str>) -> CallConnectionClearedEvent {
    CallConnectionClearedEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        connection_device_id: s(c.dev),
        releasing_device_id: so(releasing),
        ..Default::default()
    }
}

pub fn cleared(c: CallRef) -> CallClearedEvent {
    CallClearedEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        connection_device_id: s(c.dev),
        ..Default::default()
    }
}

pub fn end_call(c: CallRef) -> EndCallEvent {
    EndCallEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        connection_device_id: s(c.dev),
        ..Default::default()
    }
}

/// CALL_DATA_UPDATE naming only the call (new call = the same call).
pub fn data_update(c: CallRef) -> CallDataUpdateEvent {
    CallDataUpdateEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        new_connection_device_id_type: connection_type::DYNAMIC,
        new_connection_call_id: c.id,
        connection_device_id: s(c.dev),
        new_connection_device_id: s(c.dev),
        ..Default::default()
    }
}

/// CALL_SERVICE_INITIATED of a consult call placed from `calling`.
pub fn service_initiated(c: CallRef, calling: &str) -> CallServiceInitiatedEvent {
    CallServiceInitiatedEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        connection_device_id: s(c.dev),
        calling_device_id: s(calling),
        ..Default::default()
    }
}

fn parties(primary: CallRef, devs: &[&str]) -> Vec<Party> {
    devs.iter()
        .map(|d| Party {
            call_id: Some(primary.id),
            device_id_type: Some(connection_type::DYNAMIC),
            device_id: s(d),
        })
        .collect()
}

pub fn conferenced(
    primary: CallRef,
    secondary: CallRef,
    controller: &str,
    added: &str,
    party_devs: &[&str],
) -> CallConferencedEvent {
    CallConferencedEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        primary_device_id_type: connection_type::DYNAMIC,
        primary_call_id: primary.id,
        secondary_device_id_type: connection_type::DYNAMIC,
        secondary_call_id: secondary.id,
        num_parties: party_devs.len() as u16,
        primary_device_id: s(primary.dev),
        secondary_device_id: s(secondary.dev),
        controller_device_id: s(controller),
        added_party_device_id: s(added),
        parties: parties(primary, party_devs),
        ..Default::default()
    }
}

pub fn transferred(
    primary: CallRef,
    secondary: CallRef,
    transferring: &str,
    transferred: &str,
    party_devs: &[&str],
) -> CallTransferredEvent {
    CallTransferredEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        primary_device_id_type: connection_type::DYNAMIC,
        primary_call_id: primary.id,
        secondary_device_id_type: connection_type::DYNAMIC,
        secondary_call_id: secondary.id,
        num_parties: party_devs.len() as u16,
        primary_device_id: s(primary.dev),
        secondary_device_id: s(secondary.dev),
        transferring_device_id: s(transferring),
        transferred_device_id: s(transferred),
        parties: parties(primary, party_devs),
        ..Default::default()
    }
}

/// AGENT_STATE_EVENT with these agent fields, state and reason code.
pub fn agent_state_ev(
    id: Option<&str>,
    ext: Option<&str>,
    instr: Option<&str>,
    state: u16,
    reason: u16,
) -> AgentStateEvent {
    AgentStateEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        skill_group_state: state,
        agent_state: state,
        event_reason_code: reason,
        agent_id: so(id),
        agent_extension: so(ext),
        agent_instrument: so(instr),
        ..Default::default()
    }
}

/// AGENT_STATE_EVENT of simulated-style agent `n` (1001 / 3001 style).
pub fn agent_ev(agent_id: &str, ext: &str, state: u16) -> AgentStateEvent {
    agent_state_ev(Some(agent_id), Some(ext), Some(ext), state, 0)
}

pub fn translation_route(dnis: &str) -> CallTranslationRouteEvent {
    CallTranslationRouteEvent {
        dnis: s(dnis),
        ani: s("5551234"),
        ..Default::default()
    }
}

/// OPENED/CLOSED events in a frame list, as (type, SessionID, Status or 0).
pub fn client_session_events(frames: &[Vec<u8>]) -> Vec<(u32, u32, u32)> {
    frames
        .iter()
        .filter_map(|f| match frame_type(f) {
            msg::CLIENT_SESSION_OPENED_EVENT | msg::CLIENT_SESSION_CLOSED_EVENT => {
                Some(match decode(f) {
                    Message::ClientSessionOpenedEvent(e) => {
                        (msg::CLIENT_SESSION_OPENED_EVENT, e.session_id, 0)
                    }
                    Message::ClientSessionClosedEvent(e) => {
                        (msg::CLIENT_SESSION_CLOSED_EVENT, e.session_id, e.status)
                    }
                    _ => unreachable!(),
                })
            }
            _ => None,
        })
        .collect()
}
