//! One downstream session's protocol state machine, sans I/O: version
//! negotiation, the before-OPEN rule, OPEN_REQ checks, OPEN_CONF and the
//! SYSTEM_EVENTs after it, heartbeat, close, bad input, the event masks, and
//! the decoding and checking of monitor requests (docs/design.md §4 items 1–11). It reads frames and appends the frames it
//! answers with to an output buffer; the connection task does the I/O.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::{ClientEntry, Config, ControlScope};
use crate::event::MaskBit;
use crate::ids::{InvokeId, MonitorId, Services, SessionId};
use crate::keys::{AgentField, AgentKey, CallKey, DeviceKey, DeviceKind};
use crate::proto::constants::{agent_state, control_failure, device_type};
use crate::proto::constants::{msg, service, status, IDLE_TIMEOUT_DISABLED, MIN_IDLE_TIMEOUT_SECS};
use crate::proto::msg::{
    ChangeMonitorMaskReq, ClientEventReportConf, ClientEventReportReq, CloseConf, CloseReq,
    ControlFailureConf, FailureConf, FailureEvent, HeartbeatConf, HeartbeatReq, MonitorStartReq,
    MonitorStopReq, OpenConf, OpenReq, RegisterVariablesConf, RegisterVariablesReq,
    SessionMonitorStartReq, SessionMonitorStopReq,
};
use crate::proto::{CtiString, DecodeOptions, Frame, Message, MessageBody, RequestError, Version};
use crate::status::{unix_time, AgentView, PgStatus};

use super::variables::VariableFilter;

/// The services the router serves itself (grants): the four event
/// services and Connection Monitor (docs/requests.md §1: the router logs
/// and counts such a session's open and close, as the CTI Server alarms).
pub const SERVED_SERVICES: Services = Services(
    service::ALL_EVENTS
        | service::CLIENT_EVENTS
        | service::PERIPHERAL_MONITOR
        | service::CLIENT_MONITOR
        | service::CONNECTION_MONITOR
        | service::SERVER,
);

/// The tracing target of CLIENT_EVENT_REPORT lines: what clients report of
/// themselves (docs/requests.md §6).
pub const CLIENT_EVENT_TARGET: &str = "ctirouter::client_event";

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connected; only OPEN_REQ is accepted.
    AwaitingOpen,
    Open,
    /// Ending: what is queued is flushed, then the socket closes.
    Closing(CloseReason),
}

/// Why a session ended; decides CLIENT_SESSION_CLOSED_EVENT's Status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// CLOSE_REQ (status 0).
    ClientClose,
    /// The OPEN_REQ was refused.
    OpenRejected(RequestError),
    /// Unrecoverable framing (frame over the size limit).
    BadFraming,
    /// No message for IdleTimeout seconds (status 16).
    IdleTimeout,
    /// Unsent output over the bound (status 25).
    SlowConsumer,
    /// The router is shutting down (status 15).
    Shutdown,
    /// TCP dropped without CLOSE_REQ (status 37).
    Disconnected,
}

impl CloseReason {
    /// CLIENT_SESSION_CLOSED_EVENT Status (docs/design.md §4.6).
    pub fn status(self) -> u32 {
        match self {
            CloseReason::ClientClose => status::E_CTI_NO_ERROR,
            CloseReason::OpenRejected(error) => error.status(),
            CloseReason::BadFraming | CloseReason::SlowConsumer => status::E_CTI_BAD_MESSAGE_FORMAT,
            CloseReason::IdleTimeout => status::E_CTI_TIMEOUT,
            CloseReason::Shutdown => status::E_CTI_CTI_SERVER_OFFLINE,
            CloseReason::Disconnected => status::E_CTI_CLIENT_DISCONNECTED,
        }
    }
}

/// What the router knows about a session's client (Client Monitor, logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub client_id: CtiString,
    pub client_signature: CtiString,
    pub agent_extension: Option<CtiString>,
    pub agent_id: Option<CtiString>,
    pub agent_instrument: Option<CtiString>,
    pub peripheral_id: u32,
}

impl ClientInfo {
    /// The key a Client Events session names its agent by: AgentInstrument,
    /// else AgentExtension, else AgentID.
    pub fn agent_key(&self) -> Option<AgentKey> {
        let named = |field, value: &Option<CtiString>| {
            value
                .as_ref()
                .filter(|v| !v.is_empty())
                .map(|v| AgentKey::new(field, v.as_bytes()))
        };
        named(AgentField::Instrument, &self.agent_instrument)
            .or_else(|| named(AgentField::Extension, &self.agent_extension))
            .or_else(|| named(AgentField::Id, &self.agent_id))
    }
}

