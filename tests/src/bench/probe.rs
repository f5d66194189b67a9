//! The probe's throughput through the Envoy harness against `wrk` at the same concurrency and payload, and its peak
//! memory over 10,000 requests with the ~4 MB raw payload (measured in a child process, so the servers do not count).
//!
//! The servers (two stand-in TF Serving instances behind Envoy; a sink for the memory run) run on a runtime of their
//! own, so the probe's runtime does only the probing, like `wrk`'s threads.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use lab::traffic::attribution::References;
use lab::traffic::probe::{Flow, Outcome, Probe, ProbeConfig};

use super::{BenchContext, BenchResult, median};
use crate::envoy::{Envoy, StageRouting};
use crate::tf_serving::TfServing;

/// Requests in flight, for both sides.
const CONCURRENCY: usize = 8;
/// Alternating rounds of the throughput measurement.
const ROUNDS: usize = 3;
/// Requests of one round of ours (after a warm-up).
const THROUGHPUT_REQUESTS: u64 = 15_000;
/// How long one round of `wrk` runs.
const WRK_SECONDS: u64 = 3;
/// The memory run's requests (each with the lab's raw Grace Hopper payload, about 4 MB).
const MEMORY_REQUESTS: u64 = 10_000;
/// The peak memory the memory run may use.
const MEMORY_LIMIT_MB: f64 = 200.0;
/// Set in the child process of the memory run: `URL REQUESTS`.
const CHILD_ENV: &str = "CANARY_LAB_BENCH_PROBE_MEMORY";
/// A small valid prediction body.
const BODY: &str = r#"{"instances": [[[[12, 34, 56], [78, 90, 12]]]]}"#;

/// Runs both measurements.
pub fn run(_context: &BenchContext) -> anyhow::Result<Vec<BenchResult>> {
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // The probe runs as in the CLI: a multi-threaded runtime.
    let probing = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let throughput = throughput(&servers, &probing)?;
    let memory = memory(&servers)?;
    Ok(vec![throughput, memory])
}

fn throughput(servers: &tokio::runtime::Runtime, probing: &tokio::runtime::Runtime) -> anyhow::Result<BenchResult> {
    let (_models, envoy) = servers.block_on(async {
        let resnet50 = TfServing::start("resnet50").await;
        let resnet101 = TfServing::start("resnet101").await;
        let backends = BTreeMap::from([
            ("resnet50".to_string(), resnet50.addr()),
            ("resnet101".to_string(), resnet101.addr()),
        ]);
        let envoy = Envoy::start(&StageRouting::of_stage("split-70-30"), &backends).await;
        ((resnet50, resnet101), envoy)
    });
    let url = format!("{}{}", envoy.url(), lab::traffic::checks::PREDICT_PATH);
    let probe = Probe::new(ProbeConfig {
        url: url.clone(),
        kind: lab::report::RequestKind::Prediction,
        body: Bytes::from_static(BODY.as_bytes()),
        headers: BTreeMap::new(),
        concurrency: CONCURRENCY,
        request_timeout: Duration::from_secs(10),
        references: References::default(),
    })?;
    // Rounds alternate between the two sides and each side's median counts, so a burst of load on a shared
    // machine does not land on one side only.
    let mut ours_rounds = Vec::new();
    let mut wrk_rounds = Vec::new();
    probing.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        let _ = probe.run(500, deadline, |_| Flow::Continue).await;
    });
    for _ in 0..ROUNDS {
        let ours = probing.block_on(async {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
            let started = Instant::now();
            let mut answered = 0u64;
            let _ = probe
                .run(THROUGHPUT_REQUESTS, deadline, |observation| {
                    answered += u64::from(matches!(observation.outcome, Outcome::Answered { .. }));
                    Flow::Continue
                })
                .await;
            anyhow::ensure!(
                answered == THROUGHPUT_REQUESTS,
                "only {answered} of {THROUGHPUT_REQUESTS} answered"
            );
            Ok(THROUGHPUT_REQUESTS as f64 / started.elapsed().as_secs_f64())
        })?;
        ours_rounds.push(ours);
        wrk_rounds.push(wrk_requests_per_second(&url)?);
    }
    let ours = median(&mut ours_rounds);
    let baseline = median(&mut wrk_rounds);
    Ok(BenchResult::at_least(
        "probe_throughput",
        ours,
        baseline,
        "wrk -t2 -c8",
        "requests/s",
        0.8,
    )
    .notes(&format!(
        "through Envoy (70/30) to two stand-in TF Serving servers on loopback; concurrency {CONCURRENCY}, {}-byte body; median of {ROUNDS} alternating rounds (ours: {THROUGHPUT_REQUESTS} requests with attribution by header, {ours_rounds:.0?}; wrk: {WRK_SECONDS}s, {wrk_rounds:.0?})",
        BODY.len()
    )))
}

