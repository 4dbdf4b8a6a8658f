//! Type detection from the first bytes of an upload (magic bytes first, the
//! file name only to tell Markdown from plain text).

/// The formats this version reads.
pub const PDF: &str = "application/pdf";
pub const HTML: &str = "text/html";
pub const MARKDOWN: &str = "text/markdown";
pub const TEXT: &str = "text/plain";
pub const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
pub const PPTX: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
pub const XLS: &str = "application/vnd.ms-excel";
pub const ODT: &str = "application/vnd.oasis.opendocument.text";
pub const ODS: &str = "application/vnd.oasis.opendocument.spreadsheet";
pub const ODP: &str = "application/vnd.oasis.opendocument.presentation";
pub const EML: &str = "message/rfc822";
pub const RTF: &str = "application/rtf";
pub const CSV: &str = "text/csv";
pub const PNG: &str = "image/png";
pub const JPEG: &str = "image/jpeg";
pub const TIFF: &str = "image/tiff";
/// A zip whose first bytes did not show which office format it holds; the
/// parser process decides from the whole directory.
pub const ZIP: &str = "application/zip";

/// The supported type with this name, if it is one.
fn supported(mime: &str) -> Option<&'static str> {
    [DOCX, PPTX, XLSX, XLS, ODT, ODS, ODP, RTF, PNG, JPEG, TIFF]
        .into_iter()
        .find(|m| *m == mime)
}

#[derive(Debug, PartialEq, Eq)]
pub enum Sniffed {
    Supported(&'static str),
    /// Recognised, but not a format docpipe reads (yet): the detected type.
    Unsupported(String),
    Empty,
}

/// Decides the type of an upload from its first bytes and its file name.
pub fn sniff(head: &[u8], filename: &str) -> Sniffed {
    if head.is_empty() {
        return Sniffed::Empty;
    }
    // %PDF- may follow a little junk; readers accept it within the first KiB.
    if head.len() >= 5
        && head[..head.len().min(1024)]
            .windows(5)
            .any(|w| w == b"%PDF-")
    {
        return Sniffed::Supported(PDF);
    }
    if head.starts_with(b"{\\rtf") {
        return Sniffed::Supported(RTF);
    }
    if head.starts_with(b"PK\x03\x04") {
        return Sniffed::Supported(zip_kind(head).unwrap_or(ZIP));
    }
    if let Some(kind) = infer::get(head) {
        match kind.mime_type() {
            "text/html" => return Sniffed::Supported(HTML),
            "text/xml" | "application/xml" => {}
            other => {
                return match supported(other) {
                    Some(m) => Sniffed::Supported(m),
                    None => Sniffed::Unsupported(other.to_string()),
                }
            }
        }
    }
    if !looks_like_text(head) {
        return Sniffed::Unsupported("application/octet-stream".into());
    }
    if looks_like_html(head) {
        return Sniffed::Supported(HTML);
    }
    let lower = filename.to_ascii_lowercase();
    if looks_like_mail(head, lower.ends_with(".eml")) {
        return Sniffed::Supported(EML);
    }
    if lower.ends_with(".md") || lower.ends_with(".markdown") {
        return Sniffed::Supported(MARKDOWN);
    }
    if lower.ends_with(".html") || lower.ends_with(".htm") || lower.ends_with(".xhtml") {
        return Sniffed::Supported(HTML);
    }
    if lower.ends_with(".csv") || lower.ends_with(".tsv") {
        return Sniffed::Supported(CSV);
    }
    Sniffed::Supported(TEXT)
}

/// The office format of a zip container, from the entries whose local
/// headers fall in `head`: ODF names its type in a first `mimetype` entry;
/// OOXML is told by its part folders (`word/`, `ppt/`, `xl/`).
fn zip_kind(head: &[u8]) -> Option<&'static str> {
    let mut at = 0usize;
    while at + 30 <= head.len() && head[at..].starts_with(b"PK\x03\x04") {
        let u16_at = |o: usize| u16::from_le_bytes([head[at + o], head[at + o + 1]]) as usize;
        let u32_at = |o: usize| {
            u32::from_le_bytes([
                head[at + o],
                head[at + o + 1],
                head[at + o + 2],
                head[at + o + 3],
            ]) as usize
        };
        let (flags, csize, name_len, extra_len) = (u16_at(6), u32_at(18), u16_at(26), u16_at(28));
        let name_end = at + 30 + name_len;
        let name = head.get(at + 30..name_end)?;
        let data = name_end + extra_len;
        if name == b"mimetype" {
            let body = head.get(data..data + csize)?;
            return std::str::from_utf8(body).ok().and_then(supported);
        }
        for (folder, mime) in [(&b"word/"[..], DOCX), (b"ppt/", PPTX), (b"xl/", XLSX)] {
            if name.starts_with(folder) {
                return Some(mime);
            }
        }
        if flags & 0x08 != 0 {
            // Sizes follow the data (streamed zip): the next header's place
            // is unknown from here.
            return None;
        }
        at = data + csize;
    }
    None
}

