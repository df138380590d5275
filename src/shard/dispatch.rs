//! Shard dispatch: drain a batch from the ingest ring and queue each event
//! (at the session's version) for every session that wants it — All Events
//! sessions once, as a range of the batch's arena (`outbox`), then one copy
//! per matching monitor with its MonitorID patched in and its own masks
//! applied — enforce the output bound, and at the end of the batch wake each
//! dirty session's writer once: one vectored socket write per dirty session
//! per batch.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::brackets::{self, Steps};
use super::conn::Conn;
use super::monitors::MatchScratch;
use super::requests;
use super::Shard;
use crate::call::CallRecord;
use crate::event::Event;
use crate::event::MaskBit;
use crate::link::ToIngest;
use crate::link::ToShard;
use crate::metrics::Metrics;
use crate::proto::constants::{call_mask, msg, status};
use crate::proto::transcode::{patch_agent_session_id, patch_monitor_id};
use crate::ring;
use crate::session::server::{failure_event, CloseReason, Phase};

/// Most ring items handled before the batch's writes are issued: bounds the
/// latency the first event of a long burst waits for its write.
const MAX_BATCH: usize = 256;

/// How often a shard folds its latency histogram into the shared metrics.
const LATENCY_MERGE_INTERVAL: Duration = Duration::from_millis(100);

/// Dispatch ring batches until ingest says shut down.
pub async fn run(shard: &Rc<Shard>, from_ingest: &mut ring::Receiver<ToShard>) {
    let mut shutdown = false;
    let mut latency = crate::metrics::latency_histogram();
    let mut received: Vec<Instant> = Vec::with_capacity(MAX_BATCH);
    let mut last_merge = Instant::now();
    while !shutdown {
        from_ingest.ready().await;
        let mut nr_deliveries = 0u64;
        from_ingest.drain(MAX_BATCH, |item| match item {
            ToShard::Event(event) => {
                received.push(event.received);
                nr_deliveries += deliver(shard, &event);
            }
            ToShard::Status(status) => shard.set_status(status),
            ToShard::UpstreamLost => {
                shard.monitors.borrow_mut().drop_call_monitors();
            }
            ToShard::OpenAck {
                session,
                agent,
                snapshot,
            } => {
                if let Some(conn) = shard.conn(session) {
                    shard.activate(&conn, agent, snapshot);
                }
            }
            ToShard::MonitorStartResult {
                session,
                invoke_id,
                monitor_id,
                result,
            } => requests::on_monitor_start_result(shard, session, invoke_id, monitor_id, result),
            ToShard::SessionMonitorResult {
                session,
                invoke_id,
                monitor_id,
                result,
            } => requests::on_session_monitor_result(shard, session, invoke_id, monitor_id, result),
            ToShard::SessionMonitorEnded {
                session,
                monitor_id,
            } => requests::on_session_monitor_ended(shard, session, monitor_id),
            ToShard::Shutdown => shutdown = true,
        });
        Metrics::add(&shard.metrics.nr_deliveries, nr_deliveries);
        flush_dirty(shard);
        let now = Instant::now();
        for at in received.drain(..) {
            let _ = latency.record(now.saturating_duration_since(at).as_nanos().max(1) as u64);
        }
        if shutdown || now.duration_since(last_merge) >= LATENCY_MERGE_INTERVAL {
            shard.metrics.merge_latency(&mut latency);
            last_merge = now;
        }
        shard.to_ingest.borrow_mut().try_flush();
        // Let connection tasks run between batches.
        futures_lite::future::yield_now().await;
    }
}

