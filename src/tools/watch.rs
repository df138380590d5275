//! `ctirouter watch`: a command-line CTI client that opens a session (All
//! Events, device monitors, one agent's Client Events, or a supervisor's
//! session monitoring one team), prints one line per message it receives,
//! heartbeats, and on Ctrl-C sends CLOSE_REQ (after MONITOR_AGENT_TEAM_STOP_REQ
//! for a team) and waits (≤ 5 s, docs/protocol.md §6.4) for CLOSE_CONF. Lines
//! go to `out` (stdout); what happens to the session goes to stderr. How a
//! team's messages are printed is in `watch_team`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::cti_client::{Link, LinkError, Received};
use super::cti_names::status_name;
use super::ctl_plan::{self, Action};
use super::watch_format;
use super::watch_team::TeamWatch;
use crate::ids::Services;
use crate::proto::constants::{agent_mask, call_mask, device_type, status, NULL_PERIPHERAL_ID};
use crate::proto::frame::message_type;
use crate::proto::msg::{MonitorStartReq, OpenConf};
use crate::proto::Version;
use crate::session::client::{reply_invoke_id, ClientError, OpenParams};

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
    /// A supervisor's session (Client Events + Supervisor, the supervisor's
    /// AgentID) monitoring team `team_id` (MONITOR_AGENT_TEAM_START_REQ).
    Team { team_id: u32, supervisor: String },
}

/// Why `watch` ended without being asked to.
#[derive(Debug)]
pub enum WatchError {
    /// The session could not be had or was lost.
    Link(LinkError),
    /// The session was had, but not what was asked of it (the team
    /// monitor refused, Supervisor not granted).
    Refused(String),
}

impl std::fmt::Display for WatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WatchError::Link(e) => write!(f, "{e}"),
            WatchError::Refused(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for WatchError {}

impl From<LinkError> for WatchError {
    fn from(e: LinkError) -> Self {
        WatchError::Link(e)
    }
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
    /// OPEN_REQ AgentInstrument (`--agent` and `--team` modes).
    pub instrument: Option<String>,
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
            instrument: None,
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
            WatchMode::Team { supervisor, .. } => {
                p.services = Services::CLIENT_EVENTS | Services::SUPERVISOR;
                p.agent_id = Some(supervisor.clone());
            }
        }
        p
    }

    /// What a refused OPEN_REQ means in team mode: the CTI Server grants
    /// Supervisor only to a supervisor's agent.
    fn open_error(&self, e: LinkError) -> WatchError {
        let WatchMode::Team { supervisor, .. } = &self.mode else {
            return WatchError::Link(e);
        };
        match &e {
            LinkError::Session(ClientError::Refused {
                status: status::E_CTI_FUNCTION_NOT_AVAILABLE,
            }) => WatchError::Refused(format!(
                "{e} - Client Events + Supervisor not granted: the CTI Server grants \
                 Supervisor only to a supervisor's agent (is {supervisor} one?)"
            )),
            _ => WatchError::Link(e),
        }
    }
}

/// Watch until `stop` is set (`Ok`, after the close) or the session fails.
pub fn run(
    options: &WatchOptions,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> Result<(), WatchError> {
    let instrument = options.instrument.clone();
    let mut link = Link::connect_with(
        &options.connect,
        options.open_params(),
        CONNECT_TIMEOUT,
        |req| {
            if let Some(i) = instrument {
                req.agent_instrument = Some(i.as_str().into());
            }
        },
    )?;
    eprintln!(
        "watch: connected to {} (version {}), OPEN_REQ sent",
        link.peer(),
        options.version
    );
    let mut monitors: HashMap<u32, String> = HashMap::new();
    let mut team = match &options.mode {
        WatchMode::Team { team_id, .. } => Some(TeamWatch::new(*team_id, options.json)),
        _ => None,
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            return finish(&mut link, team.as_mut(), out);
        }
        let version = link.version();
        let received = link
            .next(Instant::now() + TICK)
            .map_err(|e| options.open_error(e))?;
        match received {
            Received::Opened { conf, .. } => {
                report_open(&conf);
                match (&options.mode, team.as_mut()) {
                    (WatchMode::Devices(devices), _) => {
                        start_monitors(&mut link, options, devices, &mut monitors)?
                    }
                    (_, Some(team)) => {
                        if let Err(e) = start_team(&mut link, team, &conf) {
                            let _ = close(&mut link);
                            return Err(e);
                        }
                    }
                    _ => {}
                }
            }
            Received::Frame(frame) => {
                let lines = match team.as_mut() {
                    Some(team) => team.lines(frame, version),
                    None => vec![watch_format::line(frame, version, options.json)],
                };
                if print(out, &lines).is_err() {
                    // Output closed (e.g. `| head`): end the session politely.
                    return finish(&mut link, team.as_mut(), &mut std::io::sink());
                }
            }
            Received::RequestFailed {
                invoke_id, status, ..
            } => {
                if let Some(team) = team.as_ref().filter(|t| t.is_start(invoke_id)) {
                    let refused = team_refused(team.team_id(), status);
                    let _ = close(&mut link);
                    return Err(refused);
                }
                report_request_failure(monitors.get(&invoke_id), invoke_id, status)
            }
            Received::Handled | Received::Idle | Received::Closed => {}
        }
        if let Some(team) = team.as_ref().filter(|t| t.start_overdue(Instant::now())) {
            let _ = close(&mut link);
            return Err(WatchError::Refused(format!(
                "no answer to MONITOR_AGENT_TEAM_START_REQ for team {} within {:?}",
                team.team_id(),
                super::watch_team::START_TIMEOUT
            )));
        }
    }
}

