//! The cluster layer against the fake API server, through the real kube-rs client: server-side apply requests,
//! zero writes when nothing changed, stages and pruning, refused objects, waits driven by watch events, and the
//! diagnosis of a Deployment that never becomes ready.

use std::time::Duration;

use canary_lab_tests::assert_contains;
use canary_lab_tests::fake_kube::{FakeKube, RecordedRequest, Scenario};
use lab::Settings;
use lab::cluster::Cluster;
use lab::cluster::apply::{ApplyRejected, Change, apply_all};
use lab::cluster::discovery::UnknownKind;
use lab::cluster::wait::WaitTimedOut;
use lab::definition::manifests::{Manifest, parse_documents};
use lab::definition::plan::StagePlan;
use lab::definition::stages::LabDefinition;
use lab::lifecycle::apply::{apply_stage, cluster_matches_stage, wait_for_rollout};

/// A fake API and a connected cluster, plus settings whose state dir is a temp dir.
struct Env {
    kube: FakeKube,
    cluster: Cluster,
    settings: Settings,
    lab: LabDefinition,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    let kube = FakeKube::start("v1.24.3", "amd64").await;
    // The cluster `lab up` applies to: Istio (and its CRDs) installed.
    kube.install_istio("1.12.7");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig_path = dir.path().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig_path, "lab");
    let kubeconfig = kube::config::Kubeconfig::read_from(&kubeconfig_path).unwrap();
    let options = kube::config::KubeConfigOptions {
        context: Some("lab".into()),
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let cluster = Cluster::from_client(client, "lab").await.unwrap();
    let mut settings = Settings::with_defaults("lab").unwrap();
    settings.state_dir = dir.path().join("state");
    let lab = LabDefinition::load_default().unwrap();
    kube.clear_requests();
    Env {
        kube,
        cluster,
        settings,
        lab,
        _dir: dir,
    }
}

impl Env {
    /// The manifests of stage `stable`.
    fn stable(&self) -> Vec<Manifest> {
        self.lab.stage_manifests(self.lab.stage("stable").unwrap()).unwrap()
    }

    /// Applies stage `stable` with ResNet50 behaving as `scenario`, and returns how the rollout wait (2s) fails.
    async fn failed_rollout(&self, scenario: Scenario) -> anyhow::Error {
        self.kube.scenario("image-classifier-resnet50", scenario);
        let stable = self.stable();
        within_seconds(apply_all(&self.cluster, &stable)).await.unwrap();
        within_seconds(wait_for_rollout(&self.cluster, &stable, Duration::from_secs(2)))
            .await
            .unwrap_err()
    }

    /// [`Env::failed_rollout`]'s error as the user reads it.
    async fn rollout_error(&self, scenario: Scenario) -> String {
        self.failed_rollout(scenario).await.to_string()
    }
}

/// Runs `future` but fails the test after a few seconds: a call that never comes must not hang the suite.
async fn within_seconds<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("the operation did not finish within 20s")
}

fn lines(changes: &[lab::cluster::apply::ObjectChange]) -> Vec<String> {
    changes.iter().map(|change| change.line()).collect()
}

fn writes(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .filter(|request| request.is_write())
        .map(|request| format!("{} {}", request.method, request.path()))
        .collect()
}

