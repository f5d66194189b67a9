//! `lab check` of each stage with `--probe auto` against `--probe predict` (every request a prediction, as before),
//! through the Envoy harness in front of stand-ins whose requests take realistic time: a ResNet50 prediction 150 ms,
//! a ResNet101 prediction 300 ms (twice the compute; measured on a laptop's CPU, ResNet101 answers in hundreds of
//! milliseconds), a model-status request 2 ms (no inference), each ± 10%.
//!
//! Both sides run the CLI (`lab-cli`, built beside `lab-bench` by `cargo xtask bench`) as a process with the same
//! flags and error rates; the wall time includes the process, and the predictions are counted by the stand-ins.
//! Their verdicts must be equal (the group fails otherwise). Target: auto ≤ 0.1× predict's wall time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::{BenchContext, BenchResult};
use crate::envoy::{Envoy, StageRouting};
use crate::process::Process;
use crate::tf_serving::{Latency, TfServing, TfServingConfig};

/// The stages, in the lab's order.
const STAGES: [&str; 4] = ["stable", "canary-deployed", "split-70-30", "focused"];
/// The target ratio of wall times.
const TARGET: f64 = 0.1;

/// Runs the group: per stage, wall time and predictions of `--probe auto` against `--probe predict`.
pub fn run(context: &BenchContext) -> anyhow::Result<Vec<BenchResult>> {
    // The servers run on a runtime of their own; the CLI is a process of its own.
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let cli = std::env::current_exe()?
        .parent()
        .context("lab-bench's directory")?
        .join("lab-cli");
    anyhow::ensure!(
        cli.exists(),
        "{} is missing: run the benchmarks with `cargo xtask bench`, which builds it",
        cli.display()
    );
    let home = context.out_dir.join("stage-checks-home");
    std::fs::create_dir_all(&home)?;
    let stand_in = |identity: &str, prediction_ms: u64| {
        TfServingConfig::new(identity)
            .with_latency(Latency::around(Duration::from_millis(prediction_ms), 0.1))
            .with_status_latency(Latency::around(Duration::from_millis(2), 0.1))
    };
    let models = servers.block_on(async {
        (
            TfServing::start_with(stand_in("resnet50", 150)).await,
            TfServing::start_with(stand_in("resnet101", 300)).await,
        )
    });
    let mut results = Vec::new();
    for stage in STAGES {
        let mut backends = BTreeMap::from([("resnet50".to_string(), models.0.addr())]);
        if stage != "stable" {
            backends.insert("resnet101".to_string(), models.1.addr());
        }
        let envoy = servers.block_on(Envoy::start(&StageRouting::of_stage(stage), &backends));
        let predictions = || models.0.predictions() + models.1.predictions();
        let measure = |probe: &str| -> anyhow::Result<(f64, u64, String)> {
            let before = predictions();
            let started = Instant::now();
            let output = Process::new(&cli)
                .args(["lab", "check", stage, "--url", &envoy.url(), "--payload", "keras"])
                .args(["--probe", probe, "--format", "json"])
                .env("HOME", &home)
                .env("NO_COLOR", "1")
                .output()?;
            let seconds = started.elapsed().as_secs_f64();
            let report: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
                format!(
                    "lab check {stage} --probe {probe}: not JSON: {}",
                    String::from_utf8_lossy(&output.stderr)
                )
            })?;
            let verdict = report["verdict"].as_str().unwrap_or("?").to_string();
            Ok((seconds, predictions() - before, verdict))
        };
        let (auto_seconds, auto_predictions, auto_verdict) = measure("auto")?;
        let (predict_seconds, predict_predictions, predict_verdict) = measure("predict")?;
        anyhow::ensure!(
            auto_verdict == predict_verdict,
            "stage {stage}: --probe auto said {auto_verdict}, --probe predict {predict_verdict}"
        );
        let notes = format!(
            "verdict {auto_verdict} both ways; predictions: {auto_predictions} (auto) vs {predict_predictions} (predict); ResNet50 150 ms, ResNet101 300 ms, status 2 ms; concurrency 8"
        );
        let baseline = "lab check --probe predict";
        results.push(
            BenchResult::at_most(
                &format!("stage_check_{}_time", stage.replace('-', "_")),
                auto_seconds,
                predict_seconds,
                baseline,
                "s",
                TARGET,
            )
            .notes(&notes),
        );
        results.push(
            BenchResult::at_most(
                &format!("stage_check_{}_predictions", stage.replace('-', "_")),
                auto_predictions as f64,
                predict_predictions as f64,
                baseline,
                "predictions",
                TARGET,
            )
            .notes(&notes),
        );
    }
    Ok(results)
}
