//! `lab up` against a real minikube (Kubernetes v1.24.3), with its assertions: run only with `LAB_E2E=1` and `--ignored`.
//!
//! `LAB_E2E=1 cargo test -p canary-lab-tests --test e2e_minikube -- --ignored --nocapture` (the `e2e` workflow runs
//! it on a hosted runner). It walks what a workshop does, on the caller's own cluster and environment (PATH with
//! minikube, KUBECONFIG, HOME), with a fresh state dir so no earlier run is resumed:
//! `lab doctor`; a first `lab up` that installs Istio if needed, exports the models and applies *and asserts* every
//! stage; `lab status`; a second `lab up` that must write nothing (every step "already done" in its JSON report, no
//! stage asserted again, and every object of the lab in the API server unchanged); `lab reset`; `lab stage
//! split-70-30` with its share assertion; `lab down` (the namespace is gone, Istio stays) and `lab down --all` (Istio
//! and the tunnel too, leaving the cluster as a fresh one for the next run).
//!
//! The ingress is `minikube tunnel` (`--ingress tunnel`, what `auto` picks where `sudo -n true` works, as on a hosted
//! runner): its URL outlives each command, so the second `lab up` finds the same URL and has nothing to do.
//! `LAB_E2E_PROFILE` picks the minikube profile (default `minikube`); `LAB_E2E_ISTIOCTL` passes an istioctl to
//! `lab up --istioctl` and `lab down --istioctl` instead of fetching one; `LAB_E2E_STATE_DIR` (empty or new) keeps the
//! state dir, tunnel log included, for a diagnosis afterwards.
//!
//! The helpers that read the CLI's JSON are checked offline, on reports built from `lab`'s own types, by the tests at
//! the end of this file (not ignored), so a change of the output's shape fails here and not only on a cluster.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use canary_lab_tests::process::Process;
use canary_lab_tests::up_args::UpArgs;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

/// The lab's namespace (`lab::cluster::LAB_NAMESPACE`).
const NAMESPACE: &str = "tf-serving";
/// The label on every object the lab applies.
const MANAGED_BY: &str = "app.kubernetes.io/managed-by=canary-lab";
/// The kinds of the lab's namespaced objects, as (group, version, kind).
const LAB_KINDS: &[(&str, &str, &str)] = &[
    ("", "v1", "ConfigMap"),
    ("", "v1", "Service"),
    ("apps", "v1", "Deployment"),
    ("batch", "v1", "Job"),
    ("networking.istio.io", "v1beta1", "Gateway"),
    ("networking.istio.io", "v1beta1", "VirtualService"),
    ("networking.istio.io", "v1beta1", "DestinationRule"),
];

