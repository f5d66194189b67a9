//! `lab verify STAGE` through the CLI as a process, as a learner meets it: the lab brought up to `stable`, then a
//! stage applied by hand (objects stored in the fake Kubernetes API as another client — the learner's
//! `kubectl apply` — would store them), with the mistakes learners make, one after the other. The gateway follows
//! the API as istiod would (`canary_lab_tests::istiod`), so the traffic items go through real Envoy.
//!
//! Each run must send no write request to the API server.

use std::time::Duration;

use canary_lab_tests::cli::{Cli, CliOutput};
use canary_lab_tests::fake_kube::FakeKube;
use canary_lab_tests::workshop::{PROFILE, Workshop};
use lab::definition::manifests::parse_documents;
use serde_json::Value;

/// A learner's laptop: the lab up to `stable`, and what they apply by hand.
struct Laptop {
    workshop: Workshop,
}

impl Laptop {
    async fn at_stable() -> Laptop {
        Laptop {
            workshop: Workshop::up_to("stable").await,
        }
    }

    /// `lab verify STAGE` (with `extra` flags); asserts it wrote nothing to the API.
    async fn verify(&self, stage: &str, extra: &[&str]) -> CliOutput {
        self.workshop.kube.clear_requests();
        let mut args = vec!["lab", "verify", stage];
        args.extend(extra);
        let verified = self.workshop.run(&args).await;
        let writes = self.workshop.kube.writes();
        assert!(writes.is_empty(), "lab verify wrote to the API: {writes:#?}");
        verified
    }

    /// What `kubectl apply -f FILE` of the lab's manifest `file` stores, after `edit` changed its text.
    fn apply_by_hand(&self, file: &str, edit: impl Fn(String) -> String) {
        let path = lab::definition::assets::manifests_dir().join(file);
        let text = edit(std::fs::read_to_string(&path).unwrap());
        for manifest in parse_documents(file, &text).unwrap() {
            self.workshop.kube.put(&plural(manifest.kind()), manifest.object);
        }
    }

