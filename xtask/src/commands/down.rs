//! `lab down [--all]`: delete the lab's namespace and wait until it is gone; `--all` also removes Istio and the
//! tunnel.

use std::time::Duration;

use lab::lifecycle::{DownScope, down};
use lab::output::to_json;
use lab::{CommandStatus, Format, Settings};

use crate::CommandResult;
use crate::flags::DownFlags;

/// Tears the lab down and says what was removed.
pub(crate) async fn run(settings: &Settings, flags: &DownFlags) -> CommandResult {
    let scope = match flags.all {
        true => DownScope::Everything,
        false => DownScope::Lab,
    };
    let report = down(
        settings,
        scope,
        flags.istioctl.clone(),
        Duration::from_secs(flags.timeout),
    )
    .await?;
    match settings.format {
        Format::Json => println!("{}", to_json(&report)),
        Format::Human => {
            match report.namespace_deleted {
                true => println!("namespace \"tf-serving\" deleted"),
                false => println!("namespace \"tf-serving\" was not there"),
            }
            if let Some(pid) = report.tunnel_stopped {
                println!("minikube tunnel (pid {pid}) stopped");
            }
            if report.istio_uninstalled {
                println!("Istio uninstalled");
            }
        }
    }
    Ok(CommandStatus::Ok)
}
