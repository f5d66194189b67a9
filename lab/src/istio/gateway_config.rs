//! Whether the ingress gateway really serves a stage: its own Envoy configuration, read through its admin API.
//!
//! After a stage is applied, istiod pushes the new routes to the gateway, and the endpoints of a pod that just
//! became Ready a moment later (EDS lags readiness), so the first requests can meet the previous stage's routes or
//! Envoy's `503 no healthy upstream`. [`wait_for_stage`] reads what the gateway holds — `/config_dump` for the route
//! configuration, `/clusters?format=json` for the endpoints — through a port-forward to a gateway pod's admin port
//! 15000, compares it with what istiod 1.12.7 makes of the stage's VirtualService ([`GatewayExpectation`]), and
//! returns once they agree, or fails after a timeout set by the caller, naming what differs.
//!
//! It is a bounded poll, not a watch: Envoy's admin API serves snapshots only (it has no watch or change stream),
//! and the xDS streams that carry changes run from istiod to Envoy, where only istiod can open them; this is how
//! `istioctl proxy-config` reads a proxy too.
//!
//! The comparison functions are pure ([`GatewayExpectation::differences`] and the parsers below it), so each rule is
//! unit-tested on config dumps shaped like a real gateway's.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use tokio::time::Instant;

use crate::cluster::port_forward::port_forward_to_pod;
use crate::cluster::{Cluster, LAB_NAMESPACE};
use crate::definition::manifests::Manifest;
use crate::definition::plan::StagePlan;
use crate::definition::routing::{
    HttpMatchRequest, HttpRoute, RouteDestination, StringMatch, VERSION_HEADER, VirtualServiceSpec,
};
use crate::istio::install::{GATEWAY_SELECTOR, ISTIO_NAMESPACE};

/// The gateway pods' Envoy admin port (`proxyAdminPort` in Istio's mesh config; `istioctl proxy-config` reads it).
pub const ADMIN_PORT: u16 = 15000;
/// The default time the gateway gets to serve a stage after it is applied.
pub const DEFAULT_SERVE_TIMEOUT: Duration = Duration::from_secs(60);
/// The pause between two reads of the gateway's configuration: two small admin requests a second.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The timeout of one admin request (a real gateway's route and cluster dumps are small and local).
const ADMIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The cluster's DNS domain, which istiod appends to short host names (meshConfig's default `cluster.local`).
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// The route metadata key under which istiod names the config a route came from.
const ISTIO_METADATA: &str = "istio";

/// What the gateway serves once istiod has pushed a stage: its route configuration for the stage's Gateway server,
/// the routes of its VirtualService, and the clusters they send traffic to.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayExpectation {
    /// The stage, for messages.
    pub stage: String,
    /// The route configuration's name, e.g. `http.8080`.
    pub route_config: String,
    /// The VirtualService as `namespace/name`, for messages.
    pub virtual_service: String,
    /// The value istiod puts in each route's `metadata.filter_metadata.istio.config`.
    pub config_path: String,
    /// The VirtualService's hosts: each has a virtual host whose domains include it.
    pub hosts: Vec<String>,
    /// The routes, in the order Envoy tries them.
    pub routes: Vec<GatewayRoute>,
}

/// One route as Envoy holds it, reduced to what decides where a request goes.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayRoute {
    /// How the path must match, e.g. `prefix "/"`.
    pub path: String,
    /// Header name → how its value must match, e.g. `exact "canary"` or `present`.
    pub headers: BTreeMap<String, String>,
    /// The clusters it sends traffic to, with their weights.
    pub targets: Vec<RouteTarget>,
    /// Version → configured weight, zeros included (for messages; the gateway never sees a weight-0 destination).
    pub shown_weights: Vec<(String, u32)>,
}

/// One cluster of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteTarget {
    /// The cluster, e.g. `outbound|8501|resnet101|image-classifier.tf-serving.svc.cluster.local`.
    pub cluster: String,
    /// Its weight (100 for a route's only cluster).
    pub weight: u32,
    /// The model version behind it: the `x-model-version` it sets, else its subset, else the cluster name.
    pub version: String,
}

