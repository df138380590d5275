//! The CTI Server side of the router's upstream session, sans I/O: answers
//! OPEN_REQ with OPEN_CONF (InvokeID echoed, All Events granted, PGStatus 0,
//! one peripheral online; the layout of the version the router asked for),
//! HEARTBEAT_REQ with HEARTBEAT_CONF and CLOSE_REQ with CLOSE_CONF
//! (docs/protocol.md §4.1). Events are appended by the driver, not here.
//!
//! In a scenario with requests it also grants Client Control and Call Data
//! Update and answers each such request at once: SET_AGENT_STATE, ANSWER_CALL,
//! HOLD_CALL, RETRIEVE_CALL, SET_CALL_DATA and RELEASE_CALL with their
//! confirmation (InvokeID echoed; the PG would send events after it, this
//! one sends none), any other Client Control request with
//! CONTROL_FAILURE_CONF and any other Call Data Update request with
//! FAILURE_CONF(12). QUERY_AGENT_STATE_REQ and SNAPSHOT_DEVICE_REQ are
//! answered from what the PG's own event stream said ([`PgWorld`]). The
//! same code serves the desktops that connect to the driver directly
//! (`CtiServer::direct`), the reference path.

use ctirouter::proto::constants::{msg, peripheral_type, service, status};
use ctirouter::proto::group::PeripheralEntry;
use ctirouter::proto::msg::{
    AnswerCallConf, CloseConf, ControlFailureConf, FailureConf, HeartbeatConf, HoldCallConf,
    OpenConf, OpenReq, ReleaseCallConf, RetrieveCallConf, SetAgentStateConf, SetCallDataConf,
};
use ctirouter::proto::{frame, DecodeOptions, Message, Version};
use ctirouter::session::server::proxied_service;
use std::collections::BTreeMap;

use crate::events::PERIPHERAL_ID;
use crate::pg::PgWorld;

/// Where the upstream session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// Connected, no OPEN_REQ yet.
    Opening,
    /// OPEN_CONF sent: events may flow.
    Open,
    /// CLOSE_REQ answered.
    Closed,
}

/// The request services a PG grants when the scenario has requests.
pub const REQUEST_SERVICES: u32 = service::CLIENT_CONTROL | service::CALL_DATA_UPDATE;

/// CONTROL_FAILURE_CONF FailureCode for a Client Control request this PG
/// does not carry out (CF_GENERIC_OPERATION, docs/protocol.md §5.12).
const CF_GENERIC_OPERATION: u16 = 1;

/// One session as seen by the server: the router's upstream session, or a
/// desktop connected straight to the PG.
#[derive(Debug)]
pub struct CtiServer {
    pub state: Upstream,
    /// The version the router opened with (every reply uses its layout).
    pub version: Version,
    pub nr_heartbeats: u64,
    /// Client Control and Call Data Update requests answered.
    pub nr_requests: u64,
    /// Requests that did not decode at the session's version (FAILURE_CONF 25).
    pub nr_bad_requests: u64,
    /// Requests answered, by message type.
    pub by_type: BTreeMap<u32, u64>,
    /// Upstream role: ServicesGranted. Direct role: what a session may be
    /// granted of what it asks.
    offer: u32,
    direct: bool,
    /// ServicesGranted of the OPEN_CONF sent (0 before).
    granted: u32,
}

impl Default for CtiServer {
    fn default() -> Self {
        CtiServer::upstream(false)
    }
}

impl CtiServer {
    /// The router's upstream: All Events, and with `requests` Client
    /// Control and Call Data Update as well.
    pub fn upstream(requests: bool) -> CtiServer {
        CtiServer {
            state: Upstream::Opening,
            version: Version::MAX,
            nr_heartbeats: 0,
            nr_requests: 0,
            nr_bad_requests: 0,
            by_type: BTreeMap::new(),
            offer: service::ALL_EVENTS | if requests { REQUEST_SERVICES } else { 0 },
            direct: false,
            granted: 0,
        }
    }

    /// Whether this upstream grants (and answers) requests.
    pub fn grants_requests(&self) -> bool {
        !self.direct && self.offer & REQUEST_SERVICES != 0
    }

    /// A desktop connected straight to the PG: granted what it asks of
    /// Client Events, Client Control and Call Data Update (it gets no events).
    pub fn direct() -> CtiServer {
        CtiServer {
            offer: service::CLIENT_EVENTS | REQUEST_SERVICES,
            direct: true,
            ..CtiServer::upstream(false)
        }
    }

