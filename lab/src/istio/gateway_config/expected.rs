//! What istiod 1.12.7 makes of a stage for the ingress gateway ([`GatewayExpectation`]), and how that compares with
//! what the gateway's Envoy holds. Each rule cites the istiod source it follows.

use anyhow::Context;
use serde_json::Value;

use super::envoy_dump::{healthy_endpoints, route_configuration, routes_of, virtual_host_for};
use super::{CLUSTER_DOMAIN, GatewayExpectation, GatewayRoute, RouteTarget};
use crate::cluster::LAB_NAMESPACE;
use crate::definition::manifests::Manifest;
use crate::definition::routing::{HttpMatchRequest, HttpRoute, RouteDestination, StringMatch, VirtualServiceSpec};

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
                    "the gateway has {} from VirtualService {}, the stage has {}: the gateway {}",
                    crate::output::plural(actual.len() as u64, "route"),
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
pub(super) fn gateway_server_port(manifests: &[Manifest]) -> u32 {
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
pub(super) fn destination_port(destination: &RouteDestination, manifests: &[Manifest], server_port: u32) -> u32 {
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
pub(super) fn expected_route(
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
pub(super) fn header_match_text(matcher: &StringMatch) -> String {
    match matcher {
        StringMatch::Exact(value) => format!("exact {value:?}"),
        StringMatch::Prefix(value) => format!("prefix {value:?}"),
        StringMatch::Regex(regex) if regex == "*" => "present".to_string(),
        StringMatch::Regex(regex) => format!("regex {regex:?}"),
    }
}

/// `isCatchAllMatch` (route.go at 1.12.7): a condition that is only a prefix `/`.
pub(super) fn is_catch_all_match(condition: &HttpMatchRequest) -> bool {
    condition.headers.is_empty() && condition.uri == Some(StringMatch::Prefix("/".to_string()))
}

/// A route's weights by version (zeros included), in the order of its destinations.
pub(super) fn weights_in_order(http: &HttpRoute) -> Vec<(String, u32)> {
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
