//! Protocol constants (docs/protocol.md §3 and §5): message type numbers, status
//! codes, service bits, event masks, and the enumerations the router reads.
//! Each module names the protocol section its numbers come from.

/// Message type numbers (docs/protocol.md §3.1, PV24-MC table).
pub mod msg {
    pub const FAILURE_CONF: u32 = 1;
    pub const FAILURE_EVENT: u32 = 2;
    pub const OPEN_REQ: u32 = 3;
    pub const OPEN_CONF: u32 = 4;
    pub const HEARTBEAT_REQ: u32 = 5;
    pub const HEARTBEAT_CONF: u32 = 6;
    pub const CLOSE_REQ: u32 = 7;
    pub const CLOSE_CONF: u32 = 8;
    pub const CALL_DELIVERED_EVENT: u32 = 9;
    pub const CALL_ESTABLISHED_EVENT: u32 = 10;
    pub const CALL_HELD_EVENT: u32 = 11;
    pub const CALL_RETRIEVED_EVENT: u32 = 12;
    pub const CALL_CLEARED_EVENT: u32 = 13;
    pub const CALL_CONNECTION_CLEARED_EVENT: u32 = 14;
    pub const CALL_ORIGINATED_EVENT: u32 = 15;
    pub const CALL_FAILED_EVENT: u32 = 16;
    pub const CALL_CONFERENCED_EVENT: u32 = 17;
    pub const CALL_TRANSFERRED_EVENT: u32 = 18;
    pub const CALL_DIVERTED_EVENT: u32 = 19;
    pub const CALL_SERVICE_INITIATED_EVENT: u32 = 20;
    pub const CALL_QUEUED_EVENT: u32 = 21;
    pub const CALL_TRANSLATION_ROUTE_EVENT: u32 = 22;
    pub const BEGIN_CALL_EVENT: u32 = 23;
    pub const END_CALL_EVENT: u32 = 24;
    pub const CALL_DATA_UPDATE_EVENT: u32 = 25;
    pub const SET_CALL_DATA_REQ: u32 = 26;
    pub const SET_CALL_DATA_CONF: u32 = 27;
    pub const RELEASE_CALL_REQ: u32 = 28;
    pub const RELEASE_CALL_CONF: u32 = 29;
    pub const AGENT_STATE_EVENT: u32 = 30;
    pub const SYSTEM_EVENT: u32 = 31;
    pub const CLIENT_EVENT_REPORT_REQ: u32 = 32;
    pub const CLIENT_EVENT_REPORT_CONF: u32 = 33;
    pub const CALL_REACHED_NETWORK_EVENT: u32 = 34;
    pub const CONTROL_FAILURE_CONF: u32 = 35;
    pub const QUERY_AGENT_STATE_REQ: u32 = 36;
    pub const QUERY_AGENT_STATE_CONF: u32 = 37;
    pub const SET_AGENT_STATE_REQ: u32 = 38;
    pub const SET_AGENT_STATE_CONF: u32 = 39;
    pub const ALTERNATE_CALL_REQ: u32 = 40;
    pub const ALTERNATE_CALL_CONF: u32 = 41;
    pub const ANSWER_CALL_REQ: u32 = 42;
    pub const ANSWER_CALL_CONF: u32 = 43;
    pub const CLEAR_CALL_REQ: u32 = 44;
    pub const CLEAR_CALL_CONF: u32 = 45;
    pub const CLEAR_CONNECTION_REQ: u32 = 46;
    pub const CLEAR_CONNECTION_CONF: u32 = 47;
    pub const CONFERENCE_CALL_REQ: u32 = 48;
    pub const CONFERENCE_CALL_CONF: u32 = 49;
    pub const CONSULTATION_CALL_REQ: u32 = 50;
    pub const CONSULTATION_CALL_CONF: u32 = 51;
    pub const DEFLECT_CALL_REQ: u32 = 52;
    pub const DEFLECT_CALL_CONF: u32 = 53;
    pub const HOLD_CALL_REQ: u32 = 54;
    pub const HOLD_CALL_CONF: u32 = 55;
    pub const MAKE_CALL_REQ: u32 = 56;
    pub const MAKE_CALL_CONF: u32 = 57;
    pub const MAKE_PREDICTIVE_CALL_REQ: u32 = 58;
    pub const MAKE_PREDICTIVE_CALL_CONF: u32 = 59;
    pub const RECONNECT_CALL_REQ: u32 = 60;
    pub const RECONNECT_CALL_CONF: u32 = 61;
    pub const RETRIEVE_CALL_REQ: u32 = 62;
    pub const RETRIEVE_CALL_CONF: u32 = 63;
    pub const TRANSFER_CALL_REQ: u32 = 64;
    pub const TRANSFER_CALL_CONF: u32 = 65;
    pub const QUERY_DEVICE_INFO_REQ: u32 = 78;
    pub const QUERY_DEVICE_INFO_CONF: u32 = 79;
    pub const SNAPSHOT_CALL_REQ: u32 = 82;
    pub const SNAPSHOT_CALL_CONF: u32 = 83;
    pub const SNAPSHOT_DEVICE_REQ: u32 = 84;
    pub const SNAPSHOT_DEVICE_CONF: u32 = 85;
    pub const CALL_DEQUEUED_EVENT: u32 = 86;
    pub const SEND_DTMF_SIGNAL_REQ: u32 = 91;
    pub const SEND_DTMF_SIGNAL_CONF: u32 = 92;
    pub const MONITOR_START_REQ: u32 = 93;
    pub const MONITOR_START_CONF: u32 = 94;
    pub const MONITOR_STOP_REQ: u32 = 95;
    pub const MONITOR_STOP_CONF: u32 = 96;
    pub const CHANGE_MONITOR_MASK_REQ: u32 = 97;
    pub const CHANGE_MONITOR_MASK_CONF: u32 = 98;
    pub const CLIENT_SESSION_OPENED_EVENT: u32 = 99;
    pub const CLIENT_SESSION_CLOSED_EVENT: u32 = 100;
    pub const SESSION_MONITOR_START_REQ: u32 = 101;
    pub const SESSION_MONITOR_START_CONF: u32 = 102;
    pub const SESSION_MONITOR_STOP_REQ: u32 = 103;
    pub const SESSION_MONITOR_STOP_CONF: u32 = 104;
    pub const AGENT_PRE_CALL_EVENT: u32 = 105;
    pub const AGENT_PRE_CALL_ABORT_EVENT: u32 = 106;
    pub const USER_MESSAGE_REQ: u32 = 107;
    pub const USER_MESSAGE_CONF: u32 = 108;
    pub const USER_MESSAGE_EVENT: u32 = 109;
    pub const REGISTER_VARIABLES_REQ: u32 = 110;
    pub const REGISTER_VARIABLES_CONF: u32 = 111;
    pub const QUERY_AGENT_STATISTICS_REQ: u32 = 112;
    pub const QUERY_AGENT_STATISTICS_CONF: u32 = 113;
    pub const QUERY_SKILL_GROUP_STATISTICS_REQ: u32 = 114;
    pub const QUERY_SKILL_GROUP_STATISTICS_CONF: u32 = 115;
    pub const RTP_STARTED_EVENT: u32 = 116;
    pub const RTP_STOPPED_EVENT: u32 = 117;
    pub const SUPERVISOR_ASSIST_REQ: u32 = 118;
    pub const SUPERVISOR_ASSIST_CONF: u32 = 119;
    pub const SUPERVISOR_ASSIST_EVENT: u32 = 120;
    pub const EMERGENCY_CALL_REQ: u32 = 121;
    pub const EMERGENCY_CALL_CONF: u32 = 122;
    pub const EMERGENCY_CALL_EVENT: u32 = 123;
    pub const SUPERVISE_CALL_REQ: u32 = 124;
    pub const SUPERVISE_CALL_CONF: u32 = 125;
    pub const AGENT_TEAM_CONFIG_EVENT: u32 = 128;
    pub const SET_APP_DATA_REQ: u32 = 129;
    pub const SET_APP_DATA_CONF: u32 = 130;
    pub const AGENT_DESK_SETTINGS_REQ: u32 = 131;
    pub const AGENT_DESK_SETTINGS_CONF: u32 = 132;
    pub const LIST_AGENT_TEAM_REQ: u32 = 133;
    pub const LIST_AGENT_TEAM_CONF: u32 = 134;
    pub const MONITOR_AGENT_TEAM_START_REQ: u32 = 135;
    pub const MONITOR_AGENT_TEAM_START_CONF: u32 = 136;
    pub const MONITOR_AGENT_TEAM_STOP_REQ: u32 = 137;
    pub const MONITOR_AGENT_TEAM_STOP_CONF: u32 = 138;
    pub const BAD_CALL_REQ: u32 = 139;
    pub const BAD_CALL_CONF: u32 = 140;
    pub const SET_DEVICE_ATTRIBUTES_REQ: u32 = 141;
    pub const SET_DEVICE_ATTRIBUTES_CONF: u32 = 142;
    pub const REGISTER_SERVICE_REQ: u32 = 143;
    pub const REGISTER_SERVICE_CONF: u32 = 144;
    pub const UNREGISTER_SERVICE_REQ: u32 = 145;
    pub const UNREGISTER_SERVICE_CONF: u32 = 146;
    pub const START_RECORDING_REQ: u32 = 147;
    pub const START_RECORDING_CONF: u32 = 148;
    pub const STOP_RECORDING_REQ: u32 = 149;
    pub const STOP_RECORDING_CONF: u32 = 150;
    pub const CALL_AGENT_GREETING_EVENT: u32 = 248;
    pub const AGENT_GREETING_CONTROL_REQ: u32 = 249;
    pub const AGENT_GREETING_CONTROL_CONF: u32 = 250;

