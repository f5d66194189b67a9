//! Runs the canary-lab CLI (`lab-cli`, the same code as `cargo xtask`) as a process with a controlled environment.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::process::Process;

/// What a CLI run printed and how it exited.
#[derive(Debug)]
pub struct CliOutput {
    /// The exit code.
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl CliOutput {
    /// stdout as JSON (`--format json`); panics showing stdout and stderr when it is not.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}):\n{}\n{}", self.stdout, self.stderr))
    }
}

/// A CLI invocation being prepared: isolated XDG dirs, a `PATH` that starts with the fake tools, `NO_COLOR`.
pub struct Cli {
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    path_prefix: Vec<PathBuf>,
    home: tempfile::TempDir,
}

impl Cli {
    /// `lab-cli ARGS…` with a fresh home, XDG dirs inside it and no kubeconfig.
    pub fn new(args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Cli {
        let home = tempfile::tempdir().expect("temp home");
        Cli {
            args: args.into_iter().map(|arg| arg.as_ref().to_os_string()).collect(),
            env: Vec::new(),
            path_prefix: Vec::new(),
            home,
        }
    }

    /// `lab-cli --profile PROFILE --state-dir STATE_DIR ARGS…` as a user of one lab runs it, run after run: the fake
    /// tools first on `PATH` and `kubeconfig` as `KUBECONFIG` (the state dir is what carries one run to the next).
    pub fn for_lab(
        profile: &str,
        state_dir: &Path,
        tools: &crate::fake_tools::FakeTools,
        kubeconfig: &Path,
        args: impl IntoIterator<Item = impl AsRef<OsStr>>,
    ) -> Cli {
        let mut all: Vec<OsString> = vec![
            "--profile".into(),
            profile.into(),
            "--state-dir".into(),
            state_dir.into(),
        ];
        all.extend(args.into_iter().map(|arg| arg.as_ref().to_os_string()));
        Cli::new(all).fake_tools(tools).kubeconfig(kubeconfig)
    }

    /// Puts the fake tools' `bin/` first on `PATH` and points them at their scripts.
    #[must_use]
    pub fn fake_tools(mut self, tools: &crate::fake_tools::FakeTools) -> Cli {
        self.path_prefix.push(tools.bin_dir());
        self.env.push(("FAKE_TOOLS_DIR".into(), tools.dir().into()));
        self
    }

    /// Sets `name` to `value` in the CLI's environment.
    #[must_use]
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cli {
        self.env.push((name.as_ref().into(), value.as_ref().into()));
        self
    }

    /// Uses `path` as `KUBECONFIG`.
    #[must_use]
    pub fn kubeconfig(mut self, path: &Path) -> Cli {
        self.env.push(("KUBECONFIG".into(), path.into()));
        self
    }

    /// The temp home directory of this run.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Runs the CLI to completion.
    pub fn run(&self) -> CliOutput {
        let output = self.process().output().expect("run lab-cli");
        CliOutput {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs the CLI to completion on tokio's blocking threads, so that servers on the async runtime (a fake API, an
    /// asset server) keep answering it meanwhile.
    pub async fn run_async(self) -> CliOutput {
        tokio::task::spawn_blocking(move || self.run())
            .await
            .expect("running lab-cli on a blocking thread")
    }

    /// Starts the CLI without waiting (for tests that interrupt it); stdout and stderr are discarded.
    pub fn spawn(&self) -> std::process::Child {
        self.process()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start lab-cli")
    }

    /// Starts the CLI writing its stdout into `stdout` (e.g. a pipe the test closed) and its stderr to the test.
    pub fn spawn_with_stdout(&self, stdout: impl Into<std::process::Stdio>) -> std::process::Child {
        self.process()
            .stdout(stdout)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start lab-cli")
    }

    /// Runs the CLI with its stdout on a pseudo-terminal and colour allowed (`NO_COLOR` empty), as a person at a
    /// terminal sees it; returns the exit code and what the terminal received (escape codes included).
    pub fn run_in_terminal(&self) -> (i32, String) {
        use std::io::Read;
        use std::os::fd::{FromRawFd, OwnedFd};
        let (mut leader, mut follower) = (-1, -1);
        // SAFETY: openpty writes two new descriptors into the two ints; no name, termios or size is passed.
        let opened = unsafe {
            libc::openpty(
                &mut leader,
                &mut follower,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors were just opened by openpty and are owned here only.
        let (leader, follower) = unsafe { (OwnedFd::from_raw_fd(leader), OwnedFd::from_raw_fd(follower)) };
        let mut child = self
            .process()
            .env("NO_COLOR", "")
            .stdout(follower)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start lab-cli");
        // The builder that held the follower is gone, so only the child has it: read until the child's end closes
        // it (Linux then answers EIO), draining as it writes so it never blocks on a full terminal.
        let mut received = Vec::new();
        let mut leader = std::fs::File::from(leader);
        let mut buffer = [0u8; 4096];
        while let Ok(count) = leader.read(&mut buffer) {
            if count == 0 {
                break;
            }
            received.extend_from_slice(&buffer[..count]);
        }
        let status = child.wait().expect("wait for lab-cli");
        (
            status.code().unwrap_or(-1),
            String::from_utf8_lossy(&received).into_owned(),
        )
    }

    fn process(&self) -> Process {
        let home = self.home.path();
        let mut process = Process::new(crate::cargo_bin("lab-cli"))
            .args(&self.args)
            .env_clear()
            .env("HOME", home)
            .env("XDG_STATE_HOME", home.join("state"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("KUBECONFIG", home.join("no-kubeconfig"))
            .env("NO_COLOR", "1");
        // Only the fake tools and the system directories: nothing from the developer's own PATH (a real minikube).
        let mut path: Vec<PathBuf> = self.path_prefix.clone();
        path.extend(["/usr/bin", "/bin"].map(PathBuf::from));
        process = process.env("PATH", std::env::join_paths(path).expect("PATH"));
        for (name, value) in &self.env {
            process = process.env(name, value);
        }
        process
    }
}
