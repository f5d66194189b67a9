//! Unit tests of the gateway-config comparison, one per rule, on config dumps shaped like a real gateway's: the
//! route configuration `http.8080` with the fields istiod 1.12.7 sets (`exact_match` header matchers, the
//! `istio.config` route metadata, the default retry policy, a decorator) and `/clusters?format=json` host statuses.

use serde_json::{Value, json};

use super::envoy_dump::*;
use super::expected::*;
use super::*;
use crate::definition::stages::LabDefinition;

const VS_PATH: &str = "/apis/networking.istio.io/v1alpha3/namespaces/tf-serving/virtual-service/image-classifier";
const R50: &str = "outbound|8501|resnet50|image-classifier.tf-serving.svc.cluster.local";
const R101: &str = "outbound|8501|resnet101|image-classifier.tf-serving.svc.cluster.local";
const SERVICE: &str = "outbound|8501||image-classifier.tf-serving.svc.cluster.local";

fn expectation(stage: &str) -> GatewayExpectation {
    let lab = LabDefinition::load_default().unwrap();
    let manifests = lab.stage_manifests(lab.stage(stage).unwrap()).unwrap();
    GatewayExpectation::for_stage(stage, &manifests).unwrap()
}

/// The response header istiod adds for a destination's `headers.response.set`.
fn version_header(version: &str) -> Value {
    json!([{"header": {"key": "x-model-version", "value": version}, "append": false}])
}

/// A route as istiod 1.12.7 builds it for the gateway: `clusters` are (cluster, weight, version).
fn route(headers: &[(&str, &str)], clusters: &[(&str, u32, &str)]) -> Value {
    let header_matchers: Vec<Value> = headers
        .iter()
        .map(|(name, value)| json!({"name": name, "exact_match": value}))
        .collect();
    let mut matcher = json!({"prefix": "/", "case_sensitive": true});
    if !header_matchers.is_empty() {
        matcher["headers"] = json!(header_matchers);
    }
    let mut action = json!({
        "timeout": "0s",
        "retry_policy": {
            "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
            "num_retries": 2,
            "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts"}],
            "host_selection_retry_max_attempts": "5",
            "retriable_status_codes": [503]
        },
        "max_grpc_timeout": "0s"
    });
    let mut out = json!({
        "match": matcher,
        "route": {},
        "metadata": {"filter_metadata": {"istio": {"config": VS_PATH}}},
        "decorator": {"operation": "image-classifier.tf-serving.svc.cluster.local:8501/*"}
    });
    match clusters {
        [(cluster, _, version)] => {
            action["cluster"] = json!(cluster);
            out["response_headers_to_add"] = version_header(version);
        }
        _ => {
            let weighted: Vec<Value> = clusters
                .iter()
                .map(|(cluster, weight, version)| {
                    json!({"name": cluster, "weight": weight, "response_headers_to_add": version_header(version)})
                })
                .collect();
            action["weighted_clusters"] = json!({"clusters": weighted});
        }
    }
    out["route"] = action;
    out
}

/// `/config_dump?resource=dynamic_route_configs` of a gateway holding `routes` in `http.8080`.
fn dump(routes: Vec<Value>) -> Value {
    json!({"configs": [{
        "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump.DynamicRouteConfig",
        "version_info": "2026-01-01T00:00:00Z/12",
        "route_config": {
            "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            "name": "http.8080",
            "virtual_hosts": [{
                "name": "*:80", "domains": ["*"], "routes": routes, "include_request_attempt_count": true
            }],
            "validate_clusters": false
        },
        "last_updated": "2026-01-01T00:00:00.000Z"
    }]})
}

/// `/clusters?format=json` with each cluster's hosts: (cluster, EDS health of each host).
fn clusters(statuses: &[(&str, &[&str])]) -> Value {
    let statuses: Vec<Value> = statuses
        .iter()
        .map(|(name, hosts)| {
            let hosts: Vec<Value> = hosts
                .iter()
                .enumerate()
                .map(|(index, health)| {
                    json!({
                        "address": {"socket_address": {"address": format!("172.17.0.{}", 10 + index), "port_value": 8501}},
                        "stats": [{"name": "cx_total"}, {"name": "rq_total"}],
                        "health_status": {"eds_health_status": health},
                        "weight": 1,
                        "locality": {}
                    })
                })
                .collect();
            json!({"name": name, "added_via_api": true, "host_statuses": hosts, "eds_service_name": name})
        })
        .collect();
    json!({"cluster_statuses": statuses})
}

fn healthy_both() -> Value {
    clusters(&[
        (R50, &["HEALTHY"]),
        (R101, &["HEALTHY"]),
        (SERVICE, &["HEALTHY", "HEALTHY"]),
    ])
}

fn split(resnet50: u32, resnet101: u32) -> Value {
    route(&[], &[(R50, resnet50, "resnet50"), (R101, resnet101, "resnet101")])
}

