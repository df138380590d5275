//! Builders of the inbound call's own events: trunk seizure, call data,
//! queueing, offering to the agent and answering. The ANI, DNIS, call
//! variables and ECC variables come from the call record.

use super::build::{
    call_type, cause, done, some, CALL_ID_TYPE, LINE_INBOUND_ACD, LINE_NONE, NULL_ID, PT,
    ROUTER_DAY_0,
};
use super::world::{Call, Group, World};
use crate::proto::constants::{device_type, lcs};
use crate::proto::group::SkillGroup;
use crate::proto::msg::*;
use crate::proto::{Message, NamedVar};

fn named_vars(world: &World, call: &Call) -> Vec<NamedVar> {
    let c = &world.catalog;
    let mut vars = vec![NamedVar {
        name: c.var_account.clone(),
        value: call.account.clone(),
    }];
    if call.named_intent {
        vars.push(NamedVar {
            name: c.var_intent.clone(),
            value: c.intents[call.intent as usize].clone(),
        });
    }
    vars
}

fn group_list(group: &Group) -> Vec<SkillGroup> {
    vec![SkillGroup {
        number: Some(group.number),
        id: Some(group.id),
        priority: Some(0),
        state: None,
    }]
}

/// CALL_DELIVERED_EVENT at the trunk, LCS_INITIATE: the call seized an inbound trunk.
pub fn trunk_seized(pid: u32, world: &World, call: &Call) -> Message {
    let trunk = &world.trunks[call.trunk as usize];
    let group = &world.groups[call.group as usize];
    Message::from(CallDeliveredEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        connection_device_id_type: CALL_ID_TYPE,
        connection_call_id: call.id,
        line_handle: LINE_NONE,
        line_type: LINE_NONE,
        service_number: NULL_ID,
        service_id: NULL_ID,
        skill_group_number: NULL_ID,
        skill_group_id: NULL_ID,
        alerting_device_type: device_type::TRUNK,
        calling_device_type: device_type::EXTERNAL,
        called_device_type: device_type::ROUTE_POINT,
        last_redirect_device_type: device_type::NONE,
        local_connection_state: lcs::INITIATE,
        event_cause: cause::NONE,
        connection_device_id: some(&trunk.dev),
        alerting_device_id: some(&trunk.dev),
        calling_device_id: some(&call.ani),
        called_device_id: some(&group.route_point),
        trunk_number: Some(trunk.number),
        trunk_group_number: Some(trunk.group_number),
        ani: some(&call.ani),
        dnis: some(&group.route_point),
        ..Default::default()
    })
}

/// CALL_DATA_UPDATE_EVENT with the IVR's data: ANI, DNIS, call and ECC variables.
pub fn call_data(pid: u32, world: &World, call: &Call, day: u32) -> Message {
    let c = call.primary(world);
    let cat = &world.catalog;
    done(Message::from(CallDataUpdateEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        call_type: call_type::PREROUTE_ACD_IN,
        connection_device_id_type: CALL_ID_TYPE,
        connection_call_id: c.id,
        new_connection_device_id_type: CALL_ID_TYPE,
        new_connection_call_id: c.id,
        connection_device_id: some(c.dev),
        new_connection_device_id: some(c.dev),
        ani: some(&call.ani),
        dnis: some(&world.groups[call.group as usize].route_point),
        router_call_key_day: Some(ROUTER_DAY_0 + day),
        router_call_key_call_id: Some(call.serial),
        call_variable_1: some(&call.account),
        call_variable_2: some(&cat.languages[call.language as usize]),
        call_variable_3: some(&cat.intents[call.intent as usize]),
        call_variable_4: some(&cat.tiers[call.tier as usize]),
        named_variables: named_vars(world, call),
        ..Default::default()
    }))
}

