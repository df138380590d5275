//! Every request type of Client Control and Call Data Update, generated
//! with every field it has (`Message::arbitrary_typed`), from clients at
//! v13, v19, v20 and v24 through the routing cores in memory to an upstream
//! at v24 and at v14 — and its confirmation back. What the upstream decodes
//! is what the client sent, as far as both versions carry it (fields a
//! version lacks dropped or, where declared, given their "absent" value);
//! the InvokeID is the router's going up and the client's coming back.
//! A type the client's version lacks is refused with 48; one the
//! upstream's lacks never goes up.

use std::time::Duration;

use arbitrary::Unstructured;
use ctirouter::config::Config;
use ctirouter::ids::{Services, SessionId};
use ctirouter::memrouter::MemRouter;
use ctirouter::proto::constants::{msg, service};
use ctirouter::proto::{DecodeOptions, Message, Version};
use ctirouter::session::server::proxied_service;
use testkit::*;

const CLIENT_VERSIONS: [u32; 4] = [13, 19, 20, 24];
const UPSTREAM_VERSIONS: [u32; 2] = [24, 14];
const SERVICES: u32 = service::ALL_EVENTS | service::CLIENT_CONTROL | service::CALL_DATA_UPDATE;
/// Generated messages tried per type and version pair.
const CASES: usize = 12;

fn v(n: u32) -> Version {
    Version::new(n).unwrap()
}

fn decode(frame: &[u8], version: Version) -> Message {
    ctirouter::proto::decode_frame(frame, version, DecodeOptions::default())
        .unwrap_or_else(|e| panic!("{e}: {}", describe(frame)))
        .0
}

/// `m` as a peer at `version` has it (what survives its encoding there).
fn at(m: &Message, version: Version) -> Message {
    let mut m = m.clone();
    m.restrict_to(version);
    m.sync_counts();
    m
}

fn set_invoke(m: &mut Message, invoke_id: u32, version: Version) {
    let mut frame = m.to_frame(version).expect("encodes");
    frame[8..12].copy_from_slice(&invoke_id.to_be_bytes());
    *m = decode(&frame, version);
}

/// A generated message of `message_type` that survives encoding at
/// `version` unchanged (generated strings may not: too long, say).
fn generate(message_type: u32, version: Version, rng: &mut Rng) -> Option<Message> {
    let which = Message::TYPED.iter().position(|&t| t == message_type)?;
    for _ in 0..64 {
        let bytes: Vec<u8> = (0..512).map(|_| rng.below(256) as u8).collect();
        let Ok(m) = Message::arbitrary_typed(which, &mut Unstructured::new(&bytes)) else {
            continue;
        };
        let m = at(&m, version);
        let Ok(frame) = m.to_frame(version) else {
            continue;
        };
        let Ok((back, _)) =
            ctirouter::proto::decode_frame(&frame, version, DecodeOptions::default())
        else {
            continue;
        };
        if back == m {
            return Some(m);
        }
    }
    None
}

/// The proxied request types (RELEASE_CALL aside: its aggregation has its
/// own tests; the Supervisor requests aside: they go through a supervisor's
/// own upstream session, docs/requests.md §7) and their confirmations.
fn request_types() -> Vec<(u32, u32)> {
    Message::TYPED
        .iter()
        .copied()
        .filter(|&t| proxied_service(t).is_some() && t != msg::RELEASE_CALL_REQ)
        // The Server service's own requests are answered by the router
        // (docs/requests.md §8), never proxied; the Supervisor's go to a
        // supervisor's own upstream session (§7), not through this path.
        .filter(|&t| proxied_service(t) != Some(Services::SERVER))
        .filter(|&t| proxied_service(t) != Some(Services::SUPERVISOR))
        .filter(|&t| !msg::is_reply(t))
        .map(|t| (t, t + 1))
        .filter(|&(_, conf)| Message::TYPED.contains(&conf))
        .collect()
}

