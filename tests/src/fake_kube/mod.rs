//! A fake Kubernetes API server on loopback that speaks enough of the REST protocol for the real kube-rs client.
//!
//! It answers `/version`, discovery as a 1.24 server with Istio's CRDs once Established ([`discovery`]), and GET,
//! LIST (built-in items without their type), PATCH (server-side apply with managed fields, conflicts, `force`,
//! defaults and `dryRun`: [`apply`]), DELETE and `?watch=true` streams, from an in-memory store with resource
//! versions. Controllers (`controllers.rs`) roll Deployments out and run Jobs' pods over a few (configurable)
//! milliseconds, the way a real cluster does over seconds, with each object's [`Scenario`]; pods, events and logs
//! are made up to match, so the diagnosis has something to show. Watches (`watch.rs`) follow the API server's watch
//! cache: bookmarks, `timeoutSeconds`, 410 Gone. Pod port-forwards (`port_forward.rs`) lead to loopback addresses
//! the test chooses per pod and port.
//! Every request is recorded, so tests can assert exactly what was asked. A kubeconfig pointing at it is written by
//! [`FakeKube::write_kubeconfig`].

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

mod apply;
mod controllers;
mod discovery;
mod port_forward;
mod watch;

pub use controllers::Timing;
use controllers::{make_deployment_available, store};
use discovery::{Kind, api_version_of};

/// One request the fake API received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
}

impl RecordedRequest {
    /// True for a request that changes the store: a PATCH, POST, PUT or DELETE that is not a dry run.
    pub fn is_write(&self) -> bool {
        let writes = matches!(self.method.as_str(), "PATCH" | "POST" | "PUT" | "DELETE");
        writes && !self.uri.contains("dryRun=All")
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }
}

/// How a Deployment or Job behaves once applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Rolled out at once: pods running and ready (with an `istio-proxy` sidecar in an injected namespace).
    Available,
    /// Not ready until a watch on it is opened, then becomes available: proves waits are driven by watch events.
    AvailableOnWatch,
    /// Never ready: its pod is stuck in `ImagePullBackOff`, with an event saying why.
    ImagePullBackOff,
    /// Never ready: TF Serving starts and crashes (`CrashLoopBackOff`) with a log naming the model path.
    CrashLoop,
    /// Never ready: the pod stays Pending because the node lacks memory (a `FailedScheduling` event).
    Unschedulable,
    /// Never ready: an amd64-only image on an arm64 node crashes with "exec format error".
    WrongArchitecture,
    /// For a Job: its pod starts, and its container exits 1 on every try, until the backoff limit fails the Job.
    Failing,
}

/// A failure to answer instead of the normal response.
#[derive(Debug, Clone)]
struct Injected {
    method: String,
    path_contains: String,
    code: u16,
    reason: String,
    message: String,
}

/// Key of a stored object: (plural, namespace or "", name).
type Key = (String, String, String);

#[derive(Debug, Clone)]
struct WatchEvent {
    resource_version: u64,
    plural: String,
    namespace: String,
    event_type: &'static str,
    object: Value,
}

struct Shared {
    git_version: String,
    architecture: String,
    requests: Vec<RecordedRequest>,
    objects: BTreeMap<Key, Value>,
    resource_version: u64,
    events: Vec<WatchEvent>,
    scenarios: HashMap<String, Scenario>,
    injected: Vec<Injected>,
    istio_installed_on_marker: Option<String>,
    /// How long after `GET /fake/install-istio` Istio's CRDs become Established.
    crds_established_after: std::time::Duration,
    tunnel_address: Option<(String, u16)>,
    /// Where pod port-forwards lead.
    port_forwards: port_forward::Targets,
    /// How long the controllers take.
    timing: Timing,
    /// What the controllers do later (see `controllers::spawn_driver`).
    timers: Vec<controllers::Timer>,
    /// Watches from a resource version older than this get 410 Gone (the watch cache's window starts here).
    compacted_to: u64,
    /// Bumped to end every open watch stream.
    watch_epoch: u64,
    /// How many watches were answered 410 Gone.
    gone_served: usize,
}

