//! The lab's stages as data: `assets/lab.toml` lists them in order, with their manifests and assertions.
//!
//! Loading validates everything a typo could break (unknown keys, a stage without assertions, a share assertion the
//! share test cannot test, a manifest that does not exist, duplicate names) and reports it with the file, line and
//! column.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use serde::Deserialize;

use crate::definition::diagnostic::{Diagnostic, Place, SourceFile};
use crate::definition::manifests::{self, Manifest};
use crate::definition::schema::{CRD_FILE, CrdSchemas};
use crate::definition::validate::StageSources;

/// The stage `lab reset` returns to by default.
pub const DEFAULT_RESET_STAGE: &str = "stable";

/// All stages, in order.
#[derive(Debug, Clone)]
pub struct LabDefinition {
    /// The stages in the order `lab up` walks them.
    pub stages: Vec<Stage>,
    /// Where the manifests named by the stages live.
    pub manifests_dir: PathBuf,
    /// The stage file as read, for errors that point into it.
    pub source: SourceFile,
    /// Istio's CRD schemas (`assets/istio-1.12.7-crds.yaml`, beside `manifests/`), read when a stage is first loaded.
    schemas: Arc<OnceLock<CrdSchemas>>,
}

/// One stage of the lab.
#[derive(Debug, Clone)]
pub struct Stage {
    /// The stage name, e.g. `split-70-30`.
    pub name: String,
    /// One line for `lab stages`.
    pub summary: String,
    /// The manifest files (in `assets/manifests/`) that make up the stage, applied in order.
    pub manifests: Vec<String>,
    /// Where the traffic must go.
    pub assertions: Vec<AssertionSpec>,
    /// The byte range of each assertion's table in the stage file, for errors that point at it.
    pub assertion_spans: Vec<Range<usize>>,
}

/// Where traffic must go, as written in `lab.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AssertionSpec {
    /// Every response comes from `version`.
    Exact {
        /// The version (the `x-model-version` value, the subset name).
        version: String,
        /// Headers sent with every request.
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    /// The share of responses from `version` is consistent with `share`.
    Share {
        /// The version whose share is tested.
        version: String,
        /// The configured share, 0–1.
        share: f64,
        /// The smallest deviation the test must catch, e.g. 0.15.
        tolerance: f64,
        /// Headers sent with every request.
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
}

impl AssertionSpec {
    /// The headers sent with this assertion's requests.
    pub fn headers(&self) -> &BTreeMap<String, String> {
        match self {
            AssertionSpec::Exact { headers, .. } | AssertionSpec::Share { headers, .. } => headers,
        }
    }

    /// The version the assertion is about.
    pub fn version(&self) -> &str {
        match self {
            AssertionSpec::Exact { version, .. } | AssertionSpec::Share { version, .. } => version,
        }
    }
}

/// A malformed file the lab reads as data (`lab.toml`, `hints.toml`): the file, line and column, and what is wrong; rendered as rustc renders an error
/// ([`Diagnostic::render`]), in one line (and a `help:`) by `Display`.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}:{column}: {message}{}", .diagnostic.path(), .diagnostic.help.as_deref().map(|help| format!("\nhelp: {help}")).unwrap_or_default())]
pub struct DefinitionError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// The same with the source line and a `help:` (boxed: errors travel in `Result`s).
    pub diagnostic: Box<Diagnostic>,
}

impl DefinitionError {
    /// The error at `span` of `source` (read from `path`), with its `help`.
    pub fn at(path: &Path, source: &SourceFile, span: Range<usize>, message: String, help: String) -> DefinitionError {
        let (line, column) = source.line_column(span.start);
        DefinitionError {
            path: path.to_path_buf(),
            line,
            column,
            message: message.clone(),
            diagnostic: Box::new(Diagnostic {
                message,
                place: Place::Span {
                    file: source.clone(),
                    span,
                    label: String::new(),
                },
                help: Some(help),
            }),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabFile {
    #[serde(rename = "stage")]
    stages: Vec<toml::Spanned<StageEntry>>,
}

/// A `[[stage]]` as written: a [`Stage`] whose assertions keep their place in the file, for messages.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageEntry {
    name: String,
    summary: String,
    manifests: Vec<String>,
    #[serde(rename = "assert")]
    assertions: Vec<toml::Spanned<AssertionSpec>>,
}

impl LabDefinition {
    /// Loads `assets/lab.toml` (or `$CANARY_LAB_ASSETS/lab.toml`).
    pub fn load_default() -> anyhow::Result<LabDefinition> {
        let assets = crate::definition::assets::assets_dir();
        LabDefinition::load(&assets.join("lab.toml"), &assets.join("manifests"))
    }

    /// Loads and validates a stage file whose manifests live in `manifests_dir`.
    pub fn load(path: &Path, manifests_dir: &Path) -> anyhow::Result<LabDefinition> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| anyhow::anyhow!("reading stage definitions {}: {error}", path.display()))?;
        Ok(LabDefinition::parse(path, &text, manifests_dir)?)
    }

