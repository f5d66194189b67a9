//! A stage's assertions, run against an ingress URL: wait until the routes are in effect, send predictions, and
//! decide from the responses where traffic went (a [`StageReport`]).
//!
//! - `exact`: every response must come from one version. One response from another version (or one that cannot be
//!   attributed) fails at once; otherwise enough requests are sent that a leak of 5% or more would be seen with
//!   probability at least 1 − 10⁻⁶ ([`stats::exact_sample_size`]).
//! - `share`: the sequential [`ShareTest`] (false failure and miss both ≤ 10⁻⁶), fed in launch order (the probe
//!   holds an early arrival until the requests launched before it are in: its bounds need an order that does not
//!   depend on the outcomes, and a slower version's answers arrive late); no more requests are launched once it
//!   decides; at the cap it is inconclusive, never a pass.
//! - Both kinds count in launch order: an exact assertion judges the first 270 requests launched, not the first 270
//!   answers to arrive.
//! - Failed requests are counted by version and kind; an error rate above the maximum fails the assertion with
//!   the errors summarised.
//!
//! Before an assertion the gateway is probed until it routes as the stage says (a bounded poll, never a fixed
//! sleep), so a stage that was just applied is not judged on the previous stage's routes: for an exact assertion 50
//! answers in a row from the version over at least [`SETTLE_MIN_SPAN`], for a share assertion an answer from each
//! side. Failed requests in that window (Envoy's `503 no healthy upstream` while a new pod's endpoint is on its
//! way, EDS lagging readiness) are propagation, not a verdict.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use tokio::time::Instant;

use crate::definition::plan::StagePlan;
use crate::definition::stages::AssertionSpec;
use crate::report::{
    AssertionReport, ErrorCount, Expectation, LatencySummary, StageReport, Verdict, VersionStats, error_label,
};
use crate::traffic::attribution::References;
use crate::traffic::payload::build_payload;
use crate::traffic::payload::{DEFAULT_IMAGE, PayloadChoice};
use crate::traffic::predict::PredictClient;
use crate::traffic::probe::{ErrorKind, Flow, Observation, Outcome, Probe, ProbeConfig, RunEnd};
use crate::traffic::stats::{self, ShareTest, ShareTestConfig};

/// The path the lab's predictions go to (as in the original lab), and the predict URL for an ingress URL; defined
/// with the TF Serving client.
pub use crate::traffic::tf_serving::{PREDICT_PATH, predict_url};
/// The smallest leak an exact assertion is sized to catch.
pub const LEAK_SHARE: f64 = 0.05;
/// The probability with which an exact assertion may miss such a leak.
pub const MISS_PROBABILITY: f64 = 1e-6;
/// The false-failure and miss probability of a share assertion.
pub const SHARE_ERROR_RATE: f64 = 1e-6;
/// The default maximum share of failed requests.
pub const DEFAULT_MAX_ERROR_RATE: f64 = 0.01;
/// The default time the routes get to take effect.
pub const DEFAULT_SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The default deadline of one assertion.
pub const DEFAULT_ASSERTION_TIMEOUT: Duration = Duration::from_secs(600);
/// Consecutive responses from the expected version that show an exact stage's routes are in effect. Long enough
/// that the previous stage's routes cannot fake it: from a 70/30 split, 50 in a row from the 70% side happen with
/// probability 0.7⁵⁰ ≈ 2·10⁻⁸ at any point.
pub const SETTLE_STREAK: u32 = 50;
/// The least time a settle phase lasts. A count alone is no evidence of time: a fast model answers 50 requests in
/// a few milliseconds, before istiod has pushed the new routes to the gateway, which it does only after the
/// changes have been quiet for `PILOT_DEBOUNCE_AFTER` (100 ms; istio/istio 1.12 `pilot/pkg/features/pilot.go`) and
/// then takes its own time to send and for Envoy to apply. Routes still in effect after this span are what a
/// one-off apply leaves (the gateway's own config dump, read before the assertions, is the stronger evidence).
pub const SETTLE_MIN_SPAN: Duration = Duration::from_secs(2);
/// The pause between settle probes after a response that does not settle it yet.
const SETTLE_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// A share assertion settles once it has seen the versions it expects; failing that, it is judged anyway once it
/// has had this many answers and [`SHARE_SETTLE_GIVE_UP`] has passed (its split may really be missing a version).
const SHARE_SETTLE_RESPONSES: u32 = 50;
/// The longest istiod holds a push back while changes keep coming (`PILOT_DEBOUNCE_MAX`, 10 s; istio/istio 1.12
/// `pilot/pkg/features/pilot.go`): a version that has not answered by then is judged missing.
const SHARE_SETTLE_GIVE_UP: Duration = Duration::from_secs(10);

