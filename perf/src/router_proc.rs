//! The server under test as a child process — the router (`ctirouter serve
//! --listen 127.0.0.1:0 --upstream 127.0.0.1:PORT ...`) or the limit probe
//! (`ctirouter-perf limit-probe --upstream 127.0.0.1:PORT`): its `listening
//! ADDR` line (and `listening-tls ADDR` when the router serves TLS), the
//! router config a scenario needs, its log in the out dir, and SIGTERM (then
//! SIGKILL) when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::scenario::{RouterFlags, Scenario};
use crate::tls::Pki;

/// How long the server may take to print `listening ADDR`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    /// The router's TLS port (`listening-tls ADDR`), when it serves one.
    pub tls_addr: Option<SocketAddr>,
    pub args: Vec<String>,
}

impl ServerProcess {
    /// The router, with the driver at `upstream`.
    pub fn router(
        bin: &Path,
        upstream: SocketAddr,
        flags: &RouterFlags,
        log: &Path,
    ) -> Result<ServerProcess, String> {
        // The harness may be pinned (--harness-cores); the router places its
        // executors itself, so it starts free to use every core.
        spawn(bin, serve_args(upstream, flags), &[], log, flags.tls).map_err(|e| {
            if bin.exists() {
                e
            } else {
                format!("{e} (build it with `cargo build --release`)")
            }
        })
    }

    /// The limit probe (this harness's own binary), pinned to `cores`.
    pub fn probe(
        upstream: SocketAddr,
        cores: &[usize],
        log: &Path,
    ) -> Result<ServerProcess, String> {
        let bin = std::env::current_exe().map_err(|e| format!("the harness binary: {e}"))?;
        let args = vec![
            "limit-probe".into(),
            "--upstream".into(),
            upstream.to_string(),
        ];
        spawn(&bin, args, cores, log, false)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Still running?
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Start `bin args` pinned to `cores` (every core when empty), stderr to
/// `log`, and wait for its `listening ADDR` line on stdout (and, with
/// `tls`, its `listening-tls ADDR` line).
pub fn spawn(
    bin: &Path,
    args: Vec<String>,
    cores: &[usize],
    log: &Path,
    tls: bool,
) -> Result<ServerProcess, String> {
    let set = cpu_set(cores)?;
    let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut command = Command::new(bin);
    // SAFETY: the closure only makes an async-signal-safe syscall on a copy
    // of a set built before the fork.
    unsafe {
        command.pre_exec(move || {
            // The kernel keeps the cores that exist; failing leaves the mask.
            libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
            Ok(())
        });
    }
    let mut child = command
        // Relative paths in a scenario's router args are the workspace's.
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(&args)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening ") {
                let _ = tx.send((false, addr.trim().to_string()));
            } else if let Some(addr) = line.strip_prefix("listening-tls ") {
                let _ = tx.send((true, addr.trim().to_string()));
            }
        }
    });
    let mut server = ServerProcess {
        child,
        addr: ([127, 0, 0, 1], 0).into(),
        tls_addr: None,
        args,
    };
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    let mut clear = None;
    while clear.is_none() || (tls && server.tls_addr.is_none()) {
        let wait = deadline.saturating_duration_since(std::time::Instant::now());
        let (is_tls, line) = rx.recv_timeout(wait).map_err(|_| {
            format!(
                "{} printed no `{}` line; see {}",
                bin.display(),
                match clear {
                    None => "listening ADDR",
                    Some(()) => "listening-tls ADDR",
                },
                log.display()
            )
        })?;
        let addr: SocketAddr = line.parse().map_err(|e| format!("listening {line}: {e}"))?;
        if is_tls {
            server.tls_addr = Some(addr);
        } else {
            server.addr = addr;
            clear = Some(());
        }
    }
    Ok(server)
}

/// `cores` as an affinity mask; every core when empty.
fn cpu_set(cores: &[usize]) -> Result<libc::cpu_set_t, String> {
    let size = libc::CPU_SETSIZE as usize;
    if let Some(core) = cores.iter().find(|&&c| c >= size) {
        return Err(format!("no core {core}"));
    }
    // SAFETY: a zeroed cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for core in (0..size).filter(|c| cores.is_empty() || cores.contains(c)) {
        // SAFETY: `core` is below CPU_SETSIZE.
        unsafe { libc::CPU_SET(core, &mut set) };
    }
    Ok(set)
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid; it is not reaped yet, so the
        // pid cannot have been reused.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        for _ in 0..50 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `serve` arguments: loopback only, the driver as upstream, the flags.
pub fn serve_args(upstream: SocketAddr, flags: &RouterFlags) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--upstream".into(),
        upstream.to_string(),
        "--shards".into(),
        flags.shards.to_string(),
        "--spin-us".into(),
        flags.spin_us.to_string(),
        // Beside other routers on the machine: any free port.
        "--admin".into(),
        "127.0.0.1:0".into(),
    ];
    if let Some(bound) = flags.output_bound {
        args.push("--output-bound".into());
        args.push(bound.to_string());
    }
    args.extend(flags.args.iter().cloned());
    args
}

