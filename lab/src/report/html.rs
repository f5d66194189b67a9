//! The report as one self-contained HTML page (`--html PATH.html`): inline CSS and SVG, no network assets.
//!
//! Per stage: its verdict and, per assertion, a bar chart of the observed split (with the 95% interval as a
//! whisker) against the configured weights, a latency table (p50/p95/p99 per version), the errors and the verdict
//! with its message. The charts carry `data-` attributes (version, share, weight) so tests can read them back.

use std::fmt::Write as _;
use std::path::Path;

use super::chart::{ChartRow, Observed, escape};
use super::{AssertionReport, Expectation, RunReport, StageReport, Verdict, write_atomically};

/// The report as an HTML document.
pub fn render_html(report: &RunReport) -> String {
    let mut html = String::with_capacity(16 * 1024);
    let _ = write!(
        html,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>canary-lab report: {verdict}</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>canary-lab report {badge}</h1>
<p class="meta">{url} · started {started} · {stages}</p>
</header>
"#,
        verdict = report.verdict.as_str(),
        badge = badge(report.verdict),
        url = escape(&report.url),
        started = escape(&report.started_at),
        stages = crate::output::plural(report.stages.len() as u64, "stage"),
    );
    for stage in &report.stages {
        write_stage(&mut html, stage);
    }
    html.push_str("</body>\n</html>\n");
    html
}

/// Writes the HTML report to `path`, atomically.
pub fn write_html(report: &RunReport, path: &Path) -> anyhow::Result<()> {
    write_atomically(path, render_html(report).as_bytes(), "HTML report")
}

const STYLE: &str = "
body { font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; color: #1f2328; background: #f6f8fa;
       margin: 0; padding: 24px 32px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 0 0 12px; }
