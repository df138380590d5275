//! Black-box All Events tests (docs/design.md §4.8 and fan-out): what each session
//! receives is checked against the simulator's deterministic stream,
//! regenerated in the test with `ctirouter::sim::Simulator`.
//!
//! A binary of its own: one test raises this process's RLIMIT_NOFILE for
//! its thousands of sessions (`testkit::raise_fd_limit`).

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use ctirouter::proto::constants::{msg, service};
use ctirouter::proto::{Message, Version};
use testkit::*;

/// The router binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_ctirouter");

const SEED: u64 = 21;
const AGENTS: u32 = 30;
const RATE: f64 = 20.0;

/// CallMsgMask bit of a call event type (docs/protocol.md §5.2); `None` for
/// types the mask does not govern.
fn call_mask_bit(message_type: u32) -> Option<u32> {
    let bit = match message_type {
        9 => 0x1,
        21 => 0x2,
        10 => 0x4,
        11 => 0x8,
        12 => 0x10,
        13 => 0x20,
        14 => 0x40,
        15 => 0x80,
        17 => 0x100,
        18 => 0x200,
        19 => 0x400,
        20 => 0x800,
        22 => 0x1000,
        23 => 0x2000,
        24 => 0x4000,
        25 => 0x8000,
        16 => 0x1_0000,
        34 => 0x2_0000,
        86 => 0x4_0000,
        105 => 0x8_0000,
        106 => 0x10_0000,
        116 => 0x20_0000,
        117 => 0x40_0000,
        128 => 0x80_0000,
        189 => 0x100_0000,
        248 => 0x800_0000,
        _ => return None,
    };
    Some(bit)
}

/// AgentStateMask bit of an AgentState (docs/protocol.md §5.3): 1<<s for 0–8,
/// 1<<(s−1) for 10–14, none for UNKNOWN (9).
fn agent_mask_bit(state: u16) -> u32 {
    match state {
        0..=8 => 1 << state,
        10..=14 => 1 << (state - 1),
        _ => 0,
    }
}

fn agent_state_of(frame: &[u8]) -> u16 {
    match decode_strict(frame, Version::MAX) {
        Message::AgentStateEvent(e) => e.agent_state,
        other => panic!("not an agent state event: {other:?}"),
    }
}

/// Whether an All Events session with these masks gets this v24 event
/// (docs/design.md §4.8: SYSTEM_EVENT and CALL_TRANSLATION_ROUTE_EVENT unmasked).
fn passes(frame: &[u8], call_mask: u32, agent_mask: u32) -> bool {
    match frame_type(frame) {
        msg::SYSTEM_EVENT | msg::CALL_TRANSLATION_ROUTE_EVENT => true,
        msg::AGENT_STATE_EVENT => agent_mask & agent_mask_bit(agent_state_of(frame)) != 0,
        t => match call_mask_bit(t) {
            Some(bit) => call_mask & bit != 0,
            None => true,
        },
    }
}

/// A session under a mask and what it received after OPEN_CONF + SYSTEM_EVENT.
struct Masked {
    name: &'static str,
    version: Version,
    call_mask: u32,
    agent_mask: u32,
    client: Client,
    frames: Vec<Vec<u8>>,
    reference: Reference,
    tracker: RunTracker,
}

impl Masked {
    fn open(
        router: &RouterProcess,
        name: &'static str,
        version: Version,
        call_mask: u32,
        agent_mask: u32,
    ) -> Masked {
        let mut client = router.client();
        client.open_all_events_masked(version, call_mask, agent_mask);
        let keep = move |f: &[u8]| passes(f, call_mask, agent_mask);
        let reference = Reference::with_transform(
            SEED,
            AGENTS,
            RATE,
            Box::new(move |f: &[u8]| {
                if keep(f) {
                    to_version(f, version)
                } else {
                    None
                }
            }),
        );
        Masked {
            name,
            version,
            call_mask,
            agent_mask,
            client,
            frames: Vec::new(),
            reference,
            tracker: RunTracker::new(),
        }
    }

    fn pump(&mut self, wait: Duration) {
        while let Some((_, frame)) = self.client.recv_frame(wait) {
            self.tracker
                .push(&mut self.reference, &frame)
                .unwrap_or_else(|e| panic!("{}: {e}", self.name));
            self.frames.push(frame);
        }
    }
}

