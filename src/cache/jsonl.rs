//! The one file format of the caches kept across remounts (`meta`, `listings`): one file
//! per bucket (and prefix), named by a hash of it, a first line naming the format and its
//! version, then one JSON value per line. Written whole under a temporary name and renamed
//! over the old file (0600 in the user's own 0700 directory, [`PrivateDir`]); a file that
//! is missing, of another version or damaged reads as empty (a damaged line as absent).

use std::io::{self, BufRead, BufReader, Write};

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::private_dir::PrivateDir;

/// The file of `bucket` (its endpoint, name and prefix, as one string).
pub fn file_name(bucket: &str) -> String {
    format!(
        "{}.jsonl",
        hex::encode(&Sha256::digest(bucket.as_bytes())[..16])
    )
}

/// The values of `file` in `dir`, in file order, if its first line is `magic`.
pub fn read<T: DeserializeOwned>(dir: &PrivateDir, file: &str, magic: &str) -> Vec<T> {
    let f = match dir.open(file, libc::O_RDONLY) {
        Ok(f) => f,
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                log::debug!("{}: {e}", dir.path().join(file).display());
            }
            return Vec::new();
        }
    };
    let mut lines = BufReader::new(f).lines();
    if lines.next().and_then(Result::ok).as_deref() != Some(magic) {
        return Vec::new();
    }
    lines
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str(&line).ok())
        .collect()
}

/// Writes `magic` and `lines` as `file` in `dir`, whole or not at all.
pub fn write(dir: &PrivateDir, file: &str, magic: &str, lines: &[String]) -> io::Result<()> {
    let temp = format!("{file}.{}.tmp", std::process::id());
    let written = (|| {
        let _ = dir.remove(&temp);
        let mut f = io::BufWriter::new(dir.create_new(&temp)?);
        writeln!(f, "{magic}")?;
        for line in lines {
            writeln!(f, "{line}")?;
        }
        f.flush()?;
        drop(f);
        dir.rename(&temp, file)
    })();
    if written.is_err() {
        let _ = dir.remove(&temp);
    }
    written
}
