//! Comparing a live object with the stage's, semantically: what the stage relies on must hold (labels that
//! selectors use, images, subsets, the gateway binding), while defaults the API server adds and fields the stage
//! does not set are fine. Pure functions of the two objects; each difference is a [`Finding`] for its hint.

use serde_json::Value;

use crate::definition::expectations::{INJECTION_LABEL, containers, labels_text, string_list};
use crate::definition::hints::{Finding, HintKind};
use crate::definition::manifests::Manifest;

/// What differs between the stage's object `expected` and the `live` one of the same kind and name (empty: it
/// holds); `stage` is every object of the stage (a subset is judged by the pods it selects among them).
pub(crate) fn compare_object(expected: &Manifest, live: &Value, stage: &[Manifest]) -> Vec<Finding> {
    let name = expected.name().to_string();
    let (want, got) = (&expected.object, live);
    match expected.kind() {
        "Namespace" => namespace(&name, want, got),
        "ConfigMap" => config_map(&name, want, got),
        "Deployment" => deployment(&name, want, got),
        "Service" => service(&name, want, got),
        "Gateway" => gateway(&name, want, got),
        "DestinationRule" => destination_rule(&name, want, got, stage),
        "VirtualService" => virtual_service(&name, want, got),
        _ => Vec::new(),
    }
}

fn namespace(name: &str, want: &Value, got: &Value) -> Vec<Finding> {
    let (label, value) = INJECTION_LABEL;
    let wanted = want["metadata"]["labels"][label].as_str() == Some(value);
    let present = got["metadata"]["labels"][label].as_str() == Some(value);
    if wanted && !present {
        return vec![Finding::new(
            HintKind::NamespaceLabel,
            &[("namespace", name.to_string()), ("label", format!("{label}={value}"))],
        )];
    }
    Vec::new()
}

fn config_map(name: &str, want: &Value, got: &Value) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (key, value) in want["data"].as_object().into_iter().flatten() {
        if got["data"][key] != *value {
            findings.push(Finding::new(
                HintKind::ConfigValue,
                &[
                    ("name", name.to_string()),
                    ("key", key.clone()),
                    ("got", got["data"][key].as_str().unwrap_or("(nothing)").to_string()),
                    ("want", value.as_str().unwrap_or_default().to_string()),
                ],
            ));
        }
    }
    findings
}

fn deployment(name: &str, want: &Value, got: &Value) -> Vec<Finding> {
    let mut findings = Vec::new();
    let path = ["spec", "template", "metadata", "labels"];
    let (wanted_labels, live_labels) = (at(want, &path), at(got, &path));
    if !is_subset(wanted_labels, live_labels) {
        findings.push(Finding::new(
            HintKind::PodLabels,
            &[
                ("name", name.to_string()),
                ("got", or_none(labels_text(live_labels))),
                ("want", labels_text(wanted_labels)),
            ],
        ));
    }
    let live: Vec<&Value> = containers(got).collect();
    for container in containers(want) {
        let container_name = container["name"].as_str().unwrap_or_default();
        let Some(index) = live.iter().position(|c| c["name"].as_str() == Some(container_name)) else {
            findings.push(Finding::new(
                HintKind::ContainerMissing,
                &[("name", name.to_string()), ("container", container_name.to_string())],
            ));
            continue;
        };
        if live[index]["image"] != container["image"] {
            findings.push(Finding::new(
                HintKind::Image,
                &[
                    ("name", name.to_string()),
                    ("container", container_name.to_string()),
                    ("got", live[index]["image"].as_str().unwrap_or_default().to_string()),
                    ("want", container["image"].as_str().unwrap_or_default().to_string()),
                    ("field", format!("spec.template.spec.containers[{index}].image")),
                ],
            ));
        }
    }
    findings
}

