//! Every command's `--format json` output shares one style: snake_case keys and lowercase status words.

use canary_lab_tests::cli::Cli;
use canary_lab_tests::fake_tools::FakeTools;
use lab::report::{AssertionReport, RunReport, StageReport};
use serde_json::Value;

/// Maps whose keys are data (header names, version names), not field names.
const DATA_MAPS: &[&str] = &["request_headers", "configured_weights"];

/// Collects every field name that is not snake_case, with its path.
fn non_snake_case_keys(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let snake = key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if !snake {
                    found.push(format!("{path}.{key}"));
                }
                if !DATA_MAPS.contains(&key.as_str()) {
                    non_snake_case_keys(child, &format!("{path}.{key}"), found);
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                non_snake_case_keys(item, &format!("{path}[{index}]"), found);
            }
        }
        _ => {}
    }
}

/// Every `status`/`verdict` value in the document.
fn status_words(value: &Value, words: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let is_status = matches!(key.as_str(), "status" | "verdict");
                if let (true, Some(word)) = (is_status, child.as_str()) {
                    words.push(word.to_string());
                }
                status_words(child, words);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| status_words(item, words)),
        _ => {}
    }
}

fn check_style(command: &str, json: &Value) {
    let mut bad = Vec::new();
    non_snake_case_keys(json, "", &mut bad);
    assert!(bad.is_empty(), "{command}: keys that are not snake_case: {bad:?}");
    let mut words = Vec::new();
    status_words(json, &mut words);
    for word in words {
        assert!(
            word.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{command}: status word {word:?}"
        );
    }
}

#[test]
fn doctor_stages_and_reports_print_json_in_one_style() {
    let tools = FakeTools::new();
    tools.uninstall("minikube");
    tools.script_sudo(true);
    let doctor = Cli::new(["lab", "doctor", "--format", "json"]).fake_tools(&tools).run();
    let doctor: Value = serde_json::from_str(&doctor.stdout).expect("doctor prints JSON");
    check_style("lab doctor", &doctor);

    let stages = Cli::new(["lab", "stages", "--format", "json"]).run();
    let stages: Value = serde_json::from_str(&stages.stdout).expect("stages prints JSON");
    check_style("lab stages", &stages);

    // `lab check`, `lab stage` and `lab up` print a RunReport; this one has a header and weights (data maps).
    let report = RunReport::sample().stage(
        StageReport::named("focused")
            .assertion(AssertionReport::all_to("resnet101", 270).header("user-group", "canary"))
            .assertion(AssertionReport::split(&[("resnet50", 70, 712), ("resnet101", 30, 288)])),
    );
    let report: Value = serde_json::from_str(&lab::report::render_json(&report)).unwrap();
    check_style("run report", &report);
}

#[test]
fn the_style_check_catches_a_camel_case_key() {
    let mut bad = Vec::new();
    non_snake_case_keys(&serde_json::json!({"stages": [{"durationSeconds": 1}]}), "", &mut bad);
    assert_eq!(bad, [".stages[0].durationSeconds"]);
}

#[tokio::test]
async fn every_command_prints_json_or_refuses_the_flag() {
    // Before, `lab render`, `istio fetch`, `test` and `bench` printed their human output under `--format json`, and
    // a failing command printed nothing on stdout.
    let render = Cli::new(["--format", "json", "lab", "render"]).run_async().await;
    assert_eq!(render.code, 0, "{render:#?}");
    let objects = render.json();
    let kinds: Vec<&str> = objects
        .as_array()
        .expect("an array of objects")
        .iter()
        .map(|object| object["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"Namespace"), "{kinds:?}");
    assert!(kinds.contains(&"VirtualService"), "{kinds:?}");

    for command in [["--format", "json", "test"], ["--format", "json", "bench"]] {
        let refused = Cli::new(command).run_async().await;
        assert_eq!(refused.code, 2, "{command:?}: {refused:#?}");
        let error = &refused.json()["error"];
        assert!(
            error["message"].as_str().unwrap().contains("has no JSON output"),
            "{error}"
        );
        assert_eq!(error["exit_code"], 2);
    }

    // A failure is one JSON object on stdout too (and the human error stays on stderr).
    let failed = Cli::new(["--format", "json", "lab", "status"]).run_async().await;
    assert_eq!(failed.code, 1, "{failed:#?}");
    let error = &failed.json()["error"];
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("cannot read a kubeconfig"),
        "{error}"
    );
    assert!(
        error["help"][0].as_str().unwrap().starts_with("start the cluster"),
        "{error}"
    );
    assert_eq!(error["exit_code"], 1);
    check_style("lab status (failed)", &failed.json());
    assert!(
        failed.stderr.starts_with("error: cannot read a kubeconfig"),
        "{}",
        failed.stderr
    );
}
