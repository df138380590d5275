//! Call-control requests the simulated PG takes (docs/requests.md §9):
//! answer, hold, retrieve, clear, make, consult, transfer, conference and
//! reconnect, each answered with its CONF and then the events it causes, or
//! with the CONTROL_FAILURE_CONF code a PG gives; and the event builders
//! they share. The dispatch and the agent requests are in `control`.

use super::build::{self, cause, direction, done, some, CallRef, CALL_ID_TYPE};
use super::build::{LINE_INSIDE, NULL_ID, PT};
use super::control::{code, fail, Answer, Failure};
use super::flow::CallStep;
use super::tally::CallCount;
use super::world::{secs, Call, Phase, NO_AGENT};
use super::Simulator;
use crate::proto::constants::{agent_state::*, device_type, lcs};
use crate::proto::group::Party;
use crate::proto::msg::*;
use crate::proto::{CtiString, Message};

/// Direction of an agent's own outbound call (AGENT_STATE_EVENT).
pub(super) const DIRECTION_OUT: u32 = 2;
/// CallType of a call an agent placed to another agent / outside.
pub(super) const AGENT_INSIDE: u16 = 10;
pub(super) const AGENT_OUT: u16 = 8;

impl Simulator {
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

    pub(super) fn answer_call(&mut self, r: &AnswerCallReq) -> Answer {
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

    pub(super) fn hold_call(&mut self, r: &HoldCallReq) -> Answer {
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

    pub(super) fn retrieve_call(&mut self, r: &RetrieveCallReq) -> Answer {
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
    pub(super) fn clear(
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

    pub(super) fn make_call(&mut self, r: &MakeCallReq) -> Answer {
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

    pub(super) fn consultation_call(&mut self, r: &ConsultationCallReq) -> Answer {
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
    pub(super) fn complete(
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

    pub(super) fn reconnect(&mut self, r: &ReconnectCallReq) -> Answer {
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
