//! Tests of `definition::validate`: Istio's checks and the lab's on a stage's objects, edited to break them.

use super::*;
use crate::definition::stages::LabDefinition;

fn stage_and_manifests(name: &str) -> (Stage, Vec<Manifest>) {
    let lab = LabDefinition::load_default().unwrap();
    let stage = lab.stage(name).unwrap().clone();
    let manifests = lab.stage_manifests(&stage).unwrap();
    (stage, manifests)
}

fn edit(manifests: &mut [Manifest], kind: &str, change: impl Fn(&mut Value)) {
    let manifest = manifests.iter_mut().find(|manifest| manifest.kind() == kind).unwrap();
    change(&mut manifest.object);
}

fn schemas() -> CrdSchemas {
    CrdSchemas::load(&crate::definition::assets::assets_dir().join(crate::definition::schema::CRD_FILE)).unwrap()
}

/// The problems found in edited objects (whose text no longer matches the files, so they are named, not shown).
fn problems(stage: &Stage, manifests: &[Manifest]) -> String {
    validate_stage(stage, manifests, &StageSources::default(), &schemas())
        .unwrap_err()
        .to_string()
}

#[test]
fn the_shipped_stages_are_valid() {
    let lab = LabDefinition::load_default().unwrap();
    for stage in &lab.stages {
        let manifests = lab.stage_manifests(stage).unwrap();
        validate_stage(stage, &manifests, &StageSources::default(), &schemas()).unwrap();
    }
}

#[test]
fn weights_that_do_not_sum_to_100_are_refused() {
    // Measured before: `weight: 60`/`30` rendered with exit 0 and `lab check` passed the "split".
    let (stage, mut manifests) = stage_and_manifests("split-70-30");
    edit(&mut manifests, "VirtualService", |object| {
        object["spec"]["http"][0]["route"][0]["weight"] = 60.into();
    });
    let message = problems(&stage, &manifests);
    assert!(
        message.contains(
            "virtualservice-70-30.yaml, document 1: VirtualService image-classifier, spec.http[0].route[0].weight: the weights 60 + 30 sum to 90; Istio needs 100"
        ),
        "{message}"
    );
    assert!(
        message.contains("help: make the weights of spec.http[0].route add up to 100"),
        "{message}"
    );
}

#[test]
fn a_misspelt_field_or_kind_is_refused() {
    let (stage, mut manifests) = stage_and_manifests("split-70-30");
    edit(&mut manifests, "VirtualService", |object| {
        let route = &mut object["spec"]["http"][0]["route"][1];
        let weight = route["weight"].take();
        route.as_object_mut().unwrap().remove("weight");
        route["wieght"] = weight;
    });
    let message = problems(&stage, &manifests);
    assert!(
        message.contains("spec.http[0].route[1].wieght: unknown field `wieght`"),
        "{message}"
    );
    assert!(message.contains("help: did you mean `weight`?"), "{message}");
    // The schema's refusal is enough: the routing model's own (also "unknown field") is not repeated.
    assert_eq!(message.matches("unknown field").count(), 1, "{message}");
    edit(&mut manifests, "VirtualService", |object| {
        object["kind"] = "VirtualServce".into()
    });
    let message = problems(&stage, &manifests);
    assert!(message.contains("kind: unknown kind \"VirtualServce\""), "{message}");
    assert!(message.contains("help: did you mean `VirtualService`?"), "{message}");
}

#[test]
fn subsets_must_exist_and_select_deployed_pods() {
    let (stage, mut manifests) = stage_and_manifests("split-70-30");
    edit(&mut manifests, "VirtualService", |object| {
        object["spec"]["http"][0]["route"][1]["destination"]["subset"] = "resnet152".into();
    });
    let message = problems(&stage, &manifests);
    assert!(
        message.contains("destination.subset: subset \"resnet152\" is not defined: no DestinationRule of the stage"),
        "{message}"
    );

    let (stage, mut manifests) = stage_and_manifests("split-70-30");
    edit(&mut manifests, "DestinationRule", |object| {
        object["spec"]["subsets"][1]["labels"]["version"] = "resnet-101".into();
    });
    let message = problems(&stage, &manifests);
    assert!(
        message.contains("spec.subsets[1].labels: subset \"resnet101\" selects version=resnet-101, but no Deployment"),
        "{message}"
    );
}

#[test]
fn an_assertion_must_name_a_deployed_version() {
    let (mut stage, manifests) = stage_and_manifests("stable");
    stage.assertions = vec![crate::definition::stages::AssertionSpec::Exact {
        version: "resnet101".into(),
        headers: BTreeMap::new(),
    }];
    let message = problems(&stage, &manifests);
    assert!(
        message.contains("names version \"resnet101\", but the stage deploys resnet50"),
        "{message}"
    );
}
