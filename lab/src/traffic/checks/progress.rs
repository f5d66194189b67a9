//! What an assertion is doing while it runs: on a terminal one live status line per assertion (its phase, requests
//! so far, the share so far, errors), cleared when the assertion ends, so that only the results remain; with `-v`,
//! one log line per phase; off a terminal, nothing.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

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

/// Receives an assertion's progress (see [`TerminalProgress`] for the one the CLI uses).
pub trait CheckProgress: Send + Sync {
    /// Assertion `name` enters `phase`.
    fn phase(&self, name: &str, phase: CheckPhase);
    /// The counts so far (called every few observations).
    fn counts(&self, name: &str, phase: CheckPhase, counts: &PhaseCounts);
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

/// What the checks hand their observers: where to report, for which assertion and phase. Counts go out every
/// [`Reporter::EVERY`] observations, so a fast probe does not redraw a line per request.
pub(super) struct Reporter<'a> {
    pub(super) sink: Option<&'a dyn CheckProgress>,
    pub(super) name: &'a str,
    pub(super) phase: CheckPhase,
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

    /// After an observation: the counts, now and then.
    pub(super) fn observed(&self, tally: &super::tally::Tally, version: &str) {
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
