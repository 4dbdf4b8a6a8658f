//! The supervisor tree. `PipelineSupervisor` spawns every actor linked to
//! itself, publishes their current references as [`Routes`] on a watch
//! channel, and restarts any child that dies, with exponential backoff and a
//! restart counter. After a restart the Intake is told to forget what was in
//! flight, so those documents are admitted again from SQLite.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use ractor::factory::queues::DefaultQueue;
use ractor::factory::routing::QueuerRouting;
use ractor::factory::{DeadMansSwitchConfiguration, Factory, FactoryArguments, FactoryRef};
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use tokio::sync::watch;

use crate::catalog::{Catalog, CatalogArgs, CatalogMsg};
use crate::classify::{Classifier, ClassifyCtx};
use crate::config::EngineConfig;
use crate::counters::{ActorCounters, Counters};
use crate::enrich::{EnrichCtx, Enricher};
use crate::extract::{ExtractCtx, Extractor};
use crate::indexer::{Indexer, IndexerArgs, IndexerMsg};
use crate::intake::{Intake, IntakeArgs, IntakeMsg};
use crate::model::DocJob;
use crate::scheduler::{Scheduler, SchedulerArgs, SchedulerMsg};
use crate::store::blobs::Blobs;
use crate::store::db::ReadPool;
use crate::store::index::SearchIndex;
use crate::trainer::{ModelSlot, Trainer, TrainerArgs, TrainerMsg};

/// The current reference of every actor. Replaced whenever one restarts.
#[derive(Clone)]
pub struct Routes {
    pub catalog: ActorRef<CatalogMsg>,
    pub intake: ActorRef<IntakeMsg>,
    pub scheduler: ActorRef<SchedulerMsg>,
    pub indexer: ActorRef<IndexerMsg>,
    pub extract: FactoryRef<(), DocJob>,
    pub classify: FactoryRef<(), DocJob>,
    pub enrich: FactoryRef<(), DocJob>,
    pub trainer: ActorRef<TrainerMsg>,
    pub counters: Arc<Counters>,
}

pub type RoutesRx = watch::Receiver<Option<Routes>>;

/// Sends to a sibling actor without failing the sender. A message to an actor
/// that has just died is lost, and that is recovered elsewhere: the restart
/// makes the supervisor reset the Intake, which admits the document again from
/// its committed stage (leases cover the rest). The sender must not die as
/// well: a Catalog that failed here would take its batch's replies with it.
pub fn tell<M: ractor::Message>(to: &ActorRef<M>, msg: M, what: &'static str) {
    if to.cast(msg).is_err() {
        tracing::warn!(to = what, "dropped a message to a stopped actor; its documents are admitted again after the restart");
    }
}

/// DOCPIPE_TEST_FAULTS=1 turns on the test-only fault markers (see the tests).
fn test_faults() -> bool {
    std::env::var("DOCPIPE_TEST_FAULTS").is_ok_and(|v| v == "1")
}

pub fn current_routes(rx: &RoutesRx) -> Result<Routes, ActorProcessingErr> {
    rx.borrow()
        .clone()
        .ok_or_else(|| "the pipeline is not wired yet".into())
}

/// What the supervisor needs to (re)build its children.
pub struct Shared {
    pub config: EngineConfig,
    pub db: ReadPool,
    pub blobs: Blobs,
    pub index: SearchIndex,
    pub counters: Arc<Counters>,
    pub routes_tx: watch::Sender<Option<Routes>>,
    pub ocr: Arc<crate::extract::ocr::Ocr>,
    pub model: ModelSlot,
    pub llm: Option<Arc<crate::llm::Llm>>,
    pub types: crate::types::TypesSlot,
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
}

const CHILDREN: [Child; 8] = [
    Child::Catalog,
    Child::Scheduler,
    Child::Trainer,
    Child::Intake,
    Child::Indexer,
    Child::Enrich,
    Child::Classify,
    Child::Extract,
];

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
    restarts: HashMap<Child, u32>,
    routes: Option<Routes>,
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
    }
}

