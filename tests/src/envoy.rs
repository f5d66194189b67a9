//! Real Envoy in front of stand-in servers, configured from a stage's VirtualService and DestinationRule the way
//! istiod 1.12.7 configures the ingress gateway.
//!
//! [`StageRouting::xds`] translates the part of a VirtualService the lab uses into what istiod pushes: the route
//! configuration `http.8080` with a virtual host per host (`*:80`), a route per match condition (header and path
//! matches as istiod writes them, tried in order, each carrying the `istio.config` metadata naming its
//! VirtualService), Istio 1.12's default retry policy on every route, destinations as weighted clusters (weight 0
//! dropped) named `outbound|PORT|SUBSET|FQDN`, `headers.response.set` as `response_headers_to_add`, `fault` as the
//! fault filter's per-route config, no route timeout unless the VirtualService sets one; one EDS cluster per
//! destination whose endpoints are the stand-ins serving that subset's `version` label. Variants for negative tests
//! are made by editing the parsed [`VirtualServiceSpec`], never by hand-written YAML.
//!
//! Envoy reads routes, clusters and endpoints from files it watches (RDS, CDS and EDS from a path), so
//! [`Envoy::serve`] can push a new stage, or a pod's endpoint arriving late, to a running gateway as istiod would;
//! `/config_dump` and `/clusters` on its admin API then look like a real gateway's, and
//! [`Envoy::behind_gateway_pods_of`] makes the fake Kubernetes API forward a gateway pod's ports 8080 and 15000 to
//! the listener and the admin API. Envoy listens on loopback ports it picks itself (found through the admin API,
//! so no port races); [`Envoy::start`] waits for the admin `/ready` and the first push (bounded polls), and the
//! process is killed when the [`Envoy`] is dropped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use lab::definition::routing::{
    HeaderOperations, HttpMatchRequest, HttpRoute, RouteDestination, StringMatch, VirtualServiceSpec,
};
use lab::definition::stages::LabDefinition;
use serde_json::{Value, json};

/// How long Envoy gets to become ready, and to apply a push.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The route configuration istiod names for the lab Gateway's HTTP server on port 80, which the gateway pod
/// listens for on 8080 (`gatewayRDSRouteName` in pilot/pkg/model/gateway.go at 1.12.7).
pub const ROUTE_CONFIG: &str = "http.8080";
/// The lab Gateway's server port (assets/manifests/gateway.yaml).
const GATEWAY_SERVER_PORT: u32 = 80;
/// The lab's VirtualService (every stage's is `image-classifier`).
const VIRTUAL_SERVICE: &str = "image-classifier";
/// The files Envoy watches for the routes and the clusters.
const RDS_FILE: &str = "rds.json";
const CDS_FILE: &str = "cds.json";

/// A stage's routing: its VirtualService spec and the DestinationRule's subsets (name → pod labels).
#[derive(Debug, Clone)]
pub struct StageRouting {
    /// The VirtualService spec; edit it to make a variant.
    pub virtual_service: VirtualServiceSpec,
    /// Subset name → the labels that select its pods (e.g. `version: resnet101`).
    pub subsets: BTreeMap<String, BTreeMap<String, String>>,
}

impl StageRouting {
    /// The routing of the lab stage `name` (from `assets/lab.toml` and the manifests it names).
    pub fn of_stage(name: &str) -> StageRouting {
        let lab = LabDefinition::load_default().expect("the lab's stage definitions load");
        let stage = lab.stage(name).expect("the stage exists");
        let manifests = lab.stage_manifests(stage).expect("the stage's manifests load");
        let virtual_service = VirtualServiceSpec::from_manifests(&manifests).expect("the stage's VirtualService");
        let mut subsets = BTreeMap::new();
        for manifest in manifests.iter().filter(|manifest| manifest.kind() == "DestinationRule") {
            for subset in manifest.object["spec"]["subsets"].as_array().into_iter().flatten() {
                let name = subset["name"].as_str().expect("subset name").to_string();
                let labels = serde_json::from_value(subset["labels"].clone()).expect("subset labels");
                subsets.insert(name, labels);
            }
        }
        StageRouting {
            virtual_service,
            subsets,
        }
    }

