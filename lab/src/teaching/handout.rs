//! The workshop handout (`lab handout --out DIR`): per stage, its title and summary, its explanation, the full
//! YAML of the objects it applies, the commands a learner types, what `lab verify` checks and the expected result
//! with its split chart — as `DIR/handout.md` and a self-contained `DIR/handout.html`.
//!
//! [`Handout::build`] takes the stages as the lab applies them ([`StageMaterial`]: the resolved plan and the objects
//! `lab render --stage` prints), so what a learner reads is what the lab applies, and an instructor who edits
//! `assets/lab.toml`, a manifest or an explanation regenerates it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::definition::expectations::checklist;
use crate::definition::explanations::Explanations;
use crate::definition::manifests::{self, Manifest};
use crate::definition::plan::StagePlan;
use crate::definition::routing::PREDICT_PATH;
use crate::definition::stages::{AssertionSpec, LabDefinition};
use crate::teaching::learner_commands::{LearnerCommands, shown_dir};

/// The Markdown file's name inside the output directory.
pub const MARKDOWN_FILE: &str = "handout.md";
/// The HTML file's name inside the output directory.
pub const HTML_FILE: &str = "handout.html";

/// One stage as the lab applies it: what the handout is made from.
#[derive(Debug, Clone)]
pub struct StageMaterial {
    /// The stage resolved (its routing, assertions and manifests).
    pub plan: StagePlan,
    /// Its objects exactly as `lab render --stage NAME` prints them (as the lab sends them).
    pub applied: Vec<Manifest>,
}

/// The whole handout, ready to render.
#[derive(Debug, Clone)]
pub struct Handout {
    /// The first stage's name (`lab up --stage` brings the lab to it).
    pub first_stage: String,
    /// The stages in order.
    pub stages: Vec<HandoutStage>,
}

/// One stage's section.
#[derive(Debug, Clone)]
pub struct HandoutStage {
    /// 1-based position in the lab.
    pub number: usize,
    /// The stage name, e.g. `split-70-30`.
    pub name: String,
    /// The explanation's title.
    pub title: String,
    /// The one-line summary from `lab.toml`.
    pub summary: String,
    /// The explanation's Markdown (without its title line).
    pub explanation: String,
    /// The objects, grouped by the manifest file they come from, in apply order.
    pub files: Vec<ManifestYaml>,
    /// What a learner types.
    pub commands: LearnerCommands,
    /// The items `lab verify` checks, in its order.
    pub checks: Vec<String>,
    /// What the traffic must show, one entry per assertion.
    pub expected: Vec<ExpectedResult>,
}

/// The YAML of the objects of one manifest file, as the lab applies them.
#[derive(Debug, Clone)]
pub struct ManifestYaml {
    /// The file name in the manifests directory.
    pub file: String,
    /// The file's path as the commands write it, e.g. `assets/manifests/resnet50.yaml`.
    pub path: String,
    /// Multi-document YAML, as `lab render` prints it.
    pub yaml: String,
}

/// What one assertion expects, with the chart of the route its requests take.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedResult {
    /// The headers its requests carry.
    pub headers: BTreeMap<String, String>,
    /// The expectation in words, e.g. "resnet101 ≈ 30% of the responses (accepted 15–45%)".
    pub text: String,
    /// Per version of the route, in the VirtualService's order: its weight and accepted range.
    pub rows: Vec<ExpectedRow>,
}

/// One version's bar in an expected result's chart.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedRow {
    /// The version.
    pub version: String,
    /// Its configured weight in percent.
    pub weight: u32,
    /// The accepted share range (0–1) when a share assertion tests this version.
    pub accepted: Option<(f64, f64)>,
}

/// Where [`Handout::write`] put the files.
#[derive(Debug, Clone, Serialize)]
pub struct HandoutFiles {
    /// `DIR/handout.md`.
    pub markdown: PathBuf,
    /// `DIR/handout.html`.
    pub html: PathBuf,
}

