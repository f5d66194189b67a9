//! What a real Kubernetes 1.24 API server with Istio 1.12 does that the lab depends on, through the fake API and the
//! real kube-rs client: discovery before and after Istio's CRDs are Established, LIST items without their type,
//! server-side apply (conflicts, force, managed fields, defaults on dry runs, an immutable Job template), and the
//! lab's behaviour on top: `lab up` on a fresh cluster, a change made behind the lab's back, honest step outcomes.

use std::time::Duration;

use canary_lab_tests::assert_contains;
use canary_lab_tests::asset_server::{AssetServer, sha256_hex};
use canary_lab_tests::cli::{Cli, CliOutput};
use canary_lab_tests::fake_kube::FakeKube;
use canary_lab_tests::fake_tools::{FakeTools, MinikubeCluster};
use canary_lab_tests::istio_tarball::Tarball;
use canary_lab_tests::tf_serving::TfServing;
use canary_lab_tests::up_args::UpArgs;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use lab::cluster::apply::{ApplyRejected, Change, apply_all, plan_one};
use lab::definition::manifests::Manifest;
use lab::definition::stages::LabDefinition;
use serde_json::{Value, json};

/// Runs `future`, failing the test after 20 seconds.
async fn within_seconds<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("the operation did not finish within 20s")
}

fn client(kube: &FakeKube) -> kube::Client {
    kube::Client::try_from(kube::Config::new(kube.url().parse().unwrap())).unwrap()
}

/// `GET path` from the fake API, as JSON (the raw answer, before any client interprets it).
async fn get_json(kube: &FakeKube, path: &str) -> Value {
    let answer = canary_lab_tests::http_client()
        .get(format!("{}{path}", kube.url()))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "GET {path}: {}", answer.status());
    answer.json().await.unwrap()
}

/// The `(name, versions, preferred)` of each group `GET /apis` lists, in order.
async fn groups(kube: &FakeKube) -> Vec<(String, Vec<String>, String)> {
    let list = get_json(kube, "/apis").await;
    list["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| {
            let versions = group["versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|version| version["version"].as_str().unwrap().to_string())
                .collect();
            let preferred = group["preferredVersion"]["version"].as_str().unwrap().to_string();
            (group["name"].as_str().unwrap().to_string(), versions, preferred)
        })
        .collect()
}

fn group<'a>(groups: &'a [(String, Vec<String>, String)], name: &str) -> Option<&'a (String, Vec<String>, String)> {
    groups.iter().find(|(group, _, _)| group == name)
}

/// The fake `istioctl install`: what the scripted tool does.
async fn istioctl_install(kube: &FakeKube) {
    let answer = canary_lab_tests::http_client()
        .get(format!("{}/fake/install-istio", kube.url()))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
}

#[tokio::test]
async fn discovery_lists_the_1_24_groups_and_istio_only_once_its_crds_are_established() {
    let kube = FakeKube::start("v1.24.3", "amd64").await;
    kube.install_istio_when_asked("1.12.7");
    kube.crds_established_after(Duration::from_secs(600));
    let before = groups(&kube).await;
    let names: Vec<&str> = before.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(
        names[..4],
        [
            "apiregistration.k8s.io",
            "apps",
            "events.k8s.io",
            "authentication.k8s.io"
        ]
    );
    assert_eq!(
        group(&before, "policy").unwrap().1,
        ["v1", "v1beta1"],
        "policy/v1beta1 is still served by 1.24"
    );
    let autoscaling = group(&before, "autoscaling").unwrap();
    assert_eq!(autoscaling.1, ["v2", "v1", "v2beta1", "v2beta2"]);
    assert_eq!(autoscaling.2, "v2");
    assert!(group(&before, "networking.istio.io").is_none());

    // Right after `istioctl install`, the CRDs exist but are not Established: discovery does not list them yet.
    istioctl_install(&kube).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client(&kube));
    let gateway = crds.get("gateways.networking.istio.io").await.unwrap();
    assert!(gateway.status.unwrap().conditions.unwrap_or_default().is_empty());
    assert!(group(&groups(&kube).await, "networking.istio.io").is_none());
    let cluster = kube.connect().await;
    assert!(
        cluster
            .resource_for("networking.istio.io/v1alpha3", "Gateway")
            .is_none()
    );
}

