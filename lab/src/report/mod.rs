//! Results of a lab run as values: what each stage's assertions found.
//!
//! The probe and the assertions produce these types; the renderers (human table, JSON, JUnit, HTML) only read
//! them. The JSON form is the documented, machine-readable report (schema: `assets/report.schema.json`).
//!
//! Renderers: [`render_human`] (the stdout table), [`write_json`], [`write_junit`] and [`write_html`]; the
//! writers replace their file atomically, so a reader never sees half a report.

pub(crate) mod chart;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
mod html;
mod human;
mod json;
mod junit;
pub mod live;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

pub use html::{render_html, write_html};
pub use human::render_human;
pub use json::{render_json, write_json};
pub use junit::{render_junit, write_junit};

/// The outcome of an assertion, a stage or a run.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The traffic went where the stage says.
    Pass,
    /// The traffic demonstrably did not go where the stage says (or too many requests failed).
    Fail,
    /// The evidence allowed neither conclusion within the request cap: never counted as a pass.
    Inconclusive,
    /// Nothing was asserted (no assertion ran, e.g. `--no-assert`): says nothing about the traffic, so never
    /// counted as a pass either.
    NotAsserted,
}

impl Verdict {
    /// The verdict of several: any fail fails, else any inconclusive is inconclusive, else anything not asserted
    /// is not asserted, else pass. No verdicts at all combine to [`Verdict::NotAsserted`]: a run that asserted
    /// nothing did not pass.
    pub fn combine(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
        let mut combined: Option<Verdict> = None;
        for verdict in verdicts {
            combined = Some(match (combined.unwrap_or(Verdict::Pass), verdict) {
                (Verdict::Fail, _) | (_, Verdict::Fail) => Verdict::Fail,
                (Verdict::Inconclusive, _) | (_, Verdict::Inconclusive) => Verdict::Inconclusive,
                (Verdict::NotAsserted, _) | (_, Verdict::NotAsserted) => Verdict::NotAsserted,
                (Verdict::Pass, Verdict::Pass) => Verdict::Pass,
            });
        }
        combined.unwrap_or(Verdict::NotAsserted)
    }

    /// The lowercase word for the verdict.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotAsserted => "not_asserted",
        }
    }
}

/// A whole run: one or more stages checked against one ingress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// The ingress URL the requests went to.
    pub url: String,
    /// When the run started, RFC 3339 UTC.
    pub started_at: String,
    /// The stages, in the order they ran.
    pub stages: Vec<StageReport>,
    /// The combined verdict of all stages.
    pub verdict: Verdict,
}

impl RunReport {
    /// The report of a run against `url` that started at `started`, with its stages' combined verdict.
    pub fn new(url: String, started: std::time::SystemTime, stages: Vec<StageReport>) -> RunReport {
        RunReport {
            url,
            started_at: rfc3339_utc(started),
            verdict: Verdict::combine(stages.iter().map(|stage| stage.verdict)),
            stages,
        }
    }
}

/// `time` as RFC 3339 UTC with seconds, e.g. `2026-11-29T12:30:00Z` (for [`RunReport::started_at`]).
fn rfc3339_utc(time: std::time::SystemTime) -> String {
    let seconds = time
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0);
    let (days, of_day) = ((seconds / 86_400) as i64, seconds % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// One stage: its assertions and their combined verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageReport {
    /// The stage name, e.g. `split-70-30`.
    pub stage: String,
    /// The combined verdict of the assertions (and of the sample of predictions, when there is one).
    pub verdict: Verdict,
    /// Wall time of the stage's checks, in seconds.
    pub duration_seconds: f64,
    /// Which requests proved the routing, and the predictions checked.
    pub probe: ProbeReport,
    /// The assertions, in order.
    pub assertions: Vec<AssertionReport>,
}

/// The kind of request the assertions sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// TF Serving's model-status request (`GET /v1/models/NAME`): no inference.
    Status,
    /// A prediction (`POST …:predict` with the payload).
    Prediction,
}

impl RequestKind {
    /// `status` or `prediction`.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Status => "status",
            RequestKind::Prediction => "prediction",
        }
    }
}

/// How a stage's routing was proved: by which requests, why those, and how many real predictions were checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The requests the assertions sent.
    pub routing_proved_by: RequestKind,
    /// Why that kind, e.g. `--probe auto: every assertion's route takes status requests as it takes predictions`.
    pub reason: String,
    /// Predictions sent and judged in the stage: every assertion request when predictions proved the routing;
    /// the sample's when status requests did.
    pub predictions_checked: u64,
    /// With status requests: the real predictions sent as a sample per version (attributed, 1000 scores each).
    pub sample: Option<PredictionSample>,
}

/// The real predictions sent beside status requests: a few from each version the routes send to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionSample {
    /// Pass when every version gave its predictions, each attributed and with 1000 scores.
    pub verdict: Verdict,
    /// One line: what was checked, or what went wrong.
    pub message: String,
    /// Predictions checked (attributed, with 1000 scores) by version.
    pub versions: BTreeMap<String, u64>,
}

impl StageReport {
    /// The verdict of `assertions` and of the `probe`'s sample of predictions together.
    pub fn combined_verdict(assertions: &[AssertionReport], probe: &ProbeReport) -> Verdict {
        let sample = probe.sample.as_ref().map(|sample| sample.verdict);
        Verdict::combine(assertions.iter().map(|assertion| assertion.verdict).chain(sample))
    }
}

impl ProbeReport {
    /// The report of a stage proved by predictions, `predictions_checked` of them, for `reason`.
    pub fn predictions(reason: impl Into<String>, predictions_checked: u64) -> ProbeReport {
        ProbeReport {
            routing_proved_by: RequestKind::Prediction,
            reason: reason.into(),
            predictions_checked,
            sample: None,
        }
    }

