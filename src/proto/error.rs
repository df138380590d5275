//! The codec's one error type ([`DecodeError`]), and the one type for why the
//! router refuses a request ([`RequestError`]): the one place that maps each
//! to the protocol status code a peer is told (docs/design.md §4.7). No I/O
//! here.

use std::fmt;

use super::constants::status;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// More bytes are needed; not an error in the data. Read more and retry.
    Incomplete,
    /// The bytes are wrong and more bytes will not fix them.
    Invalid(Invalid),
}

/// The ways a frame can be malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// MessageLength announces a frame over the 12,500-byte limit (docs/protocol.md §2.3).
    FrameTooLong { frame_len: usize },
    /// The body is shorter than the message type's fixed part at this version.
    ShortFixedPart {
        message_type: u32,
        needed: usize,
        available: usize,
    },
    /// Fewer bytes remain than a floating tag + length header needs.
    TruncatedFloatingHeader { available: usize },
    /// A floating field's length runs past the end of the message.
    FloatingOverrun {
        tag: u16,
        len: usize,
        available: usize,
    },
    /// A floating field of fixed width (integer) has the wrong length,
    /// or a structured field (named variable/array) is malformed.
    FieldLength { tag: u16, len: usize },
    /// A list count in the fixed part does not match the list that follows.
    ListCount {
        field: &'static str,
        count: usize,
        actual: usize,
    },
    /// A typed message type that the protocol version does not have (it was
    /// added later, e.g. AGENT_GREETING_CONTROL_REQ before v15).
    NotInVersion { message_type: u32, version: u32 },
}

impl DecodeError {
    /// Protocol status code for a peer whose frame failed to decode:
    /// every malformed frame is E_CTI_BAD_MESSAGE_FORMAT (docs/design.md §4.7).
    /// `Incomplete` is not a failure and maps to E_CTI_NO_ERROR.
    pub fn status_code(&self) -> u32 {
        match self {
            DecodeError::Incomplete => status::E_CTI_NO_ERROR,
            DecodeError::Invalid(_) => RequestError::BadFormat.status(),
        }
    }

    /// Whether the error breaks the framing itself, so the stream cannot be
    /// resynchronised and the session must close (docs/design.md §4.7: a frame length
    /// over 12,500 → FAILURE_EVENT and close). Body errors leave framing intact.
    pub fn breaks_framing(&self) -> bool {
        matches!(self, DecodeError::Invalid(Invalid::FrameTooLong { .. }))
    }
}

/// Why the router refuses a client's request (FAILURE_CONF) or its OPEN_REQ.
/// Carried as is between cores (ingest's answers to a shard); turned into a
/// status code only by [`RequestError::status`], when the reply is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// The request's body does not decode at the session's version.
    BadFormat,
    /// A message type this protocol does not have.
    UnknownMessageType,
    /// A request of a service the session was not granted, or one the
    /// router does not serve; an OPEN_REQ granted nothing.
    NotAvailable,
    /// A request before OPEN_REQ.
    SessionNotOpen,
    /// A second OPEN_REQ.
    SessionAlreadyOpen,
    /// A field the request needs is missing or empty.
    RequiredDataMissing,
    /// MONITOR_START_REQ names both a call and a device.
    BothCallAndDevice,
    /// No monitor (or session to monitor) with that id for this session.
    InvalidMonitorId,
    /// A call the router does not know.
    InvalidCallId,
    /// SESSION_MONITOR_START_REQ for a session already monitored by it.
    SessionMonitorExists,
    /// SESSION_MONITOR_START_REQ for the requesting session itself.
    SessionMonitorIsClients,
    /// OPEN_REQ: a protocol version the router does not serve.
    InvalidVersion,
    /// OPEN_REQ: unknown client or wrong password.
    InvalidPassword,
    /// OPEN_REQ: IdleTimeout below the minimum.
    InvalidTimeout,
    /// OPEN_REQ: the router is at `max_sessions`.
    AtSessionLimit,
    /// A request type the session's protocol version does not have.
    NotInVersion,
    /// A proxied request while the CTI Server is offline, or lost while
    /// it was pending.
    ServerOffline,
    /// A proxied request the CTI Server did not answer in time.
    Timeout,
    /// A Client Events session's request names another agent or device.
    InvalidAgentData,
    /// A Client Events session's request names a call its device is not in.
    NotCallParty,
    /// OPEN_REQ: Client Control on an instrument a session of another
    /// ClientID already controls.
    DeviceInUse,
    /// REGISTER_SERVICE_REQ that cannot coexist with the service's
    /// registrations: an exclusive service already has its server, or the
    /// ServerMode differs from theirs (docs/requests.md §8).
    ServiceConflict,
    /// UNREGISTER_SERVICE_REQ for a RegisteredServiceID the session does
    /// not hold; REGISTER_SERVICE_REQ with a ServerMode outside 0..=2.
    InvalidService,
    /// The CTI Server refused a session opened on the client's behalf (a
    /// supervisor's, docs/requests.md §7) with this status: the client is
    /// told the same.
    Upstream(u32),
}

