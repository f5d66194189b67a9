//! `lab up`: bring the lab up, printing each step with its duration; Ctrl-C stops it with the lock released.

use lab::lifecycle::bundle::VerifiedBundle;
use lab::lifecycle::models::ModelSource;
use lab::lifecycle::up::{Assertions, StepOutcome, StepRecord, UpOptions, UpProgress, up};
use lab::output::to_json;
use lab::report::{RunReport, Verdict, render_human};
use lab::{Format, LabError, Settings};

use crate::CommandResult;
use crate::flags::UpFlags;

/// Progress lines on stderr, so stdout keeps the result (and JSON stays clean).
struct StderrProgress;

impl UpProgress for StderrProgress {
    fn started(&self, step: &str) {
        eprintln!("→ {step}");
    }

    fn finished(&self, record: &StepRecord) {
        let word = record.outcome.words();
        eprintln!("  {} {word} ({:.1}s): {}", record.step, record.seconds, record.detail);
    }

    fn note(&self, text: &str) {
        eprintln!("  … {text}");
    }
}

/// Runs `lab up`.
pub(crate) async fn run(settings: &Settings, flags: &UpFlags) -> CommandResult {
    // Every file of a bundle is checked before anything else runs, let alone loads.
    let bundle = match &flags.bundle {
        Some(dir) => Some(VerifiedBundle::open(dir)?),
        None => None,
    };
    let mut options = UpOptions {
        istioctl: flags.istioctl.clone(),
        reinstall_istio: flags.reinstall_istio,
        istio_timeout: *flags.istio_timeout,
        rollout_timeout: flags.rollout.deadline(),
        export_timeout: *flags.export_timeout,
        serve_timeout: *flags.serve.serve_timeout,
        probe: flags.probe.choice(),
        models: flags
            .models
            .parse()
            .map_err(|error| anyhow::anyhow!("--models: {error}"))?,
        ingress: flags
            .ingress
            .parse()
            .map_err(|error| anyhow::anyhow!("--ingress: {error}"))?,
        last_stage: flags.stage.clone(),
        assertions: if flags.no_assert {
            Assertions::Skip
        } else {
            Assertions::Run
        },
        bundle: None,
    };
    if let Some(bundle) = bundle {
        if let Some(models) = bundle.models_dir() {
            if flags.models != "export" {
                anyhow::bail!(
                    "--models {} and --bundle: the bundle brings the models\nhelp: drop --models",
                    flags.models
                );
            }
            options.models = ModelSource::Host(models);
        }
        if flags.istioctl.is_some() {
            anyhow::bail!("--istioctl and --bundle: the bundle brings istioctl's archive\nhelp: drop --istioctl");
        }
        // A bundle without this machine's istioctl is refused here, before its images load.
        bundle.istio_archive_for(lab::istio::Platform::current()?)?;
        options.bundle = Some(bundle);
    }
    let started = std::time::SystemTime::now();
    let report = tokio::select! {
        report = up(settings, &options, &StderrProgress) => report?,
        _ = tokio::signal::ctrl_c() => {
            // Dropping the `up` future releases the lock and stops a port-forward; the active stage is only
            // recorded after a stage is complete, so the state stays consistent.
            return Err(LabError::not_ready(
                "interrupted: `lab up` stopped part-way",
                "run `cargo xtask lab up` again; it continues where the cluster is",
            )
            .into());
        }
    };
    let checks = RunReport::new(report.ingress_url.clone(), started, report.checks.clone());
    match settings.format {
        Format::Json => println!("{}", to_json(&report)),
        Format::Human => {
            let total: f64 = report.steps.iter().map(|step| step.seconds).sum();
            let changed = report
                .steps
                .iter()
                .filter(|step| step.outcome == StepOutcome::Done)
                .count();
            let summary = match changed {
                0 => "nothing to change".to_string(),
                count => format!("{} changed something", lab::output::plural(count as u64, "step")),
            };
            if !checks.stages.is_empty() {
                print!("{}", render_human(&checks));
            }
            let (state, proof) = match report.verdict {
                Verdict::Pass => ("is up", ""),
                Verdict::NotAsserted => ("is up", "; its assertions did not run (--no-assert)"),
                Verdict::Fail | Verdict::Inconclusive => ("is NOT as its stage says", ""),
            };
            println!(
                "the lab {state} at stage \"{}\": {} (via {}){proof}; {summary}, {total:.1}s",
                report.active_stage, report.ingress_url, report.ingress_kind
            );
        }
    }
    super::reports::write_reports(&flags.reports, &checks)?;
    // The lab's verdict, not only this run's checks: a stage resumed as asserted before is a pass, and a run with
    // `--no-assert` (the only way `lab up` asserts nothing) succeeds without claiming one.
    let status = match (report.verdict, flags.no_assert) {
        (Verdict::NotAsserted, true) => lab::CommandStatus::Ok,
        (verdict, _) => super::reports::status_for(verdict),
    };
    Ok(status)
}
