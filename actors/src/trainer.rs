//! Trainer: retrains the learned classifier in the background.
//!
//! In: `Corrected` from the Catalog each time a user's type for a document
//! is committed. The training waits until corrections have stopped for
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

use crate::classifier::bayes::{Model, Sample};
use crate::classifier::{ModelSlot, Trained};
use crate::counters::Counters;
use crate::model::now_ms;
use crate::routes::{current_routes, CatalogMsg, RoutesRx, TrainerMsg};
use crate::store::classifier::read_training_set;
use crate::store::pool::ReadPool;

pub struct TrainerArgs {
    pub delay: Duration,
    pub db: ReadPool,
    pub slot: ModelSlot,
    pub routes: RoutesRx,
    pub counters: Arc<Counters>,
}

pub struct TrainerState {
    args: TrainerArgs,
    generation: u64,
    /// When the oldest correction not yet trained on arrived.
    pending_since: Option<std::time::Instant>,
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
        _me: ActorRef<TrainerMsg>,
        args: TrainerArgs,
    ) -> Result<TrainerState, ActorProcessingErr> {
        args.counters.trainer.pool_size.store(1, Relaxed);
        Ok(TrainerState {
            args,
            generation: 0,
            pending_since: None,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<TrainerMsg>,
        msg: TrainerMsg,
        st: &mut TrainerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TrainerMsg::Corrected => {
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
                    // start_job counts one job out of the queue.
                    st.args.counters.trainer.queued(1);
                    let _timer = st.args.counters.trainer.start_job();
                    if let Err(e) = train(&st.args).await {
                        st.args.counters.trainer.num_failed.fetch_add(1, Relaxed);
                        tracing::error!(error = %e, "training the classifier failed; the previous model stays");
                    } else {
                        st.args.counters.trainer.num_processed.fetch_add(1, Relaxed);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Reads the training set, trains, has the Catalog store the model, and
/// swaps it in.
async fn train(args: &TrainerArgs) -> anyhow::Result<()> {
    let rows = args.db.run(read_training_set).await?;
    let started = std::time::Instant::now();
    let samples = rows.len();
    let model = tokio::task::spawn_blocking(move || {
        let samples: Vec<Sample> = rows
            .into_iter()
            .map(|(label, text)| Sample { label, text })
            .collect();
        Model::train(&samples)
    })
    .await?;
    let Some(model) = model else {
        tracing::info!(
            samples,
            "the classifier needs documents of two types at least to learn"
        );
        return Ok(());
    };
    let trained_at = now_ms();
    let catalog = current_routes(&args.routes).map_err(|e| anyhow::anyhow!("{e}"))?;
    ractor::call!(catalog.catalog, |reply| CatalogMsg::SaveClassifier {
        model: model.encode(),
        trained_at,
        reply,
    })
    .map_err(|e| anyhow::anyhow!("the catalog did not store the model: {e}"))??;
    tracing::info!(
        samples,
        labels = model.labels.len(),
        accuracy = model.accuracy,
        ms = started.elapsed().as_millis() as u64,
        "classifier trained"
    );
    *args.slot.write().unwrap_or_else(|e| e.into_inner()) =
        Some(Arc::new(Trained { model, trained_at }));
    Ok(())
}
