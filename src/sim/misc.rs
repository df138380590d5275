//! The Miscellaneous requests the simulated PG answers (docs/requests.md §9):
//! agent and skill group statistics counted from the world, fixed desk
//! settings, SET_APP_DATA, START/STOP_RECORDING on a live call (a simulated
//! recording server confirms) and USER_MESSAGE. They change nothing in the
//! world and cause no events: the simulator has no clients, so who gets a
//! USER_MESSAGE_EVENT is the server's business (`sim-pg` delivers it, built
//! by [`Simulator::user_message_event`]).
//!
//! Failures are FAILURE_CONF statuses, as a CTI Server gives them for this
//! service (docs/protocol.md §5.10): no agent named E_CTI_REQUIRED_DATA_MISSING,
//! an unknown one E_CTI_INVALID_AGENT_DATA, another peripheral
//! E_CTI_INVALID_PERIPHERAL_ID, an unknown skill group
//! E_CTI_INVALID_SKILL_GROUP, a call not in progress E_CTI_INVALID_CALLID;
//! messages to a supervisor or a team E_CTI_SUPERVISOR_NOT_FOUND /
//! E_CTI_TEAM_NOT_FOUND (the simulated peripheral has neither).

use std::time::Duration;

use super::build::{done, some, NULL_ID};
use super::control::{Answer, Failure};
use super::world::{Phase, NO_AGENT};
use super::Simulator;
use crate::proto::constants::{agent_state::*, distribution, status};
use crate::proto::msg::*;
use crate::proto::{CtiString, Message};

/// DeskSettingsMask bits (CTI OS Developer's Guide, desk settings masks).
mod desk {
    pub const IDLE_REASON_REQUIRED: u32 = 0x0008;
    pub const SUPERVISOR_CALLS_ALLOWED: u32 = 0x0020;
    pub const AGENT_TO_AGENT_CALLS_ALLOWED: u32 = 0x0040;
    pub const OUTBOUND_ACCESS_PUBLIC_NET: u32 = 0x0100;
}

/// WrapupDataIncomingMode / OutgoingMode: optional.
const WRAPUP_OPTIONAL: u32 = 1;
/// WorkModeTimer: the UCCE default, 7,200 s (a manual agent's wrap-up lasts
/// until its desktop ends it; an autonomous one's is drawn).
const WORK_MODE_TIMER_SECS: u32 = 7200;
/// Queue counters the simulator does not keep (docs/protocol.md §12.4).
const UNKNOWN: u32 = 0xFFFF_FFFF;
/// The simulated recording server, as START/STOP_RECORDING_CONF name it.
const RECORDER_CLIENT_ID: &str = "sim-recorder";
const RECORDER_ADDRESS: &str = "127.0.0.1";

/// The fields of an agent's counters a skill group adds up for today.
const GROUP_TODAY: [&str; 11] = [
    "avail_time_today",
    "logged_on_time_today",
    "not_ready_time_today",
    "agent_out_calls_today",
    "handled_calls_today",
    "handled_calls_talk_time_today",
    "handled_calls_after_call_time_today",
    "handled_calls_time_today",
    "incoming_calls_held_today",
    "incoming_calls_held_time_today",
    "internal_calls_rcvd_today",
];

fn status(code: u32) -> Failure {
    Failure::Status(code)
}

/// What an agent in TALKING talks on, for the skill group counters.
enum Talk {
    In,
    Out,
    Other,
}

impl Simulator {
    /// The Miscellaneous request's answer, or `None` when it is not one.
    pub(super) fn answer_misc(&mut self, request: &Message) -> Option<Answer> {
        use Message as M;
        Some(match request {
            M::QueryAgentStatisticsReq(r) => self.agent_statistics(r),
            M::QuerySkillGroupStatisticsReq(r) => self.skill_group_statistics(r),
            M::AgentDeskSettingsReq(r) => self.desk_settings(r),
            M::SetAppDataReq(r) => match r.application_path_id {
                Some(_) => Ok(SetAppDataConf {
                    invoke_id: r.invoke_id,
                }
                .into()),
                None => Err(status(status::E_CTI_REQUIRED_DATA_MISSING)),
            },
            M::StartRecordingReq(r) => self.start_recording(r),
            M::StopRecordingReq(r) => self.stop_recording(r),
            M::UserMessageReq(r) => user_message(r),
            _ => return None,
        })
    }

    /// USER_MESSAGE_EVENT for a message `sender` (a ClientID) sent at
    /// simulated time `at`: what a server delivers to the addressed clients.
    pub fn user_message_event(at: Duration, sender: &CtiString, r: &UserMessageReq) -> Message {
        UserMessageEvent {
            icm_central_controller_time: super::build::central_time(at.as_secs()),
            distribution: r.distribution,
            client_id: some(sender),
            text: r.text.clone(),
        }
        .into()
    }