type SharedState = Arc<(Mutex<Shared>, tokio::sync::Notify)>;

/// A running fake API server; it stops when dropped.
pub struct FakeKube {
    addr: SocketAddr,
    shared: SharedState,
    server: tokio::task::JoinHandle<()>,
    controllers: tokio::task::JoinHandle<()>,
}

impl FakeKube {
    /// Starts a server that reports Kubernetes `git_version` with one node of `architecture` (`amd64`, `arm64`).
    /// Must be called inside a tokio runtime.
    pub async fn start(git_version: &str, architecture: &str) -> FakeKube {
        let shared: SharedState = Arc::new((
            Mutex::new(Shared {
                git_version: git_version.to_string(),
                architecture: architecture.to_string(),
                requests: Vec::new(),
                objects: BTreeMap::new(),
                resource_version: 100,
                events: Vec::new(),
                scenarios: HashMap::new(),
                injected: Vec::new(),
                istio_installed_on_marker: None,
                crds_established_after: std::time::Duration::from_millis(300),
                tunnel_address: None,
                port_forwards: port_forward::Targets::default(),
                timing: Timing::default(),
                timers: Vec::new(),
                compacted_to: 0,
                watch_epoch: 0,
                gone_served: 0,
            }),
            tokio::sync::Notify::new(),
        ));
        let app = Router::new()
            .route("/version", get(version))
            .route("/api/v1/nodes", get(nodes))
            .route("/api", get(core_versions))
            .route("/apis", get(group_list))
            .route("/fake/install-istio", get(install_istio_marker))
            .route("/fake/tunnel-up", get(tunnel_up_marker))
            .route(
                "/api/v1/namespaces/{namespace}/pods/{name}/portforward",
                get(port_forward::port_forward),
            )
            .fallback(resources)
            .layer(axum::middleware::from_fn_with_state(shared.clone(), record))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake API");
        let addr = listener.local_addr().expect("local addr");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake API server");
        });
        let controllers = controllers::spawn_driver(shared.clone());
        FakeKube {
            addr,
            shared,
            server,
            controllers,
        }
    }

    /// Sets how long the controllers take from now on (e.g. a long pod grace period, so a Terminating pod is
    /// certainly still listed when a test looks).
    pub fn timing(&self, timing: Timing) {
        self.lock().timing = timing;
    }

    /// Compacts the watch history and ends every open watch, as an API server does when its watch cache's window
    /// moves on (other writes happened) and a watch times out: a client that watches again from the resource
    /// version it had gets a 410 Gone and must list again.
    pub fn compact_and_close_watches(&self) {
        let mut shared = self.lock();
        // Writes this client never saw (a lease renewal, an event elsewhere) moved the window past its version.
        shared.resource_version += 1;
        shared.compacted_to = shared.resource_version;
        shared.events.clear();
        shared.watch_epoch += 1;
        drop(shared);
        self.shared.1.notify_waiters();
    }

    /// How many watches were answered with 410 Gone so far.
    pub fn gone_served(&self) -> usize {
        self.lock().gone_served
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// The requests that changed the store (not dry runs).
    pub fn writes(&self) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(RecordedRequest::is_write).collect()
    }

    /// Forgets the recorded requests (e.g. between a first and a second `lab up`).
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Writes a kubeconfig with one context `context` pointing at this server.
    pub fn write_kubeconfig(&self, path: &Path, context: &str) {
        write_kubeconfig(path, context, &self.url());
    }

    /// A [`lab::cluster::Cluster`] connected to this server (discovery done), without touching `KUBECONFIG`.
    pub async fn connect(&self) -> lab::cluster::Cluster {
        let config = kube::Config::new(self.url().parse().expect("server URL"));
        let client = kube::Client::try_from(config).expect("kube client");
        lab::cluster::Cluster::from_client(client, "fake")
            .await
            .expect("discovery against the fake API")
    }

    /// How the Deployment or Job `name` behaves when applied (default [`Scenario::Available`]).
    pub fn scenario(&self, name: &str, scenario: Scenario) {
        self.lock().scenarios.insert(name.to_string(), scenario);
    }

    /// Makes Deployment `name` in `namespace` available now (a stuck rollout that recovers).
    pub fn make_available(&self, namespace: &str, name: &str) {
        let mut shared = self.lock();
        make_deployment_available(&mut shared, namespace, name);
        drop(shared);
        self.shared.1.notify_waiters();
    }

    /// Answers the first request with `method` whose path contains `path_contains` with `code` and a `Status`.
    pub fn fail_once(&self, method: &str, path_contains: &str, code: u16, reason: &str, message: &str) {
        self.lock().injected.push(Injected {
            method: method.to_string(),
            path_contains: path_contains.to_string(),
            code,
            reason: reason.to_string(),
            message: message.to_string(),
        });
    }

    /// Puts Istio `version`'s control plane in place, as installed long ago: Istio's CRDs (Established),
    /// `istiod` and `istio-ingressgateway` Deployments (available) and the `istio-ingressgateway` Service in
    /// `istio-system`.
    pub fn install_istio(&self, version: &str) {
        let mut shared = self.lock();
        install_istio_objects(&mut shared, version);
        discovery::establish_crds(&mut shared);
        drop(shared);
        self.shared.1.notify_waiters();
    }

    /// Makes `GET /fake/install-istio` (what a scripted fake `istioctl install` calls) install Istio `version`.
    pub fn install_istio_when_asked(&self, version: &str) {
        self.lock().istio_installed_on_marker = Some(version.to_string());
    }

    /// How long after the fake `istioctl install` Istio's CRDs become Established (default 300 ms).
    pub fn crds_established_after(&self, delay: std::time::Duration) {
        self.lock().crds_established_after = delay;
    }

    /// Makes `GET /fake/tunnel-up` (what a scripted fake `minikube tunnel` calls) give the ingress gateway's
    /// Service the external address `ip`, with its `http2` port set to `port` (so tests can serve it on loopback).
    pub fn tunnel_gives_address(&self, ip: &str, port: u16) {
        self.lock().tunnel_address = Some((ip.to_string(), port));
    }

    /// The stored object, if any (`plural` as in the URL: `deployments`, `virtualservices`).
    pub fn object(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let key = (plural.to_string(), namespace.to_string(), name.to_string());
        self.lock().objects.get(&key).cloned()
    }

    /// Names of the stored objects of `plural` in `namespace`.
    pub fn names(&self, plural: &str, namespace: &str) -> Vec<String> {
        self.lock()
            .objects
            .keys()
            .filter(|(p, ns, _)| p == plural && ns == namespace)
            .map(|(_, _, name)| name.clone())
            .collect()
    }

    /// Stores an object as if another client had created it (with the server's defaults).
    pub fn put(&self, plural: &str, mut object: Value) {
        let mut shared = self.lock();
        apply::default_created(&shared, plural, &mut object);
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
        store(&mut shared, plural, &namespace, object);
        drop(shared);
        self.shared.1.notify_waiters();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.0.lock().expect("lock")
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.server.abort();
        self.controllers.abort();
    }
}