/// How a wait for the gateway ended without an error.
#[derive(Debug, Clone, PartialEq)]
pub enum Served {
    /// The gateway serves the stage's routes, every cluster with a healthy endpoint.
    Served {
        /// The gateway pod that was read.
        pod: String,
        /// How long it took.
        waited: Duration,
    },
    /// The gateway's admin API could not be read (no pod, port-forward refused, not an Envoy): nothing was
    /// checked, and the caller carries on as before (the traffic assertions then settle on their own).
    Unreachable {
        /// Why.
        reason: String,
    },
}

/// The gateway did not serve the stage in time.
#[derive(Debug, thiserror::Error)]
#[error(
    "the ingress gateway (pod \"{pod}\") did not serve stage \"{stage}\" within {}s: {}\nhelp: check that istiod runs (`kubectl -n {ISTIO_NAMESPACE} get pods`) and compare with what the gateway holds: `istioctl proxy-config routes {pod}.{ISTIO_NAMESPACE} --name {route_config} -o json` and `istioctl proxy-config endpoints {pod}.{ISTIO_NAMESPACE}`; `istioctl proxy-status` shows whether it is in sync",
    waited.as_secs(),
    differences.join("; ")
)]
pub struct GatewayNotServing {
    /// The stage.
    pub stage: String,
    /// The gateway pod that was read.
    pub pod: String,
    /// The route configuration that was compared.
    pub route_config: String,
    /// How long it waited.
    pub waited: Duration,
    /// What still differed at the end.
    pub differences: Vec<String>,
}

