//! `--probe auto|status|predict` through the CLI, against real Envoy configured like istiod in front of the TF
//! Serving stand-ins: the lab's stages are proved with TF Serving's model-status requests and a few real
//! predictions per version; a VirtualService that routes on the URI makes `auto` predict and `status` refuse;
//! `predict` sends only predictions, as before; the report says which requests proved the routing and how many
//! predictions were checked.

use std::collections::BTreeMap;
use std::path::Path;

use canary_lab_tests::assert_contains;
use canary_lab_tests::cli::{Cli, CliOutput};
use canary_lab_tests::envoy::{Envoy, StageRouting};
use canary_lab_tests::traffic::{Models, tiny_image};
use lab::traffic::checks::{SAMPLE_MAX_REQUESTS, SAMPLE_PER_VERSION};

/// The lab's predict path, which a VirtualService routing on the URI matches.
const PREDICT_PREFIX: &str = "/v1/models/image_classifier/versions/1:predict";

/// `lab check STAGE --url URL --payload raw --image TINY ARGS`, with `CANARY_LAB_ASSETS` when given: the raw body of a
/// 4×3 image is a few bytes (a keras body is 224×224×3 whatever the image), so hundreds of predictions stay cheap
/// for the stand-ins on a busy machine.
async fn lab_check(stage: &str, url: &str, args: &[&str], assets: Option<&Path>) -> CliOutput {
    let image = tiny_image();
    let image_path = image.path().display().to_string();
    let mut all = vec![
        "lab",
        "check",
        stage,
        "--url",
        url,
        "--payload",
        "raw",
        "--image",
        &image_path,
    ];
    all.extend_from_slice(args);
    let mut cli = Cli::new(&all);
    if let Some(assets) = assets {
        cli = cli.env("CANARY_LAB_ASSETS", assets);
    }
    cli.run_async().await
}

fn predictions(models: &Models) -> u64 {
    models.resnet50.predictions() + models.resnet101.predictions()
}

fn status_requests(models: &Models) -> u64 {
    models.resnet50.status_requests() + models.resnet101.status_requests()
}

