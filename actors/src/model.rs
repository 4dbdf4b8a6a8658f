//! Plain data shared by the actors and the public API: stages, documents, jobs, errors.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Where a document is in the pipeline. Stored as text in SQLite; the order of
/// the active stages is the order of the actor chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Queued,
    Extracted,
    Classified,
    Enriched,
    Indexed,
    Failed,
    /// Internal: a delete is under way (resumed at boot). Never shown over the API.
    Deleting,
}

impl Stage {
    /// The stages a user can see and filter on, in pipeline order.
    pub const VISIBLE: [Stage; 6] = [
        Stage::Queued,
        Stage::Extracted,
        Stage::Classified,
        Stage::Enriched,
        Stage::Indexed,
        Stage::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Queued => "queued",
            Stage::Extracted => "extracted",
            Stage::Classified => "classified",
            Stage::Enriched => "enriched",
            Stage::Indexed => "indexed",
            Stage::Failed => "failed",
            Stage::Deleting => "deleting",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Some(match s {
            "queued" => Stage::Queued,
            "extracted" => Stage::Extracted,
            "classified" => Stage::Classified,
            "enriched" => Stage::Enriched,
            "indexed" => Stage::Indexed,
            "failed" => Stage::Failed,
            "deleting" => Stage::Deleting,
            _ => return None,
        })
    }

    /// Active stages still have work ahead of them; the Intake admits them.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Stage::Queued | Stage::Extracted | Stage::Classified | Stage::Enriched
        )
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Separates the pages of a document's text (a form feed, as pdftotext
/// writes them).
pub const PAGE_BREAK: char = '\u{c}';

/// A stable error code plus a human message, stored with a failed document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
}

impl ErrorInfo {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorInfo {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The last path component, without control characters, at most 255 chars.
pub fn clean_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    let cleaned = cleaned.trim().to_string();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "upload".into()
    } else {
        cleaned
    }
}

/// The workspace documents belong to unless an upload names another.
pub const DEFAULT_WORKSPACE: &str = "default";

/// Whether `name` is a valid workspace name: 1–64 characters of `a-z`, `0-9`,
/// `-` and `_`, starting with a letter or digit.
pub fn valid_workspace(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

/// The workspaces a reader may see. Every read of the engine takes one, and
/// the SQL and the index query filter by it, so a caller never sees, counts or
/// finds a document outside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every workspace (admin tokens, the operator's CLI).
    All,
    /// These workspaces only.
    Only(Arc<[String]>),
}

impl Scope {
    pub fn only(workspaces: impl IntoIterator<Item = impl Into<String>>) -> Scope {
        Scope::Only(workspaces.into_iter().map(Into::into).collect())
    }

    pub fn allows(&self, workspace: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(w) => w.iter().any(|w| w == workspace),
        }
    }

    /// The SQL parameter of `workspace_filter`: NULL for all, else a JSON array.
    pub fn sql_param(&self) -> Option<String> {
        match self {
            Scope::All => None,
            Scope::Only(w) => Some(serde_json::to_string(&**w).unwrap_or_else(|_| "[]".into())),
        }
    }
}

/// Who asked for a change, for the audit trail: the token and the request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub token_id: Option<String>,
    pub request_id: Option<String>,
}

/// One row of the `documents` table, as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Document {
    #[serde(skip)]
    pub seq: i64,
    pub id: String,
    pub workspace: String,
    /// ISO 639-3 code of the text's language, once extracted (if it can be told).
    pub language: Option<String>,
    /// Pages without text wait for OCR, which was not available when the
    /// document was read: `docpipe reprocess --needs-ocr` reads them again.
    pub needs_ocr: bool,
    /// Pages (PDF, slides, images), once extracted.
    pub pages: Option<u32>,
    /// What the format carries (an e-mail's from, to, subject, date,
    /// attachments; a PDF's author; the pages read by OCR).
    pub metadata: Option<serde_json::Value>,
    /// The document's fields: found by Enrich, or set by a user.
    pub fields: Vec<FieldValue>,
    pub filename: String,
    pub title: Option<String>,
    pub mime: String,
    pub size: u64,
    pub sha256: String,
    pub stage: Stage,
    pub doc_type: Option<String>,
    pub confidence: Option<f64>,
    /// Where the type came from: `rule` (a type's keywords or patterns
    /// matched), `model` (the classifier learned from corrections), `llm`,
    /// or `user`.
    pub type_source: Option<String>,
    /// A person should check the document: its type is not sure enough
    /// (confidence below `pipeline.classify.review_threshold`), or OCR read a
    /// page below `pipeline.ocr.review_below_confidence`.
    pub needs_review: bool,
    /// The LLM was configured but no endpoint answered: the built-in type
    /// and fields stand until `docpipe reprocess --llm`.
    pub needs_llm: bool,
    /// The embedder in force has made this version's passage vectors.
    pub embedded: bool,
    pub created_at: String,
    pub updated_at: String,
    pub attempts: u32,
    pub error: Option<ErrorInfo>,
}

