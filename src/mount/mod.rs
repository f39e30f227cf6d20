//! Mounting: checks first, then credentials and the bucket, then the kernel mount; the
//! background/foreground split; signals; clean unmount.
//!
//! Order matters: everything that can fail for a reason the user can fix (bucket name,
//! mount point, FUSE, credentials, bucket access, region) is checked before the kernel
//! mount, so a failed `mount` leaves nothing mounted.
//!
//! - `preflight`: FUSE available, mount point usable.
//! - `credentials`: the chain, the refresher, and the MFA prompt at mount.
//! - `daemon`: the background child and its readiness report.
//! - `kernel`: mount(2)/umount(2) as `fuse.s3rolefs` for root.
//! - `control`: the per-mount status socket that `s3rolefs status` reads, and its client.
//! - `error`: [`MountError`], one line with cause and fix.

pub mod control;
pub mod credentials;
pub mod daemon;
pub mod error;
pub mod kernel;
pub mod notify;
pub mod preflight;

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

use fuser::{Config, MountOption, SessionACL};

use crate::config::MountConfig;
use crate::fs::fuse::FuseAdapter;
use crate::fs::{FsConfig, S3Filesystem};
use crate::private_dir::PrivateDir;
use crate::s3::client::{ClientConfig, S3Client};
use crate::s3::S3Error;
pub use error::MountError;

/// Mounts as `config` says; returns when the mount ends (foreground) or is ready
/// (background).
pub fn mount(config: MountConfig, arguments: &[OsString]) -> Result<(), MountError> {
    if !config.foreground {
        // Check what can be checked cheaply before starting the child, for a quick answer.
        preflight::check_fuse_available(config.allow_other)?;
        preflight::check_mountpoint(&config.mountpoint)?;
        return daemon::spawn_and_wait(arguments, config.log_file.as_deref());
    }
    let child = daemon::is_daemon_child();
    let result = mount_foreground(config, child);
    if let Err(e) = &result {
        if child {
            daemon::report_error(&e.to_string());
        }
    }
    result
}

/// Block-sized buffers (8 MiB GET bodies, upload parts) come and go at disk speed. Above
/// glibc's mmap threshold each one is a fresh mmap: page faults and zeroed pages for every
/// block, then munmap. Serving them from the heap instead reuses the same memory; what the
/// heap keeps is bounded by the cache and prefetch budgets.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_large_buffers_on_the_heap() {
    const THRESHOLD: libc::c_int = 64 * 1024 * 1024;
    // SAFETY: mallopt only sets allocator parameters; called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 2 * THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_large_buffers_on_the_heap() {}

/// Raises the soft limit of open descriptors to the hard one. Write-back holds each queued
/// file's local copy open until its upload: with the soft limit most desktops start
/// programs with (1,024), a `tar x` while offline failed every `close` past the
/// thousandth file with `EMFILE` (and `status` could no longer connect). The hard limit
/// there is 524,288; Go programs and nginx do the same at start.
fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct passed, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= limit.rlim_max
        {
            return;
        }
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            log::debug!(
                "open files: cannot raise {} to {}",
                limit.rlim_cur,
                limit.rlim_max
            );
        }
    }
}

