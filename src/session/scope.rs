//! Scope (docs/requests.md §4): a Client Events session acts only on its own
//! agent, that agent's device and the calls the device takes part in.
//! Upstream every request comes from the router's one session, which must
//! name the agent: the agent fields a request's layout carries
//! (docs/protocol.md §12.7) that are absent or empty are filled in from the
//! session's OPEN_REQ, and a PeripheralID of 0 or 0xFFFFFFFF becomes the
//! session's. No I/O here.

use smallvec::SmallVec;

use crate::ids::{InvokeId, Services};
use crate::keys::{AgentField, AgentKey, CallKey, DeviceKey};
use crate::proto::constants::{control_failure, NULL_PERIPHERAL_ID};
use crate::proto::{CtiString, Message, RequestError, Version};
use crate::session::server::{control_failure_conf, failure_conf, proxied_service, ClientInfo};
use crate::status::AgentView;

/// Why a request is out of a session's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfScope {
    /// It names another agent or device.
    OtherAgent,
    /// It names a call the agent's device is not part of.
    NotCallParty,
}

impl OutOfScope {
    /// The FAILURE_CONF status of a refused request that is not Client
    /// Control: E_CTI_INVALID_AGENT_DATA or E_CTI_NOT_CALL_PARTY.
    pub fn error(self) -> RequestError {
        match self {
            OutOfScope::OtherAgent => RequestError::InvalidAgentData,
            OutOfScope::NotCallParty => RequestError::NotCallParty,
        }
    }
}

/// Whether a session's requests are held to its own agent: a Client Events
/// session that watches nobody else (neither All Events nor Peripheral
/// Monitor, which may act on any agent device).
pub fn applies_to(services: Services) -> bool {
    services.contains(Services::CLIENT_EVENTS)
        && !services.contains(Services::ALL_EVENTS)
        && !services.contains(Services::PERIPHERAL_MONITOR)
}

/// Append the answer to a request of `message_type` out of scope
/// (docs/requests.md §4): CONTROL_FAILURE_CONF
/// CF_PRIVILEGE_VIOLATION_ON_SPECIFIED_DEVICE for Client Control, else
/// FAILURE_CONF with [`OutOfScope::error`].
pub fn refuse(
    out: &mut Vec<u8>,
    version: Version,
    invoke_id: InvokeId,
    message_type: u32,
    why: OutOfScope,
) {
    if proxied_service(message_type) == Some(Services::CLIENT_CONTROL) {
        let code = control_failure::CF_PRIVILEGE_VIOLATION_ON_SPECIFIED_DEVICE;
        control_failure_conf(out, version, invoke_id, code);
    } else {
        failure_conf(out, version, invoke_id, why.error());
    }
}

/// The identity fields of one request, borrowed for filling in and checking.
pub struct Identity<'m> {
    pub peripheral_id: &'m mut u32,
    pub agent_id: Option<&'m mut Option<CtiString>>,
    pub agent_extension: Option<&'m mut Option<CtiString>>,
    /// The agent's device (AgentInstrument, or the device a request acts on
    /// where its layout names it otherwise).
    pub agent_instrument: Option<&'m mut Option<CtiString>>,
    /// The calls it acts on.
    pub calls: SmallVec<[CallKey; 2]>,
}

/// NULL_CALL_ID: no call (single-step transfer or conference, an assist
/// without a call).
const NULL_CALL_ID: u32 = 0xFFFF_FFFF;

fn call(id: u32, device_id_type: u16, device: &Option<CtiString>) -> Option<CallKey> {
    let device = device.as_ref().filter(|d| !d.is_empty())?;
    (id != NULL_CALL_ID).then(|| CallKey::new(id, device_id_type, device.as_bytes()))
}

fn calls<const N: usize>(named: [Option<CallKey>; N]) -> SmallVec<[CallKey; 2]> {
    named.into_iter().flatten().collect()
}

/// A request on one call (ConnectionCallID + ConnectionDeviceID) from the
/// agent's instrument.
macro_rules! connection_call {
    ($r:expr) => {
        Identity {
            calls: calls([call(
                $r.connection_call_id,
                $r.connection_device_id_type,
                &$r.connection_device_id,
            )]),
            peripheral_id: &mut $r.peripheral_id,
            agent_id: None,
            agent_extension: None,
            agent_instrument: Some(&mut $r.agent_instrument),
        }
    };
}

