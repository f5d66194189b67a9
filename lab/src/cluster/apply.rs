//! The one generic apply: server-side apply (field manager `canary-lab`, force) of any manifest, after a dry run
//! that tells whether anything would change, so a second `lab up` writes nothing.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde::Serialize;
use serde_json::Value;

use super::discovery::UnknownKind;
use super::{Cluster, FIELD_MANAGER, MANAGED_BY_LABEL};
use crate::definition::manifests::Manifest;

/// What applying (or pruning) did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// It did not exist and was created.
    Created,
    /// It existed and was changed.
    Configured,
    /// It was already as the manifest says: nothing was written.
    Unchanged,
    /// It belonged to the lab but not to the stage, and was deleted.
    Deleted,
}

impl Change {
    /// The word kubectl prints for it.
    pub fn word(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Configured => "configured",
            Change::Unchanged => "unchanged",
            Change::Deleted => "deleted",
        }
    }
}

/// One object and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectChange {
    /// The kind, e.g. `VirtualService`.
    pub kind: String,
    /// The name.
    pub name: String,
    /// The namespace, for namespaced objects.
    pub namespace: Option<String>,
    /// What happened.
    pub change: Change,
}

impl ObjectChange {
    /// `kind/name change`, as kubectl prints it.
    pub fn line(&self) -> String {
        format!("{}/{} {}", self.kind.to_lowercase(), self.name, self.change.word())
    }
}

/// The API server refused an object (a 409 conflict, a 422 invalid object, …).
#[derive(Debug, thiserror::Error)]
#[error("the API server refused {object} from {file}, document {document}: {code} {reason}: {message}\nhelp: {help}")]
pub struct ApplyRejected {
    /// The manifest file.
    pub file: String,
    /// The 1-based document.
    pub document: usize,
    /// `Kind/name in namespace "…"`.
    pub object: String,
    /// The HTTP status code.
    pub code: u16,
    /// The API server's reason (`Conflict`, `Invalid`, …).
    pub reason: String,
    /// The API server's message.
    pub message: String,
    /// What to do.
    pub help: String,
}

/// Applies `manifests` in order and says what changed for each.
pub async fn apply_all(cluster: &Cluster, manifests: &[Manifest]) -> anyhow::Result<Vec<ObjectChange>> {
    let mut changes = Vec::new();
    for manifest in manifests {
        changes.push(apply_one(cluster, manifest).await?);
    }
    Ok(changes)
}

/// Applies one manifest: nothing is written when a dry-run apply shows the live object already matches.
pub async fn apply_one(cluster: &Cluster, manifest: &Manifest) -> anyhow::Result<ObjectChange> {
    let live = get_live(cluster, manifest).await?;
    apply_against(cluster, manifest, live.as_ref()).await
}

/// Applies one manifest whose live object (`None`: absent) the caller already has, e.g. from a listing.
pub async fn apply_against(
    cluster: &Cluster,
    manifest: &Manifest,
    live: Option<&DynamicObject>,
) -> anyhow::Result<ObjectChange> {
    let prepared = prepare(cluster, manifest)?;
    let planned = plan_prepared(&prepared, manifest, live).await?;
    if planned.change != Change::Unchanged {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        prepared
            .api
            .patch(manifest.name(), &params, &Patch::Apply(&prepared.desired))
            .await
            .map_err(|error| rejected(manifest, error))?;
        tracing::info!(object = %manifest.describe(), change = planned.change.word(), "applied");
    }
    Ok(planned)
}

/// What applying `manifest` would do, found without writing: a GET, then [`plan_against`].
pub async fn plan_one(cluster: &Cluster, manifest: &Manifest) -> anyhow::Result<ObjectChange> {
    let live = get_live(cluster, manifest).await?;
    plan_against(cluster, manifest, live.as_ref()).await
}

/// What applying `manifest` would do to `live`: created when absent, else a dry-run apply (`dryRun=All`) whose
/// result is compared with the live object. Writes nothing.
pub async fn plan_against(
    cluster: &Cluster,
    manifest: &Manifest,
    live: Option<&DynamicObject>,
) -> anyhow::Result<ObjectChange> {
    let prepared = prepare(cluster, manifest)?;
    plan_prepared(&prepared, manifest, live).await
}

/// A manifest ready to apply: the `Api` that reaches its object, its type as discovery resolved it, and the object
/// as sent (with the managed-by label).
struct Prepared {
    api: Api<DynamicObject>,
    resource: ApiResource,
    desired: Value,
}

fn prepare(cluster: &Cluster, manifest: &Manifest) -> Result<Prepared, UnknownKind> {
    let api = cluster.resolve(manifest)?;
    let (resource, _) = cluster
        .resource_for(manifest.api_version(), manifest.kind())
        .expect("a resolved manifest has a resource");
    Ok(Prepared {
        api,
        resource,
        desired: with_managed_by_label(&manifest.object),
    })
}

