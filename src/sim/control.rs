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

use super::build::{self, call_type, cause, direction, done, some, CallRef, CALL_ID_TYPE};
use super::build::{LINE_INSIDE, NULL_ID, PT};
use super::flow::CallStep;
use super::tally::CallCount;
use super::world::{secs, Call, Phase, NO_AGENT};
use super::{Simulator, To};
use crate::proto::constants::{agent_state::*, device_type, lcs, status};
use crate::proto::group::{CallDevice, DeviceCall, Party};
use crate::proto::msg::*;
use crate::proto::{frame, CtiString, DecodeOptions, Message, NamedVar, Version};

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

/// Direction of an agent's own outbound call (AGENT_STATE_EVENT).
const DIRECTION_OUT: u32 = 2;
/// CallType of a call an agent placed to another agent / outside.
const AGENT_INSIDE: u16 = 10;
const AGENT_OUT: u16 = 8;

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

    // --- calls --------------------------------------------------------------

    /// Live calls, by slot.
    pub(super) fn live(&self) -> impl Iterator<Item = (u32, &Call)> {
        self.calls
            .iter()
            .enumerate()
            .filter_map(|(slot, c)| c.as_ref().map(|c| (slot as u32, c)))
    }

    /// The call agent `a` talks on (its own connection connected).
    pub(super) fn active_call_of(&self, a: u32) -> Option<u32> {
        self.live().find_map(|(slot, c)| {
            let talks = c.agent == a && c.phase == Phase::Talking
                || c.other == a && c.placed_by != NO_AGENT && c.phase == Phase::Talking;
            talks.then_some(slot)
        })
    }

    /// Whether agent `a` is a party to some call (or one rings at it).
    pub(super) fn busy(&self, a: u32) -> bool {
        self.live().any(|(_, c)| c.agent == a || c.other == a)
            || matches!(
                self.world.agents[a as usize].state,
                RESERVED | TALKING | HOLD
            )
    }

    /// Cancel the call's pending step: the request decides what comes next.
    fn settle(&mut self, slot: u32) {
        if let Some(call) = self.calls[slot as usize].as_mut() {
            call.timer = 0;
        }
    }

    fn answer_call(&mut self, r: &AnswerCallReq) -> Answer {
        let a = self.agent_at(
            r.agent_instrument
                .as_ref()
                .or(r.connection_device_id.as_ref()),
        )?;
        let wanted = r.connection_call_id;
        let found = self.live().find_map(|(slot, c)| {
            let named = |id: u32| wanted == id || wanted == 0 || wanted == NULL_ID;
            if c.agent == a && c.phase == Phase::Ringing && c.placed_by == NO_AGENT && named(c.id) {
                Some((slot, Ringing::Customer))
            } else if c.other == a
                && c.phase == (Phase::Consulting { consult_up: false })
                && named(c.consult_id)
            {
                Some((slot, Ringing::Consult))
            } else if c.other == a
                && c.phase == Phase::Ringing
                && c.placed_by != NO_AGENT
                && named(c.id)
            {
                Some((slot, Ringing::Placed))
            } else {
                None
            }
        });
        let Some((slot, ringing)) = found else {
            return fail(code::NO_CALL_TO_ANSWER, "no call is ringing there");
        };
        self.take_over(a);
        let conf = Message::from(AnswerCallConf {
            invoke_id: r.invoke_id,
        });
        match ringing {
            Ringing::Customer => {
                self.settle(slot);
                self.answer(slot);
            }
            Ringing::Consult => {
                // The consulting agent's step (if autonomous) waits for this.
                self.settle(slot);
                self.consult_answer(slot);
            }
            Ringing::Placed => {
                self.settle(slot);
                self.far_answer(slot);
            }
        }
        Ok(conf)
    }

    fn hold_call(&mut self, r: &HoldCallReq) -> Answer {
        let a = self.agent_at(r.agent_instrument.as_ref())?;
        let slot = self
            .live()
            .find_map(|(slot, c)| (c.agent == a && c.phase == Phase::Talking).then_some(slot))
            .ok_or(Failure::Control(
                code::NO_ACTIVE_CALL,
                "no active call to hold",
            ))?;
        self.take_over(a);
        self.settle(slot);
        self.hold(slot);
        Ok(HoldCallConf {
            invoke_id: r.invoke_id,
        }
        .into())
    }

    fn retrieve_call(&mut self, r: &RetrieveCallReq) -> Answer {
        let a = self.agent_at(r.agent_instrument.as_ref())?;
        let slot = self
            .live()
            .find_map(|(slot, c)| (c.agent == a && c.phase == Phase::Held).then_some(slot))
            .ok_or(Failure::Control(code::NO_HELD_CALL, "no held call"))?;
        self.take_over(a);
        self.settle(slot);
        self.retrieve(slot);
        Ok(RetrieveCallConf {
            invoke_id: r.invoke_id,
        }
        .into())
    }

    /// CLEAR_CONNECTION (the agent leaves) or CLEAR_CALL (everyone does).
    fn clear(
        &mut self,
        invoke_id: u32,
        call_id: u32,
        instrument: Option<&CtiString>,
        whole_call: bool,
    ) -> Answer {
        let a = self.agent_at(instrument)?;
        let conf = if whole_call {
            Message::from(ClearCallConf { invoke_id })
        } else {
            Message::from(ClearConnectionConf { invoke_id })
        };
        let (missing, text) = if whole_call {
            (code::NO_CALL_TO_CLEAR, "no call to clear")
        } else {
            (code::NO_CONNECTION_TO_CLEAR, "no connection to clear")
        };
        let Some((slot, call)) = self
            .live()
            .find(|(_, c)| {
                (c.agent == a || c.other == a) && (c.id == call_id || c.consult_id == call_id)
            })
            .map(|(slot, c)| (slot, c.clone()))
        else {
            return fail(missing, text);
        };
        if call.consult_id == call_id && call.consult_id != 0 {
            // The consult call: back to the held customer.
            self.take_over(a);
            self.settle(slot);
            self.consult_cancel(slot);
            return Ok(conf);
        }
        match call.phase {
            Phase::Talking | Phase::Held => {
                self.take_over(a);
                let agent_first = call.agent == a;
                self.hang_up(slot, !agent_first);
            }
            Phase::Conferenced if whole_call => {
                self.take_over(a);
                self.hang_up(slot, false);
            }
            Phase::Conferenced if call.agent == a => {
                self.take_over(a);
                self.settle(slot);
                self.conference_drop(slot);
            }
            Phase::Conferenced => {
                self.take_over(a);
                self.settle(slot);
                self.conference_leave(slot);
            }
            Phase::Ringing if call.placed_by == a => {
                // The caller gives up before the far end answers.
                self.take_over(a);
                self.hang_up(slot, false);
            }
            Phase::Routing | Phase::Ringing => return fail(missing, text),
            Phase::Consulting { .. } => {
                return fail(
                    code::INVALID_OBJECT_STATE,
                    "the customer is held for a consult: clear the consult call first",
                )
            }
        }
        Ok(conf)
    }

    fn make_call(&mut self, r: &MakeCallReq) -> Answer {
        let a = self.agent_at(r.agent_instrument.as_ref())?;
        let Some(dialed) = r.dialed_number.clone().filter(|d| !d.is_empty()) else {
            return fail(code::INVALID_CALLED_DEVICE, "no DialedNumber");
        };
        if self.world.agents[a as usize].state == LOGOUT {
            return fail(code::STATE_INCOMPATIBILITY, "the agent is logged out");
        }
        if self.busy(a) {
            return fail(code::RESOURCE_BUSY, "the agent is on a call");
        }
        let callee = self.world.agents.iter().position(|x| x.ext == dialed);
        let b = match callee {
            Some(b) if b as u32 == a => {
                return fail(code::INVALID_CALLED_DEVICE, "an agent cannot call itself")
            }
            Some(b) if self.busy(b as u32) || self.world.agents[b].state == LOGOUT => {
                return fail(
                    code::RESOURCE_BUSY,
                    "the called agent is busy or logged out",
                )
            }
            Some(b) => b as u32,
            None => NO_AGENT,
        };
        let Some(trunk) = self.free_trunks.pop_front() else {
            return fail(code::RESOURCE_BUSY, "no trunk free");
        };
        self.take_over(a);
        let id = self.next_call_id();
        let agent = &self.world.agents[a as usize];
        let call = Call {
            serial: self.next_call,
            id,
            trunk,
            group: agent.groups[0],
            ani: agent.ext.clone(),
            account: CtiString::default(),
            language: 0,
            intent: 0,
            tier: 0,
            named_intent: false,
            plan: super::world::Plan::Plain,
            agent: a,
            other: b,
            consult_id: 0,
            talk_left: 0,
            timer: 0,
            phase: Phase::Ringing,
            placed_by: a,
            dialed: dialed.clone(),
            data: Box::default(),
        };
        let slot = self.store_call(call);
        let (pid, day) = (self.config.peripheral_id, self.day());
        let world = &self.world;
        let c = CallRef {
            id,
            dev: &world.agents[a as usize].ext,
        };
        let conf = Message::from(MakeCallConf {
            invoke_id: r.invoke_id,
            new_connection_call_id: id,
            new_connection_device_id_type: CALL_ID_TYPE,
            line_handle: 1,
            line_type: LINE_INSIDE,
            new_connection_device_id: some(c.dev),
        });
        let kind = if b == NO_AGENT {
            AGENT_OUT
        } else {
            AGENT_INSIDE
        };
        self.out.push(build::begin_call(pid, c, kind, None, day));
        self.out
            .push(initiated(pid, c, &world.agents[a as usize], cause::NONE));
        self.out.push(build::agent_state(
            pid,
            world,
            a,
            TALKING,
            0,
            Some(DIRECTION_OUT),
        ));
        self.out.push(originated(
            pid,
            c,
            &world.agents[a as usize].ext,
            &dialed,
            b != NO_AGENT,
        ));
        if b == NO_AGENT {
            self.out.push(reached_network(pid, c, &dialed));
        } else {
            self.out.push(delivered_inside(pid, world, c, a, b));
        }
        let now = self.out.now;
        let agent = &mut self.world.agents[a as usize];
        agent.enter(now, TALKING);
        let placed = if b == NO_AGENT {
            CallCount::Out
        } else {
            CallCount::Internal
        };
        agent.tally.count(now, placed);
        if b != NO_AGENT {
            self.set_state(b, RESERVED, 0, Some(direction::OTHER_IN));
        }
        // The far end (or an autonomous callee) answers after a ring; a
        // manual callee's desktop answers.
        if b == NO_AGENT || !self.world.agents[b as usize].manual {
            let ring = self.world.timing.draw(&mut self.rng, secs::RING);
            self.schedule_call(slot, ring, CallStep::FarAnswer);
        }
        Ok(conf)
    }

    /// The called party of a placed call answers.
    pub(super) fn far_answer(&mut self, slot: u32) {
        let pid = self.config.peripheral_id;
        let world = &self.world;
        let Some(call) = self.calls[slot as usize].as_mut() else {
            return;
        };
        let (a, b) = (call.agent, call.other);
        call.phase = Phase::Talking;
        let c = call.primary(world);
        if b == NO_AGENT {
            self.out.push(established_outside(
                pid,
                c,
                &world.agents[a as usize].ext,
                &call.dialed,
            ));
            return;
        }
        self.out.push(build::consult_answered(pid, world, c, a, b));
        let now = self.out.now;
        self.world.agents[b as usize]
            .tally
            .count(now, CallCount::InternalReceived);
        self.set_state(b, TALKING, 0, Some(direction::IN));
        if !self.world.agents[b as usize].manual {
            let talk = self.world.timing.draw(&mut self.rng, secs::TALK);
            self.schedule_call(slot, talk, CallStep::Hangup);
        }
    }

    fn consultation_call(&mut self, r: &ConsultationCallReq) -> Answer {
        let a = self.agent_at(r.agent_instrument.as_ref())?;
        let slot = self
            .live()
            .find_map(|(slot, c)| {
                (c.agent == a && c.phase == Phase::Talking && c.placed_by == NO_AGENT)
                    .then_some(slot)
            })
            .ok_or(Failure::Control(
                code::NO_ACTIVE_CALL,
                "no active customer call",
            ))?;
        let dialed = r.dialed_number.clone().unwrap_or_default();
        let Some(b) = self.world.agents.iter().position(|x| x.ext == dialed) else {
            return fail(
                code::INVALID_CALLED_DEVICE,
                "the simulated PG consults agents' extensions only",
            );
        };
        let b = b as u32;
        if b == a {
            return fail(
                code::INVALID_CALLED_DEVICE,
                "an agent cannot consult itself",
            );
        }
        if self.busy(b) || self.world.agents[b as usize].state == LOGOUT {
            return fail(
                code::RESOURCE_BUSY,
                "the consulted agent is busy or logged out",
            );
        }
        self.take_over(a);
        self.settle(slot);
        let consult_id = self.next_call_id();
        let now = self.out.now;
        let claimed = &mut self.world.agents[b as usize];
        claimed.enter(now, RESERVED);
        claimed.timer = 0;
        let call = self.calls[slot as usize].as_mut().expect("live call");
        call.other = b;
        call.consult_id = consult_id;
        let conf = Message::from(ConsultationCallConf {
            invoke_id: r.invoke_id,
            new_connection_call_id: consult_id,
            new_connection_device_id_type: CALL_ID_TYPE,
            line_handle: 1,
            line_type: LINE_INSIDE,
            new_connection_device_id: some(&self.world.agents[a as usize].ext),
        });
        self.hold(slot);
        if let Some(call) = self.calls[slot as usize].as_mut() {
            call.phase = Phase::Consulting { consult_up: false };
        }
        self.call_step(slot, CallStep::ConsultDial);
        Ok(conf)
    }

    /// TRANSFER_CALL (`true`) or CONFERENCE_CALL: the consult merges.
    fn complete(
        &mut self,
        invoke_id: u32,
        instrument: Option<&CtiString>,
        transfer: bool,
    ) -> Answer {
        let a = self.agent_at(instrument)?;
        let slot = self
            .live()
            .find_map(|(slot, c)| {
                (c.agent == a && c.phase == (Phase::Consulting { consult_up: true }))
                    .then_some(slot)
            })
            .ok_or(Failure::Control(
                code::NO_CALL_TO_COMPLETE,
                "no answered consult call to complete",
            ))?;
        self.take_over(a);
        self.settle(slot);
        let world = &self.world;
        let call = self.calls[slot as usize].as_ref().expect("live call");
        let p = call.primary(world);
        let mut parties = vec![party(p, p.dev)];
        if !transfer {
            parties.push(party(p, &world.agents[a as usize].ext));
        }
        parties.push(party(p, &world.agents[call.other as usize].ext));
        let conf = if transfer {
            Message::from(TransferCallConf {
                invoke_id,
                new_connection_call_id: p.id,
                new_connection_device_id_type: CALL_ID_TYPE,
                line_handle: 0,
                line_type: LINE_INSIDE,
                new_connection_device_id: some(p.dev),
                parties,
                ..Default::default()
            })
        } else {
            Message::from(ConferenceCallConf {
                invoke_id,
                new_connection_call_id: p.id,
                new_connection_device_id_type: CALL_ID_TYPE,
                line_handle: 0,
                line_type: LINE_INSIDE,
                new_connection_device_id: some(p.dev),
                parties,
                ..Default::default()
            })
        };
        self.consult_complete(slot, transfer);
        Ok(done(conf))
    }

    fn reconnect(&mut self, r: &ReconnectCallReq) -> Answer {
        let a = self.agent_at(r.agent_instrument.as_ref())?;
        let slot = self
            .live()
            .find_map(|(slot, c)| {
                (c.agent == a && matches!(c.phase, Phase::Consulting { .. })).then_some(slot)
            })
            .ok_or(Failure::Control(
                code::NO_HELD_CALL,
                "no consult to reconnect from",
            ))?;
        self.take_over(a);
        self.settle(slot);
        self.consult_cancel(slot);
        self.retrieve(slot);
        Ok(ReconnectCallConf {
            invoke_id: r.invoke_id,
        }
        .into())
    }

    /// The consult call ends before completing: the customer stays held.
    fn consult_cancel(&mut self, slot: u32) {
        let pid = self.config.peripheral_id;
        let world = &self.world;
        let call = self.calls[slot as usize].as_mut().expect("live call");
        let (a, b) = (call.agent, call.other);
        let c = call.consult(world);
        let kind = device_type::DEVICE_IDENTIFIER;
        let ext = &world.agents[b as usize].ext;
        self.out
            .push(build::connection_cleared(pid, c, kind, ext, cause::NONE));
        self.out
            .push(build::connection_cleared(pid, c, kind, c.dev, cause::NONE));
        self.out.push(build::cleared(pid, c, cause::NONE));
        self.out.push(build::end_call(pid, c));
        call.other = NO_AGENT;
        call.consult_id = 0;
        call.phase = Phase::Held;
        self.set_state(a, HOLD, 0, Some(direction::IN));
        if self.world.agents[b as usize].manual {
            self.set_state(b, NOT_READY, 0, None);
        } else {
            self.available(b);
        }
    }

    /// The consulted agent leaves a conference; the consulting one stays.
    pub(super) fn conference_leave(&mut self, slot: u32) {
        let pid = self.config.peripheral_id;
        let world = &self.world;
        let call = self.calls[slot as usize].as_mut().expect("live call");
        let (a, b) = (call.agent, call.other);
        let p = call.primary(world);
        let kind = device_type::DEVICE_IDENTIFIER;
        let ext = &world.agents[b as usize].ext;
        self.out
            .push(build::connection_cleared(pid, p, kind, ext, cause::NONE));
        call.other = NO_AGENT;
        call.phase = Phase::Talking;
        self.after_call(b);
        if !self.world.agents[a as usize].manual {
            let talk = self.world.timing.draw(&mut self.rng, secs::TALK);
            self.schedule_call(slot, talk, CallStep::Hangup);
        }
    }

    // --- what the world knows ------------------------------------------------
    //
    // A snapshot says what the events sent so far told, as a CTI Server's
    // would: a connection's state is the LocalConnectionState of the last
    // event about it; a call, a connection or call data not yet announced
    // by an event is not in it (docs/call-brackets.md, "Call snapshots").

    /// The step the call's pending timer runs next, if it has one.
    pub(super) fn pending_step(&self, call: &Call) -> Option<CallStep> {
        if call.timer == 0 {
            return None;
        }
        self.heap
            .iter()
            .find(|s| s.seq == call.timer)
            .and_then(|s| match s.action {
                super::Action::Call(_, step) => Some(step),
                _ => None,
            })
    }

    /// Every connection of a live call, in the order it joined: (call
    /// identity, device type, device, its state).
    fn connections(&self, call: &Call) -> Vec<(u32, CtiString, u16, CtiString, u16)> {
        let world = &self.world;
        let p = call.primary(world);
        let ext = |x: u32| world.agents[x as usize].ext.clone();
        let pending = self.pending_step(call);
        let mut out = Vec::new();
        let mut add = |c: CallRef<'_>, kind: u16, dev: CtiString, state: u16| {
            out.push((c.id, c.dev.clone(), kind, dev, state));
        };
        let (a, b) = (call.agent, call.other);
        if call.placed_by == NO_AGENT {
            // The caller's trunk: seized (CALL_DELIVERED, LCS_INITIATE), in
            // queue (CALL_QUEUED, whose patience runs), then connected from
            // CALL_DEQUEUED on.
            let trunk = match call.phase {
                Phase::Routing if a == NO_AGENT && pending == Some(CallStep::Abandon) => {
                    lcs::QUEUED
                }
                Phase::Routing if a == NO_AGENT => lcs::INITIATE,
                _ => lcs::CONNECT,
            };
            add(p, device_type::TRUNK, p.dev.clone(), trunk);
        }
        if a != NO_AGENT {
            let mine = match call.phase {
                Phase::Routing => None,
                Phase::Ringing if call.placed_by == NO_AGENT => Some(lcs::ALERTING),
                Phase::Ringing | Phase::Talking | Phase::Conferenced => Some(lcs::CONNECT),
                Phase::Held | Phase::Consulting { .. } => Some(lcs::HOLD),
            };
            if let Some(state) = mine {
                add(p, device_type::DEVICE_IDENTIFIER, ext(a), state);
            }
        }
        if call.placed_by != NO_AGENT && b == NO_AGENT {
            // Dialed outside: CALL_REACHED_NETWORK (LCS_CONNECT) names it
            // as the call is placed.
            add(p, device_type::TRUNK, call.dialed.clone(), lcs::CONNECT);
        }
        if b != NO_AGENT {
            match call.phase {
                Phase::Consulting { consult_up } => {
                    // The consult call is announced when dialed
                    // (BEGIN_CALL … CALL_ORIGINATED), rings at `b` from its
                    // CALL_DELIVERED on.
                    let c = call.consult(world);
                    if pending != Some(CallStep::ConsultDial) {
                        add(c, device_type::DEVICE_IDENTIFIER, ext(a), lcs::CONNECT);
                    }
                    let theirs = match (consult_up, pending) {
                        (true, _) => Some(lcs::CONNECT),
                        (false, Some(CallStep::ConsultDial | CallStep::ConsultAlert)) => None,
                        (false, _) => Some(lcs::ALERTING),
                    };
                    if let Some(state) = theirs {
                        add(c, device_type::DEVICE_IDENTIFIER, ext(b), state);
                    }
                }
                Phase::Ringing => add(p, device_type::DEVICE_IDENTIFIER, ext(b), lcs::ALERTING),
                _ => add(p, device_type::DEVICE_IDENTIFIER, ext(b), lcs::CONNECT),
            }
        }
        out
    }

    /// The calls at a device: an agent's instrument, or any device with a
    /// connection in a live call (a trunk, a number dialed outside).
    fn snapshot_device(&self, r: &SnapshotDeviceReq) -> Answer {
        let dev = r.agent_instrument.clone().unwrap_or_default();
        let calls: Vec<DeviceCall> = self
            .live()
            .flat_map(|(_, call)| self.connections(call))
            .filter(|(_, _, _, d, _)| !dev.is_empty() && *d == dev)
            .map(|(id, call_dev, _, _, state)| DeviceCall {
                connection_call_id: Some(id),
                connection_device_id_type: Some(CALL_ID_TYPE),
                connection_device_id: Some(call_dev),
                call_state: Some(state),
                silent_monitor_status: Some(0),
            })
            .collect();
        if calls.is_empty() {
            self.agent_at(r.agent_instrument.as_ref())?;
        }
        Ok(done(
            SnapshotDeviceConf {
                invoke_id: r.invoke_id,
                calls,
                ..Default::default()
            }
            .into(),
        ))
    }

    fn snapshot_call(&self, r: &SnapshotCallReq) -> Answer {
        let wanted = r.connection_call_id;
        let Some(call) = self
            .live()
            .map(|(_, c)| c)
            .find(|c| c.id == wanted || c.consult_id == wanted)
        else {
            return fail(code::INVALID_CALL_IDENTIFIER, "no such call");
        };
        let world = &self.world;
        let consult = call.id != wanted;
        let pending = self.pending_step(call);
        if consult && pending == Some(CallStep::ConsultDial) {
            // Not dialed yet: no event has named it.
            return fail(code::INVALID_CALL_IDENTIFIER, "no such call");
        }
        let inbound = call.placed_by == NO_AGENT && !consult;
        let mut conf = SnapshotCallConf {
            invoke_id: r.invoke_id,
            call_type: match (consult, call.placed_by) {
                (true, _) => call_type::CONSULT,
                (false, NO_AGENT) => call_type::PREROUTE_ACD_IN,
                _ if call.other != NO_AGENT => AGENT_INSIDE,
                _ => AGENT_OUT,
            },
            ..Default::default()
        };
        if inbound {
            // BEGIN_CALL's data, then the IVR's (CALL_DATA_UPDATE).
            let cat = &world.catalog;
            conf.ani = some(&call.ani);
            conf.dnis = some(&world.groups[call.group as usize].route_point);
            conf.router_call_key_day = Some(build::ROUTER_DAY_0 + self.day());
            conf.router_call_key_call_id = Some(call.serial);
            if pending != Some(CallStep::Data) {
                conf.call_variable_1 = some(&call.account);
                conf.call_variable_2 = some(&cat.languages[call.language as usize]);
                conf.call_variable_3 = some(&cat.intents[call.intent as usize]);
                conf.call_variable_4 = some(&cat.tiers[call.tier as usize]);
                conf.named_variables.push(NamedVar {
                    name: cat.var_account.clone(),
                    value: call.account.clone(),
                });
                if call.named_intent {
                    conf.named_variables.push(NamedVar {
                        name: cat.var_intent.clone(),
                        value: cat.intents[call.intent as usize].clone(),
                    });
                }
            }
        }
        if !consult {
            let set = &call.data.variables;
            let slots = [
                &mut conf.call_variable_1,
                &mut conf.call_variable_2,
                &mut conf.call_variable_3,
                &mut conf.call_variable_4,
                &mut conf.call_variable_5,
                &mut conf.call_variable_6,
                &mut conf.call_variable_7,
                &mut conf.call_variable_8,
                &mut conf.call_variable_9,
                &mut conf.call_variable_10,
            ];
            for (slot, value) in slots.into_iter().zip(set) {
                if value.is_some() {
                    slot.clone_from(value);
                }
            }
            conf.call_wrapup_data.clone_from(&call.data.wrapup);
        }
        conf.call_devices = self
            .connections(call)
            .into_iter()
            .filter(|(id, ..)| *id == wanted)
            .map(|(id, call_dev, kind, dev, state)| CallDevice {
                connection_call_id: Some(id),
                connection_device_id_type: Some(CALL_ID_TYPE),
                connection_device_id: Some(call_dev),
                device_type: Some(kind),
                device_id: Some(dev),
                connection_state: Some(state),
            })
            .collect();
        Ok(done(conf.into()))
    }

    fn query_device_info(&self, r: &QueryDeviceInfoReq) -> Answer {
        self.agent_at(r.agent_instrument.as_ref())?;
        Ok(done(
            QueryDeviceInfoConf {
                invoke_id: r.invoke_id,
                peripheral_type: PT,
                // A phone (DEVT_STATION) of the voice class, one line.
                type_of_device: 0,
                class_of_device: 1,
                max_active_calls: 1,
                max_held_calls: 1,
                max_devices_in_conference: 3,
                ..Default::default()
            }
            .into(),
        ))
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

/// Which call rings at an agent that answers.
enum Ringing {
    /// A customer call routed to it.
    Customer,
    /// A consult call from another agent.
    Consult,
    /// A call another agent placed to its extension.
    Placed,
}

fn party(c: CallRef<'_>, dev: &CtiString) -> Party {
    Party {
        call_id: Some(c.id),
        device_id_type: Some(CALL_ID_TYPE),
        device_id: Some(dev.clone()),
    }
}

/// CALL_SERVICE_INITIATED_EVENT: the agent went off hook to place a call.
fn initiated(pid: u32, c: CallRef<'_>, agent: &super::world::Agent, why: u16) -> Message {
    let mut m = match build::consult_initiated(pid, c, agent) {
        Message::CallServiceInitiatedEvent(e) => e,
        _ => unreachable!("consult_initiated builds CALL_SERVICE_INITIATED_EVENT"),
    };
    m.event_cause = why;
    Message::from(m)
}

/// CALL_ORIGINATED_EVENT: the placed call dialed `called`.
fn originated(
    pid: u32,
    c: CallRef<'_>,
    from: &CtiString,
    called: &CtiString,
    inside: bool,
) -> Message {
    Message::from(CallOriginatedEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        connection_device_id_type: CALL_ID_TYPE,
        connection_call_id: c.id,
        line_handle: 1,
        line_type: LINE_INSIDE,
        service_number: NULL_ID,
        service_id: NULL_ID,
        skill_group_number: NULL_ID,
        skill_group_id: NULL_ID,
        calling_device_type: device_type::DEVICE_IDENTIFIER,
        called_device_type: if inside {
            device_type::DEVICE_IDENTIFIER
        } else {
            device_type::TRUNK
        },
        local_connection_state: lcs::CONNECT,
        event_cause: cause::NONE,
        connection_device_id: some(c.dev),
        calling_device_id: some(from),
        called_device_id: some(called),
        ..Default::default()
    })
}