    /// One line for people: `routing tested with status requests; 7 predictions checked (resnet101 ×3, resnet50 ×4,
    /// 1000 scores each)`.
    pub fn summary(&self) -> String {
        let kind = match self.routing_proved_by {
            RequestKind::Status => "status requests",
            RequestKind::Prediction => "predictions",
        };
        let count = self.predictions_checked;
        let noun = if count == 1 { "prediction" } else { "predictions" };
        let by_version = match &self.sample {
            Some(sample) if !sample.versions.is_empty() => {
                let parts: Vec<String> = sample
                    .versions
                    .iter()
                    .map(|(version, count)| format!("{version} ×{count}"))
                    .collect();
                format!(" ({}, 1000 scores each)", parts.join(", "))
            }
            _ => String::new(),
        };
        format!("routing tested with {kind}; {count} {noun} checked{by_version}")
    }
}

/// One assertion: what was expected, what the requests showed, and the verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssertionReport {
    /// A short name, e.g. `without header: every response from resnet50`.
    pub name: String,
    /// What the assertion expects.
    pub expectation: Expectation,
    /// The verdict.
    pub verdict: Verdict,
    /// One line explaining the verdict (for a failure: the version and the kind of error).
    pub message: String,
    /// Request headers sent with every request of this assertion.
    pub request_headers: BTreeMap<String, String>,
    /// Requests sent.
    pub requests: u64,
    /// Per-version results (responses attributed to each version).
    pub versions: Vec<VersionStats>,
    /// Errors by kind (and version, when known).
    pub errors: Vec<ErrorCount>,
    /// The weights the routing is configured with, in percent by version (for the chart).
    pub configured_weights: BTreeMap<String, u32>,
}

/// What an assertion expects.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Expectation {
    /// Every response comes from `version`; enough requests to see a leak of `leak_share` with probability
    /// `1 - miss_probability`.
    Exact {
        /// The version every response must come from.
        version: String,
        /// The smallest leak the request count is sized to catch (e.g. 0.05).
        leak_share: f64,
        /// The probability of missing such a leak (e.g. 1e-6).
        miss_probability: f64,
    },
    /// The share of `version` is `share`, tested against `|share - true| >= tolerance`.
    Share {
        /// The version whose share is tested.
        version: String,
        /// The configured share (0–1).
        share: f64,
        /// The smallest deviation that must be caught (e.g. 0.15).
        tolerance: f64,
        /// Probability of failing a correct split.
        false_failure: f64,
        /// Probability of passing a split `tolerance` off.
        miss: f64,
        /// The request cap; at the cap the verdict is inconclusive.
        max_requests: u64,
    },
}

/// What one version answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionStats {
    /// The version (`resnet50`, `resnet101`).
    pub version: String,
    /// Successful responses attributed to it.
    pub responses: u64,
    /// Its share of attributed responses (0–1).
    pub share: f64,
    /// A 95% confidence interval for the share (Wilson score), `[low, high]`.
    pub share_interval_95: [f64; 2],
    /// Latency percentiles of its successful responses.
    pub latency_ms: LatencySummary,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// A count of failed requests of one kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorCount {
    /// The version that failed, when the response said (e.g. a 503 with `x-model-version`).
    pub version: Option<String>,
    /// `timeout`, `connection`, `http_503`, `http_4xx`, `unattributed`, …
    pub kind: String,
    /// How many.
    pub count: u64,
}

impl ErrorCount {
    /// `http_503 from resnet101`, or the kind alone when the version is unknown.
    pub fn label(&self) -> String {
        error_label(&self.kind, self.version.as_deref())
    }
}

/// An interval of shares as every output writes it: `[52.9%, 59.1%]`.
pub fn interval_text([low, high]: [f64; 2]) -> String {
    format!("[{:.1}%, {:.1}%]", low * 100.0, high * 100.0)
}

/// `KIND from VERSION`, or `KIND` when the version is unknown: how reports and messages name an error.
pub fn error_label(kind: &str, version: Option<&str>) -> String {
    match version {
        Some(version) => format!("{kind} from {version}"),
        None => kind.to_string(),
    }
}

/// Writes `contents` to `path` atomically (`what` names it in errors, e.g. "JSON report").
fn write_atomically(path: &Path, contents: &[u8], what: &str) -> anyhow::Result<()> {
    // A temporary file is private (0600); a report is for everyone who can read the directory.
    crate::fs_atomic::write_atomically(path, contents, Some(0o644))
        .with_context(|| format!("writing the {what} \"{}\"", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = |seconds: u64| rfc3339_utc(std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_041_845), "2026-11-30T12:30:45Z");
    }

    #[test]
    fn verdicts_combine_fail_over_inconclusive_over_pass() {
        assert_eq!(Verdict::combine([Verdict::Pass, Verdict::Pass]), Verdict::Pass);
        assert_eq!(
            Verdict::combine([Verdict::Pass, Verdict::Inconclusive]),
            Verdict::Inconclusive
        );
        assert_eq!(
            Verdict::combine([Verdict::Inconclusive, Verdict::Fail, Verdict::Pass]),
            Verdict::Fail
        );
        assert_eq!(
            Verdict::combine([Verdict::Pass, Verdict::NotAsserted]),
            Verdict::NotAsserted
        );
        assert_eq!(
            Verdict::combine([Verdict::NotAsserted, Verdict::Inconclusive]),
            Verdict::Inconclusive
        );
        // Nothing asserted is not a pass (a run that asserted nothing once exited 0 saying "the lab is up").
        assert_eq!(Verdict::combine([]), Verdict::NotAsserted);
        assert_eq!(
            serde_json::to_string(&Verdict::NotAsserted).unwrap(),
            "\"not_asserted\""
        );
    }
}
