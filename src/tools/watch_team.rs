//! `watch --team TEAM_ID`, without I/O: the team monitor's life (its
//! MONITOR_AGENT_TEAM_START_REQ, the MonitorID its CONF gives, the
//! MONITOR_AGENT_TEAM_STOP_REQ at the end; the requests are `ctl team`'s,
//! from `ctl_requests`) and how the team's messages are printed.
//!
//! A team line starts `TEAM <id> ` when readable and has a `"team"` key in
//! JSON, so it stands out among the supervisor's own Client Events (printed
//! as `watch --agent` prints them):
//!
//! * AGENT_TEAM_CONFIG_EVENT of the team: `TEAM 2 CONFIG name="Team 2"
//!   agents=11 operation=restore`, then `TEAM 2 MEMBER agent=1012
//!   state=NOT_READY flags=0 duration=0` per member (JSON: one object, the
//!   members in `"members"`); the configuration of the supervisor's other
//!   teams is left out;
//! * AGENT_STATE_EVENT with the team monitor's MonitorID: `TEAM 2 STATE
//!   agent=1013 state=NOT_READY reason=12 ext=3013 duration=0 ...` (JSON:
//!   `{"type":"AGENT_STATE_EVENT","team":2,"agent_id":"1013",
//!   "state":"NOT_READY","reason_code":12,"fields":{...}}`).
//!
//! The CTI Server may send the team's first events before the CONF that
//! says which MonitorID is the team's; until it comes, AGENT_STATE_EVENTs
//! with a MonitorID other than the session's are held, then printed.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::cti_names::agent_state_name;
use super::ctl_requests;
use super::watch_format;
use crate::proto::msg::{AgentStateEvent, AgentTeamConfigEvent};
use crate::proto::{decode_frame, CtiString, DecodeOptions, Message, Version};

/// Longest wait for the answer to MONITOR_AGENT_TEAM_START_REQ (the router
/// answers every request within `[requests] timeout_secs`, default 15 s).
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// At most this many frames are held while the start is unanswered.
const MAX_HELD: usize = 10_000;
/// AgentFlags of a team member (docs/protocol.md §4.6).
const PRIMARY_SUPERVISOR: u16 = 1;
const TEMPORARY_AGENT: u16 = 2;
const SUPERVISOR: u16 = 4;
/// SkillGroupState / SkillGroupNumber when the event is not about one group.
const NULL_SKILL_GROUP: u32 = 0xFFFF_FFFF;

/// Where the team monitor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Monitor {
    /// No MONITOR_AGENT_TEAM_START_REQ sent yet (the session is not open).
    NotStarted,
    /// Sent with this InvokeID, at this time; no answer yet.
    Starting { invoke_id: u32, since: Instant },
    /// Started: the team monitor's MonitorID.
    Running { monitor_id: u32 },
    /// MONITOR_AGENT_TEAM_STOP_REQ sent with this InvokeID (its events
    /// are still the team's until the CONF).
    Stopping { invoke_id: u32, monitor_id: u32 },
}

/// One team watched by a supervisor session.
#[derive(Debug)]
pub struct TeamWatch {
    team_id: u32,
    json: bool,
    /// The session's own MonitorID (OPEN_CONF): its Client Events carry it.
    session_monitor_id: u32,
    monitor: Monitor,
    /// Frames that may be the team's, waiting for the start's CONF.
    held: Vec<Vec<u8>>,
}

impl TeamWatch {
    pub fn new(team_id: u32, json: bool) -> TeamWatch {
        TeamWatch {
            team_id,
            json,
            session_monitor_id: 0,
            monitor: Monitor::NotStarted,
            held: Vec::new(),
        }
    }

    pub fn team_id(&self) -> u32 {
        self.team_id
    }

    /// The session is open (its OPEN_CONF MonitorID): the start request to
    /// send, with `invoke_id`.
    pub fn start(&mut self, session_monitor_id: u32, invoke_id: u32, now: Instant) -> Message {
        self.session_monitor_id = session_monitor_id;
        self.monitor = Monitor::Starting {
            invoke_id,
            since: now,
        };
        ctl_requests::team_start_request(self.team_id, invoke_id)
    }

    /// Whether `invoke_id` is the start request's (its FAILURE_CONF ends the watch).
    pub fn is_start(&self, invoke_id: u32) -> bool {
        matches!(self.monitor, Monitor::Starting { invoke_id: id, .. } if id == invoke_id)
    }

