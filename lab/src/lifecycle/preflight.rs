//! `lab doctor`: the preflight checks that `lab up` runs first.
//!
//! Each check yields a [`CheckRow`]: a status, what was found and, for a warning or failure, a one-line fix.
//! Checks that depend on an earlier one (the profile needs minikube, the API needs a running profile) are
//! reported as skipped with the reason rather than failing twice for the same cause.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use serde::Serialize;

use crate::Settings;
use crate::tool::ToolError;
use crate::tool::minikube::{self, Driver, Minikube, Profile, ProfileStatus};

/// The Kubernetes version the original lab ran and the fix lines recommend.
pub const RECOMMENDED_KUBERNETES: &str = "v1.24.3";
/// CPUs that Istio's default profile plus two TF Serving pods want.
pub const WANTED_CPUS: u32 = 4;
/// Memory (MiB) that Istio's default profile plus two TF Serving pods want.
pub const WANTED_MEMORY_MIB: u64 = 8192;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// As required.
    Ok,
    /// Works, but something may go wrong; the fix says what to change.
    Warn,
    /// `lab up` cannot succeed until this is fixed.
    Fail,
    /// Not checked because an earlier check failed.
    Skip,
}

/// One row of the doctor's report.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRow {
    /// A short name: `minikube`, `profile`, `kubernetes`, …
    pub check: &'static str,
    /// ok / warn / fail / skip.
    pub status: CheckStatus,
    /// What was found, in one line.
    pub found: String,
    /// For warn and fail: the command or step that fixes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// What the preflight learnt about the cluster, for the steps after it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterFacts {
    /// The minikube driver (`docker`, `none`, …); [`Driver::Unknown`] when no profile config was read.
    pub driver: Driver,
}

/// The full preflight report.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    /// One row per check, in the order they ran.
    pub rows: Vec<CheckRow>,
    /// Facts for later steps.
    #[serde(skip)]
    pub facts: ClusterFacts,
}

impl DoctorReport {
    /// True when any check failed.
    pub fn has_failures(&self) -> bool {
        self.rows.iter().any(|row| row.status == CheckStatus::Fail)
    }
}

impl CheckRow {
    fn ok(check: &'static str, found: String) -> CheckRow {
        CheckRow {
            check,
            status: CheckStatus::Ok,
            found,
            fix: None,
        }
    }
    fn warn(check: &'static str, found: String, fix: String) -> CheckRow {
        CheckRow {
            check,
            status: CheckStatus::Warn,
            found,
            fix: Some(fix),
        }
    }
    fn fail(check: &'static str, found: String, fix: String) -> CheckRow {
        CheckRow {
            check,
            status: CheckStatus::Fail,
            found,
            fix: Some(fix),
        }
    }
    fn skip(check: &'static str, reason: &str) -> CheckRow {
        CheckRow {
            check,
            status: CheckStatus::Skip,
            found: format!("not checked: {reason}"),
            fix: None,
        }
    }
}

