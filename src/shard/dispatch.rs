//! The event path of the shard core: queue each event (at the session's
//! version) for every session that wants it — All Events sessions once, as
//! a range of the batch's arena (`outbox`), then one copy per matching
//! monitor with its MonitorID patched in and its own masks applied — hold
//! every session to its output bound, and at the end of the batch wake each
//! dirty session's writer once: one vectored socket write per dirty session
//! per batch.

use std::sync::Arc;

use super::core::{Sessions, ShardCore};
use super::monitors::{Delivery, MatchScratch};
use crate::call::CallRecord;
use crate::event::Event;
use crate::ids::{MonitorId, SessionId};
use crate::link::ToIngest;
use crate::metrics::Metrics;
use crate::proto::constants::msg;
use crate::proto::transcode::{patch_agent_session_id, patch_monitor_id};
use crate::session::server::{failure_event, CloseReason, Phase};

impl ShardCore {
    /// Append one event to every session that wants it; returns the copies made.
    pub fn on_event(&mut self, event: &Arc<Event>) -> u64 {
        self.sessions.arenas.next_event();
        let sessions = &mut self.sessions;
        let mut copies = 0;
        match event.message_type() {
            // SYSTEM_EVENT and USER_MESSAGE_EVENT (the Miscellaneous
            // service) reach every open session, whatever its services; a
            // supervisor's session has the CTI Server's own from its own
            // session there, and the router's from here.
            msg::SYSTEM_EVENT | msg::USER_MESSAGE_EVENT => {
                let slots: Vec<usize> = sessions.slots().collect();
                for slot in slots {
                    let own = sessions.at(slot).is_some_and(|c| c.session.own_upstream);
                    if !own || event.router_made {
                        copies += sessions.append(slot, Payload::Event(event), None) as u64;
                    }
                }
                return copies;
            }
            msg::CLIENT_SESSION_OPENED_EVENT | msg::CLIENT_SESSION_CLOSED_EVENT => {
                for &slot in &self.client_monitor {
                    copies += sessions.append(slot, Payload::Event(event), None) as u64;
                }
                return copies;
            }
            // Once to every All Events and every Peripheral Monitor session.
            msg::CALL_TRANSLATION_ROUTE_EVENT => {
                let ae = &self.all_events;
                let pm = self.peripheral_monitor.iter().filter(|s| !ae.contains(s));
                for &slot in ae.iter().chain(pm) {
                    copies += sessions.append(slot, Payload::Event(event), None) as u64;
                }
                return copies;
            }
            _ => {}
        }
        let bit = event.mask_bit;
        for &slot in &self.all_events {
            let wants = sessions
                .at(slot)
                .is_some_and(|c| c.session.wants_all_events_bit(bit));
            if wants {
                copies += sessions.append(slot, Payload::Event(event), None) as u64;
            }
        }
        copies + self.deliver_to_monitors(event)
    }

    /// One copy per matching monitor, MonitorID ascending, each through its
    /// own masks and, for watchers (Client Events agents, device monitors),
    /// inside its call brackets (docs/call-brackets.md); then call monitors
    /// follow merges and end with their call.
    fn deliver_to_monitors(&mut self, event: &Arc<Event>) -> u64 {
        if self.monitors.is_empty() {
            return 0;
        }
        let mut copies = 0;
        let mut scratch = MatchScratch::new();
        let index = &mut self.monitors;
        let sessions = &mut self.sessions;
        index.matching_entries(&event.targets, &mut scratch);
        for &entry in scratch.iter() {
            let Some(m) = index.at_mut(entry) else {
                continue;
            };
            let (id, slot) = (m.id, sessions.slot_of(m.session));
            let session_id = m.client_events.then_some(m.session);
            m.deliveries(event, |delivery| {
                let Some(slot) = slot else {
                    return;
                };
                let (payload, session_id) = match delivery {
                    Delivery::Begin(call) => (Payload::Begin(call), None),
                    Delivery::Event => (Payload::Event(event), session_id),
                    Delivery::End(call) => (Payload::End(call), None),
                };
                copies += sessions.append(slot, payload, Some((id, session_id))) as u64;
            });
        }
        if let Some((from, to)) = event.targets.merged {
            self.monitors.merge_call(from, to);
        }
        for &call in &event.targets.ended_calls {
            for (_, gone) in self.monitors.end_call(call) {
                for key in gone {
                    self.to_ingest.push(ToIngest::InterestDown {
                        shard: self.index,
                        key,
                    });
                }
            }
        }
        copies
    }

    /// An event of a supervisor's own upstream session: to that session
    /// alone (docs/requests.md §7). Returns the copies made.
    pub fn on_own_event(&mut self, session: SessionId, event: &Arc<Event>) -> u64 {
        let Some(slot) = self.sessions.slot_of(session) else {
            return 0;
        };
        self.sessions.arenas.next_event();
        self.sessions.append(slot, Payload::Event(event), None) as u64
    }

    /// End the batch: see [`Sessions::end_batch`].
    pub fn end_batch(&mut self) {
        self.sessions.end_batch();
    }
}

