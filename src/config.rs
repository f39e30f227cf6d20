//! One validated [`MountConfig`], built from the command line (and later `-o` options) and
//! the environment. Every default is defined once, here, with its reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::s3::access::is_account_id;
use crate::s3::endpoint::{self, BucketTarget, EndpointError, EndpointParams, EndpointVariants};
use crate::s3::settings::{CustomerKey, Encryption, S3_MIN_PART_SIZE};
use crate::s3::{BucketAccess, ObjectSettings, Provider};

/// Every default, with why it is what it is.
pub mod defaults {
    use std::time::Duration;

    /// Files are readable by the group and others, as on a local disk; the kernel enforces
    /// it (`default_permissions`).
    pub const FILE_MODE: u16 = 0o644;
    /// Directories must be searchable to be usable.
    pub const DIR_MODE: u16 = 0o755;
    /// Content-Type of a file whose extension names none: what S3 and s3fs use for bytes
    /// of unknown kind.
    pub const CONTENT_TYPE: &str = "application/octet-stream";
    /// How long a `stat` answer is trusted: one second matches the peers' default and keeps
    /// a file changed by another client visible within a second, while `ls -l` and builds
    /// that stat the same file many times in a row ask S3 once.
    pub const METADATA_TTL: Duration = Duration::from_secs(1);
    /// Attempts per S3 request: the AWS SDKs' standard mode uses 3; a filesystem call that
    /// fails costs a user's program an EIO, so try a little harder.
    pub const MAX_ATTEMPTS: u32 = 5;
    /// First retry waits up to this long (full jitter); doubles per attempt.
    pub const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
    /// No retry waits longer than this: beyond it a user would rather see the error.
    pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
    /// Blocks fetched ahead of readers, all open files together: 4 GETs of 8 MiB keep one
    /// stream at full speed (measured: 64 MiB was no faster, and cost 30 MiB of RSS).
    pub const MAX_PREFETCH_MEMORY: u64 = 32 * 1024 * 1024;
    /// Connecting to S3 takes milliseconds; 10 s covers a congested path without hanging
    /// a `mount` for long on a wrong endpoint.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// A request is abandoned (and retried) after this long with no byte moving either
    /// way. It measures silence, not duration, so a slow link never fails a transfer that
    /// moves: s3fs waits 120 s for a byte, the AWS CRT 30 s under 1 byte/s; a minute
    /// rides out a stalled Wi-Fi or a busy server without hanging a dead connection long.
    pub const IO_TIMEOUT: Duration = Duration::from_secs(60);
    /// How long a request that failed for a passing reason keeps being retried before the
    /// file operation fails: a mount that lives for weeks sees blips of seconds every day
    /// (a SlowDown storm, a load balancer restart, a Wi-Fi roam), and they must cost
    /// latency, not an EIO. A minute covers those; a longer outage is an error the user
    /// should hear about (and an upload that fails keeps its data).
    pub const RETRY_TIMEOUT: Duration = Duration::from_secs(60);
    /// Region used to sign the first request when none is configured; S3 tells us the
    /// bucket's real region in its answer.
    pub const DISCOVERY_REGION: &str = "us-east-1";
    /// Objects up to this size are copied (renamed) with one CopyObject, larger ones with
    /// a multipart copy: 5 GiB is S3's own limit on CopyObject. Lower values exist for
    /// tests and for S3-compatible servers with a lower limit.
    pub use crate::s3::S3_SINGLE_COPY_LIMIT as SINGLE_COPY_LIMIT;
    /// IPv4-only endpoints, as in the AWS SDKs: the dual-stack ones resolve to IPv6 too,
    /// and a host with a broken IPv6 route would try it first.
    pub const DUAL_STACK: bool = false;
    /// The standard endpoints, as in the AWS SDKs: FIPS ones exist only in some partitions
    /// and are asked for by those whose rules require them.
    pub const FIPS: bool = false;
    /// Transfer Acceleration costs extra per GB, and needs to be enabled on the bucket.
    pub const TRANSFER_ACCELERATION: bool = false;
    /// Accepting a bucket owner's request charges is a decision the user makes, never one
    /// made for them.
    pub const REQUESTER_PAYS: bool = false;
}

/// `--sse` values: the server-side encryptions S3 manages the keys of (SSE-S3, SSE-KMS,
/// and dual-layer DSSE-KMS).
pub const SSE_VALUES: [&str; 3] = ["AES256", "aws:kms", "aws:kms:dsse"];

/// Storage classes objects can be written in. GLACIER and DEEP_ARCHIVE are left out on
/// purpose: their objects cannot be read without a restore, so every file written through
/// the mount would be unreadable through it.
pub const STORAGE_CLASSES: [&str; 9] = [
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "OUTPOSTS",
    "SNOW",
    "EXPRESS_ONEZONE",
];

/// S3's canned ACLs (`x-amz-acl`).
pub const CANNED_ACLS: [&str; 7] = [
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];

/// Where credentials come from, as the user asked (flags or `-o` options).
#[derive(Clone, Debug, Default)]
pub struct CredentialOptions {
    pub profile: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub role_session_name: Option<String>,
    pub duration_seconds: Option<u64>,
    pub sts_endpoint_url: Option<String>,
    pub saml_assertion_file: Option<PathBuf>,
    pub saml_principal_arn: Option<String>,
    pub imds_v2_only: bool,
    pub imds_role: Option<String>,
}