/// Runs every check against the settings' minikube profile and kube context.
pub async fn run_doctor(settings: &Settings) -> DoctorReport {
    let mut rows = Vec::new();
    let mut facts = ClusterFacts::default();
    let profile_name = settings.profile.as_str();
    let minikube = Minikube::new(settings.minikube_program());

    // 1. minikube itself.
    let minikube_found = match minikube.version() {
        Ok(version) => {
            rows.push(CheckRow::ok(
                "minikube",
                format!(
                    "minikube {} ({})",
                    version.minikube_version,
                    minikube.program().display()
                ),
            ));
            true
        }
        Err(ToolError::NotFound { program, .. }) => {
            rows.push(CheckRow::fail(
                "minikube",
                format!("minikube not found (looked for `{program}`)"),
                minikube::INSTALL_HELP.to_string(),
            ));
            false
        }
        Err(error) => {
            rows.push(CheckRow::fail(
                "minikube",
                one_line(&error.to_string()),
                "reinstall minikube: https://minikube.sigs.k8s.io/docs/start/".to_string(),
            ));
            false
        }
    };

    // 2. The profile: exists and runs; its config gives driver, resources and Kubernetes version.
    let mut profile_config: Option<Profile> = None;
    let mut profile_running = false;
    if minikube_found {
        let row = check_profile(&minikube, profile_name, &mut profile_config, &mut profile_running);
        rows.push(row);
    } else {
        rows.push(CheckRow::skip("profile", "minikube is missing"));
    }

    // 3–5. Kubernetes version, resources, driver: from the profile's config.
    match profile_config.as_ref().and_then(|profile| profile.config.as_ref()) {
        Some(config) => {
            let version = config.kubernetes_config.kubernetes_version.clone();
            rows.push(kubernetes_version_row(profile_name, &version));
            rows.push(resources_row(profile_name, config.cpus, config.memory, &version));
            rows.push(driver_row(&config.driver));
            facts.driver = config.driver.clone();
        }
        None => {
            for check in ["kubernetes", "resources", "driver"] {
                rows.push(CheckRow::skip(check, "no minikube profile to read"));
            }
        }
    }

    // 6–7. The API server and, through it, the node architecture.
    if profile_running || settings.context.is_some() {
        let api = check_api(settings).await;
        rows.push(api.row);
        rows.push(architecture_row(api.architectures));
    } else {
        rows.push(CheckRow::skip("api", "the minikube profile is not running"));
        rows.push(CheckRow::skip("architecture", "the Kubernetes API is not reachable"));
    }

    // 8. Password-less sudo, which `minikube tunnel` needs.
    rows.push(sudo_row());

    DoctorReport { rows, facts }
}

/// Classifies a Kubernetes version for Istio 1.12.7; `profile` goes into the fix line.
pub fn kubernetes_version_row(profile: &str, version: &str) -> CheckRow {
    let recreate = format!(
        "minikube delete -p {profile} && minikube start -p {profile} --kubernetes-version={RECOMMENDED_KUBERNETES} --cpus={WANTED_CPUS} --memory=8g"
    );
    let Some((major, minor)) = parse_major_minor(version) else {
        return CheckRow::fail(
            "kubernetes",
            format!("cannot read Kubernetes version \"{version}\""),
            recreate,
        );
    };
    match (major, minor) {
        (1, 19..=22) => CheckRow::ok("kubernetes", format!("Kubernetes {version}: supported by Istio 1.12.7")),
        (1, 23..=24) => CheckRow::warn(
            "kubernetes",
            format!("Kubernetes {version}: not officially supported by Istio 1.12.7 (1.19–1.22), works in practice"),
            format!(
                "nothing needed (the original lab ran {RECOMMENDED_KUBERNETES}); for a supported version: {recreate}"
            ),
        ),
        (1, 25..) | (2.., _) => CheckRow::fail(
            "kubernetes",
            format!(
                "Kubernetes {version}: too new for Istio 1.12.7, whose charts create policy/v1beta1 PodDisruptionBudgets and autoscaling/v2beta1 HorizontalPodAutoscalers, removed in Kubernetes 1.25"
            ),
            recreate,
        ),
        _ => CheckRow::fail(
            "kubernetes",
            format!("Kubernetes {version}: too old for Istio 1.12.7 (needs 1.19 or newer)"),
            recreate,
        ),
    }
}

/// Warns when the profile has fewer CPUs or less memory than the lab wants.
pub fn resources_row(profile: &str, cpus: u32, memory_mib: u64, kubernetes_version: &str) -> CheckRow {
    let found = format!("{cpus} CPUs, {} MiB memory", memory_mib);
    let enough = cpus >= WANTED_CPUS && memory_mib >= WANTED_MEMORY_MIB;
    let version = if kubernetes_version.is_empty() {
        RECOMMENDED_KUBERNETES
    } else {
        kubernetes_version
    };
    if enough {
        CheckRow::ok("resources", found)
    } else {
        CheckRow::warn(
            "resources",
            format!(
                "{found}; Istio's default profile plus two TF Serving pods want about {WANTED_CPUS} CPUs and 8 GiB"
            ),
            format!(
                "minikube delete -p {profile} && minikube start -p {profile} --cpus={WANTED_CPUS} --memory=8g --kubernetes-version={version}"
            ),
        )
    }
}