fn open(r: &mut MemRouter, version: Version) -> SessionId {
    let id = r.connect(0).unwrap();
    r.send(id, version, OpenSpec::new(version, SERVICES).request(1));
    let got = r.received(id);
    match decode(&got[0], version) {
        Message::OpenConf(c) => assert_eq!(c.services_granted, SERVICES),
        other => panic!("{other:?}"),
    }
    id
}

#[test]
fn every_request_type_crosses_every_version_pair_both_ways() {
    let types = request_types();
    assert!(
        types.len() >= 20,
        "only {} request types: {types:?}",
        types.len()
    );
    let mut rng = Rng::new(0x5EED);
    let mut nr_checked = 0;
    for upstream in UPSTREAM_VERSIONS.map(v) {
        let mut config = Config::default();
        config.runtime.shards = 1;
        config.requests.max_outstanding = 1_000;
        let mut r = MemRouter::new(config, &[PID]);
        r.upstream_opens_at(upstream);
        r.upstream_grants(Services(SERVICES));
        for client in CLIENT_VERSIONS.map(v) {
            let id = open(&mut r, client);
            for &(request_type, conf_type) in &types {
                for case in 0..CASES {
                    let Some(mut sent) = generate(request_type, client, &mut rng) else {
                        assert!(
                            !Message::exists_at(request_type, client),
                            "no {request_type} could be generated at v{}",
                            client.number()
                        );
                        // Sent as the client's version would frame it anyway:
                        // refused with 48.
                        let frame = raw_frame(request_type, &[0; 64]);
                        r.send_raw(id, &frame);
                        let got = r.received(id);
                        assert_eq!(frame_type(&got[0]), msg::FAILURE_CONF);
                        assert_eq!(be32(&got[0], 12), 48);
                        assert!(r.upstream_received().is_empty());
                        break;
                    };
                    let invoke = 1_000 + case as u32;
                    set_invoke(&mut sent, invoke, client);
                    r.send(id, client, sent.clone());
                    let up = r.upstream_received();
                    if !Message::exists_at(request_type, upstream) {
                        assert!(up.is_empty(), "a type v{} lacks went up", upstream.number());
                        let got = r.received(id);
                        assert!(msg::is_reply(frame_type(&got[0])));
                        assert_eq!(be32(&got[0], 8), invoke);
                        continue;
                    }
                    assert_eq!(up.len(), 1, "type {request_type} at v{}", client.number());
                    let got = decode(&up[0], upstream);
                    let upstream_invoke = be32(&up[0], 8);
                    assert_ne!(upstream_invoke & 0x8000_0000, 0);
                    let mut expected = at(&sent, upstream);
                    set_invoke(&mut expected, upstream_invoke, upstream);
                    assert_eq!(
                        got,
                        expected,
                        "type {request_type} v{} → v{}",
                        client.number(),
                        upstream.number()
                    );

                    // Its confirmation, every field set, comes back at the
                    // client's version with the client's InvokeID.
                    let mut conf = generate(conf_type, upstream, &mut rng)
                        .unwrap_or_else(|| panic!("no {conf_type} at v{}", upstream.number()));
                    set_invoke(&mut conf, upstream_invoke, upstream);
                    r.upstream(conf.clone());
                    let back = r.received(id);
                    assert_eq!(back.len(), 1, "one answer");
                    let mut expected = at(&at(&conf, upstream), client);
                    set_invoke(&mut expected, invoke, client);
                    assert_eq!(
                        decode(&back[0], client),
                        expected,
                        "type {conf_type} v{} → v{}",
                        upstream.number(),
                        client.number()
                    );
                    nr_checked += 1;
                }
            }
            // Its calls' data is released upstream as it goes (RELEASE_CALL
            // aggregation, tested apart).
            r.disconnect(id);
            r.advance(Duration::from_secs(1));
            let released = r.upstream_received();
            assert!(released
                .iter()
                .all(|f| frame_type(f) == msg::RELEASE_CALL_REQ));
        }
    }
    assert!(nr_checked > 1_500, "{nr_checked} round trips");
}
