//! Reading the routes of a VirtualService a learner wrote: "defaults and extra fields are fine". The stage's own
//! VirtualService is read strictly ([`VirtualServiceSpec::from_object`] refuses what it does not model, because the
//! lab must not misstate where its own traffic goes); a live one may carry anything Istio 1.12.7's schema allows.
//!
//! The API server prunes what the CRD's schema does not declare (`spec` has no `x-kubernetes-preserve-unknown-fields`
//! in `assets/istio-1.12.7-crds.yaml`), so a live object holds only the fields listed there. Each of them is one of:
//! - modelled by [`VirtualServiceSpec`] (hosts, gateways, the routes' matches on `uri` and `headers`, destinations,
//!   weights, header operations, `timeout`) and compared;
//! - [`IGNORED`]: it cannot change which destination a prediction through the ingress reaches, so it is dropped
//!   (its effect on the answers, e.g. a fault, is what the checklist's traffic item measures);
//! - [`UNEVALUATED`]: it can change the route a prediction takes and is not evaluated here, so the item fails with
//!   a hint that names the field rather than guessing.
//!
//! Field names and meanings: `networking/v1alpha3/virtual_service.proto` in istio/api at 1.12.

use serde_json::Value;

use crate::definition::hints::{Finding, HintKind};
use crate::definition::routing::VirtualServiceSpec;

/// Where in a VirtualService's `spec` a field is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// `spec`.
    Spec,
    /// `spec.http[i]`.
    Route,
    /// `spec.http[i].match[j]`.
    Match,
}

/// Fields dropped before the routes are compared, and why each cannot change where a prediction goes.
const IGNORED: &[(Level, &str, &str)] = &[
    (
        Level::Spec,
        "tcp",
        "routes TCP traffic; the lab's gateway server is HTTP",
    ),
    (
        Level::Spec,
        "tls",
        "routes TLS traffic by SNI; the lab's gateway server is HTTP",
    ),
    (
        Level::Route,
        "corsPolicy",
        "acts on requests with an Origin header, which the lab never sends",
    ),
    (
        Level::Route,
        "mirror",
        "sends a copy; the answer still comes from the route's destinations",
    ),
    (Level::Route, "mirrorPercent", "how much is copied to the mirror"),
    (Level::Route, "mirror_percent", "how much is copied to the mirror"),
    (Level::Route, "mirrorPercentage", "how much is copied to the mirror"),
    (Level::Route, "retries", "retries go to the same route's destinations"),
    (
        Level::Route,
        "rewrite",
        "rewrites the request after the route is chosen",
    ),
    (
        Level::Route,
        "timeout",
        "bounds the answer's time after the route is chosen",
    ),
    (
        Level::Route,
        "fault",
        "delays or aborts after the route is chosen; the traffic item measures it",
    ),
];

/// Fields that can change which route a prediction takes, and what they depend on.
const UNEVALUATED: &[(Level, &str, &str)] = &[
    (
        Level::Spec,
        "exportTo",
        "it decides which namespaces, the gateway's among them, see the routes",
    ),
    (
        Level::Route,
        "redirect",
        "a redirect answers instead of routing to a destination",
    ),
    (Level::Route, "delegate", "the routes are in another VirtualService"),
    (
        Level::Match,
        "method",
        "predictions are POST and TF Serving's status requests GET",
    ),
    (
        Level::Match,
        "authority",
        "the Host a client sends depends on the URL it uses",
    ),
    (Level::Match, "scheme", "a match on the request's scheme"),
    (
        Level::Match,
        "port",
        "a match on the gateway port the request came in on",
    ),
    (
        Level::Match,
        "gateways",
        "a match on the gateway the request came through",
    ),
    (Level::Match, "queryParams", "a match on the query string"),
    (Level::Match, "ignoreUriCase", "it changes how the uri match compares"),
    (
        Level::Match,
        "withoutHeaders",
        "a match on headers a request must not carry",
    ),
    (Level::Match, "sourceLabels", "a match on the client's pod labels"),
    (Level::Match, "sourceNamespace", "a match on the client's namespace"),
];

