//! Classify pool: gives an extracted document a type and a confidence when
//! the LLM is to be asked (without an LLM the Extract job does this step;
//! see [`crate::analyze`]).
//!
//! In: [`DocJob`]s at stage `extracted`, with their text. Out: the
//! classification to the Catalog, which commits it with the stage advance
//! and forwards the job to Enrich. A type whose rules match wins (source
//! `rule`); otherwise the learned model predicts one (source `model`), and
//! the LLM's answer, checked and weighed against it, replaces it (source
//! `llm`). An LLM that does not answer leaves the built-in type and flags
//! the document `needs_llm`.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use ractor::factory::{FactoryMessage, Job, Worker, WorkerId};
use ractor::{ActorProcessingErr, ActorRef};

use crate::analyze::Analyzer;
use crate::classifier::ask_llm;
use crate::counters::Counters;
use crate::llm::Asked;
use crate::model::{Classification, DocJob};
use crate::routes::{current_routes, started, tell, CatalogMsg, RoutesRx, StageOutput};

pub struct ClassifyCtx {
    pub analyzer: Arc<Analyzer>,
    pub routes: RoutesRx,
    pub counters: Arc<Counters>,
}

pub struct Classifier {
    pub ctx: Arc<ClassifyCtx>,
}

impl Classifier {
    async fn classify(&self, doc: &DocJob) -> Result<Classification, ActorProcessingErr> {
        let a = self.ctx.analyzer.clone();
        let title = doc.title.clone().unwrap_or_default();
        let text = doc.text.clone().unwrap_or_else(|| Arc::from(""));
        let (types, model) = (a.types(), a.model(&doc.workspace));
        let (a2, types2, model2, title2, text2) = (
            a.clone(),
            types.clone(),
            model.clone(),
            title.clone(),
            text.clone(),
        );
        let built_in = tokio::task::spawn_blocking(move || {
            a2.built_in_type(&types2, model2.as_deref(), &title2, &text2)
        })
        .await?;
        let names = a.llm_type_names(&types, model.as_deref(), &built_in);
        let Some(llm) = a.llm.as_ref().filter(|_| !names.is_empty()) else {
            return Ok(built_in);
        };
        Ok(
            match ask_llm(llm, &names, &built_in, a.review_threshold, &title, &text).await {
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
            },
        )
    }
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
        started(&self.ctx.routes, &doc);
        let counters = &self.ctx.counters.classify;
        let class = {
            let _timer = counters.start_job();
            self.classify(&doc).await?
        };
        counters.num_processed.fetch_add(1, Relaxed);
        let msg = CatalogMsg::Advanced {
            job: doc,
            outputs: vec![StageOutput::Classified(class)],
        };
        tell(&current_routes(&self.ctx.routes)?.catalog, msg, "catalog");
        Ok(())
    }
}