    /// [`CtiServer::serve`] by a PG that has no agents (every query names
    /// an unknown object).
    pub fn on_input(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, String> {
        self.serve(input, out, &PgWorld::EMPTY)
    }

    /// Handle every whole frame at the front of `input`, appending replies to
    /// `out` (queries answered from `world`); returns the bytes used. Frames
    /// the server has no answer for are skipped.
    pub fn serve(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        world: &PgWorld,
    ) -> Result<usize, String> {
        let mut used = 0;
        while let Ok((f, len)) = frame::parse(&input[used..]) {
            self.on_frame(f.message_type, f.body, out, world)?;
            used += len;
        }
        if let Err(e) = frame::check(&input[used..]) {
            if e.breaks_framing() {
                return Err(format!("bad frame from the router: {e}"));
            }
        }
        Ok(used)
    }

    fn on_frame(
        &mut self,
        message_type: u32,
        body: &[u8],
        out: &mut Vec<u8>,
        world: &PgWorld,
    ) -> Result<(), String> {
        let reply: Message = match message_type {
            msg::OPEN_REQ => {
                let asked = OpenReq::peek_version(body).unwrap_or(Version::MAX.number());
                self.version = Version::new(asked).ok_or(format!("router asked for v{asked}"))?;
                let req = Message::decode(message_type, body, self.version, DecodeOptions::STRICT)
                    .map_err(|e| format!("OPEN_REQ: {e}"))?;
                let Message::OpenReq(req) = req else {
                    unreachable!("type 3 decodes to OpenReq")
                };
                self.state = Upstream::Open;
                self.granted = if self.direct {
                    req.services_requested & self.offer
                } else {
                    self.offer
                };
                open_conf(req.invoke_id, self.granted).into()
            }
            msg::HEARTBEAT_REQ => {
                self.nr_heartbeats += 1;
                HeartbeatConf {
                    invoke_id: invoke_id(body),
                }
                .into()
            }
            msg::CLOSE_REQ => {
                self.state = Upstream::Closed;
                CloseConf {
                    invoke_id: invoke_id(body),
                }
                .into()
            }
            t if proxied_service(t).is_some() => self.answer_request(t, body, world),
            _ => return Ok(()),
        };
        reply
            .encode(self.version, out)
            .map_err(|e| format!("encode reply: {e}"))?;
        Ok(())
    }

    /// The answer to a Client Control or Call Data Update request.
    fn answer_request(&mut self, message_type: u32, body: &[u8], world: &PgWorld) -> Message {
        let invoke_id = invoke_id(body);
        self.nr_requests += 1;
        *self.by_type.entry(message_type).or_default() += 1;
        let needs = proxied_service(message_type).map_or(0, |s| s.bits());
        if self.granted & needs == 0 {
            return failure(invoke_id, status::E_CTI_FUNCTION_NOT_AVAILABLE);
        }
        let request = match Message::decode(message_type, body, self.version, DecodeOptions::STRICT)
        {
            Ok(m) => m,
            Err(_) => {
                self.nr_bad_requests += 1;
                return failure(invoke_id, status::E_CTI_BAD_MESSAGE_FORMAT);
            }
        };
        match request {
            Message::QueryAgentStateReq(r) => return world.query_agent_state(&r),
            Message::SnapshotDeviceReq(r) => return world.snapshot_device(&r),
            _ => {}
        }
        match message_type {
            msg::SET_AGENT_STATE_REQ => SetAgentStateConf { invoke_id }.into(),
            msg::ANSWER_CALL_REQ => AnswerCallConf { invoke_id }.into(),
            msg::HOLD_CALL_REQ => HoldCallConf { invoke_id }.into(),
            msg::RETRIEVE_CALL_REQ => RetrieveCallConf { invoke_id }.into(),
            msg::SET_CALL_DATA_REQ => SetCallDataConf { invoke_id }.into(),
            msg::RELEASE_CALL_REQ => ReleaseCallConf { invoke_id }.into(),
            t if proxied_service(t).is_some_and(|s| s.bits() & service::CLIENT_CONTROL != 0) => {
                ControlFailureConf {
                    invoke_id,
                    failure_code: CF_GENERIC_OPERATION,
                    ..Default::default()
                }
                .into()
            }
            _ => failure(invoke_id, status::E_CTI_FUNCTION_NOT_AVAILABLE),
        }
    }
}

fn failure(invoke_id: u32, status: u32) -> Message {
    FailureConf {
        invoke_id,
        status,
        text: None,
    }
    .into()
}

fn invoke_id(body: &[u8]) -> u32 {
    body.get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

/// OPEN_CONF of a healthy PG with one peripheral online.
fn open_conf(invoke_id: u32, services_granted: u32) -> OpenConf {
    OpenConf {
        invoke_id,
        services_granted,
        pg_status: 0,
        icm_central_controller_time: 1_700_000_000,
        peripheral_online: 1,
        peripheral_type: peripheral_type::ENTERPRISE_AGENT,
        department_id: 0,
        session_type: 1,
        num_peripherals: Some(1),
        peripherals: vec![PeripheralEntry {
            peripheral_id: Some(PERIPHERAL_ID),
            multiline_agent_control: Some(0),
        }],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctirouter::proto::decode_frame;
    use ctirouter::proto::msg::HeartbeatReq;

    #[test]
    fn open_req_gets_open_conf_with_its_invoke_id() {
        let req = OpenReq {
            invoke_id: 77,
            version_number: 24,
            services_requested: service::ALL_EVENTS,
            client_id: Some("ctirouter".into()),
            ..Default::default()
        };
        let mut input = Message::from(req).to_frame(Version::MAX).unwrap();
        input.extend(
            Message::from(HeartbeatReq { invoke_id: 5 })
                .to_frame(Version::MAX)
                .unwrap(),
        );
        let mut server = CtiServer::default();
        let mut out = Vec::new();
        assert_eq!(server.on_input(&input, &mut out).unwrap(), input.len());
        let (conf, used) = decode_frame(&out, Version::MAX, DecodeOptions::STRICT).unwrap();
        let Message::OpenConf(conf) = conf else {
            panic!("{conf:?}")
        };
        assert_eq!((conf.invoke_id, conf.services_granted), (77, 0x10));
        assert_eq!(out.len() - used, 12, "then HEARTBEAT_CONF");
        assert_eq!(server.state, Upstream::Open);
    }

    fn open(server: &mut CtiServer, services: u32) -> OpenConf {
        let req = OpenReq {
            invoke_id: 1,
            version_number: 24,
            services_requested: services,
            client_id: Some("x".into()),
            ..Default::default()
        };
        let input = Message::from(req).to_frame(Version::MAX).unwrap();
        let mut out = Vec::new();
        server.on_input(&input, &mut out).unwrap();
        match decode_frame(&out, Version::MAX, DecodeOptions::STRICT)
            .unwrap()
            .0
        {
            Message::OpenConf(conf) => conf,
            m => panic!("{m:?}"),
        }
    }

    /// Every frame `server` answers `input` with.
    fn answers(server: &mut CtiServer, input: &[u8]) -> Vec<Message> {
        let mut out = Vec::new();
        assert_eq!(server.on_input(input, &mut out).unwrap(), input.len());
        let mut at = 0;
        let mut replies = Vec::new();
        while at < out.len() {
            let (m, used) = decode_frame(&out[at..], Version::MAX, DecodeOptions::STRICT).unwrap();
            replies.push(m);
            at += used;
        }
        replies
    }

    #[test]
    fn requests_get_their_conf_with_the_invoke_id_at_once() {
        let mut server = CtiServer::upstream(true);
        let conf = open(&mut server, 0x1E);
        assert_eq!(
            conf.services_granted, 0x16,
            "All Events, Client Control, Call Data Update"
        );
        let mut input = Vec::new();
        for (i, kind) in crate::requests::Kind::MIX.into_iter().enumerate() {
            let m = kind.message(0x8000_0000 | i as u32, 3);
            input.extend(m.to_frame(Version::MAX).unwrap());
        }
        let replies = answers(&mut server, &input);
        assert_eq!(replies.len(), 5);
        for (i, (reply, kind)) in replies.iter().zip(crate::requests::Kind::MIX).enumerate() {
            let f = reply.to_frame(Version::MAX).unwrap();
            assert_eq!(frame::message_type(&f), Some(kind.conf_type()), "{reply:?}");
            assert_eq!(invoke_id(&f[8..]), 0x8000_0000 | i as u32);
        }
        assert_eq!(server.nr_requests, 5);
    }

    #[test]
    fn other_requests_and_bad_bodies_get_failures() {
        use ctirouter::proto::msg::{MakeCallReq, ReleaseCallReq};
        let mut server = CtiServer::upstream(true);
        open(&mut server, 0x1E);
        let mut input = Message::from(MakeCallReq {
            invoke_id: 9,
            ..Default::default()
        })
        .to_frame(Version::MAX)
        .unwrap();
        input.extend(
            Message::from(ReleaseCallReq {
                invoke_id: 10,
                ..Default::default()
            })
            .to_frame(Version::MAX)
            .unwrap(),
        );
        // A HOLD_CALL_REQ cut short: 4 bytes of body, the InvokeID only.
        input.extend([0, 0, 0, 4, 0, 0, 0, 54, 0, 0, 0, 11]);
        let replies = answers(&mut server, &input);
        assert!(
            matches!(&replies[0], Message::ControlFailureConf(c) if c.invoke_id == 9 && c.failure_code == 1),
            "{replies:?}"
        );
        assert!(matches!(&replies[1], Message::ReleaseCallConf(c) if c.invoke_id == 10));
        assert!(
            matches!(&replies[2], Message::FailureConf(c) if c.invoke_id == 11 && c.status == 25)
        );
        assert_eq!(server.nr_bad_requests, 1);
    }

    #[test]
    fn queries_are_answered_from_the_world_and_counted_by_type() {
        use crate::requests::Kind;
        use ctirouter::proto::constants::agent_state::TALKING;
        let mut world = PgWorld::new(5);
        world.agent_state(2, TALKING);
        world.call_delivered(2);
        let mut server = CtiServer::upstream(true);
        open(&mut server, 0x1E);
        let mut input = Kind::QueryAgentState
            .message(41, 2)
            .to_frame(Version::MAX)
            .unwrap();
        input.extend(
            Kind::SnapshotDevice
                .message(42, 2)
                .to_frame(Version::MAX)
                .unwrap(),
        );
        input.extend(
            Kind::SnapshotDevice
                .message(43, 4)
                .to_frame(Version::MAX)
                .unwrap(),
        );
        let mut out = Vec::new();
        assert_eq!(server.serve(&input, &mut out, &world).unwrap(), input.len());
        let mut replies = Vec::new();
        let mut at = 0;
        while at < out.len() {
            let (m, used) = decode_frame(&out[at..], Version::MAX, DecodeOptions::STRICT).unwrap();
            replies.push(m);
            at += used;
        }
        assert!(
            matches!(&replies[0], Message::QueryAgentStateConf(c) if c.invoke_id == 41 && c.agent_state == TALKING),
            "{replies:?}"
        );
        assert!(
            matches!(&replies[1], Message::SnapshotDeviceConf(c) if c.invoke_id == 42 && c.calls.len() == 1)
        );
        assert!(
            matches!(&replies[2], Message::SnapshotDeviceConf(c) if c.invoke_id == 43 && c.calls.is_empty())
        );
        assert_eq!(server.by_type[&msg::QUERY_AGENT_STATE_REQ], 1);
        assert_eq!(server.by_type[&msg::SNAPSHOT_DEVICE_REQ], 2);
        assert_eq!(server.nr_requests, 3);
    }

    #[test]
    fn without_requests_the_upstream_grants_all_events_only_and_refuses_them() {
        let mut server = CtiServer::upstream(false);
        assert_eq!(open(&mut server, 0x1E).services_granted, 0x10);
        let input = crate::requests::Kind::HoldCall
            .message(3, 1)
            .to_frame(Version::MAX)
            .unwrap();
        let replies = answers(&mut server, &input);
        assert!(matches!(&replies[0], Message::FailureConf(c) if c.status == 12));
    }

    #[test]
    fn direct_sessions_get_what_they_ask_of_the_desktop_services() {
        let input = crate::requests::Kind::SetCallData
            .message(44, 1)
            .to_frame(Version::MAX)
            .unwrap();
        let mut desktop = CtiServer::direct();
        assert_eq!(open(&mut desktop, 0x07).services_granted, 0x07);
        let replies = answers(&mut desktop, &input);
        assert!(matches!(&replies[0], Message::SetCallDataConf(c) if c.invoke_id == 44));
        let mut watcher = CtiServer::direct();
        assert_eq!(open(&mut watcher, 0x11).services_granted, 0x01);
        let replies = answers(&mut watcher, &input);
        assert!(matches!(&replies[0], Message::FailureConf(c) if c.status == 12));
    }
}