#[tokio::test]
async fn istio_groups_appear_with_both_versions_once_established_and_a_refreshed_discovery_resolves_them() {
    let kube = FakeKube::start("v1.24.3", "amd64").await;
    kube.install_istio_when_asked("1.12.7");
    let mut cluster = kube.connect().await;
    istioctl_install(&kube).await;
    let crds = ["gateways.networking.istio.io", "virtualservices.networking.istio.io"];
    within_seconds(cluster.wait_crds_established(&crds, Duration::from_secs(10)))
        .await
        .unwrap();
    let api: Api<CustomResourceDefinition> = Api::all(client(&kube));
    let conditions = api.get(crds[0]).await.unwrap().status.unwrap().conditions.unwrap();
    let kinds: Vec<(&str, &str)> = conditions
        .iter()
        .map(|condition| (condition.type_.as_str(), condition.status.as_str()))
        .collect();
    assert_eq!(kinds, [("NamesAccepted", "True"), ("Established", "True")]);

    let after = groups(&kube).await;
    // v1alpha3 is the storage version, but discovery sorts kube-aware: v1beta1 first, and preferred.
    let networking = group(&after, "networking.istio.io").unwrap();
    assert_eq!(
        (networking.1.as_slice(), networking.2.as_str()),
        (&["v1beta1".to_string(), "v1alpha3".to_string()][..], "v1beta1")
    );
    let names: Vec<&str> = after.iter().map(|(name, _, _)| name.as_str()).collect();
    let istio: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| name.ends_with("istio.io"))
        .collect();
    assert_eq!(
        istio,
        [
            "extensions.istio.io",
            "networking.istio.io",
            "security.istio.io",
            "telemetry.istio.io"
        ]
    );
    assert_eq!(
        names.last(),
        Some(&"telemetry.istio.io"),
        "CRD groups come after the built-in ones"
    );

    assert!(
        cluster
            .resource_for("networking.istio.io/v1alpha3", "Gateway")
            .is_none()
    );
    cluster.refresh_discovery().await.unwrap();
    assert!(
        cluster
            .resource_for("networking.istio.io/v1alpha3", "Gateway")
            .is_some()
    );
}

/// The lab's cluster: Istio installed long ago, connected.
async fn istio_cluster() -> (FakeKube, lab::cluster::Cluster, LabDefinition) {
    let kube = FakeKube::start("v1.24.3", "amd64").await;
    kube.install_istio("1.12.7");
    let cluster = kube.connect().await;
    (kube, cluster, LabDefinition::load_default().unwrap())
}

fn stage(lab: &LabDefinition, name: &str) -> Vec<Manifest> {
    lab.stage_manifests(lab.stage(name).unwrap()).unwrap()
}

fn manifest<'a>(manifests: &'a [Manifest], kind: &str) -> &'a Manifest {
    manifests.iter().find(|manifest| manifest.kind() == kind).unwrap()
}

