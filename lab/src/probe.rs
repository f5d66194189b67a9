//! Sends prediction requests concurrently and reports, in arrival order, what each one found: who answered, how
//! fast, or how it failed.
//!
//! The probe keeps no response bodies: each request yields a small [`Observation`], handed to the caller's
//! observer as it arrives; the observer aggregates and says when to stop. Memory therefore stays flat in the
//! number of requests. The request body is built once by the caller and shared (`Bytes` is reference counted).
//! Every request has a timeout and every run a deadline, so nothing waits forever.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;

use crate::attribution::{self, Attribution, References};
use crate::routing::VERSION_HEADER;

/// The default number of requests in flight.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// The default timeout of one request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and what to send.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// The full predict URL, e.g. `http://127.0.0.1:8080/v1/models/image_classifier/versions/1:predict`.
    pub url: String,
    /// The JSON body, sent as is with every request.
    pub body: Bytes,
    /// Headers sent with every request.
    pub headers: BTreeMap<String, String>,
    /// Requests in flight at once (at least 1).
    pub concurrency: usize,
    /// The timeout of one request, from sending to the end of the response body.
    pub request_timeout: Duration,
    /// Reference predictions to attribute responses that carry no version header.
    pub references: References,
}

/// What one request found.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// From sending to the end of the response (or the failure).
    pub latency: Duration,
    /// The HTTP status, when a response came.
    pub status: Option<u16>,
    /// Who answered, or how it failed.
    pub outcome: Outcome,
}

/// Who answered, or how a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A successful prediction, attributed to a version.
    Answered {
        /// The version that answered.
        version: String,
    },
    /// A failed request, or a success that cannot be attributed.
    Failed {
        /// The version, when the response said (a 503 with `x-model-version`).
        version: Option<String>,
        /// What went wrong.
        kind: ErrorKind,
    },
}

/// The kinds of failure, as reported (`kind` in the report's error counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// No complete response within the request timeout.
    Timeout,
    /// Could not connect, or the connection broke.
    Connection,
    /// HTTP 503.
    Http503,
    /// Another 5xx status.
    Http5xx,
    /// A 4xx status (usually a payload the model does not accept).
    Http4xx,
    /// Another unexpected status.
    HttpOther,
    /// A 200 whose version could not be told: no header, and predictions not clearly one model's.
    Unattributed,
}

impl ErrorKind {
    /// The lowercase name used in reports: `timeout`, `connection`, `http_503`, …
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::Http503 => "http_503",
            ErrorKind::Http5xx => "http_5xx",
            ErrorKind::Http4xx => "http_4xx",
            ErrorKind::HttpOther => "http_other",
            ErrorKind::Unattributed => "unattributed",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the observer wants after seeing an observation.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep sending.
    Continue,
    /// Stop launching requests and return now (requests in flight are cancelled).
    Stop,
}

/// Why a run ended.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// All `max_requests` requests completed.
    Exhausted,
    /// The observer said stop.
    Stopped,
    /// The deadline passed with requests outstanding.
    Deadline,
}

/// Counts of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    /// Why it ended.
    pub end: RunEnd,
    /// Requests launched.
    pub launched: u64,
    /// Observations handed to the observer.
    pub observed: u64,
}

/// A probe: an HTTP client and what to send.
#[derive(Debug, Clone)]
pub struct Probe {
    shared: Arc<ProbeShared>,
}

/// What every request of a probe shares; each request runs as a task of its own holding a reference to it.
#[derive(Debug)]
struct ProbeShared {
    client: reqwest::Client,
    config: ProbeConfig,
    url: reqwest::Url,
}

/// The requests in flight, aborted when the run ends (or is dropped) so none outlives it.
struct InFlight(FuturesUnordered<tokio::task::JoinHandle<Observation>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        for handle in self.0.iter() {
            handle.abort();
        }
    }
}

