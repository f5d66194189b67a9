//! Reaching the Istio ingress gateway from this machine: `minikube tunnel` (supervised, in the background), a
//! kube-rs port-forward held while the command runs, or a URL given by hand; and the one prediction through it.

use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::ListParams;
use kube::runtime::wait::conditions::is_service_loadbalancer_provisioned;

use crate::Settings;
use crate::cluster::Cluster;
use crate::cluster::diagnose::pod_ready;
use crate::cluster::wait::wait_for;
use crate::istio::install::ISTIO_NAMESPACE;
use crate::state;
use crate::tool::ToolCommand;
use crate::tool::minikube::Minikube;

/// The ingress gateway's Service (and the label value of its pods).
pub const GATEWAY_SERVICE: &str = "istio-ingressgateway";
/// The port the gateway's pods listen on for plain HTTP (the Service maps 80 to it).
pub const GATEWAY_POD_PORT: u16 = 8080;

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
    /// `tunnel`, `port-forward` or `url`.
    pub kind: &'static str,
    forward: Option<PortForward>,
}

impl Ingress {
    /// True when the URL only works while this process runs (a port-forward).
    pub fn held_by_this_process(&self) -> bool {
        self.forward.is_some()
    }
}

/// The tunnel exited before the gateway got an address, or while we relied on it.
#[derive(Debug, thiserror::Error)]
#[error(
    "`minikube tunnel` exited ({status}) before the ingress gateway got an external address\nits log ({log}):\n{tail}\nhelp: run `sudo -v` (the tunnel needs root for port 80) and `cargo xtask lab up` again, or use `--ingress port-forward`"
)]
pub struct TunnelExited {
    /// How it exited.
    pub status: String,
    /// The log file.
    pub log: String,
    /// The end of the log.
    pub tail: String,
}

/// Opens the ingress as `mode` says; `deadline` bounds waiting for the tunnel's address.
pub async fn open(
    settings: &Settings,
    cluster: &Cluster,
    mode: &IngressMode,
    deadline: Duration,
) -> anyhow::Result<Ingress> {
    let resolved = match mode {
        IngressMode::Auto => match sudo_without_password().await {
            true => IngressMode::Tunnel,
            false => IngressMode::PortForward,
        },
        other => other.clone(),
    };
    match resolved {
        IngressMode::Url(url) => Ok(Ingress {
            url,
            kind: "url",
            forward: None,
        }),
        IngressMode::Tunnel => {
            let url = tunnel(settings, cluster, deadline).await?;
            Ok(Ingress {
                url,
                kind: "tunnel",
                forward: None,
            })
        }
        IngressMode::PortForward | IngressMode::Auto => {
            let forward = port_forward(cluster).await?;
            Ok(Ingress {
                url: forward.url.clone(),
                kind: "port-forward",
                forward: Some(forward),
            })
        }
    }
}

