//! `lab up`, `lab status` and `lab down` as a user runs them: the CLI as a process against fake minikube, istioctl
//! and sudo, the fake Kubernetes API, and a stand-in gateway for the prediction.

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use canary_lab_tests::assert_contains;
use canary_lab_tests::cli::{Cli, CliOutput};
use canary_lab_tests::envoy::{Envoy, StageRouting};
use canary_lab_tests::fake_kube::{FakeKube, Scenario};
use canary_lab_tests::fake_tools::{FakeTools, MinikubeCluster, Rule};
use canary_lab_tests::process::Process;
use canary_lab_tests::tf_serving::TfServing;
use canary_lab_tests::up_args::UpArgs;

const PROFILE: &str = "lab";

/// Everything `lab up` talks to, for one test.
pub(crate) struct Lab {
    pub(crate) kube: FakeKube,
    pub(crate) tools: FakeTools,
    pub(crate) gateway: TfServing,
    pub(crate) home: tempfile::TempDir,
}

impl Lab {
    pub(crate) async fn start(driver: &str) -> Lab {
        let kube = FakeKube::start("v1.22.17", "amd64").await;
        let tools = FakeTools::new();
        tools.script_minikube(&MinikubeCluster::healthy(PROFILE).driver(driver));
        tools.script_sudo(true);
        tools.script_istioctl("1.12.7", &kube.url());
        kube.install_istio_when_asked("1.12.7");
        let gateway = TfServing::start("resnet50").await;
        let home = tempfile::tempdir().unwrap();
        kube.write_kubeconfig(&home.path().join("kubeconfig"), PROFILE);
        Lab {
            kube,
            tools,
            gateway,
            home,
        }
    }

    /// The CLI with `args` after the global flags, sharing this lab's state dir and kubeconfig across runs.
    pub(crate) fn cli(&self, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Cli {
        let home = self.home.path();
        Cli::for_lab(
            PROFILE,
            &home.join("state"),
            &self.tools,
            &home.join("kubeconfig"),
            args,
        )
    }

    /// `lab up --no-assert` through the stand-in gateway, with the fakes' `istioctl` and short timeouts.
    pub(crate) fn up_args(&self) -> UpArgs {
        UpArgs::new(&self.tools, &self.gateway.url()).no_assert()
    }

    /// Runs `lab up` with `args`.
    pub(crate) async fn up(&self, args: UpArgs) -> CliOutput {
        run(self.cli(args.args())).await
    }

    /// Returns once a running `lab up` watches the Deployments in tf-serving (it is waiting on a rollout); fails the
    /// test after 30 s.
    async fn until_up_waits_on_a_rollout(&self) {
        let watching = async {
            loop {
                let watched = self.kube.requests().iter().any(|request| {
                    request.path() == "/apis/apps/v1/namespaces/tf-serving/deployments"
                        && request.uri.contains("watch=true")
                });
                if watched {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), watching)
            .await
            .expect("lab up reached the rollout wait");
    }

    pub(crate) fn state_file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.home.path().join("state").join(PROFILE).join(name))
            .ok()
            .map(|text| text.trim().to_string())
    }
}

/// Runs the CLI off the async runtime (the fake API lives on it), failing if it takes more than 30 seconds (a
/// run takes one to three; the margin is for a loaded machine).
pub(crate) async fn run(cli: Cli) -> CliOutput {
    tokio::time::timeout(Duration::from_secs(30), cli.run_async())
        .await
        .expect("the CLI did not finish within 30s")
}

fn install_calls(tools: &FakeTools) -> Vec<Vec<String>> {
    tools
        .calls("istioctl")
        .into_iter()
        .filter(|argv| argv.first().map(String::as_str) == Some("install"))
        .collect()
}

