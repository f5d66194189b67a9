//! A stand-in for the ingress gateway in front of TF Serving: answers `POST /v1/models/image_classifier:predict`
//! with 1000 scores (or a scripted status), and counts the predictions it received.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;

/// A running stand-in; it stops when dropped.
pub struct SmokeServer {
    addr: SocketAddr,
    received: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl SmokeServer {
    /// Starts a server whose predictions carry `scores` scores each. Must be called inside a tokio runtime.
    pub async fn start(scores: usize) -> SmokeServer {
        let received = Arc::new(AtomicUsize::new(0));
        let counter = received.clone();
        let app = Router::new().route(
            "/v1/models/image_classifier:predict",
            post(move |body: axum::body::Bytes| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let request: serde_json::Value = match serde_json::from_slice(&body) {
                        Ok(request) => request,
                        Err(_) => return (StatusCode::BAD_REQUEST, "not JSON".to_string()),
                    };
                    let instances = request["instances"].as_array().map(Vec::len).unwrap_or(0);
                    if instances == 0 {
                        return (StatusCode::BAD_REQUEST, "no instances".to_string());
                    }
                    let scores = vec![1.0 / scores as f64; scores];
                    let answer = serde_json::json!({"predictions": vec![scores; instances]});
                    (StatusCode::OK, answer.to_string())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("smoke server");
        });
        SmokeServer { addr, received, server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many predictions arrived.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

impl Drop for SmokeServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}
