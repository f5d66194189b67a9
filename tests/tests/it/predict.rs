//! `lab predict` against a small stand-in for TF Serving's REST API (metadata and predict) on loopback.
//!
//! The stand-in answers like TF Serving behind the lab's routing: `x-model-version` names the model, requests with
//! `user-group: canary` go to `resnet101`, and the scores put `mortarboard` (667) first. It records every request
//! body so the tests can check what was sent.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use canary_lab_tests::assert_contains;
use canary_lab_tests::cli::Cli;
use lab::traffic::payload::DEFAULT_IMAGE;
use lab::traffic::payload::{PayloadKind, build_payload};
use serde_json::{Value, json};

/// How the stand-in behaves.
#[derive(Clone, Copy)]
enum Scenario {
    /// Metadata lists only `serving_default`.
    DefaultSignatureOnly,
    /// Metadata lists `serving_default` and `serving_bytes`.
    WithBytesSignature,
    /// Every prediction fails with TF Serving's "servable not found" (HTTP 404).
    ServableMissing,
}

#[derive(Clone)]
struct StandIn {
    scenario: Scenario,
    bodies: Arc<Mutex<Vec<Bytes>>>,
}

/// A running stand-in; it stops when the test's runtime ends.
struct TfServing {
    url: String,
    bodies: Arc<Mutex<Vec<Bytes>>>,
}

impl TfServing {
    async fn start(scenario: Scenario) -> TfServing {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let state = StandIn {
            scenario,
            bodies: bodies.clone(),
        };
        // TF Serving takes large bodies (the raw payload is ~2.5 MB); axum's default limit is 2 MB.
        let app = Router::new()
            .fallback(answer)
            .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TfServing { url, bodies }
    }

    fn bodies(&self) -> Vec<Bytes> {
        self.bodies.lock().unwrap().clone()
    }
}

async fn answer(
    axum::extract::State(state): axum::extract::State<StandIn>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let canary = headers.get("user-group").is_some_and(|value| value == "canary");
    let version = if canary { "resnet101" } else { "resnet50" };
    match (method, uri.path()) {
        (Method::GET, "/v1/models/image_classifier/metadata") => {
            let mut signatures = json!({"serving_default": {"method_name": "tensorflow/serving/predict"}});
            if matches!(state.scenario, Scenario::WithBytesSignature) {
                signatures["serving_bytes"] = json!({"method_name": "tensorflow/serving/predict"});
            }
            axum::Json(json!({
                "model_spec": {"name": "image_classifier", "version": "1"},
                "metadata": {"signature_def": {"signature_def": signatures}}
            }))
            .into_response()
        }
        (Method::POST, "/v1/models/image_classifier/versions/1:predict") => {
            state.bodies.lock().unwrap().push(body);
            if matches!(state.scenario, Scenario::ServableMissing) {
                let error = json!({"error": "Servable not found for request: Specific(image_classifier, 1)"});
                return (StatusCode::NOT_FOUND, [("x-model-version", version)], axum::Json(error)).into_response();
            }
            let mut scores = vec![0.0001f32; 1000];
            scores[667] = 0.7;
            scores[457] = 0.2;
            scores[906] = 0.05;
            (
                [("x-model-version", version)],
                axum::Json(json!({"predictions": [scores]})),
            )
                .into_response()
        }
        _ => (StatusCode::NOT_FOUND, "404 page not found").into_response(),
    }
}

#[tokio::test]
async fn keras_predictions_report_labels_versions_and_a_summary() {
    let server = TfServing::start(Scenario::DefaultSignatureOnly).await;
    let args = [
        "lab",
        "predict",
        "--url",
        &server.url,
        "--payload",
        "keras",
        "--count",
        "3",
        "--top",
        "3",
    ];
    let output = Cli::new(args).run_async().await;
    let cli = Cli::new([args.as_slice(), &["--header", "user-group=canary", "--format", "json"]].concat());
    let canary = cli.run_async().await.json();

    assert_eq!(output.code, 0, "{output:#?}");
    assert!(
        output
            .stdout
            .starts_with(&format!("{} with the keras payload\n", server.url)),
        "{}",
        output.stdout
    );
    assert_contains!(output.stdout, "served by resnet50");
    assert_contains!(output.stdout, "mortarboard");
    assert_contains!(
        output.stdout,
        "3 requests (keras payload): 3 ok, 0 failed; served by resnet50 3"
    );

    assert_eq!(canary["payload"], "keras");
    assert_eq!(canary["summary"]["by_version"], json!({"resnet101": 3}));
    let first = &canary["requests"][0];
    assert_eq!(first["status"], 200);
    assert_eq!(first["model_version"], "resnet101");
    let top: Vec<u64> = first["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|class| class["index"].as_u64().unwrap())
        .collect();
    assert_eq!(top, vec![667, 457, 906]);
    assert_eq!(first["top"][1]["label"], "bow tie, bow-tie, bowtie");

    // Every request carried the very same keras body of the default image.
    let expected = build_payload(PayloadKind::Keras, DEFAULT_IMAGE).unwrap().body;
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 6);
    assert!(bodies.iter().all(|body| *body == expected));
}

