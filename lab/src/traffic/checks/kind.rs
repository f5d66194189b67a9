//! Which requests prove a stage's routing (`--probe auto|status|predict`), decided from the stage's routes.
//!
//! A stage proves *routing*, and TF Serving's model-status request (`GET /v1/models/NAME`) costs the model no
//! inference, where a ResNet101 prediction costs hundreds of milliseconds of CPU. Status requests prove the same
//! thing as predictions only when, for every header set the assertions send, the stage's VirtualService routes the
//! status path as it routes the predict path ([`VirtualServiceSpec::same_route`]: a route that matches on the URI
//! can tell them apart) and every destination of that route sets [`VERSION_HEADER`] on its responses (a status
//! answer has no scores, so a response without the header could not be attributed). `auto` uses status requests
//! exactly then and predictions otherwise; `status` refuses a stage that does not allow them, before any request.

use std::collections::{BTreeMap, BTreeSet};

use crate::definition::routing::{VERSION_HEADER, VirtualServiceSpec};
use crate::definition::stages::AssertionSpec;
use crate::report::RequestKind;
use crate::traffic::probe::{ErrorKind, Outcome, Probe};
use crate::traffic::tf_serving;

/// What `--probe` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProbeChoice {
    /// Status requests where the stage's routes allow them, else predictions.
    #[default]
    Auto,
    /// Status requests; a stage whose routes do not allow them is refused.
    Status,
    /// Predictions only (every assertion request a real prediction).
    Predict,
}

impl ProbeChoice {
    /// The flag's value: `auto`, `status`, `predict`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeChoice::Auto => "auto",
            ProbeChoice::Status => "status",
            ProbeChoice::Predict => "predict",
        }
    }
}

/// The requests a stage's assertions send, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeDecision {
    /// Status requests or predictions.
    pub kind: RequestKind,
    /// The URL each assertion request goes to: the model's status URL or the predict URL.
    pub url: String,
    /// Why, for the report: the flag and, for `auto`, what the routes allow.
    pub reason: String,
}

/// Decides the requests for stage `stage` (its `routing` and `assertions`) against `ingress_url` (a root or a full
/// predict URL) under `choice`. `--probe status` where the routes do not allow it is an error with a `help:` line
/// (exit 2: the flag cannot be honoured for this stage, whatever the cluster holds).
pub fn decide(
    choice: ProbeChoice,
    stage: &str,
    routing: &VirtualServiceSpec,
    assertions: &[AssertionSpec],
    ingress_url: &str,
) -> anyhow::Result<ProbeDecision> {
    let predict_url = tf_serving::predict_url(ingress_url)?;
    let predictions = |reason: String| ProbeDecision {
        kind: RequestKind::Prediction,
        url: predict_url.clone(),
        reason,
    };
    if choice == ProbeChoice::Predict {
        return Ok(predictions("--probe predict".to_string()));
    }
    let allowed = status_allowed_through(routing, assertions, ingress_url)
        .and_then(|()| tf_serving::status_url(ingress_url).map_err(|error| format!("{error:#}")));
    match (choice, allowed) {
        (ProbeChoice::Status, Ok(url)) => Ok(ProbeDecision {
            kind: RequestKind::Status,
            url,
            reason: "--probe status".to_string(),
        }),
        (_, Ok(url)) => Ok(ProbeDecision {
            kind: RequestKind::Status,
            url,
            reason: format!(
                "--probe auto: every assertion's route takes status requests as it takes predictions and sets {VERSION_HEADER}"
            ),
        }),
        (ProbeChoice::Status, Err(why)) => anyhow::bail!(
            "--probe status cannot prove stage \"{stage}\": {why}\nhelp: pass `--probe auto` (predictions where status requests cannot prove the routing) or `--probe predict`"
        ),
        (_, Err(why)) => Ok(predictions(format!("--probe auto: predictions, because {why}"))),
    }
}

/// [`status_allowed`] for the requests through `ingress_url` (a root or a full predict URL).
pub fn status_allowed_through(
    routing: &VirtualServiceSpec,
    assertions: &[AssertionSpec],
    ingress_url: &str,
) -> Result<(), String> {
    let predict_url = tf_serving::predict_url(ingress_url).map_err(|error| format!("{error:#}"))?;
    let status_url = tf_serving::status_url(ingress_url).map_err(|error| format!("{error:#}"))?;
    status_allowed(routing, assertions, &path_of(&status_url), &path_of(&predict_url))
}

/// `Ok` when status requests to `status_path` prove what predictions to `predict_path` would for every header set
/// of `assertions`, else why not.
pub fn status_allowed(
    routing: &VirtualServiceSpec,
    assertions: &[AssertionSpec],
    status_path: &str,
    predict_path: &str,
) -> Result<(), String> {
    for spec in assertions {
        let headers = spec.headers();
        let requests = describe(headers);
        let same = routing
            .same_route(status_path, predict_path, headers)
            .map_err(|error| format!("the routes of {requests} cannot be evaluated ({error:#})"))?;
        if !same {
            return Err(format!(
                "the VirtualService routes {requests} to {status_path} (status) and to {predict_path} (predictions) differently: a route matches on the URI"
            ));
        }
        let route = routing
            .route_for(predict_path, headers)
            .map_err(|error| format!("{error:#}"))?
            .ok_or_else(|| format!("no route of the VirtualService takes {requests}"))?;
        if !route.sets_version_header() {
            return Err(format!(
                "the route of {requests} does not set {VERSION_HEADER} on every destination, so attributing a response needs the scores of a prediction"
            ));
        }
    }
    Ok(())
}

