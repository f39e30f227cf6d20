//! The probes of `s3rolefs check`, in the order a mount meets them. A step whose
//! precondition failed is skipped with the reason, so every ✘ line is a cause, not an echo.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::Step;
use crate::cli::when::{relative, rfc3339, span};
use crate::config::MountConfig;
use crate::credentials::chain::{self, Attempt};
use crate::credentials::imds::TokenCheck;
use crate::mount::credentials::{self as mount_credentials, MountCredentials};
use crate::mount::{bucket_error, client_config, preflight};
use crate::s3::client::S3Client;
use crate::s3::{ListObjectsParams, ObjectClient, PutObjectParams, S3Error, UploadPartCopyParams};

/// Clock difference beyond which `check` fails. Credentials are renewed minutes before they
/// expire by this machine's clock (the refresher's margin is 5 minutes at the least), and
/// S3 refuses requests signed more than 15 minutes off; a clock off by more than this is
/// broken time synchronisation, whatever works today.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// Keys the read and list probes look at.
const LIST_PROBE_KEYS: usize = 20;

/// Runs every step, handing each to `progress` as it ends; returns them all.
pub async fn run_all(
    config: &MountConfig,
    write_probe: bool,
    mut progress: impl FnMut(&Step),
) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut record = |step: Step, steps: &mut Vec<Step>| {
        progress(&step);
        steps.push(step);
    };

    record(fuse(config), &mut steps);

    let credentials = if config.no_sign_request {
        record(
            Step::skip(
                "credentials",
                "not used: --no-sign-request sends unsigned requests",
            ),
            &mut steps,
        );
        None
    } else {
        let (step, credentials) = credentials(config).await;
        let imds_matters = match &credentials {
            Some(c) => c.source.starts_with("imds"),
            // Nothing else applied: on EC2, IMDS is the likely intended source.
            None => true,
        };
        record(step, &mut steps);
        if imds_matters {
            for step in instance_metadata(config).await {
                record(step, &mut steps);
            }
        }
        credentials
    };
    let credentials = credentials.as_ref();

    // The endpoint and the clock need no credentials (an unsigned request gets an answer
    // with a Date too), and a skewed clock is a common reason why credentials fail (STS).
    let client_config = client_config(config, credentials);
    let probe = match S3Client::unconnected(&client_config) {
        Ok(client) => client,
        Err(e) => {
            record(
                Step::fail("endpoint", bucket_error(config, e, credentials).to_string()),
                &mut steps,
            );
            return steps;
        }
    };
    match probe.clock_offset_ms().await {
        Ok(offset) => {
            record(
                Step::pass("endpoint", format!("{} answers", probe.endpoint_display())),
                &mut steps,
            );
            record(clock(offset), &mut steps);
        }
        Err(e) => {
            record(
                Step::fail("endpoint", bucket_error(config, e, credentials).to_string()),
                &mut steps,
            );
            for name in ["clock", "bucket", "list", "read"] {
                record(
                    Step::skip(name, "needs the endpoint (see the ✘ endpoint line)"),
                    &mut steps,
                );
            }
            return steps;
        }
    };
    if !config.no_sign_request && credentials.is_none() {
        for name in ["bucket", "list", "read"] {
            record(
                Step::skip(name, "needs credentials (see the ✘ credentials line)"),
                &mut steps,
            );
        }
        return steps;
    }

    let client = match S3Client::connect(client_config.clone()).await {
        Ok(client) => {
            let how = if config.region.is_some() {
                "as configured"
            } else {
                "discovered"
            };
            record(
                Step::pass(
                    "bucket",
                    format!(
                        "{:?} exists, region {} ({how})",
                        config.bucket,
                        client.region()
                    ),
                ),
                &mut steps,
            );
            if let Some(step) = super::express::session_step(&client).await {
                record(step, &mut steps);
            }
            client
        }
        // Denied HeadBucket: still worth knowing which of the other permissions hold.
        Err(e @ S3Error::AccessDenied { .. }) => {
            if let Some(step) = super::express::session_failure(&config.bucket, &e) {
                record(step, &mut steps);
            }
            record(
                Step::fail("bucket", bucket_error(config, e, credentials).to_string()),
                &mut steps,
            );
            probe
        }
        Err(e) => {
            if let Some(step) = super::express::session_failure(&config.bucket, &e) {
                record(step, &mut steps);
            }
            record(
                Step::fail("bucket", bucket_error(config, e, credentials).to_string()),
                &mut steps,
            );
            for name in ["list", "read"] {
                record(
                    Step::skip(name, "needs the bucket (see the ✘ bucket line)"),
                    &mut steps,
                );
            }
            return steps;
        }
    };

    let who = credentials.map_or_else(
        || "anonymous requests".to_string(),
        |c| format!("the credentials from {} (key {})", c.source, c.masked_key),
    );
    let (list_step, sample) = list(&client, config, &who).await;
    record(list_step, &mut steps);
    if !write_probe {
        record(read(&client, config, &who, sample).await, &mut steps);
        record(
            Step::skip(
                "write",
                "not probed: --write-probe checks s3:PutObject and s3:DeleteObject with a \
                 temporary object",
            ),
            &mut steps,
        );
        record(quirks(&client, false), &mut steps);
        return steps;
    }
    let (write_step, probe_key) = write(&client, config, &who).await;
    record(write_step, &mut steps);
    // An empty bucket has nothing to read but the probe.
    let sample = sample.or_else(|| probe_key.clone());
    record(read(&client, config, &who, sample).await, &mut steps);
    if let Some(key) = probe_key {
        probe_part_copy(&client, &key).await;
        record(delete(&client, config, &who, &key).await, &mut steps);
    }
    record(quirks(&client, true), &mut steps);
    steps
}

