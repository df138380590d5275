//! A reconnect storm as the sessions lived it: for each session that
//! dropped its connection in the phase, when it dropped and re-opened, and
//! for each query it sent right after its OPEN_CONF (QUERY_AGENT_STATE_REQ,
//! SNAPSHOT_DEVICE_REQ) how and when it was answered, what the answer said
//! and the first event of its agent the session read after it; and what
//! those records add up to (answer latency from OPEN_CONF, failures, answers
//! that disagree with the PG's stream). No I/O here.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::pg::{History, View};
use crate::requests::{Kind, Outcome};
use crate::tally::histogram;

/// One query sent after a re-open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRecord {
    pub kind: Kind,
    /// When its answer was read (0: not yet).
    pub answered_ns: u64,
    pub outcome: Option<Outcome>,
    /// What a confirmation said.
    pub view: Option<View>,
    /// Seq of the first event the session read after the answer
    /// (`u64::MAX`: none yet).
    pub next_seq: u64,
}

impl QueryRecord {
    pub fn new(kind: Kind) -> QueryRecord {
        QueryRecord {
            kind,
            answered_ns: 0,
            outcome: None,
            view: None,
            next_seq: u64::MAX,
        }
    }
}

/// One session's drop and re-open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reopen {
    pub group: usize,
    /// Its agent.
    pub agent: u32,
    pub dropped_ns: u64,
    /// The driver's last seq when it dropped.
    pub dropped_seq: u64,
    /// OPEN_CONF of the new connection read (0: not re-opened).
    pub opened_ns: u64,
    /// Whether it sends the queries once open.
    pub queries: bool,
    pub sent: Vec<QueryRecord>,
}

impl Reopen {
    /// Whether there is nothing more to wait for: re-opened, and every
    /// query it sends answered one way or another.
    pub fn done(&self) -> bool {
        self.opened_ns != 0
            && (!self.queries
                || (self.sent.len() == Kind::QUERIES.len()
                    && self.sent.iter().all(|q| q.answered_ns != 0)))
    }

    /// OPEN_CONF → the last answer, if every query got its confirmation.
    pub fn answered_in_ns(&self) -> Option<u64> {
        if self.opened_ns == 0 || self.sent.len() != Kind::QUERIES.len() {
            return None;
        }
        self.sent
            .iter()
            .map(|q| (q.outcome == Some(Outcome::Conf)).then_some(q.answered_ns))
            .try_fold(0u64, |last, at| Some(last.max(at?)))
            .map(|last| last.saturating_sub(self.opened_ns))
    }
}

/// One query type over the storm.
#[derive(Debug, Clone)]
pub struct KindStats {
    pub kind: Kind,
    pub sent: u64,
    /// Answered by its own confirmation.
    pub confs: u64,
    /// `FAILURE_CONF n` / `CONTROL_FAILURE_CONF n` / `wrong type n`.
    pub failures: BTreeMap<String, u64>,
    /// No answer after the drain.
    pub unanswered: u64,
    /// Confirmations whose content disagrees with the PG's stream.
    pub mismatched: u64,
    /// OPEN_CONF → confirmation read, ns.
    pub latency: Histogram<u64>,
}

/// The storm, added up.
#[derive(Debug, Clone)]
pub struct StormStats {
    /// Sessions that dropped, and of them those that opened again.
    pub dropped: u64,
    pub reopened: u64,
    /// Sessions that send the queries, and of them those whose every query
    /// got its confirmation.
    pub querying: u64,
    pub answered: u64,
    /// OPEN_CONF → the last of a session's answers, answered sessions only.
    pub sessions: Histogram<u64>,
    pub kinds: Vec<KindStats>,
    /// Mismatches found, first few (agent, what was said, what the stream said).
    pub examples: Vec<String>,
    /// Whether answers were checked (the driver kept a history).
    pub checked: bool,
    /// Of the dropped sessions' agents, those whose state an
    /// AGENT_STATE_EVENT had told before the drop, and those whose
    /// instrument had a call then (with a history only).
    pub state_known: u64,
    pub in_call: u64,
}

/// Mismatch examples kept for the report.
const EXAMPLES: usize = 5;

