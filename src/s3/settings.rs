//! What every object written through the mount is stored with — server-side encryption,
//! storage class, canned ACL — and the customer key (SSE-C) that every read, write and copy
//! of such objects must carry. Set once from the configuration when the client is built;
//! the client applies it to each request of the operations S3 wants it on.
//!
//! Which headers go on which operation (S3's rules):
//!
//! | operation | SSE, KMS key, storage class, ACL | SSE-C key | SSE-C key of the copy source |
//! |---|---|---|---|
//! | PutObject, CreateMultipartUpload | yes | yes | |
//! | CopyObject | yes | yes | yes |
//! | UploadPart, CompleteMultipartUpload | | yes | |
//! | UploadPartCopy | | yes | yes |
//! | GetObject, HeadObject | | yes | |
//!
//! A read never carries `x-amz-server-side-encryption`: S3 refuses it on GET and HEAD.
//!
//! The customer key lives in a [`Secret`] (base64, as it goes on the wire); its MD5 is not
//! secret (S3 echoes it in answers). The key's headers are marked sensitive on the wire
//! request so no HTTP-level logging can print them.

use std::fmt;

use base64::Engine as _;
use md5::Digest as _;

use crate::credentials::Secret;

/// S3's largest object a single CopyObject can copy; above it only a multipart copy
/// (UploadPartCopy) works. It is also S3's largest part. S3-compatible servers may have
/// lower limits, and tests lower it to exercise the multipart path with small files.
pub const S3_SINGLE_COPY_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

/// Part size of a multipart copy: the copy happens inside S3, so the part size costs no
/// memory here; 512 MiB keeps a 100 GiB copy to 200 requests, and a failed part costs
/// little to redo. Never above the single-copy limit (a part is a copy of its own).
pub const COPY_PART_SIZE: u64 = 512 * 1024 * 1024;

/// Parts of one multipart copy in flight at once: each is a server-side copy that takes
/// seconds for 512 MiB, so a few in parallel cut a large rename's time several-fold
/// without tripping S3's per-prefix request rates.
pub const COPY_CONCURRENCY: usize = 4;

/// S3's smallest part (every part of a multipart upload but the last).
pub const S3_MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// Server-side encryption of the objects written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Encryption {
    /// Send nothing: the bucket's default encryption applies (SSE-S3 on AWS since 2023).
    #[default]
    BucketDefault,
    /// SSE-S3: `x-amz-server-side-encryption: AES256`.
    S3Managed,
    /// SSE-KMS: `aws:kms`, with a key id/ARN/alias or the account's default KMS key.
    Kms { key_id: Option<String> },
    /// DSSE-KMS: `aws:kms:dsse`, two layers of encryption with the KMS key (as for SSE-KMS,
    /// the given one or the account's default), for rules that require dual layers.
    KmsDsse { key_id: Option<String> },
    /// SSE-C: the customer's key travels with every request on the object.
    Customer(CustomerKey),
}

/// An SSE-C key: 32 bytes, kept base64-encoded in a [`Secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct CustomerKey {
    key_base64: Secret,
    md5_base64: String,
}

impl fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomerKey")
            .field("key", &self.key_base64)
            .field("md5", &self.md5_base64)
            .finish()
    }
}

/// The length of an AES-256 key, the only algorithm SSE-C has.
pub const CUSTOMER_KEY_LEN: usize = 32;

impl CustomerKey {
    /// A key from a key file's content: the 32 raw bytes, or their base64 (surrounding
    /// whitespace allowed). `Err` says what was found, never the content.
    pub fn from_file_content(content: &[u8]) -> Result<CustomerKey, String> {
        if content.len() == CUSTOMER_KEY_LEN {
            return Ok(CustomerKey::from_bytes(content));
        }
        let text = std::str::from_utf8(content)
            .map(str::trim)
            .map_err(|_| format!("it holds {} bytes that are not base64", content.len()))?;
        match base64::engine::general_purpose::STANDARD.decode(text) {
            Ok(bytes) if bytes.len() == CUSTOMER_KEY_LEN => Ok(CustomerKey::from_bytes(&bytes)),
            Ok(bytes) => Err(format!(
                "its base64 decodes to {} bytes, not {CUSTOMER_KEY_LEN}",
                bytes.len()
            )),
            Err(_) => Err(format!(
                "it holds {} bytes, neither the {CUSTOMER_KEY_LEN} raw key bytes nor their base64",
                content.len()
            )),
        }
    }

