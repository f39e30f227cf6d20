//! `s3rolefs check BUCKET[:PREFIX]`: the doctor. Runs, in order, everything a mount needs —
//! FUSE, credentials (and, on EC2, the metadata service and the instance role), the S3
//! endpoint and the clock, the bucket and its region, and the permissions to list, read and
//! (with `--write-probe`) write and delete — and prints one ✔/✘ line per step whose text names
//! the cause and the fix. Exit status 0 only when no step failed; `--json` for scripts.
//!
//! - `steps`: the probes themselves; each returns a [`Step`].
//! - `express`: the step of a directory bucket (S3 Express One Zone): session auth.
//!
//! The messages are the mount's own (`MountError`, the credential sources' errors): what
//! `check` says of a problem is what `mount` would say, so the troubleshooting page covers both.

mod express;
mod steps;

use std::path::PathBuf;

use clap::Args;

use super::{BucketArgs, CredentialArgs};
use crate::config::{MountConfig, MountOptions};

/// `s3rolefs check`'s arguments.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The bucket, optionally with the key prefix a mount would use.
    #[arg(value_name = "BUCKET[:PREFIX]")]
    source: String,
    #[command(flatten)]
    bucket: BucketArgs,
    /// Check unsigned (public bucket) access; no credentials are looked up.
    #[arg(long, help_heading = "Credentials")]
    no_sign_request: bool,
    #[command(flatten)]
    credentials: CredentialArgs,
    /// Check that other users may be given access (user_allow_other in /etc/fuse.conf).
    #[arg(long, help_heading = "Mount")]
    allow_other: bool,
    /// Also check s3:PutObject and s3:DeleteObject, by writing and removing a temporary
    /// object under the prefix.
    #[arg(long)]
    write_probe: bool,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

/// How a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    /// Not run: not asked for, or an earlier failure makes it meaningless.
    Skip,
}

impl Outcome {
    fn mark(self) -> &'static str {
        match self {
            Outcome::Pass => "✔",
            Outcome::Fail => "✘",
            Outcome::Skip => "–",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
        }
    }
}

/// One line of the report.
#[derive(Clone, Debug)]
pub struct Step {
    pub name: &'static str,
    pub outcome: Outcome,
    /// What was found; for a failure, the cause and the fix.
    pub message: String,
    /// Further lines (why the other credential sources do not apply).
    pub notes: Vec<String>,
}

impl Step {
    pub fn pass(name: &'static str, message: impl Into<String>) -> Step {
        Step::new(name, Outcome::Pass, message.into())
    }

    pub fn fail(name: &'static str, message: impl Into<String>) -> Step {
        Step::new(name, Outcome::Fail, message.into())
    }

    pub fn skip(name: &'static str, message: impl Into<String>) -> Step {
        Step::new(name, Outcome::Skip, message.into())
    }

    fn new(name: &'static str, outcome: Outcome, message: String) -> Step {
        Step {
            name,
            outcome,
            message,
            notes: Vec::new(),
        }
    }

    pub fn with_notes(mut self, notes: Vec<String>) -> Step {
        self.notes = notes;
        self
    }
}

/// Runs every step and prints the report; `Err` (a summary line) when a step failed.
pub fn run(args: CheckArgs) -> Result<(), String> {
    let mut options = MountOptions {
        source: args.source,
        mountpoint: PathBuf::new(),
        no_sign_request: args.no_sign_request,
        credentials: args.credentials.into_options(),
        allow_other: args.allow_other,
        ..MountOptions::default()
    };
    args.bucket.apply(&mut options);
    let json = args.json;
    let config = match MountConfig::build(options, |k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(e) => {
            // Scripts reading --json get a document whatever went wrong.
            if json {
                let out = serde_json::json!({ "ok": false, "error": e.to_string(), "checks": [] });
                println!("{out:#}");
            }
            return Err(e.to_string());
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let report = runtime.block_on(steps::run_all(&config, args.write_probe, |step| {
        if !json {
            print_step(step);
        }
    }));
    let failed = report.iter().filter(|s| s.outcome == Outcome::Fail).count();
    if json {
        let out = serde_json::json!({
            "ok": failed == 0,
            "bucket": config.bucket,
            "prefix": config.prefix,
            "checks": report.iter().map(|s| serde_json::json!({
                "check": s.name,
                "status": s.outcome.word(),
                "message": s.message,
                "notes": s.notes,
            })).collect::<Vec<_>>(),
        });
        println!("{out:#}");
    }
    // The refresher and any request still in flight end with the runtime, not after.
    runtime.shutdown_background();
    if failed == 0 {
        if !json {
            let passed = report.iter().filter(|s| s.outcome == Outcome::Pass).count();
            println!("{passed} checks passed; a mount of this bucket should work");
        }
        Ok(())
    } else {
        Err(format!(
            "{failed} of {} checks failed (see the ✘ lines)",
            report.len()
        ))
    }
}

/// Width of the step-name column.
const NAME_WIDTH: usize = 12;

fn print_step(step: &Step) {
    println!(
        "{} {:<NAME_WIDTH$} {}",
        step.outcome.mark(),
        step.name,
        step.message
    );
    for note in &step.notes {
        println!("  {:<NAME_WIDTH$} {note}", "");
    }
}
