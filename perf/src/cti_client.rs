//! One downstream CTI client session, sans I/O: the OPEN_REQ of its service
//! (All Events, Client Events for one agent, or Peripheral Monitor followed by
//! one MONITOR_START_REQ per device), what each frame from the router means,
//! and heartbeats (docs/protocol.md §4.1, §4.3, §6.1). A desktop session
//! (`with_requests`) also asks for Client Control and Call Data Update,
//! sends requests for its agent and matches their replies by InvokeID; what
//! a QUERY_AGENT_STATE_CONF or SNAPSHOT_DEVICE_CONF says is read too (a
//! [`View`]), so the harness can check it against the PG's stream.

use ctirouter::proto::constants::{agent_mask, call_mask, msg, service, IDLE_TIMEOUT_DISABLED};
use ctirouter::proto::constants::{device_type, NULL_PERIPHERAL_ID};
use ctirouter::proto::msg::{HeartbeatReq, MonitorStartReq, OpenReq};
use ctirouter::proto::{frame, DecodeOptions, Message, Unspec, Version};

use crate::events::{agent_id, instrument, PERIPHERAL_ID};
use crate::pg::{view_of, View};
use crate::requests::{self, InFlight, Kind, Reply};
use crate::scenario::Service;

/// ClientID of the desktop sessions: the runner lists it in the router's
/// `[[clients]]` with the request services (docs/requests.md §3).
pub const DESKTOP_CLIENT_ID: &str = "ctirouter-perf-desktop";
/// ClientID of every other session (listed without request services).
pub const CLIENT_ID: &str = "ctirouter-perf";

/// What a frame from the router means to the swarm.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen<'a> {
    /// A call or agent event (the whole frame).
    Event(&'a [u8]),
    /// The session is open (OPEN_CONF, and every MONITOR_START_CONF).
    Opened,
    /// FAILURE_CONF: a request (OPEN_REQ or MONITOR_START_REQ) was refused.
    Refused(u32),
    /// FAILURE_EVENT: the router ends the session (25: slow consumer).
    Ended(u32),
    /// A reply to one of the session's requests (or to none it sent), and
    /// what it says if it answers a query.
    Reply(Reply, Option<View>),
    /// Anything else (SYSTEM_EVENT, HEARTBEAT_CONF, ...).
    Other,
}

/// A client session's protocol state.
#[derive(Debug)]
pub struct CtiClient {
    service: Service,
    /// Agents this session names: its agent (Client Events) or the agents
    /// whose instruments it monitors (Peripheral Monitor).
    agents: Vec<u32>,
    /// MONITOR_START_CONFs still to come after OPEN_CONF.
    pending_monitors: usize,
    next_invoke: u32,
    pub nr_heartbeats: u64,
    /// Opens with Client Control and Call Data Update (a desktop).
    requests: bool,
    /// Requests sent and not answered yet.
    pub in_flight: InFlight,
}

impl CtiClient {
    pub fn new(service: Service, agents: Vec<u32>) -> CtiClient {
        CtiClient {
            service,
            agents,
            pending_monitors: 0,
            next_invoke: 1,
            nr_heartbeats: 0,
            requests: false,
            in_flight: InFlight::default(),
        }
    }

    /// A desktop: Client Events + Client Control + Call Data Update, as
    /// ClientID [`DESKTOP_CLIENT_ID`].
    pub fn with_requests(mut self) -> CtiClient {
        self.requests = self.service == Service::ClientEvents;
        self
    }

    fn invoke(&mut self) -> u32 {
        self.next_invoke += 1;
        self.next_invoke
    }

    /// The OPEN_REQ, appended to `out`.
    pub fn hello(&mut self, out: &mut Vec<u8>) {
        let services = match self.service {
            Service::AllEvents => service::ALL_EVENTS,
            Service::ClientEvents if self.requests => {
                service::CLIENT_EVENTS | service::CLIENT_CONTROL | service::CALL_DATA_UPDATE
            }
            Service::ClientEvents => service::CLIENT_EVENTS,
            Service::PeripheralMonitor => service::PERIPHERAL_MONITOR,
        };
        let client_id = if self.requests {
            DESKTOP_CLIENT_ID
        } else {
            CLIENT_ID
        };
        let mut req = OpenReq {
            invoke_id: self.invoke(),
            version_number: Version::MAX.number(),
            idle_timeout: IDLE_TIMEOUT_DISABLED,
            peripheral_id: NULL_PERIPHERAL_ID,
            services_requested: services,
            call_msg_mask: call_mask::ALL,
            agent_state_mask: agent_mask::ALL,
            client_id: Some(client_id.into()),
            client_password: Some(Unspec(Vec::new())),
            ..Default::default()
        };
        if self.service == Service::ClientEvents {
            let k = self.agents[0];
            req.peripheral_id = PERIPHERAL_ID;
            req.agent_id = Some(agent_id(k).into());
            req.agent_extension = Some(instrument(k).into());
            req.agent_instrument = Some(instrument(k).into());
        }
        encode(req.into(), out);
    }

