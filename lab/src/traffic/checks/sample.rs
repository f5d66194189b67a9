//! The real predictions sent beside status requests: a few from each version the stage's routes send to, each
//! attributed (its version header, else its fingerprint) to a version the route gives weight, and answered with
//! 1000 scores. Status requests prove where traffic goes; the sample proves the models behind it predict.

use anyhow::Context;
use futures::future::join_all;
use std::collections::{BTreeMap, BTreeSet};
use tokio::time::Instant;

use super::CheckConfig;
use crate::definition::routing::VirtualServiceSpec;
use crate::definition::stages::AssertionSpec;
use crate::report::{PredictionSample, Verdict};
use crate::traffic::attribution::{self, Attribution};
use crate::traffic::tf_serving;

/// Predictions wanted from each version the routes send to.
pub const SAMPLE_PER_VERSION: u64 = 3;
/// The most predictions one header set's sample sends: a version with 15% of the traffic gives 3 in 64 with
/// probability above 0.99 (and the lab's smallest weight is 30%).
pub const SAMPLE_MAX_REQUESTS: u64 = 64;
/// The number of scores an ImageNet model answers.
const CLASSES: usize = 1000;

/// Sends the sample for `assertions` through `predict_url`: for each header set, predictions (`concurrency` at a
/// time, each within the request timeout) until each version its route gives weight has answered
/// [`SAMPLE_PER_VERSION`], at most [`SAMPLE_MAX_REQUESTS`], stopping at the first bad answer. Returns the sample
/// and the predictions sent.
pub(super) async fn check_sample(
    routing: &VirtualServiceSpec,
    assertions: &[AssertionSpec],
    predict_url: &str,
    path: &str,
    config: &CheckConfig,
) -> anyhow::Result<(PredictionSample, u64)> {
    let http = crate::http::client_with_total_timeout(config.request_timeout)?;
    let deadline = Instant::now() + config.assertion_timeout;
    let mut sample = PredictionSample {
        verdict: Verdict::Pass,
        message: String::new(),
        versions: BTreeMap::new(),
    };
    let mut sent = 0;
    let mut groups: Vec<(&BTreeMap<String, String>, BTreeSet<String>)> = Vec::new();
    for spec in assertions {
        let Some(route) = routing.route_for(path, spec.headers()).context("the sample's routes")? else {
            continue;
        };
        let wanted: BTreeSet<String> = route
            .weights()
            .into_iter()
            .filter(|(_, weight)| *weight > 0)
            .map(|(version, _)| version)
            .collect();
        if !groups.iter().any(|(headers, _)| *headers == spec.headers()) {
            groups.push((spec.headers(), wanted));
        }
    }
    for (headers, wanted) in &groups {
        let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut got: BTreeMap<String, u64> = wanted.iter().map(|version| (version.clone(), 0)).collect();
        let mut group_sent = 0;
        while got.values().any(|count| *count < SAMPLE_PER_VERSION) {
            if group_sent >= SAMPLE_MAX_REQUESTS || Instant::now() >= deadline {
                let missing: Vec<String> = got
                    .iter()
                    .filter(|(_, count)| **count < SAMPLE_PER_VERSION)
                    .map(|(version, count)| format!("{version} answered {count}"))
                    .collect();
                sample.verdict = Verdict::Fail;
                sample.message = format!(
                    "of {group_sent} predictions{}, {} (wanted {SAMPLE_PER_VERSION} from each of {}): predictions do not take the route the status requests proved",
                    describe(&headers),
                    missing.join(", "),
                    wanted.iter().cloned().collect::<Vec<_>>().join(", ")
                );
                return Ok((sample, sent));
            }
            let round = (config.concurrency as u64).clamp(1, SAMPLE_MAX_REQUESTS - group_sent);
            let answers =
                join_all((0..round).map(|_| tf_serving::predict(&http, predict_url, &config.body, &headers))).await;
            group_sent += round;
            sent += round;
            for answer in answers {
                match judge(answer, wanted, config) {
                    Ok(version) => {
                        *got.entry(version.clone()).or_default() += 1;
                        *sample.versions.entry(version).or_default() += 1;
                    }
                    Err(problem) => {
                        sample.verdict = Verdict::Fail;
                        sample.message = format!("a sample prediction{}: {problem}", describe(&headers));
                        return Ok((sample, sent));
                    }
                }
            }
        }
    }
    let counts: Vec<String> = sample
        .versions
        .iter()
        .map(|(version, count)| format!("{version} ×{count}"))
        .collect();
    sample.message = format!(
        "{sent} predictions, each attributed and with {CLASSES} scores: {}",
        counts.join(", ")
    );
    Ok((sample, sent))
}

/// The version of one sample answer, or what is wrong with it.
fn judge(
    answer: Result<tf_serving::PredictAnswer, tf_serving::PredictError>,
    wanted: &BTreeSet<String>,
    config: &CheckConfig,
) -> Result<String, String> {
    let answer = answer.map_err(|error| error.to_string())?;
    let scores = answer.first_scores().map_err(|error| error.to_string())?;
    if scores.len() != CLASSES {
        return Err(format!("answered {} scores, not {CLASSES}", scores.len()));
    }
    let version = match attribution::attribute(
        answer.model_version.as_deref(),
        Some(answer.body.as_ref()),
        &config.references,
    ) {
        Attribution::Version(version) => version,
        Attribution::Unattributed => {
            return Err(format!(
                "could not be attributed (no {} header, and its scores are not clearly one model's)",
                tf_serving::VERSION_HEADER
            ));
        }
    };
    if !wanted.contains(&version) {
        return Err(format!("came from {version}, to which its route sends nothing"));
    }
    Ok(version)
}

/// ` with user-group: canary`, or nothing.
fn describe(headers: &[(String, String)]) -> String {
    if headers.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = headers.iter().map(|(name, value)| format!("{name}: {value}")).collect();
    format!(" with {}", pairs.join(", "))
}
