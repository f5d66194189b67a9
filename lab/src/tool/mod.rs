//! The one place that starts external processes (`minikube`, `istioctl`, `python`, `pip`, `cargo`).
//!
//! Every call states its intent ("read the minikube profile list"), runs through duct with an argument vector
//! (never a shell string), and on failure reports the full command line, the exit status and the end of stderr:
//! duct's own error names the command but drops what the tool said, which is usually the part that matters.

pub mod istioctl;
pub mod minikube;
mod signal;

pub(crate) use signal::sudo_without_password;
pub use signal::{Signal, signal_process_group};

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::error::Help;

/// How many trailing lines of stderr an error shows.
const STDERR_TAIL_LINES: usize = 20;

/// An external command to run: program, arguments, extra environment, and why we run it.
#[derive(Debug, Clone)]
pub struct ToolCommand {
    intent: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
    install_help: Option<String>,
}

/// What a finished command printed and how it exited.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    /// The exit code, or `None` when a signal ended the process.
    pub code: Option<i32>,
    /// Everything written to stdout, lossily decoded as UTF-8.
    pub stdout: String,
    /// Everything written to stderr, lossily decoded as UTF-8.
    pub stderr: String,
}

impl ToolOutput {
    /// True when the process exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Why running an external tool did not give a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The program is not on `PATH` (or the given path does not exist).
    #[error("failed to {intent}: `{program}` was not found{}", Help(.help))]
    NotFound {
        /// Why we tried to run it.
        intent: String,
        /// The program as we tried to start it.
        program: String,
        /// How to install it, when known.
        help: Option<String>,
    },
    /// The program could not be started for another reason (permissions, not an executable).
    #[error("failed to {intent}: could not start `{command_line}`: {source}")]
    Spawn {
        /// Why we tried to run it.
        intent: String,
        /// The full command line.
        command_line: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("failed to {intent}: `{command_line}` {status}{}", stderr_block(.stderr_tail))]
    Failed {
        /// Why we ran it.
        intent: String,
        /// The full command line.
        command_line: String,
        /// "exited with code 3" or "was killed by a signal".
        status: String,
        /// The last lines of stderr (or stdout when stderr was empty).
        stderr_tail: String,
    },
    /// The program did not finish within its deadline and was killed.
    #[error("failed to {intent}: `{command_line}` did not finish within {}s and was stopped", .timeout.as_secs())]
    TimedOut {
        /// Why we ran it.
        intent: String,
        /// The full command line.
        command_line: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The program's output was not in the format we expect.
    #[error(
        "failed to {intent}: `{command_line}` printed output canary-lab cannot read ({detail})\noutput was:\n{output}"
    )]
    Malformed {
        /// Why we ran it.
        intent: String,
        /// The full command line.
        command_line: String,
        /// What was wrong with it, e.g. the JSON parser's message.
        detail: String,
        /// The output, shortened to its first lines.
        output: String,
    },
}

impl ToolCommand {
    /// A command running `program` with `args`, for the stated `intent` (a verb phrase: "read the minikube version").
    pub fn new(intent: &str, program: &Path, args: &[&str]) -> ToolCommand {
        ToolCommand {
            intent: intent.to_string(),
            program: program.to_path_buf(),
            args: args.iter().map(OsString::from).collect(),
            env: Vec::new(),
            timeout: Duration::from_secs(120),
            install_help: None,
        }
    }

    /// Adds one more argument.
    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> ToolCommand {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Sets an environment variable for the child.
    #[must_use]
    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> ToolCommand {
        self.env.push((name.into(), value.as_ref().to_os_string()));
        self
    }

    /// Sets how long the command may run before it is killed (default two minutes).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> ToolCommand {
        self.timeout = timeout;
        self
    }

    /// Sets the `help:` line of the error when the program is not found (how to install it).
    #[must_use]
    pub fn install_help(mut self, help: &str) -> ToolCommand {
        self.install_help = Some(help.to_string());
        self
    }