/// What a frame did to the session, beyond the bytes it queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    /// The session just opened (register it for events).
    Opened,
    /// Flush what is queued, then close.
    Close(CloseReason),
    /// A monitor request the shard must carry out (it answers the client).
    Request(Request),
    /// A request of a proxied service that passed the session's checks:
    /// the shard sends it to ingest, which sends it upstream.
    Proxy {
        message_type: u32,
        invoke_id: InvokeId,
    },
    /// A request of a proxied service that failed them: answered here with
    /// its failure (the shard counts it).
    Refused {
        message_type: u32,
    },
    /// A server application's answer (START/STOP_RECORDING_CONF,
    /// FAILURE_CONF, CONTROL_FAILURE_CONF) to a request the router sent it
    /// (docs/requests.md §8): the shard sends it to ingest.
    ServerReply {
        message_type: u32,
    },
}

/// What a MONITOR_START_REQ asks to watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorTarget {
    Call(CallKey),
    Device(DeviceKey),
}

/// Requests a shard carries out for a session (docs/design.md §4 items 9, 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    MonitorStart {
        invoke_id: InvokeId,
        target: MonitorTarget,
        call_mask: u32,
        agent_mask: u32,
    },
    MonitorStop {
        invoke_id: InvokeId,
        monitor_id: MonitorId,
    },
    ChangeMonitorMask {
        invoke_id: InvokeId,
        monitor_id: MonitorId,
        call_mask: u32,
        agent_mask: u32,
    },
    SessionMonitorStart {
        invoke_id: InvokeId,
        session_id: SessionId,
    },
    SessionMonitorStop {
        invoke_id: InvokeId,
        monitor_id: MonitorId,
    },
}

/// Shared inputs of the state machine.
pub struct Context<'a> {
    pub config: &'a Config,
    pub status: &'a PgStatus,
    /// Allocates a MonitorID unique across the router.
    pub next_monitor_id: &'a dyn Fn() -> MonitorId,
    /// The services this server serves itself ([`SERVED_SERVICES`] for the
    /// router; `sim-pg`'s event services); the request services come from
    /// `status.upstream_services`.
    pub served_services: Services,
    /// The router holds `max_sessions` open sessions: an OPEN_REQ that
    /// passes its checks is refused (E_CTI_UNSPECIFIED_FAILURE) and closed.
    pub at_session_limit: bool,
}

/// One session's protocol state.
#[derive(Debug)]
pub struct Session {
    pub id: SessionId,
    pub peer: SocketAddr,
    pub phase: Phase,
    /// Negotiated version (MAX until OPEN).
    pub version: Version,
    pub services: Services,
    pub call_mask: u32,
    pub agent_mask: u32,
    /// `None`: idle check disabled (0xFFFFFFFF).
    pub idle_timeout: Option<Duration>,
    /// The Client Events monitor created by OPEN_REQ (0 if none).
    pub client_events_monitor: MonitorId,
    pub last_input: Instant,
    pub client: ClientInfo,
    /// InvokeID of the OPEN_REQ, for the OPEN_CONF sent once the router
    /// has registered the session ([`Session::confirm_open`]).
    pub open_invoke_id: InvokeId,
    /// Proxied requests sent and not answered yet, and how many may be.
    pub outstanding: u32,
    pub max_outstanding: u32,
    /// What its requests may act on when it is an All Events or Peripheral
    /// Monitor session (its client's `control_scope`).
    pub control_scope: ControlScope,
    /// The variables it registered (REGISTER_VARIABLES): only those are
    /// sent on its call events. `None`: every variable.
    pub variables: Option<Box<VariableFilter>>,
    /// A supervisor's session (docs/requests.md §7): its events come from
    /// its own session on the CTI Server, none from the bridge's stream.
    pub own_upstream: bool,
}

/// InvokeID of a request: its first field, 0 when the body is too short.
fn invoke_id(body: &[u8]) -> InvokeId {
    InvokeId(OpenReq::peek_invoke_id(body).unwrap_or(0))
}

fn push(out: &mut Vec<u8>, version: Version, message: Message) {
    // Responses are fixed-size or tiny: they always fit and exist at every version.
    let _ = message.encode(version, out);
}

