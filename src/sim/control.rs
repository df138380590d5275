//! Requests the simulated PG takes (docs/requests.md §9): every Client
//! Control request and SET_CALL_DATA / RELEASE_CALL, answered the way a
//! UCCE PG answers them — the confirmation first, then the events the
//! request causes, built by the same builders as the simulated calls —
//! or with the CONTROL_FAILURE_CONF code a PG gives for an illegal request.
//! The Miscellaneous requests (statistics, desk settings, SET_APP_DATA,
//! recording, USER_MESSAGE) are answered in `misc`, from what the world
//! counts (`tally`); they cause no events. The Supervisor service and
//! SUPERVISOR_ASSIST are in `supervisor`. Anything else:
//! FAILURE_CONF(E_CTI_FUNCTION_NOT_AVAILABLE).
//!
//! This file dispatches requests and takes the agent and call-data ones;
//! the call-control requests are in `calls`, the snapshots and device
//! queries in `snapshot`.
//!
//! An agent a request acts on becomes *manual*: the simulated person stops
//! acting on their own (no breaks, no timers), calls ring until answered and
//! last until its desktop hangs up, and wrap-up lasts until the desktop sets
//! the next state. A call-control request takes over the call it acts on
//! (its pending autonomous step is cancelled) only where the call is
//! settled — ringing, talking or held; a call in the middle of a simulated
//! consult answers CF_INVALID_OBJECT_STATE.
//!
//! Limits of the simulated peripheral, answered CF_INVALID_FEATURE:
//! ALTERNATE, DEFLECT, MAKE_PREDICTIVE, EMERGENCY_CALL and
//! single-step transfers; consults go to agents' extensions only.

use super::build::{self, direction, done, some, CALL_ID_TYPE, PT};
use super::{Simulator, To};
use crate::proto::constants::{agent_state::*, status};
use crate::proto::msg::*;
use crate::proto::{frame, CtiString, DecodeOptions, Message, Version};

/// CONTROL_FAILURE_CONF codes the simulated PG gives (docs/protocol.md §5.12).
pub mod code {
    pub const VALUE_OUT_OF_RANGE: u16 = 3;
    pub const OBJECT_NOT_KNOWN: u16 = 4;
    pub const INVALID_CALLED_DEVICE: u16 = 6;
    pub const INVALID_CALL_IDENTIFIER: u16 = 11;
    pub const INVALID_DEVICE_IDENTIFIER: u16 = 12;
    pub const INVALID_FEATURE: u16 = 15;
    pub const STATE_INCOMPATIBILITY: u16 = 21;
    pub const INVALID_OBJECT_STATE: u16 = 22;
    pub const NO_ACTIVE_CALL: u16 = 24;
    pub const NO_HELD_CALL: u16 = 25;
    pub const NO_CALL_TO_CLEAR: u16 = 26;
    pub const NO_CONNECTION_TO_CLEAR: u16 = 27;
    pub const NO_CALL_TO_ANSWER: u16 = 28;
    pub const NO_CALL_TO_COMPLETE: u16 = 29;
    pub const RESOURCE_BUSY: u16 = 33;
}

/// A request's answer: its CONF, or a failure.
pub(super) type Answer = Result<Message, Failure>;

/// Why a request failed: a CONTROL_FAILURE_CONF code with its text, or a
/// FAILURE_CONF status (Call Data Update requests).
#[derive(Debug, Clone, Copy)]
pub(super) enum Failure {
    Control(u16, &'static str),
    Status(u32),
}

pub(super) fn fail<T>(code: u16, text: &'static str) -> Result<T, Failure> {
    Err(Failure::Control(code, text))
}

impl Simulator {
    /// Take one request now (`self.out.now`): its answer, then its events.
    pub(super) fn take_request(&mut self, invoke_id: u32, request: &Message) {
        if let Message::ListAgentTeamReq(r) = request {
            // Answered in segments (several CONFs), `supervisor`.
            return self.list_agent_team(invoke_id, r);
        }
        let mark = self.out.queue.len();
        let answer = self.answer_request(request);
        let reply = match answer {
            Ok(conf) => with_invoke_id(conf, invoke_id),
            Err(Failure::Control(failure_code, text)) => Message::from(ControlFailureConf {
                invoke_id,
                failure_code,
                text: Some(text.into()),
                ..Default::default()
            }),
            Err(Failure::Status(status)) => Message::from(FailureConf {
                invoke_id,
                status,
                ..Default::default()
            }),
        };
        // The confirmation goes out before the events the request caused.
        self.out.queue.insert(mark, (self.out.now, To::All, reply));
    }

