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

/// The ISO 639-3 code of the text's language, when it can be told. It runs
/// on every document, so it is kept cheap. When the first 500 characters
/// hold no letter but ASCII and the accents of English, French, Spanish,
/// Italian, Portuguese and Dutch:
///
/// 1. the window is told by its function words ("the", "und", "les", "los",
///    "della", "dos", "het"…): prose holds many, and a clear majority of one
///    language's decides ([`by_function_words`]; ~2 µs);
/// 2. else whatlang weighs the window against those six languages and
///    German. The other languages are not weighed: each writes letters the
///    window does not have (å, ø, ł, ş, ő…).
///
/// Any other window is weighed by whatlang against the 26 languages people
/// file documents in most, on 500 characters. whatlang's cost grows with the
/// number of languages it weighs, hardly with the text: on 2 KB of English,
/// 26 languages cost ~42 µs whatever the window, 7 ~19 µs on 240 characters
/// (measured here).
pub fn detect_language(text: &str) -> Option<String> {
    let long = window(text, LANGUAGE_WINDOW_CHARS);
    if !only_common_letters(long) {
        return reliable(ALL.detect(long));
    }
    if let Some(lang) = by_function_words(long) {
        return Some(lang.to_string());
    }
    reliable(COMMON.detect(long))
}

/// How languages were told before the function words (whatlang alone), for
/// the load benchmark's comparison: the seven common languages on 240
/// characters when those hold only their letters, else or when that is not
/// reliable, the 26 on 500.
pub fn detect_language_by_trigrams(text: &str) -> Option<String> {
    let common = window(text, COMMON_WINDOW_CHARS);
    if only_common_letters(common) {
        if let Some(lang) = reliable(COMMON.detect(common)) {
            return Some(lang);
        }
    }
    reliable(ALL.detect(window(text, LANGUAGE_WINDOW_CHARS)))
}

fn reliable(info: Option<whatlang::Info>) -> Option<String> {
    info.filter(|i| i.is_reliable())
        .map(|i| i.lang().code().to_string())
}

static COMMON: std::sync::LazyLock<whatlang::Detector> = std::sync::LazyLock::new(|| {
    use whatlang::Lang::*;
    whatlang::Detector::with_allowlist(vec![Eng, Fra, Spa, Ita, Por, Nld, Deu])
});

static ALL: std::sync::LazyLock<whatlang::Detector> = std::sync::LazyLock::new(|| {
    use whatlang::Lang::*;
    whatlang::Detector::with_allowlist(vec![
        Eng, Deu, Fra, Spa, Ita, Por, Nld, Swe, Dan, Nob, Fin, Pol, Ces, Slk, Hun, Ron, Tur, Rus,
        Ukr, Ell, Ara, Heb, Hin, Cmn, Jpn, Kor,
    ])
});

/// True if every letter of the window is ASCII or one of [`COMMON_LETTERS`].
fn only_common_letters(window: &str) -> bool {
    window.chars().all(|c| {
        c.is_ascii()
            || !c.is_alphabetic()
            || COMMON_LETTERS.contains(c.to_lowercase().next().unwrap_or(c))
    })
}

fn window(text: &str, chars: usize) -> &str {
    let end = text
        .char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| i);
    &text[..end]
}

/// The most frequent function words of the seven common languages: short,
/// written in every kind of prose, and most of them in one language only.
const FUNCTION_WORDS: [(&str, &[&str]); 7] = [
    (
        "eng",
        &[
            "the", "and", "of", "to", "is", "in", "that", "for", "with", "are", "this", "be", "on",
            "it", "as", "by", "from", "was", "not", "or", "which", "have", "an", "at", "you",
            "will", "can", "has", "were", "their",
        ],
    ),
    (
        "deu",
        &[
            "der", "die", "das", "und", "ist", "nicht", "mit", "von", "den", "zu", "ein", "eine",
            "auf", "sich", "des", "dem", "im", "auch", "es", "wird", "werden", "sind", "oder",
            "bei", "nach", "wie", "aus",
        ],
    ),
    (
        "fra",
        &[
            "le", "la", "les", "de", "en", "et", "des", "est", "une", "du", "pour", "dans", "que",
            "qui", "pas", "sur", "au", "avec", "ce", "il", "un", "sont", "par", "aux", "ou",
            "mais", "nous", "vous", "cette",
        ],
    ),
    (
        "spa",
        &[
            "el", "los", "las", "y", "del", "que", "en", "de", "la", "por", "una", "con", "para",
            "es", "se", "lo", "como", "al", "su", "sus", "pero", "este", "esta", "son", "han",
            "fue",
        ],
    ),
    (
        "ita",
        &[
            "il", "di", "che", "e", "la", "per", "una", "non", "sono", "con", "gli", "della",
            "del", "le", "nel", "un", "da", "si", "anche", "questo", "alla", "dei", "delle",
            "come",
        ],
    ),
    (
        "por",
        &[
            "o", "os", "as", "de", "e", "a", "que", "do", "da", "em", "um", "uma", "para", "com",
            "dos", "das", "no", "na", "se", "por", "mais", "ao", "pelo", "pela", "foi", "seu",
            "sua",
        ],
    ),
    (
        "nld",
        &[
            "de", "het", "een", "en", "van", "is", "dat", "niet", "op", "te", "zijn", "met",
            "voor", "die", "er", "aan", "ook", "als", "bij", "door", "worden", "wordt", "naar",
            "nog", "maar",
        ],
    ),
];

