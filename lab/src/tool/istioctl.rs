//! `istioctl`: typed access to the commands canary-lab runs (version, install, uninstall).
//!
//! `istioctl version -o json` prints `{"clientVersion": BuildInfo, "meshVersion": [ComponentInfo…],
//! "dataPlaneVersion": [...]}` where `BuildInfo` carries `version`, `revision`, `golang_version`, `status`, `tag`
//! (`pkg/version/version.go` and `istioctl/pkg/version/version.go` at istio 1.12). With `--remote=false` only
//! `clientVersion` is present.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{ToolCommand, ToolError, ToolOutput};

/// An `istioctl` executable.
#[derive(Debug, Clone)]
pub struct Istioctl {
    program: PathBuf,
}

/// `istioctl version -o json`.
#[derive(Debug, Clone, Deserialize)]
pub struct IstioctlVersion {
    /// The client (istioctl itself).
    #[serde(rename = "clientVersion")]
    pub client_version: BuildInfo,
    /// The control plane components, when asked remotely.
    #[serde(rename = "meshVersion", default)]
    pub mesh_version: Option<Vec<ComponentInfo>>,
}

/// Istio's `BuildInfo`.
#[derive(Debug, Clone, Deserialize)]
pub struct BuildInfo {
    /// e.g. `1.12.7`.
    pub version: String,
    /// The git revision.
    #[serde(default)]
    pub revision: String,
}

/// One control-plane component's version (`{"Component": "pilot", "Info": BuildInfo}`).
#[derive(Debug, Clone, Deserialize)]
pub struct ComponentInfo {
    /// e.g. `pilot`.
    #[serde(rename = "Component")]
    pub component: String,
    /// Its build info.
    #[serde(rename = "Info")]
    pub info: BuildInfo,
}

impl Istioctl {
    /// The istioctl at `program`.
    pub fn new(program: &Path) -> Istioctl {
        Istioctl {
            program: program.to_path_buf(),
        }
    }

    /// `istioctl version --remote=false -o json`: the client's own version, no cluster needed.
    pub fn client_version(&self) -> Result<BuildInfo, ToolError> {
        let command = ToolCommand::new(
            "read the istioctl version",
            &self.program,
            &["version", "--remote=false", "-o", "json"],
        )
        .timeout(Duration::from_secs(60));
        let output = command.run()?;
        let version: IstioctlVersion = command.parse_json(&output.stdout)?;
        Ok(version.client_version)
    }

    /// `istioctl install -y --set profile=default --context CONTEXT`, with a generous deadline; the output is
    /// returned so the caller can show it.
    pub fn install_default_profile(&self, context: &str, timeout: Duration) -> Result<ToolOutput, ToolError> {
        ToolCommand::new(
            "install Istio's default profile",
            &self.program,
            &["install", "-y", "--set", "profile=default", "--context", context],
        )
        .timeout(timeout)
        .run()
    }

    /// `istioctl x uninstall --purge -y --context CONTEXT`.
    pub fn uninstall_purge(&self, context: &str, timeout: Duration) -> Result<ToolOutput, ToolError> {
        ToolCommand::new(
            "uninstall Istio",
            &self.program,
            &["x", "uninstall", "--purge", "-y", "--context", context],
        )
        .timeout(timeout)
        .run()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_istioctl_version_json() {
        let text = r#"{"clientVersion":{"version":"1.12.7","revision":"56f057aaaf2aacc53dae77d68587cb222e8a8a98",
            "golang_version":"go1.17.9","status":"Clean","tag":"1.12.7"},
            "meshVersion":[{"Component":"pilot","Info":{"version":"1.12.7","revision":"56f057a","golang_version":"",
            "status":"Clean","tag":"1.12.7"}}]}"#;
        let version: IstioctlVersion = serde_json::from_str(text).unwrap();
        assert_eq!(version.client_version.version, "1.12.7");
        assert_eq!(version.mesh_version.unwrap()[0].component, "pilot");
    }
}
