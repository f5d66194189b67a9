//! Errors that callers branch on, and the mapping from outcomes to exit codes.
//!
//! Most failures travel as `anyhow::Error` with one context line per layer. The types here are the ones a caller
//! (or `main`, choosing an exit code) needs to recognise: they carry the values a user needs to act on.

use std::fmt;

/// What a command that ran to completion found: the lab is as required, or it is not.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandStatus {
    /// Everything the command checked or did is as required (exit 0).
    Ok,
    /// The lab or cluster is not in the required state, or an assertion failed (exit 1).
    NotReady,
}

impl CommandStatus {
    /// The process exit code for this status.
    pub fn exit_code(self) -> u8 {
        match self {
            CommandStatus::Ok => 0,
            CommandStatus::NotReady => 1,
        }
    }
}

/// Failures that mean something specific to the caller; all others are plain `anyhow` errors.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The command exists but its work belongs to a later milestone.
    #[error("`{command}` is not implemented yet")]
    NotImplemented {
        /// The command as the user typed it, e.g. `lab predict`.
        command: String,
    },
    /// The lab or cluster is not in the state the command needs (maps to exit 1).
    #[error("{message}{}", Help(help))]
    NotReady {
        /// What is wrong, in one line.
        message: String,
        /// A command or step that fixes it.
        help: Option<String>,
    },
}

impl LabError {
    /// Shorthand for a [`LabError::NotReady`] with a `help:` line.
    pub fn not_ready(message: impl Into<String>, help: impl Into<String>) -> LabError {
        LabError::NotReady {
            message: message.into(),
            help: Some(help.into()),
        }
    }
}

/// An error and its sources on one line, joined by `: ` (reqwest hides the useful part, e.g. "connection
/// refused", in its sources). A source whose text the line already holds (many errors print their source in their
/// own message) is not repeated.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Formats an optional `help:` line on its own line (nothing when there is no help).
pub(crate) struct Help<'a>(pub(crate) &'a Option<String>);

impl fmt::Display for Help<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(help) => write!(f, "\nhelp: {help}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_is_one_line_of_every_source() {
        #[derive(Debug, thiserror::Error)]
        #[error("error sending request")]
        struct Outer(#[source] std::io::Error);
        let error = Outer(std::io::Error::other("connection refused"));
        assert_eq!(error_chain(&error), "error sending request: connection refused");
        // hyper's "client error (Connect)" repeats itself down the chain; each link is shown once.
        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect): {0}")]
        struct Repeating(#[source] std::io::Error);
        let error = Repeating(std::io::Error::other("tcp connect error"));
        assert_eq!(error_chain(&error), "client error (Connect): tcp connect error");
    }
}