/// Options as the user gave them, before validation (filled by `cli`).
#[derive(Clone, Debug, Default)]
pub struct MountOptions {
    /// `BUCKET`, `BUCKET:PREFIX`, or an access point ARN with or without `:PREFIX`.
    pub source: String,
    pub mountpoint: PathBuf,
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub force_path_style: bool,
    /// `--provider` (`aws`, `minio`, `r2`, …); `None`: AWS.
    pub provider: Option<String>,
    /// `--dual-stack` (else `AWS_USE_DUALSTACK_ENDPOINT`).
    pub dual_stack: bool,
    /// `--fips` (else `AWS_USE_FIPS_ENDPOINT`).
    pub fips: bool,
    pub transfer_acceleration: bool,
    pub requester_pays: bool,
    /// A 12-digit account id.
    pub expected_bucket_owner: Option<String>,
    pub no_sign_request: bool,
    pub credentials: CredentialOptions,
    pub read_only: bool,
    pub foreground: bool,
    pub allow_other: bool,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// `--no-posix-metadata`.
    pub no_posix_metadata: bool,
    pub content_type_default: Option<String>,
    /// Octal text, e.g. `"0644"`.
    pub file_mode: Option<String>,
    pub dir_mode: Option<String>,
    pub metadata_ttl_secs: Option<f64>,
    pub max_attempts: Option<u32>,
    pub retry_timeout_secs: Option<f64>,
    pub io_timeout_secs: Option<f64>,
    pub log_file: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    /// Bytes of the in-memory block cache (`64M`).
    pub cache_size: Option<String>,
    /// Bytes of blocks fetched ahead, across all open files (`64M`).
    pub max_prefetch_memory: Option<String>,
    /// Bytes of blocks kept on disk under the cache directory (`10G`; absent: none).
    pub cache_dir_size: Option<String>,
    /// Bytes, e.g. `8388608` (or with a suffix: `8M`).
    pub part_size: Option<String>,
    pub upload_concurrency: Option<usize>,
    /// Bytes of upload buffers, all files together (`1G`).
    pub max_upload_memory: Option<String>,
    /// `AES256`, `aws:kms` or `aws:kms:dsse`.
    pub sse: Option<String>,
    pub sse_kms_key_id: Option<String>,
    /// A file holding the SSE-C key: 32 raw bytes or their base64.
    pub sse_c_key_file: Option<PathBuf>,
    pub storage_class: Option<String>,
    /// A canned ACL, e.g. `bucket-owner-full-control`.
    pub acl: Option<String>,
    /// Bytes (`5G`, `64M`): larger objects are copied as multipart copies.
    pub single_copy_limit: Option<String>,
    /// `--write-back`: `close` returns once the file is durable on the local disk.
    pub write_back: bool,
    /// Bytes the write-back queue may hold (`20G`; absent: a quarter of the cache disk).
    pub write_back_max_size: Option<String>,
    /// `--incremental-upload`: appends to objects of a directory bucket go up as appends.
    pub incremental_upload: bool,
    /// `--exclude`: patterns of names kept local only (see `fs::exclude`).
    pub exclude: Vec<String>,
}

/// A mount's whole configuration, validated.
#[derive(Clone, Debug)]
pub struct MountConfig {
    /// The bucket name, or an access point ARN in its `accesspoint/NAME` form.
    pub bucket: String,
    /// `""` or a prefix ending in `/`.
    pub prefix: String,
    pub mountpoint: PathBuf,
    pub endpoint: Option<String>,
    /// The configured region; an access point ARN's own.
    pub region: Option<String>,
    /// Path-style addressing: asked for, or the provider's default.
    pub force_path_style: bool,
    /// The S3 implementation: its known defaults and quirks.
    pub provider: Provider,
    /// Dual-stack, FIPS, Transfer Acceleration.
    pub endpoint_variants: EndpointVariants,
    /// Requester pays and expected bucket owner, sent on every request.
    pub access: BucketAccess,
    pub no_sign_request: bool,
    pub credentials: CredentialOptions,
    pub read_only: bool,
    pub foreground: bool,
    pub allow_other: bool,
    pub uid: u32,
    pub gid: u32,
    pub file_mode: u16,
    pub dir_mode: u16,
    /// Modes, owners, times, symlinks and xattrs live in object metadata (s3fs's format).
    pub posix_metadata: bool,
    /// Content-Type of files whose extension names none.
    pub content_type_default: String,
    pub metadata_ttl: Duration,
    /// Attempts per request made in any case (`AWS_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// How long transient failures keep being retried.
    pub retry_timeout: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
    /// Longest silence (no byte either way) of a request.
    pub io_timeout: Duration,
    /// `AWS_CA_BUNDLE`: extra trusted roots (PEM), as in the AWS SDKs.
    pub ca_bundle: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    /// Where local copies of files being written (the journal) live (mode 0700, the user's
    /// own).
    pub cache_dir: PathBuf,
    /// Where the caches that may be thrown away live: blocks kept on disk (`blocks/`) and
    /// metadata kept across remounts (`meta/`); mode 0700, the user's own.
    pub cache_home: PathBuf,
    /// Bytes of the in-memory block cache.
    pub cache_size: u64,
    /// Bytes of blocks fetched ahead of readers, across all open files.
    pub max_prefetch_memory: u64,
    /// Bytes of blocks kept on disk in `cache_home/blocks` (0: no disk tier).
    pub cache_dir_size: u64,
    pub part_size: Option<u64>,
    pub upload_concurrency: Option<usize>,
    /// Bytes of upload buffers (parts being filled and in flight), all files together.
    pub max_upload_memory: u64,
    /// Encryption, storage class and ACL of every object written, and the SSE-C key
    /// (redacted in `Debug`) sent with every request about an object.
    pub objects: ObjectSettings,
    /// Objects larger than this are copied as multipart copies.
    pub single_copy_limit: u64,
    /// `--write-back`: `close` returns once the file is durable on the local disk, and
    /// uploads run in the background.
    pub write_back: bool,
    /// Bytes the write-back queue may hold before a `close` waits for room (`None`: a
    /// quarter of the cache directory's disk, decided at mount).
    pub write_back_max_size: Option<u64>,
    /// `--incremental-upload`: on a directory bucket, a file changed only at its end uploads
    /// only the new bytes (PutObject with `x-amz-write-offset-bytes`).
    pub incremental_upload: bool,
    /// Names kept local only (`--exclude`).
    pub exclude: crate::fs::exclude::Exclude,
}

