//! Classify pool: gives each extracted document a type and a confidence.
//!
//! In: [`DocJob`]s at stage `extracted`, with their text. Out: the
//! classification to the Catalog, which commits it with the stage advance and
//! forwards the job to the Indexer.
//!
//! A type whose rules match wins (source `rule`); otherwise the learned
//! classifier (trained on users' corrections by the Trainer) predicts one
//! (source `model`), flagged `needs_review` when its calibrated confidence
//! is below `pipeline.classify.review_threshold`.

pub mod model;
pub mod rules;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use ractor::factory::{FactoryMessage, Job, Worker, WorkerId};
use ractor::{ActorProcessingErr, ActorRef};

use crate::catalog::CatalogMsg;
use crate::config::TypeConfig;
use crate::counters::Counters;
use crate::llm::{Asked, Llm};
use crate::model::Classification;
use crate::model::DocJob;
use crate::pipeline::{current_routes, tell, RoutesRx};
use crate::trainer::ModelSlot;
use crate::types::TypesSlot;
use model::Model;
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

pub struct ClassifyCtx {
    pub types: TypesSlot,
    pub model: ModelSlot,
    pub review_threshold: f32,
    pub llm: Option<Arc<Llm>>,
    pub routes: RoutesRx,
    pub counters: Arc<Counters>,
}

pub struct Classifier {
    pub ctx: Arc<ClassifyCtx>,
}

impl Worker for Classifier {
    type Key = ();
    type Message = DocJob;
    type Arguments = ();
    type State = ();

    async fn pre_start(
        &self,
        _wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<(), DocJob>>,
        _args: (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<(), DocJob>>,
        job: Job<(), DocJob>,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let doc = job.msg;
        crate::intake::started(&self.ctx.routes, &doc);
        let counters = &self.ctx.counters.classify;
        let class = {
            let _timer = counters.start_job();
            let ctx = self.ctx.clone();
            let title = doc.title.clone().unwrap_or_default();
            let text = doc.text.clone().unwrap_or_else(|| Arc::from(""));
            let model = ctx.model.read().unwrap_or_else(|e| e.into_inner()).clone();
            let types = crate::types::current(&ctx.types);
            let review_threshold = ctx.review_threshold;
            let (types2, model2, title2, text2) =
                (types.clone(), model.clone(), title.clone(), text.clone());
            let built_in = tokio::task::spawn_blocking(move || {
                classify(
                    &types2.rules,
                    model2.as_ref().map(|t| &t.model),
                    review_threshold,
                    &title2,
                    &text2,
                )
            })
            .await?;
            match &ctx.llm {
                // A matching rule is the user's word: no need to ask.
                Some(llm)
                    if llm.config().classify && built_in.source.as_deref() != Some("rule") =>
                {
                    let model = model.as_ref().map(|t| &t.model);
                    let names = llm_types(&types.list, model);
                    if names.is_empty() {
                        built_in
                    } else {
                        match ask_llm(llm, &names, &built_in, ctx.review_threshold, &title, &text)
                            .await
                        {
                            Asked::Answer(c) => c,
                            Asked::Invalid(e) => {
                                tracing::warn!(doc_id = %doc.id, error = %e, "the LLM's type was not valid twice; the built-in one stands");
                                built_in
                            }
                            Asked::Unavailable(e) => {
                                tracing::warn!(doc_id = %doc.id, error = %e, "no LLM endpoint answered; the built-in type stands and the document is marked needs_llm");
                                Classification {
                                    needs_llm: true,
                                    ..built_in
                                }
                            }
                        }
                    }
                }
                _ => built_in,
            }
        };
        counters.num_processed.fetch_add(1, Relaxed);
        tell(
            &current_routes(&self.ctx.routes)?.catalog,
            CatalogMsg::Classified { job: doc, class },
            "catalog",
        );
        Ok(())
    }
}
