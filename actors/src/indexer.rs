//! Indexer: the only Tantivy writer.
//!
//! In: enriched [`DocJob`]s with their text; deletes. Each document replaces
//! any earlier copy (delete by id, then add), so indexing twice is harmless.
//! Commits when `index.commit_batch` documents wait or the oldest has waited
//! `index.commit_interval_ms`; after the commit it reloads the shared reader
//! and tells the Catalog which documents are now `indexed`. A document is
//! never reported indexed before the commit that holds it.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tantivy::IndexWriter;

use crate::config::IndexConfig;
use crate::counters::Counters;
use crate::errors::EngineError;
use crate::model::DocJob;
use crate::routes::{
    current_routes, tell, CatalogMsg, ClaimId, IndexSnapshot, IndexerMsg, IntakeMsg, RoutesRx,
};
use crate::store::index::SearchIndex;

pub struct Indexer;

pub struct IndexerArgs {
    pub config: IndexConfig,
    pub index: SearchIndex,
    pub routes: RoutesRx,
    pub counters: Arc<Counters>,
}

pub struct IndexerState {
    args: IndexerArgs,
    writer: Option<IndexWriter>,
    pending: Vec<DocJob>,
    timer_armed: bool,
    /// Documents added since the Intake was last told (see `Handoff`).
    handed: Vec<ClaimId>,
}

impl Actor for Indexer {
    type Msg = IndexerMsg;
    type State = IndexerState;
    type Arguments = IndexerArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<IndexerMsg>,
        args: IndexerArgs,
    ) -> Result<IndexerState, ActorProcessingErr> {
        let writer = args.index.index.writer_with_num_threads(
            args.config.writer_threads,
            args.config.writer_memory_mb * 1024 * 1024,
        )?;
        args.counters.indexer.pool_size.store(1, Relaxed);
        Ok(IndexerState {
            args,
            writer: Some(writer),
            pending: Vec::new(),
            timer_armed: false,
            handed: Vec::new(),
        })
    }

    async fn handle(
        &self,
        me: ActorRef<IndexerMsg>,
        msg: IndexerMsg,
        st: &mut IndexerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            IndexerMsg::Add(mut job) => {
                let counters = st.args.counters.clone();
                let _timer = counters.indexer.start_job();
                let idx = &st.args.index;
                let writer = st.writer.as_ref().ok_or("index writer lost")?;
                let text = job.text.take().unwrap_or_else(|| Arc::from(""));
                let title = job.title.as_deref().unwrap_or(&job.filename);
                writer.delete_term(idx.id_term(&job.id));
                writer.add_document(idx.make_doc(
                    &job.id,
                    &job.workspace,
                    title,
                    &job.filename,
                    &text,
                    job.doc_type.as_deref(),
                ))?;
                // The text now lives in Tantivy's buffer: the document's
                // permit goes back, its claim stays until the commit. The
                // Intake is told once for everything already in the mailbox.
                if st.handed.is_empty() {
                    me.cast(IndexerMsg::Handoff)?;
                }
                st.handed.push((job.seq, job.admission));
                st.pending.push(job);
                if st.pending.len() >= st.args.config.commit_batch {
                    commit(st).await?;
                } else if !st.timer_armed {
                    st.timer_armed = true;
                    me.send_after(
                        Duration::from_millis(st.args.config.commit_interval_ms),
                        || IndexerMsg::Commit,
                    );
                }
            }
            IndexerMsg::Handoff => hand_off(st)?,
            IndexerMsg::Commit => {
                st.timer_armed = false;
                commit(st).await?;
            }
            IndexerMsg::Delete { id, reply } => {
                let writer = st.writer.as_ref().ok_or("index writer lost")?;
                writer.delete_term(st.args.index.id_term(&id));
                // Commit unconditionally: the delete must be durable before
                // the caller removes the row.
                let r = commit_always(st).await;
                let _ = reply.send(r.as_ref().map(|_| ()).map_err(EngineError::internal));
                r?;
            }
            IndexerMsg::Snapshot { hold, reply } => {
                let r = snapshot(st, hold).await;
                let _ = reply.send(r.map_err(|e| EngineError::internal(format!("{e:#}"))));
            }
            IndexerMsg::CommitNow(reply) => {
                let r = commit(st).await;
                let _ = reply.send(r.as_ref().map(|_| ()).map_err(EngineError::internal));
                r?;
            }
        }
        Ok(())
    }
}

/// The commit point of a backup: every document added so far committed,
/// the Catalog caught up with it, `hold` run meanwhile.
async fn snapshot(
    st: &mut IndexerState,
    hold: Arc<dyn Fn() -> anyhow::Result<()> + Send + Sync>,
) -> anyhow::Result<IndexSnapshot> {
    commit(st).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let catalog = current_routes(&st.args.routes)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .catalog;
    match catalog
        .call(CatalogMsg::Sync, Some(Duration::from_secs(120)))
        .await
    {
        Ok(ractor::rpc::CallResult::Success(r)) => r?,
        _ => anyhow::bail!("the catalog did not answer"),
    }
    tokio::task::spawn_blocking(move || hold()).await??;
    let index = &st.args.index.index;
    use tantivy::Directory;
    let meta_json = index
        .directory()
        .atomic_read(std::path::Path::new("meta.json"))
        .unwrap_or_default();
    let segments = index.searchable_segment_metas()?;
    Ok(IndexSnapshot {
        meta_json,
        segments,
    })
}

fn hand_off(st: &mut IndexerState) -> Result<(), ActorProcessingErr> {
    if !st.handed.is_empty() {
        let claims = std::mem::take(&mut st.handed);
        tell(
            &current_routes(&st.args.routes)?.intake,
            IntakeMsg::Handoff(claims),
            "intake",
        );
    }
    Ok(())
}

async fn commit(st: &mut IndexerState) -> Result<(), ActorProcessingErr> {
    if st.pending.is_empty() {
        return Ok(());
    }
    commit_always(st).await
}

async fn commit_always(st: &mut IndexerState) -> Result<(), ActorProcessingErr> {
    let mut writer = st.writer.take().ok_or("index writer lost")?;
    let (writer, result) = tokio::task::spawn_blocking(move || {
        let r = writer.commit();
        (writer, r)
    })
    .await?;
    st.writer = Some(writer);
    result?;
    st.args.index.reader.reload()?;
    // The writer's indexing memory is free again after a commit: hand it
    // back to the system (the allocator keeps it otherwise).
    crate::memory::release_free_memory();
    hand_off(st)?;
    let c = &st.args.counters;
    c.num_commits_index.fetch_add(1, Relaxed);
    let jobs = std::mem::take(&mut st.pending);
    if !jobs.is_empty() {
        c.indexer
            .num_processed
            .fetch_add(jobs.len() as u64, Relaxed);
        tell(
            &current_routes(&st.args.routes)?.catalog,
            CatalogMsg::Indexed { jobs },
            "catalog",
        );
    }
    Ok(())
}
