//! What a stage expects of a cluster, as a checklist: the facts `lab verify` checks against the live objects and
//! the traffic, in the order it checks them, each with one sentence a learner can read (the handout lists the same
//! sentences under "what `lab verify` checks").
//!
//! The facts are semantic, not a field-by-field copy of the manifests: an object must exist and hold what the stage
//! relies on (labels, subsets, where each header set is routed and with what weights), while defaults the API
//! server adds and fields the stage does not set are fine.

use std::collections::BTreeMap;

use crate::definition::manifests::Manifest;
use crate::definition::plan::StagePlan;
use crate::definition::routing::PREDICT_PATH;
use crate::definition::stages::AssertionSpec;

/// The container Istio injects into every pod of a labelled namespace.
pub const SIDECAR_CONTAINER: &str = "istio-proxy";

/// The namespace label that turns on Istio's sidecar injection.
pub const INJECTION_LABEL: (&str, &str) = ("istio-injection", "enabled");

/// One item of a stage's checklist.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    /// What is checked.
    pub subject: Subject,
    /// The item as a learner reads it, e.g. "DestinationRule image-classifier defines subsets resnet50, resnet101".
    pub text: String,
}

/// What an [`Expectation`] is about.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    /// An object of the stage exists and holds what the stage relies on.
    Object {
        /// The stage's own object (where it comes from, and what it holds).
        manifest: Box<Manifest>,
    },
    /// A Deployment's pods are ready and (in a namespace with injection) carry the sidecar.
    Pods {
        /// The Deployment's namespace.
        namespace: String,
        /// The Deployment's name.
        deployment: String,
        /// Its pod selector (`k=v,k2=v2`).
        selector: String,
        /// Whether the stage's namespace turns injection on, so the pods must carry [`SIDECAR_CONTAINER`].
        sidecar: bool,
    },
    /// A prediction sent with `headers` takes a route with these weights by version.
    Routes {
        /// The headers the requests carry.
        headers: BTreeMap<String, String>,
        /// The weights in percent by version, as the stage's VirtualService configures them.
        weights: BTreeMap<String, u32>,
    },
    /// A traffic assertion of the stage holds.
    Traffic {
        /// Its index among the stage's assertions.
        index: usize,
        /// The assertion.
        assertion: AssertionSpec,
    },
}

/// The checklist of `plan`, in the order `lab verify` checks it: every object (in apply order, a Deployment
/// followed by its pods), the routes for each header set the assertions send, then the assertions.
pub fn checklist(plan: &StagePlan) -> Vec<Expectation> {
    let injected_namespaces: Vec<&str> = plan
        .manifests
        .iter()
        .filter(|manifest| manifest.kind() == "Namespace" && injection_enabled(&manifest.object))
        .map(Manifest::name)
        .collect();
    let mut items = Vec::new();
    for manifest in &plan.manifests {
        items.push(Expectation {
            text: object_text(manifest),
            subject: Subject::Object {
                manifest: Box::new(manifest.clone()),
            },
        });
        if manifest.kind() == "Deployment"
            && let Some(selector) = manifest.pod_selector()
        {
            let namespace = manifest.namespace().unwrap_or("default").to_string();
            let sidecar = injected_namespaces.contains(&namespace.as_str());
            let text = if sidecar {
                format!(
                    "the pods of {} are ready, each with an {SIDECAR_CONTAINER} sidecar",
                    manifest.name()
                )
            } else {
                format!("the pods of {} are ready", manifest.name())
            };
            items.push(Expectation {
                text,
                subject: Subject::Pods {
                    namespace,
                    deployment: manifest.name().to_string(),
                    selector,
                    sidecar,
                },
            });
        }
    }
    if let Ok(routing) = plan.routing() {
        for headers in header_sets(&plan.assertions) {
            let Ok(Some(route)) = routing.route_for(PREDICT_PATH, &headers) else {
                continue;
            };
            let weights = route.weights();
            items.push(Expectation {
                text: format!(
                    "{}, the VirtualService sends {}",
                    describe_headers(&headers),
                    describe_weights(&weights)
                ),
                subject: Subject::Routes { headers, weights },
            });
        }
    }
    for (index, assertion) in plan.assertions.iter().enumerate() {
        items.push(Expectation {
            text: format!(
                "traffic {}: {}",
                describe_headers(assertion.headers()),
                describe_assertion(assertion)
            ),
            subject: Subject::Traffic {
                index,
                assertion: assertion.clone(),
            },
        });
    }
    items
}