#[test]
fn all_events_masks_filter_call_events_by_type_and_agent_events_by_state() {
    let router = RouterProcess::start(
        BIN,
        &[
            "--sim-seed",
            &SEED.to_string(),
            "--sim-agents",
            &AGENTS.to_string(),
            "--sim-calls-per-sec",
            &RATE.to_string(),
            "--sim-speed",
            "2",
        ],
    );
    let mut masked = vec![
        Masked::open(&router, "no calls, no agents", Version::MAX, 0, 0),
        Masked::open(&router, "CALL_DELIVERED only", Version::MAX, 0x1, 0),
        Masked::open(&router, "AVAILABLE only", Version::MAX, 0, 0x8),
        Masked::open(
            &router,
            "v15 DELIVERED+CLEARED, TALKING+HOLD",
            v(15),
            0x1 | 0x20,
            0x10 | 0x200,
        ),
        Masked::open(
            &router,
            "v24 ESTABLISHED+END_CALL, LOGIN+NOT_READY",
            Version::MAX,
            0x4 | 0x4000,
            0x1 | 0x4,
        ),
    ];
    // The unmasked control opens last: every event it gets was dispatched
    // after the masked sessions had registered.
    std::thread::sleep(Duration::from_millis(300));
    let mut control = Masked::open(&router, "control", Version::MAX, ALL_CALLS, ALL_AGENTS);
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        control.pump(Duration::from_millis(1));
        for m in masked.iter_mut() {
            m.pump(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // The masked sessions read on a little longer, so they cover the control's window.
    let until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < until {
        for m in masked.iter_mut() {
            m.pump(Duration::from_millis(5));
        }
    }
    assert!(
        control.frames.len() >= 50,
        "control got only {} events",
        control.frames.len()
    );

    for m in &masked {
        // What the control saw, as this session should see it.
        let expected: Vec<Vec<u8>> = control
            .frames
            .iter()
            .filter(|f| passes(f, m.call_mask, m.agent_mask))
            .filter_map(|f| to_version(f, m.version))
            .collect();
        let covered = expected.is_empty()
            || m.frames
                .windows(expected.len())
                .any(|w| w == expected.as_slice());
        assert!(
            covered,
            "{}: the {} matching events of the control's window are not a contiguous part of its {} events",
            m.name,
            expected.len(),
            m.frames.len()
        );
        for frame in &m.frames {
            let t = frame_type(frame);
            if t != msg::SYSTEM_EVENT {
                assert_eq!(
                    &frame_body(frame)[..4],
                    &[0, 0, 0, 0],
                    "{}: MonitorID not 0 in {}",
                    m.name,
                    describe(frame)
                );
            }
        }
    }
    eprintln!(
        "masks: control {} events; {:?}",
        control.frames.len(),
        masked
            .iter()
            .map(|m| (m.name, m.frames.len()))
            .collect::<Vec<_>>()
    );
    // The named cases, spelled out.
    let only = |m: &Masked, ok: &dyn Fn(&[u8]) -> bool| {
        for f in &m.frames {
            assert!(ok(f), "{}: got {}", m.name, describe(f));
        }
    };
    only(&masked[0], &|f| frame_type(f) == msg::SYSTEM_EVENT);
    only(&masked[1], &|f| {
        matches!(frame_type(f), msg::CALL_DELIVERED_EVENT | msg::SYSTEM_EVENT)
    });
    only(&masked[2], &|f| {
        frame_type(f) == msg::SYSTEM_EVENT
            || (frame_type(f) == msg::AGENT_STATE_EVENT && agent_state_of(f) == 3)
    });
    let nr_available = control
        .frames
        .iter()
        .filter(|f| frame_type(f) == msg::AGENT_STATE_EVENT && agent_state_of(f) == 3)
        .count();
    if nr_available > 0 {
        assert!(
            !masked[2].frames.is_empty(),
            "AVAILABLE-only session got nothing; the control got {nr_available}"
        );
    }
    for f in &control.frames {
        assert_eq!(
            &frame_body(f)[..4],
            &[0, 0, 0, 0],
            "control: MonitorID not 0 in {}",
            describe(f)
        );
    }
}

/// 1,000 sessions at once; every one receives the simulator's events as a
/// contiguous, gap-free, duplicate-free run of the reference stream, and all
/// of them hold the identical bytes for a common window of 200 events.
#[test]
fn thousand_sessions_each_receive_every_event_once_and_in_order() {
    use mio::net::TcpStream;
    use mio::{Events, Interest, Poll, Token};

    const NR_SESSIONS: usize = 1000;
    const CONNECT_BATCH: usize = 50;
    const WINDOW: usize = 200;
    let limit = raise_fd_limit(NR_SESSIONS as u64 + 1024);
    assert!(
        limit >= NR_SESSIONS as u64 + 64,
        "RLIMIT_NOFILE {limit} too low"
    );

    let router = RouterProcess::start(
        BIN,
        &[
            "--sim-speed",
            "1",
            "--sim-calls-per-sec",
            "20",
            "--sim-seed",
            "7",
            "--sim-agents",
            "50",
        ],
    );
    let mut reference = Reference::new(7, 50, 20.0);
    let open = Message::from(open_req(
        1,
        24,
        service::ALL_EVENTS,
        ALL_CALLS,
        ALL_AGENTS,
        NO_IDLE,
        "fanout",
        b"",
    ))
    .to_frame(Version::MAX)
    .unwrap();

    #[derive(PartialEq)]
    enum Phase {
        OpenConf,
        Peripherals(u16),
        Events,
    }
    struct Session {
        stream: TcpStream,
        buf: Vec<u8>,
        phase: Phase,
        tracker: RunTracker,
    }

    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(1024);
    let mut sessions: Vec<Session> = Vec::with_capacity(NR_SESSIONS);
    let mut scratch = vec![0u8; 64 * 1024];
    let started = Instant::now();
    let deadline = started + Duration::from_secs(25);
    let mut target: Option<usize> = None;
    let mut all_open_at = None;

    loop {
        let now = Instant::now();
        let nr_streaming = sessions
            .iter()
            .filter(|s| s.phase == Phase::Events && s.tracker.count > 0)
            .count();
        assert!(
            now < deadline,
            "after {:?}: {} sessions connected, {} streaming, target {:?}, lowest end {:?}",
            started.elapsed(),
            sessions.len(),
            nr_streaming,
            target,
            sessions.iter().map(|s| s.tracker.end().unwrap_or(0)).min()
        );
        // Connect the next batch (blocking connect + OPEN_REQ, then nonblocking).
        if sessions.len() < NR_SESSIONS {
            for _ in 0..CONNECT_BATCH.min(NR_SESSIONS - sessions.len()) {
                let mut std_stream = std::net::TcpStream::connect(router.addr()).expect("connect");
                std_stream.set_nodelay(true).unwrap();
                std_stream.write_all(&open).unwrap();
                std_stream.set_nonblocking(true).unwrap();
                let mut stream = TcpStream::from_std(std_stream);
                poll.registry()
                    .register(&mut stream, Token(sessions.len()), Interest::READABLE)
                    .unwrap();
                sessions.push(Session {
                    stream,
                    buf: Vec::new(),
                    phase: Phase::OpenConf,
                    tracker: RunTracker::new(),
                });
            }
        }
        if target.is_none() && nr_streaming == NR_SESSIONS {
            // Every session is open and has events: the common window starts
            // at the latest first event.
            let latest = sessions
                .iter()
                .filter_map(|s| s.tracker.start())
                .max()
                .unwrap();
            target = Some(latest + WINDOW);
            all_open_at = Some(started.elapsed());
        }
        if let Some(target) = target {
            if sessions.iter().all(|s| s.tracker.end().unwrap() >= target) {
                break;
            }
        }
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
        for event in events.iter() {
            let i = event.token().0;
            let Session {
                stream,
                buf,
                phase,
                tracker,
            } = &mut sessions[i];
            loop {
                match stream.read(&mut scratch) {
                    Ok(0) => panic!("session {i}: the router closed the connection"),
                    Ok(n) => buf.extend_from_slice(&scratch[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => panic!("session {i}: read: {e}"),
                }
            }
            let mut used = 0;
            while buf.len() - used >= 8 {
                let len = 8 + u32::from_be_bytes(buf[used..used + 4].try_into().unwrap()) as usize;
                assert!(len <= 12_500, "session {i}: frame of {len} bytes");
                if buf.len() - used < len {
                    break;
                }
                let frame = &buf[used..used + len];
                used += len;
                match phase {
                    Phase::OpenConf => {
                        let Message::OpenConf(conf) = decode_strict(frame, Version::MAX) else {
                            panic!("session {i}: expected OPEN_CONF, got {}", describe(frame));
                        };
                        assert_eq!(
                            (conf.invoke_id, conf.services_granted),
                            (1, service::ALL_EVENTS)
                        );
                        *phase = Phase::Peripherals(conf.num_peripherals.unwrap_or(1).max(1));
                    }
                    Phase::Peripherals(left) => {
                        let Message::SystemEvent(sys) = decode_strict(frame, Version::MAX) else {
                            panic!(
                                "session {i}: expected SYSTEM_EVENT, got {}",
                                describe(frame)
                            );
                        };
                        assert_eq!(sys.system_event_id, 3);
                        *left -= 1;
                        if *left == 0 {
                            *phase = Phase::Events;
                        }
                    }
                    Phase::Events => {
                        tracker
                            .push(&mut reference, frame)
                            .unwrap_or_else(|e| panic!("session {i}: {e}"));
                    }
                }
            }
            buf.drain(..used);
        }
    }
    let target = target.unwrap();
    let counts: Vec<usize> = sessions.iter().map(|s| s.tracker.count).collect();
    eprintln!(
        "fan-out: {NR_SESSIONS} sessions streaming after {:?}, common window [{}, {target}) of the reference reached after {:?}; events per session {}..={}",
        all_open_at.unwrap(),
        target - WINDOW,
        started.elapsed(),
        counts.iter().min().unwrap(),
        counts.iter().max().unwrap()
    );
    // Every run covers the window: all sessions hold the identical bytes for it.
    for (i, s) in sessions.iter().enumerate() {
        assert!(
            s.tracker.start().unwrap() <= target - WINDOW && s.tracker.end().unwrap() >= target,
            "session {i}"
        );
    }
}
