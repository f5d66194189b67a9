//! The canary-lab command line: parse flags, set up logging, call the `lab` library, choose the exit code.
//!
//! It is a library so that the integration tests can build the very same CLI as a binary of their own.
//! Exit codes: 0 ok, 1 the lab or cluster is not in the required state (or an assertion failed),
//! 2 usage or internal error.

mod commands;
mod flag_values;
pub mod flags;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use lab::CommandStatus;

/// Parses the process arguments, runs the command and returns its exit code.
pub fn main() -> ExitCode {
    restore_sigpipe();
    let flags = match flags::Xtask::try_parse() {
        Ok(flags) => flags,
        Err(error) => {
            // clap prints help and version to stdout with exit 0, usage errors to stderr with exit 2.
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    init_logging(&flags.global);
    let json = matches!(flags.global.format, flags::FormatFlag::Json);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(commands::run(flags)));
    match result {
        Ok(status) => ExitCode::from(status.exit_code()),
        Err(error) => {
            let code = lab::lifecycle::exit_code::exit_code_for(&error);
            // An error in a file the lab reads (lab.toml, a manifest) shows the line, as rustc shows one; colour
            // only on a terminal without NO_COLOR, as the logs.
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
            let styled = !no_color && std::io::stderr().is_terminal();
            match lab::definition::diagnostic::render_error(&error, styled) {
                Some(rendered) => eprintln!("{rendered}"),
                None => eprintln!("{}", render_error(&error)),
            }
            if json {
                // With --format json stdout stays one JSON document, also when the command fails.
                println!("{}", error_json(&error, code));
            }
            ExitCode::from(code)
        }
    }
}

/// Rust ignores SIGPIPE, so a write to a closed pipe (`cargo xtask lab render | head`) is an error that `println!`
/// turns into a panic; the default action ends the process quietly instead, as it ends `cat` or `kubectl`.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists; it only resets one signal's action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// An error as `--format json` prints it on stdout: `{"error": {"message": …, "help": […], "exit_code": N}}`.
fn error_json(error: &anyhow::Error, exit_code: u8) -> String {
    let (messages, helps) = error_parts(error);
    let helps: Vec<String> = helps
        .iter()
        .map(|help| help.trim_start_matches("help:").trim().to_string())
        .collect();
    lab::output::to_json(&serde_json::json!({
        "error": {"message": messages.join(": "), "help": helps, "exit_code": exit_code}
    }))
}

/// An error as the user sees it: `error:` and each layer's message joined by `: ` (as anyhow's `{:#}` does), then
/// every `help:` line at the end, where a reader looks for what to do — wherever the layer that knew it put it.
fn render_error(error: &anyhow::Error) -> String {
    let (messages, helps) = error_parts(error);
    let mut rendered = format!("error: {}", messages.join(": "));
    for help in helps {
        rendered.push('\n');
        rendered.push_str(&help);
    }
    rendered
}

/// Each layer's message, once, and every `help:` line, once, in the order the chain gives them.
fn error_parts(error: &anyhow::Error) -> (Vec<String>, Vec<String>) {
    let mut messages: Vec<String> = Vec::new();
    let mut helps: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let (help_lines, message_lines): (Vec<&str>, Vec<&str>) =
            text.lines().partition(|line| line.trim_start().starts_with("help:"));
        for help in help_lines {
            let help = help.trim().to_string();
            if !helps.contains(&help) {
                helps.push(help);
            }
        }
        let message = message_lines.join("\n");
        if !message.trim().is_empty() && !messages.iter().any(|seen| seen.contains(message.trim())) {
            messages.push(message);
        }
    }
    (messages, helps)
}

/// Logs go to stderr; `RUST_LOG` wins over `-v`/`-q`; no ANSI colours off a terminal or with `NO_COLOR`.
fn init_logging(global: &flags::GlobalFlags) {
    let default_level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        // The libraries' own error logs (kube's "failed with error …") repeat what the error says; they show from -v.
        (false, 0) => "warn,kube_client=off,kube_runtime=off,hyper=off",
        (false, 1) => "info,lab=info",
        (false, _) => "debug,hyper=info,rustls=info,tower=info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    let ansi = !no_color && std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false);
    // At the default verbosity a log line reads like cargo's (`warning: message`), without a timestamp; -v and
    // RUST_LOG are for diagnosing, where the time and the level column matter.
    let _ = if global.verbose == 0 && std::env::var_os("RUST_LOG").is_none() {
        builder.event_format(CargoStyle).try_init()
    } else {
        builder.try_init()
    };
}

/// Log lines as cargo prints its diagnostics: `warning: message key=value`, no timestamp, no level column.
struct CargoStyle;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for CargoStyle
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "info",
            _ => "debug",
        };
        write!(writer, "{level}: ")?;
        context.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Keeps the status type in one place for the command modules.
pub(crate) type CommandResult = anyhow::Result<CommandStatus>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lines_move_to_the_end_of_the_error() {
        let cause = anyhow::anyhow!("failed to read kubeconfig: no such file");
        let error = cause.context("reading kubeconfig\nhelp: start the cluster with `minikube start`");
        assert_eq!(
            render_error(&error),
            "error: reading kubeconfig: failed to read kubeconfig: no such file\nhelp: start the cluster with `minikube start`"
        );
    }

    #[test]
    fn a_cause_repeated_in_its_context_is_shown_once() {
        let error = anyhow::anyhow!("boom").context("step failed");
        assert_eq!(render_error(&error), "error: step failed: boom");
    }
}
