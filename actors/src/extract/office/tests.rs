//! Tests of the Office readers: hostile containers, each format, properties.

use super::*;
use std::io::Write;

fn zip_of(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in entries {
            w.start_file(*name, opts).unwrap();
            w.write_all(body.as_bytes()).unwrap();
        }
        w.finish().unwrap();
    }
    buf.into_inner()
}

#[test]
fn docx_paragraphs_tables_and_entities() {
    let doc = r#"<w:document xmlns:w="w"><w:body>
        <w:p><w:r><w:t>Fish &amp; chips</w:t></w:r><w:r><w:tab/><w:t>£3</w:t></w:r></w:p>
        <w:tbl><w:tr><w:tc><w:p><w:r><w:t>a</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>b</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
        <w:p><w:r><w:instrText>PAGE</w:instrText></w:r></w:p>
    </w:body></w:document>"#;
    let core = r#"<cp:coreProperties xmlns:cp="c" xmlns:dc="d" xmlns:dcterms="t"><dc:title>Menu &amp; more</dc:title><dc:creator>Ann Smith</dc:creator><cp:keywords>food</cp:keywords><dcterms:created>2024-05-01T10:00:00Z</dcterms:created></cp:coreProperties>"#;
    let bytes = zip_of(&[("word/document.xml", doc), ("docProps/core.xml", core)]);
    let out = extract(detect::DOCX, &bytes, &ParseLimits::default()).unwrap();
    assert!(out.text.contains("Fish & chips\t£3"), "{:?}", out.text);
    assert!(
        out.text.ends_with("\na\tb"),
        "one row per line: {:?}",
        out.text
    );
    assert!(!out.text.contains("PAGE"), "field codes are not text");
    assert_eq!(out.title.as_deref(), Some("Menu & more"));
    let f = out.fields.unwrap();
    assert_eq!(f["author"], "Ann Smith");
    assert_eq!(f["keywords"], "food");
    assert_eq!(f["created"], "2024-05-01T10:00:00Z");
}

#[test]
fn zip_bombs_and_missing_parts_fail_with_their_codes() {
    let big = "x".repeat(2 * 1024 * 1024);
    let bytes = zip_of(&[("word/document.xml", &big)]);
    let limits = ParseLimits {
        max_zip_bytes: 1024 * 1024,
        ..ParseLimits::default()
    };
    assert_eq!(
        extract(detect::DOCX, &bytes, &limits).unwrap_err().code,
        "too_large"
    );
    let many: Vec<(String, &str)> = (0..20).map(|i| (format!("f{i}"), "")).collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(n, b)| (n.as_str(), *b)).collect();
    let limits = ParseLimits {
        max_zip_entries: 10,
        ..ParseLimits::default()
    };
    assert_eq!(
        extract(detect::DOCX, &zip_of(&refs), &limits)
            .unwrap_err()
            .code,
        "too_large"
    );
    let empty = zip_of(&[("other.xml", "<a/>")]);
    assert_eq!(
        extract(detect::DOCX, &empty, &ParseLimits::default())
            .unwrap_err()
            .code,
        "malformed"
    );
    assert_eq!(
        extract(
            detect::DOCX,
            b"PK\x03\x04 truncated",
            &ParseLimits::default()
        )
        .unwrap_err()
        .code,
        "malformed"
    );
}

#[test]
fn a_zip_the_first_bytes_could_not_tell_is_read_by_its_directory() {
    let doc = r#"<w:document xmlns:w="w"><w:body><w:p><w:r><w:t>inside</w:t></w:r></w:p></w:body></w:document>"#;
    let padding = "p".repeat(20_000);
    let bytes = zip_of(&[
        ("[Content_Types].xml", &padding),
        ("word/document.xml", doc),
    ]);
    let out = extract(detect::ZIP, &bytes, &ParseLimits::default()).unwrap();
    assert_eq!(
        (out.text.as_str(), out.mime.as_deref()),
        ("inside", Some(detect::DOCX))
    );
    let other = zip_of(&[("photos/a.jpg", "jpeg")]);
    assert_eq!(
        extract(detect::ZIP, &other, &ParseLimits::default())
            .unwrap_err()
            .code,
        "unsupported"
    );
}

#[test]
fn odf_text_with_spaces_and_slides_with_notes() {
    let content = r#"<office:document-content xmlns:office="o" xmlns:text="t"><office:body><office:text>
        <text:h>Title</text:h><text:p>one<text:s/>two<text:tab/>three</text:p>
    </office:text></office:body></office:document-content>"#;
    let bytes = zip_of(&[
        ("mimetype", "application/vnd.oasis.opendocument.text"),
        ("content.xml", content),
    ]);
    let out = extract(detect::ODT, &bytes, &ParseLimits::default()).unwrap();
    assert_eq!(out.text, "Title\none two\tthree");
    let slide =
        r#"<p:sld xmlns:p="p" xmlns:a="a"><a:p><a:r><a:t>Slide text</a:t></a:r></a:p></p:sld>"#;
    let notes = r#"<p:notes xmlns:p="p" xmlns:a="a"><a:p><a:r><a:t>Speaker note</a:t></a:r></a:p></p:notes>"#;
    let bytes = zip_of(&[
        ("ppt/slides/slide2.xml", slide),
        ("ppt/slides/slide1.xml", slide),
        ("ppt/notesSlides/notesSlide1.xml", notes),
    ]);
    let out = extract(detect::PPTX, &bytes, &ParseLimits::default()).unwrap();
    assert_eq!(out.pages, Some(2));
    assert!(out.text.contains("Speaker note"), "{:?}", out.text);
}
