//! BERT's uncased tokenizer, as all-MiniLM-L6-v2's `tokenizer.json` sets it
//! up: text cleaned of control characters, lower-cased, accents stripped,
//! split at white space and punctuation (each punctuation mark and each CJK
//! ideograph a word of its own), then each word cut into the longest
//! vocabulary pieces from the left (`##` marking a piece inside a word);
//! a word that cannot be cut, or is longer than 100 characters, is `[UNK]`.

use rustc_hash::FxHashMap as HashMap;
use unicode_normalization::char::{decompose_canonical, is_combining_mark};

const MAX_WORD_CHARS: usize = 100;

pub struct WordPiece {
    /// Pieces that may start a word.
    words: HashMap<Box<str>, u32>,
    /// Pieces inside a word (`##` stripped).
    inner: HashMap<Box<str>, u32>,
    unk: u32,
}

impl WordPiece {
    /// `vocab[i]` is the piece of token id `i`.
    pub fn new(vocab: &[String]) -> anyhow::Result<WordPiece> {
        let mut words = HashMap::default();
        let mut inner = HashMap::default();
        for (id, piece) in vocab.iter().enumerate() {
            match piece.strip_prefix("##") {
                Some(rest) if !rest.is_empty() => inner.insert(rest.into(), id as u32),
                _ => words.insert(piece.as_str().into(), id as u32),
            };
        }
        let unk = *words
            .get("[UNK]")
            .ok_or_else(|| anyhow::anyhow!("the vocabulary has no [UNK]"))?;
        Ok(WordPiece { words, inner, unk })
    }

    pub fn id(&self, piece: &str) -> Option<u32> {
        self.words.get(piece).copied()
    }

    /// Appends the token ids of `text` to `out`.
    pub fn tokenize(&self, text: &str, out: &mut Vec<u32>) {
        let mut word = String::new();
        for c in text.chars() {
            if c.is_whitespace() || c.is_control() || c == '\u{fffd}' {
                self.flush(&mut word, out);
            } else if c.is_ascii() {
                if c.is_ascii_alphanumeric() {
                    word.push(c.to_ascii_lowercase());
                } else {
                    self.flush(&mut word, out);
                    let mut b = [0u8; 4];
                    self.piece(c.encode_utf8(&mut b), out);
                }
            } else if is_cjk(c) || is_punctuation(c) {
                self.flush(&mut word, out);
                let mut b = [0u8; 4];
                self.piece(c.encode_utf8(&mut b), out);
            } else {
                for l in c.to_lowercase() {
                    decompose_canonical(l, |d| {
                        if !is_combining_mark(d) {
                            word.push(d);
                        }
                    });
                }
            }
        }
        self.flush(&mut word, out);
    }

    fn piece(&self, p: &str, out: &mut Vec<u32>) {
        out.push(self.words.get(p).copied().unwrap_or(self.unk));
    }

    fn flush(&self, word: &mut String, out: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        self.word(word, out);
        word.clear();
    }

    /// Greedy longest match from the left.
    fn word(&self, w: &str, out: &mut Vec<u32>) {
        if let Some(&id) = self.words.get(w) {
            out.push(id);
            return;
        }
        if w.chars().count() > MAX_WORD_CHARS {
            out.push(self.unk);
            return;
        }
        let mark = out.len();
        let mut start = 0;
        while start < w.len() {
            let map = if start == 0 { &self.words } else { &self.inner };
            let mut end = w.len();
            let found = loop {
                if let Some(&id) = map.get(&w[start..end]) {
                    break Some(id);
                }
                // The previous character boundary.
                match w[start..end].char_indices().next_back() {
                    Some((i, _)) if i > 0 => end = start + i,
                    _ => break None,
                }
            };
            match found {
                Some(id) => {
                    out.push(id);
                    start = end;
                }
                None => {
                    out.truncate(mark);
                    out.push(self.unk);
                    return;
                }
            }
        }
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

/// Unicode punctuation (general category P*), as far as text in documents
/// has it: the general punctuation block, CJK and full-width forms, quotes
/// and dashes.
fn is_punctuation(c: char) -> bool {
    matches!(c as u32,
        0x00A1 | 0x00A7 | 0x00AB | 0x00B6 | 0x00B7 | 0x00BB | 0x00BF | 0x037E | 0x0387
        | 0x055A..=0x055F | 0x0589 | 0x05BE | 0x05C0 | 0x05C3 | 0x05F3 | 0x05F4
        | 0x060C | 0x061B | 0x061F | 0x066A..=0x066D | 0x06D4 | 0x0964 | 0x0965
        | 0x2010..=0x2027 | 0x2030..=0x205E | 0x207D | 0x207E | 0x208D | 0x208E
        | 0x2308..=0x230B | 0x2329 | 0x232A | 0x2768..=0x2775 | 0x27C5 | 0x27C6
        | 0x27E6..=0x27EF | 0x2983..=0x2998 | 0x29D8..=0x29DB | 0x29FC | 0x29FD
        | 0x2E00..=0x2E4F | 0x3001..=0x3003 | 0x3008..=0x3011 | 0x3014..=0x301F
        | 0x3030 | 0x303D | 0x30A0 | 0x30FB | 0xFE10..=0xFE19 | 0xFE30..=0xFE52
        | 0xFE54..=0xFE61 | 0xFE63 | 0xFE68 | 0xFE6A | 0xFE6B | 0xFF01..=0xFF03
        | 0xFF05..=0xFF0A | 0xFF0C..=0xFF0F | 0xFF1A | 0xFF1B | 0xFF1F | 0xFF20
        | 0xFF3B..=0xFF3D | 0xFF3F | 0xFF5B | 0xFF5D | 0xFF5F..=0xFF65)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> WordPiece {
        let v: Vec<String> = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "invoice", "un", "##aff", "##able", ",",
            "€", "cafe", "total", "##s", "中",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        WordPiece::new(&v).unwrap()
    }

    fn ids(text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        vocab().tokenize(text, &mut out);
        out
    }

    #[test]
    fn words_pieces_punctuation_and_unknowns() {
        assert_eq!(ids("The INVOICE, unaffable"), [4, 5, 9, 6, 7, 8]);
        assert_eq!(ids("Totals €"), [12, 13, 10]);
        assert_eq!(ids("Café中"), [11, 14]);
        // A word with no cut is one [UNK], whatever pieces it started with.
        assert_eq!(ids("unxyz"), [1]);
        assert_eq!(ids(" \u{0}\t"), Vec::<u32>::new());
    }
}
