//! The requests `ctirouter ctl` sends, without I/O (layouts:
//! docs/protocol.md §12.2 Client Control, §12.3 Call Data Update, §12.5
//! Supervisor): built
//! from the checked [`Action`], the session's [`Agent`] and the call
//! [`pick`](super::ctl_plan::pick) chose; and how the consult call of a
//! transfer or conference is recognised.

use super::ctl_plan::{Action, Agent, CallData, Completion, Conn, StateChange, Target};
use crate::proto::constants::lcs;
use crate::proto::msg::{
    AnswerCallReq, ClearConnectionReq, ConferenceCallReq, ConsultationCallConf,
    ConsultationCallReq, HoldCallReq, MakeCallReq, MonitorAgentTeamStartReq,
    MonitorAgentTeamStopReq, RetrieveCallReq, SetAgentStateReq, SetCallDataReq, SnapshotDeviceReq,
    SuperviseCallReq, TransferCallReq,
};
use crate::proto::{Message, NamedVar};

/// NULL_SKILL_GROUP (docs/protocol.md §5.16): MAKE_CALL_REQ's default.
const NULL_SKILL_GROUP: u32 = 0xFFFF_FFFF;
/// NULL_CALLTYPE (docs/protocol.md §5.16): SET_CALL_DATA_REQ leaves the
/// call type alone.
const NULL_CALLTYPE: u16 = 0xFFFF;
/// SUPERVISE_CALL_REQ: the agent's active call / no supervisor call.
const ACTIVE_CALL: u32 = 0xFFFF_FFFF;
/// ConsultType (docs/protocol.md §12.2, CONSULTATION_CALL_REQ).
const CONSULT_TRANSFER: u16 = 1;
const CONSULT_CONFERENCE: u16 = 2;

impl Completion {
    fn consult_type(self) -> u16 {
        match self {
            Completion::Transfer => CONSULT_TRANSFER,
            Completion::Conference => CONSULT_CONFERENCE,
        }
    }
}

/// The request of a command that acts on no call (`state`, `call`,
/// `snapshot`, `supervise`, `barge-in`, `team`); `Ok(None)` for the others.
pub fn direct_request(
    action: &Action,
    agent: &Agent,
    invoke_id: u32,
) -> Result<Option<Message>, String> {
    Ok(Some(match action {
        Action::State {
            change,
            reason,
            agent_password,
        } => {
            if *change == StateChange::Login && agent.instrument.is_none() {
                return Err("login needs the agent's instrument: give --instrument EXT".into());
            }
            SetAgentStateReq {
                invoke_id,
                peripheral_id: agent.peripheral_id,
                agent_state: change.agent_state(),
                event_reason_code: reason.unwrap_or(0),
                agent_instrument: agent.instrument(),
                agent_id: Some(agent.agent_id.as_str().into()),
                agent_password: agent_password.as_deref().map(Into::into),
                ..Default::default()
            }
            .into()
        }
        Action::Call { number } => MakeCallReq {
            invoke_id,
            peripheral_id: agent.peripheral_id,
            skill_group_number: NULL_SKILL_GROUP,
            agent_instrument: agent.instrument(),
            dialed_number: Some(number.as_str().into()),
            ..Default::default()
        }
        .into(),
        Action::Snapshot => snapshot_request(agent, invoke_id),
        Action::Supervise {
            agent: supervised,
            action,
        } => SuperviseCallReq {
            invoke_id,
            peripheral_id: agent.peripheral_id,
            agent_connection_call_id: ACTIVE_CALL,
            supervisor_connection_call_id: ACTIVE_CALL,
            supervisory_action: *action,
            agent_id: Some(supervised.as_str().into()),
            supervisor_instrument: agent.instrument(),
            ..Default::default()
        }
        .into(),
        Action::Team { team_id } => team_start_request(*team_id, invoke_id),
        _ => return Ok(None),
    }))
}

/// MONITOR_AGENT_TEAM_START_REQ for TeamID `team_id` (`ctl team`, `watch --team`).
pub fn team_start_request(team_id: u32, invoke_id: u32) -> Message {
    MonitorAgentTeamStartReq {
        invoke_id,
        team_id,
        ..Default::default()
    }
    .into()
}

/// MONITOR_AGENT_TEAM_STOP_REQ ending the team monitor `monitor_id`.
pub fn team_stop_request(monitor_id: u32, invoke_id: u32) -> Message {
    MonitorAgentTeamStopReq {
        invoke_id,
        monitor_id,
        ..Default::default()
    }
    .into()
}

