//! The one stage mechanism: a worker's result is written by one code path
//! for every stage. A step of one or more consecutive [`StageOutput`]s
//! advances the document once, conditionally, from the first output's stage
//! to the last one's; then each output writes its outputs and its event, in
//! order; then the job is handed to the actor of the stage it reached (or
//! released, once indexed). A document no longer at the step's first stage
//! (a stale or duplicate result) writes nothing, and the job leaves the
//! chain.

use std::sync::Arc;

use rusqlite::Transaction;
use serde_json::json;

use super::Effect;
use crate::model::{format_ms, DocJob, Origin};
use crate::routes::StageOutput;
use crate::store::documents::{write_insert, write_text, Inserted};
use crate::store::edits::write_found_fields;
use crate::store::events::{write_event, NewEvent};
use crate::store::links::write_link;
use crate::store::queue::{write_advance, write_classification, write_extracted};

/// Writes a document's stage outputs, in order, then hands it on.
pub(super) fn write_stages(
    tx: &Transaction<'_>,
    mut job: DocJob,
    outputs: Vec<StageOutput>,
    now: i64,
    fx: &mut Vec<Effect>,
) -> anyhow::Result<()> {
    let consecutive = outputs
        .windows(2)
        .all(|w| w[0].advance().1 == w[1].advance().0);
    let span = outputs
        .first()
        .zip(outputs.last())
        .map(|(first, last)| (first.advance().0, last.advance().1));
    let advanced = match span {
        Some((from, to)) if consecutive && job.stage == from => {
            write_advance(tx, job.seq, from, to, now)?
        }
        _ => false,
    };
    if !advanced {
        for out in &outputs {
            if let StageOutput::Extracted { children, .. } = out {
                for child in children.iter().filter(|c| c.inline.is_none()) {
                    fx.push(Effect::Discard(child.id.clone()));
                }
            }
        }
        // The row moved meanwhile (an edit sent it back, say): once the
        // claim is dropped, the Intake looks again from the start, where
        // the row may now be due.
        fx.push(Effect::Release(job));
        fx.push(Effect::RescanIntake);
        return Ok(());
    }
    for out in outputs {
        write_stage(tx, &mut job, out, now, fx)?;
    }
    if job.stage.is_active() {
        fx.push(Effect::Forward(job));
    } else {
        fx.push(Effect::Release(job));
    }
    Ok(())
}

/// One stage's outputs and its event (the advance is written already).
fn write_stage(
    tx: &Transaction<'_>,
    job: &mut DocJob,
    out: StageOutput,
    now: i64,
    fx: &mut Vec<Effect>,
) -> anyhow::Result<()> {
    let (_, to) = out.advance();
    let detail = match out {
        StageOutput::Extracted { out, children } => {
            write_extracted(tx, job.seq, &out)?;
            let origin = Origin {
                token_id: None,
                request_id: job.request_id.clone(),
            };
            for child in &children {
                let staged = child.inline.is_none();
                match write_insert(tx, child, &origin, now)? {
                    Inserted::New => {
                        write_link(tx, job.seq, &child.id, &child.filename)?;
                        if staged {
                            fx.push(Effect::Promote(child.id.clone()));
                        }
                    }
                    Inserted::Duplicate(first) => {
                        // (A message that carries itself is not its own attachment.)
                        if first.id != job.id {
                            write_link(tx, job.seq, &first.id, &child.filename)?;
                        }
                        if staged {
                            fx.push(Effect::Discard(child.id.clone()));
                        }
                    }
                }
            }
            if !children.is_empty() {
                fx.push(Effect::WakeIntake);
            }
            write_text(tx, job.seq, &out)?;
            if let Some(m) = &out.mime {
                job.mime = m.clone();
            }
            if job.title.is_none() && out.title.is_some() {
                tx.prepare_cached(
                    "UPDATE documents SET title = ?2 WHERE seq = ?1 AND title IS NULL",
                )?
                .execute(rusqlite::params![job.seq, out.title])?;
                job.title = out.title.clone();
            }
            let detail = json!({"chars": out.text.chars().count(), "pages": out.pages,
                                "ms": out.elapsed_ms, "needs_ocr": out.needs_ocr});
            job.text = Some(Arc::from(out.text));
            Some(detail)
        }
        StageOutput::Classified(class) => {
            let kept = write_classification(tx, job.seq, &class, now)?;
            job.doc_type = kept.doc_type.clone();
            job.confidence = Some(kept.confidence);
            Some(
                json!({"doc_type": kept.doc_type, "confidence": kept.confidence,
                        "source": kept.source, "needs_review": kept.needs_review,
                        "classifier": {"doc_type": class.doc_type, "confidence": class.confidence,
                                       "source": class.source}}),
            )
        }
        StageOutput::Enriched { fields, needs_llm } => {
            let kept = write_found_fields(tx, job.seq, &fields, now)?;
            if needs_llm {
                tx.prepare_cached("UPDATE documents SET needs_llm = 1 WHERE seq = ?1")?
                    .execute([job.seq])?;
            }
            Some(json!({
                "fields": fields.iter().map(|f| &f.name).collect::<Vec<_>>(),
                "kept_user_fields": kept,
                "needs_llm": needs_llm,
            }))
        }
        StageOutput::Indexed => None,
    };
    let mut ev = NewEvent::pipeline(
        &job.id,
        &job.workspace,
        job.request_id.as_deref(),
        to.as_str(),
        Some(to),
    );
    if let Some(d) = detail {
        ev = ev.detail(d);
    }
    write_event(tx, &ev, now)?;
    job.stage = to;
    job.attempts = 0;
    Ok(())
}

