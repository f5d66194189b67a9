//! Waiting until the gateway routes as the stage says before an assertion judges: a bounded poll of the stage's own
//! requests, never a fixed sleep. Failed requests in this window are propagation, not a verdict.

use std::time::Duration;

use tokio::time::Instant;

use super::progress::Reporter;
use super::tally::Tally;
use super::{SETTLE_MIN_SPAN, SETTLE_STREAK, describe_headers};
use crate::definition::stages::AssertionSpec;
use crate::traffic::probe::{Flow, Outcome, Probe, RunEnd};

/// The pause between settle probes after a response that does not settle it yet.
pub(super) const SETTLE_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// A share assertion settles once it has seen the versions it expects; failing that, it is judged anyway once it
/// has had this many answers and [`SHARE_SETTLE_GIVE_UP`] has passed (its split may really be missing a version).
const SHARE_SETTLE_RESPONSES: u32 = 50;
/// The longest istiod holds a push back while changes keep coming (`PILOT_DEBOUNCE_MAX`, 10 s; istio/istio 1.12
/// `pilot/pkg/features/pilot.go`): a version that has not answered by then is judged missing.
const SHARE_SETTLE_GIVE_UP: Duration = Duration::from_secs(10);

/// Probes until [`SETTLE_STREAK`] consecutive responses come from `expected` and the phase has lasted
/// [`SETTLE_MIN_SPAN`] (every response since the last mismatch matched), or fails at the settle timeout with a
/// message naming the stage, the expectation and what was seen (and the settle requests' tally for the report).
/// Failed requests — a `503 no healthy upstream` while the gateway has no endpoint yet for a pod that just became
/// ready — are propagation: they only restart the streak, and count against no verdict.
pub(super) async fn settle_exact(
    stage: &str,
    spec: &AssertionSpec,
    expected: &str,
    probe: &Probe,
    window: Duration,
    reporter: &Reporter<'_>,
) -> Result<(), (String, Tally)> {
    reporter.start();
    let started = Instant::now();
    let deadline = started + window;
    // A settle timeout shorter than twice the span (the tests' fast failures) leaves room for the streak.
    let min_span = SETTLE_MIN_SPAN.min(window / 2);
    let mut streak = 0;
    let mut tally = Tally::default();
    // Responses in launch order, `concurrency` at a time; the deadline bounds it, the streak held long enough ends it.
    let summary = probe
        .run(u64::MAX, deadline, |observation| {
            tally.add(&observation);
            reporter.observed(&tally, expected, &observation);
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
        window.as_secs_f64(),
        describe_headers(spec)
    );
    Err((message, tally))
}

/// Probes until `version` and another version have both answered (under the previous stage's routes one of them
/// may never answer; a share assertion's share is strictly between 0 and 1, so the split has both), or, failing
/// that, until [`SHARE_SETTLE_RESPONSES`] answers and [`SHARE_SETTLE_GIVE_UP`] have passed, or the settle timeout.
/// It never fails: the share test judges. Failed requests (a `503 no healthy upstream` while the gateway waits for a
/// new pod's endpoint) are propagation: they are not answers, count against nothing, and pause the poll. Each
/// request is shown to `reporter`'s sink, not counted.
pub(super) async fn settle_share(version: &str, probe: &Probe, window: Duration, reporter: &Reporter<'_>) {
    reporter.start();
    let started = Instant::now();
    let deadline = started + window;
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
        reporter.watched(&observation);
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
