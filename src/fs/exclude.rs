//! Names kept local only (`--exclude`): what desktops leave in every folder they open
//! (`.DS_Store`, `Thumbs.db`, an office program's `.~lock.NAME#`) has no business in the
//! bucket. A file created under a matching name lives in the mount's local copy while the
//! mount lives: it lists, opens, reads, writes, renames among matching names and goes on
//! unlink, but never reaches S3 — no PUT, no copy, no delete — and is gone at unmount.
//!
//! Patterns are shell globs (`fnmatch(3)`: `*`, `?`, `[...]`). A pattern without `/` is
//! matched against a file's name, anywhere in the tree; one with `/` against its path from
//! the mount's root (`build/*.o`), where `*` does not cross a `/`. Several patterns may
//! share one `--exclude` separated by `|`, so a saved mount can hold them in one line.
//!
//! What it never does: hide or change an object that S3 holds under a matching name (it
//! shows and reads like any other; an edit of it stays local), or take part in a rename
//! between a matching name and another (`EXDEV`: `mv` copies then, as between two disks).

use std::ffi::CString;

/// The compiled patterns of one mount.
#[derive(Clone, Debug, Default)]
pub struct Exclude {
    patterns: Vec<CString>,
}

/// A pattern that cannot be one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExcludeError {
    #[error("--exclude {0:?} holds a NUL byte; give shell patterns such as '.DS_Store|Thumbs.db'")]
    Nul(String),
    #[error("--exclude {0:?} ends in '/': patterns name files (a directory's files: 'dir/*')")]
    Directory(String),
}

impl Exclude {
    /// The patterns of every `--exclude` given, each split at `|` (empty parts dropped).
    pub fn new<S: AsRef<str>>(specs: &[S]) -> Result<Exclude, ExcludeError> {
        let mut patterns = Vec::new();
        for spec in specs {
            for pattern in spec.as_ref().split('|').filter(|p| !p.is_empty()) {
                if pattern.ends_with('/') {
                    return Err(ExcludeError::Directory(pattern.to_string()));
                }
                let pattern = pattern.strip_prefix('/').unwrap_or(pattern);
                patterns.push(
                    CString::new(pattern).map_err(|_| ExcludeError::Nul(pattern.to_string()))?,
                );
            }
        }
        Ok(Exclude { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when the file at `path` (from the mount's root, without a leading `/`) is to
    /// stay local.
    pub fn matches(&self, path: &str) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        let name = path.rsplit('/').next().unwrap_or(path);
        let (Ok(path_c), Ok(name_c)) = (CString::new(path), CString::new(name)) else {
            return false;
        };
        self.patterns.iter().any(|pattern| {
            let (subject, flags) = match pattern.as_bytes().contains(&b'/') {
                true => (&path_c, libc::FNM_PATHNAME),
                false => (&name_c, 0),
            };
            // SAFETY: both are NUL-terminated strings that live across the call.
            unsafe { libc::fnmatch(pattern.as_ptr(), subject.as_ptr(), flags) == 0 }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names match anywhere, paths from the root; `|` separates patterns.
    #[test]
    fn names_anywhere_paths_from_the_root() {
        let ex = Exclude::new(&[".DS_Store|Thumbs.db", ".~lock.*#", "build/*.o"]).unwrap();
        assert!(ex.matches(".DS_Store"));
        assert!(ex.matches("photos/2024/.DS_Store"));
        assert!(ex.matches("docs/Thumbs.db"));
        assert!(ex.matches("docs/.~lock.report.odt#"));
        assert!(!ex.matches("docs/report.odt"));
        assert!(!ex.matches("docs/.DS_Store.txt"));
        assert!(ex.matches("build/main.o"));
        assert!(!ex.matches("build/sub/main.o"), "* does not cross /");
        assert!(!ex.matches("src/build/main.o"), "a path is from the root");
        assert!(!Exclude::default().matches(".DS_Store"));
    }

    /// What cannot be a pattern is refused with the fix.
    #[test]
    fn bad_patterns_are_refused() {
        assert!(matches!(
            Exclude::new(&["cache/"]),
            Err(ExcludeError::Directory(_))
        ));
        assert!(matches!(Exclude::new(&["a\0b"]), Err(ExcludeError::Nul(_))));
        assert!(Exclude::new(&["||"]).unwrap().is_empty());
    }
}
