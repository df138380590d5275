//! Miscellaneous and Call Data Update messages (docs/protocol.md §4.2, §4.7,
//! §12.3): SYSTEM_EVENT, CLIENT_EVENT_REPORT, and every request and
//! confirmation of the Call Data Update service (SET_CALL_DATA, RELEASE_CALL,
//! SET_DEVICE_ATTRIBUTES). Declarations only; Client Control is in `control.rs`.

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
    /// SET_CALL_DATA_REQ: set a call's variables, ECC variables and wrap-up data.
    /// RouterCallKey* exist from v14 (docs/protocol.md §12.3).
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
        router_call_key_day: Opt<u32> = ROUTER_CALL_KEY_DAY @ 14,
        router_call_key_call_id: Opt<u32> = ROUTER_CALL_KEY_CALLID @ 14,
        router_call_key_sequence_number: Opt<u32> = ROUTER_CALL_KEY_SEQUENCE_NUM @ 14,
        /// UCHAR: 'D' when the call came from the dialer.
        call_originated_from: Opt<u8> = CALL_ORIGINATED_FROM,
        /// Listed by PV25-CSC only.
        ani_ii: Opt<CtiString> = ANI_II,
        /// Added by CTI OS (docs/protocol.md §12.1); kept so a proxy passes it on.
        ctios_cil_client_id: Opt<CtiString> = CTIOS_CIL_CLIENT_ID,
    }
}

message! {
    /// SET_CALL_DATA_CONF: the values are stored (and survive a session failure).
    pub struct SetCallDataConf = msg::SET_CALL_DATA_CONF, since 13 {
        invoke_id: u32,
    }
    floating {}
}

message! {
    /// RELEASE_CALL_REQ: the client is done with a call's data (ends the wrap-up
    /// window). ConnectionDeviceIDType comes before ConnectionCallID here.
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
    /// SET_DEVICE_ATTRIBUTES_REQ: default service, skill group and call type of a
    /// dialer port device (CallingDeviceID).
    pub struct SetDeviceAttributesReq = msg::SET_DEVICE_ATTRIBUTES_REQ, since 13 {
        invoke_id: u32,
        peripheral_id: u32,
        service_number: u32,
        service_id: u32,
        skill_group_number: u32,
        skill_group_id: u32,
        skill_group_priority: u16,
        /// 0xFFFF: none.
        call_type: u16,
        /// DeviceIDType (docs/protocol.md §5.5).
        calling_device_type: u16,
    }
    floating {
        calling_device_id: Opt<CtiString> = CALLING_DEVID,
    }
}

message! {
    /// SET_DEVICE_ATTRIBUTES_CONF.
    pub struct SetDeviceAttributesConf = msg::SET_DEVICE_ATTRIBUTES_CONF, since 13 {
        invoke_id: u32,
    }
    floating {}
}