/// A read-only view of a [`FakeKube`]'s store that a background task can own (e.g. the model of istiod in
/// `crate::istiod`, which follows the objects the lab applies).
#[derive(Clone)]
pub struct FakeKubeView {
    shared: SharedState,
}

impl FakeKube {
    /// A view of the store that outlives borrows of `self` (the server still stops when `self` is dropped).
    pub fn view(&self) -> FakeKubeView {
        FakeKubeView {
            shared: self.shared.clone(),
        }
    }
}

impl FakeKubeView {
    /// Every stored object of `plural` in `namespace`, by name.
    pub fn objects(&self, plural: &str, namespace: &str) -> Vec<Value> {
        let shared = self.shared.0.lock().expect("lock");
        shared
            .objects
            .iter()
            .filter(|((p, ns, _), _)| p == plural && ns == namespace)
            .map(|(_, object)| object.clone())
            .collect()
    }
}

/// Writes a kubeconfig with one context `context` whose cluster is at `server`.
pub fn write_kubeconfig(path: &Path, context: &str, server: &str) {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {context}\n  cluster:\n    server: {server}\ncontexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}\n    namespace: default\ncurrent-context: {context}\nusers:\n- name: {context}\n  user:\n    token: fake-token\n"
    );
    std::fs::write(path, text).expect("write kubeconfig");
}

