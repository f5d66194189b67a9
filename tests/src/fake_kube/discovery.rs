//! Discovery as a Kubernetes 1.24 API server serves it: the built-in groups and versions in the aggregator's order
//! (preferred version first), and the groups of Custom Resource Definitions only while their CRD is Established.
//!
//! Istio's CRDs come from `tests/data/istio-1.12.7-crd-all.gen.yaml` (Istio's own `crd-all.gen.yaml`); the fake
//! `istioctl install` stores them as `apiextensions.k8s.io/v1` objects, and the apiextensions controller's
//! `NamesAccepted` and `Established` conditions turn True a moment later ([`establish_crds`]).

use std::sync::OnceLock;

use serde_json::{Value, json};

use super::{Shared, store};

/// One kind the fake serves, in one group version.
#[derive(Debug)]
pub(super) struct Kind {
    pub(super) group: &'static str,
    pub(super) version: &'static str,
    pub(super) kind: &'static str,
    pub(super) plural: &'static str,
    pub(super) namespaced: bool,
    /// A custom resource (from a CRD): unstructured, so its LIST items keep `apiVersion` and `kind`.
    pub(super) custom: bool,
}

const fn builtin(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
) -> Kind {
    Kind {
        group,
        version,
        kind,
        plural,
        namespaced,
        custom: false,
    }
}

/// The built-in groups of a 1.24 API server with their served versions, in the order `/apis` lists them: by the
/// aggregator's group priority, versions by version priority, the first one preferred
/// (kubernetes v1.24 cmd/kube-apiserver/app/aggregator.go `apiVersionPriorities`; which versions are served by
/// default: pkg/controlplane/instance.go `DefaultAPIResourceConfigSource` and the REST storage providers under
/// pkg/registry/*/rest). `apiregistration.k8s.io` is the aggregator's own group and comes first
/// (staging/src/k8s.io/kube-aggregator/pkg/apiserver/handler_apis.go).
pub(super) const BUILTIN_GROUPS: &[(&str, &[&str])] = &[
    ("apiregistration.k8s.io", &["v1"]),
    ("apps", &["v1"]),
    ("events.k8s.io", &["v1", "v1beta1"]),
    ("authentication.k8s.io", &["v1"]),
    ("authorization.k8s.io", &["v1"]),
    // autoscaling/v2 went GA in 1.23 with version priority 30, above v1's 15.
    ("autoscaling", &["v2", "v1", "v2beta1", "v2beta2"]),
    ("batch", &["v1", "v1beta1"]),
    ("certificates.k8s.io", &["v1"]),
    ("networking.k8s.io", &["v1"]),
    ("policy", &["v1", "v1beta1"]),
    ("rbac.authorization.k8s.io", &["v1"]),
    ("storage.k8s.io", &["v1", "v1beta1"]),
    ("admissionregistration.k8s.io", &["v1"]),
    ("apiextensions.k8s.io", &["v1"]),
    ("scheduling.k8s.io", &["v1"]),
    ("coordination.k8s.io", &["v1"]),
    ("node.k8s.io", &["v1", "v1beta1"]),
    ("discovery.k8s.io", &["v1", "v1beta1"]),
    ("flowcontrol.apiserver.k8s.io", &["v1beta2", "v1beta1"]),
];

