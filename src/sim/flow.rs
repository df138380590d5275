//! The call state machine: what each scheduled step of a call sends, which
//! agent gets which call, and when the next step is due. Each call has at most
//! one pending timer; scheduling a new one makes any older one stale.

use super::build::{self, call_type, cause, direction};
use super::tally::CallCount;
use super::world::{secs, Call, Phase, Plan, DATA_GAP, NO_AGENT, ROUTE_GAP};
use super::Simulator;
use crate::proto::constants::{agent_state::*, device_type};
use crate::proto::CtiString;

/// Steps of a call, in the order they usually happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStep {
    /// CALL_DATA_UPDATE after the trunk seizure.
    Data,
    /// Out of the IVR: queue to the skill group (or straight to an agent).
    Queue,
    /// Patience ran out in queue.
    Abandon,
    /// Ring the reserved agent.
    Alert,
    Answer,
    Hold,
    Retrieve,
    /// Hold the customer and pick a consult target.
    ConsultStart,
    ConsultDial,
    ConsultAlert,
    ConsultAnswer,
    /// Transfer or conference.
    ConsultComplete,
    /// The consulting agent leaves the conference.
    ConferenceDrop,
    Hangup,
    /// The called party of a call an agent placed answers.
    FarAnswer,
}

/// Share of calls per [`Plan`]: plain, hold, transfer, conference.
const PLANS: [f64; 4] = [0.78, 0.10, 0.08, 0.04];
/// Share of calls where the caller hangs up first.
const CALLER_HANGS_UP: f64 = 0.7;

impl Simulator {
    /// A new inbound call seizes a trunk (none free: the network gives busy,
    /// and the PG never sees the call).
    pub(super) fn arrival(&mut self) {
        if let Some(mean) = self.world.timing.arrival_mean {
            let gap = (self.rng.exp(mean) * 1e9) as u64;
            self.push(self.out.now.saturating_add(gap), super::Action::Arrival);
        }
        let Some(trunk) = self.free_trunks.pop_front() else {
            return;
        };
        let rng = &mut self.rng;
        let group = rng.below(self.world.groups.len() as u32) as u16;
        let language = rng.pick(&[0.7, 0.25, 0.05]) as u8;
        let intent = rng.below(4) as u8;
        let tier = rng.below(3) as u8;
        let named_intent = rng.chance(0.5);
        let plan = [Plan::Plain, Plan::Hold, Plan::Transfer, Plan::Conference][rng.pick(&PLANS)];
        let ani = format!("{}", rng.range(2_012_000_000, 9_899_999_999));
        let account = format!("{:08}", rng.below(100_000_000));
        let serial = self.next_call.wrapping_add(1);
        let call = Call {
            serial,
            id: self.next_call_id(),
            trunk,
            group,
            ani: ani.into(),
            account: account.into(),
            language,
            intent,
            tier,
            named_intent,
            plan,
            agent: NO_AGENT,
            other: NO_AGENT,
            consult_id: 0,
            talk_left: 0,
            timer: 0,
            phase: Phase::Routing,
            placed_by: NO_AGENT,
            dialed: CtiString::default(),
            data: Box::default(),
        };
        let slot = self.store_call(call);
        let (pid, day) = (self.config.peripheral_id, self.day());
        let call = self.calls[slot as usize].as_ref().expect("just stored");
        let c = call.primary(&self.world);
        self.out.push(build::begin_call(
            pid,
            c,
            call_type::PREROUTE_ACD_IN,
            Some((&self.world, call)),
            day,
        ));
        self.out.push(build::trunk_seized(pid, &self.world, call));
        let gap = self.world.timing.gap(DATA_GAP);
        self.schedule_call(slot, gap, CallStep::Data);
    }

