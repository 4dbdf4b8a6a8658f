//! docpipe's engine: supervised actors around a durable SQLite queue.
//!
//! ```text
//!  upload ─► blobs: incoming/<id> ─► Catalog.Register (commit) ─► blobs: docs/<id> ─► 202
//!                                              │ Wake
//!                                              ▼
//!  SQLite (the queue) ◄──── ready query ──── Intake ── max_in_flight permits, leases
//!        ▲                                     │ admit by stage
//!        │ group commits                       ▼
//!     Catalog ◄── Extracted ── Extract pool (factory; PDFs in parser processes)
//!        │ ────── forward ───► Classify pool (factory; rules)
//!        │ ◄── Classified ───┘
//!        │ ────── forward ───► Indexer (the one Tantivy writer; batch commits)
//!        │ ◄── Indexed (after commit)
//!        │ ────── Release ───► Intake
//!     Scheduler ◄── failures; ──► Catalog (retry_at | failed), timers ──► Intake.Wake
//!  PipelineSupervisor: spawns, links and restarts all of the above.
//! ```
//!
//! Reads (documents, text, search, status) go straight to SQLite read
//! connections and the Tantivy reader, never through the actors.

pub mod catalog;
pub mod classify;
pub mod config;
pub mod counters;
pub mod enrich;
pub mod extract;
pub mod indexer;
pub mod intake;
pub mod llm;
pub mod model;
pub mod pipeline;
pub mod scheduler;
pub mod store;
pub mod trainer;
pub mod types;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use serde::Serialize;
use tokio::sync::watch;

pub use config::EngineConfig;
use counters::{ActorSnapshot, Counters};
pub use model::{Document, ErrorInfo, NewDocument, Origin, Registered, Scope, Stage, UploadExtras};
use pipeline::{current_routes, PipelineSupervisor, Routes, RoutesRx, Shared, SupervisorMsg};
use store::blobs::{Blobs, Upload};
use store::db::{self, ListFilter, ReadPool};
pub use store::db::{Event, TokenRow};
use store::index::{QueryError, SearchIndex};
use store::meta;

/// A running pipeline. Cheap to clone; every clone drives the same engine.
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

struct Inner {
    config: EngineConfig,
    db: ReadPool,
    blobs: Blobs,
    index: SearchIndex,
    counters: Arc<Counters>,
    routes: RoutesRx,
    supervisor: ActorRef<SupervisorMsg>,
    ocr: Arc<extract::ocr::Ocr>,
    model: trainer::ModelSlot,
    llm: Option<Arc<llm::Llm>>,
    types: types::TypesSlot,
    /// One change of the types at a time (write, rebuild, swap).
    types_lock: tokio::sync::Mutex<()>,
}

