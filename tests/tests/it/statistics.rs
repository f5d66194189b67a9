//! The assertions' error rates, shown by simulation through the same `ShareTest` the probe feeds.
//!
//! 10⁻⁶ cannot be observed in 10⁵ runs, so the bounds are tested at relaxed error rates (10⁻²) where they are
//! observable; the code path is the one the lab uses (`lab::stats::simulate_share_test` builds a `ShareTest` from a
//! `ShareTestConfig` exactly as the probe does and feeds it one response at a time). Seeds are fixed so the test is
//! reproducible; the margins are several standard deviations wide, so no seed was chosen to make it pass.

use lab::report::Verdict;
use lab::stats::{ShareTestConfig, SplitMix64, fixed_sample_size, simulate_share_test};

const RUNS: u64 = 100_000;

/// Counts verdicts over `RUNS` simulated stage runs at `true_share`.
fn verdict_counts(config: ShareTestConfig, true_share: f64, seed: u64) -> (u64, u64, u64) {
    let mut random = SplitMix64::new(seed);
    let (mut pass, mut fail, mut inconclusive) = (0, 0, 0);
    for _ in 0..RUNS {
        match simulate_share_test(config, true_share, &mut random).0 {
            Verdict::Pass => pass += 1,
            Verdict::Fail => fail += 1,
            Verdict::Inconclusive | Verdict::NotAsserted => inconclusive += 1,
        }
    }
    (pass, fail, inconclusive)
}

/// The most events of probability `rate` that `RUNS` trials show with overwhelming probability (mean + 6σ).
fn allowed(rate: f64) -> u64 {
    let mean = RUNS as f64 * rate;
    (mean + 6.0 * (mean * (1.0 - rate)).sqrt()).ceil() as u64
}

#[test]
fn false_failures_at_the_configured_weight_stay_within_the_bound() {
    let config = ShareTestConfig {
        false_failure: 1e-2,
        miss: 1e-2,
        ..ShareTestConfig::lab_default(0.3, 0.15)
    };
    let (pass, fail, inconclusive) = verdict_counts(config, 0.3, 1);
    assert!(fail <= allowed(1e-2), "false failures {fail} of {RUNS}");
    assert_eq!(pass + fail + inconclusive, RUNS);
    assert!(inconclusive <= allowed(1e-3), "inconclusive {inconclusive}");
}

#[test]
fn misses_15_points_off_stay_within_the_bound() {
    let config = ShareTestConfig {
        false_failure: 1e-2,
        miss: 1e-2,
        ..ShareTestConfig::lab_default(0.3, 0.15)
    };
    for (true_share, seed) in [(0.45, 2), (0.15, 3)] {
        let (pass, _, _) = verdict_counts(config, true_share, seed);
        assert!(
            pass <= allowed(1e-2),
            "true share {true_share}: passed {pass} of {RUNS}"
        );
    }
}

#[test]
fn the_sequential_test_needs_less_than_half_the_fixed_size_for_a_correct_70_30_split() {
    let config = ShareTestConfig::lab_default(0.3, 0.15);
    let fixed = fixed_sample_size(&config);
    let mut random = SplitMix64::new(4);
    let mut used: Vec<u64> = (0..10_000)
        .map(|_| {
            let (verdict, requests) = simulate_share_test(config, 0.3, &mut random);
            assert_eq!(verdict, Verdict::Pass, "a correct split failed at 10⁻⁶");
            requests
        })
        .collect();
    used.sort_unstable();
    let mean = used.iter().sum::<u64>() as f64 / used.len() as f64;
    let p99 = used[used.len() * 99 / 100];
    println!("sequential: mean {mean:.1}, p99 {p99}; fixed-size: {fixed}");
    assert!(mean <= 0.5 * fixed as f64, "mean {mean} vs fixed {fixed}");
    assert!(p99 < config.max_requests, "p99 {p99} reaches the cap");
}
