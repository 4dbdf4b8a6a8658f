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

use regex::Regex;

use crate::config::{Matching, TypeConfig};
use crate::model::Classification;

/// Only the start of a long document is scanned: types show on page one.
const SCAN_CHARS: usize = 200_000;

pub struct RulesClassifier {
    types: Vec<CompiledType>,
}

struct CompiledType {
    name: String,
    matching: Matching,
    /// One per keyword (for `fuzzy`, the words of each keyword instead).
    keywords: Vec<Regex>,
    fuzzy: Vec<Vec<String>>,
    patterns: Vec<Regex>,
}

impl RulesClassifier {
    pub fn new(types: &[TypeConfig]) -> Result<Self, regex::Error> {
        let types = types
            .iter()
            .map(|t| {
                let mut keywords = Vec::new();
                for k in &t.keywords {
                    let k = regex::escape(k.trim());
                    keywords.push(Regex::new(&match t.matching {
                        Matching::Literal => format!("(?i){k}"),
                        _ => format!(r"(?i)\b{k}\b"),
                    })?);
                }
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
                    keywords,
                    fuzzy,
                    patterns,
                })
            })
            .collect::<Result<Vec<_>, regex::Error>>()?;
        Ok(RulesClassifier { types })
    }

    /// A type's points in a text.
    fn score(t: &CompiledType, title: &str, body: &str, words: &[String]) -> usize {
        let hit = |r: &Regex| r.is_match(title) || r.is_match(body);
        let patterns = t.patterns.iter().filter(|r| hit(r)).count();
        match t.matching {
            Matching::Regex => patterns,
            Matching::Any | Matching::Literal => {
                t.keywords.iter().filter(|r| hit(r)).count() + patterns
            }
            Matching::All => {
                let found = t.keywords.iter().filter(|r| hit(r)).count();
                if found == t.keywords.len() {
                    found + patterns
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
        let mut scores: Vec<(usize, &str)> = self
            .types
            .iter()
            .map(|t| (Self::score(t, title, body, &words), t.name.as_str()))
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
    fn keywords_match_whole_words_only() {
        let c = RulesClassifier::new(&default_types()).unwrap();
        // "vat" inside "private" is not the word VAT.
        assert_eq!(c.classify("", "private matters").doc_type, None);
    }
}
