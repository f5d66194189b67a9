//! Tidy: every Rust file opens with a `//!` summary (ARCHITECTURE.md, STYLE habit 2), the library's areas keep the
//! dependency rules ARCHITECTURE.md states (read from the `crate::` paths of each file), and no library file or
//! function outgrows the limits a reader can take in.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The library's files with their module path (`lab/src/traffic/checks/exact.rs` → `traffic::checks::exact`).
fn library_files() -> Vec<(String, PathBuf)> {
    let src = root().join("lab/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = relative
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|last| last == "mod" || last == "lib") {
                parts.pop();
            }
            (parts.join("::"), path)
        })
        .collect()
}

#[test]
fn every_rust_file_opens_with_a_module_summary() {
    let root = root();
    let mut files = Vec::new();
    for dir in ["lab/src", "xtask/src", "tests/src", "tests/tests"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 10, "found only {files:?}");
    let missing: Vec<String> = files
        .iter()
        .filter(|path| !std::fs::read_to_string(path).unwrap().starts_with("//! "))
        .map(|path| path.strip_prefix(root).unwrap().display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "these files need a `//!` summary as their first line: {missing:#?}"
    );
}

/// Code without comments, string literals and char literals (their text kept as blanks, lines kept), so that paths
/// and braces are read from code alone.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !is_ident(chars.get(i.wrapping_sub(1))) {
            // A raw string: r"…", r#"…"#, …
            let mut hashes = 0;
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.extend(chars[i..j.min(chars.len())].iter().map(|&c| blank(c)));
            i = j;
        } else if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            out.extend(chars[i..(j + 1).min(chars.len())].iter().map(|&c| blank(c)));
            i = j + 1;
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A char literal ('{', '\n', '\''); a lifetime ('a) has no closing quote two chars on.
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '\'' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            out.extend(chars[i..(j + 1).min(chars.len())].iter().map(|&c| blank(c)));
            i = j + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// The modules a file names through `crate::` paths, two segments deep (`traffic::stats`, `Settings`), with the
/// names inside `crate::{…}` groups expanded.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if is_ident(before.as_ref()) || before == Some('$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let item = item.trim().replace(' ', "");
                if !item.is_empty() {
                    found.insert(two_segments(&item));
                }
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            found.insert(two_segments(&rest[..end]));
        }
    }
    found
}

fn two_segments(path: &str) -> String {
    path.split("::")
        .filter(|part| !part.is_empty())
        .take(2)
        .collect::<Vec<_>>()
        .join("::")
}

/// The area of a module path: its first segment (`traffic::checks::exact` → `traffic`).
fn area(path: &str) -> &str {
    path.split("::").next().unwrap_or("")
}

/// Where `importer` (a file's module path) may not reach `imported` (`area::module` or a crate-root item), with the
/// rule's reason; `None` when it may.
fn broken_rule(importer: &str, imported: &str) -> Option<&'static str> {
    const SHARED: &[&str] = &[
        "error",
        "settings",
        "output",
        "http",
        "fs_atomic",
        "Settings",
        "Format",
        "LabError",
        "CommandStatus",
    ];
    let target = area(imported);
    match area(importer) {
        _ if target == area(importer) => None,
        "definition" if !["error", "LabError"].contains(&target) => {
            Some("definition is the lab as data: it imports nothing but error")
        }
        "report" if !["output", "fs_atomic", "error"].contains(&target) => {
            Some("report renders results: it imports only output, fs_atomic and error")
        }
        "tool" if !["error", "LabError"].contains(&target) => Some("tool starts processes: it imports only error"),
        "teaching" if !["definition", "report", "output", "fs_atomic", "error", "LabError"].contains(&target) => Some(
            "teaching reads the lab's definitions and renders them: it imports only definition, report, output, fs_atomic and error",
        ),
        "traffic" if ["lifecycle", "istio"].contains(&target) => {
            Some("traffic sends and judges requests: it never imports lifecycle or istio")
        }
        "traffic" if ["cluster::apply", "cluster::prune"].contains(&imported) => {
            Some("traffic never writes to the cluster")
        }
        "cluster" if ["lifecycle", "traffic", "istio", "report"].contains(&target) => {
            Some("cluster talks to Kubernetes: it never imports lifecycle, traffic, istio or report")
        }
        "istio" if ["lifecycle", "traffic", "report"].contains(&target) => {
            Some("istio never imports lifecycle, traffic or report")
        }
        "" | "error" | "settings" | "output" | "http" | "fs_atomic" if !SHARED.contains(&target) => {
            Some("the shared modules at the crate root import only each other")
        }
        importer_area if importer_area != "lifecycle" && target == "lifecycle" => {
            Some("only lifecycle imports lifecycle (and so only it touches the state directory)")
        }
        _ => None,
    }
}