/// The routes of the live VirtualService `name` (the whole object), with the fields that cannot change where a
/// prediction goes dropped; or the finding that names a field that can and is not evaluated, or the part that
/// cannot be read (with its field path).
pub(crate) fn read_live_routes(name: &str, object: &Value) -> Result<VirtualServiceSpec, Finding> {
    let mut spec = object["spec"].clone();
    let mut dropped = Vec::new();
    if let Some(unevaluated) = prune(&mut spec, Level::Spec, "spec", &mut dropped) {
        return Err(unevaluated.finding(name));
    }
    for (i, route) in each_mut(&mut spec, "http") {
        if let Some(unevaluated) = prune(route, Level::Route, &format!("spec.http[{i}]"), &mut dropped) {
            return Err(unevaluated.finding(name));
        }
        for (j, condition) in each_mut(route, "match") {
            let at = format!("spec.http[{i}].match[{j}]");
            if let Some(unevaluated) = prune(condition, Level::Match, &at, &mut dropped) {
                return Err(unevaluated.finding(name));
            }
        }
    }
    if !dropped.is_empty() {
        tracing::debug!(
            virtual_service = name,
            ?dropped,
            "fields that cannot change where a prediction goes"
        );
    }
    serde_path_to_error::deserialize(spec).map_err(|error| {
        Finding::new(
            HintKind::UnreadableRoutes,
            &[
                ("name", name.to_string()),
                ("error", format!("spec.{}: {}", error.path(), error.inner())),
            ],
        )
    })
}

/// A field at `field` that can change where a prediction goes.
struct Unevaluated {
    field: String,
    why: &'static str,
}

impl Unevaluated {
    fn finding(self, name: &str) -> Finding {
        Finding::new(
            HintKind::UnevaluatedRoute,
            &[
                ("name", name.to_string()),
                ("field", self.field),
                ("why", self.why.to_string()),
            ],
        )
    }
}

/// Drops the [`IGNORED`] fields of `level` from `object` (recording their paths under `at` in `dropped`); the first
/// [`UNEVALUATED`] field that is set, if any. A field holding its default (`false`, an empty list, `exportTo` of
/// every namespace) changes nothing and is dropped too.
fn prune(object: &mut Value, level: Level, at: &str, dropped: &mut Vec<String>) -> Option<Unevaluated> {
    let fields = object.as_object_mut()?;
    for (_, field, why) in UNEVALUATED.iter().filter(|(of, _, _)| *of == level) {
        let Some(value) = fields.get(*field) else {
            continue;
        };
        let everyone = *field == "exportTo" && value.as_array().is_some_and(|to| to.iter().any(|n| n == "*"));
        let unset = matches!(value, Value::Null | Value::Bool(false))
            || value.as_array().is_some_and(Vec::is_empty)
            || value.as_object().is_some_and(serde_json::Map::is_empty);
        if !(everyone || unset) {
            return Some(Unevaluated {
                field: format!("{at}.{field}"),
                why,
            });
        }
        fields.remove(*field);
        dropped.push(format!("{at}.{field}"));
    }
    for (_, field, _) in IGNORED.iter().filter(|(of, _, _)| *of == level) {
        if fields.remove(*field).is_some() {
            dropped.push(format!("{at}.{field}"));
        }
    }
    None
}

