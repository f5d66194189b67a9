//! The one style every command's output follows, for people and for machines.
//!
//! JSON output (`--format json`) is a single document on stdout with `snake_case` keys, statuses as lowercase
//! words, durations in seconds as numbers and no colour codes. Human output is plain aligned text; colour is used
//! only on a terminal and never when `NO_COLOR` is set.

use std::io::IsTerminal;

use serde::Serialize;

/// Whether stdout gets colour: a terminal, and `NO_COLOR` unset (https://no-color.org).
pub fn use_colour() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    !no_color && std::io::stdout().is_terminal()
}

/// Serialises `value` as pretty JSON for stdout.
pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("output types serialise to JSON")
}

/// Wraps `text` in an ANSI colour when `colour` is on.
pub fn paint(text: &str, ansi_code: &str, colour: bool) -> String {
    if colour {
        format!("\x1b[{ansi_code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// Renders rows as a left-aligned table with a header; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|title| title.chars().count()).collect();
    for row in rows {
        for (index, cell) in row.iter().enumerate().take(columns) {
            let width = cell.lines().map(|line| line.chars().count()).max().unwrap_or(0);
            widths[index] = widths[index].max(width);
        }
    }
    let mut text = String::new();
    let mut push_row = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let line: Vec<String> = cells
            .into_iter()
            .enumerate()
            .map(|(index, cell)| {
                if index == last {
                    cell
                } else {
                    format!("{cell:<width$}", width = widths[index])
                }
            })
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    };
    push_row(header.iter().map(|title| title.to_string()).collect());
    for row in rows {
        push_row(row.clone());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let rows = vec![vec!["ok".to_string(), "minikube".to_string(), "v1.30.1".to_string()]];
        let text = table(&["status", "check", "found"], &rows);
        assert_eq!(text, "status  check     found\nok      minikube  v1.30.1\n");
    }
}
