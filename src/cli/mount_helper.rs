//! The mount(8) entry point. `mount -t s3rolefs BUCKET DIR -o OPTIONS` (and an fstab line of
//! type `s3rolefs`) runs `mount.s3rolefs BUCKET DIR [-sfnv] [-o OPTIONS]`, a link to this
//! binary; type `fuse.s3rolefs` goes through `mount.fuse3`, which runs
//! `s3rolefs BUCKET DIR -o OPTIONS`. Both are turned here into `s3rolefs mount BUCKET DIR
//! --flags`, so every flag of `mount` has its `-o` spelling for free: `region=eu-west-1` is
//! `--region eu-west-1`, `allow_other` is `--allow-other` (`_` or `-` alike).
//!
//! The options mount(8) and systemd add for themselves (`_netdev`, `nofail`, `x-systemd.*`,
//! `defaults`, `auto`, `user`, …) are accepted and left to them; `ro` is `--read-only`. Any
//! other option is an error that names it, unless `-s` (sloppy) asks to ignore it. `-f`
//! (fake) checks the options and mounts nothing.

use std::ffi::OsString;

use clap::CommandFactory;

use super::Cli;

/// How mount(8) and mount.fuse3 name us.
const HELPER_NAMES: [&str; 2] = ["mount.s3rolefs", "mount.fuse.s3rolefs"];

/// Options that belong to mount(8), fstab or systemd: accepted, nothing to do here. (`nosuid`
/// and `nodev` are what every s3rolefs mount does anyway; `noatime` too.)
const PASSED_THROUGH: [&str; 30] = [
    "defaults",
    "auto",
    "noauto",
    "user",
    "users",
    "nouser",
    "owner",
    "group",
    "_netdev",
    "nofail",
    "rw",
    "suid",
    "nosuid",
    "dev",
    "nodev",
    "exec",
    "noexec",
    "async",
    "sync",
    "atime",
    "noatime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "diratime",
    "nodiratime",
    "default_permissions",
];

/// The command line to run, from how the process was invoked.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    /// Not a mount(8) call: parse the arguments as they are.
    Plain,
    /// A mount(8) call, as the equivalent `s3rolefs mount ...` arguments; with `fake`
    /// (`-f`) they are only checked, nothing is mounted.
    Mount { argv: Vec<OsString>, fake: bool },
}

/// Recognizes a mount(8) call: the program is `mount.s3rolefs`, or (mount.fuse3's form) its
/// first argument is neither a subcommand nor a flag.
pub fn invocation(args: &[OsString]) -> Result<Invocation, String> {
    let program = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let first = args.get(1).and_then(|a| a.to_str()).unwrap_or("");
    let is_subcommand = Cli::command()
        .get_subcommands()
        .any(|c| c.get_name() == first)
        || first == "help";
    if HELPER_NAMES.contains(&program)
        || (!first.is_empty() && !first.starts_with('-') && !is_subcommand)
    {
        translate(&args[1..])
    } else {
        Ok(Invocation::Plain)
    }
}

/// `SOURCE DIR [-sfnv] [-o OPTIONS]... [-t TYPE] [-N NS]` as `s3rolefs mount` arguments.
fn translate(args: &[OsString]) -> Result<Invocation, String> {
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let (mut sloppy, mut fake) = (false, false);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let Some(text) = arg.to_str() else {
            positional.push(arg.clone());
            continue;
        };
        match text {
            "-o" => {
                let value = rest
                    .next()
                    .and_then(|v| v.to_str())
                    .ok_or("-o needs options")?;
                options.push(value.to_string());
            }
            // The type (`fuse.s3rolefs`) and a mount namespace: nothing for us.
            "-t" | "-N" => {
                rest.next();
            }
            _ if text.starts_with("-o") => options.push(text[2..].to_string()),
            _ if text.starts_with('-') && text.len() > 1 => {
                for flag in text[1..].chars() {
                    match flag {
                        's' => sloppy = true,
                        'f' => fake = true,
                        // No mtab to write; verbose is what errors already are.
                        'n' | 'v' => {}
                        other => return Err(format!("unknown mount helper flag -{other}")),
                    }
                }
            }
            _ => positional.push(arg.clone()),
        }
    }
    let [source, mountpoint] = <[OsString; 2]>::try_from(positional).map_err(|got| {
        format!(
            "mount helper: expected BUCKET[:PREFIX] and a mount point, got {} arguments",
            got.len()
        )
    })?;
    let mut argv = vec![
        OsString::from("s3rolefs"),
        OsString::from("mount"),
        source,
        mountpoint,
    ];
    for option in options
        .iter()
        .flat_map(|o| o.split(','))
        .filter(|o| !o.is_empty())
    {
        match flag_for(option) {
            Ok(flag) => argv.extend(flag.into_iter().map(OsString::from)),
            Err(_) if sloppy => log::debug!("ignoring mount option {option:?} (-s)"),
            Err(e) => return Err(e),
        }
    }
    Ok(Invocation::Mount { argv, fake })
}