#[tokio::test]
async fn auto_sends_image_bytes_when_the_model_has_a_serving_bytes_signature() {
    let server = TfServing::start(Scenario::WithBytesSignature).await;
    let output = Cli::new(["lab", "predict", "--url", &server.url, "--format", "json"])
        .run_async()
        .await;
    assert_eq!(output.code, 0, "{output:#?}");
    assert_eq!(output.json()["payload"], "bytes");
    let sent: Value = serde_json::from_slice(&server.bodies()[0]).unwrap();
    let expected: Value =
        serde_json::from_slice(&build_payload(PayloadKind::Bytes, DEFAULT_IMAGE).unwrap().body).unwrap();
    assert_eq!(sent, expected);
    assert_eq!(sent["signature_name"], "serving_bytes");
}

#[tokio::test]
async fn auto_sends_keras_input_without_a_serving_bytes_signature() {
    let server = TfServing::start(Scenario::DefaultSignatureOnly).await;
    let output = Cli::new(["lab", "predict", "--url", &server.url, "--format", "json"])
        .run_async()
        .await;
    assert_eq!(output.code, 0, "{output:#?}");
    assert_eq!(output.json()["payload"], "keras");
    let sent: Value = serde_json::from_slice(&server.bodies()[0]).unwrap();
    assert_eq!(sent["instances"][0].as_array().unwrap().len(), 224);
}

#[tokio::test]
async fn a_tf_serving_error_is_shown_with_its_status_and_exits_1() {
    let server = TfServing::start(Scenario::ServableMissing).await;
    let output = Cli::new(["lab", "predict", "--url", &server.url, "--payload", "raw"])
        .run_async()
        .await;
    assert_eq!(output.code, 1, "{output:#?}");
    let mut lines = output.stdout.lines();
    assert_eq!(
        lines.next(),
        Some(format!("{} with the raw payload", server.url).as_str())
    );
    let line = lines.next().unwrap_or_default();
    assert!(line.starts_with("request 1: failed"), "{}", output.stdout);
    assert_contains!(line, "HTTP 404 Not Found");
    assert_contains!(
        line,
        "\"Servable not found for request: Specific(image_classifier, 1)\""
    );
    assert_contains!(line, "from resnet50");
    // The raw payload is the re-saved image at full size, 600 rows of 512 pixels.
    let sent: Value = serde_json::from_slice(&server.bodies()[0]).unwrap();
    assert_eq!(sent["instances"][0].as_array().unwrap().len(), 600);
}

#[tokio::test]
async fn the_url_comes_from_the_state_dir_and_without_one_the_error_names_url_and_lab_up() {
    let server = TfServing::start(Scenario::DefaultSignatureOnly).await;
    let recorded = Cli::new(["lab", "predict", "--format", "json"]);
    // `lab up` keeps its state per minikube profile.
    let state_dir = recorded.home().join("state/canary-lab/minikube");
    std::fs::create_dir_all(&state_dir).unwrap();
    std::fs::write(state_dir.join("ingress-url"), format!("{}\n", server.url)).unwrap();
    let output = recorded.run_async().await;
    assert_eq!(output.code, 0, "{output:#?}");
    assert_eq!(output.json()["url"], server.url.as_str());

    let output = Cli::new(["lab", "predict"]).run_async().await;
    assert_eq!(output.code, 1, "{output:#?}");
    assert_contains!(output.stderr, "no ingress URL is known");
    assert!(
        output.stderr.contains("--url") && output.stderr.contains("cargo xtask lab up"),
        "{}",
        output.stderr
    );
}

#[tokio::test]
async fn an_unreachable_url_fails_each_request_with_the_reason() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let output = Cli::new([
        "lab",
        "predict",
        "--url",
        &url,
        "--payload",
        "keras",
        "--format",
        "json",
    ])
    .run_async()
    .await;
    assert_eq!(output.code, 1, "{output:#?}");
    let report = output.json();
    let error = report["requests"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("Connection refused") || error.contains("connection refused"),
        "{error}"
    );
    assert_eq!(report["summary"]["failed"], 1);

    // With `--payload auto` the metadata request fails first: exit 1 with the reason and what to do.
    let output = Cli::new(["lab", "predict", "--url", &url]).run_async().await;
    assert_eq!(output.code, 1, "{output:#?}");
    assert_contains!(output.stderr, "asking the model's signatures for `--payload auto`");
    assert!(
        output.stderr.to_lowercase().contains("connection refused"),
        "{}",
        output.stderr
    );
    assert_contains!(output.stderr, "help: check the URL");
}

#[tokio::test]
async fn a_full_predict_url_is_used_as_given_and_auto_asks_that_models_metadata() {
    // `--url` may name the predict URL itself, as `lab check --url` allows. Before, `lab predict` appended the lab's
    // predict path to it again, and `--payload auto` asked for the metadata at a path trimmed off the predict URL.
    let server = TfServing::start(Scenario::WithBytesSignature).await;
    let url = format!("{}/v1/models/image_classifier/versions/1:predict", server.url);
    let output = Cli::new(["lab", "predict", "--url", &url, "--format", "json"])
        .run_async()
        .await;
    assert_eq!(output.code, 0, "{output:#?}");
    let report = output.json();
    assert_eq!(report["payload"], "bytes");
    assert_eq!(report["summary"]["ok"], 1, "{report:#}");
}
