//! Teams and supervisors of the simulated PG, and the Supervisor service
//! requests it answers (docs/requests.md §7, §9).
//!
//! Teams are fixed by agent index, so they are the same for every seed and
//! take no random draws (the stream without requests is unchanged): agents
//! are grouped [`TEAM_SIZE`] at a time in index order, team `t` has TeamID
//! `1 + t`, and the first agent of each team ("1001", "1011", …) is its
//! primary supervisor. Agent "1001" is also the site supervisor: it
//! supervises every team (so a center with more than 64 teams answers
//! LIST_AGENT_TEAM in several segments).
//!
//! Events for one supervisor are addressed ([`To`]): AGENT_TEAM_CONFIG_EVENT
//! to the supervisor's sessions, the team's AGENT_STATE_EVENTs (MonitorID =
//! the team monitor's) to the session that started the team monitor, and
//! SUPERVISOR_ASSIST_EVENT and EMERGENCY_CALL_EVENT to the supervisor's
//! sessions and every All Events session. Barge-in and intercept
//! use the conference model of `control`: the supervisor joins the call as
//! its second agent, so the conference events reach both desktops.

use super::build::{self, cause, done, some, CALL_ID_TYPE, LINE_INBOUND_ACD, PT};
use super::control::{code, fail, Answer, Failure};
use super::flow::CallStep;
use super::world::{Phase, NO_AGENT};
use super::Simulator;
use crate::proto::constants::{agent_state, device_type, lcs, status, supervisory_action};
use crate::proto::group::{Party, TeamMember};
use crate::proto::msg::*;
use crate::proto::{CtiString, Message};

/// Agents per team (the first one is its supervisor).
pub const TEAM_SIZE: u32 = 10;
/// Team ids per LIST_AGENT_TEAM_CONF (docs/protocol.md §12.5).
const TEAMS_PER_SEGMENT: usize = 64;
/// AgentFlags of AGENT_TEAM_CONFIG_EVENT (docs/protocol.md §4.6).
const PRIMARY_SUPERVISOR: u16 = 1;
const SUPERVISOR: u16 = 4;
/// "The agent's active call" / "no call" in SUPERVISE_CALL_REQ.
const ACTIVE_CALL: u32 = 0xFFFF_FFFF;

/// Whom an event of the simulator's stream is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// Every event session: the stream a CTI Server sends everyone.
    All,
    /// The Supervisor sessions of this agent (AgentID):
    /// AGENT_TEAM_CONFIG_EVENT, SUPERVISOR_ASSIST_EVENT.
    Supervisor(CtiString),
    /// The session that started this team monitor (its MonitorID).
    TeamMonitor(u32),
    /// The Supervisor sessions of this agent and every All Events session
    /// (once each): SUPERVISOR_ASSIST_EVENT and EMERGENCY_CALL_EVENT.
    SupervisorAndAllEvents(CtiString),
}

impl To {
    /// Whether the stream every event session gets (the router's All
    /// Events session upstream, the built-in simulator's) carries it.
    pub fn reaches_all_events(&self) -> bool {
        matches!(self, To::All | To::SupervisorAndAllEvents(_))
    }
}

/// See [`Simulator::help_call`].
struct Help {
    agent: u32,
    call_id: u32,
    dev: CtiString,
    to: To,
}

fn refuse<T>(status: u32) -> Result<T, Failure> {
    Err(Failure::Status(status))
}

impl Simulator {
    fn nr_teams(&self) -> u32 {
        (self.world.agents.len() as u32).div_ceil(TEAM_SIZE)
    }

    /// The team indexes agent `a` supervises (none: not a supervisor).
    fn teams_of(&self, a: u32) -> std::ops::Range<u32> {
        match a {
            0 => 0..self.nr_teams(),
            a if a % TEAM_SIZE == 0 => a / TEAM_SIZE..a / TEAM_SIZE + 1,
            _ => 0..0,
        }
    }

    /// The agent with this AgentID, extension or instrument.
    fn agent_by_any(&self, key: &[u8]) -> Option<u32> {
        let found = self.world.agents.iter().position(|agent| {
            !key.is_empty() && (agent.id.as_bytes() == key || agent.ext.as_bytes() == key)
        });
        found.map(|a| a as u32)
    }

