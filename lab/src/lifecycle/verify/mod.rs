//! `lab verify STAGE`: the learner applied a stage by hand (`kubectl apply -f`, as in the original lab); check it
//! without writing anything to the cluster.
//!
//! The stage's checklist ([`crate::definition::expectations::checklist`]) is checked in order: each object is read
//! and compared semantically with the stage's ([`compare`]), each Deployment's pods must be ready with their
//! sidecar, the live VirtualService (read leniently: [`live_routes`]) must route each header set the assertions send
//! as the stage does ([`routes`]), and then — only when all of that holds, since traffic through a known-wrong
//! configuration teaches nothing the hints do not already say — the stage's traffic assertions run through the
//! ingress (the same code as `lab check`, with the propagation window, because the learner may have applied a moment
//! ago). Every item that does not hold
//! carries hints from `assets/hints.toml` that name the object, the field and the fix.
//!
//! Only GET and LIST requests (and port-forwards to fetch each version's reference prediction) reach the API
//! server; nothing is recorded in the lab's state.

mod compare;
mod live_routes;
mod routes;

use std::collections::BTreeMap;

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde::Serialize;
use serde_json::Value;

use crate::Settings;
use crate::cluster::Cluster;
use crate::cluster::diagnose::pod_ready;
use crate::definition::expectations::{self, Expectation, INJECTION_LABEL, SIDECAR_CONTAINER, Subject};
use crate::definition::hints::{Finding, HintKind, Hints};
use crate::definition::manifests::Manifest;
use crate::definition::plan::StagePlan;
use crate::definition::routing::VirtualServiceSpec;
use crate::definition::stages::LabDefinition;
use crate::lifecycle::stage::{given_or_recorded_ingress, resolve_stage};
use crate::report::{StageReport, Verdict};
use crate::traffic::checks::kind::status_allowed_through;
use crate::traffic::checks::progress::TerminalProgress;
use crate::traffic::checks::{ProbeChoice, run_stage_with, stage_body};
use crate::traffic::references::{deployed_versions, fetch_references};

/// Where an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// It holds.
    Holds,
    /// It does not hold; the item's hints say why.
    Fails,
    /// It was not checked, because an item it depends on does not hold.
    NotRun,
}

/// One checked item of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct ChecklistItem {
    /// The item, as [`Expectation::text`] states it.
    pub item: String,
    /// Where it stands.
    pub state: ItemState,
    /// What was found, when it says more than the state (the traffic's numbers, why it was not run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    /// For an item that fails: what is wrong and how to fix it, one hint per difference.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
}

/// What `lab verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Checklist {
    /// The stage verified.
    pub stage: String,
    /// True when every item holds.
    pub holds: bool,
    /// The items, in the order they were checked.
    pub items: Vec<ChecklistItem>,
    /// The ingress URL the traffic went through, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_url: Option<String>,
}

/// Where `lab verify` sends its traffic.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The ingress URL; `None`: the one `lab up` recorded.
    pub url: Option<String>,
}

/// Verifies stage `name` against the cluster as it is: reads, compares, and (when the objects hold) asserts the
/// stage's traffic. Errors are for what stops the check itself (no cluster, an unknown stage); what is wrong with
/// the learner's objects is in the returned [`Checklist`].
pub async fn verify_stage(settings: &Settings, name: &str, options: &VerifyOptions) -> anyhow::Result<Checklist> {
    let lab = LabDefinition::load_default()?;
    let stage = lab.stage(name)?;
    let hints = Hints::load_default()?;
    let plan = resolve_stage(settings, &lab, stage)?;
    let cluster = Cluster::connect(settings).await?;
    let expectations = expectations::checklist(&plan);
    let mut live = LiveObjects::default();
    let mut items = Vec::new();
    for expectation in expectations
        .iter()
        .filter(|e| !matches!(e.subject, Subject::Traffic { .. }))
    {
        let (state, findings) = check_item(&cluster, &plan, expectation, &mut live).await?;
        items.push(ChecklistItem {
            item: expectation.text.clone(),
            state,
            found: None,
            hints: findings.iter().map(|finding| hints.render(finding)).collect(),
        });
    }
    let traffic: Vec<&Expectation> = expectations
        .iter()
        .filter(|e| matches!(e.subject, Subject::Traffic { .. }))
        .collect();
    let mut ingress_url = None;
    if items.iter().all(|item| item.state == ItemState::Holds) {
        let live_routes = live.routes.as_ref().and_then(|(_, routes)| routes.as_ref().ok());
        let (url, report) = assert_traffic(settings, &cluster, &plan, live_routes, options).await?;
        items.extend(traffic_items(&traffic, &report, &hints, &plan.name));
        ingress_url = Some(url);
    } else {
        items.extend(traffic.iter().map(|expectation| ChecklistItem {
            item: expectation.text.clone(),
            state: ItemState::NotRun,
            found: Some("not run: fix the items above first".to_string()),
            hints: Vec::new(),
        }));
    }
    Ok(Checklist {
        stage: plan.name.clone(),
        holds: items.iter().all(|item| item.state == ItemState::Holds),
        items,
        ingress_url,
    })
}