/// Exponential backoff per child: 100 ms, 200 ms, … up to 30 s.
fn next_restart_delay(st: &mut SupervisorState, child: Child) -> Duration {
    let n = st.restarts.entry(child).or_insert(0);
    *n += 1;
    Duration::from_millis((100u64 << (*n - 1).min(8)).min(30_000))
}

impl PipelineSupervisor {
    async fn spawn_child(
        &self,
        me: &ActorRef<SupervisorMsg>,
        st: &mut SupervisorState,
        child: Child,
    ) -> Result<(), ActorProcessingErr> {
        let sh = &st.shared;
        let cfg = &sh.config;
        let rx = sh.routes_tx.subscribe();
        let counters = sh.counters.clone();
        let sup = me.get_cell();
        let routes = st.routes.as_mut();
        let cell = match child {
            Child::Catalog => {
                let args = CatalogArgs {
                    test_faults: test_faults(),
                    path: crate::store::db::db_path(&cfg.data_dir),
                    config: cfg.catalog.clone(),
                    routes: rx,
                    counters,
                    blobs: sh.blobs.clone(),
                };
                let (r, _) = Actor::spawn_linked(None, Catalog, args, sup).await?;
                if let Some(rt) = routes {
                    rt.catalog = r.clone();
                }
                r.get_cell()
            }
            Child::Scheduler => {
                let args = SchedulerArgs {
                    retry: cfg.pipeline.retry.clone(),
                    db: sh.db.clone(),
                    routes: rx,
                    counters,
                };
                let (r, _) = Actor::spawn_linked(None, Scheduler, args, sup).await?;
                if let Some(rt) = routes {
                    rt.scheduler = r.clone();
                }
                r.get_cell()
            }
            Child::Trainer => {
                let args = TrainerArgs {
                    delay: Duration::from_millis(cfg.pipeline.classify.retrain_delay_ms),
                    db: sh.db.clone(),
                    slot: sh.model.clone(),
                    routes: rx,
                    counters,
                };
                let (r, _) = Actor::spawn_linked(None, Trainer, args, sup).await?;
                if let Some(rt) = routes {
                    rt.trainer = r.clone();
                }
                r.get_cell()
            }
            Child::Intake => {
                let args = IntakeArgs {
                    max_in_flight: cfg.pipeline.max_in_flight,
                    max_claims: cfg.pipeline.max_in_flight + cfg.index.commit_batch,
                    lease: Duration::from_millis(cfg.pipeline.lease_ms),
                    db: sh.db.clone(),
                    routes: rx,
                    counters,
                };
                let (r, _) = Actor::spawn_linked(None, Intake, args, sup).await?;
                if let Some(rt) = routes {
                    rt.intake = r.clone();
                }
                r.get_cell()
            }
            Child::Indexer => {
                let args = IndexerArgs {
                    config: cfg.index.clone(),
                    index: sh.index.clone(),
                    routes: rx,
                    counters,
                };
                let (r, _) = Actor::spawn_linked(None, Indexer, args, sup).await?;
                if let Some(rt) = routes {
                    rt.indexer = r.clone();
                }
                r.get_cell()
            }
            Child::Extract => {
                let ctx = Arc::new(ExtractCtx {
                    test_faults: test_faults(),
                    config: cfg.pipeline.extract.clone(),
                    parser_command: cfg.parser_command.clone(),
                    blobs: sh.blobs.clone(),
                    db: sh.db.clone(),
                    routes: rx,
                    counters: counters.clone(),
                    ocr: sh.ocr.clone(),
                });
                let workers = cfg.pipeline.extract.workers;
                counters.extract.pool_size.store(workers as u64, Relaxed);
                // A worker stuck well past its own time limit is a bug: the
                // dead-man's switch replaces it (the lease re-admits its job).
                let dms = DeadMansSwitchConfiguration {
                    detection_timeout: Duration::from_millis(
                        cfg.pipeline.extract.timeout_ms * 2 + cfg.pipeline.ocr.timeout_ms + 10_000,
                    ),
                    kill_worker: true,
                };
                let r = spawn_pool(
                    move || Extractor { ctx: ctx.clone() },
                    workers,
                    Some(dms),
                    sup,
                )
                .await?;
                if let Some(rt) = routes {
                    rt.extract = r.clone();
                }
                r.get_cell()
            }
            Child::Enrich => {
                let ctx = Arc::new(EnrichCtx {
                    types: sh.types.clone(),
                    llm: sh.llm.clone(),
                    db: sh.db.clone(),
                    routes: rx,
                    counters: counters.clone(),
                });
                let workers = cfg.pipeline.enrich.workers;
                counters.enrich.pool_size.store(workers as u64, Relaxed);
                let r =
                    spawn_pool(move || Enricher { ctx: ctx.clone() }, workers, None, sup).await?;
                if let Some(rt) = routes {
                    rt.enrich = r.clone();
                }
                r.get_cell()
            }
            Child::Classify => {
                let ctx = Arc::new(ClassifyCtx {
                    types: sh.types.clone(),
                    model: sh.model.clone(),
                    review_threshold: cfg.pipeline.classify.review_threshold,
                    llm: sh.llm.clone(),
                    routes: rx,
                    counters: counters.clone(),
                });
                let workers = cfg.pipeline.classify.workers;
                counters.classify.pool_size.store(workers as u64, Relaxed);
                let r =
                    spawn_pool(move || Classifier { ctx: ctx.clone() }, workers, None, sup).await?;
                if let Some(rt) = routes {
                    rt.classify = r.clone();
                }
                r.get_cell()
            }
        };
        st.by_id.insert(cell.get_id(), child);
        st.refs.insert(child, cell);
        Ok(())
    }

