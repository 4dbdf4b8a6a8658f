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
    /// The parser process's memory for this document, in MiB (its soft
    /// address-space limit; the hard one is `pipeline.extract.max_memory_mb`).
    #[serde(default)]
    pub memory_mb: u64,
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
            memory_mb: c.max_memory_mb,
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

/// How much of the text language detection reads: the common languages'
/// check reads the first [`COMMON_WINDOW_CHARS`], the full one the first
/// `LANGUAGE_WINDOW_CHARS`.
pub const LANGUAGE_WINDOW_CHARS: usize = 500;
pub const COMMON_WINDOW_CHARS: usize = 240;

/// Letters of the common languages' check: a window with any other letter
/// (ä, ø, ł, ş, Cyrillic…) may be of a language outside it.
const COMMON_LETTERS: &str = "àâçéèêëîïôûùÿœáíóúñãõòì";

/// The ISO 639-3 code of the text's language, when whatlang is confident.
/// It runs on every document, so it is kept cheap. whatlang's cost grows
/// with the number of languages it weighs, hardly with the text: on 2 KB
/// of English, 26 languages cost ~42 µs whatever the window, 7 ~19 µs on
/// 240 characters (measured here). So a window written only in ASCII and
/// the accents of English, French, Spanish, Italian, Portuguese and Dutch
/// is first weighed against those and German; only when that is not
/// reliable, or the window has other letters, against the 26 languages
/// people file documents in most, on 500 characters.
pub fn detect_language(text: &str) -> Option<String> {
    use std::sync::LazyLock;
    use whatlang::Lang::*;
    static COMMON: LazyLock<whatlang::Detector> = LazyLock::new(|| {
        whatlang::Detector::with_allowlist(vec![Eng, Fra, Spa, Ita, Por, Nld, Deu])
    });
    static ALL: LazyLock<whatlang::Detector> = LazyLock::new(|| {
        whatlang::Detector::with_allowlist(vec![
            Eng, Deu, Fra, Spa, Ita, Por, Nld, Swe, Dan, Nob, Fin, Pol, Ces, Slk, Hun, Ron, Tur,
            Rus, Ukr, Ell, Ara, Heb, Hin, Cmn, Jpn, Kor,
        ])
    });
    let window = |n: usize| {
        let end = text.char_indices().nth(n).map_or(text.len(), |(i, _)| i);
        &text[..end]
    };
    let common = window(COMMON_WINDOW_CHARS);
    if common
        .chars()
        .all(|c| c.is_ascii() || COMMON_LETTERS.contains(c.to_lowercase().next().unwrap_or(c)))
    {
        if let Some(info) = COMMON.detect(common).filter(|i| i.is_reliable()) {
            return Some(info.lang().code().to_string());
        }
    }
    let info = ALL.detect(window(LANGUAGE_WINDOW_CHARS))?;
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

    #[test]
    fn language_is_told_with_and_without_the_common_check() {
        let en = "The committee met on Tuesday to discuss the annual budget and the plans for the new library, which the town has wanted for many years.";
        let de = "Der Ausschuss traf sich am Dienstag, um über den Jahreshaushalt und die Pläne für die neue Bibliothek zu sprechen, die sich die Stadt seit Jahren wünscht.";
        let pl = "Komisja spotkała się we wtorek, aby omówić roczny budżet i plany nowej biblioteki, której miasto chciało od wielu lat.";
        let ru = "Комитет собрался во вторник, чтобы обсудить годовой бюджет и планы новой библиотеки, которую город хотел много лет.";
        assert_eq!(detect_language(en).as_deref(), Some("eng"));
        assert_eq!(detect_language(de).as_deref(), Some("deu"));
        assert_eq!(detect_language(pl).as_deref(), Some("pol"));
        assert_eq!(detect_language(ru).as_deref(), Some("rus"));
    }
}
