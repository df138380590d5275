//! Miscellaneous, call-data and control messages (docs/protocol.md §4.1–§4.2,
//! §4.7): SYSTEM_EVENT, CLIENT_EVENT_REPORT, CONTROL_FAILURE_CONF,
//! SET_CALL_DATA, RELEASE_CALL. Declarations only.

use crate::proto::constants::msg;
use crate::proto::values::{CtiString, NamedArray, NamedVar, Unspec};

message! {
    /// SYSTEM_EVENT: PG / peripheral / CTI Server status; goes to every session.
    pub struct SystemEvent = msg::SYSTEM_EVENT, since 13 {
        pg_status: u32,
        icm_central_controller_time: u32,
        system_event_id: u32,
        system_event_arg1: u32,
        system_event_arg2: u32,
        system_event_arg3: u32,
        event_device_type: u16,
    }
    floating {
        text: Opt<CtiString> = TEXT,
        event_device_id: Opt<CtiString> = EVENT_DEVICE_ID,
    }
}

message! {
    /// CLIENT_EVENT_REPORT_REQ: a client reports its own status.
    pub struct ClientEventReportReq = msg::CLIENT_EVENT_REPORT_REQ, since 13 {
        invoke_id: u32,
        state: u16,
    }
    floating {
        object_name: Opt<CtiString> = OBJECT_NAME,
        text: Opt<CtiString> = TEXT,
    }
}

message! {
    /// CLIENT_EVENT_REPORT_CONF.
    pub struct ClientEventReportConf = msg::CLIENT_EVENT_REPORT_CONF, since 13 {
        invoke_id: u32,
    }
    floating {}
}

message! {
    /// CONTROL_FAILURE_CONF: a control request failed at the peripheral.
    pub struct ControlFailureConf = msg::CONTROL_FAILURE_CONF, since 13 {
        invoke_id: u32,
        failure_code: u16,
        peripheral_error_code: u32,
    }
    floating {
        text: Opt<CtiString> = TEXT,
    }
}

message! {
    /// SET_CALL_DATA_REQ (Call Data Update service).
    pub struct SetCallDataReq = msg::SET_CALL_DATA_REQ, since 13 {
        invoke_id: u32,
        peripheral_id: u32,
        connection_device_id_type: u16,
        connection_call_id: u32,
        num_named_variables: u16,
        num_named_arrays: u16,
        call_type: u16,
        called_party_disposition: u16,
        campaign_id: u32,
        query_rule_id: u32,
    }
    floating {
        connection_device_id: Opt<CtiString> = CONNECTION_DEVID,
        ani: Opt<CtiString> = ANI,
        user_to_user_info: Opt<Unspec> = UUI,
        caller_entered_digits: Opt<CtiString> = CED,
        call_variable_1: Opt<CtiString> = CALL_VAR_1,
        call_variable_2: Opt<CtiString> = CALL_VAR_2,
        call_variable_3: Opt<CtiString> = CALL_VAR_3,
        call_variable_4: Opt<CtiString> = CALL_VAR_4,
        call_variable_5: Opt<CtiString> = CALL_VAR_5,
        call_variable_6: Opt<CtiString> = CALL_VAR_6,
        call_variable_7: Opt<CtiString> = CALL_VAR_7,
        call_variable_8: Opt<CtiString> = CALL_VAR_8,
        call_variable_9: Opt<CtiString> = CALL_VAR_9,
        call_variable_10: Opt<CtiString> = CALL_VAR_10,
        call_wrapup_data: Opt<CtiString> = CALL_WRAPUP_DATA,
        named_variables: List<NamedVar> = NAMED_VARIABLE # num_named_variables,
        named_arrays: List<NamedArray> = NAMED_ARRAY # num_named_arrays,
        customer_phone_number: Opt<CtiString> = CUSTOMER_PHONE_NUMBER,
        customer_account_number: Opt<CtiString> = CUSTOMER_ACCOUNT_NUMBER,
        router_call_key_day: Opt<u32> = ROUTER_CALL_KEY_DAY,
        router_call_key_call_id: Opt<u32> = ROUTER_CALL_KEY_CALLID,
        router_call_key_sequence_number: Opt<u32> = ROUTER_CALL_KEY_SEQUENCE_NUM,
        /// UCHAR: 'D' when the call came from the dialer.
        call_originated_from: Opt<u8> = CALL_ORIGINATED_FROM,
    }
}

message! {
    /// SET_CALL_DATA_CONF.
    pub struct SetCallDataConf = msg::SET_CALL_DATA_CONF, since 13 {
        invoke_id: u32,
    }
    floating {}
}

message! {
    /// RELEASE_CALL_REQ.
    pub struct ReleaseCallReq = msg::RELEASE_CALL_REQ, since 13 {
        invoke_id: u32,
        peripheral_id: u32,
        connection_device_id_type: u16,
        connection_call_id: u32,
    }
    floating {
        connection_device_id: Opt<CtiString> = CONNECTION_DEVID,
    }
}

message! {
    /// RELEASE_CALL_CONF.
    pub struct ReleaseCallConf = msg::RELEASE_CALL_CONF, since 13 {
        invoke_id: u32,
    }
    floating {}
}

message! {
    /// SET_AGENT_STATE_CONF.
    pub struct SetAgentStateConf = msg::SET_AGENT_STATE_CONF, since 13 {
        invoke_id: u32,
    }
    floating {}
}