/// CALL_QUEUED_EVENT to the call's skill group.
pub fn queued(pid: u32, world: &World, call: &Call, num_queued: usize) -> Message {
    let c = call.primary(world);
    let group = &world.groups[call.group as usize];
    done(Message::from(CallQueuedEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        connection_device_id_type: CALL_ID_TYPE,
        connection_call_id: c.id,
        service_number: NULL_ID,
        service_id: NULL_ID,
        queue_device_type: device_type::NONE,
        calling_device_type: device_type::EXTERNAL,
        called_device_type: device_type::ROUTE_POINT,
        last_redirect_device_type: device_type::NONE,
        num_queued: num_queued.min(u16::MAX as usize) as u16,
        local_connection_state: lcs::QUEUED,
        event_cause: cause::NONE,
        connection_device_id: some(c.dev),
        calling_device_id: some(&call.ani),
        called_device_id: some(&group.route_point),
        skill_groups: group_list(group),
        ..Default::default()
    }))
}

/// CALL_DEQUEUED_EVENT: removed from all queues (routed or abandoned).
pub fn dequeued(pid: u32, world: &World, call: &Call, num_queued: usize) -> Message {
    let c = call.primary(world);
    Message::from(CallDequeuedEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        connection_device_id_type: CALL_ID_TYPE,
        connection_call_id: c.id,
        queue_device_type: device_type::NONE,
        service_number: NULL_ID,
        service_id: NULL_ID,
        num_queued: num_queued.min(u16::MAX as usize) as u16,
        local_connection_state: lcs::CONNECT,
        event_cause: cause::NONE,
        connection_device_id: some(c.dev),
        ..Default::default()
    })
}

/// CALL_DELIVERED_EVENT at the agent, LCS_ALERTING, redirected from the route point.
pub fn offered(pid: u32, world: &World, call: &Call) -> Message {
    let c = call.primary(world);
    let agent = &world.agents[call.agent as usize];
    let group = &world.groups[call.group as usize];
    let trunk = &world.trunks[call.trunk as usize];
    let cat = &world.catalog;
    done(Message::from(CallDeliveredEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        connection_device_id_type: CALL_ID_TYPE,
        connection_call_id: c.id,
        line_handle: 0,
        line_type: LINE_INBOUND_ACD,
        service_number: NULL_ID,
        service_id: NULL_ID,
        skill_group_number: group.number,
        skill_group_id: group.id,
        alerting_device_type: device_type::DEVICE_IDENTIFIER,
        calling_device_type: device_type::EXTERNAL,
        called_device_type: device_type::DEVICE_IDENTIFIER,
        last_redirect_device_type: device_type::ROUTE_POINT,
        local_connection_state: lcs::ALERTING,
        event_cause: cause::NONE,
        connection_device_id: some(c.dev),
        alerting_device_id: some(&agent.ext),
        calling_device_id: some(&call.ani),
        called_device_id: some(&agent.ext),
        last_redirect_device_id: some(&group.route_point),
        trunk_number: Some(trunk.number),
        trunk_group_number: Some(trunk.group_number),
        ani: some(&call.ani),
        dnis: some(&group.route_point),
        call_variable_1: some(&call.account),
        call_variable_2: some(&cat.languages[call.language as usize]),
        named_variables: named_vars(world, call),
        ..Default::default()
    }))
}

/// CALL_ESTABLISHED_EVENT: the agent answered the inbound call.
pub fn answered(pid: u32, world: &World, call: &Call) -> Message {
    let c = call.primary(world);
    let agent = &world.agents[call.agent as usize];
    let group = &world.groups[call.group as usize];
    let trunk = &world.trunks[call.trunk as usize];
    Message::from(CallEstablishedEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        connection_device_id_type: CALL_ID_TYPE,
        connection_call_id: c.id,
        line_handle: 0,
        line_type: LINE_INBOUND_ACD,
        service_number: NULL_ID,
        service_id: NULL_ID,
        skill_group_number: group.number,
        skill_group_id: group.id,
        answering_device_type: device_type::DEVICE_IDENTIFIER,
        calling_device_type: device_type::EXTERNAL,
        called_device_type: device_type::DEVICE_IDENTIFIER,
        last_redirect_device_type: device_type::ROUTE_POINT,
        local_connection_state: lcs::CONNECT,
        event_cause: cause::NONE,
        connection_device_id: some(c.dev),
        answering_device_id: some(&agent.ext),
        calling_device_id: some(&call.ani),
        called_device_id: some(&agent.ext),
        last_redirect_device_id: some(&group.route_point),
        trunk_number: Some(trunk.number),
        trunk_group_number: Some(trunk.group_number),
        ..Default::default()
    })
}
