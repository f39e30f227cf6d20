//! S3 Express One Zone directory buckets: what makes a bucket one, and how its requests
//! are authorised.
//!
//! A directory bucket is known by its name alone: `NAME--ZONEID--x-s3`
//! (`data--usw2-az1--x-s3`), and so is an access point for one: `NAME--ZONEID--xa-s3`
//! (`shared--usw2-az1--xa-s3`). The AWS endpoint rules treat the two suffixes alike: an
//! access point is named where a bucket would be, served by the same zonal endpoint
//! (`NAME--ZONEID--xa-s3.s3express-ZONEID.REGION.amazonaws.com`), signed for `s3express`,
//! and its sessions come from `CreateSession` on the access point itself (its policy, not
//! the bucket's, says what they may do). So everything below holds for both. Its objects live in one Availability Zone and are served by a
//! zonal endpoint (`crate::s3::endpoint`), and every request to it differs from S3's
//! general purpose buckets in four ways this module and the client handle:
//!
//! - **Session auth.** The mount's own credentials sign one request only, `CreateSession`
//!   (`GET /?session`); its answer is a set of session credentials of about five minutes,
//!   for this bucket. Every other request is signed with those (SigV4, service
//!   `s3express`) and carries the session token in `x-amz-s3session-token`, never in
//!   `x-amz-security-token`. `session` asks for them; the mount's credentials
//!   [`Refresher`](crate::credentials::refresher::Refresher) keeps them current, exactly as it keeps
//!   instance-role credentials current (one owner thread, atomic swap, renewal ahead of
//!   expiry, a forced renewal when S3 answers `ExpiredToken`). A new session is always
//!   signed with the mount's credentials of that moment, so rotated base credentials are
//!   picked up by the next session.
//! - **Listings** come back in no particular order and refuse `StartAfter`: pages are
//!   sorted by the client, and the side-by-side listing (`crate::s3::listing`) is not used.
//! - **RenameObject** renames a file atomically in one request.
//! - Only `/` is a delimiter and prefixes end in `/`, which is all a mount ever asks.
//!
//! This module is pure except for `session`'s one request.

pub mod session;

pub use session::{parse_create_session, SessionProvider};

/// SigV4 signs every request to a directory bucket for this service.
pub const SIGNING_SERVICE: &str = "s3express";

/// Where a session's token goes on every request it signs.
pub const SESSION_TOKEN_HEADER: &str = "x-amz-s3session-token";

/// The suffix that makes a bucket name a directory bucket's.
const SUFFIX: &str = "--x-s3";

/// The suffix of an access point for a directory bucket, given where a bucket name goes.
const ACCESS_POINT_SUFFIX: &str = "--xa-s3";

/// A directory bucket's name, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryBucket {
    /// The whole bucket name, suffix and all (what requests name).
    pub bucket: String,
    /// The Availability Zone id (`usw2-az1`): the zonal endpoint's host carries it.
    pub zone_id: String,
    /// The name is an access point's (`--xa-s3`), not the bucket's own.
    pub access_point: bool,
}

impl DirectoryBucket {
    /// The bucket, when `name` is a directory bucket's name (`NAME--ZONEID--x-s3`) or one
    /// of its access points' (`NAME--ZONEID--xa-s3`), with a zone id that can be a DNS
    /// label.
    pub fn parse(name: &str) -> Option<DirectoryBucket> {
        let (stem, access_point) = match name.strip_suffix(SUFFIX) {
            Some(stem) => (stem, false),
            None => (name.strip_suffix(ACCESS_POINT_SUFFIX)?, true),
        };
        let (base, zone_id) = stem.rsplit_once("--")?;
        let label_ok = !zone_id.is_empty()
            && zone_id.len() <= 63
            && zone_id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !zone_id.starts_with('-')
            && !zone_id.ends_with('-');
        (label_ok && !base.is_empty()).then(|| DirectoryBucket {
            bucket: name.to_string(),
            zone_id: zone_id.to_string(),
            access_point,
        })
    }
}

/// Whether `name` names a directory bucket (or an access point for one: it is used as one).
pub fn is_directory_bucket(name: &str) -> bool {
    DirectoryBucket::parse(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The zone id is the part between the last two `--`; a name without the suffix or
    /// without a zone is an ordinary bucket.
    #[test]
    fn directory_bucket_names_are_recognised() {
        let b = DirectoryBucket::parse("data--usw2-az1--x-s3").unwrap();
        assert_eq!(b.zone_id, "usw2-az1");
        assert_eq!(
            DirectoryBucket::parse("my--odd--name--use1-az4--x-s3")
                .unwrap()
                .zone_id,
            "use1-az4"
        );
        assert_eq!(
            DirectoryBucket::parse("b--usw2-lax1-az1--x-s3")
                .unwrap()
                .zone_id,
            "usw2-lax1-az1"
        );
        for plain in [
            "data",
            "data--x-s3",
            "--usw2-az1--x-s3",
            "data--usw2-az1",
            "data--US-AZ1--x-s3",
            "data--usw2-az1--x-s3x",
            "data-usw2-az1--ol-s3",
            "data--usw2-az1--xa-s3x",
            "--usw2-az1--xa-s3",
            "data--xa-s3",
            "data--usw2-az1-xa-s3",
        ] {
            assert!(!is_directory_bucket(plain), "{plain}");
        }
    }

    /// An access point for a directory bucket (`--xa-s3`) is one too, by the same rule,
    /// and says it is an access point.
    #[test]
    fn directory_bucket_access_points_are_recognised() {
        let ap = DirectoryBucket::parse("shared--usw2-az1--xa-s3").unwrap();
        assert_eq!(ap.zone_id, "usw2-az1");
        assert_eq!(ap.bucket, "shared--usw2-az1--xa-s3");
        assert!(ap.access_point);
        assert!(
            !DirectoryBucket::parse("data--usw2-az1--x-s3")
                .unwrap()
                .access_point
        );
        assert_eq!(
            DirectoryBucket::parse("my-ap--usw2-lax1-az1--xa-s3")
                .unwrap()
                .zone_id,
            "usw2-lax1-az1"
        );
    }
}