impl Handout {
    /// The handout of `lab`: `materials` holds its stages in order, as the lab applies them, and every stage has
    /// its explanation in `explanations`.
    pub fn build(
        lab: &LabDefinition,
        explanations: &Explanations,
        materials: &[StageMaterial],
    ) -> anyhow::Result<Handout> {
        let manifests_dir = shown_dir(&lab.manifests_dir);
        let mut stages = Vec::new();
        let mut previous: Option<&[Manifest]> = None;
        for (index, material) in materials.iter().enumerate() {
            let stage = lab.stage(&material.plan.name)?;
            let explanation = explanations.for_stage(&stage.name).with_context(|| {
                format!(
                    "stage \"{}\" has no explanation\nhelp: write assets/stages/{}.md",
                    stage.name, stage.name
                )
            })?;
            stages.push(HandoutStage {
                number: index + 1,
                name: stage.name.clone(),
                title: explanation.title.clone(),
                summary: stage.summary.clone(),
                explanation: explanation.body.clone(),
                files: by_file(&material.applied, &manifests_dir),
                commands: LearnerCommands::for_stage(
                    &stage.name,
                    &stage.manifests,
                    &manifests_dir,
                    previous,
                    &material.applied,
                ),
                checks: checklist(&material.plan).into_iter().map(|item| item.text).collect(),
                expected: expected_results(&material.plan),
            });
            previous = Some(&material.applied);
        }
        Ok(Handout {
            first_stage: lab.stages.first().map(|stage| stage.name.clone()).unwrap_or_default(),
            stages,
        })
    }

    /// The handout as Markdown.
    pub fn to_markdown(&self) -> String {
        crate::teaching::handout_markdown::render(self)
    }

    /// The handout as one self-contained HTML page (inline CSS and SVG, nothing fetched).
    pub fn to_html(&self) -> String {
        crate::teaching::handout_html::render(self)
    }

    /// Writes `dir/handout.md` and `dir/handout.html`, each atomically; `dir` is created when missing.
    pub fn write(&self, dir: &Path) -> anyhow::Result<HandoutFiles> {
        if dir.exists() && !dir.is_dir() {
            anyhow::bail!(
                "\"{}\" is not a directory\nhelp: pass a directory to write {MARKDOWN_FILE} and {HTML_FILE} into (it is created when missing)",
                dir.display()
            );
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating the directory \"{}\"", dir.display()))?;
        let files = HandoutFiles {
            markdown: dir.join(MARKDOWN_FILE),
            html: dir.join(HTML_FILE),
        };
        for (path, contents) in [(&files.markdown, self.to_markdown()), (&files.html, self.to_html())] {
            crate::fs_atomic::write_atomically(path, contents.as_bytes(), Some(0o644))
                .with_context(|| format!("writing the handout \"{}\"", path.display()))?;
        }
        Ok(files)
    }
}

/// The objects grouped by the file they come from, keeping the apply order.
fn by_file(applied: &[Manifest], manifests_dir: &str) -> Vec<ManifestYaml> {
    let mut groups: Vec<(String, Vec<Manifest>)> = Vec::new();
    for manifest in applied {
        match groups.last_mut() {
            Some((file, objects)) if *file == manifest.file => objects.push(manifest.clone()),
            _ => groups.push((manifest.file.clone(), vec![manifest.clone()])),
        }
    }
    groups
        .into_iter()
        .map(|(file, objects)| ManifestYaml {
            path: format!("{manifests_dir}/{file}"),
            file,
            yaml: manifests::render(&objects),
        })
        .collect()
}

