//! The upstream CTI Server session (side A/B failover, heartbeats).
//! (Being written for issue 5.)

use std::sync::atomic::AtomicBool;

use super::Fanout;
use crate::config::UpstreamConfig;

pub struct UpstreamSource {
    config: UpstreamConfig,
}

impl UpstreamSource {
    pub fn new(config: &UpstreamConfig) -> UpstreamSource {
        UpstreamSource { config: config.clone() }
    }

    pub async fn run(&mut self, fanout: &mut Fanout, stop: &AtomicBool) {
        let _ = (fanout, stop, &self.config);
        tracing::error!("the upstream session is not built yet");
    }
}
