//! The client side of a CTI Server session, sans I/O: the OPEN_REQ a router
//! (or `record`, or `watch`) sends, what each answer means, heartbeats and
//! the 3-missed rule, and CLOSE_REQ (docs/protocol.md §4.1, §6.1, §6.3, §6.4).
//! It reads whole frames and appends the frames it sends to an output
//! buffer; the caller owns the socket and the clock (glommio in ingest, mio
//! in the tools). No I/O here.

use std::time::{Duration, Instant};

use crate::config::UpstreamConfig;
use crate::ids::Services;
use crate::proto::constants::{
    agent_mask, call_mask, msg, status, MIN_IDLE_TIMEOUT_SECS, NULL_PERIPHERAL_ID,
};
use crate::proto::msg::{CloseReq, FailureConf, FailureEvent, HeartbeatReq, OpenConf, OpenReq};
use crate::proto::{
    frame, DecodeError, DecodeOptions, Invalid, Message, MessageBody, Unspec, Version,
};

/// ClientSignature the router opens upstream with.
pub const CLIENT_SIGNATURE: &str = "ctirouter";
/// Unanswered heartbeats that mean the server is gone (docs/protocol.md §6.3:
/// "3 unanswered heartbeats → client resets"; Finesse does the same).
pub const MISSED_HEARTBEATS_LOST: usize = 3;
/// Longest wait for OPEN_CONF (docs/protocol.md §6.1.8: normally ≤ 5 s, but wait
/// at least 30 s before declaring the OPEN_REQ failed).
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// What the client asks for in OPEN_REQ, and its heartbeat period.
#[derive(Debug, Clone)]
pub struct OpenParams {
    pub version: Version,
    pub client_id: String,
    pub password: String,
    pub signature: String,
    /// ServicesRequested bits (docs/protocol.md §5.1).
    pub services: Services,
    pub call_mask: u32,
    pub agent_mask: u32,
    /// NULL_PERIPHERAL_ID unless the session is tied to an agent's peripheral.
    pub peripheral_id: u32,
    /// AgentID of a Client Events session.
    pub agent_id: Option<String>,
    /// AgentExtension and AgentInstrument of a Client Events session.
    pub agent_extension: Option<String>,
    pub agent_instrument: Option<String>,
    /// Time between HEARTBEAT_REQs; IdleTimeout is 4× this (at least 20 s).
    pub heartbeat: Duration,
    pub open_timeout: Duration,
}

impl OpenParams {
    /// An All Events ("bridge") session with every event bit, as a router opens upstream.
    pub fn all_events(
        version: Version,
        client_id: &str,
        password: &str,
        heartbeat: Duration,
    ) -> Self {
        OpenParams {
            version,
            client_id: client_id.into(),
            password: password.into(),
            signature: CLIENT_SIGNATURE.into(),
            services: Services::ALL_EVENTS,
            call_mask: call_mask::ALL,
            agent_mask: agent_mask::ALL,
            peripheral_id: NULL_PERIPHERAL_ID,
            agent_id: None,
            agent_extension: None,
            agent_instrument: None,
            heartbeat,
            open_timeout: OPEN_TIMEOUT,
        }
    }

    /// The router's upstream session from its config (the version was validated there).
    pub fn upstream(config: &UpstreamConfig) -> Self {
        let version = Version::new(config.version).unwrap_or(Version::MAX);
        OpenParams {
            services: config.services(),
            ..Self::all_events(
                version,
                &config.client_id,
                &config.password,
                config.heartbeat(),
            )
        }
    }

    /// IdleTimeout in OPEN_REQ: 4 × the heartbeat period, rounded up to whole
    /// seconds, and at least 20 s (docs/protocol.md §6.3).
    pub fn idle_timeout_secs(&self) -> u32 {
        let secs = (self.heartbeat.as_secs_f64() * 4.0).ceil();
        (secs.min(u32::MAX as f64 - 1.0) as u32).max(MIN_IDLE_TIMEOUT_SECS)
    }

