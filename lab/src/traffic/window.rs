//! A sliding window over the latest responses, for `lab watch`: each version's share of the last N answers, their
//! latency percentiles, errors by kind, and the request rate over the last seconds.
//!
//! This is a view, not a test: shares are counted in arrival order over a window of the latest answers, which under
//! steady paced traffic follows the true split (a slower version's answers arrive later, not less often); the stage
//! assertions (`traffic::checks`) are what carry stated error rates.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::report::RequestKind;
use crate::report::live::{TrafficSnapshot, VersionWindow};
use crate::traffic::probe::{Observation, Outcome};

/// The default number of latest responses the shares are computed over.
pub const DEFAULT_WINDOW: usize = 200;

/// The span the request rate is measured over.
pub const RATE_SPAN: Duration = Duration::from_secs(5);

/// The latest responses and when requests completed.
#[derive(Debug)]
pub struct TrafficWindow {
    capacity: usize,
    started: Instant,
    latest: VecDeque<Observation>,
    completions: VecDeque<Instant>,
    total: u64,
}

impl TrafficWindow {
    /// A window over the latest `capacity` responses (at least 1), started at `started`.
    pub fn new(capacity: usize, started: Instant) -> TrafficWindow {
        TrafficWindow {
            capacity: capacity.max(1),
            started,
            latest: VecDeque::new(),
            completions: VecDeque::new(),
            total: 0,
        }
    }

    /// Records one response (or failure) that completed at `at`.
    pub fn record(&mut self, observation: Observation, at: Instant) {
        self.total += 1;
        if self.latest.len() == self.capacity {
            self.latest.pop_front();
        }
        self.latest.push_back(observation);
        self.completions.push_back(at);
        while self
            .completions
            .front()
            .is_some_and(|first| at.duration_since(*first) > RATE_SPAN)
        {
            self.completions.pop_front();
        }
    }

    /// What the window holds at `now`, for the URL, headers and kind of the requests.
    pub fn snapshot(
        &self,
        now: Instant,
        url: &str,
        headers: &BTreeMap<String, String>,
        request_kind: RequestKind,
    ) -> TrafficSnapshot {
        let mut by_version: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
        let mut all_latencies = Vec::new();
        for observation in &self.latest {
            match &observation.outcome {
                Outcome::Answered { version } => {
                    by_version.entry(version.clone()).or_default().push(observation.latency);
                    all_latencies.push(observation.latency);
                }
                Outcome::Failed { kind, .. } => *errors.entry(kind.as_str().to_string()).or_default() += 1,
            }
        }
        let answered: usize = by_version.values().map(Vec::len).sum();
        let versions = by_version
            .into_iter()
            .map(|(version, mut latencies)| {
                latencies.sort();
                let window = VersionWindow {
                    share: latencies.len() as f64 / answered as f64,
                    responses: latencies.len() as u64,
                    p50_ms: percentile_ms(&latencies, 0.50),
                    p95_ms: percentile_ms(&latencies, 0.95),
                };
                (version, window)
            })
            .collect();
        all_latencies.sort();
        let elapsed = now.duration_since(self.started);
        let recent = self
            .completions
            .iter()
            .filter(|at| now.duration_since(**at) <= RATE_SPAN)
            .count();
        let span = elapsed.min(RATE_SPAN).as_secs_f64();
        TrafficSnapshot {
            url: url.to_string(),
            request_kind,
            headers: headers.clone(),
            elapsed_s: elapsed.as_secs_f64(),
            requests: self.total,
            window: self.latest.len() as u64,
            window_capacity: self.capacity as u64,
            rate_per_s: if span > 0.0 { recent as f64 / span } else { 0.0 },
            p50_ms: percentile_ms(&all_latencies, 0.50),
            p95_ms: percentile_ms(&all_latencies, 0.95),
            versions,
            errors,
        }
    }
}

/// The `q` percentile of sorted latencies in milliseconds (nearest rank); `None` for none.
fn percentile_ms(sorted: &[Duration], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1].as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::probe::ErrorKind;

    fn answered(version: &str, millis: u64) -> Observation {
        Observation {
            latency: Duration::from_millis(millis),
            status: Some(200),
            outcome: Outcome::Answered {
                version: version.to_string(),
            },
        }
    }

    #[test]
    fn shares_cover_only_the_latest_answers() {
        let start = Instant::now();
        let mut window = TrafficWindow::new(10, start);
        for _ in 0..10 {
            window.record(answered("resnet50", 10), start);
        }
        for _ in 0..7 {
            window.record(answered("resnet101", 30), start);
        }
        let snapshot = window.snapshot(start, "http://x", &BTreeMap::new(), RequestKind::Prediction);
        assert_eq!(snapshot.window, 10);
        assert_eq!(snapshot.requests, 17);
        assert!((snapshot.versions["resnet101"].share - 0.7).abs() < 1e-9);
        assert!((snapshot.versions["resnet50"].share - 0.3).abs() < 1e-9);
        assert_eq!(snapshot.versions["resnet101"].p50_ms, Some(30.0));
    }

    #[test]
    fn errors_count_by_kind_and_not_in_the_shares() {
        let start = Instant::now();
        let mut window = TrafficWindow::new(100, start);
        window.record(answered("resnet50", 10), start);
        window.record(
            Observation {
                latency: Duration::from_millis(1),
                status: Some(503),
                outcome: Outcome::Failed {
                    version: None,
                    kind: ErrorKind::Http503,
                },
            },
            start,
        );
        let snapshot = window.snapshot(start, "http://x", &BTreeMap::new(), RequestKind::Prediction);
        assert_eq!(snapshot.errors["http_503"], 1);
        assert_eq!(snapshot.versions["resnet50"].share, 1.0);
    }

    #[test]
    fn the_rate_counts_the_last_seconds() {
        let start = Instant::now();
        let mut window = TrafficWindow::new(100, start);
        for tenth in 0..100u64 {
            window.record(answered("resnet50", 10), start + Duration::from_millis(100 * tenth));
        }
        let now = start + Duration::from_secs(10);
        let snapshot = window.snapshot(now, "http://x", &BTreeMap::new(), RequestKind::Prediction);
        // The last 5 s held 50 completions (5.0 s … 9.9 s), one every 100 ms.
        assert!((snapshot.rate_per_s - 10.0).abs() < 0.5, "{}", snapshot.rate_per_s);
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&sorted, 0.5), Some(10.0));
        assert_eq!(percentile_ms(&sorted, 0.95), Some(19.0));
        assert_eq!(percentile_ms(&[], 0.5), None);
    }
}
