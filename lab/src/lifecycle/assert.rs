//! Asserting an applied stage: the one place where `lab up` and `lab stage` hand a stage to `lab::traffic`, after
//! the gateway serves it, with the references fetched from each version's own pod.

use anyhow::Context;

use crate::cluster::Cluster;
use crate::definition::plan::StagePlan;
use std::time::Duration;

use crate::istio::gateway_config::wait_for_stage;
use crate::report::StageReport;
use crate::traffic::checks::progress::ProgressSink;
use crate::traffic::checks::{ProbeChoice, run_stage_with, stage_body};
use crate::traffic::references::{deployed_versions, fetch_references};

/// THE place where a stage's assertions run, after the stage is applied and rolled out: send traffic through
/// `ingress_url` and judge where it went (`lab::traffic::checks`, the same code as `lab check`). The caller decides
/// what a verdict other than pass means; `--no-assert` skips this call.
///
/// First it waits until the ingress gateway serves the stage's routes with live endpoints ([`wait_for_stage`],
/// each new difference it sees sent to `note`, so a person watching sees what it waits for), so no verdict is
/// drawn from an Istio push still under way.
///
/// The request body is built once (the Grace Hopper image, in the payload the model's metadata asks for) and,
/// before any assertion, sent to each version the stage deploys directly (a port-forward to one of its pods), so
/// a response that lacks the `x-model-version` header is attributed by its nearest reference. A version whose
/// reference cannot be fetched is only a warning: the lab's VirtualServices set the header, and header-less
/// responses from that version then count as unattributed (which fails an exact assertion).
///
/// `probe` chooses the requests that prove the routing (`--probe`; `lab::traffic::checks::kind`): status requests
/// where the stage's routes allow them, with a sample of real predictions per version.
///
/// While the assertions run they report to `progress`: the status line on a terminal
/// ([`crate::traffic::checks::progress::TerminalProgress::on_terminal`]) for `lab up` and `lab stage`, `lab tour`'s
/// live traffic view, or nothing but the `-v` log lines (`None`).
pub async fn assert_stage(
    cluster: &Cluster,
    plan: &StagePlan,
    ingress_url: &str,
    serve_timeout: Duration,
    probe: ProbeChoice,
    note: &dyn Fn(&str),
    progress: Option<ProgressSink>,
) -> anyhow::Result<StageReport> {
    let asserted = async {
        // Not one request before the gateway serves the stage's routes with live endpoints (bounded; skipped with a
        // warning when its admin port cannot be read).
        wait_for_stage(cluster, plan, serve_timeout, note).await?;
        let body = stage_body(ingress_url).await?;
        let references = fetch_references(cluster, &deployed_versions(plan), &body).await;
        run_stage_with(plan, ingress_url, body, references, probe, progress).await
    };
    asserted
        .await
        .with_context(|| format!("asserting stage \"{}\" through {ingress_url}", plan.name))
}
