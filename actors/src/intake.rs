//! Intake: admission control. SQLite is the queue; this actor decides what
//! enters the actor chain.
//!
//! In: `Wake` (new uploads committed), `Rescan` (something below the scan
//! cursor became due: a retry time, the retry API, a restart), `Started` (a
//! worker took a job), `Handoff` (the Indexer took documents' text),
//! `Committed` (one per Catalog commit: jobs sent on to a stage's queue, and
//! jobs that left the chain: indexed, failed, or waiting for a retry),
//! `Reset` (a stage actor restarted, so what was in flight there is lost),
//! `Tick` (lease check), `Drain` (shutdown). Out: [`DocJob`]s to the actor for each document's stage.
//!
//! Two bounds. A *permit* is held while a document's text is in memory in the
//! chain (Extract, Classify, the hop to the Indexer): at most
//! `pipeline.max_in_flight`. A *claim* is held from admission until release,
//! so no document is admitted twice; documents handed to the Indexer keep
//! their claim (no text) until the commit that makes them `indexed`, so
//! claims are bounded by `max_in_flight + index.commit_batch`.
//!
//! Leases find jobs lost with a worker. A lease of `pipeline.lease_ms` runs
//! while a worker holds the job (`Started`, or the Indexer's `Handoff`); a job
//! waiting in a stage's queue (admitted, or sent on by a Catalog commit) is presumed lost only once it has waited a whole lease *and* its
//! stage has not started any job for a whole lease. So a long queue in front
//! of a slow stage (an LLM on a CPU) costs time, not attempts. A lost job is
//! reported to the Scheduler as a failed attempt (`lost`), so the document is
//! retried with backoff and parked if it keeps getting lost. Stages are
//! idempotent, so a late result of a lost attempt is harmless. Without an
//! LLM a document's lease costs two messages of its own (`Started`, and a
//! share of the batched `Handoff` and `Committed`).
//!
//! Documents are admitted in `seq` order from a cursor, so a refill reads
//! only the rows it admits; events that make older rows due restart the scan.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::counters::Counters;
use crate::model::{now_ms, DocJob, ErrorInfo, Stage};
use crate::routes::{current_routes, forward, tell, IntakeMsg, RoutesRx, SchedulerMsg};
use crate::store::documents::get_text_by_seq;
use crate::store::pool::ReadPool;
use crate::store::queue::ready_documents_after;

pub struct Intake;

pub struct IntakeArgs {
    pub max_in_flight: usize,
    /// Most documents claimed at once (in the chain or awaiting an index commit).
    pub max_claims: usize,
    pub lease: Duration,
    pub db: ReadPool,
    pub routes: RoutesRx,
    pub counters: Arc<Counters>,
}

/// Where a claimed job is, for its lease.
enum Lease {
    /// A worker holds it; lost if it still does at `until`.
    Held { until: Instant },
    /// It waits in the queue of this stage's workers.
    Queued { stage: Stage, since: Instant },
}

struct Claim {
    lease: Lease,
    permit: bool,
    /// The admitted job without its text, to report it if its lease expires.
    job: DocJob,
    /// The lease expired and a `lost` failure was reported; the claim stays
    /// until the Catalog has recorded it (so no second admission meanwhile).
    expired: bool,
    /// A rescan passed over this document while it was claimed (say, it was
    /// edited back to `classified` just as it was finishing): look at it
    /// again once it is released.
    recheck: bool,
}

pub struct IntakeState {
    args: IntakeArgs,
    claims: HashMap<i64, Claim>,
    permits_used: usize,
    /// Highest seq the current scan has passed.
    cursor: i64,
    next_admission: u64,
    draining: bool,
    drain_waiters: Vec<RpcReplyPort<()>>,
    refill_queued: bool,
    /// When each stage's workers last took a job from their queue.
    last_start: HashMap<Stage, Instant>,
}

impl IntakeState {
    /// The claim of this admission, if it is still the one in flight.
    fn claim(&mut self, seq: i64, admission: u64) -> Option<&mut Claim> {
        self.claims
            .get_mut(&seq)
            .filter(|c| c.job.admission == admission)
    }

    /// A worker took the job: its lease runs from now.
    fn held(&mut self, seq: i64, admission: u64) {
        let (now, lease) = (Instant::now(), self.args.lease);
        if let Some(c) = self.claim(seq, admission) {
            if let Lease::Queued { stage, .. } = c.lease {
                c.lease = Lease::Held { until: now + lease };
                self.last_start.insert(stage, now);
            }
        }
    }

    /// Lost: held past its lease, or waiting a whole lease in the queue of a
    /// stage that has not started a job for as long.
    fn is_lost(&self, c: &Claim, now: Instant) -> bool {
        match c.lease {
            Lease::Held { until } => until <= now,
            Lease::Queued { stage, since } => {
                let stalled = |t: Instant| now.saturating_duration_since(t) >= self.args.lease;
                stalled(since) && self.last_start.get(&stage).is_none_or(|t| stalled(*t))
            }
        }
    }