/// What a session is sent: an upstream event, or a bracket built from a
/// call's data.
#[derive(Clone, Copy)]
pub(super) enum Payload<'a> {
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

/// A monitor's copy of an event carries its MonitorID (and, for Client
/// Events, the agent's SessionID).
fn patch_copy(copy: &mut [u8], monitor_id: MonitorId, session_id: Option<SessionId>) {
    patch_monitor_id(copy, monitor_id.0);
    if let Some(session_id) = session_id {
        patch_agent_session_id(copy, session_id.0);
    }
}

impl Sessions {
    /// Append a payload at the session's version — for a monitor copy with
    /// its MonitorID (and, for Client Events, its SessionID) patched in — and
    /// cut the session if that would pass its output bound (docs/design.md
    /// §4.13). Returns whether a copy was queued.
    pub(super) fn append(
        &mut self,
        slot: usize,
        payload: Payload<'_>,
        monitor: Option<(MonitorId, Option<SessionId>)>,
    ) -> bool {
        let Some(conn) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return false;
        };
        let bound = conn.bound;
        if conn.session.phase != Phase::Open || conn.held {
            return false;
        }
        let version = conn.session.version;
        let Some(bytes) = payload.bytes_at(version) else {
            return false;
        };
        if conn.passes_bound(bytes.len(), bound) {
            self.cut_slow_consumer(slot);
            return false;
        }
        // A session that registered its variables gets its own copy of an
        // event that carries others (docs/requests.md §6).
        let filtered = conn.session.variables.as_deref().is_some_and(|filter| {
            let local = &mut conn.out.local;
            let start = local.len();
            let filtered = filter.filter(bytes, version, local);
            if let (true, Some((monitor_id, session_id))) = (filtered, monitor) {
                patch_copy(&mut local[start..], monitor_id, session_id);
            }
            filtered
        });
        match monitor {
            _ if filtered => {}
            // Unchanged: queue a range of the batch's arena (the event is
            // copied there once per version), the kernel copies from it.
            None => {
                let (arena, start, end) = self.arenas.place(version, bytes);
                conn.out.push_run(arena, start, end);
            }
            // A monitor copy carries its own MonitorID (and SessionID).
            Some((monitor_id, session_id)) => {
                let local = &mut conn.out.local;
                let start = local.len();
                local.extend_from_slice(bytes);
                patch_copy(&mut local[start..], monitor_id, session_id);
            }
        }
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(slot);
        }
        self.nr_bytes_queued += bytes.len() as u64;
        true
    }

    /// Cut the session if what it owes passes its output bound; returns
    /// whether it was cut. Every writer of a session's output other than
    /// [`Sessions::append`] (which checks before it queues) calls this after
    /// appending: replies, the OPEN_CONF and Client Monitor snapshot, a
    /// batch's settled arena charge ([`Sessions::end_batch`]).
    pub(super) fn bound_output(&mut self, slot: usize) -> bool {
        let over = self.at(slot).is_some_and(|c| c.passes_bound(0, c.bound));
        if over {
            self.cut_slow_consumer(slot);
        }
        over
    }

    /// The session fell too far behind: drop its queue, send
    /// FAILURE_EVENT(25) if the socket is not mid-write (it fits), and close.
    /// Nobody else waits.
    fn cut_slow_consumer(&mut self, slot: usize) {
        Metrics::add(&self.metrics.nr_slow_consumer_cuts, 1);
        if let Some(total) = self.metrics.shard_totals.of(self.shard) {
            Metrics::add(&total.slow_consumer_cuts, 1);
        }
        let shard = self.shard;
        let Some(conn) = self.at_mut(slot) else {
            return;
        };
        conn.out.clear();
        let version = conn.session.version;
        conn.session.phase = Phase::Closing(CloseReason::SlowConsumer);
        let mid_write = conn.inflight > 0;
        if !mid_write {
            failure_event(
                &mut conn.out.local,
                version,
                CloseReason::SlowConsumer.status(),
            );
        }
        let id = conn.id;
        tracing::info!(shard, session = %id, "slow consumer cut at its output bound");
        if mid_write {
            self.kill.push(id);
        } else {
            self.wake.push(id);
        }
    }

    /// End the batch: freeze its arenas, charge each dirty session for the
    /// arena it now holds (cutting it if that passes its bound), and list
    /// every session that got events as `delivered` (written first).
    pub(super) fn end_batch(&mut self) {
        if let Some(total) = self.metrics.shard_totals.of(self.shard) {
            Metrics::add(&total.deliveries, std::mem::take(&mut self.nr_delivered));
            Metrics::add(&total.bytes, std::mem::take(&mut self.nr_bytes_queued));
        }
        let arena_lens = self.arenas.freeze();
        let mut dirty = std::mem::take(&mut self.dirty);
        for &slot in &dirty {
            let Some(conn) = self.at_mut(slot) else {
                continue;
            };
            conn.dirty = false;
            let version = conn.session.version;
            conn.out.settle_batch(arena_lens[version.index()]);
            let id = conn.id;
            if !self.bound_output(slot) {
                self.delivered.push(id);
            }
        }
        // Keep the allocation for the next batch.
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }
}
