//! The stages' explanations: one Markdown file per stage, `assets/stages/<stage>.md`, that says what the stage
//! changes and why, in a learner's terms. The handout (and the tour) show them beside the stage's objects.
//!
//! Loading checks the directory against `assets/lab.toml`, so an instructor who adds a stage is told to explain it:
//! a stage without a file, a file that names no stage, or a file without its `# Title` line is refused with the
//! path and a `help:` line.

use std::path::{Path, PathBuf};

use crate::definition::assets::assets_dir;
use crate::definition::stages::LabDefinition;

/// The explanations' directory inside the assets directory.
pub const STAGES_DIR: &str = "stages";

/// What one stage's Markdown file says.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The stage it explains (the file's name without `.md`).
    pub stage: String,
    /// Where it was read from, for messages.
    pub path: PathBuf,
    /// The text of its first line, `# Title`, without the `#`.
    pub title: String,
    /// The Markdown after the title line, trimmed.
    pub body: String,
}

/// Every stage's explanation, in the order of the stages.
#[derive(Debug, Clone)]
pub struct Explanations {
    explanations: Vec<Explanation>,
}

/// A directory of explanations that does not match the stages: every problem, each with its path.
#[derive(Debug, thiserror::Error)]
#[error(
    "the stage explanations in {} do not match the stages of lab.toml:\n{}\nhelp: write one Markdown file per stage, named <stage>.md and starting with a `# Title` line; rename or delete a file that explains no stage",
    .dir.display(),
    .problems.iter().map(|problem| format!("  {problem}")).collect::<Vec<_>>().join("\n")
)]
pub struct InvalidExplanations {
    /// The explanations' directory.
    pub dir: PathBuf,
    /// What is wrong, one entry per file.
    pub problems: Vec<ExplanationProblem>,
}

/// One thing wrong with the explanations.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExplanationProblem {
    /// A stage has no file.
    #[error("{}: missing: stage \"{stage}\" has no explanation", .path.display())]
    Missing {
        /// The stage.
        stage: String,
        /// The file it needs.
        path: PathBuf,
    },
    /// A Markdown file is named after no stage.
    #[error("{}: explains no stage: lab.toml has no stage \"{name}\" (the stages are: {})", .path.display(), .stages.join(", "))]
    NoSuchStage {
        /// The file.
        path: PathBuf,
        /// Its name without `.md`.
        name: String,
        /// The stages there are.
        stages: Vec<String>,
    },
    /// A file does not start with `# Title`.
    #[error("{}: the first line must be the stage's title, `# Title`", .path.display())]
    NoTitle {
        /// The file.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("{}: cannot be read: {message}", .path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl Explanations {
    /// The explanations of `lab`'s stages from `assets/stages/` (or `$CANARY_LAB_ASSETS/stages/`).
    pub fn load_default(lab: &LabDefinition) -> Result<Explanations, InvalidExplanations> {
        Explanations::load(lab, &assets_dir().join(STAGES_DIR))
    }

    /// The explanations of `lab`'s stages from `dir`: one `<stage>.md` per stage and no other `.md` file.
    pub fn load(lab: &LabDefinition, dir: &Path) -> Result<Explanations, InvalidExplanations> {
        let stage_names: Vec<String> = lab.stages.iter().map(|stage| stage.name.clone()).collect();
        let mut problems = Vec::new();
        let mut explanations = Vec::new();
        for stage in &stage_names {
            let path = dir.join(format!("{stage}.md"));
            match std::fs::read_to_string(&path) {
                Ok(text) => match parse(stage, &path, &text) {
                    Some(explanation) => explanations.push(explanation),
                    None => problems.push(ExplanationProblem::NoTitle { path }),
                },
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    problems.push(ExplanationProblem::Missing {
                        stage: stage.clone(),
                        path,
                    });
                }
                Err(error) => problems.push(ExplanationProblem::Unreadable {
                    path,
                    message: error.to_string(),
                }),
            }
        }
        // A file named after no stage: most often a stage renamed in lab.toml and not here.
        let mut others: Vec<(PathBuf, String)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|extension| extension == "md"))
            .filter_map(|path| {
                let name = path.file_stem()?.to_string_lossy().into_owned();
                (!stage_names.contains(&name)).then_some((path, name))
            })
            .collect();
        others.sort();
        for (path, name) in others {
            problems.push(ExplanationProblem::NoSuchStage {
                path,
                name,
                stages: stage_names.clone(),
            });
        }
        if !problems.is_empty() {
            return Err(InvalidExplanations {
                dir: dir.to_path_buf(),
                problems,
            });
        }
        Ok(Explanations { explanations })
    }

    /// The explanation of the stage called `stage`.
    pub fn for_stage(&self, stage: &str) -> Option<&Explanation> {
        self.explanations.iter().find(|explanation| explanation.stage == stage)
    }
}