/// The detail of a failure event.
pub(super) fn failure_detail(
    error: &crate::model::ErrorInfo,
    attempts: u32,
    retry_at: Option<i64>,
) -> serde_json::Value {
    json!({"code": error.code, "message": error.message, "attempt": attempts,
           "retry_at": retry_at.map(format_ms)})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Scope;
    use crate::model::{Classification, Extracted, NewDocument, Stage};
    use crate::store::documents::get_document;
    use crate::store::events::events_for;
    use crate::store::schema::open_writer;

    fn doc() -> NewDocument {
        NewDocument {
            id: "a".into(),
            workspace: "default".into(),
            filename: "a.txt".into(),
            title: None,
            mime: "text/plain".into(),
            size: 3,
            sha256: "s".into(),
            inline: Some(bytes::Bytes::from_static(b"abc")),
            extra: Default::default(),
        }
    }

    #[test]
    fn one_step_writes_three_stages_with_their_events_and_a_stale_one_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_writer(&dir.path().join("c.sqlite"), "normal").unwrap();
        let tx = conn.transaction().unwrap();
        write_insert(&tx, &doc(), &Origin::default(), 1).unwrap();
        let seq = get_document(&tx, "a", &Scope::All).unwrap().unwrap().seq;
        let outputs = || {
            vec![
                StageOutput::Extracted {
                    out: Box::new(Extracted {
                        text: "abc".into(),
                        ..Default::default()
                    }),
                    children: Vec::new(),
                },
                StageOutput::Classified(Classification {
                    doc_type: Some("note".into()),
                    confidence: 0.9,
                    source: Some("rule".into()),
                    ..Default::default()
                }),
                StageOutput::Enriched {
                    fields: Vec::new(),
                    needs_llm: false,
                },
            ]
        };
        let mut fx = Vec::new();
        write_stages(&tx, DocJob::registered(seq, &doc()), outputs(), 2, &mut fx).unwrap();
        let d = get_document(&tx, "a", &Scope::All).unwrap().unwrap();
        assert_eq!(
            (d.stage, d.doc_type.as_deref()),
            (Stage::Enriched, Some("note"))
        );
        let kinds: Vec<String> = events_for(&tx, "a", &Scope::All)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["uploaded", "extracted", "classified", "enriched"]);
        assert!(matches!(&fx[..], [Effect::Forward(j)] if j.stage == Stage::Enriched));
        // The same result again is stale: nothing is written, the job is
        // released, and the Intake looks again for what is due.
        let mut fx = Vec::new();
        write_stages(&tx, DocJob::registered(seq, &doc()), outputs(), 3, &mut fx).unwrap();
        assert!(matches!(
            &fx[..],
            [Effect::Release(_), Effect::RescanIntake]
        ));
        assert_eq!(events_for(&tx, "a", &Scope::All).unwrap().len(), 4);
    }
}