    /// A HEARTBEAT_REQ, appended to `out`.
    pub fn heartbeat(&mut self, out: &mut Vec<u8>) {
        let invoke_id = self.invoke();
        encode(HeartbeatReq { invoke_id }.into(), out);
    }

    /// A request of `kind` for the session's agent, appended to `out`; its
    /// InvokeID (the caller puts it in flight with its send time).
    pub fn request(&mut self, kind: Kind, out: &mut Vec<u8>) -> u32 {
        let invoke_id = self.invoke();
        let k = self.agents.first().copied().unwrap_or(0);
        encode(kind.message(invoke_id, k), out);
        invoke_id
    }

    /// Classify one whole frame; requests that follow (monitors) go to `out`.
    #[inline]
    pub fn on_frame<'a>(&mut self, bytes: &'a [u8], out: &mut Vec<u8>) -> Seen<'a> {
        let message_type = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let body = &bytes[frame::HEADER_LEN..];
        match message_type {
            msg::CALL_DELIVERED_EVENT | msg::AGENT_STATE_EVENT => Seen::Event(bytes),
            msg::OPEN_CONF if self.service == Service::PeripheralMonitor => {
                self.start_monitors(out);
                if self.pending_monitors == 0 {
                    Seen::Opened
                } else {
                    Seen::Other
                }
            }
            msg::OPEN_CONF => Seen::Opened,
            msg::MONITOR_START_CONF => {
                self.pending_monitors = self.pending_monitors.saturating_sub(1);
                if self.pending_monitors == 0 {
                    Seen::Opened
                } else {
                    Seen::Other
                }
            }
            msg::HEARTBEAT_CONF => {
                self.nr_heartbeats += 1;
                Seen::Other
            }
            msg::FAILURE_CONF => match InFlight::invoke_id(body) {
                Some(id) if self.in_flight.expects(id) => {
                    Seen::Reply(self.in_flight.on_reply(message_type, body), None)
                }
                _ => Seen::Refused(be32(body, 4)),
            },
            msg::QUERY_AGENT_STATE_CONF | msg::SNAPSHOT_DEVICE_CONF => {
                let view = Message::decode(message_type, body, Version::MAX, DecodeOptions::STRICT)
                    .ok()
                    .and_then(|m| view_of(&m, u32::MAX));
                Seen::Reply(self.in_flight.on_reply(message_type, body), view)
            }
            t if requests::is_request_reply(t) => {
                Seen::Reply(self.in_flight.on_reply(message_type, body), None)
            }
            msg::FAILURE_EVENT => Seen::Ended(be32(body, 0)),
            _ => Seen::Other,
        }
    }

    fn start_monitors(&mut self, out: &mut Vec<u8>) {
        let agents = std::mem::take(&mut self.agents);
        for &k in &agents {
            let req = MonitorStartReq {
                invoke_id: self.invoke(),
                peripheral_id: PERIPHERAL_ID,
                call_msg_mask: call_mask::ALL,
                agent_state_mask: agent_mask::ALL,
                connection_device_id_type: 0xFFFF,
                monitored_device_type: device_type::DEVICE_IDENTIFIER,
                monitored_device_id: Some(instrument(k).into()),
                ..Default::default()
            };
            encode(req.into(), out);
        }
        self.pending_monitors = agents.len();
        self.agents = agents;
    }
}

fn be32(body: &[u8], at: usize) -> u32 {
    body.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(u32::MAX)
}