    /// Parses and validates stage definitions from `text` (read from `path`, used in messages).
    pub fn parse(path: &Path, text: &str, manifests_dir: &Path) -> Result<LabDefinition, DefinitionError> {
        let source = SourceFile::new(path, text);
        let format_help = format!("the opening comment of {} describes the format", source.path);
        let error_at =
            |span: Range<usize>, message: String, help: String| DefinitionError::at(path, &source, span, message, help);
        let file: LabFile = toml::from_str(text).map_err(|error| {
            let span = error.span().unwrap_or(0..0);
            error_at(span, error.message().trim_end().to_string(), format_help.clone())
        })?;
        if file.stages.is_empty() {
            return Err(error_at(0..0, "no [[stage]] defined".to_string(), format_help));
        }
        let mut stages = Vec::new();
        for spanned in file.stages {
            let table = spanned.span();
            let entry = spanned.into_inner();
            let at = |key: &str| value_span(text, table.start, key).unwrap_or(table.start..table.start);
            if stages.iter().any(|seen: &Stage| seen.name == entry.name) {
                let message = format!("stage \"{}\" is defined twice", entry.name);
                return Err(error_at(at("name"), message, "give each stage its own name".into()));
            }
            if entry.manifests.is_empty() {
                let message = format!("stage \"{}\" names no manifests", entry.name);
                let help = "list the stage's files of assets/manifests/, in the order they are applied";
                return Err(error_at(at("manifests"), message, help.into()));
            }
            if entry.assertions.is_empty() {
                let message = format!("stage \"{}\" has no [[stage.assert]]", entry.name);
                let help = "add a `[[stage.assert]]` table saying where the stage's traffic must go";
                return Err(error_at(at("name"), message, help.into()));
            }
            for file in &entry.manifests {
                if !manifests_dir.join(file).is_file() {
                    let message = format!(
                        "stage \"{}\" names manifest \"{file}\", which is not in {}",
                        entry.name,
                        manifests_dir.display()
                    );
                    let quoted = format!("\"{file}\"");
                    // toml's span of a `[[stage]]` is its header: search on to the next stage's.
                    let rest = &text[table.end..];
                    let stage_text = &rest[..rest.find("\n[[stage]]").unwrap_or(rest.len())];
                    let span = stage_text
                        .find(&quoted)
                        .map(|offset| table.end + offset..table.end + offset + quoted.len())
                        .unwrap_or_else(|| at("manifests"));
                    let help = format!("name a file of {}, or add the file there", manifests_dir.display());
                    return Err(error_at(span, message, help));
                }
            }
            let mut assertions = Vec::new();
            let mut assertion_spans = Vec::new();
            for assertion in entry.assertions {
                let assertion_span = assertion.span();
                let assertion = assertion.into_inner();
                if let AssertionSpec::Share { share, tolerance, .. } = &assertion
                    && let Some((problem, help)) = share_problem(*share, *tolerance)
                {
                    let message = format!(
                        "stage \"{}\": a share assertion of {share} ± {tolerance} {problem}",
                        entry.name
                    );
                    // At the value to change: the tolerance when it is the problem, else the share.
                    let key = if problem.contains("tolerance") {
                        "tolerance"
                    } else {
                        "share"
                    };
                    let start = assertion_span.start;
                    let span = value_span(text, start, key).unwrap_or(start..start);
                    return Err(error_at(span, message, help));
                }
                assertions.push(assertion);
                assertion_spans.push(assertion_span);
            }
            stages.push(Stage {
                name: entry.name,
                summary: entry.summary,
                manifests: entry.manifests,
                assertions,
                assertion_spans,
            });
        }
        Ok(LabDefinition {
            stages,
            manifests_dir: manifests_dir.to_path_buf(),
            source,
            schemas: Arc::default(),
        })
    }

    /// The stage called `name`, or an error listing the stages there are.
    pub fn stage(&self, name: &str) -> anyhow::Result<&Stage> {
        match self.stages.iter().find(|stage| stage.name == name) {
            Some(stage) => Ok(stage),
            None => {
                let names: Vec<&str> = self.stages.iter().map(|stage| stage.name.as_str()).collect();
                anyhow::bail!(
                    "no stage \"{name}\" (the stages are: {})\nhelp: run `cargo xtask lab stages`",
                    names.join(", ")
                )
            }
        }
    }

