//! The Supervisor service events (docs/protocol.md §12.5) that are not agent
//! team configuration: SUPERVISOR_ASSIST_EVENT and EMERGENCY_CALL_EVENT, which
//! a CTI Server sends after SUPERVISOR_ASSIST_REQ / EMERGENCY_CALL_REQ. Neither
//! starts with a MonitorID. Declarations only; the requests and confirmations
//! are Client Control messages (`control.rs`), AGENT_TEAM_CONFIG_EVENT is in
//! `agent.rs`.

use crate::proto::constants::msg;
use crate::proto::values::{CtiString, Unspec};

message! {
    /// SUPERVISOR_ASSIST_EVENT: an agent asks its supervisor for help.
    ///
    /// No UCCE guide lays it out; this is the CCX layout (docs/protocol.md
    /// §12.8 #8, §13): PeripheralID ("reserved"), ConnectionCallID,
    /// ConnectionDeviceIDType, SessionID ("reserved"), fixed part 14 bytes.
    pub struct SupervisorAssistEvent = msg::SUPERVISOR_ASSIST_EVENT, since 13 {
        peripheral_id: u32,
        connection_call_id: u32,
        connection_device_id_type: u16,
        session_id: u32,
    }
    floating {
        connection_device_id: Opt<CtiString> = CONNECTION_DEVID,
        client_id: Opt<CtiString> = CLIENT_ID,
        text: Opt<CtiString> = TEXT,
    }
}

message! {
    /// EMERGENCY_CALL_EVENT: an agent placed an emergency call; SessionID and
    /// ClientID name the client that sent EMERGENCY_CALL_REQ. ClientAddressIPV6
    /// exists at v14–18 only (docs/protocol.md §12.8 #10).
    pub struct EmergencyCallEvent = msg::EMERGENCY_CALL_EVENT, since 13 {
        peripheral_id: u32,
        connection_call_id: u32,
        connection_device_id_type: u16,
        session_id: u32,
    }
    floating {
        connection_device_id: Opt<CtiString> = CONNECTION_DEVID,
        client_id: Opt<CtiString> = CLIENT_ID,
        client_address: Opt<CtiString> = CLIENT_ADDRESS,
        agent_extension: Opt<CtiString> = AGENT_EXTENSION,
        agent_id: Opt<CtiString> = AGENT_ID,
        agent_instrument: Opt<CtiString> = AGENT_INSTRUMENT,
        client_address_ipv6: Opt<Unspec> = CLIENT_ADDRESS_IPV6 @ 14..=18,
    }
}
