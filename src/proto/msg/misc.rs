//! Miscellaneous and Call Data Update messages (docs/protocol.md §4.2, §4.7,
//! §12.3, §12.4): SYSTEM_EVENT, every request, confirmation and event of the
//! Miscellaneous service (CLIENT_EVENT_REPORT, USER_MESSAGE, REGISTER_VARIABLES,
//! the two statistics queries, SET_APP_DATA, AGENT_DESK_SETTINGS,
//! START/STOP_RECORDING), and every request and confirmation of the Call Data
//! Update service (SET_CALL_DATA, RELEASE_CALL, SET_DEVICE_ATTRIBUTES).
//! Declarations only; Client Control is in `control.rs`, the statistics
//! counter blocks in `statistics.rs`, the Supervisor service events in
//! `supervisor.rs`.
//!
//! Every served version (13..=24) has the Miscellaneous service layouts; the
//! differences inside the range are floating: ClientAddressIPV6 (226) exists
//! at v14–18 only (START_RECORDING_REQ/CONF), FltCallTypeID and
//! PreCallInvokeID of SET_APP_DATA_REQ from v14, PlayZipTone and
//! ACDSharedLineUsage of AGENT_DESK_SETTINGS_CONF (tags above 255) from v20
//! (docs/protocol.md §13).

use crate::proto::constants::msg;
use crate::proto::msg::statistics::{AgentStatistics, SkillGroupStatistics};
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
    /// USER_MESSAGE_REQ: send a text to a client (by ClientID), the agent's
    /// supervisor, its team, or everyone (Distribution 0–3).
    pub struct UserMessageReq = msg::USER_MESSAGE_REQ, since 13 {
        invoke_id: u32,
        peripheral_id: u32,
        distribution: u16,
    }
    floating {
        client_id: Opt<CtiString> = CLIENT_ID,
        agent_extension: Opt<CtiString> = AGENT_EXTENSION,
        agent_id: Opt<CtiString> = AGENT_ID,
        agent_instrument: Opt<CtiString> = AGENT_INSTRUMENT,
        text: Opt<CtiString> = TEXT,
        /// Added by CTI OS (docs/protocol.md §12.1); kept so a proxy passes it on.
        ctios_cil_client_id: Opt<CtiString> = CTIOS_CIL_CLIENT_ID,
        /// AgentIDLong (PV25-CSC; width not stated): kept as raw bytes.
        agent_id_long: Opt<Unspec> = AGENT_ID_LONG,
    }
}

message! {
    /// USER_MESSAGE_CONF.
    pub struct UserMessageConf = msg::USER_MESSAGE_CONF, since 13 {
        invoke_id: u32,
    }
    floating {}
}

message! {
    /// USER_MESSAGE_EVENT: a user message delivered; ClientID names the sender.
    pub struct UserMessageEvent = msg::USER_MESSAGE_EVENT, since 13 {
        icm_central_controller_time: u32,
        distribution: u16,
    }
    floating {
        client_id: Opt<CtiString> = CLIENT_ID,
        text: Opt<CtiString> = TEXT,
    }
}

message! {
    /// REGISTER_VARIABLES_REQ: the call variables (CallVariableMask bits
    /// 0x0001–0x0200) and named variables/arrays the client wants in its call
    /// events. Only the names of the variables and arrays count.
    pub struct RegisterVariablesReq = msg::REGISTER_VARIABLES_REQ, since 13 {
        invoke_id: u32,
        call_variable_mask: u16,
        num_named_variables: u16,
        num_named_arrays: u16,
    }
    floating {
        named_variables: List<NamedVar> = NAMED_VARIABLE # num_named_variables,
        named_arrays: List<NamedArray> = NAMED_ARRAY # num_named_arrays,
    }
}

message! {
    /// REGISTER_VARIABLES_CONF.
    pub struct RegisterVariablesConf = msg::REGISTER_VARIABLES_CONF, since 13 {
        invoke_id: u32,
    }
    floating {}
}

