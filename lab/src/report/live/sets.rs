//! `lab watch --header-set`'s view: several groups of requests side by side, each with its own headers, drawn as one
//! bordered group per set (titled with its headers; its rate, window and latency, one bar per version, its errors),
//! or written as one JSON object per line whose `header_sets` hold each set's snapshot.

use std::collections::BTreeSet;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Block, Gauge, Paragraph};
use serde::Serialize;

use super::{
    BAR_COLOURS, LiveHeading, TrafficSnapshot, errors_line, headers_text, kind_text, millis, version_label,
    window_stats,
};

/// The traffic of several header sets at once: all requests together at the top level (as one set's snapshot, with
/// the headers every set carries), and each set's own.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetsSnapshot {
    /// All requests of every set together: the shares over the latest `window_capacity` responses of any set.
    #[serde(flatten)]
    pub all: TrafficSnapshot,
    /// Each set, in the order given.
    pub header_sets: Vec<HeaderSetSnapshot>,
}

/// One header set in a [`SetsSnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeaderSetSnapshot {
    /// The set as `--header-set` writes it: `none` or `user-group=canary`.
    pub name: String,
    /// Its requests alone (its `headers`: every header they carry).
    #[serde(flatten)]
    pub traffic: TrafficSnapshot,
}

/// Draws `snapshot` on the whole frame: a header line pair for all requests, then per set a bordered group titled
/// with its headers holding its rate, window and latency, one bar per version (coloured by version, the same colour
/// in every group) and its errors; plain when `colour` is false. Two sets of two versions take 14 rows.
pub fn draw_sets(frame: &mut Frame, snapshot: &SetsSnapshot, heading: &LiveHeading, colour: bool) {
    let versions: BTreeSet<&String> = snapshot
        .header_sets
        .iter()
        .flat_map(|set| set.traffic.versions.keys())
        .collect();
    let colour_of = |version: &String| -> Style {
        let index = versions.iter().position(|known| *known == version).unwrap_or(0);
        if colour {
            Style::default().fg(BAR_COLOURS[index % BAR_COLOURS.len()])
        } else {
            Style::default()
        }
    };
    let mut constraints = vec![Constraint::Length(2)];
    constraints.extend(
        snapshot
            .header_sets
            .iter()
            .map(|set| Constraint::Length(group_height(&set.traffic))),
    );
    constraints.push(Constraint::Min(0));
    let areas = Layout::vertical(constraints).split(frame.area());
    frame.render_widget(Paragraph::new(sets_header_lines(snapshot, heading)), areas[0]);
    for (set, area) in snapshot.header_sets.iter().zip(areas.iter().skip(1)) {
        draw_group(frame, set, *area, &colour_of);
    }
}

/// Rows of one set's group: its borders, the stats line, one bar per version (or the waiting line), the errors.
fn group_height(traffic: &TrafficSnapshot) -> u16 {
    let bars = traffic.versions.len().max(1);
    u16::try_from(bars + 4).unwrap_or(u16::MAX)
}

/// One set's group in `area`.
fn draw_group(frame: &mut Frame, set: &HeaderSetSnapshot, area: Rect, colour_of: &dyn Fn(&String) -> Style) {
    let block = Block::bordered().title(format!(" {} ", set_title(set)));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let traffic = &set.traffic;
    let bars = traffic.versions.len().max(1);
    let mut constraints = vec![Constraint::Length(1)];
    constraints.extend(std::iter::repeat_n(Constraint::Length(1), bars));
    constraints.push(Constraint::Length(1));
    let rows = Layout::vertical(constraints).split(inner);
    frame.render_widget(Paragraph::new(window_stats(traffic)), rows[0]);
    if traffic.versions.is_empty() {
        frame.render_widget(Paragraph::new("waiting for the first answers…"), rows[1]);
    }
    for (index, (version, window)) in traffic.versions.iter().enumerate() {
        let gauge = Gauge::default()
            .gauge_style(colour_of(version))
            .use_unicode(true)
            .ratio(window.share.clamp(0.0, 1.0))
            .label(version_label(version, window));
        frame.render_widget(gauge, rows[1 + index]);
    }
    frame.render_widget(Paragraph::new(errors_line(traffic)), rows[1 + bars]);
}

