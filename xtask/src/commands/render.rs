//! `lab render [--stage NAME]`: print, as multi-document YAML, exactly what `lab up` (or a stage) applies.

use lab::definition::stages::LabDefinition;
use lab::lifecycle::bring_up::render;
use lab::{CommandStatus, Format, Settings};

use crate::CommandResult;
use crate::flags::RenderFlags;

/// Prints the objects.
pub(crate) fn run(settings: &Settings, flags: &RenderFlags) -> CommandResult {
    let lab = LabDefinition::load_default()?;
    let manifests = render(settings, &lab, flags.stage.as_deref())?;
    match settings.format {
        // The objects as one JSON array, in the order `lab up` applies them.
        Format::Json => {
            let objects: Vec<&serde_json::Value> = manifests.iter().map(|manifest| &manifest.object).collect();
            println!("{}", lab::output::to_json(&objects));
        }
        Format::Human => print!("{}", lab::definition::manifests::render(&manifests)),
    }
    Ok(CommandStatus::Ok)
}
