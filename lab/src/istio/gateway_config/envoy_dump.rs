//! Reading the gateway's Envoy admin output: the route configuration in `/config_dump` and the endpoints' health in
//! `/clusters?format=json`, into [`GatewayRoute`]s and [`EndpointCount`]s. Pure, so each shape is unit-tested.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{GatewayRoute, ISTIO_METADATA, RouteTarget};
use crate::definition::routing::VERSION_HEADER;

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
pub(super) fn virtual_host_for<'a>(route_config: &'a Value, host: &str) -> Option<&'a Value> {
    route_config["virtual_hosts"].as_array()?.iter().find(|virtual_host| {
        virtual_host["domains"]
            .as_array()
            .is_some_and(|domains| domains.iter().any(|domain| domain == host))
    })
}

/// The routes of `virtual_host` that istiod built from the VirtualService at `config_path` (their
/// `metadata.filter_metadata.istio.config`), in order, reduced to [`GatewayRoute`]s.
pub(super) fn routes_of(virtual_host: &Value, config_path: &str) -> Result<Vec<GatewayRoute>, String> {
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
pub(super) fn envoy_header_match_text(header: &Value) -> String {
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
pub(super) fn set_version_header(options: &Value) -> Option<String> {
    options
        .as_array()?
        .iter()
        .find(|option| option["header"]["key"] == VERSION_HEADER)
        .and_then(|option| option["header"]["value"].as_str())
        .map(str::to_string)
}

/// A cluster's version when it sets no header: its subset, else its name.
pub(super) fn version_of_cluster(cluster: &str) -> String {
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

pub(super) fn host_is_healthy(health: &Value) -> bool {
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