/// Text has no NUL bytes outside UTF-16 and few control characters.
fn looks_like_text(head: &[u8]) -> bool {
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return true; // UTF-16 with BOM
    }
    if head.contains(&0) {
        return false;
    }
    let control = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0C | 0x1B))
        .count();
    control * 100 <= head.len()
}

/// An RFC 822 message starts with header lines: at least two of the usual
/// mail headers before the first blank line (one, for a file named `.eml`).
fn looks_like_mail(head: &[u8], named_eml: bool) -> bool {
    const HEADERS: &[&str] = &[
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "received",
        "return-path",
        "mime-version",
        "delivered-to",
        "reply-to",
        "cc",
        "content-type",
    ];
    let text = String::from_utf8_lossy(&head[..head.len().min(8192)]);
    let mut known = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            continue; // a folded header line
        }
        let Some((name, _)) = line.split_once(':') else {
            return false;
        };
        if name.is_empty() || name.contains(' ') {
            return false;
        }
        if HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            known += 1;
        }
    }
    known >= 2 || (named_eml && known >= 1)
}

fn looks_like_html(head: &[u8]) -> bool {
    let start = String::from_utf8_lossy(&head[..head.len().min(1024)]).to_ascii_lowercase();
    let t = start.trim_start_matches('\u{feff}').trim_start();
    t.starts_with("<!doctype html")
        || t.starts_with("<html")
        || (t.starts_with("<?xml") && t.contains("<html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_by_content_not_name() {
        assert_eq!(sniff(b"%PDF-1.7\n...", "a.txt"), Sniffed::Supported(PDF));
        assert_eq!(
            sniff(b"<!DOCTYPE html><html>", "a.txt"),
            Sniffed::Supported(HTML)
        );
        assert_eq!(
            sniff(b"# Title\n\ntext", "README.md"),
            Sniffed::Supported(MARKDOWN)
        );
        assert_eq!(sniff(b"plain words", "notes"), Sniffed::Supported(TEXT));
        assert_eq!(
            sniff(b"From: a@b.c\r\nSubject: hi\r\n\r\nbody", "x.txt"),
            Sniffed::Supported(EML)
        );
        assert_eq!(
            sniff(b"Note: one\nthing", "x.txt"),
            Sniffed::Supported(TEXT)
        );
        let mut docx = b"PK\x03\x04".to_vec();
        docx.extend_from_slice(&[0; 22]);
        docx.extend_from_slice(&(17u16).to_le_bytes());
        docx.extend_from_slice(&0u16.to_le_bytes());
        docx.extend_from_slice(b"word/document.xml");
        assert_eq!(sniff(&docx, "a.pdf"), Sniffed::Supported(DOCX));
        assert_eq!(
            sniff(b"{\\rtf1\\ansi hi}", "a.txt"),
            Sniffed::Supported(RTF)
        );
        assert_eq!(sniff(b"", "x.txt"), Sniffed::Empty);
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "a.pdf"),
            Sniffed::Supported(PNG)
        );
        assert_eq!(sniff(b"a,b\n1,2\n", "t.csv"), Sniffed::Supported(CSV));
        assert!(matches!(
            sniff(b"GIF89a\x01\0\x01\0", "a.png"),
            Sniffed::Unsupported(_)
        ));
        assert!(matches!(
            sniff(b"\x7fELF\x02\x01\x01\0\0\0", "a.txt"),
            Sniffed::Unsupported(_)
        ));
        assert!(matches!(
            sniff(&[1, 2, 3, 0, 5, 6], "a.txt"),
            Sniffed::Unsupported(_)
        ));
    }
}
