//! Installing Istio's default profile with `istioctl` unless the same version is there, then waiting (on watches)
//! until `istiod` and `istio-ingressgateway` are available and the CRDs the lab uses are Established, and taking a
//! new discovery so their kinds resolve.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

use crate::cluster::Cluster;
use crate::cluster::wait::wait_deployment_rolled_out;
use crate::tool::istioctl::Istioctl;

/// Istio's namespace.
pub const ISTIO_NAMESPACE: &str = "istio-system";

/// The ingress gateway's Service (and the label value of its pods).
pub const GATEWAY_SERVICE: &str = "istio-ingressgateway";
/// The port the gateway's pods listen on for plain HTTP (the Service maps 80 to it).
pub const GATEWAY_POD_PORT: u16 = 8080;
/// The label selector of the ingress gateway's pods (Istio's default profile labels them `istio: ingressgateway`).
pub const GATEWAY_SELECTOR: &str = "istio=ingressgateway";

/// The Deployments the lab needs from Istio, in the order they are waited for.
pub const ISTIO_DEPLOYMENTS: &[&str] = &["istiod", "istio-ingressgateway"];

/// The CRDs of the Istio kinds the lab applies (`plural.group`), waited for after an install.
pub const ISTIO_CRDS: &[&str] = &[
    "gateways.networking.istio.io",
    "virtualservices.networking.istio.io",
    "destinationrules.networking.istio.io",
];

/// The Istio kinds the lab applies (apiVersion, kind), one per [`ISTIO_CRDS`] entry.
const ISTIO_KINDS: &[(&str, &str)] = &[
    ("networking.istio.io/v1alpha3", "Gateway"),
    ("networking.istio.io/v1alpha3", "VirtualService"),
    ("networking.istio.io/v1alpha3", "DestinationRule"),
];

/// How `lab up` installs Istio.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// The verified `istioctl` to run.
    pub istioctl: PathBuf,
    /// Replace another installed Istio version instead of stopping.
    pub reinstall: bool,
    /// How long `istiod` and `istio-ingressgateway` may take to become available.
    pub ready_timeout: Duration,
}

/// What the install step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallOutcome {
    /// The same version was installed already: nothing was run.
    AlreadyInstalled {
        /// The installed version.
        version: String,
    },
    /// `istioctl install` ran.
    Installed {
        /// The version installed.
        version: String,
        /// The version it replaced (with `--reinstall-istio`).
        replaced: Option<String>,
    },
}

/// Another Istio version is installed and `--reinstall-istio` was not given.
#[derive(Debug, thiserror::Error)]
#[error(
    "Istio \"{installed}\" is installed in context \"{context}\", but the lab needs \"{wanted}\"\nhelp: run `cargo xtask lab up --reinstall-istio` to replace it, or use another minikube profile"
)]
pub struct OtherIstioInstalled {
    /// The version found (the tag of istiod's image).
    pub installed: String,
    /// The version of our istioctl.
    pub wanted: String,
    /// The kube context.
    pub context: String,
}

/// Installs Istio unless the same version is there, then waits until its Deployments are available and, when the
/// cluster's discovery lacks the Istio kinds the lab applies (a fresh install), until their CRDs are Established,
/// and refreshes the discovery. `progress` receives one line per phase.
pub async fn ensure_istio(
    cluster: &mut Cluster,
    options: &InstallOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<InstallOutcome> {
    let istioctl = Istioctl::new(&options.istioctl);
    let wanted = {
        let istioctl = istioctl.clone();
        tokio::task::spawn_blocking(move || istioctl.client_version())
            .await
            .context("reading the istioctl version")??
            .version
    };
    let installed = installed_version(&cluster.client).await?;
    let outcome = match installed {
        Some(installed) if installed == wanted => InstallOutcome::AlreadyInstalled { version: installed },
        Some(installed) if !options.reinstall => {
            return Err(OtherIstioInstalled {
                installed,
                wanted,
                context: cluster.context.clone(),
            }
            .into());
        }
        replaced => {
            progress(&format!(
                "installing Istio {wanted} (istioctl install -y --set profile=default)"
            ));
            run_install(&istioctl, &cluster.context, &wanted).await?;
            InstallOutcome::Installed {
                version: wanted,
                replaced,
            }
        }
    };
    progress(&format!(
        "waiting for {} to be available (at most {}s)",
        ISTIO_DEPLOYMENTS.join(" and "),
        options.ready_timeout.as_secs()
    ));
    let started = std::time::Instant::now();
    for name in ISTIO_DEPLOYMENTS {
        wait_deployment_rolled_out(cluster, ISTIO_NAMESPACE, name, options.ready_timeout)
            .await
            .with_context(|| format!("waiting for Istio's {name}"))?;
        progress(&format!(
            "{name} is available ({:.1}s)",
            started.elapsed().as_secs_f64()
        ));
    }
    let resolvable = ISTIO_KINDS
        .iter()
        .all(|(api_version, kind)| cluster.resource_for(api_version, kind).is_some());
    if !resolvable {
        progress(&format!(
            "waiting for Istio's CRDs to be established (at most {}s)",
            options.ready_timeout.as_secs()
        ));
        cluster
            .wait_crds_established(ISTIO_CRDS, options.ready_timeout)
            .await
            .context("waiting for Istio's CRDs")?;
        cluster.refresh_discovery().await?;
    }
    Ok(outcome)
}

/// The installed Istio version: the tag of the `istiod` Deployment's image in `istio-system`, if it exists.
pub async fn installed_version(client: &kube::Client) -> anyhow::Result<Option<String>> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ISTIO_NAMESPACE);
    let istiod = api
        .get_opt("istiod")
        .await
        .context("looking for istiod in namespace \"istio-system\"")?;
    let image = istiod
        .and_then(|deployment| deployment.spec)
        .and_then(|spec| spec.template.spec)
        .and_then(|pod| pod.containers.into_iter().next())
        .and_then(|container| container.image);
    Ok(image.map(|image| image_tag(&image)))
}

/// The tag of an image reference (`docker.io/istio/pilot:1.12.7` → `1.12.7`); `latest` when there is none.
pub fn image_tag(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_part = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last_part.split_once(':') {
        Some((_, tag)) => tag.to_string(),
        None => "latest".to_string(),
    }
}

async fn run_install(istioctl: &Istioctl, context: &str, version: &str) -> anyhow::Result<()> {
    let istioctl = istioctl.clone();
    let context_owned = context.to_string();
    // istioctl itself waits for the components; ten minutes covers a slow image pull.
    let result =
        tokio::task::spawn_blocking(move || istioctl.install_default_profile(&context_owned, Duration::from_secs(600)))
            .await
            .context("running istioctl install")?;
    match result {
        Ok(output) => {
            tracing::info!(stdout = %output.stdout.trim(), "istioctl install finished");
            Ok(())
        }
        Err(error) => Err(anyhow::anyhow!(
            "{error}\nhelp: `istioctl verify-install --context {context}` shows what is missing; then run `cargo xtask lab up` again"
        )
        .context(format!("installing Istio {version} into context \"{context}\""))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags() {
        assert_eq!(image_tag("docker.io/istio/pilot:1.12.7"), "1.12.7");
        assert_eq!(image_tag("localhost:5000/istio/pilot:1.13.0"), "1.13.0");
        assert_eq!(image_tag("localhost:5000/istio/pilot"), "latest");
        assert_eq!(image_tag("istio/pilot:1.12.7@sha256:abc"), "1.12.7");
    }
}