    fn answer_request(&mut self, request: &Message) -> Answer {
        use Message as M;
        match request {
            M::SetAgentStateReq(r) => self.set_agent_state(r),
            M::QueryAgentStateReq(r) => self.query_agent_state(r),
            M::AnswerCallReq(r) => self.answer_call(r),
            M::HoldCallReq(r) => self.hold_call(r),
            M::RetrieveCallReq(r) => self.retrieve_call(r),
            M::ClearConnectionReq(r) => {
                let id = r.connection_call_id;
                self.clear(r.invoke_id, id, r.agent_instrument.as_ref(), false)
            }
            M::ClearCallReq(r) => {
                let id = r.connection_call_id;
                self.clear(r.invoke_id, id, r.agent_instrument.as_ref(), true)
            }
            M::MakeCallReq(r) => self.make_call(r),
            M::ConsultationCallReq(r) => self.consultation_call(r),
            M::TransferCallReq(r) => self.complete(r.invoke_id, r.agent_instrument.as_ref(), true),
            M::ConferenceCallReq(r) => {
                self.complete(r.invoke_id, r.agent_instrument.as_ref(), false)
            }
            M::ReconnectCallReq(r) => self.reconnect(r),
            M::SendDtmfSignalReq(r) => {
                let a = self.agent_at(r.agent_instrument.as_ref())?;
                self.active_call_of(a)
                    .map(|_| {
                        Message::from(SendDtmfSignalConf {
                            invoke_id: r.invoke_id,
                        })
                    })
                    .ok_or(Failure::Control(code::NO_ACTIVE_CALL, "no active call"))
            }
            M::SnapshotDeviceReq(r) => self.snapshot_device(r),
            M::SnapshotCallReq(r) => self.snapshot_call(r),
            M::QueryDeviceInfoReq(r) => self.query_device_info(r),
            M::BadCallReq(r) => Ok(BadCallConf {
                invoke_id: r.invoke_id,
            }
            .into()),
            M::AgentGreetingControlReq(r) => Ok(AgentGreetingControlConf {
                invoke_id: r.invoke_id,
            }
            .into()),
            M::SetCallDataReq(r) => self.set_call_data(r),
            M::ReleaseCallReq(r) => Ok(ReleaseCallConf {
                invoke_id: r.invoke_id,
            }
            .into()),
            M::SupervisorAssistReq(r) => self.supervisor_assist(r),
            M::EmergencyCallReq(r) => self.emergency_call(r),
            M::SuperviseCallReq(r) => self.supervise_call(r),
            M::MonitorAgentTeamStartReq(r) => self.team_monitor_start(r),
            M::MonitorAgentTeamStopReq(r) => self.team_monitor_stop(r),
            M::AlternateCallReq(_) | M::DeflectCallReq(_) | M::MakePredictiveCallReq(_) => fail(
                code::INVALID_FEATURE,
                "not supported by the simulated peripheral",
            ),
            other => self
                .answer_misc(other)
                .unwrap_or(Err(Failure::Status(status::E_CTI_FUNCTION_NOT_AVAILABLE))),
        }
    }

    // --- agents -----------------------------------------------------------

