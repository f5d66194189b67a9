//! The fake's controllers and kubelet: what a 1.24 cluster does after a write, over (shortened) time.
//!
//! Deployments roll out the way the Deployment and ReplicaSet controllers do with the default strategy (surge one
//! new pod, remove the old one once the new one is ready); Jobs run a pod and finish when it does; pods start a
//! moment after they are created and, when deleted, stay Terminating for their grace period; a deleted namespace
//! stays Terminating until its contents are gone. Istio's sidecar injector adds `istio-proxy` to new pods in a
//! labelled namespace. Delays are [`Timing`] (tens of milliseconds by default); a driver task runs what is due.

use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Key, ResourcePath, Scenario, Shared, SharedState, WatchEvent, is_dry_run, not_found, status_response};

/// How long the fake cluster takes for what a real one does over seconds; small, so tests stay fast. Tests wait on
/// the resulting events, never on these durations.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// From a pod's creation until it runs and is ready (image pull, start, readiness probe).
    pub pod_start: Duration,
    /// How long a deleted pod stays Terminating (its grace period; 30 s by default on a real cluster).
    pub pod_grace: Duration,
    /// How long a Job's container runs before it exits.
    pub job_run: Duration,
    /// How often a watch that asked for bookmarks gets one while nothing else happens.
    pub bookmark_every: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            pod_start: Duration::from_millis(20),
            pod_grace: Duration::from_millis(30),
            job_run: Duration::from_millis(20),
            bookmark_every: Duration::from_millis(200),
        }
    }
}

/// Something the cluster does later.
#[derive(Debug, Clone)]
pub(super) enum Action {
    /// The kubelet started the pod (`uid`): running and ready.
    StartPod {
        namespace: String,
        name: String,
        uid: Value,
    },
    /// The pod's grace period is over: it disappears.
    RemovePod {
        namespace: String,
        name: String,
        uid: Value,
    },
    /// A Job pod's own containers exit.
    ExitJobContainers {
        namespace: String,
        name: String,
        uid: Value,
    },
}

/// An [`Action`] and when it is due.
#[derive(Debug, Clone)]
pub(super) struct Timer {
    due: Instant,
    action: Action,
}

/// Runs the timers that are due, for as long as the server runs.
pub(super) fn spawn_driver(shared: SharedState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let notified = shared.1.notified();
            let (ran, next_due) = {
                let mut locked = shared.0.lock().expect("lock");
                run_due(&mut locked, Instant::now())
            };
            if ran {
                shared.1.notify_waiters();
                continue;
            }
            match next_due {
                Some(due) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(due.into()) => {}
                        _ = notified => {}
                    }
                }
                None => notified.await,
            }
        }
    })
}

/// Runs every timer due by `now`; returns whether any ran and when the next one is due.
fn run_due(shared: &mut Shared, now: Instant) -> (bool, Option<Instant>) {
    let (due, later): (Vec<Timer>, Vec<Timer>) = std::mem::take(&mut shared.timers)
        .into_iter()
        .partition(|timer| timer.due <= now);
    shared.timers = later;
    let ran = !due.is_empty();
    for timer in due {
        run(shared, timer.action);
    }
    let next_due = shared.timers.iter().map(|timer| timer.due).min();
    (ran, next_due)
}

fn schedule(shared: &mut Shared, after: Duration, action: Action) {
    shared.timers.push(Timer {
        due: Instant::now() + after,
        action,
    });
}

fn run(shared: &mut Shared, action: Action) {
    match action {
        Action::StartPod { namespace, name, uid } => {
            if live_pod_with_uid(shared, &namespace, &name, &uid) {
                start_pod(shared, &namespace, &name);
            }
        }
        Action::RemovePod { namespace, name, uid } => {
            let key = pod_key(&namespace, &name);
            if shared
                .objects
                .get(&key)
                .is_some_and(|pod| pod["metadata"]["uid"] == uid)
            {
                remove(shared, &key);
            }
        }
        Action::ExitJobContainers { namespace, name, uid } => {
            if live_pod_with_uid(shared, &namespace, &name, &uid) {
                exit_job_containers(shared, &namespace, &name);
            }
        }
    }
}

