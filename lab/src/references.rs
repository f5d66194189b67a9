//! Each model version's reference prediction, fetched from one of the version's own pods (a port-forward to its
//! TF Serving REST port), so that responses through the gateway without an `x-model-version` header can still be
//! attributed by their fingerprint ([`crate::attribution`]).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;

use crate::attribution::{References, first_scores};
use crate::cluster::{Cluster, LAB_NAMESPACE};
use crate::ingress::port_forward_to_pod;
use crate::manifests::Manifest;
use crate::payload::PREDICT_PATH;

/// TF Serving's REST port in the lab's pods.
pub const TF_SERVING_REST_PORT: u16 = 8501;
/// The pod label that names a model version (`resnet50`, `resnet101`).
pub const VERSION_LABEL: &str = "version";
/// The timeout of one reference prediction (a ResNet on a busy node can take seconds).
pub const REFERENCE_TIMEOUT: Duration = Duration::from_secs(60);

/// A model version a stage deploys, and how to find its pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedVersion {
    /// The pod template's `version` label (the Deployment's name when it has none).
    pub version: String,
    /// The Deployment's namespace.
    pub namespace: String,
    /// The Deployment's pod selector, `k=v,k2=v2`.
    pub selector: String,
}

/// The versions the Deployments among `manifests` serve, in manifest order.
pub fn deployed_versions(manifests: &[Manifest]) -> Vec<DeployedVersion> {
    manifests
        .iter()
        .filter(|manifest| manifest.kind() == "Deployment")
        .filter_map(|manifest| {
            let selector = manifest.pod_selector()?;
            let version = manifest.object["spec"]["template"]["metadata"]["labels"][VERSION_LABEL]
                .as_str()
                .unwrap_or(manifest.name())
                .to_string();
            Some(DeployedVersion {
                version,
                namespace: manifest.namespace().unwrap_or(LAB_NAMESPACE).to_string(),
                selector,
            })
        })
        .collect()
}

/// Each version's reference prediction for `body`: a port-forward to one of its Running pods and one POST to
/// [`PREDICT_PATH`]. A version whose reference cannot be fetched is logged as a warning and left out: its responses
/// are then attributed by the version header alone (which the lab's VirtualServices set), and an exact assertion
/// counts a header-less response from it as unattributed.
pub async fn fetch_references(cluster: &Cluster, versions: &[DeployedVersion], body: &Bytes) -> References {
    let mut scores = BTreeMap::new();
    for version in versions {
        match fetch_reference(cluster, version, body).await {
            Ok((pod, reference)) => {
                tracing::debug!(version = version.version, pod, "fetched the reference prediction");
                scores.insert(version.version.clone(), reference);
            }
            Err(error) => tracing::warn!(
                version = version.version,
                selector = version.selector,
                namespace = version.namespace,
                error = format!("{error:#}"),
                "no reference prediction for this version: responses without an x-model-version header cannot be attributed to it"
            ),
        }
    }
    References::new(scores)
}

/// One version's reference: the pod it came from and the first instance's scores.
async fn fetch_reference(
    cluster: &Cluster,
    version: &DeployedVersion,
    body: &Bytes,
) -> anyhow::Result<(String, Vec<f64>)> {
    let forward = port_forward_to_pod(cluster, &version.namespace, &version.selector, TF_SERVING_REST_PORT)
        .await
        .with_context(|| format!("opening a port-forward to version \"{}\"", version.version))?;
    let endpoint = format!("{}{PREDICT_PATH}", forward.url);
    let client = crate::http::client_with_total_timeout(REFERENCE_TIMEOUT)?;
    let response = client
        .post(&endpoint)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.clone())
        .send()
        .await
        .with_context(|| format!("sending the reference prediction to pod \"{}\"", forward.pod))?;
    let status = response.status();
    let text = response
        .bytes()
        .await
        .with_context(|| format!("reading the reference prediction from pod \"{}\"", forward.pod))?;
    if !status.is_success() {
        anyhow::bail!(
            "the reference prediction from pod \"{}\" failed: {status}: {}",
            forward.pod,
            String::from_utf8_lossy(&text).trim()
        );
    }
    let scores = first_scores(&text)
        .with_context(|| format!("the reference prediction from pod \"{}\" has no scores", forward.pod))?;
    Ok((forward.pod.clone(), scores))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stages_deployments_name_their_versions_and_selectors() {
        let lab = crate::stages::LabDefinition::load_default().unwrap();
        let split = lab.stage_manifests(lab.stage("split-70-30").unwrap()).unwrap();
        let versions = deployed_versions(&split);
        let names: Vec<&str> = versions.iter().map(|version| version.version.as_str()).collect();
        assert_eq!(names, ["resnet50", "resnet101"]);
        assert_eq!(versions[1].selector, "app=image-classifier,version=resnet101");
        assert_eq!(versions[1].namespace, "tf-serving");
        let stable = lab.stage_manifests(lab.stage("stable").unwrap()).unwrap();
        let names: Vec<String> = deployed_versions(&stable)
            .into_iter()
            .map(|version| version.version)
            .collect();
        assert_eq!(names, ["resnet50"]);
    }
}