fn service(name: &str, want: &Value, got: &Value) -> Vec<Finding> {
    let mut findings = Vec::new();
    if want["spec"]["selector"] != got["spec"]["selector"] {
        findings.push(Finding::new(
            HintKind::ServiceSelector,
            &[
                ("name", name.to_string()),
                ("got", or_none(labels_text(&got["spec"]["selector"]))),
                ("want", labels_text(&want["spec"]["selector"])),
            ],
        ));
    }
    let live_ports: Vec<&Value> = got["spec"]["ports"].as_array().into_iter().flatten().collect();
    for port in want["spec"]["ports"].as_array().into_iter().flatten() {
        // The target port defaults to the port (kubernetes v1.24 pkg/apis/core/v1/defaults.go, SetDefaults_Service).
        let target = |port: &Value| match &port["targetPort"] {
            Value::Null => port["port"].clone(),
            target => target.clone(),
        };
        let held = live_ports
            .iter()
            .any(|live| live["port"] == port["port"] && target(live) == target(port));
        if !held {
            findings.push(Finding::new(
                HintKind::ServicePort,
                &[("name", name.to_string()), ("port", port["port"].to_string())],
            ));
        }
    }
    findings
}

fn gateway(name: &str, want: &Value, got: &Value) -> Vec<Finding> {
    let mut findings = Vec::new();
    if want["spec"]["selector"] != got["spec"]["selector"] {
        findings.push(Finding::new(
            HintKind::GatewaySelector,
            &[
                ("name", name.to_string()),
                ("got", or_none(labels_text(&got["spec"]["selector"]))),
                ("want", labels_text(&want["spec"]["selector"])),
            ],
        ));
    }
    let live_servers: Vec<&Value> = got["spec"]["servers"].as_array().into_iter().flatten().collect();
    for server in want["spec"]["servers"].as_array().into_iter().flatten() {
        let hosts = string_list(&server["hosts"]);
        let held = live_servers.iter().any(|live| {
            let live_hosts = string_list(&live["hosts"]);
            live["port"]["number"] == server["port"]["number"]
                && hosts
                    .iter()
                    .all(|host| live_hosts.contains(host) || live_hosts.iter().any(|h| h == "*"))
        });
        if !held {
            findings.push(Finding::new(
                HintKind::GatewayServer,
                &[
                    ("name", name.to_string()),
                    ("port", server["port"]["number"].to_string()),
                    ("hosts", hosts.join(", ")),
                ],
            ));
        }
    }
    findings
}

fn destination_rule(name: &str, want: &Value, got: &Value, stage: &[Manifest]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let namespace = want["metadata"]["namespace"].as_str().unwrap_or("default");
    let (want_host, got_host) = (
        want["spec"]["host"].as_str().unwrap_or_default(),
        got["spec"]["host"].as_str().unwrap_or_default(),
    );
    if !same_service_host(want_host, got_host, namespace) {
        findings.push(Finding::new(
            HintKind::DestinationHost,
            &[
                ("name", name.to_string()),
                ("got", or_none(got_host.to_string())),
                ("want", want_host.to_string()),
            ],
        ));
    }
    let live: Vec<&Value> = got["spec"]["subsets"].as_array().into_iter().flatten().collect();
    for subset in want["spec"]["subsets"].as_array().into_iter().flatten() {
        let subset_name = subset["name"].as_str().unwrap_or_default();
        match live.iter().position(|s| s["name"].as_str() == Some(subset_name)) {
            None => findings.push(Finding::new(
                HintKind::SubsetMissing,
                &[
                    ("name", name.to_string()),
                    ("subset", subset_name.to_string()),
                    ("labels", labels_text(&subset["labels"])),
                ],
            )),
            Some(index) if !same_pods(&live[index]["labels"], &subset["labels"], stage) => findings.push(Finding::new(
                HintKind::SubsetLabels,
                &[
                    ("name", name.to_string()),
                    ("subset", subset_name.to_string()),
                    ("got", or_none(labels_text(&live[index]["labels"]))),
                    ("want", labels_text(&subset["labels"])),
                    ("field", format!("spec.subsets[{index}].labels")),
                ],
            )),
            Some(_) => {}
        }
    }
    findings
}

