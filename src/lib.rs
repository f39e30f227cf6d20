//! # Layout
//!
//! - `sigv4`: AWS Signature Version 4 as pure functions (a leaf; no I/O).
//! - `credentials`: what credentials are, the sources that provide them, the atomically
//!   swapped current snapshot.
//! - `s3`: the `ObjectClient` trait (one method per S3 operation) and its HTTP implementation.

pub mod credentials;
pub mod s3;
pub mod sigv4;
