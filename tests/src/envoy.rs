//! Real Envoy in front of stand-in servers, configured from a stage's VirtualService and DestinationRule.
//!
//! Istio's gateway is Envoy; this harness translates the part of a VirtualService the lab uses into an Envoy static
//! bootstrap the way istiod does: each `http` entry becomes a route (its `match` conditions as header and path
//! matches, tried in order), destinations become weighted clusters (weight 0 dropped, as Istio drops them), one
//! cluster per DestinationRule subset pointing at the stand-in serving that subset's `version` label,
//! `headers.response.set` becomes `response_headers_to_add` on the destination, `fault` becomes the fault filter's
//! per-route config, and the route timeout is off unless the VirtualService sets one (Istio's default).
//! Variants for negative tests are made by editing the parsed [`VirtualServiceSpec`], never by hand-written YAML.
//!
//! Envoy listens on a loopback port it picks itself (found through the admin API, so no port races), with its
//! admin interface on another; [`Envoy::start`] waits for the admin `/ready` (a bounded poll) and the process is
//! killed when the [`Envoy`] is dropped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use lab::routing::{HeaderOperations, HttpRoute, RouteDestination, StringMatch, VirtualServiceSpec};
use lab::stages::LabDefinition;
use serde_json::{Value, json};

/// How long Envoy gets to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

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

    /// Adds Istio fault injection to every route.
    #[must_use]
    pub fn with_fault(mut self, fault: lab::routing::HttpFault) -> StageRouting {
        for route in &mut self.virtual_service.http {
            route.fault = Some(fault.clone());
        }
        self
    }

    /// The Envoy bootstrap for this routing, with `backends` (pod label `version` → stand-in address) behind it.
    pub fn bootstrap(&self, backends: &BTreeMap<String, SocketAddr>) -> Value {
        let mut clusters: BTreeMap<String, Vec<SocketAddr>> = BTreeMap::new();
        let mut routes = Vec::new();
        for http in &self.virtual_service.http {
            let mut action = json!({"timeout": http.timeout.clone().unwrap_or_else(|| "0s".to_string())});
            // As istiod: one destination is a plain cluster; several are weighted clusters without the weight-0 ones.
            let live: Vec<&RouteDestination> = http
                .route
                .iter()
                .filter(|destination| http.route.len() == 1 || destination.weight.unwrap_or(0) > 0)
                .collect();
            let single = match http.route.len() {
                1 => live.first().copied(),
                _ => None,
            };
            let mut route_headers =
                header_operations(http.headers.as_ref().and_then(|headers| headers.response.as_ref()));
            match single {
                Some(single) => {
                    action["cluster"] = json!(self.cluster_for(single, backends, &mut clusters));
                    let own = header_operations(single.headers.as_ref().and_then(|headers| headers.response.as_ref()));
                    route_headers.0.extend(own.0);
                    route_headers.1.extend(own.1);
                }
                None => {
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
                                "name": self.cluster_for(destination, backends, &mut clusters),
                                "weight": destination.weight.unwrap_or(0),
                                "response_headers_to_add": add,
                                "response_headers_to_remove": remove,
                            })
                        })
                        .collect();
                    action["weighted_clusters"] = json!({"clusters": weighted});
                }
            }
            let conditions: Vec<Value> = match http.matches.is_empty() {
                true => vec![json!({"prefix": "/"})],
                false => http.matches.iter().map(route_match).collect(),
            };
            for condition in conditions {
                let mut route = json!({
                    "match": condition,
                    "route": action,
                    "response_headers_to_add": route_headers.0,
                    "response_headers_to_remove": route_headers.1,
                });
                if let Some(fault) = &http.fault {
                    route["typed_per_filter_config"] = json!({"envoy.filters.http.fault": fault_config(fault)});
                }
                routes.push(route);
            }
        }
        let clusters: Vec<Value> = clusters
            .iter()
            .map(|(name, addresses)| {
                let endpoints: Vec<Value> = addresses
                    .iter()
                    .map(|address| {
                        json!({"endpoint": {"address": {"socket_address": {
                            "address": address.ip().to_string(), "port_value": address.port()
                        }}}})
                    })
                    .collect();
                json!({
                    "name": name,
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "lb_policy": "ROUND_ROBIN",
                    "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]}
                })
            })
            .collect();
        json!({
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
            "static_resources": {
                "listeners": [{
                    "name": "gateway",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                    "filter_chains": [{"filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "gateway",
                            "route_config": {
                                "name": "lab",
                                "virtual_hosts": [{"name": "lab", "domains": ["*"], "routes": routes}]
                            },
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
                }],
                "clusters": clusters
            }
        })
    }

    /// The cluster a destination goes to (Istio's `outbound|port|subset|host` naming), registered in `clusters`.
    fn cluster_for(
        &self,
        destination: &RouteDestination,
        backends: &BTreeMap<String, SocketAddr>,
        clusters: &mut BTreeMap<String, Vec<SocketAddr>>,
    ) -> String {
        let target = &destination.destination;
        let port = target.port.as_ref().map(|port| port.number).unwrap_or(8501);
        let subset = target.subset.clone().unwrap_or_default();
        let name = format!("outbound|{port}|{subset}|{}", target.host);
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

/// One Istio match condition as an Envoy `RouteMatch`.
fn route_match(condition: &lab::routing::HttpMatchRequest) -> Value {
    let mut route_match = match &condition.uri {
        None => json!({"prefix": "/"}),
        Some(StringMatch::Exact(path)) => json!({"path": path}),
        Some(StringMatch::Prefix(prefix)) => json!({"prefix": prefix}),
        Some(StringMatch::Regex(regex)) => json!({"safe_regex": {"regex": regex}}),
    };
    let headers: Vec<Value> = condition
        .headers
        .iter()
        .map(|(name, matcher)| json!({"name": name, "string_match": string_matcher(matcher)}))
        .collect();
    route_match["headers"] = json!(headers);
    route_match
}

fn string_matcher(matcher: &StringMatch) -> Value {
    match matcher {
        StringMatch::Exact(value) => json!({"exact": value}),
        StringMatch::Prefix(value) => json!({"prefix": value}),
        StringMatch::Regex(regex) => json!({"safe_regex": {"regex": regex}}),
    }
}

/// Istio's `fault` as the fault filter's per-route config (percentages in millionths).
fn fault_config(fault: &lab::routing::HttpFault) -> Value {
    let fraction = |percentage: &Option<lab::routing::Percent>| {
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
}

impl Envoy {
    /// Starts Envoy with `routing` in front of `backends` (version → address) and waits until it is ready.
    pub async fn start(routing: &StageRouting, backends: &BTreeMap<String, SocketAddr>) -> Envoy {
        static NEXT_BASE_ID: AtomicU32 = AtomicU32::new(0);
        let envoy_bin = crate::test_tools().join("venv/bin/envoy");
        assert!(
            envoy_bin.exists(),
            "{} is missing\nhelp: run `cargo xtask test`",
            envoy_bin.display()
        );
        let dir = tempfile::tempdir().expect("Envoy temp dir");
        let config_path = dir.path().join("envoy.json");
        let bootstrap = routing.bootstrap(backends);
        std::fs::write(&config_path, serde_json::to_vec_pretty(&bootstrap).expect("JSON")).expect("write config");
        let admin_path = dir.path().join("admin-address");
        let log = std::fs::File::create(dir.path().join("envoy.log")).expect("Envoy log");
        // A base id unique to this process and instance, so parallel Envoys never share a shared-memory region.
        let base_id = (std::process::id() % 10_000) * 100 + NEXT_BASE_ID.fetch_add(1, Ordering::SeqCst) % 100;
        #[allow(clippy::disallowed_methods)] // Test support starts the real Envoy it tests against.
        let child = std::process::Command::new(&envoy_bin)
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
        };
        envoy.wait_ready(&admin_path).await;
        envoy
    }

    /// Polls (bounded) for the admin address file, then `/ready`, then reads the listener's port.
    async fn wait_ready(&mut self, admin_path: &std::path::Path) {
        lab::kube_client::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
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

    /// `http://127.0.0.1:PORT`: the gateway.
    pub fn url(&self) -> String {
        format!("http://{}", self.listener)
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