#[test]
fn the_expectation_names_what_istiod_builds_for_each_stage() {
    let stable = expectation("stable");
    assert_eq!(stable.route_config, "http.8080");
    assert_eq!(stable.hosts, ["*"]);
    assert_eq!(stable.config_path, VS_PATH);
    assert_eq!(stable.virtual_service, "tf-serving/image-classifier");
    assert_eq!(
        stable.routes[0].targets,
        [RouteTarget {
            cluster: SERVICE.to_string(),
            weight: 100,
            version: "resnet50".to_string()
        }]
    );
    // Weight 0 dropped, and the one destination left is a plain cluster.
    let canary = expectation("canary-deployed");
    assert_eq!(canary.routes[0].targets.len(), 1);
    assert_eq!(
        (
            canary.routes[0].targets[0].cluster.as_str(),
            canary.routes[0].targets[0].weight
        ),
        (R50, 100)
    );
    let split_stage = expectation("split-70-30");
    let weights: Vec<(&str, u32)> = split_stage.routes[0]
        .targets
        .iter()
        .map(|target| (target.cluster.as_str(), target.weight))
        .collect();
    assert_eq!(weights, [(R50, 70), (R101, 30)]);
    let focused = expectation("focused");
    assert_eq!(focused.routes.len(), 2);
    assert_eq!(focused.routes[0].headers["user-group"], r#"exact "canary""#);
    assert_eq!(focused.routes[0].targets[0].cluster, R101);
    assert!(focused.routes[1].headers.is_empty());
}

#[test]
fn a_gateway_serving_the_stage_differs_in_nothing() {
    let stable = dump(vec![route(&[], &[(SERVICE, 100, "resnet50")])]);
    assert_eq!(
        expectation("stable").differences(&stable, &healthy_both()),
        Vec::<String>::new()
    );
    let canary = dump(vec![route(&[], &[(R50, 100, "resnet50")])]);
    assert_eq!(
        expectation("canary-deployed").differences(&canary, &healthy_both()),
        Vec::<String>::new()
    );
    let split_dump = dump(vec![split(70, 30)]);
    assert_eq!(
        expectation("split-70-30").differences(&split_dump, &healthy_both()),
        Vec::<String>::new()
    );
    let focused = dump(vec![
        route(&[("user-group", "canary")], &[(R101, 100, "resnet101")]),
        route(&[], &[(R50, 100, "resnet50")]),
    ]);
    assert_eq!(
        expectation("focused").differences(&focused, &healthy_both()),
        Vec::<String>::new()
    );
}

#[test]
fn a_missing_route_configuration_is_named() {
    let empty = json!({"configs": []});
    assert_eq!(
        expectation("stable").differences(&empty, &healthy_both()),
        ["the gateway has no route configuration \"http.8080\" yet"]
    );
}

#[test]
fn a_missing_virtual_host_is_named() {
    let mut other_host = dump(vec![split(70, 30)]);
    other_host["configs"][0]["route_config"]["virtual_hosts"][0]["domains"] = json!(["example.com", "example.com:*"]);
    assert_eq!(
        expectation("split-70-30").route_differences(&other_host),
        ["route configuration \"http.8080\" has no virtual host for \"*\""]
    );
}

#[test]
fn only_the_routes_of_the_stages_virtual_service_count() {
    let mut foreign = split(50, 50);
    foreign["metadata"]["filter_metadata"]["istio"]["config"] =
        json!("/apis/networking.istio.io/v1alpha3/namespaces/default/virtual-service/other");
    // Another VirtualService's route before the lab's is skipped.
    let both = dump(vec![foreign.clone(), split(70, 30)]);
    assert_eq!(
        expectation("split-70-30").route_differences(&both),
        Vec::<String>::new()
    );
    let only_foreign = dump(vec![foreign]);
    assert_eq!(
        expectation("split-70-30").route_differences(&only_foreign),
        ["the gateway has no route from VirtualService tf-serving/image-classifier for host \"*\""]
    );
}

#[test]
fn a_different_number_of_routes_is_named_with_what_the_gateway_has() {
    let differences = expectation("focused").route_differences(&dump(vec![split(70, 30)]));
    assert_eq!(
        differences,
        [
            "the gateway has 1 route from VirtualService tf-serving/image-classifier, the stage has 2: the gateway matches prefix \"/\" → resnet50 70, resnet101 30"
        ]
    );
}

#[test]
fn different_weights_are_named_by_version() {
    // The previous stage's routes: everything to resnet50 (the weight-0 destination is not in the gateway at all).
    let canary = dump(vec![route(&[], &[(R50, 100, "resnet50")])]);
    assert_eq!(
        expectation("split-70-30").route_differences(&canary),
        ["route 1: the gateway routes 100/0 to resnet50/resnet101, the stage wants 70/30"]
    );
    assert_eq!(
        expectation("canary-deployed").route_differences(&dump(vec![split(70, 30)])),
        ["route 1: the gateway routes 70/30 to resnet50/resnet101, the stage wants 100/0"]
    );
    assert_eq!(
        expectation("split-70-30").route_differences(&dump(vec![split(50, 50)])),
        ["route 1: the gateway routes 50/50 to resnet50/resnet101, the stage wants 70/30"]
    );
}

#[test]
fn a_different_header_match_is_named() {
    // The header route is there, but matches another value.
    let wrong_value = dump(vec![
        route(&[("user-group", "beta")], &[(R101, 100, "resnet101")]),
        route(&[], &[(R50, 100, "resnet50")]),
    ]);
    assert_eq!(
        expectation("focused").route_differences(&wrong_value),
        [
            "route 1: the gateway matches prefix \"/\" with user-group exact \"beta\", the stage wants prefix \"/\" with user-group exact \"canary\""
        ]
    );
}

#[test]
fn the_same_weights_through_other_clusters_are_named() {
    // The stable stage's plain Service cluster, where canary-deployed wants the resnet50 subset.
    let stable = dump(vec![route(&[], &[(SERVICE, 100, "resnet50")])]);
    assert_eq!(
        expectation("canary-deployed").route_differences(&stable),
        [format!(
            "route 1: the gateway sends traffic to {SERVICE}, the stage to {R50}"
        )]
    );
}

#[test]
fn a_cluster_without_a_healthy_endpoint_is_named() {
    let served = dump(vec![split(70, 30)]);
    let expected = expectation("split-70-30");
    // EDS lags readiness: the cluster is there, its endpoint not yet.
    let no_endpoint = clusters(&[(R50, &["HEALTHY"]), (R101, &[])]);
    assert_eq!(
        expected.differences(&served, &no_endpoint),
        [format!("cluster {R101} has no healthy endpoint (0 listed)")]
    );
    let unhealthy = clusters(&[(R50, &["HEALTHY"]), (R101, &["UNHEALTHY", "DRAINING"])]);
    assert_eq!(
        expected.differences(&served, &unhealthy),
        [format!("cluster {R101} has no healthy endpoint (2 listed)")]
    );
    let missing = clusters(&[(R50, &["HEALTHY"])]);
    assert_eq!(
        expected.differences(&served, &missing),
        [format!("the gateway has no cluster {R101}")]
    );
    // An endpoint ejected by outlier detection takes no traffic either.
    let mut ejected = clusters(&[(R50, &["HEALTHY"]), (R101, &["HEALTHY"])]);
    ejected["cluster_statuses"][1]["host_statuses"][0]["health_status"]["failed_outlier_check"] = json!(true);
    assert_eq!(
        healthy_endpoints(&ejected)[R101],
        EndpointCount { listed: 1, healthy: 0 }
    );
}

#[test]
fn string_match_header_matchers_read_like_the_older_fields() {
    let mut newer = route(&[("user-group", "canary")], &[(R101, 100, "resnet101")]);
    newer["match"]["headers"] = json!([{"name": "user-group", "string_match": {"exact": "canary"}}]);
    let older = route(&[("user-group", "canary")], &[(R101, 100, "resnet101")]);
    assert_eq!(gateway_route(&newer).unwrap(), gateway_route(&older).unwrap());
    let mut inverted = older.clone();
    inverted["match"]["headers"][0]["invert_match"] = json!(true);
    assert_eq!(
        gateway_route(&inverted).unwrap().headers["user-group"],
        r#"not exact "canary""#
    );
}

#[test]
fn the_whole_config_dump_reads_like_the_filtered_one() {
    let filtered = dump(vec![split(70, 30)]);
    let whole = json!({"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", "bootstrap": {}},
        {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
         "static_route_configs": [{"route_config": {"name": "InboundPassthroughClusterIpv4"}}],
         "dynamic_route_configs": [filtered["configs"][0].clone()]}
    ]});
    assert_eq!(
        route_configuration(&whole, "http.8080"),
        route_configuration(&filtered, "http.8080")
    );
    assert!(route_configuration(&whole, "http.8080").is_some());
}

#[test]
fn cluster_names_follow_istio() {
    assert_eq!(
        cluster_name("image-classifier", Some("resnet101"), 8501, "tf-serving"),
        R101
    );
    assert_eq!(cluster_name("image-classifier", None, 8501, "tf-serving"), SERVICE);
    // A name with a dot is taken as fully qualified, as ResolveShortnameToFQDN does.
    assert_eq!(
        cluster_name("image-classifier.tf-serving.svc.cluster.local", None, 8501, "default"),
        SERVICE
    );
    assert_eq!(gateway_route_config_name(80), "http.8080");
    assert_eq!(gateway_route_config_name(8000), "http.8000");
}
