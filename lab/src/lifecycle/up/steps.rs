//! `lab up`'s steps before the stages, one function each, in the order [`super::up`] runs them: each does its work
//! and says how it ended ([`Ended`]), handing on what later steps need.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use super::{Ended, StepOutcome, UpOptions, summarize};
use crate::cluster::Cluster;
use crate::cluster::apply::apply_all;
use crate::definition::plan::StagePlan;
use crate::istio::install::{InstallOptions, InstallOutcome, ensure_istio};
use crate::istio::{FetchOptions, FetchedFrom, fetch_istioctl_with_origin};
use crate::lifecycle::apply::{apply_and_prune, wait_for_rollout};
use crate::lifecycle::bring_up::{BringUpPlan, ModelsPlan};
use crate::lifecycle::ingress::{self, Ingress};
use crate::lifecycle::models::{self, ModelSource};
use crate::lifecycle::preflight::{CheckStatus, DoctorReport, run_doctor};
use crate::lifecycle::state::{self, MODELS_HOST_DIR_FILE};
use crate::tool::minikube::Driver;
use crate::{LabError, Settings};

/// The preflight checks: any that fails ends `lab up` with what failed.
pub(super) async fn doctor(settings: &Settings) -> anyhow::Result<Ended<DoctorReport>> {
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
    Ok(Ended::new(
        StepOutcome::Checked,
        format!(
            "all checks pass ({})",
            crate::output::plural(warnings as u64, "warning")
        ),
    )
    .with(report))
}