/// A set's title: its own headers as sent (`user-group: canary`), or `no headers` for `none`.
fn set_title(set: &HeaderSetSnapshot) -> String {
    if set.name == "none" {
        return "no headers".to_string();
    }
    set.name
        .split(',')
        .map(|pair| pair.replacen('=', ": ", 1))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The header: where all requests go, as what, over how many sets, their rate and latency, and how to stop.
fn sets_header_lines(snapshot: &SetsSnapshot, heading: &LiveHeading) -> Vec<Line<'static>> {
    let all = &snapshot.all;
    let common = if all.headers.is_empty() {
        String::new()
    } else {
        format!(", {} on every request", headers_text(&all.headers))
    };
    vec![
        Line::from(format!(
            "{}  {}  ({}, {} header sets in turn{common})",
            heading.title,
            all.url,
            kind_text(all.request_kind),
            snapshot.header_sets.len()
        )),
        Line::from(format!(
            "{:.1} req/s in all · p50 {} · p95 {} · {}",
            all.rate_per_s,
            millis(all.p50_ms),
            millis(all.p95_ms),
            heading.keys
        )),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::style::Color;

    use super::*;
    use crate::report::live::VersionWindow;

    fn traffic(headers: &[(&str, &str)], versions: &[(&str, f64, u64)]) -> TrafficSnapshot {
        TrafficSnapshot {
            url: "http://127.0.0.1:8080".into(),
            request_kind: crate::report::RequestKind::Status,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            elapsed_s: 20.0,
            requests: 200,
            window: 200,
            window_capacity: 200,
            rate_per_s: 10.0,
            p50_ms: Some(3.0),
            p95_ms: Some(7.5),
            versions: versions
                .iter()
                .map(|(version, share, responses)| {
                    let window = VersionWindow {
                        share: *share,
                        responses: *responses,
                        p50_ms: Some(3.0),
                        p95_ms: Some(7.5),
                    };
                    (version.to_string(), window)
                })
                .collect(),
            errors: BTreeMap::new(),
        }
    }

    fn two_sets() -> SetsSnapshot {
        let mut canary = traffic(
            &[("user-group", "canary")],
            &[("resnet101", 0.9, 180), ("resnet50", 0.1, 20)],
        );
        canary.errors.insert("timeout".into(), 1);
        SetsSnapshot {
            all: traffic(&[], &[("resnet101", 0.5, 100), ("resnet50", 0.5, 100)]),
            header_sets: vec![
                HeaderSetSnapshot {
                    name: "none".into(),
                    traffic: traffic(&[], &[("resnet101", 0.0, 0), ("resnet50", 1.0, 200)]),
                },
                HeaderSetSnapshot {
                    name: "user-group=canary".into(),
                    traffic: canary,
                },
            ],
        }
    }

    fn screen_of(terminal: &Terminal<TestBackend>, width: usize) -> Vec<String> {
        let cells = terminal.backend().buffer().content();
        cells
            .chunks(width)
            .map(|row| row.iter().map(|cell| cell.symbol()).collect::<String>())
            .collect()
    }

    #[test]
    fn two_sets_of_two_versions_fit_an_80_by_24_terminal() {
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        let heading = LiveHeading {
            title: "lab watch".into(),
            keys: "q or Ctrl-C to stop".into(),
        };
        terminal
            .draw(|frame| draw_sets(frame, &two_sets(), &heading, true))
            .unwrap();
        let rows = screen_of(&terminal, 80);
        let screen = rows.join("\n");
        assert!(
            rows[0].starts_with("lab watch  http://127.0.0.1:8080  (status requests, 2 header sets in turn)"),
            "{screen}"
        );
        assert!(rows[1].starts_with("10.0 req/s in all · p50 3.0 ms · p95 7.5 ms · q or Ctrl-C to stop"));
        // Each group: its title in the top border, its stats, a bar per version, its errors, the bottom border.
        let expected = [
            (2, "┌ no headers ─"),
            (3, "│10.0 req/s · last 200 of 200 responses · p50 3.0 ms · p95 7.5 ms"),
            (4, "resnet101 0.0% · 0 answers · p50 3.0 ms · p95 7.5 ms"),
            (5, "resnet50 100.0% · 200 answers"),
            (6, "│errors: none"),
            (7, "└─"),
            (8, "┌ user-group: canary ─"),
            (10, "resnet101 90.0% · 180 answers"),
            (11, "resnet50 10.0% · 20 answers"),
            (12, "│errors: timeout 1"),
            (13, "└─"),
        ];
        for (row, text) in expected {
            assert!(rows[row].contains(text), "row {row} lacks {text:?}:\n{screen}");
        }
        // Nothing is cut at the right border.
        for row in &rows[2..14] {
            assert!(
                row.ends_with('┐') || row.ends_with('│') || row.ends_with('┘'),
                "{screen}"
            );
        }
    }

    #[test]
    fn a_version_has_one_colour_in_every_group() {
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        let heading = LiveHeading {
            title: "lab watch".into(),
            keys: String::new(),
        };
        terminal
            .draw(|frame| draw_sets(frame, &two_sets(), &heading, true))
            .unwrap();
        let buffer = terminal.backend().buffer();
        // The first cell of resnet50's bar in each group (rows 5 and 11): a filled cell, in resnet50's colour.
        let first_group = buffer[(1, 5)].fg;
        let second_group = buffer[(1, 11)].fg;
        assert_eq!(first_group, Color::Magenta);
        assert_eq!(second_group, Color::Magenta);
        assert_eq!(buffer[(1, 10)].fg, Color::Green, "resnet101 in the canary group");
    }

    #[test]
    fn the_json_has_all_requests_on_top_and_each_set() {
        let json = serde_json::to_value(two_sets()).unwrap();
        assert_eq!(json["versions"]["resnet50"]["share"], 0.5);
        assert_eq!(json["header_sets"][0]["name"], "none");
        assert_eq!(json["header_sets"][0]["versions"]["resnet50"]["share"], 1.0);
        assert_eq!(json["header_sets"][1]["headers"]["user-group"], "canary");
        assert_eq!(json["header_sets"][1]["errors"]["timeout"], 1);
    }
}
