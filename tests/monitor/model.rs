//! Model-based test of the monitor services (docs/design.md §4 items 8–10 and the
//! rules in `src/ingest/tracker.rs`): a router on the built-in simulator
//! (random seed, agents, call rate; bounded by `sim_max_events`, paced by
//! `sim_speed`), 2–5 sessions opened with ALL_EVENTS + PERIPHERAL_MONITOR
//! (some also CLIENT_EVENTS naming a random agent by id, extension or
//! instrument), random device monitors, call monitors on calls the session
//! has seen (and some on unknown calls), random masks, MONITOR_STOP and
//! CHANGE_MONITOR_MASK mid-stream, some with other sessions' MonitorIDs.
//!
//! Every session's All Events copies (MonitorID 0, full masks) are its
//! timeline of the event stream, so the position of each reply among them
//! says exactly from which event a request took effect. The stream is
//! regenerated with `ctirouter::sim::Simulator` (same config, v24), and a
//! naive reference (`testkit::model`) says what each session
//! must receive — copy for copy, MonitorID for MonitorID, in order.
//!
//! `MONITOR_MODEL_CASES=n` changes the cases per test (4 tests × 50 by
//! default); `MONITOR_MODEL_SEED=s` runs only case `s` (in `one_case`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ctirouter::proto::constants::{device_type, msg, service};
use ctirouter::proto::{Message, Version};
use ctirouter::sim::rng::Rng;
use ctirouter::sim::{SimConfig, Simulator};
use testkit::model::{
    built_begin, built_end, client_events_watch, copy_bytes, normalized, CallId, Expected, Kind,
    Reply, Request, SessionModel, Stream, Watch,
};
use testkit::*;

/// Uniform in `lo..hi` from the case's randomness.
fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.unit()
}

/// One of `xs` (not empty), uniformly.
fn pick<'a, T>(rng: &mut Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.below(xs.len() as u32) as usize]
}

/// The stream the router's simulator source produces for `sim` and `max`:
/// the first `max` events that encode at v24, minus any whose routing keys
/// do not read (the router drops those), minus SYSTEM_EVENTs (half-hour
/// changes; they go to every session and are not monitor matter). Also
/// the simulated time of the last one.
fn reference_stream(sim: &SimConfig, max: u64) -> (Vec<Vec<u8>>, Duration) {
    let mut s = Simulator::new(sim.clone());
    let mut frames = Vec::new();
    let mut last = Duration::ZERO;
    let mut n = 0;
    while n < max {
        let (due, m) = s.next_event();
        let Ok(frame) = m.to_frame(Version::MAX) else {
            continue;
        };
        n += 1;
        last = due;
        if ctirouter::proto::routing::extract(&frame, Version::MAX).is_err() {
            continue;
        }
        if frame_type(&frame) == msg::SYSTEM_EVENT {
            continue;
        }
        frames.push(frame);
    }
    (frames, last)
}

/// One received frame, as the model sees it.
#[derive(Debug, Clone)]
enum Rx {
    AllEvents(Vec<u8>),
    Copy(Vec<u8>),
    /// Reply to request `n`.
    Reply(usize, Vec<u8>),
}

#[derive(Debug, Clone)]
struct SentRequest {
    request: Request,
    invoke: u32,
    /// (number of All Events copies before the reply, the reply).
    reply: Option<(usize, Reply)>,
}

/// One model session and what the driver knows of it.
struct Drv {
    cli: Client,
    /// Client Events: OPEN_REQ agent fields (id, extension, instrument).
    ce_fields: Option<(Option<String>, Option<String>, Option<String>)>,
    ce_monitor: u32,
    requests: Vec<SentRequest>,
    pending: Option<usize>,
    /// MonitorIDs this session was given.
    monitors: Vec<u32>,
    rx: Vec<Rx>,
    ae_count: usize,
    scanned: usize,
    /// Calls the session saw, not (yet) seen ending; most recent last.
    calls_seen: Vec<CallId>,
    calls_ended: Vec<CallId>,
    anis: Vec<String>,
    last_ae: Option<Vec<u8>>,
}

impl Drv {
    /// Classify new frames.
    fn absorb(&mut self) -> Result<(), String> {
        self.cli.poll();
        while self.scanned < self.cli.log.len() {
            let f = self.cli.log[self.scanned].clone();
            self.scanned += 1;
            let t = frame_type(&f);
            if t == msg::OPEN_CONF || t == msg::SYSTEM_EVENT {
                continue;
            }
            if is_reply(t) {
                let invoke = be32(&f, 8);
                let Some(n) = self.requests.iter().position(|r| r.invoke == invoke) else {
                    return Err(format!(
                        "port {}: reply to unknown invoke {invoke}: {}",
                        self.cli.port,
                        describe(&f)
                    ));
                };
                let reply = match decode(&f) {
                    Message::MonitorStartConf(c) => {
                        self.monitors.push(c.monitor_id);
                        Reply::Started(c.monitor_id)
                    }
                    Message::MonitorStopConf(_) | Message::ChangeMonitorMaskConf(_) => Reply::Done,
                    Message::FailureConf(fc) => Reply::Failed(fc.status),
                    other => return Err(format!("unexpected reply {other:?}")),
                };
                if self.requests[n].reply.is_some() {
                    return Err(format!("second reply to request #{n}"));
                }
                self.requests[n].reply = Some((self.ae_count, reply));
                if self.pending == Some(n) {
                    self.pending = None;
                }
                self.rx.push(Rx::Reply(n, f));
                continue;
            }
            match monitor_id(&f) {
                Some(0) | None => {
                    self.ae_count += 1;
                    let m = decode(&f);
                    if let Some(c) = testkit::model::primary_call(&m) {
                        // Calls the session saw end go to the back of the
                        // line: the driver mostly monitors live calls.
                        let ended = matches!(
                            frame_type(&f),
                            msg::CALL_CLEARED_EVENT | msg::END_CALL_EVENT
                        );
                        self.calls_seen.retain(|x| *x != c);
                        if ended {
                            self.calls_ended.push(c);
                        } else {
                            self.calls_seen.push(c);
                        }
                    }
                    if let Message::CallDeliveredEvent(e) = &m {
                        if let Some(a) = &e.calling_device_id {
                            let a = a.to_str_lossy().into_owned();
                            if !self.anis.contains(&a) && self.anis.len() < 16 {
                                self.anis.push(a);
                            }
                        }
                    }
                    self.last_ae = Some(f.clone());
                    self.rx.push(Rx::AllEvents(f));
                }
                Some(_) => self.rx.push(Rx::Copy(f)),
            }
        }
        if self.cli.closed {
            return Err(format!(
                "port {}: the router closed the session",
                self.cli.port
            ));
        }
        Ok(())
    }

