//! Message builders shared by every flow: the constants and call identity all
//! events use, the events any call can have (BEGIN_CALL, hold, connection
//! cleared, cleared, END_CALL), AGENT_STATE_EVENT and SYSTEM_EVENT. Every call
//! and agent event carries MonitorID 0, the configured PeripheralID and
//! PeripheralType 17 (enterprise agent); list counts are synced by the
//! builders. The inbound-call and consult builders live in `inbound` and
//! `consult` and are re-exported here.

pub use super::consult::*;
pub use super::inbound::*;
use super::world::{Agent, Call, World};
use crate::proto::constants::{
    agent_state, connection_type, device_type, lcs, peripheral_type, system_event,
};
use crate::proto::group::SkillGroup;
use crate::proto::msg::*;
use crate::proto::{CtiString, Message, MessageBody};

pub const PT: u16 = peripheral_type::ENTERPRISE_AGENT;
/// ConnectionDeviceIDType of every simulated call.
pub const CALL_ID_TYPE: u16 = connection_type::DYNAMIC;
/// NULL_SERVICE / NULL_SKILL_GROUP (docs/protocol.md §5.16).
pub const NULL_ID: u32 = 0xFFFF_FFFF;
/// LineHandle / LineType when unknown.
pub const LINE_NONE: u16 = 0xFFFF;
/// LineType values (docs/protocol.md §5.15).
pub const LINE_INBOUND_ACD: u16 = 0;
pub const LINE_INSIDE: u16 = 2;
/// MRDID of the voice media routing domain.
const MRD_VOICE: i32 = 1;
/// ICM day number of simulated day 0 (RouterCallKeyDay).
pub const ROUTER_DAY_0: u32 = 153_000;
/// ICMCentralControllerTime of simulated time 0: 2024-01-01T00:00:00Z, on a half hour.
pub const EPOCH_SECS: u32 = 1_704_067_200;

/// CallType values (docs/protocol.md §5.14).
pub mod call_type {
    pub const PREROUTE_ACD_IN: u16 = 2;
    pub const CONSULT: u16 = 12;
}

/// EventCause values beyond the codec's list (docs/protocol.md §5.13).
pub mod cause {
    pub use crate::proto::constants::cause::*;
    pub const CONSULT: u16 = 51;
    pub const MAX_QUEUE_EXCEEDED: u16 = 62;
    /// CECX_ABAND_LOCAL_QUEUE: the caller hung up while queued.
    pub const ABAND_LOCAL_QUEUE: u16 = 1002;
}

/// Direction values of AGENT_STATE_EVENT (docs/protocol.md §4.6).
pub mod direction {
    pub const IN: u32 = 1;
    pub const OTHER_IN: u32 = 3;
    pub const OTHER_OUT: u32 = 4;
}

/// A call as events name it: ConnectionCallID + the DYNAMIC type + ConnectionDeviceID.
#[derive(Debug, Clone, Copy)]
pub struct CallRef<'a> {
    pub id: u32,
    pub dev: &'a CtiString,
}

impl Call {
    /// The call's identity: an inbound call is named by its trunk, a call an
    /// agent placed by the agent's instrument.
    pub fn primary<'a>(&self, world: &'a World) -> CallRef<'a> {
        let dev = match world.agents.get(self.placed_by as usize) {
            Some(agent) => &agent.ext,
            None => &world.trunks[self.trunk as usize].dev,
        };
        CallRef { id: self.id, dev }
    }

    /// The consult call's identity: it was placed from the first agent's instrument.
    pub fn consult<'a>(&self, world: &'a World) -> CallRef<'a> {
        CallRef {
            id: self.consult_id,
            dev: &world.agents[self.agent as usize].ext,
        }
    }
}

pub fn some(s: &CtiString) -> Option<CtiString> {
    Some(s.clone())
}

pub fn done(mut m: Message) -> Message {
    m.sync_counts();
    m
}

/// BEGIN_CALL_EVENT. The inbound call carries ANI, DNIS and its router call key.
pub fn begin_call(
    pid: u32,
    c: CallRef<'_>,
    kind: u16,
    inbound: Option<(&World, &Call)>,
    day: u32,
) -> Message {
    let mut m = BeginCallEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        call_type: kind,
        connection_device_id_type: CALL_ID_TYPE,
        connection_call_id: c.id,
        connection_device_id: some(c.dev),
        ..Default::default()
    };
    if let Some((world, call)) = inbound {
        m.ani = some(&call.ani);
        m.dnis = some(&world.groups[call.group as usize].route_point);
        m.router_call_key_day = Some(ROUTER_DAY_0 + day);
        m.router_call_key_call_id = Some(call.serial);
    }
    Message::from(m)
}

