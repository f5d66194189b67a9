//! Sends prediction requests concurrently and reports, in arrival order, what each one found: who answered, how
//! fast, or how it failed.
//!
//! The probe keeps no response bodies: each request yields a small [`Observation`], handed to the caller's
//! observer as it arrives; the observer aggregates and says when to stop. Memory therefore stays flat in the
//! number of requests. The request body is built once by the caller and shared (`Bytes` is reference counted).
//! Every request has a timeout and every run a deadline, so nothing waits forever.

mod connection;

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

use crate::attribution::{self, Attribution, References};
use connection::{Answer, Connection, Target};

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

/// A probe: what to send, where, and the connections kept open between runs.
#[derive(Clone)]
pub struct Probe {
    shared: Arc<ProbeShared>,
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// What every worker of a probe shares.
struct ProbeShared {
    config: ProbeConfig,
    target: Target,
    /// Connections left open by finished runs, taken by the next run's workers (and by `send_one`).
    idle: Mutex<Vec<Connection>>,
}

impl Probe {
    /// A probe for `config`; fails on a URL, header name or header value HTTP does not allow.
    pub fn new(config: ProbeConfig) -> anyhow::Result<Probe> {
        let target = Target::new(&config)?;
        Ok(Probe {
            shared: Arc::new(ProbeShared {
                config,
                target,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Sends up to `max_requests` requests, `concurrency` at a time, handing each observation to `observe` in
    /// arrival order, until `observe` says stop, all are done, or `deadline` passes.
    ///
    /// Each of `concurrency` workers (tasks of their own, so a multi-threaded runtime spreads them over its
    /// threads) keeps one connection and sends its next request as soon as its last one is answered, like `wrk`.
    /// Once the run ends no request is launched and the ones in flight are cancelled with their connections.
    pub async fn run(
        &self,
        max_requests: u64,
        deadline: Instant,
        mut observe: impl FnMut(Observation) -> Flow,
    ) -> RunSummary {
        let concurrency = self.shared.config.concurrency.max(1);
        let tickets = Arc::new(AtomicU64::new(0));
        let (observations, mut arrivals) = tokio::sync::mpsc::channel(concurrency);
        // Dropping the set (however the run ends) aborts every worker.
        let mut workers = JoinSet::new();
        for _ in 0..(concurrency as u64).min(max_requests) {
            let worker = Worker {
                shared: Arc::clone(&self.shared),
                tickets: Arc::clone(&tickets),
                max_requests,
                observations: observations.clone(),
            };
            workers.spawn(worker.run());
        }
        drop(observations);
        let launched = || tickets.load(Ordering::Relaxed).min(max_requests);
        let mut observed = 0;
        // One timer for the whole run, not one per response.
        let deadline_passed = tokio::time::sleep_until(deadline);
        tokio::pin!(deadline_passed);
        loop {
            let arrival = tokio::select! {
                biased;
                () = &mut deadline_passed => None,
                arrival = arrivals.recv() => Some(arrival),
            };
            let end = match arrival {
                None => RunEnd::Deadline,
                Some(None) => RunEnd::Exhausted,
                Some(Some(observation)) => {
                    observed += 1;
                    match observe(observation) {
                        Flow::Continue => continue,
                        Flow::Stop => RunEnd::Stopped,
                    }
                }
            };
            workers.abort_all();
            return RunSummary {
                end,
                launched: launched(),
                observed,
            };
        }
    }

    /// Sends one request (on a connection a finished run left open, or a new one) and classifies what came back.
    pub async fn send_one(&self) -> Observation {
        let mut slot = self.shared.take_idle();
        let observation = self
            .shared
            .observe_one(&mut slot, std::pin::pin!(tokio::time::sleep(Duration::ZERO)))
            .await;
        self.shared.put_idle(slot);
        observation
    }
}

/// One of a run's workers: takes a ticket, sends a request, hands over the observation, until no tickets are left.
struct Worker {
    shared: Arc<ProbeShared>,
    tickets: Arc<AtomicU64>,
    max_requests: u64,
    observations: tokio::sync::mpsc::Sender<Observation>,
}

impl Worker {
    async fn run(self) {
        let mut slot = self.shared.take_idle();
        // One timer per worker, reset for each request.
        let mut timeout = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        while self.tickets.fetch_add(1, Ordering::Relaxed) < self.max_requests {
            let observation = self.shared.observe_one(&mut slot, timeout.as_mut()).await;
            if self.observations.send(observation).await.is_err() {
                return;
            }
        }
        self.shared.put_idle(slot);
    }
}

impl ProbeShared {
    fn take_idle(&self) -> Option<Connection> {
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop()
    }

    fn put_idle(&self, slot: Option<Connection>) {
        if let Some(connection) = slot {
            self.idle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(connection);
        }
    }

    /// One request on the connection in `slot`, bounded by the request timeout (`timeout` is reset for it).
    async fn observe_one(&self, slot: &mut Option<Connection>, mut timeout: Pin<&mut Sleep>) -> Observation {
        let started = Instant::now();
        timeout.as_mut().reset(started + self.config.request_timeout);
        let result = tokio::select! {
            biased;
            result = connection::request(&self.target, slot) => Some(result),
            () = timeout => None,
        };
        let latency = started.elapsed();
        let (status, outcome) = match result {
            // The request was dropped mid-way, and its connection with it.
            None => (None, failed(None, ErrorKind::Timeout)),
            Some(Err(broken)) => (
                broken.status.map(|status| status.as_u16()),
                failed(broken.version, ErrorKind::Connection),
            ),
            Some(Ok(answer)) => (Some(answer.status.as_u16()), self.outcome_of(answer)),
        };
        Observation {
            latency,
            status,
            outcome,
        }
    }

    fn outcome_of(&self, answer: Answer) -> Outcome {
        let kind = match answer.status.as_u16() {
            200..=299 => None,
            503 => Some(ErrorKind::Http503),
            500..=599 => Some(ErrorKind::Http5xx),
            400..=499 => Some(ErrorKind::Http4xx),
            _ => Some(ErrorKind::HttpOther),
        };
        if let Some(kind) = kind {
            return failed(answer.version, kind);
        }
        match attribution::attribute(
            answer.version.as_deref(),
            answer.body.as_deref(),
            &self.config.references,
        ) {
            Attribution::Version(version) => Outcome::Answered { version },
            Attribution::Unattributed => failed(None, ErrorKind::Unattributed),
        }
    }
}

fn failed(version: Option<String>, kind: ErrorKind) -> Outcome {
    Outcome::Failed { version, kind }
}

#[cfg(test)]
mod tests;
