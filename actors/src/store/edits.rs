//! Edits and fields: a user's changes to a document, and the fields Enrich
//! found (a value a user set stays).

use super::events::{write_event, NewEvent};
use super::labels::{ensure_doc_type, ensure_issuer_of};
use super::schema::workspace_filter;
pub use crate::model::UserField;
use crate::model::{Found, Kind, NewNote, Origin, Scope, Stage};
use anyhow::Result;
use rusqlite::{params, OptionalExtension, Transaction};

/// A change to a document's metadata; `None` leaves a field as it is, and
/// `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct Edit {
    pub title: Option<Option<String>>,
    /// A type set by hand: the classifier does not override it.
    pub doc_type: Option<Option<String>>,
    pub tags: Option<Vec<i64>>,
    pub doc_date: Option<Option<String>>,
    pub asn: Option<Option<i64>>,
    /// Field values set by hand (already checked against their kind); None
    /// removes the user's value, and the next enrichment fills it again.
    pub fields: Option<Vec<(String, Option<UserField>)>>,
    /// Put in (or take out of) the review queue.
    pub needs_review: Option<bool>,
}

/// Stores the fields Enrich found, in place of the ones found before; a
/// value a user set stays (whatever was found for that name). Returns the
/// names of the user's values kept. A new issuer is listed as a label.
pub fn write_found_fields(
    tx: &Transaction<'_>,
    seq: i64,
    found: &[Found],
    now: i64,
) -> Result<Vec<String>> {
    tx.prepare_cached("DELETE FROM doc_fields WHERE doc_seq = ?1 AND source != 'user'")?
        .execute([seq])?;
    // A document that came with its fields is not filled again.
    let keep: bool = tx
        .prepare_cached("SELECT keep_metadata FROM documents WHERE seq = ?1")?
        .query_row([seq], |r| r.get(0))?;
    let found = if keep { &[][..] } else { found };
    let mut insert = tx.prepare_cached(
        "INSERT INTO doc_fields (doc_seq, name, kind, value, currency, confidence, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (doc_seq, name) DO NOTHING",
    )?;
    for f in found {
        insert.execute(params![
            seq,
            f.name,
            f.kind.as_str(),
            f.value,
            f.currency,
            (f.confidence as f64 * 1000.0).round() / 1000.0,
            f.source
        ])?;
    }
    if found.iter().any(|f| f.name == ISSUER) {
        ensure_issuer_of(tx, seq, now)?;
    }
    let kept = tx
        .prepare_cached(
            "SELECT name FROM doc_fields WHERE doc_seq = ?1 AND source = 'user' ORDER BY name",
        )?
        .query_map([seq], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(kept)
}

/// Templates from the values a user set: where the document's issuer (as
/// it stands after the edit) puts each of them, stored with the edit.
fn learn_templates(
    tx: &Transaction<'_>,
    seq: i64,
    id: &str,
    workspace: &str,
    fields: &[(String, Option<UserField>)],
    origin: &Origin,
    now: i64,
) -> Result<()> {
    if fields.iter().all(|(_, v)| v.is_none()) {
        return Ok(());
    }
    let issuer: Option<String> = tx
        .query_row(
            "SELECT value FROM doc_fields WHERE doc_seq = ?1 AND name = ?2",
            params![seq, ISSUER],
            |r| r.get(0),
        )
        .optional()?;
    let Some(issuer) = issuer else {
        return Ok(()); // a template belongs to an issuer
    };
    let row: Option<(String, Option<String>)> = tx
        .query_row(
            "SELECT COALESCE(t.layout, t.text), d.language FROM texts t \
             JOIN documents d ON d.seq = t.seq WHERE t.seq = ?1",
            [seq],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((text, language)) = row else {
        return Ok(());
    };
    let cx = crate::fields::Context {
        language: language.as_deref(),
        sender: None,
    };
    let learned: Vec<_> = fields
        .iter()
        .filter_map(|(name, v)| {
            let v = v.as_ref()?;
            crate::fields::templates::learn(&text, &issuer, name, v.kind, &v.value, &cx)
        })
        .collect();
    super::templates::write_templates(tx, workspace, id, &learned, origin, now)
}

/// The field that holds a document's issuer.
pub const ISSUER: &str = "issuer";

/// Remembers the kind of a field name set by hand, unless known already (a
/// type's fields are known from the types).
pub fn ensure_field_name(tx: &Transaction<'_>, name: &str, kind: Kind, now: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO field_names (name, kind, created_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![name, kind.as_str(), now])?;
    Ok(())
}

#[derive(Debug)]
pub enum EditResult {
    Edited(Stage),
    NotFound,
    /// A tag id that the document's workspace does not have.
    UnknownTag(i64),
}

/// Applies an edit to a document of the scope. A document already indexed
/// goes back to `classified`, so the pipeline indexes it again with the new
/// title and type (from its stored text).
pub fn write_edit(
    tx: &Transaction<'_>,
    id: &str,
    scope: &Scope,
    edit: &Edit,
    origin: &Origin,
    now: i64,
) -> Result<EditResult> {
    let found: Option<(i64, String, String)> = tx
        .query_row(
            &format!(
                "SELECT seq, workspace, stage FROM documents WHERE id = ?1 AND stage != 'deleting' AND {}",
                workspace_filter("workspace", 2)
            ),
            params![id, scope.sql_param()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((seq, workspace, stage)) = found else {
        return Ok(EditResult::NotFound);
    };
    if let Some(tags) = &edit.tags {
        for t in tags {
            let known: Option<i64> = tx
                .query_row(
                    "SELECT id FROM tags WHERE id = ?1 AND workspace = ?2",
                    params![t, workspace],
                    |r| r.get(0),
                )
                .optional()?;
            if known.is_none() {
                return Ok(EditResult::UnknownTag(*t));
            }
        }
        tx.execute("DELETE FROM document_tags WHERE doc_seq = ?1", [seq])?;
        for t in tags {
            tx.execute(
                "INSERT OR IGNORE INTO document_tags (doc_seq, tag_id) VALUES (?1, ?2)",
                params![seq, t],
            )?;
        }
    }
    if let Some(t) = &edit.title {
        tx.execute(
            "UPDATE documents SET title = ?2 WHERE seq = ?1",
            params![seq, t],
        )?;
    }
    if let Some(t) = &edit.doc_type {
        tx.execute(
            "UPDATE documents SET user_doc_type = ?2, doc_type = ?2,
               confidence = CASE WHEN ?2 IS NULL THEN NULL ELSE 1.0 END,
               type_source = CASE WHEN ?2 IS NULL THEN NULL ELSE 'user' END,
               needs_review = 0 WHERE seq = ?1",
            params![seq, t],
        )?;
        if let Some(name) = t {
            ensure_doc_type(tx, &workspace, name, now)?;
        }
    }
    if let Some(r) = edit.needs_review {
        tx.execute(
            "UPDATE documents SET needs_review = ?2 WHERE seq = ?1",
            params![seq, r],
        )?;
    }
    if let Some(d) = &edit.doc_date {
        tx.execute(
            "UPDATE documents SET doc_date = ?2 WHERE seq = ?1",
            params![seq, d],
        )?;
    }
    if let Some(a) = &edit.asn {
        tx.execute(
            "UPDATE documents SET asn = ?2 WHERE seq = ?1",
            params![seq, a],
        )?;
    }
    if let Some(fields) = &edit.fields {
        for (name, value) in fields {
            match value {
                Some(f) => tx.execute(
                    "INSERT INTO doc_fields (doc_seq, name, kind, value, currency, confidence, source)
                     VALUES (?1, ?2, ?3, ?4, ?5, 1.0, 'user')
                     ON CONFLICT (doc_seq, name) DO UPDATE SET kind = excluded.kind,
                       value = excluded.value, currency = excluded.currency,
                       confidence = 1.0, source = 'user'",
                    params![seq, name, f.kind.as_str(), f.value, f.currency],
                )?,
                None => tx.execute(
                    "DELETE FROM doc_fields WHERE doc_seq = ?1 AND name = ?2",
                    params![seq, name],
                )?,
            };
            if let Some(f) = value {
                ensure_field_name(tx, name, f.kind, now)?;
                if name == ISSUER {
                    ensure_issuer_of(tx, seq, now)?;
                }
            }
        }
        // A person's correction teaches where an issuer puts a field; a
        // workflow's value teaches nothing.
        let by_workflow = origin
            .token_id
            .as_deref()
            .is_some_and(|t| t.starts_with("workflow:"));
        if !by_workflow {
            learn_templates(tx, seq, id, &workspace, fields, origin, now)?;
        }
    }
    let mut stage = Stage::parse(&stage).unwrap_or(Stage::Failed);
    // A new type has other fields: enrich again (values set by hand stay).
    // A new title, tags, date or fields only need indexing again (the
    // index filters, sorts and counts by them).
    let back_to = if edit.doc_type.is_some() {
        Some(Stage::Classified)
    } else if edit.title.is_some()
        || edit.tags.is_some()
        || edit.doc_date.is_some()
        || edit.fields.is_some()
    {
        Some(Stage::Enriched)
    } else {
        None
    };
    // A document waiting for the index (an edit just before this one sent
    // it back) goes back as far as this edit needs too: its advance to
    // `indexed`, if the Indexer holds it already, no longer applies.
    if let Some(to) =
        back_to.filter(|to| matches!(stage, Stage::Enriched | Stage::Indexed) && stage > *to)
    {
        tx.execute(
            "UPDATE documents SET stage = ?2 WHERE seq = ?1",
            params![seq, to.as_str()],
        )?;
        stage = to;
    }
    tx.execute(
        "UPDATE documents SET updated_at = ?2 WHERE seq = ?1",
        params![seq, now],
    )?;
    let mut changed = serde_json::Map::new();
    if let Some(t) = &edit.title {
        changed.insert("title".into(), serde_json::json!(t));
    }
    if let Some(t) = &edit.doc_type {
        changed.insert("doc_type".into(), serde_json::json!(t));
    }
    if let Some(t) = &edit.tags {
        changed.insert("tags".into(), serde_json::json!(t));
    }
    if let Some(d) = &edit.doc_date {
        changed.insert("created".into(), serde_json::json!(d));
    }
    if let Some(a) = &edit.asn {
        changed.insert("archive_serial_number".into(), serde_json::json!(a));
    }
    if let Some(r) = edit.needs_review {
        changed.insert("needs_review".into(), serde_json::json!(r));
    }
    if let Some(fields) = &edit.fields {
        let values: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(n, v)| (n.clone(), serde_json::json!(v.as_ref().map(|f| &f.value))))
            .collect();
        changed.insert("fields".into(), serde_json::Value::Object(values));
    }
    let ev = NewEvent::action(origin, "edited", Some(&workspace))
        .doc(id)
        .detail(serde_json::Value::Object(changed));
    write_event(tx, &ev, now)?;
    Ok(EditResult::Edited(stage))
}

/// Field names made over the API or set by hand, with their kinds.
pub type StoredFieldNames = Vec<(String, Kind)>;

/// The field names set by hand or made over the API, with their kinds, and
/// how many documents of the scope have a value, per name.
pub fn field_names_and_counts(
    conn: &rusqlite::Connection,
    scope: &Scope,
) -> Result<(StoredFieldNames, std::collections::BTreeMap<String, i64>)> {
    let stored = conn
        .prepare_cached("SELECT name, kind FROM field_names ORDER BY name")?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .map(|(n, k)| (n, Kind::parse(&k).unwrap_or(Kind::Text)))
        .collect();
    let counts = conn
        .prepare_cached(&format!(
            "SELECT f.name, COUNT(*) FROM doc_fields f JOIN documents d ON d.seq = f.doc_seq
             WHERE d.stage != 'deleting' AND {} GROUP BY f.name",
            workspace_filter("d.workspace", 1)
        ))?
        .query_map(params![scope.sql_param()], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok((stored, counts))
}

/// Makes a field name known with its kind (over the API); false if it was.
pub fn write_field_name(
    tx: &Transaction<'_>,
    name: &str,
    kind: Kind,
    origin: &Origin,
    now: i64,
) -> Result<bool> {
    let new = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO field_names (name, kind, created_at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![name, kind.as_str(), now])?
        == 1;
    if new {
        let ev = NewEvent::action(origin, "field_created", None)
            .detail(serde_json::json!({"name": name, "kind": kind.as_str()}));
        write_event(tx, &ev, now)?;
    }
    Ok(new)
}

/// Adds a note to a document of the scope: the note's id, or None when
/// there is no such document.
pub fn write_note(
    tx: &Transaction<'_>,
    id: &str,
    scope: &Scope,
    note: &NewNote,
    origin: &Origin,
    now: i64,
) -> Result<Option<i64>> {
    let Some((seq, workspace)) = super::documents::find_in_scope(tx, id, scope)? else {
        return Ok(None);
    };
    let note_id = super::documents::write_note_row(tx, seq, note, now)?;
    let ev = NewEvent::action(origin, "note_added", Some(&workspace))
        .doc(id)
        .detail(serde_json::json!({"note": note_id}));
    write_event(tx, &ev, now)?;
    Ok(Some(note_id))
}