impl GatewayExpectation {
    /// What istiod 1.12.7 makes of stage `stage`'s manifests for the ingress gateway: the route configuration of
    /// the Gateway's HTTP server, and the VirtualService's routes with their clusters.
    pub fn for_stage(stage: &str, manifests: &[Manifest]) -> anyhow::Result<GatewayExpectation> {
        let spec = VirtualServiceSpec::from_manifests(manifests)?;
        let virtual_service = manifests
            .iter()
            .find(|manifest| manifest.kind() == "VirtualService")
            .context("a stage needs a VirtualService")?;
        let namespace = virtual_service.namespace().unwrap_or(LAB_NAMESPACE);
        let server_port = gateway_server_port(manifests);
        let mut routes = Vec::new();
        let mut catch_all = Vec::new();
        // As istiod's BuildHTTPRoutesForVirtualService (pilot/pkg/networking/core/v1alpha3/route/route.go at
        // 1.12.7): one Envoy route per match condition, none after a catch-all; CombineVHostRoutes then moves
        // catch-all routes to the end.
        'http: for http in &spec.http {
            let conditions: Vec<Option<&HttpMatchRequest>> = if http.matches.is_empty() {
                vec![None]
            } else {
                http.matches.iter().map(Some).collect()
            };
            for condition in conditions {
                let route = expected_route(http, condition, namespace, server_port, manifests);
                let is_catch_all = route.path == r#"prefix "/""# && route.headers.is_empty();
                if is_catch_all {
                    catch_all.push(route)
                } else {
                    routes.push(route)
                }
                if condition.is_none_or(is_catch_all_match) {
                    break 'http;
                }
            }
        }
        routes.extend(catch_all);
        Ok(GatewayExpectation {
            stage: stage.to_string(),
            route_config: gateway_route_config_name(server_port),
            virtual_service: format!("{namespace}/{}", virtual_service.name()),
            // util.BuildConfigInfoMetadata (pilot/pkg/networking/util/util.go at 1.12.7), with the kind's group and
            // version as Istio's schema has them (networking.istio.io/v1alpha3) and the kind in kebab case.
            config_path: format!(
                "/apis/networking.istio.io/v1alpha3/namespaces/{namespace}/virtual-service/{}",
                virtual_service.name()
            ),
            hosts: spec.hosts.clone(),
            routes,
        })
    }

    /// What differs between this expectation and the gateway's configuration: `config_dump` (the admin
    /// `/config_dump`, whole or filtered with `?resource=dynamic_route_configs`) and `clusters` (the admin
    /// `/clusters?format=json`). Empty when the gateway serves the stage.
    pub fn differences(&self, config_dump: &Value, clusters: &Value) -> Vec<String> {
        let mut differences = self.route_differences(config_dump);
        let endpoints = healthy_endpoints(clusters);
        let mut checked = Vec::new();
        for target in self.routes.iter().flat_map(|route| &route.targets) {
            if checked.contains(&&target.cluster) {
                continue;
            }
            checked.push(&target.cluster);
            match endpoints.get(&target.cluster) {
                None => differences.push(format!("the gateway has no cluster {}", target.cluster)),
                Some(count) if count.healthy == 0 => differences.push(format!(
                    "cluster {} has no healthy endpoint ({} listed)",
                    target.cluster, count.listed
                )),
                Some(_) => {}
            }
        }
        differences
    }

    /// The differences in the routes alone (see [`GatewayExpectation::differences`]).
    pub fn route_differences(&self, config_dump: &Value) -> Vec<String> {
        let Some(route_config) = route_configuration(config_dump, &self.route_config) else {
            return vec![format!(
                "the gateway has no route configuration \"{}\" yet",
                self.route_config
            )];
        };
        let mut differences = Vec::new();
        for host in &self.hosts {
            let Some(virtual_host) = virtual_host_for(route_config, host) else {
                differences.push(format!(
                    "route configuration \"{}\" has no virtual host for \"{host}\"",
                    self.route_config
                ));
                continue;
            };
            let actual = match routes_of(virtual_host, &self.config_path) {
                Ok(actual) => actual,
                Err(problem) => {
                    differences.push(problem);
                    continue;
                }
            };
            if actual.is_empty() {
                differences.push(format!(
                    "the gateway has no route from VirtualService {} for host \"{host}\"",
                    self.virtual_service
                ));
                continue;
            }
            if actual.len() != self.routes.len() {
                differences.push(format!(
                    "the gateway has {} route(s) from VirtualService {}, the stage has {}: the gateway {}",
                    actual.len(),
                    self.virtual_service,
                    self.routes.len(),
                    actual
                        .iter()
                        .map(GatewayRoute::describe)
                        .collect::<Vec<_>>()
                        .join(", then ")
                ));
                continue;
            }
            for (index, (expected, actual)) in self.routes.iter().zip(&actual).enumerate() {
                differences.extend(expected.differences(actual, index + 1));
            }
        }
        differences
    }
}

impl GatewayRoute {
    /// `matches prefix "/" with user-group exact "canary" → 70/30 to resnet50/resnet101`, for messages.
    pub fn describe(&self) -> String {
        let targets = self
            .targets
            .iter()
            .map(|target| format!("{} {}", target.version, target.weight))
            .collect::<Vec<_>>()
            .join(", ");
        format!("matches {} → {targets}", self.describe_match())
    }

    fn describe_match(&self) -> String {
        let mut text = self.path.clone();
        for (name, matcher) in &self.headers {
            text.push_str(&format!(" with {name} {matcher}"));
        }
        text
    }