fn pod_key(namespace: &str, name: &str) -> Key {
    ("pods".to_string(), namespace.to_string(), name.to_string())
}

fn live_pod_with_uid(shared: &Shared, namespace: &str, name: &str, uid: &Value) -> bool {
    shared
        .objects
        .get(&pod_key(namespace, name))
        .is_some_and(|pod| &pod["metadata"]["uid"] == uid && !terminating(pod))
}

/// True for an object being deleted (`metadata.deletionTimestamp` set).
pub(super) fn terminating(object: &Value) -> bool {
    !object["metadata"]["deletionTimestamp"].is_null()
}

/// Stores `object` as a client's write (fresh server metadata, a watch event), then runs the controllers that
/// react to it. Returns the stored object.
pub(super) fn store(shared: &mut Shared, plural: &str, namespace: &str, object: Value) -> Value {
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let stored = put_object(shared, plural, namespace, object);
    match plural {
        "deployments" => reconcile_deployment(shared, namespace, &name),
        "jobs" => reconcile_job(shared, namespace, &name),
        _ => {}
    }
    // What the controllers wrote since (e.g. a status) is in the store; the write itself answers with `stored`.
    stored
}

/// Stores `object` without running controllers: fresh resource version (uid and creation time when new), the
/// watch event. Returns the stored object.
fn put_object(shared: &mut Shared, plural: &str, namespace: &str, mut object: Value) -> Value {
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let key = (plural.to_string(), namespace.to_string(), name.clone());
    let existed = shared.objects.contains_key(&key);
    shared.resource_version += 1;
    let rv = shared.resource_version;
    object["metadata"]["resourceVersion"] = json!(rv.to_string());
    if object["metadata"]["uid"].is_null() {
        object["metadata"]["uid"] = json!(format!("uid-{plural}-{name}-{rv}"));
        object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        object["metadata"]["generation"] = json!(1);
    }
    if plural == "namespaces" && object["status"].is_null() {
        object["status"] = json!({"phase": "Active"});
    }
    shared.objects.insert(key, object.clone());
    shared.events.push(WatchEvent {
        resource_version: rv,
        plural: plural.to_string(),
        namespace: namespace.to_string(),
        event_type: if existed { "MODIFIED" } else { "ADDED" },
        object: object.clone(),
    });
    object
}

/// Removes the object at `key` for good (a DELETED watch event); a namespace being deleted goes once it is empty.
pub(super) fn remove(shared: &mut Shared, key: &Key) {
    let Some(object) = shared.objects.remove(key) else {
        return;
    };
    shared.resource_version += 1;
    let rv = shared.resource_version;
    shared.events.push(WatchEvent {
        resource_version: rv,
        plural: key.0.clone(),
        namespace: key.1.clone(),
        event_type: "DELETED",
        object,
    });
    if !key.1.is_empty() {
        finish_namespace_if_empty(shared, &key.1);
    }
}

/// `DELETE` of one object, as the API server and the controllers carry it out: a pod goes Terminating for its
/// grace period (kubernetes v1.24 pkg/registry/core/pod/strategy.go `CheckGracefulDelete`); a namespace goes
/// Terminating until the namespace controller has deleted everything in it (pkg/registry/core/namespace/storage
/// `Delete` sets the deletionTimestamp while the `kubernetes` finalizer is there; pkg/controller/namespace/deletion
/// `namespaced_resources_deleter.go` empties it, then the finalizer goes and so does the namespace); a Deployment's
/// or Job's pods are garbage-collected (Terminating in turn); anything else goes at once.
pub(super) fn delete(
    shared: &SharedState,
    resource: &ResourcePath,
    name: &str,
    query: &std::collections::HashMap<String, String>,
) -> Response {
    let dry_run = is_dry_run(query);
    let mut locked = shared.0.lock().expect("lock");
    let key = resource.key(name);
    let Some(object) = locked.objects.get(&key).cloned() else {
        return not_found(resource, name);
    };
    if dry_run {
        return axum::Json(object).into_response();
    }
    let answer = match key.0.as_str() {
        "namespaces" => delete_namespace(&mut locked, name),
        "pods" => {
            let answer = terminate_pod(&mut locked, &key);
            if let Some(owner) = owner_of(&object) {
                reconcile_owner(&mut locked, &key.1, &owner);
            }
            answer
        }
        "deployments" | "jobs" => {
            remove(&mut locked, &key);
            let owner = (key.0.clone(), name.to_string());
            for pod in owned_pods(&locked, &key.1, &owner) {
                terminate_pod(&mut locked, &pod);
            }
            object
        }
        _ => {
            remove(&mut locked, &key);
            object
        }
    };
    drop(locked);
    shared.1.notify_waiters();
    axum::Json(answer).into_response()
}

