//! `ctirouter ctl`: drive one agent by hand. Opens one Client Events +
//! Client Control session for the agent (+ Call Data Update for
//! `set-data`), carries out one command, prints every message the session
//! receives (the CONF and the events around it, as `watch` prints them), keeps
//! printing events for `--wait-ms` after the last CONF, sends CLOSE_REQ and
//! exits: 0 when the command succeeded, 1 when it failed (FAILURE_CONF,
//! CONTROL_FAILURE_CONF, no call to act on, a consult call not answered), 2
//! on bad arguments or when the session could not be had (connect, OPEN
//! refused, not granted control, connection lost). Messages go to stdout;
//! what the tool does goes to stderr.
//!
//! Which call a command acts on is decided in `ctl_plan` and the requests
//! are built in `ctl_requests` (no I/O there); this module sends them and
//! waits.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use super::cti_client::{Link, LinkError, Received};
use super::cti_names::{agent_state_name, status_name};
use super::ctl_plan::{
    self, Action, Agent, Completion, Conn, StateChange, SuperviseAction, Target,
};
use super::ctl_requests;
use super::watch_format;
use crate::ids::Services;
use crate::proto::constants::{status, NULL_PERIPHERAL_ID};
use crate::proto::frame::message_type;
use crate::proto::msg::{OpenConf, SnapshotDeviceConf};
use crate::proto::{decode_frame, DecodeOptions, Message, Version};
use crate::session::client::{reply_invoke_id, ClientError, OpenParams, OPEN_TIMEOUT};

/// Longest wait for the TCP connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for CLOSE_CONF after CLOSE_REQ (docs/protocol.md §6.4).
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Longest wait for the answer to a request: the router answers every
/// request within `[requests] timeout_secs` (default 15 s), with
/// FAILURE_CONF(E_CTI_TIMEOUT) if the CTI Server does not.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);
/// Heartbeat period (IdleTimeout is 4× this, at least 20 s).
const HEARTBEAT: Duration = Duration::from_secs(5);

/// `ctirouter ctl` arguments.
#[derive(Args, Debug)]
pub struct CtlArgs {
    /// Router (or CTI Server) address, host:port.
    #[arg(long)]
    pub connect: String,
    /// Protocol version to open with.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(13..=24))]
    pub version: u32,
    /// AgentID of the agent to drive (OPEN_REQ and SET_AGENT_STATE_REQ).
    #[arg(long, value_name = "ID")]
    pub agent: String,
    /// The agent's instrument (needed for `state login`; else taken from
    /// OPEN_CONF when the router knows the agent).
    #[arg(long, value_name = "EXT")]
    pub instrument: Option<String>,
    /// PeripheralID (default: the one peripheral OPEN_CONF lists).
    #[arg(long, value_name = "ID")]
    pub peripheral: Option<u32>,
    #[arg(long, default_value = "ctirouter-ctl", value_name = "NAME")]
    pub client_id: String,
    #[arg(long, default_value = "")]
    pub password: String,
    /// One JSON object per line ({"type":...,"fields":{...}}), as `watch --json`.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to print events after the last CONF (and to wait for a
    /// consult call to be answered), milliseconds.
    #[arg(long, global = true, default_value_t = 3000, value_name = "MS")]
    pub wait_ms: u64,
    /// Act on this call (ConnectionCallID) instead of the one picked by its state.
    #[arg(long, global = true, value_name = "ID")]
    pub call: Option<u32>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Subcommand, Debug)]