/// CALL_HELD_EVENT: `agent` put the call on hold.
pub fn held(pid: u32, c: CallRef<'_>, agent: &Agent) -> Message {
    Message::from(CallHeldEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        connection_device_id_type: CALL_ID_TYPE,
        connection_call_id: c.id,
        holding_device_type: device_type::DEVICE_IDENTIFIER,
        local_connection_state: lcs::HOLD,
        event_cause: cause::NONE,
        connection_device_id: some(c.dev),
        holding_device_id: some(&agent.ext),
        ..Default::default()
    })
}

/// CALL_RETRIEVED_EVENT: `agent` took the call off hold.
pub fn retrieved(pid: u32, c: CallRef<'_>, agent: &Agent) -> Message {
    Message::from(CallRetrievedEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        connection_device_id_type: CALL_ID_TYPE,
        connection_call_id: c.id,
        retrieving_device_type: device_type::DEVICE_IDENTIFIER,
        local_connection_state: lcs::CONNECT,
        event_cause: cause::NONE,
        connection_device_id: some(c.dev),
        retrieving_device_id: some(&agent.ext),
        ..Default::default()
    })
}

/// CALL_CONNECTION_CLEARED_EVENT: the device `(kind, dev)` left the call.
pub fn connection_cleared(
    pid: u32,
    c: CallRef<'_>,
    kind: u16,
    dev: &CtiString,
    why: u16,
) -> Message {
    Message::from(CallConnectionClearedEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        connection_device_id_type: CALL_ID_TYPE,
        connection_call_id: c.id,
        releasing_device_type: kind,
        local_connection_state: lcs::NULL,
        event_cause: why,
        connection_device_id: some(c.dev),
        releasing_device_id: some(dev),
        ..Default::default()
    })
}

/// CALL_CLEARED_EVENT: the call is over.
pub fn cleared(pid: u32, c: CallRef<'_>, why: u16) -> Message {
    Message::from(CallClearedEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        connection_device_id_type: CALL_ID_TYPE,
        connection_call_id: c.id,
        local_connection_state: lcs::NULL,
        event_cause: why,
        connection_device_id: some(c.dev),
        ..Default::default()
    })
}

/// END_CALL_EVENT: the last event of the call.
pub fn end_call(pid: u32, c: CallRef<'_>) -> Message {
    Message::from(EndCallEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        connection_device_id_type: CALL_ID_TYPE,
        connection_call_id: c.id,
        connection_device_id: some(c.dev),
        ..Default::default()
    })
}

/// AGENT_STATE_EVENT of agent `a` entering `state`.
pub fn agent_state(
    pid: u32,
    world: &World,
    a: u32,
    state: u16,
    reason: u16,
    dir: Option<u32>,
) -> Message {
    use agent_state::*;
    let agent = &world.agents[a as usize];
    let primary = &world.groups[agent.groups[0] as usize];
    let on_task = matches!(
        state,
        RESERVED | TALKING | HOLD | WORK_READY | WORK_NOT_READY
    );
    let mut m = AgentStateEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        skill_group_state: state,
        skill_group_number: primary.number,
        skill_group_id: primary.id,
        agent_state: state,
        event_reason_code: reason,
        mrd_id: MRD_VOICE,
        num_tasks: on_task as u32,
        agent_mode: 1,
        max_task_limit: 1,
        icm_agent_id: agent.icm_id,
        agent_availability_status: (state == AVAILABLE) as u32,
        agent_id: some(&agent.id),
        agent_extension: some(&agent.ext),
        agent_instrument: some(&agent.ext),
        direction: dir,
        ..Default::default()
    };
    m.skill_groups = skill_groups(world, agent, state);
    m.sync_counts();
    Message::from(m)
}

/// The agent's skill groups, each in `state` (AGENT_STATE_EVENT,
/// QUERY_AGENT_STATE_CONF).
pub fn skill_groups(world: &World, agent: &Agent, state: u16) -> Vec<SkillGroup> {
    agent
        .groups
        .iter()
        .map(|&g| {
            let group = &world.groups[g as usize];
            SkillGroup {
                number: Some(group.number),
                id: Some(group.id),
                priority: Some(0),
                state: Some(state),
            }
        })
        .collect()
}

/// ICMCentralControllerTime at simulated second `secs`.
pub fn central_time(secs: u64) -> u32 {
    EPOCH_SECS.wrapping_add(secs as u32)
}

/// SYSTEM_EVENT SYS_HALF_HOUR_CHANGE at simulated second `secs`.
pub fn half_hour(secs: u64) -> Message {
    Message::from(SystemEvent {
        icm_central_controller_time: central_time(secs),
        system_event_id: system_event::HALF_HOUR_CHANGE,
        event_device_type: device_type::NONE,
        ..Default::default()
    })
}
