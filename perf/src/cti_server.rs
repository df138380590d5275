//! The CTI Server side of the router's upstream session, sans I/O: answers
//! OPEN_REQ with OPEN_CONF (InvokeID echoed, All Events granted, PGStatus 0,
//! one peripheral online; the layout of the version the router asked for),
//! HEARTBEAT_REQ with HEARTBEAT_CONF and CLOSE_REQ with CLOSE_CONF
//! (docs/protocol.md §4.1). Events are appended by the driver, not here.

use ctirouter::proto::constants::{msg, peripheral_type, service};
use ctirouter::proto::group::PeripheralEntry;
use ctirouter::proto::msg::{CloseConf, HeartbeatConf, OpenConf, OpenReq};
use ctirouter::proto::{frame, DecodeOptions, Message, Version};

use crate::events::PERIPHERAL_ID;

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

/// One upstream session as seen by the server.
#[derive(Debug)]
pub struct CtiServer {
    pub state: Upstream,
    /// The version the router opened with (every reply uses its layout).
    pub version: Version,
    pub nr_heartbeats: u64,
}

impl Default for CtiServer {
    fn default() -> Self {
        CtiServer {
            state: Upstream::Opening,
            version: Version::MAX,
            nr_heartbeats: 0,
        }
    }
}

impl CtiServer {
    /// Handle every whole frame at the front of `input`, appending replies to
    /// `out`; returns the bytes used. Frames the server has no answer for are skipped.
    pub fn on_input(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, String> {
        let mut used = 0;
        while let Ok((f, len)) = frame::parse(&input[used..]) {
            self.on_frame(f.message_type, f.body, out)?;
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
                open_conf(req.invoke_id).into()
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
            _ => return Ok(()),
        };
        reply
            .encode(self.version, out)
            .map_err(|e| format!("encode reply: {e}"))?;
        Ok(())
    }
}

fn invoke_id(body: &[u8]) -> u32 {
    body.get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

/// OPEN_CONF of a healthy PG with one peripheral online.
fn open_conf(invoke_id: u32) -> OpenConf {
    OpenConf {
        invoke_id,
        services_granted: service::ALL_EVENTS,
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
}
