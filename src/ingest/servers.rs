//! The Server service registry on the ingest core (docs/requests.md §8):
//! which sessions registered which named service (REGISTER_SERVICE_REQ) in
//! which ServerMode, which server gets the next request, and the requests
//! sent to server applications that have not been answered yet (by the
//! router's InvokeID, from a [`PendingTable`] of their own: one counter for
//! the router's life, one timeout). Sans I/O and no clock: the caller says
//! what time it is; `server_requests` puts it on the rings.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use super::pending::{Pending, PendingTable, Waiter};
use crate::ids::SessionId;
use crate::proto::constants::msg;
use crate::proto::{Message, RequestError, Version};

/// The one service name docs/protocol.md §12.6 defines: the recording
/// servers START/STOP_RECORDING_REQ go to.
pub const CALL_RECORDING: &[u8] = b"Cisco:CallRecording";

/// REGISTER_SERVICE_REQ ServerMode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerMode {
    /// One server only: a second registration is refused.
    Exclusive,
    /// Each request goes to the next server in turn.
    RoundRobin,
    /// Each request goes to every server.
    Parallel,
}

impl ServerMode {
    /// 0 exclusive, 1 round-robin, 2 parallel; anything else is no mode.
    pub fn from_wire(mode: u16) -> Option<ServerMode> {
        match mode {
            0 => Some(ServerMode::Exclusive),
            1 => Some(ServerMode::RoundRobin),
            2 => Some(ServerMode::Parallel),
            _ => None,
        }
    }
}

/// One registration: the server application's session and where it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Server {
    /// RegisteredServiceID (REGISTER_SERVICE_CONF).
    pub id: u32,
    pub session: SessionId,
    pub shard: usize,
    /// The session's version: requests to it are encoded at it.
    pub version: Version,
}

/// The servers of one service name, in registration order.
#[derive(Debug)]
struct Service {
    mode: ServerMode,
    servers: Vec<Server>,
    /// Round-robin: index of the next server.
    next: usize,
}

/// A server's answer, decoded at its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub message: Message,
    pub server: SessionId,
}

impl Answer {
    /// A CONF, not FAILURE_CONF or CONTROL_FAILURE_CONF.
    pub fn ok(&self) -> bool {
        !matches!(
            self.message.message_type(),
            msg::FAILURE_CONF | msg::CONTROL_FAILURE_CONF
        )
    }
}

/// A request sent to server applications and what they answered so far.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Dispatch {
    /// The server sessions that have not answered.
    pub waiting: SmallVec<[SessionId; 2]>,
    /// The answer the requester gets: the first success, else the first
    /// failure (parallel mode: docs/requests.md §8).
    pub best: Option<Answer>,
}

impl Dispatch {
    fn keep(&mut self, answer: Answer) {
        let better = match &self.best {
            None => true,
            Some(best) => !best.ok() && answer.ok(),
        };
        if better {
            self.best = Some(answer);
        }
    }
}

/// A request every server of which has answered (or gone), or whose time
/// is up: the requester's waiter and the answers.
pub type Done = (Pending, Dispatch);

/// A server's answer that answers nothing the router sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stray;

/// The registrations and the requests in flight at server applications.
#[derive(Debug)]
pub struct Servers {
    services: BTreeMap<Box<[u8]>, Service>,
    /// The last RegisteredServiceID given.
    last_id: u32,
    calls: PendingTable,
    dispatches: HashMap<u32, Dispatch>,
    /// Which server holds each recording (START_RECORDING_CONF SessionID →
    /// the server that answered it): STOP_RECORDING goes back to it.
    recordings: HashMap<u32, SessionId>,
}

/// Recordings remembered at most; past it a STOP_RECORDING of one not
/// remembered is routed by the service's mode.
pub const MAX_RECORDINGS: usize = 65_536;

impl Servers {
    /// Requests time out after `timeout`; at most `max` are in flight.
    pub fn new(timeout: Duration, max: usize) -> Servers {
        Servers {
            services: BTreeMap::new(),
            last_id: 0,
            calls: PendingTable::new(timeout, max),
            dispatches: HashMap::new(),
            recordings: HashMap::new(),
        }
    }