/// Refuses to create an object in a namespace being deleted, as the NamespaceLifecycle admission plugin does
/// (kubernetes v1.24 plugin/pkg/admission/namespace/lifecycle/admission.go: 403 Forbidden "unable to create new
/// content in namespace … because it is being terminated"). `None` lets the request through.
pub(super) fn refuse_in_terminating_namespace(
    shared: &Shared,
    resource: &ResourcePath,
    name: &str,
) -> Option<Response> {
    if resource.namespace.is_empty() || shared.objects.contains_key(&resource.key(name)) {
        return None;
    }
    let namespace = shared
        .objects
        .get(&("namespaces".to_string(), String::new(), resource.namespace.clone()))?;
    terminating(namespace).then(|| {
        let message = format!(
            "{} \"{name}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
            resource.kind.plural, resource.namespace
        );
        status_response(403, "Forbidden", &message)
    })
}

fn delete_namespace(shared: &mut Shared, name: &str) -> Value {
    let key = ("namespaces".to_string(), String::new(), name.to_string());
    let Some(mut namespace) = shared.objects.get(&key).cloned() else {
        return Value::Null;
    };
    if !terminating(&namespace) {
        namespace["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:10:00Z");
        namespace["spec"]["finalizers"] = json!(["kubernetes"]);
        namespace["status"]["phase"] = json!("Terminating");
        namespace = put_object(shared, "namespaces", "", namespace);
    }
    // The namespace controller deletes everything in it: pods with their grace period, the rest at once.
    let inside: Vec<Key> = shared
        .objects
        .keys()
        .filter(|(_, object_namespace, _)| object_namespace == name)
        .cloned()
        .collect();
    for key in inside {
        match key.0.as_str() {
            "pods" => {
                terminate_pod(shared, &key);
            }
            _ => remove(shared, &key),
        }
    }
    finish_namespace_if_empty(shared, name);
    namespace
}

fn finish_namespace_if_empty(shared: &mut Shared, name: &str) {
    let key = ("namespaces".to_string(), String::new(), name.to_string());
    let being_deleted = shared.objects.get(&key).is_some_and(terminating);
    let empty = !shared.objects.keys().any(|(_, namespace, _)| namespace == name);
    if being_deleted && empty {
        remove(shared, &key);
    }
}

