//! A `share` assertion: the sequential [`ShareTest`] fed in launch order, no more requests once it decides, and
//! inconclusive (never a pass) at its cap or the deadline.

use tokio::time::Instant;

use super::progress::Reporter;
use super::tally::{Tally, error_budget};
use super::{CheckConfig, percent};
use crate::report::{Verdict, interval_text};
use crate::traffic::probe::{Flow, Outcome, Probe, RunEnd};
use crate::traffic::stats::{self, ShareTest, ShareTestConfig};

/// Runs the share test of `version` under `test_config`: its verdict, message and the requests' tally.
pub(super) async fn check_share(
    version: &str,
    test_config: ShareTestConfig,
    probe: &Probe,
    config: &CheckConfig,
    reporter: &Reporter<'_>,
) -> (Verdict, String, Tally) {
    reporter.start();
    let mut test = ShareTest::new(test_config);
    let error_budget = error_budget(test_config.max_requests, config.max_error_rate);
    let mut tally = Tally::default();
    let deadline = Instant::now() + config.assertion_timeout;
    let summary = probe
        .run(test_config.max_requests + error_budget, deadline, |observation| {
            tally.add(&observation);
            reporter.observed(&tally, version, &observation);
            match &observation.outcome {
                Outcome::Answered { version: answered } => match test.observe(answered == version) {
                    Some(_) => Flow::Stop,
                    None => Flow::Continue,
                },
                Outcome::Failed { .. } => tally.flow_within(error_budget),
            }
        })
        .await;
    let (hits, trials) = test.counts();
    let (low, high) = stats::wilson_interval(hits, trials, 1.96);
    let observed = match trials {
        0 => "no attributed responses".to_string(),
        _ => format!(
            "{version} answered {hits} of {trials} ({}, 95% interval {})",
            percent(hits as f64 / trials as f64),
            interval_text([low, high])
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
