//! The command line: `s3rolefs mount`, `s3rolefs unmount`, `s3rolefs status`,
//! `s3rolefs credentials`, `s3rolefs check`, and the saved mounts (`add`, `remove`, `list`,
//! `enable`, `disable`). Parses arguments with clap, turns them into configuration, runs the
//! command, and prints any failure as one line.
//!
//! - `check`: the doctor (FUSE, credentials, IMDS, clock, bucket, permissions).
//! - `credentials`: the `credentials` report (which source, why not the others, expiry).
//! - `login`: `enable`/`disable`, the systemd unit that mounts a saved mount at login.
//! - `mount_helper`: the mount(8) form (`mount.s3rolefs BUCKET DIR -o OPTIONS`), and the one
//!   option table (`name=value` → `mount` flag) that `-o` and saved mounts share.
//! - `saved`: saved mounts (`mounts.toml`): `add`, `remove`, `list`, `mount NAME`, `--all`.
//! - `status`: the mounts of this machine, as their control sockets report them.
//! - `syslog`: the log of a background mount without `--log-file`.
//! - `when`: how times and spans are printed.

mod check;
mod credentials;
mod login;
mod mount_helper;
mod recover;
mod saved;
mod status;
mod sync;
mod syslog;
mod unmount;
mod when;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{CredentialOptions, MountConfig, MountOptions};
use crate::mount;

