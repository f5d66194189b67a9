//! The statistics behind the assertions: sample sizes, the sequential share test, intervals, percentiles.
//!
//! Nothing here does IO. The share test is a pair of one-sided Wald sequential probability ratio tests with
//! boundaries chosen so that Ville's inequality makes the error rates hard bounds, valid at every sample size:
//! under the null the likelihood ratio is a non-negative martingale with mean 1, so it ever reaches `1/α` with
//! probability at most `α`; under an alternative the inverse ratio is, so the ratio ever falls to `β` with
//! probability at most `β`. Truncating at a request cap only turns some decisions into "inconclusive" and can add
//! no error.

use crate::report::Verdict;

/// The number of requests that sees at least one of a leak of `leak_share` with probability `1 - miss_probability`:
/// the smallest `n` with `(1 - leak_share)^n <= miss_probability` (270 for a 5% leak at 10⁻⁶).
pub fn exact_sample_size(leak_share: f64, miss_probability: f64) -> u64 {
    assert!(leak_share > 0.0 && leak_share < 1.0, "leak share must be within (0, 1)");
    assert!(
        miss_probability > 0.0 && miss_probability < 1.0,
        "miss probability must be within (0, 1)"
    );
    (miss_probability.ln() / (1.0 - leak_share).ln()).ceil() as u64
}

/// What the share test tests: share = `share` against |share − `share`| ≥ `tolerance`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShareTestConfig {
    /// The configured share of the version (0–1).
    pub share: f64,
    /// The smallest deviation that must be caught.
    pub tolerance: f64,
    /// The probability of failing a correct split (split across the two sides).
    pub false_failure: f64,
    /// The probability of passing a split `tolerance` or more off.
    pub miss: f64,
    /// The request cap; reaching it gives [`Verdict::Inconclusive`].
    pub max_requests: u64,
}

impl ShareTestConfig {
    /// The lab's defaults: error rates 10⁻⁶ both ways, at most 3000 requests.
    pub fn lab_default(share: f64, tolerance: f64) -> ShareTestConfig {
        ShareTestConfig {
            share,
            tolerance,
            false_failure: 1e-6,
            miss: 1e-6,
            max_requests: 3000,
        }
    }
}

/// One side of the test: the null share against one alternative.
#[derive(Debug, Clone)]
struct OneSidedSprt {
    /// Log-likelihood-ratio increment for a hit and for a miss.
    hit_step: f64,
    miss_step: f64,
    /// Reject the null (fail) at or above this.
    upper: f64,
    /// Accept the null at or below this.
    lower: f64,
    llr: f64,
    decision: Option<Verdict>,
}

impl OneSidedSprt {
    /// `None` when the alternative lies outside (0, 1): that side has nothing to test.
    fn new(null: f64, alternative: f64, false_failure: f64, miss: f64) -> Option<OneSidedSprt> {
        let in_range = alternative > 0.0 && alternative < 1.0;
        in_range.then(|| OneSidedSprt {
            hit_step: (alternative / null).ln(),
            miss_step: ((1.0 - alternative) / (1.0 - null)).ln(),
            upper: (1.0 / false_failure).ln(),
            lower: miss.ln(),
            llr: 0.0,
            decision: None,
        })
    }

    fn observe(&mut self, hit: bool) {
        if self.decision.is_some() {
            return;
        }
        self.llr += if hit { self.hit_step } else { self.miss_step };
        if self.llr >= self.upper {
            self.decision = Some(Verdict::Fail);
        } else if self.llr <= self.lower {
            self.decision = Some(Verdict::Pass);
        }
    }
}

/// A sequential test of a version's share: feed it responses in arrival order until it decides.
#[derive(Debug, Clone)]
pub struct ShareTest {
    config: ShareTestConfig,
    sides: Vec<OneSidedSprt>,
    hits: u64,
    trials: u64,
    verdict: Option<Verdict>,
}

