//! Test support for the upstream and tools tests (`tests/upstream_*.rs`,
//! `tests/tools_*.rs`), beside the router support in `tests/support/`:
//!
//! * [`Proc`] — any `ctirouter` subcommand as a child process, its stdout
//!   lines and stderr collected, killed (and reaped) on drop;
//! * [`sim_pg`] / [`router`] — `sim-pg` and `serve` on loopback port 0,
//!   started and waited for (`listening ADDR`);
//! * [`FakeUpstream`] — a scripted CTI Server on a std `TcpListener` thread
//!   that records every OPEN_REQ it gets;
//! * helpers that open a downstream All Events session once the router's
//!   upstream is up and classify what a session receives.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ctirouter::proto::constants::{msg, service};
use ctirouter::proto::msg::{HeartbeatConf, OpenConf, OpenReq, SystemEvent};
use ctirouter::proto::{DecodeOptions, Message, MessageBody, Version};

use crate::support::{decode_strict, Client, Recv, ALL_AGENT_STATES, ALL_CALLS, BIN, NO_IDLE};

/// Longest wait for a `listening` line.
pub const STARTUP: Duration = Duration::from_secs(10);

static NEXT_TEMP: AtomicU32 = AtomicU32::new(0);

/// A fresh path in the temp dir (removed by [`TempFile`]'s drop).
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(suffix: &str) -> TempFile {
        TempFile(std::env::temp_dir().join(format!(
            "ctirouter-upstream-test-{}-{}{suffix}",
            std::process::id(),
            NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
        )))
    }

    pub fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/// A `ctirouter` child process. Killed and reaped on drop.