    /// New limits (`[requests]`), taken while nothing is in flight.
    pub fn set_limits(&mut self, timeout: Duration, max: usize) {
        if self.dispatches.is_empty() {
            self.calls = PendingTable::new(timeout, max);
        }
    }

    /// Whether `name` has a server.
    pub fn has(&self, name: &[u8]) -> bool {
        self.services.contains_key(name)
    }

    /// Register `server` (its `id` is assigned here, returned) for `name`.
    /// Refused with E_CTI_SERVICE_CONFLICT when the service is exclusive
    /// and taken, or registered in another mode.
    pub fn register(
        &mut self,
        name: &[u8],
        mode: ServerMode,
        mut server: Server,
    ) -> Result<u32, RequestError> {
        if let Some(service) = self.services.get(name) {
            if service.mode != mode || mode == ServerMode::Exclusive {
                return Err(RequestError::ServiceConflict);
            }
        }
        self.last_id = self.last_id.wrapping_add(1).max(1);
        server.id = self.last_id;
        let service = self.services.entry(name.into()).or_insert(Service {
            mode,
            servers: Vec::new(),
            next: 0,
        });
        service.servers.push(server);
        Ok(server.id)
    }

    /// Withdraw registration `id` of `session` (E_CTI_INVALID_SERVICE when
    /// the session holds no such registration).
    pub fn unregister(&mut self, session: SessionId, id: u32) -> Result<(), RequestError> {
        let holds = |s: &Server| s.id == id && s.session == session;
        let name = self
            .services
            .iter()
            .find(|(_, service)| service.servers.iter().any(holds))
            .map(|(name, _)| name.clone())
            .ok_or(RequestError::InvalidService)?;
        self.remove_where(&name, |s| holds(s));
        Ok(())
    }

    /// Drop the servers of `name` that match, and the service when none is left.
    fn remove_where(&mut self, name: &[u8], matches: impl Fn(&Server) -> bool) {
        if let Some(service) = self.services.get_mut(name) {
            service.servers.retain(|s| !matches(s));
            if service.servers.is_empty() {
                self.services.remove(name);
            }
        }
    }

    /// The servers the next request for `name` goes to: the exclusive one,
    /// the next in turn, or all of them.
    pub fn pick(&mut self, name: &[u8]) -> SmallVec<[Server; 2]> {
        let Some(service) = self.services.get_mut(name) else {
            return SmallVec::new();
        };
        match service.mode {
            ServerMode::Parallel => service.servers.iter().copied().collect(),
            ServerMode::Exclusive | ServerMode::RoundRobin => {
                let at = service.next % service.servers.len().max(1);
                service.next = at + 1;
                service.servers.get(at).copied().into_iter().collect()
            }
        }
    }

    /// Server `server` answered a START_RECORDING with the recording's
    /// SessionID `recording`: it holds that recording.
    pub fn recording_started(&mut self, recording: u32, server: SessionId) {
        if self.recordings.len() < MAX_RECORDINGS || self.recordings.contains_key(&recording) {
            self.recordings.insert(recording, server);
        }
    }

    /// The servers a STOP_RECORDING of recording `recording` goes to: the
    /// one that started it while it is registered for `name` (in
    /// round-robin mode the next in turn would not know it), else as
    /// [`Servers::pick`] says. The recording is forgotten.
    pub fn pick_for_stop(&mut self, name: &[u8], recording: u32) -> SmallVec<[Server; 2]> {
        let holder = self.recordings.remove(&recording);
        let service = self.services.get(name);
        let parallel = service.is_some_and(|s| s.mode == ServerMode::Parallel);
        let held_by = holder.and_then(|holder| {
            let servers = &service?.servers;
            servers.iter().find(|s| s.session == holder).copied()
        });
        match held_by {
            Some(server) if !parallel => SmallVec::from_elem(server, 1),
            _ => self.pick(name),
        }
    }

