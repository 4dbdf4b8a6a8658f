//! The rules classifier. Each type scores by its matching mode (like
//! Paperless-ngx's):
//!
//! - `any` (default): one point per keyword found (whole words, any case)
//!   and per pattern that matches;
//! - `all`: as `any`, but only when every keyword is found;
//! - `literal`: one point per keyword found as an exact phrase anywhere (any
//!   case, inside words too);
//! - `regex`: one point per pattern that matches (keywords are ignored);
//! - `fuzzy`: as `any`, but a word of five letters or more may differ by
//!   one letter (typos, OCR slips).
//!
//! The best score wins; the confidence says how clearly it beat the
//! runner-up.

use aho_corasick::AhoCorasick;
use regex::Regex;

use crate::config::{Matching, TypeConfig};
use crate::model::Classification;

/// Only the start of a long document is scanned: types show on page one.
const SCAN_CHARS: usize = 200_000;

pub struct RulesClassifier {
    types: Vec<CompiledType>,
    /// Every keyword of the `any`, `all` and `literal` types, lower-cased,
    /// in one automaton: one pass over the text finds them all (one regex
    /// per keyword cost a pass each).
    keywords: AhoCorasick,
    /// For each of the automaton's patterns: its type, its keyword's index
    /// there, and whether it counts only as a whole word.
    owners: Vec<(usize, usize, bool)>,
}

struct CompiledType {
    name: String,
    matching: Matching,
    /// How many keywords the type has (each found or not).
    keywords: usize,
    /// For `fuzzy`, the words of each keyword.
    fuzzy: Vec<Vec<String>>,
    patterns: Vec<Regex>,
}

impl RulesClassifier {
    pub fn new(types: &[TypeConfig]) -> Result<Self, regex::Error> {
        let mut literals = Vec::new();
        let mut owners = Vec::new();
        for (ti, t) in types.iter().enumerate() {
            if matches!(
                t.matching,
                Matching::Any | Matching::All | Matching::Literal
            ) {
                for (ki, k) in t.keywords.iter().enumerate() {
                    let k = k.trim().to_lowercase();
                    if !k.is_empty() {
                        literals.push(k);
                        owners.push((ti, ki, t.matching != Matching::Literal));
                    }
                }
            }
        }
        let keywords = AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(&literals)
            .map_err(|e| regex::Error::Syntax(e.to_string()))?;
        let types = types
            .iter()
            .map(|t| {
                let fuzzy = t
                    .keywords
                    .iter()
                    .map(|k| k.split_whitespace().map(str::to_lowercase).collect())
                    .collect();
                let patterns = t
                    .patterns
                    .iter()
                    .map(|p| Regex::new(p))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(CompiledType {
                    name: t.name.clone(),
                    matching: t.matching,
                    keywords: t.keywords.len(),
                    fuzzy,
                    patterns,
                })
            })
            .collect::<Result<Vec<_>, regex::Error>>()?;
        Ok(RulesClassifier {
            types,
            keywords,
            owners,
        })
    }

    /// Which keywords of which type the texts hold: `found[type][keyword]`.
    fn found_keywords(&self, texts: [&str; 2]) -> Vec<Vec<bool>> {
        let mut found: Vec<Vec<bool>> =
            self.types.iter().map(|t| vec![false; t.keywords]).collect();
        for text in texts {
            let lower = text.to_lowercase();
            for m in self.keywords.find_overlapping_iter(&lower) {
                let (t, k, whole_word) = self.owners[m.pattern().as_usize()];
                if !whole_word || at_word_bounds(&lower, m.start(), m.end()) {
                    found[t][k] = true;
                }
            }
        }
        found
    }

    /// A type's points in a text.
    fn score(t: &CompiledType, found: &[bool], title: &str, body: &str, words: &[String]) -> usize {
        let hit = |r: &Regex| r.is_match(title) || r.is_match(body);
        let patterns = t.patterns.iter().filter(|r| hit(r)).count();
        let keywords = found.iter().filter(|f| **f).count();
        match t.matching {
            Matching::Regex => patterns,
            Matching::Any | Matching::Literal => keywords + patterns,
            Matching::All => {
                if keywords == t.keywords {
                    keywords + patterns
                } else {
                    0
                }
            }
            Matching::Fuzzy => {
                let found = t
                    .fuzzy
                    .iter()
                    .filter(|k| !k.is_empty() && fuzzy_phrase(k, words))
                    .count();
                found + patterns
            }
        }
    }