    /// What differs between this (expected) route and the gateway's route number `number` (1-based).
    pub fn differences(&self, actual: &GatewayRoute, number: usize) -> Vec<String> {
        let mut differences = Vec::new();
        if (&self.path, &self.headers) != (&actual.path, &actual.headers) {
            differences.push(format!(
                "route {number}: the gateway matches {}, the stage wants {}",
                actual.describe_match(),
                self.describe_match()
            ));
        }
        let by_version = |targets: &[RouteTarget]| -> BTreeMap<String, u32> {
            let mut weights = BTreeMap::new();
            for target in targets {
                *weights.entry(target.version.clone()).or_insert(0) += target.weight;
            }
            weights
        };
        let (wanted, served) = (by_version(&self.targets), by_version(&actual.targets));
        if wanted != served {
            // In the stage's order of versions (zeros included), then any version only the gateway has.
            let mut versions: Vec<String> = self.shown_weights.iter().map(|(version, _)| version.clone()).collect();
            for version in served.keys() {
                if !versions.contains(version) {
                    versions.push(version.clone());
                }
            }
            let weights = |weights: &BTreeMap<String, u32>| {
                versions
                    .iter()
                    .map(|version| weights.get(version).copied().unwrap_or(0).to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            };
            differences.push(format!(
                "route {number}: the gateway routes {} to {}, the stage wants {}",
                weights(&served),
                versions.join("/"),
                weights(&wanted)
            ));
            return differences;
        }
        let clusters = |targets: &[RouteTarget]| -> BTreeMap<String, String> {
            targets
                .iter()
                .map(|target| (target.cluster.clone(), target.version.clone()))
                .collect()
        };
        if clusters(&self.targets) != clusters(&actual.targets) {
            let names = |targets: &[RouteTarget]| {
                targets
                    .iter()
                    .map(|target| target.cluster.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            differences.push(format!(
                "route {number}: the gateway sends traffic to {}, the stage to {}",
                names(&actual.targets),
                names(&self.targets)
            ));
        }
        differences
    }
}

/// Istio's cluster name for a destination (`model.BuildSubsetKey` in pilot/pkg/model/service.go at 1.12.7):
/// `outbound|PORT|SUBSET|HOST`, the host made fully qualified as `model.ResolveShortnameToFQDN` does (a name without
/// a dot gets `.NAMESPACE.svc.cluster.local`), e.g. `outbound|8501|resnet101|image-classifier.tf-serving.svc.cluster.local`.
pub fn cluster_name(host: &str, subset: Option<&str>, port: u32, namespace: &str) -> String {
    let host = if host == "*" || host.contains('.') || host.parse::<std::net::IpAddr>().is_ok() {
        host.to_string()
    } else {
        format!("{host}.{namespace}.svc.{CLUSTER_DOMAIN}")
    };
    format!("outbound|{port}|{}|{host}", subset.unwrap_or_default())
}

/// The name istiod gives the route configuration of a gateway's plain-HTTP server on `server_port`:
/// `http.<port the gateway pod listens on>` (`gatewayRDSRouteName` in pilot/pkg/model/gateway.go at 1.12.7, with the
/// port resolved through the gateway Service's targetPort by `resolvePorts`). The default profile's
/// `istio-ingressgateway` Service sends 80 to 8080 and 443 to 8443 (manifests/charts/gateways/istio-ingress/values.yaml).
pub fn gateway_route_config_name(server_port: u32) -> String {
    let pod_port = match server_port {
        80 => u32::from(crate::istio::install::GATEWAY_POD_PORT),
        443 => 8443,
        other => other,
    };
    format!("http.{pod_port}")
}

/// The port of the stage's Gateway's first HTTP server (80 in the lab's gateway.yaml; 80 when there is none).
fn gateway_server_port(manifests: &[Manifest]) -> u32 {
    manifests
        .iter()
        .filter(|manifest| manifest.kind() == "Gateway")
        .flat_map(|manifest| {
            manifest.object["spec"]["servers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|server| {
            server["port"]["protocol"]
                .as_str()
                .is_some_and(|p| p.eq_ignore_ascii_case("http"))
        })
        .and_then(|server| server["port"]["number"].as_u64())
        .map(|port| port as u32)
        .unwrap_or(80)
}

/// The port a destination's cluster is named with (`GetDestinationCluster` in route.go at 1.12.7): its own, else
/// the Service's only port, else the gateway server's port.
fn destination_port(destination: &RouteDestination, manifests: &[Manifest], server_port: u32) -> u32 {
    if let Some(port) = &destination.destination.port {
        return port.number;
    }
    let short_name = destination.destination.host.split('.').next().unwrap_or_default();
    let service_ports = manifests
        .iter()
        .find(|manifest| manifest.kind() == "Service" && manifest.name() == short_name)
        .and_then(|service| service.object["spec"]["ports"].as_array().cloned())
        .unwrap_or_default();
    match service_ports.as_slice() {
        [only] => only["port"].as_u64().map(|port| port as u32).unwrap_or(server_port),
        _ => server_port,
    }
}

/// One Envoy route as istiod's `translateRoute` builds it (route.go at 1.12.7).
fn expected_route(
    http: &HttpRoute,
    condition: Option<&HttpMatchRequest>,
    namespace: &str,
    server_port: u32,
    manifests: &[Manifest],
) -> GatewayRoute {
    // translateRouteMatch: prefix "/" unless the URI says otherwise; headers by name.
    let path = match condition.and_then(|condition| condition.uri.as_ref()) {
        None => r#"prefix "/""#.to_string(),
        Some(StringMatch::Exact(path)) => format!("path {path:?}"),
        Some(StringMatch::Prefix(prefix)) => format!("prefix {prefix:?}"),
        Some(StringMatch::Regex(regex)) => format!("regex {regex:?}"),
    };
    let headers = condition
        .map(|condition| {
            condition
                .headers
                .iter()
                .map(|(name, matcher)| (name.to_ascii_lowercase(), header_match_text(matcher)))
                .collect()
        })
        .unwrap_or_default();
    // Weighted clusters: weight-0 destinations dropped when there are others; a single one is a plain cluster.
    let single = http.route.len() == 1;
    let targets = http
        .route
        .iter()
        .filter(|destination| single || destination.weight.unwrap_or(0) > 0)
        .map(|destination| RouteTarget {
            cluster: cluster_name(
                &destination.destination.host,
                destination.destination.subset.as_deref(),
                destination_port(destination, manifests, server_port),
                namespace,
            ),
            weight: if single { 100 } else { destination.weight.unwrap_or(0) },
            version: destination.version(http),
        })
        .collect::<Vec<_>>();
    // A route left with one cluster sends it everything.
    let targets = match targets.as_slice() {
        [only] => vec![RouteTarget {
            weight: 100,
            ..only.clone()
        }],
        _ => targets,
    };
    GatewayRoute {
        path,
        headers,
        targets,
        shown_weights: weights_in_order(http),
    }
}

/// A VirtualService header match as istiod's `translateHeaderMatch` writes it: regex `*` means "present".
fn header_match_text(matcher: &StringMatch) -> String {
    match matcher {
        StringMatch::Exact(value) => format!("exact {value:?}"),
        StringMatch::Prefix(value) => format!("prefix {value:?}"),
        StringMatch::Regex(regex) if regex == "*" => "present".to_string(),
        StringMatch::Regex(regex) => format!("regex {regex:?}"),
    }
}

/// `isCatchAllMatch` (route.go at 1.12.7): a condition that is only a prefix `/`.
fn is_catch_all_match(condition: &HttpMatchRequest) -> bool {
    condition.headers.is_empty() && condition.uri == Some(StringMatch::Prefix("/".to_string()))
}

/// A route's weights by version (zeros included), in the order of its destinations.
fn weights_in_order(http: &HttpRoute) -> Vec<(String, u32)> {
    let weights = http.weights();
    let mut ordered: Vec<(String, u32)> = Vec::new();
    for destination in &http.route {
        let version = destination.version(http);
        if !ordered.iter().any(|(seen, _)| *seen == version) {
            let weight = weights.get(&version).copied().unwrap_or(0);
            ordered.push((version, weight));
        }
    }
    ordered
}

/// The route configuration named `name` in an admin `/config_dump`: the whole dump (a `RoutesConfigDump` among
/// `configs`, its `dynamic_route_configs` and `static_route_configs`) or one filtered with
/// `?resource=dynamic_route_configs` (each config a `DynamicRouteConfig`). Envoy's admin API:
/// https://www.envoyproxy.io/docs/envoy/v1.20.7/operations/admin#get--config_dump?resource={}
pub fn route_configuration<'a>(config_dump: &'a Value, name: &str) -> Option<&'a Value> {
    let configs = config_dump["configs"].as_array()?;
    let mut candidates: Vec<&Value> = Vec::new();
    for config in configs {
        candidates.push(&config["route_config"]);
        for list in ["dynamic_route_configs", "static_route_configs"] {
            for entry in config[list].as_array().into_iter().flatten() {
                candidates.push(&entry["route_config"]);
            }
        }
    }
    candidates.into_iter().find(|route_config| route_config["name"] == name)
}

/// The virtual host whose domains include `host` (for `*`, the one with the domain `*`, as istiod's
/// `buildGatewayVirtualHostDomains` at 1.12.7 gives a `*` host).
fn virtual_host_for<'a>(route_config: &'a Value, host: &str) -> Option<&'a Value> {
    route_config["virtual_hosts"].as_array()?.iter().find(|virtual_host| {
        virtual_host["domains"]
            .as_array()
            .is_some_and(|domains| domains.iter().any(|domain| domain == host))
    })
}