#[tokio::test]
async fn list_items_of_built_in_kinds_carry_no_type_and_custom_resources_do() {
    let (kube, cluster, lab) = istio_cluster().await;
    within_seconds(apply_all(&cluster, &stage(&lab, "stable")))
        .await
        .unwrap();
    let config_maps = get_json(&kube, "/api/v1/namespaces/tf-serving/configmaps").await;
    assert_eq!(
        (config_maps["kind"].as_str(), config_maps["apiVersion"].as_str()),
        (Some("ConfigMapList"), Some("v1"))
    );
    let item = &config_maps["items"][0];
    assert!(item.get("kind").is_none() && item.get("apiVersion").is_none(), "{item}");
    let single = get_json(&kube, "/api/v1/namespaces/tf-serving/configmaps/resnet50-configs").await;
    assert_eq!(single["kind"], "ConfigMap", "a GET carries the type");

    let services = get_json(
        &kube,
        "/apis/networking.istio.io/v1alpha3/namespaces/tf-serving/virtualservices",
    )
    .await;
    assert_eq!(services["items"][0]["kind"], "VirtualService");
    assert_eq!(services["items"][0]["apiVersion"], "networking.istio.io/v1alpha3");
    // What the lab's listing gets: kube-rs leaves `types` empty for such items.
    let api: Api<DynamicObject> = Api::namespaced_with(client(&kube), "tf-serving", &config_map_resource());
    let listed = api.list(&ListParams::default()).await.unwrap();
    assert!(!listed.items.is_empty() && listed.items.iter().all(|object| object.types.is_none()));
}

fn config_map_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&kube::core::GroupVersionKind::gvk("", "v1", "ConfigMap"), "configmaps")
}

/// Server-side applies `object` as `manager`, returning the API's answer.
async fn apply_as(kube: &FakeKube, manager: &str, force: bool, object: Value) -> Result<DynamicObject, kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client(kube), "tf-serving", &config_map_resource());
    let mut params = PatchParams::apply(manager);
    params.force = force;
    let name = object["metadata"]["name"].as_str().unwrap().to_string();
    api.patch(&name, &params, &Patch::Apply(&object)).await
}

fn config_map(value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared", "namespace": "tf-serving"},
           "data": {"k": value, "other": "x"}})
}

#[tokio::test]
async fn apply_keeps_managed_fields_per_manager_and_a_conflict_is_409_unless_forced() {
    let kube = FakeKube::start("v1.24.3", "amd64").await;
    apply_as(&kube, "kubectl", false, config_map("a")).await.unwrap();
    let mut ours = config_map("b");
    ours["data"].as_object_mut().unwrap().remove("other");

    let Err(kube::Error::Api(status)) = apply_as(&kube, "canary-lab", false, ours.clone()).await else {
        panic!("a field owned by another manager, applied with another value, conflicts");
    };
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Apply failed with 1 conflict: conflict with \"kubectl\": .data.k"
    );
    assert_eq!(
        kube.object("configmaps", "tf-serving", "shared").unwrap()["data"]["k"],
        "a"
    );

    // The same value is shared ownership, not a conflict.
    let mut same = ours.clone();
    same["data"]["k"] = json!("a");
    apply_as(&kube, "agreeing", false, same).await.unwrap();

    let forced = apply_as(&kube, "canary-lab", true, ours).await.unwrap();
    assert_eq!(forced.data["data"]["k"], "b");
    let managed = forced.metadata.managed_fields.unwrap();
    let entry = |name: &str| managed.iter().find(|entry| entry.manager.as_deref() == Some(name));
    let canary = entry("canary-lab").expect("canary-lab's entry");
    assert_eq!(canary.operation.as_deref(), Some("Apply"));
    assert_eq!(canary.api_version.as_deref(), Some("v1"));
    assert_eq!(canary.fields_type.as_deref(), Some("FieldsV1"));
    assert!(canary.time.is_some());
    let fields = |name: &str| serde_json::to_value(&entry(name).unwrap().fields_v1).unwrap();
    assert_eq!(fields("canary-lab")["f:data"], json!({"f:k": {}}));
    assert_eq!(
        fields("kubectl")["f:data"],
        json!({"f:other": {}}),
        "forcing took .data.k from kubectl"
    );
    assert!(
        entry("agreeing").is_none(),
        "a forced apply takes the field from every other owner"
    );
}

