//! `lab check STAGE --url URL`: only a stage's assertions, against an ingress URL given by hand (no cluster access;
//! attribution by the `x-model-version` header). Exit 0 when every assertion passes, 1 on a fail or inconclusive.

use std::time::SystemTime;

use anyhow::Context;
use lab::Settings;
use lab::definition::plan::StagePlan;
use lab::definition::stages::LabDefinition;
use lab::report::RunReport;
use lab::traffic::checks::{self, CheckConfig};

use crate::CommandResult;
use crate::flags::CheckFlags;

/// Runs the stage's assertions and prints the report.
pub(crate) async fn run(settings: &Settings, flags: &CheckFlags) -> CommandResult {
    let Some(url) = &flags.url else {
        anyhow::bail!(
            "`lab check` needs the ingress URL\nhelp: run `cargo xtask lab check {} --url http://127.0.0.1:8080`",
            flags.stage
        );
    };
    if !(0.0..1.0).contains(&flags.max_error_rate) {
        anyhow::bail!(
            "--max-error-rate must be within [0, 1), found {}\nhelp: pass e.g. `--max-error-rate 0.01`",
            flags.max_error_rate
        );
    }
    let lab = LabDefinition::load_default()?;
    let stage = lab.stage(&flags.stage)?;
    // Only the stage's routing and assertions matter here, so the models' hostPaths are left as written. Resolved
    // (and so checked) before any request, the metadata's included.
    let plan = StagePlan::resolve(&lab, stage, None)?;
    let image = super::read_image(flags.image.as_deref())?;
    let body = checks::payload_body(url, flags.payload.choice(), &image, *flags.request_timeout).await?;
    let mut config = CheckConfig::new(url, body);
    config.concurrency = flags.concurrency as usize;
    config.request_timeout = *flags.request_timeout;
    config.max_error_rate = flags.max_error_rate;
    config.settle_timeout = flags.settle_timeout.map(Into::into);
    config.assertion_timeout = *flags.deadline;
    config.progress = checks::progress::TerminalProgress::on_terminal();
    config.probe = flags.probe.choice();
    let started = SystemTime::now();
    let stage_report = checks::check_stage(&plan, &config)
        .await
        .with_context(|| format!("checking stage \"{}\" at {url}", stage.name))?;
    let report = RunReport::new(url.clone(), started, vec![stage_report]);
    super::reports::print_and_write(settings, &flags.reports, &report)
}
