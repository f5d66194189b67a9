//! `lab stage NAME`: apply a stage (apply, prune, roll out), then assert it unless `--no-assert`, through the
//! ingress `lab up` recorded, reopened for this command (`lab::lifecycle::ingress::reopen_recorded`).

use lab::cluster::Cluster;
use lab::definition::stages::{LabDefinition, Stage};
use lab::lifecycle::ingress::{self, Ingress};
use lab::lifecycle::stage::{StageReport, apply_stage, assert_stage, record_stage};
use lab::lifecycle::state::LabLock;
use lab::output::to_json;
use lab::report::{RunReport, Verdict};
use lab::{CommandStatus, Format, LabError, Settings};

use crate::CommandResult;
use crate::flags::{RolloutFlags, StageFlags};

/// Applies the stage and prints what changed, then asserts it through the recorded ingress.
pub(crate) async fn run(settings: &Settings, flags: &StageFlags) -> CommandResult {
    let lab = LabDefinition::load_default()?;
    let stage = lab.stage(&flags.name)?;
    let lock = LabLock::acquire(settings, "lab stage")?;
    // The way in first: an ingress that cannot be reached fails here, before anything is applied.
    let ingress = if flags.no_assert {
        None
    } else {
        Some(
            open_ingress(
                settings,
                "no ingress URL is recorded, so the stage cannot be asserted",
                "run `cargo xtask lab up` first, or pass --no-assert",
            )
            .await?,
        )
    };
    let applied = apply_and_print(settings, &lab, stage, lock, &flags.rollout).await?;
    let Some(ingress) = ingress else {
        record_stage(settings, &stage.name, Verdict::NotAsserted)?;
        return Ok(CommandStatus::Ok);
    };
    // The wait for the gateway to serve the stage says what it waits for, as `lab up`'s steps do.
    let note = |text: &str| eprintln!("  … {text}");
    let check = assert_stage(&applied.cluster, &lab, stage, &ingress.url, &note).await?;
    // Recorded as active only once it passed; a failed or inconclusive stage leaves none recorded.
    record_stage(settings, &stage.name, check.verdict)?;
    let report = RunReport::new(ingress.url.clone(), applied.started, vec![check]);
    super::reports::print_and_write(settings, &flags.reports, &report)
}

/// The recorded ingress, usable for as long as the returned value lives (a port-forward is reopened, a dead
/// tunnel restarted); says on stderr what it had to do. Without one recorded, a not-ready error with `missing`
/// and its `help`.
pub(crate) async fn open_ingress(settings: &Settings, missing: &str, help: &str) -> anyhow::Result<Ingress> {
    let ingress = ingress::reopen_recorded(settings, ingress::REOPEN_DEADLINE)
        .await?
        .ok_or_else(|| LabError::not_ready(missing, help))?;
    if let Some(note) = &ingress.note {
        eprintln!("note: {note}");
    }
    Ok(ingress)
}

/// A stage applied under the lab lock, which stays held until this is dropped.
pub(crate) struct Applied {
    _lock: LabLock,
    /// The connection it was applied through.
    pub(crate) cluster: Cluster,
    /// When the apply started.
    pub(crate) started: std::time::SystemTime,
}

/// What `lab stage` and `lab reset` share: under the lab lock (`lock`), connect, apply `stage` of `lab` and print
/// what changed.
pub(crate) async fn apply_and_print(
    settings: &Settings,
    lab: &LabDefinition,
    stage: &Stage,
    lock: LabLock,
    rollout: &RolloutFlags,
) -> anyhow::Result<Applied> {
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
