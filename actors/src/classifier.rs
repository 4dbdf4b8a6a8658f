//! The built-in classifier, as plain functions: a type's rules first, then
//! the model learned from users' corrections (naive Bayes, trained by the
//! Trainer and shared through a [`ModelSlot`]), and the question to the LLM
//! when one is configured. Used by the Classify workers, and by the Extract
//! job when a document needs no LLM.

pub mod bayes;
pub mod rules;

use std::sync::{Arc, RwLock};

use crate::config::TypeConfig;
use crate::llm::{Asked, Llm};
use crate::model::Classification;
use bayes::Model;
use rules::RulesClassifier;

/// The type of a document: rules first, then the learned model.
pub fn classify(
    rules: &RulesClassifier,
    model: Option<&Model>,
    review_threshold: f32,
    title: &str,
    text: &str,
) -> Classification {
    let by_rule = rules.classify(title, text);
    if by_rule.doc_type.is_some() {
        return by_rule;
    }
    match model {
        Some(m) => {
            let p = m.predict_document(title, text);
            Classification {
                doc_type: Some(p.label),
                confidence: p.confidence,
                source: Some("model".into()),
                needs_review: p.confidence < review_threshold,
                needs_llm: false,
            }
        }
        None => by_rule,
    }
}

/// The type names the LLM may answer and their descriptions: the
/// configured types, else the types the learned model knows.
pub fn llm_types(types: &[TypeConfig], model: Option<&Model>) -> Vec<(String, String)> {
    if !types.is_empty() {
        return types
            .iter()
            .map(|t| (t.name.clone(), t.description.clone()))
            .collect();
    }
    model.map_or_else(Vec::new, |m| {
        m.labels
            .iter()
            .map(|l| (l.clone(), String::new()))
            .collect()
    })
}

/// Whether the LLM is asked for this document's type: one is configured
/// to classify, no rule matched (a matching rule is the user's word), and
/// there are type names to choose from.
pub fn wants_llm(llm: Option<&Llm>, built_in: &Classification, names: &[(String, String)]) -> bool {
    llm.is_some_and(|l| l.config().classify)
        && built_in.source.as_deref() != Some("rule")
        && !names.is_empty()
}

/// The model in force, if one was trained.
pub fn current(slot: &ModelSlot) -> Option<Arc<Trained>> {
    slot.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Asks the LLM for the type of a document no rule matched. Its answer's
/// confidence is weighed with the learned model's prediction (`built_in`,
/// when its source is `model`): when both agree they back each other
/// (1 − (1 − a)(1 − b)); when they disagree the LLM's is discounted by the
/// model's; without a model, by a fifth (the LLM is untrusted).
pub async fn ask_llm(
    llm: &Llm,
    names: &[(String, String)],
    built_in: &Classification,
    review_threshold: f32,
    title: &str,
    text: &str,
) -> Asked<Classification> {
    let list: String = names
        .iter()
        .map(|(n, d)| {
            if d.is_empty() {
                format!("- {n}\n")
            } else {
                format!("- {n}: {d}\n")
            }
        })
        .collect();
    let system = format!(
        "You sort documents into types. The types are:\n{list}\
         Answer with JSON: {{\"doc_type\": one of the type names, \"confidence\": how sure you are, from 0 to 1}}."
    );
    let user = format!(
        "Title: {title}\n\n{}",
        crate::llm::truncate(text, llm.config().max_text_chars)
    );
    let allowed: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "doc_type": {"type": "string", "enum": allowed},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1}
        },
        "required": ["doc_type", "confidence"]
    });
    let prediction = built_in
        .doc_type
        .as_deref()
        .filter(|_| built_in.source.as_deref() == Some("model"))
        .map(|label| (label, built_in.confidence));
    llm.ask(&system, &user, &schema, |v| {
        let name = v["doc_type"]
            .as_str()
            .ok_or("\"doc_type\" is missing or not a string")?;
        if !allowed.contains(&name) {
            return Err(format!("\"doc_type\" {name:?} is not one of {allowed:?}"));
        }
        let said = v["confidence"]
            .as_f64()
            .or_else(|| v["confidence"].as_str().and_then(|s| s.parse().ok()))
            .ok_or("\"confidence\" is missing or not a number")?;
        if !(0.0..=1.0).contains(&said) {
            return Err(format!("\"confidence\" {said} is not between 0 and 1"));
        }
        let said = said as f32;
        let confidence = match prediction {
            Some((label, c)) if label == name => 1.0 - (1.0 - said) * (1.0 - c),
            Some((_, c)) => said * (1.0 - c),
            None => said * 0.8,
        };
        Ok(Classification {
            doc_type: Some(name.to_string()),
            confidence,
            source: Some("llm".into()),
            needs_review: confidence < review_threshold,
            needs_llm: false,
        })
    })
    .await
}

/// A trained model and when it was trained.
#[derive(Debug)]
pub struct Trained {
    pub model: Model,
    /// Milliseconds since the epoch.
    pub trained_at: i64,
}

/// The model in force, shared by the Classify workers and the API.
pub type ModelSlot = Arc<RwLock<Option<Arc<Trained>>>>;

/// Loads the stored model (at start).
pub fn load(conn: &rusqlite::Connection) -> anyhow::Result<Option<Trained>> {
    Ok(
        crate::store::classifier::read_classifier(conn)?.and_then(|(bytes, trained_at)| {
            let model = Model::decode(&bytes);
            if model.is_none() {
                tracing::warn!(
                "the stored classifier cannot be read; it is trained again at the next correction"
            );
            }
            model.map(|model| Trained { model, trained_at })
        }),
    )
}
