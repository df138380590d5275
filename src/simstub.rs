// temporary stand-in until src/sim lands
use crate::proto::Message;
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct SimConfig {
    pub seed: u64,
    pub agents: u32,
    pub calls_per_sec: f64,
    pub peripheral_id: u32,
}
impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            agents: 50,
            calls_per_sec: 5.0,
            peripheral_id: 5000,
        }
    }
}
pub struct Simulator {
    n: u64,
    cfg: SimConfig,
}
impl Simulator {
    pub fn new(cfg: SimConfig) -> Self {
        Simulator { n: 0, cfg }
    }
    pub fn peripherals(&self) -> Vec<(u32, bool)> {
        vec![(self.cfg.peripheral_id, true)]
    }
    pub fn next_event(&mut self) -> (std::time::Duration, Message) {
        self.n += 1;
        let m = crate::proto::msg::AgentStateEvent {
            peripheral_id: self.cfg.peripheral_id,
            agent_state: 3,
            agent_id: Some(format!("{}", 1000 + self.n % 50).into()),
            ..Default::default()
        };
        (std::time::Duration::from_millis(self.n * 20), m.into())
    }
}
