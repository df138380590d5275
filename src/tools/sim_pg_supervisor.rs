//! sim-pg's Supervisor service (docs/requests.md §7, §9): who may have it
//! (a session whose OPEN_REQ agent supervises a team in the simulated
//! world, with Client Events; anyone else asking is refused
//! FAILURE_CONF(E_CTI_FUNCTION_NOT_AVAILABLE) as the CTI Server does), the
//! AGENT_TEAM_CONFIG_EVENTs after its OPEN_CONF, and the simulator's
//! addressed events (`sim::To`): a supervisor's events to its sessions, a
//! team monitor's to the session that started it. It owns the maps from
//! supervisor sessions and team monitors to client tokens.

use std::collections::HashMap;

use mio::Token;

use super::sim_pg_client::SimClient;
use crate::ids::Services;
use crate::proto::constants::status;
use crate::proto::msg::FailureConf;
use crate::proto::{CtiString, Message, Version};
use crate::session::server::Session;
use crate::sim::{Simulator, To};

/// The supervisor sessions and team monitors of a sim-pg.
#[derive(Debug, Default)]
pub struct Supervisors {
    /// Supervisor sessions: their supervisor's AgentID.
    sessions: HashMap<Token, CtiString>,
    /// Team monitors: the session that started each (by MonitorID).
    monitors: HashMap<u32, Token>,
}

/// Why an OPEN_REQ asking for Supervisor is refused.
pub const REFUSED: crate::proto::RequestError = crate::proto::RequestError::NotAvailable;

impl Supervisors {
    /// Whether a session asking for these services may open: Supervisor
    /// only with Client Events, for an agent who supervises a team. A
    /// supervisor session is remembered (its AgentID).
    pub fn admit(&mut self, token: Token, session: &Session, sim: &Simulator) -> bool {
        if !session.services.contains(Services::SUPERVISOR) {
            return true;
        }
        if !session.services.contains(Services::CLIENT_EVENTS) {
            return false;
        }
        let c = &session.client;
        let keys = [
            c.agent_id.as_ref(),
            c.agent_extension.as_ref(),
            c.agent_instrument.as_ref(),
        ];
        match sim.supervisor_named(&keys) {
            Some(id) => {
                self.sessions.insert(token, id);
                true
            }
            None => false,
        }
    }

    /// After a supervisor session's OPEN_CONF: the configuration of each of
    /// its teams.
    pub fn opened(&self, token: Token, version: Version, sim: &Simulator, out: &mut Vec<u8>) {
        let Some(id) = self.sessions.get(&token) else {
            return;
        };
        for config in sim.team_configs(id) {
            let _ = config.encode(version, out);
        }
    }

    /// The supervisor a session acts as, if it is a supervisor session.
    pub fn of(&self, token: Token) -> Option<&CtiString> {
        self.sessions.get(&token)
    }

    /// A request a supervisor session may not make: a team monitor of a
    /// team it does not supervise (FAILURE_CONF(E_CTI_TEAM_NOT_FOUND)).
    pub fn refusal(&self, token: Token, request: &Message, sim: &Simulator) -> Option<u32> {
        let Message::MonitorAgentTeamStartReq(r) = request else {
            return None;
        };
        let supervisor = self.sessions.get(&token)?;
        (!sim.supervises(supervisor, r.team_id)).then_some(status::E_CTI_TEAM_NOT_FOUND)
    }

    /// A confirmed team monitor belongs to the session that asked.
    pub fn answered(&mut self, token: Token, answer: &Message) {
        if let Message::MonitorAgentTeamStartConf(c) = answer {
            self.monitors.insert(c.monitor_id, token);
        }
    }

    /// The open sessions an addressed event goes to.
    pub fn recipients(&self, to: &To) -> Vec<Token> {
        match to {
            To::All => Vec::new(),
            To::TeamMonitor(id) => self.monitors.get(id).copied().into_iter().collect(),
            To::Supervisor(agent) | To::SupervisorAndAllEvents(agent) => self
                .sessions
                .iter()
                .filter(|(_, id)| *id == agent)
                .map(|(token, _)| *token)
                .collect(),
        }
    }

    /// A session is gone: its team monitors end at the simulator.
    pub fn closed(&mut self, token: Token, sim: &mut Simulator) {
        self.sessions.remove(&token);
        self.monitors.retain(|&id, owner| {
            let keep = *owner != token;
            if !keep {
                sim.end_team_monitor(id);
            }
            keep
        });
    }
}

/// Deliver an addressed event to its sessions, each at its version.
pub fn deliver(
    supervisors: &Supervisors,
    clients: &mut HashMap<Token, SimClient>,
    to: &To,
    message: &Message,
    bound: usize,
) {
    let mut bytes = Vec::new();
    let mut recipients = supervisors.recipients(to);
    if let To::SupervisorAndAllEvents(_) = to {
        let all_events = clients
            .iter()
            .filter(|(_, c)| c.is_open() && c.session.services.contains(Services::ALL_EVENTS))
            .map(|(token, _)| *token);
        recipients.extend(all_events);
        recipients.sort_unstable();
        recipients.dedup();
    }
    for token in recipients {
        let Some(client) = clients.get_mut(&token).filter(|c| c.is_open()) else {
            continue;
        };
        bytes.clear();
        if message.encode(client.session.version, &mut bytes).is_ok() {
            client.queue(&bytes, bound);
        }
    }
}

/// FAILURE_CONF with a status the session layer has no `RequestError` for.
pub fn failure(out: &mut Vec<u8>, version: Version, invoke_id: u32, status: u32) {
    let refused = Message::from(FailureConf {
        invoke_id,
        status,
        ..Default::default()
    });
    let _ = refused.encode(version, out);
}
