//! `mounts.toml`, the saved mounts: one table per mount, named by the table, with the bucket,
//! the mount point and any `mount` option under its own name (the one option table of
//! `mount_helper`, so a saved mount knows every flag `-o` knows):
//!
//! ```toml
//! [photos]
//! bucket = "my-bucket:photos/"     # BUCKET[:PREFIX], as `s3rolefs mount` takes it
//! mountpoint = "~/Photos"          # absolute, or under ~/
//! region = "eu-west-1"             # --region eu-west-1
//! write_back = true                # --write-back
//! ```
//!
//! Reading checks every entry and names the file, the line and the fix of the first bad one.
//! Writing (`add`, `remove`) edits the parsed document and writes it back whole through a
//! temporary file and a rename: the other entries, comments and order stay as their owner
//! wrote them, and a crash leaves the old file or the new one, never half of one.
//!
//! - `edit`: `add`, `remove` and `save`.
//!
//! The file holds no secret and must never get one: every option here is a `mount` flag,
//! and flags never carry secrets (they would show in `ps`); keys come from the AWS
//! environment, an SSE-C key from the file `sse_c_key_file` names.

use std::path::{Path, PathBuf};

use toml_edit::{Item, Value};

use super::super::mount_helper::{mount_flag, mount_flag_takes_value};

/// The keys of an entry that are not `mount` options.
const BUCKET: &str = "bucket";
const MOUNTPOINT: &str = "mountpoint";

/// What a new file starts with: enough to edit it by hand.
const HEADER: &str = "\
# Saved s3rolefs mounts: `s3rolefs mount NAME` mounts the table [NAME].
# Each has bucket = \"BUCKET[:PREFIX]\", mountpoint = \"DIR\" (absolute or ~/...), and any
# option of `s3rolefs mount --help` under its name without the dashes: region = \"eu-west-1\",
# write_back = true, cache_dir_size = \"10G\". `s3rolefs add` and `s3rolefs remove` keep
# the rest of this file as it is. No secrets here: credentials come from the environment.
";

/// One saved mount.
#[derive(Clone, Debug, PartialEq)]
pub struct SavedMount {
    pub name: String,
    /// `BUCKET[:PREFIX]`, or an access point ARN.
    pub source: String,
    /// Absolute (`~/` expanded).
    pub mountpoint: PathBuf,
    /// The options as written, in file order: name and value (`None`: a switch that is on).
    pub options: Vec<(String, Option<String>)>,
    /// The line of the entry's name, for messages.
    pub line: usize,
}

impl SavedMount {
    /// The options as `s3rolefs mount` flags.
    pub fn flags(&self) -> Vec<String> {
        self.options
            .iter()
            // Checked when read or added: every option is a flag of `mount`.
            .flat_map(|(name, value)| mount_flag(name, value.as_deref()).unwrap_or_default())
            .collect()
    }
}

/// A saved-mounts file and what it says.
#[derive(Debug)]
pub struct MountsFile {
    pub path: PathBuf,
    /// The text as read, edited by `add`/`remove` (see `edit`).
    text: String,
    pub mounts: Vec<SavedMount>,
}

/// What went wrong with the saved mounts; one line with the cause and the fix.
#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    #[error("cannot read {path}: {reason}; check that it is a file you may read")]
    Read { path: PathBuf, reason: String },
    #[error("{path}:{line}: {message}")]
    Entry {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("no saved mount {name:?} in {path}; {hint}")]
    Unknown {
        name: String,
        path: PathBuf,
        hint: String,
    },
    #[error("{name:?} is already saved ({path}:{line}); remove it first (s3rolefs remove {name}) or pick another name")]
    Exists {
        name: String,
        path: PathBuf,
        line: usize,
    },
    #[error(
        "invalid name {name:?}: use letters, digits, - and _ (at most 64, not starting with -)"
    )]
    BadName { name: String },
    #[error("cannot write {path}: {reason}; check that its directory is yours and writable")]
    Write { path: PathBuf, reason: String },
    #[error(
        "no place for saved mounts: HOME is not set; set HOME or {}",
        crate::config::MOUNTS_FILE_ENV
    )]
    NoHome,
}

/// A mount's name: the table's name, a unit's name (`s3rolefs-NAME.service`) and an argument
/// of `mount`, so plain characters only (and never a path: an argument with `/` is a path).
pub fn check_name(name: &str) -> Result<(), SavedError> {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty() || name.len() > 64 || name.starts_with('-') || !name.chars().all(plain) {
        return Err(SavedError::BadName {
            name: name.to_string(),
        });
    }
    Ok(())
}