/// The `s3rolefs mount` arguments of one `-o` option (none for mount(8)'s own).
fn flag_for(option: &str) -> Result<Vec<String>, String> {
    let (name, value) = match option.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (option, None),
    };
    if value.is_none() && PASSED_THROUGH.contains(&name)
        || name.starts_with("x-")
        || name == "comment"
        || (name == "user" && value.is_some())
    {
        return Ok(Vec::new());
    }
    if name == "ro" && value.is_none() {
        return Ok(vec!["--read-only".into()]);
    }
    mount_flag(name, value).map_err(|e| match e {
        OptionError::Unknown(_) => format!(
            "{e}; the options are the flags of `s3rolefs mount --help` without the dashes \
             (region=eu-west-1, allow_other, …) and mount(8)'s own"
        ),
        e => e.to_string(),
    })
}

/// Why a `name[=value]` option is not one of `mount`'s flags.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("unknown mount option {0:?}")]
    Unknown(String),
    #[error("mount option {0:?} needs a value: {0}=...")]
    NeedsValue(String),
    #[error("mount option {0:?} takes no value")]
    TakesNoValue(String),
}

/// The one option table: the `s3rolefs mount` flag of option `name` (`region`, `allow_other`,
/// `-` or `_` alike) with its value, as arguments. `-o` options and saved mounts
/// (`mounts.toml`) both go through here, so every flag of `mount` has its spelling in both.
pub fn mount_flag(name: &str, value: Option<&str>) -> Result<Vec<String>, OptionError> {
    let long = name.replace('_', "-");
    let command = Cli::command();
    let takes_value = mount_flag_takes_value(&command, &long)
        .ok_or_else(|| OptionError::Unknown(name.to_string()))?;
    match (takes_value, value) {
        (true, Some(value)) => Ok(vec![format!("--{long}"), value.to_string()]),
        (false, None) => Ok(vec![format!("--{long}")]),
        (true, None) => Err(OptionError::NeedsValue(name.to_string())),
        (false, Some(_)) => Err(OptionError::TakesNoValue(name.to_string())),
    }
}

/// Whether `mount`'s flag `--long` takes a value; `None` if `mount` has no such flag (`help`
/// and `version` are clap's, not options).
pub fn mount_flag_takes_value(command: &clap::Command, long: &str) -> Option<bool> {
    if NOT_OPTIONS.contains(&long) {
        return None;
    }
    let mount = command.find_subcommand("mount")?;
    mount
        .get_arguments()
        .find(|a| a.get_long() == Some(long) && !a.is_positional())
        .map(|a| a.get_action().takes_values())
}