/// Whether a subset with the labels `got` selects the same pods as one with `want`: the same Deployments of the
/// stage (a subset selects the pods whose labels include all of its own: `labels` of DestinationRule's `Subset` in
/// istio/api 1.12 networking/v1alpha3/destination_rule.proto), so an extra label every such pod has is fine. When
/// `want` selects no Deployment of the stage, only the same labels hold.
fn same_pods(got: &Value, want: &Value, stage: &[Manifest]) -> bool {
    let selects = |labels: &Value| -> Vec<&str> {
        let Some(labels) = labels.as_object() else {
            return Vec::new();
        };
        stage
            .iter()
            .filter(|manifest| manifest.kind() == "Deployment")
            .filter(|deployment| {
                let pod = &deployment.object["spec"]["template"]["metadata"]["labels"];
                labels.iter().all(|(key, value)| pod[key] == *value)
            })
            .map(Manifest::name)
            .collect()
    };
    let wanted = selects(want);
    if wanted.is_empty() {
        return got == want;
    }
    got.as_object().is_some_and(|labels| !labels.is_empty()) && selects(got) == wanted
}

fn virtual_service(name: &str, want: &Value, got: &Value) -> Vec<Finding> {
    let mut findings = Vec::new();
    let namespace = want["metadata"]["namespace"].as_str().unwrap_or("default");
    let live_gateways = string_list(&got["spec"]["gateways"]);
    for gateway in string_list(&want["spec"]["gateways"]) {
        // A gateway is named `name` or `namespace/name` (istio/istio 1.12.7 pilot/pkg/model/virtualservice.go,
        // resolveGatewayName).
        let qualified = format!("{namespace}/{gateway}");
        if !live_gateways.iter().any(|live| *live == gateway || *live == qualified) {
            findings.push(Finding::new(
                HintKind::VirtualServiceGateway,
                &[
                    ("name", name.to_string()),
                    ("got", or_none(live_gateways.join(", "))),
                    ("want", gateway),
                ],
            ));
        }
    }
    let live_hosts = string_list(&got["spec"]["hosts"]);
    let hosts = string_list(&want["spec"]["hosts"]);
    if !hosts
        .iter()
        .all(|host| live_hosts.contains(host) || live_hosts.iter().any(|h| h == "*"))
    {
        findings.push(Finding::new(
            HintKind::VirtualServiceHosts,
            &[
                ("name", name.to_string()),
                ("got", or_none(live_hosts.join(", "))),
                ("want", hosts.join(", ")),
            ],
        ));
    }
    findings
}

/// Whether two service hosts name the same Service from `namespace`: a short name, `name.namespace`, or the
/// cluster-local FQDN (istio/istio 1.12.7 pkg/config/host/name.go; DestinationRule `host` reference).
pub(crate) fn same_service_host(a: &str, b: &str, namespace: &str) -> bool {
    let full = |host: &str| -> String {
        match host.matches('.').count() {
            0 => format!("{host}.{namespace}.svc.cluster.local"),
            1 => format!("{host}.svc.cluster.local"),
            _ => host.to_string(),
        }
    };
    full(a) == full(b)
}

/// The value at a path of object keys (`Null` when absent).
fn at<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(value, |value, key| &value[*key])
}

/// Whether every key of the map `part` is in `whole` with the same value.
fn is_subset(part: &Value, whole: &Value) -> bool {
    part.as_object()
        .into_iter()
        .flatten()
        .all(|(key, value)| whole[key] == *value)
}

