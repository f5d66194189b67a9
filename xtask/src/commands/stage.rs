//! `lab stage NAME`: apply a stage (apply, prune, roll out), then assert it unless `--no-assert`.

use std::time::Duration;

use lab::cluster::Cluster;
use lab::output::to_json;
use lab::report::{RunReport, Verdict, render_human, render_json};
use lab::stage_apply::{StageReport, apply_stage, assert_stage};
use lab::stages::LabDefinition;
use lab::state::LabLock;
use lab::{CommandStatus, Format, LabError, Settings};

use crate::CommandResult;
use crate::flags::StageFlags;

/// Applies the stage and prints what changed.
pub(crate) async fn run(settings: &Settings, flags: &StageFlags) -> CommandResult {
    let lab = LabDefinition::load_default()?;
    let stage = lab.stage(&flags.name)?;
    let _lock = LabLock::acquire(settings, "lab stage")?;
    let cluster = Cluster::connect(settings).await?;
    let started_at = lab::checks::rfc3339_utc(std::time::SystemTime::now());
    let report = apply_stage(
        settings,
        &cluster,
        &lab,
        stage,
        Duration::from_secs(flags.rollout_timeout),
    )
    .await?;
    print_report(settings, &report);
    if !flags.no_assert {
        let url = lab::state::read_ingress_url(settings)?.ok_or_else(|| {
            LabError::not_ready(
                "no ingress URL is recorded, so the stage cannot be asserted",
                "run `cargo xtask lab up` first, or pass --no-assert",
            )
        })?;
        let check = assert_stage(&cluster, &lab, stage, &url).await?;
        let report = RunReport {
            url,
            started_at,
            verdict: check.verdict,
            stages: vec![check],
        };
        match settings.format {
            Format::Json => println!("{}", render_json(&report)),
            Format::Human => print!("{}", render_human(&report)),
        }
        super::reports::write_reports(&flags.reports, &report)?;
        if report.verdict != Verdict::Pass {
            return Ok(CommandStatus::NotReady);
        }
    }
    Ok(CommandStatus::Ok)
}

/// Prints each object's change (kubectl's words) or the report as JSON.
pub(crate) fn print_report(settings: &Settings, report: &StageReport) {
    match settings.format {
        Format::Json => println!("{}", to_json(report)),
        Format::Human => {
            for change in &report.changes {
                println!("{}", change.line());
            }
            for name in &report.restarted {
                println!("deployment/{name} restarted (sidecar injection)");
            }
            println!("stage \"{}\" is active", report.stage);
        }
    }
}
