//! S3's XML bodies: the answers we parse (listings, multipart results, copy results, delete
//! results, error bodies) and the two small request bodies we write (DeleteObjects,
//! CompleteMultipartUpload).
//!
//! Parsing goes through a tiny element tree built with quick-xml: S3 documents are small
//! (a listing page is at most 1,000 entries), and walking a tree keeps each parser a few
//! readable lines. Anything that is not well-formed XML, or lacks an element S3 always sends,
//! is [`S3Error::Malformed`]; nothing here panics on input.

use std::borrow::Cow;
use std::time::SystemTime;

use percent_encoding::percent_decode_str;
use quick_xml::events::Event;
use quick_xml::Reader;

use super::{CompletedPart, ListPage, ObjectMeta, S3Error};

/// One XML element: its local name (namespace prefix dropped), its text, its children.
#[derive(Debug, Default)]
pub(crate) struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`, in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child named `name`.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// The text of a child S3 always sends; its absence means the answer is not S3's.
    fn required(&self, name: &str) -> Result<&str, S3Error> {
        self.child_text(name)
            .ok_or_else(|| S3Error::Malformed(format!("<{}> has no <{name}> element", self.name)))
    }
}

fn malformed(what: impl std::fmt::Display) -> S3Error {
    S3Error::Malformed(format!("invalid XML: {what}"))
}

/// Parses a whole document into its root element.
pub(crate) fn parse_document(body: &[u8]) -> Result<Element, S3Error> {
    let text = std::str::from_utf8(body).map_err(malformed)?;
    let mut reader = Reader::from_str(text);
    // A stack of open elements; the bottom one is a synthetic holder for the root.
    let mut stack: Vec<Element> = vec![Element::default()];
    loop {
        match reader.read_event().map_err(malformed)? {
            Event::Start(start) => stack.push(Element {
                name: local_name(start.local_name().as_ref())?,
                ..Element::default()
            }),
            Event::Empty(start) => {
                let element = Element {
                    name: local_name(start.local_name().as_ref())?,
                    ..Element::default()
                };
                push_child(&mut stack, element)?;
            }
            Event::End(_) => {
                let done = stack.pop().ok_or_else(|| malformed("unbalanced end tag"))?;
                push_child(&mut stack, done)?;
            }
            Event::Text(t) => append_text(&mut stack, &t.decode().map_err(malformed)?),
            Event::CData(t) => append_text(&mut stack, &t.decode().map_err(malformed)?),
            Event::GeneralRef(r) => {
                let resolved = resolve_reference(&r)?;
                append_text(&mut stack, &resolved);
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if stack.len() != 1 {
        return Err(malformed("unclosed element"));
    }
    stack
        .pop()
        .and_then(|holder| holder.children.into_iter().next())
        .ok_or_else(|| malformed("empty document"))
}

fn local_name(raw: &[u8]) -> Result<String, S3Error> {
    std::str::from_utf8(raw)
        .map(str::to_string)
        .map_err(malformed)
}

fn push_child(stack: &mut [Element], child: Element) -> Result<(), S3Error> {
    let parent = stack
        .last_mut()
        .ok_or_else(|| malformed("unbalanced end tag"))?;
    parent.children.push(child);
    Ok(())
}

fn append_text(stack: &mut [Element], text: &str) {
    // The synthetic holder (depth 0) collects whitespace between prolog items; ignore it.
    if stack.len() > 1 {
        if let Some(top) = stack.last_mut() {
            top.text.push_str(text);
        }
    }
}

/// `&amp;`, `&#10;`, `&#x1F;`: quick-xml hands references over separately from the text.
fn resolve_reference(r: &quick_xml::events::BytesRef<'_>) -> Result<Cow<'static, str>, S3Error> {
    if let Some(c) = r.resolve_char_ref().map_err(malformed)? {
        return Ok(Cow::Owned(c.to_string()));
    }
    let name = r.decode().map_err(malformed)?;
    quick_xml::escape::resolve_predefined_entity(&name)
        .map(Cow::Borrowed)
        .ok_or_else(|| malformed(format!("unknown entity &{name};")))
}

/// An S3 `<Error>` body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    /// The bucket's real region, in `AuthorizationHeaderMalformed` answers.
    pub region: Option<String>,
}

/// The `<Error>` in `body`, or `None` when the body is empty, not XML, or another document
/// (a CopyObject or CompleteMultipartUpload success). Never fails: error bodies are advisory.
pub fn parse_error(body: &[u8]) -> Option<ErrorBody> {
    let root = parse_document(body).ok()?;
    if root.name != "Error" {
        return None;
    }
    Some(ErrorBody {
        code: root.child_text("Code").unwrap_or_default().to_string(),
        message: root.child_text("Message").unwrap_or_default().to_string(),
        region: root
            .child_text("Region")
            .filter(|r| !r.is_empty())
            .map(str::to_string),
    })
}

/// Undoes `encoding-type=url`: S3 encodes like an HTML form (`+` for a space, `%2B` for `+`).
fn url_decode(text: &str) -> Result<String, S3Error> {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| S3Error::Malformed(format!("url-encoded key is not UTF-8: {text:?}")))
}

