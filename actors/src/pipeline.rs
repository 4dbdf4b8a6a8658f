//! The supervisor tree. `PipelineSupervisor` spawns every actor linked to
//! itself from one table of child kinds, publishes their current references
//! as [`Routes`] on a watch channel, and restarts any child that dies, with
//! exponential backoff (reset once the child has run quietly for a while)
//! and a restart counter. After a restart the Intake is told to forget what
//! was in flight, so those documents are admitted again from SQLite.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::factory::queues::DefaultQueue;
use ractor::factory::routing::QueuerRouting;
use ractor::factory::{DeadMansSwitchConfiguration, Factory, FactoryArguments, FactoryRef};
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use tokio::sync::watch;

use crate::analyze::Analyzer;
use crate::catalog::{Catalog, CatalogArgs};
use crate::classify::{Classifier, ClassifyCtx};
use crate::config::EngineConfig;
use crate::counters::{ActorCounters, Counters};
use crate::embedder::{EmbedderActor, EmbedderArgs};
use crate::enrich::{EnrichCtx, Enricher};
use crate::extract::{ExtractCtx, Extractor};
use crate::indexer::{Indexer, IndexerArgs};
use crate::intake::{Intake, IntakeArgs};
use crate::model::DocJob;
use crate::notifier::{Notifier, NotifierArgs};
use crate::routes::{IntakeMsg, Routes, SchedulerMsg};
use crate::scheduler::{Scheduler, SchedulerArgs};
use crate::store::blobs::Blobs;
use crate::store::index::SearchIndex;
use crate::store::pool::ReadPool;
use crate::trainer::{Trainer, TrainerArgs};

/// What the supervisor needs to (re)build its children.
pub struct Shared {
    pub config: EngineConfig,
    pub db: ReadPool,
    pub blobs: Blobs,
    pub index: SearchIndex,
    pub counters: Arc<Counters>,
    pub routes_tx: watch::Sender<Option<Routes>>,
    pub ocr: Arc<crate::extract::ocr::Ocr>,
    pub analyzer: Arc<Analyzer>,
    pub embedding: Arc<crate::embed::Embedding>,
    /// The last event durable in the catalog, set by its syncer (the event
    /// stream's subscribers wait on it).
    pub events_tx: Arc<watch::Sender<i64>>,
    /// Workspaces whose classifier the Trainer trains at start.
    pub stale_models: Vec<String>,
    /// The worker pools' sizes in force (changed live; a restarted pool
    /// comes back at its size in force).
    pub pools: Arc<PoolSizes>,
}

/// The sizes of the pools that can change while running.
#[derive(Debug)]
pub struct PoolSizes {
    pub extract: std::sync::atomic::AtomicUsize,
    pub classify: std::sync::atomic::AtomicUsize,
    pub enrich: std::sync::atomic::AtomicUsize,
}