    fn send_request(&mut self, request: Request, message: Message) {
        let invoke = match &message {
            Message::MonitorStartReq(r) => r.invoke_id,
            Message::MonitorStopReq(r) => r.invoke_id,
            Message::ChangeMonitorMaskReq(r) => r.invoke_id,
            _ => unreachable!(),
        };
        self.requests.push(SentRequest {
            request,
            invoke,
            reply: None,
        });
        self.pending = Some(self.requests.len() - 1);
        self.cli.send(message);
    }
}

fn random_masks(rng: &mut Rng) -> (u32, u32) {
    match rng.below(4) {
        0 | 1 => (ALL_CALLS, ALL_AGENTS),
        2 => (rng.next_u64() as u32, ALL_AGENTS),
        _ => (rng.next_u64() as u32, rng.next_u64() as u32 & 0x3FFF),
    }
}

/// Case parameters, all from the case seed.
#[derive(Debug, Clone)]
struct Params {
    sim: SimConfig,
    max_events: u64,
    real_secs: f64,
    nr_sessions: usize,
    nr_initial: usize,
}

fn params(rng: &mut Rng) -> Params {
    let nr_sessions = rng.range(2, 5) as usize;
    Params {
        sim: SimConfig {
            seed: rng.next_u64(),
            agents: rng.range(2, 12) as u32,
            calls_per_sec: uniform(rng, 1.0, 8.0),
            peripheral_id: PID,
            manual_agents: 0,
        },
        max_events: rng.range(120, 320),
        real_secs: uniform(rng, 0.3, 0.6),
        nr_initial: rng.range(1, nr_sessions as u64) as usize,
        nr_sessions,
    }
}

/// Open one model session (All Events + Peripheral Monitor, maybe Client Events).
fn open_session(addr: std::net::SocketAddr, rng: &mut Rng, agents: u32) -> Drv {
    let mut cli = Client::connect(addr);
    let mut spec = OpenSpec::services(service::ALL_EVENTS | service::PERIPHERAL_MONITOR);
    let mut ce_fields = None;
    if rng.chance(0.45) {
        spec.services |= service::CLIENT_EVENTS;
        let a = if rng.chance(0.1) {
            agents + 3 // nobody
        } else {
            rng.below(agents)
        };
        let (id, ext) = (format!("{}", 1001 + a), format!("{}", 3001 + a));
        let fields = match rng.below(3) {
            0 => (Some(id), None, None),
            1 => (None, Some(ext), None),
            _ => (None, None, Some(ext)),
        };
        spec.agent_id = fields.0.clone();
        spec.agent_extension = fields.1.clone();
        spec.agent_instrument = fields.2.clone();
        ce_fields = Some(fields);
        // The Client Events masks are the OPEN masks; the All Events
        // timeline needs full masks, so they stay full here (mask filtering
        // of monitor copies is exercised by the Peripheral Monitor masks).
    }
    let conf = cli.open(&spec);
    let granted = spec.services;
    assert_eq!(conf.services_granted, granted, "services granted");
    if ce_fields.is_some() {
        assert_ne!(
            conf.monitor_id, 0,
            "Client Events OPEN_CONF carries a MonitorID"
        );
    } else {
        assert_eq!(conf.monitor_id, 0);
    }
    Drv {
        cli,
        ce_monitor: conf.monitor_id,
        ce_fields,
        requests: Vec::new(),
        pending: None,
        monitors: Vec::new(),
        rx: Vec::new(),
        ae_count: 0,
        scanned: 1,
        calls_seen: Vec::new(),
        calls_ended: Vec::new(),
        anis: Vec::new(),
        last_ae: None,
    }
}

