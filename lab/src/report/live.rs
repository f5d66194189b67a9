//! `lab watch`'s view of the traffic: a [`TrafficSnapshot`] of the latest responses, drawn as one bar per version
//! with its share (ratatui), or written as one JSON object per line; several header sets side by side as a
//! [`SetsSnapshot`], drawn by [`draw_sets`].

use std::collections::BTreeMap;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Gauge, Paragraph};
use serde::Serialize;

mod sets;
pub use sets::{HeaderSetSnapshot, SetsSnapshot, draw_sets};

/// What the latest responses showed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrafficSnapshot {
    /// The URL the requests go to.
    pub url: String,
    /// What the requests are: TF Serving's status requests (no inference) or predictions.
    pub request_kind: crate::report::RequestKind,
    /// The headers every request carries.
    pub headers: BTreeMap<String, String>,
    /// Seconds since the watch started.
    pub elapsed_s: f64,
    /// Requests completed since the start.
    pub requests: u64,
    /// Responses in the window now.
    pub window: u64,
    /// The window's size: the shares are over the latest this many responses.
    pub window_capacity: u64,
    /// Completed requests per second over the last seconds.
    pub rate_per_s: f64,
    /// The median latency of the answers in the window, in milliseconds.
    pub p50_ms: Option<f64>,
    /// The 95th percentile latency of the answers in the window, in milliseconds.
    pub p95_ms: Option<f64>,
    /// Each version that answered in the window.
    pub versions: BTreeMap<String, VersionWindow>,
    /// Failed requests in the window, by kind (`timeout`, `http_503`, …).
    pub errors: BTreeMap<String, u64>,
}

/// One version in the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionWindow {
    /// Its share of the answers in the window (0–1).
    pub share: f64,
    /// Its answers in the window.
    pub responses: u64,
    /// Its median latency, in milliseconds.
    pub p50_ms: Option<f64>,
    /// Its 95th percentile latency, in milliseconds.
    pub p95_ms: Option<f64>,
}

/// The view's own words around the snapshot: what is being watched (`lab watch  http://…`, or the tour's stage and
/// assertion) and which keys do what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveHeading {
    /// The first line's start, before the URL, the kind of requests and their headers.
    pub title: String,
    /// The end of the second line, e.g. `q or Ctrl-C to stop`.
    pub keys: String,
}

/// The bar colours, in version order.
const BAR_COLOURS: [Color; 4] = [Color::Green, Color::Magenta, Color::Cyan, Color::Yellow];

/// The rows [`draw`] fills for `versions` versions: two header lines, three per bar (one bar, the waiting line, when
/// there is no version yet), and the errors line with a blank line under it.
pub fn draw_height(versions: usize) -> u16 {
    u16::try_from(HEADER_ROWS + BAR_ROWS * versions.max(1) + ERRORS_ROWS).unwrap_or(u16::MAX)
}

/// [`draw`]'s header: where the requests go, then their rate, window and latency.
const HEADER_ROWS: usize = 2;
/// Each of [`draw`]'s bars, with its border.
const BAR_ROWS: usize = 3;
/// [`draw`]'s errors line and a blank line under it.
const ERRORS_ROWS: usize = 2;

/// Draws `snapshot` on the whole frame: a header line, one bar per version (share, answers, p50/p95) and a line of
/// errors, [`draw_height`] rows in all; plain when `colour` is false.
pub fn draw(frame: &mut Frame, snapshot: &TrafficSnapshot, heading: &LiveHeading, colour: bool) {
    let bars = snapshot.versions.len().max(1);
    let length = |rows: usize| Constraint::Length(u16::try_from(rows).unwrap_or(u16::MAX));
    let mut constraints = vec![length(HEADER_ROWS)];
    constraints.extend(std::iter::repeat_n(length(BAR_ROWS), bars));
    constraints.push(length(ERRORS_ROWS));
    constraints.push(Constraint::Min(0));
    let areas = Layout::vertical(constraints).split(frame.area());
    frame.render_widget(Paragraph::new(header_lines(snapshot, heading)), areas[0]);
    if snapshot.versions.is_empty() {
        frame.render_widget(
            Paragraph::new("waiting for the first answers…").block(Block::bordered()),
            areas[1],
        );
    }
    for (index, (version, window)) in snapshot.versions.iter().enumerate() {
        let style = if colour {
            Style::default().fg(BAR_COLOURS[index % BAR_COLOURS.len()])
        } else {
            Style::default()
        };
        let gauge = Gauge::default()
            .block(Block::bordered().title(format!(" {version} ")))
            .gauge_style(style)
            .use_unicode(true)
            .ratio(window.share.clamp(0.0, 1.0))
            .label(version_label(version, window));
        frame.render_widget(gauge, areas[1 + index]);
    }
    frame.render_widget(Paragraph::new(errors_line(snapshot)), areas[1 + bars]);
}

