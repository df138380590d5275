//! Model-based: random request sequences from many sessions against a
//! CTI Server that answers, fails, delays past the timeout and goes away,
//! on the routing cores in memory. Whatever happens, every request of a
//! session that stays open is answered exactly once, with its own InvokeID,
//! and no session ever gets an answer to a request it did not send.

use std::collections::BTreeMap;
use std::time::Duration;

use ctirouter::config::Config;
use ctirouter::ids::{Services, SessionId};
use ctirouter::memrouter::MemRouter;
use ctirouter::proto::constants::{msg, service, status};
use ctirouter::proto::msg::{
    ControlFailureConf, HoldCallConf, HoldCallReq, QueryAgentStateConf, QueryAgentStateReq,
};
use ctirouter::proto::{Message, Version};
use testkit::*;

const SERVICES: u32 = service::PERIPHERAL_MONITOR | service::CLIENT_CONTROL;
const TIMEOUT: Duration = Duration::from_secs(15);

/// A session as the test sees it.
struct Desk {
    version: Version,
    next_invoke: u32,
    /// InvokeID → answers seen so far.
    sent: BTreeMap<u32, u32>,
    open: bool,
}

fn request(kind: u32, invoke_id: u32) -> Message {
    match kind {
        0 => QueryAgentStateReq {
            invoke_id,
            peripheral_id: PID,
            agent_instrument: Some("3001".into()),
            ..Default::default()
        }
        .into(),
        _ => HoldCallReq {
            invoke_id,
            peripheral_id: PID,
            connection_call_id: 7,
            connection_device_id: Some("3001".into()),
            ..Default::default()
        }
        .into(),
    }
}

/// The CTI Server's answer to a request frame it got (at v24).
fn answer(rng: &mut Rng, frame: &[u8]) -> Message {
    let invoke_id = u32::from_be_bytes(frame[8..12].try_into().unwrap());
    if rng.chance(0.2) {
        return ControlFailureConf {
            invoke_id,
            failure_code: 1,
            ..Default::default()
        }
        .into();
    }
    match frame_type(frame) {
        msg::QUERY_AGENT_STATE_REQ => QueryAgentStateConf {
            invoke_id,
            agent_state: 3,
            ..Default::default()
        }
        .into(),
        _ => HoldCallConf { invoke_id }.into(),
    }
}

/// How requests were answered over a run, by kind.
#[derive(Default)]
struct Outcomes {
    confirmed: u32,
    control_failed: u32,
    busy: u32,
    offline: u32,
    timed_out: u32,
}

