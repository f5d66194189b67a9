//! `lab doctor`: the preflight checks that `lab up` runs first.
//!
//! Each check yields a [`CheckRow`]: a status, what was found and, for a warning or failure, a one-line fix.
//! Checks that depend on an earlier one (the profile needs minikube, the API needs a running profile) are
//! reported as skipped with the reason rather than failing twice for the same cause.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use serde::Serialize;

mod rows;

pub use rows::{ProfileShape, architecture_row, driver_row, kubernetes_version_row, parse_major_minor, resources_row};

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
            let shape = ProfileShape {
                profile: profile_name,
                kubernetes_version: &config.kubernetes_config.kubernetes_version,
                cpus: config.cpus,
                memory_mib: config.memory,
            };
            rows.push(kubernetes_version_row(&shape));
            rows.push(resources_row(&shape));
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
                        format!(
                            "\"{profile_name}\" is Running ({})",
                            crate::output::plural(nodes.len() as u64, "node")
                        ),
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
        let (client, version) = crate::cluster::kube_client::client_and_version(settings).await?;
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
    const PORT_FORWARD: &str = "`--ingress port-forward` needs no sudo";
    let fix = format!("run `sudo -v` before `lab up` so `minikube tunnel` can start, or use {PORT_FORWARD}");
    match crate::tool::sudo_without_password() {
        Ok(output) if output.success() => CheckRow::ok("sudo", "sudo works without a password prompt".to_string()),
        Ok(_) => CheckRow::warn(
            "sudo",
            "sudo needs a password; `minikube tunnel` would prompt".to_string(),
            fix,
        ),
        Err(ToolError::NotFound { .. }) => CheckRow::warn(
            "sudo",
            "sudo is not installed; `minikube tunnel` needs it for ports 80 and 443".to_string(),
            format!("install sudo (e.g. `apt-get install sudo`, as root), or use {PORT_FORWARD}"),
        ),
        Err(error) => CheckRow::warn("sudo", one_line(&error.to_string()), fix),
    }
}

/// Joins a multi-line message into one line for a table cell, without its `help:` lines (the row has its own fix).
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("help:"))
        .collect::<Vec<_>>()
        .join(" | ")
}