/// `--write-probe`: one UploadPartCopy of the probe object into a multipart upload that is
/// aborted at once, so the client learns whether the server has the operation. Failures
/// other than its absence are the other steps' business.
async fn probe_part_copy(client: &S3Client, probe_key: &str) {
    let Ok(meta) = client.head_object(probe_key).await else {
        return;
    };
    let target = format!("{probe_key}-copy");
    let Ok(upload_id) = client
        .create_multipart_upload(&target, &Default::default())
        .await
    else {
        return;
    };
    let _ = client
        .upload_part_copy(UploadPartCopyParams {
            key: target.clone(),
            upload_id: upload_id.clone(),
            part_number: 1,
            source_key: probe_key.to_string(),
            range: 0..meta.size,
            source_if_match: Some(meta.etag),
        })
        .await;
    let _ = client.abort_multipart_upload(&target, &upload_id).await;
}

/// What the server does differently from S3: the provider's known quirks and those the
/// steps above met.
fn quirks(client: &S3Client, probed_writes: bool) -> Step {
    let quirks = client.quirks();
    let found = quirks.active();
    let mut message = if found.is_empty() {
        format!("provider {}: none found", quirks.provider())
    } else {
        let names: Vec<_> = found.iter().map(|q| q.name()).collect();
        format!("provider {}: {}", quirks.provider(), names.join(", "))
    };
    if !probed_writes {
        message.push_str(
            " (checksum headers, UploadPartCopy and ETags are probed with --write-probe)",
        );
    }
    let notes = found
        .iter()
        .map(|q| format!("{}: {}", q.name(), q.consequence()))
        .collect();
    Step::pass("quirks", message).with_notes(notes)
}

/// FUSE: the same checks as the mount's.
fn fuse(config: &MountConfig) -> Step {
    match preflight::check_fuse_available(config.allow_other) {
        Ok(setup) => {
            let how = match (&setup.root, &setup.fusermount) {
                (true, _) => "root mounts with mount(2)".to_string(),
                (false, Some(path)) => format!("mounts through {}", path.display()),
                (false, None) => "fusermount3 missing".to_string(),
            };
            let other = if config.allow_other {
                ", allow_other permitted"
            } else {
                ""
            };
            Step::pass("fuse", format!("/dev/fuse present; {how}{other}"))
        }
        Err(e) => Step::fail("fuse", e.to_string()),
    }
}

/// The credentials chain, as the mount runs it: which source applies and why the ones
/// before it do not, the key (masked), expiry and renewal.
async fn credentials(config: &MountConfig) -> (Step, Option<MountCredentials>) {
    let started = mount_credentials::start(&config.credentials, config.region.as_deref()).await;
    match started {
        Ok(c) => {
            let current = c.cell.load();
            let expiry = match current.expiry {
                Some(at) => format!(
                    ", expire {} ({})",
                    rfc3339(at),
                    relative(SystemTime::now(), at)
                ),
                None => ", long-term keys (no expiry)".to_string(),
            };
            let renewal = match (current.expiry.is_some(), c.cell.is_refreshable()) {
                (_, true) => ", renewed automatically",
                (true, false) => ", CANNOT be renewed: the mount fails when they expire",
                (false, false) => "",
            };
            let message = format!("from {} (key {}){expiry}{renewal}", c.source, c.masked_key);
            let step = Step::pass("credentials", message).with_notes(not_applied(&c.attempts));
            (step, Some(c))
        }
        Err(e) => (Step::fail("credentials", e.to_string()), None),
    }
}

/// "not env: why" for each source the chain passed over.
fn not_applied(attempts: &[Attempt]) -> Vec<String> {
    attempts
        .iter()
        .filter_map(|a| {
            a.skipped_because
                .as_ref()
                .map(|why| format!("not {}: {why}", a.source))
        })
        .collect()
}