/// How to run the assertions.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// The ingress URL: a base (`http://127.0.0.1:8080`, [`PREDICT_PATH`] is appended) or a full predict URL.
    pub url: String,
    /// The prediction request body, sent with every request.
    pub body: Bytes,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// The timeout of one request.
    pub request_timeout: Duration,
    /// The largest share of failed requests that still passes (0–1).
    pub max_error_rate: f64,
    /// How long the routes get to take effect before an exact assertion.
    pub settle_timeout: Duration,
    /// The deadline of one assertion's requests (after settling).
    pub assertion_timeout: Duration,
    /// Reference predictions per version, to attribute responses without a version header.
    pub references: References,
    /// The probability of failing a correct split, and of passing one a tolerance off, of a share assertion
    /// ([`SHARE_ERROR_RATE`]; the simulation tests relax it to where the rates are observable).
    pub share_error_rate: f64,
}

impl CheckConfig {
    /// The defaults for `url` and `body`.
    pub fn new(url: &str, body: Bytes) -> CheckConfig {
        CheckConfig {
            url: url.to_string(),
            body,
            concurrency: crate::traffic::probe::DEFAULT_CONCURRENCY,
            request_timeout: crate::traffic::probe::DEFAULT_REQUEST_TIMEOUT,
            max_error_rate: DEFAULT_MAX_ERROR_RATE,
            settle_timeout: DEFAULT_SETTLE_TIMEOUT,
            assertion_timeout: DEFAULT_ASSERTION_TIMEOUT,
            references: References::default(),
            share_error_rate: SHARE_ERROR_RATE,
        }
    }
}

/// The request body for `image` (a JPEG or PNG file's bytes) of the kind `choice` means: a fixed kind, or for `auto`
/// the kind the model's metadata asks for (read through the ingress, as `lab predict --payload auto` does).
pub async fn payload_body(url: &str, choice: PayloadChoice, image: &[u8]) -> anyhow::Result<Bytes> {
    let kind = match choice {
        PayloadChoice::Fixed(kind) => kind,
        // The metadata of the model the predict URL names, at the same root ([`crate::traffic::tf_serving::metadata_url`]).
        PayloadChoice::Auto => PredictClient::new(url)?.payload_kind_from_metadata().await?,
    };
    let payload = build_payload(kind, image).with_context(|| format!("building the {} payload", kind.as_str()))?;
    Ok(payload.body)
}

/// A stage's assertions as `lab up` and `lab stage` run them against `ingress_url`: the lab's Grace Hopper image with
/// the payload the model's metadata asks for, and the default concurrency, timeouts and error rate.
pub async fn run_stage(plan: &StagePlan, ingress_url: &str) -> anyhow::Result<StageReport> {
    let body = payload_body(ingress_url, PayloadChoice::Auto, DEFAULT_IMAGE).await?;
    run_stage_with(plan, ingress_url, body, References::default()).await
}

/// [`run_stage`] with a prepared request `body` and the versions' `references` for that same body (so responses
/// without a version header are attributed by their fingerprint).
pub async fn run_stage_with(
    plan: &StagePlan,
    ingress_url: &str,
    body: Bytes,
    references: References,
) -> anyhow::Result<StageReport> {
    let mut config = CheckConfig::new(ingress_url, body);
    config.references = references;
    check_stage(plan, &config).await
}

/// Runs every assertion of the stage `plan` resolves against `config.url`.
pub async fn check_stage(plan: &StagePlan, config: &CheckConfig) -> anyhow::Result<StageReport> {
    let started = Instant::now();
    let url = predict_url(&config.url)?;
    let path = reqwest::Url::parse(&url)?.path().to_string();
    let routing = plan
        .routing()
        .with_context(|| format!("reading the routing of stage \"{}\"", plan.name))?;
    let mut assertions = Vec::new();
    for spec in &plan.assertions {
        let configured_weights = routing
            .route_for(&path, spec.headers())?
            .map(|route| route.weights())
            .unwrap_or_default();
        let probe = Probe::new(ProbeConfig {
            url: url.clone(),
            body: config.body.clone(),
            headers: spec.headers().clone(),
            concurrency: config.concurrency,
            request_timeout: config.request_timeout,
            references: config.references.clone(),
        })?;
        assertions.push(check_assertion(&plan.name, spec, &probe, config, configured_weights).await);
    }
    Ok(StageReport {
        stage: plan.name.clone(),
        verdict: Verdict::combine(assertions.iter().map(|assertion| assertion.verdict)),
        duration_seconds: started.elapsed().as_secs_f64(),
        assertions,
    })
}

