//! Fake `minikube`, `istioctl` and `sudo` executables: scripted answers, recorded argv.
//!
//! A [`FakeTools`] owns a temp directory with `bin/` (symlinks to the `fake-tool` binary, to put first on `PATH`)
//! and the scripts and call logs of each tool. The JSON the fixtures produce mirrors the real tools' formats; the
//! source of each format is cited where it is built.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One scripted answer: when argv starts with `args`, print `stdout`/`stderr` and exit with `code`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rule {
    /// The argv prefix this rule answers.
    pub args: Vec<String>,
    /// What to print on stdout.
    #[serde(default)]
    pub stdout: String,
    /// What to print on stderr.
    #[serde(default)]
    pub stderr: String,
    /// The exit code.
    #[serde(default)]
    pub code: i32,
    /// Sleep this long before answering (a slow or long-running tool).
    #[serde(default)]
    pub sleep_ms: u64,
    /// Before answering, send `GET` to this loopback URL (`http://127.0.0.1:PORT/path`): how a fake
    /// `istioctl install` makes the fake API server install Istio.
    #[serde(default)]
    pub http_get: Option<String>,
    /// Run like `minikube tunnel`: until an interrupt (SIGINT) or a SIGTERM arrives (at most `sleep_ms`, or five
    /// minutes), recording each signal in `<tool>.signals.jsonl` ([`SignalRecord`]). Like the real tunnel it cleans
    /// up only on an interrupt: minikube's `cmd/minikube/cmd/tunnel.go` cancels the tunnel on `os.Interrupt`
    /// alone (`signal.Notify(ctrlC, os.Interrupt)`), and that cancel is what runs `tunnel.cleanup()` (route and
    /// LoadBalancer ingress IP, `pkg/minikube/tunnel/tunnel_manager.go` `run`); a SIGTERM kills it as is.
    #[serde(default)]
    pub until_signalled: bool,
    /// With `until_signalled`: how long the cleanup after an interrupt takes (a tunnel whose cleanup hangs, e.g.
    /// on an unreachable API server); a SIGTERM meanwhile ends it without cleaning up.
    #[serde(default)]
    pub interrupt_cleanup_ms: u64,
    /// With `until_signalled`: forward TCP connections from a local address to a target while running, as
    /// `minikube tunnel` does with `ssh -L` under the docker driver (`pkg/minikube/tunnel/kic/ssh_conn.go`);
    /// once the process is gone, the local address refuses connections.
    #[serde(default)]
    pub forward: Option<Forward>,
}

/// A TCP forward a fake tunnel holds while it runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Forward {
    /// Where it listens, e.g. `127.0.0.1:24567`.
    pub listen: String,
    /// Where each connection goes, e.g. the gateway stand-in's address.
    pub target: String,
}

/// A signal a fake tool running `until_signalled` received: one JSON line in `<tool>.signals.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalRecord {
    /// `SIGINT` or `SIGTERM`.
    pub signal: String,
    /// Whether the tool cleaned up in answer to it (only an interrupt whose cleanup finished).
    pub cleaned_up: bool,
}

impl Rule {
    /// True when `args` starts with this rule's args.
    pub fn matches(&self, args: &[String]) -> bool {
        args.len() >= self.args.len() && self.args.iter().zip(args).all(|(want, got)| want == got)
    }
}

/// A tool's script: rules tried in order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Script {
    /// The rules, first match wins.
    pub rules: Vec<Rule>,
}

/// A directory of fake tools for one test.
pub struct FakeTools {
    dir: tempfile::TempDir,
}

impl FakeTools {
    /// Creates `bin/minikube`, `bin/istioctl` and `bin/sudo`, all answering "no rule" until scripted.
    pub fn new() -> FakeTools {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin dir");
        let fake = crate::cargo_bin("fake-tool");
        for tool in ["minikube", "istioctl", "sudo"] {
            std::os::unix::fs::symlink(&fake, bin.join(tool)).expect("symlink fake tool");
        }
        FakeTools { dir }
    }

