//! `lab doctor`: print the preflight rows as a table or JSON.

use lab::lifecycle::preflight::{CheckStatus, run_doctor};
use lab::output::{paint, plural, table, to_json, use_colour};
use lab::{CommandStatus, Format, Settings};

use crate::CommandResult;

/// Runs the checks and prints them; exit 1 when any failed.
pub(crate) async fn run(settings: &Settings) -> CommandResult {
    let report = run_doctor(settings).await;
    match settings.format {
        Format::Json => println!("{}", to_json(&report.rows)),
        Format::Human => {
            let colour = use_colour();
            let rows: Vec<Vec<String>> = report
                .rows
                .iter()
                .map(|row| {
                    let (word, ansi) = match row.status {
                        CheckStatus::Ok => ("ok", "32"),
                        CheckStatus::Warn => ("warn", "33"),
                        CheckStatus::Fail => ("fail", "31"),
                        CheckStatus::Skip => ("skip", "2"),
                    };
                    let mut found = row.found.clone();
                    if let Some(fix) = &row.fix {
                        found.push_str(&format!("\n  fix: {fix}"));
                    }
                    let status = format!("{word:<4}");
                    vec![paint(&status, ansi, colour), row.check.to_string(), found]
                })
                .collect();
            // Multi-line cells: indent continuation lines under the last column.
            let text = table(&["status", "check", "found"], &rows);
            print!("{}", indent_continuations(&text));
            let failures = report.rows.iter().filter(|row| row.status == CheckStatus::Fail).count();
            let warnings = report.rows.iter().filter(|row| row.status == CheckStatus::Warn).count();
            match failures {
                0 => println!(
                    "\nready for `cargo xtask lab up` ({})",
                    plural(warnings as u64, "warning")
                ),
                _ => println!(
                    "\n{} failed, {}: fix the rows marked fail",
                    plural(failures as u64, "check"),
                    plural(warnings as u64, "warning")
                ),
            }
        }
    }
    Ok(if report.has_failures() {
        CommandStatus::NotReady
    } else {
        CommandStatus::Ok
    })
}

/// Lines inside a cell that start with "  fix:" get the width of the first two columns as indent.
fn indent_continuations(text: &str) -> String {
    let header = text.lines().next().unwrap_or_default();
    let indent = header.find("found").unwrap_or(0);
    text.lines()
        .map(|line| {
            if line.starts_with("  fix:") {
                format!("{}{}", " ".repeat(indent), line.trim_start())
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