    /// The agent whose instrument is `dev`.
    pub(super) fn agent_at(&self, dev: Option<&CtiString>) -> Result<u32, Failure> {
        dev.filter(|d| !d.is_empty())
            .and_then(|d| self.world.agents.iter().position(|a| &a.ext == d))
            .map(|a| a as u32)
            .ok_or(Failure::Control(
                code::INVALID_DEVICE_IDENTIFIER,
                "no agent at that instrument",
            ))
    }

    /// The agent named by AgentID, else by instrument.
    pub(super) fn agent_named(
        &self,
        id: Option<&CtiString>,
        instrument: Option<&CtiString>,
    ) -> Result<u32, Failure> {
        match id.filter(|i| !i.is_empty()) {
            Some(id) => self
                .world
                .agents
                .iter()
                .position(|a| &a.id == id)
                .map(|a| a as u32)
                .ok_or(Failure::Control(code::OBJECT_NOT_KNOWN, "unknown AgentID")),
            None => self.agent_at(instrument),
        }
    }

    /// From now on the agent acts only on requests.
    pub(super) fn take_over(&mut self, a: u32) {
        let agent = &mut self.world.agents[a as usize];
        agent.manual = true;
        agent.timer = 0;
    }

    fn set_agent_state(&mut self, r: &SetAgentStateReq) -> Answer {
        let a = self.agent_named(r.agent_id.as_ref(), r.agent_instrument.as_ref())?;
        let current = self.world.agents[a as usize].state;
        let on_call = matches!(current, RESERVED | TALKING | HOLD);
        let conf = Message::from(SetAgentStateConf {
            invoke_id: r.invoke_id,
        });
        let reason = r.event_reason_code;
        match r.agent_state {
            LOGIN if current == LOGOUT => {
                self.take_over(a);
                self.set_state(a, LOGIN, 0, None);
                self.set_state(a, NOT_READY, reason, None);
            }
            LOGOUT if current == NOT_READY => {
                self.take_over(a);
                self.set_state(a, LOGOUT, reason, None);
            }
            AVAILABLE if matches!(current, NOT_READY | WORK_READY | WORK_NOT_READY) => {
                self.take_over(a);
                self.available(a);
            }
            NOT_READY if matches!(current, AVAILABLE | NOT_READY | WORK_READY | WORK_NOT_READY) => {
                self.take_over(a);
                self.set_state(a, NOT_READY, reason, None);
            }
            state @ (WORK_READY | WORK_NOT_READY) if on_call => {
                // The state to wrap up in once the call ends.
                self.take_over(a);
                self.world.agents[a as usize].wrap_up = state;
            }
            state @ (WORK_READY | WORK_NOT_READY)
                if matches!(current, WORK_READY | WORK_NOT_READY) =>
            {
                self.take_over(a);
                self.set_state(a, state, 0, Some(direction::IN));
            }
            LOGIN | LOGOUT | AVAILABLE | NOT_READY | WORK_READY | WORK_NOT_READY => {
                return fail(
                    code::STATE_INCOMPATIBILITY,
                    "the agent cannot go to that state from its current one",
                )
            }
            _ => return fail(code::VALUE_OUT_OF_RANGE, "not an agent state one can set"),
        }
        Ok(conf)
    }

    fn query_agent_state(&self, r: &QueryAgentStateReq) -> Answer {
        let a = match (r.agent_id.as_ref(), r.agent_instrument.as_ref()) {
            (None, None) => self
                .world
                .agents
                .iter()
                .position(|x| x.icm_id == r.icm_agent_id)
                .map(|a| a as u32)
                .ok_or(Failure::Control(code::OBJECT_NOT_KNOWN, "unknown agent"))?,
            (id, instrument) => self.agent_named(id, instrument)?,
        };
        let world = &self.world;
        let agent = &world.agents[a as usize];
        let state = agent.state;
        let mut conf = QueryAgentStateConf {
            invoke_id: r.invoke_id,
            agent_state: state,
            mrd_id: 1,
            num_tasks: matches!(
                state,
                RESERVED | TALKING | HOLD | WORK_READY | WORK_NOT_READY
            ) as u32,
            agent_mode: 1,
            max_task_limit: 1,
            icm_agent_id: agent.icm_id,
            agent_availability_status: (state == AVAILABLE) as u32,
            agent_id: some(&agent.id),
            agent_extension: some(&agent.ext),
            agent_instrument: some(&agent.ext),
            ..Default::default()
        };
        conf.skill_groups = build::skill_groups(world, agent, state);
        Ok(done(conf.into()))
    }