/// Append one event to every session that wants it; returns the copies made.
fn deliver(shard: &Shard, event: &Arc<Event>) -> u64 {
    shard.arenas.borrow_mut().next_event();
    let mut copies = 0;
    match event.message_type() {
        // SYSTEM_EVENT reaches every open session, whatever its services.
        msg::SYSTEM_EVENT => {
            for conn in shard.conns.borrow().values() {
                copies += append(shard, conn, Payload::Event(event), None) as u64;
            }
            return copies;
        }
        msg::CLIENT_SESSION_OPENED_EVENT | msg::CLIENT_SESSION_CLOSED_EVENT => {
            for conn in shard.client_monitor.borrow().iter() {
                copies += append(shard, conn, Payload::Event(event), None) as u64;
            }
            return copies;
        }
        // Once to every All Events and every Peripheral Monitor session.
        msg::CALL_TRANSLATION_ROUTE_EVENT => {
            let ae = shard.all_events.borrow();
            let pm = shard.peripheral_monitor.borrow();
            for conn in ae
                .iter()
                .chain(pm.iter().filter(|c| !ae.iter().any(|a| a.id == c.id)))
            {
                copies += append(shard, conn, Payload::Event(event), None) as u64;
            }
            return copies;
        }
        _ => {}
    }
    let bit = event.mask_bit;
    for conn in shard.all_events.borrow().iter() {
        let wants = conn.state.borrow().session.wants_all_events_bit(bit);
        if wants {
            copies += append(shard, conn, Payload::Event(event), None) as u64;
        }
    }
    copies + deliver_to_monitors(shard, event, bit)
}

/// One copy per matching monitor, MonitorID ascending, each through its own
/// masks and, for watchers (Client Events agents, device monitors), inside
/// its call brackets (docs/call-brackets.md); then call monitors follow
/// merges and end with their call.
fn deliver_to_monitors(shard: &Shard, event: &Arc<Event>, bit: MaskBit) -> u64 {
    let mut copies = 0;
    let mut scratch = MatchScratch::new();
    {
        let mut index = shard.monitors.borrow_mut();
        if index.is_empty() {
            return 0;
        }
        let bracket = event.targets.bracket.as_ref();
        index.matching_entries(&event.targets, &mut scratch);
        for &entry in scratch.iter() {
            let Some(m) = index.at_mut(entry) else {
                continue;
            };
            let steps = match bracket {
                Some(b) if m.watch.is_bracketed() => {
                    brackets::step(&mut m.calls, m.watch.leaves(b), event.message_type(), b)
                }
                _ => Steps::EVENT,
            };
            let (id, session, masks) = (m.id, m.session, (m.call_mask, m.agent_mask));
            let session_id = m.client_events.then_some(session);
            let Some(conn) = shard.conns.borrow().get(&session).cloned() else {
                continue;
            };
            let passes = |bit: MaskBit| bit.passes(masks.0, masks.1);
            let mut queue = |payload: Payload<'_>, session_id| {
                copies += append(shard, &conn, payload, Some((id, session_id))) as u64;
            };
            if let (true, Some(b)) = (steps.begin && passes(BEGIN_BIT), bracket) {
                queue(Payload::Begin(&b.before), None);
            }
            if steps.event && passes(bit) {
                queue(Payload::Event(event), session_id);
            }
            if let (true, Some((_, folded))) = (
                steps.end_folded && passes(END_BIT),
                bracket.and_then(|b| b.folded.as_ref()),
            ) {
                queue(Payload::End(folded), None);
            }
            if let (true, Some(b)) = (steps.end && passes(END_BIT), bracket) {
                queue(Payload::End(&b.before), None);
            }
        }
    }
    if let Some((from, to)) = event.targets.merged {
        shard.monitors.borrow_mut().merge_call(from, to);
    }
    for &call in &event.targets.ended_calls {
        let ended = shard.monitors.borrow_mut().end_call(call);
        for (_, gone) in ended {
            for key in gone {
                shard.send_to_ingest(ToIngest::InterestDown {
                    shard: shard.index,
                    key,
                });
            }
        }
    }
    copies
}

/// The mask bits of the BEGIN_CALL and END_CALL a bracket adds.
const BEGIN_BIT: MaskBit = MaskBit::Call(call_mask::bit_for(msg::BEGIN_CALL_EVENT));
const END_BIT: MaskBit = MaskBit::Call(call_mask::bit_for(msg::END_CALL_EVENT));