async fn record(State(shared): State<SharedState>, request: Request, next: axum::middleware::Next) -> Response {
    let recorded = RecordedRequest {
        method: request.method().to_string(),
        uri: request.uri().to_string(),
        content_type: request
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string),
    };
    shared.0.lock().expect("lock").requests.push(recorded);
    next.run(request).await
}

/// `GET /version` as an API server answers it (`version.Info`).
async fn version(State(shared): State<SharedState>) -> impl IntoResponse {
    let git_version = shared.0.lock().expect("lock").git_version.clone();
    let minor = git_version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .unwrap_or("0")
        .to_string();
    axum::Json(json!({
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
async fn nodes(State(shared): State<SharedState>) -> impl IntoResponse {
    let (architecture, git_version) = {
        let shared = shared.0.lock().expect("lock");
        (shared.architecture.clone(), shared.git_version.clone())
    };
    axum::Json(json!({
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

/// `GET /api`: `APIVersions`.
async fn core_versions() -> impl IntoResponse {
    axum::Json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "192.168.49.2:8443"}]
    }))
}

/// `GET /apis`: `APIGroupList` of the non-core groups (built-in and established CRDs').
async fn group_list(State(shared): State<SharedState>) -> impl IntoResponse {
    axum::Json(discovery::group_list(&shared.0.lock().expect("lock")))
}

/// `GET /fake/install-istio`: what the scripted fake `istioctl install` calls to put Istio in place.
async fn install_istio_marker(State(shared): State<SharedState>) -> Response {
    let mut locked = shared.0.lock().expect("lock");
    let Some(version) = locked.istio_installed_on_marker.clone() else {
        return (StatusCode::NOT_FOUND, "no install scripted").into_response();
    };
    install_istio_objects(&mut locked, &version);
    let delay = locked.crds_established_after;
    drop(locked);
    shared.1.notify_waiters();
    // The apiextensions controllers accept the CRDs' names and establish them a moment later, concurrently.
    let establishing = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        discovery::establish_crds(&mut establishing.0.lock().expect("lock"));
        establishing.1.notify_waiters();
    });
    "installed".into_response()
}

/// `GET /fake/tunnel-up`: what a running `minikube tunnel` does to LoadBalancer Services.
async fn tunnel_up_marker(State(shared): State<SharedState>) -> Response {
    let mut locked = shared.0.lock().expect("lock");
    let Some((ip, port)) = locked.tunnel_address.clone() else {
        return (StatusCode::NOT_FOUND, "no tunnel scripted").into_response();
    };
    let key = (
        "services".to_string(),
        "istio-system".to_string(),
        "istio-ingressgateway".to_string(),
    );
    let Some(mut service) = locked.objects.get(&key).cloned() else {
        return (StatusCode::NOT_FOUND, "no ingress gateway").into_response();
    };
    if let Some(ports) = service["spec"]["ports"].as_array_mut() {
        for service_port in ports.iter_mut().filter(|service_port| service_port["name"] == "http2") {
            service_port["port"] = json!(port);
        }
    }
    service["status"] = json!({"loadBalancer": {"ingress": [{"ip": ip}]}});
    store(&mut locked, "services", "istio-system", service);
    drop(locked);
    shared.1.notify_waiters();
    "tunnel up".into_response()
}

/// What `istioctl install` puts in place: Istio's CRDs (not yet Established: see [`discovery::establish_crds`]),
/// `istio-system`, istiod, the ingress gateway and its Service.
fn install_istio_objects(shared: &mut Shared, version: &str) {
    discovery::create_istio_crds(shared);
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}});
    store(shared, "namespaces", "", namespace);
    // As istio 1.12.7's charts make them: istiod's container `discovery`
    // (manifests/charts/istio-control/istio-discovery/templates/deployment.yaml), the gateway's `istio-proxy`
    // with the labels app=istio-ingressgateway, istio=ingressgateway
    // (manifests/charts/gateways/istio-ingress/templates/deployment.yaml and values.yaml `labels`).
    for (name, image, label, container) in [
        (
            "istiod",
            format!("docker.io/istio/pilot:{version}"),
            "pilot",
            "discovery",
        ),
        (
            "istio-ingressgateway",
            format!("docker.io/istio/proxyv2:{version}"),
            "ingressgateway",
            "istio-proxy",
        ),
    ] {
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "istio-system", "labels": {"istio": label, "app": name}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"istio": label, "app": name}},
                "template": {
                    "metadata": {"labels": {"istio": label, "app": name},
                                 "annotations": {"sidecar.istio.io/inject": "false"}},
                    "spec": {"containers": [{"name": container, "image": image}]}
                }
            }
        });
        store(shared, "deployments", "istio-system", deployment);
    }
    // The Service's ports in the chart's order, the status port first (istio 1.12.7
    // manifests/charts/gateways/istio-ingress/values.yaml `ports`: status-port 15021, http2 80→8080,
    // https 443→8443).
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system",
                     "labels": {"istio": "ingressgateway", "app": "istio-ingressgateway"}},
        "spec": {"type": "LoadBalancer", "selector": {"istio": "ingressgateway", "app": "istio-ingressgateway"},
                 "ports": [
                     {"name": "status-port", "port": 15021, "targetPort": 15021, "protocol": "TCP"},
                     {"name": "http2", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                     {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}
                 ]}
    });
    store(shared, "services", "istio-system", service);
}

