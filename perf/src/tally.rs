//! Per-session delivery accounting: what arrived inside the measured window,
//! duplicates and out-of-order arrivals as they happen; losses are worked out
//! at the end against what the driver sent (`expected_*`). No I/O here.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency histograms cover 1 ns .. 100 s with 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// One session's deliveries in the measured window.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Tally {
    /// Deliveries counted (duplicates included).
    pub received: u64,
    /// The same seq twice in a row.
    pub dup: u64,
    /// A seq lower than one already seen.
    pub reorder: u64,
    #[serde(skip)]
    last_seq: u64,
}

impl Tally {
    #[inline]
    pub fn record(&mut self, seq: u64) {
        self.received += 1;
        if seq == self.last_seq {
            self.dup += 1;
        } else if seq < self.last_seq {
            self.reorder += 1;
        } else {
            self.last_seq = seq;
        }
    }

    /// Distinct deliveries (a reordered one is still a delivery).
    pub fn unique(&self) -> u64 {
        self.received - self.dup
    }
}

/// Deliveries an All Events session owes for seqs in `[lower, upper]`.
pub fn expected_all(lower: u64, upper: u64) -> u64 {
    if upper >= lower {
        upper - lower + 1
    } else {
        0
    }
}

/// Deliveries owed for the seqs in `[lower, upper]` of a sorted seq log.
pub fn expected_logged(log: &[u64], lower: u64, upper: u64) -> u64 {
    if upper < lower {
        return 0;
    }
    let from = log.partition_point(|&s| s < lower);
    let to = log.partition_point(|&s| s <= upper);
    (to - from) as u64
}

/// Lost (owed but not seen) and extra (seen but never owed) deliveries.
pub fn lost_and_extra(expected: u64, tally: &Tally) -> (u64, u64) {
    let unique = tally.unique();
    (
        expected.saturating_sub(unique),
        unique.saturating_sub(expected),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_has_no_dup_or_reorder() {
        let mut t = Tally::default();
        (1..=5).for_each(|s| t.record(s));
        assert_eq!((t.received, t.dup, t.reorder), (5, 0, 0));
        assert_eq!(lost_and_extra(expected_all(1, 5), &t), (0, 0));
    }

    #[test]
    fn gaps_duplicates_and_reorders_are_told_apart() {
        let mut t = Tally::default();
        for s in [1, 2, 2, 5, 4, 6] {
            t.record(s);
        }
        assert_eq!((t.dup, t.reorder), (1, 1));
        // 1..=6 owed, 1 2 4 5 6 seen: 3 is lost.
        assert_eq!(lost_and_extra(expected_all(1, 6), &t), (1, 0));
    }

    #[test]
    fn logged_expectation_counts_seqs_in_range() {
        let log = [3, 7, 9, 15, 20];
        assert_eq!(expected_logged(&log, 7, 15), 3);
        assert_eq!(expected_logged(&log, 21, 30), 0);
        assert_eq!(expected_logged(&log, 10, 9), 0);
    }
}
