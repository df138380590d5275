//! Answers the upstream gives once and the router hands to many
//! (docs/requests.md §6). Read-only queries that ask the same thing while
//! one of them is in flight share that one upstream request and its answer,
//! a failure included (single-flight). Some answers are kept:
//! QUERY_DEVICE_INFO and AGENT_DESK_SETTINGS for as long as the upstream
//! session lasts (configuration, asked by every desktop at start), the
//! statistics queries for `[requests] statistics_min_interval_secs` (so at
//! most one per key reaches the PG in that time). Failures are never kept.
//! Two requests are "the same" when they encode to the same bytes at the
//! upstream's version apart from their InvokeID, whatever version their
//! sessions speak. No I/O here; the caller says what time it is.

use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

use crate::proto::constants::msg;
use crate::proto::frame::HEADER_LEN;

/// A shareable request: its type and its body after the InvokeID, as sent
/// upstream.
pub type ShareKey = (u32, Box<[u8]>);

/// How far a request type's answer may be shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Every request goes upstream on its own (it changes something).
    Alone,
    /// Identical requests in flight share one.
    InFlight,
    /// Shared in flight, and a successful answer is kept this long
    /// (`None`: while the upstream session lasts).
    Kept(Option<Duration>),
}

/// At most this many answers are kept (the keys are agents, devices and
/// skill groups of the PG; the bound only stops a client that invents keys).
const MAX_KEPT: usize = 65_536;

/// Requests in flight by key, and the answers kept.
#[derive(Debug)]
pub struct SharedAnswers {
    in_flight: FxHashMap<ShareKey, u32>,
    kept: FxHashMap<ShareKey, Kept>,
    statistics_interval: Duration,
}

#[derive(Debug)]
struct Kept {
    /// The reply frame, at the upstream's version.
    frame: Box<[u8]>,
    until: Option<Instant>,
}

impl SharedAnswers {
    pub fn new(statistics_interval: Duration) -> SharedAnswers {
        SharedAnswers {
            in_flight: FxHashMap::default(),
            kept: FxHashMap::default(),
            statistics_interval,
        }
    }

    /// How requests of `message_type` are shared.
    pub fn sharing(&self, message_type: u32) -> Sharing {
        match message_type {
            msg::QUERY_DEVICE_INFO_REQ | msg::AGENT_DESK_SETTINGS_REQ => Sharing::Kept(None),
            msg::QUERY_AGENT_STATISTICS_REQ | msg::QUERY_SKILL_GROUP_STATISTICS_REQ => {
                Sharing::Kept(Some(self.statistics_interval))
            }
            msg::QUERY_AGENT_STATE_REQ | msg::SNAPSHOT_CALL_REQ | msg::SNAPSHOT_DEVICE_REQ => {
                Sharing::InFlight
            }
            _ => Sharing::Alone,
        }
    }

    /// The key of a request of `message_type` encoded (whole frame) as
    /// `frame`, if its type may be shared.
    pub fn key(&self, message_type: u32, frame: &[u8]) -> Option<ShareKey> {
        if self.sharing(message_type) == Sharing::Alone {
            return None;
        }
        let after_invoke = frame.get(HEADER_LEN + 4..)?;
        Some((message_type, after_invoke.into()))
    }

    /// A kept answer to `key` still good at `now` (an expired one is dropped).
    pub fn kept(&mut self, key: &ShareKey, now: Instant) -> Option<&[u8]> {
        let expired = self
            .kept
            .get(key)
            .is_some_and(|k| k.until.is_some_and(|until| until <= now));
        if expired {
            self.kept.remove(key);
            return None;
        }
        self.kept.get(key).map(|k| &k.frame[..])
    }

    /// The upstream InvokeID of the identical request in flight, if any.
    pub fn in_flight(&self, key: &ShareKey) -> Option<u32> {
        self.in_flight.get(key).copied()
    }

    /// `key` went upstream as `invoke`.
    pub fn sent(&mut self, key: ShareKey, invoke: u32) {
        self.in_flight.insert(key, invoke);
    }

