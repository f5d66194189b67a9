//! Istio 1.12.7's CRD schemas (`assets/istio-1.12.7-crds.yaml`) and the check of an Istio object against the
//! `openAPIV3Schema` of the version it names, with the structural-schema rules of the Kubernetes 1.24 API server
//! that matter for these kinds: unknown fields (which the server prunes silently, so a typo such as `wieght:` would
//! vanish) are refused, except under `x-kubernetes-preserve-unknown-fields`; a null field that is not `nullable` is
//! dropped before validation; `x-kubernetes-int-or-string` takes an integer or a string.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

use crate::definition::locate::{FieldPath, Segment, Target};
use crate::definition::manifests::{Manifest, parse_documents};

/// The file under `assets/` that holds the CRDs.
pub const CRD_FILE: &str = "istio-1.12.7-crds.yaml";

/// What is wrong with one field of an object, by its schema.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaProblem {
    /// The field.
    pub path: FieldPath,
    /// Its key (a field that should not be there) or its value.
    pub target: Target,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

/// The schema of each served version of each CRD, by group and kind.
#[derive(Debug, Clone, Default)]
pub struct CrdSchemas {
    /// (group, kind) → version → `openAPIV3Schema`.
    kinds: BTreeMap<(String, String), BTreeMap<String, Value>>,
}

impl CrdSchemas {
    /// Reads the CRDs from `path`.
    pub fn load(path: &Path) -> anyhow::Result<CrdSchemas> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading Istio's CRD schemas {}", path.display()))?;
        CrdSchemas::parse(&path.display().to_string(), &text)
    }

    /// Parses CRDs (multi-document YAML); only served versions are kept, as the API server only serves those.
    pub fn parse(file: &str, text: &str) -> anyhow::Result<CrdSchemas> {
        let mut kinds: BTreeMap<(String, String), BTreeMap<String, Value>> = BTreeMap::new();
        for crd in parse_documents(file, text)? {
            let spec = &crd.object["spec"];
            let (Some(group), Some(kind)) = (spec["group"].as_str(), spec["names"]["kind"].as_str()) else {
                anyhow::bail!("{file}, document {}: not a CustomResourceDefinition", crd.document);
            };
            let versions = kinds.entry((group.to_string(), kind.to_string())).or_default();
            for version in spec["versions"].as_array().into_iter().flatten() {
                if version["served"] == Value::Bool(true)
                    && let Some(name) = version["name"].as_str()
                {
                    versions.insert(name.to_string(), version["schema"]["openAPIV3Schema"].clone());
                }
            }
        }
        Ok(CrdSchemas { kinds })
    }

    /// Whether a CRD for `manifest`'s group and kind is known.
    pub fn covers(&self, manifest: &Manifest) -> bool {
        let (group, _) = split_api_version(manifest.api_version());
        self.kinds
            .contains_key(&(group.to_string(), manifest.kind().to_string()))
    }

    /// The problems of `manifest` by its CRD's schema (none when no CRD covers it).
    pub fn check(&self, manifest: &Manifest) -> Vec<SchemaProblem> {
        let (group, version) = split_api_version(manifest.api_version());
        let Some(versions) = self.kinds.get(&(group.to_string(), manifest.kind().to_string())) else {
            return Vec::new();
        };
        let Some(schema) = versions.get(version) else {
            let served: Vec<String> = versions.keys().map(|name| format!("{group}/{name}")).collect();
            return vec![SchemaProblem {
                path: FieldPath::parse("apiVersion"),
                target: Target::Value,
                message: format!("Istio 1.12.7 serves no version \"{version}\" of {}", manifest.kind()),
                help: Some(format!("write `apiVersion: {}`", served.join("` or `"))),
            }];
        };
        let mut problems = Vec::new();
        let mut object = manifest.object.clone();
        if let Some(top) = object.as_object_mut() {
            // The API server checks these itself, not by the CRD's schema.
            for field in ["apiVersion", "kind", "metadata"] {
                top.remove(field);
            }
        }
        prune(&mut object, schema, &FieldPath::default(), &mut problems);
        let mut schema = schema.clone();
        kubernetes_types(&mut schema);
        match jsonschema::draft4::new(&schema) {
            Ok(validator) => {
                for error in validator.iter_errors(&object) {
                    problems.push(problem_of(&error, &object));
                }
            }
            Err(error) => problems.push(SchemaProblem {
                path: FieldPath::default(),
                target: Target::Key,
                message: format!("the CRD schema of {} does not compile: {error}", manifest.kind()),
                help: None,
            }),
        }
        problems
    }
}

/// `networking.istio.io/v1alpha3` → (`networking.istio.io`, `v1alpha3`); `v1` → (``, `v1`).
fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