/// A configuration that cannot work, with the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid bucket name {name:?}: {reason}; bucket names are 3-63 characters of lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit")]
    InvalidBucketName { name: String, reason: &'static str },
    #[error("invalid {what} {value:?}: {fix}")]
    InvalidValue {
        what: &'static str,
        value: String,
        fix: &'static str,
    },
    /// Options that cannot go together, or one that needs another.
    #[error("{problem}; {fix}")]
    Conflict {
        problem: &'static str,
        fix: &'static str,
    },
    /// The SSE-C key file is unusable (never shows its content).
    #[error("SSE-C key file {}: {reason}; it must hold a 32-byte AES-256 key, raw or base64 (e.g. `openssl rand -base64 32 > FILE`)", path.display())]
    KeyFile { path: PathBuf, reason: String },
    /// The bucket, access point or endpoint options have no endpoint together.
    #[error("{0}")]
    Endpoint(#[from] EndpointError),
    #[error("{0}")]
    Exclude(#[from] crate::fs::exclude::ExcludeError),
}

impl MountConfig {
    /// Validates `opts`, filling what they leave open from the environment (`env`) and the
    /// defaults.
    pub fn build(
        opts: MountOptions,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<MountConfig, ConfigError> {
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let (bucket, prefix) = split_source(&opts.source);
        let target = BucketTarget::parse(&bucket)?;
        if let BucketTarget::Bucket(name) = &target {
            validate_bucket_name(name)?;
        }
        let directory = matches!(&target, BucketTarget::Bucket(name)
            if crate::s3::express::is_directory_bucket(name));
        if opts.incremental_upload && !directory {
            // Refused rather than ignored: a flag that silently does nothing would leave a
            // user believing their appends are cheap when every one rewrites the object.
            return Err(ConfigError::Conflict {
                problem: "--incremental-upload needs a directory bucket (S3 Express One Zone, \
                          NAME--ZONEID--x-s3, or an access point NAME--ZONEID--xa-s3): only \
                          those take appends (x-amz-write-offset-bytes)",
                fix: "drop --incremental-upload for this bucket",
            });
        }
        // An empty flag value means "not given" (as an unset variable does).
        let given = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let endpoint = given(opts.endpoint_url.clone())
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"));
        if let Some(e) = &endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(ConfigError::InvalidValue {
                    what: "endpoint URL",
                    value: e.clone(),
                    fix: "give a URL with its scheme, e.g. https://s3.example.com or http://127.0.0.1:9000",
                });
            }
        }
        let objects = object_settings(&opts, endpoint.as_deref())?;
        let provider = match opts.provider.as_deref() {
            None => Provider::default(),
            Some(name) => name
                .parse::<Provider>()
                .map_err(|_| ConfigError::InvalidValue {
                    what: "provider",
                    value: name.to_string(),
                    fix: "use one of aws, minio, ceph, garage, r2, b2, wasabi, gcs, other",
                })?,
        };
        // A provider that needs path-style addressing gets it; `--force-path-style` alone
        // turns it on for the others.
        let force_path_style = opts.force_path_style || provider.path_style();
        let region = given(opts.region.clone())
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or_else(|| provider.default_region().map(str::to_string));
        let endpoint_variants = EndpointVariants {
            dual_stack: opts.dual_stack
                || env_flag(&env, "AWS_USE_DUALSTACK_ENDPOINT")?.unwrap_or(defaults::DUAL_STACK),
            fips: opts.fips || env_flag(&env, "AWS_USE_FIPS_ENDPOINT")?.unwrap_or(defaults::FIPS),
            accelerate: opts.transfer_acceleration || defaults::TRANSFER_ACCELERATION,
        };
        // Resolved once now, so a combination no endpoint serves fails before credentials
        // are looked up. Without a region the discovery region stands in: the client
        // resolves again with the bucket's, and fails the mount the same way.
        endpoint::resolve(&EndpointParams {
            target: &target,
            region: region
                .as_deref()
                .or(target.arn_region())
                .unwrap_or(defaults::DISCOVERY_REGION),
            endpoint_url: endpoint.as_deref(),
            force_path_style,
            variants: endpoint_variants,
        })?;
        // An access point ARN names its region (of the configured one's partition, checked
        // above): requests go there, with no discovery.
        let region = target.arn_region().map(str::to_string).or(region);
        let access = bucket_access(&opts)?;
        let max_attempts = match opts.max_attempts {
            Some(n) => n,
            None => match env("AWS_MAX_ATTEMPTS") {
                Some(v) => v.trim().parse().map_err(|_| ConfigError::InvalidValue {
                    what: "AWS_MAX_ATTEMPTS",
                    value: v.clone(),
                    fix: "use a whole number of attempts, e.g. 5",
                })?,
                None => defaults::MAX_ATTEMPTS,
            },
        };
        if max_attempts == 0 {
            return Err(ConfigError::InvalidValue {
                what: "number of attempts",
                value: "0".into(),
                fix: "use at least 1",
            });
        }
        let metadata_ttl = seconds_option(
            opts.metadata_ttl_secs,
            defaults::METADATA_TTL,
            "metadata TTL",
            "use a number of seconds >= 0, e.g. 1 or 0.5",
        )?;
        let retry_timeout = seconds_option(
            opts.retry_timeout_secs,
            defaults::RETRY_TIMEOUT,
            "retry timeout",
            "use a number of seconds >= 0, e.g. 60 (0: only --max-attempts attempts)",
        )?;
        let io_timeout = seconds_option(
            opts.io_timeout_secs,
            defaults::IO_TIMEOUT,
            "I/O timeout",
            "use a number of seconds > 0, e.g. 60",
        )?;
        if io_timeout.is_zero() {
            return Err(ConfigError::InvalidValue {
                what: "I/O timeout",
                value: "0".into(),
                fix: "use a number of seconds > 0, e.g. 60",
            });
        }
        let single_copy_limit =
            match opts.single_copy_limit.as_deref() {
                None => defaults::SINGLE_COPY_LIMIT,
                Some(text) => match parse_size(text) {
                    Some(n) if n >= S3_MIN_PART_SIZE => n,
                    _ => return Err(ConfigError::InvalidValue {
                        what: "single-copy limit",
                        value: text.to_string(),
                        fix: "give bytes of at least 5M, optionally with K/M/G (S3's limit is 5G)",
                    }),
                },
            };
        // SAFETY: getuid/getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Ok(MountConfig {
            bucket: target.to_string(),
            prefix,
            mountpoint: opts.mountpoint,
            endpoint,
            region,
            force_path_style,
            provider,
            endpoint_variants,
            access,
            no_sign_request: opts.no_sign_request,
            credentials: opts.credentials,
            read_only: opts.read_only,
            foreground: opts.foreground,
            allow_other: opts.allow_other,
            uid: opts.uid.unwrap_or(uid),
            gid: opts.gid.unwrap_or(gid),
            posix_metadata: !opts.no_posix_metadata,
            content_type_default: opts
                .content_type_default
                .clone()
                .unwrap_or_else(|| defaults::CONTENT_TYPE.to_string()),
            file_mode: parse_mode(opts.file_mode.as_deref(), defaults::FILE_MODE, "file mode")?,
            dir_mode: parse_mode(
                opts.dir_mode.as_deref(),
                defaults::DIR_MODE,
                "directory mode",
            )?,
            metadata_ttl,
            max_attempts,
            retry_timeout,
            initial_backoff: defaults::INITIAL_BACKOFF,
            max_backoff: defaults::MAX_BACKOFF,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            io_timeout,
            ca_bundle: env("AWS_CA_BUNDLE").map(PathBuf::from),
            log_file: opts.log_file,
            cache_home: opts
                .cache_dir
                .clone()
                .unwrap_or_else(|| default_cache_home(&env, crate::private_dir::euid())),
            cache_dir: opts
                .cache_dir
                .unwrap_or_else(|| default_cache_dir(&env, crate::private_dir::euid())),
            cache_size: size_option(
                opts.cache_size.as_deref(),
                "cache size",
                "give bytes, optionally with K/M/G (e.g. 256M; 0 turns the cache off)",
            )?
            .unwrap_or_else(|| {
                crate::cache::block::default_cache_size(
                    crate::cache::block::machine_memory().unwrap_or(0),
                )
            }),
            max_prefetch_memory: size_option(
                opts.max_prefetch_memory.as_deref(),
                "prefetch memory",
                "give bytes, optionally with K/M/G (e.g. 128M)",
            )?
            .unwrap_or(defaults::MAX_PREFETCH_MEMORY),
            cache_dir_size: size_option(
                opts.cache_dir_size.as_deref(),
                "disk cache size",
                "give bytes, optionally with K/M/G (e.g. 10G)",
            )?
            .unwrap_or(0),
            part_size: size_option(
                opts.part_size.as_deref(),
                "part size",
                "give bytes, optionally with K/M/G (e.g. 8M); S3 needs at least 5M",
            )?,
            upload_concurrency: opts.upload_concurrency,
            max_upload_memory: size_option(
                opts.max_upload_memory.as_deref(),
                "upload memory",
                "give bytes, optionally with K/M/G (e.g. 512M); at least one part",
            )?
            .unwrap_or_else(|| {
                crate::upload::default_budget(crate::cache::block::machine_memory().unwrap_or(0))
            }),
            objects,
            single_copy_limit,
            write_back: opts.write_back,
            incremental_upload: opts.incremental_upload,
            write_back_max_size: match size_option(
                opts.write_back_max_size.as_deref(),
                "write-back queue size",
                "give bytes, optionally with K/M/G (e.g. 20G)",
            )? {
                Some(0) => return Err(ConfigError::InvalidValue {
                    what: "write-back queue size",
                    value: "0".into(),
                    fix: "give bytes above zero, e.g. 20G (leave --write-back out to turn it off)",
                }),
                other => other,
            },
            exclude: crate::fs::exclude::Exclude::new(&opts.exclude)?,
        })
    }
}

