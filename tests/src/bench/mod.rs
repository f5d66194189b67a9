//! Benchmarks of canary-lab, each a ratio measured side by side with its baseline in one run.
//!
//! Each area adds a module with `pub fn run(context: &BenchContext) -> anyhow::Result<Vec<BenchResult>>` and one
//! line in [`all`]. The `lab-bench` binary (run by `cargo xtask bench`) runs them all, writes one JSON file per
//! result under `target/bench/` and prints a table. See `docs/benchmarks.md` for how to read it.

pub mod cluster;
pub mod istio_fetch;

use std::path::PathBuf;

use serde::Serialize;

pub mod payload;
pub mod probe;
pub mod stage_checks;
pub mod stats;

/// Where benchmarks write and what they may use.
#[derive(Debug, Clone)]
pub struct BenchContext {
    /// `target/bench/`: results and scratch files.
    pub out_dir: PathBuf,
    /// The test tools (`target/test-tools`), installed by `cargo xtask test --tools-only`.
    pub tools_dir: PathBuf,
}

/// One measured comparison.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// A stable name, used as the JSON file name: `istio_fetch_cold`, `probe_throughput`, …
    pub name: String,
    /// What our side measured, in `unit`.
    pub ours: f64,
    /// What the baseline measured, in `unit`.
    pub baseline: f64,
    /// What the baseline is, e.g. `curl + sha256sum + tar`.
    pub baseline_name: String,
    /// The unit of `ours` and `baseline`: `s`, `requests/s`, `requests`, `writes`, …
    pub unit: String,
    /// `ours / baseline`.
    pub ratio: f64,
    /// The target, e.g. `<= 1.0` or `>= 0.8`.
    pub target: String,
    /// Whether the ratio meets the target.
    pub meets_target: bool,
    /// Anything a reader needs: sizes, concurrency, repetitions.
    pub notes: String,
}

impl BenchResult {
    /// A result whose target is `ratio <= max_ratio` (lower is better).
    pub fn at_most(
        name: &str,
        ours: f64,
        baseline: f64,
        baseline_name: &str,
        unit: &str,
        max_ratio: f64,
    ) -> BenchResult {
        let target = format!("<= {max_ratio}");
        BenchResult::measured(name, (ours, baseline), baseline_name, unit, target, |ratio| {
            ratio <= max_ratio
        })
    }

    /// A result whose target is `ratio >= min_ratio` (higher is better).
    pub fn at_least(
        name: &str,
        ours: f64,
        baseline: f64,
        baseline_name: &str,
        unit: &str,
        min_ratio: f64,
    ) -> BenchResult {
        let target = format!(">= {min_ratio}");
        BenchResult::measured(name, (ours, baseline), baseline_name, unit, target, |ratio| {
            ratio >= min_ratio
        })
    }

    /// The common part of [`BenchResult::at_most`] and [`BenchResult::at_least`]: `target` is the target's text and
    /// `meets` says whether a ratio meets it.
    fn measured(
        name: &str,
        (ours, baseline): (f64, f64),
        baseline_name: &str,
        unit: &str,
        target: String,
        meets: impl FnOnce(f64) -> bool,
    ) -> BenchResult {
        let ratio = ours / baseline;
        BenchResult {
            name: name.to_string(),
            ours,
            baseline,
            baseline_name: baseline_name.to_string(),
            unit: unit.to_string(),
            ratio,
            target,
            meets_target: meets(ratio),
            notes: String::new(),
        }
    }

    /// Adds notes.
    #[must_use]
    pub fn notes(mut self, notes: &str) -> BenchResult {
        self.notes = notes.to_string();
        self
    }
}

/// The median of `values` (the upper middle one of an even count); sorts them in place.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A named benchmark group.
type BenchFn = fn(&BenchContext) -> anyhow::Result<Vec<BenchResult>>;

/// Every benchmark group, in the order they run.
pub fn all() -> Vec<(&'static str, BenchFn)> {
    vec![
        ("stats", stats::run),
        ("istio_fetch", istio_fetch::run),
        ("payload", payload::run),
        ("probe", probe::run),
        ("cluster", cluster::run),
        ("stage_checks", stage_checks::run),
    ]
}