/// The live objects read so far, by kind and name (`None`: not in the cluster), for the items that depend on them.
#[derive(Default)]
struct LiveObjects {
    objects: BTreeMap<(String, String), Option<Value>>,
    /// The name and routes of the live VirtualService, read once when it is read ([`live_routes`]).
    routes: Option<(String, Result<VirtualServiceSpec, Finding>)>,
}

impl LiveObjects {
    fn get(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects.get(&(kind.to_string(), name.to_string()))?.as_ref()
    }
}

/// Checks one non-traffic item.
async fn check_item(
    cluster: &Cluster,
    plan: &StagePlan,
    expectation: &Expectation,
    live: &mut LiveObjects,
) -> anyhow::Result<(ItemState, Vec<Finding>)> {
    let findings = match &expectation.subject {
        Subject::Object { manifest } => {
            let object = match read_object(cluster, manifest).await? {
                Ok(object) => object,
                Err(finding) => return Ok((ItemState::Fails, vec![finding])),
            };
            let findings = match &object {
                Some(object) => compare::compare_object(manifest, object, &plan.manifests),
                None => vec![missing(manifest, &plan.name)],
            };
            if let (Some(object), "VirtualService", None) = (&object, manifest.kind(), &live.routes) {
                let name = manifest.name().to_string();
                live.routes = Some((name.clone(), live_routes::read_live_routes(&name, object)));
            }
            live.objects
                .insert((manifest.kind().to_string(), manifest.name().to_string()), object);
            findings
        }
        Subject::Pods {
            namespace,
            deployment,
            selector,
            sidecar,
        } => {
            if live.get("Deployment", deployment).is_none() {
                return Ok((ItemState::NotRun, Vec::new()));
            }
            let namespace_labelled = live
                .get("Namespace", namespace)
                .is_some_and(expectations::injection_enabled);
            check_pods(cluster, namespace, deployment, selector, *sidecar, namespace_labelled).await?
        }
        Subject::Routes { headers, weights } => {
            let Some((name, read)) = &live.routes else {
                return Ok((ItemState::NotRun, Vec::new()));
            };
            match read {
                Ok(spec) => routes::compare_routes(name, spec, headers, weights),
                Err(finding) => vec![finding.clone()],
            }
        }
        Subject::Traffic { .. } => Vec::new(),
    };
    let state = if findings.is_empty() {
        ItemState::Holds
    } else {
        ItemState::Fails
    };
    Ok((state, findings))
}

/// The live object of `manifest` (`Ok(None)` when absent), or the finding that its kind is not served.
async fn read_object(cluster: &Cluster, manifest: &Manifest) -> anyhow::Result<Result<Option<Value>, Finding>> {
    let api = match cluster.resolve(manifest) {
        Ok(api) => api,
        Err(unknown) => {
            return Ok(Err(Finding::new(
                HintKind::UnknownKind,
                &[
                    ("kind", unknown.kind),
                    ("api_version", unknown.api_version),
                    ("file", unknown.file),
                ],
            )));
        }
    };
    let object = api
        .get_opt(manifest.name())
        .await
        .with_context(|| format!("reading {}", manifest.describe()))?;
    Ok(Ok(object.map(|object| serde_json::to_value(object).unwrap_or_default())))
}

/// The finding for an object of the stage that is not in the cluster.
fn missing(manifest: &Manifest, stage: &str) -> Finding {
    Finding::new(
        HintKind::MissingObject,
        &[
            ("kind", manifest.kind().to_string()),
            ("name", manifest.name().to_string()),
            ("namespace", manifest.namespace().unwrap_or(manifest.name()).to_string()),
            ("file", manifest.file.clone()),
            ("stage", stage.to_string()),
        ],
    )
}

