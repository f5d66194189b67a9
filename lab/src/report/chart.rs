//! The split chart, an inline SVG shared by the HTML report and the workshop handout: per version, the configured
//! weight as an outlined bar, the accepted range of a share assertion as a band and, when there was traffic, the
//! observed share as a filled bar with its 95% interval as a whisker.
//!
//! Each version's group carries `data-` attributes (version, weight, and share when observed) so tests can read a
//! chart back.

use std::fmt::Write as _;

/// The chart's geometry: labels on the left, then 100% = `BAR_WIDTH` pixels.
const LABEL_WIDTH: f64 = 120.0;
const BAR_WIDTH: f64 = 400.0;
const ROW_HEIGHT: f64 = 44.0;
const CHART_TOP: f64 = 22.0;

/// Colours per version, in the order of the rows.
const VERSION_COLOURS: [&str; 5] = ["#0969da", "#bc4c00", "#8250df", "#1a7f37", "#bf3989"];

/// One version's row of a split chart.
#[derive(Debug, Clone)]
pub(crate) struct ChartRow<'a> {
    /// The version, e.g. `resnet101`.
    pub(crate) version: &'a str,
    /// Its configured weight in percent.
    pub(crate) weight: u32,
    /// What was observed, if traffic was sent.
    pub(crate) observed: Option<Observed>,
    /// The accepted range of the share (low, high; 0–1), when a share assertion tests this version.
    pub(crate) accepted: Option<(f64, f64)>,
}

/// An observed share with its 95% interval (none when the version had no response).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observed {
    /// The share of responses, 0–1.
    pub(crate) share: f64,
    /// The 95% interval of the share.
    pub(crate) interval: Option<[f64; 2]>,
}

/// The chart of `rows` as an SVG element, with `caption` above the bars (also its accessible label).
pub(crate) fn split_chart(rows: &[ChartRow], caption: &str) -> String {
    let height = CHART_TOP + ROW_HEIGHT * rows.len() as f64 + 22.0;
    let width = LABEL_WIDTH + BAR_WIDTH + 150.0;
    let caption = escape(caption);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="split" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{caption}">"#
    );
    let _ = writeln!(svg, r##"<text x="{LABEL_WIDTH}" y="12">{caption}</text>"##);
    // Axis ticks at 0, 25, 50, 75 and 100%.
    let axis_bottom = CHART_TOP + ROW_HEIGHT * rows.len() as f64;
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let x = LABEL_WIDTH + tick * BAR_WIDTH;
        let _ = writeln!(
            svg,
            r#"<line class="axis" x1="{x}" y1="{CHART_TOP}" x2="{x}" y2="{axis_bottom}"/><text class="tick" x="{x}" y="{}" text-anchor="middle">{}%</text>"#,
            axis_bottom + 14.0,
            tick * 100.0
        );
    }
    for (index, row) in rows.iter().enumerate() {
        write_row(&mut svg, index, row);
    }
    svg.push_str("</svg>\n");
    svg
}

/// One version's group: its label, band, bars, whisker and the number on the right.
fn write_row(svg: &mut String, index: usize, row: &ChartRow) {
    let colour = VERSION_COLOURS[index % VERSION_COLOURS.len()];
    let top = CHART_TOP + ROW_HEIGHT * index as f64;
    let version_text = escape(row.version);
    let weight = row.weight;
    let share_attribute = match row.observed {
        Some(observed) => format!(r#" data-share="{}""#, observed.share),
        None => String::new(),
    };
    let _ = writeln!(
        svg,
        r#"<g class="version" data-version="{version_text}"{share_attribute} data-weight="{weight}">"#
    );
    let _ = writeln!(svg, r#"<text x="0" y="{}">{version_text}</text>"#, top + 22.0);
    // A share assertion's accepted range as a band behind the bars.
    if let Some((low, high)) = row.accepted {
        let (low, high) = (low.max(0.0), high.min(1.0));
        let _ = writeln!(
            svg,
            r#"<rect class="accepted" data-low="{low:.4}" data-high="{high:.4}" x="{:.2}" y="{}" width="{:.2}" height="38" fill="{colour}" fill-opacity="0.15"><title>accepted: {:.0}–{:.0}%</title></rect>"#,
            LABEL_WIDTH + low * BAR_WIDTH,
            top,
            (high - low) * BAR_WIDTH,
            low * 100.0,
            high * 100.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<rect class="configured" x="{LABEL_WIDTH}" y="{}" width="{:.2}" height="30" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="5 3"/>"#,
        top + 4.0,
        f64::from(weight) / 100.0 * BAR_WIDTH
    );
    let label = match row.observed {
        Some(observed) => {
            let _ = writeln!(
                svg,
                r#"<rect class="observed" x="{LABEL_WIDTH}" y="{}" width="{:.2}" height="18" fill="{colour}" fill-opacity="0.85"/>"#,
                top + 10.0,
                observed.share * BAR_WIDTH
            );
            if let Some([low, high]) = observed.interval {
                let (x1, x2) = (LABEL_WIDTH + low * BAR_WIDTH, LABEL_WIDTH + high * BAR_WIDTH);
                let middle = top + 19.0;
                let _ = writeln!(
                    svg,
                    r##"<path class="interval" d="M{x1:.2} {middle} H{x2:.2} M{x1:.2} {} V{} M{x2:.2} {} V{}" stroke="#1f2328" stroke-width="1.5" fill="none"/>"##,
                    middle - 6.0,
                    middle + 6.0,
                    middle - 6.0,
                    middle + 6.0
                );
            }
            format!("{:.1}% (weight {weight}%)", observed.share * 100.0)
        }
        None => format!("weight {weight}%"),
    };
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}">{label}</text>"#,
        LABEL_WIDTH + BAR_WIDTH + 8.0,
        top + 24.0
    );
    svg.push_str("</g>\n");
}

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            // Control characters are parse errors in HTML: show the replacement character instead.
            '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}' => escaped.push('\u{fffd}'),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_without_traffic_draws_the_weights_and_the_band_only() {
        let rows = [
            ChartRow {
                version: "resnet50",
                weight: 70,
                observed: None,
                accepted: None,
            },
            ChartRow {
                version: "resnet101",
                weight: 30,
                observed: None,
                accepted: Some((0.15, 0.45)),
            },
        ];
        let svg = split_chart(&rows, "configured weight <outline>");
        assert!(
            svg.contains(r#"aria-label="configured weight &lt;outline&gt;""#),
            "{svg}"
        );
        assert!(!svg.contains("observed") && !svg.contains("data-share"), "{svg}");
        assert!(
            svg.contains(r#"<g class="version" data-version="resnet101" data-weight="30">"#),
            "{svg}"
        );
        assert!(svg.contains(r#"data-low="0.1500" data-high="0.4500""#), "{svg}");
        assert!(svg.contains(">weight 30%</text>"), "{svg}");
    }
}