/// A word that is a function word of several languages counts for each of
/// them, divided among them (in sixtieths: 1 to 5 languages share a word).
const SHARE: u32 = 60;
/// How much of its function words a window must hold of its language (four
/// words of that language alone), and how many times more than of any
/// other language, to be told by them. Measured on the corpus's 531 text
/// files (English technical prose under reST markup): whatlang's answer
/// for all but 15, which are English pages whatlang alone calls French (13)
/// or tells where the words cannot (2).
const FUNCTION_WORDS_MIN: u32 = 4 * SHARE;
const FUNCTION_WORDS_MARGIN: u32 = 2;

/// The language whose function words make a clear majority of the window's,
/// if one does (each word weighed by how many languages share it).
pub fn by_function_words(window: &str) -> Option<&'static str> {
    use std::collections::HashMap;
    use std::sync::LazyLock;
    // Each word with the languages (bits) it is a function word of.
    static WORDS: LazyLock<HashMap<&'static str, u8>> = LazyLock::new(|| {
        let mut m = HashMap::new();
        for (i, (_, words)) in FUNCTION_WORDS.iter().enumerate() {
            for w in *words {
                *m.entry(*w).or_insert(0u8) |= 1 << i;
            }
        }
        m
    });
    let mut hits = [0u32; FUNCTION_WORDS.len()];
    let mut buf = [0u8; 8];
    for w in window.split(|c: char| !c.is_ascii_alphabetic()) {
        if w.is_empty() || w.len() > buf.len() {
            continue;
        }
        let lower = &mut buf[..w.len()];
        lower.copy_from_slice(w.as_bytes());
        lower.make_ascii_lowercase();
        // (ASCII letters only, so the bytes are a str.)
        let Some(&langs) = std::str::from_utf8(lower).ok().and_then(|w| WORDS.get(w)) else {
            continue;
        };
        let share = SHARE / langs.count_ones();
        for (i, h) in hits.iter_mut().enumerate() {
            *h += share * u32::from(langs >> i & 1);
        }
    }
    let (best, &top) = hits.iter().enumerate().max_by_key(|(_, h)| **h)?;
    let second = hits
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != best)
        .map(|(_, h)| *h)
        .max()
        .unwrap_or(0);
    (top >= FUNCTION_WORDS_MIN && top >= FUNCTION_WORDS_MARGIN * second)
        .then_some(FUNCTION_WORDS[best].0)
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

    #[test]
    fn function_words_tell_prose_and_leave_the_rest_to_the_trigrams() {
        let es = "El comité se reunió el martes para hablar del presupuesto anual y de los planes para la nueva biblioteca, que la ciudad quiere desde hace muchos años. Los vecinos esperan que el proyecto se apruebe este año y que las obras empiecen con el verano.";
        let pt = "O comitê reuniu-se na terça-feira para discutir o orçamento anual e os planos para a nova biblioteca, que a cidade deseja há muitos anos, e com a qual os moradores sonham.";
        let nl = "Het comité kwam dinsdag bijeen om de jaarlijkse begroting en de plannen voor de nieuwe bibliotheek te bespreken, die de stad al jaren wil en waar de inwoners van dromen.";
        assert_eq!(by_function_words(es), Some("spa"));
        assert_eq!(by_function_words(pt), Some("por"));
        assert_eq!(by_function_words(nl), Some("nld"));
        let it = "Il comitato si è riunito martedì per discutere il bilancio annuale e i piani per la nuova biblioteca, che la città desidera da molti anni e che gli abitanti sognano.";
        let fr = "Le comité s'est réuni mardi pour discuter du budget annuel et des plans de la nouvelle bibliothèque, que la ville souhaite depuis de nombreuses années.";
        assert_eq!(by_function_words(it), Some("ita"));
        assert_eq!(by_function_words(fr), Some("fra"));
        // Markup around English prose (whatlang alone calls this French).
        let rst = ":mod:`smtplib` --- SMTP protocol client\n=====\n\n.. module:: smtplib\n   :synopsis: SMTP protocol client (requires sockets).\n\nThe module defines an SMTP client session object that can be used to send mail to any internet machine with an SMTP or ESMTP listener daemon. For details of the operation, see the RFC.";
        assert_eq!(detect_language(rst).as_deref(), Some("eng"));
        // Too few function words: no answer from them (the trigrams decide).
        assert_eq!(
            by_function_words("ledger harbour meadow copper lantern orchard of the"),
            None
        );
        assert_eq!(by_function_words("invoice 2024-001 total 100.00 EUR"), None);
    }
}
