//! Office documents: DOCX, PPTX, ODT, ODP (zip + XML), and spreadsheets
//! (XLSX, XLS, ODS, through calamine: one line per row, each sheet under its
//! name). Runs only inside a parser process. Containers are checked against
//! the zip limits before anything is inflated, and every entry is read
//! through a cap, since a zip's declared sizes may lie.

use std::io::{Cursor, Read};

use quick_xml::events::Event;
use quick_xml::Reader;

use super::{detect, ParseError, ParseLimits};
use crate::errors::Code;
use crate::model::Extracted;

type Zip<'a> = zip::ZipArchive<Cursor<&'a [u8]>>;

pub fn extract(mime: &str, bytes: &[u8], limits: &ParseLimits) -> Result<Extracted, ParseError> {
    if mime == detect::ZIP {
        // The upload's first bytes did not tell: look at the whole directory.
        let mut zip = open_zip(bytes, limits)?;
        let kind = container_kind(&mut zip).ok_or_else(|| {
            ParseError::new(
                Code::Unsupported,
                "a zip archive that is not an office document; docpipe does not unpack archives",
            )
        })?;
        let mut out = extract(kind, bytes, limits)?;
        out.mime = Some(kind.to_string());
        return Ok(out);
    }
    match mime {
        detect::XLSX | detect::XLS | detect::ODS => return spreadsheet(mime, bytes, limits),
        _ => {}
    }
    let mut zip = open_zip(bytes, limits)?;
    let mut budget = limits.max_zip_bytes;
    match mime {
        detect::DOCX => {
            let mut text = String::new();
            let mut parts = vec!["word/document.xml".to_string()];
            parts.extend(sorted_entries(&zip, "word/header", ".xml"));
            parts.extend(sorted_entries(&zip, "word/footer", ".xml"));
            for extra in [
                "word/footnotes.xml",
                "word/endnotes.xml",
                "word/comments.xml",
            ] {
                if zip.index_for_name(extra).is_some() {
                    parts.push(extra.to_string());
                }
            }
            for (i, part) in parts.iter().enumerate() {
                let xml = read_entry(&mut zip, part, &mut budget, i == 0)?;
                push_block(&mut text, &xml_text(&xml, &OOXML_WORD)?);
            }
            let (title, fields) = core_properties(&mut zip, "docProps/core.xml", &mut budget);
            Ok(Extracted {
                text,
                title,
                fields,
                ..Default::default()
            })
        }
        detect::PPTX => {
            let mut slides = sorted_entries(&zip, "ppt/slides/slide", ".xml");
            let pages = slides.len() as u32;
            if slides.is_empty() {
                // A template, or a deck without slides yet: its masters and
                // layouts hold what text there is.
                slides = sorted_entries(&zip, "ppt/slideMasters/slideMaster", ".xml");
                slides.extend(sorted_entries(&zip, "ppt/slideLayouts/slideLayout", ".xml"));
            }
            if slides.is_empty() && zip.index_for_name("ppt/presentation.xml").is_none() {
                return Err(ParseError::new(
                    Code::Malformed,
                    "the container holds no presentation",
                ));
            }
            let mut text = String::new();
            for slide in &slides {
                let xml = read_entry(&mut zip, slide, &mut budget, true)?;
                push_block(&mut text, &xml_text(&xml, &OOXML_DRAWING)?);
                // Speaker notes: ppt/notesSlides/notesSlideN.xml for slideN.
                let notes = slide.replace("slides/slide", "notesSlides/notesSlide");
                if zip.index_for_name(&notes).is_some() {
                    let xml = read_entry(&mut zip, &notes, &mut budget, false)?;
                    push_block(&mut text, &xml_text(&xml, &OOXML_DRAWING)?);
                }
            }
            let (title, fields) = core_properties(&mut zip, "docProps/core.xml", &mut budget);
            Ok(Extracted {
                text,
                title,
                fields,
                pages: Some(pages),
                ..Default::default()
            })
        }
        detect::ODT | detect::ODP => {
            let xml = read_entry(&mut zip, "content.xml", &mut budget, true)?;
            let text = xml_text(&xml, &ODF)?;
            let pages = (mime == detect::ODP).then(|| count_elements(&xml, "page"));
            let (title, fields) = core_properties(&mut zip, "meta.xml", &mut budget);
            Ok(Extracted {
                text,
                title,
                fields,
                pages,
                ..Default::default()
            })
        }
        other => Err(ParseError::new(
            Code::Unsupported,
            format!("docpipe cannot read {other}"),
        )),
    }
}

