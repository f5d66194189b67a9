//! Faults behind the gateway: 503s at a rate, delays beyond the request timeout, connection resets, a version down,
//! Envoy's own fault injection. Each gives the verdict a real Istio 1.12 gateway gives — its default retry policy
//! (2 retries on connect-failure, refused-stream, unavailable, cancelled and an upstream 503) answers most passing
//! 503s — with a message naming the version and the kind of error.

use std::time::Duration;

use canary_lab_tests::assert_contains;
use canary_lab_tests::envoy::{Envoy, StageRouting};
use lab::definition::routing::{FaultAbort, FaultDelay, HttpFault, Percent};
use lab::report::{StageReport, Verdict};
use lab::traffic::checks::ProbeChoice;

use canary_lab_tests::traffic::{Models, assert_verdict, check, failing_config, show, test_config};

fn failure_message(report: &StageReport) -> String {
    assert_verdict(report, Verdict::Fail);
    report
        .assertions
        .iter()
        .filter(|assertion| assertion.verdict == Verdict::Fail)
        .map(|assertion| assertion.message.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Envoy's count of retries to ResNet101's cluster.
async fn resnet101_retries(envoy: &Envoy) -> u64 {
    envoy
        .counter("cluster.outbound|8501|resnet101|image-classifier.tf-serving.svc.cluster.local.upstream_rq_retry")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_503s_at_a_rate_are_retried_away_by_the_gateway() {
    let models = Models::start().await;
    // Every 33rd ResNet101 prediction answers 503; the gateway retries it, and the retry (a later request to the
    // stand-in) is answered: the stage passes as it would behind a real gateway.
    models.resnet101.set_error_rate(0.03);
    let envoy = Envoy::start(&StageRouting::of_stage("split-70-30"), &models.both()).await;
    // The stand-in injects its 503s into predictions (model-status requests do no inference): predict.
    let mut config = test_config(&envoy.url());
    config.probe = ProbeChoice::Predict;
    let report = check("split-70-30", &config).await;
    assert_verdict(&report, Verdict::Pass);
    let failed: u64 = report.assertions[0].errors.iter().map(|error| error.count).sum();
    let requests = report.assertions[0].requests;
    assert!(failed as f64 <= 0.01 * requests as f64, "{}", show(&report));
    let predictions = models.resnet101.predictions();
    assert!(
        predictions >= 33,
        "ResNet101 served {predictions} predictions: {}",
        show(&report)
    );
    assert!(resnet101_retries(&envoy).await >= 1, "the gateway retried the 503s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_answering_only_503s_fails_naming_it_after_the_gateways_retries() {
    let models = Models::start().await;
    models.resnet101.set_error_rate(1.0);
    let envoy = Envoy::start(&StageRouting::of_stage("split-70-30"), &models.both()).await;
    let mut config = failing_config(&envoy.url());
    config.probe = ProbeChoice::Predict;
    let report = check("split-70-30", &config).await;
    let message = failure_message(&report);
    assert_contains!(message, "more than the maximum 1%): resnet101: http_503 ×");
    let errors = &report.assertions[0].errors;
    assert_eq!(errors.len(), 1, "{}", show(&report));
    assert_eq!(
        (errors[0].version.as_deref(), errors[0].kind.as_str()),
        (Some("resnet101"), "http_503")
    );
    // Each 503 the probe saw was the third answer: two retries before it.
    let retries = resnet101_retries(&envoy).await;
    assert!(
        retries >= 2 * errors[0].count,
        "{retries} retries for {} 503s",
        errors[0].count
    );
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
    assert_verdict(&report, Verdict::Pass);
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
