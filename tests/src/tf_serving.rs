//! A stand-in for TensorFlow Serving's REST API on loopback, with deterministic per-model predictions and fault knobs.
//!
//! Each instance plays one model identity (`resnet50`, `resnet101`) served as `image_classifier` version 1, like
//! the lab's pods. Its predictions are 1000 softmax scores derived from a hash of the identity and the input, with
//! a top-1 class that differs between identities, so a response can be attributed by its fingerprint alone.
//! The endpoints follow <https://www.tensorflow.org/tfx/serving/api_rest>:
//! `POST /v1/models/M[/versions/V]:predict` (`instances` or `inputs`, `{"b64": …}` values, `signature_name`),
//! `GET /v1/models/M[/versions/V]` (status), `GET /v1/models/M[/versions/V]/metadata` (signature defs), and
//! errors as `{"error": "…"}` (400 for a bad body, 404 for an unknown model or version).
//! Fault knobs: a rate of 503s, a delay before answering, connection resets, and the whole server down.
//!
//! Each model also has a [`Latency`], the time a prediction takes (ResNet101 does about twice ResNet50's compute,
//! so the lab's canary answers slower). The same distributions drive [`SimulatedSplit`], the two stand-ins behind a
//! weighted route simulated in virtual time for `lab::traffic::probe::Probe::simulated`, where the simulation tests need
//! hundreds of thousands of requests that sockets could not serve in a test's time.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use lab::traffic::probe::{SimulatedExchange, SimulatedNetwork};
use lab::traffic::stats::SplitMix64;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The model name the lab's TF Serving pods serve (`--model_name=image_classifier`).
const MODEL_NAME: &str = "image_classifier";
/// The number of classes of the ImageNet models.
const CLASSES: usize = 1000;

/// How a stand-in server starts.
#[derive(Debug, Clone)]
pub struct TfServingConfig {
    /// The model identity whose predictions it gives, e.g. `resnet50`.
    pub identity: String,
    /// The model name in URLs (default `image_classifier`).
    pub model_name: String,
    /// Whether the model has the `serving_bytes` signature (image bytes in, as the lab's exported models do).
    pub bytes_signature: bool,
    /// How long a prediction takes (besides the delay knob); none by default.
    pub latency: Latency,
    /// How long a model-status request takes (besides the delay knob): no inference, so a few milliseconds at
    /// most; none by default.
    pub status_latency: Latency,
}

/// How long a model takes to answer a prediction: `base` stretched by a factor drawn uniformly from
/// [1 − `jitter`, 1 + `jitter`] for each request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// The typical time.
    pub base: Duration,
    /// The relative spread around it (0 ≤ jitter < 1).
    pub jitter: f64,
}

impl Latency {
    /// No time at all (the stand-in's default).
    pub const NONE: Latency = Latency {
        base: Duration::ZERO,
        jitter: 0.0,
    };

    /// `base` ± `jitter` (relative).
    pub fn around(base: Duration, jitter: f64) -> Latency {
        assert!((0.0..1.0).contains(&jitter), "jitter {jitter} must be within [0, 1)");
        Latency { base, jitter }
    }

    /// This latency `factor` times as long (a model doing `factor` times the compute).
    #[must_use]
    pub fn times(self, factor: f64) -> Latency {
        Latency {
            base: self.base.mul_f64(factor),
            ..self
        }
    }

    /// One request's time.
    pub fn draw(&self, random: &mut SplitMix64) -> Duration {
        let stretch = 1.0 + self.jitter * (2.0 * random.next_f64() - 1.0);
        self.base.mul_f64(stretch)
    }
}

/// Stand-in models behind one weighted route, simulated in virtual time: each request goes to a model with the
/// probability of its weight (as Envoy's weighted clusters pick, independently per request) and takes that model's
/// [`Latency`]. Answers carry `x-model-version`, as the lab's DestinationRule subsets add it.
#[derive(Debug)]
pub struct SimulatedSplit {
    /// (version, weight, latency) per model.
    models: Vec<(String, u32, Latency)>,
    total_weight: u32,
    random: Mutex<SplitMix64>,
    requests: AtomicU64,
}

