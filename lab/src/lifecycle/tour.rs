//! `lab tour`: the stages as a guided walk. For each stage, in order: what [`TourStep`] holds to show (title,
//! explanation, the change from the stage before as a diff of the objects, the commands a learner would type);
//! then the caller pauses, applies and asserts the stage with [`crate::lifecycle::stage::run_stage`] (the same as
//! `lab stage`), and records the progress here, so the next tour resumes after the last stage it completed.

use crate::Settings;
use crate::definition::explanations::Explanations;
use crate::definition::stages::LabDefinition;
use crate::lifecycle::stage::resolve_stage;
use crate::lifecycle::state;
use crate::teaching::learner_commands::{LearnerCommands, shown_dir};
use crate::teaching::tour::{ObjectDiff, object_diff};
use crate::traffic::references::deployed_versions;

/// `<state_dir>/tour-stage`: the last stage a tour completed (applied and asserted, or skipped).
pub const TOUR_PROGRESS_FILE: &str = "tour-stage";

/// What the tour shows for one stage before applying it.
#[derive(Debug, Clone)]
pub struct TourStep {
    /// 1-based position among the stages.
    pub number: usize,
    /// How many stages there are.
    pub total: usize,
    /// The stage name.
    pub stage: String,
    /// The explanation's title.
    pub title: String,
    /// The stage's one-line summary (`lab.toml`).
    pub summary: String,
    /// The explanation, Markdown.
    pub explanation: String,
    /// What changes from the stage before (everything is new for the first stage).
    pub diff: Vec<ObjectDiff>,
    /// What a learner would type.
    pub commands: LearnerCommands,
    /// How many versions the stage's Deployments serve (a bar each in the live view).
    pub versions: usize,
}

/// The tour's steps from `from` (a stage name), else from after the stage the last tour completed (from the first
/// stage when none was recorded or the last tour finished), to the last stage.
pub fn tour_steps(settings: &Settings, from: Option<&str>) -> anyhow::Result<Vec<TourStep>> {
    let lab = LabDefinition::load_default()?;
    let explanations = Explanations::load_default(&lab)?;
    let start = match from {
        Some(name) => {
            lab.stage(name)?;
            lab.stages.iter().position(|stage| stage.name == name).unwrap_or(0)
        }
        None => match state::read_value(settings, TOUR_PROGRESS_FILE)? {
            Some(done) => match lab.stages.iter().position(|stage| stage.name == done) {
                Some(index) if index + 1 < lab.stages.len() => index + 1,
                _ => 0,
            },
            None => 0,
        },
    };
    let dir = shown_dir(&lab.manifests_dir);
    let mut steps = Vec::new();
    // Each stage is resolved once: a step's objects are the next step's "previous".
    let mut previous = match start {
        0 => None,
        _ => Some(resolve_stage(settings, &lab, &lab.stages[start - 1])?.manifests),
    };
    for (index, stage) in lab.stages.iter().enumerate().skip(start) {
        let plan = resolve_stage(settings, &lab, stage)?;
        let explanation = explanations.for_stage(&stage.name);
        steps.push(TourStep {
            number: index + 1,
            total: lab.stages.len(),
            stage: stage.name.clone(),
            title: explanation
                .map(|e| e.title.clone())
                .unwrap_or_else(|| stage.name.clone()),
            summary: stage.summary.clone(),
            explanation: explanation.map(|e| e.body.clone()).unwrap_or_default(),
            diff: object_diff(previous.as_deref().unwrap_or_default(), &plan.manifests),
            commands: LearnerCommands::for_stage(
                &stage.name,
                &stage.manifests,
                &dir,
                previous.as_deref(),
                &plan.manifests,
            ),
            versions: deployed_versions(&plan).len(),
        });
        previous = Some(plan.manifests);
    }
    Ok(steps)
}

/// Records `stage` as the last stage the tour completed.
pub fn record_tour_stage(settings: &Settings, stage: &str) -> anyhow::Result<()> {
    state::write_value(settings, TOUR_PROGRESS_FILE, stage)
}

/// Forgets the tour's progress (`lab reset --for-class`); returns the stage it had reached, if any.
pub fn forget_tour(settings: &Settings) -> anyhow::Result<Option<String>> {
    let reached = state::read_value(settings, TOUR_PROGRESS_FILE)?;
    state::forget(settings, TOUR_PROGRESS_FILE)?;
    Ok(reached)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(state: &std::path::Path) -> Settings {
        let mut settings = Settings::with_defaults("canary-lab").unwrap();
        settings.state_dir = state.to_path_buf();
        settings.cache_dir = state.join("cache");
        settings
    }

    #[test]
    fn each_step_counts_the_versions_its_stage_deploys_and_a_tour_resumes_after_the_last_one_completed() {
        let state = tempfile::tempdir().unwrap();
        let settings = settings(state.path());
        let steps = tour_steps(&settings, None).unwrap();
        let counted: Vec<(&str, usize)> = steps.iter().map(|step| (step.stage.as_str(), step.versions)).collect();
        assert_eq!(
            counted,
            [
                ("stable", 1),
                ("canary-deployed", 2),
                ("split-70-30", 2),
                ("focused", 2)
            ]
        );
        record_tour_stage(&settings, "canary-deployed").unwrap();
        let resumed = tour_steps(&settings, None).unwrap();
        assert_eq!(resumed[0].stage, "split-70-30");
        assert_eq!(forget_tour(&settings).unwrap().as_deref(), Some("canary-deployed"));
        assert_eq!(tour_steps(&settings, None).unwrap()[0].stage, "stable");
    }
}