/// Runs one assertion of stage `stage` with `probe` (whose headers must be the assertion's); `configured_weights`
/// is the route's split, for the report. [`check_stage`] runs this for each assertion; the simulation tests run it
/// with a [`Probe::simulated`].
pub async fn check_assertion(
    stage: &str,
    spec: &AssertionSpec,
    probe: &Probe,
    config: &CheckConfig,
    configured_weights: BTreeMap<String, u32>,
) -> AssertionReport {
    let (expectation, name, (verdict, message, tally)) = match spec {
        AssertionSpec::Exact { version, .. } => {
            let expectation = Expectation::Exact {
                version: version.clone(),
                leak_share: LEAK_SHARE,
                miss_probability: MISS_PROBABILITY,
            };
            let name = format!("{}every response from {version}", describe_headers(spec));
            let outcome = match settle_exact(stage, spec, version, probe, config).await {
                Ok(()) => check_exact(version, probe, config).await,
                Err((message, settle_tally)) => (Verdict::Fail, message, settle_tally),
            };
            (expectation, name, outcome)
        }
        AssertionSpec::Share {
            version,
            share,
            tolerance,
            ..
        } => {
            let test_config = ShareTestConfig {
                false_failure: config.share_error_rate,
                miss: config.share_error_rate,
                ..ShareTestConfig::lab_default(*share, *tolerance)
            };
            let expectation = Expectation::Share {
                version: version.clone(),
                share: *share,
                tolerance: *tolerance,
                false_failure: test_config.false_failure,
                miss: test_config.miss,
                max_requests: test_config.max_requests,
            };
            let name = format!(
                "{}share of {version} is {} ± {}",
                describe_headers(spec),
                percent(*share),
                percent(*tolerance)
            );
            settle_share(version, probe, config).await;
            (
                expectation,
                name,
                check_share(version, test_config, probe, config).await,
            )
        }
    };
    AssertionReport {
        name,
        expectation,
        verdict,
        message,
        request_headers: spec.headers().clone(),
        requests: tally.requests,
        versions: tally.version_stats(),
        errors: tally.error_counts(),
        configured_weights,
    }
}

/// Probes until [`SETTLE_STREAK`] consecutive responses come from `expected` and the phase has lasted
/// [`SETTLE_MIN_SPAN`] (every response since the last mismatch matched), or fails at the settle timeout with a
/// message naming the stage, the expectation and what was seen (and the settle requests' tally for the report).
/// Failed requests — a `503 no healthy upstream` while the gateway has no endpoint yet for a pod that just became
/// ready — are propagation: they only restart the streak, and count against no verdict.
async fn settle_exact(
    stage: &str,
    spec: &AssertionSpec,
    expected: &str,
    probe: &Probe,
    config: &CheckConfig,
) -> Result<(), (String, Tally)> {
    let started = Instant::now();
    let deadline = started + config.settle_timeout;
    // A settle timeout shorter than twice the span (the tests' fast failures) leaves room for the streak.
    let min_span = SETTLE_MIN_SPAN.min(config.settle_timeout / 2);
    let mut streak = 0;
    let mut tally = Tally::default();
    // Responses in launch order, `concurrency` at a time; the deadline bounds it, the streak held long enough ends it.
    let summary = probe
        .run(u64::MAX, deadline, |observation| {
            tally.add(&observation);
            let matches = matches!(&observation.outcome, Outcome::Answered { version } if version == expected);
            streak = if matches { streak + 1 } else { 0 };
            if streak >= SETTLE_STREAK && started.elapsed() >= min_span {
                Flow::Stop
            } else {
                Flow::Continue
            }
        })
        .await;
    if summary.end == RunEnd::Stopped {
        return Ok(());
    }
    let seen_text: Vec<String> = tally
        .outcome_counts()
        .iter()
        .map(|(label, count)| format!("{label} ×{count}"))
        .collect();
    let seen_text = if seen_text.is_empty() {
        "no complete response".to_string()
    } else {
        seen_text.join(", ")
    };
    let message = format!(
        "stage \"{stage}\": the routes did not take effect within {}s: {}every response should come from {expected}, but the gateway answered {seen_text}",
        config.settle_timeout.as_secs_f64(),
        describe_headers(spec)
    );
    Err((message, tally))
}

