//! `lab tour` through the CLI as a process, on a lab brought up to `stable` against the fake Kubernetes API and the
//! gateway that follows it (real Envoy): off a terminal it walks every stage as `--auto 0`, showing each stage's
//! explanation, its change as a diff of the objects and the learner's commands, then applies and asserts it; on a
//! terminal it waits for a key, and while a stage is asserted it draws the live traffic view of `lab watch` below
//! its text (the last frame of each assertion stays above the verdict; Ctrl-C clears a view still running and
//! stops the tour). `lab reset --for-class` clears its progress.

use std::time::Duration;

use canary_lab_tests::cli::Cli;
use canary_lab_tests::workshop::Workshop;
use lab::definition::stages::LabDefinition;

/// How long each answer of the TF Serving stand-ins takes in the view tests: the assertions' hundreds of requests
/// (eight at a time) then take seconds, over which the view is redrawn four times a second.
const ANSWER_DELAY: Duration = Duration::from_millis(80);

/// The share of `version` in the live view's bar `resnet101 29.5% · 59 answers · p50 …`, if the screen shows one
/// (the status line of `lab stage` shows `resnet101 29.5%` without the answers).
fn bar_share(screen: &str, version: &str) -> Option<f64> {
    let marker = format!("{version} ");
    screen.lines().find_map(|line| {
        let rest = &line[line.find(&marker)? + marker.len()..];
        let (percent, after) = rest.split_once("% · ")?;
        after.split_whitespace().nth(1)?.starts_with("answer").then_some(())?;
        percent.trim().parse::<f64>().ok().map(|value| value / 100.0)
    })
}

/// The answers the live view's window holds (`… · last 57 of 200 responses · …`), 0 when the screen shows none.
fn answers_in_window(screen: &str) -> u64 {
    screen
        .split(" · last ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|count| count.parse().ok())
        .unwrap_or(0)
}

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

/// `lab tour --auto 0 --from split-70-30` on a pseudo-terminal, on a lab at `canary-deployed` whose models answer
/// [`ANSWER_DELAY`] late (so a person, and the test, can see the view while the split is asserted).
async fn slow_split_tour_on_a_terminal() -> (Workshop, canary_lab_tests::terminal::TerminalSession) {
    let lab = Workshop::up_to("canary-deployed").await;
    lab.models.resnet50.set_delay(ANSWER_DELAY);
    lab.models.resnet101.set_delay(ANSWER_DELAY);
    let session = lab
        .cli(&["lab", "tour", "--auto", "0", "--from", "split-70-30"])
        .spawn_in_terminal();
    (lab, session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_the_assertions_are_shown_as_the_live_traffic_view() {
    let (_lab, session) = slow_split_tour_on_a_terminal().await;
    let verdict = "✓ split-70-30: pass — ";
    // While the split's share assertion runs: one bar per version with its share, under the stage and assertion.
    let screen = tokio::task::block_in_place(|| {
        session.wait_for("the live view of the split", Duration::from_secs(120), |screen| {
            let view = screen.contains("tour split-70-30 · \"share of resnet101 is 30% ± 15%\" · testing")
                && answers_in_window(screen) >= 40
                && bar_share(screen, "resnet50").is_some()
                && bar_share(screen, "resnet101").is_some();
            // Without a view, the walk's end (which stays on the screen) ends the wait.
            view || screen.contains("tour complete")
        })
    });
    assert!(
        !screen.contains("tour complete") && !screen.contains(verdict),
        "no live view was drawn while the split was asserted:\n{screen}"
    );
    for (version, weight) in [("resnet50", 0.70), ("resnet101", 0.30)] {
        let share = bar_share(&screen, version).unwrap();
        // With n ≥ 40 answers in the window the share's standard deviation is at most 7.2 points; 25 points is 3.4
        // of them (the share assertion itself tests the split).
        assert!(
            (share - weight).abs() < 0.25,
            "{version} at {share} (weight {weight}):\n{screen}"
        );
    }
    assert!(screen.contains("Ctrl-C stops the tour"), "{screen}");
    assert!(screen.contains("status requests"), "{screen}");

    // The walk goes on to the last stage; its last assertion's final frame stays, above the verdict.
    let screen = tokio::task::block_in_place(|| {
        session.wait_for("the end of the tour", Duration::from_secs(180), |screen| {
            screen.contains("tour complete")
        })
    });
    let frame = screen
        .find("tour focused · \"every response from resnet50\" · done")
        .unwrap_or_else(|| panic!("no final frame:\n{screen}"));
    let verdict = screen
        .find("✓ focused: pass — ")
        .unwrap_or_else(|| panic!("no verdict:\n{screen}"));
    assert!(frame < verdict, "{screen}");
    assert_eq!(bar_share(&screen[frame..verdict], "resnet50"), Some(1.0), "{screen}");
    assert!(screen[frame..verdict].contains(" requests in "), "{screen}");
    assert!(
        !screen.contains("Ctrl-C stops the tour"),
        "no live frame is left:\n{screen}"
    );
    let (code, main_screen) = tokio::task::block_in_place(|| session.wait(Duration::from_secs(20)));
    assert_eq!(code, 0);
    assert!(main_screen, "the view is inline, never the alternate screen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_a_stage_is_asserted_clears_the_view_and_stops_the_tour() {
    let (_lab, session) = slow_split_tour_on_a_terminal().await;
    tokio::task::block_in_place(|| {
        session.wait_for("the live view", Duration::from_secs(120), |screen| {
            screen.contains("tour split-70-30 · \"") && screen.contains("Ctrl-C stops the tour")
        })
    });
    session.interrupt();
    let screen = tokio::task::block_in_place(|| {
        session.wait_for("the interruption", Duration::from_secs(20), |screen| {
            screen.contains("interrupted: the tour stopped part-way")
        })
    });
    assert!(
        !screen.contains("tour split-70-30 · \""),
        "the view is cleared:\n{screen}"
    );
    assert!(screen.contains("help: `cargo xtask lab tour` resumes"), "{screen}");
    assert!(session.cursor_shown(), "the cursor is shown:\n{screen}");
    let (code, _) = tokio::task::block_in_place(|| session.wait(Duration::from_secs(20)));
    assert_eq!(code, 1, "{screen}");
}
