//! The Supervisor service (docs/protocol.md §12.5): SUPERVISE_CALL,
//! LIST_AGENT_TEAM (segmented) and MONITOR_AGENT_TEAM_START/STOP requests and
//! confirmations, and the events SUPERVISOR_ASSIST_EVENT and
//! EMERGENCY_CALL_EVENT, which a CTI Server sends after SUPERVISOR_ASSIST_REQ /
//! EMERGENCY_CALL_REQ (no event starts with a MonitorID). Declarations only;
//! SUPERVISOR_ASSIST/EMERGENCY_CALL requests and confirmations are Client
//! Control messages (`control.rs`), AGENT_TEAM_CONFIG_EVENT is in `agent.rs`.

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

message! {
    /// SUPERVISE_CALL_REQ: a supervisor monitors, barges in on, intercepts or
    /// clears an agent's call (SupervisoryAction, `constants::supervisory_action`).
    /// A call id of 0xFFFFFFFF means the agent's active call / no supervisor call.
    pub struct SuperviseCallReq = msg::SUPERVISE_CALL_REQ, since 13 {
        invoke_id: u32,
        peripheral_id: u32,
        agent_connection_call_id: u32,
        supervisor_connection_call_id: u32,
        agent_connection_device_id_type: u16,
        supervisor_connection_device_id_type: u16,
        supervisory_action: u16,
    }
    floating {
        agent_connection_device_id: Opt<CtiString> = AGENT_CONNECTION_DEVID,
        supervisor_connection_device_id: Opt<CtiString> = SUPERVISOR_CONNECTION_DEVID,
        agent_extension: Opt<CtiString> = AGENT_EXTENSION,
        agent_id: Opt<CtiString> = AGENT_ID,
        agent_instrument: Opt<CtiString> = AGENT_INSTRUMENT,
        supervisor_instrument: Opt<CtiString> = SUPERVISOR_INSTRUMENT,
        /// AgentIDLong (PV25-CSC; width not stated): kept as raw bytes.
        agent_id_long: Opt<Unspec> = AGENT_ID_LONG,
    }
}

message! {
    /// SUPERVISE_CALL_CONF: the supervised agent connection.
    pub struct SuperviseCallConf = msg::SUPERVISE_CALL_CONF, since 13 {
        invoke_id: u32,
        connection_call_id: u32,
        connection_device_id_type: u16,
    }
    floating {
        connection_device_id: Opt<CtiString> = CONNECTION_DEVID,
    }
}

message! {
    /// LIST_AGENT_TEAM_REQ: the teams of a supervisor (its skill target id).
    pub struct ListAgentTeamReq = msg::LIST_AGENT_TEAM_REQ, since 13 {
        invoke_id: u32,
        supervisor_id: u32,
    }
    floating {}
}

message! {
    /// LIST_AGENT_TEAM_CONF: one segment of at most 64 team ids; `more` = 1
    /// when further segments follow with the same InvokeID.
    pub struct ListAgentTeamConf = msg::LIST_AGENT_TEAM_CONF, since 13 {
        invoke_id: u32,
        number_of_agent_teams: u16,
        segment_number: u16,
        more: u16,
    }
    floating {
        team_ids: List<u32> = LIST_TEAM_ID # number_of_agent_teams,
    }
}

message! {
    /// MONITOR_AGENT_TEAM_START_REQ: send this team's agent states to the session.
    pub struct MonitorAgentTeamStartReq = msg::MONITOR_AGENT_TEAM_START_REQ, since 13 {
        invoke_id: u32,
        team_id: u32,
    }
    floating {
        /// Added by CTI OS (docs/protocol.md §12.1); kept so a proxy passes it on.
        ctios_cil_client_id: Opt<CtiString> = CTIOS_CIL_CLIENT_ID,
    }
}

message! {
    /// MONITOR_AGENT_TEAM_START_CONF: the MonitorID of the team monitor.
    pub struct MonitorAgentTeamStartConf = msg::MONITOR_AGENT_TEAM_START_CONF, since 13 {
        invoke_id: u32,
        monitor_id: u32,
    }
    floating {}
}

message! {
    /// MONITOR_AGENT_TEAM_STOP_REQ: end a team monitor.
    pub struct MonitorAgentTeamStopReq = msg::MONITOR_AGENT_TEAM_STOP_REQ, since 13 {
        invoke_id: u32,
        monitor_id: u32,
    }
    floating {
        /// Added by CTI OS (docs/protocol.md §12.1); kept so a proxy passes it on.
        ctios_cil_client_id: Opt<CtiString> = CTIOS_CIL_CLIENT_ID,
    }
}

message! {
    /// MONITOR_AGENT_TEAM_STOP_CONF.
    pub struct MonitorAgentTeamStopConf = msg::MONITOR_AGENT_TEAM_STOP_CONF, since 13 {
        invoke_id: u32,
    }
    floating {}
}