pub enum CtlCommand {
    /// Change the agent's state (SET_AGENT_STATE_REQ).
    State {
        #[arg(value_enum)]
        state: StateChange,
        /// EventReasonCode (not-ready, logout).
        #[arg(long, value_name = "N")]
        reason: Option<u16>,
        /// AgentPassword (login, logout).
        #[arg(long, value_name = "P")]
        agent_password: Option<String>,
    },
    /// Place a call from the instrument (MAKE_CALL_REQ).
    Call { number: String },
    /// Answer the alerting call (ANSWER_CALL_REQ).
    Answer,
    /// Put the connected call on hold (HOLD_CALL_REQ).
    Hold,
    /// Take the held call back (RETRIEVE_CALL_REQ).
    Retrieve,
    /// Consult EXT from the connected call, then transfer to it once it
    /// answers; with no EXT, transfer the held call to the connected one.
    Transfer { ext: Option<String> },
    /// As `transfer`, conferencing instead (CONFERENCE_CALL_REQ).
    Conference { ext: Option<String> },
    /// Clear the agent's connection to the connected call (CLEAR_CONNECTION_REQ).
    Hangup,
    /// Set call variables of the connected call (SET_CALL_DATA_REQ).
    SetData {
        /// CallVariableN (N = 1..10).
        #[arg(long = "var", value_name = "N=VALUE")]
        vars: Vec<String>,
        /// A named (ECC) variable.
        #[arg(long = "named", value_name = "NAME=VALUE")]
        named: Vec<String>,
    },
    /// List the calls at the instrument (SNAPSHOT_DEVICE_REQ).
    Snapshot,
    /// As a supervisor (--agent), act on the active call of AGENT of its
    /// team (SUPERVISE_CALL_REQ; asks for the Supervisor service).
    Supervise {
        agent: String,
        #[arg(long, value_enum, default_value = "monitor")]
        action: SuperviseAction,
    },
    /// `supervise AGENT --action barge-in`: join AGENT's call.
    BargeIn { agent: String },
    /// As a supervisor, monitor team TEAM_ID (MONITOR_AGENT_TEAM_START_REQ)
    /// and print its agents' states for --wait-ms.
    Team { team_id: u32 },
}

impl CtlCommand {
    fn action(&self) -> Result<Action, String> {
        match self {
            CtlCommand::State {
                state,
                reason,
                agent_password,
            } => Action::state(*state, *reason, agent_password.clone()),
            CtlCommand::Call { number } => Action::call(number),
            CtlCommand::Answer => Ok(Action::Answer),
            CtlCommand::Hold => Ok(Action::Hold),
            CtlCommand::Retrieve => Ok(Action::Retrieve),
            CtlCommand::Transfer { ext } => Action::consult(Completion::Transfer, ext.as_deref()),
            CtlCommand::Conference { ext } => {
                Action::consult(Completion::Conference, ext.as_deref())
            }
            CtlCommand::Hangup => Ok(Action::Hangup),
            CtlCommand::SetData { vars, named } => Action::set_data(vars, named),
            CtlCommand::Snapshot => Ok(Action::Snapshot),
            CtlCommand::Supervise { agent, action } => Action::supervise(agent, *action),
            CtlCommand::BargeIn { agent } => Action::supervise(agent, SuperviseAction::BargeIn),
            CtlCommand::Team { team_id } => Ok(Action::Team { team_id: *team_id }),
        }
    }
}

/// Everything `run` needs, checked.
#[derive(Debug, Clone)]
pub struct CtlOptions {
    pub connect: String,
    pub version: Version,
    pub agent_id: String,
    pub instrument: Option<String>,
    pub peripheral_id: Option<u32>,
    pub client_id: String,
    pub password: String,
    pub json: bool,
    pub wait: Duration,
    pub call: Option<u32>,
    pub action: Action,
}

impl CtlOptions {
    pub fn from_args(args: &CtlArgs) -> Result<CtlOptions, String> {
        ctl_plan::check_agent(&args.agent, args.instrument.as_deref())?;
        Ok(CtlOptions {
            connect: args.connect.clone(),
            version: Version::new(args.version).ok_or("--version: give 13..=24")?,
            agent_id: args.agent.clone(),
            instrument: args.instrument.clone(),
            peripheral_id: args.peripheral,
            client_id: args.client_id.clone(),
            password: args.password.clone(),
            json: args.json,
            wait: Duration::from_millis(args.wait_ms),
            call: args.call,
            action: args.command.action()?,
        })
    }