/// One field of a document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldValue {
    pub name: String,
    pub kind: String,
    /// Dates as `YYYY-MM-DD`, money as a decimal string ("1234.56").
    pub value: String,
    /// Money only: ISO 4217 code, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    pub confidence: f64,
    /// `rule`, `model`, `llm` or `user`.
    pub source: String,
}

/// A document whose blob is staged in `incoming/` and is about to be registered.
#[derive(Clone, Debug)]
pub struct NewDocument {
    pub id: String,
    pub workspace: String,
    pub filename: String,
    pub title: Option<String>,
    pub mime: String,
    pub size: u64,
    pub sha256: String,
    /// The original itself, when it is small enough to live in SQLite
    /// (`blobs.inline_max_bytes`); otherwise it is staged in the blob store.
    pub inline: Option<bytes::Bytes>,
    pub extra: UploadExtras,
}

/// What an upload may say about its document beyond the bytes.
#[derive(Clone, Debug, Default)]
pub struct UploadExtras {
    /// Tag ids (of the document's workspace).
    pub tags: Vec<i64>,
    /// A document type that the classifier does not override.
    pub doc_type: Option<String>,
    /// The document's own date (ISO 8601), e.g. an invoice's.
    pub doc_date: Option<String>,
    /// Archive serial number.
    pub asn: Option<i64>,
    /// A task id to record for this upload (Paperless-ngx clients poll it).
    pub task_id: Option<String>,
    /// The id of the document this one was found in (an e-mail attachment).
    pub parent: Option<String>,
    /// Field values set by the uploader (checked against their kind): they
    /// stay whatever Enrich finds.
    pub fields: Vec<(String, UserField)>,
    /// The number the document should get, if no document has it (a
    /// migration keeps the numbers it brings); else the next one.
    pub number: Option<i64>,
    /// Notes on the document.
    pub notes: Vec<NewNote>,
    /// The type (even none) and fields came with the document: it is not
    /// typed or filled again.
    pub keep_metadata: bool,
    /// The system and id the document was brought from (a migration): a
    /// second run skips it.
    pub imported_from: Option<(String, i64)>,
}

/// A note to add to a document.
#[derive(Clone, Debug)]
pub struct NewNote {
    pub note: String,
    /// Who wrote it (a user name).
    pub author: String,
    /// When (ms since the epoch); None: now.
    pub created_at: Option<i64>,
}

/// A field value a user set.
#[derive(Clone, Debug)]
pub struct UserField {
    pub kind: Kind,
    pub value: String,
    pub currency: Option<String>,
}

/// What registering an upload gave: the new document, or the one it duplicates.
#[derive(Clone, Debug, Serialize)]
pub struct Registered {
    pub id: String,
    pub filename: String,
    pub sha256: String,
    pub stage: Stage,
    pub duplicate_of: Option<String>,
}

/// One admission of one document into the actor chain. `admission` is unique
/// per admission so that a late completion from an expired lease is ignored.
#[derive(Clone, Debug)]
pub struct DocJob {
    pub seq: i64,
    pub id: String,
    pub workspace: String,
    /// The request id of the upload: the correlation id of the document's
    /// events and log lines.
    pub request_id: Option<String>,
    pub admission: u64,
    pub stage: Stage,
    pub mime: String,
    pub filename: String,
    pub title: Option<String>,
    pub attempts: u32,
    /// Extracted text, carried forward from the Extract stage (or loaded by the
    /// Intake when a document is re-admitted past extraction).
    pub text: Option<Arc<str>>,
    pub doc_type: Option<String>,
    /// The type an uploader or user set; the classifier does not override it.
    pub user_doc_type: Option<String>,
    pub confidence: Option<f32>,
}

