//! The report as JUnit XML (`--junit PATH.xml`) for CI systems: one test case per stage assertion.
//!
//! Each stage is a `<testsuite>`; each assertion a `<testcase>` with `classname` = the stage. A failed assertion
//! has a `<failure type="fail">`, an inconclusive one a `<failure type="inconclusive">` (never a pass), both with
//! the assertion's message. Text and attributes are escaped, and characters XML 1.0 cannot carry at all (control
//! characters other than tab, newline and carriage return) are replaced by U+FFFD.

use std::fmt::Write as _;
use std::path::Path;

use super::{AssertionReport, RunReport, StageReport, Verdict, write_atomically};

/// The report as a JUnit XML document.
pub fn render_junit(report: &RunReport) -> String {
    let tests: usize = report.stages.iter().map(|stage| case_verdicts(stage).count()).sum();
    let failures: usize = report
        .stages
        .iter()
        .map(|stage| case_verdicts(stage).filter(|verdict| *verdict != Verdict::Pass).count())
        .sum();
    let seconds: f64 = report.stages.iter().map(|stage| stage.duration_seconds).sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        r#"<testsuites name="canary-lab" tests="{tests}" failures="{failures}" errors="0" time="{seconds:.3}" timestamp="{}">"#,
        escape(&report.started_at)
    );
    for stage in &report.stages {
        write_suite(&mut xml, report, stage);
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// Writes the JUnit report to `path`, atomically.
pub fn write_junit(report: &RunReport, path: &Path) -> anyhow::Result<()> {
    write_atomically(path, render_junit(report).as_bytes(), "JUnit report")
}

/// The verdicts of a stage's test cases: one per assertion, and the sample of predictions when there is one.
fn case_verdicts(stage: &StageReport) -> impl Iterator<Item = Verdict> + '_ {
    let sample = stage.probe.sample.as_ref().map(|sample| sample.verdict);
    stage.assertions.iter().map(|assertion| assertion.verdict).chain(sample)
}

fn write_suite(xml: &mut String, report: &RunReport, stage: &StageReport) {
    let failures = case_verdicts(stage).filter(|verdict| *verdict != Verdict::Pass).count();
    let _ = writeln!(
        xml,
        r#"  <testsuite name="{}" tests="{}" failures="{failures}" errors="0" skipped="0" time="{:.3}">"#,
        escape(&stage.stage),
        case_verdicts(stage).count(),
        stage.duration_seconds
    );
    let _ = writeln!(
        xml,
        r#"    <properties><property name="url" value="{}"/><property name="verdict" value="{}"/><property name="routing_proved_by" value="{}"/><property name="predictions_checked" value="{}"/></properties>"#,
        escape(&report.url),
        stage.verdict.as_str(),
        stage.probe.routing_proved_by.as_str(),
        stage.probe.predictions_checked
    );
    for assertion in &stage.assertions {
        write_case(xml, stage, assertion);
    }
    if let Some(sample) = &stage.probe.sample {
        let _ = writeln!(
            xml,
            r#"    <testcase classname="{}" name="sample predictions">"#,
            escape(&stage.stage)
        );
        if sample.verdict != Verdict::Pass {
            let _ = writeln!(
                xml,
                r#"      <failure type="{}" message="{}"/>"#,
                sample.verdict.as_str(),
                escape(&sample.message)
            );
        }
        let _ = writeln!(xml, "      <system-out>{}</system-out>", escape(&stage.probe.summary()));
        xml.push_str("    </testcase>\n");
    }
    xml.push_str("  </testsuite>\n");
}

fn write_case(xml: &mut String, stage: &StageReport, assertion: &AssertionReport) {
    let _ = write!(
        xml,
        r#"    <testcase classname="{}" name="{}">"#,
        escape(&stage.stage),
        escape(&assertion.name)
    );
    xml.push('\n');
    let details = escape(&details(assertion));
    match assertion.verdict {
        Verdict::Pass => {}
        verdict => {
            let _ = writeln!(
                xml,
                r#"      <failure type="{}" message="{}">{details}</failure>"#,
                verdict.as_str(),
                escape(&assertion.message),
            );
        }
    }
    let _ = writeln!(xml, "      <system-out>{details}</system-out>");
    xml.push_str("    </testcase>\n");
}

/// What the requests showed, as plain lines: requests, share per version with its interval, errors.
fn details(assertion: &AssertionReport) -> String {
    let mut text = format!("{}\nrequests: {}\n", assertion.message, assertion.requests);
    for (header, value) in &assertion.request_headers {
        let _ = writeln!(text, "header {header}: {value}");
    }
    for stats in &assertion.versions {
        let weight = assertion
            .configured_weights
            .get(&stats.version)
            .map(|weight| format!("{weight}%"))
            .unwrap_or_else(|| "-".to_string());
        let _ = writeln!(
            text,
            "{}: {} responses, share {:.1}% (95% interval {}), weight {weight}, p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
            stats.version,
            stats.responses,
            stats.share * 100.0,
            super::interval_text(stats.share_interval_95),
            stats.latency_ms.p50,
            stats.latency_ms.p95,
            stats.latency_ms.p99
        );
    }
    for error in &assertion.errors {
        let _ = writeln!(text, "errors {}: {}", error.label(), error.count);
    }
    text
}

/// Escapes text for XML content and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            // Attribute values normalise raw newlines and tabs to spaces: keep them as character references.
            '\n' => escaped.push_str("&#10;"),
            '\r' => escaped.push_str("&#13;"),
            '\t' => escaped.push_str("&#9;"),
            // Not allowed in XML 1.0 at all, not even as references.
            '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => {
                escaped.push('\u{fffd}')
            }
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{AssertionReport, StageReport};

    #[test]
    fn the_sample_of_predictions_is_a_case_of_its_own_and_the_kind_a_property() {
        let report = RunReport::sample().stage(
            StageReport::named("split-70-30")
                .assertion(AssertionReport::split(&[("resnet50", 70, 700), ("resnet101", 30, 300)]))
                .proved_by_status(&[("resnet50", 4)], Verdict::Fail),
        );
        let xml = render_junit(&report);
        assert!(xml.contains(r#"tests="2" failures="1""#), "{xml}");
        assert!(
            xml.contains(r#"<property name="routing_proved_by" value="status"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<property name="predictions_checked" value="4"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testcase classname="split-70-30" name="sample predictions">"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<failure type="fail" message="sample predictions checked"/>"#),
            "{xml}"
        );
    }

    #[test]
    fn escaping_covers_markup_quotes_and_forbidden_characters() {
        assert_eq!(
            escape(r#"<a & "b" 'c'>"#),
            "&lt;a &amp; &quot;b&quot; &apos;c&apos;&gt;"
        );
        assert_eq!(escape("bell\u{7}\nend"), "bell\u{fffd}&#10;end");
    }
}