    /// A request's PeripheralID: this peripheral's, or none given.
    fn this_peripheral(&self, peripheral_id: u32) -> Result<(), Failure> {
        let ours = peripheral_id == self.config.peripheral_id;
        if ours || peripheral_id == 0 || peripheral_id == NULL_ID {
            Ok(())
        } else {
            Err(status(status::E_CTI_INVALID_PERIPHERAL_ID))
        }
    }

    /// The agent a Miscellaneous request names: by AgentID, else by
    /// extension or instrument (one device per simulated agent).
    fn agent_of(&self, fields: [Option<&CtiString>; 3]) -> Result<u32, Failure> {
        let [id, extension, instrument] = fields.map(|f| f.filter(|v| !v.is_empty()));
        let agents = &self.world.agents;
        let found = match (id, extension.or(instrument)) {
            (Some(id), _) => agents.iter().position(|a| &a.id == id),
            (None, Some(device)) => agents.iter().position(|a| &a.ext == device),
            (None, None) => return Err(status(status::E_CTI_REQUIRED_DATA_MISSING)),
        };
        found
            .map(|a| a as u32)
            .ok_or(status(status::E_CTI_INVALID_AGENT_DATA))
    }

    fn agent_statistics(&self, r: &QueryAgentStatisticsReq) -> Answer {
        self.this_peripheral(r.peripheral_id)?;
        let fields = [
            r.agent_id.as_ref(),
            r.agent_extension.as_ref(),
            r.agent_instrument.as_ref(),
        ];
        let agent = &self.world.agents[self.agent_of(fields)? as usize];
        Ok(done(
            QueryAgentStatisticsConf {
                invoke_id: r.invoke_id,
                peripheral_id: self.config.peripheral_id,
                statistics: agent.tally.statistics(self.out.now, agent.state),
                agent_extension: some(&agent.ext),
                agent_id: some(&agent.id),
                agent_instrument: some(&agent.ext),
            }
            .into(),
        ))
    }

    fn skill_group_statistics(&self, r: &QuerySkillGroupStatisticsReq) -> Answer {
        self.this_peripheral(r.peripheral_id)?;
        let named = |wanted: u32, has: u32| wanted == has || wanted == NULL_ID;
        let both_null = r.skill_group_number == NULL_ID && r.skill_group_id == NULL_ID;
        let g = self
            .world
            .groups
            .iter()
            .position(|g| named(r.skill_group_number, g.number) && named(r.skill_group_id, g.id))
            .filter(|_| !both_null)
            .ok_or(status(status::E_CTI_INVALID_SKILL_GROUP))?;
        let group = &self.world.groups[g];
        Ok(done(
            QuerySkillGroupStatisticsConf {
                invoke_id: r.invoke_id,
                peripheral_id: self.config.peripheral_id,
                skill_group_number: group.number,
                skill_group_id: group.id,
                statistics: self.group_counters(g as u16),
            }
            .into(),
        ))
    }

    /// Group `g`'s counters: its members' states now, its queue, and the
    /// sum of its members' counts today. Counters the simulator does not
    /// keep: 0, or UNKNOWN for the queue times and the router's queue.
    fn group_counters(&self, g: u16) -> SkillGroupStatistics {
        let mut block = SkillGroupStatistics::default();
        let mut set = |name: &str, value: u32| {
            if let Some(at) = SkillGroupStatistics::NAMES.iter().position(|n| *n == name) {
                block.0[at] = value;
            }
        };
        for &name in SkillGroupStatistics::NAMES {
            if name.starts_with("calls_q") || name.starts_with("longest") {
                set(name, UNKNOWN);
            }
        }
        set("router_calls_q_now", UNKNOWN);
        let queue = &self.world.groups[g as usize].queue;
        set("calls_q_now", queue.len() as u32);
        let members = || {
            (0..self.world.agents.len() as u32)
                .filter(move |&a| self.world.agents[a as usize].groups.contains(&g))
        };
        let in_state = |states: &[u16]| {
            members()
                .filter(|&a| states.contains(&self.world.agents[a as usize].state))
                .count() as u32
        };
        let talking = |kind: fn(&Talk) -> bool| {
            members()
                .filter(|&a| self.world.agents[a as usize].state == TALKING)
                .filter(|&a| kind(&self.talk_of(a)))
                .count() as u32
        };
        let logged_on = members().count() as u32 - in_state(&[LOGOUT]);
        set("agents_logged_on", logged_on);
        set("agents_avail", in_state(&[AVAILABLE]));
        set("agents_not_ready", in_state(&[NOT_READY]));
        set("agents_ready", logged_on - in_state(&[NOT_READY]));
        set("agents_talking_in", talking(|t| matches!(t, Talk::In)));
        set("agents_talking_out", talking(|t| matches!(t, Talk::Out)));
        set(
            "agents_talking_other",
            talking(|t| matches!(t, Talk::Other)),
        );
        set("agents_work_not_ready", in_state(&[WORK_NOT_READY]));
        set("agents_work_ready", in_state(&[WORK_READY]));
        set("agents_reserved", in_state(&[RESERVED]));
        set("agents_hold", in_state(&[HOLD]));
        let now = self.out.now;
        let mut today = [0u64; GROUP_TODAY.len()];
        for a in members() {
            let agent = &self.world.agents[a as usize];
            let counters = agent.tally.statistics(now, agent.state);
            for (sum, name) in today.iter_mut().zip(GROUP_TODAY) {
                *sum += u64::from(counters.get(name).unwrap_or(0));
            }
        }
        for (sum, name) in today.into_iter().zip(GROUP_TODAY) {
            set(name, u32::try_from(sum).unwrap_or(u32::MAX));
        }
        block
    }

