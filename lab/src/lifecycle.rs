//! `lab status` (what is deployed and ready, the ingress URL, the active stage) and `lab down` (delete the lab,
//! and with `--all` Istio and the tunnel).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::wait::conditions::is_deleted;
use serde::Serialize;

use crate::cluster::LAB_NAMESPACE;
use crate::cluster::wait::{deployment_rolled_out, wait_for};
use crate::istio::install::installed_version;
use crate::istio::{FetchOptions, fetch_istioctl};
use crate::stage_apply::MODELS_HOST_DIR_FILE;
use crate::state::{self, LabLock};
use crate::tool::istioctl::Istioctl;
use crate::{Settings, ingress, kube_client};

/// One Deployment of the lab.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentState {
    /// Its name.
    pub name: String,
    /// Ready replicas.
    pub ready_replicas: i32,
    /// Wanted replicas.
    pub replicas: i32,
    /// Rolled out (latest spec, every replica available).
    pub rolled_out: bool,
}

/// What `lab status` found.
#[derive(Debug, Clone, Serialize)]
pub struct LabStatus {
    /// The kube context.
    pub context: String,
    /// The Istio version installed (the tag of istiod's image), if any.
    pub istio_version: Option<String>,
    /// Whether the lab's namespace exists.
    pub namespace: bool,
    /// The lab's Deployments.
    pub deployments: Vec<DeploymentState>,
    /// The recorded ingress URL.
    pub ingress_url: Option<String>,
    /// How it is reached (serialised as `tunnel`, `url`, or `port-forward`: gone once the `lab up` that opened
    /// it ended).
    pub ingress_kind: Option<state::IngressKind>,
    /// The recorded active stage.
    pub active_stage: Option<String>,
    /// The pid of the recorded `minikube tunnel`, and whether it still runs.
    pub tunnel: Option<TunnelState>,
    /// True when Istio is installed and every lab Deployment is rolled out.
    pub ready: bool,
}

/// The recorded tunnel.
#[derive(Debug, Clone, Serialize)]
pub struct TunnelState {
    /// Its pid.
    pub pid: u32,
    /// Whether that process still runs.
    pub running: bool,
}

/// Reads what is deployed; only reads.
pub async fn status(settings: &Settings) -> anyhow::Result<LabStatus> {
    // Plain reads of known kinds: no API discovery needed.
    let client = kube_client::client_for(settings).await?;
    let istio_version = installed_version(&client).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = namespaces
        .get_opt(LAB_NAMESPACE)
        .await
        .context("looking for the lab's namespace")?
        .is_some();
    let mut deployments = Vec::new();
    if namespace {
        let api: Api<Deployment> = Api::namespaced(client.clone(), LAB_NAMESPACE);
        let listed = api
            .list(&ListParams::default().labels("app=image-classifier"))
            .await
            .context("listing the lab's Deployments")?;
        for deployment in &listed.items {
            let status = deployment.status.clone().unwrap_or_default();
            deployments.push(DeploymentState {
                name: deployment.metadata.name.clone().unwrap_or_default(),
                ready_replicas: status.ready_replicas.unwrap_or(0),
                replicas: deployment.spec.as_ref().and_then(|spec| spec.replicas).unwrap_or(1),
                rolled_out: deployment_rolled_out(Some(deployment)),
            });
        }
    }
    let tunnel = state::read_tunnel_pid(settings)?.map(|pid| TunnelState {
        pid,
        running: state::process_alive(pid),
    });
    let ready = istio_version.is_some()
        && namespace
        && !deployments.is_empty()
        && deployments.iter().all(|deployment| deployment.rolled_out);
    Ok(LabStatus {
        context: settings.kube_context().to_string(),
        istio_version,
        namespace,
        deployments,
        ingress_url: state::read_ingress_url(settings)?,
        ingress_kind: state::read_ingress_kind(settings)?,
        active_stage: state::read_active_stage(settings)?,
        tunnel,
        ready,
    })
}

/// How much `lab down` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownScope {
    /// The lab's namespace only.
    Lab,
    /// The namespace, Istio (`istioctl x uninstall --purge`) and the tunnel (given this long to stop on an
    /// interrupt before it is terminated).
    Everything {
        /// How long the tunnel may take to clean up after the interrupt.
        tunnel_timeout: Duration,
    },
}

/// What `lab down` did.
#[derive(Debug, Clone, Serialize)]
pub struct DownReport {
    /// Whether the namespace existed and was deleted.
    pub namespace_deleted: bool,
    /// Whether Istio was uninstalled.
    pub istio_uninstalled: bool,
    /// The tunnel stopped, if one ran: its pid and the signal it stopped on.
    pub tunnel_stopped: Option<ingress::TunnelStopped>,
}

/// Deletes the lab's namespace and waits (on a watch, at most `timeout`) until it is gone; with
/// [`DownScope::Everything`] also stops the tunnel (with an interrupt, see [`ingress::stop_tunnel`]) and uninstalls
/// Istio.
pub async fn down(
    settings: &Settings,
    scope: DownScope,
    istioctl: Option<PathBuf>,
    timeout: Duration,
) -> anyhow::Result<DownReport> {
    let _lock = LabLock::acquire(settings, "lab down")?;
    // A namespace delete and a watch: no API discovery needed.
    let client = kube_client::client_for(settings).await?;
    let namespaces: Api<Namespace> = Api::all(client);
    let existing = namespaces
        .get_opt(LAB_NAMESPACE)
        .await
        .context("looking for the lab's namespace")?;
    let namespace_deleted = match existing {
        None => false,
        Some(namespace) => {
            let uid = namespace.metadata.uid.clone().unwrap_or_default();
            namespaces
                .delete(LAB_NAMESPACE, &DeleteParams::foreground())
                .await
                .with_context(|| format!("deleting namespace \"{LAB_NAMESPACE}\""))?;
            let object = format!("Namespace/{LAB_NAMESPACE}");
            wait_for(
                namespaces.clone(),
                LAB_NAMESPACE,
                &object,
                "deleted",
                is_deleted(&uid),
                timeout,
            )
            .await?;
            true
        }
    };
    for file in [
        state::ACTIVE_STAGE_FILE,
        state::INGRESS_URL_FILE,
        state::INGRESS_KIND_FILE,
        MODELS_HOST_DIR_FILE,
    ] {
        state::forget(settings, file)?;
    }
    let mut report = DownReport {
        namespace_deleted,
        istio_uninstalled: false,
        tunnel_stopped: None,
    };
    if let DownScope::Everything { tunnel_timeout } = scope {
        report.tunnel_stopped = ingress::stop_tunnel(settings, tunnel_timeout).await?;
        let istioctl = match istioctl {
            Some(path) => path,
            None => fetch_istioctl(&FetchOptions::lab_default(settings.cache_dir.clone()))
                .await
                .context("getting istioctl to uninstall Istio")?,
        };
        let context = settings.kube_context().to_string();
        tokio::task::spawn_blocking(move || {
            Istioctl::new(&istioctl).uninstall_purge(&context, Duration::from_secs(600))
        })
        .await
        .context("running istioctl x uninstall")??;
        report.istio_uninstalled = true;
    }
    Ok(report)
}