impl SimulatedSplit {
    /// `models` as (version, weight, latency), drawing from a generator seeded with `seed`.
    pub fn new(models: &[(&str, u32, Latency)], seed: u64) -> SimulatedSplit {
        let total_weight = models.iter().map(|(_, weight, _)| weight).sum();
        assert!(total_weight > 0, "a route needs a positive weight");
        SimulatedSplit {
            models: models
                .iter()
                .map(|(version, weight, latency)| (version.to_string(), *weight, *latency))
                .collect(),
            total_weight,
            random: Mutex::new(SplitMix64::new(seed)),
            requests: AtomicU64::new(0),
        }
    }

    /// Requests it has answered.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl SimulatedNetwork for SimulatedSplit {
    fn exchange(&self) -> SimulatedExchange {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let mut random = self.random.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut pick = random.next_f64() * f64::from(self.total_weight);
        let mut chosen = &self.models[self.models.len() - 1];
        for model in &self.models {
            if pick < f64::from(model.1) {
                chosen = model;
                break;
            }
            pick -= f64::from(model.1);
        }
        SimulatedExchange {
            latency: chosen.2.draw(&mut random),
            status: 200,
            version: Some(chosen.0.clone()),
        }
    }
}

impl TfServingConfig {
    /// `identity` served as `image_classifier` version 1 with only the `serving_default` signature.
    pub fn new(identity: &str) -> TfServingConfig {
        TfServingConfig {
            identity: identity.to_string(),
            model_name: MODEL_NAME.to_string(),
            bytes_signature: false,
            latency: Latency::NONE,
            status_latency: Latency::NONE,
        }
    }

    /// Model-status requests take `latency`.
    #[must_use]
    pub fn with_status_latency(mut self, latency: Latency) -> TfServingConfig {
        self.status_latency = latency;
        self
    }

    /// Predictions take `latency`.
    #[must_use]
    pub fn with_latency(mut self, latency: Latency) -> TfServingConfig {
        self.latency = latency;
        self
    }

    /// Also offer the `serving_bytes` signature.
    #[must_use]
    pub fn with_bytes_signature(mut self) -> TfServingConfig {
        self.bytes_signature = true;
        self
    }
}

/// The fault knobs, shared between the test and the server.
#[derive(Debug, Default)]
struct Knobs {
    /// Share of predictions answered with 503, in millionths.
    error_rate_ppm: AtomicU64,
    /// Delay before every answer, in milliseconds.
    delay_ms: AtomicU64,
    /// Reset every connection at its next read.
    reset: AtomicBool,
    /// Predictions answered so far (including injected errors).
    predictions: AtomicU64,
    /// Model-status requests answered so far.
    status_requests: AtomicU64,
    /// Requests still to be answered as a gateway without endpoints answers them (`503 no healthy upstream`).
    unready_requests: AtomicU64,
    /// Connections accepted and not yet closed by the server.
    open_connections: AtomicU64,
    /// Notified whenever the server closes a connection.
    connection_closed: tokio::sync::Notify,
}

struct Shared {
    config: TfServingConfig,
    knobs: Knobs,
    /// Draws the latencies (seeded by the identity, so a run is repeatable as far as scheduling allows).
    random: Mutex<SplitMix64>,
}

/// A running stand-in server; it stops when dropped.
pub struct TfServing {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl TfServing {
    /// Starts a server on `127.0.0.1:0` for `identity` with the default configuration. Needs a tokio runtime.
    pub async fn start(identity: &str) -> TfServing {
        TfServing::start_with(TfServingConfig::new(identity)).await
    }