/// Flags of `mount` that choose what to mount or print help, not how: no option spells them.
const NOT_OPTIONS: [&str; 3] = ["all", "help", "version"];

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    fn mount_argv(words: &[&str]) -> Vec<String> {
        match invocation(&args(words)).unwrap() {
            Invocation::Mount { argv, fake: false } => {
                argv.into_iter().map(|a| a.into_string().unwrap()).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    /// The fstab line of the issue, as mount(8) passes it to mount.s3rolefs.
    #[test]
    fn fstab_options_become_flags() {
        let argv = mount_argv(&[
            "/sbin/mount.s3rolefs",
            "my-bucket",
            "/mnt/data",
            "-o",
            "rw,_netdev,allow_other,uid=1000,gid=1000,imds_v2_only",
        ]);
        assert_eq!(
            argv,
            [
                "s3rolefs",
                "mount",
                "my-bucket",
                "/mnt/data",
                "--allow-other",
                "--uid",
                "1000",
                "--gid",
                "1000",
                "--imds-v2-only"
            ]
        );
    }

    /// mount.fuse3's form (`type fuse.s3rolefs`): the program is `s3rolefs` itself.
    #[test]
    fn fuse_type_form_with_prefix_and_systemd_options() {
        let argv = mount_argv(&[
            "s3rolefs",
            "my-bucket:logs/",
            "/mnt/logs",
            "-o",
            "_netdev,nofail,x-systemd.automount,x-systemd.requires=network-online.target,ro,profile=reader",
        ]);
        assert_eq!(
            argv,
            [
                "s3rolefs",
                "mount",
                "my-bucket:logs/",
                "/mnt/logs",
                "--read-only",
                "--profile",
                "reader"
            ]
        );
    }

    /// Every long flag of `mount` has its `-o` spelling, values and switches alike, with `_`
    /// or `-`.
    #[test]
    fn every_mount_flag_has_an_option_spelling() {
        let argv = mount_argv(&[
            "mount.s3rolefs",
            "b",
            "/m",
            "-oendpoint_url=http://127.0.0.1:9000,region=us-east-1",
            "-o",
            "force-path-style,cache_size=256M,metadata_ttl=5,debug",
        ]);
        assert_eq!(
            &argv[4..],
            [
                "--endpoint-url",
                "http://127.0.0.1:9000",
                "--region",
                "us-east-1",
                "--force-path-style",
                "--cache-size",
                "256M",
                "--metadata-ttl",
                "5",
                "--debug"
            ]
        );
    }

    /// The endpoint and bucket-access options have their `-o` spellings, and an access
    /// point ARN (with its `:PREFIX`) is a source like a bucket.
    #[test]
    fn endpoint_options_and_arn_sources() {
        let arn = "arn:aws:s3:us-west-2:123456789012:accesspoint/myap:logs/";
        let argv = mount_argv(&[
            "mount.s3rolefs",
            arn,
            "/m",
            "-o",
            "dual_stack,fips,requester_pays,expected_bucket_owner=123456789012,sse=aws:kms:dsse",
        ]);
        assert_eq!(argv[2], arn);
        assert_eq!(
            &argv[4..],
            [
                "--dual-stack",
                "--fips",
                "--requester-pays",
                "--expected-bucket-owner",
                "123456789012",
                "--sse",
                "aws:kms:dsse"
            ]
        );
        let argv = mount_argv(&["mount.s3rolefs", "b", "/m", "-o", "transfer_acceleration"]);
        assert_eq!(&argv[4..], ["--transfer-acceleration"]);
    }

    #[test]
    fn unknown_or_malformed_options_are_named() {
        let err = invocation(&args(&["mount.s3rolefs", "b", "/m", "-o", "regoin=x"])).unwrap_err();
        assert!(err.contains("\"regoin\""), "{err}");
        let err = invocation(&args(&["mount.s3rolefs", "b", "/m", "-o", "region"])).unwrap_err();
        assert!(err.contains("needs a value"), "{err}");
        let err =
            invocation(&args(&["mount.s3rolefs", "b", "/m", "-o", "allow_other=1"])).unwrap_err();
        assert!(err.contains("takes no value"), "{err}");
        let err = invocation(&args(&["mount.s3rolefs", "b"])).unwrap_err();
        assert!(err.contains("mount point"), "{err}");
    }

    /// `-s` ignores what it does not know; `-f` mounts nothing; `-n`/`-v` are harmless.
    #[test]
    fn sloppy_fake_and_quiet_flags() {
        let argv = mount_argv(&[
            "mount.s3rolefs",
            "b",
            "/m",
            "-snv",
            "-o",
            "mystery,region=r",
        ]);
        assert_eq!(&argv[4..], ["--region", "r"]);
        assert!(matches!(
            invocation(&args(&[
                "mount.s3rolefs",
                "b",
                "/m",
                "-f",
                "-o",
                "region=r"
            ]))
            .unwrap(),
            Invocation::Mount { fake: true, .. }
        ));
    }

    /// The ordinary command line is left alone.
    #[test]
    fn subcommands_and_flags_are_not_mount_calls() {
        for words in [
            &["s3rolefs", "mount", "b", "/m"][..],
            &["s3rolefs", "unmount", "/m"],
            &["s3rolefs", "--version"],
            &["s3rolefs", "help"],
            &["s3rolefs"],
        ] {
            assert_eq!(
                invocation(&args(words)).unwrap(),
                Invocation::Plain,
                "{words:?}"
            );
        }
    }
}
