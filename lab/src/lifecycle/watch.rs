//! `lab watch`: paced predictions through the ingress, and a view of where the latest ones went, refreshed until the
//! view says stop, Ctrl-C, or `--for` runs out. Read-only: it sends traffic and nothing else.
//!
//! Requests go out at a steady `rate` (a tokio interval; at most `concurrency` in flight, so a slow model lowers the
//! rate shown rather than piling requests up), each bounded by `request_timeout`; with several header sets
//! (`--header-set`, [`sets`]) they take turns, so each set gets an equal part of the rate. Every completed request
//! goes into its set's [`TrafficWindow`] and into one over all sets; every `refresh` their snapshots are shown. When
//! the watch ends, the pacer and every request in flight are cancelled before `watch` returns.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::Settings;
use crate::definition::stages::{AssertionSpec, LabDefinition};
use crate::lifecycle::stage::{given_or_recorded_ingress, recorded_stage, resolve_stage};
use crate::report::RequestKind;
use crate::report::live::{HeaderSetSnapshot, SetsSnapshot, TrafficSnapshot};
use crate::traffic::attribution::References;
use crate::traffic::checks::payload_body;
use crate::traffic::checks::{ProbeChoice, ProbeDecision, kind};
use crate::traffic::payload::PayloadChoice;
use crate::traffic::probe::{Observation, Probe, ProbeConfig};
use crate::traffic::tf_serving::{predict_url, status_url};
use crate::traffic::window::TrafficWindow;

pub mod sets;
pub use sets::{HeaderSetChoice, WatchedSet};

/// The default request rate, per second: enough for a share to move within seconds, modest for a laptop's model.
pub const DEFAULT_RATE: f64 = 20.0;

/// The default number of requests in flight at most.
pub const DEFAULT_WATCH_CONCURRENCY: usize = 16;

/// What to watch, and how.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// The ingress URL; `None`: the one `lab up` recorded.
    pub url: Option<String>,
    /// Headers every request carries (`--header`), in every header set.
    pub headers: BTreeMap<String, String>,
    /// The groups of requests shown side by side (`--header-set`), taking turns at `rate`; none: one group, with
    /// `headers` alone, shown as before.
    pub header_sets: Vec<HeaderSetChoice>,
    /// Requests per second.
    pub rate: f64,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// The timeout of one request.
    pub request_timeout: Duration,
    /// The shares are over the latest this many responses.
    pub window: usize,
    /// How often the view is refreshed.
    pub refresh: Duration,
    /// Stop after this long; `None`: until the view or Ctrl-C stops it.
    pub duration: Option<Duration>,
    /// The image sent (a JPEG or PNG file's bytes), in the payload the model's metadata asks for.
    pub image: Vec<u8>,
    /// Which requests to send (`--probe`: under `auto`, status requests where the recorded stage routes them as
    /// predictions for every header set, else predictions).
    pub probe: ProbeChoice,
}

/// Whether the view wants more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewControl {
    /// Keep watching.
    Continue,
    /// Stop (the user pressed `q`).
    Stop,
}

/// Where the snapshots go: a terminal view or lines of JSON.
pub trait WatchView {
    /// Shows one snapshot; says whether to go on.
    fn show(&mut self, snapshot: &TrafficSnapshot) -> anyhow::Result<ViewControl>;

    /// Shows the snapshot of several header sets (`--header-set` given); by default all requests together, as
    /// [`WatchView::show`].
    fn show_sets(&mut self, snapshot: &SetsSnapshot) -> anyhow::Result<ViewControl> {
        self.show(&snapshot.all)
    }
}

/// Watches the traffic through the ingress until `view` says stop, Ctrl-C, or `options.duration` passes; the last
/// snapshot is shown before it returns.
pub async fn watch(settings: &Settings, options: &WatchOptions, view: &mut dyn WatchView) -> anyhow::Result<()> {
    let sets = watched_sets(settings, options)?;
    let (url, _ingress) = given_or_recorded_ingress(
        settings,
        options.url.as_deref(),
        "no ingress URL is recorded, so there is nothing to watch",
    )
    .await?;
    let requests = decide_requests(settings, options, &sets, &url)?;
    tracing::info!(
        kind = requests.kind.as_str(),
        reason = requests.reason,
        sets = sets.len(),
        "lab watch's requests"
    );
    let body = match requests.kind {
        RequestKind::Prediction => {
            payload_body(&url, PayloadChoice::Auto, &options.image, options.request_timeout).await?
        }
        RequestKind::Status => bytes::Bytes::new(),
    };
    let probes = sets
        .iter()
        .map(|set| {
            Probe::new(ProbeConfig {
                url: requests.url.clone(),
                body: body.clone(),
                headers: set.headers.clone(),
                concurrency: options.concurrency,
                request_timeout: options.request_timeout,
                references: References::default(),
                kind: requests.kind,
            })
        })
        .collect::<anyhow::Result<Vec<Probe>>>()?;
    let started = Instant::now();
    let mut windows = Windows {
        all: TrafficWindow::new(options.window, started),
        each: sets
            .iter()
            .map(|_| TrafficWindow::new(options.window, started))
            .collect(),
        sets,
        grouped: !options.header_sets.is_empty(),
        url: requests.url,
        kind: requests.kind,
        common: options.headers.clone(),
    };
    let (completed, mut arrivals) = mpsc::unbounded_channel();
    // Dropping the set (however the watch ends) aborts the pacer and, with its own set, every request in flight.
    let mut pacer = JoinSet::new();
    pacer.spawn(pace(probes, options.rate, options.concurrency, completed));
    let mut refresh = tokio::time::interval(options.refresh);
    refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let end = options.duration.map(|duration| started + duration);
    let until_end = async move {
        match end {
            Some(end) => tokio::time::sleep_until(end).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until_end);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            Some((set, observation, at)) = arrivals.recv() => windows.record(set, observation, at),
            _ = refresh.tick() => {
                if windows.show(view, Instant::now())? == ViewControl::Stop {
                    break;
                }
            }
            () = &mut until_end => break,
            _ = &mut interrupted => break,
        }
    }
    pacer.shutdown().await;
    windows.show(view, Instant::now())?;
    Ok(())
}