/// A random request for session `i`.
fn random_request(rng: &mut Rng, drvs: &mut [Drv], i: usize, agents: u32) {
    let invoke = drvs[i].cli.invoke();
    let (cm, am) = random_masks(rng);
    let roll = rng.below(100);
    if roll < 38 {
        // Device monitor.
        let a = rng.below(agents + 1);
        let (ty, id): (u16, String) = match rng.below(12) {
            0 | 1 => (device_type::DEVICE_IDENTIFIER, format!("{}", 3001 + a)),
            2 => (device_type::AGENT_DEVICE, format!("{}", 3001 + a)),
            3 => (device_type::DEVICE_IDENTIFIER, format!("{}", 1001 + a)),
            4 => (
                device_type::DEVICE_IDENTIFIER,
                format!("T{}", rng.range(1, 12)),
            ),
            5 => (device_type::TRUNK, format!("{}", rng.range(1, 12))),
            6 => (device_type::TRUNK_GROUP, "200".to_string()),
            7 => (
                device_type::DEVICE_IDENTIFIER,
                format!("{}", 8001 + rng.below(4)),
            ),
            8 => match drvs[i].anis.is_empty() {
                true => (device_type::DEVICE_IDENTIFIER, "99999".to_string()),
                false => (
                    device_type::DEVICE_IDENTIFIER,
                    pick(rng, &drvs[i].anis).clone(),
                ),
            },
            9 => (device_type::TRUNK, format!("0{}", rng.range(1, 9))),
            10 => (device_type::DEVICE_IDENTIFIER, "99999".to_string()),
            _ => (device_type::TRUNK_GROUP, "12".to_string()),
        };
        let kind = match ty {
            device_type::TRUNK => Kind::Trunk,
            device_type::TRUNK_GROUP => Kind::TrunkGroup,
            _ => Kind::Device,
        };
        let m = ctirouter::proto::msg::MonitorStartReq {
            invoke_id: invoke,
            peripheral_id: PID,
            connection_call_id: 0,
            call_msg_mask: cm,
            agent_state_mask: am,
            connection_device_id_type: 0xFFFF,
            monitored_device_type: ty,
            connection_device_id: None,
            monitored_device_id: Some(id.as_str().into()),
        };
        drvs[i].send_request(
            Request::StartDevice {
                dev: (kind, id.into_bytes()),
                call_mask: cm,
                agent_mask: am,
            },
            m.into(),
        );
    } else if roll < 62 {
        // Call monitor: a call the session saw (mostly recent), or an unknown one.
        let seen = &drvs[i].calls_seen;
        let ended = &drvs[i].calls_ended;
        let call: CallId = if seen.is_empty() || rng.chance(0.15) {
            match rng.below(3) {
                0 if !ended.is_empty() => pick(rng, ended).clone(),
                1 if !seen.is_empty() => {
                    let (id, _, dev) = pick(rng, seen).clone();
                    (id, 0, dev) // right id, wrong ConnectionDeviceIDType
                }
                _ => (0x7000_0000 + rng.below(1000), 1, b"T1".to_vec()),
            }
        } else if rng.chance(0.8) {
            let from = seen.len().saturating_sub(6);
            seen[from + rng.below((seen.len() - from) as u32) as usize].clone()
        } else {
            pick(rng, seen).clone()
        };
        let m = ctirouter::proto::msg::MonitorStartReq {
            invoke_id: invoke,
            peripheral_id: PID,
            connection_call_id: call.0,
            call_msg_mask: cm,
            agent_state_mask: am,
            connection_device_id_type: call.1,
            monitored_device_type: 0xFFFF,
            connection_device_id: Some(ctirouter::proto::CtiString::new(call.2.clone())),
            monitored_device_id: None,
        };
        drvs[i].send_request(
            Request::StartCall {
                call,
                call_mask: cm,
                agent_mask: am,
            },
            m.into(),
        );
    } else {
        // Stop or change: own monitors mostly; sometimes another session's
        // (or a Client Events MonitorID), sometimes one never issued.
        let others: Vec<u32> = drvs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, d)| {
                d.monitors
                    .iter()
                    .copied()
                    .chain((d.ce_monitor != 0).then_some(d.ce_monitor))
            })
            .collect();
        let own = &drvs[i].monitors;
        let id = if !own.is_empty() && rng.chance(0.8) {
            *pick(rng, own)
        } else if !others.is_empty() && rng.chance(0.7) {
            *pick(rng, &others)
        } else if drvs[i].ce_monitor != 0 && rng.chance(0.3) {
            drvs[i].ce_monitor
        } else {
            0x7F00_0000 + rng.below(1000)
        };
        if roll < 82 {
            let m = ctirouter::proto::msg::MonitorStopReq {
                invoke_id: invoke,
                monitor_id: id,
            };
            drvs[i].send_request(Request::Stop { monitor_id: id }, m.into());
        } else {
            let m = ctirouter::proto::msg::ChangeMonitorMaskReq {
                invoke_id: invoke,
                monitor_id: id,
                call_msg_mask: cm,
                agent_state_mask: am,
            };
            drvs[i].send_request(
                Request::Change {
                    monitor_id: id,
                    call_mask: cm,
                    agent_mask: am,
                },
                m.into(),
            );
        }
    }
}

/// A request with its device / call ids as text.
fn show_request(r: &Request) -> String {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match r {
        Request::StartDevice {
            dev,
            call_mask,
            agent_mask,
        } => format!(
            "MONITOR_START device {:?} {:?} masks {call_mask:#x}/{agent_mask:#x}",
            dev.0,
            text(&dev.1)
        ),
        Request::StartCall {
            call,
            call_mask,
            agent_mask,
        } => format!(
            "MONITOR_START call {}/{}/{:?} masks {call_mask:#x}/{agent_mask:#x}",
            call.0,
            call.1,
            text(&call.2)
        ),
        Request::Stop { monitor_id } => format!("MONITOR_STOP {monitor_id}"),
        Request::Change {
            monitor_id,
            call_mask,
            agent_mask,
        } => format!("CHANGE_MONITOR_MASK {monitor_id} to {call_mask:#x}/{agent_mask:#x}"),
    }
}

