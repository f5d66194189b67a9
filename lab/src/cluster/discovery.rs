//! Resolving a manifest's group/version/kind to an API resource and its scope, in one place.

use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};

use super::Cluster;
use crate::manifests::Manifest;

/// An object kind as the API serves it, and the `Api` to reach one object of it.
pub struct Resolved {
    /// Group, version, kind and plural.
    pub resource: ApiResource,
    /// Namespaced or cluster-wide.
    pub scope: Scope,
    /// The API for the object's namespace (or cluster-wide).
    pub api: Api<DynamicObject>,
}

/// The API server does not serve a manifest's kind: named with the file, document and kind.
#[derive(Debug, thiserror::Error)]
#[error("{file}, document {document}: the cluster does not serve kind \"{kind}\" of \"{api_version}\"\nhelp: {help}")]
pub struct UnknownKind {
    /// The manifest file.
    pub file: String,
    /// The 1-based document in the file.
    pub document: usize,
    /// The kind.
    pub kind: String,
    /// The apiVersion.
    pub api_version: String,
    /// What to do.
    pub help: String,
}

impl Cluster {
    /// The API resource, scope and `Api` for `manifest`; an unknown kind is an [`UnknownKind`] error.
    pub fn resolve(&self, manifest: &Manifest) -> Result<Resolved, UnknownKind> {
        let (group, version) = match manifest.api_version().split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", manifest.api_version()),
        };
        let gvk = GroupVersionKind::gvk(group, version, manifest.kind());
        let Some((resource, capabilities)) = self.discovery.resolve_gvk(&gvk) else {
            let help = match group.ends_with("istio.io") {
                true => "Istio's CRDs are missing: install Istio first (`cargo xtask lab up` does)".to_string(),
                false => "check the apiVersion and kind in the manifest".to_string(),
            };
            return Err(UnknownKind {
                file: manifest.file.clone(),
                document: manifest.document,
                kind: manifest.kind().to_string(),
                api_version: manifest.api_version().to_string(),
                help,
            });
        };
        let api = self.dynamic_api(&resource, &capabilities, manifest.namespace());
        Ok(Resolved {
            resource,
            scope: capabilities.scope,
            api,
        })
    }

    /// An `Api<DynamicObject>` for `resource`: namespaced in `namespace` (the client's default when `None`), or
    /// cluster-wide.
    pub fn dynamic_api(
        &self,
        resource: &ApiResource,
        capabilities: &ApiCapabilities,
        namespace: Option<&str>,
    ) -> Api<DynamicObject> {
        match (&capabilities.scope, namespace) {
            (Scope::Cluster, _) => Api::all_with(self.client.clone(), resource),
            (Scope::Namespaced, Some(namespace)) => Api::namespaced_with(self.client.clone(), namespace, resource),
            (Scope::Namespaced, None) => Api::default_namespaced_with(self.client.clone(), resource),
        }
    }

    /// The API resource for `api_version`/`kind`, for listing (pruning); `None` when the server does not serve it.
    pub fn resource_for(&self, api_version: &str, kind: &str) -> Option<(ApiResource, ApiCapabilities)> {
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
        };
        self.discovery.resolve_gvk(&GroupVersionKind::gvk(group, version, kind))
    }
}