    /// The last route: the catch-all (the only route in every stage but `focused`).
    fn default_route(&mut self) -> &mut HttpRoute {
        self.virtual_service.http.last_mut().expect("a route")
    }

    /// Sets the weights of the last (catch-all) route's destinations, by version, e.g. 50/50 for a 70/30 stage.
    #[must_use]
    pub fn with_weights(mut self, weights: &[(&str, u32)]) -> StageRouting {
        let route = self.default_route().clone();
        for destination in &mut self.default_route().route {
            let version = destination.version(&route);
            let weight = weights
                .iter()
                .find(|(name, _)| *name == version)
                .unwrap_or_else(|| panic!("no weight given for {version}"));
            destination.weight = Some(weight.1);
        }
        self
    }

    /// Drops the routes that match on request headers, so the header no longer routes (a header match ignored).
    #[must_use]
    pub fn ignoring_header_matches(mut self) -> StageRouting {
        let header_routed = |route: &HttpRoute| route.matches.iter().any(|condition| !condition.headers.is_empty());
        self.virtual_service.http.retain(|route| !header_routed(route));
        self
    }

    /// Drops every `match` condition, so the first route takes every request, with or without the header.
    #[must_use]
    pub fn ignoring_matches(mut self) -> StageRouting {
        for route in &mut self.virtual_service.http {
            route.matches.clear();
        }
        self
    }

    /// Removes every response header operation, so responses no longer say which version answered (attribution
    /// then falls back to the predictions' fingerprint).
    #[must_use]
    pub fn without_response_headers(mut self) -> StageRouting {
        for route in &mut self.virtual_service.http {
            route.headers = None;
            for destination in &mut route.route {
                destination.headers = None;
            }
        }
        self
    }

    /// Makes every route match only paths starting with `prefix` (added to each condition, or as the one condition
    /// of a route that had none), as a VirtualService that routes on the URI does: another path finds no route.
    #[must_use]
    pub fn matching_uri_prefix(mut self, prefix: &str) -> StageRouting {
        for route in &mut self.virtual_service.http {
            if route.matches.is_empty() {
                route
                    .matches
                    .push(lab::definition::routing::HttpMatchRequest::default());
            }
            for condition in &mut route.matches {
                condition.uri = Some(StringMatch::Prefix(prefix.to_string()));
            }
        }
        self
    }

    /// Adds Istio fault injection to every route.
    #[must_use]
    pub fn with_fault(mut self, fault: lab::definition::routing::HttpFault) -> StageRouting {
        for route in &mut self.virtual_service.http {
            route.fault = Some(fault.clone());
        }
        self
    }