    /// Starts a server with `config`. Needs a tokio runtime.
    pub async fn start_with(config: TfServingConfig) -> TfServing {
        let seed = fnv1a(config.identity.as_bytes());
        let shared = Arc::new(Shared {
            config,
            knobs: Knobs::default(),
            random: Mutex::new(SplitMix64::new(seed)),
        });
        let app = Router::new()
            .fallback(handle)
            // Raw image payloads are several megabytes of JSON; TF Serving takes them, so the stand-in does too.
            .layer(DefaultBodyLimit::max(256 * 1024 * 1024))
            .with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stand-in TF Serving");
        let addr = listener.local_addr().expect("local addr");
        let listener = FaultyListener {
            inner: listener,
            shared: shared.clone(),
        };
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("stand-in TF Serving");
        });
        TfServing { addr, shared, server }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The model identity it plays.
    pub fn identity(&self) -> &str {
        &self.shared.config.identity
    }

    /// Answers this share (0–1) of predictions with 503, spread evenly (every 1/rate-th request), not at random.
    pub fn set_error_rate(&self, rate: f64) {
        let ppm = (rate.clamp(0.0, 1.0) * 1e6).round() as u64;
        self.shared.knobs.error_rate_ppm.store(ppm, Ordering::SeqCst);
    }

    /// Answers the next `requests` requests of any kind as the Istio gateway in front of the pod does while istiod
    /// has not yet pushed its endpoint (EDS lags readiness): Envoy's local reply `503` with the plain-text body
    /// `no healthy upstream` (envoyproxy/envoy `source/common/router/router.cc`, `sendNoHealthyUpstreamResponse`).
    pub fn answer_no_healthy_upstream(&self, requests: u64) {
        self.shared.knobs.unready_requests.store(requests, Ordering::SeqCst);
    }

    /// Waits this long before answering every request.
    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .knobs
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Resets (TCP RST) every connection at its next read, so requests in flight and new ones fail.
    pub fn set_reset(&self, reset: bool) {
        self.shared.knobs.reset.store(reset, Ordering::SeqCst);
    }

    /// Takes the server down for good: the port refuses connections and open connections are reset.
    pub fn shut_down(&self) {
        self.shared.knobs.reset.store(true, Ordering::SeqCst);
        self.server.abort();
    }

    /// Predictions answered so far (including injected errors).
    pub fn predictions(&self) -> u64 {
        self.shared.knobs.predictions.load(Ordering::SeqCst)
    }

    /// Model-status requests (`GET /v1/models/M[/versions/V]`) answered so far.
    pub fn status_requests(&self) -> u64 {
        self.shared.knobs.status_requests.load(Ordering::SeqCst)
    }

    /// Waits until the server has closed every connection it accepted (each after reading the client's close, so
    /// by then it has counted every request those connections carried); panics after `timeout`.
    pub async fn wait_until_every_connection_closed(&self, timeout: Duration) {
        let knobs = &self.shared.knobs;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the check, so a close between the check and the wait is not missed.
            let closed = knobs.connection_closed.notified();
            let open = knobs.open_connections.load(Ordering::SeqCst);
            if open == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, closed).await.is_err() {
                panic!(
                    "{open} connections to the stand-in {} still open after {timeout:?}",
                    self.identity()
                );
            }
        }
    }
}

