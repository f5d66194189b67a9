//! The assertions' error rates, shown by simulation: first the `ShareTest` alone, then whole assertions through the
//! probe with a slower canary.
//!
//! 10⁻⁶ cannot be observed in 10⁵ runs, so the bounds are tested at relaxed error rates (10⁻²) where they are
//! observable; the code path is the one the lab uses (`lab::traffic::stats::simulate_share_test` builds a `ShareTest` from a
//! `ShareTestConfig` exactly as the probe does and feeds it one response at a time). Seeds are fixed so the test is
//! reproducible; the margins are several standard deviations wide, so no seed was chosen to make it pass.
//!
//! The second part (`through_the_probe`) runs `lab::traffic::checks::check_assertion` itself on a `Probe::simulated`: the
//! probe's workers, timeouts, launch window, reorder buffer and stopping are the lab's code; only the network is a
//! `SimulatedSplit` (the two stand-in models behind a weighted route, each with its own latency distribution), and
//! time is tokio's paused clock, which jumps to the next timer whenever every task waits, so a run of a few hundred
//! simulated 30–100 ms requests costs milliseconds of real time and the same seed gives the same runs. The bias
//! it guards against is ordering: fed in arrival order, with 8 requests in flight and resnet101 slower, the share
//! test saw too few resnet101 answers early on. Measured with 10,000 runs per case at 10⁻² (σ ≈ 0.1 point): fed in
//! arrival order, false failures 1.29% (resnet101 2× slower) and 1.13% (1.5×), misses at a true 45% 1.89% (2×);
//! fed in launch order, 0.80%, 0.98% and 0.88% (0.76% at 1.5×, 0.78% at a true 15%), as a plain i.i.d. simulation
//! of the same test gives (0.84%, 0.90%, 0.74%). The cases below run 2,000 times each to keep the suite quick: they
//! show the bounds hold, but at that size only the deterministic cases (launch order, the launch window, the exact
//! assertion's first 270) are sure to fail when observations are handed over in arrival order.

use lab::report::Verdict;
use lab::traffic::stats::{ShareTestConfig, SplitMix64, fixed_sample_size, simulate_share_test};

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

// The same bounds through the probe: share assertions run by `lab::traffic::checks::check_assertion` on a
// `Probe::simulated` whose requests go to `SimulatedSplit` (resnet50 and resnet101 behind a weighted route, the
// canary slower), 8 in flight, in tokio's paused clock. Everything but the bytes on the wire is the lab's code:
// settling, the workers, request timeouts, the order in which observations reach the share test, stopping.

mod through_the_probe {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use canary_lab_tests::tf_serving::{Latency, SimulatedSplit};
    use lab::definition::stages::AssertionSpec;
    use lab::report::Verdict;
    use lab::traffic::checks::{CheckConfig, check_assertion};
    use lab::traffic::probe::{DEFAULT_CONCURRENCY, Flow, Outcome, Probe, RunEnd, SimulatedExchange, SimulatedNetwork};

    /// Simulated share assertions per case: enough that 1% is 200 events (σ ≈ 14).
    const RUNS: u64 = 2_000;

    /// ResNet50's time per prediction in the simulation (the scale does not matter, only the ratio).
    fn resnet50_latency() -> Latency {
        Latency::around(Duration::from_millis(40), 0.25)
    }

    fn config() -> CheckConfig {
        let mut config = canary_lab_tests::traffic::simulated_config();
        config.share_error_rate = 1e-2;
        config
    }

    /// `RUNS` share assertions "resnet101 is 30% ± 15%" at error rates 10⁻², against resnet101 at `true_percent`
    /// of the traffic and `slowdown` times ResNet50's latency: (pass, fail, inconclusive).
    async fn verdicts(true_percent: u32, slowdown: f64, seed: u64) -> (u64, u64, u64) {
        verdicts_at(resnet50_latency(), true_percent, slowdown, seed).await
    }

