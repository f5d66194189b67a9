//! Resolving a manifest's group/version/kind to an API resource and its scope, in one place, and waiting until
//! CRDs are Established (served, and listed by discovery).

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use kube::runtime::wait::conditions::is_crd_established;

use super::Cluster;
use crate::definition::manifests::Manifest;

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
    /// The `Api` that reaches `manifest`'s object: its kind resolved, in its namespace or cluster-wide as the kind's
    /// scope says; an unknown kind is an [`UnknownKind`] error.
    pub fn resolve(&self, manifest: &Manifest) -> Result<Api<DynamicObject>, UnknownKind> {
        let Some((resource, capabilities)) = self.resource_for(manifest.api_version(), manifest.kind()) else {
            let (group, _) = group_version(manifest.api_version());
            let help = if group.ends_with("istio.io") {
                "Istio's CRDs are missing: install Istio first (`cargo xtask lab up` does)".to_string()
            } else {
                "check the apiVersion and kind in the manifest".to_string()
            };
            return Err(UnknownKind {
                file: manifest.file.clone(),
                document: manifest.document,
                kind: manifest.kind().to_string(),
                api_version: manifest.api_version().to_string(),
                help,
            });
        };
        Ok(self.dynamic_api(&resource, &capabilities, manifest.namespace()))
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

    /// Waits (a watch per CRD, all within `deadline`) until each CRD named in `names` (`plural.group`) has
    /// condition `Established` True: the apiextensions discovery controller lists a CRD's group only then
    /// (apiextensions-apiserver/pkg/apiserver/customresource_discovery_controller.go), so a discovery taken
    /// before would not resolve its kinds.
    pub async fn wait_crds_established(&self, names: &[&str], deadline: Duration) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for name in names {
            let remaining = deadline.saturating_sub(started.elapsed());
            let object = format!("CustomResourceDefinition/{name}");
            super::wait::wait_for(
                api.clone(),
                name,
                &object,
                "Established",
                is_crd_established(),
                remaining,
            )
            .await?;
        }
        Ok(())
    }

    /// The API resource for `api_version`/`kind`, for listing (pruning); `None` when the server does not serve it.
    pub fn resource_for(&self, api_version: &str, kind: &str) -> Option<(ApiResource, ApiCapabilities)> {
        let (group, version) = group_version(api_version);
        self.discovery.resolve_gvk(&GroupVersionKind::gvk(group, version, kind))
    }
}

/// An apiVersion split into group and version: `apps/v1` is (`apps`, `v1`), the core `v1` is (``, `v1`).
fn group_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}