message! {
    /// QUERY_AGENT_STATISTICS_REQ: an agent's statistics (named by one of the
    /// agent fields).
    pub struct QueryAgentStatisticsReq = msg::QUERY_AGENT_STATISTICS_REQ, since 13 {
        invoke_id: u32,
        peripheral_id: u32,
    }
    floating {
        agent_extension: Opt<CtiString> = AGENT_EXTENSION,
        agent_id: Opt<CtiString> = AGENT_ID,
        agent_instrument: Opt<CtiString> = AGENT_INSTRUMENT,
    }
}

message! {
    /// QUERY_AGENT_STATISTICS_CONF: 84 UINT counters after PeripheralID, fixed
    /// part 344 bytes at every served version (docs/protocol.md §12.8 #6, §13).
    pub struct QueryAgentStatisticsConf = msg::QUERY_AGENT_STATISTICS_CONF, since 13 {
        invoke_id: u32,
        peripheral_id: u32,
        /// Named by [`AGENT_STATISTICS_COUNTERS`](crate::proto::msg::AGENT_STATISTICS_COUNTERS).
        statistics: AgentStatistics,
    }
    floating {
        agent_extension: Opt<CtiString> = AGENT_EXTENSION,
        agent_id: Opt<CtiString> = AGENT_ID,
        agent_instrument: Opt<CtiString> = AGENT_INSTRUMENT,
    }
}

message! {
    /// QUERY_SKILL_GROUP_STATISTICS_REQ: a skill group's statistics (either
    /// number or id may be NULL_SKILL_GROUP).
    pub struct QuerySkillGroupStatisticsReq = msg::QUERY_SKILL_GROUP_STATISTICS_REQ, since 13 {
        invoke_id: u32,
        peripheral_id: u32,
        skill_group_number: u32,
        skill_group_id: u32,
    }
    floating {}
}

message! {
    /// QUERY_SKILL_GROUP_STATISTICS_CONF: 145 UINT counters after
    /// SkillGroupID, fixed part 596 bytes at every served version
    /// (docs/protocol.md §12.8 #6, §13).
    pub struct QuerySkillGroupStatisticsConf = msg::QUERY_SKILL_GROUP_STATISTICS_CONF, since 13 {
        invoke_id: u32,
        peripheral_id: u32,
        skill_group_number: u32,
        skill_group_id: u32,
        /// Named by [`SKILL_GROUP_STATISTICS_COUNTERS`](crate::proto::msg::SKILL_GROUP_STATISTICS_COUNTERS).
        statistics: SkillGroupStatistics,
    }
    floating {}
}

message! {
    /// SET_APP_DATA_REQ: call variables for the routing script of an
    /// application path.
    pub struct SetAppDataReq = msg::SET_APP_DATA_REQ, since 13 {
        invoke_id: u32,
    }
    floating {
        application_path_id: Opt<i32> = APP_PATH_ID,
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
        /// FltCallTypeID.
        call_type_id: Opt<u32> = CALL_TYPE_ID @ 14,
        pre_call_invoke_id: Opt<u32> = PRE_CALL_INVOKE_ID @ 14,
    }
}

message! {
    /// SET_APP_DATA_CONF.
    pub struct SetAppDataConf = msg::SET_APP_DATA_CONF, since 13 {
        invoke_id: u32,
    }
    floating {}
}

message! {
    /// AGENT_DESK_SETTINGS_REQ: an agent's desk settings.
    pub struct AgentDeskSettingsReq = msg::AGENT_DESK_SETTINGS_REQ, since 13 {
        invoke_id: u32,
        peripheral_id: u32,
    }
    floating {
        agent_id: Opt<CtiString> = AGENT_ID,
    }
}

