//! Classify pool: gives each extracted document a type and a confidence.
//!
//! In: [`DocJob`]s at stage `extracted`, with their text. Out: the
//! classification to the Catalog, which commits it with the stage advance and
//! forwards the job to the Indexer. Rules come from config; later versions add
//! a learned model and the LLM behind the same message.

pub mod rules;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use ractor::factory::{FactoryMessage, Job, Worker, WorkerId};
use ractor::{ActorProcessingErr, ActorRef};

use crate::catalog::CatalogMsg;
use crate::counters::Counters;
use crate::model::DocJob;
use crate::pipeline::{current_routes, tell, RoutesRx};
use rules::RulesClassifier;

pub struct ClassifyCtx {
    pub rules: RulesClassifier,
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
            tokio::task::spawn_blocking(move || ctx.rules.classify(&title, &text)).await?
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
