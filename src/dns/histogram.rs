//! Lookup latency in a fixed-size histogram: memory does not grow with the
//! length of a run, percentiles come with a bounded relative error, and two
//! histograms merge (rounds of `compare`, one per target).
//!
//! Backed by HdrHistogram (the `hdrhistogram` crate) with 3 significant
//! digits over 1 µs .. 1 hour: values below 2,048 µs are exact to the
//! microsecond, larger ones are kept to within 1/1,024 (under 0.1 %) of
//! their value. About 184 KiB per histogram (23,552 counters), whatever the number of
//! lookups. The exact minimum and maximum are kept beside it.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Significant decimal digits kept (the relative error is below
/// 10^-digits; with HdrHistogram's power-of-two sub-buckets it is 1/1,024).
pub const SIGNIFICANT_DIGITS: u8 = 3;
/// The largest latency kept, in microseconds (one hour, the longest run);
/// longer values are recorded as this.
pub const HIGHEST_US: u64 = 3_600_000_000;
/// The relative error bound of a percentile or bucket edge above the exact
/// range (1/1,024).
pub const RELATIVE_ERROR: f64 = 1.0 / 1024.0;

/// Latencies of fully answered lookups, in microseconds.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    counts: Histogram<u64>,
    /// Exact extremes: the histogram only knows them to its resolution.
    min_us: Option<u64>,
    max_us: Option<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new()
    }
}

impl PartialEq for LatencyHistogram {
    fn eq(&self, other: &Self) -> bool {
        self.min_us == other.min_us && self.max_us == other.max_us && self.counts == other.counts
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        // Why expect: the bounds are constants checked by a unit test; no
        // input reaches this call.
        let counts = Histogram::new_with_bounds(1, HIGHEST_US, SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        LatencyHistogram { counts, min_us: None, max_us: None }
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.record_us(us);
    }

    /// Records one latency given in microseconds (0 counts as 1 µs, more
    /// than an hour as an hour, in the buckets; the extremes stay exact).
    pub fn record_us(&mut self, us: u64) {
        self.counts.saturating_record(us.max(1));
        self.min_us = Some(self.min_us.map_or(us, |m| m.min(us)));
        self.max_us = Some(self.max_us.map_or(us, |m| m.max(us)));
    }

    /// Adds every latency of `other` into `self`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Why not `Histogram::add`: it fails when ranges differ; these
        // never do, but a loop over the recorded buckets cannot fail at all.
        for bucket in other.counts.iter_recorded() {
            self.counts.saturating_record_n(bucket.value_iterated_to(), bucket.count_at_value());
        }
        for (mine, theirs, pick) in [
            (&mut self.min_us, other.min_us, u64::min as fn(u64, u64) -> u64),
            (&mut self.max_us, other.max_us, u64::max as fn(u64, u64) -> u64),
        ] {
            if let Some(theirs) = theirs {
                *mine = Some(mine.map_or(theirs, |m| pick(m, theirs)));
            }
        }
    }

    /// How many latencies were recorded.
    pub fn len(&self) -> u64 {
        self.counts.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The exact largest latency, µs.
    pub fn max_us(&self) -> Option<u64> {
        self.max_us
    }

    /// The exact smallest latency, µs.
    pub fn min_us(&self) -> Option<u64> {
        self.min_us
    }

    /// The `percent` percentile in µs (nearest rank, like sorting all
    /// values and taking the ceil(p/100 * n)-th), to the histogram's
    /// resolution: exact below 2,048 µs, else at most 1/1,024 above the
    /// true value; never above the exact maximum.
    pub fn percentile_us(&self, percent: f64) -> Option<u64> {
        if self.is_empty() {
            return None;
        }
        let value = self.counts.value_at_quantile((percent / 100.0).clamp(0.0, 1.0));
        Some(match self.max_us {
            Some(max) => value.min(max),
            None => value,
        })
    }

    /// How many latencies fall in `(above_us, up_to_us]`, by the bucket
    /// each value was kept in (its lowest equivalent value): a value within
    /// the resolution of an edge may land on either side of it.
    pub fn count_in(&self, above_us: Option<u64>, up_to_us: Option<u64>) -> u64 {
        self.counts
            .iter_recorded()
            .filter(|bucket| {
                let low = self.counts.lowest_equivalent(bucket.value_iterated_to());
                above_us.is_none_or(|a| low > a) && up_to_us.is_none_or(|u| low <= u)
            })
            .map(|bucket| bucket.count_at_value())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_bounds_build_and_memory_is_fixed() {
        let mut h = LatencyHistogram::new();
        let empty_size = h.counts.distinct_values();
        assert_eq!(empty_size, 23_552, "the size the module doc states");
        for us in (1..200_000u64).step_by(7) {
            h.record_us(us * 13);
        }
        assert_eq!(h.counts.distinct_values(), empty_size, "the histogram never resizes");
    }

    #[test]
    fn exact_below_2048_us_and_within_the_bound_above() {
        let mut h = LatencyHistogram::new();
        for us in 1..=2047 {
            h.record_us(us);
        }
        assert_eq!(h.percentile_us(50.0), Some(1024));
        assert_eq!(h.percentile_us(100.0), Some(2047));
        let mut h = LatencyHistogram::new();
        let values: Vec<u64> = (1..=1000).map(|i| i * 4_999).collect();
        for v in &values {
            h.record_us(*v);
        }
        for p in [1.0, 10.0, 50.0, 90.0, 99.0, 99.9] {
            let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
            let exact = values[rank - 1];
            let got = h.percentile_us(p).unwrap();
            assert!(got >= exact, "p{p}: {got} < {exact}");
            assert!(
                (got - exact) as f64 <= exact as f64 * RELATIVE_ERROR,
                "p{p}: {got} vs {exact}"
            );
        }
        assert_eq!(h.max_us(), Some(4_999_000));
        assert_eq!(h.percentile_us(100.0), Some(4_999_000));
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut one = LatencyHistogram::new();
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        for us in [3, 80, 1_500, 40_000, 2_000_000] {
            one.record_us(us);
            a.record_us(us);
        }
        for us in [1, 9_999, 123_456, 5_000_000_000] {
            one.record_us(us);
            b.record_us(us);
        }
        a.merge(&b);
        assert_eq!(a, one);
        assert_eq!(a.len(), 9);
        assert_eq!((a.min_us(), a.max_us()), (Some(1), Some(5_000_000_000)));
        // Merging an empty one changes nothing.
        a.merge(&LatencyHistogram::new());
        assert_eq!(a, one);
    }

    #[test]
    fn buckets_split_at_their_edges() {
        let mut h = LatencyHistogram::new();
        for us in [500, 501, 1_000, 1_001, 2_000, 10_000_000] {
            h.record_us(us);
        }
        assert_eq!(h.count_in(None, Some(500)), 1);
        assert_eq!(h.count_in(Some(500), Some(1_000)), 2);
        assert_eq!(h.count_in(Some(1_000), Some(2_000)), 2);
        assert_eq!(h.count_in(Some(5_000_000), None), 1);
        assert_eq!(h.count_in(None, None), 6);
        assert!(LatencyHistogram::new().percentile_us(50.0).is_none());
    }
}
