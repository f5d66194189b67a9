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

use crate::cluster::Cluster;
use crate::cluster::port_forward::port_forward_to_pod;
use crate::definition::plan::StagePlan;
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

mod envoy_dump;
mod expected;

pub use envoy_dump::{EndpointCount, gateway_route, healthy_endpoints, route_configuration};
pub use expected::{cluster_name, gateway_route_config_name};

#[cfg(test)]
mod tests;