/// The routes of `virtual_host` that istiod built from the VirtualService at `config_path` (their
/// `metadata.filter_metadata.istio.config`), in order, reduced to [`GatewayRoute`]s.
fn routes_of(virtual_host: &Value, config_path: &str) -> Result<Vec<GatewayRoute>, String> {
    let mut routes = Vec::new();
    for route in virtual_host["routes"].as_array().into_iter().flatten() {
        if route["metadata"]["filter_metadata"][ISTIO_METADATA]["config"] != config_path {
            continue;
        }
        routes.push(gateway_route(route)?);
    }
    Ok(routes)
}

/// One Envoy route (`config.route.v3.Route` as JSON) reduced to its match and clusters.
pub fn gateway_route(route: &Value) -> Result<GatewayRoute, String> {
    let matcher = &route["match"];
    let path = if let Some(prefix) = matcher["prefix"].as_str() {
        format!("prefix {prefix:?}")
    } else if let Some(path) = matcher["path"].as_str() {
        format!("path {path:?}")
    } else if let Some(regex) = matcher["safe_regex"]["regex"].as_str() {
        format!("regex {regex:?}")
    } else {
        format!("an unknown path match {matcher}")
    };
    let mut headers = BTreeMap::new();
    for header in matcher["headers"].as_array().into_iter().flatten() {
        let name = header["name"].as_str().unwrap_or_default().to_ascii_lowercase();
        headers.insert(name, envoy_header_match_text(header));
    }
    let action = &route["route"];
    let route_version = set_version_header(&route["response_headers_to_add"]);
    let targets = if let Some(cluster) = action["cluster"].as_str() {
        vec![RouteTarget {
            cluster: cluster.to_string(),
            weight: 100,
            version: route_version.unwrap_or_else(|| version_of_cluster(cluster)),
        }]
    } else if let Some(clusters) = action["weighted_clusters"]["clusters"].as_array() {
        clusters
            .iter()
            .map(|weighted| {
                let cluster = weighted["name"].as_str().unwrap_or_default().to_string();
                let version = set_version_header(&weighted["response_headers_to_add"])
                    .or_else(|| route_version.clone())
                    .unwrap_or_else(|| version_of_cluster(&cluster));
                RouteTarget {
                    // Envoy prints a UInt32Value as a number.
                    weight: weighted["weight"].as_u64().unwrap_or(0) as u32,
                    cluster,
                    version,
                }
            })
            .collect()
    } else {
        return Err(format!(
            "a route of the gateway sends traffic to no cluster (not a route action): {}",
            serde_json::to_string(route).unwrap_or_default()
        ));
    };
    Ok(GatewayRoute {
        path,
        headers,
        targets,
        shown_weights: Vec::new(),
    })
}