    /// Session `session` closed: its registrations go, and it answers none
    /// of the requests it was sent. Returns the requests that are done.
    pub fn session_closed(&mut self, session: SessionId) -> Vec<Done> {
        self.recordings.retain(|_, server| *server != session);
        let names: Vec<Box<[u8]>> = self.services.keys().cloned().collect();
        for name in names {
            self.remove_where(&name, |s| s.session == session);
        }
        let done: Vec<u32> = self
            .dispatches
            .iter_mut()
            .filter_map(|(&invoke, d)| {
                let before = d.waiting.len();
                d.waiting.retain(|s| *s != session);
                (d.waiting.is_empty() && before > 0).then_some(invoke)
            })
            .collect();
        done.into_iter().filter_map(|i| self.take(i)).collect()
    }

    /// Server `session` will not answer the request sent with `invoke`
    /// (it could not be sent there): the request if that was the last.
    pub fn gone_for(&mut self, invoke: u32, session: SessionId) -> Vec<Done> {
        let Some(dispatch) = self.dispatches.get_mut(&invoke) else {
            return Vec::new();
        };
        dispatch.waiting.retain(|s| *s != session);
        match dispatch.waiting.is_empty() {
            true => self.take(invoke).into_iter().collect(),
            false => Vec::new(),
        }
    }

    /// No room for another request in flight.
    pub fn is_full(&self) -> bool {
        self.calls.is_full()
    }

    /// Remember a request of `message_type` from `waiter` sent to `to`;
    /// returns the router InvokeID it is sent with.
    pub fn send(&mut self, waiter: Waiter, message_type: u32, to: &[Server], now: Instant) -> u32 {
        let invoke = self.calls.insert(Pending::new(waiter, message_type, now));
        let dispatch = Dispatch {
            waiting: to.iter().map(|s| s.session).collect(),
            best: None,
        };
        self.dispatches.insert(invoke, dispatch);
        invoke
    }

    /// `answer` from its server to the request sent with `invoke`: the
    /// request when every server has answered, `None` while some have not;
    /// [`Stray`] when it answers nothing sent to that server (late, never
    /// sent, already answered, or a CONF of another request type).
    pub fn answer(&mut self, invoke: u32, answer: Answer) -> Result<Option<Done>, Stray> {
        let conf = self.calls.get(invoke).map(|p| p.message_type + 1);
        let dispatch = self.dispatches.get_mut(&invoke).ok_or(Stray)?;
        let expected = answer.message.message_type() == conf.ok_or(Stray)? || !answer.ok();
        let Some(at) = dispatch.waiting.iter().position(|s| *s == answer.server) else {
            return Err(Stray);
        };
        if !expected {
            return Err(Stray);
        }
        dispatch.waiting.remove(at);
        dispatch.keep(answer);
        Ok(dispatch
            .waiting
            .is_empty()
            .then(|| self.take(invoke))
            .flatten())
    }

    /// The requests whose timeout passed by `now` (their late answers are stray).
    pub fn expired(&mut self, now: Instant) -> Vec<Done> {
        let expired = self.calls.expired_with_ids(now);
        expired
            .into_iter()
            .map(|(invoke, p)| (p, self.dispatches.remove(&invoke).unwrap_or_default()))
            .collect()
    }

    fn take(&mut self, invoke: u32) -> Option<Done> {
        let pending = self.calls.take(invoke)?;
        Some((pending, self.dispatches.remove(&invoke).unwrap_or_default()))
    }