fn print(out: &mut dyn Write, lines: &[String]) -> std::io::Result<()> {
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()
}

/// The supervisor session is open: Supervisor must have been granted, then
/// MONITOR_AGENT_TEAM_START_REQ (`ctl team`'s request).
fn start_team(link: &mut Link, team: &mut TeamWatch, conf: &OpenConf) -> Result<(), WatchError> {
    let action = Action::Team {
        team_id: team.team_id(),
    };
    ctl_plan::check_granted(&action, conf.services_granted).map_err(WatchError::Refused)?;
    let invoke_id = link.next_invoke_id();
    link.send(&team.start(conf.monitor_id, invoke_id, Instant::now()))?;
    eprintln!(
        "watch: MONITOR_AGENT_TEAM_START_REQ sent for team {} (InvokeID {invoke_id})",
        team.team_id()
    );
    Ok(())
}

fn team_refused(team_id: u32, code: u32) -> WatchError {
    let hint = match code {
        status::E_CTI_TEAM_NOT_FOUND => " - no such team, or not one --agent supervises",
        status::E_CTI_FUNCTION_NOT_AVAILABLE => " - this server does not serve team monitors",
        _ => "",
    };
    WatchError::Refused(format!(
        "MONITOR_AGENT_TEAM_START_REQ for team {team_id} refused: FAILURE_CONF status {code} ({}){hint}",
        status_name(code)
    ))
}

/// The end asked for: MONITOR_AGENT_TEAM_STOP_REQ (waiting ≤ [`CLOSE_WAIT`]
/// for its answer, printing what comes meanwhile) if a team monitor runs,
/// then the close.
fn finish(
    link: &mut Link,
    team: Option<&mut TeamWatch>,
    out: &mut dyn Write,
) -> Result<(), WatchError> {
    let Some(team) = team else {
        return close(link);
    };
    let invoke_id = link.next_invoke_id();
    let Some(request) = team.stop(invoke_id) else {
        return close(link);
    };
    link.send(&request)?;
    eprintln!("watch: MONITOR_AGENT_TEAM_STOP_REQ sent (InvokeID {invoke_id})");
    let deadline = Instant::now() + CLOSE_WAIT;
    loop {
        let version = link.version();
        match link.next(deadline)? {
            Received::Frame(frame) => {
                let answered = reply_invoke_id(
                    message_type(frame).unwrap_or(0),
                    frame.get(8..).unwrap_or_default(),
                )
                .ok()
                .flatten()
                .is_some_and(|id| team.is_stop(id));
                let _ = print(out, &team.lines(frame, version));
                if answered {
                    eprintln!("watch: team monitor stopped");
                    break;
                }
            }
            Received::RequestFailed {
                invoke_id, status, ..
            } if team.is_stop(invoke_id) => {
                eprintln!(
                    "watch: MONITOR_AGENT_TEAM_STOP_REQ failed: FAILURE_CONF status {status} ({})",
                    status_name(status)
                );
                break;
            }
            Received::Idle => {
                eprintln!("watch: no answer to MONITOR_AGENT_TEAM_STOP_REQ within {CLOSE_WAIT:?}");
                break;
            }
            _ => {}
        }
    }
    close(link)
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

fn close(link: &mut Link) -> Result<(), WatchError> {
    eprintln!("watch: closing (CLOSE_REQ sent)");
    match link.close(CLOSE_WAIT)? {
        true => eprintln!("watch: CLOSE_CONF received, session closed"),
        false => eprintln!("watch: no CLOSE_CONF within {CLOSE_WAIT:?}; closing anyway"),
    }
    Ok(())
}
