//! Reads for administration and for Paperless clients: the audit trail,
//! tags and document types, upload tasks, tokens, the learned classifier
//! and the types in force.

use std::collections::BTreeMap;

use anyhow::Result;

use super::{ClassifierInfo, Reader, TypeInfo};
use crate::model::{format_ms, Kind, Scope};
use crate::store::events::audit_events;
use crate::store::labels::{get_label, list_labels, LabelFilter};
use crate::store::tasks::tasks;
use crate::store::tokens::list_tokens;
use crate::store::webhooks::{
    get_webhook, list_deliveries, list_webhooks, DeliveryRow, WebhookRow,
};
use crate::store::workflows::{get_workflow, list_workflows, WorkflowRow};
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
        self.labels_where(kind, scope, LabelFilter::default(), offset, limit)
            .await
    }

    /// The labels `filter` picks, by name.
    pub async fn labels_where(
        &self,
        kind: LabelKind,
        scope: &Scope,
        filter: LabelFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(u64, Vec<Label>)> {
        let scope = scope.clone();
        self.db
            .run(move |c| list_labels(c, kind, &scope, &filter, offset, limit))
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

    /// Documents per type and period, money sums, stage latencies and
    /// failures over a window (`GET /api/v1/analytics`).
    pub async fn analytics(
        &self,
        q: crate::store::analytics::AnalyticsQuery,
        scope: &Scope,
    ) -> Result<crate::store::analytics::Analytics> {
        let scope = scope.clone();
        self.db
            .run(move |c| crate::store::analytics::analytics(c, &q, &scope))
            .await
    }

    /// Webhook deliveries waiting for another attempt, and failed.
    pub async fn outbox_depth(&self) -> Result<(u64, u64)> {
        self.db.run(crate::store::webhooks::outbox_depth).await
    }

    /// The workflows of the scope's workspaces.
    pub async fn workflows(&self, scope: &Scope) -> Result<Vec<WorkflowRow>> {
        let scope = scope.clone();
        self.db.run(move |c| list_workflows(c, &scope)).await
    }

    pub async fn workflow(&self, name: &str, scope: &Scope) -> Result<Option<WorkflowRow>> {
        let (name, scope) = (name.to_string(), scope.clone());
        self.db.run(move |c| get_workflow(c, &name, &scope)).await
    }

    /// The webhooks of the scope's workspaces.
    pub async fn webhooks(&self, scope: &Scope) -> Result<Vec<WebhookRow>> {
        let scope = scope.clone();
        self.db.run(move |c| list_webhooks(c, &scope)).await
    }

    /// A webhook of the scope, with its deliveries in `state` (None: those
    /// waiting and those failed), newest first.
    pub async fn webhook(
        &self,
        id: &str,
        scope: &Scope,
        state: Option<String>,
        limit: usize,
    ) -> Result<Option<(WebhookRow, Vec<DeliveryRow>)>> {
        let (id, scope) = (id.to_string(), scope.clone());
        self.db
            .run(move |c| {
                let Some(w) = get_webhook(c, &id, &scope)? else {
                    return Ok(None);
                };
                let d = list_deliveries(c, &id, state.as_deref(), limit)?;
                Ok(Some((w, d)))
            })
            .await
    }

    /// The workspace's learned classifier.
    pub fn classifier(&self, workspace: &str) -> ClassifierInfo {
        let trained = crate::classifier::current(&self.model, workspace);
        let review_threshold = self.config.pipeline.classify.review_threshold;
        let workspace = workspace.to_string();
        match trained {
            Some(t) => ClassifierInfo {
                workspace,
                model: Some(if t.model.embedder().is_some() {
                    "naive_bayes+meaning"
                } else {
                    "naive_bayes"
                }),
                meaning_share: Some(t.model.meaning_share()),
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
                workspace,
                model: None,
                meaning_share: None,
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

/// A field name as Paperless clients see it (a custom field): every field
/// of the types in force, the common ones, and those set by hand or made
/// over the API.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FieldName {
    /// Stable for the name: see [`field_id`].
    pub id: i64,
    pub name: String,
    pub kind: Kind,
    /// Documents of the scope with a value for it.
    pub document_count: i64,
}

/// The id of a field name: 31 bits of its FNV-1a hash, so that it is the
/// same on every instance and across restarts without a table of ids (the
/// names are a few hundred at most; a clash is reported by
/// [`Reader::field_names`] and the later name left out).
pub fn field_id(name: &str) -> i64 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    i64::from(h & 0x7fff_ffff).max(1)
}

impl Reader {
    /// Every field name with its kind and how many documents of the scope
    /// have a value for it, by name.
    pub async fn field_names(&self, scope: &Scope) -> Result<Vec<FieldName>> {
        let t = types::current(&self.types);
        let mut kinds: BTreeMap<String, Kind> = BTreeMap::new();
        for f in t
            .list
            .iter()
            .flat_map(|t| t.fields.iter())
            .chain(crate::fields::common_fields().iter())
        {
            kinds.entry(f.name.clone()).or_insert(f.kind);
        }
        let scope = scope.clone();
        let (stored, counts) = self
            .db
            .run(move |c| crate::store::edits::field_names_and_counts(c, &scope))
            .await?;
        for (name, kind) in stored {
            kinds.entry(name).or_insert(kind);
        }
        let mut seen: BTreeMap<i64, String> = BTreeMap::new();
        let mut out = Vec::with_capacity(kinds.len());
        for (name, kind) in kinds {
            let id = field_id(&name);
            if let Some(first) = seen.get(&id) {
                tracing::warn!(%name, %first, id, "two field names have the same id; the later is not listed");
                continue;
            }
            seen.insert(id, name.clone());
            out.push(FieldName {
                id,
                document_count: counts.get(&name).copied().unwrap_or(0),
                name,
                kind,
            });
        }
        Ok(out)
    }

    pub async fn notes(
        &self,
        number: i64,
        scope: &Scope,
    ) -> Result<Option<Vec<crate::store::Note>>> {
        Ok(self
            .get_by_number(number, scope)
            .await?
            .map(|(_, x)| x.notes))
    }
}