    pub fn open_req(&self, invoke_id: u32) -> OpenReq {
        OpenReq {
            invoke_id,
            version_number: self.version.number(),
            idle_timeout: self.idle_timeout_secs(),
            peripheral_id: self.peripheral_id,
            services_requested: self.services.bits(),
            call_msg_mask: self.call_mask,
            agent_state_mask: self.agent_mask,
            client_id: Some(self.client_id.as_str().into()),
            client_password: Some(Unspec(self.password.as_bytes().to_vec())),
            client_signature: Some(self.signature.as_str().into()),
            agent_id: self.agent_id.as_deref().map(Into::into),
            agent_extension: self.agent_extension.as_deref().map(Into::into),
            agent_instrument: self.agent_instrument.as_deref().map(Into::into),
            ..Default::default()
        }
    }
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing sent yet.
    Idle,
    /// OPEN_REQ sent at `since`.
    Opening {
        since: Instant,
    },
    Open,
    /// CLOSE_REQ sent.
    Closing,
}

/// What a frame from the server means to the caller.
#[derive(Debug, PartialEq)]
pub enum Inbound<'a> {
    /// OPEN_CONF: the session is open.
    Opened(Box<OpenConf>),
    /// An event (anything that is not a reply, docs/protocol.md §3).
    Event(&'a [u8]),
    /// A reply (`msg::is_reply`) to one of the caller's requests, with the
    /// request's InvokeID: never an event. FAILURE_CONF to a request
    /// (not OPEN_REQ, not a heartbeat) is one too.
    Reply { invoke_id: u32, frame: &'a [u8] },
    /// HEARTBEAT_CONF: the heartbeats are answered; `rtt` is the round trip
    /// of the one it confirms (`None` for an InvokeID never sent).
    Heartbeat { rtt: Option<Duration> },
    /// Taken care of here: a stray frame before OPEN_CONF or after CLOSE_REQ.
    Handled,
    /// CLOSE_CONF: the close is confirmed; the caller drops the socket.
    Closed,
}

/// Why a session cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// FAILURE_CONF to OPEN_REQ, with its Status (docs/protocol.md §5.10).
    Refused { status: u32 },
    /// No OPEN_CONF within the open timeout.
    OpenTimedOut,
    /// Three heartbeats went unanswered.
    HeartbeatsMissed,
    /// FAILURE_EVENT, or FAILURE_CONF to a heartbeat: the server ends the session.
    ServerEnded { status: u32 },
    /// A frame that breaks framing or does not decode.
    BadFrame(DecodeError),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Refused { status } => {
                write!(
                    f,
                    "OPEN_REQ refused: FAILURE_CONF status {status} ({})",
                    status_name(*status)
                )
            }
            ClientError::OpenTimedOut => write!(f, "no OPEN_CONF within the open timeout"),
            ClientError::HeartbeatsMissed => {
                write!(f, "{MISSED_HEARTBEATS_LOST} heartbeats went unanswered")
            }
            ClientError::ServerEnded { status } => {
                write!(
                    f,
                    "the server ended the session: status {status} ({})",
                    status_name(*status)
                )
            }
            ClientError::BadFrame(e) => write!(f, "malformed frame from the server: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// A short name for the status codes a client is likely to see.
pub fn status_name(code: u32) -> &'static str {
    match code {
        status::E_CTI_NO_ERROR => "E_CTI_NO_ERROR",
        status::E_CTI_INVALID_VERSION => "E_CTI_INVALID_VERSION",
        status::E_CTI_INVALID_MESSAGE_TYPE => "E_CTI_INVALID_MESSAGE_TYPE",
        status::E_CTI_SESSION_NOT_OPEN => "E_CTI_SESSION_NOT_OPEN",
        status::E_CTI_SESSION_ALREADY_OPEN => "E_CTI_SESSION_ALREADY_OPEN",
        status::E_CTI_REQUIRED_DATA_MISSING => "E_CTI_REQUIRED_DATA_MISSING",
        status::E_CTI_FUNCTION_NOT_AVAILABLE => "E_CTI_FUNCTION_NOT_AVAILABLE",
        status::E_CTI_INVALID_CALLID => "E_CTI_INVALID_CALLID",
        status::E_CTI_CTI_SERVER_OFFLINE => "E_CTI_CTI_SERVER_OFFLINE",
        status::E_CTI_TIMEOUT => "E_CTI_TIMEOUT",
        status::E_CTI_INVALID_TIMEOUT => "E_CTI_INVALID_TIMEOUT",
        status::E_CTI_BAD_MESSAGE_FORMAT => "E_CTI_BAD_MESSAGE_FORMAT",
        status::E_CTI_INVALID_PASSWORD => "E_CTI_INVALID_PASSWORD",
        status::E_CTI_MUTUALLY_EXCLUS_DEVICEID_TYPES => "E_CTI_MUTUALLY_EXCLUS_DEVICEID_TYPES",
        status::E_CTI_INVALID_MONITORID => "E_CTI_INVALID_MONITORID",
        _ => "see docs/protocol.md §5.10",
    }
}

/// One client session's protocol state.
#[derive(Debug)]
pub struct ClientCore {
    params: OpenParams,
    phase: Phase,
    /// Last InvokeID used (each request gets the next).
    last_invoke: u32,
    /// InvokeIDs of heartbeats not yet confirmed, oldest first, with when
    /// each was sent.
    unanswered: Vec<(u32, Instant)>,
    next_heartbeat: Instant,
}

impl ClientCore {
    pub fn new(params: OpenParams, now: Instant) -> ClientCore {
        ClientCore {
            params,
            phase: Phase::Idle,
            last_invoke: 0,
            unanswered: Vec::with_capacity(MISSED_HEARTBEATS_LOST + 1),
            next_heartbeat: now,
        }
    }

    pub fn version(&self) -> Version {
        self.params.version
    }

    pub fn params(&self) -> &OpenParams {
        &self.params
    }

    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// A fresh InvokeID for a request the caller sends.
    pub fn next_invoke_id(&mut self) -> u32 {
        self.last_invoke = self.last_invoke.wrapping_add(1);
        self.last_invoke
    }

    /// Append a request at the session's version (the caller's own requests).
    pub fn send(&self, message: &Message, out: &mut Vec<u8>) {
        if let Err(e) = message.encode(self.params.version, out) {
            tracing::warn!(error = %e, "request not sent");
        }
    }

    /// Begin the session: append OPEN_REQ.
    pub fn start(&mut self, now: Instant, out: &mut Vec<u8>) {
        let invoke = self.next_invoke_id();
        self.send(&self.params.open_req(invoke).into(), out);
        self.phase = Phase::Opening { since: now };
    }

    /// End the session: append CLOSE_REQ (status 0, client-initiated).
    pub fn close(&mut self, out: &mut Vec<u8>) {
        let invoke_id = self.next_invoke_id();
        self.send(
            &CloseReq {
                invoke_id,
                status: status::E_CTI_NO_ERROR,
            }
            .into(),
            out,
        );
        self.phase = Phase::Closing;
    }

    /// When [`ClientCore::on_timer`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Opening { since } => Some(since + self.params.open_timeout),
            Phase::Open => Some(self.next_heartbeat),
            Phase::Idle | Phase::Closing => None,
        }
    }

    /// Time-driven work: the open timeout, and a heartbeat when one is due
    /// (or the loss, when three are already unanswered).
    pub fn on_timer(&mut self, now: Instant, out: &mut Vec<u8>) -> Result<(), ClientError> {
        match self.phase {
            Phase::Opening { since } if now >= since + self.params.open_timeout => {
                Err(ClientError::OpenTimedOut)
            }
            Phase::Open if now >= self.next_heartbeat => {
                if self.unanswered.len() >= MISSED_HEARTBEATS_LOST {
                    return Err(ClientError::HeartbeatsMissed);
                }
                let invoke_id = self.next_invoke_id();
                self.send(&HeartbeatReq { invoke_id }.into(), out);
                self.unanswered.push((invoke_id, now));
                self.next_heartbeat = now + self.params.heartbeat;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// What one whole frame from the server means.
    pub fn on_frame<'a>(
        &mut self,
        whole: &'a [u8],
        now: Instant,
    ) -> Result<Inbound<'a>, ClientError> {
        let (parsed, _) = frame::parse(whole).map_err(ClientError::BadFrame)?;
        let body = parsed.body;
        let version = self.params.version;
        match (parsed.message_type, self.phase) {
            (msg::OPEN_CONF, Phase::Opening { .. }) => {
                let conf = decode::<OpenConf>(body, version)?;
                self.phase = Phase::Open;
                self.unanswered.clear();
                self.next_heartbeat = now + self.params.heartbeat;
                Ok(Inbound::Opened(Box::new(conf)))
            }
            (msg::FAILURE_CONF, Phase::Opening { .. }) => {
                let failure = decode::<FailureConf>(body, version)?;
                Err(ClientError::Refused {
                    status: failure.status,
                })
            }
            (msg::FAILURE_CONF, Phase::Open) => {
                let failure = decode::<FailureConf>(body, version)?;
                if self
                    .unanswered
                    .iter()
                    .any(|&(id, _)| id == failure.invoke_id)
                {
                    // docs/protocol.md §6.3: an offline server may answer
                    // HEARTBEAT_REQ with FAILURE_CONF; the client resets.
                    return Err(ClientError::ServerEnded {
                        status: failure.status,
                    });
                }
                Ok(Inbound::Reply {
                    invoke_id: failure.invoke_id,
                    frame: whole,
                })
            }
            (msg::FAILURE_EVENT, _) => {
                let failure = decode::<FailureEvent>(body, version)?;
                Err(ClientError::ServerEnded {
                    status: failure.status,
                })
            }
            (msg::HEARTBEAT_CONF, _) => {
                let confirmed = body
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_be_bytes);
                let sent = self
                    .unanswered
                    .iter()
                    .find(|&&(id, _)| Some(id) == confirmed)
                    .map(|&(_, at)| at);
                self.unanswered.clear();
                Ok(Inbound::Heartbeat {
                    rtt: sent.map(|at| now.saturating_duration_since(at)),
                })
            }
            (msg::CLOSE_CONF, Phase::Closing) => Ok(Inbound::Closed),
            (t, Phase::Open) => match reply_invoke_id(t, body).map_err(ClientError::BadFrame)? {
                Some(invoke_id) => Ok(Inbound::Reply {
                    invoke_id,
                    frame: whole,
                }),
                None => Ok(Inbound::Event(whole)),
            },
            _ => Ok(Inbound::Handled),
        }
    }
}