impl RequestError {
    /// The status code the client is told (docs/design.md §4.3, §4.7, §4.9).
    pub fn status(self) -> u32 {
        match self {
            RequestError::BadFormat => status::E_CTI_BAD_MESSAGE_FORMAT,
            RequestError::UnknownMessageType => status::E_CTI_INVALID_MESSAGE_TYPE,
            RequestError::NotAvailable => status::E_CTI_FUNCTION_NOT_AVAILABLE,
            RequestError::SessionNotOpen => status::E_CTI_SESSION_NOT_OPEN,
            RequestError::SessionAlreadyOpen => status::E_CTI_SESSION_ALREADY_OPEN,
            RequestError::RequiredDataMissing => status::E_CTI_REQUIRED_DATA_MISSING,
            RequestError::BothCallAndDevice => status::E_CTI_MUTUALLY_EXCLUS_DEVICEID_TYPES,
            RequestError::InvalidMonitorId => status::E_CTI_INVALID_MONITORID,
            RequestError::InvalidCallId => status::E_CTI_INVALID_CALLID,
            RequestError::SessionMonitorExists => status::E_CTI_SESSION_MONITOR_ALREADY_EXISTS,
            RequestError::SessionMonitorIsClients => status::E_CTI_SESSION_MONITOR_IS_CLIENTS,
            RequestError::InvalidVersion => status::E_CTI_INVALID_VERSION,
            RequestError::InvalidPassword => status::E_CTI_INVALID_PASSWORD,
            RequestError::InvalidTimeout => status::E_CTI_INVALID_TIMEOUT,
            RequestError::AtSessionLimit => status::E_CTI_UNSPECIFIED_FAILURE,
            RequestError::NotInVersion => status::E_CTI_INVALID_MSG_TYPE_FOR_VERSION,
            RequestError::ServerOffline => status::E_CTI_CTI_SERVER_OFFLINE,
            RequestError::Timeout => status::E_CTI_TIMEOUT,
            RequestError::InvalidAgentData => status::E_CTI_INVALID_AGENT_DATA,
            RequestError::NotCallParty => status::E_CTI_NOT_CALL_PARTY,
            RequestError::DeviceInUse => status::E_CTI_DEVICE_IN_USE,
            RequestError::ServiceConflict => status::E_CTI_SERVICE_CONFLICT,
            RequestError::InvalidService => status::E_CTI_INVALID_SERVICE,
            RequestError::Upstream(status) => status,
        }
    }
}

/// A request whose body does not decode is refused as badly formatted.
impl From<Invalid> for RequestError {
    fn from(_: Invalid) -> Self {
        RequestError::BadFormat
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} (status {})", self.status())
    }
}

impl From<Invalid> for DecodeError {
    fn from(invalid: Invalid) -> Self {
        DecodeError::Invalid(invalid)
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Incomplete => write!(f, "incomplete frame"),
            DecodeError::Invalid(i) => write!(f, "{i}"),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::FrameTooLong { frame_len } => {
                write!(f, "frame of {frame_len} bytes exceeds the 12500-byte limit")
            }
            Invalid::ShortFixedPart {
                message_type,
                needed,
                available,
            } => write!(
                f,
                "message type {message_type}: fixed part needs {needed} bytes, body has {available}"
            ),
            Invalid::TruncatedFloatingHeader { available } => {
                write!(
                    f,
                    "floating field header truncated ({available} bytes left)"
                )
            }
            Invalid::FloatingOverrun {
                tag,
                len,
                available,
            } => write!(
                f,
                "floating field tag {tag} of {len} bytes runs past the end ({available} left)"
            ),
            Invalid::FieldLength { tag, len } => {
                write!(f, "floating field tag {tag} has invalid length {len}")
            }
            Invalid::ListCount {
                field,
                count,
                actual,
            } => {
                write!(f, "{field} says {count} but the message carries {actual}")
            }
            Invalid::NotInVersion {
                message_type,
                version,
            } => write!(
                f,
                "message type {message_type} does not exist at version {version}"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a message could not be encoded at a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The message type does not exist at the target version (docs/design.md §4.1:
    /// such messages are not sent).
    NotInVersion { message_type: u32, version: u32 },
    /// The encoded frame would exceed the 12,500-byte limit.
    TooLong { frame_len: usize },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::NotInVersion {
                message_type,
                version,
            } => {
                write!(
                    f,
                    "message type {message_type} does not exist at version {version}"
                )
            }
            EncodeError::TooLong { frame_len } => {
                write!(f, "encoded frame of {frame_len} bytes exceeds the limit")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_frame_is_bad_message_format() {
        let e = DecodeError::from(Invalid::FloatingOverrun {
            tag: 25,
            len: 9,
            available: 2,
        });
        assert_eq!(e.status_code(), 25);
        assert!(!e.breaks_framing());
        let e = DecodeError::from(Invalid::FrameTooLong { frame_len: 20_000 });
        assert_eq!(e.status_code(), 25);
        assert!(e.breaks_framing());
    }
}