/// The built-in kinds, at least one per served group version (the core group is `""`). The fake stores and
/// lists any of them; the lab uses Namespace, ConfigMap, Service, Pod, Event, Deployment, Job and CRDs.
pub(super) const BUILTIN_KINDS: &[Kind] = &[
    builtin("", "v1", "ConfigMap", "configmaps", true),
    builtin("", "v1", "Endpoints", "endpoints", true),
    builtin("", "v1", "Event", "events", true),
    builtin("", "v1", "Namespace", "namespaces", false),
    builtin("", "v1", "Node", "nodes", false),
    builtin("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true),
    builtin("", "v1", "PersistentVolume", "persistentvolumes", false),
    builtin("", "v1", "Pod", "pods", true),
    builtin("", "v1", "Secret", "secrets", true),
    builtin("", "v1", "ServiceAccount", "serviceaccounts", true),
    builtin("", "v1", "Service", "services", true),
    builtin("apiregistration.k8s.io", "v1", "APIService", "apiservices", false),
    builtin("apps", "v1", "DaemonSet", "daemonsets", true),
    builtin("apps", "v1", "Deployment", "deployments", true),
    builtin("apps", "v1", "ReplicaSet", "replicasets", true),
    builtin("apps", "v1", "StatefulSet", "statefulsets", true),
    builtin("events.k8s.io", "v1", "Event", "events", true),
    builtin("events.k8s.io", "v1beta1", "Event", "events", true),
    builtin("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", false),
    builtin(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        false,
    ),
    builtin(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    ),
    builtin(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    ),
    builtin(
        "autoscaling",
        "v2beta1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    ),
    builtin(
        "autoscaling",
        "v2beta2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    ),
    builtin("batch", "v1", "CronJob", "cronjobs", true),
    builtin("batch", "v1", "Job", "jobs", true),
    builtin("batch", "v1beta1", "CronJob", "cronjobs", true),
    builtin(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        false,
    ),
    builtin("networking.k8s.io", "v1", "IngressClass", "ingressclasses", false),
    builtin("networking.k8s.io", "v1", "Ingress", "ingresses", true),
    builtin("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true),
    builtin("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true),
    builtin("policy", "v1beta1", "PodDisruptionBudget", "poddisruptionbudgets", true),
    builtin("policy", "v1beta1", "PodSecurityPolicy", "podsecuritypolicies", false),
    builtin(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    builtin("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false),
    builtin("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true),
    builtin("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
    builtin("storage.k8s.io", "v1", "StorageClass", "storageclasses", false),
    builtin(
        "storage.k8s.io",
        "v1",
        "CSIStorageCapacity",
        "csistoragecapacities",
        true,
    ),
    builtin(
        "storage.k8s.io",
        "v1beta1",
        "CSIStorageCapacity",
        "csistoragecapacities",
        true,
    ),
    builtin(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
    ),
    builtin(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
    ),
    builtin(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
    builtin("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", false),
    builtin("coordination.k8s.io", "v1", "Lease", "leases", true),
    builtin("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", false),
    builtin("node.k8s.io", "v1beta1", "RuntimeClass", "runtimeclasses", false),
    builtin("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true),
    builtin("discovery.k8s.io", "v1beta1", "EndpointSlice", "endpointslices", true),
    builtin(
        "flowcontrol.apiserver.k8s.io",
        "v1beta2",
        "FlowSchema",
        "flowschemas",
        false,
    ),
    builtin(
        "flowcontrol.apiserver.k8s.io",
        "v1beta1",
        "FlowSchema",
        "flowschemas",
        false,
    ),
];

/// The sub-resources discovery lists for a plural (kube-rs skips them, but a real list has them).
fn subresources_of(plural: &str, custom: bool) -> &'static [&'static str] {
    match plural {
        _ if custom => &["status"],
        "pods" => &[
            "attach",
            "binding",
            "ephemeralcontainers",
            "eviction",
            "exec",
            "log",
            "portforward",
            "proxy",
            "status",
        ],
        "deployments" | "replicasets" | "statefulsets" => &["scale", "status"],
        "jobs" | "cronjobs" | "daemonsets" | "services" | "nodes" | "horizontalpodautoscalers" => &["status"],
        "namespaces" => &["finalize", "status"],
        "customresourcedefinitions" | "apiservices" | "poddisruptionbudgets" => &["status"],
        _ => &[],
    }
}

/// Istio 1.12.7's CRDs as `istioctl install` creates them, parsed once.
pub(super) fn istio_crds() -> &'static [Value] {
    static CRDS: OnceLock<Vec<Value>> = OnceLock::new();
    CRDS.get_or_init(|| {
        let text = include_str!("../../data/istio-1.12.7-crd-all.gen.yaml");
        serde_yaml_ng::Deserializer::from_str(text)
            .map(|document| serde::Deserialize::deserialize(document).expect("Istio's CRD file parses"))
            .filter(|crd: &Value| crd["kind"] == "CustomResourceDefinition")
            .collect()
    })
}

/// The kinds of Istio's CRDs, one per served version (strings leaked once per process: the fake's kinds are
/// `&'static`).
fn istio_kinds() -> &'static [Kind] {
    static KINDS: OnceLock<Vec<Kind>> = OnceLock::new();
    KINDS.get_or_init(|| {
        let leak = |value: &Value| -> &'static str {
            Box::leak(value.as_str().unwrap_or_default().to_string().into_boxed_str())
        };
        let mut kinds = Vec::new();
        for crd in istio_crds() {
            let spec = &crd["spec"];
            for version in spec["versions"].as_array().into_iter().flatten() {
                if version["served"] != true {
                    continue;
                }
                kinds.push(Kind {
                    group: leak(&spec["group"]),
                    version: leak(&version["name"]),
                    kind: leak(&spec["names"]["kind"]),
                    plural: leak(&spec["names"]["plural"]),
                    namespaced: spec["scope"] == "Namespaced",
                    custom: true,
                });
            }
        }
        kinds
    })
}

/// True when the stored CRD named `name` has condition `Established` True.
fn established(shared: &Shared, name: &str) -> bool {
    let key = ("customresourcedefinitions".to_string(), String::new(), name.to_string());
    shared.objects.get(&key).is_some_and(|crd| {
        crd["status"]["conditions"].as_array().is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        })
    })
}

/// Every kind served now: the built-in ones, and those of CRDs that are Established (the discovery controller
/// skips the others: apiextensions-apiserver/pkg/apiserver/customresource_discovery_controller.go `sync`).
pub(super) fn served_kinds(shared: &Shared) -> Vec<&'static Kind> {
    let custom = istio_kinds()
        .iter()
        .filter(|kind| established(shared, &format!("{}.{}", kind.plural, kind.group)));
    BUILTIN_KINDS.iter().chain(custom).collect()
}

/// The kind served at `group`/`version` under `plural`.
pub(super) fn find_kind(shared: &Shared, group: &str, version: &str, plural: &str) -> Option<&'static Kind> {
    served_kinds(shared)
        .into_iter()
        .find(|kind| kind.group == group && kind.version == version && kind.plural == plural)
}

/// `apiVersion` of a kind: `v1` for the core group, `group/version` otherwise.
pub(super) fn api_version_of(kind: &Kind) -> String {
    match kind.group {
        "" => kind.version.to_string(),
        group => format!("{group}/{}", kind.version),
    }
}

/// Kubernetes' version order (k8s.io/apimachinery/pkg/version/helpers.go `CompareKubeAwareVersionStrings`): GA
/// before beta before alpha, higher numbers first; anything else after, alphabetically. Returns a sort key that
/// sorts the preferred version first.
fn kube_aware_key(version: &str) -> (u8, i64, i64, String) {
    let parse = || -> Option<(u8, i64, i64)> {
        let rest = version.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: i64 = digits.parse().ok()?;
        let rest = &rest[digits.len()..];
        let (stage, rest) = match rest {
            "" => return Some((0, -major, 0)),
            _ if rest.starts_with("beta") => (1, &rest[4..]),
            _ if rest.starts_with("alpha") => (2, &rest[5..]),
            _ => return None,
        };
        let minor: i64 = rest.parse().ok()?;
        Some((stage, -major, -minor))
    };
    match parse() {
        Some((stage, major, minor)) => (stage, major, minor, String::new()),
        None => (3, 0, 0, version.to_string()),
    }
}

/// The CRD groups served now with their versions, preferred first: versions sorted the kube-aware way
/// (customresource_discovery_controller.go `sortGroupDiscoveryByKubeAwareVersion`, preferred = first), groups by
/// name after the built-in ones (every CRD group has the aggregator's group priority 1000 and version priority
/// 100: kube-aggregator/pkg/controllers/autoregister and crdregistration_controller.go; ties sort by name,
/// kube-aggregator/pkg/apis/apiregistration/v1/helper/helpers.go `SortedByGroupAndVersion`).
fn custom_groups(shared: &Shared) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for kind in served_kinds(shared).into_iter().filter(|kind| kind.custom) {
        match groups.iter_mut().find(|(group, _)| *group == kind.group) {
            Some((_, versions)) if !versions.contains(&kind.version) => versions.push(kind.version),
            Some(_) => {}
            None => groups.push((kind.group, vec![kind.version])),
        }
    }
    for (_, versions) in &mut groups {
        versions.sort_by_key(|version| kube_aware_key(version));
    }
    groups.sort_by_key(|(group, _)| *group);
    groups
}

/// `GET /apis`: the `APIGroupList`.
pub(super) fn group_list(shared: &Shared) -> Value {
    let builtin = BUILTIN_GROUPS
        .iter()
        .map(|(group, versions)| (*group, versions.to_vec()));
    let groups: Vec<Value> = builtin
        .chain(custom_groups(shared))
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|version| json!({"groupVersion": format!("{group}/{version}"), "version": version}))
                .collect();
            json!({"name": group, "versions": versions, "preferredVersion": versions[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/<group>`: one `APIGroup`, or `None` when the path is not a served group.
pub(super) fn group_at(shared: &Shared, path: &str) -> Option<Value> {
    let name = match path.trim_matches('/').split('/').collect::<Vec<_>>().as_slice() {
        ["apis", name] => name.to_string(),
        _ => return None,
    };
    let list = group_list(shared);
    let mut group = list["groups"]
        .as_array()?
        .iter()
        .find(|group| group["name"] == name)?
        .clone();
    group["kind"] = json!("APIGroup");
    group["apiVersion"] = json!("v1");
    Some(group)
}

/// Discovery of one group version (`/api/v1`, `/apis/<group>/<version>`): an `APIResourceList`, or `None` when
/// the path is not a served group version.
pub(super) fn group_version_resources(shared: &Shared, path: &str) -> Option<Value> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version) = match parts.as_slice() {
        ["api", version] => ("", *version),
        ["apis", group, version] => (*group, *version),
        _ => return None,
    };
    let kinds: Vec<&Kind> = served_kinds(shared)
        .into_iter()
        .filter(|kind| kind.group == group && kind.version == version)
        .collect();
    let first = kinds.first()?;
    let resources: Vec<Value> = kinds
        .iter()
        .flat_map(|kind| {
            let verbs = if kind.custom {
                // customresource_discovery_controller.go lists these verbs for a CRD's resource.
                json!([
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "create",
                    "update",
                    "watch"
                ])
            } else {
                json!([
                    "create",
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "update",
                    "watch"
                ])
            };
            let main = json!({
                "name": kind.plural, "singularName": kind.kind.to_lowercase(), "namespaced": kind.namespaced,
                "kind": kind.kind, "verbs": verbs
            });
            let subresources = subresources_of(kind.plural, kind.custom).iter().map(|sub| {
                json!({"name": format!("{}/{sub}", kind.plural), "singularName": "", "namespaced": kind.namespaced,
                       "kind": kind.kind, "verbs": ["get", "patch", "update"]})
            });
            std::iter::once(main).chain(subresources).collect::<Vec<_>>()
        })
        .collect();
    Some(json!({
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": api_version_of(first),
        "resources": resources
    }))
}

/// An object as a LIST answers it: a built-in kind's items carry no `apiVersion` and `kind` (the list does:
/// kubernetes/kubernetes#3030, the typed list encoder never sets them on items); a custom resource is
/// unstructured and keeps them.
pub(super) fn list_item(kind: &Kind, object: &Value) -> Value {
    let mut item = object.clone();
    if !kind.custom
        && let Some(map) = item.as_object_mut()
    {
        map.remove("apiVersion");
        map.remove("kind");
    }
    item
}

/// Stores Istio's CRDs as `istioctl install` creates them: without conditions until [`establish_crds`] runs.
pub(super) fn create_istio_crds(shared: &mut Shared) {
    for crd in istio_crds() {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let key = ("customresourcedefinitions".to_string(), String::new(), name);
        if shared.objects.contains_key(&key) {
            continue;
        }
        let mut crd = crd.clone();
        crd["status"] = json!({
            "conditions": [],
            "acceptedNames": {"kind": "", "plural": ""},
            "storedVersions": stored_versions(&crd)
        });
        store(shared, "customresourcedefinitions", "", crd);
    }
}

/// What the apiextensions controllers do to a new CRD: its names accepted (`NamesAccepted`, naming_controller.go)
/// and then its API served (`Established`, establishing_controller.go), reported in `status.conditions`.
pub(super) fn establish_crds(shared: &mut Shared) {
    for crd in istio_crds() {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let key = ("customresourcedefinitions".to_string(), String::new(), name);
        let Some(mut stored) = shared.objects.get(&key).cloned() else {
            continue;
        };
        if established(shared, &key.2) {
            continue;
        }
        let names = &stored["spec"]["names"];
        let accepted = json!({
            "kind": names["kind"], "listKind": names["listKind"], "plural": names["plural"],
            "singular": names["singular"], "shortNames": names["shortNames"], "categories": names["categories"]
        });
        let condition = |kind: &str, reason: &str, message: &str| {
            json!({"type": kind, "status": "True", "lastTransitionTime": "2026-01-01T00:00:01Z",
                   "reason": reason, "message": message})
        };
        stored["status"]["acceptedNames"] = accepted;
        stored["status"]["conditions"] = json!([
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition(
                "Established",
                "InitialNamesAccepted",
                "the initial names have been accepted"
            ),
        ]);
        store(shared, "customresourcedefinitions", "", stored);
    }
}

fn stored_versions(crd: &Value) -> Value {
    let storage: Vec<Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|version| version["storage"] == true)
        .map(|version| version["name"].clone())
        .collect();
    json!(storage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_aware_order_puts_ga_then_beta_then_alpha() {
        let mut versions = vec!["v1alpha3", "v1beta1", "v2beta2", "v1", "v2", "foo", "v1alpha1"];
        versions.sort_by_key(|version| kube_aware_key(version));
        assert_eq!(
            versions,
            ["v2", "v1", "v2beta2", "v1beta1", "v1alpha3", "v1alpha1", "foo"]
        );
    }
}