/// "resnet50 70.5% · 141 answers · p50 12 ms · p95 20 ms".
pub fn version_label(version: &str, window: &VersionWindow) -> String {
    format!(
        "{version} {:.1}% · {} · p50 {} · p95 {}",
        window.share * 100.0,
        crate::output::plural(window.responses, "answer"),
        millis(window.p50_ms),
        millis(window.p95_ms)
    )
}

/// The header: where the requests go, with what, how fast, over which window, and how to stop.
fn header_lines(snapshot: &TrafficSnapshot, heading: &LiveHeading) -> Vec<Line<'static>> {
    let headers = if snapshot.headers.is_empty() {
        "no headers".to_string()
    } else {
        headers_text(&snapshot.headers)
    };
    vec![
        Line::from(format!(
            "{}  {}  ({}, {headers})",
            heading.title,
            snapshot.url,
            kind_text(snapshot.request_kind)
        )),
        Line::from(format!("{} · {}", window_stats(snapshot), heading.keys)),
    ]
}

/// "19.8 req/s · last 200 of 200 responses · p50 12 ms · p95 20 ms".
fn window_stats(snapshot: &TrafficSnapshot) -> String {
    format!(
        "{:.1} req/s · last {} of {} responses · p50 {} · p95 {}",
        snapshot.rate_per_s,
        snapshot.window,
        snapshot.window_capacity,
        millis(snapshot.p50_ms),
        millis(snapshot.p95_ms)
    )
}

/// "user-group: canary, x-lab: 1".
fn headers_text(headers: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = headers.iter().map(|(name, value)| format!("{name}: {value}")).collect();
    pairs.join(", ")
}

/// "status requests" or "predictions".
fn kind_text(kind: crate::report::RequestKind) -> &'static str {
    match kind {
        crate::report::RequestKind::Status => "status requests",
        crate::report::RequestKind::Prediction => "predictions",
    }
}

/// "errors: none" or "errors: http_503 3, timeout 1".
fn errors_line(snapshot: &TrafficSnapshot) -> String {
    if snapshot.errors.is_empty() {
        return "errors: none".to_string();
    }
    let parts: Vec<String> = snapshot
        .errors
        .iter()
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect();
    format!("errors: {}", parts.join(", "))
}

/// "12 ms", or "–" when there is no value yet.
fn millis(value: Option<f64>) -> String {
    match value {
        Some(ms) if ms < 10.0 => format!("{ms:.1} ms"),
        Some(ms) => format!("{ms:.0} ms"),
        None => "–".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn snapshot() -> TrafficSnapshot {
        let version = |share: f64, responses: u64| VersionWindow {
            share,
            responses,
            p50_ms: Some(12.0),
            p95_ms: Some(20.4),
        };
        TrafficSnapshot {
            url: "http://127.0.0.1:8080".into(),
            request_kind: crate::report::RequestKind::Prediction,
            headers: BTreeMap::new(),
            elapsed_s: 10.0,
            requests: 200,
            window: 200,
            window_capacity: 200,
            rate_per_s: 19.8,
            p50_ms: Some(12.0),
            p95_ms: Some(20.0),
            versions: BTreeMap::from([
                ("resnet50".to_string(), version(0.705, 141)),
                ("resnet101".to_string(), version(0.295, 59)),
            ]),
            errors: BTreeMap::from([("http_503".to_string(), 2)]),
        }
    }

    #[test]
    fn each_version_is_a_bar_with_its_share_and_latency() {
        let mut terminal = Terminal::new(TestBackend::new(100, 16)).unwrap();
        let heading = LiveHeading {
            title: "lab watch".into(),
            keys: "q or Ctrl-C to stop".into(),
        };
        terminal
            .draw(|frame| draw(frame, &snapshot(), &heading, false))
            .unwrap();
        let screen: String = terminal
            .backend()
            .buffer()
            .content()
            .chunks(100)
            .map(|row| row.iter().map(|cell| cell.symbol()).collect::<String>() + "\n")
            .collect();
        assert!(
            screen.contains("resnet50 70.5% · 141 answers · p50 12 ms · p95 20 ms"),
            "{screen}"
        );
        assert!(screen.contains("resnet101 29.5% · 59 answers"), "{screen}");
        assert!(screen.contains("19.8 req/s · last 200 of 200 responses"), "{screen}");
        assert!(
            screen.contains("lab watch  http://127.0.0.1:8080  (predictions, no headers)"),
            "{screen}"
        );
        assert!(screen.contains("q or Ctrl-C to stop"), "{screen}");
        assert!(screen.contains("errors: http_503 2"), "{screen}");
    }

    #[test]
    fn the_snapshot_serialises_with_a_share_per_version() {
        let json = serde_json::to_value(snapshot()).unwrap();
        assert_eq!(json["versions"]["resnet50"]["share"], 0.705);
        assert_eq!(json["errors"]["http_503"], 2);
    }
}
