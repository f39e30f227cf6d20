//! Caching between the filesystem and S3.
//!
//! - `prefetch`: per-handle sequential read-ahead (a growing window of ranged GETs).

pub mod prefetch;
