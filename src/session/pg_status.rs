//! The PG status as the upstream tells it: PeripheralType, PGStatus and the
//! peripheral list from OPEN_CONF, then PGStatus and peripheral online/offline
//! from every SYSTEM_EVENT after it (SYS_PERIPHERAL_ONLINE/OFFLINE, Arg1 =
//! PeripheralID; docs/protocol.md §4.1, §4.2, §5.8). Used by the upstream session
//! and by replay. No I/O here.

use crate::ids::Services;
use crate::proto::constants::{msg, peripheral_type, system_event};
use crate::proto::msg::{OpenConf, SystemEvent};
use crate::proto::{frame, DecodeError, DecodeOptions, MessageBody, Version};
use crate::status::PgStatus;

/// The status an OPEN_CONF announces. Its peripherals (v14+) take the
/// OPEN_CONF's PeripheralOnline until a SYSTEM_EVENT says otherwise.
pub fn from_open_conf(conf: &OpenConf) -> PgStatus {
    let online = conf.peripheral_online != 0;
    let mut peripherals: Vec<(u32, bool)> = Vec::new();
    for id in conf.peripherals.iter().filter_map(|p| p.peripheral_id) {
        if !peripherals.iter().any(|&(known, _)| known == id) {
            peripherals.push((id, online));
        }
    }
    PgStatus {
        pg_status: conf.pg_status,
        peripherals,
        peripheral_type: conf.peripheral_type,
        upstream_services: Services(conf.services_granted),
    }
}

/// The status of a source that has no OPEN_CONF (a recording without one):
/// online, an enterprise agent PG, peripherals as SYSTEM_EVENTs name them.
pub fn default_online() -> PgStatus {
    PgStatus {
        pg_status: 0,
        peripherals: Vec::new(),
        peripheral_type: peripheral_type::ENTERPRISE_AGENT,
        upstream_services: Services::NONE,
    }
}

/// Apply one upstream frame to `status` if it is a SYSTEM_EVENT; returns
/// whether the status changed. Other frames change nothing.
pub fn apply_frame(
    status: &mut PgStatus,
    whole: &[u8],
    version: Version,
) -> Result<bool, DecodeError> {
    let (parsed, _) = frame::parse(whole)?;
    if parsed.message_type != msg::SYSTEM_EVENT {
        return Ok(false);
    }
    let event = SystemEvent::decode_body(parsed.body, version, DecodeOptions::COUNTS_UNCHECKED)?;
    Ok(apply_system_event(status, &event))
}

/// Apply a SYSTEM_EVENT: its PGStatus, and a peripheral going on or offline.
pub fn apply_system_event(status: &mut PgStatus, event: &SystemEvent) -> bool {
    let before = status.clone();
    status.pg_status = event.pg_status;
    let online = match event.system_event_id {
        system_event::PERIPHERAL_ONLINE => Some(true),
        system_event::PERIPHERAL_OFFLINE => Some(false),
        _ => None,
    };
    if let Some(online) = online {
        let id = event.system_event_arg1;
        match status
            .peripherals
            .iter_mut()
            .find(|(known, _)| *known == id)
        {
            Some(entry) => entry.1 = online,
            None => status.peripherals.push((id, online)),
        }
    }
    *status != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::group::PeripheralEntry;
    use crate::proto::msg::AgentStateEvent;
    use crate::proto::Message;

    fn system_event(id: u32, arg1: u32, pg_status: u32) -> Vec<u8> {
        Message::from(SystemEvent {
            pg_status,
            system_event_id: id,
            system_event_arg1: arg1,
            ..Default::default()
        })
        .to_frame(Version::MAX)
        .unwrap()
    }

    #[test]
    fn open_conf_gives_type_status_and_peripherals() {
        let conf = OpenConf {
            pg_status: 0x04,
            peripheral_online: 1,
            peripheral_type: 17,
            peripherals: vec![
                PeripheralEntry {
                    peripheral_id: Some(5000),
                    multiline_agent_control: Some(0),
                },
                PeripheralEntry {
                    peripheral_id: Some(5001),
                    multiline_agent_control: Some(0),
                },
            ],
            ..Default::default()
        };
        let s = from_open_conf(&conf);
        assert_eq!(s.peripheral_type, 17);
        assert_eq!(s.pg_status, 0x04);
        assert_eq!(s.peripherals, vec![(5000, true), (5001, true)]);
    }

    #[test]
    fn peripheral_events_flip_and_add_peripherals() {
        let mut s = default_online();
        let v = Version::MAX;
        assert!(apply_frame(&mut s, &system_event(3, 5000, 0), v).unwrap());
        assert!(!apply_frame(&mut s, &system_event(3, 5000, 0), v).unwrap());
        assert!(apply_frame(&mut s, &system_event(4, 5000, 0x04), v).unwrap());
        assert_eq!(s.peripherals, vec![(5000, false)]);
        assert_eq!(s.pg_status, 0x04);
        // Half-hour change: only its PGStatus counts.
        assert!(apply_frame(&mut s, &system_event(9, 77, 0), v).unwrap());
        assert_eq!(s.peripherals, vec![(5000, false)]);
    }

    #[test]
    fn other_frames_change_nothing() {
        let mut s = default_online();
        let f = Message::from(AgentStateEvent::default())
            .to_frame(Version::MAX)
            .unwrap();
        assert!(!apply_frame(&mut s, &f, Version::MAX).unwrap());
        assert_eq!(s, default_online());
    }
}
