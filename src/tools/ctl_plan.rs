//! What `ctirouter ctl` is asked to do, without I/O: the command a person
//! typed as a checked [`Action`], whether the session was granted enough for
//! it, the [`Agent`] it acts for, which call a command acts on ([`pick`],
//! from the connections SNAPSHOT_DEVICE_CONF lists), and what a failure
//! answer says ([`failure`]). The requests themselves are built in
//! `ctl_requests`; the sending and waiting is in `ctl`.

use super::cti_names::{control_failure_name, lcs_name, status_name};
use crate::proto::constants::{agent_state, lcs, service, supervisory_action, NULL_PERIPHERAL_ID};
use crate::proto::msg::{OpenConf, SnapshotDeviceConf};
use crate::proto::{CtiString, Message};

/// Longest texts in bytes, the NUL not counted (a STRING n holds n − 1).
const MAX_DIALED_NUMBER: usize = 39;
const MAX_CALL_VARIABLE: usize = 40;
const MAX_AGENT_ID: usize = 11;
/// AgentInstrument, AgentPassword (S64).
const MAX_S64: usize = 63;
/// One NamedVariable: name, NUL, value, NUL (docs/protocol.md §12).
const MAX_NAMED_VARIABLE: usize = 251;
/// Every NamedVariable of one message together (docs/protocol.md §2.6).
const MAX_NAMED_TOTAL: usize = 2000;

/// The agent states `ctl state` sets (docs/protocol.md §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StateChange {
    Ready,
    NotReady,
    Login,
    Logout,
    WorkReady,
    WorkNotReady,
}

impl StateChange {
    /// The AgentState value of SET_AGENT_STATE_REQ.
    pub fn agent_state(self) -> u16 {
        match self {
            StateChange::Ready => agent_state::AVAILABLE,
            StateChange::NotReady => agent_state::NOT_READY,
            StateChange::Login => agent_state::LOGIN,
            StateChange::Logout => agent_state::LOGOUT,
            StateChange::WorkReady => agent_state::WORK_READY,
            StateChange::WorkNotReady => agent_state::WORK_NOT_READY,
        }
    }
}

/// How a consultation ends.
/// SupervisoryAction of `supervise --action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SuperviseAction {
    Monitor,
    Whisper,
    BargeIn,
    Intercept,
    Clear,
}

impl SuperviseAction {
    pub fn code(self) -> u16 {
        match self {
            SuperviseAction::Monitor => supervisory_action::MONITOR,
            SuperviseAction::Whisper => supervisory_action::WHISPER,
            SuperviseAction::BargeIn => supervisory_action::BARGE_IN,
            SuperviseAction::Intercept => supervisory_action::INTERCEPT,
            SuperviseAction::Clear => supervisory_action::CLEAR,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    Transfer,
    Conference,
}

/// Call variables and named variables for SET_CALL_DATA_REQ.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallData {
    /// CallVariable1 … CallVariable10.
    pub variables: [Option<String>; 10],
    /// NamedVariable name and value, in the order given.
    pub named: Vec<(String, String)>,
}

/// One `ctl` command, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    State {
        change: StateChange,
        reason: Option<u16>,
        agent_password: Option<String>,
    },
    Call {
        number: String,
    },
    Answer,
    Hold,
    Retrieve,
    Hangup,
    /// `transfer` / `conference`: consult `ext` first, or complete the
    /// consultation already at the device.
    Consult {
        kind: Completion,
        ext: Option<String>,
    },
    SetData(Box<CallData>),
    Snapshot,
    /// SUPERVISE_CALL_REQ on the active call of this agent (AgentID).
    Supervise {
        agent: String,
        action: u16,
    },
    /// MONITOR_AGENT_TEAM_START_REQ for this TeamID.
    Team {
        team_id: u32,
    },
}