impl Drop for TfServing {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// The predictions this identity gives for one instance: softmax scores over the 1000 ImageNet classes (`CLASSES`).
///
/// Deterministic in (identity, instance); the top-1 class is shifted by an amount that depends on the identity only,
/// so two identities never agree on the top-1 class of the same input.
pub fn predictions_for(identity: &str, instance: &Value) -> Vec<f64> {
    let input_hash = fnv1a(instance.to_string().as_bytes());
    let identity_hash = fnv1a(identity.as_bytes());
    let mut state = input_hash ^ identity_hash.rotate_left(17);
    let mut logits: Vec<f64> = (0..CLASSES)
        .map(|_| {
            state = splitmix64(state);
            (state >> 11) as f64 / (1u64 << 53) as f64 * 4.0
        })
        .collect();
    let top = ((input_hash % CLASSES as u64) + 1 + identity_hash % (CLASSES as u64 - 1)) % CLASSES as u64;
    logits[top as usize] += 6.0;
    let max = logits.iter().cloned().fold(f64::MIN, f64::max);
    let sum: f64 = logits.iter().map(|logit| (logit - max).exp()).sum();
    for logit in &mut logits {
        *logit = (*logit - max).exp() / sum;
    }
    logits
}

/// The index of the largest score.
pub fn top1(scores: &[f64]) -> usize {
    let mut best = 0;
    for (index, score) in scores.iter().enumerate() {
        if *score > scores[best] {
            best = index;
        }
    }
    best
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What a request path asks for.
enum Target {
    Status,
    Metadata,
    Predict,
}

/// Every request: parse `/v1/models/NAME[/versions/V](:predict|/metadata)?` by hand (the `:` is not a separator).
async fn handle(State(shared): State<Arc<Shared>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let unready = shared
        .knobs
        .unready_requests
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1));
    if unready.is_ok() {
        let headers = [(axum::http::header::CONTENT_TYPE, "text/plain")];
        return (StatusCode::SERVICE_UNAVAILABLE, headers, "no healthy upstream").into_response();
    }
    let path = uri.path();
    let Some(rest) = path.strip_prefix("/v1/models/") else {
        return error(StatusCode::NOT_FOUND, &format!("Malformed request: {method} {path}"));
    };
    let (rest, target) = match (rest.strip_suffix(":predict"), rest.strip_suffix("/metadata")) {
        (Some(rest), _) => (rest, Target::Predict),
        (None, Some(rest)) => (rest, Target::Metadata),
        (None, None) => (rest, Target::Status),
    };
    let (model, version) = match rest.split_once("/versions/") {
        Some((model, version)) => (model, Some(version)),
        None => (rest, None),
    };
    if model != shared.config.model_name {
        let request = match version {
            Some(version) => format!("Specific({model}, {version})"),
            None => format!("Latest({model})"),
        };
        return error(
            StatusCode::NOT_FOUND,
            &format!("Servable not found for request: {request}"),
        );
    }
    if let Some(version) = version.filter(|version| *version != "1") {
        let message = format!("Servable not found for request: Specific({model}, {version})");
        return error(StatusCode::NOT_FOUND, &message);
    }
    let expected_method = match target {
        Target::Predict => Method::POST,
        Target::Status | Target::Metadata => Method::GET,
    };
    if method != expected_method {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("Malformed request: {method} {path}"),
        );
    }
    match target {
        Target::Status => status(&shared).await,
        Target::Metadata => axum::Json(metadata(&shared.config)).into_response(),
        Target::Predict => predict(&shared, &body).await,
    }
}

/// TF Serving 2.5.1's answer to `GET /v1/models/M`: the `GetModelStatusResponse` printed by protobuf's
/// `MessageToJsonString` with `always_print_primitive_fields` (tensorflow/serving
/// `tensorflow_serving/model_servers/http_rest_api_handler.cc`, `ProcessModelStatusRequest`; the message in
/// `tensorflow_serving/apis/get_model_status.proto`): one entry per version, its int64 `version` as a JSON string,
/// `state` the enum's name, `status` a `StatusProto` whose `error_code` is `OK` and `error_message` empty. No
/// inference: it takes the status latency (and the delay knob), counts as a status request, never a prediction.
async fn status(shared: &Shared) -> Response {
    shared.knobs.status_requests.fetch_add(1, Ordering::SeqCst);
    let delay = Duration::from_millis(shared.knobs.delay_ms.load(Ordering::SeqCst));
    let lookup = {
        let mut random = shared.random.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        shared.config.status_latency.draw(&mut random)
    };
    if !(delay + lookup).is_zero() {
        tokio::time::sleep(delay + lookup).await;
    }
    axum::Json(json!({
        "model_version_status": [{
            "version": "1",
            "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}
        }]
    }))
    .into_response()
}

