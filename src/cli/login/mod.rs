//! Mount at login: `s3rolefs enable NAME [--system] [--print]` writes the systemd unit of a
//! saved mount (see `unit`) and enables it; `disable NAME [--system]` takes it away.
//!
//! A user unit goes to `$XDG_CONFIG_HOME/systemd/user/` (else `~/.config/systemd/user/`),
//! where the user's manager looks; a system unit (`--system`, root) to `/etc/systemd/system/`.
//! `systemctl` is asked to reload and enable only when a manager is reachable (a user's
//! exists only in a login session with systemd): otherwise the unit is written and the one
//! command to run in such a session is printed, never an error.
//!
//! - `unit`: the unit text, from the packaged template.

pub mod unit;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use unit::{unit_name, unit_text, Scope, UnitSpec};

/// `enable NAME`: see the module doc. With `print`, only prints the unit.
pub fn enable(name: &str, system: bool, print: bool) -> Result<(), String> {
    let scope = scope(system, print)?;
    let file = super::saved::open()?;
    let mount = file.get(name).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let text = unit_text(&UnitSpec {
        name,
        source: &mount.source,
        mountpoint: &mount.mountpoint,
        exe: &exe,
        mounts_file: &file.path,
        scope,
    });
    if print {
        print!("{text}");
        return Ok(());
    }
    let dir = unit_dir(scope)?;
    let path = dir.join(unit_name(name));
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&path, &text))
        .map_err(|e| {
            format!(
                "cannot write {}: {e}; check that the directory is yours",
                path.display()
            )
        })?;
    let systemctl = systemctl(scope);
    let unit = unit_name(name);
    if manager_reachable(scope) {
        run(&systemctl, &["daemon-reload"])?;
        run(&systemctl, &["enable", &unit])?;
        println!(
            "wrote {} and enabled it: {name} mounts {}; mount it now with: {} start {unit}",
            path.display(),
            when(scope),
            systemctl.join(" ")
        );
    } else {
        println!(
            "wrote {}; no systemd {} manager is reachable here, so enable it from a login \
             session with: {} enable {unit}",
            path.display(),
            if scope == Scope::User {
                "user"
            } else {
                "system"
            },
            systemctl.join(" ")
        );
    }
    Ok(())
}

/// `disable NAME`: stops and disables the unit when a manager is reachable, and removes
/// it (and the link that enabled it) in any case.
pub fn disable(name: &str, system: bool) -> Result<(), String> {
    let scope = scope(system, false)?;
    let dir = unit_dir(scope)?;
    let unit = unit_name(name);
    let path = dir.join(&unit);
    if !path.exists() {
        println!(
            "{name} has no login unit ({} does not exist)",
            path.display()
        );
        return Ok(());
    }
    let systemctl = systemctl(scope);
    let reachable = manager_reachable(scope);
    if reachable {
        // `--now`: the unit's ExecStop unmounts; a unit left running without its file
        // would be stopped by nobody.
        run(&systemctl, &["disable", "--now", &unit])?;
    }
    let wants = dir.join(format!("{}.wants", scope.wanted_by())).join(&unit);
    for file in [&wants, &path] {
        match std::fs::remove_file(file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", file.display())),
        }
    }
    if reachable {
        run(&systemctl, &["daemon-reload"])?;
    }
    println!(
        "removed {}: {name} no longer mounts {}",
        path.display(),
        when(scope)
    );
    Ok(())
}

/// What `list` shows in its AT LOGIN column for the saved mount `name`.
pub fn state(name: &str) -> String {
    let unit = unit_name(name);
    for scope in [Scope::User, Scope::System] {
        let Ok(dir) = unit_dir(scope) else { continue };
        let enabled = dir
            .join(format!("{}.wants", scope.wanted_by()))
            .join(&unit)
            .exists();
        let suffix = if scope == Scope::System {
            " (system)"
        } else {
            ""
        };
        if enabled {
            return format!("enabled{suffix}");
        }
        if dir.join(&unit).exists() {
            return format!("not enabled{suffix}");
        }
    }
    "-".to_string()
}

fn scope(system: bool, print: bool) -> Result<Scope, String> {
    if !system {
        return Ok(Scope::User);
    }
    if crate::private_dir::euid() != 0 && !print {
        return Err(
            "--system writes to /etc/systemd/system and needs root: sudo s3rolefs enable NAME --system (root's saved mounts are in /etc/s3rolefs/mounts.toml)"
                .into(),
        );
    }
    Ok(Scope::System)
}

fn when(scope: Scope) -> &'static str {
    match scope {
        Scope::User => "at login and unmounts at logout",
        Scope::System => "at boot",
    }
}

/// Where the manager of `scope` reads units written by their administrator.
fn unit_dir(scope: Scope) -> Result<PathBuf, String> {
    if scope == Scope::System {
        return Ok(PathBuf::from("/etc/systemd/system"));
    }
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os("XDG_CONFIG_HOME")
        .and_then(absolute)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(absolute)
                .map(|h| h.join(".config"))
        })
        .map(|config| config.join("systemd/user"))
        .ok_or_else(|| "HOME is not set: no place for user units (~/.config/systemd/user)".into())
}

fn systemctl(scope: Scope) -> Vec<&'static str> {
    match scope {
        Scope::User => vec!["systemctl", "--user"],
        Scope::System => vec!["systemctl"],
    }
}

/// Whether `systemctl` can reach the manager: the system's runs when `/run/systemd/system`
/// exists (sd_booted(3)); a user's when it answers.
fn manager_reachable(scope: Scope) -> bool {
    if !Path::new("/run/systemd/system").is_dir() {
        return false;
    }
    match scope {
        Scope::System => true,
        Scope::User => Command::new("systemctl")
            .args(["--user", "show-environment"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    }
}

fn run(systemctl: &[&str], args: &[&str]) -> Result<(), String> {
    let out = Command::new(systemctl[0])
        .args(&systemctl[1..])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run systemctl: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{} {} failed: {}",
        systemctl.join(" "),
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
            .trim()
            .replace('\n', " ")
    ))
}