#[tokio::test]
async fn up_goes_from_nothing_to_every_stage_and_a_second_run_writes_nothing() {
    let lab = Lab::start("docker").await;
    let first = lab.up(lab.up_args()).await;
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert_eq!(
        install_calls(&lab.tools),
        [["install", "-y", "--set", "profile=default", "--context", PROFILE]]
    );
    assert!(
        first
            .stdout
            .starts_with(&format!("the lab is up at stage \"focused\": {}", lab.gateway.url())),
        "{}",
        first.stdout
    );
    for step in [
        "doctor",
        "istioctl",
        "istio",
        "namespace",
        "models",
        "workloads",
        "rollout",
        "ingress",
        "prediction",
    ] {
        assert!(
            first.stderr.contains(&format!("→ {step}\n")),
            "{step}: {}",
            first.stderr
        );
    }
    assert_contains!(first.stderr, "  istio done (");
    assert_contains!(first.stderr, "  stage focused done (");
    assert_eq!(lab.gateway.predictions(), 1);
    assert_eq!(lab.state_file("ingress-url"), Some(lab.gateway.url()));
    assert_eq!(lab.state_file("active-stage").as_deref(), Some("focused"));
    assert_eq!(lab.state_file("lock"), None, "the lock is released");
    let job = lab
        .kube
        .object("jobs", "tf-serving", "export-models")
        .expect("the export Job");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["image"],
        "tensorflow/tensorflow:2.6.2"
    );
    assert_eq!(
        lab.kube.names("deployments", "tf-serving"),
        ["image-classifier-resnet101", "image-classifier-resnet50"]
    );

    lab.kube.clear_requests();
    let second = lab.up(lab.up_args()).await;
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    let writes = lab.kube.writes();
    assert!(writes.is_empty(), "the second run wrote: {writes:#?}");
    assert_eq!(install_calls(&lab.tools).len(), 1, "Istio is not installed twice");
    let changed: Vec<&str> = second
        .stderr
        .lines()
        .filter(|line| line.contains(" done (") && !line.contains(" already done ("))
        .collect();
    assert!(changed.is_empty(), "every step was already done:\n{}", second.stderr);
    assert_contains!(second.stderr, "  istio already done");
    assert_contains!(second.stderr, "  workloads already done");
    assert_contains!(second.stdout, "nothing to change");
}

#[tokio::test]
async fn up_stops_at_the_stage_asked_for_and_status_and_down_follow() {
    let lab = Lab::start("docker").await;
    let output = lab.up(lab.up_args().stage("canary-deployed")).await;
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(!output.stderr.contains("→ stage split-70-30"), "{}", output.stderr);
    assert_eq!(lab.state_file("active-stage").as_deref(), Some("canary-deployed"));

    let status = run(lab.cli(["lab", "status", "--format", "json"])).await;
    assert_eq!(status.code, 0, "{}\n{}", status.stdout, status.stderr);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["istio_version"], "1.12.7");
    assert_eq!(status["active_stage"], "canary-deployed");
    assert_eq!(status["ingress_url"], lab.gateway.url());
    assert_eq!(status["ingress_kind"], "url");
    assert_eq!(status["ready"], true);
    assert_eq!(status["deployments"].as_array().unwrap().len(), 2);

    let down = run(lab.cli(["lab", "down"])).await;
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert_contains!(down.stdout, "namespace \"tf-serving\" deleted");
    assert!(lab.kube.object("namespaces", "", "tf-serving").is_none());
    assert!(lab.kube.names("deployments", "tf-serving").is_empty());
    assert_eq!(lab.state_file("active-stage"), None);

    let status = run(lab.cli(["lab", "status"])).await;
    assert_eq!(status.code, 1, "not ready after down:\n{}", status.stdout);
    assert_contains!(status.stdout, "namespace  missing");

    let istioctl = lab.tools.istioctl_path();
    let down_all = run(lab.cli(["lab", "down", "--all", "--istioctl", istioctl.to_str().unwrap()])).await;
    assert_eq!(down_all.code, 0, "{}", down_all.stderr);
    assert!(
        lab.tools.calls("istioctl").contains(
            &["x", "uninstall", "--purge", "-y", "--context", PROFILE]
                .map(String::from)
                .to_vec()
        ),
        "{:?}",
        lab.tools.calls("istioctl")
    );
}