    /// Whether `invoke_id` is the stop request's.
    pub fn is_stop(&self, invoke_id: u32) -> bool {
        matches!(self.monitor, Monitor::Stopping { invoke_id: id, .. } if id == invoke_id)
    }

    /// Whether the start has gone unanswered for [`START_TIMEOUT`].
    pub fn start_overdue(&self, now: Instant) -> bool {
        matches!(self.monitor, Monitor::Starting { since, .. } if now >= since + START_TIMEOUT)
    }

    /// The team monitor's MonitorID, once started.
    pub fn monitor_id(&self) -> Option<u32> {
        match self.monitor {
            Monitor::Running { monitor_id } => Some(monitor_id),
            _ => None,
        }
    }

    /// The stop request (with `invoke_id`) if a team monitor runs.
    pub fn stop(&mut self, invoke_id: u32) -> Option<Message> {
        let monitor_id = self.monitor_id()?;
        self.monitor = Monitor::Stopping {
            invoke_id,
            monitor_id,
        };
        Some(ctl_requests::team_stop_request(monitor_id, invoke_id))
    }

    /// The lines to print for a frame the session received (none while it
    /// is held, several when the start's CONF releases held frames).
    pub fn lines(&mut self, frame: &[u8], version: Version) -> Vec<String> {
        let message = decode_frame(frame, version, DecodeOptions::COUNTS_UNCHECKED).map(|(m, _)| m);
        let Ok(message) = message else {
            return vec![self.plain(frame, version)];
        };
        match &message {
            Message::MonitorAgentTeamStartConf(conf) if self.is_start(conf.invoke_id) => {
                self.monitor = Monitor::Running {
                    monitor_id: conf.monitor_id,
                };
                let mut lines = vec![self.plain(frame, version)];
                for held in std::mem::take(&mut self.held) {
                    lines.extend(self.lines(&held, version));
                }
                lines
            }
            Message::AgentTeamConfigEvent(e) if e.team_id == self.team_id => {
                self.config_lines(e, frame, version)
            }
            // Another of the supervisor's teams.
            Message::AgentTeamConfigEvent(_) => Vec::new(),
            Message::AgentStateEvent(e) => match self.monitor {
                Monitor::Running { monitor_id } | Monitor::Stopping { monitor_id, .. }
                    if e.monitor_id == monitor_id =>
                {
                    vec![self.state_line(e, frame, version)]
                }
                Monitor::Starting { .. }
                    if e.monitor_id != 0
                        && e.monitor_id != self.session_monitor_id
                        && self.held.len() < MAX_HELD =>
                {
                    self.held.push(frame.to_vec());
                    Vec::new()
                }
                _ => vec![self.plain(frame, version)],
            },
            _ => vec![self.plain(frame, version)],
        }
    }

    fn plain(&self, frame: &[u8], version: Version) -> String {
        watch_format::line(frame, version, self.json)
    }

    fn config_lines(
        &self,
        e: &AgentTeamConfigEvent,
        frame: &[u8],
        version: Version,
    ) -> Vec<String> {
        let team = self.team_id;
        if self.json {
            let members: Vec<Value> = e
                .members
                .iter()
                .map(|m| {
                    let flags = m.flags.unwrap_or(0);
                    let state = m.state.unwrap_or(u16::MAX);
                    json!({
                        "agent_id": text(&m.agent_id),
                        "state": agent_state_name(state),
                        "agent_state": m.state,
                        "flags": flags,
                        "supervisor": flags & (SUPERVISOR | PRIMARY_SUPERVISOR) != 0,
                        "state_duration": m.state_duration,
                    })
                })
                .collect();
            return vec![with_team(
                &watch_format::json(frame, version),
                team,
                [
                    ("agent_team_name", json!(text(&e.agent_team_name))),
                    (
                        "config_operation",
                        json!(operation_name(e.config_operation)),
                    ),
                    ("members", Value::Array(members)),
                ],
            )];
        }
        let mut lines = vec![format!(
            "TEAM {team} CONFIG name={:?} agents={} operation={} peripheral_id={}",
            text(&e.agent_team_name),
            e.members.len(),
            operation_name(e.config_operation),
            e.peripheral_id
        )];
        for m in &e.members {
            let flags = m.flags.unwrap_or(0);
            let mut line = format!(
                "TEAM {team} MEMBER agent={} state={} flags={flags}",
                text(&m.agent_id),
                m.state.map_or("UNKNOWN", agent_state_name),
            );
            for (bit, name) in [
                (PRIMARY_SUPERVISOR, "primary-supervisor"),
                (SUPERVISOR, "supervisor"),
                (TEMPORARY_AGENT, "temporary"),
            ] {
                if flags & bit != 0 {
                    line.push(' ');
                    line.push_str(name);
                }
            }
            if let Some(d) = m.state_duration {
                line.push_str(&format!(" duration={d}"));
            }
            lines.push(line);
        }
        lines
    }

