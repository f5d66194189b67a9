//! `lab doctor` against a fake minikube, a fake `sudo` and a fake Kubernetes API.

use canary_lab_tests::assert_contains;
use canary_lab_tests::cli::{Cli, CliOutput};
use canary_lab_tests::fake_kube::{FakeKube, write_kubeconfig};
use canary_lab_tests::fake_tools::{FakeTools, MinikubeCluster, Rule};
use serde_json::Value;

/// Runs `lab doctor --format json` and returns the exit code and the rows by check name.
fn doctor_json(cli: Cli) -> (CliOutput, Vec<Value>) {
    doctor_rows(cli.run())
}

/// The output of `lab doctor --format json` and its rows by check name.
fn doctor_rows(output: CliOutput) -> (CliOutput, Vec<Value>) {
    let rows: Vec<Value> = serde_json::from_str(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "doctor printed no JSON ({error}):\n{}\n{}",
            output.stdout, output.stderr
        )
    });
    (output, rows)
}

fn row<'a>(rows: &'a [Value], check: &str) -> &'a Value {
    rows.iter()
        .find(|row| row["check"] == check)
        .unwrap_or_else(|| panic!("no row {check} in {rows:#?}"))
}

/// A fake minikube scripted with `cluster`, fake password-less sudo, and a fake API answering as `git_version`.
async fn doctor_against(cluster: MinikubeCluster, git_version: &str, architecture: &str) -> (CliOutput, Vec<Value>) {
    let tools = FakeTools::new();
    tools.script_minikube(&cluster);
    tools.script_sudo(true);
    let kube = FakeKube::start(git_version, architecture).await;
    let cli = Cli::new(["--profile", &cluster.profile, "lab", "doctor", "--format", "json"]).fake_tools(&tools);
    let kubeconfig = cli.home().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig, &cluster.profile);
    let cli = cli.kubeconfig(&kubeconfig);
    doctor_rows(cli.run_async().await)
}

#[test]
fn without_minikube_doctor_exits_1_naming_minikube_and_how_to_install_it() {
    let tools = FakeTools::new();
    tools.uninstall("minikube");
    tools.script_sudo(true);
    let output = Cli::new(["lab", "doctor"]).fake_tools(&tools).run();
    assert_eq!(output.code, 1, "{output:#?}");
    let minikube_line = output
        .stdout
        .lines()
        .find(|line| line.contains("minikube"))
        .expect("a minikube row");
    assert!(minikube_line.starts_with("fail"), "{}", output.stdout);
    assert_contains!(output.stdout, "https://minikube.sigs.k8s.io/docs/start/");
    assert!(tools.calls("minikube").is_empty());
}

#[tokio::test]
async fn a_healthy_profile_passes_every_check() {
    let (output, rows) = doctor_against(MinikubeCluster::healthy("minikube"), "v1.22.17", "amd64").await;
    assert_eq!(output.code, 0, "{rows:#?}\n{}", output.stderr);
    for check in [
        "minikube",
        "profile",
        "kubernetes",
        "resources",
        "driver",
        "api",
        "architecture",
        "sudo",
    ] {
        assert_eq!(row(&rows, check)["status"], "ok", "{check}: {rows:#?}");
    }
    assert!(row(&rows, "api")["found"].as_str().unwrap().contains("v1.22.17"));
}

#[tokio::test]
async fn kubernetes_1_24_warns_but_passes() {
    let cluster = MinikubeCluster::healthy("minikube").kubernetes("v1.24.3");
    let (output, rows) = doctor_against(cluster, "v1.24.3", "amd64").await;
    assert_eq!(output.code, 0, "{rows:#?}");
    assert_eq!(row(&rows, "kubernetes")["status"], "warn");
}

#[tokio::test]
async fn kubernetes_1_25_and_1_26_fail_with_the_recreate_command() {
    for version in ["v1.25.0", "v1.26.1"] {
        let cluster = MinikubeCluster::healthy("lab").kubernetes(version);
        let (output, rows) = doctor_against(cluster, version, "amd64").await;
        assert_eq!(output.code, 1, "{version}: {rows:#?}");
        let kubernetes = row(&rows, "kubernetes");
        assert_eq!(kubernetes["status"], "fail");
        assert!(kubernetes["found"].as_str().unwrap().contains(version), "{kubernetes}");
        let fix = kubernetes["fix"].as_str().unwrap();
        assert_contains!(
            fix,
            "minikube delete -p lab && minikube start -p lab --kubernetes-version=v1.24.3"
        );
    }
}