    fn set_call_data(&mut self, r: &SetCallDataReq) -> Answer {
        let pid = self.config.peripheral_id;
        let wanted = r.connection_call_id;
        let Some(slot) = self
            .live()
            .find_map(|(slot, c)| (c.id == wanted).then_some(slot))
        else {
            return Err(Failure::Status(status::E_CTI_INVALID_CALLID));
        };
        let world = &self.world;
        let call = self.calls[slot as usize].as_mut().expect("live call");
        let given = [
            &r.call_variable_1,
            &r.call_variable_2,
            &r.call_variable_3,
            &r.call_variable_4,
            &r.call_variable_5,
            &r.call_variable_6,
            &r.call_variable_7,
            &r.call_variable_8,
            &r.call_variable_9,
            &r.call_variable_10,
        ];
        for (stored, value) in call.data.variables.iter_mut().zip(given) {
            if value.is_some() {
                stored.clone_from(value);
            }
        }
        if r.call_wrapup_data.is_some() {
            call.data.wrapup.clone_from(&r.call_wrapup_data);
        }
        let c = call.primary(world);
        let event = CallDataUpdateEvent {
            peripheral_id: pid,
            peripheral_type: PT,
            call_type: if r.call_type == 0xFFFF || r.call_type == 0 {
                0xFFFF
            } else {
                r.call_type
            },
            connection_device_id_type: CALL_ID_TYPE,
            connection_call_id: c.id,
            new_connection_device_id_type: CALL_ID_TYPE,
            new_connection_call_id: c.id,
            called_party_disposition: r.called_party_disposition,
            campaign_id: r.campaign_id,
            query_rule_id: r.query_rule_id,
            connection_device_id: some(c.dev),
            new_connection_device_id: some(c.dev),
            ani: r.ani.clone(),
            user_to_user_info: r.user_to_user_info.clone(),
            caller_entered_digits: r.caller_entered_digits.clone(),
            call_variable_1: r.call_variable_1.clone(),
            call_variable_2: r.call_variable_2.clone(),
            call_variable_3: r.call_variable_3.clone(),
            call_variable_4: r.call_variable_4.clone(),
            call_variable_5: r.call_variable_5.clone(),
            call_variable_6: r.call_variable_6.clone(),
            call_variable_7: r.call_variable_7.clone(),
            call_variable_8: r.call_variable_8.clone(),
            call_variable_9: r.call_variable_9.clone(),
            call_variable_10: r.call_variable_10.clone(),
            call_wrapup_data: r.call_wrapup_data.clone(),
            named_variables: r.named_variables.clone(),
            named_arrays: r.named_arrays.clone(),
            customer_phone_number: r.customer_phone_number.clone(),
            customer_account_number: r.customer_account_number.clone(),
            ..Default::default()
        };
        self.out.push(done(event.into()));
        Ok(SetCallDataConf {
            invoke_id: r.invoke_id,
        }
        .into())
    }
}

/// `conf` with its InvokeID set to `invoke_id`: the CONFs are built with
/// the request's own InvokeID, and the caller's [`Simulator::request`]
/// argument is the one the answer carries (as the failures do).
fn with_invoke_id(conf: Message, invoke_id: u32) -> Message {
    let Ok(mut frame) = conf.to_frame(Version::MAX) else {
        return conf;
    };
    if !frame::patch_invoke_id(&mut frame, invoke_id) {
        return conf;
    }
    let patched = frame::parse(&frame).ok().and_then(|(f, _)| {
        Message::decode(f.message_type, f.body, Version::MAX, DecodeOptions::STRICT).ok()
    });
    patched.unwrap_or(conf)
}