#[tokio::test]
async fn apply_is_server_side_apply_with_the_canary_lab_field_manager_then_writes_nothing() {
    let env = env().await;
    let stable = env.stable();
    let changes = within_seconds(apply_all(&env.cluster, &stable)).await.unwrap();
    assert!(
        changes.iter().all(|change| change.change == Change::Created),
        "{changes:?}"
    );
    let requests = env.kube.requests();
    assert_eq!(
        writes(&requests),
        [
            "PATCH /api/v1/namespaces/tf-serving",
            "PATCH /api/v1/namespaces/tf-serving/configmaps/resnet50-configs",
            "PATCH /apis/apps/v1/namespaces/tf-serving/deployments/image-classifier-resnet50",
            "PATCH /api/v1/namespaces/tf-serving/services/image-classifier",
            "PATCH /apis/networking.istio.io/v1alpha3/namespaces/tf-serving/gateways/image-classifier-gateway",
            "PATCH /apis/networking.istio.io/v1alpha3/namespaces/tf-serving/virtualservices/image-classifier",
        ]
    );
    for request in requests.iter().filter(|request| request.is_write()) {
        assert!(request.uri.contains("fieldManager=canary-lab"), "{request:?}");
        assert!(request.uri.contains("force=true"), "{request:?}");
        assert_eq!(request.content_type.as_deref(), Some("application/apply-patch+yaml"));
    }
    let stored = env
        .kube
        .object("virtualservices", "tf-serving", "image-classifier")
        .unwrap();
    assert_eq!(
        stored["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "canary-lab"
    );

    env.kube.clear_requests();
    let again = within_seconds(apply_all(&env.cluster, &stable)).await.unwrap();
    assert!(
        again.iter().all(|change| change.change == Change::Unchanged),
        "{again:?}"
    );
    let requests = env.kube.requests();
    assert_eq!(writes(&requests), Vec::<String>::new());
    assert!(requests.iter().any(|request| request.uri.contains("dryRun=All")));
}

#[tokio::test]
async fn stages_apply_what_they_name_and_prune_the_rest_and_reset_says_what_changed() {
    let env = env().await;
    let stage = |name: &str| StagePlan::resolve(&env.lab, env.lab.stage(name).unwrap(), None).unwrap();
    let timeout = Duration::from_secs(10);
    within_seconds(apply_stage(&env.settings, &env.cluster, &stage("stable"), timeout))
        .await
        .unwrap();
    let focused = within_seconds(apply_stage(&env.settings, &env.cluster, &stage("focused"), timeout))
        .await
        .unwrap();
    assert_eq!(
        lines(&focused.changes),
        [
            "namespace/tf-serving unchanged",
            "configmap/resnet50-configs unchanged",
            "deployment/image-classifier-resnet50 unchanged",
            "configmap/resnet101-configs created",
            "deployment/image-classifier-resnet101 created",
            "service/image-classifier unchanged",
            "gateway/image-classifier-gateway unchanged",
            "destinationrule/image-classifier created",
            "virtualservice/image-classifier configured",
        ]
    );
    assert_eq!(
        lab::lifecycle::state::read_active_stage(&env.settings).unwrap(),
        None,
        "applying records nothing: the caller records the stage once its assertions passed (or were skipped)"
    );

    env.kube.clear_requests();
    let reset = within_seconds(apply_stage(&env.settings, &env.cluster, &stage("stable"), timeout))
        .await
        .unwrap();
    let changed: Vec<String> = reset
        .changes
        .iter()
        .filter(|change| change.change != Change::Unchanged)
        .map(|change| change.line())
        .collect();
    assert_eq!(
        changed,
        [
            "virtualservice/image-classifier configured",
            "configmap/resnet101-configs deleted",
            "deployment/image-classifier-resnet101 deleted",
            "destinationrule/image-classifier deleted",
        ]
    );
    // Reset reuses the running pods: the namespace and ResNet50 are not written.
    let written = writes(&env.kube.requests());
    assert!(
        written.iter().all(|write| !write.ends_with("/namespaces/tf-serving")),
        "{written:?}"
    );
    assert!(
        written.iter().all(|write| !write.contains("image-classifier-resnet50")),
        "{written:?}"
    );
    assert_eq!(
        env.kube.names("deployments", "tf-serving"),
        ["image-classifier-resnet50"]
    );
    assert!(!reset.unchanged());

    let again = within_seconds(apply_stage(&env.settings, &env.cluster, &stage("stable"), timeout))
        .await
        .unwrap();
    assert!(again.unchanged(), "{:?}", lines(&again.changes));
    assert!(
        within_seconds(cluster_matches_stage(&env.cluster, &stage("stable")))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn an_unknown_kind_names_file_document_and_kind() {
    let env = env().await;
    let manifests = parse_documents(
        "extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: tf-serving\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
    )
    .unwrap();
    let error = within_seconds(apply_all(&env.cluster, &manifests[1..]))
        .await
        .unwrap_err();
    let unknown = error.downcast_ref::<UnknownKind>().expect("UnknownKind");
    assert_eq!(
        (unknown.file.as_str(), unknown.document, unknown.kind.as_str()),
        ("extra.yaml", 2, "Widget")
    );
    assert!(
        error
            .to_string()
            .starts_with("extra.yaml, document 2: the cluster does not serve kind \"Widget\"")
    );
}

#[tokio::test]
async fn a_refused_object_is_a_clear_error() {
    let env = env().await;
    let stable = env.stable();
    env.kube.fail_once(
        "PATCH",
        "/virtualservices/",
        422,
        "Invalid",
        "VirtualService.networking.istio.io \"image-classifier\" is invalid: spec.http[0].route[0].weight: Invalid value",
    );
    let error = within_seconds(apply_all(&env.cluster, &stable)).await.unwrap_err();
    let rejected = error.downcast_ref::<ApplyRejected>().expect("ApplyRejected");
    assert_eq!((rejected.code, rejected.reason.as_str()), (422, "Invalid"));
    let message = error.to_string();
    assert!(
        message.starts_with("the API server refused VirtualService/image-classifier in namespace \"tf-serving\" from virtualservice-stable.yaml, document 1: 422 Invalid:"),
        "{message}"
    );
    assert_contains!(message, "help: the manifest is invalid");

    env.kube.fail_once(
        "PATCH",
        "/services/",
        409,
        "Conflict",
        "Operation cannot be fulfilled: the object has been modified",
    );
    let error = within_seconds(apply_all(&env.cluster, &stable)).await.unwrap_err();
    let rejected = error.downcast_ref::<ApplyRejected>().expect("ApplyRejected");
    assert_eq!(rejected.code, 409);
    assert!(
        error.to_string().contains("help: another client changed the object"),
        "{error}"
    );
}

#[tokio::test]
async fn readiness_comes_from_watch_events() {
    let env = env().await;
    env.kube
        .scenario("image-classifier-resnet50", Scenario::AvailableOnWatch);
    let stable = env.stable();
    within_seconds(apply_all(&env.cluster, &stable)).await.unwrap();
    let stored = env
        .kube
        .object("deployments", "tf-serving", "image-classifier-resnet50")
        .unwrap();
    assert_eq!(
        stored["status"]["availableReplicas"],
        serde_json::Value::Null,
        "not ready before the watch"
    );
    within_seconds(wait_for_rollout(&env.cluster, &stable, Duration::from_secs(10)))
        .await
        .unwrap();
    let watched = env.kube.requests().into_iter().any(|request| {
        request.path() == "/apis/apps/v1/namespaces/tf-serving/deployments" && request.uri.contains("watch=true")
    });
    assert!(watched, "the wait watched the Deployment");
}

#[tokio::test]
async fn a_deployment_that_never_becomes_ready_times_out_with_a_diagnosis() {
    let env = env().await;
    let error = env.failed_rollout(Scenario::ImagePullBackOff).await;
    let timed_out = error.downcast_ref::<WaitTimedOut>().expect("WaitTimedOut");
    assert_eq!(
        timed_out.object,
        "Deployment/image-classifier-resnet50 in namespace \"tf-serving\""
    );
    assert_eq!(timed_out.condition, "rolled out");
    let message = error.to_string();
    assert_contains!(message, "was not rolled out after 2s");
    assert_contains!(message, "container tf-serving: waiting (ImagePullBackOff)");
    assert_contains!(
        message,
        "event Failed: Failed to pull image \"tensorflow/serving:2.5.1\""
    );
    assert_contains!(message, "help: the node cannot pull the image");
}

#[tokio::test]
async fn a_crash_looping_tf_serving_shows_its_log_and_the_model_layout_hint() {
    let env = env().await;
    let error = env.rollout_error(Scenario::CrashLoop).await;
    assert_contains!(error, "last log lines of tf-serving:");
    assert_contains!(error, "Could not find base path /models/resnet50");
    assert_contains!(error, "help: TF Serving cannot find the model");
}

#[tokio::test]
async fn pods_without_the_sidecar_get_their_deployment_restarted() {
    let env = env().await;
    // The namespace existed without the injection label when the pods were made.
    env.kube.put(
        "namespaces",
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tf-serving"}}),
    );
    let stable = env.stable();
    let deployment = stable.iter().find(|m| m.kind() == "Deployment").unwrap();
    env.kube.put("deployments", deployment.object.clone());
    let report = within_seconds(apply_stage(
        &env.settings,
        &env.cluster,
        &StagePlan::resolve(&env.lab, env.lab.stage("stable").unwrap(), None).unwrap(),
        Duration::from_secs(10),
    ))
    .await
    .unwrap();
    assert_eq!(report.restarted, ["image-classifier-resnet50"]);
    let restart = env
        .kube
        .requests()
        .into_iter()
        .find(|request| request.method == "PATCH" && request.uri.contains("fieldManager=canary-lab-restart"));
    assert!(
        restart.is_some(),
        "restarted with a server-side apply of the restartedAt annotation"
    );
    let stored = env
        .kube
        .object("deployments", "tf-serving", "image-classifier-resnet50")
        .unwrap();
    assert!(stored["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string());
}

#[tokio::test]
async fn a_broken_watch_is_opened_again_within_the_deadline() {
    let env = env().await;
    let stable = env.stable();
    within_seconds(apply_all(&env.cluster, &stable)).await.unwrap();
    env.kube.fail_once(
        "GET",
        "/apis/apps/v1/namespaces/tf-serving/deployments",
        500,
        "InternalError",
        "etcdserver: request timed out",
    );
    env.kube.clear_requests();
    within_seconds(wait_for_rollout(&env.cluster, &stable, Duration::from_secs(10)))
        .await
        .unwrap();
    let lists = env
        .kube
        .requests()
        .into_iter()
        .filter(|request| request.path() == "/apis/apps/v1/namespaces/tf-serving/deployments")
        .count();
    assert!(lists >= 2, "the failed list was retried ({lists} requests)");
}

#[tokio::test]
async fn a_pod_pending_for_memory_gets_the_resources_hint() {
    let env = env().await;
    let error = env.rollout_error(Scenario::Unschedulable).await;
    assert_contains!(error, ": Pending, not ready");
    assert_contains!(
        error,
        "event FailedScheduling: 0/1 nodes are available: 1 Insufficient memory."
    );
    assert_contains!(error, "help: the node lacks CPU or memory");
}

#[tokio::test]
async fn an_amd64_image_on_arm64_gets_the_architecture_hint() {
    let env = env().await;
    let error = env.rollout_error(Scenario::WrongArchitecture).await;
    assert_contains!(error, "exec /usr/bin/tf_serving_entrypoint.sh: exec format error");
    assert_contains!(error, "help: the image is not built for this node's architecture");
}
