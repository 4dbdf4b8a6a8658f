//! Type detection from the first bytes of an upload (magic bytes first, the
//! file name only to tell Markdown from plain text).

/// The formats this version reads.
pub const PDF: &str = "application/pdf";
pub const HTML: &str = "text/html";
pub const MARKDOWN: &str = "text/markdown";
pub const TEXT: &str = "text/plain";

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
    if let Some(kind) = infer::get(head) {
        match kind.mime_type() {
            "text/html" => return Sniffed::Supported(HTML),
            "text/xml" | "application/xml" => {}
            other => return Sniffed::Unsupported(other.to_string()),
        }
    }
    if !looks_like_text(head) {
        return Sniffed::Unsupported("application/octet-stream".into());
    }
    if looks_like_html(head) {
        return Sniffed::Supported(HTML);
    }
    let lower = filename.to_ascii_lowercase();
    if lower.ends_with(".md") || lower.ends_with(".markdown") {
        return Sniffed::Supported(MARKDOWN);
    }
    if lower.ends_with(".html") || lower.ends_with(".htm") || lower.ends_with(".xhtml") {
        return Sniffed::Supported(HTML);
    }
    Sniffed::Supported(TEXT)
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
        assert_eq!(sniff(b"", "x.txt"), Sniffed::Empty);
        assert!(matches!(
            sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "a.pdf"),
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
