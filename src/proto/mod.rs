//! Sans-IO GED-188 codec: framing, typed messages, floating fields, version
//! rules, transcoding, MonitorID patching and routing-key extraction.
//!
//! No sockets, no clocks, no async: everything here is a pure function of
//! bytes, so it can be tested byte-exact and fuzzed.
//!
//! # Layout
//! * `frame` — header, `check` then `parse`, the 12,500-byte limit
//! * `version` — every rule that differs between protocol versions 13..=24
//! * `wire`, `values`, `group` — fixed integers, floating records, field values
//! * `macros` + `msg/` — message declarations and the codec they generate
//! * `message` — the `Message` enum and dispatch by type
//! * `routing` — routing keys of an encoded event without building it
//! * `transcode` — version-to-version re-encoding, in-place MonitorID patch
//! * `error` — `DecodeError` and its mapping to protocol status codes

#[macro_use]
mod macros;

pub mod constants;
pub mod error;
pub mod frame;
pub mod group;
pub mod message;
pub mod msg;
pub mod routing;
pub mod tags;
pub mod transcode;
pub mod values;
pub mod version;
pub mod wire;

pub use error::{DecodeError, EncodeError, Invalid, RequestError};
pub use frame::Frame;
pub use macros::{Group, List, Opt};
pub use message::{DecodeOptions, Message, MessageBody, RawMessage};
pub use values::{CtiString, FieldValue, NamedArray, NamedVar, Unspec};
pub use version::Version;

/// One decoded field, as `visit` hands it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The Rust field name (`connection_call_id`).
    pub name: &'static str,
    /// The floating tag, `None` for fixed fields.
    pub tag: Option<u16>,
    pub value: FieldValue<'a>,
}

impl Field<'_> {
    /// The protocol tag name for floating fields (`CONNECTION_DEVID`), else the field name.
    pub fn wire_name(&self) -> &'static str {
        self.tag.and_then(tags::name).unwrap_or(self.name)
    }
}

/// Decode one whole frame at the front of `buf` into a typed message.
pub fn decode_frame(
    buf: &[u8],
    version: Version,
    options: DecodeOptions,
) -> Result<(Message, usize), DecodeError> {
    let (frame, used) = frame::parse(buf)?;
    let message = Message::decode(frame.message_type, frame.body, version, options)?;
    Ok((message, used))
}
