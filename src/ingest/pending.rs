//! Requests sent upstream on a session's behalf and not answered yet
//! (docs/requests.md §5). Ingest owns the upstream, so the table lives
//! here: each proxied request gets a fresh upstream InvokeID with the top
//! bit set, from one counter that lives as long as the router (the router's
//! own OPEN/HEARTBEAT/CLOSE ids keep the top bit clear), and is remembered
//! until its reply comes, its timeout passes or the upstream is lost.
//! No I/O and no clock here: the caller says what time it is.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use super::shared::ShareKey;
use crate::ids::{InvokeId, SessionId};
use crate::proto::Version;

/// The top bit marks the InvokeIDs of proxied requests.
pub const PROXY_INVOKE_BIT: u32 = 0x8000_0000;

/// A request in flight upstream, and everyone waiting for its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The asker that sent it, then any who asked the same while it was in
    /// flight (single-flight, docs/requests.md §6).
    pub waiters: SmallVec<[Waiter; 1]>,
    pub message_type: u32,
    pub sent_at: Instant,
    /// The key identical requests join it by, if its type may be shared.
    pub share: Option<ShareKey>,
    /// What the router learns from its answer.
    pub learn: Learn,
    /// The supervisor's session whose own upstream session carries it
    /// (`None`: the bridge session): lost with that session.
    pub via: Option<SessionId>,
}

impl Pending {
    /// A request sent for one asker.
    pub fn new(waiter: Waiter, message_type: u32, sent_at: Instant) -> Pending {
        Pending {
            waiters: SmallVec::from_elem(waiter, 1),
            message_type,
            sent_at,
            share: None,
            learn: Learn::Nothing,
            via: None,
        }
    }
}

/// One asker waiting for a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter {
    pub asker: Asker,
    /// When it asked (its audit line's latency counts from here).
    pub since: Instant,
    /// Who sent what, for the audit log (only when that log is on).
    pub audit: Option<Box<str>>,
}

/// What a reply teaches the router beyond the asker's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learn {
    Nothing,
    /// A QUERY_AGENT_STATE_CONF refreshes the agent's entry (the CONF does
    /// not say the agent's peripheral; the request did).
    AgentState {
        peripheral_id: u32,
    },
}

/// Who a reply goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asker {
    /// A downstream session.
    Session {
        shard: usize,
        session: SessionId,
        /// The InvokeID the client chose (it need not be unique).
        invoke_id: InvokeId,
        /// The session's protocol version (replies are re-encoded at it).
        version: Version,
    },
    /// The router itself (a RELEASE_CALL for sessions that closed): the
    /// reply is dropped.
    Router,
}

/// The pending requests, by upstream InvokeID.
#[derive(Debug)]
pub struct PendingTable {
    /// Low 31 bits of the next upstream InvokeID.
    next: u32,
    entries: HashMap<u32, Pending>,
    /// (deadline, upstream InvokeID) in the order sent: with one timeout
    /// for all, that is deadline order. Entries answered meanwhile are
    /// skipped when they come up.
    deadlines: VecDeque<(Instant, u32)>,
    timeout: Duration,
    max: usize,
}

