//! Each model version's reference prediction, fetched from one of the version's own pods (a port-forward to its
//! TF Serving REST port), so that responses through the gateway without an `x-model-version` header can still be
//! attributed by their fingerprint ([`crate::traffic::attribution`]).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;

use crate::cluster::port_forward::port_forward_to_pod;
use crate::cluster::{Cluster, LAB_NAMESPACE};
use crate::definition::plan::StagePlan;
use crate::traffic::attribution::References;
use crate::traffic::tf_serving::{self, PREDICT_PATH};

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

/// The versions the Deployments of the stage `plan` resolves serve, in manifest order.
pub fn deployed_versions(plan: &StagePlan) -> Vec<DeployedVersion> {
    plan.manifests
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

/// The scores of `pod`'s reference answer, in any of TF Serving's forms, or why it has none: a TF Serving error with
/// its status, or a body without scores.
fn reference_scores(pod: &str, answer: &tf_serving::PredictAnswer) -> anyhow::Result<Vec<f64>> {
    match answer.first_scores() {
        Ok(scores) => Ok(scores),
        Err(error @ tf_serving::ResponseError::Server { .. }) => {
            anyhow::bail!("the reference prediction from pod \"{pod}\" failed: {error}")
        }
        Err(error @ tf_serving::ResponseError::Malformed(_)) => {
            anyhow::bail!("the reference prediction from pod \"{pod}\" has no scores: {error}")
        }
    }
}

/// One version's reference: the pod it came from and the first instance's scores.
async fn fetch_reference(
    cluster: &Cluster,
    version: &DeployedVersion,
    body: &Bytes,
) -> anyhow::Result<(String, Vec<f64>)> {
    let forward = port_forward_to_pod(
        &cluster.client,
        &version.namespace,
        &version.selector,
        TF_SERVING_REST_PORT,
    )
    .await
    .with_context(|| format!("opening a port-forward to version \"{}\"", version.version))?;
    let endpoint = format!("{}{PREDICT_PATH}", forward.url);
    let client = crate::http::client_with_total_timeout(REFERENCE_TIMEOUT)?;
    let answer = tf_serving::predict(&client, &endpoint, body, &[])
        .await
        .with_context(|| format!("sending the reference prediction to pod \"{}\"", forward.pod))?;
    let scores = reference_scores(&forward.pod, &answer)?;
    Ok((forward.pod.clone(), scores))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stages_deployments_name_their_versions_and_selectors() {
        let lab = crate::definition::stages::LabDefinition::load_default().unwrap();
        let plan = |name: &str| crate::definition::plan::StagePlan::resolve(&lab, lab.stage(name).unwrap(), None);
        let versions = deployed_versions(&plan("split-70-30").unwrap());
        let names: Vec<&str> = versions.iter().map(|version| version.version.as_str()).collect();
        assert_eq!(names, ["resnet50", "resnet101"]);
        assert_eq!(versions[1].selector, "app=image-classifier,version=resnet101");
        assert_eq!(versions[1].namespace, "tf-serving");
        let names: Vec<String> = deployed_versions(&plan("stable").unwrap())
            .into_iter()
            .map(|version| version.version)
            .collect();
        assert_eq!(names, ["resnet50"]);
    }

    fn answer(status: reqwest::StatusCode, body: &'static str) -> tf_serving::PredictAnswer {
        tf_serving::PredictAnswer {
            status,
            model_version: None,
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn a_reference_is_read_in_the_columnar_form_and_an_error_keeps_its_status() {
        let columnar = answer(reqwest::StatusCode::OK, r#"{"outputs": [[0.25, 0.75]]}"#);
        assert_eq!(reference_scores("p", &columnar).unwrap(), vec![0.25, 0.75]);
        let error = answer(reqwest::StatusCode::NOT_FOUND, r#"{ "error": "Servable not found" }"#);
        let message = format!("{:#}", reference_scores("p", &error).unwrap_err());
        assert!(message.contains("404 Not Found: \"Servable not found\""), "{message}");
    }
}