/// The items of the list `object[key]`, with their indexes (none when it is absent or not a list).
fn each_mut<'a>(object: &'a mut Value, key: &str) -> impl Iterator<Item = (usize, &'a mut Value)> {
    object
        .get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .enumerate()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::stages::LabDefinition;

    /// The stage's VirtualService as an object.
    fn stage_object(stage: &str) -> Value {
        let lab = LabDefinition::load_default().unwrap();
        let manifests = lab.stage_manifests(lab.stage(stage).unwrap()).unwrap();
        manifests
            .into_iter()
            .find(|manifest| manifest.kind() == "VirtualService")
            .unwrap()
            .object
    }

    #[test]
    fn fields_that_do_not_change_the_route_are_fine() {
        let mut live = stage_object("split-70-30");
        let strict = VirtualServiceSpec::from_object(&live).unwrap();
        live["spec"]["exportTo"] = serde_json::json!(["*"]);
        live["spec"]["http"][0]["retries"] = serde_json::json!({"attempts": 3, "perTryTimeout": "2s"});
        live["spec"]["http"][0]["corsPolicy"] = serde_json::json!({"allowOrigins": [{"exact": "https://x"}]});
        live["spec"]["http"][0]["fault"] = serde_json::json!({"abort": {"grpcStatus": "UNAVAILABLE"}});
        live["spec"]["tcp"] = serde_json::json!([{"route": [{"destination": {"host": "db"}}]}]);
        assert!(
            VirtualServiceSpec::from_object(&live).is_err(),
            "the strict reading refuses them"
        );
        let lenient = read_live_routes("image-classifier", &live).unwrap();
        assert_eq!(lenient.http[0].route, strict.http[0].route);
        assert_eq!(lenient.hosts, strict.hosts);
    }

    #[test]
    fn a_condition_that_can_change_the_route_is_named_with_its_field() {
        let mut live = stage_object("focused");
        live["spec"]["http"][0]["match"][0]["method"] = serde_json::json!({"exact": "POST"});
        let finding = read_live_routes("image-classifier", &live).unwrap_err();
        assert_eq!(finding.kind, HintKind::UnevaluatedRoute);
        assert_eq!(finding.values["field"], "spec.http[0].match[0].method");
        assert!(finding.values["why"].contains("POST"), "{finding:?}");
    }

    #[test]
    fn a_default_valued_condition_changes_nothing() {
        let mut live = stage_object("focused");
        live["spec"]["http"][0]["match"][0]["ignoreUriCase"] = Value::Bool(false);
        live["spec"]["http"][0]["match"][0]["withoutHeaders"] = serde_json::json!({});
        assert!(read_live_routes("image-classifier", &live).is_ok());
        live["spec"]["exportTo"] = serde_json::json!(["."]);
        let finding = read_live_routes("image-classifier", &live).unwrap_err();
        assert_eq!(finding.values["field"], "spec.exportTo");
    }

    #[test]
    fn an_unreadable_part_is_named_by_its_path() {
        let mut live = stage_object("split-70-30");
        live["spec"]["http"][0]["route"][1]["weight"] = Value::String("thirty".into());
        let finding = read_live_routes("image-classifier", &live).unwrap_err();
        assert_eq!(finding.kind, HintKind::UnreadableRoutes);
        assert!(
            finding.values["error"].starts_with("spec.http[0].route[1].weight: "),
            "{finding:?}"
        );
    }

    #[test]
    fn every_field_of_the_schema_is_modelled_ignored_or_unevaluated() {
        let path = crate::definition::assets::assets_dir().join(crate::definition::schema::CRD_FILE);
        let crds =
            crate::definition::manifests::parse_documents("crds", &std::fs::read_to_string(path).unwrap()).unwrap();
        let virtual_service = &crds
            .iter()
            .find(|crd| crd.object["spec"]["names"]["kind"] == "VirtualService")
            .unwrap()
            .object;
        let versions = virtual_service["spec"]["versions"].as_array().unwrap();
        let version = versions.iter().find(|version| version["served"] == true).unwrap();
        let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let route = &spec["properties"]["http"]["items"];
        let condition = &route["properties"]["match"]["items"];
        let modelled: &[(Level, &[&str])] = &[
            (Level::Spec, &["hosts", "gateways", "http"]),
            (Level::Route, &["name", "match", "route", "headers"]),
            (Level::Match, &["name", "uri", "headers"]),
        ];
        for (level, schema) in [(Level::Spec, spec), (Level::Route, route), (Level::Match, condition)] {
            for field in schema["properties"].as_object().unwrap().keys() {
                let known = modelled
                    .iter()
                    .any(|(of, names)| *of == level && names.contains(&field.as_str()))
                    || IGNORED
                        .iter()
                        .chain(UNEVALUATED)
                        .any(|(of, name, _)| *of == level && name == field);
                assert!(
                    known,
                    "{level:?} field {field} is neither modelled, ignored nor unevaluated"
                );
            }
        }
    }
}
