//! Parsing, as plain functions: any supported format's bytes to text, under
//! the limits against hostile files, and the text's language. Called on the
//! blocking pool for the safe formats and inside the parser process for the
//! others.

use serde::{Deserialize, Serialize};

use super::{detect, email, image, office, pdf, rtf, table, text};
use crate::config::{ExtractConfig, OcrConfig};
use crate::errors::Code;
use crate::model::{ErrorInfo, Extracted};

/// Why a parse failed, with a stable code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ParseError {
    pub code: Code,
    pub message: String,
}

impl ParseError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ParseError {
            code,
            message: message.into(),
        }
    }

    /// Deterministic failures (the same bytes fail the same way) are parked at
    /// once; the others (time, crashes, I/O) are retried with backoff.
    pub fn is_retryable(&self) -> bool {
        self.code.retryable()
    }

    pub fn into_info(self) -> ErrorInfo {
        ErrorInfo::new(self.code.as_str(), self.message)
    }
}

/// Limits against hostile files, from `pipeline.extract`; sent to the
/// parser process with each document.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ParseLimits {
    pub max_zip_entries: usize,
    pub max_zip_bytes: u64,
    pub max_text_chars: usize,
    pub max_attachments: usize,
    pub max_pages: usize,
    pub max_image_megapixels: u32,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits::new(&ExtractConfig::default(), &OcrConfig::default())
    }
}

impl ParseLimits {
    pub fn new(c: &ExtractConfig, ocr: &OcrConfig) -> Self {
        ParseLimits {
            max_zip_entries: c.max_zip_entries,
            max_zip_bytes: c.max_zip_mb.saturating_mul(1024 * 1024),
            max_text_chars: c.max_text_chars,
            max_attachments: c.max_attachments,
            max_pages: c.max_pages,
            max_image_megapixels: ocr.max_image_megapixels,
        }
    }
}

/// Formats that are parsed in the parser process rather than in-process:
/// everything but plain text, Markdown, HTML and CSV.
pub fn needs_sandbox(mime: &str) -> bool {
    !matches!(
        mime,
        detect::TEXT | detect::MARKDOWN | detect::HTML | detect::CSV
    )
}

/// Parses any supported format and tells the text's language. Called on
/// the blocking pool for the safe formats and inside the parser process for
/// the others, so neither costs the async workers any time.
pub fn parse(mime: &str, bytes: &[u8], limits: &ParseLimits) -> Result<Extracted, ParseError> {
    let mut out = parse_format(mime, bytes, limits)?;
    out.language = detect_language(&out.text);
    Ok(out)
}

fn parse_format(mime: &str, bytes: &[u8], limits: &ParseLimits) -> Result<Extracted, ParseError> {
    match mime {
        detect::PDF => pdf::extract(bytes, limits),
        detect::PNG | detect::JPEG | detect::TIFF => image::extract(bytes, limits),
        detect::CSV => table::extract(bytes, limits),
        detect::EML => email::extract(bytes, limits),
        detect::RTF => rtf::extract(bytes),
        detect::DOCX
        | detect::PPTX
        | detect::XLSX
        | detect::XLS
        | detect::ODT
        | detect::ODS
        | detect::ODP
        | detect::ZIP => office::extract(mime, bytes, limits),
        detect::HTML => {
            let (title, text) = text::html_to_text(&text::decode(bytes));
            Ok(Extracted {
                text,
                title,
                pages: None,
                ..Default::default()
            })
        }
        detect::MARKDOWN => {
            let (title, text) = text::markdown_to_text(&text::decode(bytes));
            Ok(Extracted {
                text,
                title,
                pages: None,
                ..Default::default()
            })
        }
        detect::TEXT => Ok(Extracted {
            text: text::decode(bytes),
            title: None,
            pages: None,
            ..Default::default()
        }),
        other => Err(ParseError::new(
            Code::Unsupported,
            format!("docpipe cannot read {other}"),
        )),
    }
}

/// Cuts text at a character boundary after `max_chars` characters.
pub fn truncate_chars(text: &mut String, max_chars: usize) -> bool {
    match text.char_indices().nth(max_chars) {
        Some((byte, _)) => {
            text.truncate(byte);
            true
        }
        None => false,
    }
}

/// How much of the text language detection reads.
pub const LANGUAGE_WINDOW_CHARS: usize = 500;

/// The ISO 639-3 code of the text's language, when whatlang is confident.
/// It runs on every document, so it is kept cheap: the first 500 characters
/// (a language shows in far fewer) against the languages people file
/// documents in most. Measured on 2 KB of English: all 69 languages and the
/// whole text 59 µs a call, 500 characters 20–25 µs; `make bench` (load)
/// prints the cost of this window.
pub fn detect_language(text: &str) -> Option<String> {
    use std::sync::LazyLock;
    use whatlang::Lang::*;
    static DETECTOR: LazyLock<whatlang::Detector> = LazyLock::new(|| {
        whatlang::Detector::with_allowlist(vec![
            Eng, Deu, Fra, Spa, Ita, Por, Nld, Swe, Dan, Nob, Fin, Pol, Ces, Slk, Hun, Ron, Tur,
            Rus, Ukr, Ell, Ara, Heb, Hin, Cmn, Jpn, Kor,
        ])
    });
    let end = text
        .char_indices()
        .nth(LANGUAGE_WINDOW_CHARS)
        .map_or(text.len(), |(i, _)| i);
    let info = DETECTOR.detect(&text[..end])?;
    info.is_reliable().then(|| info.lang().code().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_char_boundaries() {
        let mut s = "äöü".to_string();
        assert!(truncate_chars(&mut s, 2));
        assert_eq!(s, "äö");
        assert!(!truncate_chars(&mut s, 5));
    }

    #[test]
    fn parse_rejects_unknown_types_and_broken_pdfs() {
        let l = ParseLimits::default();
        assert_eq!(
            parse("image/gif", b"x", &l).unwrap_err().code,
            "unsupported"
        );
        let e = parse(detect::PDF, b"%PDF-1.4\n garbage", &l).unwrap_err();
        assert_eq!(e.code, "malformed");
        assert!(!e.is_retryable());
    }
}
