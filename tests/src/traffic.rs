//! What the traffic tests share: the two stand-in models as the lab's two Deployments, a small request body, the
//! check settings for tests that expect a pass or a failure, running one stage's checks, a tiny image for
//! `lab check`, and the verdict assertion that shows the whole report when it fails.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use lab::definition::stages::LabDefinition;
use lab::report::{StageReport, Verdict};
use lab::traffic::checks::{CheckConfig, check_stage};

use crate::cli::{Cli, CliOutput};
use crate::tf_serving::{TfServing, TfServingConfig};

/// Two stand-ins, as the lab's two Deployments.
pub struct Models {
    /// The stable model.
    pub resnet50: TfServing,
    /// The canary.
    pub resnet101: TfServing,
}

impl Models {
    /// Both models with only the `serving_default` signature.
    pub async fn start() -> Models {
        Models {
            resnet50: TfServing::start("resnet50").await,
            resnet101: TfServing::start("resnet101").await,
        }
    }

    /// Models that also offer the `serving_bytes` signature (so `--payload auto` picks `bytes`).
    pub async fn start_with_bytes_signature() -> Models {
        let start = |identity: &str| TfServing::start_with(TfServingConfig::new(identity).with_bytes_signature());
        Models {
            resnet50: start("resnet50").await,
            resnet101: start("resnet101").await,
        }
    }

    /// Pod label `version` → address, for the stages where both are deployed.
    pub fn both(&self) -> BTreeMap<String, SocketAddr> {
        BTreeMap::from([
            ("resnet50".to_string(), self.resnet50.addr()),
            ("resnet101".to_string(), self.resnet101.addr()),
        ])
    }

    /// Only ResNet50, as in the `stable` stage.
    pub fn stable_only(&self) -> BTreeMap<String, SocketAddr> {
        BTreeMap::from([("resnet50".to_string(), self.resnet50.addr())])
    }
}

/// A small valid body: the assertions do not depend on the payload's size.
pub const BODY: &str = r#"{"instances": [[[[12, 34, 56], [78, 90, 12]]]]}"#;

/// Check settings for tests that expect a pass: generous timeouts, so a busy machine cannot fail them.
pub fn test_config(url: &str) -> CheckConfig {
    let mut config = CheckConfig::new(url, bytes::Bytes::from_static(BODY.as_bytes()));
    config.request_timeout = Duration::from_secs(10);
    config.settle_timeout = Some(Duration::from_secs(20));
    config.assertion_timeout = Duration::from_secs(300);
    config
}

/// Check settings for tests that expect a failure: a short settle timeout, so the failure comes fast.
pub fn failing_config(url: &str) -> CheckConfig {
    let mut config = test_config(url);
    config.settle_timeout = Some(Duration::from_secs(2));
    config
}

/// Check settings for a probe on a simulated network (`lab::traffic::probe::Probe::simulated`), which sends
/// nothing: no URL, no body, the lab's defaults otherwise.
pub fn simulated_config() -> CheckConfig {
    CheckConfig::new("http://simulated", bytes::Bytes::new())
}

/// Runs the checks of the lab's stage `stage` with `config`.
pub async fn check(stage: &str, config: &CheckConfig) -> StageReport {
    let lab = LabDefinition::load_default().unwrap();
    let plan = lab::definition::plan::StagePlan::resolve(&lab, lab.stage(stage).unwrap(), None).unwrap();
    check_stage(&plan, config).await.unwrap()
}

/// The report, readable in a failure message.
pub fn show(report: &StageReport) -> String {
    serde_json::to_string_pretty(report).unwrap()
}

/// Asserts the stage's verdict; the failure message is the whole report.
#[track_caller]
pub fn assert_verdict(report: &StageReport, verdict: Verdict) {
    assert_eq!(report.verdict, verdict, "{}", show(report));
}

/// A 4×3 PNG, so every payload stays small.
pub fn tiny_image() -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".png").tempfile().unwrap();
    let image = image::RgbImage::from_fn(4, 3, |x, y| image::Rgb([x as u8 * 60, y as u8 * 80, 200]));
    image.save(file.path()).unwrap();
    file
}

/// `lab check ARGS --image IMAGE`, run off the async runtime so the stand-ins keep serving.
pub async fn lab_check(args: &[&str], image: &tempfile::NamedTempFile) -> CliOutput {
    let mut all = vec!["lab", "check"];
    all.extend_from_slice(args);
    let image = image.path().to_str().unwrap().to_string();
    all.extend(["--image", &image]);
    Cli::new(&all).run_async().await
}
