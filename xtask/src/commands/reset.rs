//! `lab reset [STAGE]`: return to a stage fast, reusing running pods, and say what changed.

use std::time::Duration;

use lab::cluster::Cluster;
use lab::stage_apply::apply_stage;
use lab::stages::LabDefinition;
use lab::state::LabLock;
use lab::{CommandStatus, Settings};

use crate::CommandResult;
use crate::flags::ResetFlags;

/// Applies the stage (no namespace recreation: unchanged objects are not written) and prints the changes.
pub(crate) async fn run(settings: &Settings, flags: &ResetFlags) -> CommandResult {
    let lab = LabDefinition::load_default()?;
    let stage = lab.stage(&flags.stage)?;
    let _lock = LabLock::acquire(settings, "lab reset")?;
    let cluster = Cluster::connect(settings).await?;
    let report = apply_stage(
        settings,
        &cluster,
        &lab,
        stage,
        Duration::from_secs(flags.rollout_timeout),
    )
    .await?;
    super::stage::print_report(settings, &report);
    Ok(CommandStatus::Ok)
}
