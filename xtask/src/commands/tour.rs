//! `lab tour`: walk the stages in order ([`lab::lifecycle::tour`]): for each, its title and explanation, the change
//! from the stage before as a diff of the objects, the commands a learner would type, a pause (Enter applies, `s`
//! skips, `q` quits; `--auto DURATION` for an unattended demo), the apply and the assertions (as `lab stage`), with
//! the live traffic view of `lab watch` below the text while they run on a terminal ([`super::tour_view`]), and the
//! verdict in one line. Off a terminal it runs as `--auto 0`, in plain text. Ctrl-C stops it at any point (a pause
//! reads it as a key), clearing a view still drawn.

use std::io::IsTerminal;
use std::io::Stdout;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lab::lifecycle::apply::AppliedStage;
use lab::lifecycle::stage::{StageProgress, StageTimeouts, run_stage};
use lab::lifecycle::tour::{TourStep, record_tour_stage, tour_steps};
use lab::lifecycle::up::Assertions;
use lab::output::{paint, use_colour};
use lab::report::{RunReport, Verdict};
use lab::teaching::tour::{render_diff, render_markdown};
use lab::traffic::checks::progress::{ProgressSink, TerminalProgress};
use lab::{CommandStatus, Format, LabError, Settings};
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::terminal;

use super::tour_view::TourView;
use crate::CommandResult;
use crate::flags::TourFlags;

/// What the learner chose at a pause.
enum Choice {
    Apply,
    Skip,
    Quit,
}

/// How the tour looks: its width and colours, and the live traffic view on a terminal.
struct Look {
    width: usize,
    colour: bool,
    view: Option<Arc<TourView<CrosstermBackend<Stdout>>>>,
}

/// Walks the stages from `--from`, or from where the last tour stopped; Ctrl-C stops it.
pub(crate) async fn run(settings: &Settings, flags: &TourFlags) -> CommandResult {
    if settings.format == Format::Json {
        anyhow::bail!(
            "`lab tour` is a walk for people and has no JSON output\nhelp: drop `--format json`; `lab stage NAME --format json` applies and asserts one stage"
        );
    }
    let interactive = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let auto = match (flags.auto, interactive) {
        (Some(pause), _) => Some(*pause),
        (None, true) => None,
        (None, false) => Some(Duration::ZERO),
    };
    let colour = use_colour();
    let width = terminal::size()
        .map(|(columns, _)| columns as usize)
        .unwrap_or(100)
        .min(110);
    let dumb = std::env::var_os("TERM").is_some_and(|term| term == "dumb");
    let steps = tour_steps(settings, flags.from.as_deref())?;
    // One bar per version the stages deploy (ResNet50 and ResNet101 in the shipped lab), however many an
    // instructor's lab.toml has.
    let versions = steps.iter().map(|step| step.versions).max().unwrap_or(1);
    let view = (std::io::stdout().is_terminal() && !dumb).then(|| TourView::on_stdout(versions, colour));
    let look = Look { width, colour, view };
    // Without raw mode (all but the pauses) Ctrl-C is a signal: dropping the walk releases the lab lock and the
    // ingress, as `lab up` does; a stage is only recorded once it passed.
    tokio::select! {
        walked = walk(settings, flags, &steps, auto, &look) => walked,
        _ = tokio::signal::ctrl_c() => {
            STOPPED.store(true, Ordering::SeqCst);
            if let Some(view) = &look.view {
                view.abandon();
            }
            let _ = terminal::disable_raw_mode();
            Err(LabError::not_ready(
                "interrupted: the tour stopped part-way",
                "`cargo xtask lab tour` resumes after the last stage it completed",
            )
            .into())
        }
    }
}

/// Shows, pauses for, applies and asserts each step.
async fn walk(
    settings: &Settings,
    flags: &TourFlags,
    steps: &[TourStep],
    auto: Option<Duration>,
    look: &Look,
) -> CommandResult {
    let timeouts = StageTimeouts {
        rollout: flags.rollout.deadline(),
        serve: *flags.serve.serve_timeout,
    };
    for step in steps {
        show(step, look.width, look.colour);
        match pause(auto, &step.stage).await? {
            Choice::Quit => {
                println!(
                    "tour stopped before \"{}\": `cargo xtask lab tour` resumes here",
                    step.stage
                );
                return Ok(CommandStatus::Ok);
            }
            Choice::Skip => {
                println!("skipped \"{}\"", step.stage);
                record_tour_stage(settings, &step.stage)?;
                continue;
            }
            Choice::Apply => {}
        }
        if let Some(view) = &look.view {
            view.stage(&step.stage);
        }
        let printer = TourPrinter {
            view: look.view.as_ref().map(TourView::sink),
        };
        let outcome = run_stage(
            settings,
            &step.stage,
            timeouts,
            Assertions::Run,
            flags.probe.choice(),
            &printer,
        )
        .await;
        if let Some(view) = &look.view {
            // An assertion that did not finish (an error) leaves no half-drawn view.
            view.abandon();
        }
        let outcome = outcome?;
        let passed = outcome
            .checks
            .as_ref()
            .is_some_and(|report| verdict_of(report) == Verdict::Pass);
        println!("{}", verdict_line(&step.stage, outcome.checks.as_ref(), look.colour));
        if !passed {
            println!(
                "the tour stops here: `cargo xtask lab verify {}` says what differs; `cargo xtask lab tour` resumes here",
                step.stage
            );
            return Ok(CommandStatus::NotReady);
        }
        record_tour_stage(settings, &step.stage)?;
    }
    println!("\ntour complete: every stage applied and asserted");
    Ok(CommandStatus::Ok)
}