/// An ISO 8601 time as listings carry it (`2009-10-12T17:50:30.000Z`).
pub fn parse_iso8601(text: &str) -> Result<SystemTime, S3Error> {
    time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
        .map(SystemTime::from)
        .map_err(|_| S3Error::Malformed(format!("bad timestamp {text:?}")))
}

/// One page of a ListObjectsV2 (`ListBucketResult`). Keys and prefixes are decoded when the
/// answer says `<EncodingType>url</EncodingType>`, and taken literally when the server
/// ignored our request for it.
pub fn parse_list_objects_v2(body: &[u8]) -> Result<ListPage, S3Error> {
    let (root, page) = parse_listing(body)?;
    let truncated = root
        .child_text("IsTruncated")
        .is_some_and(|t| t.trim() == "true");
    let mut page = page;
    page.next_continuation_token = match root.child_text("NextContinuationToken") {
        Some(token) if truncated && !token.is_empty() => Some(token.to_string()),
        _ if truncated => {
            return Err(S3Error::Malformed(
                "truncated listing without <NextContinuationToken>".into(),
            ))
        }
        _ => None,
    };
    Ok(page)
}

/// One page of a ListObjects (V1), for servers without V2: the same `ListBucketResult`,
/// chained by markers. The marker of the next page (kept in `next_continuation_token`) is
/// `<NextMarker>`, or, when the server sends none, the page's greatest key or prefix —
/// the greatest, not the last, as some servers list a page out of order.
pub fn parse_list_objects_v1(body: &[u8]) -> Result<ListPage, S3Error> {
    let (root, mut page) = parse_listing(body)?;
    let truncated = root
        .child_text("IsTruncated")
        .is_some_and(|t| t.trim() == "true");
    if !truncated {
        return Ok(page);
    }
    let encoded = root
        .child_text("EncodingType")
        .is_some_and(|e| e.eq_ignore_ascii_case("url"));
    let next = match root.child_text("NextMarker").filter(|m| !m.is_empty()) {
        Some(m) if encoded => Some(url_decode(m)?),
        Some(m) => Some(m.to_string()),
        None => page
            .objects
            .iter()
            .map(|o| o.key.as_str())
            .chain(page.common_prefixes.iter().map(String::as_str))
            .max()
            .map(str::to_string),
    };
    match next {
        Some(marker) => {
            page.next_continuation_token = Some(marker);
            Ok(page)
        }
        None => Err(S3Error::Malformed(
            "truncated V1 listing with no entry and no <NextMarker>".into(),
        )),
    }
}

/// The entries of a `ListBucketResult` (V1 or V2), without the paging.
fn parse_listing(body: &[u8]) -> Result<(Element, ListPage), S3Error> {
    let root = parse_document(body)?;
    if root.name != "ListBucketResult" {
        return Err(S3Error::Malformed(format!(
            "expected <ListBucketResult>, got <{}>",
            root.name
        )));
    }
    let encoded = root
        .child_text("EncodingType")
        .is_some_and(|e| e.eq_ignore_ascii_case("url"));
    let decode = |text: &str| -> Result<String, S3Error> {
        if encoded {
            url_decode(text)
        } else {
            Ok(text.to_string())
        }
    };
    let mut page = ListPage::default();
    for item in root.children_named("Contents") {
        let size = item.required("Size")?;
        page.objects.push(ObjectMeta {
            key: decode(item.required("Key")?)?,
            size: size
                .trim()
                .parse()
                .map_err(|_| S3Error::Malformed(format!("bad <Size> {size:?}")))?,
            etag: item.child_text("ETag").unwrap_or_default().to_string(),
            last_modified: parse_iso8601(item.required("LastModified")?)?,
            // Listings carry no metadata.
            metadata: None,
            version_id: None,
        });
    }
    for prefixes in root.children_named("CommonPrefixes") {
        page.common_prefixes
            .push(decode(prefixes.required("Prefix")?)?);
    }
    Ok((root, page))
}

/// The root element, which must be `expected`. (An `<Error>` root in a 200 answer is
/// caught by the client with [`parse_error`] before it gets here.)
fn expect_root(body: &[u8], expected: &str) -> Result<Element, S3Error> {
    let root = parse_document(body)?;
    if root.name == expected {
        Ok(root)
    } else {
        Err(S3Error::Malformed(format!(
            "expected <{expected}>, got <{}>",
            root.name
        )))
    }
}

/// `InitiateMultipartUploadResult`: the upload id.
pub fn parse_initiate_multipart(body: &[u8]) -> Result<String, S3Error> {
    let root = expect_root(body, "InitiateMultipartUploadResult")?;
    Ok(root.required("UploadId")?.to_string())
}

/// `CompleteMultipartUploadResult`: the new object's ETag.
pub fn parse_complete_multipart(body: &[u8]) -> Result<String, S3Error> {
    // moto names the root `CompleteMultipartUploadResponse`; its content is S3's.
    let root = match expect_root(body, "CompleteMultipartUploadResult") {
        Err(_) => expect_root(body, "CompleteMultipartUploadResponse")?,
        found => found?,
    };
    Ok(root.required("ETag")?.to_string())
}