/// A request on one call that names no agent.
macro_rules! call_only {
    ($r:expr) => {
        Identity {
            calls: calls([call(
                $r.connection_call_id,
                $r.connection_device_id_type,
                &$r.connection_device_id,
            )]),
            peripheral_id: &mut $r.peripheral_id,
            agent_id: None,
            agent_extension: None,
            agent_instrument: None,
        }
    };
}

/// A request on the active call and the held one (a single-step transfer or
/// conference names no held call), from the agent's instrument.
macro_rules! active_and_held {
    ($r:expr) => {
        Identity {
            calls: calls([
                call(
                    $r.active_connection_call_id,
                    $r.active_connection_device_id_type,
                    &$r.active_connection_device_id,
                ),
                call(
                    $r.held_connection_call_id,
                    $r.held_connection_device_id_type,
                    &$r.held_connection_device_id,
                ),
            ]),
            peripheral_id: &mut $r.peripheral_id,
            agent_id: None,
            agent_extension: None,
            agent_instrument: Some(&mut $r.agent_instrument),
        }
    };
}

/// A request on one (optional) call that may name the agent by any field
/// (SUPERVISOR_ASSIST, EMERGENCY_CALL).
macro_rules! call_and_agent {
    ($r:expr) => {
        Identity {
            calls: calls([call(
                $r.connection_call_id,
                $r.connection_device_id_type,
                &$r.connection_device_id,
            )]),
            peripheral_id: &mut $r.peripheral_id,
            agent_id: Some(&mut $r.agent_id),
            agent_extension: Some(&mut $r.agent_extension),
            agent_instrument: Some(&mut $r.agent_instrument),
        }
    };
}

/// A request about an agent, named by any of its fields.
macro_rules! agent_only {
    ($r:expr) => {
        Identity {
            peripheral_id: &mut $r.peripheral_id,
            agent_id: Some(&mut $r.agent_id),
            agent_extension: Some(&mut $r.agent_extension),
            agent_instrument: Some(&mut $r.agent_instrument),
            calls: SmallVec::new(),
        }
    };
}