/// What a session is sent: an upstream event, or a bracket built from a
/// call's data.
#[derive(Clone, Copy)]
enum Payload<'a> {
    Event(&'a Arc<Event>),
    Begin(&'a CallRecord),
    End(&'a CallRecord),
}

impl Payload<'_> {
    fn bytes_at(&self, version: crate::proto::Version) -> Option<&[u8]> {
        match self {
            Payload::Event(event) => event.bytes_at(version),
            Payload::Begin(call) => call.begin_at(version),
            Payload::End(call) => call.end_at(version),
        }
    }
}

/// Append a payload at the session's version — for a monitor copy with its
/// MonitorID (and, for Client Events, its SessionID) patched in — and cut
/// the session if that would pass its output bound (design.md §4.13).
/// Returns whether a copy was queued.
fn append(
    shard: &Shard,
    conn: &Rc<Conn>,
    payload: Payload<'_>,
    monitor: Option<(u32, Option<u32>)>,
) -> bool {
    let mut st = conn.state.borrow_mut();
    if st.session.phase != Phase::Open || st.held {
        return false;
    }
    let version = st.session.version;
    let Some(bytes) = payload.bytes_at(version) else {
        return false;
    };
    if st.passes_bound(bytes.len(), shard.config.limits.output_bound_bytes) {
        drop(st);
        cut_slow_consumer(shard, conn);
        return false;
    }
    match monitor {
        // Unchanged: queue a range of the batch's arena (the event is copied
        // there once per version), the kernel copies from it.
        None => {
            let mut arenas = shard.arenas.borrow_mut();
            let (arena, start, end) = arenas.place(version, bytes);
            st.out.push_run(arena, start, end);
        }
        // A monitor copy carries its own MonitorID (and SessionID).
        Some((monitor_id, session_id)) => {
            let local = &mut st.out.local;
            let start = local.len();
            local.extend_from_slice(bytes);
            let copy = &mut local[start..];
            patch_monitor_id(copy, monitor_id);
            if let Some(session_id) = session_id {
                patch_agent_session_id(copy, session_id);
            }
        }
    }
    if !st.dirty {
        st.dirty = true;
        shard.dirty.borrow_mut().push(conn.clone());
    }
    true
}

/// Cut the session if what it owes passes its output bound; returns whether
/// it was cut. Every writer of a session's output other than [`append`]
/// (which checks before it queues) calls this after appending: replies
/// (`conn::handle_frames`, `requests::answer`), the Client Monitor snapshot
/// (`Shard::activate`), a batch's settled arena charge (`flush_dirty`).
pub fn bound_output(shard: &Shard, conn: &Rc<Conn>) -> bool {
    let over = conn
        .state
        .borrow()
        .passes_bound(0, shard.config.limits.output_bound_bytes);
    if over {
        cut_slow_consumer(shard, conn);
    }
    over
}

/// The session fell too far behind: drop its queue, send FAILURE_EVENT(25)
/// if the socket is not mid-write (it fits), and close. Nobody else waits.
fn cut_slow_consumer(shard: &Shard, conn: &Rc<Conn>) {
    Metrics::add(&shard.metrics.nr_slow_consumer_cuts, 1);
    let mut st = conn.state.borrow_mut();
    st.out.clear();
    let version = st.session.version;
    st.session.phase = Phase::Closing(CloseReason::SlowConsumer);
    let mid_write = st.inflight > 0;
    if !mid_write {
        failure_event(&mut st.out.local, version, status::E_CTI_BAD_MESSAGE_FORMAT);
    }
    drop(st);
    tracing::info!(
        shard = shard.index,
        session = conn.id,
        "slow consumer cut at its output bound"
    );
    if mid_write {
        conn.kill.notify();
    } else {
        conn.write_ready.notify();
    }
}

/// End the batch: freeze its arenas, charge each dirty session for the
/// arena it now holds (cutting it if that passes its bound), and wake the
/// writer of every session that got output.
fn flush_dirty(shard: &Shard) {
    let arena_lens = shard.arenas.borrow_mut().freeze();
    let dirty = std::mem::take(&mut *shard.dirty.borrow_mut());
    for conn in &dirty {
        {
            let mut st = conn.state.borrow_mut();
            st.dirty = false;
            let version = st.session.version;
            st.out.settle_batch(arena_lens[version.index()]);
        }
        if !bound_output(shard, conn) {
            conn.write_ready.notify();
        }
    }
    // Keep the allocation for the next batch.
    let mut slot = shard.dirty.borrow_mut();
    if slot.is_empty() {
        let mut dirty = dirty;
        dirty.clear();
        *slot = dirty;
    }
}
