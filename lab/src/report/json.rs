//! The report as JSON (`--report PATH.json`), the documented machine-readable form.
//!
//! The shape is [`RunReport`]'s serde form, described by the JSON Schema in `assets/report.schema.json`
//! (draft 2020-12); the integration tests validate real output against it.

use std::path::Path;

use super::{RunReport, write_atomically};

/// The report as pretty JSON with a final newline.
pub fn render_json(report: &RunReport) -> String {
    format!("{}\n", crate::output::to_json(report))
}

/// Writes the JSON report to `path`, atomically.
pub fn write_json(report: &RunReport, path: &Path) -> anyhow::Result<()> {
    write_atomically(path, render_json(report).as_bytes(), "JSON report")
}
