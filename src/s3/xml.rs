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
        });
    }
    for prefixes in root.children_named("CommonPrefixes") {
        page.common_prefixes
            .push(decode(prefixes.required("Prefix")?)?);
    }
    let truncated = root
        .child_text("IsTruncated")
        .is_some_and(|t| t.trim() == "true");
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
    let root = expect_root(body, "CompleteMultipartUploadResult")?;
    Ok(root.required("ETag")?.to_string())
}

/// `CopyObjectResult`: the copy's ETag.
pub fn parse_copy_object(body: &[u8]) -> Result<String, S3Error> {
    let root = expect_root(body, "CopyObjectResult")?;
    Ok(root.required("ETag")?.to_string())
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
        out.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            part.part_number,
            escape_text(&part.etag)
        ));
    }
    out.push_str("</CompleteMultipartUpload>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From the ListObjectsV2 reference, with a delimiter and `encoding-type=url`.
    const LIST_ENCODED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>example-bucket</Name>
  <Prefix>photos%2F</Prefix>
  <KeyCount>3</KeyCount>
  <MaxKeys>2</MaxKeys>
  <Delimiter>%2F</Delimiter>
  <EncodingType>url</EncodingType>
  <IsTruncated>true</IsTruncated>
  <ContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</ContinuationToken>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <Contents>
    <Key>photos%2Fmy+summer%2B2024%0D.jpg</Key>
    <LastModified>2009-10-12T17:50:30.000Z</LastModified>
    <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag>
    <Size>434234</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <CommonPrefixes><Prefix>photos%2F2006%2F</Prefix></CommonPrefixes>
  <CommonPrefixes><Prefix>photos%2F%C3%A9t%C3%A9%2F</Prefix></CommonPrefixes>
</ListBucketResult>"#;

    #[test]
    fn listing_with_url_encoding_is_decoded() {
        let page = parse_list_objects_v2(LIST_ENCODED.as_bytes()).unwrap();
        assert_eq!(page.objects.len(), 1);
        let o = &page.objects[0];
        assert_eq!(o.key, "photos/my summer+2024\r.jpg");
        assert_eq!(o.size, 434234);
        assert_eq!(o.etag, "\"fba9dede5f27731c9771645a39863328\"");
        assert_eq!(
            o.last_modified,
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_255_369_830)
        );
        assert_eq!(page.common_prefixes, vec!["photos/2006/", "photos/été/"]);
        assert_eq!(
            page.next_continuation_token.as_deref(),
            Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        );
    }

    /// A server that ignored `encoding-type=url` sends keys literally: `%` and `+` stay.
    #[test]
    fn listing_without_encoding_type_is_literal() {
        let body = r#"<ListBucketResult><IsTruncated>false</IsTruncated>
            <Contents><Key>100%+a &amp; b</Key><LastModified>2024-01-01T00:00:00Z</LastModified>
            <ETag>"x"</ETag><Size>0</Size></Contents></ListBucketResult>"#;
        let page = parse_list_objects_v2(body.as_bytes()).unwrap();
        assert_eq!(page.objects[0].key, "100%+a & b");
        assert_eq!(page.objects[0].etag, "\"x\"");
        assert_eq!(page.next_continuation_token, None);
    }

    #[test]
    fn truncated_listing_needs_a_token() {
        let body = "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
        assert!(matches!(
            parse_list_objects_v2(body.as_bytes()),
            Err(S3Error::Malformed(_))
        ));
    }

    #[test]
    fn error_body_with_region() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'</Message><Region>eu-west-1</Region><RequestId>656c76696e6727732072657175657374</RequestId><HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId></Error>"#;
        let e = parse_error(body.as_bytes()).unwrap();
        assert_eq!(e.code, "AuthorizationHeaderMalformed");
        assert_eq!(e.region.as_deref(), Some("eu-west-1"));
        assert!(e.message.contains("expecting 'eu-west-1'"));
    }

    #[test]
    fn error_parser_ignores_other_documents() {
        assert_eq!(parse_error(b""), None);
        assert_eq!(parse_error(b"<html>503</html>"), None);
        assert_eq!(
            parse_error(b"<CopyObjectResult><ETag>x</ETag></CopyObjectResult>"),
            None
        );
        let e = parse_error(b"<Error><Code>NoSuchKey</Code></Error>").unwrap();
        assert_eq!(
            (e.code.as_str(), e.message.as_str(), e.region),
            ("NoSuchKey", "", None)
        );
    }

    #[test]
    fn multipart_and_copy_results() {
        let initiate = r#"<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>example-bucket</Bucket><Key>example-object</Key>
  <UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>
</InitiateMultipartUploadResult>"#;
        assert_eq!(
            parse_initiate_multipart(initiate.as_bytes()).unwrap(),
            "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"
        );
        let complete = r#"<?xml version="1.0" encoding="UTF-8"?>
<CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Location>http://Example-Bucket.s3.region.amazonaws.com/Example-Object</Location>
  <Bucket>Example-Bucket</Bucket><Key>Example-Object</Key>
  <ETag>"3858f62230ac3c915f300c664312c11f-9"</ETag>
</CompleteMultipartUploadResult>"#;
        assert_eq!(
            parse_complete_multipart(complete.as_bytes()).unwrap(),
            "\"3858f62230ac3c915f300c664312c11f-9\""
        );
        let copy = r#"<CopyObjectResult><LastModified>2009-10-28T22:32:00</LastModified>
            <ETag>"9b2cf535f27731c974343645a3985328"</ETag></CopyObjectResult>"#;
        assert_eq!(
            parse_copy_object(copy.as_bytes()).unwrap(),
            "\"9b2cf535f27731c974343645a3985328\""
        );
        assert!(matches!(
            parse_copy_object(b"<Error><Code>InternalError</Code></Error>"),
            Err(S3Error::Malformed(_))
        ));
    }

    #[test]
    fn delete_result_lists_failures() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Deleted><Key>sample1.txt</Key></Deleted>
  <Error><Key>sample2.txt</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>