/// The identity fields of a Client Control, Call Data Update or
/// Miscellaneous request (docs/protocol.md §12.7); `None` for messages
/// that name no agent, device or call.
pub fn identity(m: &mut Message) -> Option<Identity<'_>> {
    use Message as M;
    let none = SmallVec::new();
    Some(match m {
        M::QueryAgentStateReq(r) => agent_only!(r),
        M::SetAgentStateReq(r) => Identity {
            peripheral_id: &mut r.peripheral_id,
            agent_id: Some(&mut r.agent_id),
            agent_extension: None,
            agent_instrument: Some(&mut r.agent_instrument),
            calls: none,
        },
        M::AlternateCallReq(r) => Identity {
            calls: calls([
                call(
                    r.active_connection_call_id,
                    r.active_connection_device_id_type,
                    &r.active_connection_device_id,
                ),
                call(
                    r.other_connection_call_id,
                    r.other_connection_device_id_type,
                    &r.other_connection_device_id,
                ),
            ]),
            peripheral_id: &mut r.peripheral_id,
            agent_id: None,
            agent_extension: None,
            agent_instrument: Some(&mut r.agent_instrument),
        },
        M::ConferenceCallReq(r) => active_and_held!(r),
        M::ReconnectCallReq(r) => active_and_held!(r),
        M::TransferCallReq(r) => active_and_held!(r),
        M::ConsultationCallReq(r) => Identity {
            calls: calls([call(
                r.active_connection_call_id,
                r.active_connection_device_id_type,
                &r.active_connection_device_id,
            )]),
            peripheral_id: &mut r.peripheral_id,
            agent_id: None,
            agent_extension: None,
            agent_instrument: Some(&mut r.agent_instrument),
        },
        M::RetrieveCallReq(r) => Identity {
            calls: calls([call(
                r.held_connection_call_id,
                r.held_connection_device_id_type,
                &r.held_connection_device_id,
            )]),
            peripheral_id: &mut r.peripheral_id,
            agent_id: None,
            agent_extension: None,
            agent_instrument: Some(&mut r.agent_instrument),
        },
        M::AnswerCallReq(r) => connection_call!(r),
        M::ClearCallReq(r) => connection_call!(r),
        M::ClearConnectionReq(r) => connection_call!(r),
        M::DeflectCallReq(r) => connection_call!(r),
        M::HoldCallReq(r) => connection_call!(r),
        M::SendDtmfSignalReq(r) => connection_call!(r),
        M::MakeCallReq(r) => device_only(&mut r.peripheral_id, &mut r.agent_instrument),
        M::QueryDeviceInfoReq(r) => device_only(&mut r.peripheral_id, &mut r.agent_instrument),
        M::SnapshotDeviceReq(r) => device_only(&mut r.peripheral_id, &mut r.agent_instrument),
        M::MakePredictiveCallReq(r) => {
            device_only(&mut r.peripheral_id, &mut r.originating_device_id)
        }
        M::SetDeviceAttributesReq(r) => device_only(&mut r.peripheral_id, &mut r.calling_device_id),
        M::SupervisorAssistReq(r) => call_and_agent!(r),
        M::EmergencyCallReq(r) => call_and_agent!(r),
        M::BadCallReq(r) => Identity {
            calls: calls([call(
                r.connection_call_id,
                r.connection_device_id_type,
                &r.connection_device_id,
            )]),
            peripheral_id: &mut r.peripheral_id,
            agent_id: Some(&mut r.agent_id),
            agent_extension: None,
            agent_instrument: None,
        },
        M::AgentGreetingControlReq(r) => Identity {
            peripheral_id: &mut r.peripheral_id,
            agent_id: Some(&mut r.agent_id),
            agent_extension: None,
            agent_instrument: None,
            calls: none,
        },
        M::StartRecordingReq(r) => call_and_agent!(r),
        M::StopRecordingReq(r) => call_and_agent!(r),
        M::QueryAgentStatisticsReq(r) => agent_only!(r),
        M::UserMessageReq(r) => agent_only!(r),
        M::AgentDeskSettingsReq(r) => Identity {
            peripheral_id: &mut r.peripheral_id,
            agent_id: Some(&mut r.agent_id),
            agent_extension: None,
            agent_instrument: None,
            calls: none,
        },
        M::SnapshotCallReq(r) => call_only!(r),
        M::SetCallDataReq(r) => call_only!(r),
        M::ReleaseCallReq(r) => call_only!(r),
        _ => return None,
    })
}

fn device_only<'m>(peripheral_id: &'m mut u32, device: &'m mut Option<CtiString>) -> Identity<'m> {
    Identity {
        peripheral_id,
        agent_id: None,
        agent_extension: None,
        agent_instrument: Some(device),
        calls: SmallVec::new(),
    }
}

/// Who a Client Events session is: its OPEN_REQ's fields, completed with
/// what the agent table knows of that agent (an agent that opened by
/// instrument is also known by its AgentID once it has reported).
pub struct Agent {
    pub peripheral_id: u32,
    pub agent_id: Option<CtiString>,
    pub agent_extension: Option<CtiString>,
    pub agent_instrument: Option<CtiString>,
}

impl Agent {
    pub fn of(client: &ClientInfo, known: impl Fn(AgentKey) -> Option<AgentView>) -> Agent {
        let given = |f: &Option<CtiString>| f.clone().filter(|s| !s.is_empty());
        let mut agent = Agent {
            peripheral_id: client.peripheral_id,
            agent_id: given(&client.agent_id),
            agent_extension: given(&client.agent_extension),
            agent_instrument: given(&client.agent_instrument),
        };
        let view = [
            (AgentField::Id, &agent.agent_id),
            (AgentField::Extension, &agent.agent_extension),
            (AgentField::Instrument, &agent.agent_instrument),
        ]
        .into_iter()
        .find_map(|(field, value)| known(AgentKey::new(field, value.as_ref()?.as_bytes())));
        if let Some(view) = view {
            agent.agent_id = agent.agent_id.or(given(&view.agent_id));
            agent.agent_extension = agent.agent_extension.or(given(&view.agent_extension));
            agent.agent_instrument = agent.agent_instrument.or(given(&view.agent_instrument));
        }
        agent
    }

