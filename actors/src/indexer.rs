//! Indexer: the only Tantivy writer.
//!
//! In: enriched [`DocJob`]s with their text; deletes. Jobs are staged and
//! added together once the mailbox holds no more of them, with what the
//! index keeps beside the words (tags, language, date, fields) read from
//! SQLite in one query per batch: the catalog's state at or after the stage
//! advance, and an edit of any of it sends the document through indexing
//! again. Each document replaces any earlier copy (delete by id, then add),
//! so indexing twice is harmless.
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
use crate::store::documents::index_meta;
use crate::store::index::{IndexDoc, IndexMeta, SearchIndex};
use crate::store::pool::ReadPool;

pub struct Indexer;

pub struct IndexerArgs {
    pub config: IndexConfig,
    pub index: SearchIndex,
    pub db: ReadPool,
    pub routes: RoutesRx,
    pub counters: Arc<Counters>,
}

pub struct IndexerState {
    args: IndexerArgs,
    writer: Option<IndexWriter>,
    /// Jobs taken from the mailbox, not yet in the writer (see `Flush`).
    staged: Vec<DocJob>,
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
        // Segments are merged once a third of their documents are deleted,
        // so deleted documents free their space (Tantivy's default waits
        // for a segment to be all deletes); otherwise by size, as Tantivy
        // does.
        let mut policy = tantivy::merge_policy::LogMergePolicy::default();
        policy.set_del_docs_ratio_before_merge(0.3);
        writer.set_merge_policy(Box::new(policy));
        args.counters.indexer.pool_size.store(1, Relaxed);
        Ok(IndexerState {
            args,
            writer: Some(writer),
            staged: Vec::new(),
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
            IndexerMsg::Add(job) => {
                // Added with every other job already in the mailbox, once
                // the Flush queued behind them arrives.
                if st.staged.is_empty() {
                    me.cast(IndexerMsg::Flush)?;
                }
                st.staged.push(job);
            }
            IndexerMsg::Flush => {
                flush(st).await?;
                if st.pending.len() >= st.args.config.commit_batch {
                    commit(st).await?;
                } else if !st.pending.is_empty() && !st.timer_armed {
                    st.timer_armed = true;
                    me.send_after(
                        Duration::from_millis(st.args.config.commit_interval_ms),
                        || IndexerMsg::Commit,
                    );
                }
            }
            IndexerMsg::Commit => {
                st.timer_armed = false;
                commit(st).await?;
            }
            IndexerMsg::Delete { id, reply } => {
                flush(st).await?;
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

/// Adds the staged jobs to the writer, with what SQLite holds of them
/// beside their text; their permits go back (the text now lives in
/// Tantivy's buffer), their claims stay until the commit.
async fn flush(st: &mut IndexerState) -> Result<(), ActorProcessingErr> {
    if st.staged.is_empty() {
        return Ok(());
    }
    let jobs = std::mem::take(&mut st.staged);
    let counters = st.args.counters.clone();
    let _timer = counters.indexer.start_job();
    // Each job was counted as queued when it was forwarded; the timer took
    // one off for the batch.
    counters.indexer.queued(1 - jobs.len() as i64);
    let seqs: Vec<i64> = jobs.iter().map(|j| j.seq).collect();
    let db = st.args.db.clone();
    let meta = tokio::task::spawn_blocking(move || db.with(|c| index_meta(c, &seqs))).await??;
    let idx = &st.args.index;
    let writer = st.writer.as_ref().ok_or("index writer lost")?;
    let none = IndexMeta::default();
    for mut job in jobs {
        let text = job.text.take().unwrap_or_else(|| Arc::from(""));
        let title = job.title.as_deref().unwrap_or(&job.filename);
        writer.delete_term(idx.id_term(&job.id));
        writer.add_document(idx.make_doc(&IndexDoc {
            id: &job.id,
            seq: job.seq,
            workspace: &job.workspace,
            title,
            filename: &job.filename,
            body: &text,
            doc_type: job.doc_type.as_deref(),
            meta: meta.get(&job.seq).unwrap_or(&none),
        }))?;
        st.handed.push((job.seq, job.admission));
        st.pending.push(job);
    }
    hand_off(st)
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
    flush(st).await?;
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