/// A document type as `GET /api/v1/types` shows it.
#[derive(Debug, Serialize)]
pub struct TypeInfo {
    #[serde(flatten)]
    pub def: config::TypeConfig,
    /// "config" (from config.toml) or "api".
    pub origin: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum TypeError {
    #[error("{0}")]
    Invalid(String),
    #[error("there is no document type {0:?}")]
    NotFound(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// What `GET /api/v1/classifier` reports about the learned classifier.
#[derive(Debug, Serialize)]
pub struct ClassifierInfo {
    /// "naive_bayes" once trained; null before the first correction.
    pub model: Option<&'static str>,
    pub trained_at: Option<String>,
    /// Documents learned from (those whose type a user set), per type.
    pub labels: BTreeMap<String, u32>,
    pub samples: u32,
    /// Accuracy in stratified cross-validation on those documents (null with
    /// fewer than two documents of some type).
    pub accuracy: Option<f32>,
    pub review_threshold: f32,
}

/// A document's original, as it streams out of SQLite or the blob store.
pub type Original =
    futures::stream::BoxStream<'static, std::result::Result<Bytes, object_store::Error>>;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{0}")]
    Query(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[derive(Debug, Serialize)]
pub struct SearchResults {
    pub total: u64,
    pub hits: Vec<SearchHit>,
}

#[derive(Debug, Serialize)]
pub struct SearchHit {
    pub id: String,
    pub title: String,
    pub doc_type: Option<String>,
    pub score: f32,
    pub snippet: String,
}

#[derive(Debug, Serialize)]
pub struct StageStatus {
    pub documents: u64,
    pub in_flight: u64,
    pub processed: u64,
    pub failed: u64,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub stages: BTreeMap<&'static str, StageStatus>,
    pub actors: Vec<ActorSnapshot>,
    pub in_flight: u64,
    pub max_in_flight: usize,
    pub commits: Commits,
    pub retries_scheduled: u64,
    pub parked: u64,
    pub leases_expired: u64,
    pub index_docs: u64,
    /// Documents whose scanned pages wait for OCR.
    pub needs_ocr: u64,
    pub ocr: extract::ocr::OcrStatus,
    /// Documents typed and enriched without the LLM while it was down.
    pub needs_llm: u64,
    pub llm: llm::LlmStatus,
    /// Documents typed by the classifier below `review_threshold`.
    pub needs_review: u64,
}

#[derive(Debug, Serialize)]
pub struct Commits {
    pub catalog: u64,
    pub index: u64,
}

pub enum RetryOutcome {
    Requeued(Stage),
    NotFound,
    NotFailed(Stage),
}

const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a request waits for a restarting actor before giving up.
const RESTART_WAIT: Duration = Duration::from_secs(30);

/// An actor the request needs is being restarted, or died while holding the
/// request: the outcome is unknown, and trying again is safe (uploads are
/// deduplicated, the other operations are idempotent).
#[derive(Debug, thiserror::Error)]
#[error("a pipeline component failed while handling the request, or is restarting; the outcome is unknown, and trying again is safe")]
pub struct Unavailable;

impl Pipeline {
    /// Opens (or creates) the data directory, recovers from any crash, and
    /// starts the actors. Documents left mid-pipeline resume on their own.
    pub async fn start(config: EngineConfig) -> Result<Pipeline> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("data directory {} is not usable", dir.display()))?;
        let probe = dir.join(".write-probe");
        std::fs::write(&probe, b"ok")
            .with_context(|| format!("data directory {} is not writable", dir.display()))?;
        let _ = std::fs::remove_file(&probe);

        let db_path = db::db_path(&dir);
        drop(db::open_writer(&db_path, &config.catalog.synchronous)?); // migrations
        let db = ReadPool::new(db_path);
        let blobs = Blobs::local(
            &dir.join("blobs"),
            config.blobs.fsync,
            config.blobs.inline_max_bytes,
        )?;
        {
            let conn = rusqlite::Connection::open(db::db_path(&dir))?;
            let (promoted, deleted) = blobs.sweep_incoming(|id| db::exists_id(&conn, id)).await?;
            if promoted + deleted > 0 {
                tracing::info!(promoted, deleted, "recovered interrupted uploads");
            }
        }
        let (index, rebuilt) = SearchIndex::open_or_rebuild(&dir.join("index"))?;
        if rebuilt {
            let conn = db::open_writer(&db::db_path(&dir), &config.catalog.synchronous)?;
            let n = db::requeue_indexed(&conn)?;
            tracing::warn!(
                documents = n,
                "the search index was written by another version; rebuilding it from the stored text"
            );
        }
        // Scratch copies (of PDFs for OCR) left by a crash are of no use.
        let scratch = dir.join("tmp");
        let _ = std::fs::remove_dir_all(&scratch);
        let ocr = Arc::new(extract::ocr::Ocr::probe(&config.pipeline.ocr, scratch).await);
        let model: trainer::ModelSlot = Arc::new(std::sync::RwLock::new(
            db.run(trainer::load).await?.map(Arc::new),
        ));
        let llm = llm::Llm::new(&config.ollama)?.map(Arc::new);
        let overlays = db.run(db::read_type_overlays).await?;
        let types: types::TypesSlot = Arc::new(std::sync::RwLock::new(Arc::new(
            types::Types::build(&config.types, &overlays)?,
        )));
        let counters = Arc::new(Counters::default());
        let (routes_tx, routes_rx) = watch::channel::<Option<Routes>>(None);
        let shared = Arc::new(Shared {
            config: config.clone(),
            db: db.clone(),
            blobs: blobs.clone(),
            index: index.clone(),
            counters: counters.clone(),
            routes_tx,
            ocr: ocr.clone(),
            model: model.clone(),
            llm: llm.clone(),
            types: types.clone(),
        });
        let (supervisor, _) = Actor::spawn(None, PipelineSupervisor, shared)
            .await
            .map_err(|e| anyhow!("failed to start the pipeline: {e}"))?;
        let p = Pipeline {
            inner: Arc::new(Inner {
                config,
                db,
                blobs,
                index,
                counters,
                routes: routes_rx,
                supervisor,
                ocr,
                model,
                llm,
                types,
                types_lock: tokio::sync::Mutex::new(()),
            }),
        };
        for id in p.inner.db.run(db::deleting_ids).await? {
            p.finish_delete(&id, &Origin::default()).await?;
        }
        Ok(p)
    }

    fn routes(&self) -> Result<Routes> {
        current_routes(&self.inner.routes).map_err(|e| anyhow!("{e}"))
    }

    /// Calls an actor and waits for its answer. A message that could not be
    /// delivered (the actor had died and is being restarted) is sent once more
    /// to its successor: nothing was processed, so that is safe. An actor that
    /// dies holding the message gives [`Unavailable`].
    async fn ask<M, T>(
        &self,
        pick: impl Fn(&Routes) -> ActorRef<M>,
        make: impl Fn(catalog::Reply<T>) -> M,
    ) -> Result<T>
    where
        M: ractor::Message,
        T: Send + 'static,
    {
        for attempt in 0..2 {
            let actor = pick(&self.routes()?);
            match actor.call(&make, Some(CALL_TIMEOUT)).await {
                Ok(CallResult::Success(Ok(v))) => return Ok(v),
                Ok(CallResult::Success(Err(e))) => return Err(anyhow!(e)),
                Ok(CallResult::Timeout) => bail!(
                    "the pipeline did not answer in {} s",
                    CALL_TIMEOUT.as_secs()
                ),
                Ok(CallResult::SenderError) => return Err(Unavailable.into()),
                Err(_not_delivered) if attempt == 0 => {
                    self.wait_for_successor(actor.get_id()).await
                }
                Err(_) => break,
            }
        }
        Err(Unavailable.into())
    }

    /// Waits until the supervisor has published a replacement for `dead`.
    async fn wait_for_successor(&self, dead: ractor::ActorId) {
        let mut rx = self.inner.routes.clone();
        let replaced = |r: &Option<Routes>| {
            r.as_ref().is_some_and(|r| {
                ![
                    r.catalog.get_id(),
                    r.intake.get_id(),
                    r.scheduler.get_id(),
                    r.indexer.get_id(),
                ]
                .contains(&dead)
            })
        };
        let _ = tokio::time::timeout(RESTART_WAIT, rx.wait_for(replaced)).await;
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Starts streaming a new original into the blob store. Returns the id the
    /// document will have if it is not a duplicate.
    pub fn begin_upload(&self) -> (String, Upload) {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let up = self.inner.blobs.begin(&id);
        (id, up)
    }

    /// Drops a staged upload that will not be registered.
    pub async fn discard_upload(&self, id: &str) {
        self.inner.blobs.discard(id).await;
    }

    /// Registers staged uploads in one transaction. Returns after the rows are
    /// committed and the blobs moved into place: the documents are durable.
    /// Duplicates come back as the first document, and their bytes are dropped.
    pub async fn register(
        &self,
        docs: Vec<NewDocument>,
        origin: &Origin,
    ) -> Result<Vec<Registered>> {
        // (id, staged in the blob store); inline originals travel with their row.
        let staged: Vec<(String, bool)> = docs
            .iter()
            .map(|d| (d.id.clone(), d.inline.is_none()))
            .collect();
        let out = match self
            .ask(
                |r| r.catalog.clone(),
                |reply| catalog::CatalogMsg::Register {
                    docs: docs.clone(),
                    origin: origin.clone(),
                    reply,
                },
            )
            .await
        {
            Ok(out) => out,
            Err(e) => {
                // A staged blob may only go when its row cannot appear any
                // more: the Catalog died with the request (Unavailable) and
                // did not commit it. After a timeout the request may still be
                // committed, so the blob stays; the boot sweep decides then.
                if !e.is::<Unavailable>() {
                    return Err(e);
                }
                for (id, _) in staged.iter().filter(|(_, in_store)| *in_store) {
                    if !self
                        .inner
                        .db
                        .run({
                            let id = id.clone();
                            move |c| db::exists_id(c, &id)
                        })
                        .await
                        .unwrap_or(true)
                    {
                        self.inner.blobs.discard(id).await;
                    }
                }
                return Err(e);
            }
        };
        let mut out = out;
        for ((id, in_store), r) in staged.iter().zip(out.iter_mut()) {
            if r.duplicate_of.as_deref() == Some(id.as_str()) {
                // A registration sent again after a restart finds its own
                // committed row: that is this upload, not a duplicate.
                r.duplicate_of = None;
            }
            if !in_store {
                continue;
            }
            if r.duplicate_of.is_some() {
                self.inner.blobs.discard(id).await;
            } else if let Err(e) = self.inner.blobs.promote(id).await {
                // The row and the bytes are durable; the next start finishes the move.
                tracing::error!(doc_id = %id, error = %format!("{e:#}"), "blob not moved into place");
            }
        }
        Ok(out)
    }

    pub async fn get(&self, id: &str, scope: &Scope) -> Result<Option<Document>> {
        let (id, scope) = (id.to_string(), scope.clone());
        self.inner
            .db
            .run(move |c| db::get_document(c, &id, &scope))
            .await
    }

    pub async fn text(&self, id: &str, scope: &Scope) -> Result<Option<String>> {
        let (id, scope) = (id.to_string(), scope.clone());
        self.inner
            .db
            .run(move |c| db::get_text(c, &id, &scope))
            .await
    }

    pub async fn events(&self, id: &str, scope: &Scope) -> Result<Vec<Event>> {
        let (id, scope) = (id.to_string(), scope.clone());
        self.inner
            .db
            .run(move |c| db::events_for(c, &id, &scope))
            .await
    }

    /// The audit trail (actions taken with a token), oldest first.
    pub async fn audit(
        &self,
        workspace: Option<String>,
        since_ms: Option<i64>,
        after_seq: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        self.inner
            .db
            .run(move |c| db::audit_events(c, workspace.as_deref(), since_ms, after_seq, limit))
            .await
    }

    pub async fn list(&self, filter: ListFilter) -> Result<(Vec<Document>, Option<i64>)> {
        self.inner
            .db
            .run(move |c| db::list_documents(c, &filter))
            .await
    }

    /// The document and its original's bytes as a stream, if it is in the scope.
    pub async fn content(&self, id: &str, scope: &Scope) -> Result<Option<(Document, Original)>> {
        use futures::StreamExt;
        let Some(doc) = self.get(id, scope).await? else {
            return Ok(None);
        };
        let owned = id.to_string();
        if let Some(bytes) = self
            .inner
            .db
            .run(move |c| db::get_inline_original(c, &owned))
            .await?
        {
            let stream = futures::stream::once(async move { Ok(Bytes::from(bytes)) }).boxed();
            return Ok(Some((doc, stream)));
        }
        Ok(Some((doc, self.inner.blobs.stream(id).await?)))
    }

    /// Documents of the scope most like this one, by their text.
    pub async fn similar(
        &self,
        id: &str,
        limit: usize,
        scope: &Scope,
    ) -> Result<Option<Vec<SearchHit>>> {
        let Some(text) = self.text(id, scope).await? else {
            return Ok(self.get(id, scope).await?.map(|_| Vec::new()));
        };
        let index = self.inner.index.clone();
        let (id, scope) = (id.to_string(), scope.clone());
        let hits = self
            .inner
            .db
            .run(move |conn| {
                let mut hits = Vec::new();
                for (hit_id, score) in index.similar(&text, &id, limit, &scope)? {
                    if let Some(doc) = db::get_document(conn, &hit_id, &scope)? {
                        hits.push(SearchHit {
                            title: doc.title.unwrap_or(doc.filename),
                            doc_type: doc.doc_type,
                            id: hit_id,
                            score,
                            snippet: String::new(),
                        });
                    }
                }
                Ok(hits)
            })
            .await?;
        Ok(Some(hits))
    }

    /// Deletes a document: row marked, index entry removed, blob removed, row
    /// removed. An interrupted delete is finished at the next start.
    pub async fn delete(&self, id: &str, scope: &Scope, origin: &Origin) -> Result<bool> {
        let id_owned = id.to_string();
        if !self
            .ask(
                |r| r.catalog.clone(),
                |reply| catalog::CatalogMsg::MarkDeleting {
                    id: id_owned.clone(),
                    scope: scope.clone(),
                    origin: origin.clone(),
                    reply,
                },
            )
            .await?
        {
            return Ok(false);
        }
        self.finish_delete(id, origin).await?;
        Ok(true)
    }

    async fn finish_delete(&self, id: &str, origin: &Origin) -> Result<()> {
        let owned = id.to_string();
        self.ask(
            |r| r.indexer.clone(),
            |reply| indexer::IndexerMsg::Delete {
                id: owned.clone(),
                reply,
            },
        )
        .await?;
        self.inner.blobs.delete(id).await?;
        let owned = id.to_string();
        self.ask(
            |r| r.catalog.clone(),
            |reply| catalog::CatalogMsg::Purge {
                id: owned.clone(),
                origin: origin.clone(),
                reply,
            },
        )
        .await?;
        Ok(())
    }

    /// Re-admits a failed document of the scope at the stage it failed in.
    pub async fn retry(&self, id: &str, scope: &Scope, origin: &Origin) -> Result<RetryOutcome> {
        let owned = id.to_string();
        Ok(
            match self
                .ask(
                    |r| r.catalog.clone(),
                    |reply| catalog::CatalogMsg::Retry {
                        id: owned.clone(),
                        scope: scope.clone(),
                        origin: origin.clone(),
                        reply,
                    },
                )
                .await?
            {
                db::RetryResult::Requeued(stage) => RetryOutcome::Requeued(stage),
                db::RetryResult::NotFound => RetryOutcome::NotFound,
                db::RetryResult::NotFailed(stage) => RetryOutcome::NotFailed(stage),
            },
        )
    }

    /// The learned classifier in force.
    pub fn classifier(&self) -> ClassifierInfo {
        let trained = self
            .inner
            .model
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let review_threshold = self.inner.config.pipeline.classify.review_threshold;
        match trained {
            Some(t) => ClassifierInfo {
                model: Some("naive_bayes"),
                trained_at: Some(model::format_ms(t.trained_at)),
                labels: t
                    .model
                    .labels
                    .iter()
                    .cloned()
                    .zip(t.model.counts.iter().copied())
                    .collect(),
                samples: t.model.counts.iter().sum(),
                accuracy: t.model.accuracy,
                review_threshold,
            },
            None => ClassifierInfo {
                model: None,
                trained_at: None,
                labels: BTreeMap::new(),
                samples: 0,
                accuracy: None,
                review_threshold,
            },
        }
    }

    pub fn ocr_available(&self) -> bool {
        self.inner.ocr.available()
    }

    /// Sends the scope's indexed documents carrying `flag` back to the stage
    /// that redoes that work: read again (`needs_ocr`), or typed and enriched
    /// again (`needs_llm`, `needs_review`; values users set stay). Returns
    /// their ids.
    pub async fn reprocess(
        &self,
        flag: db::Flag,
        scope: &Scope,
        origin: &Origin,
    ) -> Result<Vec<String>> {
        self.ask(
            |r| r.catalog.clone(),
            |reply| catalog::CatalogMsg::Reprocess {
                flag,
                scope: scope.clone(),
                origin: origin.clone(),
                reply,
            },
        )
        .await
    }

    /// The document types in force.
    pub fn types(&self) -> Vec<TypeInfo> {
        let t = types::current(&self.inner.types);
        t.list
            .iter()
            .map(|d| TypeInfo {
                def: d.clone(),
                origin: t.origin.get(&d.name).copied().unwrap_or("config"),
            })
            .collect()
    }

    /// The kind of a field name, for checking a value a user sets.
    pub fn field_kind(&self, name: &str) -> enrich::fields::Kind {
        types::current(&self.inner.types).field_kind(name)
    }

    /// Creates or replaces a type (true: it is new); or deletes one
    /// (`def` None). Stored in the catalog, then in force for the next
    /// documents.
    pub async fn put_type(
        &self,
        name: &str,
        def: Option<config::TypeConfig>,
        origin: &Origin,
    ) -> std::result::Result<bool, TypeError> {
        let _one = self.inner.types_lock.lock().await;
        let existed = types::current(&self.inner.types).get(name).is_some();
        let json = match &def {
            Some(d) => {
                types::check(d).map_err(TypeError::Invalid)?;
                Some(serde_json::to_string(d).map_err(anyhow::Error::from)?)
            }
            None if !existed => return Err(TypeError::NotFound(name.to_string())),
            None => None,
        };
        let (name2, origin2) = (name.to_string(), origin.clone());
        self.ask(
            |r| r.catalog.clone(),
            |reply| catalog::CatalogMsg::PutType {
                name: name2.clone(),
                definition: json.clone(),
                origin: origin2.clone(),
                reply,
            },
        )
        .await?;
        let overlays = self.inner.db.run(db::read_type_overlays).await?;
        let built = types::Types::build(&self.inner.config.types, &overlays)?;
        *self.inner.types.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(built);
        Ok(!existed)
    }

    pub fn llm_configured(&self) -> bool {
        self.inner.llm.is_some()
    }

    /// Tags or document types of the scope, by name; and how many in all.
    pub async fn labels(
        &self,
        kind: meta::LabelKind,
        scope: &Scope,
        offset: usize,
        limit: usize,
    ) -> Result<(u64, Vec<meta::Label>)> {
        let scope = scope.clone();
        self.inner
            .db
            .run(move |c| meta::list_labels(c, kind, &scope, offset, limit))
            .await
    }

    pub async fn label(
        &self,
        kind: meta::LabelKind,
        id: i64,
        scope: &Scope,
    ) -> Result<Option<meta::Label>> {
        let scope = scope.clone();
        self.inner
            .db
            .run(move |c| meta::get_label(c, kind, id, &scope))
            .await
    }

    /// Creates a tag or document type in `workspace` (or finds the one of
    /// that name): its id, and whether it is new.
    pub async fn create_label(
        &self,
        kind: meta::LabelKind,
        workspace: &str,
        name: &str,
        color: Option<String>,
        origin: &Origin,
    ) -> Result<(i64, bool)> {
        self.ask(
            |r| r.catalog.clone(),
            |reply| catalog::CatalogMsg::CreateLabel {
                kind,
                workspace: workspace.to_string(),
                name: name.to_string(),
                color: color.clone(),
                origin: origin.clone(),
                reply,
            },
        )
        .await
    }

    /// Changes a document's metadata (see [`meta::Edit`]); an indexed
    /// document is indexed again.
    pub async fn edit(
        &self,
        id: &str,
        scope: &Scope,
        edit: meta::Edit,
        origin: &Origin,
    ) -> Result<meta::EditResult> {
        self.ask(
            |r| r.catalog.clone(),
            |reply| catalog::CatalogMsg::Edit {
                id: id.to_string(),
                scope: scope.clone(),
                edit: edit.clone(),
                origin: origin.clone(),
                reply,
            },
        )
        .await
    }

    /// A document's attachments `(id, filename)` and the documents it is
    /// attached to, within the scope.
    pub async fn links(&self, id: &str, scope: &Scope) -> Result<meta::Links> {
        let (id, scope) = (id.to_string(), scope.clone());
        self.inner
            .db
            .run(move |c| meta::links(c, &id, &scope))
            .await
    }

    /// Deletes a document and the attachments that no other document holds.
    /// Returns the ids deleted, the document's first; empty if it is not in
    /// the scope.
    pub async fn delete_with_attachments(
        &self,
        id: &str,
        scope: &Scope,
        origin: &Origin,
    ) -> Result<Vec<String>> {
        if self.get(id, scope).await?.is_none() {
            return Ok(Vec::new());
        }
        let owned = id.to_string();
        let children = self
            .inner
            .db
            .run(move |c| meta::own_attachments(c, &owned))
            .await?;
        let mut deleted = Vec::new();
        if self.delete(id, scope, origin).await? {
            deleted.push(id.to_string());
        }
        for child in children {
            // Attachments of attachments go too (their own, again).
            for d in Box::pin(self.delete_with_attachments(&child, scope, origin)).await? {
                deleted.push(d);
            }
        }
        Ok(deleted)
    }

    /// Upload tasks of the scope, newest first (one, given its id).
    pub async fn tasks(
        &self,
        task_id: Option<String>,
        scope: &Scope,
        limit: usize,
    ) -> Result<Vec<meta::TaskView>> {
        let scope = scope.clone();
        self.inner
            .db
            .run(move |c| meta::tasks(c, task_id.as_deref(), &scope, limit))
            .await
    }

    /// A document by number (its `seq`), with its tags, type id, date, ASN.
    pub async fn get_by_number(
        &self,
        number: i64,
        scope: &Scope,
    ) -> Result<Option<(Document, meta::DocExtras)>> {
        let scope = scope.clone();
        self.inner
            .db
            .run(move |c| {
                let Some(d) = meta::get_by_seq(c, number, &scope)? else {
                    return Ok(None);
                };
                let x = meta::extras_of(c, &d)?;
                Ok(Some((d, x)))
            })
            .await
    }

    /// Documents by id, in that order, with their extras (ids outside the
    /// scope are left out).
    pub async fn get_many(
        &self,
        ids: Vec<String>,
        scope: &Scope,
    ) -> Result<Vec<(Document, meta::DocExtras)>> {
        let scope = scope.clone();
        self.inner
            .db
            .run(move |c| {
                let mut out = Vec::with_capacity(ids.len());
                for id in &ids {
                    if let Some(d) = db::get_document(c, id, &scope)? {
                        let x = meta::extras_of(c, &d)?;
                        out.push((d, x));
                    }
                }
                Ok(out)
            })
            .await
    }

    /// A page of the scope's documents, newest first, with extras; and the total.
    pub async fn page(
        &self,
        scope: &Scope,
        offset: usize,
        limit: usize,
    ) -> Result<(u64, Vec<(Document, meta::DocExtras)>)> {
        let scope = scope.clone();
        self.inner
            .db
            .run(move |c| {
                let (total, docs) = meta::page_documents(c, &scope, offset, limit)?;
                let mut out = Vec::with_capacity(docs.len());
                for d in docs {
                    let x = meta::extras_of(c, &d)?;
                    out.push((d, x));
                }
                Ok((total, out))
            })
            .await
    }

    /// Every token ever created (revoked ones too), without secrets.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>> {
        self.inner.db.run(db::list_tokens).await
    }

    /// Stores a token (only its hash is in `token`), recording who made it.
    pub async fn create_token(&self, token: TokenRow, origin: &Origin) -> Result<()> {
        self.ask(
            |r| r.catalog.clone(),
            |reply| catalog::CatalogMsg::CreateToken {
                token: token.clone(),
                origin: origin.clone(),
                reply,
            },
        )
        .await
    }

    /// Revokes a token; false if there is none with this id or it is revoked.
    pub async fn revoke_token(&self, id: &str, origin: &Origin) -> Result<bool> {
        let owned = id.to_string();
        self.ask(
            |r| r.catalog.clone(),
            |reply| catalog::CatalogMsg::RevokeToken {
                id: owned.clone(),
                origin: origin.clone(),
                reply,
            },
        )
        .await
    }

    pub async fn search(
        &self,
        q: &str,
        limit: usize,
        offset: usize,
        scope: &Scope,
    ) -> Result<SearchResults, SearchError> {
        let index = self.inner.index.clone();
        let q = q.to_string();
        let scope = scope.clone();
        let r = self
            .inner
            .db
            .run(move |conn| {
                let raw = match index.search(&q, limit, offset, &scope) {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(e)),
                };
                let mut hits = Vec::with_capacity(raw.hits.len());
                for (id, score) in raw.hits {
                    let Some(doc) = db::get_document(conn, &id, &scope)? else {
                        continue;
                    };
                    let text = db::get_text(conn, &id, &scope)?.unwrap_or_default();
                    hits.push(SearchHit {
                        title: doc.title.unwrap_or(doc.filename),
                        doc_type: doc.doc_type,
                        id,
                        score,
                        snippet: raw.snippets.snippet(&text).to_html(),
                    });
                }
                Ok(Ok(SearchResults {
                    total: raw.total,
                    hits,
                }))
            })
            .await?;
        r.map_err(|QueryError(m)| SearchError::Query(m))
    }

    /// Document counts per stage in the scope. The pipeline's own figures
    /// (actors, counters, commits) span every workspace, so they are only
    /// given for [`Scope::All`]; other scopes see zeros there.
    pub async fn status(&self, scope: &Scope) -> Result<Status> {
        let owned = scope.clone();
        let counts: BTreeMap<Stage, u64> = self
            .inner
            .db
            .run(move |c| db::stage_counts(c, &owned))
            .await?
            .into_iter()
            .collect();
        let owned = scope.clone();
        let [needs_ocr, needs_llm, needs_review] = self
            .inner
            .db
            .run(move |c| {
                let count = |f| db::count_flagged(c, f, &owned);
                Ok([
                    count(db::Flag::Ocr)?,
                    count(db::Flag::Llm)?,
                    count(db::Flag::Review)?,
                ])
            })
            .await?;
        let c = &self.inner.counters;
        let n = |s: Stage| counts.get(&s).copied().unwrap_or(0);
        let busy = |a: &counters::ActorCounters| {
            a.num_busy.load(Relaxed) + a.num_queued.load(Relaxed).max(0) as u64
        };
        let mut stages = BTreeMap::new();
        // Each stage reports the actor that takes documents out of it.
        let pairs = [
            (Stage::Queued, Some(&c.extract)),
            (Stage::Extracted, Some(&c.classify)),
            (Stage::Classified, Some(&c.enrich)),
            (Stage::Enriched, Some(&c.indexer)),
            (Stage::Indexed, None),
            (Stage::Failed, None),
        ];
        for (stage, actor) in pairs {
            let (in_flight, processed, failed) = match actor {
                Some(a) => (
                    busy(a),
                    a.num_processed.load(Relaxed),
                    a.num_failed.load(Relaxed),
                ),
                None if stage == Stage::Failed => (0, c.num_parked.load(Relaxed), 0),
                None => (0, c.indexer.num_processed.load(Relaxed), 0),
            };
            stages.insert(
                stage.as_str(),
                StageStatus {
                    documents: n(stage),
                    in_flight,
                    processed,
                    failed,
                },
            );
        }
        let mut status = Status {
            stages,
            actors: c.actors(),
            in_flight: c.num_in_flight.load(Relaxed),
            max_in_flight: self.inner.config.pipeline.max_in_flight,
            commits: Commits {
                catalog: c.num_commits_catalog.load(Relaxed),
                index: c.num_commits_index.load(Relaxed),
            },
            retries_scheduled: c.num_retries_scheduled.load(Relaxed),
            parked: c.num_parked.load(Relaxed),
            leases_expired: c.num_leases_expired.load(Relaxed),
            index_docs: self.inner.index.num_docs(),
            needs_ocr,
            ocr: self.inner.ocr.status().clone(),
            needs_llm,
            needs_review,
            llm: match &self.inner.llm {
                Some(l) => l.status(),
                None => llm::LlmStatus {
                    configured: false,
                    model: None,
                    endpoints: Vec::new(),
                },
            },
        };
        if *scope != Scope::All {
            for s in status.stages.values_mut() {
                (s.in_flight, s.processed, s.failed) = (0, 0, 0);
            }
            status.actors.clear();
            status.in_flight = 0;
            status.commits = Commits {
                catalog: 0,
                index: 0,
            };
            (
                status.retries_scheduled,
                status.parked,
                status.leases_expired,
            ) = (0, 0, 0);
            status.index_docs = 0;
        }
        Ok(status)
    }

    /// Checks that SQLite, the index and the blob store answer.
    pub async fn ready(&self) -> Result<()> {
        self.inner
            .db
            .run(|c| {
                Ok(
                    c.query_row("SELECT COUNT(*) FROM documents WHERE 0", [], |r| {
                        r.get::<_, i64>(0)
                    })?,
                )
            })
            .await
            .context("SQLite is not usable")?;
        self.inner.index.reader.searcher();
        self.inner
            .blobs
            .probe()
            .await
            .context("the blob store is not usable")?;
        self.routes()?;
        Ok(())
    }

    /// Stops admitting, lets what is in flight finish (up to `drain`), commits
    /// the index and the catalog, and stops every actor.
    pub async fn shutdown(&self, drain: Duration) -> Result<()> {
        let routes = self.routes()?;
        let drained = routes
            .intake
            .call(intake::IntakeMsg::Drain, Some(drain))
            .await;
        if !matches!(drained, Ok(CallResult::Success(()))) {
            tracing::warn!(
                in_flight = self.inner.counters.num_in_flight.load(Relaxed),
                "drain timed out; the rest resumes at next start"
            );
        }
        let _ = self
            .ask(|r| r.indexer.clone(), indexer::IndexerMsg::CommitNow)
            .await;
        let _ = self
            .ask(|r| r.catalog.clone(), catalog::CatalogMsg::Sync)
            .await;
        let _ = self
            .inner
            .supervisor
            .call(SupervisorMsg::Shutdown, Some(Duration::from_secs(60)))
            .await;
        self.inner
            .supervisor
            .stop_and_wait(None, Some(Duration::from_secs(10)))
            .await
            .map_err(|e| anyhow!("supervisor did not stop: {e}"))?;
        Ok(())
    }
}

/// Entry point of the parser mode (see [`extract::sandbox`]).
pub fn parser_main(args: &[String]) -> i32 {
    extract::sandbox::child_main(args)
}
