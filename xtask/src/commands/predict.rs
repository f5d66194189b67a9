//! `lab predict`: send predictions through the ingress and print the top classes, the model that served, latency.
//! Without `--url`, the ingress `lab up` recorded is reopened for this command (`lab::lifecycle::ingress::reopen_recorded`).

use lab::output::{paint, table, to_json, use_colour};
use lab::traffic::predict::{PredictPlan, PredictReport, run_predictions};
use lab::{CommandStatus, Format, Settings};

use crate::CommandResult;
use crate::flags::PredictFlags;

/// Resolves the flags into a plan, sends the predictions and prints them; exit 1 when any request failed.
pub(crate) async fn run(settings: &Settings, flags: &PredictFlags) -> CommandResult {
    // Held until the predictions are sent: a reopened port-forward lives as long as this.
    let recorded;
    let url = match &flags.url {
        Some(url) => url.clone(),
        None => {
            recorded = super::stage::open_ingress(
                settings,
                "no ingress URL is known",
                "pass `--url http://HOST:PORT`, or run `cargo xtask lab up`, which records it",
            )
            .await?;
            recorded.url.clone()
        }
    };
    let plan = plan_from(url, flags)?;
    let report = run_predictions(&plan).await?;
    match settings.format {
        Format::Json => println!("{}", to_json(&report)),
        Format::Human => print!("{}", render_human(&report)),
    }
    Ok(match report.summary.failed {
        0 => CommandStatus::Ok,
        _ => CommandStatus::NotReady,
    })
}

/// The typed plan: URL (`--url`, else the recorded ingress), image bytes, headers, payload choice.
fn plan_from(url: String, flags: &PredictFlags) -> anyhow::Result<PredictPlan> {
    let image = super::read_image(flags.image.as_deref())?;
    // Headers, `--top` and `--count` were checked when the command line was parsed.
    let headers = flags.headers.clone();
    let payload = flags.payload.choice();
    Ok(PredictPlan {
        url,
        image,
        headers,
        top: usize::from(flags.top),
        count: flags.count as usize,
        payload,
    })
}

/// Per request a line and a table of the top classes; a summary line when more than one request was sent.
fn render_human(report: &PredictReport) -> String {
    let colour = use_colour();
    let headers: Vec<String> = report
        .request_headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    let mut text = format!(
        "{} with the {} payload{}\n",
        report.url,
        report.payload,
        if headers.is_empty() {
            String::new()
        } else {
            format!(" and headers {}", headers.join(", "))
        }
    );
    for record in &report.requests {
        let version = record.model_version.as_deref().unwrap_or("an unknown model");
        match &record.error {
            Some(error) => {
                let failed = paint("failed", "31", colour);
                text.push_str(&format!(
                    "request {}: {failed} after {:.1} ms (from {version}): {error}\n",
                    record.request, record.latency_ms
                ));
            }
            None => {
                text.push_str(&format!(
                    "request {}: served by {} in {:.1} ms\n",
                    record.request,
                    paint(version, "1", colour),
                    record.latency_ms
                ));
                let rows: Vec<Vec<String>> = record
                    .top
                    .iter()
                    .enumerate()
                    .map(|(rank, class)| {
                        vec![
                            format!("{}", rank + 1),
                            format!("{:.4}", class.score),
                            class.index.to_string(),
                            class.label.clone(),
                        ]
                    })
                    .collect();
                for line in table(&["rank", "score", "class", "label"], &rows).lines() {
                    text.push_str(&format!("  {line}\n"));
                }
            }
        }
    }
    let summary = &report.summary;
    if summary.requests > 1 {
        let versions: Vec<String> = summary
            .by_version
            .iter()
            .map(|(version, count)| format!("{version} {count}"))
            .collect();
        text.push_str(&format!(
            "\n{} requests ({} payload): {} ok, {} failed; served by {}; latency p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms\n",
            summary.requests,
            report.payload,
            summary.ok,
            summary.failed,
            if versions.is_empty() { "none".to_string() } else { versions.join(", ") },
            summary.latency_p50_ms,
            summary.latency_p95_ms,
            summary.latency_max_ms
        ));
    }
    text
}
