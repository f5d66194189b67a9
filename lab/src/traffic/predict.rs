//! `lab predict`: send predictions through the ingress and report the top classes, the serving model and latency.
//!
//! The body is built once ([`crate::traffic::payload`]) and reused for every request. Each request's outcome is a value
//! ([`PredictionRecord`]): a TF Serving error (`{"error": "…"}` with its HTTP status), a transport failure or a
//! malformed answer is recorded with the version that answered, when the response said, and does not stop the
//! run; the report says how many failed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::LabError;
use crate::error::error_chain;
use crate::traffic::labels::{ClassScore, top_k};
use crate::traffic::payload::{Payload, PayloadChoice, PayloadKind, build_payload};
use crate::traffic::tf_serving;

/// How long `--payload auto` keeps asking for the metadata while the gateway answers 503: the settle timeout's
/// order of magnitude, well past istiod's longest push debounce (`PILOT_DEBOUNCE_MAX`, 10 s).
pub const METADATA_RETRY_WINDOW: Duration = Duration::from_secs(30);
/// The pause between those attempts.
pub const METADATA_RETRY_INTERVAL: Duration = Duration::from_millis(250);

/// Everything `lab predict` needs, resolved from flags.
#[derive(Debug, Clone)]
pub struct PredictPlan {
    /// The ingress URL, e.g. `http://127.0.0.1:31380`.
    pub url: String,
    /// The image file's bytes.
    pub image: Vec<u8>,
    /// Request headers, e.g. `user-group: canary`.
    pub headers: Vec<(String, String)>,
    /// How many classes to show.
    pub top: usize,
    /// How many requests to send.
    pub count: usize,
    /// Which body to send.
    pub payload: PayloadChoice,
}

/// What a run of predictions found.
#[derive(Debug, Clone, Serialize)]
pub struct PredictReport {
    /// The ingress URL.
    pub url: String,
    /// The kind of body sent.
    pub payload: &'static str,
    /// The request headers sent.
    pub request_headers: BTreeMap<String, String>,
    /// One record per request, in order.
    pub requests: Vec<PredictionRecord>,
    /// Counts and latency over all requests.
    pub summary: PredictSummary,
}

/// One request's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct PredictionRecord {
    /// 1-based request number.
    pub request: usize,
    /// The HTTP status, when a response came.
    pub status: Option<u16>,
    /// The `x-model-version` response header, when present.
    pub model_version: Option<String>,
    /// From sending the request to the end of the response body, in milliseconds.
    pub latency_ms: f64,
    /// The top classes (empty on failure).
    pub top: Vec<ClassScore>,
    /// What went wrong, in one line; `None` for a good prediction.
    pub error: Option<String>,
}

/// Counts and latency over a run.
#[derive(Debug, Clone, Serialize)]
pub struct PredictSummary {
    /// Requests sent.
    pub requests: usize,
    /// Requests that returned predictions.
    pub ok: usize,
    /// Requests that failed.
    pub failed: usize,
    /// Good predictions per `x-model-version` (`unknown` when the header was missing).
    pub by_version: BTreeMap<String, usize>,
    /// Median latency of all requests, milliseconds.
    pub latency_p50_ms: f64,
    /// 95th percentile latency, milliseconds.
    pub latency_p95_ms: f64,
    /// Largest latency, milliseconds.
    pub latency_max_ms: f64,
}

/// Parses a `--header` value: `name=value` or `name: value`, whose name is an HTTP token and whose value has no
/// control characters (what reqwest would refuse only when the request is built).
pub fn parse_header(text: &str) -> anyhow::Result<(String, String)> {
    let split = text.split_once('=').or_else(|| text.split_once(':'));
    let Some((name, value)) = split.map(|(name, value)| (name.trim(), value.trim())) else {
        anyhow::bail!("header \"{text}\" is not `name=value`\nhelp: e.g. `--header user-group=canary`");
    };
    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        anyhow::bail!(
            "\"{name}\" is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~, no spaces)\nhelp: e.g. `--header user-group=canary`"
        );
    }
    if reqwest::header::HeaderValue::from_str(value).is_err() {
        anyhow::bail!("the value of header \"{name}\" holds characters HTTP does not allow");
    }
    Ok((name.to_string(), value.to_string()))
}

