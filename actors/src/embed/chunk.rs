//! Cuts a document's text into overlapping passages for embedding: whole
//! sentences up to `max_chars` bytes (a sentence longer than that is cut at
//! a space), each passage starting with the last sentence of the one
//! before it when that sentence is short, and never across a page break, so
//! that every passage has one page to cite.

use crate::model::PAGE_BREAK;

/// At most this many passages of one document are embedded (its first).
pub const MAX_CHUNKS: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Byte offsets into the text.
    pub start: usize,
    pub end: usize,
    /// 1-based.
    pub page: u32,
}

pub fn chunks(text: &str, max_chars: usize) -> Vec<Chunk> {
    let max = max_chars.max(16);
    let mut out = Vec::new();
    let mut page_start = 0;
    for (page_no, page) in text.split(PAGE_BREAK).enumerate() {
        page_chunks(page, page_start, page_no as u32 + 1, max, &mut out);
        page_start += page.len() + PAGE_BREAK.len_utf8();
        if out.len() >= MAX_CHUNKS {
            out.truncate(MAX_CHUNKS);
            break;
        }
    }
    out
}

/// The passages of a document as they are embedded: its chunks' text, the
/// title leading the first (a title alone when the text has none).
pub fn passages(title: &str, text: &str, max_chars: usize) -> Vec<(Chunk, String)> {
    let mut out: Vec<(Chunk, String)> = chunks(text, max_chars)
        .into_iter()
        .map(|c| (c, text[c.start..c.end].to_string()))
        .collect();
    match out.first_mut() {
        Some((_, s)) => *s = format!("{title}\n{s}"),
        None if !title.trim().is_empty() => out.push((
            Chunk {
                start: 0,
                end: 0,
                page: 1,
            },
            title.to_string(),
        )),
        None => {}
    }
    out
}

fn page_chunks(page: &str, base: usize, page_no: u32, max: usize, out: &mut Vec<Chunk>) {
    let sentences = sentences(page, max);
    let mut i = 0;
    while i < sentences.len() {
        let start = sentences[i].0;
        let mut j = i;
        while j + 1 < sentences.len() && sentences[j + 1].1 - start <= max {
            j += 1;
        }
        out.push(Chunk {
            start: base + start,
            end: base + sentences[j].1,
            page: page_no,
        });
        if out.len() >= MAX_CHUNKS {
            return;
        }
        // Overlap: the next passage repeats this one's last sentence, if
        // it is short and the passage had more than it.
        let last = sentences[j];
        let short = last.1 - last.0 <= max / 4;
        i = if j > i && j + 1 < sentences.len() && short {
            j
        } else {
            j + 1
        };
    }
}

/// The sentences of `s` as byte ranges, trimmed, none longer than `max`.
fn sentences(s: &str, max: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let push = |from: usize, to: usize, out: &mut Vec<(usize, usize)>| {
        let piece = &s[from..to];
        let lead = piece.len() - piece.trim_start().len();
        let trail = piece.len() - piece.trim_end().len();
        if from + lead < to - trail {
            out.push((from + lead, to - trail));
        }
    };
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        let end_here = match c {
            '.' | '!' | '?' => next.is_none_or(char::is_whitespace),
            '\n' => next == Some('\n'),
            _ => false,
        };
        let after = i + c.len_utf8();
        if end_here {
            push(start, after, &mut out);
            start = after;
        } else if after - start >= max {
            // Too long for one passage: cut at the last space.
            let cut = s[start..after]
                .rfind(char::is_whitespace)
                .map(|k| start + k)
                .filter(|&k| k > start)
                .unwrap_or(after);
            push(start, cut, &mut out);
            start = cut;
        }
    }
    push(start, s.len(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passages_keep_sentences_whole_overlap_and_name_their_page() {
        let text = "One short sentence. Two! Three asks why? Four.\u{c}Page two starts.";
        let cs = chunks(text, 30);
        let got: Vec<(&str, u32)> = cs.iter().map(|c| (&text[c.start..c.end], c.page)).collect();
        assert_eq!(
            got,
            [
                ("One short sentence. Two!", 1),
                ("Two! Three asks why? Four.", 1),
                ("Page two starts.", 2)
            ]
        );
    }

    #[test]
    fn a_long_run_without_stops_is_cut_at_spaces_within_the_limit() {
        let text = "word ".repeat(100) + "é".repeat(100).as_str();
        for c in chunks(&text, 64) {
            assert!(c.end - c.start <= 64, "{c:?}");
            assert!(text.is_char_boundary(c.start) && text.is_char_boundary(c.end));
        }
        assert!(chunks("", 64).is_empty());
    }
}