    /// [`verdicts`] with ResNet50 answering in `latency`.
    async fn verdicts_at(latency: Latency, true_percent: u32, slowdown: f64, seed: u64) -> (u64, u64, u64) {
        let split = Arc::new(SimulatedSplit::new(
            &[
                ("resnet50", 100 - true_percent, latency),
                ("resnet101", true_percent, latency.times(slowdown)),
            ],
            seed,
        ));
        let config = config();
        let probe = Probe::simulated(DEFAULT_CONCURRENCY, config.request_timeout, split.clone());
        let spec = AssertionSpec::Share {
            version: "resnet101".to_string(),
            share: 0.3,
            tolerance: 0.15,
            headers: BTreeMap::new(),
        };
        let weights = BTreeMap::from([("resnet50".to_string(), 70), ("resnet101".to_string(), 30)]);
        let (mut pass, mut fail, mut inconclusive) = (0, 0, 0);
        for _ in 0..RUNS {
            let report = check_assertion("split-70-30", &spec, &probe, &config, weights.clone()).await;
            match report.verdict {
                Verdict::Pass => pass += 1,
                Verdict::Fail => fail += 1,
                Verdict::Inconclusive => inconclusive += 1,
                Verdict::NotAsserted => panic!("an assertion that ran said not_asserted: {report:?}"),
            }
        }
        println!(
            "resnet101 at {true_percent}%, {slowdown}× slower: pass {pass}, fail {fail}, inconclusive {inconclusive} of {RUNS} ({} requests)",
            split.requests()
        );
        (pass, fail, inconclusive)
    }

    /// The most events of probability `rate` that `RUNS` trials show with overwhelming probability (mean + 4σ).
    fn allowed(rate: f64) -> u64 {
        let mean = RUNS as f64 * rate;
        (mean + 4.0 * (mean * (1.0 - rate)).sqrt()).ceil() as u64
    }

