//! The doctor's pure classifications: what a Kubernetes version, the profile's resources, the driver and the node's
//! architecture mean for the lab, each as a [`CheckRow`] with its fix. Unit-tested on their own.

use super::{CheckRow, RECOMMENDED_KUBERNETES, WANTED_CPUS, WANTED_MEMORY_MIB};
use crate::tool::minikube::Driver;

/// The profile's Kubernetes version and resources, and the one `minikube delete && minikube start` that gives the
/// lab what it needs, when the profile lacks something only a new cluster changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileShape<'a> {
    /// The profile's name.
    pub profile: &'a str,
    /// Its Kubernetes version (`v1.24.3`; empty when the config does not say).
    pub kubernetes_version: &'a str,
    /// Its CPUs.
    pub cpus: u32,
    /// Its memory in MiB.
    pub memory_mib: u64,
}

impl ProfileShape<'_> {
    /// Whether Istio 1.12.7 cannot run on this version (unreadable, older than 1.19, 1.25 or newer).
    fn version_unusable(&self) -> bool {
        !matches!(parse_major_minor(self.kubernetes_version), Some((1, 19..=24)))
    }

    /// Whether the profile has fewer CPUs or less memory than the lab wants.
    fn too_small(&self) -> bool {
        self.cpus < WANTED_CPUS || self.memory_mib < WANTED_MEMORY_MIB
    }

    /// One command that recreates the profile with everything it lacks and keeps what it has: the recommended
    /// version only when the current one is unusable, and at least the wanted CPUs and memory. The version row and
    /// the resources row both give this command, so following one never undoes the other.
    pub fn recreate_command(&self) -> String {
        let profile = self.profile;
        let version = if self.version_unusable() || self.kubernetes_version.is_empty() {
            RECOMMENDED_KUBERNETES
        } else {
            self.kubernetes_version
        };
        let cpus = self.cpus.max(WANTED_CPUS);
        let memory = if self.memory_mib > WANTED_MEMORY_MIB {
            format!("{}mb", self.memory_mib)
        } else {
            "8g".to_string()
        };
        format!(
            "minikube delete -p {profile} && minikube start -p {profile} --kubernetes-version={version} --cpus={cpus} --memory={memory}"
        )
    }
}

