//! The one registry of error codes. Every error docpipe reports — a
//! document's failure, an engine operation that could not be done, an HTTP
//! problem — carries one of these codes; each code has one HTTP status and
//! says whether trying again may help. Codes are stable: clients match on
//! them, and documents keep theirs in SQLite.

use std::fmt;

macro_rules! codes {
    ($($variant:ident = $name:literal, $status:literal, $retryable:literal;)*) => {
        /// A stable error code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every code, for documentation and tests.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }

            /// The HTTP status an API answer with this code has.
            pub fn http_status(self) -> u16 {
                match self {
                    $(Code::$variant => $status,)*
                }
            }

            /// Whether the same request (or document) may succeed if tried
            /// again; deterministic failures are not retried.
            pub fn retryable(self) -> bool {
                match self {
                    $(Code::$variant => $retryable,)*
                }
            }

            pub fn parse(name: &str) -> Option<Code> {
                match name {
                    $($name => Some(Code::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    // A document's failure (kept with the document).
    Malformed = "malformed", 422, false;
    Encrypted = "encrypted", 422, false;
    Unsupported = "unsupported", 415, false;
    TooLarge = "too_large", 413, false;
    Timeout = "timeout", 504, true;
    OcrFailed = "ocr_failed", 422, false;
    ParserPanic = "parser_panic", 500, true;
    Crashed = "crashed", 500, true;
    ParserUnavailable = "parser_unavailable", 503, true;
    Storage = "storage", 503, true;
    // The remote blob store does not answer: documents wait (attempts are
    // not used up), uploads answer 503.
    StorageUnavailable = "storage_unavailable", 503, true;
    Lost = "lost", 500, true;
    // An engine operation.
    Unavailable = "unavailable", 503, true;
    Internal = "internal", 500, true;
    NotReady = "not_ready", 503, true;
    BackupFailed = "backup_failed", 500, true;
    // Requests.
    NotFound = "not_found", 404, false;
    InvalidQuery = "invalid_query", 400, false;
    InvalidParameter = "invalid_parameter", 400, false;
    InvalidBody = "invalid_body", 400, false;
    InvalidField = "invalid_field", 400, false;
    InvalidType = "invalid_type", 400, false;
    InvalidWorkspace = "invalid_workspace", 400, false;
    MissingQuery = "missing_query", 400, false;
    NoFile = "no_file", 400, false;
    OneDocument = "one_document", 400, false;
    AlreadyExists = "already_exists", 400, false;
    NotMultipart = "not_multipart", 415, false;
    BadMultipart = "bad_multipart", 400, false;
    TooManyUploads = "too_many_uploads", 503, true;
    EmptyDocument = "empty_document", 415, false;
    UnsupportedMediaType = "unsupported_media_type", 415, false;
    PayloadTooLarge = "payload_too_large", 413, false;
    StorageFailed = "storage_failed", 507, true;
    NotFailed = "not_failed", 409, false;
    NotExtracted = "not_extracted", 409, false;
    OcrUnavailable = "ocr_unavailable", 409, true;
    LlmUnavailable = "llm_unavailable", 409, false;
    NoEmbeddings = "no_embeddings", 409, false;
    Unauthorized = "unauthorized", 401, false;
    Forbidden = "forbidden", 403, false;
    WorkspaceForbidden = "workspace_forbidden", 403, false;
    MethodNotAllowed = "method_not_allowed", 405, false;
    RateLimited = "rate_limited", 429, true;
    TooManySubscribers = "too_many_subscribers", 503, true;
    WebhookTargetRefused = "webhook_target_refused", 400, false;
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Code::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown error code {s:?}")))
    }
}

/// A code compares equal to its name.
impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error of an engine operation, with its code. What callers of the
/// engine match on; the HTTP layer turns it into a problem answer (and
/// never shows an `internal` one's message to the client).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct EngineError {
    pub code: Code,
    pub message: String,
}

impl EngineError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        EngineError {
            code,
            message: message.into(),
        }
    }

    /// Something failed inside the engine (SQLite, the index): logged, and
    /// reported as `internal`.
    pub fn internal(e: impl fmt::Display) -> Self {
        EngineError::new(Code::Internal, e.to_string())
    }

    /// An actor the request needed died while holding it, or is
    /// restarting: the outcome is unknown, and trying again is safe (uploads
    /// are deduplicated, the other operations are idempotent).
    pub fn unavailable() -> Self {
        EngineError::new(
            Code::Unavailable,
            "a pipeline component failed while handling the request, or is restarting; \
             the outcome is unknown, and trying again is safe",
        )
    }
}

impl From<anyhow::Error> for EngineError {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<EngineError>() {
            Ok(e) => e,
            Err(e) => EngineError::internal(format!("{e:#}")),
        }
    }
}

impl From<rusqlite::Error> for EngineError {
    fn from(e: rusqlite::Error) -> Self {
        EngineError::internal(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "{c} twice");
            assert_eq!(Code::parse(c.as_str()), Some(*c));
            assert!((400..600).contains(&c.http_status()), "{c}");
        }
        assert!(!Code::Malformed.retryable() && Code::Timeout.retryable());
    }
}