    pub fn classify(&self, title: &str, text: &str) -> Classification {
        let end = text
            .char_indices()
            .nth(SCAN_CHARS)
            .map_or(text.len(), |(i, _)| i);
        let body = &text[..end];
        let words: Vec<String> = if self.types.iter().any(|t| t.matching == Matching::Fuzzy) {
            title
                .split(|c: char| !c.is_alphanumeric())
                .chain(body.split(|c: char| !c.is_alphanumeric()))
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect()
        } else {
            Vec::new()
        };
        let found = self.found_keywords([title, body]);
        let mut scores: Vec<(usize, &str)> = self
            .types
            .iter()
            .zip(&found)
            .map(|(t, f)| (Self::score(t, f, title, body, &words), t.name.as_str()))
            .collect();
        scores.sort_by_key(|s| std::cmp::Reverse(s.0));
        match scores.as_slice() {
            [(best, name), rest @ ..] if *best > 0 => {
                let second = rest.first().map_or(0, |s| s.0);
                Classification {
                    doc_type: Some(name.to_string()),
                    confidence: *best as f32 / (*best + second + 1) as f32,
                    source: Some("rule".into()),
                    needs_review: false,
                    needs_llm: false,
                }
            }
            _ => Classification::default(),
        }
    }
}

/// Whether `text[start..end]` begins and ends at word boundaries, as `\b`
/// does: a boundary lies between a word character and anything else.
fn at_word_bounds(text: &str, start: usize, end: usize) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let inner = &text[start..end];
    word(text[..start].chars().next_back()) != word(inner.chars().next())
        && word(inner.chars().next_back()) != word(text[end..].chars().next())
}

/// Whether the words of a phrase occur in a row, each equal or (five
/// letters or more) one edit away.
fn fuzzy_phrase(phrase: &[String], words: &[String]) -> bool {
    words.windows(phrase.len()).any(|w| {
        w.iter()
            .zip(phrase)
            .all(|(a, b)| a == b || (b.chars().count() >= 5 && strsim::levenshtein(a, b) <= 1))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_types;

    #[test]
    fn picks_the_type_with_most_rule_hits() {
        let c = RulesClassifier::new(&default_types()).unwrap();
        let r = c.classify(
            "",
            "INVOICE\nInvoice number 42\nAmount due: 100 EUR, VAT 19%",
        );
        assert_eq!(r.doc_type.as_deref(), Some("invoice"));
        assert!(r.confidence > 0.5, "{r:?}");
        let none = c.classify("", "the quick brown fox");
        assert_eq!(none, Classification::default());
    }

    #[test]
    fn matching_modes() {
        let t = |matching: Matching, keywords: &[&str], patterns: &[&str]| TypeConfig {
            name: "x".into(),
            matching,
            keywords: keywords.iter().map(|s| s.to_string()).collect(),
            patterns: patterns.iter().map(|s| s.to_string()).collect(),
            ..TypeConfig::default()
        };
        let hit = |ty: TypeConfig, text: &str| {
            RulesClassifier::new(&[ty])
                .unwrap()
                .classify("", text)
                .doc_type
                .is_some()
        };
        assert!(hit(
            t(Matching::Any, &["policy", "premium"], &[]),
            "the premium is due"
        ));
        assert!(!hit(
            t(Matching::All, &["policy", "premium"], &[]),
            "the premium is due"
        ));
        assert!(hit(
            t(Matching::All, &["policy", "premium"], &[]),
            "policy premium"
        ));
        assert!(hit(
            t(Matching::Literal, &["ACME-42"], &[]),
            "ref xACME-42y"
        ));
        assert!(!hit(t(Matching::Any, &["ACME-42"], &[]), "ref xACME-42y"));
        assert!(!hit(t(Matching::Regex, &["policy"], &[]), "policy"));
        assert!(hit(t(Matching::Regex, &[], &[r"POL-\d+"]), "POL-77"));
        assert!(hit(
            t(Matching::Fuzzy, &["insurance policy"], &[]),
            "Insurence Policy no. 4"
        ));
        assert!(!hit(
            t(Matching::Fuzzy, &["insurance policy"], &[]),
            "insure politely"
        ));
    }

    #[test]
    fn one_pass_finds_overlapping_keywords_in_any_case_at_word_bounds() {
        let ty = |name: &str, matching: Matching, keywords: &[&str]| TypeConfig {
            name: name.into(),
            matching,
            keywords: keywords.iter().map(|s| s.to_string()).collect(),
            ..TypeConfig::default()
        };
        let c = RulesClassifier::new(&[
            ty(
                "order",
                Matching::All,
                &["purchase order", "order", "Überweisung"],
            ),
            ty("memo", Matching::Any, &["memo", "c/o"]),
        ])
        .unwrap();
        // Overlapping keywords both count; case folds beyond ASCII.
        let r = c.classify("", "PURCHASE ORDER 7 — ÜBERWEISUNG bis Freitag");
        assert_eq!(r.doc_type.as_deref(), Some("order"), "{r:?}");
        // A keyword inside a word does not count; one with punctuation
        // inside does, between word bounds.
        assert_eq!(c.classify("", "memorandum").doc_type, None);
        assert_eq!(
            c.classify("", "Jane Doe c/o ACME").doc_type.as_deref(),
            Some("memo")
        );
        assert_eq!(c.classify("Memo", "").doc_type.as_deref(), Some("memo"));
    }

    #[test]
    fn keywords_match_whole_words_only() {
        let c = RulesClassifier::new(&default_types()).unwrap();
        // "vat" inside "private" is not the word VAT.
        assert_eq!(c.classify("", "private matters").doc_type, None);
    }
}
