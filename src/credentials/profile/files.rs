//! Where the shared config and credentials files are, and reading them, as
//! `file-location-tests.json` defines it for Linux: `AWS_CONFIG_FILE` else `~/.aws/config`,
//! `AWS_SHARED_CREDENTIALS_FILE` else `~/.aws/credentials`, a leading `~` meaning the home
//! directory. A missing file is no error (most machines have neither); an unreadable or
//! malformed one is, naming the file and the fix.

use std::ffi::CStr;
use std::path::{Path, PathBuf};

use super::parser::{parse, FileKind, ProfileSet};
use crate::credentials::{CredentialsError, ProviderContext};

const SOURCE: &str = "profile";

/// The two files a profile set is read from. `None` when no home directory is known and
/// the variable naming the file is unset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileLocations {
    pub config: Option<PathBuf>,
    pub credentials: Option<PathBuf>,
}

impl FileLocations {
    /// The files `ctx` points at.
    pub fn resolve(ctx: &ProviderContext) -> Self {
        let home = home_dir(ctx);
        let locate = |var: &str, default: &str| match ctx.var(var) {
            Some(path) => expand_tilde(&path, home.as_deref()),
            None => home.as_ref().map(|h| h.join(".aws").join(default)),
        };
        FileLocations {
            config: locate("AWS_CONFIG_FILE", "config"),
            credentials: locate("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        }
    }

    /// "~/.aws/config and ~/.aws/credentials", for error messages that tell users where we
    /// looked.
    pub fn describe(&self) -> String {
        let show = |p: &Option<PathBuf>, what: &str| match p {
            Some(p) => p.display().to_string(),
            None => format!("no {what} file (HOME is unset)"),
        };
        format!(
            "{} and {}",
            show(&self.config, "config"),
            show(&self.credentials, "credentials")
        )
    }

    /// Reads and merges both files (config first, so credentials win).
    pub fn load(&self) -> Result<ProfileSet, CredentialsError> {
        let mut set = ProfileSet::default();
        for (path, kind) in [
            (&self.config, FileKind::Config),
            (&self.credentials, FileKind::Credentials),
        ] {
            let Some(path) = path else { continue };
            let Some(text) = read_optional(path)? else {
                continue;
            };
            let sections = parse(&text).map_err(|e| {
                CredentialsError::invalid(
                    SOURCE,
                    format!(
                        "{} {e}; fix that line (format: \
                         https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-files.html)",
                        path.display()
                    ),
                )
            })?;
            set.merge_file(&sections, kind);
        }
        Ok(set)
    }
}

/// The home directory: `HOME`, else the password database — a mount started from
/// `/etc/fstab` or systemd often has no `HOME`, yet root's `~/.aws` is where an admin put
/// the profile.
pub fn home_dir(ctx: &ProviderContext) -> Option<PathBuf> {
    ctx.home().or_else(passwd_home)
}

fn passwd_home() -> Option<PathBuf> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives the use of `pwd.pw_dir`,
    // which is copied out before returning.
    let rc = unsafe {
        libc::getpwuid_r(
            libc::getuid(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_dir.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_dir points to a NUL-terminated string in `buf`.
    let dir = unsafe { CStr::from_ptr(pwd.pw_dir) };
    let dir = dir.to_str().ok()?;
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// `~` and `~/x` are the home directory; `~user/x` is left alone, as the SDKs do.
fn expand_tilde(path: &str, home: Option<&Path>) -> Option<PathBuf> {
    match (path.strip_prefix('~'), home) {
        (Some(""), Some(home)) => Some(home.to_path_buf()),
        (Some(rest), Some(home)) if rest.starts_with('/') => {
            Some(home.join(rest.trim_start_matches('/')))
        }
        (Some(rest), None) if rest.is_empty() || rest.starts_with('/') => None,
        _ => Some(PathBuf::from(path)),
    }
}

/// The file's text, `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, CredentialsError> {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| {
            CredentialsError::invalid(
                SOURCE,
                format!(
                    "{} is not UTF-8 text; rewrite it as plain text",
                    path.display()
                ),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CredentialsError::invalid(
            SOURCE,
            format!(
                "cannot read {}: {e}; fix its permissions or point the variable naming it \
                 (AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE) elsewhere",
                path.display()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ctx(vars: &[(&str, &str)]) -> ProviderContext {
        ProviderContext::with_vars(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        )
    }

    /// `~/` in a variable is the home directory.
    #[test]
    fn tilde_in_variable_expands_to_home() {
        let loc =
            FileLocations::resolve(&ctx(&[("HOME", "/h"), ("AWS_CONFIG_FILE", "~/cfg/config")]));
        assert_eq!(loc.config, Some(PathBuf::from("/h/cfg/config")));
        assert_eq!(loc.credentials, Some(PathBuf::from("/h/.aws/credentials")));
    }

    /// Missing files are an empty set, not an error.
    #[test]
    fn missing_files_load_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        let set = FileLocations::resolve(&ctx(&[("HOME", home)]))
            .load()
            .unwrap();
        assert!(set.is_empty());
    }

    /// A path that cannot be read (here: a directory) is an error naming the path.
    #[test]
    fn unreadable_file_is_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let err =
            FileLocations::resolve(&ctx(&[("HOME", "/nonexistent"), ("AWS_CONFIG_FILE", path)]))
                .load()
                .unwrap_err();
        assert!(matches!(err, CredentialsError::Invalid { .. }));
        assert!(err.to_string().contains(path));
    }

    /// A malformed file is an error naming the file and the line.
    #[test]
    fn malformed_file_names_path_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, "[profile a]\nbroken line").unwrap();
        let err = FileLocations::resolve(&ctx(&[
            ("HOME", "/nonexistent"),
            ("AWS_CONFIG_FILE", path.to_str().unwrap()),
        ]))
        .load()
        .unwrap_err()
        .to_string();
        assert!(err.contains("config line 2"), "{err}");
    }
}
