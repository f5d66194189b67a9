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

    /// Runs the CLI with its stdout and stderr on a pseudo-terminal and colour allowed (`NO_COLOR` empty), as a
    /// person at a terminal sees it; returns the exit code and what the terminal received (escape codes included).
    pub fn run_in_terminal(&self) -> (i32, String) {
        use std::io::Read;
        let (leader, follower) = open_terminal();
        let mut child = self
            .process()
            .env("NO_COLOR", "")
            // As a terminal emulator sets it (indicatif draws nothing where TERM is unset or `dumb`).
            .env("TERM", "xterm-256color")
            .stderr(follower.try_clone().expect("a second handle on the terminal"))
            .stdout(follower)
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

    /// Starts the CLI with stdin, stdout and stderr on a pseudo-terminal (as [`Cli::run_in_terminal`] sets it up),
    /// for a test that reads the screen while it runs and types keys into it.
    pub fn spawn_in_terminal(&self) -> crate::terminal::TerminalSession {
        let (leader, follower) = open_terminal();
        let process = self
            .process()
            .env("NO_COLOR", "")
            .env("TERM", "xterm-256color")
            .stdin(follower.try_clone().expect("a handle on the terminal for stdin"))
            .stderr(follower.try_clone().expect("a handle on the terminal for stderr"))
            .stdout(follower);
        crate::terminal::TerminalSession::start(process, leader, (24, 120))
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

/// A pseudo-terminal of 120 × 24 (a fresh one is 0 × 0, and a status line drawn into no columns draws nothing): its
/// leader and follower ends, both close-on-exec from the start, so a process another test spawns meanwhile cannot
/// inherit the follower and keep the terminal open after our child exits (`openpty` cannot do that atomically).
fn open_terminal() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: plain libc calls on descriptors created here; each result is checked before it is used, and each
    // descriptor is owned by exactly one OwnedFd.
    unsafe {
        let leader = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(leader >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let leader_fd = OwnedFd::from_raw_fd(leader);
        assert_eq!(libc::grantpt(leader), 0, "grantpt: {}", std::io::Error::last_os_error());
        assert_eq!(
            libc::unlockpt(leader),
            0,
            "unlockpt: {}",
            std::io::Error::last_os_error()
        );
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(leader, name.as_mut_ptr(), name.len()), 0, "ptsname_r");
        let follower = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(
            follower >= 0,
            "opening the terminal's follower: {}",
            std::io::Error::last_os_error()
        );
        let size = libc::winsize {
            ws_row: 24,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        assert_eq!(libc::ioctl(leader, libc::TIOCSWINSZ, &size), 0, "TIOCSWINSZ");
        (leader_fd, OwnedFd::from_raw_fd(follower))
    }
}