/// An Envoy `HeaderMatcher` in the words of [`header_match_text`]: istiod 1.12.7 writes the older `exact_match`,
/// `prefix_match`, `safe_regex_match` and `present_match` fields; newer control planes write `string_match`.
fn envoy_header_match_text(header: &Value) -> String {
    let text = if let Some(value) = header["exact_match"].as_str() {
        format!("exact {value:?}")
    } else if let Some(value) = header["prefix_match"].as_str() {
        format!("prefix {value:?}")
    } else if let Some(regex) = header["safe_regex_match"]["regex"].as_str() {
        format!("regex {regex:?}")
    } else if header["present_match"] == true {
        "present".to_string()
    } else if let Some(value) = header["string_match"]["exact"].as_str() {
        format!("exact {value:?}")
    } else if let Some(value) = header["string_match"]["prefix"].as_str() {
        format!("prefix {value:?}")
    } else if let Some(regex) = header["string_match"]["safe_regex"]["regex"].as_str() {
        format!("regex {regex:?}")
    } else {
        format!("an unknown match {header}")
    };
    if header["invert_match"] == true {
        format!("not {text}")
    } else {
        text
    }
}

/// The value of the `x-model-version` response header a list of `HeaderValueOption`s sets, if any.
fn set_version_header(options: &Value) -> Option<String> {
    options
        .as_array()?
        .iter()
        .find(|option| option["header"]["key"] == VERSION_HEADER)
        .and_then(|option| option["header"]["value"].as_str())
        .map(str::to_string)
}