impl StormStats {
    /// Add up `reopens`; answers are checked against `history` if given.
    pub fn of(reopens: &[Reopen], history: Option<&History>) -> StormStats {
        let mut kinds: Vec<KindStats> = Kind::QUERIES
            .iter()
            .map(|&kind| KindStats {
                kind,
                sent: 0,
                confs: 0,
                failures: BTreeMap::new(),
                unanswered: 0,
                mismatched: 0,
                latency: histogram(),
            })
            .collect();
        let mut st = StormStats {
            dropped: reopens.len() as u64,
            reopened: reopens.iter().filter(|r| r.opened_ns != 0).count() as u64,
            querying: reopens.iter().filter(|r| r.queries).count() as u64,
            answered: 0,
            sessions: histogram(),
            kinds: Vec::new(),
            examples: Vec::new(),
            checked: history.is_some(),
            state_known: 0,
            in_call: 0,
        };
        for r in reopens {
            if let Some(h) = history {
                st.state_known += h.state_known_before(r.agent, r.dropped_seq + 1) as u64;
                st.in_call += (h.expected(true, r.agent, r.dropped_seq + 1)
                    != View::Calls { n: 0, digest: 0 }) as u64;
            }
            if let Some(ns) = r.answered_in_ns() {
                st.answered += 1;
                let _ = st.sessions.record(ns.max(1));
            }
            for q in &r.sent {
                let Some(k) = kinds.iter_mut().find(|k| k.kind == q.kind) else {
                    continue;
                };
                k.sent += 1;
                let failure = match q.outcome {
                    None => {
                        k.unanswered += 1;
                        continue;
                    }
                    Some(Outcome::Conf) => None,
                    Some(Outcome::Failure(s)) => Some(format!("FAILURE_CONF {s}")),
                    Some(Outcome::ControlFailure(c)) => Some(format!("CONTROL_FAILURE_CONF {c}")),
                    Some(Outcome::WrongType(t)) => Some(format!("wrong type {t}")),
                };
                if let Some(f) = failure {
                    *k.failures.entry(f).or_default() += 1;
                    continue;
                }
                k.confs += 1;
                let _ = k
                    .latency
                    .record(q.answered_ns.saturating_sub(r.opened_ns).max(1));
                let Some(h) = history else { continue };
                let want = h.expected(q.kind == Kind::SnapshotDevice, r.agent, q.next_seq);
                if !q.view.is_some_and(|v| agrees(v, want)) {
                    k.mismatched += 1;
                    if st.examples.len() < EXAMPLES {
                        st.examples.push(format!(
                            "agent {} {}: answered {:?}, the stream said {want:?}",
                            r.agent,
                            q.kind.name(),
                            q.view
                        ));
                    }
                }
            }
        }
        st.kinds = kinds;
        st
    }

    /// Confirmations that disagree with the stream, all kinds.
    pub fn mismatched(&self) -> u64 {
        self.kinds.iter().map(|k| k.mismatched).sum()
    }

    /// The p99 over every querying session, ns, counting a session that was
    /// not answered (did not re-open, got a failure, or got no answer) as
    /// slower than any answered one: `None` when more than 1% were not.
    pub fn p99_all_ns(&self) -> Option<u64> {
        quantile_counting_missing(&self.sessions, self.querying, 0.99)
    }
}

/// Whether an answer says what the stream said: the same state (and, if it
/// names an agent at all, the same agent), or the same calls.
pub fn agrees(said: View, want: View) -> bool {
    match (said, want) {
        (
            View::AgentState { state, agent },
            View::AgentState {
                state: want_state,
                agent: want_agent,
            },
        ) => state == want_state && (agent.is_none() || agent == want_agent),
        (said, want) => said == want,
    }
}