/// The explanation in `text`, or `None` when its first line is not a `# Title`.
fn parse(stage: &str, path: &Path, text: &str) -> Option<Explanation> {
    let text = text.trim_start_matches('\u{feff}');
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let title = first.trim_end().strip_prefix("# ")?.trim();
    if title.is_empty() {
        return None;
    }
    Some(Explanation {
        stage: stage.to_string(),
        path: path.to_path_buf(),
        title: title.to_string(),
        body: rest.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_of_shipped() -> tempfile::TempDir {
        let copy = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(assets_dir().join(STAGES_DIR)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
        }
        copy
    }

    #[test]
    fn every_shipped_stage_has_a_titled_explanation() {
        let lab = LabDefinition::load_default().unwrap();
        let explanations = Explanations::load_default(&lab).unwrap();
        for stage in &lab.stages {
            let explanation = explanations.for_stage(&stage.name).unwrap();
            assert!(!explanation.title.is_empty() && !explanation.title.starts_with('#'));
            assert!(explanation.body.len() > 200, "{}: too short", stage.name);
        }
        let subsets = explanations.for_stage("canary-deployed").unwrap();
        assert!(subsets.body.contains("`version=resnet101`"), "{}", subsets.body);
    }

    #[test]
    fn a_missing_file_and_a_file_for_no_stage_are_both_named() {
        let lab = LabDefinition::load_default().unwrap();
        let dir = copy_of_shipped();
        std::fs::remove_file(dir.path().join("focused.md")).unwrap();
        std::fs::write(dir.path().join("canary.md"), "# A stage renamed\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not Markdown: ignored").unwrap();
        let error = Explanations::load(&lab, dir.path()).unwrap_err();
        assert_eq!(error.problems.len(), 2, "{error}");
        let shown = error.to_string();
        let focused = dir.path().join("focused.md");
        assert!(
            shown.contains(&format!(
                "{}: missing: stage \"focused\" has no explanation",
                focused.display()
            )),
            "{shown}"
        );
        assert!(
            shown.contains("canary.md: explains no stage: lab.toml has no stage \"canary\" (the stages are: stable,"),
            "{shown}"
        );
        assert!(shown.contains("\nhelp: write one Markdown file per stage"), "{shown}");
    }

    #[test]
    fn a_file_without_a_title_line_is_refused() {
        let lab = LabDefinition::load_default().unwrap();
        let dir = copy_of_shipped();
        std::fs::write(dir.path().join("stable.md"), "ResNet50 alone.\n").unwrap();
        let error = Explanations::load(&lab, dir.path()).unwrap_err();
        assert_eq!(
            error.problems,
            [ExplanationProblem::NoTitle {
                path: dir.path().join("stable.md")
            }]
        );
        assert_eq!(
            parse("s", Path::new("s.md"), "# Title\n\nBody.\n").unwrap().body,
            "Body."
        );
        assert!(parse("s", Path::new("s.md"), "#\n").is_none());
    }
}