    /// OPEN_REQ's parameters (AgentInstrument is added by `run`).
    fn open_params(&self) -> OpenParams {
        let mut p =
            OpenParams::all_events(self.version, &self.client_id, &self.password, HEARTBEAT);
        p.signature = "ctirouter ctl".into();
        p.services = Services(self.action.services());
        p.agent_id = Some(self.agent_id.clone());
        p.peripheral_id = self.peripheral_id.unwrap_or(NULL_PERIPHERAL_ID);
        p
    }
}

/// Why `ctl` did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtlError {
    /// Bad arguments.
    Usage(String),
    /// No session to work with (connect, OPEN, grant, lost connection).
    Session(String),
    /// The command failed: a failure answer, no call to act on, ...
    Failed(String),
}

impl CtlError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::Failed(_) => 1,
            CtlError::Usage(_) | CtlError::Session(_) => 2,
        }
    }
}

impl std::fmt::Display for CtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CtlError::Usage(e) | CtlError::Session(e) | CtlError::Failed(e) => f.write_str(e),
        }
    }
}

impl From<LinkError> for CtlError {
    fn from(e: LinkError) -> Self {
        let LinkError::Session(ClientError::Refused { status: code }) = e else {
            return CtlError::Session(e.to_string());
        };
        let hint = match code {
            status::E_CTI_DEVICE_IN_USE => {
                " - a session of another ClientID controls this agent's instrument"
            }
            status::E_CTI_INVALID_PASSWORD => {
                " - the router knows no such --client-id/--password ([[clients]])"
            }
            status::E_CTI_FUNCTION_NOT_AVAILABLE => " - none of the services asked for was granted",
            _ => "",
        };
        CtlError::Session(format!(
            "OPEN_REQ refused: FAILURE_CONF {} ({code}){hint}",
            status_name(code)
        ))
    }
}

