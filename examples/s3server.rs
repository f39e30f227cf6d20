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

#[allow(dead_code)]
#[path = "../tests/support/s3server/mod.rs"]
mod s3server;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;

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
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let server = TestServer::builder()
        .addr(args.addr)
        .credentials(&args.access_key, &args.secret_key)
        .region(&args.region)
        .start();
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
    println!("READY {}", server.endpoint());
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