/// [`plan_against`] for a manifest already prepared.
async fn plan_prepared(
    prepared: &Prepared,
    manifest: &Manifest,
    live: Option<&DynamicObject>,
) -> anyhow::Result<ObjectChange> {
    let name = manifest.name();
    let change = match live {
        None => Change::Created,
        Some(live) => {
            let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
            let dry_run = prepared
                .api
                .patch(name, &params, &Patch::Apply(&prepared.desired))
                .await
                .map_err(|error| rejected(manifest, error))?;
            let live = comparable(&serde_json::to_value(live)?, &prepared.resource);
            let after = comparable(&serde_json::to_value(&dry_run)?, &prepared.resource);
            let unchanged = live == after;
            if !unchanged {
                tracing::debug!(object = %manifest.describe(), %live, %after, "the dry run differs from the live object");
            }
            if unchanged {
                Change::Unchanged
            } else {
                Change::Configured
            }
        }
    };
    Ok(ObjectChange {
        kind: manifest.kind().to_string(),
        name: name.to_string(),
        namespace: manifest.namespace().map(str::to_string),
        change,
    })
}

/// The live object of `manifest`, if it exists.
async fn get_live(cluster: &Cluster, manifest: &Manifest) -> anyhow::Result<Option<DynamicObject>> {
    let api = cluster.resolve(manifest)?;
    api.get_opt(manifest.name())
        .await
        .map_err(|error| rejected(manifest, error))
}

/// The object with the `app.kubernetes.io/managed-by: canary-lab` label added.
pub fn with_managed_by_label(object: &Value) -> Value {
    let mut object = object.clone();
    let metadata = &mut object["metadata"];
    if !metadata["labels"].is_object() {
        metadata["labels"] = Value::Object(serde_json::Map::new());
    }
    metadata["labels"][MANAGED_BY_LABEL] = Value::String(FIELD_MANAGER.to_string());
    object
}

/// What decides whether applying changes an object: everything but what the server keeps on its own.
///
/// The type comes from discovery (`resource`), not from the object: a real API server's LIST items carry no
/// `apiVersion`/`kind` for built-in kinds (kubernetes/kubernetes#3030), while a GET or a dry run does. `status` is
/// never written by an apply, and the server's bookkeeping (resource version, generation, managed fields and
/// their times) changes without the object changing. Defaults are on both sides: the live object and the dry run
/// both come from the server.
pub fn comparable(object: &Value, resource: &ApiResource) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".to_string(), Value::String(resource.api_version.clone()));
        map.insert("kind".to_string(), Value::String(resource.kind.clone()));
        map.remove("status");
    }
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["managedFields", "resourceVersion", "generation"] {
            metadata.remove(field);
        }
    }
    object
}

fn rejected(manifest: &Manifest, error: kube::Error) -> anyhow::Error {
    match error {
        kube::Error::Api(status) => {
            let help = match status.code {
                409 => {
                    "another client changed the object; run the command again, or delete it with `cargo xtask lab down`"
                }
                422 => "the manifest is invalid for this cluster; check it with `cargo xtask lab render`",
                403 => "the kube context lacks permission; use an admin context (minikube's default)",
                _ => "run the command again with -vv to see the requests",
            };
            ApplyRejected {
                file: manifest.file.clone(),
                document: manifest.document,
                object: manifest.describe(),
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
                help: help.to_string(),
            }
            .into()
        }
        other => anyhow::Error::new(other).context(format!(
            "applying {} from {}, document {}",
            manifest.describe(),
            manifest.file,
            manifest.document
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_managed_by_label_is_added_next_to_existing_labels() {
        let object = serde_json::json!({"metadata": {"name": "a", "labels": {"app": "x"}}});
        let labelled = with_managed_by_label(&object);
        assert_eq!(
            labelled["metadata"]["labels"],
            serde_json::json!({"app": "x", "app.kubernetes.io/managed-by": "canary-lab"})
        );
        let bare = with_managed_by_label(&serde_json::json!({"metadata": {"name": "b"}}));
        assert_eq!(bare["metadata"]["labels"][MANAGED_BY_LABEL], "canary-lab");
    }

    fn config_map() -> ApiResource {
        ApiResource::from_gvk_with_plural(&kube::core::GroupVersionKind::gvk("", "v1", "ConfigMap"), "configmaps")
    }

    #[test]
    fn a_listed_item_without_its_type_compares_equal_to_the_dry_run_that_has_it() {
        let listed = serde_json::json!({
            "metadata": {"name": "c", "resourceVersion": "7", "managedFields": [{"manager": "canary-lab", "time": "2026-01-01T00:00:00Z"}]},
            "data": {"k": "v"}
        });
        let dry_run = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "resourceVersion": "7", "managedFields": [{"manager": "canary-lab", "time": "2026-02-02T00:00:00Z"}]},
            "data": {"k": "v"}
        });
        assert_eq!(comparable(&listed, &config_map()), comparable(&dry_run, &config_map()));
        let changed =
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "w"}});
        assert_ne!(comparable(&listed, &config_map()), comparable(&changed, &config_map()));
    }
}
