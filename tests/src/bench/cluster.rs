//! Benchmarks of the cluster layer against the fake API server: a warm `lab up` writes nothing, and `lab reset`
//! from `focused` to `stable` costs fewer API calls than tearing the lab down and bringing it up again.
//!
//! The fake answers instantly, so times here measure canary-lab's own work (requests, JSON, watches); on a real
//! cluster the baselines would also wait for pods to restart, which the ratios leave out in their favour.

use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use lab::cluster::Cluster;
use lab::cluster::apply::with_managed_by_label;
use lab::definition::manifests::Manifest;
use lab::definition::plan::StagePlan;
use lab::definition::stages::LabDefinition;
use lab::lifecycle::apply::apply_stage;

use super::{BenchContext, BenchResult};
use crate::fake_kube::FakeKube;

const ROLLOUT: Duration = Duration::from_secs(30);
const REPETITIONS: u32 = 20;

/// Runs the group.
pub fn run(context: &BenchContext) -> anyhow::Result<Vec<BenchResult>> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(measure(context))
}

async fn measure(context: &BenchContext) -> anyhow::Result<Vec<BenchResult>> {
    let lab = LabDefinition::load_default()?;
    let mut settings = lab::Settings::with_defaults("bench")?;
    settings.state_dir = context.out_dir.join("cluster-state");
    let kube = FakeKube::start("v1.22.17", "amd64").await;
    // Istio's injector gives the lab's pods their sidecar, which the rollout wait checks.
    kube.install_istio("1.12.7");
    let cluster = kube.connect().await;
    let focused = &StagePlan::resolve(&lab, lab.stage("focused")?, None)?;
    let stable = &StagePlan::resolve(&lab, lab.stage("stable")?, None)?;
    apply_stage(&settings, &cluster, focused, ROLLOUT).await?;
    let focused_manifests = &focused.manifests;

    // Warm apply: the lab is at `focused`, and applying `focused` again is what a second `lab up` does to it.
    kube.clear_requests();
    let started = Instant::now();
    for _ in 0..REPETITIONS {
        apply_stage(&settings, &cluster, focused, ROLLOUT).await?;
    }
    let ours_time = started.elapsed().as_secs_f64() / f64::from(REPETITIONS);
    let ours_writes = kube.writes().len() as f64 / f64::from(REPETITIONS);
    // Baseline: `kubectl apply --server-side` of the same objects, which sends every object each time.
    kube.clear_requests();
    let started = Instant::now();
    for _ in 0..REPETITIONS {
        blind_apply(&cluster, focused_manifests).await?;
    }
    let baseline_time = started.elapsed().as_secs_f64() / f64::from(REPETITIONS);
    let baseline_writes = kube.writes().len() as f64 / f64::from(REPETITIONS);
    let objects = focused_manifests.len();

    // Reset from `focused` to `stable`, against `lab down` + bringing `stable` up again.
    let mut reset_calls = 0.0;
    let mut reset_writes = 0.0;
    let mut reset_time = 0.0;
    let mut recreate_calls = 0.0;
    let mut recreate_writes = 0.0;
    let mut recreate_time = 0.0;
    for _ in 0..REPETITIONS {
        apply_stage(&settings, &cluster, focused, ROLLOUT).await?;
        kube.clear_requests();
        let started = Instant::now();
        apply_stage(&settings, &cluster, stable, ROLLOUT).await?;
        reset_time += started.elapsed().as_secs_f64();
        reset_calls += kube.requests().len() as f64;
        reset_writes += kube.writes().len() as f64;

        apply_stage(&settings, &cluster, focused, ROLLOUT).await?;
        kube.clear_requests();
        let started = Instant::now();
        recreate(&cluster, &lab, &settings).await?;
        recreate_time += started.elapsed().as_secs_f64();
        recreate_calls += kube.requests().len() as f64;
        recreate_writes += kube.writes().len() as f64;
    }
    let per = f64::from(REPETITIONS);
    Ok(vec![
        BenchResult::at_most(
            "cluster_warm_up_writes",
            ours_writes,
            baseline_writes,
            "server-side apply of every object (kubectl apply --server-side)",
            "writes",
            0.0,
        )
        .notes(&format!("the `focused` stage's {objects} objects already in place; {REPETITIONS} runs averaged")),
        BenchResult::at_most(
            "cluster_warm_up_time",
            ours_time,
            baseline_time,
            "server-side apply of every object",
            "s",
            4.0,
        )
        .notes("ours: GET + dry-run apply per object, prune listing, rollout watches; baseline: one PATCH per object"),
        BenchResult::at_most(
            "cluster_reset_calls",
            reset_calls / per,
            recreate_calls / per,
            "lab down + apply stable + rollout",
            "requests",
            1.0,
        )
        .notes("ours: one labelled LIST per kind (shared by diff and prune), a dry-run apply per existing object, the changed writes and the rollout watches"),
        BenchResult::at_most(
            "cluster_reset_writes",
            reset_writes / per,
            recreate_writes / per,
            "lab down + apply stable + rollout",
            "writes",
            1.0,
        )
        .notes("reset keeps the namespace and the running ResNet50 pods: only the VirtualService and the canary objects change"),
        BenchResult::at_most(
            "cluster_reset_time",
            reset_time / per,
            recreate_time / per,
            "lab down + apply stable + rollout",
            "s",
            1.5,
        )
        .notes("against the instant fake API; on a real cluster the baseline also waits for new pods"),
    ])
}

/// One server-side apply per object, whatever the cluster holds.
async fn blind_apply(cluster: &Cluster, manifests: &[Manifest]) -> anyhow::Result<()> {
    for manifest in manifests {
        let api = cluster.resolve(manifest)?;
        let params = PatchParams::apply("canary-lab").force();
        api.patch(
            manifest.name(),
            &params,
            &Patch::Apply(&with_managed_by_label(&manifest.object)),
        )
        .await?;
    }
    Ok(())
}

/// The slow way back to `stable`: delete the namespace, wait until it is gone, apply `stable`, wait for rollout.
async fn recreate(cluster: &Cluster, lab: &LabDefinition, settings: &lab::Settings) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::runtime::wait::conditions::is_deleted;
    let namespaces: kube::Api<Namespace> = kube::Api::all(cluster.client.clone());
    let uid = namespaces.get("tf-serving").await?.metadata.uid.unwrap_or_default();
    namespaces.delete("tf-serving", &Default::default()).await?;
    lab::cluster::wait::wait_for(
        namespaces,
        "tf-serving",
        "Namespace/tf-serving",
        "deleted",
        is_deleted(&uid),
        ROLLOUT,
    )
    .await?;
    let stable = StagePlan::resolve(lab, lab.stage("stable")?, None)?;
    apply_stage(settings, cluster, &stable, ROLLOUT).await?;
    Ok(())
}
