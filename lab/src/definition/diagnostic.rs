//! One format for every error that points into a file the lab reads (`lab.toml`, a manifest), as rustc and cargo
//! print theirs: `error: message`, ` --> file:line:col`, the line with a caret under the offending text, `help: …`.
//! The rendering is annotate-snippets' (rustc's own renderer), not hand-made.

use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

/// A file as read, to point into.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path shown after ` --> `.
    pub path: String,
    /// The whole text.
    pub text: Arc<str>,
}

impl SourceFile {
    /// A file read from `path` (shown without `.`/`..` components).
    pub fn new(path: &Path, text: impl Into<Arc<str>>) -> SourceFile {
        SourceFile {
            path: tidy_path(path).display().to_string(),
            text: text.into(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map(|rest| rest.chars().count()).unwrap_or(0) + 1;
        (line, column)
    }
}

/// `a/b/../c/./d` as `a/c/d`: the default assets directory is `lab/../assets`.
fn tidy_path(path: &Path) -> PathBuf {
    let mut tidy = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if matches!(tidy.components().next_back(), Some(Component::Normal(_))) => {
                tidy.pop();
            }
            other => tidy.push(other),
        }
    }
    tidy
}

/// Where a problem is.
#[derive(Debug, Clone)]
pub enum Place {
    /// A range of a file, with a label under it.
    Span {
        /// The file.
        file: SourceFile,
        /// The byte range the caret marks.
        span: Range<usize>,
        /// Said under the caret: what the range is (the object and field).
        label: String,
    },
    /// Named only (the text could not be pointed into), e.g. `x.yaml, document 2: VirtualService a, spec.http`.
    Named(String),
}

/// One problem: what is wrong, where, and how to fix it.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// What is wrong, in one line.
    pub message: String,
    /// Where.
    pub place: Place,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// 1-based line and column of the place, when it is a span.
    pub fn line_column(&self) -> Option<(usize, usize)> {
        match &self.place {
            Place::Span { file, span, .. } => Some(file.line_column(span.start)),
            Place::Named(_) => None,
        }
    }

    /// The file's path (or, when the place is only named, its name).
    pub fn path(&self) -> &str {
        match &self.place {
            Place::Span { file, .. } => &file.path,
            Place::Named(place) => place,
        }
    }

    /// One line without the source: `file:line:col: message (label)`, for `--format json` and logs.
    pub fn one_line(&self) -> String {
        match &self.place {
            Place::Span { file, label, .. } => {
                let (line, column) = self.line_column().unwrap_or((1, 1));
                let label = if label.is_empty() {
                    String::new()
                } else {
                    format!(" ({label})")
                };
                format!("{}:{line}:{column}: {}{label}", file.path, self.message)
            }
            Place::Named(place) => format!("{place}: {}", self.message),
        }
    }

    /// The problem as rustc prints one: `error:`, ` --> file:line:col`, the source line and a caret, `help:`.
    /// `styled` adds colour (for a terminal without `NO_COLOR`).
    pub fn render(&self, styled: bool) -> String {
        let title = match &self.place {
            Place::Span { .. } => self.message.clone(),
            Place::Named(place) => format!("{place}: {}", self.message),
        };
        let mut group = Group::with_title(Level::ERROR.primary_title(title.as_str()));
        if let Place::Span { file, span, label } = &self.place {
            group = group.element(
                Snippet::source(&*file.text)
                    .path(file.path.as_str())
                    .annotation(AnnotationKind::Primary.span(span.clone()).label(label.as_str())),
            );
        }
        let mut report = vec![group];
        if let Some(help) = &self.help {
            report.push(Group::with_title(Level::HELP.secondary_title(help.as_str())));
        }
        renderer(styled).render(&report)
    }
}

fn renderer(styled: bool) -> Renderer {
    if styled { Renderer::styled() } else { Renderer::plain() }
}

/// A closing line after several diagnostics, as cargo's `error: could not compile …`, with a `help:`.
pub fn render_summary(summary: &str, help: Option<&str>, styled: bool) -> String {
    let renderer = renderer(styled);
    let mut rendered = renderer.render(&[Group::with_title(Level::ERROR.primary_title(summary))]);
    if let Some(help) = help {
        // Rendered on its own: in one report with the title, a lone gutter line (` |`) would separate them.
        rendered.push('\n');
        rendered.push_str(&renderer.render(&[Group::with_title(Level::HELP.secondary_title(help))]));
    }
    rendered
}

/// The rendered form of the first error in `error`'s chain that points into a file (a malformed `lab.toml`, a stage
/// whose objects Istio or the lab refuses); `None` when there is none, and the caller prints the error its own way.
pub fn render_error(error: &anyhow::Error, styled: bool) -> Option<String> {
    error.chain().find_map(|cause| {
        if let Some(invalid) = cause.downcast_ref::<crate::definition::validate::InvalidStage>() {
            Some(invalid.render(styled))
        } else {
            cause
                .downcast_ref::<crate::definition::stages::DefinitionError>()
                .map(|error| error.diagnostic.render(styled))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diagnostic() -> Diagnostic {
        let text = "[[stage]]\nname = \"a\"\nshare = 1.5\n";
        Diagnostic {
            message: "the share must be strictly between 0 and 1".into(),
            place: Place::Span {
                file: SourceFile::new(Path::new("/x/lab/../assets/./lab.toml"), text),
                span: 29..32,
                label: "share".into(),
            },
            help: Some("write a fraction, e.g. 0.3".into()),
        }
    }

    #[test]
    fn a_diagnostic_renders_as_rustc_prints_one() {
        let rendered = diagnostic().render(false);
        let expected = "\
error: the share must be strictly between 0 and 1
 --> /x/assets/lab.toml:3:9
  |
3 | share = 1.5
  |         ^^^ share
  |
help: write a fraction, e.g. 0.3";
        assert_eq!(rendered, expected);
        assert!(!rendered.contains('\u{1b}'));
        assert!(diagnostic().render(true).contains('\u{1b}'));
        assert_eq!(
            diagnostic().one_line(),
            "/x/assets/lab.toml:3:9: the share must be strictly between 0 and 1 (share)"
        );
    }
}