    /// The AgentID of the supervisor named by any of these fields (an
    /// OPEN_REQ's), if that agent supervises a team.
    pub fn supervisor_named(&self, keys: &[Option<&CtiString>]) -> Option<CtiString> {
        let a = keys
            .iter()
            .flatten()
            .find_map(|key| self.agent_by_any(key.as_bytes()))?;
        (!self.teams_of(a).is_empty()).then(|| self.world.agents[a as usize].id.clone())
    }

    /// Whether the supervisor with this AgentID supervises TeamID `team_id`.
    pub fn supervises(&self, supervisor: &CtiString, team_id: u32) -> bool {
        let team = team_id.wrapping_sub(1);
        self.agent_by_any(supervisor.as_bytes())
            .is_some_and(|a| self.teams_of(a).contains(&team))
    }

    /// AGENT_TEAM_CONFIG_EVENT of every team this supervisor has: what a
    /// supervisor's session gets after its OPEN_CONF.
    pub fn team_configs(&self, supervisor: &CtiString) -> Vec<Message> {
        let Some(a) = self.agent_by_any(supervisor.as_bytes()) else {
            return Vec::new();
        };
        self.teams_of(a).map(|t| self.team_config(t)).collect()
    }

    fn team_config(&self, t: u32) -> Message {
        let first = t * TEAM_SIZE;
        let last = (first + TEAM_SIZE).min(self.world.agents.len() as u32);
        let mut members: Vec<TeamMember> = (first..last)
            .map(|a| {
                let agent = &self.world.agents[a as usize];
                let flags = if a == first {
                    PRIMARY_SUPERVISOR | SUPERVISOR
                } else {
                    0
                };
                member(&agent.id, flags, agent.state)
            })
            .collect();
        if t > 0 {
            // The site supervisor supervises every team.
            let site = &self.world.agents[0];
            members.push(member(&site.id, SUPERVISOR, site.state));
        }
        done(Message::from(AgentTeamConfigEvent {
            peripheral_id: self.config.peripheral_id,
            team_id: 1 + t,
            agent_team_name: Some(CtiString::from(format!("Team {}", 1 + t))),
            members,
            ..Default::default()
        }))
    }

    /// LIST_AGENT_TEAM_REQ: the supervisor's (by ICM agent id) team ids,
    /// 64 per CONF, `more` set on all but the last.
    pub(super) fn list_agent_team(&mut self, invoke_id: u32, r: &ListAgentTeamReq) {
        let supervisor = self
            .world
            .agents
            .iter()
            .position(|agent| agent.icm_id as u32 == r.supervisor_id);
        let teams: Vec<u32> = match supervisor {
            Some(a) => self.teams_of(a as u32).map(|t| 1 + t).collect(),
            None => Vec::new(),
        };
        if teams.is_empty() {
            let refused = FailureConf {
                invoke_id,
                status: status::E_CTI_SUPERVISOR_NOT_FOUND,
                ..Default::default()
            };
            return self.out.push(Message::from(refused));
        }
        let nr_segments = teams.len().div_ceil(TEAMS_PER_SEGMENT);
        for (n, chunk) in teams.chunks(TEAMS_PER_SEGMENT).enumerate() {
            self.out.push(done(Message::from(ListAgentTeamConf {
                invoke_id,
                segment_number: 1 + n as u16,
                more: u16::from(n + 1 < nr_segments),
                team_ids: chunk.to_vec(),
                ..Default::default()
            })));
        }
    }

    /// MONITOR_AGENT_TEAM_START_REQ: a MonitorID, then (after the CONF)
    /// the team's configuration and each member's current state, and from
    /// then on each member's AGENT_STATE_EVENT, all to this monitor.
    pub(super) fn team_monitor_start(&mut self, r: &MonitorAgentTeamStartReq) -> Answer {
        let team = r.team_id.wrapping_sub(1);
        if team >= self.nr_teams() {
            return refuse(status::E_CTI_TEAM_NOT_FOUND);
        }
        let monitor_id = self.monitor_ids.next();
        self.team_monitors.push((monitor_id, team));
        let to = To::TeamMonitor(monitor_id);
        self.out.push_to(to.clone(), self.team_config(team));
        let first = team * TEAM_SIZE;
        let last = (first + TEAM_SIZE).min(self.world.agents.len() as u32);
        for a in first..last {
            let state = self.world.agents[a as usize].state;
            let pid = self.config.peripheral_id;
            let event = build::agent_state(pid, &self.world, a, state, 0, None);
            self.out
                .push_to(to.clone(), with_monitor_id(event, monitor_id));
        }
        Ok(Message::from(MonitorAgentTeamStartConf {
            invoke_id: r.invoke_id,
            monitor_id,
        }))
    }

