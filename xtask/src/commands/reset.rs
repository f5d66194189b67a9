//! `lab reset [STAGE]`: return to a stage fast, reusing running pods, and say what changed.

use lab::lifecycle::stage::reset_stage;
use lab::{CommandStatus, Settings};

use crate::CommandResult;
use crate::flags::ResetFlags;

/// Applies the stage (no namespace recreation: unchanged objects are not written) and prints the changes; a reset
/// asserts nothing, so the stage is recorded as not asserted and a later `lab up` asserts it.
pub(crate) async fn run(settings: &Settings, flags: &ResetFlags) -> CommandResult {
    let printer = super::stage::Printer { settings };
    reset_stage(settings, &flags.stage, flags.rollout.deadline(), &printer).await?;
    Ok(CommandStatus::Ok)
}