h3 { font-size: 16px; margin: 0 0 6px; }
.meta { color: #59636e; margin: 0 0 20px; }
section.stage { background: #fff; border: 1px solid #d1d9e0; border-radius: 8px; padding: 16px 20px;
                margin-bottom: 20px; }
.assertion { border-top: 1px solid #e5e9ed; padding-top: 12px; margin-top: 12px; display: grid;
             grid-template-columns: minmax(0, 670px) 1fr; gap: 4px 28px; align-items: start; }
.assertion .about { grid-column: 1 / -1; }
.badge { display: inline-block; border-radius: 12px; padding: 1px 10px; font-size: 13px; font-weight: 600;
         color: #fff; vertical-align: middle; }
.badge.pass { background: #1a7f37; } .badge.fail { background: #cf222e; } .badge.inconclusive { background: #9a6700; } .badge.not_asserted { background: #6e7781; }
.message, .headers { margin: 2px 0; }
svg.split { width: 100%; max-width: 670px; height: auto; }
.headers code { background: #eff2f5; padding: 1px 5px; border-radius: 4px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: right; padding: 3px 10px; border-bottom: 1px solid #e5e9ed; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
ul.errors { margin: 6px 0 0; padding-left: 18px; color: #cf222e; }
svg text { font: 12px system-ui, sans-serif; fill: #1f2328; }
svg .axis { stroke: #d1d9e0; } svg .tick { fill: #59636e; font-size: 11px; }
";

fn write_stage(html: &mut String, stage: &StageReport) {
    let _ = write!(
        html,
        "<section class=\"stage\" data-stage=\"{name}\">\n<h2>Stage {name} {badge} <span class=\"meta\">{seconds:.1} s</span></h2>\n",
        name = escape(&stage.stage),
        badge = badge(stage.verdict),
        seconds = stage.duration_seconds,
    );
    let _ = writeln!(html, "<p class=\"meta probe\">{}</p>", escape(&stage.probe.summary()));
    for assertion in &stage.assertions {
        write_assertion(html, assertion);
    }
    html.push_str("</section>\n");
}

fn write_assertion(html: &mut String, assertion: &AssertionReport) {
    let _ = write!(
        html,
        "<div class=\"assertion\">\n<div class=\"about\">\n<h3>{name} {badge}</h3>\n<p class=\"message\">{message}</p>\n",
        name = escape(&assertion.name),
        badge = badge(assertion.verdict),
        message = escape(&assertion.message),
    );
    let headers: Vec<String> = assertion
        .request_headers
        .iter()
        .map(|(header, value)| format!("<code>{}: {}</code>", escape(header), escape(value)))
        .collect();
    let _ = writeln!(
        html,
        "<p class=\"headers\">{}{}</p>\n</div>",
        crate::output::plural(assertion.requests, "request"),
        if headers.is_empty() {
            " without extra headers".to_string()
        } else {
            format!(" with {}", headers.join(" "))
        }
    );
    html.push_str(&split_chart(assertion));
    html.push_str("<div>\n<table>\n<tr><th>version</th><th>responses</th><th>p50</th><th>p95</th><th>p99</th></tr>\n");
    for stats in &assertion.versions {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{:.1} ms</td><td>{:.1} ms</td><td>{:.1} ms</td></tr>",
            escape(&stats.version),
            stats.responses,
            stats.latency_ms.p50,
            stats.latency_ms.p95,
            stats.latency_ms.p99
        );
    }
    html.push_str("</table>\n");
    if !assertion.errors.is_empty() {
        html.push_str("<ul class=\"errors\">\n");
        for error in &assertion.errors {
            let _ = writeln!(html, "<li>{} × {}</li>", error.count, escape(&error.label()));
        }
        html.push_str("</ul>\n");
    }
    html.push_str("</div>\n</div>\n");
}

/// An SVG chart ([`super::chart`]): per version (every version observed or configured), the configured weight as an
/// outlined bar and the observed share as a filled bar with its 95% interval as a whisker.
fn split_chart(assertion: &AssertionReport) -> String {
    let mut versions: Vec<&str> = assertion.versions.iter().map(|stats| stats.version.as_str()).collect();
    for version in assertion.configured_weights.keys() {
        if !versions.contains(&version.as_str()) {
            versions.push(version);
        }
    }
    let rows: Vec<ChartRow> = versions
        .into_iter()
        .map(|version| {
            let stats = assertion.versions.iter().find(|stats| stats.version == version);
            // A share assertion's accepted range (share ± tolerance), on the tested version's row.
            let accepted = match &assertion.expectation {
                Expectation::Share {
                    version: tested,
                    share,
                    tolerance,
                    ..
                } if tested == version => Some((share - tolerance, share + tolerance)),
                _ => None,
            };
            ChartRow {
                version,
                weight: assertion.configured_weights.get(version).copied().unwrap_or(0),
                observed: Some(Observed {
                    share: stats.map(|stats| stats.share).unwrap_or(0.0),
                    interval: stats.map(|stats| stats.share_interval_95),
                }),
                accepted,
            }
        })
        .collect();
    super::chart::split_chart(
        &rows,
        "observed share (filled, 95% interval) vs configured weight (outline) and accepted range (band)",
    )
}

fn badge(verdict: Verdict) -> String {
    format!("<span class=\"badge {0}\">{0}</span>", verdict.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{AssertionReport, StageReport};

    #[test]
    fn the_page_is_self_contained_and_escapes_names() {
        let report = RunReport::sample()
            .stage(StageReport::named("<script>alert(1)</script>").assertion(AssertionReport::all_to("resnet50", 10)));
        let html = render_html(&report);
        assert!(!html.contains("<script>"), "names are escaped");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        for external in ["<link", "src=", "url(", "@import"] {
            assert!(!html.contains(external), "no external asset ({external})");
        }
        // The only URLs: the report's ingress URL (as text) and the SVG namespace (a name, never fetched).
        let without_known = html
            .replace("http://127.0.0.1:31380", "")
            .replace(r#"xmlns="http://www.w3.org/2000/svg""#, "");
        assert!(!without_known.contains("http"), "no other URL");
    }

    #[test]
    fn a_share_assertion_draws_its_accepted_range() {
        // The split fixture tests resnet50 at 70% ± 15%: the band spans 55–85% of the bar.
        let report = RunReport::sample().stage(
            StageReport::named("split-70-30")
                .assertion(AssertionReport::split(&[("resnet50", 70, 712), ("resnet101", 30, 288)])),
        );
        let svg = split_chart(&report.stages[0].assertions[0]);
        let band = svg
            .lines()
            .find(|line| line.contains(r#"class="accepted""#))
            .expect("a band");
        assert!(
            band.contains(r#"data-low="0.5500""#) && band.contains("accepted: 55–85%"),
            "{band}"
        );
        assert_eq!(
            svg.matches(r#"class="accepted""#).count(),
            1,
            "only the tested version: {svg}"
        );
        let exact =
            RunReport::sample().stage(StageReport::named("stable").assertion(AssertionReport::all_to("resnet50", 10)));
        assert!(!split_chart(&exact.stages[0].assertions[0]).contains(r#"class="accepted""#));
    }
}
