//! `check`'s step for directory buckets (S3 Express One Zone): that the bucket is one, and
//! that session auth works — a `CreateSession` signed with the mount's credentials
//! answers a session, and the bucket step's requests already signed with one.

use std::time::SystemTime;

use super::Step;
use crate::s3::client::S3Client;
use crate::s3::express::DirectoryBucket;
use crate::s3::S3Error;

/// The step's name.
const NAME: &str = "express";

/// After the bucket was opened: asks for one more session, and says what it got.
pub async fn session_step(client: &S3Client) -> Option<Step> {
    let directory = DirectoryBucket::parse(client.bucket())?;
    let what = describe(&directory);
    Some(match client.create_session().await {
        Ok(session) => {
            let lasts = session
                .expiry
                .and_then(|e| e.duration_since(SystemTime::now()).ok())
                .map_or_else(
                    || "no expiry given".to_string(),
                    |d| format!("valid {} s", d.as_secs()),
                );
            Step::pass(
                NAME,
                format!(
                    "{what}: session auth works (CreateSession answered a session, {lasts}; \
                     requests sign with it and x-amz-s3session-token, renewed ahead of expiry)"
                ),
            )
        }
        Err(e) => Step::fail(NAME, failure(&what, &e)),
    })
}

/// When the bucket could not be opened: for a directory bucket, what session auth needs.
pub fn session_failure(bucket: &str, error: &S3Error) -> Option<Step> {
    let directory = DirectoryBucket::parse(bucket)?;
    let what = describe(&directory);
    Some(Step::fail(NAME, failure(&what, error)))
}

/// What `directory` is, for the step's line.
fn describe(directory: &DirectoryBucket) -> String {
    let kind = match directory.access_point {
        true => "access point for a directory bucket",
        false => "directory bucket",
    };
    format!("{kind} (S3 Express One Zone, zone {})", directory.zone_id)
}

fn failure(what: &str, error: &S3Error) -> String {
    format!(
        "{what}: session auth failed: {error}. Every request to a directory bucket needs a \
         session from CreateSession: the credentials need s3express:CreateSession on the \
         bucket, and the region must be the bucket's zone's (--region)"
    )
}