pub struct Proc {
    child: Child,
    exited: Option<ExitStatus>,
    /// Every stdout line, in order.
    stdout: mpsc::Receiver<String>,
    /// Every stderr line so far (colours stripped).
    stderr: Arc<Mutex<Vec<String>>>,
    /// Set when stderr reached its end (the process and its pipe are gone).
    stderr_done: Arc<AtomicBool>,
    /// The address from the `listening ADDR` line, once seen.
    pub addr: Option<SocketAddr>,
    /// A config file to remove on drop.
    _config: Option<TempFile>,
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Proc {
    /// Start `ctirouter ARGS`; stdout and stderr are read by threads.
    pub fn spawn(args: &[&str]) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                match line {
                    Ok(line) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let stderr_done = Arc::new(AtomicBool::new(false));
        let done = stderr_done.clone();
        let echo = std::env::var_os("CTIROUTER_TEST_STDERR").is_some();
        let name = args.first().copied().unwrap_or("").to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let line = strip_ansi(&line);
                if echo {
                    eprintln!("[{name}] {line}");
                }
                sink.lock().unwrap().push(line);
            }
            done.store(true, Ordering::SeqCst);
        });
        Proc {
            child,
            exited: None,
            stdout: rx,
            stderr,
            stderr_done,
            addr: None,
            _config: None,
        }
    }

    /// Start and wait for its `listening ADDR` line.
    pub fn spawn_listening(args: &[&str]) -> Proc {
        let mut p = Proc::spawn(args);
        let deadline = Instant::now() + STARTUP;
        loop {
            match p.next_line(deadline.saturating_duration_since(Instant::now())) {
                Some(line) => {
                    if let Some(addr) = line.strip_prefix("listening ") {
                        p.addr = Some(addr.trim().parse().expect("listening address"));
                        return p;
                    }
                }
                None => panic!(
                    "`ctirouter {}` printed no listening line within {STARTUP:?}; stderr:\n{}",
                    args.join(" "),
                    p.stderr_text()
                ),
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("a listening process")
    }

    /// The next stdout line, `None` on timeout or end of output.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        self.stdout.recv_timeout(timeout).ok()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Wait until stderr has a line containing `needle`.
    pub fn wait_stderr(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(needle))
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    pub fn signal(&self, signal: i32) {
        if self.exited.is_some() {
            return;
        }
        // SAFETY: kill(2) on our own child, not yet reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.child.id());
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }

    /// Wait for exit; panics after `timeout` (the drop then kills it).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited {
                return status;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
                // Its last words may still be in the pipe: read them first.
                let drained = Instant::now() + Duration::from_secs(2);
                while !self.stderr_done.load(Ordering::SeqCst) && Instant::now() < drained {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process still running after {timeout:?}; stderr:\n{}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `ctirouter sim-pg` on a loopback port with extra arguments.
pub fn sim_pg(extra: &[&str]) -> Proc {
    let mut args = vec!["sim-pg", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Proc::spawn_listening(&args)
}

/// `ctirouter serve` as the router tests run it (2 shards, no pinning, no
/// spinning), with a config file holding `toml` and extra arguments.
pub fn router(toml: &str, extra: &[&str]) -> Proc {
    let config = TempFile::new(".toml");
    std::fs::write(&config.0, toml).expect("write the config file");
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--shards",
        "2",
        "--spin-us",
        "0",
        "--no-pin",
        "--config",
        config.path(),
    ];
    args.extend_from_slice(extra);
    let mut p = Proc::spawn_listening(&args);
    p._config = Some(config);
    p
}

/// An `[upstream]` section with fast heartbeats and reconnects for tests.
pub fn upstream_toml(sides: &[SocketAddr], heartbeat_ms: u64) -> String {
    let sides: Vec<String> = sides.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[upstream]\nsides = [{}]\nheartbeat_ms = {heartbeat_ms}\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n",
        sides.join(", ")
    )
}

// ---------------------------------------------------------------------------
// Downstream sessions
// ---------------------------------------------------------------------------

/// Open an All Events session on the router once its upstream is up
/// (OPEN_CONF PGStatus without PGS_CTI_SERVER_OFFLINE); retried for up to
/// `timeout`. Returns the client and the OPEN_CONF; the peripheral
/// SYSTEM_EVENTs after it are left to the caller.
pub fn open_when_upstream_up(
    addr: SocketAddr,
    version: Version,
    timeout: Duration,
) -> (Client, OpenConf) {
    let deadline = Instant::now() + timeout;
    loop {
        let mut client = Client::connect(addr);
        let conf = client.open(
            version,
            service::ALL_EVENTS,
            ALL_CALLS,
            ALL_AGENT_STATES,
            NO_IDLE,
            "test",
            b"",
        );
        if conf.pg_status & 0x08 == 0 {
            return (client, conf);
        }
        assert!(
            Instant::now() < deadline,
            "the router's upstream did not come up within {timeout:?}"
        );
        drop(client);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A SYSTEM_EVENT's id, if the frame is one.
pub fn system_event_id(frame: &[u8], version: Version) -> Option<(u32, SystemEvent)> {
    if frame_type(frame) != msg::SYSTEM_EVENT {
        return None;
    }
    match decode_strict(frame, version) {
        Message::SystemEvent(e) => Some((e.system_event_id, e)),
        _ => None,
    }
}

pub fn frame_type(frame: &[u8]) -> u32 {
    u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]])
}

/// Every frame until `timeout` (the connection must stay open).
pub fn collect_for(client: &mut Client, timeout: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut frames = Vec::new();
    loop {
        match client.next(deadline.saturating_duration_since(Instant::now())) {
            Recv::Frame(_, frame) => frames.push(frame),
            Recv::Timeout => return frames,
            Recv::Closed(kind) => panic!("session closed ({kind:?}) after {} frames", frames.len()),
        }
    }
}

// ---------------------------------------------------------------------------
// A scripted fake CTI Server
// ---------------------------------------------------------------------------

/// One accepted connection of the fake, as its script sees it.
pub struct FakeConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// The OPEN_REQ of this connection (read by [`FakeConn::expect_open`]).
    pub open: Option<OpenReq>,
    opens: Arc<Mutex<Vec<(Instant, OpenReq)>>>,
    /// The fake is being dropped: scripts stop waiting.
    stop: Arc<AtomicBool>,
}

