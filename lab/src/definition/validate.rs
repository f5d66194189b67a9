//! Istio's own checks on a stage's objects, made where the stage is loaded rather than left to the API server (which
//! on Kubernetes 1.24 silently prunes an unknown field such as `wieght:`) or to traffic (which would then "pass" a
//! 60/30 split). Each rule follows what istiod 1.12.7's validating webhook or `istioctl analyze` reports; the lab
//! adds that a stage's assertions name versions it deploys.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::definition::manifests::Manifest;
use crate::definition::routing::VirtualServiceSpec;
use crate::definition::stages::Stage;

/// The kinds a stage may hold: what the lab's manifests use.
pub const KNOWN_KINDS: &[&str] = &[
    "Namespace",
    "ServiceAccount",
    "ConfigMap",
    "Deployment",
    "Service",
    "Job",
    "Gateway",
    "VirtualService",
    "DestinationRule",
];

/// A stage whose objects Istio (or the lab) would refuse, with every problem found.
#[derive(Debug, thiserror::Error)]
#[error(
    "stage \"{stage}\" is not valid:\n  {}\nhelp: fix the manifests named above (see `cargo xtask lab stages` for each stage's files)",
    problems.join("\n  ")
)]
pub struct InvalidStage {
    /// The stage's name.
    pub stage: String,
    /// One line per problem: file, document, field and what is wrong.
    pub problems: Vec<String>,
}