/// Append any message at `version` (confirmations the shard sends).
pub fn reply(out: &mut Vec<u8>, version: Version, message: Message) {
    push(out, version, message);
}

/// Append FAILURE_CONF(InvokeID, the error's status).
pub fn failure_conf(out: &mut Vec<u8>, version: Version, invoke_id: InvokeId, error: RequestError) {
    let status = error.status();
    push(
        out,
        version,
        FailureConf {
            invoke_id: invoke_id.0,
            status,
            text: None,
        }
        .into(),
    );
}

/// Append CONTROL_FAILURE_CONF(InvokeID, FailureCode) (docs/protocol.md §5.12).
pub fn control_failure_conf(out: &mut Vec<u8>, version: Version, invoke_id: InvokeId, code: u16) {
    push(
        out,
        version,
        ControlFailureConf {
            invoke_id: invoke_id.0,
            failure_code: code,
            ..Default::default()
        }
        .into(),
    );
}

/// Append FAILURE_EVENT(status).
pub fn failure_event(out: &mut Vec<u8>, version: Version, status: u32) {
    push(out, version, FailureEvent { status, text: None }.into());
}

impl Session {
    pub fn new(id: SessionId, peer: SocketAddr, now: Instant) -> Session {
        Session {
            id,
            peer,
            phase: Phase::AwaitingOpen,
            version: Version::MAX,
            services: Services::NONE,
            call_mask: 0,
            agent_mask: 0,
            idle_timeout: None,
            client_events_monitor: MonitorId::ALL_EVENTS,
            last_input: now,
            client: ClientInfo::default(),
            open_invoke_id: InvokeId(0),
            outstanding: 0,
            max_outstanding: 0,
            control_scope: ControlScope::Any,
            variables: None,
            own_upstream: false,
        }
    }

    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Handle one whole frame from the client, appending any answer to `out`.
    pub fn on_frame(
        &mut self,
        frame: Frame<'_>,
        ctx: &Context<'_>,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Outcome {
        self.last_input = now;
        let outcome = match self.phase {
            Phase::Closing(_) => Outcome::Continue,
            Phase::AwaitingOpen if frame.message_type == msg::OPEN_REQ => {
                self.on_open_req(frame.body, ctx, out)
            }
            Phase::AwaitingOpen => {
                failure_conf(
                    out,
                    self.version,
                    invoke_id(frame.body),
                    RequestError::SessionNotOpen,
                );
                Outcome::Continue
            }
            Phase::Open => self.on_request(frame, out),
        };
        if let Outcome::Close(reason) = outcome {
            self.phase = Phase::Closing(reason);
        }
        outcome
    }

    /// The stream broke framing (a frame over the size limit): FAILURE_EVENT,
    /// close.
    pub fn on_framing_error(&mut self, out: &mut Vec<u8>) -> Outcome {
        self.end_with_failure_event(CloseReason::BadFraming, out);
        Outcome::Close(CloseReason::BadFraming)
    }

    /// Whether the idle timeout has run out at `now`.
    pub fn idle_expired(&self, now: Instant) -> bool {
        match self.idle_timeout {
            Some(limit) => {
                self.phase == Phase::Open && now.duration_since(self.last_input) >= limit
            }
            None => false,
        }
    }

    /// Queue the session's end with a FAILURE_EVENT(status) (idle timeout, shutdown).
    pub fn end_with_failure_event(&mut self, reason: CloseReason, out: &mut Vec<u8>) {
        failure_event(out, self.version, reason.status());
        self.phase = Phase::Closing(reason);
    }

    fn reject(&mut self, out: &mut Vec<u8>, invoke: InvokeId, error: RequestError) -> Outcome {
        failure_conf(out, self.version, invoke, error);
        Outcome::Close(CloseReason::OpenRejected(error))
    }

    fn on_open_req(&mut self, body: &[u8], ctx: &Context<'_>, out: &mut Vec<u8>) -> Outcome {
        let invoke = invoke_id(body);
        let Some(requested) = OpenReq::peek_version(body) else {
            failure_conf(out, self.version, invoke, RequestError::BadFormat);
            return Outcome::Continue;
        };
        let Some(version) = Version::new(requested) else {
            return self.reject(out, invoke, RequestError::InvalidVersion);
        };
        self.version = version;
        let req = match OpenReq::decode_body(body, version, DecodeOptions::STRICT) {
            Ok(req) => req,
            Err(e) => {
                failure_conf(out, version, invoke, e.into());
                return Outcome::Continue;
            }
        };
        if let Err(error) = check_open_req(&req, ctx.config) {
            return self.reject(out, invoke, error);
        }
        if ctx.at_session_limit {
            return self.reject(out, invoke, RequestError::AtSessionLimit);
        }
        self.accept_open(req, ctx, out)
    }

