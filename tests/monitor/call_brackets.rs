//! Black-box tests of call brackets (docs/call-brackets.md): every watcher —
//! a Client Events session (agent named by AgentInstrument, or by AgentID
//! only) or a Peripheral Monitor device monitor on the agent's extension —
//! gets exactly one BEGIN_CALL_EVENT before and one END_CALL_EVENT after its
//! association with a call, BEGIN carrying the call's data as the upstream
//! told it before the event that opened the association.
//!
//! The router runs in-process with a scripted fake PG as its upstream
//! (`testkit::Harness`), so each test writes the exact upstream
//! stream: an inbound call, an outbound call placed by the agent, a consult
//! transfer and a consult conference (the shapes of `src/sim/flow.rs`).
//! Watchers are opened at protocol versions 13, 19, 20 and 24, and what each
//! receives is decoded strictly at its own version. A sentinel
//! AGENT_STATE_EVENT of the watcher's agent, sent after the scenario, says
//! the stream has been delivered.
//!
//! Two independent checks per watcher, both from the doc: [`oracle`] (the
//! bracket properties, with no knowledge of which events reach the
//! watcher) and the scenario's hand-written expected sequence.

use ctirouter::proto::constants::{device_type, msg, service};
use ctirouter::proto::msg::*;
use ctirouter::proto::{
    decode_frame, CtiString, DecodeOptions, Message, NamedArray, NamedVar, Unspec, Version,
};
use testkit::model::{
    built_begin, built_end, ends_association, facts, normalized, primary_call, AgentField,
    Associations, Bracket, CallData, CallDataTable, CallId, Kind, Stream, Watch,
};
use testkit::*;

/// The protocol versions every scenario's watchers speak.
const VERSIONS: [u32; 4] = [13, 19, 20, 24];

fn ver(n: u32) -> Version {
    Version::new(n).expect("a served version")
}

// ---------------------------------------------------------------------------
// Agents and watchers
// ---------------------------------------------------------------------------

/// An agent as the fake PG reports it: AgentID, and extension = instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Agent {
    id: &'static str,
    ext: &'static str,
}

