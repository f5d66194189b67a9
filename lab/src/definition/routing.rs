//! The routing a stage configures, read from its VirtualService: which route a request takes and with what weights.
//!
//! Only the part of Istio's `networking.istio.io` VirtualService that the lab uses is typed here (header and URI
//! matches, weighted destinations, header operations, fault injection, timeouts); an unknown field is an error
//! rather than silently ignored, because ignoring it would misstate where traffic goes. The types also serialise
//! back, so tests can edit a stage's VirtualService (weights, matches) and hand the result to a proxy.

use std::collections::BTreeMap;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::definition::manifests::Manifest;

/// The response header the lab's VirtualServices set on every destination to say which model answered.
pub const VERSION_HEADER: &str = "x-model-version";

/// The model name the lab's TF Serving pods serve (`--model_name`).
pub const MODEL_NAME: &str = "image_classifier";
/// The REST path of a prediction by the lab's model, version 1, relative to the ingress URL: the request whose
/// route the stages' routes are read for.
pub const PREDICT_PATH: &str = "/v1/models/image_classifier/versions/1:predict";

/// `spec` of a VirtualService.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualServiceSpec {
    /// The hosts it applies to.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The gateways it is bound to.
    #[serde(default)]
    pub gateways: Vec<String>,
    /// HTTP routes, tried in order; the first that matches wins.
    #[serde(default)]
    pub http: Vec<HttpRoute>,
}

/// One HTTP route: when it applies and where it sends traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRoute {
    /// The route's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Conditions, any of which selects the route; none means every request.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpMatchRequest>,
    /// The destinations, with weights when more than one.
    #[serde(default)]
    pub route: Vec<RouteDestination>,
    /// Header operations for every destination of the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
    /// Fault injection (delays and aborts) on this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<HttpFault>,
    /// The route's request timeout, e.g. `10s` (Istio's default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// A match condition: all of its parts must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpMatchRequest {
    /// The condition's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Request headers (lowercase names) and how their values must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    /// How the path must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
}

/// How a string must match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StringMatch {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// An RE2 regular expression matching the whole value.
    Regex(String),
}

/// A destination with its weight and header operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteDestination {
    /// Where the traffic goes.
    pub destination: Destination,
    /// Percent of the route's traffic (absent for a single destination: all of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Header operations for this destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
}

/// A service, optionally narrowed to a DestinationRule subset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Destination {
    /// The service host, e.g. `image-classifier`.
    pub host: String,
    /// The subset, e.g. `resnet101`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// The service port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// A service port by number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSelector {
    /// The port number.
    pub number: u32,
}

/// Header operations on requests and responses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Headers {
    /// On the request to the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeaderOperations>,
    /// On the response to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HeaderOperations>,
}

/// Set, add or remove headers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderOperations {
    /// Overwrite these headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Append these headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Remove these headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// Istio's fault injection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFault {
    /// Delay some requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,
    /// Answer some requests with an error status without forwarding them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
}

/// A delay fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultDelay {
    /// The delay, e.g. `5s` or `200ms`.
    pub fixed_delay: String,
    /// Percent of requests delayed (default all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// An abort fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultAbort {
    /// The status answered, e.g. 503.
    pub http_status: u16,
    /// Percent of requests aborted (default all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// A percentage, 0–100.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Percent {
    /// The value, 0–100.
    pub value: f64,
}

impl VirtualServiceSpec {
    /// The spec of the one VirtualService among a stage's manifests.
    pub fn from_manifests(manifests: &[Manifest]) -> anyhow::Result<VirtualServiceSpec> {
        let mut services = manifests.iter().filter(|manifest| manifest.kind() == "VirtualService");
        let (Some(manifest), None) = (services.next(), services.next()) else {
            anyhow::bail!("a stage needs exactly one VirtualService among its manifests");
        };
        VirtualServiceSpec::from_object(&manifest.object).with_context(|| {
            format!(
                "reading {} ({}, document {})",
                manifest.describe(),
                manifest.file,
                manifest.document
            )
        })
    }

    /// The spec of a VirtualService object (the whole object, with `spec`).
    pub fn from_object(object: &serde_json::Value) -> anyhow::Result<VirtualServiceSpec> {
        Ok(serde_json::from_value(object["spec"].clone())?)
    }

    /// The route a request to `path` with `headers` takes (the first whose match holds), if any.
    ///
    /// Regex matches are not evaluated here (the lab's manifests use none): a route with one is an error.
    pub fn route_for(&self, path: &str, headers: &BTreeMap<String, String>) -> anyhow::Result<Option<&HttpRoute>> {
        Ok(self.route_index_for(path, headers)?.map(|index| &self.http[index]))
    }

