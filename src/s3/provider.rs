//! [`Provider`]: which S3 implementation serves the bucket (`--provider`), and what is known
//! of it before the first request: its region, whether buckets must be addressed
//! path-style, and the quirks it is known to have ([`crate::s3::client::Quirk`]).
//!
//! Only what is documented by the provider or by rclone's provider table (`setQuirks` in
//! its S3 backend) is listed; the rest is found out at run time by the client
//! (`client::quirks`), whatever the provider. `docs/ENDPOINTS.md` says which of these
//! were verified against a real server.

use std::fmt;
use std::str::FromStr;

use crate::s3::client::Quirk;

/// An S3 implementation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Provider {
    #[default]
    Aws,
    Minio,
    Ceph,
    Garage,
    R2,
    B2,
    Wasabi,
    Gcs,
    Other,
}

impl Provider {
    /// Every provider, as `--provider` spells them.
    pub const ALL: [Provider; 9] = [
        Provider::Aws,
        Provider::Minio,
        Provider::Ceph,
        Provider::Garage,
        Provider::R2,
        Provider::B2,
        Provider::Wasabi,
        Provider::Gcs,
        Provider::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Provider::Aws => "aws",
            Provider::Minio => "minio",
            Provider::Ceph => "ceph",
            Provider::Garage => "garage",
            Provider::R2 => "r2",
            Provider::B2 => "b2",
            Provider::Wasabi => "wasabi",
            Provider::Gcs => "gcs",
            Provider::Other => "other",
        }
    }

    /// The region requests are signed for when none is configured; `None`: discover it.
    /// R2 and GCS's XML API accept only (or best) `auto`.
    pub fn default_region(self) -> Option<&'static str> {
        match self {
            Provider::R2 | Provider::Gcs => Some("auto"),
            _ => None,
        }
    }

    /// Buckets addressed in the URL path: self-hosted servers are usually reached by an
    /// IP address or a host name without wildcard DNS (MinIO, Ceph RGW, Garage), and
    /// rclone addresses R2 path-style too.
    pub fn path_style(self) -> bool {
        matches!(
            self,
            Provider::Minio | Provider::Ceph | Provider::Garage | Provider::R2 | Provider::Other
        )
    }

    /// Quirks known before the first request.
    pub fn known_quirks(self) -> &'static [Quirk] {
        match self {
            // rclone lists Ceph RGW (older releases) as ListObjects V1 only.
            Provider::Ceph => &[Quirk::ListV1Only],
            // Google's XML API: no x-amz-checksum-* headers, and V1 listings.
            Provider::Gcs => &[Quirk::NoChecksumHeaders, Quirk::ListV1Only],
            // rclone: R2's multipart ETags are random, not the MD5 of the parts' MD5s.
            Provider::R2 => &[Quirk::EtagsNotMd5],
            _ => &[],
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Provider {
    type Err = String;

    fn from_str(text: &str) -> Result<Provider, String> {
        let text = text.trim().to_ascii_lowercase();
        let alias = match text.as_str() {
            "s3" | "amazon" => "aws",
            "cloudflare" => "r2",
            "backblaze" => "b2",
            "google" => "gcs",
            "rgw" => "ceph",
            t => t,
        };
        Provider::ALL
            .into_iter()
            .find(|p| p.name() == alias)
            .ok_or_else(|| {
                let names: Vec<_> = Provider::ALL.iter().map(|p| p.name()).collect();
                format!("unknown provider {text:?}; use one of {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(p.name().parse::<Provider>(), Ok(p));
        }
        assert_eq!("Cloudflare".parse::<Provider>(), Ok(Provider::R2));
        assert!("azure".parse::<Provider>().is_err());
        assert_eq!(Provider::R2.default_region(), Some("auto"));
        assert!(!Provider::Aws.path_style());
    }
}
