//! Who pays for a mount's requests and whose bucket it must be: headers that go on every
//! request, set once from the configuration.
//!
//! - Requester pays (`--requester-pays`): `x-amz-request-payer: requester` says the
//!   requester accepts the charges of a bucket whose owner made requesters pay; without it
//!   S3 refuses every request from another account with 403.
//! - Expected bucket owner (`--expected-bucket-owner ACCOUNT`): S3 refuses a request with
//!   403 when the bucket is not owned by that account, so a deleted bucket whose name was
//!   taken by someone else never receives the mount's data. Copies also name the owner of
//!   their source (`x-amz-source-expected-bucket-owner`); the source is the same bucket.

use crate::s3::settings::SettingHeader;

/// Headers of the mount's bucket access, on every request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketAccess {
    pub requester_pays: bool,
    /// A 12-digit AWS account id, checked by the configuration layer.
    pub expected_owner: Option<String>,
}

impl BucketAccess {
    /// The headers every request carries.
    pub fn headers(&self) -> Vec<SettingHeader> {
        let mut out = Vec::new();
        if self.requester_pays {
            out.push(plain("x-amz-request-payer", "requester"));
        }
        if let Some(owner) = &self.expected_owner {
            out.push(plain("x-amz-expected-bucket-owner", owner));
        }
        out
    }

    /// The headers a copy adds about its source (CopyObject, UploadPartCopy).
    pub fn copy_source_headers(&self) -> Vec<SettingHeader> {
        self.expected_owner
            .iter()
            .map(|owner| plain("x-amz-source-expected-bucket-owner", owner))
            .collect()
    }
}

fn plain(name: &'static str, value: &str) -> SettingHeader {
    SettingHeader {
        name,
        value: value.to_string(),
        sensitive: false,
    }
}

/// Whether `text` is an AWS account id: exactly 12 digits.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nothing is sent unless asked; each setting adds its header.
    #[test]
    fn headers_follow_the_settings() {
        assert!(BucketAccess::default().headers().is_empty());
        assert!(BucketAccess::default().copy_source_headers().is_empty());
        let access = BucketAccess {
            requester_pays: true,
            expected_owner: Some("123456789012".into()),
        };
        let names: Vec<_> = access
            .headers()
            .into_iter()
            .map(|h| (h.name, h.value))
            .collect();
        assert_eq!(
            names,
            [
                ("x-amz-request-payer", "requester".to_string()),
                ("x-amz-expected-bucket-owner", "123456789012".to_string())
            ]
        );
        assert_eq!(
            access.copy_source_headers()[0].name,
            "x-amz-source-expected-bucket-owner"
        );
    }

    #[test]
    fn account_ids_are_twelve_digits() {
        assert!(is_account_id("123456789012"));
        for bad in ["12345678901", "1234567890123", "12345678901a", ""] {
            assert!(!is_account_id(bad), "{bad}");
        }
    }
}
