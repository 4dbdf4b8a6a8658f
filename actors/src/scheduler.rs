//! Scheduler: retries with exponential backoff and the dead-letter queue.
//!
//! In: stage failures from the workers; `Due(at)` from the Catalog once a
//! retry time is committed; `Wake` at start (boot recovery). Out: the decision (retry at a
//! time, or park as `failed`) to the Catalog, and a `Rescan` to the Intake when
//! the earliest retry falls due. Retry times live in SQLite, so nothing is
//! lost across restarts: at boot the earliest one arms the timer again.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::config::RetryConfig;
use crate::counters::Counters;
use crate::errors::Code;
use crate::model::now_ms;
use crate::routes::{current_routes, tell, CatalogMsg, IntakeMsg, RoutesRx, SchedulerMsg};
use crate::store::pool::ReadPool;
use crate::store::queue::earliest_retry;

/// When the next attempt after `attempts` failed ones should run, or None
/// when the document should be parked.
pub fn next_attempt_at(
    policy: &RetryConfig,
    attempts: u32,
    retryable: bool,
    now: i64,
) -> Option<i64> {
    if !retryable || attempts >= policy.max_attempts {
        return None;
    }
    let exp = attempts.saturating_sub(1).min(30);
    let backoff = policy
        .initial_backoff_ms
        .saturating_mul(1u64 << exp)
        .min(policy.max_backoff_ms);
    Some(now + backoff as i64)
}

pub struct Scheduler;

pub struct SchedulerArgs {
    pub retry: RetryConfig,
    pub db: ReadPool,
    pub routes: RoutesRx,
    pub counters: Arc<Counters>,
}

pub struct SchedulerState {
    args: SchedulerArgs,
    /// The time the armed timer fires, if one is armed.
    armed_at: Option<i64>,
}

impl Actor for Scheduler {
    type Msg = SchedulerMsg;
    type State = SchedulerState;
    type Arguments = SchedulerArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<SchedulerMsg>,
        args: SchedulerArgs,
    ) -> Result<SchedulerState, ActorProcessingErr> {
        args.counters.scheduler.pool_size.store(1, Relaxed);
        Ok(SchedulerState {
            args,
            armed_at: None,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<SchedulerMsg>,
        msg: SchedulerMsg,
        st: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SchedulerMsg::Failed {
                job,
                error,
                retryable,
            } => {
                // While the blob store is away a document waits for it: the
                // attempt is not counted, and it is tried again after the
                // longest backoff.
                let waits = error.code == Code::StorageUnavailable.as_str();
                let (attempts, retry_at) = if waits {
                    (
                        job.attempts,
                        Some(now_ms() + st.args.retry.max_backoff_ms as i64),
                    )
                } else {
                    let attempts = job.attempts + 1;
                    let at = next_attempt_at(&st.args.retry, attempts, retryable, now_ms());
                    (attempts, at)
                };
                let c = &st.args.counters;
                c.scheduler.num_processed.fetch_add(1, Relaxed);
                if retry_at.is_some() {
                    c.num_retries_scheduled.fetch_add(1, Relaxed);
                } else {
                    c.num_parked.fetch_add(1, Relaxed);
                    tracing::warn!(doc_id = %job.id, request_id = job.request_id.as_deref().unwrap_or("-"), stage = %job.stage, code = %error.code, attempts, "document parked as failed");
                }
                let decision = CatalogMsg::Failure {
                    job: *job,
                    attempts,
                    retry_at,
                    error,
                };
                tell(
                    &current_routes(&st.args.routes)?.catalog,
                    decision,
                    "catalog",
                );
            }
            SchedulerMsg::Due(at) => arm(&me, st, at),
            SchedulerMsg::Wake => {
                st.armed_at = None;
                tell(
                    &current_routes(&st.args.routes)?.intake,
                    IntakeMsg::Rescan,
                    "intake",
                );
                if let Some(at) = st.args.db.run(earliest_retry).await? {
                    if at > now_ms() {
                        arm(&me, st, at);
                    }
                }
            }
        }
        Ok(())
    }
}

fn arm(me: &ActorRef<SchedulerMsg>, st: &mut SchedulerState, at: i64) {
    if st.armed_at.is_some_and(|armed| armed <= at) {
        return; // an earlier wake-up is armed; it will look for this one
    }
    st.armed_at = Some(at);
    let delay = Duration::from_millis((at - now_ms()).max(0) as u64);
    me.send_after(delay, || SchedulerMsg::Wake);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_parks() {
        let p = RetryConfig {
            max_attempts: 5,
            initial_backoff_ms: 100,
            max_backoff_ms: 350,
        };
        assert_eq!(next_attempt_at(&p, 1, true, 0), Some(100));
        assert_eq!(next_attempt_at(&p, 2, true, 0), Some(200));
        assert_eq!(next_attempt_at(&p, 3, true, 0), Some(350));
        assert_eq!(next_attempt_at(&p, 5, true, 0), None);
        assert_eq!(next_attempt_at(&p, 1, false, 0), None);
    }
}
