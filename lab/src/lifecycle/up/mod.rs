//! `lab up`: from a running minikube to a served, reachable ResNet50 behind the Istio ingress gateway, then the
//! stages in order. Idempotent: a second run on a ready cluster finds every step done and writes nothing.
//!
//! [`up`] reads as the list of its steps; each step is a function of `up/steps.rs` (before the stages) or
//! `up/stages.rs` (the walk), run through `Steps::run`, which reports it to an [`UpProgress`] and records how it
//! ended.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Settings;
use crate::cluster::Cluster;
use crate::cluster::apply::{Change, ObjectChange};
use crate::definition::plan::StagePlan;
use crate::definition::stages::LabDefinition;
use crate::lifecycle::bring_up::BringUpPlan;
use crate::lifecycle::ingress::IngressMode;
use crate::lifecycle::models::ModelSource;
use crate::lifecycle::stage;
use crate::lifecycle::state::LabLock;

mod stages;
mod steps;

/// What `lab up` is asked to do.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// An `istioctl` to use instead of fetching Istio 1.12.7's.
    pub istioctl: Option<PathBuf>,
    /// Replace another installed Istio version.
    pub reinstall_istio: bool,
    /// How long istiod and the ingress gateway may take to become available.
    pub istio_timeout: Duration,
    /// How long each Deployment may take to roll out.
    pub rollout_timeout: Duration,
    /// How long the model export Job may take.
    pub export_timeout: Duration,
    /// How long the ingress gateway gets to serve each applied stage before its assertions
    /// ([`crate::istio::gateway_config::DEFAULT_SERVE_TIMEOUT`] by default).
    pub serve_timeout: Duration,
    /// Where the models come from.
    pub models: ModelSource,
    /// How to reach the ingress gateway.
    pub ingress: IngressMode,
    /// Stop after this stage (default: walk them all).
    pub last_stage: Option<String>,
    /// Run each stage's assertions (`--no-assert` turns this off).
    pub assertions: Assertions,
    /// A verified offline bundle (`--bundle DIR`): its images are loaded into the node and its istioctl archive
    /// used instead of a download (the caller points [`UpOptions::models`] at its models).
    pub bundle: Option<crate::lifecycle::bundle::VerifiedBundle>,
    /// Which requests prove each stage's routing (`--probe`).
    pub probe: crate::traffic::checks::ProbeChoice,
}

/// Whether the stages' assertions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assertions {
    /// Run them after each stage.
    Run,
    /// Skip them (quick set-up).
    Skip,
}

/// How a step ended (JSON: `done`, `already_done`, `checked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// The step changed something.
    Done,
    /// Everything the step does was in place already.
    AlreadyDone,
    /// The step only looks (the doctor, the smoke prediction): it found what it wanted and changes nothing.
    Checked,
}

impl StepOutcome {
    /// The words progress lines use: `done`, `already done`, `checked`.
    pub fn words(self) -> &'static str {
        match self {
            StepOutcome::Done => "done",
            StepOutcome::AlreadyDone => "already done",
            StepOutcome::Checked => "checked",
        }
    }
}

/// One finished step of `lab up`.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// e.g. `istio`, `stage canary-deployed`.
    pub step: String,
    /// How it ended.
    pub outcome: StepOutcome,
    /// One line on what it found or did.
    pub detail: String,
    /// How long it took.
    pub seconds: f64,
}

/// Receives progress while `lab up` runs (separate from the report it returns).
pub trait UpProgress: Sync {
    /// A step starts.
    fn started(&self, step: &str);
    /// A step finished.
    fn finished(&self, record: &StepRecord);
    /// A line inside a step (e.g. "waiting for istiod…").
    fn note(&self, text: &str);
}

/// What `lab up` did.
#[derive(Debug, Clone, Serialize)]
pub struct UpReport {
    /// Every step in order.
    pub steps: Vec<StepRecord>,
    /// The ingress URL.
    pub ingress_url: String,
    /// How it is reached (serialised as `tunnel`, `port-forward` or `url`).
    pub ingress_kind: crate::lifecycle::state::IngressKind,
    /// The stage the lab is at.
    pub active_stage: String,
    /// What is known of that stage: `pass` when its assertions passed (in this run, or in the run that recorded it
    /// and the cluster still holds exactly it), `not_asserted` when they were skipped (`--no-assert`, or a stage
    /// recorded without assertions that this run did not assert either), else the verdict of this run's last check.
    pub verdict: crate::report::Verdict,
    /// The traffic checks of the stages asserted in this run, in order. `lab up` stops after the first stage
    /// whose verdict is not pass, so only the last one can have failed.
    pub checks: Vec<crate::report::StageReport>,
}

/// Runs `lab up`'s steps in order, telling [`UpProgress`] when each starts and ends, and keeps their records.
struct Steps<'a> {
    progress: &'a dyn UpProgress,
    records: Vec<StepRecord>,
}

/// How a step's work ended: its outcome, one line on what it found or did, and the value later steps need.
struct Ended<T = ()> {
    outcome: StepOutcome,
    detail: String,
    value: T,
}