    /// Waits until every pod of `deployment` runs its current template and is Ready (the fake's rollout).
    async fn until_rolled_out(&self, selector_version: &str) {
        let rolled_out = async {
            loop {
                let pods: Vec<Value> = self
                    .workshop
                    .kube
                    .view()
                    .objects("pods", "tf-serving")
                    .into_iter()
                    .filter(|pod| pod["metadata"]["labels"]["version"] == selector_version)
                    .collect();
                let ready = |pod: &Value| {
                    pod["metadata"]["deletionTimestamp"].is_null()
                        && pod["status"]["conditions"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                };
                if !pods.is_empty() && pods.iter().all(ready) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), rolled_out)
            .await
            .expect("the pods rolled out within 30s");
    }
}

fn plural(kind: &str) -> String {
    match kind {
        "Namespace" => "namespaces",
        "ConfigMap" => "configmaps",
        "Deployment" => "deployments",
        "Service" => "services",
        "Gateway" => "gateways",
        "DestinationRule" => "destinationrules",
        "VirtualService" => "virtualservices",
        other => panic!("no plural for {other}"),
    }
    .to_string()
}

/// The output's lines that start with a mark (`✓`, `✗`, `-`) and the hints under them.
fn assert_item(output: &CliOutput, mark: &str, item: &str) {
    let line = format!("  {mark} {item}");
    assert!(
        output.stdout.lines().any(|candidate| candidate == line),
        "no line {line:?} in:\n{}\n{}",
        output.stdout,
        output.stderr
    );
}

fn assert_hint(output: &CliOutput, hint: &str) {
    let line = format!("      hint: {hint}");
    assert!(
        output.stdout.lines().any(|candidate| candidate == line),
        "no hint {line:?} in:\n{}\n{}",
        output.stdout,
        output.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_applies_the_split_by_hand_and_each_mistake_gets_its_hint() {
    let laptop = Laptop::at_stable().await;

    // 1. The DestinationRule and VirtualService of the split, but ResNet101 never deployed.
    laptop.apply_by_hand("destinationrule.yaml", |text| text);
    laptop.apply_by_hand("virtualservice-70-30.yaml", |text| text);
    let verified = laptop.verify("split-70-30", &[]).await;
    assert_eq!(verified.code, 1, "{}\n{}", verified.stdout, verified.stderr);
    assert_item(
        &verified,
        "✗",
        "Deployment image-classifier-resnet101 runs tensorflow/serving:2.5.1 for pods labelled app=image-classifier, \
         version=resnet101",
    );
    assert_hint(
        &verified,
        "Deployment image-classifier-resnet101 is not in the cluster: apply it with `kubectl apply -f resnet101.yaml` \
         (`cargo xtask lab render split-70-30` prints the objects of the stage)",
    );
    assert_item(
        &verified,
        "-",
        "traffic without headers: the resnet101 share is consistent with 30% (accepted 15–45%)",
    );
    assert!(
        verified
            .stdout
            .contains("fix what the hints say, then run `cargo xtask lab verify split-70-30` again"),
        "{}",
        verified.stdout
    );

    // 2. ResNet101 deployed; the DestinationRule written without its subset.
    laptop.apply_by_hand("resnet101.yaml", |text| text);
    laptop.until_rolled_out("resnet101").await;
    laptop.apply_by_hand("destinationrule.yaml", |text| {
        let cut = text.find("  - name: resnet101").expect("the resnet101 subset");
        text[..cut].to_string()
    });
    let verified = laptop.verify("split-70-30", &[]).await;
    assert_eq!(verified.code, 1, "{}\n{}", verified.stdout, verified.stderr);
    assert_hint(
        &verified,
        "subset resnet101 has no DestinationRule entry: add it to spec.subsets of DestinationRule image-classifier \
         with labels version=resnet101",
    );
    assert_item(
        &verified,
        "✓",
        "the pods of image-classifier-resnet101 are ready, each with an istio-proxy sidecar",
    );

    // 3. The subset fixed; the weights written 50/50.
    laptop.apply_by_hand("destinationrule.yaml", |text| text);
    laptop.apply_by_hand("virtualservice-70-30.yaml", |text| {
        text.replace("weight: 70", "weight: 50")
            .replace("weight: 30", "weight: 50")
    });
    let verified = laptop.verify("split-70-30", &["--format", "json"]).await;
    assert_eq!(verified.code, 1, "{}\n{}", verified.stdout, verified.stderr);
    let checklist = verified.json();
    assert_eq!(checklist["holds"], false);
    let hints: Vec<&str> = checklist["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|item| item["hints"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    assert!(
        hints.contains(
            &"VirtualService image-classifier sends 50% to subset resnet101; this stage wants 30% — see \
              spec.http[0].route[1].weight"
        ),
        "{hints:#?}"
    );

    // 4. Everything as the stage says, with fields of the learner's own that do not change where a prediction goes
    //    (a CORS policy and a timeout, as Istio's docs show them): every item holds, the traffic included.
    let pushes = laptop.workshop.gateway.pushes();
    laptop.apply_by_hand("virtualservice-70-30.yaml", |text| {
        text.replace(
            "  - route:\n",
            "  - timeout: 30s\n    corsPolicy:\n      allowOrigins:\n      - exact: https://workshop.example\n      \
             allowMethods:\n      - POST\n    route:\n",
        )
    });
    laptop.workshop.until_pushed_after(pushes).await;
    let verified = laptop.verify("split-70-30", &[]).await;
    assert_eq!(verified.code, 0, "{}\n{}", verified.stdout, verified.stderr);
    assert_item(
        &verified,
        "✓",
        "traffic without headers: the resnet101 share is consistent with 30% (accepted 15–45%)",
    );
    assert!(
        verified.stdout.contains("hold: stage \"split-70-30\" is done"),
        "{}",
        verified.stdout
    );

    // 5. The split as the stage has it, behind a route of the learner's own that takes TF Serving's status requests
    //    (`GET /v1/models/image_classifier`) to resnet50 alone: predictions still split 70/30, so the stage holds,
    //    and the traffic is checked with predictions — status requests would show 100/0 and fail a correct stage.
    let pushes = laptop.workshop.gateway.pushes();
    laptop.apply_by_hand("virtualservice-70-30.yaml", |text| {
        text.replace(
            "  http:\n",
            "  http:\n  - match:\n    - uri:\n        exact: /v1/models/image_classifier\n    route:\n    - \
             destination:\n        host: image-classifier\n        subset: resnet50\n        port:\n          \
             number: 8501\n      headers:\n        response:\n          set:\n            x-model-version: \
             resnet50\n",
        )
    });
    laptop.workshop.until_pushed_after(pushes).await;
    let verified = laptop.verify("split-70-30", &[]).await;
    assert_eq!(verified.code, 0, "{}\n{}", verified.stdout, verified.stderr);
    assert!(
        verified.stdout.contains("hold: stage \"split-70-30\" is done"),
        "{}",
        verified.stdout
    );

    // 6. The header match of `focused` with a condition canary-lab does not evaluate: named, not guessed at.
    laptop.apply_by_hand("virtualservice-focused.yaml", |text| {
        text.replace(
            "    - headers:\n",
            "    - method:\n        exact: POST\n      headers:\n",
        )
    });
    let verified = laptop.verify("focused", &[]).await;
    assert_eq!(verified.code, 1, "{}\n{}", verified.stdout, verified.stderr);
    assert_hint(
        &verified,
        "VirtualService image-classifier has spec.http[0].match[0].method, which canary-lab does not evaluate \
         (predictions are POST and TF Serving's status requests GET), so it cannot say where a prediction goes — the \
         lab's stages route on the `user-group` header and weights only: remove it, or see where traffic goes with \
         `cargo xtask lab check`",
    );

    // 7. The header match of `focused` written with an underscore.
    laptop.apply_by_hand("virtualservice-focused.yaml", |text| {
        text.replace("user-group:", "user_group:")
    });
    let verified = laptop.verify("focused", &[]).await;
    assert_eq!(verified.code, 1, "{}\n{}", verified.stdout, verified.stderr);
    assert_hint(
        &verified,
        "the header match is `user_group`, the lab sends `user-group` — see spec.http[0].match[0].headers",
    );

    // 8. The namespace's label lost, and ResNet101 restarted since: its new pods have no sidecar.
    laptop.apply_by_hand("namespace.yaml", |text| {
        text.replace("  labels:\n    istio-injection: enabled\n", "")
    });
    laptop.apply_by_hand("resnet101.yaml", |text| {
        text.replace(
            "    metadata:\n      labels:\n        app: image-classifier\n        version: resnet101\n",
            "    metadata:\n      annotations:\n        kubectl.kubernetes.io/restartedAt: \"now\"\n      labels:\n        \
             app: image-classifier\n        version: resnet101\n",
        )
    });
    laptop.until_rolled_out("resnet101").await;
    let verified = laptop.verify("split-70-30", &[]).await;
    assert_eq!(verified.code, 1, "{}\n{}", verified.stdout, verified.stderr);
    assert_hint(
        &verified,
        "namespace tf-serving lacks the label istio-injection=enabled, so Istio injects no sidecar into its pods: \
         `kubectl label namespace tf-serving istio-injection=enabled`, then restart its Deployments (`kubectl rollout \
         restart deployment -n tf-serving`)",
    );
    assert_hint(
        &verified,
        "pods of image-classifier-resnet101 have no istio-proxy sidecar: the namespace tf-serving lacks \
         istio-injection=enabled — `kubectl label namespace tf-serving istio-injection=enabled`, then `kubectl \
         rollout restart deployment/image-classifier-resnet101 -n tf-serving`",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_refuses_an_unknown_stage_before_reading_the_cluster() {
    let kube = FakeKube::start("v1.24.3", "amd64").await;
    let home = tempfile::tempdir().unwrap();
    kube.write_kubeconfig(&home.path().join("kubeconfig"), PROFILE);
    let output = Cli::new(["lab", "verify", "split-60-40"])
        .kubeconfig(&home.path().join("kubeconfig"))
        .run();
    assert_eq!(output.code, 2, "{}\n{}", output.stdout, output.stderr);
    assert!(output.stderr.contains("split-60-40"), "{}", output.stderr);
    assert!(kube.requests().is_empty(), "{:#?}", kube.requests());
}
