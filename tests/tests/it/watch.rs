//! `lab watch` through the CLI as a process, against real Envoy in front of two TF Serving stand-ins: off a terminal
//! one JSON object per interval with each version's share; on a pseudo-terminal the live bars, read as a screen,
//! which follow a weight change within seconds and stop on `q` leaving the terminal as it was; with `--header-set`,
//! each header set's own shares side by side.

use std::time::Duration;

use canary_lab_tests::cli::Cli;
use canary_lab_tests::envoy::{Envoy, StageRouting};
use canary_lab_tests::traffic::{Models, tiny_image};
use serde_json::Value;

/// The share of `version` on a screen line `… resnet101 29.5% · 59 answers …`, if the screen shows one.
fn share_on_screen(screen: &str, version: &str) -> Option<f64> {
    let marker = format!("{version} ");
    screen.lines().find_map(|line| {
        let at = line.find(&marker)?;
        let rest = &line[at + marker.len()..];
        let percent = rest.split('%').next()?;
        percent.trim().parse::<f64>().ok().map(|value| value / 100.0)
    })
}

/// The lines of the group titled `title` on a screen (`┌ user-group: canary ───┐` down to its bottom border).
fn group_on_screen(screen: &str, title: &str) -> Option<String> {
    let top = format!("┌ {title} ");
    let mut lines = screen.lines().skip_while(|line| !line.trim_start().starts_with(&top));
    let first = lines.next()?;
    let rest: Vec<&str> = lines.take_while(|line| !line.trim_start().starts_with('└')).collect();
    Some(std::iter::once(first).chain(rest).collect::<Vec<_>>().join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_a_terminal_each_interval_is_a_line_of_json_with_the_shares() {
    let models = Models::start_with_bytes_signature().await;
    let envoy = Envoy::start(&StageRouting::of_stage("split-70-30"), &models.both()).await;
    let image = tiny_image();
    let url = envoy.url();
    let output = Cli::new([
        "lab",
        "watch",
        "--url",
        &url,
        "--rate",
        "100",
        "--for",
        "8s",
        "--interval",
        "500ms",
        "--image",
        image.path().to_str().unwrap(),
    ])
    .run_async()
    .await;
    assert_eq!(output.code, 0, "{}\n{}", output.stdout, output.stderr);
    let lines: Vec<Value> = output
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(lines.len() >= 8, "one line per 500 ms for 8 s: {}", output.stdout);
    let last = lines.last().unwrap();
    assert_eq!(last["window"], 200, "{last}");
    // 200 answers at 30%: the standard deviation of the share is 3.2 points; 15 points is 4.6 of them.
    let share = last["versions"]["resnet101"]["share"].as_f64().unwrap();
    assert!((share - 0.30).abs() < 0.15, "resnet101's share {share} in {last}");
    let total: f64 = last["versions"]
        .as_object()
        .unwrap()
        .values()
        .map(|version| version["share"].as_f64().unwrap())
        .sum();
    assert!((total - 1.0).abs() < 1e-9, "{last}");
    assert!(last["rate_per_s"].as_f64().unwrap() > 10.0, "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_the_bars_follow_a_weight_change_and_q_stops() {
    let models = Models::start_with_bytes_signature().await;
    let envoy = Envoy::start(&StageRouting::of_stage("canary-deployed"), &models.both()).await;
    let image = tiny_image();
    let url = envoy.url();
    let image_path = image.path().to_str().unwrap().to_string();
    let session =
        Cli::new(["lab", "watch", "--url", &url, "--rate", "100", "--image", &image_path]).spawn_in_terminal();
    let screen = tokio::task::block_in_place(|| {
        session.wait_for("resnet50 at 100%", Duration::from_secs(30), |screen| {
            share_on_screen(screen, "resnet50") == Some(1.0) && screen.contains("last 200 of 200 responses")
        })
    });
    assert!(share_on_screen(&screen, "resnet101").is_none(), "{screen}");
    assert!(screen.contains("q or Ctrl-C to stop"), "{screen}");

    // `lab stage split-70-30` in another terminal: the bars move within seconds (200 answers at 100/s).
    envoy
        .serve(&StageRouting::of_stage("split-70-30"), &models.both())
        .await;
    tokio::task::block_in_place(|| {
        session.wait_for("resnet101 near 30%", Duration::from_secs(20), |screen| {
            share_on_screen(screen, "resnet101").is_some_and(|share| (share - 0.30).abs() < 0.15)
                && share_on_screen(screen, "resnet50").is_some_and(|share| (share - 0.70).abs() < 0.15)
        })
    });

    quit_with_q(session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_recorded_lab_watch_sends_status_requests_where_the_stage_s_routes_allow() {
    let workshop = canary_lab_tests::workshop::Workshop::up_to("split-70-30").await;
    let predictions_before = workshop.models.resnet50.predictions() + workshop.models.resnet101.predictions();
    let output = workshop
        .run(&["lab", "watch", "--rate", "100", "--for", "6s", "--interval", "500ms"])
        .await;
    assert_eq!(output.code, 0, "{}\n{}", output.stdout, output.stderr);
    let last: Value = serde_json::from_str(output.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["request_kind"], "status", "{last}");
    let share = last["versions"]["resnet101"]["share"].as_f64().unwrap();
    assert!((share - 0.30).abs() < 0.15, "resnet101's share {share} in {last}");
    let predictions_after = workshop.models.resnet50.predictions() + workshop.models.resnet101.predictions();
    assert_eq!(
        predictions_after, predictions_before,
        "status requests cost the models no prediction"
    );

    // `--probe predict` asks for predictions.
    let predicted = watch_briefly(&workshop, &["--probe", "predict"]).await;
    assert_eq!(predicted.code, 0, "{}\n{}", predicted.stdout, predicted.stderr);
    let last: Value = serde_json::from_str(predicted.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["request_kind"], "prediction", "{last}");
}

/// `lab watch EXTRA` for two seconds at 50 requests/s, a JSON line every 500 ms.
async fn watch_briefly(
    workshop: &canary_lab_tests::workshop::Workshop,
    extra: &[&str],
) -> canary_lab_tests::cli::CliOutput {
    let mut args = vec!["lab", "watch"];
    args.extend(extra);
    args.extend(["--rate", "50", "--for", "2s", "--interval", "500ms"]);
    workshop.run(&args).await
}

/// The last JSON line of a `lab watch` run that must have succeeded.
fn last_line(output: &canary_lab_tests::cli::CliOutput) -> Value {
    assert_eq!(output.code, 0, "{}\n{}", output.stdout, output.stderr);
    let last = output
        .stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no line: {}", output.stderr));
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"))
}

/// `set`'s versions: each version's share, which must be the only one.
fn only_version(set: &Value) -> (String, f64) {
    let versions = set["versions"].as_object().unwrap_or_else(|| panic!("{set}"));
    assert_eq!(versions.len(), 1, "one version answers {set}");
    let (version, window) = versions.iter().next().unwrap();
    (version.clone(), window["share"].as_f64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_header_sets_each_set_shows_where_its_own_requests_go() {
    // `focused`: `user-group: canary` goes to resnet101, everything else to resnet50.
    let workshop = canary_lab_tests::workshop::Workshop::up_to("focused").await;
    let output = workshop
        .run(&[
            "lab",
            "watch",
            "--header-set",
            "none",
            "--header-set",
            "user-group=canary",
            "--header",
            "x-lab=watch",
            "--rate",
            "100",
            "--for",
            "6s",
            "--interval",
            "500ms",
        ])
        .await;
    let last = last_line(&output);
    let sets = last["header_sets"].as_array().unwrap_or_else(|| panic!("{last}"));
    assert_eq!(sets.len(), 2, "{last}");
    assert_eq!(sets[0]["name"], "none", "{last}");
    assert_eq!(
        sets[0]["headers"],
        serde_json::json!({"x-lab": "watch"}),
        "--header joins every set"
    );
    assert_eq!(only_version(&sets[0]), ("resnet50".to_string(), 1.0), "{last}");
    assert_eq!(sets[1]["name"], "user-group=canary", "{last}");
    assert_eq!(
        sets[1]["headers"],
        serde_json::json!({"user-group": "canary", "x-lab": "watch"})
    );
    assert_eq!(only_version(&sets[1]), ("resnet101".to_string(), 1.0), "{last}");
    for set in sets {
        // 300 requests each at 100/s for 6 s, in turns; a loaded machine may answer fewer.
        assert!(set["window"].as_u64().unwrap() >= 50, "{set}");
        // Errors by kind, per set (right after `lab up --no-assert` the gateway may still be taking the endpoints,
        // and Envoy answers 503 until it has them: not counted in the shares).
        assert!(set["errors"].is_object(), "{set}");
        // `--probe auto` decided for both sets: the focused routes take status requests as predictions.
        assert_eq!(set["request_kind"], "status", "{set}");
    }
    // The top level is all requests together: both versions, about half each.
    let top = last["versions"].as_object().unwrap();
    assert_eq!(top.keys().collect::<Vec<_>>(), ["resnet101", "resnet50"], "{last}");
    let each: u64 = sets.iter().map(|set| set["requests"].as_u64().unwrap()).sum();
    assert_eq!(last["requests"].as_u64().unwrap(), each, "{last}");
    let share = top["resnet101"]["share"].as_f64().unwrap();
    assert!(
        (share - 0.5).abs() < 0.2,
        "taking turns, about half the answers are the canary set's: {last}"
    );

    // `stage`: the recorded stage's assertions' header sets, in their order.
    let staged = watch_briefly(&workshop, &["--header-set", "stage"]).await;
    let last = last_line(&staged);
    let sets = last["header_sets"].as_array().unwrap_or_else(|| panic!("{last}"));
    let names: Vec<&str> = sets.iter().map(|set| set["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["user-group=canary", "none"], "{last}");
    assert_eq!(only_version(&sets[0]).0, "resnet101", "{last}");
    assert_eq!(only_version(&sets[1]).0, "resnet50", "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_each_header_set_is_its_own_group_of_bars() {
    let workshop = canary_lab_tests::workshop::Workshop::up_to("focused").await;
    let session = workshop
        .cli(&[
            "lab",
            "watch",
            "--header-set",
            "none",
            "--header-set",
            "user-group=canary",
            "--rate",
            "100",
        ])
        .spawn_in_terminal();
    let screen = tokio::task::block_in_place(|| {
        session.wait_for("both groups, each at 100%", Duration::from_secs(30), |screen| {
            let plain = group_on_screen(screen, "no headers");
            let canary = group_on_screen(screen, "user-group: canary");
            plain.is_some_and(|group| {
                share_on_screen(&group, "resnet50") == Some(1.0) && group.contains("last 200 of 200 responses")
            }) && canary.is_some_and(|group| {
                share_on_screen(&group, "resnet101") == Some(1.0) && group.contains("last 200 of 200 responses")
            })
        })
    });
    assert!(screen.contains("2 header sets in turn"), "{screen}");
    let plain = group_on_screen(&screen, "no headers").unwrap();
    assert!(share_on_screen(&plain, "resnet101").is_none(), "{screen}");
    let canary = group_on_screen(&screen, "user-group: canary").unwrap();
    assert!(share_on_screen(&canary, "resnet50").is_none(), "{screen}");
    assert!(canary.contains("│errors: "), "each group has its errors line: {screen}");

    quit_with_q(session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_header_set_is_a_usage_error_before_any_request() {
    for (spec, says) in [
        ("canary", "\"canary\" is not `name=value`"),
        ("=canary", "\"=canary\" has no header name before `=`"),
        ("user group=canary", "is not an HTTP header name"),
    ] {
        let output = Cli::new(["lab", "watch", "--url", "http://127.0.0.1:9", "--header-set", spec])
            .run_async()
            .await;
        assert_eq!(output.code, 2, "{spec}: {}", output.stderr);
        assert!(
            output
                .stderr
                .contains(&format!("invalid value '{spec}' for '--header-set <SPEC>'")),
            "{}",
            output.stderr
        );
        assert!(output.stderr.contains(says), "{spec}: {}", output.stderr);
        assert!(
            output.stderr.contains("help: e.g. `--header-set user-group=canary`"),
            "{}",
            output.stderr
        );
    }
    // A header in `--header` (added to every set) and in a set: which value is meant is not clear.
    let output = Cli::new([
        "lab",
        "watch",
        "--url",
        "http://127.0.0.1:9",
        "--header",
        "User-Group=x",
        "--header-set",
        "user-group=canary",
    ])
    .run_async()
    .await;
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert!(
        output
            .stderr
            .contains("header \"user-group\" is given by `--header` and by `--header-set user-group=canary`"),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.contains("help: `--header` adds its headers to every set"),
        "{}",
        output.stderr
    );
}

/// Types `q`: the watch must end with exit 0 and leave the alternate screen.
fn quit_with_q(mut session: canary_lab_tests::terminal::TerminalSession) {
    session.type_keys(b"q");
    let (code, main_screen) = tokio::task::block_in_place(|| session.wait(Duration::from_secs(10)));
    assert_eq!(code, 0);
    assert!(main_screen, "the terminal was left on the alternate screen");
}
