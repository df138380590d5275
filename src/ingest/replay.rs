//! A recorded stream file as an event source. (Being written for issue 5.)

use std::sync::atomic::AtomicBool;

use super::Fanout;
use crate::config::ReplayConfig;

pub struct ReplaySource {
    config: ReplayConfig,
}

impl ReplaySource {
    pub fn new(config: &ReplayConfig) -> ReplaySource {
        ReplaySource { config: config.clone() }
    }

    pub async fn run(&mut self, fanout: &mut Fanout, stop: &AtomicBool) {
        let _ = (fanout, stop, &self.config);
        tracing::error!("replay is not built yet");
    }
}
