//! Loading the lab's manifests: multi-document YAML files in `assets/manifests/`, parsed into JSON values that keep
//! the file and document they came from, and rendering them back as multi-document YAML.

use std::path::Path;

use anyhow::Context;
use serde_json::Value;

/// One object from a manifest file.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The file name inside the manifests directory, e.g. `resnet50.yaml`.
    pub file: String,
    /// The 1-based index of the document within the file.
    pub document: usize,
    /// The object as JSON (apiVersion, kind, metadata, …).
    pub object: Value,
}

impl Manifest {
    /// `apiVersion`.
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }

    /// `kind`.
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// `metadata.namespace`, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"].as_str()
    }

    /// `Kind/name` (with `namespace/` in front when namespaced), for messages.
    pub fn describe(&self) -> String {
        match self.namespace() {
            Some(namespace) => format!("{}/{} in namespace \"{namespace}\"", self.kind(), self.name()),
            None => format!("{}/{}", self.kind(), self.name()),
        }
    }

    /// The pod selector of a workload's `spec.selector.matchLabels`, as `k=v,k2=v2`; `None` when it has none.
    pub fn pod_selector(&self) -> Option<String> {
        let labels = self.object["spec"]["selector"]["matchLabels"].as_object()?;
        let selector = labels
            .iter()
            .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(",");
        Some(selector)
    }
}

/// Loads `files` (names inside `dir`) in order, every document of each.
pub fn load_files(dir: &Path, files: &[String]) -> anyhow::Result<Vec<Manifest>> {
    let mut manifests = Vec::new();
    for file in files {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading manifest {}", path.display()))?;
        manifests.extend(parse_documents(file, &text)?);
    }
    Ok(manifests)
}

/// The value of each document of multi-document YAML, an empty one as null (a document's 1-based number is its
/// index + 1).
pub fn document_values(text: &str) -> Result<Vec<Value>, serde_yaml_ng::Error> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(serde::Deserialize::deserialize)
        .collect()
}

/// Parses multi-document YAML; empty documents are skipped, and every object needs apiVersion, kind and a name.
pub fn parse_documents(file: &str, text: &str) -> anyhow::Result<Vec<Manifest>> {
    let mut manifests = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let number = index + 1;
        let value: Value =
            serde::Deserialize::deserialize(document).with_context(|| format!("parsing {file}, document {number}"))?;
        if value.is_null() {
            continue;
        }
        let manifest = Manifest {
            file: file.to_string(),
            document: number,
            object: value,
        };
        let complete = !manifest.api_version().is_empty() && !manifest.kind().is_empty() && !manifest.name().is_empty();
        if !complete {
            anyhow::bail!("{file}, document {number}: an object needs apiVersion, kind and metadata.name");
        }
        manifests.push(manifest);
    }
    Ok(manifests)
}

/// Renders objects as multi-document YAML (`---` between documents), the form `kubectl apply -f` takes.
pub fn render(manifests: &[Manifest]) -> String {
    manifests
        .iter()
        .map(|manifest| {
            let yaml = serde_yaml_ng::to_string(&manifest.object).expect("JSON values render as YAML");
            format!("# {} (document {})\n{yaml}", manifest.file, manifest.document)
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_document_and_keeps_where_it_came_from() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: b\n  namespace: x\n";
        let manifests = parse_documents("f.yaml", text).unwrap();
        assert_eq!(manifests.len(), 2);
        assert_eq!((manifests[1].document, manifests[1].kind()), (3, "Service"));
        assert_eq!(manifests[1].describe(), "Service/b in namespace \"x\"");
    }

    #[test]
    fn an_object_without_a_name_is_an_error_naming_file_and_document() {
        let error = parse_documents("g.yaml", "apiVersion: v1\nkind: ConfigMap\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "g.yaml, document 1: an object needs apiVersion, kind and metadata.name"
        );
    }

    #[test]
    fn render_round_trips() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n";
        let manifests = parse_documents("f.yaml", text).unwrap();
        let rendered = render(&manifests);
        let again = parse_documents("f.yaml", &rendered).unwrap();
        assert_eq!(again[0].object, manifests[0].object);
    }
}
