//! Server-side apply as a Kubernetes 1.24 API server does it, for the kinds the lab applies: field ownership per
//! manager in `metadata.managedFields`, conflicts between managers (409 unless `force=true`), fields a manager
//! stops applying removed, the API's defaults (`pkg/apis/*/v1/defaults.go`), a ClusterIP allocated, a Job's
//! selector generated and its pod template immutable (422), and `dryRun=All` answering all of it without storing.
//!
//! Ownership is tracked per leaf field (`fieldsV1` notation: `f:name` for a map field, `k:{"name":"x"}` for an
//! element of a list keyed by its merge key). Lists of built-in kinds are keyed when their elements carry `name`,
//! `containerPort` or `port`; lists in custom resources are atomic (a CRD's schema without
//! `x-kubernetes-list-type` makes them so: structured-merge-diff's deduced schema). Lists are replaced by the
//! applied ones when merged (what the lab's objects need), maps are merged key by key.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ResourcePath, SharedState, is_dry_run, status_response, store};

/// One field path in `fieldsV1` notation, e.g. [`f:spec`, `f:containers`, `k:{"name":"x"}`, `f:image`].
type FieldPath = Vec<String>;

/// Server-side apply (`PATCH` with `application/apply-patch+yaml`): creates or merges, honouring `fieldManager`,
/// `force` and `dryRun=All`.
pub(super) fn apply(
    shared: &SharedState,
    resource: &ResourcePath,
    name: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let content_type = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if content_type != "application/apply-patch+yaml" {
        return status_response(
            415,
            "UnsupportedMediaType",
            &format!("the fake only takes server-side apply, not {content_type}"),
        );
    }
    let Some(manager) = query.get("fieldManager").filter(|manager| !manager.is_empty()).cloned() else {
        return status_response(422, "Invalid", "fieldManager is required for apply requests");
    };
    let applied: Value = match serde_yaml_ng::from_slice(body) {
        Ok(value) => value,
        Err(error) => return status_response(400, "BadRequest", &format!("invalid apply body: {error}")),
    };
    if applied["metadata"]["name"].as_str() != Some(name) {
        return status_response(400, "BadRequest", "the name in the body does not match the URL");
    }
    // staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go: `force` is only a flag of apply patches.
    let force = query.get("force").is_some_and(|value| value == "true");
    let dry_run = is_dry_run(query);
    let custom = resource.kind.custom;
    let plural = resource.kind.plural;
    let mut locked = shared.0.lock().expect("lock");
    let key = resource.key(name);
    let existing = locked.objects.get(&key).cloned();
    let mut managers = existing.as_ref().map(managed_fields).unwrap_or_default();
    let applied_paths = leaf_paths(&applied, custom);

    // Conflicts: a field another manager owns, applied with another value
    // (structured-merge-diff merge/update.go; message: apiserver/pkg/endpoints/handlers/fieldmanager/internal/conflict.go).
    if let Some(live) = &existing {
        let mut conflicts: Vec<(String, FieldPath)> = Vec::new();
        for (other, entry) in &managers {
            if *other == manager {
                continue;
            }
            for path in applied_paths.intersection(&entry.paths) {
                if value_at(live, path) != value_at(&applied, path) {
                    conflicts.push((other.clone(), path.clone()));
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return conflict_response(&conflicts, &managers);
        }
        // With force, the applier takes the fields over.
        for (other, path) in &conflicts {
            if let Some(entry) = managers.get_mut(other) {
                entry.paths.remove(path);
            }
        }
    }

    let created = existing.is_none();
    let mut object = existing.clone().unwrap_or_else(|| json!({}));
    // Fields this manager applied before and no longer applies are removed, unless someone else owns them
    // (structured-merge-diff merge/update.go `prune`). Paths into lists are left to the list's replacement.
    if let Some(previous) = managers.get(&manager) {
        for path in previous.paths.difference(&applied_paths) {
            let owned_elsewhere = managers
                .iter()
                .any(|(other, entry)| *other != manager && entry.paths.contains(path));
            if !owned_elsewhere && path.iter().all(|element| element.starts_with("f:")) {
                remove_path(&mut object, path);
            }
        }
    }
    merge(&mut object, &applied);
    object["metadata"]
        .as_object_mut()
        .map(|metadata| metadata.remove("managedFields"));
    if created {
        // What the registry sets on create (apiserver/pkg/registry/rest/create.go `FillObjectMetaSystemFields`);
        // the Job's selector needs the uid before `store` would give one.
        let next = locked.resource_version + 1;
        object["metadata"]["uid"] = json!(format!("uid-{plural}-{name}-{next}"));
        object["metadata"]["creationTimestamp"] = json!(now_rfc3339());
        object["metadata"]["generation"] = json!(1);
    }
    apply_defaults(&locked, plural, &mut object, created);

    if let Some(existing) = &existing {
        // Server-owned metadata stays as it was.
        for field in ["uid", "resourceVersion", "creationTimestamp", "generation"] {
            object["metadata"][field] = existing["metadata"][field].clone();
        }
        // pkg/registry/batch/job/strategy.go `ValidateUpdate` → apis/batch/validation: the pod template of a Job
        // is immutable (1.24 allows only scheduling directives of a suspended Job to change).
        if plural == "jobs" && existing["spec"]["template"] != object["spec"]["template"] {
            return invalid_job_template(name, &object["spec"]["template"]);
        }
        if existing["spec"] != object["spec"] {
            let generation = existing["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            object["metadata"]["generation"] = json!(generation);
        }
    }

    // The applier's entry now holds exactly what it applied.
    let api_version = applied["apiVersion"].as_str().unwrap_or_default().to_string();
    let previous_time = managers.get(&manager).map(|entry| entry.time.clone());
    managers.insert(
        manager.clone(),
        Manager {
            operation: "Apply".to_string(),
            api_version,
            time: previous_time.unwrap_or_default(),
            paths: applied_paths,
        },
    );
    managers.retain(|_, entry| !entry.paths.is_empty());
    // An apply that changes nothing is not written: the same object, resource version and managed fields' times.
    if let Some(existing) = &existing {
        let mut unchanged = object.clone();
        unchanged["metadata"]["managedFields"] = render_managed_fields(&managers, None);
        let mut before = existing.clone();
        before["metadata"]["managedFields"] = render_managed_fields(&managed_fields(existing), None);
        if before == unchanged {
            return axum::Json(existing.clone()).into_response();
        }
    }
    object["metadata"]["managedFields"] = render_managed_fields(&managers, Some(&manager));
    if dry_run {
        return axum::Json(object).into_response();
    }
    let stored = store(&mut locked, plural, &resource.namespace, object);
    drop(locked);
    shared.1.notify_waiters();
    let code = if created { StatusCode::CREATED } else { StatusCode::OK };
    (code, axum::Json(stored)).into_response()
}

/// One manager's entry of `metadata.managedFields`.
#[derive(Debug, Clone)]
struct Manager {
    operation: String,
    api_version: String,
    time: String,
    paths: BTreeSet<FieldPath>,
}

/// The managers of a stored object, by name.
fn managed_fields(object: &Value) -> BTreeMap<String, Manager> {
    let mut managers = BTreeMap::new();
    for entry in object["metadata"]["managedFields"].as_array().into_iter().flatten() {
        let mut paths = BTreeSet::new();
        decode_fields(&entry["fieldsV1"], &mut Vec::new(), &mut paths);
        managers.insert(
            entry["manager"].as_str().unwrap_or_default().to_string(),
            Manager {
                operation: entry["operation"].as_str().unwrap_or("Apply").to_string(),
                api_version: entry["apiVersion"].as_str().unwrap_or_default().to_string(),
                time: entry["time"].as_str().unwrap_or_default().to_string(),
                paths,
            },
        );
    }
    managers
}

/// `metadata.managedFields` (apimachinery/pkg/apis/meta/v1/types.go `ManagedFieldsEntry`); `touched` gets the
/// current time, the others keep theirs. With `None`, times are left out (for comparing).
fn render_managed_fields(managers: &BTreeMap<String, Manager>, touched: Option<&str>) -> Value {
    let entries: Vec<Value> = managers
        .iter()
        .map(|(name, entry)| {
            let mut rendered = json!({
                "manager": name, "operation": entry.operation, "apiVersion": entry.api_version,
                "fieldsType": "FieldsV1", "fieldsV1": encode_fields(&entry.paths)
            });
            match touched {
                Some(touched) if touched == name => rendered["time"] = json!(now_rfc3339()),
                Some(_) => rendered["time"] = json!(entry.time),
                None => {}
            }
            rendered
        })
        .collect();
    json!(entries)
}

/// The leaf fields `object` sets (apiVersion, kind and metadata.name/namespace are identity, not owned fields).
fn leaf_paths(object: &Value, custom: bool) -> BTreeSet<FieldPath> {
    let mut paths = BTreeSet::new();
    let Some(map) = object.as_object() else {
        return paths;
    };
    for (field, value) in map {
        if field == "apiVersion" || field == "kind" || field == "status" {
            continue;
        }
        let mut path = vec![format!("f:{field}")];
        if field == "metadata" {
            for (meta_field, meta_value) in value.as_object().into_iter().flatten() {
                if meta_field == "name" || meta_field == "namespace" || meta_field == "managedFields" {
                    continue;
                }
                path.push(format!("f:{meta_field}"));
                collect_leaves(meta_value, &mut path, custom, &mut paths);
                path.pop();
            }
            continue;
        }
        collect_leaves(value, &mut path, custom, &mut paths);
    }
    paths
}

fn collect_leaves(value: &Value, path: &mut FieldPath, custom: bool, paths: &mut BTreeSet<FieldPath>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (field, inner) in map {
                path.push(format!("f:{field}"));
                collect_leaves(inner, path, custom, paths);
                path.pop();
            }
        }
        Value::Array(items) if !custom && !items.is_empty() => match list_keys(items) {
            Some(keys) => {
                for item in items {
                    path.push(element_key(item, &keys));
                    for (field, inner) in item.as_object().into_iter().flatten() {
                        path.push(format!("f:{field}"));
                        collect_leaves(inner, path, custom, paths);
                        path.pop();
                    }
                    path.pop();
                }
            }
            None => {
                paths.insert(path.clone());
            }
        },
        _ => {
            paths.insert(path.clone());
        }
    }
}

/// The merge key of a list of objects (k8s.io/api's `patchMergeKey` tags: containers, volumes, env by `name`;
/// container ports by `containerPort` and `protocol`; Service ports by `port` and `protocol`), or `None` for an
/// atomic list.
fn list_keys(items: &[Value]) -> Option<Vec<&'static str>> {
    let all_have = |field: &str| items.iter().all(|item| item.get(field).is_some());
    if !items.iter().all(Value::is_object) {
        return None;
    }
    if all_have("containerPort") {
        return Some(vec!["containerPort", "protocol"]);
    }
    if all_have("port") && !all_have("number") {
        return Some(vec!["port", "protocol"]);
    }
    if all_have("name") {
        return Some(vec!["name"]);
    }
    if all_have("mountPath") {
        return Some(vec!["mountPath"]);
    }
    None
}

