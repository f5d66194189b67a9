//! What an assertion is doing while it runs: on a terminal one live status line per assertion (its phase, requests
//! so far, the share so far, errors), cleared when the assertion ends, so that only the results remain; with `-v`,
//! one log line per phase; off a terminal, nothing. A [`CheckProgress`] may also watch every request an assertion
//! makes ([`CheckProgress::observed`]; `lab tour` draws the live traffic view from them): it only watches, the
//! statistics are the checks' own.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::RequestKind;
use crate::traffic::probe::{Observation, Probe};

/// The phase an assertion is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckPhase {
    /// After an apply: waiting until the gateway routes as the stage says.
    WaitingForRoutes,
    /// Sending the requests that decide.
    Testing,
}

impl CheckPhase {
    /// `waiting for the routes to take effect` or `testing`.
    pub fn words(self) -> &'static str {
        match self {
            CheckPhase::WaitingForRoutes => "waiting for the routes to take effect",
            CheckPhase::Testing => "testing",
        }
    }
}

/// The counts of the current phase.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseCounts {
    /// Requests observed.
    pub requests: u64,
    /// The version the assertion is about and its share of the answers so far.
    pub share: Option<(String, f64)>,
    /// Failed requests.
    pub errors: u64,
}

/// What an assertion's requests are: where they go, with which headers, and of which kind.
#[derive(Debug, Clone, Copy)]
pub struct AssertionRequests<'a> {
    /// The URL every request goes to.
    pub url: &'a str,
    /// The headers every request carries (the assertion's).
    pub headers: &'a BTreeMap<String, String>,
    /// TF Serving's status requests or predictions.
    pub kind: RequestKind,
}

/// Receives an assertion's progress (see [`TerminalProgress`] for the one the CLI uses).
pub trait CheckProgress: Send + Sync {
    /// Assertion `name` enters `phase`.
    fn phase(&self, name: &str, phase: CheckPhase);
    /// The counts so far (called every few observations).
    fn counts(&self, name: &str, phase: CheckPhase, counts: &PhaseCounts);
    /// One request of assertion `name` in `phase` completed: called for every request the assertion makes (those
    /// that wait for the routes and those that decide), in the order the assertion counts them, before it judges
    /// the next. A view of the traffic watches here; the default ignores it.
    fn observed(&self, name: &str, phase: CheckPhase, requests: &AssertionRequests<'_>, observation: &Observation) {
        let _ = (name, phase, requests, observation);
    }
    /// The assertion ended.
    fn finished(&self, name: &str);
}

/// A shared [`CheckProgress`], as [`super::CheckConfig`] carries it.
#[derive(Clone)]
pub struct ProgressSink(pub Arc<dyn CheckProgress>);

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressSink")
    }
}

/// One spinner line on stderr per assertion while it runs, when stderr is a terminal.
pub struct TerminalProgress {
    bar: ProgressBar,
}

impl TerminalProgress {
    /// A status line on stderr, or `None` when stderr is not a terminal (then nothing but the results is printed).
    pub fn on_terminal() -> Option<ProgressSink> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid progress template"));
        Some(ProgressSink(Arc::new(TerminalProgress { bar })))
    }
}

impl CheckProgress for TerminalProgress {
    fn phase(&self, name: &str, phase: CheckPhase) {
        self.bar.reset();
        self.bar.enable_steady_tick(Duration::from_millis(120));
        self.bar.set_message(format!("{name}: {}…", phase.words()));
    }

    fn counts(&self, name: &str, phase: CheckPhase, counts: &PhaseCounts) {
        let share = counts
            .share
            .as_ref()
            .map(|(version, share)| format!(", {version} {:.1}%", share * 100.0))
            .unwrap_or_default();
        self.bar.set_message(format!(
            "{name}: {} — {} requests{share}, {} errors",
            phase.words(),
            counts.requests,
            counts.errors
        ));
    }

    fn finished(&self, _name: &str) {
        self.bar.finish_and_clear();
    }
}

/// What the checks hand their observers: where to report, for which assertion and phase, and the probe whose
/// requests they observe. Every observation goes to [`CheckProgress::observed`]; counts go out every
/// [`Reporter::EVERY`] observations, so a fast probe does not redraw a line per request.
pub(super) struct Reporter<'a> {
    pub(super) sink: Option<&'a dyn CheckProgress>,
    pub(super) name: &'a str,
    pub(super) phase: CheckPhase,
    pub(super) probe: &'a Probe,
}

