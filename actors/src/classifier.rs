//! The built-in classifier, as plain functions: the user's rules first,
//! then the model learned from the workspace's corrections (words and
//! meaning, see [`bayes`]; trained by the Trainer and shared through a
//! [`ModelSlot`]) weighed against the shipped default types' rules, and the
//! question to the LLM
//! when one is configured. Used by the Classify workers, and by the Extract
//! job when a document needs no LLM.

pub mod bayes;
pub mod rules;

use std::sync::{Arc, RwLock};

use std::collections::BTreeMap;

use crate::config::TypeConfig;
use crate::embed::Embedder;
use crate::llm::{Asked, Llm};
use crate::model::Classification;
use bayes::{Model, Vector};
use rules::RulesClassifier;

/// How many corrections to other types halve a shipped default type's
/// pull: a default type the user has never used fades as the user's own
/// corrections grow (see [`classify`]).
const PRIOR_STRENGTH: f32 = 10.0;

/// Only the start of a document makes its vector for the classifier (as
/// only the start of its words is read).
const VECTOR_CHARS: usize = 20_000;

/// The type of a document, from the user's rules (`rules`), the shipped
/// default types' rules (`priors`) and the model. In order:
///
/// 1. a rule the user wrote (config or API) that matches: it wins;
/// 2. the learned model's prediction, against a shipped default type's
///    keyword rule that matches (a prior): the prior's confidence is its
///    rule score's, scaled by `PRIOR_STRENGTH / (PRIOR_STRENGTH + n)` when
///    the model was trained on `n` corrections none of which was to that
///    type; it wins unless the model is surer, its confidence measured
///    above chance (`(p − 1/C) / (1 − 1/C)` for `C` learned types);
/// 3. whichever of the two there is.
pub fn classify(
    rules: &RulesClassifier,
    priors: &RulesClassifier,
    model: Option<&Model>,
    vector: Option<Vector<'_>>,
    review_threshold: f32,
    title: &str,
    text: &str,
) -> Classification {
    let by_rule = rules.classify(title, text);
    if by_rule.doc_type.is_some() {
        return by_rule;
    }
    let prior = priors.classify(title, text);
    let Some(m) = model else {
        return Classification {
            source: prior.doc_type.as_ref().map(|_| PRIOR.to_string()),
            ..prior
        };
    };
    let p = m.predict_document(title, text, vector);
    if let Some(name) = prior.doc_type.as_deref() {
        let weight = if m.labels.iter().any(|l| l == name) {
            prior.confidence
        } else {
            let corrections = m.counts.iter().sum::<u32>() as f32;
            prior.confidence * PRIOR_STRENGTH / (PRIOR_STRENGTH + corrections)
        };
        // The model's confidence above chance (0 when it is no surer than
        // a guess among its types, 1 when certain): a two-type model at
        // 0.55 knows next to nothing about this document.
        let chance = 1.0 / m.labels.len() as f32;
        let sure = ((p.confidence - chance) / (1.0 - chance)).max(0.0);
        if weight >= sure {
            return Classification {
                doc_type: Some(name.to_string()),
                confidence: weight,
                source: Some(PRIOR.into()),
                needs_review: weight < review_threshold,
                needs_llm: false,
            };
        }
    }
    Classification {
        doc_type: Some(p.label),
        confidence: p.confidence,
        source: Some("model".into()),
        needs_review: p.confidence < review_threshold,
        needs_llm: false,
    }
}

/// The source of a type set by a shipped default type's rule.
pub const PRIOR: &str = "default_rule";

/// A document's vector for the classifier, from the built-in embedder (the
/// start of its title and text); None without one.
pub fn vector_of(embedder: Option<&Embedder>, title: &str, text: &str) -> Option<Vec<f32>> {
    let Some(Embedder::Builtin(table)) = embedder else {
        return None;
    };
    let end = text
        .char_indices()
        .nth(VECTOR_CHARS)
        .map_or(text.len(), |(i, _)| i);
    table.embed(&format!("{title}\n{}", &text[..end]), &mut Vec::new())
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
/// to classify, no rule of the user's matched (a matching rule is the
/// user's word; a shipped default's is not), and there are type names to
/// choose from.
pub fn wants_llm(llm: Option<&Llm>, built_in: &Classification, names: &[(String, String)]) -> bool {
    llm.is_some_and(|l| l.config().classify)
        && built_in.source.as_deref() != Some("rule")
        && !names.is_empty()
}

/// The workspace's model in force, if one was trained.
pub fn current(slot: &ModelSlot, workspace: &str) -> Option<Arc<Trained>> {
    slot.read()
        .unwrap_or_else(|e| e.into_inner())
        .get(workspace)
        .cloned()
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

/// Each workspace's model in force, shared by the Classify workers, the
/// Trainer and the API. A workspace learns from its own corrections only.
pub type ModelSlot = Arc<RwLock<Models>>;

/// The trained models by workspace.
pub type Models = BTreeMap<String, Arc<Trained>>;

/// Loads the stored models (at start), and names the workspaces whose model
/// is to be trained again: unreadable, or made for another embedder than
/// the one in force (`embedder`: its id, None when there is none).
pub fn load(
    conn: &rusqlite::Connection,
    embedder: Option<&str>,
) -> anyhow::Result<(Models, Vec<String>)> {
    let mut models = BTreeMap::new();
    let mut stale = Vec::new();
    for (workspace, bytes, trained_at) in crate::store::classifier::read_classifiers(conn)? {
        match Model::decode(&bytes) {
            Some(model) => {
                if model.embedder() != embedder {
                    stale.push(workspace.clone());
                }
                models.insert(workspace, Arc::new(Trained { model, trained_at }));
            }
            None => {
                tracing::warn!(%workspace, "the stored classifier cannot be read; it is trained again");
                stale.push(workspace);
            }
        }
    }
    Ok((models, stale))
}
