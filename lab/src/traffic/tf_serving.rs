//! The one TF Serving REST client: the lab's model name and REST paths, the predict and metadata URLs for an ingress
//! URL, the model metadata → payload kind, one predict call and one parser for what TF Serving answers.
//!
//! The paths and answers are TF Serving 2.5.1's REST API (tensorflow/serving
//! `tensorflow_serving/g3doc/api_rest.md`): `POST /v1/models/<name>[/versions/<n>]:predict`,
//! `GET /v1/models/<name>[/versions/<n>]/metadata`. A predict answer is `{"predictions": …}` for a request in row
//! format (`instances`), `{"outputs": …}` for one in columnar format (`inputs`) — a model with one output leaves its
//! name out, one with several gives an object per instance (rows) or one object keyed by output (columns) — and any
//! failure is `{ "error": "<message>" }` with an HTTP error status (`FillJsonErrorMsg` in
//! `tensorflow_serving/model_servers/http_rest_api_handler.cc`, `MakeJsonFromTensors` in
//! `tensorflow_serving/util/json_tensor.cc`).
//!
//! Retry policies stay with the callers (the smoke prediction's, `lab predict`'s metadata 503s): each call here is
//! one request, under the timeouts of the client the caller passes.

use anyhow::Context;
use bytes::Bytes;
use serde_json::Value;

use crate::traffic::payload::{BYTES_SIGNATURE, PayloadKind};

/// The model name and the prediction path, defined with the routes they take.
pub use crate::definition::routing::{MODEL_NAME, PREDICT_PATH};
/// The REST path of a prediction by the latest version of the lab's model (the smoke prediction's).
pub const LATEST_PREDICT_PATH: &str = "/v1/models/image_classifier:predict";
/// The REST path of the model's metadata (signatures), relative to the ingress URL.
pub const METADATA_PATH: &str = "/v1/models/image_classifier/metadata";
/// The REST path of the model's status (`GET`, no body; `{"model_version_status": […]}`), relative to the ingress
/// URL: what the probe proves routing with when the routes send it as they send predictions. It costs TF Serving no
/// inference (`ProcessModelStatusRequest` in `tensorflow_serving/model_servers/http_rest_api_handler.cc`).
pub const STATUS_PATH: &str = "/v1/models/image_classifier";

pub use crate::definition::routing::VERSION_HEADER;

/// The `help:` line of an ingress URL that is not one.
const URL_HELP: &str = "help: pass a URL like http://127.0.0.1:8080";

/// The predict URL for an ingress URL: [`PREDICT_PATH`] appended when it has no path, else the URL as given (a full
/// predict URL, possibly behind a path prefix).
pub fn predict_url(url: &str) -> anyhow::Result<String> {
    match parse_ingress_url(url)?.path() {
        "" | "/" => Ok(format!("{}{PREDICT_PATH}", url.trim_end_matches('/'))),
        _ => Ok(url.to_string()),
    }
}

/// The metadata URL for an ingress URL: [`METADATA_PATH`] appended when it has no path; for a full predict URL
/// (`…/v1/models/<name>[/versions/<n>]:predict`, possibly behind a path prefix) the metadata of that model at the
/// same prefix (`…/v1/models/<name>/metadata`, as [`METADATA_PATH`] leaves the version out). Any other path is
/// refused: it names no model.
pub fn metadata_url(url: &str) -> anyhow::Result<String> {
    model_url(
        url,
        "/metadata",
        "metadata",
        "choose the body with `--payload keras|raw|bytes`",
    )
}

/// The model-status URL for an ingress URL: [`STATUS_PATH`] appended when it has no path; for a full predict URL
/// the status of that model at the same prefix (`…/v1/models/<name>`, all its versions, as [`STATUS_PATH`]). Any
/// other path names no model and is refused.
pub fn status_url(url: &str) -> anyhow::Result<String> {
    model_url(
        url,
        "",
        "status",
        "prove the routing with predictions: `--probe predict`",
    )
}

/// `…/v1/models/<name><suffix>` for the model an ingress URL names (the lab's at a root), for [`metadata_url`] and
/// [`status_url`]; `what` and `alternative` word the refusal of a URL that names no model.
fn model_url(url: &str, suffix: &str, what: &str, alternative: &str) -> anyhow::Result<String> {
    let parsed = parse_ingress_url(url)?;
    let path = parsed.path();
    if matches!(path, "" | "/") {
        return Ok(format!("{}/v1/models/{MODEL_NAME}{suffix}", url.trim_end_matches('/')));
    }
    let Some((prefix, model)) = model_of_predict_path(path) else {
        anyhow::bail!(
            "the URL \"{url}\" is neither an ingress root nor a TF Serving predict URL (…/v1/models/NAME[/versions/N]:predict), so it names no model whose {what} to ask\n{URL_HELP}, or {alternative}"
        );
    };
    let mut model_url = parsed.clone();
    model_url.set_path(&format!("{prefix}/v1/models/{model}{suffix}"));
    model_url.set_query(None);
    Ok(model_url.to_string())
}

