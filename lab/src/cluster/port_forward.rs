//! A local port forwarded to a pod's port through the API server, as `kubectl port-forward` does: the ingress
//! gateway's 8080 (a way in for the lab), its admin port 15000 (what it serves) and each TF Serving pod (references).

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use crate::cluster::diagnose::pod_ready;

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

/// Forwards a free local port to `pod_port` of a Running, ready pod in `namespace` matching the label `selector`
/// (`k=v,k2=v2`), as `kubectl port-forward` does: each local connection opens its own forward.
pub async fn port_forward_to_pod(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
    pod_port: u16,
) -> anyhow::Result<PortForward> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
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