fn check_len(what: &str, value: &str, max: usize) -> Result<(), String> {
    match value.len() > max {
        true => Err(format!("{what} {value:?} is longer than {max} bytes")),
        false => Ok(()),
    }
}

fn check_number(what: &str, number: &str) -> Result<(), String> {
    if number.is_empty() {
        return Err(format!("{what} is empty"));
    }
    check_len(what, number, MAX_DIALED_NUMBER)
}

impl Action {
    /// `state STATE [--reason N] [--agent-password P]`.
    pub fn state(
        change: StateChange,
        reason: Option<u16>,
        agent_password: Option<String>,
    ) -> Result<Action, String> {
        if reason.is_some() && !matches!(change, StateChange::NotReady | StateChange::Logout) {
            return Err("--reason goes with not-ready or logout".into());
        }
        if let Some(p) = &agent_password {
            check_len("--agent-password", p, MAX_S64)?;
        }
        Ok(Action::State {
            change,
            reason,
            agent_password,
        })
    }

    pub fn call(number: &str) -> Result<Action, String> {
        check_number("the number to call", number)?;
        Ok(Action::Call {
            number: number.into(),
        })
    }

    pub fn consult(kind: Completion, ext: Option<&str>) -> Result<Action, String> {
        if let Some(ext) = ext {
            check_number("the extension to consult", ext)?;
        }
        Ok(Action::Consult {
            kind,
            ext: ext.map(Into::into),
        })
    }

    /// `set-data --var N=VALUE ... --named NAME=VALUE ...`.
    pub fn set_data(vars: &[String], named: &[String]) -> Result<Action, String> {
        if vars.is_empty() && named.is_empty() {
            return Err("set-data needs --var N=VALUE or --named NAME=VALUE".into());
        }
        let mut data = CallData::default();
        for var in vars {
            let (n, value) = var
                .split_once('=')
                .ok_or_else(|| format!("--var {var:?}: give N=VALUE"))?;
            let slot = n
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=10).contains(n))
                .and_then(|n| data.variables.get_mut(n - 1))
                .ok_or_else(|| format!("--var {var:?}: N is a call variable number, 1 to 10"))?;
            if slot.is_some() {
                return Err(format!("--var {n} is given twice"));
            }
            check_len(
                &format!("CallVariable{}", n.trim()),
                value,
                MAX_CALL_VARIABLE,
            )?;
            *slot = Some(value.into());
        }
        let mut total = 0;
        for var in named {
            let (name, value) = var
                .split_once('=')
                .filter(|(name, _)| !name.is_empty())
                .ok_or_else(|| format!("--named {var:?}: give NAME=VALUE"))?;
            let size = name.len() + value.len() + 2;
            if size > MAX_NAMED_VARIABLE {
                return Err(format!(
                    "--named {name}: name and value take {size} bytes, at most {MAX_NAMED_VARIABLE}"
                ));
            }
            total += size;
            data.named.push((name.into(), value.into()));
        }
        if total > MAX_NAMED_TOTAL {
            return Err(format!(
                "the named variables take {total} bytes, at most {MAX_NAMED_TOTAL} in one message"
            ));
        }
        Ok(Action::SetData(Box::new(data)))
    }

    /// `supervise AGENT --action A` / `barge-in AGENT`.
    pub fn supervise(agent: &str, action: SuperviseAction) -> Result<Action, String> {
        check_len("AGENT", agent, MAX_AGENT_ID)?;
        Ok(Action::Supervise {
            agent: agent.into(),
            action: action.code(),
        })
    }

    /// The services the session asks for: Client Events and Client
    /// Control, and Call Data Update for `set-data`, Supervisor for the
    /// supervisor's commands.
    pub fn services(&self) -> u32 {
        let base = service::CLIENT_EVENTS | service::CLIENT_CONTROL;
        match self {
            Action::SetData(_) => base | service::CALL_DATA_UPDATE,
            Action::Supervise { .. } | Action::Team { .. } => base | service::SUPERVISOR,
            _ => base,
        }
    }

    /// Whether the command acts on a call it finds with SNAPSHOT_DEVICE_REQ.
    pub fn needs_snapshot(&self) -> bool {
        !matches!(
            self,
            Action::State { .. }
                | Action::Call { .. }
                | Action::Snapshot
                | Action::Supervise { .. }
                | Action::Team { .. }
        )
    }
}

