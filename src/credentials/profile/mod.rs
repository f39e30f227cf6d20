//! Credentials from the shared config and credentials files (`~/.aws/config`,
//! `~/.aws/credentials`): the active profile's chain.

pub mod files;
pub mod parser;
pub mod resolve;
