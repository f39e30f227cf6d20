//! The integration tests' S3 server as a standalone program, for demos and benchmarks:
//!
//! ```text
//! cargo run --release --example s3server -- --addr 127.0.0.1:9000 --bucket demo \
//!     --access-key K --secret-key S [--region us-east-1] [--populate-from DIR]
//! ```
//!
//! Prints `READY http://ADDR` once listening; `RUST_LOG=debug` logs every request. The
//! implementation is the one in `tests/support/s3server/`, included here by path so there is
//! exactly one.
//!
//! With `--imds 127.0.0.1:9001` it also runs the IMDS emulator of `tests/support/imds.rs`
//! there (IMDSv2 only, role `s3rolefs-demo-role`), whose rotating session credentials the
//! server accepts, and prints `IMDS http://ADDR` after `READY`: point a mount at it with
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT=http://ADDR`. The static key pair keeps working.

#[allow(dead_code)]
#[path = "../tests/support/s3server/mod.rs"]
mod s3server;

#[allow(dead_code)]
#[path = "../tests/support/imds.rs"]
mod imds;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use imds::{ImdsEmulator, ImdsMode, ImdsOptions, IssuedCredentials, OnIssue};
use s3server::TestServer;

#[derive(Parser)]
#[command(about = "In-memory S3-compatible server (the s3rolefs test server)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    addr: SocketAddr,
    /// Bucket to create at start (repeatable).
    #[arg(long = "bucket", required = true)]
    buckets: Vec<String>,
    #[arg(long)]
    access_key: String,
    #[arg(long)]
    secret_key: String,
    /// Region of the buckets.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Upload this local tree into the (first) bucket at start: files become objects keyed by
    /// their relative path, empty directories `dir/` markers.
    #[arg(long)]
    populate_from: Option<PathBuf>,
    /// Minimum size of non-last multipart parts (S3: 5 MiB).
    #[arg(long)]
    min_part_size: Option<usize>,
    /// Also run an IMDS emulator (IMDSv2 only) at this address, e.g. 127.0.0.1:9001.
    #[arg(long)]
    imds: Option<SocketAddr>,
    /// Role name the IMDS emulator reports.
    #[arg(long, default_value = "s3rolefs-demo-role")]
    imds_role: String,
    /// Seconds each set of IMDS credentials stays valid.
    #[arg(long, default_value_t = 900)]
    imds_lifetime: u64,
    /// Seconds between IMDS key rotations (a new key, each valid for the lifetime).
    #[arg(long, default_value_t = 300)]
    imds_rotation: u64,
    /// Also answer IMDSv1 (no token) requests.
    #[arg(long)]
    imds_allow_v1: bool,
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let builder = TestServer::builder()
        .addr(args.addr)
        .credentials(&args.access_key, &args.secret_key)
        .region(&args.region);
    let server = match builder.try_start() {
        Ok(server) => server,
        Err(e) => {
            eprintln!(
                "s3server: cannot listen on {}: {e}; stop what uses that port or give another with --addr",
                args.addr
            );
            std::process::exit(1);
        }
    };
    for bucket in &args.buckets {
        server.create_bucket(bucket);
    }
    if let Some(n) = args.min_part_size {
        server.set_min_part_size(n);
    }
    if let Some(dir) = &args.populate_from {
        let mut objects = Vec::new();
        collect_tree(dir, "", &mut objects)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        let count = objects.len();
        server.put_many(&args.buckets[0], objects);
        log::info!(
            "populated {} with {count} objects from {}",
            args.buckets[0],
            dir.display()
        );
    }
    let server = Arc::new(server);
    // Kept alive for the life of the process; the emulator stops when dropped.
    let _imds = args.imds.map(|addr| {
        let s3 = server.clone();
        let on_issue: OnIssue = Arc::new(move |c: &IssuedCredentials| {
            s3.add_session_key(
                &c.access_key_id,
                &c.secret_access_key,
                &c.token,
                c.expires_at,
            );
            log::info!(
                "IMDS issued {} (expires {})",
                c.access_key_id,
                imds::rfc3339(c.expires_at)
            );
        });
        ImdsEmulator::start(ImdsOptions {
            addr,
            mode: if args.imds_allow_v1 {
                ImdsMode::V1AndV2
            } else {
                ImdsMode::V2Only
            },
            role_name: args.imds_role.clone(),
            credentials_lifetime: Duration::from_secs(args.imds_lifetime.max(1)),
            rotation: Duration::from_secs(args.imds_rotation.max(1)),
            region: args.region.clone(),
            on_issue: Some(on_issue),
            ..ImdsOptions::default()
        })
    });
    println!("READY {}", server.endpoint());
    if let Some(imds) = &_imds {
        println!("IMDS {}", imds.endpoint());
    }
    std::io::stdout().flush().expect("flush stdout");
    // Serves until the process is interrupted; the server runs on its own thread.
    loop {
        std::thread::park();
    }
}

/// Files under `dir` as (key, body), keys relative with `/` separators; an empty directory
/// becomes a `dir/` marker so it is visible in listings.
fn collect_tree(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    if entries.is_empty() && !prefix.is_empty() {
        out.push((prefix.to_owned(), Vec::new()));
    }
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let meta = std::fs::metadata(&path)?;
        if meta.is_dir() {
            collect_tree(&path, &format!("{prefix}{name}/"), out)?;
        } else if meta.is_file() {
            out.push((format!("{prefix}{name}"), std::fs::read(&path)?));
        }
    }
    Ok(())
}
