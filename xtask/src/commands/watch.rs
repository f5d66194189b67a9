//! `lab watch`: the live traffic view on a terminal (ratatui, redrawn four times a second, `q`/`Esc`/Ctrl-C to
//! stop; one group of bars per `--header-set`), or one JSON object per line and `--interval` off a terminal or with
//! `--format json` ([`lab::lifecycle::watch`] sends the traffic and keeps the windows).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use lab::lifecycle::watch::{ViewControl, WatchOptions, WatchView, watch};
use lab::output::use_colour;
use lab::report::live::{LiveHeading, SetsSnapshot, TrafficSnapshot, draw, draw_sets};
use lab::{CommandStatus, Format, Settings};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use crate::CommandResult;
use crate::flags::WatchFlags;

/// How often the terminal view is redrawn.
const TERMINAL_REFRESH: Duration = Duration::from_millis(250);

/// Watches until `q`, Ctrl-C or `--for`.
pub(crate) async fn run(settings: &Settings, flags: &WatchFlags) -> CommandResult {
    let on_terminal = settings.format == Format::Human && std::io::stdout().is_terminal();
    let mut options = WatchOptions {
        url: flags.url.clone(),
        headers: flags.headers.iter().cloned().collect(),
        header_sets: flags.header_sets.clone(),
        rate: flags.rate,
        concurrency: flags.concurrency as usize,
        request_timeout: *flags.request_timeout,
        window: flags.window as usize,
        refresh: *flags.interval,
        duration: flags.duration.map(Into::into),
        image: super::read_image(flags.image.as_deref())?,
        probe: flags.probe.choice(),
    };
    if on_terminal {
        options.refresh = TERMINAL_REFRESH;
        let mut view = TerminalView::start()?;
        let watched = watch(settings, &options, &mut view).await;
        drop(view);
        watched?;
    } else {
        watch(settings, &options, &mut JsonLines).await?;
    }
    Ok(CommandStatus::Ok)
}

/// One JSON object per snapshot, on its own line, flushed at once (for `jq`, a dashboard, a test).
struct JsonLines;

impl WatchView for JsonLines {
    fn show(&mut self, snapshot: &TrafficSnapshot) -> anyhow::Result<ViewControl> {
        write_line(&serde_json::to_string(snapshot)?)
    }

    fn show_sets(&mut self, snapshot: &SetsSnapshot) -> anyhow::Result<ViewControl> {
        write_line(&serde_json::to_string(snapshot)?)
    }
}

/// Writes `line` and flushes it.
fn write_line(line: &str) -> anyhow::Result<ViewControl> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(ViewControl::Continue)
}

/// The ratatui view on the alternate screen, in raw mode until dropped (also on an error or a panic: ratatui's
/// `init` installs a hook that restores the terminal first).
struct TerminalView {
    terminal: ratatui::DefaultTerminal,
    heading: LiveHeading,
    colour: bool,
}

impl TerminalView {
    fn start() -> anyhow::Result<TerminalView> {
        let terminal = ratatui::try_init()?;
        Ok(TerminalView {
            terminal,
            heading: LiveHeading {
                title: "lab watch".to_string(),
                keys: "q or Ctrl-C to stop".to_string(),
            },
            colour: use_colour(),
        })
    }
}

impl WatchView for TerminalView {
    fn show(&mut self, snapshot: &TrafficSnapshot) -> anyhow::Result<ViewControl> {
        self.terminal
            .draw(|frame| draw(frame, snapshot, &self.heading, self.colour))?;
        read_keys()
    }

    fn show_sets(&mut self, snapshot: &SetsSnapshot) -> anyhow::Result<ViewControl> {
        self.terminal
            .draw(|frame| draw_sets(frame, snapshot, &self.heading, self.colour))?;
        read_keys()
    }
}

/// Reads the keys typed since the last redraw: `q`, `Esc` or Ctrl-C stop the watch.
fn read_keys() -> anyhow::Result<ViewControl> {
    // Raw mode turns Ctrl-C into a key, so it is read here with q and Esc.
    while event::poll(Duration::ZERO)? {
        if let Event::Key(key) = event::read()? {
            let ctrl_c = key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
            let quit = matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c;
            if key.kind == KeyEventKind::Press && quit {
                return Ok(ViewControl::Stop);
            }
        }
    }
    Ok(ViewControl::Continue)
}

impl Drop for TerminalView {
    fn drop(&mut self) {
        ratatui::restore();
    }
}