/// Whether what OPEN_CONF granted is enough for the command; the error
/// says what is missing and where the router grants it.
pub fn check_granted(action: &Action, granted: u32) -> Result<(), String> {
    let hint = "the router grants it only to ClientIDs listed in [[clients]] with that service, \
                and only when the CTI Server granted it to the router (docs/requests.md §3)";
    if matches!(action, Action::Supervise { .. } | Action::Team { .. }) {
        if granted & service::SUPERVISOR == 0 {
            return Err(format!(
                "services granted 0x{granted:x}, without Supervisor (0x80): the CTI Server \
                 grants it to a supervisor's agent only"
            ));
        }
        return Ok(());
    }
    let state_only = granted & service::AGENT_STATE_CONTROL_ONLY != 0;
    let needed = match action {
        Action::State { .. } => service::CLIENT_CONTROL | service::AGENT_STATE_CONTROL_ONLY,
        _ => service::CLIENT_CONTROL,
    };
    if granted & needed == 0 {
        return Err(match state_only {
            true => format!(
                "services granted 0x{granted:x}: agent state control only (0x2000), \
                 no call control: {hint}"
            ),
            false => {
                format!("services granted 0x{granted:x}, without Client Control (0x4): {hint}")
            }
        });
    }
    if matches!(action, Action::SetData(_)) && granted & service::CALL_DATA_UPDATE == 0 {
        return Err(format!(
            "services granted 0x{granted:x}, without Call Data Update (0x2): {hint}"
        ));
    }
    Ok(())
}

/// Who the session acts for: the AgentID given, the instrument given or
/// learnt from OPEN_CONF, and the PeripheralID given or the one peripheral
/// OPEN_CONF lists (else NULL, which the router replaces with the session's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub peripheral_id: u32,
    pub agent_id: String,
    pub instrument: Option<String>,
}

impl Agent {
    pub fn new(
        agent_id: &str,
        instrument: Option<&str>,
        peripheral_id: Option<u32>,
        conf: &OpenConf,
    ) -> Agent {
        let learnt = conf
            .agent_instrument
            .as_ref()
            .filter(|i| !i.is_empty())
            .map(|i| i.to_str_lossy().into_owned());
        let listed: Vec<u32> = conf
            .peripherals
            .iter()
            .filter_map(|p| p.peripheral_id)
            .filter(|&id| id != NULL_PERIPHERAL_ID)
            .collect();
        let peripheral_id = match (peripheral_id, &listed[..]) {
            (Some(id), _) => id,
            (None, [only]) => *only,
            (None, _) => NULL_PERIPHERAL_ID,
        };
        Agent {
            peripheral_id,
            agent_id: agent_id.into(),
            instrument: instrument.map(Into::into).or(learnt),
        }
    }

    pub(super) fn instrument(&self) -> Option<CtiString> {
        self.instrument.as_deref().map(Into::into)
    }
}

/// AgentID of `--agent`, checked before connecting.
pub fn check_agent(agent_id: &str, instrument: Option<&str>) -> Result<(), String> {
    if agent_id.is_empty() {
        return Err("--agent is empty".into());
    }
    check_len("--agent", agent_id, MAX_AGENT_ID)?;
    if let Some(i) = instrument {
        check_len("--instrument", i, MAX_S64)?;
    }
    Ok(())
}

/// One connection at the agent's device, as SNAPSHOT_DEVICE_CONF lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    pub call_id: u32,
    pub device_id_type: u16,
    pub device_id: CtiString,
    /// LocalConnectionState.
    pub state: u16,
}

