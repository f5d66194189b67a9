//! `lab down [--all]`: delete the lab's namespace and wait until it is gone; `--all` also removes Istio and the
//! tunnel.

use lab::lifecycle::down::{DownScope, down};
use lab::output::to_json;
use lab::{CommandStatus, Format, Settings};

use crate::CommandResult;
use crate::flags::DownFlags;

/// Tears the lab down and says what was removed.
pub(crate) async fn run(settings: &Settings, flags: &DownFlags) -> CommandResult {
    let scope = if flags.all {
        DownScope::Everything {
            tunnel_timeout: *flags.tunnel_timeout,
        }
    } else {
        DownScope::Lab
    };
    let report = down(settings, scope, flags.istioctl.clone(), *flags.timeout).await?;
    if let Some(stopped) = report.tunnel_stopped.as_ref().filter(|stopped| !stopped.cleaned_up) {
        eprintln!(
            "warning: `minikube tunnel` (pid {pid}) did not stop within {}s of an interrupt, so it was stopped with {}: its route to the service CIDR and the ingress gateway's external IP may be left behind\nhelp: run `minikube tunnel -p {}` and stop it with Ctrl-C: on start it removes the routes of tunnels that no longer run, on Ctrl-C its own",
            stopped.interrupt_timeout_s,
            stopped.signal,
            settings.profile,
            pid = stopped.pid,
        );
    }
    match settings.format {
        Format::Json => println!("{}", to_json(&report)),
        Format::Human => {
            if report.namespace_deleted {
                println!("namespace \"tf-serving\" deleted")
            } else {
                println!("namespace \"tf-serving\" was not there")
            }
            if let Some(stopped) = &report.tunnel_stopped {
                println!("minikube tunnel (pid {}) stopped", stopped.pid);
            }
            if report.istio_uninstalled {
                println!("Istio uninstalled");
            }
        }
    }
    Ok(CommandStatus::Ok)
}