#[test]
fn the_library_areas_keep_their_dependency_rules() {
    let files = library_files();
    assert!(files.iter().any(|(module, _)| module == "traffic::checks"), "{files:?}");
    let mut broken = Vec::new();
    for (module, path) in &files {
        let code = code_only(&std::fs::read_to_string(path).unwrap());
        for imported in crate_paths(&code) {
            if let Some(rule) = broken_rule(module, &imported) {
                broken.push(format!("{module} uses crate::{imported}: {rule}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "dependency rules broken (ARCHITECTURE.md, Invariants):\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_rules_see_what_they_forbid() {
    // The checker itself: a forbidden import in each form the code uses is found, an allowed one is not.
    let code = code_only(
        "use crate::lifecycle::state;\nuse crate::{Settings, traffic::stats};\n// crate::istio in a comment\nlet s = \"crate::istio\";\n",
    );
    let paths = crate_paths(&code);
    assert_eq!(
        paths,
        BTreeSet::from([
            "lifecycle::state".to_string(),
            "Settings".to_string(),
            "traffic::stats".to_string()
        ])
    );
    assert!(broken_rule("traffic::probe", "lifecycle::state").is_some());
    assert!(broken_rule("traffic::checks", "cluster::apply").is_some());
    assert!(broken_rule("traffic::references", "cluster::port_forward").is_none());
    assert!(broken_rule("definition::stages", "traffic::stats").is_some());
    assert!(broken_rule("report::human", "output").is_none());
    assert!(broken_rule("report", "traffic::stats").is_some());
    assert!(broken_rule("lifecycle::up", "traffic::checks").is_none());
    assert!(broken_rule("istio::install", "lifecycle::state").is_some());
    assert!(broken_rule("teaching::handout", "definition::plan").is_none());
    assert!(broken_rule("teaching::handout", "report::chart").is_none());
    for reaching_out in [
        "cluster::apply",
        "traffic::checks",
        "istio::install",
        "tool::minikube",
        "Settings",
    ] {
        assert!(
            broken_rule("teaching::handout", reaching_out).is_some(),
            "{reaching_out}"
        );
    }
}

/// The longest a library file may be, tests included.
const MAX_FILE_LINES: usize = 460;
/// The longest a library function may be.
const MAX_FUNCTION_LINES: usize = 120;

/// Each `fn` of `code` (comments and literals blanked) with its first line and length in lines.
fn functions(code: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let Some(at) = line.find("fn ") else { continue };
        if at > 0 && is_ident(line[..at].chars().last().as_ref()) {
            continue;
        }
        let name: String = line[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        let (mut depth, mut opened) = (0i64, false);
        for (offset, body_line) in lines[index..].iter().enumerate() {
            let text = if offset == 0 { &body_line[at..] } else { body_line };
            if !opened && text.trim_end().ends_with(';') {
                break;
            }
            for c in text.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if opened && depth <= 0 {
                found.push((name.clone(), index + 1, offset + 1));
                break;
            }
        }
    }
    found
}

#[test]
fn library_files_and_functions_stay_readable() {
    let mut too_long = Vec::new();
    for (_, path) in library_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let shown = path.strip_prefix(root()).unwrap().display().to_string();
        let lines = text.lines().count();
        if lines > MAX_FILE_LINES {
            too_long.push(format!("{shown}: {lines} lines (at most {MAX_FILE_LINES})"));
        }
        for (name, line, length) in functions(&code_only(&text)) {
            if length > MAX_FUNCTION_LINES {
                too_long.push(format!(
                    "{shown}:{line}: fn {name} has {length} lines (at most {MAX_FUNCTION_LINES})"
                ));
            }
        }
    }
    assert!(too_long.is_empty(), "split these (issue 13):\n{}", too_long.join("\n"));
}

#[test]
fn the_length_check_measures_functions() {
    let code = code_only(
        "fn short() {\n    let brace = '{';\n    let text = \"}}}\";\n}\n\nfn declared();\n\nfn long() {\n    if x {\n    }\n}\n",
    );
    let found = functions(&code);
    assert_eq!(found, vec![("short".to_string(), 1, 4), ("long".to_string(), 8, 4)]);
}
