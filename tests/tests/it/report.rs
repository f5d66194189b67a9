//! The report renderers on fixture reports: JSON against its schema, JUnit parsed back, the HTML's SVG charts
//! parsed back, and the HTML page rendered by headless Chromium.

use std::path::Path;

use lab::report::{AssertionReport, RunReport, StageReport, write_html, write_json, write_junit};
use serde_json::Value;

/// The lab's walk: stable, a 70/30 split that failed with some 503s, header routing that was inconclusive, and
/// an assertion whose name needs escaping everywhere.
fn walk_report() -> RunReport {
    RunReport::sample()
        .stage(StageReport::named("stable").assertion(AssertionReport::all_to("resnet50", 300)))
        .stage(
            StageReport::named("split-70-30")
                .assertion(AssertionReport::split(&[("resnet50", 70, 706), ("resnet101", 30, 294)]))
                .assertion(
                    AssertionReport::split(&[("resnet50", 70, 520), ("resnet101", 30, 480)])
                        .name("second look: <70/30> & \"weights\" 'ok'")
                        .failed("share of resnet50 is 52.0%, more than 15 points from 70% (\u{7}bell)")
                        .error("http_503", Some("resnet101"), 4)
                        .error("timeout", None, 1),
                ),
        )
        .stage(
            StageReport::named("header-routing")
                .assertion(AssertionReport::all_to("resnet101", 120).header("user-group", "canary"))
                .assertion(
                    AssertionReport::split(&[("resnet50", 100, 80), ("resnet101", 0, 20)])
                        .name("without header: resnet50 only")
                        .inconclusive("request cap reached before a verdict"),
                ),
        )
}

fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/report.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_json_report_validates_against_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    write_json(&walk_report(), &path).unwrap();
    let written: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let validator = jsonschema::draft202012::new(&schema()).expect("a valid draft 2020-12 schema");
    let errors: Vec<String> = validator
        .iter_errors(&written)
        .map(|error| format!("{error} at {}", error.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(written["verdict"], "fail");
    assert_eq!(written["stages"][2]["verdict"], "inconclusive");

    // The schema is strict enough to catch a wrong verdict, a missing field and an unknown one.
    let mut wrong = written.clone();
    wrong["stages"][0]["verdict"] = "maybe".into();
    assert!(!validator.is_valid(&wrong));
    let mut missing = written.clone();
    missing["stages"][1]["assertions"][0]
        .as_object_mut()
        .unwrap()
        .remove("requests");
    assert!(!validator.is_valid(&missing));
    let mut unknown = written;
    unknown["stages"][0]["colour"] = "green".into();
    assert!(!validator.is_valid(&unknown));
    // Nothing else was left in the directory (the temporary file was renamed into place).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn junit_has_a_case_per_assertion_with_failures_and_inconclusives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.xml");
    write_junit(&walk_report(), &path).unwrap();
    let xml = std::fs::read_to_string(&path).unwrap();
    let document = roxmltree::Document::parse(&xml).unwrap_or_else(|error| panic!("{error}\n{xml}"));
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attribute("tests"), Some("5"));
    assert_eq!(root.attribute("failures"), Some("2"));
    let cases: Vec<roxmltree::Node> = root
        .descendants()
        .filter(|node| node.has_tag_name("testcase"))
        .collect();
    let names: Vec<(&str, &str)> = cases
        .iter()
        .map(|case| (case.attribute("classname").unwrap(), case.attribute("name").unwrap()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("stable", "every response from resnet50"),
            ("split-70-30", "resnet50 gets 70% of the traffic"),
            ("split-70-30", "second look: <70/30> & \"weights\" 'ok'"),
            ("header-routing", "every response from resnet101"),
            ("header-routing", "without header: resnet50 only"),
        ]
    );
    let failure_of = |index: usize| cases[index].children().find(|node| node.has_tag_name("failure"));
    assert!(failure_of(0).is_none() && failure_of(1).is_none() && failure_of(3).is_none());
    let failed = failure_of(2).unwrap();
    assert_eq!(failed.attribute("type"), Some("fail"));
    assert_eq!(
        failed.attribute("message"),
        Some("share of resnet50 is 52.0%, more than 15 points from 70% (\u{fffd}bell)")
    );
    assert!(failed.text().unwrap().contains("errors http_503 from resnet101: 4"));
    let inconclusive = failure_of(4).unwrap();
    assert_eq!(inconclusive.attribute("type"), Some("inconclusive"));
    assert_eq!(
        inconclusive.attribute("message"),
        Some("request cap reached before a verdict")
    );
}

