//! A deliberately small SigV4-signing HTTP client for testing the test server itself (and for
//! tests that need to make one precise raw request). It is independent of the crate's own
//! signer on purpose: the server is the reference the crate's client is tested against, so
//! the server's own tests must not depend on that client.

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::s3server::TestServer;

/// One answer: status, headers and the whole body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The text of every `<tag>...</tag>` in the body, in order (enough for S3's flat XML).
    pub fn xml_values(&self, tag: &str) -> Vec<String> {
        xml_values(&self.text(), tag)
    }

    /// The first `<tag>` value, if any.
    pub fn xml_value(&self, tag: &str) -> Option<String> {
        self.xml_values(tag).into_iter().next()
    }

    /// `<child>` values inside each `<parent>` element, e.g. `("Contents", "Key")` for the keys
    /// of a listing without the top-level `<Prefix>` mixed in.
    pub fn xml_nested(&self, parent: &str, child: &str) -> Vec<String> {
        xml_raw(&self.text(), parent)
            .iter()
            .flat_map(|inner| xml_values(inner, child))
            .collect()
    }
}

/// The unescaped text of every `<tag>...</tag>` in `xml`.
pub fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    xml_raw(xml, tag).iter().map(|v| xml_unescape(v)).collect()
}

/// The raw inner XML of every `<tag>...</tag>` (or `<tag attr="...">...</tag>`) in `xml`
/// (not nested in itself).
fn xml_raw(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        // `<tag>` or `<tag attrs>`, not `<tagSuffix>`; `<tag/>` is an empty value.
        if let Some(empty) = after.strip_prefix("/>") {
            out.push(String::new());
            rest = empty;
            continue;
        }
        if !after.starts_with(['>', ' ']) {
            rest = after;
            continue;
        }
        let Some(gt) = after.find('>') else { break };
        let content = &after[gt + 1..];
        let Some(end) = content.find(&close) else {
            break;
        };
        out.push(content[..end].to_owned());
        rest = &content[end + close.len()..];
    }
    out
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[derive(Clone)]
pub struct TestClient {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    credentials: Option<(String, String)>,
    session_token: Option<String>,
    region: String,
}

impl TestClient {
    /// Signs with the server's default key pair for the server's default region.
    pub fn new(server: &TestServer) -> Self {
        Self {
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("build http client"),
            endpoint: server.endpoint(),
            host: server.addr().to_string(),
            credentials: Some((
                server.access_key().to_owned(),
                server.secret_key().to_owned(),
            )),
            session_token: None,
            region: server.region().to_owned(),
        }
    }

    /// Sends unsigned requests.
    pub fn anonymous(server: &TestServer) -> Self {
        Self {
            credentials: None,
            ..Self::new(server)
        }
    }

    pub fn with_credentials(mut self, access_key: &str, secret_key: &str) -> Self {
        self.credentials = Some((access_key.to_owned(), secret_key.to_owned()));
        self
    }

    pub fn with_session_token(mut self, token: &str) -> Self {
        self.session_token = Some(token.to_owned());
        self
    }

    /// Signs for `region` (the credential scope) instead of the server's default.
    pub fn with_region(mut self, region: &str) -> Self {
        self.region = region.to_owned();
        self
    }

    /// A request on `/bucket/key` (path-style); an empty key addresses the bucket, an empty
    /// bucket the service.
    pub fn request(&self, method: &str, bucket: &str, key: &str) -> RequestBuilder<'_> {
        RequestBuilder {
            client: self,
            method: method.to_owned(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Bytes::new(),
            payload_hash: None,
        }
    }
}

pub struct RequestBuilder<'a> {
    client: &'a TestClient,
    method: String,
    bucket: String,
    key: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Bytes,
    payload_hash: Option<String>,
}

impl RequestBuilder<'_> {
    /// Signs with this `x-amz-content-sha256` instead of the body's SHA-256 (e.g.
    /// `UNSIGNED-PAYLOAD`, or a wrong hash to test the server's check).
    pub fn payload_hash(mut self, hash: &str) -> Self {
        self.payload_hash = Some(hash.to_owned());
        self
    }

    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds a header; every header added is also signed.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends the request; panics on transport errors.
    pub async fn send(self) -> Reply {
        let what = format!("{} /{}/{}", self.method, self.bucket, self.key);
        self.try_send()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// Sends the request; transport errors (a dropped connection) are returned.
    pub async fn try_send(self) -> Result<Reply, reqwest::Error> {
        let c = self.client;
        let mut path = String::from("/");
        if !self.bucket.is_empty() {
            path.push_str(&uri_encode(&self.bucket, true));
            if !self.key.is_empty() {
                path.push('/');
                path.push_str(&uri_encode(&self.key, false));
            }
        }
        let mut query: Vec<(String, String)> = self
            .query
            .iter()
            .map(|(k, v)| (uri_encode(k, true), uri_encode(v, true)))
            .collect();
        query.sort();
        let query_string = query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");

        let mut headers = self.headers.clone();
        if let Some((access_key, secret_key)) = &c.credentials {
            let now = time::OffsetDateTime::now_utc();
            let amz_date = now
                .format(time::macros::format_description!(
                    "[year][month][day]T[hour][minute][second]Z"
                ))
                .expect("format date");
            let date = &amz_date[..8];
            let payload_hash = self
                .payload_hash
                .clone()
                .unwrap_or_else(|| hex::encode(Sha256::digest(&self.body)));
            headers.push(("host".into(), c.host.clone()));
            headers.push(("x-amz-date".into(), amz_date.clone()));
            headers.push(("x-amz-content-sha256".into(), payload_hash.clone()));
            if let Some(token) = &c.session_token {
                headers.push(("x-amz-security-token".into(), token.clone()));
            }
            headers.sort();
            let canonical_headers: String = headers
                .iter()
                .map(|(k, v)| format!("{k}:{}\n", v.trim()))
                .collect();
            let signed_headers = headers
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(";");
            let canonical_request = format!(
                "{}\n{path}\n{query_string}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
                self.method
            );
            let scope = format!("{date}/{}/s3/aws4_request", c.region);
            let string_to_sign = format!(
                "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
                hex::encode(Sha256::digest(canonical_request.as_bytes()))
            );
            let mut key = hmac(format!("AWS4{secret_key}").as_bytes(), date.as_bytes());
            for part in [c.region.as_str(), "s3", "aws4_request"] {
                key = hmac(&key, part.as_bytes());
            }
            let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
            headers.push((
                "authorization".into(),
                format!("AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"),
            ));
        }

        let mut url = format!("{}{path}", c.endpoint);
        if !query_string.is_empty() {
            url.push('?');
            url.push_str(&query_string);
        }
        let method = reqwest::Method::from_bytes(self.method.as_bytes()).expect("valid method");
        let mut req = c.http.request(method, &url).body(self.body.clone());
        for (k, v) in &headers {
            if k != "host" {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        let response = req.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("hmac takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// AWS URI encoding: unreserved characters kept, `/` kept unless `encode_slash`, every other
/// byte `%XX`.
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