    pub(super) fn team_monitor_stop(&mut self, r: &MonitorAgentTeamStopReq) -> Answer {
        if !self.end_team_monitor(r.monitor_id) {
            return refuse(status::E_CTI_INVALID_MONITORID);
        }
        Ok(Message::from(MonitorAgentTeamStopConf {
            invoke_id: r.invoke_id,
        }))
    }

    /// Ends a team monitor (its session closed); whether it existed.
    pub fn end_team_monitor(&mut self, monitor_id: u32) -> bool {
        let before = self.team_monitors.len();
        self.team_monitors.retain(|&(id, _)| id != monitor_id);
        self.team_monitors.len() != before
    }

    /// After an AGENT_STATE_EVENT of the stream: its copy for each team
    /// monitor of the agent's team, next in the queue.
    pub(super) fn copy_to_team_monitors(&mut self, at: u64, m: &Message) {
        let Message::AgentStateEvent(e) = m else {
            return;
        };
        let Some(a) = e
            .agent_id
            .as_ref()
            .and_then(|id| self.agent_by_any(id.as_bytes()))
        else {
            return;
        };
        let team = a / TEAM_SIZE;
        let watching = self.team_monitors.iter().filter(|&&(_, t)| t == team);
        for &(monitor_id, _) in watching.rev() {
            let copy = with_monitor_id(m.clone(), monitor_id);
            self.out
                .queue
                .push_front((at, To::TeamMonitor(monitor_id), copy));
        }
    }

    /// SUPERVISOR_ASSIST_REQ from an agent: the CONF (the agent's call, or
    /// none), and SUPERVISOR_ASSIST_EVENT to the team's supervisor (and
    /// All Events sessions).
    pub(super) fn supervisor_assist(&mut self, r: &SupervisorAssistReq) -> Answer {
        let instrument = r.agent_instrument.as_ref().or(r.agent_extension.as_ref());
        let help = self.help_call(r.agent_id.as_ref(), instrument)?;
        let agent = &self.world.agents[help.agent as usize];
        let event = SupervisorAssistEvent {
            peripheral_id: self.config.peripheral_id,
            connection_call_id: help.call_id,
            connection_device_id_type: CALL_ID_TYPE,
            session_id: 0,
            connection_device_id: Some(help.dev.clone()),
            client_id: some(&agent.id),
            text: Some(CtiString::from(format!("agent {} asks for help", agent.id))),
        };
        self.out.push_to(help.to, Message::from(event));
        Ok(Message::from(SupervisorAssistConf {
            invoke_id: r.invoke_id,
            connection_call_id: help.call_id,
            connection_device_id_type: CALL_ID_TYPE,
            line_handle: 0,
            line_type: build::LINE_INSIDE,
            connection_device_id: Some(help.dev),
        }))
    }

    /// EMERGENCY_CALL_REQ from an agent: as SUPERVISOR_ASSIST, with
    /// EMERGENCY_CALL_EVENT (the agent's identity on it).
    pub(super) fn emergency_call(&mut self, r: &EmergencyCallReq) -> Answer {
        let instrument = r.agent_instrument.as_ref().or(r.agent_extension.as_ref());
        let help = self.help_call(r.agent_id.as_ref(), instrument)?;
        let agent = &self.world.agents[help.agent as usize];
        let event = EmergencyCallEvent {
            peripheral_id: self.config.peripheral_id,
            connection_call_id: help.call_id,
            connection_device_id_type: CALL_ID_TYPE,
            session_id: 0,
            connection_device_id: Some(help.dev.clone()),
            client_id: some(&agent.id),
            agent_id: some(&agent.id),
            agent_extension: some(&agent.ext),
            agent_instrument: some(&agent.ext),
            ..Default::default()
        };
        self.out.push_to(help.to, Message::from(event));
        Ok(Message::from(EmergencyCallConf {
            invoke_id: r.invoke_id,
            connection_call_id: help.call_id,
            connection_device_id_type: CALL_ID_TYPE,
            line_handle: 0,
            line_type: build::LINE_INSIDE,
            connection_device_id: Some(help.dev),
        }))
    }