    /// Requests in flight at server applications.
    pub fn nr_in_flight(&self) -> usize {
        self.dispatches.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::InvokeId;
    use crate::ingest::pending::Asker;
    use crate::proto::msg::{FailureConf, StartRecordingConf, StopRecordingConf};

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn server(session: u32) -> Server {
        Server {
            id: 0,
            session: SessionId(session),
            shard: 0,
            version: Version::MAX,
        }
    }

    fn waiter(at: Instant) -> Waiter {
        Waiter {
            asker: Asker::Session {
                shard: 1,
                session: SessionId(100),
                invoke_id: InvokeId(7),
                version: Version::MAX,
            },
            since: at,
            audit: None,
        }
    }

    fn conf(server: u32, session_id: u32) -> Answer {
        Answer {
            message: StartRecordingConf {
                session_id,
                ..Default::default()
            }
            .into(),
            server: SessionId(server),
        }
    }

    fn failure(server: u32) -> Answer {
        Answer {
            message: FailureConf::default().into(),
            server: SessionId(server),
        }
    }

    fn with(mode: ServerMode, sessions: &[u32]) -> Servers {
        let mut servers = Servers::new(TIMEOUT, 10);
        for &s in sessions {
            servers.register(CALL_RECORDING, mode, server(s)).unwrap();
        }
        servers
    }

    fn picked(servers: &mut Servers) -> Vec<u32> {
        servers
            .pick(CALL_RECORDING)
            .iter()
            .map(|s| s.session.0)
            .collect()
    }

    #[test]
    fn exclusive_refuses_a_second_and_modes_must_agree() {
        let mut servers = with(ServerMode::Exclusive, &[1]);
        let second = servers.register(CALL_RECORDING, ServerMode::Exclusive, server(2));
        assert_eq!(second, Err(RequestError::ServiceConflict));
        let mut rr = with(ServerMode::RoundRobin, &[1]);
        let parallel = rr.register(CALL_RECORDING, ServerMode::Parallel, server(2));
        assert_eq!(parallel, Err(RequestError::ServiceConflict));
        // Another name is another service.
        assert!(rr
            .register(b"Other", ServerMode::Exclusive, server(2))
            .is_ok());
        assert_eq!(ServerMode::from_wire(3), None);
    }

    #[test]
    fn ids_are_distinct_and_unregister_needs_the_holder() {
        let mut servers = Servers::new(TIMEOUT, 10);
        let a = servers
            .register(CALL_RECORDING, ServerMode::RoundRobin, server(1))
            .unwrap();
        let b = servers
            .register(CALL_RECORDING, ServerMode::RoundRobin, server(2))
            .unwrap();
        assert_ne!(a, b);
        assert_eq!(
            servers.unregister(SessionId(2), a),
            Err(RequestError::InvalidService)
        );
        assert_eq!(servers.unregister(SessionId(1), a), Ok(()));
        assert_eq!(
            servers.unregister(SessionId(1), a),
            Err(RequestError::InvalidService)
        );
        assert!(servers.has(CALL_RECORDING));
        assert_eq!(servers.unregister(SessionId(2), b), Ok(()));
        assert!(
            !servers.has(CALL_RECORDING),
            "the last one took the service"
        );
    }

    /// The sessions of the servers a STOP_RECORDING of `recording` goes to.
    fn stop_goes_to(servers: &mut Servers, recording: u32) -> Vec<u32> {
        let to = servers.pick_for_stop(CALL_RECORDING, recording);
        to.iter().map(|s| s.session.0).collect()
    }

    #[test]
    fn a_stop_goes_to_the_round_robin_server_that_started_the_recording() {
        let mut servers = Servers::new(Duration::from_secs(1), 8);
        for session in [1, 2, 3] {
            servers
                .register(CALL_RECORDING, ServerMode::RoundRobin, server(session))
                .unwrap();
        }
        // Recording 77 was started by server 2; the next in turn is 1.
        servers.recording_started(77, SessionId(2));
        assert_eq!(stop_goes_to(&mut servers, 77), [2]);
        // Forgotten once stopped: another stop is routed by turn.
        assert_eq!(stop_goes_to(&mut servers, 77), [1]);
        // A holder that closed: routed by turn as well.
        servers.recording_started(78, SessionId(3));
        servers.session_closed(SessionId(3));
        assert_eq!(stop_goes_to(&mut servers, 78), [2]);
    }

    #[test]
    fn round_robin_rotates_parallel_picks_all_exclusive_the_one() {
        let mut rr = with(ServerMode::RoundRobin, &[1, 2, 3]);
        let turns: Vec<Vec<u32>> = (0..4).map(|_| picked(&mut rr)).collect();
        assert_eq!(turns, [vec![1], vec![2], vec![3], vec![1]]);
        assert_eq!(picked(&mut with(ServerMode::Parallel, &[1, 2])), [1, 2]);
        assert_eq!(picked(&mut with(ServerMode::Exclusive, &[4])), [4]);
        assert!(picked(&mut Servers::new(TIMEOUT, 1)).is_empty());
    }

    #[test]
    fn parallel_answers_once_when_all_answered_and_success_wins() {
        let t0 = Instant::now();
        let mut servers = with(ServerMode::Parallel, &[1, 2]);
        let to = servers.pick(CALL_RECORDING);
        let invoke = servers.send(waiter(t0), msg::START_RECORDING_REQ, &to, t0);
        assert_eq!(servers.answer(invoke, failure(1)), Ok(None));
        let (pending, dispatch) = servers.answer(invoke, conf(2, 9)).unwrap().unwrap();
        assert_eq!(pending.message_type, msg::START_RECORDING_REQ);
        assert_eq!(dispatch.best, Some(conf(2, 9)));
        assert_eq!(servers.answer(invoke, conf(1, 1)), Err(Stray), "done");
        assert_eq!(servers.nr_in_flight(), 0);
    }

    #[test]
    fn answers_from_the_wrong_server_or_of_the_wrong_type_are_stray() {
        let t0 = Instant::now();
        let mut servers = with(ServerMode::Exclusive, &[1]);
        let to = servers.pick(CALL_RECORDING);
        let invoke = servers.send(waiter(t0), msg::START_RECORDING_REQ, &to, t0);
        assert_eq!(servers.answer(invoke, conf(2, 1)), Err(Stray));
        let stop = Answer {
            message: StopRecordingConf::default().into(),
            server: SessionId(1),
        };
        assert_eq!(servers.answer(invoke, stop), Err(Stray));
        assert_eq!(servers.answer(invoke ^ 1, conf(1, 1)), Err(Stray));
        assert!(servers.answer(invoke, failure(1)).unwrap().is_some());
    }

    #[test]
    fn a_closing_server_unregisters_and_ends_what_waits_only_on_it() {
        let t0 = Instant::now();
        let mut servers = with(ServerMode::Parallel, &[1, 2]);
        let to = servers.pick(CALL_RECORDING);
        let both = servers.send(waiter(t0), msg::START_RECORDING_REQ, &to, t0);
        let only_1 = servers.send(waiter(t0), msg::STOP_RECORDING_REQ, &to[..1], t0);
        let done = servers.session_closed(SessionId(1));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0.message_type, msg::STOP_RECORDING_REQ);
        assert!(done[0].1.best.is_none(), "no answer: the server is lost");
        assert_eq!(picked(&mut servers), [2]);
        assert!(servers.answer(both, conf(2, 3)).unwrap().is_some());
        assert_eq!(servers.answer(only_1, conf(1, 3)), Err(Stray));
        servers.session_closed(SessionId(2));
        assert!(!servers.has(CALL_RECORDING));
    }

    #[test]
    fn unanswered_requests_expire_with_what_they_have() {
        let t0 = Instant::now();
        let mut servers = with(ServerMode::Parallel, &[1, 2]);
        let to = servers.pick(CALL_RECORDING);
        let invoke = servers.send(waiter(t0), msg::START_RECORDING_REQ, &to, t0);
        assert_eq!(servers.answer(invoke, conf(1, 5)), Ok(None));
        assert!(servers.expired(t0 + TIMEOUT / 2).is_empty());
        let expired = servers.expired(t0 + TIMEOUT);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].1.best, Some(conf(1, 5)));
        assert_eq!(servers.answer(invoke, conf(2, 1)), Err(Stray), "late");
    }
}
