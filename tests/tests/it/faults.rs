//! Faults behind the gateway: 503s at a rate, delays beyond the request timeout, connection resets, a version down,
//! Envoy's own fault injection. Each gives the right verdict, with a message naming the version and the kind of error.

use std::time::Duration;

use canary_lab_tests::assert_contains;
use canary_lab_tests::envoy::{Envoy, StageRouting};
use lab::report::{StageReport, Verdict};
use lab::routing::{FaultAbort, FaultDelay, HttpFault, Percent};

use crate::traffic::{Models, check, failing_config, show, test_config};

fn failure_message(report: &StageReport) -> String {
    assert_eq!(report.verdict, Verdict::Fail, "{}", show(report));
    report
        .assertions
        .iter()
        .filter(|assertion| assertion.verdict == Verdict::Fail)
        .map(|assertion| assertion.message.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_503s_at_a_rate_fail_naming_the_version() {
    let models = Models::start().await;
    models.resnet101.set_error_rate(0.2);
    let envoy = Envoy::start(&StageRouting::of_stage("split-70-30"), &models.both()).await;
    let report = check("split-70-30", &failing_config(&envoy.url())).await;
    let message = failure_message(&report);
    assert_contains!(message, "more than the maximum 1%): resnet101: http_503 ×");
    let errors = &report.assertions[0].errors;
    assert_eq!(errors.len(), 1, "{}", show(&report));
    assert_eq!(
        (errors[0].version.as_deref(), errors[0].kind.as_str()),
        (Some("resnet101"), "http_503")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_within_the_maximum_still_pass() {
    let models = Models::start().await;
    // Every 50th ResNet101 prediction fails: about 0.6% of all requests (30% of 2%), under the 1% maximum.
    models.resnet101.set_error_rate(0.02);
    let envoy = Envoy::start(&StageRouting::of_stage("split-70-30"), &models.both()).await;
    let report = check("split-70-30", &test_config(&envoy.url())).await;
    assert_eq!(report.verdict, Verdict::Pass, "{}", show(&report));
    let failed: u64 = report.assertions[0].errors.iter().map(|error| error.count).sum();
    let requests = report.assertions[0].requests;
    assert!(failed as f64 <= 0.01 * requests as f64, "{}", show(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_beyond_the_request_timeout_fails_as_timeouts() {
    let models = Models::start().await;
    models.resnet101.set_delay(Duration::from_secs(3));
    let envoy = Envoy::start(&StageRouting::of_stage("split-70-30"), &models.both()).await;
    let mut config = failing_config(&envoy.url());
    config.request_timeout = Duration::from_millis(300);
    let report = check("split-70-30", &config).await;
    let message = failure_message(&report);
    assert_contains!(message, "version unknown: timeout ×");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_resets_and_a_version_down_fail_naming_the_version() {
    let models = Models::start().await;
    models.resnet101.set_reset(true);
    let envoy = Envoy::start(&StageRouting::of_stage("split-70-30"), &models.both()).await;
    let message = failure_message(&check("split-70-30", &failing_config(&envoy.url())).await);
    // Envoy answers a reset upstream with a 503 of its own, still carrying the destination's version header.
    assert_contains!(message, "resnet101: http_503 ×");

    models.resnet101.shut_down();
    let message = failure_message(&check("split-70-30", &failing_config(&envoy.url())).await);
    assert_contains!(message, "resnet101: http_503 ×");
    // The canary is down, but the stage that sends it nothing still passes.
    let envoy = Envoy::start(&StageRouting::of_stage("canary-deployed"), &models.both()).await;
    let report = check("canary-deployed", &test_config(&envoy.url())).await;
    assert_eq!(report.verdict, Verdict::Pass, "{}", show(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_fault_injection_fails_the_stage() {
    let models = Models::start().await;
    let abort = HttpFault {
        delay: None,
        abort: Some(FaultAbort {
            http_status: 503,
            percentage: Some(Percent { value: 50.0 }),
        }),
    };
    let routing = StageRouting::of_stage("canary-deployed").with_fault(abort);
    let envoy = Envoy::start(&routing, &models.both()).await;
    let message = failure_message(&check("canary-deployed", &failing_config(&envoy.url())).await);
    assert_contains!(message, "http_503");

    let delay = HttpFault {
        delay: Some(FaultDelay {
            fixed_delay: "5s".to_string(),
            percentage: None,
        }),
        abort: None,
    };
    let routing = StageRouting::of_stage("stable").with_fault(delay);
    let envoy = Envoy::start(&routing, &models.stable_only()).await;
    let mut config = failing_config(&envoy.url());
    config.request_timeout = Duration::from_millis(300);
    let message = failure_message(&check("stable", &config).await);
    assert_contains!(
        message,
        "every response should come from resnet50, but the gateway answered timeout ×"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_fails_as_connection_errors() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = failing_config(&url);
    let message = failure_message(&check("split-70-30", &config).await);
    assert_contains!(message, "version unknown: connection ×");
}
