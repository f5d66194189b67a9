//! `lab tour`'s live traffic view while a stage is asserted: `lab watch`'s view ([`draw`]) in an inline viewport
//! below the tour's text (not the alternate screen, so the explanation, the diff and the verdicts stay in the
//! scrollback), fed by every request the assertion makes ([`CheckProgress::observed`]) through one
//! [`TrafficWindow`] per assertion and redrawn at most four times a second.
//!
//! When an assertion ends, its last frame stays, titled `done` with its requests and time: the scrollback then shows
//! what each assertion saw (the bars at 70/30) right above the stage's one-line verdict, which a learner reads
//! together. An assertion cut short (Ctrl-C, an error) is cleared instead: its half-drawn bars prove nothing.
//!
//! The terminal stays in cooked mode with the cursor shown (on the view's last, blank line): Ctrl-C is the signal it
//! is in `lab stage`, and a process that ends abruptly leaves the terminal as it found it. A terminal that cannot
//! host the view (it does not answer the cursor-position query an inline viewport starts with) gets the status
//! line of `lab stage` instead.

use std::collections::BTreeMap;
use std::io::Stdout;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lab::report::RequestKind;
use lab::report::live::{LiveHeading, TrafficSnapshot, draw, draw_height};
use lab::traffic::checks::progress::{
    AssertionRequests, CheckPhase, CheckProgress, PhaseCounts, ProgressSink, TerminalProgress,
};
use lab::traffic::probe::Observation;
use lab::traffic::window::{DEFAULT_WINDOW, TrafficWindow};
use ratatui::backend::{Backend, ClearType, CrosstermBackend};
use ratatui::layout::{Position, Rect};
use ratatui::{Terminal, TerminalOptions, Viewport};
use tokio::time::Instant;

/// How often the view is redrawn at most (as `lab watch`).
pub(crate) const REDRAW: Duration = Duration::from_millis(250);

/// The view's height for up to `versions` bars: what [`draw`] fills, and the line the cursor waits on.
pub(crate) fn view_height(versions: usize) -> u16 {
    draw_height(versions) + 1
}

/// The line of `area` the cursor waits on below the view of `bars` bars (after what [`draw`] fills), where what
/// follows (the next assertion's view, the verdict) starts.
fn cursor_row(area: Rect, bars: usize) -> u16 {
    let below = area.y.saturating_add(draw_height(bars));
    below.min(area.bottom().saturating_sub(1))
}

/// Opens an inline viewport of the given height at the cursor.
type Open<B> = Box<dyn Fn(u16) -> anyhow::Result<Terminal<B>> + Send + Sync>;

/// The tour's view: one per tour, told the stage before each is asserted ([`TourView::stage`]).
pub(crate) struct TourView<B: Backend> {
    open: Open<B>,
    height: u16,
    colour: bool,
    redraw: Duration,
    state: Mutex<ViewState<B>>,
}

/// What the view holds between calls.
struct ViewState<B: Backend> {
    stage: String,
    assertion: Option<AssertionView>,
    terminal: Option<Terminal<B>>,
    /// Set once a terminal could not host the view: from then on, the status line.
    fallback: Option<ProgressSink>,
}

/// One assertion's traffic.
struct AssertionView {
    name: String,
    phase: CheckPhase,
    window: TrafficWindow,
    started: Instant,
    requests: Option<(String, BTreeMap<String, String>, RequestKind)>,
    drawn: Option<Instant>,
}

impl AssertionView {
    fn new(name: &str, phase: CheckPhase, now: Instant) -> AssertionView {
        AssertionView {
            name: name.to_string(),
            phase,
            window: TrafficWindow::new(DEFAULT_WINDOW, now),
            started: now,
            requests: None,
            drawn: None,
        }
    }

