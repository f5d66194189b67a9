//! The model export script (`scripts/export_models.py`), run with the test venv's Python: it compiles, and its
//! path, completeness and replace logic (importable without TensorFlow; its tests fake TensorFlow's save)
//! passes its unit tests.

use std::path::PathBuf;

use canary_lab_tests::assert_contains;
use canary_lab_tests::process::Process;

fn python() -> PathBuf {
    canary_lab_tests::test_tools().join("venv/bin/python")
}

fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts")
}

#[test]
fn the_export_script_compiles() {
    let output = Process::new(python())
        .args(["-m", "py_compile"])
        .arg(scripts_dir().join("export_models.py"))
        .env("PYTHONPYCACHEPREFIX", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn the_export_scripts_path_completeness_and_replace_logic_passes_its_unit_tests() {
    let output = Process::new(python())
        .arg(scripts_dir().join("test_export_models.py"))
        .arg("-v")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    // The count catches a test file that silently stopped collecting its tests.
    assert_contains!(report, "Ran 19 tests");
    for test in [
        "test_a_complete_model_is_skipped",
        "test_a_graph_without_variables_is_replaced_not_renamed_onto",
    ] {
        let passed = report
            .lines()
            .any(|line| line.starts_with(&format!("{test} (")) && line.ends_with("... ok"));
        assert!(passed, "{test} did not pass:\n{report}");
    }
    assert!(!report.contains("FAIL"), "{report}");
}