/// A Kubernetes `Status` error response.
fn status_response(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code
    });
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

/// The parsed resource path: `/api/v1[/namespaces/NS]/PLURAL[/NAME[/SUBRESOURCE]]` or the `/apis/G/V/…` form.
struct ResourcePath {
    kind: &'static Kind,
    namespace: String,
    name: Option<String>,
    subresource: Option<String>,
}

impl ResourcePath {
    /// The store key of the object `name` at this path.
    fn key(&self, name: &str) -> Key {
        (self.kind.plural.to_string(), self.namespace.clone(), name.to_string())
    }
}

/// True when the request asks for a dry run (`dryRun=All`): answer as if written, store nothing.
fn is_dry_run(query: &HashMap<String, String>) -> bool {
    query.get("dryRun").is_some_and(|value| value == "All")
}

fn parse_resource_path(shared: &Shared, path: &str) -> Option<ResourcePath> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, rest @ ..] if !rest.is_empty() => (namespace.to_string(), rest),
        _ => (String::new(), rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(name.to_string()), None),
        [plural, name, sub] => (*plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return None,
    };
    let kind = discovery::find_kind(shared, group, version, plural)?;
    Some(ResourcePath {
        kind,
        namespace,
        name,
        subresource,
    })
}

/// Handles every resource request (and group-version discovery).
async fn resources(
    State(shared): State<SharedState>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let (discovered, resource) = {
        let locked = shared.0.lock().expect("lock");
        let discovered = if method == Method::GET {
            discovery::group_version_resources(&locked, &path).or_else(|| discovery::group_at(&locked, &path))
        } else {
            None
        };
        (discovered, parse_resource_path(&locked, &path))
    };
    if let Some(discovered) = discovered {
        return axum::Json(discovered).into_response();
    }
    let Some(resource) = resource else {
        return status_response(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({uri})"),
        );
    };
    {
        let mut locked = shared.0.lock().expect("lock");
        let position = locked
            .injected
            .iter()
            .position(|failure| failure.method == method.as_str() && path.contains(&failure.path_contains));
        if let Some(position) = position {
            let failure = locked.injected.remove(position);
            return status_response(failure.code, &failure.reason, &failure.message);
        }
    }
    let watch = query.get("watch").is_some_and(|value| value == "true" || value == "1");
    match (method.clone(), resource.name.clone(), watch) {
        (Method::GET, None, true) => watch::watch_stream(shared, resource, query).await,
        (Method::GET, None, false) => list(&shared, &resource, &query),
        (Method::GET, Some(name), _) => match resource.subresource.as_deref() {
            Some("log") => pod_log(&shared, &resource.namespace, &name),
            _ => get_object(&shared, &resource, &name),
        },
        (Method::PATCH, Some(name), _) => {
            let refused =
                controllers::refuse_in_terminating_namespace(&shared.0.lock().expect("lock"), &resource, &name);
            match refused {
                Some(refused) => refused,
                None => apply::apply(&shared, &resource, &name, &query, &headers, &body),
            }
        }
        (Method::DELETE, Some(name), _) => controllers::delete(&shared, &resource, &name, &query),
        _ => status_response(
            405,
            "MethodNotAllowed",
            &format!("{method} {uri} is not supported by the fake"),
        ),
    }
}

