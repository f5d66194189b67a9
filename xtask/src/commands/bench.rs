//! `cargo xtask bench`: install the test tools, then run the `lab-bench` binary in release mode.

use std::path::PathBuf;

use anyhow::Context;
use lab::CommandStatus;
use lab::tool::ToolCommand;

use crate::CommandResult;
use crate::flags::BenchFlags;

/// Builds and runs every benchmark group (or the ones named), printing the table of ratios.
pub(crate) fn run(flags: &BenchFlags) -> CommandResult {
    let workspace = super::test::workspace_root();
    let tools_dir = super::test::target_dir(&workspace).join("test-tools");
    super::test::install_python_tools(&workspace, &tools_dir)?;
    let cargo = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"));
    let mut command = ToolCommand::new(
        "run the benchmarks",
        &cargo,
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
