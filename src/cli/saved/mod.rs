//! Saved mounts: `s3rolefs add NAME BUCKET[:PREFIX] DIR [options]`, `remove NAME`, `list`,
//! `mount NAME`, `mount --all`, `unmount NAME`, `unmount --all`.
//!
//! A saved mount is nothing but a `mount` command line kept under a name (see `file`):
//! `mount NAME [flags]` becomes `mount BUCKET DIR <saved options as flags> [flags]` before
//! anything else happens, so it mounts, daemonizes and reports exactly as the long form
//! does, and a flag given on the command line wins over the saved one (the last wins).
//!
//! What is mounted comes from the mounts themselves: the control sockets
//! (`mount::control::query_all`) and, for a mount this user cannot ask, mountinfo.
//!
//! - `file`: `mounts.toml`, read with file:line errors and rewritten keeping the rest.
//! - `args`: command-line words ↔ options: what `mount NAME` carries over, what `add` saves.

mod args;
pub mod file;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;

use super::Cli;
use crate::mount::{control, preflight};
use args::{command_line, first_line, flags_of, options_of};
use file::{check_name, MountsFile, SavedMount};

/// The saved mounts of this user (root: the machine's), from the default file.
pub fn open() -> Result<MountsFile, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let path = crate::config::saved_mounts_file(&env, crate::private_dir::euid())
        .ok_or_else(|| file::SavedError::NoHome.to_string())?;
    let home = env("HOME").map(PathBuf::from);
    MountsFile::load(&path, home.as_deref()).map_err(|e| e.to_string())
}

/// `mount NAME [flags]` (`arguments` from `mount` on) as the full `s3rolefs mount BUCKET
/// DIR ...` command line.
pub fn expand(name: &str, arguments: &[OsString]) -> Result<Vec<OsString>, String> {
    let file = open()?;
    let mount = file.get(name).map_err(|e| e.to_string())?;
    Ok(command_line(mount, flags_of(arguments)))
}

/// `mount --all [flags]`: every saved mount not mounted yet, one after the other, each as
/// `s3rolefs mount NAME [flags]` in the background; one line per mount. Fails if any failed.
pub fn mount_all(arguments: &[OsString], foreground: bool) -> Result<(), String> {
    if foreground {
        return Err("--all mounts in the background; for one mount in the foreground: s3rolefs mount NAME --foreground".into());
    }
    let file = open()?;
    if file.mounts.is_empty() {
        println!("no saved mounts in {}", file.path.display());
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut failed = Vec::new();
    for mount in &file.mounts {
        if is_mounted(&mount.mountpoint) {
            println!(
                "{}: already mounted on {}",
                mount.name,
                mount.mountpoint.display()
            );
            continue;
        }
        let out = Command::new(&exe)
            .arg("mount")
            .arg(&mount.name)
            .args(flags_of(arguments))
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        if out.status.success() {
            println!(
                "{}: mounted {} on {}",
                mount.name,
                mount.source,
                mount.mountpoint.display()
            );
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
                eprintln!(
                    "s3rolefs: {}: {}",
                    mount.name,
                    line.trim_start_matches("s3rolefs: ")
                );
            }
            failed.push(mount.name.as_str());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("not mounted: {} (see above)", failed.join(", ")))
    }
}

/// What `unmount ARG` unmounts: the saved mount named ARG (a bare name, not a path), else
/// the directory ARG.
pub fn unmount_target(arg: &Path) -> Result<PathBuf, String> {
    let Some(name) = arg.to_str().filter(|a| check_name(a).is_ok()) else {
        return Ok(arg.to_path_buf());
    };
    match open() {
        Ok(file) => Ok(file
            .get(name)
            .map_or_else(|_| arg.to_path_buf(), |m| m.mountpoint.clone())),
        // A directory of that name is still a directory; else the file's error is the news.
        Err(_) if arg.is_dir() => Ok(arg.to_path_buf()),
        Err(e) => Err(e),
    }
}