fn describe_expected(stream: &Stream, e: &Expected, d: &Drv) -> String {
    match e {
        Expected::AllEvents(i) => format!(
            "All Events copy of #{i} {}",
            describe(&stream.events[*i].frame)
        ),
        Expected::Copy { event, monitor_id } => format!(
            "copy for monitor {monitor_id} of #{event} {}",
            describe(&stream.events[*event].frame)
        ),
        Expected::Begin {
            event,
            monitor_id,
            call,
            data,
        } => format!(
            "BEGIN_CALL_EVENT built for monitor {monitor_id}, call {}/{:?}, before its copy of #{event} (data {data:?})",
            call.0,
            String::from_utf8_lossy(&call.2)
        ),
        Expected::End {
            event,
            monitor_id,
            call,
            ..
        } => format!(
            "END_CALL_EVENT built for monitor {monitor_id}, call {}/{:?}, after #{event}",
            call.0,
            String::from_utf8_lossy(&call.2)
        ),
        Expected::Reply(n) => format!(
            "reply to request #{n} {}",
            show_request(&d.requests[*n].request)
        ),
    }
}

fn describe_rx(stream: &Stream, rx: &Rx) -> String {
    let locate = |f: &[u8]| {
        let mut z = f.to_vec();
        if type_has_monitor_id(frame_type(&z)) {
            z[8..12].fill(0);
        }
        if frame_type(&z) == msg::AGENT_STATE_EVENT {
            z[16..20].fill(0);
        }
        let hits: Vec<usize> = stream
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.frame == z)
            .map(|(i, _)| i)
            .collect();
        format!("stream #{hits:?}")
    };
    match rx {
        Rx::AllEvents(f) => format!("All Events {} ({})", describe(f), locate(f)),
        Rx::Copy(f) => format!("copy {} ({})", describe(f), locate(f)),
        Rx::Reply(n, f) => format!("reply to request #{n}: {}", describe(f)),
    }
}

/// One line saying what kind of difference the first one is: a call
/// bracket (docs/call-brackets.md) missing, extra or wrong, or not one.
fn classify_difference(e: Option<&Expected>, r: Option<&Rx>) -> String {
    let got = match r {
        Some(Rx::Copy(f)) => Some(frame_type(f)),
        _ => None,
    };
    let is_bracket =
        |t: Option<u32>| matches!(t, Some(msg::BEGIN_CALL_EVENT) | Some(msg::END_CALL_EVENT));
    let is_ending = |t: Option<u32>| {
        matches!(
            t,
            Some(msg::CALL_CLEARED_EVENT)
                | Some(msg::END_CALL_EVENT)
                | Some(msg::CALL_CONNECTION_CLEARED_EVENT)
                | Some(msg::CALL_TRANSFERRED_EVENT)
        )
    };
    let line = match e {
        Some(Expected::Begin { .. }) if got == Some(msg::BEGIN_CALL_EVENT) => {
            "call bracket: BEGIN_CALL_EVENT with other contents than built from the call's data"
        }
        Some(Expected::End { .. }) if got == Some(msg::END_CALL_EVENT) => {
            "call bracket: END_CALL_EVENT with other contents than built from the call"
        }
        Some(Expected::Begin { .. }) => "call bracket: MISSING built BEGIN_CALL_EVENT",
        Some(Expected::End { .. }) => "call bracket: MISSING built END_CALL_EVENT",
        _ if is_bracket(got) => "call bracket: EXTRA BEGIN_CALL_EVENT / END_CALL_EVENT",
        _ if is_ending(got) => {
            "call bracket: EXTRA ending event (rule 4: not delivered to a watcher not associated with its call)"
        }
        _ => "not a call-bracket difference",
    };
    format!("   kind: {line}\n")
}

