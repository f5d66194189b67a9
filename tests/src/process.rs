//! The one place in the tests crate that starts processes itself: the CLI under test, the real Envoy, Python,
//! Chromium, `kill`, and the benchmarks' baselines.
//!
//! The lab starts processes only through `lab::tool::ToolCommand` (clippy.toml bans `Command::new`, `spawn`,
//! `output` and `status` elsewhere). Tests need more than its captured output: the child itself (to signal it, to
//! read its pid, to stop a server when a test ends), a cleared environment, a working directory. [`Process`] is a
//! thin wrapper over [`std::process::Command`] that carries the crate's single exemption from those bans.

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};

/// A process being prepared, as [`std::process::Command`] prepares one.
#[derive(Debug)]
pub struct Process {
    command: Command,
}

#[allow(clippy::disallowed_methods)] // The tests crate's one choke point for starting processes (see the module doc).
impl Process {
    /// `program`, found on `PATH` unless it is a path.
    pub fn new(program: impl AsRef<OsStr>) -> Process {
        Process {
            command: Command::new(program),
        }
    }

    /// Adds one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Process {
        self.command.arg(arg);
        self
    }

    /// Adds arguments.
    #[must_use]
    pub fn args(mut self, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Process {
        self.command.args(args);
        self
    }

    /// Sets an environment variable for the child.
    #[must_use]
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Process {
        self.command.env(name, value);
        self
    }

    /// Starts the child with no environment but what [`Process::env`] sets.
    #[must_use]
    pub fn env_clear(mut self) -> Process {
        self.command.env_clear();
        self
    }

    /// Runs the child in `dir`.
    #[must_use]
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Process {
        self.command.current_dir(dir);
        self
    }

    /// The child's stdin.
    #[must_use]
    pub fn stdin(mut self, stdin: impl Into<Stdio>) -> Process {
        self.command.stdin(stdin);
        self
    }

    /// The child's stdout.
    #[must_use]
    pub fn stdout(mut self, stdout: impl Into<Stdio>) -> Process {
        self.command.stdout(stdout);
        self
    }

    /// The child's stderr.
    #[must_use]
    pub fn stderr(mut self, stderr: impl Into<Stdio>) -> Process {
        self.command.stderr(stderr);
        self
    }

    /// Runs the child to its end with stdout and stderr captured ([`Command::output`]).
    pub fn output(mut self) -> io::Result<Output> {
        self.command.output()
    }

    /// Runs the child to its end ([`Command::status`]).
    pub fn status(mut self) -> io::Result<ExitStatus> {
        self.command.status()
    }

    /// Starts the child and returns it ([`Command::spawn`]).
    pub fn spawn(mut self) -> io::Result<Child> {
        self.command.spawn()
    }
}
