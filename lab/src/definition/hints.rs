//! The hints `lab verify` prints under an item that does not hold, as data an instructor can edit
//! (`assets/hints.toml`): one template per kind of finding, with `{placeholders}` filled from what was found.
//!
//! Loading checks the file against the findings the code makes: every [`HintKind`] has a template, no template is
//! for a kind the code does not know, and a template uses only the placeholders its kind fills — so a typo shows
//! when the file is loaded, with its line and column, not as a literal `{nmae}` in front of a learner.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;

use crate::definition::assets::assets_dir;
use crate::definition::diagnostic::SourceFile;
use crate::definition::stages::DefinitionError;

/// The hints file inside the assets directory.
pub const HINTS_FILE: &str = "hints.toml";

/// Every kind of finding `lab verify` makes, each with the placeholders its hint may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HintKind {
    /// An object of the stage is not in the cluster.
    MissingObject,
    /// The cluster does not serve the object's kind.
    UnknownKind,
    /// The namespace lacks the injection label.
    NamespaceLabel,
    /// A Deployment's pod template lacks labels.
    PodLabels,
    /// A container runs another image.
    Image,
    /// A container is missing.
    ContainerMissing,
    /// A ConfigMap value differs.
    ConfigValue,
    /// A Service selects other pods.
    ServiceSelector,
    /// A Service lacks a port.
    ServicePort,
    /// A Gateway selects other pods.
    GatewaySelector,
    /// A Gateway lacks a server.
    GatewayServer,
    /// A DestinationRule is for another host.
    DestinationHost,
    /// A subset has no DestinationRule entry.
    SubsetMissing,
    /// A subset selects other pods.
    SubsetLabels,
    /// A VirtualService is not bound to the gateway.
    VirtualServiceGateway,
    /// A VirtualService does not cover the hosts.
    VirtualServiceHosts,
    /// A Deployment has no pods.
    PodsMissing,
    /// Pods are not ready.
    PodsNotReady,
    /// No sidecar: the namespace is not labelled.
    SidecarUnlabelled,
    /// No sidecar: the pods predate the label.
    SidecarStartedBefore,
    /// No route matches.
    NoRoute,
    /// A weight differs.
    Weight,
    /// A destination is missing.
    DestinationMissing,
    /// A destination gets traffic it should not.
    DestinationExtra,
    /// A header match names another header.
    HeaderName,
    /// A header match wants another value.
    HeaderValue,
    /// The routes cannot be read.
    UnreadableRoutes,
    /// A route or match uses a field canary-lab does not evaluate, so where a prediction goes is unknown.
    UnevaluatedRoute,
    /// The objects hold but the traffic does not.
    Traffic,
}

impl HintKind {
    /// Every kind, in the file's order.
    pub const ALL: [HintKind; 29] = [
        HintKind::MissingObject,
        HintKind::UnknownKind,
        HintKind::NamespaceLabel,
        HintKind::PodLabels,
        HintKind::Image,
        HintKind::ContainerMissing,
        HintKind::ConfigValue,
        HintKind::ServiceSelector,
        HintKind::ServicePort,
        HintKind::GatewaySelector,
        HintKind::GatewayServer,
        HintKind::DestinationHost,
        HintKind::SubsetMissing,
        HintKind::SubsetLabels,
        HintKind::VirtualServiceGateway,
        HintKind::VirtualServiceHosts,
        HintKind::PodsMissing,
        HintKind::PodsNotReady,
        HintKind::SidecarUnlabelled,
        HintKind::SidecarStartedBefore,
        HintKind::NoRoute,
        HintKind::Weight,
        HintKind::DestinationMissing,
        HintKind::DestinationExtra,
        HintKind::HeaderName,
        HintKind::HeaderValue,
        HintKind::UnreadableRoutes,
        HintKind::UnevaluatedRoute,
        HintKind::Traffic,
    ];