/// The distinct header sets the assertions send, in the order they first appear.
pub fn header_sets(assertions: &[AssertionSpec]) -> Vec<BTreeMap<String, String>> {
    let mut sets: Vec<BTreeMap<String, String>> = Vec::new();
    for assertion in assertions {
        if !sets.contains(assertion.headers()) {
            sets.push(assertion.headers().clone());
        }
    }
    sets
}

/// Whether a Namespace object carries [`INJECTION_LABEL`].
pub fn injection_enabled(namespace: &serde_json::Value) -> bool {
    namespace["metadata"]["labels"][INJECTION_LABEL.0].as_str() == Some(INJECTION_LABEL.1)
}

/// "without headers" or "with user-group: canary".
pub fn describe_headers(headers: &BTreeMap<String, String>) -> String {
    if headers.is_empty() {
        return "without headers".to_string();
    }
    let pairs: Vec<String> = headers.iter().map(|(name, value)| format!("{name}: {value}")).collect();
    format!("with {}", pairs.join(", "))
}

/// "100% to resnet50" or "70% to resnet50 and 30% to resnet101" (the largest weight first).
pub fn describe_weights(weights: &BTreeMap<String, u32>) -> String {
    let mut ordered: Vec<(&String, &u32)> = weights.iter().collect();
    ordered.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let parts: Vec<String> = ordered
        .into_iter()
        .map(|(version, weight)| format!("{weight}% to {version}"))
        .collect();
    parts.join(" and ")
}

/// "every response comes from resnet50" or "the resnet101 share is consistent with 30% (accepted 15–45%)".
pub fn describe_assertion(assertion: &AssertionSpec) -> String {
    match assertion {
        AssertionSpec::Exact { version, .. } => format!("every response comes from {version}"),
        AssertionSpec::Share {
            version,
            share,
            tolerance,
            ..
        } => format!(
            "the {version} share is consistent with {}% (accepted {}–{}%)",
            percent(*share),
            percent(share - tolerance),
            percent(share + tolerance)
        ),
    }
}

/// A share as a whole percentage when it is one (0.3 → "30"), else with one decimal.
fn percent(share: f64) -> String {
    let value = share * 100.0;
    if (value - value.round()).abs() < 1e-9 {
        format!("{}", value.round() as i64)
    } else {
        format!("{value:.1}")
    }
}

/// The item text of an object: what of it the stage relies on.
fn object_text(manifest: &Manifest) -> String {
    let object = &manifest.object;
    let name = manifest.name();
    let spec = &object["spec"];
    match manifest.kind() {
        "Namespace" if injection_enabled(object) => format!(
            "Namespace {name} exists, labelled {}={}",
            INJECTION_LABEL.0, INJECTION_LABEL.1
        ),
        "Deployment" => {
            let images: Vec<&str> = containers(object).filter_map(|c| c["image"].as_str()).collect();
            format!(
                "Deployment {name} runs {} for pods labelled {}",
                images.join(", "),
                labels_text(&spec["template"]["metadata"]["labels"])
            )
        }
        "Service" => {
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|port| port["port"].as_u64())
                .map(|port| port.to_string())
                .collect();
            format!(
                "Service {name} selects pods labelled {} on port {}",
                labels_text(&spec["selector"]),
                ports.join(", ")
            )
        }
        "Gateway" => format!(
            "Gateway {name} selects the gateway pods labelled {} and listens on {}",
            labels_text(&spec["selector"]),
            gateway_servers_text(spec)
        ),
        "DestinationRule" => {
            let subsets: Vec<String> = spec["subsets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|subset| {
                    format!(
                        "{} ({})",
                        subset["name"].as_str().unwrap_or_default(),
                        labels_text(&subset["labels"])
                    )
                })
                .collect();
            format!(
                "DestinationRule {name} for host {} defines subsets {}",
                spec["host"].as_str().unwrap_or_default(),
                subsets.join(", ")
            )
        }
        "VirtualService" => format!(
            "VirtualService {name} is bound to gateway {} for hosts {}",
            string_list(&spec["gateways"]).join(", "),
            string_list(&spec["hosts"]).join(", ")
        ),
        "ConfigMap" => {
            let keys: Vec<&String> = object["data"]
                .as_object()
                .into_iter()
                .flat_map(|data| data.keys())
                .collect();
            let keys: Vec<&str> = keys.into_iter().map(String::as_str).collect();
            format!("ConfigMap {name} holds {}", keys.join(", "))
        }
        kind => format!("{kind} {name} exists"),
    }
}