    /// Highest message type number defined by protocol version 24 (§3.2).
    pub const MAX_KNOWN_V24: u32 = 282;

    /// Whether a message is a reply: the server's answer to one request,
    /// InvokeID first (FAILURE_CONF, CONTROL_FAILURE_CONF and every `*_CONF`
    /// and `*_RESP` of docs/protocol.md §3.2). A reply goes to the session
    /// whose request it answers, never to event sessions.
    pub const fn is_reply(message_type: u32) -> bool {
        match message_type {
            // The control-service confirmations: every odd type 37..=65.
            37..=65 => message_type % 2 == 1,
            FAILURE_CONF | OPEN_CONF | HEARTBEAT_CONF | CLOSE_CONF => true,
            SET_CALL_DATA_CONF | RELEASE_CALL_CONF | CLIENT_EVENT_REPORT_CONF => true,
            CONTROL_FAILURE_CONF => true,
            // QUERY_DEVICE_INFO, SNAPSHOT_CALL, SNAPSHOT_DEVICE, SEND_DTMF_SIGNAL.
            79 | 83 | 85 | 92 => true,
            MONITOR_START_CONF | MONITOR_STOP_CONF | CHANGE_MONITOR_MASK_CONF => true,
            SESSION_MONITOR_START_CONF | SESSION_MONITOR_STOP_CONF => true,
            // USER_MESSAGE, REGISTER_VARIABLES, the two statistics queries,
            // SUPERVISOR_ASSIST, EMERGENCY_CALL, SUPERVISE_CALL,
            // AGENT_TEAM_CONFIG, SET_APP_DATA, AGENT_DESK_SETTINGS,
            // LIST_AGENT_TEAM, MONITOR_AGENT_TEAM_START/STOP, BAD_CALL,
            // SET_DEVICE_ATTRIBUTES, (UN)REGISTER_SERVICE, START/STOP_RECORDING.
            108 | 111 | 113 | 115 | 119 | 122 | 125 | 127 | 130 | 132 | 134 | 136 | 138 | 140
            | 142 | 144 | 146 | 148 | 150 => true,
            // TASK_MONITOR_START/STOP, CHANGE_TASK_MONITOR_MASK, TASK_INIT_RESP,
            // TEAM_CONFIG_CONF, AGENT_GREETING_CONTROL, AGENT_TASKS_RESP,
            // SNAPSHOT_TASK_RESP, START/STOP_NETWORK_RECORDING,
            // ACTIVE_MAINTENANCE_RESP.
            202 | 204 | 206 | 210 | 244 | 250 | 256 | 258 | 268 | 270 | 279 => true,
            _ => false,
        }
    }
}

