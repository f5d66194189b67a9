//! Istio's own checks on a stage's objects, made where the stage is loaded rather than left to the API server (which
//! on Kubernetes 1.24 silently prunes an unknown field such as `wieght:`) or to traffic (which would then "pass" a
//! 60/30 split). Each rule follows what istiod 1.12.7's validating webhook or `istioctl analyze` reports; the lab
//! adds that a stage's assertions name versions it deploys.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

use serde_json::Value;

use crate::definition::diagnostic::{Diagnostic, Place, SourceFile, render_summary};
use crate::definition::locate::{FieldPath, Target, locate};
use crate::definition::manifests::Manifest;
use crate::definition::routing::VirtualServiceSpec;
use crate::definition::schema::CrdSchemas;
use crate::definition::stages::Stage;

/// The kinds a stage may hold: what the lab's manifests use.
pub const KNOWN_KINDS: &[&str] = &[
    "Namespace",
    "ServiceAccount",
    "ConfigMap",
    "Deployment",
    "Service",
    "Job",
    "Gateway",
    "VirtualService",
    "DestinationRule",
];

/// What the summary's `help:` says.
const HELP: &str = "fix the manifests named above (see `cargo xtask lab stages` for each stage's files)";

/// A stage whose objects Istio (or the lab) would refuse, with every problem found.
#[derive(Debug)]
pub struct InvalidStage {
    /// The stage's name.
    pub stage: String,
    /// Every problem: what, where (file, line and column, document and field path) and how to fix it.
    pub problems: Vec<Diagnostic>,
}

impl InvalidStage {
    /// `stage "x" is not valid (2 problems)`.
    fn summary(&self) -> String {
        let count = self.problems.len();
        let plural = if count == 1 { "problem" } else { "problems" };
        format!("stage \"{}\" is not valid ({count} {plural})", self.stage)
    }

    /// Every problem as rustc prints an error, then the summary, as cargo closes a failed build.
    pub fn render(&self, styled: bool) -> String {
        let mut blocks: Vec<String> = self.problems.iter().map(|problem| problem.render(styled)).collect();
        blocks.push(render_summary(&self.summary(), Some(HELP), styled));
        blocks.join("\n\n")
    }
}

impl std::error::Error for InvalidStage {}

/// One line per problem (`file:line:col: message (object, field)`), then each `help:` once: the form of
/// `--format json` and of logs.
impl fmt::Display for InvalidStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.summary())?;
        for problem in &self.problems {
            write!(f, "\n  {}", problem.one_line())?;
        }
        let mut helps: Vec<&str> = self
            .problems
            .iter()
            .filter_map(|problem| problem.help.as_deref())
            .collect();
        helps.push(HELP);
        let mut seen = BTreeSet::new();
        for help in helps.into_iter().filter(|help| seen.insert(*help)) {
            write!(f, "\nhelp: {help}")?;
        }
        Ok(())
    }
}

/// The texts a stage was loaded from, to point into.
#[derive(Debug, Clone, Default)]
pub struct StageSources {
    /// Each manifest file by its name in the manifests directory.
    pub manifests: BTreeMap<String, SourceFile>,
    /// `lab.toml`, and the byte range of each of the stage's `[[stage.assert]]` tables in it.
    pub definition: Option<(SourceFile, Vec<Range<usize>>)>,
}

/// Collects problems as diagnostics, pointing into the sources where it can.
struct Problems<'a> {
    sources: &'a StageSources,
    found: Vec<Diagnostic>,
}

impl Problems<'_> {
    /// A problem at `path` of `manifest` (its key or its value).
    fn at(&mut self, manifest: &Manifest, path: &FieldPath, target: Target, message: String, help: Option<String>) {
        let object = format!("{} {}", manifest.kind(), manifest.name());
        let located = self.sources.manifests.get(&manifest.file).and_then(|file| {
            let (span, _) = locate(&file.text, manifest.document, path, target)?;
            Some((file, span))
        });
        let place = match located {
            Some((file, span)) => Place::Span {
                file: file.clone(),
                span,
                label: format!("{object} (document {}), {path}", manifest.document),
            },
            None => Place::Named(format!(
                "{}, document {}: {object}, {path}",
                manifest.file, manifest.document
            )),
        };
        self.found.push(Diagnostic { message, place, help });
    }

    /// A problem at `key`'s value in the `index`-th assertion of the stage in `lab.toml`.
    fn at_assertion(&mut self, stage: &Stage, index: usize, key: &str, message: String, help: Option<String>) {
        let located = self.sources.definition.as_ref().and_then(|(file, spans)| {
            let table = spans.get(index)?;
            let span = crate::definition::stages::value_span(&file.text, table.start, key)?;
            Some((file, span))
        });
        let place = match located {
            Some((file, span)) => Place::Span {
                file: file.clone(),
                span,
                label: format!("stage \"{}\", assertion {}", stage.name, index + 1),
            },
            None => Place::Named(format!("lab.toml, stage \"{}\", assertion {}", stage.name, index + 1)),
        };
        self.found.push(Diagnostic { message, place, help });
    }
}

