//! The parsers against sample answers from the S3 API reference, malformed input, and the
//! request bodies round-tripping through the parser.

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

    let parts = [
        CompletedPart {
            part_number: 1,
            etag: "\"e1\"".into(),
            checksum_crc32c: Some("4waSgw==".into()),
            size: 0,
        },
        CompletedPart {
            part_number: 2,
            etag: "\"e2\"".into(),
            checksum_crc32c: None,
            size: 0,
        },
    ];
    let body = complete_multipart_body(&parts);
    let root = parse_document(body.as_bytes()).unwrap();
    let listed: Vec<_> = root.children_named("Part").collect();
    assert_eq!(listed[0].child_text("PartNumber"), Some("1"));
    assert_eq!(listed[0].child_text("ETag"), Some("\"e1\""));
    assert_eq!(listed[0].child_text("ChecksumCRC32C"), Some("4waSgw=="));
    assert_eq!(listed[1].child_text("ChecksumCRC32C"), None);
}

/// moto's Complete answer has another root name and S3's content.
#[test]
fn complete_answer_of_moto_is_read() {
    let body = "<CompleteMultipartUploadResponse><Bucket>b</Bucket><Key>k</Key>\
                <ETag>&quot;abc-2&quot;</ETag></CompleteMultipartUploadResponse>";
    assert_eq!(
        parse_complete_multipart(body.as_bytes()).unwrap(),
        "\"abc-2\""
    );
}

/// A truncated V1 page is continued from its `NextMarker` (decoded), else from its greatest
/// entry, whatever the order the server listed them in.
#[test]
fn v1_listing_continues_from_the_marker() {
    let page = |marker: &str, keys: &[&str]| {
        let contents: String = keys
            .iter()
            .map(|k| {
                format!(
                    "<Contents><Key>{k}</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>\
                     <ETag>&quot;e&quot;</ETag><Size>1</Size></Contents>"
                )
            })
            .collect();
        format!(
            "<ListBucketResult><Name>b</Name><EncodingType>url</EncodingType>\
             <IsTruncated>true</IsTruncated>{marker}{contents}</ListBucketResult>"
        )
    };
    let with =
        parse_list_objects_v1(page("<NextMarker>d%2Fz</NextMarker>", &["d/a"]).as_bytes()).unwrap();
    assert_eq!(with.next_continuation_token.as_deref(), Some("d/z"));
    let without = parse_list_objects_v1(page("", &["d/c", "d/a", "d/b"]).as_bytes()).unwrap();
    assert_eq!(without.next_continuation_token.as_deref(), Some("d/c"));
    assert!(parse_list_objects_v1(page("", &[]).as_bytes()).is_err());
    // A truncated V1 page is no V2 page: the client falls back on this error.
    assert!(parse_list_objects_v2(page("", &["d/a"]).as_bytes()).is_err());
}
