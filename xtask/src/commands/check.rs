//! `lab check STAGE --url URL`: only a stage's assertions, against an ingress URL given by hand (no cluster access;
//! attribution by the `x-model-version` header). Exit 0 when every assertion passes, 1 on a fail or inconclusive.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use lab::checks::{self, CheckConfig};
use lab::output::{table, to_json};
use lab::report::{RunReport, StageReport, Verdict};
use lab::stages::LabDefinition;
use lab::{CommandStatus, Format, Settings};

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
    let image = match &flags.image {
        Some(image) => image.clone(),
        None => lab::assets::assets_dir().join("images/grace_hopper.jpg"),
    };
    let mut config = CheckConfig::new(url, checks::raw_image_body(&image)?);
    config.concurrency = flags.concurrency as usize;
    config.request_timeout = Duration::from_millis(flags.timeout_ms);
    config.max_error_rate = flags.max_error_rate;
    config.settle_timeout = Duration::from_secs(flags.settle_timeout_s);
    config.assertion_timeout = Duration::from_secs(flags.deadline_s);
    let started_at = checks::rfc3339_utc(SystemTime::now());
    let stage_report = checks::check_stage(&lab, stage, &config)
        .await
        .with_context(|| format!("checking stage \"{}\" at {url}", stage.name))?;
    let report = RunReport {
        url: url.clone(),
        started_at,
        verdict: stage_report.verdict,
        stages: vec![stage_report],
    };
    match settings.format {
        Format::Json => println!("{}", to_json(&report)),
        Format::Human => print!("{}", human(&report.stages[0])),
    }
    match report.verdict {
        Verdict::Pass => Ok(CommandStatus::Ok),
        Verdict::Fail | Verdict::Inconclusive => Ok(CommandStatus::NotReady),
    }
}

/// A plain summary: the stage's verdict, then one row per assertion.
fn human(report: &StageReport) -> String {
    let rows: Vec<Vec<String>> = report
        .assertions
        .iter()
        .map(|assertion| {
            let versions: Vec<String> = assertion
                .versions
                .iter()
                .map(|stats| format!("{} {}", stats.version, stats.responses))
                .collect();
            vec![
                assertion.verdict.as_str().to_string(),
                assertion.name.clone(),
                assertion.requests.to_string(),
                versions.join(", "),
                assertion.message.clone(),
            ]
        })
        .collect();
    let mut text = format!(
        "stage {}: {} ({:.1}s)\n",
        report.stage,
        report.verdict.as_str(),
        report.duration_seconds
    );
    text.push_str(&table(&["verdict", "assertion", "requests", "responses", "why"], &rows));
    text
}