    /// Whether requests to `path` and to `other_path` with the same `headers` take the same route (or both none).
    ///
    /// The method is no part of the decision because it cannot be: a match is typed here with `uri` and `headers`
    /// only, and any other condition Istio's `HTTPMatchRequest` offers (`method`, `queryParams`, `scheme`, …) is an
    /// unknown field, refused when the VirtualService is read. So TF Serving's model-status request
    /// (`GET /v1/models/NAME`) and a prediction (`POST /v1/models/NAME:predict`) differ, for the routes, only in
    /// their paths. A regex match is an error, as in [`VirtualServiceSpec::route_for`].
    pub fn same_route(&self, path: &str, other_path: &str, headers: &BTreeMap<String, String>) -> anyhow::Result<bool> {
        Ok(self.route_index_for(path, headers)? == self.route_index_for(other_path, headers)?)
    }

    /// The index in [`VirtualServiceSpec::http`] of the route [`VirtualServiceSpec::route_for`] picks.
    fn route_index_for(&self, path: &str, headers: &BTreeMap<String, String>) -> anyhow::Result<Option<usize>> {
        for (index, route) in self.http.iter().enumerate() {
            if route.matches.is_empty() {
                return Ok(Some(index));
            }
            for condition in &route.matches {
                let uri_holds = match &condition.uri {
                    Some(uri) => uri.matches(path)?,
                    None => true,
                };
                let mut headers_hold = true;
                for (name, expected) in &condition.headers {
                    let holds = match headers.get(&name.to_ascii_lowercase()).or_else(|| headers.get(name)) {
                        Some(value) => expected.matches(value)?,
                        None => false,
                    };
                    headers_hold &= holds;
                }
                if uri_holds && headers_hold {
                    return Ok(Some(index));
                }
            }
        }
        Ok(None)
    }
}

impl StringMatch {
    /// Whether `value` matches (exact and prefix only).
    pub fn matches(&self, value: &str) -> anyhow::Result<bool> {
        match self {
            StringMatch::Exact(expected) => Ok(value == expected),
            StringMatch::Prefix(prefix) => Ok(value.starts_with(prefix.as_str())),
            StringMatch::Regex(regex) => anyhow::bail!("regex match \"{regex}\" is not evaluated by canary-lab"),
        }
    }
}

impl HttpRoute {
    /// The configured weights in percent by version (destinations with weight 0 included, so the chart shows them).
    pub fn weights(&self) -> BTreeMap<String, u32> {
        let single = self.route.len() == 1;
        let mut weights = BTreeMap::new();
        for destination in &self.route {
            let weight = match (destination.weight, single) {
                (Some(weight), _) => weight,
                (None, true) => 100,
                (None, false) => 0,
            };
            *weights.entry(destination.version(self)).or_insert(0) += weight;
        }
        weights
    }
}

impl HttpRoute {
    /// Whether every response through this route says which version answered: each destination sets
    /// [`VERSION_HEADER`] on its responses (itself or through the route's header operations), so attributing a
    /// response needs no fingerprint of its body. A route without destinations sets nothing.
    pub fn sets_version_header(&self) -> bool {
        let sets = |headers: &Option<Headers>| {
            headers
                .as_ref()
                .and_then(|headers| headers.response.as_ref())
                .is_some_and(|response| response.set.contains_key(VERSION_HEADER))
        };
        !self.route.is_empty()
            && self
                .route
                .iter()
                .all(|destination| sets(&destination.headers) || sets(&self.headers))
    }
}

