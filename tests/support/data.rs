//! What write tests write and how they run commands: a byte pattern that differs at every
//! offset and seed, a command that must succeed, and a size-limited tmpfs (a small local
//! disk) that is unmounted again however the test ends.

use std::process::Command;

/// `len` bytes that differ with `seed` and along the file (no two 8 KiB blocks alike), so a
/// byte in the wrong place shows.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 13) as u8))
        .collect()
}

/// Runs `cmd`, panicking with its output unless it succeeds; returns its stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A tmpfs of `size` (`16m`, `512m`) mounted on a directory for the test's life: a small
/// local disk for the cache directory.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("a temporary directory");
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path()));
        Tmpfs { dir }
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The path as a command-line argument.
    pub fn arg(&self) -> &str {
        self.dir.path().to_str().expect("temporary paths are UTF-8")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// How many files of journal entries the journal directory `dir` holds (spares, the
/// emptied files it keeps for reuse, are not entries).
pub fn journal_entries(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            !s3rolefs::upload::journal::is_spare(&name.to_string_lossy())
        })
        .count()
}
