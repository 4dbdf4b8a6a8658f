//! The engine's commands: [`Pipeline`] starts the actors, sends them what
//! users ask for (uploads, edits, deletes, retries, reprocessing, types,
//! tokens), answers readiness and shuts down. Reads go through
//! [`Pipeline::reader`]. Every command that an actor answers comes back as
//! a typed [`EngineError`] when it fails.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use tokio::sync::watch;

use crate::analyze::Analyzer;
use crate::classifier;
use crate::config::{EngineConfig, TypeConfig};
use crate::counters::Counters;
use crate::embed::Embedding;
use crate::errors::{Code, EngineError};
use crate::extract::ocr::Ocr;
use crate::fields::templates::{Template, TemplatesSlot};
use crate::llm::Llm;
use crate::model::{Kind, NewDocument, NewNote, Origin, Registered, RetryOutcome, Scope};
use crate::notifier::workflow::{Workflow, WorkflowDef};
use crate::pipeline::{PipelineSupervisor, PoolSizes, Shared, SupervisorMsg};
use crate::reader::Reader;
use crate::routes::{
    current_routes, CatalogMsg, IndexerMsg, IntakeMsg, NotifierMsg, Reply, Routes, RoutesRx,
};
use crate::store::blobs::{Blobs, Upload};
use crate::store::classifier::read_type_overlays;
use crate::store::documents::{deleting_ids, exists_id};
use crate::store::index::SearchIndex;
use crate::store::links::own_attachments;
use crate::store::pool::ReadPool;
use crate::store::queue::requeue_indexed;
use crate::store::schema::{db_path, open_writer};
use crate::store::templates::{read_templates, TemplateRow};
use crate::store::webhooks::WebhookRow;
use crate::store::workflows::{PutOutcome, WorkflowRow};
use crate::store::{Edit, EditResult, Flag, LabelKind, TokenRow};
use crate::types::{self, Types};

/// A running pipeline. Cheap to clone; every clone drives the same engine.
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

struct Inner {
    config: EngineConfig,
    reader: Reader,
    counters: Arc<Counters>,
    routes: RoutesRx,
    supervisor: ActorRef<SupervisorMsg>,
    /// One change of the types at a time (write, rebuild, swap).
    types_lock: tokio::sync::Mutex<()>,
    /// Reads of the templates into their slot, one at a time (so that an
    /// older read never lands after a newer one).
    templates_lock: tokio::sync::Mutex<()>,
    /// The worker pools' sizes in force.
    pools: Arc<PoolSizes>,
    /// One resize at a time.
    pools_lock: tokio::sync::Mutex<()>,
}

/// Worker pool sizes asked for (`PUT /api/v1/admin/pools`, `SIGHUP`);
/// None leaves a pool as it is.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolsRequest {
    pub extract: Option<usize>,
    pub classify: Option<usize>,
    pub enrich: Option<usize>,
}

/// The sizes in force.
#[derive(Clone, Debug, serde::Serialize, PartialEq, Eq)]
pub struct PoolsInForce {
    pub extract: usize,
    pub classify: usize,
    pub enrich: usize,
}

/// The most workers a pool may have.
pub const MAX_POOL_WORKERS: usize = 64;

/// A webhook to make (`POST /api/v1/webhooks`).
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    pub url: String,
    /// Event kinds: `document.indexed`, `document.failed`, … (or the bare
    /// stage names), or `*` for all of them.
    pub events: Vec<String>,
    /// Made when not given (and answered once).
    #[serde(default)]
    pub secret: Option<String>,
    pub workspace: String,
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

const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a request waits for a restarting actor before giving up.
const RESTART_WAIT: Duration = Duration::from_secs(30);