/// `ctirouter ctl`: run, report, and say how it went in the exit status.
pub fn main(args: CtlArgs) -> ExitCode {
    let result = CtlOptions::from_args(&args)
        .map_err(CtlError::Usage)
        .and_then(|options| {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            run(&options, &mut out)
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ctirouter ctl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Open the session, carry out the command, close.
pub fn run(options: &CtlOptions, out: &mut dyn Write) -> Result<(), CtlError> {
    let instrument = options.instrument.clone();
    let mut link = Link::connect_with(
        &options.connect,
        options.open_params(),
        CONNECT_TIMEOUT,
        |req| req.agent_instrument = instrument.map(Into::into),
    )?;
    eprintln!(
        "ctl: connected to {} (version {}), OPEN_REQ sent for agent {}",
        link.peer(),
        options.version,
        options.agent_id
    );
    let conf = wait_open(&mut link)?;
    eprintln!(
        "ctl: session open: services granted 0x{:x}, PGStatus 0x{:x}, agent state {}",
        conf.services_granted,
        conf.pg_status,
        agent_state_name(conf.agent_state)
    );
    let mut session = Session {
        link,
        out,
        json: options.json,
        version: options.version,
        events: Vec::new(),
    };
    let result = ctl_plan::check_granted(&options.action, conf.services_granted)
        .map_err(CtlError::Session)
        .and_then(|()| {
            let agent = Agent::new(
                &options.agent_id,
                options.instrument.as_deref(),
                options.peripheral_id,
                &conf,
            );
            execute(&mut session, options, &agent)
        });
    session.close();
    result
}

fn wait_open(link: &mut Link) -> Result<Box<OpenConf>, CtlError> {
    let deadline = Instant::now() + OPEN_TIMEOUT + Duration::from_secs(1);
    loop {
        match link.next(deadline)? {
            Received::Opened { conf, .. } => return Ok(conf),
            Received::Idle => {
                return Err(CtlError::Session(format!(
                    "no OPEN_CONF within {OPEN_TIMEOUT:?}"
                )))
            }
            _ => {}
        }
    }
}

/// The command's requests, in order.
fn execute(s: &mut Session<'_>, options: &CtlOptions, agent: &Agent) -> Result<(), CtlError> {
    let action = &options.action;
    let invoke_id = s.link.next_invoke_id();
    if let Some(request) =
        ctl_requests::direct_request(action, agent, invoke_id).map_err(CtlError::Usage)?
    {
        let conf = s.request(invoke_id, request)?;
        if let Message::SnapshotDeviceConf(conf) = &conf {
            s.print_calls(conf)?;
        }
        return s.drain(options.wait);
    }
    let snapshot = s.request(invoke_id, ctl_requests::snapshot_request(agent, invoke_id))?;
    let Message::SnapshotDeviceConf(snapshot) = snapshot else {
        return Err(unexpected("SNAPSHOT_DEVICE_REQ", &snapshot));
    };
    let target = ctl_plan::pick(action, &ctl_plan::connections(&snapshot), options.call)
        .map_err(CtlError::Failed)?;
    match &target {
        Target::One(c) => eprintln!("ctl: acting on {c}"),
        Target::HeldAndActive { held, active } => {
            eprintln!("ctl: completing with {held} (held) and {active} (consult)")
        }
    }
    if let (
        Action::Consult {
            kind,
            ext: Some(ext),
        },
        Target::One(original),
    ) = (action, &target)
    {
        return consult_then_complete(s, options, agent, (*kind, ext), original);
    }
    let invoke_id = s.link.next_invoke_id();
    let request =
        ctl_requests::call_request(action, agent, &target, invoke_id).map_err(CtlError::Usage)?;
    s.request(invoke_id, request)?;
    s.drain(options.wait)
}

/// `transfer EXT` / `conference EXT`: consult EXT, wait for the consult
/// call to be answered (CALL_ESTABLISHED_EVENT), then complete.
fn consult_then_complete(
    s: &mut Session<'_>,
    options: &CtlOptions,
    agent: &Agent,
    (kind, ext): (Completion, &str),
    original: &Conn,
) -> Result<(), CtlError> {
    s.events.clear();
    let invoke_id = s.link.next_invoke_id();
    let request = ctl_requests::call_request(
        &options.action,
        agent,
        &Target::One(original.clone()),
        invoke_id,
    )
    .map_err(CtlError::Usage)?;
    let conf = s.request(invoke_id, request)?;
    let Message::ConsultationCallConf(conf) = conf else {
        return Err(unexpected("CONSULTATION_CALL_REQ", &conf));
    };
    let consult = ctl_requests::consult_conn(&conf).map_err(CtlError::Session)?;
    eprintln!(
        "ctl: consult call {} to {ext}: waiting up to {} ms for it to be answered",
        consult.call_id,
        options.wait.as_millis()
    );
    let deadline = Instant::now() + options.wait;
    if !s.wait_event(deadline, |m| {
        ctl_requests::is_established(m, consult.call_id)
    })? {
        let command = match kind {
            Completion::Transfer => "transfer",
            Completion::Conference => "conference",
        };
        return Err(CtlError::Failed(format!(
            "the consult call {} to {ext} was not answered within {} ms; it is still up and \
             call {} is on hold: `ctl {command}` (no EXT) completes it once answered, \
             `ctl hangup` ends it",
            consult.call_id,
            options.wait.as_millis(),
            original.call_id
        )));
    }
    let invoke_id = s.link.next_invoke_id();
    let request = ctl_requests::completion_request(kind, agent, original, &consult, invoke_id);
    s.request(invoke_id, request)?;
    s.drain(options.wait)
}

fn unexpected(request: &str, answer: &Message) -> CtlError {
    CtlError::Session(format!("{request} was answered with {}", answer.name()))
}

/// The open session and where its messages are printed.
struct Session<'o> {
    link: Link,
    out: &'o mut dyn Write,
    json: bool,
    version: Version,
    /// Events received since the list was last cleared, decoded.
    events: Vec<Message>,
}

/// What [`Session::next`] found.
enum Next {
    /// A reply (CONF or failure) with its InvokeID.
    Reply(u32, Message),
    Event(Message),
    /// Nothing to act on (heartbeat answer, an undecodable event).
    Nothing,
    /// The deadline passed.
    Idle,
}

impl Session<'_> {
    /// The next message, printed.
    fn next(&mut self, deadline: Instant) -> Result<Next, CtlError> {
        let version = self.version;
        let frame = match self.link.next(deadline)? {
            Received::Frame(frame) | Received::RequestFailed { frame, .. } => frame,
            Received::Idle => return Ok(Next::Idle),
            Received::Closed => {
                return Err(CtlError::Session("the server closed the session".into()))
            }
            Received::Opened { .. } | Received::Handled => return Ok(Next::Nothing),
        };
        let line = match self.json {
            true => watch_format::json(frame, version),
            false => watch_format::readable(frame, version),
        };
        writeln!(self.out, "{line}")
            .and_then(|()| self.out.flush())
            .map_err(|e| CtlError::Session(format!("stdout: {e}")))?;
        let message_type = message_type(frame).unwrap_or(0);
        let reply = reply_invoke_id(message_type, frame.get(8..).unwrap_or_default())
            .map_err(|e| CtlError::Session(format!("malformed reply: {e}")))?;
        let decoded = decode_frame(frame, version, DecodeOptions::COUNTS_UNCHECKED).map(|(m, _)| m);
        Ok(match (reply, decoded) {
            (Some(invoke_id), Ok(m)) => Next::Reply(invoke_id, m),
            (Some(_), Err(e)) => {
                return Err(CtlError::Session(format!(
                    "malformed reply (type {message_type}): {e}"
                )))
            }
            (None, Ok(m)) => Next::Event(m),
            (None, Err(_)) => Next::Nothing,
        })
    }

    /// Send `request` and wait for its answer, printing what comes
    /// meanwhile; a failure answer is an error naming its code.
    fn request(&mut self, invoke_id: u32, request: Message) -> Result<Message, CtlError> {
        let name = request.name();
        if let Err(e) = request.to_frame(self.version) {
            return Err(CtlError::Usage(format!(
                "{name} cannot be sent at version {}: {e}",
                self.version
            )));
        }
        self.link.send(&request)?;
        eprintln!("ctl: {name} sent (InvokeID {invoke_id})");
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            match self.next(deadline)? {
                Next::Reply(id, answer) if id == invoke_id => {
                    return match ctl_plan::failure(&answer) {
                        Some(failure) => Err(CtlError::Failed(format!("{name}: {failure}"))),
                        None => Ok(answer),
                    };
                }
                Next::Event(event) => self.events.push(event),
                Next::Reply(..) | Next::Nothing => {}
                Next::Idle => {
                    return Err(CtlError::Session(format!(
                        "no answer to {name} within {REPLY_TIMEOUT:?}"
                    )))
                }
            }
        }
    }

    /// Print messages until one of the events received (since the list
    /// was cleared) matches `wanted`: `false` if none did by `deadline`.
    fn wait_event(
        &mut self,
        deadline: Instant,
        wanted: impl Fn(&Message) -> bool,
    ) -> Result<bool, CtlError> {
        if self.events.iter().any(&wanted) {
            return Ok(true);
        }
        loop {
            match self.next(deadline)? {
                Next::Event(event) if wanted(&event) => return Ok(true),
                Next::Idle => return Ok(false),
                _ => {}
            }
        }
    }

    /// Print messages for `wait`.
    fn drain(&mut self, wait: Duration) -> Result<(), CtlError> {
        let deadline = Instant::now() + wait;
        while !matches!(self.next(deadline)?, Next::Idle) {}
        Ok(())
    }

    /// `snapshot`, readable output: one line per call after the CONF.
    fn print_calls(&mut self, conf: &SnapshotDeviceConf) -> Result<(), CtlError> {
        if self.json {
            return Ok(());
        }
        let calls = ctl_plan::connections(conf);
        let mut text = String::new();
        for c in &calls {
            text.push_str(&format!("  {c}\n"));
        }
        if calls.is_empty() {
            text.push_str("  no calls at the instrument\n");
        }
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(|e| CtlError::Session(format!("stdout: {e}")))
    }

    /// CLOSE_REQ, and wait (≤ [`CLOSE_WAIT`]) for CLOSE_CONF.
    fn close(mut self) {
        match self.link.close(CLOSE_WAIT) {
            Ok(true) => eprintln!("ctl: session closed (CLOSE_CONF received)"),
            Ok(false) => eprintln!("ctl: no CLOSE_CONF within {CLOSE_WAIT:?}; closing anyway"),
            Err(e) => eprintln!("ctl: closing: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::constants::service;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        ctl: CtlArgs,
    }

    fn options(args: &[&str]) -> Result<CtlOptions, String> {
        let mut all = vec!["ctl", "--connect", "127.0.0.1:1", "--agent", "1001"];
        all.extend_from_slice(args);
        let cli = Cli::try_parse_from(all).map_err(|e| e.to_string())?;
        CtlOptions::from_args(&cli.ctl)
    }

    #[test]
    fn the_open_asks_for_control_for_the_agent() {
        let o = options(&["--peripheral", "5000", "state", "ready"]).unwrap();
        let p = o.open_params();
        assert_eq!(
            p.services.bits(),
            service::CLIENT_EVENTS | service::CLIENT_CONTROL
        );
        assert_eq!(p.agent_id.as_deref(), Some("1001"));
        assert_eq!(p.peripheral_id, 5000);
        assert_eq!(p.client_id, "ctirouter-ctl");
        assert_eq!(p.version, Version::MAX);
        let o = options(&["--version", "15", "set-data", "--var", "1=x"]).unwrap();
        assert_eq!(
            o.open_params().services.bits(),
            service::CLIENT_EVENTS | service::CLIENT_CONTROL | service::CALL_DATA_UPDATE
        );
        assert_eq!(o.open_params().peripheral_id, NULL_PERIPHERAL_ID);
        assert_eq!(o.version.number(), 15);
    }

    #[test]
    fn supervisor_commands_ask_for_the_supervisor_service() {
        let o = options(&["barge-in", "1013"]).unwrap();
        assert_eq!(
            o.action,
            Action::Supervise {
                agent: "1013".into(),
                action: crate::proto::constants::supervisory_action::BARGE_IN
            }
        );
        assert_eq!(
            o.open_params().services.bits(),
            service::CLIENT_EVENTS | service::CLIENT_CONTROL | service::SUPERVISOR
        );
        let o = options(&["supervise", "1013", "--action", "clear"]).unwrap();
        assert!(matches!(o.action, Action::Supervise { action: 0, .. }));
        let o = options(&["team", "2"]).unwrap();
        assert_eq!(o.action, Action::Team { team_id: 2 });
        assert!(ctl_plan::check_granted(&o.action, 0x05).is_err());
        assert!(ctl_plan::check_granted(&o.action, 0x85).is_ok());
    }

    #[test]
    fn commands_and_global_flags_parse() {
        let o = options(&["state", "not-ready", "--reason", "12", "--json"]).unwrap();
        assert_eq!(
            o.action,
            Action::State {
                change: StateChange::NotReady,
                reason: Some(12),
                agent_password: None
            }
        );
        assert!(o.json);
        let o = options(&["--wait-ms", "50", "hangup", "--call", "7"]).unwrap();
        assert_eq!(
            (o.action, o.wait, o.call),
            (Action::Hangup, Duration::from_millis(50), Some(7))
        );
        let o = options(&["transfer", "3002"]).unwrap();
        assert_eq!(
            o.action,
            Action::Consult {
                kind: Completion::Transfer,
                ext: Some("3002".into())
            }
        );
        let o = options(&["conference"]).unwrap();
        assert_eq!(
            o.action,
            Action::Consult {
                kind: Completion::Conference,
                ext: None
            }
        );
        assert!(options(&["state", "ready", "--reason", "1"]).is_err());
        assert!(options(&["state", "dancing"]).is_err());
        assert!(options(&["--version", "12", "snapshot"]).is_err());
        assert!(options(&["set-data"]).is_err());
        assert!(options(&[]).is_err(), "a command is required");
    }

    #[test]
    fn an_open_refusal_names_its_status() {
        let e = CtlError::from(LinkError::Session(ClientError::Refused {
            status: status::E_CTI_DEVICE_IN_USE,
        }));
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("E_CTI_DEVICE_IN_USE (10)"), "{e}");
        assert_eq!(CtlError::Failed(String::new()).exit_code(), 1);
    }
}
