//! A directory of 100,000 keys lists in full through the kernel (`ls -l`: readdirplus over
//! every page of the listing), beside one of 10,000, each on a fresh mount. The time and the
//! daemon's peak memory of both are printed (scripts/bench reports them: time should grow
//! tenfold, memory by the entries' share); only a loose memory ceiling is asserted, as a
//! guard against a listing that keeps far more per entry than the inode it becomes.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use support::{Mount, TestServer};

/// Peak resident memory of `pid` in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmHWM:")
}

/// A memory figure of `/proc/<pid>/status` in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024.0
}

/// The lines of `ls -l dir` and how long it took.
fn ls_l(dir: &Path) -> (Vec<String>, f64) {
    let start = Instant::now();
    let out = Command::new("ls").arg("-l").arg(dir).output().unwrap();
    let seconds = start.elapsed().as_secs_f64();
    assert!(out.status.success(), "{out:?}");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    (lines, seconds)
}

#[test]
fn a_hundred_thousand_keys_list_in_full() {
    let server = TestServer::start();
    server.create_bucket("bkt");
    for (dir, count) in [("ten", 10_000), ("hundred", 100_000)] {
        server.put_many(
            "bkt",
            (0..count).map(|i| (format!("{dir}/k{i:06}"), b"x".to_vec())),
        );
    }
    let mut peaks = Vec::new();
    for (dir, count) in [("ten", 10_000usize), ("hundred", 100_000)] {
        let mount = Mount::start(&server, "bkt", &[]);
        let (lines, seconds) = ls_l(&mount.path().join(dir));
        // `total N`, then one line per entry, sorted by name.
        assert_eq!(lines.len(), count + 1, "every entry listed once");
        assert!(lines[1].ends_with(" k000000"), "{}", lines[1]);
        let last = format!(" k{:06}", count - 1);
        assert!(lines[count].ends_with(&last), "{}", lines[count]);
        assert!(lines[1].starts_with("-rw"), "a file: {}", lines[1]);
        let pid = mount.pid().unwrap();
        let peak = peak_rss_mib(pid);
        let now = status_mib(pid, "VmRSS:");
        println!(
            "large directory: {count} entries: ls -l {seconds:.2} s, daemon peak RSS \
             {peak:.1} MiB ({now:.1} MiB after)"
        );
        peaks.push(peak);
    }
    let per_entry = (peaks[1] - peaks[0]) * 1024.0 * 1024.0 / 90_000.0;
    println!("large directory: {per_entry:.0} bytes per entry");
    assert!(
        peaks[1] < 256.0,
        "100,000 entries took {:.1} MiB at peak",
        peaks[1]
    );
}