/// Settles where the models come from, before anything is compared or applied (their source decides the
/// Deployments' hostPaths): checks a host directory's layout, and records the directory the `none` driver mounts
/// as is (forgetting it otherwise), so a later `lab stage` applies the same hostPaths.
pub(super) fn settle_models(settings: &Settings, source: &ModelSource, driver: Driver) -> anyhow::Result<ModelsPlan> {
    Ok(match source {
        ModelSource::Export => {
            state::forget(settings, MODELS_HOST_DIR_FILE)?;
            ModelsPlan::Export
        }
        ModelSource::Host(dir) => {
            let found = models::check_host_layout(dir)?;
            match driver {
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
    })
}

/// The bundle's images in the node: each one the node lacks loaded (`minikube image load`).
pub(super) async fn bundle_images(
    settings: &Settings,
    bundle: &crate::lifecycle::bundle::VerifiedBundle,
) -> anyhow::Result<Ended> {
    let minikube = crate::tool::minikube::Minikube::new(settings.minikube_program());
    let (loaded, had) = bundle
        .load_images(&minikube, &settings.profile)
        .with_context(|| format!("loading the images of the bundle \"{}\"", bundle.dir.display()))?;
    let had_text = crate::output::plural(had.len() as u64, "image");
    Ok(if loaded.is_empty() {
        Ended::new(
            StepOutcome::AlreadyDone,
            format!("{had_text} of the bundle already in the node"),
        )
    } else {
        Ended::new(
            StepOutcome::Done,
            format!("loaded {} ({had_text} already in the node)", loaded.join(", ")),
        )
    })
}

/// The `istioctl` to install with: the one given with `--istioctl`, or Istio 1.12.7's, fetched and verified.
pub(super) async fn istioctl(settings: &Settings, options: &UpOptions) -> anyhow::Result<Ended<PathBuf>> {
    match &options.istioctl {
        // Nothing to fetch: the user's istioctl is used as given (its version is read by the Istio step).
        Some(path) => Ok(Ended::new(
            StepOutcome::AlreadyDone,
            format!("{} (given with --istioctl)", path.display()),
        )
        .with(path.clone())),
        None => {
            let mut fetch = FetchOptions::lab_default(settings.cache_dir.clone());
            // An offline room: the bundle's archive, verified as `--archive` is.
            fetch.archive = match &options.bundle {
                Some(bundle) => Some(bundle.istio_archive_for(crate::istio::Platform::current()?)?),
                None => None,
            };
            let fetched = fetch_istioctl_with_origin(&fetch).await.context("getting istioctl")?;
            let (outcome, how) = match fetched.origin {
                FetchedFrom::Cache => (StepOutcome::AlreadyDone, "verified, in the cache"),
                FetchedFrom::Unpacked => (StepOutcome::Done, "unpacked from the verified archive in the cache"),
                FetchedFrom::Downloaded => (StepOutcome::Done, "downloaded, verified and unpacked"),
            };
            Ok(Ended::new(outcome, format!("{} ({how})", fetched.path.display())).with(fetched.path))
        }
    }
}

/// Istio installed with `istioctl`, istiod and the ingress gateway available.
pub(super) async fn istio(
    cluster: &mut Cluster,
    istioctl: PathBuf,
    options: &UpOptions,
    note: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Ended> {
    let install = InstallOptions {
        istioctl,
        reinstall: options.reinstall_istio,
        ready_timeout: options.istio_timeout,
    };
    // Istio's install adds CRDs: `ensure_istio` waits until they are Established and refreshes the discovery taken
    // at connection, which did not list them.
    Ok(match ensure_istio(cluster, &install, note).await? {
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
}

/// The namespace, labelled for sidecar injection before any pod exists.
pub(super) async fn namespace(cluster: &Cluster, bring_up: &BringUpPlan) -> anyhow::Result<Ended> {
    let changes = apply_all(cluster, &bring_up.namespaces).await?;
    Ok(summarize(&changes, "labelled istio-injection=enabled"))
}

/// The models on the node, as `models` says: exported by the Job, mounted as is, or copied into the node.
pub(super) async fn models(
    settings: &Settings,
    cluster: &Cluster,
    models: &ModelsPlan,
    bring_up: &BringUpPlan,
    export_timeout: Duration,
    note: &dyn Fn(&str),
) -> anyhow::Result<Ended> {
    Ok(match models {
        ModelsPlan::Export => {
            note(&format!(
                "exporting the models in the cluster (Job {}, at most {}s)",
                models::EXPORT_JOB,
                export_timeout.as_secs()
            ));
            let changes = models::export_in_cluster(cluster, &bring_up.export, export_timeout).await?;
            summarize(&changes, "exported by the Job into /data/canary-lab/models on the node")
        }
        ModelsPlan::MountAsIs(dir) => Ended::new(
            StepOutcome::AlreadyDone,
            format!("mounted from {} as is (none driver)", dir.display()),
        ),
        ModelsPlan::CopyIntoNode(dir, found) => {
            let minikube = crate::tool::minikube::Minikube::new(settings.minikube_program());
            let profile = settings.profile.clone();
            let (dir, found) = (dir.clone(), found.clone());
            let copied = tokio::task::spawn_blocking(move || models::copy_into_node(&minikube, &profile, &dir, &found))
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
}

/// TF Serving and the Istio objects of the first stage, or nothing when resuming at `resumed` (a stage the cluster
/// holds exactly). Hands on the stage whose Deployments the rollout step waits for.
pub(super) async fn workloads<'a>(
    cluster: &Cluster,
    bring_up: &'a BringUpPlan,
    resumed: Option<&'a StagePlan>,
) -> anyhow::Result<Ended<&'a StagePlan>> {
    match resumed {
        Some(plan) => {
            let detail = format!("the lab is at stage \"{}\"", plan.name);
            Ok(Ended::new(StepOutcome::AlreadyDone, detail).with(plan))
        }
        None => {
            let changes = apply_and_prune(cluster, &bring_up.first_stage.manifests).await?;
            Ok(summarize(&changes, "").with(&bring_up.first_stage))
        }
    }
}

/// Every Deployment of `plan` rolled out, with its pods carrying the sidecar.
pub(super) async fn rollout(
    cluster: &Cluster,
    plan: &StagePlan,
    rollout_timeout: Duration,
    note: &dyn Fn(&str),
) -> anyhow::Result<Ended> {
    note(&format!(
        "waiting for the Deployments to roll out (at most {}s each)",
        rollout_timeout.as_secs()
    ));
    let restarted = wait_for_rollout(cluster, &plan.manifests, rollout_timeout).await?;
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
}

/// The way in, opened as `--ingress` says and recorded for later commands.
pub(super) async fn ingress(
    settings: &Settings,
    cluster: &Cluster,
    options: &UpOptions,
) -> anyhow::Result<Ended<Ingress>> {
    let opened = ingress::open(settings, cluster, &options.ingress, Duration::from_secs(120)).await?;
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
}

/// One prediction through the gateway.
pub(super) async fn prediction(ingress_url: &str) -> anyhow::Result<Ended> {
    let scores = crate::traffic::smoke::smoke_prediction(ingress_url, Duration::from_secs(120)).await?;
    Ok(Ended::new(
        StepOutcome::Checked,
        format!("{scores} scores through the gateway"),
    ))
}
