//! `minikube`: typed access to the commands canary-lab runs and the JSON they print.
//!
//! The structs mirror minikube's own output (v1.2x–v1.3x):
//! - `minikube version -o json`: a map with `minikubeVersion` and `commit` (`cmd/minikube/cmd/version.go`).
//! - `minikube status -o json`: `cluster.Status` marshalled without JSON tags, so the Go field names (`Name`,
//!   `Host`, `Kubelet`, `APIServer`, `Kubeconfig`, `Worker`); one object for a single node, an array for several
//!   (`statusJSON` in `cmd/minikube/cmd/status.go`). The exit code is a bit set: 1 host, 2 cluster, 4 Kubernetes not
//!   running. A missing profile exits 85 (`reason.ExGuestNotFound`, `pkg/minikube/reason/exitcodes.go`).
//! - `minikube profile list -o json`: `{"invalid": [...], "valid": [...]}` of `config.Profile` (`Name`, `Status`,
//!   `Config`), where `Config` is `config.ClusterConfig` (`Driver`, `CPUs`, `Memory` in MiB, `KubernetesConfig`,
//!   `Nodes`) — `cmd/minikube/cmd/config/profile_list.go`, `pkg/minikube/config/types.go`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ToolCommand, ToolError};

/// minikube's exit code when the profile does not exist (`ExGuestNotFound`).
pub const EXIT_PROFILE_NOT_FOUND: i32 = 85;

/// The install hint shown when minikube is missing.
pub const INSTALL_HELP: &str =
    "install minikube: https://minikube.sigs.k8s.io/docs/start/ (or pass --minikube-bin PATH)";

/// A minikube executable.
#[derive(Debug, Clone)]
pub struct Minikube {
    program: PathBuf,
}

/// `minikube version -o json`.
#[derive(Debug, Clone, Deserialize)]
pub struct MinikubeVersion {
    /// e.g. `v1.30.1`.
    #[serde(rename = "minikubeVersion")]
    pub minikube_version: String,
    /// The git commit minikube was built from.
    #[serde(default)]
    pub commit: String,
}

/// One node's entry of `minikube status -o json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeStatus {
    /// The node name (the profile name for the control plane).
    pub name: String,
    /// The machine: `Running`, `Stopped`, `Nonexistent`, …
    pub host: String,
    /// The kubelet: `Running`, `Stopped`, …
    pub kubelet: String,
    /// The API server (control plane only; `Irrelevant` on workers).
    #[serde(rename = "APIServer", default)]
    pub api_server: String,
    /// `Configured` when the kubeconfig points at this cluster.
    #[serde(default)]
    pub kubeconfig: String,
    /// True for worker nodes.
    #[serde(default)]
    pub worker: bool,
}

/// The answer of `minikube status -p P -o json`.
#[derive(Debug, Clone)]
pub enum ProfileStatus {
    /// minikube knows no such profile.
    NotFound,
    /// The profile exists; one entry per node. `exit_code` is minikube's bit set (0 = all running).
    Nodes {
        /// Per-node states.
        nodes: Vec<NodeStatus>,
        /// 0 when everything runs; bits 1/2/4 for host/cluster/Kubernetes not running.
        exit_code: i32,
    },
}

/// `minikube profile list -o json`.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ProfileList {
    /// Profiles whose config loads.
    #[serde(default)]
    pub valid: Option<Vec<Profile>>,
    /// Profiles whose config is broken.
    #[serde(default)]
    pub invalid: Option<Vec<Profile>>,
}

/// One profile of the list.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Profile {
    /// The profile name.
    pub name: String,
    /// `Running`, `Stopped`, `Paused`, `Degraded`, …
    #[serde(default)]
    pub status: String,
    /// The cluster configuration (absent for some invalid profiles).
    #[serde(default)]
    pub config: Option<ClusterConfig>,
}