/// Sends `plan.count` predictions and records each.
pub async fn run_predictions(plan: &PredictPlan) -> anyhow::Result<PredictReport> {
    let client = PredictClient::new(&plan.url)?;
    let kind = match plan.payload {
        PayloadChoice::Fixed(kind) => kind,
        PayloadChoice::Auto => client.payload_kind_from_metadata().await?,
    };
    let payload = build_payload(kind, &plan.image).context("building the prediction payload")?;
    let mut requests = Vec::with_capacity(plan.count);
    for request in 1..=plan.count {
        requests.push(client.predict(request, &payload, &plan.headers, plan.top).await);
    }
    let summary = summarise(&requests);
    Ok(PredictReport {
        url: client.base_url.clone(),
        payload: kind.as_str(),
        request_headers: plan.headers.iter().cloned().collect(),
        requests,
        summary,
    })
}

/// An HTTP client for one TF Serving REST endpoint (through the ingress), speaking through [`crate::traffic::tf_serving`].
#[derive(Debug, Clone)]
pub struct PredictClient {
    http: reqwest::Client,
    base_url: String,
    predict_url: String,
}

impl PredictClient {
    /// A client for `url` (an ingress root, no trailing slash needed, or a full predict URL, as
    /// [`tf_serving::predict_url`] reads it) with connect and idle timeouts.
    pub fn new(url: &str) -> anyhow::Result<PredictClient> {
        let http = crate::http::client(crate::http::HttpTimeouts {
            connect: Duration::from_secs(5),
            // A cold TF Serving answers its first prediction slowly; silence longer than this is a failure.
            idle: Duration::from_secs(60),
        })?;
        PredictClient::with_http(url, http)
    }

    /// A client for `url` whose every request, the metadata's included, ends within `request_timeout` (connecting
    /// and reading together), as `lab check --request-timeout` promises.
    pub fn with_request_timeout(url: &str, request_timeout: Duration) -> anyhow::Result<PredictClient> {
        PredictClient::with_http(url, crate::http::client_with_total_timeout(request_timeout)?)
    }

    fn with_http(url: &str, http: reqwest::Client) -> anyhow::Result<PredictClient> {
        let base_url = url.trim_end_matches('/').to_string();
        Ok(PredictClient {
            http,
            predict_url: tf_serving::predict_url(&base_url)?,
            base_url,
        })
    }

    /// `bytes` when the model has a `serving_bytes` signature, else `keras`; a model without metadata (404) is
    /// treated as having only `serving_default`. A `503` is asked again every [`METADATA_RETRY_INTERVAL`] for up to
    /// [`METADATA_RETRY_WINDOW`]: right after a rollout the gateway answers `503 no healthy upstream` until istiod
    /// has pushed the new pod's endpoint (EDS lags readiness), and that is propagation, not an answer.
    pub async fn payload_kind_from_metadata(&self) -> anyhow::Result<PayloadKind> {
        const HELP: &str =
            "check the URL (has `cargo xtask lab up` finished?), or choose the body with `--payload keras|raw|bytes`";
        let url = tf_serving::metadata_url(&self.base_url)?;
        let asking = "asking the model's signatures for `--payload auto`";
        let started = tokio::time::Instant::now();
        let mut attempts = 1;
        let response = loop {
            let response = match self.http.get(&url).send().await {
                Ok(response) => response,
                Err(error) => {
                    let message = format!("{asking}: GET {url}: {}", error_chain(&error));
                    return Err(LabError::not_ready(message, HELP).into());
                }
            };
            let propagating = response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE;
            if !propagating || started.elapsed() + METADATA_RETRY_INTERVAL > METADATA_RETRY_WINDOW {
                break response;
            }
            tracing::info!(%url, attempts, "the gateway answered 503 (endpoints still propagating); asking again");
            tokio::time::sleep(METADATA_RETRY_INTERVAL).await;
            attempts += 1;
        };
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            tracing::warn!(%url, "the model has no metadata endpoint; sending the keras payload");
            return Ok(PayloadKind::Keras);
        }
        let status = response.status();
        let text = match response.text().await {
            Ok(text) => text,
            Err(error) => {
                let message = format!("{asking}: reading the answer of GET {url}: {}", error_chain(&error));
                return Err(LabError::not_ready(message, HELP).into());
            }
        };
        if !status.is_success() {
            let tries = match attempts {
                1 => String::new(),
                attempts => format!(" ({attempts} times over {:.0}s)", started.elapsed().as_secs_f64()),
            };
            let message = format!(
                "{asking}: GET {url} answered {status}{tries}: {}",
                tf_serving::server_error_message(&text)
            );
            return Err(LabError::not_ready(message, HELP).into());
        }
        let metadata: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{asking}: GET {url} answered with malformed JSON"))?;
        Ok(tf_serving::payload_kind_for_metadata(&metadata))
    }

    /// Sends one prediction; never fails, the outcome is in the record.
    pub async fn predict(
        &self,
        request: usize,
        payload: &Payload,
        headers: &[(String, String)],
        top: usize,
    ) -> PredictionRecord {
        let started = Instant::now();
        let answer = tf_serving::predict(&self.http, &self.predict_url, &payload.body, headers).await;
        let mut record = PredictionRecord {
            request,
            status: None,
            model_version: None,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            top: Vec::new(),
            error: None,
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                if let tf_serving::PredictError::Body {
                    status, model_version, ..
                } = &error
                {
                    record.status = Some(status.as_u16());
                    record.model_version = model_version.clone();
                }
                record.error = Some(error.to_string());
                return record;
            }
        };
        record.status = Some(answer.status.as_u16());
        record.model_version = answer.model_version.clone();
        match answer.first_scores() {
            Ok(scores) => {
                let scores: Vec<f32> = scores.into_iter().map(|score| score as f32).collect();
                record.top = top_k(&scores, top);
            }
            Err(error) => record.error = Some(error.to_string()),
        }
        record
    }
}