/// Mount an S3 bucket as a directory, with credentials from the AWS environment.
#[derive(Debug, Parser)]
#[command(name = "s3rolefs", version, about, args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the arguments does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Mount BUCKET (or BUCKET:PREFIX) on MOUNTPOINT; or the saved mount NAME (see `add`);
    /// or every saved mount (--all).
    Mount(MountArgs),
    /// Unmount an s3rolefs mount point (or the saved mount NAME, or every saved mount with
    /// --all); waits until the files not yet in S3 had their last try, and says which stay
    /// journaled for the next mount.
    Unmount {
        /// The mount point, or the name of a saved mount.
        #[arg(value_name = "MOUNTPOINT|NAME", required_unless_present = "all")]
        mountpoint: Option<PathBuf>,
        /// Every saved mount that is mounted.
        #[arg(long, conflicts_with = "mountpoint")]
        all: bool,
        /// Return once detached; what is not in S3 yet stays in the journal for the next
        /// mount (the daemon still tries while it finishes).
        #[arg(long)]
        lazy: bool,
    },
    /// Save a mount under NAME in mounts.toml (~/.config/s3rolefs/, root: /etc/s3rolefs/):
    /// then `s3rolefs mount NAME`. OPTIONS are flags of `mount` (--region eu-west-1
    /// --write-back) or -o name=value,...
    Add {
        /// Letters, digits, - and _.
        name: String,
        /// The bucket, optionally with a key prefix, as `mount` takes it.
        #[arg(value_name = "BUCKET[:PREFIX]")]
        source: String,
        /// The directory to mount on (saved as an absolute path).
        mountpoint: PathBuf,
        /// Flags of `mount` (--region eu-west-1, --write-back) or -o region=eu-west-1,write_back.
        #[arg(
            value_name = "OPTIONS",
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        options: Vec<OsString>,
    },
    /// Remove the saved mount NAME from mounts.toml (the rest of the file stays as it is).
    Remove { name: String },
    /// List the saved mounts, mounted or not, and which mount at login.
    List,
    /// Mount the saved mount NAME at login: writes a systemd user unit (--system: a system
    /// unit, at boot, as root) and enables it.
    Enable {
        name: String,
        /// A system unit in /etc/systemd/system (root), mounted at boot.
        #[arg(long)]
        system: bool,
        /// Only print the unit; write and enable nothing.
        #[arg(long)]
        print: bool,
    },
    /// Stop mounting the saved mount NAME at login: stops, disables and removes its unit.
    Disable {
        name: String,
        /// The system unit (root).
        #[arg(long)]
        system: bool,
    },
    /// Wait until every file closed so far is in S3 (the write-back queue and the journal);
    /// exits non-zero naming the files that cannot get there by themselves.
    Sync {
        /// Only files under this directory of a mount (default: every mount of this user).
        dir: Option<PathBuf>,
        /// Give up after this many seconds, naming what is not in S3 yet (default: wait).
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<f64>,
    },
    /// Show what the journal holds (files not yet in S3: failed closes, files left by a mount
    /// that died) and what the next mount of each bucket will do with them.
    Recover {
        /// The cache directory (--cache-dir of the mounts; default: this user's).
        dir: Option<PathBuf>,
        /// Only show (the mount recovers; this changes nothing).
        #[arg(long)]
        dry_run: bool,
    },
    /// Show the s3rolefs mounts of this machine: bucket, credentials and their expiry, cache
    /// use, uploads in progress (root sees every mount, other users their own).
    Status {
        /// Only the mount at this directory.
        mountpoint: Option<PathBuf>,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Print the man page (roff) of s3rolefs, or of one of its commands (s3rolefs-mount(1)),
    /// generated from these definitions.
    #[command(hide = true)]
    Manpage {
        /// A command: mount, unmount, status, check, credentials, add, list, enable, ...
        command: Option<String>,
    },
    /// Print the completion script of SHELL (bash, zsh, fish, elvish, powershell).
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Check everything a mount of BUCKET needs, one ✔/✘ line each with the fix: FUSE,
    /// credentials, IMDS and the instance role, clock, bucket and region, permissions.
    Check(check::CheckArgs),
    /// Show which credentials source applies and why the others do not (never the secret).
    Credentials {
        #[command(flatten)]
        credentials: CredentialArgs,
        /// Region for STS and IMDS lookups (default: AWS_REGION, AWS_DEFAULT_REGION, profile).
        #[arg(long)]
        region: Option<String>,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
}

/// Where credentials come from (shared by `mount` and `credentials`).
#[derive(Debug, Args, Clone, Default)]
pub struct CredentialArgs {
    /// Use this profile of ~/.aws/config and ~/.aws/credentials (overrides the environment).
    #[arg(long, help_heading = "Credentials")]
    profile: Option<String>,
    /// Assume this IAM role on top of the credentials found.
    #[arg(long, value_name = "ARN", help_heading = "Credentials")]
    role_arn: Option<String>,
    /// External id required by the role's trust policy.
    #[arg(long, help_heading = "Credentials")]
    external_id: Option<String>,
    /// Session name of the assumed role (default: s3rolefs-<time>).
    #[arg(long, value_name = "NAME", help_heading = "Credentials")]
    role_session_name: Option<String>,
    /// Lifetime of assumed-role sessions, 900-43200 seconds (role chains: at most 3600).
    #[arg(long, value_name = "SECONDS", help_heading = "Credentials")]
    duration_seconds: Option<u64>,
    /// STS endpoint (default: AWS_ENDPOINT_URL_STS, else the regional endpoint).
    #[arg(long, value_name = "URL", help_heading = "Credentials")]
    sts_endpoint_url: Option<String>,
    /// Get the role's credentials with AssumeRoleWithSAML from this base64 assertion file.
    #[arg(long, value_name = "PATH", requires_all = ["role_arn", "saml_principal_arn"], help_heading = "Credentials")]
    saml_assertion_file: Option<PathBuf>,
    /// ARN of the SAML identity provider (with --saml-assertion-file).
    #[arg(long, value_name = "ARN", help_heading = "Credentials")]
    saml_principal_arn: Option<String>,
    /// Never fall back to IMDSv1 (also AWS_EC2_METADATA_V1_DISABLED=true).
    #[arg(long, help_heading = "Credentials")]
    imds_v2_only: bool,
    /// Instance role name to use instead of discovering it from IMDS.
    #[arg(long, value_name = "NAME", help_heading = "Credentials")]
    imds_role: Option<String>,
}

impl CredentialArgs {
    fn into_options(self) -> CredentialOptions {
        CredentialOptions {
            profile: self.profile,
            role_arn: self.role_arn,
            external_id: self.external_id,
            role_session_name: self.role_session_name,
            duration_seconds: self.duration_seconds,
            sts_endpoint_url: self.sts_endpoint_url,
            saml_assertion_file: self.saml_assertion_file,
            saml_principal_arn: self.saml_principal_arn,
            imds_v2_only: self.imds_v2_only,
            imds_role: self.imds_role,
        }
    }
}

/// Where the bucket is (shared by `mount` and `check`).
#[derive(Debug, Args, Clone, Default)]
pub struct BucketArgs {
    /// S3 endpoint URL (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS S3).
    #[arg(long, value_name = "URL", help_heading = "Bucket")]
    endpoint_url: Option<String>,
    /// Region of the bucket (default: AWS_REGION, AWS_DEFAULT_REGION, else discovered).
    #[arg(long, help_heading = "Bucket")]
    region: Option<String>,
    /// Address the bucket in the URL path instead of the host name.
    #[arg(long, help_heading = "Bucket")]
    force_path_style: bool,
    /// Which S3 implementation serves the bucket: aws (default), minio, ceph, garage, r2, b2, wasabi, gcs, other. Sets its known defaults (region, path-style, quirks); other quirks are detected at run time.
    #[arg(long, value_name = "NAME", help_heading = "Bucket")]
    provider: Option<String>,
    /// Use the dual-stack (IPv4 and IPv6) endpoint, s3.dualstack.REGION.amazonaws.com (also AWS_USE_DUALSTACK_ENDPOINT=true).
    #[arg(long, help_heading = "Bucket")]
    dual_stack: bool,
    /// Use the FIPS 140 endpoint, s3-fips.REGION.amazonaws.com (also AWS_USE_FIPS_ENDPOINT=true).
    #[arg(long, help_heading = "Bucket")]
    fips: bool,
    /// Use S3 Transfer Acceleration, BUCKET.s3-accelerate.amazonaws.com (enabled on the bucket; not with FIPS, path-style or dotted bucket names).
    #[arg(long, help_heading = "Bucket")]
    transfer_acceleration: bool,
    /// Accept the charges of a Requester Pays bucket (sends x-amz-request-payer: requester).
    #[arg(long, help_heading = "Bucket")]
    requester_pays: bool,
    /// Refuse the bucket unless this 12-digit account owns it (sends x-amz-expected-bucket-owner).
    #[arg(long, value_name = "ACCOUNT", help_heading = "Bucket")]
    expected_bucket_owner: Option<String>,
}

impl BucketArgs {
    /// Copies these options into `options`.
    fn apply(self, options: &mut MountOptions) {
        options.endpoint_url = self.endpoint_url;
        options.region = self.region;
        options.force_path_style = self.force_path_style;
        options.provider = self.provider;
        options.dual_stack = self.dual_stack;
        options.fips = self.fips;
        options.transfer_acceleration = self.transfer_acceleration;
        options.requester_pays = self.requester_pays;
        options.expected_bucket_owner = self.expected_bucket_owner;
    }
}

#[derive(Debug, Args)]
struct MountArgs {
    /// The bucket (or an access point ARN or alias), optionally with a key prefix to mount instead of the whole bucket; alone, the name of a saved mount.
    #[arg(value_name = "BUCKET[:PREFIX]|NAME", required_unless_present = "all")]
    source: Option<String>,
    /// An existing empty directory.
    mountpoint: Option<PathBuf>,
    /// Mount every saved mount not mounted yet (s3rolefs list), in the background.
    #[arg(long, conflicts_with_all = ["source", "mountpoint"])]
    all: bool,

    #[command(flatten)]
    bucket: BucketArgs,

    /// Send unsigned requests (public buckets); no credentials are looked up.
    #[arg(long, help_heading = "Credentials")]
    no_sign_request: bool,
    #[command(flatten)]
    credentials: CredentialArgs,

    /// Mount read-only.
    #[arg(long, help_heading = "Mount")]
    read_only: bool,
    /// Stay in the foreground instead of returning once the mount is ready.
    #[arg(long, short = 'f', help_heading = "Mount")]
    foreground: bool,
    /// Let other users access the mount (needs user_allow_other in /etc/fuse.conf unless root).
    #[arg(long, help_heading = "Mount")]
    allow_other: bool,
    /// Owner of files and directories that store none (default: the mounting user).
    #[arg(long, help_heading = "Mount")]
    uid: Option<u32>,
    /// Group of files and directories that store none (default: the mounting user's group).
    #[arg(long, help_heading = "Mount")]
    gid: Option<u32>,
    /// Ignore modes, owners, times, symlinks and xattrs stored in object metadata (s3fs's
    /// x-amz-meta-mode/uid/gid/mtime/xattr), and store none: every file shows the mount's
    /// mode and owner.
    #[arg(long, help_heading = "Mount")]
    no_posix_metadata: bool,
    /// Content-Type of uploaded files whose extension names none.
    #[arg(long, value_name = "TYPE", help_heading = "Mount")]
    content_type_default: Option<String>,
    /// Permission bits of files that store none, octal (default 0644).
    #[arg(long, value_name = "MODE", help_heading = "Mount")]
    file_mode: Option<String>,
    /// Permission bits of directories, octal (default 0755).
    #[arg(long, value_name = "MODE", help_heading = "Mount")]
    dir_mode: Option<String>,

    /// Seconds that file attributes are trusted before S3 is asked again (default 1).
    #[arg(long, value_name = "SECONDS", help_heading = "Cache")]
    metadata_ttl: Option<f64>,

    /// Directory for local copies of files not yet in S3 (the journal, kept across crashes and reboots) and cached blocks and metadata (default: root /var/lib/s3rolefs; others the journal in $XDG_STATE_HOME/s3rolefs, else ~/.local/state/s3rolefs, and the caches in $XDG_CACHE_HOME/s3rolefs, else ~/.cache/s3rolefs).
    #[arg(long, value_name = "DIR", help_heading = "Cache")]
    cache_dir: Option<PathBuf>,
    /// Memory for cached blocks of files read, e.g. 256M (default: 1/512 of RAM, 16-64 MiB; the kernel's page cache holds the rest).
    #[arg(long, value_name = "BYTES", help_heading = "Cache")]
    cache_size: Option<String>,
    /// Memory for blocks fetched ahead of readers, all files together, e.g. 128M (default 32 MiB).
    #[arg(long, value_name = "BYTES", help_heading = "Cache")]
    max_prefetch_memory: Option<String>,
    /// Keep up to this many bytes of read blocks on disk under --cache-dir, across remounts, e.g. 10G (default: none).
    #[arg(long, value_name = "BYTES", help_heading = "Cache")]
    cache_dir_size: Option<String>,

    /// Size of multipart upload parts, e.g. 8M (default 8 MiB, growing for huge files).
    #[arg(long, value_name = "BYTES", help_heading = "Upload")]
    part_size: Option<String>,
    /// Parts uploading at once per file (default 8).
    #[arg(long, value_name = "N", help_heading = "Upload")]
    upload_concurrency: Option<usize>,
    /// Memory for upload buffers, all files together, e.g. 512M; writers wait for room (default: 1/8 of RAM, 128 MiB-1 GiB).
    #[arg(long, value_name = "BYTES", help_heading = "Upload")]
    max_upload_memory: Option<String>,
    /// Server-side encryption of written objects: AES256 (SSE-S3), aws:kms (SSE-KMS) or aws:kms:dsse (dual-layer DSSE-KMS) (default: the bucket's).
    #[arg(long, value_name = "ALGORITHM", help_heading = "Upload")]
    sse: Option<String>,
    /// KMS key id, ARN or alias for --sse aws:kms or aws:kms:dsse (default: the account's S3 KMS key).
    #[arg(long, value_name = "KEY", help_heading = "Upload")]
    sse_kms_key_id: Option<String>,
    /// Encrypt with a customer key (SSE-C) read from this file (32 bytes, raw or base64); it is sent with every read and write and never logged.
    #[arg(long, value_name = "PATH", help_heading = "Upload")]
    sse_c_key_file: Option<PathBuf>,
    /// Storage class of written objects, e.g. STANDARD_IA, INTELLIGENT_TIERING (default STANDARD).
    #[arg(long, value_name = "CLASS", help_heading = "Upload")]
    storage_class: Option<String>,
    /// Canned ACL of written objects, e.g. bucket-owner-full-control (default: none sent).
    #[arg(long, value_name = "ACL", help_heading = "Upload")]
    acl: Option<String>,
    /// Objects larger than this are copied (renamed) with a multipart copy (default 5G, S3's CopyObject limit; lower it for tests or S3-compatible servers with a lower limit).
    #[arg(
        long,
        value_name = "BYTES",
        help_heading = "Upload",
        hide_short_help = true
    )]
    single_copy_limit: Option<String>,

    /// Return from close() and fsync() once the file is durable on the local disk; uploads run in the background, in the order files were closed, retried until they pass (an outage, a reboot: the next mount goes on). See docs/DESKTOP.md.
    #[arg(long, help_heading = "Upload")]
    write_back: bool,
    /// Bytes the write-back queue may hold; past them close() waits for room, e.g. 20G (default: a quarter of the cache directory's disk).
    #[arg(long, value_name = "BYTES", help_heading = "Upload")]
    write_back_max_size: Option<String>,
    /// On a directory bucket (S3 Express One Zone): a file whose only change is bytes added at its end uploads just those bytes, appended in S3 (PutObject with x-amz-write-offset-bytes), instead of rewriting the object. See docs/ENDPOINTS.md.
    #[arg(long, help_heading = "Upload")]
    incremental_upload: bool,
    /// Names never uploaded: files created under them stay local to the mount and go at unmount. Shell patterns, several joined by |, e.g. --exclude '.DS_Store|Thumbs.db|.~lock.*#' (one with / matches the path from the mount's root). Repeatable.
    #[arg(long, value_name = "PATTERNS", help_heading = "Upload")]
    exclude: Vec<String>,

    /// Attempts per S3 request made in any case, however short the retry budget (default: AWS_MAX_ATTEMPTS, else 5).
    #[arg(long, help_heading = "Network")]
    max_attempts: Option<u32>,
    /// Seconds a request that failed for a passing reason (5xx, SlowDown, a reset or refused connection) keeps being retried before the file operation fails (default 60).
    #[arg(long, value_name = "SECONDS", help_heading = "Network")]
    retry_timeout: Option<f64>,
    /// Seconds with no byte moving either way after which a request is abandoned and retried; a slow but moving transfer never fails (default 60).
    #[arg(long, value_name = "SECONDS", help_heading = "Network")]
    io_timeout: Option<f64>,

    /// Log debug detail (same as RUST_LOG=s3rolefs=debug).
    #[arg(long, help_heading = "Logging")]
    debug: bool,
    /// Write the background mount's log to this file.
    #[arg(long, value_name = "PATH", help_heading = "Logging")]
    log_file: Option<PathBuf>,
}