fn mount_foreground(config: MountConfig, report_ready: bool) -> Result<(), MountError> {
    keep_large_buffers_on_the_heap();
    raise_open_files();
    preflight::check_fuse_available(config.allow_other)?;
    let mountpoint = preflight::check_mountpoint(&config.mountpoint)?;
    // Local settings are checked before the network is asked anything: a planted or foreign
    // cache directory is refused at once, with nothing started that must be stopped.
    let cache_dir = cache_dir(&config)?;
    // The same directory when --cache-dir is given (or for root); checked again, cheaply.
    let cache_home = private_dir(&config.cache_home)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("s3rolefs-io")
        .build()
        .map_err(|e| MountError::Runtime(e.to_string()))?;
    let listings = listing_store(&config, &cache_home);
    // The credentials must live as long as the mount: they hold the refresher.
    let (client, credentials) = runtime.block_on(connect(&config, listings.as_deref()))?;
    log::info!(
        "bucket {:?} in region {} at {}",
        config.bucket,
        client.region(),
        client.endpoint_display()
    );
    let facts = control::MountFacts {
        pid: std::process::id(),
        mountpoint: mountpoint.to_string_lossy().into_owned(),
        source: source_name(&config),
        endpoint: client.endpoint_display(),
        region: client.region().to_string(),
        read_only: config.read_only,
        started: std::time::SystemTime::now(),
    };
    let fs = Arc::new(S3Filesystem::new(
        Arc::new(client),
        FsConfig {
            prefix: config.prefix.clone(),
            uid: config.uid,
            gid: config.gid,
            file_mode: config.file_mode,
            dir_mode: config.dir_mode,
            metadata_ttl: config.metadata_ttl,
            read_only: config.read_only,
            writer: Arc::new(writer_config(&config, &cache_dir)?),
            cache_size: config.cache_size,
            max_prefetch_memory: config.max_prefetch_memory,
            disk_cache: disk_cache(&config, &cache_home)?,
            disk_cache_size: config.cache_dir_size,
            posix_metadata: config.posix_metadata,
            content_type_default: config.content_type_default.clone(),
            meta_cache: meta_cache(&config, &cache_home),
            write_back: config.write_back.then(|| {
                config
                    .write_back_max_size
                    .unwrap_or_else(|| default_write_back_size(&config.cache_dir))
            }),
            exclude: config.exclude.clone(),
            listing_store: listings,
        },
    ));
    // Before the mount, so a mount that is visible can always be asked; dropped (and the
    // socket removed) on every way out of here.
    let mut control = control_socket(&runtime, facts, credentials.as_ref(), Arc::clone(&fs));
    // Recovery of what a mount that died left in the journal starts now, beside serving.
    fs.start_background(runtime.handle());
    fs.start_write_back(runtime.handle());
    let uploads = Arc::clone(&fs);
    let read_ahead_mountpoint = mountpoint.clone();
    let adapter = FuseAdapter::new(fs, runtime.handle().clone())
        .after_init(move || raise_read_ahead(&read_ahead_mountpoint));
    let read_replies = adapter.read_replies();
    let fuse = fuse_config(&config);
    let mount_failed = |e: std::io::Error| MountError::MountFailed {
        path: mountpoint.clone(),
        reason: e.to_string(),
    };
    // Signal handlers go in before the mount exists: a SIGTERM in between would otherwise
    // kill the process with the default action and leave a dead mount behind.
    let signals = {
        let _runtime = runtime.enter();
        termination_signals()
    };
    // Root mounts with mount(2) itself so the type reads `fuse.s3rolefs`; other users go
    // through fuser and fusermount3 (which set the same type).
    let direct = kernel::can_mount_directly();
    let mut session = if direct {
        let fd = kernel::mount_fuse(
            &mountpoint,
            &fs_name(&config),
            config.read_only,
            config.allow_other,
        )
        .map_err(mount_failed)?;
        fuser::Session::from_fd(adapter, fd, fuse.acl, fuse.clone()).map_err(|e| {
            let _ = kernel::unmount(&mountpoint, true);
            mount_failed(e)
        })?
    } else {
        fuser::Session::new(adapter, &mountpoint, &fuse).map_err(mount_failed)?
    };
    if let Err(e) = read_replies.attach(std::os::fd::AsFd::as_fd(&session)) {
        // Reads still work through fuser's replies, joined: one copy more per read.
        log::warn!("cannot duplicate the FUSE device for read replies: {e}");
    }
    log::info!(
        "mounted {} on {}",
        source_name(&config),
        mountpoint.display()
    );
    notify::notify(&format!(
        "READY=1\nSTATUS=mounted {} on {}",
        source_name(&config),
        mountpoint.display()
    ));
    if report_ready {
        daemon::report_ready();
        // Only now: until the mount was ready the terminal may have been needed (MFA code).
        daemon::detach_session();
    }
    // Leave the mount point's parent free (a daemon must not hold a directory busy).
    let _ = std::env::set_current_dir("/");
    let mut unmounter = session.unmount_callable();
    let signal_mountpoint = mountpoint.clone();
    runtime.spawn(async move {
        wait_for_termination(signals).await;
        log::info!("signal received: unmounting");
        notify::notify("STOPPING=1");
        let result = if direct {
            kernel::unmount(&signal_mountpoint, true)
        } else {
            unmounter.unmount()
        };
        if let Err(e) = result {
            log::error!("unmount on signal failed: {e}");
        }
    });
    let outcome = session.run();
    notify::notify("STOPPING=1");
    if direct && preflight::mount_type_of(&mountpoint).is_some() {
        // The session ended while still mounted (a device error): do not leave a dead mount.
        let _ = kernel::unmount(&mountpoint, true);
    }
    log::info!("unmounted {}", mountpoint.display());
    // What the journal holds gets one more try before the process goes; what still fails
    // stays journaled for the next mount.
    // The status socket answers until then: `s3rolefs unmount` shows what is waited for.
    let left = runtime.block_on(uploads.finish_uploads());
    if left > 0 {
        log::warn!(
            "{left} file(s) could not be uploaded before unmount; they stay in {} and the \
             next mount of this bucket uploads them",
            config.cache_dir.join("journal").display()
        );
    }
    if let Some(socket) = control.take() {
        socket.close();
    }
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    outcome.map_err(|e| MountError::MountFailed {
        path: mountpoint,
        reason: e.to_string(),
    })
}