#[tokio::test]
async fn the_same_istio_installed_is_not_installed_again() {
    let lab = Lab::start("docker").await;
    lab.kube.install_istio("1.12.7");
    let output = lab.up(lab.up_args().stage("stable").json()).await;
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(install_calls(&lab.tools).is_empty());
    assert_contains!(output.stderr, "istio already done");
    assert_contains!(output.stderr, "… istiod is available (");
    let report: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    let istio = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["step"] == "istio")
        .unwrap();
    assert_eq!(istio["outcome"], "already_done");
    assert!(istio["seconds"].is_f64());
    assert_eq!(report["active_stage"], "stable");
    assert_eq!(report["ingress_kind"], "url");
}

#[tokio::test]
async fn another_istio_version_is_an_error_unless_reinstall_is_asked() {
    let lab = Lab::start("docker").await;
    lab.kube.install_istio("1.13.2");
    let output = lab.up(lab.up_args()).await;
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert_contains!(
        output.stderr,
        "Istio \"1.13.2\" is installed in context \"lab\", but the lab needs \"1.12.7\""
    );
    assert_contains!(output.stderr, "help: run `cargo xtask lab up --reinstall-istio`");
    assert!(install_calls(&lab.tools).is_empty());

    let output = lab.up(lab.up_args().stage("stable").reinstall_istio()).await;
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(install_calls(&lab.tools).len(), 1);
    assert_contains!(output.stderr, "(replaced 1.13.2)");
}

#[tokio::test]
async fn a_failing_install_shows_what_istioctl_said() {
    let lab = Lab::start("docker").await;
    let tools = FakeTools::new();
    tools.script_minikube(&MinikubeCluster::healthy(PROFILE));
    tools.script_sudo(true);
    tools.on(
        "istioctl",
        &["install"],
        Rule {
            stderr: "Error: failed to install manifests: errors occurred during operation: creating default tag would conflict\n".into(),
            code: 1,
            ..Rule::default()
        },
    );
    tools.script_istioctl("1.12.7", &lab.kube.url());
    let lab = Lab { tools, ..lab };
    let output = lab.up(lab.up_args()).await;
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert_contains!(output.stderr, "installing Istio 1.12.7 into context \"lab\"");
    assert_contains!(
        output.stderr,
        "creating default tag would conflict",
        "istioctl's output reaches the user:\n"
    );
    assert_contains!(output.stderr, "help: `istioctl verify-install");
}

#[tokio::test]
async fn a_deployment_stuck_in_image_pull_fails_up_with_the_diagnosis() {
    let lab = Lab::start("docker").await;
    lab.kube
        .scenario("image-classifier-resnet50", Scenario::ImagePullBackOff);
    let output = lab.up(lab.up_args().rollout_timeout(2)).await;
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert_contains!(
        output.stderr,
        "Deployment/image-classifier-resnet50 in namespace \"tf-serving\" was not rolled out after 2s"
    );
    assert_contains!(output.stderr, "waiting (ImagePullBackOff)");
    assert_contains!(output.stderr, "help: the node cannot pull the image");
}

#[tokio::test]
async fn an_interrupted_up_is_completed_by_the_next_one() {
    let lab = Lab::start("docker").await;
    lab.kube
        .scenario("image-classifier-resnet50", Scenario::ImagePullBackOff);
    let args = lab.up_args().rollout_timeout(600);
    let mut child = lab.cli(args.args()).spawn();
    // Wait until `lab up` is waiting on the ResNet50 rollout (a watch on Deployments in tf-serving)…
    lab.until_up_waits_on_a_rollout().await;
    // …then kill it as a crash or a closed terminal would.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        lab.state_file("lock").is_some(),
        "a killed lab up leaves its lock behind"
    );
    lab.kube.make_available("tf-serving", "image-classifier-resnet50");

    let output = lab.up(lab.up_args()).await;
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(lab.state_file("active-stage").as_deref(), Some("focused"));
    assert_eq!(
        install_calls(&lab.tools).len(),
        1,
        "Istio installed by the first run is kept"
    );
}