/// Marks the pod at `key` Terminating and removes it after the grace period. Returns the pod as the DELETE answers.
fn terminate_pod(shared: &mut Shared, key: &Key) -> Value {
    let Some(mut pod) = shared.objects.get(key).cloned() else {
        return Value::Null;
    };
    if terminating(&pod) {
        return pod;
    }
    pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:10:00Z");
    pod["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    let pod = put_object(shared, "pods", &key.1, pod);
    let grace = shared.timing.pod_grace;
    schedule(
        shared,
        grace,
        Action::RemovePod {
            namespace: key.1.clone(),
            name: key.2.clone(),
            uid: pod["metadata"]["uid"].clone(),
        },
    );
    pod
}

/// The owner of a pod the fake's controllers made: (`deployments` or `jobs`, name).
fn owner_of(pod: &Value) -> Option<(String, String)> {
    let owner = pod["metadata"]["annotations"]["fake/owner"].as_str()?;
    let (plural, name) = owner.split_once('/')?;
    Some((plural.to_string(), name.to_string()))
}

fn reconcile_owner(shared: &mut Shared, namespace: &str, owner: &(String, String)) {
    match owner.0.as_str() {
        "deployments" => reconcile_deployment(shared, namespace, &owner.1),
        "jobs" => reconcile_job(shared, namespace, &owner.1),
        _ => {}
    }
}

/// The keys of the pods (Terminating ones too) that `owner` (plural, name) made in `namespace`.
fn owned_pods(shared: &Shared, namespace: &str, owner: &(String, String)) -> Vec<Key> {
    shared
        .objects
        .iter()
        .filter(|((plural, pod_namespace, _), pod)| {
            plural == "pods" && pod_namespace == namespace && owner_of(pod).as_ref() == Some(owner)
        })
        .map(|(key, _)| key.clone())
        .collect()
}

/// A short, stable hash of a pod template, like the ReplicaSet's `pod-template-hash` label.
fn template_hash(template: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    template.to_string().hash(&mut hasher);
    format!("{:x}", hasher.finish() & 0xff_ffff)
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|conditions| conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// The Deployment and ReplicaSet controllers with the default RollingUpdate strategy (maxSurge 25% rounds up to
/// one pod, maxUnavailable 25% down to none; kubernetes v1.24 pkg/controller/deployment/rolling.go): pods of the
/// current template are created up to `spec.replicas`; the old ones are deleted (Terminating) once the new ones
/// are ready; the status counts only pods that are not Terminating (pkg/controller/replicaset
/// `FilterActivePods`).
fn reconcile_deployment(shared: &mut Shared, namespace: &str, name: &str) {
    let key = ("deployments".to_string(), namespace.to_string(), name.to_string());
    let Some(deployment) = shared.objects.get(&key).cloned() else {
        return;
    };
    let owner = ("deployments".to_string(), name.to_string());
    let wanted = deployment["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
    let hash = template_hash(&deployment["spec"]["template"]);
    let live = |shared: &Shared| -> Vec<(Key, Value)> {
        owned_pods(shared, namespace, &owner)
            .into_iter()
            .filter_map(|key| shared.objects.get(&key).cloned().map(|pod| (key, pod)))
            .filter(|(_, pod)| !terminating(pod))
            .collect()
    };
    let is_new = |pod: &Value| pod["metadata"]["labels"]["pod-template-hash"] == json!(hash);
    let current = live(shared);
    let new_count = current.iter().filter(|(_, pod)| is_new(pod)).count();
    for _ in new_count..wanted {
        create_pod(shared, namespace, &owner, &deployment["spec"]["template"], &hash);
    }
    // Surplus pods of the current template go first (scaled down).
    for (key, _) in current.iter().filter(|(_, pod)| is_new(pod)).skip(wanted) {
        terminate_pod(shared, key);
    }
    let new_ready = live(shared).iter().filter(|(_, pod)| is_new(pod) && ready(pod)).count();
    if new_ready >= wanted {
        for (key, pod) in live(shared) {
            if !is_new(&pod) {
                terminate_pod(shared, &key);
            }
        }
    }
    // The status, from the pods that are not Terminating.
    let pods = live(shared);
    let updated = pods.iter().filter(|(_, pod)| is_new(pod)).count();
    let ready_count = pods.iter().filter(|(_, pod)| ready(pod)).count();
    let available = ready_count >= wanted;
    let complete = available && updated == wanted && pods.len() == wanted;
    let mut status = json!({
        "observedGeneration": deployment["metadata"]["generation"],
        "replicas": pods.len(), "updatedReplicas": updated,
        "conditions": [
            {"type": "Available", "status": if available { "True" } else { "False" },
             "reason": if available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" }},
            {"type": "Progressing", "status": "True",
             "reason": if complete { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" }}
        ]
    });
    if ready_count > 0 {
        status["readyReplicas"] = json!(ready_count);
        status["availableReplicas"] = json!(ready_count);
    }
    if ready_count < wanted {
        status["unavailableReplicas"] = json!(wanted - ready_count);
    }
    if deployment["status"] != status {
        let mut updated_deployment = deployment;
        updated_deployment["status"] = status;
        put_object(shared, "deployments", namespace, updated_deployment);
    }
}

/// The Job controller (kubernetes v1.24 pkg/controller/job/job_controller.go): one pod from `spec.template`
/// (labelled `job-name` and `controller-uid`) at a time; `Complete` once one succeeded, `Failed`
/// (`BackoffLimitExceeded`) once more pods failed than `spec.backoffLimit` (default 6), else a new pod after a
/// failure.
fn reconcile_job(shared: &mut Shared, namespace: &str, name: &str) {
    let key = ("jobs".to_string(), namespace.to_string(), name.to_string());
    let Some(job) = shared.objects.get(&key).cloned() else {
        return;
    };
    let finished = job["status"]["conditions"]
        .as_array()
        .is_some_and(|conditions| conditions.iter().any(|c| c["status"] == "True"));
    if finished {
        return;
    }
    let owner = ("jobs".to_string(), name.to_string());
    let pods: Vec<Value> = owned_pods(shared, namespace, &owner)
        .into_iter()
        .filter_map(|key| shared.objects.get(&key).cloned())
        .collect();
    let phase_count = |phase: &str| pods.iter().filter(|pod| pod["status"]["phase"] == phase).count();
    let (succeeded, failed) = (phase_count("Succeeded"), phase_count("Failed"));
    let active = pods
        .iter()
        .filter(|pod| !terminating(pod) && !matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        .count();
    let backoff_limit = job["spec"]["backoffLimit"].as_u64().unwrap_or(6) as usize;
    let mut status = json!({"startTime": "2026-01-01T00:00:00Z"});
    if succeeded >= 1 {
        status["succeeded"] = json!(succeeded);
        status["completionTime"] = json!("2026-01-01T00:01:00Z");
        status["conditions"] = json!([{"type": "Complete", "status": "True"}]);
    } else if failed > backoff_limit {
        status["conditions"] = json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                        "message": "Job has reached the specified backoff limit"}]);
    } else if active == 0 {
        let hash = template_hash(&job["spec"]["template"]);
        create_pod(shared, namespace, &owner, &job["spec"]["template"], &hash);
        status["active"] = json!(1);
    } else {
        status["active"] = json!(active);
    }
    if failed > 0 {
        status["failed"] = json!(failed);
    }
    if job["status"] != status {
        let mut updated = job;
        updated["status"] = status;
        put_object(shared, "jobs", namespace, updated);
    }
}

/// True when Istio's sidecar injector adds `istio-proxy` to a new pod of `template` in `namespace`: Istio is
/// installed (its webhook exists), the namespace is labelled `istio-injection=enabled` (the webhook's
/// namespaceSelector, istio 1.12.7 manifests/charts/istio-control/istio-discovery/templates/mutatingwebhook.yaml),
/// and the pod does not opt out: the label `sidecar.istio.io/inject: "false"` (that webhook's objectSelector) or
/// the annotation `sidecar.istio.io/inject: "false"` (pkg/kube/inject/inject.go `injectRequired`, which reads the
/// annotation in 1.12).
fn injects_sidecar(shared: &Shared, namespace: &str, template: &Value) -> bool {
    let istio_installed = shared.objects.contains_key(&(
        "deployments".to_string(),
        "istio-system".to_string(),
        "istiod".to_string(),
    ));
    let labelled = shared
        .objects
        .get(&("namespaces".to_string(), String::new(), namespace.to_string()))
        .is_some_and(|ns| ns["metadata"]["labels"]["istio-injection"] == "enabled");
    let opted_out = |field: &str| {
        let value = template["metadata"][field]["sidecar.istio.io/inject"].as_str();
        value.is_some_and(|value| matches!(value.to_lowercase().as_str(), "false" | "n" | "no" | "off"))
    };
    istio_installed && labelled && !opted_out("labels") && !opted_out("annotations")
}

/// Creates one pod of `template` for `owner`, as its controller and the admission chain (sidecar injection) would,
/// in the state its scenario gives it; a pod that will start is started after [`Timing::pod_start`].
fn create_pod(shared: &mut Shared, namespace: &str, owner: &(String, String), template: &Value, hash: &str) {
    let (owner_plural, owner_name) = owner;
    let scenario = shared.scenarios.get(owner_name).copied().unwrap_or(Scenario::Available);
    let mut containers: Vec<Value> = template["spec"]["containers"].as_array().cloned().unwrap_or_default();
    let mut annotations = template["metadata"]["annotations"].clone();
    if !annotations.is_object() {
        annotations = json!({});
    }
    if injects_sidecar(shared, namespace, template) {
        containers.push(json!({"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.12.7"}));
        annotations["sidecar.istio.io/status"] = json!("{\"containers\":[\"istio-proxy\"]}");
    }
    let main = containers
        .first()
        .and_then(|c| c["name"].as_str())
        .unwrap_or("main")
        .to_string();
    let (state, log, event) = scenario_state(scenario);
    // A pod that was never scheduled has no container statuses.
    let scheduled = scenario != Scenario::Unschedulable;
    let statuses: Vec<Value> = containers
        .iter()
        .filter(|_| scheduled)
        .map(|container| {
            let container_name = container["name"].as_str().unwrap_or_default();
            let container_state = if container_name == main {
                state.clone()
            } else {
                json!({"waiting": {"reason": "PodInitializing"}})
            };
            json!({"name": container_name, "ready": false, "restartCount": 0,
                   "image": container["image"], "imageID": "", "state": container_state})
        })
        .collect();
    shared.resource_version += 1;
    let suffix = shared.resource_version;
    let pod_name = match owner_plural.as_str() {
        "jobs" => format!("{owner_name}-x{suffix}"),
        _ => format!("{owner_name}-{hash}-x{suffix}"),
    };
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    match owner_plural.as_str() {
        "jobs" => {
            labels["job-name"] = json!(owner_name);
            labels["controller-uid"] = json!(format!("uid-jobs-{owner_name}"));
        }
        _ => labels["pod-template-hash"] = json!(hash),
    }
    annotations["fake/log"] = json!(log);
    annotations["fake/owner"] = json!(format!("{owner_plural}/{owner_name}"));
    let (owner_kind, owner_reference_name) = match owner_plural.as_str() {
        "jobs" => ("Job", owner_name.clone()),
        _ => ("ReplicaSet", format!("{owner_name}-{hash}")),
    };
    let mut spec = template["spec"].clone();
    spec["containers"] = json!(containers);
    spec["nodeName"] = json!("minikube");
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod_name, "namespace": namespace, "labels": labels, "annotations": annotations,
                     "ownerReferences": [{"apiVersion": if owner_kind == "Job" { "batch/v1" } else { "apps/v1" },
                                          "kind": owner_kind, "name": owner_reference_name, "controller": true,
                                          "uid": format!("uid-{owner_plural}-{owner_name}")}]},
        "spec": spec,
        "status": {"phase": "Pending",
                   "conditions": [{"type": "Ready", "status": "False"}],
                   "containerStatuses": statuses}
    });
    let pod = put_object(shared, "pods", namespace, pod);
    if let Some((reason, message)) = event {
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{pod_name}.17a"), "namespace": namespace},
            "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": namespace},
            "reason": reason, "message": message, "type": "Warning", "count": 3,
            "lastTimestamp": "2026-01-01T00:00:30Z"
        });
        put_object(shared, "events", namespace, event);
    }
    let starts = matches!(scenario, Scenario::Available | Scenario::Failing);
    if starts {
        let after = shared.timing.pod_start;
        schedule(
            shared,
            after,
            Action::StartPod {
                namespace: namespace.to_string(),
                name: pod_name,
                uid: pod["metadata"]["uid"].clone(),
            },
        );
    }
}