/// `unmount --all`: every saved mount that is mounted.
pub fn unmount_all(lazy: bool) -> Result<(), String> {
    let file = open()?;
    let mut failed = Vec::new();
    for mount in file.mounts.iter().filter(|m| is_mounted(&m.mountpoint)) {
        match super::unmount::unmount_and_wait(&mount.mountpoint, lazy) {
            Ok(()) => println!("{}: unmounted {}", mount.name, mount.mountpoint.display()),
            Err(e) => {
                eprintln!("s3rolefs: {}: {e}", mount.name);
                failed.push(mount.name.as_str());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("still mounted: {} (see above)", failed.join(", ")))
    }
}

fn is_mounted(dir: &Path) -> bool {
    let dir = super::status::without_touching(dir);
    preflight::mount_type_of(&dir).is_some_and(|t| t.starts_with("fuse"))
}

/// `list`: every saved mount, mounted or not, its state and whether it mounts at login.
pub fn list() -> Result<(), String> {
    let file = open()?;
    if file.mounts.is_empty() {
        println!(
            "no saved mounts in {}; save one with: s3rolefs add NAME BUCKET[:PREFIX] DIR",
            file.path.display()
        );
        return Ok(());
    }
    let statuses: Vec<control::MountStatus> = control::query_all()
        .into_iter()
        .filter_map(|answer| answer.outcome.ok())
        .collect();
    let mut rows = vec![[
        "NAME".to_string(),
        "BUCKET".to_string(),
        "MOUNT POINT".to_string(),
        "STATE".to_string(),
        "AT LOGIN".to_string(),
    ]];
    for mount in &file.mounts {
        let dir = super::status::without_touching(&mount.mountpoint);
        let state = match statuses.iter().find(|s| Path::new(&s.mountpoint) == dir) {
            Some(status) => format!("mounted (pid {})", status.pid),
            None if is_mounted(&dir) => "mounted (no status)".to_string(),
            None => "not mounted".to_string(),
        };
        rows.push([
            mount.name.clone(),
            mount.source.clone(),
            mount.mountpoint.display().to_string(),
            state,
            super::login::state(&mount.name),
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(())
}

/// `add NAME SOURCE DIR [options]`: checks the whole mount command line it stands for (as
/// `mount` would, short of mounting), then saves it.
pub fn add(name: String, source: String, dir: &Path, words: &[OsString]) -> Result<(), String> {
    check_name(&name).map_err(|e| e.to_string())?;
    let mountpoint = std::path::absolute(dir)
        .map_err(|e| format!("cannot make {} absolute: {e}", dir.display()))?;
    let options = options_of(words)?;
    if options
        .iter()
        .any(|(n, _)| n.replace('-', "_") == "foreground")
    {
        return Err("foreground is not saved; mount with: s3rolefs mount NAME --foreground".into());
    }
    let mount = SavedMount {
        name,
        source,
        mountpoint,
        options,
        line: 0,
    };
    let argv = command_line(&mount, Vec::new());
    let parsed = Cli::try_parse_from(&argv).map_err(|e| first_line(&e.to_string()))?;
    if let super::Command::Mount(args) = parsed.command {
        super::mount_options(args)
            .and_then(|options| {
                crate::config::MountConfig::build(options, |k| std::env::var(k).ok())
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| format!("not saved: {e}"))?;
    }
    let mut file = open()?;
    let summary = format!(
        "saved {}: {} on {} ({}); mount it with: s3rolefs mount {}",
        mount.name,
        mount.source,
        mount.mountpoint.display(),
        file.path.display(),
        mount.name
    );
    if !mount.mountpoint.is_dir() {
        eprintln!(
            "note: {} is not a directory yet; create it before mounting (mkdir -p {})",
            mount.mountpoint.display(),
            mount.mountpoint.display()
        );
    }
    file.add(mount).map_err(|e| e.to_string())?;
    file.save().map_err(|e| e.to_string())?;
    println!("{summary}");
    Ok(())
}

/// `remove NAME`: takes the entry out of the file (a mount that is up stays up).
pub fn remove(name: &str) -> Result<(), String> {
    let mut file = open()?;
    let mount = file.remove(name).map_err(|e| e.to_string())?;
    file.save().map_err(|e| e.to_string())?;
    println!("removed {name} from {}", file.path.display());
    if is_mounted(&mount.mountpoint) {
        println!(
            "{} stays mounted; unmount it with: s3rolefs unmount {}",
            mount.mountpoint.display(),
            mount.mountpoint.display()
        );
    }
    if super::login::state(name) != "-" {
        println!("its login unit stays; remove it with: s3rolefs disable {name}");
    }
    Ok(())
}
