//! Errors in the files the lab reads (`lab.toml`, the manifests) through the CLI, as a user sees them: rustc's form
//! (`error:`, ` --> file:line:col`, the line with a caret under the offending text, `help:`), exit 2, for TOML and
//! YAML alike; with `--format json` the same problems, located, in the error object.

use std::path::Path;

use canary_lab_tests::assert_contains;
use canary_lab_tests::cli::{Cli, CliOutput};

use crate::manifests::assets_copy;

/// Replaces `from` (which must be there, once) with `to` in `file` of the assets copy.
fn edit(assets: &Path, file: &str, from: &str, to: &str) {
    let path = assets.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches(from).count(), 1, "{file}: {from:?} once in\n{text}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

fn run(assets: &Path, args: &[&str]) -> CliOutput {
    Cli::new(args).env("CANARY_LAB_ASSETS", assets).run()
}

/// The 1-based line of `file` (in the assets copy) that holds `text`, so an instructor's edit above it moves the
/// expectation with it.
fn line_of(assets: &Path, file: &str, text: &str) -> usize {
    let content = std::fs::read_to_string(assets.join(file)).unwrap();
    content
        .lines()
        .position(|line| line.contains(text))
        .unwrap_or_else(|| panic!("no `{text}` in {file}"))
        + 1
}

/// What a diagnostic must show: where (` --> …file:line:col`), the line as written, a caret under `column`, a help.
struct Expected<'a> {
    title: &'a str,
    file: &'a str,
    line: usize,
    column: usize,
    source_line: &'a str,
    help: &'a str,
}

#[track_caller]
fn assert_diagnostic(output: &CliOutput, expected: &Expected<'_>) {
    let stderr = &output.stderr;
    assert_eq!(output.code, 2, "{output:#?}");
    assert!(!stderr.contains('\u{1b}'), "no colour off a terminal:\n{stderr}");
    assert_contains!(stderr, &format!("error: {}", expected.title));
    let lines: Vec<&str> = stderr.lines().collect();
    let location = format!("{}:{}:{}", expected.file, expected.line, expected.column);
    assert!(
        lines
            .iter()
            .any(|line| line.trim_start().starts_with("--> ") && line.ends_with(&format!("/{location}"))),
        "a ` --> …/{location}` line in:\n{stderr}"
    );
    let shown = format!("{} | {}", expected.line, expected.source_line);
    let at = lines
        .iter()
        .position(|line| line.trim_start() == shown)
        .unwrap_or_else(|| panic!("the source line `{shown}` in:\n{stderr}"));
    let (_, under) = lines[at + 1].split_once("| ").expect("a gutter under the source line");
    assert!(
        under.starts_with(&format!("{}^", " ".repeat(expected.column - 1))),
        "a caret at column {}:\n{}\n{}",
        expected.column,
        lines[at],
        lines[at + 1]
    );
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("help: ") && line.contains(expected.help)),
        "a `help: …{}` line in:\n{stderr}",
        expected.help
    );
}

#[test]
fn a_misspelt_field_is_shown_at_its_key() {
    let assets = assets_copy();
    edit(
        assets.path(),
        "manifests/virtualservice-70-30.yaml",
        "      weight: 30",
        "      wieght: 30",
    );
    let output = run(assets.path(), &["lab", "render", "--stage", "split-70-30"]);
    assert_diagnostic(
        &output,
        &Expected {
            title: "unknown field `wieght`",
            file: "manifests/virtualservice-70-30.yaml",
            line: 30,
            column: 7,
            source_line: "      wieght: 30",
            help: "did you mean `weight`?",
        },
    );
    assert_contains!(
        output.stderr,
        "VirtualService image-classifier (document 1), spec.http[0].route[1].wieght"
    );
    assert_contains!(output.stderr, "error: stage \"split-70-30\" is not valid (1 problem)");
    assert_eq!(output.stdout, "", "nothing rendered");
}

#[test]
fn weights_that_do_not_sum_to_100_are_shown_at_a_weight() {
    let assets = assets_copy();
    edit(
        assets.path(),
        "manifests/virtualservice-70-30.yaml",
        "weight: 70",
        "weight: 60",
    );
    let output = run(
        assets.path(),
        &[
            "lab",
            "check",
            "split-70-30",
            "--url",
            "http://127.0.0.1:1",
            "--payload",
            "keras",
        ],
    );
    assert_diagnostic(
        &output,
        &Expected {
            title: "the weights 60 + 30 sum to 90; Istio needs 100",
            file: "manifests/virtualservice-70-30.yaml",
            line: 19,
            column: 15,
            source_line: "      weight: 60",
            help: "make the weights of spec.http[0].route add up to 100",
        },
    );
}

#[test]
fn a_wrongly_typed_gateway_port_is_refused_by_istio_s_schema() {
    // Before, the CRD schema was only a test's concern: `number: eighty` loaded with exit 0.
    let assets = assets_copy();
    edit(
        assets.path(),
        "manifests/gateway.yaml",
        "number: 80\n",
        "number: eighty\n",
    );
    let output = run(assets.path(), &["lab", "stages"]);
    assert_diagnostic(
        &output,
        &Expected {
            title: "wrong type: expected integer, found string \"eighty\"",
            file: "manifests/gateway.yaml",
            line: 12,
            column: 15,
            source_line: "      number: eighty",
            help: "write an integer here",
        },
    );
    assert_contains!(
        output.stderr,
        "Gateway image-classifier-gateway (document 1), spec.servers[0].port.number"
    );
}