/// The parts of minikube's `ClusterConfig` that canary-lab looks at.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClusterConfig {
    /// `docker`, `kvm2`, `none`, `hyperkit`, …
    #[serde(default)]
    pub driver: Driver,
    /// CPUs given to the node.
    #[serde(rename = "CPUs", default)]
    pub cpus: u32,
    /// Memory given to the node, in MiB.
    #[serde(default)]
    pub memory: u64,
    /// Kubernetes settings.
    #[serde(default)]
    pub kubernetes_config: KubernetesConfig,
    /// The nodes.
    #[serde(default)]
    pub nodes: Option<Vec<NodeConfig>>,
}

/// A minikube driver, as the lab tells them apart: `none` runs Kubernetes on this machine itself, every other
/// driver in a VM or container (the node), which decides where hostPath volumes live.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(from = "String")]
pub enum Driver {
    /// `none`: the node is this machine; hostPaths are its own filesystem.
    None,
    /// Any other driver (`docker`, `kvm2`, …), by name.
    Other(String),
    /// minikube's config named no driver.
    #[default]
    Unknown,
}

impl Driver {
    /// The driver's name as minikube spells it (empty when unknown).
    pub fn name(&self) -> &str {
        match self {
            Driver::None => "none",
            Driver::Other(name) => name,
            Driver::Unknown => "",
        }
    }
}

impl serde::Serialize for Driver {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl From<String> for Driver {
    fn from(name: String) -> Driver {
        match name.as_str() {
            "none" => Driver::None,
            "" => Driver::Unknown,
            _ => Driver::Other(name),
        }
    }
}

/// minikube's `KubernetesConfig` (the fields canary-lab reads).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct KubernetesConfig {
    /// e.g. `v1.24.3`.
    #[serde(default)]
    pub kubernetes_version: String,
    /// `docker`, `containerd`, `cri-o`.
    #[serde(default)]
    pub container_runtime: String,
}

/// One node of a profile's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeConfig {
    /// The node name (empty for the first control plane).
    #[serde(default)]
    pub name: String,
    /// Its IP address.
    #[serde(rename = "IP", default)]
    pub ip: String,
    /// True for a control-plane node.
    #[serde(default)]
    pub control_plane: bool,
}

impl ProfileList {
    /// The profile called `name`, valid or invalid.
    pub fn find(&self, name: &str) -> Option<&Profile> {
        let valid = self.valid.iter().flatten();
        let invalid = self.invalid.iter().flatten();
        valid.chain(invalid).find(|profile| profile.name == name)
    }
}

impl Minikube {
    /// The minikube at `program` (a path, or a bare name looked up on `PATH`).
    pub fn new(program: &Path) -> Minikube {
        Minikube {
            program: program.to_path_buf(),
        }
    }

    /// The program this runs.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// A command for this minikube (for callers such as the tunnel supervisor that need the raw command); a
    /// missing minikube is reported with [`INSTALL_HELP`].
    pub fn command(&self, intent: &str, args: &[&str]) -> ToolCommand {
        ToolCommand::new(intent, &self.program, args).install_help(INSTALL_HELP)
    }

    /// `minikube version -o json`.
    pub fn version(&self) -> Result<MinikubeVersion, ToolError> {
        let command = self.command("read the minikube version", &["version", "-o", "json"]);
        let output = command.run()?;
        command.parse_json(&output.stdout)
    }

    /// `minikube status -p PROFILE -o json`.
    pub fn status(&self, profile: &str) -> Result<ProfileStatus, ToolError> {
        let command = self.command(
            "read the minikube profile status",
            &["status", "-p", profile, "-o", "json"],
        );
        let output = command.output()?;
        if output.code == Some(EXIT_PROFILE_NOT_FOUND) {
            return Ok(ProfileStatus::NotFound);
        }
        let exit_code = output.code.unwrap_or(-1);
        // Exit codes 1–7 are the "not running" bit set and still come with JSON; anything else is a failure.
        if !(0..=7).contains(&exit_code) {
            return Err(command.failed(&output));
        }
        let text = output.stdout.trim();
        let nodes = if text.starts_with('[') {
            command.parse_json::<Vec<NodeStatus>>(text)?
        } else {
            vec![command.parse_json::<NodeStatus>(text)?]
        };
        if nodes.iter().any(|node| node.host == "Nonexistent") && nodes.len() == 1 {
            Ok(ProfileStatus::NotFound)
        } else {
            Ok(ProfileStatus::Nodes { nodes, exit_code })
        }
    }