/// The office format of a zip, from its directory (and ODF's `mimetype`).
fn container_kind(zip: &mut Zip<'_>) -> Option<&'static str> {
    let has = |n: &str| zip.index_for_name(n).is_some();
    if has("word/document.xml") {
        return Some(detect::DOCX);
    }
    if has("ppt/presentation.xml") {
        return Some(detect::PPTX);
    }
    if has("xl/workbook.xml") {
        return Some(detect::XLSX);
    }
    if has("mimetype") {
        let mut m = String::new();
        zip.by_name("mimetype")
            .ok()?
            .take(100)
            .read_to_string(&mut m)
            .ok()?;
        return [detect::ODT, detect::ODS, detect::ODP]
            .into_iter()
            .find(|k| *k == m.trim());
    }
    None
}

/// Opens a zip after checking its directory against the limits.
fn open_zip<'a>(bytes: &'a [u8], limits: &ParseLimits) -> Result<Zip<'a>, ParseError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
        ParseError::new(
            Code::Malformed,
            format!("not a readable zip container: {e}"),
        )
    })?;
    if zip.len() > limits.max_zip_entries {
        return Err(ParseError::new(
            Code::TooLarge,
            format!(
                "the container has {} entries, more than the limit of {} (pipeline.extract.max_zip_entries)",
                zip.len(),
                limits.max_zip_entries
            ),
        ));
    }
    let mut declared: u64 = 0;
    for i in 0..zip.len() {
        let f = zip
            .by_index_raw(i)
            .map_err(|e| ParseError::new(Code::Malformed, format!("broken zip entry: {e}")))?;
        declared = declared.saturating_add(f.size());
    }
    if declared > limits.max_zip_bytes {
        return Err(zip_too_large(limits));
    }
    Ok(zip)
}

fn zip_too_large(limits: &ParseLimits) -> ParseError {
    ParseError::new(
        Code::TooLarge,
        format!(
            "the container unpacks to more than {} MiB (pipeline.extract.max_zip_mb): a zip bomb, or too big to read",
            limits.max_zip_bytes / (1024 * 1024)
        ),
    )
}

/// Reads one entry as text, spending (and enforcing) the inflate budget.
fn read_entry(
    zip: &mut Zip<'_>,
    name: &str,
    budget: &mut u64,
    required: bool,
) -> Result<String, ParseError> {
    let file = match zip.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) if !required => return Ok(String::new()),
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(ParseError::new(
                Code::Malformed,
                format!("the container has no {name}"),
            ))
        }
        Err(e) => {
            return Err(ParseError::new(
                Code::Malformed,
                format!("cannot read {name}: {e}"),
            ))
        }
    };
    let mut out = Vec::new();
    file.take(*budget + 1)
        .read_to_end(&mut out)
        .map_err(|e| ParseError::new(Code::Malformed, format!("cannot inflate {name}: {e}")))?;
    if out.len() as u64 > *budget {
        return Err(ParseError::new(
            Code::TooLarge,
            format!(
                "{name} unpacks to more than the container limit (pipeline.extract.max_zip_mb)"
            ),
        ));
    }
    *budget -= out.len() as u64;
    String::from_utf8(out)
        .map_err(|_| ParseError::new(Code::Malformed, format!("{name} is not UTF-8 XML")))
}