    /// The OPEN_REQ passed its checks: the session is open with the
    /// services it may have (none at all: FAILURE_CONF(12) and close). The
    /// OPEN_CONF follows from [`Session::confirm_open`], once the router has
    /// registered the session and knows its agent.
    fn accept_open(&mut self, req: OpenReq, ctx: &Context<'_>, out: &mut Vec<u8>) -> Outcome {
        let client_id = req.client_id.clone().unwrap_or_default();
        let entry = ctx.config.client(client_id.as_bytes());
        let granted = grant(Services(req.services_requested), ctx, entry);
        if granted.is_empty() {
            return self.reject(out, InvokeId(req.invoke_id), RequestError::NotAvailable);
        }
        self.services = granted;
        self.call_mask = req.call_msg_mask;
        self.agent_mask = req.agent_state_mask;
        self.idle_timeout = (req.idle_timeout != IDLE_TIMEOUT_DISABLED)
            .then(|| Duration::from_secs(req.idle_timeout as u64));
        self.open_invoke_id = InvokeId(req.invoke_id);
        self.control_scope = entry.map_or(ControlScope::Any, |c| c.control_scope);
        self.max_outstanding = entry
            .and_then(|c| c.max_outstanding)
            .unwrap_or(ctx.config.requests.max_outstanding)
            .try_into()
            .unwrap_or(u32::MAX);
        self.client = ClientInfo {
            client_signature: req.client_signature.unwrap_or_else(|| client_id.clone()),
            client_id,
            agent_extension: req.agent_extension,
            agent_id: req.agent_id,
            agent_instrument: req.agent_instrument,
            peripheral_id: req.peripheral_id,
        };
        self.phase = Phase::Open;
        self.own_upstream = self.services.contains(Services::SUPERVISOR);
        if self.services.contains(Services::CLIENT_EVENTS) && !self.own_upstream {
            self.client_events_monitor = (ctx.next_monitor_id)();
        }
        Outcome::Opened
    }

    /// Append the OPEN_CONF (with `status`, and for a Client Events session
    /// its agent as the router last saw it, design contract §4.4) and, for
    /// All Events, one SYSTEM_EVENT per peripheral.
    pub fn confirm_open(&self, status: &PgStatus, agent: Option<&AgentView>, out: &mut Vec<u8>) {
        let now = unix_time();
        push(out, self.version, self.open_conf(status, agent, now).into());
        if self.services.contains(Services::ALL_EVENTS) {
            for event in status.peripheral_events(now) {
                push(out, self.version, event);
            }
        }
    }

    fn open_conf(&self, status: &PgStatus, agent: Option<&AgentView>, now: u32) -> OpenConf {
        let peripherals = status
            .peripherals
            .iter()
            .map(|&(id, _)| crate::proto::group::PeripheralEntry {
                peripheral_id: Some(id),
                multiline_agent_control: Some(0),
            })
            .collect::<Vec<_>>();
        let mut conf = OpenConf {
            invoke_id: self.open_invoke_id.0,
            services_granted: self.services.bits(),
            monitor_id: self.client_events_monitor.0,
            pg_status: status.pg_status,
            icm_central_controller_time: now,
            peripheral_online: status.all_online() as u16,
            peripheral_type: status.peripheral_type,
            // 1 = active: the router always serves (docs/protocol.md §4.1).
            session_type: 1,
            num_peripherals: Some(peripherals.len() as u16),
            peripherals,
            ..Default::default()
        };
        if self.services.contains(Services::CLIENT_EVENTS) {
            let c = &self.client;
            let given = AgentView {
                agent_state: agent_state::LOGOUT,
                department_id: 0,
                agent_id: c.agent_id.clone(),
                agent_extension: c.agent_extension.clone(),
                agent_instrument: c.agent_instrument.clone(),
            };
            let agent = agent.cloned().unwrap_or(given);
            conf.agent_state = agent.agent_state;
            conf.department_id = agent.department_id;
            conf.agent_id = agent.agent_id;
            conf.agent_extension = agent.agent_extension;
            conf.agent_instrument = agent.agent_instrument;
        }
        conf
    }

