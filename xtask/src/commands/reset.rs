//! `lab reset [STAGE]`: return to a stage fast, reusing running pods, and say what changed.

use lab::definition::stages::LabDefinition;
use lab::lifecycle::state::LabLock;
use lab::{CommandStatus, Settings};

use crate::CommandResult;
use crate::flags::ResetFlags;

/// Applies the stage (no namespace recreation: unchanged objects are not written) and prints the changes.
pub(crate) async fn run(settings: &Settings, flags: &ResetFlags) -> CommandResult {
    let lab = LabDefinition::load_default()?;
    let stage = lab.stage(&flags.stage)?;
    let lock = LabLock::acquire(settings, "lab reset")?;
    let _applied = super::stage::apply_and_print(settings, &lab, stage, lock, &flags.rollout).await?;
    // A reset asserts nothing: the stage is recorded as not asserted, so a later `lab up` asserts it.
    lab::lifecycle::stage::record_stage(settings, &stage.name, lab::report::Verdict::NotAsserted)?;
    Ok(CommandStatus::Ok)
}