    /// The directory the tools read scripts from (`FAKE_TOOLS_DIR`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `bin/` directory to put first on `PATH`.
    pub fn bin_dir(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// Removes a tool, as on a machine where it is not installed.
    pub fn uninstall(&self, tool: &str) {
        std::fs::remove_file(self.bin_dir().join(tool)).expect("remove fake tool");
    }

    /// Adds a rule to `tool`'s script (rules added first win).
    pub fn on(&self, tool: &str, args: &[&str], rule: Rule) {
        let path = self.dir.path().join(format!("{tool}.json"));
        let mut script: Script = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).expect("script"),
            Err(_) => Script::default(),
        };
        script.rules.push(Rule {
            args: args.iter().map(|arg| arg.to_string()).collect(),
            ..rule
        });
        std::fs::write(&path, serde_json::to_string_pretty(&script).expect("script json")).expect("write script");
    }

    /// Every argv `tool` was called with, in order.
    pub fn calls(&self, tool: &str) -> Vec<Vec<String>> {
        let path = self.dir.path().join(format!("{tool}.calls.jsonl"));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("call record"))
            .collect()
    }

    /// The signals `tool` received while running `until_signalled`, in order.
    pub fn signals(&self, tool: &str) -> Vec<SignalRecord> {
        let path = self.dir.path().join(format!("{tool}.signals.jsonl"));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("signal record"))
            .collect()
    }

    /// Scripts a minikube with `cluster`'s answers for `version`, `status` and `profile list`.
    pub fn script_minikube(&self, cluster: &MinikubeCluster) {
        self.on(
            "minikube",
            &["version", "-o", "json"],
            ok_json(&minikube_version_json()),
        );
        self.on(
            "minikube",
            &["profile", "list", "-o", "json"],
            ok_json(&cluster.profile_list_json()),
        );
        self.on(
            "minikube",
            &["status", "-p", &cluster.profile, "-o", "json"],
            cluster.status_rule(),
        );
    }

    /// Scripts `istioctl version --remote=false -o json` to report `version`, and `istioctl install -y …` to
    /// succeed after asking `kube` (via `GET /fake/install-istio`) to put that version's control plane in place.
    pub fn script_istioctl(&self, version: &str, kube_url: &str) {
        let version_json = serde_json::json!({"clientVersion": {
            "version": version, "revision": "56f057aaaf2aacc53dae77d68587cb222e8a8a98",
            "golang_version": "go1.17.9", "status": "Clean", "tag": version}});
        self.on(
            "istioctl",
            &["version", "--remote=false", "-o", "json"],
            ok_json(&version_json.to_string()),
        );
        self.on(
            "istioctl",
            &["install", "-y"],
            Rule {
                stdout: "✔ Istio core installed\n✔ Istiod installed\n✔ Ingress gateways installed\n✔ Installation complete\n"
                    .into(),
                http_get: Some(format!("{kube_url}/fake/install-istio")),
                ..Rule::default()
            },
        );
        self.on(
            "istioctl",
            &["x", "uninstall", "--purge", "-y"],
            ok_json("✔ Uninstall complete\n"),
        );
    }

    /// The path of the fake `istioctl` (for `--istioctl PATH`).
    pub fn istioctl_path(&self) -> PathBuf {
        self.bin_dir().join("istioctl")
    }

    /// Scripts `sudo -n true` to succeed (`true`) or to want a password (`false`).
    pub fn script_sudo(&self, passwordless: bool) {
        let rule = if passwordless {
            Rule::default()
        } else {
            Rule {
                stderr: "sudo: a password is required\n".into(),
                code: 1,
                ..Rule::default()
            }
        };
        self.on("sudo", &["-n", "true"], rule);
    }
}

impl Default for FakeTools {
    fn default() -> Self {
        FakeTools::new()
    }
}

/// A rule printing `stdout` with exit 0.
fn ok_json(stdout: &str) -> Rule {
    Rule {
        stdout: stdout.to_string(),
        ..Rule::default()
    }
}

/// `minikube version -o json` as minikube v1.30.1 prints it (`cmd/minikube/cmd/version.go`: a map of
/// `minikubeVersion` and `commit`).
fn minikube_version_json() -> String {
    r#"{"commit":"08896fd1dc362c097c925146c4a0d0dac715ace0","minikubeVersion":"v1.30.1"}"#.to_string()
}

