//! Scenarios as scripts (docs/scripts.md): text files of commands in the
//! model's action vocabulary, each with the output it is expected to
//! print, in the style of etcd-io/raft's datadriven `testdata/*.txt`. A
//! script runs on the model and on real nodes; both must print the
//! expected text.
//!
//! - [`parse`]: the file format and the command language;
//! - [`config`]: the `config` header and its defaults;
//! - [`run`]: executing the commands on either side and what they print.

pub mod config;
pub mod parse;
pub mod run;

pub use parse::{parse, ParseError, Script};
pub use run::{run_impl, run_model};

use crate::cluster::ClusterError;
use raftkv::node::ImplBug;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variable that turns on rewriting (as `--rewrite`).
pub const REWRITE_ENV: &str = "REWRITE";

/// Whether `REWRITE` asks for rewriting (set, and not empty or `0`).
pub fn rewrite_from_env() -> bool {
    std::env::var(REWRITE_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: cannot start the implementation's nodes: {source}")]
    Cluster { path: String, source: ClusterError },
}

impl ScriptError {
    /// Bad input (exit 2) as opposed to a failed operation (exit 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, ScriptError::Read { .. } | ScriptError::Parse(_))
    }
}

/// Which side printed something other than the expected text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Model,
    Implementation,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Model => "model",
            Side::Implementation => "implementation",
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Mismatch {
    pub side: Side,
    /// `file:line` of the first command whose output differs.
    pub at: String,
    pub command: String,
    /// Unified diff, expected (`-`) against what the side printed (`+`).
    pub diff: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: the {} printed something else for `{}`:",
            self.at, self.side, self.command
        )?;
        f.write_str(&self.diff)
    }
}

/// The result of one script.
#[derive(Clone, Debug, Serialize)]
pub struct FileResult {
    pub file: String,
    pub commands: usize,
    /// Whether `--rewrite` changed the file.
    pub rewritten: bool,
    /// Model first, then implementation; empty when the script passes.
    pub mismatches: Vec<Mismatch>,
}

impl FileResult {
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

#[derive(Clone, Debug)]
pub struct ScriptOptions {
    /// Regenerate the expected blocks from the model (then still check the
    /// implementation against them).
    pub rewrite: bool,
    /// A seeded bug of the implementation's nodes.
    pub impl_bug: Option<ImplBug>,
    /// Where node data directories go (`cluster::data_root()`).
    pub root: PathBuf,
}

/// Compares what a side printed with what the script expects: `None` when
/// equal, else the mismatch at the first differing command.
fn compare(script: &Script, outputs: &[String], expected: &str, side: Side) -> Option<Mismatch> {
    let first = script
        .cases()
        .zip(outputs)
        .find(|(c, o)| c.expected.as_deref() != Some(o.as_str()))?
        .0;
    let actual = parse::render(script, outputs);
    let diff = similar::TextDiff::from_lines(expected, &actual)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("{} (expected)", script.path),
            &format!("{} ({side})", script.path),
        )
        .to_string();
    Some(Mismatch {
        side,
        at: format!("{}:{}", script.path, first.line),
        command: first.text.clone(),
        diff,
    })
}

/// Runs a parsed script on both sides and compares (and with `rewrite`,
/// writes the model's outputs to `file` first).
pub async fn check_script(
    mut script: Script,
    file: Option<&Path>,
    opts: &ScriptOptions,
) -> Result<FileResult, ScriptError> {
    let model = run_model(&script);
    let mut mismatches = Vec::new();
    let mut rewritten = false;
    if opts.rewrite {
        let text = parse::render(&script, &model);
        if let Some(file) = file {
            let old = std::fs::read_to_string(file).unwrap_or_default();
            if old != text {
                std::fs::write(file, &text).map_err(|source| ScriptError::Write {
                    path: script.path.clone(),
                    source,
                })?;
                rewritten = true;
            }
        }
        script = parse(&text, &script.path)?;
    } else {
        let expected = parse::render_expected(&script);
        mismatches.extend(compare(&script, &model, &expected, Side::Model));
    }
    let imp = run_impl(&script, opts.impl_bug, &opts.root)
        .await
        .map_err(|source| ScriptError::Cluster {
            path: script.path.clone(),
            source,
        })?;
    let expected = parse::render_expected(&script);
    mismatches.extend(compare(&script, &imp, &expected, Side::Implementation));
    Ok(FileResult {
        file: script.path.clone(),
        commands: model.len(),
        rewritten,
        mismatches,
    })
}

/// Reads, parses and checks one script file.
pub async fn check_file(path: &Path, opts: &ScriptOptions) -> Result<FileResult, ScriptError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ScriptError::Read {
        path: label.clone(),
        source,
    })?;
    let script = parse(&text, &label)?;
    check_script(script, Some(path), opts).await
}

/// Reads and parses every file first (bad input stops before anything
/// runs), then checks them in order.
pub async fn check_files(
    paths: &[PathBuf],
    opts: &ScriptOptions,
) -> Result<Vec<FileResult>, ScriptError> {
    let mut scripts = Vec::new();
    for path in paths {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScriptError::Read {
            path: label.clone(),
            source,
        })?;
        scripts.push((parse(&text, &label)?, path));
    }
    let mut out = Vec::new();
    for (script, path) in scripts {
        out.push(check_script(script, Some(path), opts).await?);
    }
    Ok(out)
}
