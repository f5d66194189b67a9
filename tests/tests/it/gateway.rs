//! The wait for the ingress gateway to serve a stage, against real Envoy configured as istiod would and reached as
//! a gateway pod through the fake Kubernetes API's port-forwards (8080 the listener, 15000 the admin API): it passes
//! only once the gateway holds the stage's routes and an endpoint for each cluster, names what differs on a timeout,
//! and falls back when the admin port cannot be read. `assert_stage` waits for it before any traffic.

use std::sync::Mutex;
use std::time::Duration;

use canary_lab_tests::assert_contains;
use canary_lab_tests::envoy::{Envoy, StageRouting};
use canary_lab_tests::fake_kube::FakeKube;
use lab::definition::plan::StagePlan;
use lab::definition::stages::LabDefinition;
use lab::istio::gateway_config::{GatewayNotServing, Served, wait_for_stage};
use lab::report::Verdict;

use canary_lab_tests::traffic::{Models, assert_verdict, show};

/// A fake API with Istio installed (so a Running, ready `istio-ingressgateway` pod exists).
async fn kube_with_istio() -> FakeKube {
    let kube = FakeKube::start("v1.24.3", "amd64").await;
    kube.install_istio("1.12.7");
    kube
}

fn plan(stage: &str) -> StagePlan {
    let lab = LabDefinition::load_default().unwrap();
    StagePlan::resolve(&lab, lab.stage(stage).unwrap(), None).unwrap()
}

/// Port-forwards the lab opened to the gateway pods' admin port so far.
fn admin_forwards(kube: &FakeKube) -> usize {
    kube.gateway_port_forwards(Some(lab::istio::gateway_config::ADMIN_PORT))
}