    /// The agent asking its supervisor for help, the call it is on (or
    /// none) and whom the event goes to; a supervisor has nobody to ask.
    fn help_call(
        &self,
        agent_id: Option<&CtiString>,
        instrument: Option<&CtiString>,
    ) -> Result<Help, Failure> {
        let a = self.agent_named(agent_id, instrument)?;
        let supervisor = (a / TEAM_SIZE) * TEAM_SIZE;
        if supervisor == a {
            return refuse(status::E_CTI_SUPERVISOR_NOT_FOUND);
        }
        let call = self.active_call_of(a).and_then(|slot| {
            let call = self.calls[slot as usize].as_ref()?;
            let p = call.primary(&self.world);
            Some((p.id, p.dev.clone()))
        });
        let (call_id, dev) = call.unwrap_or((0, CtiString::default()));
        let supervisor_id = self.world.agents[supervisor as usize].id.clone();
        Ok(Help {
            agent: a,
            call_id,
            dev,
            to: To::SupervisorAndAllEvents(supervisor_id),
        })
    }

    /// SUPERVISE_CALL_REQ: the supervisor (SupervisorInstrument) acts on
    /// the call of an agent of its teams.
    pub(super) fn supervise_call(&mut self, r: &SuperviseCallReq) -> Answer {
        let s = r
            .supervisor_instrument
            .as_ref()
            .and_then(|dev| self.agent_by_any(dev.as_bytes()))
            .filter(|&s| !self.teams_of(s).is_empty());
        let Some(s) = s else {
            return refuse(status::E_CTI_SUPERVISOR_NOT_FOUND);
        };
        let instrument = r.agent_instrument.as_ref().or(r.agent_extension.as_ref());
        let a = self.agent_named(r.agent_id.as_ref(), instrument)?;
        if !self.teams_of(s).contains(&(a / TEAM_SIZE)) || a == s {
            return refuse(status::E_CTI_TEAM_NOT_FOUND);
        }
        if r.supervisory_action == supervisory_action::CLEAR {
            return self.supervision_clear(r, s);
        }
        let slot = self.supervised_call(a, r.agent_connection_call_id)?;
        match r.supervisory_action {
            supervisory_action::MONITOR | supervisory_action::WHISPER => {}
            supervisory_action::BARGE_IN => self.barge_in(slot, s)?,
            supervisory_action::INTERCEPT => {
                self.barge_in(slot, s)?;
                self.conference_drop(slot);
            }
            _ => return fail(code::VALUE_OUT_OF_RANGE, "unknown SupervisoryAction"),
        }
        Ok(self.supervise_conf(r.invoke_id, slot))
    }

    /// The agent's call the request names (0xFFFFFFFF: its active call).
    fn supervised_call(&self, a: u32, call_id: u32) -> Result<u32, Failure> {
        let slot = self.active_call_of(a).ok_or(Failure::Control(
            code::NO_ACTIVE_CALL,
            "the agent has no active call",
        ))?;
        let id = self.calls[slot as usize].as_ref().map(|c| c.id);
        if call_id != ACTIVE_CALL && id != Some(call_id) {
            return fail(code::INVALID_CALL_IDENTIFIER, "not the agent's active call");
        }
        Ok(slot)
    }

    fn supervise_conf(&self, invoke_id: u32, slot: u32) -> Message {
        let call = self.calls[slot as usize].as_ref();
        let p = call.map(|c| c.primary(&self.world));
        Message::from(SuperviseCallConf {
            invoke_id,
            connection_call_id: p.map_or(0, |p| p.id),
            connection_device_id_type: CALL_ID_TYPE,
            connection_device_id: p.map(|p| p.dev.clone()),
        })
    }