/// The containers of a workload's pod template.
pub fn containers(object: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    object["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
}

/// `k=v, k2=v2` of a label map.
pub fn labels_text(labels: &serde_json::Value) -> String {
    let pairs: Vec<String> = labels
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
        .collect();
    pairs.join(", ")
}

/// The strings of a JSON array of strings.
pub fn string_list(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_str().map(str::to_string))
        .collect()
}

/// "port 80 (HTTP) for hosts *" for each server of a Gateway spec.
fn gateway_servers_text(spec: &serde_json::Value) -> String {
    let servers: Vec<String> = spec["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|server| {
            format!(
                "port {} ({}) for hosts {}",
                server["port"]["number"],
                server["port"]["protocol"].as_str().unwrap_or_default(),
                string_list(&server["hosts"]).join(", ")
            )
        })
        .collect();
    servers.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::stages::LabDefinition;

    fn texts(stage: &str) -> Vec<String> {
        let lab = LabDefinition::load_default().unwrap();
        let plan = StagePlan::resolve(&lab, lab.stage(stage).unwrap(), None).unwrap();
        checklist(&plan).into_iter().map(|item| item.text).collect()
    }

    #[test]
    fn the_split_stage_checks_its_subsets_weights_and_share() {
        let items = texts("split-70-30");
        for wanted in [
            "Namespace tf-serving exists, labelled istio-injection=enabled",
            "the pods of image-classifier-resnet101 are ready, each with an istio-proxy sidecar",
            "DestinationRule image-classifier for host image-classifier defines subsets resnet50 (version=resnet50), \
             resnet101 (version=resnet101)",
            "without headers, the VirtualService sends 70% to resnet50 and 30% to resnet101",
            "traffic without headers: the resnet101 share is consistent with 30% (accepted 15–45%)",
        ] {
            assert!(items.iter().any(|item| item == wanted), "no {wanted:?} in {items:#?}");
        }
    }

    #[test]
    fn the_focused_stage_checks_the_routes_of_both_header_sets() {
        let items = texts("focused");
        assert!(
            items.contains(&"with user-group: canary, the VirtualService sends 100% to resnet101".to_string()),
            "{items:#?}"
        );
        assert!(
            items.contains(&"without headers, the VirtualService sends 100% to resnet50".to_string()),
            "{items:#?}"
        );
        assert!(
            items.contains(&"traffic with user-group: canary: every response comes from resnet101".to_string()),
            "{items:#?}"
        );
    }

    #[test]
    fn every_object_of_a_stage_is_an_item_before_the_routes_and_the_traffic() {
        let lab = LabDefinition::load_default().unwrap();
        let plan = StagePlan::resolve(&lab, lab.stage("canary-deployed").unwrap(), None).unwrap();
        let items = checklist(&plan);
        let objects = items
            .iter()
            .filter(|item| matches!(item.subject, Subject::Object { .. }))
            .count();
        assert_eq!(objects, plan.manifests.len());
        let first_route = items
            .iter()
            .position(|item| matches!(item.subject, Subject::Routes { .. }))
            .unwrap();
        let last_object = items
            .iter()
            .rposition(|item| matches!(item.subject, Subject::Object { .. } | Subject::Pods { .. }))
            .unwrap();
        assert!(last_object < first_route);
        assert!(matches!(items.last().unwrap().subject, Subject::Traffic { .. }));
    }

    #[test]
    fn a_share_reads_as_a_percentage() {
        assert_eq!(percent(0.3), "30");
        assert_eq!(percent(0.125), "12.5");
    }
}
