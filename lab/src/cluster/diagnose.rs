//! What to show when a Deployment does not become ready (or a Job fails): its pods that are not ready, their
//! container states, recent events, the last log lines of the failing container, and a hint for the known causes.

use std::fmt::Write;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::Api;
use kube::api::{ListParams, LogParams};

use super::Cluster;

/// How many log lines of a failing container the diagnosis shows.
const LOG_LINES: i64 = 15;

/// A diagnosis: text for people, and the hint for a known cause when one matched.
#[derive(Debug, Clone, Default)]
pub struct Diagnosis {
    /// Pods, container states, events and log lines, one item per line.
    pub text: String,
    /// The fix for a recognised cause, as a `help:` line would give it.
    pub help: Option<String>,
}

/// Diagnoses Deployment `name` in `namespace`; problems reading the cluster become lines of the diagnosis.
pub async fn diagnose_deployment(cluster: &Cluster, namespace: &str, name: &str) -> Diagnosis {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
    let selector = match deployments.get(name).await {
        Ok(deployment) => deployment
            .spec
            .and_then(|spec| spec.selector.match_labels)
            .map(|labels| {
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            }),
        Err(error) => {
            return Diagnosis {
                text: format!("could not read Deployment/{name}: {error}"),
                help: None,
            };
        }
    };
    let Some(selector) = selector else {
        return Diagnosis {
            text: format!("Deployment/{name} has no label selector"),
            help: None,
        };
    };
    diagnose_pods(cluster, namespace, &selector).await
}

/// Diagnoses the pods matching `selector` in `namespace`.
pub async fn diagnose_pods(cluster: &Cluster, namespace: &str, selector: &str) -> Diagnosis {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), namespace);
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), namespace);
    let mut text = String::new();
    let mut clues = String::new();
    let listed = match pods.list(&ListParams::default().labels(selector)).await {
        Ok(listed) => listed.items,
        Err(error) => {
            return Diagnosis {
                text: format!("could not list pods ({selector}): {error}"),
                help: None,
            };
        }
    };
    if listed.is_empty() {
        let _ = writeln!(text, "no pods match {selector} in namespace \"{namespace}\"");
    }
    for pod in listed.iter().filter(|pod| !pod_ready(pod)) {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let phase = pod
            .status
            .as_ref()
            .and_then(|status| status.phase.clone())
            .unwrap_or_default();
        let _ = writeln!(text, "pod {pod_name}: {phase}, not ready");
        let statuses = pod
            .status
            .as_ref()
            .and_then(|status| status.container_statuses.clone())
            .unwrap_or_default();
        let mut failing: Option<ContainerStatus> = None;
        for status in &statuses {
            let state = describe_state(status);
            let _ = writeln!(text, "  container {}: {state}", status.name);
            clues.push_str(&state);
            clues.push('\n');
            if !status.ready && failing.is_none() {
                failing = Some(status.clone());
            }
        }
        let field_selector = format!("involvedObject.name={pod_name}");
        if let Ok(listed_events) = events.list(&ListParams::default().fields(&field_selector)).await {
            let mut recent = listed_events.items;
            recent.sort_by_key(|event| event.last_timestamp.clone());
            for event in recent.iter().rev().take(5).rev() {
                let reason = event.reason.clone().unwrap_or_default();
                let message = event.message.clone().unwrap_or_default();
                let _ = writeln!(text, "  event {reason}: {message}");
                clues.push_str(&format!("{reason}: {message}\n"));
            }
        }
        if let Some(failing) = failing {
            let state = failing.state.as_ref();
            // A container that exited with an error (a failed Job's pod) has a log to show too.
            let exited_with_error = state
                .and_then(|state| state.terminated.as_ref())
                .is_some_and(|terminated| terminated.exit_code != 0);
            let started_once = failing.restart_count > 0
                || exited_with_error
                || state
                    .and_then(|state| state.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref())
                    == Some("CrashLoopBackOff");
            if started_once {
                let params = LogParams {
                    container: Some(failing.name.clone()),
                    tail_lines: Some(LOG_LINES),
                    ..LogParams::default()
                };
                if let Ok(log) = pods.logs(&pod_name, &params).await
                    && !log.trim().is_empty()
                {
                    let _ = writeln!(text, "  last log lines of {}:", failing.name);
                    for line in log.lines() {
                        let _ = writeln!(text, "    {line}");
                    }
                    clues.push_str(&log);
                }
            }
        }
    }
    Diagnosis {
        text,
        help: hint_for(&clues),
    }
}

/// True when the pod's Ready condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True")
        })
}

/// `waiting (ImagePullBackOff): message`, `running`, `terminated (Error, exit code 1)`.
fn describe_state(status: &ContainerStatus) -> String {
    let restarts = match status.restart_count {
        0 => String::new(),
        count => format!(", {}", crate::output::plural(count.unsigned_abs(), "restart")),
    };
    let Some(state) = &status.state else {
        return format!("unknown state{restarts}");
    };
    if let Some(waiting) = &state.waiting {
        let reason = waiting.reason.clone().unwrap_or_default();
        let message = waiting.message.clone().map(|m| format!(": {m}")).unwrap_or_default();
        return format!("waiting ({reason}){message}{restarts}");
    }
    if let Some(terminated) = &state.terminated {
        let reason = terminated.reason.clone().unwrap_or_default();
        return format!("terminated ({reason}, exit code {}){restarts}", terminated.exit_code);
    }
    let ready = if status.ready { "ready" } else { "not ready" };
    format!("running, {ready}{restarts}")
}

/// The fix for a known cause found in container states, events and logs.
pub fn hint_for(clues: &str) -> Option<String> {
    let hint = if clues.contains("exec format error") {
        "the image is not built for this node's architecture (\"exec format error\"): Istio 1.12 and TF Serving 2.5.1 \
         publish amd64 images only; run the lab on an amd64 machine"
    } else if clues.contains("ImagePullBackOff") || clues.contains("ErrImagePull") {
        "the node cannot pull the image: check the node's network (`minikube ssh -- docker pull IMAGE`), or load it \
         with `minikube image load IMAGE`"
    } else if clues.contains("Insufficient cpu") || clues.contains("Insufficient memory") {
        "the node lacks CPU or memory for the pods (Pending): restart minikube with more, e.g. \
         `minikube start --cpus=4 --memory=8g`"
    } else if clues.contains("Could not find base path")
        || clues.contains("No versions of servable")
        || clues.contains("saved_model.pb")
    {
        "TF Serving cannot find the model: the hostPath must hold <model>/<version>/saved_model.pb and variables/; \
         run `cargo xtask lab up --models export` or check the directory given to `--models host:DIR`"
    } else if clues.contains("CrashLoopBackOff") {
        "the container keeps crashing: read its log lines above, or `kubectl logs --previous`"
    } else {
        return None;
    };
    Some(hint.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_causes_get_their_hint() {
        let check = |clue: &str, expected: &str| {
            let hint = hint_for(clue).unwrap_or_default();
            assert!(hint.contains(expected), "{clue} → {hint}");
        };
        check("waiting (ImagePullBackOff): Back-off", "minikube image load");
        check(
            "FailedScheduling: 0/1 nodes are available: 1 Insufficient memory.",
            "--memory=8g",
        );
        check(
            "E file_system_storage_path_source.cc] Could not find base path /models/resnet50",
            "saved_model.pb",
        );
        check("exec /usr/bin/tf_serving_entrypoint.sh: exec format error", "amd64");
        assert_eq!(hint_for("running, ready"), None);
    }
}