#[tokio::test]
async fn a_second_up_while_one_runs_is_refused() {
    let lab = Lab::start("docker").await;
    let state = lab.home.path().join("state").join(PROFILE);
    std::fs::create_dir_all(&state).unwrap();
    // pid 1 always runs.
    std::fs::write(state.join("lock"), "1\nlab up\n").unwrap();
    let output = lab.up(lab.up_args()).await;
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert_contains!(output.stderr, "another canary-lab command (pid 1, `lab up`)");
    assert!(lab.kube.writes().is_empty());
}

pub(crate) fn saved_models(root: &Path) {
    for model in ["resnet50", "resnet101"] {
        let dir = root.join(model).join("1");
        std::fs::create_dir_all(dir.join("variables")).unwrap();
        std::fs::write(dir.join("saved_model.pb"), b"pb").unwrap();
        std::fs::write(dir.join("variables/variables.index"), b"index").unwrap();
    }
}

#[tokio::test]
async fn host_models_are_copied_into_the_node_file_by_file() {
    let lab = Lab::start("docker").await;
    let models = tempfile::tempdir().unwrap();
    saved_models(models.path());
    lab.tools.on(
        "minikube",
        &["-p", PROFILE, "ssh"],
        Rule {
            code: 1,
            ..Rule::default()
        },
    );
    lab.tools.on("minikube", &["-p", PROFILE, "cp"], Rule::default());
    let source = format!("host:{}", models.path().display());
    let output = lab.up(lab.up_args().stage("stable").models(&source)).await;
    assert_eq!(output.code, 0, "{}", output.stderr);
    let copies: Vec<Vec<String>> = lab
        .tools
        .calls("minikube")
        .into_iter()
        .filter(|argv| argv.get(2).map(String::as_str) == Some("cp"))
        .collect();
    assert_eq!(copies.len(), 4, "{copies:?}");
    assert_eq!(
        copies[0],
        [
            "-p".to_string(),
            PROFILE.to_string(),
            "cp".to_string(),
            models.path().join("resnet50/1/saved_model.pb").display().to_string(),
            "/data/canary-lab/models/resnet50/1/saved_model.pb".to_string(),
        ]
    );
    assert!(
        lab.kube.object("jobs", "tf-serving", "export-models").is_none(),
        "no export Job"
    );
}

#[tokio::test]
async fn host_models_with_the_none_driver_are_mounted_as_they_are() {
    let lab = Lab::start("none").await;
    let models = tempfile::tempdir().unwrap();
    saved_models(models.path());
    let source = format!("host:{}", models.path().display());
    let output = lab.up(lab.up_args().stage("stable").models(&source)).await;
    assert_eq!(output.code, 0, "{}", output.stderr);
    let deployment = lab
        .kube
        .object("deployments", "tf-serving", "image-classifier-resnet50")
        .unwrap();
    let mounted = models.path().canonicalize().unwrap().join("resnet50");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"],
        mounted.display().to_string()
    );
    // A later stage keeps the mount.
    let output = run(lab.cli(["lab", "stage", "canary-deployed", "--no-assert"])).await;
    assert_eq!(output.code, 0, "{}", output.stderr);
    let canary = lab
        .kube
        .object("deployments", "tf-serving", "image-classifier-resnet101")
        .unwrap();
    assert_eq!(
        canary["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"],
        models
            .path()
            .canonicalize()
            .unwrap()
            .join("resnet101")
            .display()
            .to_string()
    );
    // Back to the default `--models export`: the Deployments mount the node's export directory again.
    let output = lab.up(lab.up_args().stage("stable")).await;
    assert_eq!(output.code, 0, "{}", output.stderr);
    let deployment = lab
        .kube
        .object("deployments", "tf-serving", "image-classifier-resnet50")
        .unwrap();
    assert_eq!(
        deployment["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"],
        "/data/canary-lab/models/resnet50"
    );
}