impl PendingTable {
    /// A table that times requests out after `timeout` and holds at most
    /// `max` of them.
    pub fn new(timeout: Duration, max: usize) -> PendingTable {
        PendingTable {
            next: 1,
            entries: HashMap::new(),
            deadlines: VecDeque::new(),
            timeout,
            max,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// At `max`: a new request is refused (CF_SERVICE_BUSY).
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max
    }

    /// Remember `pending` under a fresh upstream InvokeID, returned. The
    /// caller checked [`PendingTable::is_full`].
    pub fn insert(&mut self, pending: Pending) -> u32 {
        let invoke = self.fresh_invoke();
        self.deadlines
            .push_back((pending.sent_at + self.timeout, invoke));
        self.entries.insert(invoke, pending);
        invoke
    }

    /// The next InvokeID with the top bit set that no pending request holds
    /// (after 2^31 requests the counter wraps; a request still pending
    /// from then keeps its id).
    fn fresh_invoke(&mut self) -> u32 {
        loop {
            let invoke = PROXY_INVOKE_BIT | self.next;
            self.next = (self.next + 1) & !PROXY_INVOKE_BIT;
            if !self.entries.contains_key(&invoke) {
                return invoke;
            }
        }
    }

    /// `waiter` asked what the request `invoke` asks, which is still in
    /// flight: it gets the same answer. False if that request is gone.
    pub fn join(&mut self, invoke: u32, waiter: Waiter) -> bool {
        match self.entries.get_mut(&invoke) {
            Some(pending) => {
                pending.waiters.push(waiter);
                true
            }
            None => false,
        }
    }

    /// The request a reply with this InvokeID answers, if it is still
    /// pending (a late or unknown reply finds nothing).
    pub fn take(&mut self, invoke: u32) -> Option<Pending> {
        self.entries.remove(&invoke)
    }

    /// The requests whose timeout passed by `now`, oldest first; they are
    /// forgotten (a late reply then finds nothing).
    pub fn expired(&mut self, now: Instant) -> Vec<Pending> {
        self.expired_with_ids(now)
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    /// [`PendingTable::expired`], each with the InvokeID it was sent with.
    pub fn expired_with_ids(&mut self, now: Instant) -> Vec<(u32, Pending)> {
        let mut out = Vec::new();
        while let Some(&(deadline, invoke)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if let Some(pending) = self.entries.remove(&invoke) {
                out.push((invoke, pending));
            }
        }
        out
    }

    /// The pending request with this InvokeID, left in the table.
    pub fn get(&self, invoke: u32) -> Option<&Pending> {
        self.entries.get(&invoke)
    }

    /// When the oldest pending request times out.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&(deadline, invoke)) = self.deadlines.front() {
            if self.entries.contains_key(&invoke) {
                return Some(deadline);
            }
            self.deadlines.pop_front();
        }
        None
    }

    /// Every pending request on the bridge session, oldest first (it is
    /// lost: none will be answered, and none is sent again). Those on
    /// supervisors' own sessions stay: each lives and dies with its own.
    pub fn drain(&mut self) -> Vec<Pending> {
        self.drain_where(|p| p.via.is_none())
    }

    /// Every pending request on `session`'s own upstream session, oldest
    /// first (that session is lost or closed).
    pub fn drain_via(&mut self, session: SessionId) -> Vec<Pending> {
        self.drain_where(|p| p.via == Some(session))
    }

