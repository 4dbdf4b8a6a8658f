//! Extract pool: turns a stored original into text.
//!
//! In: [`DocJob`]s at stage `queued`, dispatched by the Intake through a
//! ractor factory. Out: the stage outputs to the Catalog, which commits them
//! with the stage advance and forwards the job to its next stage; or a
//! failure to the Scheduler. Plain text, Markdown, HTML and CSV are parsed
//! in-process on the blocking pool; every other (untrusted, binary) format
//! in a pooled parser process of this same binary, under a time limit and
//! an address-space limit. A parser that panics, hangs or dies fails that
//! one document with a code; the worker replaces its process and goes on.
//!
//! When no LLM is to be asked about the document, the job goes on to the
//! cheap stages (built-in type and fields, see [`crate::analyze`]) and
//! reports `extracted`, `classified` and `enriched` as one durable step.

pub mod detect;
pub mod einvoice;
pub mod email;
pub mod image;
pub mod layout;
pub mod ocr;
pub mod office;
pub mod parse;
pub mod pdf;
mod read;
pub mod rtf;
pub mod sandbox;
pub mod table;
pub mod text;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use ractor::factory::{FactoryMessage, Job, Worker, WorkerId};
use ractor::{ActorProcessingErr, ActorRef};

pub use parse::{needs_sandbox, parse, truncate_chars, ParseError, ParseLimits};

use crate::analyze::Analyzer;
use crate::config::ExtractConfig;
use crate::counters::Counters;
use crate::model::DocJob;
use crate::routes::{
    current_routes, started, tell, CatalogMsg, RoutesRx, SchedulerMsg, StageOutput,
};
use crate::store::blobs::Blobs;
use crate::store::pool::ReadPool;

/// What every Extract worker shares.
pub struct ExtractCtx {
    pub config: ExtractConfig,
    pub parser_command: Vec<String>,
    pub blobs: Blobs,
    pub db: ReadPool,
    pub routes: RoutesRx,
    pub counters: Arc<Counters>,
    pub ocr: Arc<ocr::Ocr>,
    pub analyzer: Arc<Analyzer>,
}

pub struct Extractor {
    pub ctx: Arc<ExtractCtx>,
}

pub struct ExtractorState {
    sandbox: Option<sandbox::Sandbox>,
}

impl Extractor {
    /// Reads the document, stages its attachments, and runs the cheap
    /// stages that need no LLM.
    async fn run(
        &self,
        doc: &DocJob,
        state: &mut ExtractorState,
    ) -> Result<Vec<StageOutput>, ParseError> {
        let ctx = &self.ctx;
        // Test builds: the worker actor itself may die with the job, which
        // only the Intake's lease can notice.
        #[cfg(feature = "failpoints")]
        crate::faults::extract_worker(&doc.filename);
        if !needs_sandbox(&doc.mime) {
            let (out, cheap) = ctx.read_in_process(doc).await?;
            let mut outputs = vec![StageOutput::Extracted {
                out: Box::new(out),
                children: Vec::new(),
            }];
            outputs.extend(cheap);
            return Ok(outputs);
        }
        let mut out = ctx.read_in_sandbox(doc, state).await?;
        let attachments = std::mem::take(&mut out.attachments);
        let children = ctx.stage_children(doc, attachments, &mut out).await?;
        let (analyzer, job) = (ctx.analyzer.clone(), doc.clone());
        let (out, cheap) = tokio::task::spawn_blocking(move || {
            let cheap = analyzer.cheap_stages(&job, &out);
            (out, cheap)
        })
        .await
        .map_err(|e| ParseError::new(crate::errors::Code::Internal, e.to_string()))?;
        let mut outputs = vec![StageOutput::Extracted {
            out: Box::new(out),
            children,
        }];
        outputs.extend(cheap);
        Ok(outputs)
    }
}

impl Worker for Extractor {
    type Key = ();
    type Message = DocJob;
    type Arguments = ();
    type State = ExtractorState;

    async fn pre_start(
        &self,
        _wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<(), DocJob>>,
        _args: (),
    ) -> Result<ExtractorState, ActorProcessingErr> {
        Ok(ExtractorState { sandbox: None })
    }

    async fn handle(
        &self,
        _wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<(), DocJob>>,
        job: Job<(), DocJob>,
        state: &mut ExtractorState,
    ) -> Result<(), ActorProcessingErr> {
        let doc = job.msg;
        started(&self.ctx.routes, &doc);
        let counters = &self.ctx.counters.extract;
        let result = {
            let _timer = counters.start_job();
            self.run(&doc, state).await
        };
        let routes = current_routes(&self.ctx.routes)?;
        match result {
            Ok(outputs) => {
                counters.num_processed.fetch_add(1, Relaxed);
                let msg = CatalogMsg::Advanced { job: doc, outputs };
                tell(&routes.catalog, msg, "catalog");
            }
            Err(e) => {
                counters.num_failed.fetch_add(1, Relaxed);
                tracing::info!(doc_id = %doc.id, request_id = doc.request_id.as_deref().unwrap_or("-"), stage = "extract", code = %e.code, error = %e.message, "extraction failed");
                let retryable = e.is_retryable();
                let failed = SchedulerMsg::Failed {
                    job: Box::new(doc),
                    error: e.into_info(),
                    retryable,
                };
                tell(&routes.scheduler, failed, "scheduler");
            }
        }
        Ok(())
    }
}
