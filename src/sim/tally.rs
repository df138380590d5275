//! What the simulated PG counts per agent for QUERY_AGENT_STATISTICS_REQ
//! (docs/requests.md §9): time in each state and the calls the agent took,
//! for its login session and for the simulated day. Plain data, updated on
//! every state change the simulator makes; no events, no draws from the
//! RNG, so counting leaves the stream as it was.
//!
//! Talk, hold and wrap-up time are not split by kind of call: all of it is
//! reported under the handled-call counters (HandledCallsTalkTime,
//! IncomingCallsHeldTime, HandledCallsAfterCallTime). Counters the simulated
//! peripheral has nothing for (ICM availability, routable time, outbound
//! campaigns, supervisor actions, the per-kind talk times) stay 0.

use crate::proto::constants::agent_state::*;
use crate::proto::msg::AgentStatistics;

/// Nanoseconds of simulated time per day ("today" starts at each multiple).
const DAY_NS: u64 = 86_400 * 1_000_000_000;
/// Nanoseconds per second: the counters report whole seconds.
const SEC_NS: u64 = 1_000_000_000;

/// Calls an agent takes part in, by how it took part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallCount {
    /// A customer call it answered (HandledCalls).
    Handled,
    /// A call it placed outside the PG (AgentOutCalls).
    Out,
    /// A call it placed to another agent, or a consult it started (InternalCalls).
    Internal,
    /// A consult or call from another agent it answered (InternalCallsRcvd).
    InternalReceived,
}

/// Counts over one period (a login session, or a day).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Nanoseconds logged on (any state but LOGOUT).
    pub logged_on: u64,
    pub available: u64,
    pub not_ready: u64,
    pub talking: u64,
    pub held: u64,
    /// In WORK_READY or WORK_NOT_READY.
    pub wrap_up: u64,
    pub handled: u32,
    /// Times it put a call on hold (IncomingCallsHeld).
    pub holds: u32,
    pub out: u32,
    pub internal: u32,
    pub internal_received: u32,
}

/// One agent's counters: the state being timed and the two periods.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// When the present state began (simulated ns).
    since: u64,
    /// The simulated day `today` counts.
    day: u64,
    session: Counts,
    today: Counts,
}

impl Counts {
    /// `ns` spent in `state`.
    fn spend(&mut self, state: u16, ns: u64) {
        if state != LOGOUT {
            self.logged_on += ns;
        }
        let bucket = match state {
            AVAILABLE => &mut self.available,
            NOT_READY => &mut self.not_ready,
            TALKING => &mut self.talking,
            HOLD => &mut self.held,
            WORK_READY | WORK_NOT_READY => &mut self.wrap_up,
            _ => return,
        };
        *bucket += ns;
    }

    fn count(&mut self, call: CallCount) {
        let n = match call {
            CallCount::Handled => &mut self.handled,
            CallCount::Out => &mut self.out,
            CallCount::Internal => &mut self.internal,
            CallCount::InternalReceived => &mut self.internal_received,
        };
        *n = n.saturating_add(1);
    }

    /// The 42 counters of one period, in wire order (docs/protocol.md §12.4).
    fn write(&self, out: &mut [u32]) {
        let secs = |ns: u64| u32::try_from(ns / SEC_NS).unwrap_or(u32::MAX);
        out[0] = secs(self.available);
        out[1] = secs(self.logged_on);
        out[2] = secs(self.not_ready);
        out[5] = self.out;
        out[10] = self.handled;
        out[11] = secs(self.talking);
        out[12] = secs(self.wrap_up);
        out[13] = secs(self.talking + self.held + self.wrap_up);
        out[14] = self.holds;
        out[15] = secs(self.held);
        out[16] = self.internal;
        out[18] = self.internal_received;
    }
}