    fn from_bytes(key: &[u8]) -> CustomerKey {
        let b64 = base64::engine::general_purpose::STANDARD;
        CustomerKey {
            key_base64: Secret::new(b64.encode(key)),
            md5_base64: b64.encode(md5::Md5::digest(key)),
        }
    }

    /// The base64 MD5 of the key, as S3 stores and echoes it (not secret).
    pub fn md5_base64(&self) -> &str {
        &self.md5_base64
    }

    /// The key in base64: only for the request header.
    pub fn expose_base64(&self) -> &str {
        self.key_base64.expose()
    }
}

/// One header of a request; `sensitive` ones are hidden from any HTTP-level logging.
#[derive(Clone, PartialEq, Eq)]
pub struct SettingHeader {
    pub name: &'static str,
    pub value: String,
    pub sensitive: bool,
}

impl fmt::Debug for SettingHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = if self.sensitive {
            "** redacted **"
        } else {
            &self.value
        };
        write!(f, "{}: {value}", self.name)
    }
}

/// How the headers of [`ObjectSettings`] apply to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    /// The request creates an object (PutObject, CreateMultipartUpload, CopyObject).
    Create,
    /// The request reads or adds to an object already encrypted (GET, HEAD, UploadPart,
    /// CompleteMultipartUpload).
    Access,
}

/// What objects are written with, for the whole mount.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectSettings {
    pub encryption: Encryption,
    /// `x-amz-storage-class` (`STANDARD_IA`, `INTELLIGENT_TIERING`, …); `None`: STANDARD.
    pub storage_class: Option<String>,
    /// `x-amz-acl` canned ACL (`bucket-owner-full-control`, …); `None`: the bucket's.
    pub acl: Option<String>,
}

impl ObjectSettings {
    /// The headers a request on an object gets, per `applies`.
    pub fn headers(&self, applies: Applies) -> Vec<SettingHeader> {
        let mut out = Vec::new();
        let plain = |name, value: &str| SettingHeader {
            name,
            value: value.to_string(),
            sensitive: false,
        };
        if applies == Applies::Create {
            match &self.encryption {
                Encryption::S3Managed => out.push(plain("x-amz-server-side-encryption", "AES256")),
                Encryption::Kms { key_id } | Encryption::KmsDsse { key_id } => {
                    let algorithm = match &self.encryption {
                        Encryption::KmsDsse { .. } => "aws:kms:dsse",
                        _ => "aws:kms",
                    };
                    out.push(plain("x-amz-server-side-encryption", algorithm));
                    if let Some(id) = key_id {
                        out.push(plain("x-amz-server-side-encryption-aws-kms-key-id", id));
                    }
                }
                Encryption::BucketDefault | Encryption::Customer(_) => {}
            }
            if let Some(class) = &self.storage_class {
                out.push(plain("x-amz-storage-class", class));
            }
            if let Some(acl) = &self.acl {
                out.push(plain("x-amz-acl", acl));
            }
        }
        out.extend(self.customer_key_headers(false));
        out
    }

    /// The headers naming the copy source's customer key (CopyObject, UploadPartCopy): the
    /// source was written by this mount, so with the same key.
    pub fn copy_source_headers(&self) -> Vec<SettingHeader> {
        self.customer_key_headers(true)
    }