    /// The request `key` was answered with `reply` at `now`: no longer in
    /// flight; kept if its type keeps answers and `ok` (not a failure).
    pub fn answered(&mut self, key: ShareKey, reply: &[u8], ok: bool, now: Instant) {
        self.in_flight.remove(&key);
        let Sharing::Kept(ttl) = self.sharing(key.0) else {
            return;
        };
        if !ok || (self.kept.len() >= MAX_KEPT && !self.kept.contains_key(&key)) {
            return;
        }
        let kept = Kept {
            frame: reply.into(),
            until: ttl.map(|ttl| now + ttl),
        };
        self.kept.insert(key, kept);
    }

    /// The request `key` failed (timeout, upstream lost): nothing is kept.
    pub fn failed(&mut self, key: &ShareKey) {
        self.in_flight.remove(key);
    }

    /// The upstream session ended: what it said no longer holds.
    pub fn clear(&mut self) {
        self.in_flight.clear();
        self.kept.clear();
    }

    /// How many answers are kept.
    pub fn nr_kept(&self) -> usize {
        self.kept.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE: Duration = Duration::from_secs(5);

    fn frame(t: u32, body: &[u8]) -> Vec<u8> {
        let mut f = vec![0, 0, 0, body.len() as u8, 0, 0, 0, t as u8];
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn requests_that_change_nothing_share_and_others_do_not() {
        let shared = SharedAnswers::new(FIVE);
        let f = frame(msg::SET_AGENT_STATE_REQ, &[0, 0, 0, 1, 9, 9]);
        assert_eq!(shared.key(msg::SET_AGENT_STATE_REQ, &f), None);
        let a = frame(msg::SNAPSHOT_DEVICE_REQ, &[0, 0, 0, 1, 9, 9]);
        let b = frame(msg::SNAPSHOT_DEVICE_REQ, &[0, 0, 0, 2, 9, 9]);
        let c = frame(msg::SNAPSHOT_DEVICE_REQ, &[0, 0, 0, 2, 9, 8]);
        let key = |f: &[u8]| shared.key(msg::SNAPSHOT_DEVICE_REQ, f).unwrap();
        assert_eq!(key(&a), key(&b), "InvokeID aside, the same request");
        assert_ne!(key(&b), key(&c));
    }

    #[test]
    fn statistics_are_kept_for_the_interval_and_failures_not_at_all() {
        let t0 = Instant::now();
        let mut shared = SharedAnswers::new(FIVE);
        let t = msg::QUERY_AGENT_STATISTICS_REQ;
        let key = shared.key(t, &frame(t, &[0, 0, 0, 1, 7])).unwrap();
        shared.sent(key.clone(), 0x8000_0001);
        assert_eq!(shared.in_flight(&key), Some(0x8000_0001));
        shared.answered(key.clone(), b"failed", false, t0);
        assert_eq!(shared.in_flight(&key), None);
        assert_eq!(shared.kept(&key, t0), None, "a failure is not kept");
        shared.answered(key.clone(), b"conf", true, t0);
        assert_eq!(shared.kept(&key, t0 + FIVE / 2), Some(&b"conf"[..]));
        assert_eq!(shared.kept(&key, t0 + FIVE), None, "expired");
        assert_eq!(shared.nr_kept(), 0, "and dropped");
    }

    #[test]
    fn configuration_is_kept_until_the_upstream_session_ends() {
        let t0 = Instant::now();
        let mut shared = SharedAnswers::new(FIVE);
        let t = msg::QUERY_DEVICE_INFO_REQ;
        let key = shared.key(t, &frame(t, &[0, 0, 0, 1, 7])).unwrap();
        shared.answered(key.clone(), b"conf", true, t0);
        let much_later = t0 + Duration::from_secs(86_400);
        assert_eq!(shared.kept(&key, much_later), Some(&b"conf"[..]));
        shared.clear();
        assert_eq!(shared.kept(&key, much_later), None);
    }

    #[test]
    fn in_flight_only_types_keep_nothing() {
        let t0 = Instant::now();
        let mut shared = SharedAnswers::new(FIVE);
        let t = msg::QUERY_AGENT_STATE_REQ;
        let key = shared.key(t, &frame(t, &[0, 0, 0, 1, 7])).unwrap();
        shared.sent(key.clone(), 5);
        shared.answered(key.clone(), b"conf", true, t0);
        assert_eq!(shared.kept(&key, t0), None);
        assert_eq!(shared.in_flight(&key), None);
    }
}