/// Removes what the API server would drop before validating, reporting each unknown field. As
/// apiextensions-apiserver's pkg/apiserver/schema/pruning/algorithm.go (Kubernetes v1.24): under
/// `x-kubernetes-preserve-unknown-fields: true` everything is kept; otherwise a key that is not in `properties` is
/// pruned unless `additionalProperties` gives a schema for it. And as pkg/apiserver/schema/defaulting/prunenulls.go,
/// a null field that is not `nullable` is dropped (a nullable one may be null), so neither reaches validation.
fn prune(value: &mut Value, schema: &Value, path: &FieldPath, problems: &mut Vec<SchemaProblem>) {
    if schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true) {
        return;
    }
    match value {
        Value::Object(map) => {
            let properties = schema["properties"].as_object();
            let additional = schema
                .get("additionalProperties")
                .filter(|additional| additional.is_object());
            map.retain(|key, field| {
                !field.is_null()
                    || properties
                        .and_then(|p| p.get(key))
                        .is_some_and(|s| s["nullable"] == Value::Bool(true))
            });
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let field_path = path.key(&key);
                match properties.and_then(|properties| properties.get(&key)).or(additional) {
                    Some(field_schema) => {
                        prune(map.get_mut(&key).expect("listed"), field_schema, &field_path, problems)
                    }
                    None => {
                        map.remove(&key);
                        problems.push(unknown_field(&key, properties, field_path));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter_mut().enumerate() {
                    prune(item, item_schema, &path.index(index), problems);
                }
            }
        }
        _ => {}
    }
}

fn unknown_field(key: &str, properties: Option<&serde_json::Map<String, Value>>, path: FieldPath) -> SchemaProblem {
    let known: Vec<&str> = properties
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let nearest = known
        .iter()
        .min_by_key(|known| strsim::levenshtein(known, key))
        .filter(|known| strsim::levenshtein(known, key) <= 3);
    let help = match nearest {
        Some(nearest) => format!("did you mean `{nearest}`? (the API server would silently drop `{key}`)"),
        None if known.is_empty() => "remove it: this object takes no fields".to_string(),
        None => format!("the known fields here are {}", known.join(", ")),
    };
    SchemaProblem {
        path,
        target: Target::Key,
        message: format!("unknown field `{key}`"),
        help: Some(help),
    }
}

/// The Kubernetes schema extensions in JSON Schema terms, as apiextensions-apiserver's
/// pkg/apiserver/validation/validation.go `ConvertJSONSchemaPropsWithPostProcess` (v1.24) does: an
/// `x-kubernetes-int-or-string` field is of type integer or string; a `nullable` one also takes null.
fn kubernetes_types(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if object.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        object.insert("type".into(), serde_json::json!(["integer", "string"]));
    }
    if object.get("nullable") == Some(&Value::Bool(true))
        && let Some(Value::String(single)) = object.get("type").cloned()
    {
        object.insert("type".into(), serde_json::json!([single, "null"]));
    }
    for (key, value) in object.iter_mut() {
        match key.as_str() {
            "properties" => value
                .as_object_mut()
                .into_iter()
                .flat_map(|map| map.values_mut())
                .for_each(kubernetes_types),
            "items" | "additionalProperties" | "not" => kubernetes_types(value),
            "anyOf" | "oneOf" | "allOf" => value.as_array_mut().into_iter().flatten().for_each(kubernetes_types),
            _ => {}
        }
    }
}

/// A jsonschema error as a problem at its field, in the API server's words where it has them.
fn problem_of(error: &jsonschema::ValidationError<'_>, object: &Value) -> SchemaProblem {
    let path = path_of(error.instance_path().as_str(), object);
    let instance = error.instance();
    let (message, help) = match error.kind() {
        jsonschema::error::ValidationErrorKind::Type { kind } => {
            let wanted = match kind {
                jsonschema::error::TypeKind::Single(single) => single.to_string(),
                jsonschema::error::TypeKind::Multiple(set) => {
                    set.iter().map(|kind| kind.to_string()).collect::<Vec<_>>().join(" or ")
                }
            };
            (
                format!(
                    "wrong type: expected {wanted}, found {} {instance}",
                    json_kind(instance)
                ),
                Some(format!("write {} here", article(&wanted))),
            )
        }
        jsonschema::error::ValidationErrorKind::Enum { options } => {
            let options: Vec<&str> = options
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let given = instance.as_str().unwrap_or_default();
            let nearest = options
                .iter()
                .min_by_key(|option| strsim::levenshtein(option, given))
                .filter(|option| strsim::levenshtein(option, given) <= 3)
                .map(|option| format!("did you mean `{option}`? "))
                .unwrap_or_default();
            (
                format!("unsupported value {instance}"),
                Some(format!("{nearest}the supported values are {}", options.join(", "))),
            )
        }
        _ => (format!("{path}: {error}"), None),
    };
    SchemaProblem {
        path,
        target: Target::Value,
        message,
        help,
    }
}