/// Status codes (docs/protocol.md §5.10): FAILURE_CONF, FAILURE_EVENT, CLOSE_REQ,
/// CLIENT_SESSION_CLOSED_EVENT.
pub mod status {
    pub const E_CTI_NO_ERROR: u32 = 0;
    pub const E_CTI_INVALID_VERSION: u32 = 1;
    pub const E_CTI_INVALID_MESSAGE_TYPE: u32 = 2;
    pub const E_CTI_INVALID_FIELD_TAG: u32 = 3;
    pub const E_CTI_SESSION_NOT_OPEN: u32 = 4;
    pub const E_CTI_SESSION_ALREADY_OPEN: u32 = 5;
    pub const E_CTI_REQUIRED_DATA_MISSING: u32 = 6;
    pub const E_CTI_INVALID_PERIPHERAL_ID: u32 = 7;
    pub const E_CTI_FUNCTION_NOT_AVAILABLE: u32 = 12;
    pub const E_CTI_INVALID_CALLID: u32 = 13;
    pub const E_CTI_INVALID_AGENT_DATA: u32 = 8;
    pub const E_CTI_DEVICE_IN_USE: u32 = 10;
    pub const E_CTI_NOT_CALL_PARTY: u32 = 35;
    pub const E_CTI_CTI_SERVER_OFFLINE: u32 = 15;
    pub const E_CTI_TIMEOUT: u32 = 16;
    pub const E_CTI_UNSPECIFIED_FAILURE: u32 = 17;
    pub const E_CTI_INVALID_TIMEOUT: u32 = 18;
    pub const E_CTI_BAD_MESSAGE_FORMAT: u32 = 25;
    pub const E_CTI_INVALID_PASSWORD: u32 = 36;
    pub const E_CTI_INVALID_MSG_TYPE_FOR_VERSION: u32 = 48;
    pub const E_CTI_CLIENT_DISCONNECTED: u32 = 37;
    pub const E_CTI_MUTUALLY_EXCLUS_DEVICEID_TYPES: u32 = 54;
    pub const E_CTI_INVALID_MONITORID: u32 = 55;
    pub const E_CTI_SESSION_MONITOR_ALREADY_EXISTS: u32 = 56;
    pub const E_CTI_SESSION_MONITOR_IS_CLIENTS: u32 = 57;
    pub const E_CTI_CLIENT_NOT_FOUND: u32 = 63;
    pub const E_CTI_SUPERVISOR_NOT_FOUND: u32 = 64;
    pub const E_CTI_TEAM_NOT_FOUND: u32 = 65;
    pub const E_CTI_INVALID_DISTRIBUTION_TYPE: u32 = 71;
    pub const E_CTI_INVALID_SKILL_GROUP: u32 = 72;
    pub const E_CTI_INVALID_SERVICE: u32 = 84;
    pub const E_CTI_SERVICE_CONFLICT: u32 = 85;
}