/// Probes until `version` and another version have both answered (under the previous stage's routes one of them
/// may never answer; a share assertion's share is strictly between 0 and 1, so the split has both), or, failing
/// that, until [`SHARE_SETTLE_RESPONSES`] answers and [`SHARE_SETTLE_GIVE_UP`] have passed, or the settle timeout.
/// It never fails: the share test judges. Failed requests (a `503 no healthy upstream` while the gateway waits for a
/// new pod's endpoint) are propagation: they are not answers, count against nothing, and pause the poll.
async fn settle_share(version: &str, probe: &Probe, config: &CheckConfig) {
    let started = Instant::now();
    let deadline = started + config.settle_timeout;
    let (mut seen_version, mut seen_other) = (false, false);
    let mut answers = 0;
    while !(seen_version && seen_other) {
        let given_up = answers >= SHARE_SETTLE_RESPONSES && started.elapsed() >= SHARE_SETTLE_GIVE_UP;
        if given_up {
            return;
        }
        let Ok(observation) = tokio::time::timeout_at(deadline, probe.send_one()).await else {
            return;
        };
        let pause = match &observation.outcome {
            Outcome::Answered { version: answered } => {
                answers += 1;
                if answered == version {
                    seen_version = true
                } else {
                    seen_other = true
                }
                // Past the count, the wait is for time (a push), not for more answers.
                answers >= SHARE_SETTLE_RESPONSES
            }
            Outcome::Failed { .. } => true,
        };
        if pause && !(seen_version && seen_other) {
            let next_poll = (Instant::now() + SETTLE_POLL_INTERVAL).min(deadline);
            tokio::time::sleep_until(next_poll).await;
        }
    }
}

async fn check_exact(expected: &str, probe: &Probe, config: &CheckConfig) -> (Verdict, String, Tally) {
    let required = stats::exact_sample_size(LEAK_SHARE, MISS_PROBABILITY);
    let error_budget = error_budget(required, config.max_error_rate);
    let mut tally = Tally::default();
    let mut wrong: Option<String> = None;
    let deadline = Instant::now() + config.assertion_timeout;
    let summary = probe
        .run(required + error_budget, deadline, |observation| {
            tally.add(&observation);
            match &observation.outcome {
                Outcome::Answered { version } if version == expected => {
                    if tally.answered() >= required {
                        Flow::Stop
                    } else {
                        Flow::Continue
                    }
                }
                Outcome::Answered { version } => {
                    wrong = Some(format!(
                        "response {} came from {version}, but every response must come from {expected}",
                        tally.requests
                    ));
                    Flow::Stop
                }
                Outcome::Failed {
                    kind: ErrorKind::Unattributed,
                    ..
                } => {
                    wrong = Some(format!(
                        "response {} could not be attributed to a version (no {} header, and its predictions are not clearly one model's), but every response must come from {expected}",
                        tally.requests,
                        crate::traffic::tf_serving::VERSION_HEADER
                    ));
                    Flow::Stop
                }
                Outcome::Failed { .. } => {
                    if tally.errors_total > error_budget {
                        Flow::Stop
                    } else {
                        Flow::Continue
                    }
                }
            }
        })
        .await;
    if let Some(message) = wrong {
        return (Verdict::Fail, message, tally);
    }
    if let Some(message) = tally.error_rate_failure(config.max_error_rate) {
        return (Verdict::Fail, message, tally);
    }
    if summary.end == RunEnd::Deadline {
        let message = format!(
            "the deadline of {}s passed after {} requests ({} of {required} responses from {expected} so far)",
            config.assertion_timeout.as_secs_f64(),
            tally.requests,
            tally.answered()
        );
        return (Verdict::Inconclusive, message, tally);
    }
    let message = format!(
        "all {} responses came from {expected} ({} requests, {} failed)",
        tally.answered(),
        tally.requests,
        tally.errors_total
    );
    (Verdict::Pass, message, tally)
}