    #[tokio::test(start_paused = true)]
    async fn a_correct_split_fails_within_the_bound_when_the_canary_is_slower() {
        for (slowdown, seed) in [(2.0, 11), (1.5, 12)] {
            let (_, fail, inconclusive) = verdicts(30, slowdown, seed).await;
            assert!(
                fail <= allowed(1e-2),
                "{slowdown}× slower: false failures {fail} of {RUNS}"
            );
            assert_eq!(inconclusive, 0);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_split_15_points_off_passes_within_the_bound_when_the_canary_is_slower() {
        for (true_percent, slowdown, seed) in [(45, 2.0, 21), (45, 1.5, 22), (15, 2.0, 23)] {
            let (pass, _, _) = verdicts(true_percent, slowdown, seed).await;
            assert!(
                pass <= allowed(1e-2),
                "resnet101 at {true_percent}%, {slowdown}× slower: passed {pass} of {RUNS}"
            );
        }
    }

    /// TF Serving's model-status request: no inference, about 2 ms from either version (the stand-in's, ± 10%).
    fn status_latency() -> Latency {
        Latency::around(Duration::from_millis(2), 0.1)
    }

    #[tokio::test(start_paused = true)]
    async fn status_requests_keep_the_share_tests_error_rates() {
        // `--probe auto` feeds the share test status answers: both versions equally fast and 20–150 times faster
        // than predictions, so many more answers arrive per launch window. The bounds must hold all the same.
        let (_, fail, inconclusive) = verdicts_at(status_latency(), 30, 1.0, 31).await;
        assert!(
            fail <= allowed(1e-2),
            "status requests: false failures {fail} of {RUNS}"
        );
        assert_eq!(inconclusive, 0);
        for (true_percent, seed) in [(45, 32), (15, 33)] {
            let (pass, _, _) = verdicts_at(status_latency(), true_percent, 1.0, seed).await;
            assert!(
                pass <= allowed(1e-2),
                "status requests, resnet101 at {true_percent}%: passed {pass} of {RUNS}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_5_percent_leak_fails_the_exact_assertion_fed_by_status_requests() {
        // 270 requests see a 5% leak with probability ≥ 1 − 10⁻⁶: every one of these runs must fail.
        let split = Arc::new(SimulatedSplit::new(
            &[("resnet50", 95, status_latency()), ("resnet101", 5, status_latency())],
            41,
        ));
        // As `lab check` runs it: no settle phase before the 270 requests.
        let mut config = config();
        config.settle_timeout = None;
        let probe = Probe::simulated(DEFAULT_CONCURRENCY, config.request_timeout, split);
        let spec = AssertionSpec::Exact {
            version: "resnet50".to_string(),
            headers: BTreeMap::new(),
        };
        for run in 0..RUNS / 4 {
            let report = check_assertion("canary-deployed", &spec, &probe, &config, BTreeMap::new()).await;
            assert_eq!(report.verdict, Verdict::Fail, "run {run}: {report:#?}");
        }
    }

    /// ResNet50 answers every request in 10 ms, except the first one sent at or after `from` (virtual time), which
    /// ResNet101 answers after 5 s.
    struct OneSlowLeak {
        from: tokio::time::Instant,
        sent: AtomicBool,
    }

    impl OneSlowLeak {
        fn from(from: tokio::time::Instant) -> Arc<OneSlowLeak> {
            Arc::new(OneSlowLeak {
                from,
                sent: AtomicBool::new(false),
            })
        }
    }

    impl SimulatedNetwork for OneSlowLeak {
        fn exchange(&self) -> SimulatedExchange {
            let due = tokio::time::Instant::now() >= self.from;
            let (latency, version) = if due && !self.sent.swap(true, Ordering::SeqCst) {
                (Duration::from_secs(5), "resnet101")
            } else {
                (Duration::from_millis(10), "resnet50")
            };
            SimulatedExchange {
                latency,
                status: 200,
                version: Some(version.to_string()),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_probe_hands_over_observations_in_launch_order_and_launches_within_its_window() {
        // The first request is resnet101's and slow; the 7 other workers get fast answers from resnet50 meanwhile.
        let probe = Probe::simulated(
            DEFAULT_CONCURRENCY,
            Duration::from_secs(10),
            OneSlowLeak::from(tokio::time::Instant::now()),
        );
        let far = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut versions = Vec::new();
        let summary = probe
            .run(100, far, |observation| {
                versions.push(match observation.outcome {
                    Outcome::Answered { version } => version,
                    Outcome::Failed { kind, .. } => kind.to_string(),
                });
                Flow::Continue
            })
            .await;
        assert_eq!(
            (summary.end, summary.launched, summary.observed),
            (RunEnd::Exhausted, 100, 100)
        );
        assert_eq!(
            versions[0], "resnet101",
            "the first launched comes first, though it arrived last of many"
        );
        assert!(
            versions[1..].iter().all(|version| version == "resnet50"),
            "{versions:?}"
        );

        // While the first request is out, launching stops a window (4 × 8) past it: when the observer stops at
        // the first observation, requests 0–31 were launched and no other.
        let probe = Probe::simulated(
            DEFAULT_CONCURRENCY,
            Duration::from_secs(10),
            OneSlowLeak::from(tokio::time::Instant::now()),
        );
        let summary = probe.run(1000, far, |_| Flow::Stop).await;
        assert_eq!(
            (summary.end, summary.launched, summary.observed),
            (RunEnd::Stopped, 32, 1)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_exact_assertion_judges_the_first_270_requests_launched_not_the_first_to_arrive() {
        // Settling ends once 50 answers in a row have come and 2 s (`SETTLE_MIN_SPAN`) have passed; the exact
        // assertion's 270 requests then take about 0.35 s. The first request sent 2.1 s in is among them; its answer
        // comes from resnet101 long after 270 later-launched answers from resnet50: counted by arrival, the
        // assertion would pass on those.
        assert_eq!(lab::traffic::checks::SETTLE_MIN_SPAN, Duration::from_secs(2));
        let config = config();
        let leak = OneSlowLeak::from(tokio::time::Instant::now() + Duration::from_millis(2100));
        let probe = Probe::simulated(DEFAULT_CONCURRENCY, config.request_timeout, leak);
        let spec = AssertionSpec::Exact {
            version: "resnet50".to_string(),
            headers: BTreeMap::new(),
        };
        let report = check_assertion("canary-deployed", &spec, &probe, &config, BTreeMap::new()).await;
        assert_eq!(report.verdict, Verdict::Fail, "{report:#?}");
        assert!(
            report
                .message
                .contains("came from resnet101, but every response must come from resnet50"),
            "{}",
            report.message
        );
    }
}
