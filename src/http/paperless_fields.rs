//! Paperless-ngx's custom fields and notes over docpipe's fields and notes.
//!
//! A custom field is a docpipe field name: those of the types in force,
//! the common ones, and those set by hand or made here. Its id is a hash of
//! the name (see [`field_id`]), the same on every instance; its data type
//! follows the field's kind. A document's `custom_fields` are its field
//! values, found or set; writing them sets values by hand, as the native
//! API's `fields` do.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use docpipe_actors::{
    field_id, normalize, Code, DocExtras, Document, FieldName, Kind, NewNote, Note, UserField,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::gateway::Caller;
use super::paperless::{paginated_all, reply};
use super::paperless_apps::user_name;
use super::problem::Problem;
use super::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::Query;

/// Paperless's data type for a docpipe kind.
pub fn data_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Date => "date",
        Kind::Money => "monetary",
        Kind::Number => "float",
        Kind::Url => "url",
        Kind::Text | Kind::Party | Kind::Identifier | Kind::Iban | Kind::Email | Kind::Phone => {
            "string"
        }
    }
}

/// The kind a Paperless data type is kept as; None for the types docpipe
/// has no values for (document links, selects, booleans).
fn kind_of(data_type: &str) -> Option<Kind> {
    Some(match data_type {
        "date" => Kind::Date,
        "monetary" => Kind::Money,
        "float" | "integer" => Kind::Number,
        "url" => Kind::Url,
        "string" | "longtext" => Kind::Text,
        _ => return None,
    })
}

fn field_json(f: &FieldName) -> Value {
    json!({
        "id": f.id,
        "name": f.name,
        "data_type": data_type(f.kind),
        "extra_data": {"select_options": [], "default_currency": null},
        "document_count": f.document_count,
    })
}

/// A stored value as Paperless gives it: money as `EUR1234.56`, numbers
/// as numbers, the rest as text.
fn paperless_value(kind: &str, value: &str, currency: Option<&str>) -> Value {
    match kind {
        "money" => json!(format!("{}{value}", currency.unwrap_or(""))),
        "number" => value
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| json!(value), Value::Number),
        _ => json!(value),
    }
}

/// A document's `custom_fields`.
pub fn document_custom_fields(d: &Document) -> Value {
    Value::Array(
        d.fields
            .iter()
            .map(|f| {
                json!({
                    "field": field_id(&f.name),
                    "value": paperless_value(&f.kind, &f.value, f.currency.as_deref()),
                })
            })
            .collect(),
    )
}

/// A document's `notes`. docpipe has tokens, not users: a note's user is
/// the name of the token that wrote it (or the user a migration brought it
/// from), with an id from that name.
pub fn document_notes(x: &DocExtras) -> Value {
    Value::Array(x.notes.iter().map(note_json).collect())
}

fn note_json(n: &Note) -> Value {
    json!({
        "id": n.id,
        "note": n.note,
        "created": n.created_at,
        "user": {
            "id": field_id(&n.author),
            "username": n.author,
            "first_name": "",
            "last_name": "",
        },
    })
}

fn bad(msg: impl Into<String>) -> Problem {
    Problem::new(Code::InvalidField, msg).on_field("custom_fields")
}

/// Reads a value given for a field of `kind` into docpipe's form.
pub(crate) fn user_value(name: &str, kind: Kind, v: &Value) -> Result<Option<UserField>, Problem> {
    let raw = match v {
        Value::Null => return Ok(None),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => {
            return Err(bad(format!(
                "custom_fields: the value of {name:?} must be a string, a number or null"
            )))
        }
    };
    // Paperless's money: `EUR1234.56`, `EUR-12.00` or a bare number.
    let (raw, currency) = match kind {
        Kind::Money if raw.len() > 3 && raw.as_bytes()[..3].iter().all(u8::is_ascii_uppercase) => {
            let (c, rest) = raw.split_at(3);
            (rest.to_string(), Some(c.to_string()))
        }
        _ => (raw, None),
    };
    let (value, currency) = normalize(kind, &raw, currency.as_deref())
        .map_err(|e| bad(format!("custom_fields: {name:?}: {e}")))?;
    Ok(Some(UserField {
        kind,
        value,
        currency,
    }))
}