    /// The snapshot and heading at `now`; `done` for the final frame.
    fn frame(&self, stage: &str, now: Instant, done: bool) -> (TrafficSnapshot, LiveHeading) {
        let empty = BTreeMap::new();
        let (url, headers, kind) = match &self.requests {
            Some((url, headers, kind)) => (origin(url), headers, *kind),
            None => ("", &empty, RequestKind::Status),
        };
        let snapshot = self.window.snapshot(now, url, headers, kind);
        let phase = if done { "done" } else { self.phase.words() };
        let keys = if done {
            format!(
                "{} in {:.1}s",
                lab::output::plural(snapshot.requests, "request"),
                now.duration_since(self.started).as_secs_f64()
            )
        } else {
            "Ctrl-C stops the tour".to_string()
        };
        let heading = LiveHeading {
            title: format!("tour {stage} · \"{}\" · {phase}", self.name),
            keys,
        };
        (snapshot, heading)
    }
}

impl TourView<CrosstermBackend<Stdout>> {
    /// The view on stdout (a terminal) for a lab of `versions` versions.
    pub(crate) fn on_stdout(versions: usize, colour: bool) -> Arc<Self> {
        let open: Open<CrosstermBackend<Stdout>> = Box::new(|height| {
            let backend = CrosstermBackend::new(std::io::stdout());
            Ok(Terminal::with_options(
                backend,
                TerminalOptions {
                    viewport: Viewport::Inline(height),
                },
            )?)
        });
        Arc::new(TourView::new(open, view_height(versions), colour, REDRAW))
    }
}

impl<B: Backend + Send + 'static> TourView<B> {
    /// A view opening its viewports with `open`, `height` lines high, redrawn at most every `redraw`.
    pub(crate) fn new(open: Open<B>, height: u16, colour: bool, redraw: Duration) -> TourView<B> {
        TourView {
            open,
            height,
            colour,
            redraw,
            state: Mutex::new(ViewState {
                stage: String::new(),
                assertion: None,
                terminal: None,
                fallback: None,
            }),
        }
    }

    /// The sink the assertions of the next stage report to.
    pub(crate) fn sink(self: &Arc<Self>) -> ProgressSink {
        ProgressSink(Arc::clone(self) as Arc<dyn CheckProgress>)
    }

    /// The next assertions are stage `stage`'s.
    pub(crate) fn stage(&self, stage: &str) {
        self.lock().stage = stage.to_string();
    }

    /// Clears the view of an assertion that did not finish (Ctrl-C, an error): what it drew proves nothing.
    pub(crate) fn abandon(&self) {
        let mut state = self.lock();
        state.assertion = None;
        if let Some(mut terminal) = state.terminal.take()
            && let Err(error) = clear(&mut terminal)
        {
            tracing::debug!("clearing the tour's traffic view: {error}");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ViewState<B>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Draws the state's assertion (opening the viewport first if needed); on a terminal that cannot host it, falls
    /// back to the status line.
    fn draw_now(&self, state: &mut ViewState<B>, now: Instant, done: bool) {
        let Some(assertion) = &mut state.assertion else { return };
        if state.terminal.is_none() {
            match (self.open)(self.height) {
                Ok(terminal) => state.terminal = Some(terminal),
                Err(error) => {
                    tracing::warn!(
                        "the live traffic view cannot be drawn on this terminal ({error}); showing a status line instead"
                    );
                    state.fallback = TerminalProgress::on_terminal();
                    if let Some(fallback) = &state.fallback {
                        fallback.0.phase(&assertion.name, assertion.phase);
                    }
                    return;
                }
            }
        }
        let Some(terminal) = &mut state.terminal else { return };
        let (snapshot, heading) = assertion.frame(&state.stage, now, done);
        let colour = self.colour;
        let drawn = terminal.draw(|frame| {
            draw(frame, &snapshot, &heading, colour);
            // The cursor waits, shown, below the view: the verdict (or the next view) starts there.
            let area = frame.area();
            frame.set_cursor_position(Position::new(area.x, cursor_row(area, snapshot.versions.len())));
        });
        match drawn {
            Ok(_) => assertion.drawn = Some(now),
            Err(error) => {
                tracing::debug!("drawing the tour's traffic view: {error}");
                state.terminal = None;
            }
        }
    }
}

impl<B: Backend + Send + 'static> CheckProgress for TourView<B> {
    fn phase(&self, name: &str, phase: CheckPhase) {
        let mut state = self.lock();
        if let Some(fallback) = &state.fallback {
            return fallback.0.phase(name, phase);
        }
        let now = Instant::now();
        match &mut state.assertion {
            Some(assertion) if assertion.name == name => assertion.phase = phase,
            _ => state.assertion = Some(AssertionView::new(name, phase, now)),
        }
        self.draw_now(&mut state, now, false);
    }

    fn counts(&self, name: &str, phase: CheckPhase, counts: &PhaseCounts) {
        if let Some(fallback) = &self.lock().fallback {
            fallback.0.counts(name, phase, counts);
        }
    }

    fn observed(&self, name: &str, phase: CheckPhase, requests: &AssertionRequests<'_>, observation: &Observation) {
        let mut state = self.lock();
        if state.fallback.is_some() {
            return;
        }
        let now = Instant::now();
        let Some(assertion) = &mut state.assertion else { return };
        if assertion.name != name {
            *assertion = AssertionView::new(name, phase, now);
        }
        if assertion.requests.is_none() {
            assertion.requests = Some((requests.url.to_string(), requests.headers.clone(), requests.kind));
        }
        assertion.window.record(observation.clone(), now);
        let due = assertion
            .drawn
            .is_none_or(|drawn| now.duration_since(drawn) >= self.redraw);
        if due {
            self.draw_now(&mut state, now, false);
        }
    }

    fn finished(&self, name: &str) {
        let mut state = self.lock();
        if let Some(fallback) = &state.fallback {
            return fallback.0.finished(name);
        }
        if state.assertion.as_ref().is_some_and(|assertion| assertion.name == name) {
            self.draw_now(&mut state, Instant::now(), true);
        }
        // The final frame stays; the next assertion's viewport opens at the cursor, below it.
        state.assertion = None;
        state.terminal = None;
    }
}