    pub(super) fn call_step(&mut self, slot: u32, step: CallStep) {
        let (pid, day) = (self.config.peripheral_id, self.day());
        let world = &self.world;
        let call = self.calls[slot as usize].as_mut().expect("live call");
        let (a, b) = (call.agent, call.other);
        match step {
            CallStep::Data => {
                self.out.push(build::call_data(pid, world, call, day));
                let ivr = world.timing.draw(&mut self.rng, secs::IVR);
                self.schedule_call(slot, ivr, CallStep::Queue);
            }
            CallStep::Queue => self.queue(slot),
            CallStep::Abandon => {
                let queue = &mut self.world.groups[call.group as usize].queue;
                if let Some(at) = queue.iter().position(|&s| s == slot) {
                    queue.remove(at);
                    self.queued -= 1;
                }
                let left = queue.len();
                let (world, c) = (&self.world, call.primary(&self.world));
                self.out.push(build::dequeued(pid, world, call, left));
                self.out.push(build::connection_cleared(
                    pid,
                    c,
                    device_type::TRUNK,
                    c.dev,
                    cause::NONE,
                ));
                self.out
                    .push(build::cleared(pid, c, cause::ABAND_LOCAL_QUEUE));
                self.out.push(build::end_call(pid, c));
                self.free_call(slot);
            }
            CallStep::Alert => {
                self.out.push(build::offered(pid, world, call));
                call.phase = Phase::Ringing;
                // A manual agent's phone rings until its desktop answers.
                if !world.agents[a as usize].manual {
                    let ring = world.timing.draw(&mut self.rng, secs::RING);
                    self.schedule_call(slot, ring, CallStep::Answer);
                }
            }
            CallStep::Answer => self.answer(slot),
            CallStep::Hold => {
                self.hold(slot);
                let hold = self.world.timing.draw(&mut self.rng, secs::HOLD);
                self.schedule_call(slot, hold, CallStep::Retrieve);
            }
            CallStep::Retrieve => {
                self.retrieve(slot);
                let left = self.calls[slot as usize]
                    .as_ref()
                    .map_or(0, |c| c.talk_left);
                self.schedule_call(slot, left, CallStep::Hangup);
            }
            CallStep::ConsultStart => self.consult_start(slot),
            CallStep::ConsultDial => {
                let c = call.consult(world);
                let (from, to) = (&world.agents[a as usize], &world.agents[b as usize]);
                // BEGIN_CALL is always a call's first event (as from a CTI Server).
                self.out
                    .push(build::begin_call(pid, c, call_type::CONSULT, None, day));
                self.out.push(build::consult_initiated(pid, c, from));
                self.out.push(build::agent_state(
                    pid,
                    world,
                    a,
                    TALKING,
                    0,
                    Some(direction::OTHER_OUT),
                ));
                self.out.push(build::consult_originated(pid, c, from, to));
                let now = self.out.now;
                let agent = &mut self.world.agents[a as usize];
                agent.enter(now, TALKING);
                agent.tally.count(now, CallCount::Internal);
                self.set_state(b, RESERVED, 0, Some(direction::OTHER_IN));
                let gap = self.world.timing.gap(ROUTE_GAP);
                self.schedule_call(slot, gap, CallStep::ConsultAlert);
            }
            CallStep::ConsultAlert => {
                self.out.push(build::consult_offered(
                    pid,
                    world,
                    call.consult(world),
                    a,
                    b,
                ));
                if !world.agents[b as usize].manual {
                    let ring = world.timing.draw(&mut self.rng, secs::RING);
                    self.schedule_call(slot, ring, CallStep::ConsultAnswer);
                }
            }
            CallStep::ConsultAnswer => self.consult_answer(slot),
            CallStep::ConsultComplete => {
                let transfer = call.plan == Plan::Transfer;
                self.consult_complete(slot, transfer);
            }
            CallStep::ConferenceDrop => self.conference_drop(slot),
            CallStep::Hangup => {
                let caller_first = self.rng.chance(CALLER_HANGS_UP);
                self.hang_up(slot, caller_first);
            }
            CallStep::FarAnswer => self.far_answer(slot),
        }
    }

