//! The rules of supervisors' own sessions on ingest's core, in memory: the
//! downstream OPEN_CONF waits for the upstream's answer, events go to the
//! one session, requests go to its own session and fail alone when it is
//! lost, the limit holds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::core::IngestCore;
use super::supervisors::OwnState;
use crate::config::UpstreamConfig;
use crate::ids::{InvokeId, Services, SessionId};
use crate::link::{ProxyRequest, SessionOpened, ToIngest, ToShard};
use crate::metrics::Metrics;
use crate::proto::constants::{msg, service, status};
use crate::proto::msg::{ListAgentTeamReq, OpenConf, SystemEvent};
use crate::proto::{Message, RequestError, Version};
use crate::session::server::ClientInfo;

type Core = IngestCore<Vec<Vec<ToShard>>>;

const DESK: u32 = service::CLIENT_EVENTS | service::SUPERVISOR | service::CLIENT_CONTROL;

fn core(max: usize) -> Core {
    let links = vec![Vec::new(), Vec::new()];
    let metrics = Arc::new(Metrics::default());
    let mut core = IngestCore::new(links, 64, metrics, Duration::from_secs(60));
    core.upstream_config = Some(UpstreamConfig::default());
    core.upstream_side = Some("127.0.0.1:1".into());
    core.supervisors.set_max(max);
    core
}

fn opened(id: u32, shard: usize, agent: &str) -> SessionOpened {
    SessionOpened {
        shard,
        id: SessionId(id),
        peer: SocketAddr::from(([127, 0, 0, 1], 4000)),
        version: Version::new(19).unwrap(),
        services: Services(DESK),
        call_mask: 0,
        agent_mask: 0,
        client: ClientInfo {
            client_id: "sup".into(),
            client_signature: "desk".into(),
            agent_id: Some(agent.into()),
            agent_instrument: Some(format!("3{}", &agent[1..]).as_str().into()),
            ..Default::default()
        },
        interest_up: Vec::new(),
    }
}

fn open_conf(granted: u32) -> OpenConf {
    OpenConf {
        services_granted: granted,
        monitor_id: 7,
        agent_state: 3,
        ..Default::default()
    }
}

fn taken(core: &mut Core, shard: usize) -> Vec<ToShard> {
    std::mem::take(&mut core.links[shard])
}

fn list_team(session: u32, invoke: u32) -> ProxyRequest {
    let mut body = Vec::new();
    let request = Message::from(ListAgentTeamReq {
        invoke_id: invoke,
        supervisor_id: 5011,
    });
    request.encode(Version::MAX, &mut body).unwrap();
    ProxyRequest {
        shard: 1,
        session: SessionId(session),
        invoke_id: InvokeId(invoke),
        version: Version::MAX,
        message_type: msg::LIST_AGENT_TEAM_REQ,
        body: body[8..].into(),
        received: Instant::now(),
    }
}

#[test]
fn the_open_conf_waits_for_the_supervisors_own_session_and_takes_its_grant() {
    let mut core = core(10);
    let now = Instant::now();
    core.on_control(ToIngest::SessionOpened(opened(1, 1, "1011")), now);
    assert!(
        taken(&mut core, 1).is_empty(),
        "held until the upstream answers"
    );
    assert_eq!(core.supervisors.to_start, [SessionId(1)]);
    let params = core.own_target(SessionId(1)).unwrap().1;
    assert_eq!(params.services, Services(DESK));
    assert_eq!(params.agent_id.as_deref(), Some("1011"));
    assert_eq!(params.agent_instrument.as_deref(), Some("3011"));
    assert_eq!(params.signature, "ctirouter:sup");
    // The CTI Server grants Client Events and Supervisor, not Control.
    let granted = service::CLIENT_EVENTS | service::SUPERVISOR;
    core.own_opened(SessionId(1), &open_conf(granted), now);
    let items = taken(&mut core, 1);
    let own = items.iter().find_map(|item| match item {
        ToShard::OpenAck {
            session,
            own: Some(own),
            agent,
            ..
        } => Some((*session, *own, agent.clone())),
        _ => None,
    });
    let (session, own, agent) = own.expect("an OpenAck for the supervisor");
    assert_eq!(session, SessionId(1));
    assert_eq!((own.services, own.monitor_id), (Services(granted), 7));
    assert_eq!(agent.map(|a| a.agent_state), Some(3));
    assert!(core.registry.contains(SessionId(1)), "registered once open");
    // A reopen after a failover answers nothing again.
    core.own_lost(SessionId(1), now);
    core.own_opened(SessionId(1), &open_conf(granted), now);
    assert!(taken(&mut core, 1)
        .iter()
        .all(|item| !matches!(item, ToShard::OpenAck { .. })));
}

