//! `lab up`: from a running minikube to a served, reachable ResNet50 behind the Istio ingress gateway, then the
//! stages in order. Idempotent: a second run on a ready cluster finds every step done and writes nothing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::cluster::apply::{Change, ObjectChange, apply_all};
use crate::definition::stages::{DEFAULT_RESET_STAGE, LabDefinition};
use crate::istio::install::{InstallOptions, InstallOutcome, ensure_istio};
use crate::istio::{FetchOptions, FetchedFrom, fetch_istioctl_with_origin};
use crate::lifecycle::ingress::{self, IngressMode};
use crate::lifecycle::models::{self, ModelSource};
use crate::lifecycle::preflight::{CheckStatus, run_doctor};
use crate::lifecycle::stage as stage_apply;
use crate::lifecycle::state::MODELS_HOST_DIR_FILE;
use crate::lifecycle::state::{self, LabLock};
use crate::report::Verdict;
use crate::tool::minikube::Driver;
use crate::{LabError, Settings};

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
    /// Where the models come from.
    pub models: ModelSource,
    /// How to reach the ingress gateway.
    pub ingress: IngressMode,
    /// Stop after this stage (default: walk them all).
    pub last_stage: Option<String>,
    /// Run each stage's assertions (`--no-assert` turns this off).
    pub assertions: Assertions,
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
pub trait Progress: Sync {
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

/// Runs `lab up`'s steps in order, telling [`Progress`] when each starts and ends, and keeps their records.
struct Steps<'a> {
    progress: &'a dyn Progress,
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

/// Runs `lab up`.
pub async fn up(settings: &Settings, options: &UpOptions, progress: &dyn Progress) -> anyhow::Result<UpReport> {
    let lab = LabDefinition::load_default()?;
    let walk = lab.stages_through(options.last_stage.as_deref())?;
    let _lock = LabLock::acquire(settings, "lab up")?;
    let mut steps = Steps {
        progress,
        records: Vec::new(),
    };

    // Preflight.
    let report = steps
        .run("doctor", async {
            let report = run_doctor(settings).await;
            let failed: Vec<String> = report
                .rows
                .iter()
                .filter(|row| row.status == CheckStatus::Fail)
                .map(|row| format!("{}: {}", row.check, row.found))
                .collect();
            if !failed.is_empty() {
                return Err(LabError::not_ready(
                    format!("the preflight checks failed:\n  {}", failed.join("\n  ")),
                    "run `cargo xtask lab doctor` and apply the fixes it prints",
                )
                .into());
            }
            let warnings = report.rows.iter().filter(|row| row.status == CheckStatus::Warn).count();
            Ok(Ended::new(StepOutcome::Checked, format!("all checks pass ({warnings} warning(s))")).with(report))
        })
        .await?;

    // The models' source decides the Deployments' hostPaths, so it is settled (and a host directory checked)
    // before anything is compared or applied.
    let models_plan = match &options.models {
        ModelSource::Export => {
            state::forget(settings, MODELS_HOST_DIR_FILE)?;
            ModelsPlan::Export
        }
        ModelSource::Host(dir) => {
            let found = models::check_host_layout(dir)?;
            match report.facts.driver {
                Driver::None => {
                    let path = dir.canonicalize().unwrap_or_else(|_| dir.clone());
                    state::write_value(settings, MODELS_HOST_DIR_FILE, &path.display().to_string())?;
                    ModelsPlan::MountAsIs(path)
                }
                _ => {
                    state::forget(settings, MODELS_HOST_DIR_FILE)?;
                    ModelsPlan::CopyIntoNode(dir.clone(), found)
                }
            }
        }
    };

    // istioctl.
    let istioctl = steps
        .run("istioctl", async {
            match &options.istioctl {
                // Nothing to fetch: the user's istioctl is used as given (its version is read by the Istio step).
                Some(path) => Ok(Ended::new(
                    StepOutcome::AlreadyDone,
                    format!("{} (given with --istioctl)", path.display()),
                )
                .with(path.clone())),
                None => {
                    let fetched = fetch_istioctl_with_origin(&FetchOptions::lab_default(settings.cache_dir.clone()))
                        .await
                        .context("getting istioctl")?;
                    let (outcome, how) = match fetched.origin {
                        FetchedFrom::Cache => (StepOutcome::AlreadyDone, "verified, in the cache"),
                        FetchedFrom::Unpacked => (StepOutcome::Done, "unpacked from the verified archive in the cache"),
                        FetchedFrom::Downloaded => (StepOutcome::Done, "downloaded, verified and unpacked"),
                    };
                    Ok(Ended::new(outcome, format!("{} ({how})", fetched.path.display())).with(fetched.path))
                }
            }
        })
        .await?;

    let mut cluster = Cluster::connect(settings).await?;
    let note = |text: &str| progress.note(text);

    // Istio.
    steps
        .run("istio", async {
            let install = InstallOptions {
                istioctl,
                reinstall: options.reinstall_istio,
                ready_timeout: options.istio_timeout,
            };
            // Istio's install adds CRDs: `ensure_istio` waits until they are Established and refreshes the discovery
            // taken at connection, which did not list them.
            Ok(match ensure_istio(&mut cluster, &install, &note).await? {
                InstallOutcome::AlreadyInstalled { version } => Ended::new(
                    StepOutcome::AlreadyDone,
                    format!("Istio {version} is installed and available"),
                ),
                InstallOutcome::Installed { version, replaced } => {
                    let replaced = replaced.map(|old| format!(" (replaced {old})")).unwrap_or_default();
                    Ended::new(
                        StepOutcome::Done,
                        format!("installed Istio {version}{replaced}; istiod and the ingress gateway are available"),
                    )
                }
            })
        })
        .await?;

    // Where to resume: the recorded stage, if the cluster still holds exactly it and it is on the way.
    let recorded = stage_apply::recorded_stage(settings)?;
    let resume_index = match recorded
        .as_ref()
        .and_then(|(name, _)| walk.iter().position(|stage| &stage.name == name))
    {
        Some(index) if stage_apply::cluster_matches_stage(settings, &cluster, &lab, &walk[index]).await? => Some(index),
        _ => None,
    };

    // Namespace, labelled for sidecar injection before any pod exists.
    let bring_up = steps
        .run("namespace", async {
            let stable = lab.stage(DEFAULT_RESET_STAGE)?;
            let bring_up = stage_apply::stage_manifests(settings, &lab, stable)?;
            let namespace: Vec<_> = bring_up
                .iter()
                .filter(|manifest| manifest.kind() == "Namespace")
                .cloned()
                .collect();
            let changes = apply_all(&cluster, &namespace).await?;
            Ok(summarize(&changes, "labelled istio-injection=enabled").with(bring_up))
        })
        .await?;

    // Models.
    steps
        .run("models", async {
            Ok(match models_plan {
                ModelsPlan::Export => {
                    note(&format!(
                        "exporting the models in the cluster (Job {}, at most {}s)",
                        models::EXPORT_JOB,
                        options.export_timeout.as_secs()
                    ));
                    let changes = models::export_in_cluster(&cluster, options.export_timeout).await?;
                    summarize(&changes, "exported by the Job into /data/canary-lab/models on the node")
                }
                ModelsPlan::MountAsIs(dir) => Ended::new(
                    StepOutcome::AlreadyDone,
                    format!("mounted from {} as is (none driver)", dir.display()),
                ),
                ModelsPlan::CopyIntoNode(dir, found) => {
                    let minikube = crate::tool::minikube::Minikube::new(settings.minikube_program());
                    let profile = settings.profile.clone();
                    let copied =
                        tokio::task::spawn_blocking(move || models::copy_into_node(&minikube, &profile, &dir, &found))
                            .await
                            .context("copying the models into the node")??;
                    if copied.copied.is_empty() {
                        Ended::new(
                            StepOutcome::AlreadyDone,
                            format!("{} already on the node", copied.present.join(", ")),
                        )
                    } else {
                        Ended::new(
                            StepOutcome::Done,
                            format!("copied {} into the node", copied.copied.join(", ")),
                        )
                    }
                }
            })
        })
        .await?;

    // TF Serving and the Istio objects of the first stage (skipped when resuming at a later stage).
    let rollout_set = steps
        .run("workloads", async {
            match resume_index {
                Some(index) => {
                    let name = &walk[index].name;
                    let manifests = stage_apply::stage_manifests(settings, &lab, &walk[index])?;
                    Ok(Ended::new(StepOutcome::AlreadyDone, format!("the lab is at stage \"{name}\"")).with(manifests))
                }
                None => {
                    let changes = stage_apply::apply_and_prune(&cluster, &bring_up).await?;
                    Ok(summarize(&changes, "").with(bring_up.clone()))
                }
            }
        })
        .await?;

    // Rollout.
    steps
        .run("rollout", async {
            note(&format!(
                "waiting for the Deployments to roll out (at most {}s each)",
                options.rollout_timeout.as_secs()
            ));
            let restarted = stage_apply::wait_for_rollout(&cluster, &rollout_set, options.rollout_timeout).await?;
            Ok(if restarted.is_empty() {
                Ended::new(
                    StepOutcome::AlreadyDone,
                    "every Deployment is available with its sidecar",
                )
            } else {
                Ended::new(
                    StepOutcome::Done,
                    format!("restarted {} to inject the sidecar", restarted.join(", ")),
                )
            })
        })
        .await?;

    // Ingress.
    let opened = steps
        .run("ingress", async {
            let opened = ingress::open(settings, &cluster, &options.ingress, Duration::from_secs(120)).await?;
            let recorded_url = state::read_ingress_url(settings)?;
            state::write_ingress_url(settings, &opened.url)?;
            state::write_ingress_kind(settings, opened.kind)?;
            let outcome = if recorded_url.as_deref() == Some(opened.url.as_str()) {
                StepOutcome::AlreadyDone
            } else {
                StepOutcome::Done
            };
            let held = if opened.held_by_this_process() {
                " (open while this command runs)"
            } else {
                ""
            };
            let detail = format!("{} via {}{held}", opened.url, opened.kind);
            Ok(Ended::new(outcome, detail).with(opened))
        })
        .await?;

    // One prediction through the gateway.
    steps
        .run("prediction", async {
            let scores = crate::traffic::smoke::smoke_prediction(&opened.url, Duration::from_secs(120)).await?;
            Ok(Ended::new(
                StepOutcome::Checked,
                format!("{scores} scores through the gateway"),
            ))
        })
        .await?;

    // The stages. One is recorded as active only once its assertions passed, or with `--no-assert` as not asserted;
    // a resumed stage recorded as not asserted is asserted now (without applying it again) when assertions run.
    let recorded_verdict = recorded.as_ref().map(|(_, verdict)| *verdict);
    let mut active = recorded
        .map(|(name, _)| name)
        .unwrap_or_else(|| DEFAULT_RESET_STAGE.to_string());
    let mut active_verdict = recorded_verdict.unwrap_or(Verdict::NotAsserted);
    let mut checks = Vec::new();
    for (index, stage) in walk.iter().enumerate() {
        let resumed_here = resume_index == Some(index);
        let behind = resume_index.is_some_and(|resumed| index < resumed);
        let asserted_before = resumed_here && recorded_verdict == Some(Verdict::Pass);
        // The verdict this run reached, when it applied or asserted the stage.
        let reached = steps
            .run(&format!("stage {}", stage.name), async {
                if behind {
                    return Ok(Ended::new(
                        StepOutcome::AlreadyDone,
                        "the lab is past it (not asserted in this run)",
                    )
                    .with(None));
                }
                if resumed_here && (asserted_before || options.assertions == Assertions::Skip) {
                    let (verdict, detail) = if asserted_before {
                        (Verdict::Pass, "applied and asserted before (pass)")
                    } else {
                        (Verdict::NotAsserted, "applied before; assertions skipped (--no-assert)")
                    };
                    active_verdict = verdict;
                    return Ok(Ended::new(StepOutcome::AlreadyDone, detail).with(None));
                }
                // Apply it, unless the cluster holds exactly it already (a resumed stage that was never asserted).
                let applied = if resumed_here {
                    Ended::new(StepOutcome::AlreadyDone, "applied before")
                } else {
                    let report =
                        stage_apply::apply_stage(settings, &cluster, &lab, stage, options.rollout_timeout).await?;
                    summarize(&report.changes, "")
                };
                active = stage.name.clone();
                let (verdict, detail) = match options.assertions {
                    Assertions::Run => {
                        let check = stage_apply::assert_stage(&cluster, &lab, stage, &opened.url, &note).await?;
                        let requests: u64 = check.assertions.iter().map(|assertion| assertion.requests).sum();
                        let verdict = check.verdict;
                        checks.push(check);
                        (
                            verdict,
                            format!(
                                "{}; assertions: {} ({requests} requests)",
                                applied.detail,
                                verdict.as_str()
                            ),
                        )
                    }
                    Assertions::Skip => (
                        Verdict::NotAsserted,
                        format!("{}; assertions skipped (--no-assert)", applied.detail),
                    ),
                };
                stage_apply::record_stage(settings, &stage.name, verdict)?;
                active_verdict = verdict;
                Ok(Ended::new(applied.outcome, detail).with(Some(verdict)))
            })
            .await?;
        let proven = reached.is_none_or(|verdict| matches!(verdict, Verdict::Pass | Verdict::NotAsserted));
        if !proven {
            // Stop here: the next stage builds on this one, and the report says what went wrong.
            break;
        }
    }
    Ok(UpReport {
        steps: steps.records,
        ingress_url: opened.url.clone(),
        ingress_kind: opened.kind,
        active_stage: active,
        verdict: active_verdict,
        checks,
    })
}

/// How this run puts the models on the node.
enum ModelsPlan {
    /// The export Job.
    Export,
    /// The `none` driver mounts this host directory as is.
    MountAsIs(PathBuf),
    /// Copy these models from this directory into the node.
    CopyIntoNode(PathBuf, Vec<models::HostModel>),
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
