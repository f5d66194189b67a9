//! What a real 1.24 cluster with Istio does over time, through the fake API and the lab's own code: rollouts that
//! leave the old pod Terminating for a while, Jobs that run a pod (and never finish with a sidecar), namespaces
//! that terminate, watches with bookmarks, timeouts and 410 Gone; and the lab's stage records and verdicts.

use std::time::Duration;

use canary_lab_tests::assert_contains;
use canary_lab_tests::envoy::{Envoy, StageRouting};
use canary_lab_tests::fake_kube::{FakeKube, Scenario, Timing};
use canary_lab_tests::up_args::UpArgs;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, WatchEvent, WatchParams};
use lab::cluster::Cluster;
use lab::cluster::apply::apply_all;
use lab::cluster::wait::{wait_deployment_rolled_out, wait_for};
use lab::definition::manifests::Manifest;
use lab::lifecycle::apply::wait_for_rollout;
use serde_json::json;

use crate::up::Lab;

const NAMESPACE: &str = "tf-serving";
const RESNET50: &str = "image-classifier-resnet50";

/// A fake cluster with Istio 1.12.7 installed and the lab's namespace, labelled for injection or not.
async fn cluster_with_istio(labelled: bool) -> (FakeKube, Cluster) {
    let kube = FakeKube::start("v1.24.3", "amd64").await;
    kube.install_istio("1.12.7");
    let labels = if labelled {
        json!({"istio-injection": "enabled"})
    } else {
        json!({})
    };
    kube.put(
        "namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels}}),
    );
    let cluster = kube.connect().await;
    (kube, cluster)
}

/// Fails the test if `future` takes more than 20 s (each of these takes well under a second).
async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("finished within 20s")
}

/// Applies the one `manifest` (within 20 s).
async fn apply_one_manifest(cluster: &Cluster, manifest: &Manifest) {
    within(apply_all(cluster, std::slice::from_ref(manifest)))
        .await
        .unwrap();
}

/// The lab's rollout wait (sidecar check included) for the one Deployment `manifest`, at most `timeout`.
async fn roll_out(cluster: &Cluster, manifest: &Manifest, timeout: Duration) -> anyhow::Result<Vec<String>> {
    within(wait_for_rollout(cluster, std::slice::from_ref(manifest), timeout)).await
}

/// The `stable` stage's ResNet50 Deployment manifest.
fn resnet50() -> Manifest {
    let lab = lab::definition::stages::LabDefinition::load_default().unwrap();
    let manifests = lab.stage_manifests(lab.stage("stable").unwrap()).unwrap();
    manifests
        .into_iter()
        .find(|manifest| manifest.kind() == "Deployment" && manifest.name() == RESNET50)
        .unwrap()
}

/// The pods of `deployment`, Terminating ones too, as (name, terminating, has the sidecar).
async fn pods_of(cluster: &Cluster, deployment: &str) -> Vec<(String, bool, bool)> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let listed = pods.list(&Default::default()).await.unwrap();
    listed
        .items
        .into_iter()
        .filter(|pod| pod.metadata.name.as_deref().unwrap_or_default().starts_with(deployment))
        .map(|pod| {
            let has_sidecar = pod
                .spec
                .as_ref()
                .is_some_and(|spec| spec.containers.iter().any(|container| container.name == "istio-proxy"));
            (
                pod.metadata.name.clone().unwrap_or_default(),
                pod.metadata.deletion_timestamp.is_some(),
                has_sidecar,
            )
        })
        .collect()
}

/// A Terminating pod stays listed this long here, so a test that looks right after a rollout certainly sees it.
fn long_grace() -> Timing {
    Timing {
        pod_grace: Duration::from_secs(30),
        ..Timing::default()
    }
}