    /// Its key in `hints.toml`.
    pub fn key(self) -> &'static str {
        match self {
            HintKind::MissingObject => "missing_object",
            HintKind::UnknownKind => "unknown_kind",
            HintKind::NamespaceLabel => "namespace_label",
            HintKind::PodLabels => "pod_labels",
            HintKind::Image => "image",
            HintKind::ContainerMissing => "container_missing",
            HintKind::ConfigValue => "config_value",
            HintKind::ServiceSelector => "service_selector",
            HintKind::ServicePort => "service_port",
            HintKind::GatewaySelector => "gateway_selector",
            HintKind::GatewayServer => "gateway_server",
            HintKind::DestinationHost => "destination_host",
            HintKind::SubsetMissing => "subset_missing",
            HintKind::SubsetLabels => "subset_labels",
            HintKind::VirtualServiceGateway => "virtualservice_gateway",
            HintKind::VirtualServiceHosts => "virtualservice_hosts",
            HintKind::PodsMissing => "pods_missing",
            HintKind::PodsNotReady => "pods_not_ready",
            HintKind::SidecarUnlabelled => "sidecar_unlabelled",
            HintKind::SidecarStartedBefore => "sidecar_started_before",
            HintKind::NoRoute => "no_route",
            HintKind::Weight => "weight",
            HintKind::DestinationMissing => "destination_missing",
            HintKind::DestinationExtra => "destination_extra",
            HintKind::HeaderName => "header_name",
            HintKind::HeaderValue => "header_value",
            HintKind::UnreadableRoutes => "unreadable_routes",
            HintKind::UnevaluatedRoute => "unevaluated_route",
            HintKind::Traffic => "traffic",
        }
    }

    /// The placeholders its finding fills (and so its hint may use).
    pub fn placeholders(self) -> &'static [&'static str] {
        match self {
            HintKind::MissingObject => &["kind", "name", "namespace", "file", "stage"],
            HintKind::UnknownKind => &["kind", "api_version", "file"],
            HintKind::NamespaceLabel => &["namespace", "label"],
            HintKind::PodLabels | HintKind::ServiceSelector | HintKind::GatewaySelector => &["name", "got", "want"],
            HintKind::DestinationHost | HintKind::VirtualServiceGateway | HintKind::VirtualServiceHosts => {
                &["name", "got", "want"]
            }
            HintKind::Image => &["name", "container", "got", "want", "field"],
            HintKind::ContainerMissing => &["name", "container"],
            HintKind::ConfigValue => &["name", "key", "got", "want"],
            HintKind::ServicePort => &["name", "port"],
            HintKind::GatewayServer => &["name", "port", "hosts"],
            HintKind::SubsetMissing => &["name", "subset", "labels"],
            HintKind::SubsetLabels => &["name", "subset", "got", "want", "field"],
            HintKind::PodsMissing => &["deployment", "namespace"],
            HintKind::PodsNotReady => &["deployment", "namespace", "count", "selector"],
            HintKind::SidecarUnlabelled | HintKind::SidecarStartedBefore => &["deployment", "namespace", "label"],
            HintKind::NoRoute => &["name", "headers"],
            HintKind::Weight => &["name", "subset", "got", "want", "field"],
            HintKind::DestinationMissing => &["name", "subset", "want", "headers", "field"],
            HintKind::DestinationExtra => &["name", "subset", "got", "headers", "field"],
            HintKind::HeaderName => &["got", "want", "field"],
            HintKind::HeaderValue => &["header", "got", "want", "field"],
            HintKind::UnreadableRoutes => &["name", "error"],
            HintKind::UnevaluatedRoute => &["name", "field", "why"],
            HintKind::Traffic => &["stage", "found"],
        }
    }
}

/// A finding's hint kind and the values of its placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The kind of finding.
    pub kind: HintKind,
    /// Placeholder → value.
    pub values: BTreeMap<&'static str, String>,
}

