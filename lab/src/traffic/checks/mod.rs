//! A stage's assertions, run against an ingress URL: wait until the routes are in effect, send requests, and
//! decide from the responses where traffic went (a [`StageReport`]).
//!
//! The requests are TF Serving's model-status requests where the stage's routes send them as they send predictions
//! and every answer names its version (`--probe auto`, [`kind`]; they cost the model no inference), with a sample of
//! real predictions per version afterwards (`sample`), else predictions. Either kind feeds the same assertions below.
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
//! After an apply (`lab up`, `lab stage`, `lab reset`), before an assertion the gateway is probed until it routes as
//! the stage says, within a propagation window ([`DEFAULT_SETTLE_TIMEOUT`]; a bounded poll, never a fixed sleep), so a
//! stage that was just applied is not judged on the previous stage's routes: for an exact assertion 50
//! answers in a row from the version over at least [`SETTLE_MIN_SPAN`], for a share assertion an answer from each
//! side. Failed requests in that window (Envoy's `503 no healthy upstream` while a new pod's endpoint is on its
//! way, EDS lagging readiness) are propagation, not a verdict. `lab check` applied nothing: it tests what is there
//! (no window, [`CheckConfig::settle_timeout`] `None`), so a wrong route fails at its first wrong answer.

mod exact;
pub mod kind;
pub mod progress;
mod sample;
mod settle;
mod share;
mod tally;

use exact::check_exact;
use progress::{CheckPhase, Reporter};
use settle::{settle_exact, settle_share};
use share::check_share;

pub use kind::{ProbeChoice, ProbeDecision};
pub use sample::{SAMPLE_MAX_REQUESTS, SAMPLE_PER_VERSION};

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use tokio::time::Instant;

use crate::definition::plan::StagePlan;
use crate::definition::stages::AssertionSpec;
use crate::report::{AssertionReport, Expectation, ProbeReport, RequestKind, StageReport, Verdict};
use crate::traffic::attribution::References;
use crate::traffic::payload::build_payload;
use crate::traffic::payload::{DEFAULT_IMAGE, PayloadChoice};
use crate::traffic::predict::PredictClient;
use crate::traffic::probe::{Probe, ProbeConfig};
use crate::traffic::stats::ShareTestConfig;

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
/// The propagation window after an apply: how long routes that are still wrong get before the assertion fails with
/// the numbers. istiod pushes within its debounce (100 ms, at most `PILOT_DEBOUNCE_MAX` = 10 s while changes keep
/// coming; istio/istio 1.12 `pilot/pkg/features/pilot.go`), and `lab up`/`lab stage` have already waited until the
/// gateway's own Envoy serves the stage (`istio::gateway_config`), so 15 s bounds what is left.
pub const DEFAULT_SETTLE_TIMEOUT: Duration = Duration::from_secs(15);
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
    /// After an apply, how long the routes get to take effect before an assertion judges (the propagation window);
    /// `None` tests what is there at once (`lab check`: nothing was applied).
    pub settle_timeout: Option<Duration>,
    /// The deadline of one assertion's requests (after settling).
    pub assertion_timeout: Duration,
    /// Reference predictions per version, to attribute responses without a version header.
    pub references: References,
    /// The probability of failing a correct split, and of passing one a tolerance off, of a share assertion
    /// ([`SHARE_ERROR_RATE`]; the simulation tests relax it to where the rates are observable).
    pub share_error_rate: f64,
    /// Where each assertion reports its phase and counts while it runs (a status line on a terminal); `None`: only
    /// the `-v` log lines.
    pub progress: Option<progress::ProgressSink>,
    /// Which requests prove the routing (`--probe`; [`kind`]).
    pub probe: ProbeChoice,
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
            settle_timeout: Some(DEFAULT_SETTLE_TIMEOUT),
            assertion_timeout: DEFAULT_ASSERTION_TIMEOUT,
            references: References::default(),
            share_error_rate: SHARE_ERROR_RATE,
            progress: None,
            probe: ProbeChoice::Auto,
        }
    }
}

