//! Processes `lab` acts on as an operator would in a shell: signalling a background command's process group (`kill`),
//! and asking whether `sudo` works without a password.

use std::path::Path;
use std::time::Duration;

use super::{ToolCommand, ToolError, ToolOutput};

/// Runs `sudo -n true`, which exits 0 only when sudo works without a password prompt (as `minikube tunnel` needs).
pub(crate) fn sudo_without_password() -> Result<ToolOutput, ToolError> {
    ToolCommand::new("check password-less sudo", Path::new("sudo"), &["-n", "true"])
        .timeout(Duration::from_secs(10))
        .output()
}

/// A signal `lab` sends to a process it started in the background (`minikube tunnel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT, what Ctrl-C sends: the one `minikube tunnel` cleans up on.
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// SIGKILL, which no process can catch.
    Kill,
}

impl Signal {
    /// `SIGINT`, `SIGTERM` or `SIGKILL`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
            Signal::Kill => "SIGKILL",
        }
    }

    /// The name `kill -s` takes.
    fn kill_name(self) -> &'static str {
        match self {
            Signal::Interrupt => "INT",
            Signal::Terminate => "TERM",
            Signal::Kill => "KILL",
        }
    }
}

/// Sends `signal` to every process of the process group `pgid` (`kill -s INT -- -PGID`), as Ctrl-C in a terminal
/// reaches every process of its foreground group: [`ToolCommand::spawn_logged`] starts a command as the leader of
/// a group of its own, so the group's id is the pid it recorded, and helpers the command started (minikube's
/// `ssh -L` tunnels) get the signal too. Returns false when no process of that group was left to signal.
pub fn signal_process_group(pgid: u32, signal: Signal) -> Result<bool, ToolError> {
    let group = format!("-{pgid}");
    let output = ToolCommand::new(
        &format!("send {} to process group {pgid}", signal.name()),
        Path::new("kill"),
        &["-s", signal.kill_name(), "--", &group],
    )
    .timeout(Duration::from_secs(10))
    .output()?;
    tracing::debug!(pgid, signal = signal.name(), code = ?output.code, stderr = %output.stderr.trim(), "signalled");
    Ok(output.success())
}
