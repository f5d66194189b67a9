//! An `exact` assertion: every response from one version. One response from another version (or one that cannot be
//! attributed) fails at once; otherwise enough requests that a leak of [`LEAK_SHARE`] would be seen with probability
//! at least 1 − [`MISS_PROBABILITY`].

use tokio::time::Instant;

use super::progress::Reporter;
use super::tally::{Tally, error_budget};
use super::{CheckConfig, LEAK_SHARE, MISS_PROBABILITY};
use crate::report::Verdict;
use crate::traffic::probe::{ErrorKind, Flow, Outcome, Probe, RunEnd};
use crate::traffic::stats;

/// Runs the assertion that every response comes from `expected`: its verdict, message and the requests' tally.
pub(super) async fn check_exact(
    expected: &str,
    probe: &Probe,
    config: &CheckConfig,
    reporter: &Reporter<'_>,
) -> (Verdict, String, Tally) {
    reporter.start();
    let required = stats::exact_sample_size(LEAK_SHARE, MISS_PROBABILITY);
    let error_budget = error_budget(required, config.max_error_rate);
    let mut tally = Tally::default();
    let mut wrong: Option<String> = None;
    let deadline = Instant::now() + config.assertion_timeout;
    let summary = probe
        .run(required + error_budget, deadline, |observation| {
            tally.add(&observation);
            reporter.observed(&tally, expected, &observation);
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
                Outcome::Failed { .. } => tally.flow_within(error_budget),
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