    /// The stages from the first up to and including `last` (all of them when `last` is `None`).
    pub fn stages_through(&self, last: Option<&str>) -> anyhow::Result<&[Stage]> {
        match last {
            None => Ok(&self.stages),
            Some(name) => {
                self.stage(name)?;
                let end = self
                    .stages
                    .iter()
                    .position(|stage| stage.name == name)
                    .expect("stage exists")
                    + 1;
                Ok(&self.stages[..end])
            }
        }
    }

    /// Every object a stage applies, in order, checked as Istio would check them
    /// ([`crate::definition::validate::validate_stage`], with Istio's CRD schemas): every command that loads a stage
    /// refuses an invalid one.
    pub fn stage_manifests(&self, stage: &Stage) -> anyhow::Result<Vec<Manifest>> {
        let mut loaded = Vec::new();
        let mut sources = StageSources {
            manifests: BTreeMap::new(),
            definition: Some((self.source.clone(), stage.assertion_spans.clone())),
        };
        for file in &stage.manifests {
            let path = self.manifests_dir.join(file);
            let text =
                std::fs::read_to_string(&path).with_context(|| format!("reading manifest {}", path.display()))?;
            let source = SourceFile::new(&path, text);
            let documents = manifests::parse_documents(file, &source.text)
                .map_err(|error| crate::definition::validate::yaml_syntax_error(stage, &source, error))?;
            loaded.extend(documents);
            sources.manifests.insert(file.clone(), source);
        }
        crate::definition::validate::validate_stage(stage, &loaded, &sources, self.schemas()?)?;
        Ok(loaded)
    }

    /// Istio's CRD schemas, read once: `istio-1.12.7-crds.yaml` in the assets directory (the manifests' parent).
    fn schemas(&self) -> anyhow::Result<&CrdSchemas> {
        if let Some(schemas) = self.schemas.get() {
            return Ok(schemas);
        }
        let assets = self.manifests_dir.parent().unwrap_or(&self.manifests_dir);
        let loaded = CrdSchemas::load(&assets.join(CRD_FILE))?;
        Ok(self.schemas.get_or_init(|| loaded))
    }
}

/// What makes a share assertion untestable, if anything. The share test ([`crate::traffic::stats::ShareTest`]) weighs the
/// configured share against the shares `tolerance` above and below it, so it needs a share strictly between 0 and 1
/// (0 and 1 are what `kind = "exact"` checks, and the likelihood ratio divides by both `share` and `1 − share`) and at
/// least one of those alternatives strictly between 0 and 1 (with neither, nothing could ever fail the test).
fn share_problem(share: f64, tolerance: f64) -> Option<(String, String)> {
    if !(share > 0.0 && share < 1.0) {
        return Some((
            format!(
                "cannot be tested: the share must be strictly between 0 and 1 (for {}, write `kind = \"exact\"`)",
                if share >= 1.0 {
                    "every response from the version"
                } else {
                    "no response from the version"
                }
            ),
            "write the share as a fraction strictly between 0 and 1, e.g. `share = 0.3` for 30%".to_string(),
        ));
    }
    if !(tolerance > 0.0 && tolerance < 1.0) {
        return Some((
            "cannot be tested: the tolerance must be strictly between 0 and 1".to_string(),
            "write the smallest deviation the test must catch as a fraction, e.g. `tolerance = 0.15`".to_string(),
        ));
    }
    let below_exists = share - tolerance > 0.0;
    let above_exists = share + tolerance < 1.0;
    if !below_exists && !above_exists {
        return Some((
            "cannot be tested: with share − tolerance ≤ 0 and share + tolerance ≥ 1 no split could fail it (use a smaller tolerance)"
                .to_string(),
            format!(
                "use a tolerance below {}, so that share − tolerance or share + tolerance lies strictly between 0 and 1",
                share.max(1.0 - share)
            ),
        ));
    }
    None
}

/// The byte range of the value of `key = value` in the table that starts at `table_start` in `text` (up to the next
/// table header), if the key is written there: from the value's first character to the end of the line, without a
/// trailing comment.
pub(crate) fn value_span(text: &str, table_start: usize, key: &str) -> Option<Range<usize>> {
    let mut line_start = table_start;
    for (index, line) in text.get(table_start..)?.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        if index > 0 && trimmed.starts_with('[') {
            return None;
        }
        if let Some(rest) = trimmed.strip_prefix(key)
            && let Some(after_equals) = rest.trim_start().strip_prefix('=')
        {
            let value = after_equals.trim_start();
            let start = line_start + line.len() - value.len();
            let written = value.split(" #").next().unwrap_or(value).trim_end();
            return Some(start..start + written.len());
        }
        line_start += line.len();
    }
    None
}

#[cfg(test)]
#[path = "stages_tests.rs"]
mod tests;
