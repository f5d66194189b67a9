//! Every stage's assertions through real Envoy in front of two stand-in TF Serving servers: correct routing passes,
//! mis-weighted, leaking and header-ignoring routing fails, and `lab check` says so through the CLI.

use std::collections::BTreeMap;
use std::time::Duration;

use canary_lab_tests::assert_contains;
use canary_lab_tests::cli::Cli;
use canary_lab_tests::envoy::{Envoy, StageRouting};
use canary_lab_tests::tf_serving::{TfServing, TfServingConfig};
use canary_lab_tests::traffic::{
    BODY, Models, assert_verdict, check, failing_config, lab_check, show, test_config, tiny_image,
};
use lab::definition::plan::StagePlan;
use lab::definition::stages::LabDefinition;
use lab::report::Verdict;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stage_passes_through_envoy_routing_as_configured() {
    let models = Models::start().await;
    for stage in ["stable", "canary-deployed", "split-70-30", "focused"] {
        let backends = match stage {
            "stable" => models.stable_only(),
            _ => models.both(),
        };
        let envoy = Envoy::start(&StageRouting::of_stage(stage), &backends).await;
        let report = check(stage, &test_config(&envoy.url())).await;
        assert_eq!(report.verdict, Verdict::Pass, "{stage}: {}", show(&report));
        for assertion in &report.assertions {
            assert!(assertion.errors.is_empty(), "{stage}: {}", show(&report));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_70_30_report_has_weights_shares_and_latencies() {
    let models = Models::start().await;
    let envoy = Envoy::start(&StageRouting::of_stage("split-70-30"), &models.both()).await;
    let report = check("split-70-30", &test_config(&envoy.url())).await;
    let assertion = &report.assertions[0];
    assert_eq!(assertion.verdict, Verdict::Pass, "{}", show(&report));
    let weights: Vec<(&str, u32)> = assertion
        .configured_weights
        .iter()
        .map(|(version, weight)| (version.as_str(), *weight))
        .collect();
    assert_eq!(weights, [("resnet101", 30), ("resnet50", 70)]);
    let versions: Vec<&str> = assertion.versions.iter().map(|stats| stats.version.as_str()).collect();
    assert_eq!(versions, ["resnet101", "resnet50"]);
    let resnet101 = &assertion.versions[0];
    let [low, high] = resnet101.share_interval_95;
    assert!(low <= resnet101.share && resnet101.share <= high, "{}", show(&report));
    assert!(resnet101.latency_ms.p50 > 0.0 && resnet101.latency_ms.p50 <= resnet101.latency_ms.p99);
    let answered: u64 = assertion.versions.iter().map(|stats| stats.responses).sum();
    assert_eq!(answered, assertion.requests, "no errors, every response attributed");
    // The stand-ins saw the settle requests and the assertion's (requests in flight at the decision included):
    // status requests, as the stage's routes allow them, besides the sample's predictions.
    let served = models.resnet50.status_requests() + models.resnet101.status_requests();
    assert!(served >= assertion.requests, "{served} < {}", assertion.requests);
    assert_contains!(assertion.message, "consistent with 30% ± 15%");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_version_headers_responses_are_attributed_by_fingerprint() {
    let models = Models::start().await;
    let routing = StageRouting::of_stage("split-70-30").without_response_headers();
    let envoy = Envoy::start(&routing, &models.both()).await;
    let mut config = failing_config(&envoy.url());
    // Without references nothing can be attributed: every response is unattributed, so nothing passes.
    let report = check("split-70-30", &config).await;
    assert_ne!(report.verdict, Verdict::Pass, "{}", show(&report));
    assert_eq!(report.assertions[0].errors[0].kind, "unattributed", "{}", show(&report));

    // With each version's reference prediction for the payload (fetched from each version directly), it passes.
    let mut references = BTreeMap::new();
    for model in [&models.resnet50, &models.resnet101] {
        let url = format!("{}{}", model.url(), lab::traffic::checks::PREDICT_PATH);
        let body = canary_lab_tests::http_client()
            .post(url)
            .body(BODY)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let scores = lab::traffic::attribution::first_scores(&body).expect("predictions");
        references.insert(model.identity().to_string(), scores);
    }
    config.references = lab::traffic::attribution::References::new(references);
    let report = check("split-70-30", &config).await;
    assert_verdict(&report, Verdict::Pass);
    assert!(report.assertions[0].errors.is_empty(), "{}", show(&report));

    // An exact stage fails at once on a response the fingerprint cannot place: the references are swapped for
    // ones that match neither model.
    let envoy = Envoy::start(
        &StageRouting::of_stage("stable").without_response_headers(),
        &models.stable_only(),
    )
    .await;
    config.url = envoy.url();
    config.references = lab::traffic::attribution::References::new(BTreeMap::from([
        ("resnet50".to_string(), vec![0.001; 1000]),
        ("resnet101".to_string(), vec![0.001; 1000]),
    ]));
    let report = check("stable", &config).await;
    assert_verdict(&report, Verdict::Fail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_50_split_fails_the_70_30_stage() {
    let models = Models::start().await;
    let routing = StageRouting::of_stage("split-70-30").with_weights(&[("resnet50", 50), ("resnet101", 50)]);
    let envoy = Envoy::start(&routing, &models.both()).await;
    let report = check("split-70-30", &test_config(&envoy.url())).await;
    assert_verdict(&report, Verdict::Fail);
    let message = &report.assertions[0].message;
    assert_contains!(message, "not consistent with 30% ± 15%");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_3_percent_leak_fails_the_100_0_stage() {
    let models = Models::start().await;
    let routing = StageRouting::of_stage("canary-deployed").with_weights(&[("resnet50", 97), ("resnet101", 3)]);
    let envoy = Envoy::start(&routing, &models.both()).await;
    // The exact assertion is sized for a 5% leak at 10⁻⁶; a 3% leak slips through one run of 270 responses with
    // probability 0.97^270 ≈ 2.7·10⁻⁴. Two runs bring that to 7·10⁻⁸, so the test is not flaky; each run is a
    // complete, independent check (Envoy picks weighted clusters at random).
    let mut reports = Vec::new();
    for _ in 0..2 {
        let report = check("canary-deployed", &test_config(&envoy.url())).await;
        let caught = report.verdict == Verdict::Fail;
        reports.push(report);
        if caught {
            break;
        }
    }
    let report = reports.last().unwrap();
    assert_verdict(report, Verdict::Fail);
    let message = &report.assertions[0].message;
    assert_contains!(
        message,
        "came from resnet101, but every response must come from resnet50"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_the_gateway_ignores_fails_the_focused_stage() {
    let models = Models::start().await;
    // The header route is gone: requests with `user-group: canary` go to resnet50 like all others.
    let routing = StageRouting::of_stage("focused").ignoring_header_matches();
    let envoy = Envoy::start(&routing, &models.both()).await;
    let report = check("focused", &failing_config(&envoy.url())).await;
    assert_verdict(&report, Verdict::Fail);
    let with_header = &report.assertions[0];
    assert_eq!(with_header.verdict, Verdict::Fail);
    assert_eq!(
        with_header.versions[0].version, "resnet50",
        "the settle probes are reported"
    );
    assert!(
        with_header.message.starts_with("stage \"focused\": the routes did not take effect within 2s: with user-group: canary: every response should come from resnet101, but the gateway answered resnet50 ×"),
        "{}",
        with_header.message
    );
    assert_eq!(report.assertions[1].verdict, Verdict::Pass, "{}", show(&report));

    // The match conditions are gone: every request goes to resnet101, with the header or not.
    let routing = StageRouting::of_stage("focused").ignoring_matches();
    let envoy = Envoy::start(&routing, &models.both()).await;
    let report = check("focused", &failing_config(&envoy.url())).await;
    let verdicts: Vec<Verdict> = report.assertions.iter().map(|assertion| assertion.verdict).collect();
    assert_eq!(verdicts, [Verdict::Pass, Verdict::Fail], "{}", show(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_check_passes_70_30_and_fails_50_50_through_the_cli() {
    let models = Models::start().await;
    let good = Envoy::start(&StageRouting::of_stage("split-70-30"), &models.both()).await;
    let routing = StageRouting::of_stage("split-70-30").with_weights(&[("resnet50", 50), ("resnet101", 50)]);
    let bad = Envoy::start(&routing, &models.both()).await;
    let image = tiny_image();
    // The original lab's raw body (the models here have no `serving_bytes` signature).
    let output = lab_check(&["split-70-30", "--url", &good.url(), "--payload", "raw"], &image).await;
    assert_eq!(output.code, 0, "{output:#?}");
    assert!(output.stdout.contains("stage split-70-30: pass"), "{output:#?}");
    let args = [
        "split-70-30",
        "--url",
        &bad.url(),
        "--payload",
        "raw",
        "--format",
        "json",
    ];
    let output = lab_check(&args, &image).await;
    assert_eq!(output.code, 1, "{output:#?}");
    let report: lab::report::RunReport = serde_json::from_str(&output.stdout).expect("a RunReport");
    assert_eq!(report.verdict, Verdict::Fail);
    assert_eq!(report.stages[0].stage, "split-70-30");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_check_focused_passes_on_header_routing_and_fails_when_it_is_ignored() {
    // `--payload auto` (the default) reads the metadata through the gateway and sends the image bytes.
    let models = Models::start_with_bytes_signature().await;
    let good = Envoy::start(&StageRouting::of_stage("focused"), &models.both()).await;
    let ignored = StageRouting::of_stage("focused").ignoring_header_matches();
    let bad = Envoy::start(&ignored, &models.both()).await;
    let image = tiny_image();
    let output = lab_check(&["focused", "--url", &good.url()], &image).await;
    assert_eq!(output.code, 0, "{output:#?}");
    assert!(output.stdout.contains("stage focused: pass"), "{output:#?}");
    assert_eq!(
        output.stdout.matches("user-group: canary").count(),
        1,
        "the assertion's name says which header it sends, once:\n{}",
        output.stdout
    );
    let output = lab_check(&["focused", "--url", &bad.url(), "--settle-timeout", "2s"], &image).await;
    assert_eq!(output.code, 1, "{output:#?}");
    assert!(output.stdout.contains("the routes did not take effect"), "{output:#?}");
}

fn probe_config(url: &str, concurrency: usize, request_timeout: Duration) -> lab::traffic::probe::ProbeConfig {
    lab::traffic::probe::ProbeConfig {
        url: format!("{url}{}", lab::traffic::checks::PREDICT_PATH),
        kind: lab::report::RequestKind::Prediction,
        body: bytes::Bytes::from_static(BODY.as_bytes()),
        headers: BTreeMap::new(),
        concurrency,
        request_timeout,
        references: lab::traffic::attribution::References::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_stops_launching_once_told_and_keeps_its_deadline() {
    use lab::traffic::probe::{Flow, Probe, RunEnd};
    let model = TfServing::start("resnet50").await;
    let probe = Probe::new(probe_config(&model.url(), 8, Duration::from_secs(5))).unwrap();
    let far = tokio::time::Instant::now() + Duration::from_secs(60);
    let summary = probe.run(1000, far, |_| Flow::Stop).await;
    assert_eq!((summary.end, summary.observed), (RunEnd::Stopped, 1));
    // Observations reach the observer in launch order, and no request is launched more than a launch window
    // (4 × 8) past the first one not yet observed: here the first request, at which the observer stopped.
    assert!(
        (1..=1 + 4 * 8).contains(&summary.launched),
        "launched {} before the stop",
        summary.launched
    );
    // `run` returns once its workers have stopped, so nothing is launched after it and `launched` counts every
    // request the run sent. Once the server has closed every connection (the probe dropped them at the stop), it
    // has counted every request that reached it: none beyond those launched. (This once read the count right
    // after aborting the workers, without waiting for them: a worker still running on another thread could take a
    // ticket and send one more, "9 predictions served, 8 launched".)
    model.wait_until_every_connection_closed(Duration::from_secs(30)).await;
    assert!(
        model.predictions() <= summary.launched,
        "{} predictions served, {} launched",
        model.predictions(),
        summary.launched
    );

    let mut seen = 0;
    let summary = probe
        .run(50, far, |_| {
            seen += 1;
            Flow::Continue
        })
        .await;
    assert_eq!((summary.end, summary.launched, seen), (RunEnd::Exhausted, 50, 50));

    model.set_delay(Duration::from_secs(30));
    let soon = tokio::time::Instant::now() + Duration::from_millis(300);
    let summary = probe.run(100, soon, |_| Flow::Continue).await;
    assert_eq!((summary.end, summary.observed), (RunEnd::Deadline, 0));
    let observation = Probe::new(probe_config(&model.url(), 1, Duration::from_millis(200)))
        .unwrap()
        .send_one()
        .await;
    assert_eq!(observation.status, None);
    assert_eq!(
        observation.outcome,
        lab::traffic::probe::Outcome::Failed {
            version: None,
            kind: lab::traffic::probe::ErrorKind::Timeout
        }
    );
}

#[test]
fn lab_check_without_a_url_or_with_an_unknown_stage_is_a_usage_error() {
    let output = Cli::new(["lab", "check", "stable"]).run();
    assert_eq!(output.code, 2, "{output:#?}");
    assert!(
        output
            .stderr
            .contains("help: run `cargo xtask lab check stable --url http://127.0.0.1:8080`"),
        "{output:#?}"
    );
    let output = Cli::new(["lab", "check", "canary", "--url", "http://127.0.0.1:9"]).run();
    assert_eq!(output.code, 2, "{output:#?}");
    assert!(output.stderr.contains("no stage \"canary\""), "{output:#?}");
}

#[test]
fn the_envoy_config_follows_the_virtual_service_as_istiod_would() {
    let backends = BTreeMap::from([
        ("resnet50".to_string(), "127.0.0.1:1050".parse().unwrap()),
        ("resnet101".to_string(), "127.0.0.1:1101".parse().unwrap()),
    ]);
    let r50 = "outbound|8501|resnet50|image-classifier.tf-serving.svc.cluster.local";
    let r101 = "outbound|8501|resnet101|image-classifier.tf-serving.svc.cluster.local";
    let xds = |stage: &str| StageRouting::of_stage(stage).xds(&backends);
    let routes = |stage: &str| {
        let route_config = xds(stage).route_config;
        assert_eq!(route_config["name"], "http.8080");
        assert_eq!(route_config["virtual_hosts"][0]["name"], "*:80");
        assert_eq!(route_config["virtual_hosts"][0]["domains"], serde_json::json!(["*"]));
        route_config["virtual_hosts"][0]["routes"].clone()
    };
    let split = routes("split-70-30");
    let clusters = &split[0]["route"]["weighted_clusters"]["clusters"];
    assert_eq!(clusters[0]["name"], r50);
    assert_eq!(
        (clusters[0]["weight"].as_u64(), clusters[1]["weight"].as_u64()),
        (Some(70), Some(30))
    );
    assert_eq!(
        clusters[1]["response_headers_to_add"][0]["header"]["value"],
        "resnet101"
    );
    assert_eq!(
        split[0]["route"]["timeout"], "0s",
        "Istio sets no route timeout unless asked"
    );
    let retry = &split[0]["route"]["retry_policy"];
    assert_eq!(
        (retry["num_retries"].as_u64(), retry["retriable_status_codes"].clone()),
        (Some(2), serde_json::json!([503]))
    );
    assert_eq!(
        split[0]["metadata"]["filter_metadata"]["istio"]["config"],
        "/apis/networking.istio.io/v1alpha3/namespaces/tf-serving/virtual-service/image-classifier"
    );
    // Weight 0 is dropped, as istiod drops it, and the one cluster left is a plain cluster.
    let canary_deployed = routes("canary-deployed");
    assert_eq!(canary_deployed[0]["route"]["cluster"], r50);
    assert_eq!(
        canary_deployed[0]["response_headers_to_add"][0]["header"]["value"],
        "resnet50"
    );
    let focused = routes("focused");
    assert_eq!(
        focused[0]["match"],
        serde_json::json!({"prefix": "/", "case_sensitive": true, "headers": [{"name": "user-group", "exact_match": "canary"}]})
    );
    assert_eq!(focused[0]["route"]["cluster"], r101);
    assert_eq!(
        focused[1]["match"],
        serde_json::json!({"prefix": "/", "case_sensitive": true})
    );
    // Without a subset the whole Service: every pod behind it.
    let stable = xds("stable");
    assert_eq!(
        stable.clusters[0]["name"],
        "outbound|8501||image-classifier.tf-serving.svc.cluster.local"
    );
    let endpoints = &stable.load_assignments[0]["endpoints"][0]["lb_endpoints"];
    assert_eq!(endpoints.as_array().unwrap().len(), 2);
    // A subset whose pods are not there yet has a cluster without endpoints.
    let only_resnet50 = BTreeMap::from([("resnet50".to_string(), backends["resnet50"])]);
    let lagging = StageRouting::of_stage("split-70-30").xds(&only_resnet50);
    let resnet101 = lagging
        .clusters
        .iter()
        .position(|cluster| cluster["name"] == r101)
        .unwrap();
    assert_eq!(lagging.load_assignments[resnet101]["endpoints"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stage_picks_the_payload_from_the_metadata_as_lab_up_does() {
    // With a `serving_bytes` signature the body is the image file itself (small), as `lab up` would send it.
    let models = Models::start_with_bytes_signature().await;
    let envoy = Envoy::start(&StageRouting::of_stage("focused"), &models.both()).await;
    let lab = LabDefinition::load_default().unwrap();
    let plan = StagePlan::resolve(&lab, lab.stage("focused").unwrap(), None).unwrap();
    let report = lab::traffic::checks::run_stage(&plan, &envoy.url(), lab::traffic::checks::ProbeChoice::Auto)
        .await
        .unwrap();
    assert_verdict(&report, Verdict::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_auto_asks_the_metadata_again_while_the_gateway_answers_503() {
    // Right after a rollout the gateway has no endpoint for the new pod for a moment: `--payload auto`'s metadata
    // GET gets `503 no healthy upstream` a few times, then the metadata.
    let model = TfServing::start_with(TfServingConfig::new("resnet101").with_bytes_signature()).await;
    model.answer_no_healthy_upstream(3);
    let image = std::fs::read(tiny_image().path()).unwrap();
    let body = lab::traffic::checks::payload_body(
        &model.url(),
        lab::traffic::payload::PayloadChoice::Auto,
        &image,
        std::time::Duration::from_secs(10),
    )
    .await
    .expect("the metadata once the endpoint is there");
    assert_contains!(String::from_utf8_lossy(&body), "serving_bytes");
}

/// A share or exact assertion right after a stage's apply, simulated in tokio's paused clock (as in
/// `statistics::through_the_probe`): the gateway keeps the previous routes, or has no endpoint, until istiod's push
/// at a moment of virtual time, and the model answers in a millisecond, so a count of answers passes long before.
mod settling {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use lab::definition::stages::AssertionSpec;
    use lab::report::Verdict;
    use lab::traffic::checks::check_assertion;
    use lab::traffic::probe::{DEFAULT_CONCURRENCY, Probe, SimulatedExchange, SimulatedNetwork};
    use lab::traffic::stats::SplitMix64;
    use tokio::time::Instant;

    /// What the gateway does with a request.
    #[derive(Clone, Copy)]
    enum Routes {
        /// `503 no healthy upstream`: the route's endpoints are not pushed yet.
        NoHealthyUpstream,
        /// resnet101 gets this percentage, resnet50 the rest.
        Resnet101Percent(u32),
    }

    /// The gateway's routes before and after istiod's push, `push_after` into the run.
    struct Push {
        at: Instant,
        before: Routes,
        after: Routes,
        random: Mutex<SplitMix64>,
    }

    impl Push {
        fn after(push_after: Duration, before: Routes, after: Routes) -> Arc<Push> {
            Arc::new(Push {
                at: Instant::now() + push_after,
                before,
                after,
                random: Mutex::new(SplitMix64::new(7)),
            })
        }
    }

    impl SimulatedNetwork for Push {
        fn exchange(&self) -> SimulatedExchange {
            let routes = if Instant::now() >= self.at {
                self.after
            } else {
                self.before
            };
            match routes {
                Routes::NoHealthyUpstream => SimulatedExchange {
                    latency: Duration::from_micros(200),
                    status: 503,
                    version: None,
                },
                Routes::Resnet101Percent(percent) => {
                    let draw = self.random.lock().unwrap().next_f64();
                    let version = if draw * 100.0 < f64::from(percent) {
                        "resnet101"
                    } else {
                        "resnet50"
                    };
                    SimulatedExchange {
                        latency: Duration::from_millis(1),
                        status: 200,
                        version: Some(version.to_string()),
                    }
                }
            }
        }
    }

    fn share_30() -> AssertionSpec {
        AssertionSpec::Share {
            version: "resnet101".to_string(),
            share: 0.3,
            tolerance: 0.15,
            headers: BTreeMap::new(),
        }
    }

    async fn assert_with(spec: &AssertionSpec, network: Arc<Push>) -> lab::report::AssertionReport {
        let config = canary_lab_tests::traffic::simulated_config();
        let probe = Probe::simulated(DEFAULT_CONCURRENCY, config.request_timeout, network);
        check_assertion("a-stage", spec, &probe, &config, BTreeMap::new()).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_split_pushed_after_50_fast_answers_is_waited_for() {
        // From canary-deployed (100/0) to split-70-30: the push comes 1 s in, after a thousand answers from resnet50.
        let push = Push::after(
            Duration::from_secs(1),
            Routes::Resnet101Percent(0),
            Routes::Resnet101Percent(30),
        );
        let report = assert_with(&share_30(), push).await;
        assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
    }

    #[tokio::test(start_paused = true)]
    async fn no_healthy_upstream_while_endpoints_propagate_counts_against_nothing() {
        // For 6 s the gateway has no endpoint (60 of the settle's polls), then the split is live.
        let push = Push::after(
            Duration::from_secs(6),
            Routes::NoHealthyUpstream,
            Routes::Resnet101Percent(30),
        );
        let report = assert_with(&share_30(), push).await;
        assert_eq!(report.verdict, Verdict::Pass, "{report:#?}");
        assert!(report.errors.is_empty(), "{report:#?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_exact_stage_is_not_judged_on_the_previous_routes_however_fast_they_answer() {
        // The previous stage sent everything to resnet50, as this one should; the new routes (a broken apply) split
        // 50/50 and take effect 1 s in. 50 + 270 fast answers from resnet50 come long before that.
        let push = Push::after(
            Duration::from_secs(1),
            Routes::Resnet101Percent(0),
            Routes::Resnet101Percent(50),
        );
        let spec = AssertionSpec::Exact {
            version: "resnet50".to_string(),
            headers: BTreeMap::new(),
        };
        let report = assert_with(&spec, push).await;
        assert_eq!(report.verdict, Verdict::Fail, "{report:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_auto_asks_the_metadata_of_the_model_a_full_predict_url_names() {
    // Before, the metadata URL was the lab's own predict path trimmed off the URL: for the latest-version predict
    // URL that left `…:predict/v1/models/image_classifier/metadata`, a 404, read as "no metadata: send keras".
    let model = TfServing::start_with(TfServingConfig::new("resnet101").with_bytes_signature()).await;
    let image = std::fs::read(tiny_image().path()).unwrap();
    let url = format!("{}/v1/models/image_classifier:predict", model.url());
    let body = lab::traffic::checks::payload_body(
        &url,
        lab::traffic::payload::PayloadChoice::Auto,
        &image,
        std::time::Duration::from_secs(10),
    )
    .await
    .expect("the metadata of the model the URL names");
    assert_contains!(String::from_utf8_lossy(&body), "serving_bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_check_tests_what_is_there_and_fails_a_wrong_route_at_once() {
    // Measured before: `lab check stable` against a 70/30 split ran 60 s and 10,749 requests waiting for the routes
    // to "take effect", though `lab check` applies nothing.
    let models = Models::start().await;
    let split = Envoy::start(&StageRouting::of_stage("split-70-30"), &models.both()).await;
    let image = tiny_image();
    let output = lab_check(&["stable", "--url", &split.url(), "--format", "json"], &image).await;
    assert_eq!(output.code, 1, "{output:#?}");
    let report = output.json();
    let assertion = &report["stages"][0]["assertions"][0];
    assert_eq!(assertion["verdict"], "fail", "{assertion:#}");
    let requests = assertion["requests"].as_u64().unwrap();
    assert!(
        requests < 50,
        "a wrong answer fails it at once, not after {requests} requests: {assertion:#}"
    );
    assert!(
        assertion["message"].as_str().unwrap().contains("came from resnet101"),
        "{assertion:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_ingress_fails_after_a_few_timed_out_requests() {
    // A server that accepts connections and never answers: the check stops once its error budget is spent, each
    // request bounded by --request-timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            open.push(connection);
        }
    });
    let image = tiny_image();
    let output = lab_check(
        &[
            "stable",
            "--url",
            &url,
            "--payload",
            "keras",
            "--request-timeout",
            "300ms",
            "--format",
            "json",
        ],
        &image,
    )
    .await;
    held.abort();
    assert_eq!(output.code, 1, "{output:#?}");
    let assertion = &output.json()["stages"][0]["assertions"][0];
    let requests = assertion["requests"].as_u64().unwrap();
    assert!(
        (3..50).contains(&requests),
        "stopped after the budget of failures: {assertion:#}"
    );
    assert_eq!(assertion["errors"][0]["kind"], "timeout", "{assertion:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_each_assertion_shows_a_live_status_line_then_only_the_results() {
    // Before, `lab check` printed nothing at all until its verdict, whatever the verbosity.
    // The `bytes` payload of a tiny image keeps 300 requests cheap.
    let models = Models::start_with_bytes_signature().await;
    let envoy = Envoy::start(&StageRouting::of_stage("split-70-30"), &models.both()).await;
    let image = tiny_image();
    let cli = Cli::new([
        "lab",
        "check",
        "split-70-30",
        "--url",
        &envoy.url(),
        "--image",
        image.path().to_str().unwrap(),
    ]);
    let (code, terminal) = tokio::task::spawn_blocking(move || cli.run_in_terminal())
        .await
        .unwrap();
    assert_eq!(code, 0, "{terminal}");
    let shown = console::strip_ansi_codes(&terminal);
    assert!(
        shown.contains("share of resnet101 is 30% ± 15%: testing"),
        "no status line: {shown:?}"
    );
    assert!(
        shown.contains(" requests, resnet101 "),
        "no counts in the status line: {shown:?}"
    );
    assert!(shown.contains("stage split-70-30: pass"), "{shown:?}");

    // Off a terminal: nothing but the results.
    let plain = lab_check(&["split-70-30", "--url", &envoy.url()], &image).await;
    assert_eq!(plain.code, 0, "{plain:#?}");
    assert!(!plain.stderr.contains("testing"), "{}", plain.stderr);
}
