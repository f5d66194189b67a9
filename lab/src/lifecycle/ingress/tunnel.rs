//! `minikube tunnel` as the way in: started in the background and supervised (its log and pid in the state dir,
//! reused while it runs), the gateway Service's external address awaited, a recorded tunnel restarted when it died,
//! and stopped with the interrupt on which it cleans up.

use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::runtime::wait::conditions::is_service_loadbalancer_provisioned;

use super::{Ingress, reachable};
use crate::Settings;
use crate::cluster::wait::wait_for;
use crate::cluster::{Cluster, kube_client};
use crate::error::LabError;
use crate::istio::install::{GATEWAY_SERVICE, ISTIO_NAMESPACE};
use crate::lifecycle::state;
use crate::lifecycle::state::IngressKind;
use crate::tool::minikube::Minikube;
use crate::tool::{Signal, signal_process_group};

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

/// The recorded tunnel's URL, restarting the tunnel if it died (see [`reopen_recorded`]).
pub(super) async fn recorded_tunnel(settings: &Settings, url: String, deadline: Duration) -> anyhow::Result<Ingress> {
    let recorded_pid = state::read_tunnel_pid(settings)?;
    let log = state::state_dir(settings)?.join(state::TUNNEL_LOG_FILE);
    let profile = &settings.profile;
    let ingress = |url: String, note: Option<String>| Ingress {
        url,
        kind: IngressKind::Tunnel,
        note,
        forward: None,
    };
    if let Some(pid) = recorded_pid.filter(|pid| state::process_alive(*pid)) {
        return match reachable(&url).await {
            Ok(()) => Ok(ingress(url, None)),
            Err(error) => Err(LabError::not_ready(
                format!(
                    "the ingress at {url} does not take connections ({error}), although the `minikube tunnel` that `lab up` started (pid {pid}) runs"
                ),
                format!(
                    "read the tunnel's log ({}); restart it with `kill -INT {pid}` (it cleans up on an interrupt), then this command again",
                    log.display()
                ),
            )
            .into()),
        };
    }
    let was = match recorded_pid {
        Some(pid) => format!("pid {pid}"),
        None => "its pid is not recorded".to_string(),
    };
    // A tunnel started by hand may serve the address meanwhile (and a second one would refuse to start).
    if reachable(&url).await.is_ok() {
        tracing::info!(%url, "the recorded minikube tunnel is gone, but the ingress takes connections");
        return Ok(ingress(url, None));
    }
    if !sudo_without_password().await {
        return Err(LabError::not_ready(
            format!(
                "the `minikube tunnel` that `lab up` started ({was}) is no longer running, so the ingress at {url} does not take connections, and restarting it needs sudo, which asks for a password"
            ),
            format!(
                "run `sudo -v`, then this command again (it restarts the tunnel in the background); or keep `minikube tunnel -p {profile}` running in another terminal; or use a port-forward instead: `cargo xtask lab up --ingress port-forward`"
            ),
        )
        .into());
    }
    let client = kube_client::client_for(settings).await?;
    let restarted = tunnel_with(settings, &client, deadline).await?;
    if restarted != url {
        state::write_ingress_url(settings, &restarted)?;
    }
    let pid = state::read_tunnel_pid(settings)?.unwrap_or_default();
    let note = format!(
        "restarted `minikube tunnel` ({was} was no longer running): pid {pid}, which keeps running in the background (log: {})",
        log.display()
    );
    Ok(ingress(restarted, Some(note)))
}

