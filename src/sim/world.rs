//! The simulated PG's population and clock model: agents (ids, extensions,
//! ICM ids, skill groups), skill groups with their queues and longest-available
//! agent lists, the trunk pool, the strings calls draw their data from, the
//! timing derived from the configuration, and the per-call record. Built once
//! by [`World::new`]; every string an event repeats is built here once and
//! cloned into messages.

use std::collections::VecDeque;

use super::rng::Rng;
use super::tally::Tally;
use super::SimConfig;
use crate::proto::constants::agent_state;
use crate::proto::CtiString;

/// "No agent" in [`Call::agent`] / [`Call::other`].
pub const NO_AGENT: u32 = u32::MAX;

/// Target share of agent time spent on calls; the handle times scale to it.
const OCCUPANCY: f64 = 0.85;
/// Agent seconds a call costs at realistic (unscaled) durations, see
/// [`secs`]: ring 4 + talk 180 + wrap-up 16 (80% of calls) + the pause after
/// WORK_NOT_READY 5 + breaks 7 + the consulted agent's time 8 + holds 2.5.
const BASE_AGENT_SECS: f64 = 225.0;
/// Skill groups on the peripheral (fewer when there are fewer agents).
const MAX_GROUPS: usize = 4;

#[derive(Debug, Clone)]
pub struct Agent {
    /// AgentID ("1001"…).
    pub id: CtiString,
    /// AgentExtension, also the AgentInstrument ("3001"…).
    pub ext: CtiString,
    /// ICMAgentID (skill target id).
    pub icm_id: i32,
    /// Indexes into [`World::groups`]; the first is the primary group.
    pub groups: Vec<u16>,
    /// The state the simulator holds the agent in (the last one sent, or
    /// RESERVED as soon as a consult has claimed it).
    pub state: u16,
    /// Bumped each time the agent becomes available: tells live entries of the
    /// available lists from stale ones.
    pub epoch: u32,
    /// Sequence number of the agent's pending timer (0: none).
    pub timer: u64,
    /// Driven by requests only (`--manual-agents`, or since its first
    /// request): no timers of its own; its calls ring until answered and
    /// last until it hangs up; after a call it stays in wrap-up until set.
    pub manual: bool,
    /// The wrap-up state a manual agent asked for during its call
    /// (WORK_READY when it did not ask).
    pub wrap_up: u16,
    /// What QUERY_AGENT_STATISTICS reports: time per state, calls taken.
    pub tally: Tally,
}

impl Agent {
    /// Moves the agent to `state` at `now` (simulated ns), counting its
    /// time in the state it leaves. Every state change goes through here.
    pub fn enter(&mut self, now: u64, state: u16) {
        self.tally.changed(now, self.state, state);
        self.state = state;
    }
}

#[derive(Debug, Clone)]
pub struct Group {
    /// SkillGroupNumber (peripheral number).
    pub number: u32,
    /// SkillGroupID (ICM id).
    pub id: u32,
    /// The route point (DNIS) callers dial for this group.
    pub route_point: CtiString,
    /// Call slots waiting for an agent, oldest first.
    pub queue: VecDeque<u32>,
    /// (agent, epoch) in the order they became available: longest available first.
    pub avail: VecDeque<(u32, u32)>,
    pub members: u32,
}

#[derive(Debug, Clone)]
pub struct Trunk {
    pub number: u32,
    pub group_number: u32,
    /// The trunk's device id: the ConnectionDeviceID of the calls it carries.
    pub dev: CtiString,
}

/// Strings call data is drawn from.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub languages: Vec<CtiString>,
    pub intents: Vec<CtiString>,
    pub tiers: Vec<CtiString>,
    pub var_account: CtiString,
    pub var_intent: CtiString,
}

/// What happens to a call once an agent answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Plain,
    Hold,
    Transfer,
    Conference,
}

/// One live inbound call (and its consult call, while there is one).
#[derive(Debug, Clone)]
pub struct Call {
    /// Running number: RouterCallKeyCallID.
    pub serial: u32,
    /// ConnectionCallID; the ConnectionDeviceID is the trunk's device id.
    pub id: u32,
    pub trunk: u32,
    pub group: u16,
    pub ani: CtiString,
    pub account: CtiString,
    pub language: u8,
    pub intent: u8,
    pub tier: u8,
    /// Whether the call carries the second ECC variable ("user.intent").
    pub named_intent: bool,
    pub plan: Plan,
    /// The agent connected to the customer (or reserved for the call).
    pub agent: u32,
    /// The consulted agent, during a consult or conference.
    pub other: u32,
    /// ConnectionCallID of the consult call (its device is `agent`'s instrument).
    pub consult_id: u32,
    /// Talk time still to go after the hold / consult.
    pub talk_left: u64,
    /// Sequence number of the call's pending timer.
    pub timer: u64,
    /// Where the call stands, for the requests that act on it.
    pub phase: Phase,
    /// The agent who placed the call (MAKE_CALL_REQ; its instrument names
    /// the call), or [`NO_AGENT`] for an inbound call (named by its trunk).
    pub placed_by: u32,
    /// The number a placed call dialed outside the PG (empty: internal, to `other`).
    pub dialed: CtiString,
    /// Call data set by SET_CALL_DATA_REQ (CallVariable1–10, wrap-up data).
    pub data: Box<SetData>,
}