message! {
    /// AGENT_DESK_SETTINGS_CONF: fourteen UINT settings.
    pub struct AgentDeskSettingsConf = msg::AGENT_DESK_SETTINGS_CONF, since 13 {
        invoke_id: u32,
        peripheral_id: u32,
        /// Bit mask (0x0001 available after incoming … 0x2000 agent can select group).
        desk_settings_mask: u32,
        /// 0 required, 1 optional, 2 not allowed, 3 required with data.
        wrapup_data_incoming_mode: u32,
        wrapup_data_outgoing_mode: u32,
        logout_non_activity_time: u32,
        quality_recording_rate: u32,
        ring_no_answer_time: u32,
        silent_monitor_warning_message: u32,
        silent_monitor_audible_indication: u32,
        supervisor_assist_call_method: u32,
        emergency_call_method: u32,
        auto_record_on_emergency: u32,
        recording_mode: u32,
        work_mode_timer: u32,
        ring_no_answer_dn: u32,
    }
    floating {
        default_device_port_address: Opt<CtiString> = DEFAULT_DEVICE_PORT_ADDRESS,
        /// Tags above 255: from v20 (the sources state no version).
        play_zip_tone: Opt<u32> = PLAY_ZIP_TONE @ 20,
        acd_shared_line_usage: Opt<u32> = ACD_SHARED_LINE_USAGE @ 20,
    }
}

message! {
    /// START_RECORDING_REQ: start recording a call's media. A client sends it
    /// to the CTI Server, which forwards it to a recording server application
    /// with the client's ClientID and ClientAddress added.
    pub struct StartRecordingReq = msg::START_RECORDING_REQ, since 13 {
        invoke_id: u32,
        peripheral_id: u32,
        connection_call_id: u32,
        /// The media port.
        client_port: u32,
        bit_rate: u32,
        /// Milliseconds.
        packet_size: u32,
        connection_device_id_type: u16,
        /// 0 in, 1 out, 2 both.
        direction: u16,
        /// 0 audio, 1 video, 2 data.
        rtp_type: u16,
        echo_cancellation: u16,
        payload_type: u16,
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
    /// START_RECORDING_CONF: ClientID and ClientAddress name the recording
    /// server; SessionID 0xFFFFFFFF means the STOP must go to that server.
    pub struct StartRecordingConf = msg::START_RECORDING_CONF, since 13 {
        invoke_id: u32,
        session_id: u32,
        server_data: u32,
    }
    floating {
        client_id: Opt<CtiString> = CLIENT_ID,
        client_address: Opt<CtiString> = CLIENT_ADDRESS,
        client_address_ipv6: Opt<Unspec> = CLIENT_ADDRESS_IPV6 @ 14..=18,
    }
}

message! {
    /// STOP_RECORDING_REQ: SessionID and ServerData as START_RECORDING_CONF gave them.
    pub struct StopRecordingReq = msg::STOP_RECORDING_REQ, since 13 {
        invoke_id: u32,
        peripheral_id: u32,
        connection_call_id: u32,
        client_port: u32,
        session_id: u32,
        server_data: u32,
        connection_device_id_type: u16,
        direction: u16,
    }
    floating {
        connection_device_id: Opt<CtiString> = CONNECTION_DEVID,
        client_id: Opt<CtiString> = CLIENT_ID,
        client_address: Opt<CtiString> = CLIENT_ADDRESS,
        agent_extension: Opt<CtiString> = AGENT_EXTENSION,
        agent_id: Opt<CtiString> = AGENT_ID,
        agent_instrument: Opt<CtiString> = AGENT_INSTRUMENT,
    }
}

message! {
    /// STOP_RECORDING_CONF: InvokeID, and on the way to the client the
    /// recording server's ClientID and ClientAddress.
    pub struct StopRecordingConf = msg::STOP_RECORDING_CONF, since 13 {
        invoke_id: u32,
    }
    floating {
        client_id: Opt<CtiString> = CLIENT_ID,
        client_address: Opt<CtiString> = CLIENT_ADDRESS,
    }
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