/// Reports the driver and what it means for model placement.
pub fn driver_row(driver: &Driver) -> CheckRow {
    match driver {
        Driver::None => CheckRow::ok(
            "driver",
            "none: hostPath volumes are this machine's own filesystem; models are used in place".to_string(),
        ),
        Driver::Unknown => CheckRow::warn(
            "driver",
            "unknown driver".to_string(),
            "check `minikube profile list` for the profile's driver".to_string(),
        ),
        Driver::Other(name) => CheckRow::ok(
            "driver",
            format!("{name}: hostPath volumes live inside the minikube node; models are exported or copied there"),
        ),
    }
}

/// Fails on a non-amd64 node: Istio 1.12 published amd64-only images.
pub fn architecture_row(architectures: Option<Vec<String>>) -> CheckRow {
    let (architectures, source) = match architectures {
        Some(found) if !found.is_empty() => (found, "node"),
        _ => (
            vec![std::env::consts::ARCH.to_string()],
            "this machine; the node was not readable",
        ),
    };
    let not_amd64: Vec<&String> = architectures
        .iter()
        .filter(|arch| !matches!(arch.as_str(), "amd64" | "x86_64"))
        .collect();
    let found = format!("{} ({source})", architectures.join(", "));
    if not_amd64.is_empty() {
        CheckRow::ok("architecture", found)
    } else {
        CheckRow::fail(
            "architecture",
            format!("{found}: Istio 1.12 published amd64-only images, so its pods fail with \"exec format error\""),
            "run the lab on an amd64 (x86_64) machine".to_string(),
        )
    }
}

/// "v1.24.3" → (1, 24).
pub fn parse_major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor_text: String = parts.next()?.chars().take_while(char::is_ascii_digit).collect();
    Some((major, minor_text.parse().ok()?))
}

fn check_profile(
    minikube: &Minikube,
    profile_name: &str,
    profile_config: &mut Option<Profile>,
    profile_running: &mut bool,
) -> CheckRow {
    let start = format!(
        "minikube start -p {profile_name} --kubernetes-version={RECOMMENDED_KUBERNETES} --cpus={WANTED_CPUS} --memory=8g"
    );
    let list = match minikube.profiles() {
        Ok(list) => list,
        Err(error) => return CheckRow::fail("profile", one_line(&error.to_string()), start),
    };
    *profile_config = list.find(profile_name).cloned();
    let status = match minikube.status(profile_name) {
        Ok(status) => status,
        Err(error) => return CheckRow::fail("profile", one_line(&error.to_string()), start),
    };
    match status {
        ProfileStatus::NotFound => CheckRow::fail("profile", format!("no minikube profile \"{profile_name}\""), start),
        ProfileStatus::Nodes { nodes, exit_code } => {
            let summary: Vec<String> = nodes
                .iter()
                .map(|node| {
                    format!(
                        "{}: host {}, kubelet {}, apiserver {}",
                        node.name, node.host, node.kubelet, node.api_server
                    )
                })
                .collect();
            match exit_code {
                0 => {
                    *profile_running = true;
                    CheckRow::ok(
                        "profile",
                        format!("\"{profile_name}\" is Running ({} node(s))", nodes.len()),
                    )
                }
                _ => CheckRow::fail(
                    "profile",
                    format!("\"{profile_name}\" is not running ({})", summary.join("; ")),
                    format!("minikube start -p {profile_name}"),
                ),
            }
        }
    }
}

struct ApiCheck {
    row: CheckRow,
    architectures: Option<Vec<String>>,
}

