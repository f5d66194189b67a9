//! The model export script (`scripts/export_models.py`), run with the test venv's Python: it compiles, and its
//! path and skip logic (importable without TensorFlow) passes its unit tests.

use std::path::PathBuf;

use canary_lab_tests::assert_contains;

fn python() -> PathBuf {
    canary_lab_tests::test_tools().join("venv/bin/python")
}

fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts")
}

#[test]
fn the_export_script_compiles() {
    #[allow(clippy::disallowed_methods)] // Tests may run Python directly.
    let output = std::process::Command::new(python())
        .args(["-m", "py_compile"])
        .arg(scripts_dir().join("export_models.py"))
        .env("PYTHONPYCACHEPREFIX", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn the_export_scripts_path_and_skip_logic_passes_its_unit_tests() {
    #[allow(clippy::disallowed_methods)] // Tests may run Python directly.
    let output = std::process::Command::new(python())
        .arg(scripts_dir().join("test_export_models.py"))
        .arg("-v")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    assert_contains!(report, "Ran 6 tests");
    assert_contains!(report, "test_a_complete_model_is_skipped");
    assert!(!report.contains("FAIL"), "{report}");
}
