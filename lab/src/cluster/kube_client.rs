//! Building a Kubernetes client from kubeconfig the way kubectl does (`KUBECONFIG`, `--context`).

use std::time::Duration;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::Settings;
use crate::error::{LabError, error_chain};

/// How long a connection to the API server may take before we call it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the first read (`/version`) may take: a server that accepts connections but never answers is as
/// unreachable as one that refuses them.
const FIRST_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// `$HOME`, where kubectl looks for `.kube/config`.
fn dirs_home() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(std::path::PathBuf::from)
}

/// A kube client for the settings' context, read from `KUBECONFIG` (or `~/.kube/config`).
pub async fn client_for(settings: &Settings) -> anyhow::Result<kube::Client> {
    Ok(client_and_version(settings).await?.0)
}

/// [`client_for`], with the server's version that its first read (`/version`) returned.
pub async fn client_and_version(
    settings: &Settings,
) -> anyhow::Result<(kube::Client, k8s_openapi::apimachinery::pkg::version::Info)> {
    crate::http::install_crypto_provider();
    let context = settings.kube_context();
    let kubeconfig = Kubeconfig::read().map_err(|error| {
        // kube's own message quotes the path twice ('"/x"') and repeats its cause: name the file once instead.
        let path = std::env::var_os("KUBECONFIG")
            .map(std::path::PathBuf::from)
            .or_else(|| dirs_home().map(|home| home.join(".kube/config")));
        let why = match path {
            Some(path) if !path.exists() => format!("\"{}\" does not exist", path.display()),
            _ => error_chain(&error),
        };
        LabError::not_ready(
            format!("cannot read a kubeconfig (KUBECONFIG or ~/.kube/config): {why}"),
            format!(
                "start the cluster with `minikube start -p {}`, which writes it, or point KUBECONFIG at yours",
                settings.profile
            ),
        )
    })?;
    let known = kubeconfig.contexts.iter().any(|named| named.name == context);
    if !known {
        let names: Vec<&str> = kubeconfig.contexts.iter().map(|named| named.name.as_str()).collect();
        return Err(LabError::not_ready(
            format!(
                "kubeconfig has no context \"{context}\" (it has: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
            format!(
                "pass --context NAME, or run `minikube update-context -p {}`",
                settings.profile
            ),
        )
        .into());
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
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)
        .with_context(|| format!("building a Kubernetes client for context \"{context}\""))?;
    // One cheap read first, as kubectl's first request does: an unreachable server is then one clear not-ready
    // error, whatever the command meant to read.
    let unreachable = |cause: String| {
        LabError::not_ready(
            if cause.contains("Connection refused") {
                // As kubectl puts it: "The connection to the server … was refused".
                format!("the connection to the Kubernetes API server {server} (context \"{context}\") was refused")
            } else {
                format!("the Kubernetes API server {server} (context \"{context}\") did not answer: {cause}")
            },
            format!(
                "is the cluster running? `minikube status -p {profile}` says; start it with `minikube start -p {profile}`, or choose another context with --context (`kubectl config get-contexts`)",
                profile = settings.profile
            ),
        )
    };
    match tokio::time::timeout(FIRST_READ_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(version)) => Ok((client, version)),
        Ok(Err(error)) => Err(unreachable(error_chain(&error)).into()),
        Err(_) => Err(unreachable(format!("no answer within {}s", FIRST_READ_TIMEOUT.as_secs())).into()),
    }
}
