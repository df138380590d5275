//! Names of the protocol's codes for people reading a tool's output: the
//! status codes of FAILURE_CONF (docs/protocol.md §5.10), the FailureCodes of
//! CONTROL_FAILURE_CONF (§5.12), LocalConnectionState (§5.11) and
//! AgentState (§5.4). No I/O here.

/// Status codes 0–98 (docs/protocol.md §5.10), by value.
const STATUS: [&str; 99] = [
    "E_CTI_NO_ERROR",
    "E_CTI_INVALID_VERSION",
    "E_CTI_INVALID_MESSAGE_TYPE",
    "E_CTI_INVALID_FIELD_TAG",
    "E_CTI_SESSION_NOT_OPEN",
    "E_CTI_SESSION_ALREADY_OPEN",
    "E_CTI_REQUIRED_DATA_MISSING",
    "E_CTI_INVALID_PERIPHERAL_ID",
    "E_CTI_INVALID_AGENT_DATA",
    "E_CTI_AGENT_NOT_LOGGED_ON",
    "E_CTI_DEVICE_IN_USE",
    "E_CTI_NEW_SESSION_OPENED",
    "E_CTI_FUNCTION_NOT_AVAILABLE",
    "E_CTI_INVALID_CALLID",
    "E_CTI_PROTECTED_VARIABLE",
    "E_CTI_CTI_SERVER_OFFLINE",
    "E_CTI_TIMEOUT",
    "E_CTI_UNSPECIFIED_FAILURE",
    "E_CTI_INVALID_TIMEOUT",
    "E_CTI_INVALID_SERVICE_MASK",
    "E_CTI_INVALID_CALL_MSG_MASK",
    "E_CTI_INVALID_AGENT_STATE_MASK",
    "E_CTI_INVALID_RESERVED_FIELD",
    "E_CTI_INVALID_FIELD_LENGTH",
    "E_CTI_INVALID_DIGITS",
    "E_CTI_BAD_MESSAGE_FORMAT",
    "E_CTI_INVALID_TAG_FOR_MSG_TYPE",
    "E_CTI_INVALID_DEVICE_ID_TYPE",
    "E_CTI_INVALID_LCL_CONN_STATE",
    "E_CTI_INVALID_EVENT_CAUSE",
    "E_CTI_INVALID_NUM_PARTIES",
    "E_CTI_INVALID_SYS_EVENT_ID",
    "E_CTI_INCONSISTENT_AGENT_DATA",
    "E_CTI_INVALID_CONNECTION_ID_TYPE",
    "E_CTI_INVALID_CALL_TYPE",
    "E_CTI_NOT_CALL_PARTY",
    "E_CTI_INVALID_PASSWORD",
    "E_CTI_CLIENT_DISCONNECTED",
    "E_CTI_INVALID_OBJECT_STATE",
    "E_CTI_INVALID_NUM_SKILL_GROUPS",
    "E_CTI_INVALID_NUM_LINES",
    "E_CTI_INVALID_LINE_TYPE",
    "E_CTI_INVALID_ALLOCATION_STATE",
    "E_CTI_INVALID_ANSWERING_MACHINE",
    "E_CTI_INVALID_CALL_MANNER_TYPE",
    "E_CTI_INVALID_CALL_PLACEMENT_TYPE",
    "E_CTI_INVALID_CONSULT_TYPE",
    "E_CTI_INVALID_FACILITY_TYPE",
    "E_CTI_INVALID_MSG_TYPE_FOR_VERSION",
    "E_CTI_INVALID_TAG_FOR_VERSION",
    "E_CTI_INVALID_AGENT_WORK_MODE",
    "E_CTI_INVALID_CALL_OPTION",
    "E_CTI_INVALID_DESTINATION_COUNTRY",
    "E_CTI_INVALID_ANSWER_DETECT_MODE",
    "E_CTI_MUTUALLY_EXCLUS_DEVICEID_TYPES",
    "E_CTI_INVALID_MONITORID",
    "E_CTI_SESSION_MONITOR_ALREADY_EXISTS",
    "E_CTI_SESSION_MONITOR_IS_CLIENTS",
    "E_CTI_INVALID_CALL_CONTROL_MASK",
    "E_CTI_INVALID_FEATURE_MASK",
    "E_CTI_INVALID_TRANSFER_CONFERENCE_SETUP_MASK",
    "E_CTI_INVALID_ARRAY_INDEX",
    "E_CTI_INVALID_CHARACTER",
    "E_CTI_CLIENT_NOT_FOUND",
    "E_CTI_SUPERVISOR_NOT_FOUND",
    "E_CTI_TEAM_NOT_FOUND",
    "E_CTI_NO_CALL_ACTIVE",
    "E_CTI_NAMED_VARIABLE_NOT_CONFIGURED",
    "E_CTI_NAMED_ARRAY_NOT_CONFIGURED",
    "E_CTI_INVALID_CALL_VARIABLE_MASK",
    "E_CTI_ELEMENT_NOT_FOUND",
    "E_CTI_INVALID_DISTRIBUTION_TYPE",
    "E_CTI_INVALID_SKILL_GROUP",
    "E_CTI_TOO_MUCH_DATA",
    "E_CTI_VALUE_TOO_LONG",
    "E_CTI_SCALAR_FUNCTION_ON_ARRAY",
    "E_CTI_ARRAY_FUNCTION_ON_SCALAR",
    "E_CTI_INVALID_NUM_NAMED_VARIABLES",
    "E_CTI_INVALID_NUM_NAMED_ARRAYS",
    "E_CTI_INVALID_RTP_DIRECTION",
    "E_CTI_INVALID_RTP_TYPE",
    "E_CTI_CALLED_PARTY_DISPOSITION",
    "E_CTI_INVALID_SUPERVISORY_ACTION",
    "E_CTI_AGENT_TEAM_MONITOR_ALREADY_EXISTS",
    "E_CTI_INVALID_SERVICE",
    "E_CTI_SERVICE_CONFLICT",
    "E_CTI_SKILL_GROUP_CONFLICT",
    "E_CTI_INVALID_DEVICE",
    "E_CTI_INVALID_MR_DOMAIN",
    "E_CTI_MONITOR_ALREADY_EXISTS",
    "E_CTI_MONITOR_TERMINATED",
    "E_CTI_INVALID_TASK_MSG_MASK",
    "E_CTI_SERVER_NOT_MASTER",
    "E_CTI_INVALID_CSD",
    "E_CTI_JTAPI_CCM_PROBLEM",
    "E_INVALID_CONFIG_MSG_MASK",
    "E_CTI_AUTO_CONFIG_RESET",
    "E_CTI_INVALID_MONITOR_STATUS",
    "E_CTI_INVALID_REQUEST_TYPE",
];

