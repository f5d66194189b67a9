//! Applying a stage: server-side apply of its objects, deletion of the lab's objects it lacks, and waiting for the
//! rollout with every live lab pod carrying its `istio-proxy` sidecar. Recording the stage as active once it is
//! proven is [`crate::lifecycle::stage`]'s; asserting it is [`crate::lifecycle::assert`]'s.

use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde::Serialize;

use crate::Settings;
use crate::cluster::apply::{Change, ObjectChange, apply_against, apply_one, plan_against, plan_one};
use crate::cluster::prune::{delete_all, list_lab_objects};
use crate::cluster::wait::wait_deployment_rolled_out;
use crate::cluster::{Cluster, LAB_NAMESPACE};
use crate::definition::manifests::Manifest;
use crate::definition::plan::StagePlan;
use crate::lifecycle::models::{EXPORT_JOB, EXPORT_SCRIPT_CONFIGMAP};
use crate::lifecycle::stage::forget_stage;

/// Objects a stage never prunes: the model export, which no stage names.
pub const PROTECTED: &[&str] = &[EXPORT_JOB, EXPORT_SCRIPT_CONFIGMAP];

/// The sidecar container Istio injects.
pub const SIDECAR: &str = "istio-proxy";

/// What applying a stage changed.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedStage {
    /// The stage.
    pub stage: String,
    /// Every object of the stage (created, configured or unchanged) and every pruned one (deleted).
    pub changes: Vec<ObjectChange>,
    /// Deployments restarted because their pods lacked the sidecar.
    pub restarted: Vec<String>,
}

impl AppliedStage {
    /// True when nothing was created, configured, deleted or restarted.
    pub fn unchanged(&self) -> bool {
        self.restarted.is_empty() && self.changes.iter().all(|change| change.change == Change::Unchanged)
    }
}

/// Applies the stage `plan` resolves: its objects, pruning, rollout (each Deployment at most `rollout_timeout`),
/// sidecars. The recorded active stage is forgotten first; the caller records the stage with
/// [`crate::lifecycle::stage::record_stage`] once its assertions passed (or were skipped on purpose).
pub async fn apply_stage(
    settings: &Settings,
    cluster: &Cluster,
    plan: &StagePlan,
    rollout_timeout: Duration,
) -> anyhow::Result<AppliedStage> {
    forget_stage(settings)?;
    let changes = apply_and_prune(cluster, &plan.manifests)
        .await
        .with_context(|| format!("applying stage \"{}\"", plan.name))?;
    let restarted = wait_for_rollout(cluster, &plan.manifests, rollout_timeout)
        .await
        .with_context(|| format!("rolling out stage \"{}\"", plan.name))?;
    Ok(AppliedStage {
        stage: plan.name.clone(),
        changes,
        restarted,
    })
}

/// True when the cluster already holds exactly the stage `plan` resolves: every object unchanged and nothing to prune. Reads only.
pub async fn cluster_matches_stage(cluster: &Cluster, plan: &StagePlan) -> anyhow::Result<bool> {
    let manifests = &plan.manifests;
    let listed = list_lab_objects(cluster).await?;
    for manifest in manifests {
        // An object the listing lacks (absent, or not labelled yet) is looked up on its own.
        let planned = match listed.find(manifest.kind(), manifest.name()) {
            Some(live) => plan_against(cluster, manifest, Some(live)).await?,
            None => plan_one(cluster, manifest).await?,
        };
        if planned.change != Change::Unchanged {
            return Ok(false);
        }
    }
    Ok(listed.prune_candidates(manifests, PROTECTED).is_empty())
}

/// Applies `manifests` (the lab's live objects listed once per kind, so each existing object costs one dry-run
/// apply) and deletes the lab's objects they lack. Returns every object's change, deletions last.
pub async fn apply_and_prune(cluster: &Cluster, manifests: &[Manifest]) -> anyhow::Result<Vec<ObjectChange>> {
    let listed = list_lab_objects(cluster).await?;
    let mut changes = Vec::new();
    for manifest in manifests {
        // An object the listing lacks (absent, or not labelled yet) is looked up on its own.
        let change = match listed.find(manifest.kind(), manifest.name()) {
            Some(live) => apply_against(cluster, manifest, Some(live)).await?,
            None => apply_one(cluster, manifest).await?,
        };
        changes.push(change);
    }
    changes.extend(delete_all(cluster, listed.prune_candidates(manifests, PROTECTED)).await?);
    Ok(changes)
}