#[test]
fn html_charts_show_the_observed_split_against_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.html");
    write_html(&walk_report(), &path).unwrap();
    let html = std::fs::read_to_string(&path).unwrap();
    let charts: Vec<&str> = html
        .match_indices("<svg")
        .map(|(start, _)| {
            let end = html[start..].find("</svg>").unwrap() + start + "</svg>".len();
            &html[start..end]
        })
        .collect();
    assert_eq!(charts.len(), 5, "one chart per assertion");
    // The 70/30 split that passed: observed 70.6% / 29.4% against configured 70 / 30.
    let chart = roxmltree::Document::parse(charts[1]).unwrap();
    let groups: Vec<roxmltree::Node> = chart.descendants().filter(|node| node.has_tag_name("g")).collect();
    let versions: Vec<(&str, &str, &str)> = groups
        .iter()
        .map(|group| {
            (
                group.attribute("data-version").unwrap(),
                group.attribute("data-share").unwrap(),
                group.attribute("data-weight").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        vec![("resnet50", "0.706", "70"), ("resnet101", "0.294", "30")]
    );
    let width_of = |group: &roxmltree::Node, class: &str| -> f64 {
        group
            .children()
            .find(|node| node.has_tag_name("rect") && node.attribute("class") == Some(class))
            .and_then(|rect| rect.attribute("width"))
            .unwrap()
            .parse()
            .unwrap()
    };
    // Bars are proportional: 100% is 400 px.
    assert_eq!(width_of(&groups[0], "observed"), 282.4);
    assert_eq!(width_of(&groups[0], "configured"), 280.0);
    assert_eq!(width_of(&groups[1], "observed"), 117.6);
    assert_eq!(width_of(&groups[1], "configured"), 120.0);
    assert!(
        groups[0]
            .descendants()
            .any(|node| node.attribute("class") == Some("interval"))
    );
    // Latency percentiles and verdicts are on the page.
    assert!(html.contains("<td>resnet101</td><td>294</td><td>48.0 ms</td><td>76.8 ms</td><td>110.4 ms</td>"));
    assert!(html.contains(r#"<span class="badge inconclusive">inconclusive</span>"#));
    assert!(html.contains("second look: &lt;70/30&gt; &amp; &quot;weights&quot; &#39;ok&#39;"));
}

#[test]
fn headless_chromium_renders_the_html_report() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    write_html(&walk_report(), &page).unwrap();
    // Chromium takes the screenshot.
    let screenshot = canary_lab_tests::chromium_screenshot(&page, dir.path(), (1200, 900));
    if let Some(keep) = std::env::var_os("CANARY_LAB_KEEP_SCREENSHOT") {
        std::fs::copy(&screenshot, keep).unwrap();
    }
    let image = image::open(&screenshot).unwrap().to_rgb8();
    assert_eq!((image.width(), image.height()), (1200, 900));
    // Not blank: many pixels differ from the background, and the pass/fail badge colours are there.
    let background = *image.get_pixel(2, 2);
    let differing = image.pixels().filter(|pixel| **pixel != background).count();
    let share = differing as f64 / (1200.0 * 900.0);
    assert!(
        share > 0.05,
        "only {:.2}% of the screenshot differs from the background",
        share * 100.0
    );
    let has_colour = |target: [u8; 3]| {
        image.pixels().any(|pixel| {
            pixel
                .0
                .iter()
                .zip(target)
                .all(|(channel, wanted)| channel.abs_diff(wanted) <= 8)
        })
    };
    assert!(has_colour([0xcf, 0x22, 0x2e]), "the red fail badge is rendered");
    assert!(has_colour([0x1a, 0x7f, 0x37]), "the green pass badge is rendered");
    assert!(has_colour([0x09, 0x69, 0xda]), "the resnet50 bars are rendered");
}
