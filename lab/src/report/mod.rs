//! Results of a lab run as values: what each stage's assertions found.
//!
//! The probe and the assertions produce these types; the renderers (human table, JSON, JUnit, HTML) only read
//! them. The JSON form is the documented, machine-readable report (schema: `assets/report.schema.json`).
//!
//! Renderers: [`render_human`] (the stdout table), [`write_json`], [`write_junit`] and [`write_html`]; the
//! writers replace their file atomically, so a reader never sees half a report.

pub mod fixtures;
mod html;
mod human;
mod json;
mod junit;

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
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The traffic went where the stage says.
    Pass,
    /// The traffic demonstrably did not go where the stage says (or too many requests failed).
    Fail,
    /// The evidence allowed neither conclusion within the request cap: never counted as a pass.
    Inconclusive,
}

impl Verdict {
    /// The verdict of several: any fail fails, else any inconclusive is inconclusive, else pass.
    pub fn combine(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
        let mut combined = Verdict::Pass;
        for verdict in verdicts {
            combined = match (combined, verdict) {
                (Verdict::Fail, _) | (_, Verdict::Fail) => Verdict::Fail,
                (Verdict::Inconclusive, _) | (_, Verdict::Inconclusive) => Verdict::Inconclusive,
                _ => Verdict::Pass,
            };
        }
        combined
    }

    /// The lowercase word for the verdict.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
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

/// One stage: its assertions and their combined verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageReport {
    /// The stage name, e.g. `split-70-30`.
    pub stage: String,
    /// The combined verdict of the assertions.
    pub verdict: Verdict,
    /// Wall time of the stage's checks, in seconds.
    pub duration_seconds: f64,
    /// The assertions, in order.
    pub assertions: Vec<AssertionReport>,
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
        assert_eq!(Verdict::combine([]), Verdict::Pass);
    }
}
