//! From a scenario to the sessions the swarm opens and to who each agent's
//! events reach: the static routing model the loss accounting is checked
//! against (All Events: every event; Client Events: its agent's events;
//! Peripheral Monitor: one copy per monitored instrument; sessions connected
//! straight to the PG (`direct`): nothing). No I/O here.

use crate::scenario::{Scenario, Service};
use crate::swarm::SessionSpec;

/// Every session of the scenario, group by group.
pub fn session_specs(scenario: &Scenario) -> Vec<SessionSpec> {
    let mut specs = Vec::new();
    for (gi, g) in scenario.groups.iter().enumerate() {
        for j in 0..g.count {
            let agents = match g.service {
                Service::AllEvents => Vec::new(),
                Service::ClientEvents => vec![g.agent_offset + j],
                Service::PeripheralMonitor => {
                    let m = g.monitors_per_session;
                    (g.agent_offset + j * m..g.agent_offset + (j + 1) * m).collect()
                }
            };
            specs.push(SessionSpec {
                group: gi,
                service: g.service,
                agents,
                rcvbuf: g.rcvbuf,
                requests: g.sends_requests(),
                direct: g.direct,
            });
        }
    }
    specs
}

/// Deliveries one event naming agent `k` makes, for every agent.
pub fn recipients(scenario: &Scenario, specs: &[SessionSpec]) -> Vec<u32> {
    let all: u32 = specs
        .iter()
        .filter(|s| s.service == Service::AllEvents && !s.direct)
        .count() as u32;
    let mut per_agent = vec![all; scenario.load.agents as usize];
    for s in specs.iter().filter(|s| !s.direct) {
        for &k in &s.agents {
            per_agent[k as usize] += 1;
        }
    }
    per_agent
}

/// Agents some targeted (Client Events / Peripheral Monitor) session names.
pub fn logged_agents(scenario: &Scenario, specs: &[SessionSpec]) -> Vec<bool> {
    let mut logged = vec![false; scenario.load.agents as usize];
    for s in specs.iter().filter(|s| !s.direct) {
        for &k in &s.agents {
            logged[k as usize] = true;
        }
    }
    logged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> Scenario {
        let s: Scenario = toml::from_str(text).unwrap();
        s.check().unwrap();
        s
    }

    #[test]
    fn large_pg_shape_routes_each_agent_to_all_events_its_session_and_its_monitor() {
        let s = scenario(
            r#"
            name = "t"
            load = { agents = 8 }
            [[groups]]
            name = "ae"
            service = "all-events"
            count = 2
            [[groups]]
            name = "ce"
            service = "client-events"
            count = 4
            [[groups]]
            name = "pm"
            service = "peripheral-monitor"
            count = 2
            monitors_per_session = 3
            agent_offset = 2
            [[phases]]
            name = "p"
            rate = 10
            duration_secs = 1
            "#,
        );
        let specs = session_specs(&s);
        assert_eq!(specs.len(), 8);
        assert_eq!(specs[7].agents, vec![5, 6, 7]);
        assert_eq!(recipients(&s, &specs), vec![3, 3, 4, 4, 3, 3, 3, 3]);
        assert_eq!(logged_agents(&s, &specs).iter().filter(|&&l| l).count(), 8);
    }

    #[test]
    fn direct_sessions_are_owed_nothing() {
        let s = scenario(
            r#"
            name = "t"
            load = { agents = 4 }
            [[groups]]
            name = "desk"
            service = "client-events"
            count = 2
            requests = true
            [[groups]]
            name = "direct"
            service = "client-events"
            count = 2
            agent_offset = 2
            direct = true
            [[phases]]
            name = "p"
            rate = 10
            duration_secs = 1
            requests_per_sec = 2
            "#,
        );
        let specs = session_specs(&s);
        assert!(specs[0].requests && !specs[0].direct);
        assert!(specs[3].requests && specs[3].direct);
        assert_eq!(recipients(&s, &specs), vec![1, 1, 0, 0]);
        assert_eq!(logged_agents(&s, &specs), vec![true, true, false, false]);
    }
}
