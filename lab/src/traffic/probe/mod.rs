//! Sends requests concurrently — predictions, or TF Serving's model-status requests where those prove the same
//! routing — and reports, in launch order, what each one found: who answered, how fast, or how it failed.
//!
//! The probe keeps no response bodies: each request yields a small [`Observation`], handed to the caller's
//! observer in the order the requests were launched (an early arrival waits in a reorder buffer, `order.rs`, for
//! the requests launched before it, so a slower version is not under-represented among the first observations);
//! the observer aggregates and says when to stop. Memory therefore stays flat in the number of requests: the
//! buffer holds at most a launch window of observations. The request body is built once by the caller and shared
//! (`Bytes` is reference counted). Every request has a timeout and every run a deadline, so nothing waits forever.

mod connection;
mod order;

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

use crate::report::RequestKind;
use crate::traffic::attribution::{self, Attribution, References};
use connection::{Answer, Connection, Target};
use hyper::StatusCode;
use order::{ReorderBuffer, launch_window};

/// The default number of requests in flight.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// The default timeout of one request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and what to send.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// The full URL: a predict URL, e.g. `http://127.0.0.1:8080/v1/models/image_classifier/versions/1:predict`, or
    /// for [`RequestKind::Status`] the model's status URL (`…/v1/models/image_classifier`).
    pub url: String,
    /// What each request is: a prediction (`POST` with `body`) or TF Serving's model-status request (`GET`, no
    /// body; attributed by its version header alone, having no scores to fingerprint).
    pub kind: RequestKind,
    /// The JSON body, sent as is with every prediction (a status request sends none).
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
    /// Requests launched (sent, or being sent when the run ended); once `run` returns, none is sent any more.
    pub launched: u64,
    /// Observations handed to the observer.
    pub observed: u64,
}

/// A network in (tokio's) time for simulations: a probe built with [`Probe::simulated`] asks it what each request
/// finds and waits the time it says instead of sending bytes. Everything else (workers, timeouts, the order
/// observations reach the observer, stopping) is the probe's own code, so a simulation under tokio's paused clock
/// tests the probe itself at thousands of runs per second.
pub trait SimulatedNetwork: Send + Sync + 'static {
    /// What the next request sent finds, and after how long. Called once per request, as it is sent.
    fn exchange(&self) -> SimulatedExchange;
}

/// One simulated request's fate (see [`SimulatedNetwork`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatedExchange {
    /// How long the answer takes (a request timeout shorter than this makes it a timeout).
    pub latency: Duration,
    /// The HTTP status of the answer.
    pub status: u16,
    /// The `x-model-version` header of the answer.
    pub version: Option<String>,
}