/// How the fake minikube's profile looks.
#[derive(Debug, Clone)]
pub struct MinikubeCluster {
    /// The profile name.
    pub profile: String,
    /// Whether the profile exists at all.
    pub exists: bool,
    /// Whether host, kubelet and apiserver run.
    pub running: bool,
    /// e.g. `v1.24.3`.
    pub kubernetes_version: String,
    /// e.g. `docker` or `none`.
    pub driver: String,
    /// CPUs of the node.
    pub cpus: u32,
    /// Memory of the node in MiB.
    pub memory_mib: u64,
}

impl MinikubeCluster {
    /// A running profile that meets every requirement: Kubernetes v1.22.17, docker driver, 4 CPUs, 8 GiB.
    pub fn healthy(profile: &str) -> MinikubeCluster {
        MinikubeCluster {
            profile: profile.to_string(),
            exists: true,
            running: true,
            kubernetes_version: "v1.22.17".to_string(),
            driver: "docker".to_string(),
            cpus: 4,
            memory_mib: 8192,
        }
    }

    /// With another Kubernetes version.
    #[must_use]
    pub fn kubernetes(mut self, version: &str) -> MinikubeCluster {
        self.kubernetes_version = version.to_string();
        self
    }

    /// With another driver.
    #[must_use]
    pub fn driver(mut self, driver: &str) -> MinikubeCluster {
        self.driver = driver.to_string();
        self
    }

    /// With other resources.
    #[must_use]
    pub fn resources(mut self, cpus: u32, memory_mib: u64) -> MinikubeCluster {
        self.cpus = cpus;
        self.memory_mib = memory_mib;
        self
    }

    /// Stopped (`minikube stop`).
    #[must_use]
    pub fn stopped(mut self) -> MinikubeCluster {
        self.running = false;
        self
    }

    /// Deleted, or never created.
    #[must_use]
    pub fn missing(mut self) -> MinikubeCluster {
        self.exists = false;
        self
    }

    /// `minikube profile list -o json`: `{"invalid": [...], "valid": [...]}` of `config.Profile` whose `Config` is a
    /// `config.ClusterConfig` (`cmd/minikube/cmd/config/profile_list.go`, `pkg/minikube/config/types.go`; the field
    /// names are the Go names because those structs carry no JSON tags).
    fn profile_list_json(&self) -> String {
        if !self.exists {
            return r#"{"invalid":[],"valid":[]}"#.to_string();
        }
        let status = if self.running { "Running" } else { "Stopped" };
        serde_json::json!({
            "invalid": [],
            "valid": [{
                "Name": self.profile,
                "Status": status,
                "Config": {
                    "Name": self.profile,
                    "KeepContext": false,
                    "EmbedCerts": false,
                    "Memory": self.memory_mib,
                    "CPUs": self.cpus,
                    "DiskSize": 20000,
                    "Driver": self.driver,
                    "KubernetesConfig": {
                        "KubernetesVersion": self.kubernetes_version,
                        "ClusterName": self.profile,
                        "ContainerRuntime": "docker",
                        "ServiceCIDR": "10.96.0.0/12"
                    },
                    "Nodes": [{
                        "Name": "",
                        "IP": "192.168.49.2",
                        "Port": 8443,
                        "KubernetesVersion": self.kubernetes_version,
                        "ContainerRuntime": "docker",
                        "ControlPlane": true,
                        "Worker": true
                    }]
                },
                "Active": true
            }]
        })
        .to_string()
    }

    /// `minikube status -p P -o json`: one `cluster.Status` object (`statusJSON`, `cmd/minikube/cmd/status.go`) and the
    /// exit-code bit set; a missing profile prints minikube's "not found" message and exits 85.
    fn status_rule(&self) -> Rule {
        if !self.exists {
            return Rule {
                stderr: format!(
                    "🤷  Profile \"{}\" not found. Run \"minikube profile list\" to view all profiles.\n",
                    self.profile
                ),
                code: 85,
                ..Rule::default()
            };
        }
        let (state, code) = if self.running { ("Running", 0) } else { ("Stopped", 7) };
        let kubeconfig = if self.running { "Configured" } else { "Stopped" };
        let json = serde_json::json!({
            "Name": self.profile,
            "Host": state,
            "Kubelet": state,
            "APIServer": state,
            "Kubeconfig": kubeconfig,
            "Worker": false
        });
        Rule {
            stdout: json.to_string(),
            code,
            ..Rule::default()
        }
    }
}