/// The InvokeID of a reply (`msg::is_reply`: it comes first in the body),
/// `None` for a message that is not one; a reply too short to carry it is
/// malformed.
pub fn reply_invoke_id(message_type: u32, body: &[u8]) -> Result<Option<u32>, DecodeError> {
    if !msg::is_reply(message_type) {
        return Ok(None);
    }
    match body.first_chunk::<4>() {
        Some(id) => Ok(Some(u32::from_be_bytes(*id))),
        None => Err(DecodeError::Invalid(Invalid::ShortFixedPart {
            message_type,
            needed: 4,
            available: body.len(),
        })),
    }
}

fn decode<T: MessageBody>(body: &[u8], version: Version) -> Result<T, ClientError> {
    T::decode_body(body, version, DecodeOptions::COUNTS_UNCHECKED)
        .map_err(|e| ClientError::BadFrame(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::msg::{AgentStateEvent, CloseConf, HeartbeatConf};

    const HB: Duration = Duration::from_millis(100);

    fn core(now: Instant) -> (ClientCore, Vec<u8>) {
        let params = OpenParams::all_events(Version::MAX, "ctirouter", "pw", HB);
        let mut core = ClientCore::new(params, now);
        let mut out = Vec::new();
        core.start(now, &mut out);
        (core, out)
    }

    fn frame(m: impl Into<Message>) -> Vec<u8> {
        m.into().to_frame(Version::MAX).unwrap()
    }

    fn sent(out: &[u8]) -> Vec<Message> {
        let mut rest = out;
        let mut all = Vec::new();
        while !rest.is_empty() {
            let (m, used) =
                crate::proto::decode_frame(rest, Version::MAX, DecodeOptions::STRICT).unwrap();
            all.push(m);
            rest = &rest[used..];
        }
        all
    }

    fn open(core: &mut ClientCore, now: Instant) {
        let conf = frame(OpenConf {
            invoke_id: 1,
            services_granted: Services::ALL_EVENTS.bits(),
            ..Default::default()
        });
        assert!(matches!(core.on_frame(&conf, now), Ok(Inbound::Opened(_))));
    }

    #[test]
    fn open_req_asks_for_all_events_with_four_heartbeats_of_idle_time() {
        let (_, out) = core(Instant::now());
        let Message::OpenReq(req) = &sent(&out)[0] else {
            panic!("not an OPEN_REQ")
        };
        assert_eq!(req.services_requested, 0x10);
        assert_eq!(
            (req.call_msg_mask, req.agent_state_mask),
            (0xFFFF_FFFF, 0x3FFF)
        );
        assert_eq!(req.idle_timeout, 20, "4 × 100 ms is below the 20 s floor");
        assert_eq!(
            req.client_signature.as_ref().unwrap().as_bytes(),
            b"ctirouter"
        );
        assert_eq!(req.version_number, 24);
        let p = OpenParams::all_events(Version::MAX, "x", "", Duration::from_secs(30));
        assert_eq!(p.idle_timeout_secs(), 120);
    }

    #[test]
    fn three_unanswered_heartbeats_lose_the_session() {
        let t0 = Instant::now();
        let (mut core, _) = core(t0);
        open(&mut core, t0);
        let mut out = Vec::new();
        for i in 1..=3 {
            core.on_timer(t0 + HB * i, &mut out).unwrap();
        }
        assert_eq!(sent(&out).len(), 3);
        assert_eq!(
            core.on_timer(t0 + HB * 4, &mut out),
            Err(ClientError::HeartbeatsMissed)
        );
    }

    #[test]
    fn a_confirmation_resets_the_count() {
        let t0 = Instant::now();
        let (mut core, _) = core(t0);
        open(&mut core, t0);
        let mut out = Vec::new();
        for i in 1..=10 {
            core.on_timer(t0 + HB * i, &mut out).unwrap();
            let conf = frame(HeartbeatConf { invoke_id: 0 });
            assert_eq!(
                core.on_frame(&conf, t0),
                Ok(Inbound::Heartbeat { rtt: None })
            );
        }
        assert_eq!(sent(&out).len(), 10);
    }

    #[test]
    fn a_confirmation_reports_its_heartbeats_round_trip() {
        let t0 = Instant::now();
        let (mut core, _) = core(t0);
        open(&mut core, t0);
        let mut out = Vec::new();
        core.on_timer(t0 + HB, &mut out).unwrap();
        let Some(Message::HeartbeatReq(req)) = sent(&out).pop() else {
            panic!("no HEARTBEAT_REQ sent");
        };
        let conf = frame(HeartbeatConf {
            invoke_id: req.invoke_id,
        });
        let rtt = Duration::from_millis(3);
        assert_eq!(
            core.on_frame(&conf, t0 + HB + rtt),
            Ok(Inbound::Heartbeat { rtt: Some(rtt) })
        );
    }

    #[test]
    fn heartbeats_wait_for_their_period() {
        let t0 = Instant::now();
        let (mut core, _) = core(t0);
        open(&mut core, t0);
        let mut out = Vec::new();
        core.on_timer(t0 + HB / 2, &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(core.next_deadline(), Some(t0 + HB));
    }

    #[test]
    fn failure_conf_to_open_is_a_refusal() {
        let t0 = Instant::now();
        let (mut core, _) = core(t0);
        let f = frame(FailureConf {
            invoke_id: 1,
            status: 36,
            text: None,
        });
        assert_eq!(
            core.on_frame(&f, t0),
            Err(ClientError::Refused { status: 36 })
        );
    }

    #[test]
    fn failure_conf_to_a_heartbeat_ends_but_to_a_request_is_reported() {
        let t0 = Instant::now();
        let (mut core, _) = core(t0);
        open(&mut core, t0);
        let mut out = Vec::new();
        core.on_timer(t0 + HB, &mut out).unwrap();
        let hb_invoke = core.last_invoke;
        let other = frame(FailureConf {
            invoke_id: 999,
            status: 12,
            text: None,
        });
        assert_eq!(
            core.on_frame(&other, t0),
            Ok(Inbound::Reply {
                invoke_id: 999,
                frame: &other[..]
            })
        );
        let to_hb = frame(FailureConf {
            invoke_id: hb_invoke,
            status: 15,
            text: None,
        });
        assert_eq!(
            core.on_frame(&to_hb, t0),
            Err(ClientError::ServerEnded { status: 15 })
        );
    }

    #[test]
    fn events_pass_only_once_open_and_close_conf_ends() {
        let t0 = Instant::now();
        let (mut core, _) = core(t0);
        let event = frame(AgentStateEvent::default());
        assert_eq!(core.on_frame(&event, t0), Ok(Inbound::Handled));
        open(&mut core, t0);
        assert_eq!(core.on_frame(&event, t0), Ok(Inbound::Event(&event[..])));
        let mut out = Vec::new();
        core.close(&mut out);
        assert!(matches!(sent(&out)[0], Message::CloseReq(_)));
        assert_eq!(core.on_frame(&event, t0), Ok(Inbound::Handled));
        let conf = frame(CloseConf { invoke_id: 2 });
        assert_eq!(core.on_frame(&conf, t0), Ok(Inbound::Closed));
    }

    #[test]
    fn replies_are_told_apart_from_events_with_their_invoke_id() {
        use crate::proto::msg::{ControlFailureConf, SetAgentStateConf};
        let t0 = Instant::now();
        let (mut core, _) = core(t0);
        open(&mut core, t0);
        let conf = frame(SetAgentStateConf {
            invoke_id: 0x8000_0007,
        });
        assert_eq!(
            core.on_frame(&conf, t0),
            Ok(Inbound::Reply {
                invoke_id: 0x8000_0007,
                frame: &conf[..]
            })
        );
        let failed = frame(ControlFailureConf {
            invoke_id: 9,
            failure_code: 8,
            ..Default::default()
        });
        assert!(matches!(
            core.on_frame(&failed, t0),
            Ok(Inbound::Reply { invoke_id: 9, .. })
        ));
        let event = frame(AgentStateEvent::default());
        assert_eq!(core.on_frame(&event, t0), Ok(Inbound::Event(&event[..])));
        // A reply too short to carry its InvokeID is malformed.
        let mut short = conf.clone();
        short.truncate(10);
        short[..4].copy_from_slice(&2u32.to_be_bytes());
        assert!(matches!(
            core.on_frame(&short, t0),
            Err(ClientError::BadFrame(_))
        ));
    }

    #[test]
    fn open_times_out() {
        let t0 = Instant::now();
        let (mut core, _) = core(t0);
        let mut out = Vec::new();
        assert_eq!(
            core.on_timer(t0 + OPEN_TIMEOUT, &mut out),
            Err(ClientError::OpenTimedOut)
        );
    }

    #[test]
    fn malformed_open_conf_is_a_bad_frame() {
        let t0 = Instant::now();
        let (mut core, _) = core(t0);
        let mut short = frame(OpenConf::default());
        short.truncate(12);
        short[..4].copy_from_slice(&4u32.to_be_bytes());
        assert!(matches!(
            core.on_frame(&short, t0),
            Err(ClientError::BadFrame(_))
        ));
    }
}
