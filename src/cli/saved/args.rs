//! The words of a command line and the options they stand for: the flags of a `mount`
//! command line to carry over to a saved mount's, the options `add` is given (as flags or
//! `-o`) in the one option table, and a saved mount as its `mount` command line.

use std::ffi::OsString;

use clap::CommandFactory;

use super::super::mount_helper::{mount_flag, mount_flag_takes_value, OptionError};
use super::super::Cli;
use super::file::SavedMount;

/// A saved mount as `s3rolefs mount BUCKET DIR <its flags> <extra>`.
pub fn command_line(mount: &SavedMount, extra: Vec<OsString>) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["s3rolefs".into(), "mount".into()];
    argv.push(mount.source.clone().into());
    argv.push(mount.mountpoint.clone().into());
    argv.extend(mount.flags().into_iter().map(OsString::from));
    argv.extend(extra);
    argv
}

/// The flags of a `mount` command line (`arguments` from `mount` on): without its
/// positional arguments and without `--all`.
pub fn flags_of(arguments: &[OsString]) -> Vec<OsString> {
    let command = Cli::command();
    let takes_value = |long: &str| {
        command
            .find_subcommand("mount")
            .and_then(|m| m.get_arguments().find(|a| a.get_long() == Some(long)))
            .is_some_and(|a| a.get_action().takes_values())
    };
    let mut flags = Vec::new();
    let mut rest = arguments.iter().skip(1);
    while let Some(arg) = rest.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            break;
        }
        if text == "--all" {
            continue;
        }
        if let Some(long) = text.strip_prefix("--") {
            flags.push(arg.clone());
            if !long.contains('=') && takes_value(long) {
                flags.extend(rest.next().cloned());
            }
        } else if text.starts_with('-') && text.len() > 1 {
            flags.push(arg.clone());
        }
    }
    flags
}

/// The options `add` was given, as `--flag [value]` or `-o name=value,...` words, as
/// (name, value) pairs in the one option table.
pub fn options_of(words: &[OsString]) -> Result<Vec<(String, Option<String>)>, String> {
    let command = Cli::command();
    let mut options = Vec::new();
    let mut rest = words.iter().map(|w| w.to_string_lossy().into_owned());
    while let Some(word) = rest.next() {
        let mut push = |name: &str, value: Option<String>| -> Result<(), String> {
            let name = name.replace('-', "_");
            mount_flag(&name, value.as_deref()).map_err(|e| match e {
                OptionError::Unknown(_) => format!(
                    "{e}; the options are the flags of `s3rolefs mount --help` (--region eu-west-1, --write-back) or the same as -o region=eu-west-1,write_back"
                ),
                e => e.to_string(),
            })?;
            options.push((name, value));
            Ok(())
        };
        if word == "-o" {
            let list = rest
                .next()
                .ok_or("-o needs options: -o region=eu-west-1,write_back")?;
            for option in list.split(',').filter(|o| !o.is_empty()) {
                match option.split_once('=') {
                    Some((n, v)) => push(n, Some(v.to_string()))?,
                    None => push(option, None)?,
                }
            }
        } else if let Some(long) = word.strip_prefix("--") {
            match long.split_once('=') {
                Some((n, v)) => push(n, Some(v.to_string()))?,
                None => {
                    let takes = mount_flag_takes_value(&command, long);
                    let value = if takes == Some(true) {
                        Some(rest.next().ok_or(format!("--{long} needs a value"))?)
                    } else {
                        None
                    };
                    push(long, value)?;
                }
            }
        } else {
            return Err(format!(
                "unexpected {word:?} after the mount point; options are --flags of `s3rolefs mount --help` or -o name=value"
            ));
        }
    }
    Ok(options)
}

/// The first line of a clap error, without its `error: ` prefix.
pub fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or(text);
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<OsString> {
        w.iter().map(OsString::from).collect()
    }

    /// The name goes, every flag stays where it was, with its value.
    #[test]
    fn flags_of_a_mount_command_line() {
        let flags = flags_of(&words(&[
            "mount",
            "--profile",
            "work",
            "work",
            "--foreground",
            "--region=eu-west-1",
            "-f",
            "--all",
        ]));
        assert_eq!(
            flags,
            words(&[
                "--profile",
                "work",
                "--foreground",
                "--region=eu-west-1",
                "-f"
            ])
        );
    }

    /// `add` takes flags, `--flag=value` and `-o` lists alike, all into one table.
    #[test]
    fn add_options_in_every_spelling() {
        let options = options_of(&words(&[
            "--region",
            "eu-west-1",
            "--write-back",
            "--cache-dir-size=10G",
            "-o",
            "allow_other,role_arn=arn:aws:iam::123456789012:role/r",
        ]))
        .unwrap();
        let names: Vec<&str> = options.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "region",
                "write_back",
                "cache_dir_size",
                "allow_other",
                "role_arn"
            ]
        );
        assert_eq!(
            options[4].1.as_deref(),
            Some("arn:aws:iam::123456789012:role/r")
        );
        let err = options_of(&words(&["--regoin", "x"])).unwrap_err();
        assert!(err.contains("unknown mount option \"regoin\""), "{err}");
        let err = options_of(&words(&["stray"])).unwrap_err();
        assert!(err.contains("after the mount point"), "{err}");
    }
}