/// Returns once `notes` holds a note containing `text`; fails the test after 30 s.
async fn until_noted(notes: &Mutex<Vec<String>>, text: &str) {
    let noted = async {
        while !notes.lock().unwrap().iter().any(|note| note.contains(text)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), noted)
        .await
        .unwrap_or_else(|_| panic!("no note containing {text:?} within 30s: {:#?}", notes.lock().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_ends_only_once_the_gateway_serves_the_stage_and_names_what_differs() {
    let kube = kube_with_istio().await;
    let models = Models::start().await;
    // The gateway still holds the previous stage: everything to resnet50.
    let envoy = Envoy::start(&StageRouting::of_stage("canary-deployed"), &models.both()).await;
    envoy.behind_gateway_pods_of(&kube);
    let cluster = kube.connect().await;
    let split = plan("split-70-30");

    let error = wait_for_stage(&cluster, &split, Duration::from_secs(2), &|_| {})
        .await
        .unwrap_err();
    let not_serving = error.downcast_ref::<GatewayNotServing>().expect("a GatewayNotServing");
    assert_eq!(
        not_serving.differences,
        ["route 1: the gateway routes 100/0 to resnet50/resnet101, the stage wants 70/30"]
    );
    let message = error.to_string();
    assert_contains!(message, "the ingress gateway (pod \"istio-ingressgateway-");
    assert_contains!(message, "did not serve stage \"split-70-30\" within 2s");
    assert_contains!(message, "help: check that istiod runs");

    // istiod pushes the new routes, the new pod's endpoint only later (EDS lags readiness); the wait sees each
    // state in turn and ends once the endpoint is there.
    let notes = Mutex::new(Vec::new());
    let progress = |note: &str| notes.lock().unwrap().push(note.to_string());
    let wait = wait_for_stage(&cluster, &split, Duration::from_secs(60), &progress);
    let push = async {
        until_noted(
            &notes,
            "the gateway routes 100/0 to resnet50/resnet101, the stage wants 70/30",
        )
        .await;
        envoy
            .serve(&StageRouting::of_stage("split-70-30"), &models.stable_only())
            .await;
        until_noted(
            &notes,
            "resnet101|image-classifier.tf-serving.svc.cluster.local has no healthy endpoint",
        )
        .await;
        envoy
            .serve(&StageRouting::of_stage("split-70-30"), &models.both())
            .await;
    };
    let (served, ()) = tokio::join!(wait, push);
    match served.unwrap() {
        Served::Served { pod, .. } => assert!(pod.starts_with("istio-ingressgateway-"), "{pod}"),
        other => panic!("the gateway's config was not read: {other:?}"),
    }
    let notes = notes.into_inner().unwrap();
    assert!(
        notes[0].starts_with("waiting for the ingress gateway (pod \"istio-ingressgateway-"),
        "{notes:#?}"
    );
    assert!(
        notes
            .last()
            .unwrap()
            .starts_with("the ingress gateway serves stage \"split-70-30\""),
        "{notes:#?}"
    );

    // The same pod's 8080 still leads to the gateway's listener, not to its admin API.
    let forward = lab::lifecycle::ingress::port_forward(&cluster).await.unwrap();
    let metadata = canary_lab_tests::http_client()
        .get(format!("{}/v1/models/image_classifier/metadata", forward.url))
        .send()
        .await
        .unwrap();
    assert!(metadata.headers().contains_key("x-model-version"), "{metadata:?}");
}

/// The wait for stage `stable`, at most 5 s.
async fn read_stable(cluster: &lab::cluster::Cluster) -> Served {
    wait_for_stage(cluster, &plan("stable"), Duration::from_secs(5), &|_| {})
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_admin_port_falls_back_to_the_traffic_settle() {
    // No gateway pod at all.
    let kube = FakeKube::start("v1.24.3", "amd64").await;
    let cluster = kube.connect().await;
    let served = read_stable(&cluster).await;
    let Served::Unreachable { reason } = served else {
        panic!("{served:?}")
    };
    assert_contains!(reason, "no Running, ready pod matches \"istio=ingressgateway\"");

    // A gateway pod whose port-forward the API server refuses.
    kube.install_istio("1.12.7");
    let served = read_stable(&cluster).await;
    assert!(matches!(served, Served::Unreachable { .. }), "{served:?}");
}

/// Bug 10: right after a rollout, istiod has pushed the new routes but not yet the new pod's endpoint, and the
/// gateway answers `503 no healthy upstream` for it. The assertions must start only once the endpoint is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_is_asserted_only_once_the_gateway_has_the_new_pods_endpoint() {
    let kube = kube_with_istio().await;
    let models = Models::start_with_bytes_signature().await;
    let cluster = kube.connect().await;
    let lab = LabDefinition::load_default().unwrap();
    let stage = StagePlan::resolve(&lab, lab.stage("split-70-30").unwrap(), None).unwrap();
    lab::lifecycle::apply::apply_and_prune(&cluster, &stage.manifests)
        .await
        .unwrap();
    // The routes are pushed; ResNet101's endpoint is not (yet).
    let envoy = Envoy::start(&StageRouting::of_stage("split-70-30"), &models.stable_only()).await;
    envoy.behind_gateway_pods_of(&kube);

    let url = envoy.url();
    let asserted = lab::lifecycle::assert::assert_stage(
        &cluster,
        &stage,
        &url,
        lab::istio::gateway_config::DEFAULT_SERVE_TIMEOUT,
        lab::traffic::checks::ProbeChoice::Auto,
        &|_| {},
        None,
    );
    tokio::pin!(asserted);
    // The endpoint arrives once the lab has read the gateway more than once (so it saw the endpoint missing), and
    // never if it does not read it: then the assertions meet the gateway's 503s.
    let endpoint_arrives = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while admin_forwards(&kube) < 3 {
            if tokio::time::Instant::now() >= deadline {
                return std::future::pending().await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        envoy
            .serve(&StageRouting::of_stage("split-70-30"), &models.both())
            .await;
    };
    let report = tokio::select! {
        report = &mut asserted => report,
        () = endpoint_arrives => asserted.await,
    };
    let report = report.expect("the stage is asserted");
    assert_verdict(&report, Verdict::Pass);
    assert!(report.assertions[0].errors.is_empty(), "{}", show(&report));
    assert!(admin_forwards(&kube) >= 3, "the lab read the gateway's config");
    assert!(models.resnet101.predictions() > 0);
}