impl Reporter<'_> {
    const EVERY: u64 = 16;

    /// Enters the phase: a log line (shown with `-v`) and the status line.
    pub(super) fn start(&self) {
        tracing::info!(assertion = self.name, "{}", self.phase.words());
        if let Some(sink) = self.sink {
            sink.phase(self.name, self.phase);
        }
    }

    /// After an observation that is not tallied (the share assertion's wait for the routes): shown, not counted.
    pub(super) fn watched(&self, observation: &Observation) {
        let Some(sink) = self.sink else { return };
        let config = self.probe.config();
        let requests = AssertionRequests {
            url: &config.url,
            headers: &config.headers,
            kind: config.kind,
        };
        sink.observed(self.name, self.phase, &requests, observation);
    }

    /// After `observation`, added to `tally`: shown, and the counts now and then.
    pub(super) fn observed(&self, tally: &super::tally::Tally, version: &str, observation: &Observation) {
        self.watched(observation);
        let Some(sink) = self.sink else { return };
        if !tally.requests.is_multiple_of(Self::EVERY) {
            return;
        }
        let counts = PhaseCounts {
            requests: tally.requests,
            share: tally.share_of(version).map(|share| (version.to_string(), share)),
            errors: tally.errors_total,
        };
        sink.counts(self.name, self.phase, &counts);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::definition::stages::AssertionSpec;
    use crate::report::Verdict;
    use crate::traffic::checks::{CheckConfig, SETTLE_STREAK, check_assertion};
    use crate::traffic::probe::{Outcome, SimulatedExchange, SimulatedNetwork};

    /// Three answers in ten from resnet101 (`percent` = 30), in a fixed pattern, the rest from resnet50.
    struct Pattern {
        percent: u64,
        sent: AtomicU64,
    }

    impl SimulatedNetwork for Pattern {
        fn exchange(&self) -> SimulatedExchange {
            let n = self.sent.fetch_add(1, Ordering::SeqCst);
            let version = if n % 100 < self.percent {
                "resnet101"
            } else {
                "resnet50"
            };
            SimulatedExchange {
                latency: Duration::from_micros(100),
                status: 200,
                version: Some(version.to_string()),
            }
        }
    }

    /// What a sink saw: each observation's phase and version, and the assertions that finished.
    #[derive(Default)]
    struct Recorder {
        seen: Mutex<Vec<(CheckPhase, String)>>,
        finished: Mutex<Vec<String>>,
    }

    impl CheckProgress for Recorder {
        fn phase(&self, _: &str, _: CheckPhase) {}
        fn counts(&self, _: &str, _: CheckPhase, _: &PhaseCounts) {}
        fn observed(&self, _: &str, phase: CheckPhase, requests: &AssertionRequests<'_>, observation: &Observation) {
            assert_eq!(requests.url, "simulated:");
            let version = match &observation.outcome {
                Outcome::Answered { version } => version.clone(),
                Outcome::Failed { kind, .. } => kind.as_str().to_string(),
            };
            self.seen.lock().unwrap().push((phase, version));
        }
        fn finished(&self, name: &str) {
            self.finished.lock().unwrap().push(name.to_string());
        }
    }

    /// Runs `spec` on the pattern with a recorder; returns the report and what the recorder saw.
    async fn watched(spec: AssertionSpec, percent: u64) -> (crate::report::AssertionReport, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::default());
        let mut config = CheckConfig::new("http://simulated", bytes::Bytes::new());
        // A short propagation window keeps the exact settle's least span (half of it) short in real time.
        config.settle_timeout = Some(Duration::from_secs(2));
        config.progress = Some(ProgressSink(recorder.clone()));
        let network = Arc::new(Pattern {
            percent,
            sent: AtomicU64::new(0),
        });
        let probe = Probe::simulated(8, Duration::from_secs(5), network);
        let report = check_assertion("split-70-30", &spec, &probe, &config, BTreeMap::new()).await;
        (report, recorder)
    }

    fn count(seen: &[(CheckPhase, String)], phase: CheckPhase, version: Option<&str>) -> u64 {
        seen.iter()
            .filter(|(at, answered)| *at == phase && version.is_none_or(|version| answered == version))
            .count() as u64
    }

    #[tokio::test]
    async fn the_sink_sees_every_request_a_share_assertion_makes_and_the_tally_is_the_same() {
        let spec = AssertionSpec::Share {
            version: "resnet101".into(),
            share: 0.3,
            tolerance: 0.15,
            headers: BTreeMap::new(),
        };
        let (report, recorder) = watched(spec, 30).await;
        assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
        let seen = recorder.seen.lock().unwrap();
        // The wait for the routes ends once both versions answered: its requests are shown, not counted.
        assert!(count(&seen, CheckPhase::WaitingForRoutes, None) >= 2, "{seen:?}");
        assert_eq!(count(&seen, CheckPhase::Testing, None), report.requests);
        let resnet101 = report
            .versions
            .iter()
            .find(|stats| stats.version == "resnet101")
            .unwrap();
        assert_eq!(
            count(&seen, CheckPhase::Testing, Some("resnet101")),
            resnet101.responses
        );
        assert_eq!(
            recorder.finished.lock().unwrap().as_slice(),
            std::slice::from_ref(&report.name)
        );
    }

    #[tokio::test]
    async fn the_sink_sees_an_exact_assertion_settle_and_test() {
        let spec = AssertionSpec::Exact {
            version: "resnet50".into(),
            headers: BTreeMap::new(),
        };
        let (report, recorder) = watched(spec, 0).await;
        assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
        let seen = recorder.seen.lock().unwrap();
        assert!(count(&seen, CheckPhase::WaitingForRoutes, Some("resnet50")) >= u64::from(SETTLE_STREAK));
        assert_eq!(count(&seen, CheckPhase::Testing, None), report.requests);
    }
}
