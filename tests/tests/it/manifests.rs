//! The lab's manifests against real schemas: Istio objects against the OpenAPI v3 schemas of Istio 1.12.7's CRDs (the
//! library's own check, `lab::definition::schema`),
//! core objects by a strict round trip through the k8s-openapi types; and `lab render` prints what is applied.

use std::path::PathBuf;

use canary_lab_tests::assert_contains;
use canary_lab_tests::cli::Cli;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use lab::definition::manifests::{Manifest, parse_documents};
use lab::definition::schema::CrdSchemas;
use serde_json::Value;

/// Every document of every file in `assets/manifests/`.
fn all_manifests() -> Vec<Manifest> {
    let dir = lab::definition::assets::manifests_dir();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    files.sort();
    lab::definition::manifests::load_files(&dir, &files).unwrap()
}

/// Istio 1.12.7's CRD schemas as the lab checks objects against them at load (the CRDs it ships in `assets/`).
fn istio_schemas() -> CrdSchemas {
    let path = lab::definition::assets::assets_dir().join(lab::definition::schema::CRD_FILE);
    CrdSchemas::load(&path).unwrap()
}

/// The schema problems of an Istio object, one line each.
fn istio_errors(schemas: &CrdSchemas, object: &Value) -> Vec<String> {
    let manifest = Manifest {
        file: "test.yaml".into(),
        document: 1,
        object: object.clone(),
    };
    assert!(
        schemas.covers(&manifest),
        "Istio 1.12.7 has no CRD for {}",
        manifest.describe()
    );
    schemas
        .check(&manifest)
        .into_iter()
        .map(|problem| format!("{}: {}", problem.path, problem.message))
        .collect()
}

#[test]
fn the_shipped_crds_are_those_of_istio_1_12_7() {
    // assets/ ships three of tests/data/'s CRDs, unchanged: their schemas are equal.
    let full =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/istio-1.12.7-crd-all.gen.yaml"))
            .unwrap();
    let full = parse_documents("crd-all.gen.yaml", &full).unwrap();
    let path = lab::definition::assets::assets_dir().join(lab::definition::schema::CRD_FILE);
    let shipped = parse_documents("shipped", &std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(shipped.len(), 3);
    for crd in &shipped {
        let original = full.iter().find(|m| m.name() == crd.name()).unwrap();
        assert_eq!(crd.object, original.object, "{}", crd.name());
    }
}

/// Deserialises into the typed struct and serialises back: a field the type does not have disappears, so the
/// values differ.
fn round_trip_differs<T: serde::de::DeserializeOwned + serde::Serialize>(object: &Value) -> Option<String> {
    let typed: T = match serde_json::from_value(object.clone()) {
        Ok(typed) => typed,
        Err(error) => return Some(error.to_string()),
    };
    let back = serde_json::to_value(&typed).unwrap();
    if &back == object {
        None
    } else {
        Some(format!(
            "round trip changed the object:\nbefore {object:#}\nafter  {back:#}"
        ))
    }
}

fn core_problem(object: &Value) -> Option<String> {
    match object["kind"].as_str().unwrap() {
        "Namespace" => round_trip_differs::<Namespace>(object),
        "ConfigMap" => round_trip_differs::<ConfigMap>(object),
        "Service" => round_trip_differs::<Service>(object),
        "Deployment" => round_trip_differs::<Deployment>(object),
        "Job" => round_trip_differs::<Job>(object),
        other => Some(format!("no typed check for kind {other}")),
    }
}

#[test]
fn every_manifest_is_valid_for_its_schema() {
    let schemas = istio_schemas();
    let manifests = all_manifests();
    assert!(manifests.len() >= 12, "{}", manifests.len());
    let mut istio_count = 0;
    for manifest in &manifests {
        let place = format!("{} document {} ({})", manifest.file, manifest.document, manifest.kind());
        if manifest.api_version().contains("istio.io") {
            istio_count += 1;
            let errors = istio_errors(&schemas, &manifest.object);
            assert!(errors.is_empty(), "{place}: {errors:#?}");
        } else if let Some(problem) = core_problem(&manifest.object) {
            panic!("{place}: {problem}");
        }
    }
    assert_eq!(istio_count, 6, "gateway, destination rule and four virtual services");
}

#[test]
fn a_misspelt_field_fails_both_checks() {
    let schemas = istio_schemas();
    let manifests = all_manifests();
    let virtual_service = manifests
        .iter()
        .find(|m| m.file == "virtualservice-70-30.yaml")
        .unwrap();
    let mut broken = virtual_service.object.clone();
    let route = broken["spec"]["http"][0]["route"][0].as_object_mut().unwrap();
    let weight = route.remove("weight").unwrap();
    route.insert("wieght".to_string(), weight);
    let errors = istio_errors(&schemas, &broken);
    assert!(errors.iter().any(|error| error.contains("wieght")), "{errors:#?}");

    let mut wrong_type = virtual_service.object.clone();
    wrong_type["spec"]["http"][0]["route"][0]["weight"] = Value::String("seventy".into());
    assert!(!istio_errors(&schemas, &wrong_type).is_empty());

    let deployment = manifests.iter().find(|m| m.kind() == "Deployment").unwrap();
    let mut broken = deployment.object.clone();
    broken["spec"]["replica"] = Value::from(1);
    let problem = core_problem(&broken).expect("an unknown field is caught");
    assert_contains!(problem, "replica");
}

#[test]
fn the_manifests_have_what_the_original_lab_has() {
    let manifests = all_manifests();
    let find = |kind: &str, name: &str| {
        manifests
            .iter()
            .find(|m| m.kind() == kind && m.name() == name)
            .unwrap_or_else(|| panic!("{kind}/{name}"))
            .object
            .clone()
    };
    for model in ["resnet50", "resnet101"] {
        let config = find("ConfigMap", &format!("{model}-configs"));
        assert_eq!(config["data"]["MODEL_NAME"], "image_classifier");
        assert_eq!(config["data"]["MODEL_PATH"], format!("/models/{model}"));
        let deployment = find("Deployment", &format!("image-classifier-{model}"));
        assert_eq!(deployment["metadata"]["labels"]["app"], "image-classifier");
        assert_eq!(deployment["metadata"]["labels"]["version"], model);
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "tensorflow/serving:2.5.1");
        assert_eq!(
            container["args"],
            serde_json::json!(["--model_name=$(MODEL_NAME)", "--model_base_path=$(MODEL_PATH)"])
        );
        assert_eq!(container["volumeMounts"][0]["mountPath"], format!("/models/{model}"));
        let volume = &deployment["spec"]["template"]["spec"]["volumes"][0];
        assert_eq!(volume["hostPath"]["path"], format!("/data/canary-lab/models/{model}"));
    }
    let service = find("Service", "image-classifier");
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert_eq!(service["spec"]["ports"][0]["name"], "tf-serving-grpc");
    assert_eq!(service["spec"]["ports"][1]["name"], "tf-serving-http");
    let gateway = find("Gateway", "image-classifier-gateway");
    assert_eq!(gateway["spec"]["selector"]["istio"], "ingressgateway");
    // Every VirtualService destination says which model served the response.
    for manifest in manifests.iter().filter(|m| m.kind() == "VirtualService") {
        for http in manifest.object["spec"]["http"].as_array().unwrap() {
            for route in http["route"].as_array().unwrap() {
                let version = route["headers"]["response"]["set"]["x-model-version"].as_str();
                let subset = route["destination"]["subset"].as_str().unwrap_or("resnet50");
                assert_eq!(version, Some(subset), "{}", manifest.file);
            }
        }
    }
}