fn encode(m: Message, out: &mut Vec<u8>) {
    m.encode(Version::MAX, out).expect("requests fit a frame");
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctirouter::proto::msg::OpenConf;
    use ctirouter::proto::{decode_frame, DecodeOptions};

    #[test]
    fn peripheral_monitor_opens_after_its_last_monitor_conf() {
        let mut c = CtiClient::new(Service::PeripheralMonitor, vec![3, 4]);
        let mut out = Vec::new();
        c.hello(&mut out);
        out.clear();
        let conf = Message::from(OpenConf::default())
            .to_frame(Version::MAX)
            .unwrap();
        assert_eq!(c.on_frame(&conf, &mut out), Seen::Other);
        let (m, _) = decode_frame(&out, Version::MAX, DecodeOptions::STRICT).unwrap();
        let Message::MonitorStartReq(m) = m else {
            panic!("{m:?}")
        };
        assert_eq!(m.monitored_device_id.unwrap().as_bytes(), b"200003");
        let mconf = [0, 0, 0, 8, 0, 0, 0, 94, 0, 0, 0, 1, 0, 0, 0, 9];
        assert_eq!(c.on_frame(&mconf, &mut out), Seen::Other);
        assert_eq!(c.on_frame(&mconf, &mut out), Seen::Opened);
    }

    #[test]
    fn client_events_open_req_names_the_agent_three_ways() {
        let mut c = CtiClient::new(Service::ClientEvents, vec![12]);
        let mut out = Vec::new();
        c.hello(&mut out);
        let (m, _) = decode_frame(&out, Version::MAX, DecodeOptions::STRICT).unwrap();
        let Message::OpenReq(m) = m else {
            panic!("{m:?}")
        };
        assert_eq!(m.agent_id.unwrap().as_bytes(), b"100012");
        assert_eq!(m.agent_instrument.unwrap().as_bytes(), b"200012");
        assert_eq!(m.services_requested, 1);
        assert_eq!(m.client_id.unwrap().as_bytes(), CLIENT_ID.as_bytes());
    }

    #[test]
    fn desktop_opens_with_control_and_matches_replies() {
        use crate::requests::{Outcome, Sent, Tag};
        use ctirouter::proto::msg::{FailureConf, HoldCallConf};
        let mut c = CtiClient::new(Service::ClientEvents, vec![12]).with_requests();
        let mut out = Vec::new();
        c.hello(&mut out);
        let (m, _) = decode_frame(&out, Version::MAX, DecodeOptions::STRICT).unwrap();
        let Message::OpenReq(m) = m else {
            panic!("{m:?}")
        };
        assert_eq!(m.services_requested, 0x07);
        assert_eq!(
            m.client_id.unwrap().as_bytes(),
            DESKTOP_CLIENT_ID.as_bytes()
        );
        out.clear();
        let invoke_id = c.request(Kind::HoldCall, &mut out);
        let (m, _) = decode_frame(&out, Version::MAX, DecodeOptions::STRICT).unwrap();
        assert!(matches!(m, Message::HoldCallReq(r) if r.invoke_id == invoke_id));
        let sent = Sent {
            invoke_id,
            kind: Kind::HoldCall,
            sent_ns: 5,
            tag: Tag::Measured,
        };
        c.in_flight.push(sent);
        let conf = Message::from(HoldCallConf { invoke_id })
            .to_frame(Version::MAX)
            .unwrap();
        assert_eq!(
            c.on_frame(&conf, &mut out),
            Seen::Reply(Reply::Answered(sent, Outcome::Conf), None)
        );
        // A FAILURE_CONF with no request of that InvokeID in flight is not a
        // request's answer (it refuses the OPEN_REQ or a monitor).
        let failure = Message::from(FailureConf {
            invoke_id,
            status: 12,
            text: None,
        })
        .to_frame(Version::MAX)
        .unwrap();
        assert_eq!(c.on_frame(&failure, &mut out), Seen::Refused(12));
        c.in_flight.push(sent);
        assert_eq!(
            c.on_frame(&failure, &mut out),
            Seen::Reply(Reply::Answered(sent, Outcome::Failure(12)), None)
        );
    }

    #[test]
    fn query_answers_are_read_into_views() {
        use crate::pg::PgWorld;
        use crate::requests::{Outcome, Sent, Tag};
        let mut c = CtiClient::new(Service::ClientEvents, vec![12]).with_requests();
        let mut out = Vec::new();
        let mut world = PgWorld::new(20);
        world.agent_state(12, 4);
        world.call_delivered(12);
        for kind in Kind::QUERIES {
            let invoke_id = c.request(kind, &mut out);
            let sent = Sent {
                invoke_id,
                kind,
                sent_ns: 1,
                tag: Tag::Storm,
            };
            c.in_flight.push(sent);
            let (req, _) = decode_frame(&out, Version::MAX, DecodeOptions::STRICT).unwrap();
            out.clear();
            let answer = match req {
                Message::QueryAgentStateReq(r) => world.query_agent_state(&r),
                Message::SnapshotDeviceReq(r) => world.snapshot_device(&r),
                m => panic!("{m:?}"),
            };
            let frame = answer.to_frame(Version::MAX).unwrap();
            let Seen::Reply(Reply::Answered(s, Outcome::Conf), Some(view)) =
                c.on_frame(&frame, &mut out)
            else {
                panic!("{kind:?}")
            };
            assert_eq!(s, sent);
            let want = match kind {
                Kind::QueryAgentState => View::AgentState {
                    state: 4,
                    agent: Some(12),
                },
                _ => View::Calls {
                    n: 1,
                    digest: crate::pg::calls_digest([(crate::events::call_id(12), 2)]),
                },
            };
            assert_eq!(view, want);
        }
    }
}
