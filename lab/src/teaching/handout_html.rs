//! The handout as one self-contained HTML page (`handout.html`): inline CSS, the split charts as inline SVG (the
//! report's own chart), nothing fetched — it opens offline, from a USB stick, in a room without Wi-Fi.
//!
//! The explanations are Markdown rendered by pulldown-cmark, with what could reach outside the page or run in it
//! taken out: raw HTML is shown as text, a link to another page becomes its text with the address after it, an
//! image becomes its alt text. YAML, commands and checklist items are escaped text.

use std::fmt::Write as _;

use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use crate::report::chart::{ChartRow, escape, split_chart};
use crate::teaching::handout::{ExpectedResult, Handout, HandoutStage};
use crate::teaching::handout_markdown::{headers_text, intro};

/// The page.
pub(crate) fn render(handout: &Handout) -> String {
    let mut html = String::with_capacity(64 * 1024);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>canary-lab workshop handout</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <h1>canary-lab workshop handout</h1>\n<div class=\"intro\">\n{}</div>\n<nav>\n<h2>Stages</h2>\n<ol>\n",
        markdown_to_html(&intro(handout), 0)
    );
    for stage in &handout.stages {
        let _ = writeln!(
            html,
            "<li><a href=\"#stage-{name}\">{title}</a> (<code>{name}</code>) — {summary}</li>",
            name = escape(&stage.name),
            title = inline_markdown(&stage.title),
            summary = inline_markdown(&stage.summary),
        );
    }
    html.push_str("</ol>\n</nav>\n");
    for stage in &handout.stages {
        write_stage(&mut html, stage);
    }
    html.push_str("</main>\n</body>\n</html>\n");
    html
}

const STYLE: &str = "
body { font: 16px/1.5 system-ui, -apple-system, 'Segoe UI', sans-serif; color: #1f2328; background: #f6f8fa;
       margin: 0; }
main { max-width: 920px; margin: 0 auto; padding: 24px 32px; }
h1 { font-size: 28px; margin: 0 0 12px; }
h2 { font-size: 22px; margin: 0 0 8px; }
h3 { font-size: 17px; margin: 22px 0 8px; }
nav, section.stage { background: #fff; border: 1px solid #d1d9e0; border-radius: 8px; padding: 16px 22px;
                     margin: 20px 0; }