/// An http(s) URL, or an error that says how one looks.
fn parse_ingress_url(url: &str) -> anyhow::Result<reqwest::Url> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("invalid ingress URL \"{url}\"\n{URL_HELP}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        anyhow::bail!("ingress URL \"{url}\" is not http(s)\n{URL_HELP}");
    }
    Ok(parsed)
}

/// The prefix before `/v1/models/` and the model name of a predict path, `<prefix>/v1/models/<name>[/versions/<n>]:predict`.
fn model_of_predict_path(path: &str) -> Option<(&str, &str)> {
    let without_verb = path.strip_suffix(":predict")?;
    let (prefix, rest) = without_verb.rsplit_once("/v1/models/")?;
    let model = match rest.split_once("/versions/") {
        Some((model, version)) if !version.is_empty() && version.bytes().all(|byte| byte.is_ascii_digit()) => model,
        Some(_) => return None,
        None => rest,
    };
    if !model.is_empty() && !model.contains(['/', ':']) {
        Some((prefix, model))
    } else {
        None
    }
}

/// The kind `--payload auto` picks from the model's metadata answer: `bytes` when it has a `serving_bytes` signature,
/// else `keras`.
pub fn payload_kind_for_metadata(metadata: &Value) -> PayloadKind {
    if signature_names(metadata).iter().any(|name| name == BYTES_SIGNATURE) {
        PayloadKind::Bytes
    } else {
        PayloadKind::Keras
    }
}

/// The names of the signatures in a TF Serving metadata answer (`metadata.signature_def.signature_def`).
pub fn signature_names(metadata: &Value) -> Vec<String> {
    metadata
        .pointer("/metadata/signature_def/signature_def")
        .and_then(|signatures| signatures.as_object())
        .map(|signatures| signatures.keys().cloned().collect())
        .unwrap_or_default()
}

/// A predict response as it came: its status, its `x-model-version` header and its whole body.
#[derive(Debug, Clone)]
pub struct PredictAnswer {
    /// The HTTP status.
    pub status: reqwest::StatusCode,
    /// The [`VERSION_HEADER`] of the response, when present.
    pub model_version: Option<String>,
    /// The body.
    pub body: Bytes,
}

impl PredictAnswer {
    /// The first instance's scores, or what the answer says instead ([`parse_predict_response`]).
    pub fn first_scores(&self) -> Result<Vec<f64>, ResponseError> {
        parse_predict_response(self.status, &self.body)
    }
}

/// Why [`predict`] got no whole answer.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The request was not sent, or no response came (refused, timed out, reset).
    #[error("POST {url}: {}", crate::error::error_chain(.error))]
    Send {
        /// The predict URL.
        url: String,
        /// What reqwest said.
        error: reqwest::Error,
    },
    /// A response came but its body could not be read to the end.
    #[error("reading the response: {}", crate::error::error_chain(.error))]
    Body {
        /// The response's status.
        status: reqwest::StatusCode,
        /// The response's [`VERSION_HEADER`], when present.
        model_version: Option<String>,
        /// What reqwest said.
        error: reqwest::Error,
    },
}