/// On EC2: the metadata service, its IMDSv2 token (the hop limit), and the instance role.
async fn instance_metadata(config: &MountConfig) -> Vec<Step> {
    let ctx = mount_credentials::context_for(&config.credentials, config.region.as_deref());
    let options = mount_credentials::chain_options(&config.credentials, false);
    let imds = match chain::instance_metadata(&ctx, &options) {
        Ok(imds) => imds,
        Err(e) if e.is_not_configured() => {
            return vec![Step::skip("imds", e.to_string())];
        }
        Err(e) => return vec![Step::fail("imds", e.to_string())],
    };
    let endpoint = imds.config().endpoint.clone();
    let token = match imds.token_check().await {
        Ok(TokenCheck::V2) => Step::pass("imds", format!("IMDSv2 token from {endpoint}")),
        Ok(TokenCheck::V1Refused(status)) => Step::pass(
            "imds",
            format!(
                "IMDSv1 at {endpoint} (the token request was refused with {status}: IMDSv2 is \
                 off on this instance)"
            ),
        ),
        Ok(TokenCheck::V1TimedOut { fix }) => Step::fail(
            "imds",
            format!(
                "IMDS at {endpoint} took the IMDSv2 token request (PUT) but never answered it: \
                 {fix}; IMDSv1 works for now, but not on instances that require IMDSv2"
            ),
        ),
        Err(e) => {
            return vec![
                Step::fail("imds", e.to_string()),
                Step::skip("role", "needs IMDS (see the ✘ imds line)"),
            ]
        }
    };
    let role = match &imds.config().role_name {
        Some(name) => Step::pass("role", format!("{name:?} (--imds-role)")),
        None => match imds.role_name().await {
            Ok(name) => Step::pass("role", format!("{name:?} attached to this instance")),
            Err(e) => Step::fail("role", e.to_string()),
        },
    };
    vec![token, role]
}

/// The clock against S3's `Date`.
fn clock(offset_ms: Option<i64>) -> Step {
    let Some(offset_ms) = offset_ms else {
        return Step::skip("clock", "the endpoint sends no Date header to compare with");
    };
    let off = Duration::from_millis(offset_ms.unsigned_abs());
    let direction = if offset_ms > 0 { "behind" } else { "ahead of" };
    if off <= MAX_CLOCK_SKEW {
        // S3's Date counts whole seconds.
        let secs = off.as_secs() + 1;
        return Step::pass("clock", format!("within {secs} s of S3's"));
    }
    Step::fail(
        "clock",
        format!(
            "this machine's clock is {} {direction} S3's: credentials are renewed by this \
             clock and S3 refuses requests more than 15 min off; turn on time synchronisation \
             (timedatectl set-ntp true, or chronyc makestep)",
            span(off)
        ),
    )
}

/// ListObjectsV2 under the prefix: s3:ListBucket. Returns a key to read, if one was seen.
async fn list(client: &S3Client, config: &MountConfig, who: &str) -> (Step, Option<String>) {
    let params = ListObjectsParams {
        prefix: config.prefix.clone(),
        delimiter: None,
        start_after: None,
        max_keys: Some(LIST_PROBE_KEYS),
    };
    let place = place(config);
    match client.list_objects_page(&params, None).await {
        Ok(page) => {
            let sample = page
                .objects
                .iter()
                .find(|o| o.size > 0 && !o.key.ends_with('/'))
                .or_else(|| page.objects.first())
                .map(|o| o.key.clone());
            let seen = if page.objects.is_empty() {
                "empty".to_string()
            } else {
                format!("keys found, e.g. {:?}", page.objects[0].key)
            };
            (
                Step::pass("list", format!("s3:ListBucket on {place}: {seen}")),
                sample,
            )
        }
        Err(e) => (
            Step::fail(
                "list",
                denied_or(e, "s3:ListBucket", &bucket_arn(config, ""), &place, who),
            ),
            None,
        ),
    }
}

/// A one-byte ranged GET of a key the listing showed: s3:GetObject (and kms:Decrypt).
async fn read(client: &S3Client, config: &MountConfig, who: &str, sample: Option<String>) -> Step {
    let Some(key) = sample else {
        return Step::skip(
            "read",
            format!(
                "no object under {} to read (s3:GetObject not tried)",
                place(config)
            ),
        );
    };
    let params = crate::s3::GetObjectParams {
        key: key.clone(),
        range: Some(0..1),
        if_match: None,
    };
    match client.get_object(params).await {
        Ok(_) => Step::pass(
            "read",
            format!("s3:GetObject: read the first byte of {key:?}"),
        ),
        // A zero-byte object has no first byte; the GET was allowed to say so.
        Err(S3Error::InvalidRange) => Step::pass("read", format!("s3:GetObject on {key:?}")),
        Err(e) => Step::fail(
            "read",
            denied_or(
                e,
                "s3:GetObject",
                &bucket_arn(config, "/*"),
                &format!("{key:?}"),
                who,
            ),
        ),
    }
}