#[tokio::test]
async fn a_host_directory_without_the_layout_is_refused_before_anything_is_copied() {
    let lab = Lab::start("docker").await;
    let models = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(models.path().join("resnet50/1")).unwrap();
    let source = format!("host:{}", models.path().display());
    let output = lab.up(lab.up_args().models(&source)).await;
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert_contains!(output.stderr, "does not hold the models as TF Serving needs them");
    assert_contains!(output.stderr, "resnet50/1/saved_model.pb is missing");
    assert!(
        lab.tools
            .calls("minikube")
            .iter()
            .all(|argv| !argv.contains(&"cp".to_string()))
    );
}

#[tokio::test]
async fn a_tunnel_that_exits_is_detected_and_reported() {
    let lab = Lab::start("docker").await;
    lab.tools.on(
        "minikube",
        &["tunnel"],
        Rule {
            stderr: "❌  Exiting due to SVC_TUNNEL_START: sudo: a password is required\n".into(),
            code: 1,
            sleep_ms: 200,
            ..Rule::default()
        },
    );
    let output = lab.up(lab.up_args().stage("stable").ingress("tunnel")).await;
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert_contains!(
        output.stderr,
        "`minikube tunnel` exited (exit code 1) before the ingress gateway got an external address"
    );
    assert_contains!(
        output.stderr,
        "sudo: a password is required",
        "the tunnel's log is shown:\n"
    );
    assert!(
        lab.tools
            .calls("minikube")
            .contains(&["tunnel", "-p", PROFILE].map(String::from).to_vec()),
        "{:?}",
        lab.tools.calls("minikube")
    );
    assert_eq!(lab.state_file("tunnel.pid"), None, "a dead tunnel's pid is forgotten");
}

#[tokio::test]
async fn the_tunnel_runs_in_the_background_is_reused_and_down_all_stops_it() {
    let lab = Lab::start("docker").await;
    let port: u16 = lab.gateway.url().rsplit(':').next().unwrap().parse().unwrap();
    lab.kube.tunnel_gives_address("127.0.0.1", port);
    lab.tools.on(
        "minikube",
        &["tunnel"],
        Rule {
            stdout: "Status:\n\tmachine: lab\n\tapiserver: Running\n".into(),
            http_get: Some(format!("{}/fake/tunnel-up", lab.kube.url())),
            // A tunnel runs until stopped; `lab down --all` stops this one long before.
            sleep_ms: 120_000,
            ..Rule::default()
        },
    );
    // Password-less sudo is scripted, so auto picks the tunnel.
    let args = lab.up_args().stage("stable").ingress("auto");
    let output = lab.up(args.clone()).await;
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_contains!(output.stderr, &format!("{} via tunnel", lab.gateway.url()));
    let pid: u32 = lab
        .state_file("tunnel.pid")
        .expect("the tunnel's pid is recorded")
        .parse()
        .unwrap();
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the tunnel outlives `lab up`"
    );
    assert_eq!(lab.state_file("ingress-url"), Some(lab.gateway.url()));

    let again = lab.up(args).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    let tunnels = lab
        .tools
        .calls("minikube")
        .iter()
        .filter(|argv| argv[0] == "tunnel")
        .count();
    assert_eq!(tunnels, 1, "the running tunnel is reused");

    let status = run(lab.cli(["lab", "status"])).await;
    assert_eq!(status.code, 0, "{}\n{}", status.stdout, status.stderr);
    let tunnel_line = status
        .stdout
        .lines()
        .find(|line| line.starts_with("tunnel"))
        .unwrap_or_default();
    assert!(
        tunnel_line.ends_with(&format!("pid {pid} running")),
        "{}",
        status.stdout
    );
    let stage_line = status
        .stdout
        .lines()
        .find(|line| line.starts_with("stage"))
        .unwrap_or_default();
    assert!(stage_line.ends_with("stable"), "{}", status.stdout);

    let istioctl = lab.tools.istioctl_path();
    let down = run(lab.cli(["lab", "down", "--all", "--istioctl", istioctl.to_str().unwrap()])).await;
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert_contains!(down.stdout, &format!("minikube tunnel (pid {pid}) stopped"));
    let stopped = async {
        while Path::new(&format!("/proc/{pid}/status")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .contains("zombie")
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .expect("the tunnel stopped");
    assert_eq!(lab.state_file("tunnel.pid"), None);
}

#[tokio::test]
async fn ctrl_c_stops_up_and_releases_the_lock() {
    let lab = Lab::start("docker").await;
    lab.kube
        .scenario("image-classifier-resnet50", Scenario::ImagePullBackOff);
    let args = lab.up_args().rollout_timeout(600);
    let mut child = lab.cli(args.args()).spawn();
    lab.until_up_waits_on_a_rollout().await;
    // The test sends SIGINT as a terminal's Ctrl-C would.
    let sent = Process::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(1), "interrupted is 'not in the required state'");
    assert_eq!(lab.state_file("lock"), None, "the lock is released");
    assert_eq!(lab.state_file("active-stage"), None, "no stage was recorded half-way");
}