async fn check_share(
    version: &str,
    test_config: ShareTestConfig,
    probe: &Probe,
    config: &CheckConfig,
) -> (Verdict, String, Tally) {
    let mut test = ShareTest::new(test_config);
    let error_budget = error_budget(test_config.max_requests, config.max_error_rate);
    let mut tally = Tally::default();
    let deadline = Instant::now() + config.assertion_timeout;
    let summary = probe
        .run(test_config.max_requests + error_budget, deadline, |observation| {
            tally.add(&observation);
            match &observation.outcome {
                Outcome::Answered { version: answered } => match test.observe(answered == version) {
                    Some(_) => Flow::Stop,
                    None => Flow::Continue,
                },
                Outcome::Failed { .. } => {
                    if tally.errors_total > error_budget {
                        Flow::Stop
                    } else {
                        Flow::Continue
                    }
                }
            }
        })
        .await;
    let (hits, trials) = test.counts();
    let (low, high) = stats::wilson_interval(hits, trials, 1.96);
    let observed = match trials {
        0 => "no attributed responses".to_string(),
        _ => format!(
            "{version} answered {hits} of {trials} ({}, 95% interval {}–{})",
            percent(hits as f64 / trials as f64),
            percent(low),
            percent(high)
        ),
    };
    let configured = format!("{} ± {}", percent(test_config.share), percent(test_config.tolerance));
    if let Some(message) = tally.error_rate_failure(config.max_error_rate) {
        return (Verdict::Fail, format!("{message}; {observed}"), tally);
    }
    let (verdict, message) = match (test.verdict(), summary.end) {
        (Some(Verdict::Pass), _) => (Verdict::Pass, format!("{observed}: consistent with {configured}")),
        (Some(Verdict::Fail), _) => (Verdict::Fail, format!("{observed}: not consistent with {configured}")),
        // The sequential test never answers NotAsserted; were it to, no decision is what it would mean.
        (Some(Verdict::Inconclusive | Verdict::NotAsserted), _) => (
            Verdict::Inconclusive,
            format!("{observed}: no decision within {} responses", test_config.max_requests),
        ),
        (None, RunEnd::Deadline) => (
            Verdict::Inconclusive,
            format!(
                "{observed}: no decision before the deadline of {}s",
                config.assertion_timeout.as_secs_f64()
            ),
        ),
        (None, _) => (
            Verdict::Inconclusive,
            format!("{observed}: no decision (too few attributed responses)"),
        ),
    };
    (verdict, message, tally)
}

/// The failures allowed among `required + budget` requests: the largest `budget` with
/// `budget / (required + budget) <= max_error_rate`.
fn error_budget(required: u64, max_error_rate: f64) -> u64 {
    let rate = max_error_rate.clamp(0.0, 0.99);
    (rate * required as f64 / (1.0 - rate) + 1e-9).floor() as u64
}

/// What the requests of one assertion found, aggregated (no per-request records but latencies).
#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    latencies_ms: BTreeMap<String, Vec<f64>>,
    errors: BTreeMap<(Option<String>, ErrorKind), u64>,
    errors_total: u64,
}

impl Tally {
    fn add(&mut self, observation: &Observation) {
        self.requests += 1;
        let latency_ms = observation.latency.as_secs_f64() * 1000.0;
        match &observation.outcome {
            // Keys are cloned only the first time a version (or error) is seen.
            Outcome::Answered { version } => match self.latencies_ms.get_mut(version) {
                Some(latencies) => latencies.push(latency_ms),
                None => {
                    self.latencies_ms.insert(version.clone(), vec![latency_ms]);
                }
            },
            Outcome::Failed { version, kind } => {
                let key = (version.clone(), *kind);
                *self.errors.entry(key).or_insert(0) += 1;
                self.errors_total += 1;
            }
        }
    }

    /// Responses attributed to a version (every request that did not fail).
    fn answered(&self) -> u64 {
        self.requests - self.errors_total
    }