/// Where a call stands (the parts the requests need).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// In the IVR, queued, or reserved for an agent.
    Routing,
    /// Ringing at `agent` (or, for a placed internal call, at `other`;
    /// outside the PG for a placed external call).
    Ringing,
    /// `agent` talks to the customer (and `other` on a placed internal call).
    Talking,
    /// `agent` holds the customer.
    Held,
    /// `agent` holds the customer and consults `other` on the consult call
    /// (ringing until `consult_up`).
    Consulting { consult_up: bool },
    /// `agent`, `other` and the customer.
    Conferenced,
}

/// Values SET_CALL_DATA_REQ stored on a call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetData {
    pub variables: [Option<CtiString>; 10],
    pub wrapup: Option<CtiString>,
}

/// Durations in nanoseconds of simulated time.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Factor applied to the realistic durations so that the configured
    /// agents can carry the configured call rate at [`OCCUPANCY`].
    pub scale: f64,
    /// Mean gap between call arrivals (`None`: no calls).
    pub arrival_mean: Option<f64>,
    /// First arrival: after the agents have logged in.
    pub first_arrival: u64,
    /// Agents log in spread over this long.
    pub login_spread: u64,
}

/// Realistic mean durations in seconds (before scaling).
pub mod secs {
    pub const IVR: f64 = 15.0;
    pub const RING: f64 = 4.0;
    pub const TALK: f64 = 180.0;
    pub const HOLD: f64 = 25.0;
    pub const CONSULT_DIAL: f64 = 2.0;
    pub const CONSULT_TALK: f64 = 30.0;
    pub const CONFERENCE_TALK: f64 = 45.0;
    pub const WRAP: f64 = 20.0;
    pub const BREAK: f64 = 180.0;
    /// NOT_READY after WORK_NOT_READY.
    pub const PAUSE: f64 = 20.0;
    pub const BREAK_START: f64 = 60.0;
    pub const PATIENCE: f64 = 90.0;
}

/// Realistic gaps between the steps of a call setup, in nanoseconds (scaled
/// like the rest): trunk seizure → call data, dequeue → ringing.
pub const DATA_GAP: u64 = 8_000_000;
pub const ROUTE_GAP: u64 = 25_000_000;

impl Timing {
    fn new(config: &SimConfig) -> Timing {
        let cps = config.calls_per_sec;
        let agents = config.agents as f64;
        let busy = cps.is_finite() && cps > 0.0;
        let scale = if busy && agents > 0.0 {
            (OCCUPANCY * agents / cps / BASE_AGENT_SECS).clamp(1e-4, 1.0)
        } else {
            1.0
        };
        let login_spread = (config.agents as u64 * 20_000_000).min(30_000_000_000);
        Timing {
            scale,
            arrival_mean: busy.then(|| 1.0 / cps),
            first_arrival: login_spread + 3_000_000_000,
            login_spread,
        }
    }

    /// Nanoseconds of `secs` seconds, at least 1 µs.
    pub fn ns(secs: f64) -> u64 {
        ((secs * 1e9) as u64).max(1_000)
    }

    /// A fixed gap of `base_ns` realistic nanoseconds, scaled.
    pub fn gap(&self, base_ns: u64) -> u64 {
        ((base_ns as f64 * self.scale) as u64).max(1_000)
    }

    /// A scaled duration: 20% fixed, 80% exponential around `mean_secs`.
    pub fn draw(&self, rng: &mut Rng, mean_secs: f64) -> u64 {
        let mean = mean_secs * self.scale;
        Self::ns(0.2 * mean + rng.exp(0.8 * mean))
    }
}

/// Everything fixed for the life of a simulator, plus the agent and queue state.
#[derive(Debug, Clone)]
pub struct World {
    pub agents: Vec<Agent>,
    pub groups: Vec<Group>,
    pub trunks: Vec<Trunk>,
    pub catalog: Catalog,
    pub timing: Timing,
    /// Calls that may wait in queue at once (all groups); more overflow.
    pub max_queued: usize,
}