/// `--sse`, `--sse-kms-key-id`, `--sse-c-key-file`, `--storage-class`, `--acl`, validated
/// together; the key file is read here, once, at mount.
fn object_settings(
    opts: &MountOptions,
    endpoint: Option<&str>,
) -> Result<ObjectSettings, ConfigError> {
    fn given(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
    let sse = given(&opts.sse);
    let kms_key_id = given(&opts.sse_kms_key_id);
    let encryption = match (sse, &opts.sse_c_key_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Conflict {
                problem: "--sse and --sse-c-key-file cannot go together",
                fix:
                    "keep --sse-c-key-file for customer keys (SSE-C), or --sse for keys S3 manages",
            })
        }
        (None, Some(path)) => {
            if endpoint.is_some_and(is_plain_http_off_host) {
                return Err(ConfigError::Conflict {
                    problem: "--sse-c-key-file with a plain http:// endpoint would send the key in clear (S3 refuses SSE-C over HTTP)",
                    fix: "use an https:// endpoint",
                });
            }
            Encryption::Customer(read_customer_key(path)?)
        }
        (Some("AES256"), None) => Encryption::S3Managed,
        (Some("aws:kms"), None) => Encryption::Kms {
            key_id: kms_key_id.map(str::to_string),
        },
        (Some("aws:kms:dsse"), None) => Encryption::KmsDsse {
            key_id: kms_key_id.map(str::to_string),
        },
        (Some(other), None) => return Err(ConfigError::InvalidValue {
            what: "--sse",
            value: other.to_string(),
            fix: "use AES256 (SSE-S3), aws:kms (SSE-KMS) or aws:kms:dsse (DSSE-KMS); for customer keys use --sse-c-key-file",
        }),
        (None, None) => Encryption::BucketDefault,
    };
    if kms_key_id.is_some()
        && !matches!(
            encryption,
            Encryption::Kms { .. } | Encryption::KmsDsse { .. }
        )
    {
        return Err(ConfigError::Conflict {
            problem: "--sse-kms-key-id needs --sse aws:kms or --sse aws:kms:dsse",
            fix: "add --sse aws:kms (or aws:kms:dsse), or drop --sse-kms-key-id",
        });
    }
    let storage_class = given(&opts.storage_class).map(str::to_string);
    if let Some(class) = &storage_class {
        if !STORAGE_CLASSES.contains(&class.as_str()) {
            return Err(ConfigError::InvalidValue {
                what: "--storage-class",
                value: class.clone(),
                fix: "use one of STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, REDUCED_REDUNDANCY, EXPRESS_ONEZONE, OUTPOSTS, SNOW (GLACIER and DEEP_ARCHIVE objects are unreadable without a restore: use a lifecycle rule)",
            });
        }
    }
    let acl = given(&opts.acl).map(str::to_string);
    if let Some(acl) = &acl {
        if !CANNED_ACLS.contains(&acl.as_str()) {
            return Err(ConfigError::InvalidValue {
                what: "--acl",
                value: acl.clone(),
                fix: "use a canned ACL: private, public-read, public-read-write, authenticated-read, aws-exec-read, bucket-owner-read or bucket-owner-full-control",
            });
        }
    }
    Ok(ObjectSettings {
        encryption,
        storage_class,
        acl,
    })
}

