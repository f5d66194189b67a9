//! Comparing a live VirtualService's routing with the stage's for one header set: the route a prediction with those
//! headers takes must send the same weights to the same versions. Destinations with weight 0 count as absent (a
//! 100/0 split and a single destination route the same). A difference becomes the [`Finding`] that names the field
//! to change; a header match that is near the one the lab sends (`user_group` for `user-group`) is named as the
//! cause rather than the weights it leads to.

use std::collections::BTreeMap;

use crate::definition::expectations::describe_headers;
use crate::definition::hints::{Finding, HintKind};
use crate::definition::routing::{HttpRoute, PREDICT_PATH, StringMatch, VirtualServiceSpec};

/// What differs between where the stage sends a prediction with `headers` (`want`, weights by version) and where
/// the live VirtualService `name` (`live`) sends it. Empty: the routing holds.
pub(crate) fn compare_routes(
    name: &str,
    live: &VirtualServiceSpec,
    headers: &BTreeMap<String, String>,
    want: &BTreeMap<String, u32>,
) -> Vec<Finding> {
    let route = match live.route_for(PREDICT_PATH, headers) {
        Ok(route) => route,
        Err(error) => {
            return vec![Finding::new(
                HintKind::UnreadableRoutes,
                &[("name", name.to_string()), ("error", format!("{error:#}"))],
            )];
        }
    };
    let got = route.map(HttpRoute::weights).map(without_zeros).unwrap_or_default();
    if got == without_zeros(want.clone()) {
        return Vec::new();
    }
    if let Some(finding) = near_miss_header(live, headers) {
        return vec![finding];
    }
    let Some(route) = route else {
        return vec![Finding::new(
            HintKind::NoRoute,
            &[("name", name.to_string()), ("headers", describe_headers(headers))],
        )];
    };
    let index = live
        .http
        .iter()
        .position(|candidate| std::ptr::eq(candidate, route))
        .unwrap_or_default();
    weight_findings(name, route, index, headers, want)
}

/// The weight, missing and extra destinations of the live `route` (at `spec.http[index]`) against `want`.
fn weight_findings(
    name: &str,
    route: &HttpRoute,
    index: usize,
    headers: &BTreeMap<String, String>,
    want: &BTreeMap<String, u32>,
) -> Vec<Finding> {
    let got = route.weights();
    let mut findings = Vec::new();
    let destination_of = |version: &str| route.route.iter().position(|d| d.version(route) == version);
    for (version, wanted) in want.iter().filter(|(_, weight)| **weight > 0) {
        match destination_of(version) {
            Some(at) if got.get(version) != Some(wanted) => findings.push(Finding::new(
                HintKind::Weight,
                &[
                    ("name", name.to_string()),
                    ("subset", version.clone()),
                    ("got", got.get(version).copied().unwrap_or_default().to_string()),
                    ("want", wanted.to_string()),
                    ("field", format!("spec.http[{index}].route[{at}].weight")),
                ],
            )),
            Some(_) => {}
            None => findings.push(Finding::new(
                HintKind::DestinationMissing,
                &[
                    ("name", name.to_string()),
                    ("subset", version.clone()),
                    ("want", wanted.to_string()),
                    ("headers", describe_headers(headers)),
                    ("field", format!("spec.http[{index}].route")),
                ],
            )),
        }
    }
    for (version, weight) in got.iter().filter(|(_, weight)| **weight > 0) {
        if want.get(version).copied().unwrap_or_default() == 0 {
            let at = destination_of(version).unwrap_or_default();
            findings.push(Finding::new(
                HintKind::DestinationExtra,
                &[
                    ("name", name.to_string()),
                    ("subset", version.clone()),
                    ("got", weight.to_string()),
                    ("headers", describe_headers(headers)),
                    ("field", format!("spec.http[{index}].route[{at}]")),
                ],
            ));
        }
    }
    findings
}

/// A header match in `live` that is near one of the `headers` the lab sends but does not match it: another name
/// that reads the same (case, `_` for `-`, a typo), or the same name wanting another value.
fn near_miss_header(live: &VirtualServiceSpec, headers: &BTreeMap<String, String>) -> Option<Finding> {
    for (route_index, route) in live.http.iter().enumerate() {
        for (match_index, condition) in route.matches.iter().enumerate() {
            for (matched, wanted) in &condition.headers {
                let field = format!("spec.http[{route_index}].match[{match_index}].headers");
                for (sent, value) in headers {
                    if matched == sent {
                        if wanted.matches(value).unwrap_or(true) {
                            continue;
                        }
                        return Some(Finding::new(
                            HintKind::HeaderValue,
                            &[
                                ("header", sent.clone()),
                                ("got", describe_match(wanted)),
                                ("want", value.clone()),
                                ("field", format!("{field}.{sent}")),
                            ],
                        ));
                    }
                    if reads_the_same(matched, sent) {
                        return Some(Finding::new(
                            HintKind::HeaderName,
                            &[("got", matched.clone()), ("want", sent.clone()), ("field", field)],
                        ));
                    }
                }
            }
        }
    }
    None
}