async fn check_api(settings: &Settings) -> ApiCheck {
    let context = settings.kube_context().to_string();
    let fix = format!(
        "check that `minikube status -p {}` shows the apiserver Running, then `minikube update-context -p {}`; or pass --context",
        settings.profile, settings.profile
    );
    let probe = async {
        let client = crate::cluster::kube_client::client_for(settings).await?;
        let version = client.apiserver_version().await?;
        let nodes = kube::Api::<Node>::all(client).list(&ListParams::default()).await.ok();
        anyhow::Ok((version, nodes))
    };
    match tokio::time::timeout(Duration::from_secs(15), probe).await {
        Ok(Ok((version, nodes))) => {
            let architectures = nodes.map(|list| {
                list.items
                    .iter()
                    .filter_map(|node| {
                        node.status
                            .as_ref()?
                            .node_info
                            .as_ref()
                            .map(|info| info.architecture.clone())
                    })
                    .collect::<Vec<_>>()
            });
            ApiCheck {
                row: CheckRow::ok(
                    "api",
                    format!("Kubernetes API {} answers (context \"{context}\")", version.git_version),
                ),
                architectures,
            }
        }
        Ok(Err(error)) => ApiCheck {
            row: CheckRow::fail(
                "api",
                format!("context \"{context}\": {}", one_line(&format!("{error:#}"))),
                fix,
            ),
            architectures: None,
        },
        Err(_) => ApiCheck {
            row: CheckRow::fail("api", format!("context \"{context}\": no answer within 15s"), fix),
            architectures: None,
        },
    }
}

fn sudo_row() -> CheckRow {
    let fix =
        "run `sudo -v` before `lab up` so `minikube tunnel` can start, or use `--ingress port-forward`".to_string();
    match crate::tool::sudo_without_password() {
        Ok(output) if output.success() => CheckRow::ok("sudo", "sudo works without a password prompt".to_string()),
        Ok(_) => CheckRow::warn(
            "sudo",
            "sudo needs a password; `minikube tunnel` would prompt".to_string(),
            fix,
        ),
        Err(ToolError::NotFound { .. }) => CheckRow::warn("sudo", "sudo is not installed".to_string(), fix),
        Err(error) => CheckRow::warn("sudo", one_line(&error.to_string()), fix),
    }
}

/// Joins a multi-line message into one line for a table cell.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_versions_are_classified_for_istio_1_12() {
        let cases = [
            ("v1.18.20", CheckStatus::Fail),
            ("v1.19.0", CheckStatus::Ok),
            ("v1.22.17", CheckStatus::Ok),
            ("v1.23.1", CheckStatus::Warn),
            ("v1.24.3", CheckStatus::Warn),
            ("v1.25.0", CheckStatus::Fail),
            ("v1.26.3", CheckStatus::Fail),
            ("garbage", CheckStatus::Fail),
        ];
        for (version, expected) in cases {
            assert_eq!(
                kubernetes_version_row("minikube", version).status,
                expected,
                "{version}"
            );
        }
    }

    #[test]
    fn the_fix_for_a_new_kubernetes_recreates_the_profile_on_1_24_3() {
        let row = kubernetes_version_row("lab", "v1.26.1");
        assert!(
            row.found.contains("v1.26.1") && row.found.contains("policy/v1beta1"),
            "{}",
            row.found
        );
        let fix = row.fix.unwrap();
        assert!(
            fix.starts_with("minikube delete -p lab && minikube start -p lab --kubernetes-version=v1.24.3"),
            "{fix}"
        );
    }

    #[test]
    fn resources_warn_below_four_cpus_or_eight_gib() {
        assert_eq!(resources_row("m", 4, 8192, "v1.24.3").status, CheckStatus::Ok);
        assert_eq!(resources_row("m", 2, 8192, "v1.24.3").status, CheckStatus::Warn);
        assert_eq!(resources_row("m", 4, 4000, "v1.24.3").status, CheckStatus::Warn);
    }

    #[test]
    fn arm64_nodes_fail() {
        assert_eq!(architecture_row(Some(vec!["amd64".into()])).status, CheckStatus::Ok);
        let row = architecture_row(Some(vec!["arm64".into()]));
        assert_eq!(row.status, CheckStatus::Fail);
        assert!(row.found.contains("amd64-only"), "{}", row.found);
    }
}