    /// `minikube profile list -o json`. minikube exits non-zero when there are no profiles at all but still
    /// prints the JSON, so the output is parsed whatever the exit code when it looks like JSON.
    pub fn profiles(&self) -> Result<ProfileList, ToolError> {
        let command = self.command("list the minikube profiles", &["profile", "list", "-o", "json"]);
        let output = command.output()?;
        let text = output.stdout.trim();
        match (output.success(), text.starts_with('{')) {
            (_, true) => command.parse_json(text),
            (true, false) => Err(command.malformed("expected a JSON object", &output.stdout)),
            (false, false) => Err(command.failed(&output)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_driver_is_none_by_its_name_and_keeps_any_other_name() {
        let driver = |json: &str| serde_json::from_str::<ClusterConfig>(json).unwrap().driver;
        assert_eq!(driver(r#"{"Driver":"none"}"#), Driver::None);
        assert_eq!(driver(r#"{"Driver":"kvm2"}"#), Driver::Other("kvm2".to_string()));
        assert_eq!(driver(r#"{"Driver":""}"#), Driver::Unknown);
        assert_eq!(driver("{}"), Driver::Unknown);
        assert_eq!(Driver::Other("kvm2".to_string()).name(), "kvm2");
        assert_eq!(Driver::None.name(), "none");
    }

    #[test]
    fn parses_a_profile_list_as_minikube_prints_it() {
        let text = r#"{"invalid":[],"valid":[{"Name":"minikube","Status":"Running","Config":{"Name":"minikube",
            "Driver":"docker","CPUs":4,"Memory":8192,"KubernetesConfig":{"KubernetesVersion":"v1.24.3",
            "ContainerRuntime":"docker"},"Nodes":[{"Name":"","IP":"192.168.49.2","Port":8443,
            "KubernetesVersion":"v1.24.3","ControlPlane":true,"Worker":true}]},"Active":true}]}"#;
        let list: ProfileList = serde_json::from_str(text).unwrap();
        let profile = list.find("minikube").unwrap();
        let config = profile.config.as_ref().unwrap();
        assert_eq!(
            (&config.driver, config.cpus, config.memory),
            (&Driver::Other("docker".to_string()), 4, 8192)
        );
        assert_eq!(config.kubernetes_config.kubernetes_version, "v1.24.3");
        assert!(list.find("other").is_none());
    }

    #[test]
    fn a_missing_minikube_comes_with_the_install_help_from_every_command() {
        let minikube = Minikube::new(Path::new("/nonexistent/minikube"));
        let version = minikube.version().unwrap_err();
        assert_eq!(
            version.to_string(),
            format!("failed to read the minikube version: `/nonexistent/minikube` was not found\nhelp: {INSTALL_HELP}")
        );
        let log_dir = tempfile::tempdir().unwrap();
        let tunnel = minikube
            .command("run minikube tunnel", &["tunnel"])
            .spawn_logged(&log_dir.path().join("tunnel.log"))
            .unwrap_err();
        assert_eq!(
            tunnel.to_string(),
            format!("failed to run minikube tunnel: `/nonexistent/minikube` was not found\nhelp: {INSTALL_HELP}")
        );
    }

    #[test]
    fn parses_a_null_profile_list() {
        let list: ProfileList = serde_json::from_str(r#"{"invalid":null,"valid":null}"#).unwrap();
        assert!(list.find("minikube").is_none());
    }
}
