//! `lab stage NAME`: apply a stage (apply, prune, roll out), then assert it unless `--no-assert`, through the
//! ingress `lab up` recorded, reopened for this command ([`lab::lifecycle::stage::run_stage`]).

use lab::lifecycle::apply::AppliedStage;
use lab::lifecycle::ingress::Ingress;
use lab::lifecycle::stage::{StageProgress, StageTimeouts, open_recorded_ingress, run_stage};
use lab::lifecycle::up::Assertions;
use lab::output::to_json;
use lab::{CommandStatus, Format, Settings};

use crate::CommandResult;
use crate::flags::StageFlags;

/// Applies the stage and prints what changed, then asserts it through the recorded ingress.
pub(crate) async fn run(settings: &Settings, flags: &StageFlags) -> CommandResult {
    let assertions = if flags.no_assert {
        Assertions::Skip
    } else {
        Assertions::Run
    };
    let printer = Printer { settings };
    let timeouts = StageTimeouts {
        rollout: flags.rollout.deadline(),
        serve: *flags.serve.serve_timeout,
    };
    let outcome = run_stage(
        settings,
        &flags.name,
        timeouts,
        assertions,
        flags.probe.choice(),
        &printer,
    )
    .await?;
    match outcome.checks {
        Some(report) => super::reports::print_and_write(settings, &flags.reports, &report),
        None => Ok(CommandStatus::Ok),
    }
}

/// The recorded ingress, usable for as long as the returned value lives (a port-forward is reopened, a dead
/// tunnel restarted); says on stderr what it had to do. Without one recorded, a not-ready error with `missing`
/// and its `help`.
pub(crate) async fn open_ingress(settings: &Settings, missing: &str, help: &str) -> anyhow::Result<Ingress> {
    open_recorded_ingress(settings, missing, help, &|note| eprintln!("note: {note}")).await
}

/// What `lab stage` and `lab reset` print while they run: the ingress notes and the wait for the gateway on stderr,
/// the applied changes on stdout (kubectl's words, or JSON).
pub(crate) struct Printer<'a> {
    pub(crate) settings: &'a Settings,
}

impl StageProgress for Printer<'_> {
    fn ingress_note(&self, text: &str) {
        eprintln!("note: {text}");
    }

    fn applied(&self, applied: &AppliedStage) {
        match self.settings.format {
            Format::Json => println!("{}", to_json(applied)),
            Format::Human => {
                for change in &applied.changes {
                    println!("{}", change.line());
                }
                for name in &applied.restarted {
                    println!("deployment/{name} restarted (sidecar injection)");
                }
                println!("stage \"{}\" is applied", applied.stage);
            }
        }
    }

    fn note(&self, text: &str) {
        eprintln!("  … {text}");
    }
}