    fn drain_where(&mut self, taken: impl Fn(&Pending) -> bool) -> Vec<Pending> {
        let ids: Vec<u32> = self
            .entries
            .iter()
            .filter(|(_, p)| taken(p))
            .map(|(&invoke, _)| invoke)
            .collect();
        let mut out: Vec<(u32, Pending)> = ids
            .into_iter()
            .filter_map(|invoke| self.entries.remove_entry(&invoke))
            .collect();
        out.sort_by_key(|(invoke, p)| (p.sent_at, *invoke));
        if self.entries.is_empty() {
            self.deadlines.clear();
        }
        out.into_iter().map(|(_, p)| p).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(15);

    fn waiter(session: u32, client_invoke: u32, at: Instant) -> Waiter {
        Waiter {
            asker: Asker::Session {
                shard: 0,
                session: SessionId(session),
                invoke_id: InvokeId(client_invoke),
                version: Version::MAX,
            },
            since: at,
            audit: None,
        }
    }

    fn pending(session: u32, client_invoke: u32, at: Instant) -> Pending {
        Pending::new(waiter(session, client_invoke, at), 38, at)
    }

    fn session(p: &Pending) -> u32 {
        match p.waiters[0].asker {
            Asker::Session { session, .. } => session.0,
            Asker::Router => u32::MAX,
        }
    }

    fn client_invoke(p: &Pending) -> u32 {
        match p.waiters[0].asker {
            Asker::Session { invoke_id, .. } => invoke_id.0,
            Asker::Router => u32::MAX,
        }
    }

    #[test]
    fn a_joined_asker_waits_for_the_same_reply_and_a_gone_request_takes_none() {
        let t0 = Instant::now();
        let mut table = PendingTable::new(TIMEOUT, 10);
        let a = table.insert(pending(1, 7, t0));
        assert!(table.join(a, waiter(2, 9, t0)));
        assert_eq!(table.len(), 1, "one upstream request");
        let p = table.take(a).unwrap();
        let askers: Vec<_> = p.waiters.iter().map(|w| w.asker.clone()).collect();
        assert_eq!(askers.len(), 2);
        assert!(
            !table.join(a, waiter(3, 1, t0)),
            "answered: nothing to join"
        );
    }

    #[test]
    fn invoke_ids_are_fresh_with_the_top_bit_and_map_back() {
        let t0 = Instant::now();
        let mut table = PendingTable::new(TIMEOUT, 10);
        // Two sessions may use the same client InvokeID.
        let a = table.insert(pending(1, 7, t0));
        let b = table.insert(pending(2, 7, t0));
        assert_ne!(a, b);
        assert!(a & PROXY_INVOKE_BIT != 0 && b & PROXY_INVOKE_BIT != 0);
        assert_eq!(table.take(b).map(|p| session(&p)), Some(2));
        assert_eq!(table.take(b), None, "answered once");
        assert_eq!(table.take(a).map(|p| session(&p)), Some(1));
        assert_eq!(table.take(0x1234), None, "an id never sent");
        assert!(table.is_empty());
    }

    #[test]
    fn the_counter_wraps_past_ids_still_pending() {
        let t0 = Instant::now();
        let mut table = PendingTable::new(TIMEOUT, 10);
        let first = table.insert(pending(1, 1, t0));
        assert_eq!(first, PROXY_INVOKE_BIT | 1);
        table.next = 0x7FFF_FFFF;
        assert_eq!(table.insert(pending(1, 2, t0)), 0xFFFF_FFFF);
        // Wrapped: 0x8000_0000 is free, 0x8000_0001 is still pending.
        assert_eq!(table.insert(pending(1, 3, t0)), PROXY_INVOKE_BIT);
        assert_eq!(table.insert(pending(1, 4, t0)), PROXY_INVOKE_BIT | 2);
    }

    #[test]
    fn requests_time_out_in_order_and_answered_ones_do_not() {
        let t0 = Instant::now();
        let mut table = PendingTable::new(TIMEOUT, 10);
        let a = table.insert(pending(1, 1, t0));
        let _b = table.insert(pending(1, 2, t0 + Duration::from_secs(1)));
        let _c = table.insert(pending(1, 3, t0 + Duration::from_secs(2)));
        assert_eq!(table.next_deadline(), Some(t0 + TIMEOUT));
        assert!(table.take(a).is_some());
        assert_eq!(
            table.next_deadline(),
            Some(t0 + TIMEOUT + Duration::from_secs(1))
        );
        assert!(table.expired(t0 + TIMEOUT).is_empty(), "a was answered");
        let gone = table.expired(t0 + TIMEOUT + Duration::from_secs(2));
        let ids: Vec<u32> = gone.iter().map(client_invoke).collect();
        assert_eq!(ids, [2, 3]);
        assert!(table.is_empty());
        assert_eq!(table.next_deadline(), None);
    }

    #[test]
    fn a_supervisors_session_loses_only_its_own_requests() {
        let t0 = Instant::now();
        let mut table = PendingTable::new(TIMEOUT, 10);
        let bridge = table.insert(pending(1, 1, t0));
        let mut own = pending(2, 2, t0);
        own.via = Some(SessionId(2));
        let own = table.insert(own);
        let lost: Vec<u32> = table.drain_via(SessionId(2)).iter().map(session).collect();
        assert_eq!(lost, [2]);
        assert!(table.get(bridge).is_some() && table.get(own).is_none());
        let mut again = pending(2, 3, t0);
        again.via = Some(SessionId(2));
        let again = table.insert(again);
        let lost: Vec<u32> = table.drain().iter().map(session).collect();
        assert_eq!(lost, [1], "the bridge's loss takes only its own requests");
        assert!(table.get(again).is_some());
    }

    #[test]
    fn full_at_max_and_drained_oldest_first_when_the_upstream_is_lost() {
        let t0 = Instant::now();
        let mut table = PendingTable::new(TIMEOUT, 3);
        for i in 0..3 {
            assert!(!table.is_full());
            table.insert(pending(i, i, t0 + Duration::from_millis(u64::from(3 - i))));
        }
        assert!(table.is_full());
        let order: Vec<u32> = table.drain().iter().map(session).collect();
        assert_eq!(order, [2, 1, 0]);
        assert!(table.is_empty() && !table.is_full());
        assert_eq!(table.next_deadline(), None);
    }
}
