//! The simulator's event stream regenerated in the test (as the router
//! sends it to a session), and the check that a session's events are a
//! contiguous, gap-free, duplicate-free run of it.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use ctirouter::proto::{decode_frame, DecodeOptions, Message, Version};
use ctirouter::sim::{SimConfig, Simulator};

use crate::frames::*;
use crate::PID;

/// What a test session should see of one v24 simulator frame: the frame it
/// gets (another version, say), or `None` when it gets nothing for it.
pub type Transform = Box<dyn FnMut(&[u8]) -> Option<Vec<u8>> + Send>;

/// The simulator's event stream regenerated in the test, exactly as the
/// router sends it to a session (v24 bytes by default; transformed for other
/// versions or masks). Grows on demand up to `max_due` of simulated time.
pub struct Reference {
    sim: Simulator,
    transform: Transform,
    pub frames: Vec<Vec<u8>>,
    index: HashMap<u64, Vec<usize>>,
    /// Simulated time of the last event generated.
    pub due: Duration,
    /// Stop generating past this simulated time (a frame not found by then is a failure).
    pub max_due: Duration,
    exhausted: bool,
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

impl Reference {
    /// The v24 stream of `seed`/`agents`/`calls_per_sec` at PeripheralID 5000.
    pub fn new(seed: u64, agents: u32, calls_per_sec: f64) -> Reference {
        Self::with_transform(
            seed,
            agents,
            calls_per_sec,
            Box::new(|f: &[u8]| Some(f.to_vec())),
        )
    }

    pub fn with_transform(
        seed: u64,
        agents: u32,
        calls_per_sec: f64,
        transform: Transform,
    ) -> Reference {
        Reference {
            sim: Simulator::new(SimConfig {
                seed,
                agents,
                calls_per_sec,
                peripheral_id: PID,
                ..SimConfig::default()
            }),
            transform,
            frames: Vec::new(),
            index: HashMap::new(),
            due: Duration::ZERO,
            max_due: Duration::from_secs(180),
            exhausted: false,
        }
    }

    /// The stream as a session of `version` receives it (re-encoded there;
    /// types the version lacks dropped).
    pub fn at_version(seed: u64, agents: u32, calls_per_sec: f64, version: Version) -> Reference {
        Self::with_transform(
            seed,
            agents,
            calls_per_sec,
            Box::new(move |f: &[u8]| to_version(f, version)),
        )
    }

    /// The v24 stream as a session with these filters receives it.
    pub fn filtered(
        seed: u64,
        agents: u32,
        calls_per_sec: f64,
        keep: impl Fn(&[u8]) -> bool + Send + 'static,
    ) -> Reference {
        Self::with_transform(
            seed,
            agents,
            calls_per_sec,
            Box::new(move |f: &[u8]| keep(f).then(|| f.to_vec())),
        )
    }

    /// Generate one more simulator event; false once past `max_due`.
    fn grow(&mut self) -> bool {
        if self.exhausted {
            return false;
        }
        loop {
            let (due, message) = self.sim.next_event();
            self.due = due;
            if due > self.max_due {
                self.exhausted = true;
                return false;
            }
            // What the router does with a simulator event: encode at v24, and
            // drop it if that fails or its routing keys cannot be read.
            let Ok(frame) = message.to_frame(Version::MAX) else {
                continue;
            };
            if ctirouter::proto::routing::extract(&frame, Version::MAX).is_err() {
                continue;
            }
            if let Some(out) = (self.transform)(&frame) {
                self.index
                    .entry(hash_bytes(&out))
                    .or_default()
                    .push(self.frames.len());
                self.frames.push(out);
            }
            return true;
        }
    }

    /// Make `frames` at least `n` long if the simulated time limit allows.
    pub fn ensure(&mut self, n: usize) -> bool {
        while self.frames.len() < n {
            if !self.grow() {
                return false;
            }
        }
        true
    }

    /// Every position of `frame`, generating up to `max_due` until at least one is found.
    pub fn positions(&mut self, frame: &[u8]) -> Vec<usize> {
        let h = hash_bytes(frame);
        loop {
            if let Some(found) = self.index.get(&h) {
                let hits: Vec<usize> = found
                    .iter()
                    .copied()
                    .filter(|&i| self.frames[i] == frame)
                    .collect();
                if !hits.is_empty() {
                    return hits;
                }
            }
            if !self.grow() {
                return Vec::new();
            }
        }
    }

    pub fn get(&mut self, i: usize) -> Option<&[u8]> {
        self.ensure(i + 1);
        self.frames.get(i).map(|f| f.as_slice())
    }
}

/// A v24 frame re-encoded at `version` (None when the version lacks the type).
pub fn to_version(frame: &[u8], version: Version) -> Option<Vec<u8>> {
    let message = match decode_frame(frame, Version::MAX, DecodeOptions::COUNTS_UNCHECKED) {
        Ok((m, _)) => m,
        Err(e) => panic!("simulator frame does not decode: {e:?}"),
    };
    if !Message::exists_at(message.message_type(), version) {
        return None;
    }
    message.to_frame(version).ok()
}

/// Tracks one session's received event frames against a [`Reference`]:
/// they must be a contiguous, gap-free, duplicate-free run of it.
#[derive(Debug, Default, Clone)]
pub struct RunTracker {
    /// Positions in the reference where the run may start (ambiguous until
    /// the frames seen so far appear only once).
    candidates: Vec<usize>,
    /// Frames in the run.
    pub count: usize,
}

impl RunTracker {
    pub fn new() -> RunTracker {
        RunTracker::default()
    }

    /// Add the next received frame; `Err` explains a gap, duplicate or stranger.
    pub fn push(&mut self, reference: &mut Reference, frame: &[u8]) -> Result<(), String> {
        if self.count == 0 {
            self.candidates = reference.positions(frame);
            if self.candidates.is_empty() {
                return Err(format!(
                    "first event {} is not in the reference stream (generated {} frames, {:?} simulated)",
                    describe(frame),
                    reference.frames.len(),
                    reference.due
                ));
            }
            self.count = 1;
            return Ok(());
        }
        let k = self.count;
        let start = self.candidates[0];
        self.candidates
            .retain(|&c| reference.get(c + k).is_some_and(|f| f == frame));
        if self.candidates.is_empty() {
            // Keep the run's position for start()/end() in reports.
            self.candidates.push(start);
            let expected = reference.get(start + k).map(describe);
            let elsewhere: Vec<isize> = reference
                .positions(frame)
                .into_iter()
                .map(|p| p as isize - (start + k) as isize)
                .collect();
            return Err(format!(
                "event #{k} of the run (reference position {}): expected {:?}, got {}; the received frame sits at offsets {:?} from the expected position (negative = duplicate/reorder, positive = gap)",
                start + k,
                expected,
                describe(frame),
                elsewhere
            ));
        }
        self.count += 1;
        Ok(())
    }

    /// Reference position of the first frame of the run (the earliest candidate).
    pub fn start(&self) -> Option<usize> {
        self.candidates.first().copied()
    }

    /// One past the reference position of the last frame.
    pub fn end(&self) -> Option<usize> {
        self.start().map(|s| s + self.count)
    }
}