#[test]
#[ignore = "needs a real minikube: LAB_E2E=1 cargo test -p canary-lab-tests --test e2e_minikube -- --ignored"]
fn lab_up_on_a_real_minikube_asserts_every_stage_writes_nothing_twice_and_comes_down() {
    assert_eq!(
        std::env::var("LAB_E2E").as_deref(),
        Ok("1"),
        "this test changes a real cluster: set LAB_E2E=1 to run it"
    );
    let profile = std::env::var("LAB_E2E_PROFILE").unwrap_or_else(|_| "minikube".to_string());
    let istioctl = std::env::var("LAB_E2E_ISTIOCTL").ok();
    // A fresh state dir: `LAB_E2E_STATE_DIR` (kept afterwards for a diagnosis: the tunnel's log is there), else a
    // temporary one.
    let temporary_state = tempfile::tempdir().expect("a state dir");
    let state_dir = match std::env::var_os("LAB_E2E_STATE_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => temporary_state.path().to_path_buf(),
    };
    let earlier_state = std::fs::read_dir(&state_dir).map_or(0, Iterator::count);
    assert_eq!(
        earlier_state,
        0,
        "{} holds an earlier run's state: give an empty or new directory",
        state_dir.display()
    );
    let lab = Lab {
        profile: profile.clone(),
        state_dir,
    };
    let definition = lab::definition::stages::LabDefinition::load_default().expect("assets/lab.toml");
    let stage_names: Vec<&str> = definition.stages.iter().map(|stage| stage.name.as_str()).collect();
    let last_stage = *stage_names.last().expect("lab.toml has stages");
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");

    let doctor = lab.run(&["lab", "doctor"], minutes(2));
    assert_eq!(doctor.code, 0, "lab doctor failed");

    let mut up_args = UpArgs::plain("tunnel").json();
    if let Some(istioctl) = &istioctl {
        up_args = up_args.istioctl(Path::new(istioctl));
    }
    let up_args = up_args.args();
    let up_args: Vec<&str> = up_args.iter().map(String::as_str).collect();
    // Istio's install, two image pulls of TF Serving and the model export (TensorFlow's image, ImageNet weights).
    let first = lab.run(&up_args, minutes(60));
    assert_eq!(first.code, 0, "the first lab up failed");
    let first_report = first.json();
    assert_eq!(first_report["active_stage"], last_stage, "{first_report:#}");
    assert_eq!(first_report["ingress_kind"], "tunnel", "{first_report:#}");
    assert_eq!(first_report["verdict"], "pass", "{first_report:#}");
    let expected_checks: Vec<(&str, usize)> = definition
        .stages
        .iter()
        .map(|stage| (stage.name.as_str(), stage.assertions.len()))
        .collect();
    assert_eq!(
        asserted_stages(&first_report),
        expected_checks,
        "the first lab up asserts every stage, in order, each with all its assertions"
    );
    let not_passed = checks_not_passed(&first_report["checks"]);
    assert!(not_passed.is_empty(), "assertions that did not pass: {not_passed:?}");

    let status = lab.run(&["lab", "status", "--format", "json"], minutes(1));
    assert_eq!(status.code, 0, "lab status says not ready");
    let status = status.json();
    assert_eq!(status["istio_version"], "1.12.7", "{status:#}");
    assert_eq!(status["active_stage"], last_stage, "{status:#}");
    assert_eq!(status["ready"], true, "{status:#}");
    assert_eq!(status["tunnel"]["running"], true, "{status:#}");

    // The second run writes nothing: the report says so step by step, and the API server agrees.
    let before = runtime
        .block_on(lab_objects(&profile))
        .expect("listing the lab's objects");
    let second = lab.run(&up_args, minutes(10));
    assert_eq!(second.code, 0, "the second lab up failed");
    let second_report = second.json();
    assert_eq!(
        second_report["verdict"], "pass",
        "the stage recorded as passed stays so: {second_report:#}"
    );
    let changed = steps_that_changed(&second_report);
    assert!(changed.is_empty(), "the second lab up changed something: {changed:?}");
    assert_eq!(
        step_names(&second_report),
        step_names(&first_report),
        "both runs walk the same steps"
    );
    assert_eq!(
        second_report["checks"],
        Value::Array(Vec::new()),
        "stages already applied are not asserted again"
    );
    assert_eq!(second_report["active_stage"], last_stage);
    assert_eq!(
        second_report["ingress_url"], first_report["ingress_url"],
        "the tunnel's URL is reused"
    );
    let after = runtime
        .block_on(lab_objects(&profile))
        .expect("listing the lab's objects");
    assert_eq!(after, before, "the second lab up wrote to the lab's objects");

    // Back to `stable`: the running resnet50 pods are reused, the canary's objects pruned.
    let reset = lab.run(&["lab", "reset", "--format", "json"], minutes(10));
    assert_eq!(reset.code, 0, "lab reset failed");
    let reset_report = reset.json();
    assert_eq!(reset_report["stage"], "stable");
    assert_eq!(
        changes_other_than_unchanged(&reset_report),
        vec![
            (
                "ConfigMap".to_string(),
                "resnet101-configs".to_string(),
                "deleted".to_string()
            ),
            (
                "Deployment".to_string(),
                "image-classifier-resnet101".to_string(),
                "deleted".to_string()
            ),
            (
                "DestinationRule".to_string(),
                "image-classifier".to_string(),
                "deleted".to_string()
            ),
            (
                "VirtualService".to_string(),
                "image-classifier".to_string(),
                "configured".to_string()
            ),
        ],
        "{reset_report:#}"
    );
    assert_eq!(reset_report["restarted"], Value::Array(Vec::new()), "{reset_report:#}");

    // One stage by hand, with its share assertion.
    let stage = lab.run(&["lab", "stage", "split-70-30", "--format", "json"], minutes(20));
    assert_eq!(stage.code, 0, "lab stage split-70-30 failed");
    let documents = stage.json_documents();
    assert_eq!(
        documents.len(),
        2,
        "lab stage prints what changed, then the assertions' report"
    );
    assert_eq!(
        changes_other_than_unchanged(&documents[0]),
        vec![
            (
                "ConfigMap".to_string(),
                "resnet101-configs".to_string(),
                "created".to_string()
            ),
            (
                "Deployment".to_string(),
                "image-classifier-resnet101".to_string(),
                "created".to_string()
            ),
            (
                "DestinationRule".to_string(),
                "image-classifier".to_string(),
                "created".to_string()
            ),
            (
                "VirtualService".to_string(),
                "image-classifier".to_string(),
                "configured".to_string()
            ),
        ],
        "{:#}",
        documents[0]
    );
    let run = &documents[1];
    assert_eq!(run["verdict"], "pass", "{run:#}");
    assert_eq!(run["stages"][0]["stage"], "split-70-30", "{run:#}");
    let share = &run["stages"][0]["assertions"][0];
    assert_eq!(share["expectation"]["kind"], "share", "{share:#}");
    assert_eq!(share["configured_weights"]["resnet50"], 70, "{share:#}");
    assert_eq!(share["configured_weights"]["resnet101"], 30, "{share:#}");
    assert_eq!(share["verdict"], "pass", "{share:#}");

    // Down: the namespace is gone and Istio stays; then everything, tunnel included.
    let down = lab.run(&["lab", "down", "--format", "json"], minutes(10));
    assert_eq!(down.code, 0, "lab down failed");
    assert_eq!(down.json()["namespace_deleted"], true);
    let namespace = runtime
        .block_on(namespace_exists(&profile))
        .expect("reading the namespace");
    assert!(!namespace, "namespace {NAMESPACE} is still there after lab down");
    let status = lab.run(&["lab", "status", "--format", "json"], minutes(1)).json();
    assert_eq!(status["namespace"], false, "{status:#}");
    assert_eq!(
        status["istio_version"], "1.12.7",
        "lab down (without --all) keeps Istio: {status:#}"
    );

    let mut down_all_args = vec!["lab", "down", "--all", "--format", "json"];
    if let Some(istioctl) = &istioctl {
        down_all_args.extend(["--istioctl", istioctl.as_str()]);
    }
    let down_all = lab.run(&down_all_args, minutes(10));
    assert_eq!(down_all.code, 0, "lab down --all failed");
    let down_all = down_all.json();
    assert_eq!(down_all["istio_uninstalled"], true, "{down_all:#}");
    let stopped = &down_all["tunnel_stopped"];
    let tunnel_pid = stopped["pid"].as_u64().expect("lab down --all stops the tunnel");
    // Interrupted, so that minikube removed its route and the gateway's ingress IP (it does only on SIGINT).
    assert_eq!(stopped["signal"], "SIGINT", "{down_all:#}");
    assert_eq!(stopped["cleaned_up"], true, "{down_all:#}");
    // `lab down` waited for the exit; a bounded poll (30 s) stays as a guard against a pid still being reaped.
    let proc_entry = format!("/proc/{tunnel_pid}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Path::new(&proc_entry).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        !Path::new(&proc_entry).exists(),
        "minikube tunnel (pid {tunnel_pid}) still runs 30s after lab down --all"
    );
    let status = lab.run(&["lab", "status", "--format", "json"], minutes(1)).json();
    assert_eq!(status["istio_version"], Value::Null, "{status:#}");
}

