//! 2,000 desktops through one router (docs/requests.md §5), black-box:
//! Client Events + Client Control sessions, each with its own ClientID,
//! agent and instrument, at versions 13, 19, 20 and 24 in turn, each send
//! one SET_AGENT_STATE_REQ naming no agent. The fake CTI Server holds every
//! request until it has all 2,000 (so the router has 2,000 pending at once,
//! within the default `[requests] max_pending` of 4,096 and one each of the
//! default `max_outstanding` of 8), then answers them in a shuffled order.
//! The upstream must see exactly 2,000 requests, each completed with its
//! own session's agent; each session must get exactly one CONF, its own
//! InvokeID, at its own version, before a barrier event sent after the
//! last reply (replies and events share the ordered ring). While the
//! requests are in flight the CTI Server also sends events: an All Events
//! session gets every one of them, in order and unchanged, and none of the
//! replies. One test thread, non-blocking sockets on one `mio::Poll`.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::fake_cti::*;
use crate::BIN;

use ctirouter::proto::constants::service;
use ctirouter::proto::msg::{CallDeliveredEvent, SetAgentStateConf, SetAgentStateReq};
use ctirouter::proto::{Message, Version};
use testkit::*;

const N: usize = 2_000;
/// Connections whose OPEN_CONF has not come yet, at most (the router's
/// `max_pending_opens` is 1,000).
const OPENING: usize = 200;
const BARRIER: &str = "every reply sent";
/// Events the CTI Server sends while the requests are in flight.
const NR_EVENTS: u32 = 300;

/// Event `k` of those: a call at a device no desk has.
fn event(k: u32) -> Message {
    CallDeliveredEvent {
        peripheral_id: PID,
        peripheral_type: 17,
        connection_device_id_type: 1,
        connection_call_id: 900_000 + k,
        local_connection_state: 2,
        connection_device_id: Some(format!("T{k}").as_str().into()),
        alerting_device_id: Some("99999".into()),
        ..Default::default()
    }
    .into()
}

fn version_of(i: usize) -> Version {
    Version::new([13, 19, 20, 24][i % 4]).unwrap()
}

fn agent_id(i: usize) -> String {
    format!("1{i:04}")
}

fn instrument(i: usize) -> String {
    format!("4{i:04}")
}

/// The InvokeID session `i` uses: unique across sessions.
fn invoke_of(i: usize) -> u32 {
    70_000 + 3 * i as u32
}

#[derive(PartialEq, Eq, Debug)]
enum Phase {
    Opening,
    Open,
    /// The barrier came.
    Done,
}

struct Desk {
    stream: TcpStream,
    version: Version,
    buf: Vec<u8>,
    phase: Phase,
    /// Reply-type frames received after OPEN_CONF.
    replies: Vec<Vec<u8>>,
}