#[test]
fn render_prints_exactly_the_bring_up_set_and_each_stage() {
    let output = Cli::new(["lab", "render"]).run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    let rendered = parse_documents("render", &output.stdout).unwrap();
    let names: Vec<String> = rendered.iter().map(|m| format!("{}/{}", m.kind(), m.name())).collect();
    assert_eq!(
        names,
        [
            "Namespace/tf-serving",
            "ConfigMap/export-models-script",
            "Job/export-models",
            "ConfigMap/resnet50-configs",
            "Deployment/image-classifier-resnet50",
            "Service/image-classifier",
            "Gateway/image-classifier-gateway",
            "VirtualService/image-classifier",
        ]
    );
    for manifest in &rendered {
        assert_eq!(
            manifest.object["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "canary-lab",
            "{}",
            manifest.describe()
        );
    }
    let script = rendered[1].object["data"]["export_models.py"].as_str().unwrap();
    assert!(script.contains("serving_bytes"));

    let output = Cli::new(["lab", "render", "--stage", "focused"]).run();
    assert_eq!(output.code, 0, "{}", output.stderr);
    let focused = parse_documents("render", &output.stdout).unwrap();
    assert!(focused.iter().any(|m| m.kind() == "DestinationRule"));
    let virtual_service = focused.iter().find(|m| m.kind() == "VirtualService").unwrap();
    assert_eq!(
        virtual_service.object["spec"]["http"][0]["match"][0]["headers"]["user-group"]["exact"],
        "canary"
    );

    let output = Cli::new(["lab", "render", "--stage", "nope"]).run();
    assert_eq!(output.code, 2);
    assert_contains!(output.stderr, "no stage \"nope\"");
}

/// A copy of the shipped assets in a temp dir, for a test to break.
pub(crate) fn assets_copy() -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
    let status = canary_lab_tests::process::Process::new("cp")
        .args([
            "-r",
            &format!("{}/.", source.display()),
            &copy.path().display().to_string(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    copy
}

#[tokio::test]
async fn every_command_that_loads_a_stage_refuses_weights_istio_would_refuse() {
    // Measured before: `weight: 60`/`30` rendered with exit 0 and `lab check` then *passed* a 60/30 "split".
    let assets = assets_copy();
    let manifest = assets.path().join("manifests/virtualservice-70-30.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("weight: 70"), "{text}");
    std::fs::write(&manifest, text.replace("weight: 70", "weight: 60")).unwrap();
    for command in [
        vec!["lab", "stages"],
        vec!["lab", "render", "--stage", "split-70-30"],
        vec![
            "lab",
            "check",
            "split-70-30",
            "--url",
            "http://127.0.0.1:1",
            "--payload",
            "keras",
        ],
    ] {
        let output = Cli::new(&command)
            .env("CANARY_LAB_ASSETS", assets.path())
            .run_async()
            .await;
        assert_eq!(output.code, 2, "{command:?}: {output:#?}");
        assert_contains!(output.stderr, "error: stage \"split-70-30\" is not valid (1 problem)");
        assert_contains!(output.stderr, "error: the weights 60 + 30 sum to 90; Istio needs 100");
        assert_contains!(output.stderr, "manifests/virtualservice-70-30.yaml:19:15");
        assert_contains!(
            output.stderr,
            "VirtualService image-classifier (document 1), spec.http[0].route[0].weight"
        );
    }
    // The other stages still load.
    let stable = Cli::new(["lab", "render", "--stage", "stable"])
        .env("CANARY_LAB_ASSETS", assets.path())
        .run_async()
        .await;
    assert_eq!(stable.code, 0, "{stable:#?}");
}