async fn predict(shared: &Shared, body: &[u8]) -> Response {
    let knobs = &shared.knobs;
    let count = knobs.predictions.fetch_add(1, Ordering::SeqCst);
    let delay = Duration::from_millis(knobs.delay_ms.load(Ordering::SeqCst));
    let compute = {
        let mut random = shared.random.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        shared.config.latency.draw(&mut random)
    };
    if !(delay + compute).is_zero() {
        tokio::time::sleep(delay + compute).await;
    }
    // An even spread: request n fails when floor((n + 1) · rate) passes an integer.
    let ppm = knobs.error_rate_ppm.load(Ordering::SeqCst);
    if (count + 1) * ppm / 1_000_000 > count * ppm / 1_000_000 {
        return error(StatusCode::SERVICE_UNAVAILABLE, "injected fault: service unavailable");
    }
    let request: Value = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(parse_error) => return error(StatusCode::BAD_REQUEST, &format!("JSON Parse error: {parse_error}")),
    };
    let signature = request
        .get("signature_name")
        .and_then(Value::as_str)
        .unwrap_or("serving_default");
    let known_signature =
        signature == "serving_default" || (signature == "serving_bytes" && shared.config.bytes_signature);
    if !known_signature {
        let message = format!("Serving signature name: \"{signature}\" not found in signature def");
        return error(StatusCode::BAD_REQUEST, &message);
    }
    let (instances, columnar) = match (request.get("instances"), request.get("inputs")) {
        (Some(Value::Array(instances)), None) => (instances.clone(), false),
        (None, Some(Value::Array(inputs))) => (inputs.clone(), true),
        (None, Some(input)) => (vec![input.clone()], true),
        (Some(_), Some(_)) => return error(StatusCode::BAD_REQUEST, "Not both 'instances' and 'inputs' can be set"),
        (Some(_), None) => return error(StatusCode::BAD_REQUEST, "Expecting 'instances' to be an list/array"),
        (None, None) => return error(StatusCode::BAD_REQUEST, "Missing 'inputs' or 'instances' key"),
    };
    if instances.is_empty() {
        return error(StatusCode::BAD_REQUEST, "Expecting 'instances' to be a non-empty list");
    }
    let mut predictions = Vec::with_capacity(instances.len());
    for instance in &instances {
        if let Err(message) = validate_instance(signature, instance) {
            return error(StatusCode::BAD_REQUEST, &message);
        }
        predictions.push(predictions_for(&shared.config.identity, instance));
    }
    if columnar {
        axum::Json(json!({ "outputs": predictions })).into_response()
    } else {
        axum::Json(json!({ "predictions": predictions })).into_response()
    }
}

/// `serving_default` takes an H×W×3 array of numbers (optionally named `input_1`); `serving_bytes` a `{"b64": …}`
/// string (optionally named `image_bytes`).
fn validate_instance(signature: &str, instance: &Value) -> Result<(), String> {
    match signature {
        "serving_bytes" => {
            let b64 = instance
                .get("image_bytes")
                .unwrap_or(instance)
                .get("b64")
                .and_then(Value::as_str)
                .ok_or("expected a {\"b64\": …} string for input image_bytes")?;
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|decode_error| format!("Unable to base64 decode: {decode_error}"))?;
            Ok(())
        }
        _ => {
            let tensor = instance.get("input_1").unwrap_or(instance);
            let mut rank = 0;
            let mut inner = tensor;
            while let Value::Array(items) = inner {
                let first = items.first().ok_or("Expecting a non-empty list for input_1")?;
                rank += 1;
                inner = first;
            }
            let innermost_ok = inner.is_number() || inner.get("b64").is_some();
            match (rank, innermost_ok) {
                (3, true) => Ok(()),
                _ => Err(format!(
                    "input_1: expected a rank-3 (H×W×3) tensor of numbers per instance, found rank {rank}"
                )),
            }
        }
    }
}