impl Tally {
    /// The agent leaves `from` for `to` at `now`.
    pub fn changed(&mut self, now: u64, from: u16, to: u16) {
        self.roll(now);
        let spent = now.saturating_sub(self.since);
        self.session.spend(from, spent);
        self.today.spend(from, spent);
        self.since = now;
        if to == HOLD && from != HOLD {
            self.session.holds += 1;
            self.today.holds += 1;
        }
        if to == LOGIN && from == LOGOUT {
            self.session = Counts::default();
        }
    }

    /// The agent took part in a call at `now`.
    pub fn count(&mut self, now: u64, call: CallCount) {
        self.roll(now);
        self.session.count(call);
        self.today.count(call);
    }

    /// A new day starts today's counts afresh.
    fn roll(&mut self, now: u64) {
        let day = now / DAY_NS;
        if day != self.day {
            self.day = day;
            self.today = Counts::default();
        }
    }

    /// The counts of both periods at `now`, the agent being in `state`
    /// (its time there so far included).
    pub fn at(&self, now: u64, state: u16) -> (Counts, Counts) {
        let mut now_tally = self.clone();
        now_tally.changed(now, state, state);
        (now_tally.session, now_tally.today)
    }

    /// QUERY_AGENT_STATISTICS_CONF's block at `now` (session, then today).
    pub fn statistics(&self, now: u64, state: u16) -> AgentStatistics {
        let (session, today) = self.at(now, state);
        let mut block = AgentStatistics::default();
        let (first, second) = block.0.split_at_mut(42);
        session.write(first);
        today.write(second);
        block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_goes_to_the_state_left_and_the_session_restarts_at_login() {
        let mut t = Tally::default();
        t.changed(SEC_NS, LOGOUT, LOGIN);
        t.changed(SEC_NS, LOGIN, NOT_READY);
        t.changed(11 * SEC_NS, NOT_READY, AVAILABLE);
        t.changed(31 * SEC_NS, AVAILABLE, RESERVED);
        t.count(32 * SEC_NS, CallCount::Handled);
        t.changed(32 * SEC_NS, RESERVED, TALKING);
        t.changed(40 * SEC_NS, TALKING, HOLD);
        let block = t.statistics(45 * SEC_NS, HOLD);
        assert_eq!(block.get("not_ready_time_session"), Some(10));
        assert_eq!(block.get("avail_time_session"), Some(20));
        assert_eq!(block.get("logged_on_time_session"), Some(44));
        assert_eq!(block.get("handled_calls_session"), Some(1));
        assert_eq!(block.get("handled_calls_talk_time_today"), Some(8));
        assert_eq!(block.get("incoming_calls_held_session"), Some(1));
        assert_eq!(block.get("incoming_calls_held_time_session"), Some(5));
        assert_eq!(block.get("handled_calls_time_session"), Some(13));
        // Logged out and back in: a new session, the same day.
        t.changed(50 * SEC_NS, HOLD, LOGOUT);
        t.changed(60 * SEC_NS, LOGOUT, LOGIN);
        let block = t.statistics(70 * SEC_NS, LOGIN);
        assert_eq!(block.get("handled_calls_session"), Some(0));
        assert_eq!(block.get("logged_on_time_session"), Some(10));
        assert_eq!(block.get("handled_calls_today"), Some(1));
        assert_eq!(block.get("logged_on_time_today"), Some(59));
    }

    #[test]
    fn today_starts_afresh_each_simulated_day() {
        let mut t = Tally::default();
        t.changed(0, LOGOUT, LOGIN);
        t.count(SEC_NS, CallCount::Out);
        t.count(DAY_NS + SEC_NS, CallCount::Internal);
        let block = t.statistics(DAY_NS + 2 * SEC_NS, LOGIN);
        assert_eq!(block.get("agent_out_calls_today"), Some(0));
        assert_eq!(block.get("internal_calls_today"), Some(1));
        assert_eq!(block.get("agent_out_calls_session"), Some(1));
    }
}