/// `wrk -t2 -c8 -d…s` POSTing the same body; its `Requests/sec`.
fn wrk_requests_per_second(url: &str) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("post.lua");
    let lua_body = BODY.replace('\\', "\\\\").replace('"', "\\\"");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = \"{lua_body}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        ),
    )?;
    // The benchmark runs its baseline tool.
    let output = crate::process::Process::new("wrk")
        .args(["-t2", "-c8", &format!("-d{WRK_SECONDS}s"), "-s"])
        .arg(&script)
        .arg(url)
        .output()
        .context(
            "running wrk\nhelp: install it (Debian: `apt-get install wrk`); `cargo xtask bench` does when it can",
        )?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "wrk failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    anyhow::ensure!(!stdout.contains("Non-2xx"), "wrk saw errors:\n{stdout}");
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|value| value.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{stdout}"))
}

fn memory(servers: &tokio::runtime::Runtime) -> anyhow::Result<BenchResult> {
    let sink = servers.block_on(async {
        let app = axum::Router::new()
            .fallback(drain)
            .layer(axum::extract::DefaultBodyLimit::disable());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        anyhow::Ok(addr)
    })?;
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    // The memory run is measured in a child process of its own.
    let output = crate::process::Process::new(exe)
        .env(CHILD_ENV, format!("http://{sink}/ {MEMORY_REQUESTS}"))
        .output()
        .context("running the memory child")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "the memory child failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let peak_kb: f64 = stdout
        .split_whitespace()
        .find_map(|field| field.strip_prefix("peak_rss_kb="))
        .and_then(|value| value.trim().parse().ok())
        .with_context(|| format!("no peak_rss_kb in the child's output: {stdout}"))?;
    let peak_mb = peak_kb / 1024.0;
    Ok(BenchResult::at_most(
        "probe_memory",
        peak_mb,
        MEMORY_LIMIT_MB,
        "the 200 MB budget",
        "MB",
        1.0,
    )
    .notes(&format!(
        "peak RSS (VmHWM) of a process that only probes: {MEMORY_REQUESTS} requests with the raw Grace Hopper payload ({}), concurrency {CONCURRENCY}, to a sink on loopback; took {:.1}s",
        stdout.split_whitespace().find(|field| field.starts_with("body_bytes=")).unwrap_or("size unknown"),
        started.elapsed().as_secs_f64()
    )))
}

/// Reads the request body to the end without keeping it, and answers like a model.
async fn drain(body: axum::body::Body) -> impl axum::response::IntoResponse {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        if chunk.is_err() {
            break;
        }
    }
    ([("x-model-version", "resnet50")], r#"{"predictions": [[1.0]]}"#)
}

/// In the memory run's child process (`CANARY_LAB_BENCH_PROBE_MEMORY` set): probe, print the peak RSS, exit.
/// Returns `None` in any other process.
pub fn child_main() -> Option<ExitCode> {
    let spec = std::env::var(CHILD_ENV).ok()?;
    let result = (|| -> anyhow::Result<String> {
        let mut parts = spec.split_whitespace();
        let (Some(url), Some(requests)) = (parts.next(), parts.next()) else {
            anyhow::bail!("{CHILD_ENV} must be `URL REQUESTS`, found \"{spec}\"");
        };
        let requests: u64 = requests.parse()?;
        // The lab's real raw payload, built once and shared by every request.
        let payload = lab::traffic::payload::build_payload(
            lab::traffic::payload::PayloadKind::Raw,
            lab::traffic::payload::DEFAULT_IMAGE,
        )?;
        let body_bytes = payload.body.len();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let probe = Probe::new(ProbeConfig {
            url: url.to_string(),
            kind: lab::report::RequestKind::Prediction,
            body: payload.body,
            headers: BTreeMap::new(),
            concurrency: CONCURRENCY,
            request_timeout: Duration::from_secs(60),
            references: References::default(),
        })?;
        let (answered, latencies) = runtime.block_on(async {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1200);
            let mut answered = 0u64;
            // Latencies are kept, as the assertions keep them: 8 bytes a response.
            let mut latencies = Vec::new();
            let _ = probe
                .run(requests, deadline, |observation| {
                    answered += u64::from(matches!(observation.outcome, Outcome::Answered { .. }));
                    latencies.push(observation.latency.as_secs_f64());
                    Flow::Continue
                })
                .await;
            (answered, latencies.len())
        });
        anyhow::ensure!(answered == requests, "only {answered} of {requests} answered");
        let status = std::fs::read_to_string("/proc/self/status")?;
        let peak = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .context("no VmHWM in /proc/self/status")?;
        Ok(format!(
            "answered={answered} latencies={latencies} body_bytes={body_bytes} peak_rss_kb={peak}"
        ))
    })();
    match result {
        Ok(line) => {
            println!("{line}");
            Some(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("probe memory child: {error:#}");
            Some(ExitCode::from(2))
        }
    }
}
