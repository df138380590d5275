//! A recorded stream file (`ctirouter record`, format in
//! `tools::recording`) as ingest's event source: every recorded event frame
//! goes to the fan-out at the recording's protocol version, paced by the
//! recorded times scaled by `speed` (0 = as fast as the rings take them).
//! The PG status starts online (an enterprise agent PG) and follows the
//! recorded OPEN_CONF and SYSTEM_EVENTs. A truncated or corrupt file stops
//! the replay with an error naming the byte offset, after every good record
//! before it was served; the router keeps serving its sessions.

use std::fs::File;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::{stopping, Fanout, STOP_POLL};
use crate::config::ReplayConfig;
use crate::metrics::Metrics;
use crate::proto::constants::msg;
use crate::proto::msg::OpenConf;
use crate::proto::{frame, DecodeOptions, MessageBody, Version};
use crate::session::pg_status;
use crate::status::PgStatus;
use crate::tools::recording::{ReadError, Reader};

/// Records pushed between two yields at full speed, so the control tasks
/// (session opens and closes) still get to run.
const YIELD_EVERY: u64 = 1024;

pub struct ReplaySource {
    config: ReplayConfig,
}

/// What a recorded frame is to the replay.
enum Kind {
    /// OPEN_CONF: the recording's starting status.
    OpenConf,
    /// Answers to the recorder's own requests: not events.
    Control,
    Event,
}

fn kind(message_type: u32) -> Kind {
    match message_type {
        msg::OPEN_CONF => Kind::OpenConf,
        msg::HEARTBEAT_CONF | msg::CLOSE_CONF | msg::FAILURE_CONF | msg::FAILURE_EVENT => {
            Kind::Control
        }
        _ => Kind::Event,
    }
}

impl ReplaySource {
    pub fn new(config: &ReplayConfig) -> ReplaySource {
        ReplaySource {
            config: config.clone(),
        }
    }

    /// Serve the file once, then return (ingest keeps serving until stopped).
    pub async fn run(&mut self, fanout: &mut Fanout, stop: &AtomicBool) {
        let path = self.config.path.display().to_string();
        let file = match File::open(&self.config.path) {
            Ok(file) => file,
            Err(e) => {
                tracing::error!(%path, error = %e, "replay: cannot open the recording");
                return;
            }
        };
        let mut reader = match Reader::new(file) {
            Ok(reader) => reader,
            Err(e) => return report(fanout, &path, &e),
        };
        let version = reader.header().version;
        let mut status = pg_status::default_online();
        fanout.set_status(status.clone()).await;
        if !self.wait_for_sessions(fanout, stop).await {
            return;
        }
        tracing::info!(%path, %version, speed = self.config.speed, "replay started");
        let start = Instant::now();
        let mut nr_records = 0u64;
        loop {
            if stopping(stop) {
                break;
            }
            let record = match reader.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => {
                    tracing::info!(%path, nr_records, "replay finished");
                    break;
                }
                Err(e) => {
                    fanout.flush().await;
                    return report(fanout, &path, &e);
                }
            };
            if self.config.speed > 0.0 {
                let due = start + record.at.div_f64(self.config.speed);
                if !pace(fanout, stop, due).await {
                    break;
                }
            }
            self.serve(fanout, version, &mut status, record.frame).await;
            nr_records += 1;
            if nr_records % YIELD_EVERY == 0 {
                fanout.flush().await;
                futures_lite::future::yield_now().await;
            }
        }
        fanout.flush().await;
    }

    /// One recorded frame: status from OPEN_CONF and SYSTEM_EVENTs, events
    /// to the fan-out (a frame that does not decode is counted and skipped).
    async fn serve(
        &self,
        fanout: &mut Fanout,
        version: Version,
        status: &mut PgStatus,
        whole: &[u8],
    ) {
        let Ok((parsed, _)) = frame::parse(whole) else {
            return;
        };
        match kind(parsed.message_type) {
            Kind::Control => {}
            Kind::OpenConf => {
                match OpenConf::decode_body(parsed.body, version, DecodeOptions::COUNTS_UNCHECKED) {
                    Ok(conf) => {
                        *status = pg_status::from_open_conf(&conf);
                        fanout.set_status(status.clone()).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "replay: recorded OPEN_CONF does not decode")
                    }
                }
            }
            Kind::Event => {
                if parsed.message_type == msg::SYSTEM_EVENT
                    && matches!(pg_status::apply_frame(status, whole, version), Ok(true))
                {
                    fanout.set_status(status.clone()).await;
                }
                if let Err(e) = fanout.push_frame(version, whole, Instant::now()).await {
                    tracing::warn!(error = %e, message_type = parsed.message_type, "replay: recorded frame skipped");
                }
            }
        }
    }

    /// Wait until `wait_for_sessions` downstream sessions are open; `false`
    /// when stopped first.
    async fn wait_for_sessions(&self, fanout: &mut Fanout, stop: &AtomicBool) -> bool {
        let wanted = self.config.wait_for_sessions;
        if wanted > 0 {
            tracing::info!(sessions = wanted, "replay: waiting for sessions to open");
        }
        while fanout.with(|core| core.registry.nr_sessions()) < wanted {
            if stopping(stop) {
                return false;
            }
            glommio::timer::sleep(STOP_POLL).await;
        }
        true
    }
}

/// Wait until `due` (publishing the batch first); `false` when stopped.
async fn pace(fanout: &mut Fanout, stop: &AtomicBool, due: Instant) -> bool {
    let mut flushed = false;
    loop {
        let now = Instant::now();
        if now >= due {
            return true;
        }
        if stopping(stop) {
            return false;
        }
        if !flushed {
            fanout.flush().await;
            flushed = true;
        }
        glommio::timer::sleep((due - now).min(STOP_POLL)).await;
    }
}

/// A recording that cannot be read on: logged with its byte offset and counted.
fn report(fanout: &Fanout, path: &str, error: &ReadError) {
    Metrics::add(&fanout.metrics().nr_bad_upstream_frames, 1);
    match error {
        ReadError::Corrupt(e) => tracing::error!(
            %path,
            offset = e.offset,
            error = %e,
            "replay stopped: the recording is corrupt or truncated"
        ),
        ReadError::Io(e) => tracing::error!(%path, error = %e, "replay stopped: read error"),
    }
}