/// Entry names `prefix<N>suffix`, in the order of N.
fn sorted_entries(zip: &Zip<'_>, prefix: &str, suffix: &str) -> Vec<String> {
    let mut found: Vec<(u32, String)> = zip
        .file_names()
        .filter_map(|n| n.ok())
        .filter_map(|n| {
            let num = n.strip_prefix(prefix)?.strip_suffix(suffix)?;
            Some((num.parse().ok()?, n.to_string()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, n)| n).collect()
}

fn push_block(text: &mut String, block: &str) {
    let block = block.trim();
    if block.is_empty() {
        return;
    }
    if !text.is_empty() {
        text.push_str("\n\n");
    }
    text.push_str(block);
}

/// The document properties of a core-properties part (OOXML
/// docProps/core.xml, ODF meta.xml): the title, and the author, subject,
/// keywords, description and dates as fields.
fn core_properties(
    zip: &mut Zip<'_>,
    part: &str,
    budget: &mut u64,
) -> (Option<String>, Option<serde_json::Value>) {
    let Ok(xml) = read_entry(zip, part, budget, false) else {
        return (None, None);
    };
    let mut reader = Reader::from_str(&xml);
    let mut props: std::collections::BTreeMap<&'static str, String> = Default::default();
    let mut current: Option<&'static str> = None;
    let mut value = String::new();
    let mut keywords = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                value.clear();
                current = match e.local_name().as_ref() {
                    "title" => Some("title"),
                    "creator" | "initial-creator" => Some("author"),
                    "subject" => Some("subject"),
                    "description" => Some("description"),
                    "keywords" | "keyword" => Some("keywords"),
                    "created" | "creation-date" => Some("created"),
                    "modified" | "date" => Some("modified"),
                    _ => None,
                };
            }
            Ok(Event::Text(t)) if current.is_some() => value.push_str(&t.xml10_content()),
            Ok(Event::GeneralRef(r)) if current.is_some() => value.push_str(&resolve_ref(&r)),
            Ok(Event::End(_)) => {
                let text = value.trim();
                match current.take() {
                    Some(_) if text.is_empty() => {}
                    Some("keywords") => keywords.push(text.to_string()),
                    // The first one wins (ODF's initial creator before its creator).
                    Some(key) => {
                        props.entry(key).or_insert_with(|| text.to_string());
                    }
                    None => {}
                }
                value.clear();
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    let title = props.remove("title").filter(|t| !t.trim().is_empty());
    let mut fields = serde_json::Map::new();
    for (k, v) in props {
        fields.insert(k.to_string(), serde_json::Value::String(v));
    }
    if !keywords.is_empty() {
        fields.insert(
            "keywords".into(),
            serde_json::Value::String(keywords.join(", ")),
        );
    }
    (
        title,
        (!fields.is_empty()).then_some(serde_json::Value::Object(fields)),
    )
}

fn count_elements(xml: &str, local: &str) -> u32 {
    let mut reader = Reader::from_str(xml);
    let mut n = 0;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) if e.local_name().as_ref() == local => n += 1,
            Ok(Event::Eof) | Err(_) => return n,
            _ => {}
        }
    }
}

/// How to read the text of one XML dialect.
struct TextRules {
    /// Text counts only inside these elements (None: everywhere).
    text_in: Option<&'static [&'static str]>,
    /// A line break after these elements.
    para_end: &'static [&'static str],
    /// A tab after these (table cells) and for these empty elements.
    cell_end: &'static [&'static str],
    tab: &'static [&'static str],
    /// A space for these empty elements (ODF's `text:s`).
    space: &'static [&'static str],
    /// A line break for these empty elements.
    line_break: &'static [&'static str],
}

const OOXML_WORD: TextRules = TextRules {
    text_in: Some(&["t"]),
    para_end: &["p", "tr"],
    cell_end: &["tc"],
    tab: &["tab"],
    space: &[],
    line_break: &["br", "cr"],
};

const OOXML_DRAWING: TextRules = TextRules {
    text_in: Some(&["t"]),
    para_end: &["p", "tr"],
    cell_end: &["tc"],
    tab: &["tab"],
    space: &[],
    line_break: &["br"],
};

const ODF: TextRules = TextRules {
    text_in: Some(&["p", "h", "span", "a", "list-item"]),
    para_end: &["p", "h", "table-row"],
    cell_end: &["table-cell"],
    tab: &["tab"],
    space: &["s"],
    line_break: &["line-break"],
};