#[tokio::test]
async fn a_rollout_leaves_the_old_pod_terminating_and_the_sidecar_check_ignores_it() {
    // Pods made before the namespace was labelled have no sidecar.
    let (kube, cluster) = cluster_with_istio(false).await;
    let deployment = resnet50();
    apply_one_manifest(&cluster, &deployment).await;
    within(wait_deployment_rolled_out(
        &cluster,
        NAMESPACE,
        RESNET50,
        Duration::from_secs(10),
    ))
    .await
    .unwrap();
    kube.put(
        "namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": NAMESPACE, "labels": {"istio-injection": "enabled"}}}),
    );
    kube.timing(long_grace());
    // A new pod template rolls out: the new pod has the sidecar; the old one is Terminating, without it.
    let mut changed = deployment.clone();
    changed.object["spec"]["template"]["metadata"]["annotations"] = json!({"canary-lab.test/revision": "2"});
    apply_one_manifest(&cluster, &changed).await;
    let restarted = roll_out(&cluster, &changed, Duration::from_secs(10)).await.unwrap();
    assert!(restarted.is_empty(), "no restart: the live pod has its sidecar");
    let pods = pods_of(&cluster, RESNET50).await;
    assert!(
        pods.iter().any(|(_, terminating, sidecar)| *terminating && !sidecar),
        "the old pod is still listed, Terminating, without the sidecar: {pods:?}"
    );
    assert_eq!(
        pods.iter()
            .filter(|(_, terminating, sidecar)| !terminating && *sidecar)
            .count(),
        1,
        "{pods:?}"
    );
}

#[tokio::test]
async fn pods_made_before_the_label_get_one_restart_while_the_old_pod_is_still_terminating() {
    let (kube, cluster) = cluster_with_istio(false).await;
    let deployment = resnet50();
    apply_one_manifest(&cluster, &deployment).await;
    kube.put(
        "namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": NAMESPACE, "labels": {"istio-injection": "enabled"}}}),
    );
    kube.timing(long_grace());
    let restarted = roll_out(&cluster, &deployment, Duration::from_secs(10)).await.unwrap();
    assert_eq!(restarted, [RESNET50]);
    let pods = pods_of(&cluster, RESNET50).await;
    assert!(
        pods.iter().any(|(_, terminating, sidecar)| *terminating && !sidecar),
        "the pre-restart pod is still Terminating: {pods:?}"
    );
}

#[tokio::test]
async fn a_deployment_without_a_live_pod_is_not_taken_for_one_with_the_sidecar() {
    let (_kube, cluster) = cluster_with_istio(true).await;
    let mut scaled_to_zero = resnet50();
    scaled_to_zero.object["spec"]["replicas"] = json!(0);
    apply_one_manifest(&cluster, &scaled_to_zero).await;
    let error = roll_out(&cluster, &scaled_to_zero, Duration::from_secs(1))
        .await
        .expect_err("no pod proves nothing about the sidecar");
    let message = error.to_string();
    assert_contains!(
        message,
        "Deployment/image-classifier-resnet50 in namespace \"tf-serving\" has no live pod after 1s"
    );
    assert_contains!(message, "help: run `kubectl -n tf-serving get pods -l ");
}