    /// What istiod 1.12.7 would push to the ingress gateway for this routing, with `backends` (pod label `version`
    /// → stand-in address) as the pods behind the Service: the route configuration, the clusters and their endpoints.
    pub fn xds(&self, backends: &BTreeMap<String, SocketAddr>) -> Xds {
        let mut clusters: BTreeMap<String, Vec<SocketAddr>> = BTreeMap::new();
        let mut routes = Vec::new();
        let mut catch_all = Vec::new();
        // BuildHTTPRoutesForVirtualService (pilot/pkg/networking/core/v1alpha3/route/route.go at 1.12.7): one route
        // per match condition, none after a catch-all; CombineVHostRoutes moves the catch-alls to the end.
        'http: for http in &self.virtual_service.http {
            let conditions: Vec<Option<&HttpMatchRequest>> = if http.matches.is_empty() {
                vec![None]
            } else {
                http.matches.iter().map(Some).collect()
            };
            for condition in conditions {
                let route = self.route(http, condition, backends, &mut clusters);
                let matcher = &route["match"];
                let is_catch_all = matcher["prefix"] == "/" && matcher.get("headers").is_none();
                if is_catch_all {
                    catch_all.push(route)
                } else {
                    routes.push(route)
                }
                let catch_all_condition = condition.is_none_or(|condition| {
                    condition.headers.is_empty() && condition.uri == Some(StringMatch::Prefix("/".to_string()))
                });
                if catch_all_condition {
                    break 'http;
                }
            }
        }
        routes.extend(catch_all);
        // istiod builds a cluster for every Service port and every DestinationRule subset, named by a route or not
        // (buildOutboundClusters, pilot/pkg/networking/core/v1alpha3/cluster.go at 1.12.7); here those of the
        // Service port the routes use. So a weight-0 subset still has its cluster, with its pods as endpoints.
        let services: Vec<(String, u32)> = self
            .virtual_service
            .http
            .iter()
            .flat_map(|http| &http.route)
            .map(|destination| {
                let target = &destination.destination;
                (
                    target.host.clone(),
                    target.port.as_ref().map(|port| port.number).unwrap_or(8501),
                )
            })
            .collect();
        for (host, port) in services {
            let subsets = std::iter::once(None).chain(self.subsets.keys().map(|subset| Some(subset.clone())));
            for subset in subsets {
                let destination = lab::definition::routing::Destination {
                    host: host.clone(),
                    subset,
                    port: Some(lab::definition::routing::PortSelector { number: port }),
                };
                let destination = RouteDestination {
                    destination,
                    weight: None,
                    headers: None,
                };
                self.cluster_for(&destination, backends, &mut clusters);
            }
        }
        // buildGatewayHTTPRouteConfig (pilot/pkg/networking/core/v1alpha3/gateway.go at 1.12.7): a virtual host per
        // VirtualService host, named host:serverPort, its domains from buildGatewayVirtualHostDomains.
        let virtual_hosts: Vec<Value> = self
            .virtual_service
            .hosts
            .iter()
            .map(|host| {
                let domains = match host.as_str() {
                    "*" => vec![host.clone()],
                    wildcard if wildcard.starts_with('*') => {
                        vec![host.clone(), format!("{host}:{GATEWAY_SERVER_PORT}")]
                    }
                    _ => vec![host.clone(), format!("{host}:*")],
                };
                json!({
                    "name": format!("{host}:{GATEWAY_SERVER_PORT}"),
                    "domains": domains,
                    "routes": routes,
                    "include_request_attempt_count": true
                })
            })
            .collect();
        let route_config = json!({
            "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            "name": ROUTE_CONFIG,
            "virtual_hosts": virtual_hosts,
            "validate_clusters": false
        });
        let mut cluster_resources = Vec::new();
        let mut load_assignments = Vec::new();
        for (name, addresses) in &clusters {
            cluster_resources.push(json!({
                "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                "name": name,
                "type": "EDS",
                "eds_cluster_config": {"service_name": name},
                // meshConfig's default connectTimeout (pkg/config/mesh/mesh.go at 1.12.7).
                "connect_timeout": "10s",
                // getDefaultCircuitBreakerThresholds (pilot/pkg/networking/core/v1alpha3/cluster.go at 1.12.7):
                // no limit, so retries are never cut short by Envoy's default of 3 retries in flight.
                "circuit_breakers": {"thresholds": [{
                    "max_connections": u32::MAX, "max_pending_requests": u32::MAX,
                    "max_requests": u32::MAX, "max_retries": u32::MAX, "track_remaining": true
                }]}
            }));
            // buildEnvoyLbEndpoint (pilot/pkg/xds/endpoint_builder.go at 1.12.7): ready pods only, no health status.
            let endpoints: Vec<Value> = addresses
                .iter()
                .map(|address| {
                    json!({
                        "endpoint": {"address": {"socket_address": {
                            "address": address.ip().to_string(), "port_value": address.port()
                        }}},
                        "load_balancing_weight": 1
                    })
                })
                .collect();
            let lb_endpoints = if endpoints.is_empty() {
                json!([])
            } else {
                json!([{"locality": {}, "lb_endpoints": endpoints}])
            };
            load_assignments.push(json!({
                "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
                "cluster_name": name,
                "endpoints": lb_endpoints
            }));
        }
        Xds {
            route_config,
            clusters: cluster_resources,
            load_assignments,
        }
    }

    /// One Envoy route as istiod's `translateRoute` builds it (route.go at 1.12.7).
    fn route(
        &self,
        http: &HttpRoute,
        condition: Option<&HttpMatchRequest>,
        backends: &BTreeMap<String, SocketAddr>,
        clusters: &mut BTreeMap<String, Vec<SocketAddr>>,
    ) -> Value {
        let mut action = json!({
            "timeout": http.timeout.clone().unwrap_or_else(|| "0s".to_string()),
            "retry_policy": default_retry_policy(),
        });
        // Weighted clusters without the weight-0 ones; a route left with one is a plain cluster whose header
        // operations move to the route.
        let single = http.route.len() == 1;
        let live: Vec<&RouteDestination> = http
            .route
            .iter()
            .filter(|destination| single || destination.weight.unwrap_or(0) > 0)
            .collect();
        let mut route_headers = header_operations(http.headers.as_ref().and_then(|headers| headers.response.as_ref()));
        match live.as_slice() {
            [only] => {
                action["cluster"] = json!(self.cluster_for(only, backends, clusters));
                let own = header_operations(only.headers.as_ref().and_then(|headers| headers.response.as_ref()));
                route_headers.0.extend(own.0);
                route_headers.1.extend(own.1);
            }
            _ => {
                let weighted: Vec<Value> = live
                    .iter()
                    .map(|destination| {
                        let (add, remove) = header_operations(
                            destination
                                .headers
                                .as_ref()
                                .and_then(|headers| headers.response.as_ref()),
                        );
                        json!({
                            "name": self.cluster_for(destination, backends, clusters),
                            "weight": destination.weight.unwrap_or(0),
                            "response_headers_to_add": add,
                            "response_headers_to_remove": remove,
                        })
                    })
                    .collect();
                action["weighted_clusters"] = json!({"clusters": weighted});
            }
        }
        let mut route = json!({
            "match": route_match(condition),
            "route": action,
            // util.BuildConfigInfoMetadata (pilot/pkg/networking/util/util.go at 1.12.7): which config made the route.
            "metadata": {"filter_metadata": {"istio": {"config": format!(
                "/apis/networking.istio.io/v1alpha3/namespaces/{}/virtual-service/{}",
                lab::cluster::LAB_NAMESPACE,
                VIRTUAL_SERVICE
            )}}},
            "response_headers_to_add": route_headers.0,
            "response_headers_to_remove": route_headers.1,
        });
        if let Some(fault) = &http.fault {
            route["typed_per_filter_config"] = json!({"envoy.filters.http.fault": fault_config(fault)});
        }
        route
    }

    /// The cluster a destination goes to, named as istiod names it (`model.BuildSubsetKey`, pilot/pkg/model/service.go
    /// at 1.12.7: `outbound|PORT|SUBSET|FQDN`), registered in `clusters` with the stand-ins it selects.
    fn cluster_for(
        &self,
        destination: &RouteDestination,
        backends: &BTreeMap<String, SocketAddr>,
        clusters: &mut BTreeMap<String, Vec<SocketAddr>>,
    ) -> String {
        let target = &destination.destination;
        let port = target.port.as_ref().map(|port| port.number).unwrap_or(8501);
        let name = lab::istio::gateway_config::cluster_name(
            &target.host,
            target.subset.as_deref(),
            port,
            lab::cluster::LAB_NAMESPACE,
        );
        let addresses: Vec<SocketAddr> = match &target.subset {
            // A subset selects the pods whose labels it names; the stand-ins play pods labelled `version: <key>`.
            Some(subset) => {
                let labels = self
                    .subsets
                    .get(subset)
                    .unwrap_or_else(|| panic!("subset {subset} is not in the DestinationRule"));
                let version = labels.get("version").expect("subsets select by version");
                backends.get(version).into_iter().copied().collect()
            }
            // The whole Service: every pod behind it.
            None => backends.values().copied().collect(),
        };
        clusters.insert(name.clone(), addresses);
        name
    }
}

