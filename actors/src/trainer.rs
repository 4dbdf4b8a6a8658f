//! Trainer: retrains the learned classifiers in the background, one per
//! workspace, each on its own workspace's corrections.
//!
//! In: `Corrected(workspace)` from the Catalog each time a user's type for
//! a document is committed. At start, the workspaces whose stored model is
//! unreadable, made for another embedder, or missing although they have
//! corrections are trained at once. The training waits until corrections have stopped for
//! `pipeline.classify.retrain_delay_ms` (a user fixing fifty documents
//! causes one training, not fifty), but never longer than ten times that
//! after the first untrained correction, so a steady stream of corrections
//! still gets trained. Out: the model to the Catalog, which
//! stores it in SQLite; once stored, it is swapped in for the Classify
//! workers at once (they read it through a shared slot).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use std::collections::BTreeSet;

use crate::classifier::bayes::{Features, Model, Sample};
use crate::classifier::{vector_of, ModelSlot, Trained};
use crate::counters::Counters;
use crate::embed::Embedder;
use crate::model::now_ms;
use crate::routes::{current_routes, CatalogMsg, RoutesRx, TrainerMsg};
use crate::store::classifier::read_training_set;
use crate::store::pool::ReadPool;

pub struct TrainerArgs {
    pub delay: Duration,
    pub db: ReadPool,
    pub slot: ModelSlot,
    /// The embedder whose vectors the models read beside the words (the
    /// built-in one; None: words alone).
    pub embedder: Option<Arc<Embedder>>,
    /// Workspaces to train at start (see the module's doc).
    pub stale: Vec<String>,
    pub routes: RoutesRx,
    pub counters: Arc<Counters>,
}

pub struct TrainerState {
    args: TrainerArgs,
    generation: u64,
    /// When the oldest correction not yet trained on arrived.
    pending_since: Option<std::time::Instant>,
    /// The workspaces with corrections not yet trained on.
    pending: BTreeSet<String>,
}

/// A stream of corrections delays training by at most this many delays.
const MAX_DELAYS: u32 = 10;

pub struct Trainer;

impl Actor for Trainer {
    type Msg = TrainerMsg;
    type State = TrainerState;
    type Arguments = TrainerArgs;

    async fn pre_start(
        &self,
        me: ActorRef<TrainerMsg>,
        mut args: TrainerArgs,
    ) -> Result<TrainerState, ActorProcessingErr> {
        args.counters.trainer.pool_size.store(1, Relaxed);
        let pending: BTreeSet<String> = std::mem::take(&mut args.stale).into_iter().collect();
        if !pending.is_empty() {
            me.send_message(TrainerMsg::Train(0))?;
        }
        Ok(TrainerState {
            args,
            generation: 0,
            pending_since: None,
            pending,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<TrainerMsg>,
        msg: TrainerMsg,
        st: &mut TrainerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TrainerMsg::Corrected(workspace) => {
                st.pending.insert(workspace);
                st.generation += 1;
                st.pending_since.get_or_insert_with(std::time::Instant::now);
                let g = st.generation;
                me.send_after(st.args.delay, move || TrainerMsg::Train(g));
            }
            TrainerMsg::Train(g) => {
                let overdue = st
                    .pending_since
                    .is_some_and(|t| t.elapsed() >= st.args.delay * MAX_DELAYS);
                if g == st.generation || overdue {
                    st.pending_since = None;
                    for workspace in std::mem::take(&mut st.pending) {
                        // start_job counts one job out of the queue.
                        st.args.counters.trainer.queued(1);
                        let _timer = st.args.counters.trainer.start_job();
                        if let Err(e) = train(&st.args, &workspace).await {
                            st.args.counters.trainer.num_failed.fetch_add(1, Relaxed);
                            tracing::error!(%workspace, error = %e, "training the classifier failed; the previous model stays");
                        } else {
                            st.args.counters.trainer.num_processed.fetch_add(1, Relaxed);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Reads the workspace's training set, trains, has the Catalog store the
/// model, and swaps it in.
async fn train(args: &TrainerArgs, workspace: &str) -> anyhow::Result<()> {
    let ws = workspace.to_string();
    let rows = args.db.run(move |c| read_training_set(c, &ws)).await?;
    let started = std::time::Instant::now();
    let samples = rows.len();
    let embedder = args.embedder.clone();
    let model = tokio::task::spawn_blocking(move || {
        let samples: Vec<Sample> = rows
            .into_iter()
            .map(|(label, title, text)| Sample {
                vector: vector_of(embedder.as_deref(), &title, &text),
                label,
                text: format!("{title}\n{text}"),
            })
            .collect();
        let id = embedder.as_deref().map(Embedder::id);
        Model::train(&samples, id, Features::Auto)
    })
    .await?;
    let Some(model) = model else {
        tracing::info!(
            workspace,
            samples,
            "the classifier needs documents of two types at least to learn"
        );
        return Ok(());
    };
    let trained_at = now_ms();
    let catalog = current_routes(&args.routes).map_err(|e| anyhow::anyhow!("{e}"))?;
    ractor::call!(catalog.catalog, |reply| CatalogMsg::SaveClassifier {
        workspace: workspace.to_string(),
        model: model.encode(),
        trained_at,
        reply,
    })
    .map_err(|e| anyhow::anyhow!("the catalog did not store the model: {e}"))??;
    tracing::info!(
        workspace,
        samples,
        labels = model.labels.len(),
        accuracy = model.accuracy,
        meaning = model.meaning_share(),
        ms = started.elapsed().as_millis() as u64,
        "classifier trained"
    );
    args.slot.write().unwrap_or_else(|e| e.into_inner()).insert(
        workspace.to_string(),
        Arc::new(Trained { model, trained_at }),
    );
    Ok(())
}