    fn on_request(&mut self, frame: Frame<'_>, out: &mut Vec<u8>) -> Outcome {
        let body = frame.body;
        let invoke = invoke_id(body);
        let v = self.version;
        if let Some(outcome) = self.on_monitor_request(frame, out) {
            return outcome;
        }
        match frame.message_type {
            msg::HEARTBEAT_REQ => match HeartbeatReq::decode_body(body, v, DecodeOptions::STRICT) {
                Ok(req) => push(
                    out,
                    v,
                    HeartbeatConf {
                        invoke_id: req.invoke_id,
                    }
                    .into(),
                ),
                Err(e) => failure_conf(out, v, invoke, e.into()),
            },
            msg::CLOSE_REQ => match CloseReq::decode_body(body, v, DecodeOptions::STRICT) {
                Ok(req) => {
                    push(
                        out,
                        v,
                        CloseConf {
                            invoke_id: req.invoke_id,
                        }
                        .into(),
                    );
                    return Outcome::Close(CloseReason::ClientClose);
                }
                Err(e) => failure_conf(out, v, invoke, e.into()),
            },
            msg::OPEN_REQ => return self.reject(out, invoke, RequestError::SessionAlreadyOpen),
            msg::CLIENT_EVENT_REPORT_REQ => {
                match ClientEventReportReq::decode_body(body, v, DecodeOptions::STRICT) {
                    Ok(report) => {
                        self.log_client_event_report(&report);
                        let invoke_id = report.invoke_id;
                        push(out, v, ClientEventReportConf { invoke_id }.into());
                    }
                    Err(e) => failure_conf(out, v, invoke, e.into()),
                }
            }
            msg::REGISTER_VARIABLES_REQ => {
                match RegisterVariablesReq::decode_body(body, v, DecodeOptions::STRICT) {
                    Ok(register) => {
                        let invoke_id = register.invoke_id;
                        self.variables = Some(Box::new(VariableFilter::registered(register)));
                        push(out, v, RegisterVariablesConf { invoke_id }.into());
                    }
                    Err(e) => failure_conf(out, v, invoke, e.into()),
                }
            }
            t if proxied_service(t).is_some() => return self.on_proxied_request(frame, out),
            t if is_server_reply(t) && self.services.contains(Services::SERVER) => {
                return self.on_server_reply(frame, out)
            }
            1..=msg::MAX_KNOWN_V24 => failure_conf(out, v, invoke, RequestError::NotAvailable),
            _ => failure_conf(out, v, invoke, RequestError::UnknownMessageType),
        }
        Outcome::Continue
    }

    /// A request of a service the router proxies upstream (docs/requests.md
    /// §5): the service granted (else 12), the type known at the session's
    /// version (else 48), a well-formed body (else 25), and room among the
    /// session's requests in flight (else CONTROL_FAILURE_CONF
    /// CF_SERVICE_BUSY). Answered later by the CTI Server through ingest.
    fn on_proxied_request(&mut self, frame: Frame<'_>, out: &mut Vec<u8>) -> Outcome {
        let (t, body, v) = (frame.message_type, frame.body, self.version);
        let invoke = invoke_id(body);
        let refused = Outcome::Refused { message_type: t };
        let granted = may_request(self.services, t);
        if !granted {
            failure_conf(out, v, invoke, RequestError::NotAvailable);
            return refused;
        }
        if v.number() < u32::from(Message::since(t)) {
            failure_conf(out, v, invoke, RequestError::NotInVersion);
            return refused;
        }
        if let Err(e) = Message::decode(t, body, v, DecodeOptions::STRICT) {
            failure_conf(out, v, invoke, e.into());
            return refused;
        }
        if body.len() < 4 {
            failure_conf(out, v, invoke, RequestError::BadFormat);
            return refused;
        }
        if self.outstanding >= self.max_outstanding {
            control_failure_conf(out, v, invoke, control_failure::CF_SERVICE_BUSY);
            return refused;
        }
        self.outstanding += 1;
        Outcome::Proxy {
            message_type: t,
            invoke_id: invoke,
        }
    }

