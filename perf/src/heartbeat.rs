//! When the swarm sends its CTI sessions' HEARTBEAT_REQs, and what sending
//! them costs the swarm. Pure arithmetic on nanosecond timestamps; no I/O.
//!
//! * `synchronized` (the default, and the swarm's behaviour before modes
//!   existed): a session sends once the period has passed since it opened
//!   or last sent, checked on the swarm's once-a-second tick. Sessions that
//!   opened in the same second send in the same tick, so a PG's worth of
//!   desktops that opened together heartbeat together: one round of
//!   thousands of writes every period.
//! * `spread`: session `i` of `n` sends at `anchor + i/n × period + k ×
//!   period`, so the swarm sends a steady trickle (n per period) instead.
//!
//! A *round* is one pass of the swarm's loop that sent at least one
//! heartbeat; its time (first write to last) is time the swarm's one thread
//! did not spend reading deliveries, which is what tells a latency stall
//! caused by the harness from one caused by the router.

use serde::{Deserialize, Serialize};

/// Seconds between a CTI session's HEARTBEAT_REQs (docs/protocol.md §6.3: 5 s
/// minimum; desktops use more).
pub const PERIOD_NS: u64 = 10_000_000_000;

/// `[load] heartbeats` / `run --heartbeats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Each session a period after its open / last heartbeat, on the
    /// one-second tick: sessions opened together send together.
    #[default]
    Synchronized,
    /// Session `i` of `n` at `i/n` of the period: a steady trickle.
    Spread,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Synchronized => "synchronized",
            Mode::Spread => "spread",
        }
    }
}

/// The heartbeat schedule of `n` sessions.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub mode: Mode,
    period_ns: u64,
    n: u64,
    anchor_ns: u64,
    /// Spread: the next slot not handed out yet (slot `s` is session
    /// `s % n`, due at `anchor + s × period / n`).
    next_slot: u64,
}

impl Schedule {
    pub fn new(mode: Mode, period_ns: u64, n: usize, anchor_ns: u64) -> Schedule {
        Schedule {
            mode,
            period_ns: period_ns.max(1),
            n: n as u64,
            anchor_ns,
            next_slot: 0,
        }
    }

    /// Synchronized: whether a session that opened or last sent at
    /// `last_ns` sends at the tick `now_ns`.
    pub fn sync_due(&self, last_ns: u64, now_ns: u64) -> bool {
        now_ns.saturating_sub(last_ns) >= self.period_ns
    }

    /// Spread: the sessions whose heartbeat came due since the last call
    /// (by `now_ns`), in order, each at most once (a swarm that fell more
    /// than a period behind sends each session one heartbeat, not several).
    /// Empty in synchronized mode.
    pub fn spread_due(&mut self, now_ns: u64) -> impl Iterator<Item = usize> {
        let n = self.n.max(1);
        let mut slots = 0..0;
        if self.mode == Mode::Spread && self.n > 0 && now_ns >= self.anchor_ns {
            // Slots due by now: those with s × period / n ≤ now − anchor.
            let elapsed = (now_ns - self.anchor_ns) as u128;
            let end = (elapsed * n as u128 / self.period_ns as u128) as u64 + 1;
            slots = self.next_slot.max(end.saturating_sub(n))..end;
            self.next_slot = end;
        }
        slots.map(move |s| (s % n) as usize)
    }
}

/// Heartbeats sent and rounds: the window's (results) or the second's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rounds {
    pub sent: u64,
    /// Passes that sent at least one.
    pub rounds: u64,
    /// The longest round, first write to last, ns.
    pub max_round_ns: u64,
}

