//! When the driver sends: how many events are due at a time for a fixed rate
//! with optional bursts, and whether the in-flight window lets a max-rate
//! phase send more. Pure arithmetic on nanosecond timestamps; no I/O here.

/// A rate schedule that starts at `start_ns`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacer {
    /// Events per second outside bursts.
    pub rate: f64,
    /// Burst period, seconds (0: no bursts).
    pub burst_every: f64,
    /// Burst length inside each period (at its end), seconds.
    pub burst_len: f64,
    /// Rate multiplier during a burst.
    pub burst_factor: f64,
    pub start_ns: u64,
}

impl Pacer {
    /// Events that should have been sent by `now_ns` since the start.
    pub fn target(&self, now_ns: u64) -> u64 {
        let t = now_ns.saturating_sub(self.start_ns) as f64 / 1e9;
        let extra = (self.burst_factor - 1.0).max(0.0) * self.burst_time(t);
        (self.rate * (t + extra)).floor() as u64
    }

    /// Whether an event sent at `sent_ns` went out during a burst.
    pub fn in_burst(&self, sent_ns: u64) -> bool {
        if self.burst_every <= 0.0 || self.burst_len <= 0.0 || self.burst_factor <= 1.0 {
            return false;
        }
        let t = sent_ns.saturating_sub(self.start_ns) as f64 / 1e9;
        let len = self.burst_len.min(self.burst_every);
        let into = t - (t / self.burst_every).floor() * self.burst_every;
        into >= self.burst_every - len
    }

    /// Seconds of burst in `[0, t)`: each period ends with `burst_len` of burst.
    fn burst_time(&self, t: f64) -> f64 {
        if self.burst_every <= 0.0 || self.burst_len <= 0.0 {
            return 0.0;
        }
        let len = self.burst_len.min(self.burst_every);
        let periods = (t / self.burst_every).floor();
        let into = t - periods * self.burst_every;
        periods * len + (into - (self.burst_every - len)).max(0.0)
    }

    /// Nanoseconds from `now_ns` until event number `sent + 1` is due (a
    /// coarse bound: the poll timeout of the driver).
    pub fn wait_ns(&self, now_ns: u64, sent: u64) -> u64 {
        if self.target(now_ns) > sent || self.rate <= 0.0 {
            return if self.rate <= 0.0 { 50_000_000 } else { 0 };
        }
        let peak = self.rate * self.burst_factor.max(1.0);
        ((1e9 / peak) as u64).clamp(20_000, 50_000_000)
    }
}

/// Whether a max-rate driver may send another event: deliveries expected so
/// far minus deliveries seen stay under the window.
#[inline]
pub fn window_open(expected: u64, delivered: u64, window_deliveries: u64) -> bool {
    expected.saturating_sub(delivered) < window_deliveries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacer(rate: f64) -> Pacer {
        Pacer {
            rate,
            burst_every: 0.0,
            burst_len: 0.0,
            burst_factor: 1.0,
            start_ns: 1_000,
        }
    }

    #[test]
    fn fixed_rate_counts_events_by_elapsed_time() {
        let p = pacer(10_000.0);
        assert_eq!(p.target(1_000), 0);
        assert_eq!(p.target(1_000 + 1_000_000_000), 10_000);
        assert_eq!(p.target(1_000 + 500_000), 5);
    }

    #[test]
    fn in_burst_is_the_last_burst_len_of_each_period() {
        let p = Pacer {
            rate: 700.0,
            burst_every: 10.0,
            burst_len: 1.0,
            burst_factor: 10.0,
            start_ns: 5_000_000_000,
        };
        let at = |s: f64| 5_000_000_000 + (s * 1e9) as u64;
        assert!(!p.in_burst(at(0.0)));
        assert!(!p.in_burst(at(8.999)));
        assert!(p.in_burst(at(9.0)));
        assert!(p.in_burst(at(9.999)));
        assert!(!p.in_burst(at(10.001)));
        assert!(p.in_burst(at(19.5)));
        assert!(!p.in_burst(0), "before the start counts as outside");
        let flat = Pacer {
            burst_factor: 1.0,
            ..p
        };
        assert!(!flat.in_burst(at(9.5)));
    }

    #[test]
    fn bursts_add_factor_minus_one_times_their_length() {
        let p = Pacer {
            burst_every: 10.0,
            burst_len: 1.0,
            burst_factor: 10.0,
            ..pacer(700.0)
        };
        let at = |s: f64| p.target(1_000 + (s * 1e9) as u64);
        assert_eq!(at(9.0), 6_300);
        // The last second of each 10 s period runs at 7,000/s.
        assert_eq!(at(10.0), 6_300 + 7_000);
        assert_eq!(at(20.0), 2 * 13_300);
    }

    #[test]
    fn window_closes_at_its_size() {
        assert!(window_open(100, 50, 51));
        assert!(!window_open(100, 50, 50));
        assert!(window_open(10, 20, 1));
    }

    #[test]
    fn idle_rate_sends_nothing() {
        let p = pacer(0.0);
        assert_eq!(p.target(u64::MAX / 2), 0);
        assert!(p.wait_ns(5_000, 0) > 0);
    }
}
