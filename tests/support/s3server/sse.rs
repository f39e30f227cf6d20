//! What an object is stored with — server-side encryption, KMS key, SSE-C key MD5, storage
//! class, canned ACL — and S3's rules for customer keys (SSE-C):
//!
//! - the three `x-amz-server-side-encryption-customer-*` headers come together, the
//!   algorithm is `AES256`, the key is 32 bytes of base64 and its MD5 matches (else 400);
//! - an SSE-C object is read (GET, HEAD, copy source) only with its key: none given is
//!   400 InvalidRequest, another key 403 AccessDenied;
//! - customer key headers on an object that is not SSE-C are 400 InvalidRequest;
//! - every part of an SSE-C multipart upload, and its CompleteMultipartUpload, carries the
//!   upload's key.
//!
//! The key itself is never stored, only its MD5, as on S3.

use base64::Engine as _;
use md5::Digest as _;
use s3s::dto::{ObjectCannedACL, ServerSideEncryption, StorageClass};
use s3s::{s3_error, S3Result};

/// How an object (or an open multipart upload) is stored, as its writer asked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredWith {
    /// `x-amz-server-side-encryption`: `AES256` or `aws:kms`.
    pub sse: Option<String>,
    pub kms_key_id: Option<String>,
    /// Base64 MD5 of the SSE-C key the object is encrypted with.
    pub customer_key_md5: Option<String>,
    pub storage_class: Option<String>,
    pub acl: Option<String>,
}

impl StoredWith {
    /// What a creating request (PUT, CreateMultipartUpload, CopyObject) asks for.
    pub fn from_request(
        sse: Option<&ServerSideEncryption>,
        kms_key_id: Option<&String>,
        customer: CustomerKeyHeaders<'_>,
        storage_class: Option<&StorageClass>,
        acl: Option<&ObjectCannedACL>,
    ) -> S3Result<StoredWith> {
        let customer_key_md5 = customer.validate()?;
        if customer_key_md5.is_some() && sse.is_some() {
            return Err(s3_error!(
                InvalidArgument,
                "Server Side Encryption with Customer provided key is incompatible with the encryption method specified"
            ));
        }
        Ok(StoredWith {
            sse: sse.map(|s| s.as_str().to_owned()),
            kms_key_id: kms_key_id.cloned(),
            customer_key_md5,
            storage_class: storage_class.map(|s| s.as_str().to_owned()),
            acl: acl.map(|a| a.as_str().to_owned()),
        })
    }

    /// Checks the customer key a read (or a part, or a copy source) carries.
    pub fn check_access(&self, customer: CustomerKeyHeaders<'_>) -> S3Result<()> {
        let given = customer.validate()?;
        match (&self.customer_key_md5, given) {
            (None, None) => Ok(()),
            (Some(_), None) => Err(s3_error!(
                InvalidRequest,
                "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object."
            )),
            (None, Some(_)) => Err(s3_error!(
                InvalidRequest,
                "The encryption parameters are not applicable to this object."
            )),
            (Some(stored), Some(given)) if *stored == given => Ok(()),
            (Some(_), Some(_)) => Err(s3_error!(
                AccessDenied,
                "The SSE-C key provided does not match the key the object was encrypted with."
            )),
        }
    }
}

/// The three SSE-C headers of a request (or the three `x-amz-copy-source-…` ones).
#[derive(Clone, Copy, Default)]
pub struct CustomerKeyHeaders<'a> {
    pub algorithm: Option<&'a str>,
    pub key: Option<&'a str>,
    pub key_md5: Option<&'a str>,
}

impl<'a> CustomerKeyHeaders<'a> {
    pub fn new(
        algorithm: Option<&'a String>,
        key: Option<&'a String>,
        key_md5: Option<&'a String>,
    ) -> Self {
        CustomerKeyHeaders {
            algorithm: algorithm.map(String::as_str),
            key: key.map(String::as_str),
            key_md5: key_md5.map(String::as_str),
        }
    }

    /// The key's base64 MD5 when the headers are present and valid; `None` when absent.
    fn validate(&self) -> S3Result<Option<String>> {
        let (algorithm, key, md5) = match (self.algorithm, self.key, self.key_md5) {
            (None, None, None) => return Ok(None),
            (Some(a), Some(k), Some(m)) => (a, k, m),
            _ => {
                return Err(s3_error!(
                    InvalidArgument,
                    "Requests specifying Server Side Encryption with Customer provided keys must provide the algorithm, the key and the key's MD5."
                ))
            }
        };
        if algorithm != "AES256" {
            return Err(s3_error!(
                InvalidEncryptionAlgorithmError,
                "The encryption request you specified is not valid. The valid value is AES256."
            ));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let raw = b64
            .decode(key)
            .ok()
            .filter(|k| k.len() == 32)
            .ok_or_else(|| {
                s3_error!(
                    InvalidArgument,
                    "The secret key was invalid for the specified algorithm."
                )
            })?;
        let computed = b64.encode(md5::Md5::digest(&raw));
        if computed != md5 {
            return Err(s3_error!(
                InvalidArgument,
                "The calculated MD5 hash of the key did not match the hash that was provided."
            ));
        }
        Ok(Some(computed))
    }
}
