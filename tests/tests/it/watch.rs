//! `lab watch` through the CLI as a process, against real Envoy in front of two TF Serving stand-ins: off a terminal
//! one JSON object per interval with each version's share; on a pseudo-terminal the live bars, read as a screen,
//! which follow a weight change within seconds and stop on `q` leaving the terminal as it was.

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
    let mut session =
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

    session.type_keys(b"q");
    let (code, main_screen) = tokio::task::block_in_place(|| session.wait(Duration::from_secs(10)));
    assert_eq!(code, 0);
    assert!(main_screen, "the terminal was left on the alternate screen");
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
    let predicted = workshop
        .run(&[
            "lab",
            "watch",
            "--probe",
            "predict",
            "--rate",
            "50",
            "--for",
            "2s",
            "--interval",
            "500ms",
        ])
        .await;
    assert_eq!(predicted.code, 0, "{}\n{}", predicted.stdout, predicted.stderr);
    let last: Value = serde_json::from_str(predicted.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["request_kind"], "prediction", "{last}");
}
