//! Agent events (docs/protocol.md §4.5–§4.6): agent state, pre-call, RTP, team
//! config, greeting. Declarations only; QUERY_AGENT_STATE is in `control.rs`.

use crate::proto::constants::msg;
use crate::proto::group::{SkillGroup, TeamMember};
use crate::proto::values::{CtiString, NamedArray, NamedVar, Unspec};

message! {
    /// AGENT_STATE_EVENT: an agent changed state (on a skill group).
    pub struct AgentStateEvent = msg::AGENT_STATE_EVENT, since 13 {
        monitor_id: u32,
        peripheral_id: u32,
        /// The Client Events session of this agent, 0 if none.
        session_id: u32,
        peripheral_type: u16,
        skill_group_state: u16,
        state_duration: u32,
        skill_group_number: u32,
        skill_group_id: u32,
        skill_group_priority: u16,
        agent_state: u16,
        event_reason_code: u16,
        mrd_id: i32,
        num_tasks: u32,
        agent_mode: u16,
        max_task_limit: u32,
        icm_agent_id: i32,
        agent_availability_status: u32,
        num_flt_skill_groups: u16,
        department_id: i32 @ 19,
    }
    floating {
        client_signature: Opt<CtiString> = CLIENT_SIGNATURE,
        agent_id: Opt<CtiString> = AGENT_ID,
        agent_extension: Opt<CtiString> = AGENT_EXTENSION,
        agent_instrument: Opt<CtiString> = AGENT_INSTRUMENT,
        duration: Opt<u32> = DURATION,
        next_agent_state: Opt<u16> = NEXT_AGENT_STATE,
        direction: Opt<u32> = DIRECTION @ 16,
        skill_groups: Group<SkillGroup> # num_flt_skill_groups,
        max_beyond_task_limit: Opt<u32> = MAX_BEYOND_TASK_LIMIT @ 22,
    }
}

message! {
    /// AGENT_PRE_CALL_EVENT: a call is about to be routed to an agent.
    pub struct AgentPreCallEvent = msg::AGENT_PRE_CALL_EVENT, since 13 {
        monitor_id: u32,
        num_named_variables: u16,
        num_named_arrays: u16,
        service_number: u32,
        service_id: u32,
        skill_group_number: u32,
        skill_group_id: u32,
        skill_group_priority: u16,
        mrd_id: i32,
        agent_skill_target_id: u32 @ 20,
    }
    floating {
        agent_instrument: Opt<CtiString> = AGENT_INSTRUMENT,
        router_call_key_day: Opt<u32> = ROUTER_CALL_KEY_DAY,
        router_call_key_call_id: Opt<u32> = ROUTER_CALL_KEY_CALLID,
        router_call_key_sequence_number: Opt<u32> = ROUTER_CALL_KEY_SEQUENCE_NUM,
        ani: Opt<CtiString> = ANI,
        user_to_user_info: Opt<Unspec> = UUI,
        dialed_number: Opt<CtiString> = DIALED_NUMBER,
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
        named_variables: List<NamedVar> = NAMED_VARIABLE # num_named_variables,
        named_arrays: List<NamedArray> = NAMED_ARRAY # num_named_arrays,
        /// Width not stated by the sources: kept as raw bytes.
        call_type_id: Opt<Unspec> = CALL_TYPE_ID,
        /// Width not stated by the sources: kept as raw bytes.
        pre_call_invoke_id: Opt<Unspec> = PRE_CALL_INVOKE_ID,
        agent_id: Opt<CtiString> = AGENT_ID @ 20,
        protocol_reference_guid: Opt<Unspec> = PROTOCOL_REFERENCE_GUID @ 24,
        num_of_enabled_services: Opt<Unspec> = NUM_OF_ENABLED_SERVICES @ 24,
        enabled_services: List<Unspec> = FLT_ENABLED_SERVICES @ 24,
        ccai_config_id: Opt<CtiString> = CCAI_CONFIG_ID @ 24,
    }
}