/// `--write-probe`: PutObject of a temporary key under the prefix; returns the key when
/// it was written.
async fn write(client: &S3Client, config: &MountConfig, who: &str) -> (Step, Option<String>) {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let key = format!(
        "{}.s3rolefs-check-{}-{stamp}",
        config.prefix,
        std::process::id()
    );
    let put = PutObjectParams {
        key: key.clone(),
        body: Bytes::from_static(b"s3rolefs check: write probe; safe to delete\n"),
        metadata: Default::default(),
    };
    match client.put_object(put).await {
        Ok(_) => (
            Step::pass("write", format!("s3:PutObject: wrote {key:?}")),
            Some(key),
        ),
        Err(e) => {
            let arn = bucket_arn(config, "/*");
            let what = format!("{key:?}");
            let message = denied_or(e, "s3:PutObject", &arn, &what, who);
            (Step::fail("write", message), None)
        }
    }
}

/// `--write-probe`: DeleteObject of the probe.
async fn delete(client: &S3Client, config: &MountConfig, who: &str, key: &str) -> Step {
    match client.delete_object(key).await {
        Ok(()) => Step::pass("delete", format!("s3:DeleteObject: removed {key:?}")),
        Err(e) => {
            let arn = bucket_arn(config, "/*");
            let what = format!("{key:?}");
            Step::fail(
                "delete",
                format!(
                    "{}; the probe object {what} is left behind: delete it",
                    denied_or(e, "s3:DeleteObject", &arn, &what, who)
                ),
            )
        }
    }
}

/// An access denial named with the permission it needs; any other error as it is.
fn denied_or(error: S3Error, permission: &str, resource: &str, what: &str, who: &str) -> String {
    match error {
        S3Error::AccessDenied { code, message } => {
            let detail = if message.is_empty() {
                code
            } else {
                format!("{code}: {message}")
            };
            let kms = match permission {
                "s3:GetObject" => " (and kms:Decrypt on the key of SSE-KMS objects)",
                "s3:PutObject" => " (and kms:GenerateDataKey on the bucket's key with SSE-KMS)",
                _ => "",
            };
            format!(
                "access denied to {what} ({detail}): {who} need {permission} on {resource}{kms}"
            )
        }
        other => format!("{permission} on {what} failed: {other}"),
    }
}

/// The resource a policy grants: the bucket (`arn:aws:s3:::B`, objects `B/*`), or the
/// access point (its ARN, objects `ARN/object/*`).
fn bucket_arn(config: &MountConfig, suffix: &str) -> String {
    let (base, objects) = if config.bucket.starts_with("arn:") {
        (config.bucket.clone(), format!("{}/object", config.bucket))
    } else {
        let arn = format!("arn:aws:s3:::{}", config.bucket);
        (arn.clone(), arn)
    };
    match (suffix, config.prefix.as_str()) {
        ("/*", "") => format!("{objects}/*"),
        ("/*", prefix) => format!("{objects}/{prefix}*"),
        _ => base,
    }
}

/// `bucket:prefix/` or `bucket`, for messages.
fn place(config: &MountConfig) -> String {
    if config.prefix.is_empty() {
        format!("{:?}", config.bucket)
    } else {
        format!("{:?}", format!("{}:{}", config.bucket, config.prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock within five minutes passes; beyond, the line says which way and how far.
    #[test]
    fn clock_skew_is_judged_and_described() {
        assert_eq!(clock(Some(2_000)).outcome, super::super::Outcome::Pass);
        assert_eq!(clock(None).outcome, super::super::Outcome::Skip);
        let late = clock(Some(20 * 60 * 1000));
        assert_eq!(late.outcome, super::super::Outcome::Fail);
        assert!(late.message.contains("20 min behind"), "{}", late.message);
        let early = clock(Some(-2 * 3600 * 1000));
        assert!(early.message.contains("2 h ahead of"), "{}", early.message);
    }

    /// Resources in denial messages are the ARNs a policy needs.
    #[test]
    fn arns_cover_the_prefix() {
        let mut config = MountConfig::build(
            crate::config::MountOptions {
                source: "my-bucket:logs/".into(),
                ..Default::default()
            },
            |_| None,
        )
        .unwrap();
        assert_eq!(bucket_arn(&config, ""), "arn:aws:s3:::my-bucket");
        assert_eq!(bucket_arn(&config, "/*"), "arn:aws:s3:::my-bucket/logs/*");
        config.prefix.clear();
        assert_eq!(bucket_arn(&config, "/*"), "arn:aws:s3:::my-bucket/*");
    }
}
