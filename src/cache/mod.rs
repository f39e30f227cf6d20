//! Caching between the filesystem and S3.
//!
//! - `block`: blocks of objects keyed by key + ETag + index, in a byte-bounded LRU shared
//!   by the whole mount.
//! - `prefetch`: per-handle sequential detection and a growing window of ranged GETs in
//!   flight, served through the block cache, within a mount-wide memory budget.

pub mod block;
pub mod prefetch;
