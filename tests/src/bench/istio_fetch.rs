//! `istio fetch` against `curl + sha256sum + tar` on the same ~25 MB tarball served from loopback.
//!
//! Cold: a fresh cache each round, through the real `lab::istio::fetch_istioctl` with `--sha256` and
//! `--base-url` options, against `curl -fsSLo f URL && sha256sum -c f.sha256 && tar xzf f` (the `.sha256` written
//! locally, as `--sha256` is given by hand). Warm: a second fetch into a verified cache must transfer 0 bytes;
//! the server counts the body bytes it sent.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use lab::istio::{FetchOptions, Platform, ProgressBarMode, fetch_istioctl};

use super::{BenchContext, BenchResult, median};
use crate::asset_server::{AssetServer, sha256_hex};
use crate::istio_tarball::Tarball;

/// The asset name (pinned, so the bench passes `--sha256` as a mirror would).
const ASSET: &str = "istioctl-1.12.7-linux-amd64.tar.gz";
/// Size of the random filler: the tarball is about this big, as gzip cannot shrink it.
const FILLER_BYTES: usize = 25 * 1024 * 1024;
/// Rounds per side; the median is reported.
const ROUNDS: usize = 5;

/// Runs the cold and warm comparisons.
pub fn run(context: &BenchContext) -> anyhow::Result<Vec<BenchResult>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting a tokio runtime")?;
    runtime.block_on(run_async(context))
}

async fn run_async(context: &BenchContext) -> anyhow::Result<Vec<BenchResult>> {
    let server = AssetServer::start().await;
    let tarball = Tarball::istioctl_release("1.12.7")
        .random_file("filler.bin", FILLER_BYTES, 0x5eed)
        .build();
    server.add(ASSET, &tarball);
    let sum = sha256_hex(&tarball);
    let url = format!("{}{ASSET}", server.base_url());
    let scratch = tempfile::tempdir_in(&context.out_dir).context("creating a scratch directory")?;

    let mut ours = Vec::new();
    let mut baseline = Vec::new();
    let mut last_options = None;
    for round in 0..ROUNDS {
        // Alternate which side goes first so neither always gets a warmer page cache.
        let ours_first = round % 2 == 0;
        let options = bench_options(&scratch.path().join(format!("cache-{round}")), &server, &sum);
        let baseline_dir = scratch.path().join(format!("baseline-{round}"));
        std::fs::create_dir_all(&baseline_dir)?;
        if ours_first {
            ours.push(time_ours(&options).await?);
            baseline.push(time_baseline(&baseline_dir, &url, &sum).await?);
        } else {
            baseline.push(time_baseline(&baseline_dir, &url, &sum).await?);
            ours.push(time_ours(&options).await?);
        }
        last_options = Some(options);
    }

    // Warm: the same cache again; the server must send nothing.
    let options = last_options.context("at least one round")?;
    let bytes_before = server.body_bytes_sent();
    let requests_before = server.requests().len();
    fetch_istioctl(&options).await.context("warm fetch")?;
    let warm_bytes = server.body_bytes_sent() - bytes_before;
    let warm_requests = server.requests().len() - requests_before;

    let ours_median = median(&mut ours);
    let baseline_median = median(&mut baseline);
    let size_mb = tarball.len() as f64 / 1_048_576.0;
    let cold = BenchResult::at_most(
        "istio_fetch_cold",
        ours_median,
        baseline_median,
        "curl -fsSLo f URL && sha256sum -c f.sha256 && tar xzf f",
        "s",
        1.0,
    )
    .notes(&format!(
        "{size_mb:.1} MiB tar.gz of random bytes from loopback, median of {ROUNDS} rounds each, sides alternated; \
         ours also runs `istioctl version` on the unpacked binary"
    ));
    let warm = BenchResult::at_most(
        "istio_fetch_warm_bytes",
        warm_bytes as f64,
        tarball.len() as f64,
        "curl (downloads the whole file again)",
        "bytes",
        0.0,
    )
    .notes(&format!(
        "bytes the server sent for a fetch into a verified cache; {warm_requests} request(s)"
    ));
    Ok(vec![cold, warm])
}

fn bench_options(cache: &Path, server: &AssetServer, sum: &str) -> FetchOptions {
    let mut options = FetchOptions::lab_default(cache.to_path_buf());
    options.platform = Some(Platform::LinuxAmd64);
    options.base_url = Some(server.base_url());
    options.sha256 = Some(sum.to_string());
    options.progress = ProgressBarMode::Hidden;
    options
}

async fn time_ours(options: &FetchOptions) -> anyhow::Result<f64> {
    let started = Instant::now();
    fetch_istioctl(options).await.context("cold fetch")?;
    Ok(started.elapsed().as_secs_f64())
}

/// `curl … && sha256sum -c … && tar xzf …` in `dir`, off the runtime thread so the server keeps serving.
async fn time_baseline(dir: &Path, url: &str, sum: &str) -> anyhow::Result<f64> {
    std::fs::write(dir.join(format!("{ASSET}.sha256")), format!("{sum}  {ASSET}\n"))?;
    let script =
        format!("/usr/bin/curl -fsSLo {ASSET} '{url}' && sha256sum -c --quiet {ASSET}.sha256 && tar xzf {ASSET}");
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
        let started = Instant::now();
        // The baseline is an external pipeline, run from bench code.
        let status = crate::process::Process::new("sh")
            .args(["-c", &script])
            .current_dir(&dir)
            .status()
            .context("running the curl baseline")?;
        let elapsed = started.elapsed();
        anyhow::ensure!(status.success(), "the baseline `{script}` failed: {status}");
        Ok(elapsed.max(Duration::from_nanos(1)).as_secs_f64())
    })
    .await
    .context("the baseline task")?
}