/// CALL_REACHED_NETWORK_EVENT: the placed call left the PG for `called`.
fn reached_network(pid: u32, c: CallRef<'_>, called: &CtiString) -> Message {
    Message::from(CallReachedNetworkEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        connection_device_id_type: CALL_ID_TYPE,
        connection_call_id: c.id,
        line_handle: 1,
        line_type: LINE_INSIDE,
        trunk_used_device_type: device_type::TRUNK,
        called_device_type: device_type::TRUNK,
        local_connection_state: lcs::CONNECT,
        event_cause: cause::NONE,
        connection_device_id: some(c.dev),
        called_device_id: some(called),
        ..Default::default()
    })
}

/// CALL_DELIVERED_EVENT of a placed call at agent `b`'s extension.
fn delivered_inside(
    pid: u32,
    world: &super::world::World,
    c: CallRef<'_>,
    a: u32,
    b: u32,
) -> Message {
    let mut m = match build::consult_offered(pid, world, c, a, b) {
        Message::CallDeliveredEvent(e) => e,
        _ => unreachable!("consult_offered builds CALL_DELIVERED_EVENT"),
    };
    m.event_cause = cause::NONE;
    Message::from(m)
}

/// CALL_ESTABLISHED_EVENT: the number outside answered the placed call.
fn established_outside(pid: u32, c: CallRef<'_>, from: &CtiString, called: &CtiString) -> Message {
    Message::from(CallEstablishedEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        connection_device_id_type: CALL_ID_TYPE,
        connection_call_id: c.id,
        line_handle: 1,
        line_type: LINE_INSIDE,
        service_number: NULL_ID,
        service_id: NULL_ID,
        skill_group_number: NULL_ID,
        skill_group_id: NULL_ID,
        answering_device_type: device_type::TRUNK,
        calling_device_type: device_type::DEVICE_IDENTIFIER,
        called_device_type: device_type::TRUNK,
        last_redirect_device_type: device_type::NONE,
        local_connection_state: lcs::CONNECT,
        event_cause: cause::NONE,
        connection_device_id: some(c.dev),
        answering_device_id: some(called),
        calling_device_id: some(from),
        called_device_id: some(called),
        ..Default::default()
    })
}