/// The field names by id.
async fn names_by_id(
    app: &AppState,
    caller: &Caller,
) -> Result<std::collections::HashMap<i64, FieldName>, Problem> {
    Ok(app
        .pipeline
        .reader()
        .field_names(&caller.scope())
        .await?
        .into_iter()
        .map(|f| (f.id, f))
        .collect())
}

/// A `custom_fields` list written to a document (`[{"field": id, "value":
/// v}, …]`), or an upload's (`[id, …]` or `{"id": v, …}`), as field values;
/// the document's other fields are left out when `current` is given and
/// become removals (Paperless's list replaces the document's).
pub async fn fields_from_paperless(
    app: &AppState,
    caller: &Caller,
    v: &Value,
    current: Option<&Document>,
) -> Result<Vec<(String, Option<UserField>)>, Problem> {
    let names = names_by_id(app, caller).await?;
    let pairs: Vec<(i64, Value)> = match v {
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Object(o) => Ok((
                    o.get("field")
                        .and_then(Value::as_i64)
                        .ok_or_else(|| bad("custom_fields: each item needs a \"field\" id"))?,
                    o.get("value").cloned().unwrap_or(Value::Null),
                )),
                Value::Number(n) => n
                    .as_i64()
                    .map(|id| (id, Value::Null))
                    .ok_or_else(|| bad("custom_fields: ids are integers")),
                Value::String(s) => s
                    .trim()
                    .parse()
                    .map(|id| (id, Value::Null))
                    .map_err(|_| bad(format!("custom_fields: {s:?} is not an id"))),
                _ => Err(bad("custom_fields: expected a list of fields or ids")),
            })
            .collect::<Result<_, _>>()?,
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| {
                k.parse()
                    .map(|id| (id, v.clone()))
                    .map_err(|_| bad(format!("custom_fields: {k:?} is not an id")))
            })
            .collect::<Result<_, _>>()?,
        Value::Null => Vec::new(),
        _ => return Err(bad("custom_fields: expected a list or an object")),
    };
    let mut out: Vec<(String, Option<UserField>)> = Vec::new();
    for (id, value) in &pairs {
        let f = names
            .get(id)
            .ok_or_else(|| bad(format!("custom_fields: there is no field {id}")))?;
        let value = user_value(&f.name, f.kind, value)?;
        if let (Some(doc), Some(new)) = (current, &value) {
            // A value sent back as it was stays as it was (found, not set).
            let same = doc.fields.iter().any(|s| {
                s.name == f.name
                    && s.value == new.value
                    && (new.currency.is_none() || s.currency == new.currency)
            });
            if same {
                continue;
            }
        }
        out.push((f.name.clone(), value));
    }
    if let Some(doc) = current {
        for s in &doc.fields {
            if !pairs.iter().any(|(id, _)| *id == field_id(&s.name)) {
                out.push((s.name.clone(), None));
            }
        }
    }
    Ok(out)
}

/// Only the values of an upload's `custom_fields` (ids without a value say
/// the field exists, which docpipe needs no row for).
pub fn set_values(fields: Vec<(String, Option<UserField>)>) -> Vec<(String, UserField)> {
    fields
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .collect()
}

// ---------------------------------------------------------------- routes

pub async fn custom_fields(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(pairs) = params.map_err(|e| Problem::new(Code::InvalidParameter, e.body_text()))?;
    let (page, size, filter) = super::paperless_filters::parse_labels(&pairs)?;
    let lower = |s: &Option<String>| s.as_ref().map(|s| s.to_lowercase());
    let (contains, starts, is) = (
        lower(&filter.name_contains),
        lower(&filter.name_starts),
        lower(&filter.name_is),
    );
    let all: Vec<FieldName> = app
        .pipeline
        .reader()
        .field_names(&caller.scope())
        .await?
        .into_iter()
        .filter(|f| {
            let name = f.name.to_lowercase();
            contains.as_ref().is_none_or(|c| name.contains(c))
                && starts.as_ref().is_none_or(|s| name.starts_with(s))
                && is.as_ref().is_none_or(|s| name == *s)
                && filter.ids.as_ref().is_none_or(|ids| ids.contains(&f.id))
        })
        .collect();
    let ids: Vec<Value> = all.iter().map(|f| json!(f.id)).collect();
    let results: Vec<Value> = all
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(field_json)
        .collect();
    Ok(reply(
        StatusCode::OK,
        paginated_all(&headers, "custom_fields", page, size, ids, results),
    ))
}