/// The CLI on the caller's cluster: one profile, one state dir for the whole test.
struct Lab {
    profile: String,
    state_dir: std::path::PathBuf,
}

/// What one CLI run printed and how it exited.
struct Run {
    code: i32,
    stdout: String,
}

impl Lab {
    /// Runs `lab-cli --profile P --state-dir S ARGS…`, showing its stderr as it comes (progress of long steps), and
    /// kills it after `limit`.
    fn run(&self, args: &[&str], limit: Duration) -> Run {
        eprintln!("$ lab {}", args.join(" "));
        let mut child = Process::new(canary_lab_tests::cargo_bin("lab-cli"))
            .args(["--profile", &self.profile])
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lab-cli");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let stdout_reader = std::thread::spawn(move || {
            let mut text = String::new();
            stdout.read_to_string(&mut text).expect("reading lab-cli's stdout");
            text
        });
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("  | {line}");
            }
        });
        // std has no wait with a timeout: poll the exit once a second, bounded by `limit`.
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for lab-cli") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("lab {} did not finish within {}s", args.join(" "), limit.as_secs());
            }
            std::thread::sleep(Duration::from_secs(1));
        };
        let stdout = stdout_reader.join().expect("stdout reader");
        stderr_reader.join().expect("stderr reader");
        eprintln!("{stdout}");
        Run {
            code: status.code().unwrap_or(-1),
            stdout,
        }
    }
}

impl Run {
    /// stdout as one JSON document.
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}):\n{}", self.stdout))
    }

    /// stdout as a sequence of JSON documents.
    fn json_documents(&self) -> Vec<Value> {
        serde_json::Deserializer::from_str(&self.stdout)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}):\n{}", self.stdout))
    }
}