impl RouteDestination {
    /// The model version behind this destination: the `x-model-version` response header it sets, else the subset,
    /// else the host.
    pub fn version(&self, route: &HttpRoute) -> String {
        let set_header = |headers: &Option<Headers>| {
            headers
                .as_ref()
                .and_then(|headers| headers.response.as_ref())
                .and_then(|response| response.set.get(VERSION_HEADER).cloned())
        };
        set_header(&self.headers)
            .or_else(|| set_header(&route.headers))
            .or_else(|| self.destination.subset.clone())
            .unwrap_or_else(|| self.destination.host.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::stages::LabDefinition;

    fn stage_routing(name: &str) -> VirtualServiceSpec {
        let lab = LabDefinition::load_default().unwrap();
        let manifests = lab.stage_manifests(lab.stage(name).unwrap()).unwrap();
        VirtualServiceSpec::from_manifests(&manifests).unwrap()
    }

    #[test]
    fn every_stage_has_the_weights_it_says() {
        let no_headers = BTreeMap::new();
        let canary = BTreeMap::from([("user-group".to_string(), "canary".to_string())]);
        let weights = |stage: &str, headers: &BTreeMap<String, String>| {
            let routing = stage_routing(stage);
            routing
                .route_for("/v1/models/image_classifier:predict", headers)
                .unwrap()
                .unwrap()
                .weights()
        };
        let expect = |pairs: &[(&str, u32)]| -> BTreeMap<String, u32> {
            pairs
                .iter()
                .map(|(version, weight)| (version.to_string(), *weight))
                .collect()
        };
        assert_eq!(weights("stable", &no_headers), expect(&[("resnet50", 100)]));
        assert_eq!(
            weights("canary-deployed", &no_headers),
            expect(&[("resnet50", 100), ("resnet101", 0)])
        );
        assert_eq!(
            weights("split-70-30", &no_headers),
            expect(&[("resnet50", 70), ("resnet101", 30)])
        );
        assert_eq!(weights("focused", &canary), expect(&[("resnet101", 100)]));
        assert_eq!(weights("focused", &no_headers), expect(&[("resnet50", 100)]));
    }

    const STATUS: &str = "/v1/models/image_classifier";
    const PREDICT: &str = "/v1/models/image_classifier:predict";

    #[test]
    fn the_lab_stages_route_status_requests_as_predictions_and_say_the_version() {
        let no_headers = BTreeMap::new();
        let canary = BTreeMap::from([("user-group".to_string(), "canary".to_string())]);
        for stage in ["stable", "canary-deployed", "split-70-30", "focused"] {
            let routing = stage_routing(stage);
            for headers in [&no_headers, &canary] {
                assert!(routing.same_route(STATUS, PREDICT, headers).unwrap(), "{stage}");
                let route = routing.route_for(STATUS, headers).unwrap().unwrap();
                assert!(route.sets_version_header(), "{stage}");
            }
        }
    }

    #[test]
    fn a_route_matching_the_predict_uri_takes_no_status_request() {
        let mut routing = stage_routing("split-70-30");
        routing.http[0].matches = vec![HttpMatchRequest {
            uri: Some(StringMatch::Prefix(PREDICT.to_string())),
            ..HttpMatchRequest::default()
        }];
        let no_headers = BTreeMap::new();
        assert!(!routing.same_route(STATUS, PREDICT, &no_headers).unwrap());
        assert!(routing.route_for(STATUS, &no_headers).unwrap().is_none());
        // A prefix both paths share routes both alike.
        routing.http[0].matches[0].uri = Some(StringMatch::Prefix("/v1/models/".to_string()));
        assert!(routing.same_route(STATUS, PREDICT, &no_headers).unwrap());
        // Exact on the status path sends it one way and predictions to the next route.
        routing.http[0].matches[0].uri = Some(StringMatch::Exact(STATUS.to_string()));
        routing.http.push(HttpRoute {
            matches: Vec::new(),
            ..routing.http[0].clone()
        });
        assert!(!routing.same_route(STATUS, PREDICT, &no_headers).unwrap());
    }

    #[test]
    fn a_method_match_is_refused_when_read_so_the_method_cannot_route() {
        let object = serde_json::json!({"spec": {"http": [{"match": [{"method": {"exact": "POST"}}], "route": []}]}});
        let error = VirtualServiceSpec::from_object(&object).unwrap_err().to_string();
        assert!(error.contains("unknown field `method`"), "{error}");
    }

    #[test]
    fn a_destination_without_the_version_header_needs_fingerprints() {
        let mut routing = stage_routing("split-70-30");
        let route = &mut routing.http[0];
        assert!(route.sets_version_header());
        route.route[1].headers = None;
        assert!(!route.sets_version_header());
        route.headers = Some(Headers {
            request: None,
            response: Some(HeaderOperations {
                set: BTreeMap::from([(VERSION_HEADER.to_string(), "x".to_string())]),
                ..HeaderOperations::default()
            }),
        });
        assert!(route.sets_version_header());
    }

    #[test]
    fn an_unknown_field_is_an_error_not_ignored() {
        let object = serde_json::json!({"spec": {"http": [{"route": [], "mirror": {"host": "x"}}]}});
        let error = VirtualServiceSpec::from_object(&object).unwrap_err().to_string();
        assert!(error.contains("unknown field `mirror`"), "{error}");
    }

    #[test]
    fn the_spec_round_trips_through_json() {
        let routing = stage_routing("focused");
        let again: VirtualServiceSpec = serde_json::from_value(serde_json::to_value(&routing).unwrap()).unwrap();
        assert_eq!(again, routing);
    }
}
