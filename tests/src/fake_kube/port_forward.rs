//! Pod port-forwards as the API server serves them (`GET …/pods/NAME/portforward?ports=P` upgraded to a websocket
//! with the `v4.channel.k8s.io` protocol), each leading to a loopback address a test chose for the pod (by label
//! selector and port), and the count of those asked of the ingress gateway.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{Query, State};
use axum::response::Response;
use serde_json::Value;

use super::{FakeKube, SharedState, selected, status_response};

/// Where port-forwards lead.
#[derive(Debug, Default)]
pub(super) struct Targets {
    /// Where a port-forward that no selector below matches leads.
    fallback: Option<SocketAddr>,
    /// (label selector, pod port or any, target): those naming the port first, then the others, each in order,
    /// before `fallback`.
    selected: Vec<(String, Option<u16>, SocketAddr)>,
}

impl Targets {
    /// Where a port-forward to `port` of `pod` leads, if anywhere.
    fn target(&self, pod: &Value, port: u16) -> Option<SocketAddr> {
        let pod_selected = |selector: &String| {
            let query = HashMap::from([("labelSelector".to_string(), selector.clone())]);
            selected(pod, &query)
        };
        let for_port = self
            .selected
            .iter()
            .find(|(selector, pod_port, _)| *pod_port == Some(port) && pod_selected(selector));
        let for_pod = self
            .selected
            .iter()
            .find(|(selector, pod_port, _)| pod_port.is_none() && pod_selected(selector));
        for_port.or(for_pod).map(|(_, _, target)| *target).or(self.fallback)
    }
}

impl FakeKube {
    /// Makes pod port-forwards (`…/pods/NAME/portforward`, websocket `v4.channel.k8s.io`) reach `target`, as if
    /// the pod's port were served there.
    pub fn port_forward_to(&self, target: SocketAddr) {
        self.lock().port_forwards.fallback = Some(target);
    }

    /// Makes port-forwards to the pods matching the label `selector` (`k=v,k2=v2`, e.g. `version=resnet50`) reach
    /// `target` instead; selectors are checked in the order given, then [`FakeKube::port_forward_to`]'s target.
    pub fn port_forward_selected_to(&self, selector: &str, target: SocketAddr) {
        self.lock()
            .port_forwards
            .selected
            .push((selector.to_string(), None, target));
    }

    /// Makes port-forwards to port `pod_port` of the pods matching `selector` reach `target` (checked before the
    /// selectors of [`FakeKube::port_forward_selected_to`]): a pod with several ports, like the ingress gateway's
    /// 8080 (HTTP) and 15000 (Envoy's admin API).
    pub fn port_forward_port_to(&self, selector: &str, pod_port: u16, target: SocketAddr) {
        self.lock()
            .port_forwards
            .selected
            .push((selector.to_string(), Some(pod_port), target));
    }

    /// How many port-forwards were asked of the ingress gateway's pods so far (to pod port `port`, or to any).
    pub fn gateway_port_forwards(&self, port: Option<u16>) -> usize {
        let port = port.map(|port| format!("ports={port}"));
        self.requests()
            .iter()
            .filter(|request| {
                request
                    .path()
                    .starts_with("/api/v1/namespaces/istio-system/pods/istio-ingressgateway-")
                    && request.path().ends_with("/portforward")
                    && port.as_ref().is_none_or(|port| request.uri.contains(port.as_str()))
            })
            .count()
    }
}

/// `GET …/pods/NAME/portforward?ports=P` upgraded to a websocket with the `v4.channel.k8s.io` protocol: channel 0
/// carries the data of port P and channel 1 its errors; each channel's first frame is the port (little endian).
pub(super) async fn port_forward(
    State(shared): State<SharedState>,
    axum::extract::Path((namespace, name)): axum::extract::Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    use axum::extract::ws::Message;
    use futures::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port: u16 = query.get("ports").and_then(|ports| ports.parse().ok()).unwrap_or(0);
    let target = {
        let locked = shared.0.lock().expect("lock");
        let key = ("pods".to_string(), namespace.clone(), name.clone());
        let Some(pod) = locked.objects.get(&key) else {
            return status_response(404, "NotFound", &format!("pods \"{name}\" not found"));
        };
        locked.port_forwards.target(pod, port)
    };
    let Some(target) = target else {
        return status_response(500, "InternalError", "the fake has no port-forward target");
    };
    upgrade
        .protocols(["v4.channel.k8s.io"])
        .on_upgrade(move |socket| async move {
            let (mut sink, mut stream) = socket.split();
            let prefix = port.to_le_bytes();
            for channel in [0u8, 1u8] {
                let frame = vec![channel, prefix[0], prefix[1]];
                if sink.send(Message::Binary(frame.into())).await.is_err() {
                    return;
                }
            }
            let Ok(backend) = tokio::net::TcpStream::connect(target).await else {
                let _ = sink
                    .send(Message::Binary(b"\x01connection refused".to_vec().into()))
                    .await;
                return;
            };
            let (mut backend_read, mut backend_write) = backend.into_split();
            let to_backend = async move {
                while let Some(Ok(message)) = stream.next().await {
                    let data = match message {
                        Message::Binary(bytes) if bytes.len() > 1 && bytes[0] == 0 => bytes,
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    if backend_write.write_all(&data[1..]).await.is_err() {
                        break;
                    }
                }
                let _ = backend_write.shutdown().await;
            };
            let from_backend = async move {
                let mut buffer = vec![0u8; 16 * 1024];
                loop {
                    match backend_read.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => {
                            let mut frame = Vec::with_capacity(read + 1);
                            frame.push(0u8);
                            frame.extend_from_slice(&buffer[..read]);
                            if sink.send(Message::Binary(frame.into())).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = sink.send(Message::Close(None)).await;
            };
            tokio::join!(to_backend, from_backend);
        })
}
