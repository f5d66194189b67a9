//! Where a field of a manifest is written: from a document number and a field path (`spec.http[0].route[1].weight`)
//! to the byte range of its key or value in the file, so that an error can point at it.
//!
//! The manifests are parsed for their values by `serde_yaml_ng`, whose values carry no positions; the positions come
//! from `saphyr`'s marked tree of the same text.

use std::fmt;
use std::ops::Range;

use saphyr::{LoadableYamlNode, MarkedYaml, YamlData};

/// One step of a field path: a key of a mapping or an index into a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index (0-based).
    Index(usize),
}

/// A path to a field from the top of an object, as kubectl and the API server write it: `spec.http[0].route`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    /// Parses `spec.http[0].route[1].weight` (keys separated by dots, indexes in brackets).
    pub fn parse(text: &str) -> FieldPath {
        let mut segments = Vec::new();
        for part in text.split('.').filter(|part| !part.is_empty()) {
            let mut pieces = part.split('[');
            if let Some(key) = pieces.next().filter(|key| !key.is_empty()) {
                segments.push(Segment::Key(key.to_string()));
            }
            for index in pieces {
                match index.trim_end_matches(']').parse() {
                    Ok(index) => segments.push(Segment::Index(index)),
                    Err(_) => segments.push(Segment::Key(format!("[{index}"))),
                }
            }
        }
        FieldPath(segments)
    }

    /// This path with `key` appended.
    pub fn key(&self, key: &str) -> FieldPath {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_string()));
        FieldPath(segments)
    }

    /// This path with `index` appended.
    pub fn index(&self, index: usize) -> FieldPath {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        FieldPath(segments)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if position == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// What of a field to point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The key (`wieght` in `wieght: 30`): for a field that should not be there.
    Key,
    /// The value (`30`): for a value that is wrong.
    Value,
}

/// The byte range of `path`'s key or value in document `document` (1-based, counting empty documents as
/// `serde_yaml_ng` does) of `text`. When the path does not exist in full (a missing field), the deepest part that does
/// is given, with `false`; `None` when the text does not parse or has no such document.
pub fn locate(text: &str, document: usize, path: &FieldPath, target: Target) -> Option<(Range<usize>, bool)> {
    let documents = MarkedYaml::load_from_str(text).ok()?;
    let root = documents.get(document.checked_sub(1)?)?;
    let mut node = root;
    let mut key_node: Option<&MarkedYaml> = None;
    for segment in &path.0 {
        let next = match (segment, &node.data) {
            (Segment::Key(key), YamlData::Mapping(mapping)) => mapping
                .iter()
                .find(|(candidate, _)| candidate.data.as_str() == Some(key.as_str()))
                .map(|(candidate, value)| (Some(candidate), value)),
            (Segment::Index(index), YamlData::Sequence(items)) => items.get(*index).map(|item| (None, item)),
            _ => None,
        };
        match next {
            Some((key, value)) => {
                key_node = key;
                node = value;
            }
            None => return Some((span(text, key_node.unwrap_or(node), node, Target::Key)?, false)),
        }
    }
    Some((span(text, key_node.unwrap_or(node), node, target)?, true))
}

/// The byte range of a key or of its value; an empty value (`weight:`) or a block collection is pointed at by its
/// key, and a key-less item (a sequence entry) by the start of its first line.
fn span(text: &str, key: &MarkedYaml, value: &MarkedYaml, target: Target) -> Option<Range<usize>> {
    let chosen = match (target, &value.data) {
        (Target::Value, YamlData::Mapping(_) | YamlData::Sequence(_)) => key,
        (Target::Value, _) if value.span.start.index() == value.span.end.index() => key,
        (Target::Value, _) => value,
        (Target::Key, _) => key,
    };
    let start = byte_offset(text, chosen.span.start.index())?;
    let mut end = byte_offset(text, chosen.span.end.index())?.max(start);
    // A collection's span runs to its last item; point at the first line of it only.
    if let Some(newline) = text[start..end].find('\n') {
        end = start + newline;
    }
    let trimmed = text[start..end].trim_end().len();
    Some(start..start + trimmed.max(1).min(text.len() - start))
}