impl MountsFile {
    /// Reads `path`; a file that does not exist is an empty list. `home` expands `~/`.
    pub fn load(path: &Path, home: Option<&Path>) -> Result<MountsFile, SavedError> {
        match std::fs::read_to_string(path) {
            Ok(text) => MountsFile::parse(path, text, home),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(MountsFile {
                path: path.to_path_buf(),
                text: String::new(),
                mounts: Vec::new(),
            }),
            Err(e) => Err(SavedError::Read {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        }
    }

    /// Parses and checks `text`, the content of `path`.
    pub fn parse(path: &Path, text: String, home: Option<&Path>) -> Result<MountsFile, SavedError> {
        let entry_error = |at: Option<std::ops::Range<usize>>, message: String| SavedError::Entry {
            path: path.to_path_buf(),
            line: line_of(&text, at.map_or(0, |r| r.start)),
            message,
        };
        let document = toml_edit::Document::parse(text.as_str()).map_err(|e| {
            entry_error(
                e.span(),
                format!(
                    "{}; fix the TOML there (each mount is a [NAME] table of key = value lines)",
                    e.message().trim_end().replace('\n', " ")
                ),
            )
        })?;
        let command = <super::super::Cli as clap::CommandFactory>::command();
        let mut mounts = Vec::new();
        for (name, item) in document.as_table().iter() {
            let key_span = document.as_table().key(name).and_then(|k| k.span());
            let at = |span: Option<std::ops::Range<usize>>| span.or_else(|| key_span.clone());
            check_name(name).map_err(|e| entry_error(at(None), e.to_string()))?;
            let Some(table) = item.as_table_like() else {
                return Err(entry_error(
                    at(None),
                    format!(
                        "{name} is not a mount; a mount is a table: [{name}] with bucket = \"...\" and mountpoint = \"...\" below it"
                    ),
                ));
            };
            let mut source = None;
            let mut mountpoint = None;
            let mut options = Vec::new();
            for (key, value) in table.iter() {
                let span = at(table.key(key).and_then(|k| k.span()));
                let fail = |message: String| entry_error(span.clone(), message);
                let value = scalar(value).ok_or_else(|| {
                    fail(format!(
                        "{key} of {name} must be a string, a number or true/false"
                    ))
                })?;
                match key {
                    BUCKET => source = Some(text_value(value, key, name).map_err(fail)?),
                    MOUNTPOINT => {
                        let dir = text_value(value, key, name).map_err(&fail)?;
                        mountpoint = Some(expand_home(&dir, home).map_err(fail)?);
                    }
                    _ => {
                        if let Some(option) = option_value(&command, key, value).map_err(fail)? {
                            options.push(option);
                        }
                    }
                }
            }
            let missing = |what: &str, example: &str| {
                entry_error(
                    key_span.clone(),
                    format!("mount {name} has no {what}; add a line {what} = \"{example}\" below [{name}]"),
                )
            };
            mounts.push(SavedMount {
                name: name.to_string(),
                source: source.ok_or_else(|| missing(BUCKET, "BUCKET[:PREFIX]"))?,
                mountpoint: mountpoint.ok_or_else(|| missing(MOUNTPOINT, "/path/to/dir"))?,
                options,
                line: line_of(&text, key_span.map_or(0, |r| r.start)),
            });
        }
        Ok(MountsFile {
            path: path.to_path_buf(),
            text,
            mounts,
        })
    }

    /// The saved mount `name`.
    pub fn get(&self, name: &str) -> Result<&SavedMount, SavedError> {
        self.mounts
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| self.unknown(name))
    }

    fn unknown(&self, name: &str) -> SavedError {
        let names: Vec<&str> = self.mounts.iter().map(|m| m.name.as_str()).collect();
        SavedError::Unknown {
            name: name.to_string(),
            path: self.path.clone(),
            hint: if names.is_empty() {
                "there are none yet; save one with: s3rolefs add NAME BUCKET[:PREFIX] DIR".into()
            } else {
                format!("the saved mounts are {} (s3rolefs list)", names.join(", "))
            },
        }
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// A value as the text it stands for; `None` for arrays and tables.
enum Scalar {
    Text(String),
    Switch(bool),
}

fn scalar(item: &Item) -> Option<Scalar> {
    match item.as_value()? {
        Value::String(s) => Some(Scalar::Text(s.value().clone())),
        Value::Integer(i) => Some(Scalar::Text(i.value().to_string())),
        Value::Float(f) => Some(Scalar::Text(f.value().to_string())),
        Value::Boolean(b) => Some(Scalar::Switch(*b.value())),
        Value::Datetime(_) | Value::Array(_) | Value::InlineTable(_) => None,
    }
}

fn text_value(value: Scalar, key: &str, name: &str) -> Result<String, String> {
    match value {
        Scalar::Text(t) if !t.trim().is_empty() => Ok(t),
        _ => Err(format!(
            "{key} of {name} must be a non-empty string: {key} = \"...\""
        )),
    }
}

/// `~/x` → `home/x`; other paths must be absolute (a relative one would depend on where
/// `mount` runs).
fn expand_home(dir: &str, home: Option<&Path>) -> Result<PathBuf, String> {
    let path = match (dir.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        (Some(_), None) => {
            return Err(
                "mountpoint starts with ~/ but HOME is not set; write the absolute path".into(),
            )
        }
        (None, _) => PathBuf::from(dir),
    };
    if !path.is_absolute() {
        return Err(format!(
            "mountpoint {dir:?} is relative; write an absolute path, or one under ~/"
        ));
    }
    Ok(path)
}

/// The option `key = value` of an entry, checked against `mount`'s flags: `None` for a
/// switch that is off.
fn option_value(
    command: &clap::Command,
    key: &str,
    value: Scalar,
) -> Result<Option<(String, Option<String>)>, String> {
    if key == "foreground" {
        return Err(
            "foreground is not saved: it is how one mount runs (s3rolefs mount NAME --foreground; a login unit adds it); remove the line".into(),
        );
    }
    let Some(takes_value) = mount_flag_takes_value(command, &key.replace('_', "-")) else {
        return Err(format!(
            "unknown option {key:?}; the options are the flags of `s3rolefs mount --help` without the dashes, with _ or -: region = \"eu-west-1\", write_back = true"
        ));
    };
    match (takes_value, value) {
        (true, Scalar::Text(text)) => Ok(Some((key.to_string(), Some(text)))),
        (false, Scalar::Switch(true)) => Ok(Some((key.to_string(), None))),
        (false, Scalar::Switch(false)) => Ok(None),
        (true, Scalar::Switch(_)) => Err(format!(
            "{key} takes a value, not true/false: {key} = \"...\" (see s3rolefs mount --help)"
        )),
        (false, Scalar::Text(_)) => {
            Err(format!("{key} is a switch: write {key} = true (or false)"))
        }
    }
}

mod edit;
#[cfg(test)]
mod tests;
