//! Waits on watches, each with a named condition and a deadline set by the caller.
//!
//! kube's `await_condition` never gives up on its own; [`wait_for`] puts it inside a timeout, and the error names
//! the object, the condition and how long it waited. Deployment waits add a [`super::diagnose`] report.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::runtime::wait::{Condition, await_condition};
use serde::de::DeserializeOwned;

use super::Cluster;
use super::diagnose::{Diagnosis, diagnose_deployment};

/// A wait that ran out of time: the object, the condition, how long it waited, and what the cluster showed.
#[derive(Debug, thiserror::Error)]
#[error(
    "{object} was not {condition} after {}s{}\nhelp: {help}",
    .waited.as_secs(),
    diagnosis_block(.diagnosis)
)]
pub struct WaitTimedOut {
    /// e.g. `Deployment/istiod in namespace "istio-system"`.
    pub object: String,
    /// The condition's name, e.g. `rolled out`.
    pub condition: String,
    /// How long we waited.
    pub waited: Duration,
    /// The diagnosis: failing pods, container states, events, log lines, hints (may be empty).
    pub diagnosis: String,
    /// What to do next.
    pub help: String,
}

fn diagnosis_block(diagnosis: &str) -> String {
    if diagnosis.trim().is_empty() {
        String::new()
    } else {
        format!("\n{}", diagnosis.trim_end())
    }
}

/// Waits until `condition` (named `condition_name`) holds for `name`, at most `deadline`.
///
/// A watch that breaks (the API server closed it, a read timed out on a quiet watch, a 5xx) is opened again
/// until the deadline; the last such error is named if time runs out.
///
/// kube 5's `await_condition` (over `watcher::watch_object`) re-watches from its last resource version when a
/// stream ends, but returns at the first watcher error, a 410 Gone included (the API server's watch cache no longer
/// holds that version). The next round's `await_condition` lists afresh, which is the re-list a 410 asks for, so a
/// 410 is opened again at once; any other error waits a moment first.
pub async fn wait_for<K, C>(
    api: Api<K>,
    name: &str,
    object: &str,
    condition_name: &str,
    condition: C,
    deadline: Duration,
) -> anyhow::Result<Option<K>>
where
    K: Clone + Debug + Send + DeserializeOwned + kube::Resource + 'static,
    C: Condition<K>,
{
    let started = Instant::now();
    let mut last_watch_error: Option<String> = None;
    // Each round is one watch; a round ends with the condition met, a broken watch, or the deadline.
    loop {
        let remaining = deadline.saturating_sub(started.elapsed());
        let borrowed = |object: Option<&K>| condition.matches_object(object);
        let waited = tokio::time::timeout(remaining, await_condition(api.clone(), name, borrowed)).await;
        match waited {
            Ok(Ok(found)) => {
                let waited_ms = started.elapsed().as_millis() as u64;
                tracing::debug!(object, condition = condition_name, waited_ms, "condition met");
                return Ok(found);
            }
            Ok(Err(error)) => {
                let gone = matches!(
                    &error,
                    kube::runtime::wait::Error::ProbeFailed(kube::runtime::watcher::Error::WatchError(status))
                        if status.code == 410
                );
                if gone {
                    tracing::debug!(object, condition = condition_name, %error, "410 Gone: listing again");
                    continue;
                }
                tracing::warn!(object, condition = condition_name, %error, "the watch broke; watching again");
                last_watch_error = Some(error.to_string());
                // Do not spin on an error that repeats at once; the deadline still bounds the whole wait.
                let pause = Duration::from_millis(500).min(deadline.saturating_sub(started.elapsed()));
                tokio::time::sleep(pause).await;
            }
            Err(_) => {
                let diagnosis = match last_watch_error {
                    Some(error) => format!("the last watch error was: {error}"),
                    None => String::new(),
                };
                return Err(WaitTimedOut {
                    object: object.to_string(),
                    condition: condition_name.to_string(),
                    waited: started.elapsed(),
                    diagnosis,
                    help: format!(
                        "look at it with `kubectl describe` and run the command again; {condition_name} may need longer"
                    ),
                }
                .into());
            }
        }
    }
}

