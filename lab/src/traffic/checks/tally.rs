//! What one assertion's requests found, aggregated: counts, latencies and errors by version and kind, and the error
//! budget they are held to.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::percent;
use crate::report::{ErrorCount, LatencySummary, VersionStats, error_label};
use crate::traffic::probe::{ErrorKind, Flow, Observation, Outcome};
use crate::traffic::stats;

/// The failures allowed among `required + budget` requests: the largest `budget` with
/// `budget / (required + budget) <= max_error_rate`.
pub(super) fn error_budget(required: u64, max_error_rate: f64) -> u64 {
    let rate = max_error_rate.clamp(0.0, 0.99);
    (rate * required as f64 / (1.0 - rate) + 1e-9).floor() as u64
}

/// What the requests of one assertion found, aggregated (no per-request records but latencies).
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) requests: u64,
    latencies_ms: BTreeMap<String, Vec<f64>>,
    errors: BTreeMap<(Option<String>, ErrorKind), u64>,
    pub(super) errors_total: u64,
}

impl Tally {
    pub(super) fn add(&mut self, observation: &Observation) {
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

    /// After a failed request: go on while the failures are within `error_budget`, else stop (the error rate has
    /// failed the assertion already).
    pub(super) fn flow_within(&self, error_budget: u64) -> Flow {
        if self.errors_total > error_budget {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    /// The share of the answers so far that came from `version`; `None` before any answer.
    pub(super) fn share_of(&self, version: &str) -> Option<f64> {
        let answered = self.answered();
        (answered > 0).then(|| self.latencies_ms.get(version).map_or(0, Vec::len) as f64 / answered as f64)
    }

    /// Responses attributed to a version (every request that did not fail).
    pub(super) fn answered(&self) -> u64 {
        self.requests - self.errors_total
    }

    /// Requests by what they found — `resnet50`, or the error kind with the version when known — for messages.
    pub(super) fn outcome_counts(&self) -> BTreeMap<String, u64> {
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
    pub(super) fn error_rate_failure(&self, max_error_rate: f64) -> Option<String> {
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

    pub(super) fn version_stats(&self) -> Vec<VersionStats> {
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

    pub(super) fn error_counts(&self) -> Vec<ErrorCount> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