/// A new pod's main container state, log and warning event under `scenario`.
fn scenario_state(scenario: Scenario) -> (Value, String, Option<(&'static str, &'static str)>) {
    match scenario {
        Scenario::Available | Scenario::AvailableOnWatch | Scenario::Failing => (
            json!({"waiting": {"reason": "ContainerCreating"}}),
            String::new(),
            None,
        ),
        Scenario::ImagePullBackOff => (
            json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"tensorflow/serving:2.5.1\""}}),
            String::new(),
            Some(("Failed", "Failed to pull image \"tensorflow/serving:2.5.1\": rpc error: code = Unknown desc = Error response from daemon: Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host")),
        ),
        Scenario::Unschedulable => (
            Value::Null,
            String::new(),
            Some(("FailedScheduling", "0/1 nodes are available: 1 Insufficient memory.")),
        ),
        Scenario::WrongArchitecture => (
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s restarting failed container"}}),
            "exec /usr/bin/tf_serving_entrypoint.sh: exec format error\n".to_string(),
            Some(("BackOff", "Back-off restarting failed container")),
        ),
        Scenario::CrashLoop => (
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}}),
            "2026-01-01 00:00:01.000000: I tensorflow_serving/model_servers/server_core.cc:465] Adding/updating models.\n2026-01-01 00:00:01.000001: E tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc:365] FileSystemStoragePathSource encountered a filesystem access error: Could not find base path /models/resnet50 for servable image_classifier\n".to_string(),
            Some(("BackOff", "Back-off restarting failed container")),
        ),
    }
}