    /// The command line as a user could paste it into a shell.
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.as_os_str())
            .chain(self.args.iter().map(OsString::as_os_str))
            .map(|part| shell_quote(&part.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs the command with output captured and returns it whatever the exit code.
    pub fn output(&self) -> Result<ToolOutput, ToolError> {
        tracing::debug!(command = %self.command_line(), intent = %self.intent, "running");
        let handle = self.expression().stdout_capture().stderr_capture().unchecked().start();
        let handle = match handle {
            Ok(handle) => handle,
            Err(error) => return Err(self.spawn_error(error)),
        };
        let finished = match handle.wait_timeout(self.timeout) {
            Ok(finished) => finished.cloned(),
            Err(error) => return Err(self.spawn_error(error)),
        };
        let Some(output) = finished else {
            let _ = handle.kill();
            return Err(ToolError::TimedOut {
                intent: self.intent.clone(),
                command_line: self.command_line(),
                timeout: self.timeout,
            });
        };
        let result = ToolOutput {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        tracing::debug!(command = %self.command_line(), code = ?result.code, "finished");
        Ok(result)
    }

    /// Runs the command and fails unless it exits 0.
    pub fn run(&self) -> Result<ToolOutput, ToolError> {
        let output = self.output()?;
        if output.success() {
            Ok(output)
        } else {
            Err(self.failed(&output))
        }
    }

    /// Runs the command with stdout and stderr passed through to ours (for long, chatty tools such as `cargo test`).
    pub fn run_inherited(&self) -> Result<(), ToolError> {
        tracing::debug!(command = %self.command_line(), intent = %self.intent, "running (inherited output)");
        let output = match self.expression().unchecked().run() {
            Ok(output) => output,
            Err(error) => return Err(self.spawn_error(error)),
        };
        if output.status.success() {
            Ok(())
        } else {
            Err(ToolError::Failed {
                intent: self.intent.clone(),
                command_line: self.command_line(),
                status: describe_status(output.status.code()),
                stderr_tail: String::new(),
            })
        }
    }

    /// Starts the command in the background with stdout and stderr appended to `log_path`, in a process group of
    /// its own: a Ctrl-C in the terminal stops the command that started it, not this long-lived process (the
    /// caller records its pid and stops it explicitly, as `lab down --all` does with the tunnel).
    pub fn spawn_logged(&self, log_path: &Path) -> Result<duct::Handle, ToolError> {
        tracing::debug!(command = %self.command_line(), log = %log_path.display(), "starting in the background");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(|source| ToolError::Spawn {
                intent: self.intent.clone(),
                command_line: self.command_line(),
                source,
            })?;
        let log_for_stderr = log.try_clone().map_err(|source| ToolError::Spawn {
            intent: self.intent.clone(),
            command_line: self.command_line(),
            source,
        })?;
        self.expression()
            .stdin_null()
            .stdout_file(log)
            .stderr_file(log_for_stderr)
            .before_spawn(|command| {
                std::os::unix::process::CommandExt::process_group(command, 0);
                Ok(())
            })
            .unchecked()
            .start()
            .map_err(|error| self.spawn_error(error))
    }

    /// The error for a non-zero exit, with the end of stderr (or of stdout when stderr is empty).
    pub fn failed(&self, output: &ToolOutput) -> ToolError {
        let text = if output.stderr.trim().is_empty() {
            &output.stdout
        } else {
            &output.stderr
        };
        ToolError::Failed {
            intent: self.intent.clone(),
            command_line: self.command_line(),
            status: describe_status(output.code),
            stderr_tail: tail_lines(text, STDERR_TAIL_LINES),
        }
    }

    /// Parses `text` (this command's output) as JSON into `T`, or a [`ToolError::Malformed`] showing the output.
    pub fn parse_json<T: DeserializeOwned>(&self, text: &str) -> Result<T, ToolError> {
        serde_json::from_str(text.trim()).map_err(|error| self.malformed(&error.to_string(), text))
    }

    /// A [`ToolError::Malformed`] for this command.
    pub fn malformed(&self, detail: &str, output: &str) -> ToolError {
        let shown: String = output.lines().take(30).collect::<Vec<_>>().join("\n");
        ToolError::Malformed {
            intent: self.intent.clone(),
            command_line: self.command_line(),
            detail: detail.to_string(),
            output: if shown.trim().is_empty() {
                "(nothing)".to_string()
            } else {
                shown
            },
        }
    }

    fn expression(&self) -> duct::Expression {
        // duct runs a `Path` as a path ("./minikube"); a bare name must go as a string to be looked up on PATH.
        let bare_name = self.program.components().count() == 1 && !self.program.is_absolute();
        #[allow(clippy::disallowed_methods)] // The one place that may start processes.
        let mut expression = if bare_name {
            duct::cmd(self.program.as_os_str().to_os_string(), &self.args)
        } else {
            duct::cmd(&self.program, &self.args)
        };
        for (name, value) in &self.env {
            expression = expression.env(name, value);
        }
        expression
    }

    fn spawn_error(&self, error: io::Error) -> ToolError {
        match error.kind() {
            io::ErrorKind::NotFound => ToolError::NotFound {
                intent: self.intent.clone(),
                program: self.program.display().to_string(),
                help: self.install_help.clone(),
            },
            _ => ToolError::Spawn {
                intent: self.intent.clone(),
                command_line: self.command_line(),
                source: error,
            },
        }
    }
}

/// "exited with code N" or "was killed by a signal".
fn describe_status(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("exited with code {code}"),
        None => "was killed by a signal".to_string(),
    }
}

/// The last `count` lines of `text`.
fn tail_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let start = lines.len().saturating_sub(count);
    lines[start..].join("\n")
}