pub async fn custom_field(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id: i64 = id.parse().map_err(|_| Problem::not_found("custom field"))?;
    let names = names_by_id(&app, &caller).await?;
    let f = names
        .get(&id)
        .ok_or_else(|| Problem::not_found("custom field"))?;
    Ok(reply(StatusCode::OK, field_json(f)))
}

#[derive(Deserialize)]
pub struct NewField {
    name: String,
    data_type: String,
    #[serde(flatten)]
    _rest: serde_json::Map<String, Value>,
}

/// `POST /api/custom_fields/`: a field name that documents of any type may
/// have a value for, of the kind its data type maps to.
pub async fn create_custom_field(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<NewField>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(b) = body.map_err(|e| Problem::new(Code::InvalidBody, e.body_text()))?;
    let name = b.name.trim();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(Problem::new(
            Code::InvalidBody,
            "name must be 1 to 64 characters, without control characters",
        )
        .on_field("name"));
    }
    let kind = kind_of(&b.data_type).ok_or_else(|| {
        Problem::new(
            Code::InvalidBody,
            format!(
                "data_type {:?}: docpipe keeps string, longtext, url, date, integer, float and monetary fields",
                b.data_type
            ),
        )
        .on_field("data_type")
    })?;
    let names = app.pipeline.reader().field_names(&caller.scope()).await?;
    if let Some(f) = names.iter().find(|f| f.name == name) {
        return Err(Problem::new(
            Code::AlreadyExists,
            format!("custom field {name:?} exists already (id {})", f.id),
        )
        .on_field("name"));
    }
    app.pipeline
        .create_field_name(name, kind, &caller.origin())
        .await?;
    let f = FieldName {
        id: field_id(name),
        name: name.to_string(),
        kind,
        document_count: 0,
    };
    Ok(reply(StatusCode::CREATED, field_json(&f)))
}

async fn document_by_number(
    app: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(Document, DocExtras), Problem> {
    let n: i64 = id.parse().map_err(|_| Problem::not_found("document"))?;
    app.pipeline
        .reader()
        .get_by_number(n, &caller.scope())
        .await?
        .ok_or_else(|| Problem::not_found("document"))
}

/// `GET /api/documents/{id}/notes/`: the document's notes, oldest first.
pub async fn notes(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let (_, x) = document_by_number(&app, &caller, &id).await?;
    Ok(reply(StatusCode::OK, document_notes(&x)))
}

#[derive(Deserialize)]
pub struct NoteBody {
    note: String,
}

/// `POST /api/documents/{id}/notes/` with `{"note": …}`: answers the
/// document's notes, as Paperless does.
pub async fn add_note(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<NoteBody>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(b) = body.map_err(|e| Problem::new(Code::InvalidBody, e.body_text()))?;
    let note = b.note.trim();
    if note.is_empty() || note.chars().count() > 10_000 {
        return Err(
            Problem::new(Code::InvalidBody, "note must be 1 to 10,000 characters").on_field("note"),
        );
    }
    let (d, _) = document_by_number(&app, &caller, &id).await?;
    app.pipeline
        .add_note(
            &d.id,
            &caller.scope(),
            NewNote {
                note: note.to_string(),
                author: user_name(&app, &caller.principal).await?,
                created_at: None,
            },
            &caller.origin(),
        )
        .await?
        .ok_or_else(|| Problem::not_found("document"))?;
    let (_, x) = document_by_number(&app, &caller, &id).await?;
    Ok(reply(StatusCode::OK, document_notes(&x)))
}
