//! PDF text layers (pdf-extract over lopdf). Runs only inside a parser process:
//! these parsers can panic, overflow their stack or run away on hostile files.

use crate::extract::ParseError;
use crate::model::Extracted;

pub fn extract(bytes: &[u8]) -> Result<Extracted, ParseError> {
    let mut doc = pdf_extract::Document::load_mem(bytes)
        .map_err(|e| ParseError::new("malformed", format!("not a readable PDF: {e}")))?;
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err(ParseError::new(
            "encrypted",
            "the PDF is encrypted and needs a password",
        ));
    }
    let pages = doc.get_pages().len() as u32;
    let title = info_title(&doc);
    let mut text = String::new();
    {
        let mut out = pdf_extract::PlainTextOutput::new(&mut text);
        pdf_extract::output_doc(&doc, &mut out).map_err(|e| {
            ParseError::new("malformed", format!("cannot read the PDF's text: {e}"))
        })?;
    }
    Ok(Extracted {
        text,
        title,
        pages: Some(pages),
        ..Default::default()
    })
}

fn info_title(doc: &pdf_extract::Document) -> Option<String> {
    let info = doc.trailer.get(b"Info").ok()?;
    let dict = match info {
        pdf_extract::Object::Reference(id) => doc.get_dictionary(*id).ok()?,
        pdf_extract::Object::Dictionary(d) => d,
        _ => return None,
    };
    let title = dict.get(b"Title").ok()?;
    let s = match title {
        pdf_extract::Object::String(bytes, _) => decode_pdf_string(bytes),
        _ => return None,
    };
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
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
