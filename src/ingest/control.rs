//! The control rules of ingest's core: answers to the shards' control rings: session opens and
//! closes (interest, service counts, Client Monitor events and snapshots),
//! monitor starts (validated, acknowledged in stream order), interest drops
//! and session monitors. Replies travel in the same ordered rings as events,
//! so a monitor applies exactly from the point of the stream where ingest
//! accepted it: no event that reached ingest after that point can miss it.

use std::sync::Arc;

use super::core::{IngestCore, Links};
use super::registry::{closed_event, opened_event, SessionMonitor, SessionRecord};
use crate::event::Event;
use crate::keys::InterestKey;
use crate::link::ToIngest;
use crate::link::ToShard;
use crate::proto::constants::{service, status};
use crate::proto::Version;

impl<L: Links> IngestCore<L> {
    /// One control message from a shard, in that shard's order.
    pub fn on_control(&mut self, item: ToIngest) {
        let core = self;
        match item {
            ToIngest::SessionOpened {
                shard,
                id,
                peer,
                services,
                call_mask,
                agent_mask,
                client,
                interest_up,
                ..
            } => {
                for key in interest_up {
                    core.interest.up(shard, key);
                }
                core.interest.count_session(shard, services, 1);
                let snapshot = if services & service::CLIENT_MONITOR != 0 {
                    core.registry.opened_events().filter_map(event_of).collect()
                } else {
                    Vec::new()
                };
                let agent = if services & service::CLIENT_EVENTS != 0 {
                    client
                        .agent_key()
                        .and_then(|key| core.tracker.agents.view(key))
                } else {
                    None
                };
                core.stage(
                    shard,
                    ToShard::OpenAck {
                        session: id,
                        agent,
                        snapshot,
                    },
                );
                let record = SessionRecord {
                    shard,
                    peer,
                    services,
                    call_mask,
                    agent_mask,
                    client,
                };
                core.push_message(opened_event(id, &record));
                core.registry.insert(id, record);
            }
            ToIngest::SessionClosed {
                shard,
                id,
                status,
                services,
                interest_down,
            } => {
                for key in interest_down {
                    core.interest.down(shard, key);
                }
                core.interest.count_session(shard, services, -1);
                let (record, ended) = core.registry.remove(id);
                for m in ended {
                    core.stage(
                        m.shard,
                        ToShard::SessionMonitorEnded {
                            session: m.observer,
                            monitor_id: m.monitor_id,
                        },
                    );
                }
                if let Some(record) = record {
                    core.push_message(closed_event(id, &record, status));
                }
            }
            ToIngest::MonitorStart {
                shard,
                session,
                invoke_id,
                monitor_id,
                key,
                first,
            } => {
                let result = match key {
                    InterestKey::Call(call) if !core.tracker.knows_call(call) => {
                        Err(status::E_CTI_INVALID_CALLID)
                    }
                    _ => Ok(()),
                };
                if result.is_ok() && first {
                    core.interest.up(shard, key);
                }
                core.stage(
                    shard,
                    ToShard::MonitorStartResult {
                        session,
                        invoke_id,
                        monitor_id,
                        result,
                    },
                );
            }
            ToIngest::InterestDown { shard, key } => core.interest.down(shard, key),
            ToIngest::SessionMonitorStart {
                shard,
                session,
                invoke_id,
                monitor_id,
                target,
            } => {
                let result = if core.registry.contains(target) && target != session {
                    core.registry.add_monitor(SessionMonitor {
                        monitor_id,
                        shard,
                        observer: session,
                        target,
                    });
                    Ok(())
                } else {
                    Err(status::E_CTI_INVALID_MONITORID)
                };
                core.stage(
                    shard,
                    ToShard::SessionMonitorResult {
                        session,
                        invoke_id,
                        monitor_id,
                        result,
                    },
                );
            }
            ToIngest::SessionMonitorStop { monitor_id } => core.registry.remove_monitor(monitor_id),
        }
    }
}

/// A router-made message as an event (for a Client Monitor snapshot).
fn event_of(message: crate::proto::Message) -> Option<Arc<Event>> {
    let frame = message.to_frame(Version::MAX).ok()?;
    Event::new(0, Version::MAX, frame.into_boxed_slice())
        .ok()
        .map(Arc::new)
}
