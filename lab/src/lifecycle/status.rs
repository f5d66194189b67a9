//! `lab status`: what is deployed and ready, the ingress URL, the active stage. Only reads.

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::ListParams;
use serde::Serialize;

use crate::Settings;
use crate::cluster::LAB_NAMESPACE;
use crate::cluster::kube_client;
use crate::cluster::wait::deployment_rolled_out;
use crate::istio::install::installed_version;
use crate::lifecycle::state::{self};

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