/// USER_MESSAGE_REQ / USER_MESSAGE_EVENT Distribution (docs/protocol.md §12.4).
pub mod distribution {
    /// To the sessions of one ClientID.
    pub const TO_CLIENT: u16 = 0;
    /// To the sender's supervisor.
    pub const TO_SUPERVISOR: u16 = 1;
    /// To the sender's team.
    pub const TO_TEAM: u16 = 2;
    /// To every client.
    pub const TO_ALL: u16 = 3;
}

/// SUPERVISE_CALL_REQ SupervisoryAction values (docs/protocol.md §12.5).
pub mod supervisory_action {
    pub const CLEAR: u16 = 0;
    pub const MONITOR: u16 = 1;
    pub const WHISPER: u16 = 2;
    pub const BARGE_IN: u16 = 3;
    pub const INTERCEPT: u16 = 4;
}

/// CONTROL_FAILURE_CONF FailureCodes the router gives itself (docs/protocol.md §5.12).
pub mod control_failure {
    /// The request names a device (or call) the client may not act on.
    pub const CF_PRIVILEGE_VIOLATION_ON_SPECIFIED_DEVICE: u16 = 8;
    /// The request could not be taken now (too many in flight).
    pub const CF_SERVICE_BUSY: u16 = 32;
}

/// ServicesRequested / ServicesGranted bits (docs/protocol.md §5.1).
pub mod service {
    pub const CLIENT_EVENTS: u32 = 0x0000_0001;
    pub const CALL_DATA_UPDATE: u32 = 0x0000_0002;
    pub const CLIENT_CONTROL: u32 = 0x0000_0004;
    pub const CONNECTION_MONITOR: u32 = 0x0000_0008;
    pub const ALL_EVENTS: u32 = 0x0000_0010;
    pub const PERIPHERAL_MONITOR: u32 = 0x0000_0020;
    pub const CLIENT_MONITOR: u32 = 0x0000_0040;
    pub const SUPERVISOR: u32 = 0x0000_0080;
    pub const SERVER: u32 = 0x0000_0100;
    /// May be granted instead of CLIENT_CONTROL: agent-state requests only.
    pub const AGENT_STATE_CONTROL_ONLY: u32 = 0x0000_2000;
}

