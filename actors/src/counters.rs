//! Counters are each actor's observable state: atomics, one struct per actor,
//! read by the status endpoint, `/metrics` and the tests alike.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use serde::Serialize;

#[derive(Debug, Default)]
pub struct ActorCounters {
    pub num_processed: AtomicU64,
    pub num_failed: AtomicU64,
    /// Workers busy with a job right now.
    pub num_busy: AtomicU64,
    /// Jobs sent to the actor and not yet started.
    pub num_queued: AtomicI64,
    pub busy_micros: AtomicU64,
    pub num_restarts: AtomicU64,
    pub pool_size: AtomicU64,
}

impl ActorCounters {
    pub fn queued(&self, n: i64) {
        self.num_queued.fetch_add(n, Relaxed);
    }

    /// Marks a job started; the returned guard marks it finished when dropped.
    pub fn start_job(&self) -> JobTimer<'_> {
        self.num_queued.fetch_sub(1, Relaxed);
        self.num_busy.fetch_add(1, Relaxed);
        JobTimer {
            counters: self,
            started: Instant::now(),
        }
    }

    pub fn snapshot(&self, name: &'static str) -> ActorSnapshot {
        ActorSnapshot {
            name,
            pool_size: self.pool_size.load(Relaxed),
            busy: self.num_busy.load(Relaxed),
            queue_depth: self.num_queued.load(Relaxed).max(0) as u64,
            restarts: self.num_restarts.load(Relaxed),
            processed: self.num_processed.load(Relaxed),
            failed: self.num_failed.load(Relaxed),
            busy_micros: self.busy_micros.load(Relaxed),
        }
    }
}

pub struct JobTimer<'a> {
    counters: &'a ActorCounters,
    started: Instant,
}

impl Drop for JobTimer<'_> {
    fn drop(&mut self) {
        self.counters.num_busy.fetch_sub(1, Relaxed);
        self.counters
            .busy_micros
            .fetch_add(self.started.elapsed().as_micros() as u64, Relaxed);
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ActorSnapshot {
    pub name: &'static str,
    pub pool_size: u64,
    pub busy: u64,
    pub queue_depth: u64,
    pub restarts: u64,
    pub processed: u64,
    pub failed: u64,
    pub busy_micros: u64,
}

/// All the actors' counters, shared (behind an `Arc`) by the actors that
/// write them and the readers that report them.
#[derive(Debug, Default)]
pub struct Counters {
    pub intake: ActorCounters,
    pub extract: ActorCounters,
    pub classify: ActorCounters,
    pub enrich: ActorCounters,
    pub indexer: ActorCounters,
    pub catalog: ActorCounters,
    pub scheduler: ActorCounters,
    pub trainer: ActorCounters,
    pub embedder: ActorCounters,
    /// Webhook deliveries: processed = delivered, failed = attempts that
    /// did not go through, queue = deliveries waiting for another attempt,
    /// pool = webhooks.
    pub notifier: ActorCounters,
    pub supervisor: ActorCounters,
    /// Documents admitted and not yet released.
    pub num_in_flight: AtomicU64,
    pub num_commits_catalog: AtomicU64,
    pub num_commits_index: AtomicU64,
    pub num_retries_scheduled: AtomicU64,
    pub num_parked: AtomicU64,
    pub num_leases_expired: AtomicU64,
}

impl Counters {
    pub fn actors(&self) -> Vec<ActorSnapshot> {
        vec![
            self.intake.snapshot("intake"),
            self.extract.snapshot("extract"),
            self.classify.snapshot("classify"),
            self.enrich.snapshot("enrich"),
            self.indexer.snapshot("indexer"),
            self.catalog.snapshot("catalog"),
            self.scheduler.snapshot("scheduler"),
            self.trainer.snapshot("trainer"),
            self.embedder.snapshot("embedder"),
            self.notifier.snapshot("notifier"),
        ]
    }
}