#[tokio::test]
async fn human_output_for_kubernetes_1_26_names_the_version_and_the_fix() {
    let tools = FakeTools::new();
    tools.script_minikube(&MinikubeCluster::healthy("minikube").kubernetes("v1.26.3"));
    tools.script_sudo(true);
    let kube = FakeKube::start("v1.26.3", "amd64").await;
    let cli = Cli::new(["lab", "doctor"]).fake_tools(&tools);
    let kubeconfig = cli.home().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig, "minikube");
    let cli = cli.kubeconfig(&kubeconfig);
    let output = cli.run_async().await;
    assert_eq!(output.code, 1, "{output:#?}");
    let kubernetes_line = output.stdout.lines().find(|line| line.contains("kubernetes ")).unwrap();
    assert!(
        kubernetes_line.starts_with("fail") && kubernetes_line.contains("v1.26.3"),
        "{}",
        output.stdout
    );
    assert_contains!(
        output.stdout,
        "fix: minikube delete -p minikube && minikube start -p minikube --kubernetes-version=v1.24.3"
    );
}

#[tokio::test]
async fn an_arm64_node_fails() {
    let (output, rows) = doctor_against(MinikubeCluster::healthy("minikube"), "v1.22.17", "arm64").await;
    assert_eq!(output.code, 1);
    let architecture = row(&rows, "architecture");
    assert_eq!(architecture["status"], "fail");
    assert!(architecture["found"].as_str().unwrap().contains("arm64"));
}

#[tokio::test]
async fn low_resources_warn() {
    let cluster = MinikubeCluster::healthy("minikube").resources(2, 4000);
    let (output, rows) = doctor_against(cluster, "v1.22.17", "amd64").await;
    assert_eq!(output.code, 0);
    let resources = row(&rows, "resources");
    assert_eq!(resources["status"], "warn");
    assert!(
        resources["found"].as_str().unwrap().contains("2 CPUs, 4000 MiB"),
        "{resources}"
    );
}

#[tokio::test]
async fn the_driver_says_where_hostpath_lives() {
    let (_, rows) = doctor_against(MinikubeCluster::healthy("minikube").driver("none"), "v1.22.17", "amd64").await;
    assert!(
        row(&rows, "driver")["found"]
            .as_str()
            .unwrap()
            .contains("this machine's own filesystem")
    );
    let (_, rows) = doctor_against(
        MinikubeCluster::healthy("minikube").driver("docker"),
        "v1.22.17",
        "amd64",
    )
    .await;
    assert!(
        row(&rows, "driver")["found"]
            .as_str()
            .unwrap()
            .contains("inside the minikube node")
    );
}

#[test]
fn a_missing_profile_fails_and_says_how_to_start_it() {
    let tools = FakeTools::new();
    tools.script_minikube(&MinikubeCluster::healthy("demo").missing());
    tools.script_sudo(true);
    let (output, rows) =
        doctor_json(Cli::new(["--profile", "demo", "lab", "doctor", "--format", "json"]).fake_tools(&tools));
    assert_eq!(output.code, 1);
    let profile = row(&rows, "profile");
    assert_eq!(profile["status"], "fail");
    assert!(
        profile["fix"].as_str().unwrap().starts_with("minikube start -p demo"),
        "{profile}"
    );
    assert_eq!(row(&rows, "api")["status"], "skip");
    // What was run, exactly.
    let calls = tools.calls("minikube");
    assert!(
        calls.contains(&vec![
            "status".into(),
            "-p".into(),
            "demo".into(),
            "-o".into(),
            "json".into()
        ]),
        "{calls:?}"
    );
}

#[test]
fn a_stopped_profile_fails_with_minikube_start() {
    let tools = FakeTools::new();
    tools.script_minikube(&MinikubeCluster::healthy("minikube").stopped());
    tools.script_sudo(true);
    let (output, rows) = doctor_json(Cli::new(["lab", "doctor", "--format", "json"]).fake_tools(&tools));
    assert_eq!(output.code, 1);
    let profile = row(&rows, "profile");
    assert!(profile["found"].as_str().unwrap().contains("not running"), "{profile}");
    assert_eq!(profile["fix"], "minikube start -p minikube");
}

#[test]
fn malformed_minikube_json_is_an_error_naming_the_tool_and_showing_the_output() {
    let tools = FakeTools::new();
    tools.on(
        "minikube",
        &["version", "-o", "json"],
        Rule {
            stdout: "minikube version: v1.30.1\n".into(),
            ..Rule::default()
        },
    );
    tools.script_sudo(true);
    let (output, rows) = doctor_json(Cli::new(["lab", "doctor", "--format", "json"]).fake_tools(&tools));
    assert_eq!(output.code, 1);
    let found = row(&rows, "minikube")["found"].as_str().unwrap().to_string();
    assert!(
        found.contains("minikube version -o json") && found.contains("minikube version: v1.30.1"),
        "{found}"
    );
}