    /// Requests by what they found — `resnet50`, or the error kind with the version when known — for messages.
    fn outcome_counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for (version, latencies) in &self.latencies_ms {
            *counts.entry(version.clone()).or_insert(0) += latencies.len() as u64;
        }
        for ((version, kind), count) in &self.errors {
            *counts
                .entry(error_label(kind.as_str(), version.as_deref()))
                .or_insert(0) += count;
        }
        counts
    }

    /// A failure message when more than `max_error_rate` of the requests failed.
    fn error_rate_failure(&self, max_error_rate: f64) -> Option<String> {
        if self.requests == 0 {
            return Some("no request completed".to_string());
        }
        let rate = self.errors_total as f64 / self.requests as f64;
        if rate <= max_error_rate {
            return None;
        }
        let mut by_version: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for ((version, kind), count) in &self.errors {
            let version = version.clone().unwrap_or_else(|| "version unknown".to_string());
            by_version.entry(version).or_default().push(format!("{kind} ×{count}"));
        }
        let mut summary = String::new();
        for (version, kinds) in &by_version {
            if !summary.is_empty() {
                summary.push_str("; ");
            }
            let _ = write!(summary, "{version}: {}", kinds.join(", "));
        }
        Some(format!(
            "{} of {} requests failed ({}, more than the maximum {}): {summary}",
            self.errors_total,
            self.requests,
            percent(rate),
            percent(max_error_rate)
        ))
    }

    fn version_stats(&self) -> Vec<VersionStats> {
        let answered = self.answered();
        self.latencies_ms
            .iter()
            .map(|(version, latencies)| {
                let responses = latencies.len() as u64;
                let (low, high) = stats::wilson_interval(responses, answered, 1.96);
                let mut sorted = latencies.clone();
                sorted.sort_by(f64::total_cmp);
                VersionStats {
                    version: version.clone(),
                    responses,
                    share: responses as f64 / answered.max(1) as f64,
                    share_interval_95: [low, high],
                    latency_ms: LatencySummary {
                        p50: stats::percentile(&sorted, 50.0),
                        p95: stats::percentile(&sorted, 95.0),
                        p99: stats::percentile(&sorted, 99.0),
                    },
                }
            })
            .collect()
    }

    fn error_counts(&self) -> Vec<ErrorCount> {
        self.errors
            .iter()
            .map(|((version, kind), count)| ErrorCount {
                version: version.clone(),
                kind: kind.as_str().to_string(),
                count: *count,
            })
            .collect()
    }
}

/// `with user-group: canary: ` or `` for an assertion without headers.
fn describe_headers(spec: &AssertionSpec) -> String {
    let headers = spec.headers();
    if headers.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = headers.iter().map(|(name, value)| format!("{name}: {value}")).collect();
    format!("with {}: ", pairs.join(", "))
}

/// A share as a percentage with at most one decimal: `30%`, `27.4%`.
fn percent(share: f64) -> String {
    let value = share * 100.0;
    if (value - value.round()).abs() < 0.05 {
        format!("{}%", value.round())
    } else {
        format!("{value:.1}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_budget_keeps_the_rate_at_or_below_the_maximum() {
        assert_eq!(error_budget(270, 0.01), 2);
        assert_eq!(error_budget(270, 0.0), 0);
        assert_eq!(error_budget(3000, 0.01), 30);
        for (required, rate) in [(270, 0.01), (3000, 0.01), (270, 0.05), (100, 0.5)] {
            let budget = error_budget(required, rate);
            assert!(budget as f64 / (required + budget) as f64 <= rate);
            assert!((budget + 1) as f64 / (required + budget + 1) as f64 > rate);
        }
    }

    #[test]
    fn an_error_summary_names_version_and_kind() {
        let mut tally = Tally::default();
        let answered = Observation {
            latency: Duration::from_millis(5),
            status: Some(200),
            outcome: Outcome::Answered {
                version: "resnet50".into(),
            },
        };
        let unavailable = Observation {
            latency: Duration::from_millis(5),
            status: Some(503),
            outcome: Outcome::Failed {
                version: Some("resnet101".into()),
                kind: ErrorKind::Http503,
            },
        };
        for _ in 0..8 {
            tally.add(&answered);
        }
        tally.add(&unavailable);
        tally.add(&unavailable);
        let message = tally.error_rate_failure(0.01).unwrap();
        assert_eq!(
            message,
            "2 of 10 requests failed (20%, more than the maximum 1%): resnet101: http_503 ×2"
        );
        assert_eq!(tally.error_rate_failure(0.2), None);
        let stats = tally.version_stats();
        assert_eq!(
            (stats[0].version.as_str(), stats[0].responses, stats[0].share),
            ("resnet50", 8, 1.0)
        );
    }
}
