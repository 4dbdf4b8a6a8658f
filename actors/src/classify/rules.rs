//! The rules classifier: each configured type scores one point per keyword
//! found (whole words, any case) and per pattern that matches. The best
//! score wins; the confidence says how clearly it beat the runner-up.

use regex::Regex;

use crate::config::TypeConfig;
use crate::model::Classification;

/// Only the start of a long document is scanned: types show on page one.
const SCAN_CHARS: usize = 200_000;

pub struct RulesClassifier {
    types: Vec<CompiledType>,
}

struct CompiledType {
    name: String,
    rules: Vec<Regex>,
}

impl RulesClassifier {
    pub fn new(types: &[TypeConfig]) -> Result<Self, regex::Error> {
        let types = types
            .iter()
            .map(|t| {
                let mut rules = Vec::new();
                for k in &t.keywords {
                    rules.push(Regex::new(&format!(
                        r"(?i)\b{}\b",
                        regex::escape(k.trim())
                    ))?);
                }
                for p in &t.patterns {
                    rules.push(Regex::new(p)?);
                }
                Ok(CompiledType {
                    name: t.name.clone(),
                    rules,
                })
            })
            .collect::<Result<Vec<_>, regex::Error>>()?;
        Ok(RulesClassifier { types })
    }

    pub fn classify(&self, title: &str, text: &str) -> Classification {
        let end = text
            .char_indices()
            .nth(SCAN_CHARS)
            .map_or(text.len(), |(i, _)| i);
        let body = &text[..end];
        let mut scores: Vec<(usize, &str)> = self
            .types
            .iter()
            .map(|t| {
                let hits = t
                    .rules
                    .iter()
                    .filter(|r| r.is_match(title) || r.is_match(body))
                    .count();
                (hits, t.name.as_str())
            })
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
    fn keywords_match_whole_words_only() {
        let c = RulesClassifier::new(&default_types()).unwrap();
        // "vat" inside "private" is not the word VAT.
        assert_eq!(c.classify("", "private matters").doc_type, None);
    }
}