/// Checks `stage`'s `manifests`: known kinds; each Istio object against its CRD's schema (`schemas`); each
/// VirtualService as the lab's routing model types it; weights of 0–100 summing to 100 when a route has several
/// destinations (pilot/pkg/config/validation/validation.go `validateHTTPRouteDestinations`), every subset a route names
/// defined by a DestinationRule for its host (`istioctl analyze` IST0101), every DestinationRule subset selecting
/// labels that some Deployment of the stage gives its pods; and every version an assertion names deployed by the
/// stage. Each problem points into `sources` where it can.
pub fn validate_stage(
    stage: &Stage,
    manifests: &[Manifest],
    sources: &StageSources,
    schemas: &CrdSchemas,
) -> Result<(), InvalidStage> {
    let mut problems = Problems {
        sources,
        found: Vec::new(),
    };
    let mut refused_by_schema = BTreeSet::new();
    for manifest in manifests {
        let kind = manifest.kind();
        if !KNOWN_KINDS.contains(&kind) {
            let help = match KNOWN_KINDS
                .iter()
                .min_by_key(|known| strsim::levenshtein(known, kind))
                .filter(|known| strsim::levenshtein(known, kind) <= 3)
            {
                Some(nearest) => format!("did you mean `{nearest}`?"),
                None => format!("the lab's stages hold {}", KNOWN_KINDS.join(", ")),
            };
            let message = format!("unknown kind \"{kind}\"");
            problems.at(manifest, &FieldPath::parse("kind"), Target::Value, message, Some(help));
            continue;
        }
        for problem in schemas.check(manifest) {
            refused_by_schema.insert((manifest.file.clone(), manifest.document));
            problems.at(manifest, &problem.path, problem.target, problem.message, problem.help);
        }
    }
    let pod_labels = deployment_pod_labels(manifests);
    let subsets = destination_rule_subsets(manifests, &pod_labels, &mut problems);
    for manifest in manifests.iter().filter(|manifest| manifest.kind() == "VirtualService") {
        if refused_by_schema.contains(&(manifest.file.clone(), manifest.document)) {
            continue;
        }
        match VirtualServiceSpec::from_object(&manifest.object) {
            Err(error) => problems.at(
                manifest,
                &FieldPath::parse("spec"),
                Target::Key,
                error.to_string(),
                None,
            ),
            Ok(spec) => route_problems(manifest, &spec, &subsets, &mut problems),
        }
    }
    let deployed: Vec<&str> = pod_labels
        .iter()
        .filter_map(|labels| labels.get("version").map(String::as_str))
        .collect();
    for (index, assertion) in stage.assertions.iter().enumerate() {
        let version = assertion.version();
        if !deployed.contains(&version) {
            let message = format!(
                "an assertion names version \"{version}\", but the stage deploys {}",
                if deployed.is_empty() {
                    "no version (no Deployment with a `version` pod label)".to_string()
                } else {
                    deployed.join(", ")
                }
            );
            let help = format!(
                "name a version the stage deploys, or add its manifests to stage \"{}\"",
                stage.name
            );
            problems.at_assertion(stage, index, "version", message, Some(help));
        }
    }
    if problems.found.is_empty() {
        Ok(())
    } else {
        Err(InvalidStage {
            stage: stage.name.clone(),
            problems: problems.found,
        })
    }
}

/// A manifest that is not YAML, as an [`InvalidStage`] pointing at where the parser stopped (serde_yaml_ng gives the
/// byte index); any other error as it is.
pub(crate) fn yaml_syntax_error(stage: &Stage, file: &SourceFile, error: anyhow::Error) -> anyhow::Error {
    let Some(location) = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<serde_yaml_ng::Error>()?.location())
    else {
        return error;
    };
    let start = location.index().min(file.text.len());
    let end = file.text[start..]
        .chars()
        .next()
        .map_or(start, |first| start + first.len_utf8());
    let message = error.root_cause().to_string();
    let message = message.split(" at line ").next().unwrap_or(&message).to_string();
    let context = error.chain().next().map(ToString::to_string).unwrap_or_default();
    anyhow::Error::new(InvalidStage {
        stage: stage.name.clone(),
        problems: vec![Diagnostic {
            message: format!("invalid YAML: {message}"),
            place: Place::Span {
                file: file.clone(),
                span: start..end,
                label: context,
            },
            help: Some("fix the YAML at the caret (indent with spaces, not tabs; one `key: value` per line)".into()),
        }],
    })
}

