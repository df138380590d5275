//! The router-wide session registry (for the Client Monitor service): every
//! open session on every shard, the CLIENT_SESSION_OPENED/CLOSED_EVENTs
//! describing them, and the session monitors (observer → observed session).
//! Lives on the ingest core, so every observer sees one order.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::ids::{MonitorId, Services, SessionId};
use crate::proto::msg::{ClientSessionClosedEvent, ClientSessionOpenedEvent};
use crate::proto::{CtiString, Message, Version};
use crate::session::server::{ClientInfo, CloseReason};

/// What Client Monitor observers are told about a session.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub shard: usize,
    pub peer: SocketAddr,
    /// The protocol version it speaks (what ingest sends it directly is
    /// encoded at it).
    pub version: Version,
    pub services: Services,
    pub call_mask: u32,
    pub agent_mask: u32,
    pub client: ClientInfo,
}

/// A session monitor: `observer` (on `shard`) watches `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionMonitor {
    pub monitor_id: MonitorId,
    pub shard: usize,
    pub observer: SessionId,
    pub target: SessionId,
}

#[derive(Default)]
pub struct Registry {
    sessions: BTreeMap<SessionId, SessionRecord>,
    monitors: Vec<SessionMonitor>,
}

impl Registry {
    pub fn contains(&self, id: SessionId) -> bool {
        self.sessions.contains_key(&id)
    }

    pub fn get(&self, id: SessionId) -> Option<&SessionRecord> {
        self.sessions.get(&id)
    }

    pub fn nr_sessions(&self) -> usize {
        self.sessions.len()
    }

    pub fn insert(&mut self, id: SessionId, record: SessionRecord) {
        self.sessions.insert(id, record);
    }

    /// Forget a session; returns its record and the session monitors that
    /// ended with it (those watching it, for their observers to drop).
    pub fn remove(&mut self, id: SessionId) -> (Option<SessionRecord>, Vec<SessionMonitor>) {
        let record = self.sessions.remove(&id);
        let mut watching_it = Vec::new();
        self.monitors.retain(|m| {
            if m.target == id {
                watching_it.push(*m);
            }
            m.target != id && m.observer != id
        });
        (record, watching_it)
    }

    pub fn add_monitor(&mut self, monitor: SessionMonitor) {
        self.monitors.push(monitor);
    }

    pub fn remove_monitor(&mut self, monitor_id: MonitorId) {
        self.monitors.retain(|m| m.monitor_id != monitor_id);
    }

    /// CLIENT_SESSION_OPENED_EVENT for every open session, oldest first.
    /// The open sessions of the client `client_id`.
    pub fn of_client<'a>(
        &'a self,
        client_id: &'a [u8],
    ) -> impl Iterator<Item = (SessionId, &'a SessionRecord)> + 'a {
        self.sessions
            .iter()
            .filter(move |(_, r)| r.client.client_id.as_bytes() == client_id)
            .map(|(id, r)| (*id, r))
    }

    pub fn opened_events(&self) -> impl Iterator<Item = Message> + '_ {
        self.sessions.iter().map(|(&id, r)| opened_event(id, r))
    }
}

/// PeripheralID of CLIENT_SESSION_*_EVENT: the ACD a Client Events session
/// named, otherwise NULL_PERIPHERAL_ID (docs/protocol.md §4.4).
fn peripheral_of(r: &SessionRecord) -> u32 {
    if r.services.contains(Services::CLIENT_EVENTS) {
        r.client.peripheral_id
    } else {
        crate::proto::constants::NULL_PERIPHERAL_ID
    }
}

fn address(peer: &SocketAddr) -> Option<CtiString> {
    Some(peer.ip().to_string().into())
}

pub fn opened_event(id: SessionId, r: &SessionRecord) -> Message {
    ClientSessionOpenedEvent {
        session_id: id.0,
        peripheral_id: peripheral_of(r),
        services_granted: r.services.bits(),
        call_msg_mask: r.call_mask,
        agent_state_mask: r.agent_mask,
        client_port: r.peer.port() as u32,
        client_address: address(&r.peer),
        client_id: Some(r.client.client_id.clone()),
        client_signature: Some(r.client.client_signature.clone()),
        agent_extension: r.client.agent_extension.clone(),
        agent_id: r.client.agent_id.clone(),
        agent_instrument: r.client.agent_instrument.clone(),
        client_address_ipv6: None,
    }
    .into()
}

pub fn closed_event(id: SessionId, r: &SessionRecord, reason: CloseReason) -> Message {
    ClientSessionClosedEvent {
        session_id: id.0,
        peripheral_id: peripheral_of(r),
        status: reason.status(),
        client_port: r.peer.port() as u32,
        client_address: address(&r.peer),
        client_id: Some(r.client.client_id.clone()),
        client_signature: Some(r.client.client_signature.clone()),
        agent_extension: r.client.agent_extension.clone(),
        agent_id: r.client.agent_id.clone(),
        agent_instrument: r.client.agent_instrument.clone(),
        client_address_ipv6: None,
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> SessionRecord {
        SessionRecord {
            shard: 0,
            peer: "127.0.0.1:4000".parse().unwrap(),
            version: Version::MAX,
            services: Services::ALL_EVENTS,
            call_mask: 1,
            agent_mask: 2,
            client: ClientInfo::default(),
        }
    }

    #[test]
    fn session_monitors_end_with_either_session() {
        let mut r = Registry::default();
        r.insert(SessionId(1), record());
        r.insert(SessionId(2), record());
        r.insert(SessionId(3), record());
        r.add_monitor(SessionMonitor {
            monitor_id: MonitorId(10),
            shard: 0,
            observer: SessionId(1),
            target: SessionId(2),
        });
        r.add_monitor(SessionMonitor {
            monitor_id: MonitorId(11),
            shard: 0,
            observer: SessionId(3),
            target: SessionId(1),
        });
        let (_, ended) = r.remove(SessionId(1));
        assert_eq!(
            ended.iter().map(|m| m.monitor_id).collect::<Vec<_>>(),
            vec![MonitorId(11)]
        );
        assert!(
            r.monitors.is_empty(),
            "the monitor session 1 owned is gone too"
        );
        assert_eq!(r.opened_events().count(), 2);
    }
}