pub(super) async fn sudo_without_password() -> bool {
    tokio::task::spawn_blocking(|| {
        crate::tool::sudo_without_password()
            .map(|output| output.success())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Starts `minikube tunnel -p P` in the background unless the recorded one still runs, then waits (on a watch)
/// until the gateway Service has an external address and that address takes a connection, failing early if the
/// tunnel exits.
pub async fn tunnel(settings: &Settings, cluster: &Cluster, deadline: Duration) -> anyhow::Result<String> {
    tunnel_with(settings, &cluster.client, deadline).await
}

async fn tunnel_with(settings: &Settings, client: &kube::Client, deadline: Duration) -> anyhow::Result<String> {
    let started = Instant::now();
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
    let services: Api<Service> = Api::namespaced(client.clone(), ISTIO_NAMESPACE);
    let object = format!("Service/{GATEWAY_SERVICE} in namespace \"{ISTIO_NAMESPACE}\"");
    let ready = async {
        let service = wait_for(
            services,
            GATEWAY_SERVICE,
            &object,
            "given an external address",
            is_service_loadbalancer_provisioned(),
            deadline,
        )
        .await?;
        let url = gateway_url(service)?;
        // The address may be older than this tunnel (a killed tunnel leaves it on the Service) and the route or
        // forward behind it comes a moment later.
        until_reachable(&url, deadline.saturating_sub(started.elapsed()), &log_path).await?;
        anyhow::Ok(url)
    };
    match handle {
        None => ready.await,
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
                url = ready => url,
                status = exited => {
                    let status = match status {
                        Some(code) => format!("exit code {code}"),
                        None => "killed by a signal".to_string(),
                    };
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(15).collect();
                    let _ = state::forget(settings, state::TUNNEL_PID_FILE);
                    Err(TunnelExited {
                        status,
                        log: log_path.display().to_string(),
                        tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                    }
                    .into())
                }
            }
        }
    }
}

/// `http://ADDRESS[:PORT]` of the gateway Service's external address and its plain-HTTP port (`http2`, 80 in
/// Istio's default profile).
fn gateway_url(service: Option<Service>) -> anyhow::Result<String> {
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

/// Waits until `url` takes a connection, at most `deadline`. A bounded poll: nothing announces that the tunnel's
/// route or forward is in place.
async fn until_reachable(url: &str, deadline: Duration, log: &std::path::Path) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let error = match reachable(url).await {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        if started.elapsed() >= deadline {
            anyhow::bail!(
                "the ingress gateway's external address {url} took no connection within {}s of `minikube tunnel` giving it ({error})\nhelp: read the tunnel's log ({}), and run `cargo xtask lab status`",
                deadline.as_secs(),
                log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How the recorded tunnel was stopped.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TunnelStopped {
    /// Its pid (and process group).
    pub pid: u32,
    /// The signal it stopped on: `SIGINT` unless it ignored the interrupt for `interrupt_timeout`.
    pub signal: &'static str,
    /// True when it stopped on the interrupt, the only signal on which `minikube tunnel` removes its route to the
    /// service CIDR and the gateway's external IP.
    pub cleaned_up: bool,
    /// How long it was given to stop after the interrupt.
    pub interrupt_timeout_s: u64,
}

/// Stops the tunnel `lab up` recorded, if it still runs, the way minikube expects: an interrupt (SIGINT, Ctrl-C)
/// to its process group, because `minikube tunnel` cleans up — removes its route to the service CIDR and the
/// LoadBalancer ingress IPs it set — only when interrupted (`cmd/minikube/cmd/tunnel.go` cancels the tunnel on
/// `os.Interrupt` alone; the cancel runs `tunnel.cleanup()`, `pkg/minikube/tunnel/tunnel_manager.go`; any other
/// signal kills it with both left behind). One that is still running `interrupt_timeout` later gets SIGTERM, then
/// SIGKILL (5 seconds each).
pub async fn stop_tunnel(settings: &Settings, interrupt_timeout: Duration) -> anyhow::Result<Option<TunnelStopped>> {
    let pid = state::read_tunnel_pid(settings)?;
    let Some(pid) = pid.filter(|pid| state::process_alive(*pid)) else {
        state::forget(settings, state::TUNNEL_PID_FILE)?;
        return Ok(None);
    };
    let steps = [
        (Signal::Interrupt, interrupt_timeout),
        (Signal::Terminate, Duration::from_secs(5)),
        (Signal::Kill, Duration::from_secs(5)),
    ];
    let stopped = |signal: Signal| TunnelStopped {
        pid,
        signal: signal.name(),
        cleaned_up: signal == Signal::Interrupt,
        interrupt_timeout_s: interrupt_timeout.as_secs(),
    };
    let mut previous = None;
    for (signal, wait) in steps {
        tracing::info!(pid, signal = signal.name(), "stopping the minikube tunnel");
        let delivered = tokio::task::spawn_blocking(move || signal_process_group(pid, signal))
            .await
            .context("signalling the minikube tunnel")??;
        if !delivered {
            // The tunnel leads a process group of its own: with no process left in that group it has stopped (on
            // the previous signal), or, at the first signal, the pid now names some other process.
            state::forget(settings, state::TUNNEL_PID_FILE)?;
            return Ok(previous.map(stopped));
        }
        if until_stopped(pid, wait).await {
            state::forget(settings, state::TUNNEL_PID_FILE)?;
            return Ok(Some(stopped(signal)));
        }
        previous = Some(signal);
    }
    anyhow::bail!(
        "`minikube tunnel` (pid {pid}) still runs after SIGINT, SIGTERM and SIGKILL\nhelp: look at it with `ps -o pid,stat,cmd -g {pid}` (a process in state D waits on the kernel), and stop it with `sudo kill -KILL -- -{pid}`"
    )
}

/// Waits until `pid` has stopped, at most `deadline`; true when it did. A bounded poll: the tunnel is not this
/// process's child (the `lab up` that started it has ended), so nothing tells it when the tunnel exits.
async fn until_stopped(pid: u32, deadline: Duration) -> bool {
    let started = Instant::now();
    loop {
        if !state::process_alive(pid) {
            return true;
        }
        if started.elapsed() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