/// Classifies the profile's Kubernetes version for Istio 1.12.7; the fix is [`ProfileShape::recreate_command`].
pub fn kubernetes_version_row(shape: &ProfileShape) -> CheckRow {
    let version = shape.kubernetes_version;
    let recreate = shape.recreate_command();
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
            format!("nothing needed: the original lab ran {RECOMMENDED_KUBERNETES}"),
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

/// Warns when the profile has fewer CPUs or less memory than the lab wants; the fix is
/// [`ProfileShape::recreate_command`], which also moves an unusable Kubernetes version.
pub fn resources_row(shape: &ProfileShape) -> CheckRow {
    let found = format!("{} CPUs, {} MiB memory", shape.cpus, shape.memory_mib);
    if !shape.too_small() {
        return CheckRow::ok("resources", found);
    }
    let mut fix = shape.recreate_command();
    if shape.version_unusable() {
        fix.push_str(" (the same command as the kubernetes row: it sets both)");
    }
    CheckRow::warn(
        "resources",
        format!("{found}; Istio's default profile plus two TF Serving pods want about {WANTED_CPUS} CPUs and 8 GiB"),
        fix,
    )
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

/// Fails on a non-amd64 node: Istio 1.12 published amd64-only images. Nodes that could not be read leave the row
/// `skip`: this machine's architecture says nothing about a remote or emulated node.
pub fn architecture_row(architectures: Option<Vec<String>>) -> CheckRow {
    let architectures = match architectures {
        Some(found) if !found.is_empty() => found,
        Some(_) => return CheckRow::skip("architecture", "the cluster lists no node"),
        None => return CheckRow::skip("architecture", "the nodes could not be read"),
    };
    let not_amd64 = architectures
        .iter()
        .any(|arch| !matches!(arch.as_str(), "amd64" | "x86_64"));
    let found = format!("{} (node)", architectures.join(", "));
    if not_amd64 {
        CheckRow::fail(
            "architecture",
            format!("{found}: Istio 1.12 published amd64-only images, so its pods fail with \"exec format error\""),
            "run the lab on an amd64 (x86_64) machine".to_string(),
        )
    } else {
        CheckRow::ok("architecture", found)
    }
}

/// "v1.24.3" → (1, 24).
pub fn parse_major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor_text: String = parts.next()?.chars().take_while(char::is_ascii_digit).collect();
    Some((major, minor_text.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::preflight::CheckStatus;

    fn shape(version: &str, cpus: u32, memory_mib: u64) -> ProfileShape<'_> {
        ProfileShape {
            profile: "lab",
            kubernetes_version: version,
            cpus,
            memory_mib,
        }
    }

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
                kubernetes_version_row(&shape(version, 4, 8192)).status,
                expected,
                "{version}"
            );
        }
    }

    #[test]
    fn the_fix_for_a_new_kubernetes_recreates_the_profile_on_1_24_3() {
        let row = kubernetes_version_row(&shape("v1.26.1", 4, 8192));
        assert!(
            row.found.contains("v1.26.1") && row.found.contains("policy/v1beta1"),
            "{}",
            row.found
        );
        assert_eq!(
            row.fix.unwrap(),
            "minikube delete -p lab && minikube start -p lab --kubernetes-version=v1.24.3 --cpus=4 --memory=8g"
        );
    }

    #[test]
    fn resources_warn_below_four_cpus_or_eight_gib() {
        assert_eq!(resources_row(&shape("v1.24.3", 4, 8192)).status, CheckStatus::Ok);
        assert_eq!(resources_row(&shape("v1.24.3", 2, 8192)).status, CheckStatus::Warn);
        assert_eq!(resources_row(&shape("v1.24.3", 4, 4000)).status, CheckStatus::Warn);
    }

    #[test]
    fn a_too_new_and_too_small_cluster_gets_one_command_for_both() {
        // Before, the resources fix recreated the cluster on its current (unusable) version, undoing the version
        // fix, and the version fix set 4 CPUs even where the profile had more.
        let small_and_new = shape("v1.26.1", 2, 4096);
        let version_fix = kubernetes_version_row(&small_and_new).fix.unwrap();
        let resources_fix = resources_row(&small_and_new).fix.unwrap();
        let command =
            "minikube delete -p lab && minikube start -p lab --kubernetes-version=v1.24.3 --cpus=4 --memory=8g";
        assert_eq!(version_fix, command);
        assert!(resources_fix.starts_with(command), "{resources_fix}");
        // A usable version is kept, and more than the lab wants is never taken away.
        assert_eq!(
            resources_row(&shape("v1.22.17", 8, 4096)).fix.unwrap(),
            "minikube delete -p lab && minikube start -p lab --kubernetes-version=v1.22.17 --cpus=8 --memory=8g"
        );
        assert_eq!(
            kubernetes_version_row(&shape("v1.26.1", 8, 16384)).fix.unwrap(),
            "minikube delete -p lab && minikube start -p lab --kubernetes-version=v1.24.3 --cpus=8 --memory=16384mb"
        );
    }

    #[test]
    fn an_unread_node_is_not_checked() {
        // Before, an unreadable node was reported `ok` from this machine's own architecture.
        assert_eq!(architecture_row(None).status, CheckStatus::Skip);
        assert_eq!(architecture_row(Some(Vec::new())).status, CheckStatus::Skip);
    }

    #[test]
    fn arm64_nodes_fail() {
        assert_eq!(architecture_row(Some(vec!["amd64".into()])).status, CheckStatus::Ok);
        let row = architecture_row(Some(vec!["arm64".into()]));
        assert_eq!(row.status, CheckStatus::Fail);
        assert!(row.found.contains("amd64-only"), "{}", row.found);
    }
}
