//! `sim-pg`'s requests in flight and its fault switches, sans I/O. Every
//! client's request goes to the one simulator under a fresh sim-pg-wide
//! InvokeID (clients' own ids collide); the answer that comes out of the
//! simulator's stream goes back to the client that asked, with its own
//! InvokeID, at its version — or is lost (`--drop-replies`, decided by a
//! deterministic RNG seeded from `--seed`) or held for `--reply-delay-ms`
//! of real time. Also who controls which instrument (a second Client Events
//! session with Client Control on an instrument held by another ClientID is
//! refused with E_CTI_DEVICE_IN_USE, docs/requests.md §4).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use mio::Token;

use crate::ids::{InvokeId, Services};
use crate::proto::{CtiString, Version};
use crate::session::server::ClientInfo;
use crate::sim::rng::Rng;

/// Mixed into `--seed` so that the drop decisions are not the simulator's
/// own draws.
const DROP_SEED: u64 = 0xD20F_5E11_A7E5_0001;

/// Who asked a request in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asker {
    pub token: Token,
    /// The client's InvokeID, given back with the answer.
    pub invoke_id: InvokeId,
    /// The session's version: the answer is encoded at it.
    pub version: Version,
}

/// What becomes of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Lost (`--drop-replies`).
    Dropped,
    /// Sent at once.
    Now,
    /// Held until then (`--reply-delay-ms`).
    Hold(Instant),
}

/// The requests in flight at the simulator and the answers held back.
pub struct Requests {
    pending: HashMap<u32, Asker>,
    next_invoke: u32,
    /// Share of answers lost, 0..=1.
    drop_share: f64,
    rng: Rng,
    delay: Duration,
    /// Answers held back, in the order they go out (one delay for all).
    held: VecDeque<(Instant, Token, Vec<u8>)>,
    nr_dropped: u64,
}

impl Requests {
    /// `drop_percent` (0..=100) of the answers are lost; the others go
    /// out `delay` after the simulator gives them.
    pub fn new(seed: u64, drop_percent: f64, delay: Duration) -> Requests {
        Requests {
            pending: HashMap::new(),
            next_invoke: 0,
            drop_share: (drop_percent / 100.0).clamp(0.0, 1.0),
            rng: Rng::new(seed ^ DROP_SEED),
            delay,
            held: VecDeque::new(),
            nr_dropped: 0,
        }
    }

    /// A request goes to the simulator: its InvokeID there.
    pub fn sent(&mut self, asker: Asker) -> u32 {
        loop {
            self.next_invoke = self.next_invoke.wrapping_add(1);
            if !self.pending.contains_key(&self.next_invoke) {
                break;
            }
        }
        self.pending.insert(self.next_invoke, asker);
        self.next_invoke
    }

    /// The asker of a request answered in parts, while parts are to come.
    pub fn peek(&self, invoke_id: u32) -> Option<Asker> {
        self.pending.get(&invoke_id).copied()
    }

    /// The simulator answered its request `invoke_id`: who asked (`None`:
    /// nobody this server sent, or an answer already given).
    pub fn answered(&mut self, invoke_id: u32) -> Option<Asker> {
        self.pending.remove(&invoke_id)
    }

    /// What becomes of the next answer (one draw per answer, in stream
    /// order: the same seed and requests, the same answers lost).
    pub fn fate(&mut self, now: Instant) -> Fate {
        if self.drop_share > 0.0 && self.rng.chance(self.drop_share) {
            self.nr_dropped += 1;
            return Fate::Dropped;
        }
        if self.delay.is_zero() {
            return Fate::Now;
        }
        // A delay past the clock's range: never sent.
        now.checked_add(self.delay)
            .map_or(Fate::Dropped, Fate::Hold)
    }

    /// Hold an answer for `token` until `at`.
    pub fn hold(&mut self, at: Instant, token: Token, answer: Vec<u8>) {
        self.held.push_back((at, token, answer));
    }

    /// The next held answer that is due at `now`.
    pub fn due(&mut self, now: Instant) -> Option<(Token, Vec<u8>)> {
        if self.held.front().is_some_and(|&(at, ..)| at <= now) {
            return self
                .held
                .pop_front()
                .map(|(_, token, answer)| (token, answer));
        }
        None
    }

    /// When the next held answer is due.
    pub fn next_release(&self) -> Option<Instant> {
        self.held.front().map(|&(at, ..)| at)
    }

    /// A client is gone: its requests' answers go nowhere.
    pub fn forget(&mut self, token: Token) {
        self.pending.retain(|_, asker| asker.token != token);
        self.held.retain(|&(_, t, _)| t != token);
    }

    pub fn nr_pending(&self) -> usize {
        self.pending.len()
    }

    pub fn nr_dropped(&self) -> u64 {
        self.nr_dropped
    }
}

/// Which client controls which instrument: a Client Events session granted
/// Client Control (or agent-state control) controls its AgentInstrument;
/// sessions of one ClientID may share it, another ClientID is refused.
#[derive(Default)]
pub struct Controllers {
    by_instrument: HashMap<Box<[u8]>, (CtiString, Vec<Token>)>,
}

