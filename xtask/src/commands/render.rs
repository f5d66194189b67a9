//! `lab render [--stage NAME]`: print, as multi-document YAML, exactly what `lab up` (or a stage) applies.

use lab::definition::stages::LabDefinition;
use lab::lifecycle::bring_up::render;
use lab::{CommandStatus, Settings};

use crate::CommandResult;
use crate::flags::RenderFlags;

/// Prints the objects.
pub(crate) fn run(settings: &Settings, flags: &RenderFlags) -> CommandResult {
    let lab = LabDefinition::load_default()?;
    let manifests = render(settings, &lab, flags.stage.as_deref())?;
    print!("{}", lab::definition::manifests::render(&manifests));
    Ok(CommandStatus::Ok)
}