/// The visible text of an XML part, with paragraphs on their own lines and
/// table cells separated by tabs.
fn xml_text(xml: &str, rules: &TextRules) -> Result<String, ParseError> {
    let mut reader = Reader::from_str(xml);
    let mut out = String::new();
    let mut depth_in_text = 0usize;
    // Inside a table cell, paragraphs run on with a space: one row per line.
    let mut depth_in_cell = 0usize;
    let is = |name: &str, set: &[&str]| set.contains(&name);
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| ParseError::new(Code::Malformed, format!("broken XML: {e}")))?;
        match ev {
            Event::Start(e) => {
                let name = e.local_name();
                if rules.text_in.is_some_and(|t| is(name.as_ref(), t)) {
                    depth_in_text += 1;
                }
                if is(name.as_ref(), rules.cell_end) {
                    depth_in_cell += 1;
                }
            }
            Event::End(e) => {
                let name = e.local_name();
                let name = name.as_ref();
                if rules.text_in.is_some_and(|t| is(name, t)) {
                    depth_in_text = depth_in_text.saturating_sub(1);
                }
                if is(name, rules.cell_end) {
                    depth_in_cell = depth_in_cell.saturating_sub(1);
                    trim_trailing_spaces(&mut out);
                    out.push('\t');
                } else if is(name, rules.para_end) && depth_in_cell > 0 {
                    out.push(' ');
                } else if is(name, rules.para_end) {
                    trim_trailing_tabs(&mut out);
                    out.push('\n');
                }
            }
            Event::Empty(e) => {
                let name = e.local_name();
                let name = name.as_ref();
                if is(name, rules.tab) {
                    out.push('\t');
                } else if is(name, rules.space) {
                    out.push(' ');
                } else if is(name, rules.line_break) || is(name, rules.para_end) {
                    out.push('\n');
                }
            }
            Event::Text(t) if rules.text_in.is_none() || depth_in_text > 0 => {
                out.push_str(&t.xml10_content());
            }
            Event::CData(t) if rules.text_in.is_none() || depth_in_text > 0 => {
                out.push_str(&t.xml10_content());
            }
            Event::GeneralRef(r) if rules.text_in.is_none() || depth_in_text > 0 => {
                out.push_str(&resolve_ref(&r));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(tidy(&out))
}

fn trim_trailing_spaces(s: &mut String) {
    while s.ends_with(' ') {
        s.pop();
    }
}

fn trim_trailing_tabs(s: &mut String) {
    while s.ends_with('\t') {
        s.pop();
    }
}

/// `&amp;` and friends, and character references.
pub(crate) fn resolve_ref(r: &quick_xml::events::BytesRef<'_>) -> String {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return c.to_string();
    }
    match &**r {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        _ => "",
    }
    .to_string()
}

/// At most one blank line in a row, no trailing spaces.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_string()
}

/// Every sheet under `## <name>`, one line per row, cells separated by tabs.
fn spreadsheet(mime: &str, bytes: &[u8], limits: &ParseLimits) -> Result<Extracted, ParseError> {
    // XLSX and ODS are zips: check them against the limits first.
    if bytes.starts_with(b"PK") {
        open_zip(bytes, limits)?;
    }
    use calamine::Reader as _;
    let cursor = || Cursor::new(bytes);
    let read = match mime {
        detect::XLSX => calamine::Xlsx::new(cursor())
            .map_err(|e| e.to_string())
            .and_then(|mut b| sheets(&mut b, limits)),
        detect::XLS => calamine::Xls::new(cursor())
            .map_err(|e| e.to_string())
            .and_then(|mut b| sheets(&mut b, limits)),
        _ => calamine::Ods::new(cursor())
            .map_err(|e| e.to_string())
            .and_then(|mut b| sheets(&mut b, limits)),
    };
    match read {
        Ok(out) => Ok(out),
        // calamine refuses some older OpenDocument files (KSpread's, say);
        // their content.xml still reads as rows of cells.
        Err(_) if mime == detect::ODS => {
            let mut zip = open_zip(bytes, limits)?;
            let mut budget = limits.max_zip_bytes;
            let xml = read_entry(&mut zip, "content.xml", &mut budget, true)?;
            let (title, fields) = core_properties(&mut zip, "meta.xml", &mut budget);
            Ok(Extracted {
                text: xml_text(&xml, &ODF)?,
                title,
                fields,
                pages: Some(count_elements(&xml, "table")),
                ..Default::default()
            })
        }
        Err(e) => Err(ParseError::new(
            Code::Malformed,
            format!("not a readable spreadsheet: {e}"),
        )),
    }
}

/// Every sheet under `## <name>`, one line per row, cells separated by tabs.
fn sheets<RS, R>(book: &mut R, limits: &ParseLimits) -> Result<Extracted, String>
where
    RS: Read + std::io::Seek,
    R: calamine::Reader<RS>,
    R::Error: std::fmt::Display,
{
    let names = book.sheet_names().to_vec();
    let mut text = String::new();
    let mut chars = 0usize;
    for name in &names {
        let range = book
            .worksheet_range(name)
            .map_err(|e| format!("cannot read sheet {name:?}: {e}"))?;
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!("## {name}\n"));
        for row in range.rows() {
            let cells: Vec<String> = row.iter().map(|c| c.to_string()).collect();
            let line = cells.join("\t");
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            text.push_str(line);
            text.push('\n');
            chars += line.len();
            if chars > limits.max_text_chars {
                // The caller cuts the text at the limit and says so.
                break;
            }
        }
    }
    Ok(Extracted {
        text: text.trim_end().to_string(),
        title: None,
        pages: Some(names.len() as u32),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests;