/// The router config a scenario needs (`--config`), if any: `[limits]
/// max_sessions` when the scenario sets it (`[router] max_sessions`), the
/// client list when it has desktops, and the `[tls]` port with `tls`'s
/// certificate (`run --tls`).
pub fn router_config(scenario: &Scenario, tls: Option<&Pki>) -> Option<String> {
    let mut text = String::new();
    if let Some(pki) = tls {
        text += &pki.router_section();
        text += "\n";
    }
    if let Some(n) = scenario.router.max_sessions {
        text += &format!("[limits]\nmax_sessions = {n}\n\n");
    }
    if scenario.has_requests() {
        text += &desktop_config();
    }
    (!text.is_empty()).then(|| {
        format!(
            "# Written by ctirouter-perf for scenario {:?} (perf/README.md).\n{text}",
            scenario.name
        )
    })
}

/// The client list of a scenario with desktops: with a real upstream,
/// Client Control and Call Data Update go only to ClientIDs listed with
/// them (docs/requests.md §3), and once a list exists every ClientID must
/// be on it. So: the harness's other sessions as `ctirouter-perf` (every
/// event service), the desktops as `ctirouter-perf-desktop`.
pub fn desktop_config() -> String {
    format!(
        "[[clients]]\n\
         client_id = \"{}\"\n\
         \n\
         [[clients]]\n\
         client_id = \"{}\"\n\
         services = [\"client-events\", \"client-control\", \"call-data-update\"]\n",
        crate::cti_client::CLIENT_ID,
        crate::cti_client::DESKTOP_CLIENT_ID
    )
}

/// `flags` plus `--config PATH`; an error if the scenario passes its own.
pub fn with_config(flags: &RouterFlags, path: &Path) -> Result<RouterFlags, String> {
    if flags
        .args
        .iter()
        .any(|a| a == "--config" || a.starts_with("--config="))
    {
        return Err(
            "this scenario's router config is written by the harness (desktops, max_sessions): drop --config from [router] args".into(),
        );
    }
    let mut flags = flags.clone();
    flags.args.push("--config".into());
    flags.args.push(path.display().to_string());
    Ok(flags)
}

/// `target/release/ctirouter` of the workspace this harness was built in.
pub fn default_router_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("release")
        .join("ctirouter")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_args_bind_loopback_and_name_the_driver() {
        let flags = RouterFlags {
            output_bound: Some(1024),
            ..Default::default()
        };
        let args = serve_args("127.0.0.1:9".parse().unwrap(), &flags);
        let line = args.join(" ");
        assert!(line.starts_with("serve --listen 127.0.0.1:0 --upstream 127.0.0.1:9"));
        assert!(line.contains("--shards 1 --spin-us 0 --admin 127.0.0.1:0 --output-bound 1024"));
    }

    #[test]
    fn desktop_config_lists_both_client_ids_and_control_for_desktops_only() {
        use ctirouter::config::Config;
        use ctirouter::proto::constants::service;
        let config = Config::parse(&desktop_config()).unwrap();
        let desk = config.client(b"ctirouter-perf-desktop").unwrap();
        let desk = desk.allowed_services().bits();
        assert_eq!(
            desk & (service::CLIENT_CONTROL | service::CALL_DATA_UPDATE | service::CLIENT_EVENTS),
            0x07
        );
        let others = config.client(b"ctirouter-perf").unwrap();
        assert!(
            others.services.is_none(),
            "every event service, no request service"
        );
        let flags = with_config(&RouterFlags::default(), Path::new("/tmp/x.toml")).unwrap();
        assert_eq!(flags.args, ["--config", "/tmp/x.toml"]);
        let taken = RouterFlags {
            args: vec!["--config".into(), "mine.toml".into()],
            ..Default::default()
        };
        assert!(with_config(&taken, Path::new("/tmp/x.toml")).is_err());
    }

    #[test]
    fn max_sessions_goes_into_the_router_config() {
        use ctirouter::config::Config;
        let scenario = |router: &str, requests: bool| -> Scenario {
            let text = format!(
                "name = \"s\"\nload = {{ agents = 2 }}\n{router}\n\
                 [[groups]]\nname = \"g\"\nservice = \"client-events\"\ncount = 2\nrequests = {requests}\n\
                 [[phases]]\nname = \"p\"\nrate = 0\nduration_secs = 1\n"
            );
            toml::from_str(&text).unwrap()
        };
        assert_eq!(router_config(&scenario("", false), None), None);
        let text = router_config(&scenario("[router]\nmax_sessions = 12500", false), None).unwrap();
        let config = Config::parse(&text).unwrap();
        assert_eq!(config.limits.max_sessions, 12_500);
        assert!(config.clients.is_empty());
        let text = router_config(&scenario("[router]\nmax_sessions = 12500", true), None).unwrap();
        let config = Config::parse(&text).unwrap();
        assert_eq!(config.limits.max_sessions, 12_500);
        assert_eq!(config.clients.len(), 2);
        let config = Config::parse(&router_config(&scenario("", true), None).unwrap()).unwrap();
        assert_eq!(config.limits.max_sessions, 10_000);
    }
}
