//! The simulated center the Supervisor tests share (`sim-pg --agents 20
//! --manual-agents 20`, no calls): two teams of ten, supervised by 1001
//! (team 1, and the site supervisor of every team) and 1011 (team 2); and
//! what those tests ask of a session: a reply, an agent's state event, a
//! state change.

use std::time::Duration;

use ctirouter::proto::constants::{msg, service, supervisory_action};
use ctirouter::proto::msg::{MakeCallReq, SetAgentStateReq, SuperviseCallReq};
use ctirouter::proto::{Message, Version};

use crate::{be32, decode_strict, frame_type, is_reply, sim_pg, Client, OpenSpec, Proc, PID};

/// A supervisor's desktop: Client Events + Supervisor.
pub const SUPERVISOR_DESK: u32 = service::CLIENT_EVENTS | service::SUPERVISOR;
/// An agent's desktop: Client Events + Client Control.
pub const AGENT_DESK: u32 = service::CLIENT_EVENTS | service::CLIENT_CONTROL;
/// ICM agent id (skill target id) of supervisor 1011.
pub const SUPERVISOR_1011: u32 = 5011;
/// How long the Supervisor tests wait for any one frame.
pub const TEAM_WAIT: Duration = Duration::from_secs(10);

/// `sim-pg` with two teams of manual agents and no calls.
pub fn quiet_center(bin: &str) -> Proc {
    let args = [
        "--agents",
        "20",
        "--manual-agents",
        "20",
        "--calls-per-sec",
        "0",
        "--speed",
        "4",
    ];
    sim_pg(bin, &args)
}

/// A desktop's OPEN_REQ at v24: `services` for `agent` at `instrument`
/// on [`PID`], as ClientID `client_id`.
pub fn agent_spec(services: u32, client_id: &str, agent: &str, instrument: &str) -> OpenSpec {
    OpenSpec {
        agent_id: Some(agent.into()),
        agent_instrument: Some(instrument.into()),
        peripheral_id: PID,
        ..OpenSpec::new(Version::MAX, services).client(client_id, b"")
    }
}

/// Index (in the log) of the next frame that satisfies `pred`; panics
/// after [`TEAM_WAIT`].
pub fn wait_frame(c: &mut Client, what: &str, pred: impl Fn(&[u8]) -> bool) -> usize {
    c.wait_for(what, TEAM_WAIT, pred)
        .unwrap_or_else(|end| panic!("no {what} within {TEAM_WAIT:?} ({end:?})"))
}

/// The reply to the request sent with `invoke`, decoded.
pub fn reply_to(c: &mut Client, invoke: u32) -> Message {
    let i = wait_frame(c, &format!("reply to {invoke}"), |f| {
        is_reply(frame_type(f)) && be32(f, 8) == invoke
    });
    decode_strict(&c.log[i], c.version)
}

/// (MonitorID, AgentID) of an AGENT_STATE_EVENT.
pub fn agent_of(f: &[u8], version: Version) -> Option<(u32, String)> {
    if frame_type(f) != msg::AGENT_STATE_EVENT {
        return None;
    }
    match decode_strict(f, version) {
        Message::AgentStateEvent(e) => {
            let id = e
                .agent_id
                .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned());
            Some((e.monitor_id, id.unwrap_or_default()))
        }
        _ => None,
    }
}

/// SET_AGENT_STATE_REQ (with a reason code), which must be confirmed.
pub fn set_agent_state(c: &mut Client, invoke: u32, state: u16, reason: u16) {
    c.send(SetAgentStateReq {
        invoke_id: invoke,
        peripheral_id: PID,
        agent_state: state,
        event_reason_code: reason,
        ..Default::default()
    });
    let answer = reply_to(c, invoke);
    assert_eq!(
        answer.message_type(),
        msg::SET_AGENT_STATE_CONF,
        "{answer:?}"
    );
}

/// The agent (at `instrument`, logged in and available) calls out; once
/// the call is up, the supervisor barges in on it (`invoke` and `invoke + 1`
/// are the requests' InvokeIDs): both desktops see the conference.
pub fn barge_in_on_a_call(agent: &mut Client, instrument: &str, sup: &mut Client, invoke: u32) {
    agent.send(MakeCallReq {
        invoke_id: invoke,
        peripheral_id: PID,
        dialed_number: Some("5551234".into()),
        ..Default::default()
    });
    assert_eq!(reply_to(agent, invoke).message_type(), msg::MAKE_CALL_CONF);
    wait_frame(agent, "CALL_ESTABLISHED", |f| {
        frame_type(f) == msg::CALL_ESTABLISHED_EVENT
    });
    sup.send(SuperviseCallReq {
        invoke_id: invoke + 1,
        peripheral_id: PID,
        agent_connection_call_id: 0xFFFF_FFFF,
        supervisor_connection_call_id: 0xFFFF_FFFF,
        supervisory_action: supervisory_action::BARGE_IN,
        agent_instrument: Some(instrument.into()),
        ..Default::default()
    });
    let answer = reply_to(sup, invoke + 1);
    assert_eq!(
        answer.message_type(),
        msg::SUPERVISE_CALL_CONF,
        "{answer:?}"
    );
    for desk in [sup, agent] {
        wait_frame(desk, "CALL_CONFERENCED", |f| {
            frame_type(f) == msg::CALL_CONFERENCED_EVENT
        });
    }
}
