//! The report as people read it on stdout: a table per stage and a one-line summary of the run.

use crate::output::{paint, plural, table, use_colour};

use super::{AssertionReport, RunReport, Verdict};

/// The report as text: per stage a heading and a table (verdict, requests, share per version with its 95%
/// interval, p50/p95/p99 latency), notes for messages and errors, then the run's summary line. Colour only when
/// [`use_colour`] says so.
pub fn render_human(report: &RunReport) -> String {
    render_with_colour(report, use_colour())
}

/// [`render_human`] with the colour decision made by the caller.
pub(super) fn render_with_colour(report: &RunReport, colour: bool) -> String {
    let mut text = String::new();
    for stage in &report.stages {
        text.push_str(&format!(
            "stage {}: {} ({:.1} s)\n",
            stage.stage,
            verdict_word(stage.verdict, colour),
            stage.duration_seconds
        ));
        let mut rows = Vec::new();
        for assertion in &stage.assertions {
            rows.extend(assertion_rows(assertion));
        }
        let header = [
            "assertion",
            "verdict",
            "requests",
            "version",
            "share",
            "95% interval",
            "weight",
            "p50",
            "p95",
            "p99",
        ];
        let plain_table = table(&header, &rows);
        let verdict_column = plain_table.find("verdict").unwrap_or(0);
        for line in plain_table.lines() {
            text.push_str("  ");
            text.push_str(&colour_verdict_cell(line, verdict_column, colour));
            text.push('\n');
        }
        for assertion in &stage.assertions {
            text.push_str(&assertion_notes(assertion));
        }
        text.push_str(&format!("  {}\n", stage.probe.summary()));
        if let Some(sample) = stage
            .probe
            .sample
            .as_ref()
            .filter(|sample| sample.verdict != Verdict::Pass)
        {
            text.push_str(&format!(
                "  sample predictions: {}: {}\n",
                sample.verdict.as_str(),
                sample.message
            ));
        }
    }
    text.push_str(&summary_line(report, colour));
    text.push('\n');
    text
}

/// One row per version (the first also names the assertion), or one row when no version answered.
fn assertion_rows(assertion: &AssertionReport) -> Vec<Vec<String>> {
    // The name already says which headers the assertion sends ("with user-group: canary: …").
    let first_columns = vec![
        assertion.name.clone(),
        assertion.verdict.as_str().to_string(),
        assertion.requests.to_string(),
    ];
    let blank_columns = vec![String::new(); 3];
    if assertion.versions.is_empty() {
        let mut row = first_columns;
        row.extend(["-", "-", "-", "-", "-", "-", "-"].map(str::to_string));
        return vec![row];
    }
    assertion
        .versions
        .iter()
        .enumerate()
        .map(|(index, stats)| {
            let mut row = match index {
                0 => first_columns.clone(),
                _ => blank_columns.clone(),
            };
            let weight = assertion
                .configured_weights
                .get(&stats.version)
                .map(|weight| format!("{weight}%"))
                .unwrap_or_else(|| "-".to_string());
            row.extend([
                stats.version.clone(),
                percent(stats.share),
                super::interval_text(stats.share_interval_95),
                weight,
                milliseconds(stats.latency_ms.p50),
                milliseconds(stats.latency_ms.p95),
                milliseconds(stats.latency_ms.p99),
            ]);
            row
        })
        .collect()
}

/// The message of an assertion that did not pass, and its errors by kind, as indented lines.
fn assertion_notes(assertion: &AssertionReport) -> String {
    let mut notes = String::new();
    if assertion.verdict != Verdict::Pass {
        notes.push_str(&format!("  {}: {}\n", assertion.name, assertion.message));
    }
    if !assertion.errors.is_empty() {
        let errors: Vec<String> = assertion
            .errors
            .iter()
            .map(|error| format!("{}: {}", error.label(), error.count))
            .collect();
        notes.push_str(&format!("  {} errors: {}\n", assertion.name, errors.join(", ")));
    }
    notes
}

/// `run against URL: VERDICT — N stages (…), N assertions, N requests, N errors`.
fn summary_line(report: &RunReport, colour: bool) -> String {
    let count = |verdict: Verdict| report.stages.iter().filter(|stage| stage.verdict == verdict).count();
    let assertions: Vec<&AssertionReport> = report.stages.iter().flat_map(|stage| &stage.assertions).collect();
    let requests: u64 = assertions.iter().map(|assertion| assertion.requests).sum();
    let errors: u64 = assertions
        .iter()
        .flat_map(|assertion| &assertion.errors)
        .map(|error| error.count)
        .sum();
    format!(
        "run against {}: {} — {}: {} pass, {} fail, {} inconclusive; {}, {}, {}",
        report.url,
        verdict_word(report.verdict, colour),
        plural(report.stages.len() as u64, "stage"),
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Inconclusive),
        plural(assertions.len() as u64, "assertion"),
        plural(requests, "request"),
        plural(errors, "error")
    )
}