/// `k:{"name":"x"}`: an element of a keyed list (`protocol` defaults to TCP, as the server keys it).
fn element_key(item: &Value, keys: &[&str]) -> String {
    let mut key = serde_json::Map::new();
    for field in keys {
        let value = match (item.get(*field), *field) {
            (Some(value), _) => value.clone(),
            (None, "protocol") => json!("TCP"),
            (None, _) => Value::Null,
        };
        key.insert(field.to_string(), value);
    }
    format!("k:{}", Value::Object(key))
}

/// The value at `path` in `object`, if any.
fn value_at<'a>(object: &'a Value, path: &FieldPath) -> Option<&'a Value> {
    let mut current = object;
    for element in path {
        current = match element.split_once(':') {
            Some(("f", field)) => current.get(field)?,
            Some(("k", key)) => {
                let key: Value = serde_json::from_str(key).ok()?;
                let key = key.as_object()?;
                current.as_array()?.iter().find(|item| {
                    key.iter().all(|(field, wanted)| {
                        item.get(field) == Some(wanted)
                            || (field == "protocol" && item.get(field).is_none() && wanted == "TCP")
                    })
                })?
            }
            _ => return None,
        };
    }
    Some(current)
}

/// Removes the map field at `path` (only `f:` elements), leaving its parents.
fn remove_path(object: &mut Value, path: &FieldPath) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = object;
    for element in parents {
        let Some(next) = current.get_mut(&element[2..]) else {
            return;
        };
        current = next;
    }
    if let Some(map) = current.as_object_mut() {
        map.remove(&last[2..]);
    }
}