    /// What agent `a` (TALKING) talks on: a customer call it was routed,
    /// a call it placed outside, or anything else (consults, internal calls).
    fn talk_of(&self, a: u32) -> Talk {
        let call = self
            .live()
            .map(|(_, c)| c)
            .find(|c| c.agent == a || c.other == a);
        match call {
            Some(c) if c.placed_by == a && c.other == NO_AGENT => Talk::Out,
            Some(c)
                if c.placed_by == NO_AGENT
                    && c.agent == a
                    && matches!(c.phase, Phase::Talking | Phase::Conferenced) =>
            {
                Talk::In
            }
            _ => Talk::Other,
        }
    }

    /// The same settings for every agent: a reason for Not Ready, calls to
    /// agents, supervisors and outside allowed, wrap-up data optional, no
    /// ring-no-answer (a manual agent's calls ring until answered).
    fn desk_settings(&self, r: &AgentDeskSettingsReq) -> Answer {
        self.this_peripheral(r.peripheral_id)?;
        let Some(id) = r.agent_id.as_ref().filter(|id| !id.is_empty()) else {
            return Err(status(status::E_CTI_REQUIRED_DATA_MISSING));
        };
        self.agent_of([Some(id), None, None])?;
        Ok(done(
            AgentDeskSettingsConf {
                invoke_id: r.invoke_id,
                peripheral_id: self.config.peripheral_id,
                desk_settings_mask: desk::IDLE_REASON_REQUIRED
                    | desk::SUPERVISOR_CALLS_ALLOWED
                    | desk::AGENT_TO_AGENT_CALLS_ALLOWED
                    | desk::OUTBOUND_ACCESS_PUBLIC_NET,
                wrapup_data_incoming_mode: WRAPUP_OPTIONAL,
                wrapup_data_outgoing_mode: WRAPUP_OPTIONAL,
                work_mode_timer: WORK_MODE_TIMER_SECS,
                ..Default::default()
            }
            .into(),
        ))
    }

    /// Whether a call (or consult call) with this ConnectionCallID is in progress.
    fn call_in_progress(&self, call_id: u32) -> Result<(), Failure> {
        self.live()
            .any(|(_, c)| c.id == call_id || (c.consult_id != 0 && c.consult_id == call_id))
            .then_some(())
            .ok_or(status(status::E_CTI_INVALID_CALLID))
    }

    /// The recording server confirms: SessionID 0 (any server may stop it),
    /// ServerData the call's id.
    fn start_recording(&self, r: &StartRecordingReq) -> Answer {
        self.this_peripheral(r.peripheral_id)?;
        self.call_in_progress(r.connection_call_id)?;
        Ok(StartRecordingConf {
            invoke_id: r.invoke_id,
            session_id: 0,
            server_data: r.connection_call_id,
            client_id: Some(RECORDER_CLIENT_ID.into()),
            client_address: Some(RECORDER_ADDRESS.into()),
            ..Default::default()
        }
        .into())
    }

    fn stop_recording(&self, r: &StopRecordingReq) -> Answer {
        self.this_peripheral(r.peripheral_id)?;
        self.call_in_progress(r.connection_call_id)?;
        Ok(StopRecordingConf {
            invoke_id: r.invoke_id,
            client_id: Some(RECORDER_CLIENT_ID.into()),
            client_address: Some(RECORDER_ADDRESS.into()),
        }
        .into())
    }
}

/// USER_MESSAGE_REQ: confirmed when it can be delivered (to a ClientID or to
/// everyone); the simulated peripheral has no supervisors or teams.
fn user_message(r: &UserMessageReq) -> Answer {
    let given = |f: &Option<CtiString>| f.as_ref().is_some_and(|v| !v.is_empty());
    if !given(&r.text) {
        return Err(status(status::E_CTI_REQUIRED_DATA_MISSING));
    }
    match r.distribution {
        distribution::TO_CLIENT if !given(&r.client_id) => {
            Err(status(status::E_CTI_REQUIRED_DATA_MISSING))
        }
        distribution::TO_CLIENT | distribution::TO_ALL => Ok(UserMessageConf {
            invoke_id: r.invoke_id,
        }
        .into()),
        distribution::TO_SUPERVISOR => Err(status(status::E_CTI_SUPERVISOR_NOT_FOUND)),
        distribution::TO_TEAM => Err(status(status::E_CTI_TEAM_NOT_FOUND)),
        _ => Err(status(status::E_CTI_INVALID_DISTRIBUTION_TYPE)),
    }
}