message! {
    /// AGENT_PRE_CALL_ABORT_EVENT.
    pub struct AgentPreCallAbortEvent = msg::AGENT_PRE_CALL_ABORT_EVENT, since 13 {
        monitor_id: u32,
        mrd_id: i32,
    }
    floating {
        agent_instrument: Opt<CtiString> = AGENT_INSTRUMENT,
        router_call_key_day: Opt<u32> = ROUTER_CALL_KEY_DAY,
        router_call_key_call_id: Opt<u32> = ROUTER_CALL_KEY_CALLID,
        router_call_key_sequence_number: Opt<u32> = ROUTER_CALL_KEY_SEQUENCE_NUM,
    }
}

message! {
    /// RTP_STARTED_EVENT: media started at an agent's phone.
    pub struct RtpStartedEvent = msg::RTP_STARTED_EVENT, since 13 {
        monitor_id: u32,
        peripheral_id: u32,
        client_port: u32,
        direction: u16,
        rtp_type: u16,
        bit_rate: u32,
        echo_cancellation: u16,
        packet_size: u32,
        payload_type: u16,
        connection_device_id_type: u16,
        connection_call_id: u32,
    }
    floating {
        connection_device_id: Opt<CtiString> = CONNECTION_DEVID,
        client_address: Opt<CtiString> = CLIENT_ADDRESS,
        agent_extension: Opt<CtiString> = AGENT_EXTENSION,
        agent_id: Opt<CtiString> = AGENT_ID,
        agent_instrument: Opt<CtiString> = AGENT_INSTRUMENT,
        sending_address: Opt<CtiString> = SENDING_ADDRESS,
        sending_port: Opt<u32> = SENDING_PORT,
        client_address_ipv6: Opt<Unspec> = CLIENT_ADDRESS_IPV6 @ 14..=18,
        sending_address_ipv6: Opt<Unspec> = SENDING_ADDRESS_IPV6 @ 14..=18,
    }
}

message! {
    /// RTP_STOPPED_EVENT.
    pub struct RtpStoppedEvent = msg::RTP_STOPPED_EVENT, since 13 {
        monitor_id: u32,
        peripheral_id: u32,
        client_port: u32,
        direction: u16,
        connection_device_id_type: u16,
        connection_call_id: u32,
    }
    floating {
        connection_device_id: Opt<CtiString> = CONNECTION_DEVID,
        client_address: Opt<CtiString> = CLIENT_ADDRESS,
        agent_id: Opt<CtiString> = AGENT_ID,
        agent_extension: Opt<CtiString> = AGENT_EXTENSION,
        agent_instrument: Opt<CtiString> = AGENT_INSTRUMENT,
        sending_address: Opt<CtiString> = SENDING_ADDRESS,
        sending_port: Opt<u32> = SENDING_PORT,
        client_address_ipv6: Opt<Unspec> = CLIENT_ADDRESS_IPV6 @ 14..=18,
        sending_address_ipv6: Opt<Unspec> = SENDING_ADDRESS_IPV6 @ 14..=18,
    }
}

message! {
    /// AGENT_TEAM_CONFIG_EVENT: a supervisor's team (no MonitorID).
    pub struct AgentTeamConfigEvent = msg::AGENT_TEAM_CONFIG_EVENT, since 13 {
        peripheral_id: u32,
        team_id: u32,
        number_of_agents: u16,
        config_operation: u16,
        department_id: i32 @ 19,
    }
    floating {
        agent_team_name: Opt<CtiString> = AGENT_TEAM_NAME @ 16,
        members: Group<TeamMember> # number_of_agents,
    }
}

message! {
    /// CALL_AGENT_GREETING_EVENT (v15+).
    pub struct CallAgentGreetingEvent = msg::CALL_AGENT_GREETING_EVENT, since 15 {
        monitor_id: u32,
        peripheral_id: u32,
        connection_device_id_type: u16,
        connection_call_id: u32,
        event_code: u16,
        peripheral_error_code: u32,
    }
    floating {
        connection_device_id: Opt<CtiString> = CONNECTION_DEVID,
        agent_id: Opt<CtiString> = AGENT_ID,
    }
}