/// `CopyObjectResult`: the copy's ETag.
pub fn parse_copy_object(body: &[u8]) -> Result<String, S3Error> {
    let root = expect_root(body, "CopyObjectResult")?;
    Ok(root.required("ETag")?.to_string())
}

/// `CopyPartResult` (UploadPartCopy): the part's ETag.
/// `CopyPartResult`: the part's ETag, and its CRC32C when the upload declared one.
pub fn parse_copy_part(body: &[u8]) -> Result<(String, Option<String>), S3Error> {
    let root = expect_root(body, "CopyPartResult")?;
    Ok((
        root.required("ETag")?.to_string(),
        root.child_text("ChecksumCRC32C").map(str::to_string),
    ))
}

/// One page of `ListPartsResult`: the parts S3 holds of a multipart upload (ETag, size,
/// CRC32C when the upload declared it), and the marker of the next page.
pub fn parse_list_parts(body: &[u8]) -> Result<(Vec<CompletedPart>, Option<u32>), S3Error> {
    let root = expect_root(body, "ListPartsResult")?;
    let parts = root
        .children_named("Part")
        .map(|p| {
            let number = p.required("PartNumber")?;
            let size = p.required("Size")?;
            Ok(CompletedPart {
                part_number: number
                    .parse()
                    .map_err(|_| S3Error::Malformed(format!("bad PartNumber {number:?}")))?,
                etag: p.required("ETag")?.to_string(),
                checksum_crc32c: p.child_text("ChecksumCRC32C").map(str::to_string),
                size: size
                    .parse()
                    .map_err(|_| S3Error::Malformed(format!("bad part Size {size:?}")))?,
            })
        })
        .collect::<Result<Vec<_>, S3Error>>()?;
    let next = match root.child_text("IsTruncated") {
        Some("true") => root
            .child_text("NextPartNumberMarker")
            .and_then(|m| m.parse().ok()),
        _ => None,
    };
    Ok((parts, next))
}

/// One page of `ListMultipartUploadsResult`: `(key, upload id, initiated)` of each upload
/// in progress, and the markers of the next page.
#[allow(clippy::type_complexity)]
pub fn parse_list_uploads(
    body: &[u8],
) -> Result<
    (
        Vec<(String, String, Option<SystemTime>)>,
        Option<(String, String)>,
    ),
    S3Error,
> {
    let root = expect_root(body, "ListMultipartUploadsResult")?;
    let uploads = root
        .children_named("Upload")
        .map(|u| {
            Ok((
                u.required("Key")?.to_string(),
                u.required("UploadId")?.to_string(),
                u.child_text("Initiated")
                    .and_then(|t| parse_iso8601(t).ok()),
            ))
        })
        .collect::<Result<Vec<_>, S3Error>>()?;
    let next = match root.child_text("IsTruncated") {
        Some("true") => Some((
            root.child_text("NextKeyMarker")
                .unwrap_or_default()
                .to_string(),
            root.child_text("NextUploadIdMarker")
                .unwrap_or_default()
                .to_string(),
        )),
        _ => None,
    };
    Ok((uploads, next))
}

/// `DeleteResult`: every key S3 could not delete, with `"Code: Message"` as the reason.
/// The reason is S3's text, so the caller redacts it like any error message.
pub fn parse_delete_result(body: &[u8]) -> Result<Vec<(String, String)>, S3Error> {
    let root = expect_root(body, "DeleteResult")?;
    root.children_named("Error")
        .map(|e| {
            let code = e.child_text("Code").unwrap_or_default();
            let message = e.child_text("Message").unwrap_or_default();
            Ok((e.required("Key")?.to_string(), format!("{code}: {message}")))
        })
        .collect()
}

/// Escapes text for an element body. Control characters become character references, as S3
/// documents for keys containing them (a literal CR would be normalized away by XML parsers).
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push_str(&format!("&#x{:X};", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// The body of DeleteObjects, in quiet mode (S3 lists only the failures).
pub fn delete_objects_body(keys: &[String]) -> String {
    let mut out = String::from("<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    out.push_str("<Quiet>true</Quiet>");
    for key in keys {
        out.push_str("<Object><Key>");
        out.push_str(&escape_text(key));
        out.push_str("</Key></Object>");
    }
    out.push_str("</Delete>");
    out
}

/// The body of CompleteMultipartUpload.
pub fn complete_multipart_body(parts: &[CompletedPart]) -> String {
    let mut out =
        String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for part in parts {
        let checksum = part
            .checksum_crc32c
            .as_deref()
            .map(|c| format!("<ChecksumCRC32C>{}</ChecksumCRC32C>", escape_text(c)))
            .unwrap_or_default();
        out.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag>{checksum}</Part>",
            part.part_number,
            escape_text(&part.etag)
        ));
    }
    out.push_str("</CompleteMultipartUpload>");
    out
}

#[cfg(test)]
mod tests;