    /// A server application answers a request the router sent it: well
    /// formed at the session's version (else FAILURE_CONF 25, and the
    /// session stays open), it goes to ingest, which knows who asked.
    fn on_server_reply(&mut self, frame: Frame<'_>, out: &mut Vec<u8>) -> Outcome {
        let (t, body, v) = (frame.message_type, frame.body, self.version);
        if body.len() < 4 || Message::decode(t, body, v, DecodeOptions::STRICT).is_err() {
            failure_conf(out, v, invoke_id(body), RequestError::BadFormat);
            return Outcome::Continue;
        }
        Outcome::ServerReply { message_type: t }
    }

    /// CLIENT_EVENT_REPORT_REQ (docs/requests.md §6): the client's report of
    /// its own state, logged at the level its State says (0 normal, 1
    /// warning, 2 error) with who sent it.
    fn log_client_event_report(&self, report: &ClientEventReportReq) {
        let text = |s: &Option<CtiString>| {
            s.as_ref()
                .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned())
                .unwrap_or_default()
        };
        let client_id = String::from_utf8_lossy(self.client.client_id.as_bytes());
        let (object, text) = (text(&report.object_name), text(&report.text));
        let session = self.id.0;
        let peer = self.peer;
        match report.state {
            0 => tracing::info!(
                target: CLIENT_EVENT_TARGET,
                session, %client_id, %peer, %object, "{text}"
            ),
            1 => tracing::warn!(
                target: CLIENT_EVENT_TARGET,
                session, %client_id, %peer, %object, "{text}"
            ),
            state => tracing::error!(
                target: CLIENT_EVENT_TARGET,
                session, %client_id, %peer, %object, state, "{text}"
            ),
        }
    }

    /// A proxied request was answered (or failed): one fewer in flight.
    pub fn request_done(&mut self) {
        self.outstanding = self.outstanding.saturating_sub(1);
    }

    /// Monitor and session-monitor requests: decoded and checked here, carried
    /// out by the shard. `None` for other message types.
    fn on_monitor_request(&mut self, frame: Frame<'_>, out: &mut Vec<u8>) -> Option<Outcome> {
        let (body, v) = (frame.body, self.version);
        let invoke = invoke_id(body);
        let needs = match frame.message_type {
            msg::MONITOR_START_REQ | msg::MONITOR_STOP_REQ | msg::CHANGE_MONITOR_MASK_REQ => {
                Services::PERIPHERAL_MONITOR
            }
            msg::SESSION_MONITOR_START_REQ | msg::SESSION_MONITOR_STOP_REQ => {
                Services::CLIENT_MONITOR
            }
            _ => return None,
        };
        if !self.services.contains(needs) {
            failure_conf(out, v, invoke, RequestError::NotAvailable);
            return Some(Outcome::Continue);
        }
        let request = match decode_request(frame, v) {
            Ok(request) => request,
            Err(error) => {
                failure_conf(out, v, invoke, error);
                return Some(Outcome::Continue);
            }
        };
        Some(Outcome::Request(request))
    }

    /// The All Events filter (docs/design.md §4.8): every call and agent event,
    /// CallMsgMask by event type, AgentStateMask by AgentState;
    /// CALL_TRANSLATION_ROUTE_EVENT unmasked. (SYSTEM_EVENT goes to every
    /// open session and is not decided here.) The event's [`MaskBit`] is
    /// computed once, by ingest.
    #[inline]
    pub fn wants_all_events_bit(&self, bit: MaskBit) -> bool {
        self.services.contains(Services::ALL_EVENTS) && bit.passes(self.call_mask, self.agent_mask)
    }
}

/// The request service a message type belongs to, for the requests the
/// router sends on to ingest (docs/requests.md §1): Client Control, Call
/// Data Update, the Miscellaneous requests that every session may send
/// (`Services::NONE`: no service bit needed) and the CTI Server or the
/// router's state answers, and the Supervisor requests (granted only where
/// a supervisor's own upstream session serves them, docs/requests.md §7).
pub fn proxied_service(message_type: u32) -> Option<Services> {
    match message_type {
        36..=64 if message_type % 2 == 0 => Some(Services::CLIENT_CONTROL),
        78 | 82 | 84 | 91 | 118 | 121 | 139 | 249 => Some(Services::CLIENT_CONTROL),
        msg::SET_CALL_DATA_REQ | msg::RELEASE_CALL_REQ | 141 => Some(Services::CALL_DATA_UPDATE),
        msg::USER_MESSAGE_REQ
        | msg::QUERY_AGENT_STATISTICS_REQ
        | msg::QUERY_SKILL_GROUP_STATISTICS_REQ
        | msg::SET_APP_DATA_REQ
        | msg::AGENT_DESK_SETTINGS_REQ
        | msg::START_RECORDING_REQ
        | msg::STOP_RECORDING_REQ => Some(Services::NONE),
        msg::REGISTER_SERVICE_REQ | msg::UNREGISTER_SERVICE_REQ => Some(Services::SERVER),
        msg::SUPERVISE_CALL_REQ
        | msg::LIST_AGENT_TEAM_REQ
        | msg::MONITOR_AGENT_TEAM_START_REQ
        | msg::MONITOR_AGENT_TEAM_STOP_REQ => Some(Services::SUPERVISOR),
        _ => None,
    }
}

