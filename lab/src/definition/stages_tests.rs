//! Tests of `definition::stages`: loading `lab.toml`, and its errors at the line and column of what to change.

use super::*;

fn manifests_dir() -> PathBuf {
    crate::definition::assets::manifests_dir()
}

#[test]
fn the_shipped_stages_load_in_order() {
    let lab = LabDefinition::load_default().unwrap();
    let names: Vec<&str> = lab.stages.iter().map(|stage| stage.name.as_str()).collect();
    assert_eq!(names, ["stable", "canary-deployed", "split-70-30", "focused"]);
    let focused = lab.stage("focused").unwrap();
    assert_eq!(
        focused.assertions[0].headers().get("user-group").map(String::as_str),
        Some("canary")
    );
    assert_eq!(lab.stages_through(Some("split-70-30")).unwrap().len(), 3);
    for stage in &lab.stages {
        assert!(!lab.stage_manifests(stage).unwrap().is_empty());
    }
}

#[test]
fn a_typo_is_reported_with_line_and_column() {
    let text = "[[stage]]\nname = \"a\"\nsumary = \"x\"\n";
    let error = LabDefinition::parse(Path::new("lab.toml"), text, &manifests_dir()).unwrap_err();
    assert_eq!((error.line, error.column), (3, 1), "{error}");
    assert!(
        error.to_string().starts_with("lab.toml:3:1: unknown field `sumary`"),
        "{error}"
    );
}

#[test]
fn a_missing_manifest_is_reported_at_its_stage() {
    let text = "[[stage]]\nname = \"a\"\nsummary = \"x\"\nmanifests = [\"nope.yaml\"]\n[[stage.assert]]\nkind = \"exact\"\nversion = \"v\"\n";
    let error = LabDefinition::parse(Path::new("lab.toml"), text, &manifests_dir()).unwrap_err();
    // At the file name in `manifests = [...]` (line 4, column 14).
    assert_eq!((error.line, error.column), (4, 14), "{error}");
    assert!(error.message.contains("\"nope.yaml\""), "{error}");
}

/// A one-stage file whose only assertion is a share of `share` ± `tolerance`; the assertion table is on line 5.
fn share_stage(share: &str, tolerance: &str) -> String {
    format!(
        "[[stage]]\nname = \"a\"\nsummary = \"x\"\nmanifests = [\"namespace.yaml\"]\n[[stage.assert]]\nkind = \"share\"\nversion = \"v\"\nshare = {share}\ntolerance = {tolerance}\n"
    )
}

#[test]
fn a_share_outside_zero_to_one_is_refused() {
    let text = share_stage("30.0", "0.15");
    let error = LabDefinition::parse(Path::new("lab.toml"), &text, &manifests_dir()).unwrap_err();
    assert!(error.message.contains("strictly between 0 and 1"), "{error}");
}

#[test]
fn untestable_shares_are_refused_at_the_value_to_change() {
    // Before, the error pointed at the start of the `[[stage.assert]]` table (measured: line 43 reported as 32:1).
    // Line 8 is `share = …` (its value at column 9), line 9 `tolerance = …` (column 13).
    for (share, tolerance, expected, at) in [
        ("0.0", "0.15", "write `kind = \"exact\"`", (8, 9)),
        ("1.0", "0.15", "write `kind = \"exact\"`", (8, 9)),
        ("0", "0.1", "write `kind = \"exact\"`", (8, 9)),
        ("0.5", "0.5", "no split could fail it", (9, 13)),
        ("0.3", "0.8", "no split could fail it", (9, 13)),
        ("0.3", "0.0", "tolerance must be strictly between 0 and 1", (9, 13)),
        ("0.3", "1.0", "tolerance must be strictly between 0 and 1", (9, 13)),
    ] {
        let text = share_stage(share, tolerance);
        let error = LabDefinition::parse(Path::new("lab.toml"), &text, &manifests_dir())
            .expect_err(&format!("share {share} ± {tolerance} must be refused"));
        assert_eq!((error.line, error.column), at, "{error}");
        let shown = error.to_string();
        assert!(
            shown.starts_with(&format!(
                "lab.toml:{}:{}: stage \"a\": a share assertion of ",
                at.0, at.1
            )),
            "{shown}"
        );
        assert!(shown.contains(expected), "{share} ± {tolerance}: {shown}");
        assert!(shown.contains("\nhelp: "), "{shown}");
        // The rendered form points at the value: its line, a caret under it, the help.
        let rendered = error.diagnostic.render(false);
        let value_line = text.lines().nth(at.0 - 1).unwrap();
        assert!(
            rendered.contains(&format!(" --> lab.toml:{}:{}\n", at.0, at.1)),
            "{rendered}"
        );
        assert!(rendered.contains(&format!("{} | {value_line}\n", at.0)), "{rendered}");
        let caret = format!("  | {}^", " ".repeat(at.1 - 1));
        assert!(rendered.contains(&caret), "{rendered}");
    }
}

#[test]
fn a_share_with_one_testable_side_loads() {
    // 0.1 ± 0.15: only the side above exists, and it is enough (`ShareTest` tests only that side).
    for (share, tolerance) in [("0.1", "0.15"), ("0.9", "0.15"), ("0.3", "0.15")] {
        let text = share_stage(share, tolerance);
        let lab = LabDefinition::parse(Path::new("lab.toml"), &text, &manifests_dir()).unwrap();
        assert_eq!(lab.stages[0].assertions.len(), 1);
    }
}

#[test]
fn an_unknown_stage_lists_the_known_ones() {
    let lab = LabDefinition::load_default().unwrap();
    let error = lab.stage("canary").unwrap_err().to_string();
    assert!(
        error.contains("stable, canary-deployed, split-70-30, focused"),
        "{error}"
    );
}
