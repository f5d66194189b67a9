//! Building a Kubernetes client from kubeconfig the way kubectl does (`KUBECONFIG`, `--context`).

use std::time::Duration;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::Settings;

/// How long a connection to the API server may take before we call it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A kube client for the settings' context, read from `KUBECONFIG` (or `~/.kube/config`).
pub async fn client_for(settings: &Settings) -> anyhow::Result<kube::Client> {
    crate::http::install_crypto_provider();
    let context = settings.kube_context();
    let kubeconfig = Kubeconfig::read().context(
        "reading kubeconfig (KUBECONFIG or ~/.kube/config)\nhelp: start the cluster with `minikube start`, which writes it",
    )?;
    let known = kubeconfig.contexts.iter().any(|named| named.name == context);
    if !known {
        let names: Vec<&str> = kubeconfig.contexts.iter().map(|named| named.name.as_str()).collect();
        anyhow::bail!(
            "kubeconfig has no context \"{context}\" (it has: {})\nhelp: pass --context NAME, or run `minikube update-context -p {}`",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            },
            settings.profile
        );
    }
    let options = KubeConfigOptions {
        context: Some(context.to_string()),
        ..KubeConfigOptions::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .with_context(|| format!("loading kubeconfig context \"{context}\""))?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(Duration::from_secs(60));
    kube::Client::try_from(config).with_context(|| format!("building a Kubernetes client for context \"{context}\""))
}
