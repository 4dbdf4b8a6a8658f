//! A strict Paperless-ngx client's models: the schemas of Paperless-ngx's
//! serializers (`src/documents/serialisers.py`, `views.py` for notes and
//! the apps' start-up routes), with `deny_unknown_fields`, no defaults for
//! what Paperless always sends, and dates checked for their form. An answer
//! that adds, drops or retypes a field fails to parse.

// The models are there to be parsed into; the tests read only some fields.
#![allow(dead_code)]

use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::Value;

/// `YYYY-MM-DD`.
#[derive(Debug, Clone)]
pub struct Date(pub String);

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if super::is_date(&s) {
            Ok(Date(s))
        } else {
            Err(de::Error::custom(format!("{s:?} is not a date")))
        }
    }
}

/// A date and time with its offset (`Z` or `+02:00`).
#[derive(Debug, Clone)]
pub struct DateTime(pub String);

impl<'de> Deserialize<'de> for DateTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if super::is_datetime_with_offset(&s) {
            Ok(DateTime(s))
        } else {
            Err(de::Error::custom(format!(
                "{s:?} is not a date-time with an offset"
            )))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page<T> {
    pub count: u64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub all: Vec<i64>,
    pub results: Vec<T>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub id: i64,
    pub correspondent: Option<i64>,
    pub document_type: Option<i64>,
    pub storage_path: Option<i64>,
    pub title: String,
    pub content: String,
    pub tags: Vec<i64>,
    pub created: Value,
    pub created_date: Date,
    pub modified: DateTime,
    pub added: DateTime,
    pub deleted_at: Option<DateTime>,
    pub archive_serial_number: Option<i64>,
    pub original_file_name: String,
    pub archived_file_name: Option<String>,
    pub mime_type: String,
    pub owner: Option<i64>,
    pub user_can_change: bool,
    pub is_shared_by_requester: bool,
    pub notes: Vec<Note>,
    pub custom_fields: Vec<CustomFieldInstance>,
    pub page_count: Option<i64>,
    /// Only in a full-text search's results.
    #[serde(default, rename = "__search_hit__")]
    pub search_hit: Option<SearchHit>,
}

impl Document {
    /// `created` as the API version gives it: a date from version 9 on,
    /// a date-time with offset before.
    pub fn check_created(&self, version: u32) {
        let s = self.created.as_str().expect("created is a string");
        if version >= 9 {
            assert!(super::is_date(s), "v{version} created {s:?}");
        } else {
            assert!(
                super::is_datetime_with_offset(s),
                "v{version} created {s:?}"
            );
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchHit {
    pub score: Option<f64>,
    pub highlights: Option<String>,
    pub note_highlights: Option<String>,
    pub rank: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Note {
    pub id: i64,
    pub note: String,
    pub created: DateTime,
    pub user: BasicUser,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicUser {
    pub id: i64,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomFieldInstance {
    pub field: i64,
    /// Typed by the field's `data_type` (see [`check_value`]).
    pub value: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tag {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub color: String,
    pub text_color: String,
    #[serde(rename = "match")]
    pub match_: String,
    pub matching_algorithm: i64,
    pub is_insensitive: bool,
    pub is_inbox_tag: bool,
    pub document_count: i64,
    pub owner: Option<i64>,
    pub user_can_change: bool,
    pub parent: Option<i64>,
    pub children: Vec<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentType {
    pub id: i64,
    pub slug: String,
    pub name: String,
    #[serde(rename = "match")]
    pub match_: String,
    pub matching_algorithm: i64,
    pub is_insensitive: bool,
    pub document_count: i64,
    pub owner: Option<i64>,
    pub user_can_change: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Correspondent {
    pub id: i64,
    pub slug: String,
    pub name: String,
    #[serde(rename = "match")]
    pub match_: String,
    pub matching_algorithm: i64,
    pub is_insensitive: bool,
    pub document_count: i64,
    pub last_correspondence: Option<DateTime>,
    pub owner: Option<i64>,
    pub user_can_change: bool,
}

#[derive(Debug, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    String,
    Url,
    Date,
    Boolean,
    Integer,
    Float,
    Monetary,
    Documentlink,
    Select,
    Longtext,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomField {
    pub id: i64,
    pub name: String,
    pub data_type: DataType,
    pub extra_data: Option<serde_json::Map<String, Value>>,
    pub document_count: i64,
}

/// A custom field's value has the JSON type of its data type.
pub fn check_value(data_type: DataType, v: &Value) {
    if v.is_null() {
        return;
    }
    match data_type {
        DataType::String | DataType::Url | DataType::Longtext => {
            assert!(v.is_string(), "{data_type:?} value {v}")
        }
        DataType::Date => assert!(v.as_str().is_some_and(super::is_date), "date value {v}"),
        DataType::Integer => assert!(v.is_i64(), "integer value {v}"),
        DataType::Float => assert!(v.is_number(), "float value {v}"),
        DataType::Boolean => assert!(v.is_boolean(), "boolean value {v}"),
        DataType::Monetary => {
            // `EUR1234.56`, or a bare two-decimal number.
            let s = v.as_str().unwrap_or_else(|| panic!("monetary value {v}"));
            let digits = s.trim_start_matches(|c: char| c.is_ascii_uppercase());
            let (prefix, rest) = s.split_at(s.len() - digits.len());
            assert!(prefix.is_empty() || prefix.len() == 3, "monetary {s:?}");
            let rest = rest.strip_prefix('-').unwrap_or(rest);
            let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
            assert!(
                !int.is_empty()
                    && int.bytes().all(|b| b.is_ascii_digit())
                    && frac.len() <= 2
                    && frac.bytes().all(|b| b.is_ascii_digit()),
                "monetary {s:?}"
            );
        }
        DataType::Documentlink => assert!(v.is_array(), "document link value {v}"),
        DataType::Select => assert!(v.is_string(), "select value {v}"),
    }
}

#[derive(Debug, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "UPPERCASE")]
pub enum CeleryStatus {
    Pending,
    Started,
    Success,
    Failure,
    Retry,
    Revoked,
    Received,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuplicateDocument {
    pub id: i64,
    pub title: String,
    pub deleted_at: Option<DateTime>,
}

/// A task up to API version 9 (a bare list).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskV9 {
    pub id: i64,
    pub task_id: String,
    pub task_name: String,
    pub task_file_name: Option<String>,
    pub date_created: DateTime,
    pub date_done: Option<DateTime>,
    #[serde(rename = "type")]
    pub type_: String,
    pub status: CeleryStatus,
    pub result: Option<String>,
    pub acknowledged: bool,
    pub related_document: Option<String>,
    pub duplicate_documents: Vec<DuplicateDocument>,
    pub owner: Option<i64>,
}

#[derive(Debug, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Pending,
    Started,
    Success,
    Failure,
    Retry,
    Revoked,
    Received,
}

/// A task from API version 10 on (pages of them).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskV10 {
    pub id: i64,
    pub task_id: String,
    pub task_type: String,
    pub task_type_display: String,
    pub trigger_source: String,
    pub trigger_source_display: String,
    pub status: TaskStatus,
    pub status_display: String,
    pub date_created: DateTime,
    pub date_started: Option<DateTime>,
    pub date_done: Option<DateTime>,
    pub duration_seconds: Option<f64>,
    pub wait_time_seconds: Option<f64>,
    pub input_data: Option<serde_json::Map<String, Value>>,
    pub result_data: Option<serde_json::Map<String, Value>>,
    pub related_document_ids: Vec<i64>,
    pub acknowledged: bool,
    pub owner: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub token: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiUser {
    pub id: i64,
    pub username: String,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub groups: Vec<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiSettings {
    pub user: UiUser,
    pub settings: serde_json::Map<String, Value>,
    pub permissions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub email: String,
    pub password: String,
    pub first_name: String,
    pub last_name: String,
    pub auth_token: String,
    pub social_accounts: Vec<Value>,
    pub has_usable_password: bool,
    pub is_mfa_enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTypeCount {
    pub mime_type: String,
    pub mime_type_count: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statistics {
    pub documents_total: i64,
    pub documents_inbox: Option<i64>,
    pub inbox_tag: Option<i64>,
    pub inbox_tags: Option<Vec<i64>>,
    pub document_file_type_counts: Vec<FileTypeCount>,
    pub character_count: i64,
    pub tag_count: i64,
    pub correspondent_count: i64,
    pub document_type_count: i64,
    pub storage_path_count: i64,
    pub current_asn: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteVersion {
    pub version: String,
    pub update_available: bool,
}