</DeleteResult>"#;
        assert_eq!(
            parse_delete_result(body.as_bytes()).unwrap(),
            vec![(
                "sample2.txt".to_string(),
                "AccessDenied: Access Denied".to_string()
            )]
        );
    }

    /// Truncated, mismatched, non-UTF-8 or empty input is an error, never a panic.
    #[test]
    fn malformed_xml_is_an_error() {
        for body in [
            &b"<ListBucketResult><Contents>"[..],
            b"<a></b>",
            b"\xff\xfe<a/>",
            b"",
            b"<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
            b"<ListBucketResult>&bogus;</ListBucketResult>",
        ] {
            assert!(
                matches!(parse_list_objects_v2(body), Err(S3Error::Malformed(_))),
                "{body:?}"
            );
        }
    }

    /// Request bodies escape markup and control characters, and parse back to the same keys.
    #[test]
    fn request_bodies_escape_keys() {
        let keys = vec!["a&b<c>\"'".to_string(), "line\r\nbreak".to_string()];
        let body = delete_objects_body(&keys);
        assert!(body.contains("<Quiet>true</Quiet>"));
        assert!(body.contains("&#xD;&#xA;"));
        let root = parse_document(body.as_bytes()).unwrap();
        let parsed: Vec<&str> = root
            .children_named("Object")
            .filter_map(|o| o.child_text("Key"))
            .collect();
        assert_eq!(parsed, vec!["a&b<c>\"'", "line\r\nbreak"]);

        let parts = [CompletedPart {
            part_number: 1,
            etag: "\"e1\"".into(),
        }];
        let body = complete_multipart_body(&parts);
        let root = parse_document(body.as_bytes()).unwrap();
        let part = root.child("Part").unwrap();
        assert_eq!(part.child_text("PartNumber"), Some("1"));
        assert_eq!(part.child_text("ETag"), Some("\"e1\""));
    }
}
