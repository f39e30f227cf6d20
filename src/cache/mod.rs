//! Caching between the filesystem and S3.
//!
//! - `block`: blocks of objects keyed by key + ETag + index, in a byte-bounded LRU shared
//!   by the whole mount.
//! - `disk`: the optional disk tier (`--cache-dir-size`): block files, 0600, kept across
//!   remounts, checked against key and ETag.
//! - `jsonl`: the file format of what `meta` and `listings` keep across remounts.
//! - `listings`: directory listings kept across remounts, for a write-back mount to list
//!   offline what an earlier mount saw.
//! - `meta`: object metadata (modes, owners, times) by key and version, kept across
//!   remounts, so a listing answers `ls -l` without a HEAD per file.
//! - `prefetch`: per-handle sequential detection and a growing window of ranged GETs in
//!   flight, served through the block cache, within a mount-wide memory budget.

pub mod block;
pub mod disk;
pub mod jsonl;
pub mod listings;
pub mod meta;
pub mod prefetch;
