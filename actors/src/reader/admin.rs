//! Reads for administration and for Paperless clients: the audit trail,
//! tags and document types, upload tasks, tokens, the learned classifier
//! and the types in force.

use std::collections::BTreeMap;

use anyhow::Result;

use super::{ClassifierInfo, Reader, TypeInfo};
use crate::model::{format_ms, Kind, Scope};
use crate::store::events::audit_events;
use crate::store::labels::{get_label, list_labels};
use crate::store::tasks::tasks;
use crate::store::tokens::list_tokens;
use crate::store::{Event, Label, LabelKind, TaskView, TokenRow};
use crate::types;

impl Reader {
    pub async fn audit(
        &self,
        workspace: Option<String>,
        since_ms: Option<i64>,
        after_seq: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Event>> {
        self.db
            .run(move |c| audit_events(c, workspace.as_deref(), since_ms, after_seq, limit))
            .await
    }

    pub async fn labels(
        &self,
        kind: LabelKind,
        scope: &Scope,
        offset: usize,
        limit: usize,
    ) -> Result<(u64, Vec<Label>)> {
        let scope = scope.clone();
        self.db
            .run(move |c| list_labels(c, kind, &scope, offset, limit))
            .await
    }

    pub async fn label(&self, kind: LabelKind, id: i64, scope: &Scope) -> Result<Option<Label>> {
        let scope = scope.clone();
        self.db.run(move |c| get_label(c, kind, id, &scope)).await
    }

    pub async fn tasks(
        &self,
        task_id: Option<String>,
        scope: &Scope,
        limit: usize,
    ) -> Result<Vec<TaskView>> {
        let scope = scope.clone();
        self.db
            .run(move |c| tasks(c, task_id.as_deref(), &scope, limit))
            .await
    }

    pub async fn tokens(&self) -> Result<Vec<TokenRow>> {
        self.db.run(list_tokens).await
    }

    pub fn classifier(&self) -> ClassifierInfo {
        let trained = self.model.read().unwrap_or_else(|e| e.into_inner()).clone();
        let review_threshold = self.config.pipeline.classify.review_threshold;
        match trained {
            Some(t) => ClassifierInfo {
                model: Some("naive_bayes"),
                trained_at: Some(format_ms(t.trained_at)),
                labels: t
                    .model
                    .labels
                    .iter()
                    .cloned()
                    .zip(t.model.counts.iter().copied())
                    .collect(),
                samples: t.model.counts.iter().sum(),
                accuracy: t.model.accuracy,
                review_threshold,
            },
            None => ClassifierInfo {
                model: None,
                trained_at: None,
                labels: BTreeMap::new(),
                samples: 0,
                accuracy: None,
                review_threshold,
            },
        }
    }

    pub fn types(&self) -> Vec<TypeInfo> {
        let t = types::current(&self.types);
        t.list
            .iter()
            .map(|d| TypeInfo {
                def: d.clone(),
                origin: t.origin.get(&d.name).copied().unwrap_or("config"),
            })
            .collect()
    }

    pub fn field_kind(&self, name: &str) -> Kind {
        types::current(&self.types).field_kind(name)
    }
}