/// CallMsgMask bits (docs/protocol.md §5.2): which event types a session or monitor wants.
pub mod call_mask {
    /// The CallMsgMask bit of an event type, or 0 for types the mask does not govern.
    pub const fn bit_for(message_type: u32) -> u32 {
        match message_type {
            9 => 0x0000_0001,
            21 => 0x0000_0002,
            10 => 0x0000_0004,
            11 => 0x0000_0008,
            12 => 0x0000_0010,
            13 => 0x0000_0020,
            14 => 0x0000_0040,
            15 => 0x0000_0080,
            17 => 0x0000_0100,
            18 => 0x0000_0200,
            19 => 0x0000_0400,
            20 => 0x0000_0800,
            22 => 0x0000_1000,
            23 => 0x0000_2000,
            24 => 0x0000_4000,
            25 => 0x0000_8000,
            16 => 0x0001_0000,
            34 => 0x0002_0000,
            86 => 0x0004_0000,
            105 => 0x0008_0000,
            106 => 0x0010_0000,
            116 => 0x0020_0000,
            117 => 0x0040_0000,
            128 => 0x0080_0000,
            189 => 0x0100_0000,
            248 => 0x0800_0000,
            _ => 0,
        }
    }

    /// Every call-event bit: what a router opens upstream with.
    pub const ALL: u32 = 0xFFFF_FFFF;
}

/// AgentStateMask bits (docs/protocol.md §5.3).
pub mod agent_mask {
    /// The AgentStateMask bit for an AgentState value: 1<<state for 0–8,
    /// 1<<(state−1) for 10–14; UNKNOWN (9) and unknown states have no bit.
    pub const fn bit_for(agent_state: u16) -> u32 {
        match agent_state {
            0..=8 => 1 << agent_state,
            10..=14 => 1 << (agent_state - 1),
            _ => 0,
        }
    }

    /// Every agent-state bit (CTM sends this).
    pub const ALL: u32 = 0x3FFF;
}

/// AgentState values (docs/protocol.md §5.4).
pub mod agent_state {
    pub const LOGIN: u16 = 0;
    pub const LOGOUT: u16 = 1;
    pub const NOT_READY: u16 = 2;
    pub const AVAILABLE: u16 = 3;
    pub const TALKING: u16 = 4;
    pub const WORK_NOT_READY: u16 = 5;
    pub const WORK_READY: u16 = 6;
    pub const BUSY_OTHER: u16 = 7;
    pub const RESERVED: u16 = 8;
    pub const UNKNOWN: u16 = 9;
    pub const HOLD: u16 = 10;
}

/// DeviceIDType values (docs/protocol.md §5.5).
pub mod device_type {
    pub const NONE: u16 = 0xFFFF;
    pub const DEVICE_IDENTIFIER: u16 = 0;
    pub const TRUNK: u16 = 70;
    pub const TRUNK_GROUP: u16 = 71;
    pub const ROUTE_POINT: u16 = 74;
    pub const EXTERNAL: u16 = 75;
    pub const AGENT_DEVICE: u16 = 76;
    pub const QUEUE: u16 = 77;
    pub const NON_ACD: u16 = 78;
    pub const SHARED: u16 = 79;
}

/// ConnectionDeviceIDType values (docs/protocol.md §5.6).
pub mod connection_type {
    pub const NONE: u16 = 0xFFFF;
    pub const STATIC: u16 = 0;
    pub const DYNAMIC: u16 = 1;
}

/// PGStatus bits (docs/protocol.md §5.7).
pub mod pg_status {
    pub const OPC_DOWN: u32 = 0x01;
    pub const CC_DOWN: u32 = 0x02;
    pub const PERIPHERAL_OFFLINE: u32 = 0x04;
    pub const CTI_SERVER_OFFLINE: u32 = 0x08;
    pub const LIMITED_FUNCTION: u32 = 0x10;
}

/// SystemEventID values (docs/protocol.md §5.8).
pub mod system_event {
    pub const CENTRAL_CONTROLLER_ONLINE: u32 = 1;
    pub const CENTRAL_CONTROLLER_OFFLINE: u32 = 2;
    pub const PERIPHERAL_ONLINE: u32 = 3;
    pub const PERIPHERAL_OFFLINE: u32 = 4;
    pub const TEXT_FYI: u32 = 5;
    pub const PERIPHERAL_GATEWAY_OFFLINE: u32 = 6;
    pub const CTI_SERVER_OFFLINE: u32 = 7;
    pub const CTI_SERVER_ONLINE: u32 = 8;
    pub const HALF_HOUR_CHANGE: u32 = 9;
}