impl<B: Backend> Drop for TourView<B> {
    fn drop(&mut self) {
        // A panic's message is printed where the cursor is (the view's last line): it stays. Otherwise a view still
        // open belongs to an assertion that did not finish.
        if std::thread::panicking() {
            return;
        }
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(terminal) = &mut state.terminal {
            let _ = clear(terminal);
        }
    }
}

/// `http://127.0.0.1:8080` of `http://127.0.0.1:8080/v1/models/resnet`: the ingress, without the path the kind of
/// request already says (the view's first line holds the stage, the assertion and its phase before it).
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    match url[after_scheme..].find('/') {
        Some(at) => &url[..after_scheme + at],
        None => url,
    }
}

/// Clears the inline viewport and leaves the cursor at its first line, shown.
fn clear<B: Backend>(terminal: &mut Terminal<B>) -> Result<(), B::Error> {
    let area: Rect = terminal.get_frame().area();
    let backend = terminal.backend_mut();
    backend.set_cursor_position(area.as_position())?;
    backend.clear_region(ClearType::AfterCursor)?;
    backend.show_cursor()?;
    backend.flush()
}

#[cfg(test)]
mod tests {
    use lab::traffic::probe::Outcome;
    use ratatui::backend::TestBackend;

    use super::*;

    fn answered(version: &str) -> Observation {
        Observation {
            latency: Duration::from_millis(12),
            status: Some(200),
            outcome: Outcome::Answered {
                version: version.to_string(),
            },
        }
    }

    /// The screen's text, one line per row.
    fn screen(terminal: &Terminal<TestBackend>) -> String {
        let buffer = terminal.backend().buffer();
        let width = buffer.area.width as usize;
        buffer
            .content()
            .chunks(width)
            .map(|row| {
                row.iter()
                    .map(|cell| cell.symbol())
                    .collect::<String>()
                    .trim_end()
                    .to_string()
                    + "\n"
            })
            .collect()
    }

