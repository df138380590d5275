//! The `ctirouter` binary as a child process: [`RouterProcess`] (`serve` on
//! 127.0.0.1 port 0, two shards, no spinning, no pinning; started, waited
//! for, signalled, killed and reaped on drop) and [`Proc`] (any subcommand,
//! its stdout lines and stderr collected; killed and reaped on drop).
//!
//! Cargo tells only the main crate's integration tests where the binary is
//! (`CARGO_BIN_EXE_ctirouter`), so every helper here takes its path (`bin`).
//! Set `CTIROUTER_TEST_STDERR=1` to see the children's logs.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use ctirouter::proto::constants::{msg, service};
use ctirouter::proto::msg::{OpenConf, SystemEvent};
use ctirouter::proto::{Message, Version};

use crate::client::{open_req, Client, OpenSpec};
use crate::frames::{decode_strict, describe, frame_type};
use crate::{NO_IDLE, PROBE_CLIENT, STARTUP, WAIT};

static NEXT_TEMP: AtomicU32 = AtomicU32::new(0);

/// A fresh path in the temp dir for `what` (a suffix such as `.toml`).
fn temp_path(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "ctirouter-test-{}-{}{what}",
        std::process::id(),
        NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A fresh path in the temp dir, removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(suffix: &str) -> TempFile {
        TempFile(temp_path(suffix))
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

/// `ctirouter serve` as the tests run it: loopback, an OS-assigned port, two
/// shards, no spinning (executors share the test machine's cores), no
/// pinning, the admin listener on an OS-assigned port too (printed as
/// `admin ADDR` after the `listening` line), so routers run side by side.
pub const SERVE: &[&str] = &[
    "serve",
    "--listen",
    "127.0.0.1:0",
    "--shards",
    "2",
    "--spin-us",
    "0",
    "--no-pin",
    "--admin",
    "127.0.0.1:0",
];

/// `ctirouter serve` on 127.0.0.1 with an OS-assigned port, two shards, no
/// spinning and no pinning. Killed (and reaped) on drop.
pub struct RouterProcess {
    child: Child,
    addr: SocketAddr,
    exited: Option<ExitStatus>,
    config: Option<PathBuf>,
    /// Where its log goes when captured ([`StartOptions::capture_log`]).
    log: Option<PathBuf>,
}

/// How to start the router beyond its command-line arguments.
#[derive(Debug, Default, Clone, Copy)]
pub struct StartOptions<'a> {
    /// A TOML config file's contents (written to a temp file removed on drop).
    pub config: Option<&'a str>,
    /// RLIMIT_NOFILE for the router, soft and hard alike (the router lifts
    /// its soft limit to the hard one, so both must be set), applied in the
    /// child before exec.
    pub nofile: Option<u64>,
    /// Keep the router's log (stderr) in a temp file for [`RouterProcess::log`]
    /// (a file, not a pipe: a full pipe would block the router).
    pub capture_log: bool,
}

impl RouterProcess {
    /// Start with extra `serve` arguments (e.g. `["--sim-seed", "7"]`) and
    /// wait until it serves the PG status (see [`RouterProcess::wait_pg_online`]).
    pub fn start(bin: &str, extra: &[&str]) -> RouterProcess {
        let router = Self::spawn(bin, None, extra);
        router.wait_pg_online(PROBE_CLIENT);
        router
    }

    /// Start and return as soon as the `listening` line is out (no readiness wait).
    pub fn start_unprobed(bin: &str, extra: &[&str]) -> RouterProcess {
        Self::spawn(bin, None, extra)
    }

    /// Wait until sessions are told the simulated PG is up.
    ///
    /// Works around a startup race (reported as a router bug and tested by
    /// `sessions_opened_right_after_listening_are_told_the_pg_is_up`): a
    /// session opened before its shard has the PG status gets PGStatus
    /// CTI_SERVER_OFFLINE and no peripheral SYSTEM_EVENT. Probes with All
    /// Events sessions (masks 0) until 8 in a row (both shards, in all
    /// likelihood) see PGStatus 0 and a peripheral, at most 5 s.
    pub fn wait_pg_online(&self, (client_id, password): (&str, &[u8])) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut nr_ok = 0;
        while nr_ok < 8 {
            assert!(
                Instant::now() < deadline,
                "the router never reported the simulated PG online"
            );
            let mut c = self.client();
            let req = open_req(
                1,
                24,
                service::ALL_EVENTS,
                0,
                0,
                NO_IDLE,
                client_id,
                password,
            );
            c.send_at(req, Version::MAX);
            let (t, frame) = c.expect_frame(WAIT);
            assert_eq!(t, msg::OPEN_CONF, "readiness probe: {}", describe(&frame));
            let Message::OpenConf(conf) = decode_strict(&frame, Version::MAX) else {
                unreachable!()
            };
            if conf.pg_status == 0 && conf.num_peripherals.unwrap_or(0) > 0 {
                nr_ok += 1;
            } else {
                nr_ok = 0;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Start with a TOML config file holding `toml` (written to a temp file
    /// that is removed on drop) and extra arguments.
    pub fn start_with_config(bin: &str, toml: &str, extra: &[&str]) -> RouterProcess {
        Self::start_with(
            bin,
            StartOptions {
                config: Some(toml),
                ..Default::default()
            },
            extra,
        )
    }

    /// Start with [`StartOptions`] and extra arguments; no readiness wait.
    pub fn start_with(bin: &str, options: StartOptions<'_>, extra: &[&str]) -> RouterProcess {
        let config = options.config.map(|toml| {
            let path = temp_path(".toml");
            std::fs::write(&path, toml).expect("write the temp config file");
            path
        });
        let log = options.capture_log.then(|| temp_path(".log"));
        Self::spawn_with(bin, config, extra, options.nofile, log)
    }

    /// The router's log so far ([`StartOptions::capture_log`]; empty otherwise).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default()
    }

    /// [`RouterProcess::start_with_config`], then the readiness wait with a
    /// client the config lists.
    pub fn start_with_config_probed(
        bin: &str,
        toml: &str,
        extra: &[&str],
        probe: (&str, &[u8]),
    ) -> RouterProcess {
        let router = Self::start_with_config(bin, toml, extra);
        router.wait_pg_online(probe);
        router
    }

    fn spawn(bin: &str, config: Option<PathBuf>, extra: &[&str]) -> RouterProcess {
        Self::spawn_with(bin, config, extra, None, None)
    }

    fn spawn_with(
        bin: &str,
        config: Option<PathBuf>,
        extra: &[&str],
        nofile: Option<u64>,
        log: Option<PathBuf>,
    ) -> RouterProcess {
        let mut cmd = Command::new(bin);
        cmd.args(SERVE);
        if let Some(path) = &config {
            cmd.arg("--config").arg(path);
        }
        cmd.args(extra);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        // Logs: dropped unless asked for (a full pipe would block the router).
        if let Some(path) = &log {
            let file = std::fs::File::create(path).expect("create the temp log file");
            cmd.stderr(Stdio::from(file));
        } else if std::env::var_os("CTIROUTER_TEST_STDERR").is_some() {
            cmd.stderr(Stdio::inherit());
        } else {
            cmd.stderr(Stdio::null());
        }
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit {
                rlim_cur: n as libc::rlim_t,
                rlim_max: n as libc::rlim_t,
            };
            // SAFETY: only setrlimit (async-signal-safe) runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn the ctirouter binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut router = RouterProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            exited: None,
            config,
            log,
        };
        // From here on a panic drops `router`, which kills the child.
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            // Keeps draining stdout for the life of the process.
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let _ = tx.send(line.trim_end().to_string());
                    }
                }
            }
        });
        let deadline = Instant::now() + STARTUP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("listening ") {
                        router.addr = addr
                            .trim()
                            .parse()
                            .unwrap_or_else(|e| panic!("bad listening line {line:?}: {e}"));
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("router printed no `listening` line within {STARTUP:?}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = router.child.wait().ok();
                    router.exited = status;
                    panic!("router exited before listening: {status:?} (set CTIROUTER_TEST_STDERR=1 for its log)")
                }
            }
        }
        assert!(
            router.addr.ip().is_loopback(),
            "router listens on {}",
            router.addr
        );
        assert_ne!(router.addr.port(), 0);
        router
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of /proc/PID/status in kB (`VmRSS`, `VmHWM`, …).
    pub fn status_kb(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        text.lines()
            .find_map(|line| {
                let rest = line.strip_prefix(field)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse().ok()
            })
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
    }

    /// Send a signal (e.g. `libc::SIGTERM`).
    pub fn signal(&self, signal: i32) {
        if self.exited.is_some() {
            return;
        }
        // SAFETY: plain kill(2) on our own child's pid; it is not reaped yet.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.child.id());
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        if self.exited.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.exited = Some(status);
                false
            }
            Ok(None) => true,
            Err(e) => panic!("try_wait: {e}"),
        }
    }

    /// Wait for the process to exit; panics (and the drop kills it) after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.is_running() {
                return self.exited.expect("exit status");
            }
            if Instant::now() >= deadline {
                panic!("router still running {timeout:?} after being asked to stop");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Connect a raw client.
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        if self.is_running_quiet() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for path in [self.config.take(), self.log.take()].into_iter().flatten() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl RouterProcess {
    fn is_running_quiet(&mut self) -> bool {
        self.exited.is_none() && matches!(self.child.try_wait(), Ok(None))
    }
}

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
    pub fn spawn(bin: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
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
    pub fn spawn_listening(bin: &str, args: &[&str]) -> Proc {
        let mut p = Proc::spawn(bin, args);
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
pub fn sim_pg(bin: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["sim-pg", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Proc::spawn_listening(bin, &args)
}

/// `ctirouter serve` as the router tests run it (2 shards, no pinning, no
/// spinning), with a config file holding `toml` and extra arguments.
pub fn router(bin: &str, toml: &str, extra: &[&str]) -> Proc {
    let config = TempFile::new(".toml");
    std::fs::write(&config.0, toml).expect("write the config file");
    let mut args = SERVE.to_vec();
    args.extend_from_slice(&["--config", config.path()]);
    args.extend_from_slice(extra);
    let mut p = Proc::spawn_listening(bin, &args);
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
        let conf = client.open(&OpenSpec::new(version, service::ALL_EVENTS));
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