#[tokio::test]
async fn istio_that_never_becomes_available_is_diagnosed() {
    let lab = Lab::start("docker").await;
    lab.kube.scenario("istiod", Scenario::ImagePullBackOff);
    let output = lab.up(lab.up_args().istio_timeout(2)).await;
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert!(
        output
            .stderr
            .contains("… waiting for istiod and istio-ingressgateway to be available (at most 2s)")
    );
    assert_contains!(
        output.stderr,
        "waiting for Istio's istiod: Deployment/istiod in namespace \"istio-system\" was not rolled out after 2s"
    );
    assert_contains!(output.stderr, "waiting (ImagePullBackOff)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_are_asserted_through_the_gateway_and_fail_when_it_does_not_route_as_they_say() {
    let lab = Lab::start("docker").await;
    let models = canary_lab_tests::traffic::Models::start_with_bytes_signature().await;
    // The gateway is real Envoy in front of the two stand-in models, routing as the `stable` stage says.
    let stable_gateway = Envoy::start(&StageRouting::of_stage("stable"), &models.stable_only()).await;
    let output = lab
        .up(UpArgs::new(&lab.tools, &stable_gateway.url()).stage("stable"))
        .await;
    assert_eq!(output.code, 0, "{}\n{}", output.stdout, output.stderr);
    assert_contains!(output.stdout, "stage stable: pass");
    assert_contains!(output.stderr, "assertions: pass (270 requests)");
    // The fake API forwards no pod port here: no reference is fetched, which is a warning naming the version, and
    // attribution by the header alone still passes.
    assert!(
        output.stderr.contains("no reference prediction for this version") && output.stderr.contains("resnet50"),
        "{}",
        output.stderr
    );

    // The gateway still routes as `stable`: applying split-70-30 succeeds, its assertion fails (exit 1).
    let output = run(lab.cli(["lab", "stage", "split-70-30"])).await;
    assert_contains!(output.stdout, "virtualservice/image-classifier configured");
    assert_eq!(output.code, 1, "{}\n{}", output.stdout, output.stderr);
    assert_contains!(output.stdout, "stage split-70-30: fail");
    assert_eq!(
        lab.state_file("active-stage"),
        None,
        "a stage that failed its assertions is not recorded as active"
    );

    // A gateway that routes 70/30 passes, and the reports are written.
    let split_gateway = Envoy::start(&StageRouting::of_stage("split-70-30"), &models.both()).await;
    std::fs::write(
        lab.home.path().join("state").join(PROFILE).join("ingress-url"),
        split_gateway.url(),
    )
    .unwrap();
    let report = lab.home.path().join("report.json");
    let junit = lab.home.path().join("report.xml");
    let output = run(lab.cli([
        "lab",
        "stage",
        "split-70-30",
        "--report",
        report.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(output.code, 0, "{}\n{}", output.stdout, output.stderr);
    assert_contains!(output.stdout, "virtualservice/image-classifier unchanged");
    assert_contains!(output.stdout, "stage split-70-30: pass");
    assert_eq!(lab.state_file("active-stage").as_deref(), Some("split-70-30"));
    assert_eq!(
        lab.state_file("active-stage-verdict").as_deref(),
        Some("split-70-30 pass")
    );
    let written: lab::report::RunReport = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(written.stages[0].stage, "split-70-30");
    assert!(std::fs::read_to_string(&junit).unwrap().contains("<testsuites"));

    let reset = run(lab.cli(["lab", "reset", "--rollout-timeout", "10s"])).await;
    assert_eq!(reset.code, 0, "{}", reset.stderr);
    assert_contains!(reset.stdout, "deployment/image-classifier-resnet101 deleted");
    assert_contains!(reset.stdout, "deployment/image-classifier-resnet50 unchanged");
    assert_contains!(reset.stdout, "stage \"stable\" is applied");
    assert_eq!(
        lab.state_file("active-stage-verdict").as_deref(),
        Some("stable not_asserted")
    );
}

#[tokio::test]
async fn without_password_less_sudo_auto_port_forwards_to_a_gateway_pod() {
    let lab = Lab::start("docker").await;
    let tools = FakeTools::new();
    tools.script_minikube(&MinikubeCluster::healthy(PROFILE));
    tools.script_sudo(false);
    tools.script_istioctl("1.12.7", &lab.kube.url());
    let lab = Lab { tools, ..lab };
    lab.kube.port_forward_to(lab.gateway.addr());
    let output = lab.up(lab.up_args().stage("stable").ingress("auto")).await;
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_contains!(output.stderr, "via port-forward (open while this command runs)");
    assert_eq!(
        lab.gateway.predictions(),
        1,
        "the prediction went through the port-forward"
    );
    let forwarded = lab.kube.requests().into_iter().any(|request| {
        request
            .path()
            .starts_with("/api/v1/namespaces/istio-system/pods/istio-ingressgateway-")
            && request.path().ends_with("/portforward")
            && request.uri.contains("ports=8080")
    });
    assert!(forwarded, "{:#?}", lab.kube.requests());
    assert!(lab.tools.calls("minikube").iter().all(|argv| argv[0] != "tunnel"));
}

/// A Running, ready lab pod of `version`, as the Deployment controller would create it.
fn model_pod(version: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("image-classifier-{version}-5d9c7b-x1"), "namespace": "tf-serving",
                     "labels": {"app": "image-classifier", "version": version}},
        "spec": {"containers": [{"name": "tf-serving", "image": "tensorflow/serving:2.5.1"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_come_from_each_versions_own_pod_and_a_missing_one_is_left_out() {
    let kube = FakeKube::start("v1.22.17", "amd64").await;
    let models = canary_lab_tests::traffic::Models::start().await;
    kube.port_forward_selected_to("version=resnet50", models.resnet50.addr());
    kube.port_forward_selected_to("version=resnet101", models.resnet101.addr());
    let cluster = kube.connect().await;
    let lab = lab::definition::stages::LabDefinition::load_default().unwrap();
    let split = lab::definition::plan::StagePlan::resolve(&lab, lab.stage("split-70-30").unwrap(), None).unwrap();
    let versions = lab::traffic::references::deployed_versions(&split);
    let body = bytes::Bytes::from_static(canary_lab_tests::traffic::BODY.as_bytes());
    let instance = &serde_json::from_str::<serde_json::Value>(canary_lab_tests::traffic::BODY).unwrap()["instances"][0];

    // Only ResNet50 has a pod: its reference is fetched, ResNet101's is left out (a warning, not an error).
    kube.put("pods", model_pod("resnet50"));
    let references = lab::traffic::references::fetch_references(&cluster, &versions, &body).await;
    assert_eq!(references.scores.keys().collect::<Vec<_>>(), ["resnet50"]);
    assert_eq!((models.resnet50.predictions(), models.resnet101.predictions()), (1, 0));

    kube.put("pods", model_pod("resnet101"));
    kube.clear_requests();
    let references = lab::traffic::references::fetch_references(&cluster, &versions, &body).await;
    assert_eq!((models.resnet50.predictions(), models.resnet101.predictions()), (2, 1));
    for identity in ["resnet50", "resnet101"] {
        assert_eq!(
            references.scores[identity],
            canary_lab_tests::tf_serving::predictions_for(identity, instance),
            "the reference of {identity} is its own prediction"
        );
        let forwarded = kube.requests().into_iter().any(|request| {
            request.path()
                == format!("/api/v1/namespaces/tf-serving/pods/image-classifier-{identity}-5d9c7b-x1/portforward")
                && request.uri.contains("ports=8501")
        });
        assert!(forwarded, "no port-forward to {identity}'s pod: {:#?}", kube.requests());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_version_header_stages_are_attributed_by_the_references_fetched_from_each_pod() {
    let lab = Lab::start("docker").await;
    let models = canary_lab_tests::traffic::Models::start_with_bytes_signature().await;
    lab.kube
        .port_forward_selected_to("version=resnet50", models.resnet50.addr());
    lab.kube
        .port_forward_selected_to("version=resnet101", models.resnet101.addr());
    // Real Envoy routing as `stable` says, but setting no `x-model-version` header.
    let stable_routing = StageRouting::of_stage("stable").without_response_headers();
    let stable_gateway = Envoy::start(&stable_routing, &models.stable_only()).await;
    let args = UpArgs::new(&lab.tools, &stable_gateway.url()).stage("stable");
    let resnet101_before = models.resnet101.predictions();
    let output = lab.up(args).await;
    assert_eq!(output.code, 0, "{}\n{}", output.stdout, output.stderr);
    assert_contains!(output.stdout, "stage stable: pass");
    assert!(!output.stderr.contains("no reference prediction"), "{}", output.stderr);
    assert_eq!(
        models.resnet101.predictions(),
        resnet101_before,
        "the stable stage deploys no ResNet101, so no reference is asked of it"
    );
    let forwarded = lab.kube.requests().into_iter().any(|request| {
        request
            .path()
            .starts_with("/api/v1/namespaces/tf-serving/pods/image-classifier-resnet50-")
            && request.path().ends_with("/portforward")
            && request.uri.contains("ports=8501")
    });
    assert!(forwarded, "{:#?}", lab.kube.requests());

    // The 70/30 split without headers: each response is matched to the nearer of the two references.
    let split_routing = StageRouting::of_stage("split-70-30").without_response_headers();
    let split_gateway = Envoy::start(&split_routing, &models.both()).await;
    let ingress_url = lab.home.path().join("state").join(PROFILE).join("ingress-url");
    std::fs::write(&ingress_url, split_gateway.url()).unwrap();
    let output = run(lab.cli(["lab", "stage", "split-70-30"])).await;
    assert_eq!(output.code, 0, "{}\n{}", output.stdout, output.stderr);
    assert_contains!(output.stdout, "stage split-70-30: pass");

    // A gateway whose 70% route leads to ResNet101 (the subsets swapped): the fingerprints say so, and the stage
    // fails.
    let swapped = std::collections::BTreeMap::from([
        ("resnet50".to_string(), models.resnet101.addr()),
        ("resnet101".to_string(), models.resnet50.addr()),
    ]);
    let wrong_gateway = Envoy::start(&split_routing, &swapped).await;
    std::fs::write(&ingress_url, wrong_gateway.url()).unwrap();
    let report = lab.home.path().join("report.json");
    let output = run(lab.cli(["lab", "stage", "split-70-30", "--report", report.to_str().unwrap()])).await;
    assert_eq!(output.code, 1, "{}\n{}", output.stdout, output.stderr);
    assert_contains!(output.stdout, "stage split-70-30: fail");
    let written: lab::report::RunReport = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let assertion = &written.stages[0].assertions[0];
    let responses = |version: &str| {
        let stats = assertion.versions.iter().find(|stats| stats.version == version);
        stats.map(|stats| stats.responses).unwrap_or(0)
    };
    assert!(
        responses("resnet101") > responses("resnet50"),
        "the 70% side answered with ResNet101's fingerprint: {:#?}",
        assertion.versions
    );
    assert!(
        assertion.errors.iter().all(|error| error.kind != "unattributed"),
        "every response matched a reference: {:#?}",
        assertion.errors
    );
}
