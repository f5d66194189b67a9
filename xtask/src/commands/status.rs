//! `lab status`: what is deployed and ready, the ingress URL and the active stage; exit 1 when not ready.

use lab::lifecycle::state::IngressKind;
use lab::lifecycle::status::status;
use lab::output::{table, to_json};
use lab::{CommandStatus, Format, Settings};

use crate::CommandResult;

/// Prints the status.
pub(crate) async fn run(settings: &Settings) -> CommandResult {
    let found = status(settings).await?;
    match settings.format {
        Format::Json => println!("{}", to_json(&found)),
        Format::Human => {
            let none = || "-".to_string();
            let mut rows = vec![
                vec!["context".to_string(), found.context.clone()],
                vec![
                    "istio".to_string(),
                    found
                        .istio_version
                        .clone()
                        .unwrap_or_else(|| "not installed".to_string()),
                ],
                vec![
                    "namespace".to_string(),
                    if found.namespace {
                        "tf-serving".to_string()
                    } else {
                        "missing".to_string()
                    },
                ],
            ];
            for deployment in &found.deployments {
                let state = if deployment.rolled_out { "ready" } else { "not ready" };
                rows.push(vec![
                    deployment.name.clone(),
                    format!("{state} ({}/{})", deployment.ready_replicas, deployment.replicas),
                ]);
            }
            let ingress = match (&found.ingress_url, found.ingress_kind) {
                (Some(url), Some(IngressKind::PortForward)) => {
                    format!("{url} (a port-forward: only while the `lab up` that opened it ran)")
                }
                (Some(url), Some(kind)) => format!("{url} (via {kind})"),
                (Some(url), None) => url.clone(),
                (None, _) => none(),
            };
            rows.push(vec!["ingress".to_string(), ingress]);
            rows.push(vec![
                "stage".to_string(),
                found.active_stage.clone().unwrap_or_else(none),
            ]);
            if let Some(tunnel) = &found.tunnel {
                let running = if tunnel.running { "running" } else { "stopped" };
                rows.push(vec!["tunnel".to_string(), format!("pid {} {running}", tunnel.pid)]);
            }
            print!("{}", table(&["what", "state"], &rows));
            if found.ready {
                println!("the lab is ready")
            } else {
                println!("the lab is not ready: run `cargo xtask lab up`")
            }
        }
    }
    Ok(if found.ready {
        CommandStatus::Ok
    } else {
        CommandStatus::NotReady
    })
}