/// The answers a server application sends the router (docs/requests.md §8).
pub fn is_server_reply(message_type: u32) -> bool {
    matches!(
        message_type,
        msg::START_RECORDING_CONF
            | msg::STOP_RECORDING_CONF
            | msg::FAILURE_CONF
            | msg::CONTROL_FAILURE_CONF
    )
}

/// Whether `granted` services allow a proxied request of this type: its
/// service, or for QUERY/SET_AGENT_STATE agent-state control only. (The
/// same rule for a session's grant and for the router's grant upstream.)
pub fn may_request(granted: Services, message_type: u32) -> bool {
    let agent_state = matches!(
        message_type,
        msg::QUERY_AGENT_STATE_REQ | msg::SET_AGENT_STATE_REQ
    );
    proxied_service(message_type).is_some_and(|needs| {
        granted.contains(needs)
            || (agent_state && granted.contains(Services::AGENT_STATE_CONTROL_ONLY))
    })
}

/// The services an OPEN_REQ is granted (docs/design.md §4.3): what it asks
/// for, of what is available and what its client entry allows. Available
/// are the event services the router serves itself and the request services
/// the CTI Server granted the router (asked for CLIENT_CONTROL where the
/// upstream granted only AGENT_STATE_CONTROL_ONLY, a session gets that).
/// With a real upstream the request services, which change state at the
/// PG, go only to clients listed in `[[clients]]` with them.
pub fn grant(requested: Services, ctx: &Context<'_>, entry: Option<&ClientEntry>) -> Services {
    let upstream = ctx.status.upstream_services & Services::PROXIED;
    let mut asked = requested.bits();
    if asked & service::CLIENT_CONTROL != 0
        && !upstream.contains(Services::CLIENT_CONTROL)
        && upstream.contains(Services::AGENT_STATE_CONTROL_ONLY)
    {
        asked = (asked & !service::CLIENT_CONTROL) | service::AGENT_STATE_CONTROL_ONLY;
    }
    let allowed = entry.map_or(Services(u32::MAX), |c| c.allowed_services());
    let real_upstream = ctx.config.upstream.is_some() && ctx.config.replay.is_none();
    // Supervisor comes with the supervisor's own session on the CTI Server
    // (docs/requests.md §7): only behind one, and only for a Client Events
    // session (the supervisor's desktop), which then is nothing else.
    // Like the other services that act on others, only for a client
    // listed with it.
    let listed_supervisor = entry.is_some_and(|c| {
        c.services.is_some() && c.allowed_services().contains(Services::SUPERVISOR)
    });
    let supervisor = real_upstream
        && listed_supervisor
        && asked & service::SUPERVISOR != 0
        && asked & service::CLIENT_EVENTS != 0;
    let granted = if supervisor {
        let available = ctx.served_services | upstream | Services::SUPERVISOR;
        Services(asked) & available & allowed & Services::SUPERVISOR_SESSION
    } else {
        Services(asked) & (ctx.served_services | upstream) & allowed
    };
    if !real_upstream {
        return no_control_for_scope_none(granted, entry);
    }
    let listed = entry
        .filter(|c| c.services.is_some())
        .map_or(Services::NONE, |c| c.allowed_services());
    let granted = Services(granted.bits() & !Services::STATE_CHANGING.bits())
        | (granted & Services::STATE_CHANGING & listed);
    no_control_for_scope_none(granted, entry)
}