    /// A view on test terminals (200×30), without a pause between redraws.
    fn view() -> TourView<TestBackend> {
        let open: Open<TestBackend> = Box::new(|height| {
            Ok(Terminal::with_options(
                TestBackend::new(200, 30),
                TerminalOptions {
                    viewport: Viewport::Inline(height),
                },
            )?)
        });
        TourView::new(open, view_height(2), false, Duration::ZERO)
    }

    fn shown(view: &TourView<TestBackend>) -> String {
        screen(view.lock().terminal.as_ref().expect("a view is open"))
    }

    #[test]
    fn observations_become_bars_with_their_shares_under_the_stage_and_assertion() {
        let view = view();
        view.stage("split-70-30");
        let name = "share of resnet101 is 30% ± 15%";
        let headers = BTreeMap::new();
        let requests = AssertionRequests {
            url: "http://127.0.0.1:8080/v1/models/resnet",
            headers: &headers,
            kind: RequestKind::Status,
        };
        view.phase(name, CheckPhase::Testing);
        assert!(
            shown(&view).contains("waiting for the first answers"),
            "{}",
            shown(&view)
        );
        for index in 0..100 {
            let version = if index % 10 < 7 { "resnet50" } else { "resnet101" };
            view.observed(name, CheckPhase::Testing, &requests, &answered(version));
        }
        let screen = shown(&view);
        assert!(
            screen.contains("tour split-70-30 · \"share of resnet101 is 30% ± 15%\" · testing"),
            "{screen}"
        );
        assert!(screen.contains("resnet50 70.0% · 70 answers"), "{screen}");
        assert!(screen.contains("resnet101 30.0% · 30 answers"), "{screen}");
        assert!(
            screen.contains("· testing  http://127.0.0.1:8080  (status requests, no headers)"),
            "{screen}"
        );
        assert!(screen.contains("Ctrl-C stops the tour"), "{screen}");

        // The last frame is marked done, with the requests and time; then the view lets go of the terminal, so the
        // next assertion's opens below it.
        let (snapshot, heading) = view
            .lock()
            .assertion
            .as_ref()
            .unwrap()
            .frame("split-70-30", Instant::now(), true);
        assert_eq!(snapshot.requests, 100);
        assert!(heading.title.ends_with("· done"), "{}", heading.title);
        assert!(heading.keys.starts_with("100 requests in "), "{}", heading.keys);
        view.finished(name);
        assert!(view.lock().terminal.is_none() && view.lock().assertion.is_none());
    }

    #[test]
    fn each_assertion_gets_its_own_window() {
        let view = view();
        view.stage("focused");
        let canary = BTreeMap::from([("user-group".to_string(), "canary".to_string())]);
        let requests = AssertionRequests {
            url: "http://x",
            headers: &canary,
            kind: RequestKind::Prediction,
        };
        let first = "with user-group: canary: every response from resnet101";
        view.phase(first, CheckPhase::WaitingForRoutes);
        for _ in 0..5 {
            view.observed(first, CheckPhase::WaitingForRoutes, &requests, &answered("resnet101"));
        }
        assert!(
            shown(&view).contains("waiting for the routes to take effect"),
            "{}",
            shown(&view)
        );
        assert!(
            shown(&view).contains("(predictions, user-group: canary)"),
            "{}",
            shown(&view)
        );
        view.finished(first);
        let no_headers = BTreeMap::new();
        let second = AssertionRequests {
            url: "http://x",
            headers: &no_headers,
            kind: RequestKind::Prediction,
        };
        view.phase("every response from resnet50", CheckPhase::Testing);
        view.observed(
            "every response from resnet50",
            CheckPhase::Testing,
            &second,
            &answered("resnet50"),
        );
        let screen = shown(&view);
        assert!(screen.contains("resnet50 100.0% · 1 answer "), "{screen}");
        assert!(!screen.contains("resnet101"), "{screen}");
    }

    #[test]
    fn an_abandoned_assertion_is_cleared() {
        let view = view();
        view.stage("stable");
        view.phase("every response from resnet50", CheckPhase::Testing);
        assert!(shown(&view).contains("tour stable"));
        view.abandon();
        assert!(view.lock().terminal.is_none() && view.lock().assertion.is_none());
    }
}