/// Prints the stage's heading, explanation, diff and commands.
fn show(step: &TourStep, width: usize, colour: bool) {
    let rule = "─".repeat(width.min(80));
    println!("\n{rule}");
    println!(
        "{}",
        paint(
            &format!("Stage {}/{}: {} — {}", step.number, step.total, step.stage, step.title),
            "1",
            colour
        )
    );
    println!("{}\n", paint(&step.summary, "2", colour));
    println!("{}", render_markdown(&step.explanation, width, colour).trim_end());
    println!("\n{}", paint("What changes", "1", colour));
    print!("{}", render_diff(&step.diff, colour));
    println!("\n{}", paint("By hand, as in the original lab", "1", colour));
    for line in &step.commands.by_hand {
        println!("  $ {line}");
    }
    println!("  (then `{}` checks it)", step.commands.lab_verify);
}

/// Waits for the learner (or `auto`): Enter applies, `s` skips, `q`, Esc or Ctrl-C quits.
async fn pause(auto: Option<Duration>, stage: &str) -> anyhow::Result<Choice> {
    if let Some(pause) = auto {
        if !pause.is_zero() {
            println!("\napplying \"{stage}\" in {}…", humantime::format_duration(pause));
            tokio::time::sleep(pause).await;
        }
        return Ok(Choice::Apply);
    }
    println!("\nEnter: apply \"{stage}\" · s: skip · q: quit");
    tokio::task::spawn_blocking(read_choice).await?
}

/// Set when a SIGINT stopped the tour (sent by another process: at a pause, raw mode reads Ctrl-C as a key), so a
/// key read still waiting ends, and the process does not wait for a key to exit.
static STOPPED: AtomicBool = AtomicBool::new(false);

/// How often a key read looks at [`STOPPED`].
const KEY_POLL: Duration = Duration::from_millis(100);

/// One key in raw mode (restored before returning).
fn read_choice() -> anyhow::Result<Choice> {
    terminal::enable_raw_mode()?;
    let choice = loop {
        if STOPPED.load(Ordering::SeqCst) {
            break Ok(Choice::Quit);
        }
        match event::poll(KEY_POLL) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(error) => break Err(error.into()),
        }
        match event::read() {
            Ok(Event::Key(key)) if key.kind == KeyEventKind::Press => match key.code {
                KeyCode::Enter => break Ok(Choice::Apply),
                KeyCode::Char('s') => break Ok(Choice::Skip),
                KeyCode::Char('q') | KeyCode::Esc => break Ok(Choice::Quit),
                KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => break Ok(Choice::Quit),
                _ => {}
            },
            Ok(_) => {}
            Err(error) => break Err(error.into()),
        }
    };
    terminal::disable_raw_mode()?;
    choice
}

/// The stage's verdict.
fn verdict_of(report: &RunReport) -> Verdict {
    report
        .stages
        .first()
        .map(|stage| stage.verdict)
        .unwrap_or(Verdict::NotAsserted)
}

/// "✓ split-70-30: pass — resnet101 answered 123 of 388 (…): consistent with 30% ± 15%".
fn verdict_line(stage: &str, report: Option<&RunReport>, colour: bool) -> String {
    let Some(report) = report else {
        return format!("- {stage}: not asserted");
    };
    let verdict = verdict_of(report);
    let messages: Vec<String> = report
        .stages
        .iter()
        .flat_map(|stage| stage.assertions.iter().map(|assertion| assertion.message.clone()))
        .collect();
    let (mark, code) = match verdict {
        Verdict::Pass => ("✓", "32"),
        _ => ("✗", "31"),
    };
    paint(
        &format!("{mark} {stage}: {} — {}", verdict.as_str(), messages.join("; ")),
        code,
        colour,
    )
}

/// What `run_stage` reports while the tour applies a stage; the assertions report to the live view on a terminal.
struct TourPrinter {
    view: Option<ProgressSink>,
}

impl StageProgress for TourPrinter {
    fn ingress_note(&self, text: &str) {
        eprintln!("note: {text}");
    }

    fn applied(&self, applied: &AppliedStage) {
        for change in &applied.changes {
            println!("  {}", change.line());
        }
    }

    fn note(&self, text: &str) {
        eprintln!("  … {text}");
    }

    fn check_progress(&self) -> Option<ProgressSink> {
        self.view.clone().or_else(TerminalProgress::on_terminal)
    }
}