impl Rounds {
    /// A pass that sent `sent` heartbeats in `ns` (nothing if none).
    pub fn record(&mut self, sent: u64, ns: u64) {
        if sent == 0 {
            return;
        }
        self.sent += sent;
        self.rounds += 1;
        self.max_round_ns = self.max_round_ns.max(ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 10_000;

    #[test]
    fn modes_parse_from_toml_with_synchronized_the_default() {
        #[derive(Deserialize)]
        struct L {
            #[serde(default)]
            heartbeats: Mode,
        }
        let l: L = toml::from_str("heartbeats = \"spread\"").unwrap();
        assert_eq!(l.heartbeats, Mode::Spread);
        let l: L = toml::from_str("heartbeats = \"synchronized\"").unwrap();
        assert_eq!(l.heartbeats, Mode::Synchronized);
        let l: L = toml::from_str("").unwrap();
        assert_eq!(l.heartbeats, Mode::Synchronized);
        assert!(toml::from_str::<L>("heartbeats = \"sometimes\"").is_err());
    }

    #[test]
    fn synchronized_sends_a_period_after_the_last_one() {
        let s = Schedule::new(Mode::Synchronized, P, 4, 0);
        assert!(!s.sync_due(1_000, 1_000 + P - 1));
        assert!(s.sync_due(1_000, 1_000 + P));
        let mut s = s;
        assert_eq!(s.spread_due(5 * P).count(), 0);
    }

    #[test]
    fn spread_offsets_session_i_by_i_over_n_of_the_period() {
        // When each session is first handed out, stepping 1 ns at a time.
        let mut s = Schedule::new(Mode::Spread, P, 4, 0);
        let mut first = [u64::MAX; 4];
        for t in 0..P {
            for i in s.spread_due(t) {
                first[i] = first[i].min(t);
            }
        }
        assert_eq!(first, [0, 2_500, 5_000, 7_500]);
    }

    #[test]
    fn spread_hands_out_each_session_once_per_period_in_order() {
        let anchor = 1_000_000;
        let mut s = Schedule::new(Mode::Spread, P, 4, anchor);
        let due = |s: &mut Schedule, t: u64| s.spread_due(anchor + t).collect::<Vec<_>>();
        assert_eq!(due(&mut s, 0), [0]);
        assert_eq!(due(&mut s, 2_499), Vec::<usize>::new());
        assert_eq!(due(&mut s, 2_500), [1]);
        assert_eq!(due(&mut s, 7_600), [2, 3]);
        assert_eq!(due(&mut s, 9_999), Vec::<usize>::new());
        // The next period starts over.
        assert_eq!(due(&mut s, P), [0]);
        assert_eq!(due(&mut s, P + 2_500), [1]);
        // Before the anchor: nothing.
        let mut early = Schedule::new(Mode::Spread, P, 4, anchor);
        assert_eq!(early.spread_due(anchor - 1).count(), 0);
    }

    #[test]
    fn spread_is_a_steady_trickle() {
        // 2,000 sessions, 10 s: 200 a second, every second alike.
        let mut s = Schedule::new(Mode::Spread, PERIOD_NS, 2_000, 0);
        let mut per_sec = Vec::new();
        for sec in 0..30u64 {
            let mut n = 0;
            for ms in 0..1_000u64 {
                n += s.spread_due(sec * 1_000_000_000 + ms * 1_000_000).count();
            }
            per_sec.push(n);
        }
        assert!(per_sec.iter().all(|&n| n == 200), "{per_sec:?}");
    }

    #[test]
    fn a_swarm_more_than_a_period_late_sends_each_session_once() {
        let mut s = Schedule::new(Mode::Spread, P, 3, 0);
        assert_eq!(s.spread_due(0).collect::<Vec<_>>(), [0]);
        let late: Vec<usize> = s.spread_due(5 * P).collect();
        let mut sorted = late.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2]);
        assert_eq!(s.spread_due(5 * P).count(), 0);
    }

    #[test]
    fn rounds_count_passes_that_sent_something() {
        let mut r = Rounds::default();
        r.record(0, 9_999);
        r.record(2_000, 14_000_000);
        r.record(1, 20_000);
        assert_eq!(
            r,
            Rounds {
                sent: 2_001,
                rounds: 2,
                max_round_ns: 14_000_000
            }
        );
    }
}