/// The `q` quantile of `total` values of which `h` holds the known ones and
/// the rest count as larger than any: `None` if the quantile falls among
/// the rest (or there are no values).
pub fn quantile_counting_missing(h: &Histogram<u64>, total: u64, q: f64) -> Option<u64> {
    let known = h.len();
    if total == 0 || known == 0 {
        return None;
    }
    // The rank of the quantile among all values (1-based, as hdrhistogram).
    // (A hair below, so that 0.99 × 1,000 is 990, not 991.)
    let rank = ((q * total as f64 - 1e-9).ceil() as u64).max(1);
    if rank > known {
        return None;
    }
    // Half a value below the rank, so that rounding cannot push the
    // histogram's own `ceil` past it.
    Some(h.value_at_quantile((rank as f64 - 0.5) / known as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctirouter::proto::constants::agent_state::{AVAILABLE, TALKING};

    fn answered(kind: Kind, at: u64, outcome: Outcome, view: Option<View>) -> QueryRecord {
        QueryRecord {
            kind,
            answered_ns: at,
            outcome: Some(outcome),
            view,
            next_seq: u64::MAX,
        }
    }

    fn state(state: u16, agent: u32) -> Option<View> {
        Some(View::AgentState {
            state,
            agent: Some(agent),
        })
    }

    fn no_calls() -> Option<View> {
        Some(View::Calls { n: 0, digest: 0 })
    }

    fn reopen(agent: u32, opened_ns: u64, sent: Vec<QueryRecord>) -> Reopen {
        Reopen {
            group: 1,
            agent,
            dropped_ns: 1,
            dropped_seq: 150,
            opened_ns,
            queries: true,
            sent,
        }
    }

    #[test]
    fn a_session_is_answered_when_both_queries_got_their_conf() {
        let ok = reopen(
            3,
            1_000,
            vec![
                answered(
                    Kind::QueryAgentState,
                    5_000,
                    Outcome::Conf,
                    state(AVAILABLE, 3),
                ),
                answered(Kind::SnapshotDevice, 9_000, Outcome::Conf, no_calls()),
            ],
        );
        assert!(ok.done());
        assert_eq!(ok.answered_in_ns(), Some(8_000));
        let mut failed = ok.clone();
        failed.sent[1].outcome = Some(Outcome::Failure(15));
        assert!(failed.done());
        assert_eq!(failed.answered_in_ns(), None);
        let mut waiting = ok.clone();
        waiting.sent[0] = QueryRecord::new(Kind::QueryAgentState);
        assert!(!waiting.done());
        let not_open = reopen(3, 0, Vec::new());
        assert!(!not_open.done() && not_open.answered_in_ns().is_none());
        let quiet = Reopen {
            queries: false,
            ..reopen(3, 7, Vec::new())
        };
        assert!(quiet.done());
    }

    #[test]
    fn stats_count_answers_failures_and_mismatches() {
        let mut h = History::new(10);
        h.agent_state(3, 100, AVAILABLE);
        h.agent_state(3, 200, TALKING);
        h.agent_state(4, 100, AVAILABLE);
        let mut before_talking = answered(
            Kind::QueryAgentState,
            2_000,
            Outcome::Conf,
            state(AVAILABLE, 3),
        );
        before_talking.next_seq = 200;
        let reopens = vec![
            // Right: Available before the TALKING event at 200.
            reopen(
                3,
                1_000,
                vec![
                    before_talking,
                    answered(Kind::SnapshotDevice, 3_000, Outcome::Conf, no_calls()),
                ],
            ),
            // Wrong: stale state (the stream said Available last), and a
            // snapshot that failed.
            reopen(
                4,
                1_000,
                vec![
                    answered(
                        Kind::QueryAgentState,
                        1_500,
                        Outcome::Conf,
                        state(TALKING, 4),
                    ),
                    answered(
                        Kind::SnapshotDevice,
                        1_600,
                        Outcome::ControlFailure(12),
                        None,
                    ),
                ],
            ),
            // Wrong agent; and a snapshot never answered.
            reopen(
                5,
                1_000,
                vec![
                    answered(Kind::QueryAgentState, 1_100, Outcome::Conf, state(1, 6)),
                    QueryRecord::new(Kind::SnapshotDevice),
                ],
            ),
            // Never re-opened.
            reopen(6, 0, Vec::new()),
        ];
        let st = StormStats::of(&reopens, Some(&h));
        assert_eq!(
            (st.dropped, st.reopened, st.querying, st.answered),
            (4, 3, 4, 1)
        );
        assert_eq!(st.sessions.max(), 2_000);
        let (q, s) = (&st.kinds[0], &st.kinds[1]);
        assert_eq!((q.sent, q.confs, q.mismatched), (3, 3, 2));
        assert_eq!((s.sent, s.confs, s.unanswered), (3, 1, 1));
        assert_eq!(s.failures["CONTROL_FAILURE_CONF 12"], 1);
        assert_eq!(st.mismatched(), 2);
        assert_eq!(q.latency.len(), 3);
        assert!(st.examples[0].contains("agent 4 QUERY_AGENT_STATE_REQ"));
        assert!(st.checked);
        // Agents 3 and 4 had a state before seq 150, 5 and 6 none; no calls.
        assert_eq!((st.state_known, st.in_call), (2, 0));
        // 1 of 4 answered: the p99 falls among the others.
        assert_eq!(st.p99_all_ns(), None);
        assert!(!StormStats::of(&reopens, None).checked);
        assert_eq!(StormStats::of(&reopens, None).mismatched(), 0);
    }

    #[test]
    fn an_answer_without_agent_id_may_still_agree() {
        let want = state(TALKING, 3).unwrap();
        assert!(agrees(want, want));
        assert!(agrees(
            View::AgentState {
                state: TALKING,
                agent: None
            },
            want
        ));
        assert!(!agrees(state(TALKING, 4).unwrap(), want));
        assert!(!agrees(state(AVAILABLE, 3).unwrap(), want));
        assert!(!agrees(no_calls().unwrap(), want));
        assert!(agrees(no_calls().unwrap(), no_calls().unwrap()));
    }

    #[test]
    fn the_p99_counts_the_unanswered_as_slowest() {
        let mut h = histogram();
        for v in 1..=990u64 {
            h.record(v * 1_000).unwrap();
        }
        // 990 answered of 1,000: the 990th value is the p99.
        let p = quantile_counting_missing(&h, 1_000, 0.99).unwrap();
        assert!((989_000..=991_000).contains(&p), "{p}");
        // 989 answered of 1,000: the p99 is among the unanswered.
        let mut h2 = histogram();
        for v in 1..=989u64 {
            h2.record(v * 1_000).unwrap();
        }
        assert_eq!(quantile_counting_missing(&h2, 1_000, 0.99), None);
        // All answered: the plain p99.
        assert_eq!(
            quantile_counting_missing(&h, 990, 0.99),
            Some(h.value_at_quantile(0.99))
        );
        assert_eq!(quantile_counting_missing(&histogram(), 0, 0.99), None);
    }
}