/// Compare one session's received frames with the model; `Err` is a report.
fn check_session(stream: &Stream, k: usize, d: &Drv, session_id: u32) -> Result<(), String> {
    let visible: Vec<usize> = (0..stream.len())
        .filter(|&i| testkit::model::passes(&stream.events[i].facts, ALL_CALLS, ALL_AGENTS))
        .collect();
    let n_ae = d.ae_count;
    if n_ae > visible.len() {
        return Err(format!(
            "session {k}: {n_ae} All Events copies, but the stream has only {} events",
            visible.len()
        ));
    }
    let vstart = visible.len() - n_ae;
    let index_of = |p: usize| visible.get(vstart + p).copied().unwrap_or(stream.len());
    let start = index_of(0);
    // The All Events copies are exactly the stream from the registration point.
    let aes: Vec<&Vec<u8>> =
        d.rx.iter()
            .filter_map(|r| match r {
                Rx::AllEvents(f) => Some(f),
                _ => None,
            })
            .collect();
    for (p, f) in aes.iter().enumerate() {
        let i = index_of(p);
        if **f != stream.events[i].frame {
            return Err(format!(
                "session {k}: All Events copy {p} is {} but stream event #{i} is {} (copies must be the stream's tail)",
                describe(f),
                describe(&stream.events[i].frame)
            ));
        }
    }
    let mut requests = Vec::new();
    for (n, r) in d.requests.iter().enumerate() {
        let Some((pos, reply)) = &r.reply else {
            return Err(format!(
                "session {k}: request #{n} {:?} never answered",
                r.request
            ));
        };
        requests.push((index_of(*pos), r.request.clone(), reply.clone()));
    }
    let ce = d.ce_fields.as_ref().map(|(id, ext, instr)| {
        let w = client_events_watch(
            id.as_deref().map(str::as_bytes),
            ext.as_deref().map(str::as_bytes),
            instr.as_deref().map(str::as_bytes),
        )
        .expect("a Client Events session names its agent");
        (d.ce_monitor, w, ALL_CALLS, ALL_AGENTS)
    });
    let model = SessionModel {
        session_id,
        client_events: ce,
        ae_call_mask: ALL_CALLS,
        ae_agent_mask: ALL_AGENTS,
    };
    let expected = model
        .expected(stream, start, &requests)
        .map_err(|e| format!("session {k} (port {}): wrong reply: {}", d.cli.port, e.0))?;
    let matches = |e: &Expected, r: &Rx| -> bool {
        match (e, r) {
            (Expected::AllEvents(i), Rx::AllEvents(f)) => *f == stream.events[*i].frame,
            (Expected::Copy { event, monitor_id }, Rx::Copy(f)) => {
                let sid = (*monitor_id == d.ce_monitor).then_some(session_id);
                *f == copy_bytes(&stream.events[*event].frame, *monitor_id, sid)
            }
            (
                Expected::Begin {
                    monitor_id,
                    call,
                    data,
                    ..
                },
                Rx::Copy(f),
            ) => {
                frame_type(f) == msg::BEGIN_CALL_EVENT
                    && normalized(decode(f), v24())
                        == normalized(built_begin(*monitor_id, call, data).into(), v24())
            }
            (
                Expected::End {
                    monitor_id,
                    call,
                    data,
                    ..
                },
                Rx::Copy(f),
            ) => {
                *f == Message::from(built_end(*monitor_id, call, data))
                    .to_frame(v24())
                    .unwrap()
            }
            (Expected::Reply(n), Rx::Reply(m, _)) => n == m,
            _ => false,
        }
    };
    let n = expected.len().max(d.rx.len());
    for at in 0..n {
        let ok = match (expected.get(at), d.rx.get(at)) {
            (Some(e), Some(r)) => matches(e, r),
            _ => false,
        };
        if !ok {
            let mut report = format!(
                "session {k} (port {}, SessionID {session_id}, registered at stream #{start}, Client Events {:?} MonitorID {}): first difference at item {at} (expected {} items, got {})\n",
                d.cli.port,
                d.ce_fields,
                d.ce_monitor,
                expected.len(),
                d.rx.len()
            );
            report.push_str(&classify_difference(expected.get(at), d.rx.get(at)));
            for j in at.saturating_sub(4)..(at + 5).min(n) {
                let e = expected
                    .get(j)
                    .map(|e| describe_expected(stream, e, d))
                    .unwrap_or_else(|| "—".into());
                let g =
                    d.rx.get(j)
                        .map(|r| describe_rx(stream, r))
                        .unwrap_or_else(|| "—".into());
                let mark = if j == at { ">>" } else { "  " };
                report.push_str(&format!(
                    "{mark} [{j}] expected: {e}\n{mark}      got:      {g}\n"
                ));
            }
            report.push_str("requests:\n");
            for (n, r) in d.requests.iter().enumerate() {
                report.push_str(&format!(
                    "  #{n} {} → {:?} (at stream #{})\n",
                    show_request(&r.request),
                    r.reply.as_ref().map(|x| &x.1),
                    r.reply.as_ref().map(|x| index_of(x.0)).unwrap_or(0)
                ));
            }
            return Err(report);
        }
    }
    Ok(())
}

/// A case stalled: what still works? Router counters before and after a
/// fresh All Events session tries to open and listen for a second.
fn stall_probe(router: &TestRouter, addr: std::net::SocketAddr, drvs: &mut [Drv]) -> String {
    let before = router.metrics_line();
    let mut probe = Client::connect(addr);
    let invoke = probe.invoke();
    probe.send(OpenSpec::services(service::ALL_EVENTS).request(invoke));
    let opened = probe.wait_for("OPEN_CONF", Duration::from_secs(2), |f| {
        frame_type(f) == msg::OPEN_CONF
    });
    std::thread::sleep(Duration::from_secs(1));
    let got = probe.poll() + probe.log.len();
    let mut more = Vec::new();
    for d in drvs.iter_mut() {
        let before = d.cli.log.len();
        d.cli.poll();
        more.push(d.cli.log.len() - before);
    }
    format!(
        "\nstall probe: metrics before {before}; a new session's OPEN_CONF: {opened:?}; \
         frames it got in 1 s: {got}; frames the case's sessions got meanwhile: {more:?}; \
         metrics after {}; threads after: {}",
        router.metrics_line(),
        thread_report()
    )
}

/// What a case exercised (summed over a batch and printed).
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    events: usize,
    sessions: usize,
    client_events: usize,
    all_events_copies: usize,
    monitor_copies: usize,
    /// BEGIN_CALL / END_CALL frames among the monitor copies (call brackets).
    bracket_frames: usize,
    device_starts: usize,
    call_starts: usize,
    call_refused_13: usize,
    stops: usize,
    changes: usize,
    refused_55: usize,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.events += o.events;
        self.sessions += o.sessions;
        self.client_events += o.client_events;
        self.all_events_copies += o.all_events_copies;
        self.monitor_copies += o.monitor_copies;
        self.bracket_frames += o.bracket_frames;
        self.device_starts += o.device_starts;
        self.call_starts += o.call_starts;
        self.call_refused_13 += o.call_refused_13;
        self.stops += o.stops;
        self.changes += o.changes;
        self.refused_55 += o.refused_55;
    }

    fn of(stream: &Stream, drvs: &[Drv]) -> Stats {
        let mut st = Stats {
            events: stream.len(),
            sessions: drvs.len(),
            ..Stats::default()
        };
        for d in drvs {
            st.client_events += d.ce_fields.is_some() as usize;
            for r in &d.rx {
                match r {
                    Rx::AllEvents(_) => st.all_events_copies += 1,
                    Rx::Copy(f) => {
                        st.monitor_copies += 1;
                        st.bracket_frames +=
                            matches!(frame_type(f), msg::BEGIN_CALL_EVENT | msg::END_CALL_EVENT)
                                as usize;
                    }
                    Rx::Reply(..) => {}
                }
            }
            for r in &d.requests {
                let reply = r.reply.as_ref().map(|x| x.1.clone());
                match (&r.request, reply) {
                    (Request::StartDevice { .. }, _) => st.device_starts += 1,
                    (Request::StartCall { .. }, Some(Reply::Failed(13))) => st.call_refused_13 += 1,
                    (Request::StartCall { .. }, _) => st.call_starts += 1,
                    (Request::Stop { .. }, Some(Reply::Failed(55))) => st.refused_55 += 1,
                    (Request::Change { .. }, Some(Reply::Failed(55))) => st.refused_55 += 1,
                    (Request::Stop { .. }, _) => st.stops += 1,
                    (Request::Change { .. }, _) => st.changes += 1,
                }
            }
        }
        st
    }
}