/// "(none)" for an empty description.
fn or_none(text: String) -> String {
    if text.is_empty() { "(none)".to_string() } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::stages::LabDefinition;

    fn stage_objects(stage: &str) -> Vec<Manifest> {
        let lab = LabDefinition::load_default().unwrap();
        lab.stage_manifests(lab.stage(stage).unwrap()).unwrap()
    }

    fn stage_object(stage: &str, kind: &str) -> Manifest {
        stage_objects(stage)
            .into_iter()
            .find(|manifest| manifest.kind() == kind)
            .unwrap()
    }

    /// [`compare_object`] against the `split-70-30` stage's objects.
    fn compare(expected: &Manifest, live: &Value) -> Vec<Finding> {
        compare_object(expected, live, &stage_objects("split-70-30"))
    }

    #[test]
    fn a_subset_holds_when_it_selects_the_same_pods() {
        let expected = stage_object("split-70-30", "DestinationRule");
        let mut live = expected.object.clone();
        live["spec"]["subsets"][1]["labels"] = serde_json::json!({"app": "image-classifier", "version": "resnet101"});
        assert_eq!(compare(&expected, &live), Vec::new(), "an extra label every pod has");
        live["spec"]["subsets"][1]["labels"] = serde_json::json!({"app": "image-classifier"});
        let findings = compare(&expected, &live);
        assert_eq!(
            findings[0].kind,
            HintKind::SubsetLabels,
            "both versions' pods: {findings:?}"
        );
        assert_eq!(findings[0].values["field"], "spec.subsets[1].labels");
        live["spec"]["subsets"][1]["labels"] = serde_json::json!({"version": "resnet101", "track": "canary"});
        assert_eq!(
            compare(&expected, &live)[0].kind,
            HintKind::SubsetLabels,
            "no pod has track=canary"
        );
    }

    #[test]
    fn defaults_and_extra_fields_are_fine() {
        let expected = stage_object("split-70-30", "Service");
        let mut live = expected.object.clone();
        live["spec"]["clusterIP"] = "10.96.0.12".into();
        live["spec"]["ports"][0]["protocol"] = "TCP".into();
        live["metadata"]["uid"] = "abc".into();
        assert_eq!(compare(&expected, &live), Vec::new());
    }

    #[test]
    fn a_missing_subset_is_named_with_the_labels_it_needs() {
        let expected = stage_object("split-70-30", "DestinationRule");
        let mut live = expected.object.clone();
        live["spec"]["subsets"]
            .as_array_mut()
            .unwrap()
            .retain(|s| s["name"] != "resnet101");
        let findings = compare(&expected, &live);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].kind, HintKind::SubsetMissing);
        assert_eq!(findings[0].values["subset"], "resnet101");
        assert_eq!(findings[0].values["labels"], "version=resnet101");
    }

    #[test]
    fn a_destination_rule_host_may_be_written_in_full() {
        let expected = stage_object("split-70-30", "DestinationRule");
        let mut live = expected.object.clone();
        live["spec"]["host"] = "image-classifier.tf-serving.svc.cluster.local".into();
        assert_eq!(compare(&expected, &live), Vec::new());
        live["spec"]["host"] = "image-classifier.default.svc.cluster.local".into();
        assert_eq!(compare(&expected, &live)[0].kind, HintKind::DestinationHost);
    }

    #[test]
    fn an_unlabelled_namespace_is_found() {
        let expected = stage_object("stable", "Namespace");
        let mut live = expected.object.clone();
        live["metadata"]["labels"] = serde_json::json!({"kubernetes.io/metadata.name": "tf-serving"});
        let findings = compare(&expected, &live);
        assert_eq!(findings[0].kind, HintKind::NamespaceLabel);
        assert_eq!(findings[0].values["label"], "istio-injection=enabled");
    }

    #[test]
    fn a_gateway_bound_by_its_qualified_name_holds() {
        let expected = stage_object("stable", "VirtualService");
        let mut live = expected.object.clone();
        live["spec"]["gateways"] = serde_json::json!(["tf-serving/image-classifier-gateway"]);
        assert_eq!(compare(&expected, &live), Vec::new());
        live["spec"]["gateways"] = serde_json::json!(["mesh"]);
        assert_eq!(compare(&expected, &live)[0].kind, HintKind::VirtualServiceGateway);
    }
}
