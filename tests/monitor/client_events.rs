//! Black-box tests of the Client Events service (docs/design.md §4.10): a
//! session names its agent by AgentInstrument, AgentExtension or AgentID in
//! OPEN_REQ and gets that agent's AGENT_STATE_EVENTs (MonitorID = the
//! OPEN_CONF MonitorID, SessionID = its session id) and the events of calls
//! its instrument takes part in, through its OPEN_REQ masks. The router runs
//! in-process with a scripted fake PG as its upstream; three sessions per
//! test (both shards, in all likelihood); a Client Monitor observer tells
//! each session's SessionID.

use ctirouter::proto::constants::{msg, service, status};
use ctirouter::proto::Message;
use testkit::*;

/// CALL_HELD excluded from the call mask, NOT_READY (state 2) from the agent mask.
const CALL_MASK: u32 = !0x0000_0008;
const AGENT_MASK: u32 = ALL_AGENTS & !(1 << 2);

#[derive(Debug, Clone, Copy)]
enum Named {
    Instrument,
    Extension,
    Id,
}

struct CeSession {
    cli: Client,
    monitor_id: u32,
    session_id: u32,
}

/// Open `n` Client Events sessions for agent 1001 (extension and
/// instrument 3001) named by `how`, and learn their SessionIDs.
fn open_ce(h: &Harness, observer: &mut Client, how: Named, n: usize) -> Vec<CeSession> {
    (0..n)
        .map(|_| {
            let mut cli = h.connect();
            let mut spec = OpenSpec::services(service::CLIENT_EVENTS).masks(CALL_MASK, AGENT_MASK);
            match how {
                Named::Instrument => spec.agent_instrument = Some("3001".into()),
                Named::Extension => spec.agent_extension = Some("3001".into()),
                Named::Id => spec.agent_id = Some("1001".into()),
            }
            let conf = cli.open(&spec);
            assert_eq!(conf.services_granted, service::CLIENT_EVENTS);
            assert_ne!(
                conf.monitor_id, 0,
                "OPEN_CONF carries the Client Events MonitorID"
            );
            let port = cli.port as u32;
            let i = observer.expect("OPENED of the Client Events session", |f| {
                matches!(decode(f), Message::ClientSessionOpenedEvent(e) if e.client_port == port)
            });
            let Message::ClientSessionOpenedEvent(opened) = decode(&observer.log[i]) else {
                unreachable!()
            };
            // What Client Monitor says of it: its agent fields as named.
            match how {
                Named::Instrument => {
                    assert_eq!(opened.agent_instrument.unwrap().as_bytes(), b"3001")
                }
                Named::Extension => assert_eq!(opened.agent_extension.unwrap().as_bytes(), b"3001"),
                Named::Id => assert_eq!(opened.agent_id.unwrap().as_bytes(), b"1001"),
            }
            assert_eq!(opened.services_granted, service::CLIENT_EVENTS);
            assert_eq!(
                (opened.call_msg_mask, opened.agent_state_mask),
                (CALL_MASK, AGENT_MASK)
            );
            CeSession {
                cli,
                monitor_id: conf.monitor_id,
                session_id: opened.session_id,
            }
        })
        .collect()
}

