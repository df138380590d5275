//! The server's cost from /proc: CPU time per thread from the scheduler
//! (/proc/PID/task/TID/schedstat: ns on CPU and timeslices run, summed over
//! the threads for the process), resident memory (/proc/PID/status VmRSS)
//! and the open-file limit (/proc/PID/limits). Reads files only.
//!
//! Why schedstat and not /proc/PID/stat: stat's utime + stime are clock
//! ticks (10 ms at HZ 100), sampled, so a server that runs 20 µs at a time
//! is charged whole ticks or nothing; at low rates that said 0.33 core where
//! schedstat said 0.22. schedstat's first field is the scheduler's own
//! account of the thread's run time in ns (`sum_exec_runtime`), its third
//! the number of times it was put on a CPU.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::ErrorKind;

/// Where the CPU numbers come from (results JSON `cpu_source`).
pub const CPU_SOURCE: &str = "schedstat";

/// One thread's scheduler counters at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadStat {
    pub tid: u32,
    /// /proc/PID/task/TID/comm (at most 15 bytes, as the kernel keeps it).
    pub comm: String,
    /// Field 1: ns on CPU since the thread started.
    pub run_ns: u64,
    /// Field 3: timeslices run (times put on a CPU).
    pub runs: u64,
}

/// Fields 1 (ns on CPU) and 3 (timeslices run) of a schedstat line
/// (field 2, ns waiting on a run queue, is not used).
pub fn parse_schedstat(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_whitespace();
    let run_ns = fields.next()?.parse().ok()?;
    let _wait_ns: u64 = fields.next()?.parse().ok()?;
    let runs = fields.next()?.parse().ok()?;
    Some((run_ns, runs))
}

/// Every thread of `pid` now. A thread that ends while it is read is left
/// out; the process itself must be there.
pub fn threads(pid: u32) -> Result<Vec<ThreadStat>, String> {
    let dir = format!("/proc/{pid}/task");
    let entries = fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))?;
    let mut out = Vec::new();
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let path = format!("{dir}/{tid}/schedstat");
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            // Gone between the listing and the read.
            Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => {
                continue
            }
            Err(e) => return Err(format!("{path}: {e}")),
        };
        let (run_ns, runs) =
            parse_schedstat(&text).ok_or(format!("{path}: unexpected format {text:?}"))?;
        let comm = fs::read_to_string(format!("{dir}/{tid}/comm"))
            .map(|c| c.trim_end_matches('\n').to_string())
            .unwrap_or_default();
        out.push(ThreadStat {
            tid,
            comm,
            run_ns,
            runs,
        });
    }
    if out.is_empty() {
        return Err(format!("{dir}: no thread with a readable schedstat"));
    }
    Ok(out)
}

/// What one thread used over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadDelta {
    pub tid: u32,
    pub comm: String,
    pub run_ns: u64,
    pub runs: u64,
    /// Not there at the window's start (all it ran is in the window).
    pub started: bool,
    /// Not there at the last sample: counted up to the sample before
    /// (what it ran after that is missed).
    pub ended: bool,
}

/// The CPU of one process over a window, thread by thread: sampled at the
/// start, then as often as the caller likes (the runner: every second and
/// at the end). A thread is counted from its value at the start (0 if it
/// started later) to the last sample it was seen in; a TID reused by a new
/// thread (lower counters, or another name) starts a new row.
#[derive(Debug, Clone, Default)]
pub struct CpuWindow {
    /// Per TID: the thread now using it.
    live: BTreeMap<u32, Track>,
    /// TIDs present at the last sample.
    present: BTreeSet<u32>,
    /// Threads whose TID was taken over by another thread.
    retired: Vec<ThreadDelta>,
}

#[derive(Debug, Clone)]
struct Track {
    /// Its value at the window's start, or zero if it started later.
    first: ThreadStat,
    last: ThreadStat,
    started: bool,
}

impl Track {
    fn delta(&self, ended: bool) -> ThreadDelta {
        ThreadDelta {
            tid: self.last.tid,
            comm: self.last.comm.clone(),
            run_ns: self.last.run_ns - self.first.run_ns,
            runs: self.last.runs - self.first.runs,
            started: self.started,
            ended,
        }
    }

    fn new_thread(t: ThreadStat) -> Track {
        Track {
            first: ThreadStat {
                run_ns: 0,
                runs: 0,
                ..t.clone()
            },
            last: t,
            started: true,
        }
    }
}

impl CpuWindow {
    pub fn start(threads: Vec<ThreadStat>) -> CpuWindow {
        let mut w = CpuWindow::default();
        for t in threads {
            w.present.insert(t.tid);
            let track = Track {
                first: t.clone(),
                last: t,
                started: false,
            };
            w.live.insert(track.last.tid, track);
        }
        w
    }

    /// A later sample of the same process.
    pub fn update(&mut self, threads: Vec<ThreadStat>) {
        self.present.clear();
        for t in threads {
            self.present.insert(t.tid);
            match self.live.get_mut(&t.tid) {
                Some(track)
                    if t.run_ns >= track.last.run_ns
                        && t.runs >= track.last.runs
                        && t.comm == track.last.comm =>
                {
                    track.last = t;
                }
                Some(track) => {
                    let old = std::mem::replace(track, Track::new_thread(t));
                    self.retired.push(old.delta(true));
                }
                None => {
                    self.live.insert(t.tid, Track::new_thread(t));
                }
            }
        }
    }