    /// The agent the call rings at answers.
    pub(super) fn answer(&mut self, slot: u32) {
        let pid = self.config.peripheral_id;
        let world = &self.world;
        let call = self.calls[slot as usize].as_mut().expect("live call");
        let a = call.agent;
        self.out.push(build::answered(pid, world, call));
        call.phase = Phase::Talking;
        let now = self.out.now;
        self.world.agents[a as usize]
            .tally
            .count(now, CallCount::Handled);
        let world = &self.world;
        if world.agents[a as usize].manual {
            // Talks until its desktop hangs up (or does something else).
            call.talk_left = 0;
            self.set_state(a, TALKING, 0, Some(direction::IN));
            return;
        }
        let talk = world.timing.draw(&mut self.rng, secs::TALK);
        let (first, next) = match call.plan {
            Plan::Plain => (talk, CallStep::Hangup),
            Plan::Hold => (talk * 2 / 5, CallStep::Hold),
            Plan::Transfer | Plan::Conference => (talk / 2, CallStep::ConsultStart),
        };
        call.talk_left = talk - first;
        self.set_state(a, TALKING, 0, Some(direction::IN));
        self.schedule_call(slot, first, next);
    }

    /// The call's agent puts the customer on hold.
    pub(super) fn hold(&mut self, slot: u32) {
        let pid = self.config.peripheral_id;
        let call = self.calls[slot as usize].as_mut().expect("live call");
        let a = call.agent;
        call.phase = Phase::Held;
        let agent = &self.world.agents[a as usize];
        self.out
            .push(build::held(pid, call.primary(&self.world), agent));
        self.set_state(a, HOLD, 0, Some(direction::IN));
    }

    /// The call's agent takes the customer off hold.
    pub(super) fn retrieve(&mut self, slot: u32) {
        let pid = self.config.peripheral_id;
        let call = self.calls[slot as usize].as_mut().expect("live call");
        let a = call.agent;
        call.phase = Phase::Talking;
        let agent = &self.world.agents[a as usize];
        self.out
            .push(build::retrieved(pid, call.primary(&self.world), agent));
        self.set_state(a, TALKING, 0, Some(direction::IN));
    }

    /// The consulted agent answers the consult call.
    pub(super) fn consult_answer(&mut self, slot: u32) {
        let pid = self.config.peripheral_id;
        let world = &self.world;
        let call = self.calls[slot as usize].as_mut().expect("live call");
        let (a, b) = (call.agent, call.other);
        self.out.push(build::consult_answered(
            pid,
            world,
            call.consult(world),
            a,
            b,
        ));
        call.phase = Phase::Consulting { consult_up: true };
        let now = self.out.now;
        self.world.agents[b as usize]
            .tally
            .count(now, CallCount::InternalReceived);
        self.set_state(b, TALKING, 0, Some(direction::OTHER_IN));
        // A manual consulting agent completes (or drops) the consult itself.
        if !self.world.agents[a as usize].manual {
            let talk = self.world.timing.draw(&mut self.rng, secs::CONSULT_TALK);
            self.schedule_call(slot, talk, CallStep::ConsultComplete);
        }
    }

    /// The consulting agent leaves a conference; the consulted agent stays
    /// with the customer.
    pub(super) fn conference_drop(&mut self, slot: u32) {
        let pid = self.config.peripheral_id;
        let world = &self.world;
        let call = self.calls[slot as usize].as_mut().expect("live call");
        let (a, b) = (call.agent, call.other);
        let (p, ext) = (call.primary(world), &world.agents[a as usize].ext);
        let kind = device_type::DEVICE_IDENTIFIER;
        self.out
            .push(build::connection_cleared(pid, p, kind, ext, cause::NONE));
        call.agent = b;
        call.other = NO_AGENT;
        call.phase = Phase::Talking;
        let left = call.talk_left;
        self.after_call(a);
        self.talk_on(slot, b, left);
    }