#[tokio::test]
async fn the_export_job_runs_a_pod_without_a_sidecar_and_completes() {
    let (kube, cluster) = cluster_with_istio(true).await;
    within(lab::lifecycle::models::export_in_cluster(
        &cluster,
        &lab::lifecycle::models::export_manifests().unwrap(),
        Duration::from_secs(10),
    ))
    .await
    .unwrap();
    let job = kube.object("jobs", NAMESPACE, "export-models").unwrap();
    assert_eq!(job["status"]["succeeded"], 1);
    assert_eq!(job["status"]["conditions"][0]["type"], "Complete");
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let listed = pods
        .list(&kube::api::ListParams::default().labels("job-name=export-models"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let pod = &listed.items[0];
    assert_eq!(pod.status.as_ref().unwrap().phase.as_deref(), Some("Succeeded"));
    let containers: Vec<&str> = pod
        .spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(containers, ["export"], "the Job's pod template opts out of injection");
}

#[tokio::test]
async fn a_job_pod_with_an_injected_sidecar_keeps_running_and_its_job_never_completes() {
    let (kube, cluster) = cluster_with_istio(true).await;
    let mut manifests = lab::lifecycle::models::export_manifests().unwrap();
    for manifest in &mut manifests {
        // The same Job without `sidecar.istio.io/inject: "false"`.
        if let Some(annotations) = manifest.object["spec"]["template"]["metadata"]["annotations"].as_object_mut() {
            annotations.remove("sidecar.istio.io/inject");
        }
    }
    within(apply_all(&cluster, &manifests)).await.unwrap();
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    // Wait until the export container has exited (while the proxy runs on).
    let exited = |pod: Option<&Pod>| {
        pod.and_then(|pod| pod.status.as_ref())
            .and_then(|status| status.container_statuses.as_ref())
            .is_some_and(|statuses| {
                statuses.iter().any(|status| {
                    status.name == "export" && status.state.as_ref().is_some_and(|s| s.terminated.is_some())
                })
            })
    };
    // The Job controller made its pod once the Job counts it as active.
    let active =
        |job: Option<&Job>| job.and_then(|job| job.status.as_ref()).and_then(|status| status.active) == Some(1);
    within(wait_for(
        jobs.clone(),
        "export-models",
        "Job/export-models",
        "active",
        active,
        Duration::from_secs(10),
    ))
    .await
    .unwrap();
    let listed = pods
        .list(&kube::api::ListParams::default().labels("job-name=export-models"))
        .await
        .unwrap();
    let pod_name = listed.items[0].metadata.name.clone().unwrap();
    within(wait_for(
        pods.clone(),
        &pod_name,
        "the export pod",
        "exited",
        exited,
        Duration::from_secs(10),
    ))
    .await
    .unwrap();
    let pod = pods.get(&pod_name).await.unwrap();
    let status = pod.status.unwrap();
    assert_eq!(
        status.phase.as_deref(),
        Some("Running"),
        "the istio-proxy container still runs"
    );
    let proxy = status
        .container_statuses
        .unwrap()
        .into_iter()
        .find(|status| status.name == "istio-proxy")
        .expect("an injected sidecar");
    assert!(proxy.state.unwrap().running.is_some());
    let job = jobs.get("export-models").await.unwrap();
    assert_eq!(job.status.as_ref().unwrap().active, Some(1));
    assert!(job.status.unwrap().conditions.is_none(), "never Complete");
    // A wait for it runs out of time instead.
    let complete = |job: Option<&Job>| {
        job.and_then(|job| job.status.as_ref())
            .and_then(|status| status.conditions.as_ref())
            .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Complete" && c.status == "True"))
    };
    let error = within(wait_for(
        jobs,
        "export-models",
        "Job/export-models",
        "complete",
        complete,
        Duration::from_secs(1),
    ))
    .await
    .expect_err("a Job whose pod keeps a sidecar never completes");
    assert_contains!(error.to_string(), "was not complete after 1s");
    drop(kube);
}

#[tokio::test]
async fn a_failing_export_job_fails_after_its_backoff_limit_with_the_log() {
    let (kube, cluster) = cluster_with_istio(true).await;
    kube.scenario("export-models", Scenario::Failing);
    let error = within(lab::lifecycle::models::export_in_cluster(
        &cluster,
        &lab::lifecycle::models::export_manifests().unwrap(),
        Duration::from_secs(10),
    ))
    .await
    .expect_err("the Job fails");
    let message = error.to_string();
    assert_contains!(message, "Job/export-models in namespace \"tf-serving\" failed");
    assert_contains!(message, "No space left on device");
    let job = kube.object("jobs", NAMESPACE, "export-models").unwrap();
    assert_eq!(job["status"]["conditions"][0]["reason"], "BackoffLimitExceeded");
    // backoffLimit 2: the first try and two retries.
    assert_eq!(job["status"]["failed"], 3);
}

#[tokio::test]
async fn a_deleted_namespace_terminates_until_its_pods_are_gone_and_refuses_new_content() {
    let (kube, cluster) = cluster_with_istio(true).await;
    within(apply_all(&cluster, &[resnet50()])).await.unwrap();
    within(wait_for_rollout(&cluster, &[resnet50()], Duration::from_secs(10)))
        .await
        .unwrap();
    // Long enough that the namespace is certainly still Terminating when the test looks, however loaded the machine.
    kube.timing(Timing {
        pod_grace: Duration::from_secs(3),
        ..Timing::default()
    });
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let uid = namespaces.get(NAMESPACE).await.unwrap().metadata.uid.unwrap();
    namespaces.delete(NAMESPACE, &DeleteParams::default()).await.unwrap();
    let terminating = namespaces
        .get(NAMESPACE)
        .await
        .expect("still there while its pods terminate");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.status.unwrap().phase.as_deref(), Some("Terminating"));
    let config_maps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let refused = config_maps
        .patch(
            "late",
            &PatchParams::apply("canary-lab"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}})),
        )
        .await
        .expect_err("no new content in a terminating namespace");
    assert_contains!(refused.to_string(), "because it is being terminated");
    within(wait_for(
        namespaces,
        NAMESPACE,
        "namespace \"tf-serving\"",
        "deleted",
        kube::runtime::wait::conditions::is_deleted(&uid),
        Duration::from_secs(10),
    ))
    .await
    .unwrap();
    assert!(kube.names("pods", NAMESPACE).is_empty());
}