    /// Every thread's use over the window so far.
    pub fn deltas(&self) -> Vec<ThreadDelta> {
        let mut out = self.retired.clone();
        for (tid, track) in &self.live {
            out.push(track.delta(!self.present.contains(tid)));
        }
        out
    }

    /// ns on CPU over the window, all threads.
    pub fn total_ns(&self) -> u64 {
        let retired: u64 = self.retired.iter().map(|d| d.run_ns).sum();
        let live: u64 = self
            .live
            .values()
            .map(|t| t.last.run_ns - t.first.run_ns)
            .sum();
        retired + live
    }
}

/// `/proc/PID/NAME`, read whole; the error names the file.
fn proc_file(pid: u32, name: &str) -> Result<String, String> {
    let path = format!("/proc/{pid}/{name}");
    fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))
}

/// Resident set size in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64, String> {
    let status = proc_file(pid, "status")?;
    parse_vm_rss(&status).ok_or(format!("/proc/{pid}/status: no VmRSS"))
}

pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Raise the soft open-file limit to the hard one (10,000 sessions are
/// 10,000 sockets here and 10,000 in the router, which inherits it and
/// raises its own too). Returns the soft limit now in force.
pub fn raise_nofile() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write a valid, initialized struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Some(lim.rlim_cur)
}

/// The soft open-file limit of `pid` (/proc/PID/limits, "Max open files");
/// `u64::MAX` for "unlimited".
pub fn nofile_limit(pid: u32) -> Result<u64, String> {
    let text = proc_file(pid, "limits")?;
    parse_nofile_limit(&text).ok_or(format!("/proc/{pid}/limits: no \"Max open files\""))
}

pub fn parse_nofile_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    match line["Max open files".len()..].split_whitespace().next()? {
        "unlimited" => Some(u64::MAX),
        soft => soft.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(tid: u32, comm: &str, run_ns: u64, runs: u64) -> ThreadStat {
        ThreadStat {
            tid,
            comm: comm.into(),
            run_ns,
            runs,
        }
    }

    #[test]
    fn schedstat_fields_one_and_three() {
        assert_eq!(
            parse_schedstat("59922496 80153317 133\n"),
            Some((59_922_496, 133))
        );
        assert_eq!(parse_schedstat("1 2"), None);
        assert_eq!(parse_schedstat("x 2 3"), None);
        assert_eq!(parse_schedstat(""), None);
    }

    #[test]
    fn window_sums_threads_that_come_and_go() {
        let mut w = CpuWindow::start(vec![
            t(10, "ingest", 1_000, 10),
            t(11, "shard-0", 5_000, 50),
            t(12, "short", 700, 7),
        ]);
        // 12 ends after the first update; 13 starts in the window.
        w.update(vec![
            t(10, "ingest", 3_000, 30),
            t(11, "shard-0", 5_000, 50),
            t(12, "short", 900, 9),
            t(13, "blocking", 400, 4),
        ]);
        w.update(vec![
            t(10, "ingest", 4_000, 35),
            t(11, "shard-0", 6_000, 60),
            t(13, "blocking", 500, 5),
        ]);
        let d = w.deltas();
        let by = |tid| d.iter().find(|x| x.tid == tid).unwrap().clone();
        assert_eq!((by(10).run_ns, by(10).runs), (3_000, 25));
        assert_eq!((by(11).run_ns, by(11).runs), (1_000, 10));
        assert_eq!((by(12).run_ns, by(12).runs, by(12).ended), (200, 2, true));
        assert_eq!((by(13).run_ns, by(13).runs, by(13).started), (500, 5, true));
        assert!(!by(10).started && !by(10).ended);
        assert_eq!(w.total_ns(), 3_000 + 1_000 + 200 + 500);
    }

    #[test]
    fn a_reused_tid_is_a_new_thread() {
        let mut w = CpuWindow::start(vec![t(20, "old", 9_000, 90)]);
        w.update(vec![t(20, "old", 9_500, 95)]);
        w.update(vec![t(20, "new", 300, 3)]);
        let d = w.deltas();
        assert_eq!(d.len(), 2);
        let old = d.iter().find(|x| x.comm == "old").unwrap();
        let new = d.iter().find(|x| x.comm == "new").unwrap();
        assert_eq!((old.run_ns, old.ended), (500, true));
        assert_eq!((new.run_ns, new.started), (300, true));
        assert_eq!(w.total_ns(), 800);
    }

    #[test]
    fn vm_rss_is_read_in_kilobytes() {
        let status = "Name:\tx\nVmPeak:\t 9 kB\nVmRSS:\t   2048 kB\n";
        assert_eq!(parse_vm_rss(status), Some(2 * 1024 * 1024));
    }

    #[test]
    fn nofile_soft_limit_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             7823                 7823                 processes \n\
                      Max open files            20000                20000                files     \n";
        assert_eq!(parse_nofile_limit(limits), Some(20_000));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_nofile_limit(unlimited), Some(u64::MAX));
        assert_eq!(parse_nofile_limit("Max processes 1 1\n"), None);
    }

    #[test]
    fn own_process_is_measurable() {
        let me = std::process::id();
        assert!(rss_bytes(me).unwrap() > 0);
        let threads = threads(me).unwrap();
        assert!(threads.iter().any(|t| t.tid == me && t.run_ns > 0));
        assert!(nofile_limit(me).unwrap() > 0);
    }
}
