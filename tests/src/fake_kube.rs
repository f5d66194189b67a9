//! A fake Kubernetes API server on loopback that speaks enough of the REST protocol for the real kube-rs client.
//!
//! It starts with `/version` and the node list (what `lab doctor` reads) and records every request, so tests can
//! assert exactly what was asked. A kubeconfig pointing at it is written by [`FakeKube::write_kubeconfig`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One request the fake API received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub uri: String,
}

#[derive(Debug)]
struct Shared {
    git_version: String,
    architecture: String,
    requests: Vec<RecordedRequest>,
}

/// A running fake API server; it stops when dropped.
pub struct FakeKube {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeKube {
    /// Starts a server that reports Kubernetes `git_version` with one node of `architecture` (`amd64`, `arm64`).
    /// Must be called inside a tokio runtime.
    pub async fn start(git_version: &str, architecture: &str) -> FakeKube {
        let shared = Arc::new(Mutex::new(Shared {
            git_version: git_version.to_string(),
            architecture: architecture.to_string(),
            requests: Vec::new(),
        }));
        let app = Router::new()
            .route("/version", get(version))
            .route("/api/v1/nodes", get(nodes))
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(shared.clone(), record))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake API");
        let addr = listener.local_addr().expect("local addr");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake API server");
        });
        FakeKube { addr, shared, server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().expect("lock").requests.clone()
    }

    /// Writes a kubeconfig with one context `context` pointing at this server.
    pub fn write_kubeconfig(&self, path: &Path, context: &str) {
        write_kubeconfig(path, context, &self.url());
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Writes a kubeconfig with one context `context` whose cluster is at `server`.
pub fn write_kubeconfig(path: &Path, context: &str, server: &str) {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {context}\n  cluster:\n    server: {server}\ncontexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}\n    namespace: default\ncurrent-context: {context}\nusers:\n- name: {context}\n  user:\n    token: fake-token\n"
    );
    std::fs::write(path, text).expect("write kubeconfig");
}

async fn record(State(shared): State<Arc<Mutex<Shared>>>, request: Request, next: axum::middleware::Next) -> Response {
    let recorded = RecordedRequest {
        method: request.method().to_string(),
        uri: request.uri().to_string(),
    };
    shared.lock().expect("lock").requests.push(recorded);
    next.run(request).await
}

/// `GET /version` as an API server answers it (`version.Info`).
async fn version(State(shared): State<Arc<Mutex<Shared>>>) -> impl IntoResponse {
    let git_version = shared.lock().expect("lock").git_version.clone();
    let minor = git_version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .unwrap_or("0")
        .to_string();
    axum::Json(serde_json::json!({
        "major": "1",
        "minor": minor,
        "gitVersion": git_version,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2022-07-13T14:23:26Z",
        "goVersion": "go1.18.3",
        "compiler": "gc",
        "platform": "linux/amd64"
    }))
}

/// `GET /api/v1/nodes`: one Ready node with the configured architecture.
async fn nodes(State(shared): State<Arc<Mutex<Shared>>>) -> impl IntoResponse {
    let (architecture, git_version) = {
        let shared = shared.lock().expect("lock");
        (shared.architecture.clone(), shared.git_version.clone())
    };
    axum::Json(serde_json::json!({
        "kind": "NodeList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "1"},
        "items": [{
            "metadata": {"name": "minikube", "labels": {"kubernetes.io/arch": architecture}},
            "status": {
                "nodeInfo": {
                    "architecture": architecture,
                    "operatingSystem": "linux",
                    "kubeletVersion": git_version,
                    "kubeProxyVersion": git_version,
                    "containerRuntimeVersion": "docker://20.10.17",
                    "kernelVersion": "5.15.0",
                    "osImage": "Ubuntu 20.04.4 LTS",
                    "machineID": "m", "systemUUID": "s", "bootID": "b"
                },
                "conditions": [{"type": "Ready", "status": "True"}]
            }
        }]
    }))
}

/// Anything else: a Kubernetes `Status` 404.
async fn not_found(request: Request) -> Response {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("the server could not find the requested resource ({})", request.uri()),
        "reason": "NotFound", "code": 404
    });
    (axum::http::StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}
