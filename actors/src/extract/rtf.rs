//! RTF: the visible text of a Rich Text document. Runs inside a parser
//! process. Control words are dropped except those that stand for text
//! (`\par`, `\line`, `\tab`, `\cell`, `\row`, `\'hh`, `\uN`); destinations that
//! hold no body text (font and colour tables, styles, pictures, document
//! info, `\*` ones) are skipped, but the info group's `\title` is kept.

use super::ParseError;
use crate::errors::Code;
use crate::model::Extracted;

/// Groups whose text is not body text.
const SKIP: &[&str] = &[
    "fonttbl",
    "colortbl",
    "stylesheet",
    "info",
    "pict",
    "object",
    "header",
    "footer",
    "headerl",
    "headerr",
    "footerl",
    "footerr",
    "themedata",
    "colorschememapping",
    "datastore",
    "latentstyles",
    "listtable",
    "listoverridetable",
    "rsidtbl",
    "generator",
    "xmlnstbl",
    "mmathPr",
    "fldinst",
    "filetbl",
    "revtbl",
    "pgdsctbl",
];

/// Real documents nest a few dozen groups deep; a hostile one could nest
/// millions.
const MAX_DEPTH: usize = 1000;

pub fn extract(bytes: &[u8]) -> Result<Extracted, ParseError> {
    if !bytes.starts_with(b"{\\rtf") {
        return Err(ParseError::new(Code::Malformed, "not an RTF document"));
    }
    let mut out = String::new();
    let mut title = String::new();
    // Per group: (skipping, in title, bytes to skip after \uN).
    let mut stack: Vec<(bool, bool, usize)> = vec![(false, false, 1)];
    let mut skip_after_u = 0usize;
    let mut closed = false;
    let mut i = 0usize;
    let n = bytes.len();
    while i < n {
        let (skipping, in_title, uc) = *stack.last().unwrap_or(&(false, false, 1));
        let emit = |s: &str, out: &mut String, title: &mut String| {
            if in_title {
                title.push_str(s);
            } else if !skipping {
                out.push_str(s);
            }
        };
        match bytes[i] {
            b'{' => {
                if stack.len() > MAX_DEPTH {
                    return Err(ParseError::new(
                        Code::Malformed,
                        format!("groups nested more than {MAX_DEPTH} deep"),
                    ));
                }
                stack.push((skipping, false, uc));
                i += 1;
            }
            b'}' => {
                stack.pop();
                if stack.len() <= 1 {
                    closed = true; // the document's last brace
                    break;
                }
                i += 1;
            }
            b'\\' if i + 1 < n => {
                let c = bytes[i + 1];
                if c == b'\'' && i + 3 < n {
                    let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).unwrap_or("");
                    if let Ok(b) = u8::from_str_radix(hex, 16) {
                        if skip_after_u > 0 {
                            skip_after_u -= 1;
                        } else {
                            // Windows-1252, the usual code page.
                            let one = [b];
                            let (s, _, _) = encoding_rs::WINDOWS_1252.decode(&one);
                            emit(&s, &mut out, &mut title);
                        }
                    }
                    i += 4;
                } else if c == b'*' {
                    // An optional destination this reader does not know.
                    if let Some(top) = stack.last_mut() {
                        top.0 = true;
                    }
                    i += 2;
                } else if c.is_ascii_alphabetic() {
                    let start = i + 1;
                    let mut j = start;
                    while j < n && bytes[j].is_ascii_alphabetic() {
                        j += 1;
                    }
                    let word = std::str::from_utf8(&bytes[start..j]).unwrap_or("");
                    let num_start = j;
                    if j < n && (bytes[j] == b'-' || bytes[j].is_ascii_digit()) {
                        j += 1;
                        while j < n && bytes[j].is_ascii_digit() {
                            j += 1;
                        }
                    }
                    let param: Option<i32> = std::str::from_utf8(&bytes[num_start..j])
                        .ok()
                        .and_then(|p| p.parse().ok());
                    if j < n && bytes[j] == b' ' {
                        j += 1; // the delimiter belongs to the control word
                    }
                    i = j;
                    match word {
                        "par" | "line" | "row" | "sect" | "page" => {
                            emit("\n", &mut out, &mut title)
                        }
                        "tab" | "cell" => emit("\t", &mut out, &mut title),
                        "emdash" => emit("—", &mut out, &mut title),
                        "endash" => emit("–", &mut out, &mut title),
                        "lquote" => emit("‘", &mut out, &mut title),
                        "rquote" => emit("’", &mut out, &mut title),
                        "ldblquote" => emit("“", &mut out, &mut title),
                        "rdblquote" => emit("”", &mut out, &mut title),
                        "bullet" => emit("•", &mut out, &mut title),
                        "uc" => {
                            if let Some(top) = stack.last_mut() {
                                top.2 = param.unwrap_or(1).max(0) as usize;
                            }
                        }
                        "u" => {
                            if let Some(v) = param {
                                let code = if v < 0 { v + 65_536 } else { v } as u32;
                                if let Some(ch) = char::from_u32(code) {
                                    emit(&ch.to_string(), &mut out, &mut title);
                                }
                                skip_after_u = uc;
                            }
                        }
                        "title" => {
                            if let Some(top) = stack.last_mut() {
                                top.1 = true;
                            }
                        }
                        w if SKIP.contains(&w) => {
                            if let Some(top) = stack.last_mut() {
                                // The info group is skipped, but its \title is read.
                                top.0 = true;
                            }
                        }
                        _ => {}
                    }
                } else {
                    // Escaped characters: \\ \{ \} and a few symbols.
                    match c {
                        b'\\' | b'{' | b'}' => emit(&(c as char).to_string(), &mut out, &mut title),
                        b'~' => emit("\u{a0}", &mut out, &mut title),
                        b'\n' | b'\r' => emit("\n", &mut out, &mut title),
                        _ => {}
                    }
                    i += 2;
                }
            }
            b'\r' | b'\n' => i += 1,
            _ => {
                // Plain text up to the next special byte.
                let start = i;
                while i < n && !matches!(bytes[i], b'\\' | b'{' | b'}' | b'\r' | b'\n') {
                    i += 1;
                }
                let mut chunk = &bytes[start..i];
                while skip_after_u > 0 && !chunk.is_empty() {
                    chunk = &chunk[1..];
                    skip_after_u -= 1;
                }
                let (s, _, _) = encoding_rs::WINDOWS_1252.decode(chunk);
                emit(&s, &mut out, &mut title);
            }
        }
    }
    if !closed {
        return Err(ParseError::new(
            Code::Malformed,
            "the RTF document ends before its last group closes (truncated?)",
        ));
    }
    let text: Vec<&str> = out.lines().map(str::trim_end).collect();
    let title = title.trim().to_string();
    Ok(Extracted {
        text: text.join("\n").trim().to_string(),
        title: (!title.is_empty()).then_some(title),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escapes_unicode_and_skipped_groups() {
        let rtf = br"{\rtf1\ansi\deff0{\fonttbl{\f0 Times;}}{\colortbl;\red0\green0\blue0;}
{\info{\title Quarterly memo}{\author Someone}}
{\*\generator Word;}\pard Caf\'e9 prices rose\par
Second line\tab with tab \u8364? euro\par
\{braces\} and \\ backslash}";
        let out = extract(rtf).unwrap();
        assert_eq!(out.title.as_deref(), Some("Quarterly memo"));
        assert_eq!(
            out.text,
            "Café prices rose\nSecond line\twith tab € euro\n{braces} and \\ backslash"
        );
        assert!(!out.text.contains("Times") && !out.text.contains("Someone"));
        assert_eq!(extract(b"plain").unwrap_err().code, "malformed");
        assert_eq!(
            extract(br"{\rtf1 half a docu").unwrap_err().code,
            "malformed"
        );
        let deep = [&br"{\rtf1"[..], &b"{".repeat(5000), &b"}".repeat(5001)].concat();
        assert_eq!(extract(&deep).unwrap_err().code, "malformed");
    }
}
