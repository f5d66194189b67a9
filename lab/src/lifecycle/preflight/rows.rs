//! The doctor's pure classifications: what a Kubernetes version, the profile's resources, the driver and the node's
//! architecture mean for the lab, each as a [`CheckRow`] with its fix. Unit-tested on their own.

use super::{CheckRow, RECOMMENDED_KUBERNETES, WANTED_CPUS, WANTED_MEMORY_MIB};
use crate::tool::minikube::Driver;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::preflight::CheckStatus;

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
