//! PDF text layers (pdf-extract over lopdf). Runs only inside a parser process:
//! these parsers can panic, overflow their stack or run away on hostile files.
//!
//! The text comes page by page, pages separated by a form feed (as
//! `pdftotext` does). Pages without a text layer (scans, text drawn as
//! curves) are listed in [`Extracted::ocr_pages`] for the OCR step; the
//! document info (title, author, dates…) becomes fields.

use pdf_extract::{MediaBox, Object, OutputDev, OutputError, Transform};
use serde_json::{json, Map, Value};

use crate::errors::Code;
use crate::extract::layout::Glyph;
use crate::extract::{ParseError, ParseLimits};
use crate::model::Extracted;
pub use crate::model::PAGE_BREAK;

pub fn extract(bytes: &[u8], limits: &ParseLimits) -> Result<Extracted, ParseError> {
    let mut doc = pdf_extract::Document::load_mem(bytes)
        .map_err(|e| ParseError::new(Code::Malformed, format!("not a readable PDF: {e}")))?;
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err(ParseError::new(
            Code::Encrypted,
            "the PDF is encrypted and needs a password",
        ));
    }
    // Counted lazily, so a page tree of millions stops at the limit.
    let counted = doc.page_iter().take(limits.max_pages + 1).count();
    if counted > limits.max_pages {
        return Err(ParseError::new(
            Code::TooLarge,
            format!(
                "the PDF has more than {} pages (pipeline.extract.max_pages)",
                limits.max_pages
            ),
        ));
    }
    let (title, mut fields) = info(&doc);
    if let Some(invoice) = crate::extract::einvoice::from_pdf(&doc) {
        fields.insert("einvoice".into(), invoice);
    }
    let mut out = PageText {
        layout: (counted <= LAYOUT_PAGES).then(Vec::new),
        ..Default::default()
    };
    pdf_extract::output_doc(&doc, &mut out).map_err(|e| {
        ParseError::new(Code::Malformed, format!("cannot read the PDF's text: {e}"))
    })?;
    let layout = out
        .layout
        .filter(|pages| pages.iter().any(|p| p.chars().any(char::is_alphanumeric)))
        .map(|pages| pages.join(&PAGE_BREAK.to_string()));
    Ok(Extracted {
        title,
        fields: (!fields.is_empty()).then_some(Value::Object(fields)),
        layout,
        ..from_pages(out.pages)
    })
}

/// Documents of at most this many pages also get their text laid out as
/// on the page, for the field rules (invoices, receipts, letters: short).
pub const LAYOUT_PAGES: usize = 8;

/// The text of a PDF from its pages' texts, whichever reader produced them:
/// pages joined by form feeds (no text at all when every page is empty), the
/// page count, and the pages without text listed for OCR.
pub fn from_pages(pages: Vec<String>) -> Extracted {
    let ocr_pages = pages
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.chars().any(char::is_alphanumeric))
        .map(|(i, _)| i as u32 + 1)
        .collect();
    let count = pages.len() as u32;
    let mut text = pages.join(&PAGE_BREAK.to_string());
    if text.chars().all(|c| c == PAGE_BREAK) {
        text.clear();
    }
    Extracted {
        text,
        pages: Some(count),
        ocr_pages,
        ..Default::default()
    }
}

/// Collects each page's characters as lines and words: a line break where
/// the baseline moves down by most of a line, a space where the gap to the
/// previous glyph is wider than a sliver of the font size.
#[derive(Default)]
struct PageText {
    pages: Vec<String>,
    page: String,
    height: f64,
    /// Where the previous glyph ended, and its baseline.
    last: Option<(f64, f64)>,
    new_word: bool,
    /// Each page laid out as on the page, when the document is short.
    layout: Option<Vec<String>>,
    /// The page's upright glyphs, for its layout.
    glyphs: Vec<Glyph>,
}

impl OutputDev for PageText {
    fn begin_page(
        &mut self,
        _page_num: u32,
        media_box: &MediaBox,
        _art_box: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), OutputError> {
        self.height = media_box.ury - media_box.lly;
        self.page.clear();
        self.glyphs.clear();
        self.last = None;
        Ok(())
    }

    fn end_page(&mut self) -> Result<(), OutputError> {
        let page: String = self
            .page
            .trim()
            .chars()
            .map(|c| if c == PAGE_BREAK { ' ' } else { c })
            .collect();
        self.pages.push(page);
        if let Some(layout) = &mut self.layout {
            layout.push(crate::extract::layout::render(&self.glyphs));
        }
        Ok(())
    }