/// Paths as `fieldsV1` (apimachinery/pkg/apis/meta/v1/types.go `FieldsV1`): nested maps, `{}` at each leaf, and
/// `.` for an element of a keyed list.
fn encode_fields(paths: &BTreeSet<FieldPath>) -> Value {
    let mut root = json!({});
    for path in paths {
        let mut node = &mut root;
        for element in path {
            if element.starts_with("k:") {
                node[element.as_str()]["."] = json!({});
            }
            if node.get(element.as_str()).is_none() {
                node[element.as_str()] = json!({});
            }
            node = &mut node[element.as_str()];
        }
    }
    root
}

fn decode_fields(node: &Value, path: &mut FieldPath, paths: &mut BTreeSet<FieldPath>) {
    let Some(map) = node.as_object() else {
        return;
    };
    let children: Vec<(&String, &Value)> = map.iter().filter(|(key, _)| key.as_str() != ".").collect();
    if children.is_empty() {
        if !path.is_empty() && !map.contains_key(".") {
            paths.insert(path.clone());
        }
        return;
    }
    for (key, child) in children {
        path.push(key.clone());
        decode_fields(child, path, paths);
        path.pop();
    }
}

/// A path as structured-merge-diff prints it: `.spec.template.spec.containers[name="x"].image`.
fn path_string(path: &FieldPath) -> String {
    let mut text = String::new();
    for element in path {
        match element.split_once(':') {
            Some(("f", field)) => {
                text.push('.');
                text.push_str(field);
            }
            Some(("k", key)) => {
                let key: Value = serde_json::from_str(key).unwrap_or_default();
                let parts: Vec<String> = key
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(field, value)| format!("{field}={value}"))
                    .collect();
                text.push_str(&format!("[{}]", parts.join(",")));
            }
            _ => text.push_str(element),
        }
    }
    text
}

