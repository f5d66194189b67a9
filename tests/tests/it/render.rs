//! `lab render` against `lab up`: what render prints is what up applies, object for object and in order, through
//! the fake Kubernetes API; and a models directory recorded by an earlier `lab up --models host:DIR` changes what
//! `lab render --stage` prints (as `lab stage` applies it), not the default bring-up (`--models export`).

use canary_lab_tests::cli::CliOutput;
use lab::definition::manifests::{Manifest, parse_documents};
use serde_json::Value;

use crate::up::{Lab, run, saved_models};

/// The objects `lab render ARGS` prints, after checking it succeeded.
fn rendered(output: &CliOutput) -> Vec<Manifest> {
    assert_eq!(output.code, 0, "{}", output.stderr);
    parse_documents("render", &output.stdout).unwrap()
}

/// `plural/name` as the API path names an object (every kind the lab applies takes `kind` + `s` as its plural).
fn path_name(manifest: &Manifest) -> String {
    format!("{}s/{}", manifest.kind().to_lowercase(), manifest.name())
}

/// True when every field of `wanted` is in `stored` with the same value (the API server adds status, defaults and
/// metadata of its own).
fn holds(stored: &Value, wanted: &Value) -> bool {
    match (stored, wanted) {
        (Value::Object(stored), Value::Object(wanted)) => wanted
            .iter()
            .all(|(key, value)| stored.get(key).is_some_and(|stored| holds(stored, value))),
        (Value::Array(stored), Value::Array(wanted)) => {
            stored.len() == wanted.len() && stored.iter().zip(wanted).all(|(stored, wanted)| holds(stored, wanted))
        }
        _ => stored == wanted,
    }
}

/// The hostPath the first Deployment among `manifests` mounts.
fn model_path(manifests: &[Manifest]) -> String {
    let deployment = manifests
        .iter()
        .find(|manifest| manifest.kind() == "Deployment")
        .unwrap();
    deployment.object["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn render_prints_the_objects_lab_up_applies_in_the_order_it_applies_them() {
    let lab = Lab::start("docker").await;
    let output = lab.up(lab.up_args().stage("stable")).await;
    assert_eq!(output.code, 0, "{}\n{}", output.stdout, output.stderr);
    // The first write of each of the lab's objects, in order (`lab up` writes an object again only when it changed).
    let mut applied: Vec<String> = Vec::new();
    for write in lab.kube.writes() {
        let path = write.path();
        let lab_object = path == "/api/v1/namespaces/tf-serving" || path.contains("/namespaces/tf-serving/");
        let object = path.rsplitn(3, '/').take(2).collect::<Vec<_>>();
        let object = format!("{}/{}", object[1], object[0]);
        if lab_object && !applied.contains(&object) {
            applied.push(object);
        }
    }

    let render = rendered(&run(lab.cli(["lab", "render"])).await);
    assert_eq!(applied, render.iter().map(path_name).collect::<Vec<_>>());
    for manifest in &render {
        let plural = format!("{}s", manifest.kind().to_lowercase());
        let namespace = manifest.namespace().unwrap_or_default();
        let stored = lab.kube.object(&plural, namespace, manifest.name()).unwrap();
        assert!(
            holds(&stored, &manifest.object),
            "{} as rendered:\n{:#}\nas applied:\n{stored:#}",
            manifest.describe(),
            manifest.object
        );
    }
}

/// Before the bring-up plan, `lab render` read the models directory recorded by `lab up --models host:DIR` and
/// printed the export Job beside Deployments mounting that directory: a set `lab up` never applies (with the
/// default `--models export` it mounts the node's export directory).
#[tokio::test]
async fn a_recorded_models_directory_shows_in_a_rendered_stage_but_not_in_the_default_bring_up() {
    let lab = Lab::start("none").await;
    let models = tempfile::tempdir().unwrap();
    saved_models(models.path());
    let source = format!("host:{}", models.path().display());
    let output = lab.up(lab.up_args().stage("stable").models(&source)).await;
    assert_eq!(output.code, 0, "{}", output.stderr);

    let bring_up = rendered(&run(lab.cli(["lab", "render"])).await);
    assert!(bring_up.iter().any(|manifest| manifest.kind() == "Job"));
    assert_eq!(model_path(&bring_up), "/data/canary-lab/models/resnet50");

    let stage = rendered(&run(lab.cli(["lab", "render", "--stage", "stable"])).await);
    let mounted = models.path().canonicalize().unwrap().join("resnet50");
    assert_eq!(model_path(&stage), mounted.display().to_string());
}
