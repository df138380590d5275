//! `ctirouter record`: open an All Events session upstream exactly as the
//! router does (same OPEN_REQ, heartbeats, side A/B failover with backoff)
//! and store OPEN_CONF and every event frame, with its receive time, in a
//! recording (`tools::recording`). Ctrl-C sends CLOSE_REQ, flushes the file
//! and ends cleanly.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::cti_client::{Link, LinkError, Received};
use super::recording::{Header, Writer};
use crate::config::UpstreamConfig;
use crate::session::backoff::{Backoff, SideCursor};
use crate::session::client::{ClientError, OpenParams};

/// Longest wait for a TCP connect to one side.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for CLOSE_CONF on Ctrl-C.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How often the stop flag is looked at (and the file flushed when idle).
const TICK: Duration = Duration::from_millis(50);

/// What `record` runs with.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// Sides, version, credentials, heartbeat and backoff, as for `serve`.
    pub upstream: UpstreamConfig,
    pub out: PathBuf,
}

/// What a finished recording holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSummary {
    pub nr_records: u64,
    pub nr_sessions: u64,
}

/// How one session ended.
enum Ended {
    Stopped,
    /// The recording file cannot be written: nothing to go on for.
    WriteFailed(String),
    /// Worth retrying (the other side, after a backoff).
    Lost(LinkError),
}

/// Record until `stop` is set. A refused OPEN ends the recording with an
/// error (retrying would be refused again); any other failure fails over.
pub fn run(options: &RecordOptions, stop: &AtomicBool) -> Result<RecordSummary, String> {
    let config = &options.upstream;
    config
        .validate()
        .and_then(|()| crate::tls::check_upstream(config))
        .map_err(|e| e.to_string())?;
    let params = OpenParams::upstream(config);
    let file = File::create(&options.out).map_err(|e| format!("{}: {e}", options.out.display()))?;
    let mut writer = Writer::new(BufWriter::new(file), Header::now(params.version))
        .map_err(|e| format!("{}: {e}", options.out.display()))?;
    let started = Instant::now();
    let mut backoff = Backoff::from_clock(
        Duration::from_millis(config.reconnect_min_ms),
        Duration::from_millis(config.reconnect_max_ms),
    );
    let mut side = SideCursor::default();
    let mut nr_sessions = 0;
    while !stop.load(Ordering::Relaxed) {
        let addr = &config.sides[side.current()];
        let name = SideCursor::name(side.current());
        match session(addr, &params, &mut writer, started, stop, &mut nr_sessions) {
            Ended::Stopped => break,
            Ended::WriteFailed(e) => return Err(format!("{}: {e}", options.out.display())),
            Ended::Lost(LinkError::Session(ClientError::Refused { status })) => {
                let _ = writer.flush();
                return Err(format!(
                    "side {name} ({addr}) refused the OPEN_REQ: {}",
                    ClientError::Refused { status }
                ));
            }
            Ended::Lost(e) => eprintln!("record: side {name} ({addr}): {e}"),
        }
        let _ = writer.flush();
        side.advance(config.sides.len());
        sleep_unless_stopped(backoff.next_delay(), stop);
    }
    writer
        .flush()
        .map_err(|e| format!("{}: {e}", options.out.display()))?;
    Ok(RecordSummary {
        nr_records: writer.nr_records(),
        nr_sessions,
    })
}

/// One connection: record until stopped or lost.
fn session(
    addr: &str,
    params: &OpenParams,
    writer: &mut Writer<BufWriter<File>>,
    started: Instant,
    stop: &AtomicBool,
    nr_sessions: &mut u64,
) -> Ended {
    let mut link = match Link::connect(addr, params.clone(), CONNECT_TIMEOUT) {
        Ok(link) => link,
        Err(e) => return Ended::Lost(e),
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            match link.close(CLOSE_WAIT) {
                Ok(true) => eprintln!("record: CLOSE_CONF received"),
                Ok(false) | Err(_) => eprintln!("record: closed without CLOSE_CONF"),
            }
            return Ended::Stopped;
        }
        let received = match link.next(Instant::now() + TICK) {
            Ok(received) => received,
            Err(e) => return Ended::Lost(e),
        };
        let frame = match received {
            Received::Opened { frame, .. } => {
                *nr_sessions += 1;
                eprintln!("record: session open on {addr}");
                frame
            }
            Received::Frame(frame) => frame,
            Received::Idle => {
                let _ = writer.flush();
                continue;
            }
            Received::RequestFailed { .. } | Received::Handled | Received::Closed => continue,
        };
        if let Err(e) = writer.write_frame(started.elapsed(), frame) {
            let _ = link.close(CLOSE_WAIT);
            return Ended::WriteFailed(e.to_string());
        }
    }
}

fn sleep_unless_stopped(delay: Duration, stop: &AtomicBool) {
    let until = Instant::now() + delay;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(TICK));
    }
}
