//! `lab up` against a real minikube (Kubernetes v1.24.3): run only with `LAB_E2E=1` and `--ignored`.
//!
//! `LAB_E2E=1 cargo test --test e2e_minikube -- --ignored` (the `e2e` workflow runs it on a hosted runner).
//! It uses the caller's own environment (PATH with minikube, KUBECONFIG, HOME), not the isolated one of the
//! other tests. `LAB_E2E_PROFILE` picks the minikube profile (default `minikube`); `LAB_E2E_ISTIOCTL` passes an
//! istioctl to `lab up --istioctl` instead of fetching one.

use std::process::{Command, Output};

fn lab(args: &[&str]) -> Output {
    let profile = std::env::var("LAB_E2E_PROFILE").unwrap_or_else(|_| "minikube".to_string());
    #[allow(clippy::disallowed_methods)] // The test runs the CLI itself as a process.
    let output = Command::new(canary_lab_tests::cargo_bin("lab-cli"))
        .args(["--profile", &profile])
        .args(args)
        .output()
        .expect("run lab-cli");
    eprintln!(
        "$ lab {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn up_args() -> Vec<String> {
    // The stage assertions are not wired into `lab up` yet; the smoke prediction still goes through the gateway.
    let mut args = vec!["lab".to_string(), "up".to_string(), "--no-assert".to_string()];
    if let Ok(istioctl) = std::env::var("LAB_E2E_ISTIOCTL") {
        args.extend(["--istioctl".to_string(), istioctl]);
    }
    args
}

#[test]
#[ignore = "needs a real minikube: LAB_E2E=1 cargo test --test e2e_minikube -- --ignored"]
fn lab_up_on_a_real_minikube_is_served_idempotent_and_comes_down() {
    assert_eq!(
        std::env::var("LAB_E2E").as_deref(),
        Ok("1"),
        "this test changes a real cluster: set LAB_E2E=1 to run it"
    );
    let doctor = lab(&["lab", "doctor"]);
    assert!(doctor.status.success(), "lab doctor failed");

    let args = up_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = lab(&args);
    assert!(first.status.success(), "the first lab up failed");
    let status = lab(&["lab", "status", "--format", "json"]);
    assert!(status.status.success(), "lab status says not ready");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["istio_version"], "1.12.7");
    assert_eq!(status["active_stage"], "focused");

    let second = lab(&args);
    assert!(second.status.success(), "the second lab up failed");
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("nothing to change"),
        "the second lab up changed something"
    );

    let reset = lab(&["lab", "reset", "stable"]);
    assert!(reset.status.success(), "lab reset failed");
    assert!(String::from_utf8_lossy(&reset.stdout).contains("virtualservice/image-classifier configured"));

    let down = lab(&["lab", "down"]);
    assert!(down.status.success(), "lab down failed");
}