/// The 409 the API server answers (apiserver/pkg/endpoints/handlers/fieldmanager/internal/conflict.go
/// `NewConflictError`, `printManager`: an Update manager is shown "using APIVERSION").
fn conflict_response(conflicts: &[(String, FieldPath)], managers: &BTreeMap<String, Manager>) -> Response {
    let shown = |name: &str| match managers.get(name) {
        Some(entry) if entry.operation == "Update" => format!("\"{name}\" using {}", entry.api_version),
        _ => format!("\"{name}\""),
    };
    let message = match conflicts {
        [(name, path)] => format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            shown(name),
            path_string(path)
        ),
        _ => {
            let mut by_manager: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for (name, path) in conflicts {
                by_manager.entry(name).or_default().push(path_string(path));
            }
            let mut lines = Vec::new();
            for (name, paths) in by_manager {
                lines.push(format!("conflicts with {}:", shown(name)));
                lines.extend(paths.into_iter().map(|path| format!("- {path}")));
            }
            format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
        }
    };
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(name, path)| {
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", shown(name)),
                   "field": path_string(path)})
        })
        .collect();
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "Conflict", "details": {"causes": causes}, "code": 409
    });
    (StatusCode::CONFLICT, axum::Json(body)).into_response()
}

/// The 422 for a changed Job pod template (apis/batch/validation `ValidateJobSpecUpdate` →
/// `apimachineryvalidation.ValidateImmutableField`). The real message prints the Go struct; this prints JSON.
fn invalid_job_template(name: &str, template: &Value) -> Response {
    let message =
        format!("Job.batch \"{name}\" is invalid: spec.template: Invalid value: {template}: field is immutable");
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
        "reason": "Invalid",
        "details": {"name": name, "group": "batch", "kind": "Job",
                    "causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: field is immutable", "field": "spec.template"}]},
        "code": 422
    });
    (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response()
}