#[test]
fn a_bad_enum_in_a_destination_rule_is_refused_with_the_values_istio_takes() {
    let assets = assets_copy();
    edit(
        assets.path(),
        "manifests/destinationrule.yaml",
        "  host: image-classifier\n",
        "  host: image-classifier\n  trafficPolicy:\n    loadBalancer:\n      simple: ROUND_ROBINN\n",
    );
    let output = run(assets.path(), &["lab", "render", "--stage", "focused"]);
    assert_diagnostic(
        &output,
        &Expected {
            title: "unsupported value \"ROUND_ROBINN\"",
            file: "manifests/destinationrule.yaml",
            line: 11,
            column: 15,
            source_line: "      simple: ROUND_ROBINN",
            help: "did you mean `ROUND_ROBIN`? the supported values are ROUND_ROBIN, LEAST_CONN, RANDOM, PASSTHROUGH",
        },
    );
    // The same edit with a value Istio takes loads.
    edit(
        assets.path(),
        "manifests/destinationrule.yaml",
        "ROUND_ROBINN",
        "ROUND_ROBIN",
    );
    let output = run(assets.path(), &["lab", "render", "--stage", "focused"]);
    assert_eq!(output.code, 0, "{output:#?}");
}

#[test]
fn a_misspelt_kind_is_shown_at_its_value() {
    let assets = assets_copy();
    edit(
        assets.path(),
        "manifests/virtualservice-stable.yaml",
        "kind: VirtualService",
        "kind: VirtualServce",
    );
    let output = run(assets.path(), &["lab", "render", "--stage", "stable"]);
    assert_diagnostic(
        &output,
        &Expected {
            title: "unknown kind \"VirtualServce\"",
            file: "manifests/virtualservice-stable.yaml",
            line: 3,
            column: 7,
            source_line: "kind: VirtualServce",
            help: "did you mean `VirtualService`?",
        },
    );
}

#[test]
fn an_untestable_share_in_lab_toml_is_shown_at_its_value() {
    // Measured before the located errors: `share = 1.5` on line 43 was reported at 32:1, and never with the line.
    let assets = assets_copy();
    edit(assets.path(), "lab.toml", "share = 0.30", "share = 1.5");
    let line = line_of(assets.path(), "lab.toml", "share = 1.5");
    let output = run(assets.path(), &["lab", "stages"]);
    assert_diagnostic(
        &output,
        &Expected {
            title: "stage \"split-70-30\": a share assertion of 1.5 ± 0.15 cannot be tested",
            file: "lab.toml",
            line,
            column: 9,
            source_line: "share = 1.5",
            help: "write the share as a fraction strictly between 0 and 1",
        },
    );
}

#[test]
fn a_toml_syntax_error_is_shown_in_the_same_form() {
    let assets = assets_copy();
    edit(assets.path(), "lab.toml", "name = \"focused\"", "nmae = \"focused\"");
    let line = line_of(assets.path(), "lab.toml", "nmae = \"focused\"");
    let output = run(assets.path(), &["lab", "stages"]);
    assert_diagnostic(
        &output,
        &Expected {
            title: "unknown field `nmae`",
            file: "lab.toml",
            line,
            column: 1,
            source_line: "nmae = \"focused\"",
            help: "describes the format",
        },
    );
}

#[test]
fn with_format_json_the_error_object_names_every_located_problem() {
    let assets = assets_copy();
    edit(
        assets.path(),
        "manifests/virtualservice-70-30.yaml",
        "      weight: 30",
        "      wieght: 30",
    );
    edit(
        assets.path(),
        "manifests/gateway.yaml",
        "number: 80\n",
        "number: eighty\n",
    );
    let output = run(
        assets.path(),
        &["lab", "render", "--stage", "split-70-30", "--format", "json"],
    );
    assert_eq!(output.code, 2, "{output:#?}");
    let error = &output.json()["error"];
    assert_eq!(error["exit_code"], 2);
    let message = error["message"].as_str().unwrap();
    assert!(!message.contains('\u{1b}'), "{message}");
    assert_contains!(message, "stage \"split-70-30\" is not valid (2 problems)");
    assert_contains!(message, "manifests/gateway.yaml:12:15: wrong type: expected integer");
    assert_contains!(
        message,
        "manifests/virtualservice-70-30.yaml:30:7: unknown field `wieght`"
    );
    let helps: Vec<&str> = error["help"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|help| help.as_str())
        .collect();
    assert!(
        helps.iter().any(|help| help.starts_with("did you mean `weight`?")),
        "{helps:?}"
    );
    assert!(helps.contains(&"write an integer here"), "{helps:?}");
}

#[test]
fn on_a_terminal_the_diagnostic_has_colour() {
    let assets = assets_copy();
    edit(
        assets.path(),
        "manifests/gateway.yaml",
        "number: 80\n",
        "number: eighty\n",
    );
    let (code, terminal) = Cli::new(["lab", "stages"])
        .env("CANARY_LAB_ASSETS", assets.path())
        .run_in_terminal();
    assert_eq!(code, 2, "{terminal}");
    assert!(terminal.contains('\u{1b}'), "colour on a terminal:\n{terminal}");
    assert_contains!(terminal, "eighty");
}

#[test]
fn a_manifest_that_is_not_yaml_is_shown_where_the_parser_stopped() {
    let assets = assets_copy();
    edit(
        assets.path(),
        "manifests/gateway.yaml",
        "  selector:\n",
        "  selector: x\n    y: z\n",
    );
    let output = run(assets.path(), &["lab", "render", "--stage", "stable"]);
    assert_diagnostic(
        &output,
        &Expected {
            title: "invalid YAML: mapping values are not allowed in this context",
            file: "manifests/gateway.yaml",
            line: 9,
            column: 6,
            source_line: "    y: z",
            help: "fix the YAML at the caret",
        },
    );
}
