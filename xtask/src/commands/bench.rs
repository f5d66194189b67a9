//! `cargo xtask bench`: install the test tools, build the tests crate's binaries (`lab-bench`, and `lab-cli` for the
//! stage-check group) in release mode, then run `lab-bench`.

use anyhow::Context;
use lab::CommandStatus;
use lab::tool::ToolCommand;

use crate::CommandResult;
use crate::flags::BenchFlags;

/// Builds and runs every benchmark group (or the ones named), printing the table of ratios.
pub(crate) fn run(flags: &BenchFlags) -> CommandResult {
    super::test::install_test_tools()?;
    // wrk is the probe group's baseline only.
    if flags.groups.is_empty() || flags.groups.iter().any(|group| group == "probe") {
        install_wrk()?;
    }
    // `lab-cli` too: the stage-check benchmark runs `lab check` as a process, from beside `lab-bench`.
    ToolCommand::new(
        "build the benchmarks",
        &super::test::cargo(),
        &[
            "build",
            "--quiet",
            "--release",
            "--package",
            "canary-lab-tests",
            "--bins",
        ],
    )
    .timeout(std::time::Duration::from_secs(3600))
    .run_inherited()
    .context("building the benchmarks")?;
    let mut command = ToolCommand::new(
        "run the benchmarks",
        &super::test::cargo(),
        &[
            "run",
            "--quiet",
            "--release",
            "--package",
            "canary-lab-tests",
            "--bin",
            "lab-bench",
            "--",
        ],
    )
    .timeout(std::time::Duration::from_secs(3600));
    for group in &flags.groups {
        command = command.arg(group);
    }
    command.run_inherited().context("running the benchmarks")?;
    Ok(CommandStatus::Ok)
}

/// `wrk` is the probe benchmark's baseline: install it from Debian when it is missing (as root), else say how.
fn install_wrk() -> anyhow::Result<()> {
    let on_path =
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("wrk").is_file()));
    if on_path {
        return Ok(());
    }
    let help = "help: install wrk (Debian: `sudo apt-get install wrk`), then run `cargo xtask bench` again";
    if !super::test::running_as_root() {
        anyhow::bail!("wrk, the probe benchmark's baseline, is not on PATH\n{help}");
    }
    eprintln!("installing wrk (the probe benchmark's baseline) with apt-get…");
    ToolCommand::new(
        "install wrk",
        std::path::Path::new("apt-get"),
        &["install", "-y", "--no-install-recommends", "wrk"],
    )
    .env("DEBIAN_FRONTEND", "noninteractive")
    .timeout(std::time::Duration::from_secs(600))
    .run()
    .context(help)?;
    Ok(())
}