fn run(seed: u64, outcomes: &mut Outcomes) {
    let mut rng = Rng::new(seed);
    let mut config = Config::default();
    config.runtime.shards = 3;
    config.requests.max_outstanding = 4;
    config.requests.max_pending = 12;
    let mut r = MemRouter::new(config, &[PID]);
    r.upstream_grants(Services(service::ALL_EVENTS | service::CLIENT_CONTROL));
    let versions = [13, 14, 19, 20, 24];
    let mut desks: BTreeMap<SessionId, Desk> = BTreeMap::new();
    for i in 0..9 {
        let version = Version::new(versions[i % versions.len()]).unwrap();
        let id = r.connect(i % 3).unwrap();
        r.send(id, version, OpenSpec::new(version, SERVICES).request(1));
        let got = r.received(id);
        assert_eq!(frame_type(&got[0]), msg::OPEN_CONF);
        desks.insert(
            id,
            Desk {
                version,
                next_invoke: 100,
                sent: BTreeMap::new(),
                open: true,
            },
        );
    }
    // Requests the CTI Server holds, as it got them.
    let mut upstream: Vec<Vec<u8>> = Vec::new();
    let mut online = true;
    let ids: Vec<SessionId> = desks.keys().copied().collect();
    for _step in 0..400 {
        match rng.pick(&[6.0, 4.0, 1.0, 0.3, 0.3, 0.2]) {
            // A session sends a request.
            0 => {
                let id = ids[rng.below(ids.len() as u32) as usize];
                let desk = desks.get_mut(&id).unwrap();
                if !desk.open {
                    continue;
                }
                desk.next_invoke += 1;
                let invoke = desk.next_invoke;
                desk.sent.insert(invoke, 0);
                let version = desk.version;
                r.send(id, version, request(rng.below(2), invoke));
            }
            // The CTI Server answers one of the requests it holds (any order).
            1 => {
                if upstream.is_empty() {
                    continue;
                }
                let i = rng.below(upstream.len() as u32) as usize;
                let frame = upstream.swap_remove(i);
                if online {
                    let reply = answer(&mut rng, &frame);
                    r.upstream(reply);
                }
            }
            // Time passes (some requests time out; their late answers are dropped).
            2 => r.advance(Duration::from_secs(rng.range(1, 10))),
            // The upstream is lost (everything pending fails), or comes back.
            3 => {
                if online {
                    r.upstream_lost();
                    upstream.clear();
                } else {
                    r.upstream_back();
                }
                online = !online;
            }
            // A session goes away with requests in flight.
            4 => {
                let id = ids[rng.below(ids.len() as u32) as usize];
                if let Some(desk) = desks.get_mut(&id).filter(|d| d.open) {
                    desk.open = false;
                    r.disconnect(id);
                }
            }
            // The CTI Server answers a request twice, or one it never got.
            _ => {
                if let Some(frame) = upstream.first() {
                    let reply = answer(&mut rng, frame);
                    r.upstream(reply.clone());
                    r.upstream(reply);
                    upstream.remove(0);
                } else {
                    r.upstream(HoldCallConf {
                        invoke_id: 0x8000_0000 | rng.below(1000),
                    });
                }
            }
        }
        upstream.extend(r.upstream_received());
        collect(&mut r, &mut desks, outcomes);
    }
    // Drain: answer nothing more; every request left times out.
    r.advance(TIMEOUT + Duration::from_secs(1));
    collect(&mut r, &mut desks, outcomes);
    for (id, desk) in &desks {
        if !desk.open {
            continue;
        }
        for (invoke, answers) in &desk.sent {
            assert_eq!(
                *answers, 1,
                "seed {seed}: session {id:?} request {invoke} answered {answers} times"
            );
        }
    }
}

/// Count each session's answers by InvokeID (events and the like ignored).
fn collect(r: &mut MemRouter, desks: &mut BTreeMap<SessionId, Desk>, outcomes: &mut Outcomes) {
    for (id, desk) in desks.iter_mut() {
        if !desk.open {
            continue;
        }
        for frame in r.received(*id) {
            let t = frame_type(&frame);
            if !msg::is_reply(t) {
                continue;
            }
            let invoke = u32::from_be_bytes(frame[8..12].try_into().unwrap());
            let field = |at: usize| u32::from_be_bytes(frame[at..at + 4].try_into().unwrap());
            match t {
                msg::FAILURE_CONF if field(12) == status::E_CTI_CTI_SERVER_OFFLINE => {
                    outcomes.offline += 1
                }
                msg::FAILURE_CONF if field(12) == status::E_CTI_TIMEOUT => outcomes.timed_out += 1,
                msg::CONTROL_FAILURE_CONF if frame[12..14] == [0, 32] => outcomes.busy += 1,
                msg::CONTROL_FAILURE_CONF => outcomes.control_failed += 1,
                _ => outcomes.confirmed += 1,
            }
            match desk.sent.get_mut(&invoke) {
                Some(n) => *n += 1,
                None => panic!(
                    "session {id:?} got an answer to {invoke}, which it never sent: {}",
                    describe(&frame)
                ),
            }
        }
    }
}

#[test]
fn every_request_is_answered_exactly_once_with_its_own_invoke_id() {
    let mut outcomes = Outcomes::default();
    for seed in 1..=40 {
        run(seed, &mut outcomes);
    }
    // The runs reached every way a request can end.
    let Outcomes {
        confirmed,
        control_failed,
        busy,
        offline,
        timed_out,
    } = outcomes;
    assert!(
        [confirmed, control_failed, busy, offline, timed_out]
            .iter()
            .all(|&n| n > 0),
        "confirmed {confirmed}, control failed {control_failed}, busy {busy}, \
         offline {offline}, timed out {timed_out}"
    );
}