    fn state_line(&self, e: &AgentStateEvent, frame: &[u8], version: Version) -> String {
        let team = self.team_id;
        let agent = text(&e.agent_id);
        let state = agent_state_name(e.agent_state);
        if self.json {
            return with_team(
                &watch_format::json(frame, version),
                team,
                [
                    ("agent_id", json!(agent)),
                    ("state", json!(state)),
                    ("reason_code", json!(e.event_reason_code)),
                ],
            );
        }
        let mut line = format!(
            "TEAM {team} STATE agent={agent} state={state} reason={}",
            e.event_reason_code
        );
        let ext = e.agent_extension.as_ref().or(e.agent_instrument.as_ref());
        if let Some(ext) = ext.filter(|x| !x.is_empty()) {
            line.push_str(&format!(" ext={}", ext.to_str_lossy()));
        }
        line.push_str(&format!(" duration={}", e.state_duration));
        if e.skill_group_number != NULL_SKILL_GROUP {
            line.push_str(&format!(
                " skill_group={} group_state={}",
                e.skill_group_number,
                agent_state_name(e.skill_group_state)
            ));
        }
        if let Some(next) = e.next_agent_state {
            line.push_str(&format!(" next={}", agent_state_name(next)));
        }
        line.push_str(&format!(" monitor_id={}", e.monitor_id));
        line
    }
}

fn text(s: &Option<CtiString>) -> String {
    s.as_ref()
        .map(|s| s.to_str_lossy().into_owned())
        .unwrap_or_default()
}

/// ConfigOperation of AGENT_TEAM_CONFIG_EVENT (docs/protocol.md §4.6).
fn operation_name(op: u16) -> String {
    match op {
        0 => "restore".into(),
        1 => "add".into(),
        2 => "remove".into(),
        other => other.to_string(),
    }
}

