//! `lab stages`: list the stages of `assets/lab.toml`, one line each.

use lab::definition::stages::LabDefinition;
use lab::output::{table, to_json};
use lab::{CommandStatus, Format, Settings};
use serde::Serialize;

use crate::CommandResult;

#[derive(Serialize)]
struct StageLine<'a> {
    name: &'a str,
    summary: &'a str,
    manifests: &'a [String],
}

/// Prints the stages in order.
pub(crate) fn run(settings: &Settings) -> CommandResult {
    let lab = LabDefinition::load_default()?;
    // Every stage is loaded, so an invalid one is refused here too, before anyone applies it.
    for stage in &lab.stages {
        lab.stage_manifests(stage)?;
    }
    // And the teaching material an instructor edits beside them: an explanation per stage, `lab verify`'s hints.
    lab::definition::explanations::Explanations::load_default(&lab)?;
    lab::definition::hints::Hints::load_default()?;
    match settings.format {
        Format::Json => {
            let lines: Vec<StageLine> = lab
                .stages
                .iter()
                .map(|stage| StageLine {
                    name: &stage.name,
                    summary: &stage.summary,
                    manifests: &stage.manifests,
                })
                .collect();
            println!("{}", to_json(&lines));
        }
        Format::Human => {
            let rows: Vec<Vec<String>> = lab
                .stages
                .iter()
                .enumerate()
                .map(|(index, stage)| vec![format!("{}", index + 1), stage.name.clone(), stage.summary.clone()])
                .collect();
            print!("{}", table(&["#", "stage", "what it proves"], &rows));
        }
    }
    Ok(CommandStatus::Ok)
}