/// A cluster's version when it sets no header: its subset, else its name.
fn version_of_cluster(cluster: &str) -> String {
    match cluster.split('|').nth(2) {
        Some(subset) if !subset.is_empty() => subset.to_string(),
        _ => cluster.to_string(),
    }
}

/// A cluster's endpoints as the admin `/clusters?format=json` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointCount {
    /// Every host listed.
    pub listed: usize,
    /// Those Envoy would send a request to.
    pub healthy: usize,
}

/// Cluster name → its endpoints, from the admin `/clusters?format=json` (`admin.v3.Clusters`: `cluster_statuses`
/// with `host_statuses`, each with a `health_status`; https://www.envoyproxy.io/docs/envoy/v1.20.7/operations/admin#get--clusters?format=json).
/// A host is healthy when its EDS health is `HEALTHY` (Envoy prints that for the `UNKNOWN` istiod 1.12.7 sends
/// for every ready pod, `buildEnvoyLbEndpoint` in pilot/pkg/xds/endpoint_builder.go) and no check failed.
pub fn healthy_endpoints(clusters: &Value) -> BTreeMap<String, EndpointCount> {
    let mut counts = BTreeMap::new();
    for status in clusters["cluster_statuses"].as_array().into_iter().flatten() {
        let Some(name) = status["name"].as_str() else {
            continue;
        };
        let hosts = status["host_statuses"].as_array().cloned().unwrap_or_default();
        let healthy = hosts
            .iter()
            .filter(|host| host_is_healthy(&host["health_status"]))
            .count();
        counts.insert(
            name.to_string(),
            EndpointCount {
                listed: hosts.len(),
                healthy,
            },
        );
    }
    counts
}

fn host_is_healthy(health: &Value) -> bool {
    let eds_healthy = matches!(
        health["eds_health_status"].as_str(),
        None | Some("HEALTHY") | Some("UNKNOWN")
    );
    let failed = [
        "failed_active_health_check",
        "failed_outlier_check",
        "failed_active_degraded_check",
        "pending_dynamic_removal",
        "excluded_via_immediate_hc_fail",
    ]
    .iter()
    .any(|flag| health[*flag] == true);
    eds_healthy && !failed
}

/// Waits until the ingress gateway serves the stage `plan` resolves: reads the gateway's Envoy configuration
/// through a port-forward to a gateway pod's admin port every second, reporting each new difference to `progress`,
/// until it matches or `timeout` has passed ([`GatewayNotServing`], naming what still differs). When the admin API
/// cannot be read at the first attempt (no gateway pod, the port-forward refused, an answer that is not Envoy's)
/// it returns [`Served::Unreachable`] with a `tracing` warning: the caller carries on without the check.
pub async fn wait_for_stage(
    cluster: &Cluster,
    plan: &StagePlan,
    timeout: Duration,
    progress: &dyn Fn(&str),
) -> anyhow::Result<Served> {
    let expected = GatewayExpectation::for_stage(&plan.name, &plan.manifests)?;
    wait_until_served(cluster, &expected, timeout, progress).await
}

