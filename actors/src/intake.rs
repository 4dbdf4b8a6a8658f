//! Intake: admission control. SQLite is the queue; this actor decides what
//! enters the actor chain.
//!
//! In: `Wake` (new uploads committed, retries due, boot), `Release` (a
//! document left the chain: indexed, failed, or waiting for a retry), `Reset`
//! (a stage actor restarted, so what was in flight there is lost), `Tick`
//! (lease check), `Drain` (shutdown). Out: [`DocJob`]s to the actor for each
//! document's stage, never more than `pipeline.max_in_flight` at once. Each
//! admission holds a lease; one that outlives `pipeline.lease_ms` is presumed
//! lost (a worker crashed with it) and the document is admitted again. Stages
//! are idempotent, so a second admission is harmless.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::catalog::forward;
use crate::counters::Counters;
use crate::model::{now_ms, DocJob, Stage};
use crate::pipeline::{current_routes, RoutesRx};
use crate::store::db::{self, ReadPool};

pub enum IntakeMsg {
    Wake,
    Release(Vec<(i64, u64)>),
    Reset,
    Tick,
    /// Stop admitting; reply when nothing is in flight.
    Drain(RpcReplyPort<()>),
    /// Internal: refill after a burst of messages.
    Refill,
}

pub struct Intake;

pub struct IntakeArgs {
    pub max_in_flight: usize,
    pub lease: Duration,
    pub db: ReadPool,
    pub routes: RoutesRx,
    pub counters: Arc<Counters>,
}

struct Lease {
    admission: u64,
    deadline: Instant,
}

pub struct IntakeState {
    args: IntakeArgs,
    in_flight: HashMap<i64, Lease>,
    next_admission: u64,
    draining: bool,
    drain_waiters: Vec<RpcReplyPort<()>>,
    refill_queued: bool,
}

impl Actor for Intake {
    type Msg = IntakeMsg;
    type State = IntakeState;
    type Arguments = IntakeArgs;

    async fn pre_start(
        &self,
        me: ActorRef<IntakeMsg>,
        args: IntakeArgs,
    ) -> Result<IntakeState, ActorProcessingErr> {
        let tick = (args.lease / 4).clamp(Duration::from_millis(200), Duration::from_secs(30));
        me.send_interval(tick, || IntakeMsg::Tick);
        args.counters.intake.pool_size.store(1, Relaxed);
        Ok(IntakeState {
            args,
            in_flight: HashMap::new(),
            next_admission: 1,
            draining: false,
            drain_waiters: Vec::new(),
            refill_queued: false,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<IntakeMsg>,
        msg: IntakeMsg,
        st: &mut IntakeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            IntakeMsg::Wake => queue_refill(&me, st)?,
            IntakeMsg::Release(done) => {
                for (seq, admission) in done {
                    if st
                        .in_flight
                        .get(&seq)
                        .is_some_and(|l| l.admission == admission)
                    {
                        st.in_flight.remove(&seq);
                    }
                }
                queue_refill(&me, st)?;
            }
            IntakeMsg::Reset => {
                st.in_flight.clear();
                queue_refill(&me, st)?;
            }
            IntakeMsg::Tick => {
                let now = Instant::now();
                let before = st.in_flight.len();
                st.in_flight.retain(|_, l| l.deadline > now);
                let expired = before - st.in_flight.len();
                if expired > 0 {
                    tracing::warn!(
                        expired,
                        "admissions outlived their lease; admitting those documents again"
                    );
                    st.args
                        .counters
                        .num_leases_expired
                        .fetch_add(expired as u64, Relaxed);
                }
                queue_refill(&me, st)?;
            }
            IntakeMsg::Drain(reply) => {
                st.draining = true;
                st.drain_waiters.push(reply);
            }
            IntakeMsg::Refill => {
                st.refill_queued = false;
                refill(st).await?;
            }
        }
        st.args
            .counters
            .num_in_flight
            .store(st.in_flight.len() as u64, Relaxed);
        if st.draining && st.in_flight.is_empty() {
            for w in st.drain_waiters.drain(..) {
                let _ = w.send(());
            }
        }
        Ok(())
    }
}

fn queue_refill(me: &ActorRef<IntakeMsg>, st: &mut IntakeState) -> Result<(), ActorProcessingErr> {
    if !st.refill_queued && !st.draining {
        st.refill_queued = true;
        me.cast(IntakeMsg::Refill)?;
    }
    Ok(())
}

/// Admits due documents, oldest first, until the permits are used up.
async fn refill(st: &mut IntakeState) -> Result<(), ActorProcessingErr> {
    if st.draining {
        return Ok(());
    }
    let free = st.args.max_in_flight.saturating_sub(st.in_flight.len());
    if free == 0 {
        return Ok(());
    }
    // Ask for enough rows to skip the ones already in flight.
    let want = free + st.in_flight.len();
    let busy: Vec<i64> = st.in_flight.keys().copied().collect();
    let rows = st
        .args
        .db
        .run(move |c| {
            let mut out = Vec::new();
            for p in db::ready_documents(c, now_ms(), want)? {
                if busy.contains(&p.seq) || out.len() >= free {
                    continue;
                }
                // Past extraction, the next stage needs the committed text.
                let text = match p.stage {
                    Stage::Queued => None,
                    _ => db::get_text_by_seq(c, p.seq)?,
                };
                out.push((p, text));
            }
            Ok(out)
        })
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let routes = current_routes(&st.args.routes)?;
    let deadline = Instant::now() + st.args.lease;
    for (p, text) in rows {
        let admission = st.next_admission;
        st.next_admission += 1;
        st.in_flight.insert(
            p.seq,
            Lease {
                admission,
                deadline,
            },
        );
        st.args.counters.intake.num_processed.fetch_add(1, Relaxed);
        forward(
            &routes,
            DocJob {
                seq: p.seq,
                id: p.id,
                admission,
                stage: p.stage,
                mime: p.mime,
                filename: p.filename,
                title: p.title,
                attempts: p.attempts,
                text: text.map(Arc::from),
                doc_type: p.doc_type,
                confidence: p.confidence,
            },
        )?;
    }
    Ok(())
}