/// The pod-template labels of each Deployment of the stage.
fn deployment_pod_labels(manifests: &[Manifest]) -> Vec<BTreeMap<String, String>> {
    manifests
        .iter()
        .filter(|manifest| manifest.kind() == "Deployment")
        .map(|manifest| labels(&manifest.object["spec"]["template"]["metadata"]["labels"]))
        .collect()
}

fn labels(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|map| {
            map.iter()
                .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The service a host names: its first DNS label (`image-classifier.tf-serving.svc.cluster.local` → `image-classifier`;
/// the lab's objects share one namespace).
fn service_of(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

/// Subset names by service, from the stage's DestinationRules; a subset whose labels no Deployment's pods carry is
/// a problem (it would route to no endpoint: Envoy's `503 no healthy upstream`).
fn destination_rule_subsets(
    manifests: &[Manifest],
    pod_labels: &[BTreeMap<String, String>],
    problems: &mut Problems<'_>,
) -> BTreeMap<String, Vec<String>> {
    let mut subsets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for manifest in manifests.iter().filter(|manifest| manifest.kind() == "DestinationRule") {
        let spec = &manifest.object["spec"];
        let Some(host) = spec["host"].as_str() else {
            let help = "name the service, e.g. `host: image-classifier`".to_string();
            problems.at(
                manifest,
                &FieldPath::parse("spec.host"),
                Target::Key,
                "spec.host is missing".into(),
                Some(help),
            );
            continue;
        };
        for (index, subset) in spec["subsets"].as_array().into_iter().flatten().enumerate() {
            let name = subset["name"].as_str().unwrap_or_default().to_string();
            let selector = labels(&subset["labels"]);
            let selected = pod_labels
                .iter()
                .any(|pod| selector.iter().all(|(key, value)| pod.get(key) == Some(value)));
            if !selected {
                let wanted: Vec<String> = selector.iter().map(|(key, value)| format!("{key}={value}")).collect();
                let message = format!(
                    "subset \"{name}\" selects {}, but no Deployment of the stage gives its pods those labels",
                    wanted.join(",")
                );
                let help = "select the `version` label of a Deployment of the stage (spec.template.metadata.labels)";
                let path = FieldPath::parse("spec.subsets").index(index).key("labels");
                problems.at(manifest, &path, Target::Value, message, Some(help.into()));
            }
            subsets.entry(service_of(host).to_string()).or_default().push(name);
        }
    }
    subsets
}

/// Weights and subsets of each route of a VirtualService.
fn route_problems(
    manifest: &Manifest,
    spec: &VirtualServiceSpec,
    subsets: &BTreeMap<String, Vec<String>>,
    problems: &mut Problems<'_>,
) {
    for (route_index, http) in spec.http.iter().enumerate() {
        let route = FieldPath::parse("spec.http").index(route_index).key("route");
        let weights: Vec<u32> = http
            .route
            .iter()
            .map(|destination| destination.weight.unwrap_or(0))
            .collect();
        for (index, weight) in weights.iter().enumerate() {
            if *weight > 100 {
                let message = format!("weight {weight} is more than 100");
                let help = "a weight is a percentage: 0 to 100".to_string();
                problems.at(
                    manifest,
                    &route.index(index).key("weight"),
                    Target::Value,
                    message,
                    Some(help),
                );
            }
        }
        let total: u32 = weights.iter().sum();
        if weights.len() > 1 && total != 100 {
            let message = format!(
                "the weights {} sum to {total}; Istio needs 100 (\"total destination weight {total} != 100\")",
                weights.iter().map(u32::to_string).collect::<Vec<_>>().join(" + ")
            );
            let help = format!("make the weights of {route} add up to 100");
            problems.at(
                manifest,
                &route.index(0).key("weight"),
                Target::Value,
                message,
                Some(help),
            );
        }
        for (index, destination) in http.route.iter().enumerate() {
            let Some(subset) = &destination.destination.subset else {
                continue;
            };
            let service = service_of(&destination.destination.host);
            let defined = subsets.get(service).is_some_and(|names| names.contains(subset));
            if !defined {
                let message = format!(
                    "subset \"{subset}\" is not defined: no DestinationRule of the stage for host \"{}\" defines it",
                    destination.destination.host
                );
                let known = subsets.get(service).map(|names| names.join(", ")).unwrap_or_default();
                let help = if known.is_empty() {
                    "add a DestinationRule with this subset to the stage's manifests".to_string()
                } else {
                    format!("the subsets defined for this host are {known}")
                };
                let path = route.index(index).key("destination").key("subset");
                problems.at(manifest, &path, Target::Value, message, Some(help));
            }
        }
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