/// The request body for `image` (a JPEG or PNG file's bytes) of the kind `choice` means: a fixed kind, or for `auto`
/// the kind the model's metadata asks for (read through the ingress, as `lab predict --payload auto` does, each
/// request within `request_timeout`).
pub async fn payload_body(
    url: &str,
    choice: PayloadChoice,
    image: &[u8],
    request_timeout: Duration,
) -> anyhow::Result<Bytes> {
    let kind = match choice {
        PayloadChoice::Fixed(kind) => kind,
        // The metadata of the model the predict URL names, at the same root ([`crate::traffic::tf_serving::metadata_url`]).
        PayloadChoice::Auto => {
            PredictClient::with_request_timeout(url, request_timeout)?
                .payload_kind_from_metadata()
                .await?
        }
    };
    let payload = build_payload(kind, image).with_context(|| format!("building the {} payload", kind.as_str()))?;
    Ok(payload.body)
}

/// A stage's assertions as `lab up` and `lab stage` run them against `ingress_url`: the lab's Grace Hopper image with
/// the payload the model's metadata asks for, and the default concurrency, timeouts and error rate.
pub async fn run_stage(plan: &StagePlan, ingress_url: &str, probe: ProbeChoice) -> anyhow::Result<StageReport> {
    let body = stage_body(ingress_url).await?;
    let progress = progress::TerminalProgress::on_terminal();
    run_stage_with(plan, ingress_url, body, References::default(), probe, progress).await
}

/// The body `lab up` and `lab stage` assert with: the lab's Grace Hopper photo as the payload the model's metadata
/// asks for, the metadata read within the default request timeout.
pub async fn stage_body(ingress_url: &str) -> anyhow::Result<Bytes> {
    payload_body(
        ingress_url,
        PayloadChoice::Auto,
        DEFAULT_IMAGE,
        crate::traffic::probe::DEFAULT_REQUEST_TIMEOUT,
    )
    .await
}

/// [`run_stage`] with a prepared request `body`, the versions' `references` for that same body (so responses
/// without a version header are attributed by their fingerprint), and the caller's `progress` sink (the status line
/// on a terminal, [`progress::TerminalProgress::on_terminal`], for most; `lab tour` draws the live traffic view).
pub async fn run_stage_with(
    plan: &StagePlan,
    ingress_url: &str,
    body: Bytes,
    references: References,
    probe: ProbeChoice,
    progress: Option<progress::ProgressSink>,
) -> anyhow::Result<StageReport> {
    let mut config = CheckConfig::new(ingress_url, body);
    config.references = references;
    config.progress = progress;
    config.probe = probe;
    check_stage(plan, &config).await
}

/// Which requests `choice` makes stage `plan` send through an ingress root ([`kind::decide`]): how `lab up` and
/// `lab stage` refuse `--probe status` for a stage whose routes do not allow it before they apply anything.
pub fn probe_decision(plan: &StagePlan, choice: ProbeChoice) -> anyhow::Result<ProbeDecision> {
    let routing = plan
        .routing()
        .with_context(|| format!("reading the routing of stage \"{}\"", plan.name))?;
    kind::decide(choice, &plan.name, routing, &plan.assertions, "http://ingress")
}