    fn publish(&self, st: &mut SupervisorState) -> Result<(), ActorProcessingErr> {
        if st.routes.is_none() {
            let get = |c: Child| st.refs.get(&c).cloned().ok_or(format!("{c:?} missing"));
            st.routes = Some(Routes {
                catalog: get(Child::Catalog)?.into(),
                intake: get(Child::Intake)?.into(),
                scheduler: get(Child::Scheduler)?.into(),
                indexer: get(Child::Indexer)?.into(),
                extract: get(Child::Extract)?.into(),
                classify: get(Child::Classify)?.into(),
                enrich: get(Child::Enrich)?.into(),
                trainer: get(Child::Trainer)?.into(),
                counters: st.shared.counters.clone(),
            });
        }
        st.shared.routes_tx.send_replace(st.routes.clone());
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
            routes: None,
            stopping: false,
        };
        for child in CHILDREN {
            self.spawn_child(&me, &mut st, child).await?;
        }
        self.publish(&mut st)?;
        Ok(st)
    }

    async fn post_start(
        &self,
        _me: ActorRef<SupervisorMsg>,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // Boot recovery: the Scheduler re-arms retry timers and wakes the
        // Intake, which admits every active document from SQLite.
        if let Some(r) = &st.routes {
            r.scheduler.cast(SchedulerMsg::Wake)?;
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
                if let Err(e) = self.spawn_child(&me, st, child).await {
                    // Supervisors decide: a child that cannot start yet (its
                    // database briefly unavailable, say) is tried again later.
                    let delay = next_restart_delay(st, child);
                    tracing::error!(actor = ?child, error = %e, retry_in_ms = delay.as_millis() as u64, "restart failed; trying again");
                    me.send_after(delay, move || SupervisorMsg::Restart(child));
                    return Ok(());
                }
                self.publish(st)?;
                tracing::info!(actor = ?child, "actor restarted");
                if let Some(r) = &st.routes {
                    r.intake.cast(IntakeMsg::Reset)?;
                }
            }
            SupervisorMsg::Shutdown(reply) => {
                st.stopping = true;
                // Upstream first: nothing new is admitted while later stages stop.
                for child in [
                    Child::Intake,
                    Child::Scheduler,
                    Child::Extract,
                    Child::Classify,
                    Child::Enrich,
                    Child::Trainer,
                    Child::Indexer,
                    Child::Catalog,
                ] {
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
        let delay = next_restart_delay(st, child);
        tracing::error!(actor = ?child, error = %why, restart_in_ms = delay.as_millis() as u64, "actor died; restarting");
        me.send_after(delay, move || SupervisorMsg::Restart(child));
        Ok(())
    }
}