impl Desk {
    /// Read what is there; false when the router closed the connection.
    fn read(&mut self, scratch: &mut [u8]) -> bool {
        loop {
            match self.stream.read(scratch) {
                Ok(0) => return false,
                Ok(n) => self.buf.extend_from_slice(&scratch[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }
}

#[test]
fn two_thousand_desktops_each_get_exactly_their_own_conf() {
    let limit = raise_fd_limit(N as u64 + 1024);
    assert!(limit >= N as u64 + 256, "RLIMIT_NOFILE {limit} too low");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);

    // The fake holds every request until it has N, then answers them all,
    // shuffled.
    let mut held: Vec<u32> = Vec::with_capacity(N);
    let mut rng = Rng::new(7);
    let pg = ProxyPg::start(Version::MAX, move |_, request| {
        let Message::SetAgentStateReq(r) = request else {
            panic!("unexpected request {request:?}");
        };
        held.push(r.invoke_id);
        if held.len() < N {
            return Answer::Silent;
        }
        for i in (1..held.len()).rev() {
            held.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        Answer::Reply(
            held.drain(..)
                .map(|invoke_id| SetAgentStateConf { invoke_id }.into())
                .collect(),
        )
    });
    let mut clients = String::with_capacity(N * 80);
    for i in 0..N {
        clients.push_str(&client_entry(
            &format!("desk-{i}"),
            &["client-events", "client-control"],
        ));
    }
    clients.push_str("[[clients]]\nclient_id = \"watch\"\n");
    let router = router(BIN, &config(&[pg.addr()], Version::MAX, &clients), &[]);
    let (mut observer, _) = open_when_up(
        router.addr(),
        &OpenSpec::new(Version::MAX, service::ALL_EVENTS).client("watch", b""),
    );

    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 64 * 1024];
    let mut desks: Vec<Desk> = Vec::with_capacity(N);
    let mut nr_open = 0;
    let mut nr_done = 0;
    let mut barrier_sent = false;
    let mut requests_sent_at = None;
    let mut opened_after = Duration::ZERO;

    let granted = service::CLIENT_EVENTS | service::CLIENT_CONTROL;
    loop {
        assert!(
            Instant::now() < deadline,
            "after {:?}: {} connected, {nr_open} open, {} with a reply, {nr_done} past the barrier; the fake read {} requests",
            started.elapsed(),
            desks.len(),
            desks.iter().filter(|d| !d.replies.is_empty()).count(),
            pg.seen().len()
        );
        // Connect while few are still opening.
        while desks.len() < N && desks.len() - nr_open < OPENING {
            let i = desks.len();
            let spec = desk_spec(
                version_of(i),
                &format!("desk-{i}"),
                &agent_id(i),
                &instrument(i),
            );
            let open = Message::from(spec.request(1))
                .to_frame(spec.version)
                .unwrap();
            let mut std_stream = std::net::TcpStream::connect_timeout(&router.addr(), WAIT)
                .unwrap_or_else(|e| panic!("desk {i}: connect: {e}"));
            std_stream.set_nodelay(true).unwrap();
            std_stream.write_all(&open).unwrap();
            std_stream.set_nonblocking(true).unwrap();
            let mut stream = TcpStream::from_std(std_stream);
            poll.registry()
                .register(&mut stream, Token(i), Interest::READABLE)
                .unwrap();
            desks.push(Desk {
                stream,
                version: spec.version,
                buf: Vec::new(),
                phase: Phase::Opening,
                replies: Vec::new(),
            });
        }
        // All open: every desk sends its request, in one sweep.
        if nr_open == N && requests_sent_at.is_none() {
            opened_after = started.elapsed();
            for (i, d) in desks.iter_mut().enumerate() {
                let request = SetAgentStateReq {
                    invoke_id: invoke_of(i),
                    peripheral_id: 0,
                    agent_state: 3,
                    event_reason_code: i as u16,
                    ..Default::default()
                };
                let frame = Message::from(request).to_frame(d.version).unwrap();
                // A few dozen bytes on an idle socket: never a short write.
                let n = d.stream.write(&frame).unwrap();
                assert_eq!(n, frame.len(), "desk {i}: short write");
            }
            requests_sent_at = Some(Instant::now());
            // Events while the requests are in flight (and their answers
            // come back, once the fake has them all).
            for k in 0..NR_EVENTS {
                pg.send(event(k));
            }
        }
        // Every desk has a reply: the fake sent all N, then the barrier.
        if requests_sent_at.is_some()
            && !barrier_sent
            && desks.iter().all(|d| !d.replies.is_empty())
        {
            pg.barrier(BARRIER);
            barrier_sent = true;
        }
        if nr_done == N {
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
        for event in events.iter() {
            let i = event.token().0;
            let d = &mut desks[i];
            let alive = d.read(&mut scratch);
            while let Some(frame) = take_frame(&mut d.buf) {
                let t = frame_type(&frame);
                match d.phase {
                    Phase::Opening => {
                        let Message::OpenConf(conf) = decode_strict(&frame, d.version) else {
                            panic!("desk {i}: expected OPEN_CONF, got {}", describe(&frame));
                        };
                        assert_eq!(
                            (conf.invoke_id, conf.services_granted, conf.pg_status),
                            (1, granted, 0),
                            "desk {i}"
                        );
                        d.phase = Phase::Open;
                        nr_open += 1;
                    }
                    Phase::Open if is_barrier(&frame, d.version, BARRIER) => {
                        d.phase = Phase::Done;
                        nr_done += 1;
                    }
                    Phase::Open if is_reply(t) => d.replies.push(frame),
                    Phase::Open => {}
                    Phase::Done => {
                        assert!(
                            !is_reply(t),
                            "desk {i}: a reply after the barrier: {}",
                            describe(&frame)
                        )
                    }
                }
            }
            assert!(alive, "desk {i}: the router closed the connection");
        }
    }
    let answered_after = requests_sent_at.unwrap().elapsed();

    // The All Events session: every event, in order, unchanged; no reply.
    let frames = until_barrier(&mut observer, BARRIER);
    let got: Vec<Message> = frames
        .iter()
        .inspect(|f| assert!(!is_reply(frame_type(f)), "All Events got {}", describe(f)))
        // The SYSTEM_EVENTs that follow its OPEN_CONF are not ours.
        .filter(|f| frame_type(f) != ctirouter::proto::constants::msg::SYSTEM_EVENT)
        .map(|f| decode_strict(f, Version::MAX))
        .collect();
    let expected: Vec<Message> = (0..NR_EVENTS).map(event).collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "events the All Events session got"
    );
    assert!(got == expected, "the events changed or moved on the way");

    // Each desk: exactly one reply, its own CONF at its own version.
    for (i, d) in desks.iter().enumerate() {
        assert_eq!(
            d.replies.len(),
            1,
            "desk {i}: {:?}",
            d.replies.iter().map(|f| describe(f)).collect::<Vec<_>>()
        );
        assert_eq!(
            decode_strict(&d.replies[0], d.version),
            SetAgentStateConf {
                invoke_id: invoke_of(i)
            }
            .into(),
            "desk {i} (v{})",
            d.version
        );
    }
    // The upstream: exactly N requests, fresh top-bit InvokeIDs, each
    // completed with the agent of the session that sent it.
    let seen = pg.seen();
    assert_eq!(seen.len(), N, "requests the CTI Server read");
    let mut by_session: HashMap<u16, u32> = HashMap::new();
    for s in &seen {
        let Message::SetAgentStateReq(r) = decode_strict(&s.frame, Version::MAX) else {
            panic!("{}", describe(&s.frame));
        };
        assert_ne!(r.invoke_id & 0x8000_0000, 0);
        let i = r.event_reason_code as usize;
        assert!(i < N, "{r:?}");
        assert_eq!(
            (
                r.peripheral_id,
                r.agent_id.as_ref().map(|a| a.to_str_lossy().into_owned()),
                r.agent_instrument
                    .as_ref()
                    .map(|a| a.to_str_lossy().into_owned()),
            ),
            (PID, Some(agent_id(i)), Some(instrument(i))),
            "desk {i}'s request went up with another agent"
        );
        assert!(
            by_session
                .insert(r.event_reason_code, r.invoke_id)
                .is_none(),
            "desk {i}'s request went up twice"
        );
    }
    let mut ids: Vec<u32> = by_session.values().copied().collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), N, "an upstream InvokeID was used twice");
    eprintln!(
        "load: {N} desks open after {opened_after:?}; {N} requests answered {answered_after:?} after the sweep; total {:?}",
        started.elapsed()
    );
}