/// `--requester-pays` and `--expected-bucket-owner`, validated.
fn bucket_access(opts: &MountOptions) -> Result<BucketAccess, ConfigError> {
    let expected_owner = opts
        .expected_bucket_owner
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if let Some(owner) = expected_owner {
        if !is_account_id(owner) {
            return Err(ConfigError::InvalidValue {
                what: "--expected-bucket-owner",
                value: owner.to_string(),
                fix: "give the 12-digit AWS account id of the bucket's owner, e.g. 123456789012",
            });
        }
    }
    Ok(BucketAccess {
        requester_pays: opts.requester_pays || defaults::REQUESTER_PAYS,
        expected_owner: expected_owner.map(str::to_string),
    })
}

/// A boolean environment variable of the AWS SDKs (`true`/`false`, any case); `None` when
/// unset.
fn env_flag(
    env: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<bool>, ConfigError> {
    match env(name) {
        None => Ok(None),
        Some(v) if v.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(ConfigError::InvalidValue {
            what: name,
            value: v,
            fix: "use true or false",
        }),
    }
}

fn read_customer_key(path: &Path) -> Result<CustomerKey, ConfigError> {
    let content = std::fs::read(path).map_err(|e| ConfigError::KeyFile {
        path: path.to_path_buf(),
        reason: format!("cannot read it ({e})"),
    })?;
    CustomerKey::from_file_content(&content).map_err(|reason| ConfigError::KeyFile {
        path: path.to_path_buf(),
        reason,
    })
}

/// True for an `http://` endpoint on another machine: traffic that leaves this host in
/// clear. Loopback endpoints (a local gateway or test server) stay on the host.
fn is_plain_http_off_host(endpoint: &str) -> bool {
    let Some(rest) = endpoint.trim().strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !loopback
}

/// Local copies of files not yet in S3 (the journal) must outlive the mount, a logout and
/// a reboot, so they live in a durable per-user state directory, never a tmpfs: root's in
/// `/var/lib/s3rolefs` (the FHS place for a service's state), other users' in
/// `$XDG_STATE_HOME/s3rolefs`, else `~/.local/state/s3rolefs` (the XDG base directory
/// spec's place for state that survives restarts). `$XDG_RUNTIME_DIR`, used before, is a
/// tmpfs wiped at logout; `/var/tmp` is world-writable, where another user could plant the
/// name first.
fn default_cache_dir(env: &impl Fn(&str) -> Option<String>, euid: u32) -> PathBuf {
    if euid == 0 {
        return PathBuf::from("/var/lib/s3rolefs");
    }
    let absolute = |v: String| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if let Some(state) = env("XDG_STATE_HOME").and_then(absolute) {
        return state.join("s3rolefs");
    }
    match env("HOME").and_then(absolute) {
        Some(home) => home.join(".local/state/s3rolefs"),
        // No home at all (a system account): the uid keeps users apart in /var/tmp, and
        // the directory is refused if someone else made it first.
        None => PathBuf::from(format!("/var/tmp/s3rolefs-{euid}")),
    }
}

/// Cached blocks and metadata can be fetched again, so a user's go where the XDG base
/// directory spec puts what may be deleted: `$XDG_CACHE_HOME/s3rolefs`, else
/// `~/.cache/s3rolefs` (backup tools and home-directory quotas leave `~/.cache` aside; the
/// journal stays in the state directory, since it cannot be fetched again). Root's stay
/// beside root's journal, in the unit's `StateDirectory`. `--cache-dir` puts both in one
/// place.
fn default_cache_home(env: &impl Fn(&str) -> Option<String>, euid: u32) -> PathBuf {
    let absolute = |v: String| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if euid != 0 {
        if let Some(cache) = env("XDG_CACHE_HOME").and_then(absolute) {
            return cache.join("s3rolefs");
        }
        if let Some(home) = env("HOME").and_then(absolute) {
            return home.join(".cache/s3rolefs");
        }
    }
    default_cache_dir(env, euid)
}

/// Saved mounts (`s3rolefs mount NAME`): the file named by `S3ROLEFS_MOUNTS_FILE` when set
/// (what a login unit pins, so the user manager reads the file `enable` read whatever its
/// environment); else root's in `/etc/s3rolefs/mounts.toml`, beside the unit template's
/// `/etc/s3rolefs/*.env` (system configuration lives in `/etc`); else other users' in
/// `$XDG_CONFIG_HOME/s3rolefs/mounts.toml`, else `~/.config/s3rolefs/mounts.toml` (the XDG
/// base directory spec's place for a user's configuration). `None`: a user without a home.
pub fn saved_mounts_file(env: &impl Fn(&str) -> Option<String>, euid: u32) -> Option<PathBuf> {
    let absolute = |v: String| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if let Some(file) = env(MOUNTS_FILE_ENV).and_then(absolute) {
        return Some(file);
    }
    if euid == 0 {
        return Some(PathBuf::from("/etc/s3rolefs/mounts.toml"));
    }
    let config = env("XDG_CONFIG_HOME")
        .and_then(absolute)
        .or_else(|| env("HOME").and_then(absolute).map(|h| h.join(".config")))?;
    Some(config.join("s3rolefs/mounts.toml"))
}

/// The variable that names the saved-mounts file instead of the default place.
pub const MOUNTS_FILE_ENV: &str = "S3ROLEFS_MOUNTS_FILE";

/// A number of seconds (`--metadata-ttl 0.5`), `default` when not given.
fn seconds_option(
    given: Option<f64>,
    default: Duration,
    what: &'static str,
    fix: &'static str,
) -> Result<Duration, ConfigError> {
    match given {
        None => Ok(default),
        Some(s) if s.is_finite() && (0.0..=1e9).contains(&s) => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(ConfigError::InvalidValue {
            what,
            value: s.to_string(),
            fix,
        }),
    }
}

/// A size flag (`8M`, `256M`, bytes), when given.
fn size_option(
    text: Option<&str>,
    what: &'static str,
    fix: &'static str,
) -> Result<Option<u64>, ConfigError> {
    text.map(|text| {
        parse_size(text).ok_or_else(|| ConfigError::InvalidValue {
            what,
            value: text.to_string(),
            fix,
        })
    })
    .transpose()
}

/// `8388608`, `8M`, `64K`, `1G` → bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&t[..i], t[i..].trim().to_ascii_uppercase()),
        None => (t, String::new()),
    };
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// `bucket:logs/2026` → (`bucket`, `logs/2026/`). A prefix always ends in `/`: a mount
/// shows a directory, never half a name. An access point ARN holds `:` itself; its prefix
/// starts at the first `:` after the access point's name
/// ([`crate::s3::endpoint::split_arn_source`]).
pub fn split_source(source: &str) -> (String, String) {
    let split = if source.starts_with("arn:") {
        let (arn, prefix) = endpoint::split_arn_source(source);
        prefix.map(|prefix| (arn, prefix))
    } else {
        source.split_once(':')
    };
    match split {
        None => (source.to_string(), String::new()),
        Some((bucket, prefix)) => {
            let prefix = prefix.trim_start_matches('/');
            let prefix = if prefix.is_empty() || prefix.ends_with('/') {
                prefix.to_string()
            } else {
                format!("{prefix}/")
            };
            (bucket.to_string(), prefix)
        }
    }
}