/// Istio 1.12's default HTTP retry policy, which every route without `retries` gets (`retry.DefaultPolicy` in
/// pilot/pkg/networking/core/v1alpha3/route/retry/retry.go at 1.12.7): 2 retries on connect-failure,
/// refused-stream, unavailable, cancelled and a 503 from upstream, preferring hosts not tried yet. (istiod names the
/// host predicate only; today's Envoy wants its typed config as well.)
pub fn default_retry_policy() -> Value {
    json!({
        "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
        "num_retries": 2,
        "retriable_status_codes": [503],
        "retry_host_predicate": [{
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}
        }],
        "host_selection_retry_max_attempts": 5
    })
}

/// What istiod pushes to the gateway for a routing (each a resource of Envoy's v3 API as JSON).
#[derive(Debug, Clone)]
pub struct Xds {
    /// The route configuration [`ROUTE_CONFIG`] (RDS).
    pub route_config: Value,
    /// The clusters (CDS), each of type EDS.
    pub clusters: Vec<Value>,
    /// Each cluster's endpoints (EDS), in the clusters' order.
    pub load_assignments: Vec<Value>,
}

/// Envoy's `HeaderValueOption`s for `set`/`add`, and the names to remove.
fn header_operations(operations: Option<&HeaderOperations>) -> (Vec<Value>, Vec<String>) {
    let Some(operations) = operations else {
        return (Vec::new(), Vec::new());
    };
    let mut add = Vec::new();
    for (name, value) in &operations.set {
        add.push(json!({"header": {"key": name, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}));
    }
    for (name, value) in &operations.add {
        add.push(json!({"header": {"key": name, "value": value}, "append_action": "APPEND_IF_EXISTS_OR_ADD"}));
    }
    (add, operations.remove.clone())
}

/// One Istio match condition as istiod's `translateRouteMatch` writes it (route.go at 1.12.7): a path specifier
/// (prefix `/` by default), `case_sensitive`, and header matchers sorted by name in the fields istiod 1.12.7 uses
/// (`exact_match`, `prefix_match`, `safe_regex_match`; regex `*` is `present_match`).
fn route_match(condition: Option<&lab::definition::routing::HttpMatchRequest>) -> Value {
    let mut route_match = match condition.and_then(|condition| condition.uri.as_ref()) {
        None => json!({"prefix": "/"}),
        Some(StringMatch::Exact(path)) => json!({"path": path}),
        Some(StringMatch::Prefix(prefix)) => json!({"prefix": prefix}),
        Some(StringMatch::Regex(regex)) => json!({"safe_regex": {"regex": regex}}),
    };
    route_match["case_sensitive"] = json!(true);
    // The headers are a BTreeMap: already sorted by name.
    let headers: Vec<Value> = condition
        .map(|condition| {
            condition
                .headers
                .iter()
                .map(|(name, matcher)| {
                    let mut header = json!({"name": name});
                    match matcher {
                        StringMatch::Exact(value) => header["exact_match"] = json!(value),
                        StringMatch::Prefix(value) => header["prefix_match"] = json!(value),
                        StringMatch::Regex(regex) if regex == "*" => header["present_match"] = json!(true),
                        StringMatch::Regex(regex) => header["safe_regex_match"] = json!({"regex": regex}),
                    }
                    header
                })
                .collect()
        })
        .unwrap_or_default();
    if !headers.is_empty() {
        route_match["headers"] = json!(headers);
    }
    route_match
}

/// Istio's `fault` as the fault filter's per-route config (percentages in millionths).
fn fault_config(fault: &lab::definition::routing::HttpFault) -> Value {
    let fraction = |percentage: &Option<lab::definition::routing::Percent>| {
        let value = percentage.as_ref().map(|percent| percent.value).unwrap_or(100.0);
        json!({"numerator": (value * 10_000.0).round() as u64, "denominator": "MILLION"})
    };
    let mut config = json!({"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"});
    if let Some(delay) = &fault.delay {
        config["delay"] = json!({"fixed_delay": delay.fixed_delay, "percentage": fraction(&delay.percentage)});
    }
    if let Some(abort) = &fault.abort {
        config["abort"] = json!({"http_status": abort.http_status, "percentage": fraction(&abort.percentage)});
    }
    config
}

/// A running Envoy; killed when dropped.
pub struct Envoy {
    child: Child,
    listener: SocketAddr,
    admin: SocketAddr,
    dir: tempfile::TempDir,
    /// The version of the last push (each push writes every resource with it).
    version: AtomicU32,
    /// The last push.
    last: std::sync::Mutex<Xds>,
}

impl Envoy {
    /// Starts Envoy holding `routing` in front of `backends` (version → address) and waits until it serves it.
    pub async fn start(routing: &StageRouting, backends: &BTreeMap<String, SocketAddr>) -> Envoy {
        static NEXT_BASE_ID: AtomicU32 = AtomicU32::new(0);
        let envoy_bin = crate::test_tools().join("venv/bin/envoy");
        assert!(
            envoy_bin.exists(),
            "{} is missing\nhelp: run `cargo xtask test`",
            envoy_bin.display()
        );
        let dir = tempfile::tempdir().expect("Envoy temp dir");
        let xds = routing.xds(backends);
        write_xds(dir.path(), &xds, 1);
        let config_path = dir.path().join("envoy.json");
        std::fs::write(
            &config_path,
            serde_json::to_vec_pretty(&bootstrap(dir.path())).expect("JSON"),
        )
        .expect("write config");
        let admin_path = dir.path().join("admin-address");
        let log = std::fs::File::create(dir.path().join("envoy.log")).expect("Envoy log");
        // A base id unique to this process and instance, so parallel Envoys never share a shared-memory region.
        let base_id = (std::process::id() % 10_000) * 100 + NEXT_BASE_ID.fetch_add(1, Ordering::SeqCst) % 100;
        let child = crate::process::Process::new(&envoy_bin)
            .arg("-c")
            .arg(&config_path)
            .args([
                "--base-id",
                &base_id.to_string(),
                "--concurrency",
                "1",
                "--disable-hot-restart",
            ])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", envoy_bin.display()));
        let mut envoy = Envoy {
            child,
            listener: "127.0.0.1:0".parse().expect("addr"),
            admin: "127.0.0.1:0".parse().expect("addr"),
            dir,
            version: AtomicU32::new(1),
            last: std::sync::Mutex::new(xds.clone()),
        };
        envoy.wait_ready(&admin_path).await;
        envoy
            .wait_for_push(
                1,
                &xds,
                Changed {
                    routes: true,
                    clusters: true,
                },
            )
            .await;
        envoy
    }

    /// Pushes `routing` with `backends` as istiod would after a change (new routes, or a pod's endpoint arriving),
    /// and returns once Envoy holds every resource of the push. Endpoints first, then clusters, then routes, as
    /// istiod orders a push (CDS, EDS, then LDS and RDS) so that no route names a cluster Envoy lacks.
    pub async fn serve(&self, routing: &StageRouting, backends: &BTreeMap<String, SocketAddr>) {
        let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        let xds = routing.xds(backends);
        let changed = {
            let mut last = self.last.lock().expect("last push");
            let changed = Changed {
                routes: last.route_config != xds.route_config,
                clusters: last.clusters != xds.clusters,
            };
            *last = xds.clone();
            changed
        };
        write_xds(self.dir.path(), &xds, version);
        self.wait_for_push(version, &xds, changed).await;
    }

    /// Sends the gateway pods' ports of `kube`'s port-forwards here: 8080 to the listener, 15000 to the admin API,
    /// as on a real `istio-ingressgateway` pod.
    pub fn behind_gateway_pods_of(&self, kube: &crate::fake_kube::FakeKube) {
        let selector = lab::istio::install::GATEWAY_SELECTOR;
        kube.port_forward_port_to(selector, lab::istio::install::GATEWAY_POD_PORT, self.listener);
        kube.port_forward_port_to(selector, lab::istio::gateway_config::ADMIN_PORT, self.admin);
    }

    /// Polls (bounded) for the admin address file, then `/ready`, then reads the listener's port.
    async fn wait_ready(&mut self, admin_path: &std::path::Path) {
        let client = admin_client();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("Envoy exited with {status} before it was ready:\n{}", self.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "Envoy was not ready within {READY_TIMEOUT:?}:\n{}",
                self.log_tail()
            );
            if self.admin.port() == 0 {
                let address = std::fs::read_to_string(admin_path).unwrap_or_default();
                if let Ok(address) = address.trim().parse() {
                    self.admin = address;
                }
            }
            if self.admin.port() != 0 {
                let ready = client.get(format!("http://{}/ready", self.admin)).send().await;
                if ready.is_ok_and(|response| response.status().is_success()) {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let listeners: Value = client
            .get(format!("http://{}/listeners?format=json", self.admin))
            .send()
            .await
            .expect("Envoy admin /listeners")
            .json()
            .await
            .expect("/listeners JSON");
        let port = listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
            .as_u64()
            .unwrap_or_else(|| panic!("no listener port in {listeners}"));
        self.listener = SocketAddr::from(([127, 0, 0, 1], port as u16));
    }

    /// Polls (bounded) the admin `/config_dump?include_eds` until the route configuration and the clusters carry
    /// `version` where the push `changed` them (Envoy keeps the version of an update that changed nothing) and every
    /// cluster has the endpoints of `xds` (its EDS dump has no version, so the endpoints themselves are compared).
    /// Envoy applies a file it watches shortly after the rename.
    async fn wait_for_push(&self, version: u32, xds: &Xds, changed: Changed) {
        let client = admin_client();
        let deadline = Instant::now() + READY_TIMEOUT;
        let version = version.to_string();
        let wanted: BTreeMap<String, Vec<String>> = xds
            .load_assignments
            .iter()
            .map(|assignment| {
                let cluster = assignment["cluster_name"].as_str().unwrap_or_default().to_string();
                (cluster, endpoint_addresses(assignment))
            })
            .collect();
        loop {
            let dump: Value = match client
                .get(format!("http://{}/config_dump?include_eds", self.admin))
                .send()
                .await
            {
                Ok(response) => response.json().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            let (versions, endpoints) = held(&dump);
            let version_held =
                |resource: &str, changed: bool| versions.get(resource).is_some_and(|held| !changed || *held == version);
            // Envoy reports no CDS version while it holds no cluster (a gateway nothing is bound to yet).
            let versions_held = version_held("routes", changed.routes)
                && (xds.clusters.is_empty() || version_held("clusters", changed.clusters));
            let endpoints_held = wanted
                .iter()
                .all(|(cluster, addresses)| endpoints.get(cluster).cloned().unwrap_or_default() == *addresses);
            if versions_held && endpoints_held {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Envoy did not apply push {version} within {READY_TIMEOUT:?} (it holds versions {versions:?} and endpoints {endpoints:?}, the push has {wanted:?}):\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `http://127.0.0.1:PORT`: the gateway.
    pub fn url(&self) -> String {
        format!("http://{}", self.listener)
    }

    /// The value of Envoy's counter `name` (admin `/stats`), e.g.
    /// `cluster.outbound|8501|resnet101|image-classifier.tf-serving.svc.cluster.local.upstream_rq_retry`; 0 when
    /// Envoy has not created it.
    pub async fn counter(&self, name: &str) -> u64 {
        let stats: Value = admin_client()
            .get(format!("http://{}/stats?format=json", self.admin))
            .send()
            .await
            .expect("Envoy admin /stats")
            .json()
            .await
            .expect("/stats JSON");
        stats["stats"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|stat| stat["name"] == name)
            .and_then(|stat| stat["value"].as_u64())
            .unwrap_or(0)
    }

    /// The admin API's address (as a gateway pod's port 15000).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The last lines of Envoy's log, for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("envoy.log")
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn admin_client() -> reqwest::Client {
    lab::http::client_with_total_timeout(Duration::from_secs(2)).expect("client")
}

/// The bootstrap: a listener like the gateway's `0.0.0.0_8080` (on a loopback port Envoy picks) whose routes come
/// from RDS, and clusters from CDS, each cluster's endpoints from EDS — all read from files in `dir` that Envoy
/// watches, so a push is a rename, like an xDS update from istiod. The admin API listens on another loopback port.
fn bootstrap(dir: &Path) -> Value {
    let source = |file: &str| json!({"path_config_source": {"path": dir.join(file).display().to_string()}, "resource_api_version": "V3"});
    json!({
        "node": {"id": "router~127.0.0.1~istio-ingressgateway-5d9c7b-x1.istio-system~istio-system.svc.cluster.local",
                 "cluster": "istio-ingressgateway.istio-system"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": {"cds_config": source(CDS_FILE)},
        "static_resources": {
            "listeners": [{
                "name": format!("0.0.0.0_{}", lab::istio::install::GATEWAY_POD_PORT),
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": format!("outbound_0.0.0.0_{}", lab::istio::install::GATEWAY_POD_PORT),
                        "rds": {"route_config_name": ROUTE_CONFIG, "config_source": source(RDS_FILE)},
                        "http_filters": [
                            {"name": "envoy.filters.http.fault", "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
                            }},
                            {"name": "envoy.filters.http.router", "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                            }}
                        ]
                    }
                }]}]
            }]
        }
    })
}

/// Writes a push into `dir`: each file to a temporary name, then renamed into place (Envoy reloads a watched file
/// when one is moved onto it). Endpoints, then clusters, then routes.
fn write_xds(dir: &Path, xds: &Xds, version: u32) {
    let write = |file: &str, resources: &[Value]| {
        let response = json!({"version_info": version.to_string(), "resources": resources});
        let temporary = dir.join(format!("{file}.partial"));
        std::fs::write(&temporary, serde_json::to_vec_pretty(&response).expect("JSON")).expect("write xDS file");
        std::fs::rename(&temporary, dir.join(file)).expect("rename xDS file");
    };
    let mut clusters = Vec::new();
    for (cluster, endpoints) in xds.clusters.iter().zip(&xds.load_assignments) {
        let name = cluster["name"].as_str().expect("cluster name");
        let file = eds_file(name);
        write(&file, std::slice::from_ref(endpoints));
        let mut cluster = cluster.clone();
        cluster["eds_cluster_config"]["eds_config"] = json!({"path_config_source": {"path": dir.join(&file).display().to_string()}, "resource_api_version": "V3"});
        clusters.push(cluster);
    }
    write(CDS_FILE, &clusters);
    write(RDS_FILE, std::slice::from_ref(&xds.route_config));
}

/// The EDS file of a cluster: its name with the characters a file name should not have replaced.
fn eds_file(cluster: &str) -> String {
    let safe: String = cluster
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("eds-{safe}.json")
}

/// Which resources a push changed.
#[derive(Debug, Clone, Copy)]
struct Changed {
    routes: bool,
    clusters: bool,
}

/// The versions of the route configuration (`routes`) and of the clusters (`clusters`), and each cluster's endpoint
/// addresses, in a `/config_dump?include_eds`.
fn held(dump: &Value) -> (BTreeMap<&'static str, String>, BTreeMap<String, Vec<String>>) {
    let mut versions = BTreeMap::new();
    let mut endpoints = BTreeMap::new();
    for config in dump["configs"].as_array().into_iter().flatten() {
        let kind = config["@type"].as_str().unwrap_or_default();
        if kind.ends_with("RoutesConfigDump") {
            for route in config["dynamic_route_configs"].as_array().into_iter().flatten() {
                versions.insert("routes", route["version_info"].as_str().unwrap_or_default().to_string());
            }
        } else if kind.ends_with("ClustersConfigDump") {
            versions.insert(
                "clusters",
                config["version_info"].as_str().unwrap_or_default().to_string(),
            );
        } else if kind.ends_with("EndpointsConfigDump") {
            for entry in config["dynamic_endpoint_configs"].as_array().into_iter().flatten() {
                let assignment = &entry["endpoint_config"];
                let cluster = assignment["cluster_name"].as_str().unwrap_or_default().to_string();
                endpoints.insert(cluster, endpoint_addresses(assignment));
            }
        }
    }
    (versions, endpoints)
}

/// The sorted `ip:port`s of a `ClusterLoadAssignment`.
fn endpoint_addresses(assignment: &Value) -> Vec<String> {
    let mut addresses: Vec<String> = assignment["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|locality| locality["lb_endpoints"].as_array().cloned().unwrap_or_default())
        .map(|endpoint| {
            let socket = &endpoint["endpoint"]["address"]["socket_address"];
            format!(
                "{}:{}",
                socket["address"].as_str().unwrap_or_default(),
                socket["port_value"]
            )
        })
        .collect();
    addresses.sort();
    addresses
}