/// Checks `stage`'s `manifests`: known kinds; each VirtualService as Istio's schema types it (no unknown fields),
/// weights of 0–100 summing to 100 when a route has several destinations (pilot/pkg/config/validation/validation.go
/// `validateHTTPRouteDestinations`), every subset a route names defined by a DestinationRule for its host
/// (`istioctl analyze` IST0101), every DestinationRule subset selecting labels that some Deployment of the stage
/// gives its pods; and every version an assertion names deployed by the stage.
pub fn validate_stage(stage: &Stage, manifests: &[Manifest]) -> Result<(), InvalidStage> {
    let mut problems = Vec::new();
    for manifest in manifests {
        let at = format!("{}, document {}", manifest.file, manifest.document);
        let kind = manifest.kind();
        if !KNOWN_KINDS.contains(&kind) {
            let nearest = KNOWN_KINDS
                .iter()
                .min_by_key(|known| strsim::levenshtein(known, kind))
                .filter(|known| strsim::levenshtein(known, kind) <= 3)
                .map(|known| format!(" (did you mean \"{known}\"?)"))
                .unwrap_or_default();
            problems.push(format!("{at}: unknown kind \"{kind}\"{nearest}"));
        }
    }
    let pod_labels = deployment_pod_labels(manifests);
    let subsets = destination_rule_subsets(manifests, &pod_labels, &mut problems);
    for manifest in manifests.iter().filter(|manifest| manifest.kind() == "VirtualService") {
        let at = format!(
            "{}, document {}: VirtualService {}",
            manifest.file,
            manifest.document,
            manifest.name()
        );
        match VirtualServiceSpec::from_object(&manifest.object) {
            Err(error) => problems.push(format!("{at}: spec: {error}")),
            Ok(spec) => route_problems(&spec, &subsets, &at, &mut problems),
        }
    }
    let deployed: Vec<&str> = pod_labels
        .iter()
        .filter_map(|labels| labels.get("version").map(String::as_str))
        .collect();
    for assertion in &stage.assertions {
        let version = assertion.version();
        if !deployed.contains(&version) {
            problems.push(format!(
                "assets/lab.toml, stage \"{}\": an assertion names version \"{version}\", but the stage deploys {}",
                stage.name,
                if deployed.is_empty() {
                    "no version (no Deployment with a `version` pod label)".to_string()
                } else {
                    deployed.join(", ")
                }
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(InvalidStage {
            stage: stage.name.clone(),
            problems,
        })
    }
}

/// The pod-template labels of each Deployment of the stage.
fn deployment_pod_labels(manifests: &[Manifest]) -> Vec<BTreeMap<String, String>> {
    manifests
        .iter()
        .filter(|manifest| manifest.kind() == "Deployment")
        .map(|manifest| labels(&manifest.object["spec"]["template"]["metadata"]["labels"]))
        .collect()
}

fn labels(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|map| {
            map.iter()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The service a host names: its first DNS label (`image-classifier.tf-serving.svc.cluster.local` → `image-classifier`;
/// the lab's objects share one namespace).
fn service_of(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

/// Subset names by service, from the stage's DestinationRules; a subset whose labels no Deployment's pods carry is
/// a problem (it would route to no endpoint: Envoy's `503 no healthy upstream`).
fn destination_rule_subsets(
    manifests: &[Manifest],
    pod_labels: &[BTreeMap<String, String>],
    problems: &mut Vec<String>,
) -> BTreeMap<String, Vec<String>> {
    let mut subsets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for manifest in manifests.iter().filter(|manifest| manifest.kind() == "DestinationRule") {
        let at = format!(
            "{}, document {}: DestinationRule {}",
            manifest.file,
            manifest.document,
            manifest.name()
        );
        let spec = &manifest.object["spec"];
        let Some(host) = spec["host"].as_str() else {
            problems.push(format!("{at}: spec.host is missing"));
            continue;
        };
        for (index, subset) in spec["subsets"].as_array().into_iter().flatten().enumerate() {
            let name = subset["name"].as_str().unwrap_or_default().to_string();
            let selector = labels(&subset["labels"]);
            let selected = pod_labels
                .iter()
                .any(|pod| selector.iter().all(|(key, value)| pod.get(key) == Some(value)));
            if !selected {
                let wanted: Vec<String> = selector.iter().map(|(key, value)| format!("{key}={value}")).collect();
                problems.push(format!(
                    "{at}: spec.subsets[{index}] \"{name}\" selects {}, but no Deployment of the stage gives its pods those labels",
                    wanted.join(",")
                ));
            }
            subsets.entry(service_of(host).to_string()).or_default().push(name);
        }
    }
    subsets
}

/// Weights and subsets of each route of a VirtualService.
fn route_problems(
    spec: &VirtualServiceSpec,
    subsets: &BTreeMap<String, Vec<String>>,
    at: &str,
    problems: &mut Vec<String>,
) {
    for (route_index, http) in spec.http.iter().enumerate() {
        let weights: Vec<u32> = http
            .route
            .iter()
            .map(|destination| destination.weight.unwrap_or(0))
            .collect();
        for (index, weight) in weights.iter().enumerate() {
            if *weight > 100 {
                problems.push(format!(
                    "{at}: spec.http[{route_index}].route[{index}].weight is {weight}, more than 100"
                ));
            }
        }
        let total: u32 = weights.iter().sum();
        if weights.len() > 1 && total != 100 {
            problems.push(format!(
                "{at}: spec.http[{route_index}].route: the weights {} sum to {total}; Istio needs 100 (\"total destination weight {total} != 100\")",
                weights.iter().map(u32::to_string).collect::<Vec<_>>().join(" + ")
            ));
        }
        for (index, destination) in http.route.iter().enumerate() {
            let Some(subset) = &destination.destination.subset else {
                continue;
            };
            let service = service_of(&destination.destination.host);
            let defined = subsets.get(service).is_some_and(|names| names.contains(subset));
            if !defined {
                problems.push(format!(
                    "{at}: spec.http[{route_index}].route[{index}].destination.subset \"{subset}\": no DestinationRule of the stage for host \"{}\" defines it",
                    destination.destination.host
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
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

    fn problems(stage: &Stage, manifests: &[Manifest]) -> String {
        validate_stage(stage, manifests).unwrap_err().to_string()
    }

    #[test]
    fn the_shipped_stages_are_valid() {
        let lab = LabDefinition::load_default().unwrap();
        for stage in &lab.stages {
            let manifests = lab.stage_manifests(stage).unwrap();
            validate_stage(stage, &manifests).unwrap();
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
            message.contains("spec.http[0].route: the weights 60 + 30 sum to 90; Istio needs 100"),
            "{message}"
        );
        assert!(message.contains("virtualservice-70-30.yaml, document 1"), "{message}");
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
        assert!(message.contains("unknown field `wieght`"), "{message}");
        edit(&mut manifests, "VirtualService", |object| {
            object["kind"] = "VirtualServce".into()
        });
        let message = problems(&stage, &manifests);
        assert!(
            message.contains("unknown kind \"VirtualServce\" (did you mean \"VirtualService\"?)"),
            "{message}"
        );
    }

    #[test]
    fn subsets_must_exist_and_select_deployed_pods() {
        let (stage, mut manifests) = stage_and_manifests("split-70-30");
        edit(&mut manifests, "VirtualService", |object| {
            object["spec"]["http"][0]["route"][1]["destination"]["subset"] = "resnet152".into();
        });
        let message = problems(&stage, &manifests);
        assert!(
            message.contains("destination.subset \"resnet152\": no DestinationRule of the stage"),
            "{message}"
        );

        let (stage, mut manifests) = stage_and_manifests("split-70-30");
        edit(&mut manifests, "DestinationRule", |object| {
            object["spec"]["subsets"][1]["labels"]["version"] = "resnet-101".into();
        });
        let message = problems(&stage, &manifests);
        assert!(
            message.contains("selects version=resnet-101, but no Deployment"),
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
}