/// S3's bucket naming rules (general purpose buckets).
pub fn validate_bucket_name(name: &str) -> Result<(), ConfigError> {
    let fail = |reason| {
        Err(ConfigError::InvalidBucketName {
            name: name.to_string(),
            reason,
        })
    };
    if name.len() < 3 || name.len() > 63 {
        return fail("it must be 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return fail("it may hold only lowercase letters, digits, dots and hyphens");
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[name.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return fail("it must start and end with a letter or digit");
    }
    if name.contains("..") {
        return fail("it may not hold two dots in a row");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return fail("it may not look like an IP address");
    }
    Ok(())
}

fn parse_mode(text: Option<&str>, default: u16, what: &'static str) -> Result<u16, ConfigError> {
    let Some(text) = text else {
        return Ok(default);
    };
    let digits = text.trim().trim_start_matches("0o");
    match u16::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o7777 => Ok(mode),
        _ => Err(ConfigError::InvalidValue {
            what,
            value: text.to_string(),
            fix: "give octal permission bits, e.g. 0644",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn build(source: &str, env: &[(&str, &str)]) -> Result<MountConfig, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        MountConfig::build(
            MountOptions {
                source: source.into(),
                mountpoint: "/mnt".into(),
                ..Default::default()
            },
            move |k| env.get(k).cloned(),
        )
    }

    /// A prefix always ends in `/`; leading slashes are dropped.
    #[test]
    fn source_prefix_is_normalized() {
        assert_eq!(split_source("b"), ("b".into(), "".into()));
        assert_eq!(split_source("b:logs"), ("b".into(), "logs/".into()));
        assert_eq!(
            split_source("b:/logs/2026/"),
            ("b".into(), "logs/2026/".into())
        );
    }

    /// Bucket names follow S3's rules.
    #[test]
    fn bucket_names_are_validated() {
        for bad in ["ab", "Bad_Bucket", "-abc", "abc-", "a..b", "192.168.1.1"] {
            assert!(validate_bucket_name(bad).is_err(), "{bad}");
        }
        for good in ["abc", "my-bucket.logs", "0bucket9"] {
            assert!(validate_bucket_name(good).is_ok(), "{good}");
        }
    }

    /// The endpoint comes from the flag, else AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL.
    #[test]
    fn endpoint_precedence_follows_the_sdks() {
        let c = build(
            "bkt",
            &[
                ("AWS_ENDPOINT_URL", "http://general:1"),
                ("AWS_ENDPOINT_URL_S3", "http://s3only:2"),
            ],
        )
        .unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://s3only:2"));
        let c = build("bkt", &[("AWS_ENDPOINT_URL", "http://general:1")]).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://general:1"));
    }

    /// The region comes from AWS_REGION before AWS_DEFAULT_REGION.
    #[test]
    fn region_precedence_follows_the_sdks() {
        let c = build(
            "bkt",
            &[
                ("AWS_DEFAULT_REGION", "eu-west-1"),
                ("AWS_REGION", "us-west-2"),
            ],
        )
        .unwrap();
        assert_eq!(c.region.as_deref(), Some("us-west-2"));
    }

    /// `opts` on bucket `bkt` unless they name a source, without environment.
    fn build_with(mut opts: MountOptions) -> Result<MountConfig, ConfigError> {
        if opts.source.is_empty() {
            opts.source = "bkt".into();
        }
        opts.mountpoint = "/mnt".into();
        MountConfig::build(opts, |_| None)
    }

    /// --sse takes AES256 or aws:kms, the KMS key id only with aws:kms.
    #[test]
    fn sse_values_and_kms_key_id_are_validated() {
        let sse = |v: &str, key: Option<&str>| {
            build_with(MountOptions {
                sse: Some(v.into()),
                sse_kms_key_id: key.map(String::from),
                ..Default::default()
            })
        };
        assert_eq!(
            sse("AES256", None).unwrap().objects.encryption,
            Encryption::S3Managed
        );
        assert_eq!(
            sse("aws:kms", Some("alias/k")).unwrap().objects.encryption,
            Encryption::Kms {
                key_id: Some("alias/k".into())
            }
        );
        let err = sse("aes256x", None).unwrap_err().to_string();
        assert!(err.contains("use AES256"), "{err}");
        let err = sse("AES256", Some("alias/k")).unwrap_err().to_string();
        assert!(err.contains("needs --sse aws:kms"), "{err}");
    }

    /// An SSE-C key file is read at build, excludes --sse and refuses plain remote HTTP.
    #[test]
    fn sse_c_key_file_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, [9u8; 32]).unwrap();
        let with_key = |extra: MountOptions| {
            build_with(MountOptions {
                sse_c_key_file: Some(path.clone()),
                ..extra
            })
        };
        let c = with_key(MountOptions::default()).unwrap();
        assert!(matches!(c.objects.encryption, Encryption::Customer(_)));
        assert!(
            !format!("{c:?}").contains("CQkJ"),
            "the key leaked into Debug"
        );
        let err = with_key(MountOptions {
            sse: Some("AES256".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("cannot go together"), "{err}");
        let err = with_key(MountOptions {
            endpoint_url: Some("http://s3.example.com".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("https://"), "{err}");
        assert!(with_key(MountOptions {
            endpoint_url: Some("http://127.0.0.1:9000".into()),
            ..Default::default()
        })
        .is_ok());
        std::fs::write(&path, b"not a key\n").unwrap();
        let err = with_key(MountOptions::default()).unwrap_err().to_string();
        assert!(
            err.contains("32-byte") && !err.contains("not a key"),
            "{err}"
        );
    }

    /// Storage class and ACL take S3's names; archive classes are refused with the reason.
    #[test]
    fn storage_class_and_acl_are_validated() {
        let c = build_with(MountOptions {
            storage_class: Some("STANDARD_IA".into()),
            acl: Some("bucket-owner-full-control".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.objects.storage_class.as_deref(), Some("STANDARD_IA"));
        assert_eq!(c.objects.acl.as_deref(), Some("bucket-owner-full-control"));
        let err = build_with(MountOptions {
            storage_class: Some("GLACIER".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("restore"), "{err}");
        assert!(build_with(MountOptions {
            acl: Some("owner-full".into()),
            ..Default::default()
        })
        .is_err());
    }

    /// The single-copy limit defaults to S3's 5 GiB and takes sizes of at least 5 MiB.
    #[test]
    fn single_copy_limit_defaults_to_s3s_and_is_bounded() {
        let c = build_with(MountOptions::default()).unwrap();
        assert_eq!(c.single_copy_limit, 5 << 30);
        let c = build_with(MountOptions {
            single_copy_limit: Some("32M".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.single_copy_limit, 32 << 20);
        assert!(build_with(MountOptions {
            single_copy_limit: Some("1M".into()),
            ..Default::default()
        })
        .is_err());
    }

    /// An access point ARN is a source, with a prefix after its name; it brings its region.
    #[test]
    fn access_point_arn_sources() {
        let arn = "arn:aws:s3:us-west-2:123456789012:accesspoint:myap";
        let c = build(&format!("{arn}:logs/2026"), &[]).unwrap();
        assert_eq!(
            c.bucket,
            "arn:aws:s3:us-west-2:123456789012:accesspoint/myap"
        );
        assert_eq!(c.prefix, "logs/2026/");
        assert_eq!(c.region.as_deref(), Some("us-west-2"));
        let c = build(arn, &[("AWS_REGION", "us-east-1")]).unwrap();
        assert_eq!(c.region.as_deref(), Some("us-west-2"));
        let err = build(arn, &[("AWS_REGION", "cn-north-1")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("partition"), "{err}");
        let err = build("arn:aws:s3:us-west-2:123456789012:accesspoint/a_b", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid ARN"), "{err}");
    }

    /// Dual-stack and FIPS come from the flags or the SDKs' variables; a combination no
    /// endpoint serves fails the configuration.
    #[test]
    fn endpoint_variants_from_flags_and_environment() {
        let c = build(
            "bkt",
            &[
                ("AWS_USE_DUALSTACK_ENDPOINT", "TRUE"),
                ("AWS_USE_FIPS_ENDPOINT", "false"),
            ],
        )
        .unwrap();
        assert!(c.endpoint_variants.dual_stack && !c.endpoint_variants.fips);
        assert!(build("bkt", &[("AWS_USE_FIPS_ENDPOINT", "yes")]).is_err());
        let c = build_with(MountOptions {
            fips: true,
            transfer_acceleration: false,
            ..Default::default()
        })
        .unwrap();
        assert!(c.endpoint_variants.fips);
        let err = build_with(MountOptions {
            fips: true,
            transfer_acceleration: true,
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("drop --transfer-acceleration or --fips"),
            "{err}"
        );
        let err = build_with(MountOptions {
            source: "dotted.bucket".into(),
            transfer_acceleration: true,
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("cannot be a host name"), "{err}");
        let err = build_with(MountOptions {
            dual_stack: true,
            endpoint_url: Some("https://s3.example.com".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("custom endpoint"), "{err}");
    }

    /// Requester pays and the expected owner (12 digits) become the client's access.
    #[test]
    fn requester_pays_and_expected_owner() {
        let c = build_with(MountOptions {
            requester_pays: true,
            expected_bucket_owner: Some("123456789012".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(c.access.requester_pays);
        assert_eq!(c.access.expected_owner.as_deref(), Some("123456789012"));
        let err = build_with(MountOptions {
            expected_bucket_owner: Some("1234".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("12-digit"), "{err}");
        assert_eq!(
            build_with(MountOptions::default()).unwrap().access,
            BucketAccess::default()
        );
    }

    /// `--sse aws:kms:dsse` is DSSE-KMS, with the KMS key id when given.
    #[test]
    fn sse_dsse_takes_a_kms_key() {
        let c = build_with(MountOptions {
            sse: Some("aws:kms:dsse".into()),
            sse_kms_key_id: Some("alias/k".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            c.objects.encryption,
            Encryption::KmsDsse {
                key_id: Some("alias/k".into())
            }
        );
    }

    /// Modes are octal; garbage is an error naming the fix.
    /// A user's blocks and metadata go to the XDG cache place, the journal to the state
    /// place; root keeps both in /var/lib/s3rolefs; --cache-dir puts both there.
    #[test]
    fn caches_and_journal_by_user() {
        let user = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let home = user(&[("HOME", "/home/u")]);
        assert_eq!(
            default_cache_home(&home, 1000),
            Path::new("/home/u/.cache/s3rolefs")
        );
        assert_eq!(
            default_cache_dir(&home, 1000),
            Path::new("/home/u/.local/state/s3rolefs")
        );
        let xdg = user(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/c")]);
        assert_eq!(default_cache_home(&xdg, 1000), Path::new("/c/s3rolefs"));
        assert_eq!(default_cache_home(&xdg, 0), Path::new("/var/lib/s3rolefs"));
        let config = MountConfig::build(
            MountOptions {
                source: "bkt".into(),
                mountpoint: "/mnt".into(),
                cache_dir: Some("/srv/c".into()),
                ..Default::default()
            },
            |_| None,
        )
        .unwrap();
        assert_eq!(config.cache_home, config.cache_dir);
    }

    /// Saved mounts: the variable first, then root's /etc, then the XDG config home.
    #[test]
    fn saved_mounts_file_by_user() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let home = env(&[("HOME", "/home/u")]);
        assert_eq!(
            saved_mounts_file(&home, 1000).unwrap(),
            Path::new("/home/u/.config/s3rolefs/mounts.toml")
        );
        assert_eq!(
            saved_mounts_file(&home, 0).unwrap(),
            Path::new("/etc/s3rolefs/mounts.toml")
        );
        let xdg = env(&[("HOME", "/home/u"), ("XDG_CONFIG_HOME", "/cfg")]);
        assert_eq!(
            saved_mounts_file(&xdg, 1000).unwrap(),
            Path::new("/cfg/s3rolefs/mounts.toml")
        );
        let pinned = env(&[("HOME", "/home/u"), (MOUNTS_FILE_ENV, "/srv/m.toml")]);
        assert_eq!(
            saved_mounts_file(&pinned, 0).unwrap(),
            Path::new("/srv/m.toml")
        );
        assert_eq!(saved_mounts_file(&env(&[]), 1000), None);
    }

    #[test]
    fn modes_parse_as_octal() {
        assert_eq!(parse_mode(Some("0640"), 0, "m").unwrap(), 0o640);
        assert!(parse_mode(Some("rw-"), 0, "m").is_err());
    }
}
