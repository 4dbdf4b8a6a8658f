//! Enrich pool: finds the fields of each classified document.
//!
//! In: [`DocJob`]s at stage `classified`, with their text and type. Out: the
//! fields to the Catalog, which stores them (a value a user set stays) with
//! the stage advance and forwards the job to the Indexer. The fields looked
//! for are the common ones plus those of the document's type
//! ([`crate::config::TypeConfig::fields`]); see [`fields`] for how.

pub mod fields;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use ractor::factory::{FactoryMessage, Job, Worker, WorkerId};
use ractor::{ActorProcessingErr, ActorRef};
use rusqlite::OptionalExtension;

use crate::catalog::CatalogMsg;
use crate::counters::Counters;
use crate::llm::{Asked, Llm};
use crate::model::DocJob;
use crate::pipeline::{current_routes, tell, RoutesRx};
use crate::types::TypesSlot;
use fields::{Context, FieldSpec, Kind};

pub struct EnrichCtx {
    pub types: TypesSlot,
    pub llm: Option<Arc<Llm>>,
    pub db: crate::store::db::ReadPool,
    pub routes: RoutesRx,
    pub counters: Arc<Counters>,
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
            source: "rule",
        });
    }
    found
}

/// Asks the LLM for the type's fields and weighs its values with the
/// rules': the same value → 0.95; a value the rules did not find → 0.7;
/// different values → the rules' stands when they read it beside or below
/// its label (≥ 0.75), else the LLM's at 0.6. An e-invoice's values
/// (confidence 1) are never replaced. Values are checked against their kind
/// like a user's; the ones that fail are dropped.
pub async fn ask_llm(
    llm: &Llm,
    doc_type: &str,
    description: &str,
    specs: &[FieldSpec],
    text: &str,
    found: Vec<fields::Found>,
) -> Asked<Vec<fields::Found>> {
    let list: String = specs
        .iter()
        .map(|f| format!("- {} ({})\n", f.name, crate::store::meta::kind_name(f.kind)))
        .collect();
    let system = format!(
        "You read the fields of a document of type {doc_type:?} ({description}). The fields are:\n{list}\
         Answer with JSON that has every field name as a key and, as its value, the text of the value \
         as the document gives it (dates as YYYY-MM-DD, amounts as digits with a decimal point), \
         or null when the document does not give it."
    );
    let user = crate::llm::truncate(text, llm.config().max_text_chars).to_string();
    let properties: serde_json::Map<String, serde_json::Value> = specs
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                serde_json::json!({"type": ["string", "null"]}),
            )
        })
        .collect();
    let names: Vec<&str> = specs.iter().map(|f| f.name.as_str()).collect();
    let schema = serde_json::json!({
        "type": "object",
        "properties": properties,
        "required": names,
    });
    llm.ask(&system, &user, &schema, |v| {
        let obj = v.as_object().ok_or("expected a JSON object")?;
        if let Some(k) = obj.keys().find(|k| !names.contains(&k.as_str())) {
            return Err(format!("{k:?} is not one of the fields {names:?}"));
        }
        let mut out: Vec<fields::Found> = found.clone();
        for spec in specs {
            let value = match obj.get(&spec.name) {
                None => return Err(format!("the field {:?} is missing", spec.name)),
                Some(serde_json::Value::Null) => continue,
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                Some(other) => {
                    return Err(format!("{:?} is {other}, not a string or null", spec.name))
                }
            };
            let Ok((value, currency)) = fields::normalize(spec.kind, &value, None) else {
                continue;
            };
            let by_rule = out.iter().position(|f| f.name == spec.name);
            let llm_value = |confidence: f32, currency: Option<String>| fields::Found {
                name: spec.name.clone(),
                kind: spec.kind,
                value: value.clone(),
                currency,
                confidence,
                source: "llm",
            };
            match by_rule {
                None => out.push(llm_value(0.7, currency)),
                Some(i) if out[i].confidence >= 1.0 => {}
                Some(i) if out[i].value == value => {
                    let c = out[i].currency.clone().or(currency);
                    out[i] = llm_value(0.95, c);
                }
                Some(i) if out[i].confidence >= 0.75 => {}
                Some(i) => out[i] = llm_value(0.6, currency),
            }
        }
        Ok(out)
    })
    .await
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
        crate::intake::started(&self.ctx.routes, &doc);
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
            let types = crate::types::current(&self.ctx.types);
            let specs = types.schema(doc.doc_type.as_deref());
            let text = doc.text.clone().unwrap_or_else(|| Arc::from(""));
            let (specs2, text2) = (specs.clone(), text.clone());
            let by_rules = tokio::task::spawn_blocking(move || {
                let (specs, text) = (specs2, text2);
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
            .await?;
            // The LLM is asked for a typed document's own fields.
            let own: Vec<FieldSpec> = doc
                .doc_type
                .as_deref()
                .and_then(|t| types.get(t))
                .map(|t| t.fields.clone())
                .unwrap_or_default();
            match (&self.ctx.llm, doc.doc_type.as_deref()) {
                (Some(llm), Some(doc_type)) if llm.config().extract && !own.is_empty() => {
                    let description = types
                        .get(doc_type)
                        .map(|t| t.description.clone())
                        .unwrap_or_default();
                    match ask_llm(llm, doc_type, &description, &own, &text, by_rules.clone()).await
                    {
                        Asked::Answer(f) => (f, false),
                        Asked::Invalid(e) => {
                            tracing::warn!(doc_id = %doc.id, error = %e, "the LLM's fields were not valid twice; the rules' stand");
                            (by_rules, false)
                        }
                        Asked::Unavailable(e) => {
                            tracing::warn!(doc_id = %doc.id, error = %e, "no LLM endpoint answered; the rules' fields stand and the document is marked needs_llm");
                            (by_rules, true)
                        }
                    }
                }
                _ => (by_rules, false),
            }
        };
        let (found, needs_llm) = found;
        counters.num_processed.fetch_add(1, Relaxed);
        tell(
            &current_routes(&self.ctx.routes)?.catalog,
            CatalogMsg::Enriched {
                job: doc,
                fields: found,
                needs_llm,
            },
            "catalog",
        );
        Ok(())
    }
}
