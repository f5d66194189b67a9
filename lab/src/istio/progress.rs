//! Download progress as named steps: a bar on a terminal (indicatif, on stderr), log events otherwise.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether to draw a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressBarMode {
    /// A bar when stderr is a terminal, log events otherwise.
    Auto,
    /// Never a bar (benchmarks, tests, embedding); log events only.
    Hidden,
}

/// The progress of one download: length known, data received, retrying, finished, failed.
#[derive(Debug)]
pub struct Progress {
    label: String,
    bar: Option<ProgressBar>,
    started: Instant,
    received: u64,
}

impl Progress {
    /// Progress for downloading `label` (the asset's name).
    pub fn new(label: &str, mode: ProgressBarMode) -> Progress {
        let draw_bar = mode == ProgressBarMode::Auto && std::io::stderr().is_terminal();
        let bar = draw_bar.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let style =
                ProgressStyle::with_template("{msg} {bytes}/{total_bytes} {binary_bytes_per_sec} [{wide_bar}] {eta}")
                    .expect("valid progress template")
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(label.to_string());
            bar
        });
        Progress {
            label: label.to_string(),
            bar,
            started: Instant::now(),
            received: 0,
        }
    }

    /// The server told us the total size; `already` bytes are on disk from an earlier attempt.
    pub fn length_known(&mut self, total: Option<u64>, already: u64) {
        self.received = already;
        tracing::info!(asset = %self.label, total_bytes = ?total, resumed_from = already, "downloading");
        if let Some(bar) = &self.bar {
            if let Some(total) = total {
                bar.set_length(total);
            }
            bar.set_position(already);
        }
    }

    /// `count` more bytes arrived.
    pub fn received(&mut self, count: u64) {
        self.received += count;
        if let Some(bar) = &self.bar {
            bar.inc(count);
        }
    }

    /// An attempt failed and another follows, with `remaining` tries left after it: one line, as cargo words it
    /// (`warning: spurious network error (2 tries remaining): …`).
    pub fn retrying(&mut self, remaining: u32, reason: &str) {
        let tries = if remaining == 1 { "try" } else { "tries" };
        let message = format!(
            "spurious network error ({remaining} {tries} remaining) fetching {}: {reason}",
            self.label
        );
        match &self.bar {
            Some(bar) => bar.println(format!("warning: {message}")),
            None => tracing::warn!("{message}"),
        }
    }

    /// The download completed.
    pub fn finished(&mut self) {
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = self.received as f64 / seconds.max(1e-9) / 1_048_576.0;
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        tracing::info!(asset = %self.label, bytes = self.received, seconds, mib_per_s = rate, "downloaded");
    }

    /// The download gave up.
    pub fn failed(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}