/// SNAPSHOT_DEVICE_REQ for the agent's instrument (left out when unknown:
/// the router fills it in from the session).
pub fn snapshot_request(agent: &Agent, invoke_id: u32) -> Message {
    SnapshotDeviceReq {
        invoke_id,
        peripheral_id: agent.peripheral_id,
        snapshot_device_type: 0,
        agent_instrument: agent.instrument(),
    }
    .into()
}

/// The request a call command sends for its target.
pub fn call_request(
    action: &Action,
    agent: &Agent,
    target: &Target,
    invoke_id: u32,
) -> Result<Message, String> {
    let peripheral_id = agent.peripheral_id;
    let agent_instrument = agent.instrument();
    let c = match (action, target) {
        (Action::Consult { kind, ext: None }, Target::HeldAndActive { held, active }) => {
            return Ok(completion_request(*kind, agent, held, active, invoke_id))
        }
        (_, Target::One(c)) => c.clone(),
        (_, Target::HeldAndActive { .. }) => return Err("one call expected".into()),
    };
    Ok(match action {
        Action::Answer => AnswerCallReq {
            invoke_id,
            peripheral_id,
            connection_call_id: c.call_id,
            connection_device_id_type: c.device_id_type,
            connection_device_id: Some(c.device_id),
            agent_instrument,
            ..Default::default()
        }
        .into(),
        Action::Hold => HoldCallReq {
            invoke_id,
            peripheral_id,
            connection_call_id: c.call_id,
            connection_device_id_type: c.device_id_type,
            reservation: 0,
            connection_device_id: Some(c.device_id),
            agent_instrument,
            ..Default::default()
        }
        .into(),
        Action::Retrieve => RetrieveCallReq {
            invoke_id,
            peripheral_id,
            held_connection_call_id: c.call_id,
            held_connection_device_id_type: c.device_id_type,
            held_connection_device_id: Some(c.device_id),
            agent_instrument,
            ..Default::default()
        }
        .into(),
        Action::Hangup => ClearConnectionReq {
            invoke_id,
            peripheral_id,
            connection_call_id: c.call_id,
            connection_device_id_type: c.device_id_type,
            connection_device_id: Some(c.device_id),
            agent_instrument,
            ..Default::default()
        }
        .into(),
        Action::SetData(data) => set_call_data(data, peripheral_id, &c, invoke_id),
        Action::Consult {
            kind,
            ext: Some(ext),
        } => ConsultationCallReq {
            invoke_id,
            peripheral_id,
            active_connection_call_id: c.call_id,
            active_connection_device_id_type: c.device_id_type,
            consult_type: kind.consult_type(),
            active_connection_device_id: Some(c.device_id),
            dialed_number: Some(ext.as_str().into()),
            agent_instrument,
            ..Default::default()
        }
        .into(),
        _ => return Err("this command acts on no call".into()),
    })
}

fn set_call_data(data: &CallData, peripheral_id: u32, c: &Conn, invoke_id: u32) -> Message {
    let mut req = SetCallDataReq {
        invoke_id,
        peripheral_id,
        connection_device_id_type: c.device_id_type,
        connection_call_id: c.call_id,
        num_named_variables: data.named.len() as u16,
        call_type: NULL_CALLTYPE,
        connection_device_id: Some(c.device_id.clone()),
        named_variables: data
            .named
            .iter()
            .map(|(name, value)| NamedVar {
                name: name.as_str().into(),
                value: value.as_str().into(),
            })
            .collect(),
        ..Default::default()
    };
    let slots = [
        &mut req.call_variable_1,
        &mut req.call_variable_2,
        &mut req.call_variable_3,
        &mut req.call_variable_4,
        &mut req.call_variable_5,
        &mut req.call_variable_6,
        &mut req.call_variable_7,
        &mut req.call_variable_8,
        &mut req.call_variable_9,
        &mut req.call_variable_10,
    ];
    for (slot, value) in slots.into_iter().zip(&data.variables) {
        *slot = value.as_deref().map(Into::into);
    }
    req.into()
}

/// TRANSFER_CALL_REQ / CONFERENCE_CALL_REQ joining the original call (on
/// hold) and the consult call (active).
pub fn completion_request(
    kind: Completion,
    agent: &Agent,
    held: &Conn,
    active: &Conn,
    invoke_id: u32,
) -> Message {
    match kind {
        Completion::Transfer => TransferCallReq {
            invoke_id,
            peripheral_id: agent.peripheral_id,
            active_connection_call_id: active.call_id,
            held_connection_call_id: held.call_id,
            active_connection_device_id_type: active.device_id_type,
            held_connection_device_id_type: held.device_id_type,
            active_connection_device_id: Some(active.device_id.clone()),
            held_connection_device_id: Some(held.device_id.clone()),
            agent_instrument: agent.instrument(),
            ..Default::default()
        }
        .into(),
        Completion::Conference => ConferenceCallReq {
            invoke_id,
            peripheral_id: agent.peripheral_id,
            held_connection_call_id: held.call_id,
            active_connection_call_id: active.call_id,
            held_connection_device_id_type: held.device_id_type,
            active_connection_device_id_type: active.device_id_type,
            active_connection_device_id: Some(active.device_id.clone()),
            held_connection_device_id: Some(held.device_id.clone()),
            agent_instrument: agent.instrument(),
            ..Default::default()
        }
        .into(),
    }
}

