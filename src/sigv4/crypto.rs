//! The hash, MAC and date primitives SigV4 is built from.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::time::SystemTime;
use time::OffsetDateTime;

/// SHA-256 block size: HMAC keys up to this length are zero-padded, longer ones hashed first.
const BLOCK: usize = 64;

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// HMAC-SHA256. The key is prepared exactly as RFC 2104 prescribes (hashed when longer
/// than a block, then zero-padded to a block) so the fixed-size, infallible constructor can
/// be used: no error path exists for any secret length.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The SigV4 signing key: `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
/// "aws4_request")`, `date` being `YYYYMMDD`. Valid for that day, region and service only.
pub fn signing_key(secret_access_key: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_secret = format!("AWS4{secret_access_key}");
    let k_date = hmac_sha256(k_secret.as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// `t` as the SigV4 timestamp in UTC, e.g. `20150830T123600Z`.
///
/// A time outside years 1..=9999 (only a broken clock produces one) is shown as the Unix
/// epoch instead of panicking; AWS then rejects the request as too skewed, which names
/// the real problem.
pub fn amz_date(t: SystemTime) -> String {
    let epoch = OffsetDateTime::UNIX_EPOCH;
    let utc = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => time::Duration::try_from(after)
            .ok()
            .and_then(|d| epoch.checked_add(d)),
        Err(before) => time::Duration::try_from(before.duration())
            .ok()
            .and_then(|d| epoch.checked_sub(d)),
    }
    .unwrap_or(epoch);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn empty_body_hash() {
        assert_eq!(sha256_hex(b""), crate::sigv4::EMPTY_SHA256);
    }

    #[test]
    fn hmac_matches_rfc4231_for_short_and_long_keys() {
        // RFC 4231 test case 2 (short key) and test case 6 (131-byte key, hashed first).
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn amz_date_format() {
        let t = UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        assert_eq!(amz_date(t), "20150830T123600Z");
        let before_epoch = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(amz_date(before_epoch), "19691231T235959Z");
    }

    #[test]
    fn amz_date_of_an_unrepresentable_time_does_not_panic() {
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(amz_date(far), "19700101T000000Z");
    }
}