#[tokio::test]
async fn dry_run_applies_return_the_servers_defaults_and_store_nothing() {
    let (kube, cluster, lab) = istio_cluster().await;
    let stable = stage(&lab, "stable");
    let namespace = manifest(&stable, "Namespace");
    apply_all(&cluster, std::slice::from_ref(namespace)).await.unwrap();
    let stored = kube.object("namespaces", "", "tf-serving").unwrap();
    assert_eq!(
        stored["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "tf-serving"
    );
    assert_eq!(stored["spec"]["finalizers"], json!(["kubernetes"]));

    let dry_run = |manifest: &Manifest| {
        let api = cluster.resolve(manifest).unwrap();
        let object = lab::cluster::apply::with_managed_by_label(&manifest.object);
        let name = manifest.name().to_string();
        async move {
            let params = PatchParams::apply("canary-lab").force().dry_run();
            serde_json::to_value(api.patch(&name, &params, &Patch::Apply(&object)).await.unwrap()).unwrap()
        }
    };
    let deployment = dry_run(manifest(&stable, "Deployment")).await;
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(
        (
            spec["revisionHistoryLimit"].clone(),
            spec["progressDeadlineSeconds"].clone()
        ),
        (json!(10), json!(600))
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["schedulerName"], "default-scheduler");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["securityContext"], json!({}));
    let container = &pod["containers"][0];
    assert_eq!(container["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(container["terminationMessagePolicy"], "File");
    assert_eq!(
        container["imagePullPolicy"], "IfNotPresent",
        "tensorflow/serving:2.5.1 has a tag"
    );
    assert_eq!(container["ports"][0]["protocol"], "TCP");

    let service = dry_run(manifest(&stable, "Service")).await;
    let spec = &service["spec"];
    assert!(
        spec["clusterIP"].as_str().is_some_and(|ip| ip.starts_with("10.96.")),
        "{spec}"
    );
    assert_eq!(spec["clusterIPs"], json!([spec["clusterIP"]]));
    assert_eq!(
        (spec["type"].as_str(), spec["sessionAffinity"].as_str()),
        (Some("ClusterIP"), Some("None"))
    );
    assert_eq!(
        (spec["ipFamilies"].clone(), spec["ipFamilyPolicy"].clone()),
        (json!(["IPv4"]), json!("SingleStack"))
    );
    for port in spec["ports"].as_array().unwrap() {
        assert_eq!(port["protocol"], "TCP");
        assert_eq!(port["targetPort"], port["port"], "{port}");
    }

    let export = lab::definition::manifests::load_files(&lab.manifests_dir, &["export-models.yaml".into()]).unwrap();
    let job = dry_run(manifest(&export, "Job")).await;
    let spec = &job["spec"];
    assert_eq!(spec["backoffLimit"], 2, "the manifest's value stays");
    assert_eq!(
        (spec["completions"].clone(), spec["parallelism"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(
        (spec["completionMode"].clone(), spec["suspend"].clone()),
        (json!("NonIndexed"), json!(false))
    );
    let uid = job["metadata"]["uid"].clone();
    assert_eq!(spec["selector"]["matchLabels"]["controller-uid"], uid);
    assert_eq!(spec["template"]["metadata"]["labels"]["controller-uid"], uid);
    assert_eq!(spec["template"]["metadata"]["labels"]["job-name"], "export-models");

    for (plural, name) in [
        ("deployments", "image-classifier-resnet50"),
        ("services", "image-classifier"),
        ("jobs", "export-models"),
    ] {
        assert!(
            kube.object(plural, "tf-serving", name).is_none(),
            "a dry run stored {plural}/{name}"
        );
    }
    assert!(
        kube.writes()
            .iter()
            .all(|request| request.path().ends_with("/namespaces/tf-serving"))
    );
}

#[tokio::test]
async fn a_jobs_pod_template_is_immutable() {
    let (_kube, cluster, lab) = istio_cluster().await;
    let stable = stage(&lab, "stable");
    apply_all(&cluster, std::slice::from_ref(manifest(&stable, "Namespace")))
        .await
        .unwrap();
    let export = lab::definition::manifests::load_files(&lab.manifests_dir, &["export-models.yaml".into()]).unwrap();
    let changes = apply_all(&cluster, &export).await.unwrap();
    assert!(changes.iter().all(|change| change.change == Change::Created));
    let again = apply_all(&cluster, &export).await.unwrap();
    assert!(
        again.iter().all(|change| change.change == Change::Unchanged),
        "{again:?}"
    );

    let mut changed = export.clone();
    let job = changed.iter_mut().find(|manifest| manifest.kind() == "Job").unwrap();
    job.object["spec"]["template"]["spec"]["containers"][0]["image"] = json!("tensorflow/tensorflow:2.7.0");
    let error = apply_all(&cluster, &changed).await.unwrap_err();
    let rejected = error.downcast_ref::<ApplyRejected>().expect("an ApplyRejected");
    assert_eq!((rejected.code, rejected.reason.as_str()), (422, "Invalid"));
    assert_contains!(
        rejected.message,
        "Job.batch \"export-models\" is invalid: spec.template"
    );
    assert_contains!(rejected.message, "field is immutable");
}

#[tokio::test]
async fn a_virtual_service_changed_behind_the_labs_back_is_configured_and_the_rest_unchanged() {
    let (kube, cluster, lab) = istio_cluster().await;
    let split = lab::definition::plan::StagePlan::resolve(&lab, lab.stage("split-70-30").unwrap(), None).unwrap();
    let manifests = stage(&lab, "split-70-30");
    within_seconds(lab::lifecycle::apply::apply_and_prune(&cluster, &manifests))
        .await
        .unwrap();
    assert!(
        lab::lifecycle::apply::cluster_matches_stage(&cluster, &split)
            .await
            .unwrap(),
        "listed objects (no apiVersion/kind) match their dry runs"
    );
    kube.clear_requests();
    let again = within_seconds(lab::lifecycle::apply::apply_and_prune(&cluster, &manifests))
        .await
        .unwrap();
    assert!(
        again.iter().all(|change| change.change == Change::Unchanged),
        "{again:?}"
    );
    assert!(kube.writes().is_empty(), "{:#?}", kube.writes());

    // Someone edits the weights with kubectl (another field manager, forced).
    let virtual_service = manifest(&manifests, "VirtualService");
    let mut edited = virtual_service.object.clone();
    edited["spec"]["http"][0]["route"][0]["weight"] = json!(50);
    edited["spec"]["http"][0]["route"][1]["weight"] = json!(50);
    let api = cluster.resolve(virtual_service).unwrap();
    api.patch(
        virtual_service.name(),
        &PatchParams::apply("kubectl").force(),
        &Patch::Apply(&edited),
    )
    .await
    .unwrap();
    assert!(
        !lab::lifecycle::apply::cluster_matches_stage(&cluster, &split)
            .await
            .unwrap()
    );
    let planned = plan_one(&cluster, virtual_service).await.unwrap();
    assert_eq!(planned.change, Change::Configured);
    let applied = lab::lifecycle::apply::apply_and_prune(&cluster, &manifests)
        .await
        .unwrap();
    let configured: Vec<String> = applied
        .iter()
        .filter(|change| change.change != Change::Unchanged)
        .map(|change| change.line())
        .collect();
    assert_eq!(configured, ["virtualservice/image-classifier configured"]);
    let stored = kube
        .object("virtualservices", "tf-serving", "image-classifier")
        .unwrap();
    assert_eq!(
        stored["spec"]["http"][0]["route"][0]["weight"],
        virtual_service.object["spec"]["http"][0]["route"][0]["weight"]
    );
}

const PROFILE: &str = "lab";

/// `lab up --stage stable` on a cluster without Istio, through the CLI: the fake istioctl installs Istio, whose
/// CRDs are Established `establish_after` later.
async fn fresh_up(establish_after: Duration, json: bool) -> (CliOutput, FakeKube, tempfile::TempDir) {
    let kube = FakeKube::start("v1.24.3", "amd64").await;
    kube.install_istio_when_asked("1.12.7");
    kube.crds_established_after(establish_after);
    let tools = FakeTools::new();
    tools.script_minikube(&MinikubeCluster::healthy(PROFILE));
    tools.script_sudo(true);
    tools.script_istioctl("1.12.7", &kube.url());
    let gateway = TfServing::start("resnet50").await;
    let home = tempfile::tempdir().unwrap();
    kube.write_kubeconfig(&home.path().join("kubeconfig"), PROFILE);
    let state = home.path().join("state");
    let mut args = UpArgs::new(&tools, &gateway.url()).stage("stable").no_assert();
    if json {
        args = args.json();
    }
    let cli = Cli::for_lab(PROFILE, &state, &tools, &home.path().join("kubeconfig"), args.args());
    let output = tokio::time::timeout(Duration::from_secs(30), cli.run_async())
        .await
        .expect("the CLI did not finish within 30s");
    (output, kube, home)
}

#[tokio::test]
async fn a_first_up_on_a_cluster_without_istio_waits_for_its_crds_and_applies_the_gateway() {
    let (output, kube, _home) = fresh_up(Duration::from_millis(1500), false).await;
    assert_eq!(output.code, 0, "{}\n{}", output.stdout, output.stderr);
    assert_contains!(
        output.stderr,
        "… waiting for Istio's CRDs to be established (at most 10s)"
    );
    assert!(
        kube.object("gateways", "tf-serving", "image-classifier-gateway")
            .is_some()
    );
    let watched_crds = kube.requests().iter().any(|request| {
        request.path() == "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
            && request.uri.contains("watch=true")
    });
    assert!(watched_crds, "the wait is a watch");
}

#[tokio::test]
async fn the_doctor_and_the_smoke_prediction_say_checked_not_already_done() {
    let (output, _kube, _home) = fresh_up(Duration::from_millis(10), true).await;
    assert_eq!(output.code, 0, "{}", output.stderr);
    let report: Value = serde_json::from_str(&output.stdout).unwrap();
    let outcome = |step: &str| {
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|record| record["step"] == step)
            .unwrap()["outcome"]
            .clone()
    };
    assert_eq!(outcome("doctor"), "checked");
    assert_eq!(outcome("prediction"), "checked");
    assert_eq!(outcome("istio"), "done");
    assert_eq!(
        outcome("istioctl"),
        "already_done",
        "given with --istioctl: nothing to fetch"
    );
    assert_contains!(output.stderr, "  doctor checked (");
    assert_contains!(output.stderr, "  prediction checked (");
}

#[tokio::test]
async fn fetching_istioctl_says_whether_it_downloaded_unpacked_or_found_it_in_the_cache() {
    use lab::istio::{FetchOptions, FetchedFrom, Platform, ProgressBarMode, fetch_istioctl_with_origin};
    let server = AssetServer::start().await;
    let tarball = Tarball::istioctl_release("1.12.7").build();
    server.add("istioctl-1.12.7-linux-amd64.tar.gz", &tarball);
    let cache = tempfile::tempdir().unwrap();
    let mut options = FetchOptions::lab_default(cache.path().to_path_buf());
    options.platform = Some(Platform::LinuxAmd64);
    options.base_url = Some(server.base_url());
    options.sha256 = Some(sha256_hex(&tarball));
    options.progress = ProgressBarMode::Hidden;

    let first = fetch_istioctl_with_origin(&options).await.unwrap();
    assert_eq!(first.origin, FetchedFrom::Downloaded);
    let second = fetch_istioctl_with_origin(&options).await.unwrap();
    assert_eq!((second.origin, &second.path), (FetchedFrom::Cache, &first.path));
    std::fs::remove_dir_all(first.path.parent().unwrap()).unwrap();
    let third = fetch_istioctl_with_origin(&options).await.unwrap();
    assert_eq!(third.origin, FetchedFrom::Unpacked);
    assert_eq!(server.requests().len(), 1);
}