/// Whether the session's All Events copies are the last of `visible` (a
/// session that missed the end, or got more, is not at the end).
fn ends_the_stream(d: &Drv, visible: &[&Vec<u8>]) -> bool {
    let copies = d.rx.iter().filter_map(|r| match r {
        Rx::AllEvents(f) => Some(f),
        _ => None,
    });
    d.ae_count <= visible.len()
        && copies
            .zip(&visible[visible.len() - d.ae_count..])
            .all(|(got, want)| got == *want)
}

/// Run one case; `Err` is a failure report.
fn run_case(case_seed: u64) -> Result<Stats, String> {
    let mut rng = Rng::new(case_seed);
    let p = params(&mut rng);
    let (frames, last_due) = reference_stream(&p.sim, p.max_events);
    let stream = Stream::from_frames(frames);
    let speed = (last_due.as_secs_f64() / p.real_secs).max(0.5);
    let mut config = base_config();
    config.simulator = p.sim.clone();
    config.sim_speed = speed;
    config.sim_max_events = Some(p.max_events);
    let router = TestRouter::start(config);
    let addr = router.addr;
    let agents = p.sim.agents;

    // A Client Monitor observer names every session's SessionID.
    let mut observer = Client::connect(addr);
    observer.open(&OpenSpec::services(service::CLIENT_MONITOR));

    let mut drvs: Vec<Drv> = (0..p.nr_initial)
        .map(|_| open_session(addr, &mut rng, agents))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut next_action = Instant::now();
    let mut quiet_since: Option<Instant> = None;
    let last_event = stream.events.last().map(|e| e.frame.clone());
    // What an All Events session gets of the stream (every event passes).
    let visible: Vec<&Vec<u8>> = stream
        .events
        .iter()
        .filter(|e| testkit::model::passes(&e.facts, ALL_CALLS, ALL_AGENTS))
        .map(|e| &e.frame)
        .collect();
    loop {
        if Instant::now() > deadline {
            let probe = stall_probe(&router, addr, &mut drvs);
            return Err(format!(
                "case did not finish in time: {} events, sessions saw {:?} All Events copies, pending {:?}; router threads: {}",
                stream.len(),
                drvs.iter().map(|d| d.ae_count).collect::<Vec<_>>(),
                drvs.iter().map(|d| d.pending).collect::<Vec<_>>(),
                thread_report()
            ) + &probe);
        }
        let mut got = 0;
        for d in drvs.iter_mut() {
            let before = d.rx.len();
            d.absorb()?;
            got += d.rx.len() - before;
        }
        let progress = drvs[0].ae_count as f64 / stream.len().max(1) as f64;
        // Done once its All Events copies end with the stream's last event
        // and are the stream's tail: the last event's frame may occur
        // earlier in the stream too, so that alone is not the end.
        let done = |d: &Drv| {
            d.pending.is_none()
                && (last_event.is_none()
                    || (d.last_ae == last_event && ends_the_stream(d, &visible)))
        };
        let all_done = drvs.len() == p.nr_sessions && drvs.iter().all(done);
        if all_done {
            if got > 0 {
                quiet_since = None;
            }
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_millis(120) {
                break;
            }
        } else if Instant::now() >= next_action {
            next_action = Instant::now() + Duration::from_micros(rng.range(1_000, 12_000));
            if drvs.len() < p.nr_sessions
                && (progress > uniform(&mut rng, 0.0, 0.6) || progress > 0.55)
            {
                drvs.push(open_session(addr, &mut rng, agents));
            } else if progress < 0.97 || rng.chance(0.3) {
                let i = rng.below(drvs.len() as u32) as usize;
                if drvs[i].pending.is_none() && drvs[i].requests.len() < 40 {
                    random_request(&mut rng, &mut drvs, i, agents);
                }
            }
        }
        if got == 0 {
            std::thread::sleep(Duration::from_micros(300));
        }
    }

    // SessionIDs from the observer's OPENED events, by client port.
    observer.poll();
    let opened: Vec<(u32, u32)> = observer
        .log
        .iter()
        .filter(|f| frame_type(f) == msg::CLIENT_SESSION_OPENED_EVENT)
        .map(|f| match decode(f) {
            Message::ClientSessionOpenedEvent(e) => (e.client_port, e.session_id),
            _ => unreachable!(),
        })
        .collect();
    let mut ids = HashSet::new();
    for d in &drvs {
        ids.extend(d.monitors.iter().copied());
        if d.ce_monitor != 0 {
            ids.insert(d.ce_monitor);
        }
    }
    let nr_ids: usize = drvs
        .iter()
        .map(|d| d.monitors.len() + (d.ce_monitor != 0) as usize)
        .sum();
    if ids.len() != nr_ids {
        return Err(format!(
            "MonitorIDs repeat across sessions: {nr_ids} issued, {} distinct",
            ids.len()
        ));
    }
    for (k, d) in drvs.iter().enumerate() {
        let Some(&(_, sid)) = opened.iter().find(|(port, _)| *port == d.cli.port as u32) else {
            return Err(format!(
                "session {k} (port {}): no CLIENT_SESSION_OPENED_EVENT for it at the observer",
                d.cli.port
            ));
        };
        if d.ae_count == 0 {
            return Err(format!(
                "session {k} opened before 60% of the stream yet received no All Events copy"
            ));
        }
        check_session(&stream, k, d, sid)?;
    }
    let stats = Stats::of(&stream, &drvs);
    drop(drvs);
    drop(observer);
    let mut router = router;
    router.shutdown_within(Duration::from_secs(10))?;
    Ok(stats)
}

