//! The systemd unit of a saved mount, made from the packaged template
//! (`packaging/systemd/s3rolefs@.service`), so a login mount and a packaged one keep the
//! same readiness (`Type=notify`: the mount says `READY=1` once usable), restarts, stop
//! timeout and state directory. What changes: the mount is named, not given by an
//! environment file (`ExecStart=s3rolefs mount NAME --foreground`, `ExecStop=s3rolefs
//! unmount NAME`), the saved-mounts file is pinned (the manager's environment may differ from
//! the shell's), and a user unit drops what only the system manager has
//! (`network-online.target`, `remote-fs.target`) and is wanted by `default.target`, which a
//! user's manager reaches at login and leaves at logout.

use std::path::Path;

/// The packaged template.
const TEMPLATE: &str = include_str!("../../../packaging/systemd/s3rolefs@.service");

/// Which manager runs the unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The user's own manager (`systemctl --user`): mounts at login, unmounts at logout.
    User,
    /// The system manager (root): mounts at boot.
    System,
}

impl Scope {
    /// The target whose `.wants/` enables the unit.
    pub fn wanted_by(self) -> &'static str {
        match self {
            Scope::User => "default.target",
            Scope::System => "remote-fs.target",
        }
    }
}

/// What a unit is made of.
pub struct UnitSpec<'a> {
    pub name: &'a str,
    pub source: &'a str,
    pub mountpoint: &'a Path,
    /// The `s3rolefs` binary (this one).
    pub exe: &'a Path,
    pub mounts_file: &'a Path,
    pub scope: Scope,
}

/// The unit's file name: `s3rolefs-NAME.service` (a saved mount's name is plain, see
/// `saved::file::check_name`).
pub fn unit_name(name: &str) -> String {
    format!("s3rolefs-{name}.service")
}

/// The unit text of `spec`, from [`TEMPLATE`].
pub fn unit_text(spec: &UnitSpec) -> String {
    let exe = exec_word(&spec.exe.to_string_lossy());
    let (where_, when) = match spec.scope {
        Scope::User => ("systemctl --user", "while this user is logged in"),
        Scope::System => ("systemctl", "from boot"),
    };
    let mut out = format!(
        "# Written by `s3rolefs enable {name}`: mounts the saved mount {name} (see `s3rolefs list`)\n\
         # {when}. `s3rolefs disable {name}` removes it; `{where_} status {unit}` shows it.\n",
        name = spec.name,
        unit = unit_name(spec.name),
    );
    let mut section = "";
    for line in TEMPLATE.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed;
            out.push_str(line);
            out.push('\n');
            continue;
        }
        // The template's comments speak of its own form (instances, env files).
        if section.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let key = trimmed.split_once('=').map_or(trimmed, |(k, _)| k);
        let line = match (key, spec.scope) {
            ("Description", _) => format!(
                "Description=s3rolefs mount {}: {} on {}",
                spec.name,
                escape_specifiers(spec.source),
                escape_specifiers(&spec.mountpoint.to_string_lossy())
            ),
            ("ConditionPathIsDirectory", _) => format!(
                "ConditionPathIsDirectory={}",
                escape_specifiers(&spec.mountpoint.to_string_lossy())
            ),
            ("EnvironmentFile", _) => format!(
                "Environment={}",
                exec_word(&format!(
                    "{}={}",
                    crate::config::MOUNTS_FILE_ENV,
                    spec.mounts_file.to_string_lossy()
                ))
            ),
            ("ExecStart", _) => format!("ExecStart={exe} mount {} --foreground", spec.name),
            ("ExecStop", _) => format!("ExecStop={exe} unmount {}", spec.name),
            ("Wants" | "After" | "Before", Scope::User) => continue,
            ("WantedBy", scope) => format!("WantedBy={}", scope.wanted_by()),
            _ => line.to_string(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `%` starts a specifier in every unit setting: `%%` is a plain one.
fn escape_specifiers(text: &str) -> String {
    text.replace('%', "%%")
}

/// One word of a command line or an `Environment=` assignment: specifiers and variables
/// escaped, quoted when it holds a blank, a quote or a backslash.
fn exec_word(text: &str) -> String {
    let escaped = escape_specifiers(text).replace('$', "$$");
    if escaped
        .chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '\\' || c == ';')
    {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(scope: Scope) -> UnitSpec<'static> {
        UnitSpec {
            name: "photos",
            source: "my-bucket:photos/",
            mountpoint: Path::new("/home/u/Photos"),
            exe: Path::new("/usr/bin/s3rolefs"),
            mounts_file: Path::new("/home/u/.config/s3rolefs/mounts.toml"),
            scope,
        }
    }

    /// A user unit: ready when mounted, restarted on failure, unmounted at logout, wanted
    /// by the login's default.target, nothing of the system manager's targets.
    #[test]
    fn user_unit_mounts_at_login_and_unmounts_at_logout() {
        let unit = unit_text(&spec(Scope::User));
        for line in [
            "Description=s3rolefs mount photos: my-bucket:photos/ on /home/u/Photos",
            "ConditionPathIsDirectory=/home/u/Photos",
            "Type=notify",
            "Environment=S3ROLEFS_MOUNTS_FILE=/home/u/.config/s3rolefs/mounts.toml",
            "ExecStart=/usr/bin/s3rolefs mount photos --foreground",
            "ExecStop=/usr/bin/s3rolefs unmount photos",
            "Restart=on-failure",
            "StateDirectory=s3rolefs",
            "WantedBy=default.target",
        ] {
            assert!(unit.lines().any(|l| l == line), "{line:?} missing:\n{unit}");
        }
        for gone in ["network-online", "remote-fs", "EnvironmentFile", "%i", "%f"] {
            assert!(!unit.contains(gone), "{gone:?} left:\n{unit}");
        }
        assert!(
            unit.starts_with("# Written by `s3rolefs enable photos`"),
            "{unit}"
        );
        assert_eq!(
            unit.lines().filter(|l| l.starts_with('#')).count(),
            2,
            "{unit}"
        );
    }

    /// A system unit keeps the template's ordering after the network, before remote-fs.
    #[test]
    fn system_unit_keeps_the_network_ordering() {
        let unit = unit_text(&spec(Scope::System));
        for line in [
            "Wants=network-online.target",
            "After=network-online.target",
            "Before=remote-fs.target",
            "WantedBy=remote-fs.target",
            "ExecStart=/usr/bin/s3rolefs mount photos --foreground",
        ] {
            assert!(unit.lines().any(|l| l == line), "{line:?} missing:\n{unit}");
        }
    }

    /// Paths with blanks, `%` and `$` reach systemd as they are.
    #[test]
    fn odd_paths_are_escaped() {
        let mut s = spec(Scope::User);
        s.exe = Path::new("/opt/my tools/s3rolefs");
        s.mountpoint = Path::new("/home/u/100% $data");
        s.mounts_file = Path::new("/home/u/my config/mounts.toml");
        let unit = unit_text(&s);
        assert!(
            unit.contains("ExecStart=\"/opt/my tools/s3rolefs\" mount photos --foreground"),
            "{unit}"
        );
        assert!(
            unit.contains("ConditionPathIsDirectory=/home/u/100%% $data"),
            "{unit}"
        );
        assert!(
            unit.contains("Environment=\"S3ROLEFS_MOUNTS_FILE=/home/u/my config/mounts.toml\""),
            "{unit}"
        );
    }
}