impl std::fmt::Display for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "call {} at {:?} {}",
            self.call_id,
            self.device_id,
            lcs_name(self.state)
        )
    }
}

/// The connections SNAPSHOT_DEVICE_CONF lists (an entry without a call id
/// or a device is skipped: it names nothing to act on).
pub fn connections(conf: &SnapshotDeviceConf) -> Vec<Conn> {
    conf.calls
        .iter()
        .filter_map(|c| {
            Some(Conn {
                call_id: c.connection_call_id?,
                device_id_type: c.connection_device_id_type.unwrap_or(0),
                device_id: c.connection_device_id.clone()?,
                state: c.call_state.unwrap_or(lcs::NONE),
            })
        })
        .collect()
}

fn list(conns: &[&Conn]) -> String {
    match conns {
        [] => "no calls there".into(),
        _ => conns
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// What a call command acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    One(Conn),
    /// A consultation to complete: the original call on hold, the consult call.
    HeldAndActive {
        held: Conn,
        active: Conn,
    },
}

/// The one connection in one of `states` (skipping call `except`).
fn only_in(
    conns: &[Conn],
    states: &[u16],
    what: &str,
    except: Option<u32>,
) -> Result<Conn, String> {
    let all: Vec<&Conn> = conns.iter().collect();
    let found: Vec<&Conn> = conns
        .iter()
        .filter(|c| states.contains(&c.state) && Some(c.call_id) != except)
        .collect();
    match found[..] {
        [one] => Ok(one.clone()),
        [] => Err(format!(
            "no {what} call at the agent's device ({})",
            list(&all)
        )),
        _ => Err(format!(
            "{} {what} calls at the agent's device ({}): choose one with --call ID",
            found.len(),
            list(&found)
        )),
    }
}

fn by_id(conns: &[Conn], id: u32) -> Result<Conn, String> {
    let all: Vec<&Conn> = conns.iter().collect();
    conns
        .iter()
        .find(|c| c.call_id == id)
        .cloned()
        .ok_or_else(|| format!("call {id} is not at the agent's device ({})", list(&all)))
}

/// The call a command acts on, from the device's connections by their
/// LocalConnectionState (`call`, from `--call`, picks by ConnectionCallID
/// instead): `answer` the alerting one; `hold`, `set-data` and a consult
/// the connected one; `hangup` the connected one, else one still being
/// dialled (LCS_INITIATE); `retrieve` the held one; completing a
/// consultation the held one (or `call`) and the other, connected, one.
pub fn pick(action: &Action, conns: &[Conn], call: Option<u32>) -> Result<Target, String> {
    let one = |states: &[u16], what: &str| match call {
        Some(id) => by_id(conns, id),
        None => only_in(conns, states, what, None),
    };
    let conn = match action {
        Action::Answer => one(&[lcs::ALERTING], "alerting")?,
        Action::Hold | Action::SetData(_) | Action::Consult { ext: Some(_), .. } => {
            one(&[lcs::CONNECT], "connected")?
        }
        Action::Hangup => match (call, conns.iter().any(|c| c.state == lcs::CONNECT)) {
            (None, false) => only_in(conns, &[lcs::INITIATE], "connected (or dialling)", None)?,
            _ => one(&[lcs::CONNECT], "connected")?,
        },
        Action::Retrieve => one(&[lcs::HOLD], "held")?,
        Action::Consult { ext: None, .. } => {
            let held = one(&[lcs::HOLD], "held")?;
            let active = only_in(conns, &[lcs::CONNECT], "connected", Some(held.call_id))
                .map_err(|e| format!("{e}; the consult call to complete"))?;
            return Ok(Target::HeldAndActive { held, active });
        }
        Action::State { .. }
        | Action::Call { .. }
        | Action::Snapshot
        | Action::Supervise { .. }
        | Action::Team { .. } => return Err("this command acts on no call".into()),
    };
    Ok(Target::One(conn))
}

/// What a failure answer says, with its code's name; `None` for a CONF.
pub fn failure(answer: &Message) -> Option<String> {
    let text = |t: &Option<CtiString>| match t {
        Some(t) if !t.is_empty() => format!(": {t}"),
        _ => String::new(),
    };
    match answer {
        Message::FailureConf(f) => Some(format!(
            "FAILURE_CONF {} ({}){}",
            status_name(f.status),
            f.status,
            text(&f.text)
        )),
        Message::ControlFailureConf(c) => Some(format!(
            "CONTROL_FAILURE_CONF {} ({}), peripheral error {}{}",
            control_failure_name(c.failure_code),
            c.failure_code,
            c.peripheral_error_code,
            text(&c.text)
        )),
        _ => None,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::proto::constants::{connection_type, control_failure, status};
    use crate::proto::group::{DeviceCall, PeripheralEntry};
    use crate::proto::msg::{ConsultationCallConf, ControlFailureConf, FailureConf};

    pub(in crate::tools) fn agent() -> Agent {
        Agent {
            peripheral_id: 5000,
            agent_id: "1001".into(),
            instrument: Some("3001".into()),
        }
    }

    pub(in crate::tools) fn conn(call_id: u32, state: u16) -> Conn {
        Conn {
            call_id,
            device_id_type: connection_type::DYNAMIC,
            device_id: "3001".into(),
            state,
        }
    }

    #[test]
    fn the_call_is_picked_by_its_connection_state() {
        let conns = [
            conn(1, lcs::HOLD),
            conn(2, lcs::CONNECT),
            conn(3, lcs::ALERTING),
        ];
        let picked = |a: &Action| match pick(a, &conns, None) {
            Ok(Target::One(c)) => c.call_id,
            other => panic!("{a:?}: {other:?}"),
        };
        assert_eq!(picked(&Action::Answer), 3);
        assert_eq!(picked(&Action::Hold), 2);
        assert_eq!(picked(&Action::Hangup), 2);
        assert_eq!(picked(&Action::Retrieve), 1);
        assert_eq!(
            picked(&Action::consult(Completion::Transfer, Some("3002")).unwrap()),
            2
        );
        // --call overrides the state.
        assert_eq!(
            pick(&Action::Hangup, &conns, Some(1)),
            Ok(Target::One(conns[0].clone()))
        );
        let e = pick(&Action::Hold, &conns, Some(9)).unwrap_err();
        assert!(e.contains("call 9 is not at"), "{e}");
    }

    #[test]
    fn no_call_or_several_calls_in_the_state_are_errors_that_say_so() {
        let e = pick(&Action::Answer, &[conn(2, lcs::CONNECT)], None).unwrap_err();
        assert!(
            e.contains("no alerting call") && e.contains("call 2"),
            "{e}"
        );
        assert!(e.contains("LCS_CONNECT"), "{e}");
        let e = pick(&Action::Retrieve, &[], None).unwrap_err();
        assert!(
            e.contains("no held call") && e.contains("no calls there"),
            "{e}"
        );
        let two = [conn(2, lcs::CONNECT), conn(4, lcs::CONNECT)];
        let e = pick(&Action::Hold, &two, None).unwrap_err();
        assert!(
            e.contains("2 connected calls") && e.contains("--call"),
            "{e}"
        );
        // Hang up a call still being dialled when none is connected.
        assert_eq!(
            pick(&Action::Hangup, &[conn(5, lcs::INITIATE)], None),
            Ok(Target::One(conn(5, lcs::INITIATE)))
        );
        assert!(pick(&Action::Snapshot, &two, None).is_err());
    }

    #[test]
    fn the_snapshot_lists_connections_and_skips_entries_naming_nothing() {
        let conf = SnapshotDeviceConf {
            num_calls: 2,
            calls: vec![
                DeviceCall {
                    connection_call_id: Some(4),
                    connection_device_id_type: Some(connection_type::STATIC),
                    connection_device_id: Some("3001".into()),
                    call_state: Some(lcs::HOLD),
                    silent_monitor_status: None,
                },
                DeviceCall {
                    connection_call_id: Some(5),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let conns = connections(&conf);
        assert_eq!(conns.len(), 1);
        assert_eq!(conns[0].device_id_type, connection_type::STATIC);
        assert_eq!(conns[0].to_string(), "call 4 at \"3001\" LCS_HOLD");
    }

    #[test]
    fn failures_are_named() {
        let control = Message::from(ControlFailureConf {
            invoke_id: 1,
            failure_code: 24,
            peripheral_error_code: 7,
            text: Some("busy".into()),
            ..Default::default()
        });
        assert_eq!(
            failure(&control).unwrap(),
            "CONTROL_FAILURE_CONF CF_NO_ACTIVE_CALL (24), peripheral error 7: busy"
        );
        let f = Message::from(FailureConf {
            invoke_id: 1,
            status: status::E_CTI_FUNCTION_NOT_AVAILABLE,
            text: None,
        });
        assert_eq!(
            failure(&f).unwrap(),
            "FAILURE_CONF E_CTI_FUNCTION_NOT_AVAILABLE (12)"
        );
        let privilege = Message::from(ControlFailureConf {
            failure_code: control_failure::CF_PRIVILEGE_VIOLATION_ON_SPECIFIED_DEVICE,
            ..Default::default()
        });
        assert!(failure(&privilege)
            .unwrap()
            .contains("CF_PRIVILEGE_VIOLATION_ON_SPECIFIED_DEVICE"));
        assert_eq!(
            failure(&Message::from(ConsultationCallConf::default())),
            None
        );
    }

    #[test]
    fn grants_are_checked_per_command() {
        let ce = service::CLIENT_EVENTS;
        let state = Action::state(StateChange::Ready, None, None).unwrap();
        let data = Action::set_data(&["1=a".into()], &[]).unwrap();
        assert_eq!(state.services(), ce | service::CLIENT_CONTROL);
        assert_eq!(
            data.services(),
            ce | service::CLIENT_CONTROL | service::CALL_DATA_UPDATE
        );
        let e = check_granted(&Action::Hold, ce).unwrap_err();
        assert!(e.contains("[[clients]]") && e.contains("0x1,"), "{e}");
        assert!(check_granted(&state, ce | service::AGENT_STATE_CONTROL_ONLY).is_ok());
        let e = check_granted(&Action::Hold, ce | service::AGENT_STATE_CONTROL_ONLY).unwrap_err();
        assert!(e.contains("agent state control only"), "{e}");
        assert!(check_granted(&data, ce | service::CLIENT_CONTROL).is_err());
        assert!(check_granted(&data, data.services()).is_ok());
    }

    #[test]
    fn the_agent_completes_itself_from_open_conf() {
        let conf = OpenConf {
            agent_instrument: Some("3007".into()),
            peripherals: vec![PeripheralEntry {
                peripheral_id: Some(5000),
                multiline_agent_control: Some(0),
            }],
            ..Default::default()
        };
        let a = Agent::new("1001", None, None, &conf);
        assert_eq!(
            (a.peripheral_id, a.instrument.as_deref()),
            (5000, Some("3007"))
        );
        let a = Agent::new("1001", Some("3001"), Some(7), &conf);
        assert_eq!(
            (a.peripheral_id, a.instrument.as_deref()),
            (7, Some("3001"))
        );
        let a = Agent::new("1001", None, None, &OpenConf::default());
        assert_eq!((a.peripheral_id, a.instrument), (NULL_PERIPHERAL_ID, None));
        assert!(check_agent("", None).is_err());
        assert!(check_agent("123456789012", None).is_err());
        assert!(check_agent("1001", Some("3001")).is_ok());
    }
}