/// The pods of a Deployment: there are some, all ready, each with the sidecar when the stage's namespace injects
/// one (and, when not, whether the namespace's label or the pods' age is why).
async fn check_pods(
    cluster: &Cluster,
    namespace: &str,
    deployment: &str,
    selector: &str,
    sidecar: bool,
    namespace_labelled: bool,
) -> anyhow::Result<Vec<Finding>> {
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), namespace);
    let pods = api
        .list(&ListParams::default().labels(selector))
        .await
        .with_context(|| format!("listing the pods of deployment/{deployment} in namespace \"{namespace}\""))?;
    // Pods on their way out are not the Deployment's pods any more.
    let pods: Vec<&Pod> = pods
        .items
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .collect();
    let names = [
        ("deployment", deployment.to_string()),
        ("namespace", namespace.to_string()),
    ];
    if pods.is_empty() {
        return Ok(vec![Finding::new(HintKind::PodsMissing, &names)]);
    }
    let mut findings = Vec::new();
    let not_ready = pods.iter().filter(|pod| !pod_ready(pod)).count();
    if not_ready > 0 {
        findings.push(Finding::new(
            HintKind::PodsNotReady,
            &[
                names[0].clone(),
                names[1].clone(),
                ("count", crate::output::plural(not_ready as u64, "pod")),
                ("selector", selector.to_string()),
            ],
        ));
    }
    let without_sidecar = pods.iter().any(|pod| {
        !pod.spec
            .as_ref()
            .is_some_and(|spec| spec.containers.iter().any(|c| c.name == SIDECAR_CONTAINER))
    });
    if sidecar && without_sidecar {
        let kind = if namespace_labelled {
            HintKind::SidecarStartedBefore
        } else {
            HintKind::SidecarUnlabelled
        };
        let label = format!("{}={}", INJECTION_LABEL.0, INJECTION_LABEL.1);
        findings.push(Finding::new(
            kind,
            &[names[0].clone(), names[1].clone(), ("label", label)],
        ));
    }
    Ok(findings)
}

/// Runs the stage's assertions through the ingress (`--url`, else the recorded one), with each version's reference
/// prediction fetched from its own pod, as `lab stage` asserts a stage. `live_routes` are the learner's routes: the
/// checks decide status requests against predictions from them, not from the stage's.
async fn assert_traffic(
    settings: &Settings,
    cluster: &Cluster,
    plan: &StagePlan,
    live_routes: Option<&VirtualServiceSpec>,
    options: &VerifyOptions,
) -> anyhow::Result<(String, StageReport)> {
    let (url, _ingress) = given_or_recorded_ingress(
        settings,
        options.url.as_deref(),
        "no ingress URL is recorded, so the stage's traffic cannot be checked",
    )
    .await?;
    let report = async {
        let body = stage_body(&url).await?;
        let references = fetch_references(cluster, &deployed_versions(plan), &body).await;
        // The live routes were found to send predictions as the stage's do, but a learner's route may still take
        // TF Serving's status requests elsewhere (a route matching their URI): status requests only where the live
        // routes, too, take them as predictions (`--probe auto` then checks the stage's routes and that the answers
        // carry their version); predictions otherwise.
        let choice = match live_routes.map(|routes| status_allowed_through(routes, &plan.assertions, &url)) {
            Some(Ok(())) => ProbeChoice::Auto,
            Some(Err(why)) => {
                tracing::info!(why, "lab verify checks the traffic with predictions");
                ProbeChoice::Predict
            }
            None => ProbeChoice::Predict,
        };
        run_stage_with(plan, &url, body, references, choice, TerminalProgress::on_terminal()).await
    }
    .await
    .with_context(|| format!("sending the traffic of stage \"{}\" through {url}", plan.name))?;
    Ok((url, report))
}

/// The traffic items from the assertions' report.
fn traffic_items(traffic: &[&Expectation], report: &StageReport, hints: &Hints, stage: &str) -> Vec<ChecklistItem> {
    traffic
        .iter()
        .map(|expectation| {
            let Subject::Traffic { index, .. } = expectation.subject else {
                unreachable!("only traffic items are passed")
            };
            let assertion = report.assertions.get(index);
            let found = assertion.map(|assertion| assertion.message.clone());
            let holds = assertion.is_some_and(|assertion| assertion.verdict == Verdict::Pass);
            let hints = if holds {
                Vec::new()
            } else {
                vec![hints.render(&Finding::new(
                    HintKind::Traffic,
                    &[
                        ("stage", stage.to_string()),
                        ("found", found.clone().unwrap_or_default()),
                    ],
                ))]
            };
            ChecklistItem {
                item: expectation.text.clone(),
                state: if holds { ItemState::Holds } else { ItemState::Fails },
                found,
                hints,
            }
        })
        .collect()
}