/// "rolled out": the controller saw the latest spec, and every replica is updated, ready and available.
pub fn deployment_rolled_out(deployment: Option<&Deployment>) -> bool {
    let Some(deployment) = deployment else {
        return false;
    };
    let Some(status) = &deployment.status else {
        return false;
    };
    let wanted = deployment.spec.as_ref().and_then(|spec| spec.replicas).unwrap_or(1);
    let generation = deployment.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0) >= generation;
    let updated = status.updated_replicas.unwrap_or(0) >= wanted;
    let available = status.available_replicas.unwrap_or(0) >= wanted;
    let ready = status.ready_replicas.unwrap_or(0) >= wanted;
    let no_old = status.replicas.unwrap_or(0) <= wanted;
    observed && updated && available && ready && no_old
}

/// Waits until Deployment `name` in `namespace` has rolled out, at most `deadline`; on timeout the error carries
/// the diagnosis of its pods.
pub async fn wait_deployment_rolled_out(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    deadline: Duration,
) -> anyhow::Result<()> {
    let api: Api<Deployment> = Api::namespaced(cluster.client.clone(), namespace);
    let object = format!("Deployment/{name} in namespace \"{namespace}\"");
    let result = wait_for(api, name, &object, "rolled out", deployment_rolled_out, deadline).await;
    match result {
        Ok(_) => Ok(()),
        Err(error) => {
            let help =
                format!("run `kubectl -n {namespace} describe deployment {name}` and `cargo xtask lab up` again");
            Err(diagnose_timeout(error, diagnose_deployment(cluster, namespace, name), help).await)
        }
    }
}

/// A [`WaitTimedOut`] `error` with its diagnosis and help replaced by what `diagnosis` finds (its help, else
/// `fallback_help`); `diagnosis` runs only for a timeout, and any other error comes back as it is.
pub async fn diagnose_timeout(
    error: anyhow::Error,
    diagnosis: impl Future<Output = Diagnosis>,
    fallback_help: String,
) -> anyhow::Error {
    match error.downcast::<WaitTimedOut>() {
        Ok(mut timed_out) => {
            let diagnosis = diagnosis.await;
            timed_out.diagnosis = diagnosis.text;
            timed_out.help = diagnosis.help.unwrap_or(fallback_help);
            timed_out.into()
        }
        Err(other) => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(status: serde_json::Value) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "d", "generation": 2},
            "spec": {"replicas": 1, "selector": {}, "template": {}},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn rolled_out_needs_the_latest_generation_and_every_replica_available() {
        let done = deployment(
            serde_json::json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
            "readyReplicas": 1, "availableReplicas": 1}),
        );
        assert!(deployment_rolled_out(Some(&done)));
        let stale = deployment(
            serde_json::json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
            "readyReplicas": 1, "availableReplicas": 1}),
        );
        assert!(!deployment_rolled_out(Some(&stale)));
        let surging = deployment(
            serde_json::json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1,
            "readyReplicas": 2, "availableReplicas": 2}),
        );
        assert!(!deployment_rolled_out(Some(&surging)));
        let unready = deployment(serde_json::json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1}));
        assert!(!deployment_rolled_out(Some(&unready)));
        assert!(!deployment_rolled_out(None));
    }

    #[test]
    fn a_timeout_names_object_condition_and_time() {
        let error = WaitTimedOut {
            object: "Deployment/istiod in namespace \"istio-system\"".into(),
            condition: "rolled out".into(),
            waited: Duration::from_secs(300),
            diagnosis: "pod istiod-1: not ready".into(),
            help: "run x".into(),
        };
        assert_eq!(
            error.to_string(),
            "Deployment/istiod in namespace \"istio-system\" was not rolled out after 300s\npod istiod-1: not ready\nhelp: run x"
        );
    }
}