    fn customer_key_headers(&self, copy_source: bool) -> Vec<SettingHeader> {
        let Encryption::Customer(key) = &self.encryption else {
            return Vec::new();
        };
        let (algorithm, key_name, md5) = if copy_source {
            (
                "x-amz-copy-source-server-side-encryption-customer-algorithm",
                "x-amz-copy-source-server-side-encryption-customer-key",
                "x-amz-copy-source-server-side-encryption-customer-key-md5",
            )
        } else {
            (
                "x-amz-server-side-encryption-customer-algorithm",
                "x-amz-server-side-encryption-customer-key",
                "x-amz-server-side-encryption-customer-key-md5",
            )
        };
        vec![
            SettingHeader {
                name: algorithm,
                value: "AES256".into(),
                sensitive: false,
            },
            SettingHeader {
                name: key_name,
                value: key.expose_base64().to_string(),
                sensitive: true,
            },
            SettingHeader {
                name: md5,
                value: key.md5_base64().to_string(),
                sensitive: false,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer() -> ObjectSettings {
        ObjectSettings {
            encryption: Encryption::Customer(CustomerKey::from_file_content(&[7u8; 32]).unwrap()),
            ..Default::default()
        }
    }

    /// A key file holds the 32 raw bytes or their base64, with or without a newline.
    #[test]
    fn customer_key_reads_raw_and_base64() {
        let raw = CustomerKey::from_file_content(&[7u8; 32]).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let from_text = CustomerKey::from_file_content(format!("{b64}\n").as_bytes()).unwrap();
        assert_eq!(raw, from_text);
        assert_eq!(raw.expose_base64(), b64);
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest([7u8; 32]));
        assert_eq!(raw.md5_base64(), md5);
    }

    /// A key of the wrong length is refused with its length, never its content.
    #[test]
    fn customer_key_of_wrong_length_is_refused() {
        let err = CustomerKey::from_file_content(b"short-secret-key").unwrap_err();
        assert!(err.contains("16 bytes"), "{err}");
        assert!(!err.contains("short-secret-key"));
        let b64_16 = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        let err = CustomerKey::from_file_content(b64_16.as_bytes()).unwrap_err();
        assert!(err.contains("decodes to 16 bytes"), "{err}");
    }

    /// Debug output of the key and its headers never shows the key.
    #[test]
    fn customer_key_never_shows_in_debug() {
        let settings = customer();
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let text = format!(
            "{settings:?} {:?} {:?}",
            settings.headers(Applies::Access),
            settings.copy_source_headers()
        );
        assert!(!text.contains(&b64), "{text}");
    }

    /// Creating requests carry SSE, KMS key, storage class and ACL; reads carry none.
    #[test]
    fn create_headers_carry_every_setting_and_reads_none() {
        let settings = ObjectSettings {
            encryption: Encryption::Kms {
                key_id: Some("alias/k".into()),
            },
            storage_class: Some("STANDARD_IA".into()),
            acl: Some("bucket-owner-full-control".into()),
        };
        let names: Vec<_> = settings
            .headers(Applies::Create)
            .into_iter()
            .map(|h| (h.name, h.value))
            .collect();
        assert_eq!(
            names,
            vec![
                ("x-amz-server-side-encryption", "aws:kms".to_string()),
                (
                    "x-amz-server-side-encryption-aws-kms-key-id",
                    "alias/k".to_string()
                ),
                ("x-amz-storage-class", "STANDARD_IA".to_string()),
                ("x-amz-acl", "bucket-owner-full-control".to_string()),
            ]
        );
        assert!(settings.headers(Applies::Access).is_empty());
        assert!(settings.copy_source_headers().is_empty());
    }

    /// DSSE-KMS names its algorithm and the key on creating requests only.
    #[test]
    fn dsse_sends_its_algorithm_and_key() {
        let settings = ObjectSettings {
            encryption: Encryption::KmsDsse {
                key_id: Some("arn:aws:kms:us-east-1:123456789012:key/k".into()),
            },
            ..Default::default()
        };
        let names: Vec<_> = settings
            .headers(Applies::Create)
            .into_iter()
            .map(|h| (h.name, h.value))
            .collect();
        assert_eq!(
            names,
            vec![
                ("x-amz-server-side-encryption", "aws:kms:dsse".to_string()),
                (
                    "x-amz-server-side-encryption-aws-kms-key-id",
                    "arn:aws:kms:us-east-1:123456789012:key/k".to_string()
                ),
            ]
        );
        assert!(settings.headers(Applies::Access).is_empty());
    }

    /// SSE-C sends the key on reads and writes alike, and names it for copy sources.
    #[test]
    fn customer_key_goes_on_every_access() {
        let settings = customer();
        for applies in [Applies::Create, Applies::Access] {
            let headers = settings.headers(applies);
            assert_eq!(headers.len(), 3);
            assert!(headers
                .iter()
                .any(|h| h.name == "x-amz-server-side-encryption-customer-key" && h.sensitive));
        }
        let copy = settings.copy_source_headers();
        assert!(copy.iter().all(|h| h
            .name
            .starts_with("x-amz-copy-source-server-side-encryption-customer-")));
    }
}