/// The mount's status socket (see `control`); a mount without one still works, so a
/// failure is a warning.
fn control_socket(
    runtime: &tokio::runtime::Runtime,
    facts: control::MountFacts,
    credentials: Option<&credentials::MountCredentials>,
    fs: Arc<S3Filesystem<S3Client>>,
) -> Option<Arc<control::ControlSocket>> {
    let live = credentials
        .map(|c| control::LiveCredentials::new(Arc::clone(&c.cell), c.refresher.status_handle()));
    let status: control::StatusSource = Arc::new(move || facts.status(live.as_ref(), fs.status()));
    match control::ControlSocket::open(runtime.handle(), status) {
        Ok(socket) => {
            log::debug!("status socket at {}", socket.path().display());
            Some(socket)
        }
        Err(e) => {
            log::warn!("{e}; `s3rolefs status` will not show this mount");
            None
        }
    }
}

/// Gives the mount the read-ahead of [`kernel::READ_AHEAD_KIB`]; as root only (sysfs), and
/// a refusal costs speed, nothing else.
fn raise_read_ahead(mountpoint: &Path) {
    if !kernel::can_mount_directly() {
        return;
    }
    let Some(device) = preflight::mount_device_of(mountpoint) else {
        log::debug!(
            "read-ahead left as is: {} not in mountinfo",
            mountpoint.display()
        );
        return;
    };
    match kernel::set_read_ahead(&device, kernel::READ_AHEAD_KIB) {
        Ok(()) => log::debug!(
            "read-ahead of {device} set to {} KiB",
            kernel::READ_AHEAD_KIB
        ),
        Err(e) => log::debug!("read-ahead of {device} left as is: {e}"),
    }
}

type TerminationSignals = (tokio::signal::unix::Signal, tokio::signal::unix::Signal);

/// SIGTERM and SIGINT handlers (inside the runtime's context).
fn termination_signals() -> Option<TerminationSignals> {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => Some((term, int)),
        _ => {
            log::error!("cannot install signal handlers; unmount with: s3rolefs unmount DIR");
            None
        }
    }
}