    fn drop_claim(&mut self, seq: i64) {
        if let Some(c) = self.claims.remove(&seq) {
            if c.permit {
                self.permits_used -= 1;
            }
            if c.recheck {
                self.cursor = self.cursor.min(seq - 1);
            }
        }
    }
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
            claims: HashMap::new(),
            permits_used: 0,
            cursor: 0,
            next_admission: 1,
            draining: false,
            drain_waiters: Vec::new(),
            refill_queued: false,
            last_start: HashMap::new(),
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
            IntakeMsg::Rescan => {
                st.cursor = 0;
                for c in st.claims.values_mut() {
                    c.recheck = true;
                }
                queue_refill(&me, st)?;
            }
            IntakeMsg::Started((seq, admission)) => st.held(seq, admission),
            IntakeMsg::Handoff(claims) => {
                for (seq, admission) in claims {
                    st.held(seq, admission);
                    if let Some(c) = st.claim(seq, admission).filter(|c| c.permit) {
                        c.permit = false;
                        st.permits_used -= 1;
                    }
                }
                queue_refill(&me, st)?;
            }
            IntakeMsg::Committed {
                queued,
                released,
                wake,
            } => {
                let now = Instant::now();
                for ((seq, admission), stage) in queued {
                    if let Some(c) = st.claim(seq, admission) {
                        c.lease = Lease::Queued { stage, since: now };
                    }
                }
                let freed = !released.is_empty();
                for (seq, admission) in released {
                    if st.claim(seq, admission).is_some() {
                        st.drop_claim(seq);
                    }
                }
                if wake || freed {
                    queue_refill(&me, st)?;
                }
            }
            IntakeMsg::Reset => {
                st.claims.clear();
                st.permits_used = 0;
                st.cursor = 0;
                queue_refill(&me, st)?;
            }
            IntakeMsg::Tick => {
                // A claim past its lease was lost with a worker: report it as a
                // failed attempt, like any other, so a document that keeps
                // killing its worker is parked instead of admitted forever.
                let now = Instant::now();
                let lost_seqs: Vec<i64> = st
                    .claims
                    .iter()
                    .filter(|(_, c)| !c.expired && st.is_lost(c, now))
                    .map(|(seq, _)| *seq)
                    .collect();
                let mut lost = Vec::new();
                for seq in lost_seqs {
                    let Some(c) = st.claims.get_mut(&seq) else {
                        continue;
                    };
                    c.expired = true;
                    if c.permit {
                        c.permit = false;
                        st.permits_used -= 1;
                    }
                    lost.push(c.job.clone());
                }
                if !lost.is_empty() {
                    tracing::warn!(
                        expired = lost.len(),
                        "admissions outlived their lease; counting a lost attempt"
                    );
                    st.args
                        .counters
                        .num_leases_expired
                        .fetch_add(lost.len() as u64, Relaxed);
                    let scheduler = current_routes(&st.args.routes)?.scheduler;
                    for job in lost {
                        let error = ErrorInfo::new(
                            "lost",
                            format!("no result after {} ms (pipeline.lease_ms); the worker was probably lost", st.args.lease.as_millis()),
                        );
                        tell(
                            &scheduler,
                            SchedulerMsg::Failed {
                                job: Box::new(job),
                                error,
                                retryable: true,
                            },
                            "scheduler",
                        );
                    }
                    // The document may have moved on to a later stage, where
                    // the failure does not apply: look again from the start.
                    st.cursor = 0;
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
            .store(st.claims.len() as u64, Relaxed);
        if st.draining && st.claims.is_empty() {
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

/// Admits due documents from the cursor on, until permits or claims run out.
async fn refill(st: &mut IntakeState) -> Result<(), ActorProcessingErr> {
    if st.draining {
        return Ok(());
    }
    let free = st
        .args
        .max_in_flight
        .saturating_sub(st.permits_used)
        .min(st.args.max_claims.saturating_sub(st.claims.len()));
    if free == 0 {
        return Ok(());
    }
    let claimed: HashSet<i64> = st.claims.keys().copied().collect();
    let cursor = st.cursor;
    let (rows, new_cursor) = st
        .args
        .db
        .run(move |c| {
            let mut out = Vec::new();
            let mut cursor = cursor;
            let now = now_ms();
            loop {
                let page = ready_documents_after(c, cursor, now, free * 2)?;
                let exhausted = page.len() < free * 2;
                for p in page {
                    if out.len() >= free {
                        break;
                    }
                    cursor = p.seq;
                    if claimed.contains(&p.seq) {
                        continue;
                    }
                    // Past extraction, the next stage needs the committed text.
                    let text = match p.stage {
                        Stage::Queued => None,
                        _ => get_text_by_seq(c, p.seq)?,
                    };
                    out.push((p, text));
                }
                if out.len() >= free || exhausted {
                    return Ok((out, cursor));
                }
            }
        })
        .await?;
    st.cursor = new_cursor;
    if rows.is_empty() {
        return Ok(());
    }
    let routes = current_routes(&st.args.routes)?;
    let now = Instant::now();
    for (mut job, text) in rows {
        job.admission = st.next_admission;
        st.next_admission += 1;
        st.claims.insert(
            job.seq,
            Claim {
                lease: Lease::Queued {
                    stage: job.stage,
                    since: now,
                },
                permit: true,
                job: job.clone(),
                expired: false,
                recheck: false,
            },
        );
        st.permits_used += 1;
        st.args.counters.intake.num_processed.fetch_add(1, Relaxed);
        forward(
            &routes,
            DocJob {
                text: text.map(Arc::from),
                ..job
            },
        );
    }
    Ok(())
}