    /// Agent `b` now has the customer alone: an autonomous one hangs up
    /// after `left` (a fresh talk time when the call had none planned).
    fn talk_on(&mut self, slot: u32, b: u32, left: u64) {
        if self.world.agents[b as usize].manual {
            return;
        }
        let left = if left == 0 {
            self.world.timing.draw(&mut self.rng, secs::TALK)
        } else {
            left
        };
        self.schedule_call(slot, left, CallStep::Hangup);
    }

    /// The call ends: the customer or the agent hangs up first.
    pub(super) fn hang_up(&mut self, slot: u32, caller_first: bool) {
        let pid = self.config.peripheral_id;
        let world = &self.world;
        let call = self.calls[slot as usize].as_ref().expect("live call");
        let (a, b) = (call.agent, call.other);
        let (p, ext) = (call.primary(world), &world.agents[a as usize].ext);
        let far = match call.placed_by {
            NO_AGENT => (device_type::TRUNK, p.dev),
            _ if b != NO_AGENT => (
                device_type::DEVICE_IDENTIFIER,
                &world.agents[b as usize].ext,
            ),
            _ => (device_type::TRUNK, &call.dialed),
        };
        let phone = (device_type::DEVICE_IDENTIFIER, ext);
        let order = if caller_first {
            [far, phone]
        } else {
            [phone, far]
        };
        for (kind, dev) in order {
            self.out
                .push(build::connection_cleared(pid, p, kind, dev, cause::NONE));
        }
        // A conference cleared whole: the consulted agent leaves too.
        let conferenced = call.phase == Phase::Conferenced && b != NO_AGENT;
        if conferenced {
            let ext = &world.agents[b as usize].ext;
            let kind = device_type::DEVICE_IDENTIFIER;
            self.out
                .push(build::connection_cleared(pid, p, kind, ext, cause::NONE));
        }
        self.out.push(build::cleared(pid, p, cause::NONE));
        self.out.push(build::end_call(pid, p));
        let placed_internal = call.placed_by != NO_AGENT && b != NO_AGENT;
        self.free_call(slot);
        self.after_call(a);
        if placed_internal || conferenced {
            self.after_call(b);
        }
    }

    /// Out of the IVR: queue the call; reserve an agent at once if one is
    /// available; overflow when the queues are full.
    fn queue(&mut self, slot: u32) {
        let pid = self.config.peripheral_id;
        let call = self.calls[slot as usize].as_ref().expect("live call");
        let g = call.group;
        let waiting = self.world.groups[g as usize].queue.len();
        if let Some(a) = self.world.take_available(g) {
            self.out
                .push(build::queued(pid, &self.world, call, waiting + 1));
            self.offer(slot, a);
        } else if self.queued >= self.world.max_queued {
            let c = call.primary(&self.world);
            let kind = device_type::TRUNK;
            self.out
                .push(build::connection_cleared(pid, c, kind, c.dev, cause::NONE));
            self.out
                .push(build::cleared(pid, c, cause::MAX_QUEUE_EXCEEDED));
            self.out.push(build::end_call(pid, c));
            self.free_call(slot);
        } else {
            self.world.groups[g as usize].queue.push_back(slot);
            self.queued += 1;
            self.out
                .push(build::queued(pid, &self.world, call, waiting + 1));
            let patience = self.world.timing.draw(&mut self.rng, secs::PATIENCE);
            self.schedule_call(slot, patience, CallStep::Abandon);
        }
    }

    /// Reserves agent `a` for the call in `slot` and takes the call out of queue.
    pub(super) fn offer(&mut self, slot: u32, a: u32) {
        let pid = self.config.peripheral_id;
        self.set_state(a, RESERVED, 0, Some(direction::IN));
        let call = self.calls[slot as usize].as_mut().expect("live call");
        call.agent = a;
        let left = self.world.groups[call.group as usize].queue.len();
        self.out.push(build::dequeued(pid, &self.world, call, left));
        let gap = self.world.timing.gap(ROUTE_GAP);
        self.schedule_call(slot, gap, CallStep::Alert);
    }