/// The name of a FAILURE_CONF / FAILURE_EVENT Status (docs/protocol.md §5.10).
pub fn status_name(code: u32) -> &'static str {
    match code {
        107 => "E_CTI_INVALID_CLIENT_FOR_STANDBY",
        108 => "E_CTI_INVALID_UNIQUE_INSTANCE_ID",
        109 => "E_CTI_DUPLICATE_UNIQUE_INSTANCE_ID",
        110 => "E_CTI_SERVER_IN_MAINTENANCE_MODE",
        code => usize::try_from(code)
            .ok()
            .and_then(|i| STATUS.get(i))
            .copied()
            .unwrap_or("an unknown status"),
    }
}

/// The name of a CONTROL_FAILURE_CONF FailureCode (docs/protocol.md §5.12;
/// the codes the public sources do not name are "unknown").
pub fn control_failure_name(code: u16) -> &'static str {
    match code {
        0 => "CF_GENERIC_UNSPECIFIED",
        1 => "CF_GENERIC_OPERATION",
        2 => "CF_REQUEST_INCOMPATIBLE_WITH_OBJECT",
        3 => "CF_VALUE_OUT_OF_RANGE",
        4 => "CF_OBJECT_NOT_KNOWN",
        5 => "CF_INVALID_CALLING_DEVICE",
        6 => "CF_INVALID_CALLED_DEVICE",
        7 => "CF_INVALID_FORWARDING_DESTINATION",
        8 => "CF_PRIVILEGE_VIOLATION_ON_SPECIFIED_DEVICE",
        9 => "CF_PRIVILEGE_VIOLATION_ON_CALLED_DEVICE",
        10 => "CF_PRIVILEGE_VIOLATION_ON_CALLING_DEVICE",
        11 => "CF_INVALID_CSTA_CALL_IDENTIFIER",
        12 => "CF_INVALID_CSTA_DEVICE_IDENTIFIER",
        13 => "CF_INVALID_CSTA_CONNECTION_IDENTIFIER",
        14 => "CF_INVALID_DESTINATION",
        15 => "CF_INVALID_FEATURE",
        16 => "CF_INVALID_ALLOCATION_STATE",
        17 => "CF_INVALID_CROSS_REF_ID",
        18 => "CF_INVALID_OBJECT_TYPE",
        19 => "CF_SECURITY_VIOLATION",
        21 => "CF_GENERIC_STATE_INCOMPATIBILITY",
        22 => "CF_INVALID_OBJECT_STATE",
        23 => "CF_INVALID_CONNECTION_ID_FOR_ACTIVE_CALL",
        24 => "CF_NO_ACTIVE_CALL",
        25 => "CF_NO_HELD_CALL",
        26 => "CF_NO_CALL_TO_CLEAR",
        27 => "CF_NO_CONNECTION_TO_CLEAR",
        28 => "CF_NO_CALL_TO_ANSWER",
        29 => "CF_NO_CALL_TO_COMPLETE",
        31 => "CF_GENERIC_SYSTEM_RESOURCE_AVAILABILITY",
        32 => "CF_SERVICE_BUSY",
        33 => "CF_RESOURCE_BUSY",
        34 => "CF_RESOURCE_OUT_OF_SERVICE",
        35 => "CF_NETWORK_BUSY",
        36 => "CF_NETWORK_OUT_OF_SERVICE",
        37 => "CF_OVERALL_MONITOR_LIMIT_EXCEEDED",
        38 => "CF_CONFERENCE_MEMBER_LIMIT_EXCEEDED",
        78 => "CF_REQUEST_TIMEOUT_REJECTION",
        _ => "an unknown failure code",
    }
}

