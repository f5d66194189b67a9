//! `lab handout --out DIR`: write the workshop handout, `DIR/handout.md` and `DIR/handout.html`, from the stages as
//! the lab applies them (the same objects `lab render --stage NAME` prints).

use lab::definition::explanations::Explanations;
use lab::definition::stages::LabDefinition;
use lab::lifecycle::bring_up::render;
use lab::lifecycle::stage::resolve_stage;
use lab::teaching::handout::{Handout, StageMaterial};
use lab::{CommandStatus, Format, Settings};

use crate::CommandResult;
use crate::flags::HandoutFlags;

/// Writes the handout and says where.
pub(crate) fn run(settings: &Settings, flags: &HandoutFlags) -> CommandResult {
    let lab = LabDefinition::load_default()?;
    let explanations = Explanations::load_default(&lab)?;
    let mut materials = Vec::new();
    for stage in &lab.stages {
        materials.push(StageMaterial {
            plan: resolve_stage(settings, &lab, stage)?,
            applied: render(settings, &lab, Some(&stage.name))?,
        });
    }
    let files = Handout::build(&lab, &explanations, &materials)?.write(&flags.out)?;
    match settings.format {
        Format::Json => println!("{}", lab::output::to_json(&files)),
        Format::Human => {
            println!("wrote {}", files.markdown.display());
            println!("wrote {}", files.html.display());
        }
    }
    Ok(CommandStatus::Ok)
}