impl ShareTest {
    /// A test of `config.share` against shares `config.tolerance` above and below.
    ///
    /// # Panics
    /// When the share is not strictly between 0 and 1, or neither alternative is (loading `lab.toml` refuses both).
    pub fn new(config: ShareTestConfig) -> ShareTest {
        let ShareTestConfig {
            share,
            tolerance,
            false_failure,
            miss,
            ..
        } = config;
        assert!(
            share > 0.0 && share < 1.0,
            "a share test needs a share within (0, 1); 0 and 1 are exact checks"
        );
        let per_side = false_failure / 2.0;
        let sides = [share - tolerance, share + tolerance]
            .into_iter()
            .filter_map(|alternative| OneSidedSprt::new(share, alternative, per_side, miss))
            .collect::<Vec<_>>();
        // With no alternative inside (0, 1) nothing could fail the test (`lab.toml` refuses such assertions).
        assert!(
            !sides.is_empty(),
            "a share test needs share − tolerance > 0 or share + tolerance < 1"
        );
        ShareTest {
            config,
            sides,
            hits: 0,
            trials: 0,
            verdict: None,
        }
    }

    /// Adds one attributed response (`is_version`: it came from the tested version). Returns the verdict once
    /// decided: `Fail` as soon as either side rejects, `Pass` when both accept, `Inconclusive` at the cap.
    #[must_use]
    pub fn observe(&mut self, is_version: bool) -> Option<Verdict> {
        if self.verdict.is_some() {
            return self.verdict;
        }
        self.trials += 1;
        self.hits += u64::from(is_version);
        for side in &mut self.sides {
            side.observe(is_version);
        }
        let any_failed = self.sides.iter().any(|side| side.decision == Some(Verdict::Fail));
        let all_passed = self.sides.iter().all(|side| side.decision == Some(Verdict::Pass));
        self.verdict = if any_failed {
            Some(Verdict::Fail)
        } else if all_passed {
            Some(Verdict::Pass)
        } else if self.trials >= self.config.max_requests {
            Some(Verdict::Inconclusive)
        } else {
            None
        };
        self.verdict
    }

    /// `(responses from the version, responses)` so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.hits, self.trials)
    }

    /// The verdict, once decided.
    pub fn verdict(&self) -> Option<Verdict> {
        self.verdict
    }
}

/// The requests a fixed-size two-sided test needs for the same question (normal approximation):
/// `((z(α/2)·√(w(1−w)) + z(β)·√(w'(1−w'))) / δ)²` with `w'` the farther-from-½ alternative.
pub fn fixed_sample_size(config: &ShareTestConfig) -> u64 {
    let ShareTestConfig {
        share,
        tolerance,
        false_failure,
        miss,
        ..
    } = *config;
    let z_alpha = normal_quantile(1.0 - false_failure / 2.0);
    let z_beta = normal_quantile(1.0 - miss);
    let null_sd = (share * (1.0 - share)).sqrt();
    let worst_alternative_sd = [share - tolerance, share + tolerance]
        .into_iter()
        .filter(|alternative| *alternative > 0.0 && *alternative < 1.0)
        .map(|alternative| (alternative * (1.0 - alternative)).sqrt())
        .fold(0.0, f64::max);
    ((z_alpha * null_sd + z_beta * worst_alternative_sd) / tolerance)
        .powi(2)
        .ceil() as u64
}

/// The Wilson score interval for `successes` of `trials` at normal quantile `z` (1.96 for 95%).
pub fn wilson_interval(successes: u64, trials: u64, z: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half_width = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    ((centre - half_width).max(0.0), (centre + half_width).min(1.0))
}

/// The `p`-th percentile (0–100) of sorted values, by linear interpolation; 0 for no values.
pub fn percentile(sorted_values: &[f64], p: f64) -> f64 {
    match sorted_values.len() {
        0 => 0.0,
        1 => sorted_values[0],
        len => {
            let rank = (p / 100.0).clamp(0.0, 1.0) * (len - 1) as f64;
            let below = rank.floor() as usize;
            let above = rank.ceil() as usize;
            let fraction = rank - below as f64;
            sorted_values[below] + (sorted_values[above] - sorted_values[below]) * fraction
        }
    }
}