fn client_events_by(how: Named) {
    let mut h = Harness::new();
    let mut observer = h.connect();
    observer.open(&OpenSpec::services(service::CLIENT_MONITOR));
    let mut sessions = open_ce(&h, &mut observer, how, 3);
    let (a, b) = (call(0x0100_0101, "T101"), call(0x0100_0102, "T102"));

    h.send(agent_ev("1001", "3001", 0)); // LOGIN: the agent is known from here on
    h.send(agent_ev("1001", "3001", 2)); // NOT_READY: masked out
    h.send(agent_ev("1002", "3002", 3)); // another agent
    h.send(delivered(a, "T101", "5550101", "8001", Some((101, 200))));
    h.send(delivered(a, "3001", "5550101", "3001", None)); // its instrument joins
    h.send(established(a, "3001", "5550101"));
    h.send(agent_ev("1001", "3001", 4)); // TALKING
    h.send(held(a, None)); // masked out (CALL_HELD)
    h.send(retrieved(a, None)); // names only the call
    h.send(delivered(b, "3002", "5550102", "3002", None)); // not its instrument
    h.send(conn_cleared(a, Some("3001"))); // its instrument leaves: last one
    h.send(cleared(a));
    h.send(end_call(a));
    h.send(agent_ev("1001", "3001", 6)); // WORK_READY
    let marker = agent_fields(Some("1001"), Some("3001"), Some("3001"));
    let got = h.sync_with(
        marker,
        &mut sessions.iter_mut().map(|s| &mut s.cli).collect::<Vec<_>>(),
    );
    for (k, (s, events)) in sessions.iter().zip(&got).enumerate() {
        let m = s.monitor_id;
        assert_eq!(
            shapes(events),
            vec![
                shape(msg::AGENT_STATE_EVENT, m),
                // The call's bracket opens before its first event here
                // (docs/call-brackets.md) and closes after the agent leaves.
                shape(msg::BEGIN_CALL_EVENT, m),
                shape(msg::CALL_DELIVERED_EVENT, m),
                shape(msg::CALL_ESTABLISHED_EVENT, m),
                shape(msg::AGENT_STATE_EVENT, m),
                shape(msg::CALL_RETRIEVED_EVENT, m),
                shape(msg::CALL_CONNECTION_CLEARED_EVENT, m),
                shape(msg::END_CALL_EVENT, m),
                shape(msg::AGENT_STATE_EVENT, m),
            ],
            "session {k} ({how:?})"
        );
        let states: Vec<(u16, u32)> = events
            .iter()
            .filter_map(|f| match decode(f) {
                Message::AgentStateEvent(e) => Some((e.agent_state, e.session_id)),
                _ => None,
            })
            .collect();
        assert_eq!(
            states,
            vec![(0, s.session_id), (4, s.session_id), (6, s.session_id)],
            "session {k}: AGENT_STATE_EVENT copies carry the session's SessionID"
        );
        // Apart from MonitorID and SessionID, the copy is the event.
        let mut want = Message::from(agent_ev("1001", "3001", 4))
            .to_frame(v24())
            .unwrap();
        want[8..12].copy_from_slice(&m.to_be_bytes());
        want[16..20].copy_from_slice(&s.session_id.to_be_bytes());
        assert_eq!(events[4], want, "session {k}: the TALKING copy");
    }
    // The Client Events MonitorID is not a Peripheral Monitor one to stop.
    for s in sessions.iter_mut() {
        assert_eq!(
            s.cli.monitor_stop(s.monitor_id),
            Err(status::E_CTI_FUNCTION_NOT_AVAILABLE)
        );
    }
}

#[test]
fn client_events_by_agent_instrument() {
    client_events_by(Named::Instrument);
}

#[test]
fn client_events_by_agent_extension() {
    client_events_by(Named::Extension);
}

#[test]
fn client_events_by_agent_id() {
    client_events_by(Named::Id);
}

/// A session that names its instrument gets the calls of that instrument
/// even before any AGENT_STATE_EVENT of the agent was seen (the instrument
/// is a device it watches directly).
#[test]
fn client_events_by_instrument_before_the_agent_is_known() {
    let mut h = Harness::new();
    let mut observer = h.connect();
    observer.open(&OpenSpec::services(service::CLIENT_MONITOR));
    let mut sessions = open_ce(&h, &mut observer, Named::Instrument, 3);
    let a = call(0x0100_0111, "T111");
    h.send(delivered(a, "3001", "5550111", "3001", None));
    h.send(cleared(a));
    let marker = agent_fields(None, None, Some("3001"));
    let got = h.sync_with(
        marker,
        &mut sessions.iter_mut().map(|s| &mut s.cli).collect::<Vec<_>>(),
    );
    for (s, events) in sessions.iter().zip(&got) {
        assert_eq!(
            shapes(events),
            vec![
                shape(msg::BEGIN_CALL_EVENT, s.monitor_id),
                shape(msg::CALL_DELIVERED_EVENT, s.monitor_id),
                shape(msg::CALL_CLEARED_EVENT, s.monitor_id),
                shape(msg::END_CALL_EVENT, s.monitor_id),
            ]
        );
    }
}

/// OPEN_REQ with Client Events and no agent field → FAILURE_CONF 6, close.
#[test]
fn client_events_without_an_agent_is_refused_with_6() {
    let h = Harness::new();
    for empty in [false, true] {
        let mut c = h.connect();
        let mut spec = OpenSpec::services(service::CLIENT_EVENTS);
        if empty {
            spec.agent_id = Some(String::new());
        }
        assert_eq!(c.open_refused(&spec), status::E_CTI_REQUIRED_DATA_MISSING);
        c.expect_closed_within(WAIT);
    }
}
