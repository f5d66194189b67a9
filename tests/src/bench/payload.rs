//! Payload generation for the Grace Hopper photo against the original lab's `gen_payload.py` (Pillow + numpy).
//!
//! The baseline is what a user of the original lab ran: `python gen_payload.py` as a process, so its time includes
//! the interpreter's start and the imports of Pillow and numpy. Ours is measured in-process (as `lab predict`
//! does it once per run): read the file, decode, re-encode and decode (raw) or resize (keras), and serialise the
//! JSON body. Each side runs several times; the medians are compared.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use lab::traffic::payload::{PayloadKind, build_payload};

use super::{BenchContext, BenchResult, median};

/// Runs per side; the median is reported.
const RUNS: usize = 7;

/// `payload_raw` and `payload_keras`: wall-time ratio, target ≤ 0.1.
pub fn run(context: &BenchContext) -> anyhow::Result<Vec<BenchResult>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let image = root.join("assets/images/grace_hopper.jpg");
    let script = root.join("scripts/gen_payload.py");
    let python = context.tools_dir.join("venv/bin/python");
    anyhow::ensure!(
        python.exists(),
        "{} is missing\nhelp: run `cargo xtask test --tools-only` first",
        python.display()
    );
    let mut results = Vec::new();
    for kind in [PayloadKind::Raw, PayloadKind::Keras] {
        let out = context.out_dir.join(format!("payload-{}.json", kind.as_str()));
        let mut python_seconds = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let started = Instant::now();
            // The baseline is a Python script: the benchmark starts it as a process.
            let status = crate::process::Process::new(&python)
                .arg(&script)
                .arg(&image)
                .args(["--mode", kind.as_str(), "--out"])
                .arg(&out)
                .status()
                .context("running scripts/gen_payload.py")?;
            python_seconds.push(started.elapsed().as_secs_f64());
            anyhow::ensure!(
                status.success(),
                "gen_payload.py --mode {} failed: {status}",
                kind.as_str()
            );
        }
        let python_bytes = std::fs::metadata(&out)?.len();
        let mut our_seconds = Vec::with_capacity(RUNS);
        let mut our_bytes = 0;
        for _ in 0..RUNS {
            let started = Instant::now();
            let file_bytes = std::fs::read(&image).context("reading the image")?;
            let payload = build_payload(kind, &file_bytes)?;
            our_seconds.push(started.elapsed().as_secs_f64());
            our_bytes = payload.body.len();
        }
        let notes = format!(
            "grace_hopper.jpg 512x600; median of {RUNS} runs each; Python as a process (interpreter start and imports \
             included), ours in-process (file read + decode{} + JSON); bodies: ours {our_bytes} bytes (compact), \
             Python {python_bytes} bytes (json.dumps spacing); element-wise equal (tests/tests/it/payload.rs)",
            match kind {
                PayloadKind::Raw => " + JPEG re-save at quality 75 + decode",
                _ => " + 224x224 nearest resize",
            }
        );
        results.push(
            BenchResult::at_most(
                &format!("payload_{}", kind.as_str()),
                median(&mut our_seconds),
                median(&mut python_seconds),
                "gen_payload.py (Pillow + numpy)",
                "s",
                0.1,
            )
            .notes(&notes),
        );
    }
    Ok(results)
}
