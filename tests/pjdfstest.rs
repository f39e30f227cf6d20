//! pjdfstest (the Rust one, from crates.io; `scripts/setup` builds it into `target/tools`) on
//! a real mount, as root with two other users, for the groups of POSIX behaviour programs
//! trip over. Every failure must be one `docs/SEMANTICS.md` lists with its reason, and the
//! share that passes is printed.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{Mount, TestServer};

/// The groups run: files and directories, their names, modes, owners, times and links.
const GROUPS: [&str; 11] = [
    "open",
    "truncate",
    "ftruncate",
    "unlink",
    "mkdir",
    "rmdir",
    "rename",
    "chmod",
    "chown",
    "symlink",
    "utimensat",
];

/// The least share of the cases run that must pass.
const PASS_SHARE: f64 = 0.90;

fn pjdfstest() -> PathBuf {
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools/bin/pjdfstest");
    let path = std::env::var_os("PJDFSTEST").map_or(built, PathBuf::from);
    assert!(
        path.is_file(),
        "pjdfstest is not at {}. Fix: ./scripts/setup with S3ROLEFS_SETUP_TESTS=1 \
         (cargo install --debug --locked pjdfstest --version 0.2.2 --root target/tools), \
         or PJDFSTEST=/path/to/pjdfstest",
        path.display()
    );
    path
}

/// Cases about fifos, sockets and devices, which S3 cannot hold.
fn left_out(name: &str) -> bool {
    ["::fifo", "::block", "::char", "::socket"]
        .iter()
        .any(|v| name.ends_with(v))
        || name.contains("fifo")
        || name.contains("socket")
}

/// The failures `docs/SEMANTICS.md` lists (its pjdfstest table): names in backquotes, `*`
/// standing for any group.
fn documented_failures() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/SEMANTICS.md"))
        .expect("docs/SEMANTICS.md");
    let section = doc
        .split("## POSIX conformance (pjdfstest)")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a pjdfstest section in docs/SEMANTICS.md");
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('|').nth(1))
        .flat_map(|cell| {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .filter(|n| n.contains("::"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn is_documented(name: &str, documented: &[String]) -> bool {
    documented.iter().any(|d| match d.strip_prefix('*') {
        Some(suffix) => name.ends_with(suffix),
        None => name == d,
    })
}

#[test]
fn pjdfstest_passes_except_what_s3_cannot_hold() {
    let binary = pjdfstest();
    let server = TestServer::start();
    server.create_bucket("bkt");
    let m = Mount::start(&server, "bkt", &["--allow-other"]);
    m.open_to_others();
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("pjdfstest.toml");
    // Debian's nobody/nogroup and daemon/daemon are the two other users.
    std::fs::write(
        &conf,
        "[features]\nutimensat = {}\nutime_now = {}\n\n[settings]\nnaptime = 0.1\n\n\
         [dummy_auth]\nentries = [[\"nobody\", \"nogroup\"], [\"daemon\", \"daemon\"]]\n",
    )
    .unwrap();
    let out = Command::new(&binary)
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(m.path())
        .args(GROUPS)
        .current_dir(m.path())
        .output()
        .expect("pjdfstest runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let mut passed = 0;
    let mut failed = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(result), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        if !name.contains("::") || left_out(name) {
            continue;
        }
        match result {
            "ok" => passed += 1,
            "FAILED" => failed.push(name.to_string()),
            _ => {}
        }
    }
    let run = passed + failed.len();
    assert!(run > 100, "pjdfstest ran too few cases ({run}):\n{text}");
    let share = passed as f64 / run as f64;
    println!(
        "pjdfstest: passed {passed} of {run} ({:.1} %); failed: {}",
        share * 100.0,
        failed.join(", ")
    );
    let documented = documented_failures();
    let undocumented: Vec<&String> = failed
        .iter()
        .filter(|f| !is_documented(f, &documented))
        .collect();
    assert!(
        undocumented.is_empty(),
        "failures docs/SEMANTICS.md does not list: {undocumented:?}\n{text}"
    );
    assert!(
        share >= PASS_SHARE,
        "passed {passed} of {run}, under {PASS_SHARE}"
    );
}