/// How a probe's requests travel.
enum Transport {
    /// HTTP/1.1 over the probe's own connections.
    Http(Box<Target>),
    /// A simulation's network (see [`SimulatedNetwork`]).
    Simulated(Arc<dyn SimulatedNetwork>),
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
    transport: Transport,
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
                transport: Transport::Http(Box::new(target)),
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// A probe whose requests go to a simulated `network` (`concurrency` at a time, each bounded by
    /// `request_timeout`) instead of a URL; run it under tokio's paused clock to simulate in virtual time.
    pub fn simulated(concurrency: usize, request_timeout: Duration, network: Arc<dyn SimulatedNetwork>) -> Probe {
        Probe {
            shared: Arc::new(ProbeShared {
                config: ProbeConfig {
                    url: "simulated:".to_string(),
                    kind: RequestKind::Prediction,
                    body: Bytes::new(),
                    headers: BTreeMap::new(),
                    concurrency,
                    request_timeout,
                    references: References::default(),
                },
                transport: Transport::Simulated(network),
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Sends up to `max_requests` requests, `concurrency` at a time, handing each observation to `observe` in
    /// launch order, until `observe` says stop, all are done, or `deadline` passes.
    ///
    /// Each of `concurrency` workers (tasks of their own, so a multi-threaded runtime spreads them over its
    /// threads) keeps one connection and sends its next request as soon as its last one is answered, like `wrk`,
    /// but never more than a launch window (four rounds of `concurrency`) past the first request not yet observed.
    /// An observation is handed over once every request launched before it has been; a request that times out is
    /// an observation in its place, so the wait is bounded by the request timeout. Once the run ends no request is
    /// launched, the ones in flight are cancelled with their connections, and `run` returns only after every
    /// worker has stopped, so [`RunSummary::launched`] counts every request the run ever sent.
    pub async fn run(
        &self,
        max_requests: u64,
        deadline: Instant,
        mut observe: impl FnMut(Observation) -> Flow,
    ) -> RunSummary {
        let concurrency = self.shared.config.concurrency.max(1);
        let counters = Arc::new(LaunchCounters::default());
        let (released_sender, released) = watch::channel(0);
        let (observations, mut arrivals) = mpsc::channel(concurrency);
        // Dropping the set (however the run ends) aborts every worker.
        let mut workers = JoinSet::new();
        for _ in 0..(concurrency as u64).min(max_requests) {
            let worker = Worker {
                shared: Arc::clone(&self.shared),
                counters: Arc::clone(&counters),
                max_requests,
                window: launch_window(concurrency),
                released: released.clone(),
                observations: observations.clone(),
            };
            workers.spawn(worker.run());
        }
        drop((observations, released));
        let mut reorder = ReorderBuffer::default();
        let mut observed = 0;
        // One timer for the whole run, not one per response.
        let deadline_passed = tokio::time::sleep_until(deadline);
        tokio::pin!(deadline_passed);
        let end = 'run: loop {
            let arrival = tokio::select! {
                biased;
                () = &mut deadline_passed => break RunEnd::Deadline,
                arrival = arrivals.recv() => arrival,
            };
            // Every worker is done and every observation handed over (each launched request sends one).
            let Some((sequence, observation)) = arrival else {
                debug_assert_eq!(reorder.held(), 0);
                break RunEnd::Exhausted;
            };
            reorder.insert(sequence, observation);
            while let Some(observation) = reorder.pop_next() {
                observed += 1;
                if observe(observation) == Flow::Stop {
                    break 'run RunEnd::Stopped;
                }
            }
            released_sender.send_replace(reorder.next_sequence());
        };
        // Aborted workers stop at their next await; until then one may still take a ticket and send. Waiting for
        // them makes `launched` final and keeps the promise that nothing is sent after the run.
        workers.shutdown().await;
        RunSummary {
            end,
            launched: counters.launched.load(Ordering::SeqCst),
            observed,
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

/// What a run's workers count together.
#[derive(Debug, Default)]
struct LaunchCounters {
    /// The next launch sequence number to hand out.
    tickets: AtomicU64,
    /// Requests actually launched (a ticket waiting for the launch window is not launched yet).
    launched: AtomicU64,
}

/// One of a run's workers: takes a ticket (its request's launch sequence number), waits until the ticket is within
/// the launch window, sends the request and hands over the observation with its ticket, until no tickets are left.
struct Worker {
    shared: Arc<ProbeShared>,
    counters: Arc<LaunchCounters>,
    max_requests: u64,
    /// How far past the first observation not yet handed over a request may be launched.
    window: u64,
    /// The sequence number of the first observation not yet handed over.
    released: watch::Receiver<u64>,
    observations: mpsc::Sender<(u64, Observation)>,
}

impl Worker {
    async fn run(mut self) {
        let mut slot = self.shared.take_idle();
        // One timer per worker, reset for each request.
        let mut timeout = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        loop {
            let sequence = self.counters.tickets.fetch_add(1, Ordering::SeqCst);
            if sequence >= self.max_requests {
                break;
            }
            let window = self.window;
            // (`is_ok` drops the borrow of the value at once: it must not be held across the request.)
            let within_window = self
                .released
                .wait_for(|released| sequence < released + window)
                .await
                .is_ok();
            if !within_window {
                return;
            }
            self.counters.launched.fetch_add(1, Ordering::SeqCst);
            let observation = self.shared.observe_one(&mut slot, timeout.as_mut()).await;
            if self.observations.send((sequence, observation)).await.is_err() {
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
            result = self.exchange(slot) => Some(result),
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

    /// One request and its whole answer, over the wire or through the simulated network.
    async fn exchange(&self, slot: &mut Option<Connection>) -> Result<Answer, connection::Broken> {
        match &self.transport {
            Transport::Http(target) => connection::request(target, slot).await,
            Transport::Simulated(network) => {
                let exchange = network.exchange();
                tokio::time::sleep(exchange.latency).await;
                Ok(Answer {
                    status: StatusCode::from_u16(exchange.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    version: exchange.version,
                    body: None,
                })
            }
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