/// `watch_format::json`'s object with `"team"` and these keys added.
fn with_team<const N: usize>(line: &str, team: u32, extra: [(&str, Value); N]) -> String {
    let mut object = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(object)) => object,
        _ => Map::new(),
    };
    object.insert("team".into(), json!(team));
    for (key, value) in extra {
        object.insert(key.into(), value);
    }
    Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::group::TeamMember;
    use crate::proto::msg::{FailureConf, MonitorAgentTeamStartConf};

    fn v() -> Version {
        Version::MAX
    }

    fn frame(m: impl Into<Message>) -> Vec<u8> {
        m.into().to_frame(v()).unwrap()
    }

    fn state(monitor_id: u32, agent: &str, agent_state: u16, reason: u16) -> Vec<u8> {
        frame(AgentStateEvent {
            monitor_id,
            agent_state,
            event_reason_code: reason,
            skill_group_number: NULL_SKILL_GROUP,
            agent_id: Some(agent.into()),
            agent_extension: Some(format!("3{}", &agent[1..]).as_str().into()),
            ..Default::default()
        })
    }

    fn config(team_id: u32) -> Vec<u8> {
        let member = |id: &str, flags: u16| TeamMember {
            agent_id: Some(id.into()),
            flags: Some(flags),
            state: Some(2),
            state_duration: Some(0),
        };
        frame(AgentTeamConfigEvent {
            peripheral_id: 5000,
            team_id,
            agent_team_name: Some(format!("Team {team_id}").as_str().into()),
            members: vec![member("1011", 5), member("1012", 0)],
            ..Default::default()
        })
    }

    fn started(json: bool) -> TeamWatch {
        let mut t = TeamWatch::new(2, json);
        let now = Instant::now();
        let Message::MonitorAgentTeamStartReq(r) = t.start(9, 4, now) else {
            panic!("not a start request")
        };
        assert_eq!((r.invoke_id, r.team_id), (4, 2));
        let conf = frame(MonitorAgentTeamStartConf {
            invoke_id: 4,
            monitor_id: 7,
        });
        let lines = t.lines(&conf, v());
        assert_eq!(lines.len(), 1);
        assert_eq!(t.monitor_id(), Some(7));
        t
    }

    #[test]
    fn the_team_monitors_states_are_team_lines_and_the_rest_plain() {
        let mut t = started(false);
        let lines = t.lines(&state(7, "1013", 2, 12), v());
        assert_eq!(
            lines,
            ["TEAM 2 STATE agent=1013 state=NOT_READY reason=12 ext=3013 duration=0 monitor_id=7"]
        );
        // The supervisor's own Client Events (its session's MonitorID).
        let own = t.lines(&state(9, "1011", 3, 0), v());
        assert!(own[0].starts_with("AGENT_STATE_EVENT "), "{own:?}");
        let failure = frame(FailureConf {
            invoke_id: 99,
            status: 12,
            text: None,
        });
        assert!(t.lines(&failure, v())[0].starts_with("FAILURE_CONF"));
    }

    #[test]
    fn the_teams_config_lists_its_members_and_other_teams_are_left_out() {
        let mut t = started(false);
        let lines = t.lines(&config(2), v());
        assert_eq!(
            lines,
            [
                "TEAM 2 CONFIG name=\"Team 2\" agents=2 operation=restore peripheral_id=5000",
                "TEAM 2 MEMBER agent=1011 state=NOT_READY flags=5 primary-supervisor supervisor duration=0",
                "TEAM 2 MEMBER agent=1012 state=NOT_READY flags=0 duration=0",
            ]
        );
        assert!(t.lines(&config(1), v()).is_empty());
    }

    #[test]
    fn json_team_lines_keep_the_fields_and_add_the_team() {
        let mut t = started(true);
        let line = &t.lines(&state(7, "1013", 2, 12), v())[0];
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["type"], "AGENT_STATE_EVENT");
        assert_eq!(
            (&v["team"], &v["agent_id"], &v["state"], &v["reason_code"]),
            (&json!(2), &json!("1013"), &json!("NOT_READY"), &json!(12))
        );
        assert_eq!(v["fields"]["agent_id"], "1013");
        let line = &t.lines(&config(2), Version::MAX)[0];
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            (&v["type"], &v["team"]),
            (&json!("AGENT_TEAM_CONFIG_EVENT"), &json!(2))
        );
        assert_eq!(v["members"][0]["agent_id"], "1011");
        assert_eq!(v["members"][0]["supervisor"], true);
        assert_eq!(v["members"][1]["state"], "NOT_READY");
        // Not the team's: as `watch --agent --json`, no "team".
        let own: Value =
            serde_json::from_str(&t.lines(&state(9, "1011", 3, 0), Version::MAX)[0]).unwrap();
        assert!(own.get("team").is_none(), "{own}");
    }

    #[test]
    fn events_before_the_conf_are_held_until_it_names_the_monitor() {
        let mut t = TeamWatch::new(2, false);
        let now = Instant::now();
        t.start(9, 4, now);
        assert!(t.is_start(4) && !t.is_start(5));
        assert!(t.lines(&state(7, "1012", 2, 0), v()).is_empty(), "held");
        assert!(t.lines(&state(8, "1019", 2, 0), v()).is_empty(), "held");
        // The session's own events are not held.
        assert_eq!(t.lines(&state(9, "1011", 3, 0), v()).len(), 1);
        assert!(!t.start_overdue(now + Duration::from_secs(1)));
        assert!(t.start_overdue(now + START_TIMEOUT));
        let conf = frame(MonitorAgentTeamStartConf {
            invoke_id: 4,
            monitor_id: 7,
        });
        let lines = t.lines(&conf, v());
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].starts_with("MONITOR_AGENT_TEAM_START_CONF"));
        assert!(lines[1].starts_with("TEAM 2 STATE agent=1012"), "{lines:?}");
        assert!(
            lines[2].starts_with("AGENT_STATE_EVENT "),
            "another monitor's"
        );
        assert!(!t.start_overdue(now + START_TIMEOUT));
    }

    #[test]
    fn the_stop_ends_the_monitor_it_started() {
        let mut t = TeamWatch::new(2, false);
        assert!(t.stop(1).is_none(), "nothing to stop before the start");
        let mut t = started(false);
        let Some(Message::MonitorAgentTeamStopReq(r)) = t.stop(5) else {
            panic!("no stop request")
        };
        assert_eq!((r.invoke_id, r.monitor_id), (5, 7));
        assert!(t.is_stop(5));
        assert_eq!(t.monitor_id(), None);
        assert!(t.stop(6).is_none(), "stopped once");
    }
}