    /// The supervisor joins the agent's call: CALL_CONFERENCED (parties
    /// the customer, the agent, the supervisor), the supervisor TALKING.
    fn barge_in(&mut self, slot: u32, s: u32) -> Result<(), Failure> {
        if self.busy(s) {
            return fail(code::RESOURCE_BUSY, "the supervisor is on a call");
        }
        let call = self.calls[slot as usize].as_ref().expect("live call");
        let plain = call.other == NO_AGENT
            && call.consult_id == 0
            && call.phase == Phase::Talking
            && matches!(self.pending_step(call), None | Some(CallStep::Hangup));
        if !plain {
            return fail(
                code::INVALID_OBJECT_STATE,
                "the call is in a consult or conference",
            );
        }
        self.take_over(s);
        let event = conferenced(self, slot, s);
        self.out.push(event);
        if let Some(call) = self.calls[slot as usize].as_mut() {
            call.other = s;
            call.phase = Phase::Conferenced;
        }
        self.set_state(s, agent_state::TALKING, 0, Some(build::direction::IN));
        Ok(())
    }

    /// SupervisoryAction clear: the supervisor leaves the call it barged
    /// in on (a silent monitor just ends).
    fn supervision_clear(&mut self, r: &SuperviseCallReq, s: u32) -> Answer {
        let joined = self
            .live()
            .find_map(|(slot, c)| (c.other == s && c.phase == Phase::Conferenced).then_some(slot));
        if let Some(slot) = joined {
            self.conference_leave(slot);
            return Ok(self.supervise_conf(r.invoke_id, slot));
        }
        Ok(Message::from(SuperviseCallConf {
            invoke_id: r.invoke_id,
            connection_device_id_type: CALL_ID_TYPE,
            ..Default::default()
        }))
    }
}

/// One member of AGENT_TEAM_CONFIG_EVENT (no state duration kept).
fn member(agent_id: &CtiString, flags: u16, state: u16) -> TeamMember {
    TeamMember {
        agent_id: some(agent_id),
        flags: Some(flags),
        state: Some(state),
        state_duration: Some(0),
    }
}

/// An AGENT_STATE_EVENT (or anything with a MonitorID first) for one monitor.
fn with_monitor_id(m: Message, monitor_id: u32) -> Message {
    match m {
        Message::AgentStateEvent(mut e) => {
            e.monitor_id = monitor_id;
            Message::from(e)
        }
        other => other,
    }
}

/// CALL_CONFERENCED_EVENT of a barge-in: supervisor `s` added to the call
/// in `slot` by the agent's device.
fn conferenced(sim: &Simulator, slot: u32, s: u32) -> Message {
    let world = &sim.world;
    let call = sim.calls[slot as usize].as_ref().expect("live call");
    let p = call.primary(world);
    let (agent, sup) = (
        &world.agents[call.agent as usize],
        &world.agents[s as usize],
    );
    let group = &world.groups[call.group as usize];
    let party = |dev: &CtiString| Party {
        call_id: Some(p.id),
        device_id_type: Some(CALL_ID_TYPE),
        device_id: Some(dev.clone()),
    };
    done(Message::from(CallConferencedEvent {
        peripheral_id: sim.config.peripheral_id,
        peripheral_type: PT,
        primary_device_id_type: CALL_ID_TYPE,
        primary_call_id: p.id,
        line_handle: 0,
        line_type: LINE_INBOUND_ACD,
        skill_group_number: group.number,
        skill_group_id: group.id,
        secondary_device_id_type: CALL_ID_TYPE,
        secondary_call_id: p.id,
        controller_device_type: device_type::DEVICE_IDENTIFIER,
        added_party_device_type: device_type::DEVICE_IDENTIFIER,
        local_connection_state: lcs::CONNECT,
        event_cause: cause::KEY_CONFERENCE,
        primary_device_id: some(p.dev),
        secondary_device_id: some(p.dev),
        controller_device_id: some(&agent.ext),
        added_party_device_id: some(&sup.ext),
        parties: vec![party(p.dev), party(&agent.ext), party(&sup.ext)],
        ..Default::default()
    }))
}