fn get_object(shared: &SharedState, resource: &ResourcePath, name: &str) -> Response {
    let key = resource.key(name);
    match shared.0.lock().expect("lock").objects.get(&key) {
        Some(object) => axum::Json(object.clone()).into_response(),
        None => not_found(resource, name),
    }
}

fn not_found(resource: &ResourcePath, name: &str) -> Response {
    let group = match resource.kind.group {
        "" => String::new(),
        group => format!(".{group}"),
    };
    status_response(
        404,
        "NotFound",
        &format!("{}{group} \"{name}\" not found", resource.kind.plural),
    )
}

/// True when `object` matches `labelSelector` (`k=v,k2=v2`) and `fieldSelector` (`metadata.name=…`,
/// `involvedObject.name=…`).
fn selected(object: &Value, query: &HashMap<String, String>) -> bool {
    let labels_match = match query.get("labelSelector") {
        None => true,
        Some(selector) => selector.split(',').filter(|term| !term.is_empty()).all(|term| {
            let (key, value) = term.split_once('=').unwrap_or((term, ""));
            object["metadata"]["labels"][key].as_str() == Some(value.trim_start_matches('='))
        }),
    };
    let fields_match = match query.get("fieldSelector") {
        None => true,
        Some(selector) => selector.split(',').filter(|term| !term.is_empty()).all(|term| {
            let (key, value) = term.split_once('=').unwrap_or((term, ""));
            let pointer = format!("/{}", key.replace('.', "/"));
            object.pointer(&pointer).and_then(Value::as_str) == Some(value)
        }),
    };
    labels_match && fields_match
}

fn list(shared: &SharedState, resource: &ResourcePath, query: &HashMap<String, String>) -> Response {
    let locked = shared.0.lock().expect("lock");
    let items: Vec<Value> = locked
        .objects
        .iter()
        .filter(|((plural, namespace, _), _)| {
            plural == resource.kind.plural && (resource.namespace.is_empty() || *namespace == resource.namespace)
        })
        .filter(|(_, object)| selected(object, query))
        .map(|(_, object)| discovery::list_item(resource.kind, object))
        .collect();
    axum::Json(json!({
        "kind": format!("{}List", resource.kind.kind),
        "apiVersion": api_version_of(resource.kind),
        "metadata": {"resourceVersion": locked.resource_version.to_string()},
        "items": items
    }))
    .into_response()
}

fn pod_log(shared: &SharedState, namespace: &str, name: &str) -> Response {
    let key = ("pods".to_string(), namespace.to_string(), name.to_string());
    let locked = shared.0.lock().expect("lock");
    match locked.objects.get(&key) {
        Some(pod) => pod["metadata"]["annotations"]["fake/log"]
            .as_str()
            .unwrap_or("")
            .to_string()
            .into_response(),
        None => status_response(404, "NotFound", &format!("pods \"{name}\" not found")),
    }
}