/// The most status requests [`confirm_attributable`] sends per header set.
const PILOT_REQUESTS: u32 = 32;

/// For `--probe auto` after the routes allowed status requests: a few status requests per header set (`probes`,
/// one per assertion, with each `expected` set of versions its route gives weight) to confirm what the routes
/// promise, that every answer names its version. `Some(reason)` when one came without [`VERSION_HEADER`] (the
/// gateway serves routes other than the stage's, and attributing needs the predictions' scores): predict instead.
/// It stops at the first failed request (the assertion judges failures) or once each expected version answered.
pub(super) async fn confirm_attributable(probes: &[(&Probe, BTreeSet<String>)]) -> Option<String> {
    for (probe, expected) in probes {
        let mut seen = BTreeSet::new();
        for _ in 0..PILOT_REQUESTS {
            if expected.is_subset(&seen) {
                break;
            }
            match probe.send_one().await.outcome {
                Outcome::Answered { version } => {
                    seen.insert(version);
                }
                Outcome::Failed {
                    kind: ErrorKind::Unattributed,
                    ..
                } => {
                    return Some(format!(
                        "--probe auto: predictions, because a status response carried no {VERSION_HEADER} header, so attributing responses needs the predictions' scores"
                    ));
                }
                Outcome::Failed { .. } => break,
            }
        }
    }
    None
}

/// The path of a URL this module built (an unparsable one has none, so it routes like a root).
fn path_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|url| url.path().to_string())
        .unwrap_or_default()
}

/// `requests with user-group: canary`, or `requests without headers`.
fn describe(headers: &BTreeMap<String, String>) -> String {
    if headers.is_empty() {
        return "requests without headers".to_string();
    }
    let pairs: Vec<String> = headers.iter().map(|(name, value)| format!("{name}: {value}")).collect();
    format!("requests with {}", pairs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::routing::{HttpMatchRequest, StringMatch};
    use crate::definition::stages::LabDefinition;

    fn stage(name: &str) -> (VirtualServiceSpec, Vec<AssertionSpec>) {
        let lab = LabDefinition::load_default().unwrap();
        let plan = crate::definition::plan::StagePlan::resolve(&lab, lab.stage(name).unwrap(), None).unwrap();
        (plan.routing().unwrap().clone(), plan.assertions.clone())
    }

    const URL: &str = "http://127.0.0.1:8080";

    #[test]
    fn auto_proves_the_lab_stages_with_status_requests() {
        for name in ["stable", "canary-deployed", "split-70-30", "focused"] {
            let (routing, assertions) = stage(name);
            let decision = decide(ProbeChoice::Auto, name, &routing, &assertions, URL).unwrap();
            assert_eq!(decision.kind, RequestKind::Status, "{name}: {}", decision.reason);
            assert_eq!(decision.url, "http://127.0.0.1:8080/v1/models/image_classifier");
        }
    }

    #[test]
    fn a_uri_match_makes_auto_predict_and_status_refuse() {
        let (mut routing, assertions) = stage("split-70-30");
        routing.http[0].matches = vec![HttpMatchRequest {
            uri: Some(StringMatch::Prefix(
                "/v1/models/image_classifier/versions/1:predict".to_string(),
            )),
            ..HttpMatchRequest::default()
        }];
        let auto = decide(ProbeChoice::Auto, "split-70-30", &routing, &assertions, URL).unwrap();
        assert_eq!(auto.kind, RequestKind::Prediction);
        assert!(auto.reason.contains("a route matches on the URI"), "{}", auto.reason);
        assert!(auto.url.ends_with(":predict"));
        let refused = decide(ProbeChoice::Status, "split-70-30", &routing, &assertions, URL).unwrap_err();
        let text = format!("{refused:#}");
        assert!(
            text.contains("--probe status cannot prove stage \"split-70-30\""),
            "{text}"
        );
        assert!(text.contains("help: pass `--probe auto`"), "{text}");
    }

    #[test]
    fn a_route_without_version_headers_needs_predictions() {
        let (mut routing, assertions) = stage("focused");
        routing.http[1].route[0].headers = None;
        let auto = decide(ProbeChoice::Auto, "focused", &routing, &assertions, URL).unwrap();
        assert_eq!(auto.kind, RequestKind::Prediction);
        assert!(
            auto.reason
                .contains("requests without headers does not set x-model-version"),
            "{}",
            auto.reason
        );
    }

    #[test]
    fn predict_is_predict_and_a_url_naming_no_model_cannot_ask_status() {
        let (routing, assertions) = stage("stable");
        let predict = decide(ProbeChoice::Predict, "stable", &routing, &assertions, URL).unwrap();
        assert_eq!(predict.kind, RequestKind::Prediction);
        let full = "http://h/p/v1/models/m/versions/7:predict";
        let auto = decide(ProbeChoice::Auto, "stable", &routing, &assertions, full).unwrap();
        assert_eq!(
            auto.url, "http://h/p/v1/models/m",
            "the status of the model the predict URL names"
        );
        let odd = "http://127.0.0.1:8080/custom/endpoint";
        let auto = decide(ProbeChoice::Auto, "stable", &routing, &assertions, odd).unwrap();
        assert_eq!((auto.kind, auto.url.as_str()), (RequestKind::Prediction, odd));
    }
}