/// The byte offset of the `index`-th character (saphyr counts characters).
fn byte_offset(text: &str, index: usize) -> Option<usize> {
    if index == text.chars().count() {
        return Some(text.len());
    }
    text.char_indices().nth(index).map(|(offset, _)| offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# comment\napiVersion: v1\nkind: Thing\nspec:\n  http:\n  - route:\n    - weight: 70\n    - destination:\n        host: \"é-host\"\n      wieght: 30\n---\nkind: Second\n";

    fn at(path: &str, target: Target) -> (String, bool) {
        let (range, found) = locate(TEXT, 1, &FieldPath::parse(path), target).unwrap();
        (TEXT[range].to_string(), found)
    }

    fn line_column(offset: usize) -> (usize, usize) {
        let before = &TEXT[..offset];
        (
            before.matches('\n').count() + 1,
            before.rsplit('\n').next().unwrap().chars().count() + 1,
        )
    }

    #[test]
    fn a_field_path_parses_and_prints_as_kubectl_writes_it() {
        let path = FieldPath::parse("spec.http[0].route[1].weight");
        assert_eq!(path.0.len(), 6);
        assert_eq!(path.0[2], Segment::Index(0));
        assert_eq!(path.to_string(), "spec.http[0].route[1].weight");
        assert_eq!(FieldPath::default().key("spec").index(2).to_string(), "spec[2]");
    }

    #[test]
    fn values_and_keys_are_found_with_their_line_and_column() {
        assert_eq!(at("spec.http[0].route[0].weight", Target::Value), ("70".into(), true));
        let (range, _) = locate(
            TEXT,
            1,
            &FieldPath::parse("spec.http[0].route[0].weight"),
            Target::Value,
        )
        .unwrap();
        assert_eq!(line_column(range.start), (7, 15));
        assert_eq!(at("spec.http[0].route[1].wieght", Target::Key), ("wieght".into(), true));
        assert_eq!(at("kind", Target::Value), ("Thing".into(), true));
        // A quoted scalar is pointed at with its quotes; the non-ASCII character is counted once.
        let (range, _) = locate(
            TEXT,
            1,
            &FieldPath::parse("spec.http[0].route[1].destination.host"),
            Target::Value,
        )
        .unwrap();
        assert_eq!(&TEXT[range.clone()], "\"é-host\"");
        assert_eq!(line_column(range.start), (9, 15));
    }

    #[test]
    fn a_collection_is_pointed_at_by_its_key_and_a_missing_field_by_its_deepest_parent() {
        assert_eq!(at("spec.http", Target::Value), ("http".into(), true));
        assert!(!at("spec.http[0].route[0].subset", Target::Value).1);
        // A sequence item has no key: its first line is pointed at.
        assert_eq!(at("spec.http[0].route[0].subset", Target::Value).0, "weight: 70");
        assert_eq!(at("spec.tcp", Target::Value), ("spec".into(), false));
    }

    #[test]
    fn documents_are_counted_as_serde_yaml_ng_counts_them() {
        let text = "---\nkind: A\n---\n---\n# only a comment\n---\nkind: D\n";
        let numbers: Vec<usize> = crate::definition::manifests::document_values(text)
            .unwrap()
            .into_iter()
            .enumerate()
            .filter(|(_, value)| !value.is_null())
            .map(|(index, _)| index + 1)
            .collect();
        assert_eq!(numbers, [1, 4]);
        for document in numbers {
            let (range, found) = locate(text, document, &FieldPath::parse("kind"), Target::Value).unwrap();
            assert!(found);
            assert_eq!(&text[range], if document == 1 { "A" } else { "D" });
        }
        assert!(locate(text, 9, &FieldPath::parse("kind"), Target::Value).is_none());
        assert!(locate("a: [", 1, &FieldPath::parse("a"), Target::Value).is_none());
    }
}
