//! The latency summary.

use super::*;
use crate::dns::histogram::LatencyHistogram;

#[test]
fn percentiles_and_histogram() {
    let mut lat = LatencyHistogram::new();
    for i in 1..=100 {
        lat.record_us(i * 1000);
    }
    let (l, h) = latency_summary(&lat);
    // Within the histogram's resolution (1/1024) above the exact value.
    for (got, exact) in [(l.p50, 50.0), (l.p90, 90.0), (l.p99, 99.0)] {
        let got = got.unwrap();
        assert!(got >= exact && got <= exact * (1.0 + 1.0 / 1024.0), "{got} vs {exact}");
    }
    assert_eq!(l.max, Some(100.0), "the maximum is exact");
    assert_eq!(h.iter().map(|b| b.count).sum::<u64>(), 100);
    assert_eq!(h.len(), HISTOGRAM_BOUNDS_MS.len() + 1);
    // 1 ms lands in the <=1 bucket, 2 ms in <=2, 3..5 in <=5, 51..100 in <=100.
    assert_eq!((h[1].le_ms, h[1].count), (Some(1.0), 1));
    assert_eq!((h[2].le_ms, h[2].count), (Some(2.0), 1));
    assert_eq!((h[3].le_ms, h[3].count), (Some(5.0), 3));
    assert_eq!((h[7].le_ms, h[7].count), (Some(100.0), 50));
    assert_eq!(h.last().unwrap().le_ms, None);
    let (empty, buckets) = latency_summary(&LatencyHistogram::new());
    assert_eq!(empty, Latency::default());
    assert!(buckets.iter().all(|b| b.count == 0));
}