/// The standard normal quantile (Acklam's rational approximation, relative error below 1.2·10⁻⁹).
pub fn normal_quantile(probability: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.383_577_518_672_69e2,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e+01,
        1.615858368580409e+02,
        -1.556989798598866e+02,
        6.680131188771972e+01,
        -1.328068155288572e+01,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549732539343734e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-03,
        3.224671290700398e-01,
        2.445134137142996e+00,
        3.754408661907416e+00,
    ];
    assert!(
        probability > 0.0 && probability < 1.0,
        "a quantile needs a probability within (0, 1)"
    );
    let low = 0.02425;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if probability < low {
        tail((-2.0 * probability.ln()).sqrt())
    } else if probability > 1.0 - low {
        -tail((-2.0 * (1.0 - probability).ln()).sqrt())
    } else {
        let q = probability - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// A small, fast, seedable random generator (SplitMix64) for simulations; not for anything secret.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Runs one simulated share test with responses from the version at probability `true_share`; returns the verdict
/// and the requests it used. The same `ShareTest` code the probe uses, fed by a random generator.
pub fn simulate_share_test(config: ShareTestConfig, true_share: f64, random: &mut SplitMix64) -> (Verdict, u64) {
    let mut test = ShareTest::new(config);
    loop {
        if let Some(verdict) = test.observe(random.next_f64() < true_share) {
            return (verdict, test.counts().1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_checks_send_270_requests_for_a_5_percent_leak_at_one_in_a_million() {
        assert_eq!(exact_sample_size(0.05, 1e-6), 270);
        // 270 requests miss a 5% leak with probability below 10⁻⁶; 269 would not be enough.
        assert!(0.95f64.powi(270) <= 1e-6 && 0.95f64.powi(269) > 1e-6);
    }

    #[test]
    fn the_fixed_size_test_needs_about_950_requests() {
        let n = fixed_sample_size(&ShareTestConfig::lab_default(0.3, 0.15));
        assert!((930..=960).contains(&n), "{n}");
    }

    #[test]
    fn normal_quantiles_match_tables() {
        assert!((normal_quantile(0.975) - 1.959964).abs() < 1e-5);
        assert!((normal_quantile(1.0 - 1e-6) - 4.753424).abs() < 1e-5);
        assert!((normal_quantile(0.5)).abs() < 1e-12);
    }

    #[test]
    fn wilson_interval_contains_the_estimate_and_narrows() {
        let (low, high) = wilson_interval(30, 100, 1.96);
        assert!(low < 0.3 && 0.3 < high);
        let (low_more, high_more) = wilson_interval(300, 1000, 1.96);
        assert!(high_more - low_more < high - low);
        assert_eq!(wilson_interval(0, 0, 1.96), (0.0, 1.0));
    }

    #[test]
    fn percentiles_interpolate() {
        let values = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&values, 50.0), 3.0);
        assert_eq!(percentile(&values, 100.0), 5.0);
        assert_eq!(percentile(&values, 25.0), 2.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn a_long_run_of_exactly_30_percent_passes_and_of_50_percent_fails() {
        let mut test = ShareTest::new(ShareTestConfig::lab_default(0.3, 0.15));
        let verdict = (0..3000).find_map(|index| test.observe(index % 10 < 3));
        assert_eq!(verdict, Some(Verdict::Pass));
        let mut test = ShareTest::new(ShareTestConfig::lab_default(0.3, 0.15));
        let verdict = (0..3000).find_map(|index| test.observe(index % 2 == 0));
        assert_eq!(verdict, Some(Verdict::Fail));
    }

    #[test]
    fn reaching_the_cap_is_inconclusive_never_pass() {
        // Halfway between the null and an alternative, with a tiny cap: undecided at the cap.
        let config = ShareTestConfig {
            max_requests: 20,
            ..ShareTestConfig::lab_default(0.3, 0.15)
        };
        let mut test = ShareTest::new(config);
        let verdict = (0..100).find_map(|index| test.observe(index % 8 < 3));
        assert_eq!(verdict, Some(Verdict::Inconclusive));
        assert_eq!(test.counts().1, 20);
    }

    #[test]
    fn a_share_near_the_edge_tests_only_the_side_that_exists() {
        let mut test = ShareTest::new(ShareTestConfig::lab_default(0.1, 0.15));
        let verdict = (0..3000).find_map(|index| test.observe(index % 10 == 0));
        assert_eq!(verdict, Some(Verdict::Pass));
    }
}
