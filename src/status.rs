//! The PG status the router tells downstream sessions: PGStatus bits, the
//! peripherals and whether each is online. Built by ingest from the upstream
//! (or simulator), handed to shards as an immutable snapshot.

use crate::ids::Services;
use crate::proto::constants::{peripheral_type, pg_status, system_event};
use crate::proto::msg::SystemEvent;
use crate::proto::Message;

/// One snapshot of the PG's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgStatus {
    /// PGStatus bits (docs/protocol.md §5.7); 0 = all well.
    pub pg_status: u32,
    /// (PeripheralID, online) for every peripheral of the PG.
    pub peripherals: Vec<(u32, bool)>,
    /// PeripheralType reported in OPEN_CONF.
    pub peripheral_type: u16,
    /// What the CTI Server granted the router (OPEN_CONF ServicesGranted):
    /// the request services among them can be granted downstream. None
    /// for the simulator and a replay, which answer no requests.
    pub upstream_services: Services,
}

impl PgStatus {
    /// Status before the upstream has answered: CTI Server offline.
    pub fn offline() -> PgStatus {
        PgStatus {
            pg_status: pg_status::CTI_SERVER_OFFLINE,
            peripherals: Vec::new(),
            peripheral_type: peripheral_type::NONE,
            upstream_services: Services::NONE,
        }
    }

    /// The status of a source that has just started and knows its
    /// peripherals (the simulator): all well.
    pub fn online(peripherals: Vec<(u32, bool)>) -> PgStatus {
        PgStatus {
            pg_status: 0,
            peripherals,
            peripheral_type: peripheral_type::ENTERPRISE_AGENT,
            upstream_services: Services::NONE,
        }
    }

    /// Whether every peripheral is online (OPEN_CONF PeripheralOnline for
    /// sessions that are not tied to one agent's peripheral).
    pub fn all_online(&self) -> bool {
        !self.peripherals.is_empty() && self.peripherals.iter().all(|&(_, online)| online)
    }

    /// The SYSTEM_EVENTs an All Events session gets right after OPEN_CONF:
    /// one per peripheral, ONLINE or OFFLINE with Arg1 = PeripheralID.
    pub fn peripheral_events(&self, now: u32) -> impl Iterator<Item = Message> + '_ {
        self.peripherals.iter().map(move |&(id, online)| {
            Message::from(SystemEvent {
                pg_status: self.pg_status,
                icm_central_controller_time: now,
                system_event_id: if online {
                    system_event::PERIPHERAL_ONLINE
                } else {
                    system_event::PERIPHERAL_OFFLINE
                },
                system_event_arg1: id,
                event_device_type: crate::proto::constants::device_type::NONE,
                ..Default::default()
            })
        })
    }
}

/// Seconds since 1970 for ICMCentralControllerTime (TIME, docs/protocol.md §2.7).
pub fn unix_time() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// What OPEN_CONF tells a Client Events session about its agent (design
/// contract: the agent's current state and fields), from the latest
/// AGENT_STATE_EVENT ingest saw for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentView {
    pub agent_state: u16,
    pub department_id: i32,
    pub agent_id: Option<crate::proto::CtiString>,
    pub agent_extension: Option<crate::proto::CtiString>,
    pub agent_instrument: Option<crate::proto::CtiString>,
}
