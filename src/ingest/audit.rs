//! The audit log (docs/requests.md §4): one line per request that acts on
//! the PG, with who sent it (ClientID, session), what it named (the
//! request's fields, never a password or call data), its result and
//! latency. Upstream every request looks like the router's, so this is the
//! only record of who did what.

use std::fmt::Write as _;

use tracing::Level;

use crate::ids::SessionId;
use crate::proto::constants::msg;
use crate::proto::frame;
use crate::proto::{CtiString, Message, Version};

/// The audit log's tracing target.
pub const AUDIT_TARGET: &str = "ctirouter::audit";

/// Who sent what: `client="…" session=N vV TYPE field=value …`; `None`
/// while the audit log is off (nothing is formatted then).
pub fn describe(
    client_id: Option<&CtiString>,
    session: SessionId,
    version: Version,
    message_type: u32,
    request: Option<&Message>,
) -> Option<Box<str>> {
    if !tracing::enabled!(target: AUDIT_TARGET, Level::INFO) {
        return None;
    }
    let client = client_id
        .map(|c| String::from_utf8_lossy(c.as_bytes()).into_owned())
        .unwrap_or_default();
    let mut line = format!("client={client:?} session={} v{version} ", session.0);
    match request {
        Some(m) => audited_fields(m, version, &mut line),
        None => {
            let _ = write!(line, "message type {message_type}");
        }
    }
    Some(line.into())
}

/// The fields an audit line names: who acted and on what. Never a
/// password, never call data (variables are the customer's).
const AUDITED: &[&str] = &[
    "AGENT_ID",
    "AGENT_EXTENSION",
    "AGENT_INSTRUMENT",
    "icm_agent_id",
    "agent_state",
    "event_reason_code",
    "connection_call_id",
    "active_connection_call_id",
    "held_connection_call_id",
    "other_connection_call_id",
    "CONNECTION_DEVID",
    "ACTIVE_CONN_DEVID",
    "HELD_CONN_DEVID",
    "DIALED_NUMBER",
];

/// `TYPE_NAME field=value …` of a request: its type and the fields in
/// [`AUDITED`] it carries (short: the line is written on the ingest core).
fn audited_fields(m: &Message, version: Version, line: &mut String) {
    line.push_str(Message::type_name(m.message_type()).unwrap_or("request"));
    m.visit(version, &mut |field| {
        let name = field.wire_name();
        if AUDITED.contains(&name) {
            let _ = write!(line, " {name}={}", field.value);
        }
    });
}

/// One audit line: the request, what became of it, and (when the CTI Server
/// answered) how long it took.
pub fn audit_line(request: &str, result: &str, latency: Option<std::time::Duration>) {
    match latency {
        Some(latency) => tracing::info!(
            target: AUDIT_TARGET,
            latency_us = latency.as_micros() as u64,
            "{request} -> {result}"
        ),
        None => tracing::info!(target: AUDIT_TARGET, "{request} -> {result}"),
    }
}

/// A reply as the audit log says it: its type, and a failure's status or code.
pub fn describe_reply(whole: &[u8]) -> String {
    let t = frame::message_type(whole).unwrap_or(0);
    let name = Message::type_name(t).unwrap_or("reply");
    let field = |at: usize, len: usize| whole.get(at..at + len);
    match t {
        msg::FAILURE_CONF => match field(12, 4) {
            Some(b) => format!(
                "{name} status {}",
                u32::from_be_bytes([b[0], b[1], b[2], b[3]])
            ),
            None => name.to_string(),
        },
        msg::CONTROL_FAILURE_CONF => match field(12, 2) {
            Some(b) => format!("{name} code {}", u16::from_be_bytes([b[0], b[1]])),
            None => name.to_string(),
        },
        _ => name.to_string(),
    }
}