const AGENT_A: Agent = Agent {
    id: "1001",
    ext: "3001",
};
const AGENT_B: Agent = Agent {
    id: "1002",
    ext: "3002",
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WatcherKind {
    /// Client Events, OPEN_REQ names AgentInstrument.
    ClientEventsByInstrument,
    /// Client Events, OPEN_REQ names AgentID only.
    ClientEventsByAgentId,
    /// Peripheral Monitor, MONITOR_START_REQ on the agent's extension.
    DeviceMonitor,
}

const KINDS: [WatcherKind; 3] = [
    WatcherKind::ClientEventsByInstrument,
    WatcherKind::ClientEventsByAgentId,
    WatcherKind::DeviceMonitor,
];

struct Watcher {
    cli: Client,
    version: Version,
    kind: WatcherKind,
    agent: Agent,
    monitor_id: u32,
}

impl Watcher {
    fn label(&self) -> String {
        format!(
            "{:?} of agent {} at v{} (MonitorID {})",
            self.kind,
            self.agent.id,
            self.version.number(),
            self.monitor_id
        )
    }
}

/// Decode a frame strictly at `version` (whole frame, no trailing bytes).
fn decode_at(f: &[u8], version: Version) -> Message {
    match decode_frame(f, version, DecodeOptions::STRICT) {
        Ok((m, used)) if used == f.len() => m,
        Ok(_) => panic!("trailing bytes in a v{version} frame: {}", hex::encode(f)),
        Err(e) => panic!(
            "type {} does not decode at v{version}: {e:?}; frame {}",
            frame_type(f),
            hex::encode(f)
        ),
    }
}

/// Open one watcher of `agent` at protocol `version`.
fn open_watcher(h: &Harness, version: Version, kind: WatcherKind, agent: Agent) -> Watcher {
    let mut cli = h.connect();
    let services = match kind {
        WatcherKind::DeviceMonitor => service::PERIPHERAL_MONITOR,
        _ => service::CLIENT_EVENTS,
    };
    let mut req = OpenSpec::services(services).request(cli.invoke());
    req.version_number = version.number();
    match kind {
        WatcherKind::ClientEventsByInstrument => req.agent_instrument = Some(agent.ext.into()),
        WatcherKind::ClientEventsByAgentId => req.agent_id = Some(agent.id.into()),
        WatcherKind::DeviceMonitor => {}
    }
    let invoke = req.invoke_id;
    cli.send_raw(&Message::from(req).to_frame(version).unwrap());
    let i = cli.expect("OPEN_CONF", |_| true);
    let Message::OpenConf(conf) = decode_at(&cli.log[i].clone(), version) else {
        panic!("the first frame after OPEN_REQ is not OPEN_CONF")
    };
    assert_eq!(conf.invoke_id, invoke);
    assert_eq!(conf.services_granted, services, "{kind:?} v{version}");
    let monitor_id = match kind {
        WatcherKind::DeviceMonitor => {
            let invoke = cli.invoke();
            let start = MonitorStartReq {
                invoke_id: invoke,
                peripheral_id: PID,
                connection_call_id: 0,
                call_msg_mask: ALL_CALLS,
                agent_state_mask: ALL_AGENTS,
                connection_device_id_type: 0xFFFF,
                monitored_device_type: device_type::DEVICE_IDENTIFIER,
                connection_device_id: None,
                monitored_device_id: Some(agent.ext.into()),
            };
            cli.send_raw(&Message::from(start).to_frame(version).unwrap());
            let f = cli.reply(invoke);
            match decode_at(&f, version) {
                Message::MonitorStartConf(c) => c.monitor_id,
                other => panic!("MONITOR_START_REQ at v{version} answered with {other:?}"),
            }
        }
        _ => conf.monitor_id,
    };
    assert_ne!(monitor_id, 0, "{kind:?} v{version}: a watcher's MonitorID");
    Watcher {
        cli,
        version,
        kind,
        agent,
        monitor_id,
    }
}

/// Every watcher kind of agents A and B at every version.
fn open_watchers(h: &Harness) -> Vec<Watcher> {
    let mut out = Vec::new();
    for v in VERSIONS {
        for agent in [AGENT_A, AGENT_B] {
            for kind in KINDS {
                out.push(open_watcher(h, ver(v), kind, agent));
            }
        }
    }
    out
}

/// The sentinel: an AGENT_STATE_EVENT of `agent` with this reason code.
fn sentinel(agent: Agent, reason: u16) -> AgentStateEvent {
    agent_state_ev(Some(agent.id), Some(agent.ext), Some(agent.ext), 3, reason)
}

/// What the watcher received up to its copy of the sentinel with `reason`,
/// decoded at its version; replies and SYSTEM_EVENTs left out.
fn received_until(w: &mut Watcher, reason: u16) -> Vec<Message> {
    let version = w.version;
    let start = w.cli.cursor;
    let is_mark = move |f: &[u8]| {
        frame_type(f) == msg::AGENT_STATE_EVENT
            && matches!(decode_at(f, version), Message::AgentStateEvent(e) if e.event_reason_code == reason)
    };
    let end = match w.cli.wait_for("sentinel", WAIT, is_mark) {
        Ok(i) => i,
        Err(why) => panic!(
            "{}: the sentinel never arrived ({why:?}); got {} frames",
            w.label(),
            w.cli.log.len() - start
        ),
    };
    w.cli.log[start..end]
        .iter()
        .filter(|f| !is_reply(frame_type(f)) && frame_type(f) != msg::SYSTEM_EVENT)
        .map(|f| decode_at(f, version))
        .collect()
}

// ---------------------------------------------------------------------------
// The upstream stream and what a watcher must make of it
// ---------------------------------------------------------------------------

/// The scenario's upstream stream, in order.
#[derive(Default)]
struct Script {
    up: Vec<Message>,
}

impl Script {
    fn push(&mut self, m: impl Into<Message>) -> usize {
        let mut m = m.into();
        m.sync_counts();
        self.up.push(m);
        self.up.len() - 1
    }

    /// The v24 frames of the stream.
    fn frames(&self) -> Vec<Vec<u8>> {
        self.up.iter().map(|m| m.to_frame(v24()).unwrap()).collect()
    }
}

/// The copy of upstream message `m` a watcher gets: its MonitorID, at its version.
fn copy_at(m: &Message, monitor_id: u32, version: Version) -> Message {
    let mut f = m.to_frame(v24()).unwrap();
    f[8..12].copy_from_slice(&monitor_id.to_be_bytes());
    normalized(decode(&f), version)
}

/// The call's data after the upstream's first `j` events
/// (docs/call-brackets.md "The call's data").
fn data_before(frames: &[Vec<u8>], up: &[Message], j: usize, call: &CallId) -> CallData {
    let mut table = CallDataTable::default();
    for (f, m) in frames[..j].iter().zip(up) {
        table.observe(f, m, &facts(m));
    }
    table.get(call, &frames[j])
}

fn call_id(c: CallRef) -> CallId {
    (c.id, 1, c.dev.as_bytes().to_vec())
}

fn show_call(c: &CallId) -> String {
    format!("{:#x}/{}", c.0, String::from_utf8_lossy(&c.2))
}

fn show(m: &Message) -> String {
    match primary_call(m) {
        Some(c) => format!("{}({})", m.name(), show_call(&c)),
        None => m.name().into_owned(),
    }
}

/// The MonitorID of a decoded call or agent event (its first field).
fn monitor_of(m: &Message, version: Version) -> Option<u32> {
    let f = m.to_frame(version).ok()?;
    type_has_monitor_id(frame_type(&f)).then(|| be32(&f, 8))
}

/// The bracket oracle, from docs/call-brackets.md alone: the watcher's call
/// events (`got`, in order) against the upstream stream `up`. Knows the
/// watcher's MonitorID and devices, not which events reach it.
///
/// * every frame carries the watcher's MonitorID;
/// * each event of a call lies inside a BEGIN_CALL … END_CALL association
///   of that call (BEGIN first, END last, nothing of it after END); one
///   BEGIN per association;
/// * every frame that is not a built BEGIN/END is a copy of an upstream
///   event, in upstream order;
/// * a built BEGIN is followed by its triggering event and carries the
///   call's data folded from the upstream before that event;
/// * an ending event (rule 3) is followed by END_CALL (unless it is
///   END_CALL); a merge, by END_CALL of the Secondary call if associated;
/// * every upstream event of the call during the association (BEGIN_CALL
///   excepted, rule 2) was delivered — CALL_DATA_UPDATE_EVENTs included;
/// * no association is left open for a call the upstream ended.
fn oracle(
    up: &[Message],
    version: Version,
    monitor_id: u32,
    devices: &[&str],
    got: &[Message],
) -> Result<(), String> {
    let frames: Vec<Vec<u8>> = up.iter().map(|m| m.to_frame(v24()).unwrap()).collect();
    let devices: Vec<Vec<u8>> = devices.iter().map(|d| d.as_bytes().to_vec()).collect();
    let copies: Vec<Message> = up.iter().map(|m| copy_at(m, monitor_id, version)).collect();
    let got: Vec<Message> = got.iter().map(|m| normalized(m.clone(), version)).collect();
    let mut ptr = 0; // next upstream index a copy may align with
    let mut aligned: Vec<usize> = Vec::new();
    let mut open: Vec<(CallId, usize)> = Vec::new();
    let mut windows: Vec<(CallId, usize, usize)> = Vec::new();
    let mut must_end: std::collections::VecDeque<(CallId, String)> = Default::default();
    let align = |m: &Message, from: usize| (from..up.len()).find(|&j| copies[j] == *m);
    let at = |i: usize| format!("frame {i} ({})", show(&got[i]));
    let mut i = 0;
    while i < got.len() {
        let g = &got[i];
        let Some(c) = primary_call(g) else {
            return Err(format!("{}: not a call event", at(i)));
        };
        if monitor_of(g, version) != Some(monitor_id) {
            return Err(format!(
                "{}: MonitorID {:?}, not the watcher's {monitor_id}",
                at(i),
                monitor_of(g, version)
            ));
        }
        let t = g.message_type();
        if let Some((want, why)) = must_end.pop_front() {
            let built = normalized(
                built_end(monitor_id, &want, &CallData::new(PID, PT)).into(),
                version,
            );
            if *g != built {
                return Err(format!(
                    "{}: after {why}, END_CALL_EVENT({}) with the watcher's MonitorID was due, got {g:?}",
                    at(i),
                    show_call(&want)
                ));
            }
            let k = open.iter().position(|(x, _)| *x == want).expect("open");
            let (_, start) = open.remove(k);
            windows.push((want, start, *aligned.last().unwrap()));
            i += 1;
            continue;
        }
        let is_open = open.iter().any(|(x, _)| *x == c);
        if t == msg::BEGIN_CALL_EVENT {
            if is_open {
                return Err(format!(
                    "{}: a second BEGIN_CALL_EVENT inside the association with {} (one BEGIN per association)",
                    at(i),
                    show_call(&c)
                ));
            }
            let own = align(g, ptr).filter(|&j| up[j].message_type() == msg::BEGIN_CALL_EVENT);
            let start = match own {
                Some(j) => {
                    ptr = j + 1;
                    aligned.push(j);
                    j
                }
                None => {
                    let Some(next) = got.get(i + 1) else {
                        return Err(format!(
                            "{}: a BEGIN_CALL_EVENT with no event after it",
                            at(i)
                        ));
                    };
                    if primary_call(next).as_ref() != Some(&c) {
                        return Err(format!(
                            "{}: a built BEGIN_CALL_EVENT must be followed by the event of its call that opened the association, got {}",
                            at(i),
                            show(next)
                        ));
                    }
                    let Some(j) = align(next, ptr) else {
                        return Err(format!(
                            "{}: not a copy of an upstream event (after upstream #{ptr})",
                            at(i + 1)
                        ));
                    };
                    let want = normalized(
                        built_begin(monitor_id, &c, &data_before(&frames, up, j, &c)).into(),
                        version,
                    );
                    if *g != want {
                        return Err(format!(
                            "{}: BEGIN_CALL_EVENT data is not the call's data before upstream #{j} ({}):\n  got  {g:?}\n  want {want:?}",
                            at(i),
                            show(&up[j])
                        ));
                    }
                    j
                }
            };
            open.push((c, start));
            i += 1;
            continue;
        }
        if !is_open {
            return Err(format!(
                "{}: an event of call {} outside a BEGIN_CALL … END_CALL association (no BEGIN before it, or after its END)",
                at(i),
                show_call(&c)
            ));
        }
        let Some(j) = align(g, ptr) else {
            return Err(format!(
                "{}: not a copy of an upstream event in order (after upstream #{ptr})",
                at(i)
            ));
        };
        ptr = j + 1;
        aligned.push(j);
        let f = facts(&up[j]);
        if let Some(s) = f.other.clone().filter(|s| *s != c) {
            if matches!(t, msg::CALL_CONFERENCED_EVENT | msg::CALL_TRANSFERRED_EVENT)
                && open.iter().any(|(x, _)| *x == s)
            {
                must_end.push_back((s, format!("the merge {}", at(i))));
            }
        }
        if ends_association(&f, &devices) {
            if t == msg::END_CALL_EVENT {
                let k = open.iter().position(|(x, _)| *x == c).expect("open");
                let (_, start) = open.remove(k);
                windows.push((c, start, j));
            } else {
                must_end.push_back((c, format!("the ending event {}", at(i))));
            }
        }
        i += 1;
    }
    if let Some((want, why)) = must_end.front() {
        return Err(format!(
            "END_CALL_EVENT({}) missing after {why} (end of stream)",
            show_call(want)
        ));
    }
    for (c, start, end) in &windows {
        for (k, m) in up.iter().enumerate().take(*end).skip(start + 1) {
            if primary_call(m).as_ref() == Some(c)
                && m.message_type() != msg::BEGIN_CALL_EVENT
                && !aligned.contains(&k)
            {
                return Err(format!(
                    "upstream #{k} {} came during the association with {} (#{start}..#{end}) but was not delivered",
                    show(m),
                    show_call(c)
                ));
            }
        }
    }
    for (c, start) in &open {
        let ended = up.iter().any(|m| {
            matches!(
                m.message_type(),
                msg::CALL_CLEARED_EVENT | msg::END_CALL_EVENT
            ) && primary_call(m).as_ref() == Some(c)
        });
        if ended {
            return Err(format!(
                "the association with {} (from upstream #{start}) never got its END_CALL_EVENT, though the upstream ended the call",
                show_call(c)
            ));
        }
    }
    Ok(())
}

/// One item of a hand-written expected sequence (call events only).
#[derive(Debug, Clone)]
enum Exp {
    /// The copy of upstream event `j`.
    Copy(usize),
    /// A built BEGIN_CALL of the call, with its data before upstream event `j`.
    Begin(CallRef, usize),
    /// A built END_CALL of the call.
    End(CallRef),
}
use Exp::{Begin, Copy, End};

fn expected_messages(s: &Script, exp: &[Exp], monitor_id: u32, version: Version) -> Vec<Message> {
    let frames = s.frames();
    exp.iter()
        .map(|e| match e {
            Copy(j) => copy_at(&s.up[*j], monitor_id, version),
            Begin(c, j) => {
                let c = call_id(*c);
                let d = data_before(&frames, &s.up, *j, &c);
                normalized(built_begin(monitor_id, &c, &d).into(), version)
            }
            End(c) => normalized(
                built_end(monitor_id, &call_id(*c), &CallData::new(PID, PT)).into(),
                version,
            ),
        })
        .collect()
}

/// A scenario: pushes its upstream events, returns the call events agent
/// A's and agent B's watchers must receive.
type Scenario = fn(&mut Script) -> (Vec<Exp>, Vec<Exp>);

/// The agents' AGENT_STATE_EVENTs (so AgentID-only sessions can map
/// devices to their agent), then the scenario.
fn script(scenario: Scenario) -> (Script, Vec<Exp>, Vec<Exp>) {
    let mut s = Script::default();
    s.push(agent_ev(AGENT_A.id, AGENT_A.ext, 3));
    s.push(agent_ev(AGENT_B.id, AGENT_B.ext, 3));
    let (a, b) = scenario(&mut s);
    (s, a, b)
}

/// Run a scenario: open every watcher, send the agents' AGENT_STATE_EVENTs
/// (so AgentID-only sessions map devices to their agent), then the
/// scenario, then one sentinel per agent; check every watcher.
fn run(scenario: Scenario) {
    let h = Harness::new();
    let mut watchers = open_watchers(&h);
    let (s, exp_a, exp_b) = script(scenario);
    for m in &s.up {
        h.send(m.clone());
    }
    let marks = [(AGENT_A, MARK_BASE + 1), (AGENT_B, MARK_BASE + 2)];
    for (agent, reason) in marks {
        h.send(sentinel(agent, reason));
    }
    let mut failures = Vec::new();
    let nr_watchers = watchers.len();
    for w in watchers.iter_mut() {
        let reason = marks.iter().find(|(a, _)| *a == w.agent).unwrap().1;
        let all = received_until(w, reason);
        for m in &all {
            assert_eq!(
                monitor_of(m, w.version),
                Some(w.monitor_id),
                "{}: {} without the watcher's MonitorID",
                w.label(),
                show(m)
            );
        }
        let got: Vec<Message> = all
            .into_iter()
            .filter(|m| m.message_type() != msg::AGENT_STATE_EVENT)
            .collect();
        if let Err(e) = oracle(&s.up, w.version, w.monitor_id, &[w.agent.ext], &got) {
            failures.push(format!("{}: oracle: {e}", w.label()));
            continue;
        }
        let exp = if w.agent == AGENT_A { &exp_a } else { &exp_b };
        let want = expected_messages(&s, exp, w.monitor_id, w.version);
        let got: Vec<Message> = got.into_iter().map(|m| normalized(m, w.version)).collect();
        if let Some(k) = (0..want.len().max(got.len())).find(|&k| want.get(k) != got.get(k)) {
            failures.push(format!(
                "{}: first difference at call event {k}: want {:?}, got {:?}\n  want: {}\n  got:  {}",
                w.label(),
                exp.get(k),
                got.get(k).map(show),
                want.iter().map(show).collect::<Vec<_>>().join(", "),
                got.iter().map(show).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {nr_watchers} watchers got the wrong brackets; the first:\n{}\n(all: {})",
        failures.len(),
        failures[0],
        failures
            .iter()
            .map(|f| f.lines().next().unwrap_or("").to_string())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

// ---------------------------------------------------------------------------
// Upstream event builders beyond testkit::events
// ---------------------------------------------------------------------------

fn cs(x: &str) -> Option<CtiString> {
    Some(CtiString::from(x))
}

fn nv(name: &str, value: &str) -> NamedVar {
    NamedVar {
        name: name.into(),
        value: value.into(),
    }
}

fn begin_call(c: CallRef, call_type: u16) -> BeginCallEvent {
    BeginCallEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        call_type,
        connection_device_id_type: 1,
        connection_call_id: c.id,
        connection_device_id: cs(c.dev),
        ..Default::default()
    }
}

fn originated(c: CallRef, calling: &str, called: &str) -> CallOriginatedEvent {
    CallOriginatedEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        connection_device_id_type: 1,
        connection_call_id: c.id,
        connection_device_id: cs(c.dev),
        calling_device_id: cs(calling),
        called_device_id: cs(called),
        ..Default::default()
    }
}

/// CALL_DELIVERED of a call seizing trunk `trunk`, carrying ANI and DNIS.
fn trunk_seized(c: CallRef, trunk: u32, ani: &str, dnis: &str) -> CallDeliveredEvent {
    CallDeliveredEvent {
        ani: cs(ani),
        dnis: cs(dnis),
        ..delivered(c, c.dev, ani, dnis, Some((trunk, 200)))
    }
}

/// The customer call's data before it reaches an agent: BEGIN_CALL then a
/// CALL_DATA_UPDATE (the IVR's), as in `src/sim/inbound.rs`.
fn customer_data(s: &mut Script, c: CallRef, ani: &str, key: u32) {
    s.push(BeginCallEvent {
        ani: cs(ani),
        dnis: cs("8001"),
        router_call_key_day: Some(153_001),
        router_call_key_call_id: Some(key),
        router_call_key_sequence_number: Some(1),
        call_variable_1: cs("acct-1"),
        named_variables: vec![nv("user.account", "A1")],
        ..begin_call(c, 2)
    });
    s.push(CallDataUpdateEvent {
        call_type: 2,
        dnis: cs("8002"),
        caller_entered_digits: cs("42"),
        call_variable_1: cs("acct-2"),
        call_variable_3: cs("gold"),
        named_variables: vec![nv("user.account", "A2"), nv("user.intent", "billing")],
        named_arrays: vec![NamedArray {
            index: 0,
            name: "user.items".into(),
            value: "x".into(),
        }],
        user_to_user_info: Some(Unspec(vec![1, 2, 3])),
        ..data_update(c)
    });
}

/// CALL_DELIVERED at the agent's phone, with some data of its own.
fn offered(c: CallRef, agent: Agent, ani: &str) -> CallDeliveredEvent {
    CallDeliveredEvent {
        ani: cs(ani),
        call_variable_2: cs("en"),
        named_variables: vec![nv("user.lang", "en")],
        ..delivered(c, agent.ext, ani, agent.ext, None)
    }
}

fn late_update(c: CallRef, var: &str) -> CallDataUpdateEvent {
    CallDataUpdateEvent {
        call_type: 2,
        call_variable_4: cs(var),
        ..data_update(c)
    }
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

/// An inbound call: BEGIN_CALL and CALL_DATA_UPDATE (ANI, DNIS, call and
/// named variables, a named array) before the agent's device is named;
/// CALL_DELIVERED/ESTABLISHED at the agent (BEGIN built before the
/// DELIVERED, with the data so far); a repeated upstream BEGIN_CALL not
/// delivered (rule 2); a late CALL_DATA_UPDATE delivered; the agent's
/// CALL_CONNECTION_CLEARED ends it (END built); the call's later events do
/// not reach it. Then a second call where the caller hangs up first:
/// CALL_CLEARED ends the association.
#[test]
fn inbound_call_is_bracketed_with_the_data_told_before_the_agent_joined() {
    run(inbound);
}

fn inbound(s: &mut Script) -> (Vec<Exp>, Vec<Exp>) {
    let p = call(0x0100_0001, "T1");
    let p2 = call(0x0100_0002, "T2");
    s.push(trunk_seized(p, 1, "5551000", "8001"));
    customer_data(s, p, "5551000", 77);
    let d_a = s.push(offered(p, AGENT_A, "5551000"));
    let e_a = s.push(established(p, AGENT_A.ext, "5551000"));
    s.push(BeginCallEvent {
        call_variable_5: cs("again"),
        ..begin_call(p, 2)
    });
    let late = s.push(late_update(p, "late"));
    let gone = s.push(conn_cleared(p, Some(AGENT_A.ext)));
    s.push(conn_cleared(p, Some("T1")));
    s.push(cleared(p));
    s.push(end_call(p));
    s.push(trunk_seized(p2, 2, "5552000", "8001"));
    s.push(BeginCallEvent {
        ani: cs("5552000"),
        call_variable_1: cs("acct-9"),
        ..begin_call(p2, 2)
    });
    let d_a2 = s.push(offered(p2, AGENT_A, "5552000"));
    let e_a2 = s.push(established(p2, AGENT_A.ext, "5552000"));
    let caller = s.push(conn_cleared(p2, Some("T2")));
    let clear2 = s.push(cleared(p2));
    s.push(end_call(p2));
    let a = vec![
        Begin(p, d_a),
        Copy(d_a),
        Copy(e_a),
        Copy(late),
        Copy(gone),
        End(p),
        Begin(p2, d_a2),
        Copy(d_a2),
        Copy(e_a2),
        Copy(caller),
        Copy(clear2),
        End(p2),
    ];
    (a, vec![])
}

/// Outbound calls placed by the agent: the upstream's BEGIN_CALL names the
/// agent's device as ConnectionDeviceID and is the bracket itself
/// (delivered once, nothing built before it). The first call ends with the
/// far end: CALL_CLEARED ends the association (END built) and the
/// upstream's END_CALL after it, naming the agent's device, is not
/// delivered (rule 4). In the second the agent hangs up first: its
/// CALL_CONNECTION_CLEARED ends the association (END built) and the call's
/// CALL_CLEARED / END_CALL, though they name the agent's device, are not
/// delivered (rule 4).
#[test]
fn outbound_call_uses_the_upstream_begin_and_nothing_follows_its_end() {
    run(outbound);
}

fn outbound(s: &mut Script) -> (Vec<Exp>, Vec<Exp>) {
    let o = call(0x0100_0010, AGENT_A.ext);
    let o2 = call(0x0100_0011, AGENT_A.ext);
    let begin = s.push(BeginCallEvent {
        dialed_number: cs("95551234"),
        call_variable_1: cs("camp-7"),
        named_variables: vec![nv("user.campaign", "C7")],
        ..begin_call(o, 8)
    });
    let init = s.push(service_initiated(o, AGENT_A.ext));
    let orig = s.push(originated(o, AGENT_A.ext, "95551234"));
    let est = s.push(established(o, "95551234", AGENT_A.ext));
    let upd = s.push(late_update(o, "sold"));
    let far = s.push(conn_cleared(o, Some("95551234")));
    let clear = s.push(cleared(o));
    s.push(end_call(o));
    let begin2 = s.push(BeginCallEvent {
        dialed_number: cs("95559999"),
        ..begin_call(o2, 8)
    });
    let orig2 = s.push(originated(o2, AGENT_A.ext, "95559999"));
    let est2 = s.push(established(o2, "95559999", AGENT_A.ext));
    let hangup = s.push(conn_cleared(o2, Some(AGENT_A.ext)));
    // The far end leaves after the agent: the event still names the agent's
    // device (the call's ConnectionDeviceID), but the agent left the call.
    s.push(conn_cleared(o2, Some("95559999")));
    s.push(cleared(o2));
    s.push(end_call(o2));
    let a = vec![
        Copy(begin),
        Copy(init),
        Copy(orig),
        Copy(est),
        Copy(upd),
        Copy(far),
        Copy(clear),
        End(o),
        Copy(begin2),
        Copy(orig2),
        Copy(est2),
        Copy(hangup),
        End(o2),
    ];
    (a, vec![])
}

/// The consult call's first part, as `src/sim/flow.rs` sends it: customer
/// call P at agent A (with its data), held; consult call S from A to B.
/// Returns (DELIVERED(P) at A, ESTABLISHED(P), HELD(P), SERVICE_INITIATED(S),
/// ORIGINATED(S), DELIVERED(S), ESTABLISHED(S)).
fn consult_until_answered(s: &mut Script, p: CallRef, c: CallRef) -> [usize; 7] {
    s.push(trunk_seized(p, 2, "5553000", "8001"));
    customer_data(s, p, "5553000", 78);
    let d_a = s.push(offered(p, AGENT_A, "5553000"));
    let e_a = s.push(established(p, AGENT_A.ext, "5553000"));
    let hold = s.push(held(p, Some(AGENT_A.ext)));
    let init = s.push(service_initiated(c, AGENT_A.ext));
    s.push(begin_call(c, 12)); // CONSULT; A is associated already: not delivered
    let orig = s.push(originated(c, AGENT_A.ext, AGENT_B.ext));
    let deliv = s.push(delivered(c, AGENT_B.ext, AGENT_A.ext, AGENT_B.ext, None));
    let est = s.push(established(c, AGENT_B.ext, AGENT_A.ext));
    [d_a, e_a, hold, init, orig, deliv, est]
}

/// A consult transfer (docs/call-brackets.md's example): CALL_TRANSFERRED(P,
/// S; A → B) ends A's associations with S and P (END(S), END(P)); B gets
/// BEGIN(P) with the customer's data before it and END(S) after it; A's
/// CALL_CONNECTION_CLEARED(P) and S's CALL_CLEARED / END_CALL are not
/// delivered to A (rule 4); B's own CALL_CONNECTION_CLEARED(P) ends its P.
#[test]
fn consult_transfer_moves_the_customer_call_to_the_consulted_agent_with_its_data() {
    run(consult_transfer);
}

fn consult_transfer(s: &mut Script) -> (Vec<Exp>, Vec<Exp>) {
    let p = call(0x0100_0020, "T2");
    let c = call(0x0100_0021, AGENT_A.ext);
    let [d_a, e_a, hold, init, orig, deliv, est] = consult_until_answered(s, p, c);
    let xfer = s.push(transferred(
        p,
        c,
        AGENT_A.ext,
        AGENT_B.ext,
        &["T2", AGENT_B.ext],
    ));
    let a_left = s.push(CallConnectionClearedEvent {
        event_cause: 28, // TRANSFER
        ..conn_cleared(p, Some(AGENT_A.ext))
    });
    s.push(cleared(c));
    s.push(end_call(c));
    let upd = s.push(late_update(p, "post"));
    let b_left = s.push(conn_cleared(p, Some(AGENT_B.ext)));
    s.push(conn_cleared(p, Some("T2")));
    s.push(cleared(p));
    s.push(end_call(p));
    let a = vec![
        Begin(p, d_a),
        Copy(d_a),
        Copy(e_a),
        Copy(hold),
        Begin(c, init),
        Copy(init),
        Copy(orig),
        Copy(deliv),
        Copy(est),
        Copy(xfer),
        End(c),
        End(p),
    ];
    let b = vec![
        Begin(c, orig),
        Copy(orig),
        Copy(deliv),
        Copy(est),
        Begin(p, xfer),
        Copy(xfer),
        End(c),
        Copy(a_left),
        Copy(upd),
        Copy(b_left),
        End(p),
    ];
    (a, b)
}

/// A consult conference: CALL_CONFERENCED(P, S) keeps A's association with
/// P and ends both agents' S (END(S)); B gets BEGIN(P) before it; S's
/// CALL_CLEARED / END_CALL are not delivered (rule 4); each agent's
/// CALL_CONNECTION_CLEARED(P) ends its own association only.
#[test]
fn consult_conference_brackets_both_agents_on_the_customer_call() {
    run(consult_conference);
}

fn consult_conference(s: &mut Script) -> (Vec<Exp>, Vec<Exp>) {
    let p = call(0x0100_0030, "T3");
    let c = call(0x0100_0031, AGENT_A.ext);
    let [d_a, e_a, hold, init, orig, deliv, est] = consult_until_answered(s, p, c);
    let conf = s.push(conferenced(
        p,
        c,
        AGENT_A.ext,
        AGENT_B.ext,
        &["T3", AGENT_A.ext, AGENT_B.ext],
    ));
    s.push(cleared(c));
    s.push(end_call(c));
    let a_left = s.push(conn_cleared(p, Some(AGENT_A.ext)));
    let upd = s.push(late_update(p, "post"));
    let b_left = s.push(conn_cleared(p, Some(AGENT_B.ext)));
    s.push(conn_cleared(p, Some("T3")));
    s.push(cleared(p));
    s.push(end_call(p));
    let a = vec![
        Begin(p, d_a),
        Copy(d_a),
        Copy(e_a),
        Copy(hold),
        Begin(c, init),
        Copy(init),
        Copy(orig),
        Copy(deliv),
        Copy(est),
        Copy(conf),
        End(c),
        Copy(a_left),
        End(p),
    ];
    let b = vec![
        Begin(c, orig),
        Copy(orig),
        Copy(deliv),
        Copy(est),
        Begin(p, conf),
        Copy(conf),
        End(c),
        Copy(a_left),
        Copy(upd),
        Copy(b_left),
        End(p),
    ];
    (a, b)
}

/// The hand-written expectations of every scenario agree with the model
/// test's reference (`testkit::model`: call-party rule plus
/// the bracket rule) for each watcher kind — two readings of the doc, one
/// answer. No router involved.
#[test]
fn scenario_expectations_agree_with_the_model_reference() {
    let scenarios: [(&str, Scenario); 4] = [
        ("inbound", inbound),
        ("outbound", outbound),
        ("consult_transfer", consult_transfer),
        ("consult_conference", consult_conference),
    ];
    for (name, scenario) in scenarios {
        let (s, exp_a, exp_b) = script(scenario);
        let stream = Stream::from_frames(s.frames());
        for (agent, exp) in [(AGENT_A, &exp_a), (AGENT_B, &exp_b)] {
            let (id, ext) = (agent.id.as_bytes().to_vec(), agent.ext.as_bytes().to_vec());
            let watches = [
                Watch::Agent {
                    agent: (AgentField::Instrument, ext.clone()),
                    instrument: Some(ext.clone()),
                },
                Watch::Agent {
                    agent: (AgentField::Id, id),
                    instrument: None,
                },
                Watch::Device((Kind::Device, ext)),
            ];
            for watch in watches {
                let mut assoc = Associations::default();
                let mut model = Vec::new();
                for ev in &stream.events {
                    let devices = watch.devices(&ev.agents);
                    let reaches = watch.matches(&ev.step);
                    for b in assoc.step(ev, reaches, &devices, |_| true) {
                        model.push(match b {
                            Bracket::Event => copy_at(&decode(&ev.frame), 1, v24()),
                            Bracket::Begin(c, d) => {
                                normalized(built_begin(1, &c, &d).into(), v24())
                            }
                            Bracket::End(c, d) => normalized(built_end(1, &c, &d).into(), v24()),
                        });
                    }
                }
                model.retain(|m| m.message_type() != msg::AGENT_STATE_EVENT);
                let hand = expected_messages(&s, exp, 1, v24());
                assert_eq!(
                    model.iter().map(show).collect::<Vec<_>>(),
                    hand.iter().map(show).collect::<Vec<_>>(),
                    "{name}: agent {} watched as {watch:?}",
                    agent.id
                );
                assert_eq!(
                    model, hand,
                    "{name}: agent {} watched as {watch:?}",
                    agent.id
                );
            }
        }
    }
}

/// The oracle itself must catch what it is for: a stream without brackets,
/// a BEGIN with stale data, an END missing after an ending event, a
/// CALL_DATA_UPDATE left out, an event after END.
#[test]
fn the_oracle_rejects_unbracketed_and_wrong_streams() {
    let p = call(0x0100_0040, "T4");
    let mut s = Script::default();
    s.push(trunk_seized(p, 4, "5554000", "8001"));
    customer_data(&mut s, p, "5554000", 79);
    let d = s.push(offered(p, AGENT_A, "5554000"));
    let upd = s.push(late_update(p, "late"));
    let gone = s.push(conn_cleared(p, Some(AGENT_A.ext)));
    s.push(cleared(p));
    let v = ver(20);
    let m = 77;
    let good = expected_messages(
        &s,
        &[Begin(p, d), Copy(d), Copy(upd), Copy(gone), End(p)],
        m,
        v,
    );
    let devices = [AGENT_A.ext];
    assert_eq!(oracle(&s.up, v, m, &devices, &good), Ok(()));
    let bad: Vec<(&str, Vec<Message>)> = vec![
        (
            "no brackets",
            expected_messages(&s, &[Copy(d), Copy(upd), Copy(gone)], m, v),
        ),
        (
            "stale data",
            expected_messages(
                &s,
                &[Begin(p, 1), Copy(d), Copy(upd), Copy(gone), End(p)],
                m,
                v,
            ),
        ),
        (
            "no END",
            expected_messages(&s, &[Begin(p, d), Copy(d), Copy(upd), Copy(gone)], m, v),
        ),
        (
            "update left out",
            expected_messages(&s, &[Begin(p, d), Copy(d), Copy(gone), End(p)], m, v),
        ),
        (
            "event after END",
            expected_messages(
                &s,
                &[Begin(p, d), Copy(d), Copy(gone), End(p), Copy(upd)],
                m,
                v,
            ),
        ),
        (
            "two BEGINs",
            expected_messages(
                &s,
                &[
                    Begin(p, d),
                    Begin(p, d),
                    Copy(d),
                    Copy(upd),
                    Copy(gone),
                    End(p),
                ],
                m,
                v,
            ),
        ),
        (
            "other MonitorID",
            expected_messages(
                &s,
                &[Begin(p, d), Copy(d), Copy(upd), Copy(gone), End(p)],
                m + 1,
                v,
            ),
        ),
    ];
    for (what, got) in bad {
        assert!(
            oracle(&s.up, v, m, &devices, &got).is_err(),
            "the oracle accepted a stream with {what}"
        );
    }
}
