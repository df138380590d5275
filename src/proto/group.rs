//! Repeated groups of floating fields (CTI client signatures, conference
//! parties, skill groups, team members, peripherals, device lines, and the
//! devices and calls of the snapshots) and the shared helper that writes one
//! floating field. No I/O here.

use super::values::{CtiString, FloatValue};
use super::version::Version;
use super::wire::put_field_header;

/// What the message macro needs of a group type (implemented by `group!`).
pub trait GroupFields: Sized {
    /// Whether `tag` is one of the group's members.
    fn accepts(tag: u16) -> bool;
    /// Add a decoded member to the list (starting a new entry when needed).
    fn take(list: &mut Vec<Self>, tag: u16, data: &[u8]) -> Result<(), super::error::Invalid>;
    /// Append the entry's present members in declaration order.
    fn encode(&self, version: Version, out: &mut Vec<u8>);
    /// Visit the entry's present members.
    fn visit(&self, visit: &mut dyn FnMut(super::Field<'_>));
}

/// Writes one floating field, or nothing when `version` cannot carry it.
#[inline]
pub fn put_float<T: FloatValue>(out: &mut Vec<u8>, version: Version, tag: u16, value: &T) {
    if put_field_header(out, version, tag, value.data_len()) {
        value.write(out);
    }
}

group! {
    /// CTIClientSignature + CTIClientTimestamp (BEGIN_CALL, CALL_DATA_UPDATE).
    pub struct CtiClient {
        signature: CtiString = CTI_CLIENT_SIGNATURE,
        timestamp: u32 = CTI_CLIENT_TIMESTAMP,
    }
}

group! {
    /// A party of a conference or transfer (CALL_CONFERENCED/TRANSFERRED).
    pub struct Party {
        call_id: u32 = PARTY_CALLID,
        device_id_type: u16 = PARTY_DEVID_TYPE,
        device_id: CtiString = PARTY_DEVID,
    }
}

group! {
    /// A skill group of CALL_QUEUED / CALL_DEQUEUED / QUERY_AGENT_STATE_CONF
    /// and the floating skill groups of AGENT_STATE_EVENT (with state).
    pub struct SkillGroup {
        number: u32 = SKILL_GROUP_NUMBER,
        id: u32 = SKILL_GROUP_ID,
        priority: u16 = SKILL_GROUP_PRIORITY,
        state: u16 = SKILL_GROUP_STATE,
    }
}

group! {
    /// A team member of AGENT_TEAM_CONFIG_EVENT.
    pub struct TeamMember {
        agent_id: CtiString = ATC_AGENT_ID,
        flags: u16 = AGENT_FLAGS,
        state: u16 = ATC_AGENT_STATE,
        state_duration: u32 = ATC_STATE_DURATION,
    }
}

group! {
    /// A peripheral of OPEN_CONF (v14+): FltPeripheralID + MultilineAgentControl.
    pub struct PeripheralEntry {
        peripheral_id: u32 = PERIPHERAL_ID,
        multiline_agent_control: u16 = MULTI_LINE_AGENT_CONTROL,
    }
}

group! {
    /// A skill group named in SET_AGENT_STATE_REQ: SkillGroupNumber (INT here)
    /// and SkillGroupPriority (docs/protocol.md §12.2).
    pub struct AgentSkillGroup {
        number: i32 = SKILL_GROUP_NUMBER,
        priority: u16 = SKILL_GROUP_PRIORITY,
    }
}

group! {
    /// A line of QUERY_DEVICE_INFO_CONF: LineHandle + LineType.
    pub struct DeviceLine {
        line_handle: u16 = LINE_HANDLE,
        line_type: u16 = LINE_TYPE,
    }
}

group! {
    /// A device of a call in SNAPSHOT_CALL_CONF: its connection and its state.
    pub struct CallDevice {
        connection_call_id: u32 = CALL_CONN_CALLID,
        connection_device_id_type: u16 = CALL_CONN_DEVID_TYPE,
        connection_device_id: CtiString = CALL_CONN_DEVID,
        device_type: u16 = CALL_DEVID_TYPE,
        device_id: CtiString = CALL_DEVID,
        connection_state: u16 = CALL_DEV_CONN_STATE,
    }
}

group! {
    /// A call of SNAPSHOT_DEVICE_CONF: its connection, state and silent-monitor status.
    pub struct DeviceCall {
        connection_call_id: u32 = CALL_CONN_CALLID,
        connection_device_id_type: u16 = CALL_CONN_DEVID_TYPE,
        connection_device_id: CtiString = CALL_CONN_DEVID,
        call_state: u16 = CALL_STATE,
        silent_monitor_status: u16 = SILENT_MONITOR_STATUS,
    }
}