async fn wait_for_termination(signals: Option<TerminationSignals>) {
    let Some((mut term, mut int)) = signals else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn source_name(config: &MountConfig) -> String {
    if config.prefix.is_empty() {
        config.bucket.clone()
    } else {
        format!("{}:{}", config.bucket, config.prefix)
    }
}

/// The cache directory (`--cache-dir`): staging copies and cached blocks hold the bucket's
/// data, so it is this user's own, 0700, and never reached through a symlink.
fn cache_dir(config: &MountConfig) -> Result<PrivateDir, MountError> {
    private_dir(&config.cache_dir)
}

/// `dir`, this user's own and 0700, or why not (with the fix).
fn private_dir(dir: &Path) -> Result<PrivateDir, MountError> {
    PrivateDir::create(dir).map_err(|e| MountError::MountFailed {
        path: dir.to_path_buf(),
        // `e` names the fix; "another" one is given with --cache-dir.
        reason: format!("cannot use the cache directory (--cache-dir): {e}"),
    })
}

/// The disk tier of the block cache, in `<cache home>/blocks`, when `--cache-dir-size` asks.
fn disk_cache(
    config: &MountConfig,
    cache_home: &PrivateDir,
) -> Result<Option<Arc<crate::cache::disk::DiskCache>>, MountError> {
    if config.cache_dir_size == 0 {
        return Ok(None);
    }
    let failed = |path: std::path::PathBuf, e: &dyn std::fmt::Display| MountError::MountFailed {
        path,
        reason: format!(
            "cannot use the block cache directory (another with --cache-dir, or none without \
             --cache-dir-size): {e}"
        ),
    };
    let blocks = cache_home
        .subdir("blocks")
        .map_err(|e| failed(e.path().to_path_buf(), &e))?;
    let path = blocks.path().to_path_buf();
    crate::cache::disk::DiskCache::open(blocks, config.cache_dir_size)
        .map(Some)
        .map_err(|e| failed(path, &e))
}

/// The metadata kept across remounts, in `<cache home>/meta`, with POSIX metadata; none
/// (only slower) if the directory cannot be used.
/// The listings kept across remounts (`listings/` of the cache home), with write-back only:
/// only offline answers use them.
fn listing_store(
    config: &MountConfig,
    cache_home: &PrivateDir,
) -> Option<Arc<crate::cache::listings::ListingStore>> {
    if !config.write_back {
        return None;
    }
    match cache_home.subdir("listings") {
        Ok(dir) => Some(Arc::new(crate::cache::listings::ListingStore::open(
            dir,
            &bucket_id(config),
            crate::cache::listings::CAPACITY,
        ))),
        Err(e) => {
            log::warn!("no listings kept for offline use: {e}");
            None
        }
    }
}

/// The endpoint, bucket and prefix of a mount, as one string: what a cache file is of.
fn bucket_id(config: &MountConfig) -> String {
    format!(
        "{}\n{}\n{}",
        config.endpoint.as_deref().unwrap_or(""),
        config.bucket,
        config.prefix
    )
}

fn meta_cache(
    config: &MountConfig,
    cache_home: &PrivateDir,
) -> Option<Arc<crate::cache::meta::MetaCache>> {
    if !config.posix_metadata {
        return None;
    }
    match cache_home.subdir("meta") {
        Ok(dir) => {
            let cache = crate::cache::meta::MetaCache::open(
                dir,
                &bucket_id(config),
                crate::cache::meta::CAPACITY,
            );
            Some(Arc::new(cache))
        }
        Err(e) => {
            log::warn!("no metadata cache: {e}");
            None
        }
    }
}

/// The upload settings: local copies in the journal under `cache_dir` (checked private
/// by [`cache_dir`]), for this mount's bucket.
fn writer_config(
    config: &MountConfig,
    cache_dir: &PrivateDir,
) -> Result<crate::upload::WriterConfig, MountError> {
    let dir = cache_dir
        .subdir("journal")
        .map_err(|e| MountError::MountFailed {
            path: e.path().to_path_buf(),
            reason: format!("cannot use the journal directory (another with --cache-dir): {e}"),
        })?;
    let journal = crate::upload::Journal::new(
        dir,
        crate::upload::journal::BucketId {
            endpoint: config.endpoint.clone(),
            bucket: config.bucket.clone(),
        },
    );
    let mut writer = crate::upload::WriterConfig::new(journal, config.max_upload_memory);
    if let Some(part_size) = config.part_size {
        writer.part_size = part_size;
    }
    if let Some(concurrency) = config.upload_concurrency {
        writer.concurrency = concurrency.max(1);
    }
    writer.write_back = config.write_back;
    writer.incremental_upload = config.incremental_upload;
    Ok(writer)
}

/// The write-back queue's default bound: a quarter of the disk the cache directory is on
/// (the queue is local copies there, and the disk has other users), 10 GiB when the disk
/// cannot tell.
fn default_write_back_size(cache_dir: &Path) -> u64 {
    const UNKNOWN: u64 = 10 << 30;
    let Ok(path) = std::ffi::CString::new(cache_dir.as_os_str().as_encoded_bytes()) else {
        return UNKNOWN;
    };
    let mut fs = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: statvfs fills the struct on success, and only then is it read.
    let fs = unsafe {
        if libc::statvfs(path.as_ptr(), fs.as_mut_ptr()) != 0 {
            return UNKNOWN;
        }
        fs.assume_init()
    };
    (fs.f_blocks as u64).saturating_mul(fs.f_frsize as u64) / 4
}

/// The mount's source as `/proc/mounts` shows it.
fn fs_name(config: &MountConfig) -> String {
    format!("s3rolefs:{}", source_name(config))
}

fn fuse_config(config: &MountConfig) -> Config {
    let mut options = vec![
        MountOption::FSName(fs_name(config)),
        MountOption::Subtype("s3rolefs".into()),
        // The kernel checks permissions against the modes we report (uid/gid/mode flags).
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoAtime,
    ];
    // On a read-only mount the kernel refuses every modification with EROFS itself.
    options.push(if config.read_only {
        MountOption::RO
    } else {
        MountOption::RW
    });
    let mut fuse = Config::default();
    fuse.mount_options = options;
    fuse.acl = if config.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    fuse
}

/// The S3 client for the mount: credentials, bucket access and region, each failure
/// turned into its one-line message. The returned credentials must live as long as the
/// mount: they hold the refresher.
/// A write-back mount (`listings`: what earlier mounts kept) starts offline when S3 gives
/// no answer at all: it works from what was kept, and its queue goes once S3 answers.
async fn connect(
    config: &MountConfig,
    listings: Option<&crate::cache::listings::ListingStore>,
) -> Result<(S3Client, Option<credentials::MountCredentials>), MountError> {
    let mount_credentials = if config.no_sign_request {
        None
    } else {
        Some(credentials::start(&config.credentials, config.region.as_deref()).await?)
    };
    let client_config = client_config(config, mount_credentials.as_ref());
    let client = match (S3Client::connect(client_config.clone()).await, listings) {
        (Ok(client), listings) => {
            if let Some(store) = listings {
                store.remember_region(client.region());
            }
            client
        }
        (Err(e @ S3Error::Network { .. }), Some(store))
            if !crate::s3::express::is_directory_bucket(&config.bucket) =>
        {
            log::warn!(
                "{e}; mounting offline from what earlier mounts kept: files closed wait in \
                 the write-back queue until S3 answers"
            );
            let mut offline = client_config;
            if offline.region.is_none() {
                offline.region_hint = store.region().or(offline.region_hint);
            }
            S3Client::offline(offline)
                .map_err(|e| bucket_error(config, e, mount_credentials.as_ref()))?
        }
        (Err(e), _) => return Err(bucket_error(config, e, mount_credentials.as_ref())),
    };
    let mut client = client
        .with_object_settings(config.objects.clone())
        .with_single_copy_limit(config.single_copy_limit);
    for quirk in client.quirks().active() {
        log::info!(
            "provider {}: {} ({})",
            config.provider,
            quirk.name(),
            quirk.consequence()
        );
    }
    if config.write_back {
        // Drive mode works on through an outage from what it saw; it does not wait a
        // minute for a network that is gone (see `fs::writeback`).
        client.set_unreachable_budget(Some(crate::fs::writeback::UNREACHABLE_BUDGET));
    }
    Ok((client, mount_credentials))
}

/// The S3 client's configuration for `config`, signing with `credentials` (`None`:
/// unsigned requests).
pub fn client_config(
    config: &MountConfig,
    credentials: Option<&credentials::MountCredentials>,
) -> ClientConfig {
    // The user's region is the bucket's or an error; the instance's is only where to ask first.
    let (region, region_hint) = match (&config.region, credentials) {
        (Some(region), _) => (Some(region.clone()), None),
        (None, Some(c)) if c.region_from_instance => (None, c.region.clone()),
        (None, c) => (c.and_then(|c| c.region.clone()), None),
    };
    ClientConfig {
        bucket: config.bucket.clone(),
        endpoint: config.endpoint.clone(),
        region,
        region_hint,
        force_path_style: config.force_path_style,
        provider: config.provider,
        variants: config.endpoint_variants,
        access: config.access.clone(),
        credentials: credentials.map(|c| Arc::clone(&c.cell)),
        max_attempts: config.max_attempts,
        retry_timeout: config.retry_timeout,
        initial_backoff: config.initial_backoff,
        max_backoff: config.max_backoff,
        connect_timeout: config.connect_timeout,
        io_timeout: config.io_timeout,
        ca_bundle: config.ca_bundle.clone(),
        user_agent: format!("s3rolefs/{}", env!("CARGO_PKG_VERSION")),
        // Unsigned requests (`--no-sign-request`) have no date to correct: any clock does.
        clock: credentials.map(|c| c.clock.clone()).unwrap_or_default(),
    }
}

/// Why the bucket of `config` could not be opened, as its one-line message.
pub fn bucket_error(
    config: &MountConfig,
    error: S3Error,
    credentials: Option<&credentials::MountCredentials>,
) -> MountError {
    let (source_name, key) = match credentials {
        Some(c) => (c.source.clone(), c.masked_key.clone()),
        None => ("--no-sign-request".to_string(), "none".to_string()),
    };
    match error {
        S3Error::NoSuchBucket { .. } => MountError::NoSuchBucket {
            bucket: config.bucket.clone(),
            endpoint: config
                .endpoint
                .clone()
                .unwrap_or_else(|| "AWS S3".to_string()),
        },
        S3Error::AccessDenied { code, message } => MountError::AccessDenied {
            bucket: config.bucket.clone(),
            resource: match config.bucket.starts_with("arn:") {
                // An access point's policy names the access point itself.
                true => config.bucket.clone(),
                false => format!("arn:aws:s3:::{}", config.bucket),
            },
            detail: if message.is_empty() {
                code
            } else {
                format!("{code}: {message}")
            },
            source_name,
            key,
        },
        S3Error::CredentialsRejected { code, message } => MountError::BadCredentials(format!(
            "S3 rejected the credentials from {source_name} (key {key}): {code}: {message}; check or renew them"
        )),
        S3Error::WrongRegion { region, signed_for } => MountError::WrongRegion {
            bucket: config.bucket.clone(),
            region,
            signed_for,
        },
        S3Error::Network { endpoint, reason } => MountError::Unreachable { endpoint, reason },
        e @ S3Error::InvalidConfig(_) => MountError::InvalidClientConfig(e.to_string()),
        other => MountError::S3 {
            bucket: config.bucket.clone(),
            detail: other.to_string(),
        },
    }
}

/// `s3rolefs unmount DIR`: unmounts a FUSE mount point (root: umount(2); others:
/// `fusermount3 -u`).
pub fn unmount(path: &Path) -> Result<(), MountError> {
    let canonical = path.canonicalize().map_err(|_| MountError::NotMounted {
        path: path.to_path_buf(),
    })?;
    match preflight::mount_type_of(&canonical) {
        Some(t) if t.starts_with("fuse") => {}
        _ => return Err(MountError::NotMounted { path: canonical }),
    }
    if kernel::can_mount_directly() {
        return kernel::unmount(&canonical, false).map_err(|err| {
            let hint = if err.raw_os_error() == Some(libc::EBUSY) {
                "; a process still uses it (see: fuser -vm DIR)"
            } else {
                ""
            };
            MountError::UnmountFailed {
                path: canonical.clone(),
                reason: format!("{err}{hint}"),
            }
        });
    }
    let Some(fusermount) = preflight::find_on_path("fusermount3") else {
        return Err(MountError::NoFusermount);
    };
    let out = std::process::Command::new(fusermount)
        .arg("-u")
        .arg(&canonical)
        .output()
        .map_err(|e| MountError::UnmountFailed {
            path: canonical.clone(),
            reason: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(MountError::UnmountFailed {
            path: canonical,
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The soft limit of open descriptors is raised to the hard one (one below it here,
    /// so the tests running beside this one lose nothing).
    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_one() {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit read and write the struct passed.
        unsafe {
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
            let lower = libc::rlimit {
                rlim_cur: limit.rlim_max - 1,
                rlim_max: limit.rlim_max,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lower), 0);
        }
        raise_open_files();
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) }, 0);
        assert_eq!(now.rlim_cur, limit.rlim_max);
    }
    use crate::config::MountOptions;
    use std::os::unix::fs::PermissionsExt;

    /// A symlink planted at the cache directory's name (`/var/tmp/s3rolefs -> /etc`) stops
    /// the mount with a message naming it, and its target keeps its mode.
    #[test]
    fn planted_cache_dir_symlink_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("etc");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = tmp.path().join("s3rolefs");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let config = MountConfig::build(
            MountOptions {
                source: "bkt".into(),
                mountpoint: "/mnt".into(),
                cache_dir: Some(link.clone()),
                ..Default::default()
            },
            |_| None,
        )
        .unwrap();
        let err = cache_dir(&config).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(err.to_string().contains("--cache-dir"), "{err}");
        assert!(err.to_string().contains("rm "), "{err}");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755);
    }
}