impl Finding {
    /// A finding of `kind` with `values`.
    pub fn new(kind: HintKind, values: &[(&'static str, String)]) -> Finding {
        Finding {
            kind,
            values: values.iter().cloned().collect(),
        }
    }
}

/// The loaded hints: one template per [`HintKind`].
#[derive(Debug, Clone)]
pub struct Hints {
    templates: BTreeMap<HintKind, String>,
}

impl Hints {
    /// Loads `assets/hints.toml` (or `$CANARY_LAB_ASSETS/hints.toml`).
    pub fn load_default() -> anyhow::Result<Hints> {
        Hints::load(&assets_dir().join(HINTS_FILE))
    }

    /// Loads and checks a hints file.
    pub fn load(path: &Path) -> anyhow::Result<Hints> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading \"{}\"", path.display()))?;
        Ok(Hints::parse(path, &text)?)
    }

    /// Parses and checks the text of a hints file read from `path` (named in errors, which point at their line and
    /// column as every error in a file the lab reads does: [`DefinitionError`]).
    pub fn parse(path: &Path, text: &str) -> Result<Hints, DefinitionError> {
        let source = SourceFile::new(path, text);
        let error_at = |span, message, help| DefinitionError::at(path, &source, span, message, help);
        let table: BTreeMap<String, toml::Spanned<String>> = toml::from_str(text).map_err(|error| {
            let help = "each line is `kind = \"hint text\"`; the opening comment describes the placeholders";
            error_at(
                error.span().unwrap_or(0..0),
                error.message().trim_end().to_string(),
                help.into(),
            )
        })?;
        let mut templates = BTreeMap::new();
        for (key, template) in &table {
            let Some(kind) = HintKind::ALL.into_iter().find(|kind| kind.key() == key) else {
                let known: Vec<&str> = HintKind::ALL.iter().map(|kind| kind.key()).collect();
                return Err(error_at(
                    template.span(),
                    format!("`{key}` is not a hint lab verify gives"),
                    format!("the hints are: {}", known.join(", ")),
                ));
            };
            if let Some(placeholder) = placeholders_in(template.get_ref())
                .into_iter()
                .find(|name| !kind.placeholders().contains(name))
            {
                return Err(error_at(
                    template.span(),
                    format!("hint `{key}` uses {{{placeholder}}}, which this hint does not fill"),
                    format!("it may use {}", braced(kind.placeholders())),
                ));
            }
            templates.insert(kind, template.get_ref().clone());
        }
        if let Some(missing) = HintKind::ALL.into_iter().find(|kind| !templates.contains_key(kind)) {
            // At the end of the file, where the line is to be added.
            return Err(error_at(
                text.len()..text.len(),
                format!("there is no hint `{}`", missing.key()),
                format!(
                    "add `{} = \"…\"`; it may use {}",
                    missing.key(),
                    braced(missing.placeholders())
                ),
            ));
        }
        Ok(Hints { templates })
    }

    /// The hint for `finding`, its placeholders filled.
    pub fn render(&self, finding: &Finding) -> String {
        let mut text = self.templates.get(&finding.kind).cloned().unwrap_or_default();
        for (name, value) in &finding.values {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }
}

/// `{a}, {b}` of placeholder names.
fn braced(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("{{{name}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `{name}`s of a template.
fn placeholders_in(template: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        found.push(&after[..close]);
        rest = &after[close + 1..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_hints_load_and_fill_their_placeholders() {
        let hints = Hints::load_default().unwrap();
        let finding = Finding::new(
            HintKind::Weight,
            &[
                ("name", "image-classifier".into()),
                ("subset", "resnet101".into()),
                ("got", "50".into()),
                ("want", "30".into()),
                ("field", "spec.http[0].route[1].weight".into()),
            ],
        );
        assert_eq!(
            hints.render(&finding),
            "VirtualService image-classifier sends 50% to subset resnet101; this stage wants 30% — see \
             spec.http[0].route[1].weight"
        );
    }

    #[test]
    fn every_shipped_hint_uses_every_placeholder_it_is_given_or_fewer() {
        let hints = Hints::load_default().unwrap();
        for kind in HintKind::ALL {
            let values: Vec<(&'static str, String)> = kind
                .placeholders()
                .iter()
                .map(|name| (*name, "X".to_string()))
                .collect();
            let text = hints.render(&Finding::new(kind, &values));
            assert!(!text.contains('{'), "{} leaves a placeholder: {text}", kind.key());
        }
    }

    #[test]
    fn a_misspelt_placeholder_is_refused_at_its_line_and_column() {
        let text: String = std::fs::read_to_string(assets_dir().join(HINTS_FILE))
            .unwrap()
            .lines()
            .map(|line| {
                if line.starts_with("weight =") {
                    format!("{}\n", line.replace("{subset}", "{subest}"))
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        let error = Hints::parse(Path::new("hints.toml"), &text).unwrap_err().to_string();
        let line = text.lines().position(|line| line.starts_with("weight =")).unwrap() + 1;
        assert!(
            error.starts_with(&format!("hints.toml:{line}:10: hint `weight` uses {{subest}}")),
            "{error}"
        );
        assert!(error.contains("help: it may use {name}, {subset}"), "{error}");
    }

    #[test]
    fn an_unknown_or_missing_hint_is_refused() {
        let text = std::fs::read_to_string(assets_dir().join(HINTS_FILE)).unwrap();
        let renamed = text.replace("\nweight =", "\nwieght =");
        let error = Hints::parse(Path::new("hints.toml"), &renamed).unwrap_err().to_string();
        assert!(error.contains("`wieght` is not a hint lab verify gives"), "{error}");
        let without: String = text
            .lines()
            .filter(|line| !line.starts_with("weight ="))
            .map(|line| format!("{line}\n"))
            .collect();
        let error = Hints::parse(Path::new("hints.toml"), &without).unwrap_err().to_string();
        assert!(error.contains("there is no hint `weight`"), "{error}");
    }
}
