//! Writing a run's results to the files asked for with `--report`, `--junit` and `--html`.

use lab::report::{RunReport, Verdict, render_human, render_json, write_html, write_json, write_junit};
use lab::{CommandStatus, Format, Settings};

use crate::flags::ReportFlags;

/// Prints `report` on stdout (one JSON document, or the human tables), writes it to every file `flags` names, and
/// returns the status its verdict means.
pub(crate) fn print_and_write(
    settings: &Settings,
    flags: &ReportFlags,
    report: &RunReport,
) -> anyhow::Result<CommandStatus> {
    match settings.format {
        Format::Json => println!("{}", render_json(report)),
        Format::Human => print!("{}", render_human(report)),
    }
    write_reports(flags, report)?;
    Ok(status_for(report.verdict))
}

/// The exit status a run's verdict means: ok only when every assertion passed (a run that asserted nothing did
/// not pass).
pub(crate) fn status_for(verdict: Verdict) -> CommandStatus {
    match verdict {
        Verdict::Pass => CommandStatus::Ok,
        Verdict::Fail | Verdict::Inconclusive | Verdict::NotAsserted => CommandStatus::NotReady,
    }
}

/// Writes `report` to every file `flags` names, saying on stderr where each went.
pub(crate) fn write_reports(flags: &ReportFlags, report: &RunReport) -> anyhow::Result<()> {
    if let Some(path) = &flags.report {
        write_json(report, path)?;
        eprintln!("wrote the JSON report to {}", path.display());
    }
    if let Some(path) = &flags.junit {
        write_junit(report, path)?;
        eprintln!("wrote the JUnit report to {}", path.display());
    }
    if let Some(path) = &flags.html {
        write_html(report, path)?;
        eprintln!("wrote the HTML report to {}", path.display());
    }
    Ok(())
}