impl FakeConn {
    /// The next whole frame, `None` on timeout or EOF.
    pub fn read_frame(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if self.buf.len() >= 8 {
                let len =
                    8 + u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])
                        as usize;
                if self.buf.len() >= len {
                    return Some(self.buf.drain(..len).collect());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stop.load(Ordering::Relaxed) {
                return None;
            }
            self.stream
                .set_read_timeout(Some(left.min(Duration::from_millis(50))))
                .ok()?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(_) => return None,
            }
        }
    }

    /// Read the OPEN_REQ (decoded at its own version).
    pub fn expect_open(&mut self) -> OpenReq {
        let frame = self
            .read_frame(Duration::from_secs(5))
            .expect("an OPEN_REQ");
        assert_eq!(frame_type(&frame), msg::OPEN_REQ, "first frame is OPEN_REQ");
        let body = &frame[8..];
        let version = Version::new(OpenReq::peek_version(body).unwrap()).expect("a valid version");
        let req =
            OpenReq::decode_body(body, version, DecodeOptions::STRICT).expect("OPEN_REQ decodes");
        self.open = Some(req.clone());
        self.opens
            .lock()
            .unwrap()
            .push((Instant::now(), req.clone()));
        req
    }

    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// OPEN_CONF (All Events, healthy, peripheral 5000) then the peripheral SYSTEM_EVENT.
    pub fn accept_open(&mut self, version: Version) {
        let invoke_id = self.open.as_ref().map_or(1, |r| r.invoke_id);
        let conf = Message::from(OpenConf {
            invoke_id,
            services_granted: service::ALL_EVENTS,
            peripheral_online: 1,
            peripheral_type: 17,
            num_peripherals: Some(1),
            peripherals: vec![ctirouter::proto::group::PeripheralEntry {
                peripheral_id: Some(5000),
                multiline_agent_control: Some(0),
            }],
            session_type: 1,
            ..Default::default()
        });
        self.send(&conf.to_frame(version).unwrap());
        let online = Message::from(SystemEvent {
            system_event_id: 3,
            system_event_arg1: 5000,
            event_device_type: 0xFFFF,
            ..Default::default()
        });
        self.send(&online.to_frame(version).unwrap());
    }

    /// Answer heartbeats (and CLOSE_REQ) until EOF or `timeout`; returns the
    /// number of HEARTBEAT_REQs answered.
    pub fn serve_heartbeats(&mut self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut answered = 0;
        while let Some(frame) = self.read_frame(deadline.saturating_duration_since(Instant::now()))
        {
            let invoke_id = u32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
            match frame_type(&frame) {
                msg::HEARTBEAT_REQ => {
                    self.send(
                        &Message::from(HeartbeatConf { invoke_id })
                            .to_frame(Version::MAX)
                            .unwrap(),
                    );
                    answered += 1;
                }
                msg::CLOSE_REQ => {
                    let conf = Message::from(ctirouter::proto::msg::CloseConf { invoke_id });
                    self.send(&conf.to_frame(Version::MAX).unwrap());
                    return answered;
                }
                _ => {}
            }
        }
        answered
    }
}

/// A fake CTI Server: each accepted connection is handed to the script with
/// its index (0, 1, 2, ...); the connection closes when the script returns.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// The OPEN_REQs seen, with when each arrived.
    pub opens: Arc<Mutex<Vec<(Instant, OpenReq)>>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeUpstream {
    pub fn start(mut script: impl FnMut(usize, &mut FakeConn) + Send + 'static) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake upstream");
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let opens = Arc::new(Mutex::new(Vec::new()));
        let (stop2, opens2) = (stop.clone(), opens.clone());
        let thread = std::thread::spawn(move || {
            let mut index = 0;
            while !stop2.load(Ordering::Relaxed) {
                let stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(_) => return,
                };
                stream.set_nonblocking(false).unwrap();
                let _ = stream.set_nodelay(true);
                let mut conn = FakeConn {
                    stream,
                    buf: Vec::new(),
                    open: None,
                    opens: opens2.clone(),
                    stop: stop2.clone(),
                };
                script(index, &mut conn);
                index += 1;
            }
        });
        FakeUpstream {
            addr,
            stop,
            opens,
            thread: Some(thread),
        }
    }

    /// OPEN_REQs the script has read so far.
    pub fn nr_opens(&self) -> usize {
        self.opens.lock().unwrap().len()
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