/// The agent's connection on the consult call CONSULTATION_CALL_CONF announces.
pub fn consult_conn(conf: &ConsultationCallConf) -> Result<Conn, String> {
    let device_id = conf
        .new_connection_device_id
        .clone()
        .filter(|d| !d.is_empty())
        .ok_or("CONSULTATION_CALL_CONF names no NewConnectionDeviceID")?;
    Ok(Conn {
        call_id: conf.new_connection_call_id,
        device_id_type: conf.new_connection_device_id_type,
        device_id,
        state: lcs::CONNECT,
    })
}

/// Whether `event` says the consult call `call_id` was answered.
pub fn is_established(event: &Message, call_id: u32) -> bool {
    matches!(event, Message::CallEstablishedEvent(e) if e.connection_call_id == call_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::constants::{agent_state, connection_type};
    use crate::proto::msg::CallEstablishedEvent;
    use crate::proto::Version;
    use crate::tools::ctl_plan::pick;
    use crate::tools::ctl_plan::tests::{agent, conn};

    /// Every request built here encodes at the oldest and newest version.
    fn encodes(m: &Message) {
        for v in [Version::MIN, Version::MAX] {
            m.to_frame(v)
                .unwrap_or_else(|e| panic!("{m:?} at {v}: {e}"));
        }
    }

    #[test]
    fn state_changes_map_to_agent_states_and_take_a_reason_only_where_it_means_something() {
        let not_ready = Action::state(StateChange::NotReady, Some(12), None).unwrap();
        let Some(Message::SetAgentStateReq(r)) = direct_request(&not_ready, &agent(), 7).unwrap()
        else {
            panic!("not a SET_AGENT_STATE_REQ")
        };
        assert_eq!(
            (
                r.invoke_id,
                r.peripheral_id,
                r.agent_state,
                r.event_reason_code
            ),
            (7, 5000, agent_state::NOT_READY, 12)
        );
        assert_eq!(r.agent_id.unwrap().as_bytes(), b"1001");
        assert_eq!(r.agent_instrument.unwrap().as_bytes(), b"3001");
        assert!(r.agent_password.is_none());
        assert_eq!(StateChange::Ready.agent_state(), agent_state::AVAILABLE);
        assert_eq!(
            StateChange::WorkReady.agent_state(),
            agent_state::WORK_READY
        );
        assert_eq!(
            StateChange::WorkNotReady.agent_state(),
            agent_state::WORK_NOT_READY
        );
        assert!(Action::state(StateChange::Ready, Some(3), None).is_err());
        assert!(Action::state(StateChange::Logout, Some(3), None).is_ok());
    }

    #[test]
    fn login_needs_the_instrument_and_carries_the_agent_password() {
        let login = Action::state(StateChange::Login, None, Some("pw".into())).unwrap();
        let mut nowhere = agent();
        nowhere.instrument = None;
        let e = direct_request(&login, &nowhere, 1).unwrap_err();
        assert!(e.contains("--instrument"), "{e}");
        let Some(Message::SetAgentStateReq(r)) = direct_request(&login, &agent(), 1).unwrap()
        else {
            panic!()
        };
        assert_eq!(r.agent_state, agent_state::LOGIN);
        assert_eq!(r.agent_password.unwrap().as_bytes(), b"pw");
    }

    #[test]
    fn make_call_and_snapshot_name_the_instrument() {
        let call = Action::call("5551234").unwrap();
        let Some(m @ Message::MakeCallReq(_)) = direct_request(&call, &agent(), 2).unwrap() else {
            panic!()
        };
        encodes(&m);
        let Message::MakeCallReq(r) = m else {
            unreachable!()
        };
        assert_eq!(r.dialed_number.unwrap().as_bytes(), b"5551234");
        assert_eq!(r.agent_instrument.unwrap().as_bytes(), b"3001");
        assert_eq!(r.skill_group_number, NULL_SKILL_GROUP);
        let Some(Message::SnapshotDeviceReq(s)) =
            direct_request(&Action::Snapshot, &agent(), 3).unwrap()
        else {
            panic!()
        };
        assert_eq!(s.agent_instrument.unwrap().as_bytes(), b"3001");
        assert_eq!(direct_request(&Action::Hold, &agent(), 4), Ok(None));
        assert!(Action::call("").is_err());
        assert!(Action::call(&"9".repeat(40)).is_err());
    }

    #[test]
    fn set_data_parses_variables_and_named_variables() {
        let vars = ["3=ABC".to_string(), "10=x=y".to_string()];
        let named = ["user.crm.id=42".to_string()];
        let action = Action::set_data(&vars, &named).unwrap();
        let target = Target::One(conn(77, lcs::CONNECT));
        let m = call_request(&action, &agent(), &target, 9).unwrap();
        encodes(&m);
        let Message::SetCallDataReq(r) = m else {
            panic!()
        };
        assert_eq!(r.connection_call_id, 77);
        assert_eq!(r.connection_device_id.unwrap().as_bytes(), b"3001");
        assert_eq!(r.call_variable_3.unwrap().as_bytes(), b"ABC");
        assert_eq!(r.call_variable_10.unwrap().as_bytes(), b"x=y");
        assert!(r.call_variable_1.is_none());
        assert_eq!(r.call_type, NULL_CALLTYPE, "the call type is left alone");
        assert_eq!(r.num_named_variables, 1);
        assert_eq!(r.named_variables[0].name.as_bytes(), b"user.crm.id");
        assert_eq!(r.named_variables[0].value.as_bytes(), b"42");
        for bad in [&["0=A"][..], &["11=A"], &["x=A"], &["3"], &["3=A", "3=B"]] {
            let bad: Vec<String> = bad.iter().map(|s| s.to_string()).collect();
            assert!(Action::set_data(&bad, &[]).is_err(), "{bad:?}");
        }
        assert!(Action::set_data(&["1=".to_string() + &"v".repeat(41)], &[]).is_err());
        assert!(Action::set_data(&[], &["=v".to_string()]).is_err());
        assert!(Action::set_data(&[], &[]).is_err());
        let big: Vec<String> = (0..9)
            .map(|i| format!("n{i}={}", "v".repeat(240)))
            .collect();
        assert!(Action::set_data(&[], &big).unwrap_err().contains("2000"));
    }

    #[test]
    fn a_consultation_is_completed_with_the_held_call_and_the_other_connected_one() {
        let conns = [conn(1, lcs::HOLD), conn(2, lcs::CONNECT)];
        let transfer = Action::consult(Completion::Transfer, None).unwrap();
        let target = pick(&transfer, &conns, None).unwrap();
        assert_eq!(
            target,
            Target::HeldAndActive {
                held: conns[0].clone(),
                active: conns[1].clone()
            }
        );
        let m = call_request(&transfer, &agent(), &target, 5).unwrap();
        encodes(&m);
        let Message::TransferCallReq(t) = m else {
            panic!()
        };
        assert_eq!(
            (t.held_connection_call_id, t.active_connection_call_id),
            (1, 2)
        );
        assert_eq!(t.held_connection_device_id.unwrap().as_bytes(), b"3001");
        let conference = Action::consult(Completion::Conference, None).unwrap();
        let m = call_request(&conference, &agent(), &target, 6).unwrap();
        encodes(&m);
        let Message::ConferenceCallReq(c) = m else {
            panic!()
        };
        assert_eq!(
            (c.held_connection_call_id, c.active_connection_call_id),
            (1, 2)
        );
        // Nothing to complete without a consult call.
        let e = pick(&transfer, &[conn(1, lcs::HOLD)], None).unwrap_err();
        assert!(e.contains("no connected call"), "{e}");
    }

    #[test]
    fn a_consult_dials_from_the_connected_call_and_its_answer_is_recognised() {
        let action = Action::consult(Completion::Conference, Some("3002")).unwrap();
        let target = pick(&action, &[conn(2, lcs::CONNECT)], None).unwrap();
        let m = call_request(&action, &agent(), &target, 8).unwrap();
        encodes(&m);
        let Message::ConsultationCallReq(r) = m else {
            panic!()
        };
        assert_eq!(r.active_connection_call_id, 2);
        assert_eq!(r.consult_type, CONSULT_CONFERENCE);
        assert_eq!(r.dialed_number.unwrap().as_bytes(), b"3002");
        let conf = ConsultationCallConf {
            new_connection_call_id: 9,
            new_connection_device_id_type: connection_type::DYNAMIC,
            new_connection_device_id: Some("3001".into()),
            ..Default::default()
        };
        let consult = consult_conn(&conf).unwrap();
        assert_eq!(consult.call_id, 9);
        let established = |id| {
            Message::from(CallEstablishedEvent {
                connection_call_id: id,
                ..Default::default()
            })
        };
        assert!(is_established(&established(9), 9));
        assert!(!is_established(&established(2), 9));
        assert!(consult_conn(&ConsultationCallConf::default()).is_err());
    }
}
