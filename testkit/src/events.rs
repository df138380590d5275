//! Event builders for a fake PG: what a CTI Server sends, with MonitorID 0,
//! PeripheralID [`PID`] and PeripheralType [`PT`], calls named as
//! ConnectionCallID + DYNAMIC + ConnectionDeviceID ([`CallRef`]).

use ctirouter::proto::constants::connection_type;
use ctirouter::proto::group::Party;
use ctirouter::proto::msg::*;
use ctirouter::proto::CtiString;

use crate::{PID, PT};

/// A call as events name it: ConnectionCallID, DYNAMIC, ConnectionDeviceID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallRef {
    pub id: u32,
    pub dev: &'static str,
}

pub const fn call(id: u32, dev: &'static str) -> CallRef {
    CallRef { id, dev }
}

fn s(x: &str) -> Option<CtiString> {
    Some(CtiString::from(x))
}

fn so(x: Option<&str>) -> Option<CtiString> {
    x.map(CtiString::from)
}

pub fn agent_fields<'a>(
    id: Option<&'a str>,
    ext: Option<&'a str>,
    instr: Option<&'a str>,
) -> (Option<&'a str>, Option<&'a str>, Option<&'a str>) {
    (id, ext, instr)
}

pub fn delivered(
    c: CallRef,
    alerting: &str,
    calling: &str,
    called: &str,
    trunk: Option<(u32, u32)>,
) -> CallDeliveredEvent {
    CallDeliveredEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        line_handle: 0xFFFF,
        line_type: 0xFFFF,
        connection_device_id: s(c.dev),
        alerting_device_id: s(alerting),
        calling_device_id: s(calling),
        called_device_id: s(called),
        trunk_number: trunk.map(|t| t.0),
        trunk_group_number: trunk.map(|t| t.1),
        ..Default::default()
    }
}

pub fn established(c: CallRef, answering: &str, calling: &str) -> CallEstablishedEvent {
    CallEstablishedEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        connection_device_id: s(c.dev),
        answering_device_id: s(answering),
        calling_device_id: s(calling),
        called_device_id: s(answering),
        ..Default::default()
    }
}

/// CALL_HELD naming only the call (and the holding device when given).
pub fn held(c: CallRef, holding: Option<&str>) -> CallHeldEvent {
    CallHeldEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        connection_device_id: s(c.dev),
        holding_device_id: so(holding),
        ..Default::default()
    }
}

pub fn retrieved(c: CallRef, retrieving: Option<&str>) -> CallRetrievedEvent {
    CallRetrievedEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        connection_device_id: s(c.dev),
        retrieving_device_id: so(retrieving),
        ..Default::default()
    }
}

pub fn conn_cleared(c: CallRef, releasing: Option<&str>) -> CallConnectionClearedEvent {
    CallConnectionClearedEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        connection_device_id: s(c.dev),
        releasing_device_id: so(releasing),
        ..Default::default()
    }
}

pub fn cleared(c: CallRef) -> CallClearedEvent {
    CallClearedEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        connection_device_id: s(c.dev),
        ..Default::default()
    }
}

pub fn end_call(c: CallRef) -> EndCallEvent {
    EndCallEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        connection_device_id: s(c.dev),
        ..Default::default()
    }
}

/// CALL_DATA_UPDATE naming only the call (new call = the same call).
pub fn data_update(c: CallRef) -> CallDataUpdateEvent {
    CallDataUpdateEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        new_connection_device_id_type: connection_type::DYNAMIC,
        new_connection_call_id: c.id,
        connection_device_id: s(c.dev),
        new_connection_device_id: s(c.dev),
        ..Default::default()
    }
}

/// CALL_SERVICE_INITIATED of a consult call placed from `calling`.
pub fn service_initiated(c: CallRef, calling: &str) -> CallServiceInitiatedEvent {
    CallServiceInitiatedEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        connection_device_id_type: connection_type::DYNAMIC,
        connection_call_id: c.id,
        connection_device_id: s(c.dev),
        calling_device_id: s(calling),
        ..Default::default()
    }
}

fn parties(primary: CallRef, devs: &[&str]) -> Vec<Party> {
    devs.iter()
        .map(|d| Party {
            call_id: Some(primary.id),
            device_id_type: Some(connection_type::DYNAMIC),
            device_id: s(d),
        })
        .collect()
}

pub fn conferenced(
    primary: CallRef,
    secondary: CallRef,
    controller: &str,
    added: &str,
    party_devs: &[&str],
) -> CallConferencedEvent {
    CallConferencedEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        primary_device_id_type: connection_type::DYNAMIC,
        primary_call_id: primary.id,
        secondary_device_id_type: connection_type::DYNAMIC,
        secondary_call_id: secondary.id,
        num_parties: party_devs.len() as u16,
        primary_device_id: s(primary.dev),
        secondary_device_id: s(secondary.dev),
        controller_device_id: s(controller),
        added_party_device_id: s(added),
        parties: parties(primary, party_devs),
        ..Default::default()
    }
}

pub fn transferred(
    primary: CallRef,
    secondary: CallRef,
    transferring: &str,
    transferred: &str,
    party_devs: &[&str],
) -> CallTransferredEvent {
    CallTransferredEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        primary_device_id_type: connection_type::DYNAMIC,
        primary_call_id: primary.id,
        secondary_device_id_type: connection_type::DYNAMIC,
        secondary_call_id: secondary.id,
        num_parties: party_devs.len() as u16,
        primary_device_id: s(primary.dev),
        secondary_device_id: s(secondary.dev),
        transferring_device_id: s(transferring),
        transferred_device_id: s(transferred),
        parties: parties(primary, party_devs),
        ..Default::default()
    }
}

/// AGENT_STATE_EVENT with these agent fields, state and reason code.
pub fn agent_state_ev(
    id: Option<&str>,
    ext: Option<&str>,
    instr: Option<&str>,
    state: u16,
    reason: u16,
) -> AgentStateEvent {
    AgentStateEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        skill_group_state: state,
        agent_state: state,
        event_reason_code: reason,
        agent_id: so(id),
        agent_extension: so(ext),
        agent_instrument: so(instr),
        ..Default::default()
    }
}

/// AGENT_STATE_EVENT of simulated-style agent `n` (1001 / 3001 style).
pub fn agent_ev(agent_id: &str, ext: &str, state: u16) -> AgentStateEvent {
    agent_state_ev(Some(agent_id), Some(ext), Some(ext), state, 0)
}

pub fn translation_route(dnis: &str) -> CallTranslationRouteEvent {
    CallTranslationRouteEvent {
        dnis: s(dnis),
        ani: s("5551234"),
        ..Default::default()
    }
}