    fn output_character(
        &mut self,
        trm: &Transform,
        width: f64,
        _spacing: f64,
        font_size: f64,
        ch: &str,
    ) -> Result<(), OutputError> {
        // The glyph's origin (y downwards) and its size on the page.
        let (x, y) = (trm.m31, self.height - trm.m32);
        let sx = font_size * (trm.m11 + trm.m21);
        let sy = font_size * (trm.m12 + trm.m22);
        let size = (sx * sy).abs().sqrt().max(0.01);
        if let Some((end, base)) = self.last {
            let dy = (y - base).abs();
            if dy > size * 0.8 || (x < end - size && dy > size * 0.3) {
                self.page.push('\n');
            } else if self.new_word && x > end + size * 0.1 && !self.page.ends_with(' ') {
                self.page.push(' ');
            }
        }
        self.page.push_str(ch);
        // Upright text only: a rotated line has no place in the grid.
        if self.layout.is_some() && trm.m12.abs() <= trm.m11.abs() * 0.1 && trm.m11 > 0.0 {
            self.glyphs.push(Glyph {
                x,
                y,
                advance: width * size,
                size,
                text: ch.to_string(),
                new_word: self.new_word,
            });
        }
        self.new_word = false;
        self.last = Some((x + width * size, y));
        Ok(())
    }

    fn begin_word(&mut self) -> Result<(), OutputError> {
        self.new_word = true;
        Ok(())
    }

    fn end_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn end_line(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

/// The title and the other entries of the document info dictionary.
fn info(doc: &pdf_extract::Document) -> (Option<String>, Map<String, Value>) {
    let mut fields = Map::new();
    let Some(dict) = doc.trailer.get(b"Info").ok().and_then(|info| match info {
        Object::Reference(id) => doc.get_dictionary(*id).ok(),
        Object::Dictionary(d) => Some(d),
        _ => None,
    }) else {
        return (None, fields);
    };
    let string = |key: &[u8]| -> Option<String> {
        let obj = match dict.get(key).ok()? {
            Object::Reference(id) => doc.get_object(*id).ok()?,
            o => o,
        };
        match obj {
            Object::String(bytes, _) => {
                let s = decode_pdf_string(bytes);
                let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
                (!s.is_empty()).then(|| s.to_string())
            }
            _ => None,
        }
    };
    for (key, name) in [
        (&b"Author"[..], "author"),
        (b"Subject", "subject"),
        (b"Keywords", "keywords"),
        (b"Creator", "creator"),
        (b"Producer", "producer"),
    ] {
        if let Some(v) = string(key) {
            fields.insert(name.into(), json!(v));
        }
    }
    for (key, name) in [(&b"CreationDate"[..], "created"), (b"ModDate", "modified")] {
        if let Some(date) = string(key).as_deref().and_then(pdf_date) {
            fields.insert(name.into(), json!(date));
        }
    }
    (string(b"Title"), fields)
}

/// A PDF date (`D:YYYYMMDDHHmmSSOHH'mm'`, any tail missing) as ISO 8601:
/// `YYYY-MM-DD`, with the time and offset when they are given.
fn pdf_date(s: &str) -> Option<String> {
    let s = s.strip_prefix("D:").unwrap_or(s);
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    if digits.len() < 4 {
        return None;
    }
    let part = |from: usize, len: usize, default: u32| -> u32 {
        digits
            .get(from..from + len)
            .and_then(|p| p.parse().ok())
            .unwrap_or(default)
    };
    let (y, mo, d) = (part(0, 4, 0), part(4, 2, 1), part(6, 2, 1));
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let date = format!("{y:04}-{mo:02}-{d:02}");
    if digits.len() < 12 {
        return Some(date);
    }
    let (h, mi, sec) = (part(8, 2, 0), part(10, 2, 0), part(12, 2, 0));
    if h > 23 || mi > 59 || sec > 59 {
        return Some(date);
    }
    let rest = &s[digits.len()..];
    let offset = match rest.chars().next() {
        Some('Z') => "Z".to_string(),
        Some(sign @ ('+' | '-')) => {
            let tz: String = rest[1..].chars().filter(char::is_ascii_digit).collect();
            match (tz.get(0..2), tz.get(2..4)) {
                (Some(oh), Some(om)) => format!("{sign}{oh}:{om}"),
                (Some(oh), None) => format!("{sign}{oh}:00"),
                _ => String::new(),
            }
        }
        _ => String::new(),
    };
    Some(format!("{date}T{h:02}:{mi:02}:{sec:02}{offset}"))
}

/// PDF text strings are UTF-16BE with a BOM, or PDFDocEncoding (close to Latin-1).
fn decode_pdf_string(bytes: &[u8]) -> String {
    if bytes.starts_with(&[0xFE, 0xFF]) {
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        bytes.iter().map(|&b| b as char).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdf_dates_become_iso() {
        assert_eq!(
            pdf_date("D:20140803101500+02'00'").as_deref(),
            Some("2014-08-03T10:15:00+02:00")
        );
        assert_eq!(
            pdf_date("D:20140803101500Z").as_deref(),
            Some("2014-08-03T10:15:00Z")
        );
        assert_eq!(pdf_date("D:201408").as_deref(), Some("2014-08-01"));
        assert_eq!(pdf_date("2014").as_deref(), Some("2014-01-01"));
        assert_eq!(pdf_date("D:2014139"), None);
        assert_eq!(pdf_date("yesterday"), None);
    }
}