async fn sudo_without_password() -> bool {
    tokio::task::spawn_blocking(|| {
        crate::tool::sudo_without_password()
            .map(|output| output.success())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Starts `minikube tunnel -p P` in the background unless the recorded one still runs, then waits (on a watch)
/// until the gateway Service has an external address, failing early if the tunnel exits.
pub async fn tunnel(settings: &Settings, cluster: &Cluster, deadline: Duration) -> anyhow::Result<String> {
    let dir = state::state_dir(settings)?;
    let log_path = dir.join(state::TUNNEL_LOG_FILE);
    let running = state::read_tunnel_pid(settings)?.filter(|pid| state::process_alive(*pid));
    let handle = match running {
        Some(pid) => {
            tracing::info!(pid, "reusing the running minikube tunnel");
            None
        }
        None => {
            let minikube = Minikube::new(settings.minikube_program());
            let command = minikube.command("run minikube tunnel", &["tunnel", "-p", &settings.profile]);
            let handle = command.spawn_logged(&log_path)?;
            let pid = handle.pids().first().copied().unwrap_or_default();
            state::write_value(settings, state::TUNNEL_PID_FILE, &pid.to_string())?;
            Some(handle)
        }
    };
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), ISTIO_NAMESPACE);
    let object = format!("Service/{GATEWAY_SERVICE} in namespace \"{ISTIO_NAMESPACE}\"");
    let provisioned = wait_for(
        services,
        GATEWAY_SERVICE,
        &object,
        "given an external address",
        is_service_loadbalancer_provisioned(),
        deadline,
    );
    let service = match handle {
        None => provisioned.await?,
        Some(handle) => {
            // Poll the child rather than block on it: a blocked thread would keep the runtime from shutting down
            // while the tunnel (rightly) keeps running after `lab up`.
            let exited = async {
                loop {
                    match handle.try_wait() {
                        Ok(Some(output)) => return output.status.code(),
                        Ok(None) => tokio::time::sleep(Duration::from_millis(200)).await,
                        Err(_) => return None,
                    }
                }
            };
            tokio::select! {
                service = provisioned => service?,
                status = exited => {
                    let status = match status {
                        Some(code) => format!("exit code {code}"),
                        None => "killed by a signal".to_string(),
                    };
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(15).collect();
                    let _ = state::forget(settings, state::TUNNEL_PID_FILE);
                    return Err(TunnelExited {
                        status,
                        log: log_path.display().to_string(),
                        tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                    }
                    .into());
                }
            }
        }
    };
    // The gateway's plain-HTTP port (`http2`, 80 in Istio's default profile).
    let port = service
        .as_ref()
        .and_then(|service| service.spec.as_ref())
        .and_then(|spec| spec.ports.as_ref())
        .and_then(|ports| {
            ports
                .iter()
                .find(|port| port.name.as_deref() == Some("http2"))
                .map(|port| port.port)
        })
        .unwrap_or(80);
    let address = service
        .and_then(|service| service.status)
        .and_then(|status| status.load_balancer)
        .and_then(|lb| lb.ingress)
        .and_then(|ingress| ingress.into_iter().next())
        .and_then(|ingress| ingress.ip.or(ingress.hostname))
        .context("the ingress gateway's Service has no external address")?;
    match port {
        80 => Ok(format!("http://{address}")),
        port => Ok(format!("http://{address}:{port}")),
    }
}

/// Stops the tunnel `lab up` recorded, if it still runs.
pub fn stop_tunnel(settings: &Settings) -> anyhow::Result<Option<u32>> {
    let pid = state::read_tunnel_pid(settings)?;
    let Some(pid) = pid.filter(|pid| state::process_alive(*pid)) else {
        state::forget(settings, state::TUNNEL_PID_FILE)?;
        return Ok(None);
    };
    ToolCommand::new(
        "stop the minikube tunnel",
        std::path::Path::new("kill"),
        &[&pid.to_string()],
    )
    .run()?;
    state::forget(settings, state::TUNNEL_PID_FILE)?;
    Ok(Some(pid))
}

/// A local port forwarded to one pod's port; each connection gets its own forward. Stops when dropped.
#[derive(Debug)]
pub struct PortForward {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The pod the port leads to.
    pub pod: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PortForward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards a free local port to a ready ingress-gateway pod's port 8080.
pub async fn port_forward(cluster: &Cluster) -> anyhow::Result<PortForward> {
    port_forward_to_pod(cluster, ISTIO_NAMESPACE, "istio=ingressgateway", GATEWAY_POD_PORT)
        .await
        .context("opening a port-forward to the ingress gateway")
}

/// Forwards a free local port to `pod_port` of a Running, ready pod in `namespace` matching the label `selector`
/// (`k=v,k2=v2`), as `kubectl port-forward` does: each local connection opens its own forward.
pub async fn port_forward_to_pod(
    cluster: &Cluster,
    namespace: &str,
    selector: &str,
    pod_port: u16,
) -> anyhow::Result<PortForward> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), namespace);
    let listed = pods
        .list(&ListParams::default().labels(selector))
        .await
        .with_context(|| format!("listing the pods matching \"{selector}\" in namespace \"{namespace}\""))?;
    let running = |pod: &Pod| {
        let phase = pod.status.as_ref().and_then(|status| status.phase.as_deref());
        phase == Some("Running") && pod_ready(pod) && pod.metadata.deletion_timestamp.is_none()
    };
    let pod = listed
        .items
        .iter()
        .find(|pod| running(pod))
        .and_then(|pod| pod.metadata.name.clone())
        .with_context(|| {
            format!(
                "no Running, ready pod matches \"{selector}\" in namespace \"{namespace}\"\nhelp: run `kubectl get pods -n {namespace} -l {selector}`"
            )
        })?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("opening a local port for the port-forward")?;
    let port = listener.local_addr()?.port();
    let forwarded_pod = pod.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut connection, _)) = listener.accept().await else {
                return;
            };
            let pods = pods.clone();
            let pod = forwarded_pod.clone();
            tokio::spawn(async move {
                let forwarded = async {
                    let mut forwarder = pods.portforward(&pod, &[pod_port]).await?;
                    let mut upstream = forwarder
                        .take_stream(pod_port)
                        .context("the port-forward gave no stream")?;
                    tokio::io::copy_bidirectional(&mut connection, &mut upstream).await?;
                    anyhow::Ok(())
                };
                if let Err(error) = forwarded.await {
                    tracing::warn!(%error, pod, "port-forward connection failed");
                }
            });
        }
    });
    Ok(PortForward {
        url: format!("http://127.0.0.1:{port}"),
        pod,
        task,
    })
}