/// Deep merge of `patch` into `target`: objects key by key, everything else (lists included) replaced.
pub(super) fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// Sets `object[field]` to `value` when it is absent or null.
fn default(object: &mut Value, field: &str, value: Value) {
    if object.get(field).is_none_or(Value::is_null) {
        object[field] = value;
    }
}

/// What the server does to an object created by other means than an apply (a create): its uid, then defaults.
pub(super) fn default_created(shared: &super::Shared, plural: &str, object: &mut Value) {
    if object["metadata"]["uid"].is_null() {
        let next = shared.resource_version + 1;
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
        object["metadata"]["uid"] = json!(format!("uid-{plural}-{name}-{next}"));
        object["metadata"]["creationTimestamp"] = json!(now_rfc3339());
        object["metadata"]["generation"] = json!(1);
    }
    apply_defaults(shared, plural, object, true);
}

/// The API's defaults for the kinds the lab applies, as the 1.24 API server sets them on create and update.
fn apply_defaults(shared: &super::Shared, plural: &str, object: &mut Value, created: bool) {
    match plural {
        "deployments" => {
            // kubernetes v1.24 pkg/apis/apps/v1/defaults.go `SetDefaults_Deployment`.
            let spec = &mut object["spec"];
            default(spec, "replicas", json!(1));
            default(spec, "strategy", json!({"type": "RollingUpdate"}));
            if spec["strategy"]["type"] == "RollingUpdate" {
                let rolling = &mut spec["strategy"]["rollingUpdate"];
                default(rolling, "maxUnavailable", json!("25%"));
                default(rolling, "maxSurge", json!("25%"));
            }
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            pod_template_defaults(&mut spec["template"]);
        }
        "jobs" => {
            // pkg/apis/batch/v1/defaults.go `SetDefaults_Job`.
            let uid = object["metadata"]["uid"].clone();
            let name = object["metadata"]["name"].clone();
            let spec = &mut object["spec"];
            default(spec, "completions", json!(1));
            default(spec, "parallelism", json!(1));
            default(spec, "backoffLimit", json!(6));
            default(spec, "completionMode", json!("NonIndexed"));
            default(spec, "suspend", json!(false));
            if created && spec["manualSelector"] != true {
                // pkg/registry/batch/job/strategy.go `generateSelector`: 1.24 labels `controller-uid` and `job-name`.
                spec["selector"] = json!({"matchLabels": {"controller-uid": uid}});
                let labels = &mut spec["template"]["metadata"]["labels"];
                default_map(labels);
                labels["controller-uid"] = uid;
                labels["job-name"] = name;
            }
            pod_template_defaults(&mut spec["template"]);
        }
        "services" => {
            // pkg/apis/core/v1/defaults.go `SetDefaults_Service`; the ClusterIP comes from the allocator
            // (pkg/registry/core/service/storage/alloc.go), IP families from the single-stack cluster's primary.
            let spec = &mut object["spec"];
            default(spec, "type", json!("ClusterIP"));
            default(spec, "sessionAffinity", json!("None"));
            if spec["type"] != "ExternalName" {
                if created && spec.get("clusterIP").is_none_or(Value::is_null) {
                    let taken = shared.objects.keys().filter(|(kind, _, _)| kind == "services").count();
                    let ip = format!("10.96.{}.{}", (taken + 10) / 250, (taken + 10) % 250 + 1);
                    spec["clusterIP"] = json!(ip);
                    spec["clusterIPs"] = json!([ip]);
                }
                default(spec, "ipFamilies", json!(["IPv4"]));
                default(spec, "ipFamilyPolicy", json!("SingleStack"));
                default(spec, "internalTrafficPolicy", json!("Cluster"));
            }
            if spec["type"] == "LoadBalancer" || spec["type"] == "NodePort" {
                default(spec, "externalTrafficPolicy", json!("Cluster"));
            }
            if spec["type"] == "LoadBalancer" {
                default(spec, "allocateLoadBalancerNodePorts", json!(true));
            }
            for port in spec["ports"].as_array_mut().into_iter().flatten() {
                default(port, "protocol", json!("TCP"));
                let number = port["port"].clone();
                default(port, "targetPort", number);
            }
        }
        "namespaces" => {
            // pkg/apis/core/v1/defaults.go `SetDefaults_Namespace` (1.22+: the name label);
            // pkg/registry/core/namespace/strategy.go `PrepareForCreate` (the kubernetes finalizer).
            let name = object["metadata"]["name"].clone();
            default_map(&mut object["metadata"]["labels"]);
            object["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            default(&mut object["spec"], "finalizers", json!(["kubernetes"]));
        }
        _ => {}
    }
}

fn default_map(value: &mut Value) {
    if !value.is_object() {
        *value = json!({});
    }
}

/// A pod template's defaults (pkg/apis/core/v1/defaults.go `SetDefaults_PodSpec`, `SetDefaults_Container`,
/// `SetDefaults_ContainerPort`, `SetDefaults_Probe`, `SetDefaults_HTTPGetAction`; the empty `securityContext`
/// and `resources`, and `metadata.creationTimestamp: null`, are how the typed object serializes).
fn pod_template_defaults(template: &mut Value) {
    default_map(&mut template["metadata"]);
    if template["metadata"].get("creationTimestamp").is_none() {
        template["metadata"]["creationTimestamp"] = Value::Null;
    }
    let spec = &mut template["spec"];
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "securityContext", json!({}));
    for list in ["initContainers", "containers"] {
        for container in spec[list].as_array_mut().into_iter().flatten() {
            container_defaults(container);
        }
    }
    for volume in spec["volumes"].as_array_mut().into_iter().flatten() {
        if let Some(host_path) = volume.get_mut("hostPath") {
            default(host_path, "type", json!(""));
        }
        if let Some(config_map) = volume.get_mut("configMap") {
            // `SetDefaults_ConfigMapVolumeSource`: 0644.
            default(config_map, "defaultMode", json!(420));
        }
    }
}