fn cases_per_test() -> u64 {
    std::env::var("MONITOR_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

fn run_batch(batch: u64) {
    if std::env::var("MONITOR_MODEL_SEED").is_ok() {
        return; // `one_case` runs the requested seed
    }
    let started = Instant::now();
    let n = cases_per_test();
    let mut total = Stats::default();
    for i in 0..n {
        let seed = 0xC7_1000_0000 ^ (batch << 32) ^ (i * 0x9E37_79B9);
        match run_case(seed) {
            Ok(st) => total.add(&st),
            Err(report) => panic!(
                "model case {i} of batch {batch} failed (rerun: MONITOR_MODEL_SEED={seed} cargo test --release --test monitor_model one_case -- --nocapture):\n{report}"
            ),
        }
    }
    eprintln!(
        "batch {batch}: {n} cases in {:?}: {total:?}",
        started.elapsed()
    );
}

#[test]
fn model_batch_0() {
    run_batch(0);
}

#[test]
fn model_batch_1() {
    run_batch(1);
}

#[test]
fn model_batch_2() {
    run_batch(2);
}

#[test]
fn model_batch_3() {
    run_batch(3);
}

/// `MONITOR_MODEL_SEED=s`: run that one case (from a failure report).
#[test]
fn one_case() {
    let Ok(seed) = std::env::var("MONITOR_MODEL_SEED") else {
        return;
    };
    let seed: u64 = seed.parse().expect("MONITOR_MODEL_SEED is a u64");
    match run_case(seed) {
        Ok(st) => eprintln!("case {seed}: {st:?}"),
        Err(report) => panic!("case {seed}:\n{report}"),
    }
}

/// The reference itself on a hand-made stream: a device joins a call, the
/// call is transferred, the device's connection clears (its last event),
/// and a call monitor follows the merge into the primary call.
#[test]
fn reference_follows_the_rules_on_a_hand_made_stream() {
    let a = call(1, "T1");
    let b = call(2, "3001");
    let frames: Vec<Vec<u8>> = vec![
        Message::from(delivered(a, "T1", "555", "8001", Some((1, 200)))),
        Message::from(delivered(a, "3001", "555", "3001", None)),
        Message::from(established(a, "3001", "555")),
        Message::from(held(a, None)),
        Message::from(service_initiated(b, "3001")),
        Message::from(established(b, "3002", "3001")),
        Message::from(transferred(a, b, "3001", "3002", &["T1", "3002"])),
        Message::from(cleared(b)),
        Message::from(end_call(b)),
        Message::from(conn_cleared(a, Some("3002"))),
        Message::from(conn_cleared(a, Some("T1"))),
        Message::from(cleared(a)),
        Message::from(end_call(a)),
    ]
    .into_iter()
    .map(|m| m.to_frame(Version::MAX).unwrap())
    .collect();
    let stream = Stream::from_frames(frames);
    let model = SessionModel {
        session_id: 1,
        client_events: None,
        ae_call_mask: 0,
        ae_agent_mask: 0,
    };
    let dev = |s: &str| (Kind::Device, s.as_bytes().to_vec());
    let reqs = vec![
        (
            0,
            Request::StartDevice {
                dev: dev("3001"),
                call_mask: ALL_CALLS,
                agent_mask: ALL_AGENTS,
            },
            Reply::Started(10),
        ),
        (
            0,
            Request::StartDevice {
                dev: dev("3002"),
                call_mask: ALL_CALLS,
                agent_mask: ALL_AGENTS,
            },
            Reply::Started(11),
        ),
        (
            0,
            Request::StartDevice {
                dev: (Kind::Trunk, b"1".to_vec()),
                call_mask: ALL_CALLS,
                agent_mask: ALL_AGENTS,
            },
            Reply::Started(12),
        ),
        (
            5,
            Request::StartCall {
                call: (2, 1, b"3001".to_vec()),
                call_mask: ALL_CALLS,
                agent_mask: ALL_AGENTS,
            },
            Reply::Started(13),
        ),
        (
            12,
            Request::StartCall {
                call: (1, 1, b"T1".to_vec()),
                call_mask: ALL_CALLS,
                agent_mask: ALL_AGENTS,
            },
            Reply::Failed(13),
        ),
    ];
    let got = model.expected(&stream, 0, &reqs).unwrap();
    let copies = |m: u32| -> Vec<usize> {
        got.iter()
            .filter_map(|e| match e {
                Expected::Copy { event, monitor_id } if *monitor_id == m => Some(*event),
                _ => None,
            })
            .collect()
    };
    // 3001 joins at #1; the transfer (#6) removes it from call a and ends
    // its associations with b and a; call b's clear/end name 3001 as b's
    // connection device, but end a call it is no longer associated with
    // (rule 4): not delivered.
    assert_eq!(copies(10), vec![1, 2, 3, 4, 5, 6]);
    // 3002 joins b at #5, moves into a with the transfer, leaves at #9.
    assert_eq!(copies(11), vec![5, 6, 9]);
    // Trunk 1 takes part in a from #0 until a ends (#11, included).
    assert_eq!(copies(12), vec![0, 1, 2, 3, 6, 9, 10, 11]);
    // The call monitor on b follows the merge into a and ends with it; call
    // monitors are not watchers: no brackets.
    assert_eq!(copies(13), vec![5, 6, 9, 10, 11]);
    // The brackets of each watcher, in order, with the copies around them.
    let ca: CallId = (1, 1, b"T1".to_vec());
    let cb: CallId = (2, 1, b"3001".to_vec());
    let items = |m: u32| -> Vec<String> {
        got.iter()
            .filter_map(|e| match e {
                Expected::Copy { event, monitor_id } if *monitor_id == m => {
                    Some(format!("#{event}"))
                }
                Expected::Begin {
                    monitor_id, call, ..
                } if *monitor_id == m => Some(format!("B{}", call.0)),
                Expected::End {
                    monitor_id, call, ..
                } if *monitor_id == m => Some(format!("E{}", call.0)),
                _ => None,
            })
            .collect()
    };
    let s = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        items(10),
        s(&["B1", "#1", "#2", "#3", "B2", "#4", "#5", "#6", "E2", "E1"])
    );
    assert_eq!(items(11), s(&["B2", "#5", "B1", "#6", "E2", "#9", "E1"]));
    assert_eq!(
        items(12),
        s(&["B1", "#0", "#1", "#2", "#3", "#6", "#9", "#10", "#11", "E1"])
    );
    assert_eq!(items(13), s(&["#5", "#6", "#9", "#10", "#11"]));
    // Built BEGINs carry the call's data before the event: a's from its
    // first CALL_DELIVERED (#0) when 3001's copy of #1 comes.
    let begin_a_for_3001 = got
        .iter()
        .find_map(|e| match e {
            Expected::Begin {
                monitor_id: 10,
                call,
                data,
                ..
            } if *call == ca => Some(data.clone()),
            _ => None,
        })
        .expect("a BEGIN of call a for 3001");
    assert_eq!(begin_a_for_3001.peripheral_id, PID);
    assert!(got
        .iter()
        .any(|e| matches!(e, Expected::End { call, .. } if *call == cb)));
    let _ = Watch::Call((0, 0, Vec::new()));
}

/// The call's data fold (docs/call-brackets.md "The call's data") on a
/// hand-made stream: BEGIN_CALL, CALL_DATA_UPDATE and CALL_DELIVERED
/// replace what they carry, keep the rest; named variables replace by name;
/// a renaming CALL_DATA_UPDATE moves the data; CALL_TYPE only from BEGIN /
/// CALL_DATA_UPDATE.
#[test]
fn reference_call_data_fold_follows_the_doc() {
    use ctirouter::proto::msg::{BeginCallEvent, CallDataUpdateEvent};
    use ctirouter::proto::{CtiString, NamedVar};
    let a = call(1, "T1");
    let nv = |n: &str, v: &str| NamedVar {
        name: CtiString::from(n),
        value: CtiString::from(v),
    };
    let mut begin = BeginCallEvent {
        peripheral_id: PID,
        peripheral_type: PT,
        call_type: 2,
        connection_device_id_type: 1,
        connection_call_id: 1,
        connection_device_id: Some("T1".into()),
        ani: Some("111".into()),
        dnis: Some("8001".into()),
        call_variable_1: Some("one".into()),
        named_variables: vec![nv("x", "1"), nv("y", "1")],
        ..Default::default()
    };
    begin.num_named_variables = 2;
    let mut cdu = CallDataUpdateEvent {
        call_type: 9,
        dnis: Some("8002".into()),
        call_variable_2: Some("two".into()),
        named_variables: vec![nv("y", "2"), nv("z", "2")],
        new_connection_call_id: 7,
        new_connection_device_id_type: 1,
        new_connection_device_id: Some("T7".into()),
        ..data_update(a)
    };
    cdu.num_named_variables = 2;
    let mut del = delivered(call(7, "T7"), "3001", "111", "3001", None);
    del.ani = Some("222".into());
    let frames: Vec<Vec<u8>> = vec![
        Message::from(begin),
        Message::from(cdu),
        Message::from(del),
        Message::from(established(call(7, "T7"), "3001", "222")),
    ]
    .into_iter()
    .map(|m| m.to_frame(Version::MAX).unwrap())
    .collect();
    let stream = Stream::from_frames(frames);
    let d = &stream.events[3].call_data;
    assert_eq!(d.call_type, 9, "CALL_DATA_UPDATE's CallType");
    assert_eq!(
        d.ani.as_ref().unwrap().as_bytes(),
        b"222",
        "DELIVERED's ANI"
    );
    assert_eq!(d.dnis.as_ref().unwrap().as_bytes(), b"8002");
    assert_eq!(d.call_variables[0].as_ref().unwrap().as_bytes(), b"one");
    assert_eq!(d.call_variables[1].as_ref().unwrap().as_bytes(), b"two");
    assert_eq!(
        d.named_variables,
        vec![nv("x", "1"), nv("y", "2"), nv("z", "2")]
    );
    assert!(
        stream.events[1].call_data.named_variables == vec![nv("x", "1"), nv("y", "1")],
        "the CALL_DATA_UPDATE's own data is not in the data before it"
    );
}