/// Runs every assertion of the stage `plan` resolves against `config.url`, with the requests `config.probe` and the
/// stage's routes choose ([`kind::decide`]; under `auto`, status requests whose answers name no version turn it to
/// predictions, [`kind::confirm_attributable`]); with status requests, once every assertion passed, the sample of
/// predictions ([`SAMPLE_PER_VERSION`] from each version the routes send to).
pub async fn check_stage(plan: &StagePlan, config: &CheckConfig) -> anyhow::Result<StageReport> {
    let started = Instant::now();
    let url = predict_url(&config.url)?;
    let path = reqwest::Url::parse(&url)?.path().to_string();
    let routing = plan
        .routing()
        .with_context(|| format!("reading the routing of stage \"{}\"", plan.name))?;
    let mut decision = kind::decide(config.probe, &plan.name, routing, &plan.assertions, &config.url)?;
    let mut probes = assertion_probes(plan, config, &decision, &path)?;
    if config.probe == ProbeChoice::Auto && decision.kind == RequestKind::Status {
        let pilots: Vec<_> = probes
            .iter()
            .map(|(probe, weights)| (probe, versions_with_weight(weights)))
            .collect();
        if let Some(reason) = kind::confirm_attributable(&pilots).await {
            decision = ProbeDecision {
                kind: RequestKind::Prediction,
                url: url.clone(),
                reason,
            };
            probes = assertion_probes(plan, config, &decision, &path)?;
        }
    }
    tracing::info!(stage = %plan.name, requests = decision.kind.as_str(), "{}", decision.reason);
    let mut assertions = Vec::new();
    for (spec, (probe, weights)) in plan.assertions.iter().zip(probes) {
        assertions.push(check_assertion(&plan.name, spec, &probe, config, weights).await);
    }
    let all_passed = assertions.iter().all(|assertion| assertion.verdict == Verdict::Pass);
    let probe = match decision.kind {
        RequestKind::Prediction => ProbeReport::predictions(
            decision.reason,
            assertions.iter().map(|assertion| assertion.requests).sum(),
        ),
        // The sample shows the models behind proven routes predict; after a failed assertion there is no such route.
        RequestKind::Status if !all_passed => ProbeReport {
            routing_proved_by: RequestKind::Status,
            reason: format!(
                "{}; no sample of predictions, as an assertion did not pass",
                decision.reason
            ),
            predictions_checked: 0,
            sample: None,
        },
        RequestKind::Status => {
            let (sample, sent) = sample::check_sample(routing, &plan.assertions, &url, &path, config).await?;
            ProbeReport {
                routing_proved_by: RequestKind::Status,
                reason: decision.reason,
                predictions_checked: sent,
                sample: Some(sample),
            }
        }
    };
    Ok(StageReport {
        stage: plan.name.clone(),
        verdict: StageReport::combined_verdict(&assertions, &probe),
        duration_seconds: started.elapsed().as_secs_f64(),
        probe,
        assertions,
    })
}

/// One probe per assertion of `plan`, sending the requests `decision` chose with the assertion's headers, and the
/// configured weights of the route a prediction to `path` with those headers takes (for the report).
fn assertion_probes(
    plan: &StagePlan,
    config: &CheckConfig,
    decision: &ProbeDecision,
    path: &str,
) -> anyhow::Result<Vec<(Probe, BTreeMap<String, u32>)>> {
    let routing = plan.routing()?;
    let mut probes = Vec::new();
    for spec in &plan.assertions {
        let configured_weights = routing
            .route_for(path, spec.headers())?
            .map(|route| route.weights())
            .unwrap_or_default();
        let probe = Probe::new(ProbeConfig {
            url: decision.url.clone(),
            kind: decision.kind,
            body: config.body.clone(),
            headers: spec.headers().clone(),
            concurrency: config.concurrency,
            request_timeout: config.request_timeout,
            references: config.references.clone(),
        })?;
        probes.push((probe, configured_weights));
    }
    Ok(probes)
}

/// The versions a route's weights send anything to.
fn versions_with_weight(weights: &BTreeMap<String, u32>) -> std::collections::BTreeSet<String> {
    weights
        .iter()
        .filter(|(_, weight)| **weight > 0)
        .map(|(version, _)| version.clone())
        .collect()
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
            let settled = match config.settle_timeout {
                Some(window) => {
                    let reporter = reporter(config, &name, CheckPhase::WaitingForRoutes, probe);
                    settle_exact(stage, spec, version, probe, window, &reporter).await
                }
                None => Ok(()),
            };
            let outcome = match settled {
                Ok(()) => {
                    let testing = reporter(config, &name, CheckPhase::Testing, probe);
                    check_exact(version, probe, config, &testing).await
                }
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
            if let Some(window) = config.settle_timeout {
                let waiting = reporter(config, &name, CheckPhase::WaitingForRoutes, probe);
                settle_share(version, probe, window, &waiting).await;
            }
            let testing = reporter(config, &name, CheckPhase::Testing, probe);
            let outcome = check_share(version, test_config, probe, config, &testing).await;
            (expectation, name, outcome)
        }
    };
    if let Some(sink) = &config.progress {
        sink.0.finished(&name);
    }
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

/// The reporter of assertion `name` in `phase`, observing `probe`'s requests (not yet started: the phase
/// functions start it).
fn reporter<'a>(config: &'a CheckConfig, name: &'a str, phase: CheckPhase, probe: &'a Probe) -> Reporter<'a> {
    Reporter {
        sink: config.progress.as_ref().map(|sink| sink.0.as_ref()),
        name,
        phase,
        probe,
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