/// The name of a LocalConnectionState (docs/protocol.md §5.11).
pub fn lcs_name(state: u16) -> &'static str {
    match state {
        0xFFFF => "LCS_NONE",
        0 => "LCS_NULL",
        1 => "LCS_INITIATE",
        2 => "LCS_ALERTING",
        3 => "LCS_CONNECT",
        4 => "LCS_HOLD",
        5 => "LCS_QUEUED",
        6 => "LCS_FAIL",
        _ => "LCS_UNKNOWN",
    }
}

/// The name of an AgentState (docs/protocol.md §5.4).
pub fn agent_state_name(state: u16) -> &'static str {
    const NAMES: [&str; 15] = [
        "LOGIN",
        "LOGOUT",
        "NOT_READY",
        "AVAILABLE",
        "TALKING",
        "WORK_NOT_READY",
        "WORK_READY",
        "BUSY_OTHER",
        "RESERVED",
        "UNKNOWN",
        "HOLD",
        "ACTIVE",
        "PAUSED",
        "INTERRUPTED",
        "NOT_ACTIVE",
    ];
    NAMES.get(usize::from(state)).copied().unwrap_or("UNKNOWN")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::constants::{control_failure, lcs, status};

    #[test]
    fn status_names_follow_the_table() {
        assert_eq!(status_name(status::E_CTI_NO_ERROR), "E_CTI_NO_ERROR");
        assert_eq!(
            status_name(status::E_CTI_DEVICE_IN_USE),
            "E_CTI_DEVICE_IN_USE"
        );
        assert_eq!(
            status_name(status::E_CTI_FUNCTION_NOT_AVAILABLE),
            "E_CTI_FUNCTION_NOT_AVAILABLE"
        );
        assert_eq!(
            status_name(status::E_CTI_NOT_CALL_PARTY),
            "E_CTI_NOT_CALL_PARTY"
        );
        assert_eq!(
            status_name(status::E_CTI_INVALID_PASSWORD),
            "E_CTI_INVALID_PASSWORD"
        );
        assert_eq!(
            status_name(status::E_CTI_INVALID_MSG_TYPE_FOR_VERSION),
            "E_CTI_INVALID_MSG_TYPE_FOR_VERSION"
        );
        assert_eq!(status_name(98), "E_CTI_INVALID_REQUEST_TYPE");
        assert_eq!(status_name(110), "E_CTI_SERVER_IN_MAINTENANCE_MODE");
        assert_eq!(status_name(99), "an unknown status");
        assert_eq!(status_name(u32::MAX), "an unknown status");
    }

    #[test]
    fn control_failure_and_connection_state_names() {
        assert_eq!(
            control_failure_name(control_failure::CF_PRIVILEGE_VIOLATION_ON_SPECIFIED_DEVICE),
            "CF_PRIVILEGE_VIOLATION_ON_SPECIFIED_DEVICE"
        );
        assert_eq!(
            control_failure_name(control_failure::CF_SERVICE_BUSY),
            "CF_SERVICE_BUSY"
        );
        assert_eq!(control_failure_name(28), "CF_NO_CALL_TO_ANSWER");
        assert_eq!(control_failure_name(20), "an unknown failure code");
        assert_eq!(lcs_name(lcs::ALERTING), "LCS_ALERTING");
        assert_eq!(lcs_name(lcs::HOLD), "LCS_HOLD");
        assert_eq!(lcs_name(9), "LCS_UNKNOWN");
        assert_eq!(agent_state_name(3), "AVAILABLE");
        assert_eq!(agent_state_name(14), "NOT_ACTIVE");
        assert_eq!(agent_state_name(15), "UNKNOWN");
    }
}