/// Waits until every Deployment among `manifests` has rolled out, then makes sure each of their live pods has the
/// `istio-proxy` sidecar, restarting a Deployment whose pods lack it (once). Returns the restarted ones.
///
/// Terminating pods (with a `deletionTimestamp`) are ignored: right after a rollout the old pod is still listed
/// for its grace period. A Deployment with no live pod at all is waited for (at most `rollout_timeout`) and is an
/// error if none appears: no pod proves nothing about the sidecar.
pub async fn wait_for_rollout(
    cluster: &Cluster,
    manifests: &[Manifest],
    rollout_timeout: Duration,
) -> anyhow::Result<Vec<String>> {
    let deployments: Vec<&Manifest> = manifests
        .iter()
        .filter(|manifest| manifest.kind() == "Deployment")
        .collect();
    for deployment in &deployments {
        let namespace = deployment.namespace().unwrap_or(LAB_NAMESPACE);
        wait_deployment_rolled_out(cluster, namespace, deployment.name(), rollout_timeout).await?;
    }
    let mut restarted = Vec::new();
    for deployment in &deployments {
        let namespace = deployment.namespace().unwrap_or(LAB_NAMESPACE);
        let name = deployment.name();
        let pods = live_pods(cluster, namespace, deployment, rollout_timeout).await?;
        if all_have_sidecar(&pods) {
            continue;
        }
        tracing::info!(deployment = name, "pods lack the istio-proxy sidecar: restarting");
        restart(cluster, namespace, name).await?;
        wait_deployment_rolled_out(cluster, namespace, name, rollout_timeout).await?;
        let pods = live_pods(cluster, namespace, deployment, rollout_timeout).await?;
        if !all_have_sidecar(&pods) {
            anyhow::bail!(
                "the pods of Deployment/{name} in namespace \"{namespace}\" have no {SIDECAR} container even after a restart\nhelp: check that the namespace is labelled (`kubectl get namespace {namespace} --show-labels` shows istio-injection=enabled) and that istiod runs"
            );
        }
        restarted.push(name.to_string());
    }
    Ok(restarted)
}

/// True when every pod in `pods` has the sidecar container (false for no pods: nothing was shown).
fn all_have_sidecar(pods: &[Pod]) -> bool {
    let has_sidecar = |pod: &Pod| {
        pod.spec
            .as_ref()
            .is_some_and(|spec| spec.containers.iter().any(|container| container.name == SIDECAR))
    };
    !pods.is_empty() && pods.iter().all(has_sidecar)
}

/// The live (not Terminating) pods of `deployment`, once there is at least one: read from a watch on its pods
/// (a reflector, so the list is current after every event), at most `deadline`.
async fn live_pods(
    cluster: &Cluster,
    namespace: &str,
    deployment: &Manifest,
    deadline: Duration,
) -> anyhow::Result<Vec<Pod>> {
    let name = deployment.name();
    let selector = deployment.pod_selector().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), namespace);
    let (reader, writer) = reflector::store::<Pod>();
    let events = reflector(
        writer,
        watcher(api, watcher::Config::default().labels(&selector)).default_backoff(),
    );
    let mut last_error: Option<String> = None;
    let found = async {
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            match event {
                // The store is complete after the initial list and current after each later event.
                Ok(watcher::Event::InitDone | watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                    let live: Vec<Pod> = reader
                        .state()
                        .iter()
                        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
                        .map(|pod| Pod::clone(pod))
                        .collect();
                    if !live.is_empty() {
                        return live;
                    }
                }
                Ok(_) => {}
                // The watcher lists again after a 410 Gone and backs off after other errors.
                Err(error) => last_error = Some(error.to_string()),
            }
        }
        Vec::new()
    };
    match tokio::time::timeout(deadline, found).await {
        Ok(live) if !live.is_empty() => Ok(live),
        _ => {
            let watch_error = last_error
                .map(|error| format!(" (the last watch error was: {error})"))
                .unwrap_or_default();
            anyhow::bail!(
                "Deployment/{name} in namespace \"{namespace}\" has no live pod after {}s (none, or only Terminating ones), so its {SIDECAR} sidecar cannot be checked{watch_error}\nhelp: run `kubectl -n {namespace} get pods -l {selector}` and `kubectl -n {namespace} get deployment {name}` (is it scaled to 0?), then `cargo xtask lab up` again",
                deadline.as_secs()
            )
        }
    }
}

/// Restarts a Deployment the way `kubectl rollout restart` does: a new `kubectl.kubernetes.io/restartedAt`
/// annotation on the pod template (applied under its own field manager, so canary-lab's apply never fights it).
async fn restart(cluster: &Cluster, namespace: &str, name: &str) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    let patch = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": format!("unix-{now}")
        }}}}
    });
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
    api.patch(
        name,
        &PatchParams::apply("canary-lab-restart").force(),
        &Patch::Apply(&patch),
    )
    .await
    .with_context(|| format!("restarting Deployment/{name} in namespace \"{namespace}\""))?;
    Ok(())
}
