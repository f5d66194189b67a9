//! `lab reset [STAGE] [--for-class]`: return to a stage fast, reusing running pods, and say what changed; for the
//! next class, also clear the tour's progress.

use lab::lifecycle::stage::reset_stage;
use lab::lifecycle::tour::forget_tour;
use lab::{CommandStatus, Settings};

use crate::CommandResult;
use crate::flags::ResetFlags;

/// Applies the stage (no namespace recreation: unchanged objects are not written) and prints the changes; a reset
/// asserts nothing, so the stage is recorded as not asserted and a later `lab up` asserts it.
pub(crate) async fn run(settings: &Settings, flags: &ResetFlags) -> CommandResult {
    let printer = super::stage::Printer { settings };
    reset_stage(settings, &flags.stage, flags.rollout.deadline(), &printer).await?;
    if flags.for_class {
        // Said on stderr, so `--format json` keeps one document on stdout.
        match forget_tour(settings)? {
            Some(stage) => eprintln!(
                "tour progress cleared (it had reached \"{stage}\"): the next `lab tour` starts at the first stage"
            ),
            None => eprintln!("tour progress: none recorded; the next `lab tour` starts at the first stage"),
        }
    }
    Ok(CommandStatus::Ok)
}
