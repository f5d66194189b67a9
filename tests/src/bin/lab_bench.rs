//! Runs every benchmark group side by side with its baseline, writes `target/bench/*.json`, prints a table.

use std::path::PathBuf;
use std::process::ExitCode;

use canary_lab_tests::bench::{BenchContext, all};

fn main() -> ExitCode {
    // The probe memory benchmark measures a child process of this binary.
    if let Some(exit) = canary_lab_tests::bench::probe::child_main() {
        return exit;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let context = BenchContext {
        out_dir: target.join("bench"),
        tools_dir: target.join("test-tools"),
    };
    std::fs::create_dir_all(&context.out_dir).expect("create target/bench");
    let only: Vec<String> = std::env::args().skip(1).collect();
    let mut rows = Vec::new();
    let mut failed = false;
    for (group, run) in all() {
        if !only.is_empty() && !only.iter().any(|name| name == group) {
            continue;
        }
        eprintln!("bench: {group}…");
        match run(&context) {
            Ok(results) => {
                for result in results {
                    let path = context.out_dir.join(format!("{}.json", result.name));
                    let json = serde_json::to_string_pretty(&result).expect("bench result serialises");
                    std::fs::write(&path, json).expect("write bench result");
                    rows.push(vec![
                        result.name.clone(),
                        format!("{:.4} {}", result.ours, result.unit),
                        format!("{:.4} {} ({})", result.baseline, result.unit, result.baseline_name),
                        format!("{:.3}", result.ratio),
                        result.target.clone(),
                        if result.meets_target { "yes".into() } else { "NO".into() },
                    ]);
                }
            }
            Err(error) => {
                eprintln!("bench {group} failed: {error:#}");
                failed = true;
            }
        }
    }
    print!(
        "{}",
        lab::output::table(&["bench", "ours", "baseline", "ratio", "target", "met"], &rows)
    );
    println!("results in {}", context.out_dir.display());
    if failed { ExitCode::from(2) } else { ExitCode::SUCCESS }
}
