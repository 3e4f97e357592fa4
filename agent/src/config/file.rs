//! Reading a configuration file: every error with its place, collected structurally. The
//! file is parsed into a span-keeping `DeTable`; each declared key is read on its own
//! (`Settings::read`), so a bad value is reported at its own span and the others still
//! count; unknown keys are the table keys the declaration does not name; the checks then
//! run on the result, skipping those that involve a key the file failed to set.

use std::{
    fmt,
    ops::Range,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use toml::{
    Spanned,
    de::{DeTable, DeValue},
};

use super::{
    declare::Bad,
    settings::{Settings, TABLES, TOP_KEYS},
};

/// An error located in a file.
#[derive(Clone, Debug, PartialEq)]
pub struct FileError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub col: usize,
    /// Key path, or empty for syntax errors.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

/// Every error of one file, printed one per line as `file:line:col: key: reason`.
#[derive(Clone, Debug)]
pub struct FileErrors {
    /// The file.
    pub path: PathBuf,
    /// Its errors, in file order.
    pub errors: Vec<FileError>,
}

impl fmt::Display for FileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: ", self.path.display(), e.line, e.col)?;
            if !e.key.is_empty() {
                write!(f, "{}: ", e.key)?;
            }
            write!(f, "{}", e.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for FileErrors {}

/// A configuration file's text.
pub struct ConfigFile {
    path: PathBuf,
    text: String,
}

impl ConfigFile {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<ConfigFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read configuration file {}", path.display()))?;
        Ok(ConfigFile::from_text(path, text))
    }

    /// A file named `path` holding `text`.
    pub fn from_text(path: &Path, text: String) -> ConfigFile {
        ConfigFile {
            path: path.to_path_buf(),
            text,
        }
    }

    /// The settings of the file over the defaults, or every error in it.
    pub fn settings(&self) -> Result<Settings, FileErrors> {
        let (root, syntax) = DeTable::parse_recoverable(&self.text);
        if !syntax.is_empty() {
            let errors = syntax
                .iter()
                .map(|e| self.locate(e.span().unwrap_or(0..0), String::new(), e.message()))
                .collect();
            return Err(self.errors(errors));
        }
        let root = root.get_ref();
        let mut bad = unknown_keys(root);
        let settings = Settings::read(root, &mut bad);
        // A check that involves a key the file failed to set would be about its default.
        let failed: Vec<String> = bad.iter().map(|b| base_key(&b.key).to_string()).collect();
        let failed = |k: &str| failed.iter().any(|f| f == k);
        for p in settings.problems() {
            if failed(base_key(&p.key)) || p.also.iter().any(|k| failed(k)) {
                continue;
            }
            let span = span_of(root, &p.key).unwrap_or(0..0);
            bad.push(Bad {
                key: p.key,
                span,
                reason: p.reason,
            });
        }
        if bad.is_empty() {
            return Ok(settings);
        }
        let errors = bad
            .into_iter()
            .map(|b| self.locate(b.span, b.key, &b.reason))
            .collect();
        Err(self.errors(errors))
    }

    fn errors(&self, mut errors: Vec<FileError>) -> FileErrors {
        errors.sort_by_key(|e| (e.line, e.col));
        errors.dedup();
        FileErrors {
            path: self.path.clone(),
            errors,
        }
    }

    fn locate(&self, span: Range<usize>, key: String, reason: &str) -> FileError {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = self.text[line_start..start].chars().count() + 1;
        FileError {
            line,
            col,
            key,
            reason: reason.trim().replace('\n', " "),
        }
    }
}

/// `allow[1]` -> `allow`.
fn base_key(key: &str) -> &str {
    key.split('[').next().unwrap_or(key)
}

/// Keys of the file that the declaration does not name, and tables that are not tables.
fn unknown_keys(root: &DeTable<'_>) -> Vec<Bad> {
    let mut bad = Vec::new();
    let unknown =
        |bad: &mut Vec<Bad>, table: &DeTable<'_>, prefix: &str, known: &'static [&'static str]| {
            for (k, _) in table.iter() {
                let name = k.get_ref().as_ref();
                if !known.contains(&name) {
                    let e = <toml::de::Error as serde::de::Error>::unknown_field(name, known);
                    bad.push(Bad {
                        key: format!("{prefix}{name}"),
                        span: k.span(),
                        reason: e.message().to_string(),
                    });
                }
            }
        };
    unknown(&mut bad, root, "", TOP_KEYS);
    for (name, _, keys) in TABLES {
        if let Some(v) = root.get(*name) {
            match v.get_ref() {
                DeValue::Table(t) => unknown(&mut bad, t, &format!("{name}."), keys),
                _ => bad.push(Bad {
                    key: name.to_string(),
                    span: v.span(),
                    reason: format!("expected a table [{name}]"),
                }),
            }
        }
    }
    bad
}

/// The value at a dotted key path (`a.b`, `allow[1]`), if present.
pub(super) fn lookup<'a, 'i>(
    table: &'a DeTable<'i>,
    key: &str,
) -> Option<&'a Spanned<DeValue<'i>>> {
    let mut cur: Option<&Spanned<DeValue<'_>>> = None;
    for part in key.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, i)) => (n, Some(i.trim_end_matches(']').parse::<usize>().ok()?)),
            None => (part, None),
        };
        let t = match cur.map(|v| v.get_ref()) {
            None => table,
            Some(DeValue::Table(t)) => t,
            Some(_) => return None,
        };
        cur = Some(t.get(name)?);
        if let Some(i) = index {
            match cur.map(|v| v.get_ref()) {
                Some(DeValue::Array(items)) => cur = Some(items.get(i)?),
                _ => return None,
            }
        }
    }
    cur
}

fn span_of(table: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
    lookup(table, key).map(|v| v.span())
}