impl Controllers {
    /// Session `token` opened with `services` as `client`: whether it may
    /// (false: the instrument is held by another ClientID).
    pub fn take(&mut self, token: Token, services: Services, client: &ClientInfo) -> bool {
        let controls = services.contains(Services::CLIENT_EVENTS)
            && (services.contains(Services::CLIENT_CONTROL)
                || services.contains(Services::AGENT_STATE_CONTROL_ONLY));
        let instrument = client.agent_instrument.as_ref().filter(|i| !i.is_empty());
        let (true, Some(instrument)) = (controls, instrument) else {
            return true;
        };
        let (holder, tokens) = self
            .by_instrument
            .entry(instrument.as_bytes().into())
            .or_insert_with(|| (client.client_id.clone(), Vec::new()));
        if *holder != client.client_id {
            return false;
        }
        tokens.push(token);
        true
    }

    /// Session `token` is gone.
    pub fn release(&mut self, token: Token) {
        self.by_instrument.retain(|_, (_, tokens)| {
            tokens.retain(|t| *t != token);
            !tokens.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asker(token: usize, invoke: u32) -> Asker {
        Asker {
            token: Token(token),
            invoke_id: InvokeId(invoke),
            version: Version::MAX,
        }
    }

    #[test]
    fn colliding_client_ids_get_distinct_ids_and_each_answer_finds_its_client() {
        let mut r = Requests::new(1, 0.0, Duration::ZERO);
        let a = r.sent(asker(1, 7));
        let b = r.sent(asker(2, 7));
        assert_ne!(a, b);
        assert_eq!(r.answered(b), Some(asker(2, 7)));
        assert_eq!(r.answered(b), None, "one answer per request");
        assert_eq!(r.answered(a), Some(asker(1, 7)));
        assert_eq!(r.answered(12345), None);
        assert_eq!(r.nr_pending(), 0);
    }

    #[test]
    fn ids_in_use_are_skipped_when_the_counter_wraps() {
        let mut r = Requests::new(1, 0.0, Duration::ZERO);
        let first = r.sent(asker(1, 1));
        r.next_invoke = first - 1;
        let next = r.sent(asker(1, 2));
        assert_ne!(next, first);
        assert_eq!(r.nr_pending(), 2);
    }

    #[test]
    fn a_gone_clients_requests_are_forgotten() {
        let mut r = Requests::new(1, 0.0, Duration::from_millis(5));
        let a = r.sent(asker(1, 1));
        let b = r.sent(asker(2, 1));
        let now = Instant::now();
        r.hold(now, Token(1), vec![1]);
        r.forget(Token(1));
        assert_eq!(r.answered(a), None);
        assert_eq!(r.answered(b), Some(asker(2, 1)));
        assert_eq!(r.due(now + Duration::from_secs(1)), None);
    }

    #[test]
    fn drops_follow_the_share_and_the_seed() {
        let now = Instant::now();
        let fates = |seed, percent| {
            let mut r = Requests::new(seed, percent, Duration::ZERO);
            (0..1000).map(|_| r.fate(now)).collect::<Vec<_>>()
        };
        assert!(fates(5, 0.0).iter().all(|f| *f == Fate::Now));
        assert!(fates(5, 100.0).iter().all(|f| *f == Fate::Dropped));
        let half = fates(5, 50.0);
        let dropped = half.iter().filter(|f| **f == Fate::Dropped).count();
        assert!((400..600).contains(&dropped), "{dropped} of 1000 dropped");
        assert_eq!(half, fates(5, 50.0), "same seed, same drops");
        assert_ne!(half, fates(6, 50.0), "another seed, other drops");
    }

    #[test]
    fn held_answers_go_out_in_order_once_due() {
        let delay = Duration::from_millis(300);
        let mut r = Requests::new(1, 0.0, delay);
        let t0 = Instant::now();
        let Fate::Hold(at) = r.fate(t0) else {
            panic!("a delay holds the answer")
        };
        assert_eq!(at, t0 + delay);
        r.hold(at, Token(1), vec![1]);
        r.hold(at + Duration::from_millis(1), Token(2), vec![2]);
        assert_eq!(r.next_release(), Some(at));
        assert_eq!(r.due(at - Duration::from_millis(1)), None);
        assert_eq!(r.due(at), Some((Token(1), vec![1])));
        assert_eq!(r.due(at), None);
        assert_eq!(
            r.due(at + Duration::from_millis(1)),
            Some((Token(2), vec![2]))
        );
        assert_eq!(r.next_release(), None);
    }

    fn desk(client_id: &str, instrument: &str) -> ClientInfo {
        ClientInfo {
            client_id: client_id.into(),
            agent_instrument: Some(instrument.into()),
            ..Default::default()
        }
    }

    #[test]
    fn an_instrument_is_controlled_by_one_client_id() {
        let control = Services::CLIENT_EVENTS | Services::CLIENT_CONTROL;
        let mut c = Controllers::default();
        assert!(c.take(Token(1), control, &desk("a", "3004")));
        assert!(
            c.take(Token(2), control, &desk("a", "3004")),
            "same ClientID"
        );
        assert!(!c.take(Token(3), control, &desk("b", "3004")));
        assert!(c.take(Token(3), Services::CLIENT_EVENTS, &desk("b", "3004")));
        assert!(c.take(Token(4), control, &desk("b", "3005")));
        c.release(Token(1));
        assert!(!c.take(Token(5), control, &desk("b", "3004")));
        c.release(Token(2));
        assert!(c.take(Token(5), control, &desk("b", "3004")));
    }
}
