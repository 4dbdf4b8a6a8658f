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
use crate::counters::Counters;
use crate::model::Classification;
use crate::model::DocJob;
use crate::pipeline::{current_routes, tell, RoutesRx};
use crate::trainer::ModelSlot;
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
            let p = m.predict(&format!("{title}\n{text}"));
            Classification {
                doc_type: Some(p.label),
                confidence: p.confidence,
                source: Some("model".into()),
                needs_review: p.confidence < review_threshold,
            }
        }
        None => by_rule,
    }
}

pub struct ClassifyCtx {
    pub rules: RulesClassifier,
    pub model: ModelSlot,
    pub review_threshold: f32,
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
        let counters = &self.ctx.counters.classify;
        let class = {
            let _timer = counters.start_job();
            let ctx = self.ctx.clone();
            let title = doc.title.clone().unwrap_or_default();
            let text = doc.text.clone().unwrap_or_else(|| Arc::from(""));
            let model = ctx.model.read().unwrap_or_else(|e| e.into_inner()).clone();
            tokio::task::spawn_blocking(move || {
                classify(
                    &ctx.rules,
                    model.as_ref().map(|t| &t.model),
                    ctx.review_threshold,
                    &title,
                    &text,
                )
            })
            .await?
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