impl World {
    pub fn new(config: &SimConfig) -> World {
        let timing = Timing::new(config);
        let n = config.agents as usize;
        let nr_groups = n.clamp(1, MAX_GROUPS);
        let mut groups: Vec<Group> = (0..nr_groups as u32)
            .map(|g| Group {
                number: 101 + g,
                id: 5101 + g,
                route_point: CtiString::from(format!("{}", 8001 + g)),
                queue: VecDeque::new(),
                avail: VecDeque::new(),
                members: 0,
            })
            .collect();
        // Small centers: "1001"/"3001"; large ones get 7-digit ids so the
        // id and extension ranges never meet.
        let (id_base, ext_base) = if n <= 999 {
            (1001, 3001)
        } else {
            (1_000_001, 3_000_001)
        };
        let agents = (0..n)
            .map(|i| {
                let primary = (i % nr_groups) as u16;
                let mut member_of = vec![primary];
                if i % 4 == 3 && nr_groups > 1 {
                    member_of.push(((i + 1) % nr_groups) as u16);
                }
                for &g in &member_of {
                    groups[g as usize].members += 1;
                }
                Agent {
                    id: CtiString::from(format!("{}", id_base + i)),
                    ext: CtiString::from(format!("{}", ext_base + i)),
                    icm_id: 5001 + i as i32,
                    groups: member_of,
                    state: agent_state::LOGOUT,
                    epoch: 0,
                    timer: 0,
                    manual: i >= n.saturating_sub(config.manual_agents as usize),
                    wrap_up: agent_state::WORK_READY,
                    tally: Tally::default(),
                }
            })
            .collect();
        let max_queued = n.max(16);
        let in_ivr = timing
            .arrival_mean
            .map_or(0.0, |mean| 3.0 * secs::IVR * timing.scale / mean);
        let nr_trunks = (n + max_queued + 16 + in_ivr.min(1e6) as usize).min(1 << 20);
        let trunks = (0..nr_trunks as u32)
            .map(|t| Trunk {
                number: 1 + t,
                group_number: 200 + t / 24,
                dev: CtiString::from(format!("T{}", 1 + t)),
            })
            .collect();
        let strings = |xs: &[&str]| xs.iter().map(|&s| CtiString::from(s)).collect();
        World {
            agents,
            groups,
            trunks,
            catalog: Catalog {
                languages: strings(&["en-US", "es-US", "fr-CA"]),
                intents: strings(&["billing", "support", "sales", "retention"]),
                tiers: strings(&["gold", "silver", "bronze"]),
                var_account: "user.account".into(),
                var_intent: "user.intent".into(),
            },
            timing,
            max_queued,
        }
    }

    /// Takes the longest-available agent of group `g` off the available list.
    pub fn take_available(&mut self, g: u16) -> Option<u32> {
        let agents = &self.agents;
        let avail = &mut self.groups[g as usize].avail;
        while let Some((a, epoch)) = avail.pop_front() {
            let agent = &agents[a as usize];
            if agent.state == agent_state::AVAILABLE && agent.epoch == epoch {
                return Some(a);
            }
        }
        None
    }

    /// Puts an agent that just became available at the back of its groups' lists.
    pub fn push_available(&mut self, a: u32) {
        let agent = &mut self.agents[a as usize];
        agent.epoch = agent.epoch.wrapping_add(1);
        let epoch = agent.epoch;
        for i in 0..self.agents[a as usize].groups.len() {
            let g = self.agents[a as usize].groups[i] as usize;
            let group = &mut self.groups[g];
            group.avail.push_back((a, epoch));
            // Stale entries pile up in a group whose calls rarely come: drop them.
            if group.avail.len() > 2 * group.members as usize + 8 {
                let agents = &self.agents;
                group.avail.retain(|&(a, e)| {
                    let agent = &agents[a as usize];
                    agent.state == agent_state::AVAILABLE && agent.epoch == e
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_scale_to_the_offered_load() {
        let small = Timing::new(&SimConfig::default());
        assert!(small.scale > 0.03 && small.scale < 0.05, "{}", small.scale);
        let big = Timing::new(&SimConfig {
            agents: 2000,
            calls_per_sec: 5.0,
            ..SimConfig::default()
        });
        assert_eq!(big.scale, 1.0);
        let idle = Timing::new(&SimConfig {
            calls_per_sec: 0.0,
            ..SimConfig::default()
        });
        assert_eq!(idle.arrival_mean, None);
    }

    #[test]
    fn population_has_unique_devices_and_shared_skill_groups() {
        let w = World::new(&SimConfig::default());
        assert_eq!(w.agents.len(), 50);
        assert_eq!(w.agents[0].id.as_bytes(), b"1001");
        assert_eq!(w.agents[0].ext.as_bytes(), b"3001");
        assert_eq!(w.groups.len(), MAX_GROUPS);
        assert!(w.agents.iter().any(|a| a.groups.len() == 2));
        let mut exts: Vec<_> = w.agents.iter().map(|a| a.ext.clone()).collect();
        exts.dedup();
        assert_eq!(exts.len(), 50);
        assert!(w.trunks.len() >= 50 + w.max_queued);
    }

    #[test]
    fn longest_available_agent_is_taken_first_and_stale_entries_skipped() {
        let mut w = World::new(&SimConfig {
            agents: 8,
            ..SimConfig::default()
        });
        for a in [4u32, 0] {
            w.agents[a as usize].state = agent_state::AVAILABLE;
            w.push_available(a);
        }
        w.agents[4].state = agent_state::NOT_READY;
        assert_eq!(w.take_available(0), Some(0));
        assert_eq!(w.take_available(0), None);
    }
}
