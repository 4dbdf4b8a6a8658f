//! The pipeline's status: documents per stage, what each actor is doing,
//! what waits for a person or a service.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;

use anyhow::Result;

use super::{Commits, EmbedStatus, Reader, StageStatus, Status, StorageStatus};
use crate::counters::ActorCounters;
use crate::llm::LlmStatus;
use crate::model::{Scope, Stage};
use crate::store::documents::{mime_counts, stage_counts, MimeCount};
use crate::store::queue::count_flagged;
use crate::store::Flag;

impl Reader {
    /// The scope's documents per media type, most first (with the
    /// characters of their text): the figures of Paperless's statistics.
    pub async fn mime_counts(&self, scope: &Scope) -> Result<Vec<MimeCount>> {
        let owned = scope.clone();
        self.db.run(move |c| mime_counts(c, &owned)).await
    }

    /// Where the originals live: `local`, or the bucket and prefix.
    pub fn storage(&self) -> String {
        self.blobs.describe()
    }

    pub async fn status(&self, scope: &Scope) -> Result<Status> {
        let owned = scope.clone();
        let counts: BTreeMap<Stage, u64> = self
            .db
            .run(move |c| stage_counts(c, &owned))
            .await?
            .into_iter()
            .collect();
        let owned = scope.clone();
        let [needs_ocr, needs_llm, needs_review] = self
            .db
            .run(move |c| {
                let count = |f| count_flagged(c, f, &owned);
                Ok([count(Flag::Ocr)?, count(Flag::Llm)?, count(Flag::Review)?])
            })
            .await?;
        let emb = &self.embedding;
        let pending = match (&emb.embedder, scope) {
            (Some(e), Scope::All) => {
                let id = e.id().to_string();
                self.db
                    .run(move |c| crate::store::vectors::count_pending(c, &id))
                    .await?
            }
            _ => 0,
        };
        let (vdocs, vpassages) = emb.vectors.len();
        let embed = EmbedStatus {
            backend: emb.backend.as_str(),
            model: emb.model.clone(),
            available: emb.embedder.is_some(),
            problem: emb.problem.clone(),
            pending,
            documents: vdocs as u64,
            passages: vpassages as u64,
        };
        let c = &self.counters;
        let n = |s: Stage| counts.get(&s).copied().unwrap_or(0);
        let busy =
            |a: &ActorCounters| a.num_busy.load(Relaxed) + a.num_queued.load(Relaxed).max(0) as u64;
        let mut stages = BTreeMap::new();
        // Each stage reports the actor that takes documents out of it.
        let pairs = [
            (Stage::Queued, Some(&c.extract)),
            (Stage::Extracted, Some(&c.classify)),
            (Stage::Classified, Some(&c.enrich)),
            (Stage::Enriched, Some(&c.indexer)),
            (Stage::Indexed, None),
            (Stage::Failed, None),
        ];
        for (stage, actor) in pairs {
            let (in_flight, processed, failed) = match actor {
                Some(a) => (
                    busy(a),
                    a.num_processed.load(Relaxed),
                    a.num_failed.load(Relaxed),
                ),
                None if stage == Stage::Failed => (0, c.num_parked.load(Relaxed), 0),
                None => (0, c.indexer.num_processed.load(Relaxed), 0),
            };
            stages.insert(
                stage.as_str(),
                StageStatus {
                    documents: n(stage),
                    in_flight,
                    processed,
                    failed,
                },
            );
        }
        let mut status = Status {
            stages,
            actors: c.actors(),
            in_flight: c.num_in_flight.load(Relaxed),
            max_in_flight: self.config.pipeline.max_in_flight,
            commits: Commits {
                catalog: c.num_commits_catalog.load(Relaxed),
                index: c.num_commits_index.load(Relaxed),
            },
            retries_scheduled: c.num_retries_scheduled.load(Relaxed),
            parked: c.num_parked.load(Relaxed),
            leases_expired: c.num_leases_expired.load(Relaxed),
            index_docs: self.index.num_docs(),
            needs_ocr,
            ocr: self.ocr.status().clone(),
            needs_llm,
            needs_review,
            storage: {
                let b = self.blobs.breaker();
                StorageStatus {
                    backend: if b.is_some() { "s3" } else { "local" },
                    location: self.blobs.describe(),
                    breaker: b.map(|b| b.0),
                    failures: b.map_or(0, |b| b.1),
                    opened: b.map_or(0, |b| b.2),
                }
            },
            embed,
            llm: match &self.llm {
                Some(l) => l.status(),
                None => LlmStatus {
                    configured: false,
                    model: None,
                    endpoints: Vec::new(),
                },
            },
        };
        if *scope != Scope::All {
            for s in status.stages.values_mut() {
                (s.in_flight, s.processed, s.failed) = (0, 0, 0);
            }
            status.actors.clear();
            status.in_flight = 0;
            status.commits = Commits {
                catalog: 0,
                index: 0,
            };
            (
                status.retries_scheduled,
                status.parked,
                status.leases_expired,
            ) = (0, 0, 0);
            status.index_docs = 0;
            (status.embed.documents, status.embed.passages) = (0, 0);
        }
        Ok(status)
    }

    pub fn ocr_available(&self) -> bool {
        self.ocr.available()
    }

    pub fn llm_configured(&self) -> bool {
        self.llm.is_some()
    }

    pub fn llm(&self) -> Option<std::sync::Arc<crate::llm::Llm>> {
        self.llm.clone()
    }
}
