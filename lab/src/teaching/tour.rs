//! What `lab tour` shows for a stage before applying it: the change from the previous stage as a diff of the
//! objects (added, removed, and a line diff of each changed object's YAML — not of files), the commands a learner
//! would type, and the explanation rendered for a terminal.

use similar::{ChangeTag, TextDiff};

use crate::definition::manifests::Manifest;
use crate::teaching::learner_commands::same_object;

/// How one object differs between two stages.
#[derive(Debug, Clone, PartialEq)]
pub enum ObjectChange {
    /// Only the new stage has it: its YAML.
    Added(String),
    /// Only the previous stage had it.
    Removed,
    /// Both have it, differently: the changed lines with their context, each `+`, `-` or ` ` in front.
    Changed(Vec<DiffLine>),
}

/// One line of a changed object's diff.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffLine {
    /// `+` (only in the new stage), `-` (only in the previous one) or ` ` (context).
    pub sign: char,
    /// The YAML line, without its newline.
    pub text: String,
}

/// One object's change: `Kind/name` and what changed.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectDiff {
    /// `VirtualService/image-classifier`.
    pub object: String,
    /// What changed.
    pub change: ObjectChange,
}

/// Lines of context kept around each change in a changed object.
const CONTEXT: usize = 3;

/// The objects that differ from `previous` (the stage before, or none for the first) to `current`, in `current`'s
/// order, then the removed ones. Objects that are the same are left out.
pub fn object_diff(previous: &[Manifest], current: &[Manifest]) -> Vec<ObjectDiff> {
    let mut diffs = Vec::new();
    for object in current {
        let before = previous.iter().find(|old| same_object(old, object));
        let after_yaml = yaml(object);
        match before {
            None => diffs.push(ObjectDiff {
                object: describe(object),
                change: ObjectChange::Added(after_yaml),
            }),
            Some(old) if old.object != object.object => diffs.push(ObjectDiff {
                object: describe(object),
                change: ObjectChange::Changed(changed_lines(&yaml(old), &after_yaml)),
            }),
            Some(_) => {}
        }
    }
    for old in previous {
        if !current.iter().any(|object| same_object(old, object)) {
            diffs.push(ObjectDiff {
                object: describe(old),
                change: ObjectChange::Removed,
            });
        }
    }
    diffs
}

/// The diff as text: `+ Kind/name (new)` with its YAML, `- Kind/name (removed)`, `~ Kind/name` with its changed
/// lines; red and green when `colour`.
pub fn render_diff(diffs: &[ObjectDiff], colour: bool) -> String {
    let paint = |text: &str, code: &str| crate::output::paint(text, code, colour);
    let mut out = String::new();
    if diffs.is_empty() {
        out.push_str("  (no object changes)\n");
    }
    for diff in diffs {
        match &diff.change {
            ObjectChange::Added(yaml) => {
                out.push_str(&paint(&format!("+ {} (new)", diff.object), "32"));
                out.push('\n');
                for line in yaml.lines() {
                    out.push_str(&paint(&format!("+   {line}"), "32"));
                    out.push('\n');
                }
            }
            ObjectChange::Removed => {
                out.push_str(&paint(&format!("- {} (removed)", diff.object), "31"));
                out.push('\n');
            }
            ObjectChange::Changed(lines) => {
                out.push_str(&format!("~ {}\n", diff.object));
                for line in lines {
                    let text = format!("{}   {}", line.sign, line.text);
                    let painted = match line.sign {
                        '+' => paint(&text, "32"),
                        '-' => paint(&text, "31"),
                        '…' => paint(&text, "2"),
                        _ => text,
                    };
                    out.push_str(&painted);
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// The explanation's Markdown for a terminal `width` columns wide: styled when `colour`, plain text otherwise.
pub fn render_markdown(markdown: &str, width: usize, colour: bool) -> String {
    let skin = if colour {
        termimad::MadSkin::default()
    } else {
        termimad::MadSkin::no_style()
    };
    skin.text(markdown, Some(width.max(20))).to_string()
}

/// The lines of the YAML diff, with [`CONTEXT`] lines around each change; `…` marks skipped lines.
fn changed_lines(before: &str, after: &str) -> Vec<DiffLine> {
    let diff = TextDiff::from_lines(before, after);
    let mut lines = Vec::new();
    for (index, group) in diff.grouped_ops(CONTEXT).iter().enumerate() {
        if index > 0 {
            lines.push(DiffLine {
                sign: '…',
                text: String::new(),
            });
        }
        for op in group {
            for change in diff.iter_changes(op) {
                let sign = match change.tag() {
                    ChangeTag::Insert => '+',
                    ChangeTag::Delete => '-',
                    ChangeTag::Equal => ' ',
                };
                lines.push(DiffLine {
                    sign,
                    text: change.value().trim_end_matches('\n').to_string(),
                });
            }
        }
    }
    lines
}

/// An object as YAML (as the API would hold it: no file comments).
fn yaml(manifest: &Manifest) -> String {
    serde_yaml_ng::to_string(&manifest.object).unwrap_or_default()
}

/// `Kind/name`.
fn describe(manifest: &Manifest) -> String {
    format!("{}/{}", manifest.kind(), manifest.name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::stages::LabDefinition;

    fn objects(stage: &str) -> Vec<Manifest> {
        let lab = LabDefinition::load_default().unwrap();
        lab.stage_manifests(lab.stage(stage).unwrap()).unwrap()
    }

    #[test]
    fn the_split_changes_only_the_weights_of_the_virtual_service() {
        let diffs = object_diff(&objects("canary-deployed"), &objects("split-70-30"));
        assert_eq!(diffs.len(), 1, "{diffs:#?}");
        assert_eq!(diffs[0].object, "VirtualService/image-classifier");
        let ObjectChange::Changed(lines) = &diffs[0].change else {
            panic!("{diffs:#?}")
        };
        let changed: Vec<String> = lines
            .iter()
            .filter(|line| line.sign == '+' || line.sign == '-')
            .map(|line| format!("{}{}", line.sign, line.text.trim()))
            .collect();
        assert_eq!(changed, ["-weight: 100", "+weight: 70", "-weight: 0", "+weight: 30"]);
    }

    #[test]
    fn deploying_the_canary_adds_its_objects() {
        let diffs = object_diff(&objects("stable"), &objects("canary-deployed"));
        let added: Vec<&str> = diffs
            .iter()
            .filter(|diff| matches!(diff.change, ObjectChange::Added(_)))
            .map(|diff| diff.object.as_str())
            .collect();
        assert!(added.contains(&"Deployment/image-classifier-resnet101"), "{added:?}");
        assert!(added.contains(&"DestinationRule/image-classifier"), "{added:?}");
        assert!(!diffs.iter().any(|diff| diff.change == ObjectChange::Removed));
    }

    #[test]
    fn going_back_removes_objects() {
        let diffs = object_diff(&objects("split-70-30"), &objects("stable"));
        assert!(
            diffs
                .iter()
                .any(|diff| diff.object == "DestinationRule/image-classifier" && diff.change == ObjectChange::Removed)
        );
        let text = render_diff(&diffs, false);
        assert!(text.contains("- DestinationRule/image-classifier (removed)"), "{text}");
    }

    #[test]
    fn markdown_renders_as_plain_text_without_colour() {
        let text = render_markdown("A **subset** is `resnet50`.", 80, false);
        assert!(text.contains("subset"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text:?}");
    }
}