/// Paints the verdict word that starts at char `column` of a table line (the table is laid out uncoloured, so
/// escape codes never disturb the alignment).
fn colour_verdict_cell(line: &str, column: usize, colour: bool) -> String {
    if !colour {
        return line.to_string();
    }
    let Some((start, _)) = line.char_indices().nth(column) else {
        return line.to_string();
    };
    let rest = &line[start..];
    for verdict in [
        Verdict::Pass,
        Verdict::Fail,
        Verdict::Inconclusive,
        Verdict::NotAsserted,
    ] {
        let word = verdict.as_str();
        let whole_word = rest.starts_with(word) && !rest[word.len()..].starts_with(|c: char| c.is_alphanumeric());
        if whole_word {
            return format!(
                "{}{}{}",
                &line[..start],
                verdict_word(verdict, true),
                &rest[word.len()..]
            );
        }
    }
    line.to_string()
}

fn verdict_word(verdict: Verdict, colour: bool) -> String {
    let ansi = match verdict {
        Verdict::Pass => "32",
        Verdict::Fail => "31",
        Verdict::Inconclusive => "33",
        Verdict::NotAsserted => "90",
    };
    paint(verdict.as_str(), ansi, colour)
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

fn milliseconds(value: f64) -> String {
    format!("{value:.1} ms")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{AssertionReport, StageReport};

    fn sample() -> RunReport {
        RunReport::sample()
            .stage(StageReport::named("stable").assertion(AssertionReport::all_to("resnet50", 300)))
            .stage(
                StageReport::named("split-70-30").assertion(
                    AssertionReport::split(&[("resnet50", 70, 560), ("resnet101", 30, 440)])
                        .failed("share of resnet50 is 56.0%, more than 15 points from 70%")
                        .error("http_503", Some("resnet101"), 3),
                ),
            )
    }

    #[test]
    fn tables_show_shares_intervals_weights_and_latency() {
        let text = render_with_colour(&sample(), false);
        assert!(text.contains("stage split-70-30: fail (2.5 s)"), "{text}");
        let split_row = text.lines().find(|line| line.contains("resnet50 gets 70%")).unwrap();
        let cells: Vec<&str> = split_row
            .split("  ")
            .map(str::trim)
            .filter(|cell| !cell.is_empty())
            .collect();
        assert_eq!(
            cells,
            vec![
                "resnet50 gets 70% of the traffic",
                "fail",
                "1003",
                "resnet50",
                "56.0%",
                "[52.9%, 59.1%]",
                "70%",
                "24.0 ms",
                "38.4 ms",
                "55.2 ms"
            ]
        );
        let second_version = text
            .lines()
            .find(|line| line.trim_start().starts_with("resnet101"))
            .unwrap();
        assert!(
            second_version.contains("44.0%") && second_version.contains("30%"),
            "{second_version}"
        );
        assert!(
            text.contains("resnet50 gets 70% of the traffic errors: http_503 from resnet101: 3"),
            "{text}"
        );
        assert!(
            text.contains("share of resnet50 is 56.0%, more than 15 points from 70%"),
            "{text}"
        );
        assert!(text.ends_with(
            "run against http://127.0.0.1:31380: fail — 2 stages: 1 pass, 1 fail, 0 inconclusive; 2 assertions, 1303 requests, 3 errors\n"
        ));
        assert!(!text.contains('\x1b'), "no colour when colour is off");
    }

    #[test]
    fn each_stage_says_which_requests_proved_it_and_the_predictions_checked() {
        let report = RunReport::sample()
            .stage(StageReport::named("stable").assertion(AssertionReport::all_to("resnet50", 300)))
            .stage(
                StageReport::named("split-70-30")
                    .assertion(AssertionReport::split(&[("resnet50", 70, 700), ("resnet101", 30, 300)]))
                    .proved_by_status(&[("resnet50", 3), ("resnet101", 0)], Verdict::Fail),
            );
        let text = render_with_colour(&report, false);
        assert!(
            text.contains("  routing tested with predictions; 0 predictions checked\n"),
            "{text}"
        );
        assert!(
            text.contains("routing tested with status requests; 3 predictions checked (resnet101 ×0, resnet50 ×3"),
            "{text}"
        );
        assert!(
            text.contains("sample predictions: fail: sample predictions checked"),
            "{text}"
        );
        assert!(
            text.contains("stage split-70-30: fail"),
            "a failed sample fails the stage: {text}"
        );
    }

    #[test]
    fn colour_paints_only_the_verdict_words_and_keeps_alignment() {
        let plain = render_with_colour(&sample(), false);
        let coloured = render_with_colour(&sample(), true);
        assert!(coloured.contains("\x1b[31mfail\x1b[0m"), "{coloured}");
        assert!(coloured.contains("\x1b[32mpass\x1b[0m"), "{coloured}");
        let stripped = coloured
            .replace("\x1b[31m", "")
            .replace("\x1b[32m", "")
            .replace("\x1b[0m", "");
        assert_eq!(stripped, plain);
    }
}