fn container_defaults(container: &mut Value) {
    default(container, "terminationMessagePath", json!("/dev/termination-log"));
    default(container, "terminationMessagePolicy", json!("File"));
    // `SetDefaults_Container`: Always for the `latest` tag or none, IfNotPresent otherwise (a digest counts as a tag).
    let image = container["image"].as_str().unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or(image);
    let tag = match (last.contains('@'), last.split_once(':')) {
        (true, _) => Some("digest"),
        (false, Some((_, tag))) => Some(tag),
        (false, None) => None,
    };
    let policy = match tag {
        None | Some("latest") => "Always",
        Some(_) => "IfNotPresent",
    };
    default(container, "imagePullPolicy", json!(policy));
    default(container, "resources", json!({}));
    for port in container["ports"].as_array_mut().into_iter().flatten() {
        default(port, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = container.get_mut(probe).filter(|probe| probe.is_object()) {
            default(probe, "timeoutSeconds", json!(1));
            default(probe, "periodSeconds", json!(10));
            default(probe, "successThreshold", json!(1));
            default(probe, "failureThreshold", json!(3));
            if let Some(http) = probe.get_mut("httpGet") {
                default(http, "scheme", json!("HTTP"));
            }
        }
    }
}

/// Now as RFC 3339 in UTC with seconds, as `metav1.Time` serializes.
fn now_rfc3339() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or_default();
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_paths_round_trip_through_fields_v1() {
        let object = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "labels": {"app": "x"}},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}]}}}});
        let paths = leaf_paths(&object, false);
        let mut decoded = BTreeSet::new();
        decode_fields(&encode_fields(&paths), &mut Vec::new(), &mut decoded);
        assert_eq!(decoded, paths);
        let image: FieldPath = [
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"c\"}",
            "f:image",
        ]
        .map(String::from)
        .to_vec();
        assert!(paths.contains(&image));
        assert_eq!(value_at(&object, &image), Some(&json!("i")));
        assert_eq!(path_string(&image), ".spec.template.spec.containers[name=\"c\"].image");
    }

    #[test]
    fn the_date_is_civil() {
        assert!(now_rfc3339().starts_with("20"));
        assert_eq!(now_rfc3339().len(), "2026-01-01T00:00:00Z".len());
    }
}
