//! The shipped tuning files and the host tuning script, black-box: every
//! `tuning/*.toml` loads and applies on a synthetic 16-core machine and is
//! refused on one that lacks its cores; `tuning/host-tune.sh` in its default
//! dry-run mode plans and changes nothing; `ctirouter serve` refuses runtime
//! settings it cannot run, with or without a tuning file.

use crate::BIN;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ctirouter::config::Config;
use ctirouter::router::placements;
use ctirouter::tuning::{Tuning, TuningError};

fn tuning_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning")
}

fn shipped_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(tuning_dir())
        .expect("tuning/ exists")
        .map(|entry| entry.expect("readable tuning/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_tuning_file_applies_on_a_16_core_machine() {
    let files = shipped_files();
    assert!(files.len() >= 3, "tuning files: {files:?}");
    for path in files {
        let tuning = Tuning::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut config = Config::default();
        tuning
            .apply(&mut config, 16)
            .unwrap_or_else(|e| panic!("{e}"));
        let places = placements(&config, 16);
        let shards: Vec<usize> = places.shards.iter().flatten().copied().collect();
        assert_eq!(
            Some(shards.clone()),
            tuning.runtime.shard_cores,
            "{}: placements follow the file",
            path.display()
        );
        assert_eq!(
            places.ingest,
            tuning.runtime.ingest_core,
            "{}: ingest where the file says",
            path.display()
        );
        // Deployment files keep ingest off the shard cores; only the
        // benchmark file (router on one core, load generator on the other)
        // shares one on purpose.
        let bench = path.to_string_lossy().ends_with("-bench.toml");
        assert_eq!(
            shards.contains(&places.ingest.expect("pinned")),
            bench,
            "{}: ingest and shards on separate cores unless it is a bench file",
            path.display()
        );
    }
}

#[test]
fn numa_file_is_refused_on_a_2_core_machine_with_a_clear_message() {
    let path = tuning_dir().join("16-core-2-numa.toml");
    let tuning = Tuning::load(&path).unwrap();
    let mut config = Config::default();
    let e = tuning.apply(&mut config, 2).unwrap_err();
    assert!(matches!(e, TuningError::Invalid { .. }), "{e:?}");
    let message = e.to_string();
    assert!(
        message.ends_with(
            "tuning/16-core-2-numa.toml: runtime.shard_cores: core 2 does not exist on this \
             2-core machine (cores 0..=1)"
        ),
        "{message}"
    );
    assert_eq!(config.runtime.shard_cores, None, "config left as it was");
}

#[test]
fn a_missing_tuning_file_names_its_path() {
    let e = Tuning::load(Path::new("tuning/no-such-host.toml")).unwrap_err();
    assert!(
        e.to_string().starts_with("tuning/no-such-host.toml: "),
        "{e}"
    );
}

/// `ctirouter serve ARGS` on a loopback port: its exit status and stderr, or
/// `None` (the process killed) if it is still running after `within`.
fn serve_exit(args: &[&str], within: Duration) -> Option<(std::process::ExitStatus, String)> {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-pin",
            "--spin-us",
            "0",
            "--admin",
            "127.0.0.1:0",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the router binary starts");
    let deadline = Instant::now() + within;
    let status = loop {
        match child.try_wait().expect("wait on the router") {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => break None,
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    Some((status, stderr))
}

#[test]
fn serve_refuses_more_shards_than_the_router_runs_at_once() {
    let (status, stderr) = serve_exit(&["--shards", "65"], Duration::from_secs(5))
        .expect("`serve --shards 65` still running after 5 s (it must be refused at once)");
    assert!(!status.success(), "{status:?}\n{stderr}");
    assert!(
        stderr.contains("runtime.shards (--shards) is 65: at most 64 shards"),
        "{stderr}"
    );
}

/// What a dry run must leave alone: IRQ affinities and the sysctls it plans.
fn system_snapshot() -> Vec<(PathBuf, String)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir("/proc/irq")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("smp_affinity_list"))
        .collect();
    for key in [
        "net/core/somaxconn",
        "net/ipv4/tcp_max_syn_backlog",
        "net/core/wmem_max",
        "net/core/rmem_max",
        "net/ipv4/tcp_wmem",
        "net/ipv4/tcp_rmem",
        "fs/file-max",
    ] {
        paths.push(Path::new("/proc/sys").join(key));
    }
    paths.push("/etc/security/limits.d/90-ctirouter.conf".into());
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|_| "<absent>".into());
            (path, text)
        })
        .collect()
}

fn host_tune(args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(tuning_dir().join("host-tune.sh"))
        .args(args)
        .output()
        .expect("bash runs")
}

#[test]
fn host_tune_dry_run_prints_the_plan_and_changes_nothing() {
    if ctirouter::config::nr_cores() < 2 {
        eprintln!("skipped: --shard-cores 1 needs a second core");
        return;
    }
    let before = system_snapshot();
    let out = host_tune(&["--shard-cores", "1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    for section in [
        "dry run, nothing is changed",
        "IRQ affinity: NIC interrupts on cores ",
        "away from shard cores 1",
        "net.core.somaxconn",
        "net.ipv4.tcp_wmem",
        "fs.file-max",
        "limits for user 'ctirouter'",
        "governor",
    ] {
        assert!(
            stdout.contains(section),
            "missing {section:?} in:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("done:") && !stdout.contains("APPLYING"),
        "{stdout}"
    );
    assert_eq!(system_snapshot(), before, "a dry run changed the system");
}

#[test]
fn host_tune_refuses_cores_the_machine_lacks() {
    let out = host_tune(&["--shard-cores", "4095"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("shard core '4095' is not online"),
        "{stderr}"
    );
}

#[test]
fn host_tune_needs_the_shard_cores() {
    let out = host_tune(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shard-cores LIST is required"));
}
