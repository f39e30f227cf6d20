//! Writing `mounts.toml` back: `add` appends a table, `remove` takes one out with the
//! comments that belong to it, both on the parsed document, so everything else (other
//! entries, comments, order, spacing) is written back as it was read; `save` replaces the
//! file through a temporary file and a rename, so a crash leaves the old file or the new
//! one, never half of one.

use std::path::Path;

use toml_edit::{DocumentMut, Item};

use super::{check_name, line_of, MountsFile, SavedError, SavedMount, BUCKET, HEADER, MOUNTPOINT};

impl MountsFile {
    /// Adds `mount` at the end of the file (written by [`MountsFile::save`]).
    pub fn add(&mut self, mount: SavedMount) -> Result<(), SavedError> {
        check_name(&mount.name)?;
        if let Ok(existing) = self.get(&mount.name) {
            return Err(SavedError::Exists {
                name: mount.name.clone(),
                path: self.path.clone(),
                line: existing.line,
            });
        }
        let mut document = self.document()?;
        let mut table = toml_edit::Table::new();
        table.insert(BUCKET, toml_edit::value(mount.source.as_str()));
        table.insert(
            MOUNTPOINT,
            toml_edit::value(mount.mountpoint.to_string_lossy().as_ref()),
        );
        for (name, value) in &mount.options {
            let item = match value {
                Some(v) => toml_edit::value(v.as_str()),
                None => toml_edit::value(true),
            };
            table.insert(name, item);
        }
        if self.text.trim().is_empty() {
            document = DocumentMut::new();
            table.decor_mut().set_prefix(format!("{HEADER}\n"));
        } else {
            table.decor_mut().set_prefix("\n");
        }
        document.insert(&mount.name, Item::Table(table));
        self.text = document.to_string();
        self.mounts.push(mount);
        Ok(())
    }

    /// Removes the mount `name` and the comments above it (written by [`MountsFile::save`]).
    pub fn remove(&mut self, name: &str) -> Result<SavedMount, SavedError> {
        let index = self
            .mounts
            .iter()
            .position(|m| m.name == name)
            .ok_or_else(|| self.unknown(name))?;
        let mut document = self.document()?;
        let next = {
            let mut keys = document.as_table().iter().map(|(k, _)| k.to_string());
            keys.by_ref().find(|k| k == name);
            keys.next()
        };
        // The comments above the table that a blank line keeps apart (the file's own
        // header) are not the entry's: they stay, in front of whatever follows.
        let kept = document
            .get(name)
            .and_then(Item::as_table)
            .and_then(|t| t.decor().prefix())
            .and_then(|p| p.as_str())
            .and_then(|p| p.rfind("\n\n").map(|i| p[..i + 2].to_string()))
            .unwrap_or_default();
        document.remove(name);
        if !kept.is_empty() {
            let join = |after: &str| {
                if after.starts_with('\n') {
                    format!("{}\n{after}", kept.trim_end_matches('\n'))
                } else {
                    format!("{kept}{after}")
                }
            };
            match next.and_then(|k| document.get_mut(&k)?.as_table_mut()) {
                Some(table) => {
                    let after = table
                        .decor()
                        .prefix()
                        .and_then(|p| p.as_str())
                        .unwrap_or("");
                    let prefix = join(after);
                    table.decor_mut().set_prefix(prefix);
                }
                None => {
                    let trailing = join(document.trailing().as_str().unwrap_or(""));
                    document.set_trailing(trailing);
                }
            }
        }
        self.text = document.to_string();
        Ok(self.mounts.remove(index))
    }

    fn document(&self) -> Result<DocumentMut, SavedError> {
        // Parsed once already by `parse`; an error here is not expected.
        self.text
            .parse::<DocumentMut>()
            .map_err(|e| SavedError::Entry {
                path: self.path.clone(),
                line: line_of(&self.text, e.span().map_or(0, |r| r.start)),
                message: e.message().to_string(),
            })
    }

    /// The text as it is now.
    #[cfg(test)]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Writes the file: its directory is made if missing; a symlink at the path (a dotfiles
    /// repository) is written through, not replaced; a new file is 0644 (it holds no secret),
    /// an existing one keeps its mode.
    pub fn save(&self) -> Result<(), SavedError> {
        let failed = |path: &Path, e: std::io::Error| SavedError::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let target = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        let dir = target.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
        let mode = std::fs::metadata(&target)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
            .unwrap_or(0o644);
        let file_name = target.file_name().map_or_else(
            || "mounts.toml".into(),
            |n| n.to_string_lossy().into_owned(),
        );
        let temporary = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
        let written = write_new(&temporary, self.text.as_bytes(), mode)
            .and_then(|()| std::fs::rename(&temporary, &target));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(failed(&target, e));
        }
        Ok(())
    }
}

/// Creates `path` (never an existing file, never through a symlink), writes `bytes` and
/// makes them durable.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