/// [`wait_for_stage`] for an expectation already built.
pub async fn wait_until_served(
    cluster: &Cluster,
    expected: &GatewayExpectation,
    timeout: Duration,
    progress: &dyn Fn(&str),
) -> anyhow::Result<Served> {
    let started = Instant::now();
    let unreachable = |reason: String| {
        tracing::warn!(
            stage = expected.stage,
            "the ingress gateway's admin port {ADMIN_PORT} could not be read ({reason}); its routes are not checked, the assertions settle on traffic alone"
        );
        Ok(Served::Unreachable { reason })
    };
    let forward = match port_forward_to_pod(&cluster.client, ISTIO_NAMESPACE, GATEWAY_SELECTOR, ADMIN_PORT).await {
        Ok(forward) => forward,
        Err(error) => return unreachable(format!("{error:#}")),
    };
    let client = crate::http::client_with_total_timeout(ADMIN_REQUEST_TIMEOUT)?;
    progress(&format!(
        "waiting for the ingress gateway (pod \"{}\") to serve stage \"{}\" (at most {}s)",
        forward.pod,
        expected.stage,
        timeout.as_secs()
    ));
    let mut last: Vec<String> = Vec::new();
    let mut first = true;
    loop {
        let differences = match read_gateway(&client, &forward.url).await {
            Ok((config_dump, clusters)) => expected.differences(&config_dump, &clusters),
            Err(error) if first => return unreachable(format!("{error:#}")),
            Err(error) => vec![format!("the gateway's admin API did not answer: {error:#}")],
        };
        first = false;
        let waited = started.elapsed();
        if differences.is_empty() {
            progress(&format!(
                "the ingress gateway serves stage \"{}\" (after {:.1}s)",
                expected.stage,
                waited.as_secs_f64()
            ));
            return Ok(Served::Served {
                pod: forward.pod.clone(),
                waited,
            });
        }
        if waited >= timeout {
            return Err(GatewayNotServing {
                stage: expected.stage.clone(),
                pod: forward.pod.clone(),
                route_config: expected.route_config.clone(),
                waited,
                differences,
            }
            .into());
        }
        if differences != last {
            progress(&format!(
                "the ingress gateway does not serve stage \"{}\" yet: {}",
                expected.stage,
                differences.join("; ")
            ));
            last = differences;
        }
        // A bounded poll (see the module comment for why not a watch); the timeout above ends it.
        tokio::time::sleep(POLL_INTERVAL.min(timeout.saturating_sub(waited))).await;
    }
}

/// One read of the gateway: its route configurations and its clusters. Each request asks for `Connection: close`,
/// so every read goes through a fresh port-forward connection.
async fn read_gateway(client: &reqwest::Client, admin_url: &str) -> anyhow::Result<(Value, Value)> {
    let get = |path: &'static str| async move {
        let url = format!("{admin_url}{path}");
        let response = client
            .get(&url)
            .header(reqwest::header::CONNECTION, "close")
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        if !status.is_success() {
            anyhow::bail!("GET {path} answered {status}");
        }
        let text = response.text().await.with_context(|| format!("reading GET {path}"))?;
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("GET {path} did not answer Envoy's JSON"))?;
        anyhow::Ok(value)
    };
    let config_dump = get("/config_dump?resource=dynamic_route_configs").await?;
    if !config_dump["configs"].is_array() {
        anyhow::bail!("GET /config_dump answered JSON without `configs`: not an Envoy admin API");
    }
    let clusters = get("/clusters?format=json").await?;
    Ok((config_dump, clusters))
}

#[cfg(test)]
mod tests;