    /// The agent's device, as calls name their parties.
    pub fn device(&self) -> Option<DeviceKey> {
        self.agent_instrument
            .as_ref()
            .or(self.agent_extension.as_ref())
            .map(|d| DeviceKey::device(d.as_bytes()))
    }
}

/// Fill in a Client Events session's request and check it is in scope:
/// every agent field it names is the session's agent's, and every call it
/// names has the agent's device among its parties (`is_party`).
pub fn fill_and_check(
    id: Identity<'_>,
    agent: &Agent,
    is_party: impl Fn(CallKey, DeviceKey) -> bool,
) -> Result<(), OutOfScope> {
    if *id.peripheral_id == 0 || *id.peripheral_id == NULL_PERIPHERAL_ID {
        *id.peripheral_id = agent.peripheral_id;
    }
    for (field, own) in [
        (id.agent_id, &agent.agent_id),
        (id.agent_extension, &agent.agent_extension),
        (id.agent_instrument, &agent.agent_instrument),
    ] {
        let Some(field) = field else {
            continue;
        };
        match (field.as_ref().filter(|s| !s.is_empty()), own) {
            (None, own) => *field = own.clone(),
            (Some(named), Some(own)) if named != own => return Err(OutOfScope::OtherAgent),
            // Named, and either the session's own or a field of its agent
            // the router has not learnt: the CTI Server decides.
            (Some(_), _) => {}
        }
    }
    if !id.calls.is_empty() {
        let Some(device) = agent.device() else {
            return Err(OutOfScope::NotCallParty);
        };
        if id.calls.iter().any(|&call| !is_party(call, device)) {
            return Err(OutOfScope::NotCallParty);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::constants::{msg, status};
    use crate::proto::msg::{ControlFailureConf, FailureConf};
    use crate::proto::{frame, DecodeOptions};

    fn answer(message_type: u32, why: OutOfScope) -> Message {
        let mut out = Vec::new();
        refuse(&mut out, Version::MAX, InvokeId(42), message_type, why);
        let (f, used) = frame::parse(&out).expect("one whole frame");
        assert_eq!(used, out.len());
        Message::decode(f.message_type, f.body, Version::MAX, DecodeOptions::STRICT)
            .expect("decodes")
    }

    #[test]
    fn refusals_are_control_failures_for_client_control_else_failure_confs() {
        for why in [OutOfScope::OtherAgent, OutOfScope::NotCallParty] {
            let m = answer(msg::ANSWER_CALL_REQ, why);
            assert!(
                matches!(
                    m,
                    Message::ControlFailureConf(ControlFailureConf {
                        invoke_id: 42,
                        failure_code: control_failure::CF_PRIVILEGE_VIOLATION_ON_SPECIFIED_DEVICE,
                        ..
                    })
                ),
                "{m:?}"
            );
        }
        let m = answer(msg::SET_CALL_DATA_REQ, OutOfScope::OtherAgent);
        assert!(
            matches!(m, Message::FailureConf(FailureConf { invoke_id: 42, status, .. })
                if status == status::E_CTI_INVALID_AGENT_DATA),
            "{m:?}"
        );
        let m = answer(msg::RELEASE_CALL_REQ, OutOfScope::NotCallParty);
        assert!(
            matches!(m, Message::FailureConf(FailureConf { invoke_id: 42, status, .. })
                if status == status::E_CTI_NOT_CALL_PARTY),
            "{m:?}"
        );
    }

    #[test]
    fn scope_holds_client_events_sessions_that_watch_nobody_else() {
        let ce = Services::CLIENT_EVENTS;
        assert!(applies_to(ce | Services::CLIENT_CONTROL));
        assert!(!applies_to(ce | Services::ALL_EVENTS));
        assert!(!applies_to(ce | Services::PERIPHERAL_MONITOR));
        assert!(!applies_to(Services::ALL_EVENTS | Services::CLIENT_CONTROL));
    }
}
