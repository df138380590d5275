//! `ctirouter watch`: a command-line CTI client that opens a session (All
//! Events, device monitors, or one agent's Client Events), prints one line
//! per message it receives, heartbeats, and on Ctrl-C sends CLOSE_REQ and
//! waits (≤ 5 s, docs/protocol.md §6.4) for CLOSE_CONF. Lines go to `out`
//! (stdout); what happens to the session goes to stderr.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::cti_client::{Link, LinkError, Received};
use super::watch_format;
use crate::ids::Services;
use crate::proto::constants::{agent_mask, call_mask, device_type, NULL_PERIPHERAL_ID};
use crate::proto::msg::{MonitorStartReq, OpenConf};
use crate::proto::Version;
use crate::session::client::{status_name, OpenParams};

/// Longest wait for the TCP connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for CLOSE_CONF after CLOSE_REQ (docs/protocol.md §6.4).
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// How often the stop flag is looked at.
const TICK: Duration = Duration::from_millis(50);

/// What to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchMode {
    /// Every call and agent event (CTI_SERVICE_ALL_EVENTS).
    AllEvents,
    /// Peripheral Monitor with one device monitor per id (MONITOR_START_REQ,
    /// MonitoredDeviceType 0).
    Devices(Vec<String>),
    /// Client Events for one agent (by AgentID).
    Agent(String),
}

#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Server address, `host:port`.
    pub connect: String,
    pub version: Version,
    pub mode: WatchMode,
    /// One JSON object per line instead of readable lines.
    pub json: bool,
    pub client_id: String,
    pub password: String,
    pub heartbeat: Duration,
    /// OPEN_REQ / MONITOR_START_REQ PeripheralID (NULL unless given).
    pub peripheral_id: u32,
}

impl WatchOptions {
    pub fn new(connect: &str) -> WatchOptions {
        WatchOptions {
            connect: connect.into(),
            version: Version::MAX,
            mode: WatchMode::AllEvents,
            json: false,
            client_id: "ctirouter-watch".into(),
            password: String::new(),
            heartbeat: Duration::from_secs(5),
            peripheral_id: NULL_PERIPHERAL_ID,
        }
    }

    fn open_params(&self) -> OpenParams {
        let mut p = OpenParams::all_events(
            self.version,
            &self.client_id,
            &self.password,
            self.heartbeat,
        );
        p.signature = "ctirouter watch".into();
        p.peripheral_id = self.peripheral_id;
        match &self.mode {
            WatchMode::AllEvents => {}
            WatchMode::Devices(_) => p.services = Services::PERIPHERAL_MONITOR,
            WatchMode::Agent(id) => {
                p.services = Services::CLIENT_EVENTS;
                p.agent_id = Some(id.clone());
            }
        }
        p
    }
}

/// Watch until `stop` is set (`Ok`, after the close) or the session fails.
pub fn run(
    options: &WatchOptions,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> Result<(), LinkError> {
    let mut link = Link::connect(&options.connect, options.open_params(), CONNECT_TIMEOUT)?;
    eprintln!(
        "watch: connected to {} (version {}), OPEN_REQ sent",
        link.peer(),
        options.version
    );
    let mut monitors: HashMap<u32, String> = HashMap::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            return close(&mut link);
        }
        let version = link.version();
        match link.next(Instant::now() + TICK)? {
            Received::Opened { conf, .. } => {
                report_open(&conf);
                if let WatchMode::Devices(devices) = &options.mode {
                    start_monitors(&mut link, options, devices, &mut monitors)?;
                }
            }
            Received::Frame(frame) => {
                let line = match options.json {
                    true => watch_format::json(frame, version),
                    false => watch_format::readable(frame, version),
                };
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    // Output closed (e.g. `| head`): end the session politely.
                    return close(&mut link);
                }
            }
            Received::RequestFailed {
                invoke_id, status, ..
            } => report_request_failure(monitors.get(&invoke_id), invoke_id, status),
            Received::Handled | Received::Idle | Received::Closed => {}
        }
    }
}

fn report_open(conf: &OpenConf) {
    eprintln!(
        "watch: session open: services granted 0x{:x}, MonitorID {}, PGStatus 0x{:x}, peripheral type {}",
        conf.services_granted, conf.monitor_id, conf.pg_status, conf.peripheral_type
    );
}

fn start_monitors(
    link: &mut Link,
    options: &WatchOptions,
    devices: &[String],
    monitors: &mut HashMap<u32, String>,
) -> Result<(), LinkError> {
    for device in devices {
        let invoke_id = link.next_invoke_id();
        let request = MonitorStartReq {
            invoke_id,
            peripheral_id: options.peripheral_id,
            connection_call_id: 0,
            call_msg_mask: call_mask::ALL,
            agent_state_mask: agent_mask::ALL,
            connection_device_id_type: device_type::NONE,
            monitored_device_type: device_type::DEVICE_IDENTIFIER,
            monitored_device_id: Some(device.as_str().into()),
            ..Default::default()
        };
        link.send(&request.into())?;
        monitors.insert(invoke_id, device.clone());
        eprintln!("watch: MONITOR_START_REQ sent for device {device}");
    }
    Ok(())
}

fn report_request_failure(device: Option<&String>, invoke_id: u32, status: u32) {
    match device {
        Some(device) => eprintln!(
            "watch: device monitor for {device} refused: FAILURE_CONF status {status} ({}){}",
            status_name(status),
            if status == crate::proto::constants::status::E_CTI_FUNCTION_NOT_AVAILABLE {
                " - this server does not serve device monitors"
            } else {
                ""
            }
        ),
        None => eprintln!(
            "watch: request {invoke_id} failed: FAILURE_CONF status {status} ({})",
            status_name(status)
        ),
    }
}

fn close(link: &mut Link) -> Result<(), LinkError> {
    eprintln!("watch: closing (CLOSE_REQ sent)");
    match link.close(CLOSE_WAIT)? {
        true => eprintln!("watch: CLOSE_CONF received, session closed"),
        false => eprintln!("watch: no CLOSE_CONF within {CLOSE_WAIT:?}; closing anyway"),
    }
    Ok(())
}