.summary { color: #59636e; font-style: italic; margin-top: 0; }
code { font: 14px/1.4 ui-monospace, 'SFMono-Regular', Menlo, Consolas, monospace; background: #eff2f5;
       padding: 1px 4px; border-radius: 4px; }
pre { background: #f6f8fa; border: 1px solid #e5e9ed; border-radius: 6px; padding: 10px 14px; overflow-x: auto; }
pre code { background: none; padding: 0; }
pre.commands { background: #1f2328; } pre.commands code { color: #f6f8fa; }
figure { margin: 12px 0; } figcaption { font-size: 14px; color: #59636e; margin-bottom: 4px; }
ul.checks { list-style: none; padding-left: 4px; } ul.checks li::before { content: '\\2610\\00a0'; color: #59636e; }
.expected { border-top: 1px solid #e5e9ed; padding-top: 8px; margin-top: 8px; }
svg.split { width: 100%; max-width: 670px; height: auto; }
svg text { font: 12px system-ui, sans-serif; fill: #1f2328; }
svg .axis { stroke: #d1d9e0; } svg .tick { fill: #59636e; font-size: 11px; }
@media print {
  body { background: #fff; } main { max-width: none; padding: 0; }
  section.stage { break-before: page; border: none; padding: 0; }
  pre.commands { background: #f6f8fa; } pre.commands code { color: #1f2328; }
}
";

fn write_stage(html: &mut String, stage: &HandoutStage) {
    let name = escape(&stage.name);
    let _ = write!(
        html,
        "<section class=\"stage\" id=\"stage-{name}\" data-stage=\"{name}\">\n\
         <h2>Stage {number}: {name} — {title}</h2>\n<p class=\"summary\">{summary}</p>\n\
         <div class=\"explanation\">\n{explanation}</div>\n<h3>What the stage applies</h3>\n",
        number = stage.number,
        title = inline_markdown(&stage.title),
        summary = inline_markdown(&stage.summary),
        explanation = markdown_to_html(&stage.explanation, 2),
    );
    for file in &stage.files {
        let _ = writeln!(
            html,
            "<figure class=\"manifest\" data-file=\"{file}\"><figcaption><code>{path}</code></figcaption><pre class=\"yaml\"><code>{yaml}</code></pre></figure>",
            file = escape(&file.file),
            path = escape(&file.path),
            yaml = escape(&file.yaml),
        );
    }
    let _ = write!(
        html,
        "<h3>Commands</h3>\n<p>By hand, as in the original lab:</p>\n<pre class=\"commands\"><code>{}</code></pre>\n\
         <p>Or let the lab apply the stage and assert it:</p>\n<pre class=\"commands\"><code>{}</code></pre>\n\
         <h3>What <code>lab verify</code> checks</h3>\n\
         <p>After applying the stage yourself, <code>{}</code> checks, writing nothing to the cluster:</p>\n\
         <ul class=\"checks\">\n",
        escape(&stage.commands.by_hand.join("\n")),
        escape(&stage.commands.lab_stage),
        escape(&stage.commands.lab_verify),
    );
    for check in &stage.checks {
        let _ = writeln!(html, "<li>{}</li>", escape(check));
    }
    html.push_str("</ul>\n<h3>Expected result</h3>\n");
    for expected in &stage.expected {
        write_expected(html, expected);
    }
    html.push_str("</section>\n");
}

fn write_expected(html: &mut String, expected: &ExpectedResult) {
    let _ = writeln!(
        html,
        "<div class=\"expected\">\n<p>{}: {}</p>",
        inline_markdown(&headers_text(&expected.headers)),
        escape(&expected.text)
    );
    let rows: Vec<ChartRow> = expected
        .rows
        .iter()
        .map(|row| ChartRow {
            version: &row.version,
            weight: row.weight,
            observed: None,
            accepted: row.accepted,
        })
        .collect();
    if !rows.is_empty() {
        html.push_str(&split_chart(
            &rows,
            "configured weight (outline) and accepted range (band)",
        ));
    }
    html.push_str("</div>\n");
}

/// One line of Markdown (a title, a summary) as inline HTML, without the paragraph around it.
fn inline_markdown(text: &str) -> String {
    let html = markdown_to_html(text, 0);
    let trimmed = html.trim_end();
    trimmed
        .strip_prefix("<p>")
        .and_then(|inner| inner.strip_suffix("</p>"))
        .unwrap_or(trimmed)
        .to_string()
}

/// Markdown as HTML that stays inside the page, its headings moved `shift` levels down (an explanation's `#` is a
/// level below the stage's own heading).
fn markdown_to_html(markdown: &str, shift: usize) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    // The links and images open at this point, and whether each one's tag was kept.
    let mut open: Vec<Opened> = Vec::new();
    let mut events = Vec::new();
    for event in Parser::new_ext(markdown, options) {
        match event {
            Event::Html(raw) | Event::InlineHtml(raw) => events.push(Event::Text(raw)),
            Event::Start(Tag::Link { dest_url, .. }) if !dest_url.starts_with('#') => {
                open.push(Opened::Dropped(Some(dest_url)));
            }
            Event::Start(Tag::Image { dest_url, .. }) if !dest_url.starts_with("data:") => {
                open.push(Opened::Dropped(None));
            }
            Event::Start(tag @ (Tag::Link { .. } | Tag::Image { .. })) => {
                open.push(Opened::Kept);
                events.push(Event::Start(tag));
            }
            Event::End(end @ (TagEnd::Link | TagEnd::Image)) => match open.pop() {
                Some(Opened::Kept) | None => events.push(Event::End(end)),
                Some(Opened::Dropped(Some(address))) => events.push(Event::Text(format!(" ({address})").into())),
                Some(Opened::Dropped(None)) => {}
            },
            Event::Start(Tag::Heading {
                level,
                id,
                classes,
                attrs,
            }) => events.push(Event::Start(Tag::Heading {
                level: shifted(level, shift),
                id,
                classes,
                attrs,
            })),
            Event::End(TagEnd::Heading(level)) => events.push(Event::End(TagEnd::Heading(shifted(level, shift)))),
            other => events.push(other),
        }
    }
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    html
}

/// A link or image being rendered: its tag kept (an in-page `#` link, a `data:` image), or dropped with the address
/// to show after its text (a link to another page; `None` for an image, shown as its alt text alone).
enum Opened<'a> {
    Kept,
    Dropped(Option<CowStr<'a>>),
}

/// `level` moved `shift` levels down, at most to h6.
fn shifted(level: HeadingLevel, shift: usize) -> HeadingLevel {
    HeadingLevel::try_from((level as usize + shift).min(6)).unwrap_or(HeadingLevel::H6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_never_reaches_outside_the_page() {
        let html = markdown_to_html(
            "# Title\n\nSee [the docs](https://istio.io/latest/docs/) and [below](#stage-focused).\n\n\
             ![a chart](https://example.com/chart.png) <script>alert(1)</script>\n\n<img src=\"http://x/y.png\">\n",
            2,
        );
        assert!(html.contains("<h3>Title</h3>"), "{html}");
        assert!(
            html.contains("See the docs (https://istio.io/latest/docs/) and <a href=\"#stage-focused\">below</a>."),
            "{html}"
        );
        assert!(html.contains("a chart &lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(html.contains("&lt;img src=\"http://x/y.png\"&gt;"), "{html}");
        assert!(!html.contains("<img") && !html.contains("<script"), "{html}");
        assert_eq!(
            inline_markdown("header `user-group: canary` → resnet101"),
            "header <code>user-group: canary</code> → resnet101"
        );
    }
}