/// Counts by outcome and version, and latency percentiles (as [`crate::traffic::stats::percentile`]) over every request.
fn summarise(requests: &[PredictionRecord]) -> PredictSummary {
    let ok = requests.iter().filter(|record| record.error.is_none()).count();
    let mut by_version = BTreeMap::new();
    for record in requests.iter().filter(|record| record.error.is_none()) {
        let version = record.model_version.clone().unwrap_or_else(|| "unknown".to_string());
        *by_version.entry(version).or_insert(0) += 1;
    }
    let mut latencies: Vec<f64> = requests.iter().map(|record| record.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    PredictSummary {
        requests: requests.len(),
        ok,
        failed: requests.len() - ok,
        by_version,
        latency_p50_ms: crate::traffic::stats::percentile(&latencies, 50.0),
        latency_p95_ms: crate::traffic::stats::percentile(&latencies, 95.0),
        latency_max_ms: latencies.last().copied().unwrap_or(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(latency_ms: f64, version: Option<&str>, error: Option<&str>) -> PredictionRecord {
        PredictionRecord {
            request: 1,
            status: Some(200),
            model_version: version.map(str::to_string),
            latency_ms,
            top: Vec::new(),
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn headers_parse_with_equals_or_colon() {
        assert_eq!(
            parse_header("user-group=canary").unwrap(),
            ("user-group".into(), "canary".into())
        );
        assert_eq!(
            parse_header("user-group: canary").unwrap(),
            ("user-group".into(), "canary".into())
        );
        let error = parse_header("nonsense").unwrap_err().to_string();
        assert!(error.contains("help: e.g. `--header user-group=canary`"), "{error}");
        // What reqwest would refuse only when the request is built.
        assert!(parse_header("bad header=x").is_err());
        assert!(parse_header("x=a\u{7}b").is_err());
    }

    #[test]
    fn summary_counts_versions_and_percentiles() {
        let requests: Vec<PredictionRecord> = (1..=20)
            .map(|index| match index {
                20 => record(index as f64, Some("resnet101"), Some("HTTP 503")),
                index if index % 2 == 0 => record(index as f64, Some("resnet101"), None),
                index => record(index as f64, None, None),
            })
            .collect();
        let summary = summarise(&requests);
        assert_eq!((summary.requests, summary.ok, summary.failed), (20, 19, 1));
        assert_eq!(summary.by_version["resnet101"], 9);
        assert_eq!(summary.by_version["unknown"], 10);
        assert_eq!(summary.latency_p50_ms, 10.5);
        assert!(
            (summary.latency_p95_ms - 19.05).abs() < 1e-9,
            "{}",
            summary.latency_p95_ms
        );
        assert_eq!(summary.latency_max_ms, 20.0);
    }

    #[test]
    fn a_full_predict_url_is_used_as_given() {
        // Before, `lab predict --url` appended the lab's predict path to any URL, while `lab check --url` took a URL
        // with a path as the full predict URL; both read it through `tf_serving::predict_url` now.
        let client = PredictClient::new("http://h/serving/v1/models/m:predict").unwrap();
        assert_eq!(client.predict_url, "http://h/serving/v1/models/m:predict");
        let client = PredictClient::new("http://127.0.0.1:8080/").unwrap();
        assert_eq!(client.base_url, "http://127.0.0.1:8080");
        assert_eq!(
            client.predict_url,
            "http://127.0.0.1:8080/v1/models/image_classifier/versions/1:predict"
        );
    }
}
