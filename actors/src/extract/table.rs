//! CSV and TSV: one line per row, cells separated by tabs, after encoding
//! detection. The delimiter is the one of `,` `;` `\t` `|` that splits the
//! first lines most evenly.

use serde_json::json;

use crate::errors::Code;
use crate::extract::{text, ParseError, ParseLimits};
use crate::model::Extracted;

pub fn extract(bytes: &[u8], limits: &ParseLimits) -> Result<Extracted, ParseError> {
    let decoded = text::decode(bytes);
    let delimiter = sniff_delimiter(&decoded);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(decoded.as_bytes());
    let mut out = String::new();
    let mut rows = 0u64;
    let mut columns = 0usize;
    for record in reader.records() {
        let record =
            record.map_err(|e| ParseError::new(Code::Malformed, format!("bad CSV: {e}")))?;
        rows += 1;
        columns = columns.max(record.len());
        let mut first = true;
        for cell in record.iter() {
            if !first {
                out.push('\t');
            }
            first = false;
            out.push_str(cell.trim());
        }
        out.push('\n');
        if out.len() > limits.max_text_chars.saturating_mul(4) {
            break; // cut to max_text_chars by the caller
        }
    }
    Ok(Extracted {
        text: out,
        fields: Some(json!({"rows": rows, "columns": columns})),
        ..Default::default()
    })
}

fn sniff_delimiter(text: &str) -> u8 {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(20)
        .collect();
    let mut best = (b',', 0usize);
    for d in [b',', b';', b'\t', b'|'] {
        let counts: Vec<usize> = lines
            .iter()
            .map(|l| l.bytes().filter(|&b| b == d).count())
            .collect();
        let Some(&first) = counts.first() else {
            break;
        };
        // Lines split the same way as the first one, weighted by its cells.
        let even = counts.iter().filter(|&&c| c == first).count();
        let score = if first == 0 { 0 } else { even * (first + 1) };
        if score > best.1 {
            best = (d, score);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_lines_with_any_common_delimiter() {
        let l = ParseLimits::default();
        let out = extract(b"name;amount\n\"M\xc3\xbcller, K.\";1.234,56\n", &l).unwrap();
        assert_eq!(out.text, "name\tamount\nMüller, K.\t1.234,56\n");
        assert_eq!(out.fields.unwrap()["rows"], 2);
        let out = extract(b"a\tb\tc\n1\t2\t3\n", &l).unwrap();
        assert_eq!(out.text, "a\tb\tc\n1\t2\t3\n");
        let out = extract(b"x,y\n1,2\n", &l).unwrap();
        assert_eq!(out.text, "x\ty\n1\t2\n");
    }
}