/// Each assertion's expectation with the weights of the route its requests take.
fn expected_results(plan: &StagePlan) -> Vec<ExpectedResult> {
    plan.assertions
        .iter()
        .map(|assertion| {
            let mut rows: Vec<ExpectedRow> = Vec::new();
            let route = plan
                .routing()
                .ok()
                .and_then(|routing| routing.route_for(PREDICT_PATH, assertion.headers()).ok().flatten());
            if let Some(route) = route {
                let weights = route.weights();
                for destination in &route.route {
                    let version = destination.version(route);
                    if !rows.iter().any(|row| row.version == version) {
                        rows.push(ExpectedRow {
                            weight: weights.get(&version).copied().unwrap_or(0),
                            version,
                            accepted: None,
                        });
                    }
                }
            }
            if !rows.iter().any(|row| row.version == assertion.version()) {
                rows.push(ExpectedRow {
                    version: assertion.version().to_string(),
                    weight: 0,
                    accepted: None,
                });
            }
            let text = match assertion {
                AssertionSpec::Exact { version, .. } => format!("every response from {version}"),
                AssertionSpec::Share {
                    version,
                    share,
                    tolerance,
                    ..
                } => {
                    let (low, high) = ((share - tolerance).max(0.0), (share + tolerance).min(1.0));
                    if let Some(row) = rows.iter_mut().find(|row| row.version == *version) {
                        row.accepted = Some((low, high));
                    }
                    format!(
                        "{version} ≈ {}% of the responses (accepted {}–{}%)",
                        percent(*share),
                        percent(low),
                        percent(high)
                    )
                }
            };
            ExpectedResult {
                headers: assertion.headers().clone(),
                text,
                rows,
            }
        })
        .collect()
}

/// A share as a percentage: whole when it is one (0.3 → "30"), else with one decimal.
pub(crate) fn percent(share: f64) -> String {
    let value = share * 100.0;
    if (value - value.round()).abs() < 1e-9 {
        format!("{}", value.round() as i64)
    } else {
        format!("{value:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped lab's handout, from the plans alone (objects without the managed-by label).
    fn shipped() -> Handout {
        let lab = LabDefinition::load_default().unwrap();
        let explanations = Explanations::load_default(&lab).unwrap();
        let materials: Vec<StageMaterial> = lab
            .stages
            .iter()
            .map(|stage| {
                let plan = StagePlan::resolve(&lab, stage, None).unwrap();
                let applied = plan.manifests.clone();
                StageMaterial { plan, applied }
            })
            .collect();
        Handout::build(&lab, &explanations, &materials).unwrap()
    }

    #[test]
    fn the_split_stage_expects_its_share_with_the_accepted_range() {
        let handout = shipped();
        let split = &handout.stages[2];
        assert_eq!((split.number, split.name.as_str()), (3, "split-70-30"));
        let expected = &split.expected[0];
        assert!(expected.headers.is_empty());
        assert_eq!(expected.text, "resnet101 ≈ 30% of the responses (accepted 15–45%)");
        let rows: Vec<(&str, u32)> = expected
            .rows
            .iter()
            .map(|row| (row.version.as_str(), row.weight))
            .collect();
        assert_eq!(rows, [("resnet50", 70), ("resnet101", 30)]);
        assert_eq!(expected.rows[0].accepted, None);
        let (low, high) = expected.rows[1].accepted.unwrap();
        assert!((low - 0.15).abs() < 1e-9 && (high - 0.45).abs() < 1e-9, "{low}–{high}");
        let focused = &handout.stages[3];
        assert_eq!(focused.expected[0].text, "every response from resnet101");
        assert_eq!(focused.expected[0].rows.len(), 1);
        assert!(
            split
                .checks
                .iter()
                .any(|check| check.contains("70% to resnet50 and 30% to resnet101"))
        );
    }

    #[test]
    fn objects_are_grouped_by_file_in_apply_order() {
        let handout = shipped();
        let files: Vec<&str> = handout.stages[1].files.iter().map(|file| file.file.as_str()).collect();
        let lab = LabDefinition::load_default().unwrap();
        assert_eq!(files, lab.stage("canary-deployed").unwrap().manifests);
        assert!(
            handout.stages[1].files[1]
                .yaml
                .starts_with("# resnet50.yaml (document 1)\n")
        );
        // No stage of the shipped lab drops an object of the one before it.
        assert!(handout.stages.iter().all(|stage| {
            stage
                .commands
                .by_hand
                .iter()
                .all(|line| line.starts_with("kubectl apply -f "))
        }));
        assert_eq!(percent(0.125), "12.5");
    }
}