/// The body of the smoke prediction: the lab's Grace Hopper photo as the `keras` payload (224×224×3, 'caffe'
/// preprocessing), which `serving_default` of both exported models takes.
pub fn smoke_request_body() -> anyhow::Result<bytes::Bytes> {
    let payload = crate::payload::build_payload(crate::payload::PayloadKind::Keras, crate::predict::DEFAULT_IMAGE)
        .context("building the smoke prediction's payload")?;
    Ok(payload.body)
}

/// Sends one prediction through the gateway and checks it returns 1000 scores, retrying refused or 5xx answers
/// (Envoy takes a moment to receive new routes) until `deadline`.
pub async fn smoke_prediction(url: &str, deadline: Duration) -> anyhow::Result<usize> {
    let endpoint = format!("{url}/v1/models/image_classifier:predict");
    let client = crate::http::client_with_total_timeout(Duration::from_secs(60))?;
    let body = smoke_request_body()?;
    let started = Instant::now();
    let mut last_problem;
    loop {
        let attempt = client
            .post(&endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        last_problem = match attempt {
            Ok(response) if response.status().is_success() => {
                let value: serde_json::Value = response.json().await.context("reading the prediction")?;
                let scores = value["predictions"][0].as_array().map(Vec::len).unwrap_or(0);
                if scores != 1000 {
                    anyhow::bail!(
                        "the prediction through {endpoint} returned {scores} scores, expected 1000\nhelp: check that the models are ImageNet ResNets (`cargo xtask lab up --models export`)"
                    );
                }
                return Ok(scores);
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                let retry = status.is_server_error() || status == reqwest::StatusCode::NOT_FOUND;
                if !retry {
                    anyhow::bail!("the prediction through {endpoint} failed: {status}: {}", text.trim());
                }
                format!("{status}: {}", text.trim())
            }
            Err(error) => error.to_string(),
        };
        if started.elapsed() >= deadline {
            anyhow::bail!(
                "no prediction through {endpoint} within {}s (last answer: {last_problem})\nhelp: run `cargo xtask lab status`, then `cargo xtask lab up` again",
                deadline.as_secs()
            );
        }
        // Poll again shortly: the deadline above bounds the whole wait.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
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

    #[test]
    fn the_smoke_body_is_one_224_by_224_rgb_image() {
        let body: serde_json::Value = serde_json::from_slice(&smoke_request_body().unwrap()).unwrap();
        let image = &body["instances"][0];
        assert_eq!(image.as_array().unwrap().len(), 224);
        assert_eq!(image[0].as_array().unwrap().len(), 224);
        assert_eq!(image[0][0].as_array().unwrap().len(), 3);
        assert!(image[0][0][0].is_f64(), "keras payloads are floats: {}", image[0][0]);
    }
}
