//! The codec's one error type, and the one place that maps a decode error to
//! the protocol status code a peer is told (docs/design.md §4.7). No I/O here.

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
}

impl DecodeError {
    /// Protocol status code for a peer whose frame failed to decode:
    /// every malformed frame is E_CTI_BAD_MESSAGE_FORMAT (docs/design.md §4.7).
    /// `Incomplete` is not a failure and maps to E_CTI_NO_ERROR.
    pub fn status_code(&self) -> u32 {
        match self {
            DecodeError::Incomplete => status::E_CTI_NO_ERROR,
            DecodeError::Invalid(_) => status::E_CTI_BAD_MESSAGE_FORMAT,
        }
    }

    /// Whether the error breaks the framing itself, so the stream cannot be
    /// resynchronised and the session must close (docs/design.md §4.7: a frame length
    /// over 12,500 → FAILURE_EVENT and close). Body errors leave framing intact.
    pub fn breaks_framing(&self) -> bool {
        matches!(self, DecodeError::Invalid(Invalid::FrameTooLong { .. }))
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
