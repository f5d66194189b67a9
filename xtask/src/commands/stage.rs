//! `lab stage NAME`: apply a stage (apply, prune, roll out), then assert it unless `--no-assert`.

use lab::cluster::Cluster;
use lab::output::to_json;
use lab::report::{RunReport, Verdict};
use lab::stage_apply::{StageReport, apply_stage, assert_stage, record_stage};
use lab::stages::{LabDefinition, Stage};
use lab::state::LabLock;
use lab::{CommandStatus, Format, LabError, Settings};

use crate::CommandResult;
use crate::flags::{RolloutFlags, StageFlags};

/// Applies the stage and prints what changed.
pub(crate) async fn run(settings: &Settings, flags: &StageFlags) -> CommandResult {
    let lab = LabDefinition::load_default()?;
    let stage = lab.stage(&flags.name)?;
    let applied = apply_and_print(settings, &lab, stage, "lab stage", &flags.rollout).await?;
    if !flags.no_assert {
        let url = lab::state::read_ingress_url(settings)?.ok_or_else(|| {
            LabError::not_ready(
                "no ingress URL is recorded, so the stage cannot be asserted",
                "run `cargo xtask lab up` first, or pass --no-assert",
            )
        })?;
        let check = assert_stage(&applied.cluster, &lab, stage, &url).await?;
        // Recorded as active only once it passed; a failed or inconclusive stage leaves none recorded.
        record_stage(settings, &stage.name, check.verdict)?;
        let report = RunReport::new(url, applied.started, vec![check]);
        return super::reports::print_and_write(settings, &flags.reports, &report);
    }
    record_stage(settings, &stage.name, Verdict::NotAsserted)?;
    Ok(CommandStatus::Ok)
}

/// A stage applied under the lab lock, which stays held until this is dropped.
pub(crate) struct Applied {
    _lock: LabLock,
    /// The connection it was applied through.
    pub(crate) cluster: Cluster,
    /// When the apply started.
    pub(crate) started: std::time::SystemTime,
}

/// What `lab stage` and `lab reset` share: take the lab lock as `holder`, connect, apply `stage` of `lab` and print
/// what changed.
pub(crate) async fn apply_and_print(
    settings: &Settings,
    lab: &LabDefinition,
    stage: &Stage,
    holder: &str,
    rollout: &RolloutFlags,
) -> anyhow::Result<Applied> {
    let lock = LabLock::acquire(settings, holder)?;
    let cluster = Cluster::connect(settings).await?;
    let started = std::time::SystemTime::now();
    let report = apply_stage(settings, &cluster, lab, stage, rollout.deadline()).await?;
    print_report(settings, &report);
    Ok(Applied {
        _lock: lock,
        cluster,
        started,
    })
}

/// Prints each object's change (kubectl's words) or the report as JSON.
fn print_report(settings: &Settings, report: &StageReport) {
    match settings.format {
        Format::Json => println!("{}", to_json(report)),
        Format::Human => {
            for change in &report.changes {
                println!("{}", change.line());
            }
            for name in &report.restarted {
                println!("deployment/{name} restarted (sidecar injection)");
            }
            println!("stage \"{}\" is applied", report.stage);
        }
    }
}
