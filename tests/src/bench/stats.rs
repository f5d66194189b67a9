//! Requests the sequential share test needs for a correct 70/30 split, against a fixed-size test at the same
//! error rates (10⁻⁶ both ways, ±15 points). The unit is requests, not seconds: the ratio is exact and repeatable.

use lab::traffic::stats::{ShareTestConfig, SplitMix64, fixed_sample_size, simulate_share_test};

use super::{BenchContext, BenchResult};

/// Simulated stage runs per measurement.
const RUNS: usize = 20_000;

/// Mean requests used (and the 99th percentile in the notes) vs the fixed-size test.
pub fn run(_context: &BenchContext) -> anyhow::Result<Vec<BenchResult>> {
    let config = ShareTestConfig::lab_default(0.3, 0.15);
    let fixed = fixed_sample_size(&config) as f64;
    let mut random = SplitMix64::new(0x5eed);
    let mut used: Vec<u64> = (0..RUNS)
        .map(|_| simulate_share_test(config, 0.3, &mut random).1)
        .collect();
    used.sort_unstable();
    let mean = used.iter().sum::<u64>() as f64 / RUNS as f64;
    let p99 = used[RUNS * 99 / 100];
    let notes = format!(
        "{RUNS} simulated 70/30 stages; sequential p99 {p99} requests; fixed-size test for ±15 points at 1e-6/1e-6 needs {fixed} requests every time"
    );
    Ok(vec![
        BenchResult::at_most(
            "sequential_vs_fixed_requests",
            mean,
            fixed,
            "fixed-size test",
            "requests",
            0.5,
        )
        .notes(&notes),
    ])
}
