//! The router binary as a child process: start, wait for `listening`,
//! signal, wait for exit, kill on drop. No protocol here beyond the readiness probe.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ctirouter::proto::constants::{msg, service};
use ctirouter::proto::{Message, Version};

use super::*;

static NEXT_TEMP: AtomicU32 = AtomicU32::new(0);

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

fn temp_path(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "ctirouter-test-{}-{}.{what}",
        std::process::id(),
        NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
    ))
}

impl RouterProcess {
    /// Start with extra `serve` arguments (e.g. `["--sim-seed", "7"]`) and
    /// wait until it serves the PG status (see [`RouterProcess::wait_pg_online`]).
    pub fn start(extra: &[&str]) -> RouterProcess {
        let router = Self::spawn(None, extra);
        router.wait_pg_online(PROBE_CLIENT);
        router
    }

    /// Start and return as soon as the `listening` line is out (no readiness wait).
    pub fn start_unprobed(extra: &[&str]) -> RouterProcess {
        Self::spawn(None, extra)
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
            c.send(req, Version::MAX);
            let (t, frame) = c.expect_frame(REPLY_TIMEOUT);
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
    pub fn start_with_config(toml: &str, extra: &[&str]) -> RouterProcess {
        Self::start_with(
            StartOptions {
                config: Some(toml),
                ..Default::default()
            },
            extra,
        )
    }

    /// Start with [`StartOptions`] and extra arguments; no readiness wait.
    pub fn start_with(options: StartOptions<'_>, extra: &[&str]) -> RouterProcess {
        let config = options.config.map(|toml| {
            let path = temp_path("toml");
            std::fs::write(&path, toml).expect("write the temp config file");
            path
        });
        let log = options.capture_log.then(|| temp_path("log"));
        Self::spawn_with(config, extra, options.nofile, log)
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
        toml: &str,
        extra: &[&str],
        probe: (&str, &[u8]),
    ) -> RouterProcess {
        let router = Self::start_with_config(toml, extra);
        router.wait_pg_online(probe);
        router
    }

    fn spawn(config: Option<PathBuf>, extra: &[&str]) -> RouterProcess {
        Self::spawn_with(config, extra, None, None)
    }

    fn spawn_with(
        config: Option<PathBuf>,
        extra: &[&str],
        nofile: Option<u64>,
        log: Option<PathBuf>,
    ) -> RouterProcess {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--shards",
            "2",
            "--spin-us",
            "0",
            "--no-pin",
        ]);
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
        let deadline = Instant::now() + STARTUP_TIMEOUT;
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
                    panic!("router printed no `listening` line within {STARTUP_TIMEOUT:?}")
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