    /// Holds the customer and claims a consult target, or carries on talking
    /// when nobody is available.
    fn consult_start(&mut self, slot: u32) {
        let pid = self.config.peripheral_id;
        let call = self.calls[slot as usize].as_ref().expect("live call");
        let (a, first, left) = (call.agent, call.group, call.talk_left);
        let nr_groups = self.world.groups.len() as u16;
        let target =
            (0..nr_groups).find_map(|k| self.world.take_available((first + k) % nr_groups));
        let Some(b) = target else {
            self.schedule_call(slot, left, CallStep::Hangup);
            return;
        };
        let consult_id = self.next_call_id();
        let claimed = &mut self.world.agents[b as usize];
        claimed.enter(self.out.now, RESERVED);
        claimed.timer = 0;
        let call = self.calls[slot as usize].as_mut().expect("live call");
        call.other = b;
        call.consult_id = consult_id;
        call.phase = Phase::Consulting { consult_up: false };
        let agent = &self.world.agents[a as usize];
        self.out
            .push(build::held(pid, call.primary(&self.world), agent));
        self.set_state(a, HOLD, 0, Some(direction::IN));
        let dial = self.world.timing.draw(&mut self.rng, secs::CONSULT_DIAL);
        self.schedule_call(slot, dial, CallStep::ConsultDial);
    }

    /// Completes the consult as a transfer or a conference.
    pub(super) fn consult_complete(&mut self, slot: u32, transfer: bool) {
        let pid = self.config.peripheral_id;
        let world = &self.world;
        let call = self.calls[slot as usize].as_mut().expect("live call");
        let (a, b) = (call.agent, call.other);
        let (p, c) = (call.primary(world), call.consult(world));
        self.out.push(build::merged(pid, world, call, transfer));
        if transfer {
            let ext = &world.agents[a as usize].ext;
            let kind = device_type::DEVICE_IDENTIFIER;
            self.out.push(build::connection_cleared(
                pid,
                p,
                kind,
                ext,
                cause::TRANSFER,
            ));
            self.out.push(build::cleared(pid, c, cause::TRANSFER));
            self.out.push(build::end_call(pid, c));
            call.agent = b;
            call.other = NO_AGENT;
            call.consult_id = 0;
            call.phase = Phase::Talking;
            let left = call.talk_left;
            self.after_call(a);
            self.talk_on(slot, b, left);
        } else {
            self.out.push(build::cleared(pid, c, cause::KEY_CONFERENCE));
            self.out.push(build::end_call(pid, c));
            call.consult_id = 0;
            call.phase = Phase::Conferenced;
            // A manual agent leaves the conference when its desktop says so.
            if !self.world.agents[a as usize].manual {
                let talk = self.world.timing.draw(&mut self.rng, secs::CONFERENCE_TALK);
                self.schedule_call(slot, talk, CallStep::ConferenceDrop);
            }
        }
    }

    /// A new live call takes a slot.
    pub(super) fn store_call(&mut self, call: Call) -> u32 {
        self.live_calls += 1;
        match self.free_slots.pop() {
            Some(slot) => {
                self.calls[slot as usize] = Some(call);
                slot
            }
            None => {
                self.calls.push(Some(call));
                self.calls.len() as u32 - 1
            }
        }
    }

    /// Ends a call's life: its trunk and slot go back to the pools.
    fn free_call(&mut self, slot: u32) {
        if let Some(call) = self.calls[slot as usize].take() {
            self.free_trunks.push_back(call.trunk);
            self.free_slots.push(slot);
            self.live_calls -= 1;
        }
    }
}
