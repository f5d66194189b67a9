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

/// `1 warning`, `2 warnings`, `0 warnings`: a count with its noun, plural when the count is not one (for the
/// lab's regular nouns).
pub fn plural(count: impl Into<u64>, noun: &str) -> String {
    match count.into() {
        1 => format!("1 {noun}"),
        count => format!("{count} {noun}s"),
    }
}

/// The columns a cell takes on a terminal: its widest line, colour codes not counted.
fn display_width(cell: &str) -> usize {
    cell.lines().map(console::measure_text_width).max().unwrap_or(0)
}

/// Renders rows as a left-aligned table with a header; the last column is not padded. Cells may be coloured
/// ([`paint`]): widths count what a terminal shows, not the escape codes.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|title| display_width(title)).collect();
    for row in rows {
        for (index, cell) in row.iter().enumerate().take(columns) {
            widths[index] = widths[index].max(display_width(cell));
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
                    let padding = widths[index].saturating_sub(display_width(&cell));
                    format!("{cell}{}", " ".repeat(padding))
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

    #[test]
    fn counts_read_as_words() {
        assert_eq!(plural(1u64, "warning"), "1 warning");
        assert_eq!(plural(0u64, "warning"), "0 warnings");
        assert_eq!(plural(3u32, "stage"), "3 stages");
    }

    #[test]
    fn colour_codes_take_no_column() {
        // Before, the escape codes counted as width: a painted "ok" pushed every other row's columns right.
        let rows = vec![
            vec![paint("ok", "32", true), "minikube".to_string(), "v1.30.1".to_string()],
            vec!["skip".to_string(), "api".to_string(), "not checked".to_string()],
        ];
        let text = table(&["status", "check", "found"], &rows);
        let shown = console::strip_ansi_codes(&text).to_string();
        assert_eq!(
            shown,
            "status  check     found\nok      minikube  v1.30.1\nskip    api       not checked\n"
        );
    }
}
