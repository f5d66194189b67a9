//! Deleting the lab's objects that a stage does not name: labelled `app.kubernetes.io/managed-by=canary-lab`, in
//! the lab namespace, of the kinds the lab uses.

use kube::api::{DeleteParams, DynamicObject, ListParams};

use super::apply::{Change, ObjectChange};
use super::{Cluster, FIELD_MANAGER, LAB_NAMESPACE, MANAGED_BY_LABEL};
use crate::definition::manifests::Manifest;

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

/// Deletes the candidates (one already gone is skipped) and reports them as deleted.
pub async fn delete_all(cluster: &Cluster, candidates: Vec<PruneCandidate>) -> anyhow::Result<Vec<ObjectChange>> {
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

/// The lab's objects in the lab namespace, listed once per kind of [`LAB_KINDS`] by the managed-by label: what
/// applying a stage compares against and prunes from.
#[derive(Debug, Clone, Default)]
pub struct LabObjects {
    listed: Vec<(&'static str, &'static str, Vec<DynamicObject>)>,
}

impl LabObjects {
    /// The listed object of `kind` named `name`; `None` when no such object was listed, or when `kind` is outside
    /// [`LAB_KINDS`] (the caller GETs it).
    pub fn find(&self, kind: &str, name: &str) -> Option<&DynamicObject> {
        let (_, _, objects) = self.listed.iter().find(|(_, listed_kind, _)| *listed_kind == kind)?;
        objects
            .iter()
            .find(|object| object.metadata.name.as_deref() == Some(name))
    }

    /// The objects that `keep` lacks and that are not `protected`.
    pub fn prune_candidates(&self, keep: &[Manifest], protected: &[&str]) -> Vec<PruneCandidate> {
        let mut candidates = Vec::new();
        for (api_version, kind, objects) in &self.listed {
            for object in objects {
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
        candidates
    }
}

/// Lists the lab's objects of every kind in [`LAB_KINDS`] that the server serves, in the lab namespace.
pub async fn list_lab_objects(cluster: &Cluster) -> anyhow::Result<LabObjects> {
    let selector = format!("{MANAGED_BY_LABEL}={FIELD_MANAGER}");
    let mut listed = Vec::new();
    for (api_version, kind) in LAB_KINDS {
        // A kind the server does not serve (Istio not installed yet) has no objects.
        let Some((resource, capabilities)) = cluster.resource_for(api_version, kind) else {
            continue;
        };
        let api = cluster.dynamic_api(&resource, &capabilities, Some(LAB_NAMESPACE));
        let objects = match api.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list.items,
            // No namespace yet: nothing there.
            Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
            Err(error) => {
                return Err(anyhow::Error::new(error)
                    .context(format!("listing the lab's {kind}s in namespace \"{LAB_NAMESPACE}\"")));
            }
        };
        listed.push((*api_version, *kind, objects));
    }
    Ok(LabObjects { listed })
}