#[tokio::test]
async fn an_unreachable_api_fails_the_api_row() {
    let tools = FakeTools::new();
    tools.script_minikube(&MinikubeCluster::healthy("minikube"));
    tools.script_sudo(true);
    // A port nothing listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cli = Cli::new(["lab", "doctor", "--format", "json"]).fake_tools(&tools);
    let kubeconfig = cli.home().join("kubeconfig");
    write_kubeconfig(&kubeconfig, "minikube", &format!("http://127.0.0.1:{port}"));
    let (output, rows) = doctor_json(cli.kubeconfig(&kubeconfig));
    assert_eq!(output.code, 1);
    let api = row(&rows, "api");
    assert_eq!(api["status"], "fail");
    assert!(
        api["fix"]
            .as_str()
            .unwrap()
            .contains("minikube update-context -p minikube"),
        "{api}"
    );
}

#[tokio::test]
async fn context_flag_selects_the_kubeconfig_context() {
    let tools = FakeTools::new();
    tools.script_minikube(&MinikubeCluster::healthy("minikube"));
    tools.script_sudo(true);
    let kube = FakeKube::start("v1.22.17", "amd64").await;
    let cli = Cli::new(["lab", "doctor", "--format", "json", "--context", "elsewhere"]).fake_tools(&tools);
    let kubeconfig = cli.home().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig, "minikube");
    let cli = cli.kubeconfig(&kubeconfig);
    let (output, rows) = doctor_rows(cli.run_async().await);
    assert_eq!(output.code, 1);
    let api = row(&rows, "api");
    assert!(
        api["found"].as_str().unwrap().contains("no context \"elsewhere\""),
        "{api}"
    );
    assert!(kube.requests().is_empty());
}

#[tokio::test]
async fn sudo_with_a_password_only_warns_and_names_port_forward() {
    let tools = FakeTools::new();
    tools.script_minikube(&MinikubeCluster::healthy("minikube"));
    tools.script_sudo(false);
    let kube = FakeKube::start("v1.22.17", "amd64").await;
    let cli = Cli::new(["lab", "doctor", "--format", "json"]).fake_tools(&tools);
    let kubeconfig = cli.home().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig, "minikube");
    let cli = cli.kubeconfig(&kubeconfig);
    let (output, rows) = doctor_rows(cli.run_async().await);
    assert_eq!(output.code, 0);
    let sudo = row(&rows, "sudo");
    assert_eq!(sudo["status"], "warn");
    assert!(sudo["fix"].as_str().unwrap().contains("--ingress port-forward"));
}

#[tokio::test]
async fn on_a_terminal_the_table_is_coloured_and_its_columns_line_up() {
    // Before, the escape codes of the coloured status counted as width: every row after the header was pushed right.
    let cluster = MinikubeCluster::healthy("lab").kubernetes("v1.26.1").resources(2, 4096);
    let tools = FakeTools::new();
    tools.script_minikube(&cluster);
    tools.script_sudo(false);
    let kube = FakeKube::start("v1.26.1", "amd64").await;
    let cli = Cli::new(["--profile", "lab", "lab", "doctor"]).fake_tools(&tools);
    let kubeconfig = cli.home().join("kubeconfig");
    kube.write_kubeconfig(&kubeconfig, "lab");
    let cli = cli.kubeconfig(&kubeconfig);
    let (code, terminal) = tokio::task::spawn_blocking(move || cli.run_in_terminal())
        .await
        .unwrap();
    assert_eq!(code, 1, "{terminal}");
    assert!(
        terminal.contains("\x1b[31mfail"),
        "the failing row is red: {terminal:?}"
    );
    let shown = console::strip_ansi_codes(&terminal).replace("\r\n", "\n");
    let header = shown.lines().find(|line| line.starts_with("status")).expect("a header");
    let column = header.find("check").unwrap();
    for line in shown.lines().filter(|line| {
        ["ok ", "warn", "fail", "skip"]
            .iter()
            .any(|word| line.starts_with(word))
    }) {
        let name_at = line[4..].find(|c: char| c != ' ').map(|at| at + 4);
        assert_eq!(name_at, Some(column), "misaligned row: {line:?}\n{shown}");
    }
    // Both rows that need a new cluster give the same one command, with every flag.
    let command = "minikube delete -p lab && minikube start -p lab --kubernetes-version=v1.24.3 --cpus=4 --memory=8g";
    assert_eq!(shown.matches(command).count(), 2, "{shown}");
}
