//! What S3 answers for an object completed from parts, so a client can recognise an
//! object as its own when the answer that said so was lost (DESIGN invariant 9).
//!
//! S3 gives a multipart object the ETag `"<md5 of the parts' binary MD5s>-<count>"` when
//! every part's ETag is the MD5 of its bytes (no SSE-KMS, no SSE-C). A Complete retried
//! after a lost answer finds no upload (`NoSuchUpload`): the object at the key, with the
//! size and that ETag of the parts we sent, is then the one our first attempt made — on a
//! server whose ETags are known to be MD5s ([`ObjectClient::etags_are_md5`]) only.

use md5::Digest as _;

use super::{CompletedPart, ObjectClient, S3Error};

/// The ETag (without quotes) of the object completed from `parts`, when every part's ETag
/// is an MD5.
pub fn multipart_etag(parts: &[CompletedPart]) -> Option<String> {
    let mut digests = Vec::with_capacity(parts.len() * 16);
    for part in parts {
        let hex = part.etag.trim_matches('"');
        if hex.len() != 32 {
            return None;
        }
        digests.extend(hex::decode(hex).ok()?);
    }
    Some(format!(
        "{}-{}",
        hex::encode(md5::Md5::digest(&digests)),
        parts.len()
    ))
}

/// A Complete error after which S3 may hold the object all the same: the upload is gone
/// (an earlier attempt completed it and its answer was lost) or the answer never came.
pub fn answer_may_be_lost(e: &S3Error) -> bool {
    match e {
        S3Error::Service { code, .. } if code == "NoSuchUpload" => true,
        e => e.is_retryable(),
    }
}

/// The ETag of the object at `key` if it is exactly what `parts` (sorted) make: size and
/// ETag match. `None` when it is not, or cannot be told.
pub async fn completed_from<C: ObjectClient + ?Sized>(
    client: &C,
    key: &str,
    parts: &[CompletedPart],
) -> Option<String> {
    // An ETag compared with MD5s means something only on a server whose ETags are MD5s.
    if client.etags_are_md5() != Some(true) {
        return None;
    }
    let expected = multipart_etag(parts)?;
    let size: u64 = parts.iter().map(|p| p.size).sum();
    let meta = client.head_object(key).await.ok()?;
    (meta.size == size && meta.etag.trim_matches('"') == expected).then_some(meta.etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u32, etag: &str) -> CompletedPart {
        CompletedPart {
            part_number: n,
            etag: etag.into(),
            checksum_crc32c: None,
            size: 1,
        }
    }

    /// The ETag of two parts is the MD5 of their MD5s, with the count; a part whose ETag
    /// is not an MD5 (SSE-KMS) makes it unknowable.
    #[test]
    fn multipart_etag_is_the_md5_of_md5s() {
        let a = hex::encode(md5::Md5::digest(b"a"));
        let b = hex::encode(md5::Md5::digest(b"b"));
        let mut both = hex::decode(&a).unwrap();
        both.extend(hex::decode(&b).unwrap());
        let expected = format!("{}-2", hex::encode(md5::Md5::digest(&both)));
        let parts = [part(1, &format!("\"{a}\"")), part(2, &b)];
        assert_eq!(multipart_etag(&parts).unwrap(), expected);
        assert!(multipart_etag(&[part(1, "\"kms-not-md5\"")]).is_none());
    }
}
