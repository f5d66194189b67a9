//! Dispatch: turn flags into `lab` settings and call the command's module.

mod bench;
mod bundle;
mod check;
mod doctor;
mod down;
mod handout;
mod istio;
mod predict;
mod render;
mod reports;
mod reset;
mod stage;
mod stages;
mod status;
mod test;
mod tour;
mod tour_view;
mod up;
mod verify;
mod watch;

use std::path::Path;

use anyhow::Context;
use lab::traffic::payload::DEFAULT_IMAGE;
use lab::{Format, Settings};

use crate::CommandResult;
use crate::flags::{BundleCommand, FormatFlag, GlobalFlags, IstioCommand, LabCommand, TopCommand, Xtask};

/// Runs the parsed command.
pub(crate) async fn run(flags: Xtask) -> CommandResult {
    let settings = settings_from(&flags.global)?;
    match flags.command {
        TopCommand::Lab(LabCommand::Doctor) => doctor::run(&settings).await,
        TopCommand::Lab(LabCommand::Up(up_flags)) => up::run(&settings, &up_flags).await,
        TopCommand::Lab(LabCommand::Stages) => stages::run(&settings),
        TopCommand::Lab(LabCommand::Stage(stage_flags)) => stage::run(&settings, &stage_flags).await,
        TopCommand::Lab(LabCommand::Reset(reset_flags)) => reset::run(&settings, &reset_flags).await,
        TopCommand::Lab(LabCommand::Check(check_flags)) => check::run(&settings, &check_flags).await,
        TopCommand::Lab(LabCommand::Verify(verify_flags)) => verify::run(&settings, &verify_flags).await,
        TopCommand::Lab(LabCommand::Watch(watch_flags)) => watch::run(&settings, &watch_flags).await,
        TopCommand::Lab(LabCommand::Tour(tour_flags)) => tour::run(&settings, &tour_flags).await,
        TopCommand::Lab(LabCommand::Bundle(BundleCommand::Create(create_flags))) => {
            bundle::create(&settings, &create_flags).await
        }
        TopCommand::Lab(LabCommand::Predict(predict_flags)) => predict::run(&settings, &predict_flags).await,
        TopCommand::Lab(LabCommand::Render(render_flags)) => render::run(&settings, &render_flags),
        TopCommand::Lab(LabCommand::Handout(handout_flags)) => handout::run(&settings, &handout_flags),
        TopCommand::Lab(LabCommand::Status) => status::run(&settings).await,
        TopCommand::Lab(LabCommand::Down(down_flags)) => down::run(&settings, &down_flags).await,
        TopCommand::Istio(IstioCommand::Fetch(fetch_flags)) => istio::run_fetch(&settings, &fetch_flags).await,
        TopCommand::Test(_) | TopCommand::Bench(_) if settings.format == Format::Json => Err(anyhow::anyhow!(
            "`cargo xtask {}` has no JSON output\nhelp: drop `--format json`; the test and bench reports are cargo's own",
            if matches!(flags.command, TopCommand::Test(_)) {
                "test"
            } else {
                "bench"
            }
        )),
        TopCommand::Test(test_flags) => test::run(&test_flags),
        TopCommand::Bench(bench_flags) => bench::run(&bench_flags),
    }
}

/// Resolves the global flags into `lab` settings (XDG defaults for the directories).
fn settings_from(global: &GlobalFlags) -> anyhow::Result<Settings> {
    let mut settings = Settings::with_defaults(&global.profile)?;
    settings.context = global.context.clone();
    if let Some(dir) = &global.state_dir {
        settings.state_dir = dir.clone();
    }
    if let Some(dir) = &global.cache_dir {
        settings.cache_dir = dir.clone();
    }
    settings.minikube_bin = global.minikube_bin.clone();
    settings.format = match global.format {
        FormatFlag::Human => Format::Human,
        FormatFlag::Json => Format::Json,
    };
    Ok(settings)
}

/// The bytes of the `--image` file, or the lab's Grace Hopper photo when none was given.
fn read_image(path: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match path {
        Some(path) => std::fs::read(path).with_context(|| format!("reading the image \"{}\"", path.display())),
        None => Ok(DEFAULT_IMAGE.to_vec()),
    }
}
