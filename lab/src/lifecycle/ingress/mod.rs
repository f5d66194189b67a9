//! Reaching the Istio ingress gateway from this machine: `minikube tunnel` (supervised, in the background), a
//! kube-rs port-forward held while the command runs ([`crate::cluster::port_forward`]), or a URL given by hand. The
//! tunnel's supervision is in `tunnel`; the smoke prediction through the ingress is [`crate::traffic::smoke`].
//!
//! `lab up` opens the ingress and records its URL and kind; later commands ([`reopen_recorded`]) make that record
//! usable again: a port-forward died with its `lab up`, a tunnel may have died since.

use std::time::Duration;

use anyhow::Context;

use crate::Settings;
use crate::cluster::Cluster;
use crate::cluster::kube_client;
use crate::cluster::port_forward::{PortForward, port_forward_to_pod};
use crate::error::LabError;
use crate::istio::install::{GATEWAY_POD_PORT, GATEWAY_SELECTOR, ISTIO_NAMESPACE};
use crate::lifecycle::state;
use crate::lifecycle::state::IngressKind;

mod tunnel;

pub use tunnel::{TunnelExited, TunnelStopped, stop_tunnel, tunnel};
use tunnel::{recorded_tunnel, sudo_without_password};

/// How long a later command may wait for a tunnel it restarted ([`reopen_recorded`]): as long as `lab up` waits.
pub const REOPEN_DEADLINE: Duration = Duration::from_secs(120);

/// How `lab up` reaches the ingress gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngressMode {
    /// The tunnel when `sudo -n true` works (it needs root for port 80), else a port-forward.
    Auto,
    /// `minikube tunnel` in the background; the gateway gets an external address.
    Tunnel,
    /// A port-forward to a gateway pod, held while the command runs.
    PortForward,
    /// A URL the user already has (e.g. from their own `kubectl port-forward`).
    Url(String),
}

impl std::str::FromStr for IngressMode {
    type Err = String;

    fn from_str(text: &str) -> Result<IngressMode, String> {
        match text {
            "auto" => Ok(IngressMode::Auto),
            "tunnel" => Ok(IngressMode::Tunnel),
            "port-forward" => Ok(IngressMode::PortForward),
            url if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(IngressMode::Url(url.trim_end_matches('/').to_string()))
            }
            other => Err(format!(
                "expected auto, tunnel, port-forward or an http:// URL, found \"{other}\""
            )),
        }
    }
}

/// An open way to the gateway; a port-forward stops when this is dropped.
#[derive(Debug)]
pub struct Ingress {
    /// e.g. `http://10.96.12.5` or `http://127.0.0.1:41234`.
    pub url: String,
    /// How it is reached.
    pub kind: IngressKind,
    /// What reopening a recorded ingress had to do besides using it (a tunnel restarted), for the user.
    pub note: Option<String>,
    forward: Option<PortForward>,
}

impl Ingress {
    /// True when the URL only works while this process runs (a port-forward).
    pub fn held_by_this_process(&self) -> bool {
        self.forward.is_some()
    }
}

/// Opens the ingress as `mode` says; `deadline` bounds waiting for the tunnel's address.
pub async fn open(
    settings: &Settings,
    cluster: &Cluster,
    mode: &IngressMode,
    deadline: Duration,
) -> anyhow::Result<Ingress> {
    let resolved = match mode {
        IngressMode::Auto => {
            if sudo_without_password().await {
                IngressMode::Tunnel
            } else {
                IngressMode::PortForward
            }
        }
        other => other.clone(),
    };
    match resolved {
        IngressMode::Url(url) => Ok(Ingress {
            url,
            kind: IngressKind::Url,
            note: None,
            forward: None,
        }),
        IngressMode::Tunnel => {
            let url = tunnel(settings, cluster, deadline).await?;
            Ok(Ingress {
                url,
                kind: IngressKind::Tunnel,
                note: None,
                forward: None,
            })
        }
        IngressMode::PortForward | IngressMode::Auto => {
            let forward = port_forward(cluster).await?;
            Ok(Ingress {
                url: forward.url.clone(),
                kind: IngressKind::PortForward,
                note: None,
                forward: Some(forward),
            })
        }
    }
}

/// The ingress the last `lab up` recorded, made usable for this command (`lab stage`, `lab predict`), by its
/// recorded kind: a `port-forward`, whose URL died with the `lab up` that held it, is opened again for as long as
/// the returned [`Ingress`] lives; a `tunnel` whose process is gone (and whose address nothing else serves, such
/// as a tunnel started by hand) is restarted in the background when `sudo -n true` works, else the error says it
/// died and how to restart it; a `url` is used as given. Then the URL must take a connection, or the error names
/// the kind and the fix. `None` when no ingress is recorded; `deadline` bounds waiting for a restarted tunnel.
pub async fn reopen_recorded(settings: &Settings, deadline: Duration) -> anyhow::Result<Option<Ingress>> {
    let kind = state::read_ingress_kind(settings)?;
    let recorded = state::read_ingress_url(settings)?;
    match (kind, recorded) {
        (Some(IngressKind::PortForward), _) => {
            let client = kube_client::client_for(settings).await?;
            let forward = gateway_port_forward(&client).await?;
            Ok(Some(Ingress {
                url: forward.url.clone(),
                kind: IngressKind::PortForward,
                note: None,
                forward: Some(forward),
            }))
        }
        (_, None) => Ok(None),
        (Some(IngressKind::Tunnel), Some(url)) => recorded_tunnel(settings, url, deadline).await.map(Some),
        // `url`, or a state directory written before the kind was recorded.
        (_, Some(url)) => match reachable(&url).await {
            Ok(()) => Ok(Some(Ingress {
                url,
                kind: IngressKind::Url,
                note: None,
                forward: None,
            })),
            Err(error) => Err(LabError::not_ready(
                format!("the ingress URL {url}, given to `lab up --ingress`, does not take connections ({error})"),
                "start again what serves it (e.g. your own `kubectl port-forward`), or let the lab reach the gateway itself: `cargo xtask lab up --ingress auto`",
            )
            .into()),
        },
    }
}

/// Whether `url`'s host and port take a TCP connection (within 3 seconds); the error says why not.
async fn reachable(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|error| format!("not a URL: {error}"))?;
    let host = parsed.host_str().ok_or("the URL has no host")?.to_string();
    let port = parsed.port_or_known_default().ok_or("the URL has no port")?;
    let connect = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port));
    match tokio::time::timeout(Duration::from_secs(3), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer within 3s".to_string()),
    }
}

/// Forwards a free local port to a ready ingress-gateway pod's port 8080.
pub async fn port_forward(cluster: &Cluster) -> anyhow::Result<PortForward> {
    gateway_port_forward(&cluster.client).await
}

async fn gateway_port_forward(client: &kube::Client) -> anyhow::Result<PortForward> {
    port_forward_to_pod(client, ISTIO_NAMESPACE, GATEWAY_SELECTOR, GATEWAY_POD_PORT)
        .await
        .context("opening a port-forward to the ingress gateway")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingress_modes_parse() {
        assert_eq!("auto".parse(), Ok(IngressMode::Auto));
        assert_eq!("port-forward".parse(), Ok(IngressMode::PortForward));
        assert_eq!(
            "http://127.0.0.1:8080/".parse(),
            Ok(IngressMode::Url("http://127.0.0.1:8080".to_string()))
        );
        assert!("ftp://x".parse::<IngressMode>().is_err());
    }
}