fn stderr_block(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("\n{tail}")
    }
}

/// Quotes one word for a POSIX shell when it needs it.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_quotes_what_a_shell_would_split() {
        let command = ToolCommand::new("test", Path::new("minikube"), &["start", "--extra-config=a b"]);
        assert_eq!(command.command_line(), "minikube start '--extra-config=a b'");
    }

    #[test]
    fn missing_program_is_not_found_with_the_intent() {
        let command = ToolCommand::new(
            "read the version",
            Path::new("/nonexistent/canary-lab-tool"),
            &["version"],
        );
        let error = command.output().unwrap_err();
        assert!(matches!(error, ToolError::NotFound { .. }), "{error:?}");
        assert!(error.to_string().contains("failed to read the version"), "{error}");
    }

    #[test]
    fn a_signal_reaches_the_whole_group_and_an_empty_group_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("group.log");
        // The leader runs its trap only once the `sleep` it waits for has ended: quickly only if the sleep got the
        // signal as well.
        let script = "trap 'echo leader got it' TERM; sleep 60; echo sleep ended";
        let handle = ToolCommand::new("sleep", Path::new("sh"), &["-c", script])
            .spawn_logged(&log)
            .unwrap();
        let pgid = handle.pids()[0];
        let started = std::time::Instant::now();
        // Until the shell runs the sleep (its trap is set by then), bounded.
        let sleeping = || {
            std::fs::read_to_string(format!("/proc/{pgid}/task/{pgid}/children"))
                .unwrap_or_default()
                .split_whitespace()
                .any(|child| {
                    std::fs::read_to_string(format!("/proc/{child}/comm")).is_ok_and(|comm| comm.trim() == "sleep")
                })
        };
        while !sleeping() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the shell never started its sleep"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(signal_process_group(pgid, Signal::Terminate).unwrap());
        let output = handle.wait().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the sleep did not get the signal"
        );
        assert_eq!(output.status.code(), Some(0));
        // The shell reports its sleep "Terminated", then runs its trap.
        let log = std::fs::read_to_string(&log).unwrap();
        assert!(log.ends_with("leader got it\nsleep ended\n"), "{log}");
        assert!(
            !signal_process_group(pgid, Signal::Terminate).unwrap(),
            "no process is left in the group"
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
    }
}
