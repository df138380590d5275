//! Builders of a consult call and its end: the consulting agent goes off hook
//! (CALL_SERVICE_INITIATED), dials (CALL_ORIGINATED), the consulted agent is
//! rung and answers, and the consult call merges into the inbound call as a
//! transfer or a conference with the parties that remain.

use super::build::{
    cause, done, some, CallRef, CALL_ID_TYPE, LINE_INBOUND_ACD, LINE_INSIDE, NULL_ID, PT,
};
use super::world::{Agent, Call, World};
use crate::proto::constants::{device_type, lcs};
use crate::proto::group::Party;
use crate::proto::msg::*;
use crate::proto::{CtiString, Message};

/// CALL_SERVICE_INITIATED_EVENT: `agent` went off hook for a consult call.
pub fn consult_initiated(pid: u32, c: CallRef<'_>, agent: &Agent) -> Message {
    Message::from(CallServiceInitiatedEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        connection_device_id_type: CALL_ID_TYPE,
        connection_call_id: c.id,
        line_handle: 1,
        line_type: LINE_INSIDE,
        service_number: NULL_ID,
        service_id: NULL_ID,
        skill_group_number: NULL_ID,
        skill_group_id: NULL_ID,
        calling_device_type: device_type::DEVICE_IDENTIFIER,
        local_connection_state: lcs::INITIATE,
        event_cause: cause::CONSULT,
        connection_device_id: some(c.dev),
        calling_device_id: some(&agent.ext),
        ..Default::default()
    })
}

/// CALL_ORIGINATED_EVENT: the consult call from `from` dialed `to`.
pub fn consult_originated(pid: u32, c: CallRef<'_>, from: &Agent, to: &Agent) -> Message {
    Message::from(CallOriginatedEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        connection_device_id_type: CALL_ID_TYPE,
        connection_call_id: c.id,
        line_handle: 1,
        line_type: LINE_INSIDE,
        service_number: NULL_ID,
        service_id: NULL_ID,
        skill_group_number: NULL_ID,
        skill_group_id: NULL_ID,
        calling_device_type: device_type::DEVICE_IDENTIFIER,
        called_device_type: device_type::DEVICE_IDENTIFIER,
        local_connection_state: lcs::CONNECT,
        event_cause: cause::CONSULT,
        connection_device_id: some(c.dev),
        calling_device_id: some(&from.ext),
        called_device_id: some(&to.ext),
        ..Default::default()
    })
}

/// CALL_DELIVERED_EVENT of the consult call at the consulted agent.
pub fn consult_offered(pid: u32, world: &World, c: CallRef<'_>, from: u32, to: u32) -> Message {
    let (from, to) = (&world.agents[from as usize], &world.agents[to as usize]);
    let group = &world.groups[to.groups[0] as usize];
    Message::from(CallDeliveredEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        connection_device_id_type: CALL_ID_TYPE,
        connection_call_id: c.id,
        line_handle: 0,
        line_type: LINE_INSIDE,
        service_number: NULL_ID,
        service_id: NULL_ID,
        skill_group_number: group.number,
        skill_group_id: group.id,
        alerting_device_type: device_type::DEVICE_IDENTIFIER,
        calling_device_type: device_type::DEVICE_IDENTIFIER,
        called_device_type: device_type::DEVICE_IDENTIFIER,
        last_redirect_device_type: device_type::NONE,
        local_connection_state: lcs::ALERTING,
        event_cause: cause::CONSULT,
        connection_device_id: some(c.dev),
        alerting_device_id: some(&to.ext),
        calling_device_id: some(&from.ext),
        called_device_id: some(&to.ext),
        ..Default::default()
    })
}

/// CALL_ESTABLISHED_EVENT of the consult call: the consulted agent answered.
pub fn consult_answered(pid: u32, world: &World, c: CallRef<'_>, from: u32, to: u32) -> Message {
    let (from, to) = (&world.agents[from as usize], &world.agents[to as usize]);
    let group = &world.groups[to.groups[0] as usize];
    Message::from(CallEstablishedEvent {
        peripheral_id: pid,
        peripheral_type: PT,
        connection_device_id_type: CALL_ID_TYPE,
        connection_call_id: c.id,
        line_handle: 0,
        line_type: LINE_INSIDE,
        service_number: NULL_ID,
        service_id: NULL_ID,
        skill_group_number: group.number,
        skill_group_id: group.id,
        answering_device_type: device_type::DEVICE_IDENTIFIER,
        calling_device_type: device_type::DEVICE_IDENTIFIER,
        called_device_type: device_type::DEVICE_IDENTIFIER,
        last_redirect_device_type: device_type::NONE,
        local_connection_state: lcs::CONNECT,
        event_cause: cause::CONSULT,
        connection_device_id: some(c.dev),
        answering_device_id: some(&to.ext),
        calling_device_id: some(&from.ext),
        called_device_id: some(&to.ext),
        ..Default::default()
    })
}

fn party(c: CallRef<'_>, dev: &CtiString) -> Party {
    Party {
        call_id: Some(c.id),
        device_id_type: Some(CALL_ID_TYPE),
        device_id: Some(dev.clone()),
    }
}

/// CALL_TRANSFERRED_EVENT (`true`) or CALL_CONFERENCED_EVENT (`false`): the consult
/// call merges into the inbound call. Parties: the trunk, the consulted agent,
/// and for a conference the controlling agent.
pub fn merged(pid: u32, world: &World, call: &Call, transfer: bool) -> Message {
    let (p, s) = (call.primary(world), call.consult(world));
    let from = &world.agents[call.agent as usize];
    let to = &world.agents[call.other as usize];
    let group = &world.groups[call.group as usize];
    let mut parties = vec![party(p, p.dev)];
    if !transfer {
        parties.push(party(p, &from.ext));
    }
    parties.push(party(p, &to.ext));
    let m = if transfer {
        Message::from(CallTransferredEvent {
            peripheral_id: pid,
            peripheral_type: PT,
            primary_device_id_type: CALL_ID_TYPE,
            primary_call_id: p.id,
            line_handle: 0,
            line_type: LINE_INBOUND_ACD,
            skill_group_number: group.number,
            skill_group_id: group.id,
            secondary_device_id_type: CALL_ID_TYPE,
            secondary_call_id: s.id,
            transferring_device_type: device_type::DEVICE_IDENTIFIER,
            transferred_device_type: device_type::DEVICE_IDENTIFIER,
            local_connection_state: lcs::CONNECT,
            event_cause: cause::TRANSFER,
            primary_device_id: some(p.dev),
            secondary_device_id: some(s.dev),
            transferring_device_id: some(&from.ext),
            transferred_device_id: some(&to.ext),
            parties,
            ..Default::default()
        })
    } else {
        Message::from(CallConferencedEvent {
            peripheral_id: pid,
            peripheral_type: PT,
            primary_device_id_type: CALL_ID_TYPE,
            primary_call_id: p.id,
            line_handle: 0,
            line_type: LINE_INBOUND_ACD,
            skill_group_number: group.number,
            skill_group_id: group.id,
            secondary_device_id_type: CALL_ID_TYPE,
            secondary_call_id: s.id,
            controller_device_type: device_type::DEVICE_IDENTIFIER,
            added_party_device_type: device_type::DEVICE_IDENTIFIER,
            local_connection_state: lcs::CONNECT,
            event_cause: cause::KEY_CONFERENCE,
            primary_device_id: some(p.dev),
            secondary_device_id: some(s.dev),
            controller_device_id: some(&from.ext),
            added_party_device_id: some(&to.ext),
            parties,
            ..Default::default()
        })
    };
    done(m)
}
