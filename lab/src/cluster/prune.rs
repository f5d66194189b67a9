//! Deleting the lab's objects that a stage does not name: labelled `app.kubernetes.io/managed-by=canary-lab`, in
//! the lab namespace, of the kinds the lab uses.

use kube::api::{DeleteParams, ListParams};

use super::apply::{Change, ObjectChange};
use super::{Cluster, FIELD_MANAGER, LAB_NAMESPACE, MANAGED_BY_LABEL};
use crate::manifests::Manifest;

/// The namespaced kinds the lab creates, as (apiVersion, kind): the ones pruning looks at.
pub const LAB_KINDS: &[(&str, &str)] = &[
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "Job"),
    ("networking.istio.io/v1alpha3", "Gateway"),
    ("networking.istio.io/v1alpha3", "VirtualService"),
    ("networking.istio.io/v1alpha3", "DestinationRule"),
];

/// Deletes the lab's objects in the lab namespace that `keep` does not contain; `protected` names (e.g. the
/// model-export Job and its ConfigMap) are never deleted.
pub async fn prune(cluster: &Cluster, keep: &[Manifest], protected: &[&str]) -> anyhow::Result<Vec<ObjectChange>> {
    let candidates = prune_candidates(cluster, keep, protected).await?;
    let mut deleted = Vec::new();
    for candidate in candidates {
        let (resource, capabilities) = cluster
            .resource_for(candidate.api_version, &candidate.change.kind)
            .expect("listed kinds resolve");
        let api = cluster.dynamic_api(&resource, &capabilities, Some(LAB_NAMESPACE));
        let name = candidate.change.name.clone();
        let kind = candidate.change.kind.clone();
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(error) => {
                return Err(anyhow::Error::new(error)
                    .context(format!("deleting {kind}/{name} in namespace \"{LAB_NAMESPACE}\"")));
            }
        }
        tracing::info!(kind, name, "pruned");
        deleted.push(candidate.change);
    }
    Ok(deleted)
}

/// One object pruning would delete.
#[derive(Debug, Clone)]
pub struct PruneCandidate {
    /// Its apiVersion.
    pub api_version: &'static str,
    /// The deletion it would be.
    pub change: ObjectChange,
}

/// The lab's objects in the lab namespace that `keep` lacks (and that are not `protected`), found by listing with
/// the managed-by label; nothing is deleted.
pub async fn prune_candidates(
    cluster: &Cluster,
    keep: &[Manifest],
    protected: &[&str],
) -> anyhow::Result<Vec<PruneCandidate>> {
    let selector = format!("{MANAGED_BY_LABEL}={FIELD_MANAGER}");
    let mut candidates = Vec::new();
    for (api_version, kind) in LAB_KINDS {
        // A kind the server does not serve (Istio not installed yet) has no objects to prune.
        let Some((resource, capabilities)) = cluster.resource_for(api_version, kind) else {
            continue;
        };
        let api = cluster.dynamic_api(&resource, &capabilities, Some(LAB_NAMESPACE));
        let listed = match api.list(&ListParams::default().labels(&selector)).await {
            Ok(listed) => listed,
            // No namespace yet: nothing to prune.
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(error) => {
                return Err(anyhow::Error::new(error)
                    .context(format!("listing the lab's {kind}s in namespace \"{LAB_NAMESPACE}\"")));
            }
        };
        for object in listed.items {
            let name = object.metadata.name.clone().unwrap_or_default();
            let wanted = keep.iter().any(|manifest| {
                manifest.kind() == *kind && manifest.name() == name && manifest.namespace() == Some(LAB_NAMESPACE)
            });
            if wanted || protected.contains(&name.as_str()) {
                continue;
            }
            candidates.push(PruneCandidate {
                api_version,
                change: ObjectChange {
                    kind: kind.to_string(),
                    name,
                    namespace: Some(LAB_NAMESPACE.to_string()),
                    change: Change::Deleted,
                },
            });
        }
    }
    Ok(candidates)
}
