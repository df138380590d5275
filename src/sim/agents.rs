//! The agent state machine outside calls: login, becoming available (and
//! taking the oldest waiting call at once), breaks and wrap-up with Not Ready
//! reason codes, and the AGENT_STATE_EVENT each change sends. An agent has at
//! most one pending timer; reserving the agent for a call cancels it.

use super::build::{self, direction};
use super::world::secs;
use super::Simulator;
use crate::proto::constants::agent_state::*;

/// Steps of an agent outside calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStep {
    Login,
    /// NOT_READY → AVAILABLE.
    Ready,
    /// AVAILABLE → NOT_READY with a reason code.
    Break,
    /// End of wrap-up: WORK_READY → AVAILABLE, WORK_NOT_READY → NOT_READY.
    WrapDone,
}

/// After a call: WORK_READY, WORK_NOT_READY, AVAILABLE, NOT_READY (a break).
const AFTER_CALL: [f64; 4] = [0.55, 0.25, 0.18, 0.02];
/// Chance an agent who becomes available takes a break before the next call.
const BREAK_CHANCE: f64 = 0.02;
/// Not Ready reason codes (1 break, 2 lunch, 3 meeting, 4 training, 5 personal).
const REASONS: [f64; 5] = [0.45, 0.15, 0.15, 0.1, 0.15];

impl Simulator {
    pub(super) fn agent_step(&mut self, a: u32, step: AgentStep) {
        match step {
            AgentStep::Login => {
                self.set_state(a, LOGIN, 0, None);
                self.set_state(a, NOT_READY, 0, None);
                let ready = self.rng.range(500_000_000, 3_000_000_000);
                self.schedule_agent(a, ready, AgentStep::Ready);
            }
            AgentStep::Ready => self.available(a),
            AgentStep::Break => self.not_ready(a, secs::BREAK),
            AgentStep::WrapDone => match self.world.agents[a as usize].state {
                WORK_NOT_READY => self.not_ready(a, secs::PAUSE),
                _ => self.available(a),
            },
        }
    }

    /// The agent's call is over: wrap-up, or straight back to work or a break.
    pub(super) fn after_call(&mut self, a: u32) {
        let agent = &mut self.world.agents[a as usize];
        if agent.manual {
            // Wrap-up until its desktop sets the next state.
            let state = std::mem::replace(&mut agent.wrap_up, WORK_READY);
            self.set_state(a, state, 0, Some(direction::IN));
            return;
        }
        match self.rng.pick(&AFTER_CALL) {
            choice @ (0 | 1) => {
                let state = [WORK_READY, WORK_NOT_READY][choice];
                self.set_state(a, state, 0, Some(direction::IN));
                let wrap = self.world.timing.draw(&mut self.rng, secs::WRAP);
                self.schedule_agent(a, wrap, AgentStep::WrapDone);
            }
            2 => self.available(a),
            _ => self.not_ready(a, secs::BREAK),
        }
    }

    /// NOT_READY with a reason code, back after `mean_secs` (scaled).
    fn not_ready(&mut self, a: u32, mean_secs: f64) {
        let reason = 1 + self.rng.pick(&REASONS) as u16;
        self.set_state(a, NOT_READY, reason, None);
        let pause = self.world.timing.draw(&mut self.rng, mean_secs);
        self.schedule_agent(a, pause, AgentStep::Ready);
    }

    /// AVAILABLE: take the oldest call waiting in one of the agent's groups,
    /// or join the available lists (and maybe plan a break).
    pub(super) fn available(&mut self, a: u32) {
        self.set_state(a, AVAILABLE, 0, None);
        let oldest = self.world.agents[a as usize]
            .groups
            .iter()
            .filter_map(|&g| {
                let slot = *self.world.groups[g as usize].queue.front()?;
                let serial = self.calls[slot as usize].as_ref()?.serial;
                Some((serial, g))
            })
            .min();
        if let Some((_, g)) = oldest {
            let slot = self.world.groups[g as usize]
                .queue
                .pop_front()
                .expect("front");
            self.queued -= 1;
            self.offer(slot, a);
            return;
        }
        self.world.push_available(a);
        if !self.world.agents[a as usize].manual && self.rng.chance(BREAK_CHANCE) {
            let wait = self.world.timing.draw(&mut self.rng, secs::BREAK_START);
            self.schedule_agent(a, wait, AgentStep::Break);
        }
    }

    /// Moves agent `a` to `state`, sends its AGENT_STATE_EVENT and cancels any
    /// pending agent timer when the agent goes to work on a call.
    pub(super) fn set_state(&mut self, a: u32, state: u16, reason: u16, dir: Option<u32>) {
        let agent = &mut self.world.agents[a as usize];
        agent.enter(self.out.now, state);
        if state == RESERVED {
            agent.timer = 0;
        }
        let pid = self.config.peripheral_id;
        self.out
            .push(build::agent_state(pid, &self.world, a, state, reason, dir));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::constants::msg;
    use crate::proto::Message;
    use crate::sim::SimConfig;

    #[test]
    fn reserving_an_agent_cancels_its_pending_timer() {
        let mut sim = Simulator::new(SimConfig {
            agents: 2,
            calls_per_sec: 0.0,
            ..SimConfig::default()
        });
        assert_ne!(sim.world.agents[0].timer, 0);
        sim.set_state(0, RESERVED, 0, None);
        assert_eq!(sim.world.agents[0].timer, 0);
    }

    #[test]
    fn agent_becoming_available_takes_the_waiting_call() {
        let mut sim = Simulator::new(SimConfig {
            agents: 1,
            calls_per_sec: 0.5,
            ..SimConfig::default()
        });
        let events: Vec<Message> = (0..20_000).map(|_| sim.next_event().1).collect();
        let call_of = |m: &Message| match m {
            Message::CallQueuedEvent(e) => Some(e.connection_call_id),
            Message::CallDequeuedEvent(e) => Some(e.connection_call_id),
            _ => None,
        };
        let state = |m: &Message| match m {
            Message::AgentStateEvent(e) => Some(e.agent_state),
            _ => None,
        };
        // CALL_QUEUED not followed by a reservation: the call waits. Later the
        // agent's AVAILABLE is followed at once by RESERVED + CALL_DEQUEUED of it.
        let taken = events.windows(3).filter(|w| {
            w[0].message_type() == msg::AGENT_STATE_EVENT
                && state(&w[0]) == Some(AVAILABLE)
                && state(&w[1]) == Some(RESERVED)
                && w[2].message_type() == msg::CALL_DEQUEUED_EVENT
                && events.windows(2).any(|q| {
                    q[0].message_type() == msg::CALL_QUEUED_EVENT
                        && call_of(&q[0]) == call_of(&w[2])
                        && state(&q[1]) != Some(RESERVED)
                })
        });
        assert!(taken.count() > 0);
    }
}