impl PoolSizes {
    pub fn new(cfg: &crate::config::PipelineConfig) -> PoolSizes {
        use std::sync::atomic::AtomicUsize;
        PoolSizes {
            extract: AtomicUsize::new(cfg.extract.workers),
            classify: AtomicUsize::new(cfg.classify.workers),
            enrich: AtomicUsize::new(cfg.enrich.workers),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Child {
    Catalog,
    Scheduler,
    Intake,
    Indexer,
    Extract,
    Classify,
    Enrich,
    Trainer,
    Embedder,
    Notifier,
}

/// The children in the order they start (the writers first, the pools that
/// feed them last); they stop in the opposite order of the flow: upstream
/// first, so nothing new is admitted while later stages stop.
const START_ORDER: [Child; 10] = [
    Child::Catalog,
    Child::Notifier,
    Child::Scheduler,
    Child::Trainer,
    Child::Embedder,
    Child::Intake,
    Child::Indexer,
    Child::Enrich,
    Child::Classify,
    Child::Extract,
];
const STOP_ORDER: [Child; 10] = [
    Child::Intake,
    Child::Scheduler,
    Child::Extract,
    Child::Classify,
    Child::Enrich,
    Child::Trainer,
    Child::Embedder,
    Child::Indexer,
    Child::Notifier,
    Child::Catalog,
];

/// A child that has run this long since its last restart starts its
/// backoff again from the shortest delay.
const QUIET_PERIOD: Duration = Duration::from_secs(60);

pub enum SupervisorMsg {
    Restart(Child),
    /// Stop every child, downstream last, then reply.
    Shutdown(RpcReplyPort<()>),
}

pub struct PipelineSupervisor;

pub struct SupervisorState {
    shared: Arc<Shared>,
    refs: HashMap<Child, ActorCell>,
    by_id: HashMap<ActorId, Child>,
    /// Per child: restarts in the current run of failures, and when the
    /// last one was.
    restarts: HashMap<Child, (u32, Instant)>,
    stopping: bool,
}

/// Spawns a pool of `workers` document workers made by `make`, linked to
/// the supervisor; with `dms`, a worker stuck past it is replaced.
async fn spawn_pool<W>(
    make: impl Fn() -> W + Send + Sync + 'static,
    workers: usize,
    dms: Option<DeadMansSwitchConfiguration>,
    sup: ActorCell,
) -> Result<FactoryRef<(), DocJob>, ActorProcessingErr>
where
    W: ractor::factory::Worker<Key = (), Message = DocJob, Arguments = ()>,
{
    let args = FactoryArguments::builder()
        .worker_builder(Box::new(ractor::factory::worker_builder(move |_wid| {
            (make(), ())
        })))
        .queue(Default::default())
        .router(Default::default())
        .num_initial_workers(workers)
        .maybe_dead_mans_switch(dms)
        .build();
    let factory: Factory<(), DocJob, (), W, QueuerRouting<(), DocJob>, DefaultQueue<(), DocJob>> =
        Factory::default();
    let (r, _) = Actor::spawn_linked(None, factory, args, sup).await?;
    Ok(r)
}

fn counters_of(c: &Counters, child: Child) -> &ActorCounters {
    match child {
        Child::Catalog => &c.catalog,
        Child::Scheduler => &c.scheduler,
        Child::Intake => &c.intake,
        Child::Indexer => &c.indexer,
        Child::Extract => &c.extract,
        Child::Classify => &c.classify,
        Child::Enrich => &c.enrich,
        Child::Trainer => &c.trainer,
        Child::Embedder => &c.embedder,
        Child::Notifier => &c.notifier,
    }
}

/// Exponential backoff per child: 100 ms, 200 ms, … up to 30 s; back to
/// 100 ms once the child has run for [`QUIET_PERIOD`] since its last restart.
fn next_restart_delay(
    restarts: &mut HashMap<Child, (u32, Instant)>,
    child: Child,
    now: Instant,
) -> Duration {
    let (n, last) = restarts.entry(child).or_insert((0, now));
    if now.saturating_duration_since(*last) >= QUIET_PERIOD {
        *n = 0;
    }
    *n += 1;
    *last = now;
    Duration::from_millis((100u64 << (*n - 1).min(8)).min(30_000))
}

/// Starts one child of the table, linked to the supervisor.
async fn spawn_child(
    sh: &Shared,
    child: Child,
    sup: ActorCell,
) -> Result<ActorCell, ActorProcessingErr> {
    let cfg = &sh.config;
    let routes = sh.routes_tx.subscribe();
    let counters = sh.counters.clone();
    let p = &cfg.pipeline;
    let cell = match child {
        Child::Catalog => {
            let args = CatalogArgs {
                path: crate::store::schema::db_path(&cfg.data_dir),
                config: cfg.catalog.clone(),
                routes,
                counters,
                blobs: sh.blobs.clone(),
                events: sh.events_tx.clone(),
            };
            Actor::spawn_linked(None, Catalog, args, sup)
                .await?
                .0
                .get_cell()
        }
        Child::Scheduler => {
            let args = SchedulerArgs {
                retry: p.retry.clone(),
                db: sh.db.clone(),
                routes,
                counters,
            };
            Actor::spawn_linked(None, Scheduler, args, sup)
                .await?
                .0
                .get_cell()
        }
        Child::Trainer => {
            let args = TrainerArgs {
                delay: Duration::from_millis(p.classify.retrain_delay_ms),
                db: sh.db.clone(),
                slot: sh.analyzer.model.clone(),
                embedder: sh.analyzer.embedder.clone(),
                stale: sh.stale_models.clone(),
                routes,
                counters,
            };
            Actor::spawn_linked(None, Trainer, args, sup)
                .await?
                .0
                .get_cell()
        }
        Child::Intake => {
            let args = IntakeArgs {
                max_in_flight: p.max_in_flight,
                max_claims: p.max_in_flight + cfg.index.commit_batch,
                lease: Duration::from_millis(p.lease_ms),
                db: sh.db.clone(),
                routes,
                counters,
            };
            Actor::spawn_linked(None, Intake, args, sup)
                .await?
                .0
                .get_cell()
        }
        Child::Notifier => {
            let args = NotifierArgs {
                config: cfg.webhooks.clone(),
                db: sh.db.clone(),
                events: sh.events_tx.subscribe(),
                routes,
                counters,
                types: sh.analyzer.types.clone(),
            };
            Actor::spawn_linked(None, Notifier, args, sup)
                .await?
                .0
                .get_cell()
        }
        Child::Embedder => {
            let args = EmbedderArgs {
                embedding: sh.embedding.clone(),
                db: sh.db.clone(),
                routes,
                counters,
            };
            Actor::spawn_linked(None, EmbedderActor, args, sup)
                .await?
                .0
                .get_cell()
        }
        Child::Indexer => {
            let args = IndexerArgs {
                config: cfg.index.clone(),
                index: sh.index.clone(),
                db: sh.db.clone(),
                routes,
                counters,
            };
            Actor::spawn_linked(None, Indexer, args, sup)
                .await?
                .0
                .get_cell()
        }
        Child::Extract => {
            let ctx = Arc::new(ExtractCtx {
                config: p.extract.clone(),
                parser_command: cfg.parser_command.clone(),
                blobs: sh.blobs.clone(),
                db: sh.db.clone(),
                routes,
                counters: counters.clone(),
                ocr: sh.ocr.clone(),
                analyzer: sh.analyzer.clone(),
            });
            let workers = sh.pools.extract.load(Relaxed);
            counters.extract.pool_size.store(workers as u64, Relaxed);
            // A worker stuck well past its own time limit is a bug: the
            // dead-man's switch replaces it (the lease re-admits its job).
            let dms = DeadMansSwitchConfiguration {
                detection_timeout: Duration::from_millis(
                    p.extract.timeout_ms * 2 + p.ocr.timeout_ms + 10_000,
                ),
                kill_worker: true,
            };
            let make = move || Extractor { ctx: ctx.clone() };
            spawn_pool(make, workers, Some(dms), sup).await?.get_cell()
        }
        Child::Enrich => {
            let ctx = Arc::new(EnrichCtx {
                analyzer: sh.analyzer.clone(),
                db: sh.db.clone(),
                routes,
                counters: counters.clone(),
            });
            let workers = sh.pools.enrich.load(Relaxed);
            counters.enrich.pool_size.store(workers as u64, Relaxed);
            let make = move || Enricher { ctx: ctx.clone() };
            spawn_pool(make, workers, None, sup).await?.get_cell()
        }
        Child::Classify => {
            let ctx = Arc::new(ClassifyCtx {
                analyzer: sh.analyzer.clone(),
                routes,
                counters: counters.clone(),
            });
            let workers = sh.pools.classify.load(Relaxed);
            counters.classify.pool_size.store(workers as u64, Relaxed);
            let make = move || Classifier { ctx: ctx.clone() };
            spawn_pool(make, workers, None, sup).await?.get_cell()
        }
    };
    Ok(cell)
}

impl PipelineSupervisor {
    async fn start_child(
        &self,
        me: &ActorRef<SupervisorMsg>,
        st: &mut SupervisorState,
        child: Child,
    ) -> Result<(), ActorProcessingErr> {
        let cell = spawn_child(&st.shared, child, me.get_cell()).await?;
        st.by_id.insert(cell.get_id(), child);
        st.refs.insert(child, cell);
        Ok(())
    }

    /// Publishes the current references of every child.
    fn publish(&self, st: &SupervisorState) -> Result<(), ActorProcessingErr> {
        let get = |c: Child| st.refs.get(&c).cloned().ok_or(format!("{c:?} missing"));
        let routes = Routes {
            catalog: get(Child::Catalog)?.into(),
            intake: get(Child::Intake)?.into(),
            scheduler: get(Child::Scheduler)?.into(),
            indexer: get(Child::Indexer)?.into(),
            extract: get(Child::Extract)?.into(),
            classify: get(Child::Classify)?.into(),
            enrich: get(Child::Enrich)?.into(),
            trainer: get(Child::Trainer)?.into(),
            embedder: get(Child::Embedder)?.into(),
            notifier: get(Child::Notifier)?.into(),
            vectors: st.shared.embedding.vectors.clone(),
            counters: st.shared.counters.clone(),
        };
        st.shared.routes_tx.send_replace(Some(routes));
        Ok(())
    }
}

impl Actor for PipelineSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        me: ActorRef<SupervisorMsg>,
        shared: Arc<Shared>,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut st = SupervisorState {
            shared,
            refs: HashMap::new(),
            by_id: HashMap::new(),
            restarts: HashMap::new(),
            stopping: false,
        };
        for child in START_ORDER {
            self.start_child(&me, &mut st, child).await?;
        }
        self.publish(&st)?;
        Ok(st)
    }

    async fn post_start(
        &self,
        _me: ActorRef<SupervisorMsg>,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // Boot recovery: the Scheduler re-arms retry timers and wakes the
        // Intake, which admits every active document from SQLite.
        if let Some(c) = st.refs.get(&Child::Scheduler) {
            ActorRef::<SchedulerMsg>::from(c.clone()).cast(SchedulerMsg::Wake)?;
        }
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Restart(child) => {
                if st.stopping {
                    return Ok(());
                }
                if let Err(e) = self.start_child(&me, st, child).await {
                    // Supervisors decide: a child that cannot start yet (its
                    // database briefly unavailable, say) is tried again later.
                    let delay = next_restart_delay(&mut st.restarts, child, Instant::now());
                    tracing::error!(actor = ?child, error = %e, retry_in_ms = delay.as_millis() as u64, "restart failed; trying again");
                    me.send_after(delay, move || SupervisorMsg::Restart(child));
                    return Ok(());
                }
                self.publish(st)?;
                tracing::info!(actor = ?child, "actor restarted");
                if let Some(c) = st.refs.get(&Child::Intake) {
                    ActorRef::<IntakeMsg>::from(c.clone()).cast(IntakeMsg::Reset)?;
                }
            }
            SupervisorMsg::Shutdown(reply) => {
                st.stopping = true;
                for child in STOP_ORDER {
                    if let Some(cell) = st.refs.remove(&child) {
                        let _ = cell
                            .stop_and_wait(None, Some(Duration::from_secs(10)))
                            .await;
                    }
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<SupervisorMsg>,
        evt: SupervisionEvent,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match &evt {
            SupervisionEvent::ActorFailed(cell, err) => (cell, err.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (cell, format!("{reason:?}")),
            _ => return Ok(()),
        };
        let Some(child) = st.by_id.remove(&cell.get_id()) else {
            return Ok(());
        };
        if st.stopping {
            return Ok(());
        }
        st.refs.remove(&child);
        counters_of(&st.shared.counters, child)
            .num_restarts
            .fetch_add(1, Relaxed);
        let delay = next_restart_delay(&mut st.restarts, child, Instant::now());
        tracing::error!(actor = ?child, error = %why, restart_in_ms = delay.as_millis() as u64, "actor died; restarting");
        me.send_after(delay, move || SupervisorMsg::Restart(child));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_backoff_doubles_caps_and_resets_after_a_quiet_period() {
        let mut r = HashMap::new();
        let t0 = Instant::now();
        let ms = |d: Duration| d.as_millis() as u64;
        assert_eq!(ms(next_restart_delay(&mut r, Child::Catalog, t0)), 100);
        assert_eq!(ms(next_restart_delay(&mut r, Child::Catalog, t0)), 200);
        assert_eq!(ms(next_restart_delay(&mut r, Child::Catalog, t0)), 400);
        // Another child has its own count.
        assert_eq!(ms(next_restart_delay(&mut r, Child::Intake, t0)), 100);
        for _ in 0..10 {
            next_restart_delay(&mut r, Child::Catalog, t0);
        }
        assert_eq!(ms(next_restart_delay(&mut r, Child::Catalog, t0)), 25_600);
        let later = t0 + QUIET_PERIOD;
        assert_eq!(ms(next_restart_delay(&mut r, Child::Catalog, later)), 100);
    }
}
