//! Builder-style sample reports, for the renderers' tests and the integration tests (the `fixtures` feature, which
//! only the tests crate turns on).
//!
//! `RunReport::sample()` is a run with no stages; `.stage(…)` adds one. `StageReport::named("split-70-30")`
//! collects `AssertionReport`s built with `AssertionReport::all_to("resnet50", 300)` or
//! `AssertionReport::split(&[("resnet50", 70, 712), ("resnet101", 30, 288)])`, then adjusted with `.failed(…)`,
//! `.inconclusive(…)`, `.header(…)`, `.error(…)`. Verdicts of stages and runs are recomputed as they are added.

use std::collections::BTreeMap;

use super::{
    AssertionReport, ErrorCount, Expectation, LatencySummary, PredictionSample, ProbeReport, RequestKind, RunReport,
    StageReport, Verdict, VersionStats,
};

impl RunReport {
    /// A run against `http://127.0.0.1:31380` with no stages yet.
    pub fn sample() -> RunReport {
        RunReport {
            url: "http://127.0.0.1:31380".to_string(),
            started_at: "2026-11-29T12:00:00Z".to_string(),
            stages: Vec::new(),
            verdict: Verdict::Pass,
        }
    }

    /// Adds a stage and recomputes the run's verdict.
    #[must_use]
    pub fn stage(mut self, stage: StageReport) -> RunReport {
        self.stages.push(stage);
        self.verdict = Verdict::combine(self.stages.iter().map(|stage| stage.verdict));
        self
    }
}

impl StageReport {
    /// A stage with no assertions that took 2.5 s.
    pub fn named(stage: &str) -> StageReport {
        StageReport {
            stage: stage.to_string(),
            verdict: Verdict::Pass,
            duration_seconds: 2.5,
            probe: ProbeReport::predictions("--probe predict", 0),
            assertions: Vec::new(),
        }
    }

    /// Adds an assertion and recomputes the stage's verdict.
    #[must_use]
    pub fn assertion(mut self, assertion: AssertionReport) -> StageReport {
        self.assertions.push(assertion);
        self.verdict = StageReport::combined_verdict(&self.assertions, &self.probe);
        self
    }

    /// Proved by status requests, with a sample of predictions from each version (`(version, count)`) whose
    /// verdict is `verdict`; recomputes the stage's verdict.
    #[must_use]
    pub fn proved_by_status(mut self, sample: &[(&str, u64)], verdict: Verdict) -> StageReport {
        let versions: BTreeMap<String, u64> = sample
            .iter()
            .map(|(version, count)| (version.to_string(), *count))
            .collect();
        self.probe = ProbeReport {
            routing_proved_by: RequestKind::Status,
            reason: "--probe auto: status requests take the predictions' route".to_string(),
            predictions_checked: versions.values().sum(),
            sample: Some(PredictionSample {
                verdict,
                message: "sample predictions checked".to_string(),
                versions,
            }),
        };
        self.verdict = StageReport::combined_verdict(&self.assertions, &self.probe);
        self
    }
}

impl AssertionReport {
    /// Every one of `requests` responses came from `version`, which has all the weight: a pass.
    pub fn all_to(version: &str, requests: u64) -> AssertionReport {
        AssertionReport {
            name: format!("every response from {version}"),
            expectation: Expectation::Exact {
                version: version.to_string(),
                leak_share: 0.05,
                miss_probability: 1e-6,
            },
            verdict: Verdict::Pass,
            message: format!("{requests} of {requests} responses from {version}"),
            request_headers: BTreeMap::new(),
            requests,
            versions: vec![version_stats(version, requests, requests)],
            errors: Vec::new(),
            configured_weights: BTreeMap::from([(version.to_string(), 100)]),
        }
    }

    /// A weighted split: `(version, configured weight %, responses)` per version; the share of the first is
    /// tested. A pass.
    pub fn split(versions: &[(&str, u32, u64)]) -> AssertionReport {
        let total: u64 = versions.iter().map(|(_, _, responses)| responses).sum();
        let (tested, weight, _) = versions[0];
        AssertionReport {
            name: format!("{tested} gets {weight}% of the traffic"),
            expectation: Expectation::Share {
                version: tested.to_string(),
                share: f64::from(weight) / 100.0,
                tolerance: 0.15,
                false_failure: 1e-3,
                miss: 1e-3,
                max_requests: 5000,
            },
            verdict: Verdict::Pass,
            message: format!("share of {tested} is within 15 points of {weight}%"),
            request_headers: BTreeMap::new(),
            requests: total,
            versions: versions
                .iter()
                .map(|(version, _, responses)| version_stats(version, *responses, total))
                .collect(),
            errors: Vec::new(),
            configured_weights: versions
                .iter()
                .map(|(version, weight, _)| (version.to_string(), *weight))
                .collect(),
        }
    }

    /// Renames the assertion.
    #[must_use]
    pub fn name(mut self, name: &str) -> AssertionReport {
        self.name = name.to_string();
        self
    }

    /// Marks it failed with `message`.
    #[must_use]
    pub fn failed(mut self, message: &str) -> AssertionReport {
        self.verdict = Verdict::Fail;
        self.message = message.to_string();
        self
    }

    /// Marks it inconclusive with `message`.
    #[must_use]
    pub fn inconclusive(mut self, message: &str) -> AssertionReport {
        self.verdict = Verdict::Inconclusive;
        self.message = message.to_string();
        self
    }

    /// Adds a request header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> AssertionReport {
        self.request_headers.insert(name.to_string(), value.to_string());
        self
    }

    /// Adds `count` failed requests of `kind` (from `version`, when known); they count as requests sent.
    #[must_use]
    pub fn error(mut self, kind: &str, version: Option<&str>, count: u64) -> AssertionReport {
        self.requests += count;
        self.errors.push(ErrorCount {
            version: version.map(str::to_string),
            kind: kind.to_string(),
            count,
        });
        self
    }
}

/// Stats for `responses` of `total` with a Wilson interval and made-up but plausible latencies.
fn version_stats(version: &str, responses: u64, total: u64) -> VersionStats {
    let share = match total {
        0 => 0.0,
        total => responses as f64 / total as f64,
    };
    // ResNet101 is the slower model: about twice ResNet50's latency.
    let base = if version.contains("101") { 48.0 } else { 24.0 };
    VersionStats {
        version: version.to_string(),
        responses,
        share,
        // A normal-approximation interval: plausible for a renderer's input, and no dependency on the statistics.
        share_interval_95: {
            let half_width = match total {
                0 => 1.0,
                total => 1.96 * (share * (1.0 - share) / total as f64).sqrt(),
            };
            [(share - half_width).max(0.0), (share + half_width).min(1.0)]
        },
        latency_ms: LatencySummary {
            p50: base,
            p95: base * 1.6,
            p99: base * 2.3,
        },
    }
}
