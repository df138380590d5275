//! When and where to reconnect after the upstream is lost: side A and side B
//! alternately (docs/protocol.md §1, PV25-SM "Connection Management"), each wait
//! twice the last from `min` up to `max`, plus up to a quarter more of random
//! jitter so routers restarted together do not retry in step. No I/O and no
//! clock here: the caller sleeps for what [`Backoff::next_delay`] returns.

use std::time::Duration;

/// Share of a delay added as jitter, at most (1/4: spreads retries without
/// stretching the 5 s cap much).
const JITTER_DIVISOR: u32 = 4;

/// Exponential backoff with jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    /// The delay before jitter of the next wait.
    base: Duration,
    /// SplitMix64 state for the jitter (no need for a crypto RNG here).
    rng: u64,
}

impl Backoff {
    /// `min` ≤ `max`; a `min` of zero is taken as 1 ms so the delay can grow.
    pub fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        let min = min.max(Duration::from_millis(1));
        let max = max.max(min);
        Backoff {
            min,
            max,
            base: min,
            rng: seed,
        }
    }

    /// Seeded from the clock and the process id (different per router).
    pub fn from_clock(min: Duration, max: Duration) -> Backoff {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Backoff::new(min, max, nanos ^ ((std::process::id() as u64) << 32))
    }

    /// The wait before the next attempt: the current base plus jitter in
    /// `[0, base/4]`; the base then doubles, up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.base;
        let jitter_range = (base / JITTER_DIVISOR).as_nanos() as u64;
        let jitter = match jitter_range {
            0 => 0,
            range => self.next_random() % (range + 1),
        };
        self.base = (base * 2).min(self.max);
        base + Duration::from_nanos(jitter)
    }

    /// Start again from `min` (after a session that stayed up).
    pub fn reset(&mut self) {
        self.base = self.min;
    }

    /// Bounds of any delay this backoff returns: `[min, max + max/4]`.
    pub fn bounds(&self) -> (Duration, Duration) {
        (self.min, self.max + self.max / JITTER_DIVISOR)
    }

    fn next_random(&mut self) -> u64 {
        // SplitMix64 (Steele, Lea, Flood 2014).
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Which side to try next: A, B, A, B, ... (only A when there is one side).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SideCursor {
    current: usize,
}

impl SideCursor {
    pub fn current(&self) -> usize {
        self.current
    }

    /// Move to the other side of `nr_sides`.
    pub fn advance(&mut self, nr_sides: usize) {
        self.current = (self.current + 1) % nr_sides.max(1);
    }

    /// The side's letter for logs (0 → "A", 1 → "B").
    pub fn name(index: usize) -> &'static str {
        match index {
            0 => "A",
            1 => "B",
            _ => "?",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    #[test]
    fn delays_double_from_min_to_the_cap_with_bounded_jitter() {
        for seed in 0..200 {
            let mut b = Backoff::new(MIN, MAX, seed);
            let mut base = MIN;
            for _ in 0..12 {
                let d = b.next_delay();
                assert!(d >= base && d <= base + base / 4, "{d:?} for base {base:?}");
                let (lo, hi) = b.bounds();
                assert!(d >= lo && d <= hi);
                base = (base * 2).min(MAX);
            }
        }
    }

    #[test]
    fn the_cap_is_reached_and_held() {
        let mut b = Backoff::new(MIN, MAX, 7);
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        // 100, 200, 400, 800, 1600, 3200, then 5000 from the 7th on.
        for d in &delays[6..] {
            assert!(*d >= MAX && *d <= MAX + MAX / 4, "{d:?}");
        }
        b.reset();
        assert!(b.next_delay() < MIN * 2);
    }

    #[test]
    fn jitter_actually_varies() {
        let mut seen = std::collections::HashSet::new();
        for seed in 0..50 {
            seen.insert(Backoff::new(MIN, MAX, seed).next_delay());
        }
        assert!(seen.len() > 40, "only {} distinct first delays", seen.len());
    }

    #[test]
    fn degenerate_settings_still_give_growing_delays() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO, 1);
        assert!(b.next_delay() >= Duration::from_millis(1));
        let mut b = Backoff::new(MAX, MIN, 1);
        assert!(b.next_delay() >= MAX);
    }

    #[test]
    fn sides_alternate() {
        let mut s = SideCursor::default();
        let mut order = Vec::new();
        for _ in 0..4 {
            order.push(s.current());
            s.advance(2);
        }
        assert_eq!(order, [0, 1, 0, 1]);
        s.advance(1);
        assert_eq!(s.current(), 0);
    }
}