/// Sends one prediction: `body` as JSON to `predict_url` with `headers`, through `http` (whose timeouts are the
/// caller's), and reads the whole answer. Any HTTP status is an answer; judge it with [`PredictAnswer::first_scores`].
pub async fn predict(
    http: &reqwest::Client,
    predict_url: &str,
    body: &Bytes,
    headers: &[(String, String)],
) -> Result<PredictAnswer, PredictError> {
    let mut request = http
        .post(predict_url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(Bytes::clone(body));
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request.send().await.map_err(|error| PredictError::Send {
        url: predict_url.to_string(),
        error,
    })?;
    let status = response.status();
    let model_version = response
        .headers()
        .get(VERSION_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    match response.bytes().await {
        Ok(body) => Ok(PredictAnswer {
            status,
            model_version,
            body,
        }),
        Err(error) => Err(PredictError::Body {
            status,
            model_version,
            error,
        }),
    }
}

/// What a predict answer says instead of scores.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// TF Serving (or the gateway) refused: an error status, or a `{"error": "…"}` body. `message` is the quoted
    /// error, else the quoted start of the body, else `(empty body)` ([`server_error_message`]).
    #[error("HTTP {status}: {message}")]
    Server {
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// The server's message, quoted.
        message: String,
    },
    /// A success whose body holds no first instance's scores.
    #[error("malformed prediction response: {0}")]
    Malformed(String),
}

/// The first instance's scores of a predict answer with HTTP `status`, in any of TF Serving's forms:
/// `{"predictions": [[…], …]}` (row format), `{"outputs": [[…], …]}` (columnar format; also with the one output
/// named, `{"outputs": {"name": [[…]]}}`), or `{"error": "…"}` (with an error status), which is a
/// [`ResponseError::Server`] as any error status is.
pub fn parse_predict_response(status: reqwest::StatusCode, body: &[u8]) -> Result<Vec<f64>, ResponseError> {
    if !status.is_success() {
        let message = server_error_message(&String::from_utf8_lossy(body));
        return Err(ResponseError::Server { status, message });
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|error| ResponseError::Malformed(format!("not JSON ({error})")))?;
    if let Some(message) = value.get("error").and_then(Value::as_str) {
        let message = format!("\"{message}\"");
        return Err(ResponseError::Server { status, message });
    }
    let (rows, name) = match (value.get("predictions"), value.get("outputs")) {
        (Some(predictions), _) => (predictions, "predictions"),
        (None, Some(Value::Object(named))) if named.len() == 1 => {
            (named.values().next().unwrap_or(&Value::Null), "outputs")
        }
        (None, Some(Value::Object(named))) => {
            let detail = format!(
                "`outputs` names {} tensors, not one (which holds the scores?)",
                named.len()
            );
            return Err(ResponseError::Malformed(detail));
        }
        (None, Some(outputs)) => (outputs, "outputs"),
        (None, None) => return Err(ResponseError::Malformed("no `predictions` or `outputs`".into())),
    };
    let row = rows
        .get(0)
        .and_then(Value::as_array)
        .ok_or_else(|| ResponseError::Malformed(format!("no `{name}[0]` list")))?;
    row.iter()
        .map(Value::as_f64)
        .collect::<Option<Vec<f64>>>()
        .ok_or_else(|| ResponseError::Malformed(format!("`{name}[0]` holds a value that is not a number")))
}

/// The first instance's scores of a successful answer's body, or `None` (the probe's fingerprint: no detail
/// needed).
pub fn first_scores(body: &[u8]) -> Option<Vec<f64>> {
    parse_predict_response(reqwest::StatusCode::OK, body).ok()
}

/// TF Serving's `{"error": "…"}` message quoted, else the start of the body quoted, else `(empty body)`.
pub fn server_error_message(text: &str) -> String {
    let from_json = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|value| value.get("error").and_then(Value::as_str).map(str::to_string));
    match from_json {
        Some(message) => format!("\"{message}\""),
        None if text.trim().is_empty() => "(empty body)".to_string(),
        None => format!("\"{}\"", text.trim().chars().take(300).collect::<String>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    const OK: StatusCode = StatusCode::OK;

    #[test]
    fn the_paths_name_the_lab_model() {
        assert_eq!(PREDICT_PATH, format!("/v1/models/{MODEL_NAME}/versions/1:predict"));
        assert_eq!(LATEST_PREDICT_PATH, format!("/v1/models/{MODEL_NAME}:predict"));
        assert_eq!(METADATA_PATH, format!("/v1/models/{MODEL_NAME}/metadata"));
    }

    #[test]
    fn a_bare_ingress_gets_the_lab_paths() {
        for url in ["http://127.0.0.1:8080", "http://127.0.0.1:8080/"] {
            assert_eq!(
                predict_url(url).unwrap(),
                "http://127.0.0.1:8080/v1/models/image_classifier/versions/1:predict"
            );
            assert_eq!(
                metadata_url(url).unwrap(),
                "http://127.0.0.1:8080/v1/models/image_classifier/metadata"
            );
        }
    }

    #[test]
    fn a_full_predict_url_is_kept_and_its_model_asked_for_metadata() {
        assert_eq!(
            predict_url("http://h/v1/models/m:predict").unwrap(),
            "http://h/v1/models/m:predict"
        );
        // Before, the metadata URL was the lab's path trimmed off the predict URL: for any other model it was
        // `http://h/v1/models/m:predict/v1/models/image_classifier/metadata`.
        assert_eq!(
            metadata_url("http://h/v1/models/m:predict").unwrap(),
            "http://h/v1/models/m/metadata"
        );
        assert_eq!(
            metadata_url("http://h:9/v1/models/m/versions/7:predict").unwrap(),
            "http://h:9/v1/models/m/metadata"
        );
    }

    #[test]
    fn a_path_prefix_is_kept() {
        let url = "https://gw.example/serving/v1/models/image_classifier/versions/1:predict";
        assert_eq!(predict_url(url).unwrap(), url);
        assert_eq!(
            metadata_url(url).unwrap(),
            "https://gw.example/serving/v1/models/image_classifier/metadata"
        );
    }

    #[test]
    fn urls_that_name_no_model_or_are_not_http_are_refused() {
        for url in [
            "http://h/serving",
            "http://h/v1/models/:predict",
            "http://h/v1/models/m/versions/x:predict",
        ] {
            let error = metadata_url(url).unwrap_err().to_string();
            assert!(
                error.contains("names no model") && error.contains("help:"),
                "{url}: {error}"
            );
        }
        for url in ["127.0.0.1:8080", "ftp://h/"] {
            let error = predict_url(url).unwrap_err().to_string();
            assert!(error.contains("help: pass a URL like http://127.0.0.1:8080"), "{error}");
            assert!(metadata_url(url).is_err());
        }
    }

    #[test]
    fn the_row_form_gives_the_first_instance() {
        let body = br#"{"predictions": [[0.5, 0.25], [0.1, 0.9]]}"#;
        assert_eq!(parse_predict_response(OK, body), Ok(vec![0.5, 0.25]));
    }

    #[test]
    fn the_columnar_form_gives_the_first_instance_named_or_not() {
        // Before, `lab predict` and the smoke prediction read only `predictions`.
        assert_eq!(
            parse_predict_response(OK, br#"{"outputs": [[0.5, 0.25]]}"#),
            Ok(vec![0.5, 0.25])
        );
        assert_eq!(
            parse_predict_response(OK, br#"{"outputs": {"probs": [[0.1, 0.2]]}}"#),
            Ok(vec![0.1, 0.2])
        );
        let several = parse_predict_response(OK, br#"{"outputs": {"a": [[1.0]], "b": [[2.0]]}}"#);
        assert!(matches!(several, Err(ResponseError::Malformed(detail)) if detail.contains("2 tensors")));
    }

    #[test]
    fn the_error_form_keeps_the_status_and_message() {
        let body = br#"{ "error": "Servable not found for request: Specific(image_classifier, 1)" }"#;
        let error = parse_predict_response(StatusCode::NOT_FOUND, body).unwrap_err();
        assert_eq!(
            error,
            ResponseError::Server {
                status: StatusCode::NOT_FOUND,
                message: "\"Servable not found for request: Specific(image_classifier, 1)\"".into()
            }
        );
        assert_eq!(
            error.to_string(),
            "HTTP 404 Not Found: \"Servable not found for request: Specific(image_classifier, 1)\""
        );
        assert!(matches!(
            parse_predict_response(OK, br#"{"error": "x"}"#),
            Err(ResponseError::Server { status: OK, .. })
        ));
        assert_eq!(
            parse_predict_response(StatusCode::SERVICE_UNAVAILABLE, b"no healthy upstream"),
            Err(ResponseError::Server {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "\"no healthy upstream\"".into()
            })
        );
        assert_eq!(server_error_message(" "), "(empty body)");
    }

    #[test]
    fn malformed_bodies_say_what_is_missing() {
        for (body, detail) in [
            (&b"not json"[..], "not JSON"),
            (br#"{}"#, "no `predictions` or `outputs`"),
            (br#"{"predictions": []}"#, "no `predictions[0]` list"),
            (br#"{"predictions": [{"probs": [1.0]}]}"#, "no `predictions[0]` list"),
            (
                br#"{"predictions": [[1.0, "x"]]}"#,
                "`predictions[0]` holds a value that is not a number",
            ),
            (br#"{"outputs": 3}"#, "no `outputs[0]` list"),
        ] {
            match parse_predict_response(OK, body) {
                Err(ResponseError::Malformed(found)) => assert!(found.contains(detail), "{found}"),
                other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
            }
            assert_eq!(first_scores(body), None);
        }
    }

    #[test]
    fn metadata_with_serving_bytes_asks_for_bytes() {
        let with_bytes = serde_json::json!({"metadata": {"signature_def": {"signature_def": {
            "serving_default": {}, "serving_bytes": {}}}}});
        let without = serde_json::json!({"metadata": {"signature_def": {"signature_def": {"serving_default": {}}}}});
        assert_eq!(payload_kind_for_metadata(&with_bytes), PayloadKind::Bytes);
        assert_eq!(payload_kind_for_metadata(&without), PayloadKind::Keras);
        assert_eq!(payload_kind_for_metadata(&serde_json::json!({})), PayloadKind::Keras);
    }
}
