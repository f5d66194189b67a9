//! Talking to the cluster the way kubectl does: discovery, one generic server-side apply, pruning, waits on
//! watches with deadlines, and a diagnosis when a wait fails.
//!
//! [`Cluster`] holds the client and the discovery run at connection; everything else takes it. Discovery is a
//! snapshot: after something installs CRDs (Istio's install), [`Cluster::refresh_discovery`] takes a new one.

pub mod apply;
pub mod diagnose;
pub mod discovery;
pub mod kube_client;
pub mod port_forward;
pub mod prune;
pub mod wait;

use anyhow::Context;
use kube::discovery::Discovery;

use crate::Settings;

/// The lab's namespace.
pub const LAB_NAMESPACE: &str = "tf-serving";

/// The field manager of every server-side apply, and the value of the managed-by label.
pub const FIELD_MANAGER: &str = "canary-lab";

/// The label every applied object carries, so pruning can find the lab's objects.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// A connected cluster: the client and the API discovery (run at connection, refreshed when CRDs were added).
pub struct Cluster {
    /// The kube client.
    pub client: kube::Client,
    /// What the API server serves (groups, versions, kinds, scopes).
    pub discovery: Discovery,
    /// The kube context in use, for messages and for `istioctl --context`.
    pub context: String,
}

impl Cluster {
    /// Connects with the settings' kubeconfig context and runs discovery once.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Cluster> {
        let client = crate::cluster::kube_client::client_for(settings).await?;
        Cluster::from_client(client, settings.kube_context()).await
    }

    /// Runs discovery once with an existing client (named `context` in messages).
    pub async fn from_client(client: kube::Client, context: &str) -> anyhow::Result<Cluster> {
        let context = context.to_string();
        let discovery = discover(&client, &context).await?;
        Ok(Cluster {
            client,
            discovery,
            context,
        })
    }

    /// Runs discovery again: the groups of CRDs created since (e.g. by `istioctl install`) become resolvable.
    /// The API server lists a CRD's group only once the CRD is Established, so wait for that first
    /// ([`Cluster::wait_crds_established`]).
    pub async fn refresh_discovery(&mut self) -> anyhow::Result<()> {
        self.discovery = discover(&self.client, &self.context).await?;
        Ok(())
    }
}

async fn discover(client: &kube::Client, context: &str) -> anyhow::Result<Discovery> {
    // `run_aggregated()` would be two requests instead of one per group, but needs Kubernetes 1.26+, and
    // Istio 1.12.7 runs on 1.19–1.24.
    Discovery::new(client.clone())
        .run()
        .await
        .with_context(|| format!("discovering the API of context \"{context}\""))
}
