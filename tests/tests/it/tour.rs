//! `lab tour` through the CLI as a process, on a lab brought up to `stable` against the fake Kubernetes API and the
//! gateway that follows it (real Envoy): off a terminal it walks every stage as `--auto 0`, showing each stage's
//! explanation, its change as a diff of the objects and the learner's commands, then applies and asserts it; on a
//! terminal it waits for a key. `lab reset --for-class` clears its progress.

use std::time::Duration;

use canary_lab_tests::cli::Cli;
use canary_lab_tests::workshop::Workshop;
use lab::definition::stages::LabDefinition;

/// The lines of `stdout` between the heading of `stage` and the next stage's heading.
fn section<'a>(stdout: &'a str, stage: &str) -> &'a str {
    let start = stdout
        .find(&format!(": {stage} — "))
        .unwrap_or_else(|| panic!("no heading for {stage} in:\n{stdout}"));
    let rest = &stdout[start..];
    let end = rest[1..].find("\nStage ").map(|at| at + 1).unwrap_or(rest.len());
    &rest[..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_a_terminal_the_tour_walks_and_asserts_every_stage() {
    let lab = Workshop::up_to("stable").await;
    let tour = lab.run(&["lab", "tour"]).await;
    assert_eq!(tour.code, 0, "{}\n{}", tour.stdout, tour.stderr);
    let definition = LabDefinition::load_default().unwrap();
    for (index, stage) in definition.stages.iter().enumerate() {
        let text = section(&tour.stdout, &stage.name);
        assert!(
            text.starts_with(&format!(": {} — ", stage.name))
                && tour.stdout.contains(&format!("Stage {}/4: {}", index + 1, stage.name)),
            "{text}"
        );
        assert!(text.contains(&format!("✓ {}: pass — ", stage.name)), "{text}");
        // The commands are the stage's manifests, applied in its order.
        let applies: Vec<&str> = text
            .lines()
            .filter_map(|line| line.trim().strip_prefix("$ kubectl apply -f "))
            .collect();
        assert_eq!(applies.len(), stage.manifests.len(), "{text}");
        for (apply, file) in applies.iter().zip(&stage.manifests) {
            assert!(apply.ends_with(&format!("/{file}")), "{apply} for {file}");
        }
    }
    // The split's change is its VirtualService's weights, and nothing else.
    let split = section(&tour.stdout, "split-70-30");
    let changes = &split[split.find("What changes").unwrap()..split.find("By hand").unwrap()];
    let objects: Vec<&str> = changes
        .lines()
        .filter(|line| line.starts_with("~ ") || line.ends_with(" (new)") || line.ends_with(" (removed)"))
        .collect();
    assert_eq!(objects, ["~ VirtualService/image-classifier"], "{changes}");
    let changed: Vec<String> = changes
        .lines()
        .filter(|line| {
            line.starts_with("+ ") || line.starts_with("- ") || line.starts_with("+  ") || line.starts_with("-  ")
        })
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        changed,
        ["- weight: 100", "+ weight: 70", "- weight: 0", "+ weight: 30"],
        "{changes}"
    );
    // The explanation is there, in plain text.
    assert!(split.contains("What changes"), "{split}");
    assert!(!tour.stdout.contains('\u{1b}'), "no colour off a terminal");
    assert!(tour.stdout.contains("tour complete"), "{}", tour.stdout);

    // The next class: progress cleared, and said so.
    let reset = lab.run(&["lab", "reset", "--for-class"]).await;
    assert_eq!(reset.code, 0, "{}\n{}", reset.stdout, reset.stderr);
    assert!(
        reset
            .stderr
            .contains("tour progress cleared (it had reached \"focused\")"),
        "{}",
        reset.stderr
    );
    assert!(
        lab.kube
            .object("virtualservices", "tf-serving", "image-classifier")
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_the_tour_waits_for_a_key_and_q_stops_it() {
    let lab = Workshop::up_to("stable").await;
    let mut session = lab.cli(&["lab", "tour", "--from", "focused"]).spawn_in_terminal();
    let screen = tokio::task::block_in_place(|| {
        session.wait_for("the pause", Duration::from_secs(60), |screen| {
            screen.contains("Enter: apply \"focused\" · s: skip · q: quit")
        })
    });
    assert!(screen.contains("kubectl apply -f"), "{screen}");
    lab.kube.clear_requests();
    session.type_keys(b"q");
    let (code, _) = tokio::task::block_in_place(|| session.wait(Duration::from_secs(20)));
    assert_eq!(code, 0);
    assert!(
        lab.kube.writes().is_empty(),
        "q applies nothing: {:#?}",
        lab.kube.writes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tour_has_no_json_output() {
    let output = Cli::new(["lab", "tour", "--format", "json"]).run();
    assert_eq!(output.code, 2, "{}\n{}", output.stdout, output.stderr);
    assert!(output.stderr.contains("has no JSON output"), "{}", output.stderr);
}