/// Parses the command line, runs the command, and returns the process exit code.
pub fn main() -> ExitCode {
    let raw: Vec<OsString> = std::env::args_os().collect();
    // The command line in s3rolefs' own form: what a background mount runs again.
    let (cli, arguments) = match mount_helper::invocation(&raw) {
        Ok(mount_helper::Invocation::Plain) => (Cli::parse_from(&raw), raw),
        Ok(mount_helper::Invocation::Mount { argv, fake }) => {
            let cli = Cli::parse_from(&argv);
            if fake {
                return ExitCode::SUCCESS;
            }
            (cli, argv)
        }
        Err(message) => {
            eprintln!("s3rolefs: {message}");
            return ExitCode::FAILURE;
        }
    };
    // `mount NAME`: the saved mount's full command line, from here on as if typed.
    let (cli, arguments) = match saved_mount_name(&cli) {
        Some(name) => match expand_saved(&name, &arguments) {
            Ok(expanded) => expanded,
            Err(message) => {
                eprintln!("s3rolefs: {message}");
                return ExitCode::FAILURE;
            }
        },
        None => (cli, arguments),
    };
    let level = match &cli.command {
        Command::Mount(m) if m.debug => LogLevel::Debug,
        // The doctor's and status reports are their output; log lines would only interleave.
        Command::Check(_) | Command::Status { .. } => LogLevel::Quiet,
        _ => LogLevel::Info,
    };
    init_logging(level);
    match run(cli, arguments.get(1..).unwrap_or_default()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("s3rolefs: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The NAME of `mount NAME` (one positional argument: a saved mount).
fn saved_mount_name(cli: &Cli) -> Option<String> {
    match &cli.command {
        Command::Mount(MountArgs {
            source: Some(name),
            mountpoint: None,
            ..
        }) => Some(name.clone()),
        _ => None,
    }
}

/// `mount NAME ...` as the saved mount's `mount BUCKET DIR ...`, parsed.
fn expand_saved(name: &str, arguments: &[OsString]) -> Result<(Cli, Vec<OsString>), String> {
    let argv = saved::expand(name, arguments.get(1..).unwrap_or_default())?;
    let cli = Cli::try_parse_from(&argv).map_err(|e| {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        format!(
            "saved mount {name}: {}; fix it in its file (s3rolefs list) or remove and add it again",
            first.strip_prefix("error: ").unwrap_or(first)
        )
    })?;
    Ok((cli, argv))
}

/// The options of a `mount BUCKET DIR ...` command line, unchecked (see `MountConfig`).
fn mount_options(args: MountArgs) -> Result<MountOptions, String> {
    let (Some(source), Some(mountpoint)) = (args.source, args.mountpoint) else {
        return Err("mount needs BUCKET[:PREFIX] and a mount point, or the name of a saved mount (s3rolefs list)".into());
    };
    let mut options = MountOptions {
        source,
        mountpoint,
        no_sign_request: args.no_sign_request,
        credentials: args.credentials.into_options(),
        read_only: args.read_only,
        foreground: args.foreground,
        allow_other: args.allow_other,
        uid: args.uid,
        gid: args.gid,
        no_posix_metadata: args.no_posix_metadata,
        content_type_default: args.content_type_default,
        file_mode: args.file_mode,
        dir_mode: args.dir_mode,
        metadata_ttl_secs: args.metadata_ttl,
        max_attempts: args.max_attempts,
        retry_timeout_secs: args.retry_timeout,
        io_timeout_secs: args.io_timeout,
        log_file: args.log_file,
        cache_dir: args.cache_dir,
        cache_size: args.cache_size,
        max_prefetch_memory: args.max_prefetch_memory,
        cache_dir_size: args.cache_dir_size,
        part_size: args.part_size,
        upload_concurrency: args.upload_concurrency,
        max_upload_memory: args.max_upload_memory,
        sse: args.sse,
        sse_kms_key_id: args.sse_kms_key_id,
        sse_c_key_file: args.sse_c_key_file,
        storage_class: args.storage_class,
        acl: args.acl,
        single_copy_limit: args.single_copy_limit,
        write_back: args.write_back,
        write_back_max_size: args.write_back_max_size,
        incremental_upload: args.incremental_upload,
        exclude: args.exclude,
        ..MountOptions::default()
    };
    args.bucket.apply(&mut options);
    Ok(options)
}

fn run(cli: Cli, arguments: &[OsString]) -> Result<(), String> {
    match cli.command {
        Command::Mount(args) if args.all => saved::mount_all(arguments, args.foreground),
        Command::Mount(args) => {
            let options = mount_options(args)?;
            let config = MountConfig::build(options, |k| std::env::var(k).ok())
                .map_err(|e| e.to_string())?;
            mount::mount(config, arguments).map_err(|e| e.to_string())
        }
        Command::Unmount {
            all: true, lazy, ..
        } => saved::unmount_all(lazy),
        Command::Unmount {
            mountpoint, lazy, ..
        } => {
            let target = mountpoint.ok_or("unmount needs a mount point or a saved mount's name")?;
            let dir = saved::unmount_target(&target)?;
            unmount::unmount_and_wait(&dir, lazy).map_err(|e| e.to_string())
        }
        Command::Add {
            name,
            source,
            mountpoint,
            options,
        } => saved::add(name, source, &mountpoint, &options),
        Command::Remove { name } => saved::remove(&name),
        Command::List => saved::list(),
        Command::Enable {
            name,
            system,
            print,
        } => login::enable(&name, system, print),
        Command::Disable { name, system } => login::disable(&name, system),
        Command::Recover { dir, dry_run } => recover::run(dir, dry_run),
        Command::Status { mountpoint, json } => status::run(mountpoint, json),
        Command::Sync { dir, timeout } => sync::run(dir, timeout),
        Command::Manpage { command } => manpage(command.as_deref()),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "s3rolefs", &mut std::io::stdout());
            Ok(())
        }
        Command::Credentials {
            credentials,
            region,
            json,
        } => credentials::report(credentials.into_options(), region, json),
        Command::Check(args) => check::run(args),
    }
}

/// The man page of s3rolefs (`None`) or of one of its commands, as `s3rolefs-mount(1)`.
fn manpage(command: Option<&str>) -> Result<(), String> {
    let root = <Cli as clap::CommandFactory>::command();
    let page = match command {
        None => root,
        Some(name) => {
            let sub = root
                .find_subcommand(name)
                .filter(|c| !c.is_hide_set())
                .ok_or_else(|| {
                    format!("no command {name:?}; the commands are those of s3rolefs --help")
                })?
                .clone();
            sub.name(format!("s3rolefs-{name}"))
        }
    };
    clap_mangen::Man::new(page)
        .render(&mut std::io::stdout())
        .map_err(|e| format!("cannot write the man page: {e}"))
}

/// How much a command logs unless `RUST_LOG` says otherwise.
enum LogLevel {
    Quiet,
    Info,
    Debug,
}

fn init_logging(level: LogLevel) {
    let default = match level {
        LogLevel::Debug => "s3rolefs=debug,fuser=error,warn",
        // fuser warns about every operation a filesystem leaves to the kernel's defaults.
        LogLevel::Info => "s3rolefs=info,fuser=error,warn",
        LogLevel::Quiet => "error",
    };
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default));
    builder.format_timestamp_millis();
    // A background mount without --log-file logs to syslog/journald (which stamp the time).
    if crate::mount::daemon::logs_to_syslog() {
        if let Ok(sink) = syslog::Syslog::connect(std::path::Path::new(syslog::DEV_LOG)) {
            let pid = std::process::id();
            builder
                .format(move |buf, record| {
                    use std::io::Write;
                    writeln!(
                        buf,
                        "<{}>s3rolefs[{pid}]: {} {}: {}",
                        syslog::priority(record.level()),
                        record.level(),
                        record.target(),
                        record.args()
                    )
                })
                .target(env_logger::Target::Pipe(Box::new(sink)));
        }
    }
    builder.init();
}