/// The kubelet started every container of the pod: Running and ready. A Job's containers then run for
/// [`Timing::job_run`]; a Deployment's pod lets its rollout go on.
fn start_pod(shared: &mut Shared, namespace: &str, name: &str) {
    let key = pod_key(namespace, name);
    let Some(mut pod) = shared.objects.get(&key).cloned() else {
        return;
    };
    let statuses: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|container| {
            json!({"name": container["name"], "ready": true, "restartCount": 0, "image": container["image"],
                   "imageID": "", "started": true, "state": {"running": {"startedAt": "2026-01-01T00:00:05Z"}}})
        })
        .collect();
    pod["status"] = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                           "containerStatuses": statuses, "podIP": "10.244.0.17"});
    let pod = put_object(shared, "pods", namespace, pod);
    match owner_of(&pod) {
        Some(owner) if owner.0 == "jobs" => {
            let after = shared.timing.job_run;
            schedule(
                shared,
                after,
                Action::ExitJobContainers {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    uid: pod["metadata"]["uid"].clone(),
                },
            );
        }
        Some(owner) => reconcile_owner(shared, namespace, &owner),
        None => {}
    }
}

/// A Job pod's own containers exit (code 0, or 1 under [`Scenario::Failing`]). An injected `istio-proxy` does not:
/// it keeps running, so the pod stays Running (the kubelet's phase is Running while any container runs, kubernetes
/// v1.24 pkg/kubelet/kubelet_pods.go `getPhase`) and its Job never completes.
fn exit_job_containers(shared: &mut Shared, namespace: &str, name: &str) {
    let key = pod_key(namespace, name);
    let Some(mut pod) = shared.objects.get(&key).cloned() else {
        return;
    };
    let Some(owner) = owner_of(&pod) else {
        return;
    };
    let failing = shared.scenarios.get(&owner.1) == Some(&Scenario::Failing);
    let exit_code = if failing { 1 } else { 0 };
    let mut still_running = false;
    let statuses: Vec<Value> = pod["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut status| {
            if status["name"] == "istio-proxy" {
                still_running = true;
                return status;
            }
            status["ready"] = json!(false);
            status["state"] = json!({"terminated": {"exitCode": exit_code,
                "reason": if failing { "Error" } else { "Completed" },
                "startedAt": "2026-01-01T00:00:05Z", "finishedAt": "2026-01-01T00:00:50Z"}});
            status
        })
        .collect();
    pod["status"]["containerStatuses"] = json!(statuses);
    pod["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
    if !still_running {
        pod["status"]["phase"] = json!(if failing { "Failed" } else { "Succeeded" });
    }
    if failing {
        pod["metadata"]["annotations"]["fake/log"] =
            json!("Traceback (most recent call last):\nOSError: [Errno 28] No space left on device\n");
    }
    put_object(shared, "pods", namespace, pod);
    reconcile_owner(shared, namespace, &owner);
}

/// Makes Deployment `name` in `namespace` available now (a stuck rollout that recovers): its scenario becomes
/// [`Scenario::Available`] and its pods that are not Terminating start at once. Waiters are not notified.
pub(super) fn make_deployment_available(shared: &mut Shared, namespace: &str, name: &str) {
    shared.scenarios.insert(name.to_string(), Scenario::Available);
    let owner = ("deployments".to_string(), name.to_string());
    for key in owned_pods(shared, namespace, &owner) {
        let live = shared.objects.get(&key).is_some_and(|pod| !terminating(pod));
        if live {
            start_pod(shared, namespace, &key.2);
        }
    }
    reconcile_deployment(shared, namespace, name);
}