/// Whether two header names differ only in case, `_` against `-`, or a small typo.
fn reads_the_same(a: &str, b: &str) -> bool {
    let normal = |name: &str| name.to_ascii_lowercase().replace('_', "-");
    normal(a) == normal(b) || strsim::normalized_damerau_levenshtein(&normal(a), &normal(b)) >= 0.75
}

/// "canary" (exact), "prefix can", "regex c.*".
fn describe_match(wanted: &StringMatch) -> String {
    match wanted {
        StringMatch::Exact(value) => value.clone(),
        StringMatch::Prefix(prefix) => format!("a value starting with {prefix}"),
        StringMatch::Regex(regex) => format!("a value matching {regex}"),
    }
}

/// The weights without destinations that get nothing.
fn without_zeros(weights: BTreeMap<String, u32>) -> BTreeMap<String, u32> {
    weights.into_iter().filter(|(_, weight)| *weight > 0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::stages::LabDefinition;

    fn routing(stage: &str) -> VirtualServiceSpec {
        let lab = LabDefinition::load_default().unwrap();
        VirtualServiceSpec::from_manifests(&lab.stage_manifests(lab.stage(stage).unwrap()).unwrap()).unwrap()
    }

    fn weights(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs
            .iter()
            .map(|(version, weight)| (version.to_string(), *weight))
            .collect()
    }

    fn canary() -> BTreeMap<String, String> {
        BTreeMap::from([("user-group".to_string(), "canary".to_string())])
    }

    #[test]
    fn the_stage_own_routes_hold() {
        let split = weights(&[("resnet50", 70), ("resnet101", 30)]);
        assert!(compare_routes("vs", &routing("split-70-30"), &BTreeMap::new(), &split).is_empty());
        let focused = weights(&[("resnet101", 100)]);
        assert!(compare_routes("vs", &routing("focused"), &canary(), &focused).is_empty());
    }

    #[test]
    fn a_single_destination_holds_for_a_100_0_split() {
        let want = weights(&[("resnet50", 100), ("resnet101", 0)]);
        assert!(compare_routes("vs", &routing("stable"), &BTreeMap::new(), &want).is_empty());
    }

    #[test]
    fn a_wrong_weight_names_the_destination_field() {
        let mut live = routing("split-70-30");
        live.http[0].route[0].weight = Some(50);
        live.http[0].route[1].weight = Some(50);
        let want = weights(&[("resnet50", 70), ("resnet101", 30)]);
        let findings = compare_routes("image-classifier", &live, &BTreeMap::new(), &want);
        let resnet101 = findings.iter().find(|f| f.values["subset"] == "resnet101").unwrap();
        assert_eq!(resnet101.kind, HintKind::Weight);
        assert_eq!(resnet101.values["got"], "50");
        assert_eq!(resnet101.values["want"], "30");
        assert_eq!(resnet101.values["field"], "spec.http[0].route[1].weight");
    }

    #[test]
    fn a_misspelt_header_is_named_rather_than_the_weights_it_leads_to() {
        let mut live = routing("focused");
        let matched = live.http[0].matches[0].headers.remove("user-group").unwrap();
        live.http[0].matches[0]
            .headers
            .insert("user_group".to_string(), matched);
        let findings = compare_routes("vs", &live, &canary(), &weights(&[("resnet101", 100)]));
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].kind, HintKind::HeaderName);
        assert_eq!(findings[0].values["got"], "user_group");
        assert_eq!(findings[0].values["want"], "user-group");
        assert_eq!(findings[0].values["field"], "spec.http[0].match[0].headers");
    }

    #[test]
    fn a_header_value_that_differs_is_named() {
        let mut live = routing("focused");
        live.http[0].matches[0]
            .headers
            .insert("user-group".to_string(), StringMatch::Exact("Canary".to_string()));
        let findings = compare_routes("vs", &live, &canary(), &weights(&[("resnet101", 100)]));
        assert_eq!(findings[0].kind, HintKind::HeaderValue);
        assert_eq!(findings[0].values["got"], "Canary");
    }

    #[test]
    fn no_matching_route_is_named() {
        let mut live = routing("focused");
        live.http.truncate(1);
        let findings = compare_routes("vs", &live, &BTreeMap::new(), &weights(&[("resnet50", 100)]));
        assert_eq!(findings[0].kind, HintKind::NoRoute);
    }

    #[test]
    fn unrelated_header_names_do_not_read_the_same() {
        assert!(reads_the_same("user_group", "user-group"));
        assert!(reads_the_same("User-Group", "user-group"));
        assert!(reads_the_same("user-gruop", "user-group"));
        assert!(!reads_the_same("x-request-id", "user-group"));
    }
}