impl DocJob {
    /// The job of a document just registered as row `seq`, before any
    /// admission (the Intake numbers admissions).
    pub fn registered(seq: i64, d: &NewDocument) -> DocJob {
        DocJob {
            seq,
            id: d.id.clone(),
            workspace: d.workspace.clone(),
            request_id: None,
            admission: 0,
            stage: Stage::Queued,
            mime: d.mime.clone(),
            filename: d.filename.clone(),
            title: d.title.clone(),
            attempts: 0,
            text: None,
            doc_type: None,
            user_doc_type: d.extra.doc_type.clone(),
            confidence: None,
        }
    }
}

/// Output of the Extract stage.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Extracted {
    pub text: String,
    pub title: Option<String>,
    pub pages: Option<u32>,
    /// The precise type, when the parser learnt it from inside a container
    /// that the upload's first bytes could not tell (a zip).
    #[serde(default)]
    pub mime: Option<String>,
    /// Fields the format itself carries (an e-mail's From, To, Subject, Date).
    #[serde(default)]
    pub fields: Option<serde_json::Value>,
    /// Files inside the document (e-mail attachments): each becomes a
    /// document of its own, linked to this one.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// ISO 639-3 code of the text's language, when it can be told.
    #[serde(default)]
    pub language: Option<String>,
    /// Pages (from 1) without a text layer, for the OCR step; an image is
    /// its page 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ocr_pages: Vec<u32>,
    /// OCR was needed and not available (or failed on some pages).
    #[serde(default)]
    pub needs_ocr: bool,
    /// How long reading the document took (parse and OCR), in milliseconds.
    #[serde(default)]
    pub elapsed_ms: u64,
    /// A short PDF's text laid out as on its pages (words at their columns),
    /// for the field rules; `None` for other documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
}

/// A file found inside a document.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Attachment {
    pub filename: String,
    #[serde(with = "base64_bytes")]
    pub bytes: Vec<u8>,
}

/// Bytes as base64 in the parser process's JSON answers.
mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

/// How a field's value is read and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `YYYY-MM-DD`.
    Date,
    /// A decimal string ("1234.56") with a `currency` (ISO 4217).
    Money,
    Number,
    Text,
    /// A person or organisation.
    Party,
    /// An invoice, order or customer number, a VAT id.
    Identifier,
    /// Checked by its checksum; written without spaces.
    Iban,
    Email,
    Phone,
    Url,
}

/// A field of a document type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub name: String,
    pub kind: Kind,
    #[serde(default)]
    pub required: bool,
    /// Labels that introduce the value, most telling first. Empty: the
    /// built-in labels of a well-known name (`invoice_number`, `total`,
    /// `due_date`…), else the name with spaces for underscores.
    #[serde(default)]
    pub labels: Vec<String>,
}

/// A value found.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub name: String,
    pub kind: Kind,
    pub value: String,
    pub currency: Option<String>,
    pub confidence: f32,
    /// `rule`, `template` or `llm`.
    pub source: &'static str,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Date,
        Kind::Money,
        Kind::Number,
        Kind::Text,
        Kind::Party,
        Kind::Identifier,
        Kind::Iban,
        Kind::Email,
        Kind::Phone,
        Kind::Url,
    ];

    /// The kind of a stored name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind's name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Date => "date",
            Kind::Money => "money",
            Kind::Number => "number",
            Kind::Text => "text",
            Kind::Party => "party",
            Kind::Identifier => "identifier",
            Kind::Iban => "iban",
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Url => "url",
        }
    }
}

/// What asking to retry a failed document did.
#[derive(Debug)]
pub enum RetryOutcome {
    /// Back at the stage it failed in, with fresh attempts.
    Requeued(Stage),
    NotFound,
    /// It has not failed; it is at this stage.
    NotFailed(Stage),
}

/// Output of the Classify stage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Classification {
    pub doc_type: Option<String>,
    pub confidence: f32,
    /// Where the type came from: `rule`, `model`, `llm` or `user`.
    pub source: Option<String>,
    /// The confidence is below `pipeline.classify.review_threshold`.
    pub needs_review: bool,
    /// The LLM could not be asked (every endpoint down): ask it later.
    pub needs_llm: bool,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn format_ms(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}