fn minutes(count: u64) -> Duration {
    Duration::from_secs(count * 60)
}

/// The steps of a `lab up --format json` report (`lab::lifecycle::up::UpReport`) that changed something: every outcome but
/// `already_done` and `checked` (the read-only steps: doctor, the smoke prediction), as "step: outcome (detail)".
fn steps_that_changed(up_report: &Value) -> Vec<String> {
    let steps = up_report["steps"].as_array().expect("an up report has steps");
    assert!(!steps.is_empty(), "an up report with no steps: {up_report:#}");
    steps
        .iter()
        .filter(|step| step["outcome"] != "already_done" && step["outcome"] != "checked")
        .map(|step| format!("{}: {} ({})", step["step"], step["outcome"], step["detail"]))
        .collect()
}

/// The step names of an up report, in order.
fn step_names(up_report: &Value) -> Vec<String> {
    up_report["steps"]
        .as_array()
        .expect("an up report has steps")
        .iter()
        .map(|step| step["step"].as_str().expect("a step name").to_string())
        .collect()
}

/// The stages an up report asserted, in order, with how many assertions each ran.
fn asserted_stages(up_report: &Value) -> Vec<(&str, usize)> {
    up_report["checks"]
        .as_array()
        .expect("an up report has checks")
        .iter()
        .map(|check| {
            let assertions = check["assertions"].as_array().map_or(0, Vec::len);
            (check["stage"].as_str().expect("a stage name"), assertions)
        })
        .collect()
}

/// Every stage or assertion of `checks` (`lab::report::StageReport`s) whose verdict is not `pass`.
fn checks_not_passed(checks: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for check in checks.as_array().expect("checks are a list") {
        if check["verdict"] != "pass" {
            found.push(format!("stage {}: {}", check["stage"], check["verdict"]));
        }
        for assertion in check["assertions"].as_array().into_iter().flatten() {
            if assertion["verdict"] != "pass" {
                found.push(format!(
                    "stage {}, {}: {} ({})",
                    check["stage"], assertion["name"], assertion["verdict"], assertion["message"]
                ));
            }
        }
    }
    found
}

/// The (kind, name, change) of every object of a stage's apply report (`lab::lifecycle::apply::AppliedStage`) that was
/// not unchanged, sorted (by kind, then name).
fn changes_other_than_unchanged(stage_report: &Value) -> Vec<(String, String, String)> {
    let mut changes: Vec<(String, String, String)> = stage_report["changes"]
        .as_array()
        .expect("a stage report has changes")
        .iter()
        .filter(|change| change["change"] != "unchanged")
        .map(|change| {
            let text = |field: &str| change[field].as_str().unwrap_or_default().to_string();
            (text("kind"), text("name"), text("change"))
        })
        .collect();
    changes.sort();
    changes
}

/// A client for the profile's context (minikube names the context after the profile).
async fn client(profile: &str) -> anyhow::Result<kube::Client> {
    let settings = lab::Settings::with_defaults(profile)?;
    lab::cluster::kube_client::client_for(&settings).await
}

/// The lab's objects as the API server holds them, `Kind/name` → what changes only when someone writes the object:
/// `resourceVersion` for kinds no controller writes back to, `metadata.generation` (bumped by every spec change)
/// with the labels and annotations for Deployments and Jobs, whose status their controllers keep updating.
async fn lab_objects(profile: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let client = client(profile).await?;
    let mut objects = BTreeMap::new();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if let Some(namespace) = namespaces.get_opt(NAMESPACE).await? {
        let version = namespace.metadata.resource_version.unwrap_or_default();
        objects.insert(format!("Namespace/{NAMESPACE}"), format!("resourceVersion {version}"));
    }
    for (group, version, kind) in LAB_KINDS {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &resource);
        for object in api.list(&ListParams::default().labels(MANAGED_BY)).await?.items {
            let metadata = object.metadata;
            let fingerprint = match *kind {
                "Deployment" | "Job" => format!(
                    "generation {:?}, labels {:?}, annotations {:?}",
                    metadata.generation, metadata.labels, metadata.annotations
                ),
                _ => format!("resourceVersion {}", metadata.resource_version.unwrap_or_default()),
            };
            objects.insert(format!("{kind}/{}", metadata.name.unwrap_or_default()), fingerprint);
        }
    }
    Ok(objects)
}