impl Pipeline {
    /// Opens (or creates) the data directory, recovers from any crash, and
    /// starts the actors. Documents left mid-pipeline resume on their own.
    pub async fn start(config: EngineConfig) -> Result<Pipeline> {
        #[cfg(feature = "failpoints")]
        crate::faults::setup();
        crate::memory::limit_arenas();
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("data directory {} is not usable", dir.display()))?;
        let probe = dir.join(".write-probe");
        std::fs::write(&probe, b"ok")
            .with_context(|| format!("data directory {} is not writable", dir.display()))?;
        let _ = std::fs::remove_file(&probe);

        let path = db_path(&dir);
        drop(open_writer(&path, &config.catalog.synchronous)?); // migrations
        let db = ReadPool::new(path.clone());
        let blobs = Blobs::open(&config.storage, &config.blobs, &dir)?;
        blobs
            .probe()
            .await
            .with_context(|| format!("the blob store ({}) does not answer", blobs.describe()))?;
        {
            let conn = rusqlite::Connection::open(&path)?;
            let (promoted, deleted) = blobs.sweep_incoming(|id| exists_id(&conn, id)).await?;
            if promoted + deleted > 0 {
                tracing::info!(promoted, deleted, "recovered interrupted uploads");
            }
        }
        // A rebuild of the index (written by another version, or asked
        // for by `docpipe reindex`) sends the rows back to `enriched`
        // first and empties the index after: a crash in between leaves
        // rows to index again, never a row `indexed` the index lacks.
        let index_dir = dir.join("index");
        if SearchIndex::outdated(&index_dir)? {
            let n = requeue_indexed(&open_writer(&path, &config.catalog.synchronous)?)?;
            tracing::warn!(
                documents = n,
                "the search index was written by another version; rebuilding it from the stored text"
            );
        }
        let (index, _) = SearchIndex::open_or_rebuild(&index_dir)?;
        if config.rebuild_index {
            // The index's writer lock first: no server works on it.
            let mut writer = index
                .index
                .writer_with_num_threads::<tantivy::TantivyDocument>(1, 15_000_000)
                .context("the search index is in use (is `docpipe serve` running on it?)")?;
            let n = requeue_indexed(&open_writer(&path, &config.catalog.synchronous)?)?;
            writer.delete_all_documents()?;
            writer.commit()?;
            drop(writer);
            index.reader.reload()?;
            tracing::info!(documents = n, "indexing every document again");
        }
        // Scratch copies (of PDFs for OCR) left by a crash are of no use.
        let scratch = dir.join("tmp");
        let _ = std::fs::remove_dir_all(&scratch);
        let ocr = Arc::new(Ocr::probe(&config.pipeline.ocr, scratch).await);
        let overlays = db.run(read_type_overlays).await?;
        let types: types::TypesSlot = Arc::new(std::sync::RwLock::new(Arc::new(Types::build(
            &config.types,
            &overlays,
        )?)));
        let llm = Llm::new(&config.ollama)?.map(Arc::new);
        let embedding = Arc::new(Embedding::open(&config.embed, &dir, llm.clone()));
        {
            // Before the Catalog starts: its writer is the only other.
            let conn = open_writer(&path, &config.catalog.synchronous)?;
            let id = embedding.embedder.as_ref().map(|e| e.id());
            crate::store::vectors::forget_other_embedders(&conn, id)?;
        }
        if let Some(e) = &embedding.embedder {
            let (id, vectors) = (e.id().to_string(), embedding.vectors.clone());
            let docs = db
                .run(move |c| crate::store::vectors::load_vectors(c, &id, &vectors))
                .await?;
            tracing::debug!(documents = docs, "loaded the stored vectors");
        }
        // The classifier reads documents' vectors from the built-in embedder
        // (a remote one would put a network call in every classification).
        let class_embedder = embedding
            .embedder
            .clone()
            .filter(|e| matches!(**e, crate::embed::Embedder::Builtin(_)));
        let class_id = class_embedder.as_ref().map(|e| e.id().to_string());
        let (models, mut stale) = db
            .run(move |c| classifier::load(c, class_id.as_deref()))
            .await?;
        for ws in db
            .run(crate::store::classifier::corrected_workspaces)
            .await?
        {
            if !models.contains_key(&ws) && !stale.contains(&ws) {
                stale.push(ws);
            }
        }
        let model: classifier::ModelSlot = Arc::new(std::sync::RwLock::new(models));
        let templates: TemplatesSlot = Default::default();
        load_templates(&db, &templates).await?;
        let counters = Arc::new(Counters::default());
        let (routes_tx, routes_rx) = watch::channel::<Option<Routes>>(None);
        let last_event: i64 = db
            .run(|c| Ok(c.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?))
            .await?;
        let (events_tx, events_rx) = watch::channel(last_event);
        let events_tx = Arc::new(events_tx);
        let analyzer = Arc::new(Analyzer {
            types: types.clone(),
            model: model.clone(),
            embedder: class_embedder,
            templates: templates.clone(),
            review_threshold: config.pipeline.classify.review_threshold,
            llm: llm.clone(),
        });
        let pools = Arc::new(PoolSizes::new(&config.pipeline));
        let shared = Arc::new(Shared {
            config: config.clone(),
            db: db.clone(),
            blobs: blobs.clone(),
            index: index.clone(),
            counters: counters.clone(),
            routes_tx,
            ocr: ocr.clone(),
            analyzer,
            embedding: embedding.clone(),
            events_tx,
            stale_models: stale,
            pools: pools.clone(),
        });
        let pools_in_force = pools;
        let (supervisor, _) = Actor::spawn(None, PipelineSupervisor, shared)
            .await
            .map_err(|e| anyhow!("failed to start the pipeline: {e}"))?;
        let reader = Reader {
            config: Arc::new(config.clone()),
            db,
            index,
            blobs,
            counters: counters.clone(),
            ocr,
            llm,
            types,
            model,
            templates,
            embedding,
            events: events_rx,
        };
        let p = Pipeline {
            inner: Arc::new(Inner {
                config,
                reader,
                counters,
                routes: routes_rx,
                supervisor,
                types_lock: tokio::sync::Mutex::new(()),
                templates_lock: tokio::sync::Mutex::new(()),
                pools: pools_in_force,
                pools_lock: tokio::sync::Mutex::new(()),
            }),
        };
        for id in p.inner.reader.db.run(deleting_ids).await? {
            p.finish_delete(&id, &Origin::default()).await?;
        }
        Ok(p)
    }

    pub(crate) fn routes(&self) -> Result<Routes> {
        current_routes(&self.inner.routes).map_err(|e| anyhow!("{e}"))
    }

    /// Calls an actor and waits for its answer. A message that could not be
    /// delivered (the actor had died and is being restarted) is sent once more
    /// to its successor: nothing was processed, so that is safe. An actor that
    /// dies holding the message gives `unavailable`.
    pub(crate) async fn ask<M, T>(
        &self,
        pick: impl Fn(&Routes) -> ActorRef<M>,
        make: impl Fn(Reply<T>) -> M,
    ) -> Result<T>
    where
        M: ractor::Message,
        T: Send + 'static,
    {
        for attempt in 0..2 {
            let actor = pick(&self.routes()?);
            match actor.call(&make, Some(CALL_TIMEOUT)).await {
                Ok(CallResult::Success(Ok(v))) => return Ok(v),
                Ok(CallResult::Success(Err(e))) => return Err(e.into()),
                // Not `unavailable`: the request may still be carried out
                // (an upload's staged blob must stay for it).
                Ok(CallResult::Timeout) => {
                    return Err(EngineError::new(
                        Code::Timeout,
                        format!(
                            "the pipeline did not answer in {} s; the outcome is unknown",
                            CALL_TIMEOUT.as_secs()
                        ),
                    )
                    .into())
                }
                Ok(CallResult::SenderError) => return Err(EngineError::unavailable().into()),
                Err(_not_delivered) if attempt == 0 => {
                    self.wait_for_successor(actor.get_id()).await
                }
                Err(_) => break,
            }
        }
        Err(EngineError::unavailable().into())
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

    /// The read side: documents, search, status and the rest.
    pub fn reader(&self) -> &Reader {
        &self.inner.reader
    }

    /// Starts streaming a new original into the blob store. Returns the id the
    /// document will have if it is not a duplicate.
    pub fn begin_upload(&self) -> (String, Upload) {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let up = self.inner.reader.blobs.begin(&id);
        (id, up)
    }

    /// Drops a staged upload that will not be registered.
    pub async fn discard_upload(&self, id: &str) {
        self.inner.reader.blobs.discard(id).await;
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
                |reply| CatalogMsg::Register {
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
                // more: the Catalog died with the request (unavailable) and
                // did not commit it. After a timeout the request may still be
                // committed, so the blob stays; the boot sweep decides then.
                if !e
                    .downcast_ref::<EngineError>()
                    .is_some_and(|e| e.code == Code::Unavailable)
                {
                    return Err(e);
                }
                for (id, _) in staged.iter().filter(|(_, in_store)| *in_store) {
                    if !self
                        .inner
                        .reader
                        .db
                        .run({
                            let id = id.clone();
                            move |c| exists_id(c, &id)
                        })
                        .await
                        .unwrap_or(true)
                    {
                        self.inner.reader.blobs.discard(id).await;
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
                self.inner.reader.blobs.discard(id).await;
            } else if let Err(e) = self.inner.reader.blobs.promote(id).await {
                // The row and the bytes are durable; the next start finishes the move.
                tracing::error!(doc_id = %id, error = %format!("{e:#}"), "blob not moved into place");
            }
        }
        Ok(out)
    }

    /// Deletes a document: row marked, index entry removed, blob removed, row
    /// removed. An interrupted delete is finished at the next start.
    pub async fn delete(&self, id: &str, scope: &Scope, origin: &Origin) -> Result<bool> {
        let id_owned = id.to_string();
        if !self
            .ask(
                |r| r.catalog.clone(),
                |reply| CatalogMsg::MarkDeleting {
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

    /// Removes a document from the index (committed before it answers).
    pub(crate) async fn unindex(&self, id: &str) -> Result<()> {
        let owned = id.to_string();
        self.ask(
            |r| r.indexer.clone(),
            |reply| IndexerMsg::Delete {
                id: owned.clone(),
                reply,
            },
        )
        .await
    }

    async fn finish_delete(&self, id: &str, origin: &Origin) -> Result<()> {
        self.unindex(id).await?;
        self.inner.reader.blobs.delete(id).await?;
        let owned = id.to_string();
        self.ask(
            |r| r.catalog.clone(),
            |reply| CatalogMsg::Purge {
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
        self.ask(
            |r| r.catalog.clone(),
            |reply| CatalogMsg::Retry {
                id: owned.clone(),
                scope: scope.clone(),
                origin: origin.clone(),
                reply,
            },
        )
        .await
    }

    /// Sends the scope's indexed documents carrying `flag` back to the stage
    /// that redoes that work: read again (`needs_ocr`), or typed and enriched
    /// again (`needs_llm`, `needs_review`; values users set stay). Returns
    /// their ids.
    pub async fn reprocess(
        &self,
        flag: Flag,
        scope: &Scope,
        origin: &Origin,
    ) -> Result<Vec<String>> {
        self.ask(
            |r| r.catalog.clone(),
            |reply| CatalogMsg::Reprocess {
                flag,
                scope: scope.clone(),
                origin: origin.clone(),
                reply,
            },
        )
        .await
    }

    /// Creates or replaces a type (true: it is new); or deletes one
    /// (`def` None). Stored in the catalog, then in force for the next
    /// documents.
    pub async fn put_type(
        &self,
        name: &str,
        def: Option<TypeConfig>,
        origin: &Origin,
    ) -> std::result::Result<bool, TypeError> {
        let _one = self.inner.types_lock.lock().await;
        let existed = types::current(&self.inner.reader.types).get(name).is_some();
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
            |reply| CatalogMsg::PutType {
                name: name2.clone(),
                definition: json.clone(),
                origin: origin2.clone(),
                reply,
            },
        )
        .await?;
        let overlays = self.inner.reader.db.run(read_type_overlays).await?;
        let built = Types::build(&self.inner.config.types, &overlays)?;
        *self
            .inner
            .reader
            .types
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(built);
        Ok(!existed)
    }

    /// Creates a tag or document type in `workspace` (or finds the one of
    /// that name): its id, and whether it is new.
    pub async fn create_label(
        &self,
        kind: LabelKind,
        workspace: &str,
        name: &str,
        color: Option<String>,
        origin: &Origin,
    ) -> Result<(i64, bool)> {
        self.ask(
            |r| r.catalog.clone(),
            |reply| CatalogMsg::CreateLabel {
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

    /// Makes a field name known with its kind; whether it is new.
    pub async fn create_field_name(&self, name: &str, kind: Kind, origin: &Origin) -> Result<bool> {
        self.ask(
            |r| r.catalog.clone(),
            |reply| CatalogMsg::CreateFieldName {
                name: name.to_string(),
                kind,
                origin: origin.clone(),
                reply,
            },
        )
        .await
    }

    /// Adds a note to a document of the scope; the note's id, or None when
    /// there is no such document.
    pub async fn add_note(
        &self,
        id: &str,
        scope: &Scope,
        note: NewNote,
        origin: &Origin,
    ) -> Result<Option<i64>> {
        self.ask(
            |r| r.catalog.clone(),
            |reply| CatalogMsg::AddNote {
                id: id.to_string(),
                scope: scope.clone(),
                note: note.clone(),
                origin: origin.clone(),
                reply,
            },
        )
        .await
    }

    /// Changes a document's metadata (see [`Edit`]); an indexed
    /// document is indexed again.
    pub async fn edit(
        &self,
        id: &str,
        scope: &Scope,
        edit: Edit,
        origin: &Origin,
    ) -> Result<EditResult> {
        let fields = edit.fields.is_some();
        let _one = match fields {
            true => Some(self.inner.templates_lock.lock().await),
            false => None,
        };
        let r = self
            .ask(
                |r| r.catalog.clone(),
                |reply| CatalogMsg::Edit {
                    id: id.to_string(),
                    scope: scope.clone(),
                    edit: edit.clone(),
                    origin: origin.clone(),
                    reply,
                },
            )
            .await?;
        if fields && matches!(r, EditResult::Edited(_)) {
            // Values set by hand teach templates (stored with the edit).
            load_templates(&self.inner.reader.db, &self.inner.reader.templates).await?;
        }
        Ok(r)
    }

    /// The field templates in the scope (of one workspace, if named).
    pub async fn templates(
        &self,
        scope: &Scope,
        workspace: Option<String>,
    ) -> Result<Vec<TemplateRow>> {
        let scope = scope.clone();
        self.inner
            .reader
            .db
            .run(move |c| read_templates(c, &scope, workspace.as_deref()))
            .await
    }

    /// Deletes a field template in the scope; false when there is none.
    pub async fn delete_template(&self, id: i64, scope: &Scope, origin: &Origin) -> Result<bool> {
        let _one = self.inner.templates_lock.lock().await;
        let gone: Option<String> = self
            .ask(
                |r| r.catalog.clone(),
                |reply| CatalogMsg::DeleteTemplate {
                    id,
                    scope: scope.clone(),
                    origin: origin.clone(),
                    reply,
                },
            )
            .await?;
        if gone.is_some() {
            load_templates(&self.inner.reader.db, &self.inner.reader.templates).await?;
        }
        Ok(gone.is_some())
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
        if self.inner.reader.get(id, scope).await?.is_none() {
            return Ok(Vec::new());
        }
        let owned = id.to_string();
        let children = self
            .inner
            .reader
            .db
            .run(move |c| own_attachments(c, &owned))
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

    /// Stores a token (only its hash is in `token`), recording who made it.
    pub async fn create_token(&self, token: TokenRow, origin: &Origin) -> Result<()> {
        self.ask(
            |r| r.catalog.clone(),
            |reply| CatalogMsg::CreateToken {
                token: token.clone(),
                origin: origin.clone(),
                reply,
            },
        )
        .await
    }

    /// Makes a webhook: its URL checked (public addresses only, unless
    /// `[webhooks] allow_private`), its event kinds known, its secret given
    /// or made. It is sent the events after this one. Answers the webhook
    /// with its secret (never shown again).
    pub async fn create_webhook(
        &self,
        new: NewWebhook,
        scope: &Scope,
        origin: &Origin,
    ) -> Result<WebhookRow> {
        let invalid = |m: String| anyhow::Error::from(EngineError::new(Code::InvalidBody, m));
        if !scope.allows(&new.workspace) {
            return Err(EngineError::new(
                Code::WorkspaceForbidden,
                format!("this token may not use workspace {:?}", new.workspace),
            )
            .into());
        }
        if !crate::model::valid_workspace(&new.workspace) {
            return Err(EngineError::new(
                Code::InvalidWorkspace,
                format!("workspace {:?} is not a workspace name", new.workspace),
            )
            .into());
        }
        let events = crate::store::webhooks::parse_kinds(&new.events).map_err(invalid)?;
        let secret = match new.secret {
            Some(s) if s.len() < 16 || s.len() > 256 => {
                return Err(invalid("secret must be 16 to 256 characters long".into()))
            }
            Some(s) => s,
            None => {
                let mut bytes = [0u8; 24];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
                    .map_err(|_| anyhow!("no random numbers for the secret"))?;
                format!("whsec_{}", hex::encode(bytes))
            }
        };
        let allow_private = self.inner.config.webhooks.allow_private;
        let url = crate::notifier::deliver::check_url(&new.url, allow_private)
            .map_err(|e| EngineError::new(Code::WebhookTargetRefused, e))?;
        if let (false, Some(url::Host::Domain(host))) = (allow_private, url.host()) {
            let port = url.port_or_known_default().unwrap_or(443);
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| {
                    EngineError::new(
                        Code::WebhookTargetRefused,
                        format!("url {:?}: {host} does not resolve: {e}", new.url),
                    )
                })?
                .collect();
            if let Some(a) = addrs
                .iter()
                .find(|a| !crate::notifier::deliver::is_public(a.ip()))
            {
                return Err(EngineError::new(
                    Code::WebhookTargetRefused,
                    format!(
                        "url {:?}: {host} resolves to {}, a loopback or private address; set [webhooks] allow_private = true to allow it",
                        new.url,
                        a.ip()
                    ),
                )
                .into());
            }
        }
        let id = format!("wh_{}", uuid::Uuid::now_v7().simple());
        let row = WebhookRow {
            id,
            workspace: new.workspace,
            url: url.to_string(),
            events,
            secret,
            cursor: 0,
            created_at: crate::model::format_ms(crate::model::now_ms()),
        };
        self.ask(
            |r| r.catalog.clone(),
            |reply| CatalogMsg::CreateWebhook {
                webhook: row.clone(),
                origin: origin.clone(),
                reply,
            },
        )
        .await?;
        Ok(row)
    }

    /// Stores workflow `name` (created, or its definition replaced); the
    /// definition is checked first and a bad one refused naming what is
    /// wrong (`invalid_body`).
    pub async fn put_workflow(
        &self,
        name: &str,
        definition: serde_json::Value,
        scope: &Scope,
        origin: &Origin,
    ) -> Result<(PutOutcome, WorkflowRow)> {
        let invalid = |m: String| anyhow::Error::from(EngineError::new(Code::InvalidBody, m));
        let def: WorkflowDef =
            serde_json::from_value(definition.clone()).map_err(|e| invalid(e.to_string()))?;
        if !crate::model::valid_workspace(&def.workspace) {
            return Err(EngineError::new(
                Code::InvalidWorkspace,
                format!("workspace {:?} is not a workspace name", def.workspace),
            )
            .into());
        }
        if !scope.allows(&def.workspace) {
            return Err(EngineError::new(
                Code::WorkspaceForbidden,
                format!("this token may not use workspace {:?}", def.workspace),
            )
            .into());
        }
        let types = types::current(&self.inner.reader.types);
        let workspace = def.workspace.clone();
        let wf = Workflow::compile(name, def, &|f| types.field_kind(f), &|t| {
            types.get(t).is_some()
        })
        .map_err(invalid)?;
        if let Some(hook) = &wf.def.actions.webhook {
            let (h, ws) = (hook.clone(), Scope::only([workspace.clone()]));
            let found = self
                .inner
                .reader
                .db
                .run(move |c| crate::store::webhooks::get_webhook(c, &h, &ws))
                .await?;
            if found.is_none() {
                return Err(invalid(format!(
                    "actions.webhook: workspace {workspace:?} has no webhook {hook:?}"
                )));
            }
        }
        let stored = serde_json::to_value(&wf.def)?;
        let outcome = self
            .ask(
                |r| r.catalog.clone(),
                |reply| CatalogMsg::PutWorkflow {
                    name: name.to_string(),
                    workspace: workspace.clone(),
                    definition: stored.clone(),
                    scope: scope.clone(),
                    origin: origin.clone(),
                    reply,
                },
            )
            .await?;
        if outcome == PutOutcome::Forbidden {
            return Err(EngineError::new(
                Code::WorkspaceForbidden,
                format!("workflow {name:?} belongs to a workspace this token may not use"),
            )
            .into());
        }
        let (n, sc) = (name.to_string(), scope.clone());
        let row = self
            .inner
            .reader
            .db
            .run(move |c| crate::store::workflows::get_workflow(c, &n, &sc))
            .await?
            .ok_or_else(|| anyhow!("the workflow just stored is not there"))?;
        Ok((outcome, row))
    }

    /// The worker pools' sizes in force.
    pub fn pools(&self) -> PoolsInForce {
        let p = &self.inner.pools;
        PoolsInForce {
            extract: p.extract.load(Relaxed),
            classify: p.classify.load(Relaxed),
            enrich: p.enrich.load(Relaxed),
        }
    }

    /// Changes the worker count of the pools asked for, while running. A
    /// pool that grows takes queued jobs at once; one that shrinks lets
    /// each worker it stops finish its job first, so no document is lost
    /// or read twice. Answers the sizes in force.
    pub async fn resize_pools(&self, ask: &PoolsRequest) -> Result<PoolsInForce> {
        for (name, n) in [
            ("extract", ask.extract),
            ("classify", ask.classify),
            ("enrich", ask.enrich),
        ] {
            if let Some(n) = n {
                if n == 0 || n > MAX_POOL_WORKERS {
                    return Err(EngineError::new(
                        Code::InvalidBody,
                        format!("{name}: {n} workers; a pool has 1 to {MAX_POOL_WORKERS}"),
                    )
                    .into());
                }
            }
        }
        let _one = self.inner.pools_lock.lock().await;
        let routes = self.routes()?;
        let p = &self.inner.pools;
        let c = &self.inner.counters;
        for (n, size, factory, counters, name) in [
            (
                ask.extract,
                &p.extract,
                &routes.extract,
                &c.extract,
                "extract",
            ),
            (
                ask.classify,
                &p.classify,
                &routes.classify,
                &c.classify,
                "classify",
            ),
            (ask.enrich, &p.enrich, &routes.enrich, &c.enrich, "enrich"),
        ] {
            let Some(n) = n else { continue };
            let was = size.swap(n, Relaxed);
            counters.pool_size.store(n as u64, Relaxed);
            if factory.adjust_worker_pool(n).is_err() {
                // Restarting: it comes back at the size in force.
                tracing::warn!(
                    pool = name,
                    "the pool is restarting; it starts with the new size"
                );
            }
            if was != n {
                tracing::info!(pool = name, from = was, to = n, "pool resized");
            }
        }
        Ok(self.pools())
    }

    /// Deletes a workflow of the scope; false if there is none.
    pub async fn delete_workflow(
        &self,
        name: &str,
        scope: &Scope,
        origin: &Origin,
    ) -> Result<bool> {
        self.ask(
            |r| r.catalog.clone(),
            |reply| CatalogMsg::DeleteWorkflow {
                name: name.to_string(),
                scope: scope.clone(),
                origin: origin.clone(),
                reply,
            },
        )
        .await
    }

    /// Deletes a webhook of the scope (its waiting deliveries are dropped);
    /// false if there is none.
    pub async fn delete_webhook(&self, id: &str, scope: &Scope, origin: &Origin) -> Result<bool> {
        self.ask(
            |r| r.catalog.clone(),
            |reply| CatalogMsg::DeleteWebhook {
                id: id.to_string(),
                scope: scope.clone(),
                origin: origin.clone(),
                reply,
            },
        )
        .await
    }

    /// Sends a failed delivery again (now, with a fresh count of attempts);
    /// false if the webhook has no failed delivery of this event.
    pub async fn resend_delivery(
        &self,
        webhook: &str,
        event: i64,
        scope: &Scope,
        origin: &Origin,
    ) -> Result<bool> {
        self.ask(
            |r| r.catalog.clone(),
            |reply| CatalogMsg::Resend {
                webhook: webhook.to_string(),
                event,
                scope: scope.clone(),
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
            |reply| CatalogMsg::RevokeToken {
                id: owned.clone(),
                origin: origin.clone(),
                reply,
            },
        )
        .await
    }

    /// Checks that SQLite, the index and the blob store answer.
    pub async fn ready(&self) -> Result<()> {
        self.inner
            .reader
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
        self.inner.reader.index.reader.searcher();
        self.inner
            .reader
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
        let drained = routes.intake.call(IntakeMsg::Drain, Some(drain)).await;
        if !matches!(drained, Ok(CallResult::Success(()))) {
            tracing::warn!(
                in_flight = self.inner.counters.num_in_flight.load(Relaxed),
                "drain timed out; the rest resumes at next start"
            );
        }
        let _ = self.ask(|r| r.indexer.clone(), IndexerMsg::CommitNow).await;
        // Webhook deliveries in the air finish and are written down, so
        // that the next start does not send them again.
        let _ = self.ask(|r| r.notifier.clone(), NotifierMsg::Quiesce).await;
        let _ = self.ask(|r| r.catalog.clone(), CatalogMsg::Sync).await;
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

/// Reads every workspace's field templates into their slot.
async fn load_templates(db: &ReadPool, slot: &TemplatesSlot) -> Result<()> {
    let rows = db.run(|c| read_templates(c, &Scope::All, None)).await?;
    let mut by_ws: std::collections::BTreeMap<String, Vec<Template>> = Default::default();
    for r in rows {
        by_ws.entry(r.workspace).or_default().push(r.template);
    }
    *slot.write().unwrap_or_else(|e| e.into_inner()) =
        by_ws.into_iter().map(|(w, t)| (w, Arc::new(t))).collect();
    Ok(())
}