#[test]
fn a_refusal_is_the_downstream_answer_and_the_limit_holds() {
    let mut core = core(1);
    let now = Instant::now();
    core.on_control(ToIngest::SessionOpened(opened(1, 0, "1012")), now);
    core.own_refused(
        SessionId(1),
        RequestError::Upstream(status::E_CTI_FUNCTION_NOT_AVAILABLE),
    );
    let refused = taken(&mut core, 0).into_iter().find_map(|item| match item {
        ToShard::OpenRefused { session, error } => Some((session, error.status())),
        _ => None,
    });
    assert_eq!(
        refused,
        Some((SessionId(1), status::E_CTI_FUNCTION_NOT_AVAILABLE))
    );
    assert!(core.supervisors.is_done(SessionId(1)));
    // One place: the second waits for nothing, it is refused at once.
    core.on_control(ToIngest::SessionOpened(opened(2, 0, "1011")), now);
    core.on_control(ToIngest::SessionOpened(opened(3, 0, "1001")), now);
    let refused: Vec<_> = taken(&mut core, 0)
        .into_iter()
        .filter_map(|item| match item {
            ToShard::OpenRefused { session, error } => Some((session, error)),
            _ => None,
        })
        .collect();
    assert_eq!(refused, [(SessionId(3), RequestError::AtSessionLimit)]);
    // With the CTI Server not open, refused at once too.
    let mut offline = self::core(10);
    offline.upstream_side = None;
    offline.on_control(ToIngest::SessionOpened(opened(4, 0, "1011")), now);
    assert!(matches!(
        taken(&mut offline, 0).as_slice(),
        [ToShard::OpenRefused {
            error: RequestError::ServerOffline,
            ..
        }]
    ));
}

#[test]
fn events_go_to_the_one_session_and_requests_to_its_own_session() {
    let mut core = core(10);
    let now = Instant::now();
    core.on_control(ToIngest::SessionOpened(opened(1, 1, "1011")), now);
    core.own_opened(SessionId(1), &open_conf(DESK), now);
    taken(&mut core, 1);
    let event = Message::from(SystemEvent::default())
        .to_frame(Version::MAX)
        .unwrap();
    core.own_event(SessionId(1), &event, now);
    assert!(
        taken(&mut core, 0).is_empty(),
        "nothing for the other shard"
    );
    let items = taken(&mut core, 1);
    assert!(matches!(
        items.as_slice(),
        [ToShard::OwnEvent { session: SessionId(1), event }] if event.message_type() == msg::SYSTEM_EVENT
    ));
    // The request goes to its own session, not to the bridge's.
    core.on_control(ToIngest::Request(list_team(1, 42)), now);
    assert!(core.to_upstream.is_empty());
    let mut out = Vec::new();
    core.supervisors.take_requests(SessionId(1), &mut out);
    let upstream_invoke = u32::from_be_bytes([out[8], out[9], out[10], out[11]]);
    assert!(upstream_invoke & 0x8000_0000 != 0, "a router InvokeID");
    // Lost: its request fails with 15; the bridge's are not touched.
    core.own_lost(SessionId(1), now);
    assert_eq!(
        core.supervisors.get(SessionId(1)).map(|s| s.state),
        Some(OwnState::Down)
    );
    let answer = taken(&mut core, 1).into_iter().find_map(|item| match item {
        ToShard::Reply { session, frame, .. } => Some((session, frame)),
        _ => None,
    });
    let (session, frame) = answer.expect("FAILURE_CONF to the request");
    assert_eq!(session, SessionId(1));
    assert_eq!(
        u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
        msg::FAILURE_CONF
    );
    assert_eq!(
        u32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]),
        42,
        "its own InvokeID"
    );
    // While it is down its requests are refused with 15 at once.
    core.on_control(ToIngest::Request(list_team(1, 43)), now);
    let refused = taken(&mut core, 1);
    assert!(matches!(refused.as_slice(), [ToShard::Reply { .. }]));
}
