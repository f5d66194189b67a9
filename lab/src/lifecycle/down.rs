//! `lab down`: delete the lab, and with `--all` Istio and the tunnel.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::DeleteParams;
use kube::runtime::wait::conditions::is_deleted;
use serde::Serialize;

use crate::Settings;
use crate::cluster::LAB_NAMESPACE;
use crate::cluster::kube_client;
use crate::cluster::wait::wait_for;
use crate::istio::{FetchOptions, fetch_istioctl};
use crate::lifecycle::ingress;
use crate::lifecycle::state::MODELS_HOST_DIR_FILE;
use crate::lifecycle::state::{self, LabLock};
use crate::tool::istioctl::Istioctl;

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