/// The metadata response in TF Serving's format (`GetModelMetadataResponse` as JSON).
fn metadata(config: &TfServingConfig) -> Value {
    let dim = |size: i64| json!({"size": size.to_string(), "name": ""});
    let mut signatures = serde_json::Map::new();
    signatures.insert(
        "serving_default".to_string(),
        json!({
            "inputs": {"input_1": {
                "dtype": "DT_FLOAT",
                "tensor_shape": {"dim": [dim(-1), dim(-1), dim(-1), dim(3)], "unknown_rank": false},
                "name": "serving_default_input_1:0"
            }},
            "outputs": {"predictions": {
                "dtype": "DT_FLOAT",
                "tensor_shape": {"dim": [dim(-1), dim(CLASSES as i64)], "unknown_rank": false},
                "name": "StatefulPartitionedCall:0"
            }},
            "method_name": "tensorflow/serving/predict"
        }),
    );
    if config.bytes_signature {
        signatures.insert(
            "serving_bytes".to_string(),
            json!({
                "inputs": {"image_bytes": {
                    "dtype": "DT_STRING",
                    "tensor_shape": {"dim": [dim(-1)], "unknown_rank": false},
                    "name": "serving_bytes_image_bytes:0"
                }},
                "outputs": {"predictions": {
                    "dtype": "DT_FLOAT",
                    "tensor_shape": {"dim": [dim(-1), dim(CLASSES as i64)], "unknown_rank": false},
                    "name": "StatefulPartitionedCall_1:0"
                }},
                "method_name": "tensorflow/serving/predict"
            }),
        );
    }
    signatures.insert(
        "__saved_model_init_op".to_string(),
        json!({"inputs": {}, "outputs": {"__saved_model_init_op": {
            "dtype": "DT_INVALID", "tensor_shape": {"dim": [], "unknown_rank": true}, "name": "NoOp"
        }}, "method_name": ""}),
    );
    json!({
        "model_spec": {"name": config.model_name, "signature_name": "", "version": "1"},
        "metadata": {"signature_def": {"signature_def": signatures}}
    })
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// Accepts connections whose reads fail (with a TCP reset) while the reset knob is on.
struct FaultyListener {
    inner: TcpListener,
    shared: Arc<Shared>,
}

impl axum::serve::Listener for FaultyListener {
    type Io = FaultyStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (FaultyStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    self.shared.knobs.open_connections.fetch_add(1, Ordering::SeqCst);
                    let stream = FaultyStream {
                        inner: stream,
                        shared: self.shared.clone(),
                    };
                    return (stream, addr);
                }
                // Out of file descriptors and the like: try again, as axum's own listener does.
                Err(_) => tokio::task::yield_now().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A TCP stream that turns into a reset when the knob says so.
struct FaultyStream {
    inner: TcpStream,
    shared: Arc<Shared>,
}

impl Drop for FaultyStream {
    fn drop(&mut self) {
        let knobs = &self.shared.knobs;
        knobs.open_connections.fetch_sub(1, Ordering::SeqCst);
        knobs.connection_closed.notify_waiters();
    }
}

impl AsyncRead for FaultyStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.shared.knobs.reset.load(Ordering::SeqCst) {
            // SO_LINGER 0 makes the close a RST instead of a FIN.
            let _ = self.inner.set_zero_linger();
            return Poll::Ready(Err(std::io::ErrorKind::ConnectionReset.into()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultyStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_disagree_on_top1_and_agree_with_themselves() {
        for instance in [
            json!([[[1, 2, 3]]]),
            json!({"b64": "aGVsbG8="}),
            json!([[[0, 0, 0], [9, 9, 9]]]),
        ] {
            let resnet50 = predictions_for("resnet50", &instance);
            let resnet101 = predictions_for("resnet101", &instance);
            assert_eq!(resnet50, predictions_for("resnet50", &instance));
            assert_ne!(top1(&resnet50), top1(&resnet101));
            assert!((resnet50.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }
}
