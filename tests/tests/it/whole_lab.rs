//! The whole lab as a workshop runs it, through the CLI as a process, against the stricter stand-ins: a Kubernetes
//! 1.24 API without Istio (its CRDs appear only when the fake `istioctl install` runs, and are Established a moment
//! later), and a gateway whose config follows the API late, as istiod pushes it (`canary_lab_tests::istiod`: routes
//! after a debounce, a new pod's endpoint after its readiness), with two TF Serving stand-ins behind it.
//!
//! One test walks what the "done when" names: a first `lab up` that installs Istio and walks and asserts
//! every stage; a second `lab up` that sends no write to the API; `lab reset`; `lab stage split-70-30`; `lab status`;
//! a VirtualService changed behind the lab's back, caught by `lab check`; `lab down` until the namespace is gone.

use canary_lab_tests::cli::CliOutput;
use canary_lab_tests::up_args::UpArgs;
use canary_lab_tests::workshop::Workshop;
use serde_json::Value;

/// `lab up` asserting every stage, with JSON output and the fakes' timeouts.
async fn up(workshop: &Workshop) -> CliOutput {
    let args = UpArgs::new(&workshop.tools, &workshop.gateway.url())
        .json()
        .rollout_timeout(60)
        .istio_timeout(60)
        .args();
    workshop.run(&args.iter().map(String::as_str).collect::<Vec<_>>()).await
}

/// Each asserted stage's name and verdict, in order.
fn verdicts(up_report: &Value) -> Vec<(String, String)> {
    up_report["checks"]
        .as_array()
        .expect("an up report has checks")
        .iter()
        .map(|check| {
            (
                check["stage"].as_str().unwrap_or_default().to_string(),
                check["verdict"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workshop_brings_the_lab_up_from_nothing_walks_it_and_tears_it_down() {
    let workshop = Workshop::start().await;
    assert!(
        workshop.kube.object("namespaces", "", "istio-system").is_none(),
        "the cluster starts without Istio"
    );

    // First `lab up`: installs Istio, brings up the lab and asserts every stage.
    let first = up(&workshop).await;
    assert_eq!(first.code, 0, "first lab up:\n{}\n{}", first.stdout, first.stderr);
    let report = first.json();
    let all_pass: Vec<(String, String)> = ["stable", "canary-deployed", "split-70-30", "focused"]
        .iter()
        .map(|stage| (stage.to_string(), "pass".to_string()))
        .collect();
    assert_eq!(verdicts(&report), all_pass, "{}", first.stderr);
    assert_eq!(report["active_stage"], "focused");

    // Second `lab up`: nothing to write.
    workshop.kube.clear_requests();
    let second = up(&workshop).await;
    assert_eq!(second.code, 0, "second lab up:\n{}\n{}", second.stdout, second.stderr);
    let writes = workshop.kube.writes();
    assert!(writes.is_empty(), "the second lab up wrote: {writes:#?}");
    assert_eq!(second.json()["active_stage"], "focused");

    // `lab reset`: back to stable, the canary gone.
    let reset = workshop.run(&["lab", "reset", "--format", "json"]).await;
    assert_eq!(reset.code, 0, "lab reset:\n{}\n{}", reset.stdout, reset.stderr);
    assert_eq!(
        workshop.kube.names("deployments", "tf-serving"),
        ["image-classifier-resnet50"]
    );

    // `lab stage split-70-30`: applied and asserted through the gateway once it serves the split.
    let stage = workshop.run(&["lab", "stage", "split-70-30", "--format", "json"]).await;
    assert_eq!(stage.code, 0, "lab stage:\n{}\n{}", stage.stdout, stage.stderr);
    assert!(stage.stdout.contains("\"pass\""), "{}", stage.stdout);

    let status = workshop.run(&["lab", "status", "--format", "json"]).await;
    assert_eq!(status.code, 0, "lab status:\n{}\n{}", status.stdout, status.stderr);
    let status = status.json();
    assert_eq!(status["active_stage"], "split-70-30");
    assert_eq!(status["ready"], true);

    // Someone edits the VirtualService behind the lab's back (50/50); once the gateway has it, `lab check` fails.
    let mut virtual_service = workshop
        .kube
        .object("virtualservices", "tf-serving", "image-classifier")
        .expect("the VirtualService");
    let pushes = workshop.gateway.pushes();
    let routes = virtual_service["spec"]["http"][0]["route"]
        .as_array_mut()
        .expect("routes");
    for route in routes {
        route["weight"] = serde_json::json!(50);
    }
    virtual_service["metadata"]["managedFields"] = Value::Null;
    workshop.kube.put("virtualservices", virtual_service);
    workshop.until_pushed_after(pushes).await;
    let url = workshop.gateway.url();
    let check = workshop
        .run(&["lab", "check", "split-70-30", "--url", &url, "--format", "json"])
        .await;
    assert_eq!(check.code, 1, "lab check on 50/50:\n{}\n{}", check.stdout, check.stderr);
    assert!(check.stdout.contains("\"fail\""), "{}", check.stdout);

    // `lab down`: the namespace is gone when it returns.
    let down = workshop.run(&["lab", "down"]).await;
    assert_eq!(down.code, 0, "lab down:\n{}\n{}", down.stdout, down.stderr);
    assert!(workshop.kube.object("namespaces", "", "tf-serving").is_none());
    assert!(workshop.kube.names("pods", "tf-serving").is_empty());
}

/// What a terminal shows at the end of `lab up` that walked and asserted every stage: its step lines, the live
/// status line of each assertion (drawn and cleared by indicatif while it ran), and the results.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_lab_up_leaves_whole_step_lines_and_no_status_line() {
    let workshop = Workshop::start().await;
    let args = UpArgs::new(&workshop.tools, &workshop.gateway.url())
        .rollout_timeout(60)
        .istio_timeout(60)
        .args();
    let cli = workshop.cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, received) = tokio::task::spawn_blocking(move || cli.run_in_terminal())
        .await
        .unwrap();
    // A screen tall enough for the whole run, as the terminal's scrollback holds it.
    let mut screen = vt100::Parser::new(1000.try_into().unwrap(), 120.try_into().unwrap(), 0);
    screen.process(received.as_bytes());
    let shown = screen.screen().contents();
    assert_eq!(code, 0, "{shown}");
    assert!(
        received.contains("waiting for the routes to take effect") || received.contains(": testing"),
        "the assertions drew their status line on the terminal: {received:?}"
    );
    let lines: Vec<&str> = shown
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
        .collect();
    let started: Vec<&str> = lines.iter().filter_map(|line| line.strip_prefix("→ ")).collect();
    assert!(started.len() >= 5, "each step says it starts: {shown}");
    for step in &started {
        let ended: Vec<&&str> = lines
            .iter()
            .filter(|line| line.starts_with(&format!("  {step} ")) && line.contains("s): "))
            .collect();
        assert_eq!(
            ended.len(),
            1,
            "step {step} ends on one whole line of its own:\n{shown}"
        );
    }
    for line in &lines {
        let spinner = line.chars().any(|c| ('\u{2800}'..='\u{28ff}').contains(&c));
        assert!(
            !spinner && !line.contains("waiting for the routes to take effect") && !line.contains(": testing"),
            "a status line was left on the screen: {line:?}\n{shown}"
        );
        assert!(
            line.matches("s): ").count() <= 1,
            "two step lines share a line: {line:?}\n{shown}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("the lab is up at stage \"focused\"")),
        "{shown}"
    );
}