/// `control_scope = "none"`: an All Events or Peripheral Monitor session
/// of that client gets no request service.
fn no_control_for_scope_none(granted: Services, entry: Option<&ClientEntry>) -> Services {
    let watches_others = granted.bits() & (service::ALL_EVENTS | service::PERIPHERAL_MONITOR) != 0;
    if watches_others && entry.is_some_and(|c| c.control_scope == ControlScope::None) {
        Services(granted.bits() & !Services::PROXIED.bits())
    } else {
        granted
    }
}

/// The OPEN_REQ checks of docs/design.md §4.3 (after the version check).
fn check_open_req(req: &OpenReq, config: &Config) -> Result<(), RequestError> {
    let Some(client_id) = req.client_id.as_ref().filter(|id| !id.is_empty()) else {
        return Err(RequestError::RequiredDataMissing);
    };
    if !config.clients.is_empty() {
        let password = req
            .client_password
            .as_ref()
            .map(|p| crate::proto::values::strip_nul(&p.0));
        let ok = config
            .client(client_id.as_bytes())
            .is_some_and(|c| c.password.as_bytes() == password.unwrap_or_default());
        if !ok {
            return Err(RequestError::InvalidPassword);
        }
    }
    if req.idle_timeout < MIN_IDLE_TIMEOUT_SECS && req.idle_timeout != IDLE_TIMEOUT_DISABLED {
        return Err(RequestError::InvalidTimeout);
    }
    let names_agent = [&req.agent_extension, &req.agent_id, &req.agent_instrument]
        .iter()
        .any(|f| f.as_ref().is_some_and(|s| !s.is_empty()));
    if req.services_requested & service::CLIENT_EVENTS != 0 && !names_agent {
        return Err(RequestError::RequiredDataMissing);
    }
    Ok(())
}

/// Decode and check a monitor request.
fn decode_request(frame: Frame<'_>, v: Version) -> Result<Request, RequestError> {
    let opts = DecodeOptions::STRICT;
    Ok(match frame.message_type {
        msg::MONITOR_START_REQ => {
            let r = MonitorStartReq::decode_body(frame.body, v, opts)?;
            let call = r.connection_device_id.as_ref().filter(|d| !d.is_empty());
            let device = r.monitored_device_id.as_ref().filter(|d| !d.is_empty());
            let target = match (call, device) {
                (Some(_), Some(_)) => return Err(RequestError::BothCallAndDevice),
                (None, None) => return Err(RequestError::RequiredDataMissing),
                (Some(call), None) => MonitorTarget::Call(CallKey::new(
                    r.connection_call_id,
                    r.connection_device_id_type,
                    call.as_bytes(),
                )),
                (None, Some(device)) => {
                    let kind = match r.monitored_device_type {
                        device_type::TRUNK => DeviceKind::Trunk,
                        device_type::TRUNK_GROUP => DeviceKind::TrunkGroup,
                        _ => DeviceKind::Device,
                    };
                    MonitorTarget::Device(DeviceKey::new(kind, device.as_bytes()))
                }
            };
            Request::MonitorStart {
                invoke_id: InvokeId(r.invoke_id),
                target,
                call_mask: r.call_msg_mask,
                agent_mask: r.agent_state_mask,
            }
        }
        msg::MONITOR_STOP_REQ => {
            let r = MonitorStopReq::decode_body(frame.body, v, opts)?;
            Request::MonitorStop {
                invoke_id: InvokeId(r.invoke_id),
                monitor_id: MonitorId(r.monitor_id),
            }
        }
        msg::CHANGE_MONITOR_MASK_REQ => {
            let r = ChangeMonitorMaskReq::decode_body(frame.body, v, opts)?;
            Request::ChangeMonitorMask {
                invoke_id: InvokeId(r.invoke_id),
                monitor_id: MonitorId(r.monitor_id),
                call_mask: r.call_msg_mask,
                agent_mask: r.agent_state_mask,
            }
        }
        msg::SESSION_MONITOR_START_REQ => {
            let r = SessionMonitorStartReq::decode_body(frame.body, v, opts)?;
            Request::SessionMonitorStart {
                invoke_id: InvokeId(r.invoke_id),
                session_id: SessionId(r.session_id),
            }
        }
        _ => {
            let r = SessionMonitorStopReq::decode_body(frame.body, v, opts)?;
            Request::SessionMonitorStop {
                invoke_id: InvokeId(r.invoke_id),
                monitor_id: MonitorId(r.monitor_id),
            }
        }
    })
}

#[cfg(test)]
mod tests;