impl Probe {
    /// A probe for `config`; fails on a header name or value HTTP does not allow.
    pub fn new(config: ProbeConfig) -> anyhow::Result<Probe> {
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).with_context(|| format!("header name \"{name}\""))?;
            let value = HeaderValue::from_str(value).with_context(|| format!("value of header \"{name}\""))?;
            headers.insert(name, value);
        }
        let url = reqwest::Url::parse(&config.url).with_context(|| format!("invalid URL \"{}\"", config.url))?;
        // Parsed once and sent as the client's default headers: nothing per request but the request itself.
        // Every request has a total timeout (set per request), so the client needs no idle timeout of its own.
        let client = crate::http::client_builder(config.request_timeout)
            .default_headers(headers)
            .pool_max_idle_per_host(config.concurrency.max(1))
            // The ingress speaks plain HTTP/1.1 (as the original lab's curl did); no protocol negotiation per pool.
            .http1_only()
            .build()
            .context("building the HTTP client")?;
        Ok(Probe {
            shared: Arc::new(ProbeShared { client, config, url }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ProbeConfig {
        &self.shared.config
    }

    /// Sends up to `max_requests` requests, `concurrency` at a time, handing each observation to `observe` in
    /// arrival order, until `observe` says stop, all are done, or `deadline` passes.
    pub async fn run(
        &self,
        max_requests: u64,
        deadline: Instant,
        mut observe: impl FnMut(Observation) -> Flow,
    ) -> RunSummary {
        let concurrency = self.shared.config.concurrency.max(1);
        // Each request is a task of its own, so a multi-threaded runtime spreads them over its workers.
        let mut in_flight = InFlight(FuturesUnordered::new());
        let mut launched = 0;
        let mut observed = 0;
        // One timer for the whole run, not one per response.
        let deadline_passed = tokio::time::sleep_until(deadline);
        tokio::pin!(deadline_passed);
        loop {
            while launched < max_requests && in_flight.0.len() < concurrency {
                in_flight.0.push(tokio::spawn(Arc::clone(&self.shared).send_one()));
                launched += 1;
            }
            let next = tokio::select! {
                biased;
                next = in_flight.0.next() => Ok(next.map(|joined| joined.unwrap_or_else(|_| lost_request()))),
                () = &mut deadline_passed => Err(()),
            };
            let observation = match next {
                Err(()) => {
                    let end = RunEnd::Deadline;
                    return RunSummary {
                        end,
                        launched,
                        observed,
                    };
                }
                Ok(None) => {
                    let end = RunEnd::Exhausted;
                    return RunSummary {
                        end,
                        launched,
                        observed,
                    };
                }
                Ok(Some(observation)) => observation,
            };
            observed += 1;
            if observe(observation) == Flow::Stop {
                let end = RunEnd::Stopped;
                return RunSummary {
                    end,
                    launched,
                    observed,
                };
            }
        }
    }

    /// Sends one request and classifies what came back.
    pub async fn send_one(&self) -> Observation {
        Arc::clone(&self.shared).send_one().await
    }
}

impl ProbeShared {
    async fn send_one(self: Arc<Self>) -> Observation {
        let started = Instant::now();
        let (status, outcome) = self.outcome_of_one().await;
        Observation {
            latency: started.elapsed(),
            status,
            outcome,
        }
    }

    async fn outcome_of_one(&self) -> (Option<u16>, Outcome) {
        let request = self
            .client
            .post(self.url.clone())
            .timeout(self.config.request_timeout)
            .body(self.config.body.clone());
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => return (None, failed(None, kind_of(&error))),
        };
        let status = response.status();
        let code = Some(status.as_u16());
        let version = response
            .headers()
            .get(VERSION_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        // The body is needed only to fingerprint a success without a version header; otherwise it is read and
        // dropped chunk by chunk (the connection stays reusable and nothing accumulates).
        let needs_body = status.is_success() && version.is_none();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if needs_body => body.extend_from_slice(&chunk),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(error) => return (code, failed(version, kind_of(&error))),
            }
        }
        let kind = match status.as_u16() {
            200..=299 => None,
            503 => Some(ErrorKind::Http503),
            500..=599 => Some(ErrorKind::Http5xx),
            400..=499 => Some(ErrorKind::Http4xx),
            _ => Some(ErrorKind::HttpOther),
        };
        if let Some(kind) = kind {
            return (code, failed(version, kind));
        }
        let body = match needs_body {
            true => Some(body.as_slice()),
            false => None,
        };
        let outcome = match attribution::attribute(version.as_deref(), body, &self.config.references) {
            Attribution::Version(version) => Outcome::Answered { version },
            Attribution::Unattributed => failed(None, ErrorKind::Unattributed),
        };
        (code, outcome)
    }
}

/// The observation for a request task that panicked or was cancelled: counted as a connection failure.
fn lost_request() -> Observation {
    Observation {
        latency: Duration::ZERO,
        status: None,
        outcome: failed(None, ErrorKind::Connection),
    }
}

fn failed(version: Option<String>, kind: ErrorKind) -> Outcome {
    Outcome::Failed { version, kind }
}

fn kind_of(error: &reqwest::Error) -> ErrorKind {
    match error.is_timeout() {
        true => ErrorKind::Timeout,
        false => ErrorKind::Connection,
    }
}
