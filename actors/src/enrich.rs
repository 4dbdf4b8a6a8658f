//! Enrich pool: finds the fields of a classified document when the LLM is
//! to be asked for them (without an LLM the Extract job does this step; see
//! [`crate::analyze`]).
//!
//! In: [`DocJob`]s at stage `classified`, with their text and type. Out: the
//! fields to the Catalog, which stores them (a value a user set stays) with
//! the stage advance and forwards the job to the Indexer. The fields looked
//! for are the common ones plus those of the document's type; see
//! [`crate::fields`] for how the rules find them and how the LLM's values
//! are weighed against them.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use ractor::factory::{FactoryMessage, Job, Worker, WorkerId};
use ractor::{ActorProcessingErr, ActorRef};

use crate::analyze::{Analyzer, Metadata};
use crate::counters::Counters;
use crate::fields::ask_llm;
use crate::llm::Asked;
use crate::model::{DocJob, Found};
use crate::routes::{current_routes, started, tell, CatalogMsg, RoutesRx, StageOutput};
use crate::store::documents::get_field_inputs;
use crate::store::pool::ReadPool;

pub struct EnrichCtx {
    pub analyzer: Arc<Analyzer>,
    pub db: ReadPool,
    pub routes: RoutesRx,
    pub counters: Arc<Counters>,
}

pub struct Enricher {
    pub ctx: Arc<EnrichCtx>,
}

impl Enricher {
    /// The document's fields, and whether the LLM should be asked later.
    async fn enrich(&self, doc: &DocJob) -> Result<(Vec<Found>, bool), ActorProcessingErr> {
        let a = self.ctx.analyzer.clone();
        let seq = doc.seq;
        let inputs = self.ctx.db.run(move |c| get_field_inputs(c, seq)).await?;
        let types = a.types();
        let text = doc.text.clone().unwrap_or_else(|| Arc::from(""));
        let (a2, types2, text2, doc_type, workspace) = (
            a.clone(),
            types.clone(),
            text.clone(),
            doc.doc_type.clone(),
            doc.workspace.clone(),
        );
        let by_rules = tokio::task::spawn_blocking(move || {
            let meta = Metadata {
                language: inputs.language.as_deref(),
                fields: inputs.metadata.as_ref(),
                layout: inputs.layout.as_deref(),
            };
            a2.built_in_fields(&types2, doc_type.as_deref(), &text2, &meta, &workspace)
        })
        .await?;
        // The LLM is asked for a typed document's own fields.
        let own = a.llm_field_specs(&types, doc.doc_type.as_deref());
        let (Some(llm), Some(doc_type), false) = (&a.llm, doc.doc_type.as_deref(), own.is_empty())
        else {
            return Ok((by_rules, false));
        };
        let description = types
            .get(doc_type)
            .map(|t| t.description.clone())
            .unwrap_or_default();
        Ok(
            match ask_llm(llm, doc_type, &description, &own, &text, by_rules.clone()).await {
                Asked::Answer(f) => (f, false),
                Asked::Invalid(e) => {
                    tracing::warn!(doc_id = %doc.id, error = %e, "the LLM's fields were not valid twice; the rules' stand");
                    (by_rules, false)
                }
                Asked::Unavailable(e) => {
                    tracing::warn!(doc_id = %doc.id, error = %e, "no LLM endpoint answered; the rules' fields stand and the document is marked needs_llm");
                    (by_rules, true)
                }
            },
        )
    }
}

impl Worker for Enricher {
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
        let counters = &self.ctx.counters.enrich;
        let (fields, needs_llm) = {
            let _timer = counters.start_job();
            self.enrich(&doc).await?
        };
        counters.num_processed.fetch_add(1, Relaxed);
        let msg = CatalogMsg::Advanced {
            job: doc,
            outputs: vec![StageOutput::Enriched { fields, needs_llm }],
        };
        tell(&current_routes(&self.ctx.routes)?.catalog, msg, "catalog");
        Ok(())
    }
}