fn article(kind: &str) -> String {
    let first = kind.chars().next().unwrap_or('x');
    format!("{} {kind}", if "aeiou".contains(first) { "an" } else { "a" })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A JSON pointer (`/spec/servers/0/port/number`) as a field path, walking `object` to tell an index from a key
/// that looks like one.
fn path_of(pointer: &str, object: &Value) -> FieldPath {
    let mut segments = Vec::new();
    let mut node = Some(object);
    for raw in pointer.split('/').skip(1) {
        let key = raw.replace("~1", "/").replace("~0", "~");
        match (node, key.parse::<usize>()) {
            (Some(Value::Array(items)), Ok(index)) => {
                node = items.get(index);
                segments.push(Segment::Index(index));
            }
            _ => {
                node = node.and_then(|node| node.get(&key));
                segments.push(Segment::Key(key));
            }
        }
    }
    FieldPath(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CRD with one served and one unserved version, an enum, an int-or-string, a nullable field, a map and a field
    /// that keeps unknown fields.
    const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: things.example.io
spec:
  group: example.io
  names:
    kind: Thing
  versions:
  - name: v1
    served: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              mode:
                type: string
                enum: [ROUND_ROBIN, RANDOM]
              port:
                x-kubernetes-int-or-string: true
              timeout:
                type: string
                nullable: true
              count:
                type: integer
              labels:
                type: object
                additionalProperties:
                  type: string
              free:
                type: object
                x-kubernetes-preserve-unknown-fields: true
              items:
                type: array
                items:
                  type: object
                  properties:
                    weight:
                      type: integer
  - name: v0
    served: false
    schema:
      openAPIV3Schema:
        type: object
"#;

    fn problems(api_version: &str, spec: Value) -> Vec<SchemaProblem> {
        let schemas = CrdSchemas::parse("crd.yaml", CRD).unwrap();
        let manifest = Manifest {
            file: "thing.yaml".into(),
            document: 1,
            object: serde_json::json!({"apiVersion": api_version, "kind": "Thing", "metadata": {"name": "a"}, "spec": spec}),
        };
        assert!(schemas.covers(&manifest));
        schemas.check(&manifest)
    }

    fn shown(problems: &[SchemaProblem]) -> Vec<String> {
        problems
            .iter()
            .map(|problem| format!("{}: {}", problem.path, problem.message))
            .collect()
    }

    #[test]
    fn a_valid_object_has_no_problems() {
        let spec = serde_json::json!({
            "mode": "RANDOM", "port": "http", "timeout": null, "count": 3, "labels": {"a": "b"},
            "free": {"anything": {"goes": 1}}, "items": [{"weight": 1}]
        });
        assert_eq!(shown(&problems("example.io/v1", spec)), Vec::<String>::new());
        // int-or-string takes an integer too; a null that is not nullable is dropped, as the API server drops it.
        let spec = serde_json::json!({"port": 8080, "count": null});
        assert_eq!(shown(&problems("example.io/v1", spec)), Vec::<String>::new());
    }

    #[test]
    fn unknown_fields_wrong_types_and_bad_enums_are_refused_at_their_field() {
        let spec =
            serde_json::json!({"items": [{"wieght": 1}], "mode": "ROUND_ROBINN", "count": "three", "port": true});
        let found = problems("example.io/v1", spec);
        assert_eq!(
            shown(&found),
            [
                "spec.items[0].wieght: unknown field `wieght`",
                "spec.count: wrong type: expected integer, found string \"three\"",
                "spec.mode: unsupported value \"ROUND_ROBINN\"",
                "spec.port: wrong type: expected integer or string, found boolean true",
            ]
        );
        assert_eq!(found[0].target, Target::Key);
        assert_eq!(
            found[0].help.as_deref(),
            Some("did you mean `weight`? (the API server would silently drop `wieght`)")
        );
        assert_eq!(
            found[2].help.as_deref(),
            Some("did you mean `ROUND_ROBIN`? the supported values are ROUND_ROBIN, RANDOM")
        );
    }

    #[test]
    fn only_served_versions_validate() {
        let found = problems("example.io/v0", serde_json::json!({}));
        assert_eq!(
            shown(&found),
            ["apiVersion: Istio 1.12.7 serves no version \"v0\" of Thing"]
        );
        assert_eq!(found[0].help.as_deref(), Some("write `apiVersion: example.io/v1`"));
    }

    #[test]
    fn the_shipped_crds_cover_the_lab_s_istio_kinds() {
        let schemas = CrdSchemas::load(&crate::definition::assets::assets_dir().join(CRD_FILE)).unwrap();
        for kind in ["Gateway", "VirtualService", "DestinationRule"] {
            for version in ["v1alpha3", "v1beta1"] {
                assert!(schemas.kinds[&("networking.istio.io".to_string(), kind.to_string())].contains_key(version));
            }
        }
    }
}
