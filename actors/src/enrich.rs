//! Enrich pool: finds the fields of each classified document.
//!
//! In: [`DocJob`]s at stage `classified`, with their text and type. Out: the
//! fields to the Catalog, which stores them (a value a user set stays) with
//! the stage advance and forwards the job to the Indexer. The fields looked
//! for are the common ones plus those of the document's type
//! ([`crate::config::TypeConfig::fields`]); see [`fields`] for how.

pub mod fields;

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use ractor::factory::{FactoryMessage, Job, Worker, WorkerId};
use ractor::{ActorProcessingErr, ActorRef};
use rusqlite::OptionalExtension;

use crate::catalog::CatalogMsg;
use crate::config::TypeConfig;
use crate::counters::Counters;
use crate::model::DocJob;
use crate::pipeline::{current_routes, tell, RoutesRx};
use crate::store::db::ReadPool;
use fields::{common_fields, Context, FieldSpec, Kind};

pub struct EnrichCtx {
    /// Per type name: its fields, then the common ones.
    pub schemas: HashMap<String, Vec<FieldSpec>>,
    pub db: ReadPool,
    pub routes: RoutesRx,
    pub counters: Arc<Counters>,
}

impl EnrichCtx {
    pub fn new(
        types: &[TypeConfig],
        db: ReadPool,
        routes: RoutesRx,
        counters: Arc<Counters>,
    ) -> Self {
        let schemas = types
            .iter()
            .map(|t| (t.name.clone(), Self::schema(types, Some(&t.name))))
            .collect();
        EnrichCtx {
            schemas,
            db,
            routes,
            counters,
        }
    }

    fn specs(&self, doc_type: Option<&str>) -> Vec<FieldSpec> {
        doc_type
            .and_then(|t| self.schemas.get(t).cloned())
            .unwrap_or_else(common_fields)
    }

    /// The fields looked for in a document of the type: the type's own,
    /// then the common ones.
    pub fn schema(types: &[TypeConfig], doc_type: Option<&str>) -> Vec<FieldSpec> {
        let mut specs: Vec<FieldSpec> = types
            .iter()
            .find(|t| Some(t.name.as_str()) == doc_type)
            .map(|t| t.fields.clone())
            .unwrap_or_default();
        specs.extend(common_fields());
        specs
    }
}

/// The kind of a field name: from the configured types' schemas or the
/// common fields; anything else is text.
pub fn field_kind(types: &[TypeConfig], name: &str) -> Kind {
    types
        .iter()
        .flat_map(|t| t.fields.iter())
        .chain(common_fields().iter())
        .find(|f| f.name == name)
        .map_or(Kind::Text, |f| f.kind)
}

/// The values of an e-invoice embedded in the document (exact, confidence
/// 1) in place of those read from its text.
pub fn with_einvoice(
    mut found: Vec<fields::Found>,
    einvoice: &serde_json::Value,
    specs: &[FieldSpec],
) -> Vec<fields::Found> {
    let Some(values) = einvoice.as_object() else {
        return found;
    };
    let currency = values.get("currency").and_then(|c| c.as_str());
    for (name, value) in values {
        let Some(value) = value.as_str() else {
            continue;
        };
        if matches!(name.as_str(), "format" | "currency") {
            continue;
        }
        let kind = specs
            .iter()
            .find(|s| &s.name == name)
            .map(|s| s.kind)
            .unwrap_or(match name.as_str() {
                "total" | "amount_due" | "net_amount" | "tax_amount" => Kind::Money,
                "date" | "due_date" => Kind::Date,
                "recipient" | "issuer" => Kind::Party,
                "iban" => Kind::Iban,
                _ => Kind::Identifier,
            });
        let Ok((value, _)) = fields::normalize(kind, value, None) else {
            continue;
        };
        found.retain(|f| &f.name != name);
        found.push(fields::Found {
            name: name.clone(),
            kind,
            value,
            currency: (kind == Kind::Money)
                .then(|| currency.map(str::to_string))
                .flatten(),
            confidence: 1.0,
        });
    }
    found
}

pub struct Enricher {
    pub ctx: Arc<EnrichCtx>,
}

impl Worker for Enricher {
    type Key = ();
    type Message = DocJob;
    type Arguments = ();
    type State = ();

    async fn pre_start(
        &self,
        _wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<(), DocJob>>,
        _args: (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<(), DocJob>>,
        job: Job<(), DocJob>,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let doc = job.msg;
        let counters = &self.ctx.counters.enrich;
        let found = {
            let _timer = counters.start_job();
            let seq = doc.seq;
            let (language, metadata): (Option<String>, Option<String>) = self
                .ctx
                .db
                .run(move |c| {
                    Ok(c.query_row(
                        "SELECT language, fields FROM documents WHERE seq = ?1",
                        [seq],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?
                    .unwrap_or((None, None)))
                })
                .await?;
            let metadata = metadata
                .and_then(|m| serde_json::from_str::<serde_json::Value>(&m).ok())
                .unwrap_or_default();
            let einvoice = metadata.get("einvoice").cloned();
            let sender = Some(&metadata).and_then(|m| match &m["from"] {
                serde_json::Value::Array(a) => {
                    a.first().and_then(|v| v.as_str()).map(str::to_string)
                }
                serde_json::Value::String(s) => Some(s.clone()),
                _ => None,
            });
            let specs = self.ctx.specs(doc.doc_type.as_deref());
            let text = doc.text.clone().unwrap_or_else(|| Arc::from(""));
            tokio::task::spawn_blocking(move || {
                let cx = Context {
                    language: language.as_deref(),
                    sender: sender.as_deref(),
                };
                let found = fields::extract(&text, &specs, &cx);
                match einvoice {
                    Some(e) => with_einvoice(found, &e, &specs),
                    None => found,
                }
            })
            .await?
        };
        counters.num_processed.fetch_add(1, Relaxed);
        tell(
            &current_routes(&self.ctx.routes)?.catalog,
            CatalogMsg::Enriched {
                job: doc,
                fields: found,
            },
            "catalog",
        );
        Ok(())
    }
}
