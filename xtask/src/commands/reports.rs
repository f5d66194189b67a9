//! Writing a run's results to the files asked for with `--report`, `--junit` and `--html`.

use lab::report::{RunReport, write_html, write_json, write_junit};

use crate::flags::ReportFlags;

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