impl Ended {
    /// A step that hands nothing on.
    fn new(outcome: StepOutcome, detail: impl Into<String>) -> Ended {
        Ended {
            outcome,
            detail: detail.into(),
            value: (),
        }
    }

    /// The same end, handing `value` on.
    fn with<T>(self, value: T) -> Ended<T> {
        Ended {
            outcome: self.outcome,
            detail: self.detail,
            value,
        }
    }
}

impl Steps<'_> {
    /// Runs one step: reports it started, awaits `work` (which starts only then), records how it ended and hands
    /// its value on. A step whose work fails is not recorded: the error ends `lab up`.
    async fn run<T>(&mut self, step: &str, work: impl Future<Output = anyhow::Result<Ended<T>>>) -> anyhow::Result<T> {
        self.progress.started(step);
        let started = Instant::now();
        let ended = work.await?;
        let record = StepRecord {
            step: step.to_string(),
            outcome: ended.outcome,
            detail: ended.detail,
            seconds: started.elapsed().as_secs_f64(),
        };
        self.progress.finished(&record);
        self.records.push(record);
        Ok(ended.value)
    }
}

/// Runs `lab up`: its steps in order, then the stages. Each stage is resolved once, with the models' hostPaths as
/// this run mounts them, and the bring-up applies the first stage's plan.
pub async fn up(settings: &Settings, options: &UpOptions, progress: &dyn UpProgress) -> anyhow::Result<UpReport> {
    let lab = LabDefinition::load_default()?;
    let walk = lab.stages_through(options.last_stage.as_deref())?;
    if options.assertions == Assertions::Run {
        // `--probe status` is refused before anything is done when a stage's routes do not allow it.
        for stage in walk {
            crate::traffic::checks::probe_decision(&StagePlan::resolve(&lab, stage, None)?, options.probe)?;
        }
    }
    let _lock = LabLock::acquire(settings, "lab up")?;
    let mut steps = Steps {
        progress,
        records: Vec::new(),
    };
    let doctor = steps.run("doctor", steps::doctor(settings)).await?;
    let models = steps::settle_models(settings, &options.models, doctor.facts.driver)?;
    let bring_up = BringUpPlan::resolve(&lab, &models)?;
    let plans = walk
        .iter()
        .map(|stage| {
            if stage.name == bring_up.first_stage.name {
                Ok(bring_up.first_stage.clone())
            } else {
                StagePlan::resolve(&lab, stage, models.host_dir())
            }
        })
        .collect::<anyhow::Result<Vec<StagePlan>>>()?;
    if let Some(bundle) = &options.bundle {
        steps.run("bundle", steps::bundle_images(settings, bundle)).await?;
    }
    let istioctl = steps.run("istioctl", steps::istioctl(settings, options)).await?;
    let mut cluster = Cluster::connect(settings).await?;
    let note = |text: &str| progress.note(text);
    steps
        .run("istio", steps::istio(&mut cluster, istioctl, options, &note))
        .await?;
    let recorded = stage::recorded_stage(settings)?;
    let resume = stages::resume_index(&cluster, &plans, recorded.as_ref()).await?;
    steps.run("namespace", steps::namespace(&cluster, &bring_up)).await?;
    let export_timeout = options.export_timeout;
    steps
        .run(
            "models",
            steps::models(settings, &cluster, &models, &bring_up, export_timeout, &note),
        )
        .await?;
    let resumed = resume.map(|index| &plans[index]);
    let rolled_out = steps
        .run("workloads", steps::workloads(&cluster, &bring_up, resumed))
        .await?;
    steps
        .run(
            "rollout",
            steps::rollout(&cluster, rolled_out, options.rollout_timeout, &note),
        )
        .await?;
    let opened = steps
        .run("ingress", steps::ingress(settings, &cluster, options))
        .await?;
    steps.run("prediction", steps::prediction(&opened.url)).await?;
    let stage_walk = stages::Walk {
        settings,
        cluster: &cluster,
        options,
        ingress_url: &opened.url,
        note: &note,
    };
    let walked = stage_walk.stages(&mut steps, &plans, resume, recorded).await?;
    Ok(UpReport {
        steps: steps.records,
        ingress_url: opened.url.clone(),
        ingress_kind: opened.kind,
        active_stage: walked.active,
        verdict: walked.verdict,
        checks: walked.checks,
    })
}

/// "created 2, configured 1, unchanged 4" and whether anything changed.
fn summarize(changes: &[ObjectChange], suffix: &str) -> Ended {
    let count = |wanted: Change| changes.iter().filter(|change| change.change == wanted).count();
    let parts: Vec<String> = [Change::Created, Change::Configured, Change::Deleted, Change::Unchanged]
        .into_iter()
        .filter(|change| count(*change) > 0)
        .map(|change| format!("{} {}", change.word(), count(change)))
        .collect();
    let outcome = if changes.iter().all(|change| change.change == Change::Unchanged) {
        StepOutcome::AlreadyDone
    } else {
        StepOutcome::Done
    };
    let mut detail = parts.join(", ");
    if !suffix.is_empty() {
        detail = if detail.is_empty() {
            suffix.to_string()
        } else {
            format!("{detail}; {suffix}")
        };
    }
    Ended::new(outcome, detail)
}