/// LocalConnectionState values (docs/protocol.md §5.11).
pub mod lcs {
    pub const NONE: u16 = 0xFFFF;
    pub const NULL: u16 = 0;
    pub const INITIATE: u16 = 1;
    pub const ALERTING: u16 = 2;
    pub const CONNECT: u16 = 3;
    pub const HOLD: u16 = 4;
    pub const QUEUED: u16 = 5;
    pub const FAIL: u16 = 6;
}

/// EventCause values used by the simulator (docs/protocol.md §5.13).
pub mod cause {
    pub const NONE: u16 = 0xFFFF;
    pub const NEW_CALL: u16 = 22;
    pub const TRANSFER: u16 = 32;
    pub const KEY_CONFERENCE: u16 = 17;
    pub const REDIRECTED: u16 = 28;
}

/// PeripheralType values (docs/protocol.md §5.9).
pub mod peripheral_type {
    pub const NONE: u16 = 0xFFFF;
    /// UCCE / CUCM agent PG: what real UCCE sends.
    pub const ENTERPRISE_AGENT: u16 = 17;
}

/// Special values (docs/protocol.md §5.16).
pub const NULL_PERIPHERAL_ID: u32 = 0xFFFF_FFFF;
/// OPEN_REQ IdleTimeout value that disables the idle check (docs/protocol.md §6.3).
pub const IDLE_TIMEOUT_DISABLED: u32 = 0xFFFF_FFFF;
/// Smallest IdleTimeout a client may ask for (docs/protocol.md §6.3).
pub const MIN_IDLE_TIMEOUT_SECS: u32 = 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_mask_skips_unknown_state() {
        assert_eq!(agent_mask::bit_for(agent_state::RESERVED), 0x0100);
        assert_eq!(agent_mask::bit_for(agent_state::UNKNOWN), 0);
        assert_eq!(agent_mask::bit_for(agent_state::HOLD), 0x0200);
        assert_eq!(agent_mask::bit_for(14), 0x2000);
    }

    #[test]
    fn call_mask_bits_follow_the_table() {
        assert_eq!(call_mask::bit_for(msg::CALL_DELIVERED_EVENT), 1);
        assert_eq!(call_mask::bit_for(msg::CALL_DEQUEUED_EVENT), 0x0004_0000);
        assert_eq!(call_mask::bit_for(msg::SYSTEM_EVENT), 0);
    }

    /// docs/protocol.md §3: requests (client → server) and events are never
    /// replies; every REQ/CONF pair's CONF is.
    #[test]
    fn replies_are_the_confirmations_and_nothing_else() {
        let pairs = [
            (26, 27),
            (28, 29),
            (32, 33),
            (36, 37),
            (38, 39),
            (40, 41),
            (42, 43),
            (44, 45),
            (46, 47),
            (48, 49),
            (50, 51),
            (52, 53),
            (54, 55),
            (56, 57),
            (58, 59),
            (60, 61),
            (62, 63),
            (64, 65),
            (78, 79),
            (82, 83),
            (84, 85),
            (91, 92),
            (93, 94),
            (95, 96),
            (97, 98),
            (101, 102),
            (103, 104),
            (107, 108),
            (110, 111),
            (112, 113),
            (114, 115),
            (118, 119),
            (121, 122),
            (124, 125),
            (126, 127),
            (129, 130),
            (131, 132),
            (133, 134),
            (135, 136),
            (137, 138),
            (139, 140),
            (141, 142),
            (143, 144),
            (145, 146),
            (147, 148),
            (149, 150),
            (249, 250),
            (267, 268),
            (269, 270),
        ];
        for (req, conf) in pairs {
            assert!(!msg::is_reply(req), "{req} is a request");
            assert!(msg::is_reply(conf), "{conf} answers {req}");
        }
        for session in [
            msg::FAILURE_CONF,
            msg::OPEN_CONF,
            msg::HEARTBEAT_CONF,
            msg::CLOSE_CONF,
        ] {
            assert!(msg::is_reply(session));
        }
        assert!(msg::is_reply(msg::CONTROL_FAILURE_CONF));
        let events = (9..=25)
            .chain([
                2, 30, 31, 34, 86, 99, 100, 105, 106, 109, 116, 117, 120, 123, 128,
            ])
            .chain(191..=200)
            .chain([207, 211, 212, 213, 214, 215, 248, 260, 261, 262, 263, 282]);
        for event in events {
            assert!(!msg::is_reply(event), "{event} is an event");
        }
        for session_req in [msg::OPEN_REQ, msg::HEARTBEAT_REQ, msg::CLOSE_REQ] {
            assert!(!msg::is_reply(session_req));
        }
    }
}