/// Whether the lab's namespace exists (a Terminating one counts: `lab down` waits until it is gone).
async fn namespace_exists(profile: &str) -> anyhow::Result<bool> {
    let namespaces: Api<Namespace> = Api::all(client(profile).await?);
    Ok(namespaces.get_opt(NAMESPACE).await?.is_some())
}

// The helpers above against the CLI's real JSON, made from `lab`'s own types (these run offline).

fn step(name: &str, outcome: lab::lifecycle::up::StepOutcome) -> lab::lifecycle::up::StepRecord {
    lab::lifecycle::up::StepRecord {
        step: name.to_string(),
        outcome,
        detail: "detail".to_string(),
        seconds: 0.5,
    }
}

fn up_report(steps: Vec<lab::lifecycle::up::StepRecord>) -> Value {
    let report = lab::lifecycle::up::UpReport {
        steps,
        ingress_url: "http://10.96.0.10".to_string(),
        ingress_kind: lab::lifecycle::state::IngressKind::Tunnel,
        active_stage: "focused".to_string(),
        verdict: lab::report::Verdict::Pass,
        checks: Vec::new(),
    };
    serde_json::from_str(&lab::output::to_json(&report)).unwrap()
}

#[test]
fn a_step_that_changed_something_is_named_and_already_done_steps_are_not() {
    use lab::lifecycle::up::StepOutcome::{AlreadyDone, Checked, Done};
    let warm = up_report(vec![
        step("doctor", Checked),
        step("istio", AlreadyDone),
        step("stage focused", AlreadyDone),
    ]);
    assert_eq!(steps_that_changed(&warm), Vec::<String>::new());
    assert_eq!(step_names(&warm), ["doctor", "istio", "stage focused"]);
    let cold = up_report(vec![step("istio", AlreadyDone), step("workloads", Done)]);
    assert_eq!(steps_that_changed(&cold), [r#""workloads": "done" ("detail")"#]);
}

#[test]
fn the_changes_of_a_stage_report_are_read_without_the_unchanged_objects() {
    use lab::cluster::apply::{Change, ObjectChange};
    let change = |kind: &str, name: &str, change: Change| ObjectChange {
        kind: kind.to_string(),
        name: name.to_string(),
        namespace: Some(NAMESPACE.to_string()),
        change,
    };
    let report = lab::lifecycle::apply::AppliedStage {
        stage: "stable".to_string(),
        changes: vec![
            change("VirtualService", "image-classifier", Change::Configured),
            change("Deployment", "image-classifier-resnet50", Change::Unchanged),
            change("Deployment", "image-classifier-resnet101", Change::Deleted),
            change("ConfigMap", "resnet101-configs", Change::Created),
        ],
        restarted: Vec::new(),
    };
    let json: Value = serde_json::from_str(&lab::output::to_json(&report)).unwrap();
    assert_eq!(
        changes_other_than_unchanged(&json),
        [
            (
                "ConfigMap".to_string(),
                "resnet101-configs".to_string(),
                "created".to_string()
            ),
            (
                "Deployment".to_string(),
                "image-classifier-resnet101".to_string(),
                "deleted".to_string()
            ),
            (
                "VirtualService".to_string(),
                "image-classifier".to_string(),
                "configured".to_string()
            ),
        ]
    );
}

#[test]
fn the_asserted_stages_and_their_verdicts_are_read_from_an_up_report() {
    use lab::report::{AssertionReport, StageReport};
    let stable = StageReport::named("stable").assertion(AssertionReport::all_to("resnet50", 270));
    let focused = StageReport::named("focused")
        .assertion(AssertionReport::all_to("resnet101", 270).header("user-group", "canary"))
        .assertion(AssertionReport::all_to("resnet50", 270));
    let mut report = up_report(Vec::new());
    report["checks"] = serde_json::to_value([&stable, &focused]).unwrap();
    assert_eq!(asserted_stages(&report), [("stable", 1), ("focused", 2)]);
    assert_eq!(checks_not_passed(&report["checks"]), Vec::<String>::new());

    let inconclusive = StageReport::named("split-70-30").assertion(
        AssertionReport::split(&[("resnet50", 70, 2100), ("resnet101", 30, 900)]).inconclusive("at the cap"),
    );
    report["checks"] = serde_json::to_value([&stable, &inconclusive]).unwrap();
    let not_passed = checks_not_passed(&report["checks"]);
    assert_eq!(not_passed.len(), 2, "the stage and its assertion: {not_passed:?}");
    assert!(
        not_passed.iter().all(|line| line.contains("inconclusive")),
        "{not_passed:?}"
    );
}