/// The requests the stage's assertions sent, from the JSON report.
fn assertion_requests(stage: &serde_json::Value) -> u64 {
    stage["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|assertion| assertion["requests"].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_check_auto_proves_each_stage_with_status_requests_and_checks_a_few_predictions() {
    // Before, every assertion request of `lab check` was a prediction: hundreds per stage.
    for (stage, versions) in [
        ("stable", &["resnet50"][..]),
        ("canary-deployed", &["resnet50"][..]),
        ("split-70-30", &["resnet101", "resnet50"][..]),
        ("focused", &["resnet101", "resnet50"][..]),
    ] {
        let models = Models::start().await;
        let backends = match stage {
            "stable" => models.stable_only(),
            _ => models.both(),
        };
        let envoy = Envoy::start(&StageRouting::of_stage(stage), &backends).await;
        let output = lab_check(stage, &envoy.url(), &["--format", "json"], None).await;
        assert_eq!(output.code, 0, "{stage}: {output:#?}");
        let report = &output.json()["stages"][0];
        let probe = &report["probe"];
        assert_eq!(probe["routing_proved_by"], "status", "{stage}: {probe:#}");
        assert_contains!(probe["reason"].as_str().unwrap(), "--probe auto");
        // The stand-ins counted every prediction: only the sample's, all of them checked.
        let checked = probe["predictions_checked"].as_u64().unwrap();
        assert_eq!(checked, predictions(&models), "{stage}: {probe:#}");
        assert!(checked <= 2 * SAMPLE_MAX_REQUESTS, "{stage}: {probe:#}");
        let sample = &probe["sample"];
        assert_eq!(sample["verdict"], "pass", "{stage}: {probe:#}");
        let sampled: Vec<&str> = sample["versions"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(sampled, versions, "{stage}: {probe:#}");
        for version in versions {
            assert!(
                sample["versions"][version].as_u64().unwrap() >= SAMPLE_PER_VERSION,
                "{probe:#}"
            );
        }
        // The routing was proved by the status requests: at least one per assertion request.
        let requests = assertion_requests(report);
        if stage != "split-70-30" {
            // Exact assertions: 270 responses each (the share test decides when it can).
            assert!(requests >= 270, "{stage}: {report:#}");
        }
        assert!(status_requests(&models) >= requests, "{stage}: {report:#}");
        assert!(
            checked * 4 < requests,
            "{stage}: {checked} predictions for {requests} requests"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_human_report_says_which_requests_proved_the_routing_and_the_predictions_checked() {
    let models = Models::start().await;
    let envoy = Envoy::start(&StageRouting::of_stage("split-70-30"), &models.both()).await;
    let output = lab_check("split-70-30", &envoy.url(), &[], None).await;
    assert_eq!(output.code, 0, "{output:#?}");
    let checked = predictions(&models);
    assert_contains!(
        output.stdout,
        &format!("  routing tested with status requests; {checked} predictions checked (resnet101 ×")
    );
    assert_contains!(output.stdout, ", 1000 scores each)");

    let output = lab_check("split-70-30", &envoy.url(), &["--probe", "predict"], None).await;
    assert_eq!(output.code, 0, "{output:#?}");
    assert_contains!(output.stdout, "  routing tested with predictions; ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_check_probe_predict_sends_only_predictions_as_before() {
    let models = Models::start().await;
    let envoy = Envoy::start(&StageRouting::of_stage("split-70-30"), &models.both()).await;
    let output = lab_check(
        "split-70-30",
        &envoy.url(),
        &["--probe", "predict", "--format", "json"],
        None,
    )
    .await;
    assert_eq!(output.code, 0, "{output:#?}");
    let report = &output.json()["stages"][0];
    assert_eq!(report["probe"]["routing_proved_by"], "prediction", "{report:#}");
    assert_eq!(report["probe"]["reason"], "--probe predict");
    assert_eq!(report["probe"]["sample"], serde_json::Value::Null);
    let requests = assertion_requests(report);
    assert_eq!(report["probe"]["predictions_checked"].as_u64().unwrap(), requests);
    assert_eq!(status_requests(&models), 0, "no status request with --probe predict");
    assert!(predictions(&models) >= requests, "{report:#}");
}

/// A copy of the shipped assets whose `split-70-30` VirtualService routes only the predict path (a URI match).
fn assets_routing_on_the_uri() -> tempfile::TempDir {
    let copy = crate::manifests::assets_copy();
    let manifest = copy.path().join("manifests/virtualservice-70-30.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let routed = format!("  http:\n  - match:\n    - uri:\n        prefix: {PREDICT_PREFIX}\n    route:\n");
    assert!(text.contains("  http:\n  - route:\n"), "{text}");
    std::fs::write(&manifest, text.replace("  http:\n  - route:\n", &routed)).unwrap();
    copy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_service_routing_on_the_uri_makes_auto_predict_and_status_refused() {
    let assets = assets_routing_on_the_uri();
    let models = Models::start().await;
    let routing = StageRouting::of_stage("split-70-30").matching_uri_prefix(PREDICT_PREFIX);
    let envoy = Envoy::start(&routing, &models.both()).await;

    let output = lab_check("split-70-30", &envoy.url(), &["--format", "json"], Some(assets.path())).await;
    assert_eq!(output.code, 0, "{output:#?}");
    let report = &output.json()["stages"][0];
    let probe = &report["probe"];
    assert_eq!(probe["routing_proved_by"], "prediction", "{probe:#}");
    assert_contains!(probe["reason"].as_str().unwrap(), "a route matches on the URI");
    assert_eq!(
        status_requests(&models),
        0,
        "a status request would have found no route"
    );
    assert_eq!(
        probe["predictions_checked"].as_u64().unwrap(),
        assertion_requests(report)
    );

    // `--probe status` cannot be honoured for this stage: refused before any request, as a usage error.
    let before = (predictions(&models), status_requests(&models));
    let output = lab_check("split-70-30", &envoy.url(), &["--probe", "status"], Some(assets.path())).await;
    assert_eq!(output.code, 2, "{output:#?}");
    assert_contains!(output.stderr, "--probe status cannot prove stage \"split-70-30\"");
    assert_contains!(output.stderr, "a route matches on the URI");
    assert_contains!(output.stderr, "help: pass `--probe auto`");
    assert_eq!((predictions(&models), status_requests(&models)), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_whose_predictions_fail_fails_the_sample_though_its_status_answers() {
    let models = Models::start().await;
    // Every ResNet101 prediction answers 503 (after the gateway's two retries); its status requests are fine.
    models.resnet101.set_error_rate(1.0);
    let envoy = Envoy::start(&StageRouting::of_stage("split-70-30"), &models.both()).await;
    let output = lab_check("split-70-30", &envoy.url(), &["--format", "json"], None).await;
    assert_eq!(output.code, 1, "{output:#?}");
    let report = &output.json()["stages"][0];
    assert_eq!(report["verdict"], "fail", "{report:#}");
    assert_eq!(report["assertions"][0]["verdict"], "pass", "{report:#}");
    let sample = &report["probe"]["sample"];
    assert_eq!(sample["verdict"], "fail", "{report:#}");
    assert_contains!(sample["message"].as_str().unwrap(), "a sample prediction: HTTP 503");
    let by_version: BTreeMap<String, u64> = serde_json::from_value(sample["versions"].clone()).unwrap();
    assert!(!by_version.contains_key("resnet101"), "{sample:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_up_and_lab_stage_refuse_probe_status_before_doing_anything() {
    // Refused before the lock, the doctor or any apply: no fake tool or cluster is needed to see it.
    let assets = assets_routing_on_the_uri();
    for args in [
        vec!["lab", "up", "--probe", "status"],
        vec!["lab", "stage", "split-70-30", "--probe", "status"],
    ] {
        let output = Cli::new(&args)
            .env("CANARY_LAB_ASSETS", assets.path())
            .run_async()
            .await;
        assert_eq!(output.code, 2, "{args:?}: {output:#?}");
        assert_contains!(output.stderr, "--probe status cannot prove stage \"split-70-30\"");
        assert_contains!(output.stderr, "help: pass `--probe auto`");
    }
}