#[tokio::test]
async fn watches_get_bookmarks_and_end_after_their_timeout() {
    let (kube, cluster) = cluster_with_istio(true).await;
    kube.timing(Timing {
        bookmark_every: Duration::from_millis(50),
        ..Timing::default()
    });
    let config_maps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let listed = config_maps.list(&Default::default()).await.unwrap();
    let version = listed.metadata.resource_version.unwrap();
    // kube asks for bookmarks by default (`allowWatchBookmarks=true`).
    let params = WatchParams::default().timeout(1);
    let events: Vec<_> = within(async {
        let stream = config_maps.watch(&params, &version).await.unwrap();
        stream.collect::<Vec<_>>().await
    })
    .await;
    let bookmarks = events
        .iter()
        .filter(|event| matches!(event, Ok(WatchEvent::Bookmark(_))))
        .count();
    assert!(bookmarks >= 1, "{events:?}");
    // The stream ended on its own (the server closed it after timeoutSeconds=1): `collect` returned.
}

#[tokio::test]
async fn a_watch_from_a_compacted_version_gets_410_and_the_labs_wait_lists_again() {
    let (kube, cluster) = cluster_with_istio(true).await;
    kube.scenario(RESNET50, Scenario::ImagePullBackOff);
    within(apply_all(&cluster, &[resnet50()])).await.unwrap();
    kube.clear_requests();
    let waiting = tokio::spawn({
        let client = cluster.client.clone();
        async move {
            let api: Api<Deployment> = Api::namespaced(client, NAMESPACE);
            let object = format!("Deployment/{RESNET50}");
            wait_for(
                api,
                RESNET50,
                &object,
                "rolled out",
                lab::cluster::wait::deployment_rolled_out,
                Duration::from_secs(15),
            )
            .await
        }
    });
    let watching = |kube: &FakeKube| {
        kube.requests().iter().any(|request| {
            request.path() == "/apis/apps/v1/namespaces/tf-serving/deployments" && request.uri.contains("watch=true")
        })
    };
    within(async {
        while !watching(&kube) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // The watch cache moves on and the watch ends: the client's next watch, from its old version, is gone.
    kube.clear_requests();
    kube.compact_and_close_watches();
    within(async {
        while kube.gone_served() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    kube.make_available(NAMESPACE, RESNET50);
    within(waiting)
        .await
        .unwrap()
        .expect("the wait survives a 410 by listing again");
    let requests = kube.requests();
    let gone_watch = requests
        .iter()
        .position(|request| request.uri.contains("watch=true"))
        .expect("a watch after the compaction");
    let relisted = requests[gone_watch..].iter().any(|request| {
        request.path() == "/apis/apps/v1/namespaces/tf-serving/deployments" && !request.uri.contains("watch=")
    });
    assert!(relisted, "a LIST after the 410: {requests:#?}");
}

#[tokio::test]
async fn istioctl_install_makes_the_gateway_as_istio_does() {
    let (_kube, cluster) = cluster_with_istio(false).await;
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), "istio-system");
    let service = services.get("istio-ingressgateway").await.unwrap();
    let ports: Vec<(String, i32)> = service
        .spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .map(|port| (port.name.unwrap_or_default(), port.port))
        .collect();
    assert_eq!(
        ports,
        [
            ("status-port".to_string(), 15021),
            ("http2".to_string(), 80),
            ("https".to_string(), 443)
        ]
    );
    within(wait_deployment_rolled_out(
        &cluster,
        "istio-system",
        "istio-ingressgateway",
        Duration::from_secs(10),
    ))
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "istio-system");
    let listed = pods
        .list(&kube::api::ListParams::default().labels("app=istio-ingressgateway,istio=ingressgateway"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let containers: Vec<String> = listed.items[0]
        .spec
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .map(|container| container.name.clone())
        .collect();
    assert_eq!(containers, ["istio-proxy"]);
}

/// `lab up --stage STAGE` with its assertions, through real Envoy routing as `stable` whatever the stage says.
async fn up_against_a_stable_gateway(lab: &Lab, gateway: &Envoy, stage: &str) -> canary_lab_tests::cli::CliOutput {
    let args = UpArgs::new(&lab.tools, &gateway.url()).stage(stage);
    // Each run sends a few hundred requests per asserted stage; the margin is for a loaded machine.
    tokio::time::timeout(Duration::from_secs(120), lab.cli(args.args()).run_async())
        .await
        .expect("lab up finished within 120s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_that_did_not_pass_is_not_recorded_so_the_same_up_asserts_it_again() {
    let lab = Lab::start("docker").await;
    // With the bytes signature `--payload auto` sends the small bytes payload.
    let models = canary_lab_tests::traffic::Models::start_with_bytes_signature().await;
    let gateway = Envoy::start(&StageRouting::of_stage("stable"), &models.stable_only()).await;
    let first = up_against_a_stable_gateway(&lab, &gateway, "split-70-30").await;
    assert_eq!(first.code, 1, "{}\n{}", first.stdout, first.stderr);
    assert_contains!(first.stdout, "stage split-70-30: fail");
    // The cluster no longer holds canary-deployed, and split-70-30 did not pass: no stage is recorded.
    assert_eq!(lab.state_file("active-stage"), None);
    assert_contains!(first.stderr, "stage canary-deployed done");

    // The same command again: the cluster holds split-70-30, which never passed, so nothing is resumed as done.
    let second = up_against_a_stable_gateway(&lab, &gateway, "split-70-30").await;
    assert_eq!(second.code, 1, "{}\n{}", second.stdout, second.stderr);
    assert_contains!(second.stdout, "stage split-70-30: fail");
    assert!(!second.stdout.contains("the lab is up"), "{}", second.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_applied_without_assertions_is_asserted_by_the_next_up_and_says_so() {
    let lab = Lab::start("docker").await;
    let report = lab.home.path().join("report.json");
    let skipped = lab.up(lab.up_args().stage("stable").report(&report)).await;
    assert_eq!(skipped.code, 0, "{}\n{}", skipped.stdout, skipped.stderr);
    assert_contains!(skipped.stdout, "its assertions did not run (--no-assert)");
    assert_eq!(
        lab.state_file("active-stage-verdict").as_deref(),
        Some("stable not_asserted")
    );
    let written: lab::report::RunReport = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(
        written.verdict,
        lab::report::Verdict::NotAsserted,
        "nothing asserted is not a pass"
    );

    // With assertions, the resumed stage is asserted (not applied again), not claimed.
    // With the bytes signature `--payload auto` sends the small bytes payload.
    let models = canary_lab_tests::traffic::Models::start_with_bytes_signature().await;
    let gateway = Envoy::start(&StageRouting::of_stage("stable"), &models.stable_only()).await;
    let asserted = up_against_a_stable_gateway(&lab, &gateway, "stable").await;
    assert_eq!(asserted.code, 0, "{}\n{}", asserted.stdout, asserted.stderr);
    assert_contains!(asserted.stdout, "stage stable: pass");
    assert_contains!(asserted.stderr, "applied before; assertions: pass");
    assert_eq!(lab.state_file("active-stage-verdict").as_deref(), Some("stable pass"));

    // Once it passed, a later run resumes it as asserted before.
    let resumed = up_against_a_stable_gateway(&lab, &gateway, "stable").await;
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    assert_contains!(resumed.stderr, "applied and asserted before (pass)");
    assert_contains!(resumed.stdout, "the lab is up at stage \"stable\"");
}
