//! Field templates: where an issuer puts a field, learned from a user's
//! correction (see [`crate::fields::templates`]), per workspace.

use super::events::{write_event, NewEvent};
use super::schema::workspace_filter;
use crate::fields::templates::Template;
use crate::model::{format_ms, Origin, Scope};
use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;

/// A stored template, as the API lists it.
#[derive(Clone, Debug, Serialize)]
pub struct TemplateRow {
    pub id: i64,
    pub workspace: String,
    #[serde(flatten)]
    pub template: Template,
    /// The document whose correction taught it.
    pub learned_from: String,
    pub created_at: String,
}

/// Stores templates learned from a document's correction, each in place of
/// the workspace's template for the same issuer and field, with an audit
/// event on the document.
pub fn write_templates(
    tx: &Transaction<'_>,
    workspace: &str,
    doc_id: &str,
    templates: &[Template],
    origin: &Origin,
    now: i64,
) -> Result<()> {
    for t in templates {
        tx.execute(
            "INSERT INTO field_templates (workspace, issuer, field, template, learned_from, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (workspace, issuer, field) DO UPDATE SET
               template = excluded.template, learned_from = excluded.learned_from,
               created_at = excluded.created_at",
            params![
                workspace,
                t.issuer,
                t.field,
                serde_json::to_string(t)?,
                doc_id,
                now
            ],
        )?;
        let ev = NewEvent::action(origin, "template_learned", Some(workspace))
            .doc(doc_id)
            .detail(serde_json::to_value(t)?);
        write_event(tx, &ev, now)?;
    }
    Ok(())
}

/// The templates in the scope (all of them for `Scope::All`), or of one
/// workspace.
pub fn read_templates(
    conn: &Connection,
    scope: &Scope,
    workspace: Option<&str>,
) -> Result<Vec<TemplateRow>> {
    let sql = format!(
        "SELECT id, workspace, template, learned_from, created_at FROM field_templates
          WHERE {} AND (?2 IS NULL OR workspace = ?2) ORDER BY workspace, issuer, field",
        workspace_filter("workspace", 1)
    );
    let mut st = conn.prepare(&sql)?;
    let rows = st
        .query_map(params![scope.sql_param(), workspace], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, workspace, json, learned_from, at) in rows {
        match serde_json::from_str::<Template>(&json) {
            Ok(template) => out.push(TemplateRow {
                id,
                workspace,
                template,
                learned_from,
                created_at: format_ms(at),
            }),
            Err(e) => {
                tracing::warn!(id, error = %e, "a stored field template is unreadable; it is not used")
            }
        }
    }
    Ok(out)
}

/// Deletes a template in the scope, with an audit event; false when there
/// is none.
pub fn write_delete_template(
    tx: &Transaction<'_>,
    id: i64,
    scope: &Scope,
    origin: &Origin,
    now: i64,
) -> Result<Option<String>> {
    let sql = format!(
        "DELETE FROM field_templates WHERE id = ?2 AND {} RETURNING workspace, template",
        workspace_filter("workspace", 1)
    );
    let gone: Option<(String, String)> = tx
        .query_row(&sql, params![scope.sql_param(), id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((workspace, template)) = gone else {
        return Ok(None);
    };
    let ev =
        NewEvent::action(origin, "template_deleted", Some(&workspace)).detail(serde_json::json!({
            "id": id,
            "template": serde_json::from_str::<serde_json::Value>(&template).ok(),
        }));
    write_event(tx, &ev, now)?;
    Ok(Some(workspace))
}