/// The header sets to send: `--header-set`'s, `stage` taken from the recorded stage's assertions, each with
/// `--header`'s headers ([`sets::resolve`]).
fn watched_sets(settings: &Settings, options: &WatchOptions) -> anyhow::Result<Vec<WatchedSet>> {
    let lab;
    let mut assertions = None;
    if options.header_sets.contains(&HeaderSetChoice::Stage)
        && let Some((stage, _)) = recorded_stage(settings)?
    {
        lab = LabDefinition::load_default()?;
        assertions = Some(lab.stage(&stage)?.assertions.as_slice());
    }
    sets::resolve(&options.header_sets, &options.headers, assertions)
}

/// Each set's window and the one over all sets, and what their snapshots say about the requests.
struct Windows {
    all: TrafficWindow,
    each: Vec<TrafficWindow>,
    sets: Vec<WatchedSet>,
    /// Whether `--header-set` was given: the view then shows every set (even one) on its own.
    grouped: bool,
    url: String,
    kind: RequestKind,
    common: BTreeMap<String, String>,
}

impl Windows {
    /// Records a response of set `set`.
    fn record(&mut self, set: usize, observation: Observation, at: Instant) {
        self.each[set].record(observation.clone(), at);
        self.all.record(observation, at);
    }

    /// Shows the windows at `now` on `view`.
    fn show(&self, view: &mut dyn WatchView, now: Instant) -> anyhow::Result<ViewControl> {
        let all = self.all.snapshot(now, &self.url, &self.common, self.kind);
        if !self.grouped {
            return view.show(&all);
        }
        let header_sets = self
            .sets
            .iter()
            .zip(&self.each)
            .map(|(set, window)| HeaderSetSnapshot {
                name: set.name.clone(),
                traffic: window.snapshot(now, &self.url, &set.headers, self.kind),
            })
            .collect();
        view.show_sets(&SetsSnapshot { all, header_sets })
    }
}

/// The requests `lab watch` sends (`--probe`): under `auto`, TF Serving's status requests when the stage `lab up`
/// recorded (and only without `--url`: another ingress may route otherwise) shows from its routes that they take
/// the predictions' route and are attributable ([`crate::traffic::checks::ProbeDecision`], decided as for the
/// stage's assertions), else predictions; `status` and `predict` as asked.
fn decide_requests(
    settings: &Settings,
    options: &WatchOptions,
    sets: &[WatchedSet],
    url: &str,
) -> anyhow::Result<ProbeDecision> {
    let recorded = match &options.url {
        Some(_) => None,
        None => recorded_stage(settings)?.map(|(stage, _)| stage),
    };
    if let (Some(stage), false) = (&recorded, options.probe == ProbeChoice::Predict) {
        let lab = LabDefinition::load_default()?;
        let plan = resolve_stage(settings, &lab, lab.stage(stage)?)?;
        let watched: Vec<AssertionSpec> = sets
            .iter()
            .map(|set| AssertionSpec::Exact {
                version: String::new(),
                headers: set.headers.clone(),
            })
            .collect();
        return kind::decide(options.probe, stage, plan.routing()?, &watched, url);
    }
    Ok(match options.probe {
        ProbeChoice::Status => ProbeDecision {
            kind: RequestKind::Status,
            url: status_url(url)?,
            reason: "--probe status".to_string(),
        },
        ProbeChoice::Predict => ProbeDecision {
            kind: RequestKind::Prediction,
            url: predict_url(url)?,
            reason: "--probe predict".to_string(),
        },
        ProbeChoice::Auto => ProbeDecision {
            kind: RequestKind::Prediction,
            url: predict_url(url)?,
            reason: "--probe auto: predictions, because no recorded stage shows where status requests go".to_string(),
        },
    })
}

/// Launches one request every `1/rate` seconds, the probes (one per header set) taking turns, at most `concurrency`
/// in flight, sending each observation, its probe's index and when it completed to `completed`; runs until aborted
/// (its requests are aborted with it).
async fn pace(
    probes: Vec<Probe>,
    rate: f64,
    concurrency: usize,
    completed: mpsc::UnboundedSender<(usize, Observation, Instant)>,
) {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut in_flight = JoinSet::new();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for turn in (0..probes.len()).cycle() {
        ticks.tick().await;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (probe, completed) = (probes[turn].clone(), completed.clone());
        in_flight.spawn(async move {
            let observation = probe.send_one().await;
            let _ = completed.send((turn, observation, Instant::now()));
            drop(permit);
        });
        // Reap finished requests so the set stays as small as what is in flight.
        while in_flight.try_join_next().is_some() {}
    }
}
